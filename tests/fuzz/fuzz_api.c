// fuzz-sources: src/central/api_handler.c src/central/api_tokens.c src/central/api_json.c src/common/msg.c src/common/utf8.c src/common/state.c src/common/xalloc.c src/common/err.c
// fuzz-libs: -ljansson -lsqlite3 -lcrypto
/* libFuzzer target for Central's API request handler (api_handler.c), as
 * MHD would call it: no sockets, a fixed snapshot and a temp database.
 * Input: lines "METHOD\nURL\nAUTHORIZATION\nCONTENT-TYPE\n" then the body;
 * "-" for a header means absent, "R" / "O" / "W" stand for the read,
 * operate and weather tokens (so the fuzzer gets past the check). The
 * query is split at '&' and '=' as MHD does. An input starting with "T:"
 * is a tokens file instead.
 * Checks: a known status; JSON answers parse and errors are {"error":..};
 * no answer or note holds a token; commands' strings are terminated and
 * their values in range; notes are printable ASCII. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "evc/xalloc.h"
#include "src/central/api_handler.h"
#include "src/central/api_tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                       \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			fprintf(stderr, "fuzz_api: check failed: %s (line %d)\n", #c, __LINE__);                    \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

#define T_READ "fuzz-read-token-0123456789"
#define T_OPER "fuzz-operate-token-0123456789"
#define T_WX "fuzz-weather-token-0123456789"
static const char TOKENS[] = "r read " T_READ "\no operate " T_OPER "\nw weather " T_WX "\n";
static const char PAGE[] = "<html><style>p{}</style><script>1</script></html>";

static struct api_handler *H;
static double NOW = 1;
static char DIR_[] = "/tmp/fuzz_api.XXXXXX";

static void cleanup(void)
{
	char cmd[64];
	api_handler_free(H);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_api: could not remove %s\n", DIR_);
}

static void init(void)
{
	char db[64], err[EVC_ERR_LEN];
	CHECK(mkdtemp(DIR_) != NULL);
	atexit(cleanup);
	snprintf(db, sizeof db, "%s/c.db", DIR_);
	sqlite3 *s;
	CHECK(sqlite3_open(db, &s) == SQLITE_OK);
	CHECK(sqlite3_exec(s,
			   "CREATE TABLE sessions(id TEXT PRIMARY KEY, cp_id TEXT, driver_id TEXT, kwh REAL,"
			   " importe REAL, price REAL, outcome TEXT, reason TEXT, started_at REAL, ended_at REAL);"
			   "CREATE TABLE cp_events(id INTEGER PRIMARY KEY, cp_id TEXT, ts REAL, event TEXT, detail TEXT,"
			   " prev INTEGER);"
			   "CREATE TABLE charging_points(id TEXT PRIMARY KEY, last_event INTEGER);"
			   "CREATE TABLE audit_log(id INTEGER PRIMARY KEY, ts REAL, actor TEXT, source_ip TEXT,"
			   " action TEXT, cp_id TEXT, detail TEXT);"
			   "INSERT INTO sessions VALUES('s1','MAD-01','101',1.5,0.5,0.35,'TICKET',NULL,1,2);"
			   "INSERT INTO sessions VALUES('s2','MAD-01','102',0,0,0.35,NULL,NULL,NULL,NULL);"
			   "INSERT INTO cp_events(cp_id, ts, event, detail, prev) VALUES('MAD-01', 1, 'STATE', 'x', 0);"
			   "INSERT INTO charging_points VALUES('MAD-01', 1);"
			   "INSERT INTO audit_log(ts, actor, action) VALUES(5, 'operator', 'OPERATOR_STOP');",
			   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(s);
	struct api_tokens *t = api_tokens_parse(TOKENS, strlen(TOKENS), "fuzz", err);
	CHECK(t != NULL);
	H = api_handler_new(t, db, (const unsigned char *)PAGE, strlen(PAGE), err);
	CHECK(H != NULL);
	struct api_snapshot *sn = api_snapshot_new(2);
	xstrlcpy(sn->cps[0].id, "BCN-02", sizeof sn->cps[0].id);
	xstrlcpy(sn->cps[1].id, "MAD-01", sizeof sn->cps[1].id);
	xstrlcpy(sn->cps[1].driver_id, "101", sizeof sn->cps[1].driver_id);
	sn->cps[1].state = CP_SUMINISTRANDO;
	sn->cps[1].kwh = NAN; /* a broken figure must not break the answer */
	sn->weather_json = xstrdup("{\"threshold\":0,\"cities\":[]}");
	api_handler_publish(H, sn);
}

static int terminated(const char *s, size_t n)
{
	return memchr(s, '\0', n) != NULL;
}

