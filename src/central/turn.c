/* One turn of Central's main loop, the only thread that touches the core,
 * the store's connection and the frontend:
 *   take what the worker threads queued (link events, Kafka messages, the
 *   broker's state), the operator's input, the clock tick
 *   -> feed each event to the core -> its effects
 *   -> store rows (one transaction per turn) -> COMMIT
 *   -> send frames, produce messages -> commit the Kafka offsets of the turn
 *   -> show the effects.
 * Storing before acting means a crash can lose an action but never leave
 * one done and unrecorded; committing offsets last means a crash replays
 * messages, which the core recognises (session ids, seq) and ignores. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "evc/clock.h"
#include "evc/log.h"
#include "evc/xalloc.h"
#include "src/central/service.h"
#include "src/central/turn.h"


/* A line of main's own (LINK, KAFKA, BAD_MSG, ERROR) that travels with the
 * core's effects to the frontend. */
void turn_note(struct central *c, enum log_level lvl, const char *tag, const char *fmt, ...)
{
	struct core_fx *x = core_fx_push(&c->fx, CORE_FX_LOG, clock_wall());
	x->u.log.level = lvl;
	x->u.log.cp_id[0] = '\0';
	xstrlcpy(x->u.log.tag, tag, sizeof x->u.log.tag);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->u.log.text, sizeof x->u.log.text, fmt, ap);
	va_end(ap);
}

/* A command line from the panel or the console: 0 sent, -1 refused (msg
 * says why), 1 quit. */
int turn_exec(void *arg, const char *line, char msg[EVC_ERR_LEN])
{
	struct central *c = arg;
	int cmd;
	char cp[MSG_CP_ID_MAX + 1] = "";
	char err[CORE_ERR_LEN] = "";
	if (core_parse_command(line, &cmd, cp, err) == -1) {
		evc_seterr(msg, "%s", err);
		return -1;
	}
	if (cmd == -1)
		return 1;
	if (c->readonly) {
		evc_seterr(msg, "read-only: '%.60s' refused (commands are disabled by --readonly)", line);
		return -1;
	}
	if (core_command(c->core, (enum core_cmd)cmd, cp, clock_wall(), &c->fx, err) == -1) {
		evc_seterr(msg, "%s", err[0] ? err : "refused");
		return -1;
	}
	evc_seterr(msg, "sent");
	return 0;
}

static void take_link_events(struct central *c)
{
	size_t n = cplink_drain(c->link, c->cev, TURN_BATCH_LINK);
	for (size_t i = 0; i < n; i++) {
		const struct cplink_event *e = &c->cev[i];
		double now = clock_wall();
		switch (e->kind) {
		case CPL_UP:
			turn_note(c, LOG_INFO, "LINK", "up conn=%llu peer=%s", (unsigned long long)e->conn, e->peer);
			break;
		case CPL_FRAME:
			core_on_frame(c->core, e->conn, e->data, now, &c->fx);
			break;
		case CPL_DOWN:
			turn_note(c, LOG_INFO, "LINK", "down conn=%llu reason=%s", (unsigned long long)e->conn, e->reason);
			core_on_link_down(c->core, e->conn, e->reason, now, &c->fx);
			break;
		}
	}
}

static void take_kafka_items(struct central *c)
{
	size_t n = kafka_in_drain(c->kin, c->kitems + c->nkitems, TURN_BATCH_KAFKA - c->nkitems);
	for (size_t i = c->nkitems; i < c->nkitems + n; i++) {
		struct kafka_in_item *it = &c->kitems[i];
		if (it->bad) {
			c->status.kafka_bad++;
			turn_note(c, LOG_WARN, "BAD_MSG", "topic=%s partition=%d offset=%lld reason=%s",
			     msg_topic_name(it->topic), (int)it->partition, (long long)it->offset, it->err);
			continue;
		}
		c->status.kafka_in++;
		core_on_kafka(c->core, &it->msg, clock_wall(), &c->fx);
	}
	c->nkitems += n;
}

static void take_kafka_state(struct central *c)
{
	int up;
	char reason[128];
	if (!kafka_out_get_state(c->kout, &up, reason, sizeof reason))
		return;
	if (c->kafka_known && up == c->status.kafka_up &&
	    (up || strcmp(reason, c->status.kafka_reason) == 0))
		return;
	c->kafka_known = 1;
	c->status.kafka_up = up;
	xstrlcpy(c->status.kafka_reason, up ? "" : reason, sizeof c->status.kafka_reason);
	if (up)
		turn_note(c, LOG_INFO, "KAFKA", "up");
	else
		turn_note(c, LOG_WARN, "KAFKA", "down reason=%s", reason);
}

/* Mark in c->skip every CORE_FX_STORE_SESSION followed, later in the same turn,
 * by another row of the same session. Each row is the whole session and the
 * store upserts it, so the last one alone leaves the same row: a telemetry
 * flood writes one row per session per turn, not one per message. */
