#include <stdint.h>
#include <stdlib.h>

#include <systemd/sd-daemon.h>

#include "evc/notify.h"

static int notify_on(void)
{
	const char *s = getenv("NOTIFY_SOCKET");
	return s != NULL && *s != '\0';
}

void notify_state(const char *state)
{
	if (notify_on())
		sd_notify(0, state);
}

void notify_watchdog(double mono)
{
	static int checked;
	static double every, last;
	if (!checked) {
		uint64_t usec = 0;
		checked = 1;
		if (notify_on() && sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
			every = (double)usec / 2e6;
	}
	if (every > 0 && mono - last >= every) {
		sd_notify(0, "WATCHDOG=1");
		last = mono;
	}
}
