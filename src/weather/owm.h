/* The OpenWeather-compatible provider (EV_W(1)):
 * GET <provider>/data/2.5/weather?q=<city>&appid=<key>&units=metric and
 * its answer {"main":{"temp":<C>},...}. Building the URL, reading the
 * answer and naming what went wrong are pure functions, unit-tested and
 * fuzzed; the transfer itself is whttp's.
 *
 * The URL holds the API key: it is never logged or shown. Errors name the
 * city, never the URL, and owm_redact scrubs the key out of any text that
 * came from elsewhere (libcurl's messages) before it is shown. */
#ifndef EVC_WEATHER_OWM_H
#define EVC_WEATHER_OWM_H
#include <stddef.h>

#include "evc/err.h"

#define OWM_TEMP_MIN -100.0
#define OWM_TEMP_MAX 100.0
#define OWM_PATH "/data/2.5/weather"

/* The request URL: provider (no trailing '/') + OWM_PATH +
 * "?q=<city>&appid=<key>&units=metric", city and key escaped with
 * curl_easy_escape. Caller frees with free(). NULL with err on a failure
 * (err never holds the key). */
char *owm_url(char err[EVC_ERR_LEN], const char *provider, const char *city, const char *key);

/* Read a 200 answer: main.temp must be a finite number in -100..100 (C).
 * 0 with *temp, or -1 with err: "bad JSON: ..." when the body is not a
 * JSON object, "no temperature: ..." when main.temp is missing, not a
 * number or out of range. */
int owm_parse(char err[EVC_ERR_LEN], const char *body, size_t len, double *temp);

/* What an HTTP status other than 200 means, in words ("city not found
 * (HTTP 404)", "provider refused the API key (HTTP 401)", "provider
 * error (HTTP 503)", ...). */
void owm_status_text(char err[EVC_ERR_LEN], long status);

/* Make text from a peer fit for a screen or a log line, in place: every
 * control character (C0, DEL, C1) and every byte of an invalid UTF-8
 * sequence becomes '?'. */
void owm_clean(char *s);

/* Replace every occurrence of key (as is and as curl_easy_escape writes
 * it) in s by "***", in place. No-op for an empty key. */
void owm_redact(char *s, size_t size, const char *key);

#endif
