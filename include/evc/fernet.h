/* Fernet tokens (https://github.com/fernet/spec, version 0x80): the
 * envelope of encrypted telemetry (evcharging(7) SECURITY).
 *
 *   token = base64url( 0x80 | time (8 bytes, big-endian s) | IV (16)
 *                      | AES-128-CBC(enc key, IV, PKCS#7(plain)) | HMAC )
 *   HMAC  = HMAC-SHA256(sign key, everything before it)
 *
 * What we write is byte for byte what Python's cryptography.fernet writes
 * (padded base64url); what we read is checked in this order: shape
 * (base64url, length, version), HMAC (constant time), then time, then
 * padding, so nothing about an unauthenticated token but its shape is ever
 * acted on. Thread-safe; no I/O. */
#ifndef EVC_FERNET_H
#define EVC_FERNET_H
#include <stddef.h>
#include <stdint.h>

#include "evc/err.h"

#define FERNET_KEY_LEN 44        /* base64url with padding of 32 bytes */
#define FERNET_TOKEN_MAX 65536   /* longest token accepted (bytes of text) */
#define FERNET_MAX_CLOCK_SKEW 60 /* s a token may be from the future */
/* Longest plaintext whose token fits in FERNET_TOKEN_MAX: fernet_encrypt
 * refuses more, so it never makes a token fernet_decrypt would refuse. */
#define FERNET_PLAIN_MAX 49087

/* The 32 key bytes: the first half signs, the second half encrypts. */
struct fernet_key {
	unsigned char sign[16], enc[16];
};

/* b64 is exactly 44 characters of padded base64url (then a NUL) decoding
 * to 32 bytes; 0, or -1 (k untouched). */
int fernet_key_parse(const char *b64, struct fernet_key *k);
/* A new random key in its 44-character form; 0 / -1 with err. */
int fernet_key_new(char out[FERNET_KEY_LEN + 1], char err[EVC_ERR_LEN]);
/* Overwrite a key that is no longer needed. */
void fernet_key_wipe(struct fernet_key *k);

/* Encrypt n bytes at time now (Unix s); iv NULL = random (anything else
 * only for test vectors: a repeated IV under one key leaks plaintext).
 * Returns a NUL-terminated token the caller frees with free(), or NULL with
 * err (n > FERNET_PLAIN_MAX, getrandom failed). */
char *fernet_encrypt(const struct fernet_key *k, const void *plain, size_t n, uint64_t now,
		     const unsigned char iv[16], char err[EVC_ERR_LEN]);

enum fernet_status {
	FERNET_OK = 0,
	FERNET_BAD_TOKEN,   /* not base64url, too short or long, bad version, partial block */
	FERNET_BAD_HMAC,    /* wrong key or altered token */
	FERNET_BAD_PADDING, /* authentic but the plaintext padding is wrong */
	FERNET_EXPIRED,     /* older than ttl */
	FERNET_FUTURE,      /* more than FERNET_MAX_CLOCK_SKEW s ahead of now */
};
/* "ok", "bad token", "bad HMAC", "bad padding", "expired", "from the future". */
const char *fernet_status_name(enum fernet_status s);

/* Verify (HMAC first, constant time) and decrypt. ttl <= 0: no age limit,
 * and then, as in Python's cryptography, the token's time is not looked
 * at at all (neither expiry nor FERNET_FUTURE). With ttl > 0: FERNET_EXPIRED
 * if now > time + ttl, FERNET_FUTURE if time > now + FERNET_MAX_CLOCK_SKEW.
 * On FERNET_OK *plain (caller frees with free(), NUL-terminated for
 * convenience) and *plen are set; otherwise *plain = NULL, *plen = 0.
 * The token is padded base64url, exactly len characters (no newline):
 * never reads past len; more than FERNET_TOKEN_MAX is FERNET_BAD_TOKEN. */
enum fernet_status fernet_decrypt(const struct fernet_key *k, const char *token, size_t len, uint64_t now,
				  int64_t ttl, unsigned char **plain, size_t *plen);

#endif
