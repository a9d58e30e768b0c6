/* Small socket helpers (Redis anet style): 0/-1 or an fd, err filled. */
#ifndef EVC_NET_H
#define EVC_NET_H
#include <stddef.h>

#define NET_ERR_LEN 256

/* Split "host:port" or "[v6]:port" (or a bare port, host "127.0.0.1").
 * host gets at most hostlen-1 bytes. Port 1..65535. */
int net_parse_hostport(const char *s, char *host, size_t hostlen, int *port, char err[NET_ERR_LEN]);
/* Parse a port number 1..65535 (0 allowed when allow_zero, meaning "any"). */
int net_parse_port(const char *s, int allow_zero, int *port, char err[NET_ERR_LEN]);
/* Listening TCP socket on host:port (host NULL = 0.0.0.0), SO_REUSEADDR,
 * non-blocking and close-on-exec. Returns fd or -1. */
int net_listen(const char *host, int port, int backlog, char err[NET_ERR_LEN]);
/* Port actually bound (for port 0). */
int net_local_port(int fd);
/* Blocking-style connect with a timeout (ms). Returns a connected fd in
 * blocking mode (close-on-exec, TCP_NODELAY) or -1. */
int net_connect(const char *host, int port, int timeout_ms, char err[NET_ERR_LEN]);
int net_set_nonblock(int fd, int on);
int net_set_nodelay(int fd);
/* Write all of buf, waiting at most timeout_ms in total. 0 or -1 (errno). */
int net_write_all(int fd, const void *buf, size_t len, int timeout_ms);

#endif
