/* Prices, energy and amounts, one way everywhere (evcharging(7) KAFKA
 * TOPICS AND MESSAGES, Numbers): prices are kept to 4 decimals, kWh to 3,
 * amounts to the cent, so the frame, the stored row, the ticket and every
 * screen show the same figures. Formatting never depends on the C locale
 * (the screens set LC_CTYPE; the wire always wants '.'). */
#ifndef EVC_MONEY_H
#define EVC_MONEY_H
#include <stddef.h>

#define MONEY_PRICE_MAX 100.0  /* EUR/kWh */
#define MONEY_STR_LEN 32       /* enough for any figure formatted here */

/* A price as people and peers write it: digits with an optional '.'
 * fraction ("0.25", "12", ".5"); no sign, exponent, ',' or blanks. It must
 * be greater than 0 and at most MONEY_PRICE_MAX once rounded to 4
 * decimals. 0 with *price rounded (and *rounded = 1 if that changed it;
 * rounded may be NULL); -1 if s is not such a number, -2 if it is out of
 * range. */
int money_parse_price(const char *s, double *price, int *rounded);
/* 1 if p is a usable price (finite, 0 < p <= MONEY_PRICE_MAX). */
int money_price_ok(double p);
double money_round_price(double p);  /* to 4 decimals */
double money_round_kwh(double kwh);  /* to 3 decimals */
/* kwh x price, to the cent. */
double money_amount(double kwh, double price);
/* Fixed decimals (0..9), '.' as decimal point: "12.50". Non-finite gives
 * "?". Returns buf. */
const char *money_fixed(char *buf, size_t n, double v, int decimals);
/* A price with at least 2 and at most 4 decimals: "0.25", "0.30",
 * "0.1235". Returns buf. */
const char *money_price(char *buf, size_t n, double p);

#endif
