#!/bin/bash
# The secured CP against the real EV_Central (evcharging(7) SECURITY):
# a CP registered at the real EV_Registry, its credential given to both
# EV_CP_M and EV_CP_E; Central's TLS link (certificates from scripts/pki);
# REGISTER with the secret answered REGISTER_RESULT then KEY; the key passed
# to the engine, a supply whose encrypted telemetry Central applies to a
# TICKET; the operator's REVOKE (REVOKED on the link, FUERA_DE_SERVICIO),
# re-authentication with 'a' and a new key that Central accepts at once; a
# monitor restart (RECONNECT, the same key); BAD_CREDENTIALS and
# NOT_REGISTERED stopping the retries; a Release-1 monitor refused by a
# Central without --plain-links. No secret or key in any program's output.

. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
PKI_SCRIPT=$EVC_SRCDIR/scripts/pki
EV_REGISTRY=$EVC_BUILDDIR/EV_Registry
[ -x "$PKI_SCRIPT" ] || tap_skip_all "scripts/pki not in this tree yet"
[ -x "$EV_REGISTRY" ] || tap_skip_all "EV_Registry not built in this tree yet"
"$EV_CENTRAL" --help 2>&1 | grep -q -- '--link-cert' || tap_skip_all "EV_Central has no --link-cert yet (TLS links not merged)"
"$EV_CP_M" --help 2>&1 | grep -q -- '--ca' || tap_skip_all "EV_CP_M has no --ca yet (TLS client not merged)"
for t in curl kcat; do command -v $t >/dev/null || tap_skip_all "$t not installed"; done
tap_plan 35

PKI=$T_DIR/pki
"$PKI_SCRIPT" init "$PKI" >/dev/null || { echo "1..0 # scripts/pki init failed"; exit 1; }
RPORT=$(free_port)
start registry "$EV_REGISTRY" "$RPORT" "$CP_DB" --cert "$PKI/registry.pem" --key "$PKI/registry.key" \
	--installer-token-file "$PKI/installer.token" --headless
R=https://127.0.0.1:$RPORT
reg_up() { curl -s -o /dev/null --cacert "$PKI/ca.pem" "$R/v1/cps/none"; }
check "EV_Registry answers over HTTPS" wait_for 15 reg_up
TOKEN=$(cat "$PKI/installer.token")
# new_cp ID: register ID at the registry, print its secret.
new_cp() {
	curl -s --cacert "$PKI/ca.pem" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		-d "{\"id\":\"$1\",\"location\":\"C/ Serrano 10\",\"price\":0.25}" "$R/v1/cps" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'
}
# cred_file ID SECRET FILE: the credential file as the registry's answer gives it.
cred_file() { printf '{"id":"%s","secret":"%s"}\n' "$1" "$2" >"$3"; chmod 600 "$3"; }
SECRET=$(new_cp MAD-01)
check "the registry gives MAD-01 a 43-character secret" [ "${#SECRET}" = 43 ]
CRED=$T_DIR/mad01.cred
cred_file MAD-01 "$SECRET" "$CRED"

cp_add_driver 101 Ana
start central "$EV_CENTRAL" "$CP_CPORT" "$K" --db "$CP_DB" --headless \
	--link-cert "$PKI/central.pem" --link-key "$PKI/central.key"
C=$(log_of central)
check "Central starts with its TLS link certificate" wait_grep 20 "$C" ' READY '
check "Central's link port speaks TLS" bash -c "echo | timeout 5 openssl s_client -connect 127.0.0.1:$CP_CPORT -CAfile '$PKI/ca.pem' -verify_return_error -brief 2>&1 | grep -q 'Verification: OK'"
cp_engine e1 --credential "$CRED" --power 900
E=$(log_of e1)
cp_monitor m1 MAD-01 --location "C/ Serrano 10" --price 0.25 --credential "$CRED" --ca "$PKI/ca.pem"
M=$(log_of m1)
check "REGISTER with the secret: REGISTER_RESULT#FIRST, then KEY" wait_grep 15 "$M" '^[0-9T:.-]* LINK central up \(FIRST\)$'
check "the monitor got the key" grep -q '^[0-9T:.-]* KEY received (new)$' "$M"
check "the engine link is authenticated" wait_grep 5 "$M" '^[0-9T:.-]* LINK engine up \(authenticated\)$'
check "the engine has Central's key (SET_KEY)" wait_grep 5 "$E" '^[0-9T:.-]* KEY set$'
check "Central shows MAD-01 ACTIVADO" wait_for 10 is_state "$C" MAD-01 ACTIVADO

# ---- a supply: the encrypted telemetry is what Central bills ----
send e1 "d 101"
check "Central authorises driver 101 through the TLS link" wait_grep 20 "$E" '^[0-9T:.-]* AUTH driver=101 session=[^ ]+ price=0.25$'
S1=$(session_of "$E")
send e1 e
check "SUMINISTRANDO at Central" wait_for 5 is_state "$C" MAD-01 SUMINISTRANDO
check "Central applies the encrypted CONSUMO" wait_grep 8 "$C" " CONSUMO 101 MAD-01 session=$S1 kwh="
send e1 u
check "the driver gets a TICKET" wait_for 15 has_note TICKET "$S1"
tel() { kcat -b "$K" -C -t "$(topic cp_telemetry)" -o beginning -e -q -f '%s\n' 2>/dev/null; }
check "on the topic every message is encrypted and none shows the session" bash -c "$(declare -f tel topic); K='$K' T_PREFIX='$T_PREFIX'; t=\$(tel); [ -n \"\$t\" ] && ! echo \"\$t\" | grep -q '$S1' && ! echo \"\$t\" | grep -vq '\"encrypted\":true'"

