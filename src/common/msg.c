/* The Kafka messages of evcharging(7) KAFKA TOPICS AND MESSAGES <-> struct msg, via jansson
 * (and a hand-rolled writer for the two hot shapes, at the end).
 *
 * One table per direction would be shorter to write but harder to read; the
 * per-topic functions below follow evcharging(7)'s wording so a reviewer can
 * check one against the other. Decoding and encoding apply the same bounds,
 * so anything msg_decode accepts msg_encode can send on unchanged. */
#include "evc/msg.h"
#include "evc/state.h"
#include "evc/utf8.h"
#include "evc/xalloc.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds ("sane limits"): far above anything a real charger produces, low
 * enough that products and sums stay exact in a double. */
#define KWH_MAX 100000.0      /* one session */
#define IMPORTE_MAX 10000000.0 /* KWH_MAX * PRICE_MAX */
#define KW_MAX 1000.0
#define PRICE_MAX 100.0       /* EUR/kWh, evcharging(7) MONITOR AND CENTRAL */
#define TIME_MAX 1e10         /* seconds since the epoch: year 2286 */
#define SEQ_MAX INT64_MAX     /* JSON integers are signed 64-bit in jansson */
#define LOCATION_CHARS 64     /* evcharging(7) MONITOR AND CENTRAL */

static const char *const type_names[MSG_TYPE_COUNT] = {
	[MSG_REQUEST_CHARGE] = "REQUEST_CHARGE",
	[MSG_DRIVER_QUIT] = "DRIVER_QUIT",
	[MSG_SESSION_STARTED] = "SESSION_STARTED",
	[MSG_CONSUMO] = "CONSUMO",
	[MSG_SUPPLY_END] = "SUPPLY_END",
	[MSG_AVERIADO] = "AVERIADO",
	[MSG_CONEXION_PERDIDA] = "CONEXION_PERDIDA",
	[MSG_AUTH_OK] = "AUTH_OK",
	[MSG_AUTH_DENIED] = "AUTH_DENIED",
	[MSG_CONSUMO_UPDATE] = "CONSUMO_UPDATE",
	[MSG_TICKET] = "TICKET",
	[MSG_SUPPLY_ERROR] = "SUPPLY_ERROR",
	[MSG_SESSION_CANCELLED] = "SESSION_CANCELLED",
	[MSG_NETWORK_STATUS_UPDATE] = "NETWORK_STATUS_UPDATE",
};

const char *msg_type_name(enum msg_type t)
{
	if ((unsigned)t >= MSG_TYPE_COUNT)
		return NULL;
	return type_names[t];
}

enum msg_topic msg_type_topic(enum msg_type t)
{
	switch (t) {
	case MSG_REQUEST_CHARGE:
	case MSG_DRIVER_QUIT:
		return MSG_T_DRIVER_REQUESTS;
	case MSG_SESSION_STARTED:
	case MSG_CONSUMO:
	case MSG_SUPPLY_END:
	case MSG_AVERIADO:
	case MSG_CONEXION_PERDIDA:
		return MSG_T_CP_TELEMETRY;
	case MSG_AUTH_OK:
	case MSG_AUTH_DENIED:
	case MSG_CONSUMO_UPDATE:
	case MSG_TICKET:
	case MSG_SUPPLY_ERROR:
	case MSG_SESSION_CANCELLED:
		return MSG_T_DRIVER_NOTIFICATIONS;
	case MSG_NETWORK_STATUS_UPDATE:
	case MSG_TYPE_COUNT:
		break;
	}
	return MSG_T_NETWORK_STATUS;
}

const char *msg_topic_name(enum msg_topic t)
{
	switch (t) {
	case MSG_T_DRIVER_REQUESTS:
		return MSG_TOPIC_DRIVER_REQUESTS;
	case MSG_T_CP_TELEMETRY:
		return MSG_TOPIC_CP_TELEMETRY;
	case MSG_T_DRIVER_NOTIFICATIONS:
		return MSG_TOPIC_DRIVER_NOTIFICATIONS;
	case MSG_T_NETWORK_STATUS:
		return MSG_TOPIC_NETWORK_STATUS;
	}
	return NULL;
}

int msg_valid_cp_id(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= MSG_CP_ID_MAX)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return n >= 1;
}

int msg_valid_user_id(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= MSG_ID_MAX)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '@' || c == '-'))
			return 0;
	}
	return n >= 1;
}

int msg_valid_session_id(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		/* Session ids travel inside link frames (AUTORIZAR_SUMINISTRO,
		 * SESSION#...): no '#', no space, no control byte. */
		if (n >= MSG_ID_MAX || c <= 0x20 || c >= 0x7f || c == '#')
			return 0;
	}
	return n >= 1;
}

void msg_init(struct msg *m, enum msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
}

void msg_free(struct msg *m)
{
	free(m->cps);
	m->cps = NULL;
	m->ncps = 0;
}

