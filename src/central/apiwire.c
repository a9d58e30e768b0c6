/* The API in Central's main loop (see apiwire.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "evc/clock.h"
#include "evc/hmap.h"
#include "evc/log.h"
#include "evc/xalloc.h"
#include "src/central/api_json.h"
#include "src/central/apiwire.h"
#include "src/central/turn.h"
#include "src/central/view.h"

#define DRAIN_MAX 64          /* requests taken per turn */
#define PUBLISH_MIN 0.1       /* s between snapshots while CPs change */
#define PUBLISH_MAX 1.0       /* s between snapshots when nothing does (metrics) */

struct reply {
	uint64_t id;
	int status;
	char *json;
};

struct apiwire {
	struct api *api;
	struct api_req req[DRAIN_MAX];
	struct reply *replies;        /* answered this turn, sent after COMMIT */
	size_t nreplies, capreplies;
	struct api_metrics m;
	struct hmap changed;          /* cp ids whose card changed since the last snapshot */
	int dirty;
	int weather_changed;
	double next_publish;          /* monotonic */
	double last_publish;
};

struct apiwire *apiwire_new(struct api *a)
{
	struct apiwire *w = xcalloc(1, sizeof *w);
	w->api = a;
	w->dirty = 1;
	return w;
}

void apiwire_free(struct apiwire *w)
{
	if (w == NULL)
		return;
	api_stop(w->api);
	api_free(w->api);
	for (size_t i = 0; i < w->nreplies; i++)
		free(w->replies[i].json);
	free(w->replies);
	void *v;
	for (size_t i = 0; (v = hmap_next(&w->changed, &i)) != NULL;)
		free(v);
	hmap_free(&w->changed);
	free(w);
}

int apiwire_event_fd(const struct apiwire *w)
{
	return api_event_fd(w->api);
}

static void reply(struct apiwire *w, uint64_t id, int status, char *json)
{
	if (w->nreplies == w->capreplies) {
		w->capreplies = w->capreplies ? w->capreplies * 2 : 16;
		w->replies = xreallocarray(w->replies, w->capreplies, sizeof *w->replies);
	}
	w->replies[w->nreplies++] = (struct reply){ .id = id, .status = status, .json = json };
}

static void reply_error(struct apiwire *w, uint64_t id, int status, const char *msg)
{
	reply(w, id, status, api_json_error(msg));
}

static void actor_of(const struct api_req *r, char *dst, size_t n)
{
	snprintf(dst, n, "api:%s", r->token_name[0] ? r->token_name : "?");
}

/* One CP command (stop, resume, revoke): 202, 404 unknown CP, 409 refused. */
static void cp_command(struct central *c, struct apiwire *w, const struct api_req *r, enum core_cmd cmd,
		       double now)
{
	char actor[80], err[EVC_ERR_LEN] = "";
	actor_of(r, actor, sizeof actor);
	if (core_cp_find(c->core, r->cp_id) == NULL) {
		reply_error(w, r->id, 404, "unknown CP");
		return;
	}
	if (c->readonly) {
		reply_error(w, r->id, 409, "read-only: commands are disabled by --readonly");
		return;
	}
	if (core_command_as(c->core, cmd, r->cp_id, actor, r->source_ip, now, &c->fx, err) == -1)
		reply_error(w, r->id, 409, err[0] ? err : "refused");
	else
		reply(w, r->id, 202, xstrdup("{\"sent\":true}"));
}

