/* Unit tests of the crypto building blocks (evcharging(7) SECURITY):
 * known answers from the RFCs and from Python, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "evc/crypto.h"

static void assert_b64(const char *bytes, size_t n, const char *padded, const char *unpadded)
{
	char out[64];
	unsigned char back[64];
	size_t len = 99;

	assert_int_equal(crypto_b64url_encode(bytes, n, 1, out, sizeof out), strlen(padded));
	assert_string_equal(out, padded);
	assert_int_equal(crypto_b64url_encoded_len(n, 1), strlen(padded));
	assert_int_equal(crypto_b64url_encode(bytes, n, 0, out, sizeof out), strlen(unpadded));
	assert_string_equal(out, unpadded);
	assert_int_equal(crypto_b64url_encoded_len(n, 0), strlen(unpadded));

	assert_int_equal(crypto_b64url_decode(padded, strlen(padded), back, sizeof back, &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(back, bytes, n);
	len = 99;
	assert_int_equal(crypto_b64url_decode(unpadded, strlen(unpadded), back, sizeof back, &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(back, bytes, n);
}

/* RFC 4648 section 10, and the section 9 examples whose standard spelling
 * has '+' and '/', which the url alphabet spells '-' and '_'. */
static void test_b64url_known(void **state)
{
	(void)state;
	assert_b64("", 0, "", "");
	assert_b64("f", 1, "Zg==", "Zg");
	assert_b64("fo", 2, "Zm8=", "Zm8");
	assert_b64("foo", 3, "Zm9v", "Zm9v");
	assert_b64("foob", 4, "Zm9vYg==", "Zm9vYg");
	assert_b64("fooba", 5, "Zm9vYmE=", "Zm9vYmE");
	assert_b64("foobar", 6, "Zm9vYmFy", "Zm9vYmFy");
	assert_b64("\x14\xfb\x9c\x03\xd9\x7e", 6, "FPucA9l-", "FPucA9l-");
	assert_b64("\x14\xfb\x9c\x03\xd9", 5, "FPucA9k=", "FPucA9k");
	assert_b64("\x14\xfb\x9c\x03", 4, "FPucAw==", "FPucAw");
	assert_b64("\xfb\xff", 2, "-_8=", "-_8");
	assert_b64("\xfb\xef\xbe", 3, "----", "----");
	assert_b64("\xff\xff\xff", 3, "____", "____");
}

static void assert_b64_refused(const char *s, size_t len)
{
	unsigned char out[64];
	size_t n = 12345;

	if (crypto_b64url_decode(s, len, out, sizeof out, &n) != -1)
		fail_msg("decode accepted \"%.*s\" (%zu chars)", (int)len, s, len);
	assert_int_equal(n, 12345); /* untouched */
}

static void test_b64url_refused(void **state)
{
	static const char *bad[] = {
		"Z",        /* one character cannot hold a byte */
		"Zm9vY",    /* nor can one past a group */
		"Zg=",      /* padding present but short */
		"Zg===",    /* too much */
		"Zm8==",    /* 2 bytes take one '=' */
		"Zm9v=",    /* a whole group needs none */
		"Zm9v====", /* nor four */
		"=",        "==", "====", "=Zm9",
		"Zg==Zg==", /* padding inside */
		"Zh==",     /* unused bits set: 'h' is not the spelling of "f" */
		"Zm9=",     /* ditto for two bytes */
		"Zm+v",     /* standard alphabet */
		"Zm/v",     "Zm9 v", " Zm9v", "Zm9v ", "Zm9v\n", "Zm9v\r\n", "Zm9\tv", "Zm.v", "Zm9v!",
		"\xc3\xa9xy", /* UTF-8 letters are not base64 */
	};
	(void)state;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_b64_refused(bad[i], strlen(bad[i]));
	/* an embedded NUL is a bad character, not an end */
	assert_b64_refused("Zm\0v", 4);
	/* every byte that is not of the alphabet, in every position */
	for (int c = 0; c < 256; c++) {
		char s[5] = "Zm9v";
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')
			continue;
		for (int pos = 0; pos < 4; pos++) {
			memcpy(s, "Zm9v", 4);
			s[pos] = (char)c;
			assert_b64_refused(s, 4);
		}
	}
}

