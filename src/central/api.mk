# api.mk: Central's HTTPS API (evcharging(7) API): the module, its page and
# its tests. Included at the end of src/central/local.mk, so it can add to
# EV_Central's variables.
EV_CENTRAL_API_SOURCES = \
	src/central/api.c src/central/api.h \
	src/central/api_handler.c src/central/api_handler.h \
	src/central/api_tokens.c src/central/api_tokens.h \
	src/central/api_json.c src/central/api_json.h \
	src/central/api_page.h
EV_CENTRAL_API_CFLAGS = $(MHD_CFLAGS) $(OPENSSL_CFLAGS) $(SQLITE_CFLAGS) $(JANSSON_CFLAGS)
EV_CENTRAL_API_LIBS = $(MHD_LIBS) $(OPENSSL_LIBS) $(SQLITE_LIBS) $(JANSSON_LIBS)

EV_Central_SOURCES += $(EV_CENTRAL_API_SOURCES)
nodist_EV_Central_SOURCES = src/central/api_page.c
EV_Central_CFLAGS += $(MHD_CFLAGS) $(OPENSSL_CFLAGS)
EV_Central_LDADD += $(MHD_LIBS) $(OPENSSL_LIBS)

# The page goes into the binary as a byte array. od and awk are POSIX (no
# xxd needed); the file ends with a NUL that api_page_len leaves out.
EXTRA_DIST += ui/web/index.html
CLEANFILES += src/central/api_page.c
src/central/api_page.c: $(top_srcdir)/ui/web/index.html $(top_srcdir)/src/central/api.mk
	$(AM_V_GEN)$(MKDIR_P) src/central && { \
	  echo '/* Generated from ui/web/index.html by src/central/api.mk: do not edit. */'; \
	  echo '#include "src/central/api_page.h"'; \
	  echo 'const unsigned char api_page_html[] = {'; \
	  od -A n -v -t x1 $(top_srcdir)/ui/web/index.html | \
	    $(AWK) '{ s = ""; for (i = 1; i <= NF; i++) s = s "0x" $$i ","; print s }'; \
	  echo '0x00 };'; \
	  echo 'const size_t api_page_len = sizeof api_page_html - 1;'; \
	} >$@.tmp && mv $@.tmp $@

# The handler without sockets: roles, statuses, shapes, limits, tokens.
check_PROGRAMS += tests/unit/test_api
TESTS += tests/unit/test_api
tests_unit_test_api_SOURCES = tests/unit/test_api.c \
	src/central/api_handler.c src/central/api_tokens.c src/central/api_json.c
tests_unit_test_api_CFLAGS = $(UNIT_CFLAGS) $(EV_CENTRAL_API_CFLAGS)
tests_unit_test_api_LDADD = $(UNIT_LIBS) $(EV_CENTRAL_API_LIBS)

# The whole module on 127.0.0.1 over real TLS (openssl CLI certificates),
# driven by libcurl, with a thread playing the main loop.
check_PROGRAMS += tests/unit/test_api_http
TESTS += tests/unit/test_api_http
tests_unit_test_api_http_SOURCES = tests/unit/test_api_http.c $(EV_CENTRAL_API_SOURCES)
nodist_tests_unit_test_api_http_SOURCES = src/central/api_page.c
tests_unit_test_api_http_CFLAGS = $(UNIT_CFLAGS) $(EV_CENTRAL_API_CFLAGS) $(CURL_CFLAGS)
tests_unit_test_api_http_LDADD = $(UNIT_LIBS) $(EV_CENTRAL_API_LIBS) $(CURL_LIBS)

EXTRA_DIST += tests/fuzz/fuzz_api.c tests/fuzz/api.seeds

# The API on the real EV_Central: curl and a Prometheus parser; the page in
# a real headless Chromium (tests/tools/page_probe.py over DevTools).
API_ITESTS = tests/integration/api_central.sh tests/integration/api_page.sh
TESTS += $(API_ITESTS)
EXTRA_DIST += $(API_ITESTS)
dist_noinst_SCRIPTS += tests/tools/page_probe.py
