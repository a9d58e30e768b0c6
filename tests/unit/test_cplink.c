/* Tests of Central's link server (cplink.c): the real worker thread on
 * 127.0.0.1, port 0, real sockets, and a tiny blocking client built on the
 * link codec, in the clear or over real TLS (OpenSSL through memory BIOs,
 * so a test decides how the bytes reach the socket), with a CA and
 * certificates the openssl command line makes for the run. Every wait has
 * a deadline; nothing sleeps to synchronise. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "evc/clock.h"
#include "evc/link.h"
#include "evc/log.h"
#include "evc/net.h"
#include "evc/tls.h"
#include "src/central/cplink.h"
#include "tests/unit/tls_fixture.h"

#define WAIT 3.0 /* s: generous deadline for anything that should be prompt */

/* ---------------------------------------------------------------- server */

static struct cplink *srv;
static struct cplink_event evq[256]; /* drained but not yet looked at */
static size_t evq_head, evq_len;

static struct cplink_config base_config(void)
{
	struct cplink_config c;
	cplink_config_defaults(&c);
	c.host = "127.0.0.1";
	c.heartbeat_timeout = 0; /* only the heartbeat tests want it */
	c.register_timeout = 0;  /* only the register tests want it */
	c.plain_ok = 1;          /* Release-1 links unless a test says otherwise */
	return c;
}

static void start(const struct cplink_config *c)
{
	char err[EVC_ERR_LEN];
	srv = cplink_new(c, err);
	if (srv == NULL)
		fail_msg("cplink_new: %s", err);
	assert_true(cplink_port(srv) > 0);
	assert_int_equal(cplink_start(srv, err), 0);
	evq_head = evq_len = 0;
}

static int teardown(void **state)
{
	(void)state;
	cplink_free(srv);
	srv = NULL;
	return 0;
}

/* Next event within timeout seconds: 1, or 0 if none came. */
static int next_event(struct cplink_event *ev, double timeout)
{
	double end = clock_mono() + timeout;
	while (evq_head == evq_len) {
		struct pollfd p = { .fd = cplink_event_fd(srv), .events = POLLIN };
		int ms = clock_ms_until(end, 1000);
		if (poll(&p, 1, ms) == 0 && clock_mono() >= end)
			return 0;
		evq_head = 0;
		evq_len = cplink_drain(srv, evq, sizeof evq / sizeof evq[0]);
	}
	*ev = evq[evq_head++];
	return 1;
}

static struct cplink_event expect_event(enum cplink_ev_kind kind)
{
	struct cplink_event ev;
	if (!next_event(&ev, WAIT))
		fail_msg("no event (wanted kind %d) within %.0f s", kind, WAIT);
	if (ev.kind != kind)
		fail_msg("got event kind %d (data '%s' reason '%s'), wanted %d", ev.kind, ev.data, ev.reason,
			 kind);
	return ev;
}

static void expect_frame_event(uint64_t conn, const char *data)
{
	struct cplink_event ev = expect_event(CPL_FRAME);
	assert_true(ev.conn == conn);
	assert_int_equal(ev.len, strlen(data));
	assert_string_equal(ev.data, data);
}

static void expect_no_event(double timeout)
{
	struct cplink_event ev;
	if (next_event(&ev, timeout))
		fail_msg("unexpected event kind %d (data '%s' reason '%s')", ev.kind, ev.data, ev.reason);
}

/* Wait until the server counts n open connections. */
static void wait_count(size_t n)
{
	double end = clock_mono() + WAIT;
	while (cplink_count(srv) != n) {
		if (clock_mono() >= end)
			fail_msg("open links: %zu, wanted %zu", cplink_count(srv), n);
		struct pollfd p = { .fd = cplink_event_fd(srv), .events = POLLIN };
		poll(&p, 1, 10); /* a bounded wait between looks, not a synchronisation */
	}
}

/* ---------------------------------------------------------------- client */

struct client {
	int fd;
	SSL *ssl;     /* NULL: plaintext */
	BIO *rb, *wb; /* ssl's memory BIOs: socket -> rb, wb -> socket */
	int bytewise; /* TLS bytes reach the socket one write(2) each */
	struct link_reader rd;
	uint8_t buf[4096];
	size_t pos, len;
};

static struct client *client_connect(void)
{
	char err[EVC_ERR_LEN];
	struct client *c = calloc(1, sizeof *c);
	assert_non_null(c);
	c->fd = net_connect("127.0.0.1", cplink_port(srv), 2000, err);
	if (c->fd == -1)
		fail_msg("%s", err);
	link_reader_init(&c->rd);
	return c;
}

static void client_free(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	SSL_free(c->ssl);
	link_reader_free(&c->rd);
	free(c);
}

/* What the client's SSL wrote, onto the socket. */
static void tls_out(struct client *c)
{
	uint8_t b[4096];
	int k;
	while ((k = BIO_read(c->wb, b, sizeof b)) > 0) {
		if (!c->bytewise) {
			assert_int_equal(net_write_all(c->fd, b, (size_t)k, 2000), 0);
			continue;
		}
		for (int i = 0; i < k; i++)
			assert_int_equal(net_write_all(c->fd, b + i, 1, 2000), 0);
	}
}

/* Socket bytes into the client's SSL: 1, 0 on EOF or reset, -1 on timeout. */
static int tls_in(struct client *c, double end)
{
	struct pollfd pf = { .fd = c->fd, .events = POLLIN };
	if (poll(&pf, 1, clock_ms_until(end, 1000)) <= 0)
		return clock_mono() >= end ? -1 : 1;
	uint8_t b[4096];
	ssize_t r = recv(c->fd, b, sizeof b, 0);
	if (r == -1 && errno == EINTR)
		return 1;
	if (r <= 0)
		return 0;
	assert_int_equal(BIO_write(c->rb, b, (int)r), (int)r);
	return 1;
}

static SSL_CTX *client_ctx; /* trusts pki ca.pem */

static struct client *tls_start(struct client *c, SSL_CTX *ctx, const char *host, int bytewise,
				SSL_SESSION **resume, char err[EVC_ERR_LEN]);

/* TLS over a fresh connection, verifying the server as host. Returns the
 * client with its handshake done, or NULL with err (the failure). */
static struct client *tls_try_connect(SSL_CTX *ctx, const char *host, int bytewise, SSL_SESSION **resume,
				      char err[EVC_ERR_LEN])
{
	return tls_start(client_connect(), ctx, host, bytewise, resume, err);
}

/* TLS over c's connection (tls_try_connect's, for a client connected by
 * other means); frees c and returns NULL with err if the handshake fails. */
static struct client *tls_start(struct client *c, SSL_CTX *ctx, const char *host, int bytewise,
				SSL_SESSION **resume, char err[EVC_ERR_LEN])
{
	c->bytewise = bytewise;
	c->ssl = tls_client_new(ctx, c->fd, host, resume, err);
	assert_non_null(c->ssl);
	c->rb = BIO_new(BIO_s_mem());
	c->wb = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(c->rb, -1); /* empty means "wait for more" */
	SSL_set_bio(c->ssl, c->rb, c->wb); /* replaces the socket BIO */
	double end = clock_mono() + WAIT;
	for (;;) {
		enum tls_rc rc = tls_handshake(c->ssl, err);
		tls_out(c);
		if (rc == TLS_OK)
			return c;
		if (rc != TLS_WANT_READ && rc != TLS_WANT_WRITE)
			break;
		int r = tls_in(c, end);
		if (r == 0) {
			snprintf(err, EVC_ERR_LEN, "EOF during the TLS handshake");
			break;
		}
		if (r == -1) {
			snprintf(err, EVC_ERR_LEN, "TLS handshake timed out");
			break;
		}
	}
	client_free(c);
	return NULL;
}

