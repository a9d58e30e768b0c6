#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "evc/bqueue.h"
#include "evc/xalloc.h"

struct bqueue {
	pthread_mutex_t mu;
	pthread_cond_t room, items;
	unsigned char *ring;
	size_t size, cap, head, len;
	int closed, kicked, signalled;
	int efd;
};

struct bqueue *bqueue_new(size_t item_size, size_t cap, char err[EVC_ERR_LEN])
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd == -1) {
		evc_seterr(err, "eventfd: %s", strerror(errno));
		return NULL;
	}
	struct bqueue *q = xcalloc(1, sizeof *q);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->room, NULL);
	pthread_cond_init(&q->items, NULL);
	q->size = item_size;
	q->cap = cap ? cap : 1;
	q->ring = xcalloc(q->cap, item_size);
	q->efd = fd;
	return q;
}

void bqueue_free(struct bqueue *q)
{
	if (q == NULL)
		return;
	bqueue_close(q);
	pthread_cond_destroy(&q->room);
	pthread_cond_destroy(&q->items);
	pthread_mutex_destroy(&q->mu);
	close(q->efd);
	free(q->ring);
	free(q);
}

int bqueue_fd(const struct bqueue *q)
{
	return q->efd;
}

/* Under the lock, so a wakeup is never lost between a reset and a push. */
static void fd_signal(struct bqueue *q)
{
	if (q->signalled)
		return;
	uint64_t one = 1;
	ssize_t r;
	do
		r = write(q->efd, &one, sizeof one);
	while (r == -1 && errno == EINTR);
	q->signalled = 1; /* EAGAIN: the counter is full, still readable */
}

static void fd_reset(struct bqueue *q)
{
	if (!q->signalled)
		return;
	uint64_t v;
	ssize_t r;
	do
		r = read(q->efd, &v, sizeof v);
	while (r == -1 && errno == EINTR);
	q->signalled = 0;
}

/* n items into the ring from slot `at` on (wrapping), or out of it, in at
 * most two pieces. */
static void ring_put(struct bqueue *q, size_t at, const unsigned char *src, size_t n)
{
	size_t first = q->cap - at < n ? q->cap - at : n;
	memcpy(q->ring + at * q->size, src, first * q->size);
	memcpy(q->ring, src + first * q->size, (n - first) * q->size);
}

static void ring_get(const struct bqueue *q, size_t at, unsigned char *dst, size_t n)
{
	size_t first = q->cap - at < n ? q->cap - at : n;
	memcpy(dst, q->ring + at * q->size, first * q->size);
	memcpy(dst + first * q->size, q->ring, (n - first) * q->size);
}

size_t bqueue_push_many(struct bqueue *q, const void *items, size_t n, int wait)
{
	const unsigned char *p = items;
	size_t done = 0;
	pthread_mutex_lock(&q->mu);
	while (done < n) {
		while (wait && q->len == q->cap && !q->closed)
			pthread_cond_wait(&q->room, &q->mu);
		if (q->closed || q->len == q->cap)
			break;
		size_t k = q->cap - q->len < n - done ? q->cap - q->len : n - done;
		ring_put(q, (q->head + q->len) % q->cap, p + done * q->size, k);
		q->len += k;
		done += k;
		/* One wakeup for all that fitted. */
		fd_signal(q);
		pthread_cond_signal(&q->items);
	}
	pthread_mutex_unlock(&q->mu);
	return done;
}

int bqueue_push(struct bqueue *q, const void *item, int wait)
{
	return bqueue_push_many(q, item, 1, wait) == 1 ? 0 : -1;
}

static size_t copy_out(struct bqueue *q, void *out, size_t max)
{
	size_t n = q->len < max ? q->len : max;
	ring_get(q, q->head, out, n);
	return n;
}

static void drop_locked(struct bqueue *q, size_t n)
{
	if (n > q->len)
		n = q->len;
	q->head = (q->head + n) % q->cap;
	q->len -= n;
	if (n > 0)
		pthread_cond_broadcast(&q->room);
}

size_t bqueue_pop(struct bqueue *q, void *out, size_t max)
{
	pthread_mutex_lock(&q->mu);
	size_t n = copy_out(q, out, max);
	drop_locked(q, n);
	q->kicked = 0;
	if (q->len == 0)
		fd_reset(q);
	pthread_mutex_unlock(&q->mu);
	return n;
}

size_t bqueue_peek_wait(struct bqueue *q, void *out, size_t max)
{
	pthread_mutex_lock(&q->mu);
	while (q->len == 0 && !q->kicked && !q->closed)
		pthread_cond_wait(&q->items, &q->mu);
	q->kicked = 0;
	size_t n = copy_out(q, out, max);
	if (q->len == 0)
		fd_reset(q);
	pthread_mutex_unlock(&q->mu);
	return n;
}

void bqueue_drop(struct bqueue *q, size_t n)
{
	pthread_mutex_lock(&q->mu);
	drop_locked(q, n);
	pthread_mutex_unlock(&q->mu);
}

void bqueue_kick(struct bqueue *q)
{
	pthread_mutex_lock(&q->mu);
	q->kicked = 1;
	fd_signal(q);
	pthread_cond_signal(&q->items);
	pthread_mutex_unlock(&q->mu);
}

size_t bqueue_len(struct bqueue *q)
{
	pthread_mutex_lock(&q->mu);
	size_t n = q->len;
	pthread_mutex_unlock(&q->mu);
	return n;
}

void bqueue_close(struct bqueue *q)
{
	pthread_mutex_lock(&q->mu);
	q->closed = 1;
	pthread_cond_broadcast(&q->room);
	pthread_cond_broadcast(&q->items);
	pthread_mutex_unlock(&q->mu);
}

int bqueue_closed(struct bqueue *q)
{
	pthread_mutex_lock(&q->mu);
	int c = q->closed;
	pthread_mutex_unlock(&q->mu);
	return c;
}
