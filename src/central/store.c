#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "evc/clock.h"
#include "evc/crypto.h"
#include "evc/hmap.h"
#include "evc/money.h"
#include "evc/msg.h"
#include "evc/schema.h"
#include "evc/xalloc.h"
#include "src/central/store.h"

enum {
	ST_CP_UPSERT,
	ST_SESSION_UPSERT,
	ST_EVENT,
	ST_DRIVER_KNOWN,
	ST_DRIVER_ADD,
	ST_CP_ADD,
	ST_CP_EXISTS,
	ST_BEGIN,
	ST_COMMIT,
	ST_REQUEST_SEEN,
	ST_REQUEST_PRUNE,
	ST_OUTBOX_ADD,
	ST_OUTBOX_DELETE,
	ST_CP_KEY,
	ST_DATA_VERSION,
	ST_AUDIT,
	ST_HEAD_GET,
	ST_HEAD_PUT,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_CP_UPSERT] =
		"INSERT INTO charging_points(id, location, price, status, stopped, fault, state_since, updated_at,"
		" last_event)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
		" ON CONFLICT(id) DO UPDATE SET location=excluded.location, price=excluded.price,"
		" status=excluded.status, stopped=excluded.stopped, fault=excluded.fault,"
		" state_since=excluded.state_since, updated_at=excluded.updated_at,"
		" last_event=COALESCE(excluded.last_event, last_event)",
	/* WHERE outcome IS NULL: a session is ended exactly once, whatever is
	 * replayed after a crash. */
	[ST_SESSION_UPSERT] =
		"INSERT INTO sessions(id, cp_id, driver_id, request_id, kwh, importe, price, kw, outcome, reason,"
		" last_seq, acked, charging, requested_at, authorised_at, started_at, ended_at)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
		" ON CONFLICT(id) DO UPDATE SET kwh=excluded.kwh, importe=excluded.importe,"
		" price=excluded.price, kw=excluded.kw, outcome=excluded.outcome, reason=excluded.reason,"
		" last_seq=excluded.last_seq, acked=excluded.acked, charging=excluded.charging,"
		" authorised_at=excluded.authorised_at, started_at=excluded.started_at,"
		" ended_at=excluded.ended_at"
		" WHERE sessions.outcome IS NULL",
	/* prev: the CP's newest row before this one (struct head). */
	[ST_EVENT] = "INSERT INTO cp_events(cp_id, ts, event, detail, prev) VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_DRIVER_KNOWN] = "SELECT 1 FROM drivers WHERE id = ?1",
	[ST_DRIVER_ADD] =
		"INSERT INTO drivers(id, name, created_at) VALUES(?1, ?2, ?3)"
		" ON CONFLICT(id) DO UPDATE SET name=excluded.name",
	/* reg_rev: a running Central loads what changed (evcharging(7)
	 * DATABASE), so --add-cp is seen at once. */
	[ST_CP_ADD] =
		"INSERT INTO charging_points(id, location, price, status, updated_at, reg_rev)"
		" VALUES(?1, ?2, ?3, 'DESCONECTADO', ?4, " SCHEMA_NEXT_REG_REV ")"
		" ON CONFLICT(id) DO UPDATE SET location=excluded.location, price=excluded.price,"
		" updated_at=excluded.updated_at, reg_rev=excluded.reg_rev",
	[ST_CP_EXISTS] = "SELECT 1 FROM charging_points WHERE id = ?1",
	/* Prepared once: at a few hundred transactions a second, parsing
	 * these two again each time was a visible part of the main thread. */
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_REQUEST_SEEN] = "INSERT OR IGNORE INTO requests(user_id, request_id, seen_at) VALUES(?1, ?2, ?3)",
	[ST_REQUEST_PRUNE] = "DELETE FROM requests WHERE seen_at < ?1",
	[ST_OUTBOX_ADD] = "INSERT INTO outbox(topic, msg_key, payload, created_at) VALUES(?1, ?2, ?3, ?4)",
	[ST_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?1",
	/* The key is Central's to keep (it must send it on every REGISTER);
	 * key_issued_at stays the time of the first one. */
	[ST_CP_KEY] = "UPDATE charging_points SET cp_key = ?2, revoked = ?3,"
		      " key_issued_at = CASE WHEN ?2 IS NULL THEN key_issued_at ELSE COALESCE(key_issued_at, ?4) END"
		      " WHERE id = ?1",
	[ST_DATA_VERSION] = "PRAGMA data_version",
	/* One row per CP fault and recovery (evcharging(7) SECURITY). */
	[ST_AUDIT] = SCHEMA_AUDIT_SQL,
	[ST_HEAD_GET] = "SELECT last_event FROM charging_points WHERE id = ?1",
	[ST_HEAD_PUT] = "UPDATE charging_points SET last_event = ?2 WHERE id = ?1",
};