static int fail(char err[EVC_ERR_LEN], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(char err[EVC_ERR_LEN], const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		va_start(ap, fmt);
		vsnprintf(err, EVC_ERR_LEN, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---- shared field rules (decode and encode) ---- */

enum str_kind {
	S_CP_ID,   /* ^[A-Za-z0-9_-]{1,32}$ */
	S_USER_ID, /* 1..64 of [A-Za-z0-9_.@-] */
	S_TOKEN,   /* session_id, request_id: 1..64 printable ASCII, no '#' */
	S_TEXT,    /* message, reason: UTF-8, no control characters */
	S_LOCATION, /* as S_TEXT, at most 64 characters */
	S_WORD,    /* component: 1..15 of [A-Za-z_] */
};

static int has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		/* Text ends up on terminals: escape sequences and newlines
		 * would let a peer draw on someone else's screen. The same
		 * rule as link DATA (no byte below 0x20), so a location that
		 * arrived in REGISTER can always be re-sent here. */
		if (c < 0x20)
			return 1;
	}
	return 0;
}


static int printable_ascii(const char *s, size_t max)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (n >= max || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
			return 0;
	return 1;
}

static int valid_word(const char *s, size_t n)
{
	if (n < 1)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'))
			return 0;
	}
	return 1;
}

/* Checks string s (n bytes, no NUL inside) against kind and the byte limit
 * max; returns 0 or -1 with err naming the field. */
static int check_str(const char *name, const char *s, size_t n, enum str_kind kind, size_t max,
		     char err[EVC_ERR_LEN])
{
	size_t chars = 0;

	if (n > max)
		return fail(err, "field '%s' is too long (%zu bytes, at most %zu)", name, n, max);
	if (memchr(s, '\0', n) != NULL)
		return fail(err, "field '%s' contains a NUL byte", name);
	switch (kind) {
	case S_CP_ID:
		if (!msg_valid_cp_id(s))
			return fail(err, "field '%s' is not a valid CP id (1 to 32 of A-Z a-z 0-9 _ -)", name);
		break;
	case S_USER_ID:
		if (!msg_valid_user_id(s))
			return fail(err, "field '%s' is not a valid user id (1 to 64 of A-Z a-z 0-9 _ . @ -)", name);
		break;
	case S_TOKEN:
		if (!msg_valid_session_id(s))
			return fail(err, "field '%s' is not a valid id (1 to 64 printable ASCII, no '#' or space)",
				    name);
		break;
	case S_TEXT:
	case S_LOCATION:
		if (!utf8_valid(s, n, &chars))
			return fail(err, "field '%s' is not valid UTF-8", name);
		if (has_control(s, n))
			return fail(err, "field '%s' contains a control character", name);
		if (kind == S_LOCATION && chars > LOCATION_CHARS)
			return fail(err, "field '%s' is too long (more than %d characters)", name, LOCATION_CHARS);
		break;
	case S_WORD:
		if (!valid_word(s, n))
			return fail(err, "field '%s' must be a word of letters and '_'", name);
		break;
	}
	return 0;
}

static int check_num(const char *name, double v, double max, char err[EVC_ERR_LEN])
{
	if (!isfinite(v))
		return fail(err, "field '%s' must be a finite number", name);
	if (v < 0 || v > max)
		return fail(err, "field '%s' out of range (0 to %g): %g", name, max, v);
	return 0;
}

int msg_valid_text(const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strlen(s);
	return check_str("text", s, n, S_TEXT, MSG_TEXT_MAX, NULL) == 0;
}

int msg_valid_location(const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strlen(s);
	return check_str("location", s, n, S_LOCATION, MSG_LOCATION_MAX, NULL) == 0;
}

const char *msg_check_location(const char *s)
{
	size_t chars = 0;
	if (s == NULL || s[0] == '\0')
		return "location is empty";
	size_t n = strlen(s);
	if (!utf8_valid(s, n, &chars))
		return "location is not valid UTF-8";
	if (has_control(s, n))
		return "location contains a control character";
	if (memchr(s, '#', n) != NULL)
		return "location contains '#'";
	if (chars > LOCATION_CHARS || n > MSG_LOCATION_MAX)
		return "location is longer than 64 characters";
	return NULL;
}

/* ---- decoding ---- */

struct dec {
	json_t *obj;
	const char *ctx; /* "" or "cps[3]: " */
	char *err;
};

static json_t *get(struct dec *d, const char *name, int required)
{
	json_t *v = json_object_get(d->obj, name);

	/* A JSON null is what many encoders write for "not set". */
	if (v != NULL && json_is_null(v))
		v = NULL;
	if (v == NULL && required)
		fail(d->err, "%smissing field '%s'", d->ctx, name);
	return v;
}

/* Copies string field name into dst (size max+1). Returns 1 if present, 0 if
 * absent and optional, -1 on error. */
