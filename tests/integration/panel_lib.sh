# Helpers of the panel tests (tests/integration/panel_*.sh): EV_Central in a
# tmux pane of its own private tmux server, scripted monitors, and screen
# conditions waited for with deadlines. Source after lib.sh.

command -v tmux >/dev/null 2>&1 || tap_skip_all "tmux not installed"
command -v python3 >/dev/null 2>&1 || tap_skip_all "python3 not installed"
FAKE_MON=$EVC_BUILDDIR/tests/tools/fake_monitor
BUS_TOOL=$EVC_BUILDDIR/tests/tools/bus_tool
[ -x "$EV_CENTRAL" ] || tap_skip_all "EV_Central not built"
[ -x "$FAKE_MON" ] || tap_skip_all "tests/tools/fake_monitor not built"

P_SOCK="evc-$T_NAME-$$"
P_DB=$T_DIR/central.db
P_PORT=$(free_port)
tmx() { tmux -L "$P_SOCK" "$@"; }
# The pid of the Central serving $P_DB, from its lock file ("" if none runs).
panel_pid() {
	local p
	p=$(cat "$P_DB.lock" 2>/dev/null) || return 0
	[ -n "$p" ] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q EV_Central && echo "$p"
	return 0
}
# panel_end: stop the panel's Central, then the tmux server. A terminal
# that goes away no longer stops Central (EV_Central(1) RUNNING AS A
# SERVICE), so killing the tmux server alone would leave it running.
panel_end() {
	local p
	p=$(panel_pid)
	if [ -n "$p" ]; then
		kill -TERM "$p" 2>/dev/null
		wait_for 10 bash -c "! kill -0 $p 2>/dev/null" || kill -KILL "$p" 2>/dev/null
	fi
	tmx kill-server >/dev/null 2>&1
	return 0
}
trap 'panel_end; t_cleanup' EXIT

# panel_start COLS ROWS [ENV=VAL...] -- [EV_Central options...]
panel_start() {
	local cols=$1 rows=$2; shift 2
	local envs=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
	[ "${1:-}" = "--" ] && shift
	rm -f "$T_DIR/central.exit"
	# the exit status goes to a file: tmux's own #{pane_dead_status} can
	# stay empty when the pty closes before the process is reaped
	tmx -f /dev/null new-session -d -s evc -x "$cols" -y "$rows" \
		bash -c '"$@"; echo $? >"'"$T_DIR"'/central.exit"' panel \
		env TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 EVC_TOPIC_PREFIX="$T_PREFIX" "${envs[@]}" \
		"$EV_CENTRAL" "$P_PORT" "${P_KAFKA:-${EVC_KAFKA:-127.0.0.1:1}}" "$P_DB" --plain-links "$@"
	# keep the pane after EV_Central exits so its exit can be seen
	tmx set-option -t evc remain-on-exit on >/dev/null
}
screen_text() { tmx capture-pane -p -t evc; }
screen_esc() { tmx capture-pane -e -p -t evc; }
screen_has() { screen_text | grep -Eq -- "$1"; }
# wait_screen SECS REGEX
wait_screen() { wait_for "$1" screen_has "$2"; }
keys() { tmx send-keys -t evc "$@"; }
pane_dead() { [ "$(tmx display-message -p -t evc '#{pane_dead}')" = 1 ]; }
# EV_Central's exit status once it has exited (empty before).
central_exit() { cat "$T_DIR/central.exit" 2>/dev/null; }

