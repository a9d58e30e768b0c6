# ui: shared screen pieces and the panel. The CP and driver
# programs add their own screen files (ui/cp_screen.c, ui/driver_screen.c)
# to their program's SOURCES and link $(EVC_UI_LIBS) for the theme and keys.
# The panel (ui/panel.c) calls the core, so only EV_Central can link it in;
# the others only pull theme.o and keys.o out of the archive.
noinst_LIBRARIES += libevcui.a
libevcui_a_SOURCES = \
	ui/theme.c ui/theme.h \
	ui/keys.c ui/keys.h \
	ui/panel.c ui/panel.h
libevcui_a_CFLAGS = $(AM_CFLAGS) $(NCURSES_CFLAGS) -D_XOPEN_SOURCE_EXTENDED
EVC_UI_LIBS = libevcui.a $(NCURSES_LIBS)

# The panel tested for real: EV_Central in tmux, read with capture-pane -e.
TESTS += tests/integration/panel_states.sh
EXTRA_DIST += tests/integration/panel_states.sh tests/integration/panel_lib.sh
TESTS += tests/integration/panel_modes.sh
EXTRA_DIST += tests/integration/panel_modes.sh
dist_noinst_SCRIPTS += tests/bench/run-panel

# The key table and the theme, drawn off screen (no terminal needed).
check_PROGRAMS += tests/unit/test_ui
TESTS += tests/unit/test_ui
tests_unit_test_ui_SOURCES = tests/unit/test_ui.c
tests_unit_test_ui_CFLAGS = $(UNIT_CFLAGS) $(NCURSES_CFLAGS) -D_XOPEN_SOURCE_EXTENDED
tests_unit_test_ui_LDADD = libevcui.a $(NCURSES_LIBS) $(UNIT_LIBS)
