/* Central's API handler without sockets (api_handler.c, api_tokens.c,
 * api_json.c): every route and role, every status, the answers' shapes,
 * query and body limits, the token file and its constant-time match, the
 * rate limit, /metrics read by the Prometheus client's own parser. A real
 * SQLite file in a temp folder holds the sessions, events and audit rows. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "evc/xalloc.h"
#include "src/central/api_handler.h"
#include "src/central/api_tokens.h"

#define T_READ "read-token-0123456789abcdef"
#define T_OPER "operate-token-0123456789abcdef"
#define T_WX "weather-token-0123456789abcdef"
#define TOKENS                                                                                                         \
	"# name role token\n"                                                                                          \
	"\n"                                                                                                           \
	"grafana read " T_READ "\n"                                                                                    \
	"ops   operate\t" T_OPER "\r\n"                                                                                \
	"evw weather " T_WX "\n"

static const char PAGE[] = "<!DOCTYPE html><!-- one <script> and one <style> below --><html><head>"
			   "<style>body{color:red}</style></head>"
			   "<body><script>'use strict';</script></body></html>";

static char dir[64], dbpath[128];
static struct api_handler *H;
static struct api_hres R;
static json_t *J; /* R's body parsed, when JSON */
static double NOW = 1000.0;
static const char *IP = "127.0.0.1";

/* ---------------------------------------------------------------- fixture */

static void exec_sql(sqlite3 *db, const char *sql)
{
	char *e = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK)
		fail_msg("sql: %s", e);
}

/* Tables as Central's store writes them (evcharging(7) FILES). */
static void make_db(void)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	exec_sql(db, "PRAGMA journal_mode=WAL;"
		     "CREATE TABLE sessions(id TEXT PRIMARY KEY, cp_id TEXT NOT NULL, driver_id TEXT NOT NULL,"
		     " request_id TEXT, kwh REAL NOT NULL DEFAULT 0, importe REAL NOT NULL DEFAULT 0,"
		     " price REAL NOT NULL, kw REAL NOT NULL DEFAULT 0, outcome TEXT, reason TEXT,"
		     " last_seq INTEGER NOT NULL DEFAULT 0, acked INTEGER NOT NULL DEFAULT 0,"
		     " charging INTEGER NOT NULL DEFAULT 0, requested_at REAL, authorised_at REAL,"
		     " started_at REAL, ended_at REAL);"
		     "CREATE TABLE cp_events(id INTEGER PRIMARY KEY, cp_id TEXT NOT NULL, ts REAL NOT NULL,"
		     " event TEXT NOT NULL, detail TEXT, prev INTEGER);"
		     /* a CP's history is the chain from last_event (schema v7) */
		     "CREATE TABLE charging_points(id TEXT PRIMARY KEY, last_event INTEGER);"
		     "CREATE TABLE audit_log(id INTEGER PRIMARY KEY, ts REAL, actor TEXT, source_ip TEXT,"
		     " action TEXT, cp_id TEXT, detail TEXT);"
		     "BEGIN;");
	char sql[512];
	/* 1200 sessions: s0000 oldest; MAD-01 every third, driver 101 every other. */
	for (int i = 0; i < 1200; i++) {
		snprintf(sql, sizeof sql,
			 "INSERT INTO sessions(id, cp_id, driver_id, kwh, importe, price, outcome, started_at,"
			 " ended_at, reason) VALUES('s%04d', '%s', '%s', %d.5, %d.25, 0.35, %s, %s, %s, %s)",
			 i, i % 3 == 0 ? "MAD-01" : "BCN-02", i % 2 == 0 ? "101" : "102", i, i,
			 i == 1199 ? "NULL" : "'TICKET'", i == 1199 ? "NULL" : "1700000000.5",
			 i == 1199 ? "NULL" : "1700000100.25", i == 1198 ? "'keys revoked'" : "NULL");
		exec_sql(db, sql);
	}
	for (int i = 0; i < 60; i++) {
		snprintf(sql, sizeof sql,
			 "INSERT INTO cp_events(id, cp_id, ts, event, detail, prev) VALUES(%d, 'MAD-01', %d, 'STATE', 'e%d', %d);"
			 "INSERT INTO cp_events(id, cp_id, ts, event, detail, prev) VALUES(%d, 'BCN-02', %d, 'STATE', 'b%d', %d)",
			 2 * i + 1, 1700000000 + i, i, i ? 2 * i - 1 : 0, 2 * i + 2, 1700000000 + i, i, 2 * i);
		exec_sql(db, sql);
	}
	/* The two CPs' rows alternate: each chain skips the other's. */
	exec_sql(db, "INSERT INTO charging_points VALUES('MAD-01', 119), ('BCN-02', 120);");
	for (int i = 0; i < 30; i++) {
		snprintf(sql, sizeof sql,
			 "INSERT INTO audit_log(ts, actor, source_ip, action, cp_id, detail)"
			 " VALUES(%d, 'operator', NULL, 'OPERATOR_STOP', 'MAD-01', 'a%d')",
			 1700000000 + i * 10, i);
		exec_sql(db, sql);
	}
	exec_sql(db, "COMMIT;");
	sqlite3_close(db);
}

