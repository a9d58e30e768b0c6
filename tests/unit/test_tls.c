/* evc/tls: the contexts' refusals (loose key modes, missing, mismatched,
 * encrypted or garbage files) and the policy every context carries (TLS 1.2
 * at least, forward-secret AEAD suites, no renegotiation, no compression,
 * resumption by ticket), checked by real handshakes between a client and a
 * server SSL joined by an in-memory BIO pair. The certificates come from the
 * openssl command line (tests/unit/tls_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "evc/tls.h"
#include "tests/unit/tls_fixture.h"

static SSL_CTX *srv, *cli;

/* A copy of the fixture's file NAME as NEW with mode. */
static const char *copy_as(const char *name, const char *new_name, mode_t mode)
{
	char cmd[3 * PATH_MAX];
	const char *dst = pki_path(new_name);
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", pki_path(name), dst);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(chmod(dst, mode), 0);
	return dst;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* The key's mode, through the one check every secret file gets. */
static void test_key_modes(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN] = "";
	char cert[PATH_MAX + 64];
	snprintf(cert, sizeof cert, "%s", pki_path("central.pem"));
	static const struct {
		mode_t mode;
		int ok;
	} cases[] = { { 0600, 1 }, { 0400, 1 }, { 0640, 0 }, { 0604, 0 }, { 0620, 0 }, { 0601, 0 } };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char name[32], mode[8];
		snprintf(name, sizeof name, "k%04o.key", (unsigned)cases[i].mode);
		snprintf(mode, sizeof mode, "%04o", (unsigned)cases[i].mode);
		const char *k = copy_as("central.key", name, cases[i].mode);
		SSL_CTX *ctx = tls_server_ctx_new(cert, k, err);
		if (cases[i].ok) {
			if (ctx == NULL)
				fail_msg("mode %s refused: %s", mode, err);
			SSL_CTX_free(ctx);
			continue;
		}
		if (ctx != NULL)
			fail_msg("mode %s accepted", mode);
		assert_non_null(strstr(err, name));
		assert_non_null(strstr(err, mode));
	}
	assert_null(tls_server_ctx_new(cert, pki_dir, err)); /* a folder */
	assert_non_null(strstr(err, "not a regular file"));
}

static void test_server_ctx_refusals(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN] = "";
	char cert[PATH_MAX + 64];
	snprintf(cert, sizeof cert, "%s", pki_path("central.pem"));
	const char *loose = copy_as("central.key", "loose.key", 0644);
	assert_null(tls_server_ctx_new(cert, loose, err));
	assert_non_null(strstr(err, loose));
	assert_non_null(strstr(err, "0644"));

	assert_null(tls_server_ctx_new(pki_path("missing.pem"), pki_path("central.key"), err));
	assert_non_null(strstr(err, "missing.pem"));
	assert_null(tls_server_ctx_new(cert, pki_path("missing.key"), err));
	assert_non_null(strstr(err, "missing.key"));

	/* A key of another certificate. */
	assert_null(tls_server_ctx_new(cert, pki_path("other-ca.key"), err));
	assert_non_null(strstr(err, "does not match"));

	/* Not a key at all, and a key behind a passphrase (no prompt). */
	const char *junk = pki_path("junk.key");
	write_file(junk, "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", 0600);
	assert_null(tls_server_ctx_new(cert, junk, err));
	assert_non_null(strstr(err, "not a PEM private key"));
	char cmd[3 * PATH_MAX];
	char enc[PATH_MAX + 64];
	snprintf(enc, sizeof enc, "%s", pki_path("enc.key"));
	snprintf(cmd, sizeof cmd,
		 "openssl pkey -in '%s' -aes256 -passout pass:secret -out '%s' 2>/dev/null && chmod 600 '%s'",
		 pki_path("central.key"), enc, enc);
	assert_int_equal(system(cmd), 0);
	assert_null(tls_server_ctx_new(cert, enc, err));
	assert_non_null(strstr(err, "without passphrase"));
	assert_null(strstr(err, "secret"));

	/* A certificate file that holds no certificate. */
	const char *bad = pki_path("bad.pem");
	write_file(bad, "hello\n", 0644);
	assert_null(tls_server_ctx_new(bad, pki_path("central.key"), err));
	assert_non_null(strstr(err, "bad.pem"));
}

