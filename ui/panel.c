/* The operator's panel: header, grid of CP cards, requests and log panes,
 * hint bar. Draws only when something changed or the clock ticked, at most
 * ten times a second, and only the cards whose content changed. */
#include "ui/panel.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "evc/clock.h"
#include "evc/log.h"
#include "evc/money.h"
#include "evc/xalloc.h"
#include "ui/errcap.h"
#include "ui/keys.h"
#include "ui/pane.h"
#include "ui/theme.h"
#include "ui/views.h"

#define CARD_H 5          /* lines of a full card */
#define CARD_H_COMPACT 2  /* lines of a compact card ('c'): 2.5x as many a page */
#define CARD_MINW 26
#define MIN_COLS 40
#define MIN_ROWS 14
#define LOG_KEEP 256      /* lines kept in the log pane */
#define REQ_KEEP 128      /* lines kept in the requests pane */
#define SINK_KEEP 256     /* log_msg lines waiting for the main thread */
#define REDRAW_GAP 0.1    /* s: at most 10 redraws a second */
#define LINE_MAX_TEXT PANE_LINE_MAX

enum mode { M_NORMAL, M_CONFIRM, M_CMDLINE, M_FILTER, M_HELP, M_DETACH };

/* What one card shows; compared with the last drawn one to skip redraws of
 * unchanged cards. */
struct cardview {
	attr_t attr;
	int used;
	char l[CARD_H][192];
};

struct panel {
	SCREEN *scr;
	FILE *out;
	panel_exec_fn exec;
	void *exec_arg;
	int readonly;
	const struct panel_view *v; /* the program's view, for this call */
	unsigned long drawn_rev;

	struct pane_ring log, req;
	pthread_mutex_t sink_mu;  /* sink is written by any thread */
	struct pane_ring sink;
	unsigned long sink_dropped;

	/* the CPs shown (indices into v->cps), after the filter */
	size_t *view;
	size_t nview, view_cap;
	size_t sel;
	char sel_id[MSG_CP_ID_MAX + 1];
	char filter[64];

	enum mode mode;
	char input[128];
	size_t input_len;
	char confirm_q[160];
	char confirm_cmd[64]; /* "" = quit */
	char msg[256];
	enum theme_role msg_role;

	/* layout */
	int rows, cols, too_small;
	int grid_y, grid_h, panes_y, panes_h;
	int weather_row;    /* the header has the weather line (a third row) */
	int ncols, nrows, cw;
	int compact, card_h;
	size_t per_page;
	struct cardview *cache;
	size_t ncache;

	int dirty, full;
	double last_draw;
	long last_sec;
	int input_eof;
	int quit;
	int was_empty;
	int attached;          /* EV_Central attach: q detaches */
	char attached_to[108];

	/* stderr while the panel owns the terminal: into the log pane, so
	 * libraries that print (librdkafka, SQLite) cannot scribble on it */
	struct errcap *errcap;

	struct views *views;  /* the detail, sessions, audit and drivers views */
	int order;            /* the grid's order: ORDER_ID, _STATE, _LOCATION */
	int mouse;
	size_t help_scroll;
};

enum { ORDER_ID, ORDER_STATE, ORDER_LOCATION, ORDER_COUNT };

static const struct keys_table panel_keys;

/* log_msg() sink: any thread, under the log module's lock. Only copies. */
static void panel_sink(enum log_level lvl, const char *line, void *arg)
{
	struct panel *p = arg;

	pthread_mutex_lock(&p->sink_mu);
	if (p->sink.n == p->sink.cap)
		p->sink_dropped++;
	pane_ring_push(&p->sink, clock_wall(), lvl, line);
	pthread_mutex_unlock(&p->sink_mu);
}

static void errcap_line(void *arg, const char *line)
{
	panel_sink(LOG_WARN, line, arg);
}

/* Main thread: move log_msg lines into the log pane. */
static void drain_sink(struct panel *p)
{
	unsigned long dropped;

	pthread_mutex_lock(&p->sink_mu);
	for (size_t i = 0; i < p->sink.n; i++) {
		const struct pane_line *l = pane_ring_at(&p->sink, i);
		pane_ring_push(&p->log, l->ts, l->lvl, l->text);
	}
	if (p->sink.n)
		p->dirty = 1;
	pane_ring_clear(&p->sink);
	dropped = p->sink_dropped;
	p->sink_dropped = 0;
	pthread_mutex_unlock(&p->sink_mu);
	if (dropped) {
		char t[80];
		snprintf(t, sizeof t, "(%lu log lines dropped: too many at once)", dropped);
		pane_ring_push(&p->log, clock_wall(), LOG_WARN, t);
	}
}

static void set_msg(struct panel *p, enum theme_role role, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_msg(struct panel *p, enum theme_role role, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof p->msg, fmt, ap);
	va_end(ap);
	p->msg_role = role;
	p->dirty = 1;
}

/* ---- the view: filtered CPs and the selection ---- */

static int contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return 1;
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return 1;
	return 0;
}

static int matches(const struct panel *p, const struct cp_view *cp)
{
	if (!p->filter[0])
		return 1;
	return contains_ci(cp->id, p->filter) || contains_ci(cp->location, p->filter) ||
	       contains_ci(theme_state_word(cp->state), p->filter) ||
	       contains_ci(cp->caption, p->filter);
}

/* The grid's order ('o'): the header's order of states (most wanted
 * first), or by location; ties by id, which is the view's own order. */
static int order_cmp(const void *a, const void *b, void *arg)
{
	static const int rank[CP_STATE_COUNT] = {
		[CP_ACTIVADO] = 0, [CP_SUMINISTRANDO] = 1, [CP_RESERVADO] = 2,
		[CP_FUERA_DE_SERVICIO] = 3, [CP_AVERIADO] = 4, [CP_DESCONECTADO] = 5,
	};
	const struct panel *p = arg;
	const struct cp_view *x = &p->v->cps[*(const size_t *)a], *y = &p->v->cps[*(const size_t *)b];
	int c = 0;

	if (p->order == ORDER_STATE)
		c = rank[x->state] - rank[y->state];
	else if (p->order == ORDER_LOCATION)
		c = strcoll(x->location, y->location);
	if (c == 0)
		c = *(const size_t *)a < *(const size_t *)b ? -1 : *(const size_t *)a > *(const size_t *)b;
	return c;
}