/* The newest cp_events row of a CP, as this connection last wrote or read
 * it: the next row's prev (evcharging(7) DATABASE, cp_events). A row
 * changed in the open transaction is dirty until charging_points has it:
 * the CP's own upsert carries it when one follows in the transaction
 * (the core stores a CP after its event), store_commit writes the rest.
 * Rebuilt from the file after a rollback or another program's commit. */
struct head {
	int64_t id; /* 0: the CP has no row yet */
	int dirty;
	char cp_id[];
};

/* A cache: past this many CPs it starts over (a peer inventing ids). */
#define HEADS_MAX 65536

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	int in_txn;
	char path[1024];
	/* store_start_checkpointer: WAL checkpoints on a thread of their own */
	pthread_t ckpt;
	int ckpt_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ckpt_stop;
	/* Set by the writer when it asks, cleared once that checkpoint ran:
	 * one wakeup per checkpoint, not one per commit while it runs. */
	atomic_int ckpt_asked;
	struct hmap heads; /* cp_id -> struct head */
	struct head **dirty;
	size_t ndirty, capdirty;
	int heads_dv; /* PRAGMA data_version the heads were read under */
};

static void heads_forget(struct store *s);
static int heads_flush(struct store *s, char err[EVC_ERR_LEN]);

static int fail_db(struct store *s, const char *what, char err[EVC_ERR_LEN])
{
	snprintf(err, EVC_ERR_LEN, "%.100s: %.40s: %.100s", s->path, what, sqlite3_errmsg(s->db));
	return -1;
}

static int exec_sql(struct store *s, const char *sql, char err[EVC_ERR_LEN])
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, EVC_ERR_LEN, "%.100s: %.140s", s->path, msg != NULL ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

