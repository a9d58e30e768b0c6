#!/usr/bin/env bash
# The panel's modes in a real terminal (tmux): NO_COLOR=1 shows no colour
# codes but every state word on the cards; ? draws the help from the key
# table; / filters; q asks before quitting. --readonly (with --no-color)
# refuses p, P and :PT and says so.
. "$(dirname "$0")/lib.sh"
need_kafka
. "$(dirname "$0")/panel_lib.sh"
tap_plan 28

panel_db_setup || { not_ok "database set up"; exit 1; }
panel_start 120 40 NO_COLOR=1
check "NO_COLOR panel is up" wait_screen 10 'EV_Central.*Kafka up'
panel_six_states
keys : P Space F - S T O P Enter
cards_have() { screen_text | tail -n +3 | grep -q -- "$1"; }
all_words() {
	local w
	for w in ACTIVADO AVERIADO DESCONECTADO RESERVADO SUMINISTRANDO FUERA_DE_SERVICIO 'Out of Order'; do
		cards_have "$w" || return 1
	done
}
check "NO_COLOR: every state word is on a card" wait_for 20 all_words
check "NO_COLOR: not one colour code on the screen" bash -c "! { $(declare -f tmx screen_esc screen_has_colour); P_SOCK=$P_SOCK; screen_has_colour; }"
check "NO_COLOR: the selected card is still marked (reverse video)" bash -c "$(declare -f tmx screen_esc); P_SOCK=$P_SOCK; screen_esc | grep -q $'\e\\\\[[0-9;]*7m'"

keys '?'
check "? shows the help generated from the key table" wait_screen 5 'Left/h +select the card to the left'
check "... which lists the commands" wait_screen 5 'p +stop the selected CP'
keys x
check "any key closes the help" wait_for 5 bash -c "! { $(declare -f tmx screen_text screen_has); P_SOCK=$P_SOCK; screen_has 'any key closes'; }"

keys / B A D
check "/ filters by id: only B-BAD is left" wait_for 5 bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; s=\$(screen_text | tail -n +3); grep -q 'B-BAD' <<<\"\$s\" && ! grep -q 'A-ON' <<<\"\$s\""
keys Escape
check "Esc clears the filter" wait_screen 5 '6 CPs'
keys / S U M I N Enter
check "/ filters by state word" wait_for 5 bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; screen_text | grep -q '/SUMIN: 1 of 6'"
keys / Escape

keys c
check "c: compact cards, id and state word on one line" wait_screen 5 '^ A-ON +ACTIVADO +B-BAD +AVERIADO'
keys c
check "c again: full cards" wait_screen 5 'full cards: [0-9]+ a page'

keys q
check "q asks before quitting" wait_screen 5 'Quit EV_Central\? .*\[y/N\]'
keys n
check "n keeps it running" wait_screen 5 cancelled
keys q
keys y
check "q then y quits EV_Central" wait_for 10 pane_dead
wait_for 10 test -s "$T_DIR/central.exit"
st=$(central_exit)
check "... with exit status 0 (got $st)" [ "$st" = 0 ]
panel_end

# --readonly --no-color: a fresh Central on a new port, one monitor.
for id in A-ON B-BAD D-RES E-SUP F-STOP; do stop "m_$id"; done
P_PORT=$(free_port)
panel_start 120 40 -- --readonly --no-color
wait_screen 10 'READ-ONLY' || diag "no READ-ONLY in the bar"
mon_up m_ro A-ON
wait_grep 10 "$(log_of m_ro)" 'REGISTER_RESULT' || diag "A-ON did not register"
check "--readonly: the CP shows" wait_screen 10 'A-ON .*EUR/kWh'
keys p
check "--readonly refuses p and says so" wait_screen 5 'read-only panel: commands are disabled'
keys Escape : P T Enter
check "--readonly refuses :PT and says so" wait_screen 5 "'PT' refused"
keys P
send m_ro "enq"
wait_grep 5 "$(log_of m_ro)" 'GOT ACK' >/dev/null
check "--readonly: the monitor never got PARAR; --no-color: no colour" \
	bash -c "! grep -q 'RECV PARAR' '$(log_of m_ro)' && ! { $(declare -f tmx screen_esc screen_has_colour); P_SOCK=$P_SOCK; screen_has_colour; }"

panel_end

# An 8-colour terminal under the C locale: orange falls back to yellow and
# the lines are ASCII.
stop m_ro
P_PORT=$(free_port)
panel_start 100 30 TERM=xterm LANG=C LC_ALL=C
wait_screen 10 'EV_Central' || diag "the 8-colour panel did not start"
mon_up m_8 A-ON
wait_grep 10 "$(log_of m_8)" 'REGISTER_RESULT' || diag "A-ON did not register"
check "8 colours: ACTIVADO on green (2)" wait_for 10 bg_is ACTIVADO 2
keys : P Space A - O N Enter
check "8 colours: FUERA_DE_SERVICIO on yellow (3), orange's stand-in" wait_for 10 bg_is FUERA_DE_SERVICIO 3
check "C locale: ASCII lines, no UTF-8 box drawing" bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; s=\$(screen_text); grep -q -- '-- Requests' <<<\"\$s\" && ! grep -q '─' <<<\"\$s\""

keys : Q Enter
check ":Q quits at once, exit status 0" wait_for 10 bash -c "[ \"\$(cat '$T_DIR/central.exit' 2>/dev/null)\" = 0 ]"
panel_end

# No broker: the header says so, the log pane says why, and nothing
# librdkafka might print on stderr scribbles over the screen (the panel
# reads stderr into its log pane; librdkafka's own lines go through our
# logger, so normally there is none).
P_PORT=$(free_port)
P_KAFKA=127.0.0.1:$(free_port) panel_start 120 30
check "no broker: the header says Kafka unreachable" wait_screen 15 'Kafka unreachable'
check "no broker: the log pane says why" wait_screen 15 '│[0-9:]{8} KAFKA down reason=.*brokers are down'
check "no stderr line outside the log pane" bash -c "! { $(declare -f tmx screen_text); P_SOCK=$P_SOCK; screen_text | grep -E '%[0-9]\|' | grep -Evq '│[0-9:]{8} %[0-9]\|'; }"
check "... and the screen keeps its shape (header on top, bar at the bottom)" \
	bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; s=\$(screen_text); head -1 <<<\"\$s\" | grep -q '^ EV_Central' && tail -1 <<<\"\$s\" | grep -q 'q quit'"

[ "$T_FAILED" = 0 ] || { diag "screen at the end:"; screen_text | sed 's/^/# /'; }
exit "$T_FAILED"
