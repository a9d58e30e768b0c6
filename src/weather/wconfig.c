/* EV_W's config.json and what its secrets may hold (see wconfig.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "evc/utf8.h"
#include "evc/xalloc.h"
#include "src/weather/wconfig.h"

/* A provider URL: http or https, a host, an optional path prefix, nothing
 * else. The key is added per request; credentials, a query or a fragment
 * here would either leak into logs or be silently dropped. libcurl's URL
 * parser decides what is a URL, as it is the one that will fetch it. */
static int check_provider(char err[EVC_ERR_LEN], const char *s, char out[WCONFIG_URL_MAX + 1])
{
	int rc = -1;
	char *scheme = NULL, *host = NULL, *part = NULL;
	CURLU *u = NULL;
	size_t n = strlen(s);

	if (n == 0 || n > WCONFIG_URL_MAX) {
		evc_seterr(err, "provider: must be an http:// or https:// URL of 1 to %d bytes", WCONFIG_URL_MAX);
		return -1;
	}
	u = curl_url();
	if (u == NULL) {
		evc_seterr(err, "provider: out of memory");
		return -1;
	}
	if (curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
	    (strncasecmp(s, "http://", 7) != 0 && strncasecmp(s, "https://", 8) != 0)) {
		evc_seterr(err, "provider: '%.100s' is not an http:// or https:// URL", s);
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		evc_seterr(err, "provider: the URL has no host");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK) {
		evc_seterr(err, "provider: no user or password in the URL (the key goes in api_key_file)");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK) {
		evc_seterr(err, "provider: no query in the URL (EV_W adds /data/2.5/weather?q=...)");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK) {
		evc_seterr(err, "provider: no fragment ('#') in the URL");
		goto fail;
	}
	/* The text as written, less trailing slashes: the request path is
	 * appended to it. */
	while (n > 0 && s[n - 1] == '/')
		n--;
	memcpy(out, s, n);
	out[n] = '\0';
	rc = 0;
fail:
	curl_free(part);
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

/* A city as Central will match it: 1..64 UTF-8 characters, no control
 * characters (they would corrupt a screen or a log line), no leading or
 * trailing space. */
static int check_city(char err[EVC_ERR_LEN], size_t i, json_t *v, char out[WCONFIG_CITY_BYTES + 1])
{
	const char *s;
	size_t len, chars;

	if (!json_is_string(v)) {
		evc_seterr(err, "cities[%zu]: must be a string (a city name)", i);
		return -1;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (len == 0) {
		evc_seterr(err, "cities[%zu]: empty city name", i);
		return -1;
	}
	if (strlen(s) != len) {
		evc_seterr(err, "cities[%zu]: holds a NUL character", i);
		return -1;
	}
	if (!utf8_valid(s, len, &chars)) { /* jansson checked already; cheap to be sure */
		evc_seterr(err, "cities[%zu]: not valid UTF-8", i);
		return -1;
	}
	if (chars > WCONFIG_CITY_CHARS || len > WCONFIG_CITY_BYTES) {
		evc_seterr(err, "cities[%zu]: more than %d characters", i, WCONFIG_CITY_CHARS);
		return -1;
	}
	for (size_t k = 0, kl; k < len; k += kl)
		if (utf8_control(utf8_decode((const uint8_t *)s + k, len - k, &kl))) {
			evc_seterr(err, "cities[%zu]: holds a control character", i);
			return -1;
		}
	if (s[0] == ' ' || s[len - 1] == ' ') {
		evc_seterr(err, "cities[%zu]: leading or trailing space in '%s'", i, s);
		return -1;
	}
	memcpy(out, s, len + 1);
	return 0;
}

static int check_key_file(char err[EVC_ERR_LEN], json_t *v, const char *base_dir, char out[WCONFIG_PATH_MAX + 1])
{
	const char *s;
	size_t len;

	if (!json_is_string(v)) {
		evc_seterr(err, "api_key_file: must be a string (the file holding the provider's key)");
		return -1;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (len == 0 || strlen(s) != len) {
		evc_seterr(err, "api_key_file: must be a file name (not empty, no NUL)");
		return -1;
	}
	int n;
	if (s[0] == '/' || base_dir == NULL || base_dir[0] == '\0' || strcmp(base_dir, ".") == 0)
		n = snprintf(out, WCONFIG_PATH_MAX + 1, "%s", s);
	else
		n = snprintf(out, WCONFIG_PATH_MAX + 1, "%s/%s", base_dir, s);
	if (n < 0 || n > WCONFIG_PATH_MAX) {
		evc_seterr(err, "api_key_file: path longer than %d bytes", WCONFIG_PATH_MAX);
		return -1;
	}
	return 0;
}

int wconfig_parse(char err[EVC_ERR_LEN], const char *text, size_t len, const char *base_dir, struct wconfig *out)
{
	json_error_t jerr;
	json_t *root = NULL, *v;
	const char *key;
	struct wconfig *c = xcalloc(1, sizeof *c);
	int rc = -1;

	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		evc_seterr(err, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
		goto fail;
	}
	if (!json_is_object(root)) {
		evc_seterr(err, "must be a JSON object {\"provider\",\"api_key_file\",\"cities\",\"interval\"}");
		goto fail;
	}
	json_object_foreach(root, key, v) {
		if (strcmp(key, "provider") != 0 && strcmp(key, "api_key_file") != 0 && strcmp(key, "cities") != 0 &&
		    strcmp(key, "interval") != 0) {
			evc_seterr(err, "unknown field '%.60s' (known: provider, api_key_file, cities, interval)", key);
			goto fail;
		}
	}
	v = json_object_get(root, "provider");
	if (v == NULL) {
		evc_seterr(err, "provider: missing (e.g. \"https://api.openweathermap.org\")");
		goto fail;
	}
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		evc_seterr(err, "provider: must be a string (an http:// or https:// URL)");
		goto fail;
	}
	if (check_provider(err, json_string_value(v), c->provider) == -1)
		goto fail;

	v = json_object_get(root, "api_key_file");
	if (v == NULL) {
		evc_seterr(err, "api_key_file: missing (the file holding the provider's API key)");
		goto fail;
	}
	if (check_key_file(err, v, base_dir, c->api_key_file) == -1)
		goto fail;

	v = json_object_get(root, "cities");
	if (v == NULL) {
		evc_seterr(err, "cities: missing (a list of 1 to %d city names)", WCONFIG_CITIES_MAX);
		goto fail;
	}
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > WCONFIG_CITIES_MAX) {
		evc_seterr(err, "cities: must be a list of 1 to %d city names", WCONFIG_CITIES_MAX);
		goto fail;
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		if (check_city(err, i, json_array_get(v, i), c->cities[i]) == -1)
			goto fail;
		/* Central matches cities without regard to case: two spellings
		 * of one city would fight over its alert. */
		for (size_t j = 0; j < i; j++)
			if (utf8_fold_eq(c->cities[i], c->cities[j])) {
				evc_seterr(err, "cities[%zu]: '%s' repeats cities[%zu]", i, c->cities[i], j);
				goto fail;
			}
		c->ncities = i + 1;
	}

	c->interval = WCONFIG_INTERVAL_DEFAULT;
	v = json_object_get(root, "interval");
	if (v != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > WCONFIG_INTERVAL_MAX) {
			evc_seterr(err, "interval: must be a whole number of seconds from 1 to %d", WCONFIG_INTERVAL_MAX);
			goto fail;
		}
		c->interval = (int)json_integer_value(v);
	}
	*out = *c;
	rc = 0;
fail:
	json_decref(root);
	free(c);
	return rc;
}

