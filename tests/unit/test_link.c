/* Unit tests of the link codec (evcharging(7) THE LINK PROTOCOL): frames, the stream
 * reader fed in every chunking, and the session rules under a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "evc/link.h"

/* ---- helpers ---- */

/* A byte buffer that tests append frames and control bytes to. */
struct bytes {
	uint8_t b[300000];
	size_t n;
};

static void put(struct bytes *w, const void *p, size_t n)
{
	assert_true(w->n + n <= sizeof w->b);
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

static void put_byte(struct bytes *w, uint8_t c)
{
	put(w, &c, 1);
}

static void put_frame(struct bytes *w, const char *data)
{
	uint8_t f[LINK_FRAME_MAX];
	int n = link_frame_build(f, sizeof f, data, strlen(data), NULL);
	assert_true(n > 0);
	put(w, f, (size_t)n);
}

/* A frame with a raw DATA and an LRC of our choosing (possibly wrong). */
static void put_raw_frame(struct bytes *w, const void *data, size_t len, int lrc)
{
	put_byte(w, LINK_STX);
	put(w, data, len);
	put_byte(w, LINK_ETX);
	put_byte(w, lrc >= 0 ? (uint8_t)lrc : link_lrc(data, len));
}

/* What the reader yielded, as a printable log: F:data C:xx B G */
struct log {
	char s[400000];
	size_t n;
	int items;
	char last_err[EVC_ERR_LEN];
};

static void log_item(struct log *lg, const struct link_item *it)
{
	int k = 0;
	switch (it->kind) {
	case LINK_ITEM_FRAME:
		assert_int_equal(strlen(it->data), it->len);
		assert_int_equal(link_validate(it->data, it->len, NULL), 0);
		k = snprintf(lg->s + lg->n, sizeof lg->s - lg->n, "F:%s|", it->data);
		break;
	case LINK_ITEM_CTRL:
		k = snprintf(lg->s + lg->n, sizeof lg->s - lg->n, "C:%02x|", it->ctrl);
		break;
	case LINK_ITEM_BAD:
		assert_true(it->err[0] != '\0');
		k = snprintf(lg->s + lg->n, sizeof lg->s - lg->n, "B|");
		break;
	case LINK_ITEM_GARBAGE:
		assert_true(it->err[0] != '\0');
		k = snprintf(lg->s + lg->n, sizeof lg->s - lg->n, "G|");
		break;
	}
	assert_true(k > 0 && (size_t)k < sizeof lg->s - lg->n);
	lg->n += (size_t)k;
	lg->items++;
	snprintf(lg->last_err, sizeof lg->last_err, "%s", it->err);
}

/* Feed w to a fresh reader in chunks of `chunk` bytes (0 = all at once). */
static void read_all(const struct bytes *w, size_t chunk, struct log *lg)
{
	static struct link_reader r;
	static struct link_item it;
	link_reader_init(&r);
	memset(lg, 0, sizeof *lg);
	size_t off = 0;
	while (off < w->n) {
		size_t n = chunk ? chunk : w->n;
		if (n > w->n - off)
			n = w->n - off;
		const uint8_t *p = w->b + off;
		size_t left = n;
		while (link_reader_next(&r, &p, &left, &it)) {
			assert_true(p >= w->b + off && p <= w->b + off + n);
			log_item(lg, &it);
		}
		assert_int_equal(left, 0);
		off += n;
	}
	link_reader_free(&r);
}

/* Same expected log whatever the chunking. */
static void expect_log(const struct bytes *w, const char *want)
{
	static struct log lg;
	size_t chunks[] = {0, 1, 2, 3, 7, 64, 1023, 1024, 1025, 1027};
	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		read_all(w, chunks[i], &lg);
		if (strcmp(lg.s, want) != 0) {
			print_error("chunk %zu: got %s want %s\n", chunks[i], lg.s, want);
			fail();
		}
	}
}

/* ---- 1. frames ---- */

static void test_lrc_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *data;
		uint8_t lrc;
	} v[] = {
		{"REGISTER#MAD-01#C/ Serrano 10#0.25", 0x6D},
		{"HEALTH_CHECK#MAD-01", 0x43},
		{"FAULT#MAD-01", 0x0C},
		{"PARAR#CENTRAL", 0x31},
		{"ACK#PARAR", 0x3B},
		{"OK", 0x05},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		size_t len = strlen(v[i].data);
		assert_int_equal(link_lrc(v[i].data, len), v[i].lrc);
		assert_int_equal(link_validate(v[i].data, len, NULL), 0);
		uint8_t f[LINK_FRAME_MAX];
		assert_int_equal(link_frame_build(f, sizeof f, v[i].data, len, NULL), (int)len + 3);
		assert_int_equal(f[0], LINK_STX);
		assert_memory_equal(f + 1, v[i].data, len);
		assert_int_equal(f[len + 1], LINK_ETX);
		assert_int_equal(f[len + 2], v[i].lrc);
		/* The other definition: XOR of every byte of STX, DATA, ETX. */
		uint8_t x = 0;
		for (size_t j = 0; j < len + 2; j++)
			x ^= f[j];
		assert_int_equal(x, v[i].lrc);
	}
}

static void expect_invalid(const char *data, size_t len, const char *needle)
{
	char err[EVC_ERR_LEN] = "";
	assert_int_equal(link_validate(data, len, err), -1);
	if (strstr(err, needle) == NULL) {
		print_error("error '%s' lacks '%s'\n", err, needle);
		fail();
	}
	uint8_t f[LINK_FRAME_MAX + 8];
	assert_int_equal(link_frame_build(f, sizeof f, data, len, NULL), -1);
}

