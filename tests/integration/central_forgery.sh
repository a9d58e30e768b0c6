#!/bin/bash
# Forged telemetry against a secured CP (evcharging(7) SECURITY,
# Telemetry): while a real engine supplies under its key, a stranger
# produces to cp_telemetry a plaintext SUPPLY_END for the session with
# 100,000 kWh, an envelope under a wrong key, and one under the right key
# naming another CP inside; each is rejected, counted and audited
# (TELEMETRY_REJECTED), never billed. A CONSUMO encrypted by Python's
# cryptography.fernet with the CP's key is accepted (the envelope is the
# spec's), and the ticket bills what the engine metered.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
for t in curl kcat sqlite3; do command -v $t >/dev/null || tap_skip_all "$t not installed"; done
python3 -c 'import cryptography.fernet' 2>/dev/null || tap_skip_all "python3-cryptography not installed"
EV_REGISTRY=$EVC_BUILDDIR/EV_Registry
tap_plan 8

PKI=$T_DIR/pki
"$EVC_SRCDIR/scripts/pki" init "$PKI" >/dev/null
RPORT=$(free_port)
start registry "$EV_REGISTRY" "$RPORT" "$CP_DB" --cert "$PKI/registry.pem" --key "$PKI/registry.key" \
	--installer-token-file "$PKI/installer.token" --headless
wait_for 15 curl -s -o /dev/null --cacert "$PKI/ca.pem" "https://127.0.0.1:$RPORT/v1/cps/none"
CRED=$T_DIR/mad01.cred
"$EV_CP_M" --register "https://127.0.0.1:$RPORT" --installer-token-file "$PKI/installer.token" \
	--credential "$CRED" --ca "$PKI/ca.pem" MAD-01 --location "C/ Serrano 10" --price 0.25 >/dev/null
cp_add_driver 101 Ana
start central "$EV_CENTRAL" "$CP_CPORT" "$K" --db "$CP_DB" --headless \
	--link-cert "$PKI/central.pem" --link-key "$PKI/central.key"
