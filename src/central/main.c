/* EV_Central: arguments, wiring and the main loop.
 *
 * Threads: the cplink worker (CP sockets), the Kafka consumer (kafka_in),
 * the publisher (kafka_out: encodes and produces what this thread queues),
 * the store's checkpointer (own connection), librdkafka's own threads, and
 * this main thread, the only one that touches the core, the store's
 * connection and the frontend. One loop turn:
 *   poll(frontend input, cplink event fd, kafka_in event fd, signalfd, timers)
 *   -> feed every waiting event to the core -> its effects
 *   -> store rows (one transaction per turn) -> COMMIT
 *   -> send frames, produce messages -> commit the Kafka offsets of the turn
 *   -> show the effects.
 * Storing before acting means a crash can lose an action but never leave
 * one done and unrecorded; committing offsets last means a crash replays
 * messages, which the core recognises (session ids, seq) and ignores. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "evc/bus.h"
#include "evc/clock.h"
#include "src/central/core.h"
#include "evc/log.h"
#include "evc/net.h"
#include "evc/tls.h"
#include "evc/xalloc.h"
#include "src/central/console.h"
#include "src/central/cplink.h"
#include "src/central/frontend.h"
#include "src/central/kafka_in.h"
#include "src/central/kafka_out.h"
#include "src/central/store.h"
#include "ui/panel.h"

#define PROG "EV_Central"
#define DEFAULT_DB "./evcharging.db"
#define BATCH_LINK 512   /* link events per loop turn */
/* Kafka messages per loop turn. A CONSUMO makes three effects; 256 keep a
 * turn's effects within the list's kept memory (core.c FXLIST_KEEP = 1024):
 * at 512 the list grew and shrank every turn of a flood, and page faults on
 * the fresh memory cost more than the extra turns. */
#define BATCH_KAFKA 256

enum mode { MODE_SERVE, MODE_ADD_DRIVER, MODE_ADD_CP, MODE_IMPORT };

struct opts {
	enum mode mode;
	int port;
	const char *kafka;
	const char *db;
	int headless, readonly, no_color, json;
	const char *prefix;
	double heartbeat_timeout, request_max_age, reservation_timeout;
	int max_conns;
	const char *link_cert, *link_key; /* NULL: pki/central.{pem,key} beside the db */
	int plain_links;                  /* serve Release-1 plaintext links too */
	const char *args[8]; /* tool arguments */
	int nargs;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " <port> <kafka_host:port> [db_path] [options]\n"
		"       " PROG " --add-driver ID [NAME...] [--db PATH]\n"
		"       " PROG " --add-cp ID LOCATION PRICE [--db PATH]\n"
		"       " PROG " --import FILE [--db PATH]\n"
		"       " PROG " --help | --version\n"
		"options:\n"
		"  --headless                 line console on stdin/stdout instead of the panel\n"
		"  --topic-prefix P           prefix of every topic and group (default $EVC_TOPIC_PREFIX or none)\n"
		"  --log-format text|json     console line format (default text)\n"
		"  --heartbeat-timeout S      close a CP link silent for S seconds (default 3, 0 = never)\n"
		"  --request-max-age S        deny charge requests older than S seconds (default 60)\n"
		"  --reservation-timeout S    cancel an authorised session not plugged in after S s (default 120)\n"
		"  --max-conns N              most CP link connections (default 10000)\n"
		"  --link-cert F, --link-key F  TLS certificate and key of the CP link port\n"
		"                             (default pki/central.pem, pki/central.key beside the db)\n"
		"  --plain-links              also serve Release-1 plaintext CP links (without\n"
		"                             certificate files: plaintext links only)\n"
		"  --readonly                 refuse operator commands\n"
		"  --no-color                 panel without colours (also NO_COLOR)\n"
		"  --db PATH                  database (default " DEFAULT_DB "; or the third argument)\n"
		"import file: one record a line, '#' starts a comment line:\n"
		"  driver ID [NAME...]\n"
		"  cp ID PRICE LOCATION...\n");
}

static void __attribute__((noreturn, format(printf, 1, 2))) bad_arg(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	exit(2);
}

