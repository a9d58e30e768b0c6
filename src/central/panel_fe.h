/* The panel (ui/panel.h) as one of Central's frontends: it fills the
 * panel's view from the core and passes the turn's log lines and request
 * outcomes on. Main thread only. */
#ifndef EVC_CENTRAL_PANEL_FE_H
#define EVC_CENTRAL_PANEL_FE_H
#include "evc/err.h"
#include "src/central/frontend.h"

/* As console_new; NULL with err if the terminal cannot be used. */
struct frontend *panel_fe_new(const struct core *core, const struct central_status *st,
			      int (*exec)(void *, const char *, char[EVC_ERR_LEN]), void *exec_arg, int readonly,
			      int no_color, char err[EVC_ERR_LEN]);

/* Mouse on the grid (on by default; --no-mouse turns it off). */
void panel_fe_set_mouse(struct frontend *fe, int on);

#endif
