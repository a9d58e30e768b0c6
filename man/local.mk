# Man pages, the demo and command-line manners.
dist_man_MANS += man/EV_Central.1 man/EV_CP_E.1 man/EV_CP_M.1 man/EV_Driver.1 man/evcharging.7
dist_man_MANS += man/EV_W.1
dist_man_MANS += man/EV_Registry.1
dist_noinst_SCRIPTS += scripts/demo

DOCS_IT = tests/integration/man.sh tests/integration/cli_manners.sh tests/integration/demo.sh \
	tests/integration/manners.sh
TESTS += $(DOCS_IT)
EXTRA_DIST += $(DOCS_IT)
