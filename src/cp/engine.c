/* EV_CP_E: the charging point's engine. A TCP server (LINK_SERVER sessions)
 * for its monitor, which keeps one persistent link, and for clients that
 * open a connection per exchange; a Kafka producer for the supply
 * telemetry; keys or stdin lines for the person at the charger. One
 * single-threaded poll() loop; librdkafka queues telemetry while the broker
 * is away (message.timeout.ms 0 = forever), so nothing here ever blocks.
 *
 * Choices where the contract is silent (also in evcharging(7)):
 *  - seq counts every telemetry message of a session: SESSION_STARTED is 1,
 *    the CONSUMOs follow, the closing message has the last number, so
 *    "seq <= last seen" is always a duplicate.
 *  - PARAR during a supply: the engine stops metering and sends nothing more
 *    for that session. Central ends it itself on ACK#PARAR with SUPPLY_ERROR
 *    and the figures of the last CONSUMO; a SUPPLY_END here could overtake
 *    the ACK on the other path and turn a stop into a ticket.
 *  - After a restart the engine asks CHECK_SESSION (through the monitor) as
 *    soon as it knows its CP id. Its meter reading died with the old
 *    process, so it never resumes a supply: if Central still has a session
 *    open it is ended cleanly with AVERIADO (the engine did fail) and zero
 *    figures for the part it lost; Central keeps the highest figures it
 *    already has, so nothing is lost. It carries no seq (the old count
 *    died with the old process), so it is never taken for a duplicate
 *    and no jump of seq is ever needed. NO_SESSION:
 *    nothing to do. (Usually Central already ended the session when the
 *    monitor reported the engine unreachable, and answers NO_SESSION.)
 *  - HEALTH_CHECK#<cp_id> is answered with exactly OK or KO (evcharging(7)
 *    MONITOR AND ENGINE; other monitors compare bytes). Our monitor adds the optional field
 *    CENTRAL_DOWN while Central is unreachable (CENTRAL_UP is understood
 *    too); only a check that carries such a third field gets the optional
 *    answer field with what the engine is doing (IDLE, RESERVED, SUPPLYING,
 *    STOPPED), since only a monitor that sends one can expect it.
 *
 * Security (evcharging(7) SECURITY), with --credential only:
 *  - Every connection passes cpauth's gate (HELLO, CHALLENGE, AUTH) before
 *    any of the frames above is obeyed; failures are ENGINE_AUTH_FAILED
 *    lines and an address that keeps failing is refused for a while.
 *  - The key Central gives the monitor arrives as SET_KEY and lives in
 *    memory only. Without it the engine does not supply. Each telemetry
 *    message is sealed when it is made, with the key in force then:
 *    librdkafka queues the sealed bytes while the broker is away, so a
 *    message made before a revocation carries the revoked key and Central
 *    rejects it, as it must (nobody can tell it from a forged one). The
 *    engine never holds plaintext for later.
 * Without --credential the engine is the Release-1 engine, and says so.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "evc/bus.h"
#include "evc/clock.h"
#include "evc/cred.h"
#include "evc/crypto.h"
#include "evc/fernet.h"
#include "evc/log.h"
#include "evc/msg.h"
#include "evc/net.h"
#include "evc/notify.h"
#include "evc/progopt.h"
#include "evc/version.h"
#include "evc/xalloc.h"
#include "src/cp/cpauth.h"
#include "src/cp/cpio.h"
#include "ui/cp_screen.h"

#define PROG "EV_CP_E"
#define R1_NOTICE "Release-1 mode: no credential, plaintext telemetry, no engine authentication"
#define MAX_CLIENTS 16
#define MONITOR_SILENCE 5.0   /* s without a frame during a supply -> CONEXION_PERDIDA */
#define CLIENT_SILENCE 5.0    /* s a client may stay silent before it is closed */
#define CONSUMO_PERIOD 1.0
#define CHECK_RETRY 5.0       /* s between CHECK_SESSION attempts */

struct client {
	struct cpio_link l;
	int used;
	struct cpauth_conn auth;
	int closing;                 /* refused: EOT once the answer is delivered */
	char addr[CPAUTH_ADDR_LEN];  /* the peer's IP, for the failure limiter */
};

struct eng {
	int listen_fd;
	int port;
	const char *listen_addr;  /* --listen, default loopback only */
	const char *cred_path;    /* --credential, NULL: Release-1 mode */
	int secured;              /* a credential was loaded */
	struct cred cred;
	struct cpauth_limiter lim;
	struct fernet_key key;    /* from SET_KEY; memory only */
	int has_key;
	double accept_paused_until; /* out of fds: stop accepting for a moment */
	struct client cl[MAX_CLIENTS];
	int cur;                 /* client whose frame is being handled */
	int monitor;             /* client that sent the last HEALTH_CHECK, -1 none */

	char cp_id[MSG_CP_ID_MAX + 1];
	int ko, stopped;
	int central_up;          /* as the monitor says */
	double mon_last;         /* last frame from any client (monotonic), 0 never */
	int mon_alive;           /* as last announced */

	int authorised;
	char driver[MSG_ID_MAX + 1], session[MSG_ID_MAX + 1];
	/* The last sessions supplied and ended here: Central may offer one
	 * again after a link loss before its SUPPLY_END reached it on Kafka
	 * (evcharging(7) RULES, Billing integrity); supplying it twice would
	 * meter it twice. */
#define ENG_ENDED 8
	char ended[ENG_ENDED][MSG_ID_MAX + 1];
	unsigned nended;
	double price;
	double autoplug_at;      /* 0 none */
	double auth_at;          /* when the authorisation came (monotonic) */
	double auth_timeout;     /* s an unplugged authorisation lasts, 0 forever */

	int supplying;
	uint64_t seq;
	double kw, kwh, importe;
	double last_meter;       /* when kwh was last brought up to date */
	double next_consumo;
	double unplug_at;        /* --auto-plug: 0 none */

	double power;
	double autoplug_s, autoplug_d; /* -1 off / -1 random */

	rd_kafka_t *kafka;
	const char *brokers;
	int kafka_up;            /* -1 unknown */
	char topic_tel[BUS_NAME_MAX], topic_req[BUS_NAME_MAX];

