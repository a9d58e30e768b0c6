/* Central's control core: every rule of evcharging(7) RULES as a pure state
 * machine. Events in, effects out (struct core_fxlist); no I/O.
 *
 * Facts are kept apart per CP (link_up, stopped, fault, session) and the
 * shown state is always derived from them (derive_state), so no event can
 * leave a state that contradicts the facts: RECOVER cannot undo an operator
 * stop, a reconnect cannot hide a fault.
 *
 * Sessions end in exactly one place (end_session), which detaches them from
 * every index before freeing, so any later message naming them (duplicate
 * telemetry, a Kafka AVERIADO after a link FAULT, a SUPPLY_END after PARAR)
 * finds nothing and changes nothing.
 *
 * Lookups are O(1) or O(log n) for 10,000 CPs: CPs live in an array sorted by
 * id (bsearch; also the id order the views want), connections, sessions and
 * drivers in open-addressing hash tables. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/central/core.h"
#include "evc/crypto.h"
#include "evc/hmap.h"
#include "evc/money.h"
#include "evc/utf8.h"
#include "evc/xalloc.h"

#define DEFAULT_PRICE 0.30

/* ------------------------------------------------------------------ */
/* names                                                                */

const char *core_outcome_name(enum core_outcome o)
{
	switch (o) {
	case CORE_OUT_TICKET: return "TICKET";
	case CORE_OUT_SUPPLY_ERROR: return "SUPPLY_ERROR";
	case CORE_OUT_SESSION_CANCELLED: return "SESSION_CANCELLED";
	case CORE_OUT_OPEN: break;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* the core                                                             */

/* A session with the core's private bookkeeping; cp->session points at pub. */
struct sess {
	struct core_session pub; /* first member: (struct sess *)cp->session */
	struct core_cp *cp;
	size_t open_idx;         /* index in core.open */
	int seq_seen;            /* some telemetry with a seq was applied */
	int seq_jump_logged;     /* one warning per session about seq jumps */
	int reoffered;           /* AUTORIZAR sent again after a link loss */
};

/* A request already answered, kept so a replay of it is not a new request
 * (Kafka delivers at least once; a crash replays what was not committed). */
struct seen_req {
	char key[2 * MSG_ID_MAX + 2]; /* user_id '\n' request_id */
	double expires;               /* monotonic */
};

struct core {
	struct core_config cfg;
	struct core_cp **cps;    /* sorted by id */
	size_t ncps, capcps;
	struct hmap by_conn;      /* conn -> struct core_cp (link up) */
	struct hmap sessions;     /* session id -> struct sess (open only) */
	struct hmap by_driver;    /* driver id -> struct sess (open only) */
	struct hmap drivers;      /* driver id -> owned copy of the id */
	struct sess **open;      /* open sessions, for the timeout sweep */
	size_t nopen, capopen;
	uint64_t counter;        /* session id uniqueness within one ms */
	size_t nengine_faults;   /* CPs with engine_fault set, for the tick */
	size_t ngrace;           /* CPs with a link grace running */
	double mono;             /* core_set_mono */
	/* Telemetry can only arrive while the broker is reachable: the supply
	 * watchdog waits while it is not, and counts from its return. */
	int kafka_down;
	double tel_epoch;        /* monotonic: when the broker came back */
	struct hmap seen_req;    /* key -> struct seen_req */
	struct seen_req **req_fifo; /* the same, oldest first: they expire in order */
	size_t req_head, req_n, req_cap;
	/* Frames before REGISTER are refused without a log line each; one
	 * line every PREREG_REPORT s says how many. */
	unsigned long prereg_refused;
	double prereg_next;
	struct hmap links;       /* conn -> struct linkinfo: every link up, registered or not */
	struct hmap addrs;       /* ip -> struct addr_rl: failed REGISTERs per address */
	/* The weather rule (evcharging(7) RULES, Weather): the last reading
	 * of each city, in first-reported order. Not stored. */
	struct core_weather_city cities[CORE_WEATHER_CITIES];
	size_t ncities;
	double threshold;
};

/* A link's kind and address, from core_on_link_up. */
struct linkinfo {
	char peer[64];
	int tls;
};

/* Failed REGISTERs from one address (evcharging(7) SECURITY): more than
 * REG_FAIL_MAX in REG_FAIL_WINDOW s and it is refused RATE_LIMITED for
 * REG_BLOCK s. */
struct addr_rl {
	char ip[64];
	double window_start; /* monotonic */
	unsigned fails;
	double blocked_until;
	double refused_audit_until; /* PLAIN_LINK_REFUSED audited at most once a window */
};
#define REG_FAIL_MAX 5
#define REG_FAIL_WINDOW 60.0
#define REG_BLOCK 60.0
#define ADDRS_MAX 4096

static void end_link(struct core *c, uint64_t conn, const char *reason, double now, struct core_fxlist *fx);
static void weather_reconcile(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx);
static void weather_new_place(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx);
static int weather_refresh(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx);
static struct core_weather_city *weather_holder(const struct core *c, const struct core_cp *cp);
static const char *weather_why(char *buf, size_t n, const struct core_weather_city *w);
static void fx_key(struct core_fxlist *fx, double now, const struct core_cp *cp, int plain, int store);

/* s between the summaries of frames refused before REGISTER */
#define PREREG_REPORT 10.0
/* warnings about one CP's frames: at most WARN_BURST a WARN_WINDOW s */
#define WARN_WINDOW 10.0
#define WARN_BURST 5
/* s an open session waits for its CP after Central restarted: more than
 * the monitor's longest reconnect backoff (30 s) */
#define RECOVERY_GRACE 45.0

void core_config_defaults(struct core_config *c)
{
	memset(c, 0, sizeof(*c));
	c->request_max_age = 60;
	c->reservation_timeout = 120;
	c->supply_timeout = 10;
	c->link_grace = 10;
	c->seq_jump_max = 10000;
	c->plain_links = 1;
}

struct core *core_new(const struct core_config *cfg)
{
	struct core *c = xcalloc(1, sizeof(*c));
	(void)utf8_fold_ready(); /* the weather rule's locale is read now, not in a turn */
	if (cfg)
		c->cfg = *cfg;
	else
		core_config_defaults(&c->cfg);
	if (!(c->cfg.request_max_age > 0))
		c->cfg.request_max_age = 60;
	if (!(c->cfg.reservation_timeout > 0))
		c->cfg.reservation_timeout = 120;
	if (!(c->cfg.supply_timeout > 0))
		c->cfg.supply_timeout = 10;
	if (!(c->cfg.link_grace >= 0))
		c->cfg.link_grace = 10;
	if (c->cfg.seq_jump_max == 0)
		c->cfg.seq_jump_max = 10000;
	if (!(c->cfg.weather_threshold >= CORE_WEATHER_MIN && c->cfg.weather_threshold <= CORE_WEATHER_MAX))
		c->cfg.weather_threshold = 0.0;
	c->threshold = c->cfg.weather_threshold;
	hmap_init(&c->seen_req);
	hmap_init(&c->links);
	hmap_init(&c->addrs);
	hmap_init(&c->by_conn);
	hmap_init(&c->sessions);
	hmap_init(&c->by_driver);
	hmap_init(&c->drivers);
	return c;
}

void core_free(struct core *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nopen; i++)
		free(c->open[i]);
	free(c->open);
	for (size_t i = 0; i < c->ncps; i++)
		free(c->cps[i]);
	free(c->cps);
	void *v;
	for (size_t i = 0; (v = hmap_next(&c->drivers, &i)) != NULL;)
		free(v);
	for (size_t i = 0; i < c->req_n; i++)
		free(c->req_fifo[(c->req_head + i) % c->req_cap]);
	free(c->req_fifo);
	hmap_free(&c->seen_req);
	for (size_t i = 0; (v = hmap_next(&c->links, &i)) != NULL;)
		free(v);
	hmap_free(&c->links);
	for (size_t i = 0; (v = hmap_next(&c->addrs, &i)) != NULL;)
		free(v);
	hmap_free(&c->addrs);
	hmap_free(&c->by_conn);
	hmap_free(&c->sessions);
	hmap_free(&c->by_driver);
	hmap_free(&c->drivers);
	free(c);
}

/* ------------------------------------------------------------------ */
/* effects                                                              */

void core_fxlist_init(struct core_fxlist *l)
{
	memset(l, 0, sizeof(*l));
}

/* Effects are about 1 KB each and a stop of 10,000 CPs makes 20,000 of them: keep
 * the memory of an ordinary batch, give back what one huge batch took. */
#define FXLIST_KEEP 1024

void core_fxlist_clear(struct core_fxlist *l)
{
	l->n = 0;
	if (l->cap > FXLIST_KEEP) {
		l->v = xreallocarray(l->v, FXLIST_KEEP, sizeof(*l->v));
		l->cap = FXLIST_KEEP;
	}
}

void core_fxlist_free(struct core_fxlist *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

struct core_fx *core_fx_push(struct core_fxlist *l, enum core_fx_kind kind, double now)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	struct core_fx *f = &l->v[l->n++];
	f->kind = kind;
	f->ts = now;
	return f;
}

/* Bits of what a later effect of the list already covers, per id. */
#define COALESCE_ROW 1u    /* STORE_SESSION of this session id */
#define COALESCE_UPDATE 2u /* CONSUMO_UPDATE of this session id */
#define COALESCE_SCREEN 4u /* SCREEN of this CP id */

static unsigned coalesce_bit(const struct core_fx *x, const char **id)
{
	switch (x->kind) {
	case CORE_FX_STORE_SESSION:
		*id = x->u.session.id;
		return COALESCE_ROW;
	case CORE_FX_PRODUCE:
		if (x->u.produce.type != MSG_CONSUMO_UPDATE || !x->u.produce.session_id[0])
			return 0;
		*id = x->u.produce.session_id;
		return COALESCE_UPDATE;
	case CORE_FX_SCREEN:
		*id = x->u.screen.cp_id;
		return COALESCE_SCREEN;
	default:
		return 0;
	}
}

size_t core_fxlist_coalesce(struct core_fxlist *l, struct hmap *scratch)
{
	/* An ordinary turn has at most one of them: nothing to look up. */
	size_t candidates = 0;
	const char *unused;
	for (size_t i = 0; i < l->n && candidates < 2; i++)
		candidates += coalesce_bit(&l->v[i], &unused) != 0;
	if (candidates < 2)
		return 0;
	/* Backwards: the first of a kind met for an id is its last in the
	 * list, the one kept; any earlier one is dropped. */
	hmap_clear(scratch);
	size_t dropped = 0;
	unsigned char *drop = NULL;
	for (size_t i = l->n; i-- > 0;) {
		const char *id = NULL;
		unsigned bit = coalesce_bit(&l->v[i], &id);
		if (bit == 0)
			continue;
		uintptr_t seen = (uintptr_t)hmap_sget(scratch, id);
		if (seen & bit) {
			if (drop == NULL)
				drop = xcalloc(l->n, 1);
			drop[i] = 1;
			dropped++;
			continue;
		}
		/* Values must be non-NULL: the bits are never 0 here. The key
		 * points into the list, which does not move until the end. */
		hmap_sput(scratch, id, (void *)(seen | bit));
	}
	hmap_clear(scratch); /* its keys point into entries about to move */
	if (dropped == 0)
		return 0;
	size_t o = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (drop[i])
			continue;
		if (o != i)
			l->v[o] = l->v[i];
		o++;
	}
	l->n = o;
	free(drop);
	return dropped;
}


/* Copy text into dst of size n as valid UTF-8 without control bytes: these
 * strings end up in frames, JSON messages and log lines, and a CP's FAULT
 * reason with a stray byte must not make the driver's SUPPLY_ERROR
 * unencodable. Bad bytes become '?'; a cut never splits a character. */
static void text_copy(char *dst, size_t n, const char *src)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t o = 0;
	while (*p) {
		/* The NUL fails as a continuation byte, so no read passes it. */
		int len = (int)utf8_seq(p, 4);
		if (len <= 1) {
			if (o + 1 >= n)
				break;
			dst[o++] = (len == 0 || *p < 0x20 || *p == 0x7f) ? '?' : (char)*p;
			p++;
			continue;
		}
		if (o + (size_t)len >= n)
			break;
		memcpy(dst + o, p, (size_t)len);
		o += (size_t)len;
		p += len;
	}
	dst[o] = '\0';
}

static void __attribute__((format(printf, 3, 0))) vtext(char *dst, size_t n, const char *fmt, va_list ap)
{
	char buf[2 * LINK_DATA_MAX];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	text_copy(dst, n, buf);
}

static void __attribute__((format(printf, 3, 4))) textf(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vtext(dst, n, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 5, 6)))
fx_log(struct core_fxlist *l, double now, enum log_level lvl, const char *cp_id, const char *fmt, ...)
{
	struct core_fx *f = core_fx_push(l, CORE_FX_LOG, now);
	f->u.log.level = lvl;
	xstrlcpy(f->u.log.cp_id, cp_id ? cp_id : "", sizeof(f->u.log.cp_id));
	f->u.log.tag[0] = '\0';
	va_list ap;
	va_start(ap, fmt);
	vtext(f->u.log.text, sizeof(f->u.log.text), fmt, ap);
	va_end(ap);
}

void core_fx_audit(struct core_fxlist *l, double now, const char *actor, const char *source_ip, const char *action,
		   const char *cp_id, const char *fmt, ...)
{
	struct core_fx *f = core_fx_push(l, CORE_FX_AUDIT, now);
	xstrlcpy(f->u.audit.actor, actor, sizeof(f->u.audit.actor));
	xstrlcpy(f->u.audit.source_ip, source_ip ? source_ip : "", sizeof(f->u.audit.source_ip));
	xstrlcpy(f->u.audit.action, action, sizeof(f->u.audit.action));
	xstrlcpy(f->u.audit.cp_id, cp_id ? cp_id : "", sizeof(f->u.audit.cp_id));
	va_list ap;
	va_start(ap, fmt);
	vtext(f->u.audit.detail, sizeof(f->u.audit.detail), fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 5, 6)))
fx_send(struct core_fxlist *l, double now, uint64_t conn, const char *cp_id, const char *fmt, ...)
{
	(void)cp_id; /* who it is for, at the call site */
	struct core_fx *f = core_fx_push(l, CORE_FX_SEND, now);
	f->u.link.conn = conn;
	f->u.link.raw = 0;
	va_list ap;
	va_start(ap, fmt);
	vtext(f->u.link.text, sizeof(f->u.link.text), fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 5, 6)))
fx_event(struct core_fxlist *l, double now, const char *cp_id, const char *event, const char *fmt, ...)
{
	struct core_fx *f = core_fx_push(l, CORE_FX_STORE_EVENT, now);
	xstrlcpy(f->u.event.cp_id, cp_id, sizeof(f->u.event.cp_id));
	xstrlcpy(f->u.event.event, event, sizeof(f->u.event.event));
	va_list ap;
	va_start(ap, fmt);
	vtext(f->u.event.detail, sizeof(f->u.event.detail), fmt, ap);
	va_end(ap);
}