static double parse_secs(const char *opt, const char *v, int allow_zero)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (v[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(d) || d < 0 || (!allow_zero && d == 0) ||
	    d > 86400 * 365)
		bad_arg("%s: invalid number of seconds '%s'", opt, v);
	return d;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	const char *pos[8];
	int npos = 0;
	int tool = 0;
	memset(o, 0, sizeof *o);
	o->heartbeat_timeout = 3;
	o->request_max_age = 60;
	o->reservation_timeout = 120;
	o->max_conns = 10000;
	const char *format = "text";

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == '\0') {
			if (npos == (int)(sizeof pos / sizeof pos[0]))
				bad_arg("too many arguments ('%s')", a);
			pos[npos++] = a;
			continue;
		}
		/* --opt=value or --opt value */
		char name[64];
		const char *val = NULL;
		const char *eq = strchr(a, '=');
		if (eq != NULL && a[1] == '-') {
			snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
			val = eq + 1;
		} else {
			snprintf(name, sizeof name, "%s", a);
		}
#define TAKE_VAL()                                                              \
	do {                                                                    \
		if (val == NULL) {                                              \
			if (i + 1 >= argc)                                      \
				bad_arg("option %s needs a value", name);      \
			val = argv[++i];                                        \
		}                                                               \
	} while (0)
#define NO_VAL()                                                                \
	do {                                                                    \
		if (val != NULL)                                                \
			bad_arg("option %s takes no value", name);             \
	} while (0)
		if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
			printf(PROG " (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			exit(0);
		} else if (strcmp(name, "--headless") == 0) {
			NO_VAL();
			o->headless = 1;
		} else if (strcmp(name, "--readonly") == 0) {
			NO_VAL();
			o->readonly = 1;
		} else if (strcmp(name, "--no-color") == 0) {
			NO_VAL();
			o->no_color = 1;
		} else if (strcmp(name, "--topic-prefix") == 0) {
			TAKE_VAL();
			o->prefix = val;
		} else if (strcmp(name, "--log-format") == 0) {
			TAKE_VAL();
			format = val;
		} else if (strcmp(name, "--heartbeat-timeout") == 0) {
			TAKE_VAL();
			o->heartbeat_timeout = parse_secs(name, val, 1);
		} else if (strcmp(name, "--request-max-age") == 0) {
			TAKE_VAL();
			o->request_max_age = parse_secs(name, val, 0);
		} else if (strcmp(name, "--reservation-timeout") == 0) {
			TAKE_VAL();
			o->reservation_timeout = parse_secs(name, val, 0);
		} else if (strcmp(name, "--max-conns") == 0) {
			TAKE_VAL();
			char *end;
			errno = 0;
			long n = strtol(val, &end, 10);
			if (val[0] == '\0' || *end != '\0' || errno != 0 || n < 1 || n > 1000000)
				bad_arg("--max-conns: invalid count '%s' (1..1000000)", val);
			o->max_conns = (int)n;
		} else if (strcmp(name, "--link-cert") == 0) {
			TAKE_VAL();
			o->link_cert = val;
		} else if (strcmp(name, "--link-key") == 0) {
			TAKE_VAL();
			o->link_key = val;
		} else if (strcmp(name, "--plain-links") == 0) {
			NO_VAL();
			o->plain_links = 1;
		} else if (strcmp(name, "--db") == 0) {
			TAKE_VAL();
			o->db = val;
		} else if (strcmp(name, "--add-driver") == 0 || strcmp(name, "--add-cp") == 0 ||
			   strcmp(name, "--import") == 0) {
			NO_VAL();
			if (tool)
				bad_arg("only one of --add-driver, --add-cp, --import at a time");
			tool = 1;
			o->mode = name[2] == 'i' ? MODE_IMPORT : strcmp(name, "--add-cp") == 0 ? MODE_ADD_CP
											 : MODE_ADD_DRIVER;
		} else {
			bad_arg("unknown option '%s'", a);
		}
