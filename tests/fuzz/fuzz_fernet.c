/* libFuzzer target for Fernet tokens and base64url (evcharging(7)
 * SECURITY): the parsers Central runs on every telemetry message and the
 * decoders of secrets and keys. The first byte chooses:
 *   bits 0-1  one of four keys (the specification's vector key among them)
 *   bits 2-3  what the rest is:
 *     0  a token: decrypt never crashes or reads past the input; what it
 *        accepts encrypts back, with the token's own IV and time, to the
 *        very same text (one spelling per token);
 *     1  a token body without its HMAC: it is signed with the right key
 *        first, so decryption gets past the HMAC to the time and padding
 *        checks, and must never answer "bad HMAC";
 *     2  IV (16 bytes), time (8), plaintext: the round trip gives the
 *        plaintext back, and the token cut short or with any one character
 *        changed is refused;
 *     3  base64url text: what decodes encodes back to exactly that text.
 *   bits 4-5  the ttl: 0 (none), 60, 1, INT64_MAX
 *   bit 7     mode 2 with a random IV instead of the given one
 * Build and run: scripts/fuzz (reads the two lines below). */
// fuzz-sources: src/common/fernet.c src/common/crypto.c src/common/xalloc.c src/common/err.c
// fuzz-libs: -lcrypto
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/crypto.h"
#include "evc/fernet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                       \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			fprintf(stderr, "fuzz_fernet: check failed: %s (line %d)\n", #c, __LINE__);                 \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

#define NOW 499162801u /* the vectors' "now": 1985-10-26T01:20:01-07:00 */

static const char *const KEYS[4] = {
	"cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=",
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	"__________________________________________8=",
	"H8o5sRk9d2xqU1Jf4-6wGk1YkQ0rQm0yT3x0bC1hZ2U=",
};
static const int64_t TTLS[4] = {0, 60, 1, INT64_MAX};
static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=";

static uint64_t be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* An accepted token is the one fernet_encrypt makes of its plaintext with
 * its IV and time: the decoder admits no second spelling. */
static void check_canonical(const struct fernet_key *k, const char *tok, size_t len, const unsigned char *plain,
			    size_t plen)
{
	unsigned char *raw = malloc(crypto_b64url_decoded_max(len) + 1);
	size_t rawlen = 0;
	char err[EVC_ERR_LEN];

	CHECK(crypto_b64url_decode(tok, len, raw, crypto_b64url_decoded_max(len), &rawlen) == 0);
	char *again = fernet_encrypt(k, plain, plen, be64(raw + 1), raw + 9, err);
	CHECK(again != NULL);
	CHECK(strlen(again) == len && memcmp(again, tok, len) == 0);
	free(again);
	free(raw);
}

static void decrypt_checked(const struct fernet_key *k, const char *tok, size_t len, int64_t ttl,
			    enum fernet_status *out)
{
	unsigned char *plain = (unsigned char *)"junk";
	size_t plen = 99;
	enum fernet_status st = fernet_decrypt(k, tok, len, NOW, ttl, &plain, &plen);

	CHECK(st >= FERNET_OK && st <= FERNET_FUTURE);
	if (st == FERNET_OK) {
		CHECK(plain != NULL && plen <= len && plain[plen] == '\0');
		check_canonical(k, tok, len, plain, plen);
		free(plain);
	} else {
		CHECK(plain == NULL && plen == 0);
	}
	*out = st;
}

static void fuzz_token(const struct fernet_key *k, const uint8_t *d, size_t n, int64_t ttl)
{
	/* an exact-size copy: ASan sees any read past n */
	char *tok = malloc(n ? n : 1);
	enum fernet_status a, b;

	memcpy(tok, d, n);
	decrypt_checked(k, tok, n, ttl, &a);
	decrypt_checked(k, tok, n, ttl, &b);
	CHECK(a == b);
	free(tok);
}

