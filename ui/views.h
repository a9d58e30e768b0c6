/* The operator's views of the panel besides the grid (EV_Central(1) THE
 * PANEL): a CP's detail (Enter), the sessions (S), the audit log (A) and
 * the drivers (D). Like the grid they draw only from what their program
 * hands them: the panel_view for the live state, and a views_source, a
 * pair of functions the program fills in to ask for the stored history
 * and take the answer on a later turn (Central's are a reader thread on a
 * read-only SQLite connection of its own, src/central/history.c): a view
 * shows "reading..." meanwhile and never waits for it. Every key of every view is in one key table per view,
 * which dispatches it, draws the hint bar and the help. Main thread
 * only. */
#ifndef EVC_UI_VIEWS_H
#define EVC_UI_VIEWS_H
#include <stddef.h>
#include <stdint.h>

#include "evc/cpview.h"
#include "evc/err.h"
#include "evc/msg.h"
#include "ui/keys.h"

#define VIEWS_PAGE 200        /* rows a read of the sessions, audit and drivers views */
#define VIEWS_CP_SESSIONS 20  /* a CP's detail: its last sessions */
#define VIEWS_CP_EVENTS 50    /* ... and its last cp_events */
#define VIEWS_OUTCOME_MAX 24
#define VIEWS_FILTER_MAX 64

/* One sessions row (evcharging(7) DATABASE). */
struct views_session {
	char id[MSG_ID_MAX + 1];
	char cp_id[MSG_CP_ID_MAX + 1];
	char driver_id[MSG_ID_MAX + 1];
	double requested_at, started_at, ended_at; /* wall clock, 0 = not yet */
	double kwh, importe;
	char outcome[VIEWS_OUTCOME_MAX]; /* "" while open */
	char reason[MSG_TEXT_MAX + 1];
};

/* One cp_events row. */
struct views_event {
	double ts;
	char event[32];
	char detail[256];
};

/* One audit_log row (evcharging(7) SECURITY): never holds a secret. */
struct views_audit {
	int64_t id;
	double ts;
	char actor[80], source_ip[64], action[32], cp_id[MSG_CP_ID_MAX + 1];
	char detail[513];
};

/* A registered driver and what it did since the start of today. */
struct views_driver {
	char id[MSG_ID_MAX + 1];
	char name[129];
	long today_sessions;
	double today_kwh, today_eur;
};

/* The sessions view's filter: every field set must match ("" = any). */
struct views_sfilter {
	char cp[MSG_CP_ID_MAX + 1];
	char driver[MSG_ID_MAX + 1];
	char outcome[VIEWS_OUTCOME_MAX]; /* TICKET, SUPPLY_ERROR, SESSION_CANCELLED or OPEN */
};

/* Which page: the newest rows, or the rows just older (after, in the
 * view's newest-first order) or just newer (before) than a row's key. */
enum views_dir { VIEWS_FIRST, VIEWS_OLDER, VIEWS_NEWER };
struct views_page {
	enum views_dir dir;
	double key_t;                 /* sessions: requested_at */
	char key_id[MSG_ID_MAX + 1];  /* sessions: id; drivers: id */
	int64_t key_n;                /* audit: id */
	size_t max;                   /* rows wanted, at most VIEWS_PAGE */
};

struct views_totals {
	long sessions;
	double kwh, eur;
};

enum views_kind { VIEWS_NONE = 0, VIEWS_DETAIL, VIEWS_SESSIONS, VIEWS_AUDIT, VIEWS_DRIVERS };

/* A read the views ask of their program: the rows of one view. */
struct views_req {
	enum views_kind kind; /* VIEWS_NONE: none (the one in flight is abandoned) */
	/* DETAIL: cp's last VIEWS_CP_SESSIONS sessions and VIEWS_CP_EVENTS
	 * cp_events */
	char cp[MSG_CP_ID_MAX + 1];
	/* SESSIONS: a page of sf's sessions, and the totals of those
	 * requested at or after since */
	struct views_sfilter sf;
	/* AUDIT: a page of the rows holding every word of text (actor,
	 * source, action, CP or detail, case-insensitively); "" = all */
	char text[VIEWS_FILTER_MAX];
	/* SESSIONS, AUDIT, DRIVERS: which page (DRIVERS: in id order,
	 * "newest" = first id) */
	struct views_page q;
	/* SESSIONS' totals, DRIVERS' today: the start of today (wall clock) */
	double since;
};

