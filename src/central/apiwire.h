/* The HTTPS API (api.h) as one more source of the main loop's events
 * (EV_Central(1) API): its commands go to the core like the console's,
 * their answers leave after the turn's COMMIT (store before act), and the
 * API's threads read only what this publishes: a snapshot of every CP,
 * the weather and the counters of /metrics, at most ten times a second,
 * and the event stream's lines. Main thread only. */
#ifndef EVC_CENTRAL_APIWIRE_H
#define EVC_CENTRAL_APIWIRE_H
#include <stddef.h>

#include "evc/err.h"
#include "src/central/api.h"
#include "src/central/core.h"

struct central;
struct apiwire;

/* Takes ownership of a (started). */
struct apiwire *apiwire_new(struct api *a);
/* Stops the API (pending requests get 503), joins its threads, frees. */
void apiwire_free(struct apiwire *w);
int apiwire_event_fd(const struct apiwire *w);
/* The API's queue is readable: run its commands on the core. */
void apiwire_take(struct central *c, struct apiwire *w);
/* After the turn's effects were stored (COMMIT done): the answers of this
 * turn's commands, the event stream's lines, and which CPs changed. */
void apiwire_on_effects(struct apiwire *w, const struct core_fxlist *fx);
/* The turn's COMMIT took seconds. */
void apiwire_observe_commit(struct apiwire *w, double seconds);
/* Every turn: publish the snapshot (and notify the changed CPs) if
 * something changed and 100 ms passed, or a second passed. */
void apiwire_refresh(struct central *c, struct apiwire *w, double wall, double mono);
/* One line for the panel's header: "Weather: Madrid -3.5 C ALERT ..."; ""
 * when no reading came yet. */
void apiwire_weather_line(const struct core *core, char *dst, size_t n);

#endif
