/* Unit tests of the Kafka message codec (evcharging(7) KAFKA TOPICS AND MESSAGES). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "evc/msg.h"

static int decode_str(enum msg_topic t, const char *json, struct msg *m, char *err)
{
	return msg_decode(t, json, strlen(json), m, err);
}

/* Encodes m and checks the exact bytes, since other implementations parse them. */
static void assert_encodes_to(const struct msg *m, const char *want)
{
	char err[EVC_ERR_LEN] = "";
	size_t len = 0;
	char *got = msg_encode(m, &len, err);

	if (got == NULL)
		fail_msg("encode failed: %s", err);
	assert_string_equal(got, want);
	assert_int_equal(len, strlen(want));
	free(got);
}

static void assert_msg_equal(const struct msg *a, const struct msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_string_equal(a->user_id, b->user_id);
	assert_string_equal(a->cp_id, b->cp_id);
	assert_string_equal(a->session_id, b->session_id);
	assert_string_equal(a->request_id, b->request_id);
	assert_string_equal(a->origin, b->origin);
	assert_string_equal(a->message, b->message);
	assert_string_equal(a->reason, b->reason);
	assert_string_equal(a->component, b->component);
	assert_true(a->timestamp == b->timestamp);
	assert_true(a->seq == b->seq);
	assert_true(a->kwh == b->kwh);
	assert_true(a->importe == b->importe);
	assert_true(a->kw == b->kw);
	assert_true(a->price == b->price);
	assert_true(a->started_at == b->started_at);
	assert_true(a->ended_at == b->ended_at);
	assert_true(a->kwh_partial == b->kwh_partial);
	assert_true(a->importe_partial == b->importe_partial);
	assert_int_equal(a->has_session_id, b->has_session_id);
	assert_int_equal(a->has_request_id, b->has_request_id);
	assert_int_equal(a->has_origin, b->has_origin);
	assert_int_equal(a->has_timestamp, b->has_timestamp);
	assert_int_equal(a->has_seq, b->has_seq);
	assert_int_equal(a->has_kw, b->has_kw);
	assert_int_equal(a->ncps, b->ncps);
	for (size_t i = 0; i < a->ncps; i++) {
		assert_string_equal(a->cps[i].id, b->cps[i].id);
		assert_string_equal(a->cps[i].status, b->cps[i].status);
		assert_string_equal(a->cps[i].location, b->cps[i].location);
		assert_true(a->cps[i].price == b->cps[i].price);
	}
}

/* A complete, valid message of each type, with values at the encoder's
 * resolution so a round trip must give them back exactly. */
static void build(struct msg *m, enum msg_type t)
{
	msg_init(m, t);
	strcpy(m->user_id, "driver.101@example-es");
	strcpy(m->cp_id, "MAD-01");
	switch (msg_type_topic(t)) {
	case MSG_T_DRIVER_REQUESTS:
		if (t == MSG_REQUEST_CHARGE) {
			m->timestamp = 1699999999.125;
			m->has_timestamp = 1;
			strcpy(m->request_id, "req-7f3a");
			m->has_request_id = 1;
			strcpy(m->origin, "cp");
			m->has_origin = 1;
		} else {
			m->cp_id[0] = '\0';
		}
		break;
	case MSG_T_CP_TELEMETRY:
		strcpy(m->session_id, "MAD-01:1700000000:42");
		m->has_session_id = 1;
		m->seq = 17;
		m->has_seq = 1;
		m->timestamp = 1700000017.5;
		m->has_timestamp = 1;
		if (t != MSG_SESSION_STARTED) {
			m->kwh = 3.457;
			m->importe = 0.86;
			m->kw = 7.4;
			m->has_kw = 1;
		}
		if (t == MSG_CONEXION_PERDIDA)
			strcpy(m->component, "MONITOR");
		break;
	case MSG_T_DRIVER_NOTIFICATIONS:
		strcpy(m->session_id, "S-0001");
		m->has_session_id = 1;
		switch (t) {
		case MSG_AUTH_OK:
			strcpy(m->message, "Autorizado: conecte su vehículo en MAD-01");
			break;
		case MSG_AUTH_DENIED:
		case MSG_SESSION_CANCELLED:
			strcpy(m->reason, "CP not ACTIVADO (AVERIADO)");
			break;
		case MSG_CONSUMO_UPDATE:
			m->kwh = 10.001;
			m->importe = 2.5;
			m->kw = 22;
			m->has_kw = 1;
			break;
		case MSG_TICKET:
			m->kwh = 12.5;
			m->importe = 3.13;
			m->price = 0.25;
			m->started_at = 1700000000;
			m->ended_at = 1700003600.25;
			break;
		case MSG_SUPPLY_ERROR:
			strcpy(m->reason, "engine fault");
			m->kwh_partial = 1.5;
			m->importe_partial = 0.38;
			break;
		default:
			break;
		}
		break;
	case MSG_T_NETWORK_STATUS:
		m->cp_id[0] = '\0';
		m->user_id[0] = '\0';
		m->timestamp = 1700000000.5;
		m->has_timestamp = 1;
		m->ncps = 3;
		m->cps = calloc(3, sizeof(*m->cps));
		assert_non_null(m->cps);
		strcpy(m->cps[0].id, "MAD-01");
		strcpy(m->cps[0].status, "ACTIVADO");
		strcpy(m->cps[0].location, "C/ Serrano 10");
		m->cps[0].price = 0.25;
		strcpy(m->cps[1].id, "BCN_2");
		strcpy(m->cps[1].status, "FUERA_DE_SERVICIO");
		strcpy(m->cps[1].location, "Plaça de Catalunya ñ €");
		m->cps[1].price = 0.3125;
		strcpy(m->cps[2].id, "x");
		strcpy(m->cps[2].status, "DESCONECTADO");
		m->cps[2].location[0] = '\0';
		m->cps[2].price = 100;
		break;
	}
}

static void test_round_trip_every_type(void **state)
{
	(void)state;
	for (int t = 0; t < MSG_TYPE_COUNT; t++) {
		struct msg a, b;
		char err[EVC_ERR_LEN] = "";
		size_t len;
		char *json;

		build(&a, (enum msg_type)t);
		json = msg_encode(&a, &len, err);
		if (json == NULL)
			fail_msg("%s: encode: %s", msg_type_name((enum msg_type)t), err);
		if (msg_decode(msg_type_topic((enum msg_type)t), json, len, &b, err) != 0)
			fail_msg("%s: decode of %s: %s", msg_type_name((enum msg_type)t), json, err);
		assert_msg_equal(&a, &b);
		free(json);
		msg_free(&a);
		msg_free(&b);
	}
}

