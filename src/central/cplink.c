/* Central's charging-point link server: see cplink.h.
 *
 * Threads: the worker owns the listening socket, every connection and the
 * timer wheel; the main thread only touches the two queues (under their
 * mutexes) and the atomic counters. Nothing else is shared.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evc/clock.h"
#include "evc/link.h"
#include "evc/log.h"
#include "evc/net.h"
#include "evc/tls.h"
#include "evc/xalloc.h"
#include "src/central/cplink.h"

/* Connection ids: a process-wide sequence number above the slot index, so a
 * slot can be found from the id in O(1) and an id is never seen twice. */
#define SLOT_BITS 24
#define SLOT_MASK ((UINT64_C(1) << SLOT_BITS) - 1)
#define MAX_SLOTS ((size_t)1 << SLOT_BITS)
/* epoll tags that are not connections (conn ids are >= 1 << SLOT_BITS). */
#define TAG_LISTEN 1
#define TAG_CMD 2

/* Timer wheel: 100 ms ticks. A connection sits in at most one bucket; it is
 * moved only when its deadline gets earlier (a heartbeat pushes the deadline
 * later and costs nothing: the visit finds it early and re-files it). */
#define TICK 0.1
#define WHEEL 128

#define FLUSH_LIMIT 1.0   /* s to write our last bytes (EOT) to a slow reader */
#define LINGER_LIMIT 1.0  /* s to read and discard after our EOT before close */
#define ACCEPT_PAUSE 1.0  /* s without accept() after EMFILE/ENFILE */
#define ACCEPT_BATCH 256  /* accepts per wakeup, so established links get turns */
#define READ_BATCH 4      /* reads per readable connection per wakeup */
/* Back-pressure: a link whose unwritten output (our answers, mostly) is
 * over RD_PAUSE bytes is not read until it is down to RD_RESUME, so a peer
 * that sends without reading our ACKs waits in its own kernel buffers
 * instead of growing ours. What one link holds is then bounded: RD_PAUSE,
 * the answers to one read (at most one byte per byte read), and Central's
 * own frames (wq_cap). */
#define RD_PAUSE 4096
#define RD_RESUME 1024
/* Answers to what one epoll batch read are written after the whole batch
 * (plaintext links, up to LATER_MAX of them), in one burst of sends: the
 * peers' side then wakes once per burst rather than once per link, which
 * on loopback (where the sender runs the receiver's TCP path) is most of
 * what a heartbeat costs. */
#define LATER_MAX 256
#define TLS_RECORD 0x16   /* first byte of a TLS ClientHello (a handshake record) */
/* TLS handshake steps wait in a queue and get HS_BUDGET s per loop turn,
 * after every other ready socket: a reconnect storm of 10,000 handshakes
 * (seconds of CPU) never delays the answers open links wait for (2 s at
 * most, evcharging(7)). Past HS_BACKLOG waiting steps accepting pauses, and
 * the kernel's backlog holds the rest. */
#define HS_BUDGET 0.01
#define HS_BACKLOG 512

/* What the first byte said (see cplink.h). */
enum conn_kind {
	K_NEW,   /* nothing received yet */
	K_PLAIN, /* ENQ first: the link protocol in the clear */
	K_TLS,   /* a ClientHello: the link protocol inside TLS */
};

/* How conn_close ends a live connection. */
enum close_how {
	CLOSE_NOW,    /* no EOT: close at once */
	CLOSE_EOT,    /* EOT, flush, linger (a close on purpose) */
	CLOSE_LINGER, /* no EOT, but flush and linger (a refusal's NACK must arrive) */
};

enum conn_phase {
	PH_LIVE,    /* session running (handshake or open) */
	PH_FLUSH,   /* logically closed; writing our last bytes (EOT) */
	PH_LINGER,  /* logically closed; our side shut, reading until peer EOF */
};

struct conn {
	uint64_t id;
	int fd;
	enum conn_phase phase;
	int up;          /* CPL_UP emitted */
	int closing;     /* cplink_close asked: EOT once our frames are answered */
	int want_out;    /* EPOLLOUT registered */
	int has_session; /* s initialised and not yet freed */
	enum conn_kind kind;
	SSL *ssl;        /* K_TLS: until the linger, or the slot's end */
	int tls_hs;      /* TLS handshake under way */
	int rd_want_out; /* SSL_read needs the socket writable first */
	int wr_want_in;  /* SSL_write needs the socket readable first */
	int registered;  /* cplink_registered said so */
	int rd_paused;   /* not read (no EPOLLIN): output over RD_PAUSE */
	int flush_later; /* in later[]: written after this epoll batch */
	char peer[64];
	char close_reason[128];
	/* t_stage: start of the handshake stage running now (accept, then
	 * the end of the TLS handshake), each allowed handshake_timeout. */
	double t_accept, t_stage, t_up, last_frame, close_deadline, end_deadline;
	/* The last HEARTBEAT handed to the main thread. A repeat says nothing
	 * new (liveness is this thread's business: last_frame), so it is
	 * answered at link level and not forwarded: 10,000 CPs beating once a
	 * second would otherwise wake the main loop 10,000 times a second. */
	char last_hb[48];
	struct link_session s;
	/* timer wheel */
	uint64_t tick; /* absolute tick it is filed under, 0 = not filed */
	struct conn *tprev, *tnext;
	/* handshake queue (see HS_BUDGET); out of epoll while queued */
	int hs_queued;
	struct conn *hprev, *hnext;
};

/* Event and command nodes with up to SMALL_TEXT bytes of text (every
 * frame of the protocol's usual traffic) are of one size and go back and
 * forth between the threads through spare lists of at most SPARE_MAX nodes
 * each, so neither thread allocates per frame once the traffic is steady;
 * longer ones are allocated to measure and freed. A burst (10,000 links
 * registering at once) thus costs what its frames need, not 10,000 times
 * the longest frame. */
#define SPARE_MAX 256
#define SMALL_TEXT 128

struct evnode {
	struct evnode *next;
	enum cplink_ev_kind kind;
	uint64_t conn;
	size_t len;
	int tls;
	char peer[64];
	char reason[128];
	size_t cap;  /* bytes of data: SMALL_TEXT (reused) or len + 1 */
	char data[]; /* len + 1 bytes */
};

enum cpl_cmd_kind { CPL_CMD_SEND, CPL_CMD_CLOSE, CPL_CMD_REGISTERED, CPL_CMD_STOP };

struct cmdnode {
	struct cmdnode *next;
	enum cpl_cmd_kind kind;
	uint64_t conn;
	size_t len;  /* of the caller's text */
	size_t cap;  /* bytes of text: SMALL_TEXT (reused) or len + 1 */
	char text[]; /* NUL-terminated: DATA or reason */
};

struct nodelist {
	void *head, *tail; /* first field of every node is its next pointer */
};

/* Nodes to reuse: a list and its length. */
struct spare {
	void *head;
	size_t n;
};

struct cplink {
	struct cplink_config cfg;
	char *host; /* our copy of cfg.host */
	int lfd, epfd, cmdfd, evfd;
	int port;
	pthread_t thread;
	int started, joined;

