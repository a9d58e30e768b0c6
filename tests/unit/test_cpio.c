/* cpio: the CP programs' link plumbing (non-blocking connect, accept,
 * service, close; the TLS client against Central's real link server with
 * certificates the openssl command line makes), backoff, the stdin line
 * reader and number parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evc/clock.h"
#include "evc/net.h"
#include "evc/tls.h"
#include "src/central/cplink.h"
#include "src/cp/cpio.h"
#include "tests/unit/tls_fixture.h"

/* ---- line reader ---- */

struct got {
	char lines[8][1100];
	int n;
};

static void collect(void *arg, char *line)
{
	struct got *g = arg;
	if (g->n < 8)
		snprintf(g->lines[g->n++], sizeof g->lines[0], "%s", line);
}

static int events_seen;
static char last_event[1024];
static void on_event(void *arg, const char *line)
{
	(void)arg;
	events_seen++;
	snprintf(last_event, sizeof last_event, "%s", line);
}

static void test_lines_split_across_reads(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	struct cpio_lines lb;
	memset(&lb, 0, sizeof lb);
	struct got g = {0};

	assert_int_equal(write(p[1], "k\nd 1", 5), 5);
	assert_int_equal(cpio_lines_read(&lb, p[0], collect, &g), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.lines[0], "k");
	/* nothing available: not an EOF */
	assert_int_equal(cpio_lines_read(&lb, p[0], collect, &g), 0);
	assert_int_equal(write(p[1], "01\r\nq", 5), 5);
	assert_int_equal(cpio_lines_read(&lb, p[0], collect, &g), 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.lines[1], "d 101"); /* CR dropped */
	close(p[1]);
	/* EOF delivers the unterminated last line, then reports the end */
	assert_int_equal(cpio_lines_read(&lb, p[0], collect, &g), -1);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.lines[2], "q");
	close(p[0]);
}

static void test_lines_overlong_dropped(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	struct cpio_lines lb;
	memset(&lb, 0, sizeof lb);
	struct got g = {0};
	cpio_set_event_sink(on_event, NULL);
	events_seen = 0;
	char big[3000];
	memset(big, 'x', sizeof big);
	for (size_t off = 0; off < sizeof big;) {
		ssize_t w = write(p[1], big + off, sizeof big - off > 400 ? 400 : sizeof big - off);
		assert_true(w > 0);
		off += (size_t)w;
		cpio_lines_read(&lb, p[0], collect, &g);
	}
	assert_int_equal(write(p[1], "\nu\n", 3), 3);
	cpio_lines_read(&lb, p[0], collect, &g);
	assert_int_equal(g.n, 1); /* the long line is gone, the next one survives */
	assert_string_equal(g.lines[0], "u");
	assert_int_equal(events_seen, 1);
	assert_non_null(strstr(last_event, "too long"));
	cpio_set_event_sink(NULL, NULL);
	close(p[0]);
	close(p[1]);
}

/* ---- backoff ---- */

static void test_backoff_doubles_to_cap_with_jitter(void **state)
{
	(void)state;
	double cur = 0.5;
	double expect = 0.5;
	for (int i = 0; i < 12; i++) {
		double d = cpio_backoff(&cur, 30.0);
		assert_true(d >= expect / 2 - 1e-9 && d <= expect + 1e-9);
		expect = expect * 2 > 30.0 ? 30.0 : expect * 2;
		assert_true(cur == expect);
	}
	assert_true(cur == 30.0);
}

/* ---- numbers ---- */

static void test_parse_double(void **state)
{
	(void)state;
	double v;
	assert_int_equal(cpio_parse_double("0.25", &v), 0);
	assert_true(v == 0.25);
	assert_int_equal(cpio_parse_double("7", &v), 0);
	assert_int_equal(cpio_parse_double("", &v), -1);
	assert_int_equal(cpio_parse_double("1x", &v), -1);
	assert_int_equal(cpio_parse_double("0.3 ", &v), -1);
	assert_int_equal(cpio_parse_double("nan", &v), -1);
	assert_int_equal(cpio_parse_double("inf", &v), -1);
	assert_int_equal(cpio_parse_double("1e999", &v), -1);
}

