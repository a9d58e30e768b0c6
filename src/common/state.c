#include <string.h>

#include "evc/cpview.h"
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

static const char *const labels[CP_STATE_COUNT] = {
	[CP_DESCONECTADO] = "Disconnected",
	[CP_ACTIVADO] = "Available",
	[CP_RESERVADO] = "Reserved",
	[CP_SUMINISTRANDO] = "Charging",
	[CP_AVERIADO] = "Broken down",
	[CP_FUERA_DE_SERVICIO] = "Out of Order",
};

const char *cp_state_label(enum cp_state st)
{
	return (unsigned)st < CP_STATE_COUNT ? labels[st] : "?";
}

const char *cp_link_name(enum cp_link_kind k)
{
	switch (k) {
	case CP_LINK_PLAIN: return "plain";
	case CP_LINK_TLS: return "tls";
	case CP_LINK_DOWN: break;
	}
	return "down";
}