static int dec_str(struct dec *d, const char *name, int required, enum str_kind kind, char *dst, size_t max)
{
	json_t *v = get(d, name, required);
	const char *s;
	size_t n;

	if (v == NULL)
		return required ? -1 : 0;
	if (!json_is_string(v))
		return fail(d->err, "%sfield '%s' must be a string", d->ctx, name);
	s = json_string_value(v);
	n = json_string_length(v);
	if (check_str(name, s, n, kind, max, d->err) != 0) {
		if (d->ctx[0] != '\0') {
			char tmp[EVC_ERR_LEN];
			snprintf(tmp, sizeof(tmp), "%s%s", d->ctx, d->err);
			memcpy(d->err, tmp, EVC_ERR_LEN);
		}
		return -1;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 1;
}

static int dec_num(struct dec *d, const char *name, int required, double max, double *dst)
{
	json_t *v = get(d, name, required);
	double x;

	if (v == NULL)
		return required ? -1 : 0;
	if (!json_is_number(v))
		return fail(d->err, "%sfield '%s' must be a number", d->ctx, name);
	x = json_number_value(v);
	if (!isfinite(x))
		return fail(d->err, "%sfield '%s' must be a finite number", d->ctx, name);
	if (x < 0 || x > max)
		return fail(d->err, "%sfield '%s' out of range (0 to %g): %g", d->ctx, name, max, x);
	*dst = x;
	return 1;
}

static int dec_seq(struct dec *d, uint64_t *dst)
{
	json_t *v = get(d, "seq", 1);
	json_int_t i;

	if (v == NULL)
		return -1;
	if (json_is_integer(v)) {
		i = json_integer_value(v);
	} else if (json_is_real(v)) {
		/* Tolerate encoders that only have doubles (1.0), as long as
		 * the value is exactly an integer. */
		double x = json_real_value(v);
		if (!(x >= 1 && x <= 9007199254740992.0) || floor(x) != x)
			return fail(d->err, "field 'seq' must be an integer >= 1");
		i = (json_int_t)x;
	} else {
		return fail(d->err, "field 'seq' must be an integer >= 1");
	}
	if (i < 1)
		return fail(d->err, "field 'seq' must be an integer >= 1");
	*dst = (uint64_t)i;
	return 1;
}

static int dec_timestamp(struct dec *d, struct msg *m, int required)
{
	int r = dec_num(d, "timestamp", required, TIME_MAX, &m->timestamp);

	if (r == 1)
		m->has_timestamp = 1;
	return r < 0 ? -1 : 0;
}

static int dec_driver_requests(struct dec *d, struct msg *m)
{
	if (dec_str(d, "user_id", 1, S_USER_ID, m->user_id, MSG_ID_MAX) < 0)
		return -1;
	if (m->type == MSG_DRIVER_QUIT)
		return dec_timestamp(d, m, 0);
	if (dec_str(d, "cp_id", 1, S_CP_ID, m->cp_id, MSG_CP_ID_MAX) < 0)
		return -1;
	if (dec_timestamp(d, m, 1) < 0)
		return -1;
	switch (dec_str(d, "request_id", 0, S_TOKEN, m->request_id, MSG_ID_MAX)) {
	case -1:
		return -1;
	case 1:
		m->has_request_id = 1;
	}
	switch (dec_str(d, "origin", 0, S_TEXT, m->origin, sizeof(m->origin) - 1)) {
	case -1:
		return -1;
	case 1:
		if (strcmp(m->origin, "driver") != 0 && strcmp(m->origin, "cp") != 0)
			return fail(d->err, "field 'origin' must be \"driver\" or \"cp\"");
		m->has_origin = 1;
	}
	return 0;
}

static int dec_telemetry(struct dec *d, struct msg *m)
{
	int r;

	if (dec_str(d, "cp_id", 1, S_CP_ID, m->cp_id, MSG_CP_ID_MAX) < 0 ||
	    dec_str(d, "user_id", 1, S_USER_ID, m->user_id, MSG_ID_MAX) < 0)
		return -1;
	/* A Release-1 peer's engine sends neither session_id nor seq
	 * (evcharging(7) SECURITY, Release 1): both optional here (seq only
	 * with a session_id); the core matches a message without a session
	 * to its CP's open session only for a plaintext CP. */
	r = dec_str(d, "session_id", 0, S_TOKEN, m->session_id, MSG_ID_MAX);
	if (r < 0)
		return -1;
	m->has_session_id = r;
	/* seq may be missing on a closing message too: an engine that
	 * restarted lost its count, and a session ends once whatever the
	 * number. */
	if (json_object_get(d->obj, "seq") != NULL) {
		if (dec_seq(d, &m->seq) < 0)
			return -1;
		m->has_seq = 1;
	}
	if (m->has_seq && !m->has_session_id)
		return fail(d->err, "field 'seq' without 'session_id'");
	if (dec_timestamp(d, m, 0) < 0)
		return -1;
	if (m->type == MSG_SESSION_STARTED)
		return 0;
	/* importe is the engine's own figure and only shown: Central bills
	 * kwh at the session's price. A Release-1 engine may leave it out. */
	if (dec_num(d, "kwh", 1, KWH_MAX, &m->kwh) < 0 ||
	    dec_num(d, "importe", m->has_session_id, IMPORTE_MAX, &m->importe) < 0)
		return -1;
	r = dec_num(d, "kw", m->type == MSG_CONSUMO, KW_MAX, &m->kw);
	if (r < 0)
		return -1;
	m->has_kw = r;
	if (m->type == MSG_CONEXION_PERDIDA &&
	    dec_str(d, "component", 1, S_WORD, m->component, sizeof(m->component) - 1) < 0)
		return -1;
	return 0;
}

static int dec_notification(struct dec *d, struct msg *m)
{
	char target[MSG_ID_MAX + 1];
	int r;

	if (dec_str(d, "cp_id", 1, S_CP_ID, m->cp_id, MSG_CP_ID_MAX) < 0 ||
	    dec_str(d, "user_id", 1, S_USER_ID, m->user_id, MSG_ID_MAX) < 0 ||
	    dec_str(d, "target_driver", 1, S_USER_ID, target, MSG_ID_MAX) < 0)
		return -1;
	if (strcmp(target, m->user_id) != 0)
		return fail(d->err, "field 'target_driver' must equal user_id");
	r = dec_str(d, "session_id", 0, S_TOKEN, m->session_id, MSG_ID_MAX);
	if (r < 0)
		return -1;
	m->has_session_id = r;
	/* Optional: Central echoes the request_id of the REQUEST_CHARGE this
	 * answers (and keeps it for the session), so a driver can tell an
	 * answer to its current request from a late one to an older one. */
	r = dec_str(d, "request_id", 0, S_TOKEN, m->request_id, MSG_ID_MAX);
	if (r < 0)
		return -1;
	m->has_request_id = r;
	if (dec_timestamp(d, m, 0) < 0)
		return -1;
	switch (m->type) {
	case MSG_AUTH_OK:
		return dec_str(d, "message", 0, S_TEXT, m->message, MSG_TEXT_MAX) < 0 ? -1 : 0;
	case MSG_AUTH_DENIED:
	case MSG_SESSION_CANCELLED:
		return dec_str(d, "reason", 1, S_TEXT, m->reason, MSG_TEXT_MAX) < 0 ? -1 : 0;
	case MSG_CONSUMO_UPDATE:
		if (dec_num(d, "kwh", 1, KWH_MAX, &m->kwh) < 0 ||
		    dec_num(d, "importe", 1, IMPORTE_MAX, &m->importe) < 0 || dec_num(d, "kw", 1, KW_MAX, &m->kw) < 0)
			return -1;
		m->has_kw = 1;
		return 0;
	case MSG_TICKET:
		if (dec_num(d, "kwh", 1, KWH_MAX, &m->kwh) < 0 ||
		    dec_num(d, "importe", 1, IMPORTE_MAX, &m->importe) < 0 ||
		    dec_num(d, "price", 1, PRICE_MAX, &m->price) < 0 ||
		    dec_num(d, "started_at", 1, TIME_MAX, &m->started_at) < 0 ||
		    dec_num(d, "ended_at", 1, TIME_MAX, &m->ended_at) < 0)
			return -1;
		return 0;
	case MSG_SUPPLY_ERROR:
		if (dec_str(d, "reason", 1, S_TEXT, m->reason, MSG_TEXT_MAX) < 0 ||
		    dec_num(d, "kwh_partial", 1, KWH_MAX, &m->kwh_partial) < 0 ||
		    dec_num(d, "importe_partial", 1, IMPORTE_MAX, &m->importe_partial) < 0)
			return -1;
		return 0;
	default:
		return fail(d->err, "internal: %d is not a notification", (int)m->type);
	}
}

static int dec_cp_status(struct dec *d, struct msg_cp_status *cp)
{
	if (dec_str(d, "id", 1, S_CP_ID, cp->id, MSG_CP_ID_MAX) < 0 ||
	    dec_str(d, "status", 1, S_TEXT, cp->status, sizeof(cp->status) - 1) < 0)
		return -1;
	if (cp_state_parse(cp->status) < 0)
		return fail(d->err, "%sfield 'status' is not a CP state (DESCONECTADO, ACTIVADO, RESERVADO, "
				    "SUMINISTRANDO, AVERIADO, FUERA_DE_SERVICIO)",
			    d->ctx);
	if (dec_str(d, "location", 1, S_LOCATION, cp->location, MSG_LOCATION_MAX) < 0 ||
	    dec_num(d, "price", 1, PRICE_MAX, &cp->price) < 0)
		return -1;
	return 0;
}

static int dec_network_status(struct dec *d, struct msg *m)
{
	json_t *cps;
	size_t n;
	char ctx[32];
	struct dec sub;

	if (dec_timestamp(d, m, 1) < 0)
		return -1;
	cps = get(d, "cps", 1);
	if (cps == NULL)
		return -1;
	if (!json_is_array(cps))
		return fail(d->err, "field 'cps' must be an array");
	n = json_array_size(cps);
	if (n > MSG_STATUS_MAX)
		return fail(d->err, "field 'cps' has too many entries (%zu, at most %d)", n, MSG_STATUS_MAX);
	if (n == 0)
		return 0;
	m->cps = xcalloc(n, sizeof(*m->cps));
	m->ncps = n;
	sub.err = d->err;
	sub.ctx = ctx;
	for (size_t i = 0; i < n; i++) {
		snprintf(ctx, sizeof(ctx), "cps[%zu]: ", i);
		sub.obj = json_array_get(cps, i);
		if (!json_is_object(sub.obj))
			return fail(d->err, "%smust be an object", ctx);
		if (dec_cp_status(&sub, &m->cps[i]) < 0)
			return -1;
	}
	return 0;
}

int msg_decode(enum msg_topic topic, const char *json, size_t len, struct msg *m, char err[EVC_ERR_LEN])
{
	char dummy[EVC_ERR_LEN];
	json_error_t jerr;
	json_t *root = NULL, *jt;
	struct dec d;
	const char *tname;
	int type = -1, r = -1;

	if (err == NULL)
		err = dummy;
	err[0] = '\0';
	msg_init(m, MSG_REQUEST_CHARGE);
	if (msg_topic_name(topic) == NULL)
		return fail(err, "unknown topic %d", (int)topic);
	if (json == NULL)
		return fail(err, "empty message");
	/* Duplicate keys would let two readers see two different messages. */
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return fail(err, "not valid JSON: %s (at byte %d)", jerr.text, jerr.position);
	if (!json_is_object(root)) {
		fail(err, "message is not a JSON object");
		goto out;
	}
	d.obj = root;
	d.ctx = "";
	d.err = err;
	jt = get(&d, "type", 0);
	if (jt == NULL) {
		if (topic != MSG_T_DRIVER_REQUESTS) {
			fail(err, "missing field 'type'");
			goto out;
		}
		type = MSG_REQUEST_CHARGE;
	} else {
		if (!json_is_string(jt)) {
			fail(err, "field 'type' must be a string");
			goto out;
		}
		tname = json_string_value(jt);
		for (int i = 0; i < MSG_TYPE_COUNT; i++)
			if (strcmp(tname, type_names[i]) == 0 && strlen(tname) == json_string_length(jt))
				type = i;
		if (type < 0) {
			/* Quote someone else's text only when it is short
			 * printable ASCII, so err is always safe to log, show
			 * or put into JSON. */
			if (printable_ascii(tname, 40))
				fail(err, "unknown type '%s' on %s", tname, msg_topic_name(topic));
			else
				fail(err, "unknown type (%zu bytes, not shown) on %s", json_string_length(jt),
				     msg_topic_name(topic));
			goto out;
		}
		if (msg_type_topic((enum msg_type)type) != topic) {
			fail(err, "type '%s' does not belong on %s (it travels on %s)", tname, msg_topic_name(topic),
			     msg_topic_name(msg_type_topic((enum msg_type)type)));
			goto out;
		}
	}
	m->type = (enum msg_type)type;
	switch (topic) {
	case MSG_T_DRIVER_REQUESTS:
		r = dec_driver_requests(&d, m);
		break;
	case MSG_T_CP_TELEMETRY:
		r = dec_telemetry(&d, m);
		break;
	case MSG_T_DRIVER_NOTIFICATIONS:
		r = dec_notification(&d, m);
		break;
	case MSG_T_NETWORK_STATUS:
		r = dec_network_status(&d, m);
		break;
	}
out:
	json_decref(root);
	if (r != 0) {
		msg_free(m);
		msg_init(m, m->type);
		return -1;
	}
	return 0;
}

/* ---- encoding ---- */

/* Amounts are rounded before printing: kWh and kW to 3 decimals (Wh, W),
 * EUR to 2 (cents), prices to 4, times to 3 (ms). Together with 15
 * significant digits this prints 0.1 as 0.1, never 0.10000000000000001 or
 * 1e-05, and a value decodes to the same double it was printed from. */
static double round_to(double x, double scale)
{
	double r = round(x * scale) / scale;

	return r == 0 ? 0 : r; /* no "-0.0" */
}

struct enc {
	json_t *obj;
	char *err;
	int bad;
};

static void put(struct enc *e, const char *name, json_t *v)
{
	if (e->bad) {
		json_decref(v); /* json_decref(NULL) is a no-op */
		return;
	}
	if (v == NULL) {
		fail(e->err, "field '%s' cannot be encoded", name);
		e->bad = 1;
		return;
	}
	json_object_set_new(e->obj, name, v);
}

/* s is a char array of size cap: it must be NUL-terminated inside it. */
static void enc_str(struct enc *e, const char *name, const char *s, size_t cap, enum str_kind kind, size_t max)
{
	const char *nul;
	json_t *v;

	if (e->bad)
		return;
	nul = memchr(s, '\0', cap);
	if (nul == NULL) {
		fail(e->err, "field '%s' is not NUL-terminated", name);
		e->bad = 1;
		return;
	}
	if (check_str(name, s, (size_t)(nul - s), kind, max, e->err) != 0) {
		e->bad = 1;
		return;
	}
	v = json_stringn(s, (size_t)(nul - s));
	if (v == NULL) {
		fail(e->err, "field '%s' is not valid UTF-8", name);
		e->bad = 1;
		return;
	}
	put(e, name, v);
}

static void enc_num(struct enc *e, const char *name, double v, double max, double scale)
{
	if (e->bad)
		return;
	if (check_num(name, v, max, e->err) != 0) {
		e->bad = 1;
		return;
	}
	put(e, name, json_real(round_to(v, scale)));
}

#define ENC_STR(e, name, field, kind, max) enc_str(e, name, field, sizeof(field), kind, max)

enum { SC_KWH = 1000, SC_EUR = 100, SC_PRICE = 10000, SC_TIME = 1000 };

static void enc_timestamp(struct enc *e, const struct msg *m)
{
	if (m->has_timestamp)
		enc_num(e, "timestamp", m->timestamp, TIME_MAX, SC_TIME);
}

static void enc_driver_requests(struct enc *e, const struct msg *m)
{
	ENC_STR(e, "user_id", m->user_id, S_USER_ID, MSG_ID_MAX);
	if (m->type == MSG_DRIVER_QUIT) {
		enc_timestamp(e, m);
		return;
	}
	ENC_STR(e, "cp_id", m->cp_id, S_CP_ID, MSG_CP_ID_MAX);
	/* Required: Central refuses requests older than 60 s. */
	enc_num(e, "timestamp", m->timestamp, TIME_MAX, SC_TIME);
	if (m->has_request_id)
		ENC_STR(e, "request_id", m->request_id, S_TOKEN, MSG_ID_MAX);
	if (m->has_origin && !e->bad) {
		if (memchr(m->origin, '\0', sizeof(m->origin)) == NULL ||
		    (strcmp(m->origin, "driver") != 0 && strcmp(m->origin, "cp") != 0)) {
			fail(e->err, "field 'origin' must be \"driver\" or \"cp\"");
			e->bad = 1;
			return;
		}
		put(e, "origin", json_string(m->origin));
	}
}

static void enc_telemetry(struct enc *e, const struct msg *m)
{
	ENC_STR(e, "cp_id", m->cp_id, S_CP_ID, MSG_CP_ID_MAX);
	ENC_STR(e, "user_id", m->user_id, S_USER_ID, MSG_ID_MAX);
	/* Ours always name the session, and the seq but on a closing message
	 * after a restart; a Release-1 message (decoded without them)
	 * encodes back without them. */
	if (m->has_session_id || m->has_seq)
		ENC_STR(e, "session_id", m->session_id, S_TOKEN, MSG_ID_MAX);
	if (m->has_seq) {
		if (!e->bad && (m->seq < 1 || m->seq > (uint64_t)SEQ_MAX)) {
			fail(e->err, "field 'seq' must be an integer >= 1");
			e->bad = 1;
		}
		put(e, "seq", json_integer((json_int_t)m->seq));
	}
	enc_timestamp(e, m);
	if (m->type == MSG_SESSION_STARTED)
		return;
	enc_num(e, "kwh", m->kwh, KWH_MAX, SC_KWH);
	enc_num(e, "importe", m->importe, IMPORTE_MAX, SC_EUR);
	if (m->type == MSG_CONSUMO || m->has_kw)
		enc_num(e, "kw", m->kw, KW_MAX, SC_KWH);
	if (m->type == MSG_CONEXION_PERDIDA)
		ENC_STR(e, "component", m->component, S_WORD, sizeof(m->component) - 1);
}

static void enc_notification(struct enc *e, const struct msg *m)
{
	ENC_STR(e, "cp_id", m->cp_id, S_CP_ID, MSG_CP_ID_MAX);
	ENC_STR(e, "user_id", m->user_id, S_USER_ID, MSG_ID_MAX);
	ENC_STR(e, "target_driver", m->user_id, S_USER_ID, MSG_ID_MAX);
	if (m->has_session_id)
		ENC_STR(e, "session_id", m->session_id, S_TOKEN, MSG_ID_MAX);
	if (m->has_request_id)
		ENC_STR(e, "request_id", m->request_id, S_TOKEN, MSG_ID_MAX);
	switch (m->type) {
	case MSG_AUTH_OK:
		ENC_STR(e, "message", m->message, S_TEXT, MSG_TEXT_MAX);
		break;
	case MSG_AUTH_DENIED:
	case MSG_SESSION_CANCELLED:
		ENC_STR(e, "reason", m->reason, S_TEXT, MSG_TEXT_MAX);
		break;
	case MSG_CONSUMO_UPDATE:
		enc_num(e, "kwh", m->kwh, KWH_MAX, SC_KWH);
		enc_num(e, "importe", m->importe, IMPORTE_MAX, SC_EUR);
		enc_num(e, "kw", m->kw, KW_MAX, SC_KWH);
		break;
	case MSG_TICKET:
		enc_num(e, "kwh", m->kwh, KWH_MAX, SC_KWH);
		enc_num(e, "importe", m->importe, IMPORTE_MAX, SC_EUR);
		enc_num(e, "price", m->price, PRICE_MAX, SC_PRICE);
		enc_num(e, "started_at", m->started_at, TIME_MAX, SC_TIME);
		enc_num(e, "ended_at", m->ended_at, TIME_MAX, SC_TIME);
		break;
	case MSG_SUPPLY_ERROR:
		ENC_STR(e, "reason", m->reason, S_TEXT, MSG_TEXT_MAX);
		enc_num(e, "kwh_partial", m->kwh_partial, KWH_MAX, SC_KWH);
		enc_num(e, "importe_partial", m->importe_partial, IMPORTE_MAX, SC_EUR);
		break;
	default:
		break;
	}
	enc_timestamp(e, m);
}

static void enc_network_status(struct enc *e, const struct msg *m)
{
	json_t *arr;
	struct enc sub;
	char name[48];

	enc_num(e, "timestamp", m->timestamp, TIME_MAX, SC_TIME);
	if (e->bad)
		return;
	if (m->ncps > MSG_STATUS_MAX || (m->ncps > 0 && m->cps == NULL)) {
		fail(e->err, "field 'cps' has too many entries (%zu, at most %d)", m->ncps, MSG_STATUS_MAX);
		e->bad = 1;
		return;
	}
	arr = json_array();
	put(e, "cps", arr);
	sub.err = e->err;
	sub.bad = 0;
	for (size_t i = 0; i < m->ncps && !sub.bad; i++) {
		const struct msg_cp_status *cp = &m->cps[i];

		sub.obj = json_object();
		ENC_STR(&sub, "id", cp->id, S_CP_ID, MSG_CP_ID_MAX);
		if (!sub.bad && (memchr(cp->status, '\0', sizeof(cp->status)) == NULL ||
				 cp_state_parse(cp->status) < 0)) {
			fail(e->err, "field 'status' is not a CP state");
			sub.bad = 1;
		}
		ENC_STR(&sub, "status", cp->status, S_TEXT, sizeof(cp->status) - 1);
		ENC_STR(&sub, "location", cp->location, S_LOCATION, MSG_LOCATION_MAX);
		enc_num(&sub, "price", cp->price, PRICE_MAX, SC_PRICE);
		if (sub.bad) {
			json_decref(sub.obj);
			/* Say which entry, keeping the field's own message. */
			snprintf(name, sizeof(name), "cps[%zu]: ", i);
			char tmp[EVC_ERR_LEN];
			snprintf(tmp, sizeof(tmp), "%s%s", name, e->err);
			memcpy(e->err, tmp, EVC_ERR_LEN);
			e->bad = 1;
			return;
		}
		json_array_append_new(arr, sub.obj);
	}
}

char *msg_encode_ref(const struct msg *m, size_t *len, char err[EVC_ERR_LEN])
{
	char dummy[EVC_ERR_LEN];
	struct enc e;
	char *out = NULL;
	const char *tname = msg_type_name(m->type);

	if (err == NULL)
		err = dummy;
	err[0] = '\0';
	if (tname == NULL) {
		fail(err, "unknown message type %d", (int)m->type);
		return NULL;
	}
	e.obj = json_object();
	e.err = err;
	e.bad = 0;
	put(&e, "type", json_string(tname));
	switch (msg_type_topic(m->type)) {
	case MSG_T_DRIVER_REQUESTS:
		enc_driver_requests(&e, m);
		break;
	case MSG_T_CP_TELEMETRY:
		enc_telemetry(&e, m);
		break;
	case MSG_T_DRIVER_NOTIFICATIONS:
		enc_notification(&e, m);
		break;
	case MSG_T_NETWORK_STATUS:
		enc_network_status(&e, m);
		break;
	}
	if (!e.bad) {
		out = json_dumps(e.obj, JSON_COMPACT | JSON_REAL_PRECISION(15));
		if (out == NULL)
			fail(err, "cannot encode %s (out of memory?)", tname);
		else if (len != NULL)
			*len = strlen(out);
	}
	json_decref(e.obj);
	return out;
}

/* ---- the hand-rolled writer of the hot shapes ----
 *
 * CONSUMO_UPDATE (one per applied CONSUMO) and NETWORK_STATUS_UPDATE (every
 * CP, each second while anything changes) are written straight into one
 * buffer: building a jansson tree of them, a malloc per value, and
 * printing each real with printf's exact binary-to-decimal conversion were
 * most of the publisher's time in a telemetry flood. Every other type goes
 * through jansson (msg_encode_ref), and the tests and tests/fuzz/fuzz_msg.c
 * check that both give JSON that parses to equal values. The field rules
 * are the same functions (check_str, check_num); the output has the same
 * keys in the same order. */

struct jw {
	char *buf;
	size_t len, cap;
	char *err;
	int bad;
};

static void jw_reserve(struct jw *w, size_t n)
{
	if (w->len + n + 1 <= w->cap)
		return;
	size_t cap = w->cap ? w->cap : 256;
	while (cap < w->len + n + 1)
		cap *= 2;
	w->buf = xrealloc(w->buf, cap);
	w->cap = cap;
}

static void jw_raw(struct jw *w, const char *s, size_t n)
{
	jw_reserve(w, n);
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

#define JW_LIT(w, lit) jw_raw(w, lit, sizeof(lit) - 1)

size_t msg_json_string(char *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *o = out;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
			break;
		}
	}
	*o++ = '"';
	return (size_t)(o - out);
}