#undef TAKE_VAL
#undef NO_VAL
	}
	if (strcmp(format, "text") == 0)
		o->json = 0;
	else if (strcmp(format, "json") == 0)
		o->json = 1;
	else
		bad_arg("--log-format: expected text or json, not '%s'", format);

	if (o->mode != MODE_SERVE) {
		if (o->db == NULL)
			o->db = DEFAULT_DB;
		for (int i = 0; i < npos; i++)
			o->args[o->nargs++] = pos[i];
		if (o->mode == MODE_ADD_DRIVER && o->nargs < 1)
			bad_arg("--add-driver needs an ID");
		if (o->mode == MODE_ADD_CP && o->nargs != 3)
			bad_arg("--add-cp needs exactly ID LOCATION PRICE (quote a LOCATION with spaces)");
		if (o->mode == MODE_IMPORT && o->nargs != 1)
			bad_arg("--import needs exactly one FILE");
		return;
	}
	if (npos < 2)
		bad_arg("missing %s", npos == 0 ? "<port>" : "<kafka_host:port>");
	if (npos > 3)
		bad_arg("too many arguments ('%s')", pos[3]);
	char err[NET_ERR_LEN];
	if (net_parse_port(pos[0], 0, &o->port, err) == -1)
		bad_arg("%s", err);
	char host[256];
	int kport;
	if (net_parse_hostport(pos[1], host, sizeof host, &kport, err) == -1)
		bad_arg("kafka: %s", err);
	o->kafka = pos[1];
	if (npos == 3) {
		if (o->db != NULL && strcmp(o->db, pos[2]) != 0)
			bad_arg("database given twice ('%s' and --db '%s')", pos[2], o->db);
		o->db = pos[2];
	}
	if (o->db == NULL)
		o->db = DEFAULT_DB;
}

/* ---- registration tools ---- */

static int run_tool(const struct opts *o)
{
	char err[STORE_ERR_LEN];
	struct store *s = store_open(o->db, err);
	if (s == NULL) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	int rc = 0, created = 0;
	switch (o->mode) {
	case MODE_ADD_DRIVER: {
		char name[512] = "";
		for (int i = 1; i < o->nargs; i++) {
			if (i > 1)
				xstrlcpy(name + strlen(name), " ", sizeof name - strlen(name));
			xstrlcpy(name + strlen(name), o->args[i], sizeof name - strlen(name));
		}
		rc = store_add_driver(s, o->args[0], name, &created, err);
		if (rc == 0)
			printf("%s driver %s%s%s\n", created ? "added" : "updated", o->args[0], name[0] ? " " : "",
			       name);
		break;
	}
	case MODE_ADD_CP: {
		double price;
		if (store_parse_price(o->args[2], &price) == -1) {
			snprintf(err, sizeof err, "invalid price '%s' (greater than 0, at most 100, '.' decimal point)",
				 o->args[2]);
			rc = -1;
			break;
		}
		rc = store_add_cp(s, o->args[0], o->args[1], price, &created, err);
		if (rc == 0)
			printf("%s cp %s %.4f %s\n", created ? "added" : "updated", o->args[0], price, o->args[1]);
		break;
	}
	case MODE_IMPORT: {
		int nd = 0, nc = 0;
		rc = store_import(s, o->args[0], &nd, &nc, err);
		if (rc == 0)
			printf("imported %d drivers and %d cps from %s\n", nd, nc, o->args[0]);
		break;
	}
	default:
		break;
	}
	store_close(s);
	if (rc == -1) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	return 0;
}

/* ---- the server ---- */

/* "pki/NAME" in the database's folder. Caller frees. */
static char *beside_db(const char *db, const char *name)
{
	const char *slash = strrchr(db, '/');
	if (slash == NULL)
		return xasprintf("pki/%s", name);
	return xasprintf("%.*s/pki/%s", (int)(slash - db), db, name);
}

/* The link port's TLS context (evcharging(7) SECURITY). NULL with err[0]
 * == '\0' when there are no certificate files and --plain-links says
 * plaintext alone is fine; NULL with err on a failure. Caller frees with
 * SSL_CTX_free. */
