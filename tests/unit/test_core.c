/* Central's control core, event by event: every rule of evcharging(7)
 * RULES and the races other implementations get wrong. Each test feeds
 * events and asserts on the effects produced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "evc/crypto.h"
#include "evc/hmap.h"
#include "src/central/core.h"
#include "src/central/view.h"
#include "evc/link.h"
#include "evc/msg.h"
#include "evc/xalloc.h"

#define T0 1700000000.0

static struct core *C;
static struct core_fxlist FX;
static double NOW;
/* A step of the wall clock: added to the time the core is told, not to
 * its monotonic clock (which follows NOW). */
static double WALL_STEP;

/* Before each event: the monotonic clock follows NOW; the wall clock is
 * NOW plus any step a test made. */
static double clk(void)
{
	core_set_mono(C, NOW - T0 + 1000.0);
	return NOW + WALL_STEP;
}

/* Deterministic keys for the tests: "KEY<n>" padded to a Fernet key's 44
 * characters (the core only stores and sends them). */
static int key_counter;
static int test_new_key(void *arg, char out[45])
{
	(void)arg;
	snprintf(out, 45, "K%03d%s", ++key_counter, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	out[44] = '\0';
	return 0;
}

static int setup(void **state)
{
	(void)state;
	struct core_config cfg;
	core_config_defaults(&cfg);
	cfg.new_key = test_new_key;
	C = core_new(&cfg);
	core_fxlist_init(&FX);
	NOW = T0;
	WALL_STEP = 0;
	core_add_driver(C, "101");
	core_add_driver(C, "102");
	key_counter = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	core_free(C);
	core_fxlist_free(&FX);
	C = NULL;
	return 0;
}

/* ---- helpers: feed one event, the effects of that event are in FX ---- */

/* The text an effect carries, whatever its kind ("" if none). */
static const char *fx_text(const struct core_fx *f)
{
	switch (f->kind) {
	case CORE_FX_SEND:
	case CORE_FX_CLOSE: return f->u.link.text;
	case CORE_FX_LOG: return f->u.log.text;
	case CORE_FX_REQUEST: return f->u.request.outcome;
	case CORE_FX_STORE_EVENT: return f->u.event.detail;
	default: return "";
	}
}

/* Whatever the core asks to send must be sendable: every frame valid DATA,
 * every Kafka message accepted by the encoder, every log line printable. */
static void check_fx(void)
{
	char err[EVC_ERR_LEN];
	for (size_t i = 0; i < FX.n; i++) {
		const struct core_fx *f = &FX.v[i];
		if (f->kind == CORE_FX_SEND && !f->u.link.raw && link_validate(fx_text(f), strlen(fx_text(f)), err) != 0)
			fail_msg("frame '%s' is not valid DATA: %s", fx_text(f), err);
		if (f->kind == CORE_FX_PRODUCE) {
			char *json = msg_encode(&f->u.produce, NULL, err);
			if (!json)
				fail_msg("%s does not encode: %s", msg_type_name(f->u.produce.type), err);
			free(json);
		}
		for (const char *p = fx_text(f); *p; p++)
			assert_true((unsigned char)*p >= 0x20);
	}
}

static void frame(uint64_t conn, const char *data)
{
	core_fxlist_clear(&FX);
	core_on_frame(C, conn, data, clk(), &FX);
	check_fx();
}

static void link_down(uint64_t conn)
{
	core_fxlist_clear(&FX);
	core_on_link_down(C, conn, "test", clk(), &FX);
	check_fx();
}

static void kafka(const struct msg *m)
{
	core_fxlist_clear(&FX);
	core_on_kafka(C, m, clk(), &FX);
	check_fx();
}

static void tick(void)
{
	core_fxlist_clear(&FX);
	core_on_tick(C, clk(), &FX);
	check_fx();
}

static int command(enum core_cmd cmd, const char *cp, char err[EVC_ERR_LEN])
{
	core_fxlist_clear(&FX);
	int r = core_command(C, cmd, cp, clk(), &FX, err);
	check_fx();
	return r;
}

static size_t count_kind(enum core_fx_kind k)
{
	size_t n = 0;
	for (size_t i = 0; i < FX.n; i++)
		n += FX.v[i].kind == k;
	return n;
}

/* Index of the CORE_FX_SEND with exactly this text on conn, or -1. */
static long send_index(uint64_t conn, const char *text)
{
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_SEND && FX.v[i].u.link.conn == conn && strcmp(fx_text(&FX.v[i]), text) == 0)
			return (long)i;
	return -1;
}

/* The first CORE_FX_SEND whose text starts with prefix. */
static const struct core_fx *send_prefix(const char *prefix)
{
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_SEND && strncmp(fx_text(&FX.v[i]), prefix, strlen(prefix)) == 0)
			return &FX.v[i];
	return NULL;
}

static size_t count_produce(enum msg_type t)
{
	size_t n = 0;
	for (size_t i = 0; i < FX.n; i++)
		n += FX.v[i].kind == CORE_FX_PRODUCE && FX.v[i].u.produce.type == t;
	return n;
}

/* The first message of type t produced; fails the test if there is none. */
static const struct msg *produced(enum msg_type t)
{
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_PRODUCE && FX.v[i].u.produce.type == t)
			return &FX.v[i].u.produce;
	fail_msg("no %s produced", msg_type_name(t));
	abort();
}

/* The last session row stored; fails the test if there is none. */
static const struct core_session *stored_session(void)
{
	const struct core_session *s = NULL;
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_STORE_SESSION)
			s = &FX.v[i].u.session;
	if (!s) {
		fail_msg("no session stored");
		abort();
	}
	return s;
}

/* The first frame sent that starts with prefix; fails the test if none. */
static const struct core_fx *sent(const char *prefix)
{
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_SEND && strncmp(fx_text(&FX.v[i]), prefix, strlen(prefix)) == 0)
			return &FX.v[i];
	fail_msg("no frame '%s...' sent", prefix);
	abort();
}

static const struct core_fx *find_log(enum log_level lvl, const char *needle)
{
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_LOG && FX.v[i].u.log.level == lvl && strstr(fx_text(&FX.v[i]), needle))
			return &FX.v[i];
	return NULL;
}

static enum cp_state state_of(const char *id)
{
	const struct core_cp *cp = core_cp_find(C, id);
	assert_non_null(cp);
	return cp->state;
}

static void reg(uint64_t conn, const char *id)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "REGISTER#%s#C/ Serrano 10#0.25", id);
	frame(conn, buf);
}

static struct msg request(const char *user, const char *cp, double ts)
{
	struct msg m;
	msg_init(&m, MSG_REQUEST_CHARGE);
	xstrlcpy(m.user_id, user, sizeof(m.user_id));
	xstrlcpy(m.cp_id, cp, sizeof(m.cp_id));
	m.timestamp = ts;
	m.has_timestamp = 1;
	return m;
}

static struct msg tele(enum msg_type t, const char *cp, const char *user, const char *sid, uint64_t seq, double kwh)
{
	struct msg m;
	msg_init(&m, t);
	xstrlcpy(m.cp_id, cp, sizeof(m.cp_id));
	xstrlcpy(m.user_id, user, sizeof(m.user_id));
	xstrlcpy(m.session_id, sid, sizeof(m.session_id));
	m.has_session_id = 1;
	m.seq = seq;
	m.has_seq = 1;
	m.kwh = kwh;
	m.importe = 999; /* the engine's figure is never used: Central's is */
	m.kw = 7.2;
	m.has_kw = 1;
	return m;
}

/* Register cp on conn, authorise driver on it and ACK: returns the session id. */
static void authorise(uint64_t conn, const char *cp, const char *driver, char sid[MSG_ID_MAX + 1])
{
	struct msg m = request(driver, cp, NOW);
	kafka(&m);
	const struct core_fx *f = send_prefix("AUTORIZAR_SUMINISTRO#");
	assert_non_null(f);
	assert_int_equal(f->u.link.conn, conn);
	const struct core_session *s = stored_session();
	assert_non_null(s);
	xstrlcpy(sid, s->id, MSG_ID_MAX + 1);
	frame(conn, "ACK#AUTORIZAR_SUMINISTRO");
	assert_int_equal(count_produce(MSG_AUTH_OK), 1);
}

/* Register, authorise, plug in: a CP SUMINISTRANDO with seq 1 used. */
static void charging(uint64_t conn, const char *cp, const char *driver, char sid[MSG_ID_MAX + 1])
{
	reg(conn, cp);
	authorise(conn, cp, driver, sid);
	struct msg t = tele(MSG_SESSION_STARTED, cp, driver, sid, 1, 0);
	kafka(&t);
	assert_int_equal(state_of(cp), CP_SUMINISTRANDO);
}

/* ---- Release 2 trust helpers ---- */

#define SECRET_A "Abcdefghijklmnopqrstuvwxyz0123456789_-ABCDE" /* 43 chars */
#define SECRET_B "Zbcdefghijklmnopqrstuvwxyz0123456789_-ABCDE"

/* A CP registered at the registry with SECRET_A. */
static void registry_cp(const char *id)
{
	struct core_reg r;
	memset(&r, 0, sizeof(r));
	xstrlcpy(r.id, id, sizeof(r.id));
	xstrlcpy(r.location, "Gran Via 1, Madrid", sizeof(r.location));
	r.price = 0.40;
	crypto_secret_hash(SECRET_A, r.secret_hash);
	core_load_reg(C, &r);
}

static void tls_up(uint64_t conn, const char *peer)
{
	core_fxlist_clear(&FX);
	core_on_link_up(C, conn, peer, 1, clk(), &FX);
	check_fx();
}

static void tls_reg(uint64_t conn, const char *id, const char *secret)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "REGISTER#%s#somewhere#0.99#%s", id, secret);
	frame(conn, buf);
}

static const struct core_fx *audit_row(const char *action)
{
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_AUDIT && strcmp(FX.v[i].u.audit.action, action) == 0)
			return &FX.v[i];
	return NULL;
}

/* ---- names ---- */

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(cp_state_name(CP_DESCONECTADO), "DESCONECTADO");
	assert_string_equal(cp_state_name(CP_FUERA_DE_SERVICIO), "FUERA_DE_SERVICIO");
	for (int i = 0; i < CP_STATE_COUNT; i++)
		assert_int_equal(cp_state_parse(cp_state_name((enum cp_state)i)), i);
	assert_int_equal(cp_state_parse("activado"), -1);
	assert_null(core_outcome_name(CORE_OUT_OPEN));
	assert_string_equal(core_outcome_name(CORE_OUT_TICKET), "TICKET");
	assert_string_equal(core_outcome_name(CORE_OUT_SESSION_CANCELLED), "SESSION_CANCELLED");
}

/* ---- REGISTER ---- */

static void test_register_first_and_reconnect(void **state)
{
	(void)state;
	reg(1, "MAD-01");
	assert_true(send_index(1, "REGISTER_RESULT#FIRST") >= 0);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 1);
	assert_int_equal(count_kind(CORE_FX_STORE_EVENT) >= 2, 1); /* REGISTER + STATE */
	assert_int_equal(count_kind(CORE_FX_SCREEN), 1);
	assert_int_equal(count_kind(CORE_FX_STATUS), 1);
	assert_non_null(find_log(LOG_INFO, "DESCONECTADO -> ACTIVADO"));
	const struct core_cp *cp = core_cp_find(C, "MAD-01");
	assert_string_equal(cp->location, "C/ Serrano 10");
	assert_true(cp->price == 0.25);
	assert_true(cp->link_up);

	link_down(1);
	assert_int_equal(state_of("MAD-01"), CP_DESCONECTADO);
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 1);
	assert_int_equal(count_kind(CORE_FX_STATUS), 1);

	/* a known CP keeps its place and price: the monitor's other values
	 * are logged once, never taken (evcharging(7) RULES) */
	frame(2, "REGISTER#MAD-01#Gran Via 1#0.40");
	assert_true(send_index(2, "REGISTER_RESULT#RECONNECT") >= 0);
	assert_string_equal(core_cp_find(C, "MAD-01")->location, "C/ Serrano 10");
	assert_true(core_cp_find(C, "MAD-01")->price == 0.25);
	assert_non_null(find_log(LOG_INFO, "keeping the operator's C/ Serrano 10, 0.25 EUR/kWh"));
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	/* the old conn no longer maps to it */
	frame(1, "HEARTBEAT#MAD-01");
	assert_true(send_index(1, "ERROR#not registered: send REGISTER first") >= 0);
}

static void expect_denied(const char *data, const char *reason_part)
{
	frame(9, data);
	const struct core_fx *f = send_prefix("REGISTER_RESULT#DENIED#");
	assert_non_null(f);
	if (!strstr(fx_text(f), reason_part))
		fail_msg("'%s' -> '%s', wanted '%s'", data, fx_text(f), reason_part);
	assert_int_equal(count_kind(CORE_FX_CLOSE), 1);
	/* the close comes after the answer */
	size_t si = 0, ci = 0;
	for (size_t i = 0; i < FX.n; i++) {
		if (FX.v[i].kind == CORE_FX_SEND)
			si = i;
		if (FX.v[i].kind == CORE_FX_CLOSE)
			ci = i;
	}
	assert_true(si < ci);
	assert_int_equal(core_cp_count(C), 0);
}

static void test_register_validation(void **state)
{
	(void)state;
	expect_denied("REGISTER", "needs cp_id");
	expect_denied("REGISTER#MAD-01", "needs cp_id");
	expect_denied("REGISTER#MAD 01#x#0.25", "invalid cp_id");
	expect_denied("REGISTER##x#0.25", "invalid cp_id");
	expect_denied("REGISTER#ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456#x#0.25", "invalid cp_id"); /* 33 */
	expect_denied("REGISTER#MAD-01##0.25", "location is empty");
	char loc[200], buf[300];
	memset(loc, 'a', 65);
	loc[65] = '\0';
	snprintf(buf, sizeof(buf), "REGISTER#MAD-01#%s#0.25", loc);
	expect_denied(buf, "longer than 64");
	expect_denied("REGISTER#MAD-01#\xff\xfe#0.25", "not valid UTF-8");
	expect_denied("REGISTER#MAD-01#\xc0\xaf#0.25", "not valid UTF-8"); /* overlong */
	expect_denied("REGISTER#MAD-01#x#0,25", "invalid price");
	expect_denied("REGISTER#MAD-01#x#-1", "invalid price");
	expect_denied("REGISTER#MAD-01#x#1e2", "invalid price");
	expect_denied("REGISTER#MAD-01#x#abc", "invalid price");
	expect_denied("REGISTER#MAD-01#x#.", "invalid price");
	expect_denied("REGISTER#MAD-01#x#0", "at least 0.0001");
	expect_denied("REGISTER#MAD-01#x#0.00004", "at least 0.0001");
	expect_denied("REGISTER#MAD-01#x#100.01", "at most 100");

	/* 64 characters of 2-byte UTF-8 are fine; the limits themselves too */
	char u[200] = "REGISTER#A_b-9#";
	for (int i = 0; i < 64; i++)
		strcat(u, "\xc3\xb1"); /* ñ */
	strcat(u, "#100");
	frame(9, u);
	assert_true(send_index(9, "REGISTER_RESULT#FIRST") >= 0);
	assert_true(core_cp_find(C, "A_b-9")->price == 100.0);
	frame(10, "REGISTER#ABCDEFGHIJKLMNOPQRSTUVWXYZ012345#x#.5#extra#fields");
	assert_true(send_index(10, "REGISTER_RESULT#FIRST") >= 0);
	assert_true(core_cp_find(C, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345")->price == 0.5);
}

static void test_register_without_price(void **state)
{
	(void)state;
	frame(1, "REGISTER#MAD-01#Somewhere");
	assert_true(send_index(1, "REGISTER_RESULT#FIRST") >= 0);
	assert_true(core_cp_find(C, "MAD-01")->price == 0.30);
	assert_non_null(find_log(LOG_WARN, "default 0.30"));
	link_down(1);
	frame(2, "REGISTER#MAD-01#x#1.5");
	link_down(2);
	frame(3, "REGISTER#MAD-01#x#");
	assert_true(send_index(3, "REGISTER_RESULT#RECONNECT") >= 0);
	assert_true(core_cp_find(C, "MAD-01")->price == 0.30); /* the first price stays */
	assert_non_null(find_log(LOG_INFO, "keeping 0.30"));
}

/* PARAR or REANUDAR whose ACK was lost with the link: the operator meant
 * it, so it goes again when the CP registers, and applies on its ACK. */
static void test_command_unacked_when_link_lost(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	reg(1, "MAD-01");
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	assert_non_null(sent("PARAR#CENTRAL"));
	link_down(1);
	assert_int_equal(state_of("MAD-01"), CP_DESCONECTADO);
	frame(2, "REGISTER#MAD-01#x#0.25");
	assert_non_null(sent("PARAR#CENTRAL"));
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO); /* applied on ACK only */
	frame(2, "ACK#PARAR");
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);

	assert_int_equal(command(CORE_CMD_RESUME, "MAD-01", err), 0);
	assert_non_null(sent("REANUDAR#CENTRAL"));
	link_down(2);
	frame(3, "REGISTER#MAD-01#x#0.25");
	assert_non_null(sent("REANUDAR#CENTRAL"));
	assert_null(send_prefix("PARAR#"));
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	frame(3, "ACK#REANUDAR");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);

	/* nothing pending: a later reconnect sends no command */
	link_down(3);
	frame(4, "REGISTER#MAD-01#x#0.25");
	assert_null(send_prefix("PARAR#"));
	assert_null(send_prefix("REANUDAR#"));
}

static void test_register_stored_cp_is_reconnect(void **state)
{
	(void)state;
	core_load_cp(C, "MAD-02", "Atocha", 0.35, 0);
	assert_int_equal(state_of("MAD-02"), CP_DESCONECTADO);
	frame(4, "REGISTER#MAD-02#Atocha");
	assert_true(send_index(4, "REGISTER_RESULT#RECONNECT") >= 0);
	assert_true(core_cp_find(C, "MAD-02")->price == 0.35);
	assert_int_equal(state_of("MAD-02"), CP_ACTIVADO);
}

static void test_already_connected(void **state)
{
	(void)state;
	reg(1, "MAD-01");
	reg(2, "MAD-01");
	assert_true(send_index(2, "REGISTER_RESULT#DENIED#ALREADY_CONNECTED") >= 0);
	assert_int_equal(count_kind(CORE_FX_CLOSE), 1);
	/* the live link is untouched, and the refused one going down is harmless */
	link_down(2);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	assert_int_equal(core_cp_find(C, "MAD-01")->conn, 1);
	/* the same link registering again is a harmless reconnect */
	reg(1, "MAD-01");
	assert_true(send_index(1, "REGISTER_RESULT#RECONNECT") >= 0);
	/* but not as another CP */
	reg(1, "MAD-02");
	assert_true(send_index(1, "ERROR#this link is already registered as CP MAD-01") >= 0);
	assert_null(core_cp_find(C, "MAD-02"));
	assert_int_equal(count_kind(CORE_FX_CLOSE), 0);
}

