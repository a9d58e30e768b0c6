/* EV_W's pure rules: config.json (good, each bad field, re-read keeps the
 * last good one, the file's size bounded), what a secret may hold, the provider's URL (odd city names)
 * and answers (shapes, huge numbers, strings, NaN, missing main), the key
 * scrubbed from any text, Central's URL, bodies and answers, the backoff
 * sequence and its bounds, and the outbox keeping the latest per city. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>

#include "src/weather/owm.h"
#include "src/weather/wconfig.h"
#include "src/weather/wpost.h"

#define GOOD "{\"provider\":\"https://api.openweathermap.org\",\"api_key_file\":\"owm.key\"," \
	     "\"cities\":[\"Madrid\",\"Barcelona\",\"Valencia\"],\"interval\":4}"

static struct wconfig cfg;
static char err[EVC_ERR_LEN];

static int parse(const char *text)
{
	err[0] = '\0';
	return wconfig_parse(err, text, strlen(text), "/etc/evc", &cfg);
}

/* text must be refused with an error containing want. */
static void refused(const char *text, const char *want)
{
	int rc = parse(text);
	if (rc != -1 || strstr(err, want) == NULL)
		print_error("config %s\n  rc=%d err='%s', wanted '%s'\n", text, rc, err, want);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, want));
}

/* ---- config ---------------------------------------------------------- */

static void config_good(void **state)
{
	(void)state;
	assert_int_equal(parse(GOOD), 0);
	assert_string_equal(cfg.provider, "https://api.openweathermap.org");
	assert_string_equal(cfg.api_key_file, "/etc/evc/owm.key");
	assert_int_equal(cfg.ncities, 3);
	assert_string_equal(cfg.cities[0], "Madrid");
	assert_string_equal(cfg.cities[2], "Valencia");
	assert_int_equal(cfg.interval, 4);

	/* interval defaults to 4; an absolute key file stays; a path prefix
	 * and trailing slashes on the provider; UTF-8 names */
	assert_int_equal(parse("{\"provider\":\"http://127.0.0.1:8080/owm/\",\"api_key_file\":\"/k/owm.key\","
			       "\"cities\":[\"San Sebasti\\u00e1n\",\"A Coru\xc3\xb1" "a\"]}"),
			 0);
	assert_string_equal(cfg.provider, "http://127.0.0.1:8080/owm");
	assert_string_equal(cfg.api_key_file, "/k/owm.key");
	assert_string_equal(cfg.cities[0], "San Sebasti\xc3\xa1n");
	assert_string_equal(cfg.cities[1], "A Coru\xc3\xb1" "a");
	assert_int_equal(cfg.interval, WCONFIG_INTERVAL_DEFAULT);

	/* relative key file with the current folder as base */
	assert_int_equal(wconfig_parse(err, GOOD, strlen(GOOD), ".", &cfg), 0);
	assert_string_equal(cfg.api_key_file, "owm.key");

	/* bounds that are still good: interval 1 and 3600, 100 cities of 64
	 * characters (4-byte ones) */
	assert_int_equal(parse("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"],\"interval\":1}"),
			 0);
	assert_int_equal(parse("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"],\"interval\":3600}"),
			 0);
	char *big = malloc(WCONFIG_FILE_MAX);
	size_t n = (size_t)sprintf(big, "{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[");
	for (int i = 0; i < WCONFIG_CITIES_MAX; i++) {
		n += (size_t)sprintf(big + n, "%s\"%02d", i ? "," : "", i);
		for (int k = 0; k < WCONFIG_CITY_CHARS - 2; k++)
			n += (size_t)sprintf(big + n, "\xf0\x9f\x8c\xa7"); /* a 4-byte character */
		n += (size_t)sprintf(big + n, "\"");
	}
	sprintf(big + n, "]}");
	assert_int_equal(parse(big), 0);
	assert_int_equal(cfg.ncities, WCONFIG_CITIES_MAX);
	assert_int_equal(strlen(cfg.cities[99]), 2 + 4 * (WCONFIG_CITY_CHARS - 2));
	free(big);
}

