/* The numbered schema migrations (src/common/schema.c) on real SQLite files
 * in a temp folder: a new file, a Release 1 file made by the old store
 * code (tests/fixtures/schema-r1.sql), a file holding only the documented
 * tables (schema-documented.sql), v1 -> v2 from a real v1 file, re-opening
 * is a no-op, a newer or foreign file is refused and left alone, two
 * programs migrating at once, the append-only audit_log. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "evc/schema.h"

static char dir[64];
static char dbpath[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_schema.XXXXXX");
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

static sqlite3 *open_db(void)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* One value of a query as text ("" for NULL or no row). */
static const char *q(sqlite3 *db, const char *sql)
{
	static char out[1024];
	sqlite3_stmt *st;
	out[0] = '\0';
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		snprintf(out, sizeof out, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out;
}

/* EXPLAIN QUERY PLAN of sql, its steps joined by " | ". */
static const char *plan(sqlite3 *db, const char *sql)
{
	static char out[1024];
	char eqp[512];
	sqlite3_stmt *st;
	size_t n = 0;
	snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql);
	out[0] = '\0';
	if (sqlite3_prepare_v2(db, eqp, -1, &st, NULL) != SQLITE_OK)
		fail_msg("prepare %s: %s", eqp, sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW && n < sizeof out - 1) {
		int k = snprintf(out + n, sizeof out - n, "%s%s", n ? " | " : "", (const char *)sqlite3_column_text(st, 3));
		if (k < 0)
			break;
		n += (size_t)k < sizeof out - n ? (size_t)k : sizeof out - n - 1;
	}
	sqlite3_finalize(st);
	return out;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* Load a fixture dump into a new file at dbpath. */
static void load_fixture(const char *name)
{
	const char *src = getenv("EVC_SRCDIR");
	char path[512];
	if (src == NULL)
		fail_msg("EVC_SRCDIR is not set (make check sets it)");
	snprintf(path, sizeof path, "%s/tests/fixtures/%s", src, name);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		fail_msg("cannot open fixture %s", path);
	static char sql[65536];
	size_t n = fread(sql, 1, sizeof sql - 1, f);
	fclose(f);
	assert_true(n > 0 && n < sizeof sql - 1);
	sql[n] = '\0';
	sqlite3 *db = open_db();
	exec_ok(db, sql);
	assert_int_equal(schema_version(db), 0);
	sqlite3_close(db);
}

/* Everything about the schema as one string: every table's columns (name,
 * type, not null, default, pk), every index and trigger by name. */
static char *shape(sqlite3 *db, int with_constraints)
{
	static char out[16384];
	const char *sql = with_constraints
				  ? "SELECT group_concat(x, ';') FROM (SELECT m.name || '.' || c.name || ':' || c.type || ':' ||"
				    " c.\"notnull\" || ':' || coalesce(c.dflt_value, '-') || ':' || c.pk AS x"
				    " FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table'"
				    " UNION ALL SELECT type || ' ' || name || ' ON ' || tbl_name FROM sqlite_master"
				    " WHERE type IN ('index', 'trigger') AND name NOT LIKE 'sqlite_%' ORDER BY 1)"
				  : "SELECT group_concat(x, ';') FROM (SELECT m.name || '.' || c.name AS x"
				    " FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table'"
				    " UNION ALL SELECT type || ' ' || name || ' ON ' || tbl_name FROM sqlite_master"
				    " WHERE type IN ('index', 'trigger') AND name NOT LIKE 'sqlite_%' ORDER BY 1)";
	snprintf(out, sizeof out, "%s", q(db, sql));
	return out;
}

/* The shape of a file created new by this program. */
static char fresh_shape[16384], fresh_names[16384];
static void make_fresh_shape(void)
{
	char path[160];
	snprintf(path, sizeof path, "%s/fresh.db", dir);
	sqlite3 *db;
	char err[EVC_ERR_LEN];
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(schema_migrate(db, err), 0);
	snprintf(fresh_shape, sizeof fresh_shape, "%s", shape(db, 1));
	snprintf(fresh_names, sizeof fresh_names, "%s", shape(db, 0));
	sqlite3_close(db);
}

static void test_new_file(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	sqlite3 *db = open_db();
	assert_int_equal(schema_version(db), 0);
	assert_int_equal(schema_migrate(db, err), 0);
	assert_int_equal(schema_version(db), SCHEMA_VERSION);
	assert_string_equal(q(db, "select count(*) from sqlite_master where type='table' and name in "
				  "('charging_points','drivers','sessions','cp_events','audit_log')"),
			    "5");
	assert_string_equal(q(db, "select group_concat(name) from (select name from pragma_table_info('charging_points')"
				  " where name in ('secret_hash','registered_at','cp_key','key_issued_at','revoked',"
				  "'deleted_at','reg_rev') order by cid)"),
			    "secret_hash,registered_at,cp_key,key_issued_at,revoked,deleted_at,reg_rev");
	assert_string_equal(q(db, "select count(*) from sqlite_master where type='index' and name in "
				  "('charging_points_reg_rev','audit_log_ts','sessions_open')"),
			    "3");
	/* v7: a CP's history is chained, not indexed */
	assert_string_equal(q(db, "select count(*) from sqlite_master where name = 'cp_events_cp'"), "0");
	assert_string_equal(q(db, "select count(*) from pragma_table_info('cp_events') where name = 'prev'"), "1");
	assert_string_equal(q(db, "select count(*) from pragma_table_info('charging_points') where name = 'last_event'"),
			    "1");
	/* v6 dropped it: nothing read the audit log by CP through it */
	assert_string_equal(q(db, "select count(*) from sqlite_master where name = 'audit_log_cp'"), "0");
	/* Re-opening changes nothing: SQLite's own schema counter stays. */
	char before[32];
	snprintf(before, sizeof before, "%s", q(db, "PRAGMA schema_version"));
	char shape1[16384];
	snprintf(shape1, sizeof shape1, "%s", shape(db, 1));
	sqlite3_close(db);
	db = open_db();
	assert_int_equal(schema_migrate(db, err), 0);
	assert_string_equal(q(db, "PRAGMA schema_version"), before);
	assert_string_equal(shape(db, 1), shape1);
	sqlite3_close(db);
}

static void check_r1_rows(sqlite3 *db)
{
	assert_string_equal(q(db, "select count(*) from charging_points"), "3");
	assert_string_equal(q(db, "select location||'|'||price||'|'||status||'|'||stopped from charging_points"
				  " where id='BCN-01'"),
			    "Passeig de Gràcia 12|0.31|FUERA_DE_SERVICIO|1");
	assert_string_equal(q(db, "select name from drivers where id='101'"), "Ana María López");
	assert_string_equal(q(db, "select count(*) from drivers"), "2");
	assert_string_equal(q(db, "select count(*)||'|'||sum(outcome is null) from sessions"), "3|1");
	assert_string_equal(q(db, "select kwh||'|'||importe||'|'||outcome||'|'||last_seq||'|'||request_id from sessions"
				  " where id='s-0001'"),
			    "12.345|3.09|TICKET|42|r-1");
	assert_string_equal(q(db, "select reason from sessions where id='s-0002'"), "engine fault");
	assert_string_equal(q(db, "select count(*)||'|'||max(id) from cp_events"), "4|4");
}

static void test_release1_file(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	make_fresh_shape();
	load_fixture("schema-r1.sql");
	sqlite3 *db = open_db();
	assert_int_equal(schema_migrate(db, err), 0);
	assert_int_equal(schema_version(db), SCHEMA_VERSION);
	check_r1_rows(db);
	/* The new columns with their defaults on the old rows. */
	assert_string_equal(q(db, "select count(*) from charging_points where revoked = 0 and reg_rev = 0 and"
				  " secret_hash is null and cp_key is null and deleted_at is null and registered_at is null"),
			    "3");
	assert_string_equal(q(db, "select count(*) from audit_log"), "0");
	/* The same tables, columns, types, defaults and indexes as a new file. */
	assert_string_equal(shape(db, 1), fresh_shape);
	sqlite3_close(db);
}

static void test_documented_file(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	make_fresh_shape();
	load_fixture("schema-documented.sql");
	sqlite3 *db = open_db();
	assert_int_equal(schema_migrate(db, err), 0);
	assert_int_equal(schema_version(db), SCHEMA_VERSION);
	/* Rows intact, the added columns at their defaults. */
	assert_string_equal(q(db, "select group_concat(id||'='||location||'/'||price||'/'||status, ',') from"
				  " (select * from charging_points order by id)"),
			    "MAD-01=C/ Serrano 10/0.25/ACTIVADO,SEV-02=Avenida de la Constitución 1/0.3/DESCONECTADO");
	assert_string_equal(q(db, "select sum(stopped) || '|' || sum(fault) || '|' || count(updated_at) || '|' ||"
				  " sum(revoked) || '|' || sum(reg_rev) from charging_points"),
			    "0|0|0|0|0");
	assert_string_equal(q(db, "select group_concat(id||'='||coalesce(name,'-')) from (select * from drivers order by id)"),
			    "101=Ana,d-7=-");
	assert_string_equal(q(db, "select kwh||'|'||importe||'|'||price||'|'||outcome||'|'||kw||'|'||last_seq||'|'||"
				  "acked||'|'||charging from sessions where id='s-1'"),
			    "10.0|2.5|0.25|TICKET|0.0|0|0|0");
	assert_string_equal(q(db, "select count(*) from sessions where outcome is null"), "1");
	assert_string_equal(q(db, "select count(*)||'|'||sum(detail is null) from cp_events"), "2|1");
	/* Every column, index and trigger a new file has (the documented
	 * columns keep their own, looser, declarations). */
	assert_string_equal(shape(db, 0), fresh_names);
	/* The added columns exactly as in a new file. */
	assert_string_equal(q(db, "select type||':'||\"notnull\"||':'||dflt_value from pragma_table_info('sessions')"
				  " where name='kw'"),
			    "REAL:1:0");
	/* And the v1 upserts work on it (the documented primary keys). */
	exec_ok(db, "INSERT INTO charging_points(id, location, price, status) VALUES('MAD-01','x',0.5,'ACTIVADO')"
		    " ON CONFLICT(id) DO UPDATE SET price=excluded.price");
	assert_string_equal(q(db, "select price from charging_points where id='MAD-01'"), "0.5");
	sqlite3_close(db);
}

static void test_v1_to_v2(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	load_fixture("schema-r1.sql");
	sqlite3 *db = open_db();
	assert_int_equal(schema_migrate_to(db, 1, err), 0);
	assert_int_equal(schema_version(db), 1);
	assert_string_equal(q(db, "select count(*) from pragma_table_info('charging_points') where name='secret_hash'"), "0");
	assert_string_equal(q(db, "select count(*) from sqlite_master where name='audit_log'"), "0");
	/* A v1 program keeps writing to it meanwhile. */
	exec_ok(db, "INSERT INTO charging_points(id, location, price) VALUES('ZGZ-01','Coso 1',0.2)");
	sqlite3_close(db);

	db = open_db();
	assert_int_equal(schema_migrate_to(db, 2, err), 0);
	assert_int_equal(schema_version(db), 2);
	assert_string_equal(q(db, "select count(*) from charging_points"), "4");
	assert_string_equal(q(db, "select location||'|'||revoked||'|'||reg_rev from charging_points where id='ZGZ-01'"),
			    "Coso 1|0|0");
	assert_string_equal(q(db, "select count(*) from sessions"), "3");
	/* reg_rev: one network-wide counter. */
	exec_ok(db, "BEGIN IMMEDIATE");
	exec_ok(db, "UPDATE charging_points SET reg_rev = " SCHEMA_NEXT_REG_REV " WHERE id='MAD-01'");
	exec_ok(db, "UPDATE charging_points SET reg_rev = " SCHEMA_NEXT_REG_REV " WHERE id='ZGZ-01'");
	exec_ok(db, "UPDATE charging_points SET reg_rev = " SCHEMA_NEXT_REG_REV " WHERE id='MAD-01'");
	exec_ok(db, "COMMIT");
	assert_string_equal(q(db, "select group_concat(id||'='||reg_rev) from (select * from charging_points"
				  " where reg_rev > 1 order by reg_rev)"),
			    "ZGZ-01=2,MAD-01=3");
	/* Asking for an older version than the file is a no-op, not a downgrade. */
	assert_int_equal(schema_migrate_to(db, 1, err), 0);
	assert_int_equal(schema_version(db), 2);
	sqlite3_close(db);
}

/* v3 from a real v2 file that a v2 program wrote to. */
static void test_v2_to_v3(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	load_fixture("schema-r1.sql");
	sqlite3 *db = open_db();
	assert_int_equal(schema_migrate_to(db, 2, err), 0);
	assert_string_equal(q(db, "select count(*) from sqlite_master where name in ('outbox','requests')"), "0");
	exec_ok(db, "INSERT INTO audit_log(ts, actor, action, cp_id, detail) VALUES(1, 'registry', 'CP_REGISTERED',"
		    " 'MAD-01', 'by the installer')");
	sqlite3_close(db);

	db = open_db();
	assert_int_equal(schema_migrate_to(db, 3, err), 0);
	assert_int_equal(schema_version(db), 3);
	assert_string_equal(q(db, "select count(*) from audit_log"), "1");
	assert_string_equal(q(db, "select count(*) from sessions"), "3");
	exec_ok(db, "INSERT INTO outbox(topic, msg_key, payload, created_at) VALUES('driver_notifications', '101',"
		    " '{}', 2)");
	exec_ok(db, "INSERT INTO requests(user_id, request_id, seen_at) VALUES('101', 'r-1', 3)");
	/* one row per (driver, request) */
	assert_int_equal(sqlite3_exec(db, "INSERT INTO requests(user_id, request_id, seen_at) VALUES('101', 'r-1', 4)",
				      NULL, NULL, NULL),
			 SQLITE_CONSTRAINT);
	assert_string_equal(q(db, "select count(*) from outbox"), "1");
	sqlite3_close(db);
}

/* v5 from a v4 file: the outbox keeps its rows and ids, and an id is
 * never handed out twice, even after the newest row is deleted (Central
 * tracks rows in flight by id). */
static void test_v4_to_v5(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	load_fixture("schema-r1.sql");
	sqlite3 *db = open_db();
	assert_int_equal(schema_migrate_to(db, 4, err), 0);
	exec_ok(db, "INSERT INTO outbox(topic, msg_key, payload, created_at) VALUES('t', '101', '{\"a\":1}', 1);"
		    "INSERT INTO outbox(topic, msg_key, payload, created_at) VALUES('t', '102', '{\"a\":2}', 2);"
		    "DELETE FROM outbox WHERE id = 2;"
		    "INSERT INTO outbox(topic, msg_key, payload, created_at) VALUES('t', '103', '{\"a\":3}', 3);");
	/* the flaw v5 mends: the deleted id came back */
	assert_string_equal(q(db, "select group_concat(id) from outbox"), "1,2");
	sqlite3_close(db);
	db = open_db();
	assert_int_equal(schema_migrate_to(db, 5, err), 0);
	assert_int_equal(schema_version(db), 5);
	assert_string_equal(q(db, "select group_concat(id || ':' || msg_key || ':' || payload, ' ') from outbox"),
			    "1:101:{\"a\":1} 2:103:{\"a\":3}");
	exec_ok(db, "DELETE FROM outbox WHERE id = 2;"
		    "INSERT INTO outbox(topic, msg_key, payload, created_at) VALUES('t', '104', '{}', 4);");
	assert_string_equal(q(db, "select group_concat(id) from outbox"), "1,3");
	exec_ok(db, "DELETE FROM outbox;"
		    "INSERT INTO outbox(topic, msg_key, payload, created_at) VALUES('t', '105', '{}', 5);");
	assert_string_equal(q(db, "select id from outbox"), "4");
	sqlite3_close(db);
}

/* v6 from a v5 file: the audit_log index by CP goes; the rows, the index
 * by time and the append-only triggers stay. */
static void test_v5_to_v6(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	load_fixture("schema-r1.sql");
	sqlite3 *db = open_db();
	assert_int_equal(schema_migrate_to(db, 5, err), 0);
	exec_ok(db, "INSERT INTO audit_log(ts, actor, action, cp_id, detail) VALUES(1, 'central', 'CP_FAULT', 'A', 'x');"
		    "INSERT INTO audit_log(ts, actor, action, cp_id, detail) VALUES(2, 'central', 'CP_RECOVER', 'A', 'y');");
	assert_string_equal(q(db, "select count(*) from sqlite_master where name = 'audit_log_cp'"), "1");
	sqlite3_close(db);
	db = open_db();
	assert_int_equal(schema_migrate_to(db, 6, err), 0);
	assert_int_equal(schema_version(db), 6);
	assert_string_equal(q(db, "select count(*) from sqlite_master where name = 'audit_log_cp'"), "0");
	assert_string_equal(q(db, "select group_concat(action) from audit_log"), "CP_FAULT,CP_RECOVER");
	assert_string_equal(q(db, "select count(*) from sqlite_master where name = 'audit_log_ts'"), "1");
	/* still append-only */
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit_log", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* One CP's history through the chain, as EV_Central reads it: "id:event"
 * newest first. */
static const char *chain_of(sqlite3 *db, const char *cp, int n)
{
	static char sql[1024];
	snprintf(sql, sizeof sql,
		 "select group_concat(x, ' ') from (%s select e.id || ':' || e.event as x from chain"
		 " join cp_events e on e.id = chain.id where e.cp_id = ?1 order by e.ts desc, e.id desc limit ?2)",
		 EVENTS_CHAIN_SQL);
	sqlite3_stmt *st = NULL;
	static char out[1024];
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, cp, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, n);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const unsigned char *t = sqlite3_column_text(st, 0);
	snprintf(out, sizeof out, "%s", t ? (const char *)t : "");
	sqlite3_finalize(st);
	return out;
}

/* v7 from a v6 file: every row learns its CP's previous one, every CP its
 * newest, the index goes; a row another program inserts is linked by the
 * trigger, and a row of a CP with no charging_points row starts at 0. */
static void test_v6_to_v7(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	load_fixture("schema-r1.sql");
	sqlite3 *db = open_db();
	assert_int_equal(schema_migrate_to(db, 6, err), 0);
	exec_ok(db, "INSERT INTO cp_events(cp_id, ts, event, detail) VALUES('NOPE-9', 5, 'FAULT', 'x');");
	sqlite3_close(db);
	db = open_db();
	assert_int_equal(schema_migrate(db, err), 0);
	assert_int_equal(schema_version(db), 7);
	assert_string_equal(q(db, "select count(*) from sqlite_master where name = 'cp_events_cp'"), "0");
	assert_string_equal(q(db, "select group_concat(id || ':' || prev, ' ') from cp_events"), "1:0 2:1 3:0 4:2 5:0");
	assert_string_equal(q(db, "select group_concat(id || ':' || ifnull(last_event, '-'), ' ') from"
				  " (select id, last_event from charging_points order by id)"),
			    "BCN-01:3 MAD-01:4 VLC-01:-");
	assert_string_equal(chain_of(db, "MAD-01", 50), "4:SUMINISTRANDO 2:ACTIVADO 1:REGISTER");
	assert_string_equal(chain_of(db, "MAD-01", 2), "4:SUMINISTRANDO 2:ACTIVADO");
	assert_string_equal(chain_of(db, "BCN-01", 50), "3:PARADO");
	assert_string_equal(chain_of(db, "VLC-01", 50), "");
	/* another program's rows (prev NULL): the trigger links them */
	exec_ok(db, "INSERT INTO cp_events(cp_id, ts, event, detail) VALUES('MAD-01', 1764000040, 'FAULT', 'y');"
		    "INSERT INTO cp_events(cp_id, ts, event, detail) VALUES('VLC-01', 1764000050, 'STATE', 'z');"
		    "INSERT INTO cp_events(cp_id, ts, event, detail) VALUES('MAD-01', 1764000060, 'RECOVER', 'w');");
	assert_string_equal(chain_of(db, "MAD-01", 3), "8:RECOVER 6:FAULT 4:SUMINISTRANDO");
	assert_string_equal(chain_of(db, "VLC-01", 50), "7:STATE");
	assert_string_equal(chain_of(db, "BCN-01", 50), "3:PARADO");
	/* a head pointing at another CP's row ends the chain there */
	exec_ok(db, "UPDATE charging_points SET last_event = 3 WHERE id = 'VLC-01';");
	assert_string_equal(chain_of(db, "VLC-01", 50), "");
	/* rows deleted, their ids handed out again: the newest row (8) goes,
	 * the head still names 8, and the next row gets id 8 with prev 8; the
	 * chain shows it once and stops, where it would have shown it 50 times */
	exec_ok(db, "DELETE FROM cp_events WHERE id = 8;"
		    "INSERT INTO cp_events(cp_id, ts, event, detail) VALUES('MAD-01', 1764000070, 'STATE', 'v');");
	assert_string_equal(q(db, "select prev from cp_events where id = 8"), "8");
	assert_string_equal(chain_of(db, "MAD-01", 50), "8:STATE");
	sqlite3_close(db);
}

/* v4 from a v3 file: only indexes, the rows stay, and the views' queries
 * use them (no full sort of sessions). */
static void test_v3_to_v4(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	load_fixture("schema-r1.sql");
	sqlite3 *db = open_db();
	assert_int_equal(schema_migrate_to(db, 3, err), 0);
	assert_string_equal(q(db, "select count(*) from sqlite_master where name like 'sessions_%time'"), "0");
	sqlite3_close(db);
	db = open_db();
	assert_int_equal(schema_migrate_to(db, 4, err), 0);
	assert_int_equal(schema_version(db), 4);
	assert_string_equal(q(db, "select count(*) from sqlite_master where name like 'sessions_%time'"), "4");
	assert_string_equal(q(db, "select count(*) from sessions"), "3");
	static const char *const pages[] = {
		"select id from sessions order by requested_at desc, id desc limit 20",
		"select id from sessions where cp_id = 'X' order by requested_at desc, id desc limit 20",
		"select id from sessions where driver_id = 'X' order by requested_at desc, id desc limit 20",
		"select id from sessions where outcome = 'TICKET' order by requested_at desc, id desc limit 20",
		"select id from sessions where outcome is null order by requested_at desc, id desc limit 20",
	};
	for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
		const char *p = plan(db, pages[i]);
		if (strstr(p, "TEMP B-TREE") != NULL || strstr(p, "USING") == NULL)
			fail_msg("%s: %s", pages[i], p);
	}
	sqlite3_close(db);
}

