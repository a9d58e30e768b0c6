/* Readings to Central (EV_W(1)): POST
 * <central_api_url>/api/v1/weather/readings with {"city","temperature"}
 * or {"city","error"}, Authorization: Bearer <weather token>, answered
 * {"alert":bool,"cps":[ids]}. Everything here is pure: the URL and the
 * bodies, reading Central's answers, the backoff while Central cannot be
 * reached, and the outbox that keeps the latest reading per city while it
 * waits (never more than one per city, so a long outage costs nothing). */
#ifndef EVC_WEATHER_WPOST_H
#define EVC_WEATHER_WPOST_H
#include <stddef.h>

#include "evc/err.h"
#include "src/weather/wconfig.h"

#define WPOST_PATH "/api/v1/weather/readings"
#define WPOST_URL_MAX 512
#define WPOST_CPS_MAX 1000   /* ids in one answer; more is a bad answer */
#define WPOST_CPS_TEXT 512   /* "MAD-01,MAD-02,..." as kept for showing */
#define WPOST_ERROR_MAX 200  /* bytes of a provider error posted */
#define WPOST_BACKOFF_BASE 0.5
#define WPOST_BACKOFF_CAP 30.0

/* Central's API base URL: https only (the token must not travel in
 * clear), a host, an optional path prefix, no credentials, query or
 * fragment. Writes base + WPOST_PATH into out (WPOST_URL_MAX + 1 bytes).
 * -1 with err otherwise. */
int wpost_readings_url(char err[EVC_ERR_LEN], const char *base, char out[WPOST_URL_MAX + 1]);

/* The request bodies. Caller frees with free(). The temperature is
 * written with at most 10 significant digits (12.3, not
 * 12.300000000000001); error is cut to WPOST_ERROR_MAX bytes on a UTF-8
 * boundary. */
char *wpost_body_reading(const char *city, double temp);
char *wpost_body_error(const char *city, const char *error);

struct wpost_answer {
	int alert;                  /* 0 or 1 */
	size_t ncps;                /* ids in the answer */
	char cps[WPOST_CPS_TEXT];   /* comma-joined, ",..." when cut; "" for none */
};

/* Read a 200 answer {"alert":bool,"cps":["MAD-01",...]}: every id a CP id
 * (1 to 32 of A-Z a-z 0-9 _ -), at most WPOST_CPS_MAX. Other fields are
 * ignored. 0 with *a, or -1 with err. */
int wpost_parse_answer(char err[EVC_ERR_LEN], const char *body, size_t len, struct wpost_answer *a);

/* What Central's answer other than 200 means: the status and, when the
 * body is {"error":"..."}, its text (cleaned for a screen, cut to 120
 * bytes). E.g. "HTTP 401: bad token". */
void wpost_status_text(char err[EVC_ERR_LEN], long status, const char *body, size_t len);

/* How a post ended, and what follows from it. */
enum wpost_fate {
	WPOST_DELIVERED, /* 200 (even with a bad answer: Central has it) */
	WPOST_RETRY,     /* no answer, 429, 5xx: keep the reading, back off */
	WPOST_REFUSED,   /* other 4xx (token, role, body): drop it, no backoff */
};
/* status 0 means the transfer failed (no HTTP answer). */
enum wpost_fate wpost_fate_of(long status);

/* Exponential backoff with jitter: 0.5 s doubling to 30 s. */
struct wpost_backoff {
	double cur;
};
void wpost_backoff_reset(struct wpost_backoff *b);
/* The delay to wait now, in [cur/2, cur] where u in [0, 1] picks it
 * (the caller draws u at random); then cur doubles, up to the cap. */
double wpost_backoff_next(struct wpost_backoff *b, double u);

/* One reading waiting for Central. */
struct wpost_item {
	char city[WCONFIG_CITY_BYTES + 1];
	int is_error;
	double temp;
	char error[WPOST_ERROR_MAX + 1];
	double read_at;  /* clock_mono() when the provider answered */
	int announced;   /* already reported as not delivered */
};

/* The latest reading per city, at most WCONFIG_CITIES_MAX. */
struct wpost_outbox {
	struct wpost_item v[WCONFIG_CITIES_MAX];
	size_t n;
};
/* A new reading replaces the one of the same city (cities compare
 * without regard to case, as Central's do). When full of other cities
 * the oldest is dropped. Returns the slot. */
struct wpost_item *wpost_outbox_put(struct wpost_outbox *ob, const struct wpost_item *it);
/* Put back a reading whose post failed, unless a newer one for its city
 * came in meanwhile. Returns 1 if it was put back. */
int wpost_outbox_putback(struct wpost_outbox *ob, const struct wpost_item *it);
/* Take out the reading waiting longest into *out. 0 if empty. */
int wpost_outbox_take(struct wpost_outbox *ob, struct wpost_item *out);
/* The city's waiting reading, or NULL. */
struct wpost_item *wpost_outbox_find(struct wpost_outbox *ob, const char *city);
/* Drop the city's waiting reading (a city no longer configured). */
void wpost_outbox_drop(struct wpost_outbox *ob, const char *city);

#endif