static SSL_CTX *link_tls(const struct opts *o, char err[256])
{
	char *cert = o->link_cert != NULL ? xstrdup(o->link_cert) : beside_db(o->db, "central.pem");
	char *key = o->link_key != NULL ? xstrdup(o->link_key) : beside_db(o->db, "central.key");
	SSL_CTX *ctx = NULL;
	err[0] = '\0';
	if (o->link_cert == NULL && o->link_key == NULL && access(cert, F_OK) == -1 && access(key, F_OK) == -1) {
		if (!o->plain_links) {
			char *dir = beside_db(o->db, "");
			dir[strlen(dir) - 1] = '\0'; /* no trailing '/' */
			snprintf(err, 256,
				 "no CP link certificate (%.60s, %.60s): create them with 'scripts/pki init %.40s', "
				 "give --link-cert/--link-key, or run with --plain-links",
				 cert, key, dir);
			free(dir);
		}
		goto out;
	}
	ctx = tls_server_ctx_new(cert, key, err);
out:
	free(cert);
	free(key);
	return ctx;
}

struct central {
	const struct opts *o;
	struct core *core;
	struct store *store;
	struct cplink *link;
	SSL_CTX *link_tls; /* NULL: plaintext links only */
	struct kafka_in *kin;
	struct kafka_out *kout;
	struct frontend *fe;
	struct central_status status;
	int kafka_known;
	struct core_fxlist fx;
	struct cplink_event *cev;
	struct kafka_in_item *kitems;
	size_t nkitems;
	int sfd;
	int quit;
	int db_failed;     /* writes kept failing: act on nothing more, exit 1 */
	double held_since; /* monotonic: offsets stored but not released, 0 = none */
	/* write_rows: which effects are the last row of their session */
	unsigned char *skip;
	size_t skip_cap;
	const char **slots;
	size_t slots_cap;
	double next_tick;
	unsigned long db_errors;
};

static struct core_fx *fx_push(struct core_fxlist *l)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	struct core_fx *x = &l->v[l->n++];
	memset(x, 0, sizeof *x);
	return x;
}

/* A line of main's own (LINK, KAFKA, BAD_MSG, ERROR) that travels with the
 * core's effects to the frontend. */
static void __attribute__((format(printf, 4, 5)))
note(struct central *c, enum log_level lvl, const char *tag, const char *fmt, ...)
{
	struct core_fx *x = fx_push(&c->fx);
	x->kind = CORE_FX_LOG;
	x->level = lvl;
	x->ts = clock_wall();
	xstrlcpy(x->event, tag, sizeof x->event);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->text, sizeof x->text, fmt, ap);
	va_end(ap);
}

static int exec_cmd(void *arg, const char *line, char msg[256])
{
	struct central *c = arg;
	int cmd;
	char cp[MSG_CP_ID_MAX + 1] = "";
	char err[CORE_ERR_LEN] = "";
	if (c->o->readonly) {
		snprintf(msg, 256, "read-only: commands are disabled (--readonly)");
		return -1;
	}
	if (core_parse_command(line, &cmd, cp, err) == -1) {
		snprintf(msg, 256, "%s", err);
		return -1;
	}
	if (cmd == -1) {
		c->quit = 1;
		snprintf(msg, 256, "quitting");
		return 0;
	}
	if (core_command(c->core, (enum core_cmd)cmd, cp, clock_wall(), &c->fx, err) == -1) {
		snprintf(msg, 256, "%s", err[0] ? err : "refused");
		return -1;
	}
	snprintf(msg, 256, "sent");
	return 0;
}

static void take_link_events(struct central *c)
{
	size_t n = cplink_drain(c->link, c->cev, BATCH_LINK);
	for (size_t i = 0; i < n; i++) {
		const struct cplink_event *e = &c->cev[i];
		double now = clock_wall();
		switch (e->kind) {
		case CPL_UP:
			note(c, LOG_INFO, "LINK", "up conn=%llu peer=%s kind=%s", (unsigned long long)e->conn, e->peer,
			     e->tls ? "tls" : "plain");
			break;
		case CPL_REFUSED:
			note(c, LOG_WARN, "LINK", "refused peer=%s reason=%s", e->peer, e->reason);
			break;
		case CPL_FRAME:
			core_on_frame(c->core, e->conn, e->data, now, &c->fx);
			break;
		case CPL_DOWN:
			note(c, LOG_INFO, "LINK", "down conn=%llu reason=%s", (unsigned long long)e->conn, e->reason);
			core_on_link_down(c->core, e->conn, e->reason, now, &c->fx);
			break;
		}
	}
}

