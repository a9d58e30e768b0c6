/* EV_CP_M: the charging point's monitor. One single-threaded poll() loop
 * over two links (evcharging(7) THE LINK PROTOCOL, MONITOR AND CENTRAL, MONITOR AND ENGINE), both as LINK_CLIENT sessions:
 *   - to Central: ENQ, REGISTER, HEARTBEAT every second, FAULT/RECOVER once
 *     per health transition (and again after every reconnect), and the
 *     relay of Central's commands to the engine;
 *   - to its engine: HEALTH_CHECK every second, relays, CHECK_SESSION.
 * Both links reconnect forever with exponential backoff and jitter.
 *
 * With --credential (evcharging(7) SECURITY) REGISTER carries the CP's
 * secret, Central answers with the CP's key (KEY), and the engine link
 * starts with the challenge (HELLO, CHALLENGE, AUTH) before anything else;
 * the key goes to the engine as SET_KEY once that link is authenticated
 * and again after every reconnect of either link. Neither the secret nor
 * the key is ever written to an event line, the log or the screen.
 * REVOKED leaves the link up but the keys dead until the operator asks for
 * re-authentication ('a'). A denial that retrying cannot cure
 * (BAD_CREDENTIALS, NOT_REGISTERED) stops the retries until the operator
 * acts ('a' reloads the credential file and tries again).
 * Without --credential the monitor is the Release-1 monitor, and says so. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "evc/bus.h"
#include "evc/clock.h"
#include "evc/cred.h"
#include "evc/crypto.h"
#include "evc/fernet.h"
#include "evc/log.h"
#include "evc/money.h"
#include "evc/msg.h"
#include "evc/net.h"
#include "evc/notify.h"
#include "evc/progopt.h"
#include "evc/version.h"
#include "evc/state.h"
#include "evc/tls.h"
#include "evc/xalloc.h"
#include "src/cp/cpio.h"
#include "src/cp/register.h"
#include "ui/cp_screen.h"

#define PROG "EV_CP_M"
#define HEALTH_PERIOD 1.0      /* s between HEALTH_CHECKs */
#define HEALTH_TIMEOUT 1.5     /* s without an answer -> KO */
#define HEARTBEAT_PERIOD 1.0
#define REGISTER_TIMEOUT 5.0   /* s to wait for REGISTER_RESULT */
#define RELAY_TIMEOUT 3.0      /* s for the engine to answer a relayed command */
#define CENTRAL_BACKOFF_BASE 0.5
#define CENTRAL_BACKOFF_CAP 30.0
#define ENGINE_BACKOFF_BASE 0.5
/* The engine is on the same machine: a short cap finds it soon after it restarts. */
#define ENGINE_BACKOFF_CAP 2.0
#define MAX_RELAYS 32
#define ENGINE_AUTH_TIMEOUT 5.0 /* s from HELLO to AUTH_OK (the engine's own deadline) */
/* RATE_LIMITED: Central refuses the address for 60 s; asking sooner only
 * prolongs it. */
#define RATE_LIMITED_WAIT 60.0
#define R1_NOTICE "Release-1 mode: no credential, plaintext link to Central, no engine authentication " \
		  "(works only with a Central started with --plain-links)"

/* C_KEYWAIT: REGISTER_RESULT came, the KEY that follows it has not. */
enum cen_state { C_DOWN, C_CONNECTING, C_REGISTERING, C_KEYWAIT, C_UP };
/* E_AUTH: HELLO sent, waiting for CHALLENGE and then AUTH_OK. */
enum eng_state { E_DOWN, E_CONNECTING, E_AUTH, E_UP };
enum health { H_UNKNOWN, H_OK, H_KO };
enum reported { R_NONE, R_FAULT, R_RECOVER };

struct relay {
	char cmd[32];
	unsigned gen;     /* Central connection it came from; 0: the monitor's own */
	double deadline;
	int revoke;       /* own PARAR/REANUDAR for a revocation: not Central's stop */
};

struct mon {
	char cp_id[MSG_CP_ID_MAX + 1];
	char location[MSG_LOCATION_MAX + 1];
	char price[32];
	char cen_host[256], eng_host[256];
	int cen_port, eng_port;
	char cen_addr[300], eng_addr[300];

	struct cpio_link cen;
	SSL_CTX *cen_tls;      /* TLS to Central (--tls/--ca), NULL: Release-1 plaintext */
	const char *ca_file;   /* --ca, or the default; NULL: no TLS */
	char ca_buf[4096];     /* the default beside --credential */
	char c_last_err[EVC_ERR_LEN]; /* last connect failure logged: each is said once */
	enum cen_state cstate;
	unsigned cgen;
	double c_next_try, c_backoff, c_reg_deadline, c_last_hb;
	enum reported reported;
	int c_denied;
	char denied[64];     /* reason of the last DENIED */
	int halted;          /* denied for good: no retry until the operator acts */

	const char *cred_path; /* --credential; NULL: Release-1 mode */
	int secured;
	struct cred cred;
	char key[FERNET_KEY_LEN + 1]; /* from Central's KEY; memory only */
	int has_key;
	char reg_result[16];  /* FIRST or RECONNECT, while waiting for KEY */
	int revoked;          /* Central said REVOKED: keys dead until re-authentication */
	int reauth;           /* REGISTER sent again on the live link ('a') */
	double reauth_deadline;
	/* Revoked keys mean no billing, so no supply: the monitor stops the
	 * engine itself (PARAR#keys revoked) and resumes it once new keys
	 * are in, unless Central's own stop is in force. */
	int revoke_stop;      /* the engine must stay stopped for the revocation */
	int resume_pending;   /* REANUDAR owed to the engine once its link is up */

	struct cpio_link eng;
	enum eng_state estate;
	double e_next_try, e_backoff, e_last_hc, hc_sent;
	int hc_pending;
	double e_auth_deadline;
	char e_auth_err[160]; /* last engine authentication failure shown (once each) */
	/* A link cannot be closed inside its own frame callback: the reason
	 * waits here until cpio_link_service returns. */
	char e_fail[160], c_fail[160];

	enum health health;
	char health_reason[128];
	/* What the engine is doing as far as this monitor can tell: derived
	 * from the commands it relayed and the engine's answers, corrected by
	 * the optional activity field when the engine sends one (ours does
	 * only when the check carried CENTRAL_DOWN). "" unknown. */
	char activity[16];
	int stopped;         /* from relayed ACK#PARAR / ACK#REANUDAR */
	const char *shown;   /* derived state last announced */

