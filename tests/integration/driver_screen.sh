#!/bin/bash
# EV_Driver's screen in a real terminal (tmux), with kcat playing Central:
# the CPs available now, choosing one with the arrows and Enter, typing
# `r CP`, the live supply (CP, kW, kWh, EUR, elapsed), the ticket, the
# events pane, resize, q; the summary once the terminal is given back.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
command -v tmux >/dev/null || tap_skip_all "tmux not installed"
tap_plan 13

K=$EVC_KAFKA
SOCK="evc-$T_NAME-$$"
tmx() { tmux -L "$SOCK" "$@"; }
trap 'tmux -L "$SOCK" kill-server >/dev/null 2>&1; t_cleanup' EXIT
screen_has() { tmx capture-pane -p -t drv | grep -Eq -- "$1"; }
wait_screen() { wait_for "$1" screen_has "$2"; }
keys() { tmx send-keys -t drv "$@"; }
notify() { printf '%s\t%s\n' "$1" "$2" | kcat -b "$K" -P -t "$(topic driver_notifications)" -K $'\t'; }
note() { notify "$2" "{\"type\":\"$1\",\"cp_id\":\"$3\",\"user_id\":\"$2\",\"target_driver\":\"$2\",\"session_id\":\"$4\"$5}"; }
requests() { kcat -b "$K" -C -t "$(topic driver_requests)" -o beginning -e -q -f '%s\n' 2>/dev/null; }
has_request() { requests | grep -q "\"cp_id\":\"$1\""; }

tmx -f /dev/null new-session -d -s drv -x 100 -y 30 \
	bash -c '"$@" 2>"'"$T_DIR"'/stderr"; echo $? >"'"$T_DIR"'/exit"; cat' drv \
	env TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 EVC_TOPIC_PREFIX="$T_PREFIX" "$EV_DRIVER" "$K" 101
check "the screen comes up" wait_screen 20 'EV_Driver +driver 101'
check "no CP known yet: it says so" screen_has 'waiting for network_status'
printf '%s\n' '{"type":"NETWORK_STATUS_UPDATE","timestamp":1700000100.0,"cps":[{"id":"MAD-01","status":"ACTIVADO","location":"C/ Serrano 10","price":0.25},{"id":"MAD-02","status":"AVERIADO","location":"Gran Via 1","price":0.3},{"id":"BCN-01","status":"ACTIVADO","location":"Diagonal 5","price":0.31}]}' |
	kcat -b "$K" -P -t "$(topic network_status)"
check "CPs available now, with location and price" wait_screen 20 'MAD-01 +0\.25 EUR/kWh +C/ Serrano 10'
check "a CP not available is shown with its state" screen_has 'MAD-02 +AVERIADO'
keys Down Enter
check "Down + Enter asks for the second available CP" wait_for 15 has_request BCN-01
check "the request shows in the events pane" wait_screen 10 'REQUEST cp=BCN-01'
note AUTH_OK 101 BCN-01 S1 ',"message":"plug in"'
check "authorised: waiting for the plug" wait_screen 10 'authorised: plug in'
note CONSUMO_UPDATE 101 BCN-01 S1 ',"kwh":1.234,"importe":0.38,"kw":7.4'
check "the live supply: kW, kWh, EUR" wait_screen 10 '7\.40 kW'
check "energy and amount" bash -c "tmux -L '$SOCK' capture-pane -p -t drv | grep -q '1.234 kWh' && tmux -L '$SOCK' capture-pane -p -t drv | grep -q '0.38 EUR'"
note TICKET 101 BCN-01 S1 ',"kwh":2.0,"importe":0.62,"price":0.31,"started_at":1700000000.0,"ended_at":1700000600.0'
check "the ticket" wait_screen 10 '2\.000 kWh x 0\.31 EUR/kWh = 0\.62 EUR'
keys r M A D - 0 1 Enter
check "r + typed CP id asks for it" wait_for 15 has_request MAD-01
tmx resize-window -t drv -x 40 -y 10 2>/dev/null
check "too small a terminal says so" wait_screen 10 'terminal too small'
tmx resize-window -t drv -x 100 -y 30 2>/dev/null
keys q
wait_for 15 test -s "$T_DIR/exit"
check "q: exits 0, summary on stdout after the screen" wait_for 5 bash -c "[ \"\$(cat '$T_DIR/exit')\" = 0 ] && tmux -L '$SOCK' capture-pane -p -t drv | grep -q '^[0-9T:.-]* SUMMARY served=1 '"
