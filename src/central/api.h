/* Central's operator API: HTTPS (libmicrohttpd over GnuTLS, TLS 1.2+),
 * JSON in and out, the web page and Prometheus metrics (evcharging(7) API,
 * EV_Central(1)).
 *
 * The API is one more worker of Central's main loop: its threads (MHD's
 * polling threads and one timer thread) never touch the core or the
 * screen. Read requests are answered from the last snapshot the main loop
 * published (api_publish) or from a read-only SQLite connection of the
 * API's own; commands are queued for the main loop (api_event_fd /
 * api_drain) and answered by it (api_reply) or, after answer_timeout, with
 * 503. The main thread calls api_drain, api_reply, api_publish,
 * api_notify_* and api_stop; everything else here is internal. */
#ifndef EVC_CENTRAL_API_H
#define EVC_CENTRAL_API_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "evc/cpview.h"
#include "evc/err.h"
#include "evc/msg.h"

#define API_BODY_MAX 16384 /* bytes of a request body */

struct api_config {
	const char *listen;          /* default "127.0.0.1"; IPv6 literal ok */
	int port;                    /* 0 = pick (api_port tells) */
	const char *cert_file, *key_file; /* PEM, Central's certificate */
	const char *tokens_file;     /* NAME ROLE TOKEN lines, mode-checked */
	const char *db_path;         /* opened READ-ONLY by the API threads for
	                                sessions, audit and a CP's history */
	double answer_timeout;       /* s the main loop has to answer a command (5) */
	/* Bounds; 0 takes the default. */
	int max_conns;               /* open HTTPS connections (256) */
	int max_sse_clients;         /* /api/v1/events streams at once (32) */
	size_t sse_queue_bytes;      /* unsent bytes per stream before it is dropped (2 MiB) */
	size_t queue_max;            /* commands waiting or being worked on (256) */
	double conn_timeout;         /* s a connection may stay idle (15) */
	double keepalive;            /* s between comment lines on a quiet stream (10);
	                                a client gone is noticed within two */
};

enum api_req_kind { API_REQ_STOP, API_REQ_RESUME, API_REQ_REVOKE,
	API_REQ_STOP_ALL, API_REQ_RESUME_ALL, API_REQ_SET_THRESHOLD,
	API_REQ_WEATHER_READING, API_REQ_DENIED /* to audit, no answer */ };

struct api_req {                 /* plain data: copied across threads */
	uint64_t id;                 /* for api_reply */
	enum api_req_kind kind;
	char token_name[64];         /* actor is "api:<token_name>"; "" if no valid token */
	char source_ip[64];
	char cp_id[MSG_CP_ID_MAX + 1];
	char city[256];              /* WEATHER_READING */
	double value;                /* threshold or temperature */
	int has_error; char error[256]; /* WEATHER_READING with {"city","error"} */
	/* DENIED: "GET /api/v1/cps: 401 bad token"; starts with the method and
	 * path, then the status. Printable ASCII only, never a token. */
	char detail[256];
	int status;                  /* DENIED: 401, 403 or 429 (429: the address
	                                was rate limited; one note per 60 s window) */
};

/* Store commit latency histogram: upper bounds in seconds (+Inf implied). */
#define API_COMMIT_BUCKETS 12
extern const double api_commit_bounds[API_COMMIT_BUCKETS];

/* Counters the main loop keeps and copies into every snapshot. */
struct api_metrics {
	uint64_t links_tls, links_plain;      /* open CP links by kind */
	uint64_t open_sessions;
	uint64_t telemetry_accepted, telemetry_rejected;
	uint64_t driver_authorised, driver_denied;
	int kafka_up;                         /* 1 or 0 */
	/* Observations per bucket, NOT cumulative: commit_in[i] counts those in
	 * (bounds[i-1], bounds[i]]; the ones above the last bound are
	 * commit_count minus their sum. Fill with api_metrics_observe_commit. */
	uint64_t commit_in[API_COMMIT_BUCKETS];
	uint64_t commit_count;
	double commit_sum;
};
void api_metrics_observe_commit(struct api_metrics *m, double seconds);

