/* The API behind libmicrohttpd: MHD's polling threads run the handler
 * (api_handler.c); commands wait, suspended, in a table until the main
 * loop answers through api_reply or the timer thread answers 503 for it;
 * event streams are MHD content readers fed from bounded per-client
 * queues.
 *
 * Locks: q_lock (request queue and pending commands) and sse_lock (event
 * streams). MHD_suspend_connection is called with one of them held (so a
 * reply cannot overtake the suspension); MHD_resume_connection is always
 * called with none held, by whoever moved the entry out of its waiting
 * state, so every suspension has exactly one resume. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "evc/clock.h"
#include "evc/log.h"
#include "evc/xalloc.h"
#include "src/central/api.h"
#include "src/central/api_handler.h"
#include "src/central/api_page.h"

#define DEFAULT_LISTEN "127.0.0.1"
#define DEFAULT_TIMEOUT 5.0
#define DEFAULT_CONNS 256
#define DEFAULT_SSE 32
#define DEFAULT_SSE_BYTES (2u * 1024 * 1024)
#define DEFAULT_QUEUE 256
#define DEFAULT_CONN_TIMEOUT 15.0
#define DEFAULT_KEEPALIVE 10.0
#define LINES_KEPT 20           /* request / audit lines replayed to a new stream */
#define DISCARD_MAX (1024 * 1024) /* bytes of an oversized body read before closing */
#define MAX_ARGS 32
#define PEM_MAX (64 * 1024)
/* GnuTLS: TLS 1.2 and 1.3 only (evcharging(7) SECURITY). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct blob {
	unsigned refs; /* under sse_lock */
	size_t len;
	char data[];
};

struct sse_client {
	struct api *api;
	struct MHD_Connection *conn;
	struct blob **q;
	size_t qhead, qlen, qcap, off; /* off: bytes of q[qhead] already sent */
	size_t bytes, limit;            /* unsent bytes and their bound */
	int suspended, dropped;
	struct sse_client *next, **prevp;
};

enum pend_state { PEND_WAITING, PEND_ANSWERED };

struct pending {
	uint64_t id;
	struct MHD_Connection *conn;
	void *rq;
	double deadline;
	enum pend_state state;
	int status;
	char *body;
};

struct qent {
	struct api_req req;
	int cancelled;
};

struct api {
	char *listen;
	int port, lfd, evfd;
	double answer_timeout, conn_timeout, keepalive;
	int max_conns, max_sse;
	size_t sse_bytes, queue_max;
	char *cert_pem, *key_pem;
	size_t key_len;
	struct api_handler *h;
	struct MHD_Daemon *d;

	pthread_mutex_t q_lock;
	pthread_cond_t q_cond; /* wakes the timer thread */
	struct qent *ring;
	size_t rhead, rlen, rcap;
	struct pending *pend;
	size_t npend;
	uint64_t next_id;
	uint64_t notes_dropped;
	int stopping, timer_quit, timer_started;
	pthread_t timer;

	pthread_mutex_t sse_lock;
	struct sse_client *clients;
	size_t nclients;
	int sse_stopping;
	struct blob *lines[2][LINES_KEPT]; /* 0 request, 1 audit: ring, oldest at lhead */
	size_t lhead[2], llen[2];
	double next_keepalive;
};

/* ---------------------------------------------------------------- files */

static char *read_pem(const char *path, int secret, size_t *len, char err[EVC_ERR_LEN])
{
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		evc_seterr(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (secret && api_check_secret_mode(fd, path, err) != 0)
		goto fail;
	buf = xmalloc(PEM_MAX + 1);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, PEM_MAX - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			evc_seterr(err, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == PEM_MAX) {
			evc_seterr(err, "%s: larger than %d bytes", path, PEM_MAX);
			goto fail;
		}
	}
	buf[n] = '\0';
	if (strstr(buf, "-----BEGIN ") == NULL) {
		evc_seterr(err, "%s: not a PEM file", path);
		goto fail;
	}
	close(fd);
	*len = n;
	return buf;
fail:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, PEM_MAX + 1);
		free(buf);
	}
	close(fd);
	return NULL;
}