static void jw_string(struct jw *w, const char *s, size_t n)
{
	jw_reserve(w, n * 6 + 2);
	w->len += msg_json_string(w->buf + w->len, s, n);
}

/* "name": after a comma unless it is the first key of its object. */
static void jw_key(struct jw *w, const char *name)
{
	if (w->len > 0 && w->buf[w->len - 1] != '{')
		JW_LIT(w, ",");
	jw_string(w, name, strlen(name));
	JW_LIT(w, ":");
}

/* The shortest of %.15g, %.16g, %.17g that strtod reads back as v, with
 * ".0" if it looks like an integer (a JSON real, as jansson prints). */
static size_t fmt_shortest(char out[40], double v)
{
	int n = 0;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(out, 40, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			break;
	}
	if (strpbrk(out, ".eE") == NULL && n < 38) {
		memcpy(out + n, ".0", 3);
		n += 2;
	}
	return (size_t)n;
}

/* v (finite, 0..max) rounded to 1/scale, as a JSON real. After the
 * rounding v * scale is an integer N below 2^53 for every bound here, and
 * the exact decimal N / scale (trailing zeros dropped) is what strtod reads
 * back as v, since both that decimal and v are N / scale correctly rounded:
 * no printf needed. Anything larger takes fmt_shortest. */