/* Rebuild the view and keep the selection on the same CP (by id) when it is
 * still shown, else on the same position. */
static void build_view(struct panel *p)
{
	size_t n = p->v->ncps;
	size_t old = p->sel, found = (size_t)-1;

	if (p->view_cap < n) {
		p->view = xrealloc(p->view, n * sizeof *p->view);
		p->view_cap = n;
	}
	p->nview = 0;
	for (size_t i = 0; i < n; i++)
		if (matches(p, &p->v->cps[i]))
			p->view[p->nview++] = i;
	if (p->order != ORDER_ID)
		qsort_r(p->view, p->nview, sizeof *p->view, order_cmp, p);
	for (size_t i = 0; i < p->nview && found == (size_t)-1 && p->sel_id[0]; i++)
		if (strcmp(p->v->cps[p->view[i]].id, p->sel_id) == 0)
			found = i;
	if (found != (size_t)-1)
		p->sel = found;
	else
		p->sel = old < p->nview ? old : (p->nview ? p->nview - 1 : 0);
	if (p->nview)
		snprintf(p->sel_id, sizeof p->sel_id, "%s", p->v->cps[p->view[p->sel]].id);
	else
		p->sel_id[0] = 0;
}

static const struct cp_view *selected(struct panel *p)
{
	build_view(p);
	return p->nview ? &p->v->cps[p->view[p->sel]] : NULL;
}

static void select_index(struct panel *p, size_t i)
{
	if (!p->nview)
		return;
	if (i >= p->nview)
		i = p->nview - 1;
	p->sel = i;
	snprintf(p->sel_id, sizeof p->sel_id, "%s", p->v->cps[p->view[i]].id);
	p->dirty = 1;
}

/* ---- layout ---- */

static void invalidate_cards(struct panel *p)
{
	for (size_t i = 0; i < p->ncache; i++)
		p->cache[i].used = 0;
}

static void layout(struct panel *p)
{
	int reserved;

	getmaxyx(stdscr, p->rows, p->cols);
	p->too_small = p->cols < MIN_COLS || p->rows < MIN_ROWS;
	/* 2 header rows (3 with the weather line), message row and bar at
	 * the bottom */
	p->weather_row = p->v != NULL && p->v->status.weather[0] != '\0';
	reserved = 4 + p->weather_row;
	p->panes_h = p->rows >= 36 ? 10 : p->rows >= 24 ? 7 : p->rows >= 18 ? 4 : 0;
	p->grid_y = 2 + p->weather_row;
	p->grid_h = p->rows - reserved - p->panes_h;
	p->panes_y = p->grid_y + p->grid_h;
	p->ncols = (p->cols + 1) / (CARD_MINW + 1);
	if (p->ncols < 1)
		p->ncols = 1;
	/* cards stretch to use the whole width */
	p->cw = (p->cols - (p->ncols - 1)) / p->ncols;
	if (p->cw > 40)
		p->cw = 40;
	p->card_h = p->compact ? CARD_H_COMPACT : CARD_H;
	p->nrows = (p->grid_h + 1) / (p->card_h + 1);
	if (p->nrows < 1)
		p->too_small = 1;
	p->per_page = p->too_small ? 1 : (size_t)p->ncols * (size_t)p->nrows;
	if (p->ncache < p->per_page) {
		p->cache = xrealloc(p->cache, p->per_page * sizeof *p->cache);
		p->ncache = p->per_page;
	}
	invalidate_cards(p);
}

/* ---- drawing ---- */

static void hhmmss(double wall, char *buf, size_t len)
{
	time_t t = (time_t)wall;
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, len, "%H:%M:%S", &tm);
}

static void card_content(struct panel *p, const struct cp_view *cp, int is_sel, struct cardview *cv)
{
	int inner = p->cw - 2;
	char price[MONEY_STR_LEN], pr[48], t[32];

	memset(cv, 0, sizeof *cv);
	cv->used = 1;
	cv->attr = theme_state_attr(cp->state) | (is_sel ? A_REVERSE : 0);
	money_price(price, sizeof price, cp->price);
	snprintf(pr, sizeof pr, "%s EUR/kWh", price);
	{
		int idw = inner - (int)strlen(pr) - 1;
		if (idw < 8)
			idw = 8;
		snprintf(cv->l[0], sizeof cv->l[0], "%-*.*s %s", idw, idw, cp->id, pr);
	}
	snprintf(cv->l[1], sizeof cv->l[1], "%.180s", cp->location);
	snprintf(cv->l[2], sizeof cv->l[2], "%s", theme_state_word(cp->state));
	if (cp->state == CP_SUMINISTRANDO && cp->driver_id[0]) {
		snprintf(cv->l[3], sizeof cv->l[3], "%.20s %.2f kW", cp->driver_id, cp->kw);
		snprintf(cv->l[4], sizeof cv->l[4], "%.3f kWh %.2f EUR", cp->kwh, cp->importe);
	} else {
		snprintf(cv->l[3], sizeof cv->l[3], "%.60s", cp->caption);
	}
	if (cp->state != CP_SUMINISTRANDO) {
		if (cp->stop_pending || cp->resume_pending)
			snprintf(cv->l[4], sizeof cv->l[4], "%s sent...",
				 cp->stop_pending ? "stop" : "resume");
		else if (cp->since > 0) {
			hhmmss(cp->since, t, sizeof t);
			snprintf(cv->l[4], sizeof cv->l[4], "since %s", t);
		}
	}
}

