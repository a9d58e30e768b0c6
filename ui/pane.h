/* The scrolling line pane every screen of the family has (the panel's
 * Requests and Log, the CP programs' and the driver's events): a fixed
 * ring of timestamped lines, the oldest falling out, drawn newest at the
 * bottom under a titled rule. Main (curses) thread only. */
#ifndef EVC_UI_PANE_H
#define EVC_UI_PANE_H
#include <curses.h>
#include <stddef.h>

#include "evc/log.h"

#define PANE_LINE_MAX 240

struct pane_line {
	double ts;          /* wall clock */
	enum log_level lvl;
	char text[PANE_LINE_MAX];
};

struct pane_ring {
	struct pane_line *v;
	size_t cap, head, n; /* head = index of the oldest */
};

void pane_ring_init(struct pane_ring *r, size_t cap);
void pane_ring_free(struct pane_ring *r);
/* Copy a line in (cut to PANE_LINE_MAX; control characters become
 * blanks: a line is one screen row, whatever the network sent). */
void pane_ring_push(struct pane_ring *r, double ts, enum log_level lvl, const char *text);
/* Line i, 0 = oldest; i < r->n. */
const struct pane_line *pane_ring_at(const struct pane_ring *r, size_t i);
void pane_ring_clear(struct pane_ring *r);

/* The attribute of a line; NULL in pane_ring_draw colours by level. */
typedef attr_t (*pane_attr_fn)(const struct pane_line *l);

/* Draw r in the h x w box at y,x of win: a rule with " title " on the
 * first row, then the newest lines, each "hh:mm:ss text". */
void pane_ring_draw(WINDOW *win, const struct pane_ring *r, const char *title, int y, int x, int h, int w,
		    pane_attr_fn attr);

#endif