	int check_done, check_pending;
	double check_next;

	struct cp_screen *scr;
	int dirty;
	int quit;
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [kafka_host:port] <listen_port> [--power KW] [--auto-plug SECONDS[:DURATION]]\n"
		"              [--auth-timeout S] [--listen ADDR] [--credential FILE] [--headless]\n"
		"              [--topic-prefix P] [--no-color] [--log-format text|json] [--config FILE]\n"
		"       " PROG " --help | --version\n"
		"  --power KW        nominal charging power, > 0 and <= 1000; default 7.4\n"
		"  --auto-plug S[:D] plug in S seconds after each authorisation, unplug D seconds later\n"
		"                    (random 10-40 s without D)\n"
		"  --auth-timeout S  give up an authorisation not plugged in within S s, 0 never;\n"
		"                    default 120 (Central cancels it then too)\n"
		"  --listen ADDR     address to accept the monitor on (default 127.0.0.1;\n"
		"                    0.0.0.0 or :: for every address)\n"
		"  --credential FILE the CP's credential file (mode 0600, the same as its monitor's):\n"
		"                    the CP id comes from it, every connection must answer the\n"
		"                    challenge, telemetry is encrypted with the key Central sends\n"
		"                    (SET_KEY). Without it: Release-1 mode, plaintext, no challenge\n"
		"  --headless        no screen: event lines on stdout, commands on stdin:\n"
		"                    k (toggle fault), e (plug in), u (unplug), d ID (request a charge\n"
		"                    for driver ID), status, q (quit)\n"
		"  --topic-prefix P  prefix of every Kafka topic (default $EVC_TOPIC_PREFIX or none)\n"
		"  --no-color        monochrome screen (also NO_COLOR=1)\n"
		"  --log-format F    text or json event and log lines (default text)\n"
		"  --config FILE     configuration file (default " CONFIG_DEFAULT_PATH " if present);\n"
		"                    its broker when kafka_host:port is left out\n"
		"  --list-options    print every option, one a line (shell completion)\n"
		"  -V, --version     print the versions of the program and its libraries\n");
}

static void bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bad_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	exit(2);
}

static double rnd(void)
{
	return (double)random() / (double)RAND_MAX;
}

/* ---- telemetry ---- */

/* The envelope of evcharging(7) SECURITY around one Release-1 message:
 * {"cp_id":...,"encrypted":true,"ciphertext":"<Fernet token>"}. Caller
 * frees with free(); NULL with err. */
static char *seal(struct eng *e, const char *json, size_t len, size_t *outlen, char err[EVC_ERR_LEN])
{
	char *token = fernet_encrypt(&e->key, json, len, (uint64_t)clock_wall(), NULL, err);
	if (token == NULL)
		return NULL;
	json_t *o = json_pack("{s:s, s:b, s:s}", "cp_id", e->cp_id, "encrypted", 1, "ciphertext", token);
	free(token);
	char *out = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (out == NULL) {
		evc_seterr(err, "cannot build the encrypted envelope");
		return NULL;
	}
	*outlen = strlen(out);
	return out;
}

/* sealed: a cp_telemetry message, encrypted when the engine is secured. */
static void produce(struct eng *e, struct msg *m, const char *topic, const char *key, int sealed)
{
	char err[EVC_ERR_LEN];
	char berr[EVC_ERR_LEN];
	size_t len = 0;
	if (sealed && e->secured && !e->has_key) {
		cpio_event("ERROR %s not sent: no key from Central yet", msg_type_name(m->type));
		return;
	}
	char *json = msg_encode(m, &len, err);
	if (json == NULL) {
		cpio_event("ERROR cannot encode %s: %s", msg_type_name(m->type), err);
		return;
	}
	if (sealed && e->secured) {
		char serr[EVC_ERR_LEN];
		size_t slen = 0;
		char *env = seal(e, json, len, &slen, serr);
		free(json);
		if (env == NULL) {
			cpio_event("ERROR %s not sent: %s", msg_type_name(m->type), serr);
			return;
		}
		json = env;
		len = slen;
	}
	if (bus_produce(e->kafka, topic, key, json, len, berr) < 0)
		cpio_event("ERROR %s not queued for Kafka: %s", msg_type_name(m->type), berr);
	free(json);
	bus_poll(e->kafka, 0);
}

static void telemetry(struct eng *e, enum msg_type type, const char *component)
{
	struct msg m;
	msg_init(&m, type);
	snprintf(m.cp_id, sizeof m.cp_id, "%s", e->cp_id);
	snprintf(m.user_id, sizeof m.user_id, "%s", e->driver);
	snprintf(m.session_id, sizeof m.session_id, "%s", e->session);
	m.has_session_id = 1;
	m.seq = ++e->seq;
	m.has_seq = 1;
	m.timestamp = clock_wall();
	m.has_timestamp = 1;
	m.kwh = e->kwh;
	m.importe = e->importe;
	m.kw = e->kw;
	m.has_kw = type != MSG_SESSION_STARTED;
	if (component != NULL)
		snprintf(m.component, sizeof m.component, "%s", component);
	produce(e, &m, e->topic_tel, e->cp_id, 1);
	msg_free(&m);
}

/* Bring the meter up to now at the current power. */
static void meter(struct eng *e, double now)
{
	double dt = now - e->last_meter;
	if (dt > 0)
		e->kwh += e->kw * dt / 3600.0;
	e->importe = e->kwh * e->price;
	e->last_meter = now;
}

static void clear_auth(struct eng *e)
{
	e->authorised = 0;
	e->supplying = 0;
	e->autoplug_at = 0;
	e->unplug_at = 0;
	e->driver[0] = e->session[0] = '\0';
	e->kw = e->kwh = e->importe = 0;
	e->dirty = 1;
}

/* End the supply in progress: type is SUPPLY_END, AVERIADO or
 * CONEXION_PERDIDA, or MSG_TYPE_COUNT to send nothing (operator stop). */
static void end_supply(struct eng *e, double now, enum msg_type type, const char *why)
{
	meter(e, now);
	if (type != MSG_TYPE_COUNT)
		telemetry(e, type, type == MSG_CONEXION_PERDIDA ? "MONITOR" : NULL);
	cpio_event("SUPPLY END driver=%s session=%s kwh=%.3f importe=%.2f reason=%s", e->driver, e->session,
		   e->kwh, e->importe, why);
	snprintf(e->ended[e->nended++ % ENG_ENDED], sizeof e->ended[0], "%s", e->session);
	clear_auth(e);
}

