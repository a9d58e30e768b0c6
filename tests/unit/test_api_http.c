/* Central's API module for real: api.c on 127.0.0.1, port 0, over TLS with
 * an EC P-256 CA and certificate made by the openssl CLI (as scripts/pki
 * does), libcurl as the client verifying them, and a thread playing the
 * main loop's side (polling api_event_fd, draining, replying). Every wait
 * has a deadline; nothing sleeps to synchronise. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sqlite3.h>

#include "evc/clock.h"
#include "evc/xalloc.h"
#include "src/central/api.h"
#include "src/central/api_page.h"

#define T_READ "read-token-0123456789abcdef"
#define T_OPER "operate-token-0123456789abcdef"
#define T_WX "weather-token-0123456789abcdef"
#define WAIT 5.0

static char dir[64], ca[128], other_ca[128], cert[128], key[128], tokens[128], dbpath[128], spki[128];
static struct api_config CFG;
static struct api *A;

/* ---------------------------------------------------------------- files */

static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static int group_setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN); /* a client closing its end is a test case, not a crash */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(dir, sizeof dir, "/tmp/test_api_http.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	snprintf(other_ca, sizeof other_ca, "%s/other.pem", dir);
	snprintf(cert, sizeof cert, "%s/central.pem", dir);
	snprintf(key, sizeof key, "%s/central.key", dir);
	snprintf(tokens, sizeof tokens, "%s/api.tokens", dir);
	snprintf(dbpath, sizeof dbpath, "%s/c.db", dir);
	/* The network's CA and Central's certificate, as scripts/pki makes them. */
	sh("cd '%s' && umask 077 && "
	   "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null && "
	   "openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj /CN=evc-test-ca -out ca.pem && "
	   "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out central.key 2>/dev/null && "
	   "openssl req -new -key central.key -subj /CN=localhost -out central.csr && "
	   "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
	   "extendedKeyUsage=serverAuth\\n' >ext.cnf && "
	   "openssl x509 -req -in central.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -sha256 "
	   "-extfile ext.cnf -out central.pem 2>/dev/null && "
	   "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key 2>/dev/null && "
	   "openssl req -x509 -new -key other.key -sha256 -days 30 -subj /CN=other-ca -out other.pem",
	   dir);
	/* Chromium is told to accept exactly this key (no other check off). */
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin -outform der | "
		 "openssl dgst -sha256 -binary | base64",
		 cert);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	if (fgets(spki, sizeof spki, p) == NULL)
		spki[0] = '\0';
	pclose(p);
	spki[strcspn(spki, "\n")] = '\0';
	assert_int_equal(strlen(spki), 44);
	write_file(tokens, "grafana read " T_READ "\nops operate " T_OPER "\nevw weather " T_WX "\n", 0600);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "PRAGMA journal_mode=WAL;"
				      "CREATE TABLE sessions(id TEXT PRIMARY KEY, cp_id TEXT, driver_id TEXT,"
				      " kwh REAL, importe REAL, price REAL, outcome TEXT, reason TEXT,"
				      " started_at REAL, ended_at REAL);"
				      "CREATE TABLE cp_events(id INTEGER PRIMARY KEY, cp_id TEXT, ts REAL, event TEXT,"
				      " detail TEXT, prev INTEGER);"
				      "CREATE TABLE charging_points(id TEXT PRIMARY KEY, last_event INTEGER);"
				      "CREATE TABLE audit_log(id INTEGER PRIMARY KEY, ts REAL, actor TEXT,"
				      " source_ip TEXT, action TEXT, cp_id TEXT, detail TEXT);"
				      "INSERT INTO sessions VALUES('s1','MAD-01','101',2.5,0.88,0.35,'TICKET',NULL,"
				      " 1700000000,1700000100);",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	curl_global_cleanup();
	if (getenv("EVC_KEEP_TMP") != NULL) { /* as tests/integration/lib.sh: keep page.png and the rest */
		print_message("# kept %s\n", dir);
		return 0;
	}
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- main loop */

/* The main loop's side of the interface, as main.c will do it. CPs whose
 * id starts with "SLOW" are never answered (until ml_reply_late). */
static struct {
	pthread_t th;
	int quit;
	pthread_mutex_t m;
	pthread_cond_t c;
	struct api_req seen[512];
	size_t nseen;
	int paused; /* a busy main loop: takes nothing from the queue */
} ML;

