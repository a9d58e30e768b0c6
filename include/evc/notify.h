/* systemd's readiness and watchdog notifications (sd_notify(3) through
 * libsystemd) for every program that runs as a Type=notify service. Each
 * does nothing unless NOTIFY_SOCKET is set. */
#ifndef EVC_NOTIFY_H
#define EVC_NOTIFY_H

/* "READY=1", "STOPPING=1", "STATUS=...". */
void notify_state(const char *state);
/* Call at least once a second from the main loop: WATCHDOG=1 every half
 * of the unit's WatchdogSec (WATCHDOG_USEC), when it has one. mono =
 * clock_mono(). */
void notify_watchdog(double mono);

#endif