/* ---- frames ---- */

static void test_frames_before_register(void **state)
{
	(void)state;
	const char *frames[] = { "HEARTBEAT#MAD-01", "FAULT#MAD-01", "ACK#PARAR", "CHECK_SESSION", "FOO" };
	for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
		frame(5, frames[i]);
		assert_true(send_index(5, "ERROR#not registered: send REGISTER first") >= 0);
		assert_int_equal(count_kind(CORE_FX_CLOSE), 0);
		/* refused without a log line each: a stranger cannot fill the log */
		assert_int_equal(count_kind(CORE_FX_LOG), 0);
	}
	/* an ERROR, even a long one, is neither answered nor logged */
	char big[1100] = "ERROR#";
	memset(big + 6, 'x', 1000);
	big[1006] = '\0';
	frame(5, big);
	assert_int_equal(FX.n, 0);
	assert_int_equal(core_cp_count(C), 0);
	/* one line a while says how many */
	tick();
	assert_non_null(find_log(LOG_WARN, "6 frame(s) before REGISTER refused"));
	frame(5, "FOO");
	tick();
	assert_null(find_log(LOG_WARN, "before REGISTER refused")); /* not again within 10 s */
	NOW += 11;
	tick();
	assert_non_null(find_log(LOG_WARN, "1 frame(s) before REGISTER refused"));
}

static void test_bad_frames_keep_link(void **state)
{
	(void)state;
	reg(1, "MAD-01");
	frame(1, "HEARTBEAT#MAD-02");
	assert_true(send_index(1, "ERROR#cp_id 'MAD-02' does not match this link's CP MAD-01") >= 0);
	frame(1, "FAULT#MAD-02");
	assert_non_null(send_prefix("ERROR#cp_id 'MAD-02'"));
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO); /* the fault was not applied */
	frame(1, "HEARTBEAT");
	assert_true(send_index(1, "ERROR#HEARTBEAT needs a cp_id") >= 0);
	frame(1, "FROB#MAD-01");
	assert_true(send_index(1, "ERROR#unknown opcode 'FROB'") >= 0);
	frame(1, "ACK#FROB");
	assert_true(send_index(1, "ERROR#ACK of unknown command 'FROB'") >= 0);
	frame(1, "ACK");
	assert_non_null(send_prefix("ERROR#ACK of unknown command"));
	assert_int_equal(count_kind(CORE_FX_CLOSE), 0);
	/* the sixth warning in 10 s about this CP's frames is not logged */
	frame(1, "FROB2#MAD-01");
	assert_true(send_index(1, "ERROR#unknown opcode 'FROB2'") >= 0);
	assert_null(find_log(LOG_WARN, "FROB2"));
	/* an ERROR from the CP is logged (a new window: the dropped one is
	 * counted), never answered (no ping-pong) */
	NOW += 11;
	frame(1, "ERROR#whatever");
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_non_null(find_log(LOG_WARN, "whatever"));
	assert_non_null(find_log(LOG_WARN, "2 more warnings about its frames not logged"));
	/* a heartbeat produces nothing but refreshes liveness */
	NOW += 5;
	frame(1, "HEARTBEAT#MAD-01");
	assert_int_equal(FX.n, 0);
	assert_true(core_cp_find(C, "MAD-01")->last_seen == NOW);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
}

static void test_fault_recover(void **state)
{
	(void)state;
	reg(1, "MAD-01");
	frame(1, "FAULT#MAD-01#engine KO");
	assert_int_equal(state_of("MAD-01"), CP_AVERIADO);
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 1);
	assert_int_equal(count_kind(CORE_FX_SCREEN), 1);
	assert_int_equal(count_kind(CORE_FX_STATUS), 1);
	assert_non_null(find_log(LOG_INFO, "ACTIVADO -> AVERIADO"));
	frame(1, "FAULT#MAD-01");
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 0); /* repeated: no change */
	frame(1, "RECOVER#MAD-01");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 1);
	frame(1, "RECOVER#MAD-01");
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 0);
}

static void test_check_session(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1], want[256];
	reg(1, "MAD-01");
	frame(1, "CHECK_SESSION#MAD-01");
	assert_true(send_index(1, "NO_SESSION#MAD-01") >= 0);
	authorise(1, "MAD-01", "101", sid);
	frame(1, "CHECK_SESSION#MAD-01");
	snprintf(want, sizeof(want), "SESSION#MAD-01#101#%s", sid);
	assert_true(send_index(1, want) >= 0);
}

/* ---- operator stop and resume ---- */

static void test_stop_resume(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	reg(1, "MAD-01");
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	assert_true(send_index(1, "PARAR#CENTRAL") >= 0);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO); /* not until acknowledged */
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), -1); /* already pending */
	frame(1, "ACK#PARAR");
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 1);
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_STORE_CP) {
			assert_int_equal(FX.v[i].u.cp.stopped, 1);
			assert_int_equal(FX.v[i].u.cp.state, CP_FUERA_DE_SERVICIO);
			assert_string_equal(FX.v[i].u.cp.id, "MAD-01");
		}
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), -1);
	assert_non_null(strstr(err, "already stopped"));
	assert_int_equal(command(CORE_CMD_RESUME, "MAD-01", err), 0);
	assert_true(send_index(1, "REANUDAR#CENTRAL") >= 0);
	frame(1, "ACK#REANUDAR");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	assert_int_equal(core_cp_find(C, "MAD-01")->stopped, 0);
	assert_int_equal(command(CORE_CMD_RESUME, "MAD-01", err), -1);
	assert_non_null(strstr(err, "not stopped"));
	/* an unsolicited ACK changes nothing */
	frame(1, "ACK#PARAR");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
}

static void test_stop_nack(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	reg(1, "MAD-01");
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	frame(1, "NACK#PARAR#engine busy");
	assert_non_null(find_log(LOG_WARN, "refused PARAR: engine busy"));
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 0);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	assert_int_equal(core_cp_find(C, "MAD-01")->stop_pending, 0);
	/* the operator may try again */
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
}

static void test_command_to_disconnected_cp(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	core_load_cp(C, "MAD-09", "Sol", 0.25, 0);
	assert_int_equal(command(CORE_CMD_STOP, "MAD-09", err), -1);
	assert_non_null(strstr(err, "DESCONECTADO"));
	assert_non_null(strstr(err, "link is down"));
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_non_null(find_log(LOG_WARN, "MAD-09"));
	assert_int_equal(command(CORE_CMD_RESUME, "MAD-09", err), -1);
	assert_int_equal(command(CORE_CMD_STOP, "NOPE", err), -1);
	assert_non_null(strstr(err, "unknown CP"));
	assert_non_null(find_log(LOG_WARN, "unknown CP"));
	/* a stop pending when the link dies is said, and sent again on
	 * reconnect (test_command_unacked_when_link_lost) */
	reg(1, "MAD-01");
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	link_down(1);
	assert_non_null(find_log(LOG_WARN, "PARAR not acknowledged"));
	reg(2, "MAD-01");
	assert_true(send_index(2, "PARAR#CENTRAL") >= 0);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
}

static void test_stop_all_resume_all(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	reg(1, "A1");
	reg(2, "A2");
	core_load_cp(C, "A3", "down", 0.2, 0);
	assert_int_equal(command(CORE_CMD_STOP_ALL, NULL, err), 0);
	assert_true(send_index(1, "PARAR#CENTRAL") >= 0);
	assert_true(send_index(2, "PARAR#CENTRAL") >= 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 2);
	const struct core_fx *l = find_log(LOG_WARN, "sent to 2 CP(s)");
	assert_non_null(l);
	assert_non_null(strstr(l->u.log.text, "1 not reachable (link down): A3"));
	frame(1, "ACK#PARAR");
	frame(2, "ACK#PARAR");
	assert_int_equal(state_of("A1"), CP_FUERA_DE_SERVICIO);
	assert_int_equal(state_of("A2"), CP_FUERA_DE_SERVICIO);
	size_t counts[CP_STATE_COUNT];
	core_cp_state_counts(C, counts);
	assert_int_equal(counts[CP_FUERA_DE_SERVICIO], 2);
	assert_int_equal(counts[CP_DESCONECTADO], 1);
	assert_int_equal(command(CORE_CMD_STOP_ALL, NULL, err), -1); /* nothing left to stop */
	assert_non_null(strstr(err, "no CP"));
	assert_int_equal(command(CORE_CMD_RESUME_ALL, NULL, err), 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 2);
	frame(1, "ACK#REANUDAR");
	frame(2, "ACK#REANUDAR");
	assert_int_equal(state_of("A1"), CP_ACTIVADO);
	assert_int_equal(state_of("A2"), CP_ACTIVADO);
}

static void test_recover_after_stop_stays_out_of_service(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	reg(1, "MAD-01");
	frame(1, "FAULT#MAD-01");
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	frame(1, "ACK#PARAR");
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	frame(1, "RECOVER#MAD-01");
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	assert_int_equal(core_cp_find(C, "MAD-01")->fault, 0);
	assert_non_null(find_log(LOG_INFO, "stays FUERA_DE_SERVICIO"));
	assert_int_equal(command(CORE_CMD_RESUME, "MAD-01", err), 0);
	frame(1, "ACK#REANUDAR");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
}

static void test_reregister_while_faulty_or_stopped(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	/* a fault survives a reconnect: only RECOVER clears it */
	reg(1, "MAD-01");
	frame(1, "FAULT#MAD-01");
	link_down(1);
	assert_int_equal(state_of("MAD-01"), CP_DESCONECTADO);
	reg(2, "MAD-01");
	assert_true(send_index(2, "REGISTER_RESULT#RECONNECT") >= 0);
	assert_int_equal(state_of("MAD-01"), CP_AVERIADO);
	frame(2, "RECOVER#MAD-01");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);

	/* an operator stop survives a reconnect and is sent again */
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	frame(2, "ACK#PARAR");
	link_down(2);
	reg(3, "MAD-01");
	long r = send_index(3, "REGISTER_RESULT#RECONNECT"), p = send_index(3, "PARAR#CENTRAL");
	assert_true(r >= 0 && p > r);
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	frame(3, "ACK#PARAR");
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	assert_int_equal(core_cp_find(C, "MAD-01")->stop_pending, 0);

	/* the same for a stop loaded from the store at start */
	core_load_cp(C, "MAD-07", "Retiro", 0.3, 1);
	reg(4, "MAD-07");
	assert_true(send_index(4, "PARAR#CENTRAL") > send_index(4, "REGISTER_RESULT#RECONNECT"));
	assert_int_equal(state_of("MAD-07"), CP_FUERA_DE_SERVICIO);
}

/* ---- authorisation ---- */

static void test_full_supply_ticket(void **state)
{
	(void)state;
	char want[256];
	reg(1, "MAD-01");
	struct msg m = request("101", "MAD-01", NOW - 2);
	m.has_request_id = 1;
	snprintf(m.request_id, sizeof(m.request_id), "req-1");
	kafka(&m);
	const struct core_session *s = stored_session();
	assert_non_null(s);
	char sid[MSG_ID_MAX + 1];
	xstrlcpy(sid, s->id, sizeof(sid));
	assert_int_equal(strncmp(sid, "MAD-01-", 7), 0);
	assert_int_equal(s->outcome, CORE_OUT_OPEN);
	assert_string_equal(s->request_id, "req-1");
	snprintf(want, sizeof(want), "AUTORIZAR_SUMINISTRO#101#%s#0.25", sid);
	assert_true(send_index(1, want) >= 0);
	assert_int_equal(state_of("MAD-01"), CP_RESERVADO);
	assert_int_equal(count_produce(MSG_AUTH_OK), 0); /* only once the CP accepts */
	assert_int_equal(count_kind(CORE_FX_REQUEST), 1);

	frame(1, "ACK#AUTORIZAR_SUMINISTRO");
	const struct msg *ok = produced(MSG_AUTH_OK);
	assert_non_null(ok);
	assert_string_equal(ok->user_id, "101");
	assert_string_equal(ok->cp_id, "MAD-01");
	assert_string_equal(ok->session_id, sid);
	assert_int_equal(ok->has_session_id, 1);
	assert_true(strlen(ok->message) > 0);
	assert_int_equal(count_kind(CORE_FX_REQUEST), 1);

	NOW += 10;
	struct msg t = tele(MSG_SESSION_STARTED, "MAD-01", "101", sid, 1, 0);
	kafka(&t);
	assert_int_equal(state_of("MAD-01"), CP_SUMINISTRANDO);
	double started = NOW;

	NOW += 1;
	t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 2, 2.0);
	kafka(&t);
	const struct msg *u = produced(MSG_CONSUMO_UPDATE);
	assert_non_null(u);
	assert_true(u->kwh == 2.0);
	assert_true(u->importe == 2.0 * 0.25);
	assert_true(u->kw == 7.2);
	assert_string_equal(u->session_id, sid);
	assert_int_equal(count_kind(CORE_FX_SCREEN), 1);
	assert_true(core_cp_find(C, "MAD-01")->session->kwh == 2.0);

	NOW += 100;
	t = tele(MSG_SUPPLY_END, "MAD-01", "101", sid, 3, 10.0);
	kafka(&t);
	const struct msg *tk = produced(MSG_TICKET);
	assert_non_null(tk);
	assert_int_equal(count_produce(MSG_TICKET), 1);
	assert_true(tk->kwh == 10.0);
	assert_true(tk->importe == 10.0 * 0.25);
	assert_true(tk->price == 0.25);
	assert_true(tk->started_at == started);
	assert_true(tk->ended_at == NOW);
	assert_string_equal(tk->session_id, sid);
	assert_string_equal(tk->user_id, "101");
	s = stored_session();
	assert_int_equal(s->outcome, CORE_OUT_TICKET);
	assert_true(s->importe == 2.5);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	assert_null(core_cp_find(C, "MAD-01")->session);

	/* the driver is free again */
	m = request("101", "MAD-01", NOW);
	kafka(&m);
	assert_non_null(send_prefix("AUTORIZAR_SUMINISTRO#101#"));
}

static void test_ticket_amount_uses_price_sent(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	frame(1, "REGISTER#MAD-01#x#0.3");
	struct msg m = request("101", "MAD-01", NOW);
	kafka(&m);
	assert_non_null(send_prefix("AUTORIZAR_SUMINISTRO#101#"));
	assert_non_null(strstr(sent("AUTORIZAR")->u.link.text, "#0.30"));
	xstrlcpy(sid, stored_session()->id, sizeof(sid));
	frame(1, "ACK#AUTORIZAR_SUMINISTRO");
	/* a price change after authorisation does not touch this session */
	frame(1, "REGISTER#MAD-01#x#0.9");
	struct msg t = tele(MSG_SUPPLY_END, "MAD-01", "101", sid, 5, 7.5);
	kafka(&t);
	const struct msg *tk = produced(MSG_TICKET);
	assert_non_null(tk);
	assert_true(tk->price == 0.3);
	assert_true(tk->importe == 2.25);

	/* the stored row and the ticket agree to the cent: 12.5 kWh x 0.25 */
	frame(3, "REGISTER#MAD-03#x#0.25");
	m = request("101", "MAD-03", NOW);
	kafka(&m);
	xstrlcpy(sid, stored_session()->id, sizeof(sid));
	frame(3, "ACK#AUTORIZAR_SUMINISTRO");
	t = tele(MSG_SUPPLY_END, "MAD-03", "101", sid, 2, 12.5);
	kafka(&t);
	assert_true(produced(MSG_TICKET)->importe == 3.13);
	assert_true(stored_session()->importe == 3.13);

	/* odd prices go out with enough decimals and a '.' */
	frame(2, "REGISTER#MAD-02#x#0.123456");
	m = request("102", "MAD-02", NOW);
	kafka(&m);
	assert_non_null(strstr(sent("AUTORIZAR")->u.link.text, "#0.1235"));
	assert_true(core_cp_find(C, "MAD-02")->price == 0.1235);
	frame(4, "REGISTER#MAD-04#x#12");
	m = request("103", "MAD-04", NOW);
	core_add_driver(C, "103");
	kafka(&m);
	assert_non_null(strstr(sent("AUTORIZAR")->u.link.text, "#12.00"));
}

static void test_two_drivers_same_instant(void **state)
{
	(void)state;
	reg(1, "MAD-01");
	struct msg a = request("101", "MAD-01", NOW), b = request("102", "MAD-01", NOW);
	core_fxlist_clear(&FX);
	core_on_kafka(C, &a, clk(), &FX);
	core_on_kafka(C, &b, clk(), &FX);
	size_t auth = 0;
	for (size_t i = 0; i < FX.n; i++)
		auth += FX.v[i].kind == CORE_FX_SEND && strncmp(fx_text(&FX.v[i]), "AUTORIZAR_SUMINISTRO#", 21) == 0;
	assert_int_equal(auth, 1);
	assert_int_equal(count_produce(MSG_AUTH_DENIED), 1);
	const struct msg *d = produced(MSG_AUTH_DENIED);
	assert_string_equal(d->user_id, "102");
	assert_string_equal(d->reason, "CP MAD-01 is RESERVADO");
	assert_int_equal(d->has_session_id, 0);
	assert_string_equal(core_cp_find(C, "MAD-01")->session->driver_id, "101");
}

static void expect_auth_denied(const char *user, const char *cp, double ts, const char *reason)
{
	struct msg m = request(user, cp, ts);
	kafka(&m);
	const struct msg *d = produced(MSG_AUTH_DENIED);
	assert_non_null(d);
	if (!strstr(d->reason, reason))
		fail_msg("denied for '%s', wanted '%s'", d->reason, reason);
	assert_string_equal(d->user_id, user);
	assert_null(send_prefix("AUTORIZAR_SUMINISTRO#"));
	assert_int_equal(count_kind(CORE_FX_STORE_SESSION), 0);
	assert_int_equal(count_kind(CORE_FX_REQUEST), 1);
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_REQUEST)
			assert_non_null(strstr(fx_text(&FX.v[i]), "AUTH_DENIED: "));
}

static void test_auth_denials(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN], sid[MSG_ID_MAX + 1];
	reg(1, "MAD-01");
	expect_auth_denied("999", "MAD-01", NOW, "driver 999 is not registered");
	expect_auth_denied("101", "NOPE-01", NOW, "CP NOPE-01 is not known");
	expect_auth_denied("101", "MAD-01", NOW - 61, "request expired: it is 61 s old (limit 60 s)");
	expect_auth_denied("101", "MAD-01", NOW + 3600, "in the future");
	expect_auth_denied("101", "MAD-01", 0, "no timestamp");
	core_load_cp(C, "MAD-09", "x", 0.2, 0);
	expect_auth_denied("101", "MAD-09", NOW, "CP MAD-09 is DESCONECTADO");
	frame(1, "FAULT#MAD-01");
	expect_auth_denied("101", "MAD-01", NOW, "CP MAD-01 is AVERIADO");
	frame(1, "RECOVER#MAD-01");
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	expect_auth_denied("101", "MAD-01", NOW, "being stopped by the operator");
	frame(1, "ACK#PARAR");
	expect_auth_denied("101", "MAD-01", NOW, "CP MAD-01 is FUERA_DE_SERVICIO");
	/* a driver with an open session elsewhere */
	reg(2, "MAD-02");
	reg(3, "MAD-03");
	authorise(2, "MAD-02", "101", sid);
	expect_auth_denied("101", "MAD-03", NOW, "driver 101 already has an open session on CP MAD-02");
	/* 59 s old is still fine */
	struct msg m = request("102", "MAD-03", NOW - 59);
	kafka(&m);
	assert_non_null(send_prefix("AUTORIZAR_SUMINISTRO#102#"));
}