static void test_path_beside(void **state)
{
	(void)state;
	char p[32];
	assert_int_equal(cpio_path_beside(p, sizeof p, "/etc/cp/MAD-01.cred", "pki/ca.pem"), 0);
	assert_string_equal(p, "/etc/cp/pki/ca.pem");
	assert_int_equal(cpio_path_beside(p, sizeof p, "MAD-01.cred", "pki/ca.pem"), 0);
	assert_string_equal(p, "pki/ca.pem");
	assert_int_equal(cpio_path_beside(p, sizeof p, "/x.cred", "pki/ca.pem"), 0);
	assert_string_equal(p, "/pki/ca.pem");
	assert_int_equal(cpio_path_beside(p, sizeof p, "/a/very/long/folder/name/x.cred", "pki/ca.pem"), -1);
}

/* ---- links over loopback ---- */

struct frames {
	char last[LINK_DATA_MAX + 1];
	int n;
};

static void on_frame(void *arg, const char *data, size_t len)
{
	struct frames *f = arg;
	snprintf(f->last, sizeof f->last, "%.*s", (int)len, data);
	f->n++;
}

/* Run both ends until cond holds or 3 s pass. Returns cond. */
#define PUMP_UNTIL(cond)                                                                                 \
	({                                                                                               \
		double end_ = clock_mono() + 3;                                                          \
		while (!(cond) && clock_mono() < end_) {                                                 \
			struct pollfd pf[2] = {{.fd = cli.fd, .events = cpio_link_events(&cli)},          \
					       {.fd = srv.fd, .events = cpio_link_events(&srv)}};         \
			poll(pf, 2, 50);                                                                 \
			char e1[EVC_ERR_LEN], e2[EVC_ERR_LEN];                                         \
			double now_ = clock_mono();                                                      \
			rc_cli = cpio_link_service(&cli, pf[0].revents, now_, on_frame, &fc, e1);        \
			rc_srv = cpio_link_service(&srv, pf[1].revents, now_, on_frame, &fs, e2);        \
			if (rc_srv < 0)                                                                  \
				snprintf(srv_err, sizeof srv_err, "%s", e2);                             \
			if (rc_cli < 0 || rc_srv < 0)                                                    \
				break;                                                                   \
		}                                                                                        \
		(cond);                                                                                  \
	})

static void test_link_roundtrip_and_close(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	int lfd = net_listen("127.0.0.1", 0, 4, err);
	assert_true(lfd >= 0);
	int port = net_local_port(lfd);
	struct cpio_link cli, srv;
	struct frames fc = {0}, fs = {0};
	int rc_cli = 0, rc_srv = 0;
	char srv_err[EVC_ERR_LEN] = "";
	cpio_link_init(&cli);
	cpio_link_init(&srv);
	assert_int_equal(cpio_link_events(&cli), 0); /* down: nothing to poll */
	char cerr[EVC_ERR_LEN];
	assert_int_equal(cpio_link_connect(&cli, "127.0.0.1", port, clock_mono(), cerr), 0);
	assert_int_equal(cpio_link_sendf(&cli, clock_mono(), "HEALTH_CHECK#X"), -1); /* not connected yet */

	int afd = -1;
	double end = clock_mono() + 3;
	while (afd < 0 && clock_mono() < end) {
		struct pollfd pf[2] = {{.fd = lfd, .events = POLLIN}, {.fd = cli.fd, .events = cpio_link_events(&cli)}};
		poll(pf, 2, 50);
		if (pf[1].revents)
			assert_int_equal(cpio_link_service(&cli, pf[1].revents, clock_mono(), on_frame, &fc, cerr), 0);
		afd = accept(lfd, NULL, NULL);
	}
	assert_true(afd >= 0);
	cpio_link_accept(&srv, afd, "test", clock_mono());

	assert_true(PUMP_UNTIL(cpio_link_open(&cli) && cpio_link_open(&srv)));
	assert_int_equal(cpio_link_sendf(&cli, clock_mono(), "HEALTH_CHECK#%s", "MAD-01"), 0);
	assert_true(PUMP_UNTIL(fs.n == 1));
	assert_string_equal(fs.last, "HEALTH_CHECK#MAD-01");
	assert_int_equal(cpio_link_sendf(&srv, clock_mono(), "OK"), 0);
	assert_true(PUMP_UNTIL(fc.n == 1));
	assert_string_equal(fc.last, "OK");
	/* invalid DATA is refused before it reaches the wire */
	assert_int_equal(cpio_link_sendf(&srv, clock_mono(), "bad opcode"), -1);

	/* a purposeful close reaches the peer as EOT */
	cpio_link_close(&cli, 1);
	assert_int_equal(cli.fd, -1);
	end = clock_mono() + 3;
	int r = 0;
	while (r == 0 && clock_mono() < end) {
		struct pollfd pf = {.fd = srv.fd, .events = cpio_link_events(&srv)};
		poll(&pf, 1, 50);
		r = cpio_link_service(&srv, pf.revents, clock_mono(), on_frame, &fs, srv_err);
	}
	assert_int_equal(r, -1);
	assert_non_null(strstr(srv_err, "EOT"));
	cpio_link_close(&srv, 0);
	close(lfd);
}

