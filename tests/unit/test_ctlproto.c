/* The control socket's protocol without sockets (src/central/ctlproto.c):
 * the bounded line buffer (cut reads, CRLF, NUL, overlong lines skipped to
 * their newline), request verbs, a CP and the header through JSON and
 * back, and the attached client's picture (order, updates, bad lines
 * ignored, counts at sync). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "src/central/ctlproto.h"

static void test_buf_lines(void **state)
{
	(void)state;
	struct ctlproto_buf b;
	ctlproto_buf_init(&b, 10);
	ctlproto_buf_put(&b, "STA", 3);
	assert_null(ctlproto_buf_line(&b));
	ctlproto_buf_put(&b, "TUS\r\nP A", 8);
	char *l = ctlproto_buf_line(&b);
	assert_string_equal(l, "STATUS");
	free(l);
	assert_null(ctlproto_buf_line(&b));
	ctlproto_buf_put(&b, "\n", 1);
	l = ctlproto_buf_line(&b);
	assert_string_equal(l, "P A");
	free(l);
	/* a NUL inside is shown, not a cut */
	ctlproto_buf_put(&b, "a\0b\n", 4);
	l = ctlproto_buf_line(&b);
	assert_string_equal(l, "a b");
	free(l);
	/* overlong: the marker in its place, its rest dropped, the next kept */
	ctlproto_buf_put(&b, "0123456789ABC", 13);
	ctlproto_buf_put(&b, "DEF", 3);
	ctlproto_buf_put(&b, "GH\nOK\n", 6);
	l = ctlproto_buf_line(&b);
	assert_string_equal(l, CTLPROTO_TOOLONG);
	free(l);
	l = ctlproto_buf_line(&b);
	assert_string_equal(l, "OK");
	free(l);
	assert_null(ctlproto_buf_line(&b));
	/* exactly max is fine, in one piece or many */
	ctlproto_buf_put(&b, "0123456789\n", 11);
	l = ctlproto_buf_line(&b);
	assert_string_equal(l, "0123456789");
	free(l);
	/* memory stays within the bound under a long line without newline */
	for (int i = 0; i < 10000; i++)
		ctlproto_buf_put(&b, "xxxxxxxxxx", 10);
	assert_true(b.cap <= 4096);
	ctlproto_buf_put(&b, "\nEND\n", 5);
	l = ctlproto_buf_line(&b);
	assert_string_equal(l, CTLPROTO_TOOLONG);
	free(l);
	l = ctlproto_buf_line(&b);
	assert_string_equal(l, "END");
	free(l);
	ctlproto_buf_free(&b);
}

static void test_verb(void **state)
{
	(void)state;
	char w[8];
	const char *rest = ctlproto_verb("  log-level  debug ", w, sizeof w);
	assert_string_equal(w, "LOG-LEV"); /* cut to the buffer */
	assert_string_equal(rest, "debug ");
	rest = ctlproto_verb("status", w, sizeof w);
	assert_string_equal(w, "STATUS");
	assert_string_equal(rest, "");
	assert_null(ctlproto_verb(" \t ", w, sizeof w));
}

static struct cp_view sample(const char *id, enum cp_state st)
{
	struct cp_view v;
	memset(&v, 0, sizeof v);
	strcpy(v.id, id);
	strcpy(v.location, "C/ Serrano 10, Madrid");
	strcpy(v.caption, "Available");
	v.price = 0.25;
	v.state = st;
	v.link = CP_LINK_TLS;
	v.stop_pending = 1;
	strcpy(v.driver_id, "101");
	strcpy(v.session_id, "S-1");
	v.kw = 7.4;
	v.kwh = 1.25;
	v.importe = 0.3125;
	v.session_started = 1796157761.5;
	v.since = 1796157700.25;
	return v;
}

