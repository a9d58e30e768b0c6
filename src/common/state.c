#include <string.h>

#include "evc/state.h"

static const char *const state_names[CP_STATE_COUNT] = {
	[CP_DESCONECTADO] = "DESCONECTADO",
	[CP_ACTIVADO] = "ACTIVADO",
	[CP_RESERVADO] = "RESERVADO",
	[CP_SUMINISTRANDO] = "SUMINISTRANDO",
	[CP_AVERIADO] = "AVERIADO",
	[CP_FUERA_DE_SERVICIO] = "FUERA_DE_SERVICIO",
};

const char *cp_state_name(enum cp_state st)
{
	if ((int)st < 0 || st >= CP_STATE_COUNT)
		return "?";
	return state_names[st];
}

int cp_state_parse(const char *s)
{
	if (!s)
		return -1;
	for (int i = 0; i < CP_STATE_COUNT; i++)
		if (strcmp(s, state_names[i]) == 0)
			return i;
	return -1;
}
