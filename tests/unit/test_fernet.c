/* Unit tests of Fernet tokens (evcharging(7) SECURITY): the vectors of
 * the Fernet specification (tests/vectors/fernet, read via $EVC_SRCDIR),
 * round trips, limits, and every way a token can be cut or altered.
 * $EVC_SRCDIR (set by make check) or else the source tree it was built
 * from locates the vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "evc/crypto.h"
#include "evc/fernet.h"

static const char *VKEY = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

static json_t *load_vectors(const char *name)
{
	const char *top = getenv("EVC_SRCDIR");
	char path[4096];
	json_error_t jerr;
	json_t *v;

	if (top == NULL)
		top = EVC_TOP_SRCDIR;
	snprintf(path, sizeof path, "%s/tests/vectors/fernet/%s", top, name);
	v = json_load_file(path, 0, &jerr);
	if (v == NULL)
		fail_msg("%s: %s", path, jerr.text);
	if (!json_is_array(v) || json_array_size(v) == 0)
		fail_msg("%s: not a non-empty array", path);
	return v;
}

static const char *str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_string(v))
		fail_msg("vector without string '%s'", k);
	return json_string_value(v);
}

/* "1985-10-26T01:20:00-07:00" (RFC 3339, as the vectors write time). */
static uint64_t rfc3339(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, used = 0;
	char sign = 'Z';

	memset(&tm, 0, sizeof tm);
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
		fail_msg("bad time %s", s);
	if (s[used] == '+' || s[used] == '-') {
		sign = s[used];
		if (sscanf(s + used + 1, "%2d:%2d", &oh, &om) != 2)
			fail_msg("bad offset in %s", s);
	} else if (s[used] != 'Z') {
		fail_msg("bad offset in %s", s);
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	int64_t t = (int64_t)timegm(&tm), off = oh * 3600 + om * 60;
	return (uint64_t)(sign == '-' ? t + off : sign == '+' ? t - off : t);
}

static void test_generate_vectors(void **state)
{
	json_t *vs = load_vectors("generate.json"), *v;
	size_t i;
	(void)state;

	json_array_foreach(vs, i, v) {
		struct fernet_key k;
		unsigned char iv[16];
		char err[EVC_ERR_LEN] = "";
		json_t *ivj = json_object_get(v, "iv");
		const char *src = str(v, "src");

		assert_int_equal(json_array_size(ivj), 16);
		for (size_t j = 0; j < 16; j++)
			iv[j] = (unsigned char)json_integer_value(json_array_get(ivj, j));
		assert_int_equal(fernet_key_parse(str(v, "secret"), &k), 0);
		char *tok = fernet_encrypt(&k, src, strlen(src), rfc3339(str(v, "now")), iv, err);
		if (tok == NULL)
			fail_msg("generate %zu: %s", i, err);
		assert_string_equal(tok, str(v, "token"));
		print_message("# generate %zu: \"%s\" gives the exact token\n", i, src);
		free(tok);
	}
	json_decref(vs);
}

static void test_verify_vectors(void **state)
{
	json_t *vs = load_vectors("verify.json"), *v;
	size_t i;
	(void)state;

	json_array_foreach(vs, i, v) {
		struct fernet_key k;
		unsigned char *plain = NULL;
		size_t n = 0;
		const char *tok = str(v, "token"), *src = str(v, "src");

		assert_int_equal(fernet_key_parse(str(v, "secret"), &k), 0);
		enum fernet_status st = fernet_decrypt(&k, tok, strlen(tok), rfc3339(str(v, "now")),
						       json_integer_value(json_object_get(v, "ttl_sec")), &plain, &n);
		if (st != FERNET_OK)
			fail_msg("verify %zu: %s", i, fernet_status_name(st));
		assert_int_equal(n, strlen(src));
		assert_memory_equal(plain, src, n);
		assert_int_equal(plain[n], '\0');
		print_message("# verify %zu: decrypts to \"%s\"\n", i, (char *)plain);
		free(plain);
	}
	json_decref(vs);
}

/* What each invalid vector must give; a vector not listed here must still
 * be refused, with whatever status. */
static const struct {
	const char *desc;
	enum fernet_status st;
} expected[] = {
	{"incorrect mac", FERNET_BAD_HMAC},
	{"too short", FERNET_BAD_TOKEN},
	{"invalid base64", FERNET_BAD_TOKEN},
	{"payload size not multiple of block size", FERNET_BAD_TOKEN},
	{"payload padding error", FERNET_BAD_PADDING},
	{"far-future TS (unacceptable clock skew)", FERNET_FUTURE},
	{"expired TTL", FERNET_EXPIRED},
	{"incorrect IV (causes padding error)", FERNET_BAD_PADDING},
};

static void test_invalid_vectors(void **state)
{
	json_t *vs = load_vectors("invalid.json"), *v;
	size_t i, matched = 0;
	(void)state;

	json_array_foreach(vs, i, v) {
		struct fernet_key k;
		unsigned char *plain = (unsigned char *)"x";
		size_t n = 7;
		const char *tok = str(v, "token"), *desc = str(v, "desc");

		assert_int_equal(fernet_key_parse(str(v, "secret"), &k), 0);
		enum fernet_status st = fernet_decrypt(&k, tok, strlen(tok), rfc3339(str(v, "now")),
						       json_integer_value(json_object_get(v, "ttl_sec")), &plain, &n);
		print_message("# invalid %zu (%s): %s\n", i, desc, fernet_status_name(st));
		if (st == FERNET_OK)
			fail_msg("invalid vector \"%s\" accepted", desc);
		assert_null(plain);
		assert_int_equal(n, 0);
		for (size_t j = 0; j < sizeof expected / sizeof expected[0]; j++) {
			if (strcmp(expected[j].desc, desc) == 0) {
				if (st != expected[j].st)
					fail_msg("\"%s\": %s, expected %s", desc, fernet_status_name(st),
						 fernet_status_name(expected[j].st));
				matched++;
			}
		}
	}
	assert_int_equal(matched, sizeof expected / sizeof expected[0]);
	json_decref(vs);
}

static void new_key(struct fernet_key *k)
{
	char b64[FERNET_KEY_LEN + 1], err[EVC_ERR_LEN];

	assert_int_equal(fernet_key_new(b64, err), 0);
	assert_int_equal(fernet_key_parse(b64, k), 0);
}

static enum fernet_status dec(const struct fernet_key *k, const char *tok, uint64_t now, int64_t ttl,
			      unsigned char **plain, size_t *n)
{
	return fernet_decrypt(k, tok, strlen(tok), now, ttl, plain, n);
}

static void test_round_trip(void **state)
{
	static unsigned char buf[FERNET_PLAIN_MAX + 1];
	struct fernet_key k;
	char err[EVC_ERR_LEN] = "";
	const uint64_t now = 1764600000;
	size_t sizes[] = {0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 4096, 5000, FERNET_PLAIN_MAX};
	(void)state;

	new_key(&k);
	assert_int_equal(crypto_random(buf, sizeof buf, err), 0);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		unsigned char *plain = NULL;
		size_t n = 0;
		char *tok = fernet_encrypt(&k, buf, sizes[i], now, NULL, err);

		if (tok == NULL)
			fail_msg("%zu bytes: %s", sizes[i], err);
		assert_true(strlen(tok) <= FERNET_TOKEN_MAX);
		assert_int_equal(strlen(tok) % 4, 0);
		assert_int_equal(dec(&k, tok, now, 60, &plain, &n), FERNET_OK);
		assert_int_equal(n, sizes[i]);
		assert_memory_equal(plain, buf, n);
		assert_int_equal(plain[n], '\0');
		free(plain);
		free(tok);
	}
	/* one byte more than fits is refused, with a reason */
	assert_null(fernet_encrypt(&k, buf, FERNET_PLAIN_MAX + 1, now, NULL, err));
	assert_non_null(strstr(err, "49088 bytes"));

	/* a random IV each time: the same text never gives the same token */
	char *a = fernet_encrypt(&k, "same", 4, now, NULL, err), *b = fernet_encrypt(&k, "same", 4, now, NULL, err);
	assert_string_not_equal(a, b);
	free(a);
	free(b);
}