static void test_validate(void **state)
{
	(void)state;
	static char big[LINK_DATA_MAX + 2];
	memset(big, 'A', sizeof big);
	assert_int_equal(link_validate(big, LINK_DATA_MAX, NULL), 0);
	expect_invalid(big, LINK_DATA_MAX + 1, "longer than 1024");
	expect_invalid("", 0, "empty frame");
	expect_invalid("#MAD-01", 7, "empty opcode");
	expect_invalid("register#MAD-01", 15, "'r'");
	expect_invalid("HEALTH-CHECK", 12, "'-'");
	expect_invalid("OK2", 3, "'2'");
	expect_invalid("FAULT#MAD\n01", 12, "control byte 0x0a");
	expect_invalid("FAULT#MAD\x06", 10, "control byte 0x06");
	expect_invalid("FAULT#MAD\0", 10, "control byte 0x00");
	expect_invalid("OK\x02", 3, "0x02");
	/* DATA is UTF-8 text. */
	assert_int_equal(link_validate("REGISTER#M#Calle Génova 3, Málaga €#1", 40, NULL), 0);
	assert_int_equal(link_validate("A#\xf0\x9f\x94\x8c", 6, NULL), 0);       /* U+1F50C */
	expect_invalid("A#caf\xe9", 6, "UTF-8");                                 /* Latin-1 */
	expect_invalid("A#\xc3", 3, "UTF-8");                                    /* cut short */
	expect_invalid("A#\xc0\x80", 4, "UTF-8");                                /* overlong NUL */
	expect_invalid("A#\xe0\x80\xaf", 5, "UTF-8");                            /* overlong / */
	expect_invalid("A#\xed\xa0\x80", 5, "UTF-8");                            /* surrogate */
	expect_invalid("A#\xf4\x90\x80\x80", 6, "UTF-8");                        /* > U+10FFFF */
	expect_invalid("A#\x80", 3, "UTF-8");                                    /* stray */
	/* Spaces, '/', empty fields and a DEL are text, not control bytes. */
	assert_int_equal(link_validate("A#b c/d##\x7f", 10, NULL), 0);
	assert_int_equal(link_validate("OPCODE_ONLY", 11, NULL), 0);
	assert_int_equal(link_validate("_", 1, NULL), 0);
}

static void test_frame_build_room(void **state)
{
	(void)state;
	uint8_t f[8];
	char err[EVC_ERR_LEN] = "";
	assert_int_equal(link_frame_build(f, 4, "OK", 2, err), -1);
	assert_non_null(strstr(err, "no room"));
	assert_int_equal(link_frame_build(f, 5, "OK", 2, err), 5);
	assert_int_equal(link_frame_build(NULL, 0, "OK", 2, err), -1);
}

static void test_split(void **state)
{
	(void)state;
	char d1[] = "REGISTER#MAD-01#C/ Serrano 10#0.25";
	char *f[LINK_FIELDS_MAX];
	assert_int_equal(link_split(d1, f, LINK_FIELDS_MAX), 4);
	assert_string_equal(f[0], "REGISTER");
	assert_string_equal(f[1], "MAD-01");
	assert_string_equal(f[2], "C/ Serrano 10");
	assert_string_equal(f[3], "0.25");

	char d2[] = "OK";
	assert_int_equal(link_split(d2, f, 1), 1);
	assert_string_equal(f[0], "OK");

	char d3[] = "NACK##x#";
	assert_int_equal(link_split(d3, f, 4), 4);
	assert_string_equal(f[0], "NACK");
	assert_string_equal(f[1], "");
	assert_string_equal(f[2], "x");
	assert_string_equal(f[3], "");

	char d4[] = "A#B#C";
	assert_int_equal(link_split(d4, f, 2), -1);
	assert_string_equal(d4, "A#B#C"); /* refused DATA left intact */
	assert_int_equal(link_split(d4, f, 0), -1);
	assert_int_equal(link_split(d4, f, 3), 3);
}

/* ---- 2. stream reader ---- */

static void test_reader_mixed_stream(void **state)
{
	(void)state;
	static struct bytes w;
	w.n = 0;
	put_byte(&w, LINK_ENQ);
	put_frame(&w, "REGISTER#MAD-01#C/ Serrano 10#0.25");
	put_byte(&w, LINK_ACK);
	put_frame(&w, "HEALTH_CHECK#MAD-01");
	put_frame(&w, "FAULT#MAD-01");
	put_byte(&w, LINK_NACK);
	put_byte(&w, LINK_ACK);
	put_frame(&w, "PARAR#CENTRAL");
	put_frame(&w, "ACK#PARAR");
	put_frame(&w, "OK"); /* LRC 0x05 = ENQ: must not be read as a control byte */
	put_byte(&w, LINK_EOT);
	expect_log(&w, "C:05|F:REGISTER#MAD-01#C/ Serrano 10#0.25|C:06|F:HEALTH_CHECK#MAD-01|"
		       "F:FAULT#MAD-01|C:15|C:06|F:PARAR#CENTRAL|F:ACK#PARAR|F:OK|C:04|");
}

/* Every possible LRC value, including STX, ETX and every control byte: the
 * byte after ETX is always the LRC, and the byte after that is read fresh. */
static void test_reader_every_lrc_value(void **state)
{
	(void)state;
	static const char *prefixes[] = {"A#", "A#\xe2\x82\xac"}; /* low, high bit */
	for (int t = 0; t < 256; t++) {
		const char *pre = prefixes[t >= 0x80];
		char data[16];
		int found = 0;
		for (int a = 0x20; a < 0x7f && !found; a++) {
			uint8_t x = link_lrc(pre, strlen(pre)) ^ (uint8_t)a;
			int b = x ^ t;
			if (b >= 0x20 && b < 0x7f && b != '#') {
				snprintf(data, sizeof data, "%s%c%c", pre, a, b);
				found = 1;
			}
		}
		assert_true(found);
		assert_int_equal(link_lrc(data, strlen(data)), t);
		static struct bytes w;
		w.n = 0;
		put_frame(&w, data);
		put_byte(&w, LINK_ACK);
		put_frame(&w, data);
		put_byte(&w, LINK_NACK);
		char want[64];
		snprintf(want, sizeof want, "F:%s|C:06|F:%s|C:15|", data, data);
		expect_log(&w, want);
	}
}

static void test_reader_many_frames_one_chunk(void **state)
{
	(void)state;
	static struct bytes w;
	static char want[200000];
	size_t wn = 0;
	w.n = 0;
	for (int i = 0; i < 2000; i++) {
		char d[32];
		snprintf(d, sizeof d, "HEARTBEAT#CP-%d", i);
		put_frame(&w, d);
		wn += (size_t)snprintf(want + wn, sizeof want - wn, "F:%s|", d);
		if (i % 3 == 0) {
			put_byte(&w, LINK_ACK);
			wn += (size_t)snprintf(want + wn, sizeof want - wn, "C:06|");
		}
	}
	expect_log(&w, want);
}