static void test_duplicate_request_id_ignored(void **state)
{
	(void)state;
	reg(1, "MAD-01");
	struct msg m = request("101", "MAD-01", NOW);
	m.has_request_id = 1;
	snprintf(m.request_id, sizeof(m.request_id), "r-7");
	kafka(&m);
	assert_non_null(send_prefix("AUTORIZAR_SUMINISTRO#"));
	kafka(&m); /* redelivered by Kafka */
	assert_int_equal(count_produce(MSG_AUTH_DENIED), 0);
	assert_null(send_prefix("AUTORIZAR_SUMINISTRO#"));
	assert_int_equal(state_of("MAD-01"), CP_RESERVADO);
}

static struct msg request_rid(const char *user, const char *cp, double ts, const char *rid)
{
	struct msg m = request(user, cp, ts);
	xstrlcpy(m.request_id, rid, sizeof(m.request_id));
	m.has_request_id = 1;
	return m;
}

/* The notification of type t carries exactly request_id rid (NULL: none). */
static void expect_rid(enum msg_type t, const char *rid)
{
	const struct msg *n = produced(t);
	if (rid == NULL) {
		if (n->has_request_id)
			fail_msg("%s carries request_id '%s', wanted none", msg_type_name(t), n->request_id);
		return;
	}
	if (!n->has_request_id)
		fail_msg("%s carries no request_id, wanted '%s'", msg_type_name(t), rid);
	assert_string_equal(n->request_id, rid);
}

/* Every notification answering a request, and every later one of its
 * session, echoes the request's request_id, so a driver can tell them
 * from late answers to an older request on the same CP. */
static void test_request_id_echoed(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	struct msg m, t;
	reg(1, "MAD-01");

	/* denied before any session exists */
	m = request_rid("999", "MAD-01", NOW, "d-1");
	kafka(&m);
	expect_rid(MSG_AUTH_DENIED, "d-1");
	m = request("999", "MAD-01", NOW);
	kafka(&m);
	expect_rid(MSG_AUTH_DENIED, NULL);

	/* a whole supply: AUTH_OK, CONSUMO_UPDATE, TICKET */
	m = request_rid("101", "MAD-01", NOW, "101-5-1");
	kafka(&m);
	xstrlcpy(sid, stored_session()->id, sizeof(sid));
	frame(1, "ACK#AUTORIZAR_SUMINISTRO");
	expect_rid(MSG_AUTH_OK, "101-5-1");
	t = tele(MSG_SESSION_STARTED, "MAD-01", "101", sid, 1, 0);
	kafka(&t);
	t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 2, 1.0);
	kafka(&t);
	expect_rid(MSG_CONSUMO_UPDATE, "101-5-1");
	t = tele(MSG_SUPPLY_END, "MAD-01", "101", sid, 3, 2.0);
	kafka(&t);
	expect_rid(MSG_TICKET, "101-5-1");

	/* the next request without one: nothing left over from the last */
	m = request("101", "MAD-01", NOW);
	kafka(&m);
	frame(1, "ACK#AUTORIZAR_SUMINISTRO");
	expect_rid(MSG_AUTH_OK, NULL);
	NOW += 200;
	tick();
	expect_rid(MSG_SESSION_CANCELLED, NULL);

	/* refused by the CP */
	m = request_rid("101", "MAD-01", NOW, "101-5-2");
	kafka(&m);
	frame(1, "NACK#AUTORIZAR_SUMINISTRO#busy");
	expect_rid(MSG_AUTH_DENIED, "101-5-2");

	/* an open session: a second request is denied with the second id */
	m = request_rid("101", "MAD-01", NOW, "101-5-3");
	kafka(&m);
	m = request_rid("101", "MAD-01", NOW, "101-5-4");
	kafka(&m);
	expect_rid(MSG_AUTH_DENIED, "101-5-4");
	/* reservation timeout cancels with the session's own id */
	NOW += 200;
	tick();
	expect_rid(MSG_SESSION_CANCELLED, "101-5-3");

	/* AUTH_OK sent on SESSION_STARTED (Kafka outran the ACK), then FAULT */
	m = request_rid("102", "MAD-01", NOW, "102-9-1");
	kafka(&m);
	xstrlcpy(sid, stored_session()->id, sizeof(sid));
	t = tele(MSG_SESSION_STARTED, "MAD-01", "102", sid, 1, 0);
	kafka(&t);
	expect_rid(MSG_AUTH_OK, "102-9-1");
	frame(1, "FAULT#MAD-01#engine KO");
	expect_rid(MSG_SUPPLY_ERROR, "102-9-1");
	assert_string_equal(stored_session()->request_id, "102-9-1");
}

/* A recovered session keeps its request_id; one the encoder would refuse
 * (a hand-edited database) is left out, never the notification itself. */
static void test_request_id_recovered(void **state)
{
	(void)state;
	struct core_session s;
	memset(&s, 0, sizeof(s));
	snprintf(s.id, sizeof(s.id), "MAD-01-1-1");
	snprintf(s.cp_id, sizeof(s.cp_id), "MAD-01");
	snprintf(s.driver_id, sizeof(s.driver_id), "101");
	snprintf(s.request_id, sizeof(s.request_id), "101-1-1");
	s.price = 0.25;
	s.kwh = 1.0;
	s.started_at = T0 - 50;
	s.charging = 1;
	/* MAD-01 is not known: nothing can take the sessions up, they end */
	core_fxlist_clear(&FX);
	core_recover_session(C, &s, clk(), &FX);
	check_fx();
	expect_rid(MSG_SUPPLY_ERROR, "101-1-1");

	snprintf(s.id, sizeof(s.id), "MAD-01-1-2");
	snprintf(s.request_id, sizeof(s.request_id), "bad id#1");
	core_fxlist_clear(&FX);
	core_recover_session(C, &s, clk(), &FX);
	check_fx();
	expect_rid(MSG_SUPPLY_ERROR, NULL);
	assert_string_equal(produced(MSG_SUPPLY_ERROR)->session_id, "MAD-01-1-2");
}

static int only_7(void *arg, const char *id)
{
	(*(int *)arg)++;
	return strcmp(id, "7") == 0;
}

static void test_driver_known_callback(void **state)
{
	(void)state;
	int calls = 0;
	struct core_config cfg;
	core_config_defaults(&cfg);
	assert_true(cfg.request_max_age == 60 && cfg.reservation_timeout == 120);
	cfg.driver_known = only_7;
	cfg.driver_known_arg = &calls;
	core_free(C);
	C = core_new(&cfg);
	reg(1, "MAD-01");
	expect_auth_denied("8", "MAD-01", NOW, "driver 8 is not registered");
	struct msg m = request("7", "MAD-01", NOW);
	kafka(&m);
	assert_non_null(send_prefix("AUTORIZAR_SUMINISTRO#7#"));
	assert_true(calls >= 2);
}

static void test_nack_authorize(void **state)
{
	(void)state;
	reg(1, "MAD-01");
	struct msg m = request("101", "MAD-01", NOW);
	kafka(&m);
	char sid[MSG_ID_MAX + 1];
	xstrlcpy(sid, stored_session()->id, sizeof(sid));
	frame(1, "NACK#AUTORIZAR_SUMINISTRO#engine busy");
	const struct msg *d = produced(MSG_AUTH_DENIED);
	assert_non_null(d);
	assert_non_null(strstr(d->reason, "engine busy"));
	assert_string_equal(d->session_id, sid);
	assert_int_equal(count_produce(MSG_SESSION_CANCELLED), 0);
	assert_int_equal(count_produce(MSG_AUTH_OK), 0);
	const struct core_session *s = stored_session();
	assert_int_equal(s->outcome, CORE_OUT_SESSION_CANCELLED);
	assert_string_equal(s->id, sid);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	/* late ACK for it changes nothing */
	frame(1, "ACK#AUTORIZAR_SUMINISTRO");
	assert_int_equal(count_produce(MSG_AUTH_OK), 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
}

static void test_reservation_timeout(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	reg(1, "MAD-01");
	authorise(1, "MAD-01", "101", sid);
	NOW += 119;
	tick();
	assert_int_equal(FX.n, 0);
	NOW += 1;
	tick();
	const struct msg *x = produced(MSG_SESSION_CANCELLED);
	assert_non_null(x);
	assert_string_equal(x->session_id, sid);
	assert_non_null(strstr(x->reason, "not plugged in within 120 s"));
	assert_int_equal(stored_session()->outcome, CORE_OUT_SESSION_CANCELLED);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	tick();
	assert_int_equal(FX.n, 0);
	/* a SESSION_STARTED after the timeout is too late */
	struct msg t = tele(MSG_SESSION_STARTED, "MAD-01", "101", sid, 1, 0);
	kafka(&t);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	assert_int_equal(count_kind(CORE_FX_STORE_SESSION), 0);

	/* a charging session never hits the reservation timeout while its
	 * telemetry flows */
	char sid2[MSG_ID_MAX + 1];
	authorise(1, "MAD-01", "102", sid2);
	t = tele(MSG_SESSION_STARTED, "MAD-01", "102", sid2, 1, 0);
	kafka(&t);
	for (int i = 0; i < 200; i++) {
		NOW += 5;
		struct msg k = tele(MSG_CONSUMO, "MAD-01", "102", sid2, (uint64_t)i + 2, 0.01 * i);
		kafka(&k);
		tick();
		assert_int_equal(count_produce(MSG_SESSION_CANCELLED) + count_produce(MSG_SUPPLY_ERROR), 0);
	}
	assert_int_equal(state_of("MAD-01"), CP_SUMINISTRANDO);
}

/* A charging session whose telemetry stops ends after --supply-timeout
 * with the figures it had, the driver told, the CP freed, and the engine
 * told to end the supply. */
static void test_supply_watchdog(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	reg(1, "MAD-01");
	authorise(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_SESSION_STARTED, "MAD-01", "101", sid, 1, 0);
	kafka(&t);
	t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 2, 1.5);
	kafka(&t);
	NOW += 9;
	tick();
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 0);
	NOW += 1;
	tick();
	const struct msg *e = produced(MSG_SUPPLY_ERROR);
	assert_non_null(e);
	assert_string_equal(e->session_id, sid);
	assert_non_null(strstr(e->reason, "no telemetry for 10 s"));
	assert_true(e->kwh == 1.5);
	const struct core_session *st = stored_session();
	assert_int_equal(st->outcome, CORE_OUT_SUPPLY_ERROR);
	assert_true(st->kwh == 1.5);
	char want[128];
	snprintf(want, sizeof want, "FIN_SUMINISTRO#%s", sid);
	assert_true(send_index(1, want) >= 0);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	/* the engine's ACK is taken quietly; late telemetry changes nothing */
	frame(1, "ACK#FIN_SUMINISTRO");
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 3, 2.0);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_STORE_SESSION), 0);
	/* the driver may charge again at once */
	char sid2[MSG_ID_MAX + 1];
	authorise(1, "MAD-01", "101", sid2);
	assert_string_not_equal(sid, sid2);
	t = tele(MSG_SESSION_STARTED, "MAD-01", "101", sid2, 1, 0);
	kafka(&t);
	/* while the broker is unreachable no telemetry can come: the watchdog
	 * waits, and counts again from the broker's return */
	core_set_kafka_up(C, 0);
	NOW += 60;
	tick();
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 0);
	core_set_kafka_up(C, 1);
	NOW += 9;
	tick();
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 0);
	NOW += 1;
	tick();
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 1);
}

static void test_reservation_timeout_configurable(void **state)
{
	(void)state;
	struct core_config cfg;
	core_config_defaults(&cfg);
	cfg.reservation_timeout = 5;
	cfg.request_max_age = 10;
	core_free(C);
	C = core_new(&cfg);
	core_add_driver(C, "101");
	reg(1, "MAD-01");
	expect_auth_denied("101", "MAD-01", NOW - 11, "limit 10 s");
	struct msg m = request("101", "MAD-01", NOW);
	kafka(&m);
	NOW += 5;
	tick();
	assert_int_equal(count_produce(MSG_SESSION_CANCELLED), 1);
}

static void test_driver_quit(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1], sid2[MSG_ID_MAX + 1];
	reg(1, "MAD-01");
	authorise(1, "MAD-01", "101", sid);
	struct msg q;
	msg_init(&q, MSG_DRIVER_QUIT);
	snprintf(q.user_id, sizeof(q.user_id), "101");
	kafka(&q);
	const struct msg *x = produced(MSG_SESSION_CANCELLED);
	assert_non_null(x);
	assert_string_equal(x->session_id, sid);
	assert_string_equal(x->reason, "driver quit");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	kafka(&q); /* again: nothing open */
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	/* while charging, quitting the app does not stop the supply */
	charging(2, "MAD-02", "101", sid2);
	kafka(&q);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_int_equal(state_of("MAD-02"), CP_SUMINISTRANDO);
}

/* ---- telemetry ---- */

static void test_duplicate_and_old_seq(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	charging(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 5, 3.0);
	kafka(&t);
	assert_int_equal(count_produce(MSG_CONSUMO_UPDATE), 1);
	kafka(&t); /* duplicate */
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_int_equal(count_kind(CORE_FX_STORE_SESSION), 0);
	t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 4, 9.0); /* old */
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_true(core_cp_find(C, "MAD-01")->session->kwh == 3.0);
	t = tele(MSG_SUPPLY_END, "MAD-01", "101", sid, 5, 9.0); /* same seq, other type */
	kafka(&t);
	assert_int_equal(count_produce(MSG_TICKET), 0);
	t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 6, 4.0);
	kafka(&t);
	assert_true(produced(MSG_CONSUMO_UPDATE)->importe == 4.0 * 0.25);
}

/* A CONSUMO whose SESSION_STARTED never came still starts the supply; seq 0
 * (an engine counting from 0) is applied once, not dropped. */
static void test_consumo_starts_supply_and_seq_zero(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	reg(1, "MAD-01");
	authorise(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 0, 1.0);
	kafka(&t);
	assert_int_equal(state_of("MAD-01"), CP_SUMINISTRANDO);
	assert_int_equal(count_produce(MSG_CONSUMO_UPDATE), 1);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	t = tele(MSG_SUPPLY_END, "MAD-01", "101", sid, 1, 2.0);
	kafka(&t);
	assert_true(produced(MSG_TICKET)->importe == 0.5);
}

static void test_consumo_after_supply_end(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	charging(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_SUPPLY_END, "MAD-01", "101", sid, 2, 5.0);
	kafka(&t);
	assert_int_equal(count_produce(MSG_TICKET), 1);
	t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 3, 6.0);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_int_equal(count_kind(CORE_FX_STORE_SESSION), 0);
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 0);
	t = tele(MSG_SUPPLY_END, "MAD-01", "101", sid, 4, 6.0);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	t = tele(MSG_AVERIADO, "MAD-01", "101", sid, 5, 6.0);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
}

static void test_telemetry_mismatch_and_unknown(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	charging(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_SUPPLY_END, "MAD-02", "101", sid, 2, 5.0);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_non_null(find_log(LOG_WARN, "ignored"));
	t = tele(MSG_SUPPLY_END, "MAD-01", "102", sid, 2, 5.0);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	t = tele(MSG_SUPPLY_END, "MAD-01", "101", "no-such-session", 2, 5.0);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 2, -1.0);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	/* without a session id, telemetry is matched to the CP's open session
	 * only for a Release-1 plaintext CP (test_release1_peers); MAD-09 is
	 * not registered at all */
	t = tele(MSG_SUPPLY_END, "MAD-09", "101", "", 2, 5.0);
	t.has_session_id = 0;
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	for (size_t i = 0; i < FX.n; i++)
		assert_true(FX.v[i].kind == CORE_FX_LOG && FX.v[i].u.log.level <= LOG_WARN);
	assert_int_equal(state_of("MAD-01"), CP_SUMINISTRANDO);
	/* notifications are not inputs */
	struct msg n;
	msg_init(&n, MSG_TICKET);
	kafka(&n);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_int_equal(state_of("MAD-01"), CP_SUMINISTRANDO);
}

static void test_session_started_before_ack(void **state)
{
	(void)state;
	reg(1, "MAD-01");
	struct msg m = request("101", "MAD-01", NOW);
	kafka(&m);
	char sid[MSG_ID_MAX + 1];
	xstrlcpy(sid, stored_session()->id, sizeof(sid));
	struct msg t = tele(MSG_SESSION_STARTED, "MAD-01", "101", sid, 1, 0);
	kafka(&t);
	assert_int_equal(count_produce(MSG_AUTH_OK), 1);
	assert_int_equal(state_of("MAD-01"), CP_SUMINISTRANDO);
	frame(1, "ACK#AUTORIZAR_SUMINISTRO");
	assert_int_equal(count_produce(MSG_AUTH_OK), 0); /* told once */
}

static void test_fault_and_averiado_same_session(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	/* FAULT on the link first, then AVERIADO on Kafka */
	charging(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 2, 4.0);
	kafka(&t);
	frame(1, "FAULT#MAD-01#engine KO");
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 1);
	const struct msg *e = produced(MSG_SUPPLY_ERROR);
	assert_true(e->kwh_partial == 4.0);
	assert_true(e->importe_partial == 1.0);
	assert_string_equal(e->session_id, sid);
	assert_non_null(strstr(e->reason, "engine KO"));
	assert_int_equal(state_of("MAD-01"), CP_AVERIADO);
	assert_int_equal(stored_session()->outcome, CORE_OUT_SUPPLY_ERROR);
	/* one state change, SUMINISTRANDO -> AVERIADO */
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 1);
	assert_non_null(find_log(LOG_INFO, "SUMINISTRANDO -> AVERIADO"));
	t = tele(MSG_AVERIADO, "MAD-01", "101", sid, 3, 4.5);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_int_equal(count_kind(CORE_FX_STORE_SESSION), 0);
	assert_int_equal(state_of("MAD-01"), CP_AVERIADO);

	/* AVERIADO on Kafka first, then FAULT on the link */
	charging(2, "MAD-02", "102", sid);
	t = tele(MSG_AVERIADO, "MAD-02", "102", sid, 2, 1.5);
	kafka(&t);
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 1);
	assert_true(produced(MSG_SUPPLY_ERROR)->kwh_partial == 1.5);
	/* No ACTIVADO gap before the monitor's FAULT: a request now would send
	 * a driver to a failed engine. */
	assert_int_equal(state_of("MAD-02"), CP_AVERIADO);
	expect_auth_denied("101", "MAD-02", NOW, "CP MAD-02 is AVERIADO");
	frame(2, "FAULT#MAD-02");
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 0); /* still AVERIADO: no change */
	assert_int_equal(state_of("MAD-02"), CP_AVERIADO);
	/* the FAULT took over: the grace period ending changes nothing */
	NOW += CORE_ENGINE_FAULT_GRACE + 1;
	tick();
	assert_int_equal(state_of("MAD-02"), CP_AVERIADO);
	frame(2, "RECOVER#MAD-02");
	assert_int_equal(state_of("MAD-02"), CP_ACTIVADO);
}