/* Two lines: id and state word; then what matters most in that state. */
static void card_compact(struct panel *p, const struct cp_view *cp, struct cardview *cv)
{
	int inner = p->cw - 2;
	const char *w = theme_state_word(cp->state);
	int idw = inner - (int)strlen(w) - 1;
	char l1[192];

	if (idw < 6)
		idw = 6;
	snprintf(l1, sizeof l1, "%.190s", cp->state == CP_SUMINISTRANDO ? cv->l[4]
				      : cp->state == CP_FUERA_DE_SERVICIO ? cv->l[3] : cv->l[1]);
	if (cp->state == CP_SUMINISTRANDO && cp->driver_id[0])
		snprintf(l1, sizeof l1, "%.20s %.1fkW %.2fkWh %.2fEUR", cp->driver_id, cp->kw, cp->kwh,
			 cp->importe);
	snprintf(cv->l[0], sizeof cv->l[0], "%-*.*s %s", idw, idw, cp->id, w);
	memcpy(cv->l[1], l1, sizeof cv->l[1]);
	for (int i = 2; i < CARD_H; i++)
		cv->l[i][0] = 0;
}

static void draw_card(struct panel *p, int y, int x, const struct cardview *cv)
{
	int inner = p->cw - 2;

	theme_fill(stdscr, y, x, p->card_h, p->cw, cv->attr);
	theme_puts(stdscr, y, x + 1, inner, cv->l[0], cv->attr | A_BOLD);
	for (int i = 1; i < p->card_h; i++)
		theme_puts(stdscr, y + i, x + 1, inner, cv->l[i], cv->attr | (i == 2 ? A_BOLD : 0));
}

static void draw_grid(struct panel *p)
{
	size_t page = p->per_page ? p->sel / p->per_page : 0;
	size_t first = page * p->per_page;

	if (p->nview == 0) {
		theme_fill(stdscr, p->grid_y, 0, p->grid_h, p->cols, A_NORMAL);
		invalidate_cards(p);
		if (p->filter[0])
			theme_puts(stdscr, p->grid_y + 1, 2, p->cols - 4, "no CP matches the filter (/ then Esc clears it)",
				   theme_attr(THEME_DIM));
		else
			theme_puts(stdscr, p->grid_y + 1, 2, p->cols - 4,
				   "no charging points yet: they appear when their monitor registers",
				   theme_attr(THEME_DIM));
		return;
	}
	for (size_t slot = 0; slot < p->per_page; slot++) {
		int r = (int)(slot / (size_t)p->ncols), c = (int)(slot % (size_t)p->ncols);
		int y = p->grid_y + r * (p->card_h + 1), x = c * (p->cw + 1);
		size_t vi = first + slot;
		struct cardview cv;

		if (vi >= p->nview) {
			if (p->cache[slot].used || p->full) {
				theme_fill(stdscr, y, x, p->card_h, p->cw, A_NORMAL);
				p->cache[slot].used = 0;
			}
			continue;
		}
		card_content(p, &p->v->cps[p->view[vi]], vi == p->sel, &cv);
		if (p->compact)
			card_compact(p, &p->v->cps[p->view[vi]], &cv);
		if (p->cache[slot].used && memcmp(&cv, &p->cache[slot], sizeof cv) == 0)
			continue;
		draw_card(p, y, x, &cv);
		p->cache[slot] = cv;
	}
}

static void draw_header(struct panel *p, double now)
{
	const struct panel_status *st = &p->v->status;
	const size_t *counts = p->v->counts;
	static const enum cp_state order[] = { CP_ACTIVADO, CP_SUMINISTRANDO, CP_RESERVADO,
						 CP_FUERA_DE_SERVICIO, CP_AVERIADO, CP_DESCONECTADO };
	char buf[512], clk[16];
	int x, full_words, width;
	attr_t ta = theme_attr(THEME_TITLE);
	size_t page, npages;

	hhmmss(now, clk, sizeof clk);
	theme_fill(stdscr, 0, 0, 1, p->cols, ta);
	/* most important first, so a narrow terminal still shows Kafka's state */
	x = 0;
	theme_puts(stdscr, 0, x, p->cols - 10, p->attached ? " EV_Central (attached) " : " EV_Central ", ta);
	x += p->attached ? 23 : 12;
	if (st->kafka_up)
		snprintf(buf, sizeof buf, " Kafka up ");
	else
		snprintf(buf, sizeof buf, " Kafka unreachable: %s ",
			 st->kafka_reason[0] ? st->kafka_reason : st->kafka);
	if (x < p->cols - 10)
		theme_puts(stdscr, 0, x, p->cols - 10 - x, buf,
			   st->kafka_up ? ta : theme_attr(THEME_BAD));
	x += (int)strlen(buf);
	{
		char seg[3][300];
		snprintf(seg[0], sizeof seg[0], " listen %s  links %zu ", st->listen, st->links);
		snprintf(seg[1], sizeof seg[1], " kafka %s ", st->kafka);
		snprintf(seg[2], sizeof seg[2], " db %.250s ", st->db);
		for (int i = 0; i < 3; i++) {
			int l = (int)strlen(seg[i]);
			if (x + l > p->cols - 10)
				break;
			theme_puts(stdscr, 0, x, l, seg[i], ta);
			x += l;
		}
	}
	theme_puts(stdscr, 0, p->cols - 9, 9, clk, ta);

	/* second row: counts per state, page and filter */
	theme_fill(stdscr, 1, 0, 1, p->cols, A_NORMAL);
	width = 0;
	for (size_t i = 0; i < CP_STATE_COUNT; i++) {
		char c[64];
		width += snprintf(c, sizeof c, " %s %zu  ", theme_state_word(order[i]), counts[order[i]]);
	}
	npages = p->per_page ? (p->nview + p->per_page - 1) / p->per_page : 1;
	if (npages == 0)
		npages = 1;
	page = p->per_page ? p->sel / p->per_page + 1 : 1;
	if (p->filter[0])
		snprintf(buf, sizeof buf, "/%s: %zu of %zu  page %zu/%zu", p->filter, p->nview,
			 p->v->ncps, page, npages);
	else
		snprintf(buf, sizeof buf, "%zu CPs  page %zu/%zu", p->nview, page, npages);
	full_words = width + (int)strlen(buf) + 1 <= p->cols;
	x = 0;
	for (size_t i = 0; i < CP_STATE_COUNT; i++) {
		char c[64];
		enum cp_state s = order[i];
		if (full_words)
			snprintf(c, sizeof c, " %s %zu ", theme_state_word(s), counts[s]);
		else
			snprintf(c, sizeof c, " %c %zu ", theme_state_letter(s), counts[s]);
		theme_puts(stdscr, 1, x, p->cols - x, c, theme_state_attr(s));
		x += (int)strlen(c) + 2;
	}
	if (x + (int)strlen(buf) + 1 <= p->cols)
		theme_puts(stdscr, 1, p->cols - (int)strlen(buf) - 1, (int)strlen(buf), buf,
			   theme_attr(THEME_DIM));
	if (p->weather_row) {
		/* third row: the weather office's readings; an alert is the
		 * Out of Order colour, as the cards it stops */
		const char *w = st->weather;
		theme_fill(stdscr, 2, 0, 1, p->cols, A_NORMAL);
		theme_puts(stdscr, 2, 1, p->cols - 2, w,
			   strstr(w, " ALERT") != NULL ? theme_state_attr(CP_FUERA_DE_SERVICIO) : theme_attr(THEME_DIM));
	}
}

