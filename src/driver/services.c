/* Services-file parser (see services.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/msg.h"
#include "evc/xalloc.h"
#include "src/driver/services.h"

#define SERVICES_FILE_MAX (16u * 1024 * 1024)

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

void services_free(struct services *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->cp[i]);
	free(s->cp);
	s->cp = NULL;
	s->n = 0;
}

/* A bad id is quoted back to the user, but only printable ASCII of it: the
 * rest could be anything (binary junk, escape sequences). */
static void quote_safe(char *dst, size_t n, const char *src, size_t len)
{
	size_t j = 0;
	for (size_t i = 0; i < len && j + 1 < n; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (n > 0)
		dst[j < n ? j : n - 1] = '\0';
	if (len + 1 > n && n > 4)
		memcpy(dst + n - 4, "...", 4);
}

int services_parse(const char *text, size_t len, struct services *out, char err[EVC_ERR_LEN])
{
	size_t cap = 0, lineno = 0, pos = 0;
	out->cp = NULL;
	out->n = 0;
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		pos += llen + (nl != NULL ? 1 : 0);
		lineno++;
		if (memchr(line, '\0', llen) != NULL) {
			snprintf(err, EVC_ERR_LEN, "line %zu: contains a NUL byte (not a text file?)", lineno);
			goto fail;
		}
		const char *hash = memchr(line, '#', llen);
		if (hash != NULL)
			llen = (size_t)(hash - line);
		while (llen > 0 && is_space(line[0])) {
			line++;
			llen--;
		}
		while (llen > 0 && is_space(line[llen - 1]))
			llen--;
		if (llen == 0)
			continue;
		char id[MSG_CP_ID_MAX + 1];
		if (llen > MSG_CP_ID_MAX) {
			char q[48];
			quote_safe(q, sizeof q, line, llen);
			snprintf(err, EVC_ERR_LEN, "line %zu: CP id '%s' is longer than %d characters", lineno, q,
				 MSG_CP_ID_MAX);
			goto fail;
		}
		memcpy(id, line, llen);
		id[llen] = '\0';
		if (!msg_valid_cp_id(id)) {
			char q[48];
			quote_safe(q, sizeof q, line, llen);
			snprintf(err, EVC_ERR_LEN,
				 "line %zu: invalid CP id '%s' (letters, digits, '-' and '_' only, one per line)", lineno, q);
			goto fail;
		}
		if (out->n == SERVICES_MAX) {
			snprintf(err, EVC_ERR_LEN, "line %zu: more than %d services", lineno, SERVICES_MAX);
			goto fail;
		}
		if (out->n == cap) {
			cap = cap ? cap * 2 : 16;
			out->cp = xreallocarray(out->cp, cap, sizeof *out->cp);
		}
		out->cp[out->n++] = xstrdup(id);
	}
	return 0;
fail:
	services_free(out);
	return -1;
}

int services_load(const char *path, struct services *out, char err[EVC_ERR_LEN])
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = -1;
	out->cp = NULL;
	out->n = 0;
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, EVC_ERR_LEN, "cannot open: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= SERVICES_FILE_MAX) {
				snprintf(err, EVC_ERR_LEN, "larger than %u bytes",
					 SERVICES_FILE_MAX);
				goto out;
			}
			cap = cap ? cap * 2 : 4096;
			buf = xrealloc(buf, cap);
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		/* e.g. EISDIR when the path is a directory */
		snprintf(err, EVC_ERR_LEN, "cannot read: %s", strerror(errno));
		goto out;
	}
	if (services_parse(buf, len, out, err) == -1)
		goto out;
	rc = 0;
out:
	free(buf);
	fclose(f);
	return rc;
}