static void test_reader_partial_keeps_state(void **state)
{
	(void)state;
	struct link_reader r;
	struct link_item it;
	link_reader_init(&r);
	uint8_t f[LINK_FRAME_MAX];
	int n = link_frame_build(f, sizeof f, "PARAR#CENTRAL", 13, NULL);
	const uint8_t *p = f;
	size_t left = (size_t)n - 1; /* all but the LRC */
	assert_int_equal(link_reader_next(&r, &p, &left, &it), 0);
	assert_int_equal(left, 0);
	p = f + n - 1;
	left = 1;
	assert_int_equal(link_reader_next(&r, &p, &left, &it), 1);
	assert_int_equal(it.kind, LINK_ITEM_FRAME);
	assert_string_equal(it.data, "PARAR#CENTRAL");
	assert_int_equal(it.len, 13);
	/* Nothing left: nothing yielded. */
	assert_int_equal(link_reader_next(&r, &p, &left, &it), 0);
	link_reader_free(&r);
}

static void test_reader_bad_frames(void **state)
{
	(void)state;
	static struct bytes w;
	static struct log lg;
	/* Wrong LRC. */
	w.n = 0;
	put_raw_frame(&w, "FAULT#MAD-01", 12, 0x0D);
	put_frame(&w, "OK");
	expect_log(&w, "B|F:OK|");
	read_all(&w, 0, &lg);
	w.n = 0;
	put_raw_frame(&w, "FAULT#MAD-01", 12, 0x0D);
	read_all(&w, 1, &lg);
	assert_non_null(strstr(lg.last_err, "bad LRC 0x0d (expected 0x0c)"));
	/* Right LRC, invalid DATA. */
	w.n = 0;
	put_raw_frame(&w, "fault#MAD-01", 12, -1);
	read_all(&w, 0, &lg);
	assert_string_equal(lg.s, "B|");
	assert_non_null(strstr(lg.last_err, "opcode"));
	/* Empty DATA. */
	w.n = 0;
	put_raw_frame(&w, "", 0, -1);
	put_byte(&w, LINK_ACK);
	expect_log(&w, "B|C:06|");
	/* A control byte inside DATA stays in the frame and spoils it. */
	w.n = 0;
	put_raw_frame(&w, "HEART\x06" "BEAT", 10, -1);
	put_raw_frame(&w, "HEART\x04" "BEAT", 10, -1);
	put_frame(&w, "OK");
	expect_log(&w, "B|B|F:OK|");
}

static void test_reader_stx_inside_frame(void **state)
{
	(void)state;
	static struct bytes w;
	static struct log lg;
	w.n = 0;
	put_byte(&w, LINK_STX);
	put(&w, "HEALTH_CH", 9); /* cut short, then a whole frame */
	put_frame(&w, "HEALTH_CHECK#MAD-01");
	put_byte(&w, LINK_STX); /* STX STX: empty partial */
	put_frame(&w, "OK");
	expect_log(&w, "B|F:HEALTH_CHECK#MAD-01|B|F:OK|");
	read_all(&w, 1, &lg);
	assert_int_equal(lg.items, 4);
	w.n = 0;
	put_byte(&w, LINK_STX);
	put(&w, "HEALTH_CH", 9);
	put_byte(&w, LINK_STX);
	read_all(&w, 0, &lg);
	assert_non_null(strstr(lg.last_err, "interrupted by STX after 9"));
}

static void test_reader_garbage(void **state)
{
	(void)state;
	static struct bytes w;
	static struct log lg;
	w.n = 0;
	put(&w, "GET / HTTP/1.0\r\n", 16);
	put_byte(&w, LINK_ENQ);
	put_byte(&w, LINK_ETX); /* ETX outside a frame is garbage */
	put_frame(&w, "OK");
	put_byte(&w, 0xff);
	put_byte(&w, LINK_ACK);
	read_all(&w, 0, &lg);
	assert_string_equal(lg.s, "G|C:05|G|F:OK|G|C:06|");
	assert_non_null(strstr(lg.s, "G|"));
	read_all(&w, 0, &lg);
	/* Byte by byte: a garbage run is reported as each chunk ends, so a
	 * server waiting for ENQ need not wait for another byte to know. */
	read_all(&w, 1, &lg);
	assert_int_equal(strncmp(lg.s, "G|G|G|", 6), 0);
	assert_non_null(strstr(lg.s, "C:05|G|F:OK|G|C:06|"));
	/* Garbage at the very end of a chunk is reported at once. */
	struct link_reader r;
	struct link_item it;
	link_reader_init(&r);
	const uint8_t *p = (const uint8_t *)"xyz";
	size_t left = 3;
	assert_int_equal(link_reader_next(&r, &p, &left, &it), 1);
	assert_int_equal(it.kind, LINK_ITEM_GARBAGE);
	assert_non_null(strstr(it.err, "3 byte(s)"));
	assert_int_equal(left, 0);
	assert_int_equal(link_reader_next(&r, &p, &left, &it), 0);
}