static struct api_snapshot *make_snap(void)
{
	struct api_snapshot *s = api_snapshot_new(3);
	const char *ids[] = { "BCN-02", "MAD-01", "VAL-03" };
	for (int i = 0; i < 3; i++) {
		struct cp_view *v = &s->cps[i];
		xstrlcpy(v->id, ids[i], sizeof v->id);
		xstrlcpy(v->location, i == 1 ? "Madrid Atocha" : "Barcelona Sants", sizeof v->location);
		v->price = 0.35;
		v->state = i == 0 ? CP_ACTIVADO : i == 1 ? CP_SUMINISTRANDO : CP_FUERA_DE_SERVICIO;
		v->link = i == 2 ? CP_LINK_PLAIN : CP_LINK_TLS;
		v->since = 1700000000.25;
	}
	xstrlcpy(s->cps[2].caption, "Weather alert", sizeof s->cps[2].caption);
	xstrlcpy(s->cps[1].driver_id, "101", sizeof s->cps[1].driver_id);
	s->cps[1].kw = 7.2;
	s->cps[1].kwh = 1.2345;
	s->cps[1].importe = 0.432075;
	s->weather_json = xstrdup("{\"threshold\":0,\"cities\":[{\"city\":\"Madrid\",\"temperature\":12.5,"
				  "\"at\":1700000000,\"alert\":false,\"cps\":[\"MAD-01\"]}]}");
	s->metrics.links_tls = 2;
	s->metrics.links_plain = 1;
	s->metrics.open_sessions = 1;
	s->metrics.telemetry_accepted = 42;
	s->metrics.telemetry_rejected = 3;
	s->metrics.driver_authorised = 5;
	s->metrics.driver_denied = 2;
	s->metrics.kafka_up = 1;
	api_metrics_observe_commit(&s->metrics, 0.0004);
	api_metrics_observe_commit(&s->metrics, 0.003);
	api_metrics_observe_commit(&s->metrics, 9.0);
	s->at = 1700000000.5;
	return s;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_api.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(dbpath, sizeof dbpath, "%s/c.db", dir);
	make_db();
	char err[EVC_ERR_LEN];
	struct api_tokens *t = api_tokens_parse(TOKENS, strlen(TOKENS), "tokens", err);
	if (t == NULL)
		fail_msg("tokens: %s", err);
	H = api_handler_new(t, dbpath, (const unsigned char *)PAGE, strlen(PAGE), err);
	if (H == NULL)
		fail_msg("handler: %s", err);
	api_handler_publish(H, make_snap());
	NOW = 1000.0;
	IP = "127.0.0.1";
	memset(&R, 0, sizeof R);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	json_decref(J);
	J = NULL;
	api_hres_clear(&R);
	api_handler_free(H);
	H = NULL;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- calls */

/* One request; query "a=b&c" split here (MHD does it in the server).
 * Returns the status; R and J hold the answer. */
static int call(const char *method, const char *url, const char *token, const char *ctype, const char *body)
{
	static char qbuf[1024];
	struct api_kv args[32];
	size_t nargs = 0;
	char path[512];
	const char *q = strchr(url, '?');
	snprintf(path, sizeof path, "%.*s", q ? (int)(q - url) : (int)strlen(url), url);
	if (q != NULL) {
		snprintf(qbuf, sizeof qbuf, "%s", q + 1);
		for (char *save, *p = strtok_r(qbuf, "&", &save); p && nargs < 32; p = strtok_r(NULL, "&", &save)) {
			char *eq = strchr(p, '=');
			if (eq)
				*eq = '\0';
			args[nargs].key = p;
			args[nargs].value = eq ? eq + 1 : NULL;
			nargs++;
		}
	}
	char auth[600];
	if (token)
		snprintf(auth, sizeof auth, "Bearer %s", token);
	struct api_hreq in = {
		.method = method,
		.path = path,
		.args = args,
		.nargs = nargs,
		.authorization = token ? auth : NULL,
		.content_type = ctype,
		.content_length = body ? (long long)strlen(body) : -1,
		.body = body ? body : "",
		.body_len = body ? strlen(body) : 0,
		.source_ip = IP,
		.now = NOW,
	};
	json_decref(J);
	J = NULL;
	api_hres_clear(&R);
	api_handler_handle(H, &in, &R);
	if (R.action == API_H_RESPOND && R.body != NULL && !R.is_page &&
	    strncmp(R.content_type, "application/json", 16) == 0) {
		json_error_t je;
		J = json_loadb(R.body, R.body_len, 0, &je);
		if (J == NULL)
			fail_msg("answer is not JSON: %.*s", (int)R.body_len, R.body);
	}
	/* No answer ever carries a token. */
	if (R.body != NULL && !R.is_page) {
		assert_null(memmem(R.body, R.body_len, T_READ, strlen(T_READ)));
		assert_null(memmem(R.body, R.body_len, T_OPER, strlen(T_OPER)));
		assert_null(memmem(R.body, R.body_len, T_WX, strlen(T_WX)));
	}
	return R.action == API_H_RESPOND ? R.status : -(int)R.action;
}

#define GET(u, t) call("GET", (u), (t), NULL, NULL)
#define CMD (-(int)API_H_COMMAND)
#define EVENTS (-(int)API_H_EVENTS)

static void expect_error(int status)
{
	assert_int_equal(R.status, status);
	assert_true(json_is_object(J));
	assert_int_equal(json_object_size(J), 1);
	assert_true(json_is_string(json_object_get(J, "error")));
}

static void expect_keys(json_t *o, const char *const *keys)
{
	size_t n = 0;
	for (; keys[n]; n++)
		if (json_object_get(o, keys[n]) == NULL)
			fail_msg("key '%s' missing", keys[n]);
	assert_int_equal(json_object_size(o), n);
}

static const char *const CP_KEYS[] = { "id", "location", "price", "state", "caption", "link", "driver_id",
				       "kw", "kwh", "importe", "since", NULL };
static const char *const SESSION_KEYS[] = { "id", "cp_id", "driver_id", "kwh", "importe", "price", "outcome",
					    "started_at", "ended_at", "reason", NULL };

/* ---------------------------------------------------------------- tokens */

static void test_tokens_file_errors(void **state)
{
	(void)state;
	struct {
		const char *text, *want;
	} bad[] = {
		{ "a read " T_READ "\nb admin " T_OPER "\n", "line 2: bad role 'admin'" },
		{ "a read " T_READ "\n# c\na operate " T_OPER "\n", "line 3: duplicate name 'a'" },
		{ "a read " T_READ "\nb operate " T_READ "\n", "line 2: same token as 'a'" },
		{ "a read short\n", "line 1: bad token" },
		{ "a read " T_READ " extra\n", "line 1: wants NAME ROLE TOKEN" },
		{ "a read\n", "line 1: wants NAME ROLE TOKEN" },
		{ "a/b read " T_READ "\n", "line 1: bad name" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[EVC_ERR_LEN] = "";
		assert_null(api_tokens_parse(bad[i].text, strlen(bad[i].text), "tok.txt", err));
		if (strstr(err, bad[i].want) == NULL || strncmp(err, "tok.txt", 7) != 0)
			fail_msg("case %zu: error '%s', wanted '%s'", i, err, bad[i].want);
		assert_null(strstr(err, T_READ));
		assert_null(strstr(err, T_OPER));
	}
	char err[EVC_ERR_LEN];
	struct api_tokens *t = api_tokens_parse(TOKENS, strlen(TOKENS), "t", err);
	assert_non_null(t);
	assert_int_equal(api_tokens_count(t), 3);
	api_tokens_free(t);
	/* Empty and comment-only files hold no token: every request is 401. */
	t = api_tokens_parse("# none\n", 7, "t", err);
	assert_non_null(t);
	assert_int_equal(api_tokens_count(t), 0);
	api_tokens_free(t);
}

static void test_tokens_file_mode(void **state)
{
	(void)state;
	char path[160], err[EVC_ERR_LEN];
	snprintf(path, sizeof path, "%s/tokens", dir);
	FILE *f = fopen(path, "w");
	fputs(TOKENS, f);
	fclose(f);
	chmod(path, 0644);
	assert_null(api_tokens_load(path, err));
	assert_non_null(strstr(err, "mode 0644"));
	assert_non_null(strstr(err, path));
	chmod(path, 0640);
	assert_null(api_tokens_load(path, err));
	assert_non_null(strstr(err, "mode 0640"));
	chmod(path, 0600);
	struct api_tokens *t = api_tokens_load(path, err);
	if (t == NULL)
		fail_msg("%s", err);
	assert_int_equal(api_tokens_count(t), 3);
	api_tokens_free(t);
	snprintf(path, sizeof path, "%s/none", dir);
	assert_null(api_tokens_load(path, err));
}

static void test_tokens_constant_time(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN], name[API_TOKEN_NAME_MAX + 1];
	struct api_tokens *t = api_tokens_parse(TOKENS, strlen(TOKENS), "t", err);
	size_t n = 0;
	/* First, last and no entry: every stored hash compared each time. */
	assert_int_equal(api_tokens_match(t, T_READ, strlen(T_READ), name, &n), API_ROLE_READ);
	assert_string_equal(name, "grafana");
	assert_int_equal(n, 3);
	assert_int_equal(api_tokens_match(t, T_WX, strlen(T_WX), name, &n), API_ROLE_WEATHER);
	assert_string_equal(name, "evw");
	assert_int_equal(n, 3);
	assert_int_equal(api_tokens_match(t, "nope-nope-nope-nope", 19, name, &n), API_ROLE_NONE);
	assert_int_equal(n, 3);
	/* A prefix of a token is not the token. */
	assert_int_equal(api_tokens_match(t, T_OPER, strlen(T_OPER) - 1, name, &n), API_ROLE_NONE);
	api_tokens_free(t);
}

/* ---------------------------------------------------------------- statuses */

static void test_not_found_and_methods(void **state)
{
	(void)state;
	assert_int_equal(GET("/api/v1/nope", T_READ), 404);
	expect_error(404);
	assert_int_equal(GET("/api/v1/cps/", T_READ), 404);
	assert_int_equal(GET("/api/v1/cps/MAD-01/", T_READ), 404);
	assert_int_equal(GET("/api/v1/cps/bad$id", T_READ), 404);
	assert_int_equal(GET("/api/v1/cps/MAD-01/explode", T_READ), 404);
	/* 404 before the token: unknown paths need no credential to refuse. */
	assert_int_equal(GET("/nope", NULL), 404);
	assert_int_equal(call("DELETE", "/api/v1/cps", T_OPER, NULL, NULL), 405);
	expect_error(405);
	assert_string_equal(R.allow, "GET, HEAD");
	assert_int_equal(GET("/api/v1/cps/MAD-01/stop", T_OPER), 405);
	assert_string_equal(R.allow, "POST");
	assert_int_equal(call("POST", "/api/v1/weather/threshold", T_OPER, "application/json", "{}"), 405);
	assert_string_equal(R.allow, "PUT");
	assert_int_equal(call("POST", "/api/v1/cps/MAD-01", T_OPER, NULL, NULL), 405);
	/* A CP named like a command is still readable. */
	assert_int_equal(GET("/api/v1/cps/stop-all", T_READ), 404);
	assert_string_equal(json_string_value(json_object_get(J, "error")), "no such charging point");
	assert_int_equal(GET("/api/v1/cps/UNKNOWN", T_READ), 404);
	assert_int_equal(call("POST", "/api/v1/cps/UNKNOWN/stop", T_OPER, NULL, NULL), 404);
}

static void test_unauthorised(void **state)
{
	(void)state;
	assert_int_equal(GET("/api/v1/cps", NULL), 401);
	expect_error(401);
	char *first = xstrdup(R.body);
	assert_true(R.www_authenticate);
	assert_true(R.has_note);
	assert_int_equal(R.note.kind, API_REQ_DENIED);
	assert_int_equal(R.note.status, 401);
	assert_string_equal(R.note.detail, "GET /api/v1/cps: 401 no token");
	assert_string_equal(R.note.source_ip, "127.0.0.1");
	assert_string_equal(R.note.token_name, "");
	assert_int_equal(GET("/api/v1/cps", "wrong-token-wrong-token"), 401);
	/* One body for a missing and a wrong token. */
	assert_string_equal(R.body, first);
	assert_string_equal(R.note.detail, "GET /api/v1/cps: 401 bad token");
	struct api_hreq in = { .method = "GET", .path = "/metrics", .authorization = "Basic " T_READ,
			       .content_length = -1, .source_ip = IP, .now = NOW };
	api_hres_clear(&R);
	api_handler_handle(H, &in, &R);
	assert_int_equal(R.status, 401);
	assert_string_equal(R.body, first);
	in.authorization = "bearer   " T_READ "  ";
	api_hres_clear(&R);
	api_handler_handle(H, &in, &R);
	assert_int_equal(R.status, 200);
	free(first);
	/* An id that names no CP is not kept in the audit detail: it is the
	 * client's text (a token pasted in the wrong place, say). */
	assert_int_equal(GET("/api/v1/cps/" T_OPER, NULL), 401);
	assert_string_equal(R.note.detail, "GET /api/v1/cps/?: 401 no token");
	assert_int_equal(call("POST", "/api/v1/cps/MAD-01/stop", NULL, NULL, NULL), 401);
	assert_string_equal(R.note.detail, "POST /api/v1/cps/MAD-01/stop: 401 no token");
	/* Nor is a long query key or field repeated in an error. */
	assert_int_equal(GET("/api/v1/sessions?" T_READ "=1", T_READ), 400);
	assert_string_equal(json_string_value(json_object_get(J, "error")), "unknown query parameter '(not shown)'");
	assert_int_equal(GET("/api/v1/sessions?lmit=1", T_READ), 400);
	assert_string_equal(json_string_value(json_object_get(J, "error")), "unknown query parameter 'lmit'");
	assert_int_equal(call("PUT", "/api/v1/weather/threshold", T_OPER, "application/json", "{\"" T_OPER "\":1}"),
			 400);
	assert_string_equal(json_string_value(json_object_get(J, "error")), "unknown field '(not shown)'");
	assert_int_equal(call("PUT", "/api/v1/weather/threshold", T_OPER, "application/json", "[" T_OPER "]"), 400);
	/* A path with control bytes is cleaned in the audit detail. */
	assert_int_equal(GET("/api/v1/events\x01x", NULL), 404);
	assert_int_equal(GET("/api/v1/cps/MAD-01", "x\x7fy-----------------"), 401);
	assert_null(strchr(R.note.detail, 0x7f));
}

static void test_roles(void **state)
{
	(void)state;
	/* read: every read, no command. */
	assert_int_equal(GET("/api/v1/cps", T_READ), 200);
	assert_false(R.has_note);
	assert_int_equal(call("POST", "/api/v1/cps/MAD-01/stop", T_READ, NULL, NULL), 403);
	expect_error(403);
	assert_true(R.has_note);
	assert_int_equal(R.note.status, 403);
	assert_string_equal(R.note.token_name, "grafana");
	assert_string_equal(R.note.detail, "POST /api/v1/cps/MAD-01/stop: 403 role read may not (needs operate)");
	assert_int_equal(call("POST", "/api/v1/weather/readings", T_READ, "application/json",
			      "{\"city\":\"Madrid\",\"temperature\":1}"), 403);
	/* weather: readings only. */
	assert_int_equal(GET("/api/v1/cps", T_WX), 403);
	assert_int_equal(GET("/metrics", T_WX), 403);
	assert_int_equal(GET("/api/v1/events", T_WX), 403);
	assert_int_equal(call("PUT", "/api/v1/weather/threshold", T_WX, "application/json", "{\"threshold\":1}"),
			 403);
	assert_int_equal(call("POST", "/api/v1/weather/readings", T_WX, "application/json",
			      "{\"city\":\"Madrid\",\"temperature\":-1.5}"), CMD);
	assert_int_equal(R.cmd.kind, API_REQ_WEATHER_READING);
	assert_string_equal(R.cmd.city, "Madrid");
	assert_true(R.cmd.value == -1.5);
	assert_false(R.cmd.has_error);
	assert_string_equal(R.cmd.token_name, "evw");
	/* operate: reads and commands, but it is not the weather office. */
	assert_int_equal(GET("/api/v1/cps", T_OPER), 200);
	assert_int_equal(GET("/api/v1/events", T_OPER), EVENTS);
	assert_int_equal(call("POST", "/api/v1/weather/readings", T_OPER, "application/json",
			      "{\"city\":\"Madrid\",\"temperature\":1}"), 403);
	/* The page needs no token at all. */
	assert_int_equal(GET("/", NULL), 200);
	assert_false(R.has_note);
}

static void test_commands(void **state)
{
	(void)state;
	static const struct {
		const char *url;
		enum api_req_kind kind;
		const char *cp;
	} c[] = {
		{ "/api/v1/cps/MAD-01/stop", API_REQ_STOP, "MAD-01" },
		{ "/api/v1/cps/MAD-01/resume", API_REQ_RESUME, "MAD-01" },
		{ "/api/v1/cps/VAL-03/revoke", API_REQ_REVOKE, "VAL-03" },
		{ "/api/v1/cps/stop-all", API_REQ_STOP_ALL, "" },
		{ "/api/v1/cps/resume-all", API_REQ_RESUME_ALL, "" },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		IP = "10.1.2.3";
		assert_int_equal(call("POST", c[i].url, T_OPER, NULL, NULL), CMD);
		assert_int_equal(R.cmd.kind, c[i].kind);
		assert_string_equal(R.cmd.cp_id, c[i].cp);
		assert_string_equal(R.cmd.token_name, "ops");
		assert_string_equal(R.cmd.source_ip, "10.1.2.3");
		assert_int_equal(R.cmd.id, 0);
	}
	/* An empty JSON object is an acceptable body; anything else is not. */
	assert_int_equal(call("POST", "/api/v1/cps/MAD-01/stop", T_OPER, "application/json", "{}"), CMD);
	assert_int_equal(call("POST", "/api/v1/cps/MAD-01/stop", T_OPER, "application/json", "{\"x\":1}"), 400);
	assert_int_equal(call("POST", "/api/v1/cps/MAD-01/stop", T_OPER, "text/plain", "hi"), 415);

	assert_int_equal(call("PUT", "/api/v1/weather/threshold", T_OPER, "application/json; charset=utf-8",
			      "{\"threshold\":-1.5}"), CMD);
	assert_int_equal(R.cmd.kind, API_REQ_SET_THRESHOLD);
	assert_true(R.cmd.value == -1.5);
	assert_int_equal(call("PUT", "/api/v1/weather/threshold", T_OPER, "Application/JSON", "{\"threshold\":3}"),
			 CMD);
	assert_true(R.cmd.value == 3);

	assert_int_equal(call("POST", "/api/v1/weather/readings", T_WX, "application/json",
			      "{\"city\":\"Valencia\",\"error\":\"provider said 404\"}"), CMD);
	assert_true(R.cmd.has_error);
	assert_string_equal(R.cmd.error, "provider said 404");
	assert_string_equal(R.cmd.city, "Valencia");
}

static void test_bad_bodies(void **state)
{
	(void)state;
	static const struct {
		const char *url, *method, *token, *ctype, *body;
		int status;
	} b[] = {
		{ "/api/v1/weather/threshold", "PUT", T_OPER, NULL, "{\"threshold\":1}", 415 },
		{ "/api/v1/weather/threshold", "PUT", T_OPER, "text/json", "{\"threshold\":1}", 415 },
		{ "/api/v1/weather/threshold", "PUT", T_OPER, "application/jsonx", "{\"threshold\":1}", 415 },
		{ "/api/v1/weather/threshold", "PUT", T_OPER, "application/json", NULL, 400 },
		{ "/api/v1/weather/threshold", "PUT", T_OPER, "application/json", "{\"threshold\":1", 400 },
		{ "/api/v1/weather/threshold", "PUT", T_OPER, "application/json", "[1]", 400 },
		{ "/api/v1/weather/threshold", "PUT", T_OPER, "application/json", "{}", 400 },
		{ "/api/v1/weather/threshold", "PUT", T_OPER, "application/json", "{\"threshold\":\"1\"}", 400 },
		{ "/api/v1/weather/threshold", "PUT", T_OPER, "application/json", "{\"threshold\":1e9}", 400 },
		{ "/api/v1/weather/threshold", "PUT", T_OPER, "application/json", "{\"threshold\":1,\"x\":2}", 400 },
		{ "/api/v1/weather/threshold", "PUT", T_OPER, "application/json",
		  "{\"threshold\":1,\"threshold\":2}", 400 },
		{ "/api/v1/weather/readings", "POST", T_WX, "application/json", "{\"city\":\"M\"}", 400 },
		{ "/api/v1/weather/readings", "POST", T_WX, "application/json",
		  "{\"city\":\"M\",\"temperature\":1,\"error\":\"e\"}", 400 },
		{ "/api/v1/weather/readings", "POST", T_WX, "application/json", "{\"temperature\":1}", 400 },
		{ "/api/v1/weather/readings", "POST", T_WX, "application/json", "{\"city\":\"\",\"temperature\":1}",
		  400 },
		{ "/api/v1/weather/readings", "POST", T_WX, "application/json",
		  "{\"city\":\"a\\nb\",\"temperature\":1}", 400 },
		{ "/api/v1/weather/readings", "POST", T_WX, "application/json",
		  "{\"city\":\"a\\u0000b\",\"temperature\":1}", 400 },
		{ "/api/v1/weather/readings", "POST", T_WX, "application/json", "{\"city\":7,\"temperature\":1}",
		  400 },
		{ "/api/v1/weather/readings", "POST", T_WX, "application/json",
		  "{\"city\":\"M\",\"temperature\":-300}", 400 },
		{ "/api/v1/weather/readings", "POST", T_WX, "application/json", "{\"city\":\"M\",\"error\":\"\"}",
		  400 },
		{ "/api/v1/weather/readings", "POST", T_WX, "application/json", "\xff\xfe", 400 },
	};
	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
		int st = call(b[i].method, b[i].url, b[i].token, b[i].ctype, b[i].body);
		if (st != b[i].status)
			fail_msg("case %zu (%s): %d, wanted %d", i, b[i].body ? b[i].body : "(none)", st,
				 b[i].status);
		expect_error(b[i].status);
	}
	/* A city of 255 bytes is fine, 256 is not. */
	char body[600], city[300];
	memset(city, 'x', 256);
	city[256] = '\0';
	snprintf(body, sizeof body, "{\"city\":\"%s\",\"temperature\":1}", city);
	assert_int_equal(call("POST", "/api/v1/weather/readings", T_WX, "application/json", body), 400);
	city[255] = '\0';
	snprintf(body, sizeof body, "{\"city\":\"%s\",\"temperature\":1}", city);
	assert_int_equal(call("POST", "/api/v1/weather/readings", T_WX, "application/json", body), CMD);
}

