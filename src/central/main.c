/* EV_Central: arguments, the registration tools, and the server's open /
 * loop / close (one turn of the loop is turn.c).
 *
 * Threads: the cplink worker (CP sockets), the Kafka consumer (kafka_in),
 * the publisher (kafka_out: encodes and produces what this thread queues),
 * the store's checkpointer (own connection), librdkafka's own threads, and
 * this main thread, the only one that touches the core, the store's
 * connection and the frontend. */
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
#include <time.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "evc/bus.h"
#include "evc/clock.h"
#include "evc/config.h"
#include "evc/evline.h"
#include "evc/fernet.h"
#include "evc/hmap.h"
#include "evc/log.h"
#include "evc/money.h"
#include "evc/net.h"
#include "evc/notify.h"
#include "evc/version.h"
#include "evc/tls.h"
#include "evc/xalloc.h"
#include "src/central/api.h"
#include "src/central/apiwire.h"
#include "src/central/console.h"
#include "src/central/core.h"
#include "src/central/cplink.h"
#include "src/central/ctl.h"
#include "src/central/ctl_client.h"
#include "src/central/frontend.h"
#include "src/central/kafka_in.h"
#include "src/central/kafka_out.h"
#include "src/central/keytab.h"
#include "src/central/panel_fe.h"
#include "src/central/service.h"
#include "src/central/turn.h"
#include "src/central/store.h"

#define PROG "EV_Central"
#define DEFAULT_DB "./evcharging.db"

enum mode { MODE_SERVE, MODE_ADD_DRIVER, MODE_ADD_CP, MODE_IMPORT, MODE_AUDIT };

struct opts {
	enum mode mode;
	int port;
	const char *kafka;
	const char *db;
	int headless, readonly, no_color, json;
	int no_mouse;                     /* the panel ignores the mouse */
	const char *prefix;
	double heartbeat_timeout, request_max_age, reservation_timeout, supply_timeout, link_grace;
	double group_commit_ms;           /* --group-commit: 0 = every turn commits at once */
	int max_conns;
	const char *link_cert, *link_key; /* NULL: pki/central.{pem,key} beside the db */
	int plain_links;                  /* serve Release-1 plaintext links too */
	double since;           /* --audit --since */
	const char *audit_cp;   /* --audit --cp */
	const char *args[8]; /* tool arguments */
	int nargs;
	const char *listen;   /* --listen: bind address of the link port, NULL = all */
	const char *control;  /* --control: the control socket, NULL = <db>.ctl */
	const char *log_file; /* --log-file */
	const char *pki;      /* the configuration's pki folder (the TLS files' default) */
	int api_port;         /* --api PORT: 0 none (a port of 0 is refused) */
	const char *api_listen, *api_tokens;
	double weather_threshold;
	struct config conf;
};

static const char *pki_dir; /* the configuration's pki folder, NULL: pki/ beside the db */

/* Every option, for the parser and for shell completion (--list-options):
 * an option missing here is refused as unknown. */
static const struct central_opt {
	const char *name;
	int takes_value;
} central_opts[] = {
	{ "--help", 0 },	      { "-h", 0 },
	{ "--version", 0 },	      { "-V", 0 },
	{ "--headless", 0 },	      { "--readonly", 0 },
	{ "--no-color", 0 },	      { "--topic-prefix", 1 },
	{ "--log-format", 1 },	      { "--heartbeat-timeout", 1 },
	{ "--request-max-age", 1 },   { "--reservation-timeout", 1 },
	{ "--max-conns", 1 },	      { "--db", 1 },
	{ "--add-driver", 0 },	      { "--add-cp", 0 },
	{ "--import", 0 },	      { "--listen", 1 },
	{ "--control", 1 },	      { "--log-file", 1 },
	{ "--config", 1 },	      { "--list-options", 0 },
	{ "--supply-timeout", 1 },    { "--link-grace", 1 },
	{ "--link-cert", 1 },	      { "--link-key", 1 },
	{ "--plain-links", 0 },	      { "--audit", 0 },
	{ "--since", 1 },	      { "--cp", 1 },
	{ "--no-mouse", 0 },	      { "--api", 1 },
	{ "--api-listen", 1 },	      { "--api-tokens", 1 },
	{ "--weather-threshold", 1 }, { "--group-commit", 1 },
};