static struct client *tls_connect(int bytewise)
{
	char err[EVC_ERR_LEN];
	struct client *c = tls_try_connect(client_ctx, "127.0.0.1", bytewise, NULL, err);
	if (c == NULL)
		fail_msg("TLS handshake: %s", err);
	return c;
}

static void client_raw(struct client *c, const void *p, size_t n)
{
	if (c->ssl != NULL) {
		assert_int_equal(SSL_write(c->ssl, p, (int)n), (int)n); /* a memory BIO takes it all */
		tls_out(c);
		return;
	}
	assert_int_equal(net_write_all(c->fd, p, n, 2000), 0);
}

/* Refill c->buf: 1, 0 on EOF (close_notify, EOF, reset), -1 on timeout. */
static int client_fill(struct client *c, double end)
{
	if (c->ssl == NULL) {
		struct pollfd pf = { .fd = c->fd, .events = POLLIN };
		int ms = clock_ms_until(end, 1000);
		if (poll(&pf, 1, ms) == 0)
			return clock_mono() >= end ? -1 : 1;
		ssize_t r = recv(c->fd, c->buf, sizeof c->buf, 0);
		if (r == -1 && errno == EINTR)
			return 1;
		if (r <= 0)
			return 0;
		c->pos = 0;
		c->len = (size_t)r;
		return 1;
	}
	for (;;) {
		char err[EVC_ERR_LEN];
		size_t n;
		enum tls_rc rc = tls_read(c->ssl, c->buf, sizeof c->buf, &n, err);
		tls_out(c);
		if (rc == TLS_OK) {
			c->pos = 0;
			c->len = n;
			return 1;
		}
		if (rc != TLS_WANT_READ)
			return 0;
		int r = tls_in(c, end);
		if (r != 1)
			return r;
	}
}

static void client_byte(struct client *c, uint8_t b)
{
	client_raw(c, &b, 1);
}

static void client_frame(struct client *c, const char *data)
{
	uint8_t f[LINK_FRAME_MAX];
	int n = link_frame_build(f, sizeof f, data, strlen(data), NULL);
	assert_true(n > 0);
	client_raw(c, f, (size_t)n);
}

/* Next item from the server: 1, 0 on EOF or reset, -1 on timeout. */
static int client_item(struct client *c, struct link_item *it, double timeout)
{
	double end = clock_mono() + timeout;
	for (;;) {
		const uint8_t *p = c->buf + c->pos;
		size_t n = c->len - c->pos;
		int got = link_reader_next(&c->rd, &p, &n, it);
		c->pos = (size_t)(p - c->buf);
		if (got)
			return 1;
		int r = client_fill(c, end);
		if (r != 1)
			return r;
	}
}

static void client_expect_ctrl(struct client *c, uint8_t ctrl)
{
	struct link_item it;
	int r = client_item(c, &it, WAIT);
	if (r != 1)
		fail_msg("wanted control byte 0x%02x, got %s", ctrl, r == 0 ? "EOF" : "nothing");
	if (it.kind != LINK_ITEM_CTRL || it.ctrl != ctrl)
		fail_msg("wanted control byte 0x%02x, got item kind %d ctrl 0x%02x data '%s'", ctrl, it.kind,
			 it.ctrl, it.data);
}

static void client_expect_frame(struct client *c, const char *data)
{
	struct link_item it;
	int r = client_item(c, &it, WAIT);
	if (r != 1)
		fail_msg("wanted frame '%s', got %s", data, r == 0 ? "EOF" : "nothing");
	if (it.kind != LINK_ITEM_FRAME)
		fail_msg("wanted frame '%s', got item kind %d ctrl 0x%02x", data, it.kind, it.ctrl);
	assert_string_equal(it.data, data);
}

static void client_expect_eof(struct client *c)
{
	struct link_item it;
	int r = client_item(c, &it, WAIT);
	if (r != 0)
		fail_msg("wanted EOF, got %s (kind %d ctrl 0x%02x)", r == 1 ? "an item" : "nothing", it.kind,
			 it.ctrl);
}

/* ENQ, ACK, and the server's CPL_UP. Returns the connection id. */
static uint64_t client_handshake(struct client *c)
{
	client_byte(c, LINK_ENQ);
	client_expect_ctrl(c, LINK_ACK);
	struct cplink_event ev = expect_event(CPL_UP);
	assert_true(ev.conn != 0);
	assert_true(strncmp(ev.peer, "127.0.0.1:", 10) == 0);
	return ev.conn;
}

/* ---------------------------------------------------------------- tests */

static void test_handshake_frame_and_send(void **state)
{
	struct cplink_config cfg = base_config();
	start(&cfg);
	struct client *c = client_connect();
	uint64_t id = client_handshake(c);
	assert_int_equal(cplink_count(srv), 1);

	client_frame(c, "REGISTER#MAD-01#C/ Serrano 10#0.25");
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "REGISTER#MAD-01#C/ Serrano 10#0.25");

	cplink_send(srv, id, "REGISTER_RESULT#FIRST");
	client_expect_frame(c, "REGISTER_RESULT#FIRST");
	client_byte(c, LINK_ACK);
	/* One frame in flight at a time: the second goes after the ACK. */
	cplink_send(srv, id, "PARAR#CENTRAL");
	client_expect_frame(c, "PARAR#CENTRAL");
	client_byte(c, LINK_ACK);
	client_frame(c, "ACK#PARAR");
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "ACK#PARAR");

	/* The peer leaving: CPL_DOWN with a reason. */
	client_free(c);
	struct cplink_event ev = expect_event(CPL_DOWN);
	assert_true(ev.conn == id);
	assert_string_equal(ev.reason, "connection closed by peer");
	wait_count(0);

	/* Commands for a gone or never-existing connection change nothing. */
	cplink_send(srv, id, "PARAR#CENTRAL");
	cplink_close(srv, id, "late");
	cplink_send(srv, 12345, "PARAR#CENTRAL");
	struct client *c2 = client_connect();
	uint64_t id2 = client_handshake(c2);
	assert_true(id2 != id); /* never reused */
	client_frame(c2, "HEARTBEAT#MAD-01");
	client_expect_ctrl(c2, LINK_ACK);
	expect_frame_event(id2, "HEARTBEAT#MAD-01");
	client_free(c2);
	expect_event(CPL_DOWN);

	struct cplink_stats st;
	cplink_stats(srv, &st);
	assert_true(st.accepted == 2 && st.frames_in == 3 && st.frames_out == 2);
}

static void test_peer_eot(void **state)
{
	struct cplink_config cfg = base_config();
	start(&cfg);
	struct client *c = client_connect();
	uint64_t id = client_handshake(c);
	client_byte(c, LINK_EOT);
	struct cplink_event ev = expect_event(CPL_DOWN);
	assert_true(ev.conn == id);
	assert_non_null(strstr(ev.reason, "EOT"));
	client_expect_eof(c);
	client_free(c);
	wait_count(0);
}

