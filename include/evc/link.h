/* The TCP link protocol of evcharging(7) THE LINK PROTOCOL, as one piece that both ends
 * of every link use (Central's epoll server, the monitor, the engine).
 *
 * Three layers, none of which touches a socket:
 *   1. frames: LRC, validation, building, splitting fields;
 *   2. link_reader: a byte-stream reassembler that yields frames and control
 *      bytes in order from arbitrary chunks;
 *   3. link_session: the session rules (ENQ handshake, one ACK/NACK per frame,
 *      resend after NACK up to 3 attempts, 2 s answer timeout, EOT). The
 *      caller feeds it received bytes and the clock, and drains the bytes it
 *      wants written. Works the same under epoll or a blocking client.
 *
 * A blocking client (monitor, engine) runs, with clock_mono() as now:
 *     link_session_init(&s, LINK_CLIENT, now);
 *     while (link_session_tick(&s, now) == 0) {
 *             write all of link_session_output(), then link_session_consumed();
 *             poll(fd, POLLIN, clock_ms_until(link_session_deadline(&s), cap));
 *             if readable: n = read(); n == 0: peer gone; else
 *                     link_session_input(&s, buf, n, now, on_frame, arg);
 *     }
 * and an epoll server does the same per connection: input on EPOLLIN, write
 * output when there is some (EPOLLOUT while it does not all fit), tick on
 * its timer, close the socket once input/tick return -1 and the output
 * (EOT) is written or cannot be.
 */
#ifndef EVC_LINK_H
#define EVC_LINK_H
#include <stddef.h>
#include <stdint.h>

#include "evc/err.h"

#define LINK_STX 0x02
#define LINK_ETX 0x03
#define LINK_EOT 0x04
#define LINK_ENQ 0x05
#define LINK_ACK 0x06
#define LINK_NACK 0x15

#define LINK_DATA_MAX 1024                 /* bytes of DATA in one frame */
#define LINK_FRAME_MAX (LINK_DATA_MAX + 3) /* STX DATA ETX LRC */
#define LINK_FIELDS_MAX 16

#define LINK_HANDSHAKE_TIMEOUT 5.0 /* s: server waits this long for ENQ */
#define LINK_ANSWER_TIMEOUT 2.0    /* s: wait for ACK/NACK (and ENQ's answer) */
#define LINK_MAX_ATTEMPTS 3        /* sends of one frame in all */

/* ---- 1. frames ---- */

/* XOR of STX, DATA and ETX. */
uint8_t link_lrc(const char *data, size_t len);
/* 0 if DATA is valid (1..1024 bytes, no byte < 0x20, opcode [A-Z_]+ up to
 * the first '#' or the end), else -1 with a reason in err (err may be NULL). */
int link_validate(const char *data, size_t len, char *err);
/* Write STX DATA ETX LRC into out (outsz >= len + 3). Returns the frame's
 * length, or -1 (invalid DATA or no room; reason in err, which may be NULL). */
int link_frame_build(uint8_t *out, size_t outsz, const char *data, size_t len, char *err);
/* Split a NUL-terminated DATA in place on '#'. Fills at most max pointers;
 * returns the number of fields, or -1 if there are more than max. */
int link_split(char *data, char *fields[], int max);

/* ---- 2. stream reader ---- */

enum link_item_kind {
	LINK_ITEM_FRAME,   /* a complete frame with a correct LRC and valid DATA */
	LINK_ITEM_CTRL,    /* a single control byte outside a frame (ACK, NACK, EOT, ENQ) */
	LINK_ITEM_BAD,     /* a frame whose LRC or DATA is wrong, that has more than
	                      LINK_DATA_MAX bytes before its ETX (skipped, never
	                      stored), or that a new STX interrupted before its ETX
	                      (the new STX starts the next frame): answer NACK.
	                      Every STX yields exactly one FRAME or BAD item. */
	LINK_ITEM_GARBAGE, /* a run of bytes outside a frame that are not STX or
	                      control bytes, reported when the run or the chunk
	                      ends; no answer */
};

struct link_item {
	enum link_item_kind kind;
	uint8_t ctrl;                   /* LINK_ITEM_CTRL: the byte */
	size_t len;                     /* LINK_ITEM_FRAME: DATA length */
	char data[LINK_DATA_MAX + 1];   /* LINK_ITEM_FRAME: DATA, NUL-terminated */
	char err[EVC_ERR_LEN];         /* BAD/GARBAGE: what was wrong */
};

struct link_reader {
	int state; /* private */
	size_t len;
	size_t skipped;
	/* A frame's DATA is gathered in the caller's link_item while its chunk
	 * lasts; only a frame cut between two chunks is kept here, in a buffer
	 * of LINK_DATA_MAX bytes allocated the first time and kept until
	 * link_reader_free (so an idle reader holds no buffer, and a busy one
	 * never allocates per frame). */
	uint8_t *buf;
};