static void test_reader_oversized(void **state)
{
	(void)state;
	static struct bytes w;
	static struct log lg;
	static char big[LINK_DATA_MAX + 1];
	memset(big, 'A', sizeof big);
	/* Exactly 1024 bytes is a frame. */
	w.n = 0;
	put_raw_frame(&w, big, LINK_DATA_MAX, -1);
	read_all(&w, 0, &lg);
	assert_int_equal(lg.items, 1);
	assert_int_equal(strncmp(lg.s, "F:AAAA", 6), 0);
	/* 1025: BAD, then the peer's ACK and next frame are still read. */
	w.n = 0;
	put_raw_frame(&w, big, LINK_DATA_MAX + 1, LINK_STX); /* LRC byte = STX */
	put_byte(&w, LINK_ACK);
	put_frame(&w, "OK");
	expect_log(&w, "B|C:06|F:OK|");
	read_all(&w, 0, &lg);
	assert_true(strstr(lg.s, "B|") != NULL);
	/* A huge frame: nothing is stored beyond the buffer (ASan watches). */
	w.n = 0;
	put_byte(&w, LINK_STX);
	for (int i = 0; i < 250000; i++)
		put_byte(&w, (uint8_t)('a' + i % 26));
	put_byte(&w, LINK_ETX);
	put_byte(&w, 0x00);
	put_frame(&w, "FAULT#MAD-01");
	expect_log(&w, "B|F:FAULT#MAD-01|");
	read_all(&w, 4096, &lg);
	/* Oversized and never ended by ETX: the next STX resynchronises. */
	w.n = 0;
	put_byte(&w, LINK_STX);
	put(&w, big, sizeof big);
	put(&w, big, sizeof big);
	put_frame(&w, "OK");
	expect_log(&w, "B|F:OK|");
	read_all(&w, 0, &lg);
	assert_string_equal(lg.s, "B|F:OK|");
	w.n = 0;
	put_byte(&w, LINK_STX);
	put(&w, big, sizeof big);
	put_byte(&w, LINK_ETX);
	put_byte(&w, 0x41);
	read_all(&w, 0, &lg);
	assert_non_null(strstr(lg.last_err, "longer than 1024"));
}

/* ---- 3. session ---- */

struct rx {
	int n;
	char got[64][LINK_DATA_MAX + 1];
	struct link_session *s; /* for callbacks that answer */
	const char *reply;      /* send this on each frame */
	int close_on;           /* close after this many frames (0 = never) */
	double now;
};

static void on_frame(void *arg, const char *data, size_t len)
{
	struct rx *rx = arg;
	assert_int_equal(strlen(data), len);
	assert_true(rx->n < 64);
	snprintf(rx->got[rx->n++], sizeof rx->got[0], "%s", data);
	if (rx->reply)
		assert_int_equal(link_session_send(rx->s, rx->reply, strlen(rx->reply), rx->now, NULL), 0);
	if (rx->close_on && rx->n == rx->close_on)
		link_session_close(rx->s);
}

/* The session's pending output as a byte string, then mark it written. */
static size_t take(struct link_session *s, uint8_t *dst, size_t cap)
{
	size_t n;
	const uint8_t *o = link_session_output(s, &n);
	assert_true(n <= cap);
	if (n)
		memcpy(dst, o, n);
	link_session_consumed(s, n);
	return n;
}

static int feed(struct link_session *s, const struct bytes *w, double now, struct rx *rx)
{
	return link_session_input(s, w->b, w->n, now, on_frame, rx);
}

static int feed_byte(struct link_session *s, uint8_t c, double now, struct rx *rx)
{
	return link_session_input(s, &c, 1, now, on_frame, rx);
}

static size_t frame_bytes(const char *data, uint8_t *f)
{
	int n = link_frame_build(f, LINK_FRAME_MAX, data, strlen(data), NULL);
	assert_true(n > 0);
	return (size_t)n;
}

/* Open a server session at t=100 (ENQ received, ACK taken). */
static void open_server(struct link_session *s, struct rx *rx)
{
	memset(rx, 0, sizeof *rx);
	rx->s = s;
	link_session_init(s, LINK_SERVER, 100.0);
	assert_int_equal(feed_byte(s, LINK_ENQ, 100.0, rx), 0);
	uint8_t o[4];
	assert_int_equal(take(s, o, sizeof o), 1);
	assert_int_equal(o[0], LINK_ACK);
	assert_int_equal(s->state, LINK_OPEN);
}

static void test_client_handshake(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx = {0};
	uint8_t o[64];
	link_session_init(&s, LINK_CLIENT, 10.0);
	assert_int_equal(s.state, LINK_HANDSHAKE);
	assert_int_equal(take(&s, o, sizeof o), 1);
	assert_int_equal(o[0], LINK_ENQ);
	assert_true(link_session_deadline(&s) == 12.0);
	/* A frame queued during the handshake waits for the ACK. */
	assert_int_equal(link_session_send(&s, "REGISTER#MAD-01#Here#0.25", 25, 10.1, NULL), 0);
	assert_int_equal(take(&s, o, sizeof o), 0);
	assert_int_equal(link_session_tick(&s, 11.99), 0);
	assert_int_equal(feed_byte(&s, LINK_ACK, 11.99, &rx), 0);
	assert_int_equal(s.state, LINK_OPEN);
	uint8_t f[LINK_FRAME_MAX];
	size_t fn = frame_bytes("REGISTER#MAD-01#Here#0.25", f);
	assert_int_equal(take(&s, o, sizeof o), fn);
	assert_memory_equal(o, f, fn);
	assert_true(link_session_deadline(&s) == 11.99 + LINK_ANSWER_TIMEOUT);
	assert_false(link_session_idle(&s));
	link_session_free(&s);
}

static void test_client_handshake_refused_or_silent(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx = {0};
	link_session_init(&s, LINK_CLIENT, 0.0);
	assert_int_equal(feed_byte(&s, LINK_NACK, 0.5, &rx), -1);
	assert_int_equal(s.state, LINK_CLOSED);
	assert_non_null(strstr(s.err, "refused"));
	char err[EVC_ERR_LEN];
	assert_int_equal(link_session_send(&s, "OK", 2, 0.6, err), -1);
	assert_non_null(strstr(err, "CLOSED"));
	link_session_free(&s);

	link_session_init(&s, LINK_CLIENT, 0.0);
	assert_int_equal(link_session_tick(&s, 1.999), 0);
	assert_int_equal(link_session_tick(&s, 2.0), -1);
	assert_int_equal(s.state, LINK_BROKEN);
	assert_non_null(strstr(s.err, "no answer to ENQ"));
	assert_true(link_session_deadline(&s) == 0);
	link_session_free(&s);

	/* A frame before the ACK is a protocol error. */
	static struct bytes w;
	w.n = 0;
	put_frame(&w, "OK");
	link_session_init(&s, LINK_CLIENT, 0.0);
	assert_int_equal(feed(&s, &w, 0.1, &rx), -1);
	assert_int_equal(s.state, LINK_BROKEN);
	assert_non_null(strstr(s.err, "expected ACK"));
	link_session_free(&s);
}

