/* Cryptographic building blocks shared by every program: random bytes,
 * constant-time comparison, SHA-256, HMAC-SHA256, strict base64url and
 * hex, CP secrets and the engine challenge (evcharging(7) SECURITY).
 * Everything here is libcrypto (OpenSSL 3.0) plus getrandom(2); nothing
 * does network I/O and every function is thread-safe.
 *
 * Functions that return void cannot fail short of libcrypto itself being
 * broken; they abort then, as xmalloc does on OOM, rather than hand back a
 * digest nobody could tell from a real one. */
#ifndef EVC_CRYPTO_H
#define EVC_CRYPTO_H
#include <stddef.h>

#include "evc/err.h"

/* n bytes from getrandom(2), retried on EINTR and short reads; 0 / -1. */
int crypto_random(void *buf, size_t n, char err[EVC_ERR_LEN]);
/* 1 if the n bytes at a and b are equal, else 0; time depends on n only. */
int crypto_ct_equal(const void *a, const void *b, size_t n);
void crypto_sha256(const void *data, size_t n, unsigned char out[32]);
/* The digest as 64 lowercase hex digits and a NUL. */
void crypto_sha256_hex(const void *data, size_t n, char out[65]);
void crypto_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32]);

/* base64url (RFC 4648 section 5).
 * encode: writes the text and a NUL; returns its length, or 0 (out
 * untouched beyond out[0] = '\0' when outcap > 0) if outcap is too small.
 * pad = 1 adds '=' to a multiple of 4 characters.
 * decode: strict: only A-Z a-z 0-9 - _, padding optional but if present
 * exactly right, no spaces or line breaks, the unused bits of the last
 * character zero (so every byte string has exactly one spelling). Reads
 * exactly len characters (in need not be NUL-terminated). 0 with *outlen
 * set, or -1 (bad text, or more than outcap bytes). */
size_t crypto_b64url_encode(const void *in, size_t n, int pad, char *out, size_t outcap);
int crypto_b64url_decode(const char *in, size_t len, void *out, size_t outcap, size_t *outlen);
/* Characters crypto_b64url_encode writes for n bytes (without the NUL). */
size_t crypto_b64url_encoded_len(size_t n, int pad);
/* Most bytes len characters of base64url can decode to. */
size_t crypto_b64url_decoded_max(size_t len);

/* Lowercase hex of n bytes: out holds 2n + 1 bytes (NUL-terminated). */
void crypto_hex(const void *in, size_t n, char *out);
/* hex is exactly 2n lowercase hex digits then a NUL; 0, or -1 (out may
 * then be partly written). */
int crypto_unhex(const char *hex, void *out, size_t n);
/* Overwrite n bytes in a way the compiler may not optimise away. */
void crypto_wipe(void *p, size_t n);

/* A CP secret: 32 random bytes, base64url without padding (43 chars). */
#define CRYPTO_SECRET_LEN 43
#define CRYPTO_SECRET_BYTES 32
int crypto_new_secret(char out[CRYPTO_SECRET_LEN + 1], char err[EVC_ERR_LEN]);
/* 1 if s is 43 characters of the base64url alphabet that decode to 32
 * bytes (the last one's unused bits zero), else 0. NULL gives 0. */
int crypto_valid_secret(const char *s);
/* The stored form of a secret: lowercase hex SHA-256 of its 43 ASCII chars. */
void crypto_secret_hash(const char *secret, char out[65]);
/* 1 if secret hashes to stored_hash_hex (64 lowercase hex digits), else 0.
 * Constant time in the secret and the hash. NULLs give 0. */
int crypto_secret_matches(const char *secret, const char *stored_hash_hex);

/* Engine challenge (evcharging(7) SECURITY): nonce = 16 random bytes shown
 * as 32 lowercase hex; answer = hex HMAC-SHA256 keyed with the secret's 43
 * ASCII chars over nonce bytes || cp_id bytes. */
#define CRYPTO_NONCE_LEN 16
int crypto_challenge_new(unsigned char nonce[16], char nonce_hex[33], char err[EVC_ERR_LEN]);
void crypto_challenge_answer(const char *secret, const unsigned char nonce[16], const char *cp_id, char out_hex[65]);
/* 1 if answer_hex is exactly the 64 lowercase hex digits of the answer,
 * else 0 (uppercase, short or long answers are wrong answers). Constant
 * time in the answer. */
int crypto_challenge_check(const char *secret, const unsigned char nonce[16], const char *cp_id,
			   const char *answer_hex);

#endif
