/* The charging-point states of evcharging(7) STATES AND COLOURS: one vocabulary for
 * Central's core, the Kafka messages and every screen. */
#ifndef EVC_STATE_H
#define EVC_STATE_H

enum cp_state {
	CP_DESCONECTADO,
	CP_ACTIVADO,
	CP_RESERVADO,
	CP_SUMINISTRANDO,
	CP_AVERIADO,
	CP_FUERA_DE_SERVICIO,
	CP_STATE_COUNT
};

/* The exact strings of evcharging(7) STATES AND COLOURS ("DESCONECTADO", ...); "?" for a
 * value out of range. */
const char *cp_state_name(enum cp_state st);
/* Parse one of those strings; -1 if unknown (or NULL). */
int cp_state_parse(const char *s);
/* What the state means to a person ("Available", "Out of Order", ...). */
const char *cp_state_label(enum cp_state st);

#endif