static void test_client_ctx_refusals(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN] = "";
	assert_null(tls_client_ctx_new(pki_path("missing-ca.pem"), err));
	assert_non_null(strstr(err, "missing-ca.pem"));
	const char *bad = pki_path("bad-ca.pem");
	write_file(bad, "no certificate in here\n", 0644);
	assert_null(tls_client_ctx_new(bad, err));
	assert_non_null(strstr(err, "bad-ca.pem"));
	/* Verification needs a name. */
	assert_null(tls_client_new(cli, 0, "", NULL, err));
	assert_non_null(strstr(err, "no host name"));
	assert_null(tls_client_new(cli, 0, NULL, NULL, err));
}

/* ---- handshakes in memory ---- */

struct pair {
	SSL *c, *s;
};

static struct pair pair_new(SSL_CTX *cctx, const char *host, SSL_SESSION **resume)
{
	struct pair p;
	char err[EVC_ERR_LEN];
	BIO *cb, *sb;
	assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	/* fd 0 only to build them: the BIO pair replaces the socket BIO. */
	p.c = tls_client_new(cctx, 0, host, resume, err);
	p.s = tls_server_new(srv, 0, err);
	assert_non_null(p.c);
	assert_non_null(p.s);
	SSL_set_bio(p.c, cb, cb);
	SSL_set_bio(p.s, sb, sb);
	return p;
}

static void pair_free(struct pair *p)
{
	SSL_free(p->c);
	SSL_free(p->s);
	ERR_clear_error();
}

/* Step both sides until both are done (0) or one fails (-1, its reason in
 * err). */
static int pair_handshake(struct pair *p, char err[EVC_ERR_LEN])
{
	int cdone = 0, sdone = 0;
	for (int i = 0; i < 100 && !(cdone && sdone); i++) {
		if (!cdone) {
			enum tls_rc rc = tls_handshake(p->c, err);
			if (rc == TLS_OK)
				cdone = 1;
			else if (rc != TLS_WANT_READ && rc != TLS_WANT_WRITE)
				return -1;
		}
		if (!sdone) {
			enum tls_rc rc = tls_handshake(p->s, err);
			if (rc == TLS_OK)
				sdone = 1;
			else if (rc != TLS_WANT_READ && rc != TLS_WANT_WRITE)
				return -1;
		}
	}
	return cdone && sdone ? 0 : -1;
}

/* Bytes from one side to the other (also moves the tickets along). */
static void pair_send(SSL *from, SSL *to, const char *text)
{
	char err[EVC_ERR_LEN];
	size_t n;
	char buf[64];
	assert_int_equal(tls_write(from, text, strlen(text), &n, err), TLS_OK);
	assert_int_equal(n, strlen(text));
	assert_int_equal(tls_read(to, buf, sizeof buf, &n, err), TLS_OK);
	assert_int_equal(n, strlen(text));
	assert_memory_equal(buf, text, n);
}

