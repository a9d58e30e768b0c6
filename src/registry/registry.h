/* EV_Registry's request handling (evcharging(7) SECURITY, EV_Registry(1)):
 * one HTTP request (method, path, the headers that matter, body) in, one
 * answer (status, JSON body, headers) out, against the shared SQLite file.
 * No sockets and no TLS here: main.c feeds it from libmicrohttpd, the
 * fuzzer (tests/fuzz/fuzz_registry.c) directly. Not thread-safe: one
 * thread calls it. */
#ifndef EVC_REGISTRY_REGISTRY_H
#define EVC_REGISTRY_REGISTRY_H
#include <stddef.h>

#include <sqlite3.h>

#include "evc/err.h"

#define REGISTRY_BODY_MAX 4096        /* bytes of a request body */
#define REGISTRY_TOKEN_MIN 16         /* shortest installer token accepted */
#define REGISTRY_AUTH_LIMIT 10        /* failed authentications... */
#define REGISTRY_AUTH_WINDOW 60.0     /* ...within this many seconds... */
#define REGISTRY_AUTH_BLOCK 60.0      /* ...block the address this long */
#define REGISTRY_RATE_SLOTS 1024      /* addresses the limiter remembers */

struct registry;

/* Open the database at db_path (created if missing; WAL, busy timeout,
 * schema_migrate) for requests authenticated by installer_token (at least
 * REGISTRY_TOKEN_MIN bytes; only its SHA-256 is kept). NULL with err. Caller
 * frees with registry_close. */
struct registry *registry_open(const char *db_path, const char *installer_token, char err[EVC_ERR_LEN]);
void registry_close(struct registry *r);
/* The connection (tests: the fuzzer turns synchronous off). */
sqlite3 *registry_db(struct registry *r);

struct registry_request {
	const char *method;        /* "GET", "POST", ... */
	const char *path;          /* "/v1/cps/MAD-01" (no query) */
	const char *authorization; /* the Authorization header, NULL if none */
	const char *content_type;  /* the Content-Type header, NULL if none */
	const char *peer;          /* the client's address ("127.0.0.1", "::1") */
	const char *body;          /* what arrived of the body (at most REGISTRY_BODY_MAX bytes) */
	size_t body_len;
	int body_too_large;        /* more than REGISTRY_BODY_MAX bytes announced or sent */
	/* 1: only the headers are in (body not read yet). The answer is then
	 * status 0 ("go on, read the body") unless the request can be refused
	 * already (429, 404, 405, 401, 413 by Content-Length), so a client
	 * that is not authenticated never gets its body read. */
	int headers_only;
	double now; /* monotonic seconds for the rate limit; 0: the clock's */
};

struct registry_response {
	int status;        /* HTTP status, or 0 (headers_only: read the body) */
	char *body;        /* JSON text, caller frees with free(); NULL for 204 and 0 */
	const char *allow; /* 405: the Allow header; else NULL */
	int retry_after;   /* 429: seconds for Retry-After; else 0 */
	/* For the request's log line: what happened, in words ("CP MAD-01
	 * registered"). Never holds a secret or token. */
	char note[160];
};

/* Answer one request. Changes (and their audit_log rows) are committed
 * before it returns; a database failure gives 500 and changes nothing. */
void registry_handle(struct registry *r, const struct registry_request *req, struct registry_response *resp);

/* The path as a log line may show it: a known route with its CP id, or
 * "/v1/cps/(invalid id)", or "(unknown path)" - never what a client made
 * up, which may be anything, a secret included. */
void registry_path_for_log(const char *path, char *buf, size_t n);

#endif
