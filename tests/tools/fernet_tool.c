/* fernet_tool: the project's Fernet code driven from a test script
 * (tests/integration/fernet_python.sh checks it against Python's
 * cryptography.fernet).
 *   fernet_tool key                      print a new random key
 *   fernet_tool encrypt KEY [NOW]        stdin -> one token and a newline
 *   fernet_tool decrypt KEY [TTL [NOW]]  stdin (a token, one trailing
 *                                        newline allowed) -> the plaintext
 * NOW is Unix seconds (default: the clock), TTL seconds (default 0: no age
 * limit). decrypt exits 1 with the reason ("fernet_tool: bad HMAC") when
 * the token is refused; bad arguments or a bad key exit 2.
 * The key is an argument because this is a test tool: a program of the
 * network never takes a key on its command line. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evc/fernet.h"
#include "evc/xalloc.h"

static int usage(void)
{
	fprintf(stderr, "usage: fernet_tool key\n"
			"       fernet_tool encrypt KEY [NOW]\n"
			"       fernet_tool decrypt KEY [TTL [NOW]]\n");
	return 2;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	if (s[0] < '0' || s[0] > '9')
		return -1;
	*v = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

/* All of stdin, at most max bytes (one more is an error); caller frees. */
static unsigned char *slurp(size_t max, size_t *n)
{
	unsigned char *buf = xmalloc(max + 1);
	size_t got = fread(buf, 1, max + 1, stdin);

	if (ferror(stdin) || got > max) {
		fprintf(stderr, "fernet_tool: %s\n", ferror(stdin) ? strerror(errno) : "input too long");
		free(buf);
		return NULL;
	}
	*n = got;
	return buf;
}

int main(int argc, char **argv)
{
	struct fernet_key k;
	char err[EVC_ERR_LEN];
	uint64_t now = (uint64_t)time(NULL), ttl = 0;
	unsigned char *in, *plain = NULL;
	size_t n = 0, plen = 0;

	if (argc == 2 && strcmp(argv[1], "key") == 0) {
		char key[FERNET_KEY_LEN + 1];
		if (fernet_key_new(key, err) < 0) {
			fprintf(stderr, "fernet_tool: %s\n", err);
			return 1;
		}
		printf("%s\n", key);
		return 0;
	}
	if (argc < 3)
		return usage();
	if (fernet_key_parse(argv[2], &k) < 0) {
		fprintf(stderr, "fernet_tool: bad key (44 characters of padded base64url)\n");
		return 2;
	}
	if (strcmp(argv[1], "encrypt") == 0 && argc <= 4) {
		if (argc == 4 && parse_u64(argv[3], &now) < 0)
			return usage();
		if ((in = slurp(FERNET_PLAIN_MAX, &n)) == NULL)
			return 1;
		char *tok = fernet_encrypt(&k, in, n, now, NULL, err);
		free(in);
		if (tok == NULL) {
			fprintf(stderr, "fernet_tool: %s\n", err);
			return 1;
		}
		printf("%s\n", tok);
		free(tok);
		return 0;
	}
	if (strcmp(argv[1], "decrypt") == 0 && argc <= 5) {
		if ((argc >= 4 && (parse_u64(argv[3], &ttl) < 0 || ttl > INT64_MAX)) ||
		    (argc == 5 && parse_u64(argv[4], &now) < 0))
			return usage();
		if ((in = slurp(FERNET_TOKEN_MAX + 1, &n)) == NULL)
			return 1;
		if (n > 0 && in[n - 1] == '\n')
			n--;
		enum fernet_status st = fernet_decrypt(&k, (char *)in, n, now, (int64_t)ttl, &plain, &plen);
		free(in);
		if (st != FERNET_OK) {
			fprintf(stderr, "fernet_tool: %s\n", fernet_status_name(st));
			return 1;
		}
		fwrite(plain, 1, plen, stdout);
		free(plain);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	return usage();
}
