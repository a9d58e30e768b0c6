/* EV_W: the weather office (EV_W(1)). Every interval
 * seconds it re-reads its config, reads each city's temperature from an
 * OpenWeather-compatible provider and posts it (or the provider's error)
 * to Central's API, which answers whether the city is under a weather
 * alert and which CPs that stopped.
 *
 * One thread: a curl multi handle runs every transfer without blocking,
 * and curl_multi_poll also watches stdin (keys or headless commands) and a
 * signal pipe, so a slow provider or an unreachable Central never freezes
 * the screen. The rules live in pure modules: wconfig.c (the config and
 * the secret files), owm.c (the provider's URL and answers), wpost.c (the
 * bodies, Central's answers, backoff and the outbox); whttp.c sets up the
 * transfers; ui/weather_screen.c draws the view filled here. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "evc/clock.h"
#include "evc/cred.h"
#include "evc/evline.h"
#include "evc/log.h"
#include "evc/progopt.h"
#include "evc/version.h"
#include "evc/xalloc.h"
#include "src/weather/owm.h"
#include "src/weather/wconfig.h"
#include "src/weather/whttp.h"
#include "src/weather/wpost.h"
#include "ui/weather_screen.h"

#define PROG "EV_W"
#define FETCH_PARALLEL 4   /* provider requests under way at once */
#define LOOP_CAP_MS 1000   /* the screen's clock ticks once a second */
#define TOKEN_WHAT "API token"
#define KEY_WHAT "API key"

struct opts {
	const char *central;
	const char *config;
	const char *ca;
	const char *token_file;
	const char *provider_ca;
	int headless;
	int no_color;
};

struct city {
	char name[WCONFIG_CITY_BYTES + 1];
	int fetching;        /* a provider request is under way */
	int queued;          /* due this cycle, waiting for a free request slot */
	int has_temp;
	double temp, temp_mono;
	char error[EVC_ERR_LEN];
	int error_now;       /* the latest result is that error */
	double error_mono;
	int alert;           /* Central's last answer: 1, 0, -1 not known */
	char cps[WPOST_CPS_TEXT];
	size_t ncps;
};

enum link_state { LINK_UNKNOWN, LINK_UP, LINK_DOWN, LINK_REFUSED };

struct wx {
	struct opts o;
	char config_dir[WCONFIG_PATH_MAX + 1];
	char ca[WCONFIG_PATH_MAX + 1];
	char readings_url[WPOST_URL_MAX + 1];
	char token[WCONFIG_SECRET_MAX + 1];
	char key[WCONFIG_SECRET_MAX + 1];
	struct wconfig cfg;
	char config_error[EVC_ERR_LEN];
	char key_error[EVC_ERR_LEN];
	struct city cities[WCONFIG_CITIES_MAX];
	size_t ncities;
	struct whttp *fetch[FETCH_PARALLEL]; /* provider requests under way */
	size_t fetches;
	double next_cycle;
	CURLM *multi;
	/* Central */
	struct wpost_outbox outbox;
	struct whttp *post;        /* the one post under way, or NULL */
	struct wpost_item posting; /* what it carries */
	struct wpost_backoff backoff;
	double next_post;          /* no post before this (backing off) */
	unsigned attempts;         /* failed posts in a row */
	enum link_state link;
	char link_error[EVC_ERR_LEN];
	/* input and screen */
	int sigpipe[2];
	int stdin_open;
	char inbuf[512];
	size_t inlen;
	int skip_line;
	int quit;
	int dirty;
	double last_draw;
	struct weather_screen *scr;
};

static volatile sig_atomic_t got_signal;
static int signal_fd = -1;

static void on_signal(int sig)
{
	int saved = errno;
	got_signal = sig;
	if (signal_fd >= 0) {
		char c = 1;
		ssize_t r = write(signal_fd, &c, 1);
		(void)r;
	}
	errno = saved;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " <central_api_url> <config.json> --token-file F [--ca F] [--provider-ca F]\n"
		"       [--headless] [--no-color] [--log-format text|json] [--config FILE]\n"
		"       " PROG " --help | --version\n"
		"  central_api_url   Central's API, https://HOST:PORT (readings go to " WPOST_PATH ")\n"
		"  config.json       {\"provider\",\"api_key_file\",\"cities\",\"interval\"}, re-read every cycle\n"
		"  --token-file F    Central API token of role 'weather', one line, mode 0600\n"
		"  --ca F            CA that signed Central's certificate (default pki/ca.pem beside config.json)\n"
		"  --provider-ca F   CA for an https provider (default: the system's CAs)\n"
		"  --headless        no screen: one line per reading and per error on stdout, commands on stdin\n"
		"                    (r reads now, q quits)\n"
		"  --no-color        monochrome screen (also NO_COLOR=1)\n"
		"  --log-format F    text or json event and log lines (default text)\n"
		"  --config FILE     configuration file (default " CONFIG_DEFAULT_PATH " if present)\n"
		"  --list-options    print every option, one a line (shell completion)\n"
		"  -V, --version     print the versions of the program and its libraries\n");
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

