# fragment for src/cp: the charging point's engine and monitor.
bin_PROGRAMS += EV_CP_E EV_CP_M
EVC_CP_SOURCES = src/cp/cpio.c src/cp/cpio.h ui/cp_screen.c ui/cp_screen.h
EVC_CP_CFLAGS = $(AM_CFLAGS) $(NCURSES_CFLAGS) $(RDKAFKA_CFLAGS) $(JANSSON_CFLAGS) -D_XOPEN_SOURCE_EXTENDED
EVC_CP_LDADD = $(EVC_UI_LIBS) libevc.a $(NCURSES_LIBS) $(RDKAFKA_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS) $(EVC_LIB_DEPS) -lm

EV_CP_E_SOURCES = src/cp/engine.c src/cp/cpauth.c src/cp/cpauth.h $(EVC_CP_SOURCES)
EV_CP_E_CFLAGS = $(EVC_CP_CFLAGS)
EV_CP_E_LDADD = $(EVC_CP_LDADD)

EV_CP_M_SOURCES = src/cp/monitor.c src/cp/register.c src/cp/register.h $(EVC_CP_SOURCES)
EV_CP_M_CFLAGS = $(EVC_CP_CFLAGS) $(CURL_CFLAGS)
EV_CP_M_LDADD = $(EVC_CP_LDADD) $(CURL_LIBS)

# Integration: the real programs on loopback against the real broker.
EXTRA_DIST += tests/integration/cp_lib.sh
TESTS += tests/integration/cp_basic.sh
EXTRA_DIST += tests/integration/cp_basic.sh
TESTS += tests/integration/cp_supply.sh tests/integration/cp_supply_errors.sh tests/integration/cp_reauth.sh
EXTRA_DIST += tests/integration/cp_supply.sh tests/integration/cp_supply_errors.sh tests/integration/cp_reauth.sh
TESTS += tests/integration/cp_screen.sh
EXTRA_DIST += tests/integration/cp_screen.sh

# Unit: the CP programs' link plumbing, backoff, line reader.
check_PROGRAMS += tests/unit/test_cpio
TESTS += tests/unit/test_cpio
tests_unit_test_cpio_SOURCES = tests/unit/test_cpio.c src/cp/cpio.c src/cp/cpio.h
# Its TLS client cases run against Central's real link server.
tests_unit_test_cpio_SOURCES += src/central/cplink.c src/central/cplink.h tests/unit/tls_fixture.h
tests_unit_test_cpio_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_cpio_LDADD = $(UNIT_LIBS)
TESTS += tests/integration/cp_badinput.sh tests/integration/cp_monitor_wire.sh tests/integration/cp_flood.sh
EXTRA_DIST += tests/integration/cp_badinput.sh tests/integration/cp_monitor_wire.sh tests/integration/cp_flood.sh

# Unit: the engine's challenge gate and failure limiter (pure).
check_PROGRAMS += tests/unit/test_cpauth
TESTS += tests/unit/test_cpauth
tests_unit_test_cpauth_SOURCES = tests/unit/test_cpauth.c src/cp/cpauth.c src/cp/cpauth.h
tests_unit_test_cpauth_CFLAGS = $(UNIT_CFLAGS) $(OPENSSL_CFLAGS)
tests_unit_test_cpauth_LDADD = $(UNIT_LIBS)
# Release 2: the secured monitor's frames against a scripted Central and the real engine.
TESTS += tests/integration/cp_monitor_wire_sec.sh
EXTRA_DIST += tests/integration/cp_monitor_wire_sec.sh
TESTS += tests/integration/cp_engine_auth.sh
EXTRA_DIST += tests/integration/cp_engine_auth.sh
TESTS += tests/integration/cp_fernet.sh
EXTRA_DIST += tests/integration/cp_fernet.sh
# Against the real Central's REGISTER-with-secret, KEY and REVOKED over its
# TLS link, with scripts/pki and EV_Registry.
TESTS += tests/integration/cp_credentials.sh
EXTRA_DIST += tests/integration/cp_credentials.sh
TESTS += tests/integration/cp_screen_sec.sh
EXTRA_DIST += tests/integration/cp_screen_sec.sh
EXTRA_DIST += tests/fuzz/fuzz_cpauth.c tests/fuzz/cpauth.seeds
