#include <math.h>
#include <stdio.h>
#include <time.h>

#include "evc/clock.h"

double clock_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double clock_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int clock_ms_until(double deadline, int cap_ms)
{
	if (deadline <= 0)
		return cap_ms;
	double ms = ceil((deadline - clock_mono()) * 1000.0);
	if (ms < 0)
		return 0;
	if (ms > cap_ms)
		return cap_ms;
	return (int)ms;
}

void clock_format(double wall, char *buf, unsigned long n)
{
	time_t t = (time_t)wall;
	struct tm tm;
	char base[32];
	localtime_r(&t, &tm);
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	int ms = (int)((wall - (double)t) * 1000.0);
	if (ms < 0)
		ms = 0;
	if (ms > 999)
		ms = 999;
	snprintf(buf, n, "%s.%03d", base, ms);
}
