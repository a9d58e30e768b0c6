/* The panel's views on a big history: fills a database with N sessions
 * (default 100,000) over the last 30 days, N cp_events and N/5 audit
 * rows, then times what the main loop does when the operator opens each
 * view (views_open: the read-only connection's reads) and draws it
 * (views_draw + doupdate into an off-screen terminal), and the keys that
 * read more (PgDn past a page, a new filter). Each case runs R times; the
 * longest is the main loop's stall for it.
 *
 *   bench_views DB_PATH [N] [R]     (DB_PATH is created; an existing file is refused)
 */
#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
		if (i % 5 == 0) {
			sqlite3_bind_double(au, 1, t);
			sqlite3_bind_text(au, 2, cpid, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(au) != SQLITE_DONE)
				die("audit", db);
			sqlite3_reset(au);
		}
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

static double samples[1000];

static void report(const char *name, size_t r)
{
	qsort(samples, r, sizeof samples[0], cmp_d);
	printf("%-44s max %7.2f ms  p50 %7.2f ms  (%zu runs)\n", name, samples[r - 1], samples[r / 2], r);
	printf("RESULT_VIEWS case=%s max_ms=%.3f p50_ms=%.3f\n", name, samples[r - 1], samples[r / 2]);
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
	if (r < 1 || r > 1000 || n < 1) {
		fprintf(stderr, "bench_views: N >= 1, 1 <= R <= 1000\n");
		return 2;
	}
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "bench_views: %s exists: give a new file\n", path);
		return 2;
	}
	double t0 = clock_mono();
	fill(path, n);
	printf("filled %s: %ld sessions, %ld cp_events, %ld audit rows, %d CPs, %d drivers in %.1f s\n", path, n, n,
	       (n + 4) / 5, NCPS, NDRIVERS, clock_mono() - t0);

	char err[EVC_ERR_LEN];
	struct history *h = history_open(path, err);
	if (!h) {
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
	struct panel_view v = { .cps = cps, .ncps = NCPS, .src = history_source(h) };

	FILE *out = fopen("/dev/null", "w"), *in = fopen("/dev/null", "r");
	SCREEN *scr = newterm("xterm-256color", out, in);
	if (!scr) {
		fprintf(stderr, "bench_views: no terminal type xterm-256color\n");
		return 1;
	}
	set_term(scr);
	resizeterm(40, 120);
	struct views *vs = views_new();
	static const struct {
		const char *name;
		enum views_kind k;
		const char *filter;
	} cases[] = {
		{ "open CP detail (Enter)", VIEWS_DETAIL, NULL },
		{ "open sessions (S)", VIEWS_SESSIONS, NULL },
		{ "sessions / cp:CP-07", VIEWS_SESSIONS, "cp:CP-07" },
		{ "sessions / driver:D-0042", VIEWS_SESSIONS, "driver:D-0042" },
		{ "sessions / error (3% of rows)", VIEWS_SESSIONS, "error" },
		{ "sessions / CP-07 D-0042 ticket", VIEWS_SESSIONS, "CP-07 D-0042 ticket" },
		{ "sessions / open (none)", VIEWS_SESSIONS, "open" },
		{ "open audit (A)", VIEWS_AUDIT, NULL },
		{ "audit / CP-07 (matches 2%)", VIEWS_AUDIT, "CP-07" },
		{ "audit / nomatch (scans every row)", VIEWS_AUDIT, "nomatch" },
		{ "open drivers (D)", VIEWS_DRIVERS, NULL },
	};
	double worst = 0;
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		for (size_t i = 0; i < r; i++) {
			views_close(vs);
			if (cases[c].filter) {
				views_open(vs, cases[c].k, &v, NULL);
			}
			double a = clock_mono();
			if (cases[c].filter) {
				char msg[EVC_ERR_LEN];
				if (views_set_filter(vs, &v, cases[c].filter, msg) == -1) {
					fprintf(stderr, "bench_views: filter %s: %s\n", cases[c].filter, msg);
					return 1;
				}
			} else {
				views_open(vs, cases[c].k, &v, "CP-07");
			}
			views_draw(vs, &v, 2, 36, 120, clock_wall());
			wnoutrefresh(stdscr);
			doupdate();
			samples[i] = (clock_mono() - a) * 1000.0;
			if (cases[c].filter && i + 1 == r) {
				char msg[EVC_ERR_LEN];
				views_set_filter(vs, &v, "", msg);
			}
		}
		report(cases[c].name, r);
		if (samples[r - 1] > worst)
			worst = samples[r - 1];
	}
	/* PgDn through the sessions: every 200 rows a read of the next page */
	views_close(vs);
	views_open(vs, VIEWS_SESSIONS, &v, NULL);
	views_draw(vs, &v, 2, 36, 120, clock_wall());
	size_t np = 0;
	for (size_t i = 0; i < r * 10 && np < sizeof samples / sizeof samples[0]; i++) {
		double a = clock_mono();
		views_key(vs, KEY_NPAGE, &v, 0);
		views_draw(vs, &v, 2, 36, 120, clock_wall());
		wnoutrefresh(stdscr);
		doupdate();
		samples[np++] = (clock_mono() - a) * 1000.0;
	}
	report("sessions PgDn (a page read every ~6 keys)", np);
	if (samples[np - 1] > worst)
		worst = samples[np - 1];
	printf("longest main-loop stall of any case: %.2f ms (read budget %d ms)\n", worst, HISTORY_BUDGET_MS);
	views_free(vs);
	endwin();
	delscreen(scr);
	fclose(out);
	fclose(in);
	history_close(h);
	return 0;
}
