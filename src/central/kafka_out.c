#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "evc/bqueue.h"
#include "evc/clock.h"
#include "evc/log.h"
#include "evc/xalloc.h"
#include "src/central/kafka_out.h"

struct kafka_out {
	rd_kafka_t *rk;
	char *brokers;
	char topics[4][BUS_NAME_MAX]; /* by enum msg_topic */
	int topics_ok;                /* publisher thread: output topics created */
	double topics_next;
	/* Is the broker reachable: the producer's statistics and the
	 * consumer's errors report it; the main loop is woken on a change. */
	pthread_mutex_t state_mu;
	int up, changed;
	char reason[128];
	int state_fd;
	int dirty;
	double due;         /* monotonic: next status publication */
	int was_up;
	/* Encoding network_status is the costly part: 10,000 CPs make a
	 * 750 KB JSON document, 35-250 ms of jansson on a busy machine, which
	 * stalled the main loop (and every FAULT behind it) several times a
	 * second. The main thread only snapshots the core (about 1 ms); this
	 * publisher thread encodes and produces. A newer snapshot replaces one
	 * still waiting: only the latest state is worth sending. */
	pthread_t pub;
	int pub_started;
	pthread_mutex_t mu;
	struct msg *next; /* owned; NULL = nothing waiting */
	int stopping;
	/* Microseconds the last status took to encode and produce. A change
	 * waits at least ten times that, so a large network's status costs at
	 * most about a tenth of a core however often CPs change. */
	atomic_long cost_us;
	/* Notifications (kafka_out_queue) in order; the publisher removes
	 * them only once produced, so kafka_out_pending counts the ones being
	 * encoded too. Encoding a CONSUMO_UPDATE with jansson was 60% of the
	 * main thread in a telemetry flood. */
	struct bqueue *q;
	/* Outbox notifications: the broker's answers (delivery reports come
	 * on the thread that polls: the main thread, or the flush at close)
	 * and produce calls that failed, for kafka_out_take_settled. */
	pthread_mutex_t settled_mu;
	struct settled { uint64_t id; int ok; } *settled;
	size_t nsettled, capsettled;
};

/* One queue item: a message to encode, or an outbox notification already
 * encoded and stored (id != 0; payload owned). */
struct out_item {
	uint64_t id;
	enum msg_topic topic;
	char key[MSG_ID_MAX + 1];
	char *payload;
	size_t len;
	struct msg m;
};

#define QCAP 2048  /* notifications waiting: 8 loop turns of 256 */
#define QTAKE 64   /* taken by the publisher at a time */

/* Drivers subscribe to driver_notifications and network_status; creating
 * them up front means a driver started before the first notification finds
 * its topic. The broker might also auto-create them on first produce;
 * doing it here does not depend on that. Publisher thread (it may block
 * up to 3 s). */
static void create_topics(struct kafka_out *o)
{
	if (o->topics_ok || clock_mono() < o->topics_next)
		return;
	const char *outs[2] = { o->topics[MSG_T_DRIVER_NOTIFICATIONS], o->topics[MSG_T_NETWORK_STATUS] };
	char err[EVC_ERR_LEN];
	o->topics_ok = bus_create_topics(o->brokers, outs, 2, 3000, err) == 0;
	if (!o->topics_ok)
		log_debug("kafka: creating output topics: %s (will retry)", err);
	o->topics_next = clock_mono() + 10.0;
}

static void settle(struct kafka_out *o, uint64_t id, int ok)
{
	pthread_mutex_lock(&o->settled_mu);
	if (o->nsettled == o->capsettled) {
		o->capsettled = o->capsettled ? o->capsettled * 2 : 64;
		o->settled = xreallocarray(o->settled, o->capsettled, sizeof *o->settled);
	}
	o->settled[o->nsettled++] = (struct settled){ .id = id, .ok = ok };
	pthread_mutex_unlock(&o->settled_mu);
}

