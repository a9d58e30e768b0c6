#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "evc/xalloc.h"
#include "src/central/api_tokens.h"

#define TOKENS_FILE_MAX (1024 * 1024) /* bytes: far above API_TOKENS_MAX lines */

struct token_entry {
	char name[API_TOKEN_NAME_MAX + 1];
	enum api_role role;
	unsigned char hash[SHA256_DIGEST_LENGTH];
};

struct api_tokens {
	struct token_entry *v;
	size_t n;
};

const char *api_role_name(enum api_role r)
{
	switch (r) {
	case API_ROLE_READ: return "read";
	case API_ROLE_OPERATE: return "operate";
	case API_ROLE_WEATHER: return "weather";
	case API_ROLE_NONE: break;
	}
	return "none";
}

static int valid_name(const char *s, size_t n)
{
	if (n == 0 || n > API_TOKEN_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

static int valid_token(const char *s, size_t n)
{
	if (n < API_TOKEN_MIN || n > API_TOKEN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

static enum api_role parse_role(const char *s, size_t n)
{
	if (n == 4 && memcmp(s, "read", 4) == 0)
		return API_ROLE_READ;
	if (n == 7 && memcmp(s, "operate", 7) == 0)
		return API_ROLE_OPERATE;
	if (n == 7 && memcmp(s, "weather", 7) == 0)
		return API_ROLE_WEATHER;
	return API_ROLE_NONE;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Next blank-separated field of [*p, end): start and length, 0 if none. */
static int next_field(const char **p, const char *end, const char **f, size_t *n)
{
	const char *s = *p;
	while (s < end && is_blank(*s))
		s++;
	if (s == end)
		return 0;
	const char *e = s;
	while (e < end && !is_blank(*e))
		e++;
	*f = s;
	*n = (size_t)(e - s);
	*p = e;
	return 1;
}

struct api_tokens *api_tokens_parse(const char *text, size_t len, const char *origin, char err[EVC_ERR_LEN])
{
	struct api_tokens *t = xcalloc(1, sizeof *t);
	size_t cap = 0;
	const char *p = text, *end = text + len;
	unsigned lineno = 0;

	if (memchr(text, '\0', len) != NULL) {
		evc_seterr(err, "%s: holds a NUL byte", origin);
		goto fail;
	}
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end;
		lineno++;
		const char *q = p;
		p = eol ? eol + 1 : end;

		const char *f[4];
		size_t fn[4];
		int nf = 0;
		while (nf < 4 && next_field(&q, le, &f[nf], &fn[nf]))
			nf++;
		if (nf == 0 || f[0][0] == '#')
			continue;
		if (nf != 3) {
			evc_seterr(err, "%s line %u: wants NAME ROLE TOKEN, found %s fields", origin, lineno,
				   nf < 3 ? "fewer" : "more");
			goto fail;
		}
		if (!valid_name(f[0], fn[0])) {
			evc_seterr(err, "%s line %u: bad name (1..%d of A-Z a-z 0-9 _ . -)", origin, lineno,
				   API_TOKEN_NAME_MAX);
			goto fail;
		}
		enum api_role role = parse_role(f[1], fn[1]);
		if (role == API_ROLE_NONE) {
			/* A short word is repeated; a long one may be a token in the
			 * wrong column, so it is not. */
			if (fn[1] <= 10)
				evc_seterr(err, "%s line %u: bad role '%.*s' (read, operate or weather)", origin,
					   lineno, (int)fn[1], f[1]);
			else
				evc_seterr(err, "%s line %u: bad role (read, operate or weather)", origin, lineno);
			goto fail;
		}
		if (!valid_token(f[2], fn[2])) {
			evc_seterr(err, "%s line %u: bad token (%d..%d printable ASCII characters)", origin, lineno,
				   API_TOKEN_MIN, API_TOKEN_MAX);
			goto fail;
		}
		if (t->n == API_TOKENS_MAX) {
			evc_seterr(err, "%s line %u: more than %d tokens", origin, lineno, API_TOKENS_MAX);
			goto fail;
		}
		struct token_entry e;
		memset(&e, 0, sizeof e);
		memcpy(e.name, f[0], fn[0]);
		e.role = role;
		SHA256((const unsigned char *)f[2], fn[2], e.hash);
		for (size_t i = 0; i < t->n; i++) {
			if (strcmp(t->v[i].name, e.name) == 0) {
				evc_seterr(err, "%s line %u: duplicate name '%s'", origin, lineno, e.name);
				goto fail;
			}
			if (memcmp(t->v[i].hash, e.hash, sizeof e.hash) == 0) {
				evc_seterr(err, "%s line %u: same token as '%s'", origin, lineno, t->v[i].name);
				goto fail;
			}
		}
		if (t->n == cap) {
			cap = cap ? cap * 2 : 8;
			t->v = xreallocarray(t->v, cap, sizeof *t->v);
		}
		t->v[t->n++] = e;
	}
	return t;
fail:
	api_tokens_free(t);
	return NULL;
}

int api_check_secret_mode(int fd, const char *path, char err[EVC_ERR_LEN])
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		evc_seterr(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		evc_seterr(err, "%s: not a regular file", path);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		evc_seterr(err, "%s: mode %04o lets group or others access it (chmod 600 %s)", path,
			   (unsigned)(st.st_mode & 07777), path);
		return -1;
	}
	return 0;
}

struct api_tokens *api_tokens_load(const char *path, char err[EVC_ERR_LEN])
{
	struct api_tokens *t = NULL;
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		evc_seterr(err, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (api_check_secret_mode(fd, path, err) != 0)
		goto fail;
	buf = xmalloc(TOKENS_FILE_MAX + 1);
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, TOKENS_FILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			evc_seterr(err, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > TOKENS_FILE_MAX) {
			evc_seterr(err, "%s: larger than %d bytes", path, TOKENS_FILE_MAX);
			goto fail;
		}
	}
	t = api_tokens_parse(buf, len, path, err);
fail:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, TOKENS_FILE_MAX + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return t;
}

void api_tokens_free(struct api_tokens *t)
{
	if (t == NULL)
		return;
	free(t->v);
	free(t);
}

size_t api_tokens_count(const struct api_tokens *t)
{
	return t ? t->n : 0;
}

enum api_role api_tokens_match(const struct api_tokens *t, const char *token, size_t len, char *name,
			       size_t *compared)
{
	unsigned char h[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)token, len, h);
	size_t found = SIZE_MAX, n = 0;
	for (size_t i = 0; t != NULL && i < t->n; i++) {
		/* No break: every entry costs the same, matched or not. */
		int diff = CRYPTO_memcmp(t->v[i].hash, h, sizeof h);
		n++;
		if (diff == 0)
			found = i;
	}
	if (compared != NULL)
		*compared = n;
	if (found == SIZE_MAX)
		return API_ROLE_NONE;
	if (name != NULL)
		xstrlcpy(name, t->v[found].name, API_TOKEN_NAME_MAX + 1);
	return t->v[found].role;
}
