/* The driver's service sequencing (svc.c), event by event: requests only
 * once live, one at a time, the pause after every kind of end, timeouts,
 * only its own messages, outcomes missed while away shown once, a running
 * supply picked up, and the summary. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "evc/clock.h"
#include "src/driver/svc.h"

#define MAXL 64
static char lines[MAXL][512];
static int nlines;

static void capture(void *arg, const char *line)
{
	(void)arg;
	assert_true(nlines < MAXL);
	snprintf(lines[nlines++], sizeof lines[0], "%s", line);
}

static const char *last(void)
{
	return nlines ? lines[nlines - 1] : "";
}

static void expect_last(const char *prefix)
{
	if (strncmp(last(), prefix, strlen(prefix)) != 0)
		print_error("last line '%s' does not start with '%s'\n", last(), prefix);
	assert_int_equal(strncmp(last(), prefix, strlen(prefix)), 0);
}

static void setup_svc(struct svc *s, int file_mode)
{
	struct svc_cfg cfg = {.user_id = "101", .rid_base = "r", .answer_timeout = 30, .pause = 4,
			      .file_mode = file_mode};
	nlines = 0;
	svc_init(s, &cfg, capture, NULL);
}

static struct msg note(enum msg_type t, const char *user, const char *cp, const char *session)
{
	struct msg m;
	msg_init(&m, t);
	snprintf(m.user_id, sizeof m.user_id, "%s", user);
	snprintf(m.cp_id, sizeof m.cp_id, "%s", cp);
	if (session != NULL) {
		snprintf(m.session_id, sizeof m.session_id, "%s", session);
		m.has_session_id = 1;
	}
	return m;
}

static void enq(struct svc *s, const char *cp)
{
	char err[EVC_ERR_LEN];
	assert_int_equal(svc_enqueue(s, cp, err), 0);
}

static void test_requests_wait_for_live(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 1);
	enq(&s, "A");
	assert_int_equal(svc_tick(&s, 100, &r), 0);
	assert_false(svc_done(&s));
	svc_set_live(&s, 101);
	assert_int_equal(svc_tick(&s, 101, &r), 1);
	assert_string_equal(r.cp_id, "A");
	assert_string_equal(r.request_id, "r-1");
	assert_string_equal(last(), "REQUEST cp=A request=r-1");
	assert_int_equal(svc_tick(&s, 102, &r), 0); /* one at a time */
	assert_int_equal(s.state, SVC_WAITING);
	svc_free(&s);
}

static void test_happy_path_and_pause(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 1);
	enq(&s, "A");
	enq(&s, "B");
	svc_set_live(&s, 0);
	assert_int_equal(svc_tick(&s, 10, &r), 1);
	struct msg m = note(MSG_AUTH_OK, "101", "A", "S1");
	snprintf(m.message, sizeof m.message, "ok \"go\"\nnow");
	assert_int_equal(svc_on_msg(&s, &m, 10.25), 1);
	assert_string_equal(last(), "AUTH_OK cp=A session=S1 wait_ms=250 message=\"ok \\\"go\\\" now\"");
	assert_int_equal(s.state, SVC_AUTHORISED);
	m = note(MSG_CONSUMO_UPDATE, "101", "A", "S1");
	m.kw = 7.2, m.kwh = 0.5, m.importe = 0.13;
	svc_on_msg(&s, &m, 11);
	assert_string_equal(lines[nlines - 2], "PLUGGED cp=A session=S1");
	assert_string_equal(last(), "CONSUMO cp=A session=S1 kw=7.20 kwh=0.500 importe=0.13 elapsed=0");
	m.kwh = 1.0, m.importe = 0.25;
	svc_on_msg(&s, &m, 14);
	assert_string_equal(last(), "CONSUMO cp=A session=S1 kw=7.20 kwh=1.000 importe=0.25 elapsed=3");
	assert_int_equal(s.state, SVC_CHARGING);
	m = note(MSG_TICKET, "101", "A", "S1");
	m.kwh = 2, m.importe = 0.5, m.price = 0.25, m.started_at = 1000, m.ended_at = 1060;
	svc_on_msg(&s, &m, 20);
	{
		/* the figures as the CONSUMO lines have them, the times as
		 * every timestamp (the TICKET had six decimals and epoch
		 * seconds) */
		char t0[32], t1[32], want[200];
		clock_format(1000, t0, sizeof t0);
		clock_format(1060, t1, sizeof t1);
		snprintf(want, sizeof want, "TICKET cp=A session=S1 kwh=2.000 importe=0.50 price=0.25 started=%s ended=%s",
			 t0, t1);
		assert_string_equal(last(), want);
		assert_int_equal(t0[10], 'T'); /* 1970-01-01T00:16:40.000 in UTC */
	}
	assert_int_equal(s.state, SVC_IDLE);
	assert_int_equal(s.served, 1);
	assert_true(s.cur.has_ticket);
	/* The pause: nothing before 24 s, then B. */
	assert_true(svc_next_deadline(&s) == 24.0);
	assert_int_equal(svc_tick(&s, 23.99, &r), 0);
	assert_int_equal(svc_tick(&s, 24, &r), 1);
	assert_string_equal(r.cp_id, "B");
	assert_string_equal(r.request_id, "r-2");
	assert_true(s.cur.has_ticket); /* the last ticket stays on screen */
	/* a duplicate ticket of S1 is not shown again */
	int before = nlines;
	svc_on_msg(&s, &m, 25);
	assert_int_equal(nlines, before);
	m = note(MSG_AUTH_DENIED, "101", "B", NULL);
	snprintf(m.reason, sizeof m.reason, "CP B is AVERIADO");
	svc_on_msg(&s, &m, 26);
	assert_string_equal(last(), "AUTH_DENIED cp=B request=- reason=\"CP B is AVERIADO\"");
	assert_true(svc_done(&s)); /* no pause after the last one */
	svc_summary(&s);
	assert_string_equal(last(), "SUMMARY served=1 denied=1 failed=0 kwh=2.000 importe=0.50");
	svc_free(&s);
}

