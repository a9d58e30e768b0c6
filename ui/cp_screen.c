/* The engine's and the monitor's screens (see cp_screen.h). Single thread:
 * only the program's main loop calls in here. */
#include "ui/cp_screen.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evc/clock.h"
#include "evc/xalloc.h"
#include "ui/pane.h"
#include "ui/theme.h"

#define EVENTS_KEPT 200
#define PROMPT_MAX 64

struct cp_screen {
	enum cp_screen_kind kind;
	char title[128];
	struct pane_ring events;
	int prompt;                /* 'd' pressed: reading a driver id */
	char pbuf[PROMPT_MAX + 1];
	size_t plen;
	int help;
	/* last views, to redraw on resize / new events */
	int have_view;
	struct cp_engine_view ev;
	struct cp_monitor_view mv;
	char sv[16][160];          /* copies of the view's strings */
};

static const char *const engine_keys[][2] = {
	{"k", "fault on/off"}, {"e", "plug in"}, {"u", "unplug"}, {"d", "charge for driver"}, {"?", "help"},
	{"q", "quit"},
};
static const char *const monitor_keys[][2] = {
	{"a", "re-authenticate / retry"}, {"s", "status line"}, {"?", "help"}, {"q", "quit"}};

struct cp_screen *cp_screen_open(enum cp_screen_kind kind, const char *title, char err[EVC_ERR_LEN])
{
	theme_locale_init();
	if (newterm(NULL, stdout, stdin) == NULL) {
		snprintf(err, EVC_ERR_LEN, "cannot start the screen (TERM=%s)", getenv("TERM") ? getenv("TERM") : "unset");
		return NULL;
	}
	struct cp_screen *s = xcalloc(1, sizeof *s);
	s->kind = kind;
	pane_ring_init(&s->events, EVENTS_KEPT);
	snprintf(s->title, sizeof s->title, "%s", title);
	theme_init(0);
	cbreak();
	noecho();
	nodelay(stdscr, TRUE);
	keypad(stdscr, TRUE);
	curs_set(0);
	return s;
}

void cp_screen_close(struct cp_screen *s)
{
	if (s == NULL)
		return;
	endwin();
	pane_ring_free(&s->events);
	free(s);
}

int cp_screen_fd(const struct cp_screen *s)
{
	(void)s;
	return STDIN_FILENO;
}

void cp_screen_event(struct cp_screen *s, const char *line)
{
	pane_ring_push(&s->events, clock_wall(), LOG_INFO, line);
}

static void redraw(struct cp_screen *s);

void cp_screen_input(struct cp_screen *s, cp_screen_cmd_fn fn, void *arg)
{
	int ch;
	while ((ch = getch()) != ERR) {
		if (ch == KEY_RESIZE) {
			redraw(s);
			continue;
		}
		if (s->help) { /* any key closes the help */
			s->help = 0;
			redraw(s);
			continue;
		}
		if (s->prompt) {
			if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
				char cmd[PROMPT_MAX + 8];
				snprintf(cmd, sizeof cmd, "d %s", s->pbuf);
				s->prompt = 0;
				if (s->plen > 0)
					fn(arg, cmd);
			} else if (ch == 27) {
				s->prompt = 0;
			} else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
				if (s->plen > 0)
					s->pbuf[--s->plen] = '\0';
			} else if (ch >= 0x21 && ch < 0x7f && s->plen < PROMPT_MAX) {
				s->pbuf[s->plen++] = (char)ch;
				s->pbuf[s->plen] = '\0';
			}
			redraw(s);
			continue;
		}
		char cmd[2] = {0, 0};
		switch (ch) {
		case '?':
			s->help = 1;
			break;
		case 'd':
			if (s->kind == CP_SCREEN_ENGINE) {
				s->prompt = 1;
				s->plen = 0;
				s->pbuf[0] = '\0';
			}
			break;
		case 'k': case 'e': case 'u':
			if (s->kind == CP_SCREEN_ENGINE)
				cmd[0] = (char)ch;
			break;
		case 's': case 'a':
			if (s->kind == CP_SCREEN_MONITOR)
				cmd[0] = (char)ch;
			break;
		case 'q':
			cmd[0] = 'q';
			break;
		default:
			break;
		}
		if (cmd[0])
			fn(arg, cmd);
		redraw(s);
	}
}

/* ---- drawing ---- */

static int state_of(const char *w)
{
	int st = cp_state_parse(w);
	return st < 0 ? CP_DESCONECTADO : st;
}

static void field(int y, int x, const char *label, const char *value, attr_t a)
{
	int w = COLS - x - 1;
	if (w <= 0)
		return;
	theme_puts(stdscr, y, x, w, label, theme_attr(THEME_DIM));
	theme_puts(stdscr, y, x + 10, w - 10, value, a);
}

static attr_t link_attr(int up)
{
	return theme_attr(up ? THEME_OKTEXT : THEME_ERRTEXT);
}

