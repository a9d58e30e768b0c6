#!/usr/bin/env bash
# EV_CP_M --register against the real EV_Registry over TLS: the credential
# file (mode 0600, loads with cred_load, its secret is the one the registry
# stored the hash of), one line on stdout and never the secret, a second
# registration refused (exit 1, "already registered", the file untouched),
# the registry's certificate verified against --ca (another CA, or a name
# the certificate does not hold, fail and register nothing), the default
# --ca beside the credential, bad arguments (exit 2), a token file others
# can read refused before anything is sent, the registry's reason shown.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/registry_lib.sh"
CRED_CHECK=$EVC_BUILDDIR/tests/tools/cred_check
tap_plan 26

r_start reg || { not_ok "EV_Registry starts"; exit 1; }
URL=https://localhost:$R_PORT
TF=$T_DIR/pki/installer.token
# reg_cp ARGS...: EV_CP_M --register ...; status in RC, output in out/err.
reg_cp() { timeout 30 "$EV_CP_M" --register "$@" </dev/null >"$T_DIR/out" 2>"$T_DIR/err"; RC=$?; cat "$T_DIR/out" "$T_DIR/err" >>"$T_DIR/monitor_all.txt"; }

C1=$T_DIR/cp/mad01.cred
mkdir -p "$T_DIR/cp"
reg_cp "$URL" --installer-token-file "$TF" --credential "$C1" --ca "$CA" MAD-01 --location "C/ Serrano 10" --price 0.25
check "register: exit 0" test "$RC" = 0 || diag "$(cat "$T_DIR/err")"
check "prints exactly 'registered CP MAD-01; credential written to FILE'" test \
	"$(cat "$T_DIR/out")" = "registered CP MAD-01; credential written to $C1"
check "credential file is mode 0600" test "$(stat -c %a "$C1")" = 600
check "credential file loads with cred_load as CP MAD-01" test "$("$CRED_CHECK" "$C1" 2>&1)" = "id MAD-01"
check "credential file is exactly {id, secret}" python3 -c "
import json, sys
o = json.load(open('$C1'))
sys.exit(0 if sorted(o) == ['id', 'secret'] and o['id'] == 'MAD-01' and len(o['secret']) == 43 else 1)"
S=$(python3 -c "import json; print(json.load(open('$C1'))['secret'])")
keep_secret "$S"
check "the registry stored the hash of that secret" test \
	"$(q "select secret_hash from charging_points where id='MAD-01'")" = "$(printf %s "$S" | sha256sum | cut -d' ' -f1)"
call GET /v1/cps/MAD-01 "$S"
check "the secret authenticates the CP at the registry" status_is 200
check "location and price as given" test "$(jget location)|$(jget price)" = "C/ Serrano 10|0.25"
sum=$(sha256sum <"$C1")

reg_cp "$URL" --installer-token-file "$TF" --credential "$C1" --ca "$CA" MAD-01 --location "C/ Serrano 10" --price 0.25
check "second register: exit 1 with 'CP MAD-01 is already registered'" bash -c \
	"[ $RC = 1 ] && grep -q '^EV_CP_M: CP MAD-01 is already registered' '$T_DIR/err'"
check "...and the credential file untouched" test "$(sha256sum <"$C1")" = "$sum"

"$PKI" init "$T_DIR/other" >/dev/null
reg_cp "$URL" --installer-token-file "$TF" --credential "$T_DIR/cp/x.cred" --ca "$T_DIR/other/ca.pem" MAD-02
check "another network's CA: exit 1, certificate refused" bash -c "[ $RC = 1 ] && grep -qi 'certificate' '$T_DIR/err'"
check "...nothing registered, no file written" bash -c \
	"[ \"\$(sqlite3 '$DB' \"select count(*) from charging_points where id='MAD-02'\")\" = 0 ] && [ ! -e '$T_DIR/cp/x.cred' ]"
