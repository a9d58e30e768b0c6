/* The panel's views on a big history: fills a database with N sessions
 * (default 100,000) over the last 30 days, N cp_events and N audit rows,
 * then runs what the main loop runs when the operator opens each view,
 * types a filter, pages or resizes: the key (views_open, views_set_filter,
 * views_key), then every turn views_tick and views_draw + doupdate into an
 * off-screen terminal, the loop waiting in poll on the history's eventfd
 * (as the panel's VIEWS_POLL_MS timeout) until the answer is drawn. Each
 * case runs R times. The longest of those turns is the main loop's stall
 * for the case; "shown" is how long the operator waits for the rows (the
 * reader thread's read, off the main loop).
 *
 *   bench_views DB_PATH [N] [R]     (DB_PATH is created; an existing file is refused)
 */
#include <curses.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <time.h>

#include <sqlite3.h>

#include "evc/clock.h"
#include "evc/schema.h"
#include "src/central/history.h"
#include "ui/panel.h"
#include "ui/views.h"

#define NCPS 50
#define NDRIVERS 2000

static void die(const char *what, sqlite3 *db)
{
	fprintf(stderr, "bench_views: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
	exit(1);
}

static void fill(const char *path, long n)
{
	sqlite3 *db;
	char err[EVC_ERR_LEN];
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		die("open", db);
	if (schema_set_wal(db, 1000, err) == -1 || schema_migrate(db, err) == -1) {
		fprintf(stderr, "bench_views: %s\n", err);
		exit(1);
	}
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	sqlite3_stmt *cp, *dr, *se, *ev, *au;
	if (sqlite3_prepare_v2(db, "INSERT INTO charging_points(id, location, price) VALUES(?1, ?2, 0.35)", -1, &cp, NULL) ||
	    sqlite3_prepare_v2(db, "INSERT INTO drivers(id, name, created_at) VALUES(?1, ?2, 0)", -1, &dr, NULL) ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO sessions(id, cp_id, driver_id, request_id, kwh, importe, price, outcome, reason,"
			       " requested_at, started_at, ended_at) VALUES(?1, ?2, ?3, ?1, ?4, ?4 * 0.35, 0.35, ?5, ?6, ?7,"
			       " ?7 + 5, ?7 + 1800)",
			       -1, &se, NULL) ||
	    sqlite3_prepare_v2(db, "INSERT INTO cp_events(cp_id, ts, event, detail) VALUES(?1, ?2, 'STATE', 'ACTIVADO -> SUMINISTRANDO')",
			       -1, &ev, NULL) ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO audit_log(ts, actor, source_ip, action, cp_id, detail)"
			       " VALUES(?1, 'cp:' || ?2, '127.0.0.1', 'CP_AUTH_OK', ?2, 'authenticated over tls')",
			       -1, &au, NULL))
		die("prepare", db);
	char id[64], loc[64];
	for (int i = 0; i < NCPS; i++) {
		snprintf(id, sizeof id, "CP-%02d", i);
		snprintf(loc, sizeof loc, "Street %d", i);
		sqlite3_bind_text(cp, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(cp, 2, loc, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(cp) != SQLITE_DONE)
			die("cp", db);
		sqlite3_reset(cp);
	}
	for (int i = 0; i < NDRIVERS; i++) {
		snprintf(id, sizeof id, "D-%04d", i);
		sqlite3_bind_text(dr, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(dr, 2, "A. Driver", -1, SQLITE_STATIC);
		if (sqlite3_step(dr) != SQLITE_DONE)
			die("driver", db);
		sqlite3_reset(dr);
	}
	double now = clock_wall(), span = 30 * 86400.0;
	srand(7);
	for (long i = 0; i < n; i++) {
		double t = now - span + span * (double)i / (double)n;
		char cpid[16], drid[16];
		int r = rand() % 100;
		snprintf(id, sizeof id, "s-%08ld", i);
		snprintf(cpid, sizeof cpid, "CP-%02d", rand() % NCPS);
		snprintf(drid, sizeof drid, "D-%04d", rand() % NDRIVERS);
		sqlite3_bind_text(se, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(se, 2, cpid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(se, 3, drid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(se, 4, (rand() % 40000) / 1000.0);
		sqlite3_bind_text(se, 5, r < 90 ? "TICKET" : r < 97 ? "SESSION_CANCELLED" : "SUPPLY_ERROR", -1, SQLITE_STATIC);
		if (r >= 90)
			sqlite3_bind_text(se, 6, "engine fault", -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(se, 6);
		sqlite3_bind_double(se, 7, t);
		if (sqlite3_step(se) != SQLITE_DONE)
			die("session", db);
		sqlite3_reset(se);
		sqlite3_bind_text(ev, 1, cpid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(ev, 2, t);
		if (sqlite3_step(ev) != SQLITE_DONE)
			die("event", db);
		sqlite3_reset(ev);
		sqlite3_bind_double(au, 1, t);
		sqlite3_bind_text(au, 2, cpid, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(au) != SQLITE_DONE)
			die("audit", db);
		sqlite3_reset(au);
	}
	sqlite3_finalize(cp);
	sqlite3_finalize(dr);
	sqlite3_finalize(se);
	sqlite3_finalize(ev);
	sqlite3_finalize(au);
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		die("commit", db);
	sqlite3_close(db);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#define MAXS 4000
static double turns[MAXS], cpu[MAXS], shown[MAXS];
static size_t nturns, nshown;
static int recording; /* the turns and waits counted: the case's, not its set up */
static double worst, worst_cpu;
static struct history *hist;
static struct views *vs;
static struct panel_view pv;

/* CPU time of the calling thread, s. */
static double thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One turn of the main loop: what it does on the screen after an event.
 * Its wall time (the stall) and its CPU time (the stall less what other
 * processes took of the CPU meanwhile). */
static void turn(void (*act)(void *), void *arg)
{
	double a = clock_mono(), c = thread_cpu();
	if (act)
		act(arg);
	views_tick(vs, &pv, clock_wall());
	views_draw(vs, &pv, 2, LINES - 4, COLS, clock_wall());
	wnoutrefresh(stdscr);
	doupdate();
	if (recording && nturns < MAXS) {
		cpu[nturns] = (thread_cpu() - c) * 1000.0;
		turns[nturns++] = (clock_mono() - a) * 1000.0;
	}
}

/* The loop's turns until the answer is drawn: it sleeps in poll (on the
 * history's eventfd, at most VIEWS_POLL_MS, as the panel asks). */
static void until_shown(double t0)
{
	double deadline = clock_mono() + 60;
	while (views_busy(vs)) {
		struct pollfd p = { .fd = history_fd(hist), .events = POLLIN };
		if (clock_mono() > deadline) {
			fprintf(stderr, "bench_views: no answer in 60 s\n");
			exit(1);
		}
		poll(&p, 1, VIEWS_POLL_MS);
		turn(NULL, NULL);
	}
	if (recording && nshown < MAXS)
		shown[nshown++] = (clock_mono() - t0) * 1000.0;
}

/* What the view's title says (rows, "read in"): the answer is whole. */
static void title(char *buf, int len)
{
	mvinnstr(2, 0, buf, len - 1);
	for (int i = (int)strlen(buf) - 1; i >= 0 && buf[i] == ' '; i--)
		buf[i] = '\0';
}

static void report(const char *name)
{
	char t[200];
	qsort(turns, nturns, sizeof turns[0], cmp_d);
	qsort(cpu, nturns, sizeof cpu[0], cmp_d);
	qsort(shown, nshown, sizeof shown[0], cmp_d);
	title(t, sizeof t);
	printf("%-40s stall max %6.2f p50 %5.2f (cpu max %5.2f) ms (%4zu turns)  shown max %7.2f p50 %7.2f ms\n",
	       name, turns[nturns - 1], turns[nturns / 2], cpu[nturns - 1], nturns, shown[nshown - 1],
	       shown[nshown / 2]);
	printf("    %s\n", t);
	printf("RESULT_VIEWS case=%s stall_max_ms=%.3f stall_p50_ms=%.3f cpu_max_ms=%.3f shown_max_ms=%.3f"
	       " shown_p50_ms=%.3f\n",
	       name, turns[nturns - 1], turns[nturns / 2], cpu[nturns - 1], shown[nshown - 1], shown[nshown / 2]);
	if (turns[nturns - 1] > worst)
		worst = turns[nturns - 1];
	if (cpu[nturns - 1] > worst_cpu)
		worst_cpu = cpu[nturns - 1];
	nturns = nshown = 0;
}

struct opening {
	enum views_kind k;
	const char *filter;
};

static void act_open(void *arg)
{
	const struct opening *o = arg;
	views_open(vs, o->k, &pv, "CP-07");
}

static void act_filter(void *arg)
{
	const struct opening *o = arg;
	char msg[EVC_ERR_LEN];
	if (views_set_filter(vs, &pv, o->filter, msg) == -1) {
		fprintf(stderr, "bench_views: filter %s: %s\n", o->filter, msg);
		exit(1);
	}
}

static void act_key(void *arg)
{
	views_key(vs, *(const int *)arg, &pv, 0);
}

static void act_resize(void *arg)
{
	const int *hw = arg;
	resizeterm(hw[0], hw[1]);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_views DB_PATH [N] [R]\n");
		return 2;
	}
	const char *path = argv[1];
	long n = argc > 2 ? atol(argv[2]) : 100000;
	size_t r = argc > 3 ? (size_t)atol(argv[3]) : 30;
	if (r < 1 || r > 200 || n < 1) {
		fprintf(stderr, "bench_views: N >= 1, 1 <= R <= 200\n");
		return 2;
	}
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "bench_views: %s exists: give a new file\n", path);
		return 2;
	}
	double t0 = clock_mono();
	fill(path, n);
	printf("filled %s: %ld sessions, %ld cp_events, %ld audit rows, %d CPs, %d drivers in %.1f s\n", path, n, n, n,
	       NCPS, NDRIVERS, clock_mono() - t0);

	char err[EVC_ERR_LEN];
	hist = history_open(path, err);
	if (!hist) {
		fprintf(stderr, "bench_views: %s\n", err);
		return 1;
	}
	static struct cp_view cps[NCPS];
	for (int i = 0; i < NCPS; i++) {
		snprintf(cps[i].id, sizeof cps[i].id, "CP-%02d", i);
		snprintf(cps[i].location, sizeof cps[i].location, "Street %d", i);
		cps[i].state = CP_ACTIVADO;
		cps[i].link = CP_LINK_TLS;
	}
	pv = (struct panel_view){ .cps = cps, .ncps = NCPS, .src = history_source(hist) };

	FILE *out = fopen("/dev/null", "w"), *in = fopen("/dev/null", "r");
	SCREEN *scr = newterm("xterm-256color", out, in);
	if (!scr) {
		fprintf(stderr, "bench_views: no terminal type xterm-256color\n");
		return 1;
	}
	set_term(scr);
	resizeterm(40, 120);
	vs = views_new();
	static const struct {
		const char *name;
		struct opening o;
	} cases[] = {
		{ "open CP detail (Enter)", { VIEWS_DETAIL, NULL } },
		{ "open sessions (S)", { VIEWS_SESSIONS, NULL } },
		{ "sessions / cp:CP-07", { VIEWS_SESSIONS, "cp:CP-07" } },
		{ "sessions / driver:D-0042", { VIEWS_SESSIONS, "driver:D-0042" } },
		{ "sessions / error (3% of rows)", { VIEWS_SESSIONS, "error" } },
		{ "sessions / CP-07 D-0042 ticket", { VIEWS_SESSIONS, "CP-07 D-0042 ticket" } },
		{ "sessions / open (none)", { VIEWS_SESSIONS, "open" } },
		{ "open audit (A)", { VIEWS_AUDIT, NULL } },
		{ "audit / CP-07 (matches 2%)", { VIEWS_AUDIT, "CP-07" } },
		{ "audit / nomatch (reads every row)", { VIEWS_AUDIT, "nomatch" } },
		{ "open drivers (D)", { VIEWS_DRIVERS, NULL } },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const struct opening *o = &cases[c].o;
		char msg[EVC_ERR_LEN];
		for (size_t i = 0; i < r; i++) {
			recording = 0;
			views_close(vs);
			if (o->filter) { /* the view open on all its rows, then the filter */
				views_open(vs, o->k, &pv, NULL);
				until_shown(clock_mono());
			}
			recording = 1;
			double a = clock_mono();
			turn(o->filter ? act_filter : act_open, (void *)o);
			until_shown(a);
			recording = 0;
			if (o->filter && i + 1 < r) {
				views_set_filter(vs, &pv, "", msg);
				until_shown(clock_mono());
			}
		}
		report(cases[c].name);
		if (o->filter) {
			views_set_filter(vs, &pv, "", msg);
			until_shown(clock_mono());
		}
	}
	/* PgDn through the sessions: every 200 rows a read of the next page */
	static const int pgdn = KEY_NPAGE;
	views_close(vs);
	views_open(vs, VIEWS_SESSIONS, &pv, NULL);
	until_shown(clock_mono());
	recording = 1;
	for (size_t i = 0; i < r * 10; i++) {
		double a = clock_mono();
		turn(act_key, (void *)&pgdn);
		if (views_busy(vs))
			until_shown(a);
	}
	report("sessions PgDn (a page read every ~6 keys)");
	/* a resize on the sessions view, and back */
	for (size_t i = 0; i < r; i++) {
		static const int small[2] = { 24, 80 }, big[2] = { 40, 120 };
		double a = clock_mono();
		turn(act_resize, (void *)small);
		turn(act_resize, (void *)big);
		shown[nshown++] = (clock_mono() - a) * 1000.0;
	}
	report("sessions: resize 120x40 -> 80x24 -> 120x40");
	/* Esc while the audit view reads every row: the read is abandoned */
	struct history_stats st;
	for (size_t i = 0; i < r; i++) {
		static const struct opening au = { VIEWS_AUDIT, "nomatch" };
		static const int esc = 27;
		char msg[EVC_ERR_LEN];
		recording = 0;
		views_open(vs, VIEWS_AUDIT, &pv, NULL);
		until_shown(clock_mono());
		recording = 1;
		double a = clock_mono();
		turn(act_filter, (void *)&au);
		turn(act_key, (void *)&esc);
		shown[nshown++] = (clock_mono() - a) * 1000.0;
		recording = 0;
		views_open(vs, VIEWS_AUDIT, &pv, NULL);
		views_set_filter(vs, &pv, "", msg);
		until_shown(clock_mono());
	}
	views_open(vs, VIEWS_AUDIT, &pv, NULL); /* the title report() shows */
	until_shown(clock_mono());
	report("audit / nomatch, then Esc at once");
	history_stats(hist, &st);
	printf("    reads begun %lu: answered %lu, abandoned %lu (%lu stopped mid-statement); longest answered read %.1f ms\n",
	       st.started, st.answered, st.abandoned, st.interrupted, st.longest_ms);
	printf("longest main-loop stall of any case: %.2f ms, its longest CPU time in a turn %.2f ms"
	       " (the reads run on the reader thread)\n",
	       worst, worst_cpu);
	views_free(vs);
	endwin();
	delscreen(scr);
	fclose(out);
	fclose(in);
	history_close(hist);
	return 0;
}
