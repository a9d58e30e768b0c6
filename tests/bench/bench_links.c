/* Link-load generator: N monitor links to one Central
 * port from one process (epoll, non-blocking, the team's link codec in the
 * client role). Each link does the handshake, REGISTER#BENCH-<i>#Bench <i>#0.30,
 * a HEARTBEAT every second, and now and then a FAULT followed 2 s later by a
 * RECOVER. It measures:
 *   - FAULT -> ACK at link level (a lower bound of Central's reaction: the
 *     worker thread acknowledged the frame), always;
 *   - FAULT -> charging_points.status = 'AVERIADO' in Central's SQLite file
 *     (the stored state), with --db: a second thread polls the file every
 *     millisecond, so this figure carries up to ~1 ms of polling error.
 * With --tls CA every link is a TLS client (evc/tls.h) verifying Central
 * against CA and HOST, one handshake per connect. --storm S drops every
 * link abruptly S seconds after all registered and reconnects them all at
 * once, and measures the time until all are registered again; a link lost
 * meanwhile (a timeout, a refusal) tries again after a jittered exponential
 * backoff, as EV_CP_M does (0.5 s doubling to 30 s). --resume keeps each
 * link's session ticket and offers it on those reconnects.
 * Prints a human summary and one "RESULT key=value ..." line for scripts.
 *
 * bench_links -p PORT [-H HOST] [-n N] [-d SECONDS] [-f FAULTS_PER_S]
 *             [--db PATH] [--prefix BENCH] [--ramp CONNECTS_IN_FLIGHT]
 *             [--tls CA_FILE] [--storm SECONDS] [--resume] [--storm-ramp IN_FLIGHT]
 *             [--src K]
 *
 * --src K binds link i to the source address 127.0.0.(2 + i % K) (K from 1
 * to 250), so one generator can open more links to one port than the
 * ephemeral ports of one address allow (about 28,000, fewer with TIME_WAIT
 * left by earlier runs).
 *
 * --storm-ramp K keeps at most K of the storm's reconnects in flight (TCP
 * connect plus TLS handshake) instead of all of them: one process doing
 * 10,000 client handshakes at once is the bottleneck itself on a small
 * machine, where real monitors each have their own CPU.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sqlite3.h>

#include "evc/clock.h"
#include "evc/link.h"
#include "evc/net.h"
#include "evc/tls.h"
#include "evc/xalloc.h"

/* B_TLS: TCP connected, TLS handshake under way (still "connecting"). */
enum bstate { B_IDLE, B_CONNECTING, B_TLS, B_LIVE, B_DEAD };

struct blink {
	int fd;
	int idx;
	enum bstate st;
	int want_out;
	int sent_register, registered, faulted, denied;
	struct link_session s;
	SSL *ssl;
	SSL_SESSION *sess; /* --resume: the last ticket */
	double backoff;    /* storm: the next retry's delay */
	/* the FAULT whose ACK we wait for */
	int fault_wait;
	unsigned long fault_ack_at; /* frames_out value once it is acknowledged */
	double fault_t0, recover_at;
};

#define HB_BUCKETS 100 /* 10 ms each: heartbeats spread over the second */

static struct {
	const char *host, *db, *prefix, *ca;
	int port, n, ramp, resume, storm_ramp, src;
	double duration, fault_rate, storm;
} opt = { "127.0.0.1", NULL, "BENCH", NULL, 0, 1000, 256, 0, 0, 0, 20.0, 20.0, 0 };

static struct blink *links;
static int epfd;
static SSL_CTX *tls_ctx;
static unsigned long tls_done, tls_resumed, tls_failed;
static char last_tls_err[EVC_ERR_LEN];

/* Links waiting for a connect, in order (a ring of n), and links lost
 * during a storm waiting for their retry (unordered). */
static int *cq;
static size_t cq_head, cq_len;
static struct retry {
	int idx;
	double at;
} *rq;
static size_t rq_len;
static int storming;
static unsigned long storm_retries;
static char last_retry_reason[256];