static void test_time_rules(void **state)
{
	struct fernet_key k;
	char err[EVC_ERR_LEN] = "";
	unsigned char *plain = NULL;
	size_t n = 0;
	const uint64_t t = 1764600000;
	char *tok;
	(void)state;

	new_key(&k);
	tok = fernet_encrypt(&k, "x", 1, t, NULL, err);
	/* age: exactly ttl is still fresh, one second more is not */
	assert_int_equal(dec(&k, tok, t + 60, 60, &plain, &n), FERNET_OK);
	free(plain);
	assert_int_equal(dec(&k, tok, t + 61, 60, &plain, &n), FERNET_EXPIRED);
	assert_null(plain);
	/* future: up to FERNET_MAX_CLOCK_SKEW s ahead is fine */
	assert_int_equal(dec(&k, tok, t - FERNET_MAX_CLOCK_SKEW, 60, &plain, &n), FERNET_OK);
	free(plain);
	assert_int_equal(dec(&k, tok, t - FERNET_MAX_CLOCK_SKEW - 1, 60, &plain, &n), FERNET_FUTURE);
	/* no ttl: time is not looked at, as in Python's cryptography */
	assert_int_equal(dec(&k, tok, t + 100000000, 0, &plain, &n), FERNET_OK);
	free(plain);
	assert_int_equal(dec(&k, tok, 0, -1, &plain, &n), FERNET_OK);
	free(plain);
	free(tok);

	/* the extremes of the 64-bit time do not wrap around */
	tok = fernet_encrypt(&k, "x", 1, UINT64_MAX, NULL, err);
	assert_int_equal(dec(&k, tok, t, INT64_MAX, &plain, &n), FERNET_FUTURE);
	assert_int_equal(dec(&k, tok, UINT64_MAX, 1, &plain, &n), FERNET_OK);
	free(plain);
	free(tok);
	tok = fernet_encrypt(&k, "x", 1, 0, NULL, err);
	assert_int_equal(dec(&k, tok, UINT64_MAX, INT64_MAX, &plain, &n), FERNET_EXPIRED);
	assert_int_equal(dec(&k, tok, INT64_MAX, INT64_MAX, &plain, &n), FERNET_OK);
	free(plain);
	free(tok);
}

