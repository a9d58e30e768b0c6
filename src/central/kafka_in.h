/* Central's Kafka consumer: one worker thread reading driver_requests and
 * cp_telemetry (prefixed) in group <prefix>central-processor. It decodes each
 * message (msg_decode) and queues it for the main loop (mutex queue + an
 * eventfd). Messages that do not decode are queued too, marked bad, so the
 * main loop logs and counts them and their offsets are committed in order
 * with the rest. Offsets are committed only when the main loop says the
 * batch holding them is stored (kafka_in_done) and what that batch produced
 * is delivered (kafka_in_release). The queue is bounded: while it is full
 * the thread waits and Kafka keeps the rest. */
#ifndef EVC_CENTRAL_KAFKA_IN_H
#define EVC_CENTRAL_KAFKA_IN_H
#include <stddef.h>
#include <stdint.h>

#include "evc/bus.h"
#include "evc/err.h"
#include "evc/msg.h"

struct kafka_in_item {
	int bad;                      /* 1: not decoded; err says why */
	/* cp_telemetry refused by its envelope (TELEMETRY_PLAINTEXT, _NO_KEY,
	 * _BAD_TOKEN, _CP_MISMATCH): bad is 1 too, cp_id the outer one. */
	int rejected;
	char cp_id[MSG_CP_ID_MAX + 1];
	char err[EVC_ERR_LEN];
	struct msg msg;               /* bad == 0: the message (owns nothing: no cps) */
	enum msg_topic topic;
	int32_t partition;
	int64_t offset;
};

struct kafka_in;

/* brokers and prefix are copied. Does not contact Kafka yet. on_state (may
 * be NULL) hears of the broker being unreachable (the producer's handle
 * reports it coming back). NULL with err if the queue cannot be made.
 * Caller frees with kafka_in_free. */
struct kafka_in *kafka_in_new(const char *brokers, const char *prefix, bus_state_fn on_state, void *state_arg,
			      char err[EVC_ERR_LEN]);
/* Open cp_telemetry with these keys (evcharging(7) SECURITY), in the
 * consumer thread; without, only plaintext is accepted. Not owned; call
 * before kafka_in_start. */
struct keytab;
void kafka_in_set_keys(struct kafka_in *k, struct keytab *keys);
/* Start the consumer thread. 0 or -1 with err. The consumer is created in
 * the thread, and re-created until it works, so a broker that is down at
 * start is not an error. */
int kafka_in_start(struct kafka_in *k, char err[EVC_ERR_LEN]);
/* Readable while items wait. */
int kafka_in_event_fd(const struct kafka_in *k);
/* Main thread: take up to max items in order. Returns how many. */
size_t kafka_in_drain(struct kafka_in *k, struct kafka_in_item *out, size_t max);
/* Main thread: these items' effects are stored. Their offsets are held
 * until kafka_in_release: the notifications they caused must reach Kafka
 * first, or a crash could lose a ticket whose message is never replayed. */
void kafka_in_done(struct kafka_in *k, const struct kafka_in_item *items, size_t n);
/* Main thread: everything produced so far is delivered; commit the held
 * offsets (asynchronously, from the consumer thread). */
void kafka_in_release(struct kafka_in *k);
/* Stop reading (join the thread). Items already queued stay queued for
 * kafka_in_drain; their offsets can still be passed to kafka_in_done. */
void kafka_in_stop(struct kafka_in *k);
/* Commit what kafka_in_done marked (synchronously, bounded; call after the
 * producer is flushed), leave the group, free everything. Calls kafka_in_stop if needed. NULL is fine. */
void kafka_in_free(struct kafka_in *k);

#endif