static void drop_auth(struct eng *e, const char *why)
{
	cpio_event("AUTH DROPPED driver=%s session=%s reason=%s", e->driver, e->session, why);
	clear_auth(e);
}

static void plug_in(struct eng *e, double now)
{
	if (e->supplying) {
		cpio_event("ERROR already supplying driver %s", e->driver);
		return;
	}
	if (!e->authorised) {
		cpio_event("ERROR cannot plug in: no authorised session (ask Central first: d ID)");
		return;
	}
	if (e->ko) {
		cpio_event("ERROR cannot plug in: the CP is KO");
		return;
	}
	if (e->stopped) {
		cpio_event("ERROR cannot plug in: the CP is out of order (stopped by Central)");
		return;
	}
	e->supplying = 1;
	e->autoplug_at = 0;
	e->seq = 0;
	e->kwh = e->importe = 0;
	e->kw = e->power;
	e->last_meter = now;
	e->next_consumo = now + CONSUMO_PERIOD;
	if (e->autoplug_s >= 0)
		e->unplug_at = now + (e->autoplug_d >= 0 ? e->autoplug_d : 10 + 30 * rnd());
	telemetry(e, MSG_SESSION_STARTED, NULL);
	cpio_event("SUPPLY START driver=%s session=%s price=%.4g", e->driver, e->session, e->price);
	e->dirty = 1;
}

static void unplug(struct eng *e, double now)
{
	if (!e->supplying) {
		cpio_event("ERROR nothing to unplug: no supply in progress");
		return;
	}
	end_supply(e, now, MSG_SUPPLY_END, "unplugged");
}

static void toggle_fault(struct eng *e, double now)
{
	e->ko = !e->ko;
	cpio_event("HEALTH %s", e->ko ? "KO" : "OK");
	if (e->ko && e->supplying)
		end_supply(e, now, MSG_AVERIADO, "fault");
	else if (e->ko && e->authorised)
		drop_auth(e, "fault");
	e->dirty = 1;
}

static void request_charge(struct eng *e, const char *driver)
{
	if (e->cp_id[0] == '\0') {
		cpio_event("ERROR cannot request a charge yet: CP id unknown until the monitor connects");
		return;
	}
	if (!msg_valid_user_id(driver)) {
		cpio_event("ERROR invalid driver id '%.70s' (1-64 of A-Z a-z 0-9 _ . @ -)", driver);
		return;
	}
	struct msg m;
	msg_init(&m, MSG_REQUEST_CHARGE);
	snprintf(m.user_id, sizeof m.user_id, "%s", driver);
	snprintf(m.cp_id, sizeof m.cp_id, "%s", e->cp_id);
	m.timestamp = clock_wall();
	m.has_timestamp = 1;
	snprintf(m.origin, sizeof m.origin, "cp");
	m.has_origin = 1;
	snprintf(m.request_id, sizeof m.request_id, "cp-%s-%lld-%04ld", e->cp_id, (long long)(m.timestamp * 1000),
		 random() % 10000);
	m.has_request_id = 1;
	produce(e, &m, e->topic_req, driver, 0);
	cpio_event("REQUEST driver=%s cp=%s request=%s", driver, e->cp_id, m.request_id);
	msg_free(&m);
}

/* ---- frames from the monitor (or a per-exchange client) ---- */

