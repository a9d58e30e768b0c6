/* The shared pieces of libevc that do no I/O: prices and amounts, the CP
 * location rule, the hash map and the bounded thread queue. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <cmocka.h>

#include "evc/bqueue.h"
#include "evc/hmap.h"
#include "evc/money.h"
#include "evc/msg.h"
#include "evc/utf8.h"

static void test_parse_price(void **state)
{
	(void)state;
	double p;
	int r;
	assert_int_equal(money_parse_price("0.25", &p, NULL), 0);
	assert_true(p == 0.25);
	assert_int_equal(money_parse_price("100", &p, NULL), 0);
	assert_int_equal(money_parse_price(".5", &p, NULL), 0);
	assert_true(p == 0.5);
	assert_int_equal(money_parse_price("0", &p, NULL), -2);
	assert_int_equal(money_parse_price("0.00004", &p, NULL), -2); /* rounds to 0 */
	assert_int_equal(money_parse_price("100.01", &p, NULL), -2);
	assert_int_equal(money_parse_price("0,25", &p, NULL), -1);
	assert_int_equal(money_parse_price("-1", &p, NULL), -1);
	assert_int_equal(money_parse_price("1e2", &p, NULL), -1);
	assert_int_equal(money_parse_price("nan", &p, NULL), -1);
	assert_int_equal(money_parse_price("", &p, NULL), -1);
	assert_int_equal(money_parse_price(".", &p, NULL), -1);
	assert_int_equal(money_parse_price(" 1", &p, NULL), -1);
	assert_int_equal(money_parse_price(NULL, &p, NULL), -1);
	/* 4 decimals kept, and "rounded" only when something was rounded
	 * (0.3 read digit by digit is not exactly 0.3 before rounding) */
	assert_int_equal(money_parse_price("0.123456", &p, &r), 0);
	assert_true(p == 0.1235);
	assert_int_equal(r, 1);
	assert_int_equal(money_parse_price("0.3", &p, &r), 0);
	assert_true(p == 0.3);
	assert_int_equal(r, 0);
	assert_int_equal(money_parse_price("0.30", &p, &r), 0);
	assert_int_equal(r, 0);
}

static void test_format(void **state)
{
	(void)state;
	char b[MONEY_STR_LEN];
	assert_string_equal(money_price(b, sizeof b, 0.25), "0.25");
	assert_string_equal(money_price(b, sizeof b, 0.3), "0.30");
	assert_string_equal(money_price(b, sizeof b, 0.1235), "0.1235");
	assert_string_equal(money_price(b, sizeof b, 0.123), "0.123");
	assert_string_equal(money_price(b, sizeof b, 100), "100.00");
	assert_string_equal(money_fixed(b, sizeof b, 12.5, 2), "12.50");
	assert_string_equal(money_fixed(b, sizeof b, 0.0005, 3), "0.001");
	assert_string_equal(money_fixed(b, sizeof b, 7, 0), "7");
	assert_string_equal(money_fixed(b, sizeof b, 1.0 / 0.0, 2), "?");
	assert_string_equal(money_fixed(b, sizeof b, -2.25, 1), "-2.3");
	assert_true(money_amount(1.234, 0.3) == 0.37);
	assert_true(money_round_kwh(1.23456) == 1.235);
	assert_true(money_round_price(0.12345) == 0.1235 || money_round_price(0.12345) == 0.1234);
	assert_true(money_price_ok(0.0001));
	assert_false(money_price_ok(0));
	assert_false(money_price_ok(100.0001));
}

static void test_location(void **state)
{
	(void)state;
	assert_null(msg_check_location("C/ Serrano 10, Madrid"));
	assert_null(msg_check_location("\xc3\xb1"));
	assert_string_equal(msg_check_location(""), "location is empty");
	assert_string_equal(msg_check_location(NULL), "location is empty");
	assert_string_equal(msg_check_location("a#b"), "location contains '#'");
	assert_string_equal(msg_check_location("a\tb"), "location contains a control character");
	assert_string_equal(msg_check_location("\xc0\xaf"), "location is not valid UTF-8");
	assert_string_equal(msg_check_location("\xed\xa0\x80"), "location is not valid UTF-8"); /* surrogate */
	char loc[200];
	memset(loc, 'a', 64);
	loc[64] = '\0';
	assert_null(msg_check_location(loc));
	loc[64] = 'a';
	loc[65] = '\0';
	assert_string_equal(msg_check_location(loc), "location is longer than 64 characters");
}