struct store *store_open(const char *path, char err[EVC_ERR_LEN])
{
	struct store *s = xcalloc(1, sizeof *s);
	xstrlcpy(s->path, path, sizeof s->path);
	int rc = sqlite3_open_v2(path, &s->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, EVC_ERR_LEN, "%s: cannot open database: %s", path,
			 s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	/* A concurrent --add-driver holds the write lock only briefly. */
	sqlite3_busy_timeout(s->db, 5000);
	/* journal_mode answers with a row; a file that is not a database fails
	 * here with "file is not a database". */
	if (exec_sql(s, "PRAGMA journal_mode=WAL", err) == -1)
		goto fail;
	/* FULL: a COMMIT is on disk before Central acts on it (a frame sent,
	 * a ticket produced); NORMAL could lose the last transactions to a
	 * power cut after their effects went out (evcharging(7) DATABASE). */
	if (exec_sql(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF", err) == -1)
		goto fail;
	/* The tables (evcharging(7) DATABASE) come from the numbered
	 * migrations EV_Registry shares; they refuse a newer file. */
	if (schema_migrate(s->db, err) == -1)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
		    SQLITE_OK) {
			fail_db(s, "prepare", err);
			goto fail;
		}
	}
	return s;
fail:
	store_close(s);
	return NULL;
}

/* WAL pages that make the main thread ask for a checkpoint (SQLite's own
 * automatic checkpoint default). */
#define CKPT_PAGES 1000

/* Runs on the main thread after every commit (sqlite3_wal_hook): only a
 * signal, the checkpoint itself is the other thread's. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct store *s = arg;
	/* A checkpoint running beside a writer that never pauses never catches
	 * up, and the WAL starts over only once one has: past 10x the mark the
	 * writer checkpoints itself, between two transactions, as SQLite's
	 * automatic checkpoint would (a rare stall instead of a WAL without
	 * bound). */
	if (pages >= 10 * CKPT_PAGES) {
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		return SQLITE_OK;
	}
	if (pages >= CKPT_PAGES && atomic_exchange(&s->ckpt_asked, 1) == 0) {
		pthread_mutex_lock(&s->mu);
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	return SQLITE_OK;
}

static void *checkpointer(void *arg)
{
	struct store *s = arg;
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		db = NULL; /* the main connection's fallback below still works */
	} else {
		sqlite3_busy_timeout(db, 1000);
		/* A connection learns that the file is in WAL mode only when it
		 * first reads it; until then sqlite3_wal_checkpoint_v2 returns OK
		 * and does nothing (log and checkpointed -1), and the WAL grew to
		 * the writer's own checkpoint at 10x the mark. */
		if (sqlite3_exec(db, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL, NULL, NULL) != SQLITE_OK) {
			sqlite3_close(db);
			db = NULL;
		}
	}
	pthread_mutex_lock(&s->mu);
	while (!s->ckpt_stop) {
		if (!atomic_load(&s->ckpt_asked)) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		pthread_mutex_unlock(&s->mu);
		/* PASSIVE: copies what no reader still needs and never blocks
		 * the writer; what it leaves goes in the next round. */
		if (db != NULL)
			sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		atomic_store(&s->ckpt_asked, 0);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	sqlite3_close(db);
	return NULL;
}

int store_start_checkpointer(struct store *s, char err[EVC_ERR_LEN])
{
	if (s->ckpt_started)
		return 0;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	int rc = pthread_create(&s->ckpt, NULL, checkpointer, s);
	if (rc != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		snprintf(err, EVC_ERR_LEN, "%.100s: cannot start the checkpoint thread: %s", s->path, strerror(rc));
		return -1;
	}
	s->ckpt_started = 1;
	/* Commits on the main thread no longer checkpoint (a checkpoint writes
	 * the db file and fsyncs it: tens of ms on a busy disk, during which
	 * no event was handled). */
	sqlite3_wal_autocheckpoint(s->db, 0);
	sqlite3_wal_hook(s->db, wal_hook, s);
	return 0;
}

void store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->ckpt_started) {
		pthread_mutex_lock(&s->mu);
		s->ckpt_stop = 1;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->ckpt, NULL);
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		sqlite3_wal_hook(s->db, NULL, NULL);
	}
	if (s->in_txn && s->db != NULL) {
		char err[EVC_ERR_LEN];
		if (heads_flush(s, err) == 0)
			sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
		else
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	heads_forget(s);
	hmap_free(&s->heads);
	free(s->dirty);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db != NULL)
		sqlite3_close(s->db);
	free(s);
}

