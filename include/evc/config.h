/* The configuration file every program reads (evcharging(7) CONFIGURATION
 * FILE): INI, parsed by inih, for what each program would otherwise repeat
 * on its command line:
 *
 *   # /etc/evcharging/evcharging.conf
 *   [evcharging]            ; every program (also: keys before any section)
 *   broker = kafka1:9092
 *   topic_prefix = net1-
 *   database = /var/lib/evcharging/evcharging.db
 *   pki = /etc/evcharging/pki
 *   log_format = text       ; or json
 *   [EV_Central]            ; one program only: overrides the above
 *   log_format = json
 *
 * Sections: [evcharging], [EV_Central], [EV_CP_E], [EV_CP_M], [EV_Driver],
 * [EV_Registry], [EV_W]. Command-line options win over the environment
 * (EVC_TOPIC_PREFIX), which wins over the file. A bad line is refused with
 * "FILE:LINE: why". */
#ifndef EVC_CONFIG_H
#define EVC_CONFIG_H

#include "evc/err.h"

#define CONFIG_DEFAULT_PATH "/etc/evcharging/evcharging.conf"
#define CONFIG_LINE_MAX 1024

struct config {
	/* NULL when the file does not set it. Owned by the struct. */
	char *broker;       /* host:port[,host:port...] */
	char *topic_prefix; /* may be "" */
	char *database;
	char *pki;
	char *log_format;   /* "text" or "json" */
	char *path;         /* the file read, NULL if none */
};

/* Read path for program prog ("EV_Central"): [evcharging] (and keys before
 * any section) first, then [prog], whose keys override. path NULL: the
 * default file if it exists (a missing default file is no error, an
 * unreadable one is). 0, or -1 with err ("FILE:LINE: why" for a bad line,
 * "FILE: why" when it cannot be read). Caller frees with config_free, also
 * after a failure. */
int config_load(struct config *c, const char *path, const char *prog, char err[EVC_ERR_LEN]);
/* The same from a string (tests); name stands for the file in messages. */
int config_load_string(struct config *c, const char *text, const char *name, const char *prog,
		       char err[EVC_ERR_LEN]);
void config_free(struct config *c);

/* The topic prefix: cli if given, else $EVC_TOPIC_PREFIX if set, else the
 * file's, else "". Valid while c lives (and cli). */
const char *config_topic_prefix(const struct config *c, const char *cli);

#endif
