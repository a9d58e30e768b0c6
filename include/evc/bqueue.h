/* One bounded queue between threads: a fixed ring of fixed-size items
 * (copied in and out, so nothing is allocated per item), a mutex and
 * condition variables, and an eventfd that is readable while items wait
 * (or after a kick), for a consumer that sleeps in poll(). Producers either
 * wait for room or are told at once that it is full: nothing a peer sends
 * can grow it without bound. */
#ifndef EVC_BQUEUE_H
#define EVC_BQUEUE_H
#include <stddef.h>

#include "evc/err.h"

struct bqueue;

/* cap items of item_size bytes. NULL with err if the eventfd cannot be
 * made. Caller frees with bqueue_free. */
struct bqueue *bqueue_new(size_t item_size, size_t cap, char err[EVC_ERR_LEN]);
/* Wakes and fails every waiter, then frees. NULL is fine. */
void bqueue_free(struct bqueue *q);
/* Readable while items wait or after bqueue_kick. */
int bqueue_fd(const struct bqueue *q);

/* Copy item in. wait: sleep while full. 0, or -1 if full (wait == 0) or
 * closed. */
int bqueue_push(struct bqueue *q, const void *item, int wait);
/* Copy n items in, in order, taking the lock and waking the consumer once
 * for as many as fit at a time. wait: sleep while full until all are in.
 * Returns how many went in: n, or fewer if full (wait == 0) or closed. */
size_t bqueue_push_many(struct bqueue *q, const void *items, size_t n, int wait);
/* Take up to max items, oldest first, without waiting. Returns how many.
 * Clears a kick; the fd stays readable while items remain. */
size_t bqueue_pop(struct bqueue *q, void *out, size_t max);

/* A single consumer that must keep items counted until it has finished
 * with them (bqueue_len includes them): copy up to max from the head
 * without removing, waiting until there is one, a kick, or close. Returns
 * how many (0 on a kick or when closed and empty). */
size_t bqueue_peek_wait(struct bqueue *q, void *out, size_t max);
/* Remove n items from the head (after bqueue_peek_wait). */
void bqueue_drop(struct bqueue *q, size_t n);

/* Wake the consumer (bqueue_peek_wait returns, the fd becomes readable)
 * without an item: something else it watches changed. */
void bqueue_kick(struct bqueue *q);
/* Items in the queue (peeked ones included). */
size_t bqueue_len(struct bqueue *q);
/* From now on pushes fail and waiters return; items already in stay. */
void bqueue_close(struct bqueue *q);
int bqueue_closed(struct bqueue *q);

#endif
