/* EV_W's screen (see weather_screen.h). Layout, top to bottom: title bar
 * (Central's link, next cycle, clock); provider and config line; the city
 * table; the last events; the key bar. Keys come from one table that also
 * draws the help and the bar. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curses.h>

#include "evc/clock.h"
#include "evc/xalloc.h"
#include "ui/keys.h"
#include "ui/theme.h"
#include "ui/weather_screen.h"

#define EVENTS_KEPT 200
#define MIN_ROWS 12
#define MIN_COLS 60

struct weather_screen {
	char *events[EVENTS_KEPT]; /* ring, owned */
	size_t nevents;            /* total ever added */
	int help;                  /* the help box is up */
	size_t first;              /* first city row shown (scrolling) */
	size_t page;               /* city rows that fit, from the last draw */
	enum weather_screen_action action; /* set by a key handler */
};

/* ---- keys ---- */

static int k_quit(void *ctx, int key)
{
	(void)ctx;
	(void)key;
	return KEYS_QUIT;
}

static int k_help(void *ctx, int key)
{
	struct weather_screen *ws = ctx;
	(void)key;
	ws->help = 1;
	return KEYS_OK;
}

static int k_read(void *ctx, int key)
{
	struct weather_screen *ws = ctx;
	(void)key;
	ws->action = WEATHER_SCREEN_READ_NOW;
	return KEYS_OK;
}

static int k_down(void *ctx, int key)
{
	struct weather_screen *ws = ctx;
	ws->first += key == KEY_NPAGE && ws->page > 1 ? ws->page - 1 : 1;
	return KEYS_OK; /* clamped when drawn, against the rows there are */
}

static int k_up(void *ctx, int key)
{
	struct weather_screen *ws = ctx;
	size_t step = key == KEY_PPAGE && ws->page > 1 ? ws->page - 1 : 1;
	ws->first = ws->first > step ? ws->first - step : 0;
	return KEYS_OK;
}

static int k_redraw(void *ctx, int key)
{
	(void)ctx;
	(void)key;
	clearok(curscr, TRUE);
	return KEYS_OK;
}

static const struct keys_entry weather_key_list[] = {
	{'r', "r", "read every city now (start a cycle)", k_read, KEYS_BAR, "read now"},
	{KEY_DOWN, "Down", "scroll the cities down", k_down, 0, NULL},
	{'j', "j", "scroll the cities down", k_down, 0, NULL},
	{KEY_UP, "Up", "scroll the cities up", k_up, 0, NULL},
	{'k', "k", "scroll the cities up", k_up, 0, NULL},
	{KEY_NPAGE, "PgDn", "next page of cities", k_down, 0, NULL},
	{KEY_PPAGE, "PgUp", "previous page of cities", k_up, 0, NULL},
	{12, "^L", "redraw the whole screen", k_redraw, 0, NULL},
	{'?', "?", "this help", k_help, KEYS_BAR, "help"},
	{'q', "q", "quit", k_quit, KEYS_BAR, "quit"},
};

static const struct keys_table weather_keys = {weather_key_list, sizeof weather_key_list / sizeof weather_key_list[0]};

/* ---- open / close / events ---- */

struct weather_screen *weather_screen_open(int no_color, char err[EVC_ERR_LEN])
{
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		snprintf(err, EVC_ERR_LEN, "the screen needs a terminal on stdin and stdout");
		return NULL;
	}
	theme_locale_init();
	if (newterm(NULL, stdout, stdin) == NULL) {
		snprintf(err, EVC_ERR_LEN, "cannot start curses on terminal '%s'",
			 getenv("TERM") ? getenv("TERM") : "(TERM unset)");
		return NULL;
	}
	theme_init(no_color);
	cbreak();
	noecho();
	nodelay(stdscr, TRUE);
	keypad(stdscr, TRUE);
	curs_set(0);
	return xcalloc(1, sizeof(struct weather_screen));
}

void weather_screen_close(struct weather_screen *ws)
{
	if (ws == NULL)
		return;
	endwin();
	for (size_t i = 0; i < EVENTS_KEPT; i++)
		free(ws->events[i]);
	free(ws);
}

void weather_screen_event(struct weather_screen *ws, const char *line)
{
	size_t slot = ws->nevents % EVENTS_KEPT;
	char buf[24];

	free(ws->events[slot]);
	clock_format(clock_wall(), buf, sizeof buf);
	/* hh:mm:ss only: the date is noise on a live screen */
	ws->events[slot] = xasprintf("%.8s %s", buf + 11, line);
	ws->nevents++;
}

/* ---- drawing ---- */

static void age_text(char *buf, size_t n, double s)
{
	if (s < 0)
		s = 0;
	if (s < 100)
		snprintf(buf, n, "%.0fs", s);
	else if (s < 6000)
		snprintf(buf, n, "%.0fm", s / 60);
	else
		snprintf(buf, n, "%.0fh", s / 3600);
}

