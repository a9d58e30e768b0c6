#include "config.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "evc/clock.h"
#include "evc/config.h"
#include "evc/evline.h"
#include "evc/log.h"
#include "evc/money.h"
#include "evc/msg.h"
#include "evc/version.h"
#include "evc/xalloc.h"
#include "src/central/ctl_client.h"
#include "src/central/history.h"
#include "src/central/ctlproto.h"
#include "src/central/service.h"
#include "ui/panel.h"

#define DEFAULT_DB "./evcharging.db"
#define ANSWER_TIMEOUT_MS 10000

/* ---- arguments shared by ctl and attach ---- */

struct where {
	const char *control, *db, *config;
	int json, no_color;
	struct config conf;
	char *path; /* the socket */
};

static const char *prog_name = "EV_Central ctl";

static void ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: EV_Central ctl [--control PATH | --db PATH] [--config FILE] [--json] COMMAND [ARGS]\n"
		"commands:\n"
		"  status                          CPs by state, links, Kafka, open sessions, uptime\n"
		"  cps                             every CP: state, link, price, driver, location\n"
		"  sessions [--cp ID] [--driver ID] [--limit N]   last sessions (default 20), from the database\n"
		"  stop ID|all                     stop one CP or all of them (PARAR)\n"
		"  resume ID|all                   resume one CP or all of them (REANUDAR)\n"
		"  revoke ID                       revoke a CP's keys\n"
		"  log-level debug|info|warn|error Central's log level from now on\n"
		"options:\n"
		"  --control PATH   Central's control socket (default <db>.ctl)\n"
		"  --db PATH        Central's database (default the configuration's, else " DEFAULT_DB ")\n"
		"  --config FILE    configuration file (default " CONFIG_DEFAULT_PATH " if present)\n"
		"  --json           the answer as JSON, one object\n"
		"exit status: 0 done, 1 refused or failed, 2 bad usage\n");
}

static void attach_usage(FILE *f)
{
	fprintf(f, "usage: EV_Central attach [--control PATH | --db PATH] [--config FILE] [--no-color]\n"
		   "The panel of a running Central; q asks: detach (Central goes on) or stop Central.\n");
}

static void (*usage_fn)(FILE *) = ctl_usage;

static void __attribute__((noreturn, format(printf, 1, 2))) bad_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage_fn(stderr);
	exit(2);
}

static void __attribute__((format(printf, 1, 2))) say_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const char *const ctl_opts[] = { "--control", "--db", "--config", "--json", "--help", "-h", "--list-options" };
static const char *const attach_opts[] = { "--control", "--db", "--config", "--no-color", "--help", "-h",
					   "--list-options" };
/* ctl's commands: the parser refuses any other, --list-options prints them. */
static const char *const ctl_commands[] = { "status", "cps", "sessions", "stop", "resume", "revoke", "log-level" };

static int takes_value(const char *opt)
{
	return strcmp(opt, "--control") == 0 || strcmp(opt, "--db") == 0 || strcmp(opt, "--config") == 0;
}

