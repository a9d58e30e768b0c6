/* src/central/history.c on a real SQLite file in a temp folder, and the
 * views of ui/views.c reading through it into an off-screen terminal:
 * pages in keyset order, the filters, the detail, the drivers, each
 * answer taken on a later turn (never waited for on the asking thread), a
 * newer ask abandoning the read in flight (whose answer is never given),
 * close while a read runs, and what the view draws meanwhile. Waits are
 * on the history's eventfd or its stats, with deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curses.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "evc/clock.h"
#include "evc/schema.h"
#include "evc/xalloc.h"
#include "src/central/history.h"
#include "ui/panel.h"
#include "ui/views.h"

#define NSESS 450   /* sessions: two pages and a bit */
#define NAUDIT 30000 /* audit rows: a word filter that matches none reads them all */
#define NDRIVERS 250
#define DEADLINE 30.0 /* s: valgrind is slow */

static char dir[256], db_path[300];
static double base; /* requested_at of session 0 */

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *e = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &e);
	if (rc != SQLITE_OK)
		fprintf(stderr, "%s: %s\n", sql, e ? e : "?");
	sqlite3_free(e);
	assert_int_equal(rc, SQLITE_OK);
}

/* Sessions s-000 .. s-449, one a minute up to a minute ago: CP-A for the
 * even ones, CP-B for the odd; driver d-(i % 10); every 7th SUPPLY_ERROR,
 * the last one open. Audit rows: actor "cp:CP-A" or "cp:CP-B", one row
 * with "100% sure_x" in its detail. Events: 60 for CP-A. */
