#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "evc/bqueue.h"
#include "evc/bus.h"
#include "evc/clock.h"
#include "evc/log.h"
#include "evc/xalloc.h"
#include "src/central/kafka_in.h"
#include "src/central/keytab.h"

/* Items waiting for the main loop. When full the consumer thread waits:
 * Kafka keeps the rest, so a flood costs no memory here. */
#define KIN_QUEUE_CAP 2048
#define KIN_BATCH 256 /* decoded before one push (a turn's batch, TURN_BATCH_KAFKA) */
#define KIN_RETRY_EVERY 2.0   /* s between attempts to create the consumer */
#define KIN_GROUP "central-processor"

struct kin_pos {
	int topic;          /* 0 driver_requests, 1 cp_telemetry */
	int32_t partition;
	int64_t held;       /* stored, but what it produced may not be delivered yet */
	int64_t next;       /* offset to commit (last released + 1) */
	int dirty;          /* not yet committed */
};

struct kafka_in {
	char *brokers;
	char topics[2][BUS_NAME_MAX];
	char group[BUS_NAME_MAX];
	bus_state_fn on_state; /* consumer errors: the broker is down */
	struct keytab *keys;   /* not owned; NULL: plaintext telemetry only */
	void *state_arg;
	pthread_t thread;
	int started, stop;
	rd_kafka_t *rk; /* touched by the thread while it runs, then by free */

	pthread_mutex_t mu;
	pthread_cond_t cond; /* stop */
	struct bqueue *q;    /* decoded items for the main loop */
	struct kin_pos *pos;
	size_t npos, cappos;
	int commit_dirty;
};

struct kafka_in *kafka_in_new(const char *brokers, const char *prefix, bus_state_fn on_state, void *state_arg,
			      char err[EVC_ERR_LEN])
{
	struct bqueue *q = bqueue_new(sizeof(struct kafka_in_item), KIN_QUEUE_CAP, err);
	if (q == NULL)
		return NULL;
	struct kafka_in *k = xcalloc(1, sizeof *k);
	k->q = q;
	k->brokers = xstrdup(brokers);
	k->on_state = on_state;
	k->state_arg = state_arg;
	bus_name(k->topics[0], sizeof k->topics[0], prefix, MSG_TOPIC_DRIVER_REQUESTS);
	bus_name(k->topics[1], sizeof k->topics[1], prefix, MSG_TOPIC_CP_TELEMETRY);
	bus_name(k->group, sizeof k->group, prefix, KIN_GROUP);
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cond, NULL);
	return k;
}

int kafka_in_event_fd(const struct kafka_in *k) { return bqueue_fd(k->q); }

void kafka_in_set_keys(struct kafka_in *k, struct keytab *keys) { k->keys = keys; }

static void report_down(struct kafka_in *k, const char *why)
{
	if (k->on_state != NULL)
		k->on_state(k->state_arg, 0, why);
}

/* Wait up to secs unless asked to stop; returns 1 if stopping. */
static int wait_stop(struct kafka_in *k, double secs)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	long ns = ts.tv_nsec + (long)((secs - (double)(long)secs) * 1e9);
	ts.tv_sec += (time_t)secs + ns / 1000000000L;
	ts.tv_nsec = ns % 1000000000L;
	pthread_mutex_lock(&k->mu);
	while (!k->stop)
		if (pthread_cond_timedwait(&k->cond, &k->mu, &ts) == ETIMEDOUT)
			break;
	int stop = k->stop;
	pthread_mutex_unlock(&k->mu);
	return stop;
}

static int topic_index(const struct kafka_in *k, const char *name)
{
	for (int i = 0; i < 2; i++)
		if (strcmp(k->topics[i], name) == 0)
			return i;
	return -1;
}

static void handle_message(struct kafka_in *k, const rd_kafka_message_t *m, struct kafka_in_item *it)
{
	memset(it, 0, sizeof *it);
	int ti = topic_index(k, rd_kafka_topic_name(m->rkt));
	it->topic = ti == 0 ? MSG_T_DRIVER_REQUESTS : MSG_T_CP_TELEMETRY;
	it->partition = m->partition;
	it->offset = m->offset;
	if (ti < 0) {
		it->bad = 1;
		snprintf(it->err, sizeof it->err, "message from unexpected topic '%s'", rd_kafka_topic_name(m->rkt));
		return;
	}
	if (m->payload == NULL || m->len == 0) {
		it->bad = 1;
		xstrlcpy(it->err, "empty message", sizeof it->err);
		return;
	}
	if (it->topic == MSG_T_CP_TELEMETRY) {
		/* Decrypted here, off the main thread (evcharging(7) SECURITY). */
		enum telemetry_verdict v = telemetry_open(k->keys, m->payload, m->len, &it->msg, it->cp_id, it->err);
		if (v != TELEMETRY_OK) {
			it->bad = 1;
			it->rejected = v != TELEMETRY_BAD;
			memset(&it->msg, 0, sizeof it->msg);
			return;
		}
	} else if (msg_decode(it->topic, m->payload, m->len, &it->msg, it->err) == -1) {
		it->bad = 1;
		memset(&it->msg, 0, sizeof it->msg);
		return;
	}
	/* Only NETWORK_STATUS_UPDATE owns memory (cps) and it never comes on
	 * these topics; drop it anyway rather than let a queue item own it. */
	if (it->msg.cps != NULL) {
		msg_free(&it->msg);
		it->bad = 1;
		xstrlcpy(it->err, "status message on an input topic", sizeof it->err);
	}
}

/* Commit what the main loop marked done. async: from the loop; sync: at
 * the end. */
