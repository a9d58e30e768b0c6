/* TLS for the CP link (evcharging(7) SECURITY), on OpenSSL 3.0 libssl:
 * contexts for a server (certificate + private key) and a client (CA file,
 * peer always verified, host name or IP checked), and non-blocking
 * handshake / read / write steps that say what the socket must wait for.
 *
 * Policy, the same for every context made here: TLS 1.2 at least, forward
 * secret AEAD suites only for TLS 1.2 (TLS 1.3's own defaults), no
 * renegotiation, no compression, session tickets on (a reconnecting CP
 * resumes with one round trip and no signature; the server keeps no
 * per-session state for it), and SSL_MODE_RELEASE_BUFFERS so an idle link
 * holds no 16 KiB record buffers. No function here can turn verification
 * off.
 *
 * Errors are OpenSSL's own strings (ERR_error_string_n) or the verifier's;
 * none ever holds key material. Writes go through write(2): callers ignore
 * or block SIGPIPE (every evcharging program does).
 */
#ifndef EVC_TLS_H
#define EVC_TLS_H
#include <stddef.h>

#include <openssl/ssl.h>

#include "evc/err.h"

/* Server context from a PEM certificate chain and a PEM private key (the
 * key file refused, naming it and its mode, when group or others may use it:
 * cred_check_mode of evc/cred.h, as every secret file). NULL with err.
 * Caller frees with SSL_CTX_free. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char err[EVC_ERR_LEN]);
/* Client context trusting the CA certificates of ca_file (PEM) only. NULL
 * with err. Caller frees with SSL_CTX_free. */
SSL_CTX *tls_client_ctx_new(const char *ca_file, char err[EVC_ERR_LEN]);

/* A server-side connection on the connected socket fd. NULL with err.
 * Caller frees with SSL_free (the fd stays the caller's). */
SSL *tls_server_new(SSL_CTX *ctx, int fd, char err[EVC_ERR_LEN]);
/* A client-side connection on fd that accepts only a certificate for host
 * (an IPv4/IPv6 literal is matched against the IP SANs, a name against the
 * DNS names and sent as SNI). resume, if not NULL, is a slot that outlives
 * the SSL: a session in it is offered for resumption, every session ticket
 * the server sends replaces it, and a TLS failure (not a mere EOF) empties
 * it (the slot owns its session: free it with SSL_SESSION_free). NULL with
 * err. Caller frees with SSL_free. */
SSL *tls_client_new(SSL_CTX *ctx, int fd, const char *host, SSL_SESSION **resume, char err[EVC_ERR_LEN]);

enum tls_rc {
	TLS_OK,         /* done (handshake complete, or *n bytes moved) */
	TLS_WANT_READ,  /* retry once the socket is readable */
	TLS_WANT_WRITE, /* retry once the socket is writable */
	TLS_EOF,        /* the peer closed (close_notify or a bare EOF): err says which */
	TLS_ERROR,      /* protocol, verification or socket failure: err says why */
};

/* One step of the handshake. */
enum tls_rc tls_handshake(SSL *ssl, char err[EVC_ERR_LEN]);
/* Read up to len bytes into buf; *n bytes read on TLS_OK. Bytes may be left
 * decrypted inside the SSL (SSL_pending) when len is small: read again
 * before waiting for the socket. */
enum tls_rc tls_read(SSL *ssl, void *buf, size_t len, size_t *n, char err[EVC_ERR_LEN]);
/* Write up to len bytes of buf; *n written on TLS_OK (maybe fewer than len:
 * the rest is the caller's to write later). After TLS_WANT_*, the next call
 * must pass at least the same bytes again (they may have moved in memory,
 * and more may follow them). */
enum tls_rc tls_write(SSL *ssl, const void *buf, size_t len, size_t *n, char err[EVC_ERR_LEN]);
/* Send close_notify once, without waiting for anything (best effort). */
void tls_close_notify(SSL *ssl);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384 (resumed)", for log lines. */
void tls_describe(SSL *ssl, char *out, size_t outsz);

#endif