static void test_server_handshake(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx = {0};
	uint8_t o[8];
	link_session_init(&s, LINK_SERVER, 50.0);
	assert_int_equal(take(&s, o, sizeof o), 0); /* a server speaks second */
	assert_true(link_session_deadline(&s) == 55.0);
	assert_int_equal(link_session_tick(&s, 54.999), 0);
	assert_int_equal(feed_byte(&s, LINK_ENQ, 54.999, &rx), 0);
	assert_int_equal(s.state, LINK_OPEN);
	assert_int_equal(take(&s, o, sizeof o), 1);
	assert_int_equal(o[0], LINK_ACK);
	assert_true(link_session_deadline(&s) == 0);
	assert_int_equal(link_session_tick(&s, 1000.0), 0); /* no timer while idle */
	link_session_free(&s);

	/* No ENQ within 5 s. */
	link_session_init(&s, LINK_SERVER, 50.0);
	assert_int_equal(link_session_tick(&s, 55.0), -1);
	assert_int_equal(s.state, LINK_BROKEN);
	assert_non_null(strstr(s.err, "no ENQ within 5 s"));
	link_session_free(&s);

	/* Anything else first: garbage, a frame, ACK, NACK. */
	static struct bytes w;
	const char *what[] = {"garbage", "frame", "bad", "ack", "nack"};
	for (int i = 0; i < 5; i++) {
		w.n = 0;
		if (i == 0)
			put(&w, "hello\n", 6);
		else if (i == 1)
			put_frame(&w, "REGISTER#MAD-01#X#1");
		else if (i == 2)
			put_raw_frame(&w, "OK", 2, 0);
		else
			put_byte(&w, i == 3 ? LINK_ACK : LINK_NACK);
		put_byte(&w, LINK_ENQ);
		link_session_init(&s, LINK_SERVER, 50.0);
		memset(&rx, 0, sizeof rx);
		if (feed(&s, &w, 50.1, &rx) != -1 || s.state != LINK_BROKEN) {
			print_error("%s first did not break the link\n", what[i]);
			fail();
		}
		assert_non_null(strstr(s.err, "expected ENQ"));
		assert_int_equal(rx.n, 0);
		assert_int_equal(take(&s, o, sizeof o), 0); /* no ACK sent */
		link_session_free(&s);
	}
	/* EOT first: the client gave up. */
	link_session_init(&s, LINK_SERVER, 50.0);
	assert_int_equal(feed_byte(&s, LINK_EOT, 50.1, &rx), -1);
	assert_int_equal(s.state, LINK_CLOSED);
	link_session_free(&s);
}

static void test_session_answers_every_frame(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx;
	uint8_t o[64];
	static struct bytes w;
	open_server(&s, &rx);
	w.n = 0;
	put_frame(&w, "REGISTER#MAD-01#C/ Serrano 10#0.25");
	put_raw_frame(&w, "HEARTBEAT#MAD-01", 16, 0x00); /* bad LRC */
	put_frame(&w, "HEARTBEAT#MAD-01");
	put_raw_frame(&w, "heartbeat", 9, -1); /* bad DATA */
	put(&w, "zz", 2);                       /* garbage: no answer */
	put_frame(&w, "OK");
	assert_int_equal(feed(&s, &w, 101.0, &rx), 0);
	assert_int_equal(take(&s, o, sizeof o), 5);
	assert_memory_equal(o, "\x06\x15\x06\x15\x06", 5);
	assert_int_equal(rx.n, 3);
	assert_string_equal(rx.got[0], "REGISTER#MAD-01#C/ Serrano 10#0.25");
	assert_string_equal(rx.got[1], "HEARTBEAT#MAD-01");
	assert_string_equal(rx.got[2], "OK");
	assert_int_equal(s.frames_in, 3);
	assert_int_equal(s.nacks_out, 2);
	/* Same stream one byte at a time: same answers. */
	link_session_free(&s);
	open_server(&s, &rx);
	for (size_t i = 0; i < w.n; i++)
		assert_int_equal(feed_byte(&s, w.b[i], 101.0, &rx), 0);
	assert_int_equal(take(&s, o, sizeof o), 5);
	assert_memory_equal(o, "\x06\x15\x06\x15\x06", 5);
	assert_int_equal(rx.n, 3);
	link_session_free(&s);
}

static void test_session_ack_before_reply(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx;
	uint8_t o[256];
	static struct bytes w;
	open_server(&s, &rx);
	rx.reply = "REGISTER_RESULT#FIRST";
	rx.now = 101.0;
	w.n = 0;
	put_frame(&w, "REGISTER#MAD-01#X#0.25");
	assert_int_equal(feed(&s, &w, 101.0, &rx), 0);
	size_t n = take(&s, o, sizeof o);
	uint8_t f[LINK_FRAME_MAX];
	size_t fn = frame_bytes("REGISTER_RESULT#FIRST", f);
	assert_int_equal(n, 1 + fn);
	assert_int_equal(o[0], LINK_ACK);
	assert_memory_equal(o + 1, f, fn);
	link_session_free(&s);
}