int wconfig_equal(const struct wconfig *a, const struct wconfig *b)
{
	if (strcmp(a->provider, b->provider) != 0 || strcmp(a->api_key_file, b->api_key_file) != 0 ||
	    a->ncities != b->ncities || a->interval != b->interval)
		return 0;
	for (size_t i = 0; i < a->ncities; i++)
		if (strcmp(a->cities[i], b->cities[i]) != 0)
			return 0;
	return 1;
}

int wconfig_update(char err[EVC_ERR_LEN], struct wconfig *cur, const char *text, size_t len, const char *base_dir)
{
	struct wconfig *n = xmalloc(sizeof *n);
	int rc = -1;

	if (wconfig_parse(err, text, len, base_dir, n) == 0) {
		rc = wconfig_equal(cur, n) ? 0 : 1;
		if (rc == 1)
			*cur = *n;
	}
	free(n);
	return rc;
}

void wconfig_dirname(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		xstrlcpy(dir, ".", len);
		return;
	}
	size_t n = (size_t)(slash - path);
	if (n == 0)
		n = 1; /* "/config.json" lives in "/" */
	if (n >= len)
		n = len - 1;
	memcpy(dir, path, n);
	dir[n] = '\0';
}

/* open + fstat, so what is checked is what is read. O_NONBLOCK: a FIFO in
 * the path must not hang the loop. */
static int open_regular(char err[EVC_ERR_LEN], const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd == -1) {
		evc_seterr(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) == -1) {
		evc_seterr(err, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		evc_seterr(err, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	return fd;
}

static int read_all(char err[EVC_ERR_LEN], int fd, const char *path, size_t max, char **text, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = xmalloc(cap + 1);

	for (;;) {
		if (n == cap) {
			if (cap > max)
				break;
			cap *= 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			evc_seterr(err, "%s: %s", path, strerror(errno));
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max)
			break;
	}
	if (n > max) {
		evc_seterr(err, "%s: larger than %zu bytes", path, max);
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

int wconfig_read_file(char err[EVC_ERR_LEN], const char *path, size_t max, char **text, size_t *len)
{
	struct stat st;
	int fd = open_regular(err, path, &st);

	if (fd == -1)
		return -1;
	int rc = read_all(err, fd, path, max, text, len);
	close(fd);
	return rc;
}

int wconfig_secret_parse(char err[EVC_ERR_LEN], const char *text, size_t len, const char *what, char *out)
{
	size_t n = len;

	if (n > 0 && text[n - 1] == '\n')
		n--;
	if (n > 0 && text[n - 1] == '\r')
		n--;
	if (n == 0) {
		evc_seterr(err, "the %s is empty", what);
		return -1;
	}
	if (n > WCONFIG_SECRET_MAX) {
		evc_seterr(err, "the %s is longer than %d characters", what, WCONFIG_SECRET_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\n') {
			evc_seterr(err, "the %s file must hold one line only", what);
			return -1;
		}
		if (c <= 0x20 || c >= 0x7f) {
			evc_seterr(err, "the %s has a character that is not printable ASCII (or a space) at %zu", what,
				   i + 1);
			return -1;
		}
	}
	memcpy(out, text, n);
	out[n] = '\0';
	return 0;
}