/* The engine's AVERIADO that its monitor never confirms (the engine was OK
 * again before the next health check) does not leave the CP red. */
static void test_engine_fault_unconfirmed(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	charging(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_AVERIADO, "MAD-01", "101", sid, 2, 1.0);
	kafka(&t);
	assert_int_equal(state_of("MAD-01"), CP_AVERIADO);
	NOW += CORE_ENGINE_FAULT_GRACE - 0.5;
	tick();
	assert_int_equal(state_of("MAD-01"), CP_AVERIADO);
	NOW += 1.0;
	tick();
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	assert_non_null(find_log(LOG_INFO, "not confirmed by the monitor"));

	/* RECOVER inside the window clears it at once */
	charging(2, "MAD-02", "102", sid);
	t = tele(MSG_AVERIADO, "MAD-02", "102", sid, 2, 1.0);
	kafka(&t);
	assert_int_equal(state_of("MAD-02"), CP_AVERIADO);
	frame(2, "RECOVER#MAD-02");
	assert_int_equal(state_of("MAD-02"), CP_ACTIVADO);
	NOW += CORE_ENGINE_FAULT_GRACE + 1;
	tick();
	assert_int_equal(count_kind(CORE_FX_STORE_CP), 0);
}

/* A FAULT reason with bytes that are not UTF-8 still gives the driver an
 * encodable SUPPLY_ERROR (check_fx encodes every message produced). */
static void test_fault_reason_not_utf8(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	charging(1, "MAD-01", "101", sid);
	frame(1, "FAULT#MAD-01#bad \xff\xc3 byte \xc3\xb1");
	const struct msg *e = produced(MSG_SUPPLY_ERROR);
	assert_non_null(e);
	assert_non_null(strstr(e->reason, "bad ?? byte \xc3\xb1"));
}

static void test_fault_while_reserved(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	reg(1, "MAD-01");
	authorise(1, "MAD-01", "101", sid);
	frame(1, "FAULT#MAD-01");
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 0);
	assert_int_equal(count_produce(MSG_SESSION_CANCELLED), 1);
	assert_int_equal(state_of("MAD-01"), CP_AVERIADO);
}

static void test_supply_end_then_parar(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1], err[EVC_ERR_LEN];
	charging(1, "MAD-01", "101", sid);
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	struct msg t = tele(MSG_SUPPLY_END, "MAD-01", "101", sid, 2, 6.0);
	kafka(&t);
	assert_int_equal(count_produce(MSG_TICKET), 1);
	assert_true(produced(MSG_TICKET)->importe == 1.5);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	frame(1, "ACK#PARAR");
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_int_equal(count_kind(CORE_FX_STORE_SESSION), 0);
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
}

/* MAD-01 charged 3.0 kWh at 0.25 EUR/kWh in session sid and its PARAR was
 * just acknowledged: the supply ended SUPPLY_ERROR for reason with its
 * partial figures, and the engine's own SUPPLY_END afterwards changes
 * nothing. */
static void expect_stopped_supply(const char *sid, const char *reason)
{
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 1);
	const struct msg *e = produced(MSG_SUPPLY_ERROR);
	assert_string_equal(e->reason, reason);
	assert_true(e->kwh_partial == 3.0);
	assert_true(e->importe_partial == 0.75);
	assert_int_equal(stored_session()->outcome, CORE_OUT_SUPPLY_ERROR);
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	struct msg t = tele(MSG_SUPPLY_END, "MAD-01", "101", sid, 3, 3.2);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_int_equal(count_kind(CORE_FX_STORE_SESSION), 0);
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
}

static void test_parar_then_supply_end(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1], err[EVC_ERR_LEN];
	charging(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 2, 3.0);
	kafka(&t);
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	frame(1, "ACK#PARAR");
	expect_stopped_supply(sid, "stopped by operator");
}

static void test_stop_while_reserved(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1], err[EVC_ERR_LEN];
	reg(1, "MAD-01");
	authorise(1, "MAD-01", "101", sid);
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	frame(1, "ACK#PARAR");
	assert_int_equal(count_produce(MSG_SESSION_CANCELLED), 1);
	assert_string_equal(produced(MSG_SESSION_CANCELLED)->reason, "stopped by operator");
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 0);
}

/* Link loss during a supply (evcharging(7) RULES): the session stays open
 * for --link-grace, the CP is offered to nobody meanwhile, and whatever
 * settles it (the monitor back, the engine's own end on Kafka, the grace
 * running out) bills exactly what the engine metered. */
static void test_link_down_with_session(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	charging(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 2, 2.0);
	kafka(&t);
	link_down(1);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0); /* nobody told yet */
	assert_non_null(find_log(LOG_WARN, "kept for 10 s"));
	assert_int_equal(state_of("MAD-01"), CP_DESCONECTADO);
	/* telemetry still counts, and nobody else gets the CP */
	NOW += 1;
	t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 3, 2.4);
	kafka(&t);
	assert_int_equal(count_produce(MSG_CONSUMO_UPDATE), 1);
	struct msg r = request("102", "MAD-01", NOW);
	kafka(&r);
	assert_int_equal(count_produce(MSG_AUTH_DENIED), 1);
	/* the engine's own end of supply (monitor silence) settles it with
	 * its figures: billed == metered */
	NOW += 4;
	t = tele(MSG_CONEXION_PERDIDA, "MAD-01", "101", sid, 4, 2.5);
	kafka(&t);
	const struct msg *e = produced(MSG_SUPPLY_ERROR);
	assert_non_null(e);
	assert_true(e->kwh_partial == 2.5);
	assert_true(e->importe_partial == 0.63);
	assert_int_equal(stored_session()->outcome, CORE_OUT_SUPPLY_ERROR);
	assert_null(core_cp_find(C, "MAD-01")->session);
	assert_true(core_cp_find(C, "MAD-01")->grace_until == 0);
	tick();
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);

	/* a monitor back within the grace: the session goes on */
	char sid2[MSG_ID_MAX + 1];
	charging(2, "MAD-02", "102", sid2);
	link_down(2);
	NOW += 4;
	reg(3, "MAD-02");
	assert_non_null(find_log(LOG_INFO, "back within the grace"));
	assert_int_equal(state_of("MAD-02"), CP_SUMINISTRANDO);
	NOW += 20; /* past the grace: nothing ends, the link is back */
	t = tele(MSG_CONSUMO, "MAD-02", "102", sid2, 2, 3.0);
	kafka(&t);
	tick();
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 0);
	t = tele(MSG_SUPPLY_END, "MAD-02", "102", sid2, 3, 3.2);
	kafka(&t);
	assert_int_equal(count_produce(MSG_TICKET), 1);
	assert_true(produced(MSG_TICKET)->kwh == 3.2);

	/* nothing comes back: the grace ends it with the last figures */
	char sid3[MSG_ID_MAX + 1];
	charging(4, "MAD-03", "101", sid3);
	t = tele(MSG_CONSUMO, "MAD-03", "101", sid3, 2, 1.0);
	kafka(&t);
	link_down(4);
	NOW += 9;
	tick();
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 0);
	NOW += 1;
	tick();
	e = produced(MSG_SUPPLY_ERROR);
	assert_non_null(e);
	assert_non_null(strstr(e->reason, "not back within 10 s"));
	assert_true(e->kwh_partial == 1.0);
	assert_int_equal(state_of("MAD-03"), CP_DESCONECTADO);

	/* a reservation is kept the same way, and cancelled at the end */
	reg(5, "MAD-04");
	authorise(5, "MAD-04", "102", sid);
	link_down(5);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	NOW += 10;
	tick();
	assert_int_equal(count_produce(MSG_SESSION_CANCELLED), 1);
	assert_non_null(strstr(produced(MSG_SESSION_CANCELLED)->reason, "not back within"));
	link_down(5); /* twice: harmless */
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
}

/* REGISTER over TLS (evcharging(7) SECURITY): the credential, the KEY,
 * the denial reasons, the audit rows. */
static void test_register_tls(void **state)
{
	(void)state;
	registry_cp("MAD-01");
	tls_up(1, "10.0.0.7:5301");
	/* no secret, unknown CP, wrong secret: each its reason, audited */
	frame(1, "REGISTER#MAD-01#x#0.25");
	assert_true(send_index(1, "REGISTER_RESULT#DENIED#BAD_REQUEST") >= 0);
	assert_non_null(audit_row("CP_AUTH_FAILED"));
	assert_int_equal(count_kind(CORE_FX_CLOSE), 1);
	tls_up(2, "10.0.0.7:5302");
	tls_reg(2, "MAD-77", SECRET_A);
	assert_true(send_index(2, "REGISTER_RESULT#DENIED#NOT_REGISTERED") >= 0);
	tls_up(3, "10.0.0.7:5303");
	tls_reg(3, "MAD-01", SECRET_B);
	assert_true(send_index(3, "REGISTER_RESULT#DENIED#BAD_CREDENTIALS") >= 0);
	const struct core_fx *a = audit_row("CP_AUTH_FAILED");
	assert_non_null(a);
	assert_string_equal(a->u.audit.source_ip, "10.0.0.7");
	assert_string_equal(a->u.audit.cp_id, "MAD-01");
	assert_null(strstr(a->u.audit.detail, SECRET_B)); /* never the secret */
	assert_null(core_cp_find(C, "MAD-77"));
	/* the right one: RESULT, then KEY; the registry's place and price win */
	tls_up(4, "10.0.0.8:6000");
	tls_reg(4, "MAD-01", SECRET_A);
	long r = send_index(4, "REGISTER_RESULT#FIRST");
	long k = send_index(4, "KEY#MAD-01#K001AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	assert_true(r >= 0 && k > r);
	assert_non_null(audit_row("CP_AUTH_OK"));
	assert_non_null(audit_row("CP_KEY_ISSUED"));
	assert_int_equal(count_kind(CORE_FX_REGISTERED), 1);
	assert_int_equal(count_kind(CORE_FX_KEY), 1);
	const struct core_cp *cp = core_cp_find(C, "MAD-01");
	assert_string_equal(cp->location, "Gran Via 1, Madrid");
	assert_true(cp->price == 0.40);
	assert_true(cp->tls);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	/* the key never in a log line or an event */
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind != CORE_FX_SEND && FX.v[i].kind != CORE_FX_KEY)
			assert_null(strstr(fx_text(&FX.v[i]), "K001AAAA"));
	/* a new authenticated link replaces a half-open one; same key */
	tls_up(5, "10.0.0.8:6001");
	tls_reg(5, "MAD-01", SECRET_A);
	assert_true(send_index(5, "REGISTER_RESULT#RECONNECT") >= 0);
	assert_true(send_index(5, "KEY#MAD-01#K001AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") >= 0);
	int closed_old = 0;
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_CLOSE && FX.v[i].u.link.conn == 4 &&
		    strstr(FX.v[i].u.link.text, "replaced by a new authenticated link"))
			closed_old = 1;
	assert_true(closed_old);
	assert_int_equal(core_cp_find(C, "MAD-01")->conn, 5);
	link_down(4); /* the old one's CPL_DOWN changes nothing */
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	/* a plaintext link may not register a CP that has credentials */
	frame(9, "REGISTER#MAD-01#x#0.25");
	assert_true(send_index(9, "REGISTER_RESULT#DENIED#BAD_CREDENTIALS") >= 0);
	assert_non_null(audit_row("PLAIN_LINK_REFUSED"));
	/* nor present a secret in clear */
	frame(10, "REGISTER#MAD-99#x#0.25#" SECRET_A);
	assert_true(send_index(10, "REGISTER_RESULT#DENIED#BAD_REQUEST") >= 0);
	assert_null(core_cp_find(C, "MAD-99"));
}

/* At most 5 failed REGISTERs per address a minute, then RATE_LIMITED for
 * 60 s, audited once; other addresses are not affected. */
static void test_register_rate_limit(void **state)
{
	(void)state;
	registry_cp("MAD-01");
	for (int i = 0; i < 6; i++) {
		tls_up(10 + (uint64_t)i, "192.0.2.1:4000");
		tls_reg(10 + (uint64_t)i, "MAD-01", SECRET_B);
		assert_true(send_index(10 + (uint64_t)i, "REGISTER_RESULT#DENIED#BAD_CREDENTIALS") >= 0);
	}
	assert_non_null(audit_row("RATE_LIMITED"));
	tls_up(20, "192.0.2.1:4001");
	tls_reg(20, "MAD-01", SECRET_A); /* even the right secret */
	assert_true(send_index(20, "REGISTER_RESULT#DENIED#RATE_LIMITED") >= 0);
	assert_null(audit_row("RATE_LIMITED")); /* once per block */
	assert_int_equal(count_kind(CORE_FX_LOG), 0); /* and no log line each */
	tls_up(21, "192.0.2.2:4000");
	tls_reg(21, "MAD-01", SECRET_A);
	assert_true(send_index(21, "REGISTER_RESULT#FIRST") >= 0);
	NOW += 61;
	tls_up(22, "192.0.2.1:4002");
	tls_reg(22, "MAD-01", SECRET_A);
	assert_true(send_index(22, "REGISTER_RESULT#RECONNECT") >= 0);
}

/* Revocation (evcharging(7) SECURITY): key deleted, REVOKED sent, supply
 * ended, only HEARTBEAT and REGISTER taken on the link, a new REGISTER
 * gets a new key. */
static void test_revoke(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN], sid[MSG_ID_MAX + 1];
	registry_cp("MAD-01");
	tls_up(1, "10.0.0.7:5301");
	tls_reg(1, "MAD-01", SECRET_A);
	authorise(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_SESSION_STARTED, "MAD-01", "101", sid, 1, 0);
	kafka(&t);
	t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 2, 0.7);
	kafka(&t);
	core_fxlist_clear(&FX);
	assert_int_equal(core_command_as(C, CORE_CMD_REVOKE, "MAD-01", "api:ops", "127.0.0.1", clk(), &FX, err), 0);
	check_fx();
	assert_true(send_index(1, "REVOKED#MAD-01") >= 0);
	char want[128];
	snprintf(want, sizeof want, "FIN_SUMINISTRO#%s", sid);
	assert_true(send_index(1, want) >= 0);
	const struct msg *e = produced(MSG_SUPPLY_ERROR);
	assert_non_null(e);
	assert_string_equal(e->reason, "keys revoked");
	assert_true(e->kwh_partial == 0.7);
	const struct core_fx *a = audit_row("CP_KEY_REVOKED");
	assert_non_null(a);
	assert_string_equal(a->u.audit.actor, "api:ops");
	int key_gone = 0;
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_KEY && FX.v[i].u.key.key[0] == '\0' && FX.v[i].u.key.revoked &&
		    FX.v[i].u.key.store)
			key_gone = 1;
	assert_true(key_gone);
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	assert_true(core_cp_find(C, "MAD-01")->revoked);
	/* twice: refused */
	assert_int_equal(command(CORE_CMD_REVOKE, "MAD-01", err), -1);
	assert_non_null(strstr(err, "already revoked"));
	/* the link stays, for HEARTBEAT and REGISTER only */
	frame(1, "HEARTBEAT#MAD-01");
	assert_int_equal(FX.n, 0);
	frame(1, "FAULT#MAD-01#x");
	assert_non_null(send_prefix("ERROR#keys revoked"));
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	struct msg m = request("102", "MAD-01", NOW);
	kafka(&m);
	assert_int_equal(count_produce(MSG_AUTH_DENIED), 1);
	/* re-authentication on the same link: a new key, back in service */
	tls_reg(1, "MAD-01", SECRET_A);
	assert_true(send_index(1, "REGISTER_RESULT#RECONNECT") >= 0);
	assert_true(send_index(1, "KEY#MAD-01#K002AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") >= 0);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	assert_false(core_cp_find(C, "MAD-01")->revoked);
	/* the console's command */
	int cmd;
	char cp[MSG_CP_ID_MAX + 1];
	assert_int_equal(core_parse_command("revoke MAD-01", &cmd, cp, err), 0);
	assert_int_equal(cmd, CORE_CMD_REVOKE);
	assert_string_equal(cp, "MAD-01");
	/* a plaintext CP has no key to revoke */
	reg(7, "PLN-01");
	assert_int_equal(command(CORE_CMD_REVOKE, "PLN-01", err), -1);
	assert_non_null(strstr(err, "no key"));
}

/* The registry changes while Central runs: a new CP can register at once,
 * a deleted one is refused and its link closed, a new secret closes the
 * link (it must authenticate again). */
static void test_registry_changes(void **state)
{
	(void)state;
	struct core_reg r;
	memset(&r, 0, sizeof(r));
	xstrlcpy(r.id, "BCN-01", sizeof(r.id));
	xstrlcpy(r.location, "Barcelona", sizeof(r.location));
	r.price = 0.3;
	crypto_secret_hash(SECRET_A, r.secret_hash);
	core_fxlist_clear(&FX);
	core_on_registry(C, &r, clk(), &FX);
	assert_int_equal(state_of("BCN-01"), CP_DESCONECTADO);
	tls_up(1, "10.1.1.1:1");
	tls_reg(1, "BCN-01", SECRET_A);
	assert_true(send_index(1, "REGISTER_RESULT#FIRST") >= 0);
	/* new secret */
	crypto_secret_hash(SECRET_B, r.secret_hash);
	core_fxlist_clear(&FX);
	core_on_registry(C, &r, clk(), &FX);
	assert_int_equal(count_kind(CORE_FX_CLOSE), 1);
	assert_int_equal(state_of("BCN-01"), CP_DESCONECTADO);
	tls_up(2, "10.1.1.1:2");
	tls_reg(2, "BCN-01", SECRET_A);
	assert_true(send_index(2, "REGISTER_RESULT#DENIED#BAD_CREDENTIALS") >= 0);
	tls_up(3, "10.1.1.1:3");
	tls_reg(3, "BCN-01", SECRET_B);
	assert_true(send_index(3, "REGISTER_RESULT#RECONNECT") >= 0);
	/* deleted: link closed, its key dropped, refused from then on */
	r.deleted = 1;
	r.secret_hash[0] = '\0';
	core_fxlist_clear(&FX);
	core_on_registry(C, &r, clk(), &FX);
	assert_int_equal(count_kind(CORE_FX_CLOSE), 1);
	assert_int_equal(count_kind(CORE_FX_KEY), 1);
	tls_up(4, "10.1.1.1:4");
	tls_reg(4, "BCN-01", SECRET_B);
	assert_true(send_index(4, "REGISTER_RESULT#DENIED#NOT_REGISTERED") >= 0);
}

