/* Central's control core: a pure state machine. One event in (a
 * link frame from a CP, a link going down, a Kafka message, an operator
 * command, a clock tick), effects out (frames to send, connections to close,
 * Kafka messages to produce, rows to store, log lines, screen changes). No
 * I/O, no threads, no sockets: everything here is unit-tested event by
 * event. Two clocks, both given by the caller so tests drive time by hand:
 * the now argument of each event is wall-clock seconds since the epoch,
 * used only for what is stored and shown; every timer (reservations,
 * watchdogs, grace periods) runs on the monotonic clock set with
 * core_set_mono, so a step of the wall clock moves no deadline.
 *
 * Every rule of evcharging(7) RULES lives here. */
#ifndef EVC_CORE_H
#define EVC_CORE_H
#include <stddef.h>
#include <stdint.h>

#include "evc/link.h"
#include "evc/log.h"
#include "evc/msg.h"
#include "evc/state.h"
#include "evc/err.h"

/* s: the monitor checks every 1 s and reports within 1.5 s */
#define CORE_ENGINE_FAULT_GRACE 3.0


enum core_outcome { CORE_OUT_OPEN = 0, CORE_OUT_TICKET, CORE_OUT_SUPPLY_ERROR, CORE_OUT_SESSION_CANCELLED };
/* NULL for CORE_OUT_OPEN, else "TICKET", "SUPPLY_ERROR", "SESSION_CANCELLED". */
const char *core_outcome_name(enum core_outcome o);

/* A session as stored (evcharging(7) DATABASE) and as shown. */
struct core_session {
	char id[MSG_ID_MAX + 1];
	char cp_id[MSG_CP_ID_MAX + 1];
	char driver_id[MSG_ID_MAX + 1];
	char request_id[MSG_ID_MAX + 1];
	double price;          /* EUR/kWh sent in AUTORIZAR_SUMINISTRO */
	double kwh, importe;   /* running or final; importe = kwh * price */
	double kw;             /* last instantaneous power */
	uint64_t last_seq;     /* highest telemetry seq applied */
	double requested_at, authorised_at, started_at, ended_at; /* wall, 0 = not yet */
	double authorised_mono, started_mono, last_tel_mono;      /* monotonic timers */
	int acked;             /* CP acknowledged AUTORIZAR_SUMINISTRO */
	int charging;          /* SESSION_STARTED seen */
	enum core_outcome outcome;
	char reason[MSG_TEXT_MAX + 1]; /* why it ended, if not a ticket */
};

/* A charging point as Central knows it: the facts kept apart, and the state
 * derived from them (first match wins, evcharging(7) RULES). */
struct core_cp {
	char id[MSG_CP_ID_MAX + 1];
	char location[MSG_LOCATION_MAX + 1];
	double price;
	int link_up;
	uint64_t conn;          /* link connection id while link_up */
	int stopped;            /* operator stop in force (stored) */
	int stop_pending;       /* PARAR or REANUDAR sent, waiting ACK */
	int resume_pending;
	/* PARAR (1) or REANUDAR (2) sent but the link was lost before its
	 * ACK: the operator meant it, so it is sent again on REGISTER. */
	int redo_cmd;
	int fault;              /* FAULT reported and not RECOVERed */
	/* The engine said AVERIADO on Kafka before its monitor's FAULT came in
	 * on the link: the CP shows AVERIADO meanwhile, so no driver is sent to
	 * a failed engine in that gap. Cleared by FAULT (which takes over),
	 * RECOVER, or after CORE_ENGINE_FAULT_GRACE s without a FAULT. */
	int engine_fault;
	double engine_fault_until;
	struct core_session *session; /* open session or NULL (owned by the core) */
	enum cp_state state;  /* derived; read-only for callers */
	double state_since;     /* when state last changed */
	double last_seen;       /* last frame from the CP */
	/* Link lost with a session open: the session is kept until this
	 * monotonic time, so a monitor that comes back (or the engine's own
	 * end of supply on Kafka) settles it; 0 = no grace running. */
	double grace_until;
	/* Warnings about this CP's frames: at most a few a window (a peer
	 * cannot flood the log). */
	double warn_window;
	unsigned warn_count, warn_dropped;
	/* Release 2 trust (evcharging(7) SECURITY) */
	char secret_hash[65];   /* registry's hash of the CP's secret; "" = not registered */
	char key[45];           /* the CP's Fernet key; "" = none (not issued, revoked) */
	int key_ever;           /* a key was issued once: a later REGISTER is a RECONNECT */
	int revoked;            /* keys revoked: out of service until it authenticates again */
	int deleted;            /* unregistered at the registry: refused */
	int tls;                /* the current link runs over TLS (link_up) */
	char peer[64];          /* the current link's address (link_up) */
	int place_differs_logged; /* a monitor's other location/price was logged once */
	/* The weather rule (evcharging(7) RULES, Weather): */
	int weather_stop;       /* a weather alert on its city holds it (not stored) */
	/* The CP acknowledged a PARAR and no REANUDAR since: it is halted
	 * (kept across a link loss; FUERA_DE_SERVICIO while weather_stop). */
	int halted;
	/* The PARAR pending (stop_pending) carries an operator stop: its ACK
	 * sets stopped. A PARAR sent for the weather alone does not. */
	int stop_by_op;
	/* Central restarted: the CP may still be halted by a weather stop
	 * from before (not stored); the first reading at or above the
	 * threshold for its city resumes it once. */
	int weather_unsure;
};