static void cq_push(int idx)
{
	cq[(cq_head + cq_len++) % (size_t)opt.n] = idx;
}
static volatile sig_atomic_t stop;
static int n_connecting, n_up, n_registered, n_dead, n_connect_fail, next_connect;
static unsigned long hb_sent, faults_sent, recovers_sent, frames_from_central;
static unsigned long dead_eof, dead_eot, dead_broken, dead_reset;
static char last_dead_reason[256];

/* latencies in ms */
struct samples {
	double *v;
	size_t n, cap;
};
static struct samples lat_ack, lat_db;
static atomic_ulong db_missed;

static void sample_add(struct samples *s, double v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = xreallocarray(s->v, s->cap, sizeof *s->v);
	}
	s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(struct samples *s, double p)
{
	if (s->n == 0)
		return -1;
	size_t i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
	return s->v[i];
}

/* ---------------------------------------------------------------- db probe */

struct probe {
	int idx;
	double t0;
};
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static struct probe probes[4096];
static size_t nprobes;
static atomic_int probe_stop;

static void probe_add(int idx, double t0)
{
	pthread_mutex_lock(&probe_lock);
	if (nprobes < sizeof probes / sizeof probes[0])
		probes[nprobes++] = (struct probe){ idx, t0 };
	pthread_mutex_unlock(&probe_lock);
}

static void *probe_thread(void *arg)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_open_v2(opt.db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 100) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT status FROM charging_points WHERE id = ?", -1, &st, NULL) !=
		    SQLITE_OK) {
		fprintf(stderr, "bench_links: db %s: %s\n", opt.db, db ? sqlite3_errmsg(db) : "?");
		sqlite3_close(db);
		return NULL;
	}
	while (!atomic_load(&probe_stop)) {
		struct probe local[4096];
		size_t n;
		pthread_mutex_lock(&probe_lock);
		n = nprobes;
		memcpy(local, probes, n * sizeof local[0]);
		pthread_mutex_unlock(&probe_lock);
		for (size_t i = 0; i < n; i++) {
			char id[64];
			snprintf(id, sizeof id, "%s-%d", opt.prefix, local[i].idx);
			sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
			int found = 0;
			if (sqlite3_step(st) == SQLITE_ROW) {
				const unsigned char *s = sqlite3_column_text(st, 0);
				found = s != NULL && strcmp((const char *)s, "AVERIADO") == 0;
			}
			sqlite3_reset(st);
			double now = clock_mono();
			int drop = found || now - local[i].t0 > 1.9; /* RECOVER goes at 2 s */
			if (!drop)
				continue;
			pthread_mutex_lock(&probe_lock);
			if (found)
				sample_add(&lat_db, (now - local[i].t0) * 1000.0);
			else
				atomic_fetch_add(&db_missed, 1);
			for (size_t k = 0; k < nprobes; k++)
				if (probes[k].idx == local[i].idx && probes[k].t0 == local[i].t0) {
					probes[k] = probes[--nprobes];
					break;
				}
			pthread_mutex_unlock(&probe_lock);
		}
		poll(NULL, 0, 1); /* polling period of the measurement */
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return NULL;
}

/* ---------------------------------------------------------------- links */

static void set_events(struct blink *b, int out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = (uint32_t)b->idx };
	epoll_ctl(epfd, EPOLL_CTL_MOD, b->fd, &ev);
	b->want_out = out;
}

/* Socket, SSL and session gone; counters and flags back to "not connected". */
static void link_drop(struct blink *b)
{
	if (b->st == B_CONNECTING || b->st == B_TLS)
		n_connecting--;
	else if (b->st == B_LIVE)
		n_up--;
	if (b->registered)
		n_registered--;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	SSL_free(b->ssl);
	b->ssl = NULL;
	if (b->st == B_LIVE)
		link_session_free(&b->s);
	b->registered = b->sent_register = b->faulted = b->fault_wait = 0;
	b->st = B_IDLE;
}