static void test_nack_resend_and_broken(void **state)
{
	struct cplink_config cfg = base_config();
	start(&cfg);
	struct client *c = client_connect();
	uint64_t id = client_handshake(c);

	/* A frame with a wrong LRC is answered NACK and never delivered. */
	const char *d = "FAULT#MAD-01";
	uint8_t bad[32];
	size_t n = 0;
	bad[n++] = LINK_STX;
	memcpy(bad + n, d, strlen(d));
	n += strlen(d);
	bad[n++] = LINK_ETX;
	bad[n++] = (uint8_t)(link_lrc(d, strlen(d)) ^ 0x5a);
	client_raw(c, bad, n);
	client_expect_ctrl(c, LINK_NACK);
	client_frame(c, d); /* the resend */
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, d);

	/* Our frame NACKed is sent again; NACKed three times breaks the link. */
	cplink_send(srv, id, "REANUDAR#CENTRAL");
	client_expect_frame(c, "REANUDAR#CENTRAL");
	client_byte(c, LINK_NACK);
	client_expect_frame(c, "REANUDAR#CENTRAL");
	client_byte(c, LINK_NACK);
	client_expect_frame(c, "REANUDAR#CENTRAL");
	client_byte(c, LINK_NACK);
	struct cplink_event ev = expect_event(CPL_DOWN);
	assert_true(ev.conn == id);
	assert_non_null(strstr(ev.reason, "NACK"));
	client_expect_eof(c);
	client_free(c);
	wait_count(0);
}

static void test_garbage_and_big_frame(void **state)
{
	struct cplink_config cfg = base_config();
	start(&cfg);
	struct client *c = client_connect();
	uint64_t id = client_handshake(c);

	/* Noise outside a frame: skipped, not answered, link kept. */
	client_raw(c, "hello \xff\xfe garbage", 17);
	/* A 2 KB frame: NACK, link kept. */
	static uint8_t big[2051];
	big[0] = LINK_STX;
	memset(big + 1, 'A', 2048);
	big[2049] = LINK_ETX;
	big[2050] = link_lrc((const char *)big + 1, 2048);
	client_raw(c, big, sizeof big);
	client_expect_ctrl(c, LINK_NACK);
	/* DATA with a control character inside: NACK. */
	uint8_t ctl[] = { LINK_STX, 'O', 0x01, 'K', LINK_ETX, 0 };
	ctl[5] = link_lrc((const char *)ctl + 1, 3);
	client_raw(c, ctl, sizeof ctl);
	client_expect_ctrl(c, LINK_NACK);
	/* The largest valid frame still goes through. */
	static char max[LINK_DATA_MAX + 1];
	memcpy(max, "REGISTER#", 9);
	memset(max + 9, 'x', LINK_DATA_MAX - 9);
	max[LINK_DATA_MAX] = '\0';
	client_frame(c, max);
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, max);
	client_frame(c, "HEARTBEAT#MAD-01");
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "HEARTBEAT#MAD-01");
	assert_int_equal(cplink_count(srv), 1);
	client_free(c);
	expect_event(CPL_DOWN);
}

static void test_single_bytes(void **state)
{
	struct cplink_config cfg = base_config();
	start(&cfg);
	struct client *c = client_connect();
	client_byte(c, LINK_ENQ);
	client_expect_ctrl(c, LINK_ACK);
	uint64_t id = expect_event(CPL_UP).conn;

	const char *d = "REGISTER#MAD-01#C/ Serrano 10#0.25";
	uint8_t f[LINK_FRAME_MAX];
	int n = link_frame_build(f, sizeof f, d, strlen(d), NULL);
	for (int i = 0; i < n; i++)
		client_byte(c, f[i]); /* one write (one TCP segment, NODELAY) per byte */
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, d);
	/* And two frames in one write. */
	uint8_t two[64];
	int a = link_frame_build(two, sizeof two, "HEARTBEAT#A", 11, NULL);
	int b = link_frame_build(two + a, sizeof two - (size_t)a, "HEARTBEAT#B", 11, NULL);
	client_raw(c, two, (size_t)(a + b));
	client_expect_ctrl(c, LINK_ACK);
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "HEARTBEAT#A");
	expect_frame_event(id, "HEARTBEAT#B");
	client_free(c);
	expect_event(CPL_DOWN);
}

static void test_handshake_timeout_and_bad_start(void **state)
{
	struct cplink_config cfg = base_config();
	cfg.handshake_timeout = 1.0;
	start(&cfg);

	/* 1,000 connections that never send ENQ do not hurt a working link
	 * (fewer if this process may not open 2,000 descriptors). */
	enum { IDLE_MAX = 1000 };
	static struct client *idle[IDLE_MAX];
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 2 * IDLE_MAX + 100 && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < 2 * IDLE_MAX + 100 ? rl.rlim_max : 2 * IDLE_MAX + 100;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int IDLE = rl.rlim_cur >= 2 * IDLE_MAX + 100 ? IDLE_MAX : (int)(rl.rlim_cur - 100) / 2;
	for (int i = 0; i < IDLE; i++)
		idle[i] = client_connect();
	struct client *c = client_connect();
	double t0 = clock_mono();
	uint64_t id = client_handshake(c);
	client_frame(c, "HEARTBEAT#MAD-01");
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "HEARTBEAT#MAD-01");
	/* Served while every idle connection was still waiting for its ENQ. */
	assert_true(clock_mono() - t0 < 1.0);
	assert_true(cplink_count(srv) == (size_t)IDLE + 1);

	/* They are closed after the timeout, without any event. */
	for (int i = 0; i < IDLE; i++) {
		client_expect_eof(idle[i]);
		client_free(idle[i]);
	}
	wait_count(1);
	expect_no_event(0.05);

	/* Anything but ENQ first: closed, no event. */
	struct client *b = client_connect();
	client_frame(b, "REGISTER#MAD-02#x#0.3");
	client_expect_eof(b);
	client_free(b);
	wait_count(1);
	expect_no_event(0.05);
	client_free(c);
	expect_event(CPL_DOWN);
}

static void test_heartbeat_timeout(void **state)
{
	struct cplink_config cfg = base_config();
	cfg.heartbeat_timeout = 1.0;
	start(&cfg);
	struct client *c = client_connect();
	uint64_t id = client_handshake(c);

	/* Frames every 0.1 s keep it alive well past the timeout. Only the
	 * first HEARTBEAT reaches the main thread: a repeat says nothing new,
	 * but still counts as life here. A different one is forwarded. */
	client_frame(c, "HEARTBEAT#MAD-01");
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "HEARTBEAT#MAD-01");
	double end = clock_mono() + 2.0;
	while (clock_mono() < end) {
		client_frame(c, "HEARTBEAT#MAD-01");
		client_expect_ctrl(c, LINK_ACK);
		expect_no_event(0.1);
	}
	client_frame(c, "HEARTBEAT#MAD-02");
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "HEARTBEAT#MAD-02");
	/* Then silence (a half-open peer looks just like this): closed. */
	double t0 = clock_mono();
	struct cplink_event ev = expect_event(CPL_DOWN);
	double took = clock_mono() - t0;
	assert_true(ev.conn == id);
	assert_string_equal(ev.reason, "heartbeat timeout");
	assert_true(took > 0.5 && took < 2.0);
	client_expect_ctrl(c, LINK_EOT);
	client_expect_eof(c);
	client_free(c);
	wait_count(0);
}

