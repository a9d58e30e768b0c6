#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "evc/clock.h"
#include "evc/evline.h"
#include "evc/xalloc.h"

static atomic_int cur_format = EVLINE_TEXT;
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

void evline_set_format(enum evline_format f) { atomic_store(&cur_format, (int)f); }

enum evline_format evline_get_format(void) { return (enum evline_format)atomic_load(&cur_format); }

int evline_parse_format(const char *s, enum evline_format *f)
{
	if (strcmp(s, "text") == 0)
		*f = EVLINE_TEXT;
	else if (strcmp(s, "json") == 0)
		*f = EVLINE_JSON;
	else
		return -1;
	return 0;
}

void evline_timestamp(double wall, char out[EVLINE_TS_LEN])
{
	clock_format(wall, out, EVLINE_TS_LEN);
}

/* Fields whose value is free text: last on the line, to its end. */
static int free_text_key(const char *k, size_t n)
{
	static const char *const keys[] = { "reason", "text", "detail", "location", "error" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strlen(keys[i]) == n && memcmp(keys[i], k, n) == 0)
			return 1;
	return 0;
}

/* Ids stay strings even when they are all digits (driver 101). */
static int id_key(const char *k)
{
	static const char *const keys[] = { "cp",      "driver", "user",  "session", "id",  "cp_id",
					    "user_id", "session_id", "prefix", "peer", "name", "version" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(keys[i], k) == 0)
			return 1;
	return 0;
}

static json_t *value_of(const char *key, const char *v)
{
	if (!id_key(key) && v[0] != '\0' && (isdigit((unsigned char)v[0]) || (v[0] == '-' && isdigit((unsigned char)v[1])))) {
		const char *d = v[0] == '-' ? v + 1 : v;
		/* "007" keeps its zeros as text */
		if (!(d[0] == '0' && isdigit((unsigned char)d[1]))) {
			char *end;
			if (strchr(v, '.') == NULL && strchr(v, 'e') == NULL && strchr(v, 'E') == NULL) {
				long long i = strtoll(v, &end, 10);
				if (*end == '\0')
					return json_integer(i);
			} else {
				double x = strtod(v, &end);
				if (*end == '\0' && isfinite(x))
					return json_real(x);
			}
		}
	}
	json_t *s = json_string(v);
	return s != NULL ? s : json_string("(invalid UTF-8)");
}

static int is_key(const char *s, size_t n)
{
	if (n == 0 || !(islower((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
			return 0;
	return 1;
}

/* Append word to the string field name of obj (blank-separated). */
static void append_word(json_t *obj, const char *name, const char *w, size_t n)
{
	const char *old = json_string_value(json_object_get(obj, name));
	char *s = old != NULL ? xasprintf("%s %.*s", old, (int)n, w) : xasprintf("%.*s", (int)n, w);
	json_t *v = json_string(s);
	if (v == NULL)
		v = json_string("(invalid UTF-8)");
	json_object_set_new(obj, name, v);
	free(s);
}

void evline_add_fields(json_t *obj, const char *text)
{
	const char *p = text;
	int seen_kv = 0;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		const char *w = p;
		while (*p != '\0' && *p != ' ')
			p++;
		size_t n = (size_t)(p - w);
		const char *eq = memchr(w, '=', n);
		if (eq != NULL && is_key(w, (size_t)(eq - w))) {
			char key[64];
			size_t kl = (size_t)(eq - w);
			if (kl >= sizeof key)
				kl = sizeof key - 1;
			memcpy(key, w, kl);
			key[kl] = '\0';
			seen_kv = 1;
			if (free_text_key(w, kl)) {
				json_t *v = json_string(eq + 1);
				json_object_set_new(obj, key, v != NULL ? v : json_string("(invalid UTF-8)"));
				return;
			}
			char *val = xstrndup(eq + 1, (size_t)(p - eq - 1));
			json_object_set_new(obj, key, value_of(key, val));
			free(val);
		} else {
			append_word(obj, seen_kv ? "text" : "event", w, n);
		}
	}
}

char *evline_render(double wall, const char *line)
{
	char ts[EVLINE_TS_LEN];
	char *out;
	evline_timestamp(wall, ts);
	if (evline_get_format() == EVLINE_JSON) {
		json_t *o = json_object();
		json_object_set_new(o, "ts", json_string(ts));
		const char *sp = strchr(line, ' ');
		char *tag = sp != NULL ? xstrndup(line, (size_t)(sp - line)) : xstrdup(line);
		json_t *t = json_string(tag);
		json_object_set_new(o, "type", t != NULL ? t : json_string("?"));
		free(tag);
		if (sp != NULL)
			evline_add_fields(o, sp + 1);
		out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
		json_decref(o);
		if (out == NULL)
			out = xasprintf("{\"ts\":\"%s\",\"type\":\"ERROR\",\"text\":\"unprintable line\"}", ts);
	} else {
		out = xasprintf("%s %s", ts, line);
	}
	for (char *q = out; *q != '\0'; q++)
		if (*q == '\n' || *q == '\r')
			*q = ' ';
	return out;
}

void evline_write(FILE *f, const char *line)
{
	char *s = evline_render(clock_wall(), line);
	pthread_mutex_lock(&write_mu);
	fputs(s, f);
	fputc('\n', f);
	fflush(f);
	pthread_mutex_unlock(&write_mu);
	free(s);
}