static void link_dead(struct blink *b, const char *why)
{
	if (b->st == B_DEAD || b->st == B_IDLE)
		return;
	if (storming) {
		/* A timeout, a refusal, ALREADY_CONNECTED (Central had not yet
		 * seen the old link go): try again later, as a monitor would. */
		b->denied = 0;
		link_drop(b);
		if (b->backoff == 0)
			b->backoff = 0.5;
		double d = b->backoff * (0.5 + 0.5 * ((double)random() / (double)RAND_MAX));
		b->backoff = b->backoff * 2 > 30 ? 30 : b->backoff * 2;
		rq[rq_len++] = (struct retry){ b->idx, clock_mono() + d };
		storm_retries++;
		snprintf(last_retry_reason, sizeof last_retry_reason, "BENCH-%d: %s", b->idx, why);
		return;
	}
	link_drop(b);
	n_dead++;
	snprintf(last_dead_reason, sizeof last_dead_reason, "BENCH-%d: %s", b->idx, why);
	b->st = B_DEAD;
}

static void flush(struct blink *b)
{
	size_t len;
	const uint8_t *p;
	while ((p = link_session_output(&b->s, &len)), len > 0) {
		if (b->ssl != NULL) {
			char err[EVC_ERR_LEN];
			size_t w;
			enum tls_rc rc = tls_write(b->ssl, p, len, &w, err);
			if (rc == TLS_OK) {
				link_session_consumed(&b->s, w);
				continue;
			}
			if (rc == TLS_WANT_WRITE && !b->want_out)
				set_events(b, 1);
			if (rc == TLS_WANT_WRITE || rc == TLS_WANT_READ)
				return;
			dead_reset++;
			link_dead(b, err);
			return;
		}
		ssize_t w = send(b->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			link_session_consumed(&b->s, (size_t)w);
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!b->want_out)
				set_events(b, 1);
			return;
		}
		dead_reset++;
		link_dead(b, strerror(errno));
		return;
	}
	if (b->want_out)
		set_events(b, 0);
}

static void send_frame(struct blink *b, const char *data, double now)
{
	if (link_session_send(&b->s, data, strlen(data), now, NULL) == -1)
		return;
	flush(b);
}

static void on_frame(void *arg, const char *data, size_t len)
{
	struct blink *b = arg;
	frames_from_central++;
	if (!b->registered && strncmp(data, "REGISTER_RESULT#", 16) == 0) {
		if (strncmp(data, "REGISTER_RESULT#DENIED", 22) == 0) {
			snprintf(last_dead_reason, sizeof last_dead_reason, "BENCH-%d: %s", b->idx, data);
			b->denied = 1;
			return;
		}
		b->registered = 1;
		b->backoff = 0;
		n_registered++;
	}
}

static void after_input(struct blink *b, double now)
{
	if (b->s.state == LINK_OPEN && !b->sent_register) {
		char d[128];
		snprintf(d, sizeof d, "REGISTER#%s-%d#Bench %d#0.30", opt.prefix, b->idx, b->idx);
		b->sent_register = 1;
		send_frame(b, d, now);
	}
	if (b->fault_wait && b->s.frames_out >= b->fault_ack_at) {
		b->fault_wait = 0;
		sample_add(&lat_ack, (now - b->fault_t0) * 1000.0);
	}
}

/* Link-protocol bytes from Central: 0, or -1 if the link died. */
static int link_input(struct blink *b, const uint8_t *buf, size_t n, double now)
{
	if (link_session_input(&b->s, buf, n, now, on_frame, b) == -1) {
		if (b->s.state == LINK_CLOSED)
			dead_eot++;
		else
			dead_broken++;
		char why[EVC_ERR_LEN];
		snprintf(why, sizeof why, "%s", b->s.err);
		link_dead(b, why);
		return -1;
	}
	after_input(b, now);
	flush(b);
	return b->st == B_LIVE ? 0 : -1;
}

static void readable_tls(struct blink *b, double now)
{
	uint8_t buf[16384];
	for (;;) {
		char err[EVC_ERR_LEN];
		size_t n;
		enum tls_rc rc = tls_read(b->ssl, buf, sizeof buf, &n, err);
		if (rc == TLS_WANT_READ)
			return;
		if (rc == TLS_WANT_WRITE) {
			set_events(b, 1);
			return;
		}
		if (rc != TLS_OK) {
			if (rc == TLS_EOF)
				dead_eof++;
			else
				dead_reset++;
			link_dead(b, err);
			return;
		}
		if (link_input(b, buf, n, now) == -1)
			return;
	}
}