static const struct central_opt *find_opt(const char *name)
{
	for (size_t i = 0; i < sizeof central_opts / sizeof central_opts[0]; i++)
		if (strcmp(central_opts[i].name, name) == 0)
			return &central_opts[i];
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " <port> [kafka_host:port] [db_path] [options]\n"
		"       " PROG " --add-driver ID [NAME...] [--db PATH]\n"
		"       " PROG " --add-cp ID LOCATION PRICE [--db PATH]\n"
		"       " PROG " --import FILE [--db PATH]\n"
		"       " PROG " ctl [--control PATH | --db PATH] [--json] COMMAND   (" PROG " ctl --help)\n"
		"       " PROG " attach [--control PATH | --db PATH] [--no-color]\n"
		"       " PROG " --audit [--since TS] [--cp ID] [--db PATH]\n"
		"       " PROG " --help | --version\n"
		"options:\n"
		"  --headless                 line console on stdin/stdout instead of the panel\n"
		"  --topic-prefix P           prefix of every topic and group (default $EVC_TOPIC_PREFIX or none)\n"
		"  --log-format text|json     console line format (default text)\n"
		"  --heartbeat-timeout S      close a CP link silent for S seconds (default 3, 0 = never)\n"
		"  --request-max-age S        deny charge requests older than S seconds (default 60)\n"
		"  --reservation-timeout S    cancel an authorised session not plugged in after S s (default 120)\n"
		"  --supply-timeout S         end a supply with no telemetry for S s (default 10)\n"
		"  --link-grace S             keep a session open S s after its CP's link is lost (default 10)\n"
		"  --group-commit MS          gather changes up to MS ms after the last commit into one\n"
		"                             (one fsync for many; each waits at most MS; default 0 = off)\n"
		"  --max-conns N              most CP link connections (default 10000)\n"
		"  --link-cert F, --link-key F  TLS certificate and key of the CP link port\n"
		"                             (default pki/central.pem, pki/central.key beside the db)\n"
		"  --plain-links              also serve Release-1 plaintext CP links (without\n"
		"                             certificate files: plaintext links only)\n"
		"  --api PORT                 serve the HTTPS API, /metrics and the web page on PORT\n"
		"                             (Central's certificate, the --link-cert one)\n"
		"  --api-listen ADDR          bind address of the API (default 127.0.0.1)\n"
		"  --api-tokens FILE          the API's tokens: NAME ROLE TOKEN lines, mode 0600 (needed by --api)\n"
		"  --weather-threshold C      a city's reading below C degrees stops its CPs (default 0)\n"
		"  --readonly                 refuse operator commands\n"
		"  --no-color                 panel without colours (also NO_COLOR)\n"
		"  --no-mouse                 panel without mouse clicks (keys only)\n"
		"  --db PATH                  database (default " DEFAULT_DB "; or the third argument)\n"
		"  --listen ADDR              bind address of the CP link port (default all: 0.0.0.0)\n"
		"  --control PATH             control socket (default <db>.ctl beside the database)\n"
		"  --log-file PATH            console lines to PATH (headless; the panel's after a hangup,\n"
		"                             default <db>.log); SIGHUP reopens it\n"
		"  --config FILE              configuration file (default " CONFIG_DEFAULT_PATH " if present)\n"
		"  --list-options             print every option, one a line (shell completion)\n"
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

/* Epoch seconds, or a local date and time "2026-12-01T20:06[:02]". */
static int parse_when(const char *v, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (v[0] != '\0' && *end == '\0' && errno == 0 && isfinite(d) && d >= 0) {
		*out = d;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *r = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
	if (r == NULL || *r != '\0') {
		memset(&tm, 0, sizeof tm);
		r = strptime(v, "%Y-%m-%dT%H:%M", &tm);
	}
	if (r == NULL || *r != '\0')
		return -1;
	tm.tm_isdst = -1;
	time_t t = mktime(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = (double)t;
	return 0;
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
	o->supply_timeout = 10;
	o->link_grace = 10;
	o->max_conns = 10000;
	const char *format = NULL;
	const char *config_path = NULL;

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
		if (find_opt(name) == NULL)
			bad_arg("unknown option '%s'", a);
		if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
			version_print(stdout, PROG);
			exit(0);
		} else if (strcmp(name, "--list-options") == 0) {
			/* one a line, " ARG" when it takes a value; then the
			 * subcommands, whose own lists they print */
			for (size_t k = 0; k < sizeof central_opts / sizeof central_opts[0]; k++)
				printf("%s%s%s\n", central_opts[k].name, central_opts[k].takes_value ? " ARG" : "",
				       strcmp(central_opts[k].name, "--log-format") == 0 ? " text json" : "");
			printf("ctl\nattach\n");
			exit(0);
		} else if (strcmp(name, "--listen") == 0) {
			TAKE_VAL();
			o->listen = val;
		} else if (strcmp(name, "--control") == 0) {
			TAKE_VAL();
			o->control = val;
		} else if (strcmp(name, "--log-file") == 0) {
			TAKE_VAL();
			o->log_file = val;
		} else if (strcmp(name, "--config") == 0) {
			TAKE_VAL();
			config_path = val;
		} else if (strcmp(name, "--headless") == 0) {
			NO_VAL();
			o->headless = 1;
		} else if (strcmp(name, "--readonly") == 0) {
			NO_VAL();
			o->readonly = 1;
		} else if (strcmp(name, "--no-color") == 0) {
			NO_VAL();
			o->no_color = 1;
		} else if (strcmp(name, "--no-mouse") == 0) {
			NO_VAL();
			o->no_mouse = 1;
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
		} else if (strcmp(name, "--supply-timeout") == 0) {
			TAKE_VAL();
			o->supply_timeout = parse_secs(name, val, 0);
		} else if (strcmp(name, "--link-grace") == 0) {
			TAKE_VAL();
			o->link_grace = parse_secs(name, val, 1);
		} else if (strcmp(name, "--group-commit") == 0) {
			TAKE_VAL();
			char *end;
			errno = 0;
			double ms = strtod(val, &end);
			if (val[0] == '\0' || *end != '\0' || errno != 0 || !(ms >= 0 && ms <= 1000))
				bad_arg("--group-commit: invalid number of milliseconds '%s' (0..1000)", val);
			o->group_commit_ms = ms;
		} else if (strcmp(name, "--max-conns") == 0) {
			TAKE_VAL();
			char *end;
			errno = 0;
			long n = strtol(val, &end, 10);
			if (val[0] == '\0' || *end != '\0' || errno != 0 || n < 1 || n > 1000000)
				bad_arg("--max-conns: invalid count '%s' (1..1000000)", val);
			o->max_conns = (int)n;
		} else if (strcmp(name, "--api") == 0) {
			TAKE_VAL();
			char nerr[EVC_ERR_LEN];
			if (net_parse_port(val, 0, &o->api_port, nerr) == -1)
				bad_arg("--api: %s", nerr);
		} else if (strcmp(name, "--api-listen") == 0) {
			TAKE_VAL();
			char host[256], nerr[EVC_ERR_LEN];
			if (net_parse_host(val, host, sizeof host, nerr) == -1)
				bad_arg("--api-listen: %s", nerr);
			o->api_listen = val;
		} else if (strcmp(name, "--api-tokens") == 0) {
			TAKE_VAL();
			o->api_tokens = val;
		} else if (strcmp(name, "--weather-threshold") == 0) {
			TAKE_VAL();
			char *end;
			errno = 0;
			double d = strtod(val, &end);
			if (val[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(d) || d < CORE_WEATHER_MIN ||
			    d > CORE_WEATHER_MAX)
				bad_arg("--weather-threshold: expected degrees C from %g to %g, not '%s'", CORE_WEATHER_MIN,
					CORE_WEATHER_MAX, val);
			o->weather_threshold = d;
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
		} else if (strcmp(name, "--audit") == 0) {
			NO_VAL();
			if (tool)
				bad_arg("only one of --add-driver, --add-cp, --import, --audit at a time");
			tool = 1;
			o->mode = MODE_AUDIT;
		} else if (strcmp(name, "--since") == 0) {
			TAKE_VAL();
			if (parse_when(val, &o->since) == -1)
				bad_arg("--since: expected epoch seconds or YYYY-MM-DDTHH:MM[:SS] (local time), not '%s'", val);
		} else if (strcmp(name, "--cp") == 0) {
			TAKE_VAL();
			if (!msg_valid_cp_id(val))
				bad_arg("--cp: invalid CP id '%s'", val);
			o->audit_cp = val;
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
	enum evline_format ef = EVLINE_TEXT;
	if (format != NULL && evline_parse_format(format, &ef) == -1)
		bad_arg("--log-format: expected text or json, not '%s'", format);
	char cerr[EVC_ERR_LEN];
	if (config_load(&o->conf, config_path, PROG, cerr) == -1) {
		/* A bad configuration is the operator's input, like an argument. */
		fprintf(stderr, PROG ": %s\n", cerr);
		exit(2);
	}
	if (format == NULL && o->conf.log_format != NULL)
		evline_parse_format(o->conf.log_format, &ef);
	o->json = ef == EVLINE_JSON;
	evline_set_format(ef);
	o->pki = o->conf.pki;
	pki_dir = o->pki;
	if (o->db == NULL && npos < 3)
		o->db = o->conf.database;
	o->prefix = config_topic_prefix(&o->conf, o->prefix);
	if (o->listen != NULL) {
		char host[256], nerr[EVC_ERR_LEN];
		if (net_parse_host(o->listen, host, sizeof host, nerr) == -1)
			bad_arg("--listen: %s", nerr);
	}

	if (o->mode != MODE_SERVE) {
		if (o->db == NULL)
			o->db = DEFAULT_DB;
		for (int i = 0; i < npos; i++)
			o->args[o->nargs++] = pos[i];
		if (o->mode == MODE_ADD_DRIVER && o->nargs < 1)
			bad_arg("--add-driver needs an ID");
		/* Checked before the database is opened: a bad id creates no
		 * file. */
		if (o->mode == MODE_ADD_DRIVER && !msg_valid_user_id(o->args[0]))
			bad_arg("--add-driver: invalid driver id '%s' (1 to 64 of A-Z a-z 0-9 _ . @ -)", o->args[0]);
		if (o->mode == MODE_ADD_CP && o->nargs != 3)
			bad_arg("--add-cp needs exactly ID LOCATION PRICE (quote a LOCATION with spaces)");
		if (o->mode == MODE_ADD_CP && !msg_valid_cp_id(o->args[0]))
			bad_arg("--add-cp: invalid CP id '%s' (1 to 32 of A-Z a-z 0-9 _ -)", o->args[0]);
		if (o->mode == MODE_IMPORT && o->nargs != 1)
			bad_arg("--import needs exactly one FILE");
		if (o->mode == MODE_AUDIT && o->nargs != 0)
			bad_arg("--audit takes no argument ('%s'): use --db, --since, --cp", o->args[0]);
		return;
	}
	if (o->api_port != 0 && o->api_tokens == NULL)
		bad_arg("--api needs --api-tokens FILE (NAME ROLE TOKEN lines; every request needs a token)");
	if (o->api_port == 0 && (o->api_tokens != NULL || o->api_listen != NULL))
		bad_arg("%s without --api PORT", o->api_tokens != NULL ? "--api-tokens" : "--api-listen");
	if (npos == 1 && o->conf.broker != NULL)
		pos[npos++] = o->conf.broker;
	if (npos < 2)
		bad_arg("missing %s", npos == 0 ? "<port>"
					  : "<kafka_host:port> (or a broker in the configuration file)");
	if (npos > 3)
		bad_arg("too many arguments ('%s')", pos[3]);
	char err[EVC_ERR_LEN];
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

static void print_audit(void *arg, const struct store_audit_row *r)
{
	(void)arg;
	char ts[40];
	clock_format(r->ts, ts, sizeof ts);
	printf("%s %s actor=%s ip=%s cp=%s %s\n", ts, r->action, r->actor, r->source_ip[0] ? r->source_ip : "-",
	       r->cp_id[0] ? r->cp_id : "-", r->detail);
}

static int run_tool(const struct opts *o)
{
	char err[EVC_ERR_LEN];
	if (o->mode == MODE_AUDIT) {
		/* Read-only: printing the log must never create or change a
		 * database. */
		if (store_audit_read(o->db, o->since, o->audit_cp, print_audit, NULL, err) < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			return 1;
		}
		return 0;
	}
	if (service_check_folder(o->db, err) == -1) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
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
		if (money_parse_price(o->args[2], &price, NULL) != 0) {
			snprintf(err, sizeof err, "invalid price '%s' (greater than 0, at most 100, '.' decimal point)",
				 o->args[2]);
			rc = -1;
			break;
		}
		rc = store_add_cp(s, o->args[0], o->args[1], price, &created, err);
		if (rc == 0)
			printf("%s cp %s %s %s\n", created ? "added" : "updated", o->args[0],
			       money_price((char[MONEY_STR_LEN]){ 0 }, MONEY_STR_LEN, price), o->args[1]);
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
	if (pki_dir != NULL)
		return xasprintf("%s/%s", pki_dir, name);
	const char *slash = strrchr(db, '/');
	if (slash == NULL)
		return xasprintf("pki/%s", name);
	return xasprintf("%.*s/pki/%s", (int)(slash - db), db, name);
}

/* The link port's TLS context (evcharging(7) SECURITY). NULL with err[0]
 * == '\0' when there are no certificate files and --plain-links says
 * plaintext alone is fine; NULL with err on a failure. Caller frees with
 * SSL_CTX_free. */
static SSL_CTX *link_tls(const struct opts *o, char err[EVC_ERR_LEN])
{
	char *cert = o->link_cert != NULL ? xstrdup(o->link_cert) : beside_db(o->db, "central.pem");
	char *key = o->link_key != NULL ? xstrdup(o->link_key) : beside_db(o->db, "central.key");
	SSL_CTX *ctx = NULL;
	err[0] = '\0';
	if (o->link_cert == NULL && o->link_key == NULL && access(cert, F_OK) == -1 && access(key, F_OK) == -1) {
		if (!o->plain_links) {
			char *dir = beside_db(o->db, "");
			dir[strlen(dir) - 1] = '\0'; /* no trailing '/' */
			snprintf(err, EVC_ERR_LEN,
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

static int setup_signals(char err[EVC_ERR_LEN])
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* Blocked before any thread starts, so every thread inherits the mask
	 * and the signals arrive only through the signalfd. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		snprintf(err, EVC_ERR_LEN, "sigprocmask: %s", strerror(errno));
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd == -1)
		snprintf(err, EVC_ERR_LEN, "signalfd: %s", strerror(errno));
	return fd;
}

static void load_cp(void *arg, const struct core_cp_row *r)
{
	core_load_cp(arg, r->id, r->location, r->price, r->stopped);
}

static void load_driver(void *arg, const char *id)
{
	core_add_driver(arg, id);
}

static void load_reg(void *arg, const struct core_reg *r)
{
	core_load_reg(arg, r);
}

/* A CP's new Fernet key (evcharging(7) SECURITY): 32 bytes from getrandom. */
static int new_key(void *arg, char out[45])
{
	(void)arg;
	char err[EVC_ERR_LEN];
	if (fernet_key_new(out, err) == -1) {
		log_error("cannot make a key: %s", err);
		return -1;
	}
	return 0;
}

static void load_request(void *arg, const char *user_id, const char *request_id, double seen_at)
{
	core_load_request(arg, user_id, request_id, seen_at, clock_wall());
}

/* One descriptor per CP link: 10,000 links need more than the usual soft
 * limit of 1024. */
static void raise_fd_limit(int max_conns)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)max_conns + 256) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)max_conns + 256
				      ? (rlim_t)max_conns + 256
				      : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("cannot raise the open file limit: %s", strerror(errno));
	}
}

/* The HTTPS API (EV_Central(1) API): Central's certificate (the link
 * port's), the database read-only for its history answers. Bound and
 * started before READY, so a taken port or a bad file stops the start. */
static int open_api(struct central *c, const struct opts *o, char err[EVC_ERR_LEN])
{
	if (o->api_port == 0)
		return 0;
	char *cert = o->link_cert != NULL ? xstrdup(o->link_cert) : beside_db(o->db, "central.pem");
	char *key = o->link_key != NULL ? xstrdup(o->link_key) : beside_db(o->db, "central.key");
	struct api_config ac;
	memset(&ac, 0, sizeof ac);
	ac.listen = o->api_listen != NULL ? o->api_listen : "127.0.0.1";
	ac.port = o->api_port;
	ac.cert_file = cert;
	ac.key_file = key;
	ac.tokens_file = o->api_tokens;
	ac.db_path = o->db;
	ac.answer_timeout = 5;
	char aerr[EVC_ERR_LEN];
	struct api *a = api_new(&ac, aerr);
	free(cert);
	free(key);
	if (a == NULL || api_start(a, aerr) == -1) {
		api_free(a);
		evc_seterr(err, "API: %.200s", aerr);
		return -1;
	}
	c->aw = apiwire_new(a);
	char host[256], addr[300], nerr[EVC_ERR_LEN];
	if (net_parse_host(ac.listen, host, sizeof host, nerr) == -1)
		xstrlcpy(host, ac.listen, sizeof host);
	net_format_hostport(host, api_port(a), addr, sizeof addr);
	turn_note(c, LOG_INFO, "API", "https://%s serves the API, /metrics and the web page", addr);
	return 0;
}

/* Everything the loop needs, in dependency order; on failure what was
 * opened stays for central_close. */
static int central_open(struct central *c, const struct opts *o, char err[EVC_ERR_LEN])
{
	memset(c, 0, sizeof *c);
	c->readonly = o->readonly;
	c->json = o->json;
	c->sfd = -1;
	c->lock_fd = -1;
	core_fxlist_init(&c->fx);
	const char *prefix = bus_prefix(o->prefix);
	char bind_host[256] = "0.0.0.0";
	if (o->listen != NULL) {
		char nerr[EVC_ERR_LEN];
		net_parse_host(o->listen, bind_host, sizeof bind_host, nerr); /* checked by parse_args */
	}
	net_format_hostport(bind_host, o->port, c->status.listen, sizeof c->status.listen);
	xstrlcpy(c->status.kafka, o->kafka, sizeof c->status.kafka);
	xstrlcpy(c->status.db, o->db, sizeof c->status.db);
	xstrlcpy(c->status.kafka_reason, "connecting", sizeof c->status.kafka_reason);
	c->status.started = clock_wall();
	raise_fd_limit(o->max_conns);

	/* One Central per database: before anything touches it. */
	if (service_lock(o->db, &c->lock_fd, err) == -1)
		return -1;
	char *ctl_path = o->control != NULL ? xstrdup(o->control) : service_beside_db(o->db, ".ctl");
	c->ctl = ctl_new(ctl_path, err);
	free(ctl_path);
	if (c->ctl == NULL)
		return -1;
	c->log_file = o->log_file != NULL ? xstrdup(o->log_file) : service_beside_db(o->db, ".log");
	c->sfd = setup_signals(err);
	if (c->sfd == -1)
		return -1;
	/* Before the database: a missing certificate creates nothing. */
	c->link_tls = link_tls(o, err);
	if (c->link_tls == NULL && err[0] != '\0')
		return -1;
	c->store = store_open(o->db, err);
	if (c->store == NULL || store_start_checkpointer(c->store, err) == -1)
		return -1;
	if (store_mark_all_disconnected(c->store, clock_wall(), err) == -1)
		return -1;
	struct core_config cfg;
	core_config_defaults(&cfg);
	cfg.request_max_age = o->request_max_age;
	cfg.reservation_timeout = o->reservation_timeout;
	cfg.supply_timeout = o->supply_timeout;
	cfg.link_grace = o->link_grace;
	cfg.driver_known = store_driver_known;
	cfg.driver_known_arg = c->store;
	cfg.new_key = new_key;
	cfg.plain_links = o->plain_links;
	cfg.weather_threshold = o->weather_threshold;
	c->core = core_new(&cfg);
	core_set_mono(c->core, clock_mono());
	int ncps = store_foreach_cp(c->store, load_cp, c->core, err);
	if (ncps < 0 || store_foreach_driver(c->store, load_driver, c->core, err) < 0)
		return -1;
	/* The registry's side of every CP (credentials, keys, revocations),
	 * then the keys into the table the consumer thread reads. */
	c->reg_data_version = store_data_version(c->store);
	c->reg_rev = store_foreach_reg(c->store, -1, load_reg, c->core, err);
	if (c->reg_rev < 0)
		return -1;
	c->keys = keytab_new();
	for (size_t i = 0; i < core_cp_count(c->core); i++) {
		const struct core_cp *cp = core_cp_at(c->core, i);
		if (cp->key[0])
			keytab_set_key(c->keys, cp->id, cp->key);
		keytab_set_plain(c->keys, cp->id, core_cp_release1(c->core, cp));
	}
	double now = clock_wall();
	if (store_foreach_request(c->store, now - 2 * o->request_max_age, load_request, c->core, err) < 0)
		return -1;

	struct cplink_config lc;
	cplink_config_defaults(&lc);
	lc.host = o->listen != NULL ? bind_host : NULL;
	lc.port = o->port;
	lc.max_conns = o->max_conns;
	lc.heartbeat_timeout = o->heartbeat_timeout;
	lc.tls = c->link_tls;
	lc.plain_ok = o->plain_links;
	c->link = cplink_new(&lc, err);
	if (c->link == NULL)
		return -1;
	net_format_hostport(bind_host, cplink_port(c->link), c->status.listen, sizeof c->status.listen);

	char berr[EVC_ERR_LEN];
	c->kout = kafka_out_new(o->kafka, prefix, berr);
	if (c->kout == NULL) {
		evc_seterr(err, "kafka producer: %.200s", berr);
		return -1;
	}
	c->kin = kafka_in_new(o->kafka, prefix, kafka_out_state_cb, c->kout, err);
	if (c->kin == NULL)
		return -1;
	kafka_in_set_keys(c->kin, c->keys);

	/* The panel when a person is at a terminal; --headless, no
	 * terminal, or a terminal curses cannot drive gives the line console. */
	/* Headless with --log-file: the console writes there from the start
	 * (a service's stdin is /dev/null anyway). */
	if (o->log_file != NULL && (o->headless || !isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))) {
		if (service_log_open(c->log_file, 0, err) == -1)
			return -1;
		c->log_active = 1;
	}
	if (!c->log_active && !o->headless && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
		char perr[EVC_ERR_LEN];
		c->fe = panel_fe_new(c->core, &c->status, turn_exec, c, o->readonly, o->no_color, perr);
		if (c->fe == NULL)
			log_warn("panel: %s; using the line console", perr);
		else if (o->no_mouse)
			panel_fe_set_mouse(c->fe, 0);
	}
	if (c->fe == NULL) {
		c->fe = console_new(c->core, &c->status, o->json, o->readonly, turn_exec, c);
		log_set_sink(console_log_sink, c->fe);
	}
	c->fe->readonly = o->readonly;

	if (open_api(c, o, err) == -1 || cplink_start(c->link, err) == -1 || kafka_in_start(c->kin, err) == -1)
		return -1;
	c->cev = xcalloc(TURN_BATCH_LINK, sizeof *c->cev);
	c->kitems = xcalloc(TURN_BATCH_KAFKA, sizeof *c->kitems);
	c->group_commit = o->group_commit_ms / 1000.0;

	/* Sessions a crash left open end now, once, with the driver told. */
	if (store_foreach_open_session(c->store, turn_recover_session, c, err) == -1)
		return -1;
	turn_note(c, LOG_INFO, "LINK", "port %d serves %s", cplink_port(c->link),
		  c->link_tls != NULL && o->plain_links ? "TLS and plaintext (--plain-links) links"
		  : c->link_tls != NULL                 ? "TLS links only"
							: "plaintext links only (--plain-links, no certificate)");
	turn_note(c, LOG_INFO, "READY", "listen=%s kafka=%s db=%s cps=%d prefix=%s", c->status.listen, o->kafka,
		  o->db, ncps, prefix[0] ? prefix : "-");
	turn_apply(c);
	notify_state("READY=1");
	c->next_tick = clock_mono() + 1.0;
	return 0;
}

static int central_loop(struct central *c, char err[EVC_ERR_LEN])
{
	while (!c->quit) {
		struct pollfd pfd[TURN_NFDS];
		int timeout = turn_prepare(c, pfd);
		int r = poll(pfd, TURN_NFDS, timeout);
		if (r == -1 && errno != EINTR) {
			evc_seterr(err, "poll: %s", strerror(errno));
			return -1;
		}
		if (r == -1)
			for (int i = 0; i < TURN_NFDS; i++)
				pfd[i].revents = 0;
		turn_run(c, pfd);
	}
	notify_state("STOPPING=1");
	/* Clean shutdown: no more API commands (503), EOT to every CP, the
	 * last events stored, the offsets of everything stored committed,
	 * then the database closed. */
	apiwire_free(c->aw);
	c->aw = NULL;
	cplink_shutdown(c->link);
	kafka_in_stop(c->kin);
	turn_drain(c);
	return c->db_failed ? -1 : 0;
}

static void central_close(struct central *c, int failed, const char *err)
{
	/* The screen goes first: the terminal is the operator's again before
	 * the error below is printed, and no frozen panel waits on Kafka. */
	if (c->fe != NULL) {
		log_set_sink(NULL, NULL);
		c->fe->ops->free(c->fe);
		c->fe = NULL;
	}
	if (failed)
		fprintf(stderr, PROG ": %s\n",
			c->db_failed ? "database writes keep failing: stopped without acting on the last batch "
				       "(a restart replays it from the last stored state)"
				     : err);
	/* Producer first: flushing delivers the last notifications, then the
	 * consumer commits the offsets of what produced them. */
	apiwire_free(c->aw); /* if the loop never ran */
	c->aw = NULL;
	kafka_in_stop(c->kin); /* its thread reports the broker's state to kout */
	kafka_out_drain(c->kout, 2000);
	if (c->store != NULL && c->kout != NULL)
		turn_outbox_settle(c);
	kafka_out_free(c->kout, 0);
	kafka_in_free(c->kin);
	cplink_free(c->link);
	ctl_free(c->ctl, failed ? "Central failed" : "Central stopped");
	SSL_CTX_free(c->link_tls);
	core_free(c->core);
	store_close(c->store);
	core_fxlist_free(&c->fx);
	free(c->cev);
	free(c->kitems);
	hmap_free(&c->seen_sessions);
	hmap_free(&c->outbox_inflight);
	void *v;
	for (size_t i = 0; (v = hmap_next(&c->rejects, &i)) != NULL;)
		free(v);
	hmap_free(&c->rejects);
	keytab_free(c->keys); /* after the consumer thread is gone */
	free(c->delivered);
	for (size_t i = 0; i < c->nobn; i++)
		free(c->obn[i].payload);
	free(c->obn);
	if (c->sfd != -1)
		close(c->sfd);
	free(c->log_file);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
}

static int serve(const struct opts *o)
{
	struct central c;
	char err[EVC_ERR_LEN] = "";
	int rc = central_open(&c, o, err) == 0 && central_loop(&c, err) == 0 ? 0 : 1;
	central_close(&c, rc, err);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	log_set_progname(PROG);
	if (argc > 1 && strcmp(argv[1], "ctl") == 0)
		return ctl_client_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "attach") == 0)
		return ctl_client_attach(argc - 1, argv + 1);
	parse_args(argc, argv, &o);
	int rc = o.mode != MODE_SERVE ? run_tool(&o) : serve(&o);
	config_free(&o.conf);
	return rc;
}