/* Options anywhere; the other words into words[]. Returns how many. */
static int parse_common(int argc, char **argv, struct where *w, const char *const *known, size_t nknown,
			const char **words, int maxw)
{
	int n = 0;
	memset(w, 0, sizeof *w);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == '\0' || (n > 0 && strcmp(a, "--cp") == 0) || (n > 0 && strcmp(a, "--driver") == 0) ||
		    (n > 0 && strcmp(a, "--limit") == 0)) {
			/* the command's own words and options */
			if (n == maxw)
				bad_usage("too many arguments ('%s')", a);
			words[n++] = a;
			continue;
		}
		char name[64];
		const char *val = NULL;
		const char *eq = strchr(a, '=');
		if (eq != NULL && a[1] == '-') {
			snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
			val = eq + 1;
		} else {
			snprintf(name, sizeof name, "%s", a);
		}
		size_t k;
		for (k = 0; k < nknown; k++)
			if (strcmp(known[k], name) == 0)
				break;
		if (k == nknown)
			bad_usage("unknown option '%s'", a);
		if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
			usage_fn(stdout);
			exit(0);
		}
		if (strcmp(name, "--list-options") == 0) {
			for (k = 0; k < nknown; k++)
				printf("%s%s\n", known[k], takes_value(known[k]) ? " ARG" : "");
			if (known == ctl_opts)
				for (k = 0; k < sizeof ctl_commands / sizeof ctl_commands[0]; k++)
					printf("%s\n", ctl_commands[k]);
			exit(0);
		}
		if (strcmp(name, "--json") == 0 || strcmp(name, "--no-color") == 0) {
			if (val != NULL)
				bad_usage("option %s takes no value", name);
			if (name[2] == 'j')
				w->json = 1;
			else
				w->no_color = 1;
			continue;
		}
		if (val == NULL) {
			if (i + 1 >= argc)
				bad_usage("option %s needs a value", name);
			val = argv[++i];
		}
		if (strcmp(name, "--control") == 0)
			w->control = val;
		else if (strcmp(name, "--db") == 0)
			w->db = val;
		else
			w->config = val;
	}
	char err[EVC_ERR_LEN];
	if (config_load(&w->conf, w->config, "EV_Central", err) == -1) {
		say_error("%s", err);
		exit(2);
	}
	if (w->control != NULL && w->db != NULL)
		bad_usage("give --control or --db, not both");
	if (w->db == NULL && w->control == NULL)
		w->db = w->conf.database != NULL ? w->conf.database : DEFAULT_DB;
	w->path = w->control != NULL ? xstrdup(w->control) : service_beside_db(w->db, ".ctl");
	return n;
}

/* ---- the connection ---- */

struct conn {
	int fd;
	struct ctlproto_buf in;
	const char *path;
};

static int conn_open(struct conn *c, const char *path, char err[EVC_ERR_LEN])
{
	struct sockaddr_un sa;
	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->path = path;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		evc_seterr(err, "control socket path %.60s... is too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd == -1 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
		evc_seterr(err, "cannot reach Central at %s: %s%s", path, strerror(errno),
			   errno == ENOENT || errno == ECONNREFUSED ? " (is EV_Central running on that database?)" : "");
		if (c->fd != -1)
			close(c->fd);
		c->fd = -1;
		return -1;
	}
	ctlproto_buf_init(&c->in, CTLPROTO_ANSWER_MAX);
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	ctlproto_buf_free(&c->in);
}

static int conn_send(struct conn *c, const char *line, char err[EVC_ERR_LEN])
{
	char *s = xasprintf("%s\n", line);
	size_t len = strlen(s), off = 0;
	while (off < len) {
		ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			evc_seterr(err, "Central at %s went away: %s", c->path, strerror(errno));
			free(s);
			return -1;
		}
		off += (size_t)n;
	}
	free(s);
	return 0;
}

/* Read what is there (waiting at most ms). 1 data, 0 timeout, -1 closed or
 * failed (err). */
static int conn_fill(struct conn *c, int ms, char err[EVC_ERR_LEN])
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	int r = poll(&p, 1, ms);
	if (r == 0)
		return 0;
	if (r == -1)
		return errno == EINTR ? 0 : -1;
	char chunk[65536];
	ssize_t n = recv(c->fd, chunk, sizeof chunk, MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		evc_seterr(err, "Central at %s closed the connection", c->path);
		return -1;
	}
	ctlproto_buf_put(&c->in, chunk, (size_t)n);
	return 1;
}