/* The TLS handshake, a step per readiness; then the link session. */
static void tls_step(struct blink *b, double now)
{
	char err[EVC_ERR_LEN];
	enum tls_rc rc = tls_handshake(b->ssl, err);
	if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE) {
		if ((rc == TLS_WANT_WRITE) != b->want_out)
			set_events(b, rc == TLS_WANT_WRITE);
		return;
	}
	if (rc != TLS_OK) {
		tls_failed++;
		snprintf(last_tls_err, sizeof last_tls_err, "%s", err);
		link_dead(b, err);
		return;
	}
	tls_done++;
	if (SSL_session_reused(b->ssl))
		tls_resumed++;
	n_connecting--;
	n_up++;
	b->st = B_LIVE;
	link_session_init(&b->s, LINK_CLIENT, now);
	flush(b);
}

static void readable(struct blink *b, double now)
{
	uint8_t buf[8192];
	if (b->ssl != NULL) {
		readable_tls(b, now);
		return;
	}
	for (;;) {
		ssize_t r = recv(b->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			if (r == 0)
				dead_eof++;
			else
				dead_reset++;
			link_dead(b, r == 0 ? "closed by Central" : strerror(errno));
			return;
		}
		if (link_input(b, buf, (size_t)r, now) == -1 || (size_t)r < sizeof buf)
			return;
	}
}

static void connected(struct blink *b, double now)
{
	int err = 0;
	socklen_t sl = sizeof err;
	getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
	if (err != 0) {
		n_connect_fail++;
		link_dead(b, strerror(err));
		return;
	}
	if (tls_ctx != NULL) {
		char e[EVC_ERR_LEN];
		b->ssl = tls_client_new(tls_ctx, b->fd, opt.host, opt.resume ? &b->sess : NULL, e);
		if (b->ssl == NULL) {
			tls_failed++;
			link_dead(b, e);
			return;
		}
		b->st = B_TLS;
		tls_step(b, now);
		return;
	}
	n_connecting--;
	n_up++;
	b->st = B_LIVE;
	link_session_init(&b->s, LINK_CLIENT, now);
	flush(b);
}

/* --src: link idx's source address, the port left to connect (which picks
 * one free for the whole 4-tuple). */
static int bind_source(int fd, int idx)
{
	int one = 1;
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	struct sockaddr_in src = { .sin_family = AF_INET };
	src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + (uint32_t)(idx % opt.src));
	return bind(fd, (const struct sockaddr *)&src, sizeof src);
}

static void start_connects(const struct sockaddr_in *sa, double now)
{
	for (size_t i = 0; i < rq_len;) {
		if (rq[i].at <= now) {
			cq_push(rq[i].idx);
			rq[i] = rq[--rq_len];
		} else {
			i++;
		}
	}
	while (cq_len > 0 && n_connecting < opt.ramp) {
		struct blink *b = &links[cq[cq_head]];
		cq_head = (cq_head + 1) % (size_t)opt.n;
		cq_len--;
		next_connect++;
		b->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (b->fd == -1) {
			n_connect_fail++;
			n_dead++;
			b->st = B_DEAD;
			snprintf(last_dead_reason, sizeof last_dead_reason, "socket: %s", strerror(errno));
			continue;
		}
		net_set_nodelay(b->fd);
		if (opt.src > 0 && bind_source(b->fd, b->idx) == -1) {
			n_connect_fail++;
			close(b->fd);
			b->fd = -1;
			n_dead++;
			b->st = B_DEAD;
			snprintf(last_dead_reason, sizeof last_dead_reason, "bind: %s", strerror(errno));
			continue;
		}
		b->st = B_CONNECTING;
		n_connecting++;
		int rc = connect(b->fd, (const struct sockaddr *)sa, sizeof *sa);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)b->idx };
		b->want_out = 1;
		if (rc == -1 && errno != EINPROGRESS) {
			n_connect_fail++;
			link_dead(b, strerror(errno));
			continue;
		}
		epoll_ctl(epfd, EPOLL_CTL_ADD, b->fd, &ev);
	}
}

