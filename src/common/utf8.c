#include <locale.h>
#include <pthread.h>
#include <string.h>
#include <wctype.h>

#include "evc/utf8.h"

size_t utf8_seq(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	if (c < 0x80)
		return 1;
	size_t need;
	uint8_t lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* UTF-16 surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return need;
}

int utf8_valid(const char *s, size_t n, size_t *chars)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0, count = 0;
	while (i < n) {
		size_t len = utf8_seq(p + i, n - i);
		if (len == 0)
			return 0;
		i += len;
		count++;
	}
	if (chars != NULL)
		*chars = count;
	return 1;
}

uint32_t utf8_decode(const uint8_t *p, size_t n, size_t *len)
{
	size_t k = utf8_seq(p, n);
	*len = k != 0 ? k : 1;
	switch (k) {
	case 1:
		return p[0];
	case 2:
		return (uint32_t)(p[0] & 0x1F) << 6 | (uint32_t)(p[1] & 0x3F);
	case 3:
		return (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (uint32_t)(p[2] & 0x3F);
	case 4:
		return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
		       (uint32_t)(p[2] & 0x3F) << 6 | (uint32_t)(p[3] & 0x3F);
	default:
		return 0xFFFD;
	}
}

static locale_t fold_loc;

static void fold_init(void)
{
	fold_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static locale_t fold_locale(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, fold_init);
	return fold_loc;
}

int utf8_fold_ready(void)
{
	return fold_locale() != (locale_t)0;
}

int utf8_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

int utf8_alnum(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
	locale_t loc = fold_locale();
	return loc == (locale_t)0 || iswalnum_l((wint_t)cp, loc) != 0;
}

int utf8_word_char(uint32_t cp)
{
	return utf8_alnum(cp) || (cp >= 0x300 && cp <= 0x36F) || cp == 0xFFFD;
}

/* Simple case folding: lower of upper, so that the final sigma and sigma
 * (both upper-case to Sigma) are one letter. */
static uint32_t fold_cp(uint32_t cp, locale_t loc)
{
	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z' ? cp - 'A' + 'a' : cp;
	if (loc == (locale_t)0)
		return cp;
	return (uint32_t)towlower_l(towupper_l((wint_t)cp, loc), loc);
}

int utf8_fold_prefix(const char *s, size_t n, const char *t, size_t m, size_t *end)
{
	locale_t loc = fold_locale();
	const uint8_t *a = (const uint8_t *)s, *b = (const uint8_t *)t;
	size_t i = 0, j = 0;
	while (j < m) {
		size_t ka, kb;
		if (i >= n)
			return 0;
		uint32_t x = utf8_decode(a + i, n - i, &ka), y = utf8_decode(b + j, m - j, &kb);
		if (x != y && fold_cp(x, loc) != fold_cp(y, loc))
			return 0;
		i += ka;
		j += kb;
	}
	*end = i;
	return 1;
}

int utf8_fold_eq(const char *a, const char *b)
{
	size_t n = strlen(a), end;
	return utf8_fold_prefix(a, n, b, strlen(b), &end) && end == n;
}
