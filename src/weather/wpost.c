/* Readings to Central (see wpost.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "evc/msg.h"
#include "evc/utf8.h"
#include "evc/xalloc.h"
#include "src/weather/owm.h"
#include "src/weather/wpost.h"

int wpost_readings_url(char err[EVC_ERR_LEN], const char *base, char out[WPOST_URL_MAX + 1])
{
	int rc = -1;
	char *scheme = NULL, *host = NULL, *part = NULL;
	CURLU *u = curl_url();
	size_t n = strlen(base);

	if (u == NULL) {
		evc_seterr(err, "out of memory");
		return -1;
	}
	if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) ||
	    (strncasecmp(base, "http://", 7) != 0 && strncasecmp(base, "https://", 8) != 0)) {
		evc_seterr(err, "'%.100s' is not an https:// URL", base);
		goto fail;
	}
	if (strcmp(scheme, "https") != 0) {
		evc_seterr(err, "Central's API is HTTPS only: the token must not travel in clear (use https://)");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		evc_seterr(err, "'%.100s' has no host", base);
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK) {
		evc_seterr(err, "'%.100s': give Central's URL without user, query or fragment "
			   "(e.g. https://127.0.0.1:8443)", base);
		goto fail;
	}
	while (n > 0 && base[n - 1] == '/')
		n--;
	if (n + sizeof WPOST_PATH - 1 > WPOST_URL_MAX) {
		evc_seterr(err, "Central's URL is longer than %zu bytes", WPOST_URL_MAX - (sizeof WPOST_PATH - 1));
		goto fail;
	}
	memcpy(out, base, n);
	memcpy(out + n, WPOST_PATH, sizeof WPOST_PATH);
	rc = 0;
fail:
	curl_free(part);
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

static char *dump(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));

	json_decref(o);
	if (s == NULL) { /* only on out of memory: jansson checked the UTF-8 */
		fprintf(stderr, "fatal: cannot encode a reading\n");
		abort();
	}
	/* jansson allocates with malloc: free() is right for the caller */
	return s;
}

char *wpost_body_reading(const char *city, double temp)
{
	json_t *o = json_object();

	json_object_set_new(o, "city", json_string(city));
	json_object_set_new(o, "temperature", json_real(temp));
	return dump(o);
}

char *wpost_body_error(const char *city, const char *error)
{
	char e[WPOST_ERROR_MAX + 1];
	size_t n = strlen(error);

	if (n > WPOST_ERROR_MAX)
		n = WPOST_ERROR_MAX;
	/* cut on a character boundary: jansson refuses a broken sequence */
	while (n > 0 && !utf8_valid(error, n, NULL))
		n--;
	memcpy(e, error, n);
	e[n] = '\0';
	json_t *o = json_object();
	json_object_set_new(o, "city", json_string(city));
	json_t *s = json_string(e);
	json_object_set_new(o, "error", s != NULL ? s : json_string("provider error"));
	return dump(o);
}

int wpost_parse_answer(char err[EVC_ERR_LEN], const char *body, size_t len, struct wpost_answer *a)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr), *al, *cps;
	int rc = -1;
	size_t used = 0;

	memset(a, 0, sizeof *a);
	if (root == NULL) {
		evc_seterr(err, "bad answer from Central: not JSON (%s)", jerr.text);
		owm_clean(err);
		return -1;
	}
	if (!json_is_object(root)) {
		evc_seterr(err, "bad answer from Central: not a JSON object");
		goto out;
	}
	al = json_object_get(root, "alert");
	if (!json_is_boolean(al)) {
		evc_seterr(err, "bad answer from Central: \"alert\" %s", al == NULL ? "missing" : "is not true or false");
		goto out;
	}
	cps = json_object_get(root, "cps");
	if (!json_is_array(cps)) {
		evc_seterr(err, "bad answer from Central: \"cps\" %s", cps == NULL ? "missing" : "is not a list");
		goto out;
	}
	if (json_array_size(cps) > WPOST_CPS_MAX) {
		evc_seterr(err, "bad answer from Central: more than %d CPs", WPOST_CPS_MAX);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(cps); i++) {
		json_t *id = json_array_get(cps, i);
		const char *s = json_string_value(id);
		if (s == NULL || strlen(s) != json_string_length(id) || !msg_valid_cp_id(s)) {
			evc_seterr(err, "bad answer from Central: cps[%zu] is not a CP id", i);
			goto out;
		}
		size_t sl = strlen(s);
		/* keep room for ",..." whenever something may follow */
		if (used != (size_t)-1 && used + (used ? 1 : 0) + sl + 4 < sizeof a->cps) {
			if (used)
				a->cps[used++] = ',';
			memcpy(a->cps + used, s, sl + 1);
			used += sl;
		} else if (used != (size_t)-1) {
			memcpy(a->cps + used, ",...", 5);
			used = (size_t)-1;
		}
	}
	a->alert = json_is_true(al);
	a->ncps = json_array_size(cps);
	rc = 0;