static void *ml_main(void *arg)
{
	(void)arg;
	struct api_req batch[64];
	for (;;) {
		struct pollfd p[2] = { { api_event_fd(A), POLLIN, 0 }, { ML.quit, POLLIN, 0 } };
		if (poll(p, 2, 1000) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (__atomic_load_n(&ML.paused, __ATOMIC_RELAXED)) {
			struct pollfd q = { ML.quit, POLLIN, 0 };
			poll(&q, 1, 20); /* busy elsewhere; looks again soon */
			continue;
		}
		size_t n = api_drain(A, batch, 64);
		for (size_t i = 0; i < n; i++) {
			struct api_req *r = &batch[i];
			pthread_mutex_lock(&ML.m);
			if (ML.nseen < 512)
				ML.seen[ML.nseen++] = *r;
			pthread_cond_broadcast(&ML.c);
			pthread_mutex_unlock(&ML.m);
			if (r->kind == API_REQ_DENIED || strncmp(r->cp_id, "SLOW", 4) == 0)
				continue;
			switch (r->kind) {
			case API_REQ_STOP:
			case API_REQ_RESUME:
			case API_REQ_REVOKE:
				if (strcmp(r->cp_id, "BCN-02") == 0)
					api_reply(A, r->id, 409, "{\"error\":\"link down\"}");
				else
					api_reply(A, r->id, 202, "{\"sent\":true}");
				break;
			case API_REQ_STOP_ALL:
			case API_REQ_RESUME_ALL:
				api_reply(A, r->id, 202, "{\"sent\":[\"MAD-01\"],\"failed\":[{\"id\":\"BCN-02\","
							 "\"error\":\"link down\"}]}");
				break;
			case API_REQ_SET_THRESHOLD: {
				char b[64];
				snprintf(b, sizeof b, "{\"threshold\":%g}", r->value);
				api_reply(A, r->id, 200, b);
				break;
			}
			case API_REQ_WEATHER_READING:
				api_reply(A, r->id, 200, r->value < 0 ? "{\"alert\":true,\"cps\":[\"MAD-01\"]}"
								      : "{\"alert\":false,\"cps\":[]}");
				break;
			case API_REQ_DENIED: break;
			}
		}
	}
	return NULL;
}

/* The first request seen of kind (after index *from), waiting up to WAIT. */
static struct api_req ml_wait(enum api_req_kind kind, size_t *from)
{
	double end = clock_mono() + WAIT;
	pthread_mutex_lock(&ML.m);
	for (;;) {
		for (size_t i = *from; i < ML.nseen; i++) {
			if (ML.seen[i].kind == kind) {
				struct api_req r = ML.seen[i];
				*from = i + 1;
				pthread_mutex_unlock(&ML.m);
				return r;
			}
		}
		if (clock_mono() > end) {
			pthread_mutex_unlock(&ML.m);
			fail_msg("the main loop saw no request of kind %d", kind);
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&ML.c, &ML.m, &ts);
	}
}

static void publish(void)
{
	struct api_snapshot *s = api_snapshot_new(3);
	const char *ids[] = { "BCN-02", "MAD-01", "SLOW-01" };
	for (int i = 0; i < 3; i++) {
		xstrlcpy(s->cps[i].id, ids[i], sizeof s->cps[i].id);
		xstrlcpy(s->cps[i].location, "Madrid", sizeof s->cps[i].location);
		s->cps[i].price = 0.35;
		s->cps[i].state = CP_ACTIVADO;
		s->cps[i].link = CP_LINK_TLS;
	}
	s->weather_json = xstrdup("{\"threshold\":0,\"cities\":[]}");
	s->at = clock_wall();
	api_publish(A, s);
}

static void start_api(void)
{
	char err[EVC_ERR_LEN];
	A = api_new(&CFG, err);
	if (A == NULL)
		fail_msg("api_new: %s", err);
	assert_true(api_port(A) > 0);
	publish();
	if (api_start(A, err) != 0)
		fail_msg("api_start: %s", err);
	ML.nseen = 0;
	ML.paused = 0;
	ML.quit = eventfd(0, EFD_CLOEXEC);
	pthread_mutex_init(&ML.m, NULL);
	pthread_cond_init(&ML.c, NULL);
	assert_int_equal(pthread_create(&ML.th, NULL, ml_main, NULL), 0);
}

static int setup(void **state)
{
	(void)state;
	memset(&CFG, 0, sizeof CFG);
	CFG.listen = "127.0.0.1";
	CFG.cert_file = cert;
	CFG.key_file = key;
	CFG.tokens_file = tokens;
	CFG.db_path = dbpath;
	CFG.answer_timeout = 1.0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (A == NULL)
		return 0;
	uint64_t one = 1;
	if (write(ML.quit, &one, sizeof one) != sizeof one)
		return -1;
	pthread_join(ML.th, NULL);
	close(ML.quit);
	pthread_mutex_destroy(&ML.m);
	pthread_cond_destroy(&ML.c);
	api_free(A);
	A = NULL;
	return 0;
}

/* ---------------------------------------------------------------- client */

struct resp {
	long status;
	char body[1 << 16];
	size_t len;
	char head[8192];
	size_t hlen;
	CURLcode rc;
	double secs;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t k = sz * n, room = sizeof r->body - 1 - r->len;
	memcpy(r->body + r->len, p, k < room ? k : room);
	r->len += k < room ? k : room;
	r->body[r->len] = '\0';
	return k;
}

static size_t on_head(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t k = sz * n, room = sizeof r->head - 1 - r->hlen;
	memcpy(r->head + r->hlen, p, k < room ? k : room);
	r->hlen += k < room ? k : room;
	r->head[r->hlen] = '\0';
	return k;
}

struct body_src {
	const char *p;
	size_t left;
};

static size_t on_read(char *buf, size_t sz, size_t n, void *arg)
{
	struct body_src *s = arg;
	size_t k = sz * n < s->left ? sz * n : s->left;
	memcpy(buf, s->p, k);
	s->p += k;
	s->left -= k;
	return k;
}

enum { CHUNKED = 1, TLS11 = 2, TLS12 = 4, WRONG_CA = 8, BY_NAME = 16, EXPECT = 32 };

static CURL *easy(const char *method, const char *path, const char *token, const char *ctype, int flags,
		  struct curl_slist **hl, char *url, size_t urlsz)
{
	CURL *e = curl_easy_init();
	snprintf(url, urlsz, "https://%s:%d%s", flags & BY_NAME ? "localhost" : "127.0.0.1", api_port(A), path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CAINFO, flags & WRONG_CA ? other_ca : ca);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	if (flags & TLS11) {
		curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_1 | CURL_SSLVERSION_MAX_TLSv1_1));
		/* Let our side offer TLS 1.1 at all, so the refusal is the server's. */
		curl_easy_setopt(e, CURLOPT_SSL_CIPHER_LIST, "DEFAULT:@SECLEVEL=0");
	}
	if (flags & TLS12)
		curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
	*hl = NULL;
	char h[600];
	if (token) {
		snprintf(h, sizeof h, "Authorization: Bearer %s", token);
		*hl = curl_slist_append(*hl, h);
	}
	if (ctype) {
		snprintf(h, sizeof h, "Content-Type: %s", ctype);
		*hl = curl_slist_append(*hl, h);
	}
	if (flags & CHUNKED)
		*hl = curl_slist_append(*hl, "Transfer-Encoding: chunked");
	if (!(flags & EXPECT))
		*hl = curl_slist_append(*hl, "Expect:");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hl);
	return e;
}

