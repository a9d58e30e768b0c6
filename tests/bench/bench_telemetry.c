/* Telemetry flood: how fast EV_Central works through a
 * backlog of CONSUMO messages that do real work.
 *
 *   1. K monitor links register CPs <cp-prefix>-0..K-1 (link protocol, the
 *      team's codec in the client role) and stay open;
 *   2. K REQUEST_CHARGE on driver_requests (drivers <cp-prefix>-D<i>, which
 *      must be registered in Central's db) open K sessions; each link answers
 *      AUTORIZAR_SUMINISTRO with ACK, so every session is real and known;
 *   3. Central is paused (SIGSTOP to --pid) and M CONSUMO messages, round
 *      robin over the K sessions with increasing seq and kwh, are produced
 *      to cp_telemetry and flushed (the backlog);
 *   4. Central is continued (SIGCONT) and the clock runs until the committed
 *      offsets of Central's group (<prefix>central-processor) on
 *      cp_telemetry reach the end of the backlog. Central commits an offset
 *      only once the message's effects are stored and the CONSUMO_UPDATE it
 *      produced is delivered, so that moment is "caught up".
 * Prints a summary and one "RESULT key=value ..." line.
 *
 * bench_telemetry -p PORT --pid CENTRAL_PID [-b BROKERS] [--prefix P]
 *                 [-k K] [-m M] [--cp-prefix TEL]
 * The topic prefix defaults to $EVC_TOPIC_PREFIX; brokers to $EVC_KAFKA or
 * 127.0.0.1:39092. Central must run with --heartbeat-timeout 0: its links
 * are silent while it is stopped. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "evc/bus.h"
#include "evc/clock.h"
#include "evc/link.h"
#include "evc/msg.h"
#include "evc/net.h"
#include "evc/xalloc.h"

struct tlink {
	int fd;
	int idx;
	struct link_session s;
	int sent_register, registered, authorised, dead;
	char session[MSG_ID_MAX + 1];
	uint64_t seq;
};

static struct {
	const char *brokers, *prefix, *cpp;
	int port, k;
	long m;
	pid_t pid;
} opt = { NULL, NULL, "TEL", 0, 100, 200000, 0 };

static struct tlink *links;
static int n_registered, n_authorised, n_dead;
static char last_err[512];

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bench_telemetry: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (opt.pid > 0)
		kill(opt.pid, SIGCONT); /* never leave Central stopped */
	exit(1);
}

static void link_dead(struct tlink *t, const char *why)
{
	if (t->dead)
		return;
	t->dead = 1;
	n_dead++;
	snprintf(last_err, sizeof last_err, "%s-%d: %s", opt.cpp, t->idx, why);
}

static void flush_out(struct tlink *t)
{
	size_t len;
	const uint8_t *p;
	while (!t->dead && (p = link_session_output(&t->s, &len), len > 0)) {
		ssize_t w = send(t->fd, p, len, MSG_NOSIGNAL);
		if (w > 0) {
			link_session_consumed(&t->s, (size_t)w);
		} else if (w == -1 && errno != EINTR) {
			link_dead(t, strerror(errno));
			return;
		}
	}
}

static void on_frame(void *arg, const char *data, size_t len)
{
	struct tlink *t = arg;
	(void)len;
	if (!t->registered && strncmp(data, "REGISTER_RESULT#", 16) == 0) {
		if (strncmp(data, "REGISTER_RESULT#DENIED", 22) == 0) {
			link_dead(t, data);
			return;
		}
		t->registered = 1;
		n_registered++;
	} else if (strncmp(data, "AUTORIZAR_SUMINISTRO#", 21) == 0 && !t->authorised) {
		/* AUTORIZAR_SUMINISTRO#<driver>#<session>#<price> */
		char buf[LINK_DATA_MAX + 1];
		char *f[8];
		snprintf(buf, sizeof buf, "%s", data);
		int nf = link_split(buf, f, 8);
		if (nf < 4) {
			link_dead(t, "AUTORIZAR_SUMINISTRO without a session id");
			return;
		}
		xstrlcpy(t->session, f[2], sizeof t->session);
		t->authorised = 1;
		n_authorised++;
		link_session_sendf(&t->s, clock_mono(), "ACK#AUTORIZAR_SUMINISTRO");
	}
}