static int fail_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail_run(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

enum { OPT_CA = 256, OPT_TOKEN, OPT_PROVIDER_CA, OPT_HEADLESS, OPT_NO_COLOR, OPT_LOG_FORMAT, OPT_CONFIG, OPT_LIST };

/* 0 to run, 1 to exit 0 (--help, --version), 2 on bad usage. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
		{"token-file", required_argument, NULL, OPT_TOKEN},
		{"ca", required_argument, NULL, OPT_CA},
		{"provider-ca", required_argument, NULL, OPT_PROVIDER_CA},
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
	const char **pos;
	int npos, c, idx;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", opts, &idx)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return 1;
		case 'V': version_print(stdout, PROG); return 1;
		case OPT_LIST: progopt_list(stdout, opts, NULL); return 1;
		case OPT_HEADLESS: o->headless = 1; break;
		case OPT_NO_COLOR: o->no_color = 1; break;
		case OPT_LOG_FORMAT: log_format = optarg; break;
		case OPT_CONFIG: config_path = optarg; break;
		case OPT_CA:
		case OPT_TOKEN:
		case OPT_PROVIDER_CA:
			if (optarg[0] == '\0')
				return bad_usage("option --%s needs a file name", opts[idx].name);
			if (strlen(optarg) > WCONFIG_PATH_MAX)
				return bad_usage("--%s: file name longer than %d bytes", opts[idx].name, WCONFIG_PATH_MAX);
			*(c == OPT_CA ? &o->ca : c == OPT_TOKEN ? &o->token_file : &o->provider_ca) = optarg;
			break;
		case ':': return bad_usage("option %s needs a file name", argv[optind - 1]);
		default: return bad_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	char cerr[EVC_ERR_LEN];
	struct config conf;
	int rc = progopt_setup(PROG, config_path, log_format, 0, &conf, cerr);
	config_free(&conf); /* all EV_W takes from it is the line format */
	if (rc == -1) {
		fprintf(stderr, PROG ": %s\n", cerr);
		return 2;
	}
	pos = (const char **)argv + optind;
	npos = argc - optind;
	if (npos > 2)
		return bad_usage("unexpected argument '%s'", pos[2]);
	if (npos < 2)
		return bad_usage("%s", npos == 0 ? "missing <central_api_url> and <config.json>" : "missing <config.json>");
	o->central = pos[0];
	o->config = pos[1];
	if (strlen(o->config) > WCONFIG_PATH_MAX)
		return bad_usage("config file name longer than %d bytes", WCONFIG_PATH_MAX);
	if (o->token_file == NULL)
		return bad_usage("missing --token-file F (Central's API token of role 'weather')");
	return 0;
}

/* ---- output ---------------------------------------------------------- */

/* One line of output: on the screen's events pane, or on stdout with the
 * time in front (headless), made for grep. */
static void emit(struct wx *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct wx *w, const char *fmt, ...)
{
	char line[1536];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	w->dirty = 1;
	if (w->scr != NULL) {
		weather_screen_event(w->scr, line);
		return;
	}
	evline_write(stdout, line); /* timestamped, text or JSON (evcharging(7) LOG LINES) */
}

static void log_to_screen(enum log_level lvl, const char *line, void *arg)
{
	struct wx *w = arg;
	char buf[1100];

	snprintf(buf, sizeof buf, "(%s) %s", log_level_name(lvl), line);
	weather_screen_event(w->scr, buf);
	w->dirty = 1;
}

/* A value for a key=value line: as is when it is one plain word, else in
 * double quotes with " and \ escaped. */
