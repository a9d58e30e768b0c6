#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/xalloc.h"
#include "src/registry/ratelimit.h"

struct slot {
	char key[RATELIMIT_KEY_LEN];
	int used;
	/* The last `limit` failures, a ring: when it is full, the oldest of
	 * them is the one `limit` failures before the next. */
	double fails[RATELIMIT_MAX_LIMIT];
	int nfails, head;
	double blocked_until;
	double last; /* last failure or block: the eviction order */
};

struct ratelimit {
	struct slot *slots;
	size_t nslots;
	int limit;
	double window, block;
};

struct ratelimit *ratelimit_new(size_t slots, int limit, double window, double block)
{
	struct ratelimit *rl = xcalloc(1, sizeof *rl);
	if (slots < 1)
		slots = 1;
	if (limit < 1)
		limit = 1;
	if (limit > RATELIMIT_MAX_LIMIT)
		limit = RATELIMIT_MAX_LIMIT;
	rl->slots = xcalloc(slots, sizeof *rl->slots);
	rl->nslots = slots;
	rl->limit = limit;
	rl->window = window;
	rl->block = block;
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	free(rl->slots);
	free(rl);
}

void ratelimit_key(const char *addr, char key[RATELIMIT_KEY_LEN])
{
	struct in6_addr a6;
	struct in_addr a4;
	if (inet_pton(AF_INET6, addr, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			memcpy(&a4, &a6.s6_addr[12], 4);
			inet_ntop(AF_INET, &a4, key, RATELIMIT_KEY_LEN);
			return;
		}
		memset(&a6.s6_addr[8], 0, 8);
		char p[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &a6, p, sizeof p);
		snprintf(key, RATELIMIT_KEY_LEN, "%s/64", p);
		return;
	}
	xstrlcpy(key, addr, RATELIMIT_KEY_LEN);
}

static struct slot *find(struct ratelimit *rl, const char *key)
{
	for (size_t i = 0; i < rl->nslots; i++)
		if (rl->slots[i].used && strcmp(rl->slots[i].key, key) == 0)
			return &rl->slots[i];
	return NULL;
}

double ratelimit_blocked(struct ratelimit *rl, const char *key, double now)
{
	struct slot *s = find(rl, key);
	if (s == NULL || now >= s->blocked_until)
		return 0;
	return s->blocked_until - now;
}

int ratelimit_fail(struct ratelimit *rl, const char *key, double now)
{
	struct slot *s = find(rl, key);
	if (s == NULL) {
		/* A free slot, else the one whose last failure is oldest. */
		struct slot *oldest = NULL;
		for (size_t i = 0; i < rl->nslots; i++) {
			struct slot *c = &rl->slots[i];
			if (!c->used) {
				oldest = c;
				break;
			}
			if (oldest == NULL || c->last < oldest->last)
				oldest = c;
		}
		s = oldest;
		memset(s, 0, sizeof *s);
		s->used = 1;
		xstrlcpy(s->key, key, sizeof s->key);
	}
	s->last = now;
	if (now < s->blocked_until)
		return 0; /* already blocked (the caller should not have asked) */
	if (s->nfails == rl->limit && now - s->fails[s->head] < rl->window) {
		/* limit failures already within the window: this one is past it */
		s->blocked_until = now + rl->block;
		s->nfails = 0;
		s->head = 0;
		return 1;
	}
	if (s->nfails < rl->limit) {
		s->fails[(s->head + s->nfails) % rl->limit] = now;
		s->nfails++;
	} else {
		s->fails[s->head] = now;
		s->head = (s->head + 1) % rl->limit;
	}
	return 0;
}

size_t ratelimit_count(const struct ratelimit *rl)
{
	size_t n = 0;
	for (size_t i = 0; i < rl->nslots; i++)
		n += rl->slots[i].used != 0;
	return n;
}
