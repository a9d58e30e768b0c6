/* EV_Driver: a driver's app. Asks Central for charges over Kafka
 * (driver_requests), follows its own notifications (driver_notifications,
 * group driver-<id>-notifications, committed after display) and the CPs
 * available now (network_status). One thread runs a poll() loop over stdin,
 * the consumers' wake-up pipes and the service timers; the sequencing rules
 * live in svc.c, the screen in ui/driver_screen.c. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "evc/bus.h"
#include "evc/clock.h"
#include "evc/log.h"
#include "evc/evline.h"
#include "evc/msg.h"
#include "evc/net.h"
#include "evc/progopt.h"
#include "evc/version.h"
#include "evc/xalloc.h"
#include "src/driver/services.h"
#include "src/driver/svc.h"
#include "ui/driver_screen.h"

#define PROG "EV_Driver"
#define SYNC_WAIT 15.0   /* s to read the notification backlog before going on */
#define QUIT_FLUSH_MS 2000
#define LOOP_CAP_MS 250  /* poll() cap: a safety net behind the wake-up pipes */

struct opts {
	const char *brokers;
	const char *user;
	const char *file;
	const char *prefix;
	int headless;
	int no_color;
	int keep_going;  /* exit 0 even when a service failed (Release 1's way) */
	double answer_timeout;
	double pause;
	struct config conf;
};

struct drv {
	struct opts o;
	struct svc svc;
	rd_kafka_t *prod;
	rd_kafka_t *notif;   /* group driver-<id>-notifications, commits */
	rd_kafka_t *status;  /* own group, never commits, starts at the tail */
	char t_requests[BUS_NAME_MAX], t_notif[BUS_NAME_MAX], t_status[BUS_NAME_MAX];
	int notif_pipe[2], status_pipe[2];
	rd_kafka_topic_partition_list_t *sync_target; /* high watermarks to reach */
	double sync_next_try;    /* no broker query before this (a slow broker must not freeze the loop) */
	double sync_deadline;
	struct msg status_msg; /* latest NETWORK_STATUS_UPDATE */
	int has_status;
	double status_ts;
	char avail_line[4096]; /* last AVAILABLE line shown (headless) */
	int kafka_up;
	int stdin_open;
	char inbuf[1024];
	size_t inlen;
	int skip_line; /* inside a line too long, until its newline */
	int quit;
	int dirty;
	double last_draw;
	struct driver_screen *scr;
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [kafka_host:port] <driver_id> [services_file] [--headless]\n"
		"       [--topic-prefix P] [--answer-timeout S] [--pause S] [--no-color] [--keep-going]\n"
		"       [--log-format text|json] [--config FILE]\n"
		"       " PROG " --help | --version\n"
		"  services_file     one CP id per line (blank lines and # comments ignored);\n"
		"                    served one at a time, then a summary and exit\n"
		"  --headless        no screen: commands on stdin (r CP, q), one line per event on stdout\n"
		"  --topic-prefix P  prefix of topic and group names (default $EVC_TOPIC_PREFIX or none)\n"
		"  --answer-timeout S  give up a service after S s without any answer (default 30)\n"
		"  --pause S         seconds between services in file mode (default 4)\n"
		"  --no-color        monochrome screen (also NO_COLOR=1)\n"
		"  --keep-going      exit 0 even when a service failed (default: exit 1 when a service\n"
		"                    did not end in a ticket or a request was not delivered)\n"
		"  --log-format F    text or json event and log lines (default text)\n"
		"  --config FILE     configuration file (default " CONFIG_DEFAULT_PATH " if present);\n"
		"                    its broker when kafka_host:port is left out\n"
		"  --list-options    print every option, one a line (shell completion)\n"
		"  -V, --version     print the versions of the program and its libraries\n");
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return 2;
}

/* A number of seconds: finite, in [min, 86400]. */
static int parse_secs(const char *s, double min, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > 86400.0)
		return -1;
	*out = v;
	return 0;
}

