#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evc/xalloc.h"
#include "ui/errcap.h"

struct errcap {
	errcap_fn fn;
	void *arg;
	int saved, rd;
	pthread_t thread;
};

/* Ends when the write end is closed (errcap_stop puts the real stderr
 * back). */
static void *reader(void *arg)
{
	struct errcap *e = arg;
	char buf[1024];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(e->rd, buf + n, sizeof buf - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', n - (size_t)(start - buf))) != NULL) {
			*nl = 0;
			if (nl > start)
				e->fn(e->arg, start);
			start = nl + 1;
		}
		n -= (size_t)(start - buf);
		memmove(buf, start, n);
		if (n == sizeof buf - 1) { /* a very long line: show it in pieces */
			buf[n] = 0;
			e->fn(e->arg, buf);
			n = 0;
		}
	}
	if (n) {
		buf[n] = 0;
		e->fn(e->arg, buf);
	}
	return NULL;
}

struct errcap *errcap_start(errcap_fn fn, void *arg)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return NULL;
	struct errcap *e = xcalloc(1, sizeof *e);
	e->fn = fn;
	e->arg = arg;
	e->saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (e->saved < 0 || dup2(fds[1], STDERR_FILENO) < 0) {
		if (e->saved >= 0)
			close(e->saved);
		close(fds[0]);
		close(fds[1]);
		free(e);
		return NULL;
	}
	close(fds[1]);
	e->rd = fds[0];
	if (pthread_create(&e->thread, NULL, reader, e) != 0) {
		/* no reader: put stderr back rather than let writers block */
		dup2(e->saved, STDERR_FILENO);
		close(e->saved);
		close(e->rd);
		free(e);
		return NULL;
	}
	return e;
}

void errcap_stop(struct errcap *e)
{
	if (e == NULL)
		return;
	fflush(stderr);
	/* closes the pipe's last write end: the reader sees EOF and ends */
	dup2(e->saved, STDERR_FILENO);
	close(e->saved);
	pthread_join(e->thread, NULL);
	close(e->rd);
	free(e);
}
