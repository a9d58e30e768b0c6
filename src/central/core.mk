# core.mk fragment: unit tests of Central's control core (src/central/core.c).
check_PROGRAMS += tests/unit/test_core
TESTS += tests/unit/test_core
tests_unit_test_core_SOURCES = tests/unit/test_core.c src/central/core.c src/central/core.h src/central/view.c \
	src/central/view.h
tests_unit_test_core_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_core_LDADD = $(UNIT_LIBS)
