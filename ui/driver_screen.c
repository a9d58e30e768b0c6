/* EV_Driver's screen (see driver_screen.h). Layout, top to bottom:
 * title bar; CPs (left) and the current supply / last ticket (right);
 * the last events; the key bar or the `r` prompt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curses.h>

#include "evc/clock.h"
#include "evc/money.h"
#include "evc/xalloc.h"
#include "ui/driver_screen.h"
#include "ui/pane.h"
#include "ui/theme.h"

#define EVENTS_KEPT 200
#define MIN_ROWS 16
#define MIN_COLS 60

struct driver_screen {
	struct pane_ring events;
	size_t sel;                /* selected row among the available CPs */
	int prompting;             /* typing a CP id after `r` */
	char prompt[MSG_CP_ID_MAX + 1];
	char notice[128];          /* one-shot message in the key bar */
};

struct driver_screen *driver_screen_open(int no_color, char err[EVC_ERR_LEN])
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
	struct driver_screen *ds = xcalloc(1, sizeof *ds);
	pane_ring_init(&ds->events, EVENTS_KEPT);
	return ds;
}

void driver_screen_close(struct driver_screen *ds)
{
	if (ds == NULL)
		return;
	endwin();
	pane_ring_free(&ds->events);
	free(ds);
}

void driver_screen_event(struct driver_screen *ds, const char *line)
{
	pane_ring_push(&ds->events, clock_wall(), LOG_INFO, line);
}

static int cp_state(const char *word)
{
	for (int st = 0; st < CP_STATE_COUNT; st++)
		if (strcmp(theme_state_word((enum cp_state)st), word) == 0)
			return st;
	return -1;
}

/* The CPs a driver can ask for now: ACTIVADO. Others are listed after
 * them, dimmed, so a driver sees why a CP is missing. */
static size_t available(const struct driver_view *v, size_t idx[], size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < v->ncps && n < max; i++)
		if (strcmp(v->cps[i].status, "ACTIVADO") == 0)
			idx[n++] = i;
	return n;
}

static void title(const struct driver_view *v, int cols)
{
	char buf[256], clk[24];
	attr_t a = theme_attr(THEME_TITLE);
	theme_fill(stdscr, 0, 0, 1, cols, a);
	clock_format(v->now_wall, clk, sizeof clk);
	const char *k = v->kafka_up == 1 ? "up" : v->kafka_up == 0 ? "DOWN" : "connecting";
	snprintf(buf, sizeof buf, " EV_Driver  driver %s  %s  Kafka %s", v->user_id,
		 v->file ? "file mode" : "", k);
	theme_puts(stdscr, 0, 0, cols, buf, a);
	theme_puts(stdscr, 0, cols - 9, 8, clk + 11, a);
}

static void draw_cps(struct driver_screen *ds, const struct driver_view *v, int y, int x, int h, int w)
{
	char buf[MSG_LOCATION_MAX + 80];
	size_t idx[512];
	theme_box(stdscr, y, x, h, w, theme_attr(THEME_DIM));
	size_t n = available(v, idx, sizeof idx / sizeof idx[0]);
	snprintf(buf, sizeof buf, " CPs available now: %zu ", n);
	theme_puts(stdscr, y, x + 2, w - 4, buf, theme_attr(THEME_TITLE));
	if (ds->sel >= n && n > 0)
		ds->sel = n - 1;
	int row = y + 1;
	if (v->status_at <= 0) {
		theme_puts(stdscr, row, x + 2, w - 4, "waiting for network_status...", theme_attr(THEME_DIM));
		return;
	}
	/* Scroll so the selection stays visible. */
	size_t first = 0, rows = (size_t)(h - 2);
	if (rows > 0 && ds->sel >= rows)
		first = ds->sel - rows + 1;
	for (size_t i = first; i < n && row < y + h - 1; i++, row++) {
		const struct msg_cp_status *c = &v->cps[idx[i]];
		char pb[MONEY_STR_LEN];
		snprintf(buf, sizeof buf, "%c %-12s %6s EUR/kWh  %s", i == ds->sel ? '>' : ' ', c->id,
			 money_price(pb, sizeof pb, c->price),
			 c->location);
		attr_t a = theme_attr(THEME_OK);
		if (i == ds->sel)
			a |= A_REVERSE;
		theme_puts(stdscr, row, x + 1, w - 2, buf, a);
	}
	/* The rest, dimmed, with their state word. */
	for (size_t i = 0; i < v->ncps && row < y + h - 1; i++) {
		const struct msg_cp_status *c = &v->cps[i];
		if (strcmp(c->status, "ACTIVADO") == 0)
			continue;
		int st = cp_state(c->status);
		snprintf(buf, sizeof buf, "  %-12s %s", c->id, c->status);
		theme_puts(stdscr, row++, x + 1, w - 2, buf,
			   st >= 0 ? theme_state_attr((enum cp_state)st) : theme_attr(THEME_DIM));
	}
	if (v->ncps == 0)
		theme_puts(stdscr, row, x + 2, w - 4, "no CP known to Central", theme_attr(THEME_DIM));
}