static int step_done(struct store *s, sqlite3_stmt *st, const char *what, char err[EVC_ERR_LEN])
{
	int rc = sqlite3_step(st);
	int ret = 0;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = fail_db(s, what, err);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

static void heads_forget(struct store *s)
{
	struct head *h;
	for (size_t i = 0; (h = hmap_next(&s->heads, &i)) != NULL;)
		free(h);
	hmap_clear(&s->heads);
	s->ndirty = 0;
}

/* The CP's head, read from charging_points the first time. NULL with err. */
static struct head *head_get(struct store *s, const char *cp_id, char err[EVC_ERR_LEN])
{
	struct head *h = hmap_sget(&s->heads, cp_id);
	if (h != NULL)
		return h;
	sqlite3_stmt *st = s->st[ST_HEAD_GET];
	sqlite3_bind_text(st, 1, cp_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int64_t id = rc == SQLITE_ROW ? (int64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		fail_db(s, "read the CP's last event", err);
		return NULL;
	}
	size_t n = strlen(cp_id) + 1;
	h = xmalloc(sizeof *h + n);
	h->id = id;
	h->dirty = 0;
	memcpy(h->cp_id, cp_id, n);
	hmap_sput(&s->heads, h->cp_id, h);
	return h;
}

/* The heads the open transaction moved and no upsert carried. */
static int heads_flush(struct store *s, char err[EVC_ERR_LEN])
{
	for (size_t i = 0; i < s->ndirty; i++) {
		struct head *h = s->dirty[i];
		if (!h->dirty)
			continue;
		sqlite3_stmt *st = s->st[ST_HEAD_PUT];
		sqlite3_bind_text(st, 1, h->cp_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)h->id);
		if (step_done(s, st, "store the CP's last event", err) == -1)
			return -1;
		h->dirty = 0;
	}
	s->ndirty = 0;
	return 0;
}

int store_begin(struct store *s, char err[EVC_ERR_LEN])
{
	if (s->in_txn)
		return 0;
	if (step_done(s, s->st[ST_BEGIN], "BEGIN", err) == -1)
		return -1;
	s->in_txn = 1;
	/* Another program committed (a row its trigger linked, a CP
	 * deleted): the heads are read again. */
	int dv = store_data_version(s);
	if (dv != s->heads_dv) {
		heads_forget(s);
		s->heads_dv = dv;
	}
	return 0;
}

int store_commit(struct store *s, char err[EVC_ERR_LEN])
{
	if (!s->in_txn)
		return 0;
	if (heads_flush(s, err) == -1 || step_done(s, s->st[ST_COMMIT], "COMMIT", err) == -1) {
		store_rollback(s);
		return -1;
	}
	s->in_txn = 0;
	if (hmap_count(&s->heads) > HEADS_MAX)
		heads_forget(s);
	return 0;
}


void store_rollback(struct store *s)
{
	if (!s->in_txn)
		return;
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->in_txn = 0;
	heads_forget(s);
}

static void bind_time(sqlite3_stmt *st, int i, double t)
{
	if (t > 0)
		sqlite3_bind_double(st, i, t);
	else
		sqlite3_bind_null(st, i);
}

int store_apply(struct store *s, const struct core_fx *fx, char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st;
	switch (fx->kind) {
	case CORE_FX_STORE_CP: {
		const struct core_cp_row *cp = &fx->u.cp;
		st = s->st[ST_CP_UPSERT];
		sqlite3_bind_text(st, 1, cp->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, cp->location, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 3, cp->price);
		sqlite3_bind_text(st, 4, cp_state_name(cp->state), -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, cp->stopped);
		sqlite3_bind_int(st, 6, cp->fault);
		bind_time(st, 7, cp->state_since);
		bind_time(st, 8, fx->ts > 0 ? fx->ts : clock_wall());
		struct head *h = hmap_sget(&s->heads, cp->id);
		if (h != NULL && h->id > 0)
			sqlite3_bind_int64(st, 9, (sqlite3_int64)h->id);
		if (step_done(s, st, "store charging point", err) == -1)
			return -1;
		if (h != NULL)
			h->dirty = 0;
		return 0;
	}
	case CORE_FX_STORE_SESSION: {
		const struct core_session *ss = &fx->u.session;
		st = s->st[ST_SESSION_UPSERT];
		sqlite3_bind_text(st, 1, ss->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, ss->cp_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, ss->driver_id, -1, SQLITE_STATIC);
		if (ss->request_id[0] != '\0')
			sqlite3_bind_text(st, 4, ss->request_id, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 5, ss->kwh);
		sqlite3_bind_double(st, 6, ss->importe);
		sqlite3_bind_double(st, 7, ss->price);
		sqlite3_bind_double(st, 8, ss->kw);
		const char *out = core_outcome_name(ss->outcome);
		if (out != NULL)
			sqlite3_bind_text(st, 9, out, -1, SQLITE_STATIC);
		if (ss->reason[0] != '\0')
			sqlite3_bind_text(st, 10, ss->reason, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 11, (sqlite3_int64)ss->last_seq);
		sqlite3_bind_int(st, 12, ss->acked);
		sqlite3_bind_int(st, 13, ss->charging);
		bind_time(st, 14, ss->requested_at);
		bind_time(st, 15, ss->authorised_at);
		bind_time(st, 16, ss->started_at);
		bind_time(st, 17, ss->ended_at);
		return step_done(s, st, "store session", err);
	}
	case CORE_FX_KEY:
		if (!fx->u.key.store)
			return 0;
		st = s->st[ST_CP_KEY];
		sqlite3_bind_text(st, 1, fx->u.key.cp_id, -1, SQLITE_STATIC);
		if (fx->u.key.key[0] != '\0')
			sqlite3_bind_text(st, 2, fx->u.key.key, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, fx->u.key.revoked);
		sqlite3_bind_double(st, 4, fx->ts > 0 ? fx->ts : clock_wall());
		return step_done(s, st, "store the CP's key", err);
	case CORE_FX_AUDIT:
		return schema_audit_step(s->st[ST_AUDIT], fx->ts > 0 ? fx->ts : clock_wall(), fx->u.audit.actor,
					 fx->u.audit.source_ip[0] ? fx->u.audit.source_ip : NULL, fx->u.audit.action,
					 fx->u.audit.cp_id[0] ? fx->u.audit.cp_id : NULL,
					 fx->u.audit.detail[0] ? fx->u.audit.detail : NULL, err);
	case CORE_FX_STORE_REQUEST:
		st = s->st[ST_REQUEST_SEEN];
		sqlite3_bind_text(st, 1, fx->u.seen.user_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, fx->u.seen.request_id, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 3, fx->ts > 0 ? fx->ts : clock_wall());
		return step_done(s, st, "store answered request", err);
	case CORE_FX_PRUNE_REQUESTS:
		st = s->st[ST_REQUEST_PRUNE];
		sqlite3_bind_double(st, 1, fx->u.prune.before);
		return step_done(s, st, "forget old requests", err);
	case CORE_FX_STORE_EVENT: {
		struct head *h = head_get(s, fx->u.event.cp_id, err);
		if (h == NULL)
			return -1;
		st = s->st[ST_EVENT];
		sqlite3_bind_text(st, 1, fx->u.event.cp_id, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 2, fx->ts > 0 ? fx->ts : clock_wall());
		sqlite3_bind_text(st, 3, fx->u.event.event, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, fx->u.event.detail, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)h->id);
		if (step_done(s, st, "store event", err) == -1)
			return -1;
		h->id = (int64_t)sqlite3_last_insert_rowid(s->db);
		if (!h->dirty) {
			h->dirty = 1;
			if (s->ndirty == s->capdirty) {
				s->capdirty = s->capdirty ? 2 * s->capdirty : 64;
				s->dirty = xrealloc(s->dirty, s->capdirty * sizeof *s->dirty);
			}
			s->dirty[s->ndirty++] = h;
		}
		return 0;
	}
	default:
		return 0;
	}
}