static const char *quoted(char *buf, size_t n, const char *s)
{
	if (s[0] != '\0' && strpbrk(s, " \"=\\") == NULL) {
		xstrlcpy(buf, s, n);
		return buf;
	}
	size_t k = 0;
	if (n < 3) {
		buf[0] = '\0';
		return buf;
	}
	buf[k++] = '"';
	for (; *s != '\0' && k + 3 < n; s++) {
		if (*s == '"' || *s == '\\')
			buf[k++] = '\\';
		buf[k++] = *s;
	}
	buf[k++] = '"';
	buf[k] = '\0';
	return buf;
}

/* Any text that came from outside (libcurl, the provider, Central) on its
 * way to a line or the screen: never the key or the token, never a
 * control character. */
static void scrub(struct wx *w, char *s, size_t n)
{
	owm_redact(s, n, w->key);
	owm_redact(s, n, w->token);
	owm_clean(s);
}

/* A secret file: mode-checked and read as every secret file of the family
 * is (evc/cred.h: no group or other access, "chmod 600" in the message),
 * then checked for what a key or token may hold. err never holds it. */
static int read_secret(char err[EVC_ERR_LEN], const char *path, const char *what, char out[WCONFIG_SECRET_MAX + 1])
{
	char line[WCONFIG_SECRET_MAX + 2], perr[EVC_ERR_LEN];
	int rc = -1;

	if (cred_read_line(path, line, sizeof line, perr) == -1)
		evc_seterr(err, "%s file %s", what, perr);
	else if (wconfig_secret_parse(perr, line, strlen(line), what, out) == -1)
		evc_seterr(err, "%s file %s: %s", what, path, perr);
	else
		rc = 0;
	explicit_bzero(line, sizeof line);
	return rc;
}

/* ---- cities and config ------------------------------------------------ */

static struct city *find_city(struct wx *w, const char *name)
{
	for (size_t i = 0; i < w->ncities; i++)
		if (strcmp(w->cities[i].name, name) == 0)
			return &w->cities[i];
	return NULL;
}

/* The cities of a new config: the ones kept keep what is known of them
 * (a request under way finds its city again by name). */
static void apply_cities(struct wx *w, const struct wconfig *c)
{
	static struct city old[WCONFIG_CITIES_MAX];
	size_t nold = w->ncities;

	memcpy(old, w->cities, nold * sizeof old[0]);
	for (size_t i = 0; i < c->ncities; i++) {
		struct city *k = NULL;
		for (size_t j = 0; j < nold; j++)
			if (strcmp(old[j].name, c->cities[i]) == 0) {
				k = &old[j];
				break;
			}
		if (k != NULL) {
			w->cities[i] = *k;
		} else {
			memset(&w->cities[i], 0, sizeof w->cities[i]);
			xstrlcpy(w->cities[i].name, c->cities[i], sizeof w->cities[i].name);
			w->cities[i].alert = -1;
		}
	}
	for (size_t j = 0; j < nold; j++) {
		int kept = 0;
		for (size_t i = 0; i < c->ncities && !kept; i++)
			kept = strcmp(old[j].name, c->cities[i]) == 0;
		if (!kept)
			wpost_outbox_drop(&w->outbox, old[j].name);
	}
	w->ncities = c->ncities;
}

static void cities_text(const struct wconfig *c, char *buf, size_t n)
{
	size_t k = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < c->ncities; i++) {
		int r = snprintf(buf + k, n - k, "%s%s", i ? "," : "", c->cities[i]);
		if (r < 0 || (size_t)r >= n - k) {
			if (n > 4)
				memcpy(buf + n - 4, "...", 4);
			return;
		}
		k += (size_t)r;
	}
}

/* Re-read config.json: a bad one keeps the last good one and is reported
 * (once per distinct error: the file is read every cycle). 0 if usable. */
static int reload_config(struct wx *w, int first)
{
	char err[EVC_ERR_LEN], perr[EVC_ERR_LEN], *text = NULL;
	size_t len;
	int rc;

	if (wconfig_read_file(perr, w->o.config, WCONFIG_FILE_MAX, &text, &len) == -1) {
		evc_seterr(err, "%s", perr);
		rc = -1;
	} else {
		rc = wconfig_update(perr, &w->cfg, text, len, w->config_dir);
		if (rc == -1)
			evc_seterr(err, "%s: %s", w->o.config, perr);
		free(text);
	}
	if (rc == -1) {
		if (first) {
			fail_run("%s", err);
			return -1;
		}
		owm_clean(err);
		if (strcmp(err, w->config_error) != 0) {
			xstrlcpy(w->config_error, err, sizeof w->config_error);
			char q[EVC_ERR_LEN + 8];
			emit(w, "config error=%s (keeping the last good config)", quoted(q, sizeof q, err));
			log_warn("config: %s; keeping the last good one", err);
		}
		return 0;
	}
	if (w->config_error[0] != '\0') {
		w->config_error[0] = '\0';
		log_info("config: good again");
	}
	if (rc == 1 || first) {
		char list[600];
		apply_cities(w, &w->cfg);
		cities_text(&w->cfg, list, sizeof list);
		emit(w, "config %s cities=%zu interval=%d list=%s", first ? "loaded" : "reloaded", w->cfg.ncities,
		     w->cfg.interval, list);
		w->dirty = 1;
	}
	return 0;
}

