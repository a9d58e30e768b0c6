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
#include "evc/notify.h"
#include "evc/xalloc.h"
#include "src/central/apiwire.h"
#include "src/central/service.h"
#include "src/central/keytab.h"
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
	char err[EVC_ERR_LEN] = "";
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

static void add_reg(void *arg, const struct core_reg *r)
{
	struct central *c = arg;
	core_on_registry(c->core, r, clock_wall(), &c->fx);
}

void turn_registry_poll(struct central *c)
{
	int v = store_data_version(c->store);
	if (v == c->reg_data_version)
		return;
	c->reg_data_version = v;
	char err[EVC_ERR_LEN];
	int64_t rev = store_foreach_reg(c->store, c->reg_rev, add_reg, c, err);
	if (rev < 0)
		log_warn("registry: %s", err);
	else
		c->reg_rev = rev;
}

static void take_link_events(struct central *c)
{
	size_t n = cplink_drain(c->link, c->cev, TURN_BATCH_LINK);
	for (size_t i = 0; i < n; i++) {
		/* A CP registered a moment ago at the registry (or with
		 * --add-cp) must be known when its first REGISTER comes. */
		if (c->cev[i].kind == CPL_FRAME && strncmp(c->cev[i].data, "REGISTER#", 9) == 0) {
			turn_registry_poll(c);
			break;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct cplink_event *e = &c->cev[i];
		double now = clock_wall();
		switch (e->kind) {
		case CPL_UP:
			turn_note(c, LOG_INFO, "LINK", "up conn=%llu peer=%s kind=%s", (unsigned long long)e->conn,
				  e->peer, e->tls ? "tls" : "plain");
			core_on_link_up(c->core, e->conn, e->peer, e->tls, now, &c->fx);
			break;
		case CPL_REFUSED:
			turn_note(c, LOG_WARN, "LINK", "refused peer=%s reason=%s", e->peer, e->reason);
			core_on_link_refused(c->core, e->peer, e->reason, now, &c->fx); /* audited, rate-limited */
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

struct rej {
	char cp_id[MSG_CP_ID_MAX + 1];
	double next;        /* monotonic: next audit row allowed */
	unsigned long held; /* rejections since the last row */
};

static void telemetry_rejected(struct central *c, const struct kafka_in_item *it)
{
	const char *cp = it->cp_id[0] ? it->cp_id : "?";
	struct rej *r = hmap_sget(&c->rejects, cp);
	if (r == NULL) {
		if (hmap_count(&c->rejects) >= 4096)
			return; /* counted above; a flood of made-up ids adds no rows */
		r = xcalloc(1, sizeof *r);
		xstrlcpy(r->cp_id, cp, sizeof r->cp_id);
		hmap_sput(&c->rejects, r->cp_id, r);
	}
	r->held++;
	if (c->mono_now < r->next)
		return;
	core_fx_audit(&c->fx, clock_wall(), "central", NULL, "TELEMETRY_REJECTED", it->cp_id[0] ? it->cp_id : NULL,
		      "%s (%lu message(s) since the last row)", it->err, r->held);
	if (r->held == 1)
		turn_note(c, LOG_WARN, "TELEMETRY", "rejected from CP %s: %s", cp, it->err);
	r->held = 0;
	r->next = c->mono_now + 60.0;
}

static void apply_kafka_item(struct central *c, struct kafka_in_item *it)
{
	if (it->rejected) {
		/* evcharging(7) SECURITY: counted, audited (once a minute
		 * per CP, with how many since), never applied. */
		c->status.telemetry_rejected++;
		telemetry_rejected(c, it);
		return;
	}
	if (it->bad) {
		c->status.kafka_bad++;
		if (c->mono_now >= c->badmsg_window) {
			if (c->badmsg_dropped)
				turn_note(c, LOG_WARN, "BAD_MSG", "%lu more bad messages not shown", c->badmsg_dropped);
			c->badmsg_window = c->mono_now + 10.0;
			c->badmsg_count = c->badmsg_dropped = 0;
		}
		if (c->badmsg_count++ < 10)
			turn_note(c, LOG_WARN, "BAD_MSG", "topic=%s partition=%d offset=%lld reason=%s",
				  msg_topic_name(it->topic), (int)it->partition, (long long)it->offset, it->err);
		else
			c->badmsg_dropped++;
		return;
	}
	c->status.kafka_in++;
	if (it->topic == MSG_T_CP_TELEMETRY)
		c->status.telemetry_accepted++;
	core_on_kafka(c->core, &it->msg, clock_wall(), &c->fx);
}

/* The items of the turn are kept only for their offsets (kafka_in_done,
 * after the COMMIT), and within a partition the last is the highest: keep
 * the last item of each (topic, partition), to make room for more. */
static void keep_last_offsets(struct central *c)
{
	size_t o = 0;
	for (size_t i = 0; i < c->nkitems; i++) {
		const struct kafka_in_item *it = &c->kitems[i];
		size_t j;
		for (j = 0; j < o; j++)
			if (c->kitems[j].topic == it->topic && c->kitems[j].partition == it->partition)
				break;
		/* j <= i: slot j holds an item already seen (or this one). */
		c->kitems[j].topic = it->topic;
		c->kitems[j].partition = it->partition;
		c->kitems[j].offset = it->offset;
		if (j == o)
			o++;
	}
	c->nkitems = o;
}

/* A full drain means a backlog: take up to this many more batches in the
 * same turn, coalescing after each (core_fxlist_coalesce), so the turn's
 * one COMMIT and each session's one CONSUMO_UPDATE cover all of them. */
#define TURN_CATCHUP_BATCHES 8

static void take_kafka_items(struct central *c)
{
	for (int b = 0; b < TURN_CATCHUP_BATCHES; b++) {
		if (b > 0)
			keep_last_offsets(c);
		size_t room = TURN_BATCH_KAFKA - c->nkitems;
		size_t n = kafka_in_drain(c->kin, c->kitems + c->nkitems, room);
		for (size_t i = c->nkitems; i < c->nkitems + n; i++)
			apply_kafka_item(c, &c->kitems[i]);
		c->nkitems += n;
		if (n < room)
			break;
		core_fxlist_coalesce(&c->fx, &c->seen_sessions);
	}
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
	core_set_kafka_up(c->core, up);
	xstrlcpy(c->status.kafka_reason, up ? "" : reason, sizeof c->status.kafka_reason);
	if (up)
		turn_note(c, LOG_INFO, "KAFKA", "up");
	else
		turn_note(c, LOG_WARN, "KAFKA", "down reason=%s", reason);
}

/* Store the batch's rows in one transaction. A busy or full database gets a
 * few more tries (each waits up to the busy timeout), then -1. */
/* The notifications a driver must get whatever fails: written to the
 * outbox in the transaction of the change that caused them, deleted once
 * the broker has them (evcharging(7) RULES). CONSUMO_UPDATE is progress:
 * the next one says more, so it is produced without a stored copy. */
static int must_deliver(enum msg_type t)
{
	return t == MSG_AUTH_OK || t == MSG_AUTH_DENIED || t == MSG_TICKET || t == MSG_SUPPLY_ERROR ||
	       t == MSG_SESSION_CANCELLED;
}

static void outbox_forget_new(struct central *c)
{
	for (size_t i = 0; i < c->nobn; i++)
		free(c->obn[i].payload);
	c->nobn = 0;
}

/* Inside the turn's transaction: this turn's notifications into the
 * outbox. */
static int outbox_add_turn(struct central *c, double now, char err[EVC_ERR_LEN])
{
	for (size_t i = 0; i < c->fx.n; i++) {
		const struct core_fx *x = &c->fx.v[i];
		if (x->kind != CORE_FX_PRODUCE || !must_deliver(x->u.produce.type))
			continue;
		char merr[EVC_ERR_LEN];
		char *json = msg_encode(&x->u.produce, NULL, merr);
		if (json == NULL) {
			log_error("cannot encode %s for %s: %s", msg_type_name(x->u.produce.type), x->u.produce.user_id,
				  merr);
			continue;
		}
		enum msg_topic t = msg_type_topic(x->u.produce.type);
		int64_t id = store_outbox_add(c->store, msg_topic_name(t), x->u.produce.user_id, json, now, err);
		if (id < 0) {
			free(json);
			return -1;
		}
		if (c->nobn == c->capobn) {
			c->capobn = c->capobn ? c->capobn * 2 : 32;
			c->obn = xreallocarray(c->obn, c->capobn, sizeof *c->obn);
		}
		c->obn[c->nobn++] = (struct outbox_row){ .id = id, .topic = t, .payload = json };
		xstrlcpy(c->obn[c->nobn - 1].key, x->u.produce.user_id, sizeof c->obn[0].key);
	}
	return 0;
}

/* Store the batch's rows in one transaction: the core's rows, this turn's
 * outbox rows, and the deletion of the outbox rows the broker confirmed. A
 * busy or full database gets a few more tries (each waits up to the busy
 * timeout), then -1. */
static int store_batch(struct central *c, char err[EVC_ERR_LEN])
{
	enum { ATTEMPTS = 4 };
	double now = clock_wall();
	for (int attempt = 1;; attempt++) {
		outbox_forget_new(c);
		int ok = store_begin(c->store, err) == 0;
		for (size_t i = 0; ok && i < c->fx.n; i++)
			if (store_apply(c->store, &c->fx.v[i], err) == -1)
				ok = 0;
		for (size_t i = 0; ok && i < c->ndelivered; i++)
			if (store_outbox_delete(c->store, (int64_t)c->delivered[i], err) == -1)
				ok = 0;
		if (ok && outbox_add_turn(c, now, err) == -1)
			ok = 0;
		if (ok && store_commit(c->store, err) == 0) {
			c->ndelivered = 0;
			return 0;
		}
		store_rollback(c->store);
		if (attempt == ATTEMPTS) {
			outbox_forget_new(c);
			return -1;
		}
		log_warn("database write failed (%s): try %d of %d", err, attempt + 1, ATTEMPTS);
		/* A back-off between retries of a failed write, not a wait for
		 * another party: the busy timeout already waited for locks. */
		poll(NULL, 0, 100 * attempt);
	}
}

/* The broker's answers about outbox rows: delivered ones are deleted in
 * the next transaction, refused ones are offered again by the sweep. */
static void take_settled(struct central *c)
{
	uint64_t ids[256];
	int ok[256];
	size_t n;
	while ((n = kafka_out_take_settled(c->kout, ids, ok, 256)) > 0) {
		for (size_t i = 0; i < n; i++) {
			hmap_udel(&c->outbox_inflight, ids[i]);
			if (!ok[i])
				continue;
			if (c->ndelivered == c->capdelivered) {
				c->capdelivered = c->capdelivered ? c->capdelivered * 2 : 64;
				c->delivered = xreallocarray(c->delivered, c->capdelivered, sizeof *c->delivered);
			}
			c->delivered[c->ndelivered++] = ids[i];
		}
	}
}

static int outbox_send(struct central *c, uint64_t id, enum msg_topic t, const char *key, const char *payload)
{
	if (hmap_uget(&c->outbox_inflight, id) != NULL)
		return 0;
	if (kafka_out_send_stored(c->kout, id, t, key, payload) == -1)
		return -1;
	hmap_uput(&c->outbox_inflight, id, (void *)1);
	return 0;
}

struct sweep {
	struct central *c;
	int full;
};

static void sweep_row(void *arg, int64_t id, const char *topic, const char *key, const char *payload)
{
	struct sweep *sw = arg;
	if (sw->full)
		return;
	/* Delivered, its deletion not yet committed: sending it again would
	 * only make a duplicate. */
	for (size_t i = 0; i < sw->c->ndelivered; i++)
		if (sw->c->delivered[i] == (uint64_t)id)
			return;
	enum msg_topic t = strcmp(topic, msg_topic_name(MSG_T_NETWORK_STATUS)) == 0 ? MSG_T_NETWORK_STATUS
										  : MSG_T_DRIVER_NOTIFICATIONS;
	if (outbox_send(sw->c, (uint64_t)id, t, key, payload) == -1)
		sw->full = 1;
}

/* Every OUTBOX_SWEEP s (and at start): rows neither delivered nor on their
 * way are offered to the producer again (a crash before delivery, a
 * refusal of a full local queue). At most OUTBOX_SWEEP_ROWS a time. */
#define OUTBOX_SWEEP 5.0
#define OUTBOX_SWEEP_ROWS 1000
void turn_outbox_sweep(struct central *c, double mono)
{
	if (mono < c->outbox_next_sweep)
		return;
	c->outbox_next_sweep = mono + OUTBOX_SWEEP;
	struct sweep sw = { .c = c, .full = 0 };
	char err[EVC_ERR_LEN];
	int n = store_outbox_scan(c->store, 0, OUTBOX_SWEEP_ROWS, sweep_row, &sw, err);
	if (n < 0)
		log_warn("outbox: %s", err);
}

void turn_outbox_settle(struct central *c)
{
	char err[EVC_ERR_LEN];
	take_settled(c);
	if (c->ndelivered == 0 || c->db_failed)
		return;
	int ok = store_begin(c->store, err) == 0;
	for (size_t i = 0; ok && i < c->ndelivered; i++)
		ok = store_outbox_delete(c->store, (int64_t)c->delivered[i], err) == 0;
	if (ok && store_commit(c->store, err) == 0) {
		c->ndelivered = 0;
		return;
	}
	store_rollback(c->store);
	log_warn("outbox: %s (the delivered notifications are sent again at the next start)", err);
}

/* Carry out the effects gathered this turn, in the order of the header
 * comment: store + commit, then act, then offsets, then show. */
static int need_txn(const struct central *c)
{
	if (c->ndelivered > 0)
		return 1;
	for (size_t i = 0; i < c->fx.n; i++) {
		const struct core_fx *x = &c->fx.v[i];
		if (x->kind == CORE_FX_STORE_CP || x->kind == CORE_FX_STORE_SESSION ||
		    x->kind == CORE_FX_STORE_EVENT || x->kind == CORE_FX_STORE_REQUEST ||
		    x->kind == CORE_FX_PRUNE_REQUESTS || x->kind == CORE_FX_AUDIT ||
		    (x->kind == CORE_FX_PRODUCE && must_deliver(x->u.produce.type)))
			return 1;
	}
	return 0;
}

/* Group commit: ms until this turn's effects may be stored and acted on
 * (0: now). Effects wait only if they need the database and the last
 * COMMIT was less than --group-commit ago; the ones that do not (a
 * heartbeat's answer, a CONSUMO_UPDATE alone) never wait. */
static int commit_wait_ms(const struct central *c, double mono)
{
	if (c->group_commit <= 0 || c->quit || c->db_failed || c->fx.n == 0)
		return 0;
	double due = c->last_commit + c->group_commit;
	if (mono >= due || !need_txn(c))
		return 0;
	int ms = (int)((due - mono) * 1000.0 + 0.999);
	return ms > 0 ? ms : 1;
}

void turn_apply(struct central *c)
{
	char err[EVC_ERR_LEN];
	/* A turn that applied many CONSUMO of a session stores one row and
	 * produces one CONSUMO_UPDATE for it (evcharging(7) RULES). */
	core_fxlist_coalesce(&c->fx, &c->seen_sessions);
	int txn = need_txn(c);
	if (c->db_failed) {
		/* The core is ahead of the database: nothing more may be acted
		 * on or acknowledged; shutdown is under way. */
		core_fxlist_clear(&c->fx);
		c->nkitems = 0;
		return;
	}
	if (txn) {
		double t0 = clock_mono();
		c->last_commit = t0;
		int stored = store_batch(c, err);
		if (c->aw != NULL)
			apiwire_observe_commit(c->aw, clock_mono() - t0);
		if (stored != 0) {
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
			if (!must_deliver(x->u.produce.type))
				kafka_out_queue(c->kout, &x->u.produce); /* encoded off this thread */
			break;
		case CORE_FX_STATUS:
			kafka_out_mark_dirty(c->kout, mono);
			break;
		case CORE_FX_KEY:
			/* Before the KEY frame that follows it goes out: the engine's
			 * first encrypted message must find its key here. */
			keytab_set_key(c->keys, x->u.key.cp_id, x->u.key.key);
			keytab_set_plain(c->keys, x->u.key.cp_id, x->u.key.plain);
			break;
		case CORE_FX_REGISTERED:
			cplink_registered(c->link, x->u.link.conn); /* its register timeout is over */
			break;
		default:
			break;
		}
	}
	/* Stored, so they survive a crash: the outbox rows go to the producer
	 * now (in order, after this turn's frames), or at the next sweep if
	 * its queue is full. */
	for (size_t i = 0; i < c->nobn; i++)
		outbox_send(c, (uint64_t)c->obn[i].id, c->obn[i].topic, c->obn[i].key, c->obn[i].payload);
	outbox_forget_new(c);
	/* Everything these messages caused is stored (notifications in the
	 * outbox), so their offsets can be committed at once. */
	if (c->nkitems > 0) {
		kafka_in_done(c->kin, c->kitems, c->nkitems);
		kafka_in_release(c->kin);
	}
	c->nkitems = 0;
	c->status.links = cplink_count(c->link);
	if (c->aw != NULL)
		apiwire_on_effects(c->aw, &c->fx); /* the API's answers: after the COMMIT */
	if (c->fx.n > 0) {
		c->fe->ops->on_effects(c->fe, &c->fx);
		ctl_on_effects(c->ctl, &c->fx);
	}
	core_fxlist_clear(&c->fx);
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
	pfd[nfd++] = (struct pollfd){ .fd = c->aw != NULL ? apiwire_event_fd(c->aw) : -1, .events = POLLIN };
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
	int wait = commit_wait_ms(c, mono);
	if (wait > 0 && wait < timeout)
		timeout = wait;
	return timeout;
}

void turn_run(struct central *c, const struct pollfd pfd[TURN_NFDS])
{
	c->mono_now = clock_mono();
	core_set_mono(c->core, c->mono_now);
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
	if (pfd[5].fd >= 0 && (pfd[5].revents & POLLIN)) {
		apiwire_take(c, c->aw);
		apiwire_weather_line(c->core, c->status.weather, sizeof c->status.weather);
	}
	if (c->ctl != NULL)
		ctl_run(c->ctl, c, pfd + TURN_NFDS_LOOP);
	double wall = clock_wall();
	double mono = clock_mono();
	if (mono >= c->next_tick) {
		turn_registry_poll(c);
		core_on_tick(c->core, wall, &c->fx);
		apiwire_weather_line(c->core, c->status.weather, sizeof c->status.weather); /* stale marks */
		c->next_tick = mono + 1.0;
		notify_watchdog(mono);
	}
	if (commit_wait_ms(c, mono) == 0)
		turn_apply(c);
	if (kafka_out_tick(c->kout, mono, c->status.kafka_up)) {
		struct msg *st = xmalloc(sizeof *st);
		core_network_status(c->core, wall, st);
		kafka_out_status(c->kout, st, mono);
	}
	take_settled(c);
	turn_outbox_sweep(c, mono);
	if (c->aw != NULL)
		apiwire_refresh(c, c->aw, wall, mono);
	c->fe->ops->refresh(c->fe, wall);
	ctl_refresh(c->ctl, c, wall);
}

void turn_drain(struct central *c)
{
	c->mono_now = clock_mono();
	core_set_mono(c->core, c->mono_now);
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
