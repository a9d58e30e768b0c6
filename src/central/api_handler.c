#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sqlite3.h>

#include "evc/msg.h"
#include "evc/schema.h"
#include "evc/xalloc.h"
#include "src/central/api_handler.h"

#define SESSIONS_DEFAULT 100
#define SESSIONS_MAX 1000
#define CP_SESSIONS 20
#define CP_EVENTS 50
#define TEMP_MIN (-100.0) /* degrees C a reading or threshold may say */
#define TEMP_MAX 100.0

#define JSON_TYPE "application/json"

struct rl_entry {
	char ip[64];
	double t[API_RL_DENIALS]; /* ring of denial times */
	int n, head;
	double blocked_until;     /* mono; 0 = not blocked */
	int noted;                /* the block's one DENIED note was posted */
	double last;              /* last time seen, for eviction */
};

struct api_handler {
	struct api_tokens *tokens;
	sqlite3 *db;
	pthread_mutex_t db_lock;
	pthread_mutex_t snap_lock;
	struct api_snapshot *snap;
	pthread_mutex_t rl_lock;
	struct rl_entry *rl;
	size_t nrl;
	uint64_t codes[API_CODES];
	size_t streams;
	const unsigned char *page;
	size_t page_len;
	char *csp;
};

void api_hres_clear(struct api_hres *r)
{
	if (!r->body_static)
		free(r->body);
	r->body = NULL;
	r->body_len = 0;
	r->body_static = 0;
}

/* ---------------------------------------------------------------- answers */

static void answer(struct api_hres *r, int status, char *body)
{
	api_hres_clear(r);
	r->action = API_H_RESPOND;
	r->status = status;
	r->body = body;
	r->body_len = strlen(body);
	r->content_type = JSON_TYPE;
}

static void answer_json(struct api_hres *r, int status, json_t *j)
{
	answer(r, status, api_json_dump(j));
}

static void __attribute__((format(printf, 3, 4))) refuse(struct api_hres *r, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	answer(r, status, api_json_error(msg));
}

/* ---------------------------------------------------------------- setup */

/* 'sha256-<base64>' of the text between <tag> and </tag>, as browsers
 * hash an inline element; NULL if the page has no such element. */
static char *inline_hash(const unsigned char *page, size_t len, const char *tag)
{
	char open[16], close[16];
	snprintf(open, sizeof open, "<%s>", tag);
	snprintf(close, sizeof close, "</%s>", tag);
	/* The first such tag outside <!-- comments --> (the page's own
	 * comment talks about its <script>). */
	const char *p = (const char *)page, *end = p + len;
	size_t ol = strlen(open);
	while (p < end) {
		if ((size_t)(end - p) >= 4 && memcmp(p, "<!--", 4) == 0) {
			const char *c = memmem(p + 4, (size_t)(end - p - 4), "-->", 3);
			if (c == NULL)
				return NULL;
			p = c + 3;
		} else if ((size_t)(end - p) >= ol && memcmp(p, open, ol) == 0) {
			break;
		} else {
			p++;
		}
	}
	if (p >= end)
		return NULL;
	p += ol;
	const char *e = memmem(p, len - (size_t)(p - (const char *)page), close, strlen(close));
	if (e == NULL)
		return NULL;
	unsigned char h[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)p, (size_t)(e - p), h);
	unsigned char b64[64];
	EVP_EncodeBlock(b64, h, sizeof h);
	return xasprintf("'sha256-%s'", (char *)b64);
}