static void test_newer_refused(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	sqlite3 *db = open_db();
	exec_ok(db, "CREATE TABLE future(x); PRAGMA user_version = 99");
	err[0] = '\0';
	assert_int_equal(schema_migrate(db, err), -1);
	char want[128];
	snprintf(want, sizeof want, "made by a newer evcharging (schema 99, this program knows up to %d)",
		 SCHEMA_VERSION);
	if (strstr(err, want) == NULL || strstr(err, "c.db") == NULL)
		fail_msg("message: %s", err);
	/* Left alone. */
	assert_int_equal(schema_version(db), 99);
	assert_string_equal(q(db, "select group_concat(name) from sqlite_master"), "future");
	sqlite3_close(db);
}

static void test_not_a_database(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	FILE *f = fopen(dbpath, "w");
	assert_non_null(f);
	fputs("this is a text file and nothing like an SQLite database header, long enough to be read\n", f);
	fclose(f);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	err[0] = '\0';
	assert_int_equal(schema_migrate(db, err), -1);
	if (strstr(err, "not a database") == NULL)
		fail_msg("message: %s", err);
	err[0] = '\0';
	assert_int_equal(schema_set_wal(db, 100, err), -1);
	if (strstr(err, "not a database") == NULL)
		fail_msg("message: %s", err);
	sqlite3_close(db);
	/* Still the same text. */
	f = fopen(dbpath, "r");
	char line[32];
	assert_non_null(fgets(line, sizeof line, f));
	fclose(f);
	assert_memory_equal(line, "this is a text file", 19);
}