int store_mark_all_disconnected(struct store *s, double now, char err[EVC_ERR_LEN])
{
	char sql[512];
	snprintf(sql, sizeof sql,
		 "BEGIN IMMEDIATE;"
		 "INSERT INTO cp_events(cp_id, ts, event, detail)"
		 " SELECT id, %.6f, 'STATE', 'DESCONECTADO (Central started, was ' || status || ')'"
		 " FROM charging_points WHERE status <> 'DESCONECTADO';"
		 "UPDATE charging_points SET status='DESCONECTADO', state_since=%.6f, updated_at=%.6f"
		 " WHERE status <> 'DESCONECTADO';"
		 "COMMIT;",
		 now, now, now);
	/* The new rows are linked by the schema's trigger (prev NULL), which
	 * moves last_event behind the heads' back. */
	heads_forget(s);
	if (exec_sql(s, sql, err) == -1) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t != NULL ? (const char *)t : "";
}

int store_foreach_cp(struct store *s, void (*fn)(void *arg, const struct core_cp_row *cp), void *arg,
		     char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = NULL;
	int n = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT id, location, price, stopped FROM charging_points ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK)
		return fail_db(s, "load charging points", err);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct core_cp_row r;
		memset(&r, 0, sizeof r);
		xstrlcpy(r.id, col_text(st, 0), sizeof r.id);
		xstrlcpy(r.location, col_text(st, 1), sizeof r.location);
		r.price = sqlite3_column_double(st, 2);
		r.stopped = sqlite3_column_int(st, 3);
		r.state = CP_DESCONECTADO;
		fn(arg, &r);
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail_db(s, "load charging points", err);
	return n;
}

