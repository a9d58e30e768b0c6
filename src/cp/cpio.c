#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evc/evline.h"
#include "evc/net.h"
#include "evc/tls.h"
#include "evc/xalloc.h"
#include "src/cp/cpio.h"

void cpio_link_init(struct cpio_link *l)
{
	memset(l, 0, sizeof *l);
	l->fd = -1;
}

void cpio_link_set_tls(struct cpio_link *l, SSL_CTX *ctx, const char *host)
{
	l->tls = ctx;
	xstrlcpy(l->tls_host, host != NULL ? host : "", sizeof l->tls_host);
}

void cpio_link_release(struct cpio_link *l)
{
	cpio_link_close(l, 0);
	SSL_SESSION_free(l->tls_session);
	cpio_link_init(l);
}

static void start_session(struct cpio_link *l, enum link_role role, double now)
{
	link_session_init(&l->s, role, now);
	l->has_session = 1;
	l->since = now;
	l->last_rx = now;
}

/* Start a connect to the next address that gets as far as one; 0, or -1
 * with err (the last address's reason) when none is left. */
static int connect_next(struct cpio_link *l, double now, char err[EVC_ERR_LEN])
{
	while (l->iaddr < l->naddrs) {
		int k = l->iaddr;
		const struct sockaddr *sa = (const struct sockaddr *)&l->addrs[k];
		int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd == -1) {
			snprintf(err, EVC_ERR_LEN, "socket: %s", strerror(errno));
			l->iaddr++;
			continue;
		}
		if (connect(fd, sa, l->addrlens[k]) == -1 && errno != EINPROGRESS) {
			snprintf(err, EVC_ERR_LEN, "connect to %s: %s", l->peer, strerror(errno));
			close(fd);
			l->iaddr++;
			continue;
		}
		net_set_nodelay(fd);
		l->fd = fd;
		l->connecting = 1;
		l->since = now;
		return 0;
	}
	return -1;
}

/* The current attempt failed with err: try the next address, if any. */
static int connect_failed(struct cpio_link *l, double now, char err[EVC_ERR_LEN])
{
	close(l->fd);
	l->fd = -1;
	l->connecting = 0;
	l->iaddr++;
	char tmp[EVC_ERR_LEN];
	if (l->iaddr < l->naddrs && connect_next(l, now, tmp) == 0)
		return 0;
	return -1; /* err keeps the reason of the failure that ended it */
}

int cpio_link_connect_addrs(struct cpio_link *l, const struct addrinfo *ai, const char *name, double now,
			    char err[EVC_ERR_LEN])
{
	l->naddrs = l->iaddr = 0;
	for (; ai != NULL && l->naddrs < CPIO_ADDRS_MAX; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof l->addrs[0])
			continue;
		memcpy(&l->addrs[l->naddrs], ai->ai_addr, ai->ai_addrlen);
		l->addrlens[l->naddrs++] = ai->ai_addrlen;
	}
	snprintf(l->peer, sizeof l->peer, "%s", name);
	snprintf(err, EVC_ERR_LEN, "no address for %s", name);
	return connect_next(l, now, err);
}

int cpio_link_connect(struct cpio_link *l, const char *host, int port, double now, char err[EVC_ERR_LEN])
{
	struct addrinfo hints, *res = NULL;
	char portstr[16], name[64];

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof portstr, "%d", port);
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, EVC_ERR_LEN, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	snprintf(name, sizeof name, "%.50s:%d", host, port);
	rc = cpio_link_connect_addrs(l, res, name, now, err);
	freeaddrinfo(res);
	return rc;
}

void cpio_link_accept(struct cpio_link *l, int fd, const char *peer, double now)
{
	cpio_link_init(l);
	net_set_nonblock(fd, 1);
	net_set_nodelay(fd);
	l->fd = fd;
	snprintf(l->peer, sizeof l->peer, "%s", peer);
	start_session(l, LINK_SERVER, now);
}