static void test_foreign_tables_refused(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	sqlite3 *db = open_db();
	/* A charging_points table, but someone else's: no price. */
	exec_ok(db, "CREATE TABLE charging_points(id TEXT PRIMARY KEY, location TEXT, status TEXT);"
		    "INSERT INTO charging_points VALUES('A','b','c')");
	err[0] = '\0';
	assert_int_equal(schema_migrate(db, err), -1);
	if (strstr(err, "no column price") == NULL)
		fail_msg("message: %s", err);
	/* All or nothing: no column added, no table created, version 0. */
	assert_int_equal(schema_version(db), 0);
	assert_string_equal(q(db, "select group_concat(name) from pragma_table_info('charging_points')"),
			    "id,location,status");
	assert_string_equal(q(db, "select count(*) from sqlite_master where name='drivers'"), "0");
	exec_ok(db, "DROP TABLE charging_points;"
		    "CREATE TABLE charging_points(id TEXT, location TEXT, price REAL, status TEXT)");
	assert_int_equal(schema_migrate(db, err), -1);
	if (strstr(err, "PRIMARY KEY") == NULL)
		fail_msg("message: %s", err);
	sqlite3_close(db);
}

static void *migrate_thread(void *arg)
{
	(void)arg;
	char err[EVC_ERR_LEN];
	sqlite3 *db = open_db();
	/* As both programs open it (store_open, EV_Registry). */
	int rc = schema_set_wal(db, 5000, err);
	if (rc == 0)
		rc = schema_migrate(db, err);
	if (rc != 0)
		fprintf(stderr, "# migrate: %s\n", err);
	sqlite3_close(db);
	return (void *)(intptr_t)rc;
}