	/* worker-only state */
	struct conn **slots;
	size_t nslots, cap_slots;
	size_t *free_slots;
	size_t nfree;
	uint64_t seq;
	struct conn *wheel[WHEEL];
	uint64_t cur_tick;
	double accept_resume; /* 0 = accepting */
	int listening;        /* listen fd registered in epoll */
	struct conn *hs_head, *hs_tail; /* TLS handshake steps to run, in order */
	size_t hs_len;
	int hs_paused;        /* accepting paused: hs_len reached HS_BACKLOG */
	int stopping;
	int deferring;        /* in an epoll batch: see LATER_MAX */
	uint64_t later[LATER_MAX];
	size_t nlater;
	struct nodelist batch; /* events not yet published */
	struct spare ev_mine;  /* event nodes the worker took to fill */

	/* shared with the main thread */
	pthread_mutex_t ev_lock;
	struct nodelist events;
	struct spare ev_spare;  /* drained event nodes, for the worker (ev_lock) */
	pthread_mutex_t cmd_lock;
	struct nodelist cmds;
	struct spare cmd_spare; /* run command nodes, for cplink_send (cmd_lock) */
	atomic_size_t nconns; /* logically open */
	atomic_uint_fast64_t st_accepted, st_refused, st_closed, st_frames_in, st_frames_out,
		st_bytes_in, st_bytes_out, st_accept_pauses, st_plain_refused, st_tls_handshakes,
		st_tls_resumed, st_tls_failed, st_rd_pauses;
};

/* ---------------------------------------------------------------- lists */

struct anynode {
	struct anynode *next;
};

static void list_push(struct nodelist *l, void *n)
{
	((struct anynode *)n)->next = NULL;
	if (l->tail != NULL)
		((struct anynode *)l->tail)->next = n;
	else
		l->head = n;
	l->tail = n;
}

static void *spare_take(struct spare *sp)
{
	struct anynode *n = sp->head;
	if (n != NULL) {
		sp->head = n->next;
		sp->n--;
	}
	return n;
}

/* Keep the small nodes (*cap == SMALL_TEXT) of the list at head, up to
 * SPARE_MAX in sp; returns the others, to be freed after the caller's lock
 * (spare_free). capoff: where a node keeps its cap. */
static struct anynode *spare_give(struct spare *sp, struct anynode *head, size_t capoff)
{
	struct anynode *rest = NULL;
	while (head != NULL) {
		struct anynode *next = head->next;
		if (sp->n < SPARE_MAX && *(const size_t *)((const char *)head + capoff) == SMALL_TEXT) {
			head->next = sp->head;
			sp->head = head;
			sp->n++;
		} else {
			head->next = rest;
			rest = head;
		}
		head = next;
	}
	return rest;
}

static void spare_free(struct anynode *n)
{
	while (n != NULL) {
		struct anynode *next = n->next;
		free(n);
		n = next;
	}
}

static void list_free(struct nodelist *l)
{
	struct anynode *n = l->head;
	while (n != NULL) {
		struct anynode *next = n->next;
		free(n);
		n = next;
	}
	l->head = l->tail = NULL;
}

static void fd_signal(int fd)
{
	uint64_t one = 1;
	ssize_t r;
	do
		r = write(fd, &one, sizeof one);
	while (r == -1 && errno == EINTR);
	/* EAGAIN means the counter is already huge: still signalled. */
}

static void fd_unsignal(int fd)
{
	uint64_t v;
	ssize_t r;
	do
		r = read(fd, &v, sizeof v);
	while (r == -1 && errno == EINTR);
}

/* ---------------------------------------------------------------- events */

static void emit(struct cplink *l, enum cplink_ev_kind kind, const struct conn *c, const char *data,
		 size_t len, const char *reason)
{
	struct evnode *n = len < SMALL_TEXT ? spare_take(&l->ev_mine) : NULL;
	if (n == NULL) {
		size_t cap = len < SMALL_TEXT ? SMALL_TEXT : len + 1;
		n = xmalloc(sizeof *n + cap);
		n->cap = cap;
	}
	n->kind = kind;
	n->conn = c->id;
	n->len = len;
	n->tls = c->kind == K_TLS;
	xstrlcpy(n->peer, c->peer, sizeof n->peer);
	xstrlcpy(n->reason, reason != NULL ? reason : "", sizeof n->reason);
	if (len > 0)
		memcpy(n->data, data, len);
	n->data[len] = '\0';
	list_push(&l->batch, n);
}

/* Hand the worker's batch to the main thread: one lock and at most one
 * eventfd write per loop turn, and none if the main thread has not yet
 * drained the previous signal. */
static void publish(struct cplink *l)
{
	if (l->batch.head == NULL)
		return;
	pthread_mutex_lock(&l->ev_lock);
	int was_empty = l->events.head == NULL;
	if (was_empty) {
		l->events = l->batch;
	} else {
		((struct anynode *)l->events.tail)->next = l->batch.head;
		l->events.tail = l->batch.tail;
	}
	if (was_empty)
		fd_signal(l->evfd);
	if (l->ev_mine.head == NULL) {
		l->ev_mine = l->ev_spare; /* the nodes for the next events */
		l->ev_spare.head = NULL;
		l->ev_spare.n = 0;
	}
	pthread_mutex_unlock(&l->ev_lock);
	l->batch.head = l->batch.tail = NULL;
}

size_t cplink_drain(struct cplink *l, struct cplink_event *out, size_t max)
{
	struct evnode *taken = NULL, *last = NULL;
	size_t n = 0;

	pthread_mutex_lock(&l->ev_lock);
	while (n < max && l->events.head != NULL) {
		struct evnode *e = l->events.head;
		l->events.head = e->next;
		if (l->events.head == NULL)
			l->events.tail = NULL;
		e->next = NULL;
		if (last != NULL)
			last->next = e;
		else
			taken = e;
		last = e;
		n++;
	}
	/* Reset the eventfd only when the queue is empty, under the lock the
	 * worker signals under, so a wakeup is never lost. */
	if (l->events.head == NULL)
		fd_unsignal(l->evfd);
	pthread_mutex_unlock(&l->ev_lock);

	size_t i = 0;
	for (struct evnode *e = taken; e != NULL; i++) {
		struct cplink_event *o = &out[i];
		o->kind = e->kind;
		o->conn = e->conn;
		memcpy(o->peer, e->peer, sizeof o->peer);
		memcpy(o->reason, e->reason, sizeof o->reason);
		o->len = e->len;
		o->tls = e->tls;
		memcpy(o->data, e->data, e->len + 1);
		e = e->next;
	}
	if (taken != NULL) {
		pthread_mutex_lock(&l->ev_lock);
		struct anynode *rest = spare_give(&l->ev_spare, (struct anynode *)taken, offsetof(struct evnode, cap));
		pthread_mutex_unlock(&l->ev_lock);
		spare_free(rest);
	}
	return n;
}

/* ---------------------------------------------------------------- commands */

