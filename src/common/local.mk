# Shared code of all four programs.
noinst_LIBRARIES += libevc.a
libevc_a_SOURCES = \
	src/common/xalloc.c include/evc/xalloc.h \
	src/common/clock.c include/evc/clock.h \
	src/common/log.c include/evc/log.h \
	src/common/net.c include/evc/net.h \
	src/common/link.c include/evc/link.h \
	src/common/msg.c include/evc/msg.h \
	src/common/bus.c include/evc/bus.h
libevc_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(RDKAFKA_CFLAGS)
EVC_COMMON_LIBS = libevc.a $(RDKAFKA_LIBS) $(JANSSON_LIBS) -lm

include src/common/link.mk
include src/common/msg.mk