static void reply(struct eng *e, double now, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply(struct eng *e, double now, const char *fmt, ...)
{
	char data[LINK_DATA_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(data, sizeof data, fmt, ap);
	va_end(ap);
	if (e->cur < 0 || cpio_link_sendf(&e->cl[e->cur].l, now, "%s", data) < 0)
		log_warn("cannot answer %s: link not usable", data);
}

static const char *activity(const struct eng *e)
{
	if (e->stopped)
		return "STOPPED";
	if (e->supplying)
		return "SUPPLYING";
	if (e->authorised)
		return "RESERVED";
	return "IDLE";
}

static void set_central(struct eng *e, int up)
{
	if (up == e->central_up)
		return;
	e->central_up = up;
	cpio_event("LINK central %s", up ? "up" : "down");
	/* Central cannot hear about a new supply: an authorisation that has
	 * not started is given up (Central cancels it on its side). */
	if (!up && e->authorised && !e->supplying)
		drop_auth(e, "central unreachable");
	e->dirty = 1;
}

static void on_health_check(struct eng *e, double now, char **f, int n)
{
	if (n < 2 || !msg_valid_cp_id(f[1])) {
		reply(e, now, "ERROR#HEALTH_CHECK needs a valid cp_id");
		return;
	}
	if (e->cp_id[0] == '\0') {
		snprintf(e->cp_id, sizeof e->cp_id, "%s", f[1]);
		cpio_event("CP id=%s", e->cp_id);
		e->dirty = 1;
	} else if (strcmp(e->cp_id, f[1]) != 0) {
		reply(e, now, "ERROR#this engine serves CP %s, not %s", e->cp_id, f[1]);
		return;
	}
	e->monitor = e->cur;
	if (n >= 3 && strcmp(f[2], "CENTRAL_DOWN") == 0)
		set_central(e, 0);
	else if (n < 3 || strcmp(f[2], "CENTRAL_UP") == 0)
		set_central(e, 1);
	if (n >= 3)
		reply(e, now, "%s#%s", e->ko ? "KO" : "OK", activity(e));
	else
		reply(e, now, "%s", e->ko ? "KO" : "OK");

	/* After a (re)start: does Central think a session is open here? The
	 * answer may need an AVERIADO sent, which a secured engine can only
	 * send once it has the key. */
	if (!e->check_done && !e->check_pending && e->central_up && now >= e->check_next &&
	    (!e->secured || e->has_key)) {
		e->check_pending = 1;
		e->check_next = now + CHECK_RETRY;
		reply(e, now, "CHECK_SESSION#%s", e->cp_id);
		cpio_event("CHECK_SESSION asked");
	}
}

static void on_authorise(struct eng *e, double now, char **f, int n)
{
	double price = 0;
	const char *why = NULL;
	char buf[160];
	if (n < 4 || !msg_valid_user_id(f[1]) || !msg_valid_session_id(f[2]) || cpio_parse_double(f[3], &price) < 0 ||
	    !(price > 0 && price <= 100))
		why = "bad request: expected driver, session and a price > 0 and <= 100";
	else if (e->secured && !e->has_key)
		why = "no key from Central yet"; /* its telemetry could not be sent */
	else if (e->ko)
		why = "KO: the CP has a fault";
	else if (e->stopped)
		why = "stopped: the CP is out of order";
	else if (e->supplying && strcmp(e->session, f[2]) != 0) {
		snprintf(buf, sizeof buf, "busy: supplying driver %s", e->driver);
		why = buf;
	} else if (!e->supplying) {
		for (unsigned i = 0; i < ENG_ENDED && i < e->nended; i++)
			if (strcmp(e->ended[i], f[2]) == 0)
				why = "ended: this session was supplied and has ended here";
	}
	if (why != NULL) {
		reply(e, now, "NACK#AUTORIZAR_SUMINISTRO#%s", why);
		cpio_event("AUTH REFUSED reason=%s", why);
		return;
	}
	/* Only Central authorises: this frame proves it is reachable again,
	 * even if the monitor's next HEALTH_CHECK has not said so yet. */
	set_central(e, 1);
	/* the same session again (offered again after a link loss): already
	 * authorised, or already supplying it */
	if ((e->authorised || e->supplying) && strcmp(e->session, f[2]) == 0) {
		reply(e, now, "ACK#AUTORIZAR_SUMINISTRO");
		return;
	}
	/* Central cancels an unplugged authorisation (timeout, DRIVER_QUIT,
	 * lost link) without telling the engine; a new one for another
	 * session is how the engine learns the old one is over. */
	if (e->authorised)
		drop_auth(e, "superseded by Central");
	e->authorised = 1;
	e->auth_at = now;
	snprintf(e->driver, sizeof e->driver, "%s", f[1]);
	snprintf(e->session, sizeof e->session, "%s", f[2]);
	e->price = price;
	e->kw = e->kwh = e->importe = 0;
	if (e->autoplug_s >= 0)
		e->autoplug_at = now + e->autoplug_s;
	reply(e, now, "ACK#AUTORIZAR_SUMINISTRO");
	cpio_event("AUTH driver=%s session=%s price=%.4g", e->driver, e->session, e->price);
	e->dirty = 1;
}

static void on_session_answer(struct eng *e, double now, char **f, int n)
{
	if (!e->check_pending && e->check_done)
		return; /* a late duplicate */
	e->check_pending = 0;
	e->check_done = 1;
	if (strcmp(f[0], "NO_SESSION") == 0) {
		cpio_event("CHECK_SESSION none");
		return;
	}
	if (n < 4) {
		cpio_event("ERROR malformed SESSION answer");
		return;
	}
	if ((e->authorised || e->supplying) && strcmp(e->session, f[3]) == 0) {
		cpio_event("CHECK_SESSION session=%s is the current one", f[3]);
		return;
	}
	/* The old process's meter is gone: end Central's session cleanly. */
	struct msg m;
	msg_init(&m, MSG_AVERIADO);
	snprintf(m.cp_id, sizeof m.cp_id, "%s", e->cp_id);
	snprintf(m.user_id, sizeof m.user_id, "%s", f[2]);
	snprintf(m.session_id, sizeof m.session_id, "%s", f[3]);
	m.has_session_id = 1;
	/* No seq: the old process's count died with it, and a closing
	 * message ends a session once whatever its number. */
	m.has_seq = 0;
	m.timestamp = clock_wall();
	m.has_timestamp = 1;
	if (msg_valid_user_id(f[2]) && msg_valid_session_id(f[3])) {
		produce(e, &m, e->topic_tel, e->cp_id, 1);
		cpio_event("CHECK_SESSION driver=%s session=%s ended (engine restarted; meter lost)", f[2], f[3]);
	} else {
		cpio_event("ERROR SESSION answer with invalid ids");
	}
	msg_free(&m);
}

/* A connection that failed the gate: the answer, then EOT and close
 * (client_close once the session is over), and the failure counted. */
static void auth_failed(struct eng *e, int i, double now, const char *answer, const char *why)
{
	struct client *c = &e->cl[i];
	if (answer != NULL && cpio_link_sendf(&c->l, now, "%s", answer) < 0)
		log_debug("cannot answer %s: link not usable", c->l.peer);
	link_session_finish(&c->l.s);
	c->closing = 1;
	cpauth_conn_wipe(&c->auth);
	cpio_event("ENGINE_AUTH_FAILED peer=%s reason=%s", c->l.peer, why);
	if (cpauth_failed(&e->lim, c->addr, now))
		cpio_event("ENGINE_AUTH_BLOCKED addr=%s seconds=%.0f reason=%d failures within %.0f s", c->addr,
			   CPAUTH_BLOCK, CPAUTH_FAIL_MAX, CPAUTH_FAIL_WINDOW);
}

/* The frames before AUTH_OK. Returns 1 if the frame was the gate's. */
static int gate(struct eng *e, double now, char **f, int n)
{
	struct client *c = &e->cl[e->cur];
	char answer[LINK_DATA_MAX + 1], why[EVC_ERR_LEN];
	switch (cpauth_frame(&c->auth, &e->cred, f, n, answer, why)) {
	case CPAUTH_PASS:
		return 0;
	case CPAUTH_ANSWER:
		reply(e, now, "%s", answer);
		log_debug("client %s: %.32s before authentication answered %s", c->l.peer, n >= 1 ? f[0] : "?",
			  answer);
		return 1;
	case CPAUTH_OK:
		reply(e, now, "%s", answer);
		cpio_event("ENGINE_AUTH_OK peer=%s", c->l.peer);
		return 1;
	case CPAUTH_FAIL:
		auth_failed(e, e->cur, now, answer, why);
		return 1;
	}
	return 1;
}

static void on_set_key(struct eng *e, double now, char **f, int n)
{
	if (!e->secured) {
		reply(e, now, "NACK#SET_KEY#Release-1 mode: this engine has no credential");
		cpio_event("KEY refused reason=Release-1 mode (no credential)");
		return;
	}
	struct fernet_key k;
	if (n < 2 || fernet_key_parse(f[1], &k) < 0) {
		reply(e, now, "NACK#SET_KEY#bad key");
		cpio_event("KEY refused reason=bad key");
		return;
	}
	const char *what = !e->has_key ? "set" : crypto_ct_equal(&k, &e->key, sizeof k) ? "unchanged" : "replaced";
	fernet_key_wipe(&e->key);
	e->key = k; /* in force for the next message made, at once */
	fernet_key_wipe(&k);
	e->has_key = 1;
	reply(e, now, "ACK#SET_KEY");
	cpio_event("KEY %s", what);
	e->dirty = 1;
}

static void on_frame(void *arg, const char *data, size_t len)
{
	struct eng *e = arg;
	double now = clock_mono();
	char buf[LINK_DATA_MAX + 1];
	char *f[LINK_FIELDS_MAX];
	if (e->cur < 0 || e->cl[e->cur].closing)
		return; /* refused already: nothing it says counts */
	memcpy(buf, data, len);
	buf[len] = '\0';
	int n = link_split(buf, f, LINK_FIELDS_MAX);
	if (gate(e, now, f, n)) {
		crypto_wipe(buf, sizeof buf);
		return;
	}
	e->mon_last = now;
	if (n < 1) {
		reply(e, now, "ERROR#too many fields");
		return;
	}
	const char *op = f[0];
	if (strcmp(op, "SET_KEY") == 0) {
		on_set_key(e, now, f, n);
		crypto_wipe(buf, sizeof buf);
	} else if (strcmp(op, "HEALTH_CHECK") == 0) {
		on_health_check(e, now, f, n);
	} else if (strcmp(op, "AUTORIZAR_SUMINISTRO") == 0) {
		on_authorise(e, now, f, n);
	} else if (strcmp(op, "PARAR") == 0) {
		/* An optional second field says why (our monitor sends
		 * PARAR#keys revoked itself); bare PARAR is Central's. */
		char why[96];
		if (n >= 2)
			snprintf(why, sizeof why, "stopped: %.80s", f[1]);
		else
			snprintf(why, sizeof why, "stopped by central");
		if (e->supplying)
			end_supply(e, now, MSG_TYPE_COUNT, why);
		else if (e->authorised)
			drop_auth(e, why);
		if (!e->stopped && n >= 2)
			cpio_event("STOPPED (Out of Order) reason=%.80s", f[1]);
		else if (!e->stopped)
			cpio_event("STOPPED (Out of Order)");
		e->stopped = 1;
		e->dirty = 1;
		reply(e, now, "ACK#PARAR");
	} else if (strcmp(op, "FIN_SUMINISTRO") == 0) {
		/* Central already ended this session (evcharging(7) RULES: no
		 * telemetry for --supply-timeout, keys revoked): stop metering
		 * it and say nothing more about it. The CP stays in service. */
		if ((e->supplying || e->authorised) && (n < 2 || strcmp(f[1], e->session) == 0)) {
			if (e->supplying)
				end_supply(e, now, MSG_TYPE_COUNT, "ended by central");
			else
				drop_auth(e, "ended by central");
			e->dirty = 1;
			reply(e, now, "ACK#FIN_SUMINISTRO");
		} else {
			reply(e, now, "NACK#FIN_SUMINISTRO#no such supply");
		}
	} else if (strcmp(op, "REANUDAR") == 0) {
		if (e->stopped)
			cpio_event("RESUMED");
		e->stopped = 0;
		e->dirty = 1;
		reply(e, now, "ACK#REANUDAR");
	} else if (strcmp(op, "SESSION") == 0 || strcmp(op, "NO_SESSION") == 0) {
		on_session_answer(e, now, f, n);
	} else if (strcmp(op, "ERROR") == 0) {
		cpio_event("ERROR from monitor: %s", n >= 2 ? data + 6 : "(no reason)");
		if (e->check_pending) /* e.g. central unreachable: ask again later */
			e->check_pending = 0;
	} else {
		reply(e, now, "ERROR#unknown opcode %.40s", op);
		cpio_event("ERROR unknown opcode: %.60s", op);
	}
}

/* ---- clients ---- */

/* eot: the close is our decision on a link that still works. */
static void client_close(struct eng *e, int i, const char *why, int eot)
{
	struct client *c = &e->cl[i];
	log_debug("client %s closed: %s", c->l.peer, why);
	/* Whether the monitor is gone is decided by its silence (timers), not
	 * by one connection closing: a per-exchange client closes after
	 * every answer. */
	if (i == e->monitor)
		e->monitor = -1;
	cpio_link_close(&c->l, eot && cpio_link_open(&c->l));
	cpauth_conn_wipe(&c->auth);
	c->used = 0;
	c->closing = 0;
}

static void accept_clients(struct eng *e, double now)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(e->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* The pending connection stays readable: polling it
				 * again at once would spin. Pause instead (tmux, httpd). */
				e->accept_paused_until = now + 1.0;
				log_warn("accept: %s; pausing for 1 s", strerror(errno));
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				log_warn("accept: %s", strerror(errno));
			}
			return;
		}
		char ip[INET6_ADDRSTRLEN] = "?", peer[64] = "?";
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
			snprintf(peer, sizeof peer, "%s:%d", ip, ntohs(a->sin_port));
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
			snprintf(peer, sizeof peer, "[%s]:%d", ip, ntohs(a->sin6_port));
		}
		unsigned long refused = 0;
		int log_it = 0;
		if (e->secured && cpauth_blocked(&e->lim, ip, now, &refused, &log_it)) {
			uint8_t nack = LINK_NACK;
			ssize_t w = send(fd, &nack, 1, MSG_NOSIGNAL);
			(void)w;
			close(fd);
			if (log_it)
				cpio_event("ENGINE_AUTH_FAILED peer=%s reason=address blocked after repeated failures "
					   "(%lu refused so far)",
					   peer, refused);
			continue;
		}
		int slot = -1;
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (!e->cl[i].used) {
				slot = i;
				break;
			}
		if (slot < 0) {
			/* Full: silent clients must not lock the monitor out, so
			 * the longest-idle client other than the monitor makes room,
			 * one that has not authenticated first. */
			int victim = -1;
			for (int i = 0; i < MAX_CLIENTS; i++) {
				if (!e->cl[i].used || i == e->monitor)
					continue;
				int authed = e->cl[i].auth.state == CPAUTH_DONE;
				int vauthed = victim >= 0 && e->cl[victim].auth.state == CPAUTH_DONE;
				if (victim < 0 || (vauthed && !authed) ||
				    (authed == vauthed && e->cl[i].l.last_rx < e->cl[victim].l.last_rx))
					victim = i;
			}
			if (victim >= 0) {
				log_warn("%d clients already: closing the longest idle, %s, for %s", MAX_CLIENTS,
					 e->cl[victim].l.peer, peer);
				client_close(e, victim, "evicted for a newcomer (client table full)", 1);
				slot = victim;
			}
		}
		if (slot < 0) {
			/* Refuse at the protocol level: NACK to the coming ENQ. */
			uint8_t nack = LINK_NACK;
			ssize_t w = send(fd, &nack, 1, MSG_NOSIGNAL);
			(void)w;
			close(fd);
			log_warn("refused %s: %d clients already", peer, MAX_CLIENTS);
			continue;
		}
		cpio_link_accept(&e->cl[slot].l, fd, peer, now);
		e->cl[slot].used = 1;
		e->cl[slot].closing = 0;
		snprintf(e->cl[slot].addr, sizeof e->cl[slot].addr, "%s", ip);
		cpauth_conn_init(&e->cl[slot].auth, now, !e->secured);
		log_debug("client %s connected", peer);
	}
}

