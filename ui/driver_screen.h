/* EV_Driver's ncurses screen: the CPs available now, the current supply
 * (CP, kW, kWh, EUR, elapsed), the last ticket, the last events and the
 * key help. Drawn only from the main loop's thread. */
#ifndef EVC_UI_DRIVER_SCREEN_H
#define EVC_UI_DRIVER_SCREEN_H
#include "evc/msg.h"
#include "src/driver/driver.h"

#define DRIVER_SCREEN_ERR_LEN 256

enum driver_screen_action {
	DRIVER_SCREEN_NONE,
	DRIVER_SCREEN_REQUEST, /* cp filled: ask for a charge there */
	DRIVER_SCREEN_QUIT,
};

struct driver_screen;

/* Take over the terminal (theme_locale_init, initscr, theme_init). NULL
 * with err if stdin/stdout is not a terminal that curses can use. Caller
 * closes with driver_screen_close, which gives the terminal back. */
struct driver_screen *driver_screen_open(int no_color, char err[DRIVER_SCREEN_ERR_LEN]);
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
