#!/usr/bin/env bash
# The operator's CP data wins (evcharging(7) RULES): a CP added with
# --add-cp while Central runs is seen at once (listed before its monitor
# ever connects), its first REGISTER is a reconnect of a known CP, and a
# monitor's own location and price do not overwrite the operator's (the
# difference is logged once). A CP nobody entered takes the monitor's.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v sqlite3 >/dev/null || tap_skip_all "sqlite3 needed"
tap_plan 8

DB=$T_DIR/central.db
c_start c "$DB"
L=$(log_of c)
place() { sqlite3 -cmd '.timeout 3000' "$DB" "select location || '|' || price from charging_points where id='$1'"; }
listed() { "$EV_CENTRAL" ctl --db "$DB" cps | grep -Eq "^$1 +DESCONECTADO .*$2\$"; }

"$EV_CENTRAL" --add-cp MAD-01 "New place" 0.99 --db "$DB" >/dev/null
check "a running Central lists a CP added with --add-cp at once" wait_for 10 listed MAD-01 'New place'
m_start m1 MAD-01 "CP MAD-01" 0.30
M1=$(log_of m1)
check "its first REGISTER is a reconnect of a known CP" wait_grep 10 "$M1" '^RECV REGISTER_RESULT#RECONNECT$'
check "... logged as such, not 'first time'" wait_grep 5 "$L" 'CP MAD-01 registered \(reconnect\)'
check "the operator's location and price stay" [ "$(place MAD-01)" = "New place|0.99" ]
check "the monitor's differing values are logged" \
	grep -q "CP MAD-01's monitor says CP MAD-01, 0.30 EUR/kWh; keeping the operator's New place, 0.99 EUR/kWh" "$L"
send m1 "close"
wait_grep 10 "$L" 'LINK down'
m_start m2 MAD-01 "CP MAD-01" 0.30
wait_grep 10 "$(log_of m2)" '^RECV REGISTER_RESULT#RECONNECT$'
check "... once, not at every registration" [ "$(grep -c "CP MAD-01's monitor says" "$L")" = 1 ]
m_start m3 BCN-01 "Plaça Catalunya 1" 0.41
check "a CP nobody entered registers FIRST" wait_grep 10 "$(log_of m3)" '^RECV REGISTER_RESULT#FIRST$'
check "... with its monitor's location and price" wait_for 5 bash -c "[ \"\$(sqlite3 -cmd '.timeout 3000' '$DB' \"select location || '|' || price from charging_points where id='BCN-01'\")\" = 'Plaça Catalunya 1|0.41' ]"
