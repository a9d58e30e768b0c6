# Test harness shared by every area. Each area's own local.mk adds its unit
# tests (cmocka, TAP) and integration scripts (TAP shell) to TESTS.
EXTRA_DIST += tests/integration/lib.sh
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(JANSSON_CFLAGS) $(RDKAFKA_CFLAGS)
UNIT_LIBS = $(CMOCKA_LIBS) $(EVC_COMMON_LIBS)
include tests/bench/bench.mk
