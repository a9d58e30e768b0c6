/* The key table: dispatch, help and hint bar from the same entries. */
#include "ui/keys.h"

#include <stdio.h>
#include <string.h>

#include "ui/theme.h"

const struct keys_entry *keys_find(const struct keys_table *t, int key)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].key == key)
			return &t->v[i];
	return NULL;
}

int keys_dispatch(const struct keys_table *t, int key, void *ctx, int readonly)
{
	const struct keys_entry *e = keys_find(t, key);

	if (!e || !e->handler)
		return KEYS_UNBOUND;
	if (readonly && (e->flags & KEYS_COMMAND))
		return KEYS_REFUSED;
	return e->handler(ctx, key);
}

/* Entries with the same help text (by content) form one help line; the
 * first of them decides where the line appears. */
static int first_of_group(const struct keys_table *t, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(t->v[j].help, t->v[i].help) == 0)
			return 0;
	return 1;
}

/* Entry j is the first of group i (same help) with its name: several key
 * codes for one key (Enter is '\r', '\n' and KEY_ENTER) are one name. */
static int first_name(const struct keys_table *t, size_t i, size_t j)
{
	for (size_t k = i; k < j; k++)
		if (strcmp(t->v[k].help, t->v[i].help) == 0 && strcmp(t->v[k].name, t->v[j].name) == 0)
			return 0;
	return 1;
}

size_t keys_help_line(const struct keys_table *t, long want, char *buf, size_t len)
{
	size_t line = 0;

	if (len)
		buf[0] = 0;
	for (size_t i = 0; i < t->n; i++) {
		char names[64];
		size_t nl = 0;

		if (!first_of_group(t, i))
			continue;
		if (want >= 0 && (size_t)want == line && len) {
			names[0] = 0;
			for (size_t j = i; j < t->n; j++) {
				if (strcmp(t->v[j].help, t->v[i].help) != 0 || !first_name(t, i, j))
					continue;
				int k = snprintf(names + nl, sizeof names - nl, "%s%s",
						 nl ? "/" : "", t->v[j].name);
				if (k < 0 || (size_t)k >= sizeof names - nl)
					break;
				nl += (size_t)k;
			}
			snprintf(buf, len, "  %-16s %s", names, t->v[i].help);
		}
		line++;
	}
	return line;
}

void keys_draw_help(WINDOW *w, const struct keys_table *t, const char *title, int readonly)
{
	size_t n = keys_help_line(t, -1, NULL, 0);
	int maxy = getmaxy(w), maxx = getmaxx(w);
	/* As wide as its longest line (a fixed width cut the last words of
	 * the long ones), at most the window. */
	int bw = (int)strlen(title) + 6;
	if (bw < 48)
		bw = 48;
	for (size_t i = 0; i < n; i++) {
		char line[160];
		keys_help_line(t, (long)i, line, sizeof line);
		if ((int)strlen(line) + 4 > bw)
			bw = (int)strlen(line) + 4;
	}
	if (bw > maxx)
		bw = maxx;
	int bh = (int)n + 4 + (readonly ? 1 : 0);
	int y0, x0, row;
	char buf[160];

	if (bh > maxy)
		bh = maxy;
	y0 = (maxy - bh) / 2;
	x0 = (maxx - bw) / 2;
	theme_fill(w, y0, x0, bh, bw, A_NORMAL);
	theme_box(w, y0, x0, bh, bw, theme_attr(THEME_TITLE));
	theme_puts(w, y0, x0 + 2, bw - 4, title, theme_attr(THEME_TITLE));
	row = y0 + 1;
	if (readonly && row < y0 + bh - 1)
		theme_puts(w, row++, x0 + 2, bw - 4,
			   "read-only: commands are disabled (--readonly)",
			   theme_attr(THEME_WARNTEXT));
	for (size_t i = 0; i < n && row < y0 + bh - 2; i++, row++) {
		keys_help_line(t, (long)i, buf, sizeof buf);
		theme_puts(w, row, x0 + 1, bw - 2, buf, A_NORMAL);
	}
	if (bh >= 3)
		theme_puts(w, y0 + bh - 2, x0 + 2, bw - 4, "any key closes this help",
			   theme_attr(THEME_DIM));
}