static void commit_pending(struct kafka_in *k, rd_kafka_t *rk, int async)
{
	rd_kafka_topic_partition_list_t *l = NULL;
	pthread_mutex_lock(&k->mu);
	if (k->commit_dirty) {
		l = rd_kafka_topic_partition_list_new((int)k->npos);
		for (size_t i = 0; i < k->npos; i++) {
			if (!k->pos[i].dirty)
				continue;
			rd_kafka_topic_partition_t *tp =
				rd_kafka_topic_partition_list_add(l, k->topics[k->pos[i].topic], k->pos[i].partition);
			tp->offset = k->pos[i].next;
			k->pos[i].dirty = 0;
		}
		k->commit_dirty = 0;
	}
	pthread_mutex_unlock(&k->mu);
	if (l == NULL)
		return;
	rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, async);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
		/* Not fatal: the messages come again and the core drops what it
		 * already applied (session ids and seq). */
		log_warn("kafka: offset commit failed: %s", rd_kafka_err2str(e));
	rd_kafka_topic_partition_list_destroy(l);
}

static int is_down_error(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
	       e == RD_KAFKA_RESP_ERR__RESOLVE || e == RD_KAFKA_RESP_ERR__TIMED_OUT;
}

static void *thread_main(void *arg)
{
	struct kafka_in *k = arg;
	const char *topics[2] = { k->topics[0], k->topics[1] };
	struct kafka_in_item *batch = xmalloc(KIN_BATCH * sizeof *batch);

	for (;;) {
		pthread_mutex_lock(&k->mu);
		int stop = k->stop;
		pthread_mutex_unlock(&k->mu);
		if (stop)
			break;
		if (k->rk == NULL) {
			char err[EVC_ERR_LEN];
			/* The shared producer reports the broker's state (kafka_out_new);
			 * a second reporter on the same broker would only add cost. */
			struct bus_opts o = { .brokers = k->brokers };
			k->rk = bus_consumer_new(&o, k->group, topics, 2, err);
			if (k->rk == NULL) {
				char why[128];
				snprintf(why, sizeof why, "Kafka unreachable (%.100s)", err);
				report_down(k, why);
				if (wait_stop(k, KIN_RETRY_EVERY))
					break;
				continue;
			}
		}
		/* Decode what is there (up to KIN_BATCH) and hand it over in one
		 * push: one lock and one wakeup of the main loop per batch. */
		size_t n = 0;
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 100);
		while (m != NULL) {
			if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
				handle_message(k, m, &batch[n++]);
			} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				char why[128];
				snprintf(why, sizeof why, "Kafka unreachable (%.100s)", rd_kafka_message_errstr(m));
				if (is_down_error(m->err))
					report_down(k, why);
				else
					log_warn("kafka: consumer: %s", rd_kafka_message_errstr(m));
			}
			rd_kafka_message_destroy(m);
			m = n < KIN_BATCH ? rd_kafka_consumer_poll(k->rk, 0) : NULL;
		}
		/* Full: wait (Kafka keeps the rest); fewer once stopping. */
		if (n > 0 && bqueue_push_many(k->q, batch, n, 1) < n)
			break;
		commit_pending(k, k->rk, 1);
	}
	free(batch);
	return NULL;
}

int kafka_in_start(struct kafka_in *k, char err[EVC_ERR_LEN])
{
	int e = pthread_create(&k->thread, NULL, thread_main, k);
	if (e != 0) {
		evc_seterr(err, "kafka consumer thread: %s", strerror(e));
		return -1;
	}
	k->started = 1;
	return 0;
}

size_t kafka_in_drain(struct kafka_in *k, struct kafka_in_item *out, size_t max)
{
	return bqueue_pop(k->q, out, max);
}

void kafka_in_done(struct kafka_in *k, const struct kafka_in_item *items, size_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&k->mu);
	for (size_t i = 0; i < n; i++) {
		int t = items[i].topic == MSG_T_DRIVER_REQUESTS ? 0 : 1;
		size_t j;
		for (j = 0; j < k->npos; j++)
			if (k->pos[j].topic == t && k->pos[j].partition == items[i].partition)
				break;
		if (j == k->npos) {
			if (k->npos == k->cappos) {
				k->cappos = k->cappos ? k->cappos * 2 : 8;
				k->pos = xreallocarray(k->pos, k->cappos, sizeof *k->pos);
			}
			k->pos[j] = (struct kin_pos){ .topic = t, .partition = items[i].partition, .held = -1,
						      .next = -1 };
			k->npos++;
		}
		if (items[i].offset + 1 > k->pos[j].held)
			k->pos[j].held = items[i].offset + 1;
	}
	pthread_mutex_unlock(&k->mu);
}

void kafka_in_release(struct kafka_in *k)
{
	pthread_mutex_lock(&k->mu);
	for (size_t j = 0; j < k->npos; j++) {
		if (k->pos[j].held > k->pos[j].next) {
			k->pos[j].next = k->pos[j].held;
			k->pos[j].dirty = 1;
			k->commit_dirty = 1;
		}
	}
	pthread_mutex_unlock(&k->mu);
}

void kafka_in_stop(struct kafka_in *k)
{
	if (k == NULL || !k->started)
		return;
	pthread_mutex_lock(&k->mu);
	k->stop = 1;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->mu);
	bqueue_close(k->q); /* a push waiting for room gives up; queued items stay */
	pthread_join(k->thread, NULL);
	k->started = 0;
}

void kafka_in_free(struct kafka_in *k)
{
	if (k == NULL)
		return;
	kafka_in_stop(k);
	if (k->rk != NULL) {
		kafka_in_release(k);
		commit_pending(k, k->rk, 0);
		bus_consumer_close(k->rk);
	}
	free(k->pos);
	bqueue_free(k->q);
	free(k->brokers);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->mu);
	free(k);
}
