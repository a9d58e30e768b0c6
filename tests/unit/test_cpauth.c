/* cpauth: the engine's challenge gate (HELLO, CHALLENGE, AUTH, AUTH_OK;
 * three strikes; the deadline) and the per-address failure limiter. Pure
 * code, so every case is driven frame by frame with a chosen clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "evc/crypto.h"
#include "src/cp/cpauth.h"

/* A fixed credential (the secret is the base64url of 32 bytes 0x00..0x1f). */
static const struct cred CRED = {"MAD-01", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"};

struct out {
	char reply[LINK_DATA_MAX + 1];
	char why[EVC_ERR_LEN];
};

/* Feed one frame given as DATA text. */
static enum cpauth_verdict feed(struct cpauth_conn *c, const char *data, struct out *o)
{
	char buf[LINK_DATA_MAX + 1];
	char *f[LINK_FIELDS_MAX];
	snprintf(buf, sizeof buf, "%s", data);
	int n = link_split(buf, f, LINK_FIELDS_MAX);
	o->why[0] = '\0';
	enum cpauth_verdict v = cpauth_frame(c, &CRED, f, n, o->reply, o->why);
	/* Nothing the gate says may hold the secret. */
	assert_null(strstr(o->reply, CRED.secret));
	assert_null(strstr(o->why, CRED.secret));
	return v;
}

/* HELLO, then the right answer computed from the CHALLENGE. */
static void authenticate(struct cpauth_conn *c)
{
	struct out o;
	assert_int_equal(feed(c, "HELLO#MAD-01", &o), CPAUTH_ANSWER);
	assert_int_equal(strncmp(o.reply, "CHALLENGE#", 10), 0);
	unsigned char nonce[16];
	assert_int_equal(crypto_unhex(o.reply + 10, nonce, sizeof nonce), 0);
	assert_memory_equal(nonce, c->nonce, 16);
	char ans[65], frame[80];
	crypto_challenge_answer(CRED.secret, nonce, CRED.cp_id, ans);
	snprintf(frame, sizeof frame, "AUTH#%s", ans);
	assert_int_equal(feed(c, frame, &o), CPAUTH_OK);
	assert_string_equal(o.reply, "AUTH_OK");
}

static void test_open_passes_everything(void **st)
{
	(void)st;
	struct cpauth_conn c;
	struct out o;
	cpauth_conn_init(&c, 100, 1);
	assert_int_equal(feed(&c, "PARAR", &o), CPAUTH_PASS);
	assert_int_equal(feed(&c, "HEALTH_CHECK#MAD-01", &o), CPAUTH_PASS);
	assert_false(cpauth_expired(&c, 1e9));
}

static void test_good_exchange(void **st)
{
	(void)st;
	struct cpauth_conn c;
	struct out o;
	cpauth_conn_init(&c, 100, 0);
	authenticate(&c);
	assert_int_equal(c.state, CPAUTH_DONE);
	assert_false(cpauth_expired(&c, 1e9));
	/* From now on every frame is the engine's business, AUTH and HELLO too. */
	assert_int_equal(feed(&c, "SET_KEY#x", &o), CPAUTH_PASS);
	assert_int_equal(feed(&c, "HELLO#MAD-01", &o), CPAUTH_PASS);
}

static void test_optional_trailing_field_in_hello(void **st)
{
	(void)st;
	struct cpauth_conn c;
	struct out o;
	cpauth_conn_init(&c, 0, 0);
	assert_int_equal(feed(&c, "HELLO#MAD-01#v2", &o), CPAUTH_ANSWER);
	assert_int_equal(strlen(o.reply), 10 + 32);
}

static void test_wrong_answers_fail(void **st)
{
	(void)st;
	const char *bad[] = {"AUTH", "AUTH#", "AUTH#00", "AUTH#zz", NULL};
	for (int i = 0; bad[i] != NULL; i++) {
		struct cpauth_conn c;
		struct out o;
		cpauth_conn_init(&c, 0, 0);
		assert_int_equal(feed(&c, "HELLO#MAD-01", &o), CPAUTH_ANSWER);
		assert_int_equal(feed(&c, bad[i], &o), CPAUTH_FAIL);
		assert_string_equal(o.reply, "ERROR#NOT_AUTHENTICATED");
		assert_string_equal(o.why, "wrong answer to the challenge");
		assert_int_equal(c.state, CPAUTH_CHALLENGED); /* closed by the caller; never DONE */
	}
	/* The right answer with one digit changed, and in uppercase. */
	for (int variant = 0; variant < 2; variant++) {
		struct cpauth_conn c;
		struct out o;
		cpauth_conn_init(&c, 0, 0);
		feed(&c, "HELLO#MAD-01", &o);
		char ans[65], frame[80];
		crypto_challenge_answer(CRED.secret, c.nonce, CRED.cp_id, ans);
		if (variant == 0) {
			ans[17] = ans[17] == '0' ? '1' : '0';
		} else {
			int changed = 0;
			for (char *p = ans; *p; p++)
				if (*p >= 'a' && *p <= 'f') {
					*p = (char)(*p - 'a' + 'A');
					changed = 1;
				}
			assert_true(changed);
		}
		snprintf(frame, sizeof frame, "AUTH#%s", ans);
		assert_int_equal(feed(&c, frame, &o), CPAUTH_FAIL);
	}
}

static void test_answer_is_bound_to_its_nonce(void **st)
{
	(void)st;
	struct cpauth_conn a, b;
	struct out o;
	cpauth_conn_init(&a, 0, 0);
	cpauth_conn_init(&b, 0, 0);
	feed(&a, "HELLO#MAD-01", &o);
	feed(&b, "HELLO#MAD-01", &o);
	assert_memory_not_equal(a.nonce, b.nonce, 16); /* a fresh nonce per connection */
	char ans[65], frame[80];
	crypto_challenge_answer(CRED.secret, a.nonce, CRED.cp_id, ans);
	snprintf(frame, sizeof frame, "AUTH#%s", ans);
	assert_int_equal(feed(&b, frame, &o), CPAUTH_FAIL); /* a's answer replayed on b */
	assert_int_equal(feed(&a, frame, &o), CPAUTH_OK);
}

static void test_hello_for_another_cp(void **st)
{
	(void)st;
	struct cpauth_conn c;
	struct out o;
	cpauth_conn_init(&c, 0, 0);
	assert_int_equal(feed(&c, "HELLO#BCN-02", &o), CPAUTH_FAIL);
	assert_string_equal(o.reply, "ERROR#NOT_AUTHENTICATED");
	assert_string_equal(o.why, "HELLO for CP BCN-02; this engine serves MAD-01");
	cpauth_conn_init(&c, 0, 0);
	assert_int_equal(feed(&c, "HELLO", &o), CPAUTH_FAIL);
	assert_string_equal(o.why, "HELLO without a valid CP id");
	cpauth_conn_init(&c, 0, 0);
	assert_int_equal(feed(&c, "HELLO#bad id!", &o), CPAUTH_FAIL);
	assert_string_equal(o.why, "HELLO without a valid CP id");
}

static void test_three_strikes(void **st)
{
	(void)st;
	struct cpauth_conn c;
	struct out o;
	cpauth_conn_init(&c, 0, 0);
	assert_int_equal(feed(&c, "AUTORIZAR_SUMINISTRO#101#S1#0.25", &o), CPAUTH_ANSWER);
	assert_string_equal(o.reply, "ERROR#NOT_AUTHENTICATED");
	assert_int_equal(feed(&c, "PARAR", &o), CPAUTH_ANSWER);
	assert_string_equal(o.reply, "ERROR#NOT_AUTHENTICATED");
	assert_int_equal(feed(&c, "HEALTH_CHECK#MAD-01#CENTRAL_DOWN", &o), CPAUTH_FAIL);
	assert_string_equal(o.reply, "ERROR#NOT_AUTHENTICATED");
	assert_string_equal(o.why, "3 frames before authentication (last: HEALTH_CHECK)");

	/* Out of order steps are strikes too: AUTH before HELLO, HELLO again. */
	cpauth_conn_init(&c, 0, 0);
	assert_int_equal(feed(&c, "AUTH#00", &o), CPAUTH_ANSWER);
	assert_string_equal(o.reply, "ERROR#NOT_AUTHENTICATED");
	assert_int_equal(feed(&c, "HELLO#MAD-01", &o), CPAUTH_ANSWER); /* the challenge */
	assert_int_equal(strncmp(o.reply, "CHALLENGE#", 10), 0);
	assert_int_equal(feed(&c, "HELLO#MAD-01", &o), CPAUTH_ANSWER);
	assert_string_equal(o.reply, "ERROR#NOT_AUTHENTICATED");
	assert_int_equal(feed(&c, "HELLO#MAD-01", &o), CPAUTH_FAIL);
	assert_string_equal(o.why, "3 frames before authentication (last: HELLO)");

	/* Strikes before a good exchange still count, but it can succeed. */
	cpauth_conn_init(&c, 0, 0);
	assert_int_equal(feed(&c, "SET_KEY#x", &o), CPAUTH_ANSWER);
	assert_int_equal(feed(&c, "A#1#2#3#4#5#6#7#8#9#10#11#12#13#14#15#16#17", &o), CPAUTH_ANSWER);
	authenticate(&c);
}

static void test_deadline(void **st)
{
	(void)st;
	struct cpauth_conn c;
	struct out o;
	cpauth_conn_init(&c, 10, 0);
	assert_false(cpauth_expired(&c, 10 + CPAUTH_DEADLINE - 0.01));
	assert_true(cpauth_expired(&c, 10 + CPAUTH_DEADLINE));
	feed(&c, "HELLO#MAD-01", &o); /* a challenge does not extend it */
	assert_true(cpauth_expired(&c, 10 + CPAUTH_DEADLINE));
	cpauth_conn_init(&c, 10, 0);
	authenticate(&c);
	assert_false(cpauth_expired(&c, 1e9));
}

/* ---- limiter ---- */

static void test_limiter_blocks_after_five(void **st)
{
	(void)st;
	struct cpauth_limiter l;
	unsigned long refused = 0;
	int log_it = 0;
	cpauth_limiter_init(&l);
	for (int i = 0; i < CPAUTH_FAIL_MAX - 1; i++) {
		assert_int_equal(cpauth_failed(&l, "127.0.0.1", 100 + i), 0);
		assert_false(cpauth_blocked(&l, "127.0.0.1", 100 + i, NULL, NULL));
	}
	assert_int_equal(cpauth_failed(&l, "127.0.0.1", 110), 1);
	assert_true(cpauth_blocked(&l, "127.0.0.1", 110, &refused, &log_it));
	assert_int_equal(refused, 1);
	assert_true(log_it); /* the first refusal is logged */
	assert_true(cpauth_blocked(&l, "127.0.0.1", 111, &refused, &log_it));
	assert_int_equal(refused, 2);
	assert_false(log_it); /* then at most once every 10 s */
	assert_true(cpauth_blocked(&l, "127.0.0.1", 121, &refused, &log_it));
	assert_true(log_it);
	/* Another address is not affected. */
	assert_false(cpauth_blocked(&l, "127.0.0.2", 111, NULL, NULL));
	/* The block lasts 60 s. */
	assert_true(cpauth_blocked(&l, "127.0.0.1", 110 + CPAUTH_BLOCK - 0.01, NULL, NULL));
	assert_false(cpauth_blocked(&l, "127.0.0.1", 110 + CPAUTH_BLOCK, NULL, NULL));
	/* And the count starts again from zero afterwards. */
	for (int i = 0; i < CPAUTH_FAIL_MAX - 1; i++)
		assert_int_equal(cpauth_failed(&l, "127.0.0.1", 200 + i), 0);
	assert_false(cpauth_blocked(&l, "127.0.0.1", 205, NULL, NULL));
}

static void test_limiter_window(void **st)
{
	(void)st;
	struct cpauth_limiter l;
	cpauth_limiter_init(&l);
	/* One failure every 20 s: never 5 within 60 s. */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(cpauth_failed(&l, "10.0.0.1", 1000 + 20.0 * i), 0);
		assert_false(cpauth_blocked(&l, "10.0.0.1", 1000 + 20.0 * i, NULL, NULL));
	}
	/* Every 15 s: the 5th spans exactly 60 s, which counts. */
	cpauth_limiter_init(&l);
	int blocked_at = -1;
	for (int i = 0; i < 5 && blocked_at < 0; i++)
		if (cpauth_failed(&l, "10.0.0.1", 15.0 * i))
			blocked_at = i;
	assert_int_equal(blocked_at, 4);
}