/* Release-1 peers (evcharging(7) SECURITY, Release-1 mode): their short
 * queries get one answer and a close; their telemetry without session
 * or seq goes to the CP's open session, ended once. */
static void test_release1_peers(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	frame(7, "CHECK_DRIVER#MAD-01");
	assert_true(send_index(7, "NO_DRIVER") >= 0);
	assert_int_equal(count_kind(CORE_FX_CLOSE), 1);
	charging(1, "MAD-01", "101", sid);
	frame(8, "CHECK_DRIVER#MAD-01");
	assert_true(send_index(8, "101") >= 0);
	assert_int_equal(count_kind(CORE_FX_CLOSE), 1);
	frame(9, "CHECK_SESSION#MAD-02");
	assert_true(send_index(9, "NO_SESSION") >= 0);
	struct msg t = tele(MSG_CONSUMO, "MAD-01", "101", "", 0, 1.25);
	t.has_session_id = 0;
	t.has_seq = 0;
	kafka(&t);
	assert_int_equal(count_produce(MSG_CONSUMO_UPDATE), 1);
	t = tele(MSG_SUPPLY_END, "MAD-01", "101", "", 0, 1.5);
	t.has_session_id = 0;
	t.has_seq = 0;
	kafka(&t);
	assert_int_equal(count_produce(MSG_TICKET), 1);
	assert_true(produced(MSG_TICKET)->kwh == 1.5);
	kafka(&t); /* again: no session open, nothing */
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	/* a TLS CP's telemetry must name its session */
	registry_cp("TLS-01");
	tls_up(2, "10.0.0.2:1");
	tls_reg(2, "TLS-01", SECRET_A);
	authorise(2, "TLS-01", "102", sid);
	t = tele(MSG_SESSION_STARTED, "TLS-01", "102", "", 0, 0);
	t.has_session_id = 0;
	kafka(&t);
	assert_int_equal(state_of("TLS-01"), CP_RESERVADO);
	/* and short queries are not answered over TLS */
	tls_up(3, "10.0.0.2:2");
	frame(3, "CHECK_DRIVER#TLS-01");
	assert_true(send_index(3, "ERROR#not registered: send REGISTER first") >= 0);
}

/* Refused plaintext links are audited, at most once a minute per address. */
static void test_plain_refused_audit(void **state)
{
	(void)state;
	core_fxlist_clear(&FX);
	core_on_link_refused(C, "10.9.9.9:1234", "plaintext link refused", clk(), &FX);
	assert_non_null(audit_row("PLAIN_LINK_REFUSED"));
	assert_string_equal(audit_row("PLAIN_LINK_REFUSED")->u.audit.source_ip, "10.9.9.9");
	core_fxlist_clear(&FX);
	core_on_link_refused(C, "10.9.9.9:1235", "plaintext link refused", clk(), &FX);
	assert_int_equal(FX.n, 0);
	NOW += 61;
	core_fxlist_clear(&FX);
	core_on_link_refused(C, "10.9.9.9:1236", "plaintext link refused", clk(), &FX);
	assert_int_equal(FX.n, 1);
	core_fxlist_clear(&FX);
	core_on_link_refused(C, "[::1]:9", "plaintext link refused", clk(), &FX);
	assert_string_equal(audit_row("PLAIN_LINK_REFUSED")->u.audit.source_ip, "::1");
}

/* Operator commands are audited with who asked. */
static void test_command_audit(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	reg(1, "MAD-01");
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	const struct core_fx *a = audit_row("OPERATOR_STOP");
	assert_non_null(a);
	assert_string_equal(a->u.audit.actor, "operator");
	assert_string_equal(a->u.audit.cp_id, "MAD-01");
	frame(1, "ACK#PARAR");
	core_fxlist_clear(&FX);
	assert_int_equal(core_command_as(C, CORE_CMD_RESUME_ALL, NULL, "operator:ctl", NULL, clk(), &FX, err), 0);
	assert_non_null(audit_row("OPERATOR_RESUME_ALL"));
	frame(1, "FAULT#MAD-01#engine KO");
	assert_non_null(audit_row("CP_FAULT"));
	frame(1, "RECOVER#MAD-01");
	assert_non_null(audit_row("CP_RECOVER"));
	struct msg m = request("999", "MAD-01", NOW);
	kafka(&m);
	a = audit_row("DRIVER_AUTH_DENIED");
	assert_non_null(a);
	assert_string_equal(a->u.audit.actor, "driver:999");
}

/* A session authorised but not plugged in when its link was lost is
 * offered again when the CP is back within the grace: the engine may have
 * lost the AUTORIZAR or its ACK, or dropped it while its monitor could not
 * reach Central. Its ACK brings the driver's AUTH_OK; a refusal ends the
 * session, and a driver who had AUTH_OK is told (SESSION_CANCELLED). */
static void test_reoffer_after_link_loss(void **state)
{
	(void)state;
	/* the ACK was lost with the link */
	reg(1, "MAD-01");
	struct msg m = request("101", "MAD-01", NOW);
	kafka(&m);
	assert_non_null(send_prefix("AUTORIZAR_SUMINISTRO#101#"));
	char sid[MSG_ID_MAX + 1];
	xstrlcpy(sid, stored_session()->id, sizeof sid);
	link_down(1);
	NOW += 2;
	reg(2, "MAD-01");
	char want[128];
	snprintf(want, sizeof want, "AUTORIZAR_SUMINISTRO#101#%s#0.25", sid);
	assert_true(send_index(2, want) >= 0);
	/* after REGISTER_RESULT: a monitor takes no AUTORIZAR before it is
	 * registered (chaos_billing saw "ERROR#not registered yet") */
	assert_true(send_index(2, want) > send_index(2, "REGISTER_RESULT#RECONNECT"));
	frame(2, "ACK#AUTORIZAR_SUMINISTRO");
	assert_int_equal(count_produce(MSG_AUTH_OK), 1);
	assert_string_equal(produced(MSG_AUTH_OK)->session_id, sid);
	/* a second ACK (the first one arriving late) changes nothing */
	frame(2, "ACK#AUTORIZAR_SUMINISTRO");
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);

	/* the driver had AUTH_OK; the engine no longer takes the session */
	link_down(2);
	NOW += 2;
	reg(3, "MAD-01");
	assert_true(send_index(3, want) >= 0);
	frame(3, "NACK#AUTORIZAR_SUMINISTRO#busy: supplying driver 999");
	const struct msg *c = produced(MSG_SESSION_CANCELLED);
	assert_non_null(c);
	assert_string_equal(c->session_id, sid);
	assert_non_null(strstr(c->reason, "no longer takes the session"));
	assert_int_equal(stored_session()->outcome, CORE_OUT_SESSION_CANCELLED);
	assert_null(core_cp_find(C, "MAD-01")->session);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);

	/* a charging session is not offered again */
	char sid2[MSG_ID_MAX + 1];
	charging(4, "MAD-02", "102", sid2);
	link_down(4);
	NOW += 2;
	reg(5, "MAD-02");
	assert_null(send_prefix("AUTORIZAR_SUMINISTRO#"));
}

/* The engine supplied the session and ended it while Central was away
 * (Central killed before it consumed SESSION_STARTED and SUPPLY_END): the
 * session offered again is refused as "ended", and it stays open for the
 * SUPPLY_END on its way, which bills it (chaos_billing: 0.046 kWh metered,
 * billed 0 as SESSION_CANCELLED). */
static void test_reoffer_refused_ended_waits_for_supply_end(void **state)
{
	(void)state;
	reg(1, "MAD-01");
	struct msg m = request("101", "MAD-01", NOW);
	kafka(&m);
	char sid[MSG_ID_MAX + 1];
	xstrlcpy(sid, stored_session()->id, sizeof sid);
	frame(1, "ACK#AUTORIZAR_SUMINISTRO");
	assert_int_equal(count_produce(MSG_AUTH_OK), 1);
	link_down(1);
	NOW += 2;
	reg(2, "MAD-01");
	assert_non_null(send_prefix("AUTORIZAR_SUMINISTRO#101#"));
	frame(2, "NACK#AUTORIZAR_SUMINISTRO#ended: this session was supplied and has ended here");
	assert_int_equal(count_produce(MSG_SESSION_CANCELLED), 0);
	assert_non_null(core_cp_find(C, "MAD-01")->session);
	struct msg t = tele(MSG_SUPPLY_END, "MAD-01", "101", sid, 5, 0.046);
	kafka(&t);
	const struct msg *tk = produced(MSG_TICKET);
	assert_non_null(tk);
	assert_true(tk->kwh == 0.046);
	assert_int_equal(stored_session()->outcome, CORE_OUT_TICKET);
}

/* --link-grace 0: the Release-1 rule, a session ends with its link. */
static void test_link_down_no_grace(void **state)
{
	(void)state;
	core_free(C);
	struct core_config cfg;
	core_config_defaults(&cfg);
	cfg.link_grace = 0;
	C = core_new(&cfg);
	core_add_driver(C, "101");
	char sid[MSG_ID_MAX + 1];
	charging(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 2, 2.0);
	kafka(&t);
	link_down(1);
	const struct msg *e = produced(MSG_SUPPLY_ERROR);
	assert_non_null(e);
	assert_string_equal(e->reason, "link to CP lost");
	assert_true(e->kwh_partial == 2.0 && e->importe_partial == 0.5);
	assert_int_equal(state_of("MAD-01"), CP_DESCONECTADO);
	/* the engine's own CONEXION_PERDIDA comes later: nothing more */
	t = tele(MSG_CONEXION_PERDIDA, "MAD-01", "101", sid, 3, 2.1);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
}

static void test_conexion_perdida(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	charging(1, "MAD-01", "101", sid);
	struct msg t = tele(MSG_CONEXION_PERDIDA, "MAD-01", "101", sid, 2, 1.0);
	snprintf(t.component, sizeof(t.component), "MONITOR");
	kafka(&t);
	const struct msg *e = produced(MSG_SUPPLY_ERROR);
	assert_non_null(e);
	assert_non_null(strstr(e->reason, "MONITOR"));
	assert_true(e->kwh_partial == 1.0);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
}

static void test_restart_recovery(void **state)
{
	(void)state;
	struct core_session s;
	memset(&s, 0, sizeof(s));
	snprintf(s.id, sizeof(s.id), "MAD-01-1-1");
	snprintf(s.cp_id, sizeof(s.cp_id), "MAD-01");
	snprintf(s.driver_id, sizeof(s.driver_id), "101");
	s.price = 0.25;
	s.kwh = 3.0;
	s.last_seq = 8;
	s.started_at = T0 - 50;
	s.charging = 1;
	s.acked = 1;
	core_load_cp(C, "MAD-01", "x", 0.25, 0);
	core_fxlist_clear(&FX);
	core_recover_session(C, &s, clk(), &FX);
	check_fx();
	/* kept: the engine may still be supplying */
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_non_null(find_log(LOG_INFO, "kept after Central's restart"));
	assert_non_null(core_cp_find(C, "MAD-01")->session);
	assert_int_equal(state_of("MAD-01"), CP_DESCONECTADO);
	/* a replay of what was applied before the crash changes nothing */
	struct msg t = tele(MSG_CONSUMO, "MAD-01", "101", "MAD-01-1-1", 8, 3.0);
	kafka(&t);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	/* the engine's end of supply, delivered after the restart, bills what
	 * it metered */
	NOW += 30;
	t = tele(MSG_SUPPLY_END, "MAD-01", "101", "MAD-01-1-1", 9, 4.0);
	kafka(&t);
	const struct msg *e = produced(MSG_TICKET);
	assert_non_null(e);
	assert_string_equal(e->session_id, "MAD-01-1-1");
	assert_true(e->kwh == 4.0 && e->importe == 1.0);
	assert_true(e->started_at == T0 - 50);
	assert_true(e->ended_at == NOW); /* started + the monotonic duration */
	assert_int_equal(stored_session()->outcome, CORE_OUT_TICKET);

	/* its CP does not come back, but the engine goes on metering: the
	 * session waits as long as telemetry comes, and the watchdog ends it
	 * with the last figures once it stops */
	snprintf(s.id, sizeof(s.id), "MAD-01-1-2");
	s.kwh = 1.0;
	s.last_seq = 3;
	core_fxlist_clear(&FX);
	core_recover_session(C, &s, clk(), &FX);
	for (int i = 0; i < 12; i++) {
		NOW += 5;
		t = tele(MSG_CONSUMO, "MAD-01", "101", "MAD-01-1-2", 4 + (uint64_t)i, 1.1 + 0.1 * i);
		kafka(&t);
		tick();
		assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 0);
	}
	NOW += 10;
	tick();
	e = produced(MSG_SUPPLY_ERROR);
	assert_non_null(e);
	assert_true(fabs(e->kwh_partial - 2.2) < 1e-9);

	/* a reservation: waits the recovery grace (45 s), then cancelled */
	snprintf(s.id, sizeof(s.id), "MAD-01-1-4");
	s.kwh = 0;
	s.started_at = 0;
	s.charging = 0;
	core_fxlist_clear(&FX);
	core_recover_session(C, &s, clk(), &FX);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	NOW += 44;
	tick();
	assert_int_equal(count_produce(MSG_SESSION_CANCELLED), 0);
	NOW += 1;
	tick();
	assert_int_equal(count_produce(MSG_SESSION_CANCELLED), 1);

	/* one never started, on a CP nobody knows: cancelled at once */
	snprintf(s.id, sizeof(s.id), "MAD-09-1-3");
	snprintf(s.cp_id, sizeof(s.cp_id), "MAD-09");
	s.kwh = 0;
	s.started_at = 0;
	s.charging = 0;
	core_fxlist_clear(&FX);
	core_recover_session(C, &s, clk(), &FX);
	check_fx();
	assert_int_equal(count_produce(MSG_SESSION_CANCELLED), 1);
	assert_int_equal(count_produce(MSG_SUPPLY_ERROR), 0);
	/* one already ended: nothing */
	s.outcome = CORE_OUT_TICKET;
	core_fxlist_clear(&FX);
	core_recover_session(C, &s, clk(), &FX);
	check_fx();
	assert_int_equal(FX.n, 0);
	/* the driver may charge again */
	reg(1, "MAD-01");
	struct msg m = request("101", "MAD-01", NOW);
	kafka(&m);
	assert_non_null(send_prefix("AUTORIZAR_SUMINISTRO#101#"));
}

static void test_session_ids_unique(void **state)
{
	(void)state;
	char a[MSG_ID_MAX + 1], b[MSG_ID_MAX + 1];
	reg(1, "MAD-01");
	authorise(1, "MAD-01", "101", a);
	frame(1, "FAULT#MAD-01");
	frame(1, "RECOVER#MAD-01");
	authorise(1, "MAD-01", "102", b); /* same NOW */
	assert_string_not_equal(a, b);
}

/* ---- views ---- */

static void test_views_and_status(void **state)
{
	(void)state;
	core_load_cp(C, "C3", "three", 0.3, 0);
	reg(1, "B2");
	core_load_cp(C, "A1", "one", 0.1, 1);
	frame(1, "FAULT#B2");
	assert_int_equal(core_cp_count(C), 3);
	assert_string_equal(core_cp_at(C, 0)->id, "A1");
	assert_string_equal(core_cp_at(C, 1)->id, "B2");
	assert_string_equal(core_cp_at(C, 2)->id, "C3");
	assert_null(core_cp_at(C, 3));
	assert_null(core_cp_find(C, "D4"));
	struct msg st;
	core_network_status(C, NOW, &st);
	assert_int_equal(st.type, MSG_NETWORK_STATUS_UPDATE);
	assert_int_equal(st.ncps, 3);
	assert_true(st.timestamp == NOW);
	assert_string_equal(st.cps[0].id, "A1");
	assert_string_equal(st.cps[0].status, "DESCONECTADO");
	assert_string_equal(st.cps[1].status, "AVERIADO");
	assert_string_equal(st.cps[1].location, "C/ Serrano 10");
	assert_true(st.cps[2].price == 0.3);
	msg_free(&st);
	size_t counts[CP_STATE_COUNT];
	core_cp_state_counts(C, counts);
	assert_int_equal(counts[CP_DESCONECTADO], 2);
	assert_int_equal(counts[CP_AVERIADO], 1);
	assert_int_equal(counts[CP_ACTIVADO], 0);
}

