#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evc/clock.h"
#include "evc/net.h"

int net_parse_port(const char *s, int allow_zero, int *port, char err[EVC_ERR_LEN])
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || v < (allow_zero ? 0 : 1) || v > 65535) {
		snprintf(err, EVC_ERR_LEN, "invalid port '%s' (expected %d..65535)", s, allow_zero ? 0 : 1);
		return -1;
	}
	*port = (int)v;
	return 0;
}

int net_parse_hostport(const char *s, char *host, size_t hostlen, int *port, char err[EVC_ERR_LEN])
{
	const char *colon;
	const char *h = s;
	size_t hl;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':') {
			snprintf(err, EVC_ERR_LEN, "invalid address '%s' (expected [v6]:port)", s);
			return -1;
		}
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
		if (memchr(h, ':', hl) == NULL) {
			snprintf(err, EVC_ERR_LEN, "invalid address '%s' (brackets hold an IPv6 address)", s);
			return -1;
		}
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(err, EVC_ERR_LEN, "invalid address '%s' (expected host:port, e.g. 127.0.0.1:%s)", s,
				 s[0] >= '0' && s[0] <= '9' && strspn(s, "0123456789") == strlen(s) ? s : "7001");
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			snprintf(err, EVC_ERR_LEN, "invalid address '%s' (write an IPv6 address as [v6]:port)", s);
			return -1;
		}
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen) {
		snprintf(err, EVC_ERR_LEN, "invalid host in '%s'", s);
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (net_parse_port(colon + 1, 0, port, err) == -1)
		return -1;
	return 0;
}

int net_parse_host(const char *s, char *host, size_t hostlen, char err[EVC_ERR_LEN])
{
	const char *h = s;
	size_t hl = strlen(s);

	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']' || memchr(s + 1, ':', hl - 2) == NULL) {
			snprintf(err, EVC_ERR_LEN, "invalid address '%s' (expected [v6], v6, v4 or a name)", s);
			return -1;
		}
		h = s + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen || strpbrk(s, " \t/") != NULL) {
		snprintf(err, EVC_ERR_LEN, "invalid address '%s'", s);
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	return 0;
}

void net_format_hostport(const char *host, int port, char *out, size_t n)
{
	if (strchr(host, ':') != NULL)
		snprintf(out, n, "[%s]:%d", host, port);
	else
		snprintf(out, n, "%s:%d", host, port);
}

void net_format_sockaddr(const struct sockaddr *sa, char *out, size_t n)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
		port = ntohs(in6->sin6_port);
	}
	net_format_hostport(ip, port, out, n);
}

int net_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl == -1)
		return -1;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl);
}

int net_set_nodelay(int fd)
{
	int one = 1;
	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int net_listen(const char *host, int port, int backlog, char err[EVC_ERR_LEN])
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[16];
	int fd = -1, rc, saved = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(portstr, sizeof portstr, "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, EVC_ERR_LEN, "cannot resolve %s: %s", host ? host : "*", gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int one = 1;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd == -1) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1) {
		char addr[300];
		net_format_hostport(host ? host : "*", port, addr, sizeof addr);
		snprintf(err, EVC_ERR_LEN, "cannot listen on %s: %s", addr, strerror(saved));
	}
	return fd;
}

int net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

int net_connect(const char *host, int port, int timeout_ms, char err[EVC_ERR_LEN])
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[16];
	int fd = -1, rc, saved = ECONNREFUSED;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof portstr, "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, EVC_ERR_LEN, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd == -1) {
			saved = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			goto connected;
		if (errno == EINPROGRESS) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int n;
			do
				n = poll(&p, 1, timeout_ms);
			while (n == -1 && errno == EINTR);
			if (n == 1) {
				int soerr = 0;
				socklen_t sl = sizeof soerr;
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
				if (soerr == 0)
					goto connected;
				saved = soerr;
			} else {
				saved = n == 0 ? ETIMEDOUT : errno;
			}
		} else {
			saved = errno;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	{
		char addr[300];
		net_format_hostport(host, port, addr, sizeof addr);
		snprintf(err, EVC_ERR_LEN, "cannot connect to %s: %s", addr, strerror(saved));
	}
	return -1;
connected:
	freeaddrinfo(res);
	net_set_nonblock(fd, 0);
	net_set_nodelay(fd);
	return fd;
}

int net_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	const char *p = buf;
	double deadline = clock_mono() + timeout_ms / 1000.0;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			int ms = clock_ms_until(deadline, timeout_ms);
			if (ms == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			if (poll(&pf, 1, ms) == -1 && errno != EINTR)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}
