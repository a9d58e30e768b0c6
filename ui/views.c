/* The panel's views besides the grid: a CP's detail, the sessions, the
 * audit log and the drivers (ui/views.h). Rows come from the program's
 * views_source a page at a time and are read again only when the operator
 * moves past the page, changes the filter, or the newest page is a few
 * seconds old. A read is asked for and its answer taken on a later turn
 * (views_tick): the main loop never waits for the database, and one read
 * is in flight at most (a newer ask abandons it). Every string from the
 * database is drawn through theme_puts, which turns control characters
 * into '?'. */
#include "ui/views.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "evc/clock.h"
#include "evc/hmap.h"
#include "evc/money.h"
#include "evc/xalloc.h"
#include "ui/csv.h"
#include "ui/panel.h"
#include "ui/theme.h"

#define SPARK_N 60        /* kW samples: one a second, the last minute */
#define RELOAD_LIST 2.0   /* s: the newest page of a list is read again */
#define RELOAD_DETAIL 1.0 /* s: a CP's detail is read again */

/* What the panel remembers of each CP between frames. */
struct cpmem {
	char id[MSG_CP_ID_MAX + 1];
	enum cp_link_kind link;
	double link_since;             /* wall clock the link kind last changed (or first seen) */
	char sid[MSG_ID_MAX + 1];      /* the session the samples belong to */
	float kw[SPARK_N];
	unsigned nkw, head;            /* head = next slot */
};

/* A paged list: rows loaded, selection, first row drawn. */
struct list {
	size_t n, sel, top;
	int loaded, at_newest, at_oldest; /* loaded: an answer came (rows or err) */
	double read_at;  /* wall clock of the last answer */
	double read_ms;  /* how long its read took */
	char err[EVC_ERR_LEN];
};

struct views {
	enum views_kind kind;
	char cp[MSG_CP_ID_MAX + 1];
	int rows_shown; /* list rows that fit on screen at the last draw */

	struct views_session *dsess;
	size_t ndsess;
	struct views_event *dev, *dev_tmp;
	size_t ndev;
	struct list dl; /* the detail: scroll of its lower part */

	struct views_session *sess, *sess_tmp;
	struct list sl;
	char sftext[VIEWS_FILTER_MAX];
	struct views_sfilter sf, sf_shown; /* asked for; what the rows shown were read with */
	struct views_totals today;

	struct views_audit *aud, *aud_tmp;
	struct list al;
	char aftext[VIEWS_FILTER_MAX], aftext_shown[VIEWS_FILTER_MAX];

	struct views_driver *drv, *drv_tmp;
	struct list drl;

	/* the read in flight: asked of src (NULL: none), its answer goes
	 * into the *_tmp arrays and then to the view's */
	const struct views_source *src;
	struct views_req req;
	double asked_at; /* wall clock */
	int quiet;       /* a reload of the rows shown */

	struct hmap mem; /* id -> struct cpmem */
	long last_sec;
};

/* ---- the sessions filter ---- */

static const struct {
	const char *word, *outcome;
} outcome_words[] = {
	{ "TICKET", "TICKET" },
	{ "SUPPLY_ERROR", "SUPPLY_ERROR" },
	{ "ERROR", "SUPPLY_ERROR" },
	{ "SESSION_CANCELLED", "SESSION_CANCELLED" },
	{ "CANCELLED", "SESSION_CANCELLED" },
	{ "OPEN", "OPEN" },
};

static const char *outcome_of(const char *w)
{
	for (size_t i = 0; i < sizeof outcome_words / sizeof outcome_words[0]; i++)
		if (strcasecmp(w, outcome_words[i].word) == 0)
			return outcome_words[i].outcome;
	return NULL;
}

/* The characters of CP and driver ids (evcharging(7) PROTOCOL). */
static int id_ok(const char *s, size_t max, int driver)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && !(driver && (*s == '.' || *s == '@')))
			return 0;
	return 1;
}

static int set_field(char *dst, size_t len, const char *val, const char *what, char err[EVC_ERR_LEN])
{
	if (dst[0]) {
		evc_seterr(err, "the filter names the %s twice", what);
		return -1;
	}
	xstrlcpy(dst, val, len);
	return 0;
}

