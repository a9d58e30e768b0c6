/* The options every program shares (evcharging(7) CONFIGURATION FILE and
 * LOG LINES): --config F, --log-format text|json, --no-color,
 * --list-options (shell completion) and --version. */
#ifndef EVC_PROGOPT_H
#define EVC_PROGOPT_H
#include <getopt.h>
#include <stdio.h>

#include "evc/config.h"
#include "evc/err.h"

/* --list-options of a getopt_long table: "--name", " ARG" when it takes a
 * value, then the values of --log-format; extra (NULL-terminated, may be
 * NULL) are more lines, such as subcommands. */
void progopt_list(FILE *f, const struct option *opts, const char *const *extra);

/* After the command line: read the configuration (config_path NULL: the
 * default file if present) for prog, set the line format (log_format from
 * the command line, else the file's, else text) and, with no_color, make
 * every screen monochrome. 0, or -1 with err (a usage error: exit 2). conf
 * is the caller's, freed with config_free also after a failure. */
int progopt_setup(const char *prog, const char *config_path, const char *log_format, int no_color,
		  struct config *conf, char err[EVC_ERR_LEN]);

#endif
