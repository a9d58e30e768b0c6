/* The driver's services-file parser: comments, blanks, whitespace, CRLF,
 * and a clear error (with the line number) for every bad line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "src/driver/services.h"

static void parse_ok(const char *text, size_t len, struct services *s)
{
	char err[EVC_ERR_LEN] = "";
	int rc = services_parse(text, len, s, err);
	if (rc != 0)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(rc, 0);
}

static void test_plain(void **state)
{
	(void)state;
	struct services s;
	const char *t = "MAD-01\nBCN_02\nx\n";
	parse_ok(t, strlen(t), &s);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.cp[0], "MAD-01");
	assert_string_equal(s.cp[1], "BCN_02");
	assert_string_equal(s.cp[2], "x");
	services_free(&s);
	assert_null(s.cp);
	assert_int_equal(s.n, 0);
}

static void test_comments_blanks_spaces_crlf(void **state)
{
	(void)state;
	struct services s;
	const char *t = "# my services\r\n\r\n   \t\n  MAD-01  \r\n#MAD-02\nBCN-01 # the beach\n\tVLC-9\t\n  # indented comment\nLAST";
	parse_ok(t, strlen(t), &s);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.cp[0], "MAD-01");
	assert_string_equal(s.cp[1], "BCN-01");
	assert_string_equal(s.cp[2], "VLC-9");
	assert_string_equal(s.cp[3], "LAST"); /* no final newline */
	services_free(&s);
}

static void test_empty_and_only_comments(void **state)
{
	(void)state;
	struct services s;
	parse_ok("", 0, &s);
	assert_int_equal(s.n, 0);
	services_free(&s);
	parse_ok("# nothing\n\n#\n", 12, &s);
	assert_int_equal(s.n, 0);
	services_free(&s);
}

static void test_duplicates_kept_in_order(void **state)
{
	(void)state;
	struct services s;
	const char *t = "A\nB\nA\nA\n";
	parse_ok(t, strlen(t), &s);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.cp[2], "A");
	assert_string_equal(s.cp[3], "A");
	services_free(&s);
}

static void parse_bad(const char *text, size_t len, const char *want)
{
	struct services s = {(char **)1, 99};
	char err[EVC_ERR_LEN] = "";
	assert_int_equal(services_parse(text, len, &s, err), -1);
	assert_null(s.cp);
	assert_int_equal(s.n, 0);
	if (strstr(err, want) == NULL)
		print_error("error '%s' lacks '%s'\n", err, want);
	assert_non_null(strstr(err, want));
}

static void test_bad_lines(void **state)
{
	(void)state;
#define BAD(lit, want) parse_bad(lit, sizeof(lit) - 1, want)
	BAD("MAD-01\nMAD 01\n", "line 2: invalid CP id 'MAD 01'");
	BAD("ok\n\nMAD/01\n", "line 3: invalid CP id");
	BAD("A\nB\nC\n\xc3\xa9t\xc3\xa9\n", "line 4: invalid CP id '\?\?t\?\?'");
	BAD("A\nABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n", "line 2: CP id");
	BAD("A\nB\0C\n", "line 2: contains a NUL byte");
	BAD("\x1b[2J\n", "line 1: invalid CP id '?[2J'");
	BAD("A\n\xff\xfe\n", "line 2: invalid CP id '\?\?'");
#undef BAD
}

static void test_exactly_32(void **state)
{
	(void)state;
	struct services s;
	const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\n";
	parse_ok(t, strlen(t), &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(strlen(s.cp[0]), 32);
	services_free(&s);
}

static void test_load(void **state)
{
	(void)state;
	char path[] = "/tmp/test_driver_services.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *t = "# demo\nMAD-01\n\nBCN-01\n";
	assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
	close(fd);
	struct services s;
	char err[EVC_ERR_LEN];
	assert_int_equal(services_load(path, &s, err), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.cp[1], "BCN-01");
	services_free(&s);
	unlink(path);
	assert_int_equal(services_load(path, &s, err), -1);
	assert_non_null(strstr(err, "cannot open"));
	assert_int_equal(services_load("/", &s, err), -1);
	assert_non_null(strstr(err, "cannot read"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_comments_blanks_spaces_crlf),
		cmocka_unit_test(test_empty_and_only_comments),
		cmocka_unit_test(test_duplicates_kept_in_order),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_exactly_32),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
