# schema.mk fragment: the numbered schema migrations shared by EV_Central
# and EV_Registry (src/common/schema.c), and their test against real SQLite
# files made from the fixtures in tests/fixtures.
libevc_a_SOURCES += src/common/schema.c include/evc/schema.h
libevc_a_CFLAGS += $(SQLITE_CFLAGS)

check_PROGRAMS += tests/unit/test_schema
TESTS += tests/unit/test_schema
tests_unit_test_schema_SOURCES = tests/unit/test_schema.c
tests_unit_test_schema_CFLAGS = $(UNIT_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_schema_LDADD = $(UNIT_LIBS) $(SQLITE_LIBS)
EXTRA_DIST += tests/fixtures/schema-r1.sql tests/fixtures/schema-documented.sql