static void test_body_limits(void **state)
{
	(void)state;
	/* By Content-Length, before any byte of the body is read. */
	struct api_hreq in = { .method = "PUT", .path = "/api/v1/weather/threshold",
			       .authorization = "Bearer " T_OPER, .content_type = "application/json",
			       .content_length = API_BODY_MAX + 1, .source_ip = IP, .now = NOW };
	api_hres_clear(&R);
	api_handler_precheck(H, &in, &R);
	assert_int_equal(R.action, API_H_RESPOND);
	assert_int_equal(R.status, 413);
	/* Without Content-Length (chunked): counted as it arrives. */
	in.content_length = -1;
	api_hres_clear(&R);
	api_handler_precheck(H, &in, &R);
	assert_int_equal(R.action, API_H_BODY);
	in.body = "{\"threshold\":1}";
	in.body_len = strlen(in.body);
	in.body_overflow = 1;
	api_handler_finish(H, &in, &R);
	assert_int_equal(R.status, 413);
	/* Exactly API_BODY_MAX bytes is allowed. */
	char *big = xmalloc(API_BODY_MAX + 1);
	memset(big, ' ', API_BODY_MAX);
	memcpy(big, "{\"threshold\":2}", 15);
	big[API_BODY_MAX] = '\0';
	assert_int_equal(call("PUT", "/api/v1/weather/threshold", T_OPER, "application/json", big), CMD);
	free(big);
	/* Unauthenticated oversized: 401 first, nothing of the body read. */
	in.authorization = NULL;
	in.content_length = 1 << 30;
	api_hres_clear(&R);
	api_handler_precheck(H, &in, &R);
	assert_int_equal(R.status, 401);
}