/* Re-read the provider's key (it may be rotated in place). A bad file
 * keeps the last good key; at start it is fatal. */
static int reload_key(struct wx *w, int first)
{
	char err[EVC_ERR_LEN], key[WCONFIG_SECRET_MAX + 1];

	if (read_secret(err, w->cfg.api_key_file, KEY_WHAT, key) == -1) {
		if (first) {
			fail_run("%s", err);
			return -1;
		}
		owm_clean(err);
		if (strcmp(err, w->key_error) != 0) {
			xstrlcpy(w->key_error, err, sizeof w->key_error);
			char q[EVC_ERR_LEN + 8];
			emit(w, "key error=%s (keeping the last good key)", quoted(q, sizeof q, err));
			log_warn("%s; keeping the last good key", err);
		}
		return 0;
	}
	if (w->key_error[0] != '\0') {
		w->key_error[0] = '\0';
		log_info("%s file good again", KEY_WHAT);
	}
	if (strcmp(key, w->key) != 0) {
		explicit_bzero(w->key, sizeof w->key);
		memcpy(w->key, key, sizeof w->key);
	}
	explicit_bzero(key, sizeof key);
	return 0;
}

/* ---- provider ---------------------------------------------------------- */

static void start_fetch(struct wx *w, struct city *c)
{
	char err[EVC_ERR_LEN];
	char *url = owm_url(err, w->cfg.provider, c->name, w->key);
	struct whttp *t = NULL;

	if (url != NULL) {
		struct whttp_opts o = {.url = url, .cafile = w->o.provider_ca};
		t = whttp_new(err, &o);
		explicit_bzero(url, strlen(url));
		free(url);
	}
	c->queued = 0;
	if (t == NULL) {
		scrub(w, err, sizeof err);
		log_error("city %s: %s", c->name, err);
		return;
	}
	t->owner = xstrdup(c->name);
	if (curl_multi_add_handle(w->multi, t->h) != CURLM_OK) {
		log_error("city %s: libcurl will not start the request", c->name);
		free(t->owner);
		whttp_free(t);
		return;
	}
	for (size_t i = 0; i < FETCH_PARALLEL; i++)
		if (w->fetch[i] == NULL) {
			w->fetch[i] = t;
			break;
		}
	c->fetching = 1;
	w->fetches++;
	w->dirty = 1;
}

static void pump_fetches(struct wx *w)
{
	for (size_t i = 0; i < w->ncities && w->fetches < FETCH_PARALLEL; i++)
		if (w->cities[i].queued && !w->cities[i].fetching)
			start_fetch(w, &w->cities[i]);
}

static void start_cycle(struct wx *w, double now)
{
	reload_config(w, 0);
	reload_key(w, 0);
	for (size_t i = 0; i < w->ncities; i++)
		if (!w->cities[i].fetching)
			w->cities[i].queued = 1; /* one still under way is not asked twice */
	w->next_cycle = now + w->cfg.interval;
	pump_fetches(w);
}

static void reading_line(struct wx *w, const struct wpost_item *it, const char *central, double delayed)
{
	char qc[WCONFIG_CITY_BYTES * 2 + 4], qe[WPOST_ERROR_MAX * 2 + 4], what[sizeof qc + sizeof qe + 32];
	char late[32] = "";

	if (delayed > 0)
		snprintf(late, sizeof late, " delayed=%.1fs", delayed);
	if (it->is_error)
		snprintf(what, sizeof what, "error city=%s error=%s", quoted(qc, sizeof qc, it->city),
			 quoted(qe, sizeof qe, it->error));
	else
		snprintf(what, sizeof what, "reading city=%s temp=%.10g", quoted(qc, sizeof qc, it->city), it->temp);
	emit(w, "%s %s%s", what, central, late);
}

