/* The TCP link protocol of evcharging(7) THE LINK PROTOCOL: frames, a stream reader and
 * the session rules. No socket calls here: the caller moves bytes and passes
 * the clock, so Central's epoll loop and a blocking client share this code and
 * the unit tests drive it with a fake clock. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/link.h"
#include "evc/utf8.h"
#include "evc/xalloc.h"

/* ---- 1. frames ---- */

uint8_t link_lrc(const char *data, size_t len)
{
	uint8_t x = LINK_STX ^ LINK_ETX;
	for (size_t i = 0; i < len; i++)
		x ^= (uint8_t)data[i];
	return x;
}



int link_validate(const char *data, size_t len, char *err)
{
	const uint8_t *p = (const uint8_t *)data;
	if (len == 0) {
		evc_seterr(err, "empty frame (DATA must hold 1 to %d bytes)", LINK_DATA_MAX);
		return -1;
	}
	if (len > LINK_DATA_MAX) {
		evc_seterr(err, "frame of %zu bytes is longer than %d", len, LINK_DATA_MAX);
		return -1;
	}
	size_t op = 0;
	while (op < len && p[op] != '#')
		op++;
	if (op == 0) {
		evc_seterr(err, "empty opcode (DATA starts with '#')");
		return -1;
	}
	for (size_t i = 0; i < op; i++) {
		if (!((p[i] >= 'A' && p[i] <= 'Z') || p[i] == '_')) {
			if (p[i] < 0x20 || p[i] >= 0x7F)
				evc_seterr(err, "opcode must match [A-Z_]+ (byte 0x%02x at offset %zu)", p[i], i);
			else
				evc_seterr(err, "opcode must match [A-Z_]+ ('%c' at offset %zu)", p[i], i);
			return -1;
		}
	}
	for (size_t i = op; i < len;) {
		if (p[i] < 0x20) {
			evc_seterr(err, "control byte 0x%02x at offset %zu of DATA", p[i], i);
			return -1;
		}
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0) {
			evc_seterr(err, "invalid UTF-8 at offset %zu of DATA", i);
			return -1;
		}
		i += n;
	}
	return 0;
}

int link_frame_build(uint8_t *out, size_t outsz, const char *data, size_t len, char *err)
{
	if (link_validate(data, len, err) < 0)
		return -1;
	if (out == NULL || outsz < len + 3) {
		evc_seterr(err, "no room for a frame of %zu bytes (have %zu)", len + 3, out ? outsz : 0);
		return -1;
	}
	out[0] = LINK_STX;
	memcpy(out + 1, data, len);
	out[len + 1] = LINK_ETX;
	out[len + 2] = link_lrc(data, len);
	return (int)(len + 3);
}

int link_split(char *data, char *fields[], int max)
{
	if (data == NULL || max <= 0)
		return -1;
	/* Count first so that a refused DATA is left untouched. */
	int n = 1;
	for (const char *p = data; *p; p++)
		if (*p == '#')
			n++;
	if (n > max)
		return -1;
	int i = 0;
	fields[i++] = data;
	for (char *p = data; *p; p++) {
		if (*p == '#') {
			*p = '\0';
			fields[i++] = p + 1;
		}
	}
	return n;
}

/* ---- 2. stream reader ----
 *
 * Outside a frame every byte is either STX (a frame starts), one of the four
 * control bytes (reported alone), or garbage. Inside a frame bytes are DATA up
 * to ETX, and the byte after ETX is the LRC whatever its value.
 *
 * Rule that the session relies on: every STX yields exactly one FRAME or BAD
 * item, so every frame the peer sent gets exactly one ACK or NACK, and the
 * peer's own retry logic stays in step. Hence:
 *  - a frame whose LRC or DATA is wrong is BAD;
 *  - a frame with more than LINK_DATA_MAX bytes before its ETX is BAD: its
 *    bytes are skipped (never stored, so nothing overruns) up to its ETX and
 *    LRC, then reading resumes normally. We do not skip to the next STX: the
 *    peer's ACK/NACK bytes may come before its next frame and must not be lost;
 *  - a STX before the ETX ends the partial frame as BAD ("interrupted") and
 *    starts a new frame at that STX. A well-behaved peer never does this (its
 *    DATA has no byte below 0x20), so the partial frame is broken anyway, and
 *    restarting at the STX loses at most that partial frame instead of
 *    swallowing the next good one.
 * Other control bytes inside a frame stay in the DATA and make it BAD.
 * A run of garbage outside frames is reported once as one GARBAGE item, when
 * the run ends (STX or control byte) or the chunk ends, so a server waiting
 * for ENQ learns at once that something else arrived. */