/* ---------------------------------------------------------------- reads */

static void test_cps_shape(void **state)
{
	(void)state;
	assert_int_equal(GET("/api/v1/cps", T_READ), 200);
	assert_true(json_is_array(J));
	assert_int_equal(json_array_size(J), 3);
	json_t *bcn = json_array_get(J, 0), *mad = json_array_get(J, 1), *val = json_array_get(J, 2);
	expect_keys(bcn, CP_KEYS);
	expect_keys(mad, CP_KEYS);
	assert_string_equal(json_string_value(json_object_get(bcn, "id")), "BCN-02");
	assert_string_equal(json_string_value(json_object_get(bcn, "state")), "ACTIVADO");
	assert_string_equal(json_string_value(json_object_get(bcn, "caption")), "Available");
	assert_string_equal(json_string_value(json_object_get(bcn, "link")), "tls");
	assert_true(json_is_null(json_object_get(bcn, "driver_id")));
	assert_string_equal(json_string_value(json_object_get(mad, "driver_id")), "101");
	assert_string_equal(json_string_value(json_object_get(mad, "state")), "SUMINISTRANDO");
	assert_true(fabs(json_number_value(json_object_get(mad, "kwh")) - 1.235) < 1e-9);
	assert_true(fabs(json_number_value(json_object_get(mad, "importe")) - 0.43) < 1e-9);
	assert_true(fabs(json_number_value(json_object_get(mad, "price")) - 0.35) < 1e-12);
	assert_true(fabs(json_number_value(json_object_get(mad, "since")) - 1700000000.25) < 1e-6);
	assert_string_equal(json_string_value(json_object_get(val, "caption")), "Weather alert");
	assert_string_equal(json_string_value(json_object_get(val, "state")), "FUERA_DE_SERVICIO");
	assert_string_equal(json_string_value(json_object_get(val, "link")), "plain");
	/* Prices print as people write them. */
	assert_non_null(strstr(R.body, "\"price\":0.35,"));
	/* No query on this one. */
	assert_int_equal(GET("/api/v1/cps?limit=1", T_READ), 400);
}

