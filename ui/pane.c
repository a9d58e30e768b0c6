#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evc/xalloc.h"
#include "ui/pane.h"
#include "ui/theme.h"

void pane_ring_init(struct pane_ring *r, size_t cap)
{
	r->v = xcalloc(cap ? cap : 1, sizeof *r->v);
	r->cap = cap ? cap : 1;
	r->head = r->n = 0;
}

void pane_ring_free(struct pane_ring *r)
{
	free(r->v);
	memset(r, 0, sizeof *r);
}

void pane_ring_clear(struct pane_ring *r)
{
	r->head = r->n = 0;
}

void pane_ring_push(struct pane_ring *r, double ts, enum log_level lvl, const char *text)
{
	struct pane_line *l;
	if (r->n == r->cap) {
		l = &r->v[r->head];
		r->head = (r->head + 1) % r->cap;
	} else {
		l = &r->v[(r->head + r->n) % r->cap];
		r->n++;
	}
	l->ts = ts;
	l->lvl = lvl;
	snprintf(l->text, sizeof l->text, "%s", text);
	for (char *c = l->text; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
}

const struct pane_line *pane_ring_at(const struct pane_ring *r, size_t i)
{
	return &r->v[(r->head + i) % r->cap];
}

static attr_t level_attr(const struct pane_line *l)
{
	return l->lvl >= LOG_ERROR ? theme_attr(THEME_ERRTEXT)
	       : l->lvl == LOG_WARN ? theme_attr(THEME_WARNTEXT) : A_NORMAL;
}

void pane_ring_draw(WINDOW *win, const struct pane_ring *r, const char *title, int y, int x, int h, int w,
		    pane_attr_fn attr)
{
	char buf[PANE_LINE_MAX + 16], t[16];
	if (h < 1 || w < 1)
		return;
	size_t shown = (size_t)(h - 1), start;
	if (attr == NULL)
		attr = level_attr;
	theme_fill(win, y, x, h, w, A_NORMAL);
	theme_hline(win, y, x, w, theme_attr(THEME_DIM));
	snprintf(buf, sizeof buf, " %s ", title);
	theme_puts(win, y, x + 2, w - 2, buf, theme_attr(THEME_DIM) | A_BOLD);
	start = r->n > shown ? r->n - shown : 0;
	for (size_t i = start; i < r->n; i++) {
		const struct pane_line *l = pane_ring_at(r, i);
		time_t tt = (time_t)l->ts;
		struct tm tm;
		localtime_r(&tt, &tm);
		strftime(t, sizeof t, "%H:%M:%S", &tm);
		snprintf(buf, sizeof buf, "%s %s", t, l->text);
		theme_puts(win, y + 1 + (int)(i - start), x, w, buf, attr(l));
	}
}