/* Central's outbox may deliver a notification twice (at least once): the
 * driver shows each (session, type) once, and a duplicate never changes
 * the figures it already has. */
static void test_duplicates_shown_once(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 1);
	enq(&s, "A");
	svc_set_live(&s, 0);
	assert_int_equal(svc_tick(&s, 10, &r), 1);
	struct msg ok = note(MSG_AUTH_OK, "101", "A", "S1");
	svc_on_msg(&s, &ok, 10.5);
	int before = nlines;
	svc_on_msg(&s, &ok, 10.6);
	assert_int_equal(nlines, before);
	assert_int_equal(s.state, SVC_AUTHORISED);
	struct msg c = note(MSG_CONSUMO_UPDATE, "101", "A", "S1");
	c.kw = 7, c.kwh = 1.0, c.importe = 0.25;
	svc_on_msg(&s, &c, 12);
	assert_int_equal(s.state, SVC_CHARGING);
	before = nlines;
	svc_on_msg(&s, &ok, 12.5); /* a late duplicate AUTH_OK while charging */
	assert_int_equal(nlines, before);
	assert_int_equal(s.state, SVC_CHARGING);
	struct msg t = note(MSG_TICKET, "101", "A", "S1");
	t.kwh = 1.2, t.importe = 0.3, t.price = 0.25, t.started_at = 1000, t.ended_at = 1010;
	svc_on_msg(&s, &t, 13);
	before = nlines;
	svc_on_msg(&s, &t, 13.5);
	svc_on_msg(&s, &ok, 13.6);
	assert_int_equal(nlines, before);
	assert_int_equal(s.served, 1);
	assert_true(s.kwh == 1.2);
	svc_free(&s);
}

static void test_other_users_ignored(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 0);
	enq(&s, "A");
	svc_set_live(&s, 0);
	assert_int_equal(svc_tick(&s, 0, &r), 1);
	int before = nlines;
	struct msg m = note(MSG_AUTH_OK, "102", "A", "S9");
	assert_int_equal(svc_on_msg(&s, &m, 1), 0);
	m = note(MSG_TICKET, "1010", "A", "S9");
	assert_int_equal(svc_on_msg(&s, &m, 1), 0);
	assert_int_equal(nlines, before);
	assert_int_equal(s.state, SVC_WAITING);
	/* a request-side type is not a notification */
	m = note(MSG_REQUEST_CHARGE, "101", "A", NULL);
	assert_int_equal(svc_on_msg(&s, &m, 1), 0);
	svc_free(&s);
}