/* ---- timers ---- */

static void timers(struct eng *e, double now)
{
	char err[EVC_ERR_LEN];
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &e->cl[i];
		if (c->used && !c->closing && cpauth_expired(&c->auth, now))
			auth_failed(e, i, now, cpio_link_open(&c->l) ? CPAUTH_NOT_AUTHENTICATED : NULL,
				    "not authenticated within 5 s");
		if (c->used && cpio_link_pump(&c->l, now, err) < 0)
			client_close(e, i, err, 0);
		else if (c->used && now - c->l.last_rx > CLIENT_SILENCE)
			client_close(e, i, "silent for more than 5 s", 1);
	}

	int alive = e->mon_last > 0 && now - e->mon_last <= MONITOR_SILENCE;
	if (alive != e->mon_alive) {
		e->mon_alive = alive;
		cpio_event("LINK monitor %s", alive ? "up" : "silent");
		e->dirty = 1;
		if (!alive)
			set_central(e, 0); /* nobody can tell Central anything now */
	}
	if (e->supplying && !alive)
		end_supply(e, now, MSG_CONEXION_PERDIDA, "monitor lost");

	if (e->authorised && !e->supplying && e->auth_timeout > 0 && now - e->auth_at >= e->auth_timeout) {
		char why[64];
		snprintf(why, sizeof why, "not plugged in within %g s", e->auth_timeout);
		drop_auth(e, why);
	}
	if (e->authorised && !e->supplying && e->autoplug_at > 0 && now >= e->autoplug_at)
		plug_in(e, now);
	if (e->supplying && e->unplug_at > 0 && now >= e->unplug_at)
		unplug(e, now);
	if (e->supplying && now >= e->next_consumo) {
		meter(e, now);
		/* A car's draw wanders a little around the nominal power. */
		e->kw = e->power * (0.97 + 0.06 * rnd());
		e->next_consumo += CONSUMO_PERIOD;
		if (e->next_consumo < now)
			e->next_consumo = now + CONSUMO_PERIOD;
		telemetry(e, MSG_CONSUMO, NULL);
		cpio_event("CONSUMO seq=%llu kw=%.1f kwh=%.3f importe=%.2f", (unsigned long long)e->seq, e->kw,
			   e->kwh, e->importe);
		e->dirty = 1;
	}
	bus_poll(e->kafka, 0);
}

