#include "ui/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evc/xalloc.h"

#define CSV_PATH_MAX 1023

static void put(struct csv_buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		b->v = xrealloc(b->v, cap);
		b->cap = cap;
	}
	memcpy(b->v + b->n, s, n);
	b->n += n;
	b->v[b->n] = '\0';
}

void csv_field(struct csv_buf *b, const char *s)
{
	if (s == NULL)
		s = "";
	if (b->row_fields++ > 0)
		put(b, ",", 1);
	if (strpbrk(s, ",\"\r\n") == NULL) {
		put(b, s, strlen(s));
		return;
	}
	put(b, "\"", 1);
	for (const char *q; (q = strchr(s, '"')) != NULL; s = q + 1) {
		put(b, s, (size_t)(q - s));
		put(b, "\"\"", 2);
	}
	put(b, s, strlen(s));
	put(b, "\"", 1);
}

void csv_num(struct csv_buf *b, double v, int decimals)
{
	char t[64];
	snprintf(t, sizeof t, "%.*f", decimals, v);
	csv_field(b, t);
}

void csv_end_row(struct csv_buf *b)
{
	put(b, "\r\n", 2);
	b->row_fields = 0;
}

void csv_free(struct csv_buf *b)
{
	free(b->v);
	memset(b, 0, sizeof *b);
}

void csv_safe_name(const char *path, char *out, size_t len)
{
	size_t i = 0;
	if (len == 0)
		return;
	for (; path[i] != '\0' && i + 1 < len && i < 80; i++) {
		unsigned char c = (unsigned char)path[i];
		out[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	out[i] = '\0';
}

int csv_write_atomic(const char *path, const struct csv_buf *b, char err[EVC_ERR_LEN])
{
	char safe[96], dir[CSV_PATH_MAX + 1], tmp[CSV_PATH_MAX + 32];
	int fd = -1, dfd = -1;
	size_t plen = strlen(path);

	csv_safe_name(path, safe, sizeof safe);
	if (plen == 0) {
		evc_seterr(err, "export: no file name");
		return -1;
	}
	if (plen > CSV_PATH_MAX) {
		evc_seterr(err, "export: file name too long (%zu bytes, at most %d)", plen, CSV_PATH_MAX);
		return -1;
	}
	for (const char *c = path; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			evc_seterr(err, "export: '%s': control characters in the file name", safe);
			return -1;
		}
	}
	if (path[plen - 1] == '/') {
		evc_seterr(err, "export: '%s' is a folder, not a file name", safe);
		return -1;
	}
	/* the temporary file goes in the target's folder, so rename cannot
	 * cross a file system */
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, slash ? slash + 1 : path);
	fd = mkstemp(tmp);
	if (fd == -1) {
		evc_seterr(err, "export: '%s': cannot create a file in its folder: %s", safe, strerror(errno));
		return -1;
	}
	for (size_t off = 0; off < b->n;) {
		ssize_t w = write(fd, b->v + off, b->n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			evc_seterr(err, "export: '%s': %s", safe, w < 0 ? strerror(errno) : "short write");
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) == -1) {
		evc_seterr(err, "export: '%s': %s", safe, strerror(errno));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		evc_seterr(err, "export: '%s': %s", safe, strerror(errno));
		goto fail;
	}
	fd = -1;
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		evc_seterr(err, "export: '%s' is a folder", safe);
		goto fail;
	}
	if (rename(tmp, path) == -1) {
		evc_seterr(err, "export: '%s': %s", safe, strerror(errno));
		goto fail;
	}
	/* the rename itself on disk */
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}
