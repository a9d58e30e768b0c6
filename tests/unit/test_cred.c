/* Unit tests of the secret files (evcharging(7) SECURITY), on real files
 * in a temporary folder: modes, symlinks, FIFOs, sizes, bad JSON, and that
 * no error message ever carries the secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evc/cred.h"
#include "evc/crypto.h"

#define SECRET "HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9k"

static char dir[256];
/* Every error message any test got, checked at the end for the secret. */
static char errors[200][EVC_ERR_LEN];
static size_t nerrors;

static void keep(const char *err)
{
	assert_true(nerrors < sizeof errors / sizeof errors[0]);
	snprintf(errors[nerrors++], EVC_ERR_LEN, "%s", err);
}

static const char *path_of(const char *name)
{
	static char p[4][512];
	static int i;
	i = (i + 1) % 4;
	if (name[0] == '/')
		snprintf(p[i], sizeof p[i], "%s", name);
	else
		snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
	return p[i];
}

static void write_file(const char *name, const char *body, size_t len, mode_t mode)
{
	const char *p = path_of(name);
	int fd;

	unlink(p);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, body, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void write_str(const char *name, const char *body, mode_t mode)
{
	write_file(name, body, strlen(body), mode);
}

/* cred_load must refuse the file with err containing want (and c must come
 * back wiped). */
static void assert_load_refused(const char *name, const char *want)
{
	struct cred c, zero;
	char err[EVC_ERR_LEN] = "";

	memset(&c, 'x', sizeof c);
	memset(&zero, 0, sizeof zero);
	if (cred_load(path_of(name), &c, err) != -1)
		fail_msg("%s accepted", name);
	keep(err);
	print_message("# %s: %s\n", name, err);
	if (strstr(err, want) == NULL)
		fail_msg("%s: \"%s\" does not say \"%s\"", name, err, want);
	assert_memory_equal(&c, &zero, sizeof c);
}

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	(void)state;

	snprintf(dir, sizeof dir, "%s/evc-test-cred.XXXXXX", tmp ? tmp : "/tmp");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	(void)state;

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlink(path_of(e->d_name));
	}
	if (d != NULL)
		closedir(d);
	return rmdir(dir);
}

