#!/usr/bin/env bash
# The panel's views in a real terminal (tmux), on a real database: S lists
# the stored sessions newest first with today's totals and filters by CP,
# driver or outcome; A the audit log; D the drivers; Enter on a card opens
# its detail (link, sessions, events; p asks there too); Esc goes back;
# ? lists the keys of every view; :export writes RFC 4180 CSV; o orders
# the grid; a double click opens a detail (not with --no-mouse); a resize
# keeps the view; NO_COLOR draws it without colours; a database string
# holding an escape sequence reaches the screen as text.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/panel_lib.sh"
command -v sqlite3 >/dev/null 2>&1 || tap_skip_all "sqlite3 not installed"
tap_plan 48

now=$(date +%s)
{ "$EV_CENTRAL" --add-cp MAD-01 "Calle Mayor 1" 0.35 --db "$P_DB" &&
	"$EV_CENTRAL" --add-cp BCN-01 "Rambla 2" 0.40 --db "$P_DB" &&
	"$EV_CENTRAL" --add-cp ZAR-01 "Avenida 3" 0.30 --db "$P_DB" &&
	"$EV_CENTRAL" --add-driver 101 Ana --db "$P_DB" &&
	"$EV_CENTRAL" --add-driver 102 Luis --db "$P_DB"; } >/dev/null 2>&1 || { not_ok "database set up"; exit 1; }
sqlite3 "$P_DB" "
INSERT INTO sessions(id, cp_id, driver_id, kwh, importe, price, outcome, reason, requested_at, started_at, ended_at) VALUES
 ('s-1', 'MAD-01', '101', 1.5, 0.53, 0.35, 'TICKET', NULL, $now - 3600, $now - 3590, $now - 3000),
 ('s-2', 'BCN-01', '102', 2.0, 0.80, 0.40, 'SUPPLY_ERROR', 'engine fault', $now - 1800, $now - 1790, $now - 1700),
 ('s-3', 'MAD-01', '102', 0, 0, 0.35, 'SESSION_CANCELLED', char(27) || '[31mevil' || char(7), $now - 600, NULL, $now - 590);
INSERT INTO audit_log(ts, actor, source_ip, action, cp_id, detail) VALUES
 ($now - 100, 'operator', NULL, 'OPERATOR_STOP', 'MAD-01', 'stop from the panel'),
 ($now - 50, 'api:ops', '127.0.0.1', 'CP_AUTH_FAILED', 'BCN-01', 'bad secret');
INSERT INTO cp_events(cp_id, ts, event, detail) VALUES ('MAD-01', $now - 200, 'FAULT', 'pump noise');
" || { not_ok "rows stored"; exit 1; }

panel_start 120 40
check "panel is up" wait_screen 10 'EV_Central'
mon_up m1 MAD-01
check "MAD-01's monitor registered" wait_grep 10 "$(log_of m1)" 'REGISTER_RESULT'
wait_screen 10 'ACTIVADO 1 ' || diag "MAD-01 not ACTIVADO"

# ---- S: sessions ----
keys S
check "S opens the sessions view" wait_screen 5 'Sessions: all sessions'
# the rows come on a later turn (the title says "reading..." until then)
check "... and its rows are read" wait_screen 5 'Sessions: all sessions .*row 1 of 3 .*read in'
check "... newest first (s-3 above s-2 above s-1)" bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; \
	screen_text | grep -Eo 'SESSION_CANCELLED|SUPPLY_ERROR|TICKET' | tr '\n' ' ' | grep -q '^SESSION_CANCELLED SUPPLY_ERROR TICKET'"
check "... with today's totals and those of the lines shown" \
	wait_screen 5 'today 3 sessions 3\.500 kWh 1\.33 EUR +these 3 lines 3\.500 kWh 1\.33 EUR'
