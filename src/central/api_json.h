/* The API's answers as text: a CP's JSON (GET /api/v1/cps and the event
 * stream share it) and the Prometheus text of GET /metrics. No I/O. */
#ifndef EVC_CENTRAL_API_JSON_H
#define EVC_CENTRAL_API_JSON_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "src/central/api.h"

/* A real, or null when not finite (jansson cannot print those). */
json_t *api_json_real(double d);
/* A wall-clock time: a number, or null for 0 (not yet). */
json_t *api_json_time(double t);
/* {"id","location","price","state","caption","link","driver_id","kw",
 * "kwh","importe","since"}; driver_id null when no session. Caller
 * json_decref's. */
json_t *api_json_cp(const struct cp_view *v);
/* Compact text of j (one line: control characters escaped); caller frees.
 * Takes a reference of j and drops it. NULL only if j is NULL. */
char *api_json_dump(json_t *j);
/* {"error":msg} as text; caller frees. */
char *api_json_error(const char *msg);

/* Prometheus text format 0.0.4 of snapshot s (NULL: zeros) plus the API's
 * own answer counts (codes[c] for status c, 100..599); caller frees. */
#define API_CODES 600
char *api_json_metrics(const struct api_snapshot *s, const uint64_t codes[API_CODES], size_t sse_clients);

#endif