static void take_kafka_items(struct central *c)
{
	size_t n = kafka_in_drain(c->kin, c->kitems + c->nkitems, BATCH_KAFKA - c->nkitems);
	for (size_t i = c->nkitems; i < c->nkitems + n; i++) {
		struct kafka_in_item *it = &c->kitems[i];
		if (it->bad) {
			c->status.kafka_bad++;
			note(c, LOG_WARN, "BAD_MSG", "topic=%s partition=%d offset=%lld reason=%s",
			     msg_topic_name(it->topic), (int)it->partition, (long long)it->offset, it->err);
			continue;
		}
		c->status.kafka_in++;
		core_on_kafka(c->core, &it->msg, clock_wall(), &c->fx);
	}
	c->nkitems += n;
}

static void take_kafka_state(struct central *c)
{
	int up;
	char reason[128];
	if (!kafka_in_get_state(c->kin, &up, reason, sizeof reason))
		return;
	if (c->kafka_known && up == c->status.kafka_up &&
	    (up || strcmp(reason, c->status.kafka_reason) == 0))
		return;
	c->kafka_known = 1;
	c->status.kafka_up = up;
	xstrlcpy(c->status.kafka_reason, up ? "" : reason, sizeof c->status.kafka_reason);
	if (up)
		note(c, LOG_INFO, "KAFKA", "up");
	else
		note(c, LOG_WARN, "KAFKA", "down reason=%s", reason);
}