static void draw_bar(struct cp_screen *s)
{
	int y = LINES - 1;
	theme_fill(stdscr, y, 0, 1, COLS, theme_attr(THEME_BAR));
	if (s->prompt) {
		char line[PROMPT_MAX + 64];
		snprintf(line, sizeof line, " driver id: %s_   (Enter asks Central, Esc cancels)", s->pbuf);
		theme_puts(stdscr, y, 0, COLS, line, theme_attr(THEME_BAR));
		return;
	}
	const char *const(*keys)[2] = s->kind == CP_SCREEN_ENGINE ? engine_keys : monitor_keys;
	size_t n = s->kind == CP_SCREEN_ENGINE ? sizeof engine_keys / sizeof engine_keys[0]
					       : sizeof monitor_keys / sizeof monitor_keys[0];
	int x = 1;
	for (size_t i = 0; i < n && x < COLS; i++) {
		theme_puts(stdscr, y, x, COLS - x, keys[i][0], theme_attr(THEME_KEY));
		x += (int)strlen(keys[i][0]) + 1;
		theme_puts(stdscr, y, x, COLS - x, keys[i][1], theme_attr(THEME_BAR));
		x += (int)strlen(keys[i][1]) + 2;
	}
}

static attr_t event_attr(const struct pane_line *l)
{
	if (strstr(l->text, "ERROR") || strstr(l->text, " KO") || strstr(l->text, "down") ||
	    strstr(l->text, "AVERIADO"))
		return theme_attr(THEME_ERRTEXT);
	if (strstr(l->text, "warn"))
		return theme_attr(THEME_WARNTEXT);
	return theme_attr(THEME_NORMAL);
}

static void draw_events(struct cp_screen *s, int top)
{
	int rows = LINES - 1 - top;
	if (rows <= 1)
		return;
	pane_ring_draw(stdscr, &s->events, "events", top, 0, rows, COLS, event_attr);
}

static void draw_help(struct cp_screen *s)
{
	const char *const(*keys)[2] = s->kind == CP_SCREEN_ENGINE ? engine_keys : monitor_keys;
	size_t n = s->kind == CP_SCREEN_ENGINE ? sizeof engine_keys / sizeof engine_keys[0]
					       : sizeof monitor_keys / sizeof monitor_keys[0];
	int h = (int)n + 4, w = 44;
	int y = (LINES - h) / 2, x = (COLS - w) / 2;
	if (y < 0 || x < 0)
		return;
	theme_fill(stdscr, y, x, h, w, theme_attr(THEME_NORMAL));
	theme_box(stdscr, y, x, h, w, theme_attr(THEME_TITLE));
	theme_puts(stdscr, y, x + 2, w - 4, " keys ", theme_attr(THEME_TITLE));
	for (size_t i = 0; i < n; i++) {
		char line[80];
		snprintf(line, sizeof line, "%-4s %s", keys[i][0], keys[i][1]);
		theme_puts(stdscr, y + 2 + (int)i, x + 3, w - 6, line, theme_attr(THEME_NORMAL));
	}
	theme_puts(stdscr, y + h - 1, x + 2, w - 4, " any key closes ", theme_attr(THEME_DIM));
}

static void draw_engine(struct cp_screen *s, const struct cp_engine_view *v)
{
	char buf[200];
	int y = 2;
	snprintf(buf, sizeof buf, "%s", v->cp_id[0] ? v->cp_id : "(waiting for the monitor)");
	field(y++, 2, "CP", buf, theme_attr(THEME_NORMAL) | A_BOLD);
	field(y++, 2, "Health", v->ko ? "KO (simulated fault)" : "OK", theme_attr(v->ko ? THEME_BAD : THEME_OK));
	field(y++, 2, "Mode", v->stopped ? "Out of Order (stopped by Central)" : "Active",
	      theme_attr(v->stopped ? THEME_WARN : THEME_OK));
	const char *act = v->supplying ? "Supplying" : v->authorised ? "Authorised: plug in (e)" : "Idle";
	field(y++, 2, "Supply", act,
	      theme_attr(v->supplying ? THEME_BUSY : v->authorised ? THEME_RESERVED : THEME_NORMAL));
	snprintf(buf, sizeof buf, "%s%s%s", v->driver[0] ? v->driver : "-", v->session[0] ? "   session " : "",
		 v->session);
	field(y++, 2, "Driver", buf, theme_attr(THEME_NORMAL));
	snprintf(buf, sizeof buf, "%.2f kW   %.3f kWh   %.2f EUR   (%.4g EUR/kWh, nominal %.1f kW)", v->kw, v->kwh,
		 v->importe, v->price, v->power);
	field(y++, 2, "Meter", buf, theme_attr(v->supplying ? THEME_BUSY : THEME_NORMAL));
	y++;
	int x = 2;
	theme_puts(stdscr, y, x, COLS - x - 1, "Kafka", theme_attr(THEME_DIM));
	x += 7;
	const char *k = v->kafka_up == 1 ? "up" : v->kafka_up == 0 ? "down (queued)" : "?";
	theme_puts(stdscr, y, x, COLS - x - 1, k, link_attr(v->kafka_up == 1));
	x += (int)strlen(k) + 3;
	theme_puts(stdscr, y, x, COLS - x - 1, "Monitor", theme_attr(THEME_DIM));
	x += 9;
	theme_puts(stdscr, y, x, COLS - x - 1, v->monitor_up ? "up" : "down", link_attr(v->monitor_up));
	x += 7;
	theme_puts(stdscr, y, x, COLS - x - 1, "Central", theme_attr(THEME_DIM));
	x += 9;
	theme_puts(stdscr, y, x, COLS - x - 1, v->central_up ? "up" : "down", link_attr(v->central_up));
	x += 7;
	theme_puts(stdscr, y, x, COLS - x - 1, v->listen, theme_attr(THEME_DIM));
	draw_events(s, y + 2);
}