static void config_bad_fields(void **state)
{
	(void)state;
	refused("", "not JSON");
	refused("{\"provider\":", "not JSON");
	refused("[1,2]", "must be a JSON object");
	refused("{\"provider\":\"https://x\",\"provider\":\"https://y\",\"api_key_file\":\"k\",\"cities\":[\"a\"]}",
		"not JSON"); /* duplicate keys */
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"],\"intervall\":4}",
		"unknown field 'intervall'");
	/* provider */
	refused("{\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "provider: missing");
	refused("{\"provider\":4,\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "provider: must be a string");
	refused("{\"provider\":\"ftp://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "provider:");
	refused("{\"provider\":\"api.openweathermap.org\",\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "provider:");
	refused("{\"provider\":\"file:///etc/passwd\",\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "provider:");
	refused("{\"provider\":\"https://u:p@x\",\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "provider: no user");
	refused("{\"provider\":\"https://x/?appid=1\",\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "provider: no query");
	refused("{\"provider\":\"https://x/#f\",\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "provider: no fragment");
	refused("{\"provider\":\"https://x y\",\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "provider:");
	refused("{\"provider\":\"\",\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "provider:");
	refused("{\"provider\":\"https://x\\u0000y\",\"api_key_file\":\"k\",\"cities\":[\"a\"]}", "not JSON"); /* jansson refuses NUL */
	/* api_key_file */
	refused("{\"provider\":\"https://x\",\"cities\":[\"a\"]}", "api_key_file: missing");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"\",\"cities\":[\"a\"]}", "api_key_file:");
	refused("{\"provider\":\"https://x\",\"api_key_file\":[\"k\"],\"cities\":[\"a\"]}", "api_key_file: must be");
	/* cities */
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\"}", "cities: missing");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[]}", "cities: must be a list of 1 to 100");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":\"Madrid\"}", "cities: must be a list");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\",3]}", "cities[1]: must be a string");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"\"]}", "cities[0]: empty");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\\u0000b\"]}", "not JSON");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\\nb\"]}", "cities[0]: holds a control");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\\u0085b\"]}", "cities[0]: holds a control");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\" Madrid\"]}", "cities[0]: leading or trailing");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"Madrid\",\"MADRID\"]}",
		"cities[1]: 'MADRID' repeats cities[0]");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"M\\u00e1laga\",\"M\\u00c1LAGA\"]}",
		"cities[1]: 'M\xc3\x81LAGA' repeats cities[0]"); /* accents fold as Central folds them */
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\\xff\"]}", "not JSON"); /* bad UTF-8 */
	char buf[8192];
	size_t n = (size_t)sprintf(buf, "{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"");
	for (int i = 0; i < WCONFIG_CITY_CHARS + 1; i++)
		buf[n++] = 'x';
	sprintf(buf + n, "\"]}");
	refused(buf, "cities[0]: more than 64 characters");
	n = (size_t)sprintf(buf, "{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[");
	for (int i = 0; i <= WCONFIG_CITIES_MAX; i++)
		n += (size_t)sprintf(buf + n, "%s\"c%d\"", i ? "," : "", i);
	sprintf(buf + n, "]}");
	refused(buf, "cities: must be a list of 1 to 100");
	/* interval */
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"],\"interval\":0}", "interval:");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"],\"interval\":3601}", "interval:");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"],\"interval\":-4}", "interval:");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"],\"interval\":4.5}", "interval:");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"],\"interval\":\"4\"}", "interval:");
	refused("{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"],\"interval\":1e300}", "interval:");
}