static void test_timeout_then_late_answer(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 1);
	enq(&s, "A");
	enq(&s, "B");
	svc_set_live(&s, 0);
	svc_tick(&s, 0, &r);
	assert_true(svc_next_deadline(&s) == 30.0);
	assert_int_equal(svc_tick(&s, 29.9, &r), 0);
	assert_int_equal(s.state, SVC_WAITING);
	assert_int_equal(svc_tick(&s, 30, &r), 0); /* timed out; B waits the pause */
	assert_string_equal(last(), "TIMEOUT cp=A request=r-1 session=- state=WAITING after=30");
	assert_int_equal(s.failed, 1);
	assert_int_equal(svc_tick(&s, 34, &r), 1);
	assert_string_equal(r.cp_id, "B");
	/* the late answer to A is shown as such and does not touch B */
	struct msg m = note(MSG_AUTH_OK, "101", "A", "SA");
	svc_on_msg(&s, &m, 35);
	expect_last("AUTH_OK cp=A session=SA other=1");
	assert_int_equal(s.state, SVC_WAITING);
	assert_string_equal(s.cur.cp_id, "B");
	svc_free(&s);
}

static struct msg note_rid(enum msg_type t, const char *cp, const char *session, const char *rid)
{
	struct msg m = note(t, "101", cp, session);
	snprintf(m.request_id, sizeof m.request_id, "%s", rid);
	m.has_request_id = 1;
	return m;
}

/* Central echoes request_id: an answer to a request that timed out, for
 * the same CP as the next request, is shown as late and never taken for
 * the new one; the new one's answers still are. */
static void test_stale_request_id_same_cp(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 1);
	enq(&s, "A");
	enq(&s, "A");
	enq(&s, "A");
	svc_set_live(&s, 0);
	assert_int_equal(svc_tick(&s, 0, &r), 1);
	assert_string_equal(r.request_id, "r-1");
	assert_int_equal(svc_tick(&s, 30, &r), 0);
	expect_last("TIMEOUT cp=A request=r-1");
	assert_int_equal(svc_tick(&s, 34, &r), 1);
	assert_string_equal(r.cp_id, "A");
	assert_string_equal(r.request_id, "r-2");

	/* r-1's answers arrive now: late, whatever their type */
	struct msg m = note_rid(MSG_AUTH_OK, "A", "SA1", "r-1");
	assert_int_equal(svc_on_msg(&s, &m, 35.5), 1);
	expect_last("AUTH_OK cp=A session=SA1 late=1");
	assert_int_equal(s.state, SVC_WAITING);
	assert_string_equal(s.cur.request_id, "r-2");
	assert_string_equal(s.cur.session_id, "");
	assert_int_equal(s.denied, 0);
	m = note_rid(MSG_SESSION_CANCELLED, "A", "SA1", "r-1");
	snprintf(m.reason, sizeof m.reason, "reservation expired");
	svc_on_msg(&s, &m, 36);
	expect_last("SESSION_CANCELLED cp=A session=SA1 late=1");
	assert_int_equal(s.state, SVC_WAITING);

	/* r-2's own answer is taken */
	m = note_rid(MSG_AUTH_OK, "A", "SA2", "r-2");
	svc_on_msg(&s, &m, 36.5);
	expect_last("AUTH_OK cp=A session=SA2 wait_ms=2500");
	assert_int_equal(s.state, SVC_AUTHORISED);
	assert_string_equal(s.cur.session_id, "SA2");
	m = note_rid(MSG_TICKET, "A", "SA2", "r-2");
	m.kwh = 1, m.importe = 0.25, m.price = 0.25;
	svc_on_msg(&s, &m, 40);
	expect_last("TICKET cp=A session=SA2");
	assert_int_equal(s.served, 1);
	assert_int_equal(s.state, SVC_IDLE);

	/* r-3 waits; an answer to r-1 that has left every ring (a duplicate
	 * with a session we never saw) is still known as one of ours: late */
	assert_int_equal(svc_tick(&s, 44, &r), 1);
	assert_string_equal(r.request_id, "r-3");
	m = note_rid(MSG_AUTH_DENIED, "A", "SA9", "r-1");
	snprintf(m.reason, sizeof m.reason, "x");
	memset(s.abandoned, 0, sizeof s.abandoned);
	memset(s.ended, 0, sizeof s.ended);
	svc_on_msg(&s, &m, 45);
	expect_last("AUTH_DENIED cp=A request=r-1 late=1");
	assert_int_equal(s.state, SVC_WAITING);
	/* one of another requester (the CP's menu) for the same CP: not ours */
	m = note_rid(MSG_AUTH_DENIED, "A", NULL, "cp-A-1-0001");
	snprintf(m.reason, sizeof m.reason, "y");
	svc_on_msg(&s, &m, 46);
	expect_last("AUTH_DENIED cp=A request=cp-A-1-0001 other=1");
	assert_int_equal(s.state, SVC_WAITING);
	assert_int_equal(s.denied, 0);
	svc_free(&s);
}

