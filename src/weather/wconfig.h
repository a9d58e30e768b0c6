/* EV_W's config.json (EV_W(1)): the provider, the file
 * holding its API key, the cities and the interval. Parsed with jansson
 * and validated field by field; an error names the field. The file is
 * re-read every cycle: wconfig_update keeps the last good config when the
 * new text is bad, so a typo never stops the weather office.
 *
 * Also what a secret EV_W reads (the provider's API key, Central's API
 * token) must look like; the file itself is read and mode-checked by
 * evc/cred.h, as every secret file of the family is. */
#ifndef EVC_WEATHER_WCONFIG_H
#define EVC_WEATHER_WCONFIG_H
#include <stddef.h>

#include "evc/err.h"

#define WCONFIG_FILE_MAX (64 * 1024) /* config.json larger than this is refused */
#define WCONFIG_URL_MAX 512          /* provider URL, bytes */
#define WCONFIG_PATH_MAX 1024        /* api_key_file after resolving, bytes */
#define WCONFIG_CITIES_MAX 100
#define WCONFIG_CITY_CHARS 64        /* UTF-8 characters */
#define WCONFIG_CITY_BYTES (WCONFIG_CITY_CHARS * 4)
#define WCONFIG_INTERVAL_DEFAULT 4
#define WCONFIG_INTERVAL_MAX 3600
#define WCONFIG_SECRET_MAX 512       /* an API key or token, bytes */

struct wconfig {
	char provider[WCONFIG_URL_MAX + 1];         /* http(s)://host[:port][/prefix], no trailing '/' */
	char api_key_file[WCONFIG_PATH_MAX + 1];    /* relative names resolved against the config's folder */
	char cities[WCONFIG_CITIES_MAX][WCONFIG_CITY_BYTES + 1];
	size_t ncities;                             /* 1..WCONFIG_CITIES_MAX */
	int interval;                               /* seconds, 1..3600 */
};

/* Parse and validate the text of a config.json (len bytes, need not be
 * NUL-terminated). base_dir ("." or the config's folder) resolves a
 * relative api_key_file. 0 and *out filled, or -1 with err naming the
 * field ("cities[2]: more than 64 characters"); *out is then untouched. */
int wconfig_parse(char err[EVC_ERR_LEN], const char *text, size_t len, const char *base_dir, struct wconfig *out);

/* Re-read: parse text into a new config; on success replace *cur and
 * return 1 if anything changed, 0 if it is the same. On error return -1
 * with err and keep *cur (the last good config) as it was. */
int wconfig_update(char err[EVC_ERR_LEN], struct wconfig *cur, const char *text, size_t len, const char *base_dir);

/* 1 if both configs are the same. */
int wconfig_equal(const struct wconfig *a, const struct wconfig *b);

/* Read a whole file of at most max bytes into a new NUL-terminated buffer
 * (*len without the NUL). Caller frees *text with free(). -1 with err
 * (naming the file) if it cannot be read, is not a regular file or is
 * larger than max. */
int wconfig_read_file(char err[EVC_ERR_LEN], const char *path, size_t max, char **text, size_t *len);

/* The folder of path ("." when it has none) into dir. */
void wconfig_dirname(const char *path, char *dir, size_t len);

/* Check a secret's text (cred_read_line's first line): a final newline,
 * and CR before it, are dropped; then 1..WCONFIG_SECRET_MAX printable
 * ASCII characters without spaces. Copies it into out (WCONFIG_SECRET_MAX + 1 bytes). what names
 * the secret in err ("API key"); err never holds the secret. */
int wconfig_secret_parse(char err[EVC_ERR_LEN], const char *text, size_t len, const char *what, char *out);

#endif
