#include <stdarg.h>
#include <stdio.h>

#include "evc/err.h"

void evc_seterr(char *err, const char *fmt, ...)
{
	if (err == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, EVC_ERR_LEN, fmt, ap);
	va_end(ap);
}
