// fuzz-sources: src/registry/registry.c src/registry/ratelimit.c src/common/schema.c src/common/crypto.c src/common/msg.c src/common/utf8.c src/common/state.c src/common/xalloc.c src/common/err.c src/common/clock.c src/common/log.c src/common/evline.c
// fuzz-libs: -lsqlite3 -ljansson -lcrypto
/* libFuzzer target for EV_Registry's request handling (registry_handle),
 * against a real SQLite file in a temp folder. Input:
 *   byte 0  method (GET POST DELETE PUT HEAD or "")
 *   byte 1  credential: none, the installer token, the current secret of
 *           CP FZ-A, a stale secret, "Bearer " + bytes of the input, or
 *           the raw bytes as the whole header
 *   byte 2  Content-Type: none, application/json, with a charset, other
 *   byte 3  client address (IPv4, IPv6, mapped, garbage)
 *   byte 4  flags: 1 headers only, 2 body too large; the other six bits
 *           move the clock 0 to 15.75 s, so blocks of the rate limit
 *           start and end
 *   rest    PATH '\n' BODY; a PATH not starting with '/' is put after
 *           "/v1/cps/".
 * Checks on every answer: a known status (0 only for headers only), a JSON
 * object body with "error" for every refusal, Allow on 405, Retry-After
 * 1..60 on 429, no body on 204, a secret only in a 200/201 {id, secret},
 * never the installer token or a secret in the body or the log note. Every
 * 256 inputs: every stored secret_hash is 64 hex digits and no audit row
 * holds the token. The temp folder is removed at exit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "evc/crypto.h"
#include "evc/log.h"
#include "src/registry/registry.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                       \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			fprintf(stderr, "fuzz_registry: check failed: %s (line %d)\n", #c, __LINE__);               \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

static const char TOKEN[] = "fuzz-installer-token-0123456789abcdef";
static struct registry *reg;
static char secret_a[CRYPTO_SECRET_LEN + 1], stale_a[CRYPTO_SECRET_LEN + 1];
static double fake_now = 1000;
static unsigned long inputs;
static char tmpdir[] = "/tmp/fuzz_registry.XXXXXX";

static void cleanup(void)
{
	static const char *const files[] = {"net.db", "net.db-wal", "net.db-shm"};
	char path[128];
	registry_close(reg);
	reg = NULL;
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
		unlink(path);
	}
	rmdir(tmpdir);
}

static void handle(const struct registry_request *req, struct registry_response *resp)
{
	registry_handle(reg, req, resp);
}

/* POST /v1/cps for FZ-A with the installer token; its secret kept. */
static void register_a(void)
{
	static const char body[] = "{\"id\":\"FZ-A\",\"location\":\"Fuzz 1\",\"price\":0.25}";
	struct registry_request req = {.method = "POST", .path = "/v1/cps", .authorization = NULL,
				       .content_type = "application/json", .peer = "192.0.2.250", .body = body,
				       .body_len = sizeof body - 1, .now = fake_now};
	char auth[128];
	snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
	req.authorization = auth;
	struct registry_response resp;
	handle(&req, &resp);
	if (resp.status == 201) {
		json_t *o = json_loads(resp.body, 0, NULL);
		const char *s = json_string_value(json_object_get(o, "secret"));
		CHECK(s != NULL && crypto_valid_secret(s));
		memcpy(stale_a, secret_a, sizeof stale_a);
		snprintf(secret_a, sizeof secret_a, "%s", s);
		json_decref(o);
	}
	free(resp.body);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char path[64], err[EVC_ERR_LEN];
	CHECK(mkdtemp(tmpdir) != NULL);
	atexit(cleanup);
	snprintf(path, sizeof path, "%s/net.db", tmpdir);
	log_set_level(LOG_ERROR);
	reg = registry_open(path, TOKEN, err);
	if (reg == NULL) {
		fprintf(stderr, "fuzz_registry: %s\n", err);
		abort();
	}
	/* Speed: durability is not what is fuzzed. */
	sqlite3_exec(registry_db(reg), "PRAGMA synchronous=OFF", NULL, NULL, NULL);
	register_a();
	CHECK(secret_a[0] != '\0');
	snprintf(stale_a, sizeof stale_a, "%s", secret_a);
	return 0;
}

static int known_status(int s)
{
	static const int ok[] = {200, 201, 204, 400, 401, 404, 405, 409, 413, 415, 429, 500, 503};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (s == ok[i])
			return 1;
	return 0;
}