int views_sfilter_parse(const char *text, const struct cp_view *cps, size_t ncps, struct views_sfilter *f,
			char err[EVC_ERR_LEN])
{
	char buf[VIEWS_FILTER_MAX], *save = NULL;

	memset(f, 0, sizeof *f);
	if (strlen(text) >= sizeof buf) {
		evc_seterr(err, "filter too long (at most %d characters)", VIEWS_FILTER_MAX - 1);
		return -1;
	}
	xstrlcpy(buf, text, sizeof buf);
	for (char *w = strtok_r(buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		const char *colon = strchr(w, ':');
		const char *val = colon ? colon + 1 : w;
		size_t klen = colon ? (size_t)(colon - w) : 0;
		int rc;

		if (colon && klen == 2 && strncasecmp(w, "cp", 2) == 0) {
			if (!id_ok(val, MSG_CP_ID_MAX, 0)) {
				evc_seterr(err, "not a CP id: '%.32s'", val);
				return -1;
			}
			const char *id = val;
			for (size_t i = 0; i < ncps; i++)
				if (strcasecmp(cps[i].id, val) == 0)
					id = cps[i].id;
			rc = set_field(f->cp, sizeof f->cp, id, "CP", err);
		} else if (colon && klen == 6 && strncasecmp(w, "driver", 6) == 0) {
			if (!id_ok(val, MSG_ID_MAX, 1)) {
				evc_seterr(err, "not a driver id: '%.64s'", val);
				return -1;
			}
			rc = set_field(f->driver, sizeof f->driver, val, "driver", err);
		} else if (colon && klen == 7 && strncasecmp(w, "outcome", 7) == 0) {
			const char *o = outcome_of(val);
			if (!o) {
				evc_seterr(err, "unknown outcome '%.24s' (ticket, error, cancelled or open)", val);
				return -1;
			}
			rc = set_field(f->outcome, sizeof f->outcome, o, "outcome", err);
		} else if (colon) {
			evc_seterr(err, "unknown filter field '%.*s' (cp:, driver: or outcome:)", (int)(klen > 16 ? 16 : klen), w);
			return -1;
		} else if (outcome_of(w)) {
			rc = set_field(f->outcome, sizeof f->outcome, outcome_of(w), "outcome", err);
		} else {
			const char *cp = NULL;
			for (size_t i = 0; i < ncps && !cp; i++)
				if (strcasecmp(cps[i].id, w) == 0)
					cp = cps[i].id;
			if (cp) {
				rc = set_field(f->cp, sizeof f->cp, cp, "CP", err);
			} else if (id_ok(w, MSG_ID_MAX, 1)) {
				rc = set_field(f->driver, sizeof f->driver, w, "driver", err);
			} else {
				evc_seterr(err, "'%.32s' is no CP, driver or outcome", w);
				return -1;
			}
		}
		if (rc == -1)
			return -1;
	}
	return 0;
}

void views_sfilter_describe(const struct views_sfilter *f, char *buf, size_t len)
{
	size_t n = 0;
	const char *names[3] = { "cp", "driver", "outcome" };
	const char *vals[3] = { f->cp, f->driver, f->outcome };

	if (len == 0)
		return;
	buf[0] = '\0';
	for (int i = 0; i < 3; i++) {
		if (!vals[i][0])
			continue;
		int k = snprintf(buf + n, len - n, "%s%s %s", n ? ", " : "", names[i], vals[i]);
		if (k < 0 || (size_t)k >= len - n)
			return;
		n += (size_t)k;
	}
	if (n == 0)
		snprintf(buf, len, "all sessions");
}

/* ---- state ---- */

static void abandon(struct views *vs);

struct views *views_new(void)
{
	struct views *vs = xcalloc(1, sizeof *vs);
	vs->dsess = xcalloc(VIEWS_CP_SESSIONS, sizeof *vs->dsess);
	vs->dev = xcalloc(VIEWS_CP_EVENTS, sizeof *vs->dev);
	vs->dev_tmp = xcalloc(VIEWS_CP_EVENTS, sizeof *vs->dev_tmp);
	vs->sess = xcalloc(VIEWS_PAGE, sizeof *vs->sess);
	vs->sess_tmp = xcalloc(VIEWS_PAGE, sizeof *vs->sess_tmp);
	vs->aud = xcalloc(VIEWS_PAGE, sizeof *vs->aud);
	vs->aud_tmp = xcalloc(VIEWS_PAGE, sizeof *vs->aud_tmp);
	vs->drv = xcalloc(VIEWS_PAGE, sizeof *vs->drv);
	vs->drv_tmp = xcalloc(VIEWS_PAGE, sizeof *vs->drv_tmp);
	hmap_init(&vs->mem);
	vs->last_sec = -1;
	vs->rows_shown = 10;
	return vs;
}

void views_free(struct views *vs)
{
	if (!vs)
		return;
	abandon(vs);
	void *m;
	for (size_t i = 0; (m = hmap_next(&vs->mem, &i)) != NULL;)
		free(m);
	hmap_free(&vs->mem);
	free(vs->dsess);
	free(vs->dev);
	free(vs->dev_tmp);
	free(vs->sess);
	free(vs->sess_tmp);
	free(vs->aud);
	free(vs->aud_tmp);
	free(vs->drv);
	free(vs->drv_tmp);
	free(vs);
}

enum views_kind views_kind(const struct views *vs)
{
	return vs->kind;
}

const char *views_cp(const struct views *vs)
{
	return vs->kind == VIEWS_DETAIL ? vs->cp : "";
}

static double today_start(double now)
{
	time_t t = (time_t)now;
	struct tm tm;
	localtime_r(&t, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	return (double)mktime(&tm);
}

static const struct views_source *source(const struct panel_view *v)
{
	return v ? v->src : NULL;
}

/* ---- reads: asked for, answered on a later turn ---- */

static struct list *list_of(struct views *vs, enum views_kind k)
{
	return k == VIEWS_SESSIONS ? &vs->sl : k == VIEWS_AUDIT ? &vs->al : k == VIEWS_DRIVERS ? &vs->drl : &vs->dl;
}

/* Abandon the read in flight (its answer will never come). */
static void abandon(struct views *vs)
{
	if (vs->src) {
		struct views_req none;
		memset(&none, 0, sizeof none);
		vs->src->ask(vs->src->arg, &none);
		vs->src = NULL;
	}
}

/* Ask for r (built from a zeroed struct, so that the same read compares
 * equal): the read in flight, unless it is this one, is abandoned. quiet:
 * a reload of rows already shown, which says "reading..." only if it
 * lasts. */
static void ask(struct views *vs, const struct panel_view *v, const struct views_req *r, int quiet)
{
	const struct views_source *src = source(v);
	struct list *l = list_of(vs, r->kind);

	if (!src || !src->ask || !src->answer) {
		abandon(vs);
		l->loaded = 1;
		l->read_at = clock_wall();
		evc_seterr(l->err, "no stored history here");
		return;
	}
	if (vs->src == src && memcmp(&vs->req, r, sizeof *r) == 0) {
		vs->quiet &= quiet;
		return;
	}
	if (vs->src && vs->src != src)
		abandon(vs);
	memcpy(&vs->req, r, sizeof vs->req); /* padding too: compared above */
	vs->src = src;
	vs->quiet = quiet;
	vs->asked_at = clock_wall();
	src->ask(src->arg, r);
}

static void ask_detail(struct views *vs, const struct panel_view *v, int quiet)
{
	struct views_req r;
	memset(&r, 0, sizeof r);
	r.kind = VIEWS_DETAIL;
	xstrlcpy(r.cp, vs->cp, sizeof r.cp);
	ask(vs, v, &r, quiet);
}

/* Ask for a page of view k's list: the newest, or the one just older or
 * newer than the rows it has. */
static void ask_list(struct views *vs, enum views_kind k, const struct panel_view *v, enum views_dir dir, int quiet)
{
	struct list *l = list_of(vs, k);
	struct views_req r;
	size_t at = dir == VIEWS_NEWER ? 0 : l->n ? l->n - 1 : 0;

	if (dir != VIEWS_FIRST && l->n == 0)
		dir = VIEWS_FIRST;
	memset(&r, 0, sizeof r);
	r.kind = k;
	r.q.dir = dir;
	r.q.max = VIEWS_PAGE;
	r.since = today_start(clock_wall());
	switch (k) {
	case VIEWS_SESSIONS:
		r.sf = vs->sf;
		if (dir != VIEWS_FIRST) {
			r.q.key_t = vs->sess[at].requested_at;
			xstrlcpy(r.q.key_id, vs->sess[at].id, sizeof r.q.key_id);
		}
		break;
	case VIEWS_AUDIT:
		xstrlcpy(r.text, vs->aftext, sizeof r.text);
		if (dir != VIEWS_FIRST)
			r.q.key_n = vs->aud[at].id;
		break;
	case VIEWS_DRIVERS:
		if (dir != VIEWS_FIRST)
			xstrlcpy(r.q.key_id, vs->drv[at].id, sizeof r.q.key_id);
		break;
	default:
		return;
	}
	ask(vs, v, &r, quiet);
}

/* The answer to r is in a: the detail's rows, or a page of a list (the
 * old page stays when the read failed or found nothing more in that
 * direction). */
static void take_answer(struct views *vs, const struct panel_view *v, const struct views_req *r,
			const struct views_answer *a)
{
	struct list *l = list_of(vs, r->kind);
	size_t n = a->n > 0 ? (size_t)a->n : 0;

	l->loaded = 1;
	l->read_at = clock_wall();
	l->read_ms = a->ms;
	l->err[0] = '\0';
	if (a->n < 0)
		xstrlcpy(l->err, a->err[0] ? a->err : "the read failed", sizeof l->err);
	if (r->kind == VIEWS_DETAIL) {
		if (a->n < 0)
			return;
		vs->ndsess = n > VIEWS_CP_SESSIONS ? VIEWS_CP_SESSIONS : n;
		memcpy(vs->dsess, vs->sess_tmp, vs->ndsess * sizeof *vs->dsess);
		vs->ndev = a->nev > 0 ? (size_t)a->nev : 0;
		if (vs->ndev > VIEWS_CP_EVENTS)
			vs->ndev = VIEWS_CP_EVENTS;
		memcpy(vs->dev, vs->dev_tmp, vs->ndev * sizeof *vs->dev);
		return;
	}
	if (a->n < 0)
		return;
	if (n > VIEWS_PAGE)
		n = VIEWS_PAGE;
	if (n > 0 || r->q.dir == VIEWS_FIRST) {
		switch (r->kind) {
		case VIEWS_SESSIONS:
			memcpy(vs->sess, vs->sess_tmp, n * sizeof *vs->sess);
			break;
		case VIEWS_AUDIT:
			memcpy(vs->aud, vs->aud_tmp, n * sizeof *vs->aud);
			break;
		default:
			memcpy(vs->drv, vs->drv_tmp, n * sizeof *vs->drv);
			break;
		}
	}
	/* what the rows on screen were read with */
	if (r->kind == VIEWS_SESSIONS) {
		vs->today = a->totals;
		vs->sf_shown = r->sf;
	} else if (r->kind == VIEWS_AUDIT) {
		xstrlcpy(vs->aftext_shown, r->text, sizeof vs->aftext_shown);
	}
	switch (r->q.dir) {
	case VIEWS_FIRST:
		l->n = n;
		l->at_newest = 1;
		l->at_oldest = n < r->q.max;
		if (l->sel >= l->n)
			l->sel = l->n ? l->n - 1 : 0;
		break;
	case VIEWS_OLDER:
		if (n == 0) {
			l->at_oldest = 1;
			break;
		}
		l->n = n;
		l->at_newest = 0;
		l->at_oldest = n < r->q.max;
		l->sel = l->top = 0;
		break;
	case VIEWS_NEWER:
		if (n == 0) {
			l->at_newest = 1;
			break;
		}
		l->n = n;
		l->at_oldest = 0;
		l->at_newest = n < r->q.max;
		l->sel = l->n - 1;
		l->top = l->n > (size_t)vs->rows_shown ? l->n - (size_t)vs->rows_shown : 0;
		if (l->at_newest) /* the newest page starts at the newest row */
			ask_list(vs, r->kind, v, VIEWS_FIRST, 0);
		break;
	}
}

/* Take the answer of the read in flight if it is in: 1 if it was. */
static int poll_answer(struct views *vs, const struct panel_view *v)
{
	struct views_answer a;
	struct views_req r;

	if (!vs->src)
		return 0;
	memset(&a, 0, sizeof a);
	a.sess = vs->sess_tmp;
	a.ev = vs->dev_tmp;
	a.aud = vs->aud_tmp;
	a.drv = vs->drv_tmp;
	if (!vs->src->answer(vs->src->arg, &a))
		return 0;
	vs->src = NULL;
	r = vs->req; /* take_answer may ask again */
	take_answer(vs, v, &r, &a);
	return 1;
}

int views_busy(const struct views *vs)
{
	return vs->src != NULL;
}

/* A read of list l (or the detail) is in flight and the view should say
 * so: one the operator asked for, or a reload lasting over a second. */
static int reading(const struct views *vs, enum views_kind k, double now)
{
	return vs->src && vs->req.kind == k && (!vs->quiet || now - vs->asked_at > 1.0);
}

/* ---- open, close, filter ---- */

void views_open(struct views *vs, enum views_kind k, const struct panel_view *v, const char *cp_id)
{
	struct list *l = list_of(vs, k);

	vs->kind = k;
	if (k == VIEWS_DETAIL) {
		/* another CP's rows must not show under this one's title */
		xstrlcpy(vs->cp, cp_id ? cp_id : "", sizeof vs->cp);
		memset(&vs->dl, 0, sizeof vs->dl);
		vs->ndsess = vs->ndev = 0;
		ask_detail(vs, v, 0);
		return;
	}
	if (k == VIEWS_NONE) {
		abandon(vs);
		return;
	}
	/* back on the newest rows, the filter kept */
	l->sel = l->top = 0;
	ask_list(vs, k, v, VIEWS_FIRST, 0);
}

void views_close(struct views *vs)
{
	abandon(vs);
	vs->kind = VIEWS_NONE;
}

const char *views_filter(const struct views *vs)
{
	return vs->kind == VIEWS_SESSIONS ? vs->sftext : vs->kind == VIEWS_AUDIT ? vs->aftext : "";
}

int views_set_filter(struct views *vs, const struct panel_view *v, const char *text, char msg[EVC_ERR_LEN])
{
	if (vs->kind == VIEWS_SESSIONS) {
		struct views_sfilter f;
		if (views_sfilter_parse(text, v ? v->cps : NULL, v ? v->ncps : 0, &f, msg) == -1)
			return -1;
		vs->sf = f;
		xstrlcpy(vs->sftext, text, sizeof vs->sftext);
	} else if (vs->kind == VIEWS_AUDIT) {
		if (strlen(text) >= sizeof vs->aftext) {
			evc_seterr(msg, "filter too long (at most %d characters)", VIEWS_FILTER_MAX - 1);
			return -1;
		}
		xstrlcpy(vs->aftext, text, sizeof vs->aftext);
	} else {
		evc_seterr(msg, "this view has no filter");
		return -1;
	}
	/* the rows of the old filter stay, titled with it, until the new
	 * ones are in */
	list_of(vs, vs->kind)->sel = list_of(vs, vs->kind)->top = 0;
	ask_list(vs, vs->kind, v, VIEWS_FIRST, 0);
	msg[0] = '\0';
	return 0;
}

/* ---- time and figures as shown ---- */

static void fmt_time(double wall, char *buf, size_t len)
{
	time_t t = (time_t)wall;
	struct tm tm;
	if (wall <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	localtime_r(&t, &tm);
	strftime(buf, len, "%m-%d %H:%M:%S", &tm);
}

static void fmt_iso(double wall, char *buf, size_t len)
{
	time_t t = (time_t)wall;
	struct tm tm;
	if (wall <= 0) {
		buf[0] = '\0';
		return;
	}
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static void fmt_dur(double secs, char *buf, size_t len)
{
	long s = secs > 0 ? (long)secs : 0;
	snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

static double session_secs(const struct views_session *s, double now)
{
	if (s->started_at <= 0)
		return -1;
	return (s->ended_at > 0 ? s->ended_at : now) - s->started_at;
}

/* ---- export ---- */

static void csv_sessions(struct csv_buf *b, const struct views_session *s, size_t n, double now)
{
	static const char *const head[] = { "requested_at", "session_id", "cp_id", "driver_id", "started_at",
					    "ended_at", "duration_s", "kwh", "eur", "outcome", "reason" };
	char t[32];
	for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
		csv_field(b, head[i]);
	csv_end_row(b);
	for (size_t i = 0; i < n; i++) {
		double d = session_secs(&s[i], now);
		fmt_iso(s[i].requested_at, t, sizeof t);
		csv_field(b, t);
		csv_field(b, s[i].id);
		csv_field(b, s[i].cp_id);
		csv_field(b, s[i].driver_id);
		fmt_iso(s[i].started_at, t, sizeof t);
		csv_field(b, t);
		fmt_iso(s[i].ended_at, t, sizeof t);
		csv_field(b, t);
		if (d >= 0)
			csv_num(b, d, 0);
		else
			csv_field(b, "");
		csv_num(b, s[i].kwh, 3);
		csv_num(b, s[i].importe, 2);
		csv_field(b, s[i].outcome[0] ? s[i].outcome : "OPEN");
		csv_field(b, s[i].reason);
		csv_end_row(b);
	}
}

static void csv_audit(struct csv_buf *b, const struct views_audit *a, size_t n)
{
	static const char *const head[] = { "ts", "actor", "source_ip", "action", "cp_id", "detail" };
	char t[32];
	for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
		csv_field(b, head[i]);
	csv_end_row(b);
	for (size_t i = 0; i < n; i++) {
		fmt_iso(a[i].ts, t, sizeof t);
		csv_field(b, t);
		csv_field(b, a[i].actor);
		csv_field(b, a[i].source_ip);
		csv_field(b, a[i].action);
		csv_field(b, a[i].cp_id);
		csv_field(b, a[i].detail);
		csv_end_row(b);
	}
}

int views_command(struct views *vs, const struct panel_view *v, const char *line, int *ok, char msg[EVC_ERR_LEN])
{
	(void)v;
	char what[16] = "";
	const char *p = line;
	struct csv_buf b = { 0 };
	char safe[96];
	size_t rows;

	*ok = 0;
	if (strncasecmp(p, "export", 6) != 0 || (p[6] != ' ' && p[6] != '\0'))
		return 0;
	p += 6;
	while (*p == ' ')
		p++;
	size_t wl = strcspn(p, " ");
	if (wl == 0 || wl >= sizeof what) {
		evc_seterr(msg, "usage: export sessions FILE.csv | export audit FILE.csv");
		return 1;
	}
	memcpy(what, p, wl);
	p += wl;
	while (*p == ' ')
		p++;
	if (!*p) {
		evc_seterr(msg, "usage: export %s FILE.csv", strcasecmp(what, "audit") == 0 ? "audit" : "sessions");
		return 1;
	}
	csv_safe_name(p, safe, sizeof safe);
	if (strcasecmp(what, "sessions") == 0) {
		/* what the sessions view shows: its reads are answered later,
		 * so it must have been read once */
		if (!vs->sl.loaded) {
			evc_seterr(msg, "export: the sessions were not read yet: open the sessions view (S) first");
			return 1;
		}
		if (vs->sl.err[0]) {
			evc_seterr(msg, "export: %s", vs->sl.err);
			return 1;
		}
		csv_sessions(&b, vs->sess, vs->sl.n, clock_wall());
		rows = vs->sl.n;
	} else if (strcasecmp(what, "audit") == 0) {
		if (!vs->al.loaded) {
			evc_seterr(msg, "export: the audit log was not read yet: open the audit view (A) first");
			return 1;
		}
		if (vs->al.err[0]) {
			evc_seterr(msg, "export: %s", vs->al.err);
			return 1;
		}
		csv_audit(&b, vs->aud, vs->al.n);
		rows = vs->al.n;
	} else {
		evc_seterr(msg, "export: sessions or audit, not '%.15s'", what);
		return 1;
	}
	if (csv_write_atomic(p, &b, msg) == 0) {
		evc_seterr(msg, "exported %zu %s row(s) to %s", rows, strcasecmp(what, "audit") == 0 ? "audit" : "session",
			   safe);
		*ok = 1;
	}
	csv_free(&b);
	return 1;
}

/* ---- per-CP memory: link changes and kW samples ---- */

static struct cpmem *mem_of(struct views *vs, const struct cp_view *cp, double now)
{
	struct cpmem *m = hmap_sget(&vs->mem, cp->id);
	if (!m) {
		m = xcalloc(1, sizeof *m);
		xstrlcpy(m->id, cp->id, sizeof m->id);
		m->link = cp->link;
		m->link_since = now;
		hmap_sput(&vs->mem, m->id, m);
	}
	return m;
}

int views_tick(struct views *vs, const struct panel_view *v, double now)
{
	long sec = (long)floor(now);
	int changed = 0;

	for (size_t i = 0; i < v->ncps; i++) {
		const struct cp_view *cp = &v->cps[i];
		struct cpmem *m = mem_of(vs, cp, now);
		if (m->link != cp->link) {
			m->link = cp->link;
			m->link_since = now;
		}
		if (sec == vs->last_sec)
			continue;
		if (strcmp(m->sid, cp->session_id) != 0) {
			xstrlcpy(m->sid, cp->session_id, sizeof m->sid);
			m->nkw = m->head = 0;
		}
		if (cp->state == CP_SUMINISTRANDO && cp->session_id[0]) {
			m->kw[m->head] = (float)cp->kw;
			m->head = (m->head + 1) % SPARK_N;
			if (m->nkw < SPARK_N)
				m->nkw++;
		}
	}
	if (sec != vs->last_sec) {
		vs->last_sec = sec;
		changed = vs->kind == VIEWS_DETAIL;
	}
	if (poll_answer(vs, v))
		changed = vs->kind != VIEWS_NONE;
	if (vs->src) /* a read in flight: no reload over it */
		return changed;
	if (vs->kind == VIEWS_DETAIL && now - vs->dl.read_at >= RELOAD_DETAIL) {
		ask_detail(vs, v, 1);
	} else if (vs->kind != VIEWS_NONE && vs->kind != VIEWS_DETAIL) {
		struct list *l = list_of(vs, vs->kind);
		/* only the newest page follows what happens: an older one the
		 * operator paged to stays put */
		if (l->at_newest && now - l->read_at >= RELOAD_LIST)
			ask_list(vs, vs->kind, v, VIEWS_FIRST, 1);
	}
	return changed;
}

/* ---- drawing ---- */

struct col {
	const char *title;
	int w; /* columns; 0 = the rest */
};

/* One row of columns, each cut to its width (theme_puts: display columns,
 * control characters as '?'). */
static void draw_cols(int y, int cols, const struct col *c, size_t nc, const char *const *txt, attr_t a)
{
	int x = 1;
	theme_fill(stdscr, y, 0, 1, cols, a);
	for (size_t i = 0; i < nc && x < cols; i++) {
		int w = c[i].w ? c[i].w : cols - x;
		if (x + w > cols)
			w = cols - x;
		theme_puts(stdscr, y, x, w, txt[i], a);
		x += w + 1;
	}
}

static void draw_head(int y, int cols, const struct col *c, size_t nc)
{
	const char *t[16];
	for (size_t i = 0; i < nc && i < 16; i++)
		t[i] = c[i].title;
	draw_cols(y, cols, c, nc, t, theme_attr(THEME_DIM) | A_BOLD);
}

static void draw_title(int y, int cols, const char *left, const char *right)
{
	theme_fill(stdscr, y, 0, 1, cols, A_NORMAL);
	theme_puts(stdscr, y, 1, cols - 2, left, A_BOLD);
	int rl = (int)strlen(right);
	int ll = (int)strlen(left);
	if (rl && ll + rl + 4 <= cols)
		theme_puts(stdscr, y, cols - rl - 1, rl, right, theme_attr(THEME_DIM));
}

/* Keep the selection on screen: top moves as little as it must. */
static void scroll_to(struct list *l, int h)
{
	if (h < 1)
		h = 1;
	if (l->sel < l->top)
		l->top = l->sel;
	if (l->sel >= l->top + (size_t)h)
		l->top = l->sel - (size_t)h + 1;
	if (l->top > l->n)
		l->top = 0;
}

static const char *outcome_shown(const struct views_session *s)
{
	return s->outcome[0] ? s->outcome : s->started_at > 0 ? "charging" : "open";
}

static attr_t outcome_attr(const struct views_session *s)
{
	if (!s->outcome[0])
		return theme_attr(THEME_OKTEXT);
	if (strcmp(s->outcome, "TICKET") == 0)
		return A_NORMAL;
	return theme_attr(strcmp(s->outcome, "SUPPLY_ERROR") == 0 ? THEME_ERRTEXT : THEME_WARNTEXT);
}

static const struct col sess_cols[] = {
	{ "Requested", 14 }, { "CP", 12 }, { "Driver", 12 }, { "Duration", 8 }, { "      kWh", 9 },
	{ "     EUR", 8 },   { "Outcome", 17 }, { "Reason", 0 },
};
#define NSESS_COLS (sizeof sess_cols / sizeof sess_cols[0])

static void session_texts(const struct views_session *s, double now, char b[NSESS_COLS][64], const char *t[NSESS_COLS])
{
	double d = session_secs(s, now);
	fmt_time(s->requested_at, b[0], sizeof b[0]);
	snprintf(b[1], sizeof b[1], "%s", s->cp_id);
	snprintf(b[2], sizeof b[2], "%.63s", s->driver_id);
	if (d >= 0)
		fmt_dur(d, b[3], sizeof b[3]);
	else
		snprintf(b[3], sizeof b[3], "-");
	snprintf(b[4], sizeof b[4], "%9.3f", s->kwh);
	snprintf(b[5], sizeof b[5], "%8.2f", s->importe);
	snprintf(b[6], sizeof b[6], "%s", outcome_shown(s));
	for (size_t i = 0; i < NSESS_COLS - 1; i++)
		t[i] = b[i];
	t[NSESS_COLS - 1] = s->reason;
}

static void draw_session_rows(const struct views_session *s, size_t n, size_t top, size_t sel, int selectable,
			      int y, int h, int cols, double now)
{
	char b[NSESS_COLS][64];
	const char *t[NSESS_COLS];
	for (int r = 0; r < h && top + (size_t)r < n; r++) {
		const struct views_session *x = &s[top + (size_t)r];
		attr_t a = selectable && top + (size_t)r == sel ? A_REVERSE : A_NORMAL;
		session_texts(x, now, b, t);
		draw_cols(y + r, cols, sess_cols, NSESS_COLS, t, a);
		/* the outcome in its colour, unless the row is selected */
		if (!(a & A_REVERSE)) {
			int x0 = 1;
			for (size_t i = 0; i < 6; i++)
				x0 += sess_cols[i].w + 1;
			theme_puts(stdscr, y + r, x0, sess_cols[6].w, t[6], outcome_attr(x));
		}
	}
}

static void sparkline(const struct cpmem *m, char *buf, size_t len, double *peak)
{
	static const char *const bars_utf8[] = { "\u2581", "\u2582", "\u2583", "\u2584",
						 "\u2585", "\u2586", "\u2587", "\u2588" };
	static const char bars_ascii[] = "_.-:=+*#";
	float mx = 0;
	size_t n = 0;

	*peak = 0;
	buf[0] = '\0';
	if (!m || m->nkw == 0)
		return;
	for (unsigned i = 0; i < m->nkw; i++)
		if (m->kw[i] > mx)
			mx = m->kw[i];
	*peak = mx;
	for (unsigned i = 0; i < m->nkw; i++) {
		unsigned idx = (m->head + SPARK_N - m->nkw + i) % SPARK_N;
		int lvl = mx > 0 ? (int)lrintf(m->kw[idx] / mx * 7.0f) : 0;
		if (lvl < 0)
			lvl = 0;
		if (lvl > 7)
			lvl = 7;
		if (theme_is_utf8()) {
			if (n + 4 >= len)
				break;
			memcpy(buf + n, bars_utf8[lvl], 3);
			n += 3;
		} else {
			if (n + 2 >= len)
				break;
			buf[n++] = bars_ascii[lvl];
		}
		buf[n] = '\0';
	}
}

static const struct cp_view *find_cp(const struct panel_view *v, const char *id)
{
	for (size_t i = 0; i < v->ncps; i++)
		if (strcmp(v->cps[i].id, id) == 0)
			return &v->cps[i];
	return NULL;
}

/* "read in 1.2 ms", or "reading..." while a read the operator waits for
 * is in flight. */
static void read_note(const struct views *vs, enum views_kind k, const struct list *l, double now, char *buf,
		      size_t len)
{
	if (reading(vs, k, now)) {
		double s = now - vs->asked_at;
		if (s >= 0.5)
			snprintf(buf, len, "reading... %.1f s (Esc stops it)", s);
		else
			snprintf(buf, len, "reading...");
	} else if (!l->loaded) {
		snprintf(buf, len, "not read");
	} else {
		snprintf(buf, len, "read in %.1f ms", l->read_ms);
	}
}

static void draw_detail(struct views *vs, const struct panel_view *v, int y, int h, int cols, double now)
{
	const struct cp_view *cp = find_cp(v, vs->cp);
	const struct cpmem *m = hmap_sget(&vs->mem, vs->cp);
	char buf[512], price[MONEY_STR_LEN], t[32], t2[32], read[64];
	int row = y, end = y + h;

	read_note(vs, VIEWS_DETAIL, &vs->dl, now, read, sizeof read);
	snprintf(buf, sizeof buf, "CP %s", vs->cp);
	draw_title(row++, cols, buf, read);
	if (!cp) {
		theme_puts(stdscr, row++, 2, cols - 3, "this CP is no longer known to Central (Esc: back to the grid)",
			   theme_attr(THEME_WARNTEXT));
		return;
	}
	money_price(price, sizeof price, cp->price);
	snprintf(buf, sizeof buf, "Location %.200s   Price %s EUR/kWh", cp->location, price);
	theme_puts(stdscr, row++, 2, cols - 3, buf, A_NORMAL);
	fmt_time(cp->since, t, sizeof t);
	theme_puts(stdscr, row, 2, 6, "State", A_NORMAL);
	snprintf(buf, sizeof buf, " %s ", theme_state_word(cp->state));
	theme_puts(stdscr, row, 8, cols - 9, buf, theme_state_attr(cp->state) | A_BOLD);
	snprintf(buf, sizeof buf, "%.60s, since %s%s", cp->caption, t,
		 cp->stop_pending ? " (stop sent...)" : cp->resume_pending ? " (resume sent...)" : "");
	theme_puts(stdscr, row++, 8 + (int)strlen(theme_state_word(cp->state)) + 3, cols - 30, buf, A_NORMAL);
	fmt_time(m ? m->link_since : 0, t, sizeof t);
	snprintf(buf, sizeof buf, "Link     %s since %s", cp_link_name(cp->link), t);
	theme_puts(stdscr, row++, 2, cols - 3, buf, cp->link == CP_LINK_DOWN ? theme_attr(THEME_WARNTEXT) : A_NORMAL);
	if (cp->session_id[0] && row < end) {
		fmt_time(cp->session_started, t2, sizeof t2);
		snprintf(buf, sizeof buf, "Session  %.40s driver %.40s  %.2f kW  %.3f kWh  %.2f EUR  started %s",
			 cp->session_id, cp->driver_id, cp->kw, cp->kwh, cp->importe,
			 cp->session_started > 0 ? t2 : "not yet");
		theme_puts(stdscr, row++, 2, cols - 3, buf, theme_attr(THEME_OKTEXT));
		if (row < end) {
			char sp[SPARK_N * 3 + 1];
			double peak;
			sparkline(m, sp, sizeof sp, &peak);
			theme_puts(stdscr, row, 2, 9, "kW 1 min", theme_attr(THEME_DIM));
			theme_puts(stdscr, row, 11, SPARK_N, sp[0] ? sp : "(no sample yet)", theme_attr(THEME_OKTEXT));
			snprintf(buf, sizeof buf, "peak %.2f kW", peak);
			if (11 + SPARK_N + 2 + 16 <= cols)
				theme_puts(stdscr, row, 11 + SPARK_N + 2, 16, buf, theme_attr(THEME_DIM));
			row++;
		}
	} else if (row < end) {
		theme_puts(stdscr, row++, 2, cols - 3, "Session  none open", theme_attr(THEME_DIM));
	}
	if (vs->dl.err[0] && row < end)
		theme_puts(stdscr, row++, 2, cols - 3, vs->dl.err, theme_attr(THEME_ERRTEXT));
	/* the lower part scrolls: sessions (with their heading) then events */
	size_t nlines = 2 + (vs->ndsess ? vs->ndsess : 1) + 1 + (vs->ndev ? vs->ndev : 1);
	int avail = end - row;
	if (avail <= 0)
		return;
	vs->dl.n = nlines;
	if (vs->dl.top + (size_t)avail > nlines)
		vs->dl.top = nlines > (size_t)avail ? nlines - (size_t)avail : 0;
	for (size_t li = vs->dl.top; li < nlines && row < end; li++, row++) {
		size_t s_end = 2 + (vs->ndsess ? vs->ndsess : 1);
		if (li == 0) {
			snprintf(buf, sizeof buf, " Last %zu sessions ", vs->ndsess);
			theme_hline(stdscr, row, 0, cols, theme_attr(THEME_DIM));
			theme_puts(stdscr, row, 2, cols - 3, buf, theme_attr(THEME_DIM) | A_BOLD);
		} else if (li == 1) {
			draw_head(row, cols, sess_cols, NSESS_COLS);
		} else if (li < s_end) {
			if (vs->ndsess)
				draw_session_rows(vs->dsess, vs->ndsess, li - 2, 0, 0, row, 1, cols, now);
			else
				theme_puts(stdscr, row, 2, cols - 3, vs->dl.loaded ? "no session stored" : "reading...",
					   theme_attr(THEME_DIM));
		} else if (li == s_end) {
			snprintf(buf, sizeof buf, " Last %zu events ", vs->ndev);
			theme_hline(stdscr, row, 0, cols, theme_attr(THEME_DIM));
			theme_puts(stdscr, row, 2, cols - 3, buf, theme_attr(THEME_DIM) | A_BOLD);
		} else if (vs->ndev) {
			const struct views_event *e = &vs->dev[li - s_end - 1];
			static const struct col ev_cols[] = { { "", 14 }, { "", 10 }, { "", 0 } };
			const char *tx[3];
			fmt_time(e->ts, t, sizeof t);
			tx[0] = t;
			tx[1] = e->event;
			tx[2] = e->detail;
			draw_cols(row, cols, ev_cols, 3, tx, A_NORMAL);
		} else {
			theme_puts(stdscr, row, 2, cols - 3, vs->dl.loaded ? "no event stored" : "reading...",
				   theme_attr(THEME_DIM));
		}
	}
}

static void list_status(const struct views *vs, enum views_kind k, double now, char *buf, size_t len,
			const char *what)
{
	const struct list *l = list_of((struct views *)vs, k);
	char note[64];

	read_note(vs, k, l, now, note, sizeof note);
	if (l->n == 0)
		snprintf(buf, len, "no %s  %s", what, note);
	else
		snprintf(buf, len, "row %zu of %zu%s%s  %s", l->sel + 1, l->n,
			 l->at_newest ? "" : "  (an older page: Home for the newest)",
			 l->at_oldest ? "" : "  (more past the last)", note);
}

/* The body of a list with no row: being read, or nothing (matching). */
static const char *empty_text(const struct views *vs, enum views_kind k, int filtered, const char *none,
			      const char *no_match)
{
	return !list_of((struct views *)vs, k)->loaded ? "reading..." : filtered ? no_match : none;
}

static void draw_sessions(struct views *vs, int y, int h, int cols, double now)
{
	char left[256], right[160], fd[128], k1[32], k2[32];
	double kwh = 0, eur = 0;
	int row = y;

	for (size_t i = 0; i < vs->sl.n; i++) {
		kwh += vs->sess[i].kwh;
		eur += vs->sess[i].importe;
	}
	views_sfilter_describe(&vs->sf_shown, fd, sizeof fd);
	snprintf(left, sizeof left, "Sessions: %s", fd);
	list_status(vs, VIEWS_SESSIONS, now, right, sizeof right, "session");
	draw_title(row++, cols, left, right);
	snprintf(left, sizeof left, "today %ld sessions %s kWh %s EUR   these %zu lines %s kWh %s EUR",
		 vs->today.sessions, money_fixed(k1, sizeof k1, vs->today.kwh, 3),
		 money_fixed(k2, sizeof k2, vs->today.eur, 2), vs->sl.n,
		 money_fixed(fd, sizeof fd, kwh, 3), money_fixed(right, sizeof right, eur, 2));
	theme_fill(stdscr, row, 0, 1, cols, A_NORMAL);
	theme_puts(stdscr, row++, 1, cols - 2, left, theme_attr(THEME_OKTEXT));
	if (vs->sl.err[0])
		theme_puts(stdscr, row++, 1, cols - 2, vs->sl.err, theme_attr(THEME_ERRTEXT));
	draw_head(row++, cols, sess_cols, NSESS_COLS);
	int lh = y + h - row;
	vs->rows_shown = lh > 0 ? lh : 1;
	if (vs->sl.n == 0) {
		theme_puts(stdscr, row, 2, cols - 3,
			   empty_text(vs, VIEWS_SESSIONS, vs->sf_shown.cp[0] || vs->sf_shown.driver[0] || vs->sf_shown.outcome[0], "no session stored yet",
				      "no session matches the filter (/ then Esc clears it)"),
			   theme_attr(THEME_DIM));
		return;
	}
	scroll_to(&vs->sl, lh);
	draw_session_rows(vs->sess, vs->sl.n, vs->sl.top, vs->sl.sel, 1, row, lh, cols, now);
}

static const struct col aud_cols[] = {
	{ "Time", 14 }, { "Actor", 16 }, { "Source", 15 }, { "Action", 20 }, { "CP", 12 }, { "Detail", 0 },
};
#define NAUD_COLS (sizeof aud_cols / sizeof aud_cols[0])

static void draw_audit(struct views *vs, int y, int h, int cols, double now)
{
	char left[160], right[160], t[32];
	int row = y;

	snprintf(left, sizeof left, "Audit log%s%.63s%s", vs->aftext_shown[0] ? ": rows with \"" : "",
		 vs->aftext_shown, vs->aftext_shown[0] ? "\"" : " (newest first)");
	list_status(vs, VIEWS_AUDIT, now, right, sizeof right, "audit row");
	draw_title(row++, cols, left, right);
	if (vs->al.err[0])
		theme_puts(stdscr, row++, 1, cols - 2, vs->al.err, theme_attr(THEME_ERRTEXT));
	draw_head(row++, cols, aud_cols, NAUD_COLS);
	int lh = y + h - row;
	vs->rows_shown = lh > 0 ? lh : 1;
	if (vs->al.n == 0) {
		theme_puts(stdscr, row, 2, cols - 3,
			   empty_text(vs, VIEWS_AUDIT, vs->aftext_shown[0] != 0, "no audit row yet",
				      "no audit row matches the filter (/ then Esc clears it)"),
			   theme_attr(THEME_DIM));
		return;
	}
	scroll_to(&vs->al, lh);
	for (int r = 0; r < lh && vs->al.top + (size_t)r < vs->al.n; r++) {
		const struct views_audit *a = &vs->aud[vs->al.top + (size_t)r];
		const char *tx[NAUD_COLS];
		fmt_time(a->ts, t, sizeof t);
		tx[0] = t;
		tx[1] = a->actor;
		tx[2] = a->source_ip;
		tx[3] = a->action;
		tx[4] = a->cp_id;
		tx[5] = a->detail;
		draw_cols(row + r, cols, aud_cols, NAUD_COLS, tx,
			  vs->al.top + (size_t)r == vs->al.sel ? A_REVERSE : A_NORMAL);
	}
}

static const struct col drv_cols[] = {
	{ "Driver", 12 }, { "Name", 18 }, { "Open session", 34 }, { "Today", 5 }, { "kWh today", 9 }, { "EUR today", 9 },
};
#define NDRV_COLS (sizeof drv_cols / sizeof drv_cols[0])

static void draw_drivers(struct views *vs, const struct panel_view *v, int y, int h, int cols, double now)
{
	char left[64], right[160], open[160], n[16], k[32], e[32];
	int row = y;
	struct hmap by_driver;

	snprintf(left, sizeof left, "Drivers (registered)");
	list_status(vs, VIEWS_DRIVERS, now, right, sizeof right, "driver registered");
	draw_title(row++, cols, left, right);
	if (vs->drl.err[0])
		theme_puts(stdscr, row++, 1, cols - 2, vs->drl.err, theme_attr(THEME_ERRTEXT));
	draw_head(row++, cols, drv_cols, NDRV_COLS);
	int lh = y + h - row;
	vs->rows_shown = lh > 0 ? lh : 1;
	if (vs->drl.n == 0) {
		theme_puts(stdscr, row, 2, cols - 3,
			   empty_text(vs, VIEWS_DRIVERS, 0, "no driver registered (EV_Central --add-driver)", ""),
			   theme_attr(THEME_DIM));
		return;
	}
	/* the open sessions are the live ones, from the grid's view */
	hmap_init(&by_driver);
	for (size_t i = 0; i < v->ncps; i++)
		if (v->cps[i].driver_id[0])
			hmap_sput(&by_driver, v->cps[i].driver_id, (void *)&v->cps[i]);
	scroll_to(&vs->drl, lh);
	for (int r = 0; r < lh && vs->drl.top + (size_t)r < vs->drl.n; r++) {
		const struct views_driver *d = &vs->drv[vs->drl.top + (size_t)r];
		const struct cp_view *cp = hmap_sget(&by_driver, d->id);
		const char *tx[NDRV_COLS];
		if (cp && cp->state == CP_SUMINISTRANDO)
			snprintf(open, sizeof open, "%s %.2f kW %.3f kWh %.2f EUR", cp->id, cp->kw, cp->kwh, cp->importe);
		else if (cp)
			snprintf(open, sizeof open, "%s %s", cp->id, theme_state_word(cp->state));
		else
			snprintf(open, sizeof open, "-");
		snprintf(n, sizeof n, "%5ld", d->today_sessions);
		snprintf(k, sizeof k, "%9.3f", d->today_kwh);
		snprintf(e, sizeof e, "%9.2f", d->today_eur);
		tx[0] = d->id;
		tx[1] = d->name;
		tx[2] = open;
		tx[3] = n;
		tx[4] = k;
		tx[5] = e;
		draw_cols(row + r, cols, drv_cols, NDRV_COLS, tx,
			  vs->drl.top + (size_t)r == vs->drl.sel ? A_REVERSE : cp ? theme_attr(THEME_OKTEXT) : A_NORMAL);
	}
	hmap_free(&by_driver);
}

void views_draw(struct views *vs, const struct panel_view *v, int y, int h, int cols, double now)
{
	theme_fill(stdscr, y, 0, h, cols, A_NORMAL);
	switch (vs->kind) {
	case VIEWS_DETAIL:
		draw_detail(vs, v, y, h, cols, now);
		break;
	case VIEWS_SESSIONS:
		draw_sessions(vs, y, h, cols, now);
		break;
	case VIEWS_AUDIT:
		draw_audit(vs, y, h, cols, now);
		break;
	case VIEWS_DRIVERS:
		draw_drivers(vs, v, y, h, cols, now);
		break;
	default:
		break;
	}
}

/* ---- keys ---- */

/* The handlers get this: the views and the panel view of this key. */
struct kctx {
	struct views *vs;
	const struct panel_view *v;
};

static int k_pass(void *ctx, int key)
{
	(void)ctx;
	return VIEWS_PASS + key;
}

static int k_back(void *ctx, int key)
{
	struct kctx *c = ctx;
	(void)key;
	views_close(c->vs);
	return KEYS_OK;
}

static int k_switch(void *ctx, int key)
{
	struct kctx *c = ctx;
	views_open(c->vs, key == 'S' ? VIEWS_SESSIONS : key == 'A' ? VIEWS_AUDIT : VIEWS_DRIVERS, c->v, NULL);
	return KEYS_OK;
}

/* Move the selection by delta rows, reading the next older or newer page
 * past either end. */
static void move_sel(struct views *vs, const struct panel_view *v, long delta)
{
	struct list *l = list_of(vs, vs->kind);

	if (vs->kind == VIEWS_DETAIL) {
		long t = (long)l->top + delta;
		l->top = t < 0 ? 0 : (size_t)t;
		return;
	}
	if (l->n == 0)
		return;
	long s = (long)l->sel + delta;
	if (s < 0) {
		if (l->sel == 0 && !l->at_newest)
			ask_list(vs, vs->kind, v, VIEWS_NEWER, 0);
		else
			l->sel = 0;
		return;
	}
	if ((size_t)s >= l->n) {
		if (l->sel == l->n - 1 && !l->at_oldest)
			ask_list(vs, vs->kind, v, VIEWS_OLDER, 0);
		else
			l->sel = l->n - 1;
		return;
	}
	l->sel = (size_t)s;
}

static int k_up(void *ctx, int key)
{
	struct kctx *c = ctx;
	(void)key;
	move_sel(c->vs, c->v, -1);
	return KEYS_OK;
}

static int k_down(void *ctx, int key)
{
	struct kctx *c = ctx;
	(void)key;
	move_sel(c->vs, c->v, 1);
	return KEYS_OK;
}

static int k_pgup(void *ctx, int key)
{
	struct kctx *c = ctx;
	(void)key;
	move_sel(c->vs, c->v, -(long)c->vs->rows_shown);
	return KEYS_OK;
}

static int k_pgdn(void *ctx, int key)
{
	struct kctx *c = ctx;
	(void)key;
	move_sel(c->vs, c->v, (long)c->vs->rows_shown);
	return KEYS_OK;
}

static int k_home(void *ctx, int key)
{
	struct kctx *c = ctx;
	struct list *l = list_of(c->vs, c->vs->kind);
	(void)key;
	if (c->vs->kind == VIEWS_DETAIL) {
		l->top = 0;
		return KEYS_OK;
	}
	l->sel = l->top = 0;
	/* on an older page, or one being read: the newest page instead */
	if (!l->at_newest || (c->vs->src && c->vs->req.kind == c->vs->kind))
		ask_list(c->vs, c->vs->kind, c->v, VIEWS_FIRST, 0);
	return KEYS_OK;
}

static int k_end(void *ctx, int key)
{
	struct kctx *c = ctx;
	struct list *l = list_of(c->vs, c->vs->kind);
	(void)key;
	if (c->vs->kind == VIEWS_DETAIL)
		l->top = l->n;
	else if (l->n)
		l->sel = l->n - 1;
	return KEYS_OK;
}

/* Enter on a row: a session's or audit row's CP detail; a driver's
 * sessions. */
static int k_enter(void *ctx, int key)
{
	struct kctx *c = ctx;
	struct views *vs = c->vs;
	struct list *l = list_of(vs, vs->kind);
	char msg[EVC_ERR_LEN];
	(void)key;
	if (l->n == 0)
		return KEYS_OK;
	if (vs->kind == VIEWS_SESSIONS) {
		views_open(vs, VIEWS_DETAIL, c->v, vs->sess[l->sel].cp_id);
	} else if (vs->kind == VIEWS_AUDIT) {
		if (vs->aud[l->sel].cp_id[0])
			views_open(vs, VIEWS_DETAIL, c->v, vs->aud[l->sel].cp_id);
	} else if (vs->kind == VIEWS_DRIVERS) {
		char f[VIEWS_FILTER_MAX];
		snprintf(f, sizeof f, "driver:%.56s", vs->drv[l->sel].id);
		vs->kind = VIEWS_SESSIONS;
		if (views_set_filter(vs, c->v, f, msg) == -1)
			xstrlcpy(vs->sl.err, msg, sizeof vs->sl.err);
	}
	return KEYS_OK;
}

#define COMMON_KEYS                                                                                    \
	{ 27, "Esc", "back to the grid", k_back, KEYS_BAR, "grid" },                                   \
	{ 'S', "S", "sessions view", k_switch, KEYS_BAR, "sessions" },                                 \
	{ 'A', "A", "audit view", k_switch, KEYS_BAR, "audit" },                                       \
	{ 'D', "D", "drivers view", k_switch, KEYS_BAR, "drivers" },                                   \
	{ ':', ":", ":export sessions|audit FILE.csv, and the grid's commands", k_pass, 0, NULL },     \
	{ '?', "?", "this help", k_pass, KEYS_BAR, "help" },                                           \
	{ 'q', "q", "quit (asks y/N)", k_pass, 0, NULL },                                              \
	{ 12, "^L", "redraw the whole screen", k_pass, 0, NULL }

#define LIST_KEYS(what)                                                                                \
	{ KEY_UP, "Up", "select the " what " above", k_up, 0, NULL },                                  \
	{ 'k', "k", "select the " what " above", k_up, 0, NULL },                                      \
	{ KEY_DOWN, "Down", "select the " what " below", k_down, 0, NULL },                            \
	{ 'j', "j", "select the " what " below", k_down, 0, NULL },                                    \
	{ KEY_NPAGE, "PgDn", "a screen down (older rows past the last)", k_pgdn, 0, NULL },           \
	{ KEY_PPAGE, "PgUp", "a screen up (newer rows past the first)", k_pgup, 0, NULL },            \
	{ KEY_HOME, "Home", "the first (newest) row", k_home, 0, NULL },                               \
	{ 'g', "g", "the first (newest) row", k_home, 0, NULL },                                       \
	{ KEY_END, "End", "the last row read", k_end, 0, NULL },                                       \
	{ 'G', "G", "the last row read", k_end, 0, NULL }

static const struct keys_entry detail_list[] = {
	{ 'p', "p", "stop this CP (asks y/N)", k_pass, KEYS_COMMAND | KEYS_BAR, "stop" },
	{ 'r', "r", "resume this CP (asks y/N)", k_pass, KEYS_COMMAND | KEYS_BAR, "resume" },
	{ 'K', "K", "revoke this CP's keys (asks y/N)", k_pass, KEYS_COMMAND | KEYS_BAR, "revoke" },
	{ KEY_UP, "Up", "scroll the sessions and events up", k_up, 0, NULL },
	{ 'k', "k", "scroll the sessions and events up", k_up, 0, NULL },
	{ KEY_DOWN, "Down", "scroll the sessions and events down", k_down, 0, NULL },
	{ 'j', "j", "scroll the sessions and events down", k_down, 0, NULL },
	{ KEY_NPAGE, "PgDn", "scroll a screen down", k_pgdn, 0, NULL },
	{ KEY_PPAGE, "PgUp", "scroll a screen up", k_pgup, 0, NULL },
	{ KEY_HOME, "Home", "scroll to the top", k_home, 0, NULL },
	{ KEY_END, "End", "scroll to the bottom", k_end, 0, NULL },
	COMMON_KEYS,
};

static const struct keys_entry sessions_list[] = {
	LIST_KEYS("session"),
	{ '\r', "Enter", "the selected session's CP detail", k_enter, KEYS_BAR, "CP" },
	{ '\n', "Enter", "the selected session's CP detail", k_enter, 0, NULL },
	{ KEY_ENTER, "Enter", "the selected session's CP detail", k_enter, 0, NULL },
	{ '/', "/", "filter by CP, driver, outcome (cp:ID driver:ID outcome:W)", k_pass, KEYS_BAR, "filter" },
	COMMON_KEYS,
};

static const struct keys_entry audit_list[] = {
	LIST_KEYS("row"),
	{ '\r', "Enter", "the selected row's CP detail", k_enter, KEYS_BAR, "CP" },
	{ '\n', "Enter", "the selected row's CP detail", k_enter, 0, NULL },
	{ KEY_ENTER, "Enter", "the selected row's CP detail", k_enter, 0, NULL },
	{ '/', "/", "filter: rows holding every word (actor, action, CP, detail)", k_pass, KEYS_BAR, "filter" },
	COMMON_KEYS,
};

static const struct keys_entry drivers_list[] = {
	LIST_KEYS("driver"),
	{ '\r', "Enter", "the selected driver's sessions", k_enter, KEYS_BAR, "sessions of" },
	{ '\n', "Enter", "the selected driver's sessions", k_enter, 0, NULL },
	{ KEY_ENTER, "Enter", "the selected driver's sessions", k_enter, 0, NULL },
	COMMON_KEYS,
};

#define TABLE(a) { a, sizeof a / sizeof a[0] }
static const struct keys_table detail_keys = TABLE(detail_list);
static const struct keys_table sessions_keys = TABLE(sessions_list);
static const struct keys_table audit_keys = TABLE(audit_list);
static const struct keys_table drivers_keys = TABLE(drivers_list);

const struct keys_table *views_keys(const struct views *vs)
{
	switch (vs->kind) {
	case VIEWS_DETAIL:
		return &detail_keys;
	case VIEWS_SESSIONS:
		return &sessions_keys;
	case VIEWS_AUDIT:
		return &audit_keys;
	case VIEWS_DRIVERS:
		return &drivers_keys;
	default:
		return NULL;
	}
}

size_t views_all_keys(const struct keys_table **tabs, const char **titles, size_t max)
{
	static const struct keys_table *const t[] = { &detail_keys, &sessions_keys, &audit_keys, &drivers_keys };
	static const char *const n[] = { "CP detail (Enter on a card)", "Sessions (S)", "Audit log (A)",
					 "Drivers (D)" };
	size_t i;
	for (i = 0; i < 4 && i < max; i++) {
		tabs[i] = t[i];
		titles[i] = n[i];
	}
	return i;
}

int views_key(struct views *vs, int key, const struct panel_view *v, int readonly)
{
	struct kctx c = { vs, v };
	const struct keys_table *t = views_keys(vs);
	if (!t)
		return KEYS_UNBOUND;
	return keys_dispatch(t, key, &c, readonly);
}