short cpio_link_events(const struct cpio_link *l)
{
	if (l->fd == -1)
		return 0;
	if (l->connecting)
		return POLLOUT;
	if (l->tls_hs)
		return l->tls_hs_wait;
	size_t n = 0;
	link_session_output(&l->s, &n);
	return (short)(POLLIN | ((n > 0 && !l->wr_want_in) || l->rd_want_out ? POLLOUT : 0));
}

static int flush_out(struct cpio_link *l, char err[EVC_ERR_LEN])
{
	for (;;) {
		size_t n = 0;
		const uint8_t *p = link_session_output(&l->s, &n);
		if (n == 0) {
			l->wr_want_in = 0;
			return 0;
		}
		if (l->ssl != NULL) {
			/* After WANT_*, p and n cover the failed call's bytes
			 * again: output only grows at its tail until a write
			 * succeeds (see tls_write). */
			size_t w;
			enum tls_rc rc = tls_write(l->ssl, p, n, &w, err);
			if (rc == TLS_OK) {
				l->wr_want_in = 0;
				link_session_consumed(&l->s, w);
				continue;
			}
			if (rc == TLS_WANT_WRITE)
				return 0;
			if (rc == TLS_WANT_READ) {
				l->wr_want_in = 1;
				return 0;
			}
			return -1;
		}
		ssize_t w = send(l->fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			snprintf(err, EVC_ERR_LEN, "write: %s", strerror(errno));
			return -1;
		}
		link_session_consumed(&l->s, (size_t)w);
	}
}

/* A peer that sends and never reads (an ENQ flood) grows our answers
 * without bound: past CPIO_OUT_MAX bytes waiting the link is over, as
 * Central's link server closes one whose write queue is full. */
static int output_full(struct cpio_link *l, char err[EVC_ERR_LEN])
{
	size_t n = 0;
	link_session_output(&l->s, &n);
	if (n <= CPIO_OUT_MAX)
		return 0;
	snprintf(err, EVC_ERR_LEN, "%s does not read what it is sent (%zu bytes waiting)", l->peer, n);
	return -1;
}

static int session_over(struct cpio_link *l, char err[EVC_ERR_LEN])
{
	if (l->s.state == LINK_CLOSED || l->s.state == LINK_BROKEN) {
		char tmp[EVC_ERR_LEN];
		flush_out(l, tmp); /* an EOT or last ACK may still be waiting */
		snprintf(err, EVC_ERR_LEN, "%s", l->s.err);
		return -1;
	}
	return 0;
}

int cpio_link_pump(struct cpio_link *l, double now, char err[EVC_ERR_LEN])
{
	if (l->fd == -1) {
		snprintf(err, EVC_ERR_LEN, "not connected");
		return -1;
	}
	if (l->connecting) {
		/* A connect that never completes counts as a failure after the
		 * same time a handshake answer may take. */
		if (now - l->since > CPIO_CONNECT_TIMEOUT) {
			snprintf(err, EVC_ERR_LEN, "connect to %s timed out", l->peer);
			return connect_failed(l, now, err);
		}
		return 0;
	}
	if (l->tls_hs) {
		if (now - l->since > CPIO_CONNECT_TIMEOUT) {
			snprintf(err, EVC_ERR_LEN, "TLS handshake with %s timed out", l->peer);
			return -1;
		}
		return 0;
	}
	link_session_tick(&l->s, now);
	if (session_over(l, err) < 0)
		return -1;
	return flush_out(l, err);
}

/* One step of the TLS handshake; once done, the link session starts (ENQ
 * queued) inside it. 0, or -1 with err (a verification failure says so). */
static int tls_step(struct cpio_link *l, double now, char err[EVC_ERR_LEN])
{
	enum tls_rc rc = tls_handshake(l->ssl, err);
	if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE) {
		l->tls_hs_wait = rc == TLS_WANT_READ ? POLLIN : POLLOUT;
		return 0;
	}
	if (rc != TLS_OK)
		return -1;
	l->tls_hs = 0;
	l->tls_resumed = SSL_session_reused(l->ssl);
	start_session(l, LINK_CLIENT, now);
	return flush_out(l, err);
}