static size_t count_files(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void test_round_trip(void **state)
{
	struct cred c = {"MAD-01", SECRET}, back;
	char err[EVC_ERR_LEN] = "", body[128];
	struct stat st;
	size_t before = count_files();
	(void)state;

	assert_int_equal(cred_save(path_of("cred.json"), &c, err), 0);
	assert_int_equal(stat(path_of("cred.json"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(count_files(), before + 1); /* no temp file left */
	FILE *f = fopen(path_of("cred.json"), "r");
	assert_non_null(fgets(body, sizeof body, f));
	fclose(f);
	assert_string_equal(body, "{\"id\":\"MAD-01\",\"secret\":\"" SECRET "\"}\n");

	assert_int_equal(cred_load(path_of("cred.json"), &back, err), 0);
	assert_string_equal(back.cp_id, "MAD-01");
	assert_string_equal(back.secret, SECRET);

	/* a fresh secret, saved over a file others could read: the new file
	 * is 0600 whatever the old one was, and the umask does not matter */
	assert_int_equal(crypto_new_secret(c.secret, err), 0);
	assert_int_equal(chmod(path_of("cred.json"), 0644), 0);
	mode_t old = umask(0);
	assert_int_equal(cred_save(path_of("cred.json"), &c, err), 0);
	umask(old);
	assert_int_equal(stat(path_of("cred.json"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(cred_load(path_of("cred.json"), &back, err), 0);
	assert_string_equal(back.secret, c.secret);

	/* written by hand, with other members and blanks: fine */
	write_str("hand.json", "\n  { \"secret\" : \"" SECRET "\",\n \"id\":\"x_Y-9\", \"note\": [1, {}] }\n\n", 0400);
	assert_int_equal(cred_load(path_of("hand.json"), &back, err), 0);
	assert_string_equal(back.cp_id, "x_Y-9");
	/* a relative path saves beside it, and syncs "." */
	char cwd[512];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(dir), 0);
	assert_int_equal(cred_save("rel.json", &c, err), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(cred_load(path_of("rel.json"), &back, err), 0);

	cred_wipe(&back);
	struct cred zero;
	memset(&zero, 0, sizeof zero);
	assert_memory_equal(&back, &zero, sizeof back);
}

static void test_modes(void **state)
{
	const char *ok = "{\"id\":\"MAD-01\",\"secret\":\"" SECRET "\"}";
	char err[EVC_ERR_LEN] = "", want[1024];
	static const struct {
		mode_t mode;
		const char *what;
	} bad[] = {
		{0640, "read"}, {0604, "read"}, {0644, "read"}, {0620, "write"}, {0602, "write"},
		{0660, "read and write"}, {0666, "read and write"}, {0610, "execute"}, {0601, "execute"},
		{0700 | 0004, "read"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_str("m.json", ok, bad[i].mode);
		snprintf(want, sizeof want, "%s: mode %04o lets others %s it; chmod 600 %s", path_of("m.json"),
			 (unsigned)bad[i].mode, bad[i].what, path_of("m.json"));
		assert_load_refused("m.json", want);
		assert_int_equal(cred_check_mode(path_of("m.json"), err), -1);
		assert_string_equal(err, want);
		keep(err);
	}
	/* the example of evcharging(7), word for word */
	write_str("m.json", ok, 0644);
	assert_int_equal(cred_check_mode(path_of("m.json"), err), -1);
	snprintf(want, sizeof want, "%s: mode 0644 lets others read it; chmod 600 %s", path_of("m.json"),
		 path_of("m.json"));
	assert_string_equal(err, want);

	/* the owner's own bits are the owner's business (modes the owner
	 * cannot read are left out: only root could open them) */
	static const mode_t fine[] = {0600, 0400, 0700};
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
		write_str("m.json", ok, fine[i]);
		if (cred_check_mode(path_of("m.json"), err) != 0)
			fail_msg("mode %04o refused: %s", (unsigned)fine[i], err);
	}

	/* a private key or token list may be longer than what we parse */
	static char big[10000];
	memset(big, 'k', sizeof big);
	write_file("big.key", big, sizeof big, 0600);
	assert_int_equal(cred_check_mode(path_of("big.key"), err), 0);

	assert_int_equal(cred_check_mode(path_of("missing"), err), -1);
	assert_non_null(strstr(err, "No such file or directory"));
	keep(err);
	assert_int_equal(cred_check_mode(dir, err), -1);
	assert_non_null(strstr(err, "not a regular file"));
	keep(err);
}

/* A symlink is followed: what counts is the file it names. */
static void test_symlink_fifo_dir(void **state)
{
	const char *ok = "{\"id\":\"MAD-01\",\"secret\":\"" SECRET "\"}";
	struct cred c;
	char err[EVC_ERR_LEN] = "", want[1024];
	(void)state;

	write_str("open.json", ok, 0644);
	unlink(path_of("link.json"));
	assert_int_equal(symlink(path_of("open.json"), path_of("link.json")), 0);
	snprintf(want, sizeof want, "%s: mode 0644 lets others read it", path_of("link.json"));
	assert_load_refused("link.json", want);
	assert_int_equal(cred_check_mode(path_of("link.json"), err), -1);
	keep(err);

	write_str("closed.json", ok, 0600);
	unlink(path_of("link2.json"));
	assert_int_equal(symlink(path_of("closed.json"), path_of("link2.json")), 0);
	assert_int_equal(cred_load(path_of("link2.json"), &c, err), 0);
	assert_string_equal(c.cp_id, "MAD-01");

	unlink(path_of("dangling.json"));
	assert_int_equal(symlink(path_of("nowhere.json"), path_of("dangling.json")), 0);
	assert_load_refused("dangling.json", "No such file or directory");

	/* a FIFO with no writer would block a plain open forever */
	unlink(path_of("fifo"));
	assert_int_equal(mkfifo(path_of("fifo"), 0600), 0);
	assert_load_refused("fifo", "not a regular file");
	assert_int_equal(cred_read_line(path_of("fifo"), want, sizeof want, err), -1);
	keep(err);

	assert_int_equal(cred_load(dir, &c, err), -1);
	assert_non_null(strstr(err, "not a regular file"));
	keep(err);
	assert_load_refused("missing.json", "No such file or directory");
	assert_load_refused("/dev/null", "not a regular file");
}

static void test_bad_content(void **state)
{
	static const struct {
		const char *body, *want;
	} bad[] = {
		{"", "bad JSON"},
		{"{\"id\":\"MAD-01\",\"secret\":\"" SECRET "\"", "bad JSON"},
		/* jansson's own message here would quote the secret */
		{"{\"id\":\"MAD-01\",\"secret\":" SECRET "}", "bad JSON at line 1 column"},
		{"{\"id\":\"MAD-01\",\"secret\":\"" SECRET "\" " SECRET "}", "bad JSON"},
		{"{\"id\":\"MAD-01\",\n\"secret\":'" SECRET "'}", "bad JSON at line 2"},
		{"{\"id\":\"MAD-01\",\"secret\":\"" SECRET "\"} trailing", "bad JSON"},
		{"{\"id\":\"MAD-01\",\"id\":\"MAD-02\",\"secret\":\"" SECRET "\"}", "bad JSON"},
		{"[\"MAD-01\",\"" SECRET "\"]", "not a JSON object"},
		{"\"" SECRET "\"", "bad JSON"}, /* jansson wants an object or array */
		{"{\"secret\":\"" SECRET "\"}", "missing field 'id'"},
		{"{\"id\":\"MAD-01\"}", "missing field 'secret'"},
		{"{\"id\":\"MAD-01\",\"Secret\":\"" SECRET "\"}", "missing field 'secret'"},
		{"{\"id\":7,\"secret\":\"" SECRET "\"}", "field 'id' is not a string"},
		{"{\"id\":\"MAD-01\",\"secret\":null}", "field 'secret' is not a string"},
		{"{\"id\":\"MAD-01\",\"secret\":[\"" SECRET "\"]}", "field 'secret' is not a string"},
		/* jansson refuses \u0000 (no JSON_ALLOW_NUL) */
		{"{\"id\":\"MAD\\u000001\",\"secret\":\"" SECRET "\"}", "bad JSON"},
		{"{\"id\":\"MAD-01\",\"secret\":\"" SECRET "\\u0000\"}", "bad JSON"},
		{"{\"id\":\"\",\"secret\":\"" SECRET "\"}", "field 'id' is not a valid CP id"},
		{"{\"id\":\"MAD 01\",\"secret\":\"" SECRET "\"}", "field 'id' is not a valid CP id"},
		{"{\"id\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\",\"secret\":\"" SECRET "\"}",
		 "field 'id' is not a valid CP id"},
		/* the secret pasted into the id must not come out in the message */
		{"{\"id\":\"" SECRET "\",\"secret\":\"" SECRET "\"}", "field 'id' is not a valid CP id"},
		{"{\"id\":\"MAD-01\",\"secret\":\"\"}", "field 'secret' is not a valid secret"},
		{"{\"id\":\"MAD-01\",\"secret\":\"" SECRET "A\"}", "field 'secret' is not a valid secret"},
		{"{\"id\":\"MAD-01\",\"secret\":\"" SECRET "=\"}", "field 'secret' is not a valid secret"},
		{"{\"id\":\"MAD-01\",\"secret\":\"HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9l\"}",
		 "field 'secret' is not a valid secret"},
		{"{\"id\":\"MAD-01\",\"secret\":\"HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2Qp+9k\"}",
		 "field 'secret' is not a valid secret"},
		{"{\"id\":\"MAD-01\",\"secret\":\" " SECRET "\"}", "field 'secret' is not a valid secret"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_str("bad.json", bad[i].body, 0600);
		assert_load_refused("bad.json", bad[i].want);
	}
	/* invalid UTF-8 right before the secret */
	write_str("bad.json", "{\"id\":\"MAD-01\",\"secret\":\"\xff" SECRET "\"}", 0600);
	assert_load_refused("bad.json", "bad JSON");
}

static void test_size(void **state)
{
	char body[CRED_FILE_MAX + 2];
	const char *json = "{\"id\":\"MAD-01\",\"secret\":\"" SECRET "\"}";
	struct cred c;
	char err[EVC_ERR_LEN];
	(void)state;

	/* exactly CRED_FILE_MAX bytes (blank-padded JSON) is fine */
	memset(body, ' ', sizeof body);
	memcpy(body, json, strlen(json));
	write_file("size.json", body, CRED_FILE_MAX, 0600);
	assert_int_equal(cred_load(path_of("size.json"), &c, err), 0);
	write_file("size.json", body, CRED_FILE_MAX + 1, 0600);
	assert_load_refused("size.json", "larger than 4096 bytes");
	assert_int_equal(cred_read_line(path_of("size.json"), body, sizeof body, err), -1);
	assert_non_null(strstr(err, "larger than 4096 bytes"));
	keep(err);
}

static void test_save_refused(void **state)
{
	struct cred bad_id = {"MAD 01", SECRET}, bad_secret = {"MAD-01", "short"}, ok = {"MAD-01", SECRET};
	char err[EVC_ERR_LEN] = "";
	size_t before = count_files();
	(void)state;

	assert_int_equal(cred_save(path_of("n1.json"), &bad_id, err), -1);
	assert_non_null(strstr(err, "not saved"));
	keep(err);
	assert_int_equal(cred_save(path_of("n2.json"), &bad_secret, err), -1);
	keep(err);
	assert_int_equal(count_files(), before);
	assert_int_equal(cred_save(path_of("no/such/dir/c.json"), &ok, err), -1);
	assert_non_null(strstr(err, "No such file or directory"));
	keep(err);
	/* the target is a directory: rename fails, the temp file goes */
	assert_int_equal(mkdir(path_of("adir"), 0700), 0);
	assert_int_equal(cred_save(path_of("adir"), &ok, err), -1);
	keep(err);
	print_message("# %s\n", err);
	assert_int_equal(rmdir(path_of("adir")), 0);
	assert_int_equal(count_files(), before);
}

static void test_read_line(void **state)
{
	char buf[16], err[EVC_ERR_LEN] = "";
	static const struct {
		const char *body, *want;
	} good[] = {
		{"token", "token"},
		{"token\n", "token"},
		{"  token \t\r\nsecond line\n", "token"},
		{"\ttok en\r\n", "tok en"},
		{"123456789012345\n", "123456789012345"}, /* cap - 1 */
	};
	static const struct {
		const char *body, *want;
	} bad[] = {
		{"", "the first line is empty"},
		{"\nsecond", "the first line is empty"},
		{" \t\r\n", "the first line is empty"},
		{"1234567890123456\n", "the first line is longer than 15 bytes"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		write_str("line", good[i].body, 0600);
		if (cred_read_line(path_of("line"), buf, sizeof buf, err) != 0)
			fail_msg("\"%s\": %s", good[i].body, err);
		assert_string_equal(buf, good[i].want);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_str("line", bad[i].body, 0600);
		memset(buf, 'x', sizeof buf);
		assert_int_equal(cred_read_line(path_of("line"), buf, sizeof buf, err), -1);
		keep(err);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("\"%s\": \"%s\" does not say \"%s\"", bad[i].body, err, bad[i].want);
		assert_int_equal(buf[0], '\0'); /* wiped */
	}
	write_file("line", "tok\0en\n", 7, 0600);
	assert_int_equal(cred_read_line(path_of("line"), buf, sizeof buf, err), -1);
	assert_non_null(strstr(err, "NUL"));
	keep(err);
	/* a NUL after the first line does not matter */
	write_file("line", "token\n\0", 7, 0600);
	assert_int_equal(cred_read_line(path_of("line"), buf, sizeof buf, err), 0);
	assert_string_equal(buf, "token");

	write_str("line", SECRET "\n", 0640);
	assert_int_equal(cred_read_line(path_of("line"), buf, sizeof buf, err), -1);
	assert_non_null(strstr(err, "mode 0640 lets others read it"));
	keep(err);
	/* too long for the buffer: the message says so, not what it holds */
	write_str("line", SECRET "\n", 0600);
	assert_int_equal(cred_read_line(path_of("line"), buf, sizeof buf, err), -1);
	keep(err);
	char big[64];
	assert_int_equal(cred_read_line(path_of("line"), big, sizeof big, err), 0);
	assert_string_equal(big, SECRET);
}

/* Runs last: no message any test collected holds the secret, or even a
 * recognisable piece of it. */
static void test_no_secret_in_messages(void **state)
{
	(void)state;

	assert_true(nerrors > 40);
	for (size_t i = 0; i < nerrors; i++) {
		for (size_t off = 0; off + 8 <= CRYPTO_SECRET_LEN; off++) {
			if (memmem(errors[i], strlen(errors[i]), SECRET + off, 8) != NULL)
				fail_msg("message %zu holds a piece of the secret: %s", i, errors[i]);
		}
	}
	print_message("# %zu error messages, none holds 8 characters of the secret in a row\n", nerrors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_symlink_fifo_dir),
		cmocka_unit_test(test_bad_content),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_save_refused),
		cmocka_unit_test(test_read_line),
		cmocka_unit_test(test_no_secret_in_messages),
	};

	return cmocka_run_group_tests_name("cred", tests, setup, teardown);
}
