/* evc-mockbroker: a stand-in Kafka broker for the demo on machines where
 * the real one (Java + the Kafka jars, scripts/kafka) cannot be had. It is
 * librdkafka's own mock cluster (rdkafka_mock.h): an in-process broker that
 * speaks the Kafka protocol on 127.0.0.1, with topics, partitions, consumer
 * groups and committed offsets held in memory. Nothing is written to disk,
 * so everything is gone when it stops; that is all a demo needs.
 *
 * It prints its bootstrap address (host:port) as the first line of stdout,
 * then runs until SIGINT or SIGTERM. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define PROG "evc-mockbroker"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--brokers N]\n"
		"       " PROG " --help | --version\n"
		"Runs librdkafka's in-memory mock Kafka cluster on 127.0.0.1, prints its\n"
		"bootstrap address on stdout and serves until SIGINT or SIGTERM.\n"
		"  --brokers N   number of mock brokers, 1-9 (default 1)\n");
}

static void __attribute__((noreturn)) bad_arg(const char *what, const char *arg)
{
	fprintf(stderr, PROG ": %s '%s'\n", what, arg);
	usage(stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	int nbrokers = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf(PROG " (%s) %s, librdkafka %s\n", PACKAGE_NAME, PACKAGE_VERSION, rd_kafka_version_str());
			return 0;
		} else if (strcmp(argv[i], "--brokers") == 0) {
			if (i + 1 >= argc)
				bad_arg("option needs a value:", argv[i]);
			char *end;
			errno = 0;
			long n = strtol(argv[++i], &end, 10);
			if (argv[i][0] == '\0' || *end != '\0' || errno != 0 || n < 1 || n > 9)
				bad_arg("invalid broker count (1-9)", argv[i]);
			nbrokers = (int)n;
		} else {
			bad_arg("unknown argument", argv[i]);
		}
	}

	/* Block the stop signals before librdkafka starts its threads, so
	 * they all inherit the mask and only sigwait below receives them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* The mock cluster lives inside a client handle; this one is never
	 * used to produce anything. */
	if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, PROG ": %s\n", err);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (rk == NULL) {
		fprintf(stderr, PROG ": cannot create the librdkafka handle: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, nbrokers);
	if (mc == NULL) {
		fprintf(stderr, PROG ": cannot start the mock cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);

	int sig = 0;
	sigwait(&set, &sig);
	fprintf(stderr, PROG ": stopping (%s)\n", strsignal(sig));
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
