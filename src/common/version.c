#include "config.h"

#include <openssl/crypto.h>
#include <sqlite3.h>
#include <librdkafka/rdkafka.h>

#include "evc/version.h"

void version_print(FILE *f, const char *prog)
{
	fprintf(f, "%s (%s) %s\n", prog, PACKAGE_NAME, PACKAGE_VERSION);
	fprintf(f, "librdkafka %s, SQLite %s, %s\n", rd_kafka_version_str(), sqlite3_libversion(),
		OpenSSL_version(OPENSSL_VERSION));
}
