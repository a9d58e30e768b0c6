/* Colours by meaning, monochrome fallback, UTF-8 or ASCII line drawing. */
#include "ui/theme.h"

#include <langinfo.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wchar.h>

static int locale_done;
static int utf8;
static int colours;
static attr_t role_attr[THEME_ROLE_COUNT];

void theme_locale_init(void)
{
	const char *cs;

	if (locale_done)
		return;
	locale_done = 1;
	/* Only the character type: LC_NUMERIC stays "C" so that prices in
	 * frames and JSON keep their '.' under a Spanish (or any) locale. */
	setlocale(LC_CTYPE, "");
	cs = nl_langinfo(CODESET);
	utf8 = cs && (strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "utf8") == 0);
}

int theme_is_utf8(void)
{
	return utf8;
}

int theme_env_no_color(void)
{
	const char *e = getenv("NO_COLOR");
	return e && *e;
}

int theme_has_color(void)
{
	return colours;
}

/* Monochrome: the state word carries the meaning; attributes only help the
 * eye (and never emit colour escapes). */
static void init_mono(void)
{
	for (int i = 0; i < THEME_ROLE_COUNT; i++)
		role_attr[i] = A_NORMAL;
	role_attr[THEME_BUSY] = A_BOLD;
	role_attr[THEME_WARN] = A_BOLD;
	role_attr[THEME_BAD] = A_BOLD | A_UNDERLINE;
	role_attr[THEME_OFF] = A_DIM;
	role_attr[THEME_RESERVED] = A_UNDERLINE;
	role_attr[THEME_TITLE] = A_REVERSE | A_BOLD;
	role_attr[THEME_BAR] = A_REVERSE;
	role_attr[THEME_KEY] = A_REVERSE | A_BOLD;
	role_attr[THEME_DIM] = A_DIM;
	role_attr[THEME_ERRTEXT] = A_BOLD;
	role_attr[THEME_WARNTEXT] = A_BOLD;
	role_attr[THEME_OKTEXT] = A_NORMAL;
}

static void pair(enum theme_role r, short fg, short bg, attr_t extra)
{
	short n = (short)r; /* pair number = role (pair 0 is reserved) */
	init_pair(n, fg, bg);
	role_attr[r] = COLOR_PAIR(n) | extra;
}

int theme_init(int no_color)
{
	int c256;
	short orange, grey, green, dark;

	theme_locale_init();
	colours = 0;
	init_mono();
	if (no_color || theme_env_no_color() || !has_colors())
		return 0;
	if (start_color() == ERR)
		return 0;
	use_default_colors();
	if (COLOR_PAIRS < THEME_ROLE_COUNT)
		return 0;
	c256 = COLORS >= 256;
	orange = c256 ? 208 : COLOR_YELLOW;
	grey = c256 ? 245 : COLOR_WHITE;
	green = c256 ? 34 : COLOR_GREEN;
	dark = c256 ? 236 : COLOR_BLACK;
	colours = 1;
	role_attr[THEME_NORMAL] = A_NORMAL;
	pair(THEME_OK, COLOR_BLACK, green, 0);
	pair(THEME_BUSY, COLOR_BLACK, c256 ? 46 : COLOR_GREEN, A_BOLD);
	pair(THEME_WARN, COLOR_BLACK, orange, 0);
	pair(THEME_BAD, COLOR_WHITE, COLOR_RED, A_BOLD);
	pair(THEME_OFF, COLOR_BLACK, grey, 0);
	pair(THEME_RESERVED, COLOR_BLACK, COLOR_CYAN, 0);
	pair(THEME_TITLE, COLOR_WHITE, COLOR_BLUE, A_BOLD);
	pair(THEME_BAR, COLOR_WHITE, dark, 0);
	pair(THEME_KEY, COLOR_YELLOW, dark, A_BOLD);
	pair(THEME_DIM, c256 ? 244 : COLOR_WHITE, -1, c256 ? 0 : A_DIM);
	pair(THEME_ERRTEXT, COLOR_RED, -1, A_BOLD);
	pair(THEME_WARNTEXT, orange, -1, 0);
	pair(THEME_OKTEXT, COLOR_GREEN, -1, 0);
	return 1;
}

attr_t theme_attr(enum theme_role role)
{
	if ((int)role < 0 || role >= THEME_ROLE_COUNT)
		return A_NORMAL;
	return role_attr[role];
}

enum theme_role theme_state_role(enum cp_state st)
{
	switch (st) {
	case CP_ACTIVADO: return THEME_OK;
	case CP_SUMINISTRANDO: return THEME_BUSY;
	case CP_FUERA_DE_SERVICIO: return THEME_WARN;
	case CP_AVERIADO: return THEME_BAD;
	case CP_RESERVADO: return THEME_RESERVED;
	case CP_DESCONECTADO:
	default: return THEME_OFF;
	}
}

