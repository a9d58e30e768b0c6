/* The API's request handler without sockets: one request in (method, path,
 * query arguments, the two headers that matter, body), one answer out
 * (status, body, headers), or a command for the main loop, or "open an
 * event stream". api.c puts it behind libmicrohttpd; the unit tests and
 * the fuzz target call it directly with a fixed snapshot and a temp
 * database. Thread-safe: MHD's threads call it at once.
 *
 * Order of checks (evcharging(7) API): path (404), method (405, with
 * Allow), rate limit (429), token (401), role (403), Content-Length (413),
 * Content-Type (415), body size (413), query and body (400), then the
 * answer (404 for an unknown CP, 503 before the first snapshot). */
#ifndef EVC_CENTRAL_API_HANDLER_H
#define EVC_CENTRAL_API_HANDLER_H
#include <stddef.h>
#include <stdint.h>

#include "src/central/api.h"
#include "src/central/api_json.h"
#include "src/central/api_tokens.h"

#define API_RL_WINDOW 60.0  /* s: denials counted over, and 429 lasts */
#define API_RL_DENIALS 10   /* denials in a window that start a 429 */
#define API_RL_ADDRS 1024   /* addresses remembered */

struct api_kv {
	const char *key, *value; /* value NULL: "key" without '=' */
};

struct api_hreq {
	const char *method, *path;   /* path without the query, as MHD decoded it */
	const struct api_kv *args;   /* query arguments, decoded */
	size_t nargs;
	const char *authorization;   /* header value, NULL if absent */
	const char *content_type;    /* header value, NULL if absent */
	long long content_length;    /* header value, -1 if absent */
	const char *body;            /* at most API_BODY_MAX bytes */
	size_t body_len;
	int body_overflow;           /* more than API_BODY_MAX bytes arrived */
	const char *source_ip;       /* "127.0.0.1", "::1" */
	double now;                  /* clock_mono(), for the rate limiter */
};

enum api_hact {
	API_H_RESPOND,   /* send status and body */
	API_H_BODY,      /* (precheck only) read the body, then api_handler_finish */
	API_H_COMMAND,   /* post cmd to the main loop; it answers */
	API_H_EVENTS,    /* open a /api/v1/events stream (status 200) */
};

enum api_route {
	API_R_NONE = 0, API_R_PAGE, API_R_METRICS, API_R_CPS, API_R_CP, API_R_CP_CMD, API_R_STOP_ALL,
	API_R_RESUME_ALL, API_R_SESSIONS, API_R_AUDIT, API_R_WEATHER, API_R_EVENTS, API_R_THRESHOLD,
	API_R_READINGS,
};

struct api_hres {
	enum api_hact action;
	int status;
	char *body;                  /* from malloc unless body_static */
	size_t body_len;
	int body_static;
	const char *content_type;
	const char *allow;           /* 405: the Allow header */
	int retry_after;             /* 429: seconds, else 0 */
	int www_authenticate;        /* 401 */
	int is_page;                 /* send the page's headers (CSP...) */
	struct api_req cmd;          /* API_H_COMMAND (id left 0) */
	int has_note;                /* note: an API_REQ_DENIED to post */
	struct api_req note;
	/* between api_handler_precheck and api_handler_finish */
	enum api_route route;
	enum api_req_kind cmd_kind;
	char token_name[API_TOKEN_NAME_MAX + 1];
	char cp_id[MSG_CP_ID_MAX + 1];
};
/* Frees the body (if owned); the struct can be reused. */
void api_hres_clear(struct api_hres *r);

struct api_handler;

/* Takes ownership of tokens (also on failure). db_path opened read-only
 * (it must exist). page (page_len bytes, not copied: it must outlive the
 * handler) is what GET / serves; its one <script> and one <style> are
 * hashed into the Content-Security-Policy. NULL with err on failure.
 * Caller frees with api_handler_free. */
struct api_handler *api_handler_new(struct api_tokens *tokens, const char *db_path, const unsigned char *page,
				    size_t page_len, char err[EVC_ERR_LEN]);
void api_handler_free(struct api_handler *h);

/* Takes ownership of s (NULL: none yet). Thread-safe. */
void api_handler_publish(struct api_handler *h, struct api_snapshot *s);
/* The current snapshot with a reference held (NULL if none); give it back
 * with api_handler_snap_put. */
const struct api_snapshot *api_handler_snap_get(struct api_handler *h);
void api_handler_snap_put(struct api_handler *h, const struct api_snapshot *s);

/* Headers known: route, method, rate limit, token, role, lengths, types.
 * res->action API_H_RESPOND (an early answer: do not read the body) or
 * API_H_BODY. body fields of req are ignored. res is overwritten. */
void api_handler_precheck(struct api_handler *h, const struct api_hreq *req, struct api_hres *res);
/* Body read: the answer (res from precheck, action API_H_BODY). */
void api_handler_finish(struct api_handler *h, const struct api_hreq *req, struct api_hres *res);
/* Both in one (tests, fuzz). */
void api_handler_handle(struct api_handler *h, const struct api_hreq *req, struct api_hres *res);

/* Count one answer by status for evc_api_requests_total. */
void api_handler_count(struct api_handler *h, int status);
/* Gauge of open streams, kept by api.c, shown in /metrics. */
void api_handler_set_streams(struct api_handler *h, size_t n);

/* The path of an answered request as audit notes and log lines tell it:
 * a CP id that names no known CP is shown as "?", an unknown path as
 * "(unknown path)". The path is the client's text, and neither an audit
 * row nor a log line may keep whatever it was (a token pasted in the
 * wrong place). */
void api_handler_path_text(struct api_handler *h, const struct api_hres *r, const char *path, char *dst, size_t n);

/* The page's Content-Security-Policy. */
const char *api_handler_csp(const struct api_handler *h);

#endif
