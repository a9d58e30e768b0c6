#!/bin/bash
# A supply from the engine's own keys, end to end through the real Central
# and broker: the CP's menu asks for driver 101 (REQUEST_CHARGE, origin cp),
# Central authorises through the monitor, the engine plugs in, meters, and
# unplugs; the driver's TICKET says amount = kWh x price. Then --auto-plug.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
tap_plan 18

cp_add_driver 101 Ana
cp_add_driver 102 Luis
cp_central central
C=$(log_of central)
cp_engine e1 --power 900
E=$(log_of e1)
cp_monitor m1 MAD-01 --price 0.25
wait_for 10 is_state "$C" MAD-01 ACTIVADO

send e1 "d 101"
check "the CP's menu request reaches driver_requests with origin cp" wait_for 10 bash -c \
	"kcat -b '$K' -C -t '$(topic driver_requests)' -o beginning -e -q -f '%k %s\n' 2>/dev/null | grep '^101 ' | grep '\"origin\":\"cp\"' | grep -q '\"cp_id\":\"MAD-01\"'"
check "Central authorises and the engine gets AUTORIZAR_SUMINISTRO" wait_grep 20 "$E" '^[0-9T:.-]* AUTH driver=101 session=[^ ]+ price=0.25$'
S=$(session_of "$E")
check "CP is RESERVADO" wait_for 5 is_state "$C" MAD-01 RESERVADO
send e1 e
check "plug in: SUPPLY START" wait_grep 5 "$E" "^[0-9T:.-]* SUPPLY START driver=101 session=$S "
check "SUMINISTRANDO at Central" wait_for 5 is_state "$C" MAD-01 SUMINISTRANDO
check "CONSUMO every second with seq, kw, kwh, importe" wait_grep 8 "$E" '^[0-9T:.-]* CONSUMO seq=4 kw=[0-9.]+ kwh=[0-9.]+ importe=[0-9.]+$'
check "Central applies the telemetry" wait_grep 5 "$C" " CONSUMO 101 MAD-01 session=$S kwh="
send e1 u
check "unplug: SUPPLY END" wait_grep 5 "$E" "^[0-9T:.-]* SUPPLY END driver=101 session=$S .*reason=unplugged$"
check "the driver gets a TICKET" wait_for 15 has_note TICKET "$S"
T=$(note_for TICKET "$S")
diag "$T"
check "ticket amount = kWh x price (0.25) to the cent, kWh > 0.1" python3 -c '
import json,sys; t=json.loads(sys.argv[1])
assert t["price"] == 0.25 and t["kwh"] > 0.1, t
assert abs(t["importe"] - t["kwh"] * 0.25) <= 0.0051, t' "$T"
ekwh=$(grep "^[0-9T:.-]* SUPPLY END driver=101 session=$S " "$E" | sed -E 's/.* kwh=([0-9.]+) .*/\1/')
check "ticket kWh matches the engine's meter ($ekwh)" python3 -c '
import json,sys; t=json.loads(sys.argv[1]); assert abs(t["kwh"] - float(sys.argv[2])) < 0.0011, (t, sys.argv[2])' "$T" "$ekwh"
check "CP back to ACTIVADO" wait_for 5 is_state "$C" MAD-01 ACTIVADO

# ---- unattended: --auto-plug 1:3 ----
stop m1
stop e1
cp_engine e2 --auto-plug 1:3 --power 22
E2=$(log_of e2)
cp_monitor m2 MAD-01 --price 0.25
wait_for 10 is_state "$C" MAD-01 ACTIVADO
send e2 "d 102"
wait_grep 20 "$E2" '^[0-9T:.-]* AUTH driver=102 '
S2=$(session_of "$E2")
check "--auto-plug plugs in and unplugs by itself" wait_grep 10 "$E2" "^[0-9T:.-]* SUPPLY END driver=102 session=$S2 .*reason=unplugged$"
check "... and that ends in a ticket too" wait_for 15 has_note TICKET "$S2"

# ---- Central unreachable mid-supply: the supply goes on to its end ----
stop m2
stop e2
cp_engine e3 --auto-plug 0.5:8
E3=$(log_of e3)
cp_monitor m3 MAD-01 --price 0.25
wait_for 10 is_state "$C" MAD-01 ACTIVADO
send e3 "d 102"
wait_grep 20 "$E3" '^[0-9T:.-]* AUTH driver=102 '
S3=$(session_of "$E3")
wait_grep 5 "$E3" "^[0-9T:.-]* SUPPLY START driver=102 session=$S3 "
stop central
check "Central gone: the monitor tells the engine" wait_grep 5 "$E3" '^[0-9T:.-]* LINK central down$'
c=$(count_grep "$E3" '^[0-9T:.-]* CONSUMO ')
check "Central gone: the supply still runs" wait_for 4 bash -c "[ \$(grep -c '^[0-9T:.-]* CONSUMO ' '$E3') -gt $((c + 1)) ]"
check "Central gone: the supply finishes normally" wait_grep 10 "$E3" "^[0-9T:.-]* SUPPLY END driver=102 session=$S3 .*reason=unplugged$"
cp_central central2
check "Central back: the monitor registers again and the CP is ACTIVADO" wait_for 15 is_state "$(log_of central2)" MAD-01 ACTIVADO