static long req(const char *method, const char *path, const char *token, const char *ctype, const char *body,
		size_t body_len, int flags, struct resp *r)
{
	struct curl_slist *hl;
	char url[256];
	memset(r, 0, sizeof *r);
	CURL *e = easy(method, path, token, ctype, flags, &hl, url, sizeof url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_head);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	struct body_src src = { body, body_len };
	if (body != NULL) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(e, CURLOPT_READDATA, &src);
		if (!(flags & CHUNKED))
			curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}
	double t0 = clock_mono();
	r->rc = curl_easy_perform(e);
	r->secs = clock_mono() - t0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(e);
	curl_slist_free_all(hl);
	return r->rc == CURLE_OK ? r->status : -1;
}

static struct resp R;
#define GET(p, t) req("GET", (p), (t), NULL, NULL, 0, 0, &R)
#define SEND(m, p, t, b) req((m), (p), (t), "application/json", (b), strlen(b), 0, &R)

static json_t *body_json(void)
{
	json_error_t je;
	json_t *j = json_loads(R.body, 0, &je);
	if (j == NULL)
		fail_msg("not JSON: %s", R.body);
	return j;
}

/* ---------------------------------------------------------------- streams */

/* A /api/v1/events client on its own thread (libcurl). */
struct stream {
	pthread_t th;
	char *buf;
	size_t len, cap, seen;
	int stop, done;
	long status;
	CURLcode rc;
	pthread_mutex_t m;
	pthread_cond_t c;
};

static size_t stream_body(char *p, size_t sz, size_t n, void *arg)
{
	struct stream *s = arg;
	size_t k = sz * n;
	pthread_mutex_lock(&s->m);
	if (s->len + k + 1 > s->cap) {
		s->cap = (s->len + k + 1) * 2;
		s->buf = xrealloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, p, k);
	s->len += k;
	s->buf[s->len] = '\0';
	pthread_cond_broadcast(&s->c);
	pthread_mutex_unlock(&s->m);
	return k;
}

static int stream_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct stream *s = arg;
	return __atomic_load_n(&s->stop, __ATOMIC_RELAXED);
}

static void *stream_main(void *arg)
{
	struct stream *s = arg;
	struct curl_slist *hl;
	char url[256];
	CURL *e = easy("GET", "/api/v1/events", T_READ, NULL, 0, &hl, url, sizeof url);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 0L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, stream_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, stream_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, s);
	s->rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &s->status);
	curl_easy_cleanup(e);
	curl_slist_free_all(hl);
	pthread_mutex_lock(&s->m);
	s->done = 1;
	pthread_cond_broadcast(&s->c);
	pthread_mutex_unlock(&s->m);
	return NULL;
}

static struct stream *stream_open(void)
{
	struct stream *s = xcalloc(1, sizeof *s);
	pthread_mutex_init(&s->m, NULL);
	pthread_cond_init(&s->c, NULL);
	assert_int_equal(pthread_create(&s->th, NULL, stream_main, s), 0);
	return s;
}

/* Wait until needle arrives after what was already found; 1 or 0. */
static int stream_wait(struct stream *s, const char *needle, double secs)
{
	double end = clock_mono() + secs;
	pthread_mutex_lock(&s->m);
	for (;;) {
		char *hit = s->buf ? memmem(s->buf + s->seen, s->len - s->seen, needle, strlen(needle)) : NULL;
		if (hit != NULL) {
			s->seen = (size_t)(hit - s->buf) + strlen(needle);
			pthread_mutex_unlock(&s->m);
			return 1;
		}
		if (s->done || clock_mono() > end) {
			pthread_mutex_unlock(&s->m);
			return 0;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->c, &s->m, &ts);
	}
}

static void stream_close(struct stream *s)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
	pthread_join(s->th, NULL);
	pthread_mutex_destroy(&s->m);
	pthread_cond_destroy(&s->c);
	free(s->buf);
	free(s);
}

static int wait_streams(size_t n, double secs)
{
	double end = clock_mono() + secs;
	while (api_sse_clients(A) != n) {
		if (clock_mono() > end)
			return 0;
		struct pollfd p = { -1, 0, 0 };
		poll(&p, 0, 10); /* a bounded pause between looks at a counter */
	}
	return 1;
}

/* ---------------------------------------------------------------- tests */

static void test_reads_over_tls(void **state)
{
	(void)state;
	start_api();
	assert_int_equal(GET("/api/v1/cps", T_READ), 200);
	json_t *j = body_json();
	assert_int_equal(json_array_size(j), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "id")), "MAD-01");
	json_decref(j);
	assert_non_null(strstr(R.head, "Content-Type: application/json"));
	assert_non_null(strstr(R.head, "Cache-Control: no-store"));
	/* By name too: the certificate says localhost and 127.0.0.1. */
	assert_int_equal(req("GET", "/api/v1/sessions?cp=MAD-01", T_READ, NULL, NULL, 0, BY_NAME, &R), 200);
	assert_non_null(strstr(R.body, "\"id\":\"s1\""));
	assert_int_equal(GET("/api/v1/sessions?limit=0", T_READ), 400);
	assert_int_equal(GET("/api/v1/weather", T_READ), 200);
	assert_int_equal(GET("/metrics", T_READ), 200);
	assert_non_null(strstr(R.head, "text/plain; version=0.0.4"));
	/* The answers counted so far are in the next scrape. */
	assert_int_equal(GET("/metrics", T_READ), 200);
	assert_non_null(strstr(R.body, "evc_api_requests_total{code=\"400\"} 1\n"));
	/* A client that does not trust our CA cannot talk to us. */
	assert_int_equal(req("GET", "/api/v1/cps", T_READ, NULL, NULL, 0, WRONG_CA, &R), -1);
	assert_int_equal(R.rc, CURLE_PEER_FAILED_VERIFICATION);
}