static void on_delivery(void *arg, uint64_t id, int ok, const char *err)
{
	struct kafka_out *o = arg;
	if (!ok)
		log_warn("kafka: notification %llu not delivered (%s): sent again later",
			 (unsigned long long)id, err ? err : "?");
	settle(o, id, ok);
}

static void produce_item(struct kafka_out *o, struct out_item *it)
{
	char err[EVC_ERR_LEN];
	if (it->id == 0) {
		if (kafka_out_produce(o, &it->m, err) == -1)
			log_error("kafka: %s", err);
		msg_free(&it->m);
		return;
	}
	if (bus_produce_id(o->rk, o->topics[it->topic], it->key[0] ? it->key : NULL, it->payload, it->len, it->id,
			   err) == -1) {
		/* The local queue is full (a long outage): the row stays in the
		 * outbox and the main loop offers it again later. */
		log_debug("kafka: %s (notification %llu kept for later)", err, (unsigned long long)it->id);
		settle(o, it->id, 0);
	}
	free(it->payload);
	it->payload = NULL;
}

static void *publisher(void *arg)
{
	struct kafka_out *o = arg;
	struct out_item *batch = xcalloc(QTAKE, sizeof *batch);
	for (;;) {
		size_t k = bqueue_peek_wait(o->q, batch, QTAKE);
		create_topics(o);
		for (size_t i = 0; i < k; i++)
			produce_item(o, &batch[i]);
		bqueue_drop(o->q, k);
		pthread_mutex_lock(&o->mu);
		struct msg *m = o->next;
		o->next = NULL;
		int stopping = o->stopping;
		pthread_mutex_unlock(&o->mu);
		if (m != NULL) {
			char err[EVC_ERR_LEN];
			double t0 = clock_mono();
			if (kafka_out_produce(o, m, err) == -1)
				log_warn("network_status not published: %s", err);
			atomic_store(&o->cost_us, (long)((clock_mono() - t0) * 1e6));
			msg_free(m);
			free(m);
		} else if (k == 0 && stopping && bqueue_len(o->q) == 0) {
			break; /* stopping, nothing left */
		}
	}
	free(batch);
	return NULL;
}

void kafka_out_set_state(struct kafka_out *o, int up, const char *reason)
{
	pthread_mutex_lock(&o->state_mu);
	/* While down, a new reason is news only if the state flips; otherwise
	 * every retry of librdkafka would print a line. */
	if (o->up != up) {
		o->up = up;
		xstrlcpy(o->reason, up ? "" : (reason != NULL ? reason : "unreachable"), sizeof o->reason);
		o->changed = 1;
	} else if (!up && strcmp(o->reason, "connecting") == 0) {
		xstrlcpy(o->reason, reason != NULL ? reason : "unreachable", sizeof o->reason);
		o->changed = 1;
	}
	if (o->changed) {
		uint64_t one = 1;
		ssize_t r = write(o->state_fd, &one, sizeof one);
		(void)r; /* EAGAIN: the counter is already non-zero, the loop wakes anyway */
	}
	pthread_mutex_unlock(&o->state_mu);
}

void kafka_out_state_cb(void *arg, int up, const char *reason) { kafka_out_set_state(arg, up, reason); }

int kafka_out_event_fd(const struct kafka_out *o) { return o->state_fd; }

int kafka_out_get_state(struct kafka_out *o, int *up, char *reason, size_t n)
{
	uint64_t cnt;
	ssize_t r = read(o->state_fd, &cnt, sizeof cnt);
	(void)r;
	pthread_mutex_lock(&o->state_mu);
	int changed = o->changed;
	o->changed = 0;
	*up = o->up;
	xstrlcpy(reason, o->reason, n);
	pthread_mutex_unlock(&o->state_mu);
	return changed;
}