static void test_policy_in_handshakes(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN] = "";

	/* Defaults: TLS 1.3, no compression, data both ways, a ticket. */
	SSL_SESSION *sess = NULL;
	struct pair p = pair_new(cli, "127.0.0.1", &sess);
	if (pair_handshake(&p, err) != 0)
		fail_msg("handshake: %s", err);
	assert_string_equal(SSL_get_version(p.c), "TLSv1.3");
	assert_null(SSL_get_current_compression(p.c));
	pair_send(p.c, p.s, "ENQ");
	pair_send(p.s, p.c, "ACK"); /* the ticket travels ahead of it */
	assert_non_null(sess);
	char d[128];
	tls_describe(p.c, d, sizeof d);
	assert_non_null(strstr(d, "TLSv1.3"));
	assert_null(strstr(d, "resumed"));
	pair_free(&p);

	/* Resumption by ticket (the server keeps no session cache). */
	p = pair_new(cli, "127.0.0.1", &sess);
	if (pair_handshake(&p, err) != 0)
		fail_msg("resumed handshake: %s", err);
	assert_true(SSL_session_reused(p.c) && SSL_session_reused(p.s));
	tls_describe(p.s, d, sizeof d);
	assert_non_null(strstr(d, "(resumed)"));
	pair_free(&p);
	SSL_SESSION_free(sess);

	/* TLS 1.2 works, with an ECDHE AEAD suite, and refuses renegotiation. */
	SSL_CTX *c12 = tls_client_ctx_new(pki_path("ca.pem"), err);
	assert_non_null(c12);
	SSL_CTX_set_max_proto_version(c12, TLS1_2_VERSION);
	p = pair_new(c12, "localhost", NULL);
	if (pair_handshake(&p, err) != 0)
		fail_msg("TLS 1.2 handshake: %s", err);
	assert_string_equal(SSL_get_version(p.c), "TLSv1.2");
	const char *suite = SSL_get_cipher_name(p.c);
	assert_true(strncmp(suite, "ECDHE-", 6) == 0 && (strstr(suite, "GCM") || strstr(suite, "CHACHA20")));
	/* Our client may not even ask (SSL_OP_NO_RENEGOTIATION)... */
	assert_int_equal(SSL_renegotiate(p.c), 0);
	ERR_clear_error();
	/* ...and a client that does ask is refused by our server. */
	SSL_clear_options(p.c, SSL_OP_NO_RENEGOTIATION);
	assert_int_equal(SSL_renegotiate(p.c), 1);
	int refused = 0;
	for (int i = 0; i < 20 && !refused; i++) {
		size_t n;
		char buf[16];
		int r = SSL_do_handshake(p.c);
		if (r <= 0 && SSL_get_error(p.c, r) != SSL_ERROR_WANT_READ) {
			refused = 1;
			break;
		}
		tls_read(p.s, buf, sizeof buf, &n, err); /* the server sees the ClientHello */
	}
	assert_true(refused);
	assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_NO_RENEGOTIATION);
	pair_free(&p);

	/* No suite without forward secrecy or AEAD... */
	SSL_CTX_set_cipher_list(c12, "AES128-SHA:AES256-SHA");
	p = pair_new(c12, "localhost", NULL);
	assert_int_equal(pair_handshake(&p, err), -1);
	pair_free(&p);
	/* ...and nothing below TLS 1.2: a client limited to TLS 1.1 that
	 * would otherwise accept anything fails. */
	SSL_CTX_set_min_proto_version(c12, TLS1_1_VERSION);
	SSL_CTX_set_max_proto_version(c12, TLS1_1_VERSION);
	SSL_CTX_set_cipher_list(c12, "DEFAULT@SECLEVEL=0");
	p = pair_new(c12, "localhost", NULL);
	assert_int_equal(pair_handshake(&p, err), -1);
	assert_non_null(strstr(err, "protocol"));
	pair_free(&p);
	SSL_CTX_free(c12);
}

static int setup(void **state)
{
	(void)state;
	char err[EVC_ERR_LEN];
	if (pki_make() == -1) {
		fprintf(stderr, "# openssl could not make the test certificates in %s\n", pki_dir);
		return -1;
	}
	srv = tls_server_ctx_new(pki_path("central.pem"), pki_path("central.key"), err);
	cli = srv != NULL ? tls_client_ctx_new(pki_path("ca.pem"), err) : NULL;
	if (cli == NULL) {
		fprintf(stderr, "# %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	SSL_CTX_free(srv);
	SSL_CTX_free(cli);
	pki_remove();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_modes),
		cmocka_unit_test(test_server_ctx_refusals),
		cmocka_unit_test(test_client_ctx_refusals),
		cmocka_unit_test(test_policy_in_handshakes),
	};
	return cmocka_run_group_tests_name("tls", tests, setup, teardown);
}
