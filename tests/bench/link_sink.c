/* A stand-in Central for the link benchmark: cplink alone, a main loop that
 * drains its events the way EV_Central's does, answers REGISTER with
 * REGISTER_RESULT#FIRST and counts the rest. It measures the link server
 * without the core, the store or Kafka behind it.
 *
 * link_sink PORT [MAX_CONNS [CERT KEY]]   (stdin "Q" or EOF, SIGINT, SIGTERM: stop)
 *
 * With CERT and KEY the port serves TLS links only, as Central does with
 * certificates and without --plain-links; without them, plaintext ones.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "evc/log.h"
#include "evc/tls.h"
#include "evc/xalloc.h"
#include "src/central/cplink.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc == 4 || argc > 5) {
		fprintf(stderr, "usage: link_sink PORT [MAX_CONNS [CERT KEY]]\n");
		return 2;
	}
	log_set_progname("link_sink");
	struct cplink_config cfg;
	cplink_config_defaults(&cfg);
	cfg.port = atoi(argv[1]);
	if (argc > 2)
		cfg.max_conns = atoi(argv[2]);
	char err[EVC_ERR_LEN];
	SSL_CTX *tls = NULL;
	if (argc == 5) {
		tls = tls_server_ctx_new(argv[3], argv[4], err);
		if (tls == NULL) {
			fprintf(stderr, "link_sink: %s\n", err);
			return 1;
		}
	}
	cfg.tls = tls;
	cfg.plain_ok = tls == NULL;

	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	struct cplink *l = cplink_new(&cfg, err);
	if (l == NULL || cplink_start(l, err) == -1) {
		fprintf(stderr, "link_sink: %s\n", err);
		cplink_free(l);
		SSL_CTX_free(tls);
		return 1;
	}
	printf("listening on %d (%s)\n", cplink_port(l), tls ? "TLS" : "plaintext");
	fflush(stdout);

	enum { BATCH = 256 };
	struct cplink_event *evs = xcalloc(BATCH, sizeof *evs);
	unsigned long up = 0, down = 0, frames = 0, faults = 0;
	while (!stop) {
		struct pollfd p[2] = { { .fd = cplink_event_fd(l), .events = POLLIN },
				       { .fd = STDIN_FILENO, .events = POLLIN } };
		int n = poll(p, 2, 1000);
		if (n == -1 && errno != EINTR)
			break;
		if (p[1].revents) {
			char line[64];
			if (fgets(line, sizeof line, stdin) == NULL || line[0] == 'Q' || line[0] == 'q')
				break;
		}
		size_t k;
		while ((k = cplink_drain(l, evs, BATCH)) > 0) {
			for (size_t i = 0; i < k; i++) {
				struct cplink_event *e = &evs[i];
				if (e->kind == CPL_UP) {
					up++;
				} else if (e->kind == CPL_DOWN) {
					down++;
				} else if (e->kind == CPL_FRAME) {
					frames++;
					if (strncmp(e->data, "REGISTER#", 9) == 0) {
						cplink_send(l, e->conn, "REGISTER_RESULT#FIRST");
						cplink_registered(l, e->conn);
					}
					else if (strncmp(e->data, "FAULT#", 6) == 0)
						faults++;
				}
			}
		}
	}
	cplink_shutdown(l);
	struct cplink_stats st;
	cplink_stats(l, &st);
	printf("link_sink: %lu up, %lu down, %lu frames (%lu FAULT); accepted %llu refused %llu; "
	       "TLS handshakes %llu (resumed %llu, failed %llu)\n",
	       up, down, frames, faults, (unsigned long long)st.accepted, (unsigned long long)st.refused,
	       (unsigned long long)st.tls_handshakes, (unsigned long long)st.tls_resumed,
	       (unsigned long long)st.tls_failed);
	free(evs);
	cplink_free(l);
	SSL_CTX_free(tls);
	return 0;
}
