#include <stdio.h>
#include <string.h>

#include "evc/xalloc.h"
#include "src/central/view.h"

void view_cp(const struct core_cp *cp, struct cp_view *v)
{
	xstrlcpy(v->id, cp->id, sizeof v->id);
	xstrlcpy(v->location, cp->location, sizeof v->location);
	v->price = cp->price;
	v->state = cp->state;
	v->link = !cp->link_up ? CP_LINK_DOWN : cp->tls ? CP_LINK_TLS : CP_LINK_PLAIN;
	v->stop_pending = cp->stop_pending;
	v->resume_pending = cp->resume_pending;
	v->since = cp->state_since;
	const struct core_session *s = cp->session;
	if (s != NULL) {
		xstrlcpy(v->driver_id, s->driver_id, sizeof v->driver_id);
		xstrlcpy(v->session_id, s->id, sizeof v->session_id);
		v->kw = s->kw;
		v->kwh = s->kwh;
		v->importe = s->importe;
		v->session_started = s->started_at;
	} else {
		v->driver_id[0] = v->session_id[0] = '\0';
		v->kw = v->kwh = v->importe = v->session_started = 0;
	}
	/* Why it is out of service, the strongest reason first: "Keys
	 * revoked" > "Weather alert" > the rest (evcharging(7) RULES,
	 * Weather). */
	if (cp->revoked && cp->state == CP_FUERA_DE_SERVICIO)
		xstrlcpy(v->caption, "Keys revoked", sizeof v->caption);
	else if (cp->weather_stop && cp->state == CP_FUERA_DE_SERVICIO)
		xstrlcpy(v->caption, "Weather alert", sizeof v->caption);
	else if (cp->state == CP_RESERVADO && s != NULL)
		snprintf(v->caption, sizeof v->caption, "Reserved for %.40s", s->driver_id);
	else
		xstrlcpy(v->caption, cp_state_label(cp->state), sizeof v->caption);
}

size_t view_all(const struct core *c, struct cp_view **arr, size_t *cap, size_t counts[CP_STATE_COUNT])
{
	size_t n = core_cp_count(c);
	if (*cap < n) {
		*cap = n + n / 2 + 16;
		*arr = xreallocarray(*arr, *cap, sizeof **arr);
	}
	if (counts != NULL)
		memset(counts, 0, CP_STATE_COUNT * sizeof *counts);
	for (size_t i = 0; i < n; i++) {
		view_cp(core_cp_at(c, i), &(*arr)[i]);
		if (counts != NULL)
			counts[(*arr)[i].state]++;
	}
	return n;
}
