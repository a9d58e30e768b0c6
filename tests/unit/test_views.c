/* ui/csv.c (RFC 4180 fields, CRLF, the atomic write into a real temp
 * folder) and the sessions filter of ui/views.c (which words mean which
 * field). No terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ui/csv.h"
#include "ui/views.h"

static char dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_views.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[600];
	while (d && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	return 0;
}

static size_t files_in_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	while (d && (e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	if (d)
		closedir(d);
	return n;
}

static char *slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_csv_fields(void **state)
{
	(void)state;
	struct csv_buf b = { 0 };
	csv_field(&b, "plain");
	csv_field(&b, "a,b");
	csv_field(&b, "say \"hi\"");
	csv_field(&b, "two\nlines");
	csv_field(&b, "cr\rhere");
	csv_field(&b, NULL);
	csv_field(&b, "");
	csv_end_row(&b);
	csv_num(&b, 1.23456, 3);
	csv_field(&b, "\"");
	csv_end_row(&b);
	assert_string_equal(b.v, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\rhere\",,\r\n"
				 "1.235,\"\"\"\"\r\n");
	assert_int_equal(b.n, strlen(b.v));
	csv_free(&b);
	assert_null(b.v);
}

static void test_csv_write_atomic(void **state)
{
	(void)state;
	struct csv_buf b = { 0 };
	char path[512], err[EVC_ERR_LEN];
	struct stat st;

	csv_field(&b, "x");
	csv_end_row(&b);
	snprintf(path, sizeof path, "%s/out.csv", dir);
	assert_int_equal(csv_write_atomic(path, &b, err), 0);
	assert_string_equal(slurp(path), "x\r\n");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* replaced whole, and no temporary file is left beside it */
	csv_field(&b, "y");
	csv_end_row(&b);
	assert_int_equal(csv_write_atomic(path, &b, err), 0);
	assert_string_equal(slurp(path), "x\r\ny\r\n");
	assert_int_equal(files_in_dir(), 1);
	csv_free(&b);
}

static void test_csv_write_refused(void **state)
{
	(void)state;
	struct csv_buf b = { 0 };
	char path[512], err[EVC_ERR_LEN];

	csv_field(&b, "x");
	csv_end_row(&b);
	/* a missing folder: an error, nothing written */
	snprintf(path, sizeof path, "%s/no/such/out.csv", dir);
	assert_int_equal(csv_write_atomic(path, &b, err), -1);
	assert_non_null(strstr(err, "No such file"));
	/* a folder as target: refused, the temporary file removed */
	assert_int_equal(csv_write_atomic(dir, &b, err), -1);
	snprintf(path, sizeof path, "%s/", dir);
	assert_int_equal(csv_write_atomic(path, &b, err), -1);
	assert_int_equal(files_in_dir(), 0);
	/* control characters: refused, and the message carries none */
	snprintf(path, sizeof path, "%s/\x1b]0;owned\x07.csv", dir);
	assert_int_equal(csv_write_atomic(path, &b, err), -1);
	for (const char *c = err; *c; c++)
		assert_true((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
	assert_int_equal(files_in_dir(), 0);
	assert_int_equal(csv_write_atomic("", &b, err), -1);
	char longp[1100];
	memset(longp, 'a', sizeof longp - 1);
	longp[sizeof longp - 1] = '\0';
	assert_int_equal(csv_write_atomic(longp, &b, err), -1);
	assert_non_null(strstr(err, "too long"));
	csv_free(&b);

	char safe[32];
	csv_safe_name("a\x1b[31mb\xc3\xa9", safe, sizeof safe);
	assert_string_equal(safe, "a?[31mb??");
}

static const struct cp_view cps[] = {
	{ .id = "MAD-01" },
	{ .id = "BCN-01" },
};

static void test_filter_words(void **state)
{
	(void)state;
	struct views_sfilter f;
	char err[EVC_ERR_LEN], d[128];

	assert_int_equal(views_sfilter_parse("", cps, 2, &f, err), 0);
	views_sfilter_describe(&f, d, sizeof d);
	assert_string_equal(d, "all sessions");
	/* a known CP in any case, spelt as the CP is */
	assert_int_equal(views_sfilter_parse("mad-01", cps, 2, &f, err), 0);
	assert_string_equal(f.cp, "MAD-01");
	assert_string_equal(f.driver, "");
	/* an unknown word is a driver; an outcome word an outcome */
	assert_int_equal(views_sfilter_parse("101 ticket", cps, 2, &f, err), 0);
	assert_string_equal(f.driver, "101");
	assert_string_equal(f.outcome, "TICKET");
	assert_int_equal(views_sfilter_parse("  BCN-01\terror  driver:d.x@y ", cps, 2, &f, err), 0);
	assert_string_equal(f.cp, "BCN-01");
	assert_string_equal(f.outcome, "SUPPLY_ERROR");
	assert_string_equal(f.driver, "d.x@y");
	views_sfilter_describe(&f, d, sizeof d);
	assert_string_equal(d, "cp BCN-01, driver d.x@y, outcome SUPPLY_ERROR");
	assert_int_equal(views_sfilter_parse("cancelled", cps, 2, &f, err), 0);
	assert_string_equal(f.outcome, "SESSION_CANCELLED");
	assert_int_equal(views_sfilter_parse("OUTCOME:open", cps, 2, &f, err), 0);
	assert_string_equal(f.outcome, "OPEN");
	/* cp: names a CP even when Central does not know it (yet) */
	assert_int_equal(views_sfilter_parse("cp:ZAR-09", cps, 2, &f, err), 0);
	assert_string_equal(f.cp, "ZAR-09");
	/* a word that names an outcome is an outcome, even for a driver: say driver: */
	assert_int_equal(views_sfilter_parse("driver:open", cps, 2, &f, err), 0);
	assert_string_equal(f.driver, "open");
	assert_string_equal(f.outcome, "");
}

static void test_filter_refused(void **state)
{
	(void)state;
	struct views_sfilter f;
	char err[EVC_ERR_LEN];

	assert_int_equal(views_sfilter_parse("outcome:paid", cps, 2, &f, err), -1);
	assert_non_null(strstr(err, "unknown outcome"));
	assert_int_equal(views_sfilter_parse("MAD-01 BCN-01", cps, 2, &f, err), -1);
	assert_non_null(strstr(err, "CP twice"));
	assert_int_equal(views_sfilter_parse("ticket open", cps, 2, &f, err), -1);
	assert_int_equal(views_sfilter_parse("colour:red", cps, 2, &f, err), -1);
	assert_non_null(strstr(err, "unknown filter field"));
	assert_int_equal(views_sfilter_parse("cp:a'b", cps, 2, &f, err), -1);
	assert_int_equal(views_sfilter_parse("x;drop", cps, 2, &f, err), -1);
	assert_int_equal(views_sfilter_parse("cp:", cps, 2, &f, err), -1);
	char longf[100];
	memset(longf, 'a', sizeof longf - 1);
	longf[sizeof longf - 1] = '\0';
	assert_int_equal(views_sfilter_parse(longf, cps, 2, &f, err), -1);
	assert_non_null(strstr(err, "too long"));
	/* a refused filter leaves nothing half set */
	assert_string_equal(f.cp, "");
	assert_string_equal(f.driver, "");
	assert_string_equal(f.outcome, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_fields),
		cmocka_unit_test_setup_teardown(test_csv_write_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_write_refused, setup, teardown),
		cmocka_unit_test(test_filter_words),
		cmocka_unit_test(test_filter_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