static void check_db(void)
{
	sqlite3 *db = registry_db(reg);
	sqlite3_stmt *st;
	CHECK(sqlite3_prepare_v2(db,
				 "SELECT (SELECT count(*) FROM charging_points WHERE secret_hash IS NOT NULL AND"
				 " (length(secret_hash) != 64 OR secret_hash GLOB '*[^0-9a-f]*')),"
				 " (SELECT count(*) FROM audit_log WHERE instr(coalesce(detail, ''), ?1) > 0),"
				 " (SELECT count(*) FROM charging_points WHERE deleted_at IS NOT NULL AND secret_hash IS NOT NULL)",
				 -1, &st, NULL) == SQLITE_OK);
	sqlite3_bind_text(st, 1, TOKEN, -1, SQLITE_STATIC);
	CHECK(sqlite3_step(st) == SQLITE_ROW);
	CHECK(sqlite3_column_int(st, 0) == 0);
	CHECK(sqlite3_column_int(st, 1) == 0);
	CHECK(sqlite3_column_int(st, 2) == 0);
	sqlite3_finalize(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"GET", "POST", "DELETE", "PUT", "HEAD", ""};
	static const char *const types[] = {NULL, "application/json", "Application/JSON; charset=utf-8", "text/plain",
					    "application/jsonx"};
	static const char *const peers[] = {"127.0.0.1", "192.0.2.1", "::1", "2001:db8::1", "2001:db8::2",
					    "::ffff:127.0.0.1", "not an address", ""};
	if (size < 5)
		return 0;
	inputs++;
	fake_now += (data[4] >> 2) * 0.25;
	struct registry_request req;
	memset(&req, 0, sizeof req);
	req.method = methods[data[0] % 6];
	req.content_type = types[data[2] % 5];
	req.peer = peers[data[3] % 8];
	req.headers_only = data[4] & 1;
	req.body_too_large = (data[4] & 2) != 0;
	req.now = fake_now;
	const char *rest = (const char *)data + 5;
	size_t rlen = size - 5;
	const char *nl = memchr(rest, '\n', rlen);
	size_t plen = nl != NULL ? (size_t)(nl - rest) : rlen;
	char *path = malloc(plen + 16);
	if (plen > 0 && rest[0] == '/')
		snprintf(path, plen + 16, "%.*s", (int)plen, rest);
	else
		snprintf(path, plen + 16, "/v1/cps/%.*s", (int)plen, rest);
	/* MHD hands NUL-terminated text: an inner NUL ends the path. */
	req.path = path;
	req.body = nl != NULL ? nl + 1 : "";
	req.body_len = nl != NULL ? rlen - plen - 1 : 0;
	if (req.body_len > REGISTRY_BODY_MAX)
		req.body_len = REGISTRY_BODY_MAX;
	char auth[700];
	switch (data[1] % 6) {
	case 0: req.authorization = NULL; break;
	case 1: snprintf(auth, sizeof auth, "Bearer %s", TOKEN); req.authorization = auth; break;
	case 2: snprintf(auth, sizeof auth, "bearer  %s ", secret_a); req.authorization = auth; break;
	case 3: snprintf(auth, sizeof auth, "Bearer %s", stale_a); req.authorization = auth; break;
	case 4: snprintf(auth, sizeof auth, "Bearer %.*s", (int)(plen < 600 ? plen : 600), rest); req.authorization = auth; break;
	default: snprintf(auth, sizeof auth, "%.*s", (int)(plen < 600 ? plen : 600), rest); req.authorization = auth; break;
	}

	struct registry_response resp;
	handle(&req, &resp);
	if (resp.status == 0) {
		CHECK(req.headers_only);
		CHECK(resp.body == NULL);
	} else {
		CHECK(known_status(resp.status));
	}
	if (resp.status == 204 || resp.status == 0) {
		CHECK(resp.body == NULL);
	} else {
		CHECK(resp.body != NULL);
		CHECK(strstr(resp.body, TOKEN) == NULL);
		json_error_t jerr;
		json_t *o = json_loads(resp.body, 0, &jerr);
		CHECK(json_is_object(o));
		const char *secret = json_string_value(json_object_get(o, "secret"));
		if (resp.status >= 400) {
			CHECK(json_is_string(json_object_get(o, "error")));
			CHECK(json_object_size(o) == 1);
		}
		if (secret != NULL) {
			CHECK(resp.status == 200 || resp.status == 201);
			CHECK(json_object_size(o) == 2 && crypto_valid_secret(secret));
			const char *id = json_string_value(json_object_get(o, "id"));
			CHECK(id != NULL);
			if (strcmp(id, "FZ-A") == 0) {
				memcpy(stale_a, secret_a, sizeof stale_a);
				snprintf(secret_a, sizeof secret_a, "%s", secret);
			}
		} else {
			CHECK(strstr(resp.body, secret_a) == NULL && strstr(resp.body, stale_a) == NULL);
		}
		json_decref(o);
	}
	CHECK(resp.status != 405 || resp.allow != NULL);
	CHECK(resp.status != 429 || (resp.retry_after >= 1 && resp.retry_after <= 60));
	CHECK(strstr(resp.note, TOKEN) == NULL && strstr(resp.note, secret_a) == NULL);
	/* The registry never answers 201/200 with a secret to a request whose
	 * body was not read. */
	CHECK(!(req.headers_only && resp.status >= 200 && resp.status < 300));
	free(resp.body);
	free(path);
	/* FZ-A deleted by the input: register it again so its secret keeps
	 * being exercised. */
	if (inputs % 64 == 0)
		register_a();
	if (inputs % 256 == 0)
		check_db();
	return 0;
}
