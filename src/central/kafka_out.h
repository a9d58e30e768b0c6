/* Central's Kafka producer: one librdkafka producer (thread-safe, shared) for
 * driver_notifications (key = user_id) and network_status. It creates those
 * two topics, and it keeps Central's "is Kafka reachable" state (its own
 * statistics and the consumer's errors feed it). Network status is
 * published every 5 s, and soon after any change (kafka_out_mark_dirty,
 * coalesced so a burst of changes costs one message). Main thread only,
 * apart from the producer handle itself and the publisher thread
 * (notifications and network_status are encoded and produced off the main
 * thread). */
#ifndef EVC_CENTRAL_KAFKA_OUT_H
#define EVC_CENTRAL_KAFKA_OUT_H
#include <stddef.h>
#include <stdint.h>

#include "evc/bus.h"
#include "evc/msg.h"

#define KAFKA_OUT_PERIOD 5.0    /* s between status messages when nothing changes */
#define KAFKA_OUT_COALESCE 0.9  /* s a change waits for others before publishing
				 * (at least: 10 x what the last status cost) */

struct kafka_out;

/* brokers and prefix are copied. NULL with err if librdkafka refuses the
 * configuration (a broker that is down is not an error). Caller frees with
 * kafka_out_free. */
struct kafka_out *kafka_out_new(const char *brokers, const char *prefix, char err[EVC_ERR_LEN]);
/* Reachability. set: from any thread; kafka_out_state_cb is the same as a
 * bus_state_fn (arg = the kafka_out), for the consumer. get (main thread):
 * 1 if it changed since the last get. The fd is readable after a change
 * (and at first, for the initial "connecting"). */
void kafka_out_set_state(struct kafka_out *o, int up, const char *reason);
void kafka_out_state_cb(void *arg, int up, const char *reason);
int kafka_out_get_state(struct kafka_out *o, int *up, char *reason, size_t n);
int kafka_out_event_fd(const struct kafka_out *o);
/* Encode and produce one message to its topic (msg_type_topic), key =
 * user_id (cp_id for telemetry). Never blocks. 0 or -1 with err. */
int kafka_out_produce(struct kafka_out *o, const struct msg *m, char err[EVC_ERR_LEN]);
/* Queue one notification (no cps) for the publisher thread, which encodes
 * and produces the queued ones in order (errors are logged). m is copied.
 * Blocks only while 2,048 are already waiting. */
void kafka_out_queue(struct kafka_out *o, const struct msg *m);
/* An outbox notification (evcharging(7) RULES): already encoded and
 * stored with id. Never blocks: -1 if the queue is full (the row stays in
 * the outbox for a later try). Its fate comes back by
 * kafka_out_take_settled. */
int kafka_out_send_stored(struct kafka_out *o, uint64_t id, enum msg_topic topic, const char *key,
			  const char *payload);
/* Main thread: outbox notifications settled since the last call: ok = 1
 * delivered (the row can go), 0 not sent (offer it again later). */
size_t kafka_out_take_settled(struct kafka_out *o, uint64_t *ids, int *ok, size_t max);
/* Something shown in network_status changed. now = monotonic seconds. */
void kafka_out_mark_dirty(struct kafka_out *o, double now);
/* Serve delivery reports, and say whether a network_status is due (dirty
 * and coalesced, or the period ran out): then the caller builds one and
 * hands it to kafka_out_status. now = monotonic. While Kafka is
 * unreachable (up == 0) none is due: it would be stale when it arrives;
 * one is due as soon as the broker is back. */
int kafka_out_tick(struct kafka_out *o, double now, int up);
/* Publish this status (takes ownership of m, allocated with malloc): a
 * thread of kafka_out encodes and produces it; a newer one replaces one
 * not yet taken. */
void kafka_out_status(struct kafka_out *o, struct msg *m, double now);
/* Milliseconds until kafka_out_tick has work (cap). */
int kafka_out_timeout_ms(const struct kafka_out *o, double now, int cap);
/* Stop the publisher once it has produced what is queued, then flush
 * librdkafka for at most flush_ms (delivery reports settle outbox
 * notifications meanwhile). Safe to call twice; NULL is fine. */
void kafka_out_drain(struct kafka_out *o, int flush_ms);
/* Drain (flush_ms), then free. NULL is fine. */
void kafka_out_free(struct kafka_out *o, int flush_ms);

#endif