enum { OPT_HEADLESS = 256, OPT_NO_COLOR, OPT_PREFIX, OPT_ANSWER_TIMEOUT, OPT_PAUSE, OPT_LOG_FORMAT, OPT_CONFIG,
       OPT_KEEP_GOING, OPT_LIST };

/* 0 to run, 1 to exit 0 (--help, --version), 2 on bad usage. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
		{"headless", no_argument, NULL, OPT_HEADLESS},
		{"topic-prefix", required_argument, NULL, OPT_PREFIX},
		{"answer-timeout", required_argument, NULL, OPT_ANSWER_TIMEOUT},
		{"pause", required_argument, NULL, OPT_PAUSE},
		{"no-color", no_argument, NULL, OPT_NO_COLOR},
		{"keep-going", no_argument, NULL, OPT_KEEP_GOING},
		{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"list-options", no_argument, NULL, OPT_LIST},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *log_format = NULL, *config_path = NULL;
	int c;
	o->answer_timeout = 30.0;
	o->pause = 4.0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return 1;
		case 'V': version_print(stdout, PROG); return 1;
		case OPT_LIST: progopt_list(stdout, opts, NULL); return 1;
		case OPT_HEADLESS: o->headless = 1; break;
		case OPT_NO_COLOR: o->no_color = 1; break;
		case OPT_KEEP_GOING: o->keep_going = 1; break;
		case OPT_LOG_FORMAT: log_format = optarg; break;
		case OPT_CONFIG: config_path = optarg; break;
		case OPT_PREFIX:
			if (strlen(optarg) > 100)
				return bad_usage("topic prefix too long: '%.100s...'", optarg);
			o->prefix = optarg;
			break;
		case OPT_ANSWER_TIMEOUT:
			if (parse_secs(optarg, 0.1, &o->answer_timeout) == -1)
				return bad_usage("--answer-timeout wants seconds between 0.1 and 86400, not '%s'", optarg);
			break;
		case OPT_PAUSE:
			if (parse_secs(optarg, 0.0, &o->pause) == -1)
				return bad_usage("--pause wants seconds between 0 and 86400, not '%s'", optarg);
			break;
		case ':': return bad_usage("option %s needs a value", argv[optind - 1]);
		default: return bad_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	char cerr[EVC_ERR_LEN];
	if (progopt_setup(PROG, config_path, log_format, o->no_color, &o->conf, cerr) == -1) {
		fprintf(stderr, PROG ": %s\n", cerr);
		return 2;
	}
	const char **pos = (const char **)argv + optind;
	int npos = argc - optind;
	if (npos > 3)
		return bad_usage("unexpected argument '%s'", pos[3]);
	/* The broker may come from the configuration file: then the first
	 * argument is the driver id (an id holds no ':'). */
	if (o->conf.broker != NULL && npos >= 1 && npos <= 2 && strchr(pos[0], ':') == NULL) {
		o->brokers = o->conf.broker;
		o->user = pos[0];
		o->file = npos == 2 ? pos[1] : NULL;
	} else {
		if (npos < 2)
			return bad_usage("%s", npos == 0 ? "missing <kafka_host:port> and <driver_id>" : "missing <driver_id>");
		o->brokers = pos[0];
		o->user = pos[1];
		o->file = npos == 3 ? pos[2] : NULL;
		char host[256], nerr[EVC_ERR_LEN];
		int port;
		if (net_parse_hostport(o->brokers, host, sizeof host, &port, nerr) == -1)
			return bad_usage("Kafka address: %s", nerr);
	}
	o->prefix = config_topic_prefix(&o->conf, o->prefix);
	if (!msg_valid_user_id(o->user))
		return bad_usage("invalid driver id '%s' (1 to 64 of letters, digits, '_', '.', '@', '-')", o->user);
	return 0;
}

/* ---- output ---------------------------------------------------------- */

static void emit_line(void *arg, const char *line)
{
	struct drv *d = arg;
	d->dirty = 1;
	if (d->scr != NULL) {
		driver_screen_event(d->scr, line);
		return;
	}
	evline_write(stdout, line); /* timestamped, text or JSON (evcharging(7) LOG LINES) */
}

