/* --version / -V of every program: its name and the package's version, and
 * the versions of the libraries it runs on (librdkafka, SQLite, OpenSSL,
 * as loaded at run time, not as compiled against). */
#ifndef EVC_VERSION_H
#define EVC_VERSION_H
#include <stdio.h>

/* "EV_Central (evcharging) 0.1.0" then one line naming the libraries. */
void version_print(FILE *f, const char *prog);

#endif
