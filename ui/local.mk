# ui: what every screen shares (theme, keys, the line pane, the stderr
# capture) and each program's screen. A screen draws only from a view
# struct its program fills in and never includes a header from src/.
noinst_LIBRARIES += libevcui.a
libevcui_a_SOURCES = \
	ui/theme.c ui/theme.h \
	ui/keys.c ui/keys.h \
	ui/pane.c ui/pane.h \
	ui/errcap.c ui/errcap.h \
	ui/panel.c ui/panel.h \
	ui/views.c ui/views.h \
	ui/csv.c ui/csv.h
libevcui_a_CFLAGS = $(AM_CFLAGS) $(NCURSES_CFLAGS) -D_XOPEN_SOURCE_EXTENDED
EVC_UI_LIBS = libevcui.a $(NCURSES_LIBS)

# The panel tested for real: EV_Central in tmux, read with capture-pane -e.
TESTS += tests/integration/panel_states.sh
EXTRA_DIST += tests/integration/panel_states.sh tests/integration/panel_lib.sh
TESTS += tests/integration/panel_modes.sh
EXTRA_DIST += tests/integration/panel_modes.sh
TESTS += tests/integration/panel_views.sh
EXTRA_DIST += tests/integration/panel_views.sh
# The header's weather line, fed through the real API.
TESTS += tests/integration/panel_weather.sh
EXTRA_DIST += tests/integration/panel_weather.sh
# Attach and detach, the help box (EV_Central(1) RUNNING AS A SERVICE).
TESTS += tests/integration/panel_attach.sh tests/integration/panel_help.sh
dist_noinst_SCRIPTS += tests/bench/run-panel

# The key table and the theme, drawn off screen (no terminal needed).
check_PROGRAMS += tests/unit/test_ui
TESTS += tests/unit/test_ui
tests_unit_test_ui_SOURCES = tests/unit/test_ui.c
tests_unit_test_ui_CFLAGS = $(UNIT_CFLAGS) $(NCURSES_CFLAGS) -D_XOPEN_SOURCE_EXTENDED
tests_unit_test_ui_LDADD = libevcui.a $(NCURSES_LIBS) $(UNIT_LIBS)

# The CSV writer and the sessions filter of the views (no terminal).
check_PROGRAMS += tests/unit/test_views
TESTS += tests/unit/test_views
tests_unit_test_views_SOURCES = tests/unit/test_views.c
tests_unit_test_views_CFLAGS = $(UNIT_CFLAGS) $(NCURSES_CFLAGS) -D_XOPEN_SOURCE_EXTENDED
tests_unit_test_views_LDADD = libevcui.a $(NCURSES_LIBS) $(UNIT_LIBS)
