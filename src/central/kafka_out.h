/* Central's Kafka producer: one librdkafka producer (thread-safe, shared) for
 * driver_notifications (key = user_id) and network_status. Network status is
 * published every 5 s, and soon after any change (kafka_out_mark_dirty,
 * coalesced so a burst of changes costs one message). Main thread only,
 * apart from the producer handle itself and the publisher thread
 * (notifications and network_status are encoded and produced off the main
 * thread). */
#ifndef EVC_CENTRAL_KAFKA_OUT_H
#define EVC_CENTRAL_KAFKA_OUT_H
#include "evc/bus.h"
#include "src/central/core.h"
#include "evc/msg.h"

#define KAFKA_OUT_PERIOD 5.0    /* s between status messages when nothing changes */
#define KAFKA_OUT_COALESCE 0.9  /* s a change waits for others before publishing
				 * (at least: 10 x what the last status cost) */

struct kafka_out;

/* brokers and prefix are copied; on_state (may be NULL) learns when the
 * broker goes up or down. NULL with err if librdkafka refuses the
 * configuration (a broker that is down is not an error). Caller frees with
 * kafka_out_free. */
struct kafka_out *kafka_out_new(const char *brokers, const char *prefix, bus_state_fn on_state,
				void *state_arg, char err[BUS_ERR_LEN]);
/* Encode and produce one message to its topic (msg_type_topic), key =
 * user_id (cp_id for telemetry). Never blocks. 0 or -1 with err. */
int kafka_out_produce(struct kafka_out *o, const struct msg *m, char err[BUS_ERR_LEN]);
/* Queue one notification (no cps) for the publisher thread, which encodes
 * and produces the queued ones in order (errors are logged). m is copied.
 * Blocks only while 2,048 are already waiting. */
void kafka_out_queue(struct kafka_out *o, const struct msg *m);
/* Something shown in network_status changed. now = monotonic seconds. */
void kafka_out_mark_dirty(struct kafka_out *o, double now);
/* Publish network_status if due (dirty and coalesced, or the period ran
 * out), and serve delivery reports. now = monotonic; wall for the message.
 * While Kafka is unreachable (up == 0) no status is queued: it would be
 * stale when it arrives; one goes out as soon as the broker is back.
 * The snapshot is taken here; a thread of kafka_out encodes and produces
 * it (a newer snapshot replaces one not yet taken). Returns 1 if a status
 * was queued. */
int kafka_out_tick(struct kafka_out *o, const struct core *c, double now, double wall, int up);
/* Milliseconds until kafka_out_tick has work (cap). */
int kafka_out_timeout_ms(const struct kafka_out *o, double now, int cap);
/* Notifications queued and not yet delivered (kafka_out_queue's queue and
 * librdkafka's out queue). */
int kafka_out_pending(struct kafka_out *o);
/* Flush for at most flush_ms, then free. NULL is fine. */
void kafka_out_free(struct kafka_out *o, int flush_ms);

#endif
