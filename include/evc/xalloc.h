/* Allocation wrappers: out of memory is not recoverable here, so these abort
 * with a message instead of returning NULL (OpenBSD/tmux xmalloc style). */
#ifndef EVC_XALLOC_H
#define EVC_XALLOC_H
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string; caller frees with free(). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Copy src into dst of size n, always NUL-terminated; returns strlen(src). */
size_t xstrlcpy(char *dst, const char *src, size_t n);

#endif