static void draw_panes(struct panel *p)
{
	int lw;

	if (p->panes_h < 2)
		return;
	lw = p->cols * 2 / 5;
	pane_ring_draw(stdscr, &p->req, "Requests", p->panes_y, 0, p->panes_h, lw, NULL);
	theme_vline(stdscr, p->panes_y + 1, lw, p->panes_h - 1, theme_attr(THEME_DIM));
	pane_ring_draw(stdscr, &p->log, "Log", p->panes_y, lw + 1, p->panes_h, p->cols - lw - 1, NULL);
}

static void draw_bottom(struct panel *p)
{
	int y = p->rows - 2;

	theme_fill(stdscr, y, 0, 1, p->cols, A_NORMAL);
	switch (p->mode) {
	case M_CONFIRM:
	case M_DETACH:
		theme_puts(stdscr, y, 0, p->cols, p->confirm_q, theme_attr(THEME_WARNTEXT) | A_BOLD);
		break;
	case M_CMDLINE:
	case M_FILTER: {
		char buf[160];
		snprintf(buf, sizeof buf, "%c%s", p->mode == M_CMDLINE ? ':' : '/', p->input);
		theme_puts(stdscr, y, 0, p->cols - 1, buf, A_BOLD);
		break;
	}
	default:
		theme_puts(stdscr, y, 0, p->cols, p->msg, theme_attr(p->msg_role));
		break;
	}
	keys_draw_bar(stdscr, p->rows - 1, 0, p->cols,
		      views_kind(p->views) ? views_keys(p->views) : &panel_keys, p->readonly);
}

static void draw_too_small(struct panel *p)
{
	char buf[96];
	int y = p->rows / 2;

	werase(stdscr);
	theme_puts(stdscr, y > 1 ? y - 2 : 0, 0, p->cols, "terminal too small", A_BOLD);
	snprintf(buf, sizeof buf, "%dx%d, need %dx%d", p->cols, p->rows, MIN_COLS, MIN_ROWS);
	theme_puts(stdscr, y > 1 ? y - 1 : 1, 0, p->cols, buf, A_NORMAL);
	theme_puts(stdscr, y > 1 ? y : 2, 0, p->cols, "q y quits", A_NORMAL);
}

/* Every key of every view, the open one's first. */
static void draw_help(struct panel *p)
{
	struct keys_sect s[8];
	const struct keys_table *t[6];
	const char *titles[6];
	size_t n = 0, nv = views_all_keys(t, titles, 6);

	s[n++] = (struct keys_sect){ &panel_keys, "Grid" };
	for (size_t i = 0; i < nv; i++)
		s[n++] = (struct keys_sect){ t[i], titles[i] };
	for (size_t i = 1; i < n; i++)
		if (s[i].t == views_keys(p->views)) {
			struct keys_sect open = s[i];
			memmove(&s[1], &s[0], i * sizeof s[0]);
			s[0] = open;
		}
	keys_draw_help_all(stdscr, s, n, "EV_Central panel: keys", p->readonly, &p->help_scroll);
}

static void draw(struct panel *p, double now)
{
	build_view(p);
	/* the weather line came or went: one header row more or less */
	if ((p->v->status.weather[0] != '\0') != p->weather_row) {
		layout(p);
		p->full = 1;
	}
	/* the "no CPs" text is not a card: clear it when cards appear */
	if ((p->nview == 0) != p->was_empty) {
		p->was_empty = p->nview == 0;
		p->full = 1;
	}
	if (p->full) {
		werase(stdscr);
		invalidate_cards(p);
	}
	if (p->too_small) {
		draw_too_small(p);
	} else {
		draw_header(p, now);
		if (views_kind(p->views)) {
			views_draw(p->views, p->v, p->grid_y, p->rows - 2 - p->grid_y, p->cols, now);
			p->full = 1; /* back on the grid: every card again */
		} else {
			draw_grid(p);
			draw_panes(p);
		}
		draw_bottom(p);
		if (p->mode == M_HELP)
			draw_help(p);
	}
	if ((p->mode == M_CMDLINE || p->mode == M_FILTER) && !p->too_small) {
		int cx = 1 + (int)p->input_len;
		move(p->rows - 2, cx < p->cols ? cx : p->cols - 1);
		curs_set(1);
	} else {
		curs_set(0);
	}
	wnoutrefresh(stdscr);
	doupdate();
	/* the help box overwrote cards: draw them again once it closes */
	p->full = p->mode == M_HELP || views_kind(p->views);
	p->dirty = 0;
}

/* ---- commands ---- */

/* Returns 1 when the command was Q. */
static int run_command(struct panel *p, const char *line)
{
	char msg[EVC_ERR_LEN] = "";
	int rc;

	rc = p->exec(p->exec_arg, line, msg);
	if (rc == 1)
		return 1;
	if (!msg[0])
		snprintf(msg, sizeof msg, rc == 0 ? "sent: %s" : "refused: %s", line);
	set_msg(p, rc == 0 ? THEME_OKTEXT : THEME_ERRTEXT, "%s", msg);
	return 0;
}