static size_t hash_str(const char *p)
{
	size_t h = 1469598103934665603ULL;
	for (; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

/* Mark in c->skip every CORE_FX_STORE_SESSION followed, later in the same turn,
 * by another row of the same session. Each row is the whole session and the
 * store upserts it, so the last one alone leaves the same row: a telemetry
 * flood writes one row per session per turn, not one per message. */
static void mark_superseded_rows(struct central *c)
{
	size_t nsess = 0;
	for (size_t i = 0; i < c->fx.n; i++)
		nsess += c->fx.v[i].kind == CORE_FX_STORE_SESSION;
	if (c->skip_cap < c->fx.n) {
		c->skip_cap = c->fx.n * 2;
		c->skip = xrealloc(c->skip, c->skip_cap);
	}
	memset(c->skip, 0, c->fx.n);
	if (nsess < 2)
		return;
	size_t cap = 16;
	while (cap < nsess * 2)
		cap *= 2;
	if (c->slots_cap < cap) {
		c->slots_cap = cap;
		c->slots = xreallocarray(c->slots, cap, sizeof *c->slots);
	}
	memset(c->slots, 0, cap * sizeof *c->slots);
	for (size_t i = c->fx.n; i-- > 0;) {
		if (c->fx.v[i].kind != CORE_FX_STORE_SESSION)
			continue;
		const char *id = c->fx.v[i].session.id;
		size_t j = hash_str(id) & (cap - 1);
		while (c->slots[j] != NULL && strcmp(c->slots[j], id) != 0)
			j = (j + 1) & (cap - 1);
		if (c->slots[j] != NULL)
			c->skip[i] = 1;
		else
			c->slots[j] = id;
	}
}

/* Store the batch's rows in one transaction. A busy or full database gets a
 * few more tries (each waits up to the busy timeout), then -1. */
static int store_batch(struct central *c, char err[STORE_ERR_LEN])
{
	enum { ATTEMPTS = 4 };
	for (int attempt = 1;; attempt++) {
		int ok = store_begin(c->store, err) == 0;
		for (size_t i = 0; ok && i < c->fx.n; i++)
			if (!c->skip[i] && store_apply(c->store, &c->fx.v[i], err) == -1)
				ok = 0;
		if (ok && store_commit(c->store, err) == 0)
			return 0;
		store_rollback(c->store);
		if (attempt == ATTEMPTS)
			return -1;
		log_warn("database write failed (%s): try %d of %d", err, attempt + 1, ATTEMPTS);
		/* A back-off between retries of a failed write, not a wait for
		 * another party: the busy timeout already waited for locks. */
		poll(NULL, 0, 100 * attempt);
	}
}

/* Carry out the effects gathered this turn, in the order of the header
 * comment: store + commit, then act, then offsets, then show. */
static void apply_effects(struct central *c)
{
	char err[STORE_ERR_LEN];
	int stored = 1;
	int need_txn = 0;
	for (size_t i = 0; i < c->fx.n && !need_txn; i++)
		need_txn = c->fx.v[i].kind == CORE_FX_STORE_CP || c->fx.v[i].kind == CORE_FX_STORE_SESSION ||
			   c->fx.v[i].kind == CORE_FX_STORE_EVENT;
	if (c->db_failed) {
		/* The core is ahead of the database: nothing more may be acted
		 * on or acknowledged; shutdown is under way. */
		core_fxlist_clear(&c->fx);
		c->nkitems = 0;
		return;
	}
	if (need_txn) {
		mark_superseded_rows(c);
		stored = store_batch(c, err) == 0;
		if (!stored) {
			/* Fail-stop (Redis's stop-writes-on-error): the core has moved on
			 * but its effects could not be stored, so acting on them would
			 * tell drivers and CPs things the database does not hold. Nothing
			 * of this batch is sent, no offset is committed, and Central
			 * exits 1: a restart replays from the last stored state. */
			c->db_errors++;
			c->db_failed = 1;
			c->quit = 1;
			note(c, LOG_ERROR, "ERROR", "database: %s: writes keep failing; stopping without acting on this batch (a restart replays it)", err);
			core_fxlist_clear(&c->fx);
			c->nkitems = 0;
			return;
		}
	}
	double mono = clock_mono();
	for (size_t i = 0; i < c->fx.n; i++) {
		const struct core_fx *x = &c->fx.v[i];
		switch (x->kind) {
		case CORE_FX_SEND:
			cplink_send(c->link, x->conn, x->text);
			/* The core accepted a REGISTER: the link's register
			 * timeout (evcharging(7) SECURITY) no longer applies. */
			if (strncmp(x->text, "REGISTER_RESULT#", 16) == 0 && strncmp(x->text + 16, "DENIED", 6) != 0)
				cplink_registered(c->link, x->conn);
			break;
		case CORE_FX_CLOSE:
			cplink_close(c->link, x->conn, x->text);
			break;
		case CORE_FX_PRODUCE:
			kafka_out_queue(c->kout, &x->msg); /* encoded off this thread */
			break;
		case CORE_FX_STATUS:
			kafka_out_mark_dirty(c->kout, mono);
			break;
		default:
			break;
		}
	}
	if (stored && c->nkitems > 0) {
		kafka_in_done(c->kin, c->kitems, c->nkitems);
		if (c->held_since == 0)
			c->held_since = mono;
	}
	c->nkitems = 0;
	c->status.links = cplink_count(c->link);
	if (c->fx.n > 0)
		c->fe->ops->on_effects(c->fe, &c->fx);
	core_fxlist_clear(&c->fx);
}

/* Offsets are committed once the notifications of their batches are
 * delivered: librdkafka's out queue empty means everything produced so far
 * arrived. Under a steady flood the queue may never be empty, so after
 * OFFSET_HOLD_MAX seconds they are committed anyway (the cost: a crash in
 * that window may lose notifications, never double-count a session). */
#define OFFSET_HOLD_MAX 10.0
static void release_offsets(struct central *c, double mono)
{
	if (c->held_since == 0)
		return;
	if (kafka_out_pending(c->kout) == 0 || mono - c->held_since >= OFFSET_HOLD_MAX) {
		kafka_in_release(c->kin);
		c->held_since = 0;
	}
}

static void recover_one(void *arg, const struct core_session *s)
{
	struct central *c = arg;
	core_recover_session(c->core, s, clock_wall(), &c->fx);
}

static int setup_signals(char err[256])
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* Blocked before any thread starts, so every thread inherits the mask
	 * and the signals arrive only through the signalfd. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		snprintf(err, 256, "sigprocmask: %s", strerror(errno));
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd == -1)
		snprintf(err, 256, "signalfd: %s", strerror(errno));
	return fd;
}