void link_reader_init(struct link_reader *r);
/* Frees the buffer of a cut frame, if one was ever needed; r can be
 * initialised again. */
void link_reader_free(struct link_reader *r);
/* Consume bytes from *buf (of *len) until one item is complete. Returns 1
 * with *it filled and *buf / *len advanced past the bytes used, or 0 when
 * every byte was consumed without completing an item. Never reads or writes
 * out of bounds, whatever the input. */
int link_reader_next(struct link_reader *r, const uint8_t **buf, size_t *len, struct link_item *it);

/* ---- 3. session ---- */

enum link_role { LINK_CLIENT, LINK_SERVER };

enum link_state {
	LINK_HANDSHAKE, /* client: ENQ sent, waiting ACK; server: waiting ENQ */
	LINK_OPEN,
	LINK_CLOSED,    /* EOT sent or received, or refused: no more traffic */
	LINK_BROKEN,    /* protocol failure or timeout: close the socket */
};

/* What link_session_input reports for each received frame. data is DATA,
 * NUL-terminated, valid only during the call. */
typedef void (*link_frame_fn)(void *arg, const char *data, size_t len);

#define LINK_QUEUE_MAX 64 /* frames waiting to be sent, beyond the one in flight */

struct link_session {
	enum link_role role;
	enum link_state state;
	struct link_reader rd;
	double deadline;          /* handshake or answer deadline (monotonic), 0 = none */
	/* outbound frames, oldest (in flight once sent) first: nqueue records
	 * of a 2-byte length (little-endian) and the DATA, in q from q_head
	 * for q_len bytes. The buffer grows to the largest backlog seen and is
	 * kept, so a session allocates nothing per frame once warm. */
	uint8_t *q;
	size_t q_head, q_len, q_cap;
	int nqueue;
	int in_flight;            /* queue[0] sent, waiting for ACK/NACK */
	int attempts;
	int closing;              /* link_session_finish: EOT once the queue is empty */
	/* bytes to write */
	uint8_t *out;
	size_t out_len, out_cap;
	char err[EVC_ERR_LEN];   /* why the link is CLOSED/BROKEN */
	unsigned long frames_in, frames_out, nacks_in, nacks_out;
};

/* Start a session at time now (monotonic seconds). A client queues ENQ for
 * writing at once and waits 2 s for its answer; a server starts the 5 s
 * handshake timer. Caller frees with link_session_free (once per init). */
void link_session_init(struct link_session *s, enum link_role role, double now);
void link_session_free(struct link_session *s);
/* Feed received bytes. Answers every frame with ACK/NACK (queued for
 * writing), handles ACK/NACK/ENQ/EOT, calls fn for each valid frame in order.
 * The ACK of a frame is queued before fn runs, so fn may call
 * link_session_send / link_session_close on s (not link_session_free).
 * Bytes after EOT or a failure are ignored. Also applies timeouts at now.
 * Returns 0, or -1 once the state is CLOSED or BROKEN (reason in s->err). */
int link_session_input(struct link_session *s, const uint8_t *buf, size_t len, double now,
		       link_frame_fn fn, void *arg);
/* Queue a frame to send (copied). -1 if DATA is invalid, the queue is full or
 * the link is closed (reason in err, may be NULL). Frames queued during the
 * handshake are sent once it completes. */
int link_session_send(struct link_session *s, const char *data, size_t len, double now, char *err);
/* Convenience: printf-formatted DATA. */
int link_session_sendf(struct link_session *s, double now, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Apply timeouts at time now. Returns 0, or -1 if the state is CLOSED or
 * BROKEN (just now or earlier; reason in s->err). */
int link_session_tick(struct link_session *s, double now);
/* Earliest deadline the caller should wake for (monotonic), 0 if none. */
double link_session_deadline(const struct link_session *s);
/* Purposeful close: queue EOT and enter CLOSED. Drain output, then close.
 * Frames still queued are dropped: to deliver them first (e.g. a DENIED
 * answer), wait until link_session_idle() or the link breaks, then close. */
void link_session_close(struct link_session *s);
/* Graceful close: refuse new frames, deliver the queued ones (each still
 * needs its ACK), then queue EOT and enter CLOSED. At once if nothing is
 * queued. If delivery fails the state becomes BROKEN as usual. */
void link_session_finish(struct link_session *s);
/* Bytes waiting to be written, and telling the session n were written. */
const uint8_t *link_session_output(const struct link_session *s, size_t *len);
void link_session_consumed(struct link_session *s, size_t n);
/* Bytes the frames queued behind the one in flight will take on the wire
 * (STX DATA ETX LRC each): what waits beyond link_session_output. */
size_t link_session_backlog(const struct link_session *s);
/* True when nothing is queued or in flight (all our frames acknowledged). */
int link_session_idle(const struct link_session *s);
const char *link_state_name(enum link_state st);

#endif
