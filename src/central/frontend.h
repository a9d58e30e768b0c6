/* The seam between Central's main loop and what the operator sees: the
 * headless line console (console.c) or the ncurses panel (panel_fe.c over
 * ui/panel.c). Both
 * run on the main thread only; they read the core, never change it, and
 * send operator commands back through exec(). */
#ifndef EVC_CENTRAL_FRONTEND_H
#define EVC_CENTRAL_FRONTEND_H
#include <stddef.h>

#include "evc/err.h"
#include "src/central/core.h"

/* What the header / status line shows. Owned by main; updated in place. */
struct central_status {
	char listen[96];       /* "0.0.0.0:7000" */
	char kafka[96];        /* bootstrap address */
	char db[256];          /* database path */
	int kafka_up;          /* 1 reachable, 0 unreachable */
	char kafka_reason[128];/* why unreachable */
	size_t links;          /* open CP link connections */
	unsigned long kafka_in, kafka_bad; /* messages consumed / not decoded */
	unsigned long telemetry_accepted, telemetry_rejected; /* cp_telemetry applied / refused by its envelope */
	double started;        /* wall clock */
	char weather[256];     /* the header's weather line (evcharging(7) WEATHER), "" = no reading */
};

struct frontend;

struct frontend_ops {
	const char *name;
	/* fd the loop should poll for input (stdin), or -1. */
	int (*input_fd)(struct frontend *fe);
	/* Input is readable: read it and act (commands via fe->exec).
	 * Returns 1 when the operator asked to quit (after confirming), 0 on EOF
	 * of a non-interactive stdin that should NOT quit, else 0. */
	int (*on_input)(struct frontend *fe);
	/* The effects of one event batch, after they were applied and stored:
	 * CORE_FX_LOG lines, CORE_FX_SCREEN changes, CORE_FX_REQUEST outcomes. */
	void (*on_effects)(struct frontend *fe, const struct core_fxlist *fx);
	/* Called on every loop turn: redraw if something changed or the clock
	 * ticked (at most 10 redraws a second). now = wall clock. */
	void (*refresh)(struct frontend *fe, double now);
	/* Longest the loop may sleep before refresh must run again (ms). */
	int (*timeout_ms)(struct frontend *fe);
	void (*free)(struct frontend *fe);
};

struct frontend {
	const struct frontend_ops *ops;
	const struct core *core;
	const struct central_status *status;
	/* Run one operator command line ("P MAD-01", "PT", ...). Returns 0 if
	 * sent, -1 if refused at once, 1 for a quit command; msg says what
	 * happened, for the screen. */
	int (*exec)(void *arg, const char *line, char msg[EVC_ERR_LEN]);
	void *exec_arg;
	int readonly;          /* --readonly: refuse every command */
	void *priv;
};

#endif
