#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evc/msg.h"
#include "evc/xalloc.h"
#include "src/central/ctlproto.h"

void ctlproto_buf_init(struct ctlproto_buf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
}

void ctlproto_buf_free(struct ctlproto_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

static void buf_append(struct ctlproto_buf *b, const char *p, size_t n)
{
	if (b->head > 0 && b->len + n > b->cap) {
		memmove(b->data, b->data + b->head, b->len - b->head);
		b->len -= b->head;
		b->ustart -= b->head;
		b->head = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void ctlproto_buf_put(struct ctlproto_buf *b, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl != NULL ? (size_t)(nl - p) + 1 : n;
		if (b->skipping) {
			if (nl != NULL)
				b->skipping = 0;
		} else if (b->len - b->ustart + take - (nl != NULL) > b->max) {
			/* Overlong: what was kept of it goes, the marker takes its
			 * place, the rest is dropped up to its newline. */
			b->len = b->ustart;
			buf_append(b, CTLPROTO_TOOLONG "\n", 2);
			b->ustart = b->len;
			b->skipping = nl == NULL;
		} else {
			buf_append(b, p, take);
			if (nl != NULL)
				b->ustart = b->len;
		}
		p += take;
		n -= take;
	}
}

char *ctlproto_buf_line(struct ctlproto_buf *b)
{
	if (b->ustart <= b->head)
		return NULL;
	char *start = b->data + b->head;
	char *nl = memchr(start, '\n', b->ustart - b->head);
	if (nl == NULL)
		return NULL;
	size_t keep = (size_t)(nl - start);
	if (keep > 0 && start[keep - 1] == '\r')
		keep--;
	char *line = xmalloc(keep + 1);
	memcpy(line, start, keep);
	line[keep] = '\0';
	/* A NUL inside would cut the line short silently: make it visible. */
	for (size_t i = 0; i < keep; i++)
		if (line[i] == '\0')
			line[i] = ' ';
	b->head = (size_t)(nl - b->data) + 1;
	return line;
}

const char *ctlproto_verb(const char *line, char *word, size_t n)
{
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0')
		return NULL;
	size_t k = 0;
	while (*line != '\0' && *line != ' ' && *line != '\t') {
		if (k + 1 < n)
			word[k++] = (char)toupper((unsigned char)*line);
		line++;
	}
	word[k] = '\0';
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

json_t *ctlproto_cp_to_json(const struct cp_view *v)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:s, s:s, s:b, s:b, s:s, s:s, s:f, s:f, s:f, s:f, s:f}",
			      "t", "cp", "id", v->id, "location", v->location, "price", v->price, "state",
			      cp_state_name(v->state), "link", cp_link_name(v->link), "stop_pending",
			      v->stop_pending, "resume_pending", v->resume_pending, "driver", v->driver_id,
			      "session", v->session_id, "kw", v->kw, "kwh", v->kwh, "importe", v->importe,
			      "session_started", v->session_started, "since", v->since);
	if (o == NULL) /* a string that is not UTF-8 (the core checks, but never crash here) */
		o = json_pack("{s:s, s:s, s:s}", "t", "cp", "id", "?", "state", "DESCONECTADO");
	json_t *cap = json_string(v->caption);
	json_object_set_new(o, "caption", cap != NULL ? cap : json_string(""));
	return o;
}

static int get_str(const json_t *o, const char *key, char *out, size_t n, int required, char err[EVC_ERR_LEN])
{
	const json_t *j = json_object_get(o, key);
	if (j == NULL && !required) {
		out[0] = '\0';
		return 0;
	}
	if (!json_is_string(j)) {
		evc_seterr(err, "'%s' missing or not a string", key);
		return -1;
	}
	size_t len = json_string_length(j);
	if (len >= n || memchr(json_string_value(j), '\0', len) != NULL) {
		evc_seterr(err, "'%s' too long or holds NUL", key);
		return -1;
	}
	memcpy(out, json_string_value(j), len + 1);
	return 0;
}

static int get_num(const json_t *o, const char *key, double *out, char err[EVC_ERR_LEN])
{
	const json_t *j = json_object_get(o, key);
	if (j == NULL) {
		*out = 0;
		return 0;
	}
	if (!json_is_number(j) || !isfinite(json_number_value(j))) {
		evc_seterr(err, "'%s' not a number", key);
		return -1;
	}
	*out = json_number_value(j);
	return 0;
}

