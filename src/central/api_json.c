#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/xalloc.h"
#include "src/central/api_json.h"

/* Seconds: from 0.5 ms (a batched WAL commit on a quiet disk) to 2.5 s (a
 * stalled disk, when Central is already in trouble). */
const double api_commit_bounds[API_COMMIT_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
};

void api_metrics_observe_commit(struct api_metrics *m, double seconds)
{
	if (!isfinite(seconds) || seconds < 0)
		seconds = 0;
	for (int i = 0; i < API_COMMIT_BUCKETS; i++) {
		if (seconds <= api_commit_bounds[i]) {
			m->commit_in[i]++;
			break;
		}
	}
	m->commit_count++;
	m->commit_sum += seconds;
}

struct api_snapshot *api_snapshot_new(size_t ncps)
{
	struct api_snapshot *s = xcalloc(1, sizeof *s);
	s->cps = xcalloc(ncps ? ncps : 1, sizeof *s->cps);
	s->ncps = ncps;
	pthread_mutex_init(&s->cache_lock, NULL);
	return s;
}

void api_snapshot_free(struct api_snapshot *s)
{
	if (s == NULL)
		return;
	free(s->cps);
	free(s->weather_json);
	free(s->cps_json);
	pthread_mutex_destroy(&s->cache_lock);
	free(s);
}

json_t *api_json_real(double d)
{
	return isfinite(d) ? json_real(d) : json_null();
}

json_t *api_json_time(double t)
{
	return (isfinite(t) && t > 0) ? json_real(t) : json_null();
}

/* Figures as the panel shows them, so 0.35 stays 0.35 on the wire. */
static json_t *rounded(double d, double scale)
{
	if (!isfinite(d))
		return json_null();
	return json_real(round(d * scale) / scale);
}

json_t *api_json_cp(const struct cp_view *v)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(v->id));
	/* jansson refuses invalid UTF-8; the core only keeps valid locations,
	 * but a broken one must not lose the whole CP. */
	json_t *loc = json_string(v->location);
	json_object_set_new(o, "location", loc ? loc : json_string(""));
	json_object_set_new(o, "price", rounded(v->price, 10000));
	json_object_set_new(o, "state", json_string(cp_state_name(v->state)));
	json_t *cap = json_string(v->caption[0] ? v->caption : cp_state_label(v->state));
	json_object_set_new(o, "caption", cap ? cap : json_string(cp_state_label(v->state)));
	json_object_set_new(o, "link", json_string(cp_link_name(v->link)));
	json_t *drv = v->driver_id[0] ? json_string(v->driver_id) : NULL;
	json_object_set_new(o, "driver_id", drv ? drv : json_null());
	json_object_set_new(o, "kw", rounded(v->kw, 1000));
	json_object_set_new(o, "kwh", rounded(v->kwh, 1000));
	json_object_set_new(o, "importe", rounded(v->importe, 100));
	json_object_set_new(o, "since", api_json_time(v->since));
	return o;
}

char *api_json_dump(json_t *j)
{
	if (j == NULL)
		return NULL;
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY);
	json_decref(j);
	if (s == NULL) /* only on allocation failure inside jansson */
		s = xstrdup("null");
	return s;
}

char *api_json_error(const char *msg)
{
	json_t *s = json_string(msg);
	if (s == NULL)
		s = json_string("error");
	return api_json_dump(json_pack("{so}", "error", s));
}

/* ---- Prometheus text format 0.0.4 ---- */

struct buf {
	char *p;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) bprintf(struct buf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		b->cap = b->cap * 2 + (size_t)n;
		b->p = xrealloc(b->p, b->cap);
	}
}