static int fill(void **state)
{
	(void)state;
	sqlite3 *db;
	char err[EVC_ERR_LEN], sql[512];

	snprintf(dir, sizeof dir, "/tmp/test_history.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(db_path, sizeof db_path, "%s/evc.db", dir);
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(schema_set_wal(db, 1000, err), 0);
	assert_int_equal(schema_migrate(db, err), 0);
	exec_ok(db, "BEGIN");
	exec_ok(db, "INSERT INTO charging_points(id, location, price) VALUES('CP-A', 'a', 0.3), ('CP-B', 'b', 0.4)");
	for (int i = 0; i < NDRIVERS; i++) {
		snprintf(sql, sizeof sql, "INSERT INTO drivers(id, name, created_at) VALUES('d-%03d', 'name %d', 0)", i, i);
		exec_ok(db, sql);
	}
	base = floor(clock_wall()) - 60.0 * NSESS;
	for (int i = 0; i < NSESS; i++) {
		int open = i == NSESS - 1;
		snprintf(sql, sizeof sql,
			 "INSERT INTO sessions(id, cp_id, driver_id, request_id, kwh, importe, price, outcome, reason,"
			 " requested_at, started_at, ended_at) VALUES('s-%03d', '%s', 'd-%03d', 'r-%03d', 1.5, 0.45, 0.3,"
			 " %s, NULL, %.0f, %.0f, %s)",
			 i, i % 2 ? "CP-B" : "CP-A", i % 10, i, open ? "NULL" : i % 7 == 0 ? "'SUPPLY_ERROR'" : "'TICKET'",
			 base + 60.0 * i, base + 60.0 * i + 5, open ? "NULL" : "strftime('%s','now')");
		exec_ok(db, sql);
	}
	for (int i = 0; i < 60; i++) {
		snprintf(sql, sizeof sql, "INSERT INTO cp_events(cp_id, ts, event, detail) VALUES('CP-A', %.0f, 'STATE', 'e%d')",
			 base + i, i);
		exec_ok(db, sql);
	}
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db,
					    "INSERT INTO audit_log(ts, actor, source_ip, action, cp_id, detail)"
					    " VALUES(?1, ?2, '127.0.0.1', 'CP_AUTH_OK', ?3, ?4)",
					    -1, &st, NULL),
			 SQLITE_OK);
	for (int i = 0; i < NAUDIT; i++) {
		const char *cp = i % 2 ? "CP-B" : "CP-A";
		char actor[16];
		snprintf(actor, sizeof actor, "cp:%s", cp);
		sqlite3_bind_double(st, 1, base + i);
		sqlite3_bind_text(st, 2, actor, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, cp, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, i == 100 ? "100% sure_x" : "authenticated over tls", -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	exec_ok(db, "COMMIT");
	sqlite3_close(db);
	return 0;
}

static int unfill(void **state)
{
	(void)state;
	char p[400];
	static const char *const suffix[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", db_path, suffix[i]);
		unlink(p);
	}
	rmdir(dir);
	return 0;
}

/* The answer of the last ask, waited for on the eventfd (deadline). */
static struct views_session sess[VIEWS_PAGE];
static struct views_event ev[VIEWS_CP_EVENTS];
static struct views_audit aud[VIEWS_PAGE];
static struct views_driver drv[VIEWS_PAGE];

static void wait_answer(struct history *h, struct views_answer *a)
{
	const struct views_source *src = history_source(h);
	double end = clock_mono() + DEADLINE;
	memset(a, 0, sizeof *a);
	a->sess = sess;
	a->ev = ev;
	a->aud = aud;
	a->drv = drv;
	while (!src->answer(src->arg, a)) {
		struct pollfd p = { .fd = history_fd(h), .events = POLLIN };
		assert_true(clock_mono() < end);
		poll(&p, 1, 1000);
	}
}

static long ask_wait(struct history *h, const struct views_req *r, struct views_answer *a)
{
	const struct views_source *src = history_source(h);
	src->ask(src->arg, r);
	wait_answer(h, a);
	return a->n;
}

static struct views_req req(enum views_kind k, enum views_dir d)
{
	struct views_req r;
	memset(&r, 0, sizeof r);
	r.kind = k;
	r.q.dir = d;
	r.q.max = VIEWS_PAGE;
	r.since = base;
	return r;
}

static int hist_up(void **state)
{
	char err[EVC_ERR_LEN];
	*state = history_open(db_path, err);
	if (*state == NULL)
		fprintf(stderr, "%s\n", err);
	return *state ? 0 : -1;
}

static int hist_down(void **state)
{
	history_close(*state);
	return 0;
}

static void test_open_refused(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN], p[400];
	snprintf(p, sizeof p, "%s/none.db", dir);
	assert_null(history_open(p, err));
	assert_non_null(strstr(err, "cannot open read-only"));
	assert_int_equal(access(p, F_OK), -1); /* read-only: nothing made */
}