static void test_page_over_tls(void **state)
{
	(void)state;
	start_api();
	assert_int_equal(GET("/", NULL), 200);
	assert_int_equal(R.len, api_page_len);
	assert_memory_equal(R.body, api_page_html, R.len);
	assert_non_null(strstr(R.head, "Content-Type: text/html; charset=utf-8"));
	assert_non_null(strstr(R.head, "Content-Security-Policy: default-src 'none'; script-src 'sha256-"));
	assert_non_null(strstr(R.head, "X-Frame-Options: DENY"));
	/* The real page has both inline blocks hashed. */
	assert_null(strstr(R.head, "script-src 'none'"));
	assert_null(strstr(R.head, "style-src 'none'"));
}

static void test_commands_roundtrip(void **state)
{
	(void)state;
	start_api();
	size_t from = 0;
	assert_int_equal(req("POST", "/api/v1/cps/MAD-01/stop", T_OPER, NULL, NULL, 0, 0, &R), 202);
	assert_string_equal(R.body, "{\"sent\":true}");
	struct api_req r = ml_wait(API_REQ_STOP, &from);
	assert_string_equal(r.cp_id, "MAD-01");
	assert_string_equal(r.token_name, "ops");
	assert_string_equal(r.source_ip, "127.0.0.1");
	assert_int_equal(req("POST", "/api/v1/cps/BCN-02/resume", T_OPER, NULL, NULL, 0, 0, &R), 409);
	assert_string_equal(R.body, "{\"error\":\"link down\"}");
	assert_int_equal(req("POST", "/api/v1/cps/stop-all", T_OPER, NULL, NULL, 0, 0, &R), 202);
	assert_non_null(strstr(R.body, "\"failed\":[{\"id\":\"BCN-02\""));
	assert_int_equal(SEND("PUT", "/api/v1/weather/threshold", T_OPER, "{\"threshold\":-1.5}"), 200);
	assert_string_equal(R.body, "{\"threshold\":-1.5}");
	assert_int_equal(SEND("POST", "/api/v1/weather/readings", T_WX, "{\"city\":\"Madrid\",\"temperature\":-3}"),
			 200);
	assert_string_equal(R.body, "{\"alert\":true,\"cps\":[\"MAD-01\"]}");
	r = ml_wait(API_REQ_WEATHER_READING, &from);
	assert_string_equal(r.city, "Madrid");
	assert_true(r.value == -3);
	/* Refusals reach the main loop as notes for the audit log. */
	assert_int_equal(req("POST", "/api/v1/cps/MAD-01/stop", T_READ, NULL, NULL, 0, 0, &R), 403);
	r = ml_wait(API_REQ_DENIED, &from);
	assert_int_equal(r.status, 403);
	assert_string_equal(r.token_name, "grafana");
	assert_int_equal(GET("/api/v1/cps", "not-a-token-not-a-token"), 401);
	assert_non_null(strstr(R.head, "WWW-Authenticate: Bearer"));
	r = ml_wait(API_REQ_DENIED, &from);
	assert_int_equal(r.status, 401);
	assert_string_equal(r.detail, "GET /api/v1/cps: 401 bad token");
}

static void test_unanswered_gets_503(void **state)
{
	(void)state;
	start_api();
	size_t from = 0;
	/* Nobody answers SLOW-01: 503 after answer_timeout, and the HTTP
	 * threads go on serving meanwhile. */
	assert_int_equal(req("POST", "/api/v1/cps/SLOW-01/stop", T_OPER, NULL, NULL, 0, 0, &R), 503);
	assert_string_equal(R.body, "{\"error\":\"Central did not answer in time\"}");
	assert_true(R.secs >= 0.9);
	assert_true(R.secs < 3.0);
	struct api_req r = ml_wait(API_REQ_STOP, &from);
	/* A late answer is ignored. */
	api_reply(A, r.id, 202, "{\"sent\":true}");
	api_reply(A, 987654, 202, "{\"sent\":true}");
	assert_int_equal(GET("/api/v1/cps", T_READ), 200);
}

static void test_timed_out_never_reaches_main_loop(void **state)
{
	(void)state;
	start_api();
	/* The main loop is busy: the command times out while still queued,
	 * and is then never handed over (the client was told it failed). */
	__atomic_store_n(&ML.paused, 1, __ATOMIC_RELAXED);
	assert_int_equal(req("POST", "/api/v1/cps/MAD-01/stop", T_OPER, NULL, NULL, 0, 0, &R), 503);
	__atomic_store_n(&ML.paused, 0, __ATOMIC_RELAXED);
	assert_int_equal(req("POST", "/api/v1/cps/MAD-01/resume", T_OPER, NULL, NULL, 0, 0, &R), 202);
	size_t from = 0;
	ml_wait(API_REQ_RESUME, &from);
	pthread_mutex_lock(&ML.m);
	for (size_t i = 0; i < ML.nseen; i++)
		assert_int_not_equal(ML.seen[i].kind, API_REQ_STOP);
	pthread_mutex_unlock(&ML.m);
}

static void *slow_cmd(void *arg)
{
	struct resp *r = arg;
	req("POST", "/api/v1/cps/SLOW-01/revoke", T_OPER, NULL, NULL, 0, 0, r);
	return NULL;
}

static void test_stop_answers_pending(void **state)
{
	(void)state;
	CFG.answer_timeout = 30;
	start_api();
	static struct resp bg;
	pthread_t th;
	size_t from = 0;
	pthread_create(&th, NULL, slow_cmd, &bg);
	ml_wait(API_REQ_REVOKE, &from);
	double t0 = clock_mono();
	api_stop(A);
	pthread_join(th, NULL);
	assert_int_equal(bg.status, 503);
	assert_string_equal(bg.body, "{\"error\":\"Central is shutting down\"}");
	assert_true(clock_mono() - t0 < 2.0);
	assert_int_equal(GET("/api/v1/cps", T_READ), 503);
}