# Each token of the grid and panes (not the two header rows, whose count
# chips have the state colours too) with the background colour it is drawn
# on ("A-ON 34", "FUERA_DE_SERVICIO 208", "x none"), from capture-pane -e.
screen_bg() {
	screen_esc | tail -n +3 | python3 -c '
import re, sys
sgr = re.compile(r"\x1b\[([0-9;]*)m")
for line in sys.stdin:
    bg = "none"; pos = 0; out = []
    text = ""; bgs = []
    for m in sgr.finditer(line):
        seg = line[pos:m.start()]
        text += seg; bgs += [bg] * len(seg)
        p = [int(x) if x else 0 for x in m.group(1).split(";")] if m.group(1) else [0]
        i = 0
        while i < len(p):
            c = p[i]
            if c == 0 or c == 49: bg = "none"
            elif 40 <= c <= 47: bg = str(c - 40)
            elif 100 <= c <= 107: bg = str(c - 100 + 8)
            elif c == 48 and i + 2 < len(p) and p[i+1] == 5: bg = str(p[i+2]); i += 2
            elif c in (38, 48) and i + 1 < len(p) and p[i+1] == 2: i += 4
            elif c == 38 and i + 2 < len(p) and p[i+1] == 5: i += 2
            i += 1
        pos = m.end()
    seg = line[pos:].rstrip("\n"); text += seg; bgs += [bg] * len(seg)
    for t in re.finditer(r"[A-Za-z][A-Za-z0-9_-]+", text):
        print(t.group(0), bgs[t.start()])
'
}
bg_is() { screen_bg | grep -Fxq -- "$1 $2"; }
# Any SGR colour (foreground or background, 8/16/256/true colour) on screen?
# (tmux writes 39/49, "default colour", even for colourless programs.)
screen_has_colour() {
	screen_esc | grep -Eq $'\e\\[([0-9;]*;)?(3[0-8]|4[0-8]|9[0-7]|10[0-7])(;[0-9;]*)?m'
}

# mon_up NAME CP_ID: a scripted monitor that registers CP_ID and beats.
mon_up() {
	start "$1" "$FAKE_MON"
	send "$1" "connect 127.0.0.1 $P_PORT"
	send "$1" "enq"
	send "$1" "send REGISTER#$2#Calle $2#0.35"
	send "$1" "hb $2 500"
}

# Two drivers and a stored CP that never connects (C-OFF: DESCONECTADO).
panel_db_setup() {
	"$EV_CENTRAL" --add-driver D1 --db "$P_DB" >/dev/null 2>&1 &&
		"$EV_CENTRAL" --add-driver D2 --db "$P_DB" >/dev/null 2>&1 &&
		"$EV_CENTRAL" --add-cp C-OFF "Nowhere 1" 0.40 --db "$P_DB" >/dev/null 2>&1
}

# Bring CPs into every state but FUERA_DE_SERVICIO (F-STOP is left
# ACTIVADO for the test to stop): A-ON ACTIVADO, B-BAD AVERIADO (FAULT),
# D-RES RESERVADO (D1 authorised), E-SUP SUMINISTRANDO (D2, with a
# SESSION_STARTED and a CONSUMO on cp_telemetry).
panel_six_states() {
	command -v kcat >/dev/null 2>&1 || { diag "kcat not installed"; return 1; }
	[ -x "$BUS_TOOL" ] || { diag "tests/tools/bus_tool not built"; return 1; }
	local id sid now
	for id in A-ON B-BAD D-RES E-SUP F-STOP; do mon_up "m_$id" "$id"; done
	for id in A-ON B-BAD D-RES E-SUP F-STOP; do
		wait_grep 10 "$(log_of "m_$id")" 'REGISTER_RESULT' || diag "$id did not register"
	done
	send m_B-BAD "send FAULT#B-BAD#engine KO"
	"$BUS_TOOL" produce "$EVC_KAFKA" "$(topic driver_requests)" D1 D-RES >/dev/null 2>&1 || diag "produce D1 failed"
	"$BUS_TOOL" produce "$EVC_KAFKA" "$(topic driver_requests)" D2 E-SUP >/dev/null 2>&1 || diag "produce D2 failed"
	if ! wait_grep 20 "$(log_of m_E-SUP)" 'RECV AUTORIZAR_SUMINISTRO#D2#'; then
		diag "E-SUP never got AUTORIZAR_SUMINISTRO"
		return 1
	fi
	sid=$(grep -Eo 'AUTORIZAR_SUMINISTRO#D2#[^#]+' "$(log_of m_E-SUP)" | head -1 | cut -d'#' -f3)
	now=$(date +%s)
	printf '%s\n' \
		"{\"type\":\"SESSION_STARTED\",\"cp_id\":\"E-SUP\",\"user_id\":\"D2\",\"session_id\":\"$sid\",\"seq\":1,\"timestamp\":$now}" \
		"{\"type\":\"CONSUMO\",\"cp_id\":\"E-SUP\",\"user_id\":\"D2\",\"session_id\":\"$sid\",\"seq\":2,\"kwh\":1.5,\"importe\":0.53,\"kw\":7.4,\"timestamp\":$now}" |
		kcat -b "$EVC_KAFKA" -t "$(topic cp_telemetry)" -P -k E-SUP 2>/dev/null || { diag "kcat failed"; return 1; }
}