static void log_to_screen(enum log_level lvl, const char *line, void *arg)
{
	struct drv *d = arg;
	char buf[600];
	snprintf(buf, sizeof buf, "(%s) %s", log_level_name(lvl), line);
	driver_screen_event(d->scr, buf);
	d->dirty = 1;
}

static void on_kafka_state(void *arg, int up, const char *reason)
{
	struct drv *d = arg;
	if (d->kafka_up == up)
		return;
	d->kafka_up = up;
	d->dirty = 1;
	if (up)
		log_info("kafka: broker reachable");
	else
		log_warn("kafka: %s", reason != NULL ? reason : "broker unreachable");
}

/* ---- Kafka ----------------------------------------------------------- */

/* librdkafka writes a byte into the pipe when the consumer's queue gets
 * something, so poll() wakes at once instead of on a timer. */
static int wake_pipe(rd_kafka_t *rk, int p[2], char err[EVC_ERR_LEN])
{
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1) {
		snprintf(err, EVC_ERR_LEN, "pipe: %s", strerror(errno));
		return -1;
	}
	rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
	if (q == NULL) {
		snprintf(err, EVC_ERR_LEN, "consumer has no queue");
		return -1;
	}
	rd_kafka_queue_io_event_enable(q, p[1], "1", 1);
	rd_kafka_queue_destroy(q);
	return 0;
}

static void drain_pipe(int fd)
{
	char buf[256];
	while (read(fd, buf, sizeof buf) > 0)
		;
}

/* The status consumer starts at the last message of each partition: the
 * CPs are shown at once, without replaying the topic's history. */
static void status_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
			     void *opaque)
{
	(void)opaque;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (int i = 0; i < parts->cnt; i++)
			parts->elems[i].offset = RD_KAFKA_OFFSET_TAIL(1);
		rd_kafka_assign(rk, parts);
	} else {
		rd_kafka_assign(rk, NULL);
	}
}

static rd_kafka_t *status_consumer_new(struct drv *d, char err[EVC_ERR_LEN])
{
	char group[BUS_NAME_MAX], base[160];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* A group of its own (never committed): every driver process sees
	 * every status update. */
	snprintf(base, sizeof base, "driver-%s-status-%ld-%.0f", d->o.user, (long)getpid(),
		 fmod(clock_wall() * 1000.0, 1e9));
	bus_name(group, sizeof group, bus_prefix(d->o.prefix), base);
	const char *kv[][2] = {
		{"bootstrap.servers", d->o.brokers}, {"group.id", group},
		{"enable.auto.commit", "false"},     {"enable.auto.offset.store", "false"},
		{"auto.offset.reset", "latest"},     {"fetch.wait.max.ms", "100"},
		{"session.timeout.ms", "6000"},      {"heartbeat.interval.ms", "1000"},
		{"reconnect.backoff.max.ms", "2000"}, {"log.connection.close", "false"},
	};
	for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
		if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, EVC_ERR_LEN) != RD_KAFKA_CONF_OK) {
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	rd_kafka_conf_set_rebalance_cb(conf, status_rebalance);
	bus_conf_logger(conf);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, EVC_ERR_LEN);
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(t, d->t_status, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, t);
	rd_kafka_topic_partition_list_destroy(t);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, EVC_ERR_LEN, "cannot subscribe to %.150s: %s", d->t_status, rd_kafka_err2str(e));
		rd_kafka_destroy(rk);
		return NULL;
	}
	return rk;
}

static int produce_msg(struct drv *d, const struct msg *m, char err[EVC_ERR_LEN])
{
	char merr[EVC_ERR_LEN];
	size_t len;
	char *json = msg_encode(m, &len, merr);
	if (json == NULL) {
		snprintf(err, EVC_ERR_LEN, "cannot encode %s: %.200s", msg_type_name(m->type), merr);
		return -1;
	}
	int rc = bus_produce(d->prod, d->t_requests, m->user_id, json, len, err);
	free(json);
	return rc;
}