/* Against a plain array as the reference: random puts and deletes of
 * string and integer keys, every lookup checked after each step (the
 * backward-shift delete is where such maps go wrong). */
static void test_hmap(void **state)
{
	(void)state;
	enum { K = 700 };
	static char keys[K][16];
	static int present[K];
	struct hmap sm, um;
	hmap_init(&sm);
	hmap_init(&um);
	for (int i = 0; i < K; i++)
		snprintf(keys[i], sizeof keys[i], "k%d", i * 7919);
	unsigned seed = 12345;
	for (int step = 0; step < 20000; step++) {
		seed = seed * 1103515245u + 12345u;
		int k = (int)((seed >> 8) % K);
		if ((seed >> 4) & 1) {
			hmap_sput(&sm, keys[k], keys[k]);
			hmap_uput(&um, (uint64_t)k << 40, keys[k]);
			present[k] = 1;
		} else {
			hmap_sdel(&sm, keys[k]);
			hmap_udel(&um, (uint64_t)k << 40);
			present[k] = 0;
		}
		if (step % 97 == 0) {
			size_t n = 0;
			for (int i = 0; i < K; i++) {
				n += (size_t)present[i];
				assert_true((hmap_sget(&sm, keys[i]) != NULL) == present[i]);
				assert_true((hmap_uget(&um, (uint64_t)i << 40) != NULL) == present[i]);
			}
			assert_int_equal(hmap_count(&sm), n);
			assert_int_equal(hmap_count(&um), n);
			size_t walked = 0;
			void *v;
			for (size_t i = 0; (v = hmap_next(&sm, &i)) != NULL;)
				walked++;
			assert_int_equal(walked, n);
		}
	}
	assert_null(hmap_sget(&sm, "absent"));
	hmap_clear(&sm);
	assert_int_equal(hmap_count(&sm), 0);
	assert_null(hmap_sget(&sm, keys[0]));
	hmap_sput(&sm, keys[1], keys[1]);
	assert_ptr_equal(hmap_sget(&sm, keys[1]), keys[1]);
	hmap_free(&sm);
	hmap_free(&um);
	struct hmap e;
	hmap_init(&e);
	assert_null(hmap_uget(&e, 1));
	hmap_udel(&e, 1);
	hmap_free(&e);
}

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

static void *producer(void *arg)
{
	struct bqueue *q = arg;
	for (int i = 0; i < 10000; i++)
		if (bqueue_push(q, &i, 1) != 0)
			return (void *)1;
	return NULL;
}

/* Run fn (pushing 0..9999) in a thread; take its items per_pop at most at
 * a time, waking on the fd, and check they come in order. */
static void take_in_order(struct bqueue *q, void *(*fn)(void *), size_t per_pop)
{
	int out[8];
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, fn, q), 0);
	int next = 0;
	while (next < 10000) {
		struct pollfd p = { .fd = bqueue_fd(q), .events = POLLIN };
		assert_int_equal(poll(&p, 1, 5000), 1);
		size_t n = bqueue_pop(q, out, per_pop);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(out[i], next++);
	}
	void *rv;
	pthread_join(t, &rv);
	assert_null(rv);
}

static void *producer_many(void *arg)
{
	struct bqueue *q = arg;
	int batch[7];
	for (int i = 0; i < 10000; i += 7) {
		size_t n = 0;
		for (int j = i; j < i + 7 && j < 10000; j++)
			batch[n++] = j;
		if (bqueue_push_many(q, batch, n, 1) != n)
			return (void *)1;
	}
	return NULL;
}

/* Many at once: as many as fit without waiting, in order across the
 * ring's end; with wait, batches larger than the ring all get through. */
