/* Kafka set-up shared by the four programs (librdkafka 2.0.2). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "evc/bus.h"
#include "evc/log.h"
#include "evc/xalloc.h"

/* Per-handle state for the broker-state callback (freed by the close
 * functions through rd_kafka_opaque). */
struct bus_handle {
	bus_state_fn on_state;
	void *state_arg;
	bus_delivery_fn on_delivery;
	void *delivery_arg;
	int up; /* -1 unknown, 0 down, 1 up */
};

const char *bus_prefix(const char *from_cli)
{
	if (from_cli != NULL)
		return from_cli;
	const char *env = getenv("EVC_TOPIC_PREFIX");
	return env != NULL ? env : "";
}

void bus_name(char *out, size_t n, const char *prefix, const char *base)
{
	snprintf(out, n, "%s%s", prefix != NULL ? prefix : "", base);
}

static void set_state(struct bus_handle *h, int up, const char *reason)
{
	if (h == NULL || h->up == up)
		return;
	h->up = up;
	if (h->on_state != NULL)
		h->on_state(h->state_arg, up, reason);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	struct bus_handle *h = opaque;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
	    err == RD_KAFKA_RESP_ERR__RESOLVE) {
		if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
			set_state(h, 0, reason);
		log_debug("kafka: %s", reason);
		return;
	}
	log_warn("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* librdkafka has no "connected" callback; its statistics (every second)
 * list each broker's state, so a broker in state UP means reachable. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	(void)rk;
	struct bus_handle *h = opaque;
	json_error_t jerr;
	json_t *root = json_loadb(json, len, 0, &jerr);
	if (root == NULL)
		return 0;
	json_t *brokers = json_object_get(root, "brokers");
	const char *name;
	json_t *b;
	int up = 0;
	json_object_foreach(brokers, name, b) {
		json_t *nodeid = json_object_get(b, "nodeid");
		const char *st = json_string_value(json_object_get(b, "state"));
		if (json_integer_value(nodeid) >= 0 && st != NULL && strcmp(st, "UP") == 0)
			up = 1;
	}
	json_decref(root);
	if (up)
		set_state(h, 1, "broker reachable");
	else
		set_state(h, 0, "no broker reachable");
	return 0; /* we did not keep json */
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	struct bus_handle *h = opaque;
	uint64_t id = (uint64_t)(uintptr_t)m->_private;
	if (id != 0 && h != NULL && h->on_delivery != NULL) {
		h->on_delivery(h->delivery_arg, id, m->err == RD_KAFKA_RESP_ERR_NO_ERROR,
			       m->err ? rd_kafka_err2str(m->err) : NULL);
		return;
	}
	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		log_error("kafka: delivery to %s failed: %s", rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
}

/* librdkafka's own log lines (it prints "%3|...|FAIL|..." to stderr by
 * default) become ordinary log lines, so a screen is never scribbled on. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	enum log_level lvl = level <= 3 ? LOG_WARN : level <= 5 ? LOG_INFO : LOG_DEBUG;
	/* Connection failures are reported once through error_cb/stats_cb as
	 * "Kafka unreachable"; repeating each retry would flood the log. */
	if (lvl == LOG_WARN && (strcmp(fac, "FAIL") == 0 || strcmp(fac, "ERROR") == 0))
		lvl = LOG_DEBUG;
	log_msg(lvl, "kafka %s: %s", fac, buf);
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char err[EVC_ERR_LEN])
{
	if (rd_kafka_conf_set(conf, k, v, err, EVC_ERR_LEN) != RD_KAFKA_CONF_OK)
		return -1;
	return 0;
}

/* Settings common to producers and consumers: loopback-friendly reconnects,
 * and the callbacks that track the broker's reachability. */
static rd_kafka_conf_t *base_conf(const struct bus_opts *o, struct bus_handle *h, char err[EVC_ERR_LEN])
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (o->brokers == NULL || o->brokers[0] == '\0') {
		snprintf(err, EVC_ERR_LEN, "no Kafka bootstrap address");
		goto fail;
	}
	if (conf_set(conf, "bootstrap.servers", o->brokers, err) == -1 ||
	    conf_set(conf, "reconnect.backoff.ms", "100", err) == -1 ||
	    conf_set(conf, "reconnect.backoff.max.ms", "2000", err) == -1 ||
	    conf_set(conf, "topic.metadata.refresh.interval.ms", "5000", err) == -1 ||
	    /* A connection whose setup (TCP and the ApiVersion exchange) has
	     * not finished in 10 s is given up and made again; with the
	     * default 30 s a consumer read nothing for that long after a
	     * broker came back (evcharging(7) KAFKA TOPICS AND MESSAGES). */
	    conf_set(conf, "socket.connection.setup.timeout.ms", "10000", err) == -1 ||
	    conf_set(conf, "log.connection.close", "false", err) == -1)
		goto fail;
	rd_kafka_conf_set_opaque(conf, h);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	/* Statistics cost librdkafka a JSON document a second: only a handle
	 * whose owner wants to know the broker's state asks for them. */
	if (o->on_state != NULL) {
		if (conf_set(conf, "statistics.interval.ms", "1000", err) == -1)
			goto fail;
		rd_kafka_conf_set_stats_cb(conf, stats_cb);
	}
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