static void test_write_queue_cap(void **state)
{
	struct cplink_config cfg = base_config();
	cfg.wq_cap = 2 * LINK_FRAME_MAX;
	start(&cfg);
	struct client *c = client_connect();
	uint64_t id = client_handshake(c);

	/* The client never answers: frames pile up behind the first. */
	static char d[1001];
	memcpy(d, "AUTORIZAR_SUMINISTRO#", 21);
	memset(d + 21, 'x', 1000 - 21);
	for (int i = 0; i < 4; i++)
		cplink_send(srv, id, d);
	struct cplink_event ev = expect_event(CPL_DOWN);
	assert_true(ev.conn == id);
	assert_string_equal(ev.reason, "write queue full");
	client_expect_frame(c, d); /* the one in flight had been written */
	client_expect_eof(c);
	client_free(c);
	wait_count(0);

	/* Invalid DATA from the caller is dropped, the link stays. */
	c = client_connect();
	id = client_handshake(c);
	cplink_send(srv, id, "bad opcode");
	cplink_send(srv, id, "OK");
	client_expect_frame(c, "OK");
	client_byte(c, LINK_ACK);
	assert_int_equal(cplink_count(srv), 1);
	client_free(c);
	expect_event(CPL_DOWN);
}

/* Back-pressure tests: a client socket with a small receive buffer, set
 * before connect so the window is small from the start (the ACKs back up
 * after some KB), and the server's end of it a small send buffer. Not
 * smaller: below a few KB the window the client offers falls under the
 * MSS the server derives from it, and the server then sends only at the
 * zero-window probe's backed-off pace (ss shows timer:persist), which
 * stalled the TLS test for more than its 30 s under load. */
enum { BP_RCVBUF = 16384, BP_SNDBUF = 2048, BP_PER_BLOCK = 1000, BP_BLOCK = BP_PER_BLOCK * 15, BP_BLOCKS = 400 };

static struct client *client_connect_small(void)
{
	struct client *c = calloc(1, sizeof *c);
	assert_non_null(c);
	link_reader_init(&c->rd);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	int small = BP_RCVBUF;
	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)cplink_port(srv)) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return c;
}

/* The server's end of c (a socket of this process) gets a small send
 * buffer. */
static void server_sndbuf_small(const struct client *c)
{
	struct sockaddr_in me, peer;
	socklen_t ml = sizeof me;
	assert_int_equal(getsockname(c->fd, (struct sockaddr *)&me, &ml), 0);
	int small = BP_SNDBUF, found = 0;
	for (int fd = 3; fd < 4096 && !found; fd++) {
		socklen_t pl = sizeof peer;
		if (fd != c->fd && getpeername(fd, (struct sockaddr *)&peer, &pl) == 0 && pl == ml &&
		    peer.sin_port == me.sin_port && peer.sin_addr.s_addr == me.sin_addr.s_addr) {
			assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
			found = 1;
		}
	}
	assert_true(found);
}

/* BP_PER_BLOCK frames "HEARTBEAT#BP", 15 bytes each. */
static const uint8_t *heartbeat_block(void)
{
	static uint8_t block[BP_BLOCK];
	size_t fl = 0;
	for (int i = 0; i < BP_PER_BLOCK; i++) {
		int n = link_frame_build(block + fl, sizeof block - fl, "HEARTBEAT#BP", 12, NULL);
		assert_int_equal(n, 15);
		fl += (size_t)n;
	}
	return block;
}

/* What the client has for the socket (a block of frames, or over TLS its
 * record), sent without blocking, so it may lag. */
struct bp_outq {
	uint8_t b[64 * 1024];
	size_t pos, len;
};

/* The next block into q, once q has gone out. */
static void bp_next_block(struct client *c, struct bp_outq *q, const uint8_t *block)
{
	assert_true(q->pos == q->len);
	q->pos = q->len = 0;
	if (c->ssl == NULL) {
		memcpy(q->b, block, BP_BLOCK);
		q->len = BP_BLOCK;
		return;
	}
	assert_int_equal(SSL_write(c->ssl, block, BP_BLOCK), BP_BLOCK); /* one record */
	int k;
	while (q->len < sizeof q->b && (k = BIO_read(c->wb, q->b + q->len, (int)(sizeof q->b - q->len))) > 0)
		q->len += (size_t)k;
	assert_int_equal(BIO_pending(c->wb), 0);
}

/* Send what q holds without blocking; waits up to 10 ms for room. */
static void bp_send(struct client *c, struct bp_outq *q)
{
	if (q->pos == q->len)
		return;
	ssize_t w = send(c->fd, q->b + q->pos, q->len - q->pos, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w > 0) {
		q->pos += (size_t)w;
		return;
	}
	int e = errno;
	if (w == -1 && e != EAGAIN && e != EWOULDBLOCK) {
		struct cplink_event ev = { .kind = CPL_UP };
		while (next_event(&ev, 0.5) && ev.kind != CPL_DOWN)
			;
		fail_msg("send: %s; server: %s", strerror(e), ev.kind == CPL_DOWN ? ev.reason : "no CPL_DOWN");
	}
	struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
	poll(&pf, 1, 10);
}

/* The sending side of a back-pressure run: BP_BLOCKS blocks, one at a
 * time through q. */
struct bp_tx {
	struct bp_outq q;
	const uint8_t *block;
	size_t blocks; /* taken into q so far */
};

/* The next block into tx's queue once it has gone out, and what it holds
 * sent. 1 while something is still to send, 0 once everything is out. */
static int bp_push(struct client *c, struct bp_tx *tx)
{
	if (tx->q.pos == tx->q.len && tx->blocks < BP_BLOCKS) {
		bp_next_block(c, &tx->q, tx->block);
		tx->blocks++;
	}
	bp_send(c, &tx->q);
	return tx->q.pos < tx->q.len || tx->blocks < BP_BLOCKS;
}

/* What arrived, all of it ACKs: their count added to *acks. */
static void bp_read_acks(struct client *c, size_t *acks)
{
	uint8_t b[16384];
	ssize_t r = recv(c->fd, b, sizeof b, MSG_DONTWAIT);
	if (r == 0)
		fail_msg("link closed after %zu ACKs", *acks);
	if (c->ssl == NULL) {
		for (ssize_t i = 0; i < r; i++, (*acks)++)
			if (b[i] != LINK_ACK)
				fail_msg("byte 0x%02x after %zu ACKs", b[i], *acks);
		return;
	}
	if (r > 0)
		assert_int_equal(BIO_write(c->rb, b, (int)r), (int)r);
	int k;
	while ((k = SSL_read(c->ssl, b, sizeof b)) > 0)
		for (int i = 0; i < k; i++, (*acks)++)
			if (b[i] != LINK_ACK)
				fail_msg("byte 0x%02x after %zu ACKs", b[i], *acks);
	if (SSL_get_error(c->ssl, k) != SSL_ERROR_WANT_READ)
		fail_msg("TLS read failed after %zu ACKs", *acks);
	assert_int_equal(BIO_pending(c->wb), 0); /* nothing to answer */
}

/* A peer that sends without reading our ACKs: once they back up, the link
 * is not read (back-pressure) instead of our answers piling up to wq_cap
 * and the link being closed; read again, every frame gets its ACK. c is
 * the client of link id, plaintext or TLS, connected with small buffers. */