/* Optional fields absent: flags clear on decode, fields absent on encode. */
static void test_round_trip_minimal(void **state)
{
	struct msg a, b;
	char err[EVC_ERR_LEN];
	char *json;
	(void)state;

	msg_init(&a, MSG_SUPPLY_END);
	strcpy(a.cp_id, "C1");
	strcpy(a.user_id, "u");
	strcpy(a.session_id, "s");
	a.seq = 1;
	a.has_session_id = a.has_seq = 1;
	a.kwh = 0;
	a.importe = 0;
	json = msg_encode(&a, NULL, err);
	assert_non_null(json);
	assert_string_equal(json, "{\"type\":\"SUPPLY_END\",\"cp_id\":\"C1\",\"user_id\":\"u\",\"session_id\":\"s\","
				  "\"seq\":1,\"kwh\":0.0,\"importe\":0.0}");
	assert_int_equal(decode_str(MSG_T_CP_TELEMETRY, json, &b, err), 0);
	assert_msg_equal(&a, &b);
	free(json);

	msg_init(&a, MSG_AUTH_OK);
	strcpy(a.cp_id, "C1");
	strcpy(a.user_id, "u");
	json = msg_encode(&a, NULL, err);
	assert_string_equal(json, "{\"type\":\"AUTH_OK\",\"cp_id\":\"C1\",\"user_id\":\"u\",\"target_driver\":\"u\","
				  "\"message\":\"\"}");
	assert_int_equal(decode_str(MSG_T_DRIVER_NOTIFICATIONS, json, &b, err), 0);
	assert_msg_equal(&a, &b);
	free(json);

	msg_init(&a, MSG_NETWORK_STATUS_UPDATE);
	json = msg_encode(&a, NULL, err);
	assert_string_equal(json, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":0.0,\"cps\":[]}");
	assert_int_equal(decode_str(MSG_T_NETWORK_STATUS, json, &b, err), 0);
	a.has_timestamp = 1;
	assert_msg_equal(&a, &b);
	assert_null(b.cps);
	free(json);
}

static void test_protocol_examples(void **state)
{
	struct msg m;
	char err[EVC_ERR_LEN];
	(void)state;

	assert_int_equal(decode_str(MSG_T_DRIVER_REQUESTS,
				    "{\"type\":\"REQUEST_CHARGE\",\"user_id\":\"101\",\"cp_id\":\"MAD-01\","
				    "\"timestamp\":1699999999.0}",
				    &m, err),
			 0);
	assert_int_equal(m.type, MSG_REQUEST_CHARGE);
	assert_string_equal(m.user_id, "101");
	assert_string_equal(m.cp_id, "MAD-01");
	assert_true(m.timestamp == 1699999999.0);
	assert_true(m.has_timestamp);
	assert_false(m.has_request_id);
	assert_false(m.has_origin);

	/* type absent means REQUEST_CHARGE; an integer timestamp is a number too */
	assert_int_equal(decode_str(MSG_T_DRIVER_REQUESTS,
				    "{\"user_id\":\"101\",\"cp_id\":\"MAD-01\",\"timestamp\":1699999999,"
				    "\"origin\":\"driver\",\"request_id\":\"r1\",\"extra\":{\"x\":[1,2]}}",
				    &m, err),
			 0);
	assert_int_equal(m.type, MSG_REQUEST_CHARGE);
	assert_true(m.has_origin);
	assert_string_equal(m.origin, "driver");
	assert_string_equal(m.request_id, "r1");

	assert_int_equal(decode_str(MSG_T_DRIVER_REQUESTS, "{\"type\":\"DRIVER_QUIT\",\"user_id\":\"101\"}", &m, err),
			 0);
	assert_int_equal(m.type, MSG_DRIVER_QUIT);
	assert_string_equal(m.user_id, "101");

	assert_int_equal(decode_str(MSG_T_NETWORK_STATUS,
				    "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1700000000.25,\"cps\":"
				    "[{\"id\":\"MAD-01\",\"status\":\"ACTIVADO\",\"location\":\"C/ Serrano 10\","
				    "\"price\":0.25}]}",
				    &m, err),
			 0);
	assert_int_equal(m.ncps, 1);
	assert_string_equal(m.cps[0].id, "MAD-01");
	assert_string_equal(m.cps[0].status, "ACTIVADO");
	assert_string_equal(m.cps[0].location, "C/ Serrano 10");
	assert_true(m.cps[0].price == 0.25);
	msg_free(&m);
	assert_null(m.cps);
	assert_int_equal(m.ncps, 0);

	/* Telemetry as an engine writes it; timestamp optional, kw optional at the end. */
	assert_int_equal(decode_str(MSG_T_CP_TELEMETRY,
				    "{\"type\":\"CONEXION_PERDIDA\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\","
				    "\"session_id\":\"abc\",\"seq\":9,\"component\":\"MONITOR\",\"kwh\":1,\"importe\":0.25}",
				    &m, err),
			 0);
	assert_int_equal(m.type, MSG_CONEXION_PERDIDA);
	assert_string_equal(m.component, "MONITOR");
	assert_false(m.has_kw);
	assert_false(m.has_timestamp);
	assert_true(m.seq == 9);

	char *json;
	/* A Release-1 peer's engine: no session_id, no seq, no importe
	 * (evcharging(7) SECURITY, Release 1); it encodes back the same. */
	assert_int_equal(decode_str(MSG_T_CP_TELEMETRY,
				    "{\"type\":\"CONSUMO\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\",\"kwh\":1.5,"
				    "\"kw\":7}",
				    &m, err),
			 0);
	assert_false(m.has_session_id);
	assert_false(m.has_seq);
	assert_true(m.kwh == 1.5);
	json = msg_encode(&m, NULL, err);
	assert_non_null(json);
	assert_string_equal(json, "{\"type\":\"CONSUMO\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\",\"kwh\":1.5,"
				  "\"importe\":0.0,\"kw\":7.0}");
	free(json);
	/* Our engine after a restart ends Central's session without a seq. */
	assert_int_equal(decode_str(MSG_T_CP_TELEMETRY,
				    "{\"type\":\"AVERIADO\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\","
				    "\"session_id\":\"S-9\",\"kwh\":0,\"importe\":0}",
				    &m, err),
			 0);
	assert_true(m.has_session_id);
	assert_false(m.has_seq);
	json = msg_encode(&m, NULL, err);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"session_id\":\"S-9\""));
	assert_null(strstr(json, "\"seq\""));
	free(json);

	/* Notifications without a session yet (AUTH_DENIED). */
	assert_int_equal(decode_str(MSG_T_DRIVER_NOTIFICATIONS,
				    "{\"type\":\"AUTH_DENIED\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\","
				    "\"target_driver\":\"101\",\"reason\":\"CP busy\"}",
				    &m, err),
			 0);
	assert_false(m.has_session_id);
	assert_string_equal(m.reason, "CP busy");
}

