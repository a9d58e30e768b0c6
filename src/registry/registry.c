#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sqlite3.h>

#include "evc/clock.h"
#include "evc/crypto.h"
#include "evc/log.h"
#include "evc/msg.h"
#include "evc/schema.h"
#include "evc/xalloc.h"
#include "src/registry/ratelimit.h"
#include "src/registry/registry.h"

#define ACTOR "registry"
#define PRICE_MAX 100.0
/* Longest Authorization value looked at; a longer one is simply wrong. */
#define BEARER_MAX 512

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_GET,
	ST_INSERT,
	ST_ADOPT,
	ST_ROTATE,
	ST_DELETE,
	ST_COUNT
};

/* Every change to a row takes the next reg_rev (evc/schema.h), so Central
 * can load what the registry changed with "WHERE reg_rev > ?". */
static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_GET] = "SELECT location, price, secret_hash, registered_at, cp_key IS NOT NULL, deleted_at IS NOT NULL"
		   " FROM charging_points WHERE id = ?1",
	[ST_INSERT] = "INSERT INTO charging_points(id, location, price, status, updated_at, secret_hash,"
		      " registered_at, reg_rev)"
		      " VALUES(?1, ?2, ?3, 'DESCONECTADO', ?4, ?5, ?4, " SCHEMA_NEXT_REG_REV ")",
	/* A row known before without a credential (Release 1, --add-cp) or
	 * unregistered: it becomes this registration, with a clean slate for
	 * the trust columns; Central's own columns (status, stopped...) stay. */
	[ST_ADOPT] = "UPDATE charging_points SET location = ?2, price = ?3, updated_at = ?4, secret_hash = ?5,"
		     " registered_at = ?4, deleted_at = NULL, cp_key = NULL, key_issued_at = NULL, revoked = 0,"
		     " reg_rev = " SCHEMA_NEXT_REG_REV " WHERE id = ?1",
	[ST_ROTATE] = "UPDATE charging_points SET secret_hash = ?2, updated_at = ?3,"
		      " reg_rev = " SCHEMA_NEXT_REG_REV " WHERE id = ?1",
	/* The row stays for its sessions and history; what made it trusted
	 * goes, so Central refuses the CP from the next reg_rev it loads. */
	[ST_DELETE] = "UPDATE charging_points SET deleted_at = ?2, updated_at = ?2, secret_hash = NULL, cp_key = NULL,"
		      " key_issued_at = NULL, reg_rev = " SCHEMA_NEXT_REG_REV " WHERE id = ?1",
};

struct registry {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	unsigned char installer_hash[32];
	struct ratelimit *rl;
	char path[256];
};

/* A charging_points row as the registry sees it. */
struct cprow {
	int found;
	int live;    /* has a secret and is not deleted: registered here */
	int deleted; /* unregistered (DELETE) */
	char location[MSG_LOCATION_MAX + 1];
	double price;
	double registered_at;
	int key_issued;
	char secret_hash[65];
};

enum route { ROUTE_NONE, ROUTE_CPS, ROUTE_CP, ROUTE_CP_SECRET };
enum who { WHO_NONE, WHO_INSTALLER, WHO_CP };

/* ---- opening ---- */

