/* The API's bearer tokens (evcharging(7) API): a file of NAME ROLE TOKEN
 * lines, loaded once, kept only as SHA-256 hashes, matched in constant
 * time. No function here ever puts a token into a message. */
#ifndef EVC_CENTRAL_API_TOKENS_H
#define EVC_CENTRAL_API_TOKENS_H
#include <stddef.h>

#include "evc/err.h"

enum api_role { API_ROLE_NONE = 0, API_ROLE_READ, API_ROLE_OPERATE, API_ROLE_WEATHER };
/* "read", "operate", "weather" ("none" for API_ROLE_NONE). */
const char *api_role_name(enum api_role r);

#define API_TOKEN_NAME_MAX 63   /* [A-Za-z0-9_.-]{1,63} */
#define API_TOKEN_MIN 16        /* characters of a token, printable ASCII, no blanks */
#define API_TOKEN_MAX 512
#define API_TOKENS_MAX 1024     /* lines with a token in one file */

struct api_tokens;

/* Parse a whole file's text (NAME ROLE TOKEN a line, blank lines and lines
 * starting with '#' ignored). A bad line (fields, name, role, token length
 * or characters) or a duplicate name or token is an error naming the line
 * number and what is wrong, never the token. origin names the text in
 * errors ("tokens.txt"). Caller frees with api_tokens_free. */
struct api_tokens *api_tokens_parse(const char *text, size_t len, const char *origin, char err[EVC_ERR_LEN]);
/* Read and parse path, refusing a file that is not regular or that group
 * or others may read or write (like ssh: "chmod 600"). */
struct api_tokens *api_tokens_load(const char *path, char err[EVC_ERR_LEN]);
void api_tokens_free(struct api_tokens *t);
size_t api_tokens_count(const struct api_tokens *t);

/* The role of token (len bytes), API_ROLE_NONE if it is not in the file;
 * its name copied into name (API_TOKEN_NAME_MAX + 1 bytes) when found.
 * Every stored hash is compared (CRYPTO_memcmp, no early exit), so the time
 * does not depend on which entry, if any, matches; *compared (if not NULL)
 * gets the number of comparisons made, which tests check. */
enum api_role api_tokens_match(const struct api_tokens *t, const char *token, size_t len, char *name,
			       size_t *compared);

/* Refuse a secret file (tokens, private key) that group or others may
 * access: 0, or -1 with err naming the file and its mode. fd is open on
 * path. */
int api_check_secret_mode(int fd, const char *path, char err[EVC_ERR_LEN]);

#endif