static void kv(int y, int x, int w, const char *k, const char *val, attr_t a)
{
	theme_puts(stdscr, y, x, 10, k, theme_attr(THEME_DIM));
	theme_puts(stdscr, y, x + 10, w - 10, val, a);
}

static void draw_supply(const struct driver_view *v, int y, int x, int h, int w)
{
	char buf[256], pb[MONEY_STR_LEN];
	theme_box(stdscr, y, x, h, w, theme_attr(THEME_DIM));
	theme_puts(stdscr, y, x + 2, w - 4, " Current supply ", theme_attr(THEME_TITLE));
	int r = y + 1, cx = x + 2, cw = w - 4;
	attr_t sa = v->supply == DRIVER_SUPPLY_CHARGING ? theme_attr(THEME_BUSY)
		    : v->supply == DRIVER_SUPPLY_NONE   ? theme_attr(THEME_DIM)
							: theme_attr(THEME_RESERVED);
	const char *word = v->supply == DRIVER_SUPPLY_NONE ? "none"
			 : v->supply == DRIVER_SUPPLY_WAITING ? "waiting for Central"
			 : v->supply == DRIVER_SUPPLY_AUTHORISED ? "authorised: plug in"
							      : "charging";
	kv(r++, cx, cw, "state", word, sa);
	if (v->supply != DRIVER_SUPPLY_NONE) {
		snprintf(buf, sizeof buf, "%s%s", v->cp_id, v->adopted ? "  (resumed)" : "");
		kv(r++, cx, cw, "CP", buf, theme_attr(THEME_NORMAL));
		kv(r++, cx, cw, "session", v->session_id[0] ? v->session_id : "-", theme_attr(THEME_NORMAL));
		int el = v->elapsed < 0 ? 0 : (int)v->elapsed;
		if (v->supply == DRIVER_SUPPLY_CHARGING) {
			snprintf(buf, sizeof buf, "%.2f kW", v->kw);
			kv(r++, cx, cw, "power", buf, theme_attr(THEME_BUSY));
			snprintf(buf, sizeof buf, "%.3f kWh", v->kwh);
			kv(r++, cx, cw, "energy", buf, theme_attr(THEME_BUSY));
			snprintf(buf, sizeof buf, "%.2f EUR", v->importe);
			kv(r++, cx, cw, "amount", buf, theme_attr(THEME_BUSY));
			snprintf(buf, sizeof buf, "%02d:%02d:%02d", el / 3600, el / 60 % 60, el % 60);
			kv(r++, cx, cw, "elapsed", buf, theme_attr(THEME_NORMAL));
		} else {
			snprintf(buf, sizeof buf, "%d s", el);
			kv(r++, cx, cw, "waiting", buf, theme_attr(THEME_NORMAL));
		}
	}
	if (v->has_ticket && r + 3 < y + h) {
		char t1[24], t2[24];
		r++;
		theme_puts(stdscr, r++, cx, cw, "Last ticket", theme_attr(THEME_TITLE));
		snprintf(buf, sizeof buf, "%.3f kWh x %s EUR/kWh = %.2f EUR", v->t_kwh,
			 money_price(pb, sizeof pb, v->t_price), v->t_importe);
		theme_puts(stdscr, r++, cx, cw, buf, theme_attr(THEME_OKTEXT));
		clock_format(v->t_started, t1, sizeof t1);
		clock_format(v->t_ended, t2, sizeof t2);
		snprintf(buf, sizeof buf, "%.19s -> %.8s", t1, t2 + 11);
		theme_puts(stdscr, r++, cx, cw, buf, theme_attr(THEME_NORMAL));
	}
	if (r < y + h - 2) {
		snprintf(buf, sizeof buf, "served %u  denied %u  failed %u  queued %zu", v->served, v->denied,
			 v->failed, v->queued);
		theme_puts(stdscr, y + h - 3, cx, cw, buf, theme_attr(THEME_DIM));
		snprintf(buf, sizeof buf, "total %.3f kWh  %.2f EUR", v->total_kwh, v->total_importe);
		theme_puts(stdscr, y + h - 2, cx, cw, buf, theme_attr(THEME_DIM));
	}
}