static void test_full_queue_refuses_at_once(void **state)
{
	(void)state;
	CFG.answer_timeout = 30;
	CFG.queue_max = 2;
	start_api();
	static struct resp bg[2];
	pthread_t th[2];
	size_t from = 0;
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, slow_cmd, &bg[i]);
	ml_wait(API_REQ_REVOKE, &from);
	ml_wait(API_REQ_REVOKE, &from);
	/* Two commands wait for the main loop: the next is refused now. */
	assert_int_equal(req("POST", "/api/v1/cps/MAD-01/stop", T_OPER, NULL, NULL, 0, 0, &R), 503);
	assert_string_equal(R.body, "{\"error\":\"Central is busy: too many commands waiting\"}");
	assert_true(R.secs < 1.0);
	/* Reads do not queue: they still answer. */
	assert_int_equal(GET("/api/v1/cps", T_READ), 200);
	api_stop(A);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(bg[i].status, 503);
	}
}

static void test_idle_connection_closed(void **state)
{
	(void)state;
	CFG.conn_timeout = 1;
	start_api();
	/* Connects and says nothing (no TLS hello): closed after the timeout,
	 * so idle sockets cannot pile up. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)api_port(A)) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	double t0 = clock_mono(), end = t0 + WAIT;
	int closed = 0;
	while (!closed && clock_mono() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		char b[256];
		/* At most a TLS alert comes before the close. */
		if (poll(&p, 1, clock_ms_until(end, 1000)) == 1 && read(fd, b, sizeof b) <= 0)
			closed = 1;
	}
	double secs = clock_mono() - t0;
	close(fd);
	assert_true(closed);
	assert_true(secs >= 0.5 && secs < 4.0);
}

static void test_body_limits(void **state)
{
	(void)state;
	start_api();
	char *big = xmalloc(20000);
	memset(big, ' ', 20000);
	big[0] = '{';
	big[19999] = '}';
	/* Announced too big: refused before the body is sent (curl waits for
	 * "100 Continue" and gets the 413 instead). */
	assert_int_equal(req("PUT", "/api/v1/weather/threshold", T_OPER, "application/json", big, 20000, EXPECT,
			     &R),
			 413);
	/* Refused for its token: the small body is read first, so the
	 * answer is never lost to a reset. */
	assert_int_equal(req("PUT", "/api/v1/weather/threshold", "bad-token-bad-token", "application/json", big,
			     16000, 0, &R),
			 401);
	/* Chunked: no length to look at, counted as it comes. */
	assert_int_equal(req("PUT", "/api/v1/weather/threshold", T_OPER, "application/json", big, 20000, CHUNKED,
			     &R),
			 413);
	assert_string_equal(R.body, "{\"error\":\"request body larger than 16384 bytes\"}");
	/* A chunked body within the limit is read whole. */
	const char *ok = "{\"threshold\":2}";
	assert_int_equal(req("PUT", "/api/v1/weather/threshold", T_OPER, "application/json", ok, strlen(ok),
			     CHUNKED, &R),
			 200);
	assert_int_equal(req("PUT", "/api/v1/weather/threshold", T_OPER, "text/plain", ok, strlen(ok), 0, &R),
			 415);
	free(big);
}

static void test_tls_versions(void **state)
{
	(void)state;
	start_api();
	assert_int_equal(req("GET", "/api/v1/cps", T_READ, NULL, NULL, 0, TLS12, &R), 200);
	assert_int_equal(req("GET", "/api/v1/cps", T_READ, NULL, NULL, 0, TLS11, &R), -1);
	assert_true(R.rc == CURLE_SSL_CONNECT_ERROR);
}

static void test_plain_http_gets_no_answer(void **state)
{
	(void)state;
	start_api();
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)api_port(A)) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	const char *get = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	assert_int_equal(write(fd, get, strlen(get)), (ssize_t)strlen(get));
	char buf[4096];
	size_t got = 0;
	int closed = 0;
	double end = clock_mono() + WAIT;
	while (!closed && clock_mono() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, clock_ms_until(end, 1000)) <= 0)
			continue;
		ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
		if (n <= 0)
			closed = 1;
		else
			got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	assert_true(closed);
	assert_null(memmem(buf, got, "HTTP/", 5));
	/* And the server is fine afterwards. */
	assert_int_equal(GET("/api/v1/cps", T_READ), 200);
}

static void test_stream_gets_notify(void **state)
{
	(void)state;
	CFG.keepalive = 0.3;
	start_api();
	api_notify_line(A, "audit", "{\"id\":1,\"action\":\"OPERATOR_STOP\"}");
	struct stream *s = stream_open();
	/* It starts with the whole picture and the recent lines. */
	assert_true(stream_wait(s, "event: cp\ndata: {\"id\":\"BCN-02\"", WAIT));
	assert_true(stream_wait(s, "event: weather\ndata: {\"threshold\":0", WAIT));
	assert_true(stream_wait(s, "event: audit\ndata: {\"id\":1,\"action\":\"OPERATOR_STOP\"}\n\n", WAIT));
	assert_true(wait_streams(1, WAIT));
	struct cp_view v;
	memset(&v, 0, sizeof v);
	xstrlcpy(v.id, "MAD-01", sizeof v.id);
	v.state = CP_SUMINISTRANDO;
	xstrlcpy(v.driver_id, "101", sizeof v.driver_id);
	double t0 = clock_mono();
	api_notify_cp(A, &v);
	assert_true(stream_wait(s, "event: cp\ndata: {\"id\":\"MAD-01\"", WAIT));
	assert_true(stream_wait(s, "\"state\":\"SUMINISTRANDO\"", WAIT));
	assert_true(clock_mono() - t0 < 1.0);
	api_notify_line(A, "request", "{\"driver_id\":\"101\",\"cp_id\":\"MAD-01\",\"outcome\":\"AUTH_OK\"}");
	assert_true(stream_wait(s, "event: request\ndata: {\"driver_id\":\"101\"", WAIT));
	api_notify_line(A, "nonsense", "{}");
	/* The page's own count is in /metrics. */
	assert_int_equal(GET("/metrics", T_READ), 200);
	assert_non_null(strstr(R.body, "evc_api_event_streams 1\n"));
	/* A client gone is noticed at the next keepalives and let go. */
	stream_close(s);
	assert_true(wait_streams(0, WAIT));
}

