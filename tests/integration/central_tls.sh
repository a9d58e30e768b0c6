#!/usr/bin/env bash
# EV_Central's CP link over TLS (evcharging(7) SECURITY) with real
# certificates from scripts/pki and CPs registered at the real EV_Registry
# (the secured monitor REGISTERs with its secret): Central refuses to start without
# certificate files or with a loose key, its port speaks TLS 1.2+ and
# verifies against ca.pem, a real EV_CP_M with --credential registers over it,
# a wrong CA or a wrong address is refused and logged once while the monitor
# keeps retrying, and a Release-1 plaintext link is refused with NACK unless
# Central runs --plain-links, when both kinds share the port.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
FAKE_MON=$EVC_BUILDDIR/tests/tools/fake_monitor
EV_REGISTRY=$EVC_BUILDDIR/EV_Registry
for p in "$EV_CENTRAL" "$EV_CP_M" "$EV_REGISTRY" "$FAKE_MON"; do
	[ -x "$p" ] || tap_skip_all "$p not built"
done
for t in openssl ss sqlite3 curl; do
	command -v "$t" >/dev/null || tap_skip_all "$t needed"
done
tap_plan 34

# Central serves its links whether or not a broker answers.
K=${EVC_KAFKA:-127.0.0.1:$(free_port)}

PKI=$T_DIR/pki
"$EVC_SRCDIR/scripts/pki" init "$PKI" >"$T_DIR/pki.out" 2>&1 || { cat "$T_DIR/pki.out" >&2; exit 1; }
# A CA that signed nothing Central has.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T_DIR/other.key" \
	-out "$T_DIR/other-ca.pem" -subj "/CN=some other CA" -days 1 >/dev/null 2>&1

has_n() { [ "$(count_grep "$1" "$2")" -ge "$3" ]; }
PORT=$(free_port)
ENG=127.0.0.1:$(free_port) # no engine there: the monitor's Central link does not need one

# Two CPs at the registry, on Central's database; their credential files.
RPORT=$(free_port)
start registry "$EV_REGISTRY" "$RPORT" "$T_DIR/central.db" --cert "$PKI/registry.pem" --key "$PKI/registry.key" \
	--installer-token-file "$PKI/installer.token" --headless
