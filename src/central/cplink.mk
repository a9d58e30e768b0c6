# cplink.mk fragment: tests of the charging-point link server (cplink.c).
# They run the real worker thread on 127.0.0.1 with real sockets.
check_PROGRAMS += tests/unit/test_cplink
TESTS += tests/unit/test_cplink
tests_unit_test_cplink_SOURCES = tests/unit/test_cplink.c src/central/cplink.c src/central/cplink.h tests/unit/tls_fixture.h
tests_unit_test_cplink_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_cplink_LDADD = $(UNIT_LIBS)
# The link port over TLS with real certificates, a real EV_CP_M and
# Release-1 plaintext monitors refused or (--plain-links) served.
TESTS += tests/integration/central_tls.sh
EXTRA_DIST += tests/integration/central_tls.sh
