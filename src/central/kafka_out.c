#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/clock.h"
#include "evc/log.h"
#include "evc/xalloc.h"
#include "src/central/kafka_out.h"

struct kafka_out {
	rd_kafka_t *rk;
	char topics[4][BUS_NAME_MAX]; /* by enum msg_topic */
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
	pthread_cond_t cv;
	struct msg *next; /* owned; NULL = nothing waiting */
	int stopping;
	/* Microseconds the last status took to encode and produce. A change
	 * waits at least ten times that, so a large network's status costs at
	 * most about a tenth of a core however often CPs change. */
	atomic_long cost_us;
	/* Notifications (kafka_out_queue) in order: slots q[head..head+count)
	 * (mod QCAP) are queued or being encoded by the publisher; the main
	 * thread writes only free slots. Encoding a CONSUMO_UPDATE with jansson
	 * was 60% of the main thread in a telemetry flood. */
	struct msg *q;
	size_t head, count;
	pthread_cond_t space;
};

#define QCAP 2048  /* notifications waiting: 8 loop turns of 256 */
#define QTAKE 64   /* taken by the publisher at a time */

static void *publisher(void *arg)
{
	struct kafka_out *o = arg;
	pthread_mutex_lock(&o->mu);
	for (;;) {
		while (o->count == 0 && o->next == NULL && !o->stopping)
			pthread_cond_wait(&o->cv, &o->mu);
		if (o->count > 0) {
			size_t k = o->count;
			if (k > QCAP - o->head)
				k = QCAP - o->head;
			if (k > QTAKE)
				k = QTAKE;
			size_t h = o->head;
			pthread_mutex_unlock(&o->mu);
			for (size_t i = h; i < h + k; i++) {
				char err[BUS_ERR_LEN];
				if (kafka_out_produce(o, &o->q[i], err) == -1)
					log_error("kafka: %s", err);
				msg_free(&o->q[i]);
			}
			pthread_mutex_lock(&o->mu);
			o->head = (o->head + k) % QCAP;
			o->count -= k;
			pthread_cond_signal(&o->space);
			continue;
		}
		if (o->next == NULL)
			break; /* stopping, nothing left */
		struct msg *m = o->next;
		o->next = NULL;
		pthread_mutex_unlock(&o->mu);
		char err[BUS_ERR_LEN];
		double t0 = clock_mono();
		if (kafka_out_produce(o, m, err) == -1)
			log_warn("network_status not published: %s", err);
		atomic_store(&o->cost_us, (long)((clock_mono() - t0) * 1e6));
		msg_free(m);
		free(m);
		pthread_mutex_lock(&o->mu);
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

struct kafka_out *kafka_out_new(const char *brokers, const char *prefix, bus_state_fn on_state,
				void *state_arg, char err[BUS_ERR_LEN])
{
	struct bus_opts opts = { .brokers = brokers, .on_state = on_state, .state_arg = state_arg };
	rd_kafka_t *rk = bus_producer_new(&opts, err);
	if (rk == NULL)
		return NULL;
	struct kafka_out *o = xcalloc(1, sizeof *o);
	o->rk = rk;
	for (int t = MSG_T_DRIVER_REQUESTS; t <= MSG_T_NETWORK_STATUS; t++)
		bus_name(o->topics[t], sizeof o->topics[t], prefix, msg_topic_name((enum msg_topic)t));
	o->dirty = 1; /* the first status goes out as soon as Kafka is up */
	o->due = 0;
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	pthread_cond_init(&o->space, NULL);
	o->q = xcalloc(QCAP, sizeof *o->q);
	int rc = pthread_create(&o->pub, NULL, publisher, o);
	if (rc != 0) {
		snprintf(err, BUS_ERR_LEN, "cannot start the status publisher thread: %s", strerror(rc));
		o->pub_started = 0;
		kafka_out_free(o, 0);
		return NULL;
	}
	o->pub_started = 1;
	return o;
}

int kafka_out_produce(struct kafka_out *o, const struct msg *m, char err[BUS_ERR_LEN])
{
	char merr[MSG_ERR_LEN];
	size_t len;
	char *json = msg_encode(m, &len, merr);
	if (json == NULL) {
		snprintf(err, BUS_ERR_LEN, "cannot encode %.30s: %.200s", msg_type_name(m->type) ? msg_type_name(m->type) : "?",
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
	pthread_mutex_lock(&o->mu);
	/* Full: the publisher is behind; wait for it (it frees QTAKE slots at
	 * a time) rather than let the queue grow without bound. */
	while (o->count == QCAP)
		pthread_cond_wait(&o->space, &o->mu);
	struct msg *slot = &o->q[(o->head + o->count) % QCAP];
	*slot = *m;
	slot->cps = NULL; /* notifications own nothing; a status goes by kafka_out_tick */
	slot->ncps = 0;
	o->count++;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
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

int kafka_out_tick(struct kafka_out *o, const struct core *c, double now, double wall, int up)
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
	if (now < o->due)
		return 0;
	struct msg *m = xmalloc(sizeof *m);
	core_network_status(c, wall, m);
	pthread_mutex_lock(&o->mu);
	struct msg *old = o->next;
	o->next = m;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
	if (old != NULL) {
		msg_free(old);
		free(old);
	}
	o->dirty = 0;
	o->due = now + KAFKA_OUT_PERIOD;
	return 1;
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

int kafka_out_pending(struct kafka_out *o)
{
	pthread_mutex_lock(&o->mu);
	size_t n = o->count;
	pthread_mutex_unlock(&o->mu);
	return (int)n + rd_kafka_outq_len(o->rk);
}


void kafka_out_free(struct kafka_out *o, int flush_ms)
{
	if (o == NULL)
		return;
	if (o->pub_started) {
		/* The last snapshot still waiting is published before the flush. */
		pthread_mutex_lock(&o->mu);
		o->stopping = 1;
		pthread_cond_signal(&o->cv);
		pthread_mutex_unlock(&o->mu);
		pthread_join(o->pub, NULL);
	}
	if (o->next != NULL) {
		msg_free(o->next);
		free(o->next);
	}
	for (size_t i = 0; i < o->count; i++)
		msg_free(&o->q[(o->head + i) % QCAP]); /* only if the thread never ran */
	free(o->q);
	pthread_cond_destroy(&o->space);
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	bus_producer_close(o->rk, flush_ms);
	free(o);
}