enum core_fx_kind {
	CORE_FX_SEND,          /* u.link: frame DATA to send on link conn */
	CORE_FX_CLOSE,         /* u.link: text = reason; EOT after queued frames, close */
	CORE_FX_PRODUCE,       /* u.produce: to msg_type_topic(type), key = cp_id for
	                          telemetry, user_id otherwise (no cps: never a status) */
	CORE_FX_STORE_CP,      /* u.cp: upsert the charging_points row */
	CORE_FX_STORE_SESSION, /* u.session: upsert the sessions row */
	CORE_FX_STORE_EVENT,   /* u.event: append to cp_events */
	CORE_FX_LOG,           /* u.log: one line for the console / log pane */
	CORE_FX_SCREEN,        /* u.screen: that CP's card changed; cp_id "" = the
	                          weather line changed (core_weather_at) */
	CORE_FX_STATUS,        /* (nothing) network_status should be published soon */
	CORE_FX_REQUEST,       /* u.request: a driver request and its outcome, for
	                          the requests pane */
	CORE_FX_STORE_REQUEST, /* u.seen: remember (user_id, request_id) was answered */
	CORE_FX_PRUNE_REQUESTS,/* u.prune: forget answered requests seen before ts */
	CORE_FX_AUDIT,         /* u.audit: one audit_log row (evcharging(7) SECURITY),
	                          written in the transaction of what it records */
	CORE_FX_KEY,           /* u.key: the CP's key changed (issued, or "" revoked/removed)
	                          and its link kind: store it, and tell the telemetry reader */
	CORE_FX_REGISTERED,    /* u.link.conn: the link registered (its deadline no longer applies) */
};

#define CORE_AUDIT_DETAIL_MAX 511 /* schema.h SCHEMA_AUDIT_DETAIL_MAX - 1 */

/* The charging_points row of a CP (evcharging(7) DATABASE). */
struct core_cp_row {
	char id[MSG_CP_ID_MAX + 1];
	char location[MSG_LOCATION_MAX + 1];
	double price;
	enum cp_state state;
	int stopped, fault;
	double state_since;
};

/* One effect: a kind and only what that kind needs. */
struct core_fx {
	enum core_fx_kind kind;
	double ts; /* wall clock of the event that caused it */
	union {
		struct {
			uint64_t conn;
			char text[LINK_DATA_MAX + 1];
			/* SEND: DATA that is not opcode-first (a Release-1
			 * program's answer is a bare driver id) */
			int raw;
		} link;
		struct msg produce;
		struct core_cp_row cp;
		struct core_session session;
		struct {
			char cp_id[MSG_CP_ID_MAX + 1];
			char event[32];
			char detail[LINK_DATA_MAX + 1];
		} event;
		struct {
			enum log_level level;
			char cp_id[MSG_CP_ID_MAX + 1]; /* "" if about no CP */
			char tag[32];                  /* "" for the core's lines; LINK, KAFKA... */
			char text[LINK_DATA_MAX + 1];
		} log;
		struct {
			char cp_id[MSG_CP_ID_MAX + 1];
		} screen;
		struct {
			char user_id[MSG_ID_MAX + 1];
			char cp_id[MSG_CP_ID_MAX + 1];
			char request_id[MSG_ID_MAX + 1];
			char session_id[MSG_ID_MAX + 1];
			double requested_at;
			char outcome[MSG_TEXT_MAX + 32]; /* "AUTH_OK", "AUTH_DENIED: <reason>", ... */
		} request;
		struct {
			char user_id[MSG_ID_MAX + 1];
			char request_id[MSG_ID_MAX + 1];
		} seen;
		struct {
			double before; /* wall clock */
		} prune;
		struct {
			char cp_id[MSG_CP_ID_MAX + 1];
			char key[45];       /* "" = none */
			int revoked;
			int plain;          /* the CP's link is plaintext: its telemetry may be too */
			int store;          /* the key or revoked flag changed: write the row */
		} key;
		struct {
			char actor[80];     /* operator, api:<name>, cp:<id>, driver:<id>, weather, central... */
			char source_ip[64]; /* "" if none */
			char action[32];    /* CP_AUTH_OK, OPERATOR_STOP, ... */
			char cp_id[MSG_CP_ID_MAX + 1]; /* "" if none */
			char detail[CORE_AUDIT_DETAIL_MAX + 1]; /* never a secret, key or token */
		} audit;
	} u;
};

