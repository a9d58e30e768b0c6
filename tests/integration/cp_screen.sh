#!/bin/bash
# The engine's and the monitor's screens, for real: tmux runs them on a
# terminal, send-keys types, capture-pane reads the text (and -e the
# colours). No Central is needed: the monitor shows it as down.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
need_kafka
command -v tmux >/dev/null || tap_skip_all "tmux not installed"
tap_plan 14

SOCK="evc-cp-$$"
TM() { tmux -L "$SOCK" "$@"; }
t_screen_cleanup() { TM kill-server 2>/dev/null; t_cleanup; }
trap t_screen_cleanup EXIT
EP=$(free_port)
DEAD=$(free_port)
# screen NAME: its text now.
screen() { TM capture-pane -p -t "$1" 2>/dev/null; }
shows() { screen "$1" | grep -Eq -- "$2"; }
TM -f /dev/null new-session -d -s e -x 100 -y 30 "env -u NO_COLOR EVC_TOPIC_PREFIX=$T_PREFIX $EV_CP_E $EVC_KAFKA $EP"
TM new-session -d -s m -x 100 -y 30 "$EV_CP_M 127.0.0.1:$EP 127.0.0.1:$DEAD MAD-01 --price 0.25"

check "engine screen: CP id learnt from the monitor, health OK" wait_for 10 bash -c "$(declare -f TM screen shows); SOCK=$SOCK; shows e 'CP +MAD-01' && shows e 'Health +OK'"
check "engine screen: key help bar" shows e 'k fault on/off +e plug in +u unplug +d charge for driver'
check "engine screen: the header says Release-1 plaintext" bash -c "$(declare -f TM screen); SOCK=$SOCK; screen e | head -n 1 | grep -q 'EV_CP_E  R1 plaintext'"
check "monitor screen: the header says Release-1 plaintext" wait_for 10 bash -c "$(declare -f TM screen); SOCK=$SOCK; screen m | head -n 1 | grep -q 'EV_CP_M MAD-01  R1 plaintext'"
check "monitor screen: engine up, Central down, DESCONECTADO" wait_for 10 bash -c "$(declare -f TM screen shows); SOCK=$SOCK; shows m 'Engine +up' && shows m 'Central +down' && shows m 'State +DESCONECTADO'"
TM send-keys -t e k
check "k: engine shows the fault" wait_for 3 shows e 'Health +KO \(simulated fault\)'
check "k: the fault is drawn in the panel's red" bash -c "TM() { tmux -L $SOCK \"\$@\"; }; TM capture-pane -e -p -t e | grep 'KO (simulated fault)' | grep -q $'\e\\[41m'"
check "monitor sees KO within 2 s" wait_for 2 shows m 'Health +KO +engine reports KO'
TM send-keys -t e d 1 0 1
check "d opens a driver id prompt" wait_for 3 shows e 'driver id: 101_'
TM send-keys -t e Enter
check "Enter sends the request (event pane)" wait_for 3 shows e 'REQUEST driver=101 cp=MAD-01'
TM send-keys -t e '?'
check "? shows the key help" wait_for 3 shows e '│  u    unplug|\|  u    unplug'
TM send-keys -t e x
check "any key closes the help" wait_for 3 bash -c "$(declare -f TM screen shows); SOCK=$SOCK; ! shows e '  u    unplug'"
TM resize-window -t m -x 40 -y 10 2>/dev/null || TM resize-pane -t m -x 40 -y 10
check "a tiny terminal says so instead of drawing garbage" wait_for 3 shows m 'terminal too small'
TM send-keys -t m q
TM send-keys -t e q
check "q quits both" wait_for 5 bash -c "! tmux -L $SOCK has-session -t e 2>/dev/null && ! tmux -L $SOCK has-session -t m 2>/dev/null"