/* ---- commands (stdin lines or keys) ---- */

static void on_command(void *arg, const char *line)
{
	struct eng *e = arg;
	double now = clock_mono();
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0')
		return;
	if (strcmp(line, "k") == 0)
		toggle_fault(e, now);
	else if (strcmp(line, "e") == 0)
		plug_in(e, now);
	else if (strcmp(line, "u") == 0)
		unplug(e, now);
	else if (line[0] == 'd' && (line[1] == ' ' || line[1] == '\t')) {
		const char *id = line + 2;
		while (*id == ' ' || *id == '\t')
			id++;
		char drv[MSG_ID_MAX + 2];
		snprintf(drv, sizeof drv, "%s", id);
		size_t l = strlen(drv);
		while (l > 0 && (drv[l - 1] == ' ' || drv[l - 1] == '\t'))
			drv[--l] = '\0';
		request_charge(e, drv);
	} else if (strcmp(line, "d") == 0)
		cpio_event("ERROR usage: d DRIVER_ID");
	else if (strcmp(line, "q") == 0 || strcmp(line, "quit") == 0)
		e->quit = 1;
	else if (strcmp(line, "status") == 0 || strcmp(line, "s") == 0)
		cpio_event("STATUS cp=%s health=%s %s activity=%s driver=%s session=%s kwh=%.3f importe=%.2f "
			   "monitor=%s central=%s kafka=%s mode=%s key=%s",
			   e->cp_id[0] ? e->cp_id : "?", e->ko ? "KO" : "OK", e->stopped ? "stopped" : "active",
			   activity(e), e->driver[0] ? e->driver : "-", e->session[0] ? e->session : "-", e->kwh,
			   e->importe, e->mon_alive ? "up" : "down", e->central_up ? "up" : "down",
			   e->kafka_up == 1 ? "up" : e->kafka_up == 0 ? "down" : "unknown",
			   e->secured ? "secured" : "release-1", !e->secured ? "-" : e->has_key ? "set" : "none");
	else
		cpio_event("ERROR unknown command '%.40s' (commands: k, e, u, d ID, status, q)", line);
	e->dirty = 1;
}

static void on_line(void *arg, char *line)
{
	on_command(arg, line);
}

