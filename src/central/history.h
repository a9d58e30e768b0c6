/* The panel's stored history (ui/views.h views_source) read from Central's
 * SQLite file on a connection of its own, opened read-only: in WAL mode
 * its reads never block the writer (the main connection of store.c) and
 * the writer never blocks them. Every read is one page (LIMIT, keyset on
 * the v4 indexes) and is stopped if it runs past HISTORY_BUDGET_MS, so the
 * main loop, which calls these, cannot stall on a read. Main thread only. */
#ifndef EVC_CENTRAL_HISTORY_H
#define EVC_CENTRAL_HISTORY_H
#include "evc/err.h"
#include "ui/views.h"

#define HISTORY_BUDGET_MS 50

struct history;

/* Open the database at path read-only (it must exist: Central's store
 * made it). NULL with err. Caller frees with history_close. */
struct history *history_open(const char *path, char err[EVC_ERR_LEN]);
void history_close(struct history *h);
/* The read functions for the views; valid while h is. */
const struct views_source *history_source(struct history *h);

#endif
