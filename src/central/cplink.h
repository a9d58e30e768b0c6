/* Central's charging-point link server: one epoll worker thread that owns
 * every monitor connection (non-blocking sockets, the link codec of
 * evc/link.h in the server role) and talks to the main thread through two
 * queues: events out (CPL_UP / CPL_FRAME / CPL_DOWN, signalled on an eventfd
 * the main loop polls) and commands in (send / close, signalled on another
 * eventfd the worker polls). The worker never touches Central's state, so
 * the core keeps a single owner.
 *
 * Connection ids are unique for the life of the process (never reused), so a
 * command for a connection that has since closed is simply ignored and can
 * never reach a newer connection that happens to reuse its slot or fd.
 *
 * Link kinds (evcharging(7) SECURITY): the first byte a client sends tells
 * them apart on the one port. 0x16 (a TLS ClientHello) starts a TLS
 * handshake, driven by the same epoll loop, inside which the link protocol
 * runs unchanged; ENQ (0x05) is a Release-1 plaintext link, served only
 * with plain_ok and otherwise answered NACK, closed and reported
 * (CPL_REFUSED); anything else is closed. The TLS handshake and then the
 * ENQ each have handshake_timeout; a link that is up but not
 * cplink_registered within register_timeout is closed.
 *
 * Memory per link is bounded: a link whose peer does not read our answers
 * is not read either until they drain (back-pressure), so its frames wait
 * in the kernel's buffers, not ours; beyond that a link holds Central's own
 * frames up to wq_cap (then it is closed).
 */
#ifndef EVC_CENTRAL_CPLINK_H
#define EVC_CENTRAL_CPLINK_H
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "evc/err.h"
#include "evc/link.h"

struct cplink_config {
	const char *host;         /* bind address, NULL = all (0.0.0.0); not copied */
	int port;                 /* 0 = any (see cplink_port) */
	int max_conns;            /* open connections; extra ones are accepted and closed */
	size_t wq_cap;            /* bytes waiting to be written per connection */
	double handshake_timeout; /* s for each handshake stage (TLS, then ENQ) -> closed */
	double heartbeat_timeout; /* s without any frame -> closed; 0 disables */
	SSL_CTX *tls;             /* server context (evc/tls.h), not owned, outlives
	                             the cplink; NULL = TLS links are closed */
	int plain_ok;             /* serve plaintext (Release-1) links too */
	double register_timeout;  /* s from link up to cplink_registered -> closed; 0 disables */
};

/* host NULL (all), port 0, max_conns 10000, wq_cap 256 KiB, handshake 5 s,
 * heartbeat 3 s, no TLS context, plaintext refused, register 10 s. A
 * configuration must allow TLS or plaintext (or cplink_new refuses it). */
void cplink_config_defaults(struct cplink_config *c);

enum cplink_ev_kind {
	CPL_UP,    /* handshake completed (ENQ answered with ACK) */
	CPL_FRAME, /* one valid frame received (already ACKed): data/len */
	CPL_DOWN,  /* connection closed: reason; only after a CPL_UP */
	CPL_REFUSED, /* a plaintext link refused (no plain_ok): peer, reason
	                "plaintext link refused"; never an UP or DOWN for it */
};

struct cplink_event {
	enum cplink_ev_kind kind;
	uint64_t conn;
	char peer[64];                /* "127.0.0.1:50312" */
	size_t len;                   /* CPL_FRAME: DATA length */
	char data[LINK_DATA_MAX + 1]; /* CPL_FRAME: DATA, NUL-terminated */
	char reason[128];             /* CPL_DOWN, CPL_REFUSED: why */
	int tls;                      /* 1: the link runs over TLS, 0: plaintext */
};

struct cplink;

/* Bind and listen now (so "port taken" is reported at start, not later in a
 * thread). NULL with err filled on failure. Caller frees with cplink_free. */
struct cplink *cplink_new(const struct cplink_config *cfg, char err[EVC_ERR_LEN]);
/* Port actually bound (useful with port 0). */
int cplink_port(const struct cplink *l);
/* Spawn the epoll worker thread. 0 or -1 with err. */
int cplink_start(struct cplink *l, char err[EVC_ERR_LEN]);
/* Readable (an eventfd) while events wait; drain with cplink_drain. */
int cplink_event_fd(const struct cplink *l);
/* Main thread: take up to max events, in order. Returns how many. */
size_t cplink_drain(struct cplink *l, struct cplink_event *out, size_t max);
/* Thread-safe: queue a frame (DATA, NUL-terminated) for conn. Unknown or
 * closed conn: ignored. Invalid DATA or a full session queue: logged and the
 * frame dropped (a CP whose queue is full is closed). */
void cplink_send(struct cplink *l, uint64_t conn, const char *data);
/* Thread-safe: send what is queued, then EOT, then close; a CPL_DOWN with
 * reason follows (if the connection had come up). */
void cplink_close(struct cplink *l, uint64_t conn, const char *reason);
/* Thread-safe: conn has registered (the core accepted its REGISTER), so
 * register_timeout no longer applies to it. Unknown or closed conn: ignored. */
void cplink_registered(struct cplink *l, uint64_t conn);
/* Open connections (accepted and not yet closed). */
size_t cplink_count(const struct cplink *l);
/* EOT to every CP, flush briefly (<= 1 s), stop and join the thread. The
 * CPL_DOWN events of this shutdown are still queued for cplink_drain.
 * Safe to call twice, or without cplink_start. */
void cplink_shutdown(struct cplink *l);
/* Shuts down if needed and frees everything. NULL is fine. */
void cplink_free(struct cplink *l);

/* Counters since start (for the status line and the benchmark). */
struct cplink_stats {
	uint64_t accepted, refused, closed, frames_in, frames_out, bytes_in, bytes_out;
	uint64_t accept_pauses; /* times accept() stopped for a second (EMFILE...) */
	uint64_t plain_refused; /* plaintext links refused (CPL_REFUSED) */
	uint64_t tls_handshakes, tls_resumed, tls_failed; /* completed, of them resumed, failed */
	uint64_t rd_pauses; /* times a link was not read while our answers waited (back-pressure) */
};
void cplink_stats(const struct cplink *l, struct cplink_stats *st);

#endif