static void on_kafka_state(void *arg, int up, const char *reason)
{
	struct eng *e = arg;
	static char last_reason[256];
	e->kafka_up = up;
	if (up)
		cpio_event("LINK kafka up");
	else
		cpio_event("LINK kafka down reason=%s", reason ? reason : "?");
	/* A broker address that is wrong (an unknown host) is a diagnostic
	 * too, once per reason, not only an event line on stdout. */
	if (!up && reason != NULL && strcmp(reason, last_reason) != 0) {
		log_warn("kafka: %s unreachable: %s", e->brokers, reason);
		snprintf(last_reason, sizeof last_reason, "%s", reason);
	} else if (up) {
		last_reason[0] = '\0';
	}
	e->dirty = 1;
}

static void draw(struct eng *e)
{
	if (e->scr == NULL || !e->dirty)
		return;
	e->dirty = 0;
	char listen[320];
	if (e->secured)
		snprintf(listen, sizeof listen, "%s port %d   key %s", e->listen_addr, e->port,
			 e->has_key ? "set" : "none (no supply)");
	else
		snprintf(listen, sizeof listen, "%s port %d   R1 plaintext", e->listen_addr, e->port);
	struct cp_engine_view v = {
		.cp_id = e->cp_id,
		.ko = e->ko,
		.stopped = e->stopped,
		.authorised = e->authorised,
		.supplying = e->supplying,
		.driver = e->driver,
		.session = e->session,
		.price = e->price,
		.kw = e->supplying ? e->kw : 0,
		.kwh = e->kwh,
		.importe = e->importe,
		.power = e->power,
		.kafka_up = e->kafka_up,
		.monitor_up = e->mon_alive,
		.central_up = e->central_up,
		.listen = listen,
	};
	cp_screen_draw_engine(e->scr, &v);
}

static void screen_event(void *arg, const char *line)
{
	struct eng *e = arg;
	cp_screen_event(e->scr, line);
	e->dirty = 1;
}

static void screen_log(enum log_level lvl, const char *line, void *arg)
{
	char buf[1100];
	snprintf(buf, sizeof buf, "%s: %s", log_level_name(lvl), line);
	screen_event(arg, buf);
}

/* ---- arguments ---- */

enum { OPT_NO_COLOR = 256, OPT_LOG_FORMAT, OPT_CONFIG, OPT_LIST };

static void parse_args(struct eng *e, int argc, char **argv, int *headless, char *brokers, size_t blen,
		       struct config *conf)
{
	static const struct option opts[] = {
		{"power", required_argument, NULL, 'p'},
		{"auto-plug", required_argument, NULL, 'a'},
		{"auth-timeout", required_argument, NULL, 'T'},
		{"headless", no_argument, NULL, 'H'},
		{"topic-prefix", required_argument, NULL, 't'},
		{"listen", required_argument, NULL, 'L'},
		{"credential", required_argument, NULL, 'K'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"no-color", no_argument, NULL, OPT_NO_COLOR},
		{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"list-options", no_argument, NULL, OPT_LIST},
		{NULL, 0, NULL, 0},
	};
	const char *prefix = NULL;
	const char *log_format = NULL, *config_path = NULL;
	int no_color = 0;
	char err[EVC_ERR_LEN];
	int c;
	/* The monitor runs on the same machine: nothing else needs to reach
	 * the engine, so it is not offered to the network unless asked. */
	e->listen_addr = "127.0.0.1";
	e->power = 7.4;
	e->autoplug_s = e->autoplug_d = -1;
	e->auth_timeout = 120;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (cpio_parse_double(optarg, &e->power) < 0 || !(e->power > 0 && e->power <= 1000))
				bad_usage("invalid --power '%s' (kW, > 0 and <= 1000)", optarg);
			break;
		case 'a': {
			char tmp[64];
			snprintf(tmp, sizeof tmp, "%s", optarg);
			char *colon = strchr(tmp, ':');
			if (colon != NULL)
				*colon = '\0';
			if (cpio_parse_double(tmp, &e->autoplug_s) < 0 || e->autoplug_s < 0 || e->autoplug_s > 86400 ||
			    (colon != NULL && (cpio_parse_double(colon + 1, &e->autoplug_d) < 0 ||
					       e->autoplug_d < 0 || e->autoplug_d > 86400)))
				bad_usage("invalid --auto-plug '%s' (SECONDS[:DURATION], each 0-86400)", optarg);
			break;
		}
		case 'T':
			if (cpio_parse_double(optarg, &e->auth_timeout) < 0 || e->auth_timeout < 0 ||
			    e->auth_timeout > 86400)
				bad_usage("invalid --auth-timeout '%s' (seconds, 0-86400; 0 = never)", optarg);
			break;
		case 'H': *headless = 1; break;
		case 't': prefix = optarg; break;
		case 'L':
			if (optarg[0] == '\0' || strlen(optarg) > 255)
				bad_usage("invalid --listen '%.300s' (an address or host name)", optarg);
			e->listen_addr = optarg;
			break;
		case 'K':
			if (optarg[0] == '\0')
				bad_usage("--credential needs a file name");
			e->cred_path = optarg;
			break;
		case 'h': usage(stdout); exit(0);
		case 'V': version_print(stdout, PROG); exit(0);
		case OPT_NO_COLOR: no_color = 1; break;
		case OPT_LOG_FORMAT: log_format = optarg; break;
		case OPT_CONFIG: config_path = optarg; break;
		case OPT_LIST: progopt_list(stdout, opts, NULL); exit(0);
		case ':': bad_usage("option %s needs a value", argv[optind - 1]); break;
		default: bad_usage("unknown option '%s'", argv[optind - 1]); break;
		}
	}
	char cerr[EVC_ERR_LEN];
	if (progopt_setup(PROG, config_path, log_format, no_color, conf, cerr) == -1) {
		fprintf(stderr, PROG ": %s\n", cerr);
		exit(2);
	}
	int npos = argc - optind;
	const char *kafka = npos == 2 ? argv[optind] : conf->broker;
	if (npos < 1 || npos > 2 || kafka == NULL) {
		fprintf(stderr, PROG ": expected 2 arguments (kafka address, listen port), got %d\n", npos);
		usage(stderr);
		exit(2);
	}
	char host[256];
	int kport;
	if (npos == 2 && net_parse_hostport(kafka, host, sizeof host, &kport, err) < 0)
		bad_usage("kafka address: %s", err);
	snprintf(brokers, blen, "%s", kafka);
	if (net_parse_port(argv[optind + npos - 1], 0, &e->port, err) < 0)
		bad_usage("listen port: %s", err);
	const char *p = config_topic_prefix(conf, prefix);
	bus_name(e->topic_tel, sizeof e->topic_tel, p, MSG_TOPIC_CP_TELEMETRY);
	bus_name(e->topic_req, sizeof e->topic_req, p, MSG_TOPIC_DRIVER_REQUESTS);
}