static void jw_num(struct jw *w, const char *name, double v, double max, double scale)
{
	if (w->bad)
		return;
	if (check_num(name, v, max, w->err) != 0) {
		w->bad = 1;
		return;
	}
	jw_key(w, name);
	double r = round_to(v, scale);
	double nd = round(r * scale);
	char tmp[40];
	size_t n = 0;
	if (nd >= 9007199254740992.0 || nd / scale != r) {
		n = fmt_shortest(tmp, r);
		jw_raw(w, tmp, n);
		return;
	}
	uint64_t N = (uint64_t)nd, S = (uint64_t)scale, ip = N / S, fp = N % S;
	char digits[24];
	int k = 0;
	do {
		digits[k++] = (char)('0' + ip % 10);
		ip /= 10;
	} while (ip > 0);
	while (k > 0)
		tmp[n++] = digits[--k];
	tmp[n++] = '.';
	int places = 0;
	for (uint64_t t = S; t > 1; t /= 10)
		places++;
	if (fp == 0) {
		tmp[n++] = '0';
	} else {
		for (int i = places - 1; i >= 0; i--, fp /= 10)
			digits[i] = (char)('0' + fp % 10);
		while (places > 1 && digits[places - 1] == '0')
			places--;
		memcpy(tmp + n, digits, (size_t)places);
		n += (size_t)places;
	}
	jw_raw(w, tmp, n);
}