static void command(struct cplink *l, enum cpl_cmd_kind kind, uint64_t conn, const char *text)
{
	size_t len = text != NULL ? strlen(text) : 0;
	struct cmdnode *n = NULL;
	if (len < SMALL_TEXT) {
		pthread_mutex_lock(&l->cmd_lock);
		n = spare_take(&l->cmd_spare);
		pthread_mutex_unlock(&l->cmd_lock);
	}
	if (n == NULL) {
		size_t cap = len < SMALL_TEXT ? SMALL_TEXT : len + 1;
		n = xmalloc(sizeof *n + cap);
		n->cap = cap;
	}
	n->kind = kind;
	n->conn = conn;
	n->len = len;
	if (len > 0)
		memcpy(n->text, text, len);
	n->text[len] = '\0';
	pthread_mutex_lock(&l->cmd_lock);
	int was_empty = l->cmds.head == NULL;
	list_push(&l->cmds, n);
	if (was_empty)
		fd_signal(l->cmdfd);
	pthread_mutex_unlock(&l->cmd_lock);
}

void cplink_send(struct cplink *l, uint64_t conn, const char *data)
{
	command(l, CPL_CMD_SEND, conn, data);
}

void cplink_close(struct cplink *l, uint64_t conn, const char *reason)
{
	command(l, CPL_CMD_CLOSE, conn, reason != NULL ? reason : "closed by Central");
}

void cplink_registered(struct cplink *l, uint64_t conn)
{
	command(l, CPL_CMD_REGISTERED, conn, NULL);
}

/* ---------------------------------------------------------------- slots */

static struct conn *conn_find(struct cplink *l, uint64_t id)
{
	size_t slot = (size_t)(id & SLOT_MASK);
	if (id < (UINT64_C(1) << SLOT_BITS) || slot >= l->nslots)
		return NULL;
	struct conn *c = l->slots[slot];
	return c != NULL && c->id == id ? c : NULL;
}

static struct conn *conn_alloc(struct cplink *l)
{
	size_t slot;
	if (l->nfree > 0) {
		slot = l->free_slots[--l->nfree];
	} else {
		if (l->nslots == MAX_SLOTS)
			return NULL;
		if (l->nslots == l->cap_slots) {
			l->cap_slots = l->cap_slots ? l->cap_slots * 2 : 64;
			l->slots = xreallocarray(l->slots, l->cap_slots, sizeof *l->slots);
			l->free_slots = xreallocarray(l->free_slots, l->cap_slots, sizeof *l->free_slots);
		}
		slot = l->nslots++;
	}
	struct conn *c = xcalloc(1, sizeof *c);
	/* Every line about a link (the loop's conn=, the core's "link", ours)
	 * prints this whole id, so one link has one number. */
	c->id = (++l->seq << SLOT_BITS) | slot;
	c->fd = -1;
	l->slots[slot] = c;
	return c;
}

/* ---------------------------------------------------------------- timers */

static uint64_t tick_of(double t)
{
	return (uint64_t)floor(t / TICK) + 1;
}

static void timer_unlink(struct cplink *l, struct conn *c)
{
	if (c->tick == 0)
		return;
	if (c->tprev != NULL)
		c->tprev->tnext = c->tnext;
	else
		l->wheel[c->tick % WHEEL] = c->tnext;
	if (c->tnext != NULL)
		c->tnext->tprev = c->tprev;
	c->tprev = c->tnext = NULL;
	c->tick = 0;
}

static void timer_file(struct cplink *l, struct conn *c, uint64_t tick)
{
	struct conn **b = &l->wheel[tick % WHEEL];
	c->tick = tick;
	c->tprev = NULL;
	c->tnext = *b;
	if (*b != NULL)
		(*b)->tprev = c;
	*b = c;
}

/* Earliest moment something must happen on c, 0 if nothing is pending. */
static double conn_deadline(const struct cplink *l, const struct conn *c)
{
	double d = 0;
#define EARLIER(x)                                  \
	do {                                        \
		double x_ = (x);                    \
		if (x_ > 0 && (d == 0 || x_ < d))   \
			d = x_;                     \
	} while (0)
	if (c->phase != PH_LIVE)
		return c->end_deadline;
	if (c->s.state == LINK_HANDSHAKE)
		EARLIER(c->t_stage + l->cfg.handshake_timeout);
	else if (l->cfg.heartbeat_timeout > 0)
		EARLIER(c->last_frame + l->cfg.heartbeat_timeout);
	if (c->s.state == LINK_OPEN && !c->registered && l->cfg.register_timeout > 0)
		EARLIER(c->t_up + l->cfg.register_timeout);
	EARLIER(link_session_deadline(&c->s));
	if (c->closing)
		EARLIER(c->close_deadline);
#undef EARLIER
	return d;
}

/* File c for its deadline, unless it is already filed no later (then the
 * visit finds it early and re-files it: see WHEEL). */
static void timer_arm(struct cplink *l, struct conn *c)
{
	double d = conn_deadline(l, c);
	if (d <= 0) {
		timer_unlink(l, c);
		return;
	}
	uint64_t t = tick_of(d);
	if (t <= l->cur_tick)
		t = l->cur_tick + 1;
	if (c->tick != 0 && c->tick <= t)
		return;
	timer_unlink(l, c);
	timer_file(l, c, t);
}

/* ---------------------------------------------------------------- closing */

static void epoll_set(struct cplink *l, struct conn *c, int want_out)
{
	struct epoll_event ev = { .events = (c->rd_paused ? 0 : EPOLLIN) | (want_out ? EPOLLOUT : 0),
				  .data.u64 = c->id };
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->want_out = want_out;
}

static void rd_resume(struct cplink *l, struct conn *c);

static void hs_unlink(struct cplink *l, struct conn *c)
{
	if (!c->hs_queued)
		return;
	if (c->hprev != NULL)
		c->hprev->hnext = c->hnext;
	else
		l->hs_head = c->hnext;
	if (c->hnext != NULL)
		c->hnext->hprev = c->hprev;
	else
		l->hs_tail = c->hprev;
	c->hprev = c->hnext = NULL;
	c->hs_queued = 0;
	l->hs_len--;
}

/* The end of a slot: fd closed, memory freed, id forgotten. */
static void conn_destroy(struct cplink *l, struct conn *c)
{
	timer_unlink(l, c);
	hs_unlink(l, c);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd); /* also removes it from epoll */
	if (c->has_session)
		link_session_free(&c->s);
	size_t slot = (size_t)(c->id & SLOT_MASK);
	l->slots[slot] = NULL;
	l->free_slots[l->nfree++] = slot;
	free(c);
}

/* EPOLLOUT is wanted while output is stuck or a TLS read waits for it. */
static void want_out(struct cplink *l, struct conn *c, int on)
{
	if (on && !c->want_out)
		epoll_set(l, c, 1);
	else if (!on && c->want_out && !c->rd_want_out)
		epoll_set(l, c, 0);
}

/* Write what the session has for the peer. 0, or -1 with why if the socket
 * or TLS failed. */