static void test_parse_command(void **state)
{
	(void)state;
	int cmd;
	char cp[MSG_CP_ID_MAX + 1], err[EVC_ERR_LEN];
	assert_int_equal(core_parse_command("P MAD-01", &cmd, cp, err), 0);
	assert_int_equal(cmd, CORE_CMD_STOP);
	assert_string_equal(cp, "MAD-01");
	assert_int_equal(core_parse_command("  parar   MAD-02\n", &cmd, cp, err), 0);
	assert_int_equal(cmd, CORE_CMD_STOP);
	assert_string_equal(cp, "MAD-02");
	assert_int_equal(core_parse_command("r x", &cmd, cp, err), 0);
	assert_int_equal(cmd, CORE_CMD_RESUME);
	assert_int_equal(core_parse_command("Reanudar x", &cmd, cp, err), 0);
	assert_int_equal(cmd, CORE_CMD_RESUME);
	assert_int_equal(core_parse_command("pt", &cmd, cp, err), 0);
	assert_int_equal(cmd, CORE_CMD_STOP_ALL);
	assert_int_equal(core_parse_command("PARAR_TODOS", &cmd, cp, err), 0);
	assert_int_equal(cmd, CORE_CMD_STOP_ALL);
	assert_int_equal(core_parse_command("RT", &cmd, cp, err), 0);
	assert_int_equal(cmd, CORE_CMD_RESUME_ALL);
	assert_int_equal(core_parse_command("reanudar_todos", &cmd, cp, err), 0);
	assert_int_equal(cmd, CORE_CMD_RESUME_ALL);
	assert_int_equal(core_parse_command("q", &cmd, cp, err), 0);
	assert_int_equal(cmd, -1);
	assert_int_equal(core_parse_command("QUIT", &cmd, cp, err), 0);
	assert_int_equal(cmd, -1);
	assert_int_equal(core_parse_command("P", &cmd, cp, err), -1);
	assert_non_null(strstr(err, "needs a CP id"));
	assert_int_equal(core_parse_command("P a b", &cmd, cp, err), -1);
	assert_int_equal(core_parse_command("P bad#id", &cmd, cp, err), -1);
	assert_non_null(strstr(err, "invalid CP id"));
	assert_int_equal(core_parse_command("PT x", &cmd, cp, err), -1);
	assert_int_equal(core_parse_command("", &cmd, cp, err), -1);
	assert_int_equal(core_parse_command("   ", &cmd, cp, err), -1);
	assert_int_equal(core_parse_command("FLY away", &cmd, cp, err), -1);
	assert_non_null(strstr(err, "unknown command 'FLY'"));
	char big[1000];
	memset(big, 'P', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(core_parse_command(big, &cmd, cp, err), -1);
}

/* ---- scale: indexes stay right under many CPs, links and removals ---- */

static void test_many_cps(void **state)
{
	(void)state;
	enum { N = 10000 };
	char id[40], data[96];
	for (unsigned i = 0; i < N; i++) {
		/* not in id order, so inserts land everywhere */
		unsigned k = (i * 7919u) % N;
		snprintf(id, sizeof(id), "CP-%05u", k);
		snprintf(data, sizeof(data), "REGISTER#%s#loc#0.25", id);
		frame(1000 + k, data);
		assert_true(send_index(1000 + k, "REGISTER_RESULT#FIRST") >= 0);
	}
	assert_int_equal(core_cp_count(C), N);
	for (size_t i = 1; i < N; i++)
		assert_true(strcmp(core_cp_at(C, i - 1)->id, core_cp_at(C, i)->id) < 0);
	/* drop every third link, then check every conn still maps right */
	for (unsigned k = 0; k < N; k += 3)
		link_down(1000 + k);
	for (unsigned k = 0; k < N; k++) {
		snprintf(id, sizeof(id), "CP-%05u", k);
		snprintf(data, sizeof(data), "FAULT#%s", id);
		frame(1000 + k, data);
		if (k % 3 == 0) {
			assert_true(send_index(1000 + k, "ERROR#not registered: send REGISTER first") >= 0);
			assert_int_equal(state_of(id), CP_DESCONECTADO);
		} else {
			assert_int_equal(count_kind(CORE_FX_SEND), 0);
			assert_int_equal(state_of(id), CP_AVERIADO);
		}
	}
	size_t counts[CP_STATE_COUNT];
	core_cp_state_counts(C, counts);
	assert_int_equal(counts[CP_DESCONECTADO], (N + 2) / 3);
	assert_int_equal(counts[CP_AVERIADO], N - (N + 2) / 3);
	/* stop all: one PARAR per live link, and the list gives the memory back */
	char err[EVC_ERR_LEN];
	assert_int_equal(command(CORE_CMD_STOP_ALL, NULL, err), 0);
	assert_int_equal(count_kind(CORE_FX_SEND), N - (N + 2) / 3);
	const struct core_fx *l = find_log(LOG_WARN, "not reachable (link down): CP-00000, CP-00003");
	assert_non_null(l);
	assert_non_null(strstr(l->u.log.text, "and 3326 more"));
	assert_true(FX.cap > 1024);
	core_fxlist_clear(&FX);
	assert_true(FX.cap <= 1024);
	frame(1001, "ACK#PARAR");
	assert_int_equal(state_of("CP-00001"), CP_FUERA_DE_SERVICIO);
}

/* Sessions and drivers indexes under many inserts and removals in a
 * scrambled order: every open session still answers, every ended one never. */
static void test_many_sessions(void **state)
{
	(void)state;
	enum { N = 3000 };
	static char sids[N][MSG_ID_MAX + 1];
	static int ended[N];
	char id[40], user[40], data[96];
	core_load_cp(C, "ZZ", "never connected", 0.5, 0);
	for (unsigned i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "S-%04u", i);
		snprintf(user, sizeof(user), "u%u", i);
		core_add_driver(C, user);
		snprintf(data, sizeof(data), "REGISTER#%s#loc#0.5", id);
		frame(100 + i, data);
		struct msg m = request(user, id, NOW);
		kafka(&m);
		assert_non_null(stored_session());
		xstrlcpy(sids[i], stored_session()->id, sizeof(sids[i]));
		ended[i] = 0;
	}
	for (unsigned r = 0; r < N / 2; r++) {
		unsigned i = (r * 2654435761u) % N;
		if (ended[i])
			continue;
		snprintf(id, sizeof(id), "S-%04u", i);
		snprintf(user, sizeof(user), "u%u", i);
		struct msg t = tele(MSG_SUPPLY_END, id, user, sids[i], 1, 2.0);
		kafka(&t);
		assert_int_equal(count_produce(MSG_TICKET), 1);
		assert_true(produced(MSG_TICKET)->importe == 1.0);
		ended[i] = 1;
	}
	for (unsigned i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "S-%04u", i);
		snprintf(user, sizeof(user), "u%u", i);
		struct msg t = tele(MSG_CONSUMO, id, user, sids[i], 2, 1.0);
		kafka(&t);
		assert_int_equal(count_produce(MSG_CONSUMO_UPDATE), ended[i] ? 0 : 1);
		assert_int_equal(state_of(id), ended[i] ? CP_ACTIVADO : CP_SUMINISTRANDO);
		/* a driver with an ended session may ask again; an open one may not */
		struct msg m = request(user, "ZZ", NOW);
		kafka(&m);
		const struct msg *d = produced(MSG_AUTH_DENIED);
		assert_non_null(d);
		if (ended[i])
			assert_string_equal(d->reason, "CP ZZ is DESCONECTADO");
		else
			assert_non_null(strstr(d->reason, "already has an open session"));
	}
}

/* ---- random event storms: the invariants hold whatever the order ---- */

static uint64_t rng_state;

static unsigned rnd(unsigned n)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)((rng_state >> 33) % n);
}

#define MAX_TRACK 4096
static char track_id[MAX_TRACK][MSG_ID_MAX + 1];
static int track_stored_end[MAX_TRACK], track_notified_end[MAX_TRACK];
static size_t ntrack;

static long track_find(const char *id)
{
	for (size_t i = 0; i < ntrack; i++)
		if (strcmp(track_id[i], id) == 0)
			return (long)i;
	return -1;
}

/* Record the sessions created and ended by the last event, and check the
 * state of every CP against its facts. */
static void track_and_check(void)
{
	for (size_t i = 0; i < FX.n; i++) {
		const struct core_fx *f = &FX.v[i];
		if (f->kind == CORE_FX_STORE_SESSION) {
			long k = track_find(f->u.session.id);
			if (k < 0) {
				assert_true(ntrack < MAX_TRACK);
				assert_int_equal(f->u.session.outcome, CORE_OUT_OPEN); /* first seen open */
				k = (long)ntrack++;
				xstrlcpy(track_id[k], f->u.session.id, sizeof(track_id[k]));
				track_stored_end[k] = track_notified_end[k] = 0;
			}
			if (f->u.session.outcome != CORE_OUT_OPEN) {
				track_stored_end[k]++;
				assert_true(f->u.session.importe == round(f->u.session.kwh * f->u.session.price * 100.0) / 100.0);
			}
		}
		if (f->kind == CORE_FX_PRODUCE && f->u.produce.has_session_id &&
		    (f->u.produce.type == MSG_TICKET || f->u.produce.type == MSG_SUPPLY_ERROR ||
		     f->u.produce.type == MSG_SESSION_CANCELLED || f->u.produce.type == MSG_AUTH_DENIED)) {
			long k = track_find(f->u.produce.session_id);
			assert_true(k >= 0);
			track_notified_end[k]++;
		}
	}
	for (size_t i = 0; i < core_cp_count(C); i++) {
		const struct core_cp *cp = core_cp_at(C, i);
		enum cp_state want = !cp->link_up ? CP_DESCONECTADO
				       : cp->stopped ? CP_FUERA_DE_SERVICIO
				       : cp->fault || cp->engine_fault ? CP_AVERIADO
				       : cp->session && cp->session->charging ? CP_SUMINISTRANDO
				       : cp->session ? CP_RESERVADO
						     : CP_ACTIVADO;
		assert_int_equal(cp->state, want);
		if (cp->session) {
			assert_string_equal(cp->session->cp_id, cp->id);
			assert_int_equal(cp->session->outcome, CORE_OUT_OPEN);
			/* a session outlives its link only during the grace */
			assert_true(cp->link_up || cp->grace_until > 0);
		}
		if (cp->grace_until > 0) {
			assert_false(cp->link_up);
			assert_non_null(cp->session);
		}
	}
}

static void storm(uint64_t seed)
{
	static const char *cps[] = { "A", "B", "C", "D" };
	static const char *users[] = { "101", "102", "103", "999" };
	static const char *cmds[] = { "PARAR", "REANUDAR", "AUTORIZAR_SUMINISTRO", "X" };
	static const enum msg_type tt[] = { MSG_SESSION_STARTED, MSG_CONSUMO, MSG_CONSUMO, MSG_CONSUMO,
					    MSG_SUPPLY_END, MSG_AVERIADO, MSG_CONEXION_PERDIDA };
	char data[160], err[EVC_ERR_LEN];
	rng_state = seed;
	ntrack = 0;
	core_add_driver(C, "103");
	for (int ev = 0; ev < 20000; ev++) {
		uint64_t conn = 1 + rnd(6);
		const char *cp = cps[rnd(4)];
		switch (rnd(12)) {
		case 0:
			snprintf(data, sizeof(data), "REGISTER#%s#loc %u#0.%u", cp, rnd(9), 1 + rnd(99));
			frame(conn, data);
			break;
		case 1:
			if (rnd(16) == 0)
				link_down(conn);
			else
				frame(conn, "HEARTBEAT#A");
			break;
		case 2:
			snprintf(data, sizeof(data), "%s#%s", rnd(4) ? "RECOVER" : "FAULT", cp);
			frame(conn, data);
			break;
		case 3:
			snprintf(data, sizeof(data), "%s#%s%s", rnd(3) ? "ACK" : "NACK", cmds[rnd(4)],
				 rnd(2) ? "#busy" : "");
			frame(conn, data);
			break;
		case 4:
			snprintf(data, sizeof(data), "%s#%s", rnd(2) ? "CHECK_SESSION" : "FOO", cp);
			frame(conn, data);
			break;
		case 5:
		case 6: {
			struct msg m = request(users[rnd(4)], cp, NOW - rnd(80));
			kafka(&m);
			break;
		}
		case 7:
		case 8:
		case 9: {
			/* telemetry for a session seen so far (open or ended) */
			if (!ntrack)
				break;
			/* mostly the newest, which are likely still open */
			long k = rnd(4) ? (long)ntrack - 1 - (long)rnd(ntrack < 4 ? (unsigned)ntrack : 4u)
					: (long)rnd((unsigned)ntrack);
			const char *sid = track_id[k];
			char scp[MSG_CP_ID_MAX + 1];
			snprintf(scp, sizeof(scp), "%.*s", (int)(strchr(sid, '-') - sid), sid);
			const char *user = "101";
			const struct core_cp *p = core_cp_find(C, scp);
			if (p && p->session && strcmp(p->session->id, sid) == 0)
				user = p->session->driver_id;
			struct msg t = tele(tt[rnd(7)], scp, user, sid, 1 + rnd(12), rnd(50) / 10.0);
			kafka(&t);
			break;
		}
		case 10: {
			enum core_cmd c = (enum core_cmd)rnd(4);
			command(c, cp, err);
			break;
		}
		default:
			if (rnd(2)) {
				struct msg q;
				msg_init(&q, MSG_DRIVER_QUIT);
				xstrlcpy(q.user_id, users[rnd(4)], sizeof(q.user_id));
				kafka(&q);
			} else {
				NOW += rnd(40);
				tick();
			}
			break;
		}
		track_and_check();
	}
	/* Every link goes down and the grace runs out: every session must now
	 * have ended exactly once. */
	for (uint64_t conn = 1; conn <= 6; conn++) {
		link_down(conn);
		track_and_check();
	}
	NOW += 11;
	tick();
	track_and_check();
	assert_true(ntrack > 20);
	for (size_t k = 0; k < ntrack; k++) {
		if (track_stored_end[k] != 1 || track_notified_end[k] != 1)
			fail_msg("session %s: stored end %d times, driver told %d times", track_id[k],
				 track_stored_end[k], track_notified_end[k]);
	}
}

static void test_storm_1(void **state)
{
	(void)state;
	storm(1);
}

static void test_storm_2(void **state)
{
	(void)state;
	storm(0xC0FFEE);
}

/* The identity a coalesced effect is compared by ("" for the others). */
static const char *coalesce_key(const struct core_fx *f, int *kind)
{
	*kind = 0;
	if (f->kind == CORE_FX_STORE_SESSION) {
		*kind = 1;
		return f->u.session.id;
	}
	if (f->kind == CORE_FX_PRODUCE && f->u.produce.type == MSG_CONSUMO_UPDATE) {
		*kind = 2;
		return f->u.produce.session_id;
	}
	if (f->kind == CORE_FX_SCREEN) {
		*kind = 3;
		return f->u.screen.cp_id;
	}
	return "";
}

/* A backlog applied in one turn (evcharging(7) RULES): one CONSUMO_UPDATE
 * per session (the latest, where the last one was), one sessions row, one
 * card redraw per CP; every other effect (the FAULT's SUPPLY_ERROR and
 * state change, the TICKET, frames, logs) stays, in order. */
static void test_coalesce_backlog(void **state)
{
	(void)state;
	char s1[MSG_ID_MAX + 1], s2[MSG_ID_MAX + 1];
	charging(1, "MAD-01", "101", s1);
	reg(2, "MAD-02");
	authorise(2, "MAD-02", "102", s2);

	/* One turn: nothing cleared between the events. */
	core_fxlist_clear(&FX);
	struct msg t;
	for (uint64_t q = 1; q <= 6; q++) {
		t = tele(MSG_CONSUMO, "MAD-01", "101", s1, q + 1, (double)q);
		core_on_kafka(C, &t, clk(), &FX);
		if (q <= 4) { /* MAD-02's first CONSUMO starts its supply */
			t = tele(MSG_CONSUMO, "MAD-02", "102", s2, q, 10.0 * (double)q);
			core_on_kafka(C, &t, clk(), &FX);
		}
		if (q == 4)
			core_on_frame(C, 2, "FAULT#MAD-02#pump", clk(), &FX);
	}
	t = tele(MSG_SUPPLY_END, "MAD-01", "101", s1, 8, 6.0);
	core_on_kafka(C, &t, clk(), &FX);
	check_fx();

	/* What must be left, worked out from the list before. */
	size_t n0 = FX.n;
	struct core_fx *before = xmalloc(n0 * sizeof *before);
	memcpy(before, FX.v, n0 * sizeof *before);
	unsigned char *keep = xmalloc(n0);
	size_t nkeep = 0;
	for (size_t i = 0; i < n0; i++) {
		int ki, kj;
		const char *id = coalesce_key(&before[i], &ki);
		keep[i] = 1;
		for (size_t j = i + 1; ki && j < n0; j++)
			if (strcmp(coalesce_key(&before[j], &kj), id) == 0 && kj == ki)
				keep[i] = 0;
		nkeep += keep[i];
	}
	assert_true(nkeep < n0);
	struct hmap scratch;
	hmap_init(&scratch);
	assert_int_equal(core_fxlist_coalesce(&FX, &scratch), n0 - nkeep);
	assert_int_equal(FX.n, nkeep);
	for (size_t i = 0, o = 0; i < n0; i++) {
		if (!keep[i])
			continue;
		int ka, kb;
		assert_int_equal(FX.v[o].kind, before[i].kind);
		assert_true(FX.v[o].ts == before[i].ts);
		assert_string_equal(coalesce_key(&FX.v[o], &ka), coalesce_key(&before[i], &kb));
		assert_string_equal(fx_text(&FX.v[o]), fx_text(&before[i]));
		if (FX.v[o].kind == CORE_FX_PRODUCE) {
			assert_int_equal(FX.v[o].u.produce.type, before[i].u.produce.type);
			assert_true(FX.v[o].u.produce.kwh == before[i].u.produce.kwh);
		}
		o++;
	}

	/* Each session: one CONSUMO_UPDATE, the latest, before its end. */
	long upd1 = -1, upd2 = -1, ticket = -1, serr = -1;
	size_t rows = 0, screens1 = 0;
	for (size_t i = 0; i < FX.n; i++) {
		const struct core_fx *f = &FX.v[i];
		if (f->kind == CORE_FX_STORE_SESSION)
			rows++;
		if (f->kind == CORE_FX_SCREEN && strcmp(f->u.screen.cp_id, "MAD-01") == 0)
			screens1++;
		if (f->kind != CORE_FX_PRODUCE)
			continue;
		const struct msg *m = &f->u.produce;
		if (m->type == MSG_CONSUMO_UPDATE && strcmp(m->session_id, s1) == 0) {
			assert_int_equal(upd1, -1);
			upd1 = (long)i;
			assert_true(m->kwh == 6.0);
		} else if (m->type == MSG_CONSUMO_UPDATE) {
			assert_int_equal(upd2, -1);
			upd2 = (long)i;
			assert_true(m->kwh == 40.0); /* the last before the FAULT */
		} else if (m->type == MSG_TICKET) {
			ticket = (long)i;
			assert_true(m->kwh == 6.0);
		} else if (m->type == MSG_SUPPLY_ERROR) {
			serr = (long)i;
			assert_true(m->kwh_partial == 40.0);
		}
	}
	assert_true(upd1 >= 0 && ticket > upd1);
	assert_true(upd2 >= 0 && serr > upd2);
	assert_int_equal(rows, 2);
	assert_int_equal(screens1, 1);
	/* The last row of each session is the ended one. */
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_STORE_SESSION)
			assert_int_not_equal(FX.v[i].u.session.outcome, CORE_OUT_OPEN);

	/* Nothing left to coalesce: the list is untouched. */
	size_t n1 = FX.n;
	assert_int_equal(core_fxlist_coalesce(&FX, &scratch), 0);
	assert_int_equal(FX.n, n1);
	hmap_free(&scratch);
	free(keep);
	free(before);
}

/* ---- the weather rule (evcharging(7) RULES, Weather) ---- */

/* A reading from the weather office; returns the city's alert after it
 * (fails the test if the reading is refused). */
static int weather(const char *city, double temp)
{
	char err[EVC_ERR_LEN];
	int alert = -1;
	core_fxlist_clear(&FX);
	int r = core_on_weather(C, city, 0, temp, NULL, "weather", NULL, clk(), &FX, &alert, err);
	check_fx();
	if (r != 0)
		fail_msg("reading %s %.1f refused: %s", city, temp, err);
	assert_true(alert == 0 || alert == 1);
	return alert;
}

/* A reading the core must refuse; err says why. */
static void weather_refused(const char *city, int has_error, double temp, const char *err_part)
{
	char err[EVC_ERR_LEN];
	int alert = -1;
	core_fxlist_clear(&FX);
	assert_int_equal(core_on_weather(C, city, has_error, temp, "x", "weather", NULL, clk(), &FX, &alert, err), -1);
	if (!strstr(err, err_part))
		fail_msg("refusal '%s' lacks '%s'", err, err_part);
	assert_int_equal(alert, -1);
	assert_int_equal(FX.n, 0);
}

static void reg_at(uint64_t conn, const char *id, const char *location)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "REGISTER#%s#%s#0.25", id, location);
	frame(conn, buf);
}

static size_t count_send(const char *text)
{
	size_t n = 0;
	for (size_t i = 0; i < FX.n; i++)
		n += FX.v[i].kind == CORE_FX_SEND && strcmp(fx_text(&FX.v[i]), text) == 0;
	return n;
}

static const char *caption_of(const char *id)
{
	static struct cp_view v;
	view_cp(core_cp_find(C, id), &v);
	return v.caption;
}