static void test_connect_refused(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	int lfd = net_listen("127.0.0.1", 0, 1, err);
	int port = net_local_port(lfd);
	close(lfd); /* nobody listens there now */
	struct cpio_link l;
	cpio_link_init(&l);
	char cerr[EVC_ERR_LEN] = "";
	int r = cpio_link_connect(&l, "127.0.0.1", port, clock_mono(), cerr);
	if (r == 0) {
		double end = clock_mono() + 3;
		while (r == 0 && clock_mono() < end) {
			struct pollfd pf = {.fd = l.fd, .events = cpio_link_events(&l)};
			poll(&pf, 1, 50);
			r = cpio_link_service(&l, pf.revents, clock_mono(), NULL, NULL, cerr);
		}
	}
	assert_int_equal(r, -1);
	assert_non_null(strstr(cerr, "refused"));
	cpio_link_close(&l, 0);
	assert_int_equal(cpio_link_connect(&l, "no-such-host.invalid", 1, clock_mono(), cerr), -1);
	assert_non_null(strstr(cerr, "resolve"));
}

/* A name with several addresses (localhost as ::1 then 127.0.0.1): each is
 * tried in turn, also when the first fails only later (asynchronously). */
static void test_connect_tries_every_address(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	int dead = net_listen("127.0.0.1", 0, 1, err);
	int dead_port = net_local_port(dead);
	close(dead); /* nobody listens there now */
	int lfd = net_listen("127.0.0.1", 0, 4, err);
	assert_true(lfd >= 0);
	int port = net_local_port(lfd);

	struct sockaddr_in a4[2];
	struct sockaddr_in6 a6;
	memset(a4, 0, sizeof a4);
	memset(&a6, 0, sizeof a6);
	a4[0].sin_family = a4[1].sin_family = AF_INET;
	a4[0].sin_addr.s_addr = a4[1].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a4[0].sin_port = htons((uint16_t)dead_port);
	a4[1].sin_port = htons((uint16_t)port);
	a6.sin6_family = AF_INET6;
	a6.sin6_addr = in6addr_loopback;
	a6.sin6_port = htons((uint16_t)dead_port); /* refused, or no IPv6 at all */
	struct addrinfo ai[3];
	memset(ai, 0, sizeof ai);
	ai[0] = (struct addrinfo){.ai_family = AF_INET6, .ai_socktype = SOCK_STREAM,
				  .ai_addr = (struct sockaddr *)&a6, .ai_addrlen = sizeof a6, .ai_next = &ai[1]};
	ai[1] = (struct addrinfo){.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
				  .ai_addr = (struct sockaddr *)&a4[0], .ai_addrlen = sizeof a4[0], .ai_next = &ai[2]};
	ai[2] = (struct addrinfo){.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
				  .ai_addr = (struct sockaddr *)&a4[1], .ai_addrlen = sizeof a4[1], .ai_next = NULL};

	struct cpio_link l;
	cpio_link_init(&l);
	char cerr[EVC_ERR_LEN] = "";
	int r = cpio_link_connect_addrs(&l, ai, "localhost:test", clock_mono(), cerr);
	assert_int_equal(r, 0);
	double end = clock_mono() + 3;
	while (r == 0 && !l.has_session && clock_mono() < end) {
		struct pollfd pf = {.fd = l.fd, .events = cpio_link_events(&l)};
		poll(&pf, 1, 50);
		r = cpio_link_service(&l, pf.revents, clock_mono(), NULL, NULL, cerr);
	}
	assert_int_equal(r, 0);
	assert_true(l.has_session);
	assert_int_equal(l.iaddr, 2); /* the third address is the one that answered */
	int sfd = accept(lfd, NULL, NULL);
	assert_true(sfd >= 0);
	uint8_t b = 0;
	assert_int_equal(recv(sfd, &b, 1, 0), 1);
	assert_int_equal(b, LINK_ENQ); /* the session started on it */
	close(sfd);
	cpio_link_close(&l, 0);

	/* None answers: -1 with the reason of the last failure. */
	ai[1].ai_next = NULL;
	r = cpio_link_connect_addrs(&l, ai, "localhost:dead", clock_mono(), cerr);
	end = clock_mono() + 3;
	while (r == 0 && clock_mono() < end) {
		struct pollfd pf = {.fd = l.fd, .events = cpio_link_events(&l)};
		poll(&pf, 1, 50);
		r = cpio_link_service(&l, pf.revents, clock_mono(), NULL, NULL, cerr);
	}
	assert_int_equal(r, -1);
	assert_non_null(strstr(cerr, "refused"));
	cpio_link_close(&l, 0);
	close(lfd);
}