# ---- the operator revokes the keys ----
send central "REVOKE MAD-01"
check "REVOKED reaches the monitor: Keys revoked" wait_grep 5 "$M" '^[0-9T:.-]* KEYS REVOKED by Central: Keys revoked'
check "Central shows FUERA_DE_SERVICIO" wait_for 5 is_state "$C" MAD-01 FUERA_DE_SERVICIO
check "so does the monitor" wait_grep 5 "$M" '^[0-9T:.-]* STATE FUERA_DE_SERVICIO$'
send e1 "d 101"
check "revoked: Central denies a charge there" wait_grep 15 "$C" ' AUTH_DENIED 101 MAD-01 '
send m1 a
check "a: REGISTER again on the same link, a new KEY" wait_grep 10 "$M" '^[0-9T:.-]* REAUTH done: keys restored$'
check "the key is new" bash -c "grep '^[0-9T:.-]* KEY received' '$M' | tail -n 1 | grep -q '(new)'"
check "the engine takes the new key at once" wait_grep 5 "$E" '^[0-9T:.-]* KEY replaced$'
check "Central shows ACTIVADO again" wait_for 10 is_state "$C" MAD-01 ACTIVADO
send e1 "d 101"
wait_for 20 bash -c "[ \$(grep -c '^[0-9T:.-]* AUTH driver=101 ' '$E') -ge 2 ]"
S2=$(session_of "$E")
send e1 e
check "after re-authentication Central applies telemetry under the new key" wait_grep 10 "$C" " CONSUMO 101 MAD-01 session=$S2 kwh="
send e1 u
check "and that supply ends in a TICKET" wait_for 15 has_note TICKET "$S2"

# ---- the monitor restarted: RECONNECT, the same key ----
stop m1
cp_monitor m2 MAD-01 --location "C/ Serrano 10" --price 0.25 --credential "$CRED" --ca "$PKI/ca.pem"
M2=$(log_of m2)
check "a restarted monitor: REGISTER_RESULT#RECONNECT" wait_grep 15 "$M2" '^[0-9T:.-]* LINK central up \(RECONNECT\)$'
check "the engine gets the same key again" wait_grep 5 "$E" '^[0-9T:.-]* KEY unchanged$'

# ---- refusals ----
cred_file MAD-01 "$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')" "$T_DIR/wrong.cred"
cp_monitor m3 MAD-01 --credential "$T_DIR/wrong.cred" --ca "$PKI/ca.pem"
check "a wrong secret: REGISTER_RESULT#DENIED#BAD_CREDENTIALS" wait_grep 15 "$(log_of m3)" '^[0-9T:.-]* REGISTER DENIED reason=BAD_CREDENTIALS$'
check "and the monitor stops retrying" wait_grep 5 "$(log_of m3)" '^[0-9T:.-]* REGISTER STOPPED reason=BAD_CREDENTIALS'
check "the good monitor's link is untouched" bash -c "! grep -q '^[0-9T:.-]* LINK central down' '$M2'"
stop m3
cred_file BCN-09 "$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')" "$T_DIR/bcn09.cred"
start m4 "$EV_CP_M" "127.0.0.1:$(free_port)" "127.0.0.1:$CP_CPORT" BCN-09 --headless --credential "$T_DIR/bcn09.cred" --ca "$PKI/ca.pem"
check "a CP the registry does not know: DENIED#NOT_REGISTERED, no more retries" bash -c "$(declare -f wait_for wait_grep); wait_grep 15 '$(log_of m4)' '^[0-9T:.-]* REGISTER DENIED reason=NOT_REGISTERED$' && wait_grep 5 '$(log_of m4)' '^[0-9T:.-]* REGISTER STOPPED reason=NOT_REGISTERED'"
stop m4
start m5 "$EV_CP_M" "127.0.0.1:$(free_port)" "127.0.0.1:$CP_CPORT" MAD-02 --headless
check "a Release-1 monitor says what it is" wait_grep 5 "$(log_of m5)" '^[0-9T:.-]* Release-1 mode: no credential'
check "and is refused by a Central without --plain-links (NACK to ENQ)" wait_grep 10 "$(log_of m5)" 'server refused the link \(NACK to ENQ\)'
check "it never registers" bash -c "! grep -q '^[0-9T:.-]* LINK central up' '$(log_of m5)'"
stop m5

check "no secret in any program's output" bash -c "! grep -rqF '$SECRET' '$C' '$E' '$M' '$M2' '$(log_of registry)'"
check "no Fernet key in any program's output" bash -c "! grep -Eq '(^|[^A-Za-z0-9_-])[A-Za-z0-9_-]{43}=' '$C' '$E' '$M' '$M2'"