static void back_pressure_run(struct client *c, uint64_t id)
{
	/* 400,000 frames: their ACKs (400 KB) are more than wq_cap. */
	static struct bp_tx tx;
	tx.q.pos = tx.q.len = 0;
	tx.block = heartbeat_block();
	tx.blocks = 0;
	size_t acks = 0;
	const size_t frames = (size_t)BP_BLOCKS * BP_PER_BLOCK;
	double end = clock_mono() + 30;
	struct cplink_stats st;
	/* Send without reading until the server stops reading this link. */
	for (;;) {
		cplink_stats(srv, &st);
		if (st.rd_pauses > 0)
			break;
		if (clock_mono() > end)
			fail_msg("the server never stopped reading: %zu of %d blocks sent, frames in %llu, bytes out %llu",
				 tx.blocks, BP_BLOCKS, (unsigned long long)st.frames_in, (unsigned long long)st.bytes_out);
		if (!bp_push(c, &tx)) {
			/* All in the kernel's buffers: the server reads on. */
			struct pollfd pf = { .fd = c->fd, .events = 0 };
			poll(&pf, 1, 10);
		}
	}
	assert_int_equal(cplink_count(srv), 1);
	/* Sending on for 300 ms without reading (a window to show what does
	 * not happen, not a wait for something): the server reads only as far
	 * as its answers fit in the buffers between us (the client's receive
	 * buffer, the server's send buffer) plus what a paused link holds,
	 * about 45,000 ACKs here; at most a quarter of the frames sent. */
	for (double t1 = clock_mono() + 0.3; clock_mono() < t1;) {
		if (!bp_push(c, &tx)) {
			struct pollfd pf = { .fd = c->fd, .events = 0 };
			poll(&pf, 1, 10);
		}
	}
	cplink_stats(srv, &st);
	if (st.frames_in > BP_BLOCKS * BP_PER_BLOCK / 4)
		fail_msg("%llu frames taken with no ACK read (of %d sent): not held back", (unsigned long long)st.frames_in,
			 BP_BLOCKS * BP_PER_BLOCK);
	assert_int_equal(cplink_count(srv), 1);
	/* Now read the answers while sending the rest: one ACK per frame. */
	while (acks < frames) {
		if (clock_mono() > end) {
			cplink_stats(srv, &st);
			fail_msg("%zu ACKs for %zu frames sent (%zu bytes unsent); server: frames in %llu, bytes out %llu",
				 acks, tx.blocks * BP_PER_BLOCK, tx.q.len - tx.q.pos, (unsigned long long)st.frames_in,
				 (unsigned long long)st.bytes_out);
		}
		int more = bp_push(c, &tx);
		struct pollfd pf = { .fd = c->fd, .events = POLLIN };
		poll(&pf, 1, more ? 0 : 100);
		bp_read_acks(c, &acks);
	}
	assert_int_equal(acks, frames);
	assert_true(tx.q.pos == tx.q.len && tx.blocks == BP_BLOCKS);
	/* The link is alive: the first HEARTBEAT was forwarded, nothing else
	 * (no CPL_DOWN for a full queue). */
	expect_frame_event(id, "HEARTBEAT#BP");
	cplink_send(srv, id, "OK");
	client_expect_frame(c, "OK");
	assert_int_equal(cplink_count(srv), 1);
	struct cplink_event ev;
	assert_int_equal(next_event(&ev, 0), 0);
	cplink_stats(srv, &st);
	assert_true(st.frames_in == frames);
	client_free(c);
	expect_event(CPL_DOWN);
}

static void test_back_pressure(void **state)
{
	(void)state;
	struct cplink_config cfg = base_config();
	start(&cfg);
	struct client *c = client_connect_small();
	uint64_t id = client_handshake(c);
	server_sndbuf_small(c);
	back_pressure_run(c, id);
}

static void test_close_sends_eot(void **state)
{
	struct cplink_config cfg = base_config();
	start(&cfg);
	struct client *c = client_connect();
	uint64_t id = client_handshake(c);
	client_frame(c, "REGISTER#bad id!#x#0.3");
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "REGISTER#bad id!#x#0.3");

	/* The answer goes out first, then EOT once it is acknowledged. */
	cplink_send(srv, id, "REGISTER_RESULT#DENIED#invalid cp_id");
	cplink_close(srv, id, "register denied");
	client_expect_frame(c, "REGISTER_RESULT#DENIED#invalid cp_id");
	client_frame(c, "HEARTBEAT#x"); /* crossing traffic must not reset the close away */
	client_byte(c, LINK_ACK);
	client_expect_ctrl(c, LINK_ACK);
	client_expect_ctrl(c, LINK_EOT);
	client_expect_eof(c);
	expect_frame_event(id, "HEARTBEAT#x");
	struct cplink_event ev = expect_event(CPL_DOWN);
	assert_true(ev.conn == id);
	assert_string_equal(ev.reason, "register denied");
	client_free(c);
	wait_count(0);
}

static void test_max_conns(void **state)
{
	struct cplink_config cfg = base_config();
	cfg.max_conns = 2;
	start(&cfg);
	struct client *a = client_connect();
	struct client *b = client_connect();
	client_handshake(a);
	client_handshake(b);

	struct client *x = client_connect();
	client_byte(x, LINK_ENQ);
	struct link_item it;
	int r = client_item(x, &it, WAIT);
	/* Refused: NACK then EOF (or a reset if our ENQ crossed the close). */
	assert_true(r == 0 || (r == 1 && it.kind == LINK_ITEM_CTRL && it.ctrl == LINK_NACK));
	if (r == 1)
		client_expect_eof(x);
	client_free(x);
	assert_int_equal(cplink_count(srv), 2);
	struct cplink_stats st;
	cplink_stats(srv, &st);
	assert_true(st.refused == 1);

	/* A freed place is usable again. */
	client_free(a);
	expect_event(CPL_DOWN);
	wait_count(1);
	struct client *y = client_connect();
	client_handshake(y);
	client_free(y);
	client_free(b);
	expect_event(CPL_DOWN);
	expect_event(CPL_DOWN);
}

static void test_shutdown_sends_eot(void **state)
{
	struct cplink_config cfg = base_config();
	start(&cfg);
	struct client *c[3];
	uint64_t id[3];
	for (int i = 0; i < 3; i++) {
		c[i] = client_connect();
		id[i] = client_handshake(c[i]);
	}
	struct client *h = client_connect(); /* still in the handshake */
	wait_count(4);
	double t0 = clock_mono();
	cplink_shutdown(srv);
	assert_true(clock_mono() - t0 < 1.5);
	for (int i = 0; i < 3; i++) {
		client_expect_ctrl(c[i], LINK_EOT);
		client_expect_eof(c[i]);
		client_free(c[i]);
		struct cplink_event ev = expect_event(CPL_DOWN);
		assert_true(ev.conn == id[0] || ev.conn == id[1] || ev.conn == id[2]);
		assert_string_equal(ev.reason, "Central shutting down");
	}
	client_expect_eof(h);
	client_free(h);
	expect_no_event(0.01);
	assert_int_equal(cplink_count(srv), 0);
	cplink_shutdown(srv); /* twice is fine */
}

static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Out of descriptors: accept pauses a second instead of spinning, then
 * picks the waiting connection up by itself. */