static attr_t event_attr(const struct pane_line *l)
{
	const char *p = l->text;
	if (!strncmp(p, "TICKET", 6) || !strncmp(p, "AUTH_OK", 7) || !strncmp(p, "PLUGGED", 7))
		return theme_attr(THEME_OKTEXT);
	if (!strncmp(p, "AUTH_DENIED", 11) || !strncmp(p, "SUPPLY_ERROR", 12) || !strncmp(p, "ERROR", 5) ||
	    !strncmp(p, "(error)", 7) || !strncmp(p, "SEND_ERROR", 10))
		return theme_attr(THEME_ERRTEXT);
	if (!strncmp(p, "TIMEOUT", 7) || !strncmp(p, "SESSION_CANCELLED", 17) || !strncmp(p, "(warn)", 6))
		return theme_attr(THEME_WARNTEXT);
	if (!strncmp(p, "CONSUMO", 7))
		return theme_attr(THEME_DIM);
	return theme_attr(THEME_NORMAL);
}

static void draw_events(struct driver_screen *ds, int y, int h, int cols)
{
	pane_ring_draw(stdscr, &ds->events, "Events", y, 0, h, cols, event_attr);
}

static void key_bar(struct driver_screen *ds, int y, int cols)
{
	attr_t bar = theme_attr(THEME_BAR), key = theme_attr(THEME_KEY);
	theme_fill(stdscr, y, 0, 1, cols, bar);
	if (ds->prompting) {
		char buf[96];
		snprintf(buf, sizeof buf, " Charge at CP: %s_   (Enter ask, Esc cancel)", ds->prompt);
		theme_puts(stdscr, y, 0, cols, buf, bar);
		return;
	}
	static const struct { const char *k, *what; } keys[] = {
		{"Enter", "charge at selected"}, {"r", "charge at CP..."}, {"Up/Dn", "select"}, {"q", "quit"},
	};
	int x = 1;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0] && x < cols; i++) {
		theme_puts(stdscr, y, x, cols - x, keys[i].k, key);
		x += (int)strlen(keys[i].k) + 1;
		theme_puts(stdscr, y, x, cols - x, keys[i].what, bar);
		x += (int)strlen(keys[i].what) + 2;
	}
	if (ds->notice[0] != '\0' && x < cols)
		theme_puts(stdscr, y, x, cols - x, ds->notice, bar);
}

void driver_screen_draw(struct driver_screen *ds, const struct driver_view *v)
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
	int top_h = (rows - 2) / 2 + 1;
	if (top_h < 12)
		top_h = 12;
	int left_w = cols / 2;
	draw_cps(ds, v, 1, 0, top_h, left_w);
	draw_supply(v, 1, left_w, top_h, cols - left_w);
	draw_events(ds, 1 + top_h, rows - 2 - top_h, cols);
	key_bar(ds, rows - 1, cols);
	refresh();
}

enum driver_screen_action driver_screen_keys(struct driver_screen *ds, const struct driver_view *v,
					     char cp[MSG_CP_ID_MAX + 1], int *redraw)
{
	int ch;
	size_t idx[512];
	size_t n = available(v, idx, sizeof idx / sizeof idx[0]);
	while ((ch = getch()) != ERR) {
		*redraw = 1;
		if (ch == KEY_RESIZE)
			continue;
		ds->notice[0] = '\0';
		if (ds->prompting) {
			size_t len = strlen(ds->prompt);
			if (ch == 27) {
				ds->prompting = 0;
			} else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
				ds->prompting = 0;
				if (len > 0) {
					xstrlcpy(cp, ds->prompt, MSG_CP_ID_MAX + 1);
					return DRIVER_SCREEN_REQUEST;
				}
			} else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
				if (len > 0)
					ds->prompt[len - 1] = '\0';
			} else if (ch > 0x20 && ch < 0x7f && len < MSG_CP_ID_MAX) {
				ds->prompt[len] = (char)ch;
				ds->prompt[len + 1] = '\0';
			}
			continue;
		}
		switch (ch) {
		case 'q':
		case 'Q':
			return DRIVER_SCREEN_QUIT;
		case 'r':
			ds->prompting = 1;
			ds->prompt[0] = '\0';
			break;
		case KEY_UP:
		case 'k':
			if (ds->sel > 0)
				ds->sel--;
			break;
		case KEY_DOWN:
		case 'j':
			if (ds->sel + 1 < n)
				ds->sel++;
			break;
		case '\n':
		case '\r':
		case KEY_ENTER:
			if (ds->sel < n) {
				xstrlcpy(cp, v->cps[idx[ds->sel]].id, MSG_CP_ID_MAX + 1);
				return DRIVER_SCREEN_REQUEST;
			}
			snprintf(ds->notice, sizeof ds->notice, "| no CP available: press r to type one");
			break;
		default:
			break;
		}
	}
	return DRIVER_SCREEN_NONE;
}
