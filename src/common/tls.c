/* TLS contexts and non-blocking steps: see evc/tls.h.
 *
 * OpenSSL keeps its error queue per thread: every step clears it first, so
 * what SSL_get_error and the message report belongs to that step. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "evc/cred.h"
#include "evc/tls.h"

/* TLS 1.2 suites: ECDHE (forward secrecy) with an AEAD cipher, nothing
 * else. TLS 1.3 suites are all of that kind already. */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

/* Append the oldest queued OpenSSL error to "prefix", then drop the queue. */
static void ssl_err(char err[EVC_ERR_LEN], const char *prefix)
{
	unsigned long e = ERR_get_error();
	char buf[200];
	if (e == 0) {
		evc_seterr(err, "%s", prefix);
	} else {
		ERR_error_string_n(e, buf, sizeof buf);
		evc_seterr(err, "%s: %s", prefix, buf);
	}
	ERR_clear_error();
}

/* Settings every context shares (see evc/tls.h). */
static int ctx_common(SSL_CTX *ctx, char err[EVC_ERR_LEN])
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
		ssl_err(err, "TLS settings");
		return -1;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* Partial writes and a moving buffer: the caller's output queue grows
	 * at its tail and may be reallocated between a WANT_WRITE and the
	 * retry, which then passes the same leading bytes again. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return 0;
}

/* An encrypted private key would need a passphrase typed at start; a
 * service cannot, so it is an error instead of a prompt. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static EVP_PKEY *load_key(const char *key_file, char err[EVC_ERR_LEN])
{
	FILE *f = fopen(key_file, "re");
	if (f == NULL) {
		evc_seterr(err, "private key %s: %s", key_file, strerror(errno));
		return NULL;
	}
	EVP_PKEY *k = NULL;
	if (cred_check_mode(key_file, err) == 0) {
		ERR_clear_error();
		k = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
		if (k == NULL) {
			char what[EVC_ERR_LEN];
			snprintf(what, sizeof what, "private key %.200s: not a PEM private key without passphrase",
				 key_file);
			ssl_err(err, what);
		}
	}
	fclose(f);
	return k;
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char err[EVC_ERR_LEN])
{
	SSL_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;
	char what[EVC_ERR_LEN];

	if (access(cert_file, R_OK) == -1) {
		evc_seterr(err, "certificate %s: %s", cert_file, strerror(errno));
		return NULL;
	}
	key = load_key(key_file, err);
	if (key == NULL)
		return NULL;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		ssl_err(err, "SSL_CTX_new");
		goto fail;
	}
	if (ctx_common(ctx, err) == -1)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		snprintf(what, sizeof what, "certificate %.200s", cert_file);
		ssl_err(err, what);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(what, sizeof what, "private key %.100s does not match certificate %.100s", key_file,
			 cert_file);
		ssl_err(err, what);
		goto fail;
	}
	EVP_PKEY_free(key);
	key = NULL;
	/* Stateless tickets carry the session: no server-side cache to grow
	 * with 10,000 CPs, and one ticket per handshake is enough for the
	 * next reconnect (each resumption brings a fresh one). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	return ctx;
fail:
	EVP_PKEY_free(key);
	SSL_CTX_free(ctx);
	return NULL;
}

/* A session ticket arrived: it replaces the one in the connection's slot.
 * The slot keeps a copy: OpenSSL marks a connection's own session not
 * resumable when the SSL is freed without close_notify, and a CP's link
 * usually ends that way (Central restarted, the network dropped), which is
 * exactly when the cheap reconnect is wanted. A real TLS failure forgets
 * the slot's session instead (see failed). */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	SSL_SESSION **slot = SSL_get_app_data(ssl);
	SSL_SESSION *copy = slot != NULL ? SSL_SESSION_dup(sess) : NULL;
	if (copy != NULL) {
		SSL_SESSION_free(*slot);
		*slot = copy;
	}
	return 0; /* OpenSSL keeps (and frees) its own reference */
}