static void send_request(struct drv *d, const struct svc_request *r, double now)
{
	struct msg m;
	char err[EVC_ERR_LEN];
	msg_init(&m, MSG_REQUEST_CHARGE);
	xstrlcpy(m.user_id, d->o.user, sizeof m.user_id);
	xstrlcpy(m.cp_id, r->cp_id, sizeof m.cp_id);
	xstrlcpy(m.request_id, r->request_id, sizeof m.request_id);
	m.has_request_id = 1;
	xstrlcpy(m.origin, "driver", sizeof m.origin);
	m.has_origin = 1;
	m.timestamp = clock_wall();
	m.has_timestamp = 1;
	if (produce_msg(d, &m, err) == -1)
		svc_send_failed(&d->svc, now, err);
	msg_free(&m);
}

static void send_quit(struct drv *d)
{
	struct msg m;
	char err[EVC_ERR_LEN];
	msg_init(&m, MSG_DRIVER_QUIT);
	xstrlcpy(m.user_id, d->o.user, sizeof m.user_id);
	if (produce_msg(d, &m, err) == -1)
		log_error("DRIVER_QUIT not sent: %s", err);
	msg_free(&m);
}

/* The backlog (notifications after the group's last commit) has been read
 * once the position of every assigned partition reaches the high watermark
 * it had when we joined. Only then may requests go out, so an old answer
 * is never taken for a new request's. */
static void check_sync(struct drv *d, double now)
{
	if (d->svc.live)
		return;
	if (now >= d->sync_deadline) {
		log_warn("notification backlog not read within %.0f s (broker down?); going on", SYNC_WAIT);
		svc_set_live(&d->svc, now);
		return;
	}
	rd_kafka_topic_partition_list_t *a = NULL;
	if (rd_kafka_assignment(d->notif, &a) != RD_KAFKA_RESP_ERR_NO_ERROR || a == NULL)
		return;
	if (a->cnt == 0)
		goto out;
	if (d->sync_target == NULL) {
		/* These calls wait for the broker on the main loop: keep each short
		 * and retry at most once a second, so a broker that turns slow
		 * costs the screen and stdin well under a second. */
		if (now < d->sync_next_try)
			goto out;
		d->sync_next_try = now + 1.0;
		rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_copy(a);
		if (rd_kafka_committed(d->notif, t, 250) != RD_KAFKA_RESP_ERR_NO_ERROR) {
			rd_kafka_topic_partition_list_destroy(t);
			goto out;
		}
		for (int i = 0; i < t->cnt; i++) {
			int64_t lo, hi;
			rd_kafka_topic_partition_t *p = &t->elems[i];
			if (rd_kafka_query_watermark_offsets(d->notif, p->topic, p->partition, &lo, &hi, 250) !=
			    RD_KAFKA_RESP_ERR_NO_ERROR) {
				rd_kafka_topic_partition_list_destroy(t);
				goto out;
			}
			/* Nothing to read: committed at the end, or empty. */
			if ((p->offset >= 0 && p->offset >= hi) || lo == hi)
				p->offset = RD_KAFKA_OFFSET_INVALID;
			else
				p->offset = hi;
		}
		d->sync_target = t;
	}
	if (rd_kafka_position(d->notif, a) != RD_KAFKA_RESP_ERR_NO_ERROR)
		goto out;
	for (int i = 0; i < d->sync_target->cnt; i++) {
		rd_kafka_topic_partition_t *want = &d->sync_target->elems[i];
		if (want->offset < 0)
			continue;
		rd_kafka_topic_partition_t *have = rd_kafka_topic_partition_list_find(a, want->topic, want->partition);
		if (have == NULL || have->offset < want->offset)
			goto out;
	}
	svc_set_live(&d->svc, now);
	/* The copy holds partition references: they would stall the
	 * consumer's destruction, so drop it as soon as it has served. */
	rd_kafka_topic_partition_list_destroy(d->sync_target);
	d->sync_target = NULL;
	log_info("notification backlog read; ready");
	if (d->scr == NULL)
		emit_line(d, "READY");
out:
	rd_kafka_topic_partition_list_destroy(a);
}

