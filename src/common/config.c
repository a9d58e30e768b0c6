#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "evc/config.h"
#include "evc/evline.h"
#include "evc/net.h"
#include "evc/xalloc.h"

static const char *const programs[] = { "EV_Central", "EV_CP_E", "EV_CP_M", "EV_Driver", "EV_Registry", "EV_W" };

struct pass {
	struct config *c;
	const char *name;    /* file name for messages */
	const char *prog;
	int own_section;     /* 0: read the common sections, 1: read [prog] */
	/* the reader's position */
	const char *text;    /* string input, or NULL */
	FILE *f;             /* file input, or NULL */
	int line;            /* lines read so far */
	int toolong;         /* first overlong line, 0 none */
	/* the first error */
	int err_line;
	char err[EVC_ERR_LEN];
};

/* inih's reader: one line at a time, so the handler knows the line number
 * (inih gives it only to handlers compiled with INI_HANDLER_LINENO). A line
 * longer than inih's buffer would be split and its tail parsed as a line
 * of its own: it is replaced by an empty line and reported instead. */
static char *reader(char *str, int num, void *stream)
{
	struct pass *p = stream;
	char buf[CONFIG_LINE_MAX + 2];
	size_t n = 0;
	int ch = 0;
	int got = 0;
	for (;;) {
		if (p->text != NULL)
			ch = *p->text != '\0' ? (unsigned char)*p->text++ : EOF;
		else
			ch = getc(p->f);
		if (ch == EOF)
			break;
		got = 1;
		if (ch == '\n')
			break;
		if (n < sizeof buf - 1)
			buf[n++] = (char)ch;
		else
			n = sizeof buf; /* too long: keep reading to its end */
	}
	if (!got)
		return NULL;
	p->line++;
	if (n >= sizeof buf - 1 || (int)n + 2 > num) {
		if (p->toolong == 0)
			p->toolong = p->line;
		n = 0;
	}
	memcpy(str, buf, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

static void fail(struct pass *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct pass *p, const char *fmt, ...)
{
	if (p->err_line != 0)
		return;
	p->err_line = p->line;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
}

static int known_section(const char *s)
{
	if (s[0] == '\0' || strcmp(s, "evcharging") == 0)
		return 1;
	for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++)
		if (strcmp(s, programs[i]) == 0)
			return 1;
	return 0;
}

static int check_value(struct pass *p, const char *key, const char *v)
{
	if (strcmp(key, "broker") == 0) {
		char *list = xstrdup(v), *save = NULL;
		int ok = v[0] != '\0';
		for (char *t = strtok_r(list, ",", &save); ok && t != NULL; t = strtok_r(NULL, ",", &save)) {
			char host[256], nerr[EVC_ERR_LEN];
			int port;
			while (*t == ' ')
				t++;
			if (net_parse_hostport(t, host, sizeof host, &port, nerr) == -1) {
				fail(p, "broker: %s", nerr);
				ok = 0;
			}
		}
		if (v[0] == '\0')
			fail(p, "broker: empty value (expected host:port)");
		free(list);
		return ok;
	}
	if (strcmp(key, "log_format") == 0) {
		enum evline_format f;
		if (evline_parse_format(v, &f) == -1) {
			fail(p, "log_format: expected text or json, not '%.60s'", v);
			return 0;
		}
		return 1;
	}
	if (strcmp(key, "database") == 0 || strcmp(key, "pki") == 0) {
		if (v[0] == '\0') {
			fail(p, "%s: empty value (expected a path)", key);
			return 0;
		}
		return 1;
	}
	if (strcmp(key, "topic_prefix") == 0) {
		for (const char *q = v; *q != '\0'; q++)
			if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
			      *q == '.' || *q == '_' || *q == '-')) {
				fail(p, "topic_prefix: '%.60s' holds a character Kafka does not allow in a topic name", v);
				return 0;
			}
		return 1;
	}
	fail(p, "unknown key '%.40s' (known: broker, topic_prefix, database, pki, log_format)", key);
	return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct pass *p = user;
	if (!known_section(section)) {
		fail(p, "unknown section [%.60s] (known: evcharging, EV_Central, EV_CP_E, EV_CP_M, EV_Driver, "
			"EV_Registry, EV_W)",
		     section);
		return 0;
	}
	if (value == NULL) {
		fail(p, "'%.60s' has no value (expected key = value)", name);
		return 0;
	}
	if (!check_value(p, name, value))
		return 0;
	int common = section[0] == '\0' || strcmp(section, "evcharging") == 0;
	int mine = p->prog != NULL && strcmp(section, p->prog) == 0;
	if ((p->own_section && !mine) || (!p->own_section && !common))
		return 1;
	char **slot = strcmp(name, "broker") == 0	   ? &p->c->broker
		      : strcmp(name, "topic_prefix") == 0 ? &p->c->topic_prefix
		      : strcmp(name, "database") == 0	   ? &p->c->database
		      : strcmp(name, "pki") == 0	   ? &p->c->pki
							   : &p->c->log_format;
	free(*slot);
	*slot = xstrdup(value);
	return 1;
}