/* s is a char array of size cap, checked as enc_str does. */
static void jw_str(struct jw *w, const char *name, const char *s, size_t cap, enum str_kind kind, size_t max)
{
	if (w->bad)
		return;
	const char *nul = memchr(s, '\0', cap);
	if (nul == NULL) {
		fail(w->err, "field '%s' is not NUL-terminated", name);
		w->bad = 1;
		return;
	}
	if (check_str(name, s, (size_t)(nul - s), kind, max, w->err) != 0) {
		w->bad = 1;
		return;
	}
	jw_key(w, name);
	jw_string(w, s, (size_t)(nul - s));
}

#define JW_STR(w, name, field, kind, max) jw_str(w, name, field, sizeof(field), kind, max)

static void jw_consumo_update(struct jw *w, const struct msg *m)
{
	JW_STR(w, "cp_id", m->cp_id, S_CP_ID, MSG_CP_ID_MAX);
	JW_STR(w, "user_id", m->user_id, S_USER_ID, MSG_ID_MAX);
	JW_STR(w, "target_driver", m->user_id, S_USER_ID, MSG_ID_MAX);
	if (m->has_session_id)
		JW_STR(w, "session_id", m->session_id, S_TOKEN, MSG_ID_MAX);
	if (m->has_request_id)
		JW_STR(w, "request_id", m->request_id, S_TOKEN, MSG_ID_MAX);
	jw_num(w, "kwh", m->kwh, KWH_MAX, SC_KWH);
	jw_num(w, "importe", m->importe, IMPORTE_MAX, SC_EUR);
	jw_num(w, "kw", m->kw, KW_MAX, SC_KWH);
	if (m->has_timestamp)
		jw_num(w, "timestamp", m->timestamp, TIME_MAX, SC_TIME);
}