/* Its answer. The rows, newest first whatever the direction, go in the
 * array of the request's kind, which the caller hands in: sess and aud
 * and drv hold VIEWS_PAGE rows, ev VIEWS_CP_EVENTS (DETAIL: its sessions
 * in sess, its events in ev). */
struct views_answer {
	long n;           /* rows (DETAIL: sessions); -1: err says why */
	long nev;         /* DETAIL: events */
	struct views_totals totals; /* SESSIONS */
	double ms;        /* how long the read took */
	char err[EVC_ERR_LEN];
	struct views_session *sess;
	struct views_event *ev;
	struct views_audit *aud;
	struct views_driver *drv;
};

/* The program's reads, asked for and answered later: neither function
 * waits for the database, so a read never stalls the caller's loop,
 * however many rows it goes through. One read at a time: a new ask
 * abandons the one in flight, whose answer is never given. arg is the
 * table's. */
struct views_source {
	void *arg;
	void (*ask)(void *arg, const struct views_req *r);
	/* 1 once the answer to the last ask is in (*a filled, its rows
	 * copied into a's arrays; given once), else 0. */
	int (*answer)(void *arg, struct views_answer *a);
};

/* Parse the sessions view's filter: blank-separated words, all of which
 * must match. "cp:ID", "driver:ID" and "outcome:WORD" say which field;
 * a bare word is an outcome when it names one (ticket, supply_error or
 * error, session_cancelled or cancelled, open; any case), a CP when it is
 * the id of one of cps (any case; the CP's own spelling is kept), else a
 * driver. 0, or -1 with err (an unknown outcome, a bad id, a field given
 * twice, too long). f is cleared first. */
int views_sfilter_parse(const char *text, const struct cp_view *cps, size_t ncps, struct views_sfilter *f,
			char err[EVC_ERR_LEN]);
/* "cp MAD-01, outcome TICKET" ("all sessions" when empty). */
void views_sfilter_describe(const struct views_sfilter *f, char *buf, size_t len);

struct panel_view;

/* What a view's key handler may return besides KEYS_OK: "the panel does
 * the grid's action of this key" (p, r, K on the detail's CP, '/' for the
 * view's filter), VIEWS_PASS + key. */
#define VIEWS_PASS 0x10000

struct views;

/* Caller frees with views_free. */
struct views *views_new(void);
void views_free(struct views *vs);
enum views_kind views_kind(const struct views *vs);
/* Open view k (cp_id: the detail's CP) and read its data. */
void views_open(struct views *vs, enum views_kind k, const struct panel_view *v, const char *cp_id);
void views_close(struct views *vs);
/* The CP of the detail view ("" otherwise). */
const char *views_cp(const struct views *vs);
/* A key for the open view: KEYS_OK, KEYS_UNBOUND, KEYS_REFUSED, or
 * VIEWS_PASS + key. */
int views_key(struct views *vs, int key, const struct panel_view *v, int readonly);
/* The open view's keys (hint bar) and every view's (help), with titles. */
const struct keys_table *views_keys(const struct views *vs);
size_t views_all_keys(const struct keys_table **tabs, const char **titles, size_t max);
/* The open view's filter text, and a new one (parsed, then read again);
 * -1 with msg when it does not parse (the old filter stays). */
const char *views_filter(const struct views *vs);
int views_set_filter(struct views *vs, const struct panel_view *v, const char *text, char msg[EVC_ERR_LEN]);
/* A command line for the views (":export sessions FILE.csv", ":export
 * audit FILE.csv"): 1 if it was one (msg says what happened, *ok whether
 * it worked), 0 if not (the program's exec gets it). */
int views_command(struct views *vs, const struct panel_view *v, const char *line, int *ok, char msg[EVC_ERR_LEN]);
/* Every turn: take the answer of the read in flight if it is in, remember
 * each CP's kW once a second (the detail's sparkline) and when its link
 * changed, and ask for the open view's rows again when they are a few
 * seconds old. 1 if the open view changed. */
int views_tick(struct views *vs, const struct panel_view *v, double now);
/* A read is in flight: its answer is taken by views_tick, which the
 * program should then call within a few ms (VIEWS_POLL_MS). */
int views_busy(const struct views *vs);
#define VIEWS_POLL_MS 5
/* Draw the open view in rows y .. y+h-1 of stdscr (cols wide). */
void views_draw(struct views *vs, const struct panel_view *v, int y, int h, int cols, double now);

#endif
