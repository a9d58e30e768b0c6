/* Central's control socket (EV_Central(1) CONTROL SOCKET): a Unix-domain
 * socket, mode 0600, served from the main loop. Each client sends request
 * lines and reads one JSON answer per line (src/central/ctlproto.h);
 * attached clients (EV_Central attach) also get the panel's state as a
 * stream. Non-blocking throughout, with bounded buffers per client: a slow
 * or stuck client loses stream lines (and gets a full picture again once it
 * reads), it never holds up the loop. Main thread only. */
#ifndef EVC_CENTRAL_CTL_H
#define EVC_CENTRAL_CTL_H
#include <poll.h>

#include "evc/err.h"
#include "src/central/core.h"

#define CTL_CLIENTS_MAX 16
#define CTL_NFDS (1 + CTL_CLIENTS_MAX)

struct central;
struct ctl;

/* Listen on path. A socket file nobody answers on (a Central that died)
 * is replaced; one that answers is refused, as is a path too long for a
 * Unix socket. NULL with err. Caller frees with ctl_free, which removes the
 * socket file. */
struct ctl *ctl_new(const char *path, char err[EVC_ERR_LEN]);
/* Its poll entries (unused ones get fd -1). */
void ctl_prepare(struct ctl *t, struct pollfd pfd[CTL_NFDS]);
/* After poll: accept, read and answer requests, write what waits. */
void ctl_run(struct ctl *t, struct central *c, const struct pollfd pfd[CTL_NFDS]);
/* A turn's effects, for the attached clients' log and request panes. */
void ctl_on_effects(struct ctl *t, const struct core_fxlist *fx);
/* Send the attached clients what changed (at most ten times a second). */
void ctl_refresh(struct ctl *t, struct central *c, double now);
/* Longest the loop may sleep before ctl_refresh must run again (ms). */
int ctl_timeout_ms(const struct ctl *t);
/* Clients connected now, and how many of them are attached. */
void ctl_counts(const struct ctl *t, int *clients, int *attached);
/* Attached clients get {"t":"bye","reason":reason}; everything closes and
 * the socket file goes. NULL is fine. */
void ctl_free(struct ctl *t, const char *reason);

/* An audit_log row with actor operator:ctl, in the turn's transaction, for
 * what the socket changes besides the core's commands (which the core
 * audits itself): LOG_LEVEL, OPERATOR_ATTACH, OPERATOR_DETACH,
 * CENTRAL_STOP. cp_id "" when about no CP. */
void ctl_audit(struct central *c, const char *action, const char *cp_id, const char *detail);

#endif
