/* ui/keys.c and ui/theme.c: the key table's dispatch, help and hint bar,
 * and the theme's words, monochrome and column-exact text, drawn into an
 * off-screen curses window (output to /dev/null) and read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curses.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui/keys.h"
#include "ui/theme.h"

static int calls, last_key;

static int h_count(void *ctx, int key)
{
	(void)ctx;
	calls++;
	last_key = key;
	return KEYS_OK;
}

static int h_quit(void *ctx, int key)
{
	(void)ctx;
	(void)key;
	return KEYS_QUIT;
}

static const struct keys_entry entries[] = {
	{ KEY_LEFT, "Left", "select the card to the left", h_count, 0, NULL },
	{ 'h', "h", "select the card to the left", h_count, 0, NULL },
	{ 'p', "p", "stop the selected CP", h_count, KEYS_COMMAND | KEYS_BAR, "stop" },
	{ '?', "?", "this help", h_count, KEYS_BAR, "help" },
	{ 'q', "q", "quit", h_quit, KEYS_BAR, "quit" },
};
static const struct keys_table table = { entries, sizeof entries / sizeof entries[0] };

static void test_dispatch(void **state)
{
	(void)state;
	calls = 0;
	assert_int_equal(keys_dispatch(&table, 'h', NULL, 0), KEYS_OK);
	assert_int_equal(calls, 1);
	assert_int_equal(last_key, 'h');
	assert_int_equal(keys_dispatch(&table, KEY_LEFT, NULL, 0), KEYS_OK);
	assert_int_equal(last_key, KEY_LEFT);
	assert_int_equal(keys_dispatch(&table, 'q', NULL, 0), KEYS_QUIT);
	assert_int_equal(keys_dispatch(&table, 'z', NULL, 0), KEYS_UNBOUND);
	assert_int_equal(calls, 2);
	assert_null(keys_find(&table, 'z'));
	assert_ptr_equal(keys_find(&table, 'p'), &entries[2]);
}

static void test_readonly_refuses_commands_only(void **state)
{
	(void)state;
	calls = 0;
	assert_int_equal(keys_dispatch(&table, 'p', NULL, 1), KEYS_REFUSED);
	assert_int_equal(calls, 0);
	assert_int_equal(keys_dispatch(&table, 'p', NULL, 0), KEYS_OK);
	assert_int_equal(calls, 1);
	/* moving and help still work read-only */
	assert_int_equal(keys_dispatch(&table, 'h', NULL, 1), KEYS_OK);
	assert_int_equal(keys_dispatch(&table, '?', NULL, 1), KEYS_OK);
	assert_int_equal(calls, 3);
}

static void test_help_lines_merge_same_help(void **state)
{
	char buf[160];
	(void)state;
	/* 5 entries, Left and h share their help: 4 lines */
	assert_int_equal(keys_help_line(&table, -1, NULL, 0), 4);
	keys_help_line(&table, 0, buf, sizeof buf);
	assert_non_null(strstr(buf, "Left/h"));
	assert_non_null(strstr(buf, "select the card to the left"));
	keys_help_line(&table, 1, buf, sizeof buf);
	assert_non_null(strstr(buf, "p "));
	assert_non_null(strstr(buf, "stop the selected CP"));
	keys_help_line(&table, 3, buf, sizeof buf);
	assert_non_null(strstr(buf, "quit"));
	/* past the end: empty, same count */
	assert_int_equal(keys_help_line(&table, 9, buf, sizeof buf), 4);
	assert_string_equal(buf, "");
}

/* ---- drawing, off screen ---- */

static SCREEN *scr;
static FILE *devnull_out, *devnull_in;

static int setup_curses(void **state)
{
	(void)state;
	theme_locale_init();
	devnull_out = fopen("/dev/null", "w");
	devnull_in = fopen("/dev/null", "r");
	if (!devnull_out || !devnull_in)
		return -1;
	scr = newterm("xterm-256color", devnull_out, devnull_in);
	if (!scr)
		scr = newterm("xterm", devnull_out, devnull_in);
	return scr ? 0 : -1;
}