static void config_reread_keeps_last_good(void **state)
{
	(void)state;
	struct wconfig cur;
	assert_int_equal(wconfig_parse(err, GOOD, strlen(GOOD), ".", &cur), 0);
	/* the same text: no change */
	assert_int_equal(wconfig_update(err, &cur, GOOD, strlen(GOOD), "."), 0);
	/* a city added: changed */
	const char *more = "{\"provider\":\"https://api.openweathermap.org\",\"api_key_file\":\"owm.key\","
			   "\"cities\":[\"Madrid\",\"Barcelona\",\"Valencia\",\"Sevilla\"],\"interval\":4}";
	assert_int_equal(wconfig_update(err, &cur, more, strlen(more), "."), 1);
	assert_int_equal(cur.ncities, 4);
	assert_string_equal(cur.cities[3], "Sevilla");
	/* broken text, then a bad field: -1, and the last good one stays */
	struct wconfig before = cur;
	assert_int_equal(wconfig_update(err, &cur, "{\"provider\":", 12, "."), -1);
	assert_non_null(strstr(err, "not JSON"));
	const char *bad = "{\"provider\":\"https://x\",\"api_key_file\":\"k\",\"cities\":[\"a\"],\"interval\":0}";
	assert_int_equal(wconfig_update(err, &cur, bad, strlen(bad), "."), -1);
	assert_non_null(strstr(err, "interval"));
	assert_true(wconfig_equal(&cur, &before));
	assert_int_equal(cur.ncities, 4);
	/* and good again */
	assert_int_equal(wconfig_update(err, &cur, GOOD, strlen(GOOD), "."), 1);
	assert_int_equal(cur.ncities, 3);
}

static void config_dirname(void **state)
{
	(void)state;
	char d[64];
	wconfig_dirname("config.json", d, sizeof d);
	assert_string_equal(d, ".");
	wconfig_dirname("/etc/evc/config.json", d, sizeof d);
	assert_string_equal(d, "/etc/evc");
	wconfig_dirname("/config.json", d, sizeof d);
	assert_string_equal(d, "/");
	wconfig_dirname("a/b", d, sizeof d);
	assert_string_equal(d, "a");
}

/* ---- secret files ------------------------------------------------------- */

static void secret_parse(void **state)
{
	(void)state;
	char out[WCONFIG_SECRET_MAX + 1];
	assert_int_equal(wconfig_secret_parse(err, "abc123\n", 7, "API key", out), 0);
	assert_string_equal(out, "abc123");
	assert_int_equal(wconfig_secret_parse(err, "abc123\r\n", 8, "API key", out), 0);
	assert_string_equal(out, "abc123");
	assert_int_equal(wconfig_secret_parse(err, "abc123", 6, "API key", out), 0);
	assert_int_equal(wconfig_secret_parse(err, "\n", 1, "API key", out), -1);
	assert_non_null(strstr(err, "empty"));
	assert_int_equal(wconfig_secret_parse(err, "abc\ndef\n", 8, "API key", out), -1);
	assert_non_null(strstr(err, "one line"));
	assert_int_equal(wconfig_secret_parse(err, "ab c", 4, "API key", out), -1);
	assert_int_equal(wconfig_secret_parse(err, "ab\x01", 3, "API key", out), -1);
	/* the error never quotes the secret */
	assert_int_equal(wconfig_secret_parse(err, "s3cr3t\x7f", 7, "API key", out), -1);
	assert_null(strstr(err, "s3cr3t"));
	char longer[WCONFIG_SECRET_MAX + 2];
	memset(longer, 'a', sizeof longer);
	assert_int_equal(wconfig_secret_parse(err, longer, sizeof longer, "API key", out), -1);
}

static void config_file_bounded(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_weather.XXXXXX", path[128], *text;
	size_t len;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/config.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(GOOD, f);
	fclose(f);
	assert_int_equal(wconfig_read_file(err, path, 4, &text, &len), -1);
	assert_non_null(strstr(err, "larger than 4 bytes"));
	assert_int_equal(wconfig_read_file(err, path, WCONFIG_FILE_MAX, &text, &len), 0);
	assert_int_equal(len, strlen(GOOD));
	assert_string_equal(text, GOOD);
	free(text);
	assert_int_equal(wconfig_read_file(err, "/nonexistent/config.json", WCONFIG_FILE_MAX, &text, &len), -1);
	assert_non_null(strstr(err, "/nonexistent/config.json"));
	assert_int_equal(wconfig_read_file(err, dir, WCONFIG_FILE_MAX, &text, &len), -1);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(path);
	rmdir(dir);
}

/* ---- the provider -------------------------------------------------------- */