/* stop-all / resume-all: each CP on its own, so the answer says which. */
static void all_command(struct central *c, struct apiwire *w, const struct api_req *r, enum core_cmd cmd,
			double now)
{
	char actor[80];
	actor_of(r, actor, sizeof actor);
	json_t *sent = json_array(), *failed = json_array();
	for (size_t i = 0; i < core_cp_count(c->core); i++) {
		const struct core_cp *cp = core_cp_at(c->core, i);
		char err[EVC_ERR_LEN] = "";
		int rc = -1;
		if (c->readonly)
			snprintf(err, sizeof err, "read-only: commands are disabled by --readonly");
		else
			rc = core_command_as(c->core, cmd, cp->id, actor, r->source_ip, now, &c->fx, err);
		/* cp may have moved in the core's array: use the id copied in
		 * the answer only */
		cp = core_cp_at(c->core, i);
		if (rc == 0) {
			json_array_append_new(sent, json_string(cp->id));
		} else {
			json_t *f = json_object();
			json_object_set_new(f, "id", json_string(cp->id));
			json_object_set_new(f, "error", json_string(err[0] ? err : "refused"));
			json_array_append_new(failed, f);
		}
	}
	json_t *o = json_object();
	json_object_set_new(o, "sent", sent);
	json_object_set_new(o, "failed", failed);
	reply(w, r->id, 202, api_json_dump(o));
}

/* The CPs whose location names city (evcharging(7) WEATHER). */
static json_t *city_cps(const struct core *core, const char *city)
{
	json_t *a = json_array();
	for (size_t i = 0; i < core_cp_count(core); i++) {
		const struct core_cp *cp = core_cp_at(core, i);
		if (core_location_names_city(cp->location, city))
			json_array_append_new(a, json_string(cp->id));
	}
	return a;
}

static void weather_reading(struct central *c, struct apiwire *w, const struct api_req *r, double now)
{
	char err[EVC_ERR_LEN] = "";
	int alert = 0;
	/* Readings come from the weather office: the audit rows of what they
	 * cause name it (actor weather), the token is on the request's own
	 * log line. */
	if (core_on_weather(c->core, r->city, r->has_error, r->value, r->error, "weather", r->source_ip, now, &c->fx,
			    &alert, err) == -1) {
		reply_error(w, r->id, 400, err[0] ? err : "reading refused");
		return;
	}
	json_t *o = json_object();
	json_object_set_new(o, "alert", json_boolean(alert));
	/* the CPs the city's alert holds: none when it is not alerted */
	json_object_set_new(o, "cps", alert ? city_cps(c->core, r->city) : json_array());
	reply(w, r->id, 200, api_json_dump(o));
	w->weather_changed = 1;
	w->dirty = 1;
}

static void set_threshold(struct central *c, struct apiwire *w, const struct api_req *r, double now)
{
	char actor[80], err[EVC_ERR_LEN] = "";
	actor_of(r, actor, sizeof actor);
	if (c->readonly) {
		reply_error(w, r->id, 409, "read-only: commands are disabled by --readonly");
		return;
	}
	if (core_set_weather_threshold(c->core, r->value, actor, r->source_ip, now, &c->fx, err) == -1) {
		reply_error(w, r->id, 400, err[0] ? err : "threshold refused");
		return;
	}
	json_t *o = json_object();
	json_object_set_new(o, "threshold", api_json_real(core_weather_threshold(c->core)));
	reply(w, r->id, 200, api_json_dump(o));
	w->weather_changed = 1;
	w->dirty = 1;
}

void apiwire_take(struct central *c, struct apiwire *w)
{
	size_t n = api_drain(w->api, w->req, DRAIN_MAX);
	for (size_t i = 0; i < n; i++) {
		const struct api_req *r = &w->req[i];
		double now = clock_wall();
		char actor[80];
		switch (r->kind) {
		case API_REQ_STOP: cp_command(c, w, r, CORE_CMD_STOP, now); break;
		case API_REQ_RESUME: cp_command(c, w, r, CORE_CMD_RESUME, now); break;
		case API_REQ_REVOKE: cp_command(c, w, r, CORE_CMD_REVOKE, now); break;
		case API_REQ_STOP_ALL: all_command(c, w, r, CORE_CMD_STOP, now); break;
		case API_REQ_RESUME_ALL: all_command(c, w, r, CORE_CMD_RESUME, now); break;
		case API_REQ_SET_THRESHOLD: set_threshold(c, w, r, now); break;
		case API_REQ_WEATHER_READING: weather_reading(c, w, r, now); break;
		case API_REQ_DENIED:
			/* evcharging(7) API: every denial audited; detail is the
			 * handler's (method, path, status), never a token. */
			actor_of(r, actor, sizeof actor);
			core_fx_audit(&c->fx, now, r->token_name[0] ? actor : "api", r->source_ip, "API_DENIED",
				      r->cp_id[0] ? r->cp_id : NULL, "%s", r->detail);
			break;
		}
	}
}