out:
	if (rc == -1)
		memset(a, 0, sizeof *a);
	json_decref(root);
	return rc;
}

void wpost_status_text(char err[EVC_ERR_LEN], long status, const char *body, size_t len)
{
	json_t *root = body != NULL && len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
	const char *e = json_string_value(json_object_get(root, "error"));
	char why[121];

	if (e != NULL && e[0] != '\0') {
		size_t n = strlen(e);
		if (n > sizeof why - 1)
			n = sizeof why - 1;
		while (n > 0 && !utf8_valid(e, n, NULL))
			n--;
		memcpy(why, e, n);
		why[n] = '\0';
		owm_clean(why);
		evc_seterr(err, "HTTP %ld: %s", status, why);
	} else if (status == 401) {
		evc_seterr(err, "HTTP 401: Central refused the token");
	} else if (status == 403) {
		evc_seterr(err, "HTTP 403: the token's role may not post weather readings");
	} else if (status == 404) {
		evc_seterr(err, "HTTP 404: no readings endpoint there (is it Central's API URL?)");
	} else {
		evc_seterr(err, "HTTP %ld", status);
	}
	json_decref(root);
}

enum wpost_fate wpost_fate_of(long status)
{
	if (status == 200)
		return WPOST_DELIVERED;
	if (status == 0 || status == 429 || status >= 500 || status < 200)
		return WPOST_RETRY;
	return WPOST_REFUSED;
}

void wpost_backoff_reset(struct wpost_backoff *b)
{
	b->cur = WPOST_BACKOFF_BASE;
}

double wpost_backoff_next(struct wpost_backoff *b, double u)
{
	if (!(b->cur >= WPOST_BACKOFF_BASE)) /* also a never-reset (zero) or NaN state */
		b->cur = WPOST_BACKOFF_BASE;
	if (!(u >= 0.0))
		u = 0.0;
	if (u > 1.0)
		u = 1.0;
	double d = b->cur * (0.5 + 0.5 * u);
	b->cur *= 2.0;
	if (b->cur > WPOST_BACKOFF_CAP)
		b->cur = WPOST_BACKOFF_CAP;
	return d;
}

struct wpost_item *wpost_outbox_find(struct wpost_outbox *ob, const char *city)
{
	for (size_t i = 0; i < ob->n; i++)
		if (utf8_fold_eq(ob->v[i].city, city))
			return &ob->v[i];
	return NULL;
}

static void remove_at(struct wpost_outbox *ob, size_t i)
{
	memmove(&ob->v[i], &ob->v[i + 1], (ob->n - i - 1) * sizeof ob->v[0]);
	ob->n--;
}

static size_t oldest(const struct wpost_outbox *ob)
{
	size_t k = 0;

	for (size_t i = 1; i < ob->n; i++)
		if (ob->v[i].read_at < ob->v[k].read_at)
			k = i;
	return k;
}

struct wpost_item *wpost_outbox_put(struct wpost_outbox *ob, const struct wpost_item *it)
{
	struct wpost_item *slot = wpost_outbox_find(ob, it->city);

	if (slot == NULL) {
		if (ob->n == WCONFIG_CITIES_MAX)
			remove_at(ob, oldest(ob));
		slot = &ob->v[ob->n++];
	}
	*slot = *it;
	return slot;
}

int wpost_outbox_putback(struct wpost_outbox *ob, const struct wpost_item *it)
{
	if (wpost_outbox_find(ob, it->city) != NULL || ob->n == WCONFIG_CITIES_MAX)
		return 0;
	ob->v[ob->n++] = *it;
	return 1;
}

int wpost_outbox_take(struct wpost_outbox *ob, struct wpost_item *out)
{
	if (ob->n == 0)
		return 0;
	size_t k = oldest(ob);
	*out = ob->v[k];
	remove_at(ob, k);
	return 1;
}

void wpost_outbox_drop(struct wpost_outbox *ob, const char *city)
{
	for (size_t i = 0; i < ob->n; i++)
		if (utf8_fold_eq(ob->v[i].city, city)) {
			remove_at(ob, i);
			return;
		}
}