/* One pass over the input; 0 or -1 with err. */
static int run_pass(struct pass *p, char err[EVC_ERR_LEN])
{
	int rc = ini_parse_stream(reader, p, handler, p);
	if (p->f != NULL && ferror(p->f)) {
		evc_seterr(err, "%s: cannot read: %s", p->name, strerror(errno));
		return -1;
	}
	int line = p->err_line;
	const char *why = p->err;
	if (p->toolong != 0 && (line == 0 || p->toolong < line)) {
		line = p->toolong;
		why = "line too long (at most 1024 bytes)";
	}
	if (rc > 0 && (line == 0 || rc < line)) {
		/* inih found a line that is neither a section, a comment nor
		 * key = value, before any error of ours. */
		line = rc;
		why = "not a [section], a comment or a key = value line";
	}
	if (line != 0 || rc != 0) {
		evc_seterr(err, "%s:%d: %s", p->name, line != 0 ? line : rc, why);
		return -1;
	}
	return 0;
}

static int load(struct config *c, const char *text, FILE *f, const char *name, const char *prog,
		char err[EVC_ERR_LEN])
{
	/* Debian's inih takes its options at run time. An indented line is a
	 * line like any other (not the continuation of a value), and ';'
	 * starts a comment anywhere. */
	ini_max_line = CONFIG_LINE_MAX + 3;
	ini_allow_multiline = false;
	ini_stop_on_first_error = true;
	for (int own = 0; own <= 1; own++) {
		struct pass p;
		memset(&p, 0, sizeof p);
		p.c = c;
		p.name = name;
		p.prog = prog;
		p.own_section = own;
		p.text = text;
		p.f = f;
		if (f != NULL)
			rewind(f);
		if (run_pass(&p, err) == -1)
			return -1;
	}
	return 0;
}

int config_load_string(struct config *c, const char *text, const char *name, const char *prog,
		       char err[EVC_ERR_LEN])
{
	memset(c, 0, sizeof *c);
	c->path = xstrdup(name);
	return load(c, text, NULL, name, prog, err);
}

int config_load(struct config *c, const char *path, const char *prog, char err[EVC_ERR_LEN])
{
	memset(c, 0, sizeof *c);
	/* EVC_CONFIG names another default file, or "none" for none: a
	 * test suite (or a second network on one machine) must not pick up
	 * the machine's /etc file. --config always wins. */
	const char *env = getenv("EVC_CONFIG");
	if (path == NULL && env != NULL && env[0] != '\0') {
		if (strcmp(env, "none") == 0)
			return 0;
		path = env;
	}
	const char *file = path != NULL ? path : CONFIG_DEFAULT_PATH;
	FILE *f = fopen(file, "r");
	if (f == NULL) {
		if (path == NULL && errno == ENOENT)
			return 0;
		evc_seterr(err, "%s: cannot open the configuration file: %s", file, strerror(errno));
		return -1;
	}
	c->path = xstrdup(file);
	int rc = load(c, NULL, f, file, prog, err);
	fclose(f);
	return rc;
}

void config_free(struct config *c)
{
	free(c->broker);
	free(c->topic_prefix);
	free(c->database);
	free(c->pki);
	free(c->log_format);
	free(c->path);
	memset(c, 0, sizeof *c);
}

const char *config_topic_prefix(const struct config *c, const char *cli)
{
	if (cli != NULL)
		return cli;
	const char *env = getenv("EVC_TOPIC_PREFIX");
	if (env != NULL)
		return env;
	return c->topic_prefix != NULL ? c->topic_prefix : "";
}