static void test_cp_detail(void **state)
{
	(void)state;
	assert_int_equal(GET("/api/v1/cps/MAD-01", T_READ), 200);
	assert_string_equal(json_string_value(json_object_get(J, "id")), "MAD-01");
	json_t *ss = json_object_get(J, "sessions"), *ev = json_object_get(J, "events");
	assert_int_equal(json_array_size(ss), 20);
	assert_int_equal(json_array_size(ev), 50);
	/* Newest first; only this CP's. */
	assert_string_equal(json_string_value(json_object_get(json_array_get(ss, 0), "id")), "s1197");
	for (size_t i = 0; i < 20; i++) {
		expect_keys(json_array_get(ss, i), SESSION_KEYS);
		assert_string_equal(json_string_value(json_object_get(json_array_get(ss, i), "cp_id")), "MAD-01");
	}
	json_t *e0 = json_array_get(ev, 0);
	static const char *const EV_KEYS[] = { "id", "ts", "event", "detail", NULL };
	expect_keys(e0, EV_KEYS);
	assert_string_equal(json_string_value(json_object_get(e0, "detail")), "e59");
	assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 49), "detail")), "e10");
	for (size_t i = 0; i < 50; i++)
		assert_int_equal(json_string_value(json_object_get(json_array_get(ev, i), "detail"))[0], 'e');
	/* Other keys as in the list. */
	json_object_del(J, "sessions");
	json_object_del(J, "events");
	expect_keys(J, CP_KEYS);
}