/* A growing list of effects, in the order they must be carried out. */
struct core_fxlist {
	struct core_fx *v;
	size_t n, cap;
};
void core_fxlist_init(struct core_fxlist *l);
void core_fxlist_clear(struct core_fxlist *l); /* n = 0, keeps memory */
void core_fxlist_free(struct core_fxlist *l);
/* Append an effect: only kind and ts are set; the caller fills the kind's
 * member of u (so a log line does not pay for zeroing room for a
 * message). */
struct core_fx *core_fx_push(struct core_fxlist *l, enum core_fx_kind kind, double now);
/* While a backlog is caught up (evcharging(7) RULES): drop every effect a
 * later one of the same list makes redundant, so a turn that applied many
 * CONSUMO of a session produces one CONSUMO_UPDATE (the latest), writes one
 * sessions row and redraws one card:
 *   - a CONSUMO_UPDATE followed by another of the same session;
 *   - a STORE_SESSION followed by another of the same session (each is
 *     the whole row, upserted: the last leaves the same row);
 *   - a SCREEN followed by another of the same CP (the card is drawn from
 *     the CP's state at that moment).
 * Nothing else is touched and what stays keeps its order: a kept
 * CONSUMO_UPDATE is the last one, at its own position, so every TICKET,
 * SUPPLY_ERROR, state change and other effect goes out as before.
 * scratch is a string map the caller keeps (empty afterwards). Returns
 * how many effects were dropped. */
