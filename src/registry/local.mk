# EV_Registry (evcharging(7) SECURITY): the CP registry over HTTPS, and the
# test of scripts/pki, which makes the certificates every TLS test uses.
bin_PROGRAMS += EV_Registry
EV_REGISTRY_CORE = src/registry/registry.c src/registry/registry.h \
	src/registry/ratelimit.c src/registry/ratelimit.h
EV_Registry_SOURCES = src/registry/main.c $(EV_REGISTRY_CORE)
EV_Registry_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(SQLITE_CFLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS)
EV_Registry_LDADD = libevc.a $(MHD_LIBS) $(SQLITE_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS) $(EVC_LIB_DEPS) -lm

# The rate limiter on its own (no I/O: times are given).
check_PROGRAMS += tests/unit/test_ratelimit
TESTS += tests/unit/test_ratelimit
tests_unit_test_ratelimit_SOURCES = tests/unit/test_ratelimit.c src/registry/ratelimit.c src/registry/ratelimit.h
tests_unit_test_ratelimit_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ratelimit_LDADD = $(UNIT_LIBS)

TESTS += tests/integration/pki.sh
EXTRA_DIST += tests/integration/pki.sh

# Integration: the real EV_Registry over TLS (scripts/pki, curl, python3).
EXTRA_DIST += tests/integration/registry_lib.sh
REGISTRY_ITESTS = tests/integration/registry_api.sh tests/integration/registry_tls.sh \
	tests/integration/registry_ratelimit.sh tests/integration/registry_register.sh
TESTS += $(REGISTRY_ITESTS)
EXTRA_DIST += $(REGISTRY_ITESTS)

# Loads a credential file as the CP programs do (registry_register.sh).
check_PROGRAMS += tests/tools/cred_check
tests_tools_cred_check_SOURCES = tests/tools/cred_check.c
tests_tools_cred_check_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS)
tests_tools_cred_check_LDADD = $(EVC_COMMON_LIBS)

# libFuzzer target of the request handling (built and run by scripts/fuzz).
EXTRA_DIST += tests/fuzz/fuzz_registry.c tests/fuzz/registry.seeds
