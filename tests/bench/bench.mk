# bench.mk fragment: the benchmarks of Central. Not tests: built
# only by `make bench`, run by tests/bench/run-links and run-telemetry.
EXTRA_PROGRAMS = tests/bench/bench_links tests/bench/link_sink tests/bench/bench_telemetry
tests_bench_bench_links_SOURCES = tests/bench/bench_links.c
tests_bench_bench_links_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS)
tests_bench_bench_links_LDADD = $(EVC_COMMON_LIBS) $(SQLITE_LIBS)
tests_bench_link_sink_SOURCES = tests/bench/link_sink.c src/central/cplink.c src/central/cplink.h
tests_bench_link_sink_CFLAGS = $(AM_CFLAGS)
tests_bench_link_sink_LDADD = $(EVC_COMMON_LIBS)
tests_bench_bench_telemetry_SOURCES = tests/bench/bench_telemetry.c
tests_bench_bench_telemetry_CFLAGS = $(AM_CFLAGS) $(RDKAFKA_CFLAGS) $(JANSSON_CFLAGS)
tests_bench_bench_telemetry_LDADD = $(EVC_COMMON_LIBS)
CLEANFILES += tests/bench/bench_links$(EXEEXT) tests/bench/link_sink$(EXEEXT) \
	tests/bench/bench_telemetry$(EXEEXT)
dist_noinst_SCRIPTS += tests/bench/run-links tests/bench/run-links-curve tests/bench/run-telemetry \
	tests/bench/run-all
EXTRA_DIST += tests/bench/README

.PHONY: bench
bench: tests/bench/bench_links$(EXEEXT) tests/bench/link_sink$(EXEEXT) tests/bench/bench_telemetry$(EXEEXT)

# The panel's views on 100,000 stored sessions (tests/bench/run-views).
EXTRA_PROGRAMS += tests/bench/bench_views
tests_bench_bench_views_SOURCES = tests/bench/bench_views.c src/central/history.c src/central/history.h
tests_bench_bench_views_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS) $(NCURSES_CFLAGS) -D_XOPEN_SOURCE_EXTENDED
tests_bench_bench_views_LDADD = $(EVC_UI_LIBS) $(EVC_COMMON_LIBS) $(SQLITE_LIBS) $(NCURSES_LIBS) -lm
CLEANFILES += tests/bench/bench_views$(EXEEXT)
dist_noinst_SCRIPTS += tests/bench/run-views
bench: tests/bench/bench_views$(EXEEXT)

# The HTTPS API: latency of GET /api/v1/cps and the main thread's cost
# under 100 requests a second (tests/bench/run-api).
EXTRA_PROGRAMS += tests/bench/bench_api
tests_bench_bench_api_SOURCES = tests/bench/bench_api.c
tests_bench_bench_api_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS)
tests_bench_bench_api_LDADD = $(CURL_LIBS) -lm
CLEANFILES += tests/bench/bench_api$(EXEEXT)
dist_noinst_SCRIPTS += tests/bench/run-api
bench: tests/bench/bench_api$(EXEEXT)

# One durable commit's cost on this machine's disk, without SQLite
# (run-all prints it beside the state-change figures).
EXTRA_PROGRAMS += tests/bench/bench_fsync
tests_bench_bench_fsync_SOURCES = tests/bench/bench_fsync.c
CLEANFILES += tests/bench/bench_fsync$(EXEEXT)
bench: tests/bench/bench_fsync$(EXEEXT)
