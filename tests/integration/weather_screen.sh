#!/usr/bin/env bash
# EV_W's screen in a real terminal (tmux), against the SIMULATED provider
# with Central's port closed: the cities with their temperature, the last
# provider error, Central UNREACHABLE with its retry, a config error shown
# while the last good config goes on, r reads now, ? shows the keys from
# the key table, colours (and none with --no-color), a terminal too small,
# q quits with status 0; the key is never on the screen.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/weather_lib.sh"
w_need
command -v tmux >/dev/null || tap_skip_all "tmux not installed"
tap_plan 14

SOCK="evc-$T_NAME-$$"
tmx() { tmux -L "$SOCK" "$@"; }
trap 'tmux -L "$SOCK" kill-server >/dev/null 2>&1; t_cleanup' EXIT
screen() { tmx capture-pane -p -t "$1"; }
screen_has() { screen "$1" | grep -Eq -- "$2"; }
wait_screen() { wait_for "$2" screen_has "$1" "$3"; }
requests_of() { curl -sf "$W_SIM/sim/cities" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"].get(sys.argv[1], 0))' "$1"; }
more_requests() { [ "$(requests_of "$1")" -gt "$2" ]; }

w_secrets
w_ca
w_sim_start --city Madrid=12.5 --city 'San Sebastián=-1.5' || { not_ok "weather_sim starts"; exit 1; }
W_INTERVAL=60 w_config Madrid 'San Sebastián' Atlantis
C=https://127.0.0.1:$(free_port)
# run NAME [ARGS...]: EV_W on a 110x30 terminal; its status lands in $T_DIR/NAME.exit
run() {
	local n=$1; shift
	tmx -f /dev/null new-session -d -s "$n" -x 110 -y 30 \
		bash -c '"$@" 2>"'"$T_DIR"'/'"$n"'.stderr"; echo $? >"'"$T_DIR"'/'"$n"'.exit"; sleep 600' "$n" \
		env TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 "$EV_W" "$C" "$T_DIR/config.json" \
		--token-file "$T_DIR/weather.token" "$@"
}
run w
check "the screen comes up" wait_screen w 15 'EV_W weather office +Central https://127\.0\.0\.1:'
check "a city with its temperature" wait_screen w 10 'Madrid +12\.50 '
check "a UTF-8 city name" wait_screen w 10 'San Sebastián +-1\.50 '
check "a provider error in the city's row" wait_screen w 10 'Atlantis .*city not found \(HTTP 404\)'
check "Central unreachable, with the next retry" wait_screen w 10 'Central: UNREACHABLE +retry in [0-9.]+ s'

# r reads now (the interval is 60 s)
before=$(requests_of Madrid)
tmx send-keys -t w r
check "r reads every city now" wait_for 10 more_requests Madrid "$before"

tmx send-keys -t w '?'
check "? shows the keys, from the key table" wait_screen w 5 'EV_W: keys'
check "the help lists r" screen_has w 'r +read every city now'
tmx send-keys -t w x
check "any key closes the help" wait_for 5 bash -c "! tmux -L '$SOCK' capture-pane -p -t w | grep -q 'EV_W: keys'"

printf '{"provider":"%s","api_key_file":"owm.key","cities":["Madrid",""]}\n' "$W_SIM" >"$T_DIR/config.json"
tmx send-keys -t w r
bad_config_shown() {
	wait_screen w 10 'config error, running on the last good config' &&
		screen_has w 'config\.json: cities\[1\]: empty city name' && screen_has w 'Atlantis .*city not found'
}
check "a bad config shown, the last good one kept (Atlantis still listed)" bad_config_shown

check "colours on a colour terminal" bash -c "tmux -L '$SOCK' capture-pane -e -p -t w | grep -q $'\e\\[[0-9;]*3[0-9]'"
tmx resize-window -t w -x 40 -y 10 2>/dev/null
check "too small a terminal says so" wait_screen w 10 'terminal too small'
tmx resize-window -t w -x 110 -y 30 2>/dev/null
check "the key is never on the screen" bash -c "! tmux -L '$SOCK' capture-pane -p -S - -t w | grep -Fq '$W_KEY'"
tmx send-keys -t w q
wait_for 10 test -s "$T_DIR/w.exit"
check "q quits with status 0" test "$(cat "$T_DIR/w.exit" 2>/dev/null)" = 0