static int serve(const struct opts *o)
{
	struct central cs;
	struct central *c = &cs;
	char err[256];
	int rc = 1;
	memset(c, 0, sizeof *c);
	c->o = o;
	c->sfd = -1;
	core_fxlist_init(&c->fx);
	const char *prefix = bus_prefix(o->prefix);

	snprintf(c->status.listen, sizeof c->status.listen, "0.0.0.0:%d", o->port);
	xstrlcpy(c->status.kafka, o->kafka, sizeof c->status.kafka);
	xstrlcpy(c->status.db, o->db, sizeof c->status.db);
	xstrlcpy(c->status.kafka_reason, "connecting", sizeof c->status.kafka_reason);
	c->status.started = clock_wall();

	/* One descriptor per CP link: 10,000 links need more than the usual
	 * soft limit of 1024. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)o->max_conns + 256) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)o->max_conns + 256
				      ? (rlim_t)o->max_conns + 256
				      : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("cannot raise the open file limit: %s", strerror(errno));
	}

	c->sfd = setup_signals(err);
	if (c->sfd == -1)
		goto fail;
	/* Before the database: a missing certificate creates nothing. */
	c->link_tls = link_tls(o, err);
	if (c->link_tls == NULL && err[0] != '\0')
		goto fail;

	c->store = store_open(o->db, err);
	if (c->store == NULL || store_start_checkpointer(c->store, err) == -1)
		goto fail;
	if (store_mark_all_disconnected(c->store, clock_wall(), err) == -1)
		goto fail;
	struct core_config cfg;
	core_config_defaults(&cfg);
	cfg.request_max_age = o->request_max_age;
	cfg.reservation_timeout = o->reservation_timeout;
	cfg.driver_known = store_driver_known;
	cfg.driver_known_arg = c->store;
	c->core = core_new(&cfg);
	int ncps = store_load_core(c->store, c->core, err);
	if (ncps < 0)
		goto fail;

	struct cplink_config lc;
	cplink_config_defaults(&lc);
	lc.port = o->port;
	lc.max_conns = o->max_conns;
	lc.heartbeat_timeout = o->heartbeat_timeout;
	lc.tls = c->link_tls;
	lc.plain_ok = o->plain_links;
	c->link = cplink_new(&lc, err);
	if (c->link == NULL)
		goto fail;
	snprintf(c->status.listen, sizeof c->status.listen, "0.0.0.0:%d", cplink_port(c->link));

	c->kin = kafka_in_new(o->kafka, prefix);
	char berr[BUS_ERR_LEN];
	c->kout = kafka_out_new(o->kafka, prefix, kafka_in_state_cb, c->kin, berr);
	if (c->kout == NULL) {
		snprintf(err, sizeof err, "kafka producer: %.200s", berr);
		goto fail;
	}

	/* The panel (issue 6) when a person is at a terminal; --headless, no
	 * terminal, or a terminal curses cannot drive gives the line console. */
	if (!o->headless && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
		char perr[256];
		c->fe = panel_new(c->core, &c->status, exec_cmd, c, o->readonly, o->no_color, perr);
		if (c->fe == NULL)
			log_warn("panel: %s; using the line console", perr);
	}
	if (c->fe == NULL) {
		c->fe = console_new(c->core, &c->status, o->json, o->readonly, exec_cmd, c);
		log_set_sink(console_log_sink, c->fe);
	}
	c->fe->readonly = o->readonly;

	if (cplink_start(c->link, err) == -1 || kafka_in_start(c->kin, err) == -1)
		goto fail;

	c->cev = xcalloc(BATCH_LINK, sizeof *c->cev);
	c->kitems = xcalloc(BATCH_KAFKA, sizeof *c->kitems);

	/* Sessions a crash left open end now, once, with the driver told. */
	if (store_foreach_open_session(c->store, recover_one, c, err) == -1)
		goto fail;
	note(c, LOG_INFO, "LINK", "port %d serves %s", cplink_port(c->link),
	     c->link_tls != NULL && o->plain_links ? "TLS and plaintext (--plain-links) links"
	     : c->link_tls != NULL                 ? "TLS links only"
						   : "plaintext links only (--plain-links, no certificate)");
	note(c, LOG_INFO, "READY", "listen=%s kafka=%s db=%s cps=%d prefix=%s", c->status.listen, o->kafka,
	     o->db, ncps, prefix[0] ? prefix : "-");
	apply_effects(c);

	c->next_tick = clock_mono() + 1.0;
	while (!c->quit) {
		struct pollfd pfd[4];
		int nfd = 0;
		int in_fd = c->fe->ops->input_fd(c->fe);
		pfd[nfd++] = (struct pollfd){ .fd = c->sfd, .events = POLLIN };
		pfd[nfd++] = (struct pollfd){ .fd = cplink_event_fd(c->link), .events = POLLIN };
		pfd[nfd++] = (struct pollfd){ .fd = kafka_in_event_fd(c->kin), .events = POLLIN };
		if (in_fd >= 0)
			pfd[nfd++] = (struct pollfd){ .fd = in_fd, .events = POLLIN };
		double mono = clock_mono();
		int timeout = clock_ms_until(c->next_tick, 1000);
		int t2 = c->fe->ops->timeout_ms(c->fe);
		if (t2 >= 0 && t2 < timeout)
			timeout = t2;
		timeout = kafka_out_timeout_ms(c->kout, mono, timeout);
		if (c->held_since != 0 && timeout > 20)
			timeout = 20; /* look again at the producer's queue soon */
		int r = poll(pfd, (nfds_t)nfd, timeout);
		if (r == -1 && errno != EINTR) {
			snprintf(err, sizeof err, "poll: %s", strerror(errno));
			goto fail;
		}
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;
			while (read(c->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				char why[64];
				snprintf(why, sizeof why, "signal %s", strsignal((int)si.ssi_signo));
				note(c, LOG_INFO, "SHUTDOWN", "reason=%s", why);
				c->quit = 1;
			}
		}
		if (r > 0 && (pfd[1].revents & POLLIN))
			take_link_events(c);
		if (r > 0 && (pfd[2].revents & POLLIN)) {
			take_kafka_items(c);
			take_kafka_state(c);
		}
		if (r > 0 && in_fd >= 0 && (pfd[3].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (c->fe->ops->on_input(c->fe)) {
				note(c, LOG_INFO, "SHUTDOWN", "reason=operator");
				c->quit = 1;
			}
		}
		double wall = clock_wall();
		mono = clock_mono();
		if (mono >= c->next_tick) {
			core_on_tick(c->core, wall, &c->fx);
			c->next_tick = mono + 1.0;
		}
		apply_effects(c);
		kafka_out_tick(c->kout, c->core, mono, wall, c->status.kafka_up);
		release_offsets(c, mono);
		c->fe->ops->refresh(c->fe, wall);
	}

	/* Clean shutdown: EOT to every CP, the last events stored, the offsets
	 * of everything stored committed, then the database closed. */
	cplink_shutdown(c->link);
	kafka_in_stop(c->kin);
	for (;;) {
		size_t before = c->fx.n;
		take_link_events(c);
		take_kafka_items(c);
		if (c->fx.n == before && c->nkitems == 0)
			break;
		apply_effects(c);
	}
	apply_effects(c);
	rc = c->db_failed ? 1 : 0;
	goto out;
fail:
	rc = 1;
out:
	/* The screen goes first: the terminal is the operator's again before
	 * the error below is printed, and no frozen panel waits on Kafka. */
	if (c->fe != NULL) {
		log_set_sink(NULL, NULL);
		c->fe->ops->free(c->fe);
		c->fe = NULL;
	}
	if (rc == 1)
		fprintf(stderr, PROG ": %s\n",
			c->db_failed ? "database writes keep failing: stopped without acting on the last batch "
				       "(a restart replays it from the last stored state)"
				     : err);
	/* Producer first: flushing delivers the last notifications, then the
	 * consumer commits the offsets of what produced them. */
	kafka_out_free(c->kout, 2000);
	kafka_in_free(c->kin);
	cplink_free(c->link);
	SSL_CTX_free(c->link_tls);
	core_free(c->core);
	store_close(c->store);
	core_fxlist_free(&c->fx);
	free(c->cev);
	free(c->kitems);
	free(c->skip);
	free(c->slots);
	if (c->sfd != -1)
		close(c->sfd);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	log_set_progname(PROG);
	parse_args(argc, argv, &o);
	if (o.mode != MODE_SERVE)
		return run_tool(&o);
	return serve(&o);
}