static int get_bool(const json_t *o, const char *key, int *out, char err[EVC_ERR_LEN])
{
	const json_t *j = json_object_get(o, key);
	if (j == NULL) {
		*out = 0;
		return 0;
	}
	if (!json_is_boolean(j)) {
		evc_seterr(err, "'%s' not true or false", key);
		return -1;
	}
	*out = json_is_true(j);
	return 0;
}

int ctlproto_cp_from_json(const json_t *o, struct cp_view *v, char err[EVC_ERR_LEN])
{
	char state[32], link[16];
	memset(v, 0, sizeof *v);
	if (!json_is_object(o)) {
		evc_seterr(err, "not an object");
		return -1;
	}
	if (get_str(o, "id", v->id, sizeof v->id, 1, err) == -1 ||
	    get_str(o, "location", v->location, sizeof v->location, 0, err) == -1 ||
	    get_str(o, "state", state, sizeof state, 1, err) == -1 ||
	    get_str(o, "link", link, sizeof link, 0, err) == -1 ||
	    get_str(o, "caption", v->caption, sizeof v->caption, 0, err) == -1 ||
	    get_str(o, "driver", v->driver_id, sizeof v->driver_id, 0, err) == -1 ||
	    get_str(o, "session", v->session_id, sizeof v->session_id, 0, err) == -1 ||
	    get_num(o, "price", &v->price, err) == -1 || get_num(o, "kw", &v->kw, err) == -1 ||
	    get_num(o, "kwh", &v->kwh, err) == -1 || get_num(o, "importe", &v->importe, err) == -1 ||
	    get_num(o, "session_started", &v->session_started, err) == -1 ||
	    get_num(o, "since", &v->since, err) == -1 || get_bool(o, "stop_pending", &v->stop_pending, err) == -1 ||
	    get_bool(o, "resume_pending", &v->resume_pending, err) == -1)
		return -1;
	if (!msg_valid_cp_id(v->id)) {
		evc_seterr(err, "invalid CP id");
		return -1;
	}
	int st = cp_state_parse(state);
	if (st < 0) {
		evc_seterr(err, "unknown state '%.32s'", state);
		return -1;
	}
	v->state = (enum cp_state)st;
	v->link = strcmp(link, "tls") == 0 ? CP_LINK_TLS : strcmp(link, "plain") == 0 ? CP_LINK_PLAIN : CP_LINK_DOWN;
	return 0;
}

int ctlproto_cp_equal(const struct cp_view *a, const struct cp_view *b)
{
	return strcmp(a->id, b->id) == 0 && strcmp(a->location, b->location) == 0 && a->price == b->price &&
	       a->state == b->state && strcmp(a->caption, b->caption) == 0 && a->link == b->link &&
	       a->stop_pending == b->stop_pending && a->resume_pending == b->resume_pending &&
	       strcmp(a->driver_id, b->driver_id) == 0 && strcmp(a->session_id, b->session_id) == 0 &&
	       a->kw == b->kw && a->kwh == b->kwh && a->importe == b->importe &&
	       a->session_started == b->session_started && a->since == b->since;
}

json_t *ctlproto_status_to_json(const struct ctlproto_status *s)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:I}", "t", "status", "listen", s->listen, "kafka",
			      s->kafka, "db", s->db, "kafka_up", s->kafka_up, "kafka_reason", s->kafka_reason, "links",
			      (json_int_t)s->links);
	return o != NULL ? o : json_pack("{s:s}", "t", "status");
}

int ctlproto_status_from_json(const json_t *o, struct ctlproto_status *s, char err[EVC_ERR_LEN])
{
	memset(s, 0, sizeof *s);
	double links = 0;
	if (!json_is_object(o)) {
		evc_seterr(err, "not an object");
		return -1;
	}
	if (get_str(o, "listen", s->listen, sizeof s->listen, 0, err) == -1 ||
	    get_str(o, "kafka", s->kafka, sizeof s->kafka, 0, err) == -1 ||
	    get_str(o, "db", s->db, sizeof s->db, 0, err) == -1 ||
	    get_str(o, "kafka_reason", s->kafka_reason, sizeof s->kafka_reason, 0, err) == -1 ||
	    get_bool(o, "kafka_up", &s->kafka_up, err) == -1 || get_num(o, "links", &links, err) == -1)
		return -1;
	if (links < 0 || links > 1e9) {
		evc_seterr(err, "'links' out of range");
		return -1;
	}
	s->links = (size_t)links;
	return 0;
}