static void test_sessions_pages(void **state)
{
	struct history *h = *state;
	struct views_answer a;

	/* answered once, then not again */
	struct views_req r = req(VIEWS_SESSIONS, VIEWS_FIRST);
	assert_int_equal(ask_wait(h, &r, &a), VIEWS_PAGE);
	assert_int_equal(history_source(h)->answer(h, &a), 0);
	assert_string_equal(sess[0].id, "s-449");
	assert_string_equal(sess[0].outcome, "");
	assert_string_equal(sess[199].id, "s-250");
	assert_int_equal(a.totals.sessions, NSESS);
	assert_true(fabs(a.totals.kwh - 1.5 * NSESS) < 1e-6);
	/* the next older pages continue where the last row was */
	r = req(VIEWS_SESSIONS, VIEWS_OLDER);
	r.q.key_t = sess[199].requested_at;
	xstrlcpy(r.q.key_id, sess[199].id, sizeof r.q.key_id);
	assert_int_equal(ask_wait(h, &r, &a), VIEWS_PAGE);
	assert_string_equal(sess[0].id, "s-249");
	assert_string_equal(sess[199].id, "s-050");
	r.q.key_t = sess[199].requested_at;
	xstrlcpy(r.q.key_id, sess[199].id, sizeof r.q.key_id);
	assert_int_equal(ask_wait(h, &r, &a), 50);
	assert_string_equal(sess[0].id, "s-049");
	assert_string_equal(sess[49].id, "s-000");
	/* and the newer page just before s-049, newest first too */
	r = req(VIEWS_SESSIONS, VIEWS_NEWER);
	r.q.key_t = sess[0].requested_at;
	xstrlcpy(r.q.key_id, sess[0].id, sizeof r.q.key_id);
	assert_int_equal(ask_wait(h, &r, &a), VIEWS_PAGE);
	assert_string_equal(sess[0].id, "s-249");
	assert_string_equal(sess[199].id, "s-050");
	/* filters: a CP's, a driver's, an outcome's, the open ones */
	r = req(VIEWS_SESSIONS, VIEWS_FIRST);
	xstrlcpy(r.sf.cp, "CP-B", sizeof r.sf.cp);
	xstrlcpy(r.sf.driver, "d-003", sizeof r.sf.driver);
	assert_int_equal(ask_wait(h, &r, &a), 45); /* odd i with i % 10 == 3 */
	for (long i = 0; i < a.n; i++)
		assert_true(strcmp(sess[i].cp_id, "CP-B") == 0 && strcmp(sess[i].driver_id, "d-003") == 0);
	assert_int_equal(a.totals.sessions, 45);
	r = req(VIEWS_SESSIONS, VIEWS_FIRST);
	xstrlcpy(r.sf.outcome, "SUPPLY_ERROR", sizeof r.sf.outcome);
	assert_int_equal(ask_wait(h, &r, &a), 65); /* i % 7 == 0 below 449 */
	assert_string_equal(sess[0].id, "s-448");
	r = req(VIEWS_SESSIONS, VIEWS_FIRST);
	xstrlcpy(r.sf.outcome, "OPEN", sizeof r.sf.outcome);
	assert_int_equal(ask_wait(h, &r, &a), 1);
	assert_string_equal(sess[0].id, "s-449");
	/* today's totals count from since */
	r = req(VIEWS_SESSIONS, VIEWS_FIRST);
	r.since = base + 60.0 * 400;
	assert_int_equal(ask_wait(h, &r, &a), VIEWS_PAGE);
	assert_int_equal(a.totals.sessions, 50);
}

static void test_detail_drivers(void **state)
{
	struct history *h = *state;
	struct views_answer a;

	struct views_req r = req(VIEWS_DETAIL, VIEWS_FIRST);
	xstrlcpy(r.cp, "CP-A", sizeof r.cp);
	assert_int_equal(ask_wait(h, &r, &a), VIEWS_CP_SESSIONS);
	assert_int_equal(a.nev, VIEWS_CP_EVENTS);
	assert_string_equal(sess[0].id, "s-448");
	assert_string_equal(sess[19].id, "s-410");
	assert_string_equal(ev[0].detail, "e59");
	assert_string_equal(ev[49].detail, "e10");
	xstrlcpy(r.cp, "NONE-1", sizeof r.cp);
	assert_int_equal(ask_wait(h, &r, &a), 0);
	assert_int_equal(a.nev, 0);

	r = req(VIEWS_DRIVERS, VIEWS_FIRST);
	assert_int_equal(ask_wait(h, &r, &a), VIEWS_PAGE);
	assert_string_equal(drv[0].id, "d-000");
	assert_int_equal(drv[3].today_sessions, 45);
	assert_true(fabs(drv[3].today_kwh - 45 * 1.5) < 1e-6);
	assert_int_equal(drv[10].today_sessions, 0);
	r = req(VIEWS_DRIVERS, VIEWS_OLDER);
	xstrlcpy(r.q.key_id, drv[199].id, sizeof r.q.key_id);
	assert_int_equal(ask_wait(h, &r, &a), 50);
	assert_string_equal(drv[0].id, "d-200");
	assert_string_equal(drv[49].id, "d-249");
}