static void test_key_parse(void **state)
{
	struct fernet_key k, before;
	char b64[FERNET_KEY_LEN + 1], err[EVC_ERR_LEN];
	static const char *bad[] = {
		"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4",   /* unpadded */
		"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4==", /* too much */
		"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\n",
		" cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=",
		"cw/0x689RpI+jtRR7oE8h/eQsKImvJapLeSbXpwF4e4=",  /* standard alphabet */
		"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e5=",  /* bits past 32 bytes */
		"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4A",  /* 44 chars, 33 bytes */
		"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpw=",      /* short */
		"",
	};
	(void)state;

	assert_int_equal(fernet_key_parse(VKEY, &k), 0);
	/* the halves: bytes 0..15 sign, 16..31 encrypt */
	unsigned char raw[32];
	size_t n;
	assert_int_equal(crypto_b64url_decode(VKEY, strlen(VKEY), raw, sizeof raw, &n), 0);
	assert_memory_equal(k.sign, raw, 16);
	assert_memory_equal(k.enc, raw + 16, 16);

	before = k;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (fernet_key_parse(bad[i], &k) != -1)
			fail_msg("key \"%s\" accepted", bad[i]);
		assert_memory_equal(&k, &before, sizeof k); /* untouched */
	}
	assert_int_equal(fernet_key_parse(NULL, &k), -1);

	assert_int_equal(fernet_key_new(b64, err), 0);
	assert_int_equal(strlen(b64), FERNET_KEY_LEN);
	assert_int_equal(b64[43], '=');
	assert_int_equal(fernet_key_parse(b64, &k), 0);
	fernet_key_wipe(&k);
	memset(raw, 0, sizeof raw);
	assert_memory_equal(&k, raw, sizeof k);
}