static struct bus_handle *handle_new(const struct bus_opts *o)
{
	struct bus_handle *h = xcalloc(1, sizeof *h);
	h->on_state = o->on_state;
	h->state_arg = o->state_arg;
	h->on_delivery = o->on_delivery;
	h->delivery_arg = o->delivery_arg;
	h->up = -1;
	return h;
}

rd_kafka_t *bus_producer_new(const struct bus_opts *o, char err[EVC_ERR_LEN])
{
	struct bus_handle *h = handle_new(o);
	char tmo[32];
	rd_kafka_t *rk;
	rd_kafka_conf_t *conf = base_conf(o, h, err);
	if (conf == NULL)
		goto fail;
	snprintf(tmo, sizeof tmo, "%d", o->message_timeout_ms);
	if (conf_set(conf, "acks", "all", err) == -1 ||
	    conf_set(conf, "enable.idempotence", "true", err) == -1 ||
	    conf_set(conf, "linger.ms", "5", err) == -1 ||
	    conf_set(conf, "message.timeout.ms", tmo, err) == -1 ||
	    conf_set(conf, "queue.buffering.max.messages", "1000000", err) == -1 ||
	    /* A NETWORK_STATUS_UPDATE of 10,000 CPs is over the 1 MB default. */
	    conf_set(conf, "message.max.bytes", "8388608", err) == -1) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, EVC_ERR_LEN);
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	return rk;
fail:
	free(h);
	return NULL;
}

int bus_produce(rd_kafka_t *p, const char *topic, const char *key, const char *payload,
		size_t len, char err[EVC_ERR_LEN])
{
	return bus_produce_id(p, topic, key, payload, len, 0, err);
}

int bus_produce_id(rd_kafka_t *p, const char *topic, const char *key, const char *payload, size_t len,
		   uint64_t id, char err[EVC_ERR_LEN])
{
	size_t klen = key != NULL ? strlen(key) : 0;
	rd_kafka_resp_err_t e = rd_kafka_producev(
		p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_KEY(key, klen),
		RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)id), RD_KAFKA_V_END);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, EVC_ERR_LEN, "cannot produce to %s: %s", topic, rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

void bus_poll(rd_kafka_t *rk, int timeout_ms)
{
	rd_kafka_poll(rk, timeout_ms);
}

int bus_producer_close(rd_kafka_t *p, int timeout_ms)
{
	if (p == NULL)
		return 0;
	struct bus_handle *h = rd_kafka_opaque(p);
	int left = 0;
	if (timeout_ms > 0 && rd_kafka_flush(p, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		left = rd_kafka_outq_len(p);
		log_warn("kafka: %d message(s) not delivered at exit", left);
	}
	rd_kafka_destroy(p);
	free(h);
	return left;
}

void bus_conf_logger(rd_kafka_conf_t *conf)
{
	rd_kafka_conf_set_log_cb(conf, log_cb);
}

int bus_create_topics(const char *brokers, const char *const *topics, int ntopics,
		      int timeout_ms, char err[EVC_ERR_LEN])
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk = NULL;
	rd_kafka_queue_t *q = NULL;
	rd_kafka_NewTopic_t **nt = xcalloc((size_t)ntopics, sizeof *nt);
	rd_kafka_AdminOptions_t *opts = NULL;
	rd_kafka_event_t *ev = NULL;
	int rc = -1, i;

	if (conf_set(conf, "bootstrap.servers", brokers, err) == -1) {
		rd_kafka_conf_destroy(conf);
		goto out;
	}
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, EVC_ERR_LEN);
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		goto out;
	}
	for (i = 0; i < ntopics; i++) {
		nt[i] = rd_kafka_NewTopic_new(topics[i], 3, 1, err, EVC_ERR_LEN);
		if (nt[i] == NULL)
			goto out;
	}
	opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, err, EVC_ERR_LEN);
	rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, err, EVC_ERR_LEN);
	q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, nt, (size_t)ntopics, opts, q);
	ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
	if (ev == NULL) {
		snprintf(err, EVC_ERR_LEN, "creating topics timed out after %d ms", timeout_ms);
		goto out;
	}
	if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, EVC_ERR_LEN, "creating topics: %s", rd_kafka_event_error_string(ev));
		goto out;
	}
	const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
	size_t n;
	const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
	for (size_t k = 0; k < n; k++) {
		rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[k]);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			snprintf(err, EVC_ERR_LEN, "creating topic %s: %s", rd_kafka_topic_result_name(tr[k]),
				 rd_kafka_topic_result_error_string(tr[k]));
			goto out;
		}
	}
	rc = 0;
