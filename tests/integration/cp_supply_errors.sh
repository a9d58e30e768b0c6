#!/bin/bash
# Supplies that do not end well, with the real Central and broker: a fault
# (k) and an operator stop (P) during a supply end it with SUPPLY_ERROR and
# the partial figures; an engine killed and restarted mid-supply leaves no
# session open (CHECK_SESSION after the restart) and the CP usable again.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
tap_plan 24

cp_add_driver 101 Ana
cp_central central
C=$(log_of central)
cp_engine e1 --power 50
E=$(log_of e1)
cp_monitor m1 MAD-01 --price 0.40
M=$(log_of m1)
wait_for 10 is_state "$C" MAD-01 ACTIVADO

# start_supply ENGINE: ask for driver 101, plug in, wait for 3 CONSUMO; sets S.
start_supply() {
	local log; log=$(log_of "$1")
	local before; before=$(count_grep "$log" '^[0-9T:.-]* AUTH driver=101 ')
	local starts; starts=$(count_grep "$log" '^[0-9T:.-]* CONSUMO seq=4 ')
	send "$1" "d 101"
	wait_for 20 bash -c "[ \$(grep -c '^[0-9T:.-]* AUTH driver=101 ' '$log') -gt $before ]" || return 1
	S=$(session_of "$log")
	send "$1" e
	wait_for 10 bash -c "[ \$(grep -c '^[0-9T:.-]* CONSUMO seq=4 ' '$log') -gt $starts ]" || return 1
	wait_for 5 is_state "$C" MAD-01 SUMINISTRANDO
}
# partial_ok SESSION: SUPPLY_ERROR notification with partial figures > 0.
partial_ok() {
	python3 -c '
import json,sys; t=json.loads(sys.argv[1])
assert t["kwh_partial"] > 0 and abs(t["importe_partial"] - t["kwh_partial"] * 0.40) <= 0.0051, t' "$(note_for SUPPLY_ERROR "$1")"
}

# ---- a fault during the supply ----
check "supply 1 running" start_supply e1
S1=$S
send e1 k
check "fault: the engine ends the supply at once (AVERIADO)" wait_grep 3 "$E" "^[0-9T:.-]* SUPPLY END driver=101 session=$S1 .*reason=fault$"
check "fault: the driver gets SUPPLY_ERROR" wait_for 15 has_note SUPPLY_ERROR "$S1"
check "fault: with partial kWh and EUR" partial_ok "$S1"
check "fault: CP is AVERIADO" wait_for 3 is_state "$C" MAD-01 AVERIADO
send e1 k
wait_for 4 is_state "$C" MAD-01 ACTIVADO

# ---- an operator stop during the supply ----
check "supply 2 running" start_supply e1
S2=$S
send central "P MAD-01"
check "stop: the engine stops supplying and is out of order" wait_grep 5 "$E" '^[0-9T:.-]* STOPPED \(Out of Order\)$'
check "stop: the monitor relays ACK#PARAR" wait_grep 5 "$M" '^[0-9T:.-]* RELAY PARAR -> ACK#PARAR$'
check "stop: CP is FUERA_DE_SERVICIO" wait_for 5 is_state "$C" MAD-01 FUERA_DE_SERVICIO
check "stop: the driver gets SUPPLY_ERROR with partial figures" wait_for 15 bash -c "$(declare -f note_for notes topic has_note partial_ok); K='$K' T_PREFIX='$T_PREFIX'; has_note SUPPLY_ERROR '$S2' && partial_ok '$S2'"
n=$(grep -c "^[0-9T:.-]* CONSUMO " "$E")
send e1 "d 101"
check "stopped: Central denies a new request" wait_grep 15 "$C" ' AUTH_DENIED 101 MAD-01 '
a=$(exchange "$CP_EPORT" "AUTORIZAR_SUMINISTRO#101#X-1#0.40")
check "stopped: the engine itself refuses an authorisation ($a)" [ "$a" = "NACK#AUTORIZAR_SUMINISTRO#stopped: the CP is out of order" ]
[ "$(grep -c '^[0-9T:.-]* CONSUMO ' "$E")" = "$n" ] && ok "stopped: no more telemetry" || not_ok "stopped: no more telemetry"
send central "R MAD-01"
check "resume: ACTIVADO again" wait_for 5 is_state "$C" MAD-01 ACTIVADO
a=$(exchange "$CP_EPORT" "HEALTH_CHECK#MAD-01")
check "a per-exchange client gets its answer too ($a)" [ "$a" = "OK" ]

# ---- the engine killed and restarted mid-supply ----
check "supply 3 running" start_supply e1
S3=$S
stop e1 KILL
check "engine killed: Central ends the session with SUPPLY_ERROR" wait_for 10 has_note SUPPLY_ERROR "$S3"
cp_engine e2 --power 50
check "restarted engine asks CHECK_SESSION and ends cleanly" wait_grep 10 "$(log_of e2)" '^[0-9T:.-]* CHECK_SESSION (none|driver=101 session=[^ ]+ ended)'
check "CP usable again: ACTIVADO, no session open" wait_for 6 is_state "$C" MAD-01 ACTIVADO
[ "$(notes | grep -c "\"session_id\":\"$S3\".*\"type\":\"\(TICKET\|SUPPLY_ERROR\)\"\|\"type\":\"\(TICKET\|SUPPLY_ERROR\)\".*\"session_id\":\"$S3\"")" = 1 ] &&
	ok "that session ended exactly once" || not_ok "that session ended exactly once"

# ---- the monitor killed mid-supply ----
check "supply 4 running" start_supply e2
S4=$S
stop m1 KILL
t0=$(date +%s%N)
check "monitor lost: the engine ends the supply (CONEXION_PERDIDA) after 5 s" wait_grep 9 "$(log_of e2)" "^[0-9T:.-]* SUPPLY END driver=101 session=$S4 .*reason=monitor lost$"
diag "supply ended $(( ($(date +%s%N) - t0) / 1000000 )) ms after the monitor died"
check "monitor lost: the driver gets one SUPPLY_ERROR" bash -c "$(declare -f notes topic note_for has_note wait_for); K='$K' T_PREFIX='$T_PREFIX'; wait_for 10 has_note SUPPLY_ERROR '$S4' && [ \$(notes | grep '\"session_id\":\"$S4\"' | grep -c '\"type\":\"SUPPLY_ERROR\"') = 1 ]"
check "monitor lost: CP is DESCONECTADO" is_state "$C" MAD-01 DESCONECTADO
