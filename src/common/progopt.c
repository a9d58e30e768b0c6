#include <stdlib.h>
#include <string.h>

#include "evc/evline.h"
#include "evc/progopt.h"

void progopt_list(FILE *f, const struct option *opts, const char *const *extra)
{
	for (const struct option *o = opts; o->name != NULL; o++)
		fprintf(f, "--%s%s%s\n", o->name, o->has_arg != no_argument ? " ARG" : "",
			strcmp(o->name, "log-format") == 0 ? " text json" : "");
	for (; extra != NULL && *extra != NULL; extra++)
		fprintf(f, "%s\n", *extra);
}

int progopt_setup(const char *prog, const char *config_path, const char *log_format, int no_color,
		  struct config *conf, char err[EVC_ERR_LEN])
{
	if (config_load(conf, config_path, prog, err) == -1)
		return -1;
	const char *fmt = log_format != NULL ? log_format : conf->log_format;
	enum evline_format f = EVLINE_TEXT;
	if (fmt != NULL && evline_parse_format(fmt, &f) == -1) {
		evc_seterr(err, "--log-format: expected text or json, not '%.40s'", fmt);
		return -1;
	}
	evline_set_format(f);
	/* The screens' theme honours NO_COLOR (no-color.org): one switch for
	 * every screen of the program. */
	if (no_color)
		setenv("NO_COLOR", "1", 1);
	return 0;
}