int store_foreach_driver(struct store *s, void (*fn)(void *arg, const char *driver_id), void *arg,
			 char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = NULL;
	int n = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT id FROM drivers ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return fail_db(s, "load drivers", err);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fn(arg, col_text(st, 0));
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail_db(s, "load drivers", err);
	return n;
}

int store_data_version(struct store *s)
{
	sqlite3_stmt *st = s->st[ST_DATA_VERSION];
	int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_reset(st);
	return v;
}

int64_t store_foreach_reg(struct store *s, int64_t since,
			  void (*fn)(void *arg, const struct core_reg *r), void *arg, char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = NULL;
	int64_t max = since < 0 ? 0 : since;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT id, location, price, secret_hash, cp_key, key_issued_at, revoked, deleted_at,"
			       " reg_rev FROM charging_points WHERE reg_rev > ?1 ORDER BY reg_rev",
			       -1, &st, NULL) != SQLITE_OK)
		return fail_db(s, "load the registry", err);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)since);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct core_reg r;
		memset(&r, 0, sizeof r);
		xstrlcpy(r.id, col_text(st, 0), sizeof r.id);
		xstrlcpy(r.location, col_text(st, 1), sizeof r.location);
		r.price = sqlite3_column_double(st, 2);
		xstrlcpy(r.secret_hash, col_text(st, 3), sizeof r.secret_hash);
		xstrlcpy(r.key, col_text(st, 4), sizeof r.key);
		r.key_ever = sqlite3_column_type(st, 5) != SQLITE_NULL;
		r.revoked = sqlite3_column_int(st, 6);
		r.deleted = sqlite3_column_type(st, 7) != SQLITE_NULL;
		int64_t rev = (int64_t)sqlite3_column_int64(st, 8);
		if (rev > max)
			max = rev;
		fn(arg, &r);
		crypto_wipe(r.key, sizeof r.key);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail_db(s, "load the registry", err);
	return max;
}

int store_audit_read(const char *path, double since, const char *cp_id,
		     void (*fn)(void *arg, const struct store_audit_row *r), void *arg, char err[EVC_ERR_LEN])
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		snprintf(err, EVC_ERR_LEN, "%.150s: cannot open: %.80s", path, db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db,
			       "SELECT ts, actor, source_ip, action, cp_id, detail FROM audit_log"
			       " WHERE ts >= ?1 AND (?2 IS NULL OR cp_id = ?2) ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, EVC_ERR_LEN, "%.150s: no audit log here: %.80s", path, sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_bind_double(st, 1, since);
	if (cp_id != NULL)
		sqlite3_bind_text(st, 2, cp_id, -1, SQLITE_STATIC);
	int rc;
	n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_audit_row r;
		memset(&r, 0, sizeof r);
		r.ts = sqlite3_column_double(st, 0);
		xstrlcpy(r.actor, col_text(st, 1), sizeof r.actor);
		xstrlcpy(r.source_ip, col_text(st, 2), sizeof r.source_ip);
		xstrlcpy(r.action, col_text(st, 3), sizeof r.action);
		xstrlcpy(r.cp_id, col_text(st, 4), sizeof r.cp_id);
		xstrlcpy(r.detail, col_text(st, 5), sizeof r.detail);
		fn(arg, &r);
		n++;
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, EVC_ERR_LEN, "%.150s: reading the audit log: %.80s", path, sqlite3_errmsg(db));
		n = -1;
	}
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

int store_foreach_request(struct store *s, double since,
			  void (*fn)(void *arg, const char *user_id, const char *request_id, double seen_at), void *arg,
			  char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = NULL;
	int n = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT user_id, request_id, seen_at FROM requests WHERE seen_at >= ?1"
				      " ORDER BY seen_at",
			       -1, &st, NULL) != SQLITE_OK)
		return fail_db(s, "load answered requests", err);
	sqlite3_bind_double(st, 1, since);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fn(arg, col_text(st, 0), col_text(st, 1), sqlite3_column_double(st, 2));
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail_db(s, "load answered requests", err);
	return n;
}

int64_t store_outbox_add(struct store *s, const char *topic, const char *key, const char *payload, double now,
			 char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = s->st[ST_OUTBOX_ADD];
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	if (key != NULL && key[0] != '\0')
		sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, payload, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 4, now);
	if (step_done(s, st, "store notification", err) == -1)
		return -1;
	return (int64_t)sqlite3_last_insert_rowid(s->db);
}

