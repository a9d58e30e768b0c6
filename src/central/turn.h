/* Central's main loop, one turn at a time (turn.c has the order and why).
 * struct central holds what the loop owns; main.c opens it, loops
 *   turn_prepare -> poll -> turn_run
 * until quit, drains with turn_drain, and closes it. */
#ifndef EVC_CENTRAL_TURN_H
#define EVC_CENTRAL_TURN_H
#include <poll.h>
#include <stddef.h>

#include "evc/err.h"
#include "evc/hmap.h"
#include "evc/log.h"
#include "src/central/core.h"
#include "src/central/cplink.h"
#include "src/central/ctl.h"
#include "src/central/frontend.h"
#include "src/central/kafka_in.h"
#include "src/central/kafka_out.h"
#include "src/central/store.h"

#define TURN_BATCH_LINK 512 /* link events per turn */
/* Kafka messages per turn. A CONSUMO makes three effects; 256 keep a
 * turn's effects within the list's kept memory (core.c FXLIST_KEEP =
 * 1024): at 512 the list grew and shrank every turn of a flood, and page
 * faults on the fresh memory cost more than the extra turns. */
#define TURN_BATCH_KAFKA 256
#define TURN_NFDS_LOOP 6 /* signals, links, Kafka in, Kafka out, the operator's input, the API */
#define TURN_NFDS (TURN_NFDS_LOOP + CTL_NFDS) /* then the control socket's */

struct keytab;
struct apiwire;

struct central {
	int readonly;      /* --readonly: every operator command refused */
	struct core *core;
	struct store *store;
	struct cplink *link;
	SSL_CTX *link_tls; /* the link port's TLS context; NULL: plaintext links only */
	struct kafka_in *kin;
	struct kafka_out *kout;
	struct frontend *fe;
	struct central_status status;
	int kafka_known;
	struct core_fxlist fx;
	struct cplink_event *cev;
	struct kafka_in_item *kitems;
	size_t nkitems;
	int sfd;           /* signalfd: SIGINT, SIGTERM, SIGHUP */
	int quit;
	int db_failed;     /* writes kept failing: act on nothing more, exit 1 */
	/* The outbox (evcharging(7) RULES): rows handed to the producer and
	 * not yet settled; this turn's new rows; confirmed ones to delete. */
	struct hmap outbox_inflight;
	struct outbox_row {
		int64_t id;
		enum msg_topic topic;
		char key[MSG_ID_MAX + 1];
		char *payload;
	} *obn;
	size_t nobn, capobn;
	uint64_t *delivered;
	size_t ndelivered, capdelivered;
	double outbox_next_sweep;  /* monotonic */
	struct keytab *keys;       /* the CPs' keys for the consumer thread */
	int64_t reg_rev;           /* highest registry change loaded */
	int reg_data_version;      /* PRAGMA data_version at the last load */
	struct hmap rejects;       /* cp_id -> telemetry rejections, for the audit */
	double mono_now;           /* this turn's monotonic clock */
	double badmsg_window;      /* BAD_MSG lines: at most 10 a 10 s */
	unsigned long badmsg_count, badmsg_dropped;
	struct hmap seen_sessions; /* scratch of core_fxlist_coalesce */
	/* --group-commit (s, 0 = off): effects that need the database wait
	 * until this long after the last COMMIT, so one COMMIT (one fsync)
	 * covers the changes of several turns (evcharging(7) RULES). */
	double group_commit;
	double last_commit; /* monotonic: the last turn that stored */
	double next_tick;
	unsigned long db_errors;
	/* running as a service (service.c, ctl.c) */
	struct ctl *ctl;   /* the control socket, NULL without one */
	char *log_file;    /* --log-file, or where the console goes once the terminal is gone */
	int log_active;    /* stdout and stderr are log_file (SIGHUP reopens it) */
	int lock_fd;       /* holds the flock on <db>.lock, -1 none */
	int json;          /* --log-format json: for a console made after a hangup */
	int hangups;       /* the terminal went away this many times */
	struct apiwire *aw; /* the HTTPS API (--api), NULL without one */
};

/* The poll set of this turn (TURN_NFDS entries; one may be fd -1) and how
 * long poll may sleep (ms). */
int turn_prepare(struct central *c, struct pollfd pfd[TURN_NFDS]);
/* After poll: take what is ready, run the core, store, act, offsets, show. */
void turn_run(struct central *c, const struct pollfd pfd[TURN_NFDS]);
/* Store and act on everything gathered so far (also at start and at the
 * end). */
void turn_apply(struct central *c);
/* At shutdown, after the link and consumer threads stopped: the events
 * they still queued, until none is left. */
void turn_drain(struct central *c);
/* A line of the loop's own (READY, LINK, KAFKA, BAD_MSG, SHUTDOWN, ERROR)
 * that travels with the core's effects to the frontend. */
void turn_note(struct central *c, enum log_level lvl, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The frontends' exec: a command line, 0 sent, -1 refused (msg), 1 quit. */
int turn_exec(void *arg, const char *line, char msg[EVC_ERR_LEN]);
/* Load what the registry (or --add-cp) changed since the last load:
 * cheap when nothing did (PRAGMA data_version). */
void turn_registry_poll(struct central *c);
/* Offer the outbox rows not on their way to the producer again (at start,
 * then every few seconds). */
void turn_outbox_sweep(struct central *c, double mono);
/* The last turn at shutdown, after kafka_out_drain: delete what the final
 * flush confirmed. */
void turn_outbox_settle(struct central *c);
/* store_foreach_open_session callback (arg = the central): a session a
 * crash left open ends now, the driver told. */
void turn_recover_session(void *arg, const struct core_session *s);

#endif