static void test_accept_pause_on_emfile(void **state)
{
	/* valgrind keeps descriptors of its own below the limit and emulates
	 * RLIMIT_NOFILE, so the arithmetic below does not hold there. */
	const char *pre = getenv("LD_PRELOAD");
	if (pre != NULL && strstr(pre, "valgrind") != NULL)
		skip();
	struct cplink_config cfg = base_config();
	start(&cfg);
	struct rlimit saved;
	getrlimit(RLIMIT_NOFILE, &saved);

	/* Leave exactly one descriptor free: the client's. open() takes the
	 * lowest free number, so after these every descriptor up to the last
	 * one is in use, whatever the process inherited (CI harnesses leave
	 * some open); the limit then ends just above it. */
	int fill[4], nfill = 0;
	while (nfill < 4) {
		fill[nfill] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_true(fill[nfill] >= 0);
		nfill++;
	}
	struct rlimit rl = saved;
	rl.rlim_cur = (rlim_t)fill[nfill - 1] + 1;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(probe, -1); /* nothing left */
	close(fill[--nfill]); /* the client's descriptor */
	struct client *c = client_connect();
	client_byte(c, LINK_ENQ);

	double end = clock_mono() + WAIT;
	struct cplink_stats st;
	for (cplink_stats(srv, &st); st.accept_pauses == 0; cplink_stats(srv, &st)) {
		if (clock_mono() >= end)
			fail_msg("the server never ran out of descriptors");
		poll(NULL, 0, 5);
	}
	double t0 = clock_mono(), cpu0 = cpu_seconds();
	assert_true(st.accepted == 0); /* it ran out on our client, not after it */
	while (nfill > 0)
		close(fill[--nfill]);
	setrlimit(RLIMIT_NOFILE, &saved);

	client_expect_ctrl(c, LINK_ACK);
	expect_event(CPL_UP);
	double waited = clock_mono() - t0, cpu = cpu_seconds() - cpu0;
	/* The pause lasts ACCEPT_PAUSE (1 s) from the failed accept, and t0 is
	 * just after it; the upper bound is the deadlines above. */
	assert_true(waited > 0.5); /* paused, then resumed by itself */
	assert_true(cpu < 0.3 * waited); /* and did not spin meanwhile */
	cplink_stats(srv, &st);
	assert_true(st.accept_pauses >= 1 && st.accepted == 1);
	client_free(c);
	expect_event(CPL_DOWN);
}

static void test_port_taken(void **state)
{
	struct cplink_config cfg = base_config();
	start(&cfg);
	struct cplink_config again = base_config();
	again.port = cplink_port(srv);
	char err[EVC_ERR_LEN] = "";
	assert_null(cplink_new(&again, err));
	assert_true(err[0] != '\0');

	struct cplink_config bad = base_config();
	bad.max_conns = 0;
	assert_null(cplink_new(&bad, err));
	assert_non_null(strstr(err, "max"));
	/* Never started: free is still clean. */
	struct cplink_config ok = base_config();
	struct cplink *l = cplink_new(&ok, err);
	assert_non_null(l);
	cplink_free(l);
}

/* ---------------------------------------------------------------- TLS */

static SSL_CTX *server_ctx; /* pki central.pem / central.key */

static struct cplink_config tls_config(int plain_ok)
{
	struct cplink_config c = base_config();
	c.tls = server_ctx;
	c.plain_ok = plain_ok;
	return c;
}

/* ENQ, ACK, and CPL_UP saying the link's kind. Returns the connection id. */
static uint64_t handshake_kind(struct client *c, int tls)
{
	client_byte(c, LINK_ENQ);
	client_expect_ctrl(c, LINK_ACK);
	struct cplink_event ev = expect_event(CPL_UP);
	assert_true(ev.conn != 0);
	assert_int_equal(ev.tls, tls);
	assert_true(strncmp(ev.peer, "127.0.0.1:", 10) == 0);
	return ev.conn;
}

static void test_tls_link(void **state)
{
	struct cplink_config cfg = tls_config(0);
	start(&cfg);
	struct client *c = tls_connect(0);
	uint64_t id = handshake_kind(c, 1);

	client_frame(c, "REGISTER#MAD-01#C/ Serrano 10#0.25");
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "REGISTER#MAD-01#C/ Serrano 10#0.25");
	cplink_send(srv, id, "REGISTER_RESULT#FIRST");
	client_expect_frame(c, "REGISTER_RESULT#FIRST");
	client_byte(c, LINK_ACK);

	/* The largest frame, both ways. */
	static char max[LINK_DATA_MAX + 1];
	memcpy(max, "HEARTBEAT#", 10);
	memset(max + 10, 'x', LINK_DATA_MAX - 10);
	client_frame(c, max);
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, max);
	max[0] = 'Z';
	cplink_send(srv, id, max);
	client_expect_frame(c, max);
	client_byte(c, LINK_ACK);

	/* Central's close: EOT inside TLS, then the end of the stream. */
	cplink_close(srv, id, "bye");
	client_expect_ctrl(c, LINK_EOT);
	client_expect_eof(c);
	struct cplink_event ev = expect_event(CPL_DOWN);
	assert_true(ev.conn == id);
	assert_string_equal(ev.reason, "bye");
	assert_int_equal(ev.tls, 1);
	client_free(c);
	wait_count(0);

	struct cplink_stats st;
	cplink_stats(srv, &st);
	assert_true(st.tls_handshakes == 1 && st.tls_resumed == 0 && st.tls_failed == 0);
	assert_true(st.frames_in == 2 && st.frames_out == 2 && st.plain_refused == 0);
}

/* A second connection resumes with the ticket of the first: no certificate,
 * no signature. Also the DNS-name path of the verification. */
static void test_tls_resume(void **state)
{
	struct cplink_config cfg = tls_config(0);
	start(&cfg);
	SSL_SESSION *sess = NULL;
	char err[EVC_ERR_LEN];
	struct client *c = tls_try_connect(client_ctx, "localhost", 0, &sess, err);
	if (c == NULL)
		fail_msg("%s", err);
	assert_false(SSL_session_reused(c->ssl));
	handshake_kind(c, 1); /* reading the ACK read the ticket before it */
	assert_non_null(sess);
	client_byte(c, LINK_EOT);
	expect_event(CPL_DOWN);
	client_free(c);

	c = tls_try_connect(client_ctx, "localhost", 0, &sess, err);
	if (c == NULL)
		fail_msg("%s", err);
	assert_true(SSL_session_reused(c->ssl));
	uint64_t id = handshake_kind(c, 1);
	client_frame(c, "HEARTBEAT#MAD-01");
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "HEARTBEAT#MAD-01");
	client_free(c);
	expect_event(CPL_DOWN);
	SSL_SESSION_free(sess);

	struct cplink_stats st;
	cplink_stats(srv, &st);
	assert_true(st.tls_handshakes == 2 && st.tls_resumed == 1);
}

/* Every TLS byte in its own segment: handshake, ENQ, a frame. */
static void test_tls_bytewise(void **state)
{
	struct cplink_config cfg = tls_config(0);
	start(&cfg);
	struct client *c = tls_connect(1);
	uint64_t id = handshake_kind(c, 1);
	client_frame(c, "REGISTER#MAD-01#C/ Serrano 10#0.25");
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "REGISTER#MAD-01#C/ Serrano 10#0.25");
	/* And two frames in one TLS record. */
	uint8_t two[64];
	int a = link_frame_build(two, sizeof two, "HEARTBEAT#A", 11, NULL);
	int b = link_frame_build(two + a, sizeof two - (size_t)a, "HEARTBEAT#B", 11, NULL);
	client_raw(c, two, (size_t)(a + b));
	client_expect_ctrl(c, LINK_ACK);
	client_expect_ctrl(c, LINK_ACK);
	expect_frame_event(id, "HEARTBEAT#A");
	expect_frame_event(id, "HEARTBEAT#B");
	client_free(c);
	expect_event(CPL_DOWN);
}