static json_t *audit_json(const struct core_fx *x)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_null()); /* the row's id is SQLite's, known after the insert */
	json_object_set_new(o, "ts", api_json_time(x->ts));
	json_object_set_new(o, "actor", json_string(x->u.audit.actor));
	json_object_set_new(o, "source_ip", x->u.audit.source_ip[0] ? json_string(x->u.audit.source_ip) : json_null());
	json_object_set_new(o, "action", json_string(x->u.audit.action));
	json_object_set_new(o, "cp_id", x->u.audit.cp_id[0] ? json_string(x->u.audit.cp_id) : json_null());
	json_t *d = json_string(x->u.audit.detail);
	json_object_set_new(o, "detail", d ? d : json_string(""));
	return o;
}

static json_t *request_json(const struct core_fx *x)
{
	json_t *o = json_object();
	json_object_set_new(o, "ts", api_json_time(x->ts));
	json_object_set_new(o, "driver_id", json_string(x->u.request.user_id));
	json_object_set_new(o, "cp_id", json_string(x->u.request.cp_id));
	json_object_set_new(o, "request_id", json_string(x->u.request.request_id));
	json_object_set_new(o, "session_id",
			    x->u.request.session_id[0] ? json_string(x->u.request.session_id) : json_null());
	json_t *out = json_string(x->u.request.outcome);
	json_object_set_new(o, "outcome", out ? out : json_string("?"));
	return o;
}

static void mark_changed(struct apiwire *w, const char *cp_id)
{
	if (hmap_sget(&w->changed, cp_id) != NULL)
		return;
	char *k = xstrdup(cp_id);
	hmap_sput(&w->changed, k, k);
}

void apiwire_on_effects(struct apiwire *w, const struct core_fxlist *fx)
{
	for (size_t i = 0; i < w->nreplies; i++) {
		api_reply(w->api, w->replies[i].id, w->replies[i].status, w->replies[i].json);
		free(w->replies[i].json);
	}
	w->nreplies = 0;
	for (size_t i = 0; i < fx->n; i++) {
		const struct core_fx *x = &fx->v[i];
		switch (x->kind) {
		case CORE_FX_SCREEN:
			if (x->u.screen.cp_id[0] == '\0')
				w->weather_changed = 1; /* the weather line changed */
			else
				mark_changed(w, x->u.screen.cp_id);
			w->dirty = 1;
			break;
		case CORE_FX_REQUEST: {
			const char *o = x->u.request.outcome;
			if (strncmp(o, "AUTH_OK", 7) == 0)
				w->m.driver_authorised++;
			else if (strncmp(o, "AUTH_DENIED", 11) == 0)
				w->m.driver_denied++;
			char *j = api_json_dump(request_json(x));
			api_notify_line(w->api, "request", j);
			free(j);
			break;
		}
		case CORE_FX_AUDIT: {
			char *j = api_json_dump(audit_json(x));
			api_notify_line(w->api, "audit", j);
			free(j);
			if (strncmp(x->u.audit.action, "WEATHER_", 8) == 0)
				w->weather_changed = 1;
			break;
		}
		case CORE_FX_STORE_CP:
			w->dirty = 1; /* a CP added or changed (registry, --add-cp) */
			break;
		default:
			break;
		}
	}
}

void apiwire_observe_commit(struct apiwire *w, double seconds)
{
	api_metrics_observe_commit(&w->m, seconds);
}

static double num_or(double d, double dflt)
{
	return isfinite(d) ? d : dflt;
}