/* Central and EV_Registry start together on a new file. */
static void test_two_at_once(void **state)
{
	(void)state;
	for (int round = 0; round < 5; round++) {
		unlink(dbpath);
		pthread_t t[4];
		for (int i = 0; i < 4; i++)
			assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, NULL), 0);
		for (int i = 0; i < 4; i++) {
			void *rc;
			pthread_join(t[i], &rc);
			assert_int_equal((intptr_t)rc, 0);
		}
		sqlite3 *db = open_db();
		assert_int_equal(schema_version(db), SCHEMA_VERSION);
		assert_string_equal(q(db, "select count(*) from pragma_table_info('charging_points') where name='reg_rev'"),
				    "1");
		assert_string_equal(q(db, "PRAGMA journal_mode"), "wal");
		sqlite3_close(db);
	}
}

static void test_audit_append_only(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	sqlite3 *db = open_db();
	assert_int_equal(schema_migrate(db, err), 0);
	exec_ok(db, "BEGIN IMMEDIATE");
	assert_int_equal(schema_audit(db, 1700000000.5, "registry", "127.0.0.1", "CP_REGISTERED", "MAD-01",
				      "CP MAD-01 registered at C/ Serrano 10, 0.25 EUR/kWh", err),
			 0);
	assert_int_equal(schema_audit(db, 1700000001, "central", NULL, "PLAIN_LINK_REFUSED", NULL, NULL, err), 0);
	exec_ok(db, "COMMIT");
	assert_string_equal(q(db, "select ts||'|'||actor||'|'||source_ip||'|'||action||'|'||cp_id||'|'||detail"
				  " from audit_log where id=1"),
			    "1700000000.5|registry|127.0.0.1|CP_REGISTERED|MAD-01|CP MAD-01 registered at C/ Serrano 10,"
			    " 0.25 EUR/kWh");
	assert_string_equal(q(db, "select coalesce(source_ip,'-')||coalesce(cp_id,'-')||coalesce(detail,'-')"
				  " from audit_log where id=2"),
			    "---");
	char *msg = NULL;
	assert_int_not_equal(sqlite3_exec(db, "UPDATE audit_log SET detail='x' WHERE id=1", NULL, NULL, &msg), SQLITE_OK);
	assert_non_null(strstr(msg, "append-only"));
	sqlite3_free(msg);
	msg = NULL;
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit_log", NULL, NULL, &msg), SQLITE_OK);
	assert_non_null(strstr(msg, "append-only"));
	sqlite3_free(msg);
	assert_string_equal(q(db, "select count(*)||'|'||min(detail) from audit_log"),
			    "2|CP MAD-01 registered at C/ Serrano 10, 0.25 EUR/kWh");
	/* No actor or action: refused. */
	assert_int_equal(schema_audit(db, 1, "", NULL, "X", NULL, NULL, err), -1);
	assert_int_equal(schema_audit(db, 1, "registry", NULL, NULL, NULL, NULL, err), -1);
	/* A long detail is cut at a character boundary, never mid-character. */
	char big[2000];
	size_t n = 0;
	big[n++] = 'x'; /* one byte first, so byte 512 falls inside a character */
	while (n + 2 < sizeof big) {
		big[n++] = (char)0xc3; /* é */
		big[n++] = (char)0xa9;
	}
	big[n] = '\0';
	assert_int_equal(schema_audit(db, 2, "registry", NULL, "CP_AUTH_FAILED", NULL, big, err), 0);
	assert_string_equal(q(db, "select length(cast(detail as blob)) from audit_log where id=3"), "511");
	assert_string_equal(q(db, "select substr(detail, -1) = 'é' from audit_log where id=3"), "1");
	sqlite3_close(db);
}

