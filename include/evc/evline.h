/* The line every program writes for an event or a diagnostic, one format
 * for all of them:
 *   text  "<ts> <TAG> <fields...>"
 *   json  {"ts":"<ts>","type":"<TAG>", the fields by name}
 * ts is local time "2026-12-01T20:06:02.229" (clock_format). A text line's
 * fields are: leading bare words (JSON "event", joined by blanks),
 * key=value pairs (JSON "key": a number when the value is one and the key
 * is not an id, else a string), and a free-text field (reason=, text=,
 * detail=, location=, error=), last on the line and running to its end.
 * Example: "LINK down conn=7 reason=peer closed" in JSON is
 *   {"ts":"...","type":"LINK","event":"down","conn":7,"reason":"peer closed"}
 * Thread-safe. */
#ifndef EVC_EVLINE_H
#define EVC_EVLINE_H
#include <stdio.h>

#include <jansson.h>

enum evline_format { EVLINE_TEXT = 0, EVLINE_JSON };

/* Process-wide (--log-format); default text. */
void evline_set_format(enum evline_format f);
enum evline_format evline_get_format(void);
/* "text" or "json": 0, else -1. */
int evline_parse_format(const char *s, enum evline_format *f);

#define EVLINE_TS_LEN 32
void evline_timestamp(double wall, char out[EVLINE_TS_LEN]);

/* Add the fields of text (the part after the tag) to obj as above. */
void evline_add_fields(json_t *obj, const char *text);
/* One whole line for "TAG rest" at wall in the current format, without
 * the newline. Newlines in it become blanks. Caller frees with free(). */
char *evline_render(double wall, const char *line);
/* evline_render at clock_wall(), written to f with a newline and flushed
 * (one write per line, so lines of several threads never mix). */
void evline_write(FILE *f, const char *line);

#endif