/* An independent encoder (libcrypto calls written out here, not
 * fernet.c's), to build authentic tokens fernet_encrypt refuses to make. */
static char *build_token(const char *key_b64, uint64_t ts, const unsigned char *plain, size_t n)
{
	unsigned char key[32], iv[16] = {7}, mac[32];
	size_t keylen = 0, ctcap = n + 16, rawlen;
	unsigned char *raw = malloc(25 + ctcap + 32);
	int l1 = 0, l2 = 0;
	unsigned int maclen = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	assert_int_equal(crypto_b64url_decode(key_b64, strlen(key_b64), key, sizeof key, &keylen), 0);
	raw[0] = 0x80;
	for (int i = 0; i < 8; i++)
		raw[1 + i] = (unsigned char)(ts >> (56 - 8 * i));
	memcpy(raw + 9, iv, 16);
	assert_true(EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key + 16, iv));
	assert_true(EVP_EncryptUpdate(ctx, raw + 25, &l1, plain, (int)n));
	assert_true(EVP_EncryptFinal_ex(ctx, raw + 25 + l1, &l2));
	EVP_CIPHER_CTX_free(ctx);
	rawlen = 25 + (size_t)(l1 + l2);
	assert_non_null(HMAC(EVP_sha256(), key, 16, raw, rawlen, mac, &maclen));
	memcpy(raw + rawlen, mac, 32);
	rawlen += 32;

	char *text = malloc(rawlen / 3 * 4 + 8);
	int len = EVP_EncodeBlock((unsigned char *)text, raw, (int)rawlen);
	for (int i = 0; i < len; i++)
		text[i] = text[i] == '+' ? '-' : text[i] == '/' ? '_' : text[i];
	free(raw);
	return text;
}

static void test_size_limit(void **state)
{
	static unsigned char buf[FERNET_PLAIN_MAX + 17];
	struct fernet_key k;
	unsigned char *plain = NULL;
	size_t n = 0;
	char *tok;
	(void)state;

	assert_int_equal(fernet_key_parse(VKEY, &k), 0);
	memset(buf, 'a', sizeof buf);
	/* the independent encoder agrees with ours at the limit */
	tok = build_token(VKEY, 1000, buf, FERNET_PLAIN_MAX);
	assert_true(strlen(tok) <= FERNET_TOKEN_MAX);
	assert_int_equal(dec(&k, tok, 1000, 0, &plain, &n), FERNET_OK);
	assert_int_equal(n, FERNET_PLAIN_MAX);
	free(plain);
	free(tok);
	/* one block more: authentic, but longer than FERNET_TOKEN_MAX */
	tok = build_token(VKEY, 1000, buf, FERNET_PLAIN_MAX + 1);
	print_message("# an authentic token of %zu characters is refused\n", strlen(tok));
	assert_true(strlen(tok) > FERNET_TOKEN_MAX);
	assert_int_equal(dec(&k, tok, 1000, 0, &plain, &n), FERNET_BAD_TOKEN);
	assert_null(plain);
	free(tok);
	/* and FERNET_TOKEN_MAX + 1 characters of anything */
	char *junk = malloc(FERNET_TOKEN_MAX + 1);
	memset(junk, 'A', FERNET_TOKEN_MAX + 1);
	assert_int_equal(fernet_decrypt(&k, junk, FERNET_TOKEN_MAX + 1, 1000, 0, &plain, &n), FERNET_BAD_TOKEN);
	free(junk);
}

/* Every prefix of a valid token is refused (so is every one-character
 * change), for plaintexts that give every kind of padding. The token is
 * copied into a buffer of exactly its length without a NUL, so reading
 * past len shows under ASan and valgrind. */
