/* The operator's panel: EV_Central's live ncurses colour grid. It draws
 * only from the view its program fills in (struct panel_view) and hands
 * command lines back through exec: it never calls Central's logic, so
 * any program able to fill a panel_view can show it. Main thread only,
 * except that log_msg() lines from any thread reach its log pane. */
#ifndef EVC_UI_PANEL_H
#define EVC_UI_PANEL_H
#include <stddef.h>

#include "evc/cpview.h"
#include "evc/err.h"
#include "evc/log.h"

/* The header line. */
struct panel_status {
	char listen[96];        /* "0.0.0.0:7000" */
	char kafka[96];         /* bootstrap address */
	char db[256];           /* database path */
	int kafka_up;
	char kafka_reason[128]; /* why unreachable */
	size_t links;           /* open CP link connections */
	/* A third header row (evcharging(7) WEATHER): cities, temperatures,
	 * alerts, stale readings; "" = no row. */
	char weather[256];
};

struct views_source;

/* Everything the panel shows besides its own panes. The program owns it
 * and may change it between panel calls; rev must change whenever
 * anything in it did (the panel redraws then). */
struct panel_view {
	const struct cp_view *cps; /* in id order */
	size_t ncps;
	size_t counts[CP_STATE_COUNT];
	struct panel_status status;
	unsigned long rev;
	/* The stored history the views read (ui/views.h); NULL: none. */
	const struct views_source *src;
};

/* Run one operator command line ("P MAD-01", "PT", "Q"...): 0 if sent, -1
 * if refused (msg says why), 1 to quit. */
typedef int (*panel_exec_fn)(void *arg, const char *line, char msg[EVC_ERR_LEN]);

struct panel;

/* Take over the terminal (stdin/stdout). readonly refuses every command;
 * no_color (or a non-empty NO_COLOR) gives a monochrome panel. While the
 * panel lives, log_msg() lines and whatever is written to stderr go to
 * its log pane. NULL with err if the terminal cannot be used. Caller frees
 * with panel_close, which restores the terminal. */
struct panel *panel_open(panel_exec_fn exec, void *exec_arg, int readonly, int no_color,
			 char err[EVC_ERR_LEN]);
void panel_close(struct panel *p);
/* Mouse clicks on the grid (on unless --no-mouse): a click selects a
 * card, a double click opens its detail. */
void panel_set_mouse(struct panel *p, int on);
/* The panel shows a Central of another process (EV_Central attach), at
 * where (its control socket): the title says so, and q (or :Q) asks
 * whether to detach (panel_input returns 1, Central goes on) or to stop
 * Central (exec "Q", then panel_input returns 1). */
void panel_set_attached(struct panel *p, const char *where);
/* The fd to poll for keys (-1 once the terminal has gone away). */
int panel_fd(const struct panel *p);
/* Keys are waiting: read and act on them. 1 when the operator asked to
 * quit (and confirmed), else 0. */
int panel_input(struct panel *p, const struct panel_view *v);
/* A line for the log pane; tag ("LINK", "KAFKA") may be NULL or "". */
void panel_log(struct panel *p, double ts, enum log_level lvl, const char *tag, const char *text);
/* A driver request and its outcome for the requests pane. */
void panel_request(struct panel *p, double ts, const char *user_id, const char *cp_id, const char *outcome);
/* Redraw if something changed (v->rev, the panes, a key) or the clock
 * ticked, at most ten times a second. now = wall clock. */
void panel_refresh(struct panel *p, const struct panel_view *v, double now);
/* Longest the caller may sleep before panel_refresh must run (ms). */
int panel_timeout_ms(const struct panel *p);

#endif