# The same registry certificate (localhost, 127.0.0.1) served on 127.0.0.2.
P2=$(free_port)
start reg2 "$EV_REGISTRY" "$P2" "$DB" --listen 127.0.0.2 --headless
wait_grep 10 "$(log_of reg2)" ' serving https://' || diag "second registry did not start"
reg_cp "https://127.0.0.2:$P2" --installer-token-file "$TF" --credential "$T_DIR/cp/x.cred" --ca "$CA" MAD-02
check "an address the certificate does not name: exit 1" bash -c \
	"[ $RC = 1 ] && grep -Eqi 'certificate|subject' '$T_DIR/err'"
check "...the registry saw no request" test "$(count_grep "$(log_of reg2)" ' POST ')" = 0
stop reg2

C2=$T_DIR/pki/../beside.cred
reg_cp "$URL" --installer-token-file "$TF" --credential "$C2" BCN-01 --location Diagonal --price 0.31
check "without --ca: pki/ca.pem beside the credential file is used (exit 0)" bash -c "[ $RC = 0 ] && [ -f '$C2' ]"
keep_secret "$(python3 -c "import json; print(json.load(open('$C2'))['secret'])" 2>/dev/null)"
reg_cp "$URL" --installer-token-file "$TF" --credential "$T_DIR/cp/def.cred" --ca "$CA" DEF-01
check "without --location and --price: the monitor's defaults (\"CP <id>\", 0.30)" bash -c \
	"[ $RC = 0 ] && [ \"\$(sqlite3 '$DB' \"select location||'|'||price from charging_points where id='DEF-01'\")\" = 'CP DEF-01|0.3' ]"
keep_secret "$(python3 -c "import json; print(json.load(open('$T_DIR/cp/def.cred'))['secret'])" 2>/dev/null)"

bad_reg() { reg_cp "$@"; [ "$RC" = 2 ] && grep -q '^EV_CP_M: ' "$T_DIR/err" && grep -q '^usage: EV_CP_M --register' "$T_DIR/err"; }
check "http:// address: exit 2" bad_reg "http://localhost:$R_PORT" --installer-token-file "$TF" --credential "$T_DIR/cp/y" --ca "$CA" Y-1
check "bad cp_id: exit 2" bad_reg "$URL" --installer-token-file "$TF" --credential "$T_DIR/cp/y" --ca "$CA" 'bad id'
check "bad price: exit 2" bad_reg "$URL" --installer-token-file "$TF" --credential "$T_DIR/cp/y" --ca "$CA" Y-1 --price 0
check "location with '#': exit 2" bad_reg "$URL" --installer-token-file "$TF" --credential "$T_DIR/cp/y" --ca "$CA" Y-1 --location 'a#b'
check "no --credential: exit 2" bad_reg "$URL" --installer-token-file "$TF" --ca "$CA" Y-1

before=$(count_grep "$(log_of reg)" ' POST ')
cp "$TF" "$T_DIR/open.token"
chmod 0644 "$T_DIR/open.token"
reg_cp "$URL" --installer-token-file "$T_DIR/open.token" --credential "$T_DIR/cp/y" --ca "$CA" Y-1
check "token file mode 0644: exit 1 naming the file and mode, nothing sent" bash -c \
	"[ $RC = 1 ] && grep -q 'open.token.*0644' '$T_DIR/err' && [ $(count_grep "$(log_of reg)" ' POST ') = $before ]"
printf 'not-the-installer-token-at-all\n' >"$T_DIR/wrong.token"
chmod 0600 "$T_DIR/wrong.token"
reg_cp "$URL" --installer-token-file "$T_DIR/wrong.token" --credential "$T_DIR/cp/y" --ca "$CA" Y-1
check "wrong token: exit 1 with the registry's reason" bash -c \
	"[ $RC = 1 ] && grep -q 'answered 401: missing or wrong credential' '$T_DIR/err' && [ ! -e '$T_DIR/cp/y' ]"

check "EV_CP_M without --register is the monitor still (--help)" bash -c \
	"'$EV_CP_M' --help | grep -q '^usage: EV_CP_M <engine_host:port>'"
check "no secret or token in anything EV_CP_M printed" no_secrets_in "$T_DIR/monitor_all.txt"
check "no secret or token in the registries' logs" no_secrets_in "$(log_of reg)" "$T_DIR/reg2.log"
