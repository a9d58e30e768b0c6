# EV_Central. core.mk and cplink.mk hold the tests of those modules.
include src/central/core.mk
include src/central/cplink.mk

bin_PROGRAMS += EV_Central
EV_Central_SOURCES = \
	src/central/main.c \
	src/central/turn.c src/central/turn.h \
	src/central/core.c src/central/core.h \
	src/central/cplink.c src/central/cplink.h \
	src/central/store.c src/central/store.h \
	src/central/kafka_in.c src/central/kafka_in.h \
	src/central/kafka_out.c src/central/kafka_out.h \
	src/central/console.c src/central/console.h \
	src/central/view.c src/central/view.h \
	src/central/apiwire.c src/central/apiwire.h \
	src/central/keytab.c src/central/keytab.h \
	src/central/panel_fe.c src/central/panel_fe.h \
	src/central/history.c src/central/history.h \
	src/central/frontend.h \
	src/central/service.c src/central/service.h \
	src/central/ctl.c src/central/ctl.h \
	src/central/ctlproto.c src/central/ctlproto.h \
	src/central/ctl_client.c src/central/ctl_client.h
EV_Central_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS) $(NCURSES_CFLAGS) $(RDKAFKA_CFLAGS) $(JANSSON_CFLAGS) $(SYSTEMD_CFLAGS)
EV_Central_LDADD = $(EVC_UI_LIBS) libevc.a $(SQLITE_LIBS) $(NCURSES_LIBS) $(RDKAFKA_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS) $(EVC_LIB_DEPS) $(SYSTEMD_LIBS) -lm

# A scripted CP monitor for the integration tests: speaks the link protocol
# with its own small codec (so it checks Central's, not itself) and can
# misbehave on purpose (garbage, wrong LRC, split frames, idle connections).
check_PROGRAMS += tests/tools/fake_monitor
tests_tools_fake_monitor_SOURCES = tests/tools/fake_monitor.c
tests_tools_fake_monitor_LDADD =

# The store on its own (SQLite in a temp folder).
check_PROGRAMS += tests/unit/test_store
TESTS += tests/unit/test_store
tests_unit_test_store_SOURCES = tests/unit/test_store.c src/central/store.c src/central/core.c
tests_unit_test_store_CFLAGS = $(UNIT_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_store_LDADD = $(UNIT_LIBS) $(SQLITE_LIBS)

# Integration tests (real broker at $EVC_KAFKA, real processes, loopback).
EXTRA_DIST += tests/integration/central_lib.sh
CENTRAL_ITESTS = \
	tests/integration/central_links.sh \
	tests/integration/central_supply.sh \
	tests/integration/central_crash.sh \
	tests/integration/central_dbfail.sh \
	tests/integration/central_badinput.sh \
	tests/integration/central_cli.sh \
	tests/integration/central_kafka_loss.sh \
	tests/integration/central_real_cp.sh \
	tests/integration/central_integrity.sh \
	tests/integration/central_audit.sh \
	tests/integration/central_forgery.sh \
	tests/integration/central_release1_telemetry.sh \
	tests/integration/central_engine_restart.sh \
	tests/integration/central_takeover.sh \
	tests/integration/central_addcp.sh \
	tests/integration/central_service.sh \
	tests/integration/central_group_commit.sh
TESTS += $(CENTRAL_ITESTS)
EXTRA_DIST += $(CENTRAL_ITESTS)

# The HTTPS API, its page and tests (after EV_Central's variables: it adds to them).
include src/central/api.mk

# The control socket's protocol without sockets, and its fuzz target.
check_PROGRAMS += tests/unit/test_ctlproto
TESTS += tests/unit/test_ctlproto
tests_unit_test_ctlproto_SOURCES = tests/unit/test_ctlproto.c src/central/ctlproto.c src/central/ctlproto.h
tests_unit_test_ctlproto_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ctlproto_LDADD = $(UNIT_LIBS)
EXTRA_DIST += tests/fuzz/fuzz_ctl.c tests/fuzz/ctl.seeds
EXTRA_DIST += tests/integration/panel_attach.sh tests/integration/panel_help.sh

# The views' reader thread on a real SQLite file, and the views reading
# through it into an off-screen terminal.
check_PROGRAMS += tests/unit/test_history
TESTS += tests/unit/test_history
tests_unit_test_history_SOURCES = tests/unit/test_history.c src/central/history.c src/central/history.h
tests_unit_test_history_CFLAGS = $(UNIT_CFLAGS) $(SQLITE_CFLAGS) $(NCURSES_CFLAGS) -D_XOPEN_SOURCE_EXTENDED
tests_unit_test_history_LDADD = $(EVC_UI_LIBS) $(UNIT_LIBS) $(SQLITE_LIBS) $(NCURSES_LIBS) -lm
