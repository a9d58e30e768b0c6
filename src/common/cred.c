/* Secret files (evcharging(7) SECURITY). A file holding a secret is opened
 * first and then checked through its descriptor, so what is checked is
 * what is read: no window between a stat and an open. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "evc/cred.h"
#include "evc/crypto.h"
#include "evc/msg.h"
#include "evc/xalloc.h"

/* ssh's rule for private keys: a regular file that neither group nor
 * others can access in any way. 0, or -1 with err. */
static int check_stat(const char *path, const struct stat *st, char err[EVC_ERR_LEN])
{
	if (!S_ISREG(st->st_mode)) {
		evc_seterr(err, "%s: not a regular file", path);
		return -1;
	}
	if (st->st_mode & 077) {
		int r = (st->st_mode & 044) != 0, w = (st->st_mode & 022) != 0;
		evc_seterr(err, "%s: mode %04o lets others %s it; chmod 600 %s", path,
			   (unsigned)(st->st_mode & 07777), r && w ? "read and write" : r ? "read" : w ? "write" : "execute",
			   path);
		return -1;
	}
	return 0;
}

/* Opens path for reading and checks it through the descriptor. A FIFO
 * must not block the open, hence O_NONBLOCK (harmless on a regular file).
 * limit > 0 also refuses a file larger than that. Returns the descriptor
 * (caller closes) or -1 with err. */