/* A reading (or error) that cannot go now because Central is backed off
 * is said at once; it waits in the outbox, replaced by newer ones. */
static void announce_if_waiting(struct wx *w, struct wpost_item *it, double now)
{
	if (w->link == LINK_DOWN && now < w->next_post && !it->announced) {
		reading_line(w, it, "alert=unknown central=unreachable", 0);
		it->announced = 1;
	}
}

static void fetch_done(struct wx *w, struct whttp *t, CURLcode cc, double now)
{
	char err[EVC_ERR_LEN], why[EVC_ERR_LEN];
	long status = 0;
	double temp = 0;
	int ok = 0;
	struct city *c = find_city(w, t->owner);

	if (whttp_outcome(why, t, cc, &status) == -1)
		evc_seterr(err, "provider: %s", why);
	else if (status != 200)
		owm_status_text(err, status);
	else if (owm_parse(err, t->body != NULL ? t->body : "", t->len, &temp) == 0)
		ok = 1;
	if (c == NULL) /* the city left the config meanwhile */
		return;
	c->fetching = 0;
	w->dirty = 1;
	struct wpost_item it;
	memset(&it, 0, sizeof it);
	xstrlcpy(it.city, c->name, sizeof it.city);
	it.read_at = now;
	if (ok) {
		c->has_temp = 1;
		c->temp = temp;
		c->temp_mono = now;
		c->error_now = 0;
		it.temp = temp;
	} else {
		scrub(w, err, sizeof err);
		xstrlcpy(c->error, err, sizeof c->error);
		c->error_now = 1;
		c->error_mono = now;
		it.is_error = 1;
		xstrlcpy(it.error, err, sizeof it.error);
		log_debug("city %s: %s", c->name, err);
	}
	announce_if_waiting(w, wpost_outbox_put(&w->outbox, &it), now);
}

/* ---- Central ------------------------------------------------------------ */

static double jitter(void)
{
	return (double)random() / (double)RAND_MAX;
}

static void pump_post(struct wx *w, double now)
{
	char err[EVC_ERR_LEN];

	if (w->post != NULL || w->outbox.n == 0 || now < w->next_post)
		return;
	wpost_outbox_take(&w->outbox, &w->posting);
	char *body = w->posting.is_error ? wpost_body_error(w->posting.city, w->posting.error)
					 : wpost_body_reading(w->posting.city, w->posting.temp);
	struct whttp_opts o = {
		.url = w->readings_url, .cafile = w->ca, .bearer = w->token, .json_body = body, .direct = 1,
	};
	w->post = whttp_new(err, &o);
	free(body);
	if (w->post == NULL) {
		scrub(w, err, sizeof err);
		log_error("cannot post to Central: %s", err);
		return;
	}
	if (curl_multi_add_handle(w->multi, w->post->h) != CURLM_OK) {
		log_error("libcurl will not start the post to Central");
		whttp_free(w->post);
		w->post = NULL;
	}
}

