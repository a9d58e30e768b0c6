/* One HTTP(S) transfer as EV_W makes them, for a curl multi handle. The
 * provider's GET and Central's POST share these rules (EV_W(1) CENTRAL):
 * http and https only, no redirects followed, connect within 3 s, done
 * within 10 s, answers of at most 64 KiB (a longer one is aborted), TLS
 * verification always on (a CA file, or the system's CAs). */
#ifndef EVC_WEATHER_WHTTP_H
#define EVC_WEATHER_WHTTP_H
#include <stddef.h>

#include <curl/curl.h>

#include "evc/err.h"

#define WHTTP_CONNECT_TIMEOUT_MS 3000L
#define WHTTP_TIMEOUT_MS 10000L
#define WHTTP_BODY_MAX (64 * 1024)

struct whttp_opts {
	const char *url;       /* copied by libcurl */
	const char *cafile;    /* NULL: the system's CAs */
	const char *bearer;    /* NULL: no Authorization header */
	const char *json_body; /* NULL: GET; else POST of this JSON (copied) */
	int direct;            /* 1: never through a proxy from the environment */
};

struct whttp {
	CURL *h;
	struct curl_slist *headers;
	char *body;        /* the answer so far, NUL-terminated */
	size_t len;
	int too_big;       /* aborted past WHTTP_BODY_MAX */
	char errbuf[CURL_ERROR_SIZE];
	void *owner;       /* the caller's, untouched here */
	double started;    /* clock_mono() at whttp_new */
};

/* A transfer ready to add to a multi handle (CURLOPT_PRIVATE is the
 * struct whttp). Caller frees with whttp_free (after
 * curl_multi_remove_handle). NULL with err if libcurl refuses an option. */
struct whttp *whttp_new(char err[EVC_ERR_LEN], const struct whttp_opts *o);
void whttp_free(struct whttp *t);

/* The outcome once the multi handle reports it done with cc: 0 with the
 * HTTP status in *status (body in t->body), or -1 with err in words
 * ("timed out: ...", "cannot connect: ...", "TLS: ...", "answer larger
 * than 64 KiB"). err may hold libcurl's message: redact before showing. */
int whttp_outcome(char err[EVC_ERR_LEN], struct whttp *t, CURLcode cc, long *status);

#endif