enum {
	RD_IDLE,     /* outside a frame; skipped counts garbage of the current run */
	RD_DATA,     /* after STX: len bytes of DATA gathered (see struct link_reader) */
	RD_LRC,      /* after ETX: next byte is the LRC */
	RD_OVER,     /* oversized frame: skipping to ETX; skipped counts its DATA */
	RD_OVER_LRC, /* after the ETX of an oversized frame */
};

void link_reader_init(struct link_reader *r)
{
	memset(r, 0, sizeof *r);
	r->state = RD_IDLE;
}

void link_reader_free(struct link_reader *r)
{
	free(r->buf);
	r->buf = NULL;
}

static int is_ctrl(uint8_t c)
{
	return c == LINK_ACK || c == LINK_NACK || c == LINK_EOT || c == LINK_ENQ;
}

static void item_reset(struct link_item *it, enum link_item_kind kind)
{
	it->kind = kind;
	it->ctrl = 0;
	it->len = 0;
	it->data[0] = '\0';
	it->err[0] = '\0';
}

int link_reader_next(struct link_reader *r, const uint8_t **buf, size_t *len, struct link_item *it)
{
	const uint8_t *p = *buf;
	size_t n = *len;
	size_t i = 0;
	int done = 0;
	/* DATA is gathered in it->data; a frame begun in an earlier chunk
	 * continues from where it was kept. */
	uint8_t *d = (uint8_t *)it->data;
	if ((r->state == RD_DATA || r->state == RD_LRC) && r->len > 0)
		memcpy(d, r->buf, r->len);

	while (i < n && !done) {
		uint8_t c = p[i];
		switch (r->state) {
		case RD_IDLE:
			if (c == LINK_STX || is_ctrl(c)) {
				if (r->skipped > 0) {
					/* Report the garbage run first; c is read next call. */
					item_reset(it, LINK_ITEM_GARBAGE);
					snprintf(it->err, sizeof it->err,
						 "%zu byte(s) outside a frame that are not control bytes",
						 r->skipped);
					r->skipped = 0;
					done = 1;
					break;
				}
				i++;
				if (c == LINK_STX) {
					r->state = RD_DATA;
					r->len = 0;
				} else {
					item_reset(it, LINK_ITEM_CTRL);
					it->ctrl = c;
					done = 1;
				}
			} else {
				r->skipped++;
				i++;
			}
			break;
		case RD_DATA:
			i++;
			if (c == LINK_ETX) {
				r->state = RD_LRC;
			} else if (c == LINK_STX) {
				item_reset(it, LINK_ITEM_BAD);
				snprintf(it->err, sizeof it->err,
					 "frame interrupted by STX after %zu byte(s) of DATA", r->len);
				r->len = 0; /* stay in RD_DATA: this STX starts the next frame */
				done = 1;
			} else if (r->len >= LINK_DATA_MAX) {
				r->state = RD_OVER;
				r->skipped = r->len + 1;
				r->len = 0;
			} else {
				d[r->len++] = c;
			}
			break;
		case RD_LRC: {
			i++;
			r->state = RD_IDLE;
			uint8_t want = link_lrc((const char *)d, r->len);
			if (c != want) {
				item_reset(it, LINK_ITEM_BAD);
				snprintf(it->err, sizeof it->err,
					 "bad LRC 0x%02x (expected 0x%02x) on a frame of %zu byte(s)",
					 c, want, r->len);
			} else if (link_validate((const char *)d, r->len, it->err) < 0) {
				it->kind = LINK_ITEM_BAD;
				it->ctrl = 0;
				it->len = 0;
				it->data[0] = '\0';
			} else {
				it->kind = LINK_ITEM_FRAME;
				it->ctrl = 0;
				it->err[0] = '\0';
				it->data[r->len] = '\0';
				it->len = r->len;
			}
			r->len = 0;
			done = 1;
			break;
		}
		case RD_OVER:
			i++;
			if (c == LINK_ETX) {
				r->state = RD_OVER_LRC;
			} else if (c == LINK_STX) {
				item_reset(it, LINK_ITEM_BAD);
				snprintf(it->err, sizeof it->err,
					 "frame longer than %d bytes (%zu byte(s) before a new STX)",
					 LINK_DATA_MAX, r->skipped);
				r->skipped = 0;
				r->state = RD_DATA;
				r->len = 0;
				done = 1;
			} else if (r->skipped < (size_t)-1) {
				r->skipped++;
			}
			break;
		case RD_OVER_LRC:
			i++;
			item_reset(it, LINK_ITEM_BAD);
			snprintf(it->err, sizeof it->err, "frame longer than %d bytes (%zu byte(s) of DATA)",
				 LINK_DATA_MAX, r->skipped);
			r->skipped = 0;
			r->state = RD_IDLE;
			done = 1;
			break;
		default:
			/* Unreachable unless the struct was clobbered: start over. */
			link_reader_init(r);
			break;
		}
	}
	if (!done && r->state == RD_IDLE && r->skipped > 0) {
		/* The chunk ended inside a garbage run: say so now rather than
		 * after the peer's next byte, which may never come. */
		item_reset(it, LINK_ITEM_GARBAGE);
		snprintf(it->err, sizeof it->err, "%zu byte(s) outside a frame that are not control bytes",
			 r->skipped);
		r->skipped = 0;
		done = 1;
	}
	if (!done && (r->state == RD_DATA || r->state == RD_LRC) && r->len > 0) {
		/* The chunk ended inside a frame: keep its DATA for the next. */
		if (r->buf == NULL)
			r->buf = xmalloc(LINK_DATA_MAX);
		memcpy(r->buf, d, r->len);
	}
	*buf = p + i;
	*len = n - i;
	return done;
}