/* A Central that does not echo request_id: the answer about the CP we wait
 * for is taken as ours (the CP-based matching kept for it). */
static void test_no_request_id_matches_by_cp(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 1);
	enq(&s, "A");
	svc_set_live(&s, 0);
	assert_int_equal(svc_tick(&s, 0, &r), 1);
	struct msg m = note(MSG_AUTH_DENIED, "101", "A", NULL);
	snprintf(m.reason, sizeof m.reason, "CP A is AVERIADO");
	svc_on_msg(&s, &m, 1);
	expect_last("AUTH_DENIED cp=A request=- reason=\"CP A is AVERIADO\"");
	assert_int_equal(s.denied, 1);
	assert_int_equal(s.state, SVC_IDLE);
	svc_free(&s);
}

static void test_plug_wait_longer_than_answer_timeout(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 1);
	enq(&s, "A");
	svc_set_live(&s, 0);
	svc_tick(&s, 0, &r);
	struct msg m = note(MSG_AUTH_OK, "101", "A", "S1");
	svc_on_msg(&s, &m, 1);
	/* Central cancels an unplugged session at 120 s: we wait past it. */
	svc_tick(&s, 60, &r);
	assert_int_equal(s.state, SVC_AUTHORISED);
	m = note(MSG_SESSION_CANCELLED, "101", "A", "S1");
	snprintf(m.reason, sizeof m.reason, "not plugged in within 120 s");
	svc_on_msg(&s, &m, 121);
	assert_string_equal(last(), "SESSION_CANCELLED cp=A session=S1 reason=\"not plugged in within 120 s\"");
	assert_int_equal(s.failed, 1);
	assert_true(svc_done(&s));
	svc_free(&s);
}

static void test_supply_error_partial(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 1);
	enq(&s, "A");
	svc_set_live(&s, 0);
	svc_tick(&s, 0, &r);
	/* no AUTH_OK seen (lost?): the first CONSUMO_UPDATE for our CP counts */
	struct msg m = note(MSG_CONSUMO_UPDATE, "101", "A", "S1");
	m.kwh = 0.3;
	svc_on_msg(&s, &m, 2);
	assert_int_equal(s.state, SVC_CHARGING);
	assert_string_equal(s.cur.session_id, "S1");
	m = note(MSG_SUPPLY_ERROR, "101", "A", "S1");
	m.kwh_partial = 0.4, m.importe_partial = 0.1;
	snprintf(m.reason, sizeof m.reason, "engine fault");
	svc_on_msg(&s, &m, 3);
	assert_string_equal(last(), "SUPPLY_ERROR cp=A session=S1 kwh=0.400 importe=0.10 reason=\"engine fault\"");
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.served, 0);
	svc_free(&s);
}

