#!/usr/bin/env bash
# The panel in a real terminal (tmux): every CP state in its colour and with
# its word, p + y on the selected CP turns it orange "Out of Order" (and the
# monitor got PARAR), :PT / :RT stop and resume all, and the grid reflows
# at 60x20 and 200x60.
. "$(dirname "$0")/lib.sh"
need_kafka
. "$(dirname "$0")/panel_lib.sh"
tap_plan 28

panel_db_setup || { not_ok "database set up"; exit 1; }
panel_start 120 40
check "panel shows its header and the stored CP" wait_screen 10 'EV_Central.*Kafka up'
panel_six_states

check "A-ON ACTIVADO on green (34)" wait_for 15 bg_is ACTIVADO 34
check "B-BAD AVERIADO on red" wait_for 15 bg_is AVERIADO 1
check "C-OFF DESCONECTADO on grey (245)" wait_for 15 bg_is DESCONECTADO 245
check "D-RES RESERVADO on cyan" wait_for 20 bg_is RESERVADO 6
check "E-SUP SUMINISTRANDO on bright green (46)" wait_for 20 bg_is SUMINISTRANDO 46
check "supplying card shows driver, kW, kWh and EUR" \
	wait_screen 10 'D2 7\.40 kW.*'
check "... and 1.500 kWh 0.52 EUR (Central's price times energy)" wait_screen 5 '1\.500 kWh 0\.5[23] EUR'
check "the requests pane shows both requests" wait_screen 5 'D1 -> D-RES AUTH_OK'
check "colour codes are on the screen (so the NO_COLOR test's check can fail)" screen_has_colour
check "every card's id is drawn on its state's colour" \
	bash -c "$(declare -f screen_bg screen_esc tmx); P_SOCK=$P_SOCK; s=\$(screen_bg); \
	grep -Fxq 'A-ON 34' <<<\"\$s\" && grep -Fxq 'B-BAD 1' <<<\"\$s\" && grep -Fxq 'C-OFF 245' <<<\"\$s\" && \
	grep -Fxq 'D-RES 6' <<<\"\$s\" && grep -Fxq 'E-SUP 46' <<<\"\$s\""

# Select F-STOP: the last card (End), then p and y.
keys End
keys p
check "p asks for a confirmation naming the CP" wait_screen 5 'Stop F-STOP .*\[y/N\]'
keys y
check "the monitor got PARAR#CENTRAL" wait_grep 10 "$(log_of m_F-STOP)" 'RECV PARAR#CENTRAL'
check "F-STOP turns orange (208) FUERA_DE_SERVICIO" wait_for 10 bg_is FUERA_DE_SERVICIO 208
check "... with Out of Order" wait_screen 5 'Out of Order'
check "n at the confirmation sends nothing" bash -c '
	'"$(declare -f tmx keys screen_text screen_has wait_screen wait_for)"'; P_SOCK='"$P_SOCK"'
	n=$(grep -c "RECV REANUDAR" '"$(log_of m_F-STOP)"'); keys r; wait_screen 5 "Resume F-STOP" || exit 1
	keys n; wait_screen 5 cancelled || exit 1; [ "$(grep -c "RECV REANUDAR" '"$(log_of m_F-STOP)"')" = "$n" ]'

# A real engine and monitor (G-REAL, the last card): p + y on it, and the
# engine itself reports that it stopped.
n_up=5
if [ -x "$EV_CP_E" ] && [ -x "$EV_CP_M" ]; then
	n_up=6
	eport=$(free_port)
	start eng "$EV_CP_E" "$EVC_KAFKA" "$eport" --headless
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$eport" || diag "engine not listening"
	start mon "$EV_CP_M" "127.0.0.1:$eport" "127.0.0.1:$P_PORT" G-REAL --location "Real 1" --headless
	check "real G-REAL shows ACTIVADO" wait_screen 15 'G-REAL '
	keys End p
	wait_screen 5 'Stop G-REAL .*\[y/N\]' || diag "no confirmation for G-REAL"
	keys y
	check "p + y on G-REAL: the real engine reports it stopped" wait_grep 15 "$(log_of eng)" 'STOPPED'
	check "... and its card is FUERA_DE_SERVICIO" wait_for 10 bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; screen_text | grep -A2 'G-REAL ' | grep -q FUERA_DE_SERVICIO"
	keys : R Space G - R E A L Enter
	check ":R G-REAL: the real engine reports it resumed" wait_grep 15 "$(log_of eng)" 'RESUMED'
else
	# They are built with EV_Central: missing is a failure, never a skip.
	for i in 1 2 3 4; do not_ok "EV_CP_E / EV_CP_M not built in $EVC_BUILDDIR"; done
fi

# :PT stops every connected CP, :RT resumes them.
keys : P T Enter
check ":PT reaches every monitor" wait_for 15 bash -c "grep -q 'RECV PARAR' '$(log_of m_A-ON)' && grep -q 'RECV PARAR' '$(log_of m_D-RES)'"
check ":PT shows them FUERA_DE_SERVICIO" wait_screen 15 "FUERA_DE_SERVICIO $n_up "
keys : R T Enter
check ":RT resumes them" wait_for 15 bash -c "grep -q 'RECV REANUDAR' '$(log_of m_A-ON)' && grep -q 'RECV REANUDAR' '$(log_of m_F-STOP)'"
check ":RT: none left out of service" wait_screen 15 'FUERA_DE_SERVICIO 0 '

# Reflow: 6 cards, 2 a row at 60x20 (2 rows, so 2 pages); 7 a row at 200x60.
keys Home
tmx resize-window -t evc -x 60 -y 20
row_ids() { screen_text | grep -Eo '(A-ON|B-BAD|C-OFF|D-RES|E-SUP|F-STOP) ' | wc -l; }
first_row_is() { [ "$(screen_text | grep -E '^ (A-ON|B-BAD|C-OFF)' | head -1 | grep -Eo '[A-F]-[A-Z]+' | wc -l)" = "$1" ]; }
check "60x20: two cards a row, two pages" wait_for 10 bash -c "$(declare -f tmx screen_text first_row_is); P_SOCK=$P_SOCK; first_row_is 2 && screen_text | grep -q 'page 1/2'"
tmx resize-window -t evc -x 200 -y 60
check "200x60: all six cards on one row, one page" wait_for 10 bash -c "$(declare -f tmx screen_text first_row_is); P_SOCK=$P_SOCK; first_row_is 6 && screen_text | grep -q 'page 1/1'"
tmx resize-window -t evc -x 30 -y 10
check "30x10 says the terminal is too small" wait_screen 10 'terminal too small'
tmx resize-window -t evc -x 60 -y 20
wait_screen 10 'page 1/2'
keys PageDown
check "PgDn at 60x20 shows the second page" wait_for 10 bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; screen_text | grep -q 'page 2/2' && screen_text | grep -Eq '^ E-SUP .* F-STOP '"
[ "$T_FAILED" = 0 ] || { diag "screen at the end:"; screen_text | sed 's/^/# /'; }
exit "$T_FAILED"
