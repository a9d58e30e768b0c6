/* The driver's services file: one CP id per line, blank lines and `#`
 * comments ignored (a `#` also ends a line early, since a CP id never
 * contains one). Pure: parsing a buffer does no I/O. */
#ifndef EVC_DRIVER_SERVICES_H
#define EVC_DRIVER_SERVICES_H
#include <stddef.h>
#include "evc/err.h"

#define SERVICES_MAX 100000 /* CP ids in one file: more is surely a mistake */

struct services {
	char **cp;  /* owned: n NUL-terminated valid CP ids, in file order */
	size_t n;
};

/* Parse len bytes of text. On success 0 and *out filled (caller frees with
 * services_free). On the first bad line -1, *out empty, err says where and
 * why ("line 3: invalid CP id 'MAD 01' ..."). */
int services_parse(const char *text, size_t len, struct services *out, char err[EVC_ERR_LEN]);
/* Read and parse a file; a missing or unreadable file is an error with
 * the system's reason (the caller names the path). Same ownership as
 * services_parse. */
int services_load(const char *path, struct services *out, char err[EVC_ERR_LEN]);
void services_free(struct services *s);

#endif