/* ---- 3. session ---- */

static void out_append(struct link_session *s, const uint8_t *b, size_t n)
{
	if (s->out_len + n > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 64; /* ACKs mostly: small */
		while (cap < s->out_len + n)
			cap *= 2;
		s->out = xrealloc(s->out, cap);
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, b, n);
	s->out_len += n;
}

static void out_byte(struct link_session *s, uint8_t c)
{
	out_append(s, &c, 1);
}

static int fail(struct link_session *s, enum link_state st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct link_session *s, enum link_state st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	s->state = st;
	s->deadline = 0;
	return -1;
}

static int is_done(const struct link_session *s)
{
	return s->state == LINK_CLOSED || s->state == LINK_BROKEN;
}

void link_session_init(struct link_session *s, enum link_role role, double now)
{
	memset(s, 0, sizeof *s);
	s->role = role;
	s->state = LINK_HANDSHAKE;
	link_reader_init(&s->rd);
	if (role == LINK_CLIENT) {
		out_byte(s, LINK_ENQ);
		s->deadline = now + LINK_ANSWER_TIMEOUT;
	} else {
		s->deadline = now + LINK_HANDSHAKE_TIMEOUT;
	}
}

void link_session_free(struct link_session *s)
{
	link_reader_free(&s->rd);
	free(s->q);
	s->q = NULL;
	s->q_head = s->q_len = s->q_cap = 0;
	free(s->out);
	s->out = NULL;
	s->out_len = s->out_cap = 0;
	s->nqueue = 0;
	s->in_flight = 0;
}

/* The oldest queued frame's DATA (not NUL-terminated) and its length. */
static const char *head_data(const struct link_session *s, size_t *len)
{
	const uint8_t *h = s->q + s->q_head;
	*len = (size_t)h[0] | (size_t)h[1] << 8;
	return (const char *)h + 2;
}

/* Put the oldest frame on the wire (first attempt or a resend). Its DATA
 * was validated by link_session_send. */
static void transmit_head(struct link_session *s, double now)
{
	size_t len;
	const char *data = head_data(s, &len);
	uint8_t edge[2] = { LINK_ETX, link_lrc(data, len) };
	out_byte(s, LINK_STX);
	out_append(s, (const uint8_t *)data, len);
	out_append(s, edge, sizeof edge);
	s->in_flight = 1;
	s->attempts++;
	s->deadline = now + LINK_ANSWER_TIMEOUT;
}

static void pump(struct link_session *s, double now)
{
	if (s->state == LINK_OPEN && !s->in_flight && s->nqueue > 0) {
		s->attempts = 0;
		transmit_head(s, now);
	}
}

static void pop_head(struct link_session *s)
{
	size_t len;
	head_data(s, &len);
	s->q_head += 2 + len;
	s->q_len -= 2 + len;
	s->nqueue--;
	if (s->nqueue == 0)
		s->q_head = s->q_len = 0; /* empty: the next frame starts at q */
	s->in_flight = 0;
	s->attempts = 0;
	s->deadline = 0;
}