static void url_odd_cities(void **state)
{
	(void)state;
	char *u = owm_url(err, "https://api.openweathermap.org", "Madrid", "k3y");
	assert_string_equal(u, "https://api.openweathermap.org/data/2.5/weather?q=Madrid&appid=k3y&units=metric");
	free(u);
	u = owm_url(err, "http://127.0.0.1:9", "San Sebasti\xc3\xa1n", "a b&c=d");
	assert_string_equal(u, "http://127.0.0.1:9/data/2.5/weather?q=San%20Sebasti%C3%A1n&appid=a%20b%26c%3Dd&units=metric");
	free(u);
	/* '&', '=', '#', '?', '+', '/' and '%' in a name stay inside q */
	u = owm_url(err, "https://x", "Tom & Jerry=1#?+/%", "k");
	assert_string_equal(u, "https://x/data/2.5/weather?q=Tom%20%26%20Jerry%3D1%23%3F%2B%2F%25&appid=k&units=metric");
	free(u);
	u = owm_url(err, "https://x/prefix", "\xe6\x9d\xb1\xe4\xba\xac", "k"); /* 東京 */
	assert_string_equal(u, "https://x/prefix/data/2.5/weather?q=%E6%9D%B1%E4%BA%AC&appid=k&units=metric");
	free(u);
	/* libcurl takes what we build as a URL */
	u = owm_url(err, "https://x", "Tom & Jerry", "k");
	CURLU *cu = curl_url();
	assert_int_equal(curl_url_set(cu, CURLUPART_URL, u, 0), CURLUE_OK);
	char *q = NULL;
	assert_int_equal(curl_url_get(cu, CURLUPART_QUERY, &q, 0), CURLUE_OK);
	assert_string_equal(q, "q=Tom%20%26%20Jerry&appid=k&units=metric");
	curl_free(q);
	curl_url_cleanup(cu);
	free(u);
}

static void owm_good_answers(void **state)
{
	(void)state;
	double t = 99;
	const char *a = "{\"coord\":{\"lon\":-3.7,\"lat\":40.4},\"main\":{\"temp\":-2.5,\"humidity\":50},\"name\":\"Madrid\"}";
	assert_int_equal(owm_parse(err, a, strlen(a), &t), 0);
	assert_true(t == -2.5);
	assert_int_equal(owm_parse(err, "{\"main\":{\"temp\":20}}", 20, &t), 0); /* an integer */
	assert_true(t == 20.0);
	assert_int_equal(owm_parse(err, "{\"main\":{\"temp\":-100}}", 22, &t), 0);
	assert_int_equal(owm_parse(err, "{\"main\":{\"temp\":100.0}}", 23, &t), 0);
	assert_int_equal(owm_parse(err, "{\"main\":{\"temp\":1.25e1}}", 24, &t), 0);
	assert_true(t == 12.5);
	/* not NUL-terminated: only len bytes count */
	assert_int_equal(owm_parse(err, "{\"main\":{\"temp\":3}}garbage", 19, &t), 0);
}

static void owm_bad(const char *body, const char *want)
{
	double t = 42;
	int rc = owm_parse(err, body, strlen(body), &t);
	if (rc != -1 || strncmp(err, want, strlen(want)) != 0)
		print_error("answer %s: rc=%d err='%s', wanted '%s...'\n", body, rc, err, want);
	assert_int_equal(rc, -1);
	assert_int_equal(strncmp(err, want, strlen(want)), 0);
	assert_true(t == 42); /* untouched */
}