static void test_session_one_in_flight(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx;
	uint8_t o[256], f[LINK_FRAME_MAX];
	size_t fn;
	open_server(&s, &rx);
	assert_int_equal(link_session_send(&s, "PARAR#CENTRAL", 13, 101.0, NULL), 0);
	assert_int_equal(link_session_sendf(&s, 101.0, "AUTORIZAR_SUMINISTRO#%s#%s#%.2f", "101", "s1", 0.25), 0);
	assert_int_equal(link_session_send(&s, "REANUDAR#CENTRAL", 16, 101.0, NULL), 0);
	fn = frame_bytes("PARAR#CENTRAL", f);
	assert_int_equal(take(&s, o, sizeof o), fn);
	assert_memory_equal(o, f, fn);
	assert_int_equal(s.nqueue, 3);
	/* Behind the one in flight: two frames, framed (STX DATA ETX LRC). */
	assert_int_equal(link_session_backlog(&s), (32 + 3) + (16 + 3));
	/* The peer's frame arrives before its ACK: we answer it, send nothing else. */
	static struct bytes w;
	w.n = 0;
	put_frame(&w, "HEARTBEAT#MAD-01");
	assert_int_equal(feed(&s, &w, 101.5, &rx), 0);
	assert_int_equal(take(&s, o, sizeof o), 1);
	assert_int_equal(o[0], LINK_ACK);
	/* ACK: the next frame goes. */
	assert_int_equal(feed_byte(&s, LINK_ACK, 102.0, &rx), 0);
	fn = frame_bytes("AUTORIZAR_SUMINISTRO#101#s1#0.25", f);
	assert_int_equal(take(&s, o, sizeof o), fn);
	assert_memory_equal(o, f, fn);
	assert_true(link_session_deadline(&s) == 104.0);
	assert_int_equal(feed_byte(&s, LINK_ACK, 103.0, &rx), 0);
	fn = frame_bytes("REANUDAR#CENTRAL", f);
	assert_int_equal(take(&s, o, sizeof o), fn);
	assert_memory_equal(o, f, fn);
	assert_int_equal(link_session_backlog(&s), 0);
	assert_int_equal(feed_byte(&s, LINK_ACK, 103.1, &rx), 0);
	assert_true(link_session_idle(&s));
	assert_int_equal(s.frames_out, 3);
	assert_true(link_session_deadline(&s) == 0);
	/* A stray ACK or NACK answers nothing: ignored. */
	assert_int_equal(feed_byte(&s, LINK_ACK, 103.2, &rx), 0);
	assert_int_equal(feed_byte(&s, LINK_NACK, 103.2, &rx), 0);
	assert_int_equal(take(&s, o, sizeof o), 0);
	assert_int_equal(s.state, LINK_OPEN);
	link_session_free(&s);
}

/* Frames of every length pass through the queue in order, with the queue
 * never empty, so records wrap past the buffer's start (compaction) and the
 * buffer grows; once warm it stops growing. */
/* The frame on the wire is the oldest queued one, of len bytes of the
 * pattern test_session_queue_cycles sends: take it and ACK it. */
static void ack_oldest(struct link_session *s, struct rx *rx, int len)
{
	static uint8_t o[LINK_FRAME_MAX], f[LINK_FRAME_MAX];
	static char d[LINK_DATA_MAX + 1];
	memset(d, 'A' + (len % 26), (size_t)len);
	d[len] = '\0';
	size_t fn = frame_bytes(d, f);
	assert_int_equal(take(s, o, sizeof o), fn);
	assert_memory_equal(o, f, fn);
	assert_int_equal(feed_byte(s, LINK_ACK, 101.0, rx), 0);
}

static void test_session_queue_cycles(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx;
	static uint8_t o[LINK_FRAME_MAX];
	static char d[LINK_DATA_MAX + 1];
	int lens[128], nl = 0, head = 0;
	size_t cap_warm = 0;
	open_server(&s, &rx);
	for (int round = 0; round < 3; round++) {
		for (int len = 1; len <= LINK_DATA_MAX; len += 37) {
			memset(d, 'A' + (len % 26), (size_t)len);
			d[len] = '\0';
			assert_int_equal(link_session_send(&s, d, (size_t)len, 101.0, NULL), 0);
			lens[nl++] = len;
			if (nl - head < 4)
				continue;
			/* The oldest is on the wire, exactly as it was queued. */
			ack_oldest(&s, &rx, lens[head++]);
		}
		if (round == 1)
			cap_warm = s.q_cap;
	}
	assert_int_equal(s.q_cap, cap_warm); /* warm: no more growth */
	while (head < nl)
		ack_oldest(&s, &rx, lens[head++]);
	assert_true(link_session_idle(&s));
	assert_int_equal(s.frames_out, (unsigned long)nl);
	assert_int_equal(link_session_backlog(&s), 0);
	assert_int_equal(take(&s, o, sizeof o), 0);
	link_session_free(&s);
}

static void test_session_nack_resend(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx;
	uint8_t o[256], f[LINK_FRAME_MAX];
	size_t fn = frame_bytes("FAULT#MAD-01", f);
	/* NACK, NACK, ACK: delivered on the third attempt. */
	open_server(&s, &rx);
	assert_int_equal(link_session_send(&s, "FAULT#MAD-01", 12, 101.0, NULL), 0);
	assert_int_equal(take(&s, o, sizeof o), fn);
	assert_int_equal(feed_byte(&s, LINK_NACK, 101.5, &rx), 0);
	assert_int_equal(take(&s, o, sizeof o), fn);
	assert_memory_equal(o, f, fn);
	assert_true(link_session_deadline(&s) == 103.5); /* timer restarts */
	assert_int_equal(feed_byte(&s, LINK_NACK, 103.0, &rx), 0);
	assert_int_equal(take(&s, o, sizeof o), fn);
	assert_memory_equal(o, f, fn);
	assert_int_equal(feed_byte(&s, LINK_ACK, 104.0, &rx), 0);
	assert_true(link_session_idle(&s));
	assert_int_equal(s.nacks_in, 2);
	assert_int_equal(s.frames_out, 1);
	/* The next frame has its own 3 attempts. */
	assert_int_equal(link_session_send(&s, "RECOVER#MAD-01", 14, 105.0, NULL), 0);
	take(&s, o, sizeof o);
	assert_int_equal(feed_byte(&s, LINK_NACK, 105.1, &rx), 0);
	assert_int_equal(feed_byte(&s, LINK_NACK, 105.2, &rx), 0);
	assert_int_equal(s.state, LINK_OPEN);
	/* Third NACK: broken, no fourth attempt. */
	take(&s, o, sizeof o);
	assert_int_equal(feed_byte(&s, LINK_NACK, 105.3, &rx), -1);
	assert_int_equal(s.state, LINK_BROKEN);
	assert_non_null(strstr(s.err, "RECOVER"));
	assert_non_null(strstr(s.err, "3 times"));
	assert_int_equal(take(&s, o, sizeof o), 0);
	link_session_free(&s);
}