reg_up() { curl -s -o /dev/null --cacert "$PKI/ca.pem" "https://127.0.0.1:$RPORT/v1/cps/none"; }
wait_for 15 reg_up || { echo "EV_Registry did not come up" >&2; exit 1; }
# credential ID FILE: register ID, write its credential file (0600).
credential() {
	local secret
	secret=$(curl -s --cacert "$PKI/ca.pem" -H "Authorization: Bearer $(cat "$PKI/installer.token")" \
		-H 'Content-Type: application/json' -d "{\"id\":\"$1\",\"location\":\"Calle $1\",\"price\":0.30}" \
		"https://127.0.0.1:$RPORT/v1/cps" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
	[ ${#secret} -eq 43 ] || return 1
	(umask 077; printf '{"id":"%s","secret":"%s"}\n' "$1" "$secret" >"$2")
}
mkdir -p "$T_DIR/cp/pki" && cp "$PKI/ca.pem" "$T_DIR/cp/pki/ca.pem"
credential MAD-01 "$T_DIR/mad01.cred" && credential MAD-09 "$T_DIR/cp/MAD-09.cred" ||
	{ echo "could not register the test CPs" >&2; exit 1; }
stop registry

# ---- refusals at start ----
mkdir -p "$T_DIR/bare"
"$EV_CENTRAL" "$PORT" "$K" "$T_DIR/bare/central.db" --headless </dev/null >/dev/null 2>"$T_DIR/bare.err"
rc=$?
check "no certificate files, no --plain-links: exit 1" [ $rc -eq 1 ]
check "... and the message names scripts/pki init" grep -q "EV_Central: .*scripts/pki init" "$T_DIR/bare.err"
check "... before creating a database" [ ! -e "$T_DIR/bare/central.db" ]

mkdir -p "$T_DIR/loose" && cp -a "$PKI" "$T_DIR/loose/pki" && chmod 644 "$T_DIR/loose/pki/central.key"
"$EV_CENTRAL" "$PORT" "$K" "$T_DIR/loose/central.db" --headless </dev/null >/dev/null 2>"$T_DIR/loose.err"
rc=$?
check "a key readable by others: exit 1 naming the file and its mode" \
	bash -c "[ $rc -eq 1 ] && grep -q 'loose/pki/central.key.*0644' '$T_DIR/loose.err'"

# ---- a TLS-only Central (certificates beside the database by default) ----
start c1 "$EV_CENTRAL" "$PORT" "$K" "$T_DIR/central.db" --headless
C1=$(log_of c1)
check "Central starts with pki/ beside its database" wait_grep 15 "$C1" ' READY '
check "... and serves TLS links only" grep -q " LINK port $PORT serves TLS links only" "$C1"

s_client() { openssl s_client -connect "127.0.0.1:$PORT" "$@" </dev/null 2>&1; }
# says TEXT PATTERN...: every PATTERN (ERE) is in TEXT; lacks TEXT PATTERN: it is not.
says() {
	local t=$1 p
	shift
	for p in "$@"; do grep -Eq -- "$p" <<<"$t" || return 1; done
}
lacks() { ! grep -Eq -- "$2" <<<"$1"; }
out=$(s_client -CAfile "$PKI/ca.pem" -verify_ip 127.0.0.1 -verify_return_error -brief)
check "the port speaks TLS 1.3; its certificate verifies against ca.pem for 127.0.0.1" \
	says "$out" '^Verification: OK' '^Protocol version: TLSv1\.3'
out=$(s_client -tls1_2 -CAfile "$PKI/ca.pem" -verify_return_error -brief)
check "TLS 1.2 is served too" says "$out" '^Protocol version: TLSv1\.2' '^Verification: OK'
out=$(s_client -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' -CAfile "$PKI/ca.pem")
check "TLS 1.1 is refused (protocol version alert)" says "$out" 'alert protocol version'
check "... no connection established" lacks "$out" '^CONNECTION ESTABLISHED'
out=$(s_client -CAfile "$T_DIR/other-ca.pem" -verify_return_error -brief)
check "a client trusting another CA fails to verify" says "$out" 'verify error'
check "... and gets no connection" lacks "$out" '^CONNECTION ESTABLISHED'

start m1 "$EV_CP_M" "$ENG" "127.0.0.1:$PORT" MAD-01 --headless --credential "$T_DIR/mad01.cred" --ca "$PKI/ca.pem"
M1=$(log_of m1)
check "EV_CP_M --credential --ca registers over TLS" wait_grep 15 "$M1" '^[0-9T:.-]* LINK central up \(FIRST\)$'
check "Central: the link is up, kind=tls" wait_grep 5 "$C1" ' LINK up conn=[0-9]+ peer=127\.0\.0\.1:[0-9]+ kind=tls$'
check "Central knows the CP" wait_grep 5 "$C1" ' STATE MAD-01 [A-Z_]+$'
conn_of() { ss -Htnp state established "( dport = :$PORT )" 2>/dev/null | grep -q "pid=$1,"; }
check "ss: the monitor holds an established connection to the link port" wait_for 5 conn_of "$(pid_of m1)"
check "the monitor said which kind of link it uses" grep -q "central link: TLS, verifying '127.0.0.1'" "$M1"

start f1 "$FAKE_MON"
send f1 "connect 127.0.0.1 $PORT"
send f1 "enq"
F1=$(log_of f1)
check "a Release-1 plaintext link gets NACK" wait_grep 5 "$F1" '^GOT NACK$'
check "... then the close" wait_grep 5 "$F1" '^CLOSED$'
check "Central reports the refusal" \
	wait_grep 5 "$C1" ' LINK refused peer=127\.0\.0\.1:[0-9]+ reason=plaintext link refused$'
refusals() { sqlite3 -cmd '.timeout 3000' "$T_DIR/central.db" \
	"select count(*) from audit_log where action='PLAIN_LINK_REFUSED' and source_ip='127.0.0.1'"; }
audited() { [ "$(refusals)" -ge 1 ]; }
check "... and audits it (PLAIN_LINK_REFUSED from 127.0.0.1)" wait_for 5 audited

# A monitor that does not trust Central's CA keeps retrying, saying so once.
start m2 "$EV_CP_M" "$ENG" "127.0.0.1:$PORT" MAD-02 --headless --ca "$T_DIR/other-ca.pem"
M2=$(log_of m2)
check "wrong CA: the handshake fails at Central, again and again" wait_for 15 has_n "$C1" 'alert unknown ca' 3
check "... the monitor keeps running and logged the failure once" \
	bash -c "kill -0 $(pid_of m2) && [ \$(grep -c 'certificate verify failed: unable to get local issuer certificate' '$M2') -eq 1 ]"
check "... and never came up" bash -c "! grep -q '^[0-9T:.-]* LINK central up' '$M2'"
# The right CA, but Central reached at an address its certificate does not name.
start m3 "$EV_CP_M" "$ENG" "127.0.0.2:$PORT" MAD-03 --headless --tls --ca "$PKI/ca.pem"
M3=$(log_of m3)
check "wrong address: refused by the monitor, logged once" \
	wait_grep 10 "$M3" "certificate verify failed: IP address mismatch for '127\.0\.0\.2'"
# A credential alone: TLS, with pki/ca.pem beside the credential file.
start m4 "$EV_CP_M" "$ENG" "127.0.0.1:$PORT" MAD-09 --headless --credential "$T_DIR/cp/MAD-09.cred"
check "--credential alone: TLS against pki/ca.pem beside it" \
	wait_grep 5 "$(log_of m4)" "central link: TLS, verifying '127\.0\.0\.1' against $T_DIR/cp/pki/ca\.pem"
check "... and registers over it" wait_grep 15 "$(log_of m4)" '^[0-9T:.-]* LINK central up \(FIRST\)$'
stop m2
stop m3
stop m4
stop f1

# ---- --plain-links: both kinds on the one port ----
stop c1
check "the TLS monitor sees Central go" wait_grep 10 "$M1" '^[0-9T:.-]* LINK central down'
start c2 "$EV_CENTRAL" "$PORT" "$K" "$T_DIR/central.db" --headless --plain-links
C2=$(log_of c2)
check "with --plain-links and certificates: TLS and plaintext" \
	wait_grep 15 "$C2" " LINK port $PORT serves TLS and plaintext"
start f2 "$FAKE_MON"
send f2 "connect 127.0.0.1 $PORT"
send f2 "enq"
send f2 "send REGISTER#PLAIN-01#Calle Plana#0.30"
F2=$(log_of f2)
check "a plaintext monitor registers" wait_grep 5 "$F2" '^RECV REGISTER_RESULT#FIRST$'
check "the TLS monitor is back, over TLS" wait_grep 30 "$M1" '^[0-9T:.-]* LINK central up \(RECONNECT\)$'
check "... beside the plaintext one on the same port" \
	wait_for 5 bash -c "grep -q ' kind=tls\$' '$C2' && grep -q ' kind=plain\$' '$C2'"
stop f2
stop c2

# ---- --plain-links without certificate files: plaintext only ----
start c3 "$EV_CENTRAL" "$PORT" "$K" "$T_DIR/bare/central.db" --headless --plain-links
check "--plain-links without certificates: plaintext links only" \
	wait_grep 15 "$(log_of c3)" " LINK port $PORT serves plaintext links only"
out=$(s_client -CAfile "$PKI/ca.pem" -brief)
check "... where a TLS client gets no handshake" lacks "$out" '^CONNECTION ESTABLISHED'
stop c3
stop m1
