# tls.mk fragment: TLS contexts and non-blocking steps for the CP link
# (evc/tls.h), on OpenSSL's libssl (libevc_a_CFLAGS and the programs'
# LDADD already carry OpenSSL's flags for the crypto modules).
libevc_a_SOURCES += src/common/tls.c include/evc/tls.h

check_PROGRAMS += tests/unit/test_tls
TESTS += tests/unit/test_tls
tests_unit_test_tls_SOURCES = tests/unit/test_tls.c tests/unit/tls_fixture.h
tests_unit_test_tls_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_tls_LDADD = $(UNIT_LIBS)