attr_t theme_state_attr(enum cp_state st)
{
	return theme_attr(theme_state_role(st));
}

static const char letters[CP_STATE_COUNT] = {
	[CP_DESCONECTADO] = 'D', [CP_ACTIVADO] = 'A', [CP_RESERVADO] = 'R',
	[CP_SUMINISTRANDO] = 'S', [CP_AVERIADO] = 'X', [CP_FUERA_DE_SERVICIO] = 'F',
};

const char *theme_state_word(enum cp_state st)
{
	return cp_state_name(st);
}

const char *theme_state_label(enum cp_state st)
{
	return cp_state_label(st);
}

char theme_state_letter(enum cp_state st)
{
	return (unsigned)st < CP_STATE_COUNT ? letters[st] : '?';
}

/* Box pieces: index 0..5 = horizontal, vertical, ul, ur, ll, lr. */
static const char *piece(int i)
{
	static const char *const u[] = { "\xe2\x94\x80", "\xe2\x94\x82", "\xe2\x94\x8c",
					 "\xe2\x94\x90", "\xe2\x94\x94", "\xe2\x94\x98" };
	static const char *const a[] = { "-", "|", "+", "+", "+", "+" };
	return utf8 ? u[i] : a[i];
}

static int inside(WINDOW *w, int y, int x)
{
	return y >= 0 && x >= 0 && y < getmaxy(w) && x < getmaxx(w);
}

static void put_piece(WINDOW *w, int y, int x, int i, attr_t attr)
{
	if (!inside(w, y, x))
		return;
	wattrset(w, attr);
	mvwaddstr(w, y, x, piece(i));
}

void theme_hline(WINDOW *w, int y, int x, int n, attr_t attr)
{
	for (int i = 0; i < n; i++)
		put_piece(w, y, x + i, 0, attr);
	wattrset(w, A_NORMAL);
}

void theme_vline(WINDOW *w, int y, int x, int n, attr_t attr)
{
	for (int i = 0; i < n; i++)
		put_piece(w, y + i, x, 1, attr);
	wattrset(w, A_NORMAL);
}

void theme_box(WINDOW *w, int y, int x, int h, int wd, attr_t attr)
{
	if (h < 2 || wd < 2)
		return;
	theme_hline(w, y, x + 1, wd - 2, attr);
	theme_hline(w, y + h - 1, x + 1, wd - 2, attr);
	theme_vline(w, y + 1, x, h - 2, attr);
	theme_vline(w, y + 1, x + wd - 1, h - 2, attr);
	put_piece(w, y, x, 2, attr);
	put_piece(w, y, x + wd - 1, 3, attr);
	put_piece(w, y + h - 1, x, 4, attr);
	put_piece(w, y + h - 1, x + wd - 1, 5, attr);
	wattrset(w, A_NORMAL);
}

void theme_fill(WINDOW *w, int y, int x, int h, int wd, attr_t attr)
{
	int maxy = getmaxy(w), maxx = getmaxx(w);

	wattrset(w, attr);
	for (int r = y; r < y + h && r < maxy; r++) {
		if (r < 0)
			continue;
		for (int c = x < 0 ? 0 : x; c < x + wd && c < maxx; c++)
			mvwaddch(w, r, c, ' ');
	}
	wattrset(w, A_NORMAL);
}

void theme_puts(WINDOW *w, int y, int x, int n, const char *s, attr_t attr)
{
	mbstate_t ps;
	wchar_t buf[256];
	int cols = 0;
	size_t k = 0, len;

	if (!s || n <= 0 || !inside(w, y, x))
		return;
	if (n > getmaxx(w) - x)
		n = getmaxx(w) - x;
	memset(&ps, 0, sizeof ps);
	len = strlen(s);
	/* Count display columns, not bytes, so a location like "Móstoles" never
	 * spills over a card's edge; undecodable bytes show as '?'. */
	while (len > 0 && k < sizeof buf / sizeof buf[0] - 1) {
		wchar_t wc;
		size_t r = mbrtowc(&wc, s, len, &ps);
		int cw;
		if (r == (size_t)-1 || r == (size_t)-2 || r == 0) {
			memset(&ps, 0, sizeof ps);
			wc = L'?';
			r = 1;
		}
		if (wc < 0x20 || wc == 0x7f)
			wc = L'?';
		cw = wcwidth(wc);
		if (cw < 0) {
			wc = L'?';
			cw = 1;
		}
		if (cols + cw > n)
			break;
		buf[k++] = wc;
		cols += cw;
		s += r;
		len -= r;
	}
	buf[k] = 0;
	wattrset(w, attr);
	mvwaddnwstr(w, y, x, buf, (int)k);
	wattrset(w, A_NORMAL);
}