static void test_missed_outcome_shown_once(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 1);
	enq(&s, "A");
	/* backlog from the previous run: an authorised session, its ticket */
	struct msg m = note(MSG_AUTH_OK, "101", "X", "S0");
	svc_on_msg(&s, &m, 0);
	expect_last("AUTH_OK cp=X session=S0 earlier=1");
	m = note(MSG_CONSUMO_UPDATE, "101", "X", "S0");
	m.kwh = 1;
	int before = nlines;
	svc_on_msg(&s, &m, 0);
	assert_int_equal(nlines, before + 1); /* PLUGGED, but no replayed CONSUMO lines */
	m = note(MSG_TICKET, "101", "X", "S0");
	m.kwh = 3, m.importe = 0.75, m.price = 0.25;
	svc_on_msg(&s, &m, 0);
	expect_last("TICKET cp=X session=S0 kwh=3.000 importe=0.75 price=0.25 ");
	assert_non_null(strstr(last(), "earlier=1"));
	/* a bare outcome too, and each only once */
	m = note(MSG_SUPPLY_ERROR, "101", "Y", "S00");
	svc_on_msg(&s, &m, 0);
	expect_last("SUPPLY_ERROR cp=Y session=S00");
	assert_non_null(strstr(last(), "earlier=1"));
	before = nlines;
	svc_on_msg(&s, &m, 0);
	m = note(MSG_TICKET, "101", "X", "S0");
	svc_on_msg(&s, &m, 0);
	assert_int_equal(nlines, before);
	/* not counted as this run's services */
	assert_int_equal(s.served + s.failed + s.denied, 0);
	svc_set_live(&s, 1);
	assert_int_equal(svc_tick(&s, 3.9, &r), 0); /* the pause after the replayed end */
	assert_int_equal(svc_tick(&s, 4, &r), 1);
	svc_free(&s);
}

static void test_running_supply_picked_up(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	setup_svc(&s, 1);
	enq(&s, "A");
	struct msg m = note(MSG_CONSUMO_UPDATE, "101", "MAD-01", "S5");
	m.kw = 11, m.kwh = 4.5, m.importe = 1.13;
	svc_on_msg(&s, &m, 0);
	assert_int_equal(s.state, SVC_CHARGING);
	assert_true(s.cur.adopted);
	svc_set_live(&s, 1);
	assert_string_equal(last(), "RESUMED cp=MAD-01 session=S5 state=CHARGING kwh=4.500 importe=1.13");
	/* the file's first service waits for it */
	assert_int_equal(svc_tick(&s, 2, &r), 0);
	m.kwh = 4.6;
	svc_on_msg(&s, &m, 3);
	expect_last("CONSUMO cp=MAD-01 session=S5 kw=11.00 kwh=4.600");
	m = note(MSG_TICKET, "101", "MAD-01", "S5");
	m.kwh = 5, m.importe = 1.25, m.price = 0.25;
	svc_on_msg(&s, &m, 4);
	expect_last("TICKET cp=MAD-01 session=S5 kwh=5.000 ");
	assert_int_equal(s.served, 0);
	assert_int_equal(svc_tick(&s, 7.9, &r), 0);
	assert_int_equal(svc_tick(&s, 8, &r), 1);
	assert_string_equal(r.cp_id, "A");
	svc_free(&s);
}

static void test_interactive_no_pause_queue_and_bad_cp(void **state)
{
	(void)state;
	struct svc s;
	struct svc_request r;
	char err[EVC_ERR_LEN];
	setup_svc(&s, 0);
	svc_set_live(&s, 0);
	assert_int_equal(svc_enqueue(&s, "bad id", err), -1);
	assert_non_null(strstr(err, "invalid CP id"));
	enq(&s, "A");
	assert_int_equal(svc_tick(&s, 0, &r), 1);
	enq(&s, "B");
	assert_string_equal(last(), "QUEUED cp=B position=1");
	struct msg m = note(MSG_AUTH_DENIED, "101", "A", NULL);
	svc_on_msg(&s, &m, 1);
	assert_int_equal(svc_tick(&s, 1, &r), 1); /* no pause outside file mode */
	assert_string_equal(r.cp_id, "B");
	svc_send_failed(&s, 1, "queue full");
	assert_string_equal(last(), "SEND_ERROR cp=B request=r-2 reason=\"queue full\"");
	assert_int_equal(s.failed, 1);
	assert_false(svc_done(&s)); /* interactive mode never "done" */
	svc_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests_wait_for_live),
		cmocka_unit_test(test_happy_path_and_pause),
		cmocka_unit_test(test_duplicates_shown_once),
		cmocka_unit_test(test_other_users_ignored),
		cmocka_unit_test(test_timeout_then_late_answer),
		cmocka_unit_test(test_stale_request_id_same_cp),
		cmocka_unit_test(test_no_request_id_matches_by_cp),
		cmocka_unit_test(test_plug_wait_longer_than_answer_timeout),
		cmocka_unit_test(test_supply_error_partial),
		cmocka_unit_test(test_missed_outcome_shown_once),
		cmocka_unit_test(test_running_supply_picked_up),
		cmocka_unit_test(test_interactive_no_pause_queue_and_bad_cp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