/* The kept statement of a writer of many rows: each row has only its
 * own values (none left over from the one before), and a refused row
 * leaves the statement usable. */
static void test_audit_prepared(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	sqlite3 *db = open_db();
	assert_int_equal(schema_migrate(db, err), 0);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, SCHEMA_AUDIT_SQL, -1, &st, NULL), SQLITE_OK);
	exec_ok(db, "BEGIN IMMEDIATE");
	assert_int_equal(schema_audit_step(st, 10, "central", "10.0.0.1", "CP_FAULT", "MAD-01", "sensor", err), 0);
	assert_int_equal(schema_audit_step(st, 11, "central", NULL, "CP_RECOVER", NULL, NULL, err), 0);
	assert_int_equal(schema_audit_step(st, 12, "central", NULL, "", NULL, NULL, err), -1);
	assert_int_equal(schema_audit_step(st, 13, "central", NULL, "CP_FAULT", "MAD-02", NULL, err), 0);
	exec_ok(db, "COMMIT");
	assert_string_equal(q(db, "select group_concat(ts||'|'||action||'|'||coalesce(source_ip,'-')||'|'"
				  "||coalesce(cp_id,'-')||'|'||coalesce(detail,'-'), ';') from audit_log"),
			    "10.0|CP_FAULT|10.0.0.1|MAD-01|sensor;11.0|CP_RECOVER|-|-|-;13.0|CP_FAULT|-|MAD-02|-");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release1_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_documented_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_to_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v2_to_v3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v3_to_v4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v4_to_v5, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v5_to_v6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v6_to_v7, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_tables_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_append_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_prepared, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