static void check_printable(const char *s, size_t n)
{
	CHECK(terminated(s, n));
	for (; *s; s++)
		CHECK((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f);
}

static void no_token(const char *p, size_t n)
{
	CHECK(memmem(p, n, T_READ, strlen(T_READ)) == NULL);
	CHECK(memmem(p, n, T_OPER, strlen(T_OPER)) == NULL);
	CHECK(memmem(p, n, T_WX, strlen(T_WX)) == NULL);
}

/* Next line of [*p, end) as a new string (caller frees). */
static char *take_line(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *e = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = e ? (size_t)(e - *p) : (size_t)(end - *p);
	char *s = xstrndup((const char *)*p, n);
	*p = e ? e + 1 : end;
	return s;
}

static const char *header(const char *v, char *buf, size_t n)
{
	if (strcmp(v, "-") == 0)
		return NULL;
	const char *t = strcmp(v, "R") == 0 ? T_READ : strcmp(v, "O") == 0 ? T_OPER : strcmp(v, "W") == 0 ? T_WX : NULL;
	if (t != NULL) {
		snprintf(buf, n, "Bearer %s", t);
		return buf;
	}
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (H == NULL)
		init();
	if (size >= 2 && data[0] == 'T' && data[1] == ':') {
		char err[EVC_ERR_LEN] = "";
		struct api_tokens *t = api_tokens_parse((const char *)data + 2, size - 2, "f", err);
		if (t == NULL)
			CHECK(err[0] != '\0' && strlen(err) < EVC_ERR_LEN);
		api_tokens_free(t);
		return 0;
	}
	const uint8_t *p = data, *end = data + size;
	char *method = take_line(&p, end), *url = take_line(&p, end), *auth = take_line(&p, end),
	     *ctype = take_line(&p, end);
	char abuf[128];

	struct api_kv args[16];
	size_t nargs = 0;
	char *q = strchr(url, '?');
	if (q != NULL) {
		*q++ = '\0';
		for (char *save, *a = strtok_r(q, "&", &save); a && nargs < 16; a = strtok_r(NULL, "&", &save)) {
			char *eq = strchr(a, '=');
			if (eq)
				*eq++ = '\0';
			args[nargs].key = a;
			args[nargs].value = eq;
			nargs++;
		}
	}
	size_t blen = (size_t)(end - p);
	struct api_hreq in = {
		.method = method,
		.path = url,
		.args = args,
		.nargs = nargs,
		.authorization = header(auth, abuf, sizeof abuf),
		.content_type = strcmp(ctype, "-") == 0 ? NULL : ctype,
		.content_length = (long long)blen,
		.body = (const char *)p,
		.body_len = blen > API_BODY_MAX ? API_BODY_MAX : blen,
		.body_overflow = blen > API_BODY_MAX,
		.source_ip = size % 2 ? "127.0.0.1" : "::1",
		.now = NOW,
	};
	/* Blocks lapse often enough that most inputs reach the routes. */
	NOW += size % 3 ? 7 : 0.1;
	struct api_hres r;
	api_handler_handle(H, &in, &r);
	static const int known[] = { 200, 400, 401, 403, 404, 405, 413, 415, 429, 500, 503 };
	switch (r.action) {
	case API_H_RESPOND: {
		int ok = 0;
		for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
			ok |= r.status == known[i];
		CHECK(ok);
		CHECK(r.body != NULL && r.body_len > 0);
		if (!r.is_page)
			no_token(r.body, r.body_len);
		if (strncmp(r.content_type, "application/json", 16) == 0) {
			json_error_t je;
			json_t *j = json_loadb(r.body, r.body_len, 0, &je);
			CHECK(j != NULL);
			if (r.status >= 400)
				CHECK(json_is_object(j) && json_object_size(j) == 1 &&
				      json_is_string(json_object_get(j, "error")));
			json_decref(j);
		}
		break;
	}
	case API_H_COMMAND:
		CHECK(terminated(r.cmd.city, sizeof r.cmd.city));
		CHECK(terminated(r.cmd.error, sizeof r.cmd.error));
		CHECK(terminated(r.cmd.cp_id, sizeof r.cmd.cp_id));
		CHECK(terminated(r.cmd.token_name, sizeof r.cmd.token_name));
		check_printable(r.cmd.source_ip, sizeof r.cmd.source_ip);
		CHECK(r.cmd.token_name[0] != '\0');
		CHECK(isfinite(r.cmd.value) && fabs(r.cmd.value) <= 100);
		if (r.cmd.kind == API_REQ_WEATHER_READING)
			CHECK(r.cmd.city[0] != '\0');
		break;
	case API_H_EVENTS:
		CHECK(r.status == 200);
		break;
	case API_H_BODY:
		CHECK(!"precheck state left after handle");
		break;
	}
	if (r.has_note) {
		CHECK(r.note.kind == API_REQ_DENIED);
		CHECK(r.note.status == 401 || r.note.status == 403 || r.note.status == 429);
		check_printable(r.note.detail, sizeof r.note.detail);
		check_printable(r.note.token_name, sizeof r.note.token_name);
		no_token(r.note.detail, strlen(r.note.detail));
	}
	api_hres_clear(&r);
	free(method);
	free(url);
	free(auth);
	free(ctype);
	return 0;
}