static void test_exact_bytes(void **state)
{
	struct msg m;
	(void)state;

	msg_init(&m, MSG_REQUEST_CHARGE);
	strcpy(m.user_id, "101");
	strcpy(m.cp_id, "MAD-01");
	m.timestamp = 1699999999.0;
	m.has_timestamp = 1;
	assert_encodes_to(&m, "{\"type\":\"REQUEST_CHARGE\",\"user_id\":\"101\",\"cp_id\":\"MAD-01\","
			      "\"timestamp\":1699999999.0}");

	msg_init(&m, MSG_DRIVER_QUIT);
	strcpy(m.user_id, "101");
	assert_encodes_to(&m, "{\"type\":\"DRIVER_QUIT\",\"user_id\":\"101\"}");

	msg_init(&m, MSG_CONSUMO);
	strcpy(m.cp_id, "MAD-01");
	strcpy(m.user_id, "101");
	strcpy(m.session_id, "S-1");
	m.seq = 3;
	m.has_session_id = m.has_seq = 1;
	m.kwh = 0.1 + 0.2;       /* 0.30000000000000004: must print as 0.3 */
	m.importe = 0.3 * 0.25;  /* 0.075: rounds to cents */
	m.kw = 7.4;
	m.timestamp = 1700000003.0001; /* rounds to ms */
	m.has_timestamp = 1;
	assert_encodes_to(&m, "{\"type\":\"CONSUMO\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\",\"session_id\":\"S-1\","
			      "\"seq\":3,\"timestamp\":1700000003.0,\"kwh\":0.3,\"importe\":0.08,\"kw\":7.4}");

	msg_init(&m, MSG_TICKET);
	strcpy(m.cp_id, "MAD-01");
	strcpy(m.user_id, "101");
	strcpy(m.session_id, "S-1");
	m.has_session_id = 1;
	m.kwh = 12.5;
	m.importe = 12.5 * 0.25;
	m.price = 0.25;
	m.started_at = 1700000000;
	m.ended_at = 1700003600.5;
	assert_encodes_to(&m, "{\"type\":\"TICKET\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\",\"target_driver\":\"101\","
			      "\"session_id\":\"S-1\",\"kwh\":12.5,\"importe\":3.13,\"price\":0.25,"
			      "\"started_at\":1700000000.0,\"ended_at\":1700003600.5}");

	msg_init(&m, MSG_NETWORK_STATUS_UPDATE);
	m.timestamp = 1700000000;
	struct msg_cp_status cps[2] = {
		{"MAD-01", "ACTIVADO", "C/ Serrano 10", 0.25},
		{"MAD-02", "SUMINISTRANDO", "Gran Vía 1", 0.3},
	};
	m.cps = cps;
	m.ncps = 2;
	assert_encodes_to(&m, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1700000000.0,\"cps\":["
			      "{\"id\":\"MAD-01\",\"status\":\"ACTIVADO\",\"location\":\"C/ Serrano 10\",\"price\":0.25},"
			      "{\"id\":\"MAD-02\",\"status\":\"SUMINISTRANDO\",\"location\":\"Gran Vía 1\",\"price\":0.3}]}");

	/* Tiny values never come out as 1e-05. */
	msg_init(&m, MSG_CONSUMO_UPDATE);
	strcpy(m.cp_id, "C");
	strcpy(m.user_id, "u");
	m.kwh = 1e-5;
	m.importe = 1e-300;
	m.kw = 999.9999;
	assert_encodes_to(&m, "{\"type\":\"CONSUMO_UPDATE\",\"cp_id\":\"C\",\"user_id\":\"u\",\"target_driver\":\"u\","
			      "\"kwh\":0.0,\"importe\":0.0,\"kw\":1000.0}");
}

/* request_id is optional on every driver_notifications type: it round-trips
 * when set, comes right after session_id, is absent when not set, and is
 * held to the same rules as REQUEST_CHARGE's. */
static void test_notification_request_id(void **state)
{
	static const enum msg_type types[] = {MSG_AUTH_OK,	 MSG_AUTH_DENIED,  MSG_CONSUMO_UPDATE,
					      MSG_TICKET,	 MSG_SUPPLY_ERROR, MSG_SESSION_CANCELLED};
	struct msg a, b;
	char err[EVC_ERR_LEN] = "";
	size_t len;
	char *json;
	(void)state;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		build(&a, types[i]);
		strcpy(a.request_id, "101-42-7");
		a.has_request_id = 1;
		json = msg_encode(&a, &len, err);
		if (json == NULL)
			fail_msg("%s: encode: %s", msg_type_name(types[i]), err);
		assert_non_null(strstr(json, "\"session_id\":\"S-0001\",\"request_id\":\"101-42-7\","));
		if (msg_decode(MSG_T_DRIVER_NOTIFICATIONS, json, len, &b, err) != 0)
			fail_msg("%s: decode of %s: %s", msg_type_name(types[i]), json, err);
		assert_msg_equal(&a, &b);
		assert_true(b.has_request_id);
		free(json);

		/* Without the flag the field is not emitted, even if set. */
		a.has_request_id = 0;
		json = msg_encode(&a, &len, err);
		assert_non_null(json);
		assert_null(strstr(json, "request_id"));
		assert_int_equal(msg_decode(MSG_T_DRIVER_NOTIFICATIONS, json, len, &b, err), 0);
		assert_false(b.has_request_id);
		assert_string_equal(b.request_id, "");
		free(json);
	}

	msg_init(&a, MSG_AUTH_DENIED);
	strcpy(a.cp_id, "MAD-01");
	strcpy(a.user_id, "101");
	strcpy(a.reason, "CP busy");
	strcpy(a.request_id, "r-1");
	a.has_request_id = 1;
	assert_encodes_to(&a, "{\"type\":\"AUTH_DENIED\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\","
			      "\"target_driver\":\"101\",\"request_id\":\"r-1\",\"reason\":\"CP busy\"}");

	/* The encoder refuses what the decoder would refuse. */
	strcpy(a.request_id, "a#b");
	json = msg_encode(&a, NULL, err);
	assert_null(json);
	assert_non_null(strstr(err, "field 'request_id'"));
	a.request_id[0] = '\0';
	json = msg_encode(&a, NULL, err);
	assert_null(json);
	assert_non_null(strstr(err, "field 'request_id'"));

	/* A JSON null counts as absent. */
	assert_int_equal(decode_str(MSG_T_DRIVER_NOTIFICATIONS,
				    "{\"type\":\"AUTH_OK\",\"cp_id\":\"C\",\"user_id\":\"u\",\"target_driver\":\"u\","
				    "\"request_id\":null}",
				    &b, err),
			 0);
	assert_false(b.has_request_id);
}

/* The decoder reads exactly len bytes: no NUL terminator needed. */
static void test_not_nul_terminated(void **state)
{
	const char *full = "{\"type\":\"DRIVER_QUIT\",\"user_id\":\"101\"}GARBAGE";
	size_t len = strlen(full) - strlen("GARBAGE");
	char *buf = malloc(len);
	struct msg m;
	char err[EVC_ERR_LEN];
	(void)state;

	assert_non_null(buf);
	memcpy(buf, full, len); /* heap block exactly len long: ASan catches any over-read */
	assert_int_equal(msg_decode(MSG_T_DRIVER_REQUESTS, buf, len, &m, err), 0);
	assert_string_equal(m.user_id, "101");
	assert_int_equal(msg_decode(MSG_T_DRIVER_REQUESTS, full, strlen(full), &m, err), -1);
	assert_non_null(strstr(err, "not valid JSON"));
	assert_int_equal(msg_decode(MSG_T_DRIVER_REQUESTS, buf, len - 1, &m, err), -1);
	free(buf);
	assert_int_equal(msg_decode(MSG_T_DRIVER_REQUESTS, "", 0, &m, err), -1);
	assert_int_equal(msg_decode(MSG_T_DRIVER_REQUESTS, NULL, 0, &m, err), -1);
}

struct reject {
	enum msg_topic topic;
	const char *json;
	const char *err; /* substring of the expected error */
};

#define RQ MSG_T_DRIVER_REQUESTS
#define TL MSG_T_CP_TELEMETRY
#define DN MSG_T_DRIVER_NOTIFICATIONS
#define NS MSG_T_NETWORK_STATUS
#define TEL_HEAD "\"type\":\"CONSUMO\",\"cp_id\":\"C1\",\"user_id\":\"u1\",\"session_id\":\"s1\""
#define NOT_HEAD "\"cp_id\":\"C1\",\"user_id\":\"u1\",\"target_driver\":\"u1\""
#define CP_OK "\"id\":\"C1\",\"status\":\"ACTIVADO\",\"location\":\"L\",\"price\":0.25"