static void test_b64url_bounds(void **state)
{
	unsigned char out[8];
	char text[16];
	size_t n = 0;
	(void)state;

	/* decode reads exactly len characters, whatever follows */
	assert_int_equal(crypto_b64url_decode("Zm9vYmFy", 4, out, sizeof out, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "foo", 3);
	/* room for exactly what it decodes to, and one byte less */
	assert_int_equal(crypto_b64url_decode("Zm9vYmFy", 8, out, 6, &n), 0);
	assert_int_equal(crypto_b64url_decode("Zm9vYmFy", 8, out, 5, &n), -1);
	assert_int_equal(crypto_b64url_decode("Zm9vYmE=", 8, out, 5, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(crypto_b64url_decode("Zm9vYmE=", 8, out, 4, &n), -1);

	/* encode needs room for the text and its NUL, no more */
	assert_int_equal(crypto_b64url_encode("fooba", 5, 1, text, 9), 8);
	assert_string_equal(text, "Zm9vYmE=");
	memset(text, 'x', sizeof text);
	assert_int_equal(crypto_b64url_encode("fooba", 5, 1, text, 8), 0);
	assert_int_equal(text[0], '\0');
	assert_int_equal(crypto_b64url_encode("fooba", 5, 0, text, 8), 7);
	assert_string_equal(text, "Zm9vYmE");
	assert_int_equal(crypto_b64url_encode("fooba", 5, 0, text, 7), 0);

	assert_int_equal(crypto_b64url_decoded_max(0), 0);
	assert_int_equal(crypto_b64url_decoded_max(2), 1);
	assert_int_equal(crypto_b64url_decoded_max(3), 2);
	assert_int_equal(crypto_b64url_decoded_max(4), 3);
	assert_int_equal(crypto_b64url_decoded_max(44), 33);
	assert_int_equal(crypto_b64url_encoded_len(SIZE_MAX, 1), SIZE_MAX);
	assert_int_equal(crypto_b64url_encode("x", SIZE_MAX, 1, text, sizeof text), 0);
}

/* Round trips of every length across the slice sizes the encoder and the
 * decoder work in (48 bytes, 64 characters). */
static void test_b64url_round_trip(void **state)
{
	unsigned char in[400], back[400];
	char text[600];
	char err[EVC_ERR_LEN];
	(void)state;

	assert_int_equal(crypto_random(in, sizeof in, err), 0);
	for (size_t n = 0; n <= sizeof in; n++) {
		for (int pad = 0; pad <= 1; pad++) {
			size_t len = crypto_b64url_encode(in, n, pad, text, sizeof text), got = 0;
			assert_int_equal(len, crypto_b64url_encoded_len(n, pad));
			assert_int_equal(strlen(text), len);
			assert_int_equal(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="),
					 len);
			assert_int_equal(crypto_b64url_decode(text, len, back, n, &got), 0);
			assert_int_equal(got, n);
			assert_memory_equal(back, in, n);
		}
	}
}

static void test_hex(void **state)
{
	char out[2 * 4 + 1];
	unsigned char b[4];
	(void)state;

	crypto_hex("\x00\x01\xab\xff", 4, out);
	assert_string_equal(out, "0001abff");
	crypto_hex("", 0, out);
	assert_string_equal(out, "");
	assert_int_equal(crypto_unhex("0001abff", b, 4), 0);
	assert_memory_equal(b, "\x00\x01\xab\xff", 4);
	assert_int_equal(crypto_unhex("0001ABFF", b, 4), -1); /* lowercase only */
	assert_int_equal(crypto_unhex("0001abf", b, 4), -1);
	assert_int_equal(crypto_unhex("0001abff0", b, 4), -1);
	assert_int_equal(crypto_unhex("0001abfg", b, 4), -1);
	assert_int_equal(crypto_unhex("0001ab f", b, 4), -1);
	assert_int_equal(crypto_unhex("", b, 4), -1);
	assert_int_equal(crypto_unhex(NULL, b, 4), -1);
	assert_int_equal(crypto_unhex("", b, 0), 0);
}

static void test_sha256(void **state)
{
	char hex[65];
	(void)state;

	crypto_sha256_hex("abc", 3, hex); /* FIPS 180-2 */
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	crypto_sha256_hex(NULL, 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void assert_hmac(const void *key, size_t klen, const void *msg, size_t mlen, const char *want)
{
	unsigned char mac[32];
	char hex[65];

	crypto_hmac_sha256(key, klen, msg, mlen, mac);
	crypto_hex(mac, sizeof mac, hex);
	assert_string_equal(hex, want);
}

/* RFC 4231 section 4 test cases 1 to 7 (case 5 is truncated to 128 bits
 * there, so its first 32 digits are what the RFC states). */
static void test_hmac_rfc4231(void **state)
{
	unsigned char k[131], m[152];
	unsigned char mac[32];
	char hex[65];
	(void)state;

	memset(k, 0x0b, 20);
	assert_hmac(k, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	assert_hmac("Jefe", 4, "what do ya want for nothing?", 28,
		    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	memset(k, 0xaa, 20);
	memset(m, 0xdd, 50);
	assert_hmac(k, 20, m, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
	for (int i = 0; i < 25; i++)
		k[i] = (unsigned char)(i + 1);
	memset(m, 0xcd, 50);
	assert_hmac(k, 25, m, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
	memset(k, 0x0c, 20);
	crypto_hmac_sha256(k, 20, "Test With Truncation", 20, mac);
	crypto_hex(mac, 16, hex);
	assert_string_equal(hex, "a3b6167473100ee06e0c796c2955552b");
	memset(k, 0xaa, 131);
	assert_hmac(k, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54,
		    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	const char *t7 = "This is a test using a larger than block-size key and a larger than block-size data. The key "
			 "needs to be hashed before being used by the HMAC algorithm.";
	assert_hmac(k, 131, t7, strlen(t7), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
	/* python3 -c 'import hmac,hashlib; print(hmac.new(b"",b"",hashlib.sha256).hexdigest())' */
	assert_hmac(NULL, 0, NULL, 0, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

static void test_ct_equal_and_wipe(void **state)
{
	unsigned char a[64], zero[64] = {0};
	(void)state;

	assert_int_equal(crypto_ct_equal("abcd", "abcd", 4), 1);
	assert_int_equal(crypto_ct_equal("abcd", "abce", 4), 0);
	assert_int_equal(crypto_ct_equal("xbcd", "abcd", 4), 0);
	assert_int_equal(crypto_ct_equal("a", "b", 0), 1);
	memset(a, 0x5a, sizeof a);
	crypto_wipe(a, sizeof a);
	assert_memory_equal(a, zero, sizeof a);
	crypto_wipe(NULL, 10); /* harmless */
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* getrandom may return short or fail with EINTR when a signal lands in a
 * large read; crypto_random must still fill every byte. */
static void test_random(void **state)
{
	enum { BIG = 16 << 20 };
	unsigned char a[32], b[32], tail[4096] = {0};
	char err[EVC_ERR_LEN] = "";
	struct sigaction sa;
	struct itimerval it = {{0, 200}, {0, 200}}, off = {{0, 0}, {0, 0}};
	unsigned char *big = calloc(1, BIG);
	(void)state;

	assert_int_equal(crypto_random(a, sizeof a, err), 0);
	assert_int_equal(crypto_random(b, sizeof b, err), 0);
	assert_int_equal(crypto_ct_equal(a, b, sizeof a), 0);
	assert_int_equal(crypto_random(a, 0, err), 0);

	assert_non_null(big);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm; /* no SA_RESTART: reads get interrupted */
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	for (int i = 0; i < 4; i++) {
		memset(big + BIG - sizeof tail, 0, sizeof tail);
		assert_int_equal(crypto_random(big, BIG, err), 0);
		/* the last 4 KiB all zero has probability 2^-32768 */
		assert_memory_not_equal(big + BIG - sizeof tail, tail, sizeof tail);
	}
	setitimer(ITIMER_REAL, &off, NULL);
	/* the handler stays: an alarm still in flight (valgrind delivers
	 * them late) must not kill the process under the default action */
	print_message("# %d alarms landed during 4 reads of 16 MiB\n", (int)alarms);
	free(big);
}

static void test_secret(void **state)
{
	char s[CRYPTO_SECRET_LEN + 1], t[CRYPTO_SECRET_LEN + 1], h[65];
	char err[EVC_ERR_LEN];
	const char *known = "HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9k";
	(void)state;

	assert_int_equal(crypto_new_secret(s, err), 0);
	assert_int_equal(crypto_new_secret(t, err), 0);
	assert_int_equal(strlen(s), CRYPTO_SECRET_LEN);
	assert_int_equal(crypto_valid_secret(s), 1);
	assert_string_not_equal(s, t);

	assert_int_equal(crypto_valid_secret(known), 1);
	assert_int_equal(crypto_valid_secret(NULL), 0);
	assert_int_equal(crypto_valid_secret(""), 0);
	assert_int_equal(crypto_valid_secret("HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9"), 0);   /* 42 */
	assert_int_equal(crypto_valid_secret("HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9kA"), 0); /* 44 */
	assert_int_equal(crypto_valid_secret("HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9k="), 0); /* padded */
	assert_int_equal(crypto_valid_secret("HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2Qp+9k"), 0);
	assert_int_equal(crypto_valid_secret("HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2Qp E9k"), 0);
	/* 'l' leaves bits past the 32nd byte set: not a spelling of 32 bytes */
	assert_int_equal(crypto_valid_secret("HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9l"), 0);

	/* python3 -c 'import hashlib; print(hashlib.sha256(b"HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9k").hexdigest())' */
	crypto_secret_hash(known, h);
	assert_string_equal(h, "859e8e4e07ac2363928e6b90825c965380b57fac62d9e98c7156f3af5fa85dbe");
	assert_int_equal(crypto_secret_matches(known, h), 1);
	assert_int_equal(crypto_secret_matches("HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9A", h), 0);
	assert_int_equal(crypto_secret_matches(known, "859E8E4E07AC2363928E6B90825C965380B57FAC62D9E98C7156F3AF5FA85DBE"), 0);
	assert_int_equal(crypto_secret_matches(known, "859e8e4e07ac2363928e6b90825c965380b57fac62d9e98c7156f3af5fa85db"), 0);
	assert_int_equal(crypto_secret_matches(known, "859e8e4e07ac2363928e6b90825c965380b57fac62d9e98c7156f3af5fa85dbe0"), 0);
	assert_int_equal(crypto_secret_matches(NULL, h), 0);
	assert_int_equal(crypto_secret_matches(known, NULL), 0);
}

static void test_challenge(void **state)
{
	const char *secret = "HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9k";
	/* python3 -c 'import hmac,hashlib; print(hmac.new(
	 *   b"HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9k",
	 *   bytes(range(16)) + b"MAD-01", hashlib.sha256).hexdigest())' */
	const char *want = "88e847febf0820905fa2072f6c5cbb2b63a2d2748e1cf730117ff93d7b999792";
	unsigned char nonce[16], n2[16];
	char hex[33], ans[65], bad[66];
	char err[EVC_ERR_LEN];
	(void)state;

	for (int i = 0; i < 16; i++)
		nonce[i] = (unsigned char)i;
	crypto_challenge_answer(secret, nonce, "MAD-01", ans);
	assert_string_equal(ans, want);
	assert_int_equal(crypto_challenge_check(secret, nonce, "MAD-01", want), 1);

	/* any one digit changed, in every position */
	for (int i = 0; i < 64; i++) {
		strcpy(bad, want);
		bad[i] = bad[i] == '0' ? '1' : '0';
		assert_int_equal(crypto_challenge_check(secret, nonce, "MAD-01", bad), 0);
	}
	/* the right answer in uppercase, short, long, or for something else */
	for (int i = 0; i < 64; i++)
		bad[i] = (char)(want[i] >= 'a' ? want[i] - 32 : want[i]);
	bad[64] = '\0';
	assert_int_equal(crypto_challenge_check(secret, nonce, "MAD-01", bad), 0);
	strcpy(bad, want);
	bad[63] = '\0';
	assert_int_equal(crypto_challenge_check(secret, nonce, "MAD-01", bad), 0);
	strcpy(bad, want);
	strcat(bad, "0");
	assert_int_equal(crypto_challenge_check(secret, nonce, "MAD-01", bad), 0);
	assert_int_equal(crypto_challenge_check(secret, nonce, "MAD-02", want), 0);
	assert_int_equal(crypto_challenge_check("HPWLGmdud8frtLs5iwRxzI5eEcntIWDKDPDBX2QpE9A", nonce, "MAD-01", want), 0);
	nonce[15] ^= 1;
	assert_int_equal(crypto_challenge_check(secret, nonce, "MAD-01", want), 0);
	assert_int_equal(crypto_challenge_check(secret, nonce, "MAD-01", NULL), 0);
	assert_int_equal(crypto_challenge_check(secret, nonce, "MAD-01", ""), 0);

	/* fresh nonces: 32 lowercase hex digits of the bytes, never twice */
	assert_int_equal(crypto_challenge_new(nonce, hex, err), 0);
	assert_int_equal(strlen(hex), 32);
	assert_int_equal(crypto_unhex(hex, n2, 16), 0);
	assert_memory_equal(n2, nonce, 16);
	assert_int_equal(crypto_challenge_new(n2, hex, err), 0);
	assert_memory_not_equal(n2, nonce, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url_known),
		cmocka_unit_test(test_b64url_refused),
		cmocka_unit_test(test_b64url_bounds),
		cmocka_unit_test(test_b64url_round_trip),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_ct_equal_and_wipe),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_secret),
		cmocka_unit_test(test_challenge),
	};

	return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