/* TCP is up: the TLS handshake starts, with CPIO_CONNECT_TIMEOUT of its own. */
static int tls_start(struct cpio_link *l, double now, char err[EVC_ERR_LEN])
{
	l->ssl = tls_client_new(l->tls, l->fd, l->tls_host, &l->tls_session, err);
	if (l->ssl == NULL)
		return -1;
	l->tls_hs = 1;
	l->since = now;
	return tls_step(l, now, err);
}

/* Decrypted input into the session. 0, or -1 with err when the link is over. */
static int tls_input(struct cpio_link *l, double now, link_frame_fn fn, void *arg, char err[EVC_ERR_LEN])
{
	uint8_t buf[16384]; /* a whole record */
	/* Bounded like the plaintext reads, except that a record already
	 * decrypted (SSL_pending) would never wake poll() again. */
	for (int i = 0; i < CPIO_READS_MAX || SSL_pending(l->ssl) > 0; i++) {
		size_t n;
		enum tls_rc rc = tls_read(l->ssl, buf, sizeof buf, &n, err);
		if (rc == TLS_WANT_READ) {
			l->rd_want_out = 0;
			return 0;
		}
		if (rc == TLS_WANT_WRITE) {
			l->rd_want_out = 1;
			return 0;
		}
		if (rc == TLS_EOF) {
			snprintf(err, EVC_ERR_LEN, "connection closed by peer without EOT");
			return -1;
		}
		if (rc != TLS_OK)
			return -1;
		l->rd_want_out = 0;
		l->last_rx = now;
		link_session_input(&l->s, buf, n, now, fn, arg);
		if (session_over(l, err) < 0 || output_full(l, err) < 0)
			return -1;
	}
	return 0;
}

int cpio_link_service(struct cpio_link *l, short revents, double now, link_frame_fn fn, void *arg,
		      char err[EVC_ERR_LEN])
{
	if (l->fd == -1) {
		snprintf(err, EVC_ERR_LEN, "not connected");
		return -1;
	}
	if (l->connecting) {
		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return cpio_link_pump(l, now, err);
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
			soerr = errno;
		if (soerr != 0) {
			snprintf(err, EVC_ERR_LEN, "connect to %s: %s", l->peer, strerror(soerr));
			return connect_failed(l, now, err);
		}
		l->connecting = 0;
		if (l->tls != NULL)
			return tls_start(l, now, err);
		start_session(l, LINK_CLIENT, now);
		return flush_out(l, err);
	}
	if (l->tls_hs) {
		if (revents & (POLLIN | POLLOUT | POLLHUP | POLLERR))
			if (tls_step(l, now, err) < 0)
				return -1;
		return cpio_link_pump(l, now, err);
	}
	if (l->ssl != NULL) {
		if ((revents & (POLLIN | POLLHUP | POLLERR)) || (l->rd_want_out && (revents & POLLOUT)))
			if (tls_input(l, now, fn, arg, err) < 0)
				return -1;
		return cpio_link_pump(l, now, err);
	}
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		uint8_t buf[4096];
		/* At most CPIO_READS_MAX reads a call: one busy peer must not
		 * starve the others (poll() brings us back). */
		for (int reads = 0; reads < CPIO_READS_MAX; reads++) {
			ssize_t r = recv(l->fd, buf, sizeof buf, 0);
			if (r > 0) {
				l->last_rx = now;
				link_session_input(&l->s, buf, (size_t)r, now, fn, arg);
				if (session_over(l, err) < 0 || output_full(l, err) < 0)
					return -1;
				if ((size_t)r < sizeof buf)
					break;
				continue;
			}
			if (r == 0) {
				snprintf(err, EVC_ERR_LEN, "connection closed by peer without EOT");
				return -1;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			snprintf(err, EVC_ERR_LEN, "read: %s", strerror(errno));
			return -1;
		}
	}
	return cpio_link_pump(l, now, err);
}

