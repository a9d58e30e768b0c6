/* Pieces both charging-point programs share: a non-blocking TCP link (socket
 * plus the link_session of evc/link.h), in the clear or, for a client, inside
 * TLS (evc/tls.h, evcharging(7) SECURITY), reconnect backoff with jitter, a
 * stdin line reader, and the event line sink (stdout in --headless, the
 * screen's event pane otherwise). Single-threaded: everything here is driven
 * by one poll() loop. */
#ifndef EVC_CP_CPIO_H
#define EVC_CP_CPIO_H
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "evc/link.h"
#include "evc/err.h"

#define CPIO_ADDRS_MAX 8
/* Bytes of answers waiting for a peer that does not read them before its
 * link is closed, and reads of a link per poll() turn (fairness). */
#define CPIO_OUT_MAX (64 * 1024)
#define CPIO_READS_MAX 16
/* s for the TCP connect, and then again for a TLS handshake, to complete. */
#define CPIO_CONNECT_TIMEOUT (LINK_ANSWER_TIMEOUT + 1.0)

struct addrinfo;

/* One TCP link. fd -1 when down. */
struct cpio_link {
	int fd;
	int connecting;           /* non-blocking connect in progress */
	int has_session;          /* s is initialised (and must be freed) */
	struct link_session s;
	double since;             /* when it connected / was accepted (monotonic) */
	double last_rx;           /* when bytes last arrived (or since), for idle timeouts */
	char peer[64];
	/* A client tries each resolved address in turn (IPv6 and IPv4 of one
	 * name), including after an asynchronous failure or timeout. */
	struct sockaddr_storage addrs[CPIO_ADDRS_MAX];
	socklen_t addrlens[CPIO_ADDRS_MAX];
	int naddrs, iaddr;
	/* TLS client (cpio_link_set_tls): after the TCP connect a verified
	 * TLS handshake, then ENQ/ACK and frames inside it. tls, tls_host
	 * and tls_session survive cpio_link_close, so every reconnect checks
	 * the same name and may resume. */
	SSL_CTX *tls;             /* not owned; NULL: plaintext */
	char tls_host[256];       /* the name or address Central's certificate must carry */
	SSL_SESSION *tls_session; /* the last ticket, for resumption (cpio_link_release frees it) */
	SSL *ssl;
	int tls_hs;               /* TLS handshake under way */
	short tls_hs_wait;        /* POLLIN or POLLOUT: what the handshake waits for */
	int tls_resumed;          /* the last handshake resumed a session */
	int rd_want_out;          /* SSL_read waits for the socket to be writable */
	int wr_want_in;           /* SSL_write waits for it to be readable */
};

void cpio_link_init(struct cpio_link *l);
/* Make the next connects TLS, verifying against ctx's CA that the server's
 * certificate names host (IP literal or DNS name). ctx must outlive l. */
void cpio_link_set_tls(struct cpio_link *l, SSL_CTX *ctx, const char *host);
/* Close (as cpio_link_close without EOT) and forget the TLS settings and the
 * kept session: l is as after cpio_link_init. */
void cpio_link_release(struct cpio_link *l);
/* Client: start a non-blocking connect to host:port. 0 (l->connecting: the
 * TCP connect, then the TLS handshake if set, are under way; the session
 * starts with ENQ queued once both are done) or -1 with err. */
int cpio_link_connect(struct cpio_link *l, const char *host, int port, double now, char err[EVC_ERR_LEN]);
/* The same over a given address list (the first CPIO_ADDRS_MAX of ai);
 * name is the peer's name for messages. */
int cpio_link_connect_addrs(struct cpio_link *l, const struct addrinfo *ai, const char *name, double now,
			    char err[EVC_ERR_LEN]);
/* Server: adopt an accepted fd (made non-blocking here) as a LINK_SERVER. */
void cpio_link_accept(struct cpio_link *l, int fd, const char *peer, double now);
/* poll() events this link wants (0 if down). */
short cpio_link_events(const struct cpio_link *l);
/* Handle poll() revents: finish a connect or a TLS handshake, read and feed
 * the session (fn gets each frame), write pending output. Returns 0, or -1
 * when the link is over (EOF, error, TLS or certificate failure such as
 * "certificate verify failed: hostname mismatch for 'x'", protocol failure
 * or EOT) with the reason in err; the caller then calls cpio_link_close. */
int cpio_link_service(struct cpio_link *l, short revents, double now, link_frame_fn fn, void *arg,
		      char err[EVC_ERR_LEN]);
/* Timers and writing without a poll event (after queueing frames). Same
 * return as cpio_link_service. */
int cpio_link_pump(struct cpio_link *l, double now, char err[EVC_ERR_LEN]);
/* True when the handshake is done and frames can be exchanged. */
int cpio_link_open(const struct cpio_link *l);
/* Queue a frame (printf-style DATA). 0 or -1 (link not usable, bad DATA). */
int cpio_link_sendf(struct cpio_link *l, double now, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Purposeful close: EOT (and TLS close_notify), best-effort flush, close the
 * socket. Safe on a down link. */
void cpio_link_close(struct cpio_link *l, int send_eot);

/* Exponential backoff: returns the delay to wait now (jittered in
 * [cur/2, cur]) and doubles *cur up to cap. Reset *cur to its base after a
 * success. */
double cpio_backoff(double *cur, double cap);

/* stdin (or any fd) split into lines. */
struct cpio_lines {
	char buf[1024];
	size_t len;
	int eof;
	int overflow; /* current line was too long: dropped up to its end */
};
typedef void (*cpio_line_fn)(void *arg, char *line);
/* Read what is available; calls fn for each complete line (without the
 * newline, trailing CR removed). Returns 0, or -1 on EOF/error (a last
 * unterminated line is delivered first). */
int cpio_lines_read(struct cpio_lines *lb, int fd, cpio_line_fn fn, void *arg);

/* Event lines: the stable, grep-friendly record of what happened ("STATE
 * ACTIVADO", "LINK central up", ...). Default sink: stdout, one line each
 * with its timestamp (or one JSON object: evc/evline.h), flushed. A screen
 * installs its own. */
typedef void (*cpio_event_fn)(void *arg, const char *line);
void cpio_set_event_sink(cpio_event_fn fn, void *arg);
void cpio_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* name in the folder of file ("pki/ca.pem" beside "/etc/cp/MAD-01.cred" is
 * "/etc/cp/pki/ca.pem"; beside "x.cred", "pki/ca.pem"), into out. 0, or -1
 * if it does not fit. */
int cpio_path_beside(char *out, size_t outsz, const char *file, const char *name);

/* Parse a decimal number strictly (whole string, finite). 0 or -1. */
int cpio_parse_double(const char *s, double *out);

#endif
