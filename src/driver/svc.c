/* Service sequencing of EV_Driver (see svc.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/clock.h"
#include "evc/money.h"
#include "evc/xalloc.h"
#include "src/driver/svc.h"

const char *svc_state_name(enum svc_state st)
{
	switch (st) {
	case SVC_IDLE: return "IDLE";
	case SVC_WAITING: return "WAITING";
	case SVC_AUTHORISED: return "AUTHORISED";
	case SVC_CHARGING: return "CHARGING";
	}
	return "?";
}

static void emitf(struct svc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emitf(struct svc *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->last_event, sizeof s->last_event, fmt, ap);
	va_end(ap);
	if (s->emit != NULL)
		s->emit(s->emit_arg, s->last_event);
}

/* Free text from Central goes inside "..." with quotes, backslashes and
 * control bytes escaped, so one event stays one line and splits cleanly. */
static void quoted(char *dst, size_t n, const char *src)
{
	size_t j = 0;
	if (n < 3) {
		if (n > 0)
			dst[0] = '\0';
		return;
	}
	dst[j++] = '"';
	for (size_t i = 0; src[i] != '\0' && j + 3 < n; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '"' || c == '\\') {
			dst[j++] = '\\';
			dst[j++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			dst[j++] = ' ';
		} else {
			dst[j++] = (char)c;
		}
	}
	dst[j++] = '"';
	dst[j] = '\0';
}

void svc_init(struct svc *s, const struct svc_cfg *cfg, svc_emit_fn emit, void *emit_arg)
{
	memset(s, 0, sizeof *s);
	xstrlcpy(s->user_id, cfg->user_id, sizeof s->user_id);
	xstrlcpy(s->rid_base, cfg->rid_base, sizeof s->rid_base);
	s->answer_timeout = cfg->answer_timeout;
	s->pause = cfg->pause;
	s->file_mode = cfg->file_mode;
	s->emit = emit;
	s->emit_arg = emit_arg;
	s->state = SVC_IDLE;
}

void svc_free(struct svc *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->queue[i]);
	free(s->queue);
	s->queue = NULL;
	s->n = s->head = s->cap = 0;
}

int svc_enqueue(struct svc *s, const char *cp, char err[EVC_ERR_LEN])
{
	if (!msg_valid_cp_id(cp)) {
		snprintf(err, EVC_ERR_LEN, "invalid CP id (letters, digits, '-' and '_', 1 to %d)", MSG_CP_ID_MAX);
		return -1;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->queue = xreallocarray(s->queue, s->cap, sizeof *s->queue);
	}
	s->queue[s->n++] = xstrdup(cp);
	if (!s->file_mode && (s->state != SVC_IDLE || !s->live))
		emitf(s, "QUEUED cp=%s position=%zu", cp, s->n - s->head);
	return 0;
}

size_t svc_pending(const struct svc *s)
{
	return s->n - s->head;
}

static void ring_add(char ring[SVC_RING][MSG_ID_MAX + 1], size_t *pos, const char *id)
{
	if (id[0] == '\0')
		return;
	xstrlcpy(ring[*pos % SVC_RING], id, MSG_ID_MAX + 1);
	*pos = *pos + 1;
}

static int ring_has(const char ring[SVC_RING][MSG_ID_MAX + 1], const char *id)
{
	if (id[0] == '\0')
		return 0;
	for (size_t i = 0; i < SVC_RING; i++)
		if (strcmp(ring[i], id) == 0)
			return 1;
	return 0;
}

/* The service ends (whatever the outcome); the next one waits the pause. */
static void end_service(struct svc *s, double now)
{
	ring_add(s->ended, &s->ended_pos, s->cur.session_id);
	ring_add(s->ended, &s->ended_pos, s->cur.request_id);
	s->state = SVC_IDLE;
	s->next_start = now + (s->file_mode ? s->pause : 0.0);
}

void svc_set_live(struct svc *s, double now)
{
	if (s->live)
		return;
	s->live = 1;
	if (s->state != SVC_IDLE)
		emitf(s, "RESUMED cp=%s session=%s state=%s kwh=%.3f importe=%.2f", s->cur.cp_id, s->cur.session_id,
		      svc_state_name(s->state), s->cur.kwh, s->cur.importe);
	/* The backlog may have been long: time since the last message about
	 * an adopted session counts from now, not from replay time. */
	s->cur.last_heard = now;
}