static int teardown_curses(void **state)
{
	(void)state;
	endwin();
	delscreen(scr);
	fclose(devnull_out);
	fclose(devnull_in);
	return 0;
}

static void row_text(WINDOW *w, int y, char *buf, int n)
{
	mvwinnstr(w, y, 0, buf, n);
}

static void test_bar_from_table(void **state)
{
	WINDOW *w = newwin(3, 80, 0, 0);
	char buf[128];
	(void)state;
	theme_init(1);
	keys_draw_bar(w, 0, 0, 80, &table, 0);
	row_text(w, 0, buf, 80);
	assert_non_null(strstr(buf, "p stop"));
	assert_non_null(strstr(buf, "? help"));
	assert_non_null(strstr(buf, "q quit"));
	assert_null(strstr(buf, "Left")); /* not a KEYS_BAR entry */
	keys_draw_bar(w, 1, 0, 80, &table, 1);
	row_text(w, 1, buf, 80);
	assert_null(strstr(buf, "p stop")); /* commands hidden read-only */
	assert_non_null(strstr(buf, "READ-ONLY"));
	delwin(w);
}

static void test_help_box_from_table(void **state)
{
	WINDOW *w = newwin(20, 70, 0, 0);
	char buf[128];
	int found_merged = 0, found_ro = 0;
	(void)state;
	theme_init(1);
	keys_draw_help(w, &table, "keys", 1);
	for (int y = 0; y < 20; y++) {
		row_text(w, y, buf, 70);
		found_merged |= strstr(buf, "Left/h") != NULL;
		found_ro |= strstr(buf, "read-only") != NULL;
	}
	assert_true(found_merged);
	assert_true(found_ro);
	delwin(w);
}

/* The box is as wide as its longest line: a help text of 45 characters
 * was cut at "(Esc clears" by a box of fixed width. */
static void test_help_box_fits_long_lines(void **state)
{
	static const struct keys_entry long_entries[] = {
		{ '/', "/", "filter by id, location or state (Esc clears)", h_count, KEYS_BAR, "filter" },
		{ ':', ":", "command line: P <id>, R <id>, PT, RT, REVOKE <id>, Q", h_count, KEYS_BAR, "command" },
	};
	static const struct keys_table lt = { long_entries, 2 };
	WINDOW *w = newwin(12, 80, 0, 0);
	char buf[128];
	int seen = 0, seen2 = 0;
	(void)state;
	theme_init(1);
	keys_draw_help(w, &lt, "EV_Central panel: keys", 0);
	for (int y = 0; y < 12; y++) {
		row_text(w, y, buf, 80);
		seen |= strstr(buf, "(Esc clears)") != NULL;
		seen2 |= strstr(buf, "REVOKE <id>, Q") != NULL;
	}
	assert_true(seen);
	assert_true(seen2);
	delwin(w);
}