static void test_weather_city_match(void **state)
{
	(void)state;
	assert_true(core_location_names_city("C/ Serrano 10, MADRID", "madrid"));
	assert_true(core_location_names_city("Madrid", "Madrid"));
	assert_true(core_location_names_city("Madrid-Barajas T4", "MADRID"));
	assert_true(core_location_names_city("(madrid)", "Madrid"));
	assert_false(core_location_names_city("Madridejos", "Madrid"));
	assert_false(core_location_names_city("Calle Madridejos 3", "Madrid"));
	assert_false(core_location_names_city("NuevaMadrid", "Madrid"));
	assert_false(core_location_names_city("Madrid2", "Madrid"));
	/* accented letters are letters: no match inside a word */
	assert_false(core_location_names_city("M\xc3\xa1laga", "laga"));
	assert_false(core_location_names_city("Madrid\xc3\xa1", "Madrid"));
	assert_false(core_location_names_city("Logro\xc3\xb1o", "Logro"));
	assert_true(core_location_names_city("Paseo M\xc3\xa1laga 2", "M\xc3\xa1laga"));
	/* and fold as ASCII does: M\u00c1LAGA, LOGRO\u00d1O, A CORU\u00d1A, \u00c1VILA */
	assert_true(core_location_names_city("Paseo M\xc3\x81LAGA 2", "M\xc3\xa1laga"));
	assert_true(core_location_names_city("Av. de la Paz, logro\xc3\xb1o", "LOGRO\xc3\x91O"));
	assert_true(core_location_names_city("R\xc3\xba" "a Real, A CORU\xc3\x91" "A", "A Coru\xc3\xb1" "a"));
	assert_true(core_location_names_city("\xc3\x81vila centro", "\xc3\xa1vila"));
	assert_false(core_location_names_city("Malaga", "M\xc3\xa1laga")); /* a is not \u00e1 */
	/* a decomposed accent (a + U+0301) belongs to its letter */
	assert_false(core_location_names_city("Ma\xcc\x81laga", "Ma"));
	/* non-ASCII punctuation and spaces separate words: en dash, em dash,
	 * no-break space, middle dot, guillemets */
	assert_true(core_location_names_city("Madrid\xe2\x80\x93" "Barajas", "Madrid"));
	assert_true(core_location_names_city("Aeropuerto\xe2\x80\x94Madrid", "madrid"));
	assert_true(core_location_names_city("Madrid\xc2\xa0T4", "Madrid"));
	assert_true(core_location_names_city("Terminal\xc2\xb7Madrid", "Madrid"));
	assert_true(core_location_names_city("\xc2\xabMadrid\xc2\xbb", "MADRID"));
	/* a byte that is not UTF-8 (an old row) counts as a letter, as before */
	assert_false(core_location_names_city("x\xff" "Madrid", "Madrid"));
	/* other scripts' letters are letters */
	assert_false(core_location_names_city("Madrid\xd0\x96", "Madrid"));
	assert_false(core_location_names_city("\xe6\x9d\xb1Madrid", "Madrid"));
	/* the second occurrence counts when the first is inside a word */
	assert_true(core_location_names_city("Madridejos y Madrid", "madrid"));
	assert_true(core_location_names_city("San Sebasti\xc3\xa1n, Gipuzkoa", "San Sebasti\xc3\xa1n"));
	assert_false(core_location_names_city("Madrid", ""));
	assert_false(core_location_names_city("", "Madrid"));
	assert_false(core_location_names_city(NULL, "Madrid"));
	assert_false(core_location_names_city("Madrid", NULL));
	assert_false(core_location_names_city("Madri", "Madrid"));
}

/* A city's readings are one city up to case, accented letters too: the
 * alert of "M\u00e1laga" is not raised again by "M\u00c1LAGA", and "m\u00e1laga"
 * at the threshold clears it for the CP written in capitals. */
static void test_weather_city_accents(void **state)
{
	(void)state;
	reg_at(1, "AGP-01", "Calle Larios 1, M\xc3\x81LAGA");
	reg_at(2, "AGP-02", "Malaga Street 3"); /* not the same word */
	NOW += 4;
	assert_int_equal(weather("M\xc3\xa1laga", -2.0), 1);
	assert_true(send_index(1, "PARAR#CENTRAL") >= 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 1);
	assert_true(core_cp_find(C, "AGP-01")->weather_stop);
	assert_false(core_cp_find(C, "AGP-02")->weather_stop);
	NOW += 4;
	assert_int_equal(weather("M\xc3\x81LAGA", -1.0), 1);
	assert_int_equal(core_weather_count(C), 1);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_null(audit_row("WEATHER_ALERT"));
	NOW += 4;
	assert_int_equal(weather("m\xc3\xa1laga", 0.0), 0);
	assert_int_equal(core_weather_count(C), 1);
	assert_false(core_cp_find(C, "AGP-01")->weather_stop);
	assert_non_null(audit_row("WEATHER_CLEAR"));
}

/* Alert and clear: PARAR to the CPs whose location names the city, and
 * only to them; FUERA_DE_SERVICIO "Weather alert" on the ACK; REANUDAR
 * when a reading at or above the threshold comes. */
static void test_weather_alert_and_clear(void **state)
{
	(void)state;
	reg_at(1, "MAD-01", "C/ Serrano 10, MADRID");
	reg_at(2, "MAD-02", "Madridejos");
	reg_at(3, "BCN-01", "Barcelona");
	assert_int_equal(weather("Madrid", 1.5), 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_null(audit_row("WEATHER_ALERT"));
	assert_int_equal(core_weather_count(C), 1);
	assert_true(core_weather_threshold(C) == 0.0);

	NOW += 4;
	assert_int_equal(weather("Madrid", -2.0), 1);
	assert_true(send_index(1, "PARAR#CENTRAL") >= 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 1); /* not Madridejos, not Barcelona */
	const struct core_fx *a = audit_row("WEATHER_ALERT");
	assert_non_null(a);
	assert_string_equal(a->u.audit.actor, "weather");
	assert_non_null(strstr(a->u.audit.detail, "Madrid"));
	assert_non_null(strstr(a->u.audit.detail, "-2.0 C"));
	assert_non_null(strstr(a->u.audit.detail, "threshold 0.0 C"));
	assert_non_null(strstr(a->u.audit.detail, "MAD-01"));
	assert_null(strstr(a->u.audit.detail, "MAD-02"));
	assert_non_null(find_log(LOG_WARN, "weather alert in Madrid"));
	assert_true(core_cp_find(C, "MAD-01")->weather_stop);
	assert_false(core_cp_find(C, "MAD-02")->weather_stop);
	const struct core_weather_city *w = core_weather_at(C, 0);
	assert_non_null(w);
	assert_string_equal(w->city, "Madrid");
	assert_true(w->has_temp && w->temp == -2.0 && w->alert);
	assert_true(w->at == NOW);
	assert_null(core_weather_at(C, 1));
	assert_false(core_weather_stale(C, w));
	/* until the CP acknowledges, no driver is sent there */
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	struct msg m = request("101", "MAD-01", NOW);
	kafka(&m);
	assert_non_null(strstr(produced(MSG_AUTH_DENIED)->reason, "weather alert in Madrid"));
	frame(1, "ACK#PARAR");
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	assert_string_equal(caption_of("MAD-01"), "Weather alert");
	/* not stored: the charging_points row keeps stopped = 0 */
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_STORE_CP)
			assert_int_equal(FX.v[i].u.cp.stopped, 0);
	assert_false(core_cp_find(C, "MAD-01")->stopped);
	m = request("102", "MAD-01", NOW);
	kafka(&m);
	assert_non_null(strstr(produced(MSG_AUTH_DENIED)->reason, "FUERA_DE_SERVICIO"));
	/* another cold reading: nothing sent twice, nothing audited again */
	NOW += 4;
	assert_int_equal(weather("MADRID", -3.0), 1);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_null(audit_row("WEATHER_ALERT"));
	assert_int_equal(core_weather_count(C), 1);
	assert_string_equal(core_weather_at(C, 0)->city, "Madrid"); /* as first reported */
	/* stale after 60 s without a reading */
	NOW += 61;
	clk();
	assert_true(core_weather_stale(C, core_weather_at(C, 0)));

	/* at the threshold: cleared */
	assert_int_equal(weather("madrid", 0.0), 0);
	assert_true(send_index(1, "REANUDAR#CENTRAL") >= 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 1);
	a = audit_row("WEATHER_CLEAR");
	assert_non_null(a);
	assert_non_null(strstr(a->u.audit.detail, "0.0 C >= threshold 0.0 C"));
	assert_non_null(strstr(a->u.audit.detail, "resumed: MAD-01"));
	assert_false(core_cp_find(C, "MAD-01")->weather_stop);
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO); /* until the ACK */
	assert_string_equal(caption_of("MAD-01"), "Out of Order");
	frame(1, "ACK#REANUDAR");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	NOW += 4;
	assert_int_equal(weather("Madrid", 5.0), 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_null(audit_row("WEATHER_CLEAR"));
	m = request("101", "MAD-01", NOW);
	kafka(&m);
	assert_non_null(send_prefix("AUTORIZAR_SUMINISTRO#101#"));
}

/* An operator REANUDAR does not clear a weather stop: refused, and the
 * operator is told why. */
static void test_weather_resume_refused(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	reg_at(1, "MAD-01", "Gran Via 1, Madrid");
	weather("Madrid", -2.0);
	frame(1, "ACK#PARAR");
	assert_int_equal(command(CORE_CMD_RESUME, "MAD-01", err), -1);
	assert_string_equal(err, "MAD-01 is held by a weather alert in Madrid (-2.0 C)");
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_non_null(find_log(LOG_WARN, "resumes by itself when the alert clears"));
	assert_int_equal(command(CORE_CMD_RESUME_ALL, NULL, err), -1);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	/* the API's form: the same refusal */
	core_fxlist_clear(&FX);
	assert_int_equal(core_command_as(C, CORE_CMD_RESUME, "MAD-01", "api:ops", "127.0.0.1", clk(), &FX, err), -1);
	assert_non_null(strstr(err, "held by a weather alert in Madrid"));
	assert_true(core_cp_find(C, "MAD-01")->weather_stop);
}

/* An operator stop on a weather-stopped CP is recorded (stored) without a
 * second PARAR, and it still holds after the alert clears. */
static void test_weather_operator_stop_outlives(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	reg_at(1, "MAD-01", "Madrid");
	reg_at(2, "MAD-02", "Madrid");
	weather("Madrid", -2.0);
	assert_int_equal(count_send("PARAR#CENTRAL"), 2);
	frame(1, "ACK#PARAR");
	/* halted: recorded at once */
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_true(core_cp_find(C, "MAD-01")->stopped);
	int stored = 0;
	for (size_t i = 0; i < FX.n; i++)
		if (FX.v[i].kind == CORE_FX_STORE_CP && FX.v[i].u.cp.stopped)
			stored = 1;
	assert_true(stored);
	const struct core_fx *a = audit_row("OPERATOR_STOP");
	assert_non_null(a);
	assert_string_equal(a->u.audit.actor, "operator");
	assert_int_equal(command(CORE_CMD_RESUME, "MAD-01", err), -1);
	assert_non_null(find_log(LOG_WARN, "the operator stop still holds it after the alert"));
	/* its PARAR still on the way: the operator's stop rides on it */
	assert_int_equal(command(CORE_CMD_STOP, "MAD-02", err), 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	frame(2, "ACK#PARAR");
	assert_true(core_cp_find(C, "MAD-02")->stopped);
	assert_int_equal(state_of("MAD-02"), CP_FUERA_DE_SERVICIO);
	assert_string_equal(caption_of("MAD-02"), "Weather alert");
	/* the clear resumes neither */
	weather("Madrid", 4.0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	a = audit_row("WEATHER_CLEAR");
	assert_non_null(a);
	assert_non_null(strstr(a->u.audit.detail, "MAD-01 (operator stop)"));
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	assert_string_equal(caption_of("MAD-01"), "Out of Order");
	/* the operator's REANUDAR does */
	assert_int_equal(command(CORE_CMD_RESUME, "MAD-01", err), 0);
	assert_true(send_index(1, "REANUDAR#CENTRAL") >= 0);
	frame(1, "ACK#REANUDAR");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);

	/* stopped by the operator first: the alert sends no PARAR */
	reg_at(3, "MAD-03", "Madrid");
	assert_int_equal(command(CORE_CMD_STOP, "MAD-03", err), 0);
	frame(3, "ACK#PARAR");
	weather("Madrid", -1.0);
	assert_int_equal(count_send("PARAR#CENTRAL"), 1); /* MAD-01 only */
	assert_true(send_index(1, "PARAR#CENTRAL") >= 0);
	assert_string_equal(caption_of("MAD-03"), "Weather alert");
	/* stop all: the halted ones are recorded, none gets a second PARAR */
	frame(1, "ACK#PARAR");
	assert_false(core_cp_find(C, "MAD-01")->stopped);
	assert_int_equal(command(CORE_CMD_STOP_ALL, NULL, err), 0); /* MAD-01's recorded */
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_true(core_cp_find(C, "MAD-01")->stopped);
	core_fxlist_clear(&FX);
	assert_int_equal(command(CORE_CMD_RESUME_ALL, NULL, err), -1);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
}

/* A fault still holds a CP when the alert clears: REANUDAR waits for the
 * RECOVER. */
static void test_weather_fault_holds(void **state)
{
	(void)state;
	reg_at(1, "MAD-01", "Madrid");
	weather("Madrid", -2.0);
	frame(1, "ACK#PARAR");
	frame(1, "FAULT#MAD-01#sensor");
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	assert_string_equal(caption_of("MAD-01"), "Weather alert");
	weather("Madrid", 2.0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_non_null(strstr(audit_row("WEATHER_CLEAR")->u.audit.detail, "MAD-01 (fault)"));
	assert_int_equal(state_of("MAD-01"), CP_AVERIADO);
	NOW += 4;
	weather("Madrid", 2.5); /* a reading while the fault holds: still nothing */
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	frame(1, "RECOVER#MAD-01");
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 1);
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	frame(1, "ACK#REANUDAR");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);

	/* revoked keys hold it too: REANUDAR after it authenticates again */
	registry_cp("SEC-01"); /* at "Gran Via 1, Madrid" */
	tls_up(5, "10.0.0.7:5301");
	tls_reg(5, "SEC-01", SECRET_A);
	/* loaded at start, in a city reported: told REANUDAR once, since a
	 * weather stop from before a restart is not kept */
	assert_true(send_index(5, "REANUDAR#CENTRAL") >= 0);
	weather("Madrid", -2.0);
	assert_int_equal(count_kind(CORE_FX_SEND), 1); /* MAD-01: SEC-01's waits for the answer */
	frame(5, "ACK#REANUDAR");
	assert_true(send_index(5, "PARAR#CENTRAL") >= 0);
	frame(5, "ACK#PARAR");
	char err[EVC_ERR_LEN];
	assert_int_equal(command(CORE_CMD_REVOKE, "SEC-01", err), 0);
	frame(1, "ACK#PARAR");
	weather("Madrid", 3.0);
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 1); /* MAD-01, not the revoked one */
	assert_true(send_index(1, "REANUDAR#CENTRAL") >= 0);
	assert_non_null(strstr(audit_row("WEATHER_CLEAR")->u.audit.detail, "SEC-01 (keys revoked)"));
	assert_string_equal(caption_of("SEC-01"), "Keys revoked");
	tls_reg(5, "SEC-01", SECRET_A);
	assert_true(send_index(5, "REANUDAR#CENTRAL") >= 0);
	assert_int_equal(count_send("PARAR#CENTRAL"), 0);
	frame(5, "ACK#REANUDAR");
	assert_int_equal(state_of("SEC-01"), CP_ACTIVADO);
}

/* A CP whose link is down at the alert is stopped when it registers, as a
 * pending operator stop is; one whose alert cleared while it was away is
 * resumed when it registers. Never two PARARs for two reasons. */
static void test_weather_link_down_then_register(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	reg_at(1, "MAD-01", "Madrid");
	link_down(1);
	weather("Madrid", -2.0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_non_null(strstr(audit_row("WEATHER_ALERT")->u.audit.detail, "MAD-01 (link down"));
	assert_int_equal(state_of("MAD-01"), CP_DESCONECTADO);
	reg_at(2, "MAD-01", "Madrid");
	assert_true(send_index(2, "REGISTER_RESULT#RECONNECT") >= 0);
	assert_int_equal(count_send("PARAR#CENTRAL"), 1);
	assert_true(send_index(2, "REGISTER_RESULT#RECONNECT") < send_index(2, "PARAR#CENTRAL"));
	frame(2, "ACK#PARAR");
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	/* halted and stopped by the operator too, then a reconnect: one PARAR */
	assert_int_equal(command(CORE_CMD_STOP, "MAD-01", err), 0);
	link_down(2);
	reg_at(3, "MAD-01", "Madrid");
	assert_int_equal(count_send("PARAR#CENTRAL"), 1);
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	frame(3, "ACK#PARAR");
	/* weather alone, halted, reconnect: PARAR again (it may have
	 * restarted), FUERA_DE_SERVICIO at once */
	reg_at(4, "MAD-02", "Madrid");
	assert_int_equal(count_send("PARAR#CENTRAL"), 1);
	frame(4, "ACK#PARAR");
	link_down(4);
	reg_at(5, "MAD-02", "Madrid");
	assert_int_equal(count_send("PARAR#CENTRAL"), 1);
	assert_int_equal(state_of("MAD-02"), CP_FUERA_DE_SERVICIO);
	frame(5, "ACK#PARAR");
	/* the alert clears while it is away: REANUDAR when it registers */
	link_down(5);
	weather("Madrid", 1.0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	reg_at(6, "MAD-02", "Madrid");
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 1);
	assert_int_equal(count_send("PARAR#CENTRAL"), 0);
	frame(6, "ACK#REANUDAR");
	assert_int_equal(state_of("MAD-02"), CP_ACTIVADO);
	/* the operator's stop outlived it on MAD-01 */
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);

	/* a PARAR lost with the link is not the operator's: not stored */
	weather("Madrid", -1.0);
	assert_true(send_index(6, "PARAR#CENTRAL") >= 0);
	link_down(6);
	assert_false(core_cp_find(C, "MAD-02")->stopped);
	weather("Madrid", 1.0);
	reg_at(7, "MAD-02", "Madrid");
	assert_int_equal(count_send("PARAR#CENTRAL"), 0);
	assert_int_equal(state_of("MAD-02"), CP_ACTIVADO);
}