/* A TLS client that asks for the stream and then never reads. */
struct lazy {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

static void lazy_open(struct lazy *l)
{
	l->fd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096;
	setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)api_port(A)) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(l->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	l->ctx = SSL_CTX_new(TLS_client_method());
	assert_int_equal(SSL_CTX_load_verify_locations(l->ctx, ca, NULL), 1);
	SSL_CTX_set_verify(l->ctx, SSL_VERIFY_PEER, NULL);
	l->ssl = SSL_new(l->ctx);
	SSL_set_fd(l->ssl, l->fd);
	SSL_set1_host(l->ssl, "localhost");
	assert_int_equal(SSL_connect(l->ssl), 1);
	const char *get = "GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " T_READ "\r\n\r\n";
	assert_int_equal(SSL_write(l->ssl, get, (int)strlen(get)), (int)strlen(get));
}

static void lazy_close(struct lazy *l)
{
	SSL_free(l->ssl);
	SSL_CTX_free(l->ctx);
	close(l->fd);
}

static void test_slow_stream_dropped(void **state)
{
	(void)state;
	CFG.sse_queue_bytes = 64 * 1024;
	start_api();
	struct stream *good = stream_open();
	assert_true(stream_wait(good, "\"id\":\"SLOW-01\"", WAIT));
	struct lazy lazy;
	lazy_open(&lazy);
	assert_true(wait_streams(2, WAIT));

	/* Batches of changes; the good client must get each batch promptly
	 * while the lazy one falls behind until it is dropped. */
	struct cp_view v;
	memset(&v, 0, sizeof v);
	xstrlcpy(v.id, "MAD-01", sizeof v.id);
	xstrlcpy(v.location, "Madrid, a long enough location to make each event a few hundred bytes long",
		 sizeof v.location);
	v.state = CP_SUMINISTRANDO;
	int batches = 0, dropped = 0;
	double worst = 0, t_start = clock_mono();
	while (!dropped && batches < 2000) {
		char mark[64];
		for (int i = 0; i < 50; i++) {
			snprintf(v.caption, sizeof v.caption, "m%d-%d", batches, i);
			api_notify_cp(A, &v);
		}
		snprintf(mark, sizeof mark, "\"caption\":\"m%d-49\"", batches);
		double t0 = clock_mono();
		if (!stream_wait(good, mark, WAIT))
			fail_msg("the good stream stalled at batch %d", batches);
		if (clock_mono() - t0 > worst)
			worst = clock_mono() - t0;
		batches++;
		dropped = api_sse_clients(A) == 1;
	}
	print_message("# lazy stream dropped after %d batches of 50 events (%.2f s); good stream's worst batch %.3f s\n",
		      batches, clock_mono() - t_start, worst);
	assert_true(dropped);
	assert_true(worst < 1.0);
	/* The good one still gets changes after the drop. */
	snprintf(v.caption, sizeof v.caption, "after-drop");
	api_notify_cp(A, &v);
	assert_true(stream_wait(good, "\"caption\":\"after-drop\"", WAIT));
	lazy_close(&lazy);
	stream_close(good);
}

/* ---------------------------------------------------------------- chromium */

/* Headless Chromium driven over the DevTools protocol on a pipe
 * (--remote-debugging-pipe: commands on its fd 3, answers on its fd 4,
 * NUL-separated JSON), so the test reads the live DOM when it wants. */
struct cdp {
	pid_t pid;
	int wfd, rfd;
	char *buf;
	size_t len, cap;
	int next_id;
	char session[128];
};

