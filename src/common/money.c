#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "evc/money.h"

double money_round_price(double p) { return round(p * 1e4) / 1e4; }
double money_round_kwh(double kwh) { return round(kwh * 1e3) / 1e3; }
double money_amount(double kwh, double price) { return round(kwh * price * 100.0) / 100.0; }

int money_price_ok(double p)
{
	return isfinite(p) && p > 0 && p <= MONEY_PRICE_MAX;
}

int money_parse_price(const char *s, double *price, int *rounded)
{
	double v = 0, scale = 1;
	int digits = 0, dot = 0;
	if (s == NULL || strlen(s) > 32)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p >= '0' && *p <= '9') {
			if (dot) {
				scale /= 10;
				v += (*p - '0') * scale;
			} else {
				v = v * 10 + (*p - '0');
			}
			digits++;
		} else if (*p == '.' && !dot) {
			dot = 1;
		} else {
			return -1;
		}
	}
	if (!digits)
		return -1;
	double r = money_round_price(v);
	if (!money_price_ok(r))
		return -2;
	*price = r;
	if (rounded != NULL)
		*rounded = fabs(r - v) > 1e-12;
	return 0;
}

const char *money_fixed(char *buf, size_t n, double v, int dec)
{
	if (!isfinite(v)) {
		snprintf(buf, n, "?");
		return buf;
	}
	const char *sign = v < 0 ? "-" : "";
	v = fabs(v);
	uint64_t scale = 1;
	if (dec < 0)
		dec = 0;
	if (dec > 9)
		dec = 9;
	for (int i = 0; i < dec; i++)
		scale *= 10;
	if (v * (double)scale > 9e18) {
		snprintf(buf, n, "%s%.0e", sign, v);
		return buf;
	}
	uint64_t x = (uint64_t)llround(v * (double)scale);
	char frac[24] = "";
	if (dec > 0) {
		uint64_t f = x % scale;
		frac[0] = '.';
		for (int i = dec; i >= 1; i--, f /= 10)
			frac[i] = (char)('0' + f % 10);
		frac[dec + 1] = '\0';
	}
	if (x == 0)
		sign = "";
	snprintf(buf, n, "%s%llu%s", sign, (unsigned long long)(x / scale), frac);
	return buf;
}

const char *money_price(char *buf, size_t n, double p)
{
	money_fixed(buf, n, p, 4);
	char *dot = strchr(buf, '.');
	if (dot) {
		char *end = buf + strlen(buf) - 1;
		while (end > dot + 2 && *end == '0')
			*end-- = '\0';
	}
	return buf;
}
