/* The driver's service sequencing, as a pure state machine: it takes
 * events (a decoded driver notification, the clock) and says what to do
 * (send a request now) and what to show (one grep-friendly line per event,
 * through an emit callback). No I/O, no clock reads, no Kafka: driver.c
 * feeds it, so every rule here is unit-tested event by event.
 *
 * One service at a time: IDLE -> WAITING (request sent) -> AUTHORISED
 * (AUTH_OK) -> CHARGING (first CONSUMO_UPDATE) -> IDLE on TICKET,
 * AUTH_DENIED, SUPPLY_ERROR, SESSION_CANCELLED or a timeout. In file mode
 * the next service starts `pause` seconds after the previous one ended. */
#ifndef EVC_DRIVER_SVC_H
#define EVC_DRIVER_SVC_H
#include <stddef.h>

#include "evc/msg.h"

#define SVC_RING 64        /* ended sessions remembered, to show outcomes once */
#define SVC_PLUG_WAIT 130.0 /* s an authorised session may wait for its plug:
			     * Central cancels at 120 s, so its answer comes first */

enum svc_state { SVC_IDLE, SVC_WAITING, SVC_AUTHORISED, SVC_CHARGING };

typedef void (*svc_emit_fn)(void *arg, const char *line);

struct svc_cfg {
	const char *user_id;    /* copied */
	const char *rid_base;   /* request ids are "<rid_base>-<n>"; copied */
	double answer_timeout;  /* s without any message about the service */
	double pause;           /* s between services (file mode) */
	int file_mode;          /* 1: the queue is the services file */
};

/* The service in progress (or the last one, once IDLE). */
struct svc_supply {
	char cp_id[MSG_CP_ID_MAX + 1];
	char request_id[MSG_ID_MAX + 1];
	char session_id[MSG_ID_MAX + 1];
	int adopted;            /* found running, not requested in this run */
	double requested_at;    /* monotonic */
	double last_heard;      /* monotonic: last message about it */
	double authorised_at;   /* monotonic, 0 until AUTH_OK */
	double started_at;      /* monotonic, 0 until the first CONSUMO_UPDATE */
	double kw, kwh, importe;
	/* the last ticket (kept after the service ends, for the screen) */
	int has_ticket;
	double t_kwh, t_importe, t_price, t_started, t_ended; /* wall times */
};

struct svc {
	char user_id[MSG_ID_MAX + 1];
	char rid_base[48];
	unsigned long rid_seq;
	double answer_timeout, pause;
	int file_mode;
	char **queue;           /* owned CP ids; [head, n) still to do */
	size_t head, n, cap;
	enum svc_state state;
	struct svc_supply cur;
	double next_start;      /* monotonic; next service not before */
	int live;               /* the backlog of notifications has been read */
	unsigned served, denied, failed;
	double kwh, importe;    /* totals of the tickets of this run */
	char ended[SVC_RING][MSG_ID_MAX + 1];     /* session or request ids */
	size_t ended_pos;
	char abandoned[SVC_RING][MSG_ID_MAX + 1]; /* timed out: answers are late */
	size_t abandoned_pos;
	svc_emit_fn emit;
	void *emit_arg;
	char last_event[512];   /* the last line emitted */
};

/* The request to send, filled by svc_tick when it returns 1. */
struct svc_request {
	char cp_id[MSG_CP_ID_MAX + 1];
	char request_id[MSG_ID_MAX + 1];
};

/* Start in IDLE, not live. emit may be NULL. Caller frees with svc_free. */
void svc_init(struct svc *s, const struct svc_cfg *cfg, svc_emit_fn emit, void *emit_arg);
void svc_free(struct svc *s);
/* Add a CP to the queue (a line of the file, or `r CP`). 0, or -1 with err
 * if cp is not a valid CP id. */
int svc_enqueue(struct svc *s, const char *cp, char err[EVC_ERR_LEN]);
/* The backlog of notifications (from before this run) has been read: from
 * now on requests may go out. Announces a supply found still running. */
void svc_set_live(struct svc *s, double now);
/* Let time pass: fires timeouts, and returns 1 with *req filled when a new
 * request must be sent now (its REQUEST line already emitted). */
int svc_tick(struct svc *s, double now, struct svc_request *req);
/* The request could not be sent: the service fails with reason. */
void svc_send_failed(struct svc *s, double now, const char *reason);
/* A decoded driver_notifications message. Messages for another user are
 * ignored (the topic is shared); returns 1 if it was this driver's. One
 * that carries a request_id belongs to the current service only if it is
 * the current request's; one of an older request of ours is shown with
 * late=1. One without (another Central) is matched by session, then CP. */
int svc_on_msg(struct svc *s, const struct msg *m, double now);
/* Monotonic time of the next timer (timeout or next start); 0 if none. */
double svc_next_deadline(const struct svc *s);
/* File mode, every service done and none in progress. */
int svc_done(const struct svc *s);
/* Emit the SUMMARY line. */
void svc_summary(struct svc *s);
/* Services still waiting in the queue (not counting the current one). */
size_t svc_pending(const struct svc *s);
const char *svc_state_name(enum svc_state st);

#endif