static double timeout_at(const struct svc *s)
{
	if (s->state == SVC_AUTHORISED) {
		double wait = s->answer_timeout > SVC_PLUG_WAIT ? s->answer_timeout : SVC_PLUG_WAIT;
		return s->cur.last_heard + wait;
	}
	return s->cur.last_heard + s->answer_timeout;
}

double svc_next_deadline(const struct svc *s)
{
	if (s->state != SVC_IDLE)
		return timeout_at(s);
	if (s->live && s->head < s->n)
		return s->next_start;
	return 0.0;
}

int svc_done(const struct svc *s)
{
	return s->file_mode && s->live && s->state == SVC_IDLE && s->head == s->n;
}

int svc_tick(struct svc *s, double now, struct svc_request *req)
{
	if (s->state != SVC_IDLE && now >= timeout_at(s)) {
		emitf(s, "TIMEOUT cp=%s request=%s session=%s state=%s after=%.0f", s->cur.cp_id,
		      s->cur.request_id[0] ? s->cur.request_id : "-", s->cur.session_id[0] ? s->cur.session_id : "-",
		      svc_state_name(s->state), now - s->cur.last_heard);
		if (!s->cur.adopted)
			s->failed++;
		/* An answer may still come; it must not be taken for the next
		 * service's, and is shown as late. */
		ring_add(s->abandoned, &s->abandoned_pos, s->cur.request_id);
		ring_add(s->abandoned, &s->abandoned_pos, s->cur.session_id);
		s->state = SVC_IDLE;
		s->next_start = now + (s->file_mode ? s->pause : 0.0);
	}
	if (s->state != SVC_IDLE || !s->live || s->head == s->n || now < s->next_start)
		return 0;
	char *cp = s->queue[s->head];
	s->queue[s->head] = NULL;
	s->head++;
	int has_ticket = s->cur.has_ticket;
	double t[5] = {s->cur.t_kwh, s->cur.t_importe, s->cur.t_price, s->cur.t_started, s->cur.t_ended};
	memset(&s->cur, 0, sizeof s->cur);
	s->cur.has_ticket = has_ticket;
	s->cur.t_kwh = t[0], s->cur.t_importe = t[1], s->cur.t_price = t[2], s->cur.t_started = t[3], s->cur.t_ended = t[4];
	xstrlcpy(s->cur.cp_id, cp, sizeof s->cur.cp_id);
	free(cp);
	snprintf(s->cur.request_id, sizeof s->cur.request_id, "%s-%lu", s->rid_base, ++s->rid_seq);
	s->cur.requested_at = now;
	s->cur.last_heard = now;
	s->state = SVC_WAITING;
	xstrlcpy(req->cp_id, s->cur.cp_id, sizeof req->cp_id);
	xstrlcpy(req->request_id, s->cur.request_id, sizeof req->request_id);
	emitf(s, "REQUEST cp=%s request=%s", req->cp_id, req->request_id);
	return 1;
}

void svc_send_failed(struct svc *s, double now, const char *reason)
{
	if (s->state == SVC_IDLE)
		return;
	char q[300];
	quoted(q, sizeof q, reason);
	emitf(s, "SEND_ERROR cp=%s request=%s reason=%s", s->cur.cp_id, s->cur.request_id, q);
	s->failed++;
	end_service(s, now);
}

/* Is m about the service in progress? */
static int is_current(const struct svc *s, const struct msg *m)
{
	if (s->state == SVC_IDLE)
		return 0;
	if (m->has_session_id && m->session_id[0] != '\0' && s->cur.session_id[0] != '\0')
		return strcmp(m->session_id, s->cur.session_id) == 0;
	if (m->has_request_id && m->request_id[0] != '\0' && s->cur.request_id[0] != '\0')
		return strcmp(m->request_id, s->cur.request_id) == 0;
	/* Central echoes request_id (above): then it alone decides, so a late
	 * answer to a timed-out request for the same CP is never taken for
	 * the new one. Another Central need not echo it: an answer about our
	 * CP while we wait for one is then taken as ours (requests start only
	 * after the backlog of older notifications has been read, so it can
	 * only be wrong for an answer to a request we already timed out). */
	if (s->state == SVC_WAITING && strcmp(m->cp_id, s->cur.cp_id) == 0) {
		if (m->has_session_id && ring_has(s->ended, m->session_id))
			return 0;
		return 1;
	}
	return 0;
}

/* Is rid one of the request ids this run made ("<rid_base>-<n>")? Central
 * echoes them, so one that is not the current request's is an answer to an
 * older request of ours, even once it has left the rings. */
