/* Fernet tokens (evcharging(7) SECURITY) on libcrypto's AES-128-CBC and
 * HMAC-SHA256. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "evc/crypto.h"
#include "evc/fernet.h"
#include "evc/xalloc.h"

#define VERSION 0x80
#define HDR_LEN (1 + 8 + 16) /* version, time, IV */
#define MAC_LEN 32
#define BLOCK 16
/* The shortest token: one block of ciphertext (PKCS#7 always adds one). */
#define RAW_MIN (HDR_LEN + BLOCK + MAC_LEN)

/* See crypto.c: libcrypto refusing AES-128-CBC on valid arguments means the
 * library is broken, and a wrong status would only hide that. */
static void die_libcrypto(const char *what)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
	fprintf(stderr, "fatal: libcrypto %s failed: %s\n", what, buf);
	abort();
}

int fernet_key_parse(const char *b64, struct fernet_key *k)
{
	unsigned char raw[32];
	size_t n = 0;

	if (b64 == NULL || strnlen(b64, FERNET_KEY_LEN + 1) != FERNET_KEY_LEN)
		return -1;
	if (crypto_b64url_decode(b64, FERNET_KEY_LEN, raw, sizeof raw, &n) < 0 || n != sizeof raw) {
		crypto_wipe(raw, sizeof raw);
		return -1;
	}
	memcpy(k->sign, raw, 16);
	memcpy(k->enc, raw + 16, 16);
	crypto_wipe(raw, sizeof raw);
	return 0;
}

int fernet_key_new(char out[FERNET_KEY_LEN + 1], char err[EVC_ERR_LEN])
{
	unsigned char raw[32];

	if (crypto_random(raw, sizeof raw, err) < 0)
		return -1;
	crypto_b64url_encode(raw, sizeof raw, 1, out, FERNET_KEY_LEN + 1);
	crypto_wipe(raw, sizeof raw);
	return 0;
}

void fernet_key_wipe(struct fernet_key *k)
{
	crypto_wipe(k, sizeof *k);
}

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

char *fernet_encrypt(const struct fernet_key *k, const void *plain, size_t n, uint64_t now,
		     const unsigned char iv[16], char err[EVC_ERR_LEN])
{
	size_t ctlen = (n / BLOCK + 1) * BLOCK, rawlen = HDR_LEN + ctlen + MAC_LEN, textcap;
	unsigned char *raw = NULL;
	char *text = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	int l1 = 0, l2 = 0;

	if (n > FERNET_PLAIN_MAX) {
		evc_seterr(err, "%zu bytes is more than a token carries (%d)", n, FERNET_PLAIN_MAX);
		return NULL;
	}
	raw = xmalloc(rawlen);
	raw[0] = VERSION;
	put_be64(raw + 1, now);
	if (iv != NULL)
		memcpy(raw + 9, iv, 16);
	else if (crypto_random(raw + 9, 16, err) < 0)
		goto fail;

	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL || !EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, k->enc, raw + 9) ||
	    (n > 0 && !EVP_EncryptUpdate(ctx, raw + HDR_LEN, &l1, plain, (int)n)) ||
	    !EVP_EncryptFinal_ex(ctx, raw + HDR_LEN + l1, &l2) || (size_t)(l1 + l2) != ctlen)
		die_libcrypto("AES-128-CBC encryption");
	crypto_hmac_sha256(k->sign, sizeof k->sign, raw, rawlen - MAC_LEN, raw + rawlen - MAC_LEN);

	textcap = crypto_b64url_encoded_len(rawlen, 1) + 1;
	text = xmalloc(textcap);
	crypto_b64url_encode(raw, rawlen, 1, text, textcap);
fail:
	EVP_CIPHER_CTX_free(ctx);
	free(raw);
	return text;
}

const char *fernet_status_name(enum fernet_status s)
{
	switch (s) {
	case FERNET_OK:
		return "ok";
	case FERNET_BAD_TOKEN:
		return "bad token";
	case FERNET_BAD_HMAC:
		return "bad HMAC";
	case FERNET_BAD_PADDING:
		return "bad padding";
	case FERNET_EXPIRED:
		return "expired";
	case FERNET_FUTURE:
		return "from the future";
	}
	return "unknown";
}

enum fernet_status fernet_decrypt(const struct fernet_key *k, const char *token, size_t len, uint64_t now,
				  int64_t ttl, unsigned char **plain, size_t *plen)
{
	enum fernet_status st = FERNET_BAD_TOKEN;
	unsigned char *raw = NULL, *out = NULL, mac[MAC_LEN];
	size_t rawlen = 0, ctlen, rawcap;
	EVP_CIPHER_CTX *ctx = NULL;
	int l1 = 0, l2 = 0;

	*plain = NULL;
	*plen = 0;
	/* Padded, as every implementation writes tokens (Python's refuses
	 * them unpadded): one spelling per token, so a token cut short by
	 * its '=' is a cut token, not the same one. */
	if (token == NULL || len > FERNET_TOKEN_MAX || len % 4 != 0)
		return FERNET_BAD_TOKEN;
	rawcap = crypto_b64url_decoded_max(len);
	if (rawcap < RAW_MIN)
		return FERNET_BAD_TOKEN;
	raw = xmalloc(rawcap);
	if (crypto_b64url_decode(token, len, raw, rawcap, &rawlen) < 0 || rawlen < RAW_MIN || raw[0] != VERSION ||
	    (rawlen - HDR_LEN - MAC_LEN) % BLOCK != 0)
		goto fail;

	crypto_hmac_sha256(k->sign, sizeof k->sign, raw, rawlen - MAC_LEN, mac);
	if (CRYPTO_memcmp(mac, raw + rawlen - MAC_LEN, MAC_LEN) != 0) {
		st = FERNET_BAD_HMAC;
		goto fail;
	}

	if (ttl > 0) {
		uint64_t when = get_be64(raw + 1);
		if (now > when && now - when > (uint64_t)ttl) {
			st = FERNET_EXPIRED;
			goto fail;
		}
		if (when > now && when - now > FERNET_MAX_CLOCK_SKEW) {
			st = FERNET_FUTURE;
			goto fail;
		}
	}

	/* Room for what EVP_DecryptUpdate may write (a block more than it is
	 * given) and the NUL. */
	ctlen = rawlen - HDR_LEN - MAC_LEN;
	out = xmalloc(ctlen + BLOCK + 1);
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL || !EVP_DecryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, k->enc, raw + 9) ||
	    !EVP_DecryptUpdate(ctx, out, &l1, raw + HDR_LEN, (int)ctlen))
		die_libcrypto("AES-128-CBC decryption");
	if (!EVP_DecryptFinal_ex(ctx, out + l1, &l2)) {
		ERR_clear_error();
		crypto_wipe(out, ctlen + BLOCK + 1);
		st = FERNET_BAD_PADDING;
		goto fail;
	}
	out[l1 + l2] = '\0';
	*plain = out;
	*plen = (size_t)(l1 + l2);
	out = NULL;
	st = FERNET_OK;
fail:
	EVP_CIPHER_CTX_free(ctx);
	free(out);
	free(raw);
	return st;
}