static const struct reject rejects[] = {
	/* not JSON, not an object */
	{RQ, "", "not valid JSON"},
	{RQ, "{", "not valid JSON"},
	{RQ, "{\"user_id\":\"1\"} {}", "not valid JSON"},
	{RQ, "[1,2]", "not a JSON object"},
	{RQ, "\"x\"", "not valid JSON"},
	{RQ, "{\"user_id\":\"1\",\"user_id\":\"2\",\"cp_id\":\"C\",\"timestamp\":1}", "not valid JSON"},
	{RQ, "{\"user_id\":\"\xff\",\"cp_id\":\"C\",\"timestamp\":1}", "not valid JSON"},
	{RQ, "{\"user_id\":\"a\\u0000b\",\"cp_id\":\"C\",\"timestamp\":1}", "not valid JSON"},
	/* type */
	{RQ, "{\"type\":7,\"user_id\":\"1\"}", "field 'type' must be a string"},
	{RQ, "{\"type\":\"FOO\",\"user_id\":\"1\"}", "unknown type 'FOO' on driver_requests"},
	{RQ, "{\"type\":\"F\\u001bO\",\"user_id\":\"1\"}", "unknown type (3 bytes, not shown) on driver_requests"},
	{RQ, "{\"type\":\"\u00e9\",\"user_id\":\"1\"}", "unknown type (2 bytes, not shown)"},
	{RQ, "{\"type\":\"CONSUMO\",\"user_id\":\"1\"}", "type 'CONSUMO' does not belong on driver_requests"},
	{TL, "{\"type\":\"REQUEST_CHARGE\",\"user_id\":\"1\",\"cp_id\":\"C\",\"timestamp\":1}", "does not belong"},
	{DN, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[]}", "does not belong"},
	{NS, "{\"type\":\"TICKET\"}", "does not belong"},
	{TL, "{\"cp_id\":\"C1\"}", "missing field 'type'"},
	{DN, "{" NOT_HEAD "}", "missing field 'type'"},
	{NS, "{\"timestamp\":1,\"cps\":[]}", "missing field 'type'"},
	/* driver_requests */
	{RQ, "{\"cp_id\":\"C\",\"timestamp\":1}", "missing field 'user_id'"},
	{RQ, "{\"user_id\":\"1\",\"timestamp\":1}", "missing field 'cp_id'"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"C\"}", "missing field 'timestamp'"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"C\",\"timestamp\":null}", "missing field 'timestamp'"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"C\",\"timestamp\":\"now\"}", "field 'timestamp' must be a number"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"C\",\"timestamp\":-1}", "field 'timestamp' out of range"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"C\",\"timestamp\":1e300}", "field 'timestamp' out of range"},
	{RQ, "{\"user_id\":101,\"cp_id\":\"C\",\"timestamp\":1}", "field 'user_id' must be a string"},
	{RQ, "{\"user_id\":\"\",\"cp_id\":\"C\",\"timestamp\":1}", "field 'user_id' is not a valid user id"},
	{RQ, "{\"user_id\":\"a b\",\"cp_id\":\"C\",\"timestamp\":1}", "field 'user_id' is not a valid user id"},
	{RQ, "{\"user_id\":\"1234567890123456789012345678901234567890123456789012345678901234X\",\"cp_id\":\"C\","
	     "\"timestamp\":1}",
	 "field 'user_id' is too long"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"MAD 01\",\"timestamp\":1}", "field 'cp_id' is not a valid CP id"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"\",\"timestamp\":1}", "field 'cp_id' is not a valid CP id"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"123456789012345678901234567890123\",\"timestamp\":1}",
	 "field 'cp_id' is too long"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"C#1\",\"timestamp\":1}", "not a valid CP id"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":[\"C\"],\"timestamp\":1}", "field 'cp_id' must be a string"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"C\",\"timestamp\":1,\"origin\":\"web\"}", "field 'origin' must be"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"C\",\"timestamp\":1,\"origin\":7}", "field 'origin' must be a string"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"C\",\"timestamp\":1,\"request_id\":\"a#b\"}", "field 'request_id' is not"},
	{RQ, "{\"user_id\":\"1\",\"cp_id\":\"C\",\"timestamp\":1,\"request_id\":\"\"}", "field 'request_id' is not"},
	{RQ, "{\"type\":\"DRIVER_QUIT\"}", "missing field 'user_id'"},
	/* request_id on driver_notifications: same rules as on REQUEST_CHARGE */
	{DN, "{\"type\":\"AUTH_OK\",\"cp_id\":\"C\",\"user_id\":\"u\",\"target_driver\":\"u\",\"request_id\":\"a#b\"}",
	 "field 'request_id' is not"},
	{DN, "{\"type\":\"TICKET\",\"cp_id\":\"C\",\"user_id\":\"u\",\"target_driver\":\"u\",\"request_id\":\"\","
	     "\"kwh\":1,\"importe\":1,\"price\":1,\"started_at\":1,\"ended_at\":2}",
	 "field 'request_id' is not"},
	{DN, "{\"type\":\"AUTH_DENIED\",\"cp_id\":\"C\",\"user_id\":\"u\",\"target_driver\":\"u\",\"request_id\":7,"
	     "\"reason\":\"r\"}",
	 "field 'request_id' must be a string"},
	{DN, "{\"type\":\"SESSION_CANCELLED\",\"cp_id\":\"C\",\"user_id\":\"u\",\"target_driver\":\"u\",\"request_id\":"
	     "\"12345678901234567890123456789012345678901234567890123456789012345\",\"reason\":\"r\"}",
	 "field 'request_id' is too long"},

	{RQ, "{\"type\":\"DRIVER_QUIT\",\"user_id\":true}", "field 'user_id' must be a string"},
	/* telemetry */
	{TL, "{\"type\":\"CONSUMO\",\"user_id\":\"u1\",\"session_id\":\"s1\",\"seq\":1,\"kwh\":1,\"importe\":1,\"kw\":1}",
	 "missing field 'cp_id'"},
	{TL, "{\"type\":\"CONSUMO\",\"cp_id\":\"C1\",\"session_id\":\"s1\",\"seq\":1,\"kwh\":1,\"importe\":1,\"kw\":1}",
	 "missing field 'user_id'"},
	{TL, "{\"type\":\"CONSUMO\",\"cp_id\":\"C1\",\"user_id\":\"u1\",\"seq\":1,\"kwh\":1,\"importe\":1,\"kw\":1}",
	 "field 'seq' without 'session_id'"},
	{TL, "{" TEL_HEAD ",\"seq\":0,\"kwh\":1,\"importe\":1,\"kw\":1}", "field 'seq' must be an integer >= 1"},
	{TL, "{" TEL_HEAD ",\"seq\":-3,\"kwh\":1,\"importe\":1,\"kw\":1}", "field 'seq' must be an integer >= 1"},
	{TL, "{" TEL_HEAD ",\"seq\":1.5,\"kwh\":1,\"importe\":1,\"kw\":1}", "field 'seq' must be an integer >= 1"},
	{TL, "{" TEL_HEAD ",\"seq\":\"1\",\"kwh\":1,\"importe\":1,\"kw\":1}", "field 'seq' must be an integer >= 1"},
	{TL, "{" TEL_HEAD ",\"seq\":99999999999999999999,\"kwh\":1,\"importe\":1,\"kw\":1}", "not valid JSON"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"importe\":1,\"kw\":1}", "missing field 'kwh'"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"kwh\":1,\"kw\":1}", "missing field 'importe'"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"kwh\":1,\"importe\":1}", "missing field 'kw'"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"kwh\":\"1\",\"importe\":1,\"kw\":1}", "field 'kwh' must be a number"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"kwh\":-0.5,\"importe\":1,\"kw\":1}", "field 'kwh' out of range"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"kwh\":100000.5,\"importe\":1,\"kw\":1}", "field 'kwh' out of range"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"kwh\":1,\"importe\":1e8,\"kw\":1}", "field 'importe' out of range"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"kwh\":1,\"importe\":1,\"kw\":1001}", "field 'kw' out of range"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"kwh\":1,\"importe\":1,\"kw\":1e999}", "not valid JSON"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"kwh\":1,\"importe\":1,\"kw\":NaN}", "not valid JSON"},
	{TL, "{" TEL_HEAD ",\"seq\":1,\"kwh\":1,\"importe\":1,\"kw\":1,\"timestamp\":\"x\"}",
	 "field 'timestamp' must be a number"},
	{TL, "{\"type\":\"SUPPLY_END\",\"cp_id\":\"C1\",\"user_id\":\"u1\",\"session_id\":\"s1\",\"seq\":2,\"kwh\":1}",
	 "missing field 'importe'"},
	{TL, "{\"type\":\"AVERIADO\",\"cp_id\":\"C1\",\"user_id\":\"u1\",\"session_id\":\"s1\",\"seq\":2,\"importe\":1}",
	 "missing field 'kwh'"},
	{TL, "{\"type\":\"CONEXION_PERDIDA\",\"cp_id\":\"C1\",\"user_id\":\"u1\",\"session_id\":\"s1\",\"seq\":2,"
	     "\"kwh\":1,\"importe\":1}",
	 "missing field 'component'"},
	{TL, "{\"type\":\"CONEXION_PERDIDA\",\"cp_id\":\"C1\",\"user_id\":\"u1\",\"session_id\":\"s1\",\"seq\":2,"
	     "\"kwh\":1,\"importe\":1,\"component\":\"MONITOR AND MORE\"}",
	 "field 'component' is too long"},
	{TL, "{\"type\":\"CONEXION_PERDIDA\",\"cp_id\":\"C1\",\"user_id\":\"u1\",\"session_id\":\"s1\",\"seq\":2,"
	     "\"kwh\":1,\"importe\":1,\"component\":\"MON 1\"}",
	 "field 'component' must be a word"},
	{TL, "{\"type\":\"SESSION_STARTED\",\"cp_id\":\"C1\",\"user_id\":\"u1\",\"session_id\":\"s 1\",\"seq\":1}",
	 "field 'session_id' is not a valid id"},
	/* notifications */
	{DN, "{\"type\":\"AUTH_OK\",\"user_id\":\"u1\",\"target_driver\":\"u1\"}", "missing field 'cp_id'"},
	{DN, "{\"type\":\"AUTH_OK\",\"cp_id\":\"C1\",\"user_id\":\"u1\"}", "missing field 'target_driver'"},
	{DN, "{\"type\":\"AUTH_OK\",\"cp_id\":\"C1\",\"user_id\":\"u1\",\"target_driver\":\"u2\"}",
	 "field 'target_driver' must equal user_id"},
	{DN, "{\"type\":\"AUTH_OK\"," NOT_HEAD ",\"message\":5}", "field 'message' must be a string"},
	{DN, "{\"type\":\"AUTH_OK\"," NOT_HEAD ",\"message\":\"a\\u001b[2Jb\"}", "field 'message' contains a control"},
	{DN, "{\"type\":\"AUTH_OK\"," NOT_HEAD ",\"session_id\":7}", "field 'session_id' must be a string"},
	{DN, "{\"type\":\"AUTH_DENIED\"," NOT_HEAD "}", "missing field 'reason'"},
	{DN, "{\"type\":\"AUTH_DENIED\"," NOT_HEAD ",\"reason\":\"line\\nbreak\"}", "field 'reason' contains a control"},
	{DN, "{\"type\":\"SESSION_CANCELLED\"," NOT_HEAD "}", "missing field 'reason'"},
	{DN, "{\"type\":\"CONSUMO_UPDATE\"," NOT_HEAD ",\"kwh\":1,\"importe\":1}", "missing field 'kw'"},
	{DN, "{\"type\":\"TICKET\"," NOT_HEAD ",\"kwh\":1,\"importe\":1,\"started_at\":1,\"ended_at\":2}",
	 "missing field 'price'"},
	{DN, "{\"type\":\"TICKET\"," NOT_HEAD ",\"kwh\":1,\"importe\":1,\"price\":101,\"started_at\":1,\"ended_at\":2}",
	 "field 'price' out of range"},
	{DN, "{\"type\":\"TICKET\"," NOT_HEAD ",\"kwh\":1,\"importe\":1,\"price\":1,\"ended_at\":2}",
	 "missing field 'started_at'"},
	{DN, "{\"type\":\"TICKET\"," NOT_HEAD ",\"kwh\":1,\"importe\":1,\"price\":1,\"started_at\":1}",
	 "missing field 'ended_at'"},
	{DN, "{\"type\":\"SUPPLY_ERROR\"," NOT_HEAD ",\"reason\":\"x\",\"importe_partial\":1}",
	 "missing field 'kwh_partial'"},
	{DN, "{\"type\":\"SUPPLY_ERROR\"," NOT_HEAD ",\"reason\":\"x\",\"kwh_partial\":1}",
	 "missing field 'importe_partial'"},
	{DN, "{\"type\":\"SUPPLY_ERROR\"," NOT_HEAD ",\"kwh_partial\":1,\"importe_partial\":1}", "missing field 'reason'"},
	/* network_status */
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"cps\":[]}", "missing field 'timestamp'"},
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1}", "missing field 'cps'"},
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":{}}", "field 'cps' must be an array"},
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{" CP_OK "},7]}", "cps[1]: must be an object"},
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{\"status\":\"ACTIVADO\",\"location\":\"L\","
	     "\"price\":1}]}",
	 "cps[0]: missing field 'id'"},
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{" CP_OK "},{\"id\":\"C2\",\"status\":"
	     "\"ROTO\",\"location\":\"L\",\"price\":1}]}",
	 "cps[1]: field 'status' is not a CP state"},
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{\"id\":\"C2\",\"status\":"
	     "\"activado\",\"location\":\"L\",\"price\":1}]}",
	 "cps[0]: field 'status' is not a CP state"},
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{\"id\":\"C 2\",\"status\":\"ACTIVADO\","
	     "\"location\":\"L\",\"price\":1}]}",
	 "cps[0]: field 'id' is not a valid CP id"},
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{\"id\":\"C2\",\"status\":\"ACTIVADO\","
	     "\"price\":1}]}",
	 "cps[0]: missing field 'location'"},
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{\"id\":\"C2\",\"status\":\"ACTIVADO\","
	     "\"location\":\"L\",\"price\":-1}]}",
	 "cps[0]: field 'price' out of range"},
	{NS, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{\"id\":\"C2\",\"status\":\"ACTIVADO\","
	     "\"location\":\"L\"}]}",
	 "cps[0]: missing field 'price'"},
};