static void fuzz_signed_body(const struct fernet_key *k, const uint8_t *d, size_t n, int64_t ttl)
{
	size_t rawlen = n + 32, textcap = crypto_b64url_encoded_len(rawlen, 1) + 1;
	enum fernet_status st;

	if (textcap > FERNET_TOKEN_MAX + 1)
		return;
	unsigned char *raw = malloc(rawlen);
	char *text = malloc(textcap);
	memcpy(raw, d, n);
	crypto_hmac_sha256(k->sign, sizeof k->sign, raw, n, raw + n);
	size_t len = crypto_b64url_encode(raw, rawlen, 1, text, textcap);
	CHECK(len == textcap - 1);
	decrypt_checked(k, text, len, ttl, &st);
	int shaped = n >= 1 + 8 + 16 + 16 && d[0] == 0x80 && (n - 25) % 16 == 0;
	CHECK(st != FERNET_BAD_HMAC);
	CHECK(shaped ? st != FERNET_BAD_TOKEN : st == FERNET_BAD_TOKEN);
	if (ttl <= 0)
		CHECK(st != FERNET_EXPIRED && st != FERNET_FUTURE);
	free(text);
	free(raw);
}

static void fuzz_round_trip(const struct fernet_key *k, const uint8_t *d, size_t n, int64_t ttl, int random_iv)
{
	unsigned char *plain = NULL;
	size_t plen = 0;
	char err[EVC_ERR_LEN];
	uint64_t when;

	if (n < 24 || n - 24 > FERNET_PLAIN_MAX)
		return;
	when = be64(d + 16);
	char *tok = fernet_encrypt(k, d + 24, n - 24, when, random_iv ? NULL : d, err);
	CHECK(tok != NULL);
	size_t len = strlen(tok);
	CHECK(len % 4 == 0 && len <= FERNET_TOKEN_MAX);
	/* decrypted at its own time it is fresh whatever the ttl */
	CHECK(fernet_decrypt(k, tok, len, when, ttl, &plain, &plen) == FERNET_OK);
	CHECK(plen == n - 24 && memcmp(plain, d + 24, plen) == 0);
	free(plain);

	/* a cut and a one-character change, where the input says */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 16777619u;
	size_t cut = h % len, pos = (h >> 8) % len;
	CHECK(fernet_decrypt(k, tok, cut, when, ttl, &plain, &plen) != FERNET_OK);
	char was = tok[pos];
	const char *at = strchr(ALPHABET, was);
	CHECK(at != NULL);
	tok[pos] = ALPHABET[((size_t)(at - ALPHABET) + 1 + (h >> 24) % 64) % 65];
	CHECK(tok[pos] != was);
	CHECK(fernet_decrypt(k, tok, len, when, ttl, &plain, &plen) != FERNET_OK);
	free(tok);
}

static void fuzz_b64(const uint8_t *d, size_t n)
{
	size_t cap = crypto_b64url_decoded_max(n), got = 0;
	unsigned char *out = malloc(cap ? cap : 1);
	const char *in = (const char *)d;

	if (crypto_b64url_decode(in, n, out, cap, &got) == 0) {
		int pad = n > 0 && in[n - 1] == '=';
		size_t tcap = crypto_b64url_encoded_len(got, pad) + 1;
		char *text = malloc(tcap);
		CHECK(crypto_b64url_encode(out, got, pad, text, tcap) == n);
		CHECK(memcmp(text, in, n) == 0);
		free(text);
		/* and one byte less room is refused, not overrun */
		if (got > 0)
			CHECK(crypto_b64url_decode(in, n, out, got - 1, &cap) == -1);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fernet_key keys[4];
	static int ready;

	if (!ready) {
		for (int i = 0; i < 4; i++)
			CHECK(fernet_key_parse(KEYS[i], &keys[i]) == 0);
		ready = 1;
	}
	if (size < 1)
		return 0;
	const struct fernet_key *k = &keys[data[0] & 3];
	int64_t ttl = TTLS[(data[0] >> 4) & 3];
	switch ((data[0] >> 2) & 3) {
	case 0:
		fuzz_token(k, data + 1, size - 1, ttl);
		break;
	case 1:
		fuzz_signed_body(k, data + 1, size - 1, ttl);
		break;
	case 2:
		fuzz_round_trip(k, data + 1, size - 1, ttl, data[0] >> 7);
		break;
	case 3:
		fuzz_b64(data + 1, size - 1);
		break;
	}
	return 0;
}
