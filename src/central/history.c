#include "src/central/history.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sqlite3.h>

#include "evc/clock.h"
#include "evc/log.h"
#include "evc/schema.h"
#include "evc/xalloc.h"

#define AUDIT_WORDS 4

/* Statements of the sessions page by filter (cp, driver, outcome, open)
 * and direction, prepared when first used. */
enum { SF_CP = 1, SF_DRIVER = 2, SF_OUTCOME = 4, SF_OPEN = 8, SF_COMBOS = 16 };

/* An answer: what one read found. */
struct rows {
	long n, nev;
	struct views_totals totals;
	double ms;
	char err[EVC_ERR_LEN];
	struct views_session sess[VIEWS_PAGE];
	struct views_event ev[VIEWS_CP_EVENTS];
	struct views_audit aud[VIEWS_PAGE];
	struct views_driver drv[VIEWS_PAGE];
};

struct history {
	char path[256];
	int efd; /* eventfd: readable while the answer to the last ask is in and not taken */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	struct views_req req;  /* the last ask */
	unsigned long asked;   /* its number */
	unsigned long picked;  /* the last ask the reader took */
	unsigned long ready;   /* out answers this ask */
	unsigned long given;   /* ... and this one was taken */
	int stop;
	struct rows *out;
	struct history_stats stats;
	/* the number of the last ask, for the progress handler: a read of an
	 * older one stops at its next check */
	atomic_ulong newest;
	/* the asking thread's only: its last ask, not yet handed over if
	 * m_pending (the lock was taken) */
	struct views_req m_req;
	unsigned long m_seq;
	int m_pending;
	atomic_ulong late; /* asks handed over by a later call */
	/* the reader thread's only (the connection: once open) */
	sqlite3 *db;
	sqlite3_stmt *page[SF_COMBOS][3];
	sqlite3_stmt *totals[SF_COMBOS];
	sqlite3_stmt *events, *drivers[3];
	unsigned long cur;     /* the ask being read */
	int interrupted;       /* ... stopped by the progress handler */
	struct rows *work;
	struct views_source src;
};

/* sqlite3_progress_handler, every HISTORY_CHECK_OPS virtual machine steps
 * (some tens of microseconds): non-zero interrupts the statement, once
 * another read was asked for (or the history is closing). This and not
 * sqlite3_interrupt from the asking thread: an interrupt that comes
 * between the reader taking an ask and its first step is forgotten
 * (SQLite clears it when a statement starts with none running). */
static int superseded(void *arg)
{
	const struct history *h = arg;
	return atomic_load_explicit(&h->newest, memory_order_relaxed) != h->cur;
}

static long read_error(struct history *h, int rc, const char *what, char err[EVC_ERR_LEN])
{
	if (rc == SQLITE_INTERRUPT) {
		h->interrupted = 1;
		evc_seterr(err, "reading %s: abandoned for a newer read", what);
	} else {
		evc_seterr(err, "reading %s: %.150s", what, sqlite3_errmsg(h->db));
	}
	return -1;
}

static sqlite3_stmt *prepare(struct history *h, const char *sql, char err[EVC_ERR_LEN])
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(h->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		evc_seterr(err, "%.100s: %.120s", h->path, sqlite3_errmsg(h->db));
		return NULL;
	}
	return st;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t != NULL ? (const char *)t : "";
}

static int sf_mask(const struct views_sfilter *f)
{
	int m = 0;
	if (f->cp[0])
		m |= SF_CP;
	if (f->driver[0])
		m |= SF_DRIVER;
	if (strcmp(f->outcome, "OPEN") == 0)
		m |= SF_OPEN;
	else if (f->outcome[0])
		m |= SF_OUTCOME;
	return m;
}

/* The WHERE terms of a filter: ?1 cp, ?2 driver, ?3 outcome. */
static void sf_where(int m, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s", m & SF_CP ? " AND cp_id = ?1" : "", m & SF_DRIVER ? " AND driver_id = ?2" : "",
		 m & SF_OUTCOME ? " AND outcome = ?3" : "", m & SF_OPEN ? " AND outcome IS NULL" : "");
}

/* The index a page walks: the most selective field's (a driver has few
 * sessions, a CP more, an outcome most), the others are checked on its
 * rows. SQLite's planner, without statistics, picked the outcome index
 * for "CP driver ticket" and read 90% of the table. */