static void cdp_start(struct cdp *c)
{
	int to[2], from[2];
	memset(c, 0, sizeof *c);
	assert_int_equal(pipe(to), 0);
	assert_int_equal(pipe(from), 0);
	char ud[160], pin[200];
	snprintf(ud, sizeof ud, "--user-data-dir=%s/chromium", dir);
	snprintf(pin, sizeof pin, "--ignore-certificate-errors-spki-list=%s", spki);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(to[0], 3);
		dup2(from[1], 4);
		dup2(null, 1);
		dup2(null, 2);
		for (int fd = 5; fd < 1024; fd++)
			close(fd);
		execlp("chromium", "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		       "--remote-debugging-pipe", "--window-size=1100,700", ud, pin, "about:blank", (char *)NULL);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	c->wfd = to[1];
	c->rfd = from[0];
}

/* Send method(params) in the attached session (if any) and return the
 * answer's "result" (caller json_decref's), NULL on error or timeout. */
static json_t *cdp_call(struct cdp *c, const char *method, json_t *params)
{
	int id = ++c->next_id;
	json_t *m = json_pack("{sissso}", "id", id, "method", method, "params", params ? params : json_object());
	if (c->session[0])
		json_object_set_new(m, "sessionId", json_string(c->session));
	char *txt = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	size_t n = strlen(txt) + 1; /* with its NUL */
	int ok = write(c->wfd, txt, n) == (ssize_t)n;
	free(txt);
	if (!ok)
		return NULL;
	double end = clock_mono() + 20;
	for (;;) {
		char *nul;
		while ((nul = c->buf ? memchr(c->buf, '\0', c->len) : NULL) != NULL) {
			json_t *j = json_loads(c->buf, 0, NULL);
			size_t used = (size_t)(nul - c->buf) + 1;
			memmove(c->buf, c->buf + used, c->len - used);
			c->len -= used;
			if (j != NULL && json_integer_value(json_object_get(j, "id")) == id) {
				json_t *r = json_incref(json_object_get(j, "result"));
				json_decref(j);
				return r;
			}
			json_decref(j);
		}
		struct pollfd p = { c->rfd, POLLIN, 0 };
		if (clock_mono() > end || poll(&p, 1, clock_ms_until(end, 1000)) < 0)
			return NULL;
		if (!(p.revents & (POLLIN | POLLHUP)))
			continue;
		if (c->len + 65536 > c->cap) {
			c->cap = (c->len + 65536) * 2;
			c->buf = xrealloc(c->buf, c->cap);
		}
		ssize_t r = read(c->rfd, c->buf + c->len, c->cap - c->len);
		if (r <= 0)
			return NULL;
		c->len += (size_t)r;
	}
}

/* The string value of expression in the page ("" if not a string). */
static void cdp_eval(struct cdp *c, const char *expr, char *out, size_t n)
{
	json_t *r = cdp_call(c, "Runtime.evaluate", json_pack("{sssb}", "expression", expr, "returnByValue", 1));
	const char *v = json_string_value(json_object_get(json_object_get(r, "result"), "value"));
	snprintf(out, n, "%s", v ? v : "");
	json_decref(r);
}

/* Evaluate until it gives want (or secs pass); the seconds it took, or -1. */
static double cdp_wait(struct cdp *c, const char *expr, const char *want, double secs)
{
	double t0 = clock_mono();
	char got[512] = "";
	while (clock_mono() - t0 < secs) {
		cdp_eval(c, expr, got, sizeof got);
		if (strcmp(got, want) == 0)
			return clock_mono() - t0;
		struct pollfd p = { -1, 0, 0 };
		poll(&p, 0, 10); /* between two looks at the DOM */
	}
	print_message("# page: '%s' gave '%s', wanted '%s'\n", expr, got, want);
	return -1;
}

static void cdp_stop(struct cdp *c)
{
	json_decref(cdp_call(c, "Browser.close", NULL));
	close(c->wfd);
	close(c->rfd);
	double end = clock_mono() + 10;
	int st;
	while (waitpid(c->pid, &st, WNOHANG) == 0) {
		if (clock_mono() > end) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &st, 0);
			break;
		}
		struct pollfd p = { -1, 0, 0 };
		poll(&p, 0, 20); /* waiting for a child with a deadline */
	}
	free(c->buf);
}

/* The real page in headless Chromium against the module: the CSP lets its
 * script and style run, the token comes from the fragment and leaves the
 * address bar, the grid is drawn from the stream, a change shows within
 * 1 s, and a screenshot is saved. */
