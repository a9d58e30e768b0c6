/* EV_Registry: the CP registry over HTTPS (evcharging(7) SECURITY,
 * EV_Registry(1)). libmicrohttpd with its GnuTLS serves the requests on
 * one internal thread, which alone touches the registry (registry.c) and
 * its database connection; the main thread waits for SIGINT/SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "config.h"
#include "evc/clock.h"
#include "evc/cred.h"
#include "evc/crypto.h"
#include "evc/log.h"
#include "evc/net.h"
#include "evc/progopt.h"
#include "evc/version.h"
#include "evc/xalloc.h"
#include "src/registry/registry.h"

#define PROG "EV_Registry"
#define DEFAULT_DB "evcharging.db"
#define PEM_MAX (64 * 1024)
/* Past this many bytes of an oversized body the connection is closed
 * instead of reading on to answer 413. */
#define DISCARD_MAX (64 * 1024)
#define CONN_LIMIT 64
#define CONN_PER_IP 8
#define CONN_TIMEOUT 10 /* s without a byte: closed (handshake included) */
/* Only TLS 1.2 and 1.3, GnuTLS's usual ciphers and curves within them. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct opts {
	int port;
	const char *db;
	const char *listen;
	const char *cert, *key, *token_file;
	int headless;
	struct config conf; /* the configuration file: database, pki, log format */
};

struct app {
	struct registry *reg;
};

/* What libmicrohttpd keeps for one request between its calls. */
struct req_ctx {
	char body[REGISTRY_BODY_MAX];
	size_t len;  /* kept (at most REGISTRY_BODY_MAX) */
	size_t seen; /* arrived, counted whatever Content-Length said */
	int too_large;
	char peer[INET6_ADDRSTRLEN];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " <port> [db] [--listen ADDR] [--cert F] [--key F]\n"
		"       [--installer-token-file F] [--headless] [--log-format text|json] [--config FILE]\n"
		"       " PROG " --help | --version\n"
		"  db                    the network's SQLite file, shared with EV_Central\n"
		"                        (default ./" DEFAULT_DB ")\n"
		"  --listen ADDR         IPv4 or IPv6 address to serve on (default 127.0.0.1)\n"
		"  --cert F, --key F     TLS certificate and key (default pki/registry.pem and\n"
		"                        pki/registry.key beside the db)\n"
		"  --installer-token-file F  the installer token (default pki/installer.token\n"
		"                        beside the db)\n"
		"  --headless            log lines on stdout instead of stderr\n"
		"  --no-color            accepted as every program does (the registry has no screen)\n"
		"  --log-format F        text or json log lines (default text)\n"
		"  --config FILE         configuration file (default " CONFIG_DEFAULT_PATH " if present):\n"
		"                        its database when db is left out, its pki folder for the\n"
		"                        default files\n"
		"  --list-options        print every option, one a line (shell completion)\n"
		"  -V, --version         print the versions of the program and its libraries\n");
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return 2;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

enum { OPT_LISTEN = 256, OPT_CERT, OPT_KEY, OPT_TOKEN, OPT_HEADLESS, OPT_NO_COLOR, OPT_LOG_FORMAT, OPT_CONFIG,
       OPT_LIST };

/* 0 to run, 1 to exit 0 (--help, --version), 2 on bad usage. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"cert", required_argument, NULL, OPT_CERT},
		{"key", required_argument, NULL, OPT_KEY},
		{"installer-token-file", required_argument, NULL, OPT_TOKEN},
		{"headless", no_argument, NULL, OPT_HEADLESS},
		{"no-color", no_argument, NULL, OPT_NO_COLOR},
		{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"list-options", no_argument, NULL, OPT_LIST},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *log_format = NULL, *config_path = NULL;
	int c, idx;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", opts, &idx)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return 1;
		case 'V': version_print(stdout, PROG); return 1;
		case OPT_LIST: progopt_list(stdout, opts, NULL); return 1;
		case OPT_HEADLESS: o->headless = 1; break;
		case OPT_NO_COLOR: break; /* no screen: nothing to colour */
		case OPT_LOG_FORMAT: log_format = optarg; break;
		case OPT_CONFIG: config_path = optarg; break;
		case OPT_LISTEN:
		case OPT_CERT:
		case OPT_KEY:
		case OPT_TOKEN:
			if (optarg[0] == '\0')
				return bad_usage("--%s needs a non-empty value", opts[idx].name);
			*(c == OPT_LISTEN ? &o->listen : c == OPT_CERT ? &o->cert : c == OPT_KEY ? &o->key : &o->token_file) =
				optarg;
			break;
		case ':': return bad_usage("%s needs a value", argv[optind - 1]);
		default: return bad_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	char cerr[EVC_ERR_LEN];
	if (progopt_setup(PROG, config_path, log_format, 0, &o->conf, cerr) == -1) {
		fprintf(stderr, PROG ": %s\n", cerr);
		return 2;
	}
	const char **pos = (const char **)argv + optind;
	int npos = argc - optind;
	if (npos > 2)
		return bad_usage("too many arguments ('%s')", pos[2]);
	if (npos < 1)
		return bad_usage("missing <port>");
	char err[EVC_ERR_LEN];
	if (net_parse_port(pos[0], 0, &o->port, err) == -1)
		return bad_usage("bad port '%s': %s", pos[0], err);
	o->db = npos > 1 ? pos[1] : o->conf.database != NULL ? o->conf.database : DEFAULT_DB;
	return 0;
}

