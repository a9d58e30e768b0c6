/* EV_Driver's ncurses screen: the CPs available now, the current supply
 * (CP, kW, kWh, EUR, elapsed), the last ticket, the last events and the
 * key help. Drawn only from the main loop's thread. */
#ifndef EVC_UI_DRIVER_SCREEN_H
#define EVC_UI_DRIVER_SCREEN_H
#include <stddef.h>

#include "evc/msg.h"
#include "evc/err.h"


enum driver_screen_supply {
	DRIVER_SUPPLY_NONE,
	DRIVER_SUPPLY_WAITING,    /* asked, no answer yet */
	DRIVER_SUPPLY_AUTHORISED, /* AUTH_OK: plug in */
	DRIVER_SUPPLY_CHARGING,
};

/* What the screen draws: filled by EV_Driver on every redraw. Strings and
 * the cps array are borrowed for the call. */
struct driver_view {
	const char *user_id;
	const char *file;                /* services file, or NULL */
	const struct msg_cp_status *cps; /* latest NETWORK_STATUS_UPDATE (all CPs) */
	size_t ncps;
	double status_at;                /* wall time of that update, 0 if none yet */
	int kafka_up;                    /* -1 unknown, 0 down, 1 up */
	double now_wall;
	/* the current supply */
	enum driver_screen_supply supply;
	const char *cp_id, *session_id;
	int adopted;                     /* found running, not asked for in this run */
	double kw, kwh, importe;
	double elapsed;                  /* s charging (or waiting for an answer) */
	/* the last ticket */
	int has_ticket;
	double t_kwh, t_importe, t_price, t_started, t_ended; /* wall times */
	/* this run */
	unsigned served, denied, failed;
	size_t queued;
	double total_kwh, total_importe;
};

enum driver_screen_action {
	DRIVER_SCREEN_NONE,
	DRIVER_SCREEN_REQUEST, /* cp filled: ask for a charge there */
	DRIVER_SCREEN_QUIT,
};

struct driver_screen;

/* Take over the terminal (theme_locale_init, initscr, theme_init). NULL
 * with err if stdin/stdout is not a terminal that curses can use. Caller
 * closes with driver_screen_close, which gives the terminal back. */
struct driver_screen *driver_screen_open(int no_color, char err[EVC_ERR_LEN]);
void driver_screen_close(struct driver_screen *ds);
/* Add a line to the events pane (copied). */
void driver_screen_event(struct driver_screen *ds, const char *line);
/* Redraw everything from the view (cheap; call when something changed or
 * on the clock tick). */
void driver_screen_draw(struct driver_screen *ds, const struct driver_view *v);
/* Read the keys waiting (non-blocking) and say what to do; on
 * DRIVER_SCREEN_REQUEST cp holds the CP id chosen. Returns 1 in *redraw
 * when the screen needs a redraw (selection moved, prompt edited). */
enum driver_screen_action driver_screen_keys(struct driver_screen *ds, const struct driver_view *v,
					     char cp[MSG_CP_ID_MAX + 1], int *redraw);

#endif
