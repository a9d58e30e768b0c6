# contrib: example systemd units, installed under $(docdir)/systemd
# (EV_Central(1) RUNNING AS A SERVICE), and bash completion made at build
# time from each program's own option table (--list-options).
systemddocdir = $(docdir)/systemd
dist_systemddoc_DATA = \
	contrib/systemd/EV_Central.service \
	contrib/systemd/EV_Registry.service \
	contrib/systemd/EV_W.service \
	contrib/systemd/EV_CP_E@.service \
	contrib/systemd/EV_CP_M@.service \
	contrib/systemd/evcharging.sysusers

bashcompletiondir = $(datadir)/bash-completion/completions
bashcompletion_DATA = contrib/completion/EV_Central contrib/completion/EV_CP_E contrib/completion/EV_CP_M \
	contrib/completion/EV_Driver contrib/completion/EV_W contrib/completion/EV_Registry
CLEANFILES += $(bashcompletion_DATA)
dist_noinst_SCRIPTS += contrib/completion/gen-completion
EVC_GEN_COMPLETION = $(SHELL) $(srcdir)/contrib/completion/gen-completion

contrib/completion/EV_Central: EV_Central$(EXEEXT) $(srcdir)/contrib/completion/gen-completion
	$(AM_V_GEN)$(MKDIR_P) contrib/completion && $(EVC_GEN_COMPLETION) ./EV_Central$(EXEEXT) >$@.tmp && mv $@.tmp $@
contrib/completion/EV_CP_E: EV_CP_E$(EXEEXT) $(srcdir)/contrib/completion/gen-completion
	$(AM_V_GEN)$(MKDIR_P) contrib/completion && $(EVC_GEN_COMPLETION) ./EV_CP_E$(EXEEXT) >$@.tmp && mv $@.tmp $@
contrib/completion/EV_CP_M: EV_CP_M$(EXEEXT) $(srcdir)/contrib/completion/gen-completion
	$(AM_V_GEN)$(MKDIR_P) contrib/completion && $(EVC_GEN_COMPLETION) ./EV_CP_M$(EXEEXT) >$@.tmp && mv $@.tmp $@
contrib/completion/EV_Driver: EV_Driver$(EXEEXT) $(srcdir)/contrib/completion/gen-completion
	$(AM_V_GEN)$(MKDIR_P) contrib/completion && $(EVC_GEN_COMPLETION) ./EV_Driver$(EXEEXT) >$@.tmp && mv $@.tmp $@
contrib/completion/EV_W: EV_W$(EXEEXT) $(srcdir)/contrib/completion/gen-completion
	$(AM_V_GEN)$(MKDIR_P) contrib/completion && $(EVC_GEN_COMPLETION) ./EV_W$(EXEEXT) >$@.tmp && mv $@.tmp $@
contrib/completion/EV_Registry: EV_Registry$(EXEEXT) $(srcdir)/contrib/completion/gen-completion
	$(AM_V_GEN)$(MKDIR_P) contrib/completion && $(EVC_GEN_COMPLETION) ./EV_Registry$(EXEEXT) >$@.tmp && mv $@.tmp $@

# The units pass systemd-analyze verify; completion and units install.
TESTS += tests/integration/systemd_units.sh tests/integration/completion.sh
EXTRA_DIST += tests/integration/systemd_units.sh tests/integration/completion.sh
