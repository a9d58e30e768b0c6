# msg.mk fragment: the Kafka message codec (evcharging(7) KAFKA TOPICS AND MESSAGES).
check_PROGRAMS += tests/unit/test_msg
TESTS += tests/unit/test_msg
tests_unit_test_msg_SOURCES = tests/unit/test_msg.c
tests_unit_test_msg_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_msg_LDADD = $(UNIT_LIBS)
EXTRA_DIST += tests/fuzz/fuzz_msg.c tests/fuzz/msg.seeds
