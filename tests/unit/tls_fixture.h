/* Trust material for the TLS unit tests, made with the openssl command line
 * into a fresh temp folder (the same layout scripts/pki makes):
 *   ca.pem ca.key              a test CA (EC P-256)
 *   central.pem central.key    signed by it, SAN DNS:localhost, IP:127.0.0.1
 *   other-ca.pem other-ca.key  a second CA that signed nothing we serve
 * Keys mode 0600. Included by the test programs only. */
#ifndef EVC_TESTS_TLS_FIXTURE_H
#define EVC_TESTS_TLS_FIXTURE_H
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static char pki_dir[PATH_MAX];

/* The folder's path joined with name, in a rotating static buffer: only
 * the last four results stay valid (copy one that must live longer). */
static const char *__attribute__((unused)) pki_path(const char *name)
{
	static char buf[4][PATH_MAX + 64];
	static int next;
	char *p = buf[next++ % 4];
	snprintf(p, sizeof buf[0], "%s/%s", pki_dir, name);
	return p;
}

/* 0 or -1 (the openssl output is left in DIR/openssl.log). */
static int __attribute__((unused)) pki_make(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(pki_dir, sizeof pki_dir, "%s/evc-tls-test.XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(pki_dir) == NULL)
		return -1;
	char cmd[4096];
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && umask 077 && exec >openssl.log 2>&1 && "
		 "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1\"; } && "
		 "ca() { key \"$1.key\" && openssl req -x509 -new -key \"$1.key\" -subj \"/CN=$2\" -days 30 "
		 "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign "
		 "-out \"$1.pem\"; } && "
		 "ca ca 'evc test CA' && ca other-ca 'evc other CA' && key central.key && "
		 "openssl req -new -key central.key -subj /CN=localhost -out central.csr && "
		 "printf '%%s\\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature "
		 "extendedKeyUsage=serverAuth subjectAltName=DNS:localhost,IP:127.0.0.1 >ext.cnf && "
		 "openssl x509 -req -in central.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 "
		 "-extfile ext.cnf -out central.pem",
		 pki_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void __attribute__((unused)) pki_remove(void)
{
	if (pki_dir[0] == '\0')
		return;
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", pki_dir);
	pki_dir[0] = '\0';
}

#endif
