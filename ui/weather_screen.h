/* EV_W's ncurses screen: one row per city (temperature and its age,
 * Central's alert and the CPs it stopped, the last provider error), the
 * link to Central (up, unreachable with the next retry, or refused), the
 * next cycle, a config error if the file went bad, the last events, and
 * the key help. Drawn only from the view its program fills (it knows
 * nothing of EV_W's logic) and only from the main loop's thread. */
#ifndef EVC_UI_WEATHER_SCREEN_H
#define EVC_UI_WEATHER_SCREEN_H
#include <stddef.h>
#include "evc/err.h"


enum weather_link {
	WEATHER_LINK_UNKNOWN, /* nothing posted yet */
	WEATHER_LINK_UP,      /* the last post was answered 200 */
	WEATHER_LINK_DOWN,    /* unreachable (or 5xx): retrying with backoff */
	WEATHER_LINK_REFUSED, /* answered 4xx: token, role or request refused */
};

struct weather_row {
	const char *city;
	int has_temp;       /* a temperature was read at least once */
	double temp;        /* C */
	double temp_age;    /* s since it was read */
	int alert;          /* Central's answer: 1, 0, or -1 not known yet */
	const char *cps;    /* the CPs of the alert, "" for none */
	size_t ncps;
	const char *error;  /* last provider error, "" for none */
	int error_now;      /* 1 when the latest result is that error */
	double error_age;   /* s since the error */
	int fetching;       /* a provider request is under way */
	int waiting;        /* a reading waits to be posted */
};

struct weather_view {
	const char *central;       /* Central's API URL */
	const char *provider;      /* the provider's URL (no key in it) */
	const struct weather_row *rows;
	size_t nrows;
	int interval;              /* s between cycles */
	double next_cycle_in;      /* s */
	enum weather_link link;
	const char *link_error;    /* why, for DOWN and REFUSED */
	double retry_in;           /* s until the next post attempt (DOWN) */
	unsigned attempts;         /* failed attempts in a row */
	size_t outbox;             /* readings waiting for Central */
	const char *config_error;  /* "" when the config is good */
	double now_wall;
};

enum weather_screen_action {
	WEATHER_SCREEN_NONE,
	WEATHER_SCREEN_READ_NOW, /* start a cycle now */
	WEATHER_SCREEN_QUIT,
};

struct weather_screen;

/* Take over the terminal (theme_locale_init, newterm, theme_init). NULL
 * with err if stdin/stdout is not a terminal curses can use. Caller closes
 * with weather_screen_close, which gives the terminal back. */
struct weather_screen *weather_screen_open(int no_color, char err[EVC_ERR_LEN]);
void weather_screen_close(struct weather_screen *ws);
/* Add a line to the events pane (copied; the time is put in front). */
void weather_screen_event(struct weather_screen *ws, const char *line);
/* Redraw everything from the view. */
void weather_screen_draw(struct weather_screen *ws, const struct weather_view *v);
/* Read the keys waiting (non-blocking) and say what to do; *redraw is set
 * when the screen needs drawing (help opened or closed, resize). */
enum weather_screen_action weather_screen_keys(struct weather_screen *ws, int *redraw);

#endif
