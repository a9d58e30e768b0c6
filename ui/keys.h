/* One key table per screen that both dispatches keys and draws the help and
 * the hint bar, so the help can never disagree with what the keys do.
 * Several entries may share one help text (arrows and hjkl): the help shows
 * them on one line ("Left/h  select the card to the left"). */
#ifndef EVC_UI_KEYS_H
#define EVC_UI_KEYS_H
#include <curses.h>
#include <stddef.h>

enum {
	KEYS_COMMAND = 1 << 0, /* changes something: refused when read-only */
	KEYS_BAR = 1 << 1,     /* shown in the hint bar */
};

/* What a handler returns. */
enum {
	KEYS_OK = 0,
	KEYS_QUIT = 1,      /* the screen should end */
	KEYS_UNBOUND = -1,  /* keys_dispatch: no entry for that key */
	KEYS_REFUSED = -2,  /* keys_dispatch: KEYS_COMMAND while read-only */
};

struct keys_entry {
	int key;             /* a character ('p') or a curses KEY_* code */
	const char *name;    /* as shown: "p", "Left", "PgDn" */
	const char *help;    /* one line: "stop the selected CP" */
	int (*handler)(void *ctx, int key);
	unsigned flags;      /* KEYS_COMMAND | KEYS_BAR */
	const char *bar;     /* short text for the hint bar ("stop"); NULL = help */
};

struct keys_table {
	const struct keys_entry *v;
	size_t n;
};

/* The entry bound to key, or NULL. */
const struct keys_entry *keys_find(const struct keys_table *t, int key);
/* Run the handler bound to key. Returns its result, KEYS_UNBOUND, or
 * KEYS_REFUSED (KEYS_COMMAND entry while readonly; handler not called). */
int keys_dispatch(const struct keys_table *t, int key, void *ctx, int readonly);

/* Help lines generated from the table: entries sharing a help text are
 * merged. Writes line i ("  Left/h       select the card to the left")
 * into buf; returns the number of lines, whatever i is (call with i < 0 to
 * only count). */
size_t keys_help_line(const struct keys_table *t, long i, char *buf, size_t len);
/* Draw the help in a box centred on w (title on top, "any key closes" at
 * the bottom); readonly marks command keys as disabled. */
void keys_draw_help(WINDOW *w, const struct keys_table *t, const char *title, int readonly);
/* A help of several tables (every view of a screen), each under its
 * title. */
struct keys_sect {
	const struct keys_table *t;
	const char *title;
};
size_t keys_help_all_lines(const struct keys_sect *s, size_t n);
/* Draw it in a box centred on w from line *scroll on (kept within
 * range); 1 if it is longer than the box (then it scrolls). */
int keys_draw_help_all(WINDOW *w, const struct keys_sect *s, size_t n, const char *title, int readonly,
		       size_t *scroll);
/* Draw the hint bar ("p stop  r resume  ...") of KEYS_BAR entries on row y,
 * width columns from x, in the theme's bar colours. */
void keys_draw_bar(WINDOW *w, int y, int x, int width, const struct keys_table *t, int readonly);

#endif