static int conn_flush(struct cplink *l, struct conn *c, char why[128])
{
	/* Nothing can be written before the TLS handshake is done (a close
	 * during it has nothing to say). */
	if (c->tls_hs)
		return 0;
	for (;;) {
		size_t len;
		const uint8_t *p = link_session_output(&c->s, &len);
		if (len == 0)
			break;
		if (c->ssl != NULL) {
			char err[EVC_ERR_LEN];
			size_t w;
			/* After WANT_*, p and len again cover the bytes of the
			 * failed call: the queue only grows at its tail until
			 * a write succeeds (see tls_write). */
			enum tls_rc rc = tls_write(c->ssl, p, len, &w, err);
			if (rc == TLS_OK) {
				c->wr_want_in = 0;
				link_session_consumed(&c->s, w);
				atomic_fetch_add(&l->st_bytes_out, (uint64_t)w);
				continue;
			}
			if (rc == TLS_WANT_WRITE) {
				want_out(l, c, 1);
				return 0;
			}
			if (rc == TLS_WANT_READ) {
				c->wr_want_in = 1; /* EPOLLIN is always on: the next read retries */
				return 0;
			}
			xstrlcpy(why, err, 128);
			return -1;
		}
		ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			link_session_consumed(&c->s, (size_t)w);
			atomic_fetch_add(&l->st_bytes_out, (uint64_t)w);
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			want_out(l, c, 1);
			return 0;
		}
		xstrlcpy(why, w == -1 ? strerror(errno) : "write failed", 128);
		return -1;
	}
	c->wr_want_in = 0;
	want_out(l, c, 0);
	return 0;
}

static void conn_linger(struct cplink *l, struct conn *c, double now)
{
	link_session_free(&c->s);
	c->has_session = 0;
	if (c->ssl != NULL) {
		/* Our EOT is out: close_notify, then the rest is raw bytes to
		 * discard, so the SSL and its memory can go now. */
		tls_close_notify(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
		c->rd_want_out = c->wr_want_in = 0;
	}
	if (shutdown(c->fd, SHUT_WR) == -1) {
		conn_destroy(l, c);
		return;
	}
	c->phase = PH_LINGER;
	c->end_deadline = now + LINGER_LIMIT;
	if (c->want_out)
		epoll_set(l, c, 0);
	timer_arm(l, c);
}

/* THE close: every connection ends here, with a reason. The main thread
 * hears CPL_DOWN only for connections it heard CPL_UP for. With CLOSE_EOT,
 * the session's EOT (and anything still unwritten) is flushed for up to
 * FLUSH_LIMIT, then our side is shut (after close_notify on TLS) and the
 * socket read until the peer's EOF for up to LINGER_LIMIT, so a close never
 * resets away our last bytes; CLOSE_LINGER does the same without EOT. The
 * SSL goes with the slot (conn_destroy) or at the linger. */
static void conn_close(struct cplink *l, struct conn *c, const char *reason, enum close_how how, double now)
{
	if (c->phase != PH_LIVE)
		return;
	log_info("cplink: link %llu %s closed: %s", (unsigned long long)c->id, c->peer,
		 reason);
	if (c->up)
		emit(l, CPL_DOWN, c, NULL, 0, reason);
	rd_resume(l, c); /* what follows reads to the peer's EOF */
	atomic_fetch_sub(&l->nconns, 1);
	atomic_fetch_add(&l->st_closed, 1);

	if (how == CLOSE_EOT && c->s.state != LINK_CLOSED && c->s.state != LINK_BROKEN)
		link_session_close(&c->s);
	/* Even a broken link gets what the session queued (a NACK, say),
	 * best effort. */
	char why[128];
	if (conn_flush(l, c, why) == -1) {
		conn_destroy(l, c);
		return;
	}
	if (how == CLOSE_NOW) {
		conn_destroy(l, c);
		return;
	}
	size_t left;
	link_session_output(&c->s, &left);
	if (left == 0) {
		conn_linger(l, c, now);
		return;
	}
	c->phase = PH_FLUSH;
	c->end_deadline = now + FLUSH_LIMIT;
	timer_arm(l, c);
}

/* Bytes this connection holds for the peer: unwritten output plus frames
 * queued behind the one in flight. */
static size_t conn_pending(const struct conn *c)
{
	size_t n;
	link_session_output(&c->s, &n);
	return n + link_session_backlog(&c->s);
}

/* Back-pressure (RD_PAUSE): 1 if c must not be read now. Only checked
 * when nothing is buffered above the socket (TLS: nothing decrypted or
 * read ahead, SSL_has_pending), so the socket's readiness brings it back
 * once reading resumes. */
static int rd_pause(struct cplink *l, struct conn *c)
{
	if (c->rd_paused)
		return 1;
	if (conn_pending(c) <= RD_PAUSE)
		return 0;
	char why[128];
	if (c->flush_later && conn_flush(l, c, why) == 0 && conn_pending(c) <= RD_PAUSE)
		return 0; /* it was only waiting for the batch's end (errors: at its settle) */
	c->rd_paused = 1;
	atomic_fetch_add(&l->st_rd_pauses, 1);
	epoll_set(l, c, 1); /* output is stuck: wait for writable alone */
	return 1;
}

static void rd_resume(struct cplink *l, struct conn *c)
{
	if (!c->rd_paused)
		return;
	c->rd_paused = 0;
	epoll_set(l, c, c->want_out); /* level-triggered: what waits is reported */
}

/* After anything happened on a live connection: a broken session, a write
 * queue over its cap, a requested close whose frames are all answered.
 * Returns 0 if c is still live, -1 if it was closed (and maybe freed:
 * do not touch it again). */
static int conn_settle(struct cplink *l, struct conn *c, double now)
{
	if (c->phase != PH_LIVE)
		return -1;
	if (c->s.state == LINK_BROKEN || c->s.state == LINK_CLOSED) {
		conn_close(l, c, c->s.err[0] ? c->s.err : link_state_name(c->s.state), CLOSE_NOW, now);
		return -1;
	}
	if (conn_pending(c) > l->cfg.wq_cap) {
		conn_close(l, c, "write queue full", CLOSE_NOW, now);
		return -1;
	}
	char why[128];
	if (c->flush_later) {
		/* written at the batch's end */
	} else if (l->deferring && c->ssl == NULL && l->nlater < LATER_MAX) {
		c->flush_later = 1;
		l->later[l->nlater++] = c->id;
	} else if (conn_flush(l, c, why) == -1) {
		conn_close(l, c, why, CLOSE_NOW, now);
		return -1;
	}
	if (c->closing && (link_session_idle(&c->s) || now >= c->close_deadline)) {
		conn_close(l, c, c->close_reason, CLOSE_EOT, now);
		return -1;
	}
	if (c->rd_paused && conn_pending(c) <= RD_RESUME)
		rd_resume(l, c);
	timer_arm(l, c);
	return 0;
}

/* ---------------------------------------------------------------- input */

static void hs_enqueue(struct cplink *l, struct conn *c);

struct frame_ctx {
	struct cplink *l;
	struct conn *c;
	double now;
};

static void conn_up(struct cplink *l, struct conn *c, double now)
{
	if (c->up)
		return;
	c->up = 1;
	c->t_up = now;
	emit(l, CPL_UP, c, NULL, 0, NULL);
	log_debug("cplink: link %llu %s up (%s)", (unsigned long long)c->id, c->peer,
		  c->kind == K_TLS ? "tls" : "plain");
}

static void on_frame(void *arg, const char *data, size_t len)
{
	struct frame_ctx *fx = arg;
	struct conn *c = fx->c;
	conn_up(fx->l, c, fx->now);
	c->last_frame = fx->now;
	atomic_fetch_add(&fx->l->st_frames_in, 1);
	if (len < sizeof c->last_hb && strncmp(data, "HEARTBEAT#", 10) == 0) {
		if (strcmp(c->last_hb, data) == 0)
			return;
		memcpy(c->last_hb, data, len + 1);
	}
	emit(fx->l, CPL_FRAME, c, data, len, NULL);
}

/* Link-protocol bytes from the peer, plaintext or decrypted. 0 if c is
 * still live, -1 if it was closed (maybe freed). */
static int conn_input(struct cplink *l, struct conn *c, const uint8_t *buf, size_t n, double now)
{
	atomic_fetch_add(&l->st_bytes_in, (uint64_t)n);
	struct frame_ctx fx = { l, c, now };
	int was_handshake = c->s.state == LINK_HANDSHAKE;
	link_session_input(&c->s, buf, n, now, on_frame, &fx);
	if (was_handshake && c->s.state == LINK_OPEN) {
		c->last_frame = now;
		conn_up(l, c, now);
	}
	return conn_settle(l, c, now);
}

/* Decrypted input until the socket has no more for now. 0 if c is still
 * live, -1 if it was closed (maybe freed). */
static int conn_read_tls(struct cplink *l, struct conn *c, double now)
{
	uint8_t buf[16384]; /* a whole record: nothing stays behind in the SSL */
	/* A record decrypted but not all taken (SSL_pending) would never wake
	 * epoll again: it is read whatever the batch. */
	for (int i = 0; i < READ_BATCH || SSL_pending(c->ssl) > 0; i++) {
		char err[EVC_ERR_LEN];
		size_t n;
		if (!SSL_has_pending(c->ssl) && rd_pause(l, c))
			break;
		enum tls_rc rc = tls_read(c->ssl, buf, sizeof buf, &n, err);
		if (rc == TLS_WANT_READ)
			break;
		if (rc == TLS_WANT_WRITE) {
			c->rd_want_out = 1;
			want_out(l, c, 1);
			return 0;
		}
		if (rc != TLS_OK) {
			conn_close(l, c, err, CLOSE_NOW, now);
			return -1;
		}
		if (c->rd_want_out) {
			c->rd_want_out = 0;
			want_out(l, c, 0);
		}
		if (conn_input(l, c, buf, n, now) == -1)
			return -1;
	}
	/* A write that waited for input (wr_want_in) goes again now. */
	return conn_settle(l, c, now);
}

/* One step of the TLS handshake; once done, the link handshake (ENQ) gets
 * its own handshake_timeout. 0 if c is still live, -1 if closed. */
static int conn_tls_step(struct cplink *l, struct conn *c, double now)
{
	char err[EVC_ERR_LEN];
	enum tls_rc rc = tls_handshake(c->ssl, err);
	if (rc == TLS_WANT_READ) {
		want_out(l, c, 0);
		return 0;
	}
	if (rc == TLS_WANT_WRITE) {
		want_out(l, c, 1);
		return 0;
	}
	if (rc != TLS_OK) {
		atomic_fetch_add(&l->st_tls_failed, 1);
		conn_close(l, c, err, CLOSE_NOW, now);
		return -1;
	}
	c->tls_hs = 0;
	atomic_fetch_add(&l->st_tls_handshakes, 1);
	if (SSL_session_reused(c->ssl))
		atomic_fetch_add(&l->st_tls_resumed, 1);
	c->t_stage = now;
	c->s.deadline = now + l->cfg.handshake_timeout;
	want_out(l, c, 0);
	char d[128];
	tls_describe(c->ssl, d, sizeof d);
	log_debug("cplink: link %llu %s: %s", (unsigned long long)c->id, c->peer, d);
	/* The ENQ may have come with the client's Finished. */
	return conn_read_tls(l, c, now);
}

/* Read and drop what is waiting (bounded), so that the close that follows
 * is a FIN and not a reset that could destroy our last byte in flight. */
static void drain_input(int fd)
{
	uint8_t buf[4096];
	for (int k = 0; k < 4 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) == (ssize_t)sizeof buf; k++)
		;
}