void keys_draw_bar(WINDOW *w, int y, int x, int width, const struct keys_table *t, int readonly)
{
	int col = x, end = x + width;

	theme_fill(w, y, x, 1, width, theme_attr(THEME_BAR));
	for (size_t i = 0; i < t->n && col < end; i++) {
		const struct keys_entry *e = &t->v[i];
		const char *txt = e->bar ? e->bar : e->help;
		int kl = (int)strlen(e->name), tl = (int)strlen(txt);

		if (!(e->flags & KEYS_BAR) || (readonly && (e->flags & KEYS_COMMAND)))
			continue;
		if (col + kl + 1 + tl > end)
			break;
		theme_puts(w, y, col, end - col, e->name, theme_attr(THEME_KEY));
		col += kl + 1;
		theme_puts(w, y, col, end - col, txt, theme_attr(THEME_BAR));
		col += tl + 2;
	}
	if (readonly && end - col > 10)
		theme_puts(w, y, end - 10, 10, "READ-ONLY", theme_attr(THEME_KEY));
}

size_t keys_help_all_lines(const struct keys_sect *s, size_t n)
{
	size_t lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += (i ? 2 : 1) + keys_help_line(s[i].t, -1, NULL, 0);
	return lines;
}

/* Line i of the sections' help: a title, the keys, a blank line between
 * sections. Returns the attribute role: 1 title, 0 a key line. */
static int help_all_line(const struct keys_sect *s, size_t n, size_t want, char *buf, size_t len)
{
	size_t line = 0;
	buf[0] = 0;
	for (size_t i = 0; i < n; i++) {
		size_t k = keys_help_line(s[i].t, -1, NULL, 0);
		if (i) {
			if (want == line)
				return 0;
			line++;
		}
		if (want == line) {
			snprintf(buf, len, "%s", s[i].title);
			return 1;
		}
		line++;
		if (want < line + k) {
			keys_help_line(s[i].t, (long)(want - line), buf, len);
			return 0;
		}
		line += k;
	}
	return 0;
}

int keys_draw_help_all(WINDOW *w, const struct keys_sect *s, size_t n, const char *title, int readonly,
		       size_t *scroll)
{
	size_t total = keys_help_all_lines(s, n);
	int maxy = getmaxy(w), maxx = getmaxx(w);
	int bw = maxx < 76 ? maxx : 76;
	int bh = (int)total + 4 + (readonly ? 1 : 0);
	int y0, x0, row, room;
	char buf[160];

	if (bh > maxy)
		bh = maxy;
	y0 = (maxy - bh) / 2;
	x0 = (maxx - bw) / 2;
	room = bh - 3 - (readonly ? 1 : 0);
	if (room < 1)
		room = 1;
	if (*scroll + (size_t)room > total)
		*scroll = total > (size_t)room ? total - (size_t)room : 0;
	theme_fill(w, y0, x0, bh, bw, A_NORMAL);
	theme_box(w, y0, x0, bh, bw, theme_attr(THEME_TITLE));
	theme_puts(w, y0, x0 + 2, bw - 4, title, theme_attr(THEME_TITLE));
	row = y0 + 1;
	if (readonly && row < y0 + bh - 1)
		theme_puts(w, row++, x0 + 2, bw - 4, "read-only: commands are disabled (--readonly)",
			   theme_attr(THEME_WARNTEXT));
	for (size_t i = *scroll; i < total && row < y0 + bh - 2; i++, row++) {
		int is_title = help_all_line(s, n, i, buf, sizeof buf);
		theme_puts(w, row, x0 + (is_title ? 2 : 1), bw - 3, buf, is_title ? A_BOLD | A_UNDERLINE : A_NORMAL);
	}
	if (bh >= 3)
		theme_puts(w, y0 + bh - 2, x0 + 2, bw - 4,
			   total > (size_t)room ? "Up/Down/PgUp/PgDn scroll, any other key closes"
						: "any key closes this help",
			   theme_attr(THEME_DIM));
	return total > (size_t)room;
}