/* Links whose heartbeat falls in this 10 ms bucket. */
static void heartbeat_bucket(int bucket, double now)
{
	for (int i = bucket; i < opt.n; i += HB_BUCKETS) {
		struct blink *b = &links[i];
		if (b->st != B_LIVE)
			continue;
		/* This one process plays 10,000 monitors: an answer may be
		 * waiting unread behind the others' work. Read it before
		 * calling the link broken. */
		double dl = link_session_deadline(&b->s);
		if (dl > 0 && now >= dl) {
			readable(b, now);
			if (b->st != B_LIVE)
				continue;
		}
		if (link_session_tick(&b->s, now) == -1) {
			dead_broken++;
			char why[EVC_ERR_LEN];
			snprintf(why, sizeof why, "%s", b->s.err);
			link_dead(b, why);
			continue;
		}
		if (!b->registered)
			continue;
		if (b->faulted && now >= b->recover_at) {
			char d[64];
			snprintf(d, sizeof d, "RECOVER#%s-%d", opt.prefix, b->idx);
			b->faulted = 0;
			recovers_sent++;
			send_frame(b, d, now);
			continue;
		}
		if (link_session_idle(&b->s)) {
			char d[64];
			snprintf(d, sizeof d, "HEARTBEAT#%s-%d", opt.prefix, b->idx);
			hb_sent++;
			send_frame(b, d, now);
		}
	}
}

static void fault_one(double now)
{
	for (int tries = 0; tries < 32; tries++) {
		struct blink *b = &links[random() % opt.n];
		if (b->st != B_LIVE || !b->registered || b->faulted || b->fault_wait)
			continue;
		char d[96];
		snprintf(d, sizeof d, "FAULT#%s-%d#bench", opt.prefix, b->idx);
		b->faulted = 1;
		b->recover_at = now + 2.0;
		b->fault_t0 = now;
		b->fault_wait = 1;
		b->fault_ack_at = b->s.frames_out + (unsigned long)b->s.nqueue + 1;
		faults_sent++;
		if (opt.db != NULL)
			probe_add(b->idx, now);
		send_frame(b, d, now);
		return;
	}
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_links -p PORT [-H HOST] [-n LINKS] [-d SECONDS] [-f FAULTS_PER_S]\n"
			"                   [--db CENTRAL_DB] [--prefix ID_PREFIX] [--ramp CONNECTS_IN_FLIGHT]\n"
			"                   [--tls CA_FILE] [--storm SECONDS] [--resume] [--storm-ramp IN_FLIGHT]\n"
			"                   [--src SOURCE_ADDRESSES]\n");
	exit(2);
}

/* Every link dropped at once, without a word (a network blip), and queued
 * to reconnect at once. */