/* The first byte decides the kind of link (see cplink.h). It is only
 * peeked: whatever comes next reads it again. 0 if c is still live, -1 if
 * it was closed. */
static int conn_classify(struct cplink *l, struct conn *c, double now)
{
	uint8_t b;
	ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (r == -1 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (r <= 0) {
		conn_close(l, c, r == 0 ? "connection closed by peer" : strerror(errno), CLOSE_NOW, now);
		return -1;
	}
	if (b == TLS_RECORD) {
		char err[EVC_ERR_LEN];
		if (l->cfg.tls == NULL) {
			drain_input(c->fd);
			conn_close(l, c, "TLS link refused: this server has no certificate", CLOSE_NOW, now);
			return -1;
		}
		c->ssl = tls_server_new(l->cfg.tls, c->fd, err);
		if (c->ssl == NULL) {
			conn_close(l, c, err, CLOSE_NOW, now);
			return -1;
		}
		c->kind = K_TLS;
		c->tls_hs = 1;
		hs_enqueue(l, c);
		return 0;
	}
	if (b == LINK_ENQ) {
		c->kind = K_PLAIN;
		if (l->cfg.plain_ok)
			return 0;
		/* Counted and reported first, so whoever sees the NACK or
		 * the close also sees the count and the event. */
		atomic_fetch_add(&l->st_plain_refused, 1);
		emit(l, CPL_REFUSED, c, NULL, 0, "plaintext link refused");
		drain_input(c->fd);
		uint8_t nack = LINK_NACK;
		(void)!send(c->fd, &nack, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		conn_close(l, c, "plaintext link refused", CLOSE_LINGER, now);
		return -1;
	}
	char why[128];
	snprintf(why, sizeof why, "neither TLS nor the link protocol (first byte 0x%02x)", b);
	drain_input(c->fd);
	conn_close(l, c, why, CLOSE_NOW, now);
	return -1;
}

static void conn_readable(struct cplink *l, struct conn *c, double now)
{
	uint8_t buf[16384];

	if (c->phase == PH_LIVE) {
		if (c->kind == K_NEW && (conn_classify(l, c, now) == -1 || c->kind != K_PLAIN))
			return;
		if (c->tls_hs) {
			hs_enqueue(l, c);
			return;
		}
		if (c->ssl != NULL) {
			conn_read_tls(l, c, now);
			return;
		}
	}
	for (int i = 0; i < READ_BATCH; i++) {
		if (c->phase == PH_LIVE && rd_pause(l, c))
			return;
		ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (c->phase != PH_LIVE) {
			/* Discard until the peer's EOF: closing with unread
			 * data would reset the connection. A TLS link's
			 * records are dropped undecrypted: all we still do is
			 * write (PH_FLUSH) or wait (PH_LINGER). */
			if (r <= 0) {
				conn_destroy(l, c);
				return;
			}
			continue;
		}
		if (r == 0) {
			conn_close(l, c, "connection closed by peer", CLOSE_NOW, now);
			return;
		}
		if (r < 0) {
			conn_close(l, c, strerror(errno), CLOSE_NOW, now);
			return;
		}
		if (conn_input(l, c, buf, (size_t)r, now) == -1 || (size_t)r < sizeof buf)
			return;
	}
}

static void conn_writable(struct cplink *l, struct conn *c, double now)
{
	if (c->phase == PH_LINGER) {
		epoll_set(l, c, 0);
		return;
	}
	if (c->phase == PH_LIVE && c->tls_hs) {
		hs_enqueue(l, c);
		return;
	}
	if (c->phase == PH_LIVE && c->rd_want_out) {
		/* conn_read_tls ends with conn_settle, which writes too. */
		conn_read_tls(l, c, now);
		return;
	}
	char why[128];
	if (conn_flush(l, c, why) == -1) {
		if (c->phase == PH_LIVE)
			conn_close(l, c, why, CLOSE_NOW, now);
		else
			conn_destroy(l, c);
		return;
	}
	if (c->phase == PH_FLUSH) {
		size_t left;
		link_session_output(&c->s, &left);
		if (left == 0)
			conn_linger(l, c, now);
		return;
	}
	conn_settle(l, c, now);
}

/* Timer visit: whatever is due on c. */
static void conn_due(struct cplink *l, struct conn *c, double now)
{
	if (c->phase != PH_LIVE) {
		if (now >= c->end_deadline)
			conn_destroy(l, c);
		else
			timer_arm(l, c);
		return;
	}
	if (c->s.state == LINK_HANDSHAKE && now >= c->t_stage + l->cfg.handshake_timeout) {
		char why[128];
		if (c->tls_hs)
			snprintf(why, sizeof why, "TLS handshake timeout (not complete within %.1f s)",
				 l->cfg.handshake_timeout);
		else
			snprintf(why, sizeof why, "handshake timeout (no ENQ within %.1f s)",
				 l->cfg.handshake_timeout);
		if (c->tls_hs)
			atomic_fetch_add(&l->st_tls_failed, 1);
		conn_close(l, c, why, CLOSE_NOW, now);
		return;
	}
	if (c->s.state == LINK_OPEN && l->cfg.heartbeat_timeout > 0 &&
	    now >= c->last_frame + l->cfg.heartbeat_timeout) {
		conn_close(l, c, "heartbeat timeout", CLOSE_EOT, now);
		return;
	}
	if (c->s.state == LINK_OPEN && !c->registered && l->cfg.register_timeout > 0 &&
	    now >= c->t_up + l->cfg.register_timeout) {
		char why[128];
		snprintf(why, sizeof why, "not registered within %g s", l->cfg.register_timeout);
		conn_close(l, c, why, CLOSE_EOT, now);
		return;
	}
	link_session_tick(&c->s, now);
	conn_settle(l, c, now);
}

static void wheel_run(struct cplink *l, double now)
{
	uint64_t now_tick = tick_of(now) - 1;
	if (now_tick <= l->cur_tick)
		return;
	uint64_t from = l->cur_tick + 1;
	if (now_tick - from >= WHEEL)
		from = now_tick - WHEEL + 1;
	l->cur_tick = now_tick;
	for (uint64_t t = from; t <= now_tick; t++) {
		struct conn *c = l->wheel[t % WHEEL];
		l->wheel[t % WHEEL] = NULL;
		while (c != NULL) {
			struct conn *next = c->tnext;
			uint64_t due = c->tick;
			c->tprev = c->tnext = NULL;
			c->tick = 0;
			if (due <= now_tick)
				conn_due(l, c, now);
			else
				timer_file(l, c, due); /* a later round */
			c = next;
		}
	}
}

/* ---------------------------------------------------------------- accept */

static void listen_enable(struct cplink *l, int on)
{
	if (on == l->listening)
		return;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_LISTEN };
	if (epoll_ctl(l->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->lfd, &ev) == 0)
		l->listening = on;
}

/* ---------------------------------------------------------------- handshakes */

static void hs_enqueue(struct cplink *l, struct conn *c)
{
	if (c->hs_queued)
		return;
	/* Out of epoll while it waits: a ready socket would come back in
	 * every batch and crowd out the open links. */
	struct epoll_event ev = { .events = 0, .data.u64 = c->id };
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->want_out = 0;
	c->hs_queued = 1;
	c->hnext = NULL;
	c->hprev = l->hs_tail;
	if (l->hs_tail != NULL)
		l->hs_tail->hnext = c;
	else
		l->hs_head = c;
	l->hs_tail = c;
	l->hs_len++;
	if (l->hs_len >= HS_BACKLOG && !l->hs_paused) {
		l->hs_paused = 1;
		listen_enable(l, 0);
	}
}

/* Handshake steps, oldest first, for HS_BUDGET s at most. */
static void hs_run(struct cplink *l)
{
	double now = clock_mono(), end = now + HS_BUDGET;
	while (l->hs_head != NULL && now < end) {
		struct conn *c = l->hs_head;
		hs_unlink(l, c);
		epoll_set(l, c, 0); /* back in epoll; the step says if it wants EPOLLOUT */
		conn_tls_step(l, c, now);
		now = clock_mono();
	}
	if (l->hs_paused && l->hs_len <= HS_BACKLOG / 2) {
		l->hs_paused = 0;
		if (l->accept_resume == 0 && !l->stopping)
			listen_enable(l, 1);
	}
}

static void format_peer(const struct sockaddr_storage *sa, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
		snprintf(out, n, "%s:%d", host, port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
		snprintf(out, n, "[%s]:%d", host, port);
	} else {
		snprintf(out, n, "unknown");
	}
}

static void do_accept(struct cplink *l, double now)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage sa;
		socklen_t salen = sizeof sa;
		int fd = accept4(l->lfd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_warn("cplink: accept: %s; not accepting for %.0f s", strerror(errno),
					 ACCEPT_PAUSE);
				listen_enable(l, 0);
				l->accept_resume = now + ACCEPT_PAUSE;
				atomic_fetch_add(&l->st_accept_pauses, 1);
				return;
			}
			log_warn("cplink: accept: %s", strerror(errno));
			return;
		}
		char peer[64];
		format_peer(&sa, peer, sizeof peer);
		if (atomic_load(&l->nconns) >= (size_t)l->cfg.max_conns) {
			/* NACK is the protocol's "refused"; the peer reads it
			 * as the answer to its ENQ. Best effort. */
			/* Counted first, so whoever sees the NACK or the close
			 * also sees the count. */
			atomic_fetch_add(&l->st_refused, 1);
			uint8_t nack = LINK_NACK;
			(void)!send(fd, &nack, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			log_info("cplink: refused %s: too many links (max %d)", peer, l->cfg.max_conns);
			continue;
		}
		struct conn *c = conn_alloc(l);
		if (c == NULL) {
			close(fd);
			log_warn("cplink: refused %s: no slot", peer);
			continue;
		}
		c->fd = fd;
		c->phase = PH_LIVE;
		xstrlcpy(c->peer, peer, sizeof c->peer);
		c->t_accept = c->t_stage = now;
		c->kind = K_NEW;
		net_set_nodelay(fd);
		link_session_init(&c->s, LINK_SERVER, now);
		c->has_session = 1;
		/* Our configured handshake timeout, not the codec's default. */
		c->s.deadline = now + l->cfg.handshake_timeout;
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = c->id };
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
			log_warn("cplink: epoll_ctl %s: %s", peer, strerror(errno));
			conn_destroy(l, c);
			continue;
		}
		atomic_fetch_add(&l->nconns, 1);
		atomic_fetch_add(&l->st_accepted, 1);
		log_debug("cplink: link %llu accepted from %s", (unsigned long long)c->id, peer);
		timer_arm(l, c);
	}
}