static void title(const struct weather_view *v, int cols)
{
	char buf[512], clk[24];
	attr_t a = theme_attr(THEME_TITLE);

	theme_fill(stdscr, 0, 0, 1, cols, a);
	snprintf(buf, sizeof buf, " EV_W weather office   Central %s", v->central);
	theme_puts(stdscr, 0, 0, cols - 10, buf, a);
	clock_format(v->now_wall, clk, sizeof clk);
	theme_puts(stdscr, 0, cols - 9, 8, clk + 11, a);
}

static void status_lines(const struct weather_view *v, int cols)
{
	char buf[512];
	const char *word;
	enum theme_role role;

	switch (v->link) {
	case WEATHER_LINK_UP:
		word = "Central: up";
		role = THEME_OKTEXT;
		break;
	case WEATHER_LINK_DOWN:
		word = "Central: UNREACHABLE";
		role = THEME_ERRTEXT;
		break;
	case WEATHER_LINK_REFUSED:
		word = "Central: REFUSED";
		role = THEME_ERRTEXT;
		break;
	default:
		word = "Central: not contacted yet";
		role = THEME_DIM;
		break;
	}
	theme_puts(stdscr, 1, 1, cols - 2, word, theme_attr(role));
	int x = 1 + (int)strlen(word) + 2;
	if (v->link == WEATHER_LINK_DOWN)
		snprintf(buf, sizeof buf, "retry in %.1f s (attempt %u)  waiting %zu  %s", v->retry_in > 0 ? v->retry_in : 0,
			 v->attempts + 1, v->outbox, v->link_error);
	else if (v->link == WEATHER_LINK_REFUSED)
		snprintf(buf, sizeof buf, "%s", v->link_error);
	else
		snprintf(buf, sizeof buf, "waiting %zu", v->outbox);
	theme_puts(stdscr, 1, x, cols - x - 1, buf, theme_attr(v->link == WEATHER_LINK_UP ? THEME_DIM : THEME_NORMAL));

	snprintf(buf, sizeof buf, "provider %s   every %d s   next cycle in %.0f s", v->provider, v->interval,
		 v->next_cycle_in > 0 ? v->next_cycle_in : 0);
	theme_puts(stdscr, 2, 1, cols - 2, buf, theme_attr(THEME_DIM));
	if (v->config_error != NULL && v->config_error[0] != '\0') {
		theme_puts(stdscr, 3, 1, cols - 2, "config error, running on the last good config:",
			   theme_attr(THEME_WARNTEXT));
		theme_puts(stdscr, 4, 3, cols - 4, v->config_error, theme_attr(THEME_WARNTEXT));
	}
}

/* Column positions for a width. */
struct cols {
	int city, temp, age, alert, cps, err, end;
};

static struct cols columns(int width)
{
	struct cols c;

	c.city = 1;
	c.temp = c.city + (width >= 100 ? 26 : 18);
	c.age = c.temp + 9;
	c.alert = c.age + 6;
	c.cps = c.alert + 8;
	c.err = c.cps + (width >= 100 ? 24 : 14);
	c.end = width - 1;
	return c;
}

static void table(struct weather_screen *ws, const struct weather_view *v, int y, int h, int cols)
{
	struct cols c = columns(cols);
	attr_t head = theme_attr(THEME_TITLE);
	char buf[512];

	theme_puts(stdscr, y, c.city, c.temp - c.city - 1, "City", head);
	theme_puts(stdscr, y, c.temp, 8, "Temp C", head);
	theme_puts(stdscr, y, c.age, 5, "Age", head);
	theme_puts(stdscr, y, c.alert, 7, "Alert", head);
	theme_puts(stdscr, y, c.cps, c.err - c.cps - 1, "CPs stopped", head);
	theme_puts(stdscr, y, c.err, c.end - c.err, "Last error", head);
	int rows = h - 1;
	if (rows < 1)
		return;
	ws->page = (size_t)rows;
	if (v->nrows <= (size_t)rows)
		ws->first = 0;
	else if (ws->first > v->nrows - (size_t)rows)
		ws->first = v->nrows - (size_t)rows;
	for (int r = 0; r < rows && ws->first + (size_t)r < v->nrows; r++) {
		const struct weather_row *w = &v->rows[ws->first + (size_t)r];
		int yy = y + 1 + r;
		int stale = w->has_temp && w->temp_age > 3.0 * v->interval + 10.0;
		theme_puts(stdscr, yy, c.city, c.temp - c.city - 1, w->city, theme_attr(THEME_NORMAL));
		if (w->has_temp) {
			snprintf(buf, sizeof buf, "%7.2f", w->temp);
			theme_puts(stdscr, yy, c.temp, 8, buf, theme_attr(stale ? THEME_DIM : THEME_NORMAL));
			age_text(buf, sizeof buf, w->temp_age);
			theme_puts(stdscr, yy, c.age, 5, buf, theme_attr(stale ? THEME_WARNTEXT : THEME_DIM));
		} else {
			theme_puts(stdscr, yy, c.temp, 8, w->fetching ? "   ..." : "      -", theme_attr(THEME_DIM));
		}
		if (w->alert == 1)
			theme_puts(stdscr, yy, c.alert, 7, "ALERT", theme_attr(THEME_WARN) | A_BOLD);
		else if (w->alert == 0)
			theme_puts(stdscr, yy, c.alert, 7, "ok", theme_attr(THEME_OKTEXT));
		else
			theme_puts(stdscr, yy, c.alert, 7, w->waiting ? "wait" : "?", theme_attr(THEME_DIM));
		if (w->alert == 1 && w->cps != NULL && w->cps[0] != '\0') {
			snprintf(buf, sizeof buf, "%zu: %s", w->ncps, w->cps);
			theme_puts(stdscr, yy, c.cps, c.err - c.cps - 1, buf, theme_attr(THEME_WARNTEXT));
		} else {
			theme_puts(stdscr, yy, c.cps, c.err - c.cps - 1, "-", theme_attr(THEME_DIM));
		}
		if (w->error != NULL && w->error[0] != '\0') {
			char age[16];
			age_text(age, sizeof age, w->error_age);
			snprintf(buf, sizeof buf, "%s (%s ago)", w->error, age);
			theme_puts(stdscr, yy, c.err, c.end - c.err, buf,
				   theme_attr(w->error_now ? THEME_ERRTEXT : THEME_DIM));
		}
	}
	if (v->nrows > (size_t)rows) {
		snprintf(buf, sizeof buf, " %zu-%zu of %zu (Up/Down, PgUp/PgDn) ", ws->first + 1,
			 ws->first + (size_t)rows < v->nrows ? ws->first + (size_t)rows : v->nrows, v->nrows);
		theme_puts(stdscr, y, cols - (int)strlen(buf) - 1, (int)strlen(buf), buf, theme_attr(THEME_DIM));
	}
}