static void test_sessions(void **state)
{
	(void)state;
	assert_int_equal(GET("/api/v1/sessions", T_READ), 200);
	assert_int_equal(json_array_size(J), 100);
	json_t *s0 = json_array_get(J, 0);
	expect_keys(s0, SESSION_KEYS);
	/* The open one: no outcome, no times. */
	assert_string_equal(json_string_value(json_object_get(s0, "id")), "s1199");
	assert_true(json_is_null(json_object_get(s0, "outcome")));
	assert_true(json_is_null(json_object_get(s0, "started_at")));
	assert_true(json_is_null(json_object_get(s0, "ended_at")));
	json_t *s1 = json_array_get(J, 1);
	assert_string_equal(json_string_value(json_object_get(s1, "reason")), "keys revoked");
	assert_string_equal(json_string_value(json_object_get(s1, "outcome")), "TICKET");
	assert_true(fabs(json_number_value(json_object_get(s1, "ended_at")) - 1700000100.25) < 1e-6);

	assert_int_equal(GET("/api/v1/sessions?limit=1000", T_READ), 200);
	assert_int_equal(json_array_size(J), 1000);
	assert_int_equal(GET("/api/v1/sessions?limit=1", T_READ), 200);
	assert_int_equal(json_array_size(J), 1);
	assert_int_equal(GET("/api/v1/sessions?cp=MAD-01&limit=1000", T_READ), 200);
	assert_int_equal(json_array_size(J), 400);
	assert_int_equal(GET("/api/v1/sessions?cp=MAD-01&driver=101&limit=1000", T_READ), 200);
	assert_int_equal(json_array_size(J), 200);
	for (size_t i = 0; i < json_array_size(J); i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(J, i), "driver_id")), "101");
	/* Empty filters are no filters. */
	assert_int_equal(GET("/api/v1/sessions?cp=&driver=", T_READ), 200);
	assert_int_equal(json_array_size(J), 100);
	assert_int_equal(GET("/api/v1/sessions?cp=NONE", T_READ), 200);
	assert_int_equal(json_array_size(J), 0);

	static const char *const bad[] = {
		"limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=", "limit", "limit=+5", "limit=1e2",
		"limit=5&limit=6", "limit= 5", "foo=1", "cp=bad$", "driver=a%20b", "since=1", "limit=99999",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char url[128];
		snprintf(url, sizeof url, "/api/v1/sessions?%s", bad[i]);
		if (GET(url, T_READ) != 400)
			fail_msg("'%s': %d, wanted 400", bad[i], R.status);
		expect_error(400);
	}
}