check "... durations and figures (0:09:50, 1.500 kWh, 0.53 EUR)" wait_screen 5 'MAD-01 +101 +0:09:50 +1\.500 +0\.53 TICKET'
check "an escape sequence from the database is drawn as text" wait_screen 5 'SESSION_CANCELLED \?\[31mevil\?'
check "... and no red reached the terminal (the line has no SGR 31)" \
	bash -c "! { $(declare -f tmx screen_esc); P_SOCK=$P_SOCK; screen_esc | grep 'evil' | grep -q $'\e\\\\[31m'; }"
check "the footer shows the view's keys" bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; screen_text | tail -1 | grep -q 'Esc grid.*S sessions.*A audit.*D drivers'"
keys / M A D - 0 1 Space t i c k e t Enter
check "/ MAD-01 ticket: cp and outcome" wait_screen 5 'Sessions: cp MAD-01, outcome TICKET'
check "... only s-1 is left" bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; s=\$(screen_text); \
	grep -q 'today 1 sessions 1\.500 kWh' <<<\"\$s\" && ! grep -Eq 'SUPPLY_ERROR|SESSION_CANCELLED' <<<\"\$s\""
keys / C-u o u t c o m e : p a i d Enter
check "a bad filter says why and keeps the old one" wait_screen 5 "unknown outcome 'paid'"
keys / C-u 1 0 2 Enter
check "/ 102: a driver's sessions" wait_screen 5 'Sessions: driver 102'
keys Escape
check "Esc goes back to the grid" wait_for 5 bash -c "$(declare -f tmx screen_text screen_has); P_SOCK=$P_SOCK; screen_has 'Rambla 2' && ! screen_has 'Sessions:'"

# ---- A: audit ----
keys A
check "A opens the audit view" wait_screen 5 'Audit log \(newest first\)'
check "... and its rows are read" wait_screen 5 'Audit log \(newest first\) .*row 1 of [0-9]+ .*read in'
check "... newest first" bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; \
	screen_text | grep -Eo 'CP_AUTH_FAILED|OPERATOR_STOP' | tr '\n' ' ' | grep -q '^CP_AUTH_FAILED OPERATOR_STOP'"
keys / o p e r a t o r Enter
check "/ operator: only the operator's row" wait_for 5 bash -c "$(declare -f tmx screen_text screen_has); P_SOCK=$P_SOCK; \
	screen_has 'OPERATOR_STOP' && ! screen_has 'CP_AUTH_FAILED'"
keys Escape

# ---- D: drivers ----
keys D
check "D opens the drivers view" wait_screen 5 'Drivers \(registered\)'
check "... each with today's sessions, kWh and EUR" wait_screen 5 '101 +Ana +- +1 +1\.500 +0\.53'
check "... and 102 with two" wait_screen 5 '102 +Luis +- +2 +2\.000 +0\.80'
keys Enter
check "Enter on a driver: that driver's sessions" wait_screen 5 'Sessions: driver 101'
keys Escape

# ---- Enter: a CP's detail ----
keys Home Right
keys Enter
check "Enter on MAD-01 opens its detail" wait_screen 5 'CP MAD-01 '
check "... location and price" wait_screen 5 'Location Calle Mayor 1 +Price 0\.35 EUR/kWh'
check "... state and link kind since when" wait_for 5 bash -c "$(declare -f tmx screen_text screen_has); P_SOCK=$P_SOCK; \
	screen_has 'State +ACTIVADO' && screen_has 'Link +plain since [0-9]{2}-[0-9]{2} [0-9:]{8}'"
check "... its last sessions" wait_screen 5 'Last 2 sessions'
check "... and its events (the FAULT stored, the REGISTER of now)" wait_for 5 bash -c "$(declare -f tmx screen_text screen_has); P_SOCK=$P_SOCK; \
	screen_has 'FAULT +pump noise' && screen_has 'REGISTER '"
keys p
check "p in the detail asks about this CP" wait_screen 5 'Stop MAD-01 .*\[y/N\]'
keys n
check "... n cancels" wait_screen 5 'cancelled'

