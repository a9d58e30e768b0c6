/* The headless frontend of EV_Central (--headless): operator commands as
 * stdin lines, every event and every answer as one line on stdout, in text
 * or JSON (--log-format json). The line format is documented in console.c.
 * Main thread only, except console_log_sink (any thread). */
#ifndef EVC_CENTRAL_CONSOLE_H
#define EVC_CENTRAL_CONSOLE_H
#include "evc/log.h"
#include "src/central/frontend.h"

/* core and status are not owned and must outlive the console. exec runs a
 * command line for the operator. Caller frees with fe->ops->free(fe). */
struct frontend *console_new(const struct core *core, const struct central_status *status, int json,
			     int readonly, int (*exec)(void *arg, const char *line, char msg[EVC_ERR_LEN]),
			     void *exec_arg);
/* A log_sink_fn: diagnostics (log_msg) become "LOG <level> <text>" lines in
 * the same stream. arg = the struct frontend * of console_new. */
void console_log_sink(enum log_level lvl, const char *line, void *arg);

#endif