/* Serve every link until cond() holds or the deadline passes. */
static int serve_links(int (*cond)(void), double secs)
{
	double end = clock_mono() + secs;
	struct pollfd *pf = xcalloc((size_t)opt.k, sizeof *pf);
	while (!cond()) {
		double now = clock_mono();
		if (now >= end) {
			free(pf);
			return -1;
		}
		for (int i = 0; i < opt.k; i++) {
			struct tlink *t = &links[i];
			pf[i] = (struct pollfd){ .fd = t->dead ? -1 : t->fd, .events = POLLIN };
			if (!t->dead && link_session_tick(&t->s, now) == -1)
				link_dead(t, t->s.err);
			if (!t->dead && t->s.state == LINK_OPEN && !t->sent_register) {
				t->sent_register = 1;
				link_session_sendf(&t->s, now, "REGISTER#%s-%d#Telemetry bench %d#0.30", opt.cpp, t->idx,
						   t->idx);
			}
			flush_out(t);
		}
		if (poll(pf, (nfds_t)opt.k, 20) == -1 && errno != EINTR)
			die("poll: %s", strerror(errno));
		now = clock_mono();
		for (int i = 0; i < opt.k; i++) {
			struct tlink *t = &links[i];
			if (t->dead || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			uint8_t buf[4096];
			ssize_t r = recv(t->fd, buf, sizeof buf, MSG_DONTWAIT);
			if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR)) {
				link_dead(t, r == 0 ? "closed by Central" : strerror(errno));
				continue;
			}
			if (r > 0 && link_session_input(&t->s, buf, (size_t)r, now, on_frame, t) == -1)
				link_dead(t, t->s.err);
			flush_out(t);
		}
		if (n_dead > 0) {
			free(pf);
			return -1;
		}
	}
	free(pf);
	return 0;
}

static int all_registered(void) { return n_registered == opt.k; }
static int all_authorised(void) { return n_authorised == opt.k; }
static int all_idle(void)
{
	for (int i = 0; i < opt.k; i++)
		if (!links[i].dead && !link_session_idle(&links[i].s))
			return 0;
	return 1;
}

static void produce(rd_kafka_t *p, const char *topic, const struct msg *m)
{
	char merr[EVC_ERR_LEN], berr[EVC_ERR_LEN];
	size_t len;
	char *json = msg_encode(m, &len, merr);
	if (json == NULL)
		die("encode: %s", merr);
	const char *key = m->type == MSG_REQUEST_CHARGE ? m->user_id : m->cp_id;
	/* The local queue may fill during the flood: serve it and retry. */
	while (bus_produce(p, topic, key, json, len, berr) == -1) {
		if (rd_kafka_outq_len(p) == 0)
			die("%s", berr);
		bus_poll(p, 50);
	}
	free(json);
}

/* Sum over the topic's partitions of the group's committed offsets (or of
 * the high watermarks with hw = 1). -1 on error. */