/* ---------------------------------------------------------------- commands */

static void run_commands(struct cplink *l, double now)
{
	pthread_mutex_lock(&l->cmd_lock);
	struct cmdnode *n = l->cmds.head;
	l->cmds.head = l->cmds.tail = NULL;
	fd_unsignal(l->cmdfd);
	pthread_mutex_unlock(&l->cmd_lock);

	struct cmdnode *first = n;
	while (n != NULL) {
		struct cmdnode *next = n->next;
		struct conn *c = n->kind == CPL_CMD_STOP ? NULL : conn_find(l, n->conn);
		if (n->kind == CPL_CMD_STOP) {
			l->stopping = 1;
		} else if (c == NULL || c->phase != PH_LIVE || (n->kind == CPL_CMD_SEND && c->closing)) {
			log_debug("cplink: command for closed link %llu ignored",
				  (unsigned long long)n->conn);
		} else if (n->kind == CPL_CMD_REGISTERED) {
			c->registered = 1; /* its timer visit finds nothing due and re-files it */
		} else if (n->kind == CPL_CMD_CLOSE) {
			if (!c->closing) {
				c->closing = 1;
				xstrlcpy(c->close_reason, n->text, sizeof c->close_reason);
				c->close_deadline = now + LINK_ANSWER_TIMEOUT + 0.5;
			}
			conn_settle(l, c, now);
		} else {
			char err[EVC_ERR_LEN];
			size_t len = n->len;
			if (link_validate(n->text, len, err) == -1) {
				log_warn("cplink: frame for link %llu dropped: %s",
					 (unsigned long long)c->id, err);
			} else if (link_session_send(&c->s, n->text, len, now, err) == -1) {
				char why[128];
				snprintf(why, sizeof why, "write queue full (%.100s)", err);
				conn_close(l, c, why, CLOSE_NOW, now);
			} else {
				atomic_fetch_add(&l->st_frames_out, 1);
				conn_settle(l, c, now);
			}
		}
		n = next;
	}
	if (first != NULL) {
		pthread_mutex_lock(&l->cmd_lock);
		struct anynode *rest = spare_give(&l->cmd_spare, (struct anynode *)first, offsetof(struct cmdnode, cap));
		pthread_mutex_unlock(&l->cmd_lock);
		spare_free(rest);
	}
}

