#!/usr/bin/env bash
# Every man page passes groff's and mandoc's checks with nothing reported,
# and renders to text naming its program.
. "$EVC_SRCDIR/tests/integration/lib.sh"
PAGES=(EV_Central.1 EV_CP_E.1 EV_CP_M.1 EV_Driver.1 EV_Registry.1 EV_W.1 evcharging.7)
command -v groff >/dev/null || tap_skip_all "groff not installed"
command -v mandoc >/dev/null || tap_skip_all "mandoc not installed"
tap_plan $((${#PAGES[@]} * 3))
for p in "${PAGES[@]}"; do
	f=$EVC_SRCDIR/man/$p
	out=$(LC_ALL=C.UTF-8 groff -man -ww -z "$f" 2>&1; LC_ALL=C.UTF-8 groff -t -man -ww -z "$f" 2>&1)
	if [ -f "$f" ] && [ -z "$out" ]; then ok "groff -man -ww -z $p: nothing reported"
	else not_ok "groff -man -ww -z $p"; diag "${out:-missing file}"; fi
	out=$(mandoc -T lint "$f" 2>&1)
	if [ -f "$f" ] && [ -z "$out" ]; then ok "mandoc -T lint $p: nothing reported"
	else not_ok "mandoc -T lint $p"; diag "${out:-missing file}"; fi
	name=${p%.*}
	check "$p renders and names $name" bash -c \
		"mandoc -T utf8 '$f' 2>/dev/null | sed 's/.\x08//g' | grep -q '^ *$name '"
done
