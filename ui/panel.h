/* The operator's panel: EV_Central's live ncurses colour grid.
 * A frontend (src/central/frontend.h) like the headless console: it runs on
 * the main thread, reads the core, and sends operator commands through
 * exec(). */
#ifndef EVC_UI_PANEL_H
#define EVC_UI_PANEL_H

#include "src/central/frontend.h"

/* Take over the terminal (stdin/stdout) and show the panel. core and st are
 * borrowed and must outlive the panel. While the panel lives, log_msg()
 * lines (from any thread) go to its log pane. readonly refuses every
 * command; no_color (or a non-empty NO_COLOR) gives a monochrome panel.
 * Returns NULL with err filled if the terminal cannot be used.
 * Caller frees with fe->ops->free(fe), which restores the terminal. */
struct frontend *panel_new(const struct core *core, const struct central_status *st,
			   int (*exec)(void *, const char *, char[256]), void *exec_arg,
			   int readonly, int no_color, char err[256]);

#endif