static int bind_listen(const char *host, int port, int *out_port, char err[EVC_ERR_LEN])
{
	struct addrinfo hints, *ai = NULL;
	char ps[16];
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(ps, sizeof ps, "%d", port);
	int rc = getaddrinfo(host, ps, &hints, &ai);
	if (rc != 0) {
		evc_seterr(err, "--api-listen %s: not an IP address (%s)", host, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		evc_seterr(err, "socket: %s", strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
		evc_seterr(err, "API on %s port %d: %s", host, port, strerror(errno));
		close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						   : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* ---------------------------------------------------------------- queue */

/* With q_lock held: post r (a command with its pending entry, or a note). */
static int ring_push(struct api *a, const struct api_req *r)
{
	if (a->rlen == a->rcap)
		return -1;
	struct qent *e = &a->ring[(a->rhead + a->rlen) % a->rcap];
	e->req = *r;
	e->cancelled = 0;
	a->rlen++;
	uint64_t one = 1;
	if (write(a->evfd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_warn("api: eventfd: %s", strerror(errno));
	return 0;
}

static void post_note(struct api *a, const struct api_req *note)
{
	pthread_mutex_lock(&a->q_lock);
	if (a->stopping || ring_push(a, note) != 0) {
		/* The queue is full of commands: the audit row is lost, say so. */
		if (a->notes_dropped++ % 1000 == 0)
			log_warn("api: audit note dropped, queue full (%llu so far)",
				 (unsigned long long)a->notes_dropped);
	}
	pthread_mutex_unlock(&a->q_lock);
}

size_t api_drain(struct api *a, struct api_req *out, size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&a->q_lock);
	while (n < max && a->rlen > 0) {
		struct qent *e = &a->ring[a->rhead];
		a->rhead = (a->rhead + 1) % a->rcap;
		a->rlen--;
		if (!e->cancelled)
			out[n++] = e->req;
	}
	/* Reset the eventfd only once the queue is empty, under the lock a
	 * poster takes, so a wake-up is never lost. */
	if (a->rlen == 0) {
		uint64_t v;
		if (read(a->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
			log_warn("api: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&a->q_lock);
	return n;
}

int api_event_fd(const struct api *a)
{
	return a->evfd;
}

static struct pending *pend_find(struct api *a, uint64_t id)
{
	for (size_t i = 0; i < a->npend; i++)
		if (a->pend[i].id == id)
			return &a->pend[i];
	return NULL;
}

/* With q_lock held: answer a waiting entry; the caller resumes its conn. */
static struct MHD_Connection *pend_answer(struct api *a, struct pending *p, int status, const char *json)
{
	p->state = PEND_ANSWERED;
	p->status = status;
	p->body = xstrdup(json);
	/* Not yet taken by the main loop: it must never act on it now. */
	for (size_t i = 0; i < a->rlen; i++) {
		struct qent *e = &a->ring[(a->rhead + i) % a->rcap];
		if (e->req.id == p->id && e->req.kind != API_REQ_DENIED)
			e->cancelled = 1;
	}
	return p->conn;
}

void api_reply(struct api *a, uint64_t id, int status, const char *json)
{
	struct MHD_Connection *c = NULL;
	pthread_mutex_lock(&a->q_lock);
	struct pending *p = pend_find(a, id);
	if (p != NULL && p->state == PEND_WAITING) {
		if (json == NULL)
			json = status < 400 ? "{}" : "{\"error\":\"Central refused the request\"}";
		c = pend_answer(a, p, status, json);
	}
	pthread_mutex_unlock(&a->q_lock);
	if (c != NULL)
		MHD_resume_connection(c);
}

/* Timer thread: commands past their deadline get 503; quiet streams a
 * keepalive so a dead client is noticed and idle proxies keep them. */
static void sse_keepalive(struct api *a, double now);

static void *timer_main(void *arg)
{
	struct api *a = arg;
	struct MHD_Connection *wake[64];
	pthread_mutex_lock(&a->q_lock);
	while (!a->timer_quit) {
		double now = clock_mono();
		size_t nw = 0;
		/* Only this thread moves next_keepalive once started. */
		double next = a->next_keepalive < now + 1.0 ? a->next_keepalive : now + 1.0;
		for (size_t i = 0; i < a->npend; i++) {
			struct pending *p = &a->pend[i];
			if (p->state != PEND_WAITING)
				continue;
			if (p->deadline <= now && nw < sizeof wake / sizeof wake[0])
				wake[nw++] = pend_answer(a, p, 503, "{\"error\":\"Central did not answer in time\"}");
			else if (p->deadline < next)
				next = p->deadline;
		}
		if (nw > 0) {
			pthread_mutex_unlock(&a->q_lock);
			for (size_t i = 0; i < nw; i++)
				MHD_resume_connection(wake[i]);
			pthread_mutex_lock(&a->q_lock);
			continue;
		}
		pthread_mutex_unlock(&a->q_lock);
		sse_keepalive(a, now);
		pthread_mutex_lock(&a->q_lock);
		if (a->timer_quit)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		double wait = next - now;
		if (wait < 0.001)
			wait = 0.001;
		ts.tv_sec += (time_t)wait;
		ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&a->q_cond, &a->q_lock, &ts);
	}
	pthread_mutex_unlock(&a->q_lock);
	return NULL;
}

/* ---------------------------------------------------------------- streams */

static struct blob *blob_new(const char *kind, const char *json)
{
	size_t jl = strlen(json);
	struct blob *b = xmalloc(sizeof *b + jl + strlen(kind) + 20);
	int n = sprintf(b->data, "event: %s\ndata: %s\n\n", kind, json);
	/* One data line: a newline inside would end the event early. */
	for (char *p = b->data + strlen(kind) + 13; p < b->data + n - 2; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	b->len = (size_t)n;
	b->refs = 1;
	return b;
}

static void blob_put(struct blob *b)
{
	if (b != NULL && --b->refs == 0)
		free(b);
}

/* With sse_lock held. */
static void client_clear(struct sse_client *c)
{
	for (size_t i = 0; i < c->qlen; i++)
		blob_put(c->q[(c->qhead + i) % c->qcap]);
	free(c->q);
	c->q = NULL;
	c->qhead = c->qlen = c->qcap = c->off = c->bytes = 0;
}

/* With sse_lock held: queue b for c, or drop c if it is too far behind. */
static void client_push(struct api *a, struct sse_client *c, struct blob *b)
{
	if (c->dropped)
		return;
	if (c->bytes + b->len > c->limit) {
		log_warn("api: event stream dropped: %zu bytes unsent", c->bytes);
		c->dropped = 1;
		client_clear(c);
		a->nclients--;
		api_handler_set_streams(a->h, a->nclients);
		return;
	}
	if (c->qlen == c->qcap) {
		size_t ncap = c->qcap ? c->qcap * 2 : 64;
		struct blob **nq = xcalloc(ncap, sizeof *nq);
		for (size_t i = 0; i < c->qlen; i++)
			nq[i] = c->q[(c->qhead + i) % c->qcap];
		free(c->q);
		c->q = nq;
		c->qcap = ncap;
		c->qhead = 0;
	}
	c->q[(c->qhead + c->qlen) % c->qcap] = b;
	c->qlen++;
	b->refs++;
	c->bytes += b->len;
}

/* Push b to every stream (NULL: just a keepalive line), then resume the
 * ones that were waiting. */
static void broadcast(struct api *a, struct blob *b)
{
	struct MHD_Connection *stack[64], **wake = stack;
	size_t nw = 0, cap = sizeof stack / sizeof stack[0];
	pthread_mutex_lock(&a->sse_lock);
	for (struct sse_client *c = a->clients; c != NULL; c = c->next) {
		int was = c->dropped;
		if (b != NULL)
			client_push(a, c, b);
		if (c->suspended && (c->qlen > 0 || (c->dropped && !was) || a->sse_stopping)) {
			if (nw == cap) {
				cap *= 2;
				struct MHD_Connection **nwk = xcalloc(cap, sizeof *nwk);
				memcpy(nwk, wake, nw * sizeof *wake);
				if (wake != stack)
					free(wake);
				wake = nwk;
			}
			c->suspended = 0;
			wake[nw++] = c->conn;
		}
	}
	pthread_mutex_unlock(&a->sse_lock);
	for (size_t i = 0; i < nw; i++)
		MHD_resume_connection(wake[i]);
	if (wake != stack)
		free(wake);
}

static void sse_keepalive(struct api *a, double now)
{
	pthread_mutex_lock(&a->sse_lock);
	int due = now >= a->next_keepalive;
	if (due)
		a->next_keepalive = now + a->keepalive;
	pthread_mutex_unlock(&a->sse_lock);
	if (!due)
		return;
	struct blob *b = xmalloc(sizeof *b + 16);
	b->len = (size_t)sprintf(b->data, ": keepalive\n\n");
	b->refs = 1;
	broadcast(a, b);
	pthread_mutex_lock(&a->sse_lock);
	blob_put(b);
	pthread_mutex_unlock(&a->sse_lock);
}

void api_notify_cp(struct api *a, const struct cp_view *v)
{
	if (api_sse_clients(a) == 0)
		return; /* a stream opened now starts from the snapshot anyway */
	char *json = api_json_dump(api_json_cp(v));
	struct blob *b = blob_new("cp", json);
	free(json);
	broadcast(a, b);
	pthread_mutex_lock(&a->sse_lock);
	blob_put(b);
	pthread_mutex_unlock(&a->sse_lock);
}

void api_notify_line(struct api *a, const char *kind, const char *json)
{
	int k = strcmp(kind, "request") == 0 ? 0 : strcmp(kind, "audit") == 0 ? 1 : -1;
	if (k < 0 && strcmp(kind, "weather") != 0)
		return;
	struct blob *b = blob_new(kind, json ? json : "null");
	if (k >= 0) {
		pthread_mutex_lock(&a->sse_lock);
		if (a->llen[k] == LINES_KEPT) {
			blob_put(a->lines[k][a->lhead[k]]);
			a->lhead[k] = (a->lhead[k] + 1) % LINES_KEPT;
			a->llen[k]--;
		}
		a->lines[k][(a->lhead[k] + a->llen[k]) % LINES_KEPT] = b;
		a->llen[k]++;
		b->refs++;
		pthread_mutex_unlock(&a->sse_lock);
	}
	broadcast(a, b);
	pthread_mutex_lock(&a->sse_lock);
	blob_put(b);
	pthread_mutex_unlock(&a->sse_lock);
}

size_t api_sse_clients(const struct api *a)
{
	struct api *m = (struct api *)a;
	pthread_mutex_lock(&m->sse_lock);
	size_t n = m->nclients;
	pthread_mutex_unlock(&m->sse_lock);
	return n;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse_client *c = cls;
	struct api *a = c->api;
	size_t n = 0;
	pthread_mutex_lock(&a->sse_lock);
	if (c->dropped || a->sse_stopping) {
		pthread_mutex_unlock(&a->sse_lock);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	while (n < max && c->qlen > 0) {
		struct blob *b = c->q[c->qhead];
		size_t take = b->len - c->off;
		if (take > max - n)
			take = max - n;
		memcpy(buf + n, b->data + c->off, take);
		n += take;
		c->off += take;
		if (c->off == b->len) {
			blob_put(b);
			c->qhead = (c->qhead + 1) % c->qcap;
			c->qlen--;
			c->off = 0;
		}
	}
	c->bytes -= n;
	if (n == 0) {
		/* Nothing to say: park until broadcast resumes us. */
		c->suspended = 1;
		MHD_suspend_connection(c->conn);
	}
	pthread_mutex_unlock(&a->sse_lock);
	return (ssize_t)n;
}

static void sse_free(void *cls)
{
	struct sse_client *c = cls;
	struct api *a = c->api;
	pthread_mutex_lock(&a->sse_lock);
	*c->prevp = c->next;
	if (c->next)
		c->next->prevp = c->prevp;
	if (!c->dropped) {
		a->nclients--;
		api_handler_set_streams(a->h, a->nclients);
	}
	client_clear(c);
	pthread_mutex_unlock(&a->sse_lock);
	free(c);
}

/* ---------------------------------------------------------------- requests */

enum rq_phase { RQ_BODY, RQ_WAIT, RQ_DONE };

struct rq {
	enum rq_phase phase;
	struct api_hreq in;
	struct api_hres res;
	struct api_kv args[MAX_ARGS];
	char ip[64];
	char *body;
	size_t len, discarded;
	int early;      /* res is a refusal, sent once the body is in */
	uint64_t id;
};

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct rq *r = cls;
	if (r->in.nargs == MAX_ARGS) {
		r->args[MAX_ARGS - 1].key = "(too many)";
		r->args[MAX_ARGS - 1].value = "";
		return MHD_NO;
	}
	r->args[r->in.nargs].key = key;
	r->args[r->in.nargs].value = value;
	r->in.nargs++;
	return MHD_YES;
}

static void client_ip(struct MHD_Connection *c, char out[64])
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	xstrlcpy(out, "?", 64);
	if (ci == NULL || ci->client_addr == NULL)
		return;
	socklen_t sl = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							       : sizeof(struct sockaddr_in);
	if (getnameinfo(ci->client_addr, sl, out, 64, NULL, 0, NI_NUMERICHOST) != 0)
		xstrlcpy(out, "?", 64);
}

static int method_ok(const char *m)
{
	for (; *m; m++)
		if (*m < 'A' || *m > 'Z')
			return 0;
	return 1;
}

static enum MHD_Result send_res(struct api *a, struct MHD_Connection *c, struct rq *r)
{
	struct api_hres *res = &r->res;
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		res->body_len, res->body, res->body_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", res->content_type ? res->content_type : "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (res->allow)
		MHD_add_response_header(resp, "Allow", res->allow);
	if (res->retry_after > 0) {
		char s[16];
		snprintf(s, sizeof s, "%d", res->retry_after);
		MHD_add_response_header(resp, "Retry-After", s);
	}
	if (res->www_authenticate)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"evcharging\"");
	if (res->is_page) {
		MHD_add_response_header(resp, "Content-Security-Policy", api_handler_csp(a->h));
		MHD_add_response_header(resp, "X-Frame-Options", "DENY");
		MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	}
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)res->status, resp);
	MHD_destroy_response(resp);
	api_handler_count(a->h, res->status);
	char path[160], m[16];
	api_handler_path_text(a->h, res, r->in.path, path, sizeof path);
	snprintf(m, sizeof m, "%s", method_ok(r->in.method) ? r->in.method : "?");
	log_debug("api: %s %s %s %d", r->ip, m, path, res->status);
	if (res->has_note) {
		post_note(a, &res->note);
		res->has_note = 0;
	}
	r->phase = RQ_DONE;
	return ret;
}

static enum MHD_Result send_simple(struct api *a, struct MHD_Connection *c, struct rq *r, int status,
				   const char *json)
{
	api_hres_clear(&r->res);
	r->res.action = API_H_RESPOND;
	r->res.status = status;
	r->res.body = xstrdup(json);
	r->res.body_len = strlen(json);
	r->res.content_type = "application/json";
	return send_res(a, c, r);
}

static enum MHD_Result start_command(struct api *a, struct MHD_Connection *c, struct rq *r)
{
	const char *busy = NULL;
	pthread_mutex_lock(&a->q_lock);
	if (a->stopping)
		busy = "{\"error\":\"Central is shutting down\"}";
	else if (a->npend >= a->queue_max || a->rlen == a->rcap)
		busy = "{\"error\":\"Central is busy: too many commands waiting\"}";
	if (busy != NULL) {
		pthread_mutex_unlock(&a->q_lock);
		return send_simple(a, c, r, 503, busy);
	}
	struct api_req req = r->res.cmd;
	req.id = r->id = ++a->next_id;
	struct pending *p = &a->pend[a->npend++];
	memset(p, 0, sizeof *p);
	p->id = req.id;
	p->conn = c;
	p->rq = r;
	p->deadline = clock_mono() + a->answer_timeout;
	p->state = PEND_WAITING;
	ring_push(a, &req);
	r->phase = RQ_WAIT;
	MHD_suspend_connection(c);
	pthread_cond_signal(&a->q_cond);
	pthread_mutex_unlock(&a->q_lock);
	return MHD_YES;
}

static enum MHD_Result finish_command(struct api *a, struct MHD_Connection *c, struct rq *r)
{
	int status = 0;
	char *body = NULL;
	pthread_mutex_lock(&a->q_lock);
	struct pending *p = pend_find(a, r->id);
	if (p != NULL && p->state == PEND_ANSWERED) {
		status = p->status;
		body = p->body;
		*p = a->pend[--a->npend];
	}
	pthread_mutex_unlock(&a->q_lock);
	if (body == NULL) /* resumed by nobody we know: cannot happen, but never hang */
		return send_simple(a, c, r, 500, "{\"error\":\"internal: command lost\"}");
	api_hres_clear(&r->res);
	r->res.action = API_H_RESPOND;
	r->res.status = status;
	r->res.body = body;
	r->res.body_len = strlen(body);
	r->res.content_type = "application/json";
	return send_res(a, c, r);
}

static enum MHD_Result start_stream(struct api *a, struct MHD_Connection *c, struct rq *r)
{
	struct sse_client *cl = xcalloc(1, sizeof *cl);
	cl->api = a;
	cl->conn = c;
	const struct api_snapshot *s = api_handler_snap_get(a->h);
	pthread_mutex_lock(&a->sse_lock);
	if (a->sse_stopping || a->nclients >= (size_t)a->max_sse) {
		pthread_mutex_unlock(&a->sse_lock);
		api_handler_snap_put(a->h, s);
		free(cl);
		return send_simple(a, c, r, 503, "{\"error\":\"too many event streams\"}");
	}
	/* Start from the whole picture, so a client needs no other request
	 * and misses nothing between a read and the stream. */
	cl->limit = SIZE_MAX;
	for (size_t i = 0; s != NULL && i < s->ncps; i++) {
		char *json = api_json_dump(api_json_cp(&s->cps[i]));
		struct blob *b = blob_new("cp", json);
		free(json);
		client_push(a, cl, b);
		blob_put(b);
	}
	if (s != NULL && s->weather_json != NULL) {
		struct blob *b = blob_new("weather", s->weather_json);
		client_push(a, cl, b);
		blob_put(b);
	}
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < a->llen[k]; i++)
			client_push(a, cl, a->lines[k][(a->lhead[k] + i) % LINES_KEPT]);
	if (cl->bytes == 0) {
		/* A first byte at once tells the client the stream is open. */
		struct blob *b = xmalloc(sizeof *b + 16);
		b->len = (size_t)sprintf(b->data, ": open\n\n");
		b->refs = 1;
		client_push(a, cl, b);
		blob_put(b);
	}
	cl->limit = cl->bytes + a->sse_bytes;
	cl->next = a->clients;
	cl->prevp = &a->clients;
	if (a->clients)
		a->clients->prevp = &cl->next;
	a->clients = cl;
	a->nclients++;
	api_handler_set_streams(a->h, a->nclients);
	pthread_mutex_unlock(&a->sse_lock);
	api_handler_snap_put(a->h, s);

	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, cl, sse_free);
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	enum MHD_Result ret = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	api_handler_count(a->h, 200);
	r->phase = RQ_DONE;
	return ret;
}

static long long content_length(struct MHD_Connection *c)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (v == NULL)
		return -1;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	return (v[0] >= '0' && v[0] <= '9' && *end == '\0' && errno == 0) ? n : -1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct api *a = cls;
	struct rq *r = *con_cls;
	if (r == NULL) {
		r = xcalloc(1, sizeof *r);
		*con_cls = r;
		client_ip(c, r->ip);
		r->in.method = method;
		r->in.path = url;
		r->in.args = r->args;
		MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, r);
		if (r->args[MAX_ARGS - 1].key != NULL && r->in.nargs == MAX_ARGS)
			r->in.nargs = MAX_ARGS;
		r->in.authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		r->in.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		r->in.content_length = content_length(c);
		r->in.source_ip = r->ip;
		r->in.now = clock_mono();
		if (__atomic_load_n(&a->stopping, __ATOMIC_RELAXED))
			return send_simple(a, c, r, 503, "{\"error\":\"Central is shutting down\"}");
		api_handler_precheck(a->h, &r->in, &r->res);
		r->phase = RQ_BODY;
		if (r->res.action != API_H_RESPOND)
			return MHD_YES;
		/* An early refusal of a request with a small body waits for the
		 * body (read and dropped): closing on unread bytes resets the
		 * connection, and the client may lose the answer with it. A body
		 * announced too big is refused at once (a client sending
		 * "Expect: 100-continue" never sends it). */
		const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
		int body_follows = r->in.content_length > 0 || (te != NULL && strcasestr(te, "chunked") != NULL);
		if (!body_follows || r->in.content_length > API_BODY_MAX)
			return send_res(a, c, r);
		r->early = 1;
		return MHD_YES;
	}
	switch (r->phase) {
	case RQ_BODY:
		if (*upload_size > 0) {
			size_t n = *upload_size;
			*upload_size = 0;
			if (r->early) {
				r->discarded += n;
				return r->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
			}
			if (r->in.body_overflow || r->len + n > API_BODY_MAX) {
				r->in.body_overflow = 1;
				r->discarded += n;
				/* Read no further than this: close without an answer. */
				return r->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
			}
			if (r->body == NULL)
				r->body = xmalloc(API_BODY_MAX + 1);
			memcpy(r->body + r->len, upload, n);
			r->len += n;
			return MHD_YES;
		}
		if (r->early)
			return send_res(a, c, r);
		r->in.body = r->body ? r->body : "";
		r->in.body_len = r->len;
		api_handler_finish(a->h, &r->in, &r->res);
		switch (r->res.action) {
		case API_H_COMMAND: return start_command(a, c, r);
		case API_H_EVENTS: return start_stream(a, c, r);
		default: return send_res(a, c, r);
		}
	case RQ_WAIT:
		return finish_command(a, c, r);
	case RQ_DONE:
		break;
	}
	return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why)
{
	struct api *a = cls;
	struct rq *r = *con_cls;
	if (r == NULL)
		return;
	if (r->phase == RQ_WAIT) {
		/* Only at shutdown: drop the entry so nothing points at r. */
		pthread_mutex_lock(&a->q_lock);
		struct pending *p = pend_find(a, r->id);
		if (p != NULL) {
			free(p->body);
			*p = a->pend[--a->npend];
		}
		pthread_mutex_unlock(&a->q_lock);
	}
	api_hres_clear(&r->res);
	free(r->body);
	free(r);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_debug("api: %s", line);
}

/* ---------------------------------------------------------------- life */

struct api *api_new(const struct api_config *cfg, char err[EVC_ERR_LEN])
{
	struct api *a = xcalloc(1, sizeof *a);
	size_t cert_len;
	a->lfd = a->evfd = -1;
	pthread_mutex_init(&a->q_lock, NULL);
	pthread_mutex_init(&a->sse_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->q_cond, &ca);
	pthread_condattr_destroy(&ca);

	a->listen = xstrdup(cfg->listen ? cfg->listen : DEFAULT_LISTEN);
	a->answer_timeout = cfg->answer_timeout > 0 ? cfg->answer_timeout : DEFAULT_TIMEOUT;
	a->conn_timeout = cfg->conn_timeout > 0 ? cfg->conn_timeout : DEFAULT_CONN_TIMEOUT;
	a->keepalive = cfg->keepalive > 0 ? cfg->keepalive : DEFAULT_KEEPALIVE;
	a->max_conns = cfg->max_conns > 0 ? cfg->max_conns : DEFAULT_CONNS;
	a->max_sse = cfg->max_sse_clients > 0 ? cfg->max_sse_clients : DEFAULT_SSE;
	a->sse_bytes = cfg->sse_queue_bytes > 0 ? cfg->sse_queue_bytes : DEFAULT_SSE_BYTES;
	a->queue_max = cfg->queue_max > 0 ? cfg->queue_max : DEFAULT_QUEUE;
	/* Room for every pending command plus as many audit notes. */
	a->rcap = a->queue_max * 2;
	a->ring = xcalloc(a->rcap, sizeof *a->ring);
	a->pend = xcalloc(a->queue_max, sizeof *a->pend);

	if (cfg->tokens_file == NULL) {
		evc_seterr(err, "the API needs a tokens file (--api-tokens FILE)");
		goto fail;
	}
	if (cfg->cert_file == NULL || cfg->key_file == NULL) {
		evc_seterr(err, "the API needs Central's certificate and key (scripts/pki init)");
		goto fail;
	}
	struct api_tokens *t = api_tokens_load(cfg->tokens_file, err);
	if (t == NULL)
		goto fail;
	a->h = api_handler_new(t, cfg->db_path, api_page_html, api_page_len, err);
	if (a->h == NULL)
		goto fail;
	if ((a->cert_pem = read_pem(cfg->cert_file, 0, &cert_len, err)) == NULL)
		goto fail;
	if ((a->key_pem = read_pem(cfg->key_file, 1, &a->key_len, err)) == NULL)
		goto fail;
	a->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->evfd < 0) {
		evc_seterr(err, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (cfg->port < 0 || cfg->port > 65535) {
		evc_seterr(err, "API port %d out of range", cfg->port);
		goto fail;
	}
	a->lfd = bind_listen(a->listen, cfg->port, &a->port, err);
	if (a->lfd < 0)
		goto fail;
	return a;
fail:
	api_free(a);
	return NULL;
}

int api_port(const struct api *a)
{
	return a->port;
}

int api_start(struct api *a, char err[EVC_ERR_LEN])
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TLS |
			 MHD_USE_ERROR_LOG;
	a->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a,
				MHD_OPTION_LISTEN_SOCKET, (MHD_socket)a->lfd,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2,
				MHD_OPTION_HTTPS_MEM_CERT, a->cert_pem,
				MHD_OPTION_HTTPS_MEM_KEY, a->key_pem,
				MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)a->max_conns,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(a->conn_timeout + 0.5),
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
				MHD_OPTION_END);
	if (a->d == NULL) {
		evc_seterr(err, "cannot start the HTTPS API on %s port %d (bad certificate or key?)", a->listen,
			   a->port);
		return -1;
	}
	/* GnuTLS has its copy now. */
	OPENSSL_cleanse(a->key_pem, a->key_len);
	a->next_keepalive = clock_mono() + a->keepalive;
	if (pthread_create(&a->timer, NULL, timer_main, a) != 0) {
		evc_seterr(err, "cannot start the API timer thread");
		return -1;
	}
	a->timer_started = 1;
	log_info("api: HTTPS on %s port %d", a->listen, a->port);
	return 0;
}