/* The next line, waiting until the deadline (monotonic). NULL with err. */
static char *conn_line(struct conn *c, double deadline, char err[EVC_ERR_LEN])
{
	for (;;) {
		char *line = ctlproto_buf_line(&c->in);
		if (line != NULL && strcmp(line, CTLPROTO_TOOLONG) == 0) {
			free(line);
			evc_seterr(err, "an answer longer than %u bytes from %s", CTLPROTO_ANSWER_MAX, c->path);
			return NULL;
		}
		if (line != NULL)
			return line;
		int ms = clock_ms_until(deadline, 60000);
		if (ms == 0) {
			evc_seterr(err, "no answer from Central at %s within %d s", c->path, ANSWER_TIMEOUT_MS / 1000);
			return NULL;
		}
		if (conn_fill(c, ms, err) == -1)
			return NULL;
	}
}

/* One request, its JSON answer (caller decrefs) or NULL with err. */
static json_t *ask(struct conn *c, const char *req, char err[EVC_ERR_LEN])
{
	if (conn_send(c, req, err) == -1)
		return NULL;
	char *line = conn_line(c, clock_mono() + ANSWER_TIMEOUT_MS / 1000.0, err);
	if (line == NULL)
		return NULL;
	json_t *o = ctlproto_parse(line, err);
	free(line);
	return o;
}

/* ---- printing ---- */

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s != NULL ? s : "";
}

static double jnum(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static void print_json(const json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (s != NULL) {
		puts(s);
		free(s);
	}
}

static void fmt_duration(double s, char *out, size_t n)
{
	long t = s > 0 ? (long)s : 0;
	long d = t / 86400, h = t / 3600 % 24, m = t / 60 % 60, sec = t % 60;
	if (d > 0)
		snprintf(out, n, "%ldd %02ldh %02ldm %02lds", d, h, m, sec);
	else if (h > 0)
		snprintf(out, n, "%ldh %02ldm %02lds", h, m, sec);
	else
		snprintf(out, n, "%ldm %02lds", m, sec);
}

static void print_status(const json_t *o)
{
	char up[64], since[EVLINE_TS_LEN];
	fmt_duration(jnum(o, "uptime"), up, sizeof up);
	evline_timestamp(jnum(o, "started"), since);
	printf("%-12s %lld\n", "pid", (long long)jnum(o, "pid"));
	printf("%-12s %s\n", "version", jstr(o, "version"));
	printf("%-12s %s (since %s)\n", "uptime", up, since);
	printf("%-12s %s\n", "listen", jstr(o, "listen"));
	printf("%-12s %lld\n", "links", (long long)jnum(o, "links"));
	const char *reason = jstr(o, "kafka_reason");
	if (json_is_true(json_object_get(o, "kafka_up")))
		printf("%-12s %s up (%lld in, %lld rejected)\n", "kafka", jstr(o, "kafka"),
		       (long long)jnum(o, "kafka_in"), (long long)jnum(o, "kafka_bad"));
	else
		printf("%-12s %s down%s%s\n", "kafka", jstr(o, "kafka"), reason[0] ? ": " : "", reason);
	printf("%-12s %s\n", "database", jstr(o, "db"));
	printf("%-12s %s\n", "control", jstr(o, "control"));
	printf("%-12s %s%s%s\n", "frontend", jstr(o, "frontend"), jstr(o, "log_file")[0] ? ", log " : "",
	       jstr(o, "log_file"));
	printf("%-12s %s%s\n", "log level", jstr(o, "log_level"),
	       json_is_true(json_object_get(o, "readonly")) ? " (read-only: commands refused)" : "");
	printf("%-12s %lld open\n", "sessions", (long long)jnum(o, "sessions_open"));
	printf("%-12s %lld\n", "cps", (long long)jnum(o, "cps"));
	const json_t *st = json_object_get(o, "states");
	static const char *const order[] = { "ACTIVADO", "SUMINISTRANDO", "RESERVADO", "FUERA_DE_SERVICIO",
					     "AVERIADO", "DESCONECTADO" };
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
		printf("  %-17s %lld\n", order[i], (long long)jnum(st, order[i]));
}

static size_t ulen(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* A column padded to w characters (UTF-8 aware). */
static void col(const char *s, size_t w)
{
	fputs(s, stdout);
	for (size_t n = ulen(s); n < w + 2; n++)
		fputc(' ', stdout);
}

static void print_cps(const json_t *o)
{
	const json_t *arr = json_object_get(o, "cps");
	size_t n = json_array_size(arr);
	const char *head[] = { "ID", "STATE", "LINK", "PRICE", "DRIVER", "KWH", "EUR" };
	size_t w[7];
	for (int i = 0; i < 7; i++)
		w[i] = strlen(head[i]);
	char (*cell)[7][80] = xcalloc(n ? n : 1, sizeof *cell);
	for (size_t i = 0; i < n; i++) {
		const json_t *cp = json_array_get(arr, i);
		const char *drv = jstr(cp, "driver");
		snprintf(cell[i][0], 80, "%s", jstr(cp, "id"));
		snprintf(cell[i][1], 80, "%s%s", jstr(cp, "state"),
			 json_is_true(json_object_get(cp, "stop_pending"))     ? " (stop sent)"
			 : json_is_true(json_object_get(cp, "resume_pending")) ? " (resume sent)"
									       : "");
		snprintf(cell[i][2], 80, "%s", jstr(cp, "link"));
		money_price(cell[i][3], 80, jnum(cp, "price"));
		snprintf(cell[i][4], 80, "%s", drv[0] ? drv : "-");
		if (drv[0] && jnum(cp, "session_started") > 0) {
			snprintf(cell[i][5], 80, "%.3f", jnum(cp, "kwh"));
			snprintf(cell[i][6], 80, "%.2f", jnum(cp, "importe"));
		} else {
			snprintf(cell[i][5], 80, "-");
			snprintf(cell[i][6], 80, "-");
		}
		for (int k = 0; k < 7; k++)
			if (ulen(cell[i][k]) > w[k])
				w[k] = ulen(cell[i][k]);
	}
	for (int k = 0; k < 7; k++)
		col(head[k], w[k]);
	puts("LOCATION");
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < 7; k++)
			col(cell[i][k], w[k]);
		puts(jstr(json_array_get(arr, i), "location"));
	}
	free(cell);
}