/* ---------------------------------------------------------------- worker */

static int epoll_timeout(const struct cplink *l, double now)
{
	int ms = -1;
	if (atomic_load(&l->nconns) > 0 || l->nslots - l->nfree > 0) {
		double next = (double)(l->cur_tick + 1) * TICK;
		ms = (int)ceil((next - now) * 1000.0);
		if (ms < 1)
			ms = 1;
		if (ms > 100)
			ms = 100;
	}
	if (l->hs_head != NULL)
		return 0; /* handshakes wait: look at the sockets and go on */
	if (l->accept_resume > 0) {
		int a = clock_ms_until(l->accept_resume, 1000);
		if (a < 1)
			a = 1;
		if (ms == -1 || a < ms)
			ms = a;
	}
	return ms;
}

static void handle_ready(struct cplink *l, struct epoll_event *evs, int n, double now)
{
	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		if (tag == TAG_LISTEN) {
			if (!l->stopping)
				do_accept(l, now);
			continue;
		}
		if (tag == TAG_CMD) {
			run_commands(l, now);
			continue;
		}
		struct conn *c = conn_find(l, tag); /* may have closed earlier in this batch */
		if (c == NULL)
			continue;
		uint32_t e = evs[i].events;
		if (e & (EPOLLHUP | EPOLLERR))
			rd_resume(l, c); /* the peer is gone: read to its error or EOF */
		if (e & (EPOLLIN | EPOLLHUP | EPOLLERR))
			conn_readable(l, c, now);
		if ((e & EPOLLOUT) && conn_find(l, tag) == c)
			conn_writable(l, c, now);
	}
}

/* The end of an epoll batch: what it answered goes out (see LATER_MAX). */
static void flush_later(struct cplink *l, double now)
{
	for (size_t i = 0; i < l->nlater; i++) {
		struct conn *c = conn_find(l, l->later[i]);
		if (c == NULL)
			continue; /* closed meanwhile (its close wrote what it could) */
		c->flush_later = 0;
		conn_settle(l, c, now);
	}
	l->nlater = 0;
}

static size_t count_flushing(const struct cplink *l)
{
	size_t n = 0;
	for (size_t i = 0; i < l->nslots; i++)
		if (l->slots[i] != NULL && l->slots[i]->phase == PH_FLUSH)
			n++;
	return n;
}

/* Shutdown: EOT to every open link, keep the loop running until every EOT
 * is written or the second is up, then close. Unlike a normal close there
 * is no waiting for the peers' EOF: what they sent is read and dropped just
 * before close, so the close is a FIN, not a reset that could destroy the
 * EOT in flight. */
static void worker_stop(struct cplink *l, struct epoll_event *evs, int maxev)
{
	double now = clock_mono();
	double end = now + 1.0;

	listen_enable(l, 0);
	for (size_t i = 0; i < l->nslots; i++) {
		struct conn *c = l->slots[i];
		if (c != NULL && c->phase == PH_LIVE)
			conn_close(l, c, "Central shutting down", c->s.state == LINK_OPEN ? CLOSE_EOT : CLOSE_NOW,
				   now);
	}
	publish(l);
	while (count_flushing(l) > 0 && (now = clock_mono()) < end) {
		int n = epoll_wait(l->epfd, evs, maxev, clock_ms_until(end, 100) + 1);
		now = clock_mono();
		for (int i = 0; i < n; i++) {
			struct conn *c = conn_find(l, evs[i].data.u64);
			if (c == NULL)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_readable(l, c, now);
			if ((evs[i].events & EPOLLOUT) && conn_find(l, evs[i].data.u64) == c)
				conn_writable(l, c, now);
		}
	}
	for (size_t i = 0; i < l->nslots; i++) {
		struct conn *c = l->slots[i];
		if (c == NULL)
			continue;
		uint8_t buf[4096];
		for (int k = 0; k < 16 && recv(c->fd, buf, sizeof buf, MSG_DONTWAIT) > 0; k++)
			;
		conn_destroy(l, c);
	}
	publish(l);
}