static void test_session_answer_timeout(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx;
	uint8_t o[256];
	open_server(&s, &rx);
	assert_int_equal(link_session_send(&s, "PARAR#CENTRAL", 13, 200.0, NULL), 0);
	take(&s, o, sizeof o);
	assert_true(link_session_deadline(&s) == 202.0);
	assert_int_equal(link_session_tick(&s, 201.999), 0);
	/* Input without the answer does not extend the timer... */
	static struct bytes w;
	w.n = 0;
	put_frame(&w, "HEARTBEAT#MAD-01");
	assert_int_equal(feed(&s, &w, 201.5, &rx), 0);
	assert_true(link_session_deadline(&s) == 202.0);
	/* ...and input after the deadline reports the break. */
	assert_int_equal(feed(&s, &w, 202.0, &rx), -1);
	assert_int_equal(s.state, LINK_BROKEN);
	assert_non_null(strstr(s.err, "no ACK/NACK for frame PARAR within 2 s"));
	assert_int_equal(link_session_tick(&s, 203.0), -1);
	link_session_free(&s);

	/* Timeout after a resend also breaks it. */
	open_server(&s, &rx);
	assert_int_equal(link_session_send(&s, "PARAR#CENTRAL", 13, 200.0, NULL), 0);
	assert_int_equal(feed_byte(&s, LINK_NACK, 201.0, &rx), 0);
	assert_int_equal(link_session_tick(&s, 202.5), 0);
	assert_int_equal(link_session_tick(&s, 203.0), -1);
	assert_non_null(strstr(s.err, "attempt 2"));
	link_session_free(&s);
}

static void test_session_eot_and_close(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx;
	uint8_t o[256];
	static struct bytes w;
	/* EOT received: CLOSED, bytes after it ignored. */
	open_server(&s, &rx);
	w.n = 0;
	put_frame(&w, "HEARTBEAT#MAD-01");
	put_byte(&w, LINK_EOT);
	put_frame(&w, "HEARTBEAT#MAD-02");
	assert_int_equal(feed(&s, &w, 101.0, &rx), -1);
	assert_int_equal(s.state, LINK_CLOSED);
	assert_non_null(strstr(s.err, "EOT"));
	assert_int_equal(rx.n, 1);
	assert_int_equal(take(&s, o, sizeof o), 1); /* the ACK of the first */
	assert_int_equal(feed(&s, &w, 101.0, &rx), -1);
	assert_int_equal(rx.n, 1);
	assert_int_equal(link_session_tick(&s, 101.0), -1);
	assert_true(link_session_deadline(&s) == 0);
	link_session_free(&s);

	/* Our close: EOT after what is already on its way. */
	open_server(&s, &rx);
	assert_int_equal(link_session_send(&s, "REGISTER_RESULT#DENIED#bad id", 29, 101.0, NULL), 0);
	link_session_close(&s);
	assert_int_equal(s.state, LINK_CLOSED);
	size_t n = take(&s, o, sizeof o);
	assert_int_equal(o[n - 1], LINK_EOT);
	assert_int_equal(o[0], LINK_STX);
	link_session_close(&s); /* twice: no second EOT */
	assert_int_equal(take(&s, o, sizeof o), 0);
	assert_int_equal(link_session_send(&s, "OK", 2, 101.0, NULL), -1);
	link_session_free(&s);

	/* A callback may close the session: later frames are not delivered. */
	open_server(&s, &rx);
	rx.close_on = 1;
	w.n = 0;
	put_frame(&w, "A");
	put_frame(&w, "B");
	assert_int_equal(feed(&s, &w, 101.0, &rx), -1);
	assert_int_equal(rx.n, 1);
	assert_int_equal(take(&s, o, sizeof o), 2);
	assert_memory_equal(o, "\x06\x04", 2);
	link_session_free(&s);
}

static void test_session_finish(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx;
	uint8_t o[256], f[LINK_FRAME_MAX];
	char err[EVC_ERR_LEN];
	/* Two frames queued: both delivered, then EOT. */
	open_server(&s, &rx);
	assert_int_equal(link_session_send(&s, "REGISTER_RESULT#DENIED#bad id", 29, 101.0, NULL), 0);
	assert_int_equal(link_session_send(&s, "ERROR#bye", 9, 101.0, NULL), 0);
	take(&s, o, sizeof o);
	link_session_finish(&s);
	assert_int_equal(s.state, LINK_OPEN);
	assert_int_equal(take(&s, o, sizeof o), 0); /* no EOT yet */
	assert_int_equal(link_session_send(&s, "LATE", 4, 101.0, err), -1);
	assert_non_null(strstr(err, "closing"));
	assert_int_equal(feed_byte(&s, LINK_ACK, 101.1, &rx), 0);
	size_t fn = frame_bytes("ERROR#bye", f);
	assert_int_equal(take(&s, o, sizeof o), fn);
	assert_memory_equal(o, f, fn);
	assert_int_equal(feed_byte(&s, LINK_ACK, 101.2, &rx), -1);
	assert_int_equal(s.state, LINK_CLOSED);
	assert_int_equal(take(&s, o, sizeof o), 1);
	assert_int_equal(o[0], LINK_EOT);
	assert_int_equal(s.frames_out, 2);
	link_session_free(&s);
	/* Nothing queued: EOT at once. */
	open_server(&s, &rx);
	link_session_finish(&s);
	assert_int_equal(s.state, LINK_CLOSED);
	assert_int_equal(take(&s, o, sizeof o), 1);
	assert_int_equal(o[0], LINK_EOT);
	link_session_free(&s);
	/* Delivery fails: BROKEN, no EOT. */
	open_server(&s, &rx);
	assert_int_equal(link_session_send(&s, "PARAR#CENTRAL", 13, 101.0, NULL), 0);
	take(&s, o, sizeof o);
	link_session_finish(&s);
	assert_int_equal(link_session_tick(&s, 103.0), -1);
	assert_int_equal(s.state, LINK_BROKEN);
	assert_int_equal(take(&s, o, sizeof o), 0);
	link_session_free(&s);
}