static void test_cut_and_altered(void **state)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=";
	struct fernet_key k;
	char err[EVC_ERR_LEN] = "";
	const uint64_t now = 1764600000;
	size_t tried = 0;
	(void)state;

	new_key(&k);
	for (size_t len = 0; len < 40; len += 3) {
		unsigned char *plain = NULL;
		size_t n = 0;
		char *tok = fernet_encrypt(&k, "0123456789abcdefghijklmnopqrstuvwxyzABCD", len, now, NULL, err);
		size_t tlen = strlen(tok);
		char *exact = malloc(tlen);

		memcpy(exact, tok, tlen);
		assert_int_equal(fernet_decrypt(&k, exact, tlen, now, 60, &plain, &n), FERNET_OK);
		free(plain);
		for (size_t cut = 0; cut < tlen; cut++, tried++) {
			enum fernet_status st = fernet_decrypt(&k, exact, cut, now, 60, &plain, &n);
			if (st == FERNET_OK)
				fail_msg("the first %zu of %zu characters were accepted", cut, tlen);
			assert_null(plain);
		}
		for (size_t pos = 0; pos < tlen; pos++) {
			char was = exact[pos];
			for (size_t a = 0; a < sizeof alphabet - 1; a += 5) {
				if (alphabet[a] == was)
					continue;
				exact[pos] = alphabet[a];
				if (fernet_decrypt(&k, exact, tlen, now, 60, &plain, &n) == FERNET_OK)
					fail_msg("character %zu changed to '%c' was accepted", pos, alphabet[a]);
				tried++;
			}
			exact[pos] = was;
		}
		free(exact);
		free(tok);
	}
	print_message("# %zu cut or altered tokens refused\n", tried);
}

static void test_wrong_key_and_status_names(void **state)
{
	struct fernet_key k1, k2;
	char err[EVC_ERR_LEN] = "";
	unsigned char *plain = NULL;
	size_t n = 0;
	(void)state;

	new_key(&k1);
	new_key(&k2);
	char *tok = fernet_encrypt(&k1, "hello", 5, 5, NULL, err);
	assert_int_equal(dec(&k2, tok, 5, 60, &plain, &n), FERNET_BAD_HMAC);
	/* the right signing half with another encryption half is authentic
	 * but does not decrypt to valid padding (with 255/256 odds; retry
	 * the odd lucky key rather than flake) */
	for (int i = 0; i < 8; i++) {
		memcpy(k2.sign, k1.sign, 16);
		enum fernet_status st = dec(&k2, tok, 5, 60, &plain, &n);
		if (st == FERNET_BAD_PADDING)
			break;
		assert_int_equal(st, FERNET_OK);
		free(plain);
		assert_true(i < 7);
		new_key(&k2);
	}
	free(tok);
	assert_int_equal(dec(&k1, "", 5, 60, &plain, &n), FERNET_BAD_TOKEN);
	assert_int_equal(fernet_decrypt(&k1, NULL, 0, 5, 60, &plain, &n), FERNET_BAD_TOKEN);

	assert_string_equal(fernet_status_name(FERNET_OK), "ok");
	assert_string_equal(fernet_status_name(FERNET_BAD_TOKEN), "bad token");
	assert_string_equal(fernet_status_name(FERNET_BAD_HMAC), "bad HMAC");
	assert_string_equal(fernet_status_name(FERNET_BAD_PADDING), "bad padding");
	assert_string_equal(fernet_status_name(FERNET_EXPIRED), "expired");
	assert_string_equal(fernet_status_name(FERNET_FUTURE), "from the future");
	assert_string_equal(fernet_status_name((enum fernet_status)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_vectors),
		cmocka_unit_test(test_verify_vectors),
		cmocka_unit_test(test_invalid_vectors),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_time_rules),
		cmocka_unit_test(test_key_parse),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_cut_and_altered),
		cmocka_unit_test(test_wrong_key_and_status_names),
	};

	return cmocka_run_group_tests_name("fernet", tests, NULL, NULL);
}