static void storm(void)
{
	for (int i = 0; i < opt.n; i++) {
		struct blink *b = &links[i];
		if (b->st == B_DEAD || b->st == B_IDLE) /* B_IDLE: already queued */
			continue;
		link_drop(b);
		cq_push(i);
	}
	next_connect = 0;
	storming = 1;
	/* At once, as after a real outage (no client waits for another),
	 * unless --storm-ramp spreads them. */
	opt.ramp = opt.storm_ramp > 0 ? opt.storm_ramp : opt.n;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = { { "db", required_argument, NULL, 'D' },
					       { "prefix", required_argument, NULL, 'P' },
					       { "ramp", required_argument, NULL, 'R' },
					       { "tls", required_argument, NULL, 'T' },
					       { "storm", required_argument, NULL, 'S' },
					       { "resume", no_argument, NULL, 'r' },
					       { "storm-ramp", required_argument, NULL, 'Q' },
					       { "src", required_argument, NULL, 'A' },
					       { NULL, 0, NULL, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "p:H:n:d:f:", lopts, NULL)) != -1) {
		switch (ch) {
		case 'p': opt.port = atoi(optarg); break;
		case 'H': opt.host = optarg; break;
		case 'n': opt.n = atoi(optarg); break;
		case 'd': opt.duration = atof(optarg); break;
		case 'f': opt.fault_rate = atof(optarg); break;
		case 'D': opt.db = optarg; break;
		case 'P': opt.prefix = optarg; break;
		case 'R': opt.ramp = atoi(optarg); break;
		case 'T': opt.ca = optarg; break;
		case 'S': opt.storm = atof(optarg); break;
		case 'r': opt.resume = 1; break;
		case 'Q': opt.storm_ramp = atoi(optarg); break;
		case 'A': opt.src = atoi(optarg); break;
		default: usage();
		}
	}
	if (opt.port < 1 || opt.port > 65535 || opt.n < 1 || opt.n > 60000 || opt.duration <= 0 ||
	    opt.ramp < 1 || opt.fault_rate < 0 || opt.storm < 0 || (opt.resume && opt.ca == NULL) ||
	    opt.src < 0 || opt.src > 250)
		usage();
	if (opt.ca != NULL) {
		char err[EVC_ERR_LEN];
		tls_ctx = tls_client_ctx_new(opt.ca, err);
		if (tls_ctx == NULL) {
			fprintf(stderr, "bench_links: %s\n", err);
			return 2;
		}
	}

	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rlim_t want = (rlim_t)opt.n + 64;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < want)
		fprintf(stderr, "bench_links: warning: only %llu file descriptors (hard limit)\n",
			(unsigned long long)rl.rlim_cur);

	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };
	if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) {
		fprintf(stderr, "bench_links: host must be an IPv4 address: %s\n", opt.host);
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	srandom(12345);

	links = xcalloc((size_t)opt.n, sizeof *links);
	cq = xcalloc((size_t)opt.n, sizeof *cq);
	rq = xcalloc((size_t)opt.n, sizeof *rq);
	for (int i = 0; i < opt.n; i++) {
		links[i].idx = i;
		links[i].fd = -1;
		cq_push(i);
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	pthread_t probe;
	int probing = opt.db != NULL && pthread_create(&probe, NULL, probe_thread, NULL) == 0;

	double t0 = clock_mono(), t_all = 0, end = t0 + opt.duration;
	double t_storm = 0, t_storm_all = 0;
	unsigned long storm_resumed0 = 0, storm_done0 = 0;
	double next_fault = t0, next_report = t0 + 1.0;
	uint64_t tick = (uint64_t)(t0 * 100);
	struct epoll_event evs[512];

	printf("bench_links: %d %s links to %s:%d for %.0f s, %.1f FAULT/s%s\n", opt.n, opt.ca ? "TLS" : "plaintext",
	       opt.host, opt.port, opt.duration, opt.fault_rate, opt.db ? ", polling the db" : "");
	fflush(stdout);
	while (!stop) {
		double now = clock_mono();
		if (now >= end)
			break;
		start_connects(&sa, now);
		int n = epoll_wait(epfd, evs, 512, 10);
		now = clock_mono();
		/* Two passes: the links' traffic first, then the (costly) TLS
		 * handshake steps, as each real monitor has its own CPU. */
		for (int i = 0; i < n; i++) {
			struct blink *b = &links[evs[i].data.u32];
			if (b->st == B_TLS)
				continue;
			if (b->st == B_CONNECTING) {
				if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
					connected(b, now);
				continue;
			}
			if (b->st != B_LIVE)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				readable(b, now);
			if (b->st == B_LIVE && (evs[i].events & EPOLLOUT))
				flush(b);
		}
		for (int i = 0; i < n; i++) {
			struct blink *b = &links[evs[i].data.u32];
			if (b->st == B_TLS)
				tls_step(b, clock_mono());
		}
		/* Heartbeat buckets passed since the last turn (10 ms each). */
		uint64_t t = (uint64_t)(now * 100);
		for (int k = 0; tick < t && k < HB_BUCKETS; k++)
			heartbeat_bucket((int)(++tick % HB_BUCKETS), now);
		tick = t;
		if (t_all == 0 && n_registered == opt.n) {
			t_all = now;
			printf("ALL_REGISTERED %.3f s\n", now - t0);
			fflush(stdout);
		}
		if (opt.storm > 0 && t_all > 0 && t_storm == 0 && now >= t_all + opt.storm) {
			t_storm = now;
			storm_resumed0 = tls_resumed;
			storm_done0 = tls_done;
			storm();
			printf("STORM %d links dropped, all reconnecting\n", opt.n);
			fflush(stdout);
		} else if (t_storm > 0 && t_storm_all == 0 && n_registered == opt.n) {
			t_storm_all = now;
			printf("STORM_ALL_REGISTERED %.3f s (TLS handshakes %lu, resumed %lu; %lu retries after a "
			       "loss%s%s)\n",
			       now - t_storm, tls_done - storm_done0, tls_resumed - storm_resumed0, storm_retries,
			       storm_retries ? ", last: " : "", storm_retries ? last_retry_reason : "");
			fflush(stdout);
		}
		if (opt.fault_rate > 0 && t_all > 0) {
			while (next_fault <= now) {
				fault_one(now);
				next_fault += 1.0 / opt.fault_rate;
			}
		} else {
			next_fault = now;
		}
		if (now >= next_report) {
			next_report += 1.0;
			printf("t=%.0fs up=%d registered=%d dead=%d heartbeats=%lu faults=%lu\n", now - t0, n_up,
			       n_registered, n_dead, hb_sent, faults_sent);
			fflush(stdout);
		}
	}
	if (probing) {
		atomic_store(&probe_stop, 1);
		pthread_join(probe, NULL);
	}

	qsort(lat_ack.v, lat_ack.n, sizeof(double), cmp_double);
	qsort(lat_db.v, lat_db.n, sizeof(double), cmp_double);
	printf("links: %d requested, %d up, %d registered (all after %.2f s), %d lost (connect failed %d, "
	       "EOF %lu, EOT %lu, broken %lu, reset %lu)\n",
	       opt.n, n_up, n_registered, t_all > 0 ? t_all - t0 : -1.0, n_dead, n_connect_fail, dead_eof,
	       dead_eot, dead_broken, dead_reset);
	if (n_dead > 0)
		printf("last loss: %s\n", last_dead_reason);
	if (tls_ctx != NULL)
		printf("TLS: %lu handshakes (%lu resumed), %lu failed%s%s\n", tls_done, tls_resumed, tls_failed,
		       tls_failed ? "; last: " : "", tls_failed ? last_tls_err : "");
	printf("frames sent: %lu heartbeats, %lu FAULT, %lu RECOVER; %lu frames from Central\n", hb_sent,
	       faults_sent, recovers_sent, frames_from_central);
	printf("FAULT->ACK (link level, lower bound): n=%zu p50=%.2f ms p99=%.2f ms max=%.2f ms\n", lat_ack.n,
	       pct(&lat_ack, 50), pct(&lat_ack, 99), lat_ack.n ? lat_ack.v[lat_ack.n - 1] : -1.0);
	if (opt.db != NULL)
		printf("FAULT->db status AVERIADO (stored state, +~1 ms polling): n=%zu p50=%.2f ms p99=%.2f ms "
		       "max=%.2f ms, not seen within 1.9 s: %lu\n",
		       lat_db.n, pct(&lat_db, 50), pct(&lat_db, 99), lat_db.n ? lat_db.v[lat_db.n - 1] : -1.0,
		       (unsigned long)atomic_load(&db_missed));
	printf("RESULT n=%d up=%d registered=%d lost=%d ack_n=%zu ack_p50_ms=%.2f ack_p99_ms=%.2f db_n=%zu "
	       "db_p50_ms=%.2f db_p99_ms=%.2f db_missed=%lu tls=%d tls_handshakes=%lu tls_resumed=%lu "
	       "storm_s=%.3f\n",
	       opt.n, n_up, n_registered, n_dead, lat_ack.n, pct(&lat_ack, 50), pct(&lat_ack, 99), lat_db.n,
	       pct(&lat_db, 50), pct(&lat_db, 99), (unsigned long)atomic_load(&db_missed), tls_ctx != NULL,
	       tls_done, tls_resumed, t_storm_all > 0 ? t_storm_all - t_storm : -1.0);

	int all = n_registered == opt.n && (opt.storm == 0 || t_storm_all > 0);
	for (int i = 0; i < opt.n; i++) {
		if (links[i].st == B_LIVE) {
			link_session_close(&links[i].s);
			flush(&links[i]);
			tls_close_notify(links[i].ssl);
		}
		link_drop(&links[i]);
		SSL_SESSION_free(links[i].sess);
	}
	free(links);
	free(cq);
	free(rq);
	SSL_CTX_free(tls_ctx);
	free(lat_ack.v);
	free(lat_db.v);
	close(epfd);
	return all ? 0 : 1;
}
