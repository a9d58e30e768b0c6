#!/bin/bash
# Billing integrity with the real programs (evcharging(7) RULES):
#  - the supply watchdog: an engine whose telemetry never reaches Central
#    (it writes to another network's topics) has its session ended after
#    --supply-timeout, the driver told, and the engine told to stop
#    metering (FIN_SUMINISTRO through the real monitor);
#  - a 4 s link blip (the monitor SIGSTOPped past Central's 3 s heartbeat
#    timeout, within the engine's 5 s) keeps the session: billed kWh ==
#    metered kWh, and the CP is never offered to another driver meanwhile;
#  - a REQUEST_CHARGE replayed after its session ended opens no second one.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
tap_plan 13

# request USER CP RID: a REQUEST_CHARGE on Central's driver_requests.
request() {
	printf '%s\t{"type":"REQUEST_CHARGE","user_id":"%s","cp_id":"%s","request_id":"%s","timestamp":%s}\n' \
		"$1" "$1" "$2" "$3" "$(date +%s.%N)" | kcat -b "$K" -P -t "$(topic driver_requests)" -K $'\t'
}
tel() { # tel CP USER SESSION TYPE SEQ: a plaintext Release-1 telemetry message
	printf '%s\t{"type":"%s","cp_id":"%s","user_id":"%s","session_id":"%s","seq":%s,"kwh":0,"timestamp":%s}\n' \
		"$1" "$4" "$1" "$2" "$3" "$5" "$(date +%s.%N)" | kcat -b "$K" -P -t "$(topic cp_telemetry)" -K $'\t'
}
count_notes() { notes | grep "\"type\":\"$1\"" | grep -c "\"session_id\":\"$2\"" || true; }

cp_add_driver 101 Ana
cp_add_driver 102 Luis
start central "$EV_CENTRAL" "$CP_CPORT" "$K" --db "$CP_DB" --headless --supply-timeout 3 --plain-links
wait_grep 20 "$(log_of central)" ' READY '
C=$(log_of central)

# ---- 1. the watchdog ----
# The engine's own telemetry goes to another network's topics: Central
# sees the supply start (we say so on its behalf) and then nothing.
cp_engine e1 --power 50 --topic-prefix "lost-$T_PREFIX"
E=$(log_of e1)
cp_monitor m1 MAD-01 --price 0.25
wait_for 15 is_state "$C" MAD-01 ACTIVADO
request 101 MAD-01 r-wd-1
wait_grep 20 "$E" '^[0-9T:.-]* AUTH driver=101 session=' || diag "no AUTH"
S=$(session_of "$E")
send e1 e
wait_grep 5 "$E" "^[0-9T:.-]* SUPPLY START driver=101 session=$S "
tel MAD-01 101 "$S" SESSION_STARTED 1
check "Central sees the supply start" wait_for 10 is_state "$C" MAD-01 SUMINISTRANDO
check "no telemetry for 3 s: the session ends SUPPLY_ERROR" wait_for 15 has_note SUPPLY_ERROR "$S"
check "... saying why" bash -c "$(declare -f notes note_for topic); K='$K' T_PREFIX='$T_PREFIX'; note_for SUPPLY_ERROR '$S' | grep -q 'no telemetry for 3 s'"
check "the engine is told to stop metering it (FIN_SUMINISTRO through the monitor)" \
	wait_grep 10 "$E" "^[0-9T:.-]* SUPPLY END driver=101 session=$S .*reason=ended by central"
check "the CP is free again" wait_for 10 is_state "$C" MAD-01 ACTIVADO
stop m1
stop e1

# ---- 2. a 4 s link blip mid-supply ----
cp_engine e2 --power 100
E=$(log_of e2)
cp_monitor m2 MAD-01 --price 0.25
wait_for 15 is_state "$C" MAD-01 ACTIVADO
request 101 MAD-01 r-blip-1
wait_grep 20 "$E" '^[0-9T:.-]* AUTH driver=101 session=' || diag "no AUTH"
S=$(session_of "$E")
send e2 e
wait_for 10 is_state "$C" MAD-01 SUMINISTRANDO
wait_grep 8 "$E" '^[0-9T:.-]* CONSUMO seq=3 '
kill -STOP "$(pid_of m2)"
check "Central declares the link lost (3 s heartbeat) and keeps the session" \
	wait_grep 10 "$C" "CP MAD-01 link lost with session $S open: kept for 10 s"
# Meanwhile the CP is nobody else's: a request for it is denied.
request 102 MAD-01 r-blip-2
check "another driver is refused the CP during the blip" wait_for 10 bash -c \
	"$(declare -f notes topic); K='$K' T_PREFIX='$T_PREFIX'; notes | grep '\"type\":\"AUTH_DENIED\"' | grep -q '\"request_id\":\"r-blip-2\"'"
# Resumed well within the engine's 5 s of monitor silence (the link has
# been gone 3 s at least: Central said so above).
kill -CONT "$(pid_of m2)"
check "the monitor is back within the grace: the session goes on" wait_grep 15 "$C" "CP MAD-01 back within the grace: session $S goes on"
check "the engine kept supplying all along" bash -c "! grep -q '^[0-9T:.-]* SUPPLY END driver=101 session=$S ' '$E'"
wait_grep 8 "$E" '^[0-9T:.-]* CONSUMO seq=10 '
send e2 u
wait_grep 5 "$E" "^[0-9T:.-]* SUPPLY END driver=101 session=$S "
check "the driver gets the TICKET" wait_for 15 has_note TICKET "$S"
ekwh=$(grep "^[0-9T:.-]* SUPPLY END driver=101 session=$S " "$E" | sed -E 's/.* kwh=([0-9.]+) .*/\1/')
check "billed kWh == metered kWh ($ekwh)" python3 -c '
import json,sys; t=json.loads(sys.argv[1]); assert abs(t["kwh"] - float(sys.argv[2])) < 0.0011, (t, sys.argv[2])' \
	"$(note_for TICKET "$S")" "$ekwh"
check "no SUPPLY_ERROR for it" bash -c "[ \$(K='$K' T_PREFIX='$T_PREFIX'; $(declare -f notes topic count_notes); count_notes SUPPLY_ERROR '$S') = 0 ]"

# ---- 3. a replayed request opens no second session ----
wait_for 10 is_state "$C" MAD-01 ACTIVADO
request 101 MAD-01 r-blip-1
request 101 MAD-01 r-blip-1
# The same driver's next request is behind the replays on the same
# partition (key = driver): once it is answered, they were taken.
request 101 NO-SUCH-CP r-after
wait_for 15 bash -c "$(declare -f notes topic); K='$K' T_PREFIX='$T_PREFIX'; notes | grep -q '\"request_id\":\"r-after\"'"
check "the replay of an answered request is ignored (one AUTHORISED for it)" bash -c \
	"[ \$(grep -c 'driver 101 authorised on CP MAD-01' '$C') = 2 ]"