static void post_done(struct wx *w, CURLcode cc, double now)
{
	char err[EVC_ERR_LEN], why[EVC_ERR_LEN], q[EVC_ERR_LEN + 8];
	long status = 0;
	struct whttp *t = w->post;
	struct wpost_item *it = &w->posting;
	struct city *c = find_city(w, it->city);
	enum wpost_fate fate;

	w->post = NULL;
	w->dirty = 1;
	if (whttp_outcome(why, t, cc, &status) == -1) {
		evc_seterr(err, "%s", why);
		fate = WPOST_RETRY;
	} else {
		fate = wpost_fate_of(status);
		if (fate != WPOST_DELIVERED)
			wpost_status_text(err, status, t->body, t->len);
	}
	if (fate == WPOST_DELIVERED) {
		struct wpost_answer a;
		char central[WPOST_CPS_TEXT + 64];
		double late = it->announced ? now - it->read_at : 0;
		if (w->link == LINK_DOWN)
			emit(w, "central up after %u failed attempts", w->attempts);
		else if (w->link != LINK_UP)
			emit(w, "central up");
		w->link = LINK_UP;
		w->link_error[0] = '\0';
		w->attempts = 0;
		w->next_post = 0;
		wpost_backoff_reset(&w->backoff);
		if (wpost_parse_answer(err, t->body != NULL ? t->body : "", t->len, &a) == 0) {
			if (c != NULL) {
				c->alert = a.alert;
				xstrlcpy(c->cps, a.cps, sizeof c->cps);
				c->ncps = a.ncps;
			}
			snprintf(central, sizeof central, "alert=%s cps=%s", a.alert ? "true" : "false",
				 a.cps[0] ? a.cps : "-");
		} else {
			scrub(w, err, sizeof err);
			log_warn("%s", err);
			snprintf(central, sizeof central, "alert=unknown central=%s", quoted(q, sizeof q, err));
		}
		reading_line(w, it, central, late);
	} else if (fate == WPOST_RETRY) {
		scrub(w, err, sizeof err);
		w->attempts++;
		double d = wpost_backoff_next(&w->backoff, jitter());
		w->next_post = now + d;
		if (w->link != LINK_DOWN)
			log_warn("Central unreachable: %s; retrying with backoff", err);
		w->link = LINK_DOWN;
		xstrlcpy(w->link_error, err, sizeof w->link_error);
		int say = !it->announced;
		it->announced = 1;
		/* waiting= counts the outbox once this reading is back in it:
		 * never more than one per city, however long the outage */
		wpost_outbox_putback(&w->outbox, it);
		emit(w, "central unreachable attempt=%u retry_in=%.2fs waiting=%zu error=%s", w->attempts, d,
		     w->outbox.n, quoted(q, sizeof q, err));
		if (say)
			reading_line(w, it, "alert=unknown central=unreachable", 0);
	} else {
		scrub(w, err, sizeof err);
		if (w->link != LINK_REFUSED || strcmp(err, w->link_error) != 0) {
			emit(w, "central refused error=%s", quoted(q, sizeof q, err));
			log_error("Central refused the reading: %s", err);
		}
		w->link = LINK_REFUSED;
		xstrlcpy(w->link_error, err, sizeof w->link_error);
		w->attempts = 0;
		wpost_backoff_reset(&w->backoff);
		snprintf(q, sizeof q, "alert=unknown central=refused");
		reading_line(w, it, q, 0);
	}
	whttp_free(t);
}

/* ---- the loop ----------------------------------------------------------- */

static void transfers_done(struct wx *w)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(w->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *h = m->easy_handle;
		CURLcode cc = m->data.result;
		struct whttp *t = NULL;
		curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&t);
		curl_multi_remove_handle(w->multi, h);
		double now = clock_mono();
		if (t == w->post) {
			post_done(w, cc, now);
		} else {
			for (size_t i = 0; i < FETCH_PARALLEL; i++)
				if (w->fetch[i] == t)
					w->fetch[i] = NULL;
			w->fetches--;
			fetch_done(w, t, cc, now);
			free(t->owner);
			whttp_free(t);
		}
	}
}

static void command(struct wx *w, char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		p[--n] = '\0';
	if (n == 0 || p[0] == '#')
		return;
	if (strcmp(p, "q") == 0 || strcmp(p, "quit") == 0) {
		w->quit = 1;
	} else if (strcmp(p, "r") == 0 || strcmp(p, "read") == 0) {
		w->next_cycle = 0;
	} else {
		char q[160];
		emit(w, "unknown command %s (r reads now, q quits)", quoted(q, 80, p));
	}
}

static void read_stdin(struct wx *w)
{
	ssize_t got = read(STDIN_FILENO, w->inbuf + w->inlen, sizeof w->inbuf - 1 - w->inlen);

	if (got < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		log_warn("stdin: %s", strerror(errno));
		got = 0;
	}
	if (got == 0) {
		/* A service without stdin goes on; q or a signal ends it. */
		w->stdin_open = 0;
		return;
	}
	w->inlen += (size_t)got;
	w->inbuf[w->inlen] = '\0';
	char *start = w->inbuf, *nl;
	while ((nl = memchr(start, '\n', w->inlen - (size_t)(start - w->inbuf))) != NULL) {
		*nl = '\0';
		if (w->skip_line)
			w->skip_line = 0;
		else
			command(w, start);
		start = nl + 1;
	}
	size_t rest = w->inlen - (size_t)(start - w->inbuf);
	if (rest == sizeof w->inbuf - 1) {
		if (!w->skip_line)
			emit(w, "command line too long; dropped");
		w->skip_line = 1;
		rest = 0;
	}
	memmove(w->inbuf, start, rest);
	w->inlen = rest;
}

