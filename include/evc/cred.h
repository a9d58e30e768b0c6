/* Secret files: the CP credential file and one-line secrets (installer
 * token), and the mode check every secret file gets (evcharging(7)
 * SECURITY). Error messages name the file and what is wrong with it, never
 * what it holds. */
#ifndef EVC_CRED_H
#define EVC_CRED_H
#include <stddef.h>

#include "evc/crypto.h"
#include "evc/err.h"
#include "evc/msg.h"

/* Largest secret file read (credential file, one-line secret file). */
#define CRED_FILE_MAX 4096

struct cred {
	char cp_id[MSG_CP_ID_MAX + 1];
	char secret[CRYPTO_SECRET_LEN + 1];
};

/* The credential file {"id":"MAD-01","secret":"<43 chars>"} (evcharging(7)
 * SECURITY); other members are ignored. Refused if it is readable or
 * writable by group or others ("FILE: mode 0644 lets others read it; chmod
 * 600 FILE"), not a regular file, larger than CRED_FILE_MAX, bad JSON, a
 * bad id (msg_valid_cp_id) or a bad secret (crypto_valid_secret). A symlink
 * is followed and the file it names is what gets checked. 0, or -1 with err
 * (c wiped). Messages never contain the secret. */
int cred_load(const char *path, struct cred *c, char err[EVC_ERR_LEN]);
/* Write atomically: temp file beside it, mode 0600, fsync, rename, fsync
 * dir. c must hold a valid id and secret. 0 / -1 with err (the old file,
 * if any, is then unchanged). */
int cred_save(const char *path, const struct cred *c, char err[EVC_ERR_LEN]);
/* Any secret file (installer token, API tokens file, private keys): 0 if a
 * regular file not accessible by group/others, else -1 with the message
 * above. */
int cred_check_mode(const char *path, char err[EVC_ERR_LEN]);
/* Read a one-line secret file (installer token): mode checked, first line,
 * surrounding blanks trimmed, at most cap-1 bytes, not empty. 0, or -1 with
 * err (buf wiped). */
int cred_read_line(const char *path, char *buf, size_t cap, char err[EVC_ERR_LEN]);
void cred_wipe(struct cred *c);

#endif
