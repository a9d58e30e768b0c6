/* What a screen, the API or the web page shows of one charging point: a
 * plain copy of the facts, filled in by Central's main loop (the only owner
 * of the state) and read by the panel, the API threads and the page. No
 * pointers, so a copy can cross threads. */
#ifndef EVC_CPVIEW_H
#define EVC_CPVIEW_H
#include "evc/msg.h"
#include "evc/state.h"

enum cp_link_kind { CP_LINK_DOWN = 0, CP_LINK_PLAIN, CP_LINK_TLS };
/* "down", "plain", "tls" (evcharging(7) SECURITY). */
const char *cp_link_name(enum cp_link_kind k);

#define CP_CAPTION_MAX 64

struct cp_view {
	char id[MSG_CP_ID_MAX + 1];
	char location[MSG_LOCATION_MAX + 1];
	double price;                   /* EUR/kWh */
	enum cp_state state;
	/* The card's caption: cp_state_label(state), or why the CP is out of
	 * service ("Weather alert", "Keys revoked", "Reserved for 101"...). */
	char caption[CP_CAPTION_MAX];
	enum cp_link_kind link;
	int stop_pending, resume_pending; /* an operator command awaits its ACK */
	char driver_id[MSG_ID_MAX + 1]; /* open session's driver, "" if none */
	char session_id[MSG_ID_MAX + 1];
	double kw, kwh, importe;        /* the open session's figures, 0 if none */
	double session_started;         /* wall clock, 0 if not charging */
	double since;                   /* wall clock: when the state last changed */
};

#endif