# ---- ?: every view's keys ----
keys '?'
check "? lists the open view's keys first" wait_screen 5 'CP detail \(Enter on a card\)'
check "... Esc among them" wait_screen 5 'Esc +back to the grid'
keys PageDown PageDown PageDown
check "... and scrolls to the other views' keys" wait_for 5 bash -c "$(declare -f tmx screen_text screen_has); P_SOCK=$P_SOCK; \
	screen_has 'Drivers \(D\)' || screen_has 'Audit log \(A\)'"
keys x Escape

# ---- :export: what the sessions view shows, so first all of them ----
keys S / Escape
wait_screen 5 'Sessions: all sessions' || diag "the sessions filter was not cleared"
keys : e x p o r t Space s e s s i o n s Space "$T_DIR/s.csv" Enter
check ":export sessions says how many rows" wait_screen 5 'exported 3 session row\(s\) to '
check "... the file is CSV with CRLF line ends and a header" bash -c "
	head -c 200 '$T_DIR/s.csv' | head -1 | grep -q \$'^requested_at,session_id,cp_id,driver_id,.*,reason\r\$' &&
	[ \$(grep -c \$'\r\$' '$T_DIR/s.csv') = 4 ]"
check "... the reason with a quote-free escape is one field" grep -q 's-3,MAD-01,102' "$T_DIR/s.csv"
keys : e x p o r t Space a u d i t Space "$T_DIR/none/a.csv" Enter
check ":export to a missing folder: an error in the panel" wait_screen 5 'export: .*none/a\.csv.*No such file'
check "... and the panel goes on" bash -c "! { $(declare -f tmx pane_dead); P_SOCK=$P_SOCK; pane_dead; }"
keys Escape

# ---- o, mouse, resize ----
keys o
check "o orders the cards by state (ACTIVADO MAD-01 first)" wait_for 5 bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; \
	screen_text | sed -n 3p | grep -q '^ MAD-01 .* BCN-01 .* ZAR-01 '"
keys o
check "o again: by location (Avenida, Calle, Rambla)" wait_for 5 bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; \
	screen_text | sed -n 3p | grep -q '^ ZAR-01 .* MAD-01 .* BCN-01 '"
keys o
# the third card (ZAR-01 in id order) is at columns 63-92: a double click on it
tmx send-keys -t evc -l $'\e[<0;70;4M\e[<0;70;4m\e[<0;70;4M\e[<0;70;4m'
check "a double click opens the card's detail" wait_screen 5 'CP ZAR-01 '
keys S
tmx resize-window -t evc -x 60 -y 20
check "60x20: the sessions view is redrawn" wait_for 10 bash -c "$(declare -f tmx screen_text); P_SOCK=$P_SOCK; \
	screen_text | grep -q 'Sessions: all' && [ \$(screen_text | head -1 | wc -c) -le 61 ]"
tmx resize-window -t evc -x 30 -y 10
check "30x10: too small" wait_screen 10 'terminal too small'
tmx resize-window -t evc -x 120 -y 40
check "back at 120x40: the view again" wait_screen 10 'Sessions: all sessions'
keys Escape

# ---- NO_COLOR and --no-mouse ----
keys q y
wait_for 10 pane_dead || diag "EV_Central did not quit"
tmx kill-server >/dev/null 2>&1
stop m1
panel_start 120 40 NO_COLOR=1 -- --no-mouse
check "NO_COLOR, --no-mouse panel is up" wait_screen 10 'EV_Central'
keys S
check "NO_COLOR sessions view" wait_screen 5 'Sessions: all sessions'
check "NO_COLOR: not one colour code in the view" bash -c "! { $(declare -f tmx screen_esc screen_has_colour); P_SOCK=$P_SOCK; screen_has_colour; }"
keys Escape
tmx send-keys -t evc -l $'\e[<0;5;4M\e[<0;5;4m\e[<0;5;4M\e[<0;5;4m'
keys C-l
check "--no-mouse: a double click opens nothing" bash -c "! { $(declare -f tmx screen_text screen_has wait_screen wait_for); P_SOCK=$P_SOCK; wait_screen 2 'CP BCN-01 '; }"
[ "$T_FAILED" = 0 ] || { diag "screen at the end:"; screen_text | sed 's/^/# /'; }
exit "$T_FAILED"