int main(int argc, char **argv)
{
	struct eng *e = xcalloc(1, sizeof *e);
	int headless = 0, rc = 0;
	char brokers[512];
	char err[EVC_ERR_LEN];
	struct config conf;
	log_set_progname(PROG);
	parse_args(e, argc, argv, &headless, brokers, sizeof brokers, &conf);
	e->brokers = brokers;
		if (e->cred_path != NULL) {
		if (cred_load(e->cred_path, &e->cred, err) < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			config_free(&conf);
			free(e);
			return 1;
		}
		e->secured = 1;
		snprintf(e->cp_id, sizeof e->cp_id, "%s", e->cred.cp_id);
	}
	cpauth_limiter_init(&e->lim);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	e->monitor = -1;
	e->cur = -1;
	e->kafka_up = -1;
	e->central_up = 0;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	e->listen_fd = net_listen(e->listen_addr, e->port, 16, err);
	if (e->listen_fd < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		config_free(&conf);
		cred_wipe(&e->cred);
		free(e);
		return 1;
	}
	struct bus_opts bo = {.brokers = brokers, .on_state = on_kafka_state, .state_arg = e, .message_timeout_ms = 0};
	e->kafka = bus_producer_new(&bo, err);
	if (e->kafka == NULL) {
		fprintf(stderr, PROG ": cannot set up Kafka for %s: %s\n", brokers, err);
		close(e->listen_fd);
		config_free(&conf);
		cred_wipe(&e->cred);
		free(e);
		return 1;
	}

	if (!headless && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
		char title[128];
		if (e->secured)
			snprintf(title, sizeof title, PROG " %s  secured", e->cp_id);
		else
			snprintf(title, sizeof title, PROG "  R1 plaintext");
		e->scr = cp_screen_open(CP_SCREEN_ENGINE, title, err);
		if (e->scr == NULL) {
			fprintf(stderr, PROG ": %s (use --headless)\n", err);
			rc = 1;
			goto out;
		}
		cpio_set_event_sink(screen_event, e);
		log_set_sink(screen_log, e);
	}
	e->dirty = 1;
	cpio_event("START port=%d kafka=%s power=%.1f telemetry=%s listen=%s", e->port, brokers, e->power, e->topic_tel,
		   e->listen_addr);
	if (e->secured) {
		cpio_event("CP id=%s credential=%s", e->cp_id, e->cred_path);
		cpio_event("Secured mode: engine challenge on every connection, encrypted telemetry, "
			   "no supply until Central's key arrives (SET_KEY)");
	} else {
		cpio_event(R1_NOTICE);
	}
	notify_state("READY=1");

	struct cpio_lines lines;
	memset(&lines, 0, sizeof lines);
	int stdin_open = 1;
	if (e->scr == NULL)
		net_set_nonblock(STDIN_FILENO, 1);

	while (!e->quit && !got_signal) {
		double now = clock_mono();
		timers(e, now);
		draw(e);

		struct pollfd pf[MAX_CLIENTS + 2];
		int idx[MAX_CLIENTS];
		int npf = 0, i_in = -1;
		/* A negative fd makes poll() skip the entry. */
		pf[npf++] = (struct pollfd){.fd = now < e->accept_paused_until ? -1 : e->listen_fd, .events = POLLIN};
		if (stdin_open) {
			pf[npf] = (struct pollfd){.fd = e->scr ? cp_screen_fd(e->scr) : STDIN_FILENO, .events = POLLIN};
			i_in = npf++;
		}
		for (int i = 0; i < MAX_CLIENTS; i++) {
			idx[i] = -1;
			if (e->cl[i].used) {
				pf[npf] = (struct pollfd){.fd = e->cl[i].l.fd, .events = cpio_link_events(&e->cl[i].l)};
				idx[i] = npf++;
			}
		}
		int prc = poll(pf, (nfds_t)npf, 100);
		if (prc < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			rc = 1;
			break;
		}
		now = clock_mono();
		if (pf[0].revents & POLLIN)
			accept_clients(e, now);
		for (int i = 0; i < MAX_CLIENTS; i++) {
			if (idx[i] < 0 || !pf[idx[i]].revents)
				continue;
			char cerr[EVC_ERR_LEN];
			e->cur = i;
			int r = cpio_link_service(&e->cl[i].l, pf[idx[i]].revents, now, on_frame, e, cerr);
			e->cur = -1;
			if (r < 0)
				client_close(e, i, cerr, 0);
		}
		if (i_in >= 0 && pf[i_in].revents) {
			if (e->scr)
				cp_screen_input(e->scr, on_command, e);
			else if (cpio_lines_read(&lines, STDIN_FILENO, on_line, e) < 0)
				stdin_open = 0; /* keep serving the monitor without a keyboard */
		}
	}

	/* A clean shutdown ends a supply the way unplugging would. */
	if (e->supplying)
		end_supply(e, clock_mono(), MSG_SUPPLY_END, "engine shut down");
	cpio_event("QUIT%s", got_signal ? " (signal)" : "");
	notify_state("STOPPING=1");
out:
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (e->cl[i].used)
			cpio_link_close(&e->cl[i].l, 1);
	close(e->listen_fd);
	if (e->scr) {
		log_set_sink(NULL, NULL);
		cpio_set_event_sink(NULL, NULL);
		cp_screen_close(e->scr);
	}
	bus_producer_close(e->kafka, 5000);
	config_free(&conf);
	fernet_key_wipe(&e->key);
	cred_wipe(&e->cred);
	free(e);
	return rc;
}