static void owm_bad_answers(void **state)
{
	(void)state;
	owm_bad("", "bad JSON");
	owm_bad("<html>502 Bad Gateway</html>", "bad JSON");
	owm_bad("{\"main\":{\"temp\":12.5,\"simulated\":tru", "bad JSON");
	owm_bad("[{\"main\":{\"temp\":1}}]", "bad JSON: the answer is a list");
	owm_bad("\"12\"", "bad JSON");
	owm_bad("{\"main\":{\"temp\":NaN}}", "bad JSON");
	owm_bad("{\"main\":{\"temp\":Infinity}}", "bad JSON");
	owm_bad("{\"main\":{\"temp\":1e400}}", "bad JSON"); /* overflows a double */
	owm_bad("{\"main\":{\"temp\":123456789012345678901234567890}}", "bad JSON"); /* too big an integer */
	owm_bad("{\"cod\":200,\"name\":\"Madrid\"}", "no temperature: the answer has no \"main\"");
	owm_bad("{\"main\":null}", "no temperature: \"main\" is null");
	owm_bad("{\"main\":[1]}", "no temperature: \"main\" is a list");
	owm_bad("{\"main\":{}}", "no temperature: the answer has no main.temp");
	owm_bad("{\"main\":{\"temp\":\"12.5\"}}", "no temperature: main.temp is a string");
	owm_bad("{\"main\":{\"temp\":true}}", "no temperature: main.temp is a boolean");
	owm_bad("{\"main\":{\"temp\":null}}", "no temperature: main.temp is null");
	owm_bad("{\"main\":{\"temp\":1e300}}", "no temperature: main.temp 1e+300 is outside");
	owm_bad("{\"main\":{\"temp\":-100.01}}", "no temperature");
	owm_bad("{\"main\":{\"temp\":285.15}}", "no temperature"); /* Kelvin: units not honoured */
	owm_bad("{\"main\":{\"temp\":99999999999999999}}", "no temperature");
}

static void owm_statuses(void **state)
{
	(void)state;
	owm_status_text(err, 401);
	assert_string_equal(err, "provider refused the API key (HTTP 401)");
	owm_status_text(err, 404);
	assert_string_equal(err, "city not found (HTTP 404)");
	owm_status_text(err, 500);
	assert_string_equal(err, "provider error (HTTP 500)");
	owm_status_text(err, 503);
	assert_string_equal(err, "provider error (HTTP 503)");
	owm_status_text(err, 429);
	assert_non_null(strstr(err, "429"));
	owm_status_text(err, 301);
	assert_non_null(strstr(err, "redirect"));
	owm_status_text(err, 418);
	assert_non_null(strstr(err, "418"));
}

static void redact_and_clean(void **state)
{
	(void)state;
	char s[256];
	snprintf(s, sizeof s, "GET /x?appid=s3cret&q=1 failed: s3cret");
	owm_redact(s, sizeof s, "s3cret");
	assert_string_equal(s, "GET /x?appid=***&q=1 failed: ***");
	/* the escaped form too */
	snprintf(s, sizeof s, "appid=a%%20b%%26c and a b&c");
	owm_redact(s, sizeof s, "a b&c");
	assert_string_equal(s, "appid=*** and ***");
	/* a one-character key in a full buffer: masked in place */
	char small[6] = "xkxkx";
	owm_redact(small, sizeof small, "k");
	assert_null(strchr(small, 'k'));
	owm_redact(s, sizeof s, ""); /* no-op */
	/* control characters and broken UTF-8 become '?' */
	snprintf(s, sizeof s, "a\x1b[2Jb\x7f\xff\xc3\xa1\xc2\x85z");
	owm_clean(s);
	assert_string_equal(s, "a?[2Jb??\xc3\xa1??z");
}

/* ---- Central ----------------------------------------------------------- */

static void central_url(void **state)
{
	(void)state;
	char out[WPOST_URL_MAX + 1];
	assert_int_equal(wpost_readings_url(err, "https://127.0.0.1:8443", out), 0);
	assert_string_equal(out, "https://127.0.0.1:8443/api/v1/weather/readings");
	assert_int_equal(wpost_readings_url(err, "https://central.example:8443/evc/", out), 0);
	assert_string_equal(out, "https://central.example:8443/evc/api/v1/weather/readings");
	assert_int_equal(wpost_readings_url(err, "https://[::1]:8443", out), 0);
	assert_int_equal(wpost_readings_url(err, "http://127.0.0.1:8443", out), -1);
	assert_non_null(strstr(err, "HTTPS only"));
	assert_int_equal(wpost_readings_url(err, "127.0.0.1:8443", out), -1);
	assert_int_equal(wpost_readings_url(err, "ftp://127.0.0.1", out), -1);
	assert_int_equal(wpost_readings_url(err, "https://u:p@127.0.0.1", out), -1);
	assert_int_equal(wpost_readings_url(err, "https://127.0.0.1/?x=1", out), -1);
	assert_int_equal(wpost_readings_url(err, "", out), -1);
	char longer[WPOST_URL_MAX + 16];
	memset(longer, 'a', sizeof longer);
	memcpy(longer, "https://x/", 10);
	longer[sizeof longer - 1] = '\0';
	assert_int_equal(wpost_readings_url(err, longer, out), -1);
}

