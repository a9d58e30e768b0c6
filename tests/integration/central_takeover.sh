#!/bin/bash
# The Release-1 takeover, refused (evcharging(7) SECURITY): Central runs
# --plain-links (plaintext CPs are welcome), MAD-01 is registered in the
# registry and comes over TLS with its secret. A stranger's plaintext
# REGISTER#MAD-01#Fake street#100, while the real link is up and again
# while it is down, is denied (BAD_CREDENTIALS); the operator's price and location stay, the
# real monitor gets back in (no ALREADY_CONNECTED), the stranger never
# sees an AUTORIZAR_SUMINISTRO and the driver is authorised at 0.25, not
# 100 EUR/kWh. Each denial is audited.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
for t in curl sqlite3; do command -v $t >/dev/null || tap_skip_all "$t not installed"; done
EV_REGISTRY=$EVC_BUILDDIR/EV_Registry
FAKE_MON=$EVC_BUILDDIR/tests/tools/fake_monitor
tap_plan 10

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
start central "$EV_CENTRAL" "$CP_CPORT" "$K" --db "$CP_DB" --headless --plain-links \
	--link-cert "$PKI/central.pem" --link-key "$PKI/central.key"
C=$(log_of central)
wait_grep 20 "$C" ' READY '
cp_engine e1 --credential "$CRED" --power 22
E=$(log_of e1)
cp_monitor m1 MAD-01 --credential "$CRED" --ca "$PKI/ca.pem"
M=$(log_of m1)
wait_for 15 is_state "$C" MAD-01 ACTIVADO

place() { sqlite3 -cmd '.timeout 3000' "$CP_DB" "select location || '|' || price from charging_points where id='MAD-01'"; }
start f1 "$FAKE_MON"
F1=$(log_of f1)
send f1 "connect 127.0.0.1 $CP_CPORT"
send f1 "enq"
send f1 "send REGISTER#MAD-01#Fake street#100"
check "plaintext REGISTER for a registered CP while it is up: DENIED" wait_grep 10 "$F1" '^RECV REGISTER_RESULT#DENIED#BAD_CREDENTIALS$'
check "... and the real link is untouched" bash -c "! grep -q '^[0-9T:.-]* LINK central down' '$M'"

stop m1
wait_for 10 is_state "$C" MAD-01 DESCONECTADO
start f2 "$FAKE_MON"
F2=$(log_of f2)
send f2 "connect 127.0.0.1 $CP_CPORT"
send f2 "enq"
send f2 "send REGISTER#MAD-01#Fake street#100"
check "... and while its link is down: DENIED" wait_grep 10 "$F2" '^RECV REGISTER_RESULT#DENIED#BAD_CREDENTIALS$'
send f2 "hb MAD-01 300"
check "the operator's place and price stay (C/ Serrano 10, 0.25)" [ "$(place)" = "C/ Serrano 10|0.25" ]
denied() { [ "$(sqlite3 -cmd '.timeout 3000' "$CP_DB" "select count(*) from audit_log where action='PLAIN_LINK_REFUSED' and cp_id='MAD-01' and detail like '%must connect over TLS%'")" -ge 2 ]; }
check "both attempts are audited (PLAIN_LINK_REFUSED: it must connect over TLS)" wait_for 10 denied

cp_monitor m2 MAD-01 --credential "$CRED" --ca "$PKI/ca.pem"
M2=$(log_of m2)
check "the real monitor gets back in (not ALREADY_CONNECTED)" wait_grep 20 "$M2" '^[0-9T:.-]* LINK central up \(RECONNECT\)$'
wait_for 10 is_state "$C" MAD-01 ACTIVADO
send e1 "d 101"
check "the driver is authorised through the real CP" wait_grep 20 "$E" '^[0-9T:.-]* AUTH driver=101 session=[^ ]+ price=0.25$'
check "... at 0.25 EUR/kWh" wait_grep 5 "$C" ' driver 101 authorised on CP MAD-01: session .* at 0.25 EUR/kWh'
check "the strangers never got an AUTORIZAR_SUMINISTRO" bash -c "! grep -q 'AUTORIZAR' '$F1' '$F2'"
check "the price is still 0.25" [ "$(place)" = "C/ Serrano 10|0.25" ]
