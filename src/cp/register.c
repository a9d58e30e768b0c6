#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "evc/cred.h"
#include "evc/crypto.h"
#include "evc/msg.h"
#include "evc/xalloc.h"
#include "src/cp/register.h"

#define PROG "EV_CP_M"
/* An answer of the registry is a few hundred bytes; anything past this is
 * not one. */
#define ANSWER_MAX (16 * 1024)

struct answer {
	char buf[ANSWER_MAX + 1];
	size_t len;
	int overflow;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t len = size * n;
	if (a->len + len > ANSWER_MAX) {
		a->overflow = 1;
		return 0; /* makes curl stop with CURLE_WRITE_ERROR */
	}
	memcpy(a->buf + a->len, p, len);
	a->len += len;
	a->buf[a->len] = '\0';
	return len;
}

/* The "error" text of a registry answer, made safe to print. */
static void error_text(const struct answer *a, long status, char err[EVC_ERR_LEN])
{
	json_t *o = json_loadb(a->buf, a->len, 0, NULL);
	const char *e = json_string_value(json_object_get(o, "error"));
	if (e != NULL && msg_valid_text(e))
		evc_seterr(err, "the registry answered %ld: %s", status, e);
	else
		evc_seterr(err, "the registry answered %ld", status);
	json_decref(o);
}

enum cp_register_result cp_register(const char *base_url, const char *installer_token, const char *ca_file,
				    const char *cp_id, const char *location, double price, struct cred *out,
				    char err[EVC_ERR_LEN])
{
	enum cp_register_result res = CP_REGISTER_FAILED;
	struct answer *a = xcalloc(1, sizeof *a);
	struct curl_slist *hdrs = NULL;
	char *url = NULL, *body = NULL, *auth = NULL;
	char cerr[CURL_ERROR_SIZE] = "";
	memset(out, 0, sizeof *out);

	if (strncasecmp(base_url, "https://", 8) != 0) {
		evc_seterr(err, "the registry's address must start with https://");
		goto done;
	}
	size_t bl = strlen(base_url);
	while (bl > 8 && base_url[bl - 1] == '/')
		bl--;
	url = xasprintf("%.*s/v1/cps", (int)bl, base_url);
	json_t *req = json_pack("{s:s,s:s,s:f}", "id", cp_id, "location", location, "price", price);
	body = req != NULL ? json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	json_decref(req);
	if (body == NULL) {
		evc_seterr(err, "cannot encode the request (location not UTF-8?)");
		goto done;
	}
	auth = xasprintf("Authorization: Bearer %s", installer_token);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	/* curl_slist_append keeps its own copy. */
	crypto_wipe(auth, strlen(auth));

	CURL *c = curl_easy_init();
	if (c == NULL || hdrs == NULL) {
		evc_seterr(err, "cannot start libcurl");
		if (c != NULL)
			curl_easy_cleanup(c);
		goto done;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	/* Only the network's CA, and the name checked: never anything else. */
	curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	CURLcode cc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (cc != CURLE_OK) {
		if (a->overflow)
			evc_seterr(err, "the registry's answer is larger than %d bytes", ANSWER_MAX);
		else
			evc_seterr(err, "cannot reach the registry at %s: %s", url,
				   cerr[0] != '\0' ? cerr : curl_easy_strerror(cc));
		goto done;
	}
	if (status == 409) {
		evc_seterr(err, "CP %s is already registered", cp_id);
		res = CP_REGISTER_EXISTS;
		goto done;
	}
	if (status != 201) {
		error_text(a, status, err);
		res = CP_REGISTER_REFUSED;
		goto done;
	}
	json_t *o = json_loadb(a->buf, a->len, JSON_REJECT_DUPLICATES, NULL);
	const char *id = json_string_value(json_object_get(o, "id"));
	const char *secret = json_string_value(json_object_get(o, "secret"));
	if (id == NULL || strcmp(id, cp_id) != 0 || !crypto_valid_secret(secret)) {
		evc_seterr(err, "the registry answered 201 without a valid {\"id\",\"secret\"} for CP %s", cp_id);
	} else {
		xstrlcpy(out->cp_id, id, sizeof out->cp_id);
		xstrlcpy(out->secret, secret, sizeof out->secret);
		res = CP_REGISTER_OK;
	}
	json_decref(o);
done:
	crypto_wipe(a, sizeof *a);
	free(a);
	curl_slist_free_all(hdrs);
	free(url);
	free(body);
	free(auth);
	return res;
}

int cp_register_requested(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--register") == 0 || strncmp(argv[i], "--register=", 11) == 0)
			return 1;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " --register https://HOST:PORT --installer-token-file F --credential FILE\n"
		   "              [--ca F] <cp_id> [--location TEXT] [--price EUR]\n"
		   "  registers the CP at EV_Registry and writes its credential file (mode 0600)\n"
		   "  --ca F            the network's CA certificate (default pki/ca.pem beside FILE)\n"
		   "  --location TEXT   where the CP is (1-64 characters, no '#'); default \"CP <cp_id>\"\n"
		   "  --price EUR       price per kWh, > 0 and <= 100; default 0.30\n");
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return 2;
}