/* ---- TLS client against Central's real link server ---- */

static SSL_CTX *srv_ctx, *cli_ctx, *other_ctx;
static struct cplink *cpl;

static struct cplink *tls_server(void)
{
	struct cplink_config c;
	cplink_config_defaults(&c);
	c.host = "127.0.0.1";
	c.tls = srv_ctx;
	c.heartbeat_timeout = 0;
	c.register_timeout = 0;
	char err[EVC_ERR_LEN];
	struct cplink *l = cplink_new(&c, err);
	if (l == NULL || cplink_start(l, err) == -1)
		fail_msg("link server: %s", err);
	return l;
}

/* The next link event within 3 s (fails the test if none comes). */
static struct cplink_event next_event(void)
{
	static struct cplink_event ev[16];
	static size_t head, len;
	double end = clock_mono() + 3;
	while (head == len) {
		if (clock_mono() >= end)
			fail_msg("no link event within 3 s");
		struct pollfd p = {.fd = cplink_event_fd(cpl), .events = POLLIN};
		poll(&p, 1, 50);
		head = 0;
		len = cplink_drain(cpl, ev, 16);
	}
	return ev[head++];
}

/* Connect l to the server and run it until it is open (1) or over (-1,
 * reason in err); 0 if neither within 5 s. */
static int tls_open(struct cpio_link *l, struct frames *f, char err[EVC_ERR_LEN])
{
	if (cpio_link_connect(l, "127.0.0.1", cplink_port(cpl), clock_mono(), err) == -1)
		return -1;
	double end = clock_mono() + 5;
	while (clock_mono() < end) {
		if (cpio_link_open(l))
			return 1;
		struct pollfd pf = {.fd = l->fd, .events = cpio_link_events(l)};
		poll(&pf, 1, 50);
		if (cpio_link_service(l, pf.revents, clock_mono(), on_frame, f, err) < 0)
			return -1;
	}
	return 0;
}

/* Run l until f holds n frames (1), or the link is over (-1). */
static int tls_frames(struct cpio_link *l, struct frames *f, int n, char err[EVC_ERR_LEN])
{
	double end = clock_mono() + 3;
	while (f->n < n && clock_mono() < end) {
		struct pollfd pf = {.fd = l->fd, .events = cpio_link_events(l)};
		poll(&pf, 1, 50);
		if (cpio_link_service(l, pf.revents, clock_mono(), on_frame, f, err) < 0)
			return -1;
	}
	return f->n >= n;
}

static void test_tls_client(void **state)
{
	(void)state;
	cpl = tls_server();
	struct cpio_link l;
	struct frames f = {0};
	char err[EVC_ERR_LEN] = "";
	cpio_link_init(&l);
	cpio_link_set_tls(&l, cli_ctx, "127.0.0.1");
	if (tls_open(&l, &f, err) != 1)
		fail_msg("TLS link: %s", err);
	assert_false(l.tls_resumed);
	struct cplink_event ev = next_event();
	assert_int_equal(ev.kind, CPL_UP);
	assert_int_equal(ev.tls, 1);
	uint64_t id = ev.conn;

	assert_int_equal(cpio_link_sendf(&l, clock_mono(), "REGISTER#MAD-01#C/ Serrano 10#0.25"), 0);
	ev = next_event();
	assert_int_equal(ev.kind, CPL_FRAME);
	assert_string_equal(ev.data, "REGISTER#MAD-01#C/ Serrano 10#0.25");
	cplink_send(cpl, id, "REGISTER_RESULT#FIRST");
	assert_int_equal(tls_frames(&l, &f, 1, err), 1);
	assert_string_equal(f.last, "REGISTER_RESULT#FIRST");

	/* A purposeful close: Central hears EOT; the TLS settings stay. */
	cpio_link_close(&l, 1);
	ev = next_event();
	assert_int_equal(ev.kind, CPL_DOWN);
	assert_non_null(strstr(ev.reason, "EOT"));
	assert_true(l.tls == cli_ctx && strcmp(l.tls_host, "127.0.0.1") == 0);

	/* The reconnect resumes the session. */
	if (tls_open(&l, &f, err) != 1)
		fail_msg("TLS reconnect: %s", err);
	assert_true(l.tls_resumed);
	assert_int_equal(next_event().kind, CPL_UP);
	/* Central goes away without a word: the link breaks like a plain
	 * one, and the session is still offered next time. */
	cplink_free(cpl);
	cpl = tls_server();
	int r = tls_frames(&l, &f, 99, err);
	assert_int_equal(r, -1);
	cpio_link_close(&l, 0);
	assert_non_null(l.tls_session);
	if (tls_open(&l, &f, err) != 1)
		fail_msg("TLS link to the new server: %s", err);
	/* The same SSL_CTX, so the same ticket keys: the link resumes even
	 * though the SSL ended without close_notify. */
	assert_true(l.tls_resumed);
	cpio_link_release(&l);
	assert_null(l.tls);

	/* A DNS name is checked against the certificate's DNS names. */
	cpio_link_set_tls(&l, cli_ctx, "localhost");
	if (tls_open(&l, &f, err) != 1)
		fail_msg("TLS link to localhost: %s", err);
	cpio_link_release(&l);
	cplink_free(cpl);
	cpl = NULL;
}

