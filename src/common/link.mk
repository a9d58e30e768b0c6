# link.mk fragment: unit tests of the link codec (src/common/link.c).
check_PROGRAMS += tests/unit/test_link
TESTS += tests/unit/test_link
tests_unit_test_link_SOURCES = tests/unit/test_link.c
tests_unit_test_link_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_link_LDADD = $(UNIT_LIBS)
