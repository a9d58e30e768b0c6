/* EV_W's HTTP transfers (see whttp.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "evc/clock.h"
#include "evc/xalloc.h"
#include "src/weather/whttp.h"

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct whttp *t = arg;
	size_t n = size * nmemb;

	if (n > WHTTP_BODY_MAX - t->len) {
		t->too_big = 1;
		return 0; /* libcurl aborts the transfer with CURLE_WRITE_ERROR */
	}
	t->body = xrealloc(t->body, t->len + n + 1);
	memcpy(t->body + t->len, data, n);
	t->len += n;
	t->body[t->len] = '\0';
	return n;
}

#define SET(opt, val)                                                                                                  \
	do {                                                                                                           \
		CURLcode c_ = curl_easy_setopt(t->h, opt, val);                                                        \
		if (c_ != CURLE_OK) {                                                                                  \
			evc_seterr(err, "libcurl refuses %s: %s", #opt, curl_easy_strerror(c_));                     \
			goto fail;                                                                                     \
		}                                                                                                      \
	} while (0)

struct whttp *whttp_new(char err[EVC_ERR_LEN], const struct whttp_opts *o)
{
	struct whttp *t = xcalloc(1, sizeof *t);
	char *auth = NULL;

	t->started = clock_mono();
	t->h = curl_easy_init();
	if (t->h == NULL) {
		evc_seterr(err, "libcurl: cannot create a transfer");
		goto fail;
	}
	SET(CURLOPT_URL, o->url);
	SET(CURLOPT_PRIVATE, (void *)t);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	/* A redirect could carry the key or the token elsewhere: never followed. */
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, WHTTP_CONNECT_TIMEOUT_MS);
	SET(CURLOPT_TIMEOUT_MS, WHTTP_TIMEOUT_MS);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)WHTTP_BODY_MAX);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (o->cafile != NULL)
		SET(CURLOPT_CAINFO, o->cafile);
	if (o->direct)
		SET(CURLOPT_NOPROXY, "*");
	SET(CURLOPT_USERAGENT, "EV_W/" PACKAGE_VERSION);
	SET(CURLOPT_ERRORBUFFER, t->errbuf);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, (void *)t);
	t->headers = curl_slist_append(t->headers, "Accept: application/json");
	if (o->json_body != NULL) {
		t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
		SET(CURLOPT_POSTFIELDSIZE, (long)strlen(o->json_body));
		SET(CURLOPT_COPYPOSTFIELDS, o->json_body);
	}
	if (o->bearer != NULL) {
		auth = xasprintf("Authorization: Bearer %s", o->bearer);
		t->headers = curl_slist_append(t->headers, auth);
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (t->headers == NULL) {
		evc_seterr(err, "libcurl: cannot build the request headers");
		goto fail;
	}
	SET(CURLOPT_HTTPHEADER, t->headers);
	return t;
fail:
	whttp_free(t);
	return NULL;
}

void whttp_free(struct whttp *t)
{
	if (t == NULL)
		return;
	if (t->h != NULL)
		curl_easy_cleanup(t->h);
	/* the Authorization line holds the token: wiped before it is freed */
	for (struct curl_slist *s = t->headers; s != NULL; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(t->headers);
	free(t->body);
	free(t);
}

int whttp_outcome(char err[EVC_ERR_LEN], struct whttp *t, CURLcode cc, long *status)
{
	const char *why = t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(cc);

	if (cc == CURLE_OK) {
		*status = 0;
		curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, status);
		return 0;
	}
	switch (cc) {
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (t->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
			evc_seterr(err, "answer larger than %d KiB: aborted", WHTTP_BODY_MAX / 1024);
			break;
		}
		evc_seterr(err, "%s", why);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		evc_seterr(err, "timed out: %s", why);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		evc_seterr(err, "cannot connect: %s", why);
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		evc_seterr(err, "TLS: %s", why);
		break;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		evc_seterr(err, "connection broken: %s", why);
		break;
	default:
		evc_seterr(err, "%s", why);
		break;
	}
	/* libcurl's messages end with a newline now and then */
	size_t n = strlen(err);
	while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == '\r'))
		err[--n] = '\0';
	return -1;
}
