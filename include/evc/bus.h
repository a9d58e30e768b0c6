/* Kafka set-up on librdkafka 2.0.2: one producer per process (thread-safe,
 * shared), consumers in groups with manual commits after processing,
 * low-latency settings for loopback, topic prefixes (evcharging(7) KAFKA TOPICS AND MESSAGES). */
#ifndef EVC_BUS_H
#define EVC_BUS_H
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>
#include "evc/err.h"

#define BUS_NAME_MAX 256

/* Topic prefix from --topic-prefix, else $EVC_TOPIC_PREFIX, else "".
 * Returns a pointer valid for the program's life. */
const char *bus_prefix(const char *from_cli);
/* prefix + base into out (topics and group names alike). */
void bus_name(char *out, size_t n, const char *prefix, const char *base);

/* Called from librdkafka's threads (via bus_poll) when the broker link goes
 * up (up=1) or down (up=0, with a reason). */
typedef void (*bus_state_fn)(void *arg, int up, const char *reason);

/* The broker's answer about a message produced with a non-zero id
 * (bus_produce_id): ok = stored by the broker (acks=all), else err says
 * why it was given up. Called from the thread that calls bus_poll. */
typedef void (*bus_delivery_fn)(void *arg, uint64_t id, int ok, const char *err);

struct bus_opts {
	const char *brokers;      /* "host:port[,host:port]" */
	bus_state_fn on_state;    /* may be NULL */
	void *state_arg;
	bus_delivery_fn on_delivery; /* producer, may be NULL */
	void *delivery_arg;
	int message_timeout_ms;   /* producer: 0 = never give up (default) */
};

/* A producer (acks=all, idempotent, linger 5 ms). Caller destroys with
 * bus_producer_close. Creation does not contact the broker, so a broker that
 * is down is not an error here: messages wait in librdkafka's queue. */
rd_kafka_t *bus_producer_new(const struct bus_opts *o, char err[EVC_ERR_LEN]);
/* Produce a copy of payload to topic with key (may be NULL). Never blocks:
 * 0, or -1 if the local queue is full or the topic name is bad. */
int bus_produce(rd_kafka_t *p, const char *topic, const char *key, const char *payload,
		size_t len, char err[EVC_ERR_LEN]);
/* The same, and the delivery report of this message goes to on_delivery
 * with id (not 0). */
int bus_produce_id(rd_kafka_t *p, const char *topic, const char *key, const char *payload, size_t len,
		   uint64_t id, char err[EVC_ERR_LEN]);
/* Serve delivery reports and errors; call often (from any one thread). */
void bus_poll(rd_kafka_t *rk, int timeout_ms);
/* Flush for at most timeout_ms, then destroy. Returns how many messages
 * were not delivered (0 when all were). */
int bus_producer_close(rd_kafka_t *p, int timeout_ms);
/* librdkafka's own lines through the program's logger (log_msg), for a
 * handle made here without bus_producer_new / bus_consumer_new. */
void bus_conf_logger(rd_kafka_conf_t *conf);

/* A consumer in group, subscribed to topics (full names, already prefixed),
 * auto.offset.reset=earliest, enable.auto.commit=false: the caller commits
 * with bus_commit_stored after it has stored the effects. Caller destroys with
 * bus_consumer_close. Topics that do not exist yet are created (so a
 * subscriber never waits on a missing topic). */
rd_kafka_t *bus_consumer_new(const struct bus_opts *o, const char *group,
			     const char *const *topics, int ntopics, char err[EVC_ERR_LEN]);
/* Remember msg as processed; bus_commit_stored then commits all such. */
void bus_store(rd_kafka_t *c, const rd_kafka_message_t *m);
int bus_commit_stored(rd_kafka_t *c, char err[EVC_ERR_LEN]);
/* Same, without waiting for the broker's answer (errors are logged). */
int bus_commit_stored_async(rd_kafka_t *c, char err[EVC_ERR_LEN]);
/* Commit stored offsets, leave the group, destroy. */
void bus_consumer_close(rd_kafka_t *c);
/* Create topics (3 partitions, RF 1) if missing; existing ones are fine. */
int bus_create_topics(const char *brokers, const char *const *topics, int ntopics,
		      int timeout_ms, char err[EVC_ERR_LEN]);

#endif
