/* The small ncurses screens of EV_CP_E (engine) and EV_CP_M (monitor), in
 * the look of the Central panel (ui/theme.h). The programs' logic never
 * depends on the screen: they fill a view struct, call draw when something
 * changed, and get key presses back as the same command words their
 * --headless stdin takes ("k", "e", "u", "d 101", "a", "q"). */
#ifndef EVC_UI_CP_SCREEN_H
#define EVC_UI_CP_SCREEN_H
#include "evc/err.h"

struct cp_screen;

enum cp_screen_kind { CP_SCREEN_ENGINE, CP_SCREEN_MONITOR };

/* What the engine shows. Strings are borrowed for the call. */
struct cp_engine_view {
	const char *cp_id;      /* "" until the first HEALTH_CHECK */
	int ko;                 /* simulated fault */
	int stopped;            /* operator stop: "Out of Order" */
	int authorised;         /* an authorisation waits for the plug */
	int supplying;
	const char *driver;     /* authorised or supplying driver, "" if none */
	const char *session;
	double price, kw, kwh, importe;
	double power;           /* --power */
	int kafka_up;           /* -1 unknown, 0 down, 1 up */
	int monitor_up;         /* a monitor spoke within the last 5 s */
	int central_up;         /* as the monitor last said */
	const char *listen;     /* "port 5001" */
};

/* What the monitor shows. */
struct cp_monitor_view {
	const char *cp_id, *location;
	double price;
	const char *central_addr, *engine_addr;
	const char *central_link;  /* "up", "registering", "connecting", "down" */
	const char *engine_link;   /* "up", "connecting", "down" */
	const char *health;        /* "OK", "KO", "?" */
	const char *health_reason; /* why KO, "" otherwise */
	const char *cp_state;      /* a state word of evcharging(7) as this monitor sees it */
	const char *activity;      /* the engine's: IDLE, RESERVED, SUPPLYING, STOPPED or "" */
};

/* A command word from a key (same syntax as the headless stdin lines). */
typedef void (*cp_screen_cmd_fn)(void *arg, const char *cmd);

/* Take over the terminal (caller closes with cp_screen_close, which gives
 * it back). NULL with err filled if curses cannot start. */
struct cp_screen *cp_screen_open(enum cp_screen_kind kind, const char *title, char err[EVC_ERR_LEN]);
void cp_screen_close(struct cp_screen *s);
/* The fd to poll for keys (stdin). */
int cp_screen_fd(const struct cp_screen *s);
/* Read every pending key; calls fn for each complete command. Handles
 * resizing and the help overlay itself. */
void cp_screen_input(struct cp_screen *s, cp_screen_cmd_fn fn, void *arg);
/* Append a line to the event pane (copied; the last ones are kept). */
void cp_screen_event(struct cp_screen *s, const char *line);
/* Redraw with the current facts. Cheap enough to call once a second. */
void cp_screen_draw_engine(struct cp_screen *s, const struct cp_engine_view *v);
void cp_screen_draw_monitor(struct cp_screen *s, const struct cp_monitor_view *v);

#endif
