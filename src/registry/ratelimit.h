/* Failed-authentication limiter of EV_Registry (evcharging(7) SECURITY):
 * more than `limit` failures from one address within `window` seconds
 * block that address for `block` seconds. The table of addresses is
 * bounded; when it is full the address seen longest ago is forgotten. No
 * I/O and no clock of its own: the caller passes monotonic seconds. */
#ifndef EVC_REGISTRY_RATELIMIT_H
#define EVC_REGISTRY_RATELIMIT_H
#include <stddef.h>

#define RATELIMIT_KEY_LEN 64
#define RATELIMIT_MAX_LIMIT 64

struct ratelimit;

/* Caller frees with ratelimit_free. limit 1..RATELIMIT_MAX_LIMIT, slots
 * >= 1. */
struct ratelimit *ratelimit_new(size_t slots, int limit, double window, double block);
void ratelimit_free(struct ratelimit *rl);
/* The key an address is counted under: an IPv4 address as is (also when
 * it comes IPv4-mapped in IPv6), an IPv6 address by its /64 (one machine
 * usually holds a whole /64, so counting single IPv6 addresses would not
 * limit anyone). Anything that is not an address is used as it is, cut to
 * RATELIMIT_KEY_LEN - 1 bytes. */
void ratelimit_key(const char *addr, char key[RATELIMIT_KEY_LEN]);
/* Seconds left of the block on key at now (> 0), or 0 if not blocked. */
double ratelimit_blocked(struct ratelimit *rl, const char *key, double now);
/* Count one failure of key at now. 1 if it starts a block (the caller
 * audits that once), else 0. */
int ratelimit_fail(struct ratelimit *rl, const char *key, double now);
/* Addresses in the table (tests). */
size_t ratelimit_count(const struct ratelimit *rl);

#endif