static void mark_superseded_rows(struct central *c)
{
	size_t nsess = 0;
	for (size_t i = 0; i < c->fx.n; i++)
		nsess += c->fx.v[i].kind == CORE_FX_STORE_SESSION;
	if (c->skip_cap < c->fx.n) {
		c->skip_cap = c->fx.n * 2;
		c->skip = xrealloc(c->skip, c->skip_cap);
	}
	memset(c->skip, 0, c->fx.n);
	if (nsess < 2)
		return;
	hmap_clear(&c->seen_sessions);
	for (size_t i = c->fx.n; i-- > 0;) {
		if (c->fx.v[i].kind != CORE_FX_STORE_SESSION)
			continue;
		const char *id = c->fx.v[i].u.session.id;
		if (hmap_sget(&c->seen_sessions, id) != NULL)
			c->skip[i] = 1;
		else
			hmap_sput(&c->seen_sessions, id, (void *)id);
	}
}

/* Store the batch's rows in one transaction. A busy or full database gets a
 * few more tries (each waits up to the busy timeout), then -1. */
static int store_batch(struct central *c, char err[STORE_ERR_LEN])
{
	enum { ATTEMPTS = 4 };
	for (int attempt = 1;; attempt++) {
		int ok = store_begin(c->store, err) == 0;
		for (size_t i = 0; ok && i < c->fx.n; i++)
			if (!c->skip[i] && store_apply(c->store, &c->fx.v[i], err) == -1)
				ok = 0;
		if (ok && store_commit(c->store, err) == 0)
			return 0;
		store_rollback(c->store);
		if (attempt == ATTEMPTS)
			return -1;
		log_warn("database write failed (%s): try %d of %d", err, attempt + 1, ATTEMPTS);
		/* A back-off between retries of a failed write, not a wait for
		 * another party: the busy timeout already waited for locks. */
		poll(NULL, 0, 100 * attempt);
	}
}

/* Carry out the effects gathered this turn, in the order of the header
 * comment: store + commit, then act, then offsets, then show. */
void turn_apply(struct central *c)
{
	char err[STORE_ERR_LEN];
	int stored = 1;
	int need_txn = 0;
	for (size_t i = 0; i < c->fx.n && !need_txn; i++)
		need_txn = c->fx.v[i].kind == CORE_FX_STORE_CP || c->fx.v[i].kind == CORE_FX_STORE_SESSION ||
			   c->fx.v[i].kind == CORE_FX_STORE_EVENT;
	if (c->db_failed) {
		/* The core is ahead of the database: nothing more may be acted
		 * on or acknowledged; shutdown is under way. */
		core_fxlist_clear(&c->fx);
		c->nkitems = 0;
		return;
	}
	if (need_txn) {
		mark_superseded_rows(c);
		stored = store_batch(c, err) == 0;
		if (!stored) {
			/* Fail-stop (Redis's stop-writes-on-error): the core has moved on
			 * but its effects could not be stored, so acting on them would
			 * tell drivers and CPs things the database does not hold. Nothing
			 * of this batch is sent, no offset is committed, and Central
			 * exits 1: a restart replays from the last stored state. */
			c->db_errors++;
			c->db_failed = 1;
			c->quit = 1;
			turn_note(c, LOG_ERROR, "ERROR", "database: %s: writes keep failing; stopping without acting on this batch (a restart replays it)", err);
			core_fxlist_clear(&c->fx);
			c->nkitems = 0;
			return;
		}
	}
	double mono = clock_mono();
	for (size_t i = 0; i < c->fx.n; i++) {
		const struct core_fx *x = &c->fx.v[i];
		switch (x->kind) {
		case CORE_FX_SEND:
			cplink_send(c->link, x->u.link.conn, x->u.link.text);
			break;
		case CORE_FX_CLOSE:
			cplink_close(c->link, x->u.link.conn, x->u.link.text);
			break;
		case CORE_FX_PRODUCE:
			kafka_out_queue(c->kout, &x->u.produce); /* encoded off this thread */
			break;
		case CORE_FX_STATUS:
			kafka_out_mark_dirty(c->kout, mono);
			break;
		default:
			break;
		}
	}
	if (stored && c->nkitems > 0) {
		kafka_in_done(c->kin, c->kitems, c->nkitems);
		if (c->held_since == 0)
			c->held_since = mono;
	}
	c->nkitems = 0;
	c->status.links = cplink_count(c->link);
	if (c->fx.n > 0) {
		c->fe->ops->on_effects(c->fe, &c->fx);
		ctl_on_effects(c->ctl, &c->fx);
	}
	core_fxlist_clear(&c->fx);
}