static void test_theme_words_and_mono(void **state)
{
	(void)state;
	/* the theme touched only LC_CTYPE: numbers still print with '.' */
	assert_string_equal(setlocale(LC_NUMERIC, NULL), "C");
	assert_string_equal(theme_state_word(CP_DESCONECTADO), "DESCONECTADO");
	assert_string_equal(theme_state_word(CP_ACTIVADO), "ACTIVADO");
	assert_string_equal(theme_state_word(CP_RESERVADO), "RESERVADO");
	assert_string_equal(theme_state_word(CP_SUMINISTRANDO), "SUMINISTRANDO");
	assert_string_equal(theme_state_word(CP_AVERIADO), "AVERIADO");
	assert_string_equal(theme_state_word(CP_FUERA_DE_SERVICIO), "FUERA_DE_SERVICIO");
	assert_string_equal(theme_state_label(CP_FUERA_DE_SERVICIO), "Out of Order");
	assert_string_equal(theme_state_word((enum cp_state)99), "?");
	/* letters are distinct: a tiny cell still tells states apart */
	for (int a = 0; a < CP_STATE_COUNT; a++)
		for (int b = a + 1; b < CP_STATE_COUNT; b++)
			assert_int_not_equal(theme_state_letter(a), theme_state_letter(b));

	setenv("NO_COLOR", "", 1);
	assert_false(theme_env_no_color()); /* empty NO_COLOR does not count */
	setenv("NO_COLOR", "1", 1);
	assert_true(theme_env_no_color());
	assert_int_equal(theme_init(0), 0);
	assert_false(theme_has_color());
	for (int s = 0; s < CP_STATE_COUNT; s++)
		assert_int_equal(theme_state_attr(s) & A_COLOR, 0);
	unsetenv("NO_COLOR");
	assert_int_equal(theme_init(1), 0); /* --no-color */
	assert_int_equal(theme_state_attr(CP_AVERIADO) & A_COLOR, 0);
	/* colours where the terminal has them, each state its own pair */
	if (theme_init(0)) {
		assert_int_not_equal(theme_state_attr(CP_ACTIVADO) & A_COLOR, 0);
		assert_int_not_equal(theme_state_attr(CP_FUERA_DE_SERVICIO) & A_COLOR,
				     theme_state_attr(CP_AVERIADO) & A_COLOR);
		assert_int_not_equal(theme_state_attr(CP_RESERVADO) & A_COLOR,
				     theme_state_attr(CP_ACTIVADO) & A_COLOR);
	}
}

static void test_puts_counts_columns(void **state)
{
	WINDOW *w = newwin(4, 20, 0, 0);
	char buf[64];
	(void)state;
	theme_init(1);
	theme_puts(w, 0, 0, 5, "ABCDEFGH", A_NORMAL);
	row_text(w, 0, buf, 8);
	assert_memory_equal(buf, "ABCDE   ", 8);
	/* control characters from the network never reach the terminal */
	theme_puts(w, 1, 0, 6, "a\x1b[2Jb", A_NORMAL);
	row_text(w, 1, buf, 6);
	assert_int_equal(buf[1], '?');
	/* off the window: nothing, no crash */
	theme_puts(w, 9, 0, 5, "x", A_NORMAL);
	theme_puts(w, 0, 30, 5, "x", A_NORMAL);
	theme_box(w, 2, 0, 2, 20, A_NORMAL);
	theme_fill(w, -1, -1, 40, 40, A_NORMAL);
	if (theme_is_utf8()) {
		/* 8 columns of "Móstoles" fit in 8, whatever its byte count */
		cchar_t cc;
		wchar_t wc[4];
		attr_t a;
		short pair;
		theme_puts(w, 3, 0, 8, "M\xc3\xb3stoles!", A_NORMAL);
		mvwin_wch(w, 3, 1, &cc);
		getcchar(&cc, wc, &a, &pair, NULL);
		assert_int_equal(wc[0], 0xf3);
		mvwin_wch(w, 3, 8, &cc);
		getcchar(&cc, wc, &a, &pair, NULL);
		assert_int_equal(wc[0], L' '); /* the '!' was cut */
	}
	delwin(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch),
		cmocka_unit_test(test_readonly_refuses_commands_only),
		cmocka_unit_test(test_help_lines_merge_same_help),
		cmocka_unit_test(test_bar_from_table),
		cmocka_unit_test(test_help_box_from_table),
		cmocka_unit_test(test_help_box_fits_long_lines),
		cmocka_unit_test(test_theme_words_and_mono),
		cmocka_unit_test(test_puts_counts_columns),
	};
	setenv("LC_ALL", "C.UTF-8", 0);
	return cmocka_run_group_tests_name("ui", tests, setup_curses, teardown_curses);
}
