# Test harness shared by every area. Each area's own local.mk adds its unit
# tests (cmocka, TAP) and integration scripts (TAP shell) to TESTS.
EXTRA_DIST += tests/integration/lib.sh
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(JANSSON_CFLAGS) $(RDKAFKA_CFLAGS)
UNIT_LIBS = $(CMOCKA_LIBS) $(EVC_COMMON_LIBS)
include tests/bench/bench.mk

# The shared pieces of libevc that do no I/O (money, validation, hash map,
# bounded queue).
check_PROGRAMS += tests/unit/test_common
TESTS += tests/unit/test_common
tests_unit_test_common_SOURCES = tests/unit/test_common.c
tests_unit_test_common_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_common_LDADD = $(UNIT_LIBS)

# The manners every program shares: the configuration file, the event line
# format, the address parser and printer, the log levels.
check_PROGRAMS += tests/unit/test_config
TESTS += tests/unit/test_config
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS) $(INIH_CFLAGS)
tests_unit_test_config_LDADD = $(UNIT_LIBS)

# The secrets sweep (evcharging(7) SECURITY): the secured demo run briefly,
# then every secret it issued looked for in every log, capture, answer,
# topic, command line and the database dump.
TESTS += tests/integration/secrets_sweep.sh
EXTRA_DIST += tests/integration/secrets_sweep.sh tests/integration/demo_lib.sh