static void test_audit(void **state)
{
	(void)state;
	assert_int_equal(GET("/api/v1/audit", T_READ), 200);
	assert_int_equal(json_array_size(J), 30);
	json_t *a0 = json_array_get(J, 0);
	static const char *const A_KEYS[] = { "id", "ts", "actor", "source_ip", "action", "cp_id", "detail",
					      NULL };
	expect_keys(a0, A_KEYS);
	assert_string_equal(json_string_value(json_object_get(a0, "detail")), "a29");
	assert_true(json_is_null(json_object_get(a0, "source_ip")));
	assert_int_equal(GET("/api/v1/audit?since=1700000250", T_READ), 200);
	assert_int_equal(json_array_size(J), 5); /* 250, 260, ..., 290 */
	assert_int_equal(GET("/api/v1/audit?since=1700000250.5&limit=2", T_READ), 200);
	assert_int_equal(json_array_size(J), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(J, 1), "detail")), "a28");
	assert_int_equal(GET("/api/v1/audit?since=x", T_READ), 400);
	assert_int_equal(GET("/api/v1/audit?since=-1", T_READ), 400);
	assert_int_equal(GET("/api/v1/audit?since=inf", T_READ), 400);
	assert_int_equal(GET("/api/v1/audit?cp=MAD-01", T_READ), 400);
}

static void test_weather_and_events(void **state)
{
	(void)state;
	assert_int_equal(GET("/api/v1/weather", T_READ), 200);
	assert_true(json_is_number(json_object_get(J, "threshold")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(J, "cities"), 0),
							      "city")),
			    "Madrid");
	assert_int_equal(GET("/api/v1/events", T_READ), EVENTS);
	assert_int_equal(R.status, 200);
	assert_string_equal(R.content_type, "text/event-stream");
	assert_int_equal(GET("/api/v1/events?x=1", T_READ), 400);
}

static void test_no_snapshot(void **state)
{
	(void)state;
	api_handler_publish(H, NULL);
	assert_int_equal(GET("/api/v1/cps", T_READ), 503);
	expect_error(503);
	assert_int_equal(GET("/api/v1/cps/MAD-01", T_READ), 503);
	assert_int_equal(GET("/api/v1/weather", T_READ), 503);
	assert_int_equal(call("POST", "/api/v1/cps/MAD-01/stop", T_OPER, NULL, NULL), 503);
	/* The database still answers, and so does /metrics (zeros). */
	assert_int_equal(GET("/api/v1/sessions?limit=1", T_READ), 200);
	assert_int_equal(GET("/metrics", T_READ), 200);
	assert_non_null(strstr(R.body, "evc_cps{state=\"ACTIVADO\"} 0\n"));
	/* A snapshot held by a request outlives its replacement. */
	api_handler_publish(H, make_snap());
	const struct api_snapshot *held = api_handler_snap_get(H);
	api_handler_publish(H, make_snap());
	assert_int_equal(held->ncps, 3);
	assert_string_equal(held->cps[1].id, "MAD-01");
	api_handler_snap_put(H, held);
}

static void test_page(void **state)
{
	(void)state;
	assert_int_equal(GET("/", NULL), 200);
	assert_true(R.is_page);
	assert_string_equal(R.content_type, "text/html; charset=utf-8");
	assert_int_equal(R.body_len, strlen(PAGE));
	assert_memory_equal(R.body, PAGE, R.body_len);
	assert_int_equal(GET("/index.html?kiosk=1", NULL), 200);
	/* sha256 of "'use strict';" and of "body{color:red}", base64. */
	const char *csp = api_handler_csp(H);
	assert_non_null(strstr(csp, "default-src 'none'"));
	assert_non_null(strstr(csp, "connect-src 'self'"));
	assert_non_null(strstr(csp, "frame-ancestors 'none'"));
	FILE *p = popen("printf %s \"'use strict';\" | openssl dgst -sha256 -binary | base64", "r");
	char want[128] = "", s[160];
	assert_non_null(fgets(want, sizeof want, p));
	pclose(p);
	want[strcspn(want, "\n")] = '\0';
	snprintf(s, sizeof s, "script-src 'sha256-%s'", want);
	if (strstr(csp, s) == NULL)
		fail_msg("CSP '%s' lacks %s", csp, s);
	p = popen("printf %s 'body{color:red}' | openssl dgst -sha256 -binary | base64", "r");
	assert_non_null(fgets(want, sizeof want, p));
	pclose(p);
	want[strcspn(want, "\n")] = '\0';
	snprintf(s, sizeof s, "style-src 'sha256-%s'", want);
	if (strstr(csp, s) == NULL)
		fail_msg("CSP '%s' lacks %s", csp, s);
	assert_int_equal(call("POST", "/", NULL, NULL, NULL), 405);
}

/* ---------------------------------------------------------------- metrics */