struct api_handler *api_handler_new(struct api_tokens *tokens, const char *db_path, const unsigned char *page,
				    size_t page_len, char err[EVC_ERR_LEN])
{
	struct api_handler *h = xcalloc(1, sizeof *h);
	char *sh = NULL, *st = NULL;
	h->tokens = tokens;
	pthread_mutex_init(&h->db_lock, NULL);
	pthread_mutex_init(&h->snap_lock, NULL);
	pthread_mutex_init(&h->rl_lock, NULL);
	h->rl = xcalloc(API_RL_ADDRS, sizeof *h->rl);
	h->page = page;
	h->page_len = page_len;

	if (db_path == NULL) {
		evc_seterr(err, "the API needs the database path");
		goto fail;
	}
	int rc = sqlite3_open_v2(db_path, &h->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		evc_seterr(err, "%s: cannot open read-only: %s", db_path,
			   h->db ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(h->db, 1000);
	sqlite3_exec(h->db, "PRAGMA query_only=1", NULL, NULL, NULL);

	sh = inline_hash(page, page_len, "script");
	st = inline_hash(page, page_len, "style");
	/* Everything the page needs is inline and hashed; it talks only to
	 * this origin. No framing, no forms posted elsewhere, no base. */
	h->csp = xasprintf("default-src 'none'; script-src %s; style-src %s; connect-src 'self'; img-src data:; "
			   "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
			   sh ? sh : "'none'", st ? st : "'none'");
	free(sh);
	free(st);
	return h;
fail:
	api_handler_free(h);
	return NULL;
}

void api_handler_free(struct api_handler *h)
{
	if (h == NULL)
		return;
	api_tokens_free(h->tokens);
	if (h->db)
		sqlite3_close(h->db);
	if (h->snap != NULL && --h->snap->refs == 0)
		api_snapshot_free(h->snap);
	pthread_mutex_destroy(&h->db_lock);
	pthread_mutex_destroy(&h->snap_lock);
	pthread_mutex_destroy(&h->rl_lock);
	free(h->rl);
	free(h->csp);
	free(h);
}

const char *api_handler_csp(const struct api_handler *h)
{
	return h->csp;
}

void api_handler_publish(struct api_handler *h, struct api_snapshot *s)
{
	struct api_snapshot *old;
	if (s != NULL)
		s->refs = 1;
	pthread_mutex_lock(&h->snap_lock);
	old = h->snap;
	h->snap = s;
	int last = old != NULL && --old->refs == 0;
	pthread_mutex_unlock(&h->snap_lock);
	if (last)
		api_snapshot_free(old);
}

const struct api_snapshot *api_handler_snap_get(struct api_handler *h)
{
	pthread_mutex_lock(&h->snap_lock);
	struct api_snapshot *s = h->snap;
	if (s != NULL)
		s->refs++;
	pthread_mutex_unlock(&h->snap_lock);
	return s;
}

void api_handler_snap_put(struct api_handler *h, const struct api_snapshot *cs)
{
	struct api_snapshot *s = (struct api_snapshot *)cs;
	if (s == NULL)
		return;
	pthread_mutex_lock(&h->snap_lock);
	int last = --s->refs == 0;
	pthread_mutex_unlock(&h->snap_lock);
	if (last)
		api_snapshot_free(s);
}

void api_handler_count(struct api_handler *h, int status)
{
	if (status >= 100 && status < API_CODES)
		__atomic_fetch_add(&h->codes[status], 1, __ATOMIC_RELAXED);
}

void api_handler_set_streams(struct api_handler *h, size_t n)
{
	__atomic_store_n(&h->streams, n, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- routes */

#define M_GET 1
#define M_POST 2
#define M_PUT 4

static int method_bit(const char *m)
{
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return M_GET;
	if (strcmp(m, "POST") == 0)
		return M_POST;
	if (strcmp(m, "PUT") == 0)
		return M_PUT;
	return 0;
}

static const char *allow_header(int methods)
{
	switch (methods) {
	case M_GET: return "GET, HEAD";
	case M_POST: return "POST";
	case M_PUT: return "PUT";
	case M_GET | M_POST: return "GET, HEAD, POST";
	}
	return "";
}

/* Which route path names for method bit m; *allowed gets the methods the
 * path takes (0 if the path is unknown). */
static enum api_route route_of(const char *path, int m, int *allowed, char cp_id[MSG_CP_ID_MAX + 1],
			       enum api_req_kind *kind)
{
	static const struct {
		const char *path;
		int method;
		enum api_route r;
	} fixed[] = {
		{ "/", M_GET, API_R_PAGE },
		{ "/index.html", M_GET, API_R_PAGE },
		{ "/metrics", M_GET, API_R_METRICS },
		{ "/api/v1/cps", M_GET, API_R_CPS },
		{ "/api/v1/sessions", M_GET, API_R_SESSIONS },
		{ "/api/v1/audit", M_GET, API_R_AUDIT },
		{ "/api/v1/weather", M_GET, API_R_WEATHER },
		{ "/api/v1/events", M_GET, API_R_EVENTS },
		{ "/api/v1/weather/threshold", M_PUT, API_R_THRESHOLD },
		{ "/api/v1/weather/readings", M_POST, API_R_READINGS },
	};
	*allowed = 0;
	cp_id[0] = '\0';
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		if (strcmp(path, fixed[i].path) == 0) {
			*allowed = fixed[i].method;
			return (m & fixed[i].method) ? fixed[i].r : API_R_NONE;
		}
	}
	static const char pre[] = "/api/v1/cps/";
	if (strncmp(path, pre, sizeof pre - 1) != 0)
		return API_R_NONE;
	const char *id = path + sizeof pre - 1;
	const char *slash = strchr(id, '/');
	size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
	if (idlen == 0 || idlen > MSG_CP_ID_MAX)
		return API_R_NONE;
	char buf[MSG_CP_ID_MAX + 1];
	memcpy(buf, id, idlen);
	buf[idlen] = '\0';
	if (!msg_valid_cp_id(buf))
		return API_R_NONE;
	if (slash == NULL) {
		/* A CP may be called "stop-all": GET reads it, POST is the command. */
		int all = strcmp(buf, "stop-all") == 0 || strcmp(buf, "resume-all") == 0;
		*allowed = M_GET | (all ? M_POST : 0);
		if (m == M_GET) {
			xstrlcpy(cp_id, buf, MSG_CP_ID_MAX + 1);
			return API_R_CP;
		}
		if (m == M_POST && all) {
			*kind = buf[0] == 's' ? API_REQ_STOP_ALL : API_REQ_RESUME_ALL;
			return buf[0] == 's' ? API_R_STOP_ALL : API_R_RESUME_ALL;
		}
		return API_R_NONE;
	}
	const char *verb = slash + 1;
	if (strcmp(verb, "stop") == 0)
		*kind = API_REQ_STOP;
	else if (strcmp(verb, "resume") == 0)
		*kind = API_REQ_RESUME;
	else if (strcmp(verb, "revoke") == 0)
		*kind = API_REQ_REVOKE;
	else
		return API_R_NONE;
	*allowed = M_POST;
	if (m != M_POST)
		return API_R_NONE;
	xstrlcpy(cp_id, buf, MSG_CP_ID_MAX + 1);
	return API_R_CP_CMD;
}

static enum api_role role_needed(enum api_route r)
{
	switch (r) {
	case API_R_PAGE: return API_ROLE_NONE;
	case API_R_CP_CMD:
	case API_R_STOP_ALL:
	case API_R_RESUME_ALL:
	case API_R_THRESHOLD: return API_ROLE_OPERATE;
	case API_R_READINGS: return API_ROLE_WEATHER;
	default: return API_ROLE_READ;
	}
}

static int role_may(enum api_role have, enum api_role need)
{
	if (need == API_ROLE_NONE)
		return 1;
	if (need == API_ROLE_READ)
		return have == API_ROLE_READ || have == API_ROLE_OPERATE;
	return have == need;
}

/* ---------------------------------------------------------------- denials */

/* Printable ASCII copy of untrusted text (a path) for an audit detail. */
static void clean_copy(char *dst, size_t n, const char *src)
{
	size_t i = 0;
	for (; src[i] != '\0' && i + 1 < n; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

/* A client's name for something (a query key, a JSON field) repeated in
 * an error only if it is short and plain: never a whole token, which has
 * at least API_TOKEN_MIN characters, even one sent by mistake. */
static void echo_name(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);
	int plain = len > 0 && len < API_TOKEN_MIN;
	for (size_t i = 0; plain && i < len; i++)
		plain = isalnum((unsigned char)src[i]) || src[i] == '_' || src[i] == '-' || src[i] == '.';
	snprintf(dst, n, "%s", plain ? src : "(not shown)");
}

static const struct cp_view *find_cp(const struct api_snapshot *s, const char *id);

void api_handler_path_text(struct api_handler *h, const struct api_hres *r, const char *path, char *dst, size_t n)
{
	char id[MSG_CP_ID_MAX + 1];
	if (r->route == API_R_NONE) {
		snprintf(dst, n, "(unknown path)");
		return;
	}
	xstrlcpy(id, r->cp_id, sizeof id);
	if (id[0] == '\0') {
		clean_copy(dst, n, path);
		return;
	}
	const struct api_snapshot *s = api_handler_snap_get(h);
	int known = s != NULL && find_cp(s, id) != NULL;
	api_handler_snap_put(h, s);
	const char *verb = strchr(path + sizeof "/api/v1/cps/" - 1, '/');
	snprintf(dst, n, "/api/v1/cps/%s%s", known ? id : "?", verb ? verb : "");
}

static void note(struct api_handler *h, struct api_hres *r, const struct api_hreq *q, int status,
		 const char *token_name, const char *why)
{
	char m[16], p[160];
	clean_copy(m, sizeof m, q->method);
	api_handler_path_text(h, r, q->path, p, sizeof p);
	memset(&r->note, 0, sizeof r->note);
	r->has_note = 1;
	r->note.kind = API_REQ_DENIED;
	r->note.status = status;
	xstrlcpy(r->note.token_name, token_name ? token_name : "", sizeof r->note.token_name);
	clean_copy(r->note.source_ip, sizeof r->note.source_ip, q->source_ip ? q->source_ip : "");
	snprintf(r->note.detail, sizeof r->note.detail, "%s %s: %d %s", m, p, status, why);
}

static struct rl_entry *rl_find(struct api_handler *h, const char *ip, double now, int create)
{
	struct rl_entry *victim = NULL;
	for (size_t i = 0; i < h->nrl; i++) {
		struct rl_entry *e = &h->rl[i];
		if (strcmp(e->ip, ip) == 0) {
			e->last = now;
			return e;
		}
		/* Forget an address not blocked first, then the least recent. */
		if (victim == NULL || (victim->blocked_until > now && e->blocked_until <= now) ||
		    ((victim->blocked_until > now) == (e->blocked_until > now) && e->last < victim->last))
			victim = e;
	}
	if (!create)
		return NULL;
	if (h->nrl < API_RL_ADDRS)
		victim = &h->rl[h->nrl++];
	memset(victim, 0, sizeof *victim);
	xstrlcpy(victim->ip, ip, sizeof victim->ip);
	victim->last = now;
	return victim;
}

/* Seconds the address stays blocked (0: not blocked); *first set when this
 * is the block's first refused request (its one note). */
static int rl_blocked(struct api_handler *h, const char *ip, double now, int *first)
{
	int left = 0;
	*first = 0;
	pthread_mutex_lock(&h->rl_lock);
	struct rl_entry *e = rl_find(h, ip, now, 0);
	if (e != NULL && e->blocked_until > 0) {
		if (now < e->blocked_until) {
			left = (int)ceil(e->blocked_until - now);
			if (left < 1)
				left = 1;
			if (!e->noted) {
				e->noted = 1;
				*first = 1;
			}
		} else {
			e->blocked_until = 0;
			e->noted = 0;
			e->n = 0;
		}
	}
	pthread_mutex_unlock(&h->rl_lock);
	return left;
}

static void rl_deny(struct api_handler *h, const char *ip, double now)
{
	pthread_mutex_lock(&h->rl_lock);
	struct rl_entry *e = rl_find(h, ip, now, 1);
	/* Keep only denials of the last window: the ring holds the newest. */
	e->t[e->head] = now;
	e->head = (e->head + 1) % API_RL_DENIALS;
	if (e->n < API_RL_DENIALS)
		e->n++;
	int recent = 0;
	for (int i = 0; i < e->n; i++)
		if (now - e->t[i] < API_RL_WINDOW)
			recent++;
	if (recent >= API_RL_DENIALS) {
		e->blocked_until = now + API_RL_WINDOW;
		e->noted = 0;
		e->n = 0;
		e->head = 0;
	}
	pthread_mutex_unlock(&h->rl_lock);
}

static void deny(struct api_handler *h, const struct api_hreq *q, struct api_hres *r, int status,
		 const char *token_name, const char *why, const char *msg)
{
	rl_deny(h, q->source_ip ? q->source_ip : "", q->now);
	note(h, r, q, status, token_name, why);
	refuse(r, status, "%s", msg);
	r->www_authenticate = status == 401;
}

/* ---------------------------------------------------------------- checks */

static int is_json_type(const char *ct)
{
	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	size_t n = sizeof JSON_TYPE - 1;
	if (strncasecmp(ct, JSON_TYPE, n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* The token of "Bearer <token>" (scheme in any case), NULL if malformed. */
static const char *bearer(const char *auth, size_t *len)
{
	if (auth == NULL || strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t'))
		return NULL;
	const char *t = auth + 7;
	while (*t == ' ' || *t == '\t')
		t++;
	size_t n = strlen(t);
	while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	if (n == 0 || n > API_TOKEN_MAX)
		return NULL;
	*len = n;
	return t;
}

static int body_route(enum api_route r)
{
	return r == API_R_THRESHOLD || r == API_R_READINGS;
}

static int cmd_route(enum api_route r)
{
	return r == API_R_CP_CMD || r == API_R_STOP_ALL || r == API_R_RESUME_ALL;
}

struct qargs {
	const char *cp, *driver, *limit, *since;
};

/* Strict query strings: known keys once each, valid values. 0 or -1 with
 * the 400 answered. */
static int parse_query(const struct api_hreq *q, enum api_route route, struct qargs *a, struct api_hres *r)
{
	memset(a, 0, sizeof *a);
	if (route == API_R_PAGE)
		return 0; /* the page ignores its query (a kiosk URL may carry one) */
	for (size_t i = 0; i < q->nargs; i++) {
		const char *k = q->args[i].key ? q->args[i].key : "";
		const char *v = q->args[i].value;
		const char **slot = NULL;
		if (route == API_R_SESSIONS && strcmp(k, "cp") == 0)
			slot = &a->cp;
		else if (route == API_R_SESSIONS && strcmp(k, "driver") == 0)
			slot = &a->driver;
		else if ((route == API_R_SESSIONS || route == API_R_AUDIT) && strcmp(k, "limit") == 0)
			slot = &a->limit;
		else if (route == API_R_AUDIT && strcmp(k, "since") == 0)
			slot = &a->since;
		char kc[40];
		echo_name(kc, sizeof kc, k);
		if (slot == NULL) {
			refuse(r, 400, "unknown query parameter '%s'", kc);
			return -1;
		}
		if (*slot != NULL) {
			refuse(r, 400, "query parameter '%s' given twice", kc);
			return -1;
		}
		*slot = v ? v : "";
	}
	if (a->cp != NULL && a->cp[0] != '\0' && !msg_valid_cp_id(a->cp)) {
		refuse(r, 400, "bad cp: a charging point id is 1..32 of A-Z a-z 0-9 _ -");
		return -1;
	}
	if (a->driver != NULL && a->driver[0] != '\0' && !msg_valid_user_id(a->driver)) {
		refuse(r, 400, "bad driver: a driver id is 1..64 of A-Z a-z 0-9 _ . @ -");
		return -1;
	}
	if (a->limit != NULL) {
		const char *s = a->limit;
		size_t n = strlen(s);
		int ok = n >= 1 && n <= 4;
		for (size_t i = 0; ok && i < n; i++)
			ok = s[i] >= '0' && s[i] <= '9';
		long v = ok ? strtol(s, NULL, 10) : 0;
		if (!ok || v < 1 || v > SESSIONS_MAX) {
			refuse(r, 400, "bad limit: a whole number from 1 to %d", SESSIONS_MAX);
			return -1;
		}
	}
	if (a->since != NULL) {
		char *end;
		errno = 0;
		double d = strtod(a->since, &end);
		if (a->since[0] == '\0' || isspace((unsigned char)a->since[0]) || *end != '\0' || errno != 0 ||
		    !isfinite(d) || d < 0) {
			refuse(r, 400, "bad since: seconds since the epoch, like 1700000000.5");
			return -1;
		}
	}
	return 0;
}

void api_handler_precheck(struct api_handler *h, const struct api_hreq *q, struct api_hres *r)
{
	memset(r, 0, sizeof *r);
	const char *path = q->path ? q->path : "";
	const char *method = q->method ? q->method : "";
	int m = method_bit(method), allowed;
	enum api_route route = route_of(path, m, &allowed, r->cp_id, &r->cmd_kind);
	if (route == API_R_NONE) {
		if (allowed == 0) {
			refuse(r, 404, "no such path");
		} else {
			refuse(r, 405, "method not allowed here");
			r->allow = allow_header(allowed);
		}
		return;
	}
	r->route = route;
	if (route == API_R_PAGE) {
		r->action = API_H_BODY;
		return;
	}

	int first;
	int left = rl_blocked(h, q->source_ip ? q->source_ip : "", q->now, &first);
	if (left > 0) {
		if (first)
			note(h, r, q, 429, NULL, "rate limited for 60 s after 10 denials in a minute");
		refuse(r, 429, "too many refused requests from this address; retry later");
		r->retry_after = left;
		return;
	}

	size_t tlen = 0;
	const char *tok = bearer(q->authorization, &tlen);
	enum api_role role = API_ROLE_NONE;
	if (tok != NULL)
		role = api_tokens_match(h->tokens, tok, tlen, r->token_name, NULL);
	if (role == API_ROLE_NONE) {
		r->token_name[0] = '\0';
		deny(h, q, r, 401, NULL, q->authorization ? "bad token" : "no token", "missing or invalid token");
		return;
	}
	enum api_role need = role_needed(route);
	if (!role_may(role, need)) {
		char why[96];
		snprintf(why, sizeof why, "role %s may not (needs %s)", api_role_name(role), api_role_name(need));
		char msg[96];
		snprintf(msg, sizeof msg, "token role '%s' may not do this (needs '%s')", api_role_name(role),
			 api_role_name(need));
		deny(h, q, r, 403, r->token_name, why, msg);
		return;
	}
	if (q->content_length > API_BODY_MAX) {
		refuse(r, 413, "request body larger than %d bytes", API_BODY_MAX);
		return;
	}
	if (body_route(route) && !is_json_type(q->content_type)) {
		refuse(r, 415, "Content-Type must be application/json");
		return;
	}
	if (cmd_route(route) && q->content_length > 0 && !is_json_type(q->content_type)) {
		refuse(r, 415, "Content-Type must be application/json");
		return;
	}
	struct qargs qa;
	if (parse_query(q, route, &qa, r) != 0)
		return;
	r->action = API_H_BODY;
}

/* ---------------------------------------------------------------- reads */

static const struct cp_view *find_cp(const struct api_snapshot *s, const char *id)
{
	size_t lo = 0, hi = s->ncps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(id, s->cps[mid].id);
		if (c == 0)
			return &s->cps[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static json_t *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	if (t == NULL)
		return json_null();
	json_t *s = json_string((const char *)t);
	return s ? s : json_string("?"); /* invalid UTF-8 in the file */
}

static json_t *col_real(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	return api_json_real(sqlite3_column_double(st, i));
}

static json_t *col_time(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	return api_json_time(sqlite3_column_double(st, i));
}

enum qkind { Q_SESSIONS, Q_AUDIT, Q_EVENTS };

static const char *const qsql[] = {
	[Q_SESSIONS] = "SELECT id, cp_id, driver_id, kwh, importe, price, outcome, started_at, ended_at, reason"
		       " FROM sessions WHERE (?1 IS NULL OR cp_id = ?1) AND (?2 IS NULL OR driver_id = ?2)"
		       " ORDER BY rowid DESC LIMIT ?3",
	[Q_AUDIT] = "SELECT id, ts, actor, source_ip, action, cp_id, detail FROM audit_log"
		    " WHERE ?1 IS NULL OR ts >= ?1 ORDER BY id DESC LIMIT ?2",
	/* The CP's chain from its newest row (evcharging(7) DATABASE). */
	[Q_EVENTS] = EVENTS_CHAIN_SQL " SELECT e.id, e.ts, e.event, e.detail FROM chain JOIN cp_events e"
		     " ON e.id = chain.id WHERE e.cp_id = ?1 ORDER BY e.ts DESC, e.id DESC LIMIT ?2",
};

static json_t *row_json(enum qkind k, sqlite3_stmt *st)
{
	switch (k) {
	case Q_SESSIONS:
		return json_pack("{sosososososososososo}", "id", col_text(st, 0), "cp_id", col_text(st, 1),
				 "driver_id", col_text(st, 2), "kwh", col_real(st, 3), "importe", col_real(st, 4),
				 "price", col_real(st, 5), "outcome", col_text(st, 6), "started_at", col_time(st, 7),
				 "ended_at", col_time(st, 8), "reason", col_text(st, 9));
	case Q_AUDIT:
		return json_pack("{sIsosososososo}", "id", (json_int_t)sqlite3_column_int64(st, 0), "ts",
				 col_time(st, 1), "actor", col_text(st, 2), "source_ip", col_text(st, 3), "action",
				 col_text(st, 4), "cp_id", col_text(st, 5), "detail", col_text(st, 6));
	case Q_EVENTS:
		return json_pack("{sIsososo}", "id", (json_int_t)sqlite3_column_int64(st, 0), "ts", col_time(st, 1),
				 "event", col_text(st, 2), "detail", col_text(st, 3));
	}
	return json_null();
}

/* Rows of query k as a JSON array; NULL with msg on a database error. */
static json_t *query(struct api_handler *h, enum qkind k, const char *a1, const char *a2, double since,
		     int has_since, long limit, char msg[256])
{
	json_t *arr = NULL;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&h->db_lock);
	int rc = sqlite3_prepare_v2(h->db, qsql[k], -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	switch (k) {
	case Q_SESSIONS:
		if (a1 != NULL)
			sqlite3_bind_text(st, 1, a1, -1, SQLITE_STATIC);
		if (a2 != NULL)
			sqlite3_bind_text(st, 2, a2, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, limit);
		break;
	case Q_AUDIT:
		if (has_since)
			sqlite3_bind_double(st, 1, since);
		sqlite3_bind_int64(st, 2, limit);
		break;
	case Q_EVENTS:
		sqlite3_bind_text(st, 1, a1, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, limit);
		break;
	}
	arr = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(arr, row_json(k, st));
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	pthread_mutex_unlock(&h->db_lock);
	return arr;
fail:
	snprintf(msg, 256, "database: %s", sqlite3_errmsg(h->db));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&h->db_lock);
	json_decref(arr);
	return NULL;
}

static void read_answer(struct api_handler *h, const struct api_hreq *q, struct api_hres *r)
{
	const struct api_snapshot *s = NULL;
	char msg[256];
	struct qargs qa;
	if (parse_query(q, r->route, &qa, r) != 0)
		return;
	long limit = qa.limit ? strtol(qa.limit, NULL, 10) : SESSIONS_DEFAULT;

	switch (r->route) {
	case API_R_SESSIONS: {
		json_t *a = query(h, Q_SESSIONS, qa.cp && qa.cp[0] ? qa.cp : NULL,
				  qa.driver && qa.driver[0] ? qa.driver : NULL, 0, 0, limit, msg);
		if (a == NULL)
			refuse(r, 500, "%s", msg);
		else
			answer_json(r, 200, a);
		return;
	}
	case API_R_AUDIT: {
		json_t *a = query(h, Q_AUDIT, NULL, NULL, qa.since ? strtod(qa.since, NULL) : 0, qa.since != NULL,
				  limit, msg);
		if (a == NULL)
			refuse(r, 500, "%s", msg);
		else
			answer_json(r, 200, a);
		return;
	}
	case API_R_METRICS: {
		uint64_t codes[API_CODES];
		for (int i = 0; i < API_CODES; i++)
			codes[i] = __atomic_load_n(&h->codes[i], __ATOMIC_RELAXED);
		s = api_handler_snap_get(h);
		answer(r, 200, api_json_metrics(s, codes, __atomic_load_n(&h->streams, __ATOMIC_RELAXED)));
		r->content_type = "text/plain; version=0.0.4; charset=utf-8";
		api_handler_snap_put(h, s);
		return;
	}
	default:
		break;
	}

	s = api_handler_snap_get(h);
	if (s == NULL) {
		refuse(r, 503, "Central has not published its state yet");
		return;
	}
	switch (r->route) {
	case API_R_CPS: {
		/* Rendered once per snapshot: 1,000 CPs are 190 KB of JSON, and
		 * every client asks the same view. */
		struct api_snapshot *ms = (struct api_snapshot *)s;
		pthread_mutex_lock(&ms->cache_lock);
		if (ms->cps_json == NULL) {
			json_t *a = json_array();
			for (size_t i = 0; i < s->ncps; i++)
				json_array_append_new(a, api_json_cp(&s->cps[i]));
			ms->cps_json = api_json_dump(a);
		}
		char *body = xstrdup(ms->cps_json);
		pthread_mutex_unlock(&ms->cache_lock);
		answer(r, 200, body);
		break;
	}
	case API_R_CP: {
		const struct cp_view *v = find_cp(s, r->cp_id);
		if (v == NULL) {
			refuse(r, 404, "no such charging point");
			break;
		}
		json_t *o = api_json_cp(v);
		/* The snapshot is released before the database is read. */
		api_handler_snap_put(h, s);
		s = NULL;
		json_t *ss = query(h, Q_SESSIONS, r->cp_id, NULL, 0, 0, CP_SESSIONS, msg);
		json_t *ev = ss ? query(h, Q_EVENTS, r->cp_id, NULL, 0, 0, CP_EVENTS, msg) : NULL;
		if (ss == NULL || ev == NULL) {
			json_decref(o);
			json_decref(ss);
			refuse(r, 500, "%s", msg);
			break;
		}
		json_object_set_new(o, "sessions", ss);
		json_object_set_new(o, "events", ev);
		answer_json(r, 200, o);
		break;
	}
	case API_R_WEATHER:
		if (s->weather_json == NULL)
			answer(r, 200, xstrdup("{\"threshold\":0,\"cities\":[]}"));
		else
			answer(r, 200, xstrdup(s->weather_json));
		break;
	case API_R_EVENTS:
		api_hres_clear(r);
		r->action = API_H_EVENTS;
		r->status = 200;
		r->content_type = "text/event-stream";
		break;
	default:
		refuse(r, 500, "route %d has no reader", (int)r->route);
		break;
	}
	api_handler_snap_put(h, s);
}

/* ---------------------------------------------------------------- commands */

/* The body as a JSON object, or NULL with the 400 answered. */
static json_t *body_object(const struct api_hreq *q, struct api_hres *r, int required)
{
	if (q->body_len == 0) {
		if (required)
			refuse(r, 400, "this request needs a JSON body");
		return required ? NULL : json_object();
	}
	json_error_t je;
	json_t *j = json_loadb(q->body, q->body_len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		/* jansson quotes the text it choked on ("... near 'x'"): that is
		 * the client's own bytes, not repeated. */
		char t[120];
		clean_copy(t, sizeof t, je.text);
		char *near = strstr(t, " near ");
		if (near != NULL)
			*near = '\0';
		refuse(r, 400, "bad JSON: %s (at byte %d)", t, je.position);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		refuse(r, 400, "the body must be a JSON object");
		return NULL;
	}
	return j;
}

/* Only keys from the NULL-ended list allowed. */
static int only_keys(json_t *o, const char *const *keys, struct api_hres *r)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		int ok = 0;
		for (size_t i = 0; keys[i] && !ok; i++)
			ok = strcmp(k, keys[i]) == 0;
		if (!ok) {
			char kc[40];
			echo_name(kc, sizeof kc, k);
			refuse(r, 400, "unknown field '%s'", kc);
			return -1;
		}
	}
	return 0;
}

static int temperature(json_t *v, const char *what, double *out, struct api_hres *r)
{
	if (!json_is_number(v)) {
		refuse(r, 400, "%s must be a number (degrees C)", what);
		return -1;
	}
	double d = json_number_value(v);
	if (!isfinite(d) || d < TEMP_MIN || d > TEMP_MAX) {
		refuse(r, 400, "%s out of range (%.0f..%.0f degrees C)", what, TEMP_MIN, TEMP_MAX);
		return -1;
	}
	*out = d;
	return 0;
}

/* A person-readable string field of at most 255 bytes. */
static int text_field(json_t *v, const char *what, char *dst, struct api_hres *r)
{
	const char *s = json_string_value(v);
	if (s == NULL || s[0] == '\0' || json_string_length(v) > 255 || strlen(s) != json_string_length(v) ||
	    !msg_valid_text(s)) {
		refuse(r, 400, "%s must be a non-empty string of at most 255 bytes, no control characters", what);
		return -1;
	}
	xstrlcpy(dst, s, 256);
	return 0;
}

static void command(struct api_handler *h, const struct api_hreq *q, struct api_hres *r)
{
	struct api_req *c = &r->cmd;
	memset(c, 0, sizeof *c);
	c->kind = r->cmd_kind;
	xstrlcpy(c->token_name, r->token_name, sizeof c->token_name);
	clean_copy(c->source_ip, sizeof c->source_ip, q->source_ip ? q->source_ip : "");
	json_t *o = NULL;

	if (r->route == API_R_THRESHOLD) {
		static const char *const keys[] = { "threshold", NULL };
		c->kind = API_REQ_SET_THRESHOLD;
		if ((o = body_object(q, r, 1)) == NULL || only_keys(o, keys, r) != 0)
			goto out;
		json_t *t = json_object_get(o, "threshold");
		if (t == NULL) {
			refuse(r, 400, "missing field 'threshold'");
			goto out;
		}
		if (temperature(t, "threshold", &c->value, r) != 0)
			goto out;
	} else if (r->route == API_R_READINGS) {
		static const char *const keys[] = { "city", "temperature", "error", NULL };
		c->kind = API_REQ_WEATHER_READING;
		if ((o = body_object(q, r, 1)) == NULL || only_keys(o, keys, r) != 0)
			goto out;
		json_t *city = json_object_get(o, "city"), *t = json_object_get(o, "temperature"),
		       *e = json_object_get(o, "error");
		if (city == NULL) {
			refuse(r, 400, "missing field 'city'");
			goto out;
		}
		if (text_field(city, "city", c->city, r) != 0)
			goto out;
		if ((t == NULL) == (e == NULL)) {
			refuse(r, 400, "give either 'temperature' or 'error'");
			goto out;
		}
		if (t != NULL && temperature(t, "temperature", &c->value, r) != 0)
			goto out;
		if (e != NULL) {
			if (text_field(e, "error", c->error, r) != 0)
				goto out;
			c->has_error = 1;
		}
	} else {
		/* No fields: a body, if any, is an empty object. */
		static const char *const keys[] = { NULL };
		if ((o = body_object(q, r, 0)) == NULL || only_keys(o, keys, r) != 0)
			goto out;
		if (r->route == API_R_CP_CMD) {
			const struct api_snapshot *s = api_handler_snap_get(h);
			if (s == NULL) {
				refuse(r, 503, "Central has not published its state yet");
				goto out;
			}
			int known = find_cp(s, r->cp_id) != NULL;
			api_handler_snap_put(h, s);
			if (!known) {
				refuse(r, 404, "no such charging point");
				goto out;
			}
			xstrlcpy(c->cp_id, r->cp_id, sizeof c->cp_id);
		}
	}
	api_hres_clear(r);
	r->action = API_H_COMMAND;
	r->status = 0;
out:
	json_decref(o);
}

void api_handler_finish(struct api_handler *h, const struct api_hreq *q, struct api_hres *r)
{
	if (r->action != API_H_BODY)
		return;
	if (r->route == API_R_PAGE) {
		api_hres_clear(r);
		r->action = API_H_RESPOND;
		r->status = 200;
		r->body = (char *)h->page;
		r->body_len = h->page_len;
		r->body_static = 1;
		r->content_type = "text/html; charset=utf-8";
		r->is_page = 1;
		return;
	}
	if (q->body_overflow || q->body_len > API_BODY_MAX) {
		refuse(r, 413, "request body larger than %d bytes", API_BODY_MAX);
		return;
	}
	if (body_route(r->route) || cmd_route(r->route))
		command(h, q, r);
	else
		read_answer(h, q, r);
}

void api_handler_handle(struct api_handler *h, const struct api_hreq *q, struct api_hres *r)
{
	api_handler_precheck(h, q, r);
	api_handler_finish(h, q, r);
}