static void test_tls_client_refuses(void **state)
{
	(void)state;
	cpl = tls_server();
	struct cpio_link l;
	struct frames f = {0};
	char err[EVC_ERR_LEN] = "";
	cpio_link_init(&l);

	/* A certificate from a CA we do not trust. */
	cpio_link_set_tls(&l, other_ctx, "127.0.0.1");
	assert_int_equal(tls_open(&l, &f, err), -1);
	assert_string_equal(err, "certificate verify failed: unable to get local issuer certificate");
	cpio_link_release(&l);

	/* The right CA, but not the name we asked for. */
	cpio_link_set_tls(&l, cli_ctx, "wrong.example");
	assert_int_equal(tls_open(&l, &f, err), -1);
	assert_string_equal(err, "certificate verify failed: hostname mismatch for 'wrong.example'");
	cpio_link_release(&l);
	cpio_link_set_tls(&l, cli_ctx, "127.0.0.2");
	assert_int_equal(tls_open(&l, &f, err), -1);
	assert_string_equal(err, "certificate verify failed: IP address mismatch for '127.0.0.2'");
	cpio_link_release(&l);

	/* Release-1 plaintext against a TLS-only server: refused. */
	assert_int_equal(tls_open(&l, &f, err), -1);
	assert_non_null(strstr(err, "NACK"));
	assert_int_equal(next_event().kind, CPL_REFUSED);
	cpio_link_release(&l);

	assert_int_equal(cplink_count(cpl), 0);
	struct cplink_stats st;
	cplink_stats(cpl, &st);
	assert_true(st.tls_handshakes == 0 && st.tls_failed == 3 && st.plain_refused == 1);
	assert_int_equal(f.n, 0);
	cplink_free(cpl);
	cpl = NULL;
}

static int tls_setup(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	if (pki_make() == -1) {
		fprintf(stderr, "# openssl could not make the test certificates in %s\n", pki_dir);
		return -1;
	}
	srv_ctx = tls_server_ctx_new(pki_path("central.pem"), pki_path("central.key"), err);
	cli_ctx = srv_ctx ? tls_client_ctx_new(pki_path("ca.pem"), err) : NULL;
	other_ctx = cli_ctx ? tls_client_ctx_new(pki_path("other-ca.pem"), err) : NULL;
	if (other_ctx == NULL) {
		fprintf(stderr, "# %s\n", err);
		return -1;
	}
	return 0;
}

static int tls_teardown(void **state)
{
	(void)state;
	SSL_CTX_free(srv_ctx);
	SSL_CTX_free(cli_ctx);
	SSL_CTX_free(other_ctx);
	pki_remove();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_split_across_reads),
		cmocka_unit_test(test_lines_overlong_dropped),
		cmocka_unit_test(test_backoff_doubles_to_cap_with_jitter),
		cmocka_unit_test(test_parse_double),
		cmocka_unit_test(test_path_beside),
		cmocka_unit_test(test_link_roundtrip_and_close),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_connect_tries_every_address),
		cmocka_unit_test(test_tls_client),
		cmocka_unit_test(test_tls_client_refuses),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("cpio", tests, tls_setup, tls_teardown);
}