static void ask(struct panel *p, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void ask(struct panel *p, const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->confirm_q, sizeof p->confirm_q, fmt, ap);
	va_end(ap);
	snprintf(p->confirm_cmd, sizeof p->confirm_cmd, "%s", cmd);
	p->mode = M_CONFIRM;
	p->dirty = 1;
}

/* ---- key handlers (the table below dispatches them and draws the help) ---- */

static int k_left(void *ctx, int key)
{
	struct panel *p = ctx;
	build_view(p);
	if (p->sel > 0)
		select_index(p, p->sel - 1);
	return KEYS_OK;
}

static int k_right(void *ctx, int key)
{
	struct panel *p = ctx;
	build_view(p);
	if (p->sel + 1 < p->nview)
		select_index(p, p->sel + 1);
	return KEYS_OK;
}

static int k_up(void *ctx, int key)
{
	struct panel *p = ctx;
	size_t step = (size_t)p->ncols;
	build_view(p);
	if (p->sel >= step)
		select_index(p, p->sel - step);
	return KEYS_OK;
}

static int k_down(void *ctx, int key)
{
	struct panel *p = ctx;
	size_t step = (size_t)p->ncols;
	build_view(p);
	if (p->sel + step < p->nview)
		select_index(p, p->sel + step);
	else if (p->nview && p->sel / step < (p->nview - 1) / step)
		select_index(p, p->nview - 1); /* a shorter last row */
	return KEYS_OK;
}

static int k_pgdn(void *ctx, int key)
{
	struct panel *p = ctx;
	build_view(p);
	if (p->nview && p->per_page) {
		size_t page = p->sel / p->per_page + 1;
		if (page * p->per_page < p->nview)
			select_index(p, page * p->per_page);
		else
			select_index(p, p->nview - 1);
	}
	return KEYS_OK;
}

static int k_pgup(void *ctx, int key)
{
	struct panel *p = ctx;
	build_view(p);
	if (p->nview && p->per_page) {
		size_t page = p->sel / p->per_page;
		select_index(p, page > 0 ? (page - 1) * p->per_page : 0);
	}
	return KEYS_OK;
}

static int k_home(void *ctx, int key)
{
	struct panel *p = ctx;
	build_view(p);
	select_index(p, 0);
	return KEYS_OK;
}

static int k_end(void *ctx, int key)
{
	struct panel *p = ctx;
	build_view(p);
	if (p->nview)
		select_index(p, p->nview - 1);
	return KEYS_OK;
}

/* The CP a command key acts on: the detail's, else the selected card. */
static const struct cp_view *target(struct panel *p)
{
	const char *id = views_cp(p->views);
	if (id[0]) {
		for (size_t i = 0; i < p->v->ncps; i++)
			if (strcmp(p->v->cps[i].id, id) == 0)
				return &p->v->cps[i];
		return NULL;
	}
	return selected(p);
}

static int k_stop_resume(void *ctx, int key)
{
	struct panel *p = ctx;
	const struct cp_view *cp = target(p);
	char cmd[64];

	if (!cp) {
		set_msg(p, THEME_WARNTEXT, "no CP selected");
		return KEYS_OK;
	}
	snprintf(cmd, sizeof cmd, "%c %s", key == 'p' ? 'P' : 'R', cp->id);
	ask(p, cmd, "%s %s (%s, now %s)? [y/N]", key == 'p' ? "Stop" : "Resume", cp->id,
	    cp->location, theme_state_word(cp->state));
	return KEYS_OK;
}

static int k_revoke(void *ctx, int key)
{
	struct panel *p = ctx;
	const struct cp_view *cp = target(p);
	char cmd[64];

	(void)key;
	if (!cp) {
		set_msg(p, THEME_WARNTEXT, "no CP selected");
		return KEYS_OK;
	}
	snprintf(cmd, sizeof cmd, "REVOKE %s", cp->id);
	ask(p, cmd, "Revoke the keys of %s? It stays out of service until it authenticates again. [y/N]", cp->id);
	return KEYS_OK;
}

static int k_all(void *ctx, int key)
{
	struct panel *p = ctx;
	size_t n = p->v->ncps;

	ask(p, key == 'P' ? "PT" : "RT", "%s ALL %zu charging points? [y/N]",
	    key == 'P' ? "Stop" : "Resume", n);
	return KEYS_OK;
}

static int k_cmdline(void *ctx, int key)
{
	struct panel *p = ctx;
	p->mode = key == ':' ? M_CMDLINE : M_FILTER;
	if (p->mode == M_FILTER) {
		snprintf(p->input, sizeof p->input, "%s", views_kind(p->views) ? views_filter(p->views) : p->filter);
		p->input_len = strlen(p->input);
	} else {
		p->input[0] = 0;
		p->input_len = 0;
	}
	p->dirty = 1;
	return KEYS_OK;
}

static int k_help(void *ctx, int key)
{
	struct panel *p = ctx;
	p->mode = M_HELP;
	p->help_scroll = 0;
	p->dirty = 1;
	return KEYS_OK;
}

static int k_quit(void *ctx, int key)
{
	struct panel *p = ctx;
	if (p->attached) {
		snprintf(p->confirm_q, sizeof p->confirm_q,
			 "d detach (Central goes on), s stop Central (CPs lose it), other keys cancel: ");
		p->mode = M_DETACH;
		p->dirty = 1;
		return KEYS_OK;
	}
	ask(p, "", "Quit EV_Central? Charging points lose their Central. [y/N]");
	return KEYS_OK;
}

static int k_compact(void *ctx, int key)
{
	struct panel *p = ctx;
	p->compact = !p->compact;
	layout(p);
	p->full = 1;
	p->dirty = 1;
	set_msg(p, THEME_DIM, "%s cards: %zu a page", p->compact ? "compact" : "full", p->per_page);
	return KEYS_OK;
}

static int k_redraw(void *ctx, int key)
{
	struct panel *p = ctx;
	clearok(curscr, TRUE);
	p->full = 1;
	p->dirty = 1;
	return KEYS_OK;
}