static void test_metrics(void **state)
{
	(void)state;
	api_handler_count(H, 200);
	api_handler_count(H, 200);
	api_handler_count(H, 401);
	api_handler_set_streams(H, 2);
	assert_int_equal(GET("/metrics", T_READ), 200);
	assert_string_equal(R.content_type, "text/plain; version=0.0.4; charset=utf-8");
	const char *want[] = {
		"# TYPE evc_cps gauge\n",
		"evc_cps{state=\"DESCONECTADO\"} 0\n",
		"evc_cps{state=\"ACTIVADO\"} 1\n",
		"evc_cps{state=\"RESERVADO\"} 0\n",
		"evc_cps{state=\"SUMINISTRANDO\"} 1\n",
		"evc_cps{state=\"AVERIADO\"} 0\n",
		"evc_cps{state=\"FUERA_DE_SERVICIO\"} 1\n",
		"evc_links{kind=\"tls\"} 2\n",
		"evc_links{kind=\"plain\"} 1\n",
		"evc_open_sessions 1\n",
		"# TYPE evc_telemetry_messages_total counter\n",
		"evc_telemetry_messages_total{result=\"accepted\"} 42\n",
		"evc_telemetry_messages_total{result=\"rejected\"} 3\n",
		"evc_driver_requests_total{outcome=\"authorised\"} 5\n",
		"evc_driver_requests_total{outcome=\"denied\"} 2\n",
		"evc_kafka_up 1\n",
		"# TYPE evc_store_commit_seconds histogram\n",
		"evc_store_commit_seconds_bucket{le=\"0.0005\"} 1\n",
		"evc_store_commit_seconds_bucket{le=\"0.001\"} 1\n",
		"evc_store_commit_seconds_bucket{le=\"0.005\"} 2\n",
		"evc_store_commit_seconds_bucket{le=\"2.5\"} 2\n",
		"evc_store_commit_seconds_bucket{le=\"+Inf\"} 3\n",
		"evc_store_commit_seconds_count 3\n",
		"evc_api_requests_total{code=\"200\"} 2\n",
		"evc_api_requests_total{code=\"401\"} 1\n",
		"evc_api_event_streams 2\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (strstr(R.body, want[i]) == NULL)
			fail_msg("no '%s' in:\n%s", want[i], R.body);
	/* The Prometheus client's own parser reads it whole. */
	char path[160];
	snprintf(path, sizeof path, "%s/metrics.txt", dir);
	FILE *f = fopen(path, "w");
	fwrite(R.body, 1, R.body_len, f);
	fclose(f);
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "/usr/bin/python3 -c 'import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n"
		 "fams = {f.name: f for f in p(open(sys.argv[1]).read())}\n"
		 "assert fams[\"evc_store_commit_seconds\"].type == \"histogram\"\n"
		 "assert fams[\"evc_telemetry_messages\"].type == \"counter\"\n"
		 "assert len(fams[\"evc_cps\"].samples) == 6\n"
		 "print(len(fams))' '%s'",
		 path);
	FILE *p = popen(cmd, "r");
	char out[64] = "";
	if (fgets(out, sizeof out, p) == NULL)
		out[0] = '\0';
	int rc = pclose(p);
	if (rc != 0)
		fail_msg("prometheus_client rejected /metrics (%d):\n%s", rc, R.body);
	assert_int_equal(atoi(out), 10);
}

/* ---------------------------------------------------------------- rate limit */

static void test_rate_limit(void **state)
{
	(void)state;
	IP = "192.0.2.7";
	for (int i = 0; i < API_RL_DENIALS; i++) {
		NOW += 1;
		assert_int_equal(GET("/api/v1/cps", i % 2 ? "wrong-wrong-wrong-wrong" : NULL), 401);
		assert_true(R.has_note);
	}
	/* Blocked now, even with a good token; one note for the window. */
	NOW += 1;
	assert_int_equal(GET("/api/v1/cps", T_READ), 429);
	expect_error(429);
	assert_true(R.retry_after > 0 && R.retry_after <= 60);
	assert_true(R.has_note);
	assert_int_equal(R.note.status, 429);
	assert_non_null(strstr(R.note.detail, "GET /api/v1/cps: 429"));
	for (int i = 0; i < 20; i++) {
		NOW += 1;
		assert_int_equal(GET("/api/v1/cps", NULL), 429);
		assert_false(R.has_note);
	}
	/* Another address is not affected; the page is served anyway. */
	IP = "192.0.2.8";
	assert_int_equal(GET("/api/v1/cps", T_READ), 200);
	IP = "192.0.2.7";
	assert_int_equal(GET("/", NULL), 200);
	/* 60 s after the block began it is lifted, and counting restarts. */
	NOW += 40;
	assert_int_equal(GET("/api/v1/cps", T_READ), 200);
	assert_int_equal(GET("/api/v1/cps", NULL), 401);

	/* Denials spread over more than a minute never block. */
	IP = "192.0.2.9";
	for (int i = 0; i < 30; i++) {
		NOW += 7;
		assert_int_equal(GET("/api/v1/cps", NULL), 401);
	}
	assert_int_equal(GET("/api/v1/cps", T_READ), 200);
}

static void test_rate_limit_table_bounded(void **state)
{
	(void)state;
	char ip[64];
	/* Far more addresses than remembered: memory stays bounded and the
	 * handler keeps answering. */
	for (int i = 0; i < API_RL_ADDRS * 3; i++) {
		snprintf(ip, sizeof ip, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		IP = ip;
		NOW += 0.001;
		assert_int_equal(GET("/api/v1/cps", NULL), 401);
	}
	IP = "127.0.0.1";
	assert_int_equal(GET("/api/v1/cps", T_READ), 200);
}

static void test_database_errors(void **state)
{
	(void)state;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	exec_sql(db, "DROP TABLE audit_log");
	sqlite3_close(db);
	assert_int_equal(GET("/api/v1/audit", T_READ), 500);
	expect_error(500);
	assert_non_null(strstr(json_string_value(json_object_get(J, "error")), "audit_log"));
	/* The API's connection is read-only: it can never write the file. */
	char err[EVC_ERR_LEN];
	char bad[160];
	snprintf(bad, sizeof bad, "%s/missing.db", dir);
	struct api_tokens *t = api_tokens_parse(TOKENS, strlen(TOKENS), "t", err);
	assert_null(api_handler_new(t, bad, (const unsigned char *)PAGE, strlen(PAGE), err));
	assert_non_null(strstr(err, "read-only"));
	assert_int_equal(access(bad, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tokens_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens_file_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens_constant_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found_and_methods, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unauthorised, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cps_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cp_detail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_weather_and_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit_table_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_database_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
