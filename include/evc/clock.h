/* Time in seconds as doubles: monotonic for timeouts, wall for the wire. */
#ifndef EVC_CLOCK_H
#define EVC_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: use for every timeout and deadline. */
double clock_mono(void);
/* Seconds since the epoch (CLOCK_REALTIME): use for timestamps on the wire. */
double clock_wall(void);
/* Milliseconds from now until deadline (monotonic), clamped to [0, cap_ms];
 * handy as a poll() timeout. A deadline <= 0 means "none": returns cap_ms. */
int clock_ms_until(double deadline, int cap_ms);
/* "2026-11-28T06:19:08.123" (local time) into buf of at least 24 bytes: the
 * one timestamp of every log and event line of every program. */
void clock_format(double wall, char *buf, unsigned long n);

#endif