/* Opcode of the oldest frame, for error messages. */
static int head_opcode_len(const struct link_session *s)
{
	size_t len, n = 0;
	const char *data = head_data(s, &len);
	while (n < len && n < 40 && data[n] != '#')
		n++;
	return (int)n;
}

static const char *item_name(const struct link_item *it)
{
	switch (it->kind) {
	case LINK_ITEM_FRAME:
		return "a frame";
	case LINK_ITEM_BAD:
		return "a malformed frame";
	case LINK_ITEM_GARBAGE:
		return "bytes that are not part of the protocol";
	case LINK_ITEM_CTRL:
		switch (it->ctrl) {
		case LINK_ACK:
			return "ACK";
		case LINK_NACK:
			return "NACK";
		case LINK_EOT:
			return "EOT";
		case LINK_ENQ:
			return "ENQ";
		}
	}
	return "?";
}

static void handshake_item(struct link_session *s, const struct link_item *it, double now)
{
	int ctrl = it->kind == LINK_ITEM_CTRL ? it->ctrl : -1;
	if (ctrl == LINK_EOT) {
		fail(s, LINK_CLOSED, "peer closed the link (EOT) during the handshake");
		return;
	}
	if (s->role == LINK_SERVER) {
		if (ctrl != LINK_ENQ) {
			fail(s, LINK_BROKEN, "handshake: expected ENQ first, got %s", item_name(it));
			return;
		}
		out_byte(s, LINK_ACK);
	} else {
		if (ctrl == LINK_NACK) {
			fail(s, LINK_CLOSED, "handshake: server refused the link (NACK to ENQ)");
			return;
		}
		if (ctrl != LINK_ACK) {
			fail(s, LINK_BROKEN, "handshake: expected ACK to ENQ, got %s", item_name(it));
			return;
		}
	}
	s->state = LINK_OPEN;
	s->deadline = 0;
	pump(s, now);
}

static void open_item(struct link_session *s, const struct link_item *it, double now, link_frame_fn fn,
		      void *arg)
{
	switch (it->kind) {
	case LINK_ITEM_FRAME:
		/* ACK before the callback, so that an answer frame the callback
		 * sends goes out after the ACK of the frame it answers. */
		out_byte(s, LINK_ACK);
		s->frames_in++;
		if (fn)
			fn(arg, it->data, it->len);
		return;
	case LINK_ITEM_BAD:
		out_byte(s, LINK_NACK);
		s->nacks_out++;
		return;
	case LINK_ITEM_GARBAGE:
		/* Noise between frames: nothing to answer, keep the link. */
		return;
	case LINK_ITEM_CTRL:
		break;
	}
	switch (it->ctrl) {
	case LINK_ACK:
		/* An ACK with nothing in flight answers nothing we sent (e.g. a
		 * peer answering a frame twice): ignore it, the link still works. */
		if (s->in_flight) {
			pop_head(s);
			s->frames_out++;
			if (s->closing && s->nqueue == 0)
				link_session_finish(s);
			else
				pump(s, now);
		}
		return;
	case LINK_NACK:
		if (!s->in_flight)
			return;
		s->nacks_in++;
		if (s->attempts >= LINK_MAX_ATTEMPTS) {
			size_t hl;
			fail(s, LINK_BROKEN, "peer refused frame %.*s %d times (NACK)", head_opcode_len(s),
			     head_data(s, &hl), s->attempts);
			return;
		}
		transmit_head(s, now);
		return;
	case LINK_EOT:
		fail(s, LINK_CLOSED, "peer closed the link (EOT)");
		return;
	case LINK_ENQ:
		/* A client repeating its ENQ: answer it again, harmless. */
		if (s->role == LINK_SERVER)
			out_byte(s, LINK_ACK);
		return;
	}
}

int link_session_input(struct link_session *s, const uint8_t *buf, size_t len, double now,
		       link_frame_fn fn, void *arg)
{
	struct link_item it;
	while (!is_done(s) && link_reader_next(&s->rd, &buf, &len, &it)) {
		if (s->state == LINK_HANDSHAKE)
			handshake_item(s, &it, now);
		else
			open_item(s, &it, now, fn, arg);
	}
	if (is_done(s))
		return -1;
	return link_session_tick(s, now);
}