static long long offsets_sum(rd_kafka_t *c, const char *topic, int nparts, int hw)
{
	long long sum = 0;
	if (hw) {
		for (int i = 0; i < nparts; i++) {
			int64_t lo, hi;
			if (rd_kafka_query_watermark_offsets(c, topic, i, &lo, &hi, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
				return -1;
			sum += hi;
		}
		return sum;
	}
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
	for (int i = 0; i < nparts; i++)
		rd_kafka_topic_partition_list_add(l, topic, i);
	if (rd_kafka_committed(c, l, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_topic_partition_list_destroy(l);
		return -1;
	}
	for (int i = 0; i < l->cnt; i++)
		if (l->elems[i].offset >= 0)
			sum += l->elems[i].offset;
	rd_kafka_topic_partition_list_destroy(l);
	return sum;
}

static int partitions_of(rd_kafka_t *c, const char *topic)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(c, topic, NULL);
	if (rd_kafka_metadata(c, 0, rkt, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
	    md->topics[0].partition_cnt < 1)
		die("no metadata for %s", topic);
	int n = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return n;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_telemetry -p PORT --pid CENTRAL_PID [-b BROKERS] [--prefix P] [-k K] [-m M]"
			" [--cp-prefix TEL]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "pid", required_argument, NULL, 'P' },
					    { "prefix", required_argument, NULL, 'x' },
					    { "cp-prefix", required_argument, NULL, 'c' },
					    { NULL, 0, NULL, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "p:b:k:m:", lo, NULL)) != -1) {
		switch (ch) {
		case 'p': opt.port = atoi(optarg); break;
		case 'b': opt.brokers = optarg; break;
		case 'k': opt.k = atoi(optarg); break;
		case 'm': opt.m = atol(optarg); break;
		case 'P': opt.pid = (pid_t)atol(optarg); break;
		case 'x': opt.prefix = optarg; break;
		case 'c': opt.cpp = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.pid <= 0 || opt.k < 1 || opt.k > 10000 ||
	    opt.m < 1)
		usage();
	if (opt.brokers == NULL)
		opt.brokers = getenv("EVC_KAFKA") != NULL ? getenv("EVC_KAFKA") : "127.0.0.1:39092";
	const char *prefix = bus_prefix(opt.prefix);
	char t_req[BUS_NAME_MAX], t_tel[BUS_NAME_MAX], group[BUS_NAME_MAX];
	bus_name(t_req, sizeof t_req, prefix, MSG_TOPIC_DRIVER_REQUESTS);
	bus_name(t_tel, sizeof t_tel, prefix, MSG_TOPIC_CP_TELEMETRY);
	bus_name(group, sizeof group, prefix, "central-processor");
	signal(SIGPIPE, SIG_IGN);

	/* 1. links */
	links = xcalloc((size_t)opt.k, sizeof *links);
	char err[EVC_ERR_LEN];
	for (int i = 0; i < opt.k; i++) {
		links[i].idx = i;
		links[i].fd = net_connect("127.0.0.1", opt.port, 5000, err);
		if (links[i].fd == -1)
			die("link %d: %s", i, err);
		link_session_init(&links[i].s, LINK_CLIENT, clock_mono());
	}
	if (serve_links(all_registered, 30) == -1)
		die("%d of %d links registered (%s)", n_registered, opt.k, last_err[0] ? last_err : "timeout");

	/* 2. sessions */
	char berr[EVC_ERR_LEN];
	struct bus_opts bo = { .brokers = opt.brokers };
	rd_kafka_t *p = bus_producer_new(&bo, berr);
	if (p == NULL)
		die("producer: %s", berr);
	for (int i = 0; i < opt.k; i++) {
		struct msg m;
		msg_init(&m, MSG_REQUEST_CHARGE);
		snprintf(m.user_id, sizeof m.user_id, "%s-D%d", opt.cpp, i);
		snprintf(m.cp_id, sizeof m.cp_id, "%s-%d", opt.cpp, i);
		snprintf(m.request_id, sizeof m.request_id, "bench-%ld-%d", (long)getpid(), i);
		m.has_request_id = 1;
		m.timestamp = clock_wall();
		m.has_timestamp = 1;
		produce(p, t_req, &m);
	}
	rd_kafka_flush(p, 10000);
	if (serve_links(all_authorised, 60) == -1)
		die("%d of %d sessions authorised (%s)", n_authorised, opt.k,
		    last_err[0] ? last_err : "timeout: are the drivers registered?");
	/* Let the ACKs reach Central before it is stopped. */
	if (serve_links(all_idle, 10) == -1)
		die("ACKs not delivered (%s)", last_err[0] ? last_err : "timeout");

	/* The consumer handle only reads the group's committed offsets. */
	char cerr[512];
	rd_kafka_conf_t *cc = rd_kafka_conf_new();
	if (rd_kafka_conf_set(cc, "bootstrap.servers", opt.brokers, cerr, sizeof cerr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(cc, "group.id", group, cerr, sizeof cerr) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(cc, "log_level", "3", cerr, sizeof cerr) != RD_KAFKA_CONF_OK)
		die("consumer config: %s", cerr);
	rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, cerr, sizeof cerr);
	if (c == NULL)
		die("consumer: %s", cerr);
	int nparts = partitions_of(c, t_tel);

	/* 3. the backlog, with Central stopped */
	if (kill(opt.pid, SIGSTOP) == -1)
		die("cannot stop Central (pid %ld): %s", (long)opt.pid, strerror(errno));
	double f0 = clock_mono();
	for (long n = 0; n < opt.m; n++) {
		struct tlink *t = &links[n % opt.k];
		struct msg m;
		msg_init(&m, MSG_CONSUMO);
		snprintf(m.cp_id, sizeof m.cp_id, "%s-%d", opt.cpp, t->idx);
		snprintf(m.user_id, sizeof m.user_id, "%s-D%d", opt.cpp, t->idx);
		xstrlcpy(m.session_id, t->session, sizeof m.session_id);
		m.has_session_id = 1;
		m.seq = ++t->seq;
		m.has_seq = 1;
		m.kwh = (double)t->seq * 0.005;
		m.importe = m.kwh * 0.30;
		m.kw = 18.0;
		m.has_kw = 1;
		produce(p, t_tel, &m);
		if (n % 1000 == 0)
			bus_poll(p, 0);
	}
	if (rd_kafka_flush(p, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("backlog not delivered within 60 s");
	double f1 = clock_mono();
	long long target = offsets_sum(c, t_tel, nparts, 1);
	long long start = offsets_sum(c, t_tel, nparts, 0);
	if (target < 0 || start < 0)
		die("cannot read offsets of %s", t_tel);
	printf("backlog: %ld CONSUMO for %d sessions produced in %.2f s; %lld messages behind (group %s)\n", opt.m,
	       opt.k, f1 - f0, target - start, group);
	fflush(stdout);

	/* 4. catch up */
	double t0 = clock_mono();
	if (kill(opt.pid, SIGCONT) == -1)
		die("cannot continue Central: %s", strerror(errno));
	double t_half = 0, t_done = 0;
	long long last = start;
	while (clock_mono() - t0 < 300) {
		long long cur = offsets_sum(c, t_tel, nparts, 0);
		if (cur >= 0)
			last = cur;
		double now = clock_mono();
		if (t_half == 0 && last - start >= (target - start) / 2)
			t_half = now;
		if (last >= target) {
			t_done = now;
			break;
		}
		poll(NULL, 0, 10); /* polling period of the measurement */
	}
	/* The CONSUMO_UPDATE and the K AUTH_OK produced: the topic is this
	 * run's own, so its end offsets count them. */
	char t_not[BUS_NAME_MAX];
	bus_name(t_not, sizeof t_not, prefix, MSG_TOPIC_DRIVER_NOTIFICATIONS);
	long long notes = offsets_sum(c, t_not, partitions_of(c, t_not), 1);
	rd_kafka_destroy(c);
	bus_producer_close(p, 1000);
	long long done = last - start;
	if (t_done == 0) {
		printf("NOT caught up within 300 s: %lld of %lld committed\n", done, target - start);
		printf("RESULT m=%ld k=%d caught_up=0 committed=%lld\n", opt.m, opt.k, done);
		return 1;
	}
	double secs = t_done - t0;
	printf("caught up: %lld messages in %.2f s = %.0f msg/s (half-way after %.2f s; offsets polled every ~10 ms)\n",
	       done, secs, (double)done / secs, t_half - t0);
	/* A backlog is coalesced (evcharging(7) RULES): at most one
	 * CONSUMO_UPDATE per session per turn of Central. */
	printf("driver_notifications holds %lld messages (%d AUTH_OK and at most %ld CONSUMO_UPDATE: a backlog is "
	       "coalesced)\n",
	       notes, opt.k, opt.m);
	printf("RESULT m=%ld k=%d caught_up=1 secs=%.3f rate=%.0f notifications=%lld\n", opt.m, opt.k, secs,
	       (double)done / secs, notes);
	for (int i = 0; i < opt.k; i++) {
		if (!links[i].dead)
			link_session_close(&links[i].s);
		flush_out(&links[i]);
		close(links[i].fd);
		link_session_free(&links[i].s);
	}
	free(links);
	return 0;
}
