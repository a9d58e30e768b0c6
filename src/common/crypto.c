/* Cryptographic building blocks on libcrypto (evcharging(7) SECURITY). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "evc/crypto.h"

/* libcrypto failing a digest or MAC it supports means the library (or the
 * heap) is broken; like xmalloc on OOM there is nothing sane to return. */
static void die_libcrypto(const char *what)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
	fprintf(stderr, "fatal: libcrypto %s failed: %s\n", what, buf);
	abort();
}

int crypto_random(void *buf, size_t n, char err[EVC_ERR_LEN])
{
	unsigned char *p = buf;
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom(p + got, n - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			evc_seterr(err, "getrandom: %s", strerror(errno));
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

int crypto_ct_equal(const void *a, const void *b, size_t n)
{
	if (n == 0)
		return 1;
	return CRYPTO_memcmp(a, b, n) == 0;
}

void crypto_sha256(const void *data, size_t n, unsigned char out[32])
{
	unsigned int len = 0;

	if (!EVP_Digest(n ? data : "", n, out, &len, EVP_sha256(), NULL) || len != 32)
		die_libcrypto("SHA-256");
}

void crypto_sha256_hex(const void *data, size_t n, char out[65])
{
	unsigned char md[32];

	crypto_sha256(data, n, md);
	crypto_hex(md, sizeof md, out);
}

/* HMAC-SHA256 over the concatenation of two parts, so the challenge needs
 * no buffer sized for a cp_id it has not validated. */
static void hmac2(const void *key, size_t klen, const void *m1, size_t l1, const void *m2, size_t l2,
		  unsigned char out[32])
{
	static const unsigned char nokey[1];
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	size_t len = 0;

	/* A NULL key means "keep the old key" to EVP_MAC_init: an empty key
	 * must still be a (zero-length) key. */
	if (ctx == NULL || !EVP_MAC_init(ctx, klen ? key : nokey, klen, params) ||
	    (l1 && !EVP_MAC_update(ctx, m1, l1)) || (l2 && !EVP_MAC_update(ctx, m2, l2)) ||
	    !EVP_MAC_final(ctx, out, &len, 32) || len != 32)
		die_libcrypto("HMAC-SHA256");
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
}

void crypto_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
	hmac2(key, klen, msg, mlen, NULL, 0, out);
}

/* base64url */

size_t crypto_b64url_encoded_len(size_t n, int pad)
{
	size_t full = n / 3, rest = n % 3;

	if (full > (SIZE_MAX - 4) / 4)
		return SIZE_MAX;
	if (rest == 0)
		return full * 4;
	return full * 4 + (pad ? 4 : rest + 1);
}

size_t crypto_b64url_decoded_max(size_t len)
{
	return len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
}

/* EVP_EncodeBlock works on the standard alphabet and always pads; it is
 * fed in slices so out never needs room for padding it will not keep. */
size_t crypto_b64url_encode(const void *in, size_t n, int pad, char *out, size_t outcap)
{
	const unsigned char *p = in;
	size_t need = crypto_b64url_encoded_len(n, pad), w = 0;
	unsigned char chunk[65];

	if (need == SIZE_MAX || outcap < need + 1) {
		if (outcap > 0)
			out[0] = '\0';
		return 0;
	}
	for (size_t off = 0; off < n; off += 48) {
		size_t take = n - off < 48 ? n - off : 48;
		int k = EVP_EncodeBlock(chunk, p + off, (int)take);
		for (int i = 0; i < k; i++) {
			unsigned char c = chunk[i];
			if (c == '=' && !pad)
				break;
			out[w++] = c == '+' ? '-' : c == '/' ? '_' : (char)c;
		}
	}
	out[w] = '\0';
	crypto_wipe(chunk, sizeof chunk);
	return w;
}

/* The 6-bit value of a base64url character, or -1; branch-free on the
 * character so decoding a secret leaks nothing through timing. */
static int b64url_value(unsigned char c)
{
	int x = c, v = -1;

	v += (((('A' - 1) - x) & (x - ('Z' + 1))) >> 8) & (x - 'A' + 1);
	v += (((('a' - 1) - x) & (x - ('z' + 1))) >> 8) & (x - 'a' + 27);
	v += (((('0' - 1) - x) & (x - ('9' + 1))) >> 8) & (x - '0' + 53);
	v += (((('-' - 1) - x) & (x - ('-' + 1))) >> 8) & 63;
	v += (((('_' - 1) - x) & (x - ('_' + 1))) >> 8) & 64;
	return v;
}

int crypto_b64url_decode(const char *in, size_t len, void *out, size_t outcap, size_t *outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	unsigned char *o = out;
	size_t npad = 0, m, rest, total;
	unsigned char text[64 + 1], bytes[48];
	int bad = 0;

	while (npad < len && s[len - 1 - npad] == '=')
		npad++;
	m = len - npad;
	rest = m % 4;
	if (npad > 2 || rest == 1 || (npad && (len % 4 || rest + npad != 4)))
		return -1;
	for (size_t i = 0; i < m; i++)
		bad |= b64url_value(s[i]) >> 8; /* -1 >> 8 is -1 */
	/* The bits past the last whole byte must be zero: one spelling only. */
	if (rest == 2)
		bad |= -((b64url_value(s[m - 1]) & 0x0f) != 0);
	else if (rest == 3)
		bad |= -((b64url_value(s[m - 1]) & 0x03) != 0);
	if (bad)
		return -1;
	total = m / 4 * 3 + (rest ? rest - 1 : 0);
	if (total > outcap)
		return -1;

	size_t w = 0;
	for (size_t off = 0; off < m; off += 64) {
		size_t take = m - off < 64 ? m - off : 64, k = 0;
		for (; k < take; k++) {
			unsigned char c = s[off + k];
			text[k] = c == '-' ? '+' : c == '_' ? '/' : c;
		}
		while (k % 4)
			text[k++] = '=';
		text[k] = '\0';
		if (EVP_DecodeBlock(bytes, text, (int)k) < 0) {
			crypto_wipe(text, sizeof text);
			crypto_wipe(bytes, sizeof bytes);
			return -1;
		}
		size_t got = take / 4 * 3 + (take % 4 ? take % 4 - 1 : 0);
		memcpy(o + w, bytes, got);
		w += got;
	}
	crypto_wipe(text, sizeof text);
	crypto_wipe(bytes, sizeof bytes);
	*outlen = w;
	return 0;
}

/* hex */

void crypto_hex(const void *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = in;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int crypto_unhex(const char *hex, void *out, size_t n)
{
	unsigned char *o = out;

	if (hex == NULL || strnlen(hex, 2 * n + 1) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		o[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void crypto_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		OPENSSL_cleanse(p, n);
}

/* CP secrets */

int crypto_new_secret(char out[CRYPTO_SECRET_LEN + 1], char err[EVC_ERR_LEN])
{
	unsigned char raw[CRYPTO_SECRET_BYTES];

	if (crypto_random(raw, sizeof raw, err) < 0)
		return -1;
	crypto_b64url_encode(raw, sizeof raw, 0, out, CRYPTO_SECRET_LEN + 1);
	crypto_wipe(raw, sizeof raw);
	return 0;
}

int crypto_valid_secret(const char *s)
{
	unsigned char raw[CRYPTO_SECRET_BYTES];
	size_t n = 0;
	int ok;

	if (s == NULL || strnlen(s, CRYPTO_SECRET_LEN + 1) != CRYPTO_SECRET_LEN)
		return 0;
	ok = crypto_b64url_decode(s, CRYPTO_SECRET_LEN, raw, sizeof raw, &n) == 0 && n == sizeof raw;
	crypto_wipe(raw, sizeof raw);
	return ok;
}

void crypto_secret_hash(const char *secret, char out[65])
{
	crypto_sha256_hex(secret, strlen(secret), out);
}

int crypto_secret_matches(const char *secret, const char *stored_hash_hex)
{
	char mine[65];
	int ok;

	if (secret == NULL || stored_hash_hex == NULL || strnlen(stored_hash_hex, 65) != 64)
		return 0;
	crypto_secret_hash(secret, mine);
	ok = CRYPTO_memcmp(mine, stored_hash_hex, 64) == 0;
	crypto_wipe(mine, sizeof mine);
	return ok;
}

/* Engine challenge */

int crypto_challenge_new(unsigned char nonce[16], char nonce_hex[33], char err[EVC_ERR_LEN])
{
	if (crypto_random(nonce, CRYPTO_NONCE_LEN, err) < 0)
		return -1;
	crypto_hex(nonce, CRYPTO_NONCE_LEN, nonce_hex);
	return 0;
}

void crypto_challenge_answer(const char *secret, const unsigned char nonce[16], const char *cp_id, char out_hex[65])
{
	unsigned char mac[32];

	hmac2(secret, strlen(secret), nonce, CRYPTO_NONCE_LEN, cp_id, strlen(cp_id), mac);
	crypto_hex(mac, sizeof mac, out_hex);
	crypto_wipe(mac, sizeof mac);
}

int crypto_challenge_check(const char *secret, const unsigned char nonce[16], const char *cp_id,
			   const char *answer_hex)
{
	char want[65];
	int ok;

	if (secret == NULL || cp_id == NULL || answer_hex == NULL || strnlen(answer_hex, 65) != 64)
		return 0;
	crypto_challenge_answer(secret, nonce, cp_id, want);
	ok = CRYPTO_memcmp(want, answer_hex, 64) == 0;
	crypto_wipe(want, sizeof want);
	return ok;
}
