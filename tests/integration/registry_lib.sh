# Helpers of the registry_*.sh integration tests (sourced after lib.sh).
# Each test makes its own network PKI with scripts/pki in $T_DIR/pki (the
# place EV_Registry looks by default, beside the db $T_DIR/net.db) and
# talks to the real EV_Registry over TLS with curl --cacert, reading the
# JSON answers with python3.
EV_REGISTRY=$EVC_BUILDDIR/EV_Registry
PKI=$EVC_SRCDIR/scripts/pki
DB=$T_DIR/net.db
CA=$T_DIR/pki/ca.pem
command -v curl >/dev/null || tap_skip_all "curl needed"
command -v python3 >/dev/null || tap_skip_all "python3 needed"
command -v sqlite3 >/dev/null || tap_skip_all "sqlite3 needed"
[ -x "$EV_REGISTRY" ] || tap_skip_all "EV_Registry not built"
"$PKI" init "$T_DIR/pki" >/dev/null || tap_skip_all "scripts/pki init failed"
TOKEN=$(cat "$T_DIR/pki/installer.token")

# r_start NAME [ARGS...]: EV_Registry on a free port (R_PORT, chosen once
# so a restart reuses it) with $DB, waiting for its "serving" line.
r_start() {
	local n=$1
	shift
	: "${R_PORT:=$(free_port)}"
	start "$n" "$EV_REGISTRY" "$R_PORT" "$DB" --headless "$@"
	wait_grep 10 "$(log_of "$n")" ' serving https://'
}
R_HOST=localhost
# call METHOD PATH [TOKEN] [BODY] [CURL_ARGS...]: one request; the status in
# $ST, the body in $T_DIR/body, the headers in $T_DIR/headers. A TOKEN of
# "-" sends no Authorization header; a BODY of "-" sends none.
call() {
	local m=$1 p=$2 tok=${3:--} body=${4:--}
	shift 4 2>/dev/null || shift $#
	local args=(-sS -X "$m" --cacert "$CA" -o "$T_DIR/body" -D "$T_DIR/headers" -w '%{http_code}' --max-time 10)
	[ "$tok" = - ] || args+=(-H "Authorization: Bearer $tok")
	[ "$body" = - ] || args+=(-H 'Content-Type: application/json' --data-binary "$body")
	ST=$(curl "${args[@]}" "$@" "https://$R_HOST:$R_PORT$p" 2>"$T_DIR/curl.err")
}
# status_is CODE: the last call answered CODE.
status_is() {
	[ "$ST" = "$1" ] || { diag "status $ST, wanted $1; body: $(head -c 300 "$T_DIR/body" 2>/dev/null)"; return 1; }
}
# jget KEY: a field of the last answer's JSON (python's repr for non-strings:
# True, 0.25...), "MISSING" if absent, "NOTJSON" if the body is not JSON.
jget() {
	python3 -c '
import json, sys
try:
    o = json.load(open(sys.argv[1]))
except Exception:
    print("NOTJSON"); sys.exit(0)
v = o.get(sys.argv[2], "MISSING") if isinstance(o, dict) else "NOTJSON"
print(v)' "$T_DIR/body" "$1"
}
# keys_are K1,K2,...: the last answer is a JSON object with exactly these keys.
keys_are() {
	python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
sys.exit(0 if isinstance(o, dict) and sorted(o) == sorted(sys.argv[2].split(",")) else 1)' "$T_DIR/body" "$1"
}
# header NAME: a header of the last answer (value only).
header() { tr -d '\r' <"$T_DIR/headers" | sed -n "s/^$1: *//Ip" | head -n 1; }
# register ID [LOCATION] [PRICE]: POST /v1/cps with the installer token;
# the secret in $SECRET.
register() {
	call POST /v1/cps "$TOKEN" "{\"id\":\"$1\",\"location\":\"${2:-Calle $1}\",\"price\":${3:-0.25}}"
	SECRET=$(jget secret)
}
q() { sqlite3 "$DB" "$1"; }
# no_secrets_in FILE...: none of the files holds the installer token or any
# secret the registry handed out in this test (all in $T_DIR/secrets).
no_secrets_in() {
	local f s
	for f in "$@"; do
		grep -qF -- "$TOKEN" "$f" && { diag "installer token in $f"; return 1; }
		while IFS= read -r s; do
			[ -n "$s" ] || continue
			grep -qF -- "$s" "$f" && { diag "a secret in $f"; return 1; }
		done <"$T_DIR/secrets"
	done
	return 0
}
: >"$T_DIR/secrets"
keep_secret() { printf '%s\n' "$1" >>"$T_DIR/secrets"; }
