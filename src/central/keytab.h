/* What the Kafka consumer thread needs to open a CP's telemetry
 * (evcharging(7) SECURITY, Telemetry): each CP's Fernet key, and whether
 * it may send plaintext (a Release-1 CP on a plain link). The main thread
 * writes it (a key issued, revoked; a link's kind), the consumer thread
 * reads it; a reader-writer lock between them. Keys never leave this
 * table except into fernet_decrypt. */
#ifndef EVC_CENTRAL_KEYTAB_H
#define EVC_CENTRAL_KEYTAB_H
#include <stddef.h>

#include "evc/err.h"
#include "evc/msg.h"

struct keytab;

/* Caller frees with keytab_free (which wipes the keys). */
struct keytab *keytab_new(void);
void keytab_free(struct keytab *t);
/* Main thread. key NULL or "" removes the CP's key (revoked, deleted). */
void keytab_set_key(struct keytab *t, const char *cp_id, const char *key);
/* Main thread: the CP may send plaintext telemetry (a Release-1 CP, no
 * credentials, with --plain-links) or not. */
void keytab_set_plain(struct keytab *t, const char *cp_id, int plain);

/* Why a telemetry message was not applied (TELEMETRY_REJECTED detail). */
enum telemetry_verdict {
	TELEMETRY_OK = 0,
	TELEMETRY_BAD,        /* not a message at all: err says why (counted as bad) */
	TELEMETRY_PLAINTEXT,  /* plaintext from a CP that is not on a plain link */
	TELEMETRY_NO_KEY,     /* encrypted, but the CP has no key (revoked, unknown) */
	TELEMETRY_BAD_TOKEN,  /* the token fails its HMAC or its form: forged, old key */
	TELEMETRY_CP_MISMATCH /* the inner cp_id is not the outer one */
};
const char *telemetry_verdict_name(enum telemetry_verdict v);

/* Open one cp_telemetry payload: the envelope
 * {"cp_id","encrypted":true,"ciphertext":"<Fernet token>"} decrypted with
 * the CP's key and the Release-1 message inside decoded, or a plaintext
 * Release-1 message accepted from a plain-link CP. On TELEMETRY_OK *m is
 * the message (caller frees with msg_free); otherwise cp_id holds the
 * outer cp_id when there was a valid one ("" else) and err a reason a
 * person can read (never a key or token). t may be NULL: then only
 * plaintext is accepted (Release-1 Central). */
enum telemetry_verdict telemetry_open(struct keytab *t, const char *payload, size_t len, struct msg *m,
				      char cp_id[MSG_CP_ID_MAX + 1], char err[EVC_ERR_LEN]);

#endif