int link_session_send(struct link_session *s, const char *data, size_t len, double now, char *err)
{
	if (is_done(s)) {
		evc_seterr(err, "link is %s: %s", link_state_name(s->state), s->err);
		return -1;
	}
	if (s->closing) {
		evc_seterr(err, "link is closing: no new frames");
		return -1;
	}
	if (link_validate(data, len, err) < 0)
		return -1;
	if (s->nqueue >= LINK_QUEUE_MAX + 1) {
		evc_seterr(err, "send queue full (%d frames waiting for the peer)", s->nqueue);
		return -1;
	}
	size_t need = 2 + len;
	if (s->q_head + s->q_len + need > s->q_cap && s->q_head > 0) {
		memmove(s->q, s->q + s->q_head, s->q_len);
		s->q_head = 0;
	}
	if (s->q_len + need > s->q_cap) {
		size_t cap = s->q_cap ? s->q_cap : 64;
		while (cap < s->q_len + need)
			cap *= 2;
		s->q = xrealloc(s->q, cap);
		s->q_cap = cap;
	}
	uint8_t *t = s->q + s->q_head + s->q_len;
	t[0] = (uint8_t)(len & 0xff);
	t[1] = (uint8_t)(len >> 8);
	memcpy(t + 2, data, len);
	s->q_len += need;
	s->nqueue++;
	pump(s, now);
	return 0;
}

int link_session_sendf(struct link_session *s, double now, const char *fmt, ...)
{
	char data[LINK_DATA_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(data, sizeof data, fmt, ap);
	va_end(ap);
	if (n < 0 || n > LINK_DATA_MAX)
		return -1;
	return link_session_send(s, data, (size_t)n, now, NULL);
}

int link_session_tick(struct link_session *s, double now)
{
	if (is_done(s))
		return -1;
	if (s->deadline > 0 && now >= s->deadline) {
		if (s->state == LINK_HANDSHAKE && s->role == LINK_SERVER)
			return fail(s, LINK_BROKEN, "handshake: no ENQ within %.0f s", LINK_HANDSHAKE_TIMEOUT);
		if (s->state == LINK_HANDSHAKE)
			return fail(s, LINK_BROKEN, "handshake: no answer to ENQ within %.0f s",
				    LINK_ANSWER_TIMEOUT);
		size_t hl;
		return fail(s, LINK_BROKEN, "no ACK/NACK for frame %.*s within %.0f s (attempt %d)",
			    head_opcode_len(s), head_data(s, &hl), LINK_ANSWER_TIMEOUT, s->attempts);
	}
	return 0;
}

double link_session_deadline(const struct link_session *s)
{
	return is_done(s) ? 0 : s->deadline;
}

void link_session_close(struct link_session *s)
{
	if (is_done(s))
		return;
	out_byte(s, LINK_EOT);
	fail(s, LINK_CLOSED, "closed by this side (EOT sent)");
}

void link_session_finish(struct link_session *s)
{
	if (is_done(s))
		return;
	s->closing = 1;
	if (s->nqueue > 0)
		return; /* the ACK of the last frame brings us back here */
	out_byte(s, LINK_EOT);
	fail(s, LINK_CLOSED, "closed by this side (EOT sent after every frame was acknowledged)");
}

const uint8_t *link_session_output(const struct link_session *s, size_t *len)
{
	*len = s->out_len;
	return s->out;
}

void link_session_consumed(struct link_session *s, size_t n)
{
	if (n >= s->out_len) {
		s->out_len = 0;
		return;
	}
	memmove(s->out, s->out + n, s->out_len - n);
	s->out_len -= n;
}

size_t link_session_backlog(const struct link_session *s)
{
	/* Each record is 2 bytes of length and DATA; on the wire, 3 of framing. */
	size_t n = s->q_len + (size_t)s->nqueue;
	if (s->in_flight && s->nqueue > 0) {
		size_t len;
		head_data(s, &len);
		n -= len + 3;
	}
	return n;
}

int link_session_idle(const struct link_session *s)
{
	return s->nqueue == 0;
}

const char *link_state_name(enum link_state st)
{
	switch (st) {
	case LINK_HANDSHAKE:
		return "HANDSHAKE";
	case LINK_OPEN:
		return "OPEN";
	case LINK_CLOSED:
		return "CLOSED";
	case LINK_BROKEN:
		return "BROKEN";
	}
	return "?";
}