/* A supply in progress ends as an operator stop ends it. */
static void test_weather_supply_ends(void **state)
{
	(void)state;
	char sid[MSG_ID_MAX + 1];
	charging(1, "MAD-01", "101", sid); /* at "C/ Serrano 10" */
	core_fxlist_clear(&FX);
	struct core_reg r;
	memset(&r, 0, sizeof(r));
	xstrlcpy(r.id, "MAD-01", sizeof(r.id));
	xstrlcpy(r.location, "C/ Serrano 10, Madrid", sizeof(r.location));
	core_on_registry(C, &r, clk(), &FX);
	check_fx();
	struct msg t = tele(MSG_CONSUMO, "MAD-01", "101", sid, 2, 3.0);
	kafka(&t);
	char sid2[MSG_ID_MAX + 1];
	reg_at(2, "MAD-02", "Madrid");
	authorise(2, "MAD-02", "102", sid2);
	weather("Madrid", -0.5);
	assert_int_equal(count_send("PARAR#CENTRAL"), 2);
	assert_int_equal(count_kind(CORE_FX_PRODUCE), 0);
	assert_int_equal(state_of("MAD-01"), CP_SUMINISTRANDO);
	frame(1, "ACK#PARAR");
	expect_stopped_supply(sid, "stopped by a weather alert in Madrid (-0.5 C)");

	/* a reservation is cancelled the same way */
	frame(2, "ACK#PARAR");
	assert_string_equal(produced(MSG_SESSION_CANCELLED)->reason, "stopped by a weather alert in Madrid (-0.5 C)");
}

/* A provider error keeps the alert as it was; it is shown, not acted on. */
static void test_weather_error_reading(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	int alert = -1;
	reg_at(1, "MAD-01", "Madrid");
	weather("Madrid", -2.0);
	frame(1, "ACK#PARAR");
	NOW += 4;
	core_fxlist_clear(&FX);
	assert_int_equal(core_on_weather(C, "Madrid", 1, NAN, "timeout", "weather", NULL, clk(), &FX, &alert, err), 0);
	check_fx();
	assert_int_equal(alert, 1);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_int_equal(count_kind(CORE_FX_AUDIT), 0);
	assert_non_null(find_log(LOG_WARN, "no temperature for Madrid: timeout (alert kept)"));
	const struct core_weather_city *w = core_weather_at(C, 0);
	assert_string_equal(w->error, "timeout");
	assert_true(w->has_temp && w->temp == -2.0 && w->alert);
	assert_true(w->at == NOW);
	assert_true(core_cp_find(C, "MAD-01")->weather_stop);
	/* the same error again is not logged again */
	core_fxlist_clear(&FX);
	assert_int_equal(core_on_weather(C, "Madrid", 1, 0, "timeout", "weather", NULL, clk(), &FX, &alert, err), 0);
	assert_int_equal(count_kind(CORE_FX_LOG), 0);
	/* an unknown city with an error: remembered, no alert */
	core_fxlist_clear(&FX);
	assert_int_equal(core_on_weather(C, "Atlantis", 1, 0, "404 city not found", "api:ew", "127.0.0.1", clk(), &FX,
					 &alert, err), 0);
	check_fx();
	assert_int_equal(alert, 0);
	w = core_weather_at(C, 1);
	assert_string_equal(w->city, "Atlantis");
	assert_false(w->has_temp);
	assert_string_equal(w->error, "404 city not found");
	/* a temperature again clears the error */
	weather("Madrid", -1.0);
	assert_string_equal(core_weather_at(C, 0)->error, "");
	assert_int_equal(core_weather_at(C, 0)->alert, 1);
}

/* The threshold changes: every city's alert re-evaluated with its last
 * temperature. */
static void test_weather_threshold(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	reg_at(1, "MAD-01", "Madrid");
	reg_at(2, "BCN-01", "Barcelona");
	assert_int_equal(weather("Madrid", 1.0), 0);
	assert_int_equal(weather("Barcelona", 6.0), 0);
	core_fxlist_clear(&FX);
	assert_int_equal(core_set_weather_threshold(C, 2.5, "api:ops", "127.0.0.1", clk(), &FX, &err[0]), 0);
	check_fx();
	const struct core_fx *a = audit_row("WEATHER_THRESHOLD");
	assert_non_null(a);
	assert_string_equal(a->u.audit.actor, "api:ops");
	assert_string_equal(a->u.audit.source_ip, "127.0.0.1");
	assert_non_null(strstr(a->u.audit.detail, "0.0 C -> 2.5 C"));
	a = audit_row("WEATHER_ALERT");
	assert_non_null(a);
	assert_non_null(strstr(a->u.audit.detail, "Madrid 1.0 C < threshold 2.5 C"));
	assert_true(send_index(1, "PARAR#CENTRAL") >= 0);
	assert_int_equal(count_kind(CORE_FX_SEND), 1);
	assert_true(core_weather_threshold(C) == 2.5);
	assert_int_equal(core_weather_at(C, 0)->alert, 1);
	assert_int_equal(core_weather_at(C, 1)->alert, 0);
	frame(1, "ACK#PARAR");
	/* the next reading is judged by the new threshold */
	assert_int_equal(weather("Barcelona", 2.0), 1);
	assert_true(send_index(2, "PARAR#CENTRAL") >= 0);
	frame(2, "ACK#PARAR");
	core_fxlist_clear(&FX);
	assert_int_equal(core_set_weather_threshold(C, -5, NULL, NULL, clk(), &FX, err), 0);
	check_fx();
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 2);
	assert_string_equal(audit_row("WEATHER_THRESHOLD")->u.audit.actor, "operator");
	assert_non_null(audit_row("WEATHER_CLEAR"));
	/* out of range or not a number: refused, nothing changes */
	double bad[] = { NAN, INFINITY, -INFINITY, 100.01, -100.01 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		core_fxlist_clear(&FX);
		assert_int_equal(core_set_weather_threshold(C, bad[i], "operator", NULL, clk(), &FX, err), -1);
		assert_non_null(strstr(err, "-100 to 100"));
		assert_int_equal(FX.n, 0);
	}
	assert_true(core_weather_threshold(C) == -5.0);
	/* the configured threshold */
	core_free(C);
	struct core_config cfg;
	core_config_defaults(&cfg);
	assert_true(cfg.weather_threshold == 0.0);
	cfg.weather_threshold = -1.5;
	C = core_new(&cfg);
	assert_true(core_weather_threshold(C) == -1.5);
	assert_int_equal(weather("Madrid", -1.0), 0);
	assert_int_equal(weather("Madrid", -1.6), 1);
	core_free(C);
	cfg.weather_threshold = NAN;
	C = core_new(&cfg);
	assert_true(core_weather_threshold(C) == 0.0);
}

/* 64 cities are remembered; a reading for a 65th new one is refused. */
static void test_weather_cities_limit(void **state)
{
	(void)state;
	char city[32];
	for (int i = 0; i < CORE_WEATHER_CITIES; i++) {
		snprintf(city, sizeof(city), "City%d", i);
		assert_int_equal(weather(city, 10.0), 0);
	}
	assert_int_equal(core_weather_count(C), CORE_WEATHER_CITIES);
	weather_refused("City64", 0, 10.0, "64 cities");
	weather_refused("Another", 1, 0, "64 cities");
	/* known ones go on, whatever their case */
	assert_int_equal(weather("CITY7", -3.0), 1);
	assert_int_equal(core_weather_count(C), CORE_WEATHER_CITIES);
	assert_int_equal(core_weather_at(C, 7)->alert, 1);
}

/* Bad readings are refused, never taken half. */
static void test_weather_bad_values(void **state)
{
	(void)state;
	char longname[CORE_CITY_MAX + 2];
	memset(longname, 'a', CORE_CITY_MAX + 1);
	longname[CORE_CITY_MAX + 1] = '\0';
	weather_refused("", 0, 1.0, "empty");
	weather_refused(NULL, 0, 1.0, "empty");
	weather_refused(longname, 0, 1.0, "longer than 63");
	weather_refused("Mad\nrid", 0, 1.0, "control character");
	weather_refused("Mad\x7frid", 0, 1.0, "control character");
	weather_refused("Mad\xffrid", 0, 1.0, "UTF-8");
	weather_refused("M\xc3", 0, 1.0, "UTF-8");
	weather_refused(" - ", 0, 1.0, "no letter");
	weather_refused("\xe2\x80\x94\xc2\xa0\xc2\xb7", 0, 1.0, "no letter"); /* em dash, no-break space, middle dot */
	weather_refused("Mad\xc2\x85rid", 0, 1.0, "control character");     /* U+0085, a C1 control */
	weather_refused("-\xcc\x81", 0, 1.0, "no letter");                    /* a combining accent alone */
	weather_refused("Madrid", 0, NAN, "-100 to 100");
	weather_refused("Madrid", 0, INFINITY, "-100 to 100");
	weather_refused("Madrid", 0, -INFINITY, "-100 to 100");
	weather_refused("Madrid", 0, 100.5, "-100 to 100");
	weather_refused("Madrid", 0, -100.5, "-100 to 100");
	assert_int_equal(core_weather_count(C), 0);
	longname[CORE_CITY_MAX] = '\0';
	assert_int_equal(weather(longname, 100.0), 0);
	assert_int_equal(weather("M\xc3\xa1laga", -100.0), 1);
	assert_int_equal(core_weather_count(C), 2);
	/* an error text with control bytes is kept printable */
	char err[EVC_ERR_LEN];
	int alert;
	core_fxlist_clear(&FX);
	assert_int_equal(core_on_weather(C, "Madrid", 1, 0, "bad\x01json\xff", NULL, NULL, clk(), &FX, &alert, err), 0);
	check_fx();
	assert_string_equal(core_weather_at(C, 2)->error, "bad?json?");
}

/* A CP added while its city is alerted gets the stop too; one moved out of
 * the city loses it. */
static void test_weather_new_cp_in_alerted_city(void **state)
{
	(void)state;
	weather("Madrid", -2.0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_non_null(strstr(audit_row("WEATHER_ALERT")->u.audit.detail, "0 CP(s) stopped"));
	/* a new CP registering */
	reg_at(1, "MAD-01", "Gran V\xc3\xad" "a 1, Madrid");
	assert_true(send_index(1, "REGISTER_RESULT#FIRST") >= 0);
	assert_true(send_index(1, "PARAR#CENTRAL") > send_index(1, "REGISTER_RESULT#FIRST"));
	assert_true(core_cp_find(C, "MAD-01")->weather_stop);
	frame(1, "ACK#PARAR");
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	/* one added at the registry (link down): held, stopped when it registers */
	struct core_reg r;
	memset(&r, 0, sizeof(r));
	xstrlcpy(r.id, "MAD-02", sizeof(r.id));
	xstrlcpy(r.location, "Atocha, madrid", sizeof(r.location));
	core_fxlist_clear(&FX);
	core_on_registry(C, &r, clk(), &FX);
	check_fx();
	assert_true(core_cp_find(C, "MAD-02")->weather_stop);
	/* moved out of Madrid: the stop goes; the halted CP is resumed */
	xstrlcpy(r.id, "MAD-01", sizeof(r.id));
	xstrlcpy(r.location, "Toledo", sizeof(r.location));
	core_fxlist_clear(&FX);
	core_on_registry(C, &r, clk(), &FX);
	check_fx();
	assert_false(core_cp_find(C, "MAD-01")->weather_stop);
	assert_true(send_index(1, "REANUDAR#CENTRAL") >= 0);
	/* two cities: held while either is alerted */
	reg_at(3, "TM-01", "Madrid - Toledo");
	assert_int_equal(count_send("PARAR#CENTRAL"), 1);
	frame(3, "ACK#PARAR");
	weather("Toledo", -4.0);
	assert_int_equal(count_send("PARAR#CENTRAL"), 0);
	assert_non_null(strstr(audit_row("WEATHER_ALERT")->u.audit.detail, "TM-01 (already held"));
	weather("Madrid", 3.0);
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 0);
	assert_true(core_cp_find(C, "TM-01")->weather_stop);
	char err[EVC_ERR_LEN];
	assert_int_equal(command(CORE_CMD_RESUME, "TM-01", err), -1);
	assert_string_equal(err, "TM-01 is held by a weather alert in Toledo (-4.0 C)");
	weather("Toledo", 3.0);
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 1);
	assert_true(send_index(3, "REANUDAR#CENTRAL") >= 0);
}

/* A PARAR the CP refused is sent again at the next cold reading (never
 * in a loop with the refusals); a REANUDAR too at the next warm one. */
static void test_weather_nack_retried(void **state)
{
	(void)state;
	reg_at(1, "MAD-01", "Madrid");
	weather("Madrid", -2.0);
	frame(1, "NACK#PARAR#engine link not usable");
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	struct msg m = request("101", "MAD-01", NOW);
	kafka(&m);
	assert_int_equal(count_produce(MSG_AUTH_DENIED), 1);
	NOW += 4;
	weather("Madrid", -2.0);
	assert_int_equal(count_send("PARAR#CENTRAL"), 1);
	frame(1, "ACK#PARAR");
	weather("Madrid", 2.0);
	frame(1, "NACK#REANUDAR#engine link not usable");
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	assert_int_equal(state_of("MAD-01"), CP_FUERA_DE_SERVICIO);
	NOW += 4;
	weather("Madrid", 2.0);
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 1);
	frame(1, "ACK#REANUDAR");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	/* cleared while its PARAR was on the way: REANUDAR follows the ACK */
	weather("Madrid", -2.0);
	weather("Madrid", 2.0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	frame(1, "ACK#PARAR");
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 1);
	frame(1, "ACK#REANUDAR");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
}

/* Weather stops are not stored: after Central's restart a cold reading
 * raises them again, and the first warm one resumes (once) a CP that may
 * still be halted by one from before. */
static void test_weather_after_restart(void **state)
{
	(void)state;
	core_load_cp(C, "MAD-01", "Madrid", 0.25, 0);
	core_load_cp(C, "MAD-02", "Madrid", 0.25, 1);
	core_load_cp(C, "BCN-01", "Barcelona", 0.25, 0);
	reg_at(1, "MAD-01", "Madrid");
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 0);
	reg_at(2, "MAD-02", "Madrid");
	assert_int_equal(count_send("PARAR#CENTRAL"), 1); /* the stored operator stop */
	frame(2, "ACK#PARAR");
	reg_at(3, "BCN-01", "Barcelona");
	weather("Madrid", 5.0);
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 1); /* MAD-01; not the operator-stopped one */
	assert_true(send_index(1, "REANUDAR#CENTRAL") >= 0);
	frame(1, "ACK#REANUDAR");
	assert_int_equal(state_of("MAD-01"), CP_ACTIVADO);
	NOW += 4;
	weather("Madrid", 5.0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	/* the operator-stopped one, resumed by the operator, is not told again */
	char err[EVC_ERR_LEN];
	assert_int_equal(command(CORE_CMD_RESUME, "MAD-02", err), 0);
	frame(2, "ACK#REANUDAR");
	weather("Madrid", 5.0);
	assert_int_equal(count_kind(CORE_FX_SEND), 0);
	/* a cold first reading raises the stop instead */
	weather("Barcelona", -1.0);
	assert_int_equal(count_send("PARAR#CENTRAL"), 1);
	assert_true(send_index(3, "PARAR#CENTRAL") >= 0);
}

/* A reading naming 1,000 CPs: each gets one PARAR, one audit row says it
 * all, the log stays short. */
static void test_weather_many_cps(void **state)
{
	(void)state;
	char id[16];
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "MAD-%04d", i);
		reg_at((uint64_t)i + 1, id, "Madrid");
	}
	reg_at(5000, "BCN-01", "Barcelona");
	weather("Madrid", -2.0);
	assert_int_equal(count_send("PARAR#CENTRAL"), 1000);
	assert_int_equal(count_kind(CORE_FX_AUDIT), 1);
	assert_true(count_kind(CORE_FX_LOG) <= 3);
	assert_true(FX.n <= 4 * 1000 + 10);
	assert_non_null(strstr(audit_row("WEATHER_ALERT")->u.audit.detail, "1000 CP(s) stopped"));
	assert_non_null(strstr(audit_row("WEATHER_ALERT")->u.audit.detail, "and 988 more"));
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "MAD-%04d", i);
		frame((uint64_t)i + 1, "ACK#PARAR");
	}
	size_t counts[CP_STATE_COUNT];
	core_cp_state_counts(C, counts);
	assert_int_equal(counts[CP_FUERA_DE_SERVICIO], 1000);
	assert_int_equal(counts[CP_ACTIVADO], 1);
	weather("Madrid", 2.0);
	assert_int_equal(count_send("REANUDAR#CENTRAL"), 1000);
	assert_int_equal(count_kind(CORE_FX_AUDIT), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_names),
		T(test_register_first_and_reconnect),
		T(test_register_validation),
		T(test_register_without_price),
		T(test_register_stored_cp_is_reconnect),
		T(test_command_unacked_when_link_lost),
		T(test_already_connected),
		T(test_frames_before_register),
		T(test_bad_frames_keep_link),
		T(test_fault_recover),
		T(test_check_session),
		T(test_stop_resume),
		T(test_stop_nack),
		T(test_command_to_disconnected_cp),
		T(test_stop_all_resume_all),
		T(test_recover_after_stop_stays_out_of_service),
		T(test_reregister_while_faulty_or_stopped),
		T(test_full_supply_ticket),
		T(test_ticket_amount_uses_price_sent),
		T(test_two_drivers_same_instant),
		T(test_auth_denials),
		T(test_duplicate_request_id_ignored),
		T(test_request_id_echoed),
		T(test_request_id_recovered),
		T(test_driver_known_callback),
		T(test_nack_authorize),
		T(test_reservation_timeout),
		T(test_supply_watchdog),
		T(test_reservation_timeout_configurable),
		T(test_driver_quit),
		T(test_duplicate_and_old_seq),
		T(test_consumo_starts_supply_and_seq_zero),
		T(test_consumo_after_supply_end),
		T(test_telemetry_mismatch_and_unknown),
		T(test_session_started_before_ack),
		T(test_fault_and_averiado_same_session),
	T(test_engine_fault_unconfirmed),
	T(test_fault_reason_not_utf8),
		T(test_fault_while_reserved),
		T(test_supply_end_then_parar),
		T(test_parar_then_supply_end),
		T(test_stop_while_reserved),
		T(test_link_down_with_session),
		T(test_link_down_no_grace),
		T(test_reoffer_after_link_loss),
		T(test_reoffer_refused_ended_waits_for_supply_end),
		T(test_register_tls),
		T(test_register_rate_limit),
		T(test_revoke),
		T(test_registry_changes),
		T(test_release1_peers),
		T(test_plain_refused_audit),
		T(test_command_audit),
		T(test_conexion_perdida),
		T(test_restart_recovery),
		T(test_session_ids_unique),
		T(test_views_and_status),
		T(test_parse_command),
		T(test_many_cps),
		T(test_many_sessions),
		T(test_storm_1),
		T(test_storm_2),
		T(test_coalesce_backlog),
		T(test_weather_city_match),
		T(test_weather_city_accents),
		T(test_weather_alert_and_clear),
		T(test_weather_resume_refused),
		T(test_weather_operator_stop_outlives),
		T(test_weather_fault_holds),
		T(test_weather_link_down_then_register),
		T(test_weather_supply_ends),
		T(test_weather_error_reading),
		T(test_weather_threshold),
		T(test_weather_cities_limit),
		T(test_weather_bad_values),
		T(test_weather_new_cp_in_alerted_city),
		T(test_weather_nack_retried),
		T(test_weather_after_restart),
		T(test_weather_many_cps),
#undef T
	};
	return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