static void test_limiter_bounded_and_keeps_blocks(void **st)
{
	(void)st;
	struct cpauth_limiter l;
	char a[32];
	cpauth_limiter_init(&l);
	for (int i = 0; i < CPAUTH_FAIL_MAX; i++)
		cpauth_failed(&l, "192.168.1.1", 1.0 + i * 0.1);
	assert_true(cpauth_blocked(&l, "192.168.1.1", 2, NULL, NULL));
	/* A flood of other addresses failing once each does not lift it. */
	for (int i = 0; i < 1000; i++) {
		snprintf(a, sizeof a, "10.1.%d.%d", i / 250, i % 250);
		cpauth_failed(&l, a, 3 + i * 0.01);
	}
	assert_true(cpauth_blocked(&l, "192.168.1.1", 20, NULL, NULL));
	/* All entries blocked: a newcomer takes the block that ends first. */
	cpauth_limiter_init(&l);
	for (int k = 0; k < CPAUTH_ADDRS; k++) {
		snprintf(a, sizeof a, "10.2.0.%d", k);
		for (int i = 0; i < CPAUTH_FAIL_MAX; i++)
			cpauth_failed(&l, a, 1.0 + k);
	}
	for (int i = 0; i < CPAUTH_FAIL_MAX; i++)
		cpauth_failed(&l, "10.3.0.1", 5);
	assert_true(cpauth_blocked(&l, "10.3.0.1", 6, NULL, NULL));
	assert_false(cpauth_blocked(&l, "10.2.0.0", 6, NULL, NULL)); /* the one evicted */
	for (int k = 1; k < CPAUTH_ADDRS; k++) {
		snprintf(a, sizeof a, "10.2.0.%d", k);
		assert_true(cpauth_blocked(&l, a, 6, NULL, NULL));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_passes_everything),
		cmocka_unit_test(test_good_exchange),
		cmocka_unit_test(test_optional_trailing_field_in_hello),
		cmocka_unit_test(test_wrong_answers_fail),
		cmocka_unit_test(test_answer_is_bound_to_its_nonce),
		cmocka_unit_test(test_hello_for_another_cp),
		cmocka_unit_test(test_three_strikes),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_limiter_blocks_after_five),
		cmocka_unit_test(test_limiter_window),
		cmocka_unit_test(test_limiter_bounded_and_keeps_blocks),
	};
	return cmocka_run_group_tests_name("cpauth", tests, NULL, NULL);
}