/* NAME in the configuration's pki folder, else pki/NAME in the folder of
 * the db. Caller frees with free(). */
static const char *pki_dir;
static char *beside_db(const char *db, const char *name)
{
	if (pki_dir != NULL)
		return xasprintf("%s/%s", pki_dir, name);
	char *copy = xstrdup(db);
	char *out = xasprintf("%s/pki/%s", dirname(copy), name);
	free(copy);
	return out;
}

/* A PEM file into memory (libmicrohttpd takes them so). Caller frees with
 * free(). NULL with err. */
static char *read_pem(const char *path, char err[EVC_ERR_LEN])
{
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		evc_seterr(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = xmalloc(PEM_MAX + 1);
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, PEM_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			evc_seterr(err, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > PEM_MAX) {
			evc_seterr(err, "%s: larger than %d bytes; not a PEM file", path, PEM_MAX);
			goto fail;
		}
	}
	close(fd);
	buf[len] = '\0';
	if (strstr(buf, "-----BEGIN ") == NULL) {
		evc_seterr(err, "%s: not a PEM file", path);
		crypto_wipe(buf, len);
		free(buf);
		return NULL;
	}
	return buf;
fail:
	close(fd);
	crypto_wipe(buf, PEM_MAX + 1);
	free(buf);
	return NULL;
}

/* The listening socket, bound here rather than by libmicrohttpd so that a
 * port in use is reported as such. fd or -1 with err. */
static int listen_on(const char *addr, int port, char err[EVC_ERR_LEN])
{
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof ss);
	char host[INET6_ADDRSTRLEN + 2];
	xstrlcpy(host, addr, sizeof host);
	size_t hl = strlen(host);
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		sl = sizeof *s4;
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		sl = sizeof *s6;
	} else {
		evc_seterr(err, "'%s' is not an IPv4 or IPv6 address", addr);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		evc_seterr(err, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
		evc_seterr(err, "cannot listen on %s port %d: %s", addr, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void peer_text(struct MHD_Connection *c, char out[INET6_ADDRSTRLEN])
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	xstrlcpy(out, "?", INET6_ADDRSTRLEN);
	if (ci == NULL || ci->client_addr == NULL)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, INET6_ADDRSTRLEN);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, INET6_ADDRSTRLEN);
}

/* The method as logged: a client may send any token there. */
static void method_text(const char *m, char out[16])
{
	size_t i = 0;
	for (; m != NULL && m[i] != '\0' && i < 15; i++)
		out[i] = (m[i] >= 'A' && m[i] <= 'Z') ? m[i] : '?';
	out[i] = '\0';
}

static enum MHD_Result answer(struct MHD_Connection *c, const char *method, const char *url, const char *peer,
			      struct registry_response *resp)
{
	size_t len = resp->body != NULL ? strlen(resp->body) : 0;
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, resp->body != NULL ? resp->body : (char *)"", MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret = MHD_NO;
	if (r != NULL) {
		if (resp->body != NULL)
			MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		/* Answers may carry a secret: no cache keeps them. */
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
		if (resp->allow != NULL)
			MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
		if (resp->retry_after > 0) {
			char ra[16];
			snprintf(ra, sizeof ra, "%d", resp->retry_after);
			MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
		}
		ret = MHD_queue_response(c, (unsigned)resp->status, r);
		MHD_destroy_response(r);
	}
	/* One line a request: never a body, a header value or the raw path
	 * (a client may put a secret anywhere). */
	char m[16], p[96];
	method_text(method, m);
	registry_path_for_log(url, p, sizeof p);
	log_info("%s %s %d %s%s%s", m, p, resp->status, peer, resp->note[0] != '\0' ? ": " : "", resp->note);
	if (resp->body != NULL) {
		crypto_wipe(resp->body, len);
		free(resp->body);
		resp->body = NULL;
	}
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	(void)version;
	(void)upload_data;
	struct app *app = cls;
	struct req_ctx *ctx = *con_cls;
	struct registry_request req;
	struct registry_response resp;
	memset(&req, 0, sizeof req);
	req.method = method;
	req.path = url;
	req.authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	req.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);

	if (ctx == NULL) {
		ctx = xcalloc(1, sizeof *ctx);
		*con_cls = ctx;
		peer_text(c, ctx->peer);
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > REGISTRY_BODY_MAX)
			ctx->too_large = 1;
		req.peer = ctx->peer;
		req.headers_only = 1;
		req.body_too_large = ctx->too_large;
		registry_handle(app->reg, &req, &resp);
		if (resp.status != 0)
			return answer(c, method, url, ctx->peer, &resp);
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		/* Counted as it comes: a chunked body or a lying Content-Length
		 * cannot get more than REGISTRY_BODY_MAX bytes kept. */
		size_t n = *upload_data_size;
		ctx->seen += n;
		if (!ctx->too_large && ctx->len + n <= REGISTRY_BODY_MAX) {
			memcpy(ctx->body + ctx->len, upload_data, n);
			ctx->len += n;
		} else {
			ctx->too_large = 1;
		}
		*upload_data_size = 0;
		if (ctx->seen <= DISCARD_MAX)
			return MHD_YES;
		char m[16], p[96];
		method_text(method, m);
		registry_path_for_log(url, p, sizeof p);
		log_info("%s %s closed %s: body larger than %d bytes, not read further", m, p, ctx->peer, DISCARD_MAX);
		return MHD_NO;
	}
	req.peer = ctx->peer;
	req.body = ctx->body;
	req.body_len = ctx->len;
	req.body_too_large = ctx->too_large;
	registry_handle(app->reg, &req, &resp);
	return answer(c, method, url, ctx->peer, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	struct req_ctx *ctx = *con_cls;
	if (ctx != NULL) {
		crypto_wipe(ctx, sizeof *ctx);
		free(ctx);
		*con_cls = NULL;
	}
}