static void test_audit_words(void **state)
{
	struct history *h = *state;
	struct views_answer a;

	struct views_req r = req(VIEWS_AUDIT, VIEWS_FIRST);
	assert_int_equal(ask_wait(h, &r, &a), VIEWS_PAGE);
	assert_int_equal(aud[0].id, NAUDIT);
	r = req(VIEWS_AUDIT, VIEWS_OLDER);
	r.q.key_n = aud[199].id;
	assert_int_equal(ask_wait(h, &r, &a), VIEWS_PAGE);
	assert_int_equal(aud[0].id, NAUDIT - 200);
	/* every word must be in the row, any case; % and _ are literal */
	r = req(VIEWS_AUDIT, VIEWS_FIRST);
	xstrlcpy(r.text, "CP-b TLS", sizeof r.text);
	assert_int_equal(ask_wait(h, &r, &a), VIEWS_PAGE);
	assert_string_equal(aud[0].cp_id, "CP-B");
	xstrlcpy(r.text, "100% SURE_X", sizeof r.text);
	assert_int_equal(ask_wait(h, &r, &a), 1);
	assert_int_equal(aud[0].id, 101);
	xstrlcpy(r.text, "10_% sure", sizeof r.text);
	assert_int_equal(ask_wait(h, &r, &a), 0);
	/* a filter matching nothing reads every row, and says so by none */
	xstrlcpy(r.text, "nomatch", sizeof r.text);
	assert_int_equal(ask_wait(h, &r, &a), 0);
	assert_string_equal(a.err, "");
	/* bad input: an error, the reader goes on */
	xstrlcpy(r.text, "a b c d e", sizeof r.text);
	assert_int_equal(ask_wait(h, &r, &a), -1);
	assert_non_null(strstr(a.err, "at most 4 words"));
	r = req((enum views_kind)42, VIEWS_FIRST);
	assert_int_equal(ask_wait(h, &r, &a), -1);
	r = req(VIEWS_AUDIT, VIEWS_FIRST);
	assert_int_equal(ask_wait(h, &r, &a), VIEWS_PAGE);
}

/* Until the reader's count field of *st reaches want (deadline). */
#define WAIT_STATS(h, st, field, want)                                            \
	do {                                                                      \
		unsigned long want_ = (want);                                     \
		double end_ = clock_mono() + DEADLINE;                            \
		for (history_stats((h), (st)); (st)->field < want_; history_stats((h), (st))) { \
			struct timespec ts_ = { 0, 200000 };                      \
			assert_true(clock_mono() < end_);                         \
			nanosleep(&ts_, NULL);                                    \
		}                                                                 \
	} while (0)

/* A newer ask abandons the read in flight: its answer is never given, and
 * its statement stops mid-way (the progress handler). */