static int k_view(void *ctx, int key)
{
	struct panel *p = ctx;
	const struct cp_view *cp;

	if (key == 'S' || key == 'A' || key == 'D') {
		views_open(p->views, key == 'S' ? VIEWS_SESSIONS : key == 'A' ? VIEWS_AUDIT : VIEWS_DRIVERS, p->v, NULL);
	} else if ((cp = selected(p)) != NULL) {
		views_open(p->views, VIEWS_DETAIL, p->v, cp->id);
	} else {
		set_msg(p, THEME_WARNTEXT, "no CP selected");
		return KEYS_OK;
	}
	p->full = 1;
	p->dirty = 1;
	return KEYS_OK;
}

static int k_order(void *ctx, int key)
{
	static const char *const names[ORDER_COUNT] = { "id", "state", "location" };
	struct panel *p = ctx;
	(void)key;
	p->order = (p->order + 1) % ORDER_COUNT;
	p->full = 1;
	set_msg(p, THEME_DIM, "cards ordered by %s", names[p->order]);
	return KEYS_OK;
}

static const struct keys_entry panel_key_list[] = {
	{ KEY_LEFT, "Left", "select the card to the left", k_left, 0, NULL },
	{ 'h', "h", "select the card to the left", k_left, 0, NULL },
	{ KEY_RIGHT, "Right", "select the card to the right", k_right, 0, NULL },
	{ 'l', "l", "select the card to the right", k_right, 0, NULL },
	{ KEY_UP, "Up", "select the card above", k_up, 0, NULL },
	{ 'k', "k", "select the card above", k_up, 0, NULL },
	{ KEY_DOWN, "Down", "select the card below", k_down, 0, NULL },
	{ 'j', "j", "select the card below", k_down, 0, NULL },
	{ KEY_NPAGE, "PgDn", "next page of cards", k_pgdn, KEYS_BAR, "page" },
	{ KEY_PPAGE, "PgUp", "previous page of cards", k_pgup, 0, NULL },
	{ KEY_HOME, "Home", "first charging point", k_home, 0, NULL },
	{ 'g', "g", "first charging point", k_home, 0, NULL },
	{ KEY_END, "End", "last charging point", k_end, 0, NULL },
	{ 'G', "G", "last charging point", k_end, 0, NULL },
	{ 'p', "p", "stop the selected CP (asks y/N)", k_stop_resume, KEYS_COMMAND | KEYS_BAR, "stop" },
	{ 'r', "r", "resume the selected CP (asks y/N)", k_stop_resume, KEYS_COMMAND | KEYS_BAR, "resume" },
	{ 'K', "K", "revoke the selected CP's keys (asks y/N)", k_revoke, KEYS_COMMAND, NULL },
	{ 'P', "P", "stop ALL charging points (asks y/N)", k_all, KEYS_COMMAND | KEYS_BAR, "stop all" },
	{ 'R', "R", "resume ALL charging points (asks y/N)", k_all, KEYS_COMMAND | KEYS_BAR, "resume all" },
	{ ':', ":", "command line: P <id>, R <id>, PT, RT, REVOKE <id>, Q", k_cmdline, KEYS_BAR, "command" },
	{ '/', "/", "filter by id, location or state (Esc clears)", k_cmdline, KEYS_BAR, "filter" },
	{ '?', "?", "this help", k_help, KEYS_BAR, "help" },
	{ 'q', "q", "quit (asks y/N; attached: detach or stop Central)", k_quit, KEYS_BAR, "quit" },
	{ '\r', "Enter", "the selected CP's detail (double click too)", k_view, KEYS_BAR, "detail" },
	{ '\n', "Enter", "the selected CP's detail (double click too)", k_view, 0, NULL },
	{ KEY_ENTER, "Enter", "the selected CP's detail (double click too)", k_view, 0, NULL },
	{ 'S', "S", "sessions view", k_view, KEYS_BAR, "sessions" },
	{ 'A', "A", "audit view", k_view, KEYS_BAR, "audit" },
	{ 'D', "D", "drivers view", k_view, KEYS_BAR, "drivers" },
	{ 'c', "c", "compact cards (more a page) or full cards", k_compact, 0, NULL },
	{ 'o', "o", "order the cards by id, state or location", k_order, 0, NULL },
	{ 12, "^L", "redraw the whole screen", k_redraw, 0, NULL },
};

static const struct keys_table panel_keys = {
	panel_key_list, sizeof panel_key_list / sizeof panel_key_list[0]
};

/* ---- input ---- */

static int is_enter(int ch)
{
	return ch == '\n' || ch == '\r' || ch == KEY_ENTER;
}

static int is_backspace(int ch)
{
	return ch == KEY_BACKSPACE || ch == 127 || ch == 8;
}

static void trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	while (s[i] && isspace((unsigned char)s[i]))
		i++;
	memmove(s, s + i, n - i + 1);
}

/* Returns 1 to quit. */
static int submit_cmdline(struct panel *p)
{
	char line[128];

	snprintf(line, sizeof line, "%s", p->input);
	trim(line);
	p->mode = M_NORMAL;
	p->dirty = 1;
	if (!line[0])
		return 0;
	if (p->attached && (strcasecmp(line, "q") == 0 || strcasecmp(line, "quit") == 0)) {
		k_quit(p, 'q');
		return 0;
	}
	{
		char msg[EVC_ERR_LEN];
		int ok;
		if (views_command(p->views, p->v, line, &ok, msg)) {
			set_msg(p, ok ? THEME_OKTEXT : THEME_ERRTEXT, "%s", msg);
			return 0;
		}
	}
	return run_command(p, line);
}

/* A click selects the card under it; a double click opens its detail. */
static void on_mouse(struct panel *p)
{
	MEVENT ev;

	if (getmouse(&ev) != OK || views_kind(p->views) || p->too_small || p->mode != M_NORMAL)
		return;
	if (!(ev.bstate & (BUTTON1_CLICKED | BUTTON1_DOUBLE_CLICKED | BUTTON1_PRESSED)))
		return;
	if (ev.y < p->grid_y || ev.y >= p->grid_y + p->nrows * (p->card_h + 1) || ev.x >= p->ncols * (p->cw + 1))
		return;
	int r = (ev.y - p->grid_y) / (p->card_h + 1), c = ev.x / (p->cw + 1);
	if ((ev.y - p->grid_y) % (p->card_h + 1) == p->card_h || ev.x % (p->cw + 1) == p->cw)
		return; /* the gap between cards */
	build_view(p);
	size_t page = p->per_page ? p->sel / p->per_page : 0;
	size_t vi = page * p->per_page + (size_t)r * (size_t)p->ncols + (size_t)c;
	if (vi >= p->nview)
		return;
	select_index(p, vi);
	if (ev.bstate & BUTTON1_DOUBLE_CLICKED)
		k_view(p, '\r');
}