static int own_request_id(const struct svc *s, const char *rid)
{
	size_t n = strlen(s->rid_base);
	if (n == 0 || strncmp(rid, s->rid_base, n) != 0 || rid[n] != '-' || rid[n + 1] == '\0')
		return 0;
	for (const char *p = rid + n + 1; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

static int is_final(enum msg_type t)
{
	return t == MSG_AUTH_DENIED || t == MSG_TICKET || t == MSG_SUPPLY_ERROR || t == MSG_SESSION_CANCELLED;
}

/* The line of one notification, with a trailing tag (" earlier=1" ...). */
static void show(struct svc *s, const struct msg *m, const char *tag)
{
	char q[300];
	const char *sid = m->session_id[0] ? m->session_id : "-";
	switch (m->type) {
	case MSG_AUTH_OK:
		quoted(q, sizeof q, m->message);
		if (tag[0] == '\0' && s->cur.requested_at > 0)
			emitf(s, "AUTH_OK cp=%s session=%s wait_ms=%.0f message=%s", m->cp_id, sid,
			      (s->cur.authorised_at - s->cur.requested_at) * 1000.0, q);
		else
			emitf(s, "AUTH_OK cp=%s session=%s%s message=%s", m->cp_id, sid, tag, q);
		break;
	case MSG_AUTH_DENIED:
		quoted(q, sizeof q, m->reason);
		emitf(s, "AUTH_DENIED cp=%s request=%s%s reason=%s", m->cp_id,
		      m->has_request_id && m->request_id[0] ? m->request_id : "-", tag, q);
		break;
	case MSG_CONSUMO_UPDATE:
		emitf(s, "CONSUMO cp=%s session=%s kw=%.2f kwh=%.3f importe=%.2f elapsed=%.0f%s", m->cp_id, sid, m->kw,
		      m->kwh, m->importe,
		      tag[0] == '\0' && s->cur.started_at > 0 ? s->cur.last_heard - s->cur.started_at : 0.0, tag);
		break;
	case MSG_TICKET:
	{
		/* The figures as the CONSUMO lines print them (kWh to 3
		 * decimals, EUR to the cent, the price as Central keeps it) and
		 * the times as every timestamp (evcharging(7) LOG LINES). */
		char price[MONEY_STR_LEN], t0[32], t1[32];
		money_price(price, sizeof price, m->price);
		clock_format(m->started_at, t0, sizeof t0);
		clock_format(m->ended_at, t1, sizeof t1);
		emitf(s, "TICKET cp=%s session=%s kwh=%.3f importe=%.2f price=%s started=%s ended=%s%s", m->cp_id, sid,
		      m->kwh, m->importe, price, t0, t1, tag);
	}
		break;
	case MSG_SUPPLY_ERROR:
		quoted(q, sizeof q, m->reason);
		emitf(s, "SUPPLY_ERROR cp=%s session=%s kwh=%.3f importe=%.2f%s reason=%s", m->cp_id, sid,
		      m->kwh_partial, m->importe_partial, tag, q);
		break;
	case MSG_SESSION_CANCELLED:
		quoted(q, sizeof q, m->reason);
		emitf(s, "SESSION_CANCELLED cp=%s session=%s%s reason=%s", m->cp_id, sid, tag, q);
		break;
	default:
		break;
	}
}

static void keep_ticket(struct svc *s, const struct msg *m)
{
	s->cur.has_ticket = 1;
	s->cur.t_kwh = m->kwh;
	s->cur.t_importe = m->importe;
	s->cur.t_price = m->price;
	s->cur.t_started = m->started_at;
	s->cur.t_ended = m->ended_at;
}

static void adopt(struct svc *s, const struct msg *m, double now)
{
	int has_ticket = s->cur.has_ticket;
	double t[5] = {s->cur.t_kwh, s->cur.t_importe, s->cur.t_price, s->cur.t_started, s->cur.t_ended};
	memset(&s->cur, 0, sizeof s->cur);
	s->cur.has_ticket = has_ticket;
	s->cur.t_kwh = t[0], s->cur.t_importe = t[1], s->cur.t_price = t[2], s->cur.t_started = t[3], s->cur.t_ended = t[4];
	xstrlcpy(s->cur.cp_id, m->cp_id, sizeof s->cur.cp_id);
	xstrlcpy(s->cur.session_id, m->session_id, sizeof s->cur.session_id);
	if (m->has_request_id)
		xstrlcpy(s->cur.request_id, m->request_id, sizeof s->cur.request_id);
	s->cur.adopted = 1;
	s->cur.last_heard = now;
	s->cur.authorised_at = now;
	s->state = SVC_AUTHORISED;
}

static void apply_current(struct svc *s, const struct msg *m, double now)
{
	const char *tag = s->cur.adopted ? " earlier=1" : "";
	s->cur.last_heard = now;
	if (m->has_session_id && m->session_id[0] != '\0' && s->cur.session_id[0] == '\0')
		xstrlcpy(s->cur.session_id, m->session_id, sizeof s->cur.session_id);
	switch (m->type) {
	case MSG_AUTH_OK:
		if (s->state == SVC_WAITING) {
			s->state = SVC_AUTHORISED;
			s->cur.authorised_at = now;
			show(s, m, tag);
		}
		break;
	case MSG_CONSUMO_UPDATE:
		if (s->state != SVC_CHARGING) {
			if (s->state == SVC_WAITING)
				s->cur.authorised_at = now;
			s->state = SVC_CHARGING;
			s->cur.started_at = now;
			emitf(s, "PLUGGED cp=%s session=%s%s", s->cur.cp_id, s->cur.session_id, tag);
		}
		s->cur.kw = m->kw;
		s->cur.kwh = m->kwh;
		s->cur.importe = m->importe;
		/* A replayed backlog would flood the log; the RESUMED line at
		 * the end of the replay gives the figures. */
		if (s->live)
			show(s, m, tag);
		break;
	case MSG_AUTH_DENIED:
		show(s, m, tag);
		if (!s->cur.adopted)
			s->denied++;
		end_service(s, now);
		break;
	case MSG_TICKET:
		keep_ticket(s, m);
		s->cur.kwh = m->kwh;
		s->cur.importe = m->importe;
		show(s, m, tag);
		if (!s->cur.adopted) {
			s->served++;
			s->kwh += m->kwh;
			s->importe += m->importe;
		}
		end_service(s, now);
		break;
	case MSG_SUPPLY_ERROR:
		s->cur.kwh = m->kwh_partial;
		s->cur.importe = m->importe_partial;
		show(s, m, tag);
		if (!s->cur.adopted)
			s->failed++;
		end_service(s, now);
		break;
	case MSG_SESSION_CANCELLED:
		show(s, m, tag);
		if (!s->cur.adopted)
			s->failed++;
		end_service(s, now);
		break;
	default:
		break;
	}
}

int svc_on_msg(struct svc *s, const struct msg *m, double now)
{
	if (strcmp(m->user_id, s->user_id) != 0)
		return 0;
	switch (m->type) {
	case MSG_AUTH_OK:
	case MSG_AUTH_DENIED:
	case MSG_CONSUMO_UPDATE:
	case MSG_TICKET:
	case MSG_SUPPLY_ERROR:
	case MSG_SESSION_CANCELLED:
		break;
	default:
		return 0; /* not a driver notification */
	}
	if (is_current(s, m)) {
		apply_current(s, m, now);
		return 1;
	}
	const char *key = m->session_id[0] ? m->session_id : (m->has_request_id ? m->request_id : "");
	/* Delivered again after a restart (after the last commit), or a
	 * duplicate from Central: it was shown already. */
	if (ring_has(s->ended, m->session_id) || (m->has_request_id && ring_has(s->ended, m->request_id)))
		return 1;
	if (ring_has(s->abandoned, m->session_id) || (m->has_request_id && ring_has(s->abandoned, m->request_id)) ||
	    (m->has_request_id && own_request_id(s, m->request_id))) {
		show(s, m, " late=1");
		if (is_final(m->type))
			ring_add(s->ended, &s->ended_pos, key);
		return 1;
	}
	if (s->state == SVC_IDLE && (m->type == MSG_AUTH_OK || m->type == MSG_CONSUMO_UPDATE) &&
	    m->session_id[0] != '\0') {
		/* A session of ours we did not start in this run (we were
		 * restarted, or the CP's menu asked for us): follow it. */
		adopt(s, m, now);
		if (m->type == MSG_AUTH_OK)
			show(s, m, " earlier=1");
		else
			apply_current(s, m, now);
		return 1;
	}
	/* An outcome of a service that ended while we were away (or of
	 * another session while we are busy with this one). */
	show(s, m, s->state == SVC_IDLE ? " earlier=1" : " other=1");
	if (is_final(m->type))
		ring_add(s->ended, &s->ended_pos, key);
	return 1;
}

void svc_summary(struct svc *s)
{
	emitf(s, "SUMMARY served=%u denied=%u failed=%u kwh=%.3f importe=%.2f", s->served, s->denied, s->failed,
	      s->kwh, s->importe);
}