static void bodies(void **state)
{
	(void)state;
	char *b = wpost_body_reading("Madrid", -2.5);
	assert_string_equal(b, "{\"city\":\"Madrid\",\"temperature\":-2.5}");
	free(b);
	b = wpost_body_reading("San Sebasti\xc3\xa1n", 12.3);
	assert_string_equal(b, "{\"city\":\"San Sebasti\xc3\xa1n\",\"temperature\":12.3}");
	free(b);
	b = wpost_body_reading("A \"q\" \\ b", 0.0);
	json_t *j = json_loads(b, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "city")), "A \"q\" \\ b");
	assert_true(json_real_value(json_object_get(j, "temperature")) == 0.0);
	json_decref(j);
	free(b);
	b = wpost_body_error("Atlantis", "city not found (HTTP 404)");
	assert_string_equal(b, "{\"city\":\"Atlantis\",\"error\":\"city not found (HTTP 404)\"}");
	free(b);
	/* a long error is cut on a character boundary */
	char e[600];
	memset(e, 'x', sizeof e);
	memcpy(e + WPOST_ERROR_MAX - 1, "\xc3\xa1", 2);
	e[sizeof e - 1] = '\0';
	b = wpost_body_error("X", e);
	j = json_loads(b, 0, NULL);
	assert_non_null(j);
	assert_int_equal(strlen(json_string_value(json_object_get(j, "error"))), WPOST_ERROR_MAX - 1);
	json_decref(j);
	free(b);
}

static void central_answers(void **state)
{
	(void)state;
	struct wpost_answer a;
	const char *s = "{\"alert\":true,\"cps\":[\"MAD-01\",\"MAD-02\"]}";
	assert_int_equal(wpost_parse_answer(err, s, strlen(s), &a), 0);
	assert_int_equal(a.alert, 1);
	assert_int_equal(a.ncps, 2);
	assert_string_equal(a.cps, "MAD-01,MAD-02");
	s = "{\"alert\":false,\"cps\":[],\"extra\":1}";
	assert_int_equal(wpost_parse_answer(err, s, strlen(s), &a), 0);
	assert_int_equal(a.alert, 0);
	assert_string_equal(a.cps, "");
	const char *bad[] = {
		"", "[]", "{\"cps\":[]}", "{\"alert\":1,\"cps\":[]}", "{\"alert\":true}", "{\"alert\":true,\"cps\":{}}",
		"{\"alert\":true,\"cps\":[1]}", "{\"alert\":true,\"cps\":[\"bad id!\"]}",
		"{\"alert\":true,\"cps\":[\"\"]}", "{\"alert\":true,\"cps\":[\"A\\u0000B\"]}",
		"{\"alert\":true,\"cps\":[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"]}", /* 33 characters */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		a.alert = 7;
		if (wpost_parse_answer(err, bad[i], strlen(bad[i]), &a) != -1)
			print_error("answer %s taken\n", bad[i]);
		assert_int_equal(wpost_parse_answer(err, bad[i], strlen(bad[i]), &a), -1);
		assert_int_equal(a.alert, 0);
		assert_non_null(strstr(err, "bad answer from Central"));
	}
	/* many ids: all counted, the text is cut with ",..." */
	char big[64 * 1024];
	size_t n = (size_t)sprintf(big, "{\"alert\":true,\"cps\":[");
	for (int i = 0; i < 500; i++)
		n += (size_t)sprintf(big + n, "%s\"CP-%04d\"", i ? "," : "", i);
	sprintf(big + n, "]}");
	assert_int_equal(wpost_parse_answer(err, big, strlen(big), &a), 0);
	assert_int_equal(a.ncps, 500);
	assert_true(strlen(a.cps) < WPOST_CPS_TEXT);
	assert_string_equal(a.cps + strlen(a.cps) - 4, ",...");
	assert_int_equal(strncmp(a.cps, "CP-0000,CP-0001,", 16), 0);
	/* more than the bound is a bad answer */
	n = (size_t)sprintf(big, "{\"alert\":true,\"cps\":[");
	for (int i = 0; i <= WPOST_CPS_MAX; i++)
		n += (size_t)sprintf(big + n, "%s\"C%d\"", i ? "," : "", i);
	sprintf(big + n, "]}");
	assert_int_equal(wpost_parse_answer(err, big, strlen(big), &a), -1);
}

