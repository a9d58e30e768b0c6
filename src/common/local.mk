# Shared code of all four programs.
noinst_LIBRARIES += libevc.a
libevc_a_SOURCES = \
	src/common/xalloc.c include/evc/xalloc.h \
	src/common/err.c include/evc/err.h \
	src/common/clock.c include/evc/clock.h \
	src/common/log.c include/evc/log.h \
	src/common/net.c include/evc/net.h \
	src/common/utf8.c include/evc/utf8.h \
	src/common/money.c include/evc/money.h \
	src/common/hmap.c include/evc/hmap.h \
	src/common/bqueue.c include/evc/bqueue.h \
	src/common/state.c include/evc/state.h include/evc/cpview.h \
	src/common/link.c include/evc/link.h \
	src/common/msg.c include/evc/msg.h \
	src/common/bus.c include/evc/bus.h \
	src/common/evline.c include/evc/evline.h \
	src/common/config.c include/evc/config.h \
	src/common/version.c include/evc/version.h \
	src/common/notify.c include/evc/notify.h \
	src/common/progopt.c include/evc/progopt.h
libevc_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(RDKAFKA_CFLAGS) $(INIH_CFLAGS) $(SQLITE_CFLAGS) $(OPENSSL_CFLAGS) \
	$(SYSTEMD_CFLAGS)
# What libevc.a needs besides itself, for every program and test linking it.
EVC_LIB_DEPS = $(RDKAFKA_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS) $(INIH_LIBS) $(SQLITE_LIBS) $(SYSTEMD_LIBS) -lm
EVC_COMMON_LIBS = libevc.a $(EVC_LIB_DEPS)

include src/common/link.mk
include src/common/msg.mk
include src/common/crypto.mk
include src/common/schema.mk
include src/common/tls.mk

# The Kafka bus against the real broker (tests/integration/bus_kafka.sh).
check_PROGRAMS += tests/tools/bus_tool
tests_tools_bus_tool_SOURCES = tests/tools/bus_tool.c
tests_tools_bus_tool_CFLAGS = $(AM_CFLAGS) $(RDKAFKA_CFLAGS) $(JANSSON_CFLAGS)
tests_tools_bus_tool_LDADD = $(EVC_COMMON_LIBS)
TESTS += tests/integration/bus_kafka.sh
EXTRA_DIST += tests/integration/bus_kafka.sh