static void test_bqueue_push_many(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	struct bqueue *q = bqueue_new(sizeof(int), 4, err);
	assert_non_null(q);
	int in[6] = { 10, 11, 12, 13, 14, 15 }, out[8];
	assert_int_equal(bqueue_push_many(q, in, 6, 0), 4); /* full: the rest refused */
	assert_true(readable(bqueue_fd(q)));
	assert_int_equal(bqueue_pop(q, out, 3), 3);
	assert_int_equal(out[0], 10);
	/* head at slot 3: these wrap round the end of the ring */
	assert_int_equal(bqueue_push_many(q, in + 4, 2, 0), 2);
	assert_int_equal(bqueue_push_many(q, in, 1, 0), 1);
	assert_int_equal(bqueue_len(q), 4);
	assert_int_equal(bqueue_pop(q, out, 8), 4);
	assert_int_equal(out[0], 13);
	assert_int_equal(out[1], 14);
	assert_int_equal(out[2], 15);
	assert_int_equal(out[3], 10);
	assert_false(readable(bqueue_fd(q)));
	take_in_order(q, producer_many, 3);
	bqueue_close(q);
	assert_int_equal(bqueue_push_many(q, in, 2, 1), 0);
	bqueue_free(q);
}

static void test_bqueue(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	struct bqueue *q = bqueue_new(sizeof(int), 4, err);
	assert_non_null(q);
	int out[8];
	assert_false(readable(bqueue_fd(q)));
	for (int i = 0; i < 4; i++)
		assert_int_equal(bqueue_push(q, &i, 0), 0);
	int five = 5;
	assert_int_equal(bqueue_push(q, &five, 0), -1); /* full: told at once */
	assert_true(readable(bqueue_fd(q)));
	assert_int_equal(bqueue_len(q), 4);
	assert_int_equal(bqueue_pop(q, out, 3), 3);
	assert_int_equal(out[0], 0);
	assert_int_equal(out[2], 2);
	assert_true(readable(bqueue_fd(q))); /* one left */
	assert_int_equal(bqueue_pop(q, out, 8), 1);
	assert_int_equal(out[0], 3);
	assert_false(readable(bqueue_fd(q)));
	/* peek keeps items counted until dropped; a kick wakes without one */
	assert_int_equal(bqueue_push(q, &five, 0), 0);
	assert_int_equal(bqueue_peek_wait(q, out, 8), 1);
	assert_int_equal(bqueue_len(q), 1);
	bqueue_drop(q, 1);
	assert_int_equal(bqueue_len(q), 0);
	bqueue_kick(q);
	assert_true(readable(bqueue_fd(q)));
	assert_int_equal(bqueue_peek_wait(q, out, 8), 0);
	assert_int_equal(bqueue_pop(q, out, 8), 0);
	assert_false(readable(bqueue_fd(q)));
	/* a waiting producer: 10,000 items in order through 4 slots */
	take_in_order(q, producer, 8);
	/* close: pushes fail, what is queued can still be taken */
	assert_int_equal(bqueue_push(q, &five, 0), 0);
	bqueue_close(q);
	assert_true(bqueue_closed(q));
	assert_int_equal(bqueue_push(q, &five, 1), -1);
	assert_int_equal(bqueue_pop(q, out, 8), 1);
	assert_int_equal(bqueue_peek_wait(q, out, 8), 0);
	bqueue_free(q);
	bqueue_free(NULL);
}

/* The one UTF-8 decoder: well-formed sequences and their code points, and
 * every malformed kind RFC 3629 names refused (U+FFFD, one byte). */
