/* The engine's challenge gate and failure limiter (see cpauth.h). */
#include <stdio.h>
#include <string.h>

#include "evc/crypto.h"
#include "evc/msg.h"
#include "src/cp/cpauth.h"

#define REFUSAL_LOG_PERIOD 10.0 /* s between log lines for one blocked address */

void cpauth_conn_init(struct cpauth_conn *c, double now, int open)
{
	memset(c, 0, sizeof *c);
	c->state = open ? CPAUTH_DONE : CPAUTH_NONE;
	c->deadline = open ? 0 : now + CPAUTH_DEADLINE;
}

void cpauth_conn_wipe(struct cpauth_conn *c)
{
	crypto_wipe(c->nonce, sizeof c->nonce);
}

int cpauth_expired(const struct cpauth_conn *c, double now)
{
	return c->state != CPAUTH_DONE && now >= c->deadline;
}

static enum cpauth_verdict fail(struct cpauth_conn *c, char reply[LINK_DATA_MAX + 1])
{
	cpauth_conn_wipe(c);
	snprintf(reply, LINK_DATA_MAX + 1, "%s", CPAUTH_NOT_AUTHENTICATED);
	return CPAUTH_FAIL;
}

/* A frame that is not the next step of the exchange. */
static enum cpauth_verdict strike(struct cpauth_conn *c, const char *op, char reply[LINK_DATA_MAX + 1],
				  char why[EVC_ERR_LEN])
{
	snprintf(reply, LINK_DATA_MAX + 1, "%s", CPAUTH_NOT_AUTHENTICATED);
	if (++c->strikes < CPAUTH_STRIKES)
		return CPAUTH_ANSWER;
	/* The opcode is [A-Z_]+ (link_validate), safe to show; bounded anyway. */
	evc_seterr(why, "%d frames before authentication (last: %.32s)", CPAUTH_STRIKES, op);
	return fail(c, reply);
}

enum cpauth_verdict cpauth_frame(struct cpauth_conn *c, const struct cred *cred, char **f, int n,
				 char reply[LINK_DATA_MAX + 1], char why[EVC_ERR_LEN])
{
	reply[0] = '\0';
	if (c->state == CPAUTH_DONE)
		return CPAUTH_PASS;
	if (n < 1)
		return strike(c, "(too many fields)", reply, why);
	const char *op = f[0];
	if (c->state == CPAUTH_NONE && strcmp(op, "HELLO") == 0) {
		if (n < 2 || !msg_valid_cp_id(f[1])) {
			evc_seterr(why, "HELLO without a valid CP id");
			return fail(c, reply);
		}
		if (strcmp(f[1], cred->cp_id) != 0) {
			evc_seterr(why, "HELLO for CP %s; this engine serves %s", f[1], cred->cp_id);
			return fail(c, reply);
		}
		char hex[33], err[EVC_ERR_LEN];
		if (crypto_challenge_new(c->nonce, hex, err) < 0) {
			evc_seterr(why, "cannot make a challenge: %s", err);
			return fail(c, reply);
		}
		c->state = CPAUTH_CHALLENGED;
		snprintf(reply, LINK_DATA_MAX + 1, "CHALLENGE#%s", hex);
		return CPAUTH_ANSWER;
	}
	if (c->state == CPAUTH_CHALLENGED && strcmp(op, "AUTH") == 0) {
		/* One answer per nonce: right or wrong, it is used up. */
		int good = n >= 2 && crypto_challenge_check(cred->secret, c->nonce, cred->cp_id, f[1]) == 1;
		cpauth_conn_wipe(c);
		if (!good) {
			evc_seterr(why, "wrong answer to the challenge");
			return fail(c, reply);
		}
		c->state = CPAUTH_DONE;
		c->deadline = 0;
		snprintf(reply, LINK_DATA_MAX + 1, "AUTH_OK");
		return CPAUTH_OK;
	}
	return strike(c, op, reply, why);
}

/* ---- limiter ---- */

void cpauth_limiter_init(struct cpauth_limiter *l)
{
	memset(l, 0, sizeof *l);
}

static struct cpauth_addr *find(struct cpauth_limiter *l, const char *addr)
{
	for (int i = 0; i < CPAUTH_ADDRS; i++)
		if (l->a[i].addr[0] != '\0' && strcmp(l->a[i].addr, addr) == 0)
			return &l->a[i];
	return NULL;
}

/* An entry for addr, making room if needed: a free one, else the one seen
 * longest ago that is not blocked, else the block that ends first (so a
 * flood of new addresses cannot lift the block of one that is active
 * while older, idle ones are kept). */
static struct cpauth_addr *slot(struct cpauth_limiter *l, const char *addr, double now)
{
	struct cpauth_addr *a = find(l, addr);
	if (a != NULL)
		return a;
	struct cpauth_addr *idle = NULL, *blocked = NULL;
	for (int i = 0; i < CPAUTH_ADDRS; i++) {
		struct cpauth_addr *x = &l->a[i];
		if (x->addr[0] == '\0') {
			idle = x;
			break;
		}
		if (x->blocked_until > now) {
			if (blocked == NULL || x->blocked_until < blocked->blocked_until)
				blocked = x;
		} else if (idle == NULL || x->last_seen < idle->last_seen) {
			idle = x;
		}
	}
	a = idle != NULL ? idle : blocked;
	memset(a, 0, sizeof *a);
	snprintf(a->addr, sizeof a->addr, "%s", addr);
	return a;
}

int cpauth_blocked(struct cpauth_limiter *l, const char *addr, double now, unsigned long *refused, int *log_it)
{
	struct cpauth_addr *a = find(l, addr);
	if (log_it != NULL)
		*log_it = 0;
	if (a == NULL || a->blocked_until <= now)
		return 0;
	a->refused++;
	a->last_seen = now;
	if (refused != NULL)
		*refused = a->refused;
	if (log_it != NULL && (a->refused == 1 || now - a->last_refusal_logged >= REFUSAL_LOG_PERIOD)) {
		a->last_refusal_logged = now;
		*log_it = 1;
	}
	return 1;
}

int cpauth_failed(struct cpauth_limiter *l, const char *addr, double now)
{
	struct cpauth_addr *a = slot(l, addr, now);
	a->last_seen = now;
	if (a->blocked_until > now)
		return 0; /* a connection let in before the block began */
	a->fails[a->next] = now;
	a->next = (a->next + 1) % CPAUTH_FAIL_MAX;
	if (a->nfails < CPAUTH_FAIL_MAX)
		a->nfails++;
	/* With the ring full, a->next is the oldest of the last CPAUTH_FAIL_MAX. */
	if (a->nfails == CPAUTH_FAIL_MAX && now - a->fails[a->next] <= CPAUTH_FAIL_WINDOW) {
		a->blocked_until = now + CPAUTH_BLOCK;
		a->refused = 0;
		a->last_refusal_logged = 0;
		a->nfails = 0;
		a->next = 0;
		return 1;
	}
	return 0;
}