static void draw_monitor(struct cp_screen *s, const struct cp_monitor_view *v)
{
	char buf[300];
	int y = 2;
	enum cp_state st = (enum cp_state)state_of(v->cp_state);
	snprintf(buf, sizeof buf, " %s  %s ", theme_state_word(st), theme_state_label(st));
	field(y++, 2, "State", buf, theme_state_attr(st) | A_BOLD);
	snprintf(buf, sizeof buf, "%s  (%s, %.4g EUR/kWh)", v->cp_id, v->location, v->price);
	field(y++, 2, "CP", buf, theme_attr(THEME_NORMAL));
	int up = strcmp(v->central_link, "up") == 0;
	snprintf(buf, sizeof buf, "%s  %s", v->central_link, v->central_addr);
	field(y++, 2, "Central", buf, link_attr(up));
	up = strcmp(v->engine_link, "up") == 0;
	snprintf(buf, sizeof buf, "%s  %s", v->engine_link, v->engine_addr);
	field(y++, 2, "Engine", buf, link_attr(up));
	snprintf(buf, sizeof buf, "%s%s%s%s%s", v->health, v->health_reason[0] ? "  " : "", v->health_reason,
		 v->activity[0] ? "   engine: " : "", v->activity);
	field(y++, 2, "Health", buf,
	      theme_attr(strcmp(v->health, "OK") == 0 ? THEME_OK : strcmp(v->health, "KO") == 0 ? THEME_BAD : THEME_OFF));
	draw_events(s, y + 1);
}

static void redraw(struct cp_screen *s)
{
	erase();
	if (LINES < 12 || COLS < 50) {
		theme_puts(stdscr, 0, 0, COLS, "terminal too small (50x12 needed)", theme_attr(THEME_ERRTEXT));
		refresh();
		return;
	}
	theme_fill(stdscr, 0, 0, 1, COLS, theme_attr(THEME_TITLE));
	theme_puts(stdscr, 0, 1, COLS - 2, s->title, theme_attr(THEME_TITLE));
	if (s->have_view) {
		if (s->kind == CP_SCREEN_ENGINE)
			draw_engine(s, &s->ev);
		else
			draw_monitor(s, &s->mv);
	}
	draw_bar(s);
	if (s->help)
		draw_help(s);
	refresh();
}

/* Keep copies so a resize or a key can redraw without the program. */
static const char *keep(struct cp_screen *s, int i, const char *v)
{
	snprintf(s->sv[i], sizeof s->sv[i], "%s", v ? v : "");
	return s->sv[i];
}

void cp_screen_draw_engine(struct cp_screen *s, const struct cp_engine_view *v)
{
	s->ev = *v;
	s->ev.cp_id = keep(s, 0, v->cp_id);
	s->ev.driver = keep(s, 1, v->driver);
	s->ev.session = keep(s, 2, v->session);
	s->ev.listen = keep(s, 3, v->listen);
	s->have_view = 1;
	redraw(s);
}

void cp_screen_draw_monitor(struct cp_screen *s, const struct cp_monitor_view *v)
{
	s->mv = *v;
	s->mv.cp_id = keep(s, 0, v->cp_id);
	s->mv.location = keep(s, 1, v->location);
	s->mv.central_addr = keep(s, 2, v->central_addr);
	s->mv.engine_addr = keep(s, 3, v->engine_addr);
	s->mv.central_link = keep(s, 4, v->central_link);
	s->mv.engine_link = keep(s, 5, v->engine_link);
	s->mv.health = keep(s, 6, v->health);
	s->mv.health_reason = keep(s, 7, v->health_reason);
	s->mv.cp_state = keep(s, 8, v->cp_state);
	s->mv.activity = keep(s, 9, v->activity);
	s->have_view = 1;
	redraw(s);
}
