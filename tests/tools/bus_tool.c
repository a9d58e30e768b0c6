/* bus_tool: the project's Kafka code driven from a test script.
 *   bus_tool produce BROKERS TOPIC USER CP        REQUEST_CHARGE via msg_encode
 *   bus_tool consume BROKERS GROUP TOPIC N SECS   print N values, commit each
 * consume exits 0 after N messages, 1 on timeout; it decodes each value with
 * msg_decode and prints "ok <type> <user> <cp>" or "bad <reason>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/bus.h"
#include "evc/clock.h"
#include "evc/msg.h"

static int produce(const char *brokers, const char *topic, const char *user, const char *cp)
{
	char err[EVC_ERR_LEN], merr[EVC_ERR_LEN];
	struct bus_opts o = {.brokers = brokers, .message_timeout_ms = 10000};
	struct msg m;
	msg_init(&m, MSG_REQUEST_CHARGE);
	snprintf(m.user_id, sizeof m.user_id, "%s", user);
	snprintf(m.cp_id, sizeof m.cp_id, "%s", cp);
	m.timestamp = clock_wall();
	m.has_timestamp = 1;
	size_t len;
	char *json = msg_encode(&m, &len, merr);
	if (json == NULL) {
		fprintf(stderr, "encode: %s\n", merr);
		return 1;
	}
	rd_kafka_t *p = bus_producer_new(&o, err);
	if (p == NULL) {
		fprintf(stderr, "producer: %s\n", err);
		free(json);
		return 1;
	}
	int rc = bus_produce(p, topic, user, json, len, err);
	if (rc == -1)
		fprintf(stderr, "%s\n", err);
	rd_kafka_flush(p, 10000);
	rc = rc == 0 && rd_kafka_outq_len(p) == 0 ? 0 : 1;
	printf("%s\n", json);
	free(json);
	bus_producer_close(p, 1000);
	return rc;
}

static int consume(const char *brokers, const char *group, const char *topic, int n, double secs)
{
	char err[EVC_ERR_LEN];
	struct bus_opts o = {.brokers = brokers};
	const char *topics[1] = {topic};
	rd_kafka_t *c = bus_consumer_new(&o, group, topics, 1, err);
	if (c == NULL) {
		fprintf(stderr, "consumer: %s\n", err);
		return 1;
	}
	double deadline = clock_mono() + secs;
	int got = 0;
	while (got < n && clock_mono() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			struct msg d;
			char merr[EVC_ERR_LEN];
			if (msg_decode(MSG_T_DRIVER_REQUESTS, m->payload, m->len, &d, merr) == 0) {
				printf("ok %s %s %s offset=%lld\n", msg_type_name(d.type), d.user_id, d.cp_id,
				       (long long)m->offset);
				msg_free(&d);
			} else {
				printf("bad %s\n", merr);
			}
			fflush(stdout);
			bus_store(c, m);
			if (bus_commit_stored(c, err) == -1)
				fprintf(stderr, "%s\n", err);
			got++;
		}
		rd_kafka_message_destroy(m);
	}
	bus_consumer_close(c);
	return got == n ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "produce") == 0)
		return produce(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 7 && strcmp(argv[1], "consume") == 0)
		return consume(argv[2], argv[3], argv[4], atoi(argv[5]), atof(argv[6]));
	fprintf(stderr, "usage: bus_tool produce BROKERS TOPIC USER CP\n"
			"       bus_tool consume BROKERS GROUP TOPIC N SECONDS\n");
	return 2;
}