/* libmicrohttpd's own messages (TLS handshake failures, malformed
 * requests): debug lines, as any client can cause them at will. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_debug("http: %s", line);
}

/* --headless: the same lines as on standard error, on standard output. */
static void log_to_stdout(enum log_level lvl, const char *line, void *arg)
{
	(void)arg;
	char *out = log_render(lvl, line); /* the one format, text or JSON */
	puts(out);
	fflush(stdout);
	free(out);
}

int main(int argc, char **argv)
{
	struct opts o;
	memset(&o, 0, sizeof o);
	log_set_progname(PROG);
	int pa = parse_args(argc, argv, &o);
	if (pa != 0) {
		config_free(&o.conf);
		return pa == 1 ? 0 : 2;
	}
	if (o.headless)
		log_set_sink(log_to_stdout, NULL);

	char err[EVC_ERR_LEN];
	pki_dir = o.conf.pki;
	char *cert_path = o.cert != NULL ? xstrdup(o.cert) : beside_db(o.db, "registry.pem");
	char *key_path = o.key != NULL ? xstrdup(o.key) : beside_db(o.db, "registry.key");
	char *token_path = o.token_file != NULL ? xstrdup(o.token_file) : beside_db(o.db, "installer.token");
	char *cert = NULL, *key = NULL;
	char token[512];
	struct app app = {0};
	struct MHD_Daemon *d = NULL;
	int lfd = -1, rc = 1;
	token[0] = '\0';

	/* Secret files readable by others are refused, as ssh refuses a key. */
	if (cred_check_mode(key_path, err) == -1 || cred_read_line(token_path, token, sizeof token, err) == -1) {
		fail("%s", err);
		goto out;
	}
	if ((cert = read_pem(cert_path, err)) == NULL || (key = read_pem(key_path, err)) == NULL) {
		fail("%s", err);
		goto out;
	}
	app.reg = registry_open(o.db, token, err);
	crypto_wipe(token, sizeof token);
	if (app.reg == NULL) {
		fail("%s", err);
		goto out;
	}
	const char *addr = o.listen != NULL ? o.listen : "127.0.0.1";
	lfd = listen_on(addr, o.port, err);
	if (lfd < 0) {
		fail("%s", err);
		goto out;
	}

	/* SIGINT/SIGTERM are taken by sigwait below: blocked before the
	 * server's thread starts, so it inherits the mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	d = MHD_start_daemon(MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG, 0, NULL,
			     NULL, on_request, &app, MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_HTTPS_MEM_CERT, cert,
			     MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
			     (unsigned)CONN_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
			     on_completed, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
	if (d == NULL) {
		fail("cannot start the HTTPS server on %s port %d (is %s a certificate and %s its key?)", addr, o.port,
		     cert_path, key_path);
		goto out;
	}
	lfd = -1; /* the server's now: MHD_stop_daemon closes it */
	log_info("serving https://%s%s%s:%d/v1/cps (database %s)", strchr(addr, ':') != NULL && addr[0] != '[' ? "[" : "",
		 addr, strchr(addr, ':') != NULL && addr[0] != '[' ? "]" : "", o.port, o.db);

	int sig = 0;
	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
		log_info("SIGHUP ignored (restart to reload the certificate)");
	log_info("signal %d: stopping", sig);
	rc = 0;
out:
	if (d != NULL)
		MHD_stop_daemon(d);
	if (lfd >= 0)
		close(lfd);
	registry_close(app.reg);
	if (key != NULL) {
		crypto_wipe(key, strlen(key));
		free(key);
	}
	free(cert);
	free(cert_path);
	free(key_path);
	config_free(&o.conf);
	free(token_path);
	return rc;
}