struct hmap;
size_t core_fxlist_coalesce(struct core_fxlist *l, struct hmap *scratch);
/* Append an audit row effect; source_ip and cp_id may be NULL. */
void core_fx_audit(struct core_fxlist *l, double now, const char *actor, const char *source_ip, const char *action,
		   const char *cp_id, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

struct core_config {
	double request_max_age;      /* s, default 60 */
	double reservation_timeout;  /* s, default 120 */
	/* s a charging session may go without telemetry before it ends
	 * SUPPLY_ERROR "no telemetry" (default 10; evcharging(7) RULES) */
	double supply_timeout;
	/* s an open session outlives its CP's link (default 10: more than
	 * the engine's 5 s of monitor silence, so the engine's own end of
	 * supply arrives first) */
	double link_grace;
	/* largest jump of telemetry seq over the last one applied (10,000) */
	uint64_t seq_jump_max;
	/* Release-1 plaintext links may register (--plain-links; the core's
	 * default, so its own tests run Release 1). Links the core was not
	 * told about with core_on_link_up count as plaintext. */
	int plain_links;
	/* A new Fernet key for a CP (evcharging(7) SECURITY): 0 and out, or
	 * -1. NULL: no key can be issued (a TLS REGISTER is refused). */
	int (*new_key)(void *arg, char out[45]);
	void *new_key_arg;
	/* Is driver id registered? Lets Central see drivers added to the database
	 * while it runs (--add-driver). NULL: only drivers given with
	 * core_add_driver count. */
	int (*driver_known)(void *arg, const char *driver_id);
	void *driver_known_arg;
	/* degrees C: a weather reading below it raises its city's alert
	 * (--weather-threshold, default 0.0; evcharging(7) RULES, Weather) */
	double weather_threshold;
};
void core_config_defaults(struct core_config *c);

struct core;

/* Caller frees with core_free. cfg is copied. */
struct core *core_new(const struct core_config *cfg);
void core_free(struct core *c);

/* The monotonic clock for timers (seconds, any origin); set it before each
 * batch of events. */
void core_set_mono(struct core *c, double mono);
/* Is the broker reachable? While it is not, telemetry cannot arrive, so
 * the supply watchdog waits, and counts again from the broker's return. */
void core_set_kafka_up(struct core *c, int up);

/* ---- loading from the store at start (no effects) ---- */
/* A known CP: DESCONECTADO until it registers; stopped as stored. */
void core_load_cp(struct core *c, const char *id, const char *location, double price, int stopped);
/* What the registry knows of a CP (evcharging(7) SECURITY), at start and
 * whenever the registry changed it. */
struct core_reg {
	char id[MSG_CP_ID_MAX + 1];
	char location[MSG_LOCATION_MAX + 1]; /* "" = unchanged */
	double price;                         /* 0 = unchanged */
	char secret_hash[65];                 /* "" = no credential */
	char key[45];                         /* stored key, "" = none */
	int key_ever;
	int revoked, deleted;
};
/* At start (no effects). */
void core_load_reg(struct core *c, const struct core_reg *r);
/* While running: a CP registered, changed (new secret, place, price) or
 * deleted at the registry, or added with --add-cp. A deleted CP's link is
 * closed and its session ends; a new secret closes the link too (the CP
 * authenticates again). */
void core_on_registry(struct core *c, const struct core_reg *r, double now, struct core_fxlist *fx);
void core_add_driver(struct core *c, const char *driver_id);
/* A request answered before (stored at seen_at, wall clock): a replay of it
 * is ignored until it is older than twice the request max age. */
void core_load_request(struct core *c, const char *user_id, const char *request_id, double seen_at, double now);
/* A session the store had open (Central crashed or was stopped). It waits
 * for its CP as after a link loss (at least 45 s), so the engine's
 * telemetry and end of supply bill what was delivered; if nothing can take
 * it up (CP unknown or busy, --link-grace 0) it ends at once: SUPPLY_ERROR
 * with its partial figures if it had started charging, else
 * SESSION_CANCELLED; the driver is told; effects into fx. */
void core_recover_session(struct core *c, const struct core_session *s, double now,
			  struct core_fxlist *fx);

/* ---- events ---- */
/* Link conn came up (its handshake done): its peer address ("ip:port") and
 * whether it runs over TLS. Before REGISTER. */
void core_on_link_up(struct core *c, uint64_t conn, const char *peer, int tls, double now, struct core_fxlist *fx);
/* A plaintext link refused by the link server (no --plain-links): audited,
 * at most once a minute per address. */
void core_on_link_refused(struct core *c, const char *peer, const char *reason, double now, struct core_fxlist *fx);
/* A valid frame (DATA, NUL-terminated) arrived on link conn. conn ids are
 * the caller's, unique for the process's life. */
void core_on_frame(struct core *c, uint64_t conn, const char *data, double now, struct core_fxlist *fx);
/* Link conn is gone (closed, broken, heartbeat timeout); reason for the log. */
void core_on_link_down(struct core *c, uint64_t conn, const char *reason, double now, struct core_fxlist *fx);
/* A decoded message from driver_requests or cp_telemetry. */
void core_on_kafka(struct core *c, const struct msg *m, double now, struct core_fxlist *fx);
/* Timers: reservation timeouts, the supply watchdog, link grace, summaries
 * of refused frames. Call at least once a second. */
void core_on_tick(struct core *c, double now, struct core_fxlist *fx);

enum core_cmd { CORE_CMD_STOP, CORE_CMD_RESUME, CORE_CMD_STOP_ALL, CORE_CMD_RESUME_ALL, CORE_CMD_REVOKE };
/* An operator command. cp_id is ignored for the _ALL forms. Returns 0 if
 * sent (it takes effect when the CP acknowledges), -1 if it fails at once
 * (unknown CP, link down, already in that state) with err filled; either
 * way a line for the operator is in fx. For _ALL: 0 if sent to at least one
 * CP; CPs whose link is down are listed in the log line.
 * Weather (evcharging(7) RULES, Weather): REANUDAR of a CP a weather alert
 * holds fails, err "MAD-01 is held by a weather alert in Madrid (-2.0 C)"
 * (REANUDAR_TODOS skips such CPs); PARAR of a CP the weather halts already
 * is recorded at once (0, stored, no second PARAR). */
int core_command(struct core *c, enum core_cmd cmd, const char *cp_id, double now,
		 struct core_fxlist *fx, char err[EVC_ERR_LEN]);
/* The same with who asked ("operator", "api:<name>", "operator:ctl") and
 * from where (NULL for the local console), for the audit row.
 * CORE_CMD_REVOKE (evcharging(7) SECURITY): the CP's key is deleted,
 * REVOKED#<cp_id> sent on its link, a supply in progress ends; it is out
 * of service ("Keys revoked") until it authenticates again. */
int core_command_as(struct core *c, enum core_cmd cmd, const char *cp_id, const char *actor, const char *source_ip,
		    double now, struct core_fxlist *fx, char err[EVC_ERR_LEN]);

/* ---- the weather rule (evcharging(7) RULES, Weather) ---- */
#define CORE_WEATHER_CITIES 64  /* cities remembered; a reading for a 65th new city is refused */
#define CORE_CITY_MAX 63        /* bytes of a city name (UTF-8, printable, no control chars) */
#define CORE_WEATHER_MIN (-100.0) /* temperatures and thresholds, degrees C */
#define CORE_WEATHER_MAX 100.0
#define CORE_WEATHER_STALE 60.0 /* s (monotonic) after which a reading is stale */
struct core_weather_city {
	char city[CORE_CITY_MAX + 1];   /* as first reported */
	int has_temp; double temp;      /* last temperature, if any reading had one */
	char error[MSG_TEXT_MAX + 1];   /* last provider error; "" when the last reading was a temperature */
	double at;                      /* wall clock of the last reading */
	double at_mono;                 /* monotonic clock of the last reading (stale after 60 s) */
	int alert;                      /* alert raised; an error reading keeps it as it was */
};
size_t core_weather_count(const struct core *c);
/* In first-reported order; NULL past the end. Valid until the next event. */
const struct core_weather_city *core_weather_at(const struct core *c, size_t i);
double core_weather_threshold(const struct core *c);
/* Is city's reading older than CORE_WEATHER_STALE s on the core's monotonic clock? */
int core_weather_stale(const struct core *c, const struct core_weather_city *w);
/* Does location name city: case-insensitive, whole word (the characters
 * either side are not letters or digits), with Unicode's letters, digits and
 * case (evcharging(7) RULES, Weather): "MÁLAGA" names "Málaga",
 * "Madridejos" does not name "Madrid". "" never matches. */
int core_location_names_city(const char *location, const char *city);
/* The alerted city holding cp (the first one reported), or NULL. */
const struct core_weather_city *core_weather_holding(const struct core *c, const struct core_cp *cp);
/* A reading from the weather office (actor "weather" or "api:<name>",
 * source_ip may be NULL). has_error: error text, temp ignored, the alert
 * unchanged. Returns 0 with *alert = the city's alert after it, or -1 with
 * err (bad city name, too many cities, temperature not finite or outside
 * -100..100). Effects into fx: weather stops/clears of the CPs whose
 * location names the city, WEATHER_ALERT / WEATHER_CLEAR audit rows (detail
 * names city, temperature, threshold, the CPs), log lines, screen changes,
 * status. */
int core_on_weather(struct core *c, const char *city, int has_error, double temp, const char *error,
		    const char *actor, const char *source_ip, double now, struct core_fxlist *fx,
		    int *alert, char err[EVC_ERR_LEN]);
/* The threshold changed (API): audited WEATHER_THRESHOLD; every city's
 * alert re-evaluated with its last temperature (alerts raised or cleared
 * as a reading would). 0, or -1 with err (not finite, outside -100..100). */
int core_set_weather_threshold(struct core *c, double threshold, const char *actor, const char *source_ip,
			       double now, struct core_fxlist *fx, char err[EVC_ERR_LEN]);

/* ---- views (for the panel, console and network_status) ---- */
size_t core_cp_count(const struct core *c);
/* CPs in id order; i < core_cp_count. Valid until the next event. */
const struct core_cp *core_cp_at(const struct core *c, size_t i);
const struct core_cp *core_cp_find(const struct core *c, const char *id);
/* A Release-1 CP: no credentials, never a key, and Central takes
 * plaintext links: its telemetry may be plaintext. */
int core_cp_release1(const struct core *c, const struct core_cp *cp);
/* Count of CPs in each state: counts[CP_STATE_COUNT]. */
void core_cp_state_counts(const struct core *c, size_t counts[CP_STATE_COUNT]);
/* Build a NETWORK_STATUS_UPDATE of every CP (caller frees with msg_free). */
void core_network_status(const struct core *c, double now, struct msg *out);

/* Parse a console / panel command line: "P MAD-01", "parar MAD-01", "R x",
 * "REANUDAR x", "PT", "PARAR_TODOS", "RT", "REANUDAR_TODOS", "REVOKE x",
 * "Q", "QUIT" (case-insensitive). Returns 0 and sets *cmd (CMD_*, or -1 for quit) and
 * cp_id, or -1 with err. */
int core_parse_command(const char *line, int *cmd, char cp_id[MSG_CP_ID_MAX + 1], char err[EVC_ERR_LEN]);

#endif