static void test_page_in_chromium(void **state)
{
	(void)state;
	start_api();
	api_notify_line(A, "audit", "{\"id\":3,\"ts\":1700000000,\"actor\":\"api:ops\",\"action\":\"OPERATOR_STOP\","
				    "\"cp_id\":\"MAD-01\",\"detail\":\"from the API\"}");
	struct cdp c;
	cdp_start(&c);
	char url[256], v[512];
	snprintf(url, sizeof url, "https://localhost:%d/#token=%s", api_port(A), T_READ);
	json_t *r = cdp_call(&c, "Target.createTarget", json_pack("{ss}", "url", url));
	if (r == NULL)
		fail_msg("chromium does not answer on its DevTools pipe (installed? scripts/setup)");
	const char *target = json_string_value(json_object_get(r, "targetId"));
	assert_non_null(target);
	json_t *s = cdp_call(&c, "Target.attachToTarget", json_pack("{sssb}", "targetId", target, "flatten", 1));
	json_decref(r);
	assert_non_null(s);
	xstrlcpy(c.session, json_string_value(json_object_get(s, "sessionId")), sizeof c.session);
	json_decref(s);

	assert_true(cdp_wait(&c, "document.body ? document.body.dataset.conn + '|' + "
				 "document.getElementById('grid').dataset.count : ''",
			     "live|3", 15) >= 0);
	assert_true(cdp_wait(&c, "document.getElementById('cp-MAD-01').dataset.state", "ACTIVADO", 1) >= 0);
	assert_true(cdp_wait(&c, "document.querySelector('#cp-MAD-01 .cp-price').textContent", "0.35 \u20ac/kWh", 1) >=
		    0);
	assert_true(cdp_wait(&c, "document.querySelector('#audit li.audit').dataset.action", "OPERATOR_STOP", 1) >= 0);
	/* The CSP let the style in too: a card has the panel's green. */
	assert_true(cdp_wait(&c, "getComputedStyle(document.getElementById('cp-MAD-01')).backgroundColor",
			     "rgb(47, 179, 68)", 1) >= 0);
	cdp_eval(&c, "location.href", v, sizeof v);
	assert_null(strstr(v, "token"));
	assert_true(cdp_wait(&c, "String(sessionStorage.getItem('evc_token') === '" T_READ "')", "true", 1) >= 0);

	/* A change after load: on screen within a second. */
	struct cp_view cv;
	memset(&cv, 0, sizeof cv);
	xstrlcpy(cv.id, "BCN-02", sizeof cv.id);
	xstrlcpy(cv.location, "Barcelona Sants", sizeof cv.location);
	cv.price = 0.4;
	cv.state = CP_RESERVADO;
	cv.link = CP_LINK_PLAIN;
	xstrlcpy(cv.caption, "Reserved for 102", sizeof cv.caption);
	api_notify_cp(A, &cv);
	double took = cdp_wait(&c,
			       "(function(){var c=document.getElementById('cp-BCN-02');return c.dataset.state+'|'+"
			       "c.dataset.link+'|'+c.querySelector('.cp-caption').textContent})()",
			       "RESERVADO|plain|Reserved for 102", 1.0);
	print_message("# page showed the change after %.3f s\n", took);
	assert_true(took >= 0);

	/* The weather line and the requests list follow their own events. */
	char wx[256];
	snprintf(wx, sizeof wx,
		 "{\"threshold\":0,\"cities\":[{\"city\":\"Valencia\",\"temperature\":-2.5,\"at\":%.0f,"
		 "\"alert\":true,\"cps\":[\"BCN-02\"]}]}",
		 clock_wall());
	api_notify_line(A, "weather", wx);
	assert_true(cdp_wait(&c,
			     "(function(){var w=document.querySelector('#weather .wx-city[data-city=\"Valencia\"]');"
			     "return w?w.dataset.alert+'|'+w.dataset.stale+'|'+w.textContent:''})()",
			     "true|false|Valencia -2.5 \u00b0C ALERT [BCN-02]", 1.0) >= 0);
	api_notify_line(A, "request", "{\"ts\":1700000000,\"driver_id\":\"102\",\"cp_id\":\"BCN-02\","
				      "\"outcome\":\"AUTH_OK\"}");
	assert_true(cdp_wait(&c, "(function(){var l=document.querySelector('#requests li.req');"
				 "return l?l.textContent.slice(9):''})()",
			     "driver 102 \u2192 BCN-02: AUTH_OK", 1.0) >= 0);

	json_t *shot = cdp_call(&c, "Page.captureScreenshot", json_pack("{ss}", "format", "png"));
	const char *b64 = json_string_value(json_object_get(shot, "data"));
	assert_non_null(b64);
	size_t bl = strlen(b64);
	unsigned char *png = xmalloc(bl);
	int n = EVP_DecodeBlock(png, (const unsigned char *)b64, (int)bl);
	assert_true(n > 1000);
	assert_memory_equal(png, "\x89PNG", 4);
	char path[160];
	snprintf(path, sizeof path, "%s/page.png", dir);
	FILE *f = fopen(path, "wb");
	fwrite(png, 1, (size_t)n, f);
	fclose(f);
	free(png);
	json_decref(shot);

	/* Central goes away and comes back on the same port: the page says
	 * so, reconnects by itself and starts over from the new picture. */
	int port = api_port(A);
	teardown(NULL);
	assert_true(cdp_wait(&c, "document.body.dataset.conn", "retry", 5) >= 0);
	CFG.port = port;
	start_api();
	assert_true(cdp_wait(&c, "document.body.dataset.conn + '|' + document.getElementById('cp-BCN-02').dataset.state",
			     "live|ACTIVADO", 10) >= 0);

	/* A refused token: the page forgets it and asks, once. */
	snprintf(url, sizeof url, "https://localhost:%d/#token=not-the-token-at-all", port);
	json_decref(cdp_call(&c, "Page.navigate", json_pack("{ss}", "url", url)));
	assert_true(cdp_wait(&c, "document.body.dataset.conn + '|' + document.getElementById('login').hidden + '|' + "
				 "sessionStorage.getItem('evc_token')",
			     "login|false|null", 10) >= 0);
	/* Typed into the form, the right one gets the grid. */
	json_decref(cdp_call(&c, "Runtime.evaluate",
			     json_pack("{ss}", "expression",
				       "document.getElementById('token-input').value='" T_READ "';"
				       "document.getElementById('token-submit').click()")));
	assert_true(cdp_wait(&c, "document.body.dataset.conn + '|' + document.getElementById('login').hidden",
			     "live|true", 10) >= 0);
	cdp_stop(&c);
}

static void test_refuses_open_secrets(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	chmod(tokens, 0644);
	assert_null(api_new(&CFG, err));
	assert_non_null(strstr(err, "mode 0644"));
	assert_non_null(strstr(err, tokens));
	chmod(tokens, 0600);
	chmod(key, 0640);
	assert_null(api_new(&CFG, err));
	assert_non_null(strstr(err, "mode 0640"));
	assert_non_null(strstr(err, key));
	chmod(key, 0600);
	/* A port already taken is reported by api_new, not later. */
	start_api();
	struct api_config c2 = CFG;
	c2.port = api_port(A);
	assert_null(api_new(&c2, err));
	assert_non_null(strstr(err, "Address already in use"));
	c2.port = 0;
	c2.listen = "not-an-address";
	assert_null(api_new(&c2, err));
	assert_non_null(strstr(err, "not an IP address"));
}

static void test_ipv6_listen(void **state)
{
	(void)state;
	CFG.listen = "::1";
	char err[EVC_ERR_LEN];
	struct api *a = api_new(&CFG, err);
	if (a == NULL) {
		/* A machine without IPv6 loopback is told apart from a failure. */
		assert_non_null(strstr(err, "Cannot assign requested address"));
		return;
	}
	api_free(a);
	start_api();
	/* localhost resolved to ::1 so the certificate's name still fits. */
	struct curl_slist *res = NULL, *hl = NULL;
	char map[64], url[128];
	snprintf(map, sizeof map, "localhost:%d:[::1]", api_port(A));
	res = curl_slist_append(res, map);
	CURL *e = easy("GET", "/api/v1/cps", NULL, NULL, BY_NAME, &hl, url, sizeof url);
	curl_easy_setopt(e, CURLOPT_RESOLVE, res);
	memset(&R, 0, sizeof R);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &R);
	assert_int_equal(curl_easy_perform(e), CURLE_OK);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &R.status);
	char *ip = NULL;
	curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &ip);
	assert_string_equal(ip, "::1");
	curl_easy_cleanup(e);
	curl_slist_free_all(hl);
	curl_slist_free_all(res);
	assert_int_equal(R.status, 401);
	size_t from = 0;
	struct api_req r = ml_wait(API_REQ_DENIED, &from);
	assert_string_equal(r.source_ip, "::1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_over_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_over_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commands_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unanswered_gets_503, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timed_out_never_reaches_main_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_answers_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_queue_refuses_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_connection_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain_http_gets_no_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_gets_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_stream_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_in_chromium, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_open_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_listen, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