static void test_supersede(void **state)
{
	struct history *h = *state;
	const struct views_source *src = history_source(h);
	struct views_answer a;
	struct history_stats st;

	struct views_req slow = req(VIEWS_AUDIT, VIEWS_FIRST), fast = req(VIEWS_SESSIONS, VIEWS_FIRST);
	xstrlcpy(slow.text, "nomatch", sizeof slow.text);
	/* asked one after the other: only the last is answered */
	src->ask(src->arg, &slow);
	src->ask(src->arg, &fast);
	wait_answer(h, &a);
	assert_int_equal(a.n, VIEWS_PAGE);
	assert_string_equal(sess[0].id, "s-449");
	assert_int_equal(src->answer(src->arg, &a), 0);

	/* asked while the slow read runs: it stops; tried until the reader
	 * was inside it when the newer ask came (it reads 30,000 rows) */
	unsigned long interrupted = 0;
	for (int attempt = 0; attempt < 20 && interrupted == 0; attempt++) {
		history_stats(h, &st);
		unsigned long started = st.started, abandoned = st.abandoned;
		src->ask(src->arg, &slow);
		WAIT_STATS(h, &st, started, started + 1);
		src->ask(src->arg, &fast);
		wait_answer(h, &a);
		assert_int_equal(a.n, VIEWS_PAGE);
		assert_string_equal(sess[0].id, "s-449");
		WAIT_STATS(h, &st, abandoned, abandoned + 1);
		interrupted = st.interrupted;
	}
	assert_true(interrupted >= 1);
	/* a NONE ask abandons without a new read */
	struct views_req none;
	memset(&none, 0, sizeof none);
	history_stats(h, &st);
	unsigned long started = st.started, abandoned = st.abandoned;
	src->ask(src->arg, &slow);
	WAIT_STATS(h, &st, started, started + 1);
	src->ask(src->arg, &none);
	WAIT_STATS(h, &st, abandoned, abandoned + 1);
	assert_int_equal(src->answer(src->arg, &a), 0);
	assert_int_equal(st.started, started + 1);
	/* closed while a read runs: it stops and the reader is joined */
	src->ask(src->arg, &slow);
	WAIT_STATS(h, &st, started, started + 2);
	history_close(h);
	*state = NULL;
}

/* Another thread takes the reader's lock over and over (history_stats):
 * an ask that finds it taken is handed over by a later answer call, and
 * every answer is still the last ask's. */
static atomic_int hammering;

static void *hammer(void *arg)
{
	struct history_stats st;
	while (atomic_load(&hammering))
		history_stats(arg, &st);
	return NULL;
}

static void test_lock_taken(void **state)
{
	struct history *h = *state;
	const struct views_source *src = history_source(h);
	struct views_answer a;
	struct history_stats st;
	pthread_t t;
	double end = clock_mono() + DEADLINE;
	/* four audit pages, told apart by their first row */
	static const struct {
		const char *text;
		int64_t key;
		int64_t first;
	} pages[] = { { "", 0, NAUDIT }, { "", 20000, 19999 }, { "CP-A", 0, NAUDIT - 1 }, { "CP-A", 1000, 999 } };

	atomic_store(&hammering, 1);
	assert_int_equal(pthread_create(&t, NULL, hammer, h), 0);
	for (int i = 0; i < 400; i++) {
		/* two asks, one after the other: only the second is answered */
		for (int k = 0; k < 2; k++) {
			int p = k ? (i / 4) % 4 : i % 4;
			struct views_req r = req(VIEWS_AUDIT, pages[p].key ? VIEWS_OLDER : VIEWS_FIRST);
			xstrlcpy(r.text, pages[p].text, sizeof r.text);
			r.q.key_n = pages[p].key;
			src->ask(src->arg, &r);
		}
		wait_answer(h, &a);
		assert_int_equal(a.n, VIEWS_PAGE);
		assert_int_equal(aud[0].id, pages[(i / 4) % 4].first);
		history_stats(h, &st);
		if (st.late > 0 && i >= 16)
			break;
		if (clock_mono() > end)
			break;
	}
	atomic_store(&hammering, 0);
	pthread_join(t, NULL);
	/* natively some tens of rounds find the lock taken; under valgrind,
	 * which runs one thread at a time, it may never be */
	fprintf(stderr, "# %lu asks handed over by a later call\n", st.late);
}

/* ---- the views through the history, drawn off screen ---- */

static SCREEN *scr;
static FILE *devnull_out, *devnull_in;

/* The group's: the database, and a terminal for the views to draw in. */
static int group_up(void **state)
{
	if (fill(state) != 0)
		return -1;
	devnull_out = fopen("/dev/null", "w");
	devnull_in = fopen("/dev/null", "r");
	scr = newterm("xterm-256color", devnull_out, devnull_in);
	if (!scr)
		scr = newterm("xterm", devnull_out, devnull_in);
	if (!scr)
		return -1;
	set_term(scr);
	resizeterm(30, 120);
	return 0;
}