static void test_session_send_errors(void **state)
{
	(void)state;
	struct link_session s;
	struct rx rx;
	char err[EVC_ERR_LEN];
	open_server(&s, &rx);
	assert_int_equal(link_session_send(&s, "bad", 3, 101.0, err), -1);
	assert_non_null(strstr(err, "opcode"));
	assert_int_equal(link_session_send(&s, "A\nB", 3, 101.0, NULL), -1);
	static char big[2000];
	memset(big, 'X', sizeof big - 1);
	assert_int_equal(link_session_sendf(&s, 101.0, "%s", big), -1);
	assert_true(link_session_idle(&s));
	for (int i = 0; i < LINK_QUEUE_MAX + 1; i++)
		assert_int_equal(link_session_sendf(&s, 101.0, "HEARTBEAT#%d", i), 0);
	assert_int_equal(link_session_send(&s, "ONE_TOO_MANY", 12, 101.0, err), -1);
	assert_non_null(strstr(err, "queue full"));
	/* Output can be written in pieces. */
	size_t n;
	link_session_output(&s, &n);
	assert_true(n > 4);
	link_session_consumed(&s, 2);
	size_t m;
	const uint8_t *o = link_session_output(&s, &m);
	assert_int_equal(m, n - 2);
	assert_int_equal(o[0], 'E'); /* after STX 'H' */
	link_session_free(&s); /* frees the queue: valgrind/ASan check */
	assert_string_equal(link_state_name(LINK_HANDSHAKE), "HANDSHAKE");
	assert_string_equal(link_state_name(LINK_OPEN), "OPEN");
	assert_string_equal(link_state_name(LINK_CLOSED), "CLOSED");
	assert_string_equal(link_state_name(LINK_BROKEN), "BROKEN");
}

/* A client and a server joined by a pipe that delivers bytes in odd-sized
 * pieces: both send streams of frames at once, the ACKs of one direction
 * travel between the frames of the other, and every frame arrives once, in
 * order, with no NACK. */
struct pipe_end {
	struct link_session s;
	struct rx rx;
	uint8_t pend[8192];
	size_t npend;
};

static void pipe_move(struct pipe_end *from, struct pipe_end *to, unsigned *seed, double now)
{
	size_t n;
	const uint8_t *o = link_session_output(&from->s, &n);
	assert_true(from->npend + n <= sizeof from->pend);
	memcpy(from->pend + from->npend, o, n);
	from->npend += n;
	link_session_consumed(&from->s, n);
	*seed = *seed * 1103515245u + 12345u;
	size_t k = (*seed >> 16) % 23;
	if (k > from->npend)
		k = from->npend;
	if (k == 0)
		return;
	assert_int_equal(link_session_input(&to->s, from->pend, k, now, on_frame, &to->rx), 0);
	memmove(from->pend, from->pend + k, from->npend - k);
	from->npend -= k;
}

static void test_session_pair(void **state)
{
	(void)state;
	static struct pipe_end c, sv;
	memset(&c, 0, sizeof c);
	memset(&sv, 0, sizeof sv);
	double now = 1.0;
	link_session_init(&c.s, LINK_CLIENT, now);
	link_session_init(&sv.s, LINK_SERVER, now);
	c.rx.s = &c.s;
	sv.rx.s = &sv.s;
	const int N = 60;
	for (int i = 0; i < N; i++) {
		assert_int_equal(link_session_sendf(&c.s, now, "HEARTBEAT#CP-%02d", i), 0);
		if (i < 40)
			assert_int_equal(link_session_sendf(&sv.s, now, "PARAR#%02d", i), 0);
	}
	unsigned seed = 7;
	int rounds = 0;
	while (sv.s.frames_in < (unsigned long)N || c.s.frames_in < 40 || !link_session_idle(&c.s) ||
	       !link_session_idle(&sv.s)) {
		pipe_move(&c, &sv, &seed, now);
		pipe_move(&sv, &c, &seed, now);
		now += 0.001; /* well inside the 2 s answer timeout */
		assert_true(++rounds < 100000);
	}
	assert_int_equal(c.s.state, LINK_OPEN);
	assert_int_equal(sv.s.state, LINK_OPEN);
	assert_int_equal(sv.rx.n, N);
	assert_int_equal(c.rx.n, 40);
	for (int i = 0; i < N; i++) {
		char want[32];
		snprintf(want, sizeof want, "HEARTBEAT#CP-%02d", i);
		assert_string_equal(sv.rx.got[i], want);
		snprintf(want, sizeof want, "PARAR#%02d", i);
		if (i < 40)
			assert_string_equal(c.rx.got[i], want);
	}
	assert_int_equal(c.s.frames_out, N);
	assert_int_equal(sv.s.frames_out, 40);
	assert_int_equal(c.s.nacks_in + c.s.nacks_out + sv.s.nacks_in + sv.s.nacks_out, 0);
	/* The client closes: the server sees EOT and is CLOSED too. */
	link_session_close(&c.s);
	size_t n;
	const uint8_t *o = link_session_output(&c.s, &n);
	assert_int_equal(n, 1);
	assert_int_equal(link_session_input(&sv.s, o, n, now, on_frame, &sv.rx), -1);
	assert_int_equal(sv.s.state, LINK_CLOSED);
	link_session_free(&c.s);
	link_session_free(&sv.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lrc_vectors),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_frame_build_room),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_reader_mixed_stream),
		cmocka_unit_test(test_reader_every_lrc_value),
		cmocka_unit_test(test_reader_many_frames_one_chunk),
		cmocka_unit_test(test_reader_partial_keeps_state),
		cmocka_unit_test(test_reader_bad_frames),
		cmocka_unit_test(test_reader_stx_inside_frame),
		cmocka_unit_test(test_reader_garbage),
		cmocka_unit_test(test_reader_oversized),
		cmocka_unit_test(test_client_handshake),
		cmocka_unit_test(test_client_handshake_refused_or_silent),
		cmocka_unit_test(test_server_handshake),
		cmocka_unit_test(test_session_answers_every_frame),
		cmocka_unit_test(test_session_ack_before_reply),
		cmocka_unit_test(test_session_one_in_flight),
		cmocka_unit_test(test_session_queue_cycles),
		cmocka_unit_test(test_session_nack_resend),
		cmocka_unit_test(test_session_answer_timeout),
		cmocka_unit_test(test_session_eot_and_close),
		cmocka_unit_test(test_session_finish),
		cmocka_unit_test(test_session_send_errors),
		cmocka_unit_test(test_session_pair),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
