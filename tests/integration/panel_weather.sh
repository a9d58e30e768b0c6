#!/usr/bin/env bash
# The panel's weather line (EV_Central(1) THE PANEL, evcharging(7)
# WEATHER) in a real terminal (tmux): no line before any reading; readings
# posted to the real API show up as a third header row with the cities and
# temperatures; an alert is named and coloured as Out of Order, and the
# card it stops says "Weather alert"; a clear takes the word away; the grid
# moves down a row without losing a card.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/panel_lib.sh"
for t in curl openssl; do command -v $t >/dev/null || tap_skip_all "$t needed"; done
tap_plan 9

"$EVC_SRCDIR/scripts/pki" init "$T_DIR/pki" >/dev/null 2>&1 # beside $P_DB: Central's defaults
WX=$(openssl rand -hex 24)
(umask 077 && printf 'wx weather %s\n' "$WX" >"$T_DIR/tokens")
API_PORT=$(free_port)
"$EV_CENTRAL" --add-cp C-OFF "Nowhere 1" 0.40 --db "$P_DB" >/dev/null 2>&1
P_KAFKA=127.0.0.1:$(free_port) panel_start 120 30 -- --api "$API_PORT" --api-tokens "$T_DIR/tokens"
check "the panel is up" wait_screen 10 'EV_Central'
start m1 "$FAKE_MON"
send m1 "connect 127.0.0.1 $P_PORT"
send m1 "enq"
send m1 "send REGISTER#MAD-01#Gran Via 1, Madrid#0.35"
send m1 "hb MAD-01 500"
check "MAD-01 on the grid, and no weather line before any reading" \
	bash -c "$(declare -f wait_for screen_has screen_text tmx wait_screen); P_SOCK=$P_SOCK; wait_screen 10 'MAD-01' && ! screen_has 'Weather'"
reading() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$T_DIR/pki/ca.pem" \
	-H "Authorization: Bearer $WX" -H 'Content-Type: application/json' \
	--data "$1" "https://127.0.0.1:$API_PORT/api/v1/weather/readings"; }
check "a reading for Valencia: 200" test "$(reading '{"city":"Valencia","temperature":18}')" = 200
check "the weather line appears with Valencia 18.0 C" wait_screen 10 '^ *Weather \(below 0\.0 C stops\): +Valencia 18\.0 C'
check "the grid moved down a row and kept its cards" bash -c "tmux -L '$P_SOCK' capture-pane -p -t evc | sed -n 4,8p | grep -q 'MAD-01'"
reading '{"city":"Madrid","temperature":-2.5}' >/dev/null
check "an alert: 'Madrid -2.5 C ALERT' on the line" wait_screen 10 'Madrid -2\.5 C ALERT'
wait_grep 10 "$(log_of m1)" 'RECV PARAR' && send m1 "send ACK#PARAR"
check "the card it stops says Weather alert" wait_screen 10 'Weather alert'
check "the alert is drawn on the Out of Order orange (208), as the card" wait_for 5 bg_is ALERT 208
reading '{"city":"Madrid","temperature":3}' >/dev/null
check "a clear: the line says 3.0 C and no ALERT" wait_for 10 bash -c \
	"tmux -L '$P_SOCK' capture-pane -p -t evc | grep -q 'Madrid 3\.0 C' && ! tmux -L '$P_SOCK' capture-pane -p -t evc | grep -q ALERT"
exit "$T_FAILED"