static void fill_view(struct wx *w, struct weather_view *v, struct weather_row *rows, double now)
{
	memset(v, 0, sizeof *v);
	for (size_t i = 0; i < w->ncities; i++) {
		const struct city *c = &w->cities[i];
		struct weather_row *r = &rows[i];
		memset(r, 0, sizeof *r);
		r->city = c->name;
		r->has_temp = c->has_temp;
		r->temp = c->temp;
		r->temp_age = now - c->temp_mono;
		r->alert = c->alert;
		r->cps = c->cps;
		r->ncps = c->ncps;
		r->error = c->error;
		r->error_now = c->error_now;
		r->error_age = now - c->error_mono;
		r->fetching = c->fetching;
		r->waiting = wpost_outbox_find(&w->outbox, c->name) != NULL ||
			     (w->post != NULL && strcmp(w->posting.city, c->name) == 0);
	}
	v->central = w->o.central;
	v->provider = w->cfg.provider;
	v->rows = rows;
	v->nrows = w->ncities;
	v->interval = w->cfg.interval;
	v->next_cycle_in = w->next_cycle - now;
	v->link = w->link == LINK_UP ? WEATHER_LINK_UP
		  : w->link == LINK_DOWN ? WEATHER_LINK_DOWN
		  : w->link == LINK_REFUSED ? WEATHER_LINK_REFUSED
					    : WEATHER_LINK_UNKNOWN;
	v->link_error = w->link_error;
	v->retry_in = w->next_post - now;
	v->attempts = w->attempts;
	v->outbox = w->outbox.n;
	v->config_error = w->config_error[0] != '\0' ? w->config_error : w->key_error;
	v->now_wall = clock_wall();
}

static void redraw(struct wx *w, double now)
{
	static struct weather_row rows[WCONFIG_CITIES_MAX];
	struct weather_view v;

	fill_view(w, &v, rows, now);
	weather_screen_draw(w->scr, &v);
	w->dirty = 0;
	w->last_draw = now;
}

static int loop_timeout(struct wx *w, double now)
{
	double until = w->next_cycle;

	if (w->post == NULL && w->outbox.n > 0 && w->next_post > now && w->next_post < until)
		until = w->next_post;
	int ms = clock_ms_until(until, LOOP_CAP_MS);
	if (w->scr != NULL)
		ms = clock_ms_until(w->last_draw + 1.0, ms);
	return ms;
}

/* 0 when asked to quit (q, a signal), -1 if libcurl cannot go on. */
static int run(struct wx *w)
{
	while (!w->quit) {
		double now = clock_mono();
		if (got_signal) {
			log_info("signal %d: closing", (int)got_signal);
			return 0;
		}
		if (now >= w->next_cycle)
			start_cycle(w, now);
		pump_fetches(w);
		pump_post(w, now);
		if (w->scr != NULL && (w->dirty || now - w->last_draw >= 1.0))
			redraw(w, now);

		struct curl_waitfd fds[2];
		int nfds = 0, in_idx = -1;
		fds[nfds++] = (struct curl_waitfd){.fd = w->sigpipe[0], .events = CURL_WAIT_POLLIN};
		if (w->stdin_open) {
			in_idx = nfds;
			fds[nfds++] = (struct curl_waitfd){.fd = STDIN_FILENO, .events = CURL_WAIT_POLLIN};
		}
		int running = 0;
		/* EINTR is curl_multi_poll's own business: anything else is fatal */
		CURLMcode mc = curl_multi_poll(w->multi, fds, (unsigned)nfds, loop_timeout(w, now), NULL);
		if (mc == CURLM_OK)
			mc = curl_multi_perform(w->multi, &running);
		if (mc != CURLM_OK) {
			log_error("libcurl: %s", curl_multi_strerror(mc));
			return -1;
		}
		transfers_done(w);
		if (fds[0].revents) {
			char buf[64];
			while (read(w->sigpipe[0], buf, sizeof buf) > 0)
				;
		}
		if (in_idx >= 0 && fds[in_idx].revents) {
			if (w->scr != NULL) {
				int redraw_now = 0;
				enum weather_screen_action act = weather_screen_keys(w->scr, &redraw_now);
				if (act == WEATHER_SCREEN_QUIT)
					w->quit = 1;
				else if (act == WEATHER_SCREEN_READ_NOW)
					w->next_cycle = 0;
				if (redraw_now)
					w->dirty = 1;
			} else {
				read_stdin(w);
			}
		}
	}
	return 0;
}