static void fx_store_cp(struct core_fxlist *l, double now, const struct core_cp *cp)
{
	struct core_fx *f = core_fx_push(l, CORE_FX_STORE_CP, now);
	struct core_cp_row *r = &f->u.cp;
	xstrlcpy(r->id, cp->id, sizeof(r->id));
	xstrlcpy(r->location, cp->location, sizeof(r->location));
	r->price = cp->price;
	r->state = cp->state;
	r->stopped = cp->stopped;
	r->fault = cp->fault;
	r->state_since = cp->state_since;
}

static void fx_store_session(struct core_fxlist *l, double now, const struct core_session *s)
{
	struct core_fx *f = core_fx_push(l, CORE_FX_STORE_SESSION, now);
	f->u.session = *s;
}

static void fx_screen(struct core_fxlist *l, double now, const char *cp_id)
{
	struct core_fx *f = core_fx_push(l, CORE_FX_SCREEN, now);
	xstrlcpy(f->u.screen.cp_id, cp_id, sizeof(f->u.screen.cp_id));
}

/* A driver notification; the caller fills the type's own fields.
 * request_id (NULL or "" for none) is the one of the REQUEST_CHARGE being
 * answered, echoed so the driver can tell this answer from a late one to
 * an older request on the same CP. One that could not be encoded (a
 * hand-edited database) is left out rather than losing the notification. */
static struct msg *fx_notify(struct core_fxlist *l, double now, enum msg_type type, const char *user_id,
			     const char *cp_id, const char *session_id, const char *request_id)
{
	struct core_fx *f = core_fx_push(l, CORE_FX_PRODUCE, now);
	struct msg *m = &f->u.produce;
	msg_init(m, type);
	xstrlcpy(m->user_id, user_id, sizeof(m->user_id));
	xstrlcpy(m->cp_id, cp_id, sizeof(m->cp_id));
	if (session_id && session_id[0]) {
		xstrlcpy(m->session_id, session_id, sizeof(m->session_id));
		m->has_session_id = 1;
	}
	if (request_id && msg_valid_session_id(request_id)) {
		xstrlcpy(m->request_id, request_id, sizeof(m->request_id));
		m->has_request_id = 1;
	}
	m->timestamp = now;
	m->has_timestamp = 1;
	return m;
}

/* The requests pane: the request (rebuilt from what we know) and its outcome. */
static void __attribute__((format(printf, 8, 9)))
fx_request(struct core_fxlist *l, double now, const char *user_id, const char *cp_id, const char *request_id,
	   double requested_at, const char *session_id, const char *fmt, ...)
{
	struct core_fx *f = core_fx_push(l, CORE_FX_REQUEST, now);
	xstrlcpy(f->u.request.user_id, user_id, sizeof(f->u.request.user_id));
	xstrlcpy(f->u.request.cp_id, cp_id, sizeof(f->u.request.cp_id));
	xstrlcpy(f->u.request.request_id, request_id ? request_id : "", sizeof(f->u.request.request_id));
	xstrlcpy(f->u.request.session_id, session_id ? session_id : "", sizeof(f->u.request.session_id));
	f->u.request.requested_at = requested_at;
	va_list ap;
	va_start(ap, fmt);
	vtext(f->u.request.outcome, sizeof(f->u.request.outcome), fmt, ap);
	va_end(ap);
}

/* An audit row about a driver: actor driver:<id> (an id that is not one
 * is not echoed). */
