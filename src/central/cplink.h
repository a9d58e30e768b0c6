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
 */
#ifndef EVC_CENTRAL_CPLINK_H
#define EVC_CENTRAL_CPLINK_H
#include <stddef.h>
#include <stdint.h>

#include "evc/link.h"

struct cplink_config {
	const char *host;         /* bind address, NULL = all (0.0.0.0); not copied */
	int port;                 /* 0 = any (see cplink_port) */
	int max_conns;            /* open connections; extra ones are accepted and closed */
	size_t wq_cap;            /* bytes waiting to be written per connection */
	double handshake_timeout; /* s without ENQ after accept -> closed */
	double heartbeat_timeout; /* s without any frame -> closed; 0 disables */
};

/* host NULL (all), port 0, max_conns 10000, wq_cap 256 KiB, handshake 5 s,
 * heartbeat 3 s. */
void cplink_config_defaults(struct cplink_config *c);

enum cplink_ev_kind {
	CPL_UP,    /* handshake completed (ENQ answered with ACK) */
	CPL_FRAME, /* one valid frame received (already ACKed): data/len */
	CPL_DOWN,  /* connection closed: reason; only after a CPL_UP */
};

struct cplink_event {
	enum cplink_ev_kind kind;
	uint64_t conn;
	char peer[64];                /* "127.0.0.1:50312" */
	size_t len;                   /* CPL_FRAME: DATA length */
	char data[LINK_DATA_MAX + 1]; /* CPL_FRAME: DATA, NUL-terminated */
	char reason[128];             /* CPL_DOWN: why */
};

struct cplink;

/* Bind and listen now (so "port taken" is reported at start, not later in a
 * thread). NULL with err filled on failure. Caller frees with cplink_free. */
struct cplink *cplink_new(const struct cplink_config *cfg, char err[256]);
/* Port actually bound (useful with port 0). */
int cplink_port(const struct cplink *l);
/* Spawn the epoll worker thread. 0 or -1 with err. */
int cplink_start(struct cplink *l, char err[256]);
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
};
void cplink_stats(const struct cplink *l, struct cplink_stats *st);

#endif