/* The main loop's latest view. */
struct api_snapshot {
	struct cp_view *cps; size_t ncps;  /* sorted by id (strcmp) */
	char *weather_json;                /* GET /api/v1/weather body, or NULL */
	struct api_metrics metrics;
	double at;                         /* wall clock */
	unsigned refs;                     /* the API's own count: leave it 0 */
	/* The API's own: GET /api/v1/cps's body, made by the first request
	 * that needs it and shared by the rest (cache_lock). */
	pthread_mutex_t cache_lock;
	char *cps_json;
};
/* A zeroed snapshot with room for ncps views. Caller hands it to
 * api_publish or frees it with api_snapshot_free. The snapshot owns cps
 * and weather_json and frees them with free(): either may be replaced by
 * any malloc'd block (view_all's array, an xstrdup). */
struct api_snapshot *api_snapshot_new(size_t ncps);
void api_snapshot_free(struct api_snapshot *s);

struct api;

/* Loads the tokens (refusing a file readable by group or others), the
 * certificate and key (the key under the same rule), opens the database
 * read-only and binds now, so a taken port or a bad file is reported at
 * start. NULL with err on failure. Caller frees with api_free. */
struct api *api_new(const struct api_config *cfg, char err[EVC_ERR_LEN]);
int  api_port(const struct api *a);
/* Starts MHD's threads and the timer thread. 0, or -1 with err. */
int  api_start(struct api *a, char err[EVC_ERR_LEN]);
/* Readable (an eventfd) while requests wait for api_drain. */
int  api_event_fd(const struct api *a);
/* Main thread: up to max waiting requests, in order. Every kind but
 * API_REQ_DENIED must be answered with api_reply(id, ...). */
size_t api_drain(struct api *a, struct api_req *out, size_t max);
/* Answer request id: status and a JSON body (copied; NULL gives "{}" or a
 * generic error). A late (already 503) or unknown id is ignored. Bodies the
 * handlers expect: 202 {"sent":true} or 409 {"error":..} for a CP command,
 * 202 {"sent":[ids],"failed":[{"id","error"}]} for stop-all/resume-all,
 * 200 {"threshold":x} for SET_THRESHOLD, 200 {"alert":bool,"cps":[ids]}
 * for a WEATHER_READING; 404 {"error":..} if the CP is unknown after all. */
void api_reply(struct api *a, uint64_t id, int status, const char *json);
/* Replace the view answered from (takes ownership of s; the previous one
 * is freed once no request uses it). A new event stream starts from this
 * view, so publish a change before notifying it: a stream opened between
 * the two then sees it twice (harmless), never not at all. */
void api_publish(struct api *a, struct api_snapshot *s);
/* One CP changed: "event: cp" with its JSON (the shape of GET
 * /api/v1/cps) to every /api/v1/events client. Each client has a bounded
 * queue; one that falls sse_queue_bytes behind is dropped (it reconnects
 * and starts over), never buffered without bound. */
void api_notify_cp(struct api *a, const struct cp_view *v);
/* "event: <kind>" with json (one JSON value) to every stream. kind is
 * "request" (a driver request and its outcome), "audit" (an audit row, the
 * shape of GET /api/v1/audit) or "weather" (the body of GET
 * /api/v1/weather). The last 20 request and audit lines are replayed to a
 * new stream. Other kinds are ignored. */
void api_notify_line(struct api *a, const char *kind, const char *json);
/* Open /api/v1/events streams (tests, status line). */
size_t api_sse_clients(const struct api *a);
/* No more requests (503); pending ones get 503; streams end. */
void api_stop(struct api *a);
/* Stops if needed, joins every thread, frees. NULL is fine. */
void api_free(struct api *a);

#endif