/* ---- sessions, from the database itself ---- */

static int run_sessions(struct where *w, const char **words, int nw)
{
	const char *cp = NULL, *driver = NULL;
	long limit = 20;
	for (int i = 1; i < nw; i++) {
		if (i + 1 >= nw)
			bad_usage("sessions: %s needs a value", words[i]);
		if (strcmp(words[i], "--cp") == 0) {
			cp = words[++i];
			if (!msg_valid_cp_id(cp))
				bad_usage("sessions: invalid CP id '%s'", cp);
		} else if (strcmp(words[i], "--driver") == 0) {
			driver = words[++i];
			if (!msg_valid_user_id(driver))
				bad_usage("sessions: invalid driver id '%s'", driver);
		} else if (strcmp(words[i], "--limit") == 0) {
			char *end;
			const char *v = words[++i];
			errno = 0;
			limit = strtol(v, &end, 10);
			if (v[0] == '\0' || *end != '\0' || errno != 0 || limit < 1 || limit > 1000000)
				bad_usage("sessions: --limit expects 1..1000000, not '%s'", v);
		} else {
			bad_usage("sessions: unexpected '%s' (--cp ID, --driver ID, --limit N)", words[i]);
		}
	}
	/* The database: --db, else the one the Central behind --control
	 * serves, else the configuration's or the default. */
	char *db = NULL;
	if (w->db != NULL) {
		db = xstrdup(w->db);
	} else {
		char err[EVC_ERR_LEN];
		struct conn c;
		if (conn_open(&c, w->path, err) == 0) {
			json_t *o = ask(&c, "STATUS", err);
			if (o != NULL && jstr(o, "db")[0] != '\0')
				db = xstrdup(jstr(o, "db"));
			json_decref(o);
			conn_close(&c);
		}
		if (db == NULL) {
			say_error("%s (give --db to read the sessions without a running Central)", err);
			return 1;
		}
	}
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	int rc = 1;
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		say_error("%s: %s", db, h != NULL ? sqlite3_errmsg(h) : "cannot open");
		goto out;
	}
	sqlite3_busy_timeout(h, 3000);
	const char *sql = "SELECT id, cp_id, driver_id, requested_at, started_at, ended_at, kwh, importe, price,"
			  " COALESCE(outcome, 'OPEN'), COALESCE(reason, '') FROM sessions"
			  " WHERE (?1 IS NULL OR cp_id = ?1) AND (?2 IS NULL OR driver_id = ?2)"
			  " ORDER BY requested_at DESC, id DESC LIMIT ?3";
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
		say_error("%s: %s", db, sqlite3_errmsg(h));
		goto out;
	}
	if (cp != NULL)
		sqlite3_bind_text(st, 1, cp, -1, SQLITE_STATIC);
	if (driver != NULL)
		sqlite3_bind_text(st, 2, driver, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, limit);
	json_t *arr = json_array();
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = json_object();
		static const char *const names[] = { "id",	 "cp",	    "driver", "requested_at", "started_at", "ended_at",
						     "kwh",	 "importe", "price",  "outcome",      "reason" };
		for (int k = 0; k < 11; k++) {
			json_t *v;
			switch (sqlite3_column_type(st, k)) {
			case SQLITE_NULL: v = json_null(); break;
			case SQLITE_INTEGER:
			case SQLITE_FLOAT: v = json_real(sqlite3_column_double(st, k)); break;
			default: v = json_string((const char *)sqlite3_column_text(st, k)); break;
			}
			json_object_set_new(o, names[k], v != NULL ? v : json_string("?"));
		}
		json_array_append_new(arr, o);
	}
	if (r != SQLITE_DONE) {
		say_error("%s: %s", db, sqlite3_errmsg(h));
		json_decref(arr);
		goto out;
	}
	if (w->json) {
		json_t *o = json_pack("{s:b, s:s, s:o}", "ok", 1, "db", db, "sessions", arr);
		print_json(o);
		json_decref(o);
	} else {
		size_t n = json_array_size(arr);
		const char *head[] = { "SESSION", "CP", "DRIVER", "REQUESTED", "ENDED", "KWH", "EUR", "OUTCOME" };
		size_t wd[8];
		char (*cell)[8][80] = xcalloc(n ? n : 1, sizeof *cell);
		for (int k = 0; k < 8; k++)
			wd[k] = strlen(head[k]);
		for (size_t i = 0; i < n; i++) {
			const json_t *o = json_array_get(arr, i);
			char t[EVLINE_TS_LEN];
			snprintf(cell[i][0], 80, "%s", jstr(o, "id"));
			snprintf(cell[i][1], 80, "%s", jstr(o, "cp"));
			snprintf(cell[i][2], 80, "%s", jstr(o, "driver"));
			if (jnum(o, "requested_at") > 0) {
				evline_timestamp(jnum(o, "requested_at"), t);
				snprintf(cell[i][3], 80, "%.19s", t);
			} else {
				snprintf(cell[i][3], 80, "-");
			}
			if (jnum(o, "ended_at") > 0) {
				evline_timestamp(jnum(o, "ended_at"), t);
				snprintf(cell[i][4], 80, "%.19s", t);
			} else {
				snprintf(cell[i][4], 80, "-");
			}
			snprintf(cell[i][5], 80, "%.3f", jnum(o, "kwh"));
			snprintf(cell[i][6], 80, "%.2f", jnum(o, "importe"));
			snprintf(cell[i][7], 80, "%s", jstr(o, "outcome"));
			for (int k = 0; k < 8; k++)
				if (ulen(cell[i][k]) > wd[k])
					wd[k] = ulen(cell[i][k]);
		}
		for (int k = 0; k < 8; k++)
			col(head[k], wd[k]);
		puts("REASON");
		for (size_t i = 0; i < n; i++) {
			for (int k = 0; k < 8; k++)
				col(cell[i][k], wd[k]);
			puts(jstr(json_array_get(arr, i), "reason"));
		}
		free(cell);
		json_decref(arr);
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(h);
	free(db);
	return rc;
}