struct registry *registry_open(const char *db_path, const char *installer_token, char err[EVC_ERR_LEN])
{
	struct registry *r = xcalloc(1, sizeof *r);
	xstrlcpy(r->path, db_path, sizeof r->path);
	if (installer_token == NULL || strlen(installer_token) < REGISTRY_TOKEN_MIN) {
		evc_seterr(err, "the installer token is shorter than %d characters (make one with scripts/pki init)",
			   REGISTRY_TOKEN_MIN);
		goto fail;
	}
	crypto_sha256(installer_token, strlen(installer_token), r->installer_hash);
	int rc = sqlite3_open_v2(db_path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		evc_seterr(err, "%.100s: cannot open database: %.100s", db_path,
			   r->db != NULL ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		goto fail;
	}
	/* Central writes the same file: wait for its short transactions, but
	 * not so long that a client's request hangs. */
	sqlite3_busy_timeout(r->db, 2000);
	if (schema_set_wal(r->db, 5000, err) == -1)
		goto fail;
	/* A secret the client was given must survive a power cut: the
	 * registry's few commits are made durable one by one. */
	if (sqlite3_exec(r->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
		evc_seterr(err, "%.100s: %.100s", db_path, sqlite3_errmsg(r->db));
		goto fail;
	}
	if (schema_migrate(r->db, err) == -1)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(r->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &r->st[i], NULL) !=
		    SQLITE_OK) {
			evc_seterr(err, "%.100s: preparing statements: %.100s", db_path, sqlite3_errmsg(r->db));
			goto fail;
		}
	}
	r->rl = ratelimit_new(REGISTRY_RATE_SLOTS, REGISTRY_AUTH_LIMIT, REGISTRY_AUTH_WINDOW, REGISTRY_AUTH_BLOCK);
	return r;
fail:
	registry_close(r);
	return NULL;
}

void registry_close(struct registry *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(r->st[i]);
	if (r->db != NULL)
		sqlite3_close(r->db);
	ratelimit_free(r->rl);
	crypto_wipe(r->installer_hash, sizeof r->installer_hash);
	free(r);
}

sqlite3 *registry_db(struct registry *r)
{
	return r->db;
}

/* ---- answers ---- */

static void answer_json(struct registry_response *resp, int status, json_t *body)
{
	resp->status = status;
	free(resp->body);
	/* 15 digits: 0.31 prints as 0.31, not 0.31000000000000001 */
	resp->body = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(body);
	if (resp->body == NULL)
		abort(); /* jansson fails only on allocation */
}