static void central_statuses(void **state)
{
	(void)state;
	assert_int_equal(wpost_fate_of(200), WPOST_DELIVERED);
	assert_int_equal(wpost_fate_of(0), WPOST_RETRY);
	assert_int_equal(wpost_fate_of(503), WPOST_RETRY);
	assert_int_equal(wpost_fate_of(500), WPOST_RETRY);
	assert_int_equal(wpost_fate_of(429), WPOST_RETRY);
	assert_int_equal(wpost_fate_of(401), WPOST_REFUSED);
	assert_int_equal(wpost_fate_of(403), WPOST_REFUSED);
	assert_int_equal(wpost_fate_of(400), WPOST_REFUSED);
	assert_int_equal(wpost_fate_of(404), WPOST_REFUSED);
	const char *b = "{\"error\":\"bad token\"}";
	wpost_status_text(err, 401, b, strlen(b));
	assert_string_equal(err, "HTTP 401: bad token");
	wpost_status_text(err, 401, NULL, 0);
	assert_non_null(strstr(err, "refused the token"));
	wpost_status_text(err, 403, "<html>", 6);
	assert_non_null(strstr(err, "role"));
	b = "{\"error\":\"evil\\u001b[2J\"}";
	wpost_status_text(err, 400, b, strlen(b));
	assert_string_equal(err, "HTTP 400: evil?[2J");
	wpost_status_text(err, 502, "", 0);
	assert_string_equal(err, "HTTP 502");
}

static void backoff_bounds(void **state)
{
	(void)state;
	struct wpost_backoff b;
	double lo[] = {0.25, 0.5, 1, 2, 4, 8, 15, 15, 15}, hi[] = {0.5, 1, 2, 4, 8, 16, 30, 30, 30};
	/* every draw within [cur/2, cur]: lowest and highest jitter */
	for (int pass = 0; pass < 2; pass++) {
		wpost_backoff_reset(&b);
		for (size_t i = 0; i < sizeof lo / sizeof lo[0]; i++) {
			double d = wpost_backoff_next(&b, pass == 0 ? 0.0 : 1.0);
			assert_true(fabs(d - (pass == 0 ? lo[i] : hi[i])) < 1e-9);
		}
	}
	/* random draws: bounded, and never shorter than the one before until
	 * the cap (each step's floor is the last step's ceiling) */
	srandom(7);
	for (int run = 0; run < 1000; run++) {
		double prev = 0;
		wpost_backoff_reset(&b);
		for (int i = 0; i < 30; i++) {
			double d = wpost_backoff_next(&b, (double)random() / RAND_MAX);
			assert_true(d >= WPOST_BACKOFF_BASE / 2 && d <= WPOST_BACKOFF_CAP);
			if (i < 6)
				assert_true(d >= prev);
			prev = d;
		}
		assert_true(b.cur == WPOST_BACKOFF_CAP);
	}
	/* junk jitter and an uninitialised state stay in bounds */
	b.cur = 0;
	assert_true(wpost_backoff_next(&b, NAN) == 0.25);
	assert_true(wpost_backoff_next(&b, 5.0) == 1.0);
	assert_true(wpost_backoff_next(&b, -1) == 1.0);
	/* a reset starts again at 0.5 */
	wpost_backoff_reset(&b);
	assert_true(wpost_backoff_next(&b, 1.0) == 0.5);
}