static void test_rejections(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rejects) / sizeof(rejects[0]); i++) {
		struct msg m;
		char err[EVC_ERR_LEN] = "";
		const struct reject *r = &rejects[i];

		if (decode_str(r->topic, r->json, &m, err) != -1)
			fail_msg("accepted #%zu: %s", i, r->json);
		if (strstr(err, r->err) == NULL)
			fail_msg("#%zu %s: error '%s' lacks '%s'", i, r->json, err, r->err);
		assert_null(m.cps);
	}
}

static char *long_string(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Length limits: at the limit accepted, one over rejected, never truncated. */
static void test_string_limits(void **state)
{
	struct msg m;
	char err[EVC_ERR_LEN];
	char *text = long_string('x', MSG_TEXT_MAX + 1), *json, *loc;
	(void)state;

	json = malloc(2 * MSG_TEXT_MAX + 200);
	if (json == NULL) { /* a plain return, so gcc -O1 sees json is set below */
		free(text);
		fail_msg("out of memory");
		return;
	}
	sprintf(json, "{\"type\":\"AUTH_DENIED\",\"cp_id\":\"C\",\"user_id\":\"u\",\"target_driver\":\"u\",\"reason\":\"%s\"}",
		text);
	assert_int_equal(decode_str(MSG_T_DRIVER_NOTIFICATIONS, json, &m, err), -1);
	assert_non_null(strstr(err, "field 'reason' is too long"));
	text[MSG_TEXT_MAX] = '\0';
	sprintf(json, "{\"type\":\"AUTH_DENIED\",\"cp_id\":\"C\",\"user_id\":\"u\",\"target_driver\":\"u\",\"reason\":\"%s\"}",
		text);
	assert_int_equal(decode_str(MSG_T_DRIVER_NOTIFICATIONS, json, &m, err), 0);
	assert_int_equal(strlen(m.reason), MSG_TEXT_MAX);

	/* location: 64 characters even when multi-byte, 65 rejected */
	loc = malloc(65 * 3 + 1);
	assert_non_null(loc);
	loc[0] = '\0';
	for (int i = 0; i < 64; i++)
		strcat(loc, "€");
	sprintf(json, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{\"id\":\"C\",\"status\":\"AVERIADO\","
		      "\"location\":\"%s\",\"price\":1}]}",
		loc);
	assert_int_equal(decode_str(MSG_T_NETWORK_STATUS, json, &m, err), 0);
	assert_string_equal(m.cps[0].location, loc);
	msg_free(&m);
	strcat(loc, "a");
	sprintf(json, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{\"id\":\"C\",\"status\":\"AVERIADO\","
		      "\"location\":\"%s\",\"price\":1}]}",
		loc);
	assert_int_equal(decode_str(MSG_T_NETWORK_STATUS, json, &m, err), -1);
	assert_non_null(strstr(err, "cps[0]: field 'location' is too long"));
	assert_null(m.cps);
	free(loc);
	free(text);
	free(json);

	/* cps count bound */
	size_t cap = (MSG_STATUS_MAX + 1) * 64 + 100, off;
	json = malloc(cap);
	assert_non_null(json);
	off = (size_t)sprintf(json, "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[");
	for (int i = 0; i <= MSG_STATUS_MAX; i++)
		off += (size_t)sprintf(json + off, "%s{\"id\":\"C%d\",\"status\":\"ACTIVADO\",\"location\":\"L\",\"price\":1}",
				       i ? "," : "", i);
	strcpy(json + off, "]}");
	assert_int_equal(decode_str(MSG_T_NETWORK_STATUS, json, &m, err), -1);
	assert_non_null(strstr(err, "too many entries"));
	/* drop the last entry: exactly MSG_STATUS_MAX is fine */
	char *last = strrchr(json, '{');
	strcpy(last - 1, "]}");
	assert_int_equal(decode_str(MSG_T_NETWORK_STATUS, json, &m, err), 0);
	assert_int_equal(m.ncps, MSG_STATUS_MAX);
	assert_string_equal(m.cps[MSG_STATUS_MAX - 1].id, "C9999");
	msg_free(&m);
	free(json);
}

static void assert_encode_fails(const struct msg *m, const char *want)
{
	char err[EVC_ERR_LEN] = "";
	size_t len = 12345;
	char *s = msg_encode(m, &len, err);

	if (s != NULL)
		fail_msg("encoded invalid message: %s", s);
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_encode_refuses(void **state)
{
	struct msg m;
	struct msg_cp_status cp = {"C1", "ACTIVADO", "L", 1};
	(void)state;

	build(&m, MSG_REQUEST_CHARGE);
	strcpy(m.cp_id, "MAD 01");
	assert_encode_fails(&m, "field 'cp_id' is not a valid CP id");
	build(&m, MSG_REQUEST_CHARGE);
	strcpy(m.origin, "web");
	assert_encode_fails(&m, "field 'origin'");
	build(&m, MSG_REQUEST_CHARGE);
	m.timestamp = -5;
	assert_encode_fails(&m, "field 'timestamp' out of range");
	build(&m, MSG_DRIVER_QUIT);
	m.user_id[0] = '\0';
	assert_encode_fails(&m, "field 'user_id' is not a valid user id");
	build(&m, MSG_DRIVER_QUIT);
	memset(m.user_id, 'a', sizeof(m.user_id)); /* no NUL inside the array */
	assert_encode_fails(&m, "field 'user_id' is not NUL-terminated");

	build(&m, MSG_CONSUMO);
	m.seq = 0;
	assert_encode_fails(&m, "field 'seq' must be an integer >= 1");
	build(&m, MSG_CONSUMO);
	m.seq = UINT64_MAX;
	assert_encode_fails(&m, "field 'seq'");
	build(&m, MSG_CONSUMO);
	m.kwh = NAN;
	assert_encode_fails(&m, "field 'kwh' must be a finite number");
	build(&m, MSG_CONSUMO);
	m.kw = INFINITY;
	assert_encode_fails(&m, "field 'kw' must be a finite number");
	build(&m, MSG_CONSUMO);
	m.importe = -0.01;
	assert_encode_fails(&m, "field 'importe' out of range");
	build(&m, MSG_SESSION_STARTED);
	strcpy(m.session_id, "a#b");
	assert_encode_fails(&m, "field 'session_id'");
	build(&m, MSG_CONEXION_PERDIDA);
	m.component[0] = '\0';
	assert_encode_fails(&m, "field 'component'");

	build(&m, MSG_AUTH_DENIED);
	strcpy(m.reason, "bad \xff utf8");
	assert_encode_fails(&m, "field 'reason' is not valid UTF-8");
	build(&m, MSG_AUTH_DENIED);
	strcpy(m.reason, "two\nlines");
	assert_encode_fails(&m, "field 'reason' contains a control character");
	build(&m, MSG_AUTH_DENIED);
	strcpy(m.reason, "tab\there");
	assert_encode_fails(&m, "field 'reason' contains a control character");
	build(&m, MSG_AUTH_OK);
	memset(m.message, 'a', sizeof(m.message));
	assert_encode_fails(&m, "field 'message'");
	build(&m, MSG_TICKET);
	m.price = 100.5;
	assert_encode_fails(&m, "field 'price' out of range");
	build(&m, MSG_SUPPLY_ERROR);
	m.importe_partial = 2e7;
	assert_encode_fails(&m, "field 'importe_partial' out of range");

	build(&m, MSG_NETWORK_STATUS_UPDATE);
	strcpy(m.cps[2].status, "ROTO");
	assert_encode_fails(&m, "cps[2]: field 'status' is not a CP state");
	strcpy(m.cps[2].status, "ACTIVADO");
	strcpy(m.cps[1].id, "");
	assert_encode_fails(&m, "cps[1]: field 'id'");
	msg_free(&m);
	msg_init(&m, MSG_NETWORK_STATUS_UPDATE);
	m.cps = &cp;
	m.ncps = MSG_STATUS_MAX + 1;
	assert_encode_fails(&m, "too many entries");
	m.cps = NULL;
	m.ncps = 1;
	assert_encode_fails(&m, "cps");

	msg_init(&m, MSG_TYPE_COUNT);
	assert_encode_fails(&m, "unknown message type");
	msg_init(&m, (enum msg_type)77);
	assert_encode_fails(&m, "unknown message type");
}

static void test_names_and_ids(void **state)
{
	(void)state;
	assert_string_equal(msg_type_name(MSG_REQUEST_CHARGE), "REQUEST_CHARGE");
	assert_string_equal(msg_type_name(MSG_CONEXION_PERDIDA), "CONEXION_PERDIDA");
	assert_string_equal(msg_type_name(MSG_NETWORK_STATUS_UPDATE), "NETWORK_STATUS_UPDATE");
	assert_null(msg_type_name(MSG_TYPE_COUNT));
	assert_null(msg_type_name((enum msg_type)-1));
	for (int t = 0; t < MSG_TYPE_COUNT; t++)
		assert_non_null(msg_type_name((enum msg_type)t));
	assert_int_equal(msg_type_topic(MSG_DRIVER_QUIT), MSG_T_DRIVER_REQUESTS);
	assert_int_equal(msg_type_topic(MSG_SESSION_STARTED), MSG_T_CP_TELEMETRY);
	assert_int_equal(msg_type_topic(MSG_SESSION_CANCELLED), MSG_T_DRIVER_NOTIFICATIONS);
	assert_int_equal(msg_type_topic(MSG_NETWORK_STATUS_UPDATE), MSG_T_NETWORK_STATUS);
	assert_string_equal(msg_topic_name(MSG_T_DRIVER_REQUESTS), "driver_requests");
	assert_string_equal(msg_topic_name(MSG_T_CP_TELEMETRY), "cp_telemetry");
	assert_string_equal(msg_topic_name(MSG_T_DRIVER_NOTIFICATIONS), "driver_notifications");
	assert_string_equal(msg_topic_name(MSG_T_NETWORK_STATUS), "network_status");
	assert_null(msg_topic_name((enum msg_topic)9));

	assert_true(msg_valid_cp_id("MAD-01"));
	assert_true(msg_valid_cp_id("a_B-9"));
	assert_true(msg_valid_cp_id("12345678901234567890123456789012"));
	assert_false(msg_valid_cp_id("123456789012345678901234567890123"));
	assert_false(msg_valid_cp_id(""));
	assert_false(msg_valid_cp_id(NULL));
	assert_false(msg_valid_cp_id("MAD.01"));
	assert_false(msg_valid_cp_id("MAD#01"));
	assert_false(msg_valid_cp_id("MADÑ"));
	assert_true(msg_valid_user_id("101"));
	assert_true(msg_valid_user_id("ana.lopez@uni-a_es"));
	assert_false(msg_valid_user_id(""));
	assert_false(msg_valid_user_id(NULL));
	assert_false(msg_valid_user_id("a b"));
	assert_false(msg_valid_user_id("a#b"));
	assert_false(msg_valid_user_id("a/b"));
	assert_true(msg_valid_user_id("1234567890123456789012345678901234567890123456789012345678901234"));
	assert_false(msg_valid_user_id("1234567890123456789012345678901234567890123456789012345678901234X"));
	assert_true(msg_valid_session_id("MAD-01:1700000000:1"));
	assert_true(msg_valid_session_id("550e8400-e29b-41d4-a716-446655440000"));
	assert_false(msg_valid_session_id("a b"));
	assert_false(msg_valid_session_id("a#b"));
	assert_false(msg_valid_session_id(""));
	assert_false(msg_valid_session_id("a\x7f"));

	assert_true(msg_valid_text(""));
	assert_true(msg_valid_text("Plaça € 𝄞 \x7f"));
	assert_false(msg_valid_text(NULL));
	assert_false(msg_valid_text("a\tb"));
	assert_false(msg_valid_text("\x1b[2J"));
	assert_false(msg_valid_text("\xc0\xaf"));         /* overlong '/' */
	assert_false(msg_valid_text("\xe0\x80\xaf"));     /* overlong */
	assert_false(msg_valid_text("\xed\xa0\x80"));     /* surrogate U+D800 */
	assert_false(msg_valid_text("\xf4\x90\x80\x80")); /* above U+10FFFF */
	assert_false(msg_valid_text("\xf5\x80\x80\x80"));
	assert_false(msg_valid_text("\xe2\x82"));         /* truncated */
	assert_false(msg_valid_text("\x80"));
	assert_true(msg_valid_text("\xf4\x8f\xbf\xbf"));  /* U+10FFFF */
	assert_true(msg_valid_text("\xef\xbf\xbf"));      /* U+FFFF */
	char big[MSG_TEXT_MAX + 2];
	memset(big, 'a', sizeof(big));
	big[MSG_TEXT_MAX + 1] = '\0';
	assert_false(msg_valid_text(big));
	big[MSG_TEXT_MAX] = '\0';
	assert_true(msg_valid_text(big));
	assert_false(msg_valid_location(big)); /* 256 characters > 64 */
	big[64] = '\0';
	assert_true(msg_valid_location(big));
	assert_true(msg_valid_location("C/ Serrano 10"));
	assert_true(msg_valid_location(""));
	assert_false(msg_valid_location("a\nb"));
	assert_false(msg_valid_location("\xff"));
	assert_false(msg_valid_location(NULL));
}

/* jansson caps nesting depth: a deeply nested unknown field is rejected, not
 * a stack overflow. */
static void test_deep_nesting(void **state)
{
	const size_t depth = 100000;
	const char *head = "{\"user_id\":\"1\",\"cp_id\":\"C\",\"timestamp\":1,\"x\":";
	size_t hl = strlen(head), len = hl + 2 * depth + 1;
	char *json = malloc(len);
	struct msg m;
	char err[EVC_ERR_LEN];
	(void)state;

	assert_non_null(json);
	memcpy(json, head, hl);
	memset(json + hl, '[', depth);
	memset(json + hl + depth, ']', depth);
	json[len - 1] = '}';
	assert_int_equal(msg_decode(MSG_T_DRIVER_REQUESTS, json, len, &m, err), -1);
	assert_non_null(strstr(err, "not valid JSON"));
	/* 100 levels of an ignored field are fine */
	memcpy(json + hl + 100, json + hl + depth, 100);
	json[hl + 200] = '}';
	assert_int_equal(msg_decode(MSG_T_DRIVER_REQUESTS, json, hl + 201, &m, err), 0);
	free(json);
}

/* A failed decode after a successful one leaves nothing behind, and a
 * decoded message can be reused after msg_free. */
static void test_reuse(void **state)
{
	struct msg m;
	char err[EVC_ERR_LEN];
	const char *two = "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{" CP_OK "},{" CP_OK "}]}";
	const char *bad = "{\"type\":\"NETWORK_STATUS_UPDATE\",\"timestamp\":1,\"cps\":[{" CP_OK "},{}]}";
	(void)state;

	assert_int_equal(decode_str(MSG_T_NETWORK_STATUS, two, &m, err), 0);
	assert_int_equal(m.ncps, 2);
	msg_free(&m);
	/* the failure happens after cps was allocated: nothing may leak */
	assert_int_equal(decode_str(MSG_T_NETWORK_STATUS, bad, &m, err), -1);
	assert_string_equal(err, "cps[1]: missing field 'id'");
	assert_null(m.cps);
	assert_int_equal(m.ncps, 0);
	msg_free(&m); /* harmless after a rejection */
	assert_int_equal(decode_str(MSG_T_NETWORK_STATUS, two, &m, err), 0);
	msg_free(&m);
	msg_free(&m);
}

/* msg_encode (hand-rolled for CONSUMO_UPDATE and NETWORK_STATUS_UPDATE) and
 * msg_encode_ref (jansson) on m: both refuse with the same words, or both
 * give JSON that parses to equal values (and, as it happens, the same
 * bytes). */
static void assert_writers_agree(const struct msg *m)
{
	char e1[EVC_ERR_LEN] = "", e2[EVC_ERR_LEN] = "";
	size_t n1 = 0, n2 = 0;
	char *a = msg_encode(m, &n1, e1);
	char *b = msg_encode_ref(m, &n2, e2);
	if (a == NULL || b == NULL) {
		if (a != NULL || b != NULL)
			fail_msg("one writer refused (%s%s), the other wrote %s", e1, e2, a ? a : b);
		assert_string_equal(e1, e2);
		return;
	}
	assert_int_equal(n1, strlen(a));
	json_error_t je;
	json_t *ja = json_loadb(a, n1, 0, &je), *jb = json_loadb(b, n2, 0, &je);
	if (ja == NULL || jb == NULL || !json_equal(ja, jb))
		fail_msg("writers differ:\n%s\n%s", a, b);
	assert_string_equal(a, b);
	json_decref(ja);
	json_decref(jb);
	free(a);
	free(b);
}

/* A reproducible sequence of doubles in [0, max), some of them awkward:
 * halves of the last decimal, tiny, just below the bound. */
static double some_number(unsigned *seed, double max)
{
	*seed = *seed * 1103515245u + 12345u;
	unsigned r = (*seed >> 8) & 0xffff;
	switch (r % 8) {
	case 0: return 0;
	case 1: return (double)(r % 1000) / 1000.0 + 0.0005; /* a half Wh */
	case 2: return 1e-300;
	case 3: return max - 1e-9;
	case 4: return max;
	default: return max * (double)r / 65536.0;
	}
}

static void test_hand_writer_agrees(void **state)
{
	(void)state;
	unsigned seed = 1;
	static const char *const sids[] = { "S-1", "a\"b\\c", "{}[]:,'`~!$%^&*()=+|<>?/", "x" };
	static const char *const places[] = { "C/ Serrano 10", "Gran V\xc3\xad" "a 1", "\"quoted\" \\ back",
					      "\xf0\x9d\x84\x9e clef, \xe2\x82\xac euro", "" };
	static const char *const states[] = { "ACTIVADO", "SUMINISTRANDO", "AVERIADO", "PARADO", "DESCONECTADO" };
	for (int i = 0; i < 2000; i++) {
		struct msg m;
		msg_init(&m, MSG_CONSUMO_UPDATE);
		snprintf(m.cp_id, sizeof m.cp_id, "CP-%d", i);
		snprintf(m.user_id, sizeof m.user_id, "d.%d@x", i);
		snprintf(m.session_id, sizeof m.session_id, "%s", sids[i % 4]);
		m.has_session_id = i % 5 != 0;
		snprintf(m.request_id, sizeof m.request_id, "r%d", i);
		m.has_request_id = i % 3 == 0;
		m.kwh = some_number(&seed, 100000);
		m.importe = some_number(&seed, 1e7);
		m.kw = some_number(&seed, 1000);
		m.timestamp = 1.7e9 + some_number(&seed, 1e8);
		m.has_timestamp = i % 7 != 0;
		assert_writers_agree(&m);
	}
	struct msg_cp_status cps[40];
	for (int i = 0; i < 200; i++) {
		struct msg m;
		msg_init(&m, MSG_NETWORK_STATUS_UPDATE);
		m.timestamp = some_number(&seed, 1e10);
		m.ncps = (size_t)(i % 41);
		m.cps = cps;
		for (size_t j = 0; j < m.ncps; j++) {
			memset(&cps[j], 0, sizeof cps[j]);
			snprintf(cps[j].id, sizeof cps[j].id, "MAD-%02zu", j);
			snprintf(cps[j].status, sizeof cps[j].status, "%s", states[(i + (int)j) % 5]);
			snprintf(cps[j].location, sizeof cps[j].location, "%s", places[(i + (int)j) % 5]);
			cps[j].price = some_number(&seed, 100);
		}
		assert_writers_agree(&m);
	}
	/* Refusals, in the same words. */
	struct msg m;
	msg_init(&m, MSG_CONSUMO_UPDATE);
	strcpy(m.cp_id, "MAD-01");
	strcpy(m.user_id, "101");
	m.kwh = NAN;
	assert_writers_agree(&m);
	m.kwh = 100000.5;
	assert_writers_agree(&m);
	m.kwh = 1;
	m.importe = -1;
	assert_writers_agree(&m);
	m.importe = 0;
	strcpy(m.session_id, "has space");
	m.has_session_id = 1;
	assert_writers_agree(&m);
	strcpy(m.session_id, "ok");
	memset(m.user_id, 'a', sizeof m.user_id); /* no NUL inside */
	assert_writers_agree(&m);
	msg_init(&m, MSG_NETWORK_STATUS_UPDATE);
	m.timestamp = 1;
	m.cps = cps;
	m.ncps = 3;
	strcpy(cps[1].status, "ROTO");
	assert_writers_agree(&m);
	strcpy(cps[1].status, "PARADO");
	strcpy(cps[2].location, "tab\there");
	assert_writers_agree(&m);
	strcpy(cps[2].location, "bad \xff utf-8");
	assert_writers_agree(&m);
	strcpy(cps[2].location, "fine");
	cps[0].price = 100.01;
	assert_writers_agree(&m);
	cps[0].price = 1;
	m.ncps = MSG_STATUS_MAX + 1;
	assert_writers_agree(&m);
}

/* Every byte below 0x20 escaped (the short forms where JSON has them), '"'
 * and '\\' escaped, the rest (UTF-8 included) as is: what jansson reads
 * back is the input, byte for byte. */
static void test_json_string(void **state)
{
	(void)state;
	char in[300], out[6 * 300 + 2];
	size_t n = 0;
	for (int c = 0; c < 0x80; c++)
		in[n++] = (char)c;
	const char *utf8 = "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\xef\xbf\xbf";
	memcpy(in + n, utf8, strlen(utf8));
	n += strlen(utf8);
	size_t k = msg_json_string(out, in, n);
	assert_true(k <= 6 * n + 2);
	json_error_t je;
	json_t *j = json_loadb(out, k, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (j == NULL)
		fail_msg("not JSON: %s: %.*s", je.text, (int)k, out);
	assert_true(json_is_string(j));
	assert_int_equal(json_string_length(j), n);
	assert_memory_equal(json_string_value(j), in, n);
	json_decref(j);
	/* The escapes themselves, for a reader that is not jansson. */
	k = msg_json_string(out, "\x01\b\f\n\r\t\x1f\"\\/\x7f", 11);
	out[k] = '\0';
	assert_string_equal(out, "\"\\u0001\\b\\f\\n\\r\\t\\u001f\\\"\\\\/\x7f\"");
	assert_int_equal(msg_json_string(out, "", 0), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_type),
		cmocka_unit_test(test_round_trip_minimal),
		cmocka_unit_test(test_protocol_examples),
		cmocka_unit_test(test_exact_bytes),
		cmocka_unit_test(test_hand_writer_agrees),
		cmocka_unit_test(test_json_string),
		cmocka_unit_test(test_notification_request_id),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_rejections),
		cmocka_unit_test(test_string_limits),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_names_and_ids),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_deep_nesting),
	};

	return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