static void head(struct buf *b, const char *name, const char *type, const char *help)
{
	bprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Prometheus floats: "+Inf" style names aside, %.17g round-trips. */
static void num(struct buf *b, double d)
{
	bprintf(b, "%.17g\n", d);
}

char *api_json_metrics(const struct api_snapshot *s, const uint64_t codes[API_CODES], size_t sse_clients)
{
	static const struct api_metrics zero;
	const struct api_metrics *m = s ? &s->metrics : &zero;
	struct buf b = { xmalloc(4096), 0, 4096 };
	b.p[0] = '\0';

	size_t by_state[CP_STATE_COUNT] = { 0 };
	for (size_t i = 0; s != NULL && i < s->ncps; i++)
		if ((unsigned)s->cps[i].state < CP_STATE_COUNT)
			by_state[s->cps[i].state]++;
	head(&b, "evc_cps", "gauge", "Charging points known to Central, by state.");
	for (int st = 0; st < CP_STATE_COUNT; st++)
		bprintf(&b, "evc_cps{state=\"%s\"} %zu\n", cp_state_name((enum cp_state)st), by_state[st]);

	head(&b, "evc_links", "gauge", "Open charging point links, by kind.");
	bprintf(&b, "evc_links{kind=\"tls\"} %llu\n", (unsigned long long)m->links_tls);
	bprintf(&b, "evc_links{kind=\"plain\"} %llu\n", (unsigned long long)m->links_plain);

	head(&b, "evc_open_sessions", "gauge", "Charging sessions authorised and not yet ended.");
	bprintf(&b, "evc_open_sessions %llu\n", (unsigned long long)m->open_sessions);

	head(&b, "evc_telemetry_messages_total", "counter", "Telemetry messages from the engines, by result.");
	bprintf(&b, "evc_telemetry_messages_total{result=\"accepted\"} %llu\n",
		(unsigned long long)m->telemetry_accepted);
	bprintf(&b, "evc_telemetry_messages_total{result=\"rejected\"} %llu\n",
		(unsigned long long)m->telemetry_rejected);

	head(&b, "evc_driver_requests_total", "counter", "Driver charge requests, by outcome.");
	bprintf(&b, "evc_driver_requests_total{outcome=\"authorised\"} %llu\n",
		(unsigned long long)m->driver_authorised);
	bprintf(&b, "evc_driver_requests_total{outcome=\"denied\"} %llu\n", (unsigned long long)m->driver_denied);

	head(&b, "evc_kafka_up", "gauge", "1 while Central reaches the Kafka broker, else 0.");
	bprintf(&b, "evc_kafka_up %d\n", m->kafka_up ? 1 : 0);

	head(&b, "evc_store_commit_seconds", "histogram", "Time of one database COMMIT of the main loop.");
	uint64_t cum = 0;
	for (int i = 0; i < API_COMMIT_BUCKETS; i++) {
		cum += m->commit_in[i];
		bprintf(&b, "evc_store_commit_seconds_bucket{le=\"%g\"} %llu\n", api_commit_bounds[i],
			(unsigned long long)cum);
	}
	uint64_t count = m->commit_count < cum ? cum : m->commit_count;
	bprintf(&b, "evc_store_commit_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)count);
	bprintf(&b, "evc_store_commit_seconds_sum ");
	num(&b, isfinite(m->commit_sum) ? m->commit_sum : 0);
	bprintf(&b, "evc_store_commit_seconds_count %llu\n", (unsigned long long)count);

	head(&b, "evc_api_requests_total", "counter", "Answers of the HTTPS API, by status code.");
	for (int c = 100; c < API_CODES; c++)
		if (codes != NULL && codes[c] != 0)
			bprintf(&b, "evc_api_requests_total{code=\"%d\"} %llu\n", c,
				(unsigned long long)codes[c]);

	head(&b, "evc_api_event_streams", "gauge", "Open /api/v1/events streams.");
	bprintf(&b, "evc_api_event_streams %zu\n", sse_clients);

	head(&b, "evc_snapshot_timestamp_seconds", "gauge", "Wall clock of the view the API answers from.");
	bprintf(&b, "evc_snapshot_timestamp_seconds ");
	num(&b, s && isfinite(s->at) ? s->at : 0);
	return b.p;
}