/* ---- ctl ---- */

int ctl_client_main(int argc, char **argv)
{
	struct where w;
	const char *words[16];
	prog_name = "EV_Central ctl";
	usage_fn = ctl_usage;
	log_set_progname(prog_name);
	int nw = parse_common(argc, argv, &w, ctl_opts, sizeof ctl_opts / sizeof ctl_opts[0], words, 16);
	if (nw == 0)
		bad_usage("missing COMMAND");
	const char *cmd = words[0];
	size_t k;
	for (k = 0; k < sizeof ctl_commands / sizeof ctl_commands[0]; k++)
		if (strcmp(cmd, ctl_commands[k]) == 0)
			break;
	if (k == sizeof ctl_commands / sizeof ctl_commands[0])
		bad_usage("unknown command '%s'", cmd);
	char req[CTLPROTO_LINE_MAX];
	int rc = 1;
	if (strcmp(cmd, "sessions") == 0) {
		rc = run_sessions(&w, words, nw);
		goto out;
	}
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "cps") == 0) {
		if (nw != 1)
			bad_usage("%s takes no arguments", cmd);
		snprintf(req, sizeof req, "%s", cmd[0] == 's' ? "STATUS" : "CPS");
	} else if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "resume") == 0 || strcmp(cmd, "revoke") == 0) {
		if (nw != 2)
			bad_usage("%s needs exactly one CP id%s", cmd, cmd[0] == 'r' && cmd[2] == 'v' ? "" : " or 'all'");
		const char *id = words[1];
		int all = strcmp(id, "all") == 0;
		if (!all && !msg_valid_cp_id(id))
			bad_usage("%s: invalid CP id '%s'", cmd, id);
		if (cmd[0] == 's')
			snprintf(req, sizeof req, all ? "PT" : "P %s", id);
		else if (strcmp(cmd, "resume") == 0)
			snprintf(req, sizeof req, all ? "RT" : "R %s", id);
		else if (all)
			bad_usage("revoke: one CP id at a time");
		else
			snprintf(req, sizeof req, "REVOKE %s", id);
	} else if (strcmp(cmd, "log-level") == 0) {
		enum log_level l;
		if (nw != 2 || log_parse_level(words[1], &l) == -1)
			bad_usage("log-level needs one of debug, info, warn, error");
		snprintf(req, sizeof req, "LOG-LEVEL %s", words[1]);
	} else {
		bad_usage("unknown command '%s'", cmd);
	}

	char err[EVC_ERR_LEN];
	struct conn c;
	if (conn_open(&c, w.path, err) == -1) {
		say_error("%s", err);
		goto out;
	}
	json_t *o = ask(&c, req, err);
	conn_close(&c);
	if (o == NULL) {
		say_error("%s", err);
		goto out;
	}
	int ok = json_is_true(json_object_get(o, "ok"));
	if (w.json)
		print_json(o);
	else if (!ok)
		say_error("%s", jstr(o, "error")[0] ? jstr(o, "error") : "refused");
	else if (strcmp(cmd, "status") == 0)
		print_status(o);
	else if (strcmp(cmd, "cps") == 0)
		print_cps(o);
	else if (strcmp(cmd, "log-level") == 0)
		printf("log level %s\n", jstr(o, "log_level"));
	else
		printf("%s\n", jstr(o, "message")[0] ? jstr(o, "message") : jstr(o, "result"));
	json_decref(o);
	rc = ok ? 0 : 1;