/* A price as the monitor takes it: digits and one '.', > 0 and <= 100. */
static int parse_price(const char *s, double *out)
{
	int dots = 0;
	if (s == NULL || s[0] == '\0')
		return -1;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '.')
			dots++;
		else if (*p < '0' || *p > '9')
			return -1;
	}
	if (dots > 1 || strlen(s) > 20)
		return -1;
	double v = strtod(s, NULL);
	if (!isfinite(v) || !(v > 0 && v <= 100))
		return -1;
	*out = v;
	return 0;
}

int cp_register_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"register", required_argument, NULL, 'r'},
		{"installer-token-file", required_argument, NULL, 't'},
		{"credential", required_argument, NULL, 'c'},
		{"ca", required_argument, NULL, 'a'},
		{"location", required_argument, NULL, 'l'},
		{"price", required_argument, NULL, 'p'},
		{"headless", no_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *url = NULL, *token_file = NULL, *cred_file = NULL, *ca = NULL, *location = NULL, *price_s = NULL;
	int c;
	/* "--register --help" would hand --help to --register as its URL. */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': url = optarg; break;
		case 't': token_file = optarg; break;
		case 'c': cred_file = optarg; break;
		case 'a': ca = optarg; break;
		case 'l': location = optarg; break;
		case 'p': price_s = optarg; break;
		case 'H': break; /* nothing to draw either way */
		case 'h': usage(stdout); return 0;
		case ':': return bad_usage("option %s needs a value", argv[optind - 1]);
		default: return bad_usage("unknown option '%s' with --register", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return bad_usage("--register takes one argument, the cp_id (got %d)", argc - optind);
	const char *cp_id = argv[optind];
	if (url == NULL || strncasecmp(url, "https://", 8) != 0 || url[8] == '\0')
		return bad_usage("--register needs the registry's address as https://HOST:PORT");
	if (token_file == NULL)
		return bad_usage("--register needs --installer-token-file F");
	if (cred_file == NULL)
		return bad_usage("--register needs --credential FILE (where the credential is written)");
	if (!msg_valid_cp_id(cp_id))
		return bad_usage("invalid cp_id '%s' (1-32 of A-Z a-z 0-9 _ -)", cp_id);
	char loc[MSG_LOCATION_MAX + 1];
	if (location == NULL)
		snprintf(loc, sizeof loc, "CP %s", cp_id);
	else if (location[0] == '\0' || !msg_valid_location(location) || strchr(location, '#') != NULL)
		return bad_usage("invalid --location '%s' (1-64 characters, no '#' or control characters)", location);
	else
		xstrlcpy(loc, location, sizeof loc);
	double price = 0.30;
	if (price_s != NULL && parse_price(price_s, &price) == -1)
		return bad_usage("invalid --price '%s' (EUR per kWh, > 0 and <= 100)", price_s);

	char err[EVC_ERR_LEN], token[512];
	char *ca_path = NULL;
	if (ca != NULL) {
		ca_path = xstrdup(ca);
	} else {
		char *copy = xstrdup(cred_file);
		ca_path = xasprintf("%s/pki/ca.pem", dirname(copy));
		free(copy);
	}
	if (access(ca_path, R_OK) != 0) {
		fprintf(stderr, PROG ": %s: cannot read the CA certificate (give it with --ca)\n", ca_path);
		free(ca_path);
		return 1;
	}
	/* The credential's folder must take the file before the registry
	 * hands out a secret that could then not be kept. */
	char *copy = xstrdup(cred_file);
	int dir_ok = access(dirname(copy), W_OK | X_OK) == 0;
	free(copy);
	if (!dir_ok) {
		fprintf(stderr, PROG ": %s: its folder is not writable\n", cred_file);
		free(ca_path);
		return 1;
	}
	if (cred_read_line(token_file, token, sizeof token, err) == -1) {
		fprintf(stderr, PROG ": %s\n", err);
		free(ca_path);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct cred cr;
	enum cp_register_result res = cp_register(url, token, ca_path, cp_id, loc, price, &cr, err);
	crypto_wipe(token, sizeof token);
	int rc = 1;
	if (res != CP_REGISTER_OK) {
		fprintf(stderr, PROG ": %s\n", err);
	} else if (cred_save(cred_file, &cr, err) == -1) {
		fprintf(stderr,
			PROG ": registered CP %s but cannot write its credential: %s; get a new secret with"
			     " POST /v1/cps/%s/secret and the installer token\n",
			cp_id, err, cp_id);
	} else {
		printf("registered CP %s; credential written to %s\n", cp_id, cred_file);
		rc = 0;
	}
	cred_wipe(&cr);
	curl_global_cleanup();
	free(ca_path);
	return rc;
}
