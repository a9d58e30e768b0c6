/* The database schema (evcharging(7) DATABASE) as numbered forward
 * migrations on PRAGMA user_version, shared by every program that opens
 * the network's SQLite file (EV_Central, EV_Registry). Each migration runs
 * in a transaction of its own (BEGIN IMMEDIATE, so two programs opening
 * the same file at once cannot both apply it) and sets user_version to its
 * number in that same transaction.
 *
 *   v1  the Release 1 tables: charging_points, drivers, sessions, cp_events.
 *       Also upgrades a file holding only the documented columns of those
 *       tables (every missing column is added with its default).
 *   v2  Release 2 trust: charging_points gets secret_hash, registered_at,
 *       cp_key, key_issued_at, revoked, deleted_at, reg_rev; the
 *       append-only audit_log table (evcharging(7) SECURITY).
 *   v3  billing integrity: the outbox of notifications not yet delivered
 *       and the requests already answered (evcharging(7) RULES).
 *   v4  indexes for the panel's session views: sessions by time, and by
 *       CP, driver or outcome then time (EV_Central(1) THE PANEL).
 *   v5  outbox ids never reused (AUTOINCREMENT).
 *   v6  no audit_log index by CP.
 *   v7  a CP's history is chained (cp_events.prev, charging_points.last_event)
 *       instead of indexed by (cp_id, ts).
 *
 * A new migration is one more entry at the end of the table in schema.c
 * and SCHEMA_VERSION + 1. */
#ifndef EVC_SCHEMA_H
#define EVC_SCHEMA_H
#include <sqlite3.h>

#include "evc/err.h"

#define SCHEMA_VERSION 7 /* latest */

/* The start of a query of one CP's last cp_events rows (v7): "chain" is
 * the ids of the CP's newest ?2 rows, following prev from
 * charging_points.last_event (?1 the CP's id), and stops at a row of
 * another CP and at a prev that does not go back (a row id reused after
 * a delete could otherwise make a loop: ids only grow along a chain).
 * Add " SELECT ... FROM chain JOIN cp_events ...". */
#define EVENTS_CHAIN_SQL                                                                            \
	"WITH RECURSIVE chain(id, n) AS ("                                                           \
	" SELECT last_event, 1 FROM charging_points WHERE id = ?1 AND last_event > 0"                \
	" UNION ALL SELECT e.prev, chain.n + 1 FROM chain JOIN cp_events e"                         \
	" ON e.id = chain.id AND e.cp_id = ?1 WHERE e.prev > 0 AND e.prev < e.id AND chain.n < ?2)"

/* Bring db to SCHEMA_VERSION (no transaction may be open on db). A
 * database newer than this program knows is refused ("FILE: made by a
 * newer evcharging (schema N, this program knows up to M)"), and so is a
 * file that is not a database. The caller sets busy_timeout and WAL mode
 * first, as every program sharing the file does: another one may hold the
 * write lock, and in WAL mode its readers never stall a migration's
 * COMMIT. 0 or -1 with err. */
int schema_migrate(sqlite3 *db, char err[EVC_ERR_LEN]);
/* PRAGMA journal_mode=WAL, retried for up to timeout_ms while another
 * connection holds a lock: SQLite refuses the switch at once (its busy
 * handler is not called for it), so two programs opening a new file
 * together would otherwise see "database is locked". 0, or -1 with err
 * ("file is not a database", ...). */
int schema_set_wal(sqlite3 *db, int timeout_ms, char err[EVC_ERR_LEN]);
/* The same, up to version target only (tests, and tools that must stop at
 * a version); a file already at or past target is left as it is. */
int schema_migrate_to(sqlite3 *db, int target, char err[EVC_ERR_LEN]);
/* PRAGMA user_version, or -1 if it cannot be read (not a database...). */
int schema_version(sqlite3 *db);

/* Append one audit_log row (evcharging(7) SECURITY). The caller holds the
 * transaction of the change it records, so both are written or neither.
 * actor and action must be non-empty; source_ip, cp_id and detail may be
 * NULL. detail is text a person reads and must never hold a secret, key or
 * token; it is cut to SCHEMA_AUDIT_DETAIL_MAX bytes (at a UTF-8 character
 * boundary) so a peer cannot grow the log by sending long values. */
#define SCHEMA_AUDIT_DETAIL_MAX 512
int schema_audit(sqlite3 *db, double ts, const char *actor, const char *source_ip, const char *action,
		 const char *cp_id, const char *detail, char err[EVC_ERR_LEN]);
/* The same with a statement the caller prepared from SCHEMA_AUDIT_SQL on
 * its connection and keeps (a writer of many rows: preparing the INSERT
 * each time cost more than the insert itself). st is reset afterwards. */
#define SCHEMA_AUDIT_SQL                                                                                  \
	"INSERT INTO audit_log(ts, actor, source_ip, action, cp_id, detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
int schema_audit_step(sqlite3_stmt *st, double ts, const char *actor, const char *source_ip, const char *action,
		      const char *cp_id, const char *detail, char err[EVC_ERR_LEN]);

/* The next value of the network-wide registry change counter, as an SQL
 * expression for UPDATE/INSERT statements: every change the registry
 * makes to a charging_points row sets that row's reg_rev to it, so a
 * reader that remembers the highest reg_rev it has seen loads what changed
 * since with "WHERE reg_rev > ?". Valid only inside the writer's
 * transaction (BEGIN IMMEDIATE holds the write lock, so no two changes get
 * the same number). */
#define SCHEMA_NEXT_REG_REV "(SELECT COALESCE(MAX(reg_rev), 0) + 1 FROM charging_points)"

#endif