static void handle_notif(struct drv *d, rd_kafka_message_t *km, double now)
{
	struct msg m;
	char err[EVC_ERR_LEN];
	if (km->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (km->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			log_warn("kafka: %s", rd_kafka_message_errstr(km));
		return;
	}
	if (msg_decode(MSG_T_DRIVER_NOTIFICATIONS, km->payload, km->len, &m, err) == -1) {
		log_warn("skipping a bad message on %s [%d] @%lld: %s", d->t_notif, km->partition,
			 (long long)km->offset, err);
	} else {
		svc_on_msg(&d->svc, &m, now);
		msg_free(&m);
	}
	/* Shown (or skipped for good): its offset may be committed. */
	bus_store(d->notif, km);
}

/* One line listing the CPs available now (headless), when it changes. */
static void show_available(struct drv *d)
{
	char line[sizeof d->avail_line];
	size_t n = 0, len;
	len = (size_t)snprintf(line, sizeof line, "AVAILABLE");
	char list[sizeof line - 64];
	size_t ll = 0;
	list[0] = '\0';
	for (size_t i = 0; i < d->status_msg.ncps; i++) {
		const struct msg_cp_status *c = &d->status_msg.cps[i];
		if (strcmp(c->status, "ACTIVADO") != 0)
			continue;
		int w = snprintf(list + ll, sizeof list - ll, "%s%s@%.2f", n ? "," : "", c->id, c->price);
		if (w < 0 || (size_t)w >= sizeof list - ll)
			break;
		ll += (size_t)w;
		n++;
	}
	snprintf(line + len, sizeof line - len, " n=%zu cps=%s", n, n ? list : "-");
	if (strcmp(line, d->avail_line) == 0)
		return;
	xstrlcpy(d->avail_line, line, sizeof d->avail_line);
	if (d->scr == NULL)
		emit_line(d, line);
}

static void handle_status(struct drv *d, rd_kafka_message_t *km)
{
	struct msg m;
	char err[EVC_ERR_LEN];
	if (km->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (km->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			log_warn("kafka: %s", rd_kafka_message_errstr(km));
		return;
	}
	if (msg_decode(MSG_T_NETWORK_STATUS, km->payload, km->len, &m, err) == -1) {
		log_warn("skipping a bad message on %s: %s", d->t_status, err);
		return;
	}
	/* Partitions are read in no particular order: keep the newest. */
	if (m.type != MSG_NETWORK_STATUS_UPDATE || (d->has_status && m.timestamp < d->status_ts)) {
		msg_free(&m);
		return;
	}
	msg_free(&d->status_msg);
	d->status_msg = m;
	d->has_status = 1;
	d->status_ts = m.timestamp;
	d->dirty = 1;
	show_available(d);
}

static void fill_view(struct drv *d, struct driver_view *v);

static void redraw(struct drv *d)
{
	struct driver_view v;
	fill_view(d, &v);
	driver_screen_draw(d->scr, &v);
	d->dirty = 0;
	d->last_draw = clock_mono();
}

static void poll_kafka(struct drv *d)
{
	rd_kafka_message_t *km;
	int n = 0;
	char err[EVC_ERR_LEN];
	drain_pipe(d->notif_pipe[0]);
	drain_pipe(d->status_pipe[0]);
	/* Bounded batches keep the loop responsive under a flood. */
	while (n < 500 && (km = rd_kafka_consumer_poll(d->notif, 0)) != NULL) {
		handle_notif(d, km, clock_mono());
		rd_kafka_message_destroy(km);
		n++;
	}
	if (n > 0) {
		/* Commit after display: draw before the offsets go. */
		if (d->scr != NULL && d->dirty)
			redraw(d);
		/* Asynchronous: a broker that is slow or away must not freeze
		 * the screen. Offsets are cumulative, so a lost commit is
		 * covered by the next one, and closing commits synchronously. */
		if (bus_commit_stored_async(d->notif, err) == -1)
			log_warn("kafka: %s (will retry)", err);
	}
	for (int k = 0; k < 100 && (km = rd_kafka_consumer_poll(d->status, 0)) != NULL; k++) {
		handle_status(d, km);
		rd_kafka_message_destroy(km);
	}
	bus_poll(d->prod, 0);
}

/* ---- commands -------------------------------------------------------- */

static void request_cp(struct drv *d, const char *cp)
{
	char err[EVC_ERR_LEN], line[400];
	if (svc_enqueue(&d->svc, cp, err) == -1) {
		snprintf(line, sizeof line, "ERROR cp '%.40s': %s", cp, err);
		emit_line(d, line);
	}
}

static void command(struct drv *d, char *line)
{
	char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		p[--n] = '\0';
	if (n == 0 || p[0] == '#')
		return;
	if (strcmp(p, "q") == 0 || strcmp(p, "quit") == 0) {
		d->quit = 1;
		return;
	}
	if ((p[0] == 'r' || p[0] == 'R') && p[1] == '\0') {
		emit_line(d, "ERROR r needs a CP id (r CP)");
		return;
	}
	if ((p[0] == 'r' || p[0] == 'R') && (p[1] == ' ' || p[1] == '\t')) {
		p += 2;
		while (*p == ' ' || *p == '\t')
			p++;
		if (d->o.file != NULL) {
			emit_line(d, "ERROR file mode: the services come from the file");
			return;
		}
		request_cp(d, p);
		return;
	}
	char out[300];
	snprintf(out, sizeof out, "ERROR unknown command '%.60s' (r CP, q)", p);
	emit_line(d, out);
}

static void read_stdin(struct drv *d)
{
	ssize_t got = read(STDIN_FILENO, d->inbuf + d->inlen, sizeof d->inbuf - 1 - d->inlen);
	if (got < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		log_warn("stdin: %s", strerror(errno));
		got = 0;
	}
	if (got == 0) {
		d->stdin_open = 0;
		/* Headless without a file is driven by stdin: its end is q. */
		if (d->o.file == NULL)
			d->quit = 1;
		return;
	}
	d->inlen += (size_t)got;
	d->inbuf[d->inlen] = '\0';
	char *start = d->inbuf, *nl;
	while ((nl = memchr(start, '\n', d->inlen - (size_t)(start - d->inbuf))) != NULL) {
		*nl = '\0';
		if (d->skip_line)
			d->skip_line = 0; /* the tail of a line too long: dropped */
		else
			command(d, start);
		start = nl + 1;
	}
	size_t rest = d->inlen - (size_t)(start - d->inbuf);
	if (rest == sizeof d->inbuf - 1) {
		if (!d->skip_line)
			emit_line(d, "ERROR command line too long; dropped");
		d->skip_line = 1;
		rest = 0;
	}
	memmove(d->inbuf, start, rest);
	d->inlen = rest;
}

/* ---- main loop ------------------------------------------------------- */

static void fill_view(struct drv *d, struct driver_view *v)
{
	static const enum driver_screen_supply supply[] = {
		[SVC_IDLE] = DRIVER_SUPPLY_NONE,
		[SVC_WAITING] = DRIVER_SUPPLY_WAITING,
		[SVC_AUTHORISED] = DRIVER_SUPPLY_AUTHORISED,
		[SVC_CHARGING] = DRIVER_SUPPLY_CHARGING,
	};
	const struct svc *s = &d->svc;
	const struct svc_supply *c = &s->cur;
	double now = clock_mono();
	memset(v, 0, sizeof *v);
	v->user_id = d->o.user;
	v->file = d->o.file;
	v->cps = d->status_msg.cps;
	v->ncps = d->status_msg.ncps;
	v->status_at = d->has_status ? d->status_ts : 0.0;
	v->kafka_up = d->kafka_up;
	v->now_wall = clock_wall();
	v->supply = supply[s->state];
	v->cp_id = c->cp_id;
	v->session_id = c->session_id;
	v->adopted = c->adopted;
	v->kw = c->kw;
	v->kwh = c->kwh;
	v->importe = c->importe;
	v->elapsed = now - (s->state == SVC_CHARGING ? c->started_at : c->requested_at);
	v->has_ticket = c->has_ticket;
	v->t_kwh = c->t_kwh;
	v->t_importe = c->t_importe;
	v->t_price = c->t_price;
	v->t_started = c->t_started;
	v->t_ended = c->t_ended;
	v->served = s->served;
	v->denied = s->denied;
	v->failed = s->failed;
	v->queued = svc_pending(s);
	v->total_kwh = s->kwh;
	v->total_importe = s->importe;
}

static void run(struct drv *d)
{
	while (!d->quit) {
		double now = clock_mono();
		struct svc_request req;
		if (got_signal) {
			log_info("signal %d: closing", (int)got_signal);
			break;
		}
		check_sync(d, now);
		while (svc_tick(&d->svc, now, &req))
			send_request(d, &req, now);
		if (svc_done(&d->svc))
			break;
		if (d->scr != NULL && (d->dirty || now - d->last_draw >= 1.0))
			redraw(d);
		struct pollfd pfd[3];
		int np = 0, in_idx = -1;
		pfd[np++] = (struct pollfd){.fd = d->notif_pipe[0], .events = POLLIN};
		pfd[np++] = (struct pollfd){.fd = d->status_pipe[0], .events = POLLIN};
		if (d->stdin_open) {
			in_idx = np;
			pfd[np++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
		}
		int cap = LOOP_CAP_MS;
		if (!d->svc.live)
			cap = 50; /* joining the group: check the assignment often */
		if (d->scr != NULL && d->svc.state == SVC_CHARGING)
			cap = clock_ms_until(d->last_draw + 1.0, cap); /* elapsed time ticks */
		int tmo = clock_ms_until(svc_next_deadline(&d->svc), cap);
		int r = poll(pfd, (nfds_t)np, tmo);
		if (r < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			break;
		}
		poll_kafka(d);
		if (in_idx >= 0 && (pfd[in_idx].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (d->scr != NULL) {
				char cp[MSG_CP_ID_MAX + 1];
				int redraw = 0;
				struct driver_view v;
				fill_view(d, &v);
				enum driver_screen_action act = driver_screen_keys(d->scr, &v, cp, &redraw);
				if (act == DRIVER_SCREEN_QUIT)
					d->quit = 1;
				else if (act == DRIVER_SCREEN_REQUEST)
					request_cp(d, cp);
				if (redraw)
					d->dirty = 1;
			} else {
				read_stdin(d);
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct drv d;
	char err[EVC_ERR_LEN];
	int rc = 1;
	memset(&d, 0, sizeof d);
	d.notif_pipe[0] = d.notif_pipe[1] = d.status_pipe[0] = d.status_pipe[1] = -1;
	d.kafka_up = -1;
	log_set_progname(PROG);
	if (getenv("EVC_DEBUG") != NULL && strcmp(getenv("EVC_DEBUG"), "1") == 0)
		log_set_level(LOG_DEBUG);
	int pa = parse_args(argc, argv, &d.o);
	if (pa != 0) {
		config_free(&d.o.conf);
		return pa == 1 ? 0 : 2;
	}

	struct services sv = {0};
	if (d.o.file != NULL) {
		char serr[EVC_ERR_LEN];
		if (services_load(d.o.file, &sv, serr) == -1) {
			fprintf(stderr, PROG ": services file '%s': %s\n", d.o.file, serr);
			config_free(&d.o.conf);
			return 2;
		}
	}
	char rid_base[48];
	snprintf(rid_base, sizeof rid_base, "%.20s-%ld-%.0f", d.o.user, (long)getpid(), fmod(clock_wall() * 1000.0, 1e10));
	struct svc_cfg cfg = {
		.user_id = d.o.user,
		.rid_base = rid_base,
		.answer_timeout = d.o.answer_timeout,
		.pause = d.o.pause,
		.file_mode = d.o.file != NULL,
	};
	svc_init(&d.svc, &cfg, emit_line, &d);
	for (size_t i = 0; i < sv.n; i++) {
		char qerr[EVC_ERR_LEN];
		if (svc_enqueue(&d.svc, sv.cp[i], qerr) == -1) /* parser checked already */
			log_error("%s", qerr);
	}
	services_free(&sv);

	const char *prefix = bus_prefix(d.o.prefix);
	bus_name(d.t_requests, sizeof d.t_requests, prefix, MSG_TOPIC_DRIVER_REQUESTS);
	bus_name(d.t_notif, sizeof d.t_notif, prefix, MSG_TOPIC_DRIVER_NOTIFICATIONS);
	bus_name(d.t_status, sizeof d.t_status, prefix, MSG_TOPIC_NETWORK_STATUS);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!d.o.headless) {
		char serr[EVC_ERR_LEN];
		d.scr = driver_screen_open(d.o.no_color, serr);
		if (d.scr == NULL) {
			fprintf(stderr, PROG ": %s (use --headless)\n", serr);
			rc = 1;
			goto out;
		}
		log_set_sink(log_to_screen, &d);
	} else {
		setvbuf(stdout, NULL, _IOLBF, 0);
	}

	struct bus_opts bo = {.brokers = d.o.brokers, .on_state = on_kafka_state, .state_arg = &d};
	d.prod = bus_producer_new(&bo, err);
	if (d.prod == NULL) {
		log_error("kafka producer: %s", err);
		goto out;
	}
	char group[BUS_NAME_MAX], gbase[BUS_NAME_MAX];
	snprintf(gbase, sizeof gbase, "driver-%s-notifications", d.o.user);
	bus_name(group, sizeof group, prefix, gbase);
	const char *ntopics[] = {d.t_notif, d.t_status, d.t_requests};
	if (bus_create_topics(d.o.brokers, ntopics, 3, 3000, err) == -1)
		log_debug("kafka: %s (continuing)", err);
	struct bus_opts co = {.brokers = d.o.brokers};
	d.notif = bus_consumer_new(&co, group, ntopics, 1, err);
	if (d.notif == NULL) {
		log_error("kafka consumer: %s", err);
		goto out;
	}
	d.status = status_consumer_new(&d, err);
	if (d.status == NULL) {
		log_error("kafka status consumer: %s", err);
		goto out;
	}
	if (wake_pipe(d.notif, d.notif_pipe, err) == -1 || wake_pipe(d.status, d.status_pipe, err) == -1) {
		log_error("%s", err);
		goto out;
	}
	d.stdin_open = 1;
	if (d.o.headless)
		fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
	d.sync_deadline = clock_mono() + SYNC_WAIT;
	log_info("driver %s on %s (topics prefix '%s')%s%s", d.o.user, d.o.brokers, prefix,
		 d.o.file ? ", services from " : "", d.o.file ? d.o.file : "");

	run(&d);

	send_quit(&d);
	rc = 0;
out:
	if (d.scr != NULL) {
		log_set_sink(NULL, NULL);
		driver_screen_close(d.scr);
		d.scr = NULL;
	}
	if (rc == 0) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		emit_line(&d, "QUIT");
		svc_summary(&d.svc);
	}
	if (d.sync_target != NULL) {
		rd_kafka_topic_partition_list_destroy(d.sync_target);
		d.sync_target = NULL;
	}
	if (d.status != NULL) {
		rd_kafka_consumer_close(d.status);
		rd_kafka_destroy(d.status);
	}
	if (d.notif != NULL)
		bus_consumer_close(d.notif);
	int undelivered = d.prod != NULL ? bus_producer_close(d.prod, QUIT_FLUSH_MS) : 0;
	/* A failed service is a failed run (exit 1), unless --keep-going: a
	 * script running a services file must be able to tell. */
	if (rc == 0 && !d.o.keep_going && (d.svc.failed > 0 || d.svc.denied > 0 || undelivered > 0)) {
		log_warn("exit 1: %u service(s) failed, %u denied, %d request(s) not delivered (--keep-going exits 0)",
			 d.svc.failed, d.svc.denied, undelivered);
		rc = 1;
	}
	for (int i = 0; i < 2; i++) {
		if (d.notif_pipe[i] >= 0)
			close(d.notif_pipe[i]);
		if (d.status_pipe[i] >= 0)
			close(d.status_pipe[i]);
	}
	msg_free(&d.status_msg);
	svc_free(&d.svc);
	config_free(&d.o.conf);
	return rc;
}