C=$(log_of central)
wait_grep 20 "$C" ' READY '
cp_engine e1 --credential "$CRED" --power 36
E=$(log_of e1)
cp_monitor m1 MAD-01 --credential "$CRED" --ca "$PKI/ca.pem"
wait_grep 15 "$E" '^[0-9T:.-]* KEY set$'
wait_for 10 is_state "$C" MAD-01 ACTIVADO
send e1 "d 101"
wait_grep 20 "$E" '^[0-9T:.-]* AUTH driver=101 session='
S=$(session_of "$E")
send e1 e
wait_for 10 is_state "$C" MAD-01 SUMINISTRANDO
KEY=$(sqlite3 "$CP_DB" "select cp_key from charging_points where id='MAD-01'")
produce() { printf 'MAD-01\t%s\n' "$1" | kcat -b "$K" -P -t "$(topic cp_telemetry)" -K $'\t'; }
seal() { # seal KEY JSON: the envelope with a Fernet token Python made
	python3 -c 'import sys, json
from cryptography.fernet import Fernet
tok = Fernet(sys.argv[1].encode()).encrypt(sys.argv[3].encode()).decode()
print(json.dumps({"cp_id": sys.argv[2], "encrypted": True, "ciphertext": tok}, separators=(",", ":")))' "$1" MAD-01 "$2"
}
now=$(date +%s.%N)
produce "{\"type\":\"SUPPLY_END\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\",\"session_id\":\"$S\",\"seq\":900,\"kwh\":100000,\"importe\":25000,\"timestamp\":$now}"
other=$(python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
produce "$(seal "$other" "{\"type\":\"SUPPLY_END\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\",\"session_id\":\"$S\",\"seq\":901,\"kwh\":90000,\"importe\":22500}")"
produce "$(seal "$KEY" "{\"type\":\"SUPPLY_END\",\"cp_id\":\"BCN-01\",\"user_id\":\"101\",\"session_id\":\"$S\",\"seq\":902,\"kwh\":80000,\"importe\":20000}")"
rej() { [ "$(sqlite3 "$CP_DB" "select count(*) from audit_log where action='TELEMETRY_REJECTED' and cp_id='MAD-01'")" -ge 1 ]; }
check "the forgeries are audited TELEMETRY_REJECTED" wait_for 15 rej
check "... the first says why (plaintext from a CP that must encrypt)" bash -c \
	"sqlite3 '$CP_DB' \"select detail from audit_log where action='TELEMETRY_REJECTED'\" | grep -q 'plaintext'"
# Python's token with the CP's key is the spec's envelope: Central takes it.
# A few seqs ahead of the engine's last (it sends one a second): Central
# takes it, and drops the engine's next two or three as already seen.
wait_grep 10 "$E" '^[0-9T:.-]* CONSUMO seq='
seq=$(( $(grep '^[0-9T:.-]* CONSUMO seq=' "$E" | tail -1 | sed -E 's/^[0-9T:.-]* CONSUMO seq=([0-9]+) .*/\1/') + 3 ))
produce "$(seal "$KEY" "{\"type\":\"CONSUMO\",\"cp_id\":\"MAD-01\",\"user_id\":\"101\",\"session_id\":\"$S\",\"seq\":$seq,\"kwh\":0.001,\"importe\":0.0003,\"kw\":12.345}")"
check "a CONSUMO Python encrypted with the CP's key is applied" wait_grep 15 "$C" " CONSUMO 101 MAD-01 session=$S kwh=.* kw=12.3450"
# Same key, same partition: the forgeries before it have been handled.
check "the session goes on: none of the forgeries was billed" bash -c \
	"[ \"\$(sqlite3 '$CP_DB' \"select outcome is null from sessions where id='$S'\")\" = 1 ]"
# The engine's SUPPLY_END must come after that seq, or Central takes it
# for a replay.
past() { [ "$(grep '^[0-9T:.-]* CONSUMO seq=' "$E" | tail -1 | sed -E 's/^[0-9T:.-]* CONSUMO seq=([0-9]+) .*/\1/')" -gt "$seq" ]; }
wait_for 15 past
send e1 u
wait_grep 5 "$E" "^[0-9T:.-]* SUPPLY END driver=101 session=$S "
check "the ticket comes" wait_for 15 has_note TICKET "$S"
ekwh=$(grep "^[0-9T:.-]* SUPPLY END driver=101 session=$S " "$E" | sed -E 's/.* kwh=([0-9.]+) .*/\1/')
check "billed kWh == the engine's metered kWh ($ekwh), not a forged figure" python3 -c '
import json,sys; t=json.loads(sys.argv[1]); assert abs(t["kwh"] - float(sys.argv[2])) < 0.0011, (t, sys.argv[2])' \
	"$(note_for TICKET "$S")" "$ekwh"
# The engine's own messages, as Python reads them with the CP's key.
check "Python decrypts the engine's telemetry with the CP's key" bash -c "kcat -b '$K' -C -t '$(topic cp_telemetry)' -o beginning -e -q -f '%s\n' 2>/dev/null | python3 -c '
import sys, json
from cryptography.fernet import Fernet, InvalidToken
f = Fernet(sys.argv[1].encode()); ok = 0
for line in sys.stdin:
    m = json.loads(line)
    if m.get(\"encrypted\"):
        try:
            inner = json.loads(f.decrypt(m[\"ciphertext\"].encode()))
        except InvalidToken:
            continue
        ok += inner[\"cp_id\"] == \"MAD-01\" and inner.get(\"kwh\", 0) < 1000
sys.exit(0 if ok >= 3 else 1)' '$KEY'"
check "the key appears in no log" bash -c "! grep -rqF '$KEY' '$T_DIR'/*.log"