static const char *sf_index(int m)
{
	return m & SF_DRIVER ? "sessions_driver_time"
	       : m & SF_CP ? "sessions_cp_time"
	       : m & (SF_OUTCOME | SF_OPEN) ? "sessions_outcome_time" : "sessions_time";
}

static void sf_bind(sqlite3_stmt *st, const struct views_sfilter *f, int m)
{
	if (m & SF_CP)
		sqlite3_bind_text(st, 1, f->cp, -1, SQLITE_STATIC);
	if (m & SF_DRIVER)
		sqlite3_bind_text(st, 2, f->driver, -1, SQLITE_STATIC);
	if (m & SF_OUTCOME)
		sqlite3_bind_text(st, 3, f->outcome, -1, SQLITE_STATIC);
}

static void session_row(sqlite3_stmt *st, struct views_session *s)
{
	memset(s, 0, sizeof *s);
	xstrlcpy(s->id, col_text(st, 0), sizeof s->id);
	xstrlcpy(s->cp_id, col_text(st, 1), sizeof s->cp_id);
	xstrlcpy(s->driver_id, col_text(st, 2), sizeof s->driver_id);
	s->requested_at = sqlite3_column_double(st, 3);
	s->started_at = sqlite3_column_double(st, 4);
	s->ended_at = sqlite3_column_double(st, 5);
	s->kwh = sqlite3_column_double(st, 6);
	s->importe = sqlite3_column_double(st, 7);
	xstrlcpy(s->outcome, col_text(st, 8), sizeof s->outcome);
	xstrlcpy(s->reason, col_text(st, 9), sizeof s->reason);
}

/* Rows were read oldest first (a NEWER page): newest first, as shown. */
#define REVERSE(type, v, n)                                                                     \
	do {                                                                                    \
		for (long i_ = 0, j_ = (long)(n) - 1; i_ < j_; i_++, j_--) {                    \
			type t_ = (v)[i_];                                                      \
			(v)[i_] = (v)[j_];                                                      \
			(v)[j_] = t_;                                                           \
		}                                                                               \
	} while (0)

static long h_sessions(void *arg, const struct views_sfilter *f, const struct views_page *q,
		       struct views_session *out, char err[EVC_ERR_LEN])
{
	struct history *h = arg;
	int m = sf_mask(f), d = q->dir;
	sqlite3_stmt *st = h->page[m][d];
	size_t max = q->max > VIEWS_PAGE ? VIEWS_PAGE : q->max;
	long n = 0;
	int rc = SQLITE_DONE;