	struct relay relays[MAX_RELAYS];
	int nrelays;

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
		"usage: " PROG " <engine_host:port> <central_host:port> <cp_id> [--location TEXT]\n"
		"              [--price EUR] [--credential FILE] [--ca FILE] [--tls] [--headless]\n"
		"              [--topic-prefix P] [--no-color] [--log-format text|json] [--config FILE]\n"
		"       " PROG " --register https://HOST:PORT --installer-token-file F --credential FILE\n"
		"              [--ca F] <cp_id> [--location TEXT] [--price EUR]   (" PROG " --register --help)\n"
		"       " PROG " --help | --version\n"
		"  --location TEXT   where the CP is (1-64 characters, no '#'); default \"CP <cp_id>\"\n"
		"  --price EUR       price per kWh, > 0 and <= 100; default 0.30\n"
		"  --credential FILE the CP's credential file (mode 0600) for <cp_id>: REGISTER carries\n"
		"                    its secret, Central's key is passed to the engine, the engine\n"
		"                    link is authenticated, the link to Central is TLS. Without it:\n"
		"                    Release-1 mode (plaintext, only with a Central started with\n"
		"                    --plain-links)\n"
		"  --ca FILE         the network's CA certificate, to verify Central's certificate and\n"
		"                    host (default pki/ca.pem beside the credential file); implies --tls\n"
		"  --tls             connect to Central over TLS even without a credential\n"
		"                    (default CA pki/ca.pem)\n"
		"  --headless        no screen: event lines on stdout, commands on stdin\n"
		"                    (a re-authenticate / retry, status, q)\n"
		"  --topic-prefix P  accepted for symmetry with the other programs (the monitor\n"
		"                    itself uses no Kafka topic)\n"
		"  --no-color        monochrome screen (also NO_COLOR=1)\n"
		"  --log-format F    text or json event and log lines (default text)\n"
		"  --config FILE     configuration file (default " CONFIG_DEFAULT_PATH " if present)\n"
		"  --list-options    print every option, one a line (shell completion)\n"
		"  -V, --version     print the versions of the program and its libraries\n"
		"addresses are host:port or [v6]:port\n");
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

static const char *health_word(enum health h)
{
	return h == H_OK ? "OK" : h == H_KO ? "KO" : "?";
}

/* The CP's state as this monitor can see it, in the order of evcharging(7) RULES. It is
 * the monitor's view; Central's derivation is the authoritative one. */
static const char *derived_state(const struct mon *m)
{
	if (m->cstate != C_UP)
		return cp_state_name(CP_DESCONECTADO);
	if (m->revoked) /* Central shows it so: "Keys revoked" */
		return cp_state_name(CP_FUERA_DE_SERVICIO);
	if (m->stopped || strcmp(m->activity, "STOPPED") == 0)
		return cp_state_name(CP_FUERA_DE_SERVICIO);
	if (m->health == H_KO)
		return cp_state_name(CP_AVERIADO);
	if (strcmp(m->activity, "SUPPLYING") == 0)
		return cp_state_name(CP_SUMINISTRANDO);
	if (strcmp(m->activity, "RESERVED") == 0)
		return cp_state_name(CP_RESERVADO);
	return cp_state_name(CP_ACTIVADO);
}

static void update_state(struct mon *m)
{
	const char *st = derived_state(m);
	if (m->shown == NULL || strcmp(st, m->shown) != 0) {
		m->shown = st;
		cpio_event("STATE %s", st);
	}
	m->dirty = 1;
}