static void *worker(void *arg)
{
	struct cplink *l = arg;
	enum { MAXEV = 256 };
	struct epoll_event evs[MAXEV];

	/* Signals belong to the main loop. */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "cplink"); /* for top -H and run-links */

	l->cur_tick = tick_of(clock_mono()) - 1;
	while (!l->stopping) {
		int n = epoll_wait(l->epfd, evs, MAXEV, epoll_timeout(l, clock_mono()));
		if (n == -1 && errno != EINTR) {
			log_error("cplink: epoll_wait: %s", strerror(errno));
			break;
		}
		double now = clock_mono();
		if (n > 0) {
			l->deferring = 1;
			handle_ready(l, evs, n, now);
			l->deferring = 0;
			flush_later(l, now);
		}
		if (l->accept_resume > 0 && now >= l->accept_resume && !l->stopping) {
			l->accept_resume = 0;
			listen_enable(l, !l->hs_paused);
		}
		wheel_run(l, now);
		hs_run(l);
		publish(l);
	}
	worker_stop(l, evs, MAXEV);
	return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

void cplink_config_defaults(struct cplink_config *c)
{
	c->host = NULL;
	c->port = 0;
	c->max_conns = 10000;
	c->wq_cap = 256 * 1024;
	c->handshake_timeout = LINK_HANDSHAKE_TIMEOUT;
	c->heartbeat_timeout = 3.0;
	c->tls = NULL;
	c->plain_ok = 0;
	c->register_timeout = 10.0;
}

struct cplink *cplink_new(const struct cplink_config *cfg, char err[EVC_ERR_LEN])
{
	struct cplink *l = NULL;
	char nerr[EVC_ERR_LEN];

	if (cfg->max_conns < 1 || (size_t)cfg->max_conns > MAX_SLOTS / 2) {
		snprintf(err, EVC_ERR_LEN, "invalid max connections %d (expected 1..%zu)", cfg->max_conns,
			 MAX_SLOTS / 2);
		return NULL;
	}
	if (!(cfg->handshake_timeout > 0) || !(cfg->heartbeat_timeout >= 0) || !(cfg->register_timeout >= 0) ||
	    !isfinite(cfg->handshake_timeout) || !isfinite(cfg->heartbeat_timeout) ||
	    !isfinite(cfg->register_timeout)) {
		snprintf(err, EVC_ERR_LEN,
			 "invalid link timeouts (handshake %g s must be > 0, heartbeat %g s and register %g s >= 0)",
			 cfg->handshake_timeout, cfg->heartbeat_timeout, cfg->register_timeout);
		return NULL;
	}
	if (cfg->tls == NULL && !cfg->plain_ok) {
		snprintf(err, EVC_ERR_LEN, "link server: no TLS certificate and plaintext links not allowed: no CP could connect");
		return NULL;
	}
	if (cfg->wq_cap < LINK_FRAME_MAX) {
		snprintf(err, EVC_ERR_LEN, "write queue cap %zu too small (at least %d bytes)", cfg->wq_cap,
			 LINK_FRAME_MAX);
		return NULL;
	}

	l = xcalloc(1, sizeof *l);
	l->cfg = *cfg;
	if (cfg->host != NULL) {
		l->host = xstrdup(cfg->host);
		l->cfg.host = l->host;
	}
	l->lfd = l->epfd = l->cmdfd = l->evfd = -1;
	pthread_mutex_init(&l->ev_lock, NULL);
	pthread_mutex_init(&l->cmd_lock, NULL);

	l->lfd = net_listen(cfg->host, cfg->port, 4096, nerr);
	if (l->lfd == -1) {
		snprintf(err, EVC_ERR_LEN, "link server: %.240s", nerr);
		goto fail;
	}
	l->port = net_local_port(l->lfd);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->cmdfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->epfd == -1 || l->cmdfd == -1 || l->evfd == -1) {
		snprintf(err, EVC_ERR_LEN, "link server: %s", strerror(errno));
		goto fail;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_CMD };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->cmdfd, &ev) == -1) {
		snprintf(err, EVC_ERR_LEN, "link server: epoll: %s", strerror(errno));
		goto fail;
	}
	listen_enable(l, 1);
	if (!l->listening) {
		snprintf(err, EVC_ERR_LEN, "link server: epoll: %s", strerror(errno));
		goto fail;
	}
	return l;
fail:
	cplink_free(l);
	return NULL;
}

int cplink_port(const struct cplink *l)
{
	return l->port;
}

int cplink_event_fd(const struct cplink *l)
{
	return l->evfd;
}

int cplink_start(struct cplink *l, char err[EVC_ERR_LEN])
{
	if (l->started) {
		snprintf(err, EVC_ERR_LEN, "link server already started");
		return -1;
	}
	int rc = pthread_create(&l->thread, NULL, worker, l);
	if (rc != 0) {
		snprintf(err, EVC_ERR_LEN, "link server thread: %s", strerror(rc));
		return -1;
	}
	l->started = 1;
	return 0;
}

size_t cplink_count(const struct cplink *l)
{
	return atomic_load(&((struct cplink *)l)->nconns);
}

void cplink_stats(const struct cplink *l, struct cplink_stats *st)
{
	struct cplink *m = (struct cplink *)l;
	st->accepted = atomic_load(&m->st_accepted);
	st->refused = atomic_load(&m->st_refused);
	st->closed = atomic_load(&m->st_closed);
	st->frames_in = atomic_load(&m->st_frames_in);
	st->frames_out = atomic_load(&m->st_frames_out);
	st->bytes_in = atomic_load(&m->st_bytes_in);
	st->bytes_out = atomic_load(&m->st_bytes_out);
	st->accept_pauses = atomic_load(&m->st_accept_pauses);
	st->plain_refused = atomic_load(&m->st_plain_refused);
	st->tls_handshakes = atomic_load(&m->st_tls_handshakes);
	st->tls_resumed = atomic_load(&m->st_tls_resumed);
	st->tls_failed = atomic_load(&m->st_tls_failed);
	st->rd_pauses = atomic_load(&m->st_rd_pauses);
}

void cplink_shutdown(struct cplink *l)
{
	if (l->started && !l->joined) {
		command(l, CPL_CMD_STOP, 0, NULL);
		pthread_join(l->thread, NULL);
		l->joined = 1;
	}
	if (l->lfd >= 0) {
		close(l->lfd);
		l->lfd = -1;
	}
}

void cplink_free(struct cplink *l)
{
	if (l == NULL)
		return;
	cplink_shutdown(l);
	/* Never started: connections cannot exist, but be exact anyway. */
	for (size_t i = 0; i < l->nslots; i++)
		if (l->slots[i] != NULL)
			conn_destroy(l, l->slots[i]);
	list_free(&l->batch);
	list_free(&l->events);
	list_free(&l->cmds);
	spare_free(l->ev_mine.head);
	spare_free(l->ev_spare.head);
	spare_free(l->cmd_spare.head);
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->cmdfd >= 0)
		close(l->cmdfd);
	if (l->evfd >= 0)
		close(l->evfd);
	pthread_mutex_destroy(&l->ev_lock);
	pthread_mutex_destroy(&l->cmd_lock);
	free(l->slots);
	free(l->free_slots);
	free(l->host);
	free(l);
}
