/* Central's SQLite store: schema, WAL, validation of the registration tools,
 * the --import format (all or nothing), sessions ending exactly once,
 * restart bookkeeping (DESCONECTADO, open sessions). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "evc/clock.h"
#include "src/central/store.h"

static char dir[64];
static char dbpath[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(dbpath, sizeof dbpath, "%s/c.db", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* One text value from the database (a second connection, as an operator). */
static char *q(const char *sql)
{
	static char out[512];
	sqlite3 *db;
	sqlite3_stmt *st;
	out[0] = '\0';
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		snprintf(out, sizeof out, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return out;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_open_schema_wal(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	struct store *s = store_open(dbpath, err);
	assert_non_null(s);
	assert_string_equal(q("PRAGMA journal_mode"), "wal");
	assert_string_equal(q("select count(*) from sqlite_master where type='table' and name in "
			      "('charging_points','drivers','sessions','cp_events')"),
			    "4");
	store_close(s);
	/* Opening again keeps the data and the schema. */
	s = store_open(dbpath, err);
	assert_non_null(s);
	store_close(s);
}

static void test_not_a_database(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	char path[160];
	snprintf(path, sizeof path, "%s/notdb", dir);
	write_file(path, "this is plain text, not an SQLite database at all, long enough for a header....\n");
	assert_null(store_open(path, err));
	assert_non_null(strstr(err, "notdb"));
	snprintf(path, sizeof path, "%s/no/such/dir/c.db", dir);
	assert_null(store_open(path, err));
}

static void test_add_and_validate(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	int created = -1;
	struct store *s = store_open(dbpath, err);
	assert_non_null(s);
	assert_int_equal(store_add_driver(s, "101", "Ana López", &created, err), 0);
	assert_int_equal(created, 1);
	assert_int_equal(store_add_driver(s, "101", "Ana", &created, err), 0);
	assert_int_equal(created, 0);
	assert_string_equal(q("select name from drivers where id='101'"), "Ana");
	assert_int_equal(store_add_driver(s, "bad id", NULL, &created, err), -1);
	assert_non_null(strstr(err, "invalid driver id"));
	assert_int_equal(store_driver_known(s, "101"), 1);
	assert_int_equal(store_driver_known(s, "102"), 0);

	assert_int_equal(store_add_cp(s, "MAD-01", "C/ Serrano 10", 0.25, &created, err), 0);
	assert_int_equal(created, 1);
	assert_string_equal(q("select location||'|'||price||'|'||status from charging_points"),
			    "C/ Serrano 10|0.25|DESCONECTADO");
	assert_int_equal(store_add_cp(s, "MAD#01", "x", 0.25, NULL, err), -1);
	assert_int_equal(store_add_cp(s, "MAD-02", "has # hash", 0.25, NULL, err), -1);
	assert_int_equal(store_add_cp(s, "MAD-02", "", 0.25, NULL, err), -1);
	char longloc[80];
	memset(longloc, 'x', 65);
	longloc[65] = '\0';
	assert_int_equal(store_add_cp(s, "MAD-02", longloc, 0.25, NULL, err), -1);
	longloc[64] = '\0';
	assert_int_equal(store_add_cp(s, "MAD-02", longloc, 0.25, NULL, err), 0);
	/* 64 characters of two bytes each are still 64 characters. */
	char utf[160] = "";
	for (int i = 0; i < 64; i++)
		strcat(utf, "\xc3\xa1");
	assert_int_equal(store_add_cp(s, "MAD-03", utf, 0.25, NULL, err), 0);
	assert_int_equal(store_add_cp(s, "MAD-04", "bad \xc3 utf", 0.25, NULL, err), -1);
	assert_int_equal(store_add_cp(s, "MAD-04", "x", 0, NULL, err), -1);
	assert_int_equal(store_add_cp(s, "MAD-04", "x", 100.5, NULL, err), -1);
	assert_int_equal(store_add_cp(s, "MAD-04", "x", 100, NULL, err), 0);
	store_close(s);
}

static void test_import(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	char path[160];
	int nd = -1, nc = -1;
	struct store *s = store_open(dbpath, err);
	assert_non_null(s);
	snprintf(path, sizeof path, "%s/net.txt", dir);
	write_file(path, "# a network\n\ndriver 201 Luis Pérez\r\ndriver 202\n"
			 "cp BCN-01 0.31 Passeig de Gràcia 12  \n\t cp BCN-02 0.29 Diagonal 1\n");
	assert_int_equal(store_import(s, path, &nd, &nc, err), 0);
	assert_int_equal(nd, 2);
	assert_int_equal(nc, 2);
	assert_string_equal(q("select name from drivers where id='201'"), "Luis Pérez");
	assert_string_equal(q("select coalesce(name,'NULL') from drivers where id='202'"), "NULL");
	assert_string_equal(q("select location from charging_points where id='BCN-01'"), "Passeig de Gràcia 12");

	/* All or nothing: line 3 is bad, so lines 1-2 are not kept either. */
	write_file(path, "driver 301\ncp BCN-03 0.2 Somewhere\ncp BCN-04 zero Nowhere\n");
	assert_int_equal(store_import(s, path, &nd, &nc, err), -1);
	assert_non_null(strstr(err, "net.txt:3: invalid price 'zero'"));
	assert_string_equal(q("select count(*) from drivers where id='301'"), "0");
	assert_string_equal(q("select count(*) from charging_points where id='BCN-03'"), "0");

	write_file(path, "vehicle 1\n");
	assert_int_equal(store_import(s, path, &nd, &nc, err), -1);
	assert_non_null(strstr(err, ":1: unknown record"));
	write_file(path, "cp BCN-05 0.2\n");
	assert_int_equal(store_import(s, path, &nd, &nc, err), -1);
	assert_non_null(strstr(err, ":1: expected 'cp ID PRICE LOCATION...'"));
	write_file(path, "driver\n");
	assert_int_equal(store_import(s, path, &nd, &nc, err), -1);
	snprintf(path, sizeof path, "%s/missing.txt", dir);
	assert_int_equal(store_import(s, path, &nd, &nc, err), -1);
	assert_non_null(strstr(err, "missing.txt"));
	/* The store is still usable after failed imports. */
	assert_int_equal(store_add_driver(s, "401", NULL, NULL, err), 0);
	store_close(s);
}

static void session_fx(struct core_fx *fx, const char *id, enum core_outcome out, double kwh)
{
	memset(fx, 0, sizeof *fx);
	fx->kind = CORE_FX_STORE_SESSION;
	struct core_session *ss = &fx->u.session;
	snprintf(ss->id, sizeof ss->id, "%s", id);
	snprintf(ss->cp_id, sizeof ss->cp_id, "MAD-01");
	snprintf(ss->driver_id, sizeof ss->driver_id, "101");
	ss->price = 0.25;
	ss->kwh = kwh;
	ss->importe = kwh * 0.25;
	ss->requested_at = 1000;
	ss->charging = kwh > 0;
	ss->outcome = out;
}

static void test_session_ends_once(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	struct core_fx fx;
	struct store *s = store_open(dbpath, err);
	assert_non_null(s);
	assert_int_equal(store_begin(s, err), 0);
	session_fx(&fx, "S1", CORE_OUT_OPEN, 1.0);
	assert_int_equal(store_apply(s, &fx, err), 0);
	session_fx(&fx, "S1", CORE_OUT_TICKET, 10.0);
	assert_int_equal(store_apply(s, &fx, err), 0);
	/* A replay after the end must not change the ended session. */
	session_fx(&fx, "S1", CORE_OUT_SUPPLY_ERROR, 12.0);
	assert_int_equal(store_apply(s, &fx, err), 0);
	session_fx(&fx, "S2", CORE_OUT_OPEN, 3.0);
	assert_int_equal(store_apply(s, &fx, err), 0);
	session_fx(&fx, "S3", CORE_OUT_OPEN, 0);
	assert_int_equal(store_apply(s, &fx, err), 0);
	assert_int_equal(store_commit(s, err), 0);
	assert_string_equal(q("select outcome||'|'||kwh||'|'||importe from sessions where id='S1'"), "TICKET|10.0|2.5");
	assert_string_equal(q("select count(*) from sessions where outcome is null"), "2");
	store_close(s);
}

static int nopen;
static void count_open(void *arg, const struct core_session *ss)
{
	(void)arg;
	nopen++;
	assert_null(core_outcome_name(ss->outcome));
	assert_string_equal(ss->cp_id, "MAD-01");
	assert_true(ss->price == 0.25);
}

static int ncp_loaded;
static void count_cp(void *arg, const struct core_cp_row *r)
{
	(void)arg;
	assert_string_equal(r->id, "MAD-01");
	assert_string_equal(r->location, "C/ Serrano 10");
	assert_true(r->price == 0.25);
	assert_int_equal(r->stopped, 1);
	assert_int_equal(r->state, CP_DESCONECTADO);
	ncp_loaded++;
}

static void count_driver(void *arg, const char *id)
{
	(void)arg;
	assert_string_equal(id, "101");
}

static void test_restart_bookkeeping(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	struct core_fx fx;
	struct store *s = store_open(dbpath, err);
	assert_non_null(s);
	assert_int_equal(store_add_cp(s, "MAD-01", "C/ Serrano 10", 0.25, NULL, err), 0);
	memset(&fx, 0, sizeof fx);
	fx.kind = CORE_FX_STORE_CP;
	snprintf(fx.u.cp.id, sizeof fx.u.cp.id, "MAD-01");
	snprintf(fx.u.cp.location, sizeof fx.u.cp.location, "C/ Serrano 10");
	fx.u.cp.price = 0.25;
	fx.u.cp.state = CP_SUMINISTRANDO;
	fx.u.cp.stopped = 1;
	fx.ts = 5;
	assert_int_equal(store_begin(s, err), 0);
	assert_int_equal(store_apply(s, &fx, err), 0);
	session_fx(&fx, "S9", CORE_OUT_OPEN, 2.0);
	assert_int_equal(store_apply(s, &fx, err), 0);
	memset(&fx, 0, sizeof fx);
	fx.kind = CORE_FX_STORE_EVENT;
	snprintf(fx.u.event.cp_id, sizeof fx.u.event.cp_id, "MAD-01");
	snprintf(fx.u.event.event, sizeof fx.u.event.event, "FAULT");
	snprintf(fx.u.event.detail, sizeof fx.u.event.detail, "engine KO");
	fx.ts = 6;
	assert_int_equal(store_apply(s, &fx, err), 0);
	assert_int_equal(store_commit(s, err), 0);
	assert_string_equal(q("select status||'|'||stopped from charging_points where id='MAD-01'"),
			    "SUMINISTRANDO|1");

	assert_int_equal(store_mark_all_disconnected(s, 100, err), 0);
	assert_string_equal(q("select status||'|'||stopped from charging_points where id='MAD-01'"),
			    "DESCONECTADO|1");
	assert_string_equal(q("select event||'|'||detail from cp_events order by id desc limit 1"),
			    "STATE|DESCONECTADO (Central started, was SUMINISTRANDO)");
	assert_string_equal(q("select count(*) from cp_events where event='FAULT'"), "1");
	nopen = 0;
	assert_int_equal(store_foreach_open_session(s, count_open, NULL, err), 1);
	assert_int_equal(nopen, 1);
	/* the same callback style loads CPs and drivers */
	ncp_loaded = 0;
	assert_int_equal(store_foreach_cp(s, count_cp, NULL, err), 1);
	assert_int_equal(ncp_loaded, 1);
	assert_int_equal(store_add_driver(s, "101", "Ana", NULL, err), 0);
	assert_int_equal(store_foreach_driver(s, count_driver, NULL, err), 1);
	store_close(s);
}

static void apply_event(struct store *s, const char *cp, const char *event)
{
	char err[EVC_ERR_LEN];
	struct core_fx fx;
	memset(&fx, 0, sizeof fx);
	fx.kind = CORE_FX_STORE_EVENT;
	fx.ts = 10;
	snprintf(fx.u.event.cp_id, sizeof fx.u.event.cp_id, "%s", cp);
	snprintf(fx.u.event.event, sizeof fx.u.event.event, "%s", event);
	snprintf(fx.u.event.detail, sizeof fx.u.event.detail, "d");
	assert_int_equal(store_apply(s, &fx, err), 0);
}

static void apply_cp(struct store *s, const char *cp)
{
	char err[EVC_ERR_LEN];
	struct core_fx fx;
	memset(&fx, 0, sizeof fx);
	fx.kind = CORE_FX_STORE_CP;
	fx.ts = 10;
	snprintf(fx.u.cp.id, sizeof fx.u.cp.id, "%s", cp);
	snprintf(fx.u.cp.location, sizeof fx.u.cp.location, "Here");
	fx.u.cp.price = 0.3;
	fx.u.cp.state = CP_ACTIVADO;
	assert_int_equal(store_apply(s, &fx, err), 0);
}

/* cp_events as a chain (evcharging(7) DATABASE): each row's prev is its
 * CP's previous row, charging_points.last_event the newest, whether the
 * row came before its CP's upsert (carried by it), after it (written at
 * commit), before the CP had a row at all, or from another program (the
 * trigger; Central reads the heads again after its commit). A rolled-back
 * transaction leaves no head behind. */
static void test_event_chain(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	struct store *s = store_open(dbpath, err);
	assert_non_null(s);
	assert_int_equal(store_begin(s, err), 0);
	apply_event(s, "A", "REGISTER"); /* 1: A has no row yet */
	apply_cp(s, "A");
	apply_event(s, "B", "REGISTER"); /* 2 */
	apply_cp(s, "B");
	apply_event(s, "A", "STATE"); /* 3: after A's upsert */
	assert_int_equal(store_commit(s, err), 0);
	assert_string_equal(q("select group_concat(id || ':' || cp_id || ':' || prev, ' ') from cp_events"),
			    "1:A:0 2:B:0 3:A:1");
	assert_string_equal(q("select group_concat(id || ':' || last_event, ' ') from charging_points"), "A:3 B:2");

	assert_int_equal(store_begin(s, err), 0);
	apply_event(s, "A", "FAULT"); /* 4 */
	apply_event(s, "A", "STATE"); /* 5 */
	apply_cp(s, "A");
	apply_event(s, "B", "COMMAND"); /* 6: no upsert of B follows */
	assert_int_equal(store_commit(s, err), 0);
	assert_string_equal(q("select group_concat(id || ':' || prev, ' ') from cp_events where id > 3"),
			    "4:3 5:4 6:2");
	assert_string_equal(q("select group_concat(id || ':' || last_event, ' ') from charging_points"), "A:5 B:6");

	/* undone: the ids are handed out again, the heads must not point at them */
	assert_int_equal(store_begin(s, err), 0);
	apply_event(s, "A", "LOST");
	apply_event(s, "B", "LOST");
	store_rollback(s);
	assert_string_equal(q("select count(*) from cp_events"), "6");

	/* another program's row, linked by the schema's trigger */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO cp_events(cp_id, ts, event) VALUES('B', 11, 'NOTE')", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_string_equal(q("select id || ':' || prev from cp_events where event = 'NOTE'"), "7:6");

	assert_int_equal(store_begin(s, err), 0);
	apply_event(s, "B", "STATE"); /* 8 */
	apply_event(s, "A", "RECOVER"); /* 9 */
	apply_cp(s, "A");
	assert_int_equal(store_commit(s, err), 0);
	assert_string_equal(q("select group_concat(id || ':' || prev, ' ') from cp_events where id > 7"), "8:7 9:5");
	assert_string_equal(q("select group_concat(id || ':' || last_event, ' ') from charging_points"), "A:9 B:8");
	store_close(s);
}

/* The checkpoint thread copies the WAL into the database file once it
 * passes the mark (1,000 pages), long before the writer's own fallback at
 * ten times that: the file grows while the writer keeps writing. */
static void test_checkpoint_thread(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	struct store *s = store_open(dbpath, err);
	assert_non_null(s);
	assert_int_equal(store_start_checkpointer(s, err), 0);
	static char payload[3000];
	memset(payload, 'x', sizeof payload - 1);
	struct stat sb;
	assert_int_equal(stat(dbpath, &sb), 0);
	off_t before = sb.st_size;
	/* about 1,500 pages, in commits of 10 rows */
	for (int i = 0; i < 150; i++) {
		assert_int_equal(store_begin(s, err), 0);
		for (int j = 0; j < 10; j++)
			assert_true(store_outbox_add(s, "t", "k", payload, 1.0, err) > 0);
		assert_int_equal(store_commit(s, err), 0);
	}
	/* small commits go on meanwhile, as Central's do */
	double end = clock_mono() + 10;
	off_t size = before;
	while (size < before + 2 * 1024 * 1024 && clock_mono() < end) {
		assert_int_equal(store_begin(s, err), 0);
		assert_true(store_outbox_add(s, "t", "k", "small", 1.0, err) > 0);
		assert_int_equal(store_commit(s, err), 0);
		poll(NULL, 0, 10);
		assert_int_equal(stat(dbpath, &sb), 0);
		size = sb.st_size;
	}
	if (size < before + 2 * 1024 * 1024)
		fail_msg("the database file stayed at %lld bytes (from %lld): nothing was checkpointed",
			 (long long)size, (long long)before);
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_schema_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_and_validate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_ends_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_bookkeeping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_chain, setup, teardown),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