static int group_down(void **state)
{
	endwin();
	delscreen(scr);
	fclose(devnull_out);
	fclose(devnull_in);
	return unfill(state);
}

static const char *line(int y)
{
	static char buf[200];
	mvinnstr(y, 0, buf, 120);
	return buf;
}

static void draw(struct views *vs, const struct panel_view *v)
{
	views_draw(vs, v, 0, 30, 120, clock_wall());
}

/* The program's turns until the view has its answer (the eventfd as the
 * loop's wake-up). */
static void turns_until_answered(struct views *vs, const struct panel_view *v, struct history *h)
{
	double end = clock_mono() + DEADLINE;
	while (views_busy(vs)) {
		struct pollfd p = { .fd = history_fd(h), .events = POLLIN };
		assert_true(clock_mono() < end);
		poll(&p, 1, VIEWS_POLL_MS);
		views_tick(vs, v, clock_wall());
	}
	draw(vs, v);
}

static void test_views_flow(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN], msg[EVC_ERR_LEN], csv[400];
	struct history *h = history_open(db_path, err);
	static const struct cp_view cps[] = { { .id = "CP-A" }, { .id = "CP-B" } };
	struct panel_view v = { .cps = cps, .ncps = 2 };
	struct views *vs = views_new();
	int ok;
	assert_non_null(h);
	v.src = history_source(h);

	/* no export before the view was read: its reads come later */
	snprintf(csv, sizeof csv, "%s/s.csv", dir);
	assert_int_equal(views_command(vs, &v, "export sessions s.csv", &ok, msg), 1);
	assert_int_equal(ok, 0);
	assert_non_null(strstr(msg, "not read yet"));

	/* opened: "reading..." at once, the rows on a later turn */
	views_open(vs, VIEWS_SESSIONS, &v, NULL);
	assert_true(views_busy(vs));
	draw(vs, &v);
	assert_non_null(strstr(line(0), "reading..."));
	assert_non_null(strstr(line(3), "reading..."));
	turns_until_answered(vs, &v, h);
	assert_non_null(strstr(line(0), "Sessions: all sessions"));
	assert_non_null(strstr(line(0), "row 1 of 200"));
	assert_non_null(strstr(line(0), "read in"));
	assert_null(strstr(line(0), "reading"));
	assert_non_null(strstr(line(1), "these 200 lines 300.000 kWh"));
	assert_non_null(strstr(line(3), "CP-B"));     /* s-449 first */
	assert_non_null(strstr(line(3), "charging")); /* it is open */

	/* a new filter: the old rows stay, titled with theirs, until the
	 * new ones are in */
	assert_int_equal(views_set_filter(vs, &v, "cp-a error", msg), 0);
	draw(vs, &v);
	assert_non_null(strstr(line(0), "Sessions: all sessions"));
	assert_non_null(strstr(line(0), "reading..."));
	turns_until_answered(vs, &v, h);
	assert_non_null(strstr(line(0), "Sessions: cp CP-A, outcome SUPPLY_ERROR"));
	assert_non_null(strstr(line(0), "row 1 of 33"));
	assert_string_equal(views_filter(vs), "cp-a error");
	snprintf(msg, sizeof msg, "export sessions %s", csv);
	char line_cmd[EVC_ERR_LEN];
	xstrlcpy(line_cmd, msg, sizeof line_cmd);
	assert_int_equal(views_command(vs, &v, line_cmd, &ok, msg), 1);
	assert_int_equal(ok, 1);
	assert_non_null(strstr(msg, "exported 33 session row(s)"));
	unlink(csv);

	/* PgDn to the end of the first page: the next one is asked, the
	 * selection stays until it is in */
	assert_int_equal(views_set_filter(vs, &v, "", msg), 0);
	turns_until_answered(vs, &v, h);
	for (int i = 0; i < 200 && !views_busy(vs); i++)
		views_key(vs, KEY_DOWN, &v, 0);
	assert_true(views_busy(vs));
	draw(vs, &v);
	assert_non_null(strstr(line(0), "row 200 of 200"));
	assert_non_null(strstr(line(0), "reading..."));
	turns_until_answered(vs, &v, h);
	assert_non_null(strstr(line(0), "row 1 of 200  (an older page"));
	/* Home while on an older page: the newest again */
	views_key(vs, KEY_HOME, &v, 0);
	turns_until_answered(vs, &v, h);
	assert_non_null(strstr(line(0), "row 1 of 200  (more past the last)"));

	/* the audit view's scan of every row, then Esc: abandoned at once */
	struct history_stats st0, st1;
	views_open(vs, VIEWS_AUDIT, &v, NULL);
	turns_until_answered(vs, &v, h);
	history_stats(h, &st0);
	assert_int_equal(views_set_filter(vs, &v, "nomatch", msg), 0);
	WAIT_STATS(h, &st1, started, st0.started + 1); /* the reader is on it */
	assert_int_equal(views_key(vs, 27, &v, 0), KEYS_OK);
	assert_int_equal(views_kind(vs), VIEWS_NONE);
	assert_false(views_busy(vs));
	WAIT_STATS(h, &st1, abandoned, st0.abandoned + 1);
	/* opened again: the filter kept, read whole (none matches) */
	views_open(vs, VIEWS_AUDIT, &v, NULL);
	turns_until_answered(vs, &v, h);
	assert_non_null(strstr(line(0), "Audit log: rows with \"nomatch\""));
	assert_non_null(strstr(line(0), "no audit row"));
	assert_non_null(strstr(line(2), "no audit row matches the filter"));

	/* the detail: another CP's rows are never shown under this one */
	views_open(vs, VIEWS_DETAIL, &v, "CP-A");
	turns_until_answered(vs, &v, h);
	views_open(vs, VIEWS_DETAIL, &v, "CP-B");
	draw(vs, &v);
	assert_non_null(strstr(line(0), "CP CP-B"));
	assert_non_null(strstr(line(0), "reading..."));
	turns_until_answered(vs, &v, h);
	assert_non_null(strstr(line(0), "read in"));

	/* the drivers */
	views_open(vs, VIEWS_DRIVERS, &v, NULL);
	turns_until_answered(vs, &v, h);
	assert_non_null(strstr(line(0), "row 1 of 200"));
	assert_non_null(strstr(line(2), "d-000"));

	/* a reload of the rows shown is quiet: no "reading..." */
	views_tick(vs, &v, clock_wall() + 3);
	assert_true(views_busy(vs));
	draw(vs, &v);
	assert_null(strstr(line(0), "reading"));
	turns_until_answered(vs, &v, h);

	views_free(vs); /* abandons a read in flight too */
	history_close(h);
}

/* No source: every view says so, and nothing is in flight. */
static void test_views_no_source(void **state)
{
	(void)state;
	struct panel_view v = { 0 };
	struct views *vs = views_new();
	views_open(vs, VIEWS_AUDIT, &v, NULL);
	assert_false(views_busy(vs));
	draw(vs, &v);
	assert_non_null(strstr(line(1), "no stored history here"));
	views_free(vs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_refused),
		cmocka_unit_test_setup_teardown(test_sessions_pages, hist_up, hist_down),
		cmocka_unit_test_setup_teardown(test_detail_drivers, hist_up, hist_down),
		cmocka_unit_test_setup_teardown(test_audit_words, hist_up, hist_down),
		cmocka_unit_test_setup_teardown(test_supersede, hist_up, hist_down),
		cmocka_unit_test_setup_teardown(test_lock_taken, hist_up, hist_down),
		cmocka_unit_test(test_views_flow),
		cmocka_unit_test(test_views_no_source),
	};
	return cmocka_run_group_tests(tests, group_up, group_down);
}