static void close_all(struct wx *w)
{
	if (w->multi == NULL)
		return;
	for (size_t i = 0; i < FETCH_PARALLEL; i++) {
		struct whttp *t = w->fetch[i];
		if (t == NULL)
			continue;
		curl_multi_remove_handle(w->multi, t->h);
		free(t->owner);
		whttp_free(t);
		w->fetch[i] = NULL;
	}
	if (w->post != NULL) {
		curl_multi_remove_handle(w->multi, w->post->h);
		whttp_free(w->post);
		w->post = NULL;
	}
	curl_multi_cleanup(w->multi);
	w->multi = NULL;
}

/* Readable now, or a clear reason. */
static int check_readable(const char *what, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1)
		return fail_run("%s %s: %s", what, path, strerror(errno));
	close(fd);
	return 0;
}

static void seed_random(void)
{
	unsigned seed;
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
		seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	srandom(seed);
}

int main(int argc, char **argv)
{
	static struct wx wx;
	struct wx *w = &wx;
	char err[EVC_ERR_LEN];
	int rc = 1;

	w->sigpipe[0] = w->sigpipe[1] = -1;
	log_set_progname(PROG);
	int pa = parse_args(argc, argv, &w->o);
	if (pa != 0)
		return pa == 1 ? 0 : 2;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return fail_run("libcurl cannot start");
	if (wpost_readings_url(err, w->o.central, w->readings_url) == -1) {
		curl_global_cleanup();
		return bad_usage("central_api_url: %s", err);
	}

	wconfig_dirname(w->o.config, w->config_dir, sizeof w->config_dir);
	if (w->o.ca != NULL)
		xstrlcpy(w->ca, w->o.ca, sizeof w->ca);
	else if (strcmp(w->config_dir, ".") == 0)
		xstrlcpy(w->ca, "pki/ca.pem", sizeof w->ca);
	else
		snprintf(w->ca, sizeof w->ca, "%s/pki/ca.pem", w->config_dir);
	if (read_secret(err, w->o.token_file, TOKEN_WHAT, w->token) == -1) {
		rc = fail_run("%s", err);
		goto out;
	}
	if (reload_config(w, 1) == -1 || reload_key(w, 1) == -1)
		goto out;
	if (check_readable("CA file (--ca) for Central's certificate", w->ca) != 0 ||
	    (w->o.provider_ca != NULL && check_readable("provider CA file (--provider-ca)", w->o.provider_ca) != 0))
		goto out;
	if (strncasecmp(w->cfg.provider, "http://", 7) == 0)
		log_warn("provider %s is plain http: the API key travels in clear (fine for a simulator on "
			 "loopback only)", w->cfg.provider);

	w->multi = curl_multi_init();
	if (w->multi == NULL) {
		rc = fail_run("libcurl cannot create its transfer set");
		goto out;
	}
	curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)FETCH_PARALLEL + 1);
	if (pipe2(w->sigpipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		rc = fail_run("pipe: %s", strerror(errno));
		goto out;
	}
	signal_fd = w->sigpipe[1];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	seed_random();
	wpost_backoff_reset(&w->backoff);

	if (!w->o.headless) {
		char serr[EVC_ERR_LEN];
		w->scr = weather_screen_open(w->o.no_color, serr);
		if (w->scr == NULL) {
			rc = fail_run("%s (use --headless)", serr);
			goto out;
		}
		log_set_sink(log_to_screen, w);
	} else {
		setvbuf(stdout, NULL, _IOLBF, 0);
		fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
	}
	w->stdin_open = 1;
	log_info("weather office: %zu cities from %s every %d s, readings to %s", w->cfg.ncities, w->cfg.provider,
		 w->cfg.interval, w->readings_url);
	/* the first cycle at once; config and key were just read */
	for (size_t i = 0; i < w->ncities; i++)
		w->cities[i].queued = 1;
	w->next_cycle = clock_mono() + w->cfg.interval;

	rc = run(w) == 0 ? 0 : 1;
out:
	if (w->scr != NULL) {
		log_set_sink(NULL, NULL);
		weather_screen_close(w->scr);
		w->scr = NULL;
	}
	close_all(w);
	signal_fd = -1;
	for (int i = 0; i < 2; i++)
		if (w->sigpipe[i] >= 0)
			close(w->sigpipe[i]);
	explicit_bzero(w->token, sizeof w->token);
	explicit_bzero(w->key, sizeof w->key);
	curl_global_cleanup();
	return rc;
}
