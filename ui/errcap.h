/* While a screen owns the terminal, anything written to stderr (by a
 * library: librdkafka, SQLite, OpenSSL) would scribble over it. errcap
 * puts a pipe in fd 2's place and hands every line to a sink (a pane),
 * from a reader thread of its own, until errcap_stop puts stderr back. */
#ifndef EVC_UI_ERRCAP_H
#define EVC_UI_ERRCAP_H

/* Called from the reader thread with one line (no newline). */
typedef void (*errcap_fn)(void *arg, const char *line);

struct errcap;

/* NULL if stderr cannot be redirected (then it is left as it was). Caller
 * ends it with errcap_stop, which restores fd 2 and joins the reader. */
struct errcap *errcap_start(errcap_fn fn, void *arg);
void errcap_stop(struct errcap *e);

#endif
