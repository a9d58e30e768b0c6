/* The engine's gate (evcharging(7) SECURITY): every connection proves it
 * holds the CP's secret before the engine obeys it, and an address that
 * keeps failing is refused for a while. Pure: no socket, no clock of its
 * own, no log line; the engine feeds it frames and times and does what the
 * verdicts say.
 *
 * The exchange, after ENQ/ACK:
 *     client HELLO#<cp_id>           engine CHALLENGE#<32 hex digits>
 *     client AUTH#<64 hex digits>    engine AUTH_OK
 *                                     or ERROR#NOT_AUTHENTICATED, EOT, close
 * Before AUTH_OK every other frame is answered ERROR#NOT_AUTHENTICATED and
 * has no effect; the third such frame closes the connection, and so does a
 * connection that is not authenticated CPAUTH_DEADLINE seconds after it was
 * accepted. */
#ifndef EVC_CP_CPAUTH_H
#define EVC_CP_CPAUTH_H
#include <stddef.h>

#include "evc/cred.h"
#include "evc/err.h"
#include "evc/link.h"

#define CPAUTH_DEADLINE 5.0     /* s from accept to AUTH_OK */
#define CPAUTH_STRIKES 3        /* frames before AUTH_OK that close the connection */
#define CPAUTH_FAIL_MAX 5       /* failures from one address within ... */
#define CPAUTH_FAIL_WINDOW 60.0 /* ... this many seconds block it ... */
#define CPAUTH_BLOCK 60.0       /* ... for this many */
#define CPAUTH_ADDRS 64         /* addresses remembered (oldest forgotten first) */
#define CPAUTH_ADDR_LEN 48      /* an IPv6 address as text, with room */
#define CPAUTH_NOT_AUTHENTICATED "ERROR#NOT_AUTHENTICATED"

enum cpauth_state { CPAUTH_NONE, CPAUTH_CHALLENGED, CPAUTH_DONE };

/* One connection's progress. Holds the nonce until it is used. */
struct cpauth_conn {
	enum cpauth_state state;
	unsigned char nonce[16];
	int strikes;
	double deadline; /* monotonic; 0 once authenticated */
};

enum cpauth_verdict {
	CPAUTH_PASS,   /* authenticated already: the frame is the engine's business */
	CPAUTH_ANSWER, /* send reply, keep the connection */
	CPAUTH_OK,     /* send reply (AUTH_OK): authenticated from now on */
	CPAUTH_FAIL,   /* send reply, then EOT and close; why tells the log */
};

/* A connection accepted at now. open = 1 makes it authenticated from the
 * start (Release-1 mode: the engine has no credential). */
void cpauth_conn_init(struct cpauth_conn *c, double now, int open);
/* Judge one received frame: f/n as link_split gives them (n < 1: too many
 * fields). reply gets the frame to send for ANSWER, OK and FAIL; why gets a
 * reason a person can read for FAIL (never the secret or the answer). */
enum cpauth_verdict cpauth_frame(struct cpauth_conn *c, const struct cred *cred, char **f, int n,
				 char reply[LINK_DATA_MAX + 1], char why[EVC_ERR_LEN]);
/* True when c is not authenticated and its deadline has passed. */
int cpauth_expired(const struct cpauth_conn *c, double now);
/* Forget the nonce (on close). */
void cpauth_conn_wipe(struct cpauth_conn *c);

/* Failures per address, bounded: CPAUTH_ADDRS entries at most. */
struct cpauth_addr {
	char addr[CPAUTH_ADDR_LEN]; /* "" = free */
	double fails[CPAUTH_FAIL_MAX]; /* ring of the latest failure times */
	int nfails, next;
	double blocked_until;
	double last_seen;
	unsigned long refused;      /* connections refused during the current block */
	double last_refusal_logged;
};
struct cpauth_limiter {
	struct cpauth_addr a[CPAUTH_ADDRS];
};

void cpauth_limiter_init(struct cpauth_limiter *l);
/* True if connections from addr are refused at now. Counts the refusal in
 * *refused (may be NULL) and sets *log_it (may be NULL) to 1 at most once
 * every 10 s per address, so a flood is logged but does not flood the log. */
int cpauth_blocked(struct cpauth_limiter *l, const char *addr, double now, unsigned long *refused, int *log_it);
/* Count one failure from addr at now. Returns 1 if it starts a block. */
int cpauth_failed(struct cpauth_limiter *l, const char *addr, double now);

#endif