out:
	free(w.path);
	config_free(&w.conf);
	return rc;
}

/* ---- attach ---- */

struct attached {
	struct conn c;
	struct panel *p;
	struct panel_view v;
	struct ctlproto_picture pic;
	struct history *hist; /* the views' read-only reads of Central's database */
	int gone;          /* the connection ended */
	int bye;           /* Central said goodbye */
	char why[EVC_ERR_LEN];
	int stopping;      /* we asked Central to stop */
};

/* One stream line. Lines this client cannot read are skipped: one bad
 * line must not take the operator's panel down. */
static void apply_line(struct attached *a, const char *line)
{
	char err[EVC_ERR_LEN];
	json_t *o = ctlproto_parse(line, err);
	if (o == NULL)
		return;
	switch (ctlproto_picture_apply(&a->pic, o, err)) {
	case CTLPROTO_STATUS: {
		const struct ctlproto_status *s = &a->pic.status;
		xstrlcpy(a->v.status.listen, s->listen, sizeof a->v.status.listen);
		xstrlcpy(a->v.status.kafka, s->kafka, sizeof a->v.status.kafka);
		xstrlcpy(a->v.status.db, s->db, sizeof a->v.status.db);
		if (a->hist == NULL && s->db[0] != '\0') {
			/* The views read the database themselves, read-only, as the
			 * panel in Central does (it is on this machine: the control
			 * socket is a local one). */
			char herr[EVC_ERR_LEN];
			a->hist = history_open(s->db, herr);
			if (a->hist != NULL)
				a->v.src = history_source(a->hist);
		}
		a->v.status.kafka_up = s->kafka_up;
		xstrlcpy(a->v.status.kafka_reason, s->kafka_reason, sizeof a->v.status.kafka_reason);
		a->v.status.links = s->links;
		break;
	}
	case CTLPROTO_SYNC:
		memcpy(a->v.counts, a->pic.counts, sizeof a->v.counts);
		a->v.cps = a->pic.cps;
		a->v.ncps = a->pic.ncps;
		a->v.rev++;
		break;
	case CTLPROTO_LOG: {
		enum log_level l = LOG_INFO;
		log_parse_level(jstr(o, "level"), &l);
		panel_log(a->p, jnum(o, "ts"), l, jstr(o, "tag"), jstr(o, "text"));
		break;
	}
	case CTLPROTO_REQ:
		panel_request(a->p, jnum(o, "ts"), jstr(o, "user"), jstr(o, "cp"), jstr(o, "outcome"));
		break;
	case CTLPROTO_BYE:
		a->bye = 1;
		a->gone = 1;
		snprintf(a->why, sizeof a->why, "%s", jstr(o, "reason"));
		break;
	case CTLPROTO_CP:
		/* drawn at the next sync; the array may have moved meanwhile
		 * (v.ncps, the old count, stays within it) */
		a->v.cps = a->pic.cps;
		break;
	default: /* an answer, a bad line */
		break;
	}
	json_decref(o);
}