static struct wpost_item item(const char *city, double temp, double at)
{
	struct wpost_item it;
	memset(&it, 0, sizeof it);
	snprintf(it.city, sizeof it.city, "%s", city);
	it.temp = temp;
	it.read_at = at;
	return it;
}

static void outbox_latest_per_city(void **state)
{
	(void)state;
	static struct wpost_outbox ob;
	struct wpost_item it, out;
	memset(&ob, 0, sizeof ob);
	it = item("Madrid", 1, 1);
	wpost_outbox_put(&ob, &it);
	it = item("Barcelona", 2, 2);
	wpost_outbox_put(&ob, &it);
	/* a long outage: thousands of readings, still one per city */
	for (int i = 0; i < 5000; i++) {
		it = item(i % 2 ? "Madrid" : "MADRID", -i, 10 + i);
		wpost_outbox_put(&ob, &it);
	}
	assert_int_equal(ob.n, 2);
	assert_true(wpost_outbox_find(&ob, "madrid")->temp == -4999);
	/* oldest first */
	assert_int_equal(wpost_outbox_take(&ob, &out), 1);
	assert_string_equal(out.city, "Barcelona");
	/* a failed post goes back, unless a newer reading came meanwhile */
	assert_int_equal(wpost_outbox_putback(&ob, &out), 1);
	assert_int_equal(ob.n, 2);
	assert_int_equal(wpost_outbox_take(&ob, &out), 1);
	assert_string_equal(out.city, "Barcelona");
	it = item("Barcelona", 3, 6000);
	wpost_outbox_put(&ob, &it);
	assert_int_equal(wpost_outbox_putback(&ob, &out), 0);
	assert_true(wpost_outbox_find(&ob, "Barcelona")->temp == 3);
	/* one city up to case, accented letters too */
	it = item("M\xc3\xa1laga", 4, 6001);
	wpost_outbox_put(&ob, &it);
	it = item("M\xc3\x81LAGA", 5, 6002);
	wpost_outbox_put(&ob, &it);
	assert_int_equal(ob.n, 3);
	assert_true(wpost_outbox_find(&ob, "m\xc3\xa1laga")->temp == 5);
	wpost_outbox_drop(&ob, "M\xc3\xa1LAGA");
	assert_int_equal(ob.n, 2);
	/* a city dropped from the config */
	wpost_outbox_drop(&ob, "Barcelona");
	assert_null(wpost_outbox_find(&ob, "Barcelona"));
	assert_int_equal(ob.n, 1);
	/* full of other cities: the oldest goes */
	memset(&ob, 0, sizeof ob);
	for (int i = 0; i < WCONFIG_CITIES_MAX + 5; i++) {
		char name[16];
		snprintf(name, sizeof name, "c%d", i);
		it = item(name, i, i);
		wpost_outbox_put(&ob, &it);
	}
	assert_int_equal(ob.n, WCONFIG_CITIES_MAX);
	assert_null(wpost_outbox_find(&ob, "c4"));
	assert_non_null(wpost_outbox_find(&ob, "c5"));
	int n = 0;
	while (wpost_outbox_take(&ob, &out))
		n++;
	assert_int_equal(n, WCONFIG_CITIES_MAX);
	assert_int_equal(wpost_outbox_take(&ob, &out), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(config_good),
		cmocka_unit_test(config_bad_fields),
		cmocka_unit_test(config_reread_keeps_last_good),
		cmocka_unit_test(config_dirname),
		cmocka_unit_test(secret_parse),
		cmocka_unit_test(config_file_bounded),
		cmocka_unit_test(url_odd_cities),
		cmocka_unit_test(owm_good_answers),
		cmocka_unit_test(owm_bad_answers),
		cmocka_unit_test(owm_statuses),
		cmocka_unit_test(redact_and_clean),
		cmocka_unit_test(central_url),
		cmocka_unit_test(bodies),
		cmocka_unit_test(central_answers),
		cmocka_unit_test(central_statuses),
		cmocka_unit_test(backoff_bounds),
		cmocka_unit_test(outbox_latest_per_city),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