static void test_cp_round_trip(void **state)
{
	(void)state;
	struct cp_view v = sample("MAD-01", CP_SUMINISTRANDO), w;
	char err[EVC_ERR_LEN];
	json_t *o = ctlproto_cp_to_json(&v);
	char *s = ctlproto_dump(o);
	json_decref(o);
	json_t *back = ctlproto_parse(s, err);
	free(s);
	assert_non_null(back);
	assert_int_equal(ctlproto_cp_from_json(back, &w, err), 0);
	assert_true(ctlproto_cp_equal(&v, &w));
	json_decref(back);
	/* refused: a bad id, an unknown state, a string too long, not a number */
	static const char *const bad[] = {
		"{\"id\":\"bad id\",\"state\":\"ACTIVADO\"}",
		"{\"id\":\"A\",\"state\":\"ENCENDIDO\"}",
		"{\"id\":\"A\",\"state\":\"ACTIVADO\",\"caption\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
		"{\"id\":\"A\",\"state\":\"ACTIVADO\",\"price\":\"1\"}",
		"{\"state\":\"ACTIVADO\"}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *j = ctlproto_parse(bad[i], err);
		assert_non_null(j);
		assert_int_equal(ctlproto_cp_from_json(j, &w, err), -1);
		json_decref(j);
	}
	assert_null(ctlproto_parse("[1]", err));
	assert_null(ctlproto_parse("{\"a\":1,\"a\":2}", err)); /* duplicates refused */
}

static void test_picture(void **state)
{
	(void)state;
	struct ctlproto_picture p;
	memset(&p, 0, sizeof p);
	char err[EVC_ERR_LEN];
	const char *ids[] = { "M", "B", "Z", "A", "M" };
	for (size_t i = 0; i < 5; i++) {
		struct cp_view v = sample(ids[i], i == 4 ? CP_AVERIADO : CP_ACTIVADO);
		json_t *o = ctlproto_cp_to_json(&v);
		assert_int_equal(ctlproto_picture_apply(&p, o, err), CTLPROTO_CP);
		json_decref(o);
	}
	assert_int_equal(p.ncps, 4);
	assert_string_equal(p.cps[0].id, "A");
	assert_string_equal(p.cps[3].id, "Z");
	assert_int_equal(p.cps[2].state, CP_AVERIADO); /* M updated in place */
	json_t *o = ctlproto_parse("{\"t\":\"sync\",\"ncps\":4}", err);
	assert_int_equal(ctlproto_picture_apply(&p, o, err), CTLPROTO_SYNC);
	json_decref(o);
	assert_int_equal(p.counts[CP_ACTIVADO], 3);
	assert_int_equal(p.counts[CP_AVERIADO], 1);
	struct ctlproto_status st = { .listen = "[::1]:9000", .kafka = "k:1", .db = "n.db", .kafka_up = 1, .links = 3 };
	o = ctlproto_status_to_json(&st);
	assert_int_equal(ctlproto_picture_apply(&p, o, err), CTLPROTO_STATUS);
	json_decref(o);
	assert_string_equal(p.status.listen, "[::1]:9000");
	assert_int_equal(p.status.links, 3);
	static const struct {
		const char *line;
		enum ctlproto_kind k;
	} kinds[] = {
		{ "{\"t\":\"log\",\"ts\":1,\"level\":\"warn\",\"tag\":\"\",\"text\":\"x\"}", CTLPROTO_LOG },
		{ "{\"t\":\"log\",\"ts\":\"1\",\"level\":\"warn\",\"tag\":\"\",\"text\":\"x\"}", CTLPROTO_BAD },
		{ "{\"t\":\"req\",\"ts\":1,\"user\":\"1\",\"cp\":\"A\",\"outcome\":\"AUTH_OK\"}", CTLPROTO_REQ },
		{ "{\"t\":\"req\",\"ts\":1,\"user\":\"1\",\"cp\":\"A\"}", CTLPROTO_BAD },
		{ "{\"t\":\"bye\",\"reason\":\"stopped\"}", CTLPROTO_BYE },
		{ "{\"ok\":false,\"error\":\"x\"}", CTLPROTO_ANSWER },
		{ "{\"t\":\"weird\"}", CTLPROTO_BAD },
		{ "{\"t\":\"status\",\"links\":-3}", CTLPROTO_BAD },
		{ "{}", CTLPROTO_BAD },
	};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		o = ctlproto_parse(kinds[i].line, err);
		assert_non_null(o);
		assert_int_equal(ctlproto_picture_apply(&p, o, err), kinds[i].k);
		json_decref(o);
	}
	assert_int_equal(p.status.links, 3); /* the bad status changed nothing */
	ctlproto_picture_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_lines),
		cmocka_unit_test(test_verb),
		cmocka_unit_test(test_cp_round_trip),
		cmocka_unit_test(test_picture),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