void panel_set_mouse(struct panel *p, int on)
{
	p->mouse = on;
	mousemask(on ? BUTTON1_CLICKED | BUTTON1_DOUBLE_CLICKED : 0, NULL);
}

/* One key. Returns 1 to quit. */
static int handle_key(struct panel *p, int ch)
{
	int rc;

	if (ch == KEY_RESIZE) {
		layout(p);
		p->full = 1;
		p->dirty = 1;
		return 0;
	}
	switch (p->mode) {
	case M_HELP:
		p->dirty = 1;
		if (ch == KEY_DOWN || ch == 'j' || ch == KEY_UP || ch == 'k') {
			if (ch == KEY_DOWN || ch == 'j')
				p->help_scroll++;
			else if (p->help_scroll)
				p->help_scroll--;
			return 0;
		}
		if (ch == KEY_NPAGE || ch == KEY_PPAGE) {
			size_t step = p->rows > 8 ? (size_t)p->rows - 8 : 1;
			p->help_scroll = ch == KEY_NPAGE ? p->help_scroll + step
				       : p->help_scroll > step ? p->help_scroll - step : 0;
			return 0;
		}
		p->mode = M_NORMAL;
		p->full = 1;
		return 0;
	case M_DETACH:
		p->mode = M_NORMAL;
		p->dirty = 1;
		if (ch == 'd' || ch == 'D')
			return 1;
		if (ch == 's' || ch == 'S') {
			if (p->readonly) {
				set_msg(p, THEME_WARNTEXT, "read-only panel: Central cannot be stopped from here");
				return 0;
			}
			return run_command(p, "Q");
		}
		set_msg(p, THEME_DIM, "cancelled");
		return 0;
	case M_CONFIRM:
		p->mode = M_NORMAL;
		p->dirty = 1;
		if (ch != 'y' && ch != 'Y') {
			set_msg(p, THEME_DIM, "cancelled");
			return 0;
		}
		if (!p->confirm_cmd[0])
			return 1;
		return run_command(p, p->confirm_cmd);
	case M_CMDLINE:
	case M_FILTER:
		p->dirty = 1;
		if (p->mode == M_FILTER && views_kind(p->views) && (ch == 27 || is_enter(ch))) {
			/* a view's filter is a read: applied on Enter, not per key */
			char msg[EVC_ERR_LEN];
			p->mode = M_NORMAL;
			p->full = 1;
			if (views_set_filter(p->views, p->v, ch == 27 ? "" : p->input, msg) == -1)
				set_msg(p, THEME_ERRTEXT, "%s", msg);
			else
				set_msg(p, THEME_DIM, "%s", ch == 27 ? "filter cleared" : "filtered");
			return 0;
		}
		if (ch == 27) {
			if (p->mode == M_FILTER)
				p->filter[0] = 0;
			p->mode = M_NORMAL;
			p->full = 1;
			return 0;
		}
		if (is_enter(ch)) {
			if (p->mode == M_CMDLINE)
				return submit_cmdline(p);
			p->mode = M_NORMAL;
			return 0;
		}
		if (is_backspace(ch)) {
			if (p->input_len)
				p->input[--p->input_len] = 0;
		} else if (ch == 21) { /* ^U */
			p->input_len = 0;
			p->input[0] = 0;
		} else if (ch >= 0x20 && ch < 0x7f && p->input_len + 1 < sizeof p->input &&
			   (p->mode == M_CMDLINE || p->input_len + 1 < sizeof p->filter)) {
			p->input[p->input_len++] = (char)ch;
			p->input[p->input_len] = 0;
		}
		if (p->mode == M_FILTER && !views_kind(p->views)) {
			/* live: the grid narrows while typing */
			snprintf(p->filter, sizeof p->filter, "%.*s", (int)sizeof p->filter - 1, p->input);
			p->full = 1;
		}
		return 0;
	case M_NORMAL:
		break;
	}
	if (ch == KEY_MOUSE) {
		on_mouse(p);
		return 0;
	}
	if (views_kind(p->views)) {
		rc = views_key(p->views, ch, p->v, p->readonly);
		if (rc >= VIEWS_PASS)
			rc = keys_dispatch(&panel_keys, rc - VIEWS_PASS, p, p->readonly);
		p->full = 1;
		p->dirty = 1;
	} else {
		rc = keys_dispatch(&panel_keys, ch, p, p->readonly);
	}
	if (rc == KEYS_REFUSED)
		set_msg(p, THEME_WARNTEXT, "read-only panel: commands are disabled (--readonly)");
	else if (rc == KEYS_UNBOUND && ch >= 0x20 && ch < 0x7f)
		set_msg(p, THEME_DIM, "key '%c' does nothing here: ? shows the keys", ch);
	return rc == KEYS_QUIT;
}

int panel_fd(const struct panel *p)
{
	return p->input_eof ? -1 : STDIN_FILENO;
}

int panel_input(struct panel *p, const struct panel_view *v)
{
	int ch, got = 0;

	p->v = v;
	while ((ch = wgetch(stdscr)) != ERR) {
		got++;
		if (handle_key(p, ch)) {
			p->quit = 1;
			return 1;
		}
	}
	if (!got) {
		/* poll said readable but there is nothing: the terminal is gone.
		 * Stop polling it rather than spin. */
		/* (a terminal that hung up fails the ioctl with EIO) */
		int avail = 0;
		if (ioctl(STDIN_FILENO, FIONREAD, &avail) == -1 || avail == 0) {
			p->input_eof = 1;
			log_warn("panel: terminal input closed; the panel no longer takes keys");
		}
	}
	return 0;
}

