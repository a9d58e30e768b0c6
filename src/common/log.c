#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "evc/clock.h"
#include "evc/log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_stream;
static log_sink_fn log_sink;
static void *log_sink_arg;
static int log_min = -1;
static const char *log_prog = "evc";

void log_set_progname(const char *name) { log_prog = name; }

void log_set_level(enum log_level lvl) { log_min = (int)lvl; }

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

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (log_min < 0) {
		const char *d = getenv("EVC_DEBUG");
		log_min = (d != NULL && *d != '\0' && *d != '0') ? LOG_DEBUG : LOG_INFO;
	}
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
		char ts[32];
		clock_format(clock_wall(), ts, sizeof ts);
		FILE *f = log_stream != NULL ? log_stream : stderr;
		fprintf(f, "%s %s %-5s %s\n", ts, log_prog, log_level_name(lvl), line);
		fflush(f);
	}
	pthread_mutex_unlock(&log_lock);
}