void api_publish(struct api *a, struct api_snapshot *s)
{
	api_handler_publish(a->h, s);
}

void api_stop(struct api *a)
{
	struct MHD_Connection *wake[64];
	for (;;) {
		size_t nw = 0;
		pthread_mutex_lock(&a->q_lock);
		a->stopping = 1;
		for (size_t i = 0; i < a->npend && nw < sizeof wake / sizeof wake[0]; i++)
			if (a->pend[i].state == PEND_WAITING)
				wake[nw++] = pend_answer(a, &a->pend[i], 503,
							 "{\"error\":\"Central is shutting down\"}");
		pthread_mutex_unlock(&a->q_lock);
		for (size_t i = 0; i < nw; i++)
			MHD_resume_connection(wake[i]);
		if (nw < sizeof wake / sizeof wake[0])
			break;
	}
	pthread_mutex_lock(&a->sse_lock);
	a->sse_stopping = 1;
	pthread_mutex_unlock(&a->sse_lock);
	broadcast(a, NULL);
}

void api_free(struct api *a)
{
	if (a == NULL)
		return;
	if (a->d != NULL) {
		/* Every parked connection is resumed by now; MHD takes back the
		 * ones it has not processed yet when it stops. */
		api_stop(a);
		MHD_stop_daemon(a->d);
	}
	if (a->timer_started) {
		pthread_mutex_lock(&a->q_lock);
		a->timer_quit = 1;
		pthread_cond_signal(&a->q_cond);
		pthread_mutex_unlock(&a->q_lock);
		pthread_join(a->timer, NULL);
	}
	for (size_t i = 0; i < a->npend; i++)
		free(a->pend[i].body);
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < a->llen[k]; i++)
			blob_put(a->lines[k][(a->lhead[k] + i) % LINES_KEPT]);
	if (a->lfd >= 0)
		close(a->lfd);
	if (a->evfd >= 0)
		close(a->evfd);
	api_handler_free(a->h);
	free(a->cert_pem);
	if (a->key_pem) {
		OPENSSL_cleanse(a->key_pem, a->key_len);
		free(a->key_pem);
	}
	free(a->listen);
	free(a->ring);
	free(a->pend);
	pthread_mutex_destroy(&a->q_lock);
	pthread_mutex_destroy(&a->sse_lock);
	pthread_cond_destroy(&a->q_cond);
	free(a);
}
