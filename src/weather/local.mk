# EV_W, the weather office (EV_W(1)): provider readings to
# Central's API. Its rules are pure modules, unit-tested and fuzzed; the
# simulated provider (tests/tools/weather_sim) stands in for OpenWeather.
bin_PROGRAMS += EV_W
EV_W_SOURCES = \
	src/weather/weather.c \
	src/weather/wconfig.c src/weather/wconfig.h \
	src/weather/owm.c src/weather/owm.h \
	src/weather/wpost.c src/weather/wpost.h \
	src/weather/whttp.c src/weather/whttp.h \
	ui/weather_screen.c ui/weather_screen.h
EV_W_CFLAGS = $(AM_CFLAGS) $(NCURSES_CFLAGS) $(CURL_CFLAGS) $(JANSSON_CFLAGS) -D_XOPEN_SOURCE_EXTENDED
EV_W_LDADD = $(EVC_UI_LIBS) libevc.a $(CURL_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS) $(NCURSES_LIBS) $(EVC_LIB_DEPS) -lm

# Unit: config, provider answers and URLs, Central's answers, backoff and
# the outbox. No I/O but a temp file for the config reader's bounds.
check_PROGRAMS += tests/unit/test_weather
TESTS += tests/unit/test_weather
tests_unit_test_weather_SOURCES = tests/unit/test_weather.c \
	src/weather/wconfig.c src/weather/wconfig.h \
	src/weather/owm.c src/weather/owm.h \
	src/weather/wpost.c src/weather/wpost.h
tests_unit_test_weather_CFLAGS = $(UNIT_CFLAGS) $(CURL_CFLAGS)
tests_unit_test_weather_LDADD = $(UNIT_LIBS) $(CURL_LIBS)

dist_noinst_SCRIPTS += tests/tools/weather_sim
EXTRA_DIST += tests/fuzz/fuzz_owm.c tests/fuzz/owm.seeds

# The real EV_W against the real (simulated) provider; weather_e2e.sh
# against the real EV_Central's API, CPs and a driver too.
WEATHER_IT = tests/integration/weather_provider.sh tests/integration/weather_args.sh \
	tests/integration/weather_screen.sh tests/integration/weather_e2e.sh
TESTS += $(WEATHER_IT)
EXTRA_DIST += $(WEATHER_IT) tests/integration/weather_lib.sh
