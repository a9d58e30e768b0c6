#!/usr/bin/env bash
# Bash completion made from the programs' own option tables: every option
# a program's --help names is in its --list-options and the other way
# round, the generated script parses, completes options, values and
# subcommands, and make install puts it where bash-completion looks.
. "$EVC_SRCDIR/tests/integration/lib.sh"
PROGS=(EV_Central EV_CP_E EV_CP_M EV_Driver EV_W EV_Registry)
tap_plan $((${#PROGS[@]} * 3 + 4))

for p in "${PROGS[@]}"; do
	bin=$EVC_BUILDDIR/$p
	# long options only (-h and -V are spelled out in the usage's prose); a
	# subcommand's usage line names that subcommand's options
	# the options a usage names: in its synopsis ("[--opt", "| --opt") and
	# at the head of a description line ("  --opt"), not in the prose
	"$bin" --help | grep -Ev "^ +$p (ctl|attach) " |
		grep -Eo -- "(^ {1,2}|\\[|\\| |, |$p )--[a-z][a-z-]+" | grep -Eo -- '--[a-z][a-z-]+$' | sort -u >"$T_DIR/$p.help"
	"$bin" --list-options | awk '/^--/ {print $1}' | sort -u >"$T_DIR/$p.list"
	missing=$(comm -23 "$T_DIR/$p.help" "$T_DIR/$p.list" | tr '\n' ' ')
	check "$p: every option of --help is in its option table${missing:+ (missing: $missing)}" [ -z "$missing" ]
	extra=$(comm -13 "$T_DIR/$p.help" "$T_DIR/$p.list" | tr '\n' ' ')
	check "$p: every option of its table is in --help${extra:+ (not in --help: $extra)}" [ -z "$extra" ]
	f=$EVC_BUILDDIR/contrib/completion/$p
	check "$p: the generated completion exists and parses" bash -n "$f"
done
comp() { # comp WORDS...: what EV_Central's completion offers for the last word
	bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _evc_EV_Central; echo "${COMPREPLY[*]}"' \
		_ "$EVC_BUILDDIR/contrib/completion/EV_Central" "$@"
}
check "EV_Central --log-format <TAB>: text json" [ "$(comp EV_Central --log-format '')" = "text json" ]
check "EV_Central ctl s<TAB>: its commands" [ "$(comp EV_Central ctl s)" = "status sessions stop" ]
check "EV_Driver --k<TAB>: --keep-going" bash -c "source '$EVC_BUILDDIR/contrib/completion/EV_Driver'; COMP_WORDS=(EV_Driver --k); COMP_CWORD=1; _evc_EV_Driver; [ \"\${COMPREPLY[*]}\" = --keep-going ]"
make -s -C "$EVC_BUILDDIR" install-data DESTDIR="$T_DIR/inst" >"$T_DIR/install.out" 2>&1
check "make install puts every one in bash-completion's folder" bash -c \
	"for p in ${PROGS[*]}; do find '$T_DIR/inst' -path \"*/share/bash-completion/completions/\$p\" | grep -q . || exit 1; done"
exit "$T_FAILED"
