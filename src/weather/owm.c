/* The provider's URL, answer and errors (see owm.h). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "evc/utf8.h"
#include "evc/xalloc.h"
#include "src/weather/owm.h"

char *owm_url(char err[EVC_ERR_LEN], const char *provider, const char *city, const char *key)
{
	/* The handle argument is ignored by libcurl (it only ever served
	 * character conversions on old platforms). */
	char *ec = curl_easy_escape(NULL, city, 0);
	char *ek = curl_easy_escape(NULL, key, 0);
	char *url = NULL;

	if (ec == NULL || ek == NULL) {
		evc_seterr(err, "cannot escape the request for city '%.80s'", city);
		goto out;
	}
	url = xasprintf("%s" OWM_PATH "?q=%s&appid=%s&units=metric", provider, ec, ek);
out:
	curl_free(ec);
	if (ek != NULL) {
		explicit_bzero(ek, strlen(ek));
		curl_free(ek);
	}
	return url;
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

int owm_parse(char err[EVC_ERR_LEN], const char *body, size_t len, double *temp)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr), *m, *t;
	int rc = -1;

	if (root == NULL) {
		/* jerr.text may quote a token of the body, which the provider
		 * controls: cleaned here, redacted by the caller who knows the key */
		evc_seterr(err, "bad JSON: %s", jerr.text);
		owm_clean(err);
		return -1;
	}
	if (!json_is_object(root)) {
		evc_seterr(err, "bad JSON: the answer is %s, not an object", json_kind(root));
		goto out;
	}
	m = json_object_get(root, "main");
	if (m == NULL) {
		evc_seterr(err, "no temperature: the answer has no \"main\"");
		goto out;
	}
	if (!json_is_object(m)) {
		evc_seterr(err, "no temperature: \"main\" is %s, not an object", json_kind(m));
		goto out;
	}
	t = json_object_get(m, "temp");
	if (t == NULL) {
		evc_seterr(err, "no temperature: the answer has no main.temp");
		goto out;
	}
	if (!json_is_number(t)) {
		evc_seterr(err, "no temperature: main.temp is %s, not a number", json_kind(t));
		goto out;
	}
	double v = json_number_value(t);
	if (!isfinite(v) || v < OWM_TEMP_MIN || v > OWM_TEMP_MAX) {
		evc_seterr(err, "no temperature: main.temp %.6g is outside %.0f..%.0f C", v, OWM_TEMP_MIN, OWM_TEMP_MAX);
		goto out;
	}
	*temp = v;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

void owm_status_text(char err[EVC_ERR_LEN], long status)
{
	if (status == 401)
		evc_seterr(err, "provider refused the API key (HTTP 401)");
	else if (status == 404)
		evc_seterr(err, "city not found (HTTP 404)");
	else if (status == 429)
		evc_seterr(err, "provider rate limit reached (HTTP 429)");
	else if (status == 400)
		evc_seterr(err, "provider refused the request (HTTP 400)");
	else if (status >= 500 && status <= 599)
		evc_seterr(err, "provider error (HTTP %ld)", status);
	else if (status >= 300 && status <= 399)
		evc_seterr(err, "provider redirects (HTTP %ld); give its final URL as provider", status);
	else
		evc_seterr(err, "unexpected answer from the provider (HTTP %ld)", status);
}

void owm_clean(char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n;) {
		const uint8_t *p = (const uint8_t *)s + i;
		size_t k = utf8_seq(p, n - i);
		if (k == 0 || utf8_control(utf8_decode(p, k, &k))) {
			/* a '?' per byte: the text keeps its length */
			size_t w = k == 0 ? 1 : k;
			memset(s + i, '?', w);
			i += w;
			continue;
		}
		i += k;
	}
}

static void redact_one(char *s, size_t size, const char *what)
{
	static const char mask[] = "***";
	size_t wl = strlen(what), ml = sizeof mask - 1;
	char *p = s;

	if (wl == 0)
		return;
	while ((p = strstr(p, what)) != NULL) {
		size_t tail = strlen(p + wl);
		/* the mask is never longer than what it hides, unless the key is
		 * one or two characters: then the text may only shrink to fit */
		if (ml <= wl || (size_t)(p - s) + ml + tail < size) {
			memmove(p + ml, p + wl, tail + 1);
			memcpy(p, mask, ml);
			p += ml;
		} else {
			memset(p, '*', wl);
			p += wl;
		}
	}
}

void owm_redact(char *s, size_t size, const char *key)
{
	if (key == NULL || key[0] == '\0' || s == NULL || size == 0)
		return;
	redact_one(s, size, key);
	char *ek = curl_easy_escape(NULL, key, 0);
	if (ek != NULL) {
		if (strcmp(ek, key) != 0)
			redact_one(s, size, ek);
		explicit_bzero(ek, strlen(ek));
		curl_free(ek);
	}
}