static void jw_network_status(struct jw *w, const struct msg *m)
{
	jw_num(w, "timestamp", m->timestamp, TIME_MAX, SC_TIME);
	if (w->bad)
		return;
	if (m->ncps > MSG_STATUS_MAX || (m->ncps > 0 && m->cps == NULL)) {
		fail(w->err, "field 'cps' has too many entries (%zu, at most %d)", m->ncps, MSG_STATUS_MAX);
		w->bad = 1;
		return;
	}
	JW_LIT(w, ",\"cps\":[");
	for (size_t i = 0; i < m->ncps; i++) {
		const struct msg_cp_status *cp = &m->cps[i];
		if (i > 0)
			JW_LIT(w, ",");
		JW_LIT(w, "{");
		JW_STR(w, "id", cp->id, S_CP_ID, MSG_CP_ID_MAX);
		if (!w->bad && (memchr(cp->status, '\0', sizeof(cp->status)) == NULL || cp_state_parse(cp->status) < 0)) {
			fail(w->err, "field 'status' is not a CP state");
			w->bad = 1;
		}
		JW_STR(w, "status", cp->status, S_TEXT, sizeof(cp->status) - 1);
		JW_STR(w, "location", cp->location, S_LOCATION, MSG_LOCATION_MAX);
		jw_num(w, "price", cp->price, PRICE_MAX, SC_PRICE);
		if (w->bad) {
			/* Say which entry, keeping the field's own message. */
			char tmp[EVC_ERR_LEN];
			snprintf(tmp, sizeof(tmp), "cps[%zu]: %s", i, w->err);
			memcpy(w->err, tmp, EVC_ERR_LEN);
			return;
		}
		JW_LIT(w, "}");
	}
	JW_LIT(w, "]");
}

char *msg_encode(const struct msg *m, size_t *len, char err[EVC_ERR_LEN])
{
	if (m->type != MSG_CONSUMO_UPDATE && m->type != MSG_NETWORK_STATUS_UPDATE)
		return msg_encode_ref(m, len, err);
	char dummy[EVC_ERR_LEN];
	if (err == NULL)
		err = dummy;
	err[0] = '\0';
	struct jw w = { .err = err };
	JW_LIT(&w, "{\"type\":");
	const char *tname = msg_type_name(m->type);
	jw_string(&w, tname, strlen(tname));
	if (m->type == MSG_CONSUMO_UPDATE)
		jw_consumo_update(&w, m);
	else
		jw_network_status(&w, m);
	if (w.bad) {
		free(w.buf);
		return NULL;
	}
	JW_LIT(&w, "}");
	w.buf[w.len] = '\0';
	if (len != NULL)
		*len = w.len;
	return w.buf;
}