SSL_CTX *tls_client_ctx_new(const char *ca_file, char err[EVC_ERR_LEN])
{
	char what[EVC_ERR_LEN];
	if (access(ca_file, R_OK) == -1) {
		evc_seterr(err, "CA file %s: %s", ca_file, strerror(errno));
		return NULL;
	}
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		ssl_err(err, "SSL_CTX_new");
		return NULL;
	}
	if (ctx_common(ctx, err) == -1)
		goto fail;
	/* Only the network's own CA: no system trust store. */
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		snprintf(what, sizeof what, "CA file %.200s", ca_file);
		ssl_err(err, what);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, new_session);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL *tls_server_new(SSL_CTX *ctx, int fd, char err[EVC_ERR_LEN])
{
	ERR_clear_error();
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		ssl_err(err, "SSL_new");
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

static int is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *tls_client_new(SSL_CTX *ctx, int fd, const char *host, SSL_SESSION **resume, char err[EVC_ERR_LEN])
{
	if (host == NULL || host[0] == '\0') {
		evc_seterr(err, "TLS: no host name to verify the server's certificate against");
		return NULL;
	}
	ERR_clear_error();
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		ssl_err(err, "SSL_new");
		goto fail;
	}
	if (is_ip_literal(host)) {
		/* RFC 6066: no SNI for an address; the IP SAN must match. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1) {
			ssl_err(err, "TLS: cannot verify against that address");
			goto fail;
		}
	} else {
		X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1) {
			ssl_err(err, "TLS: invalid host name");
			goto fail;
		}
	}
	if (resume != NULL) {
		if (*resume != NULL && SSL_SESSION_is_resumable(*resume))
			SSL_set_session(ssl, *resume); /* a failure only costs a full handshake */
		SSL_set_app_data(ssl, resume);
	}
	ERR_clear_error();
	SSL_set_connect_state(ssl);
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

/* The peer verification failed: say how, and for which name. */
static void verify_err(SSL *ssl, long v, char err[EVC_ERR_LEN])
{
	const char *why = X509_verify_cert_error_string(v);
	X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
	if (v == X509_V_ERR_HOSTNAME_MISMATCH) {
		const char *h = X509_VERIFY_PARAM_get0_host(p, 0);
		evc_seterr(err, "certificate verify failed: %s for '%s'", why, h != NULL ? h : "?");
	} else if (v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		char *ip = X509_VERIFY_PARAM_get1_ip_asc(p);
		evc_seterr(err, "certificate verify failed: %s for '%s'", why, ip != NULL ? ip : "?");
		OPENSSL_free(ip);
	} else {
		evc_seterr(err, "certificate verify failed: %s", why);
	}
	ERR_clear_error();
}

/* Classify a failed SSL_* call. */
static enum tls_rc failed(SSL *ssl, int ret, const char *what, char err[EVC_ERR_LEN])
{
	int saved = errno;
	int e = SSL_get_error(ssl, ret);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		return TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_WANT_WRITE;
	default:
		break;
	}
	/* A fatal error: no close_notify may follow it (see tls_close_notify). */
	SSL_set_quiet_shutdown(ssl, 1);
	if (e == SSL_ERROR_ZERO_RETURN) {
		evc_seterr(err, "connection closed by peer");
		ERR_clear_error();
		return TLS_EOF;
	}
	unsigned long q = ERR_peek_error();
	if (e == SSL_ERROR_SYSCALL && q == 0) {
		if (ret == 0 || saved == 0) {
			evc_seterr(err, "connection closed by peer");
			return TLS_EOF;
		}
		evc_seterr(err, "%s: %s", what, strerror(saved));
		return TLS_ERROR;
	}
	if (ERR_GET_LIB(q) == ERR_LIB_SSL && ERR_GET_REASON(q) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		evc_seterr(err, "connection closed by peer");
		ERR_clear_error();
		return TLS_EOF;
	}
	/* Never resume what ended in a protocol failure (RFC 5246 7.2.2). */
	SSL_SESSION **slot = SSL_is_server(ssl) ? NULL : SSL_get_app_data(ssl);
	if (slot != NULL) {
		SSL_SESSION_free(*slot);
		*slot = NULL;
	}
	long v = SSL_get_verify_result(ssl);
	if (v != X509_V_OK && !SSL_is_server(ssl)) {
		verify_err(ssl, v, err);
		return TLS_ERROR;
	}
	ssl_err(err, what);
	return TLS_ERROR;
}

enum tls_rc tls_handshake(SSL *ssl, char err[EVC_ERR_LEN])
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(ssl);
	if (r == 1)
		return TLS_OK;
	enum tls_rc rc = failed(ssl, r, "TLS handshake failed", err);
	if (rc == TLS_EOF)
		evc_seterr(err, "connection closed by peer during the TLS handshake");
	return rc;
}

enum tls_rc tls_read(SSL *ssl, void *buf, size_t len, size_t *n, char err[EVC_ERR_LEN])
{
	*n = 0;
	ERR_clear_error();
	errno = 0;
	int r = SSL_read(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (r > 0) {
		*n = (size_t)r;
		return TLS_OK;
	}
	return failed(ssl, r, "TLS read", err);
}

enum tls_rc tls_write(SSL *ssl, const void *buf, size_t len, size_t *n, char err[EVC_ERR_LEN])
{
	*n = 0;
	if (len == 0)
		return TLS_OK;
	ERR_clear_error();
	errno = 0;
	int r = SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (r > 0) {
		*n = (size_t)r;
		return TLS_OK;
	}
	return failed(ssl, r, "TLS write", err);
}

void tls_close_notify(SSL *ssl)
{
	/* OpenSSL forbids SSL_shutdown after a fatal error (failed() set
	 * quiet shutdown then) and it means nothing before the handshake. */
	if (ssl == NULL || SSL_get_quiet_shutdown(ssl) || !SSL_is_init_finished(ssl))
		return;
	ERR_clear_error();
	(void)SSL_shutdown(ssl);
	ERR_clear_error();
}

void tls_describe(SSL *ssl, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s %s%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
		 SSL_session_reused(ssl) ? " (resumed)" : "");
}