out:
	if (ev != NULL)
		rd_kafka_event_destroy(ev);
	if (q != NULL)
		rd_kafka_queue_destroy(q);
	if (opts != NULL)
		rd_kafka_AdminOptions_destroy(opts);
	for (i = 0; i < ntopics; i++)
		if (nt[i] != NULL)
			rd_kafka_NewTopic_destroy(nt[i]);
	free(nt);
	if (rk != NULL)
		rd_kafka_destroy(rk);
	return rc;
}

rd_kafka_t *bus_consumer_new(const struct bus_opts *o, const char *group,
			     const char *const *topics, int ntopics, char err[EVC_ERR_LEN])
{
	struct bus_handle *h = handle_new(o);
	rd_kafka_t *rk = NULL;
	rd_kafka_topic_partition_list_t *subs = NULL;
	char cerr[EVC_ERR_LEN];
	rd_kafka_conf_t *conf = base_conf(o, h, err);
	if (conf == NULL)
		goto fail;
	if (conf_set(conf, "group.id", group, err) == -1 ||
	    conf_set(conf, "enable.auto.commit", "false", err) == -1 ||
	    conf_set(conf, "enable.auto.offset.store", "false", err) == -1 ||
	    conf_set(conf, "auto.offset.reset", "earliest", err) == -1 ||
	    /* Long polling: the broker answers a fetch as soon as one message is
	     * there, so this only spaces out the empty answers of an idle
	     * consumer (50 ms made 20 round trips a second per broker). */
	    conf_set(conf, "fetch.wait.max.ms", "500", err) == -1 ||
	    conf_set(conf, "fetch.error.backoff.ms", "50", err) == -1 ||
	    /* Prefetch deep enough that a backlog is never waiting on a fetch
	     * (the default 100,000 ran dry while catching up); the byte bound
	     * (queued.max.messages.kbytes, 64 MB) still caps the memory. */
	    conf_set(conf, "queued.min.messages", "1000000", err) == -1 ||
	    conf_set(conf, "session.timeout.ms", "6000", err) == -1 ||
	    conf_set(conf, "heartbeat.interval.ms", "500", err) == -1 ||
	    conf_set(conf, "allow.auto.create.topics", "true", err) == -1) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	/* A subscriber to a topic nobody has produced to yet would see nothing
	 * until the next metadata refresh; creating it first avoids that. A
	 * broker that is down is not fatal: the consumer waits for it. */
	if (bus_create_topics(o->brokers, topics, ntopics, 2000, cerr) == -1)
		log_debug("kafka: %s (continuing)", cerr);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, EVC_ERR_LEN);
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	rd_kafka_poll_set_consumer(rk);
	subs = rd_kafka_topic_partition_list_new(ntopics);
	for (int i = 0; i < ntopics; i++)
		rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subs);
	rd_kafka_topic_partition_list_destroy(subs);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, EVC_ERR_LEN, "cannot subscribe: %s", rd_kafka_err2str(e));
		rd_kafka_destroy(rk);
		goto fail;
	}
	return rk;
fail:
	free(h);
	return NULL;
}

void bus_store(rd_kafka_t *c, const rd_kafka_message_t *m)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset = m->offset + 1;
	rd_kafka_resp_err_t e = rd_kafka_offsets_store(c, l);
	/* __STATE: the partition was revoked meanwhile; the message will be
	 * delivered again to its new owner, which is what at-least-once means. */
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		log_debug("kafka: cannot store offset: %s", rd_kafka_err2str(e));
	rd_kafka_topic_partition_list_destroy(l);
}

static int commit_result(rd_kafka_resp_err_t e, char err[EVC_ERR_LEN])
{
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR__NO_OFFSET)
		return 0;
	snprintf(err, EVC_ERR_LEN, "commit failed: %s", rd_kafka_err2str(e));
	return -1;
}

int bus_commit_stored(rd_kafka_t *c, char err[EVC_ERR_LEN])
{
	return commit_result(rd_kafka_commit(c, NULL, 0), err);
}

int bus_commit_stored_async(rd_kafka_t *c, char err[EVC_ERR_LEN])
{
	return commit_result(rd_kafka_commit(c, NULL, 1), err);
}

void bus_consumer_close(rd_kafka_t *c)
{
	if (c == NULL)
		return;
	struct bus_handle *h = rd_kafka_opaque(c);
	char err[EVC_ERR_LEN];
	if (bus_commit_stored(c, err) == -1)
		log_warn("kafka: %s", err);
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	free(h);
}
