/* libFuzzer target for the link stream reader and session (evcharging(7)
 * THE LINK PROTOCOL). Checks more than "does not crash":
 *  - the reader yields the same frames, control bytes and BAD items whatever
 *    the chunking (only the split of garbage runs may differ);
 *  - every FRAME item is valid DATA that builds back into a frame the reader
 *    reads again identically;
 *  - a server session fed the same bytes answers exactly one ACK per frame
 *    delivered and one NACK per bad frame, and writes nothing else.
 * Build and run: scripts/fuzz (reads the two lines below).
 */
// fuzz-sources: src/common/link.c src/common/utf8.c src/common/xalloc.c src/common/clock.c src/common/err.c
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ITEMS 8192

struct seen {
	int n;
	uint8_t kind[MAX_ITEMS];
	uint8_t ctrl[MAX_ITEMS];
	uint32_t hash[MAX_ITEMS]; /* of DATA, for FRAME items */
	int frames, bads;
	size_t enqs;
};

static uint32_t fnv(const char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

static void check_frame(const struct link_item *it)
{
	if (it->len == 0 || it->len > LINK_DATA_MAX || strlen(it->data) != it->len)
		abort();
	if (link_validate(it->data, it->len, NULL) != 0)
		abort();
	uint8_t f[LINK_FRAME_MAX];
	int n = link_frame_build(f, sizeof f, it->data, it->len, NULL);
	if (n != (int)it->len + 3)
		abort();
	struct link_reader r;
	static struct link_item back;
	link_reader_init(&r);
	const uint8_t *p = f;
	size_t left = (size_t)n;
	if (link_reader_next(&r, &p, &left, &back) != 1 || left != 0 || back.kind != LINK_ITEM_FRAME ||
	    back.len != it->len || memcmp(back.data, it->data, it->len) != 0)
		abort();
	char copy[LINK_DATA_MAX + 1];
	memcpy(copy, it->data, it->len + 1);
	char *fields[LINK_FIELDS_MAX];
	int nf = link_split(copy, fields, LINK_FIELDS_MAX);
	if (nf == 0 || nf > LINK_FIELDS_MAX)
		abort();
}

/* Read data in chunks whose sizes come from the bytes of sizes (cycled). */
static void read_chunked(const uint8_t *data, size_t size, const uint8_t *sizes, size_t nsizes,
			 struct seen *sn)
{
	struct link_reader r;
	static struct link_item it;
	link_reader_init(&r);
	sn->n = sn->frames = sn->bads = 0;
	sn->enqs = 0;
	size_t off = 0, k = 0;
	while (off < size) {
		size_t c = nsizes ? (size_t)sizes[k++ % nsizes] + 1 : size;
		if (c > size - off)
			c = size - off;
		const uint8_t *p = data + off;
		size_t left = c;
		while (link_reader_next(&r, &p, &left, &it)) {
			if (p < data + off || p > data + off + c)
				abort();
			if (it.kind == LINK_ITEM_GARBAGE)
				continue;
			if (it.kind == LINK_ITEM_FRAME) {
				check_frame(&it);
				sn->frames++;
			} else if (it.kind == LINK_ITEM_BAD) {
				if (it.err[0] == '\0')
					abort();
				sn->bads++;
			} else if (it.kind == LINK_ITEM_CTRL) {
				if (it.ctrl != LINK_ACK && it.ctrl != LINK_NACK && it.ctrl != LINK_EOT &&
				    it.ctrl != LINK_ENQ)
					abort();
				if (it.ctrl == LINK_ENQ)
					sn->enqs++;
			} else {
				abort();
			}
			if (sn->n < MAX_ITEMS) {
				sn->kind[sn->n] = (uint8_t)it.kind;
				sn->ctrl[sn->n] = it.ctrl;
				sn->hash[sn->n] = it.kind == LINK_ITEM_FRAME ? fnv(it.data, it.len) : 0;
			}
			sn->n++;
		}
		if (left != 0)
			abort();
		off += c;
	}
	link_reader_free(&r);
}

static void on_frame(void *arg, const char *d, size_t len)
{
	(void)d;
	(void)len;
	(*(unsigned long *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct seen whole, chunked;
	if (size == 0)
		return 0;
	/* The first up to 4 bytes choose chunk sizes; all bytes are the stream. */
	size_t nsizes = size < 4 ? size : 4;
	read_chunked(data, size, NULL, 0, &whole);
	read_chunked(data, size, data, nsizes, &chunked);
	if (whole.n != chunked.n || whole.frames != chunked.frames || whole.bads != chunked.bads)
		abort();
	int m = whole.n < MAX_ITEMS ? whole.n : MAX_ITEMS;
	if (memcmp(whole.kind, chunked.kind, (size_t)m) || memcmp(whole.ctrl, chunked.ctrl, (size_t)m) ||
	    memcmp(whole.hash, chunked.hash, (size_t)m * sizeof whole.hash[0]))
		abort();

	/* A server session on the same bytes, as a CP's link to Central, with a
	 * fake clock that steps 0.25 s per chunk so timeouts fire too. */
	struct link_session s;
	double now = 1000.0;
	unsigned long delivered = 0;
	link_session_init(&s, LINK_SERVER, now);
	size_t off = 0, k = 0, acks = 0, nacks = 0, other = 0;
	int r = 0;
	while (off < size && r == 0) {
		size_t c = (size_t)data[k++ % nsizes] + 1;
		if (c > size - off)
			c = size - off;
		r = link_session_input(&s, data + off, c, now, on_frame, &delivered);
		off += c;
		now += 0.25;
		size_t n;
		const uint8_t *o = link_session_output(&s, &n);
		for (size_t i = 0; i < n; i++) {
			if (o[i] == LINK_ACK)
				acks++;
			else if (o[i] == LINK_NACK)
				nacks++;
			else
				other++;
		}
		link_session_consumed(&s, n);
	}
	if (r == 0 && (s.state != LINK_HANDSHAKE && s.state != LINK_OPEN))
		abort();
	if (r != 0 && (s.state != LINK_CLOSED && s.state != LINK_BROKEN))
		abort();
	if (r != 0 && s.err[0] == '\0')
		abort();
	/* ACK for the ENQ (if any) plus one per frame; one NACK per bad frame. */
	if (other != 0 || delivered != s.frames_in || nacks != s.nacks_out)
		abort();
	/* The other ACKs answer ENQs: at least the handshake's if it opened. */
	if (acks < s.frames_in || acks - s.frames_in > whole.enqs)
		abort();
	if ((s.state == LINK_OPEN || s.frames_in || nacks) && acks - s.frames_in < 1)
		abort();
	if (delivered > (unsigned long)whole.frames)
		abort();
	link_session_free(&s);

	/* A client session on the same bytes that keeps a frame of its own in
	 * flight, so ACK/NACK/resend/timeout paths run; everything it writes
	 * must read back as control bytes and that one frame, nothing else. */
	static const char mine[] = "HEARTBEAT#FUZZ";
	struct link_reader rd;
	static struct link_item it;
	link_reader_init(&rd);
	now = 1000.0;
	delivered = 0;
	link_session_init(&s, LINK_CLIENT, now);
	unsigned long tx = 0, enq = 0, queued = 0;
	off = 0;
	k = 0;
	r = 0;
	while (r == 0) {
		if (s.state == LINK_OPEN && link_session_idle(&s) && queued < 50) {
			if (link_session_send(&s, mine, sizeof mine - 1, now, NULL) != 0)
				abort();
			queued++;
		}
		size_t n;
		const uint8_t *o = link_session_output(&s, &n);
		while (link_reader_next(&rd, &o, &n, &it)) {
			if (it.kind == LINK_ITEM_FRAME && strcmp(it.data, mine) == 0)
				tx++;
			else if (it.kind == LINK_ITEM_CTRL && it.ctrl == LINK_ENQ && tx == 0 && enq == 0)
				enq++;
			else if (it.kind != LINK_ITEM_CTRL || (it.ctrl != LINK_ACK && it.ctrl != LINK_NACK))
				abort();
		}
		link_session_consumed(&s, SIZE_MAX);
		if (off >= size)
			break;
		size_t c = (size_t)data[k++ % nsizes] + 1;
		if (c > size - off)
			c = size - off;
		r = link_session_input(&s, data + off, c, now, on_frame, &delivered);
		off += c;
		now += 0.25;
	}
	if (enq != 1 || delivered != s.frames_in || tx < s.frames_out || tx > s.frames_out + 1 + s.nacks_in ||
	    s.frames_out > queued)
		abort();
	if (r != 0 && s.err[0] == '\0')
		abort();
	link_session_free(&s);
	link_reader_free(&rd);
	return 0;
}