static void test_utf8(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t len;
		uint32_t cp;
	} ok[] = {
		{ "A", 1, 'A' },
		{ "\xc2\xa0", 2, 0xA0 },         /* no-break space */
		{ "\xc3\x81", 2, 0xC1 },         /* \u00c1 */
		{ "\xdf\xbf", 2, 0x7FF },
		{ "\xe0\xa0\x80", 3, 0x800 },
		{ "\xe2\x80\x93", 3, 0x2013 },  /* en dash */
		{ "\xed\x9f\xbf", 3, 0xD7FF },  /* just below the surrogates */
		{ "\xef\xbf\xbd", 3, 0xFFFD },
		{ "\xf0\x90\x80\x80", 4, 0x10000 },
		{ "\xf4\x8f\xbf\xbf", 4, 0x10FFFF },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		size_t n = strlen(ok[i].s), len = 0;
		assert_int_equal(utf8_seq((const uint8_t *)ok[i].s, n), ok[i].len);
		assert_int_equal(utf8_decode((const uint8_t *)ok[i].s, n, &len), ok[i].cp);
		assert_int_equal(len, ok[i].len);
	}
	static const char *bad[] = {
		"\x80",             /* stray continuation */
		"\xc0\xaf",         /* overlong '/' */
		"\xc1\xbf",         /* overlong */
		"\xe0\x9f\xbf",     /* overlong */
		"\xed\xa0\x80",     /* U+D800, a surrogate */
		"\xf0\x8f\xbf\xbf", /* overlong */
		"\xf4\x90\x80\x80", /* above U+10FFFF */
		"\xf5\x80\x80\x80",
		"\xff",
		"\xc3",             /* cut short */
		"\xe2\x80",
		"\xc3" "A",        /* not a continuation */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t n = strlen(bad[i]), len = 0;
		assert_int_equal(utf8_seq((const uint8_t *)bad[i], n), 0);
		assert_int_equal(utf8_decode((const uint8_t *)bad[i], n, &len), 0xFFFD);
		assert_int_equal(len, 1);
		assert_false(utf8_valid(bad[i], n, NULL));
	}
	size_t chars = 0;
	assert_true(utf8_valid("M\xc3\xa1laga \xe2\x80\x93 \xf0\x9f\x94\x8c", 16, &chars));
	assert_int_equal(chars, 10);
}

/* Letters, digits and case from C.UTF-8 (Debian's libc-bin has it). */
static void test_utf8_fold(void **state)
{
	(void)state;
	assert_true(utf8_fold_ready());
	assert_true(utf8_fold_eq("M\xc3\xa1laga", "M\xc3\x81LAGA"));
	assert_true(utf8_fold_eq("LOGRO\xc3\x91O", "logro\xc3\xb1o"));
	assert_true(utf8_fold_eq("\xce\xa3\xce\x88\xce\xa1\xce\xa1\xce\x95\xce\xa3", /* ΣΈΡΡΕΣ */
				 "\xcf\x83\xce\xad\xcf\x81\xcf\x81\xce\xb5\xcf\x82")); /* σέρρες, final sigma */
	assert_true(utf8_fold_eq("", ""));
	assert_false(utf8_fold_eq("Malaga", "M\xc3\xa1laga"));
	assert_false(utf8_fold_eq("Madrid", "Madri"));
	assert_false(utf8_fold_eq("Madri", "Madrid"));
	size_t end = 0;
	assert_true(utf8_fold_prefix("M\xc3\x81LAGA centro", 14, "m\xc3\xa1laga", 7, &end));
	assert_int_equal(end, 7);
	assert_false(utf8_fold_prefix("M\xc3\x81L", 4, "m\xc3\xa1laga", 7, &end));
	assert_true(utf8_alnum('7') && utf8_alnum(0xE1) && utf8_alnum(0x416) && utf8_alnum(0x6771));
	assert_false(utf8_alnum('-') || utf8_alnum(0x2013) || utf8_alnum(0xA0) || utf8_alnum(0xB7) || utf8_alnum(0x301));
	assert_true(utf8_control(0) && utf8_control('\n') && utf8_control(0x7F) && utf8_control(0x80) && utf8_control(0x9F));
	assert_false(utf8_control(' ') || utf8_control('~') || utf8_control(0xA0) || utf8_control(0xE1));
	assert_true(utf8_word_char(0x301) && utf8_word_char(0xFFFD) && utf8_word_char('a'));
	assert_false(utf8_word_char(' ') || utf8_word_char(0x2014));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_price),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_location),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_utf8_fold),
		cmocka_unit_test(test_hmap),
		cmocka_unit_test(test_bqueue),
		cmocka_unit_test(test_bqueue_push_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
