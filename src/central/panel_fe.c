#include <stdlib.h>
#include <string.h>

#include "evc/log.h"
#include "evc/xalloc.h"
#include "src/central/history.h"
#include "src/central/panel_fe.h"
#include "src/central/view.h"
#include "ui/panel.h"

/* The panel redraws at most ten times a second: the view is rebuilt no
 * more often than that. */
#define VIEW_GAP 0.1

struct panel_fe {
	struct frontend fe;
	struct panel *p;
	struct panel_view v;
	struct cp_view *cps;
	size_t cap;
	int stale;         /* the core changed since the view was built */
	double built_at;
	struct history *hist; /* the views' read-only connection; NULL: none */
};

static void rebuild(struct panel_fe *pf, double now)
{
	const struct central_status *st = pf->fe.status;
	struct panel_status ps;
	memset(&ps, 0, sizeof ps);
	xstrlcpy(ps.listen, st->listen, sizeof ps.listen);
	xstrlcpy(ps.kafka, st->kafka, sizeof ps.kafka);
	xstrlcpy(ps.db, st->db, sizeof ps.db);
	ps.kafka_up = st->kafka_up;
	xstrlcpy(ps.kafka_reason, st->kafka_reason, sizeof ps.kafka_reason);
	ps.links = st->links;
	xstrlcpy(ps.weather, st->weather, sizeof ps.weather);
	if (memcmp(&ps, &pf->v.status, sizeof ps) != 0) {
		pf->v.status = ps;
		pf->v.rev++;
	}
	if (!pf->stale || (now - pf->built_at < VIEW_GAP && now >= pf->built_at))
		return;
	pf->v.ncps = view_all(pf->fe.core, &pf->cps, &pf->cap, pf->v.counts);
	pf->v.cps = pf->cps;
	pf->v.rev++;
	pf->stale = 0;
	pf->built_at = now;
}

static int pf_input_fd(struct frontend *fe)
{
	struct panel_fe *pf = fe->priv;
	return panel_fd(pf->p);
}

static int pf_on_input(struct frontend *fe)
{
	struct panel_fe *pf = fe->priv;
	return panel_input(pf->p, &pf->v);
}

static void pf_on_effects(struct frontend *fe, const struct core_fxlist *fx)
{
	struct panel_fe *pf = fe->priv;
	for (size_t i = 0; i < fx->n; i++) {
		const struct core_fx *f = &fx->v[i];
		switch (f->kind) {
		case CORE_FX_LOG:
			panel_log(pf->p, f->ts, f->u.log.level, f->u.log.tag, f->u.log.text);
			break;
		case CORE_FX_REQUEST:
			panel_request(pf->p, f->ts, f->u.request.user_id, f->u.request.cp_id, f->u.request.outcome);
			break;
		case CORE_FX_SCREEN:
		case CORE_FX_STATUS:
		case CORE_FX_STORE_CP:
		case CORE_FX_SEND: /* a command sent: the card says "stop sent..." */
			pf->stale = 1;
			break;
		default:
			break;
		}
	}
}

static void pf_refresh(struct frontend *fe, double now)
{
	struct panel_fe *pf = fe->priv;
	rebuild(pf, now);
	panel_refresh(pf->p, &pf->v, now);
}

static int pf_timeout_ms(struct frontend *fe)
{
	struct panel_fe *pf = fe->priv;
	int ms = panel_timeout_ms(pf->p);
	if (pf->stale && ms > (int)(VIEW_GAP * 1000))
		ms = (int)(VIEW_GAP * 1000);
	return ms;
}

static void pf_free(struct frontend *fe)
{
	if (fe == NULL)
		return;
	struct panel_fe *pf = fe->priv;
	panel_close(pf->p);
	history_close(pf->hist);
	free(pf->cps);
	free(pf);
}

static const struct frontend_ops panel_fe_ops = {
	.name = "panel",
	.input_fd = pf_input_fd,
	.on_input = pf_on_input,
	.on_effects = pf_on_effects,
	.refresh = pf_refresh,
	.timeout_ms = pf_timeout_ms,
	.free = pf_free,
};

struct frontend *panel_fe_new(const struct core *core, const struct central_status *st,
			      int (*exec)(void *, const char *, char[EVC_ERR_LEN]), void *exec_arg, int readonly,
			      int no_color, char err[EVC_ERR_LEN])
{
	struct panel *p = panel_open(exec, exec_arg, readonly, no_color, err);
	if (p == NULL)
		return NULL;
	struct panel_fe *pf = xcalloc(1, sizeof *pf);
	pf->p = p;
	pf->fe.ops = &panel_fe_ops;
	pf->fe.core = core;
	pf->fe.status = st;
	pf->fe.exec = exec;
	pf->fe.exec_arg = exec_arg;
	pf->fe.readonly = readonly;
	pf->fe.priv = pf;
	pf->stale = 1;
	pf->built_at = -1;
	/* the store has made the file (and its schema) by now */
	char herr[EVC_ERR_LEN];
	pf->hist = history_open(st->db, herr);
	if (pf->hist != NULL)
		pf->v.src = history_source(pf->hist);
	else
		log_warn("panel: the views have no stored history: %s", herr);
	rebuild(pf, 0);
	return &pf->fe;
}

void panel_fe_set_mouse(struct frontend *fe, int on)
{
	struct panel_fe *pf = fe->priv;
	panel_set_mouse(pf->p, on);
}