static void drain_lines(struct attached *a)
{
	char *line;
	while ((line = ctlproto_buf_line(&a->c.in)) != NULL) {
		apply_line(a, line);
		free(line);
	}
}

/* The panel's exec: the command line goes to Central, its answer comes
 * back (stream lines that arrive meanwhile are applied). */
static int attached_exec(void *arg, const char *line, char msg[EVC_ERR_LEN])
{
	struct attached *a = arg;
	char err[EVC_ERR_LEN];
	if (a->gone) {
		evc_seterr(msg, "Central is gone");
		return -1;
	}
	if (conn_send(&a->c, line, err) == -1) {
		evc_seterr(msg, "%s", err);
		a->gone = 1;
		snprintf(a->why, sizeof a->why, "%s", err);
		return -1;
	}
	double deadline = clock_mono() + ANSWER_TIMEOUT_MS / 1000.0;
	for (;;) {
		char *l = conn_line(&a->c, deadline, err);
		if (l == NULL) {
			evc_seterr(msg, "%s", err);
			return -1;
		}
		json_t *o = ctlproto_parse(l, err);
		if (o != NULL && json_object_get(o, "ok") != NULL) {
			int ok = json_is_true(json_object_get(o, "ok"));
			const char *result = jstr(o, "result");
			int rc = !ok ? -1 : strcmp(result, "stopping") == 0 ? 1 : 0;
			if (rc == 1)
				a->stopping = 1;
			evc_seterr(msg, "%s", ok ? (jstr(o, "message")[0] ? jstr(o, "message") : result) : jstr(o, "error"));
			json_decref(o);
			free(l);
			return rc;
		}
		json_decref(o);
		apply_line(a, l);
		free(l);
	}
}