void panel_log(struct panel *p, double ts, enum log_level lvl, const char *tag, const char *text)
{
	char t[LINE_MAX_TEXT];
	if (tag && tag[0])
		snprintf(t, sizeof t, "%.31s %.200s", tag, text);
	else
		snprintf(t, sizeof t, "%.230s", text);
	pane_ring_push(&p->log, ts > 0 ? ts : clock_wall(), lvl, t);
	p->dirty = 1;
}

void panel_request(struct panel *p, double ts, const char *user_id, const char *cp_id, const char *outcome)
{
	char t[LINE_MAX_TEXT];
	snprintf(t, sizeof t, "%.40s -> %.32s %.150s", user_id, cp_id, outcome);
	pane_ring_push(&p->req, ts > 0 ? ts : clock_wall(), strncmp(outcome, "AUTH_OK", 7) == 0 ? LOG_INFO : LOG_WARN,
		       t);
	p->dirty = 1;
}

/* The loop may not call us on SIGWINCH (ncurses only reports it through
 * getch), so look at the real size each turn: one ioctl. */
static void check_size(struct panel *p)
{
	struct winsize ws;

	if (ioctl(fileno(p->out), TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0)
		return;
	if (ws.ws_row != p->rows || ws.ws_col != p->cols) {
		resizeterm(ws.ws_row, ws.ws_col);
		layout(p);
		p->full = 1;
		p->dirty = 1;
	}
}

void panel_refresh(struct panel *p, const struct panel_view *v, double now)
{
	long sec = (long)floor(now);

	p->v = v;
	if (v->rev != p->drawn_rev) {
		p->drawn_rev = v->rev;
		p->dirty = 1;
	}
	check_size(p);
	drain_sink(p);
	if (sec != p->last_sec) {
		p->last_sec = sec;
		p->dirty = 1;
	}
	if (views_tick(p->views, v, now))
		p->dirty = 1;
	if (!p->dirty && !p->full)
		return;
	if (now - p->last_draw < REDRAW_GAP && now >= p->last_draw)
		return;
	p->last_draw = now;
	draw(p, now);
}

int panel_timeout_ms(const struct panel *p)
{
	double now = clock_wall();
	double next = floor(now) + 1.0; /* the clock tick */
	int ms;

	if (p->dirty || p->full) {
		double d = p->last_draw + REDRAW_GAP;
		if (d < next)
			next = d;
	}
	ms = (int)ceil((next - now) * 1000.0);
	if (ms < 0)
		ms = 0;
	if (ms > 1000)
		ms = 1000;
	if (views_busy(p->views) && ms > VIEWS_POLL_MS) /* its answer, soon after it is in */
		ms = VIEWS_POLL_MS;
	return ms;
}

void panel_set_attached(struct panel *p, const char *where)
{
	p->attached = 1;
	snprintf(p->attached_to, sizeof p->attached_to, "%s", where);
	set_msg(p, THEME_DIM, "attached to %.90s: ? shows the keys, q detaches", where);
	p->full = 1;
}

void panel_close(struct panel *p)
{
	if (!p)
		return;
	log_set_sink(NULL, NULL);
	errcap_stop(p->errcap);
	drain_sink(p);
	endwin();
	delscreen(p->scr);
	/* lines logged while the panel was up stay readable after it */
	for (size_t i = 0; i < p->log.n; i++) {
		const struct pane_line *l = pane_ring_at(&p->log, i);
		if (l->lvl >= LOG_WARN)
			log_msg(l->lvl, "%s", l->text);
	}
	pthread_mutex_destroy(&p->sink_mu);
	pane_ring_free(&p->log);
	pane_ring_free(&p->req);
	pane_ring_free(&p->sink);
	free(p->view);
	free(p->cache);
	views_free(p->views);
	free(p);
}

struct panel *panel_open(panel_exec_fn exec, void *exec_arg, int readonly, int no_color, char err[EVC_ERR_LEN])
{
	struct panel *p;
	const char *term = getenv("TERM");

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		evc_seterr(err, "the panel needs a terminal on stdin and stdout (use --headless)");
		return NULL;
	}
	if (!term || !*term || strcmp(term, "dumb") == 0) {
		evc_seterr(err, "TERM is %s: the panel needs a real terminal (use --headless)",
			 term && *term ? term : "unset");
		return NULL;
	}
	theme_locale_init();
	p = xcalloc(1, sizeof *p);
	p->out = stdout;
	p->scr = newterm(NULL, stdout, stdin);
	if (!p->scr) {
		evc_seterr(err, "cannot start the screen on terminal type '%s' (use --headless)", term);
		free(p);
		return NULL;
	}
	set_term(p->scr);
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	/* Home/End as xterm, tmux, rxvt and the Linux console send them, when
	 * the terminfo entry only knows one of the forms */
	define_key("\033[1~", KEY_HOME);
	define_key("\033[7~", KEY_HOME);
	define_key("\033[H", KEY_HOME);
	define_key("\033OH", KEY_HOME);
	define_key("\033[4~", KEY_END);
	define_key("\033[8~", KEY_END);
	define_key("\033[F", KEY_END);
	define_key("\033OF", KEY_END);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	theme_init(no_color);

	p->exec = exec;
	p->exec_arg = exec_arg;
	p->readonly = readonly;
	pane_ring_init(&p->log, LOG_KEEP);
	pane_ring_init(&p->req, REQ_KEEP);
	pane_ring_init(&p->sink, SINK_KEEP);
	pthread_mutex_init(&p->sink_mu, NULL);
	p->msg_role = THEME_DIM;
	snprintf(p->msg, sizeof p->msg, "%s",
		 readonly ? "read-only panel: commands are disabled (--readonly); ? shows the keys"
			  : "? shows the keys");
	p->last_sec = -1;
	p->last_draw = -1;
	p->views = views_new();
	panel_set_mouse(p, 1);
	p->full = 1;
	p->dirty = 1;
	layout(p);
	log_set_sink(panel_sink, p);
	p->errcap = errcap_start(errcap_line, p);
	return p;
}