static int open_secret(const char *path, off_t limit, char err[EVC_ERR_LEN])
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		evc_seterr(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		evc_seterr(err, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (check_stat(path, &st, err) < 0)
		goto fail;
	if (limit > 0 && st.st_size > limit) {
		evc_seterr(err, "%s: larger than %lld bytes", path, (long long)limit);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int cred_check_mode(const char *path, char err[EVC_ERR_LEN])
{
	/* No size limit: a private key or a tokens file may be longer than
	 * what this module parses itself. */
	int fd = open_secret(path, 0, err);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* Reads the whole (already size-checked) file into buf of CRED_FILE_MAX + 1
 * bytes, NUL-terminated; a file that grew past the limit since the check
 * is refused too. Returns the length or -1 with err. */
static ssize_t read_small(int fd, const char *path, char *buf, char err[EVC_ERR_LEN])
{
	size_t n = 0;

	for (;;) {
		ssize_t r = read(fd, buf + n, CRED_FILE_MAX + 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			evc_seterr(err, "%s: %s", path, strerror(errno));
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CRED_FILE_MAX) {
			evc_seterr(err, "%s: larger than %d bytes", path, CRED_FILE_MAX);
			return -1;
		}
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

/* A string member of obj, or NULL with err. jansson already refuses
 * \u0000 (we do not pass JSON_ALLOW_NUL); the length check keeps a C
 * string from meaning less than the file says should that ever change. */
static const char *get_string(json_t *obj, const char *name, const char *path, char err[EVC_ERR_LEN])
{
	json_t *v = json_object_get(obj, name);

	if (v == NULL) {
		evc_seterr(err, "%s: missing field '%s'", path, name);
		return NULL;
	}
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		evc_seterr(err, "%s: field '%s' is not a string", path, name);
		return NULL;
	}
	return json_string_value(v);
}

int cred_load(const char *path, struct cred *c, char err[EVC_ERR_LEN])
{
	char buf[CRED_FILE_MAX + 1];
	json_t *root = NULL, *sec;
	json_error_t jerr;
	const char *id, *secret;
	ssize_t n;
	int fd, rc = -1;

	memset(c, 0, sizeof *c);
	fd = open_secret(path, CRED_FILE_MAX, err);
	if (fd < 0)
		return -1;
	n = read_small(fd, path, buf, err);
	close(fd);
	if (n < 0)
		goto fail;
	root = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		/* jansson's own text quotes the input near the error, which may
		 * be the secret: say only where. */
		evc_seterr(err, "%s: bad JSON at line %d column %d", path, jerr.line, jerr.column);
		goto fail;
	}
	if (!json_is_object(root)) {
		evc_seterr(err, "%s: not a JSON object", path);
		goto fail;
	}
	if ((id = get_string(root, "id", path, err)) == NULL || (secret = get_string(root, "secret", path, err)) == NULL)
		goto fail;
	/* Neither value goes into a message: a secret pasted into "id" must
	 * not come out in the error about it. */
	if (!msg_valid_cp_id(id)) {
		evc_seterr(err, "%s: field 'id' is not a valid CP id (1 to %d of A-Z a-z 0-9 _ -)", path,
			   MSG_CP_ID_MAX);
		goto fail;
	}
	if (!crypto_valid_secret(secret)) {
		evc_seterr(err, "%s: field 'secret' is not a valid secret (%d base64url characters)", path,
			   CRYPTO_SECRET_LEN);
		goto fail;
	}
	xstrlcpy(c->cp_id, id, sizeof c->cp_id);
	xstrlcpy(c->secret, secret, sizeof c->secret);
	rc = 0;
fail:
	/* jansson keeps its own copy of every string; the secret's is wiped
	 * before it goes back to the heap. */
	if (root != NULL && (sec = json_object_get(root, "secret")) != NULL && json_is_string(sec))
		crypto_wipe((char *)json_string_value(sec), json_string_length(sec));
	json_decref(root);
	crypto_wipe(buf, sizeof buf);
	if (rc < 0)
		cred_wipe(c);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int cred_save(const char *path, const struct cred *c, char err[EVC_ERR_LEN])
{
	char body[sizeof c->cp_id + sizeof c->secret + 32];
	char *tmp = NULL, *dir = NULL, *slash;
	int fd = -1, dfd = -1, rc = -1;
	size_t len;

	if (!msg_valid_cp_id(c->cp_id) || !crypto_valid_secret(c->secret)) {
		evc_seterr(err, "%s: not saved: the credential's id or secret is not valid", path);
		return -1;
	}
	/* Both values are of alphabets that JSON needs no escape for. */
	len = (size_t)snprintf(body, sizeof body, "{\"id\":\"%s\",\"secret\":\"%s\"}\n", c->cp_id, c->secret);

	tmp = xasprintf("%s.tmpXXXXXX", path);
	fd = mkstemp(tmp); /* mode 0600 whatever the umask */
	if (fd < 0) {
		evc_seterr(err, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, 0600) < 0 || write_all(fd, body, len) < 0 || fsync(fd) < 0) {
		evc_seterr(err, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		evc_seterr(err, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		evc_seterr(err, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
		goto fail;
	}
	free(tmp);
	tmp = NULL;

	/* The rename is durable only once the directory is. */
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		evc_seterr(err, "%s: saved, but syncing its directory %s failed: %s", path, dir, strerror(errno));
		goto fail;
	}
	rc = 0;
fail:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	if (dfd >= 0)
		close(dfd);
	free(dir);
	crypto_wipe(body, sizeof body);
	return rc;
}

static int is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
}

int cred_read_line(const char *path, char *buf, size_t cap, char err[EVC_ERR_LEN])
{
	char data[CRED_FILE_MAX + 1];
	size_t start = 0, end;
	char *nl;
	ssize_t n;
	int fd, rc = -1;

	if (cap > 0)
		buf[0] = '\0';
	fd = open_secret(path, CRED_FILE_MAX, err);
	if (fd < 0)
		return -1;
	n = read_small(fd, path, data, err);
	close(fd);
	if (n < 0)
		goto fail;
	nl = memchr(data, '\n', (size_t)n);
	end = nl != NULL ? (size_t)(nl - data) : (size_t)n;
	if (memchr(data, '\0', end) != NULL) {
		evc_seterr(err, "%s: has a NUL byte in its first line", path);
		goto fail;
	}
	while (start < end && is_blank(data[start]))
		start++;
	while (end > start && is_blank(data[end - 1]))
		end--;
	if (end == start) {
		evc_seterr(err, "%s: the first line is empty", path);
		goto fail;
	}
	if (cap == 0 || end - start > cap - 1) {
		evc_seterr(err, "%s: the first line is longer than %zu bytes", path, cap ? cap - 1 : 0);
		goto fail;
	}
	memcpy(buf, data + start, end - start);
	buf[end - start] = '\0';
	rc = 0;
fail:
	crypto_wipe(data, sizeof data);
	if (rc < 0 && cap > 0)
		crypto_wipe(buf, cap);
	return rc;
}

void cred_wipe(struct cred *c)
{
	crypto_wipe(c, sizeof *c);
}