struct kafka_out *kafka_out_new(const char *brokers, const char *prefix, char err[EVC_ERR_LEN])
{
	struct kafka_out *o = xcalloc(1, sizeof *o);
	pthread_mutex_init(&o->state_mu, NULL);
	pthread_mutex_init(&o->mu, NULL);
	pthread_mutex_init(&o->settled_mu, NULL);
	/* Unknown until the first probe: shown as down so nobody trusts it yet. */
	xstrlcpy(o->reason, "connecting", sizeof o->reason);
	o->changed = 1;
	o->brokers = xstrdup(brokers);
	o->state_fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
	if (o->state_fd == -1) {
		snprintf(err, EVC_ERR_LEN, "eventfd: %s", strerror(errno));
		kafka_out_free(o, 0);
		return NULL;
	}
	struct bus_opts opts = { .brokers = brokers,
				 .on_state = kafka_out_state_cb,
				 .state_arg = o,
				 .on_delivery = on_delivery,
				 .delivery_arg = o };
	o->rk = bus_producer_new(&opts, err);
	if (o->rk == NULL) {
		kafka_out_free(o, 0);
		return NULL;
	}

	for (int t = MSG_T_DRIVER_REQUESTS; t <= MSG_T_NETWORK_STATUS; t++)
		bus_name(o->topics[t], sizeof o->topics[t], prefix, msg_topic_name((enum msg_topic)t));
	o->dirty = 1; /* the first status goes out as soon as Kafka is up */
	o->due = 0;
	char qerr[EVC_ERR_LEN];
	o->q = bqueue_new(sizeof(struct out_item), QCAP, qerr);
	if (o->q == NULL) {
		snprintf(err, EVC_ERR_LEN, "notification queue: %s", qerr);
		kafka_out_free(o, 0);
		return NULL;
	}
	int rc = pthread_create(&o->pub, NULL, publisher, o);
	if (rc != 0) {
		snprintf(err, EVC_ERR_LEN, "cannot start the status publisher thread: %s", strerror(rc));
		o->pub_started = 0;
		kafka_out_free(o, 0);
		return NULL;
	}
	o->pub_started = 1;
	return o;
}

int kafka_out_produce(struct kafka_out *o, const struct msg *m, char err[EVC_ERR_LEN])
{
	char merr[EVC_ERR_LEN];
	size_t len;
	char *json = msg_encode(m, &len, merr);
	if (json == NULL) {
		snprintf(err, EVC_ERR_LEN, "cannot encode %.30s: %.200s", msg_type_name(m->type) ? msg_type_name(m->type) : "?",
			 merr);
		return -1;
	}
	enum msg_topic t = msg_type_topic(m->type);
	const char *key = t == MSG_T_CP_TELEMETRY ? m->cp_id : m->user_id;
	int rc = bus_produce(o->rk, o->topics[t], key[0] != '\0' ? key : NULL, json, len, err);
	free(json);
	return rc;
}

void kafka_out_queue(struct kafka_out *o, const struct msg *m)
{
	/* Full: the publisher is behind; wait for it (it frees QTAKE slots at
	 * a time) rather than let the queue grow without bound. */
	struct out_item it;
	memset(&it, 0, offsetof(struct out_item, m));
	it.m = *m;
	it.m.cps = NULL; /* notifications own nothing; a status goes by kafka_out_tick */
	it.m.ncps = 0;
	if (bqueue_push(o->q, &it, 1) == -1)
		log_error("kafka: notification %s for %s dropped: Central is stopping",
			  msg_type_name(m->type) ? msg_type_name(m->type) : "?", m->user_id);
}

int kafka_out_send_stored(struct kafka_out *o, uint64_t id, enum msg_topic topic, const char *key,
			  const char *payload)
{
	struct out_item it;
	memset(&it, 0, sizeof it);
	it.id = id;
	it.topic = topic;
	xstrlcpy(it.key, key ? key : "", sizeof it.key);
	it.len = strlen(payload);
	it.payload = xstrdup(payload);
	if (bqueue_push(o->q, &it, 0) == -1) {
		free(it.payload);
		return -1;
	}
	return 0;
}

