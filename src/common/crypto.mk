# crypto.mk fragment: the shared crypto modules of libevc (crypto.c,
# fernet.c, cred.c; evcharging(7) SECURITY), their unit tests, the Fernet
# vectors and the cross-check against Python's cryptography.fernet.
libevc_a_SOURCES += \
	src/common/crypto.c include/evc/crypto.h \
	src/common/fernet.c include/evc/fernet.h \
	src/common/cred.c include/evc/cred.h
libevc_a_CFLAGS += $(OPENSSL_CFLAGS)

check_PROGRAMS += tests/unit/test_crypto tests/unit/test_fernet tests/unit/test_cred
TESTS += tests/unit/test_crypto tests/unit/test_fernet tests/unit/test_cred
tests_unit_test_crypto_SOURCES = tests/unit/test_crypto.c
tests_unit_test_crypto_CFLAGS = $(UNIT_CFLAGS) $(OPENSSL_CFLAGS)
tests_unit_test_crypto_LDADD = $(UNIT_LIBS)
tests_unit_test_fernet_SOURCES = tests/unit/test_fernet.c
tests_unit_test_fernet_CFLAGS = $(UNIT_CFLAGS) $(OPENSSL_CFLAGS)
# The vectors' folder when run outside make check (scripts/check's valgrind pass).
tests_unit_test_fernet_CPPFLAGS = $(AM_CPPFLAGS) -DEVC_TOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_fernet_LDADD = $(UNIT_LIBS)
tests_unit_test_cred_SOURCES = tests/unit/test_cred.c
tests_unit_test_cred_CFLAGS = $(UNIT_CFLAGS) $(OPENSSL_CFLAGS)
tests_unit_test_cred_LDADD = $(UNIT_LIBS)

check_PROGRAMS += tests/tools/fernet_tool
tests_tools_fernet_tool_SOURCES = tests/tools/fernet_tool.c
tests_tools_fernet_tool_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
tests_tools_fernet_tool_LDADD = $(EVC_COMMON_LIBS)
TESTS += tests/integration/fernet_python.sh
EXTRA_DIST += tests/integration/fernet_python.sh \
	tests/vectors/fernet/README tests/vectors/fernet/generate.json \
	tests/vectors/fernet/verify.json tests/vectors/fernet/invalid.json \
	tests/fuzz/fuzz_fernet.c tests/fuzz/fernet.seeds
