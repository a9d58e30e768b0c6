#!/bin/bash
# An engine killed mid-supply (evcharging(7) RULES): its monitor sees the
# engine link drop and reports the fault at once, so Central ends the
# session SUPPLY_ERROR with the last metered figures within seconds (not
# after the supply watchdog); the engine started again asks which session
# it was serving (CHECK_SESSION), learns there is none, and the CP serves
# the next driver.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
tap_plan 6

cp_add_driver 101 Ana
cp_add_driver 102 Luis
# A watchdog long enough that it cannot be what ends the session here.
start central "$EV_CENTRAL" "$CP_CPORT" "$K" --db "$CP_DB" --headless --plain-links --supply-timeout 60
C=$(log_of central)
wait_grep 20 "$C" ' READY '
cp_engine e1 --power 72
E=$(log_of e1)
cp_monitor m1 MAD-01 --price 0.25
wait_for 15 is_state "$C" MAD-01 ACTIVADO
send e1 "d 101"
wait_grep 20 "$E" '^[0-9T:.-]* AUTH driver=101 session='
S=$(session_of "$E")
send e1 e
wait_for 10 is_state "$C" MAD-01 SUMINISTRANDO
metered() { note_for CONSUMO_UPDATE "$S" | grep -q '"kwh":0.0[2-9]'; }
wait_for 15 metered
last=$(note_for CONSUMO_UPDATE "$S" | python3 -c 'import json,sys; print(json.load(sys.stdin)["kwh"])')
stop e1 KILL
check "Central ends the session SUPPLY_ERROR within 5 s (engine unreachable)" \
	wait_grep 5 "$C" "SUPPLY_ERROR 101 MAD-01 session=$S .*reason=CP MAD-01 fault: engine unreachable"
check "the driver's SUPPLY_ERROR bills at least what was metered ($last kWh)" wait_for 10 bash -c \
	"$(declare -f notes note_for topic); K='$K' T_PREFIX='$T_PREFIX'
	 note_for SUPPLY_ERROR '$S' | python3 -c 'import json,sys; t=json.load(sys.stdin); assert t[\"kwh_partial\"] >= $last > 0, t'"
check "the stored session is ended once, with those figures" bash -c \
	"[ \"\$(sqlite3 '$CP_DB' \"select count(*) from sessions where id='$S' and outcome='SUPPLY_ERROR' and kwh >= $last\")\" = 1 ]"
cp_engine e2 --power 72
E2=$(log_of e2)
check "the new engine asks for its session and there is none" wait_grep 20 "$E2" '^[0-9T:.-]* CHECK_SESSION none$'
check "the CP is ACTIVADO again" wait_for 15 is_state "$C" MAD-01 ACTIVADO
send e2 "d 102"
check "and serves the next driver" wait_grep 20 "$E2" '^[0-9T:.-]* AUTH driver=102 session='