static void cen_send(struct mon *m, double now, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cen_send(struct mon *m, double now, const char *fmt, ...)
{
	char data[LINK_DATA_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(data, sizeof data, fmt, ap);
	va_end(ap);
	if (m->cstate == C_DOWN || cpio_link_sendf(&m->cen, now, "%s", data) < 0)
		log_warn("cannot send %s to Central: link not usable", data);
}

static void report_health(struct mon *m, double now)
{
	/* A revoked link takes only HEARTBEAT and REGISTER: the health is
	 * reported once the keys are back (reported is reset then). */
	if (m->cstate != C_UP || m->health == H_UNKNOWN || m->revoked)
		return;
	enum reported want = m->health == H_KO ? R_FAULT : R_RECOVER;
	if (m->reported == want)
		return;
	m->reported = want;
	if (want == R_FAULT) {
		cen_send(m, now, "FAULT#%s#%s", m->cp_id, m->health_reason);
		cpio_event("FAULT sent reason=%s", m->health_reason);
	} else {
		cen_send(m, now, "RECOVER#%s", m->cp_id);
		cpio_event("RECOVER sent");
	}
}

static void set_health(struct mon *m, enum health h, const char *reason, double now)
{
	if (h != m->health || (h == H_KO && strcmp(reason, m->health_reason) != 0)) {
		int changed = h != m->health;
		m->health = h;
		snprintf(m->health_reason, sizeof m->health_reason, "%s", h == H_KO ? reason : "");
		if (changed) {
			if (h == H_KO)
				cpio_event("HEALTH KO reason=%s", reason);
			else
				cpio_event("HEALTH OK");
		}
	}
	report_health(m, now);
	update_state(m);
}

static void set_activity(struct mon *m, const char *act)
{
	if (strcmp(act, m->activity) == 0)
		return;
	snprintf(m->activity, sizeof m->activity, "%s", act);
	if (act[0] != '\0')
		cpio_event("ENGINE %s", act);
	m->dirty = 1;
}

/* ---- relays (Central -> engine -> Central) ---- */

static void relay_answer(struct mon *m, const struct relay *r, double now, const char *data)
{
	if (r->gen == 0) { /* the monitor's own command, not Central's */
		cpio_event("ENGINE %s answered %s", r->cmd, data);
		return;
	}
	if (r->gen != m->cgen || m->cstate != C_UP) {
		cpio_event("RELAY %s answer dropped (Central link changed): %s", r->cmd, data);
		return;
	}
	cen_send(m, now, "%s", data);
	cpio_event("RELAY %s -> %s", r->cmd, data);
}

static void relay_remove(struct mon *m, int i)
{
	memmove(&m->relays[i], &m->relays[i + 1], (size_t)(m->nrelays - i - 1) * sizeof m->relays[0]);
	m->nrelays--;
}

static void relay_fail_all(struct mon *m, double now, const char *reason)
{
	char data[LINK_DATA_MAX + 1];
	while (m->nrelays > 0) {
		snprintf(data, sizeof data, "NACK#%s#%s", m->relays[0].cmd, reason);
		relay_answer(m, &m->relays[0], now, data);
		relay_remove(m, 0);
	}
}

/* Central asked for cmd; data is what the engine gets. */
static void relay_start(struct mon *m, double now, const char *cmd, const char *data)
{
	struct relay r = {.revoke = 0};
	snprintf(r.cmd, sizeof r.cmd, "%s", cmd);
	r.gen = m->cgen;
	r.deadline = now + RELAY_TIMEOUT;
	char nack[LINK_DATA_MAX + 1];
	if (m->estate != E_UP || !cpio_link_open(&m->eng)) {
		snprintf(nack, sizeof nack, "NACK#%s#engine unreachable", cmd);
		relay_answer(m, &r, now, nack);
		return;
	}
	if (m->nrelays >= MAX_RELAYS) {
		snprintf(nack, sizeof nack, "NACK#%s#monitor busy: too many commands waiting", cmd);
		relay_answer(m, &r, now, nack);
		return;
	}
	if (cpio_link_sendf(&m->eng, now, "%s", data) < 0) {
		snprintf(nack, sizeof nack, "NACK#%s#engine link not usable", cmd);
		relay_answer(m, &r, now, nack);
		return;
	}
	m->relays[m->nrelays++] = r;
	cpio_event("RELAY %s to engine", data);
}

/* A command of the monitor's own to the engine (its answer is not relayed):
 * data is the frame, its opcode the command. 0, or -1 if not sent. */
static int own_command(struct mon *m, double now, const char *data, int revoke, const char *why)
{
	if (m->estate != E_UP || m->nrelays >= MAX_RELAYS || cpio_link_sendf(&m->eng, now, "%s", data) < 0)
		return -1;
	struct relay r = {.gen = 0, .deadline = now + RELAY_TIMEOUT, .revoke = revoke};
	snprintf(r.cmd, sizeof r.cmd, "%.*s", (int)strcspn(data, "#"), data);
	m->relays[m->nrelays++] = r;
	cpio_event("RELAY %s to engine (%s)", r.cmd, why);
	return 0;
}

/* The revocation is over (new keys): the engine may supply again, unless
 * Central's own stop holds it. */
static void revoke_over(struct mon *m, double now)
{
	if (!m->revoke_stop)
		return;
	m->revoke_stop = 0;
	if (m->stopped)
		return;
	if (own_command(m, now, "REANUDAR", 1, "keys restored") < 0)
		m->resume_pending = 1;
}

/* ---- Central's registration and keys ---- */

/* REGISTER, with the secret as fifth field when secured. The event line
 * shows the frame without it. */
static void send_register(struct mon *m, double now)
{
	int r;
	if (m->secured)
		r = cpio_link_sendf(&m->cen, now, "REGISTER#%s#%s#%s#%s", m->cp_id, m->location, m->price,
				    m->cred.secret);
	else
		r = cpio_link_sendf(&m->cen, now, "REGISTER#%s#%s#%s", m->cp_id, m->location, m->price);
	if (r < 0)
		log_warn("cannot send REGISTER to Central: link not usable");
	else
		cpio_event("REGISTER sent REGISTER#%s#%s#%s%s", m->cp_id, m->location, m->price,
			   m->secured ? " (+ secret, not shown)" : "");
}

/* The key to the engine, once its link is authenticated. */
static void send_key_to_engine(struct mon *m, double now)
{
	if (!m->secured || !m->has_key || m->estate != E_UP)
		return;
	if (cpio_link_sendf(&m->eng, now, "SET_KEY#%s", m->key) == 0)
		cpio_event("SET_KEY sent to engine");
	else
		cpio_event("ERROR SET_KEY not sent: engine link not usable");
}

static void central_up(struct mon *m, double now, const char *result)
{
	m->cstate = C_UP;
	/* Registered: a failure after this is news again. (Not at the TCP
	 * connect: a denial comes after it, and would be said every retry.) */
	m->c_last_err[0] = '\0';
	m->c_backoff = CENTRAL_BACKOFF_BASE;
	m->reported = R_NONE;
	m->c_last_hb = now;
	m->revoked = 0;
	m->denied[0] = '\0';
	cpio_event("LINK central up (%s)", result);
	revoke_over(m, now);
	m->e_last_hc = 0; /* tell the engine at once */
	/* A reconnect must never hide the engine's real health. */
	report_health(m, now);
	update_state(m);
}

static void central_down(struct mon *m, double now, const char *reason, int ours);

/* KEY#<cp_id>#<key>: after REGISTER_RESULT, on every registration. */
static void on_key(struct mon *m, double now, char **f, int n)
{
	struct fernet_key k;
	if (!m->secured) {
		cen_send(m, now, "ERROR#no credential here: KEY ignored");
		cpio_event("ERROR KEY from Central ignored (Release-1 mode: no credential)");
		return;
	}
	if (m->cstate != C_KEYWAIT && !(m->cstate == C_UP && m->reauth)) {
		cen_send(m, now, "ERROR#KEY without a REGISTER: ignored");
		cpio_event("ERROR KEY from Central without a REGISTER: ignored");
		return;
	}
	if (n < 3 || strcmp(f[1], m->cp_id) != 0 || strlen(f[2]) != FERNET_KEY_LEN || fernet_key_parse(f[2], &k) < 0) {
		cen_send(m, now, "ERROR#bad KEY frame");
		cpio_event("ERROR bad KEY from Central (%s): not used", n < 3 ? "missing fields"
									 : strcmp(f[1], m->cp_id) != 0 ? "for another CP"
									 : "not a Fernet key");
		snprintf(m->c_fail, sizeof m->c_fail, "bad KEY from Central");
		return;
	}
	fernet_key_wipe(&k);
	int same = m->has_key && crypto_ct_equal(m->key, f[2], FERNET_KEY_LEN);
	memcpy(m->key, f[2], FERNET_KEY_LEN + 1);
	m->has_key = 1;
	cpio_event("KEY received (%s)", same ? "unchanged" : "new");
	send_key_to_engine(m, now); /* before any REANUDAR: the engine needs it to supply */
	if (m->cstate == C_KEYWAIT) {
		central_up(m, now, m->reg_result);
	} else {
		m->reauth = 0;
		m->revoked = 0;
		m->reported = R_NONE;
		cpio_event("REAUTH done: keys restored");
		report_health(m, now);
		update_state(m);
		revoke_over(m, now);
	}
}

/* REVOKED#<cp_id>: Central deleted the key; the link stays, revoked. */
static void on_revoked(struct mon *m, double now, char **f, int n)
{
	if (n < 2 || strcmp(f[1], m->cp_id) != 0) {
		cen_send(m, now, "ERROR#REVOKED for another CP");
		return;
	}
	m->revoked = 1;
	m->reauth = 0;
	crypto_wipe(m->key, sizeof m->key);
	m->has_key = 0;
	cpio_event("KEYS REVOKED by Central: Keys revoked (re-authenticate: key a, or command a)");
	m->revoke_stop = 1;
	m->resume_pending = 0;
	own_command(m, now, "PARAR#keys revoked", 1, "keys revoked: no supply until re-authenticated");
	update_state(m);
}

/* ---- frames from Central ---- */

static void on_central_frame(void *arg, const char *data, size_t len)
{
	struct mon *m = arg;
	double now = clock_mono();
	char buf[LINK_DATA_MAX + 1];
	char *f[LINK_FIELDS_MAX];
	memcpy(buf, data, len);
	buf[len] = '\0';
	int n = link_split(buf, f, LINK_FIELDS_MAX);
	if (n < 1) {
		cen_send(m, now, "ERROR#too many fields");
		return;
	}
	const char *op = f[0];
	if (m->c_fail[0] != '\0')
		return; /* given up already; closed once the callback returns */
	if (strcmp(op, "REGISTER_RESULT") == 0 && n >= 2) {
		if (strcmp(f[1], "FIRST") == 0 || strcmp(f[1], "RECONNECT") == 0) {
			if (m->cstate == C_REGISTERING && m->secured) {
				snprintf(m->reg_result, sizeof m->reg_result, "%s", f[1]);
				m->cstate = C_KEYWAIT; /* up once the KEY that follows is in */
			} else if (m->cstate == C_REGISTERING) {
				central_up(m, now, f[1]);
			} else if (m->cstate == C_UP && m->reauth && !m->secured) {
				m->reauth = 0;
				m->revoked = 0;
				m->reported = R_NONE;
				cpio_event("REAUTH done (%s)", f[1]);
				report_health(m, now);
				update_state(m);
				revoke_over(m, now);
			}
			return;
		}
		if (strcmp(f[1], "DENIED") == 0) {
			m->c_denied = 1;
			snprintf(m->denied, sizeof m->denied, "%.60s", n >= 3 ? f[2] : "(none given)");
			cpio_event("REGISTER DENIED reason=%s", n >= 3 ? f[2] : "(none given)");
			m->dirty = 1;
		} else {
			cen_send(m, now, "ERROR#unknown REGISTER_RESULT '%.40s'", f[1]);
		}
		return;
	}
	if (strcmp(op, "KEY") == 0) {
		on_key(m, now, f, n);
		crypto_wipe(buf, sizeof buf);
		return;
	}
	if (m->cstate != C_UP) {
		cen_send(m, now, "ERROR#not registered yet: %.40s ignored", op);
		return;
	}
	if (strcmp(op, "REVOKED") == 0) {
		on_revoked(m, now, f, n);
	} else if (strcmp(op, "AUTORIZAR_SUMINISTRO") == 0) {
		if (n < 4) {
			cen_send(m, now, "NACK#AUTORIZAR_SUMINISTRO#expected driver, session and price");
			return;
		}
		relay_start(m, now, op, data);
	} else if (strcmp(op, "PARAR") == 0) {
		relay_start(m, now, "PARAR", "PARAR");
	} else if (strcmp(op, "REANUDAR") == 0) {
		relay_start(m, now, "REANUDAR", "REANUDAR");
	} else if (strcmp(op, "FIN_SUMINISTRO") == 0) {
		/* Central ended the session itself (no telemetry, keys
		 * revoked): the engine must stop metering it. */
		relay_start(m, now, "FIN_SUMINISTRO", data);
	} else if (strcmp(op, "SESSION") == 0 || strcmp(op, "NO_SESSION") == 0) {
		if (m->estate == E_UP && cpio_link_sendf(&m->eng, now, "%s", data) == 0)
			cpio_event("CHECK_SESSION answer to engine: %s", data);
		else
			cpio_event("CHECK_SESSION answer dropped (engine unreachable): %s", data);
	} else if (strcmp(op, "ERROR") == 0) {
		cpio_event("ERROR from central: %s", n >= 2 ? data + 6 : "(no reason)");
	} else {
		cen_send(m, now, "ERROR#unknown opcode %.40s", op);
		cpio_event("ERROR unknown opcode from central: %.60s", op);
	}
}

/* ---- frames from the engine ---- */

static void engine_down(struct mon *m, double now, const char *reason, const char *health_reason, int ours);

/* Shown once per distinct reason, not once per retry. */
static void engine_auth_problem(struct mon *m, const char *why)
{
	if (strcmp(why, m->e_auth_err) == 0)
		return;
	snprintf(m->e_auth_err, sizeof m->e_auth_err, "%s", why);
	cpio_event("ERROR engine authentication failed: %s", why);
}

static void engine_auth_failed(struct mon *m, double now, const char *why)
{
	engine_auth_problem(m, why);
	engine_down(m, now, why, "engine authentication failed", 1);
}

static void engine_up(struct mon *m, double now)
{
	m->estate = E_UP;
	m->e_backoff = ENGINE_BACKOFF_BASE;
	m->e_auth_err[0] = '\0';
	cpio_event("LINK engine up%s", m->secured ? " (authenticated)" : "");
	m->e_last_hc = 0; /* check at once */
	send_key_to_engine(m, now);
	/* A restarted engine forgot Central's stop; Central only re-sends
	 * it when the monitor reconnects, so the monitor repeats it. */
	if (m->stopped)
		own_command(m, now, "PARAR", 0, "stop still in force");
	else if (m->revoke_stop)
		own_command(m, now, "PARAR#keys revoked", 1, "keys revoked: no supply until re-authenticated");
	else if (m->resume_pending && own_command(m, now, "REANUDAR", 1, "keys restored") == 0)
		m->resume_pending = 0;
	m->dirty = 1;
}

static void engine_fail_later(struct mon *m, const char *why)
{
	snprintf(m->e_fail, sizeof m->e_fail, "%s", why);
}

/* The engine's side of the challenge: CHALLENGE, then AUTH_OK. */
static void on_engine_auth_frame(struct mon *m, double now, char **f, int n)
{
	const char *op = f[0];
	unsigned char nonce[CRYPTO_NONCE_LEN];
	if (strcmp(op, "CHALLENGE") == 0 && n >= 2 && crypto_unhex(f[1], nonce, sizeof nonce) == 0) {
		char answer[65];
		crypto_challenge_answer(m->cred.secret, nonce, m->cp_id, answer);
		int r = cpio_link_sendf(&m->eng, now, "AUTH#%s", answer);
		crypto_wipe(answer, sizeof answer);
		if (r < 0)
			engine_fail_later(m, "cannot send AUTH: engine link not usable");
		return;
	}
	if (strcmp(op, "AUTH_OK") == 0) {
		engine_up(m, now);
		return;
	}
	if (strcmp(op, "ERROR") == 0 && n >= 2 && strcmp(f[1], "NOT_AUTHENTICATED") == 0)
		engine_fail_later(m, "the engine refused our answer (does it read the same credential?)");
	else if (strcmp(op, "ERROR") == 0 && n >= 2 && strncmp(f[1], "unknown opcode", 14) == 0)
		engine_fail_later(m, "the engine does not know HELLO (a Release-1 engine? start it with --credential)");
	else
		engine_fail_later(m, "unexpected answer during authentication");
}

static void on_engine_frame(void *arg, const char *data, size_t len)
{
	struct mon *m = arg;
	double now = clock_mono();
	char buf[LINK_DATA_MAX + 1];
	char *f[LINK_FIELDS_MAX];
	memcpy(buf, data, len);
	buf[len] = '\0';
	int n = link_split(buf, f, LINK_FIELDS_MAX);
	if (n < 1) {
		cpio_link_sendf(&m->eng, now, "ERROR#too many fields");
		return;
	}
	const char *op = f[0];
	if (m->e_fail[0] != '\0')
		return; /* given up already; closed once the callback returns */
	if (m->estate == E_AUTH) {
		on_engine_auth_frame(m, now, f, n);
		return;
	}
	if (m->estate != E_UP)
		return; /* a frame after the link was given up */
	if ((strcmp(op, "ACK") == 0 || strcmp(op, "NACK") == 0) && n >= 2 && strcmp(f[1], "SET_KEY") == 0) {
		if (op[0] == 'A')
			cpio_event("ENGINE key set");
		else
			cpio_event("ERROR engine refused the key: %.200s", n >= 3 ? f[2] : "(no reason)");
		return;
	}
	if (strcmp(op, "OK") == 0 || strcmp(op, "KO") == 0) {
		m->hc_pending = 0;
		/* Optional trailing field: what the engine is doing. A foreign
		 * engine never sends it, so it only corrects our own view. */
		if (n >= 2 && (strcmp(f[1], "IDLE") == 0 || strcmp(f[1], "RESERVED") == 0 ||
			       strcmp(f[1], "SUPPLYING") == 0 || strcmp(f[1], "STOPPED") == 0))
			set_activity(m, f[1]);
		else if (op[0] == 'K' && (strcmp(m->activity, "RESERVED") == 0 || strcmp(m->activity, "SUPPLYING") == 0))
			set_activity(m, "IDLE"); /* a fault ends a supply and drops an authorisation */
		if (op[0] == 'O')
			set_health(m, H_OK, "", now);
		else
			set_health(m, H_KO, "engine reports KO", now);
		return;
	}
	if ((strcmp(op, "ACK") == 0 || strcmp(op, "NACK") == 0) && n >= 2) {
		for (int i = 0; i < m->nrelays; i++) {
			if (strcmp(m->relays[i].cmd, f[1]) != 0)
				continue;
			if (op[0] == 'A' && strcmp(f[1], "PARAR") == 0) {
				if (!m->relays[i].revoke)
					m->stopped = 1;
				set_activity(m, "STOPPED");
			}
			if (op[0] == 'A' && strcmp(f[1], "REANUDAR") == 0) {
				if (!m->relays[i].revoke)
					m->stopped = 0;
				set_activity(m, "IDLE");
			}
			if (op[0] == 'A' && strcmp(f[1], "AUTORIZAR_SUMINISTRO") == 0)
				set_activity(m, "RESERVED");
			relay_answer(m, &m->relays[i], now, data);
			relay_remove(m, i);
			update_state(m);
			return;
		}
		cpio_event("ENGINE answer for no pending command: %s", data);
		return;
	}
	if (strcmp(op, "CHECK_SESSION") == 0) {
		if (m->cstate == C_UP && m->revoked) {
			cpio_link_sendf(&m->eng, now, "ERROR#keys revoked: central takes nothing but REGISTER");
			cpio_event("CHECK_SESSION refused: keys revoked");
		} else if (m->cstate == C_UP) {
			cen_send(m, now, "CHECK_SESSION#%s", m->cp_id);
			cpio_event("CHECK_SESSION relayed to central");
		} else {
			cpio_link_sendf(&m->eng, now, "ERROR#central unreachable");
			cpio_event("CHECK_SESSION refused: central unreachable");
		}
		return;
	}
	if (strcmp(op, "ERROR") == 0) {
		if (!m->secured && n >= 2 && strcmp(f[1], "NOT_AUTHENTICATED") == 0)
			engine_auth_problem(m, "the engine requires authentication (it runs with --credential): "
					       "start this monitor with the same --credential");
		else
			cpio_event("ERROR from engine: %s", n >= 2 ? data + 6 : "(no reason)");
		return;
	}
	cpio_link_sendf(&m->eng, now, "ERROR#unknown opcode %.40s", op);
	cpio_event("ERROR unknown opcode from engine: %.60s", op);
}

/* ---- link lifecycle ---- */

/* Denials that the same REGISTER can never get past. */
static int denied_for_good(const char *reason)
{
	return strcmp(reason, "BAD_CREDENTIALS") == 0 || strcmp(reason, "NOT_REGISTERED") == 0;
}

/* ours: the close is this side's decision (not a broken or closed link),
 * so a session still open gets EOT first (evcharging(7) THE LINK PROTOCOL). */
static void central_down(struct mon *m, double now, const char *reason, int ours)
{
	enum cen_state was = m->cstate;
	cpio_link_close(&m->cen, ours && cpio_link_open(&m->cen));
	m->cstate = C_DOWN;
	m->reauth = 0;
	double d = cpio_backoff(&m->c_backoff, CENTRAL_BACKOFF_CAP);
	if (m->c_denied && strcmp(m->denied, "RATE_LIMITED") == 0 && d < RATE_LIMITED_WAIT)
		d = RATE_LIMITED_WAIT * (1.0 + 0.1 * ((double)random() / (double)RAND_MAX));
	m->c_next_try = now + d;
	if (m->c_denied && denied_for_good(m->denied) && !m->halted) {
		m->halted = 1;
		cpio_event("REGISTER STOPPED reason=%s: not retrying until the operator acts "
			   "(fix the credential or the registry, then a)",
			   m->denied);
		if (was != C_UP) { /* no "next attempt": there is none */
			m->c_denied = 0;
			update_state(m);
			return;
		}
	}
	if (was == C_UP) {
		cpio_event("LINK central down reason=%s", reason);
		m->e_last_hc = 0; /* tell the engine at once */
		/* Central cancels an authorisation that has not started; our
		 * engine's answer to the next check (it carries CENTRAL_DOWN)
		 * tells whether a supply is running. */
		if (strcmp(m->activity, "RESERVED") == 0)
			set_activity(m, "IDLE");
	}
	else if (strcmp(reason, m->c_last_err) != 0) {
		/* Said once per distinct failure, not at every retry: a wrong
		 * certificate keeps failing the same way. */
		log_warn("central %s: %s; retrying with backoff (next attempt in %.1f s)", m->cen_addr, reason, d);
		snprintf(m->c_last_err, sizeof m->c_last_err, "%s", reason);
	} else {
		log_debug("central %s: %s; next attempt in %.1f s", m->cen_addr, reason, d);
	}
	m->c_denied = 0;
	update_state(m);
}

static void engine_down(struct mon *m, double now, const char *reason, const char *health_reason, int ours)
{
	enum eng_state was = m->estate;
	cpio_link_close(&m->eng, ours && cpio_link_open(&m->eng));
	m->estate = E_DOWN;
	m->hc_pending = 0;
	double d = cpio_backoff(&m->e_backoff, ENGINE_BACKOFF_CAP);
	m->e_next_try = now + d;
	if (was == E_UP)
		cpio_event("LINK engine down reason=%s", reason);
	else if (was == E_AUTH && health_reason == NULL)
		engine_auth_problem(m, reason); /* e.g. the engine closed after refusing us */
	else
		log_debug("engine %s: %s; next attempt in %.1f s", m->eng_addr, reason, d);
	relay_fail_all(m, now, "engine unreachable");
	set_activity(m, "");
	if (health_reason == NULL)
		health_reason = was == E_AUTH ? "engine authentication failed" : "engine unreachable";
	set_health(m, H_KO, health_reason, now);
}

static void try_connect(struct mon *m, double now)
{
	char err[EVC_ERR_LEN];
	if (m->cstate == C_DOWN && !m->halted && now >= m->c_next_try) {
		m->cgen++;
		if (cpio_link_connect(&m->cen, m->cen_host, m->cen_port, now, err) == 0)
			m->cstate = C_CONNECTING;
		else
			central_down(m, now, err, 0);
	}
	if (m->estate == E_DOWN && now >= m->e_next_try) {
		if (cpio_link_connect(&m->eng, m->eng_host, m->eng_port, now, err) == 0)
			m->estate = E_CONNECTING;
		else
			engine_down(m, now, err, NULL, 0);
	}
}

/* After the TCP connect completes the session exists: queue the first frames. */
static void after_service(struct mon *m, double now)
{
	if (m->cstate == C_CONNECTING && m->cen.has_session) {
		m->cstate = C_REGISTERING;
		m->c_reg_deadline = now + REGISTER_TIMEOUT;
		send_register(m, now);
	}
	if (m->estate == E_CONNECTING && m->eng.has_session) {
		if (m->secured) {
			/* Nothing but the challenge until the engine says AUTH_OK. */
			m->estate = E_AUTH;
			m->e_auth_deadline = now + ENGINE_AUTH_TIMEOUT;
			if (cpio_link_sendf(&m->eng, now, "HELLO#%s", m->cp_id) < 0)
				engine_auth_failed(m, now, "cannot send HELLO: engine link not usable");
		} else {
			engine_up(m, now);
		}
	}
}

static void timers(struct mon *m, double now)
{
	char err[EVC_ERR_LEN];
	try_connect(m, now);

	if (m->cstate != C_DOWN && cpio_link_pump(&m->cen, now, err) < 0)
		central_down(m, now, m->c_denied ? "registration denied" : err, 0);
	if (m->cstate == C_REGISTERING && now >= m->c_reg_deadline)
		central_down(m, now, "no REGISTER_RESULT within 5 s", 1);
	if (m->cstate == C_KEYWAIT && now >= m->c_reg_deadline)
		central_down(m, now, "no KEY within 5 s of REGISTER", 1);
	if (m->cstate == C_UP && m->reauth && now >= m->reauth_deadline)
		central_down(m, now, "no answer to the re-authentication within 5 s", 1);
	if (m->cstate == C_UP && now - m->c_last_hb >= HEARTBEAT_PERIOD) {
		m->c_last_hb = now;
		cen_send(m, now, "HEARTBEAT#%s", m->cp_id);
	}

	if (m->estate != E_DOWN && cpio_link_pump(&m->eng, now, err) < 0)
		engine_down(m, now, err, NULL, 0);
	if (m->estate == E_AUTH && now >= m->e_auth_deadline)
		engine_auth_failed(m, now, "no AUTH_OK within 5 s");
	if (m->estate == E_UP && m->hc_pending && now - m->hc_sent > HEALTH_TIMEOUT) {
		m->hc_pending = 0;
		set_health(m, H_KO, "engine not answering", now);
	}
	if (m->estate == E_UP && !m->hc_pending && now - m->e_last_hc >= HEALTH_PERIOD) {
		m->e_last_hc = now;
		/* Exactly HEALTH_CHECK#<cp_id> (evcharging(7) MONITOR AND ENGINE) while Central is
		 * up; the optional CENTRAL_DOWN only while it is not, so the
		 * engine can refuse new work Central could not hear about. */
		int r = m->cstate == C_UP ? cpio_link_sendf(&m->eng, now, "HEALTH_CHECK#%s", m->cp_id)
					  : cpio_link_sendf(&m->eng, now, "HEALTH_CHECK#%s#CENTRAL_DOWN", m->cp_id);
		if (r == 0) {
			m->hc_pending = 1;
			m->hc_sent = now;
		}
	}
	for (int i = 0; i < m->nrelays;) {
		if (now >= m->relays[i].deadline) {
			char nack[LINK_DATA_MAX + 1];
			snprintf(nack, sizeof nack, "NACK#%s#engine did not answer within %.0f s", m->relays[i].cmd,
				 RELAY_TIMEOUT);
			relay_answer(m, &m->relays[i], now, nack);
			relay_remove(m, i);
		} else {
			i++;
		}
	}
}

/* ---- stdin and screen commands ---- */

/* 'a': re-authenticate after REVOKED, or retry after a denial that stopped
 * the retries (the credential file is read again: the operator may have
 * put a new secret in it). */
static void reauthenticate(struct mon *m, double now)
{
	if (m->halted) {
		if (m->secured) {
			struct cred c;
			char err[EVC_ERR_LEN];
			if (cred_load(m->cred_path, &c, err) < 0) {
				cpio_event("ERROR credential not reloaded: %s", err);
				return;
			}
			if (strcmp(c.cp_id, m->cp_id) != 0) {
				cpio_event("ERROR credential not reloaded: %s is now for CP %s, not %s", m->cred_path,
					   c.cp_id, m->cp_id);
				cred_wipe(&c);
				return;
			}
			cred_wipe(&m->cred);
			m->cred = c;
			cred_wipe(&c);
		}
		m->halted = 0;
		m->c_backoff = CENTRAL_BACKOFF_BASE;
		m->c_next_try = now;
		cpio_event("REGISTER retry asked by the operator%s", m->secured ? " (credential reloaded)" : "");
		update_state(m);
		return;
	}
	if (m->cstate == C_UP && m->revoked) {
		if (m->reauth) {
			cpio_event("ERROR re-authentication already in progress");
			return;
		}
		m->reauth = 1;
		m->reauth_deadline = now + REGISTER_TIMEOUT;
		cpio_event("REAUTH asked by the operator");
		send_register(m, now);
		return;
	}
	if (m->cstate == C_DOWN) {
		m->c_next_try = now;
		cpio_event("REGISTER retry asked by the operator");
		return;
	}
	cpio_event("ERROR nothing to re-authenticate: %s", m->cstate == C_UP ? "the keys are valid"
										 : "registration in progress");
}

static const char *key_word(const struct mon *m)
{
	if (!m->secured)
		return "-";
	if (m->revoked)
		return "revoked";
	return m->has_key ? "set" : "none";
}

static void on_command(void *arg, const char *line)
{
	struct mon *m = arg;
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0')
		return;
	if (strcmp(line, "q") == 0 || strcmp(line, "quit") == 0) {
		m->quit = 1;
	} else if (strcmp(line, "a") == 0) {
		reauthenticate(m, clock_mono());
	} else if (strcmp(line, "status") == 0 || strcmp(line, "s") == 0) {
		cpio_event("STATUS cp=%s state=%s central=%s engine=%s mode=%s key=%s%s%s health=%s%s%s", m->cp_id,
			   derived_state(m), m->cstate == C_UP ? "up" : "down", m->estate == E_UP ? "up" : "down",
			   m->secured ? "secured" : "release-1", key_word(m), m->halted ? " denied=" : "",
			   m->halted ? m->denied : "", health_word(m->health), m->health == H_KO ? " reason=" : "",
			   m->health_reason);
	} else {
		cpio_event("ERROR unknown command '%.40s' (commands: a, status, q)", line);
	}
	m->dirty = 1;
}

static void on_line(void *arg, char *line)
{
	on_command(arg, line);
}

static const char *cen_word(enum cen_state s)
{
	switch (s) {
	case C_UP: return "up";
	case C_REGISTERING: return "registering";
	case C_KEYWAIT: return "registering";
	case C_CONNECTING: return "connecting";
	case C_DOWN: break;
	}
	return "down";
}

static void draw(struct mon *m)
{
	if (m->scr == NULL || !m->dirty)
		return;
	m->dirty = 0;
	double p = 0;
	cpio_parse_double(m->price, &p);
	char link[160];
	if (m->halted)
		snprintf(link, sizeof link, "denied: %s (fix it, then a)", m->denied);
	else if (m->cstate == C_UP && m->revoked)
		snprintf(link, sizeof link, "up, Keys revoked (a: re-authenticate%s)", m->reauth ? ": asked" : "");
	else if (m->cstate != C_UP && m->denied[0] != '\0')
		snprintf(link, sizeof link, "%s (last denied: %s)", cen_word(m->cstate), m->denied);
	else
		snprintf(link, sizeof link, "%s", cen_word(m->cstate));
	struct cp_monitor_view v = {
		.cp_id = m->cp_id,
		.location = m->location,
		.price = p,
		.central_addr = m->cen_addr,
		.engine_addr = m->eng_addr,
		.central_link = link,
		.engine_link = m->estate == E_UP ? "up" : m->estate == E_AUTH ? "authenticating"
						: m->estate == E_CONNECTING ? "connecting" : "down",
		.health = health_word(m->health),
		.health_reason = m->health_reason,
		.cp_state = derived_state(m),
		.activity = m->activity,
	};
	cp_screen_draw_monitor(m->scr, &v);
}

static void screen_event(void *arg, const char *line)
{
	struct mon *m = arg;
	cp_screen_event(m->scr, line);
	m->dirty = 1;
}

static void screen_log(enum log_level lvl, const char *line, void *arg)
{
	char buf[1100];
	snprintf(buf, sizeof buf, "%s: %s", log_level_name(lvl), line);
	screen_event(arg, buf);
}

/* ---- arguments ---- */

enum { OPT_NO_COLOR = 256, OPT_LOG_FORMAT, OPT_CONFIG, OPT_LIST };

static void parse_args(struct mon *m, int argc, char **argv, int *headless, struct config *conf)
{
	static const struct option opts[] = {
		{"location", required_argument, NULL, 'l'},
		{"price", required_argument, NULL, 'p'},
		{"headless", no_argument, NULL, 'H'},
		{"topic-prefix", required_argument, NULL, 't'},
		{"credential", required_argument, NULL, 'K'},
		{"tls", no_argument, NULL, 'T'},
		{"ca", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"no-color", no_argument, NULL, OPT_NO_COLOR},
		{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"list-options", no_argument, NULL, OPT_LIST},
		{NULL, 0, NULL, 0},
	};
	const char *location = NULL, *price = NULL;
	const char *log_format = NULL, *config_path = NULL;
	int no_color = 0;
	int tls = 0;
	char err[EVC_ERR_LEN];
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (c) {
		case 'l': location = optarg; break;
		case 'p': price = optarg; break;
		case 'H': *headless = 1; break;
		case 't': bus_prefix(optarg); break;
		case 'K':
			if (optarg[0] == '\0')
				bad_usage("--credential needs a file name");
			m->cred_path = optarg;
			break;
		case 'T': tls = 1; break;
		case 'C': m->ca_file = optarg; tls = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'V': version_print(stdout, PROG); exit(0);
		case OPT_NO_COLOR: no_color = 1; break;
		case OPT_LOG_FORMAT: log_format = optarg; break;
		case OPT_CONFIG: config_path = optarg; break;
		case OPT_LIST: progopt_list(stdout, opts, (const char *const[]){ "--register", NULL }); exit(0);
		case ':': bad_usage("option %s needs a value", argv[optind - 1]); break;
		default: bad_usage("unknown option '%s'", argv[optind - 1]); break;
		}
	}
	char perr[EVC_ERR_LEN];
	if (progopt_setup(PROG, config_path, log_format, no_color, conf, perr) == -1) {
		fprintf(stderr, PROG ": %s\n", perr);
		exit(2);
	}
	if (argc - optind != 3) {
		fprintf(stderr, PROG ": expected 3 arguments (engine address, central address, cp_id), got %d\n",
			argc - optind);
		usage(stderr);
		exit(2);
	}
	if (net_parse_hostport(argv[optind], m->eng_host, sizeof m->eng_host, &m->eng_port, err) < 0)
		bad_usage("engine address: %s", err);
	if (net_parse_hostport(argv[optind + 1], m->cen_host, sizeof m->cen_host, &m->cen_port, err) < 0)
		bad_usage("central address: %s", err);
	if (!msg_valid_cp_id(argv[optind + 2]))
		bad_usage("invalid cp_id '%s' (1-32 of A-Z a-z 0-9 _ -)", argv[optind + 2]);
	snprintf(m->cp_id, sizeof m->cp_id, "%s", argv[optind + 2]);
	if (location == NULL)
		snprintf(m->location, sizeof m->location, "CP %s", m->cp_id);
	else if (msg_check_location(location) != NULL)
		bad_usage("invalid --location '%s': %s (1-64 characters, no '#' or control characters)", location,
			  msg_check_location(location));
	else
		snprintf(m->location, sizeof m->location, "%s", location);
	double p = 0.30;
	if (price != NULL && money_parse_price(price, &p, NULL) != 0)
		bad_usage("invalid --price '%s' (EUR per kWh, > 0 and <= 100, '.' as decimal point)", price);
	money_price(m->price, sizeof m->price, p);
	/* With a credential the link to Central is always TLS (evcharging(7)
	 * SECURITY), verified by default against pki/ca.pem beside the file. */
	if (m->cred_path != NULL && m->ca_file == NULL) {
		if (cpio_path_beside(m->ca_buf, sizeof m->ca_buf, m->cred_path, "pki/ca.pem") == -1)
			bad_usage("--credential '%.100s...': path too long", m->cred_path);
		m->ca_file = m->ca_buf;
	}
	if (tls && m->ca_file == NULL)
		m->ca_file = "pki/ca.pem";
	net_format_hostport(m->cen_host, m->cen_port, m->cen_addr, sizeof m->cen_addr);
	net_format_hostport(m->eng_host, m->eng_port, m->eng_addr, sizeof m->eng_addr);
	if (m->cred_path != NULL) {
		char cerr[EVC_ERR_LEN];
		/* An unreadable or unsafe file is a run-time failure (exit 1),
		 * a credential for another CP a usage error (exit 2). */
		if (cred_load(m->cred_path, &m->cred, cerr) < 0) {
			fprintf(stderr, PROG ": %s\n", cerr);
			exit(1);
		}
		if (strcmp(m->cred.cp_id, m->cp_id) != 0) {
			char other[sizeof m->cred.cp_id];
			snprintf(other, sizeof other, "%s", m->cred.cp_id);
			cred_wipe(&m->cred);
			bad_usage("credential %s is for CP %s, not %s", m->cred_path, other, m->cp_id);
		}
		m->secured = 1;
	}
}

int main(int argc, char **argv)
{
	if (cp_register_requested(argc, argv))
		return cp_register_main(argc, argv);
	struct mon *m = xcalloc(1, sizeof *m);
	int headless = 0;
	struct config conf;
	log_set_progname(PROG);
	parse_args(m, argc, argv, &headless, &conf);
	config_free(&conf); /* all it gives the monitor is read (the log format) */
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	if (m->ca_file != NULL) {
		char err[EVC_ERR_LEN];
		m->cen_tls = tls_client_ctx_new(m->ca_file, err);
		if (m->cen_tls == NULL) {
			fprintf(stderr, PROG ": %s\n", err);
			cred_wipe(&m->cred);
			free(m);
			return 1;
		}
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!headless && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
		char err[EVC_ERR_LEN];
		char title[128];
		snprintf(title, sizeof title, PROG " %s  %s", m->cp_id, m->secured ? "secured" : "R1 plaintext");
		m->scr = cp_screen_open(CP_SCREEN_MONITOR, title, err);
		if (m->scr == NULL) {
			fprintf(stderr, PROG ": %s (use --headless)\n", err);
			cred_wipe(&m->cred);
			free(m);
			return 1;
		}
		cpio_set_event_sink(screen_event, m);
		log_set_sink(screen_log, m);
	}

	cpio_link_init(&m->cen);
	cpio_link_init(&m->eng);
	if (m->cen_tls != NULL) {
		/* The certificate must name the host we were told to reach. */
		cpio_link_set_tls(&m->cen, m->cen_tls, m->cen_host);
		log_info("central link: TLS, verifying '%s' against %s", m->cen_host, m->ca_file);
	} else {
		log_info("central link: plaintext (Release 1; Central must run --plain-links)");
	}
	m->c_backoff = CENTRAL_BACKOFF_BASE;
	m->e_backoff = ENGINE_BACKOFF_BASE;
	m->dirty = 1;
	cpio_event("START cp=%s engine=%s central=%s price=%s location=%s", m->cp_id, m->eng_addr, m->cen_addr,
		   m->price, m->location);
	if (m->secured)
		cpio_event("Secured mode: credential %s; REGISTER carries the secret, the engine link is "
			   "authenticated, Central's key goes to the engine",
			   m->cred_path);
	else if (m->cen_tls != NULL)
		cpio_event("Release-1 CP over TLS: no credential, TLS link to Central verified against %s, no "
			   "engine authentication (EV_Central refuses a REGISTER over TLS without a secret)",
			   m->ca_file);
	else
		cpio_event(R1_NOTICE);
	notify_state("READY=1");
	update_state(m);

	struct cpio_lines lines;
	memset(&lines, 0, sizeof lines);
	int stdin_open = 1;
	if (m->scr == NULL)
		net_set_nonblock(STDIN_FILENO, 1);

	while (!m->quit && !got_signal) {
		double now = clock_mono();
		timers(m, now);
		draw(m);

		struct pollfd pf[3];
		int npf = 0, i_in = -1, i_cen = -1, i_eng = -1;
		if (stdin_open) {
			pf[npf] = (struct pollfd){.fd = m->scr ? cp_screen_fd(m->scr) : STDIN_FILENO, .events = POLLIN};
			i_in = npf++;
		}
		if (m->cstate != C_DOWN) {
			pf[npf] = (struct pollfd){.fd = m->cen.fd, .events = cpio_link_events(&m->cen)};
			i_cen = npf++;
		}
		if (m->estate != E_DOWN) {
			pf[npf] = (struct pollfd){.fd = m->eng.fd, .events = cpio_link_events(&m->eng)};
			i_eng = npf++;
		}
		/* 100 ms is finer than every period here (1 s) and timeout (1.5 s+). */
		int rc = poll(pf, (nfds_t)npf, 100);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			break;
		}
		now = clock_mono();
		char err[EVC_ERR_LEN];
		if (i_cen >= 0 && pf[i_cen].revents) {
			if (cpio_link_service(&m->cen, pf[i_cen].revents, now, on_central_frame, m, err) < 0)
				central_down(m, now, m->c_denied ? "registration denied" : err, 0);
			else if (m->c_fail[0] != '\0')
				central_down(m, now, m->c_fail, 1);
			m->c_fail[0] = '\0';
		}
		if (i_eng >= 0 && pf[i_eng].revents) {
			if (m->e_fail[0] == '\0' &&
			    cpio_link_service(&m->eng, pf[i_eng].revents, now, on_engine_frame, m, err) < 0 &&
			    m->e_fail[0] == '\0')
				engine_down(m, now, err, NULL, 0);
			if (m->e_fail[0] != '\0')
				engine_auth_failed(m, now, m->e_fail);
			m->e_fail[0] = '\0';
		}
		after_service(m, now);
		if (i_in >= 0 && pf[i_in].revents) {
			if (m->scr)
				cp_screen_input(m->scr, on_command, m);
			else if (cpio_lines_read(&lines, STDIN_FILENO, on_line, m) < 0)
				stdin_open = 0; /* no more commands; keep monitoring */
		}
	}

	cpio_event("QUIT%s", got_signal ? " (signal)" : "");
	notify_state("STOPPING=1");
	cpio_link_close(&m->cen, 1);
	cpio_link_release(&m->cen);
	cpio_link_close(&m->eng, 1);
	SSL_CTX_free(m->cen_tls);
	if (m->scr) {
		log_set_sink(NULL, NULL);
		cpio_set_event_sink(NULL, NULL);
		cp_screen_close(m->scr);
	}
	crypto_wipe(m->key, sizeof m->key);
	cred_wipe(&m->cred);
	free(m);
	return 0;
}
