/* Diagnostics. Every line goes to one sink: a stream (default stderr) or a
 * callback (a curses screen shows them in its log pane). Thread-safe.
 * On the stream a line is "<ts> <prog> <level> <text>", or with
 * evline_set_format(EVLINE_JSON) {"ts","prog","level","text"}. */
#ifndef EVC_LOG_H
#define EVC_LOG_H
#include <stdio.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

typedef void (*log_sink_fn)(enum log_level lvl, const char *line, void *arg);

/* Program name shown in stream output ("EV_Central"). Not copied. */
void log_set_progname(const char *name);
/* Lines below lvl are dropped (default LOG_INFO; EVC_DEBUG=1 sets DEBUG). */
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* "debug", "info", "warn" (or "warning"), "error": 0, else -1. */
int log_parse_level(const char *s, enum log_level *lvl);
/* Send lines to fn instead of a stream; NULL restores the stream. */
void log_set_sink(log_sink_fn fn, void *arg);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *log_level_name(enum log_level lvl);
/* A diagnostic as the stream shows it (without the newline), for a sink
 * that writes elsewhere the same way. Caller frees with free(). */
char *log_render(enum log_level lvl, const char *text);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