/* The bytes of a ClientHello, from a client SSL on memory BIOs. */
static size_t client_hello(uint8_t *out, size_t cap)
{
	SSL *ssl = SSL_new(client_ctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(rb, -1);
	SSL_set_bio(ssl, rb, wb);
	SSL_set_connect_state(ssl);
	assert_int_equal(SSL_do_handshake(ssl), -1); /* waits for the ServerHello */
	int n = BIO_read(wb, out, (int)cap);
	assert_true(n > 20 && out[0] == 0x16);
	SSL_free(ssl);
	ERR_clear_error();
	return (size_t)n;
}

static void test_tls_stalled_handshake(void **state)
{
	struct cplink_config cfg = tls_config(0);
	cfg.handshake_timeout = 1.0;
	start(&cfg);

	/* Half a ClientHello, then silence: closed at the deadline. */
	uint8_t hello[2048];
	size_t n = client_hello(hello, sizeof hello);
	struct client *h = client_connect();
	client_raw(h, hello, n / 2);
	double t0 = clock_mono();
	client_expect_eof(h);
	double took = clock_mono() - t0;
	assert_true(took > 0.8 && took < 2.0);
	client_free(h);
	wait_count(0);

	/* A whole TLS handshake but no ENQ: the link handshake's own timeout
	 * then, from the end of the TLS one. */
	struct client *c = tls_connect(0);
	t0 = clock_mono();
	client_expect_eof(c);
	took = clock_mono() - t0;
	assert_true(took > 0.8 && took < 2.0);
	client_free(c);
	wait_count(0);
	expect_no_event(0.05); /* neither came up: nothing to report */

	struct cplink_stats st;
	cplink_stats(srv, &st);
	assert_true(st.tls_failed == 1 && st.tls_handshakes == 1);
}

static void test_plain_refused_then_allowed(void **state)
{
	struct cplink_config cfg = tls_config(0);
	start(&cfg);
	struct client *p = client_connect();
	client_byte(p, LINK_ENQ);
	client_expect_ctrl(p, LINK_NACK);
	client_expect_eof(p);
	client_free(p);
	struct cplink_event ev = expect_event(CPL_REFUSED);
	assert_string_equal(ev.reason, "plaintext link refused");
	assert_true(strncmp(ev.peer, "127.0.0.1:", 10) == 0);
	assert_int_equal(ev.tls, 0);
	wait_count(0);
	expect_no_event(0.05); /* never up, so no CPL_DOWN either */
	struct cplink_stats st;
	cplink_stats(srv, &st);
	assert_true(st.plain_refused == 1 && st.accepted == 1);
	/* TLS on the same port meanwhile. */
	struct client *t = tls_connect(0);
	handshake_kind(t, 1);
	client_free(t);
	expect_event(CPL_DOWN);
	cplink_free(srv);

	/* plain_ok: both kinds on the one port. */
	cfg.plain_ok = 1;
	start(&cfg);
	p = client_connect();
	uint64_t idp = handshake_kind(p, 0);
	t = tls_connect(0);
	uint64_t idt = handshake_kind(t, 1);
	client_frame(p, "HEARTBEAT#PLAIN");
	client_expect_ctrl(p, LINK_ACK);
	expect_frame_event(idp, "HEARTBEAT#PLAIN");
	client_frame(t, "HEARTBEAT#TLS");
	client_expect_ctrl(t, LINK_ACK);
	expect_frame_event(idt, "HEARTBEAT#TLS");
	client_free(p);
	client_free(t);
	expect_event(CPL_DOWN);
	expect_event(CPL_DOWN);
	cplink_stats(srv, &st);
	assert_true(st.plain_refused == 0 && st.tls_handshakes == 1);
}

static void test_first_byte_garbage(void **state)
{
	struct cplink_config cfg = tls_config(1);
	start(&cfg);
	struct client *g = client_connect();
	client_raw(g, "GET / HTTP/1.0\r\n\r\n", 18);
	client_expect_eof(g);
	client_free(g);
	g = client_connect();
	client_byte(g, 0x00);
	client_expect_eof(g);
	client_free(g);
	wait_count(0);
	expect_no_event(0.05);
	cplink_free(srv);

	/* A ClientHello where no certificate is configured: closed. */
	cfg = base_config();
	start(&cfg);
	char err[EVC_ERR_LEN];
	struct client *c = tls_try_connect(client_ctx, "127.0.0.1", 0, NULL, err);
	assert_null(c);
	wait_count(0);
	expect_no_event(0.05);
}

static void test_register_timeout(void **state)
{
	struct cplink_config cfg = tls_config(1);
	cfg.register_timeout = 1.0;
	start(&cfg);
	struct client *a = tls_connect(0);
	uint64_t ida = handshake_kind(a, 1);
	struct client *b = client_connect();
	double t0 = clock_mono();
	uint64_t idb = handshake_kind(b, 0);
	client_frame(a, "REGISTER#A#x#0.3");
	client_expect_ctrl(a, LINK_ACK);
	expect_frame_event(ida, "REGISTER#A#x#0.3");
	cplink_registered(srv, ida);
	cplink_registered(srv, 12345); /* unknown: ignored */

	/* b never registers (a frame is not a registration). */
	client_frame(b, "HEARTBEAT#B");
	client_expect_ctrl(b, LINK_ACK);
	expect_frame_event(idb, "HEARTBEAT#B");
	struct cplink_event ev = expect_event(CPL_DOWN);
	double took = clock_mono() - t0;
	assert_true(ev.conn == idb);
	assert_string_equal(ev.reason, "not registered within 1 s");
	assert_true(took > 0.8 && took < 2.0);
	client_expect_ctrl(b, LINK_EOT);
	client_expect_eof(b);
	client_free(b);

	/* a lives on past its own deadline. */
	expect_no_event(1.0);
	client_frame(a, "HEARTBEAT#A");
	client_expect_ctrl(a, LINK_ACK);
	expect_frame_event(ida, "HEARTBEAT#A");
	assert_int_equal(cplink_count(srv), 1);
	client_free(a);
	expect_event(CPL_DOWN);
}

/* 1,000 TLS handshakes under way at once (fewer if this process may not
 * open 2,000 descriptors), then a frame on each. Meanwhile an open link is
 * answered before the server has got through the ClientHellos: handshakes
 * wait their turn behind it. */
static void test_tls_1000_links(void **state)
{
	enum { MAXN = 1000 };
	static struct client *cl[MAXN];
	static int done[MAXN];
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 2 * MAXN + 100 && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < 2 * MAXN + 100 ? rl.rlim_max : 2 * MAXN + 100;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int N = rl.rlim_cur >= 2 * MAXN + 100 ? MAXN : (int)(rl.rlim_cur - 100) / 2;
	struct cplink_config cfg = tls_config(0);
	cfg.max_conns = 2 * MAXN;
	/* The deadline is another test's business: under valgrind a thousand
	 * handshakes take longer than the 5 s default. */
	cfg.handshake_timeout = 120;
	start(&cfg);
	struct client *fast = tls_connect(0);
	uint64_t fid = handshake_kind(fast, 1);

	char err[EVC_ERR_LEN];
	for (int i = 0; i < N; i++) {
		cl[i] = client_connect();
		cl[i]->ssl = tls_client_new(client_ctx, cl[i]->fd, "127.0.0.1", NULL, err);
		assert_non_null(cl[i]->ssl);
		cl[i]->rb = BIO_new(BIO_s_mem());
		cl[i]->wb = BIO_new(BIO_s_mem());
		BIO_set_mem_eof_return(cl[i]->rb, -1);
		SSL_set_bio(cl[i]->ssl, cl[i]->rb, cl[i]->wb);
		done[i] = 0;
	}
	/* Every ClientHello made first, then all sent in one go, so that the
	 * server has all of them to answer when the open link speaks. */
	for (int i = 0; i < N; i++)
		assert_int_equal(tls_handshake(cl[i]->ssl, err), TLS_WANT_READ);
	for (int i = 0; i < N; i++)
		tls_out(cl[i]);
	static struct pollfd pf[MAXN];
	client_frame(fast, "HEARTBEAT#FAST");
	client_expect_ctrl(fast, LINK_ACK);
	for (int i = 0; i < N; i++)
		pf[i] = (struct pollfd){ .fd = cl[i]->fd, .events = POLLIN };
	int answered = poll(pf, (nfds_t)N, 0);
	/* Valgrind runs one thread at a time and lets the server's busy
	 * handshake loop run on long after the ACK, so what this counts there
	 * is valgrind's scheduler; the default and sanitizer suites check it. */
	const char *vg = getenv("EVC_VALGRIND");
	if (vg && *vg)
		printf("# under valgrind: %d of %d ClientHellos answered by the open link's ACK (not checked)\n",
		       answered, N);
	else if (answered >= N / 2)
		fail_msg("the open link waited for %d of %d ClientHellos to be answered", answered, N);
	expect_frame_event(fid, "HEARTBEAT#FAST");
	int left = N;
	double end = clock_mono() + 120; /* valgrind makes 1,000 handshakes slow */
	while (left > 0) {
		if (clock_mono() >= end)
			fail_msg("%d of %d TLS handshakes not done", left, N);
		for (int i = 0; i < N; i++)
			pf[i] = (struct pollfd){ .fd = done[i] ? -1 : cl[i]->fd, .events = POLLIN };
		if (poll(pf, (nfds_t)N, 1000) <= 0)
			continue;
		for (int i = 0; i < N; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (tls_in(cl[i], clock_mono() + 1) != 1)
				fail_msg("link %d: EOF during the TLS handshake", i);
			enum tls_rc rc = tls_handshake(cl[i]->ssl, err);
			tls_out(cl[i]);
			if (rc == TLS_OK) {
				done[i] = 1;
				left--;
				client_byte(cl[i], LINK_ENQ);
			} else if (rc != TLS_WANT_READ) {
				fail_msg("link %d: %s", i, err);
			}
		}
	}
	for (int i = 0; i < N; i++)
		client_expect_ctrl(cl[i], LINK_ACK);
	for (int i = 0; i < N; i++) {
		struct cplink_event ev = expect_event(CPL_UP);
		assert_int_equal(ev.tls, 1);
	}
	assert_int_equal(cplink_count(srv), (size_t)N + 1);
	for (int i = 0; i < N; i++) {
		char d[32];
		snprintf(d, sizeof d, "HEARTBEAT#L%d", i);
		client_frame(cl[i], d);
	}
	for (int i = 0; i < N; i++)
		client_expect_ctrl(cl[i], LINK_ACK);
	for (int i = 0; i < N; i++)
		expect_event(CPL_FRAME);
	struct cplink_stats st;
	cplink_stats(srv, &st);
	assert_true(st.tls_handshakes == (uint64_t)N + 1 && st.tls_failed == 0 && st.frames_in == (uint64_t)N + 1);
	for (int i = 0; i < N; i++)
		client_free(cl[i]);
	client_free(fast);
	for (int i = 0; i <= N; i++)
		expect_event(CPL_DOWN);
	wait_count(0);
}

/* The same over TLS, a record of 1,000 frames at a time: a read leaves
 * decrypted frames above the socket, which are answered before the pause. */
static void test_tls_back_pressure(void **state)
{
	(void)state;
	struct cplink_config cfg = tls_config(0);
	start(&cfg);
	char err[EVC_ERR_LEN];
	struct client *c = tls_start(client_connect_small(), client_ctx, "127.0.0.1", 0, NULL, err);
	if (c == NULL)
		fail_msg("TLS handshake: %s", err);
	uint64_t id = handshake_kind(c, 1);
	server_sndbuf_small(c);
	back_pressure_run(c, id);
}

static int tls_setup(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	if (pki_make() == -1) {
		fprintf(stderr, "# openssl could not make the test certificates in %s\n", pki_dir);
		return -1;
	}
	server_ctx = tls_server_ctx_new(pki_path("central.pem"), pki_path("central.key"), err);
	client_ctx = server_ctx != NULL ? tls_client_ctx_new(pki_path("ca.pem"), err) : NULL;
	if (client_ctx == NULL) {
		fprintf(stderr, "# %s\n", err);
		return -1;
	}
	return 0;
}

static int tls_teardown(void **state)
{
	(void)state;
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	pki_remove();
	return 0;
}

int main(void)
{
	log_set_level(getenv("EVC_DEBUG") ? LOG_DEBUG : LOG_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_handshake_frame_and_send, teardown),
		cmocka_unit_test_teardown(test_peer_eot, teardown),
		cmocka_unit_test_teardown(test_nack_resend_and_broken, teardown),
		cmocka_unit_test_teardown(test_garbage_and_big_frame, teardown),
		cmocka_unit_test_teardown(test_single_bytes, teardown),
		cmocka_unit_test_teardown(test_handshake_timeout_and_bad_start, teardown),
		cmocka_unit_test_teardown(test_heartbeat_timeout, teardown),
		cmocka_unit_test_teardown(test_write_queue_cap, teardown),
		cmocka_unit_test_teardown(test_back_pressure, teardown),
		cmocka_unit_test_teardown(test_close_sends_eot, teardown),
		cmocka_unit_test_teardown(test_max_conns, teardown),
		cmocka_unit_test_teardown(test_shutdown_sends_eot, teardown),
		cmocka_unit_test_teardown(test_accept_pause_on_emfile, teardown),
		cmocka_unit_test_teardown(test_port_taken, teardown),
		cmocka_unit_test_teardown(test_tls_link, teardown),
		cmocka_unit_test_teardown(test_tls_resume, teardown),
		cmocka_unit_test_teardown(test_tls_bytewise, teardown),
		cmocka_unit_test_teardown(test_tls_stalled_handshake, teardown),
		cmocka_unit_test_teardown(test_plain_refused_then_allowed, teardown),
		cmocka_unit_test_teardown(test_first_byte_garbage, teardown),
		cmocka_unit_test_teardown(test_register_timeout, teardown),
		cmocka_unit_test_teardown(test_tls_1000_links, teardown),
		cmocka_unit_test_teardown(test_tls_back_pressure, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("cplink", tests, tls_setup, tls_teardown);
}