static void __attribute__((format(printf, 6, 7)))
audit_driver(struct core_fxlist *fx, double now, const char *driver_id, const char *action, const char *cp_id,
	     const char *fmt, ...)
{
	char actor[80], detail[CORE_AUDIT_DETAIL_MAX + 1];
	snprintf(actor, sizeof(actor), "driver:%s", msg_valid_user_id(driver_id) ? driver_id : "?");
	va_list ap;
	va_start(ap, fmt);
	vtext(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	core_fx_audit(fx, now, actor, NULL, action, cp_id, "%s", detail);
}

/* ------------------------------------------------------------------ */
/* numbers and text, independent of the C locale (the panel may set one
 * whose decimal point is ',', and the wire wants '.')                   */

/* Split DATA in place on '#'; fields beyond max are ignored (evcharging(7) lets
 * anyone add optional trailing fields). */
static int split_fields(char *data, char *f[], int max)
{
	int n = 0;
	char *p = data;
	for (;;) {
		if (n < max)
			f[n++] = p;
		char *h = strchr(p, '#');
		if (!h)
			break;
		*h = '\0';
		p = h + 1;
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* CPs                                                                  */

static size_t cp_lower_bound(const struct core *c, const char *id, int *found)
{
	size_t lo = 0, hi = c->ncps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(c->cps[mid]->id, id);
		if (r == 0) {
			*found = 1;
			return mid;
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

static struct core_cp *cp_find(const struct core *c, const char *id)
{
	int found;
	size_t i = cp_lower_bound(c, id, &found);
	return found ? c->cps[i] : NULL;
}

static struct core_cp *cp_insert(struct core *c, const char *id, double now)
{
	int found;
	size_t i = cp_lower_bound(c, id, &found);
	if (found)
		return c->cps[i];
	if (c->ncps == c->capcps) {
		c->capcps = c->capcps ? c->capcps * 2 : 64;
		c->cps = xreallocarray(c->cps, c->capcps, sizeof(*c->cps));
	}
	memmove(&c->cps[i + 1], &c->cps[i], (c->ncps - i) * sizeof(*c->cps));
	struct core_cp *cp = xcalloc(1, sizeof(*cp));
	xstrlcpy(cp->id, id, sizeof(cp->id));
	cp->state = CP_DESCONECTADO;
	cp->state_since = now;
	c->cps[i] = cp;
	c->ncps++;
	return cp;
}

static enum cp_state derive_state(const struct core_cp *cp)
{
	if (!cp->link_up)
		return CP_DESCONECTADO;
	if (cp->stopped || cp->revoked || (cp->weather_stop && cp->halted))
		return CP_FUERA_DE_SERVICIO;
	if (cp->fault || cp->engine_fault)
		return CP_AVERIADO;
	/* Halted by a weather stop since cleared, its REANUDAR on the way
	 * (or held back by a fault): out of service until it acknowledges. */
	if (cp->halted)
		return CP_FUERA_DE_SERVICIO;
	if (cp->session && cp->session->charging)
		return CP_SUMINISTRANDO;
	if (cp->session)
		return CP_RESERVADO;
	return CP_ACTIVADO;
}

/* Re-derive the state after facts changed. A change is stored, logged,
 * recorded in cp_events and shown; store forces the row to be written even
 * without a change (stopped, location or price changed). */
static void update_state(struct core *c, struct core_cp *cp, double now, int store, const char *why,
			 struct core_fxlist *fx)
{
	(void)c;
	enum cp_state st = derive_state(cp), old = cp->state;
	if (st == old) {
		if (store) {
			fx_store_cp(fx, now, cp);
			fx_screen(fx, now, cp->id);
			core_fx_push(fx, CORE_FX_STATUS, now);
		}
		return;
	}
	cp->state = st;
	cp->state_since = now;
	/* The event before the row: the row's upsert then carries the
	 * history's new head with it (evcharging(7) DATABASE, cp_events). */
	fx_event(fx, now, cp->id, "STATE", "%s -> %s: %s", cp_state_name(old), cp_state_name(st), why);
	fx_store_cp(fx, now, cp);
	fx_screen(fx, now, cp->id);
	core_fx_push(fx, CORE_FX_STATUS, now);
	fx_log(fx, now, LOG_INFO, cp->id, "CP %s %s -> %s (%s)", cp->id, cp_state_name(old), cp_state_name(st),
	       why);
}

/* ------------------------------------------------------------------ */
/* sessions                                                             */

static struct sess *sess_of(struct core_session *s)
{
	return (struct sess *)s; /* pub is the first member */
}

static void clear_grace(struct core *c, struct core_cp *cp)
{
	if (cp->grace_until) {
		cp->grace_until = 0;
		c->ngrace--;
	}
}

static void sess_detach(struct core *c, struct sess *s)
{
	if (s->cp && s->cp->session == &s->pub)
		clear_grace(c, s->cp);
	hmap_sdel(&c->sessions, s->pub.id);
	if (hmap_sget(&c->by_driver, s->pub.driver_id) == s)
		hmap_sdel(&c->by_driver, s->pub.driver_id);
	if (s->cp && s->cp->session == &s->pub)
		s->cp->session = NULL;
	size_t i = s->open_idx;
	c->open[i] = c->open[--c->nopen];
	c->open[i]->open_idx = i;
}

/* The one place a session ends. Stores the outcome, tells the driver (unless
 * the caller sends its own message, as NACK does with AUTH_DENIED), and
 * frees it. The caller re-derives the CP's state afterwards, once, so a
 * FAULT mid-supply is one SUMINISTRANDO -> AVERIADO change. */
static void end_session(struct core *c, struct sess *s, enum core_outcome outcome, const char *reason, int notify,
			double now, struct core_fxlist *fx)
{
	struct core_session *p = &s->pub;
	char a[32], b[32], d[32];
	p->outcome = outcome;
	/* The end is the start plus the monotonic duration: a step of the
	 * wall clock meanwhile cannot make a ticket end before it began. */
	if (p->started_at > 0 && p->started_mono > 0 && c->mono >= p->started_mono)
		p->ended_at = p->started_at + (c->mono - p->started_mono);
	else
		p->ended_at = now;
	p->importe = money_amount(p->kwh, p->price);
	if (outcome != CORE_OUT_TICKET)
		text_copy(p->reason, sizeof(p->reason), reason ? reason : "");
	fx_store_session(fx, now, p);
	if (notify) {
		struct msg *m;
		switch (outcome) {
		case CORE_OUT_TICKET:
			m = fx_notify(fx, now, MSG_TICKET, p->driver_id, p->cp_id, p->id, p->request_id);
			m->kwh = p->kwh;
			m->importe = p->importe;
			m->price = p->price;
			m->started_at = p->started_at > 0 ? p->started_at : p->authorised_at;
			m->ended_at = p->ended_at;
			break;
		case CORE_OUT_SUPPLY_ERROR:
			m = fx_notify(fx, now, MSG_SUPPLY_ERROR, p->driver_id, p->cp_id, p->id, p->request_id);
			text_copy(m->reason, sizeof(m->reason), p->reason);
			m->kwh_partial = m->kwh = p->kwh;
			m->importe_partial = m->importe = p->importe;
			m->price = p->price;
			break;
		case CORE_OUT_SESSION_CANCELLED:
		case CORE_OUT_OPEN:
			m = fx_notify(fx, now, MSG_SESSION_CANCELLED, p->driver_id, p->cp_id, p->id, p->request_id);
			text_copy(m->reason, sizeof(m->reason), p->reason);
			break;
		}
	}
	if (outcome == CORE_OUT_TICKET)
		fx_log(fx, now, LOG_INFO, p->cp_id, "session %s on CP %s ended: TICKET driver %s %s kWh x %s EUR/kWh = %s EUR",
		       p->id, p->cp_id, p->driver_id, money_fixed(a, sizeof(a), p->kwh, 3),
		       money_price(b, sizeof(b), p->price), money_fixed(d, sizeof(d), p->importe, 2));
	else
		fx_log(fx, now, LOG_INFO, p->cp_id, "session %s on CP %s ended: %s driver %s %s kWh %s EUR (%s)", p->id,
		       p->cp_id, core_outcome_name(outcome), p->driver_id, money_fixed(a, sizeof(a), p->kwh, 3),
		       money_fixed(d, sizeof(d), p->importe, 2), p->reason);
	sess_detach(c, s);
	free(s);
}

/* End an open session for a reason that is not a ticket: SUPPLY_ERROR with
 * its partial figures if it was charging, else SESSION_CANCELLED. */
static void end_session_abnormal(struct core *c, struct sess *s, const char *reason, double now,
				 struct core_fxlist *fx)
{
	end_session(c, s, s->pub.charging ? CORE_OUT_SUPPLY_ERROR : CORE_OUT_SESSION_CANCELLED, reason, 1, now, fx);
}

/* ------------------------------------------------------------------ */
/* loading                                                              */

void core_load_cp(struct core *c, const char *id, const char *location, double price, int stopped)
{
	if (!id || !msg_valid_cp_id(id))
		return; /* the store only holds ids REGISTER validated */
	struct core_cp *cp = cp_insert(c, id, 0);
	text_copy(cp->location, sizeof(cp->location), location ? location : "");
	cp->price = money_price_ok(price) ? money_round_price(price) : DEFAULT_PRICE;
	cp->stopped = stopped ? 1 : 0;
	cp->weather_unsure = 1; /* Central (re)starts: weather stops were not stored */
}

void core_set_mono(struct core *c, double mono)
{
	c->mono = mono;
}

void core_set_kafka_up(struct core *c, int up)
{
	if (!up) {
		c->kafka_down = 1;
	} else if (c->kafka_down) {
		c->kafka_down = 0;
		c->tel_epoch = c->mono;
	}
}

static void req_key(char *key, size_t n, const char *user_id, const char *request_id)
{
	snprintf(key, n, "%s\n%s", user_id, request_id);
}

static int req_seen(const struct core *c, const char *user_id, const char *request_id)
{
	char key[2 * MSG_ID_MAX + 2];
	req_key(key, sizeof(key), user_id, request_id);
	return hmap_sget(&c->seen_req, key) != NULL;
}

/* Remember an answered request until expires (monotonic). */
static void req_remember(struct core *c, const char *user_id, const char *request_id, double expires)
{
	struct seen_req *r = xcalloc(1, sizeof(*r));
	req_key(r->key, sizeof(r->key), user_id, request_id);
	if (hmap_sget(&c->seen_req, r->key)) {
		free(r);
		return;
	}
	r->expires = expires;
	if (c->req_n == c->req_cap) {
		size_t cap = c->req_cap ? c->req_cap * 2 : 64;
		struct seen_req **v = xcalloc(cap, sizeof(*v));
		for (size_t i = 0; i < c->req_n; i++)
			v[i] = c->req_fifo[(c->req_head + i) % c->req_cap];
		free(c->req_fifo);
		c->req_fifo = v;
		c->req_cap = cap;
		c->req_head = 0;
	}
	c->req_fifo[(c->req_head + c->req_n++) % c->req_cap] = r;
	hmap_sput(&c->seen_req, r->key, r);
}

/* How long an answered request is remembered: a replay older than the max
 * age is denied as expired anyway, one from the future as skewed. */
static double req_retention(const struct core *c)
{
	return 2 * c->cfg.request_max_age;
}

void core_load_request(struct core *c, const char *user_id, const char *request_id, double seen_at, double now)
{
	if (!user_id || !request_id || !msg_valid_user_id(user_id) || !msg_valid_session_id(request_id))
		return;
	double left = req_retention(c) - (now - seen_at);
	if (left <= 0)
		return;
	req_remember(c, user_id, request_id, c->mono + left);
}

/* Drop what expired; the store forgets rows older than the same age. */
static void req_prune(struct core *c, double now, struct core_fxlist *fx)
{
	size_t dropped = 0;
	while (c->req_n > 0) {
		struct seen_req *r = c->req_fifo[c->req_head];
		if (r->expires > c->mono)
			break;
		hmap_sdel(&c->seen_req, r->key);
		free(r);
		c->req_head = (c->req_head + 1) % c->req_cap;
		c->req_n--;
		dropped++;
	}
	if (dropped) {
		struct core_fx *f = core_fx_push(fx, CORE_FX_PRUNE_REQUESTS, now);
		f->u.prune.before = now - req_retention(c);
	}
}

static void reg_apply(struct core_cp *cp, const struct core_reg *r)
{
	if (r->location[0])
		text_copy(cp->location, sizeof(cp->location), r->location);
	if (money_price_ok(r->price))
		cp->price = money_round_price(r->price);
	xstrlcpy(cp->secret_hash, r->secret_hash, sizeof(cp->secret_hash));
	cp->deleted = r->deleted;
}

int core_cp_release1(const struct core *c, const struct core_cp *cp)
{
	return c->cfg.plain_links && !cp->secret_hash[0] && !cp->key_ever && !cp->deleted;
}

void core_load_reg(struct core *c, const struct core_reg *r)
{
	if (!r || !msg_valid_cp_id(r->id))
		return;
	struct core_cp *cp = cp_insert(c, r->id, 0);
	reg_apply(cp, r);
	xstrlcpy(cp->key, r->deleted ? "" : r->key, sizeof(cp->key));
	cp->key_ever = r->key_ever || r->key[0];
	cp->revoked = r->revoked;
	cp->weather_unsure = 1; /* Central (re)starts: weather stops were not stored */
	if (!cp->location[0])
		text_copy(cp->location, sizeof(cp->location), r->id);
	if (!(cp->price > 0))
		cp->price = DEFAULT_PRICE;
}

void core_on_registry(struct core *c, const struct core_reg *r, double now, struct core_fxlist *fx)
{
	if (!r || !msg_valid_cp_id(r->id))
		return;
	struct core_cp *cp = cp_find(c, r->id);
	int created = !cp;
	if (created)
		cp = cp_insert(c, r->id, now);
	int new_secret = cp->secret_hash[0] && strcmp(cp->secret_hash, r->secret_hash) != 0;
	int was_deleted = cp->deleted;
	reg_apply(cp, r);
	if (!cp->location[0])
		text_copy(cp->location, sizeof(cp->location), r->id);
	if (!(cp->price > 0))
		cp->price = DEFAULT_PRICE;
	if (r->deleted && cp->key[0]) {
		crypto_wipe(cp->key, sizeof(cp->key));
		cp->key[0] = '\0';
	}
	/* Whether its telemetry may be plaintext follows its credentials. */
	fx_key(fx, now, cp, core_cp_release1(c, cp), 0);
	if (created)
		fx_log(fx, now, LOG_INFO, cp->id, "CP %s registered at the registry (%s)", cp->id, cp->location);
	else if (r->deleted && !was_deleted)
		fx_log(fx, now, LOG_WARN, cp->id, "CP %s was unregistered at the registry: refused from now on", cp->id);
	else if (new_secret)
		fx_log(fx, now, LOG_INFO, cp->id, "CP %s has a new secret: its link must authenticate again", cp->id);
	if (cp->link_up && (r->deleted || new_secret)) {
		uint64_t conn = cp->conn;
		struct core_fx *x = core_fx_push(fx, CORE_FX_CLOSE, now);
		x->u.link.conn = conn;
		xstrlcpy(x->u.link.text, r->deleted ? "unregistered at the registry" : "the CP's secret was changed",
			 sizeof(x->u.link.text));
		/* No grace: the registry took the CP back. */
		if (cp->session && r->deleted)
			end_session_abnormal(c, sess_of(cp->session), "CP unregistered", now, fx);
		end_link(c, conn, x->u.link.text, now, fx);
		return;
	}
	update_state(c, cp, now, 1, created ? "registered at the registry" : "changed at the registry", fx);
	/* A new CP, or a new place: its city's weather stop applies at once. */
	weather_new_place(c, cp, now, fx);
}

void core_add_driver(struct core *c, const char *driver_id)
{
	if (!driver_id || !driver_id[0] || hmap_sget(&c->drivers, driver_id))
		return;
	char *k = xstrdup(driver_id);
	hmap_sput(&c->drivers, k, k);
}

static int driver_known(const struct core *c, const char *id)
{
	if (hmap_sget(&c->drivers, id))
		return 1;
	return c->cfg.driver_known && c->cfg.driver_known(c->cfg.driver_known_arg, id);
}

void core_recover_session(struct core *c, const struct core_session *s, double now, struct core_fxlist *fx)
{
	if (!s || s->outcome != CORE_OUT_OPEN || hmap_sget(&c->sessions, s->id))
		return;
	struct sess *r = xcalloc(1, sizeof(*r));
	r->pub = *s;
	r->pub.charging = s->charging || s->started_at > 0;
	if (c->nopen == c->capopen) {
		c->capopen = c->capopen ? c->capopen * 2 : 64;
		c->open = xreallocarray(c->open, c->capopen, sizeof(*c->open));
	}
	r->open_idx = c->nopen;
	c->open[c->nopen++] = r;
	struct core_cp *cp = msg_valid_cp_id(s->cp_id) ? cp_find(c, s->cp_id) : NULL;
	if (!cp || cp->session || cp->deleted || c->cfg.link_grace <= 0 || hmap_sget(&c->by_driver, s->driver_id)) {
		/* Nothing to pick it up: a detached session, so the one end
		 * path does the work. */
		end_session_abnormal(c, r,
				     r->pub.charging ? "Central restarted during the supply"
						     : "Central restarted before the supply started",
				     now, fx);
		return;
	}
	/* The engine may well still be supplying (it goes on without Central):
	 * the session waits for its CP as after a link loss, longer, since the
	 * monitor's reconnect backoff may have grown while Central was down;
	 * its telemetry (replayed or new) bills what was delivered
	 * (evcharging(7) RULES). */
	r->cp = cp;
	r->seq_seen = s->last_seq > 0;
	r->pub.authorised_mono = c->mono;
	r->pub.last_tel_mono = c->mono;
	if (r->pub.started_at > 0)
		r->pub.started_mono = c->mono - (now > r->pub.started_at ? now - r->pub.started_at : 0);
	cp->session = &r->pub;
	hmap_sput(&c->sessions, r->pub.id, r);
	hmap_sput(&c->by_driver, r->pub.driver_id, r);
	double grace = c->cfg.link_grace > RECOVERY_GRACE ? c->cfg.link_grace : RECOVERY_GRACE;
	if (!cp->grace_until)
		c->ngrace++;
	cp->grace_until = c->mono + grace;
	fx_log(fx, now, LOG_INFO, cp->id, "session %s on CP %s kept after Central's restart: its CP has %.0f s to come back",
	       r->pub.id, cp->id, grace);
	fx_event(fx, now, cp->id, "SESSION", "session %s kept after Central's restart", r->pub.id);
}

/* ------------------------------------------------------------------ */
/* link frames                                                          */

/* May a warning about this CP's frames be logged now? At most WARN_BURST a
 * WARN_WINDOW s; the rest are counted and reported once the window ends. */
static int warn_ok(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx)
{
	if (c->mono >= cp->warn_window) {
		if (cp->warn_dropped)
			fx_log(fx, now, LOG_WARN, cp->id, "CP %s: %u more warnings about its frames not logged", cp->id,
			       cp->warn_dropped);
		cp->warn_window = c->mono + WARN_WINDOW;
		cp->warn_count = cp->warn_dropped = 0;
	}
	if (cp->warn_count < WARN_BURST) {
		cp->warn_count++;
		return 1;
	}
	cp->warn_dropped++;
	return 0;
}

static void __attribute__((format(printf, 6, 7)))
reply_error(struct core *c, struct core_fxlist *fx, double now, uint64_t conn, struct core_cp *cp, const char *fmt,
	    ...)
{
	char why[LINK_DATA_MAX];
	va_list ap;
	va_start(ap, fmt);
	vtext(why, sizeof(why) - 8, fmt, ap);
	va_end(ap);
	fx_send(fx, now, conn, cp->id, "ERROR#%s", why);
	if (warn_ok(c, cp, now, fx))
		fx_log(fx, now, LOG_WARN, cp->id, "link %llu CP %s: ERROR %s", (unsigned long long)conn, cp->id, why);
}

/* ---- links and addresses ---- */

static struct linkinfo *link_of(const struct core *c, uint64_t conn)
{
	return hmap_uget(&c->links, conn);
}

/* "10.0.0.7:5301" -> "10.0.0.7", "[::1]:5301" -> "::1". */
static void peer_ip(const char *peer, char *ip, size_t n)
{
	if (peer[0] == '[') {
		const char *e = strchr(peer, ']');
		size_t len = e ? (size_t)(e - peer - 1) : strlen(peer + 1);
		snprintf(ip, n, "%.*s", (int)len, peer + 1);
		return;
	}
	const char *colon = strrchr(peer, ':');
	size_t len = colon && strchr(peer, ':') == colon ? (size_t)(colon - peer) : strlen(peer);
	snprintf(ip, n, "%.*s", (int)len, peer);
}

static const char *conn_ip(const struct core *c, uint64_t conn, char *ip, size_t n)
{
	const struct linkinfo *li = link_of(c, conn);
	if (li == NULL || !li->peer[0])
		return NULL;
	peer_ip(li->peer, ip, n);
	return ip;
}

static struct addr_rl *addr_of(struct core *c, const char *ip)
{
	struct addr_rl *a = hmap_sget(&c->addrs, ip);
	if (a != NULL)
		return a;
	if (hmap_count(&c->addrs) >= ADDRS_MAX) {
		/* Forget addresses with nothing left to remember; if all have,
		 * this one is simply not tracked (a flood of addresses cannot
		 * grow the table). */
		size_t i = 0;
		void *v;
		struct addr_rl *old[64];
		size_t nold = 0;
		while (nold < 64 && (v = hmap_next(&c->addrs, &i)) != NULL) {
			struct addr_rl *x = v;
			if (c->mono >= x->blocked_until && c->mono - x->window_start >= REG_FAIL_WINDOW &&
			    c->mono >= x->refused_audit_until)
				old[nold++] = x;
		}
		for (size_t k = 0; k < nold; k++) {
			hmap_sdel(&c->addrs, old[k]->ip);
			free(old[k]);
		}
		if (hmap_count(&c->addrs) >= ADDRS_MAX)
			return NULL;
	}
	a = xcalloc(1, sizeof(*a));
	xstrlcpy(a->ip, ip, sizeof(a->ip));
	a->window_start = c->mono;
	hmap_sput(&c->addrs, a->ip, a);
	return a;
}

static int addr_blocked(struct core *c, const char *ip)
{
	const struct addr_rl *a = ip ? hmap_sget(&c->addrs, ip) : NULL;
	return a != NULL && c->mono < a->blocked_until;
}

/* One failed REGISTER from ip; the one that crosses the limit blocks the
 * address (audited once). */
static void addr_fail(struct core *c, const char *ip, double now, struct core_fxlist *fx)
{
	struct addr_rl *a = ip ? addr_of(c, ip) : NULL;
	if (a == NULL)
		return;
	if (c->mono - a->window_start >= REG_FAIL_WINDOW) {
		a->window_start = c->mono;
		a->fails = 0;
	}
	if (++a->fails > REG_FAIL_MAX && c->mono >= a->blocked_until) {
		a->blocked_until = c->mono + REG_BLOCK;
		core_fx_audit(fx, now, "central", ip, "RATE_LIMITED", NULL,
			      "more than %d failed REGISTERs from %s in %.0f s: refused for %.0f s", REG_FAIL_MAX, ip,
			      REG_FAIL_WINDOW, REG_BLOCK);
		fx_log(fx, now, LOG_WARN, NULL, "REGISTER from %s: rate limited for %.0f s", ip, REG_BLOCK);
	}
}

void core_on_link_up(struct core *c, uint64_t conn, const char *peer, int tls, double now, struct core_fxlist *fx)
{
	(void)now;
	(void)fx;
	struct linkinfo *li = link_of(c, conn);
	if (li == NULL) {
		li = xcalloc(1, sizeof(*li));
		hmap_uput(&c->links, conn, li);
	}
	xstrlcpy(li->peer, peer ? peer : "", sizeof(li->peer));
	li->tls = tls ? 1 : 0;
}

void core_on_link_refused(struct core *c, const char *peer, const char *reason, double now, struct core_fxlist *fx)
{
	char ip[64];
	peer_ip(peer ? peer : "", ip, sizeof(ip));
	struct addr_rl *a = addr_of(c, ip);
	if (a != NULL && c->mono < a->refused_audit_until)
		return;
	if (a != NULL)
		a->refused_audit_until = c->mono + REG_FAIL_WINDOW;
	core_fx_audit(fx, now, "central", ip, "PLAIN_LINK_REFUSED", NULL, "%s (Central runs without --plain-links)",
		      reason && reason[0] ? reason : "plaintext link refused");
}

/* A denial: the answer, EOT and close; the log line only while the address
 * is not rate limited (a flood of bad REGISTERs cannot fill the log). */
static void deny_register(struct core *c, struct core_fxlist *fx, double now, uint64_t conn, const char *reason,
			  const char *detail)
{
	fx_send(fx, now, conn, NULL, "REGISTER_RESULT#DENIED#%s", reason);
	struct core_fx *f = core_fx_push(fx, CORE_FX_CLOSE, now);
	f->u.link.conn = conn;
	textf(f->u.link.text, sizeof(f->u.link.text), "REGISTER denied: %s", reason);
	char ip[64];
	if (!addr_blocked(c, conn_ip(c, conn, ip, sizeof(ip))))
		fx_log(fx, now, LOG_WARN, NULL, "link %llu: REGISTER denied: %s%s%s", (unsigned long long)conn, reason,
		       detail ? ": " : "", detail ? detail : "");
}

/* A TLS REGISTER whose credential failed: audited, counted for the
 * address, denied. */
static void deny_auth(struct core *c, struct core_fxlist *fx, double now, uint64_t conn, const char *id,
		      const char *reason, const char *why)
{
	char ip[64];
	const char *addr = conn_ip(c, conn, ip, sizeof(ip));
	core_fx_audit(fx, now, "central", addr, "CP_AUTH_FAILED", msg_valid_cp_id(id) ? id : NULL, "REGISTER %s: %s",
		      reason, why);
	deny_register(c, fx, now, conn, reason, why);
	addr_fail(c, addr, now, fx);
}

static void fx_key(struct core_fxlist *fx, double now, const struct core_cp *cp, int plain, int store)
{
	struct core_fx *f = core_fx_push(fx, CORE_FX_KEY, now);
	xstrlcpy(f->u.key.cp_id, cp->id, sizeof(f->u.key.cp_id));
	xstrlcpy(f->u.key.key, cp->key, sizeof(f->u.key.key));
	f->u.key.revoked = cp->revoked;
	f->u.key.plain = plain;
	f->u.key.store = store;
}

/* REGISTER's location and price: the operator's (or the registry's) win;
 * a monitor's only fill a CP that has none (evcharging(7) RULES). */
static void place_from_register(struct core_cp *cp, int first, const char *loc, int have_price, double price,
				double now, struct core_fxlist *fx)
{
	char pb[MONEY_STR_LEN], qb[MONEY_STR_LEN];
	if (first || !cp->location[0])
		text_copy(cp->location, sizeof(cp->location), loc);
	if (first || !(cp->price > 0)) {
		if (have_price) {
			cp->price = price;
		} else {
			cp->price = DEFAULT_PRICE;
			fx_log(fx, now, LOG_WARN, cp->id, "CP %s registered without a price: using the default %s EUR/kWh",
			       cp->id, money_price(pb, sizeof(pb), cp->price));
		}
		return;
	}
	if (!have_price)
		fx_log(fx, now, LOG_INFO, cp->id, "CP %s registered without a price: keeping %s EUR/kWh", cp->id,
		       money_price(pb, sizeof(pb), cp->price));
	int loc_differs = strcmp(cp->location, loc) != 0;
	int price_differs = have_price && price != cp->price;
	if ((loc_differs || price_differs) && !cp->place_differs_logged) {
		cp->place_differs_logged = 1;
		fx_log(fx, now, LOG_INFO, cp->id,
		       "CP %s's monitor says %s, %s EUR/kWh; keeping the operator's %s, %s EUR/kWh", cp->id, loc,
		       have_price ? money_price(qb, sizeof(qb), price) : "(no price)", cp->location,
		       money_price(pb, sizeof(pb), cp->price));
		fx_event(fx, now, cp->id, "PLACE", "monitor says %s, %s EUR/kWh", loc,
			 have_price ? money_price(qb, sizeof(qb), price) : "(no price)");
	}
}

static void on_register(struct core *c, uint64_t conn, struct core_cp *mine, char **f, int nf, double now,
			struct core_fxlist *fx)
{
	char reason[LINK_DATA_MAX], pb[32], ip[64];
	const struct linkinfo *li = link_of(c, conn);
	int tls = li != NULL && li->tls;
	const char *addr = conn_ip(c, conn, ip, sizeof(ip));
	/* Release 2 links answer with the five reasons of evcharging(7)
	 * SECURITY; Release-1 plaintext ones keep their readable reasons. */
#define DENY_BAD(why)                                                     \
	do {                                                              \
		if (tls)                                                  \
			deny_auth(c, fx, now, conn, id, "BAD_REQUEST", why); \
		else                                                      \
			deny_register(c, fx, now, conn, why, NULL);       \
		return;                                                   \
	} while (0)
	const char *id = nf > 1 ? f[1] : "";
	if (addr_blocked(c, addr)) {
		deny_register(c, fx, now, conn, "RATE_LIMITED", NULL);
		return;
	}
	if (nf < 3)
		DENY_BAD("REGISTER needs cp_id and location (and optionally price)");
	const char *loc = f[2];
	if (!msg_valid_cp_id(id)) {
		textf(reason, 128, "invalid cp_id '%.24s': must match ^[A-Za-z0-9_-]{1,32}$", id);
		DENY_BAD(reason);
	}
	const char *bad_loc = msg_check_location(loc);
	if (bad_loc)
		DENY_BAD(bad_loc);
	double price = 0;
	int have_price = nf >= 4 && f[3][0];
	if (have_price) {
		int rounded = 0;
		int r = money_parse_price(f[3], &price, &rounded);
		if (r == -1) {
			textf(reason, 128, "invalid price '%.24s': use digits with '.' as decimal point, e.g. 0.25", f[3]);
			DENY_BAD(reason);
		}
		if (r == -2)
			DENY_BAD("price must be at least 0.0001 and at most 100 EUR/kWh");
		if (rounded)
			fx_log(fx, now, LOG_INFO, id, "CP %s price %s rounded to %s EUR/kWh (4 decimals)", id, f[3],
			       money_price(pb, sizeof(pb), price));
	}
#undef DENY_BAD
	if (mine && strcmp(mine->id, id) != 0) {
		reply_error(c, fx, now, conn, mine, "this link is already registered as CP %s", mine->id);
		return;
	}
	const char *secret = nf >= 5 ? f[4] : "";
	struct core_cp *cp = cp_find(c, id);
	int first;
	if (tls) {
		/* The credential of evcharging(7) SECURITY: the CP's secret,
		 * checked against the registry's hash in constant time. */
		if (!secret[0]) {
			deny_auth(c, fx, now, conn, id, "BAD_REQUEST", "REGISTER over TLS carries the CP's secret");
			return;
		}
		if (!cp || !cp->secret_hash[0] || cp->deleted) {
			deny_auth(c, fx, now, conn, id, "NOT_REGISTERED", "not registered at the registry");
			return;
		}
		if (!crypto_secret_matches(secret, cp->secret_hash)) {
			deny_auth(c, fx, now, conn, id, "BAD_CREDENTIALS", "wrong secret");
			return;
		}
		if (cp->link_up && cp->conn != conn) {
			/* A monitor back after a half-open link must never be
			 * locked out by its own ghost. */
			uint64_t old = cp->conn;
			struct core_fx *x = core_fx_push(fx, CORE_FX_CLOSE, now);
			x->u.link.conn = old;
			xstrlcpy(x->u.link.text, "replaced by a new authenticated link", sizeof(x->u.link.text));
			end_link(c, old, "replaced by a new authenticated link", now, fx);
		}
		int issue = !cp->key[0];
		if (issue) {
			char key[45];
			if (!c->cfg.new_key || c->cfg.new_key(c->cfg.new_key_arg, key) != 0) {
				deny_register(c, fx, now, conn, "BAD_REQUEST", "no key can be issued");
				return;
			}
			xstrlcpy(cp->key, key, sizeof(cp->key));
			crypto_wipe(key, sizeof(key));
		}
		first = !cp->key_ever;
		cp->key_ever = 1;
		int was_revoked = cp->revoked;
		cp->revoked = 0;
		core_fx_audit(fx, now, "central", addr, "CP_AUTH_OK", id, "REGISTER over TLS%s",
			      was_revoked ? " (after its keys were revoked)" : "");
		if (issue)
			core_fx_audit(fx, now, "central", addr, "CP_KEY_ISSUED", id, "a new key for the CP's telemetry");
		fx_key(fx, now, cp, 0, issue || was_revoked);
		place_from_register(cp, 0, loc, have_price, price, now, fx);
	} else {
		if (!c->cfg.plain_links) {
			deny_register(c, fx, now, conn, "BAD_REQUEST", "plaintext links are refused");
			return;
		}
		if (crypto_valid_secret(secret)) {
			/* A secret in clear is a secret lost: never take it. (Other
			 * trailing fields are a Release-1 peer's optional ones.) */
			core_fx_audit(fx, now, "central", addr, "PLAIN_LINK_REFUSED", id,
				      "REGISTER with a credential over a plaintext link");
			deny_register(c, fx, now, conn, "BAD_REQUEST", "credentials are only accepted over TLS");
			return;
		}
		if (cp && (cp->secret_hash[0] || cp->deleted)) {
			core_fx_audit(fx, now, "central", addr, "PLAIN_LINK_REFUSED", id,
				      "CP %s has credentials: it must connect over TLS", id);
			deny_register(c, fx, now, conn, "BAD_CREDENTIALS", "the CP must connect over TLS");
			addr_fail(c, addr, now, fx);
			return;
		}
		if (cp && cp->link_up && cp->conn != conn) {
			deny_register(c, fx, now, conn, "ALREADY_CONNECTED", NULL);
			return;
		}
		first = !cp;
		if (first)
			cp = cp_insert(c, id, now);
		place_from_register(cp, first, loc, have_price, price, now, fx);
		if (!cp->link_up)
			core_fx_audit(fx, now, "central", addr, "PLAIN_LINK_ACCEPTED", id, "Release-1 plaintext link");
		fx_key(fx, now, cp, 1, 0);
	}
	int was_up = cp->link_up && cp->conn == conn;
	cp->link_up = 1;
	cp->conn = conn;
	cp->tls = tls;
	xstrlcpy(cp->peer, li ? li->peer : "", sizeof(cp->peer));
	cp->last_seen = now;
	if (cp->grace_until && cp->session) {
		fx_log(fx, now, LOG_INFO, id, "CP %s back within the grace: session %s goes on", id, cp->session->id);
		fx_event(fx, now, id, "SESSION", "session %s kept across the link loss", cp->session->id);
	}
	clear_grace(c, cp);
	hmap_uput(&c->by_conn, conn, cp);
	if (!was_up) {
		struct core_fx *r = core_fx_push(fx, CORE_FX_REGISTERED, now);
		r->u.link.conn = conn;
		r->u.link.text[0] = '\0';
	}
	fx_send(fx, now, conn, id, "REGISTER_RESULT#%s", first ? "FIRST" : "RECONNECT");
	if (tls)
		fx_send(fx, now, conn, id, "KEY#%s#%s", id, cp->key);
	fx_event(fx, now, id, "REGISTER", "%s at %s, %s EUR/kWh (%s)", first ? "FIRST" : "RECONNECT", cp->location,
		 money_price(pb, sizeof(pb), cp->price), tls ? "tls" : "plain");
	fx_log(fx, now, LOG_INFO, id, "CP %s registered (%s) on link %llu: %s, %s EUR/kWh%s", id,
	       first ? "first time" : "reconnect", (unsigned long long)conn, cp->location, pb,
	       tls ? "" : " (Release-1 plaintext link)");
	/* A session authorised but not plugged in when the link went: the
	 * AUTORIZAR (or its ACK) may have been lost with it, or the engine
	 * dropped it while its monitor could not reach Central. Offered again:
	 * the engine ACKs the same session at once, or refuses, and the driver
	 * is told either way instead of waiting for the reservation timeout
	 * (evcharging(7) RULES). After REGISTER_RESULT and KEY: a monitor
	 * takes no AUTORIZAR before it is registered ("ERROR#not registered
	 * yet"), and the engine needs the key for the supply's telemetry. */
	if (cp->session && !cp->session->charging) {
		struct core_session *rs = cp->session;
		char rp[MONEY_STR_LEN];
		sess_of(rs)->reoffered = 1;
		fx_send(fx, now, conn, id, "AUTORIZAR_SUMINISTRO#%s#%s#%s", rs->driver_id, rs->id,
			money_price(rp, sizeof(rp), rs->price));
		fx_event(fx, now, id, "COMMAND", "AUTORIZAR_SUMINISTRO re-sent for session %s after the link loss",
			 rs->id);
	}
	/* A new CP (or one whose place a first REGISTER set) in an alerted
	 * city is held at once (evcharging(7) RULES, Weather). */
	weather_refresh(c, cp, now, fx);
	update_state(c, cp, now, 1, first ? "registered" : "reconnected", fx);
	/* The operator's stop outlives the link: the CP may have restarted and
	 * forgotten it, so it is sent again until REANUDAR. */
	int redo = cp->redo_cmd;
	cp->redo_cmd = 0;
	char wwhy[MSG_TEXT_MAX + 1];
	if (redo == 2 && cp->stopped && !cp->resume_pending) {
		cp->resume_pending = 1;
		fx_send(fx, now, conn, id, "REANUDAR#CENTRAL");
		fx_event(fx, now, id, "COMMAND", "REANUDAR re-sent: not acknowledged before the link was lost");
		fx_log(fx, now, LOG_INFO, id, "CP %s: REANUDAR re-sent", id);
	} else if ((cp->stopped || redo == 1) && !cp->stop_pending) {
		cp->stop_pending = 1;
		cp->stop_by_op = 1;
		fx_send(fx, now, conn, id, "PARAR#CENTRAL");
		fx_event(fx, now, id, "COMMAND", "PARAR re-sent: operator stop in force");
		fx_log(fx, now, LOG_INFO, id, "CP %s is stopped by the operator: PARAR re-sent", id);
	} else if (cp->weather_stop && !cp->stop_pending && !cp->resume_pending && !cp->revoked) {
		/* One PARAR whether or not it was halted before the link went:
		 * the CP may have restarted and forgotten it, as for an
		 * operator stop. */
		cp->stop_pending = 1;
		cp->stop_by_op = 0;
		weather_why(wwhy, sizeof(wwhy), weather_holder(c, cp));
		fx_send(fx, now, conn, id, "PARAR#CENTRAL");
		fx_event(fx, now, id, "COMMAND", "PARAR sent: %s", wwhy);
		fx_log(fx, now, LOG_INFO, id, "CP %s is held by %s: PARAR sent", id, wwhy);
	} else {
		/* Halted for a weather stop since cleared, or maybe so from
		 * before Central's restart: REANUDAR if nothing holds it. */
		weather_reconcile(c, cp, now, fx);
	}
}

/* Does the cp_id field of a frame name the CP registered on this link? */
static int frame_cp_ok(struct core *c, struct core_cp *cp, uint64_t conn, const char *op, char **f, int nf,
		       double now, struct core_fxlist *fx)
{
	if (nf < 2 || !f[1][0]) {
		reply_error(c, fx, now, conn, cp, "%s needs a cp_id", op);
		return 0;
	}
	if (strcmp(f[1], cp->id) != 0) {
		reply_error(c, fx, now, conn, cp, "cp_id '%.40s' does not match this link's CP %s", f[1], cp->id);
		return 0;
	}
	return 1;
}

static void clear_engine_fault(struct core *c, struct core_cp *cp)
{
	if (cp->engine_fault) {
		cp->engine_fault = 0;
		c->nengine_faults--;
	}
}

static void on_fault(struct core *c, struct core_cp *cp, const char *reason, double now, struct core_fxlist *fx)
{
	clear_engine_fault(c, cp);
	if (cp->fault) {
		fx_log(fx, now, LOG_DEBUG, cp->id, "CP %s: FAULT repeated (%s)", cp->id, reason);
		return;
	}
	cp->fault = 1;
	fx_event(fx, now, cp->id, "FAULT", "%s", reason);
	core_fx_audit(fx, now, "central", NULL, "CP_FAULT", cp->id, "the CP's monitor reports: %s", reason);
	if (cp->session) {
		char why[MSG_TEXT_MAX + 1];
		textf(why, sizeof(why), "CP %s fault: %s", cp->id, reason);
		end_session_abnormal(c, sess_of(cp->session), why, now, fx);
	}
	char why[MSG_TEXT_MAX + 1];
	textf(why, sizeof(why), "fault: %s", reason);
	update_state(c, cp, now, 0, why, fx);
}

static void on_recover(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx)
{
	if (cp->engine_fault && !cp->fault) {
		clear_engine_fault(c, cp);
		update_state(c, cp, now, 0, "engine recovered", fx);
		weather_reconcile(c, cp, now, fx);
		return;
	}
	clear_engine_fault(c, cp);
	if (!cp->fault) {
		fx_log(fx, now, LOG_DEBUG, cp->id, "CP %s: RECOVER without a fault", cp->id);
		return;
	}
	cp->fault = 0;
	fx_event(fx, now, cp->id, "RECOVER", "fault cleared");
	core_fx_audit(fx, now, "central", NULL, "CP_RECOVER", cp->id, "the CP's monitor reports the fault cleared");
	if (cp->stopped)
		fx_log(fx, now, LOG_INFO, cp->id, "CP %s recovered but stays FUERA_DE_SERVICIO: stopped by the operator",
		       cp->id);
	update_state(c, cp, now, 0, "recovered", fx);
	/* A weather stop cleared while the fault held it: resumed now. */
	weather_reconcile(c, cp, now, fx);
}

static void on_ack_authorize(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx)
{
	(void)c;
	if (cp->session)
		sess_of(cp->session)->reoffered = 0;
	if (!cp->session || cp->session->acked) {
		fx_log(fx, now, LOG_DEBUG, cp->id, "CP %s: ACK#AUTORIZAR_SUMINISTRO with no session waiting for it",
		       cp->id);
		return;
	}
	struct core_session *s = cp->session;
	s->acked = 1;
	struct msg *m = fx_notify(fx, now, MSG_AUTH_OK, s->driver_id, s->cp_id, s->id, s->request_id);
	textf(m->message, sizeof(m->message), "CP %s authorised you: plug in your vehicle (%s EUR/kWh)", s->cp_id,
	      money_price((char[32]){ 0 }, 32, s->price));
	fx_request(fx, now, s->driver_id, s->cp_id, s->request_id, s->requested_at, s->id, "AUTH_OK");
	audit_driver(fx, now, s->driver_id, "DRIVER_AUTH_OK", s->cp_id, "session %s at %s EUR/kWh", s->id,
		     money_price((char[32]){ 0 }, 32, s->price));
	fx_store_session(fx, now, s);
	fx_screen(fx, now, cp->id);
	fx_log(fx, now, LOG_INFO, cp->id, "CP %s accepted session %s for driver %s", cp->id, s->id, s->driver_id);
}

static void on_nack_authorize(struct core *c, struct core_cp *cp, const char *reason, double now,
			      struct core_fxlist *fx)
{
	if (cp->session && cp->session->acked && !cp->session->charging && sess_of(cp->session)->reoffered &&
	    strncmp(reason, "ended", 5) == 0) {
		/* The engine supplied this session and ended it while Central
		 * was away: its SUPPLY_END is on its way on Kafka and bills
		 * it (or the reservation timeout ends it). Cancelling now
		 * would leave delivered energy unbilled. */
		sess_of(cp->session)->reoffered = 0;
		fx_log(fx, now, LOG_INFO, cp->id, "CP %s: session %s already supplied and ended there; waiting for its end of supply",
		       cp->id, cp->session->id);
		return;
	}
	if (cp->session && cp->session->acked && !cp->session->charging && sess_of(cp->session)->reoffered) {
		/* The driver has its AUTH_OK, but the engine no longer takes
		 * the session offered again after a link loss: it is over. */
		char why2[MSG_TEXT_MAX + 1];
		struct core_session *s = cp->session;
		textf(why2, sizeof(why2), "CP %s no longer takes the session after its link was lost: %s", cp->id,
		      reason);
		fx_log(fx, now, LOG_INFO, cp->id, "session %s on CP %s cancelled: %s", s->id, cp->id, why2);
		end_session(c, sess_of(s), CORE_OUT_SESSION_CANCELLED, why2, 1, now, fx);
		update_state(c, cp, now, 0, "authorisation refused", fx);
		return;
	}
	if (!cp->session || cp->session->acked || cp->session->charging) {
		fx_log(fx, now, LOG_WARN, cp->id, "CP %s: NACK#AUTORIZAR_SUMINISTRO with no session waiting for it (%s)",
		       cp->id, reason);
		return;
	}
	struct core_session *s = cp->session;
	char why[MSG_TEXT_MAX + 1];
	textf(why, sizeof(why), "CP %s refused the supply: %s", cp->id, reason);
	struct msg *m = fx_notify(fx, now, MSG_AUTH_DENIED, s->driver_id, s->cp_id, s->id, s->request_id);
	text_copy(m->reason, sizeof(m->reason), why);
	fx_request(fx, now, s->driver_id, s->cp_id, s->request_id, s->requested_at, s->id, "AUTH_DENIED: %s", why);
	audit_driver(fx, now, s->driver_id, "DRIVER_AUTH_DENIED", s->cp_id, "%s", why);
	end_session(c, sess_of(s), CORE_OUT_SESSION_CANCELLED, why, 0, now, fx);
	update_state(c, cp, now, 0, "authorisation refused", fx);
}

static void on_ack_stop(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx)
{
	if (!cp->stop_pending) {
		fx_log(fx, now, LOG_WARN, cp->id, "CP %s: ACK#PARAR without a PARAR pending: ignored", cp->id);
		return;
	}
	cp->stop_pending = 0;
	int was = cp->stopped, by_op = cp->stop_by_op;
	cp->stop_by_op = 0;
	if (by_op)
		cp->stopped = 1;
	cp->halted = 1;
	cp->weather_unsure = 0;
	/* Who stopped it says why its supply ended: an operator stop as
	 * before, else the weather alert (the same outcome, evcharging(7)
	 * RULES, Weather). */
	char why[MSG_TEXT_MAX + 1];
	if (by_op) {
		xstrlcpy(why, "stopped by operator", sizeof(why));
	} else {
		char w[MSG_TEXT_MAX + 1];
		textf(why, sizeof(why), "stopped by %s", weather_why(w, sizeof(w), weather_holder(c, cp)));
	}
	fx_event(fx, now, cp->id, "COMMAND", "PARAR acknowledged");
	if (cp->session)
		end_session_abnormal(c, sess_of(cp->session), why, now, fx);
	fx_log(fx, now, LOG_INFO, cp->id, "CP %s acknowledged PARAR: out of service", cp->id);
	update_state(c, cp, now, !was && cp->stopped, why, fx);
	/* The weather alert may have cleared meanwhile. */
	weather_reconcile(c, cp, now, fx);
}

static void on_ack_resume(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx)
{
	if (!cp->resume_pending) {
		fx_log(fx, now, LOG_WARN, cp->id, "CP %s: ACK#REANUDAR without a REANUDAR pending: ignored", cp->id);
		return;
	}
	cp->resume_pending = 0;
	int was = cp->stopped, was_halted = cp->halted;
	cp->stopped = 0;
	cp->halted = 0;
	cp->weather_unsure = 0; /* resumed: whatever held it before a restart is gone */
	fx_event(fx, now, cp->id, "COMMAND", "REANUDAR acknowledged");
	fx_log(fx, now, LOG_INFO, cp->id, "CP %s acknowledged REANUDAR: back in service", cp->id);
	update_state(c, cp, now, was, was || !was_halted ? "resumed by operator" : "weather alert over", fx);
	/* A weather alert raised while the REANUDAR was on its way. */
	weather_reconcile(c, cp, now, fx);
}

/* 1 if a command was pending (and is no more). */
static int on_nack_command(struct core_cp *cp, const char *cmd, int *pending, const char *reason, double now,
			   struct core_fxlist *fx)
{
	if (!*pending) {
		fx_log(fx, now, LOG_WARN, cp->id, "CP %s: NACK#%s without a %s pending: ignored (%s)", cp->id, cmd, cmd,
		       reason);
		return 0;
	}
	*pending = 0;
	fx_event(fx, now, cp->id, "COMMAND", "%s refused: %s", cmd, reason);
	fx_log(fx, now, LOG_WARN, cp->id, "CP %s refused %s: %s", cp->id, cmd, reason);
	return 1;
}

void core_on_frame(struct core *c, uint64_t conn, const char *data, double now, struct core_fxlist *fx)
{
	char buf[LINK_DATA_MAX + 1];
	char *f[LINK_FIELDS_MAX];
	xstrlcpy(buf, data ? data : "", sizeof(buf));
	int nf = split_fields(buf, f, LINK_FIELDS_MAX);
	const char *op = f[0];
	struct core_cp *cp = hmap_uget(&c->by_conn, conn);
	if (cp)
		cp->last_seen = now;

	if (strcmp(op, "REGISTER") == 0) {
		on_register(c, conn, cp, f, nf, now, fx);
		return;
	}
	if (!cp && (strcmp(op, "CHECK_DRIVER") == 0 || strcmp(op, "CHECK_SESSION") == 0) && nf >= 2 &&
	    c->cfg.plain_links && !(link_of(c, conn) && link_of(c, conn)->tls)) {
		/* A Release-1 program's short query on a connection of its own:
		 * one answer (the driver on that CP, or NO_DRIVER / NO_SESSION),
		 * then EOT and close, as those programs expect. */
		const struct core_cp *q = msg_valid_cp_id(f[1]) ? cp_find(c, f[1]) : NULL;
		if (q && q->session) {
			fx_send(fx, now, conn, q->id, "%s", q->session->driver_id);
			fx->v[fx->n - 1].u.link.raw = 1;
		} else {
			fx_send(fx, now, conn, NULL, "%s", op[6] == 'D' ? "NO_DRIVER" : "NO_SESSION");
		}
		struct core_fx *x = core_fx_push(fx, CORE_FX_CLOSE, now);
		x->u.link.conn = conn;
		xstrlcpy(x->u.link.text, "Release-1 query answered", sizeof(x->u.link.text));
		return;
	}
	if (!cp) {
		/* Anything but REGISTER before REGISTER: refused, counted, and
		 * reported in one line a while (a stranger cannot fill the log).
		 * An ERROR is never answered: two peers would loop. */
		c->prereg_refused++;
		if (strcmp(op, "ERROR") != 0)
			fx_send(fx, now, conn, NULL, "ERROR#not registered: send REGISTER first");
		return;
	}
	if (strcmp(op, "ERROR") == 0) {
		/* Never answer an ERROR with an ERROR: two peers would loop. */
		if (warn_ok(c, cp, now, fx))
			fx_log(fx, now, LOG_WARN, cp->id, "link %llu CP %s reports ERROR: %s", (unsigned long long)conn,
			       cp->id, nf > 1 ? f[1] : "(no reason)");
		return;
	}
	if (cp->revoked && strcmp(op, "HEARTBEAT") != 0) {
		/* A revoked link is kept open for HEARTBEAT and a new REGISTER
		 * only (evcharging(7) SECURITY). */
		reply_error(c, fx, now, conn, cp, "keys revoked: REGISTER again to go on");
		return;
	}
	if (strcmp(op, "HEARTBEAT") == 0) {
		frame_cp_ok(c, cp, conn, op, f, nf, now, fx);
	} else if (strcmp(op, "FAULT") == 0) {
		if (frame_cp_ok(c, cp, conn, op, f, nf, now, fx))
			on_fault(c, cp, nf > 2 && f[2][0] ? f[2] : "engine reported KO", now, fx);
	} else if (strcmp(op, "RECOVER") == 0) {
		if (frame_cp_ok(c, cp, conn, op, f, nf, now, fx))
			on_recover(c, cp, now, fx);
	} else if (strcmp(op, "CHECK_SESSION") == 0) {
		if (!frame_cp_ok(c, cp, conn, op, f, nf, now, fx))
			return;
		if (cp->session)
			fx_send(fx, now, conn, cp->id, "SESSION#%s#%s#%s", cp->id, cp->session->driver_id,
				cp->session->id);
		else
			fx_send(fx, now, conn, cp->id, "NO_SESSION#%s", cp->id);
	} else if (strcmp(op, "ACK") == 0 || strcmp(op, "NACK") == 0) {
		int ack = op[0] == 'A';
		const char *cmd = nf > 1 ? f[1] : "";
		const char *reason = nf > 2 && f[2][0] ? f[2] : "no reason given";
		if (strcmp(cmd, "PARAR") == 0) {
			if (ack)
				on_ack_stop(c, cp, now, fx);
			else if (on_nack_command(cp, "PARAR", &cp->stop_pending, reason, now, fx))
				cp->stop_by_op = 0; /* a weather stop's is sent again at the next reading */
		} else if (strcmp(cmd, "REANUDAR") == 0) {
			if (ack)
				on_ack_resume(c, cp, now, fx);
			else if (on_nack_command(cp, "REANUDAR", &cp->resume_pending, reason, now, fx) &&
				 cp->weather_stop)
				weather_reconcile(c, cp, now, fx); /* a weather stop waiting for it (a
								      refused REANUDAR is sent again
								      at the next reading, not now) */
		} else if (strcmp(cmd, "FIN_SUMINISTRO") == 0) {
			fx_log(fx, now, ack ? LOG_DEBUG : LOG_INFO, cp->id, "CP %s %s FIN_SUMINISTRO%s%s", cp->id,
			       ack ? "acknowledged" : "refused", ack ? "" : ": ", ack ? "" : reason);
		} else if (strcmp(cmd, "AUTORIZAR_SUMINISTRO") == 0) {
			if (ack)
				on_ack_authorize(c, cp, now, fx);
			else
				on_nack_authorize(c, cp, reason, now, fx);
		} else {
			reply_error(c, fx, now, conn, cp, "%s of unknown command '%.40s'", op, cmd);
		}
	} else {
		reply_error(c, fx, now, conn, cp, "unknown opcode '%.40s'", op);
	}
}

void core_on_link_down(struct core *c, uint64_t conn, const char *reason, double now, struct core_fxlist *fx)
{
	struct linkinfo *li = link_of(c, conn);
	if (li != NULL) {
		hmap_udel(&c->links, conn);
		free(li);
	}
	end_link(c, conn, reason, now, fx);
}

/* The CP registered on conn (if any) has lost that link. */
static void end_link(struct core *c, uint64_t conn, const char *reason, double now, struct core_fxlist *fx)
{
	struct core_cp *cp = hmap_uget(&c->by_conn, conn);
	if (!reason || !reason[0])
		reason = "closed";
	if (!cp) {
		fx_log(fx, now, LOG_DEBUG, NULL, "link %llu closed before REGISTER: %s", (unsigned long long)conn,
		       reason);
		return;
	}
	hmap_udel(&c->by_conn, conn);
	cp->link_up = 0;
	cp->conn = 0;
	cp->tls = 0;
	cp->peer[0] = '\0';
	/* A command the CP may or may not have carried out: the latest one the
	 * operator gave is sent again when the CP registers. */
	if (cp->stop_pending && cp->stop_by_op && !cp->stopped)
		cp->redo_cmd = 1;
	else if (cp->resume_pending && cp->stopped)
		cp->redo_cmd = 2;
	if (cp->stop_pending || cp->resume_pending)
		fx_log(fx, now, LOG_WARN, cp->id, "CP %s: %s not acknowledged before the link was lost: sent again when it reconnects",
		       cp->id, cp->resume_pending ? "REANUDAR" : "PARAR");
	cp->stop_pending = cp->resume_pending = 0;
	cp->stop_by_op = 0;
	fx_event(fx, now, cp->id, "LINK_DOWN", "%s", reason);
	if (cp->session && c->cfg.link_grace > 0) {
		/* The engine may still supply: the session stays open (and the
		 * CP out of every driver's reach) until the monitor comes back,
		 * the engine ends the supply on Kafka, or the grace runs out
		 * (evcharging(7) RULES). */
		if (!cp->grace_until)
			c->ngrace++;
		cp->grace_until = c->mono + c->cfg.link_grace;
		fx_log(fx, now, LOG_WARN, cp->id, "CP %s link lost with session %s open: kept for %.0f s", cp->id,
		       cp->session->id, c->cfg.link_grace);
	} else if (cp->session) {
		end_session_abnormal(c, sess_of(cp->session), "link to CP lost", now, fx);
	}
	char why[MSG_TEXT_MAX + 1];
	textf(why, sizeof(why), "link lost: %s", reason);
	update_state(c, cp, now, 0, why, fx);
}

/* ------------------------------------------------------------------ */
/* Kafka                                                                */

static void __attribute__((format(printf, 4, 5)))
deny_request(struct core_fxlist *fx, double now, const struct msg *m, const char *fmt, ...)
{
	char why[MSG_TEXT_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vtext(why, sizeof(why), fmt, ap);
	va_end(ap);
	struct msg *n = fx_notify(fx, now, MSG_AUTH_DENIED, m->user_id, m->cp_id, NULL,
				  m->has_request_id ? m->request_id : NULL);
	text_copy(n->reason, sizeof(n->reason), why);
	fx_request(fx, now, m->user_id, m->cp_id, m->has_request_id ? m->request_id : NULL, m->timestamp, NULL,
		   "AUTH_DENIED: %s", why);
	audit_driver(fx, now, m->user_id, "DRIVER_AUTH_DENIED", msg_valid_cp_id(m->cp_id) ? m->cp_id : NULL, "%s", why);
	fx_log(fx, now, LOG_INFO, msg_valid_cp_id(m->cp_id) ? m->cp_id : NULL,
	       "request from driver %s for CP %s denied: %s", m->user_id, m->cp_id, why);
}

static void on_request(struct core *c, const struct msg *m, double now, struct core_fxlist *fx)
{
	double max = c->cfg.request_max_age;
	double age = now - m->timestamp;
	/* Answered already (a replay after a crash, a duplicate delivery):
	 * the driver has its answer, and a second session must never come of
	 * it, even when the first has ended since. */
	if (m->has_request_id && m->request_id[0] && msg_valid_user_id(m->user_id)) {
		if (req_seen(c, m->user_id, m->request_id)) {
			fx_log(fx, now, LOG_DEBUG, NULL, "request %s from driver %s was answered before: ignored",
			       m->request_id, m->user_id);
			return;
		}
		req_remember(c, m->user_id, m->request_id, c->mono + req_retention(c));
		struct core_fx *f = core_fx_push(fx, CORE_FX_STORE_REQUEST, now);
		xstrlcpy(f->u.seen.user_id, m->user_id, sizeof(f->u.seen.user_id));
		xstrlcpy(f->u.seen.request_id, m->request_id, sizeof(f->u.seen.request_id));
	}
	if (!(m->timestamp > 0)) {
		deny_request(fx, now, m, "request has no timestamp");
		return;
	}
	if (age > max) {
		deny_request(fx, now, m, "request expired: it is %.0f s old (limit %.0f s)", floor(age), max);
		return;
	}
	if (age < -max) {
		deny_request(fx, now, m, "request timestamp is %.0f s in the future: check the driver's clock",
			     floor(-age));
		return;
	}
	if (!msg_valid_user_id(m->user_id) || !driver_known(c, m->user_id)) {
		deny_request(fx, now, m, "driver %s is not registered", m->user_id);
		return;
	}
	struct core_cp *cp = msg_valid_cp_id(m->cp_id) ? cp_find(c, m->cp_id) : NULL;
	if (!cp) {
		deny_request(fx, now, m, "CP %s is not known", m->cp_id);
		return;
	}
	struct sess *ds = hmap_sget(&c->by_driver, m->user_id);
	if (ds) {
		/* Kafka may deliver a request twice (Central restarted before
		 * committing): the same request_id is not a new request. */
		if (m->has_request_id && m->request_id[0] && strcmp(ds->pub.request_id, m->request_id) == 0) {
			fx_log(fx, now, LOG_DEBUG, cp->id, "duplicate request %s from driver %s: ignored", m->request_id,
			       m->user_id);
			return;
		}
		deny_request(fx, now, m, "driver %s already has an open session on CP %s", m->user_id,
			     ds->pub.cp_id);
		return;
	}
	if (cp->state != CP_ACTIVADO) {
		deny_request(fx, now, m, "CP %s is %s", cp->id, cp_state_name(cp->state));
		return;
	}
	if (cp->weather_stop) {
		char w[MSG_TEXT_MAX + 1];
		deny_request(fx, now, m, "CP %s is being stopped: %s", cp->id,
			     weather_why(w, sizeof(w), weather_holder(c, cp)));
		return;
	}
	if (cp->stop_pending) {
		deny_request(fx, now, m, "CP %s is being stopped by the operator", cp->id);
		return;
	}

	struct sess *s = xcalloc(1, sizeof(*s));
	struct core_session *p = &s->pub;
	snprintf(p->id, sizeof(p->id), "%s-%lld-%llu", cp->id, (long long)llround(now * 1000.0),
		 (unsigned long long)++c->counter);
	xstrlcpy(p->cp_id, cp->id, sizeof(p->cp_id));
	xstrlcpy(p->driver_id, m->user_id, sizeof(p->driver_id));
	if (m->has_request_id)
		xstrlcpy(p->request_id, m->request_id, sizeof(p->request_id));
	p->price = cp->price;
	p->requested_at = m->timestamp;
	p->authorised_at = now;
	p->authorised_mono = c->mono;
	s->cp = cp;
	cp->session = p;
	hmap_sput(&c->sessions, p->id, s);
	hmap_sput(&c->by_driver, p->driver_id, s);
	if (c->nopen == c->capopen) {
		c->capopen = c->capopen ? c->capopen * 2 : 64;
		c->open = xreallocarray(c->open, c->capopen, sizeof(*c->open));
	}
	s->open_idx = c->nopen;
	c->open[c->nopen++] = s;

	char pb[32];
	money_price(pb, sizeof(pb), p->price);
	fx_store_session(fx, now, p);
	fx_send(fx, now, cp->conn, cp->id, "AUTORIZAR_SUMINISTRO#%s#%s#%s", p->driver_id, p->id, pb);
	fx_event(fx, now, cp->id, "COMMAND", "AUTORIZAR_SUMINISTRO driver %s session %s at %s EUR/kWh", p->driver_id,
		 p->id, pb);
	fx_request(fx, now, p->driver_id, p->cp_id, p->request_id, p->requested_at, p->id,
		   "AUTHORISED: waiting for CP");
	fx_log(fx, now, LOG_INFO, cp->id, "driver %s authorised on CP %s: session %s at %s EUR/kWh", p->driver_id,
	       cp->id, p->id, pb);
	update_state(c, cp, now, 0, "reserved for a driver", fx);
}

static void on_quit(struct core *c, const struct msg *m, double now, struct core_fxlist *fx)
{
	struct sess *s = hmap_sget(&c->by_driver, m->user_id);
	if (!s) {
		fx_log(fx, now, LOG_DEBUG, NULL, "driver %s quit with no open session", m->user_id);
		return;
	}
	if (s->pub.charging) {
		fx_log(fx, now, LOG_INFO, s->pub.cp_id, "driver %s quit while charging on CP %s: the supply continues",
		       m->user_id, s->pub.cp_id);
		return;
	}
	struct core_cp *cp = s->cp;
	end_session(c, s, CORE_OUT_SESSION_CANCELLED, "driver quit", 1, now, fx);
	update_state(c, cp, now, 0, "driver quit", fx);
}

static void on_telemetry(struct core *c, const struct msg *m, double now, struct core_fxlist *fx)
{
	const char *tn = msg_type_name(m->type);
	struct sess *s;
	if (!m->session_id[0]) {
		/* A Release-1 engine names no session and no seq: its CP's open
		 * session is the one (plaintext CPs only; a CP of ours always
		 * names its session). */
		struct core_cp *rcp = msg_valid_cp_id(m->cp_id) ? cp_find(c, m->cp_id) : NULL;
		if (!rcp || rcp->tls || rcp->key_ever || !rcp->session) {
			fx_log(fx, now, LOG_DEBUG, NULL, "%s from CP %s without a session: ignored", tn, m->cp_id);
			return;
		}
		s = sess_of(rcp->session);
	} else {
		s = hmap_sget(&c->sessions, m->session_id);
	}
	if (!s) {
		fx_log(fx, now, LOG_DEBUG, NULL, "%s for unknown or ended session %s: ignored", tn, m->session_id);
		return;
	}
	struct core_session *p = &s->pub;
	struct core_cp *cp = s->cp;
	if (strcmp(m->cp_id, p->cp_id) != 0 || (m->user_id[0] && strcmp(m->user_id, p->driver_id) != 0)) {
		fx_log(fx, now, LOG_WARN, p->cp_id,
		       "%s for session %s names CP %s driver %s, but the session is CP %s driver %s: ignored", tn,
		       p->id, m->cp_id, m->user_id, p->cp_id, p->driver_id);
		return;
	}
	/* One message with a huge seq must not make Central ignore the rest
	 * of the session: a jump beyond seq_jump_max is refused. */
	if (m->has_seq && m->seq > (s->seq_seen ? p->last_seq : 0) + c->cfg.seq_jump_max) {
		if (!s->seq_jump_logged) {
			s->seq_jump_logged = 1;
			fx_log(fx, now, LOG_WARN, p->cp_id,
			       "%s seq %llu for session %s jumps more than %llu over the last applied (%llu): refused", tn,
			       (unsigned long long)m->seq, p->id, (unsigned long long)c->cfg.seq_jump_max,
			       (unsigned long long)p->last_seq);
		}
		return;
	}
	if (m->has_seq && s->seq_seen && m->seq <= p->last_seq) {
		fx_log(fx, now, LOG_DEBUG, p->cp_id, "%s seq %llu for session %s already seen (last %llu): ignored", tn,
		       (unsigned long long)m->seq, p->id, (unsigned long long)p->last_seq);
		return;
	}
	if (m->type != MSG_SESSION_STARTED && (!isfinite(m->kwh) || m->kwh < 0 || m->kwh > 100000)) {
		fx_log(fx, now, LOG_WARN, p->cp_id, "%s for session %s has an impossible kwh: ignored", tn, p->id);
		return;
	}
	if (m->has_seq) {
		p->last_seq = m->seq;
		s->seq_seen = 1;
	}
	p->last_tel_mono = c->mono;
	/* Telemetry during a grace: the engine is plainly supplying, so the
	 * session waits for its link as long as the metering goes on. */
	if (cp && cp->grace_until && (m->type == MSG_CONSUMO || m->type == MSG_SESSION_STARTED) &&
	    cp->grace_until < c->mono + c->cfg.link_grace)
		cp->grace_until = c->mono + c->cfg.link_grace;
	/* Energy delivered never goes down within a session; keeping the
	 * highest figure means a final message lacking figures loses nothing. */
	if (m->type != MSG_SESSION_STARTED && money_round_kwh(m->kwh) > p->kwh)
		p->kwh = money_round_kwh(m->kwh);
	p->importe = money_amount(p->kwh, p->price);

	switch (m->type) {
	case MSG_SESSION_STARTED:
	case MSG_CONSUMO:
		if (!p->charging) {
			p->charging = 1;
			p->started_at = now;
			p->started_mono = c->mono;
			if (!p->acked) {
				/* Kafka outran the link's ACK: the engine
				 * plainly accepted, tell the driver first. */
				p->acked = 1;
				struct msg *n = fx_notify(fx, now, MSG_AUTH_OK, p->driver_id, p->cp_id, p->id,
							  p->request_id);
				textf(n->message, sizeof(n->message), "CP %s authorised you", p->cp_id);
				fx_request(fx, now, p->driver_id, p->cp_id, p->request_id, p->requested_at, p->id,
					   "AUTH_OK");
				audit_driver(fx, now, p->driver_id, "DRIVER_AUTH_OK", p->cp_id, "session %s", p->id);
			}
			fx_log(fx, now, LOG_INFO, p->cp_id, "session %s on CP %s: supply started for driver %s", p->id,
			       p->cp_id, p->driver_id);
			update_state(c, cp, now, 0, "supply started", fx);
		}
		if (m->type == MSG_CONSUMO) {
			if (m->has_kw && isfinite(m->kw) && m->kw >= 0)
				p->kw = m->kw;
			struct msg *n = fx_notify(fx, now, MSG_CONSUMO_UPDATE, p->driver_id, p->cp_id, p->id,
						  p->request_id);
			n->kwh = p->kwh;
			n->importe = p->importe;
			n->kw = p->kw;
			n->has_kw = 1;
			n->price = p->price;
			fx_screen(fx, now, p->cp_id);
		}
		fx_store_session(fx, now, p);
		break;
	case MSG_SUPPLY_END:
		end_session(c, s, CORE_OUT_TICKET, NULL, 1, now, fx);
		update_state(c, cp, now, 0, "supply ended", fx);
		break;
	case MSG_AVERIADO:
	case MSG_CONEXION_PERDIDA: {
		char why[MSG_TEXT_MAX + 1];
		if (m->type == MSG_AVERIADO)
			textf(why, sizeof(why), "CP %s engine failed during the supply%s%s", p->cp_id,
			      m->reason[0] ? ": " : "", m->reason);
		else
			textf(why, sizeof(why), "CP %s engine lost its %s during the supply", p->cp_id,
			      m->component[0] ? m->component : "MONITOR");
		end_session_abnormal(c, s, why, now, fx);
		if (m->type == MSG_AVERIADO && !cp->fault && !cp->engine_fault) {
			cp->engine_fault = 1;
			c->nengine_faults++;
		}
		if (cp->engine_fault)
			cp->engine_fault_until = c->mono + CORE_ENGINE_FAULT_GRACE;
		update_state(c, cp, now, 0, m->type == MSG_AVERIADO ? "engine failed" : "engine lost its monitor", fx);
		break;
	}
	default:
		break;
	}
}

void core_on_kafka(struct core *c, const struct msg *m, double now, struct core_fxlist *fx)
{
	switch (m->type) {
	case MSG_REQUEST_CHARGE:
		on_request(c, m, now, fx);
		break;
	case MSG_DRIVER_QUIT:
		on_quit(c, m, now, fx);
		break;
	case MSG_SESSION_STARTED:
	case MSG_CONSUMO:
	case MSG_SUPPLY_END:
	case MSG_AVERIADO:
	case MSG_CONEXION_PERDIDA:
		on_telemetry(c, m, now, fx);
		break;
	default:
		fx_log(fx, now, LOG_WARN, NULL, "message of type %s is not an input of Central: ignored",
		       msg_type_name(m->type) ? msg_type_name(m->type) : "?");
		break;
	}
}

void core_on_tick(struct core *c, double now, struct core_fxlist *fx)
{
	/* An engine's AVERIADO that its monitor never confirmed (the engine was
	 * OK again before the next health check) must not leave the CP red. */
	for (size_t i = 0; c->nengine_faults > 0 && i < c->ncps; i++) {
		struct core_cp *cp = c->cps[i];
		if (cp->engine_fault && c->mono >= cp->engine_fault_until) {
			clear_engine_fault(c, cp);
			update_state(c, cp, now, 0, "engine fault not confirmed by the monitor", fx);
			weather_reconcile(c, cp, now, fx);
		}
	}
	/* Backwards: ending swaps the last open session into slot i, and the
	 * ones after i were already checked. */
	for (size_t i = c->nopen; i-- > 0;) {
		struct sess *s = c->open[i];
		struct core_cp *cp = s->cp;
		char why[MSG_TEXT_MAX + 1];
		if (cp && cp->grace_until && c->mono >= cp->grace_until) {
			textf(why, sizeof(why), "link to CP lost and not back within %.0f s", c->cfg.link_grace);
			end_session_abnormal(c, s, why, now, fx);
			update_state(c, cp, now, 0, "link grace over", fx);
		} else if (s->pub.charging && !c->kafka_down &&
			   c->mono - (s->pub.last_tel_mono > c->tel_epoch ? s->pub.last_tel_mono : c->tel_epoch) >=
				   c->cfg.supply_timeout) {
			/* The engine stopped metering without a word (its producer
			 * cut off, a stop it took too late): bill what arrived, free
			 * the CP and tell the engine to end the supply. */
			textf(why, sizeof(why), "no telemetry for %.0f s", c->cfg.supply_timeout);
			char sid[MSG_ID_MAX + 1];
			xstrlcpy(sid, s->pub.id, sizeof(sid));
			end_session_abnormal(c, s, why, now, fx);
			if (cp && cp->link_up) {
				fx_send(fx, now, cp->conn, cp->id, "FIN_SUMINISTRO#%s", sid);
				fx_event(fx, now, cp->id, "COMMAND", "FIN_SUMINISTRO %s: no telemetry", sid);
			}
			if (cp)
				update_state(c, cp, now, 0, "supply watchdog", fx);
		} else if (!s->pub.charging && c->mono - s->pub.authorised_mono >= c->cfg.reservation_timeout) {
			textf(why, sizeof(why), "vehicle not plugged in within %.0f s", c->cfg.reservation_timeout);
			end_session(c, s, CORE_OUT_SESSION_CANCELLED, why, 1, now, fx);
			if (cp)
				update_state(c, cp, now, 0, "reservation timed out", fx);
		}
	}
	req_prune(c, now, fx);
	if (c->prereg_refused && c->mono >= c->prereg_next) {
		fx_log(fx, now, LOG_WARN, NULL, "%lu frame(s) before REGISTER refused in the last %.0f s",
		       c->prereg_refused, PREREG_REPORT);
		c->prereg_refused = 0;
		c->prereg_next = c->mono + PREREG_REPORT;
	}
}

/* ------------------------------------------------------------------ */
/* operator commands                                                    */

/* evc_seterr with the text made safe for a screen and a log (vtext): an
 * operator's error may quote a peer's bytes. */
static void __attribute__((format(printf, 2, 3))) set_err(char err[EVC_ERR_LEN], const char *fmt, ...)
{
	char tmp[EVC_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vtext(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (err)
		xstrlcpy(err, tmp, EVC_ERR_LEN);
}

/* Why a stop/resume cannot go to this CP, or NULL if it can. */
static const char *command_blocker(const struct core_cp *cp, int stop)
{
	if (!cp->link_up)
		return "link is down";
	if (stop) {
		if (cp->stop_pending)
			return "PARAR already sent, waiting for its answer";
		if (cp->stopped && !cp->resume_pending)
			return "already stopped";
	} else {
		if (cp->weather_stop)
			return "held by a weather alert";
		if (cp->resume_pending)
			return "REANUDAR already sent, waiting for its answer";
		if (!cp->stopped && !cp->stop_pending)
			return "not stopped";
	}
	return NULL;
}

/* An operator stop on a CP that the weather rule halts already (or is
 * halting): recorded (stored, it outlives the alert) without a second
 * PARAR. 1 if recorded. */
static int op_stop_record(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx)
{
	if (!cp->link_up || cp->stopped)
		return 0;
	if (cp->stop_pending && !cp->stop_by_op) {
		cp->stop_by_op = 1;
		fx_event(fx, now, cp->id, "COMMAND", "operator stop: carried by the PARAR already sent for the weather");
		return 1;
	}
	if (cp->halted && !cp->stop_pending && !cp->resume_pending) {
		cp->stopped = 1;
		fx_event(fx, now, cp->id, "COMMAND", "operator stop recorded: the CP is halted already");
		update_state(c, cp, now, 1, "stopped by operator", fx);
		return 1;
	}
	return 0;
}

static void command_send(struct core_cp *cp, int stop, double now, struct core_fxlist *fx)
{
	const char *name = stop ? "PARAR" : "REANUDAR";
	if (stop) {
		cp->stop_pending = 1;
		cp->stop_by_op = 1;
	} else {
		cp->resume_pending = 1;
	}
	fx_send(fx, now, cp->conn, cp->id, "%s#CENTRAL", name);
	fx_event(fx, now, cp->id, "COMMAND", "%s sent by the operator", name);
}

static const char *audit_action(enum core_cmd cmd)
{
	switch (cmd) {
	case CORE_CMD_STOP: return "OPERATOR_STOP";
	case CORE_CMD_RESUME: return "OPERATOR_RESUME";
	case CORE_CMD_STOP_ALL: return "OPERATOR_STOP_ALL";
	case CORE_CMD_RESUME_ALL: return "OPERATOR_RESUME_ALL";
	case CORE_CMD_REVOKE: return "CP_KEY_REVOKED";
	}
	return "OPERATOR_COMMAND";
}

/* Revocation (evcharging(7) SECURITY): the key goes, the CP is told and
 * kept out of service until it authenticates again; a supply in progress
 * ends, and the engine is told to end it (what it meters afterwards under
 * the old key would be refused). */
static int revoke(struct core *c, struct core_cp *cp, const char *actor, const char *source_ip, double now,
		  struct core_fxlist *fx, char err[EVC_ERR_LEN])
{
	if (cp->revoked) {
		set_err(err, "REVOKE %s failed: its keys are already revoked", cp->id);
		return -1;
	}
	if (!cp->key[0] && !cp->key_ever) {
		set_err(err, "REVOKE %s failed: the CP has no key (%s)", cp->id,
			cp->link_up && !cp->tls ? "a Release-1 plaintext link" : "never authenticated");
		return -1;
	}
	crypto_wipe(cp->key, sizeof(cp->key));
	cp->key[0] = '\0';
	cp->revoked = 1;
	fx_key(fx, now, cp, 0, 1);
	core_fx_audit(fx, now, actor, source_ip, "CP_KEY_REVOKED", cp->id, "keys revoked; the CP must authenticate again");
	fx_event(fx, now, cp->id, "COMMAND", "keys revoked by %s", actor);
	if (cp->link_up)
		fx_send(fx, now, cp->conn, cp->id, "REVOKED#%s", cp->id);
	if (cp->session) {
		char sid[MSG_ID_MAX + 1];
		xstrlcpy(sid, cp->session->id, sizeof(sid));
		int charging = cp->session->charging;
		end_session_abnormal(c, sess_of(cp->session), "keys revoked", now, fx);
		if (charging && cp->link_up)
			fx_send(fx, now, cp->conn, cp->id, "FIN_SUMINISTRO#%s", sid);
	}
	fx_log(fx, now, LOG_WARN, cp->id, "CP %s: keys revoked by %s", cp->id, actor);
	update_state(c, cp, now, 1, "keys revoked", fx);
	return 0;
}

int core_command(struct core *c, enum core_cmd cmd, const char *cp_id, double now, struct core_fxlist *fx,
		 char err[EVC_ERR_LEN])
{
	return core_command_as(c, cmd, cp_id, "operator", NULL, now, fx, err);
}

int core_command_as(struct core *c, enum core_cmd cmd, const char *cp_id, const char *actor, const char *source_ip,
		    double now, struct core_fxlist *fx, char err[EVC_ERR_LEN])
{
	int stop = cmd == CORE_CMD_STOP || cmd == CORE_CMD_STOP_ALL;
	const char *name = stop ? "PARAR" : "REANUDAR";
	if (err)
		err[0] = '\0';
	if (!actor || !actor[0])
		actor = "operator";
	if (cmd == CORE_CMD_REVOKE) {
		struct core_cp *cp = cp_id && msg_valid_cp_id(cp_id) ? cp_find(c, cp_id) : NULL;
		if (!cp) {
			set_err(err, "REVOKE %s failed: unknown CP", cp_id ? cp_id : "");
			fx_log(fx, now, LOG_WARN, NULL, "%s", err ? err : "revoke of an unknown CP");
			return -1;
		}
		if (revoke(c, cp, actor, source_ip, now, fx, err) == -1) {
			fx_log(fx, now, LOG_WARN, cp->id, "%s", err ? err : "revoke refused");
			return -1;
		}
		return 0;
	}
	if (cmd == CORE_CMD_STOP || cmd == CORE_CMD_RESUME) {
		struct core_cp *cp = cp_id && msg_valid_cp_id(cp_id) ? cp_find(c, cp_id) : NULL;
		if (!cp) {
			set_err(err, "%s %s failed: unknown CP", name, cp_id ? cp_id : "");
			fx_log(fx, now, LOG_WARN, NULL, "%s", err ? err : "command to an unknown CP");
			return -1;
		}
		if (!stop && cp->weather_stop) {
			/* Only the weather clears a weather stop (evcharging(7)
			 * RULES, Weather); the panel says why. */
			char w[MSG_TEXT_MAX + 1];
			weather_why(w, sizeof(w), weather_holder(c, cp));
			set_err(err, "%s is held by %s", cp->id, w);
			fx_log(fx, now, LOG_WARN, cp->id, "REANUDAR %s refused: %s is held by %s; %s", cp->id, cp->id, w,
			       cp->stopped || cp->stop_by_op ? "the operator stop still holds it after the alert"
							     : "it resumes by itself when the alert clears");
			return -1;
		}
		if (stop && op_stop_record(c, cp, now, fx)) {
			core_fx_audit(fx, now, actor, source_ip, audit_action(cmd), cp->id,
				      "PARAR recorded: the CP is halted by the weather rule already");
			fx_log(fx, now, LOG_INFO, cp->id,
			       "CP %s is halted by the weather rule already: operator stop recorded, it holds after the alert",
			       cp->id);
			return 0;
		}
		const char *why = command_blocker(cp, stop);
		if (why) {
			set_err(err, "%s %s failed: CP %s is %s, %s", name, cp->id, cp->id, cp_state_name(cp->state),
				why);
			fx_log(fx, now, LOG_WARN, cp->id, "%s %s failed: CP %s is %s, %s", name, cp->id, cp->id,
			       cp_state_name(cp->state), why);
			return -1;
		}
		command_send(cp, stop, now, fx);
		core_fx_audit(fx, now, actor, source_ip, audit_action(cmd), cp->id, "%s sent", name);
		fx_log(fx, now, LOG_INFO, cp->id, "%s sent to CP %s: waiting for its acknowledgement", name, cp->id);
		return 0;
	}
	if (cmd != CORE_CMD_STOP_ALL && cmd != CORE_CMD_RESUME_ALL) {
		set_err(err, "unknown command %d", (int)cmd);
		return -1;
	}
	size_t sent = 0, down = 0, skipped = 0;
	char downlist[160] = "";
	size_t dl = 0;
	for (size_t i = 0; i < c->ncps; i++) {
		struct core_cp *cp = c->cps[i];
		if (stop && op_stop_record(c, cp, now, fx)) {
			sent++;
			continue;
		}
		const char *why = command_blocker(cp, stop);
		if (!why) {
			command_send(cp, stop, now, fx);
			sent++;
		} else if (!cp->link_up) {
			if (down < 8) {
				int w = snprintf(downlist + dl, sizeof(downlist) - dl, "%s%s", down ? ", " : "", cp->id);
				if (w > 0 && (size_t)w < sizeof(downlist) - dl)
					dl += (size_t)w;
			}
			down++;
		} else {
			skipped++;
		}
	}
	char more[48] = "";
	if (down > 8)
		snprintf(more, sizeof(more), " and %zu more", down - 8);
	enum log_level lvl = down ? LOG_WARN : LOG_INFO;
	core_fx_audit(fx, now, actor, source_ip, audit_action(cmd), NULL, "%s to all: sent to %zu CP(s), %zu not reachable",
		      name, sent, down);
	fx_log(fx, now, lvl, NULL, "%s to all: sent to %zu CP(s), %zu already %s, %zu not reachable (link down)%s%s%s",
	       name, sent, skipped, stop ? "stopped or stopping" : "running or resuming", down, down ? ": " : "",
	       downlist, more);
	if (!sent) {
		set_err(err, "%s to all: no CP to send it to (%zu link down, %zu already %s)", name, down, skipped,
			stop ? "stopped" : "running");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* the weather rule (evcharging(7) RULES, Weather)                      */

int core_location_names_city(const char *location, const char *city)
{
	if (!location || !city || !city[0])
		return 0;
	const uint8_t *p = (const uint8_t *)location;
	size_t n = strlen(city), len = strlen(location), k, end;
	int after_word = 0; /* the character before i is part of a word */
	for (size_t i = 0; i < len; i += k) {
		uint32_t here = utf8_decode(p + i, len - i, &k);
		if (!after_word && utf8_fold_prefix(location + i, len - i, city, n, &end)) {
			size_t kn;
			if (i + end == len || !utf8_word_char(utf8_decode(p + i + end, len - i - end, &kn)))
				return 1;
		}
		after_word = utf8_word_char(here);
	}
	return 0;
}

size_t core_weather_count(const struct core *c)
{
	return c->ncities;
}

const struct core_weather_city *core_weather_at(const struct core *c, size_t i)
{
	return i < c->ncities ? &c->cities[i] : NULL;
}

double core_weather_threshold(const struct core *c)
{
	return c->threshold;
}

int core_weather_stale(const struct core *c, const struct core_weather_city *w)
{
	return w && c->mono - w->at_mono > CORE_WEATHER_STALE;
}

static struct core_weather_city *weather_holder(const struct core *c, const struct core_cp *cp)
{
	for (size_t i = 0; i < c->ncities; i++)
		if (c->cities[i].alert && core_location_names_city(cp->location, c->cities[i].city))
			return (struct core_weather_city *)&c->cities[i];
	return NULL;
}

const struct core_weather_city *core_weather_holding(const struct core *c, const struct core_cp *cp)
{
	return cp ? weather_holder(c, cp) : NULL;
}

/* Does any city reported so far name the CP? */
static int weather_covers(const struct core *c, const struct core_cp *cp)
{
	for (size_t i = 0; i < c->ncities; i++)
		if (core_location_names_city(cp->location, c->cities[i].city))
			return 1;
	return 0;
}

static const char *temp_str(char *buf, size_t n, double t)
{
	return money_fixed(buf, n, t, 1);
}

/* "a weather alert in Madrid (-2.0 C)" */
static const char *weather_why(char *buf, size_t n, const struct core_weather_city *w)
{
	char t[32];
	if (!w)
		textf(buf, n, "a weather alert");
	else if (w->has_temp)
		textf(buf, n, "a weather alert in %s (%s C)", w->city, temp_str(t, sizeof(t), w->temp));
	else
		textf(buf, n, "a weather alert in %s", w->city);
	return buf;
}

/* Bring what the CP was told in line with the weather stop: PARAR when a
 * weather stop holds a CP not halted (nor being halted), REANUDAR when a
 * CP halted for the weather is held by nothing any more. One command at a
 * time: while one awaits its answer nothing is sent, and the answer calls
 * this again. Never a PARAR to a CP already halted for another reason, and
 * never a REANUDAR to one that an operator stop, a revocation or a fault
 * still holds (evcharging(7) RULES, Weather). */
static void weather_reconcile(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx)
{
	if (!cp->link_up || cp->revoked || cp->stop_pending || cp->resume_pending)
		return;
	char why[MSG_TEXT_MAX + 1];
	if (cp->weather_stop) {
		if (cp->halted)
			return;
		cp->stop_pending = 1;
		cp->stop_by_op = 0;
		cp->weather_unsure = 0;
		weather_why(why, sizeof(why), weather_holder(c, cp));
		fx_send(fx, now, cp->conn, cp->id, "PARAR#CENTRAL");
		fx_event(fx, now, cp->id, "COMMAND", "PARAR sent: %s", why);
		return;
	}
	if (cp->stopped || cp->fault || cp->engine_fault)
		return;
	if (cp->halted) {
		cp->resume_pending = 1;
		fx_send(fx, now, cp->conn, cp->id, "REANUDAR#CENTRAL");
		fx_event(fx, now, cp->id, "COMMAND", "REANUDAR sent: the weather alert is over");
	} else if (cp->weather_unsure && !cp->session && weather_covers(c, cp)) {
		/* Weather stops are not stored: after Central's restart the CP
		 * may still be halted by one. Its city is not alerted, so it
		 * is told once (a REANUDAR to a running CP changes nothing). */
		cp->weather_unsure = 0;
		cp->resume_pending = 1;
		fx_send(fx, now, cp->conn, cp->id, "REANUDAR#CENTRAL");
		fx_event(fx, now, cp->id, "COMMAND",
			 "REANUDAR sent: no weather alert holds it (a stop from before Central's restart is not kept)");
	}
}

/* Re-derive the CP's weather stop from the alerted cities; 1 if it changed
 * (recorded in cp_events and shown; the state follows with the ACK). */
static int weather_refresh(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx)
{
	const struct core_weather_city *w = weather_holder(c, cp);
	int want = w != NULL;
	if (want == cp->weather_stop)
		return 0;
	char why[MSG_TEXT_MAX + 1];
	cp->weather_stop = want;
	if (want)
		fx_event(fx, now, cp->id, "WEATHER", "held by %s", weather_why(why, sizeof(why), w));
	else
		fx_event(fx, now, cp->id, "WEATHER", "weather alert over");
	return 1;
}

/* A CP that came to be (registry, REGISTER) or changed place: it takes the
 * weather stop of its city at once. */
static void weather_new_place(struct core *c, struct core_cp *cp, double now, struct core_fxlist *fx)
{
	if (weather_refresh(c, cp, now, fx)) {
		weather_reconcile(c, cp, now, fx);
		update_state(c, cp, now, 0, cp->weather_stop ? "weather alert" : "weather alert over", fx);
		fx_screen(fx, now, cp->id);
	}
}

/* A list of CP ids for a log line or audit detail: at most LIST_IDS
 * named, then "and N more". */
#define LIST_IDS 12
struct idlist {
	char text[300];
	size_t len, n;
};

static void idlist_add(struct idlist *l, const char *id, const char *note)
{
	if (l->n++ >= LIST_IDS)
		return;
	int w = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%s%s%s%s", l->len ? ", " : "", id,
			 note ? " (" : "", note ? note : "", note ? ")" : "");
	if (w > 0 && (size_t)w < sizeof(l->text) - l->len)
		l->len += (size_t)w;
}

static const char *idlist_str(const struct idlist *l, char *buf, size_t n)
{
	if (l->n == 0)
		snprintf(buf, n, "none");
	else if (l->n > LIST_IDS)
		snprintf(buf, n, "%s and %zu more", l->text, l->n - LIST_IDS);
	else
		snprintf(buf, n, "%s", l->text);
	return buf;
}

/* What still holds a CP whose weather stop just went, or NULL. */
static const char *other_holder(const struct core_cp *cp)
{
	if (cp->revoked)
		return "keys revoked";
	if (cp->stopped || cp->stop_by_op)
		return "operator stop";
	if (cp->fault || cp->engine_fault)
		return "fault";
	if (!cp->link_up)
		return "link down";
	return NULL;
}

/* The city's alert is as w->alert says (changed = it just changed): every
 * CP whose location names it gets its weather stop raised or cleared, and
 * the change is audited and logged once for all of them. Readings that
 * change nothing still retry what a CP refused or missed (a NACKed PARAR,
 * a link that was down). */
static void weather_apply(struct core *c, struct core_weather_city *w, int changed, const char *actor,
			  const char *source_ip, double now, struct core_fxlist *fx)
{
	struct idlist moved = { .len = 0 }, held = { .len = 0 };
	char tb[32], hb[32], why[MSG_TEXT_MAX + 1];
	for (size_t i = 0; i < c->ncps; i++) {
		struct core_cp *cp = c->cps[i];
		if (!core_location_names_city(cp->location, w->city))
			continue;
		if (!weather_refresh(c, cp, now, fx)) {
			if (!changed)
				weather_reconcile(c, cp, now, fx);
			else if (w->alert)
				idlist_add(&held, cp->id, "already held by another city");
			else if (cp->weather_stop)
				idlist_add(&held, cp->id, "another city's alert");
			continue;
		}
		weather_reconcile(c, cp, now, fx);
		const char *other = w->alert ? NULL : other_holder(cp);
		if (w->alert)
			idlist_add(&moved, cp->id, !cp->link_up ? "link down: stopped when it registers" : NULL);
		else if (other)
			idlist_add(&held, cp->id, other);
		else
			idlist_add(&moved, cp->id, NULL);
		update_state(c, cp, now, 0, w->alert ? weather_why(why, sizeof(why), w) : "weather alert over", fx);
		fx_screen(fx, now, cp->id);
	}
	if (!changed)
		return;
	char ml[400], hl[400];
	idlist_str(&moved, ml, sizeof(ml));
	idlist_str(&held, hl, sizeof(hl));
	temp_str(tb, sizeof(tb), w->temp);
	temp_str(hb, sizeof(hb), c->threshold);
	if (w->alert) {
		core_fx_audit(fx, now, actor, source_ip, "WEATHER_ALERT", NULL,
			      "%s %s C < threshold %s C: %zu CP(s) stopped: %s%s%s", w->city, tb, hb, moved.n, ml,
			      held.n ? "; " : "", held.n ? hl : "");
		fx_log(fx, now, LOG_WARN, NULL, "weather alert in %s (%s C, threshold %s C): %zu CP(s) stopped: %s",
		       w->city, tb, hb, moved.n, ml);
	} else {
		core_fx_audit(fx, now, actor, source_ip, "WEATHER_CLEAR", NULL,
			      "%s %s C >= threshold %s C: %zu CP(s) resumed: %s; still held: %s", w->city, tb, hb,
			      moved.n, ml, hl);
		fx_log(fx, now, LOG_INFO, NULL,
		       "weather alert in %s over (%s C, threshold %s C): %zu CP(s) resumed: %s; still held: %s", w->city,
		       tb, hb, moved.n, ml, hl);
	}
	core_fx_push(fx, CORE_FX_STATUS, now);
}

static struct core_weather_city *city_find(struct core *c, const char *city)
{
	for (size_t i = 0; i < c->ncities; i++)
		if (utf8_fold_eq(c->cities[i].city, city))
			return &c->cities[i];
	return NULL;
}

/* NULL if city is a name a reading may carry, else why not. */
static const char *bad_city(const char *city)
{
	if (!city || !city[0])
		return "the city is empty";
	size_t n = strlen(city);
	if (n > CORE_CITY_MAX)
		return "the city is longer than 63 bytes";
	if (!utf8_valid(city, n, NULL))
		return "the city is not valid UTF-8";
	int word = 0;
	for (size_t i = 0, k; i < n; i += k) {
		uint32_t cp = utf8_decode((const uint8_t *)city + i, n - i, &k);
		if (utf8_control(cp))
			return "the city has a control character";
		word |= utf8_alnum(cp);
	}
	if (!word)
		return "the city has no letter or digit";
	return NULL;
}

static int temp_ok(double t)
{
	return isfinite(t) && t >= CORE_WEATHER_MIN && t <= CORE_WEATHER_MAX;
}

int core_on_weather(struct core *c, const char *city, int has_error, double temp, const char *error,
		    const char *actor, const char *source_ip, double now, struct core_fxlist *fx, int *alert,
		    char err[EVC_ERR_LEN])
{
	if (err)
		err[0] = '\0';
	if (!actor || !actor[0])
		actor = "weather";
	const char *bad = bad_city(city);
	if (bad) {
		set_err(err, "reading refused: %s", bad);
		return -1;
	}
	if (!has_error && !temp_ok(temp)) {
		set_err(err, "reading for %s refused: the temperature must be a number from -100 to 100 C", city);
		return -1;
	}
	struct core_weather_city *w = city_find(c, city);
	if (!w) {
		if (c->ncities >= CORE_WEATHER_CITIES) {
			set_err(err, "reading for %s refused: %d cities are known already", city, CORE_WEATHER_CITIES);
			return -1;
		}
		w = &c->cities[c->ncities++];
		memset(w, 0, sizeof(*w));
		xstrlcpy(w->city, city, sizeof(w->city));
		fx_log(fx, now, LOG_INFO, NULL, "weather: first reading for %s", w->city);
	}
	w->at = now;
	w->at_mono = c->mono;
	if (has_error) {
		char e[MSG_TEXT_MAX + 1];
		text_copy(e, sizeof(e), error && error[0] ? error : "provider error");
		/* Logged when it changes, not at every reading. */
		if (strcmp(e, w->error) != 0)
			fx_log(fx, now, LOG_WARN, NULL, "weather: no temperature for %s: %s (alert %s)", w->city, e,
			       w->alert ? "kept" : "not raised");
		xstrlcpy(w->error, e, sizeof(w->error));
		if (alert)
			*alert = w->alert;
		fx_screen(fx, now, "");
		return 0;
	}
	w->error[0] = '\0';
	w->has_temp = 1;
	w->temp = temp;
	int was = w->alert;
	w->alert = temp < c->threshold;
	weather_apply(c, w, was != w->alert, actor, source_ip, now, fx);
	fx_screen(fx, now, ""); /* the weather line */
	if (alert)
		*alert = w->alert;
	return 0;
}

int core_set_weather_threshold(struct core *c, double threshold, const char *actor, const char *source_ip,
			       double now, struct core_fxlist *fx, char err[EVC_ERR_LEN])
{
	if (err)
		err[0] = '\0';
	if (!actor || !actor[0])
		actor = "operator";
	if (!temp_ok(threshold)) {
		set_err(err, "threshold refused: it must be a number from -100 to 100 C");
		return -1;
	}
	char a[32], b[32];
	core_fx_audit(fx, now, actor, source_ip, "WEATHER_THRESHOLD", NULL, "weather threshold %s C -> %s C",
		      temp_str(a, sizeof(a), c->threshold), temp_str(b, sizeof(b), threshold));
	fx_log(fx, now, LOG_INFO, NULL, "weather threshold %s C -> %s C (by %s)", a, b, actor);
	c->threshold = threshold;
	for (size_t i = 0; i < c->ncities; i++) {
		struct core_weather_city *w = &c->cities[i];
		if (!w->has_temp)
			continue;
		int was = w->alert;
		w->alert = w->temp < threshold;
		if (was != w->alert)
			weather_apply(c, w, 1, actor, source_ip, now, fx);
	}
	fx_screen(fx, now, "");
	return 0;
}

/* ------------------------------------------------------------------ */
/* views                                                                */

size_t core_cp_count(const struct core *c)
{
	return c->ncps;
}

const struct core_cp *core_cp_at(const struct core *c, size_t i)
{
	return i < c->ncps ? c->cps[i] : NULL;
}

const struct core_cp *core_cp_find(const struct core *c, const char *id)
{
	return id ? cp_find(c, id) : NULL;
}

void core_cp_state_counts(const struct core *c, size_t counts[CP_STATE_COUNT])
{
	for (int i = 0; i < CP_STATE_COUNT; i++)
		counts[i] = 0;
	for (size_t i = 0; i < c->ncps; i++)
		counts[c->cps[i]->state]++;
}

void core_network_status(const struct core *c, double now, struct msg *out)
{
	msg_init(out, MSG_NETWORK_STATUS_UPDATE);
	out->timestamp = now;
	out->has_timestamp = 1;
	size_t n = c->ncps < MSG_STATUS_MAX ? c->ncps : MSG_STATUS_MAX;
	out->cps = n ? xcalloc(n, sizeof(*out->cps)) : NULL;
	out->ncps = n;
	for (size_t i = 0; i < n; i++) {
		const struct core_cp *cp = c->cps[i];
		xstrlcpy(out->cps[i].id, cp->id, sizeof(out->cps[i].id));
		xstrlcpy(out->cps[i].status, cp_state_name(cp->state), sizeof(out->cps[i].status));
		xstrlcpy(out->cps[i].location, cp->location, sizeof(out->cps[i].location));
		out->cps[i].price = cp->price;
	}
}

int core_parse_command(const char *line, int *cmd, char cp_id[MSG_CP_ID_MAX + 1], char err[EVC_ERR_LEN])
{
	char buf[256], *tok[3];
	int n = 0;
	if (cp_id)
		cp_id[0] = '\0';
	if (!line) {
		set_err(err, "empty command");
		return -1;
	}
	if (strlen(line) >= sizeof(buf)) {
		set_err(err, "command too long");
		return -1;
	}
	strcpy(buf, line);
	char *save = NULL;
	for (char *t = strtok_r(buf, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == 3) {
			n++;
			break;
		}
		tok[n++] = t;
	}
	if (n == 0) {
		set_err(err, "empty command: use P <cp>, R <cp>, PT, RT, REVOKE <cp> or Q");
		return -1;
	}
	static const struct {
		const char *s, *l;
		int cmd, needs_cp;
	} tab[] = {
		{ "P", "PARAR", CORE_CMD_STOP, 1 },
		{ "R", "REANUDAR", CORE_CMD_RESUME, 1 },
		{ "PT", "PARAR_TODOS", CORE_CMD_STOP_ALL, 0 },
		{ "RT", "REANUDAR_TODOS", CORE_CMD_RESUME_ALL, 0 },
		{ "REVOKE", "RESTAURAR_CLAVES", CORE_CMD_REVOKE, 1 },
		{ "Q", "QUIT", -1, 0 },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (strcasecmp(tok[0], tab[i].s) != 0 && strcasecmp(tok[0], tab[i].l) != 0)
			continue;
		if (tab[i].needs_cp) {
			if (n < 2) {
				set_err(err, "%s needs a CP id, e.g. %s MAD-01", tab[i].l, tab[i].s);
				return -1;
			}
			if (n > 2) {
				set_err(err, "%s takes one CP id", tab[i].l);
				return -1;
			}
			if (!msg_valid_cp_id(tok[1])) {
				set_err(err, "invalid CP id '%.40s'", tok[1]);
				return -1;
			}
			if (cp_id)
				xstrlcpy(cp_id, tok[1], MSG_CP_ID_MAX + 1);
		} else if (n > 1) {
			set_err(err, "%s takes no argument", tab[i].l);
			return -1;
		}
		if (cmd)
			*cmd = tab[i].cmd;
		return 0;
	}
	set_err(err, "unknown command '%.40s': use P <cp>, R <cp>, PT, RT, REVOKE <cp> or Q", tok[0]);
	return -1;
}
