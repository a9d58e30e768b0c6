/* Small socket helpers (Redis anet style): 0/-1 or an fd, err filled. */
#ifndef EVC_NET_H
#define EVC_NET_H
#include <stddef.h>
#include "evc/err.h"


/* The one address parser of every program: "host:port" or "[v6]:port".
 * host gets the name or address without brackets, at most hostlen-1 bytes;
 * port 1..65535. A bare port, a host without a port and an IPv6 address
 * without brackets ("::1:7001" is ambiguous) are refused alike. */
int net_parse_hostport(const char *s, char *host, size_t hostlen, int *port, char err[EVC_ERR_LEN]);
/* A bind address (--listen): a name, an IPv4 address, or an IPv6 address
 * with or without brackets ("::", "[::1]"); host gets it without brackets. */
int net_parse_host(const char *s, char *host, size_t hostlen, char err[EVC_ERR_LEN]);
/* The one address printer: "host:port", "[v6]:port" when host holds a ':'. */
void net_format_hostport(const char *host, int port, char *out, size_t n);
struct sockaddr;
/* The same for a socket address ("127.0.0.1:50312", "[::1]:7001"). */
void net_format_sockaddr(const struct sockaddr *sa, char *out, size_t n);
/* Parse a port number 1..65535 (0 allowed when allow_zero, meaning "any"). */
int net_parse_port(const char *s, int allow_zero, int *port, char err[EVC_ERR_LEN]);
/* Listening TCP socket on host:port (host NULL = 0.0.0.0), SO_REUSEADDR,
 * non-blocking and close-on-exec. Returns fd or -1. */
int net_listen(const char *host, int port, int backlog, char err[EVC_ERR_LEN]);
/* Port actually bound (for port 0). */
int net_local_port(int fd);
/* Blocking-style connect with a timeout (ms). Returns a connected fd in
 * blocking mode (close-on-exec, TCP_NODELAY) or -1. */
int net_connect(const char *host, int port, int timeout_ms, char err[EVC_ERR_LEN]);
int net_set_nonblock(int fd, int on);
int net_set_nodelay(int fd);
/* Write all of buf, waiting at most timeout_ms in total. 0 or -1 (errno). */
int net_write_all(int fd, const void *buf, size_t len, int timeout_ms);

#endif
