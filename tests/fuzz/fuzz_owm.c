// fuzz-sources: src/weather/owm.c src/weather/wconfig.c src/weather/wpost.c src/common/msg.c src/common/utf8.c src/common/state.c src/common/xalloc.c src/common/err.c
// fuzz-libs: -ljansson -lcurl
/* libFuzzer target for what EV_W reads from others. The first byte picks:
 *   0  the provider's answer (owm_parse): a temperature taken is finite
 *      and within -100..100;
 *   1  config.json (wconfig_parse): a config taken keeps every bound (1..100
 *      cities of 1..64 UTF-8 characters without control characters, no two
 *      alike, interval 1..3600, an http(s) provider) and re-reading the same
 *      text changes nothing;
 *   2  Central's answer (wpost_parse_answer) and its error bodies
 *      (wpost_status_text): bounded, printable text;
 *   3  a city name (owm_url): libcurl parses the URL and q unescapes back to
 *      the very name, the key stays in appid;
 *   4  text to scrub (owm_redact + owm_clean): no control character and no
 *      key left. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "evc/utf8.h"
#include "src/weather/owm.h"
#include "src/weather/wconfig.h"
#include "src/weather/wpost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                       \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			fprintf(stderr, "fuzz_owm: check failed: %s (line %d)\n", #c, __LINE__);                     \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

static void printable(const char *s)
{
	size_t n = strlen(s);
	CHECK(utf8_valid(s, n, NULL));
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		CHECK(c >= 0x20 && c != 0x7f);
		CHECK(!(c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] < 0xa0));
	}
}

static void fuzz_config(const char *p, size_t n)
{
	static struct wconfig c, again;
	char err[EVC_ERR_LEN];

	if (wconfig_parse(err, p, n, "/etc/evc", &c) == -1) {
		CHECK(memchr(err, '\0', sizeof err) != NULL);
		return;
	}
	CHECK(c.ncities >= 1 && c.ncities <= WCONFIG_CITIES_MAX);
	CHECK(c.interval >= 1 && c.interval <= WCONFIG_INTERVAL_MAX);
	CHECK(strncasecmp(c.provider, "http://", 7) == 0 || strncasecmp(c.provider, "https://", 8) == 0);
	size_t pl = strlen(c.provider);
	CHECK(pl > 0 && c.provider[pl - 1] != '/');
	CHECK(c.api_key_file[0] != '\0');
	for (size_t i = 0; i < c.ncities; i++) {
		size_t chars;
		CHECK(utf8_valid(c.cities[i], strlen(c.cities[i]), &chars));
		CHECK(chars >= 1 && chars <= WCONFIG_CITY_CHARS);
		printable(c.cities[i]);
		for (size_t j = 0; j < i; j++)
			CHECK(strcasecmp(c.cities[i], c.cities[j]) != 0);
	}
	again = c;
	CHECK(wconfig_update(err, &again, p, n, "/etc/evc") == 0);
	CHECK(wconfig_equal(&again, &c));
}

static void fuzz_url(const char *p, size_t n)
{
	char city[WCONFIG_CITY_BYTES + 1], err[EVC_ERR_LEN];

	if (n == 0 || n > WCONFIG_CITY_BYTES || memchr(p, '\0', n) != NULL) /* no city is empty */
		return;
	memcpy(city, p, n);
	city[n] = '\0';
	char *url = owm_url(err, "https://api.example", city, "k&y=1");
	CHECK(url != NULL);
	CURLU *u = curl_url();
	char *q = NULL;
	CHECK(curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK);
	CHECK(curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK);
	/* q=<escaped>&appid=<escaped>&units=metric: the name never spills */
	CHECK(strncmp(q, "q=", 2) == 0);
	char *amp = strchr(q + 2, '&');
	CHECK(amp != NULL && strcmp(amp, "&appid=k%26y%3D1&units=metric") == 0);
	int len = 0;
	char *back = curl_easy_unescape(NULL, q + 2, (int)(amp - (q + 2)), &len);
	CHECK(back != NULL && (size_t)len == n && memcmp(back, city, n) == 0);
	curl_free(back);
	curl_free(q);
	curl_url_cleanup(u);
	free(url);
}

static void fuzz_scrub(const char *p, size_t n)
{
	char s[600];
	const char *key = "s3cr&t";

	if (n >= sizeof s - 40)
		n = sizeof s - 41;
	memcpy(s, p, n);
	s[n] = '\0';
	owm_redact(s, sizeof s, key);
	CHECK(strstr(s, key) == NULL && strstr(s, "s3cr%26t") == NULL);
	owm_clean(s);
	printable(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[EVC_ERR_LEN];

	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	switch (data[0] % 5) {
	case 0: {
		double t = 1234;
		if (owm_parse(err, p, n, &t) == 0)
			CHECK(t >= OWM_TEMP_MIN && t <= OWM_TEMP_MAX);
		else
			printable(err);
		break;
	}
	case 1:
		fuzz_config(p, n);
		break;
	case 2: {
		struct wpost_answer a;
		if (wpost_parse_answer(err, p, n, &a) == 0) {
			CHECK(a.alert == 0 || a.alert == 1);
			CHECK(a.ncps <= WPOST_CPS_MAX);
			CHECK(strlen(a.cps) < WPOST_CPS_TEXT);
		} else {
			printable(err);
		}
		wpost_status_text(err, 400, p, n);
		printable(err);
		break;
	}
	case 3:
		fuzz_url(p, n);
		break;
	default:
		fuzz_scrub(p, n);
		break;
	}
	return 0;
}
