#!/usr/bin/env bash
# The panel's ? box in a real 80x24 terminal (tmux): every help line is
# drawn whole (it was cut at "(Esc clears"), and every key it lists is
# documented in EV_Central(1) THE PANEL (c and ^L were missing).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/panel_lib.sh"
command -v mandoc >/dev/null || tap_skip_all "mandoc not installed"
tap_plan 5

P_KAFKA=127.0.0.1:$(free_port) panel_start 80 24
check "the panel is up at 80x24" wait_screen 10 'EV_Central'
keys '?'
check "? opens the help box, drawn to its last line" eval "wait_screen 5 'EV_Central panel: keys' && wait_screen 5 'any (other )?key closes'"
check "the filter line is whole: '(Esc clears)'" wait_screen 5 'filter by id, location or state \(Esc clears\)'
check "the quit line is whole" wait_screen 5 'quit \(asks y/N; attached: detach or stop Central\) +│'
# The keys of the box (its first column: "Left/h", "/", "^L"...) against the
# words of the man page's section.
screen_text >"$T_DIR/screen.txt"
mandoc -T utf8 "$EVC_SRCDIR/man/EV_Central.1" 2>/dev/null | sed 's/.\x08//g' |
	sed -n '/^THE PANEL/,/^THE CONSOLE/p' >"$T_DIR/man.txt"
python3 - "$T_DIR/screen.txt" "$T_DIR/man.txt" >"$T_DIR/keys.out" <<'PY'
import re, sys
screen, man = open(sys.argv[1]).read(), open(sys.argv[2]).read()
keys = []
for line in screen.splitlines():
    m = re.search(r"│  (\S+)  +\S", line)
    if m:
        names = m.group(1)
        keys += [names] if names == "/" else [k for k in names.split("/") if k]
missing = [k for k in keys if not re.search(r"(^|[\s,(])" + re.escape(k) + r"($|[\s,)])", man, re.M)]
print(len(keys), " ".join(missing))
PY
read -r n missing <"$T_DIR/keys.out"
check "every key of the help ($n) is in EV_Central(1) THE PANEL${missing:+ (missing: $missing)}" \
	eval '[ "$n" -ge 20 ] && [ -z "$missing" ]'
exit "$T_FAILED"
