#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "evc/err.h"
#include "evc/schema.h"

/* v1: the Release 1 schema exactly as EV_Central created it before schema
 * versions existed (so a file it made is already in this shape and every
 * statement is a no-op on it). Operators read these tables with sqlite3
 * directly (evcharging(7) DATABASE): column names are interface. */
static const char v1_sql[] =
	"CREATE TABLE IF NOT EXISTS charging_points("
	" id TEXT PRIMARY KEY,"
	" location TEXT NOT NULL,"
	" price REAL NOT NULL,"
	" status TEXT NOT NULL DEFAULT 'DESCONECTADO',"
	" stopped INTEGER NOT NULL DEFAULT 0,"
	" fault INTEGER NOT NULL DEFAULT 0,"
	" state_since REAL,"
	" updated_at REAL);"
	"CREATE TABLE IF NOT EXISTS drivers("
	" id TEXT PRIMARY KEY,"
	" name TEXT,"
	" created_at REAL);"
	"CREATE TABLE IF NOT EXISTS sessions("
	" id TEXT PRIMARY KEY,"
	" cp_id TEXT NOT NULL,"
	" driver_id TEXT NOT NULL,"
	" request_id TEXT,"
	" kwh REAL NOT NULL DEFAULT 0,"
	" importe REAL NOT NULL DEFAULT 0,"
	" price REAL NOT NULL,"
	" kw REAL NOT NULL DEFAULT 0,"
	" outcome TEXT,"
	" reason TEXT,"
	" last_seq INTEGER NOT NULL DEFAULT 0,"
	" acked INTEGER NOT NULL DEFAULT 0,"
	" charging INTEGER NOT NULL DEFAULT 0,"
	" requested_at REAL,"
	" authorised_at REAL,"
	" started_at REAL,"
	" ended_at REAL);"
	"CREATE INDEX IF NOT EXISTS sessions_open ON sessions(cp_id) WHERE outcome IS NULL;"
	"CREATE TABLE IF NOT EXISTS cp_events("
	" id INTEGER PRIMARY KEY,"
	" cp_id TEXT NOT NULL,"
	" ts REAL NOT NULL,"
	" event TEXT NOT NULL,"
	" detail TEXT);"
	"CREATE INDEX IF NOT EXISTS cp_events_cp ON cp_events(cp_id, ts);";

/* Every v1 column of a table that already exists. A documented column
 * (evcharging(7) DATABASE) must be there: without it the file is not one
 * of ours and nothing is changed. The others are added with the type and
 * default of v1_sql, which ALTER TABLE ADD COLUMN allows for all of them
 * (none is a key, every NOT NULL one has a default). */
struct v1_col {
	const char *table, *name;
	const char *add; /* NULL: documented, must exist; else the column definition */
	int pk;          /* documented as the PRIMARY KEY: the upserts need it */
};
static const struct v1_col v1_cols[] = {
	{"charging_points", "id", NULL, 1},
	{"charging_points", "location", NULL, 0},
	{"charging_points", "price", NULL, 0},
	{"charging_points", "status", NULL, 0},
	{"charging_points", "stopped", "INTEGER NOT NULL DEFAULT 0", 0},
	{"charging_points", "fault", "INTEGER NOT NULL DEFAULT 0", 0},
	{"charging_points", "state_since", "REAL", 0},
	{"charging_points", "updated_at", "REAL", 0},
	{"drivers", "id", NULL, 1},
	{"drivers", "name", NULL, 0},
	{"drivers", "created_at", "REAL", 0},
	{"sessions", "id", NULL, 1},
	{"sessions", "cp_id", NULL, 0},
	{"sessions", "driver_id", NULL, 0},
	{"sessions", "request_id", "TEXT", 0},
	{"sessions", "kwh", NULL, 0},
	{"sessions", "importe", NULL, 0},
	{"sessions", "price", NULL, 0},
	{"sessions", "kw", "REAL NOT NULL DEFAULT 0", 0},
	{"sessions", "outcome", NULL, 0},
	{"sessions", "reason", "TEXT", 0},
	{"sessions", "last_seq", "INTEGER NOT NULL DEFAULT 0", 0},
	{"sessions", "acked", "INTEGER NOT NULL DEFAULT 0", 0},
	{"sessions", "charging", "INTEGER NOT NULL DEFAULT 0", 0},
	{"sessions", "requested_at", "REAL", 0},
	{"sessions", "authorised_at", "REAL", 0},
	{"sessions", "started_at", "REAL", 0},
	{"sessions", "ended_at", "REAL", 0},
	{"cp_events", "id", NULL, 1},
	{"cp_events", "cp_id", NULL, 0},
	{"cp_events", "ts", NULL, 0},
	{"cp_events", "event", NULL, 0},
	{"cp_events", "detail", NULL, 0},
};