static void answer_error(struct registry_response *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void answer_error(struct registry_response *resp, int status, const char *fmt, ...)
{
	char text[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	answer_json(resp, status, json_pack("{s:s}", "error", text));
	if (resp->note[0] == '\0')
		xstrlcpy(resp->note, text, sizeof resp->note);
}

static void note(struct registry_response *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct registry_response *resp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(resp->note, sizeof resp->note, fmt, ap);
	va_end(ap);
}

/* The one body of every 401: a missing and a wrong credential look alike. */
static void answer_unauthorized(struct registry_response *resp)
{
	answer_json(resp, 401, json_pack("{s:s}", "error", "missing or wrong credential"));
}

static void answer_db_error(struct registry *r, struct registry_response *resp, const char *what)
{
	int code = sqlite3_errcode(r->db) & 0xff;
	log_error("%s: %s: %s", r->path, what, sqlite3_errmsg(r->db));
	resp->note[0] = '\0';
	if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
		answer_error(resp, 503, "the database is busy; try again");
		resp->retry_after = 1;
	} else {
		answer_error(resp, 500, "database error");
	}
}

/* ---- database ---- */

static int step_done(struct registry *r, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int begin(struct registry *r)
{
	return step_done(r, r->st[ST_BEGIN]);
}

static int commit(struct registry *r)
{
	if (step_done(r, r->st[ST_COMMIT]) == 0)
		return 0;
	if (!sqlite3_get_autocommit(r->db))
		step_done(r, r->st[ST_ROLLBACK]);
	return -1;
}

static void rollback(struct registry *r)
{
	if (!sqlite3_get_autocommit(r->db))
		step_done(r, r->st[ST_ROLLBACK]);
}

/* 0 (row->found says whether the id is known) or -1 on a database error. */
static int load_cp(struct registry *r, const char *id, struct cprow *row)
{
	sqlite3_stmt *st = r->st[ST_GET];
	memset(row, 0, sizeof *row);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row->found = 1;
		const char *loc = (const char *)sqlite3_column_text(st, 0);
		xstrlcpy(row->location, loc != NULL ? loc : "", sizeof row->location);
		row->price = sqlite3_column_double(st, 1);
		const char *h = (const char *)sqlite3_column_text(st, 2);
		if (h != NULL)
			xstrlcpy(row->secret_hash, h, sizeof row->secret_hash);
		row->registered_at = sqlite3_column_double(st, 3);
		row->key_issued = sqlite3_column_int(st, 4);
		row->deleted = sqlite3_column_int(st, 5) != 0;
		row->live = h != NULL && !row->deleted;
		rc = sqlite3_step(st);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int audit(struct registry *r, const struct registry_request *req, const char *action, const char *cp_id,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int audit(struct registry *r, const struct registry_request *req, const char *action, const char *cp_id,
		 const char *fmt, ...)
{
	char detail[SCHEMA_AUDIT_DETAIL_MAX + 1], err[EVC_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	if (schema_audit(r->db, clock_wall(), ACTOR, req->peer, action, cp_id, detail, err) == -1) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

/* ---- the request ---- */

/* Which resource the path names; id filled for the /v1/cps/<id> ones, and
 * *id_ok whether it is a valid CP id. */
static enum route route(const char *path, char id[MSG_CP_ID_MAX + 1], int *id_ok)
{
	static const char base[] = "/v1/cps";
	id[0] = '\0';
	*id_ok = 0;
	if (path == NULL || strncmp(path, base, sizeof base - 1) != 0)
		return ROUTE_NONE;
	const char *p = path + sizeof base - 1;
	if (*p == '\0')
		return ROUTE_CPS;
	if (*p != '/' || p[1] == '\0' || p[1] == '/')
		return ROUTE_NONE;
	p++;
	const char *slash = strchr(p, '/');
	size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
	enum route rt;
	if (slash == NULL)
		rt = ROUTE_CP;
	else if (strcmp(slash, "/secret") == 0)
		rt = ROUTE_CP_SECRET;
	else
		return ROUTE_NONE;
	if (n <= MSG_CP_ID_MAX) {
		memcpy(id, p, n);
		id[n] = '\0';
		*id_ok = msg_valid_cp_id(id);
	}
	if (!*id_ok)
		id[0] = '\0';
	return rt;
}

static const char *allowed(enum route rt)
{
	switch (rt) {
	case ROUTE_CPS: return "POST";
	case ROUTE_CP: return "GET, DELETE";
	case ROUTE_CP_SECRET: return "POST";
	default: return NULL;
	}
}

static int method_allowed(enum route rt, const char *m)
{
	switch (rt) {
	case ROUTE_CPS: return strcmp(m, "POST") == 0;
	case ROUTE_CP: return strcmp(m, "GET") == 0 || strcmp(m, "DELETE") == 0;
	case ROUTE_CP_SECRET: return strcmp(m, "POST") == 0;
	default: return 0;
	}
}

/* The token of "Bearer <token>" into tok (NUL-terminated), or 0 if the
 * header is missing or not of that form. */
static int bearer(const char *h, char tok[BEARER_MAX + 1])
{
	if (h == NULL)
		return 0;
	while (*h == ' ' || *h == '\t')
		h++;
	if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
		return 0;
	h += 6;
	while (*h == ' ' || *h == '\t')
		h++;
	size_t n = strnlen(h, BEARER_MAX + 1);
	if (n == 0 || n > BEARER_MAX)
		return 0;
	while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	memcpy(tok, h, n);
	tok[n] = '\0';
	return n > 0;
}

/* Who presents the credential: the installer (its token), the CP the
 * path names (its current secret), or nobody. *db_failed set on a database
 * error. The CP's secret is compared even when the CP is unknown (with a
 * hash nothing matches), so the time taken does not say whether it is. */
static enum who authenticate(struct registry *r, const struct registry_request *req, enum route rt, const char *id,
			     int id_ok, int *missing, int *db_failed)
{
	static const char nothing[65] = "0000000000000000000000000000000000000000000000000000000000000000";
	char tok[BEARER_MAX + 1];
	enum who who = WHO_NONE;
	*db_failed = 0;
	*missing = req->authorization == NULL;
	if (!bearer(req->authorization, tok))
		return WHO_NONE;
	unsigned char h[32];
	crypto_sha256(tok, strlen(tok), h);
	if (crypto_ct_equal(h, r->installer_hash, sizeof h)) {
		who = WHO_INSTALLER;
	} else if (rt == ROUTE_CP || rt == ROUTE_CP_SECRET) {
		struct cprow row;
		row.live = 0;
		if (id_ok && load_cp(r, id, &row) == -1) {
			*db_failed = 1;
		} else {
			int match = crypto_secret_matches(tok, row.live ? row.secret_hash : nothing);
			if (match && row.live)
				who = WHO_CP;
		}
		crypto_wipe(&row, sizeof row);
	}
	crypto_wipe(tok, sizeof tok);
	crypto_wipe(h, sizeof h);
	return who;
}

static const char *who_name(enum who w)
{
	return w == WHO_INSTALLER ? "the installer" : w == WHO_CP ? "the CP itself" : "nobody";
}

/* The request line for audit details: the route with a valid id only, so
 * nothing a client made up reaches the log. */
static void route_text(char *buf, size_t n, const char *method, enum route rt, const char *id, int id_ok)
{
	const char *shown = id_ok ? id : "(invalid id)";
	switch (rt) {
	case ROUTE_CPS: snprintf(buf, n, "%s /v1/cps", method); break;
	case ROUTE_CP: snprintf(buf, n, "%s /v1/cps/%s", method, shown); break;
	case ROUTE_CP_SECRET: snprintf(buf, n, "%s /v1/cps/%s/secret", method, shown); break;
	default: snprintf(buf, n, "%s ?", method); break;
	}
}

/* A failed authentication: audited, counted; the failure that crosses the
 * limit blocks the address (audited once) and is answered 429 already. */
static void auth_failed(struct registry *r, const struct registry_request *req, struct registry_response *resp,
			const char *key, double now, enum route rt, const char *id, int id_ok, int missing)
{
	char what[96];
	route_text(what, sizeof what, req->method, rt, id, id_ok);
	int blocked = ratelimit_fail(r->rl, key, now);
	if (begin(r) == -1) {
		answer_db_error(r, resp, "audit");
		return;
	}
	if (audit(r, req, "CP_AUTH_FAILED", id_ok ? id : NULL, "%s credential for %s from %s",
		  missing ? "no" : "a wrong", what, req->peer) == -1 ||
	    (blocked && audit(r, req, "RATE_LIMITED", NULL,
			      "more than %d failed authentications from %s within %.0f s; its requests are refused"
			      " for %.0f s",
			      REGISTRY_AUTH_LIMIT, key, REGISTRY_AUTH_WINDOW, REGISTRY_AUTH_BLOCK) == -1) ||
	    commit(r) == -1) {
		rollback(r);
		answer_db_error(r, resp, "audit");
		return;
	}
	if (blocked) {
		answer_error(resp, 429, "too many failed authentications from this address; try again in %.0f s",
			     REGISTRY_AUTH_BLOCK);
		resp->retry_after = (int)REGISTRY_AUTH_BLOCK;
		note(resp, "%s credential; address blocked for %.0f s", missing ? "no" : "wrong", REGISTRY_AUTH_BLOCK);
	} else {
		answer_unauthorized(resp);
		note(resp, "%s credential", missing ? "no" : "wrong");
	}
}

void registry_path_for_log(const char *path, char *buf, size_t n)
{
	char id[MSG_CP_ID_MAX + 1];
	int id_ok;
	enum route rt = route(path, id, &id_ok);
	if (rt == ROUTE_NONE) {
		snprintf(buf, n, "(unknown path)");
		return;
	}
	route_text(buf, n, "", rt, id, id_ok);
	/* route_text starts with the method, empty here */
	memmove(buf, buf + 1, strlen(buf));
}

static int is_json_type(const char *ct)
{
	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, "application/json", 16) != 0)
		return 0;
	ct += 16;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* The fields of POST /v1/cps, checked as REGISTER checks them
 * (evcharging(7) LINK PROTOCOL): 0, or -1 with a 400 answered. */
static int parse_new_cp(const struct registry_request *req, struct registry_response *resp,
			char id[MSG_CP_ID_MAX + 1], char location[MSG_LOCATION_MAX + 1], double *price)
{
	json_error_t jerr;
	json_t *o = json_loadb(req->body != NULL ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		/* Line and column only: jansson's text quotes the input. */
		answer_error(resp, 400, "body is not valid JSON (line %d, column %d)", jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_object(o)) {
		answer_error(resp, 400, "body must be a JSON object {\"id\",\"location\",\"price\"}");
		goto fail;
	}
	json_t *jid = json_object_get(o, "id"), *jloc = json_object_get(o, "location"),
	       *jprice = json_object_get(o, "price");
	if (jid == NULL || jloc == NULL || jprice == NULL) {
		answer_error(resp, 400, "missing field '%s'", jid == NULL ? "id" : jloc == NULL ? "location" : "price");
		goto fail;
	}
	if (!json_is_string(jid) || json_string_length(jid) > MSG_CP_ID_MAX ||
	    !msg_valid_cp_id(json_string_value(jid))) {
		answer_error(resp, 400, "field 'id' must be a CP id (1 to 32 of A-Z a-z 0-9 _ -)");
		goto fail;
	}
	const char *loc = json_is_string(jloc) ? json_string_value(jloc) : NULL;
	/* '#' separates the fields of REGISTER, where the location travels too. */
	if (loc == NULL || loc[0] == '\0' || strlen(loc) != json_string_length(jloc) || !msg_valid_location(loc) ||
	    strchr(loc, '#') != NULL) {
		answer_error(resp, 400,
			     "field 'location' must be text of 1 to 64 characters, without control characters or '#'");
		goto fail;
	}
	double p = json_is_number(jprice) ? json_number_value(jprice) : NAN;
	/* Prices are kept to 4 decimals, as the link and the tickets carry them. */
	p = round(p * 1e4) / 1e4;
	if (!isfinite(p) || !(p > 0 && p <= PRICE_MAX)) {
		answer_error(resp, 400, "field 'price' must be a number of EUR/kWh, at least 0.0001 and at most 100");
		goto fail;
	}
	xstrlcpy(id, json_string_value(jid), MSG_CP_ID_MAX + 1);
	xstrlcpy(location, loc, MSG_LOCATION_MAX + 1);
	*price = p;
	json_decref(o);
	return 0;
fail:
	json_decref(o);
	return -1;
}

/* "0.25", "0.30", "0.1235": 4 decimals at most, 2 at least, as the link
 * and the panel show prices. */
static void price_text(char *buf, size_t n, double p)
{
	snprintf(buf, n, "%.4f", p);
	char *dot = strchr(buf, '.');
	if (dot == NULL)
		return;
	char *end = buf + strlen(buf) - 1;
	while (end > dot + 2 && *end == '0')
		*end-- = '\0';
}

/* A new secret for id into secret, its hash into hash. 0, or -1 with a 500
 * answered. */
static int new_secret(struct registry_response *resp, char secret[CRYPTO_SECRET_LEN + 1], char hash[65])
{
	char err[EVC_ERR_LEN];
	if (crypto_new_secret(secret, err) == -1) {
		log_error("%s", err);
		answer_error(resp, 500, "cannot make a secret");
		return -1;
	}
	crypto_secret_hash(secret, hash);
	return 0;
}

static void answer_secret(struct registry_response *resp, int status, const char *id, const char *secret)
{
	answer_json(resp, status, json_pack("{s:s,s:s}", "id", id, "secret", secret));
}

/* POST /v1/cps (inside the transaction): 0 to commit, -1 to roll back
 * (answered). */
static int do_register(struct registry *r, const struct registry_request *req, struct registry_response *resp)
{
	char id[MSG_CP_ID_MAX + 1], location[MSG_LOCATION_MAX + 1], secret[CRYPTO_SECRET_LEN + 1], hash[65];
	double price;
	struct cprow row;
	if (parse_new_cp(req, resp, id, location, &price) == -1)
		return -1;
	if (load_cp(r, id, &row) == -1) {
		answer_db_error(r, resp, "reading a CP");
		return -1;
	}
	if (row.live) {
		answer_error(resp, 409, "CP %s is already registered", id);
		return -1;
	}
	if (new_secret(resp, secret, hash) == -1)
		return -1;
	double now = clock_wall();
	sqlite3_stmt *st = r->st[row.found ? ST_ADOPT : ST_INSERT];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, location, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 3, price);
	sqlite3_bind_double(st, 4, now);
	sqlite3_bind_text(st, 5, hash, -1, SQLITE_STATIC);
	int rc = step_done(r, st);
	crypto_wipe(hash, sizeof hash);
	if (rc == -1) {
		crypto_wipe(secret, sizeof secret);
		answer_db_error(r, resp, "registering a CP");
		return -1;
	}
	char pb[32];
	price_text(pb, sizeof pb, price);
	if (audit(r, req, "CP_REGISTERED", id, "CP %s registered by the installer at \"%s\", %s EUR/kWh%s", id,
		  location, pb,
		  !row.found	? ""
		  : row.deleted ? "; it had been unregistered before"
				: "; it was known before without a credential") == -1) {
		crypto_wipe(secret, sizeof secret);
		answer_error(resp, 500, "database error");
		return -1;
	}
	answer_secret(resp, 201, id, secret);
	crypto_wipe(secret, sizeof secret);
	note(resp, "CP %s registered%s", id, row.found ? " (existing row adopted)" : "");
	return 0;
}

static int do_get(struct registry *r, struct registry_response *resp, const char *id, const struct cprow *row)
{
	(void)r;
	json_t *o = json_pack("{s:s,s:s,s:f,s:f,s:b}", "id", id, "location", row->location, "price",
			      round(row->price * 1e4) / 1e4, "registered_at", round(row->registered_at * 1e3) / 1e3,
			      "key_issued", row->key_issued);
	answer_json(resp, 200, o);
	note(resp, "CP %s shown", id);
	return 0;
}

static int do_rotate(struct registry *r, const struct registry_request *req, struct registry_response *resp,
		     const char *id, enum who who)
{
	char secret[CRYPTO_SECRET_LEN + 1], hash[65];
	if (new_secret(resp, secret, hash) == -1)
		return -1;
	sqlite3_stmt *st = r->st[ST_ROTATE];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 3, clock_wall());
	int rc = step_done(r, st);
	crypto_wipe(hash, sizeof hash);
	if (rc == -1 || audit(r, req, "CP_SECRET_ROTATED", id,
			      "new secret for CP %s, asked by %s; the old one no longer works", id, who_name(who)) == -1) {
		crypto_wipe(secret, sizeof secret);
		answer_db_error(r, resp, "rotating a secret");
		return -1;
	}
	answer_secret(resp, 200, id, secret);
	crypto_wipe(secret, sizeof secret);
	note(resp, "CP %s has a new secret", id);
	return 0;
}

static int do_delete(struct registry *r, const struct registry_request *req, struct registry_response *resp,
		     const char *id, enum who who)
{
	sqlite3_stmt *st = r->st[ST_DELETE];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, clock_wall());
	if (step_done(r, st) == -1 ||
	    audit(r, req, "CP_UNREGISTERED", id,
		  "CP %s unregistered, asked by %s; its secret and key are void and Central refuses it", id,
		  who_name(who)) == -1) {
		answer_db_error(r, resp, "unregistering a CP");
		return -1;
	}
	resp->status = 204;
	note(resp, "CP %s unregistered", id);
	return 0;
}

void registry_handle(struct registry *r, const struct registry_request *req, struct registry_response *resp)
{
	memset(resp, 0, sizeof *resp);
	double now = req->now > 0 ? req->now : clock_mono();
	const char *method = req->method != NULL ? req->method : "";
	char key[RATELIMIT_KEY_LEN], id[MSG_CP_ID_MAX + 1];
	int id_ok, missing, db_failed;
	ratelimit_key(req->peer != NULL ? req->peer : "", key);

	double left = ratelimit_blocked(r->rl, key, now);
	if (left > 0) {
		int secs = (int)ceil(left);
		answer_error(resp, 429, "too many failed authentications from this address; try again in %d s", secs);
		resp->retry_after = secs;
		note(resp, "address blocked for another %d s", secs);
		return;
	}
	enum route rt = route(req->path, id, &id_ok);
	if (rt == ROUTE_NONE) {
		answer_error(resp, 404, "no such resource (the API is /v1/cps and /v1/cps/<id>)");
		return;
	}
	if (!method_allowed(rt, method)) {
		resp->allow = allowed(rt);
		answer_error(resp, 405, "method not allowed here; use %s", resp->allow);
		return;
	}

	/* Headers only: refuse what can be refused without the body, and
	 * never read a body for someone who is not authenticated. */
	if (req->headers_only) {
		enum who who = authenticate(r, req, rt, id, id_ok, &missing, &db_failed);
		if (db_failed) {
			answer_db_error(r, resp, "authenticating");
			return;
		}
		if (who == WHO_NONE) {
			auth_failed(r, req, resp, key, now, rt, id, id_ok, missing);
			return;
		}
		if (req->body_too_large)
			answer_error(resp, 413, "body larger than %d bytes", REGISTRY_BODY_MAX);
		return;
	}

	/* The check and the change in one write transaction: a secret
	 * rotated or deleted meanwhile cannot be used once more. */
	if (begin(r) == -1) {
		answer_db_error(r, resp, "starting a transaction");
		return;
	}
	enum who who = authenticate(r, req, rt, id, id_ok, &missing, &db_failed);
	if (db_failed) {
		answer_db_error(r, resp, "authenticating");
		goto rollback;
	}
	if (who == WHO_NONE) {
		rollback(r);
		auth_failed(r, req, resp, key, now, rt, id, id_ok, missing);
		return;
	}
	if (rt != ROUTE_CPS && !id_ok) {
		answer_error(resp, 400, "invalid CP id in the path (1 to 32 of A-Z a-z 0-9 _ -)");
		goto rollback;
	}
	if (req->body_too_large) {
		answer_error(resp, 413, "body larger than %d bytes", REGISTRY_BODY_MAX);
		goto rollback;
	}
	if ((rt == ROUTE_CPS || req->body_len > 0) && !is_json_type(req->content_type)) {
		answer_error(resp, 415, "Content-Type must be application/json");
		goto rollback;
	}
	int rc;
	if (rt == ROUTE_CPS) {
		/* only the installer token authenticates here */
		rc = do_register(r, req, resp);
	} else {
		struct cprow row;
		if (load_cp(r, id, &row) == -1) {
			answer_db_error(r, resp, "reading a CP");
			goto rollback;
		}
		if (!row.live) {
			answer_error(resp, 404, "CP %s is not registered", id);
			goto rollback;
		}
		if (rt == ROUTE_CP_SECRET)
			rc = do_rotate(r, req, resp, id, who);
		else if (strcmp(method, "GET") == 0)
			rc = do_get(r, resp, id, &row);
		else
			rc = do_delete(r, req, resp, id, who);
		crypto_wipe(&row, sizeof row);
	}
	if (rc == -1)
		goto rollback;
	if (commit(r) == -1) {
		/* Nothing changed: never hand out a secret that was not stored. */
		answer_db_error(r, resp, "committing");
		return;
	}
	return;
rollback:
	rollback(r);
}