static size_t find_cp(const struct ctlproto_picture *p, const char *id, int *found)
{
	size_t lo = 0, hi = p->ncps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->cps[mid].id, id);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

enum ctlproto_kind ctlproto_picture_apply(struct ctlproto_picture *p, const json_t *o, char err[EVC_ERR_LEN])
{
	if (!json_is_object(o)) {
		evc_seterr(err, "not an object");
		return CTLPROTO_BAD;
	}
	if (json_object_get(o, "ok") != NULL)
		return CTLPROTO_ANSWER;
	const char *t = json_string_value(json_object_get(o, "t"));
	if (t == NULL) {
		evc_seterr(err, "no 't'");
		return CTLPROTO_BAD;
	}
	if (strcmp(t, "cp") == 0) {
		struct cp_view v;
		if (ctlproto_cp_from_json(o, &v, err) == -1)
			return CTLPROTO_BAD;
		int found;
		size_t i = find_cp(p, v.id, &found);
		if (!found) {
			if (p->ncps >= CTLPROTO_CPS_MAX) {
				evc_seterr(err, "more than %d CPs", CTLPROTO_CPS_MAX);
				return CTLPROTO_BAD;
			}
			if (p->ncps == p->cap) {
				p->cap = p->cap ? p->cap * 2 : 64;
				p->cps = xreallocarray(p->cps, p->cap, sizeof *p->cps);
			}
			memmove(&p->cps[i + 1], &p->cps[i], (p->ncps - i) * sizeof *p->cps);
			p->ncps++;
		}
		p->cps[i] = v;
		return CTLPROTO_CP;
	}
	if (strcmp(t, "status") == 0) {
		struct ctlproto_status st;
		if (ctlproto_status_from_json(o, &st, err) == -1)
			return CTLPROTO_BAD;
		p->status = st;
		return CTLPROTO_STATUS;
	}
	if (strcmp(t, "sync") == 0) {
		memset(p->counts, 0, sizeof p->counts);
		for (size_t i = 0; i < p->ncps; i++)
			p->counts[p->cps[i].state]++;
		return CTLPROTO_SYNC;
	}
	if (strcmp(t, "log") == 0 || strcmp(t, "req") == 0) {
		static const char *const lk[] = { "level", "tag", "text" };
		static const char *const rk[] = { "user", "cp", "outcome" };
		const char *const *keys = t[0] == 'l' ? lk : rk;
		const json_t *ts = json_object_get(o, "ts");
		if (!json_is_number(ts) || !isfinite(json_number_value(ts))) {
			evc_seterr(err, "'ts' not a number");
			return CTLPROTO_BAD;
		}
		for (int k = 0; k < 3; k++)
			if (!json_is_string(json_object_get(o, keys[k]))) {
				evc_seterr(err, "'%s' missing or not a string", keys[k]);
				return CTLPROTO_BAD;
			}
		return t[0] == 'l' ? CTLPROTO_LOG : CTLPROTO_REQ;
	}
	if (strcmp(t, "bye") == 0)
		return CTLPROTO_BYE;
	evc_seterr(err, "unknown line type '%.20s'", t);
	return CTLPROTO_BAD;
}

void ctlproto_picture_free(struct ctlproto_picture *p)
{
	free(p->cps);
	memset(p, 0, sizeof *p);
}

json_t *ctlproto_parse(const char *line, char err[EVC_ERR_LEN])
{
	json_error_t je;
	json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL) {
		evc_seterr(err, "not JSON: %.100s", je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		evc_seterr(err, "not a JSON object");
		return NULL;
	}
	return o;
}

char *ctlproto_dump(const json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	return s != NULL ? s : xstrdup("{\"ok\":false,\"error\":\"unprintable answer\"}");
}