static const char *db_name(sqlite3 *db)
{
	const char *f = sqlite3_db_filename(db, "main");
	return f != NULL && f[0] != '\0' ? f : ":memory:";
}

static int exec(sqlite3 *db, const char *sql, const char *what, char err[EVC_ERR_LEN])
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		evc_seterr(err, "%.100s: %s: %.100s", db_name(db), what, msg != NULL ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* 1 if table exists, 0 if not, -1 on error. Column found: *pk as
 * pragma_table_info's pk (0 = not part of the key); not found: *pk = -1. */
static int column_info(sqlite3 *db, const char *table, const char *col, int *pk, char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = NULL;
	int exists = 0;
	*pk = -1;
	if (sqlite3_prepare_v2(db, "SELECT name, pk FROM pragma_table_info(?1)", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		exists = 1;
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (name != NULL && sqlite3_stricmp(name, col) == 0)
			*pk = sqlite3_column_int(st, 1);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	return exists;
fail:
	evc_seterr(err, "%.100s: reading the columns of %s: %.100s", db_name(db), table, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return -1;
}

/* A file made from evcharging(7) DATABASE alone (or by an older tool) gets
 * the v1 columns it lacks before v1_sql creates the missing tables and the
 * indexes. */
static int v1_complete_tables(sqlite3 *db, char err[EVC_ERR_LEN])
{
	for (size_t i = 0; i < sizeof v1_cols / sizeof v1_cols[0]; i++) {
		const struct v1_col *c = &v1_cols[i];
		int pk;
		int exists = column_info(db, c->table, c->name, &pk, err);
		if (exists < 0)
			return -1;
		if (!exists)
			continue; /* v1_sql creates it whole */
		if (pk < 0 && c->add == NULL) {
			evc_seterr(err, "%.100s: table %s has no column %s: not an evcharging database", db_name(db),
				   c->table, c->name);
			return -1;
		}
		if (pk == 0 && c->pk) {
			evc_seterr(err, "%.100s: %s.%s is not the table's PRIMARY KEY: not an evcharging database",
				   db_name(db), c->table, c->name);
			return -1;
		}
		if (pk < 0) {
			char sql[256];
			snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", c->table, c->name, c->add);
			if (exec(db, sql, "adding a column", err) == -1)
				return -1;
		}
	}
	return 0;
}

/* v2: Release 2 trust (evcharging(7) SECURITY). The CP's credential is
 * kept as the hex SHA-256 of its secret (crypto_secret_hash); cp_key is
 * the CP's Fernet key, which Central must be able to send, so it is kept
 * as is. A registry DELETE sets deleted_at and clears both; the row stays
 * for its sessions and history. */
static const char v2_sql[] =
	"ALTER TABLE charging_points ADD COLUMN secret_hash TEXT;"
	"ALTER TABLE charging_points ADD COLUMN registered_at REAL;"
	"ALTER TABLE charging_points ADD COLUMN cp_key TEXT;"
	"ALTER TABLE charging_points ADD COLUMN key_issued_at REAL;"
	"ALTER TABLE charging_points ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE charging_points ADD COLUMN deleted_at REAL;"
	"ALTER TABLE charging_points ADD COLUMN reg_rev INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX charging_points_reg_rev ON charging_points(reg_rev);"
	"CREATE TABLE audit_log("
	" id INTEGER PRIMARY KEY,"
	" ts REAL NOT NULL,"
	" actor TEXT NOT NULL,"
	" source_ip TEXT,"
	" action TEXT NOT NULL,"
	" cp_id TEXT,"
	" detail TEXT);"
	"CREATE INDEX audit_log_ts ON audit_log(ts);"
	"CREATE INDEX audit_log_cp ON audit_log(cp_id, ts);"
	/* Append-only for every program and every operator's sqlite3 shell:
	 * a row that could be edited afterwards would prove nothing. */
	"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
	" BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;"
	"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
	" BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;";

/* v3: billing integrity (evcharging(7) RULES). outbox holds every
 * notification Central must deliver, written in the transaction of the
 * change that causes it and deleted when the broker confirms it; requests
 * remembers which driver requests were answered, so a replay is not a new
 * one. */
static const char v3_sql[] =
	"CREATE TABLE outbox("
	" id INTEGER PRIMARY KEY,"
	" topic TEXT NOT NULL,"
	" msg_key TEXT,"
	" payload TEXT NOT NULL,"
	" created_at REAL NOT NULL);"
	"CREATE TABLE requests("
	" user_id TEXT NOT NULL,"
	" request_id TEXT NOT NULL,"
	" seen_at REAL NOT NULL,"
	" PRIMARY KEY(user_id, request_id)) WITHOUT ROWID;"
	"CREATE INDEX requests_seen ON requests(seen_at);";

/* v4: the operator's views (EV_Central(1) THE PANEL) read sessions
 * newest first, of the whole network or of one CP, driver or outcome, a
 * page at a time: without these each page sorted the whole table (100,000
 * sessions: tens of ms on the main loop). cp_events(cp_id, ts) and the
 * audit_log's own id order already serve the other views. */
static const char v4_sql[] =
	"CREATE INDEX sessions_time ON sessions(requested_at, id);"
	"CREATE INDEX sessions_cp_time ON sessions(cp_id, requested_at, id);"
	"CREATE INDEX sessions_driver_time ON sessions(driver_id, requested_at, id);"
	"CREATE INDEX sessions_outcome_time ON sessions(outcome, requested_at, id);";

/* v5: outbox ids are never reused. With a plain INTEGER PRIMARY KEY,
 * deleting the newest row hands its id to the next notification; Central
 * tracks the rows it has in flight by id, so a new row could be taken for
 * an older one being re-sent and deleted when that one was confirmed,
 * never sent itself (a lost SESSION_CANCELLED, found by chaos_billing).
 * AUTOINCREMENT keeps ids rising for the life of the file. */
static const char v5_sql[] =
	"CREATE TABLE outbox_v5("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" topic TEXT NOT NULL,"
	" msg_key TEXT,"
	" payload TEXT NOT NULL,"
	" created_at REAL NOT NULL);"
	"INSERT INTO outbox_v5(id, topic, msg_key, payload, created_at)"
	" SELECT id, topic, msg_key, payload, created_at FROM outbox ORDER BY id;"
	"DROP TABLE outbox;"
	"ALTER TABLE outbox_v5 RENAME TO outbox;";

/* v6: audit_log_cp goes. No query of ours reads the audit log by CP
 * through it (by time, by id, or a filter over every column), and each
 * FAULT and RECOVER paid for it with a leaf page of its own: about a
 * quarter of the WAL pages of a commit with 1,000 CPs changing state
 * (evcharging(7) DATABASE). audit_log_ts stays: it is appended to. */
static const char v6_sql[] = "DROP INDEX IF EXISTS audit_log_cp;";

/* v7: a CP's history is a chain, not an index. cp_events_cp (cp_id, ts)
 * put every new row's entry on a random leaf: with 1,000 CPs changing
 * state every second it was 9 of the 21 WAL pages of a commit, and about
 * a seventh of Central's CPU. Now each row names the same CP's previous
 * row (prev; 0 for its first) and charging_points.last_event its newest,
 * so a new row is written only at the end of the table (its CP's row is
 * written in the same transaction anyway), and a CP's last N rows are N
 * lookups by id (evcharging(7) DATABASE). Central links the rows it
 * writes itself; the trigger links a row any other program inserts
 * (prev NULL). */
static const char v7_sql[] =
	"ALTER TABLE cp_events ADD COLUMN prev INTEGER;"
	"ALTER TABLE charging_points ADD COLUMN last_event INTEGER;"
	"UPDATE cp_events SET prev = w.p FROM"
	" (SELECT id, LAG(id, 1, 0) OVER (PARTITION BY cp_id ORDER BY id) AS p FROM cp_events) AS w"
	" WHERE cp_events.id = w.id;"
	"UPDATE charging_points SET last_event ="
	" (SELECT max(e.id) FROM cp_events e WHERE e.cp_id = charging_points.id);"
	"DROP INDEX IF EXISTS cp_events_cp;"
	"CREATE TRIGGER cp_events_link AFTER INSERT ON cp_events WHEN NEW.prev IS NULL BEGIN"
	" UPDATE cp_events SET prev = COALESCE((SELECT last_event FROM charging_points WHERE id = NEW.cp_id), 0)"
	"  WHERE id = NEW.id;"
	" UPDATE charging_points SET last_event = NEW.id WHERE id = NEW.cp_id;"
	" END;";

/* Migration i brings a database from version i to i + 1: first fn (if
 * any), then sql (if any), in one transaction. Append only; never edit an
 * entry that has shipped (files out there are already past it). */
struct migration {
	const char *what;
	int (*fn)(sqlite3 *db, char err[EVC_ERR_LEN]);
	const char *sql;
};
static const struct migration migrations[] = {
	{"v1 (Release 1 tables)", v1_complete_tables, v1_sql},
	{"v2 (Release 2 trust: CP credentials, audit_log)", NULL, v2_sql},
	{"v3 (billing integrity: outbox, answered requests)", NULL, v3_sql},
	{"v4 (indexes of the operator's session views)", NULL, v4_sql},
	{"v5 (outbox ids never reused)", NULL, v5_sql},
	{"v6 (no audit_log index by CP)", NULL, v6_sql},
	{"v7 (a CP's history chained by prev, no cp_events index)", NULL, v7_sql},
};
_Static_assert(sizeof migrations / sizeof migrations[0] == SCHEMA_VERSION,
	       "SCHEMA_VERSION must be the number of migrations");

int schema_set_wal(sqlite3 *db, int timeout_ms, char err[EVC_ERR_LEN])
{
	struct timespec nap = {0, 5 * 1000 * 1000};
	for (int waited = 0;; waited += 5) {
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *mode = (const char *)sqlite3_column_text(st, 0);
			int wal = mode != NULL && sqlite3_stricmp(mode, "wal") == 0;
			sqlite3_finalize(st);
			if (wal)
				return 0;
			evc_seterr(err, "%.100s: cannot use WAL mode (journal mode stays %.20s)", db_name(db),
				   mode != NULL ? mode : "?");
			return -1;
		}
		sqlite3_finalize(st);
		if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
			break;
		if (waited >= timeout_ms)
			break;
		nanosleep(&nap, NULL);
	}
	evc_seterr(err, "%.100s: %.100s", db_name(db), sqlite3_errmsg(db));
	return -1;
}

int schema_version(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int too_new(sqlite3 *db, int v, char err[EVC_ERR_LEN])
{
	evc_seterr(err, "%.100s: made by a newer evcharging (schema %d, this program knows up to %d)", db_name(db),
		   v, SCHEMA_VERSION);
	return -1;
}

int schema_migrate(sqlite3 *db, char err[EVC_ERR_LEN])
{
	return schema_migrate_to(db, SCHEMA_VERSION, err);
}

int schema_migrate_to(sqlite3 *db, int target, char err[EVC_ERR_LEN])
{
	if (target > SCHEMA_VERSION)
		target = SCHEMA_VERSION;
	int v = schema_version(db);
	if (v < 0) {
		evc_seterr(err, "%.100s: cannot read the schema version: %.100s", db_name(db), sqlite3_errmsg(db));
		return -1;
	}
	if (v > SCHEMA_VERSION)
		return too_new(db, v, err);
	while (v < target) {
		if (exec(db, "BEGIN IMMEDIATE", "starting a migration", err) == -1)
			return -1;
		/* Read again under the write lock: another program opening the
		 * same file may have migrated it meanwhile. */
		v = schema_version(db);
		if (v < 0 || v > SCHEMA_VERSION) {
			if (v < 0)
				evc_seterr(err, "%.100s: cannot read the schema version: %.100s", db_name(db),
					   sqlite3_errmsg(db));
			else
				too_new(db, v, err);
			goto fail;
		}
		if (v >= target)
			return exec(db, "COMMIT", "ending a migration", err);
		const struct migration *m = &migrations[v];
		char what[160], sql[64];
		snprintf(what, sizeof what, "schema %s", m->what);
		if (m->fn != NULL && m->fn(db, err) == -1)
			goto fail;
		if (m->sql != NULL && exec(db, m->sql, what, err) == -1)
			goto fail;
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
		if (exec(db, sql, what, err) == -1 || exec(db, "COMMIT", what, err) == -1)
			goto fail;
		v++;
	}
	return 0;
fail:
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static int utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n <= max)
		return (int)n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return (int)n;
}

/* Binds one row to st (prepared from SCHEMA_AUDIT_SQL), steps it and
 * resets it for the next. */
int schema_audit_step(sqlite3_stmt *st, double ts, const char *actor, const char *source_ip, const char *action,
		      const char *cp_id, const char *detail, char err[EVC_ERR_LEN])
{
	sqlite3 *db = sqlite3_db_handle(st);
	if (actor == NULL || actor[0] == '\0' || action == NULL || action[0] == '\0') {
		evc_seterr(err, "audit row without actor or action");
		return -1;
	}
	sqlite3_bind_double(st, 1, ts);
	sqlite3_bind_text(st, 2, actor, utf8_cut(actor, 128), SQLITE_STATIC);
	if (source_ip != NULL)
		sqlite3_bind_text(st, 3, source_ip, utf8_cut(source_ip, 64), SQLITE_STATIC);
	sqlite3_bind_text(st, 4, action, utf8_cut(action, 64), SQLITE_STATIC);
	if (cp_id != NULL)
		sqlite3_bind_text(st, 5, cp_id, utf8_cut(cp_id, 64), SQLITE_STATIC);
	if (detail != NULL)
		sqlite3_bind_text(st, 6, detail, utf8_cut(detail, SCHEMA_AUDIT_DETAIL_MAX), SQLITE_STATIC);
	int ok = sqlite3_step(st) == SQLITE_DONE;
	if (!ok)
		evc_seterr(err, "%.100s: writing the audit log: %.100s", db_name(db), sqlite3_errmsg(db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ok ? 0 : -1;
}

/* Prepared on each call, for the tools that write an audit row now and
 * then (EV_Registry): a cached statement would have to be finalized by
 * every caller before sqlite3_close. Central, which writes one per CP
 * fault and recovery, keeps its own prepared SCHEMA_AUDIT_SQL. */
int schema_audit(sqlite3 *db, double ts, const char *actor, const char *source_ip, const char *action,
		 const char *cp_id, const char *detail, char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, SCHEMA_AUDIT_SQL, -1, &st, NULL) != SQLITE_OK) {
		evc_seterr(err, "%.100s: writing the audit log: %.100s", db_name(db), sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return -1;
	}
	int rc = schema_audit_step(st, ts, actor, source_ip, action, cp_id, detail, err);
	sqlite3_finalize(st);
	return rc;
}
