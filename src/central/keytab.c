#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "evc/fernet.h"
#include "evc/hmap.h"
#include "evc/xalloc.h"
#include "src/central/keytab.h"

struct kent {
	char cp_id[MSG_CP_ID_MAX + 1];
	struct fernet_key key;
	int have_key;
	int plain;
};

struct keytab {
	pthread_rwlock_t lock;
	struct hmap m; /* cp_id -> struct kent */
};

struct keytab *keytab_new(void)
{
	struct keytab *t = xcalloc(1, sizeof *t);
	pthread_rwlock_init(&t->lock, NULL);
	hmap_init(&t->m);
	return t;
}

void keytab_free(struct keytab *t)
{
	if (t == NULL)
		return;
	void *v;
	for (size_t i = 0; (v = hmap_next(&t->m, &i)) != NULL;) {
		struct kent *e = v;
		fernet_key_wipe(&e->key);
		free(e);
	}
	hmap_free(&t->m);
	pthread_rwlock_destroy(&t->lock);
	free(t);
}

static struct kent *entry(struct keytab *t, const char *cp_id)
{
	struct kent *e = hmap_sget(&t->m, cp_id);
	if (e == NULL) {
		e = xcalloc(1, sizeof *e);
		xstrlcpy(e->cp_id, cp_id, sizeof e->cp_id);
		hmap_sput(&t->m, e->cp_id, e);
	}
	return e;
}

void keytab_set_key(struct keytab *t, const char *cp_id, const char *key)
{
	if (!msg_valid_cp_id(cp_id))
		return;
	struct fernet_key k;
	int ok = key != NULL && key[0] != '\0' && fernet_key_parse(key, &k) == 0;
	pthread_rwlock_wrlock(&t->lock);
	struct kent *e = entry(t, cp_id);
	fernet_key_wipe(&e->key);
	e->have_key = ok;
	if (ok)
		e->key = k;
	pthread_rwlock_unlock(&t->lock);
	if (ok)
		fernet_key_wipe(&k);
}

void keytab_set_plain(struct keytab *t, const char *cp_id, int plain)
{
	if (!msg_valid_cp_id(cp_id))
		return;
	pthread_rwlock_wrlock(&t->lock);
	entry(t, cp_id)->plain = plain ? 1 : 0;
	pthread_rwlock_unlock(&t->lock);
}

const char *telemetry_verdict_name(enum telemetry_verdict v)
{
	switch (v) {
	case TELEMETRY_OK: return "ok";
	case TELEMETRY_BAD: return "not a message";
	case TELEMETRY_PLAINTEXT: return "plaintext from a CP that must encrypt";
	case TELEMETRY_NO_KEY: return "the CP has no key";
	case TELEMETRY_BAD_TOKEN: return "the token fails its check";
	case TELEMETRY_CP_MISMATCH: return "cp_id inside differs from outside";
	}
	return "?";
}

static enum telemetry_verdict reject(enum telemetry_verdict v, char err[EVC_ERR_LEN], const char *why)
{
	xstrlcpy(err, why != NULL ? why : telemetry_verdict_name(v), EVC_ERR_LEN);
	return v;
}

/* A plaintext message: accepted only from a CP on a plain link. */
static enum telemetry_verdict open_plain(struct keytab *t, const char *payload, size_t len, struct msg *m,
					 char cp_id[MSG_CP_ID_MAX + 1], char err[EVC_ERR_LEN])
{
	if (msg_decode(MSG_T_CP_TELEMETRY, payload, len, m, err) == -1)
		return TELEMETRY_BAD;
	xstrlcpy(cp_id, m->cp_id, MSG_CP_ID_MAX + 1);
	if (t == NULL)
		return TELEMETRY_OK;
	pthread_rwlock_rdlock(&t->lock);
	struct kent *e = hmap_sget(&t->m, m->cp_id);
	int plain = e != NULL && e->plain;
	pthread_rwlock_unlock(&t->lock);
	if (!plain) {
		msg_free(m);
		return reject(TELEMETRY_PLAINTEXT, err, NULL);
	}
	return TELEMETRY_OK;
}

enum telemetry_verdict telemetry_open(struct keytab *t, const char *payload, size_t len, struct msg *m,
				      char cp_id[MSG_CP_ID_MAX + 1], char err[EVC_ERR_LEN])
{
	cp_id[0] = '\0';
	memset(m, 0, sizeof *m);
	/* A message that does not even mention "encrypted" is a Release-1
	 * one, decoded once by msg_decode's strict rules. */
	if (memmem(payload, len, "\"encrypted\"", 11) == NULL)
		return open_plain(t, payload, len, m, cp_id, err);
	json_error_t je;
	json_t *root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		return open_plain(t, payload, len, m, cp_id, err);
	}
	json_t *enc = json_object_get(root, "encrypted");
	if (enc == NULL) {
		json_decref(root);
		return open_plain(t, payload, len, m, cp_id, err);
	}
	enum telemetry_verdict v = TELEMETRY_OK;
	const char *outer = json_string_value(json_object_get(root, "cp_id"));
	const char *token = json_string_value(json_object_get(root, "ciphertext"));
	if (!json_is_true(enc) || outer == NULL || token == NULL || json_object_size(root) != 3) {
		v = reject(TELEMETRY_BAD, err, "bad envelope: expected {\"cp_id\",\"encrypted\":true,\"ciphertext\"}");
		goto out;
	}
	if (!msg_valid_cp_id(outer)) {
		v = reject(TELEMETRY_BAD, err, "bad envelope: invalid cp_id");
		goto out;
	}
	xstrlcpy(cp_id, outer, MSG_CP_ID_MAX + 1);
	struct fernet_key k;
	int have = 0;
	if (t != NULL) {
		pthread_rwlock_rdlock(&t->lock);
		struct kent *e = hmap_sget(&t->m, outer);
		if (e != NULL && e->have_key) {
			k = e->key;
			have = 1;
		}
		pthread_rwlock_unlock(&t->lock);
	}
	if (!have) {
		v = reject(TELEMETRY_NO_KEY, err, NULL);
		goto out;
	}
	unsigned char *plain = NULL;
	size_t plen = 0;
	/* No age limit: telemetry that waited in Kafka while Central was down
	 * is still the meter's word; replays are caught by seq. */
	enum fernet_status fs = fernet_decrypt(&k, token, strlen(token), 0, 0, &plain, &plen);
	fernet_key_wipe(&k);
	if (fs != FERNET_OK) {
		char why[EVC_ERR_LEN];
		snprintf(why, sizeof why, "%s (%s)", telemetry_verdict_name(TELEMETRY_BAD_TOKEN), fernet_status_name(fs));
		v = reject(TELEMETRY_BAD_TOKEN, err, why);
		goto out;
	}
	int rc = msg_decode(MSG_T_CP_TELEMETRY, (const char *)plain, plen, m, err);
	free(plain);
	if (rc == -1) {
		v = TELEMETRY_BAD;
		goto out;
	}
	if (strcmp(m->cp_id, outer) != 0) {
		msg_free(m);
		memset(m, 0, sizeof *m);
		v = reject(TELEMETRY_CP_MISMATCH, err, NULL);
	}
out:
	json_decref(root);
	return v;
}