int store_outbox_delete(struct store *s, int64_t id, char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = s->st[ST_OUTBOX_DELETE];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
	return step_done(s, st, "forget delivered notification", err);
}

int store_outbox_scan(struct store *s, int64_t after, int max,
		      void (*fn)(void *arg, int64_t id, const char *topic, const char *key, const char *payload),
		      void *arg, char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = NULL;
	int n = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT id, topic, msg_key, payload FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
			       -1, &st, NULL) != SQLITE_OK)
		return fail_db(s, "read the outbox", err);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)after);
	sqlite3_bind_int(st, 2, max);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fn(arg, (int64_t)sqlite3_column_int64(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3));
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail_db(s, "read the outbox", err);
	return n;
}

int store_foreach_open_session(struct store *s, void (*fn)(void *arg, const struct core_session *ss),
			       void *arg, char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = NULL;
	int n = 0;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT id, cp_id, driver_id, request_id, kwh, importe, price, kw, last_seq, acked,"
			       " charging, requested_at, authorised_at, started_at, ended_at"
			       " FROM sessions WHERE outcome IS NULL ORDER BY requested_at, id",
			       -1, &st, NULL) != SQLITE_OK)
		return fail_db(s, "load open sessions", err);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct core_session ss;
		memset(&ss, 0, sizeof ss);
		xstrlcpy(ss.id, col_text(st, 0), sizeof ss.id);
		xstrlcpy(ss.cp_id, col_text(st, 1), sizeof ss.cp_id);
		xstrlcpy(ss.driver_id, col_text(st, 2), sizeof ss.driver_id);
		xstrlcpy(ss.request_id, col_text(st, 3), sizeof ss.request_id);
		ss.kwh = sqlite3_column_double(st, 4);
		ss.importe = sqlite3_column_double(st, 5);
		ss.price = sqlite3_column_double(st, 6);
		ss.kw = sqlite3_column_double(st, 7);
		ss.last_seq = (uint64_t)sqlite3_column_int64(st, 8);
		ss.acked = sqlite3_column_int(st, 9);
		ss.charging = sqlite3_column_int(st, 10);
		ss.requested_at = sqlite3_column_double(st, 11);
		ss.authorised_at = sqlite3_column_double(st, 12);
		ss.started_at = sqlite3_column_double(st, 13);
		ss.ended_at = sqlite3_column_double(st, 14);
		ss.outcome = CORE_OUT_OPEN;
		fn(arg, &ss);
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail_db(s, "load open sessions", err);
	return n;
}

int store_driver_known(void *store, const char *driver_id)
{
	struct store *s = store;
	sqlite3_stmt *st = s->st[ST_DRIVER_KNOWN];
	sqlite3_bind_text(st, 1, driver_id, -1, SQLITE_STATIC);
	int known = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return known;
}

static int exists(struct store *s, int which, const char *id)
{
	sqlite3_stmt *st = s->st[which];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return found;
}

int store_add_driver(struct store *s, const char *id, const char *name, int *created,
		     char err[EVC_ERR_LEN])
{
	if (!msg_valid_user_id(id)) {
		snprintf(err, EVC_ERR_LEN, "invalid driver id '%s' (1..64 of A-Z a-z 0-9 _ . @ -)", id);
		return -1;
	}
	if (name != NULL && (strlen(name) > 128 || !msg_valid_text(name))) {
		snprintf(err, EVC_ERR_LEN, "invalid driver name for '%s' (up to 128 bytes of UTF-8 text)", id);
		return -1;
	}
	int isnew = !exists(s, ST_DRIVER_KNOWN, id);
	sqlite3_stmt *st = s->st[ST_DRIVER_ADD];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (name != NULL && name[0] != '\0')
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 3, clock_wall());
	if (step_done(s, st, "add driver", err) == -1)
		return -1;
	if (created != NULL)
		*created = isnew;
	return 0;
}