int cpio_link_open(const struct cpio_link *l)
{
	return l->fd != -1 && !l->connecting && l->has_session && l->s.state == LINK_OPEN;
}

int cpio_link_sendf(struct cpio_link *l, double now, const char *fmt, ...)
{
	char data[LINK_DATA_MAX + 1];
	if (l->fd == -1 || l->connecting || !l->has_session)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(data, sizeof data, fmt, ap);
	va_end(ap);
	if (n < 0 || n > LINK_DATA_MAX)
		return -1;
	if (link_session_send(&l->s, data, (size_t)n, now, NULL) < 0)
		return -1;
	char err[EVC_ERR_LEN];
	flush_out(l, err); /* a write error shows up on the next poll */
	return 0;
}

void cpio_link_close(struct cpio_link *l, int send_eot)
{
	if (l->fd != -1) {
		if (l->has_session && !l->connecting) {
			if (send_eot)
				link_session_close(&l->s);
			char err[EVC_ERR_LEN];
			flush_out(l, err);
			if (send_eot)
				tls_close_notify(l->ssl);
		}
		close(l->fd);
	}
	SSL_free(l->ssl);
	if (l->has_session)
		link_session_free(&l->s);
	SSL_CTX *tls = l->tls;
	SSL_SESSION *sess = l->tls_session;
	char host[sizeof l->tls_host];
	memcpy(host, l->tls_host, sizeof host);
	cpio_link_init(l);
	l->tls = tls;
	l->tls_session = sess;
	memcpy(l->tls_host, host, sizeof host);
}

double cpio_backoff(double *cur, double cap)
{
	double d = *cur * (0.5 + 0.5 * ((double)random() / (double)RAND_MAX));
	*cur *= 2;
	if (*cur > cap)
		*cur = cap;
	return d;
}

int cpio_lines_read(struct cpio_lines *lb, int fd, cpio_line_fn fn, void *arg)
{
	char tmp[512];
	ssize_t r;
	for (;;) {
		r = read(fd, tmp, sizeof tmp);
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (r <= 0) {
		if (lb->len > 0 && !lb->overflow) {
			lb->buf[lb->len] = '\0';
			fn(arg, lb->buf);
		}
		lb->len = 0;
		lb->eof = 1;
		return -1;
	}
	for (ssize_t i = 0; i < r; i++) {
		char c = tmp[i];
		if (c == '\n') {
			if (!lb->overflow) {
				if (lb->len > 0 && lb->buf[lb->len - 1] == '\r')
					lb->len--;
				lb->buf[lb->len] = '\0';
				fn(arg, lb->buf);
			}
			lb->len = 0;
			lb->overflow = 0;
			continue;
		}
		if (lb->overflow)
			continue;
		if (lb->len + 1 >= sizeof lb->buf) {
			lb->overflow = 1;
			cpio_event("ERROR input line too long (over %zu bytes): ignored", sizeof lb->buf - 1);
			continue;
		}
		lb->buf[lb->len++] = c;
	}
	return 0;
}

static cpio_event_fn event_fn;
static void *event_arg;

void cpio_set_event_sink(cpio_event_fn fn, void *arg)
{
	event_fn = fn;
	event_arg = arg;
}

void cpio_event(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (event_fn != NULL) {
		event_fn(event_arg, line);
		return;
	}
	evline_write(stdout, line); /* timestamped, text or JSON (evcharging(7) LOG LINES) */
}

int cpio_path_beside(char *out, size_t outsz, const char *file, const char *name)
{
	const char *slash = strrchr(file, '/');
	int n = slash == NULL ? snprintf(out, outsz, "%s", name)
			      : snprintf(out, outsz, "%.*s/%s", (int)(slash - file), file, name);
	return n >= 0 && (size_t)n < outsz ? 0 : -1;
}

int cpio_parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}