static attr_t event_attr(const char *line)
{
	const char *p = strchr(line, ' '); /* after the time */
	p = p ? p + 1 : line;
	if (!strncmp(p, "error", 5) || !strncmp(p, "(error)", 7) || !strncmp(p, "central unreachable", 19) ||
	    !strncmp(p, "central refused", 15))
		return theme_attr(THEME_ERRTEXT);
	if (!strncmp(p, "(warn)", 6) || !strncmp(p, "config error", 12) || !strncmp(p, "key error", 9) ||
	    strstr(p, "alert=true") != NULL)
		return theme_attr(THEME_WARNTEXT);
	if (!strncmp(p, "central up", 10))
		return theme_attr(THEME_OKTEXT);
	return theme_attr(THEME_NORMAL);
}

static void events(struct weather_screen *ws, int y, int h, int cols)
{
	theme_hline(stdscr, y, 0, cols, theme_attr(THEME_DIM));
	theme_puts(stdscr, y, 2, cols - 4, " Events ", theme_attr(THEME_TITLE));
	size_t n = ws->nevents < EVENTS_KEPT ? ws->nevents : EVENTS_KEPT;
	size_t rows = h > 1 ? (size_t)(h - 1) : 0;
	size_t show = rows < n ? rows : n;
	for (size_t i = 0; i < show; i++) {
		const char *line = ws->events[(ws->nevents - show + i) % EVENTS_KEPT];
		theme_puts(stdscr, y + 1 + (int)i, 1, cols - 2, line, event_attr(line));
	}
}

void weather_screen_draw(struct weather_screen *ws, const struct weather_view *v)
{
	int rows, cols;

	getmaxyx(stdscr, rows, cols);
	erase();
	if (rows < MIN_ROWS || cols < MIN_COLS) {
		char buf[80];
		snprintf(buf, sizeof buf, "terminal too small (%dx%d, need %dx%d)", cols, rows, MIN_COLS, MIN_ROWS);
		theme_puts(stdscr, 0, 0, cols, buf, theme_attr(THEME_WARNTEXT));
		refresh();
		return;
	}
	title(v, cols);
	status_lines(v, cols);
	int top = 5;
	int avail = rows - top - 1;                 /* above the key bar */
	int ev_h = avail / 3 < 4 ? 4 : avail / 3;   /* events: a third, at least 4 */
	int tab_h = avail - ev_h;
	if ((size_t)tab_h > v->nrows + 1 && v->nrows + 1 >= 3)
		tab_h = (int)v->nrows + 1;          /* no empty rows: events get them */
	ev_h = avail - tab_h;
	table(ws, v, top, tab_h, cols);
	events(ws, top + tab_h, ev_h, cols);
	keys_draw_bar(stdscr, rows - 1, 0, cols, &weather_keys, 0);
	if (ws->help)
		keys_draw_help(stdscr, &weather_keys, "EV_W: keys", 0);
	refresh();
}

enum weather_screen_action weather_screen_keys(struct weather_screen *ws, int *redraw)
{
	int ch;

	ws->action = WEATHER_SCREEN_NONE;
	while ((ch = getch()) != ERR) {
		*redraw = 1;
		if (ch == KEY_RESIZE)
			continue;
		if (ws->help) { /* any key closes the help */
			ws->help = 0;
			continue;
		}
		if (keys_dispatch(&weather_keys, ch, ws, 0) == KEYS_QUIT)
			return WEATHER_SCREEN_QUIT;
	}
	return ws->action;
}