int ctl_client_attach(int argc, char **argv)
{
	struct where w;
	const char *words[4];
	prog_name = "EV_Central attach";
	usage_fn = attach_usage;
	log_set_progname(prog_name);
	int nw = parse_common(argc, argv, &w, attach_opts, sizeof attach_opts / sizeof attach_opts[0], words, 4);
	if (nw > 0)
		bad_usage("unexpected argument '%s'", words[0]);
	signal(SIGPIPE, SIG_IGN);

	struct attached a;
	memset(&a, 0, sizeof a);
	char err[EVC_ERR_LEN];
	int rc = 1;
	if (conn_open(&a.c, w.path, err) == -1) {
		say_error("%s", err);
		goto out;
	}
	json_t *hello = ask(&a.c, "ATTACH", err);
	if (hello == NULL || !json_is_true(json_object_get(hello, "ok"))) {
		say_error("%s", hello != NULL ? jstr(hello, "error") : err);
		json_decref(hello);
		goto out;
	}
	int readonly = json_is_true(json_object_get(hello, "readonly"));
	json_decref(hello);
	a.p = panel_open(attached_exec, &a, readonly, w.no_color, err);
	if (a.p == NULL) {
		say_error("%s", err);
		goto out;
	}
	panel_set_attached(a.p, w.path);
	for (;;) {
		drain_lines(&a);
		panel_refresh(a.p, &a.v, clock_wall());
		if (a.gone)
			break;
		struct pollfd pf[2] = { { .fd = a.c.fd, .events = POLLIN }, { .fd = panel_fd(a.p), .events = POLLIN } };
		int r = poll(pf, 2, panel_timeout_ms(a.p));
		if (r == -1 && errno != EINTR) {
			snprintf(a.why, sizeof a.why, "poll: %s", strerror(errno));
			break;
		}
		if (r <= 0)
			continue;
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int f = conn_fill(&a.c, 0, err);
			if (f == -1) {
				drain_lines(&a);
				if (!a.gone)
					snprintf(a.why, sizeof a.why, "%s", err);
				a.gone = 1;
			}
		}
		if (pf[1].fd >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) && panel_input(a.p, &a.v))
			break; /* detach, or Central told to stop */
		if (panel_fd(a.p) == -1)
			break; /* our terminal went away: detach */
	}
	panel_close(a.p);
	history_close(a.hist);
	if (a.stopping) {
		printf("Central at %s is stopping\n", w.path);
		rc = 0;
	} else if (a.bye) {
		printf("Central at %s stopped: %s\n", w.path, a.why);
		rc = 0;
	} else if (a.gone) {
		say_error("lost Central at %s: %s", w.path, a.why);
		rc = 1;
	} else {
		char e2[EVC_ERR_LEN];
		conn_send(&a.c, "DETACH", e2);
		printf("detached from Central at %s (it goes on)\n", w.path);
		rc = 0;
	}
out:
	conn_close(&a.c);
	ctlproto_picture_free(&a.pic);
	free(w.path);
	config_free(&w.conf);
	return rc;
}