/* The weather of the core as GET /api/v1/weather's body (caller frees). */
static char *apiwire_weather_json(const struct core *core)
{
	json_t *o = json_object();
	json_object_set_new(o, "threshold", api_json_real(core_weather_threshold(core)));
	json_t *cities = json_array();
	for (size_t i = 0; i < core_weather_count(core); i++) {
		const struct core_weather_city *wc = core_weather_at(core, i);
		json_t *j = json_object();
		json_object_set_new(j, "city", json_string(wc->city));
		json_object_set_new(j, "temperature", wc->has_temp ? api_json_real(wc->temp) : json_null());
		json_object_set_new(j, "at", api_json_time(wc->at));
		json_object_set_new(j, "alert", json_boolean(wc->alert));
		json_object_set_new(j, "stale", json_boolean(core_weather_stale(core, wc)));
		json_t *e = wc->error[0] ? json_string(wc->error) : json_null();
		json_object_set_new(j, "error", e ? e : json_string("?"));
		json_object_set_new(j, "cps", city_cps(core, wc->city));
		json_array_append_new(cities, j);
	}
	json_object_set_new(o, "cities", cities);
	return api_json_dump(o);
}

void apiwire_weather_line(const struct core *core, char *dst, size_t n)
{
	size_t len = 0;
	dst[0] = '\0';
	size_t nc = core_weather_count(core);
	if (nc == 0 || n == 0)
		return;
	int w = snprintf(dst, n, "Weather (below %.1f C stops):", num_or(core_weather_threshold(core), 0));
	len = w > 0 && (size_t)w < n ? (size_t)w : n - 1;
	for (size_t i = 0; i < nc && len + 1 < n; i++) {
		const struct core_weather_city *wc = core_weather_at(core, i);
		char t[32];
		if (wc->has_temp)
			snprintf(t, sizeof t, "%.1f C", wc->temp);
		else
			snprintf(t, sizeof t, "?");
		w = snprintf(dst + len, n - len, "  %s %s%s%s%s", wc->city, t, wc->alert ? " ALERT" : "",
			     wc->error[0] ? " (error)" : "", core_weather_stale(core, wc) ? " (stale)" : "");
		if (w < 0)
			break;
		len += (size_t)w < n - len ? (size_t)w : n - len - 1;
	}
}

static void fill_metrics(struct central *c, struct apiwire *w)
{
	w->m.links_tls = w->m.links_plain = w->m.open_sessions = 0;
	for (size_t i = 0; i < core_cp_count(c->core); i++) {
		const struct core_cp *cp = core_cp_at(c->core, i);
		if (cp->link_up) {
			if (cp->tls)
				w->m.links_tls++;
			else
				w->m.links_plain++;
		}
		if (cp->session != NULL)
			w->m.open_sessions++;
	}
	w->m.telemetry_accepted = c->status.telemetry_accepted;
	w->m.telemetry_rejected = c->status.telemetry_rejected;
	w->m.kafka_up = c->status.kafka_up;
}

void apiwire_refresh(struct central *c, struct apiwire *w, double wall, double mono)
{
	if (mono < w->next_publish && !(w->dirty && mono - w->last_publish >= PUBLISH_MIN))
		return;
	struct api_snapshot *s = api_snapshot_new(0);
	free(s->cps);
	s->cps = NULL;
	size_t cap = 0;
	s->ncps = view_all(c->core, &s->cps, &cap, NULL);
	s->weather_json = apiwire_weather_json(c->core);
	/* the stream's weather event is the same body: copied before the
	 * snapshot is handed over */
	char *weather_event = w->weather_changed ? xstrdup(s->weather_json) : NULL;
	fill_metrics(c, w);
	s->metrics = w->m;
	s->at = wall;
	/* Publish first, then tell the streams (api.h: a stream opened
	 * between the two sees a change twice, never not at all). */
	api_publish(w->api, s);
	void *v;
	for (size_t i = 0; (v = hmap_next(&w->changed, &i)) != NULL;) {
		const struct core_cp *cp = core_cp_find(c->core, v);
		if (cp != NULL) {
			struct cp_view cv;
			view_cp(cp, &cv);
			api_notify_cp(w->api, &cv);
		}
		free(v);
	}
	hmap_clear(&w->changed);
	if (weather_event != NULL) {
		api_notify_line(w->api, "weather", weather_event);
		free(weather_event);
		w->weather_changed = 0;
	}
	w->dirty = 0;
	w->last_publish = mono;
	w->next_publish = mono + PUBLISH_MAX;
}