	if (st == NULL) {
		char where[160], sql[512];
		sf_where(m, where, sizeof where);
		snprintf(sql, sizeof sql,
			 "SELECT id, cp_id, driver_id, requested_at, started_at, ended_at, kwh, importe, outcome, reason"
			 " FROM sessions INDEXED BY %s WHERE 1%s%s ORDER BY requested_at %s, id %s LIMIT ?6",
			 sf_index(m), where,
			 d == VIEWS_OLDER ? " AND (requested_at, id) < (?4, ?5)"
			 : d == VIEWS_NEWER ? " AND (requested_at, id) > (?4, ?5)" : "",
			 d == VIEWS_NEWER ? "ASC" : "DESC", d == VIEWS_NEWER ? "ASC" : "DESC");
		st = h->page[m][d] = prepare(h, sql, err);
		if (st == NULL)
			return -1;
	}
	sf_bind(st, f, m);
	if (d != VIEWS_FIRST) {
		sqlite3_bind_double(st, 4, q->key_t);
		sqlite3_bind_text(st, 5, q->key_id, -1, SQLITE_STATIC);
	}
	sqlite3_bind_int64(st, 6, (sqlite3_int64)max);
	while ((size_t)n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
		session_row(st, &out[n++]);
	if ((size_t)n < max && rc != SQLITE_DONE) {
		sqlite3_reset(st);
		return read_error(h, rc, "the sessions", err);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (d == VIEWS_NEWER)
		REVERSE(struct views_session, out, n);
	return n;
}

static int h_totals(void *arg, const struct views_sfilter *f, double since, struct views_totals *t,
		    char err[EVC_ERR_LEN])
{
	struct history *h = arg;
	int m = sf_mask(f);
	sqlite3_stmt *st = h->totals[m];
	int rc;

	if (st == NULL) {
		char where[160], sql[384];
		sf_where(m, where, sizeof where);
		snprintf(sql, sizeof sql,
			 "SELECT count(*), total(kwh), total(importe) FROM sessions WHERE requested_at >= ?4%s", where);
		st = h->totals[m] = prepare(h, sql, err);
		if (st == NULL)
			return -1;
	}
	sf_bind(st, f, m);
	sqlite3_bind_double(st, 4, since);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return (int)read_error(h, rc, "today's totals", err);
	}
	t->sessions = (long)sqlite3_column_int64(st, 0);
	t->kwh = sqlite3_column_double(st, 1);
	t->eur = sqlite3_column_double(st, 2);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return 0;
}

static long h_events(void *arg, const char *cp_id, struct views_event *out, size_t max, char err[EVC_ERR_LEN])
{
	struct history *h = arg;
	sqlite3_stmt *st = h->events;
	long n = 0;
	int rc = SQLITE_DONE;

	if (st == NULL) {
		st = h->events = prepare(h,
					 /* The CP's chain from its newest row
					  * (evcharging(7) DATABASE, cp_events). */
					 EVENTS_CHAIN_SQL
					 " SELECT e.ts, e.event, e.detail FROM chain JOIN cp_events e ON e.id = chain.id"
					 " WHERE e.cp_id = ?1 ORDER BY e.ts DESC, e.id DESC LIMIT ?2",
					 err);
		if (st == NULL)
			return -1;
	}
	sqlite3_bind_text(st, 1, cp_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	while ((size_t)n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct views_event *e = &out[n++];
		e->ts = sqlite3_column_double(st, 0);
		xstrlcpy(e->event, col_text(st, 1), sizeof e->event);
		xstrlcpy(e->detail, col_text(st, 2), sizeof e->detail);
	}
	if ((size_t)n < max && rc != SQLITE_DONE) {
		sqlite3_reset(st);
		return read_error(h, rc, "the CP's events", err);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return n;
}

/* The audit view's words: each must be in the row. Prepared per read (the
 * words vary; a few tens of microseconds). */
static long h_audit(void *arg, const char *text, const struct views_page *q, struct views_audit *out,
		    char err[EVC_ERR_LEN])
{
	struct history *h = arg;
	char buf[VIEWS_FILTER_MAX], *save = NULL, *words[AUDIT_WORDS];
	char sql[1536];
	size_t nw = 0, len, max = q->max > VIEWS_PAGE ? VIEWS_PAGE : q->max;
	sqlite3_stmt *st;
	long n = 0;
	int rc = SQLITE_DONE;

	xstrlcpy(buf, text, sizeof buf);
	for (char *w = strtok_r(buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (nw == AUDIT_WORDS) {
			evc_seterr(err, "at most %d words in the audit filter", AUDIT_WORDS);
			return -1;
		}
		words[nw++] = w;
	}
	len = (size_t)snprintf(sql, sizeof sql, "SELECT id, ts, actor, source_ip, action, cp_id, detail FROM audit_log WHERE 1");
	/* LIKE per column (ASCII case-insensitive, in C): a third of the
	 * time of lower() over the joined row */
	for (size_t i = 0; i < nw; i++)
		len += (size_t)snprintf(sql + len, sizeof sql - len,
					" AND (actor LIKE ?%zu ESCAPE '\\' OR action LIKE ?%zu ESCAPE '\\' OR cp_id LIKE ?%zu ESCAPE '\\'"
					" OR detail LIKE ?%zu ESCAPE '\\' OR source_ip LIKE ?%zu ESCAPE '\\')",
					i + 3, i + 3, i + 3, i + 3, i + 3);
	snprintf(sql + len, sizeof sql - len, "%s ORDER BY id %s LIMIT ?2",
		 q->dir == VIEWS_OLDER ? " AND id < ?1" : q->dir == VIEWS_NEWER ? " AND id > ?1" : "",
		 q->dir == VIEWS_NEWER ? "ASC" : "DESC");
	if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK) {
		evc_seterr(err, "%.100s: %.120s", h->path, sqlite3_errmsg(h->db));
		return -1;
	}
	if (q->dir != VIEWS_FIRST)
		sqlite3_bind_int64(st, 1, (sqlite3_int64)q->key_n);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	char pat[AUDIT_WORDS][2 * VIEWS_FILTER_MAX + 3];
	for (size_t i = 0; i < nw; i++) {
		size_t k = 0;
		pat[i][k++] = '%';
		for (const char *c = words[i]; *c; c++) {
			if (*c == '%' || *c == '_' || *c == '\\')
				pat[i][k++] = '\\';
			pat[i][k++] = *c;
		}
		pat[i][k++] = '%';
		pat[i][k] = '\0';
		sqlite3_bind_text(st, (int)i + 3, pat[i], -1, SQLITE_STATIC);
	}
	while ((size_t)n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct views_audit *a = &out[n++];
		memset(a, 0, sizeof *a);
		a->id = (int64_t)sqlite3_column_int64(st, 0);
		a->ts = sqlite3_column_double(st, 1);
		xstrlcpy(a->actor, col_text(st, 2), sizeof a->actor);
		xstrlcpy(a->source_ip, col_text(st, 3), sizeof a->source_ip);
		xstrlcpy(a->action, col_text(st, 4), sizeof a->action);
		xstrlcpy(a->cp_id, col_text(st, 5), sizeof a->cp_id);
		xstrlcpy(a->detail, col_text(st, 6), sizeof a->detail);
	}
	if ((size_t)n < max && rc != SQLITE_DONE) {
		read_error(h, rc, "the audit log", err);
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (q->dir == VIEWS_NEWER)
		REVERSE(struct views_audit, out, n);
	return n;
}

static long h_drivers(void *arg, double since, const struct views_page *q, struct views_driver *out,
		      char err[EVC_ERR_LEN])
{
	struct history *h = arg;
	int d = q->dir;
	sqlite3_stmt *st = h->drivers[d];
	size_t max = q->max > VIEWS_PAGE ? VIEWS_PAGE : q->max;
	long n = 0;
	int rc = SQLITE_DONE;

	if (st == NULL) {
		char sql[768];
		/* per driver of the page, an index range of today's sessions
		 * (sessions_driver_time): the page's cost, whatever the day held */
		snprintf(sql, sizeof sql,
			 "SELECT d.id, d.name,"
			 " (SELECT count(*) FROM sessions s WHERE s.driver_id = d.id AND s.requested_at >= ?1),"
			 " (SELECT total(kwh) FROM sessions s WHERE s.driver_id = d.id AND s.requested_at >= ?1),"
			 " (SELECT total(importe) FROM sessions s WHERE s.driver_id = d.id AND s.requested_at >= ?1)"
			 " FROM drivers d WHERE 1%s ORDER BY d.id %s LIMIT ?3",
			 d == VIEWS_OLDER ? " AND d.id > ?2" : d == VIEWS_NEWER ? " AND d.id < ?2" : "",
			 d == VIEWS_NEWER ? "DESC" : "ASC");
		st = h->drivers[d] = prepare(h, sql, err);
		if (st == NULL)
			return -1;
	}
	sqlite3_bind_double(st, 1, since);
	if (d != VIEWS_FIRST)
		sqlite3_bind_text(st, 2, q->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
	while ((size_t)n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct views_driver *r = &out[n++];
		memset(r, 0, sizeof *r);
		xstrlcpy(r->id, col_text(st, 0), sizeof r->id);
		xstrlcpy(r->name, col_text(st, 1), sizeof r->name);
		r->today_sessions = (long)sqlite3_column_int64(st, 2);
		r->today_kwh = sqlite3_column_double(st, 3);
		r->today_eur = sqlite3_column_double(st, 4);
	}
	if ((size_t)n < max && rc != SQLITE_DONE) {
		sqlite3_reset(st);
		return read_error(h, rc, "the drivers", err);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (d == VIEWS_NEWER)
		REVERSE(struct views_driver, out, n);
	return n;
}

/* ---- the reader thread ---- */

/* Read r into w (on the reader thread). */
static void run(struct history *h, const struct views_req *r, struct rows *w)
{
	double t0 = clock_mono();

	w->n = -1;
	w->nev = 0;
	w->err[0] = '\0';
	memset(&w->totals, 0, sizeof w->totals);
	h->interrupted = 0;
	switch (r->kind) {
	case VIEWS_DETAIL: {
		struct views_sfilter f;
		struct views_page q = { .dir = VIEWS_FIRST, .max = VIEWS_CP_SESSIONS };
		memset(&f, 0, sizeof f);
		xstrlcpy(f.cp, r->cp, sizeof f.cp);
		w->n = h_sessions(h, &f, &q, w->sess, w->err);
		if (w->n >= 0) {
			w->nev = h_events(h, r->cp, w->ev, VIEWS_CP_EVENTS, w->err);
			if (w->nev < 0) {
				w->n = -1;
				w->nev = 0;
			}
		}
		break;
	}
	case VIEWS_SESSIONS:
		w->n = h_sessions(h, &r->sf, &r->q, w->sess, w->err);
		if (w->n >= 0 && h_totals(h, &r->sf, r->since, &w->totals, w->err) == -1)
			w->n = -1;
		break;
	case VIEWS_AUDIT:
		w->n = h_audit(h, r->text, &r->q, w->aud, w->err);
		break;
	case VIEWS_DRIVERS:
		w->n = h_drivers(h, r->since, &r->q, w->drv, w->err);
		break;
	default:
		evc_seterr(w->err, "no such view");
		break;
	}
	w->ms = (clock_mono() - t0) * 1000.0;
}

static void drain(int fd)
{
	uint64_t x;
	while (read(fd, &x, sizeof x) == (ssize_t)sizeof x)
		;
}

static void *reader(void *arg)
{
	struct history *h = arg;

	pthread_setname_np(pthread_self(), "history"); /* for top -H */
	/* when the CPUs are short, the main loop goes first (Linux: a
	 * thread's nice value is its own) */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), HISTORY_NICE) == -1)
		log_debug("history: setpriority: %s", strerror(errno));
	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->stop && h->picked == h->asked)
			pthread_cond_wait(&h->cv, &h->mu);
		if (h->stop)
			break;
		struct views_req r = h->req;
		unsigned long seq = h->asked;
		h->picked = seq;
		if (r.kind == VIEWS_NONE)
			continue;
		h->cur = seq;
		h->stats.started++;
		pthread_mutex_unlock(&h->mu);
		run(h, &r, h->work);
		pthread_mutex_lock(&h->mu);
		if (seq != h->asked || seq != atomic_load(&h->newest)) {
			/* a newer ask came (handed over or not): this answer is
			 * nobody's */
			h->stats.abandoned++;
			h->stats.interrupted += (unsigned long)h->interrupted;
			continue;
		}
		struct rows *t = h->out;
		h->out = h->work;
		h->work = t;
		h->ready = seq;
		h->stats.answered++;
		if (h->out->ms > h->stats.longest_ms)
			h->stats.longest_ms = h->out->ms;
		uint64_t one = 1;
		if (write(h->efd, &one, sizeof one) != (ssize_t)sizeof one && errno != EAGAIN)
			h->stats.wake_failed++;
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Hand the caller's last ask to the reader, if the lock is free: 1 once
 * it has it. The caller never waits for the lock: the reader runs at a
 * lower priority, and on busy CPUs it may lose the CPU while it holds
 * the lock (for microseconds of work) and get it back only many ms later. */
static int hand_over(struct history *h)
{
	if (!h->m_pending)
		return 1;
	if (pthread_mutex_trylock(&h->mu) != 0)
		return 0;
	h->req = h->m_req;
	h->asked = h->m_seq;
	drain(h->efd); /* an answer not taken is no longer wanted */
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (h->m_pending > 1)
		atomic_fetch_add(&h->late, 1);
	h->m_pending = 0;
	return 1;
}

/* views_source.ask: on the caller's thread, never waits. The read in
 * flight stops at once (newest); the reader gets this ask now, or from
 * the next answer call if the lock was taken. */
static void h_ask(void *arg, const struct views_req *r)
{
	struct history *h = arg;
	h->m_req = *r;
	h->m_seq++;
	h->m_pending = 1;
	atomic_store(&h->newest, h->m_seq);
	if (!hand_over(h))
		h->m_pending = 2; /* late */
}

#define COPY_ROWS(dst, src, n, max)                                                            \
	do {                                                                                   \
		if ((dst) != NULL && (n) > 0)                                                  \
			memcpy((dst), (src), (size_t)((n) > (max) ? (max) : (n)) * sizeof *(src)); \
	} while (0)

/* views_source.answer: never waits either (a lock taken: not yet). The
 * rows are copied under the lock (some hundred kB at most: tens of
 * microseconds). */
static int h_answer(void *arg, struct views_answer *a)
{
	struct history *h = arg;
	int got = 0;
	if (!hand_over(h) || pthread_mutex_trylock(&h->mu) != 0)
		return 0;
	if (h->ready == h->asked && h->given != h->ready && h->req.kind != VIEWS_NONE) {
		const struct rows *o = h->out;
		a->n = o->n;
		a->nev = o->nev;
		a->totals = o->totals;
		a->ms = o->ms;
		xstrlcpy(a->err, o->err, sizeof a->err);
		switch (h->req.kind) {
		case VIEWS_DETAIL:
			COPY_ROWS(a->sess, o->sess, o->n, VIEWS_CP_SESSIONS);
			COPY_ROWS(a->ev, o->ev, o->nev, VIEWS_CP_EVENTS);
			break;
		case VIEWS_SESSIONS:
			COPY_ROWS(a->sess, o->sess, o->n, VIEWS_PAGE);
			break;
		case VIEWS_AUDIT:
			COPY_ROWS(a->aud, o->aud, o->n, VIEWS_PAGE);
			break;
		default:
			COPY_ROWS(a->drv, o->drv, o->n, VIEWS_PAGE);
			break;
		}
		h->given = h->ready;
		drain(h->efd);
		got = 1;
	}
	pthread_mutex_unlock(&h->mu);
	return got;
}

struct history *history_open(const char *path, char err[EVC_ERR_LEN])
{
	struct history *h = xcalloc(1, sizeof *h);
	sigset_t all, old;
	int rc;

	xstrlcpy(h->path, path, sizeof h->path);
	h->efd = -1;
	if (sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		evc_seterr(err, "%.150s: cannot open read-only: %.80s", path,
			   h->db ? sqlite3_errmsg(h->db) : "out of memory");
		sqlite3_close(h->db);
		free(h);
		return NULL;
	}
	/* WAL readers wait only in rare cases (the WAL being reset): a few ms
	 * at most, never the writer's busy timeout */
	sqlite3_busy_timeout(h->db, 10);
	sqlite3_progress_handler(h->db, HISTORY_CHECK_OPS, superseded, h);
	h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->efd == -1) {
		evc_seterr(err, "eventfd: %s", strerror(errno));
		sqlite3_close(h->db);
		free(h);
		return NULL;
	}
	h->out = xcalloc(1, sizeof *h->out);
	h->work = xcalloc(1, sizeof *h->work);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	atomic_init(&h->newest, 0);
	atomic_init(&h->late, 0);
	/* signals belong to the main loop: the reader starts with all blocked */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&h->thread, NULL, reader, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		evc_seterr(err, "%.150s: cannot start the reader thread: %s", path, strerror(rc));
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h->out);
		free(h->work);
		close(h->efd);
		sqlite3_close(h->db);
		free(h);
		return NULL;
	}
	h->src = (struct views_source){
		.arg = h,
		.ask = h_ask,
		.answer = h_answer,
	};
	return h;
}

void history_close(struct history *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = 1;
	atomic_store(&h->newest, h->m_seq + 1); /* the read in flight stops */
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	for (int m = 0; m < SF_COMBOS; m++) {
		for (int d = 0; d < 3; d++)
			sqlite3_finalize(h->page[m][d]);
		sqlite3_finalize(h->totals[m]);
	}
	sqlite3_finalize(h->events);
	for (int d = 0; d < 3; d++)
		sqlite3_finalize(h->drivers[d]);
	sqlite3_close(h->db);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	close(h->efd);
	free(h->out);
	free(h->work);
	free(h);
}

const struct views_source *history_source(struct history *h)
{
	return &h->src;
}

int history_fd(const struct history *h)
{
	return h->efd;
}

void history_stats(struct history *h, struct history_stats *st)
{
	pthread_mutex_lock(&h->mu);
	*st = h->stats;
	pthread_mutex_unlock(&h->mu);
	st->late = atomic_load(&h->late);
}
