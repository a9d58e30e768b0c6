/* The panel's stored history (ui/views.h views_source) read from Central's
 * SQLite file by a reader thread on a connection of its own, opened
 * read-only: in WAL mode its reads never block the writer (the main
 * connection of store.c) and the writer never blocks them. Every read is
 * one page (LIMIT, keyset on the v4 indexes). The views ask on the main
 * thread and take the answer on a later turn: neither waits for the
 * database, nor for the reader (its lock taken: handed over, or taken, on
 * a later turn), so no read stalls the main loop, however many rows it
 * goes through (the audit filter reads every row it does not match), and
 * the reader, at nice HISTORY_NICE, yields the CPU to it. A read
 * runs until it is done, or until a newer ask abandons it (its statement
 * is interrupted within HISTORY_CHECK_OPS steps). history_open,
 * history_close and the source's functions: one thread (the main one). */
#ifndef EVC_CENTRAL_HISTORY_H
#define EVC_CENTRAL_HISTORY_H
#include "evc/err.h"
#include "ui/views.h"

#define HISTORY_CHECK_OPS 1000 /* SQLite steps between the reader's looks for a newer ask */
#define HISTORY_NICE 10        /* the reader thread's nice value */

struct history;

/* Open the database at path read-only (it must exist: Central's store
 * made it) and start the reader. NULL with err. Caller frees with
 * history_close, which stops a read in flight and joins the reader. */
struct history *history_open(const char *path, char err[EVC_ERR_LEN]);
void history_close(struct history *h);
/* The views' ask and answer; valid while h is. */
const struct views_source *history_source(struct history *h);
/* Readable (POLLIN) while the answer to the last ask is in and not taken:
 * a loop may poll it instead of calling answer every few ms. */
int history_fd(const struct history *h);

struct history_stats {
	unsigned long started;     /* reads begun */
	unsigned long answered;    /* reads done whose answer was the last ask's */
	unsigned long abandoned;   /* reads overtaken by a newer ask (never answered) */
	unsigned long interrupted; /* ... of those, stopped mid-statement */
	unsigned long wake_failed; /* eventfd writes that failed */
	unsigned long late;        /* asks handed over by a later call (the lock was taken) */
	double longest_ms;         /* the longest read answered */
};
/* Any thread. */
void history_stats(struct history *h, struct history_stats *st);

#endif
