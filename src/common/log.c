#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "evc/clock.h"
#include "evc/evline.h"
#include "evc/log.h"
#include "evc/xalloc.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_stream;
static log_sink_fn log_sink;
static void *log_sink_arg;
static int log_min = -1;
static const char *log_prog = "evc";

void log_set_progname(const char *name) { log_prog = name; }

static void init_level(void)
{
	if (log_min < 0) {
		const char *d = getenv("EVC_DEBUG");
		log_min = (d != NULL && *d != '\0' && *d != '0') ? LOG_DEBUG : LOG_INFO;
	}
}

void log_set_level(enum log_level lvl) { log_min = (int)lvl; }

enum log_level log_get_level(void)
{
	init_level();
	return (enum log_level)log_min;
}

int log_parse_level(const char *s, enum log_level *lvl)
{
	static const struct { const char *name; enum log_level l; } names[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "warn", LOG_WARN },
		{ "warning", LOG_WARN }, { "error", LOG_ERROR },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(s, names[i].name) == 0) {
			*lvl = names[i].l;
			return 0;
		}
	return -1;
}

void log_set_sink(log_sink_fn fn, void *arg)
{
	pthread_mutex_lock(&log_lock);
	log_sink = fn;
	log_sink_arg = arg;
	pthread_mutex_unlock(&log_lock);
}

const char *log_level_name(enum log_level lvl)
{
	switch (lvl) {
	case LOG_DEBUG: return "debug";
	case LOG_INFO: return "info";
	case LOG_WARN: return "warn";
	case LOG_ERROR: return "error";
	}
	return "?";
}

char *log_render(enum log_level lvl, const char *text)
{
	char ts[EVLINE_TS_LEN];
	evline_timestamp(clock_wall(), ts);
	if (evline_get_format() == EVLINE_JSON) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "prog", log_prog, "level", log_level_name(lvl));
		json_t *t = json_string(text);
		json_object_set_new(o, "text", t != NULL ? t : json_string("(invalid UTF-8)"));
		char *js = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
		json_decref(o);
		if (js != NULL)
			return js;
	}
	char *out = xasprintf("%s %s %s %s", ts, log_prog, log_level_name(lvl), text);
	for (char *p = out; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return out;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	init_level();
	if ((int)lvl < log_min)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	if (log_sink != NULL) {
		log_sink(lvl, line, log_sink_arg);
	} else {
		FILE *f = log_stream != NULL ? log_stream : stderr;
		char *out = log_render(lvl, line);
		fputs(out, f);
		fputc('\n', f);
		free(out);
		fflush(f);
	}
	pthread_mutex_unlock(&log_lock);
}
