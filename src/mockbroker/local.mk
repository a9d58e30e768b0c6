# evc-mockbroker: librdkafka's in-memory mock cluster as a
# stand-in broker for scripts/demo when Java or the Kafka jars are missing.
noinst_PROGRAMS += evc-mockbroker
evc_mockbroker_SOURCES = src/mockbroker/mockbroker.c
evc_mockbroker_CFLAGS = $(AM_CFLAGS) $(RDKAFKA_CFLAGS)
evc_mockbroker_LDADD = $(RDKAFKA_LIBS) -lpthread
