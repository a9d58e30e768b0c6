/* EV_Registry's failed-authentication limiter (src/registry/ratelimit.c),
 * with the times given: the boundary of the window and of the block, one
 * address does not block another, IPv6 counted by /64, the bounded table
 * forgets the address seen longest ago. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "src/registry/ratelimit.h"

/* 10 failures within 60 s are allowed; the 11th blocks for 60 s. */
static void test_window_and_block(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new(16, 10, 60, 60);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(ratelimit_fail(rl, "192.0.2.1", 100 + i), 0);
		assert_true(ratelimit_blocked(rl, "192.0.2.1", 100 + i) == 0);
	}
	/* The 11th, 59.9 s after the first. */
	assert_int_equal(ratelimit_fail(rl, "192.0.2.1", 159.9), 1);
	assert_true(ratelimit_blocked(rl, "192.0.2.1", 160) > 58.8);
	assert_true(ratelimit_blocked(rl, "192.0.2.1", 219.8) > 0);
	/* Over exactly 60 s after the block began. */
	assert_true(ratelimit_blocked(rl, "192.0.2.1", 219.9) == 0);
	/* Then counting starts afresh: 10 more are allowed. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(ratelimit_fail(rl, "192.0.2.1", 220 + i), 0);
	assert_int_equal(ratelimit_fail(rl, "192.0.2.1", 230), 1);
	ratelimit_free(rl);
}

/* 11 failures spread over more than a minute never block. */
static void test_slow_failures_allowed(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new(16, 10, 60, 60);
	for (int i = 0; i < 100; i++)
		assert_int_equal(ratelimit_fail(rl, "192.0.2.1", i * 6.01), 0);
	assert_true(ratelimit_blocked(rl, "192.0.2.1", 600) == 0);
	/* ...but a burst after them does. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(ratelimit_fail(rl, "192.0.2.1", 700 + i * 0.1), 0);
	assert_int_equal(ratelimit_fail(rl, "192.0.2.1", 701.5), 1);
	ratelimit_free(rl);
}

static void test_addresses_apart(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new(16, 10, 60, 60);
	for (int i = 0; i < 11; i++)
		ratelimit_fail(rl, "192.0.2.1", 10);
	assert_true(ratelimit_blocked(rl, "192.0.2.1", 11) > 0);
	assert_true(ratelimit_blocked(rl, "192.0.2.2", 11) == 0);
	assert_true(ratelimit_blocked(rl, "198.51.100.7", 11) == 0);
	ratelimit_free(rl);
}

static void test_keys(void **state)
{
	(void)state;
	char k[RATELIMIT_KEY_LEN];
	ratelimit_key("192.0.2.1", k);
	assert_string_equal(k, "192.0.2.1");
	ratelimit_key("::ffff:192.0.2.1", k);
	assert_string_equal(k, "192.0.2.1");
	ratelimit_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", k);
	assert_string_equal(k, "2001:db8:1:2::/64");
	char k2[RATELIMIT_KEY_LEN];
	ratelimit_key("2001:db8:1:2::1", k2);
	assert_string_equal(k, k2);
	ratelimit_key("2001:db8:1:3::1", k2);
	assert_string_not_equal(k, k2);
	ratelimit_key("::1", k);
	assert_string_equal(k, "::/64");
	/* Not an address: as is, cut. */
	char longs[200];
	memset(longs, 'x', sizeof longs - 1);
	longs[sizeof longs - 1] = '\0';
	ratelimit_key(longs, k);
	assert_int_equal(strlen(k), RATELIMIT_KEY_LEN - 1);
}

static void test_bounded_table(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new(4, 10, 60, 60);
	char a[32];
	/* Block the first address, then fill the table with others. */
	for (int i = 0; i < 11; i++)
		ratelimit_fail(rl, "10.0.0.0", 1);
	assert_true(ratelimit_blocked(rl, "10.0.0.0", 2) > 0);
	for (int i = 1; i <= 3; i++) {
		snprintf(a, sizeof a, "10.0.0.%d", i);
		ratelimit_fail(rl, a, 2 + i);
	}
	assert_int_equal(ratelimit_count(rl), 4);
	assert_true(ratelimit_blocked(rl, "10.0.0.0", 6) > 0);
	/* A fifth address evicts the oldest (the blocked one, seen at t=1). */
	ratelimit_fail(rl, "10.0.0.4", 7);
	assert_int_equal(ratelimit_count(rl), 4);
	assert_true(ratelimit_blocked(rl, "10.0.0.0", 8) == 0);
	/* Thousands of addresses never grow it. */
	for (int i = 0; i < 5000; i++) {
		snprintf(a, sizeof a, "10.1.%d.%d", i / 256, i % 256);
		ratelimit_fail(rl, a, 10 + i);
	}
	assert_int_equal(ratelimit_count(rl), 4);
	ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_and_block),
		cmocka_unit_test(test_slow_failures_allowed),
		cmocka_unit_test(test_addresses_apart),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_bounded_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