/* Offsets are committed once the notifications of their batches are
 * delivered: librdkafka's out queue empty means everything produced so far
 * arrived. Under a steady flood the queue may never be empty, so after
 * OFFSET_HOLD_MAX seconds they are committed anyway (the cost: a crash in
 * that window may lose notifications, never double-count a session). */
#define OFFSET_HOLD_MAX 10.0
static void release_offsets(struct central *c, double mono)
{
	if (c->held_since == 0)
		return;
	if (kafka_out_pending(c->kout) == 0 || mono - c->held_since >= OFFSET_HOLD_MAX) {
		kafka_in_release(c->kin);
		c->held_since = 0;
	}
}

void turn_recover_session(void *arg, const struct core_session *s)
{
	struct central *c = arg;
	core_recover_session(c->core, s, clock_wall(), &c->fx);
}

int turn_prepare(struct central *c, struct pollfd pfd[TURN_NFDS])
{
	int nfd = 0;
	int in_fd = c->fe->ops->input_fd(c->fe);
	pfd[nfd++] = (struct pollfd){ .fd = c->sfd, .events = POLLIN };
	pfd[nfd++] = (struct pollfd){ .fd = cplink_event_fd(c->link), .events = POLLIN };
	pfd[nfd++] = (struct pollfd){ .fd = kafka_in_event_fd(c->kin), .events = POLLIN };
	pfd[nfd++] = (struct pollfd){ .fd = kafka_out_event_fd(c->kout), .events = POLLIN };
	pfd[nfd++] = (struct pollfd){ .fd = in_fd, .events = POLLIN }; /* -1: ignored by poll */
	if (c->ctl != NULL)
		ctl_prepare(c->ctl, pfd + nfd);
	else
		for (int i = 0; i < CTL_NFDS; i++)
			pfd[nfd + i] = (struct pollfd){ .fd = -1 };
	double mono = clock_mono();
	int timeout = clock_ms_until(c->next_tick, 1000);
	int t2 = c->fe->ops->timeout_ms(c->fe);
	if (t2 >= 0 && t2 < timeout)
		timeout = t2;
	if (ctl_timeout_ms(c->ctl) < timeout)
		timeout = ctl_timeout_ms(c->ctl);
	timeout = kafka_out_timeout_ms(c->kout, mono, timeout);
	if (c->held_since != 0 && timeout > 20)
		timeout = 20; /* look again at the producer's queue soon */
	return timeout;
}

void turn_run(struct central *c, const struct pollfd pfd[TURN_NFDS])
{
	if (pfd[0].revents & POLLIN) {
		struct signalfd_siginfo si;
		while (read(c->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
			if (si.ssi_signo == SIGHUP) {
				/* A dropped ssh session must never stop the network. */
				service_hangup(c, "SIGHUP");
				continue;
			}
			turn_note(c, LOG_INFO, "SHUTDOWN", "reason=signal %s", strsignal((int)si.ssi_signo));
			c->quit = 1;
		}
	}
	if (pfd[1].revents & POLLIN)
		take_link_events(c);
	if (pfd[2].revents & POLLIN)
		take_kafka_items(c);
	if (pfd[3].revents & POLLIN)
		take_kafka_state(c);
	if (pfd[4].fd >= 0 && (pfd[4].revents & (POLLIN | POLLHUP | POLLERR)) && c->fe->ops->on_input(c->fe)) {
		turn_note(c, LOG_INFO, "SHUTDOWN", "reason=operator");
		c->quit = 1;
	}
	/* The panel's terminal closed without a SIGHUP (Central is not the
	 * terminal's session leader's foreground job): as a hangup. */
	if (pfd[4].fd >= 0 && c->fe->ops->input_fd(c->fe) == -1 && strcmp(c->fe->ops->name, "panel") == 0)
		service_hangup(c, "terminal closed");
	if (c->ctl != NULL)
		ctl_run(c->ctl, c, pfd + TURN_NFDS_LOOP);
	double wall = clock_wall();
	double mono = clock_mono();
	if (mono >= c->next_tick) {
		core_on_tick(c->core, wall, &c->fx);
		c->next_tick = mono + 1.0;
		service_watchdog(mono);
	}
	turn_apply(c);
	if (kafka_out_tick(c->kout, mono, c->status.kafka_up)) {
		struct msg *st = xmalloc(sizeof *st);
		core_network_status(c->core, wall, st);
		kafka_out_status(c->kout, st, mono);
	}
	release_offsets(c, mono);
	c->fe->ops->refresh(c->fe, wall);
	ctl_refresh(c->ctl, c, wall);
}

void turn_drain(struct central *c)
{
	for (;;) {
		size_t before = c->fx.n;
		take_link_events(c);
		take_kafka_items(c);
		if (c->fx.n == before && c->nkitems == 0)
			break;
		turn_apply(c);
	}
	turn_apply(c);
}