int store_add_cp(struct store *s, const char *id, const char *location, double price, int *created,
		 char err[EVC_ERR_LEN])
{
	if (!msg_valid_cp_id(id)) {
		snprintf(err, EVC_ERR_LEN, "invalid CP id '%s' (1..32 of A-Z a-z 0-9 _ -)", id);
		return -1;
	}
	const char *bad_loc = msg_check_location(location);
	if (bad_loc != NULL) {
		snprintf(err, EVC_ERR_LEN, "invalid location for '%s': %s (1..64 UTF-8 characters, no '#')", id,
			 bad_loc);
		return -1;
	}
	if (!money_price_ok(price)) {
		snprintf(err, EVC_ERR_LEN, "invalid price for '%s' (greater than 0, at most 100)", id);
		return -1;
	}
	int isnew = !exists(s, ST_CP_EXISTS, id);
	sqlite3_stmt *st = s->st[ST_CP_ADD];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, location, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 3, price);
	sqlite3_bind_double(st, 4, clock_wall());
	if (step_done(s, st, "add charging point", err) == -1)
		return -1;
	if (created != NULL)
		*created = isnew;
	return 0;
}

/* Next blank-separated word of *p (NUL-terminated in place), or NULL. */
static char *next_word(char **p)
{
	char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return NULL;
	char *w = s;
	while (*s != '\0' && *s != ' ' && *s != '\t')
		s++;
	if (*s != '\0')
		*s++ = '\0';
	*p = s;
	return w;
}

static char *rest_of_line(char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		p[--n] = '\0';
	return p;
}

int store_import(struct store *s, const char *path, int *ndrivers, int *ncps, char err[EVC_ERR_LEN])
{
	char why[EVC_ERR_LEN];
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, EVC_ERR_LEN, "%s: %s", path, strerror(errno));
		return -1;
	}
	int nd = 0, nc = 0;
	long lineno = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	if (store_begin(s, err) == -1)
		goto fail_nodb;
	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		if ((size_t)len != strlen(line)) {
			snprintf(err, EVC_ERR_LEN, "%s:%ld: NUL byte in line", path, lineno);
			goto fail;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		char *p = line;
		char *kw = next_word(&p);
		if (kw == NULL || kw[0] == '#')
			continue;
		if (strcmp(kw, "driver") == 0) {
			char *id = next_word(&p);
			if (id == NULL) {
				snprintf(err, EVC_ERR_LEN, "%s:%ld: expected 'driver ID [NAME...]'", path, lineno);
				goto fail;
			}
			if (store_add_driver(s, id, rest_of_line(p), NULL, why) == -1) {
				snprintf(err, EVC_ERR_LEN, "%.80s:%ld: %.150s", path, lineno, why);
				goto fail;
			}
			nd++;
		} else if (strcmp(kw, "cp") == 0) {
			char *id = next_word(&p);
			char *price_s = id != NULL ? next_word(&p) : NULL;
			char *loc = price_s != NULL ? rest_of_line(p) : NULL;
			double price;
			if (loc == NULL || loc[0] == '\0') {
				snprintf(err, EVC_ERR_LEN, "%s:%ld: expected 'cp ID PRICE LOCATION...'", path, lineno);
				goto fail;
			}
			if (money_parse_price(price_s, &price, NULL) != 0) {
				snprintf(err, EVC_ERR_LEN, "%s:%ld: invalid price '%s' (0 < price <= 100, '.' decimal point)",
					 path, lineno, price_s);
				goto fail;
			}
			if (store_add_cp(s, id, loc, price, NULL, why) == -1) {
				snprintf(err, EVC_ERR_LEN, "%.80s:%ld: %.150s", path, lineno, why);
				goto fail;
			}
			nc++;
		} else {
			snprintf(err, EVC_ERR_LEN, "%s:%ld: unknown record '%.40s' (expected 'driver' or 'cp')", path,
				 lineno, kw);
			goto fail;
		}
	}
	if (ferror(f)) {
		snprintf(err, EVC_ERR_LEN, "%s: read error", path);
		goto fail;
	}
	if (store_commit(s, err) == -1)
		goto fail_nodb;
	free(line);
	fclose(f);
	if (ndrivers != NULL)
		*ndrivers = nd;
	if (ncps != NULL)
		*ncps = nc;
	return 0;
fail:
	store_rollback(s);
fail_nodb:
	free(line);
	fclose(f);
	return -1;
}