size_t kafka_out_take_settled(struct kafka_out *o, uint64_t *ids, int *ok, size_t max)
{
	pthread_mutex_lock(&o->settled_mu);
	size_t n = o->nsettled < max ? o->nsettled : max;
	for (size_t i = 0; i < n; i++) {
		ids[i] = o->settled[i].id;
		ok[i] = o->settled[i].ok;
	}
	if (n > 0) {
		memmove(o->settled, o->settled + n, (o->nsettled - n) * sizeof *o->settled);
		o->nsettled -= n;
	}
	pthread_mutex_unlock(&o->settled_mu);
	return n;
}

void kafka_out_mark_dirty(struct kafka_out *o, double now)
{
	double wait = (double)atomic_load(&o->cost_us) * 10 / 1e6;
	if (wait < KAFKA_OUT_COALESCE)
		wait = KAFKA_OUT_COALESCE;
	if (wait > KAFKA_OUT_PERIOD)
		wait = KAFKA_OUT_PERIOD;
	if (o->dirty && o->due <= now + wait)
		return;
	o->dirty = 1;
	o->due = now + wait;
}

int kafka_out_tick(struct kafka_out *o, double now, int up)
{
	bus_poll(o->rk, 0);
	if (!up) {
		o->was_up = 0;
		return 0;
	}
	if (!o->was_up) {
		/* Back (or first up): tell everyone the current state at once. */
		o->was_up = 1;
		o->dirty = 1;
		o->due = now;
	}
	return now >= o->due;
}

void kafka_out_status(struct kafka_out *o, struct msg *m, double now)
{
	pthread_mutex_lock(&o->mu);
	struct msg *old = o->next;
	o->next = m;
	pthread_mutex_unlock(&o->mu);
	bqueue_kick(o->q);
	if (old != NULL) {
		msg_free(old);
		free(old);
	}
	o->dirty = 0;
	o->due = now + KAFKA_OUT_PERIOD;
}

int kafka_out_timeout_ms(const struct kafka_out *o, double now, int cap)
{
	if (!o->was_up)
		return cap; /* nothing to publish while Kafka is unreachable */
	double ms = (o->due - now) * 1000.0;
	if (ms < 0)
		return 0;
	if (ms > cap)
		return cap;
	return (int)ms + 1;
}

void kafka_out_drain(struct kafka_out *o, int flush_ms)
{
	if (o == NULL)
		return;
	if (o->pub_started) {
		/* The last snapshot still waiting is published before the flush. */
		pthread_mutex_lock(&o->mu);
		o->stopping = 1;
		pthread_mutex_unlock(&o->mu);
		bqueue_kick(o->q);
		pthread_join(o->pub, NULL);
		o->pub_started = 0;
	}
	if (o->rk != NULL && flush_ms > 0 && rd_kafka_flush(o->rk, flush_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
		log_warn("kafka: %d message(s) not delivered at exit (the outbox keeps the notifications among them)",
			 rd_kafka_outq_len(o->rk));
}

void kafka_out_free(struct kafka_out *o, int flush_ms)
{
	if (o == NULL)
		return;
	kafka_out_drain(o, flush_ms);
	if (o->next != NULL) {
		msg_free(o->next);
		free(o->next);
	}
	if (o->q != NULL) {
		/* Only if the thread never ran: outbox items own their payload
		 * (their rows stay in the outbox). */
		struct out_item it;
		while (bqueue_pop(o->q, &it, 1) == 1)
			free(it.payload);
	}
	bqueue_free(o->q);
	pthread_mutex_destroy(&o->mu);
	if (o->rk != NULL)
		bus_producer_close(o->rk, 0);
	if (o->state_fd >= 0)
		close(o->state_fd);
	pthread_mutex_destroy(&o->state_mu);
	pthread_mutex_destroy(&o->settled_mu);
	free(o->settled);
	free(o->brokers);
	free(o);
}
