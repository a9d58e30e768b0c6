#!/usr/bin/env bash
# EV_Registry's REST API over real TLS (certificates from scripts/pki,
# curl --cacert): every endpoint and every status, the validation of id,
# location and price, rotation killing the old secret at once, DELETE then
# 404, taking over a row EV_Central --add-cp made, the database holding only
# the hash, reg_rev, the audit rows, one log line a request and no secret or
# token in any log of the run.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/registry_lib.sh"
tap_plan 92

CALLS=0
count_call() { CALLS=$((CALLS + 1)); call "$@"; }

r_start reg || { not_ok "EV_Registry starts"; exit 1; }
ok "EV_Registry starts and serves"

# ---- POST /v1/cps
count_call POST /v1/cps "$TOKEN" '{"id":"MAD-01","location":"C/ Serrano 10","price":0.25}'
S1=$(jget secret)
keep_secret "$S1"
check "POST /v1/cps: 201" status_is 201
check "201 body is exactly {id, secret}" keys_are id,secret
check "id echoed" test "$(jget id)" = MAD-01
check "secret: 43 base64url characters" bash -c "[[ '$S1' =~ ^[A-Za-z0-9_-]{43}\$ ]]"
check "answers are JSON and not to be cached" bash -c \
	"grep -qi '^content-type: application/json' '$T_DIR/headers' && grep -qi '^cache-control: no-store' '$T_DIR/headers'"
hash=$(printf %s "$S1" | sha256sum | cut -d' ' -f1)
check "db holds the SHA-256 of the secret" test "$(q "select secret_hash from charging_points where id='MAD-01'")" = "$hash"
check "new row: location, price, DESCONECTADO, registered_at, reg_rev 1" test \
	"$(q "select location||'|'||price||'|'||status||'|'||(abs(registered_at - strftime('%s','now')) < 60)||'|'||reg_rev||'|'||revoked from charging_points where id='MAD-01'")" \
	"=" "C/ Serrano 10|0.25|DESCONECTADO|1|1|0"
count_call POST /v1/cps "$TOKEN" '{"id":"MAD-01","location":"elsewhere","price":0.5}'
check "POST the same id again: 409" status_is 409
check "409 says why" bash -c "grep -q 'already registered' '$T_DIR/body'"
check "409 changed nothing" test "$(q "select location||'|'||secret_hash from charging_points where id='MAD-01'")" = "C/ Serrano 10|$hash"

# ---- validation (400), each answered with a readable reason
bad() { # DESC BODY WORD: 400 whose error mentions WORD
	count_call POST /v1/cps "$TOKEN" "$2"
	if status_is 400 && grep -qi -- "$3" "$T_DIR/body" && keys_are error; then ok "400: $1"; else not_ok "400: $1"; fi
}
bad "not JSON" '{"id":' JSON
bad "trailing bytes after the object" '{"id":"X1","location":"a","price":1} x' JSON
bad "duplicate keys" '{"id":"X1","id":"X2","location":"a","price":1}' JSON
bad "not an object" '["X1","a",1]' object
bad "missing id" '{"location":"a","price":1}' "'id'"
bad "missing location" '{"id":"X1","price":1}' "'location'"
bad "missing price" '{"id":"X1","location":"a"}' "'price'"
bad "id with a space" '{"id":"X 1","location":"a","price":1}' "'id'"
bad "id of 33 characters" "{\"id\":\"$(printf 'A%.0s' {1..33})\",\"location\":\"a\",\"price\":1}" "'id'"
bad "id a number" '{"id":7,"location":"a","price":1}' "'id'"
bad "empty location" '{"id":"X1","location":"","price":1}' "'location'"
bad "location with '#'" '{"id":"X1","location":"a#b","price":1}' "'location'"
bad "location of 65 characters" "{\"id\":\"X1\",\"location\":\"$(printf 'é%.0s' {1..65})\",\"price\":1}" "'location'"
bad "location with a control character" '{"id":"X1","location":"a\u0007b","price":1}' "'location'"
bad "price 0" '{"id":"X1","location":"a","price":0}' "'price'"
bad "price 0.00004 (0 at 4 decimals)" '{"id":"X1","location":"a","price":0.00004}' "'price'"
bad "price above 100" '{"id":"X1","location":"a","price":100.01}' "'price'"
bad "price negative" '{"id":"X1","location":"a","price":-1}' "'price'"
bad "price as a string" '{"id":"X1","location":"a","price":"0.25"}' "'price'"
check "nothing stored by the refused requests" test "$(q "select count(*) from charging_points")" = 1
count_call POST /v1/cps "$TOKEN" '{"id":"VLC_1","location":"Plaça de l'"'"'Ajuntament","price":0.123456,"extra":"ignored"}'
keep_secret "$(jget secret)"
check "price kept to 4 decimals, 64 characters of UTF-8 allowed" bash -c \
	"[ $ST = 201 ] && [ \"\$(sqlite3 '$DB' \"select price from charging_points where id='VLC_1'\")\" = 0.1235 ]"
loc64=$(printf 'ñ%.0s' {1..64})
count_call POST /v1/cps "$TOKEN" "{\"id\":\"LONG-1\",\"location\":\"$loc64\",\"price\":100}"
keep_secret "$(jget secret)"
check "location of exactly 64 characters and price 100: 201" status_is 201

# ---- 415 and 413
count_call POST /v1/cps "$TOKEN" - -H 'Content-Type: text/plain' --data-binary '{"id":"X1","location":"a","price":1}'
check "Content-Type text/plain: 415" status_is 415
count_call POST /v1/cps "$TOKEN" - -H 'Content-Type:' --data-binary '{"id":"X1","location":"a","price":1}'
check "no Content-Type: 415" status_is 415
count_call POST /v1/cps "$TOKEN" - -H 'Content-Type: application/json; charset=utf-8' --data-binary '{"id":"CT-1","location":"a","price":1}'
keep_secret "$(jget secret)"
check "application/json with a charset: accepted" status_is 201
big=$(python3 -c 'import json; print(json.dumps({"id":"BIG","location":"a","price":1,"pad":"x"*5000}))')
count_call POST /v1/cps "$TOKEN" "$big"
check "body of 5 KB: 413" status_is 413
count_call POST /v1/cps "$TOKEN" "$big" -H 'Transfer-Encoding: chunked'
check "chunked body of 5 KB (no Content-Length to trust): 413" status_is 413
head -c 200000 /dev/zero | tr '\0' x >"$T_DIR/huge"
call POST /v1/cps "$TOKEN" - -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @"$T_DIR/huge"
check "chunked body of 200 KB: the connection is closed past 64 KiB, no answer" bash -c \
	"[ '$ST' = 000 ] && grep -q 'POST /v1/cps closed 127.0.0.1: body larger than 65536 bytes' '$(log_of reg)'"
count_call POST /v1/cps - "$big"
check "big body without a credential: 401 (auth first, the body is never read)" status_is 401
check "nothing stored by the 413s" test "$(q "select count(*) from charging_points where id='BIG'")" = 0

# ---- 404 and 405
for p in /v2/cps /v1/cps/ /v1/cps/MAD-01/other /v1/cpsX /; do
	count_call GET "$p" "$TOKEN"
	check "GET $p: 404" status_is 404
done
count_call PUT /v1/cps/MAD-01 "$TOKEN"
check "PUT /v1/cps/MAD-01: 405, Allow: GET, DELETE" bash -c "[ $ST = 405 ] && [ \"\$(tr -d '\r' <'$T_DIR/headers' | sed -n 's/^Allow: //Ip')\" = 'GET, DELETE' ]"
count_call GET /v1/cps "$TOKEN"
check "GET /v1/cps: 405, Allow: POST" bash -c "[ $ST = 405 ] && [ \"\$(tr -d '\r' <'$T_DIR/headers' | sed -n 's/^Allow: //Ip')\" = POST ]"
count_call DELETE /v1/cps/MAD-01/secret "$TOKEN"
check "DELETE /v1/cps/MAD-01/secret: 405, Allow: POST" bash -c "[ $ST = 405 ] && grep -qi '^Allow: POST' '$T_DIR/headers'"

# ---- GET
count_call GET /v1/cps/MAD-01 "$TOKEN"
check "GET with the installer token: 200" status_is 200
check "GET body: id, location, price, registered_at, key_issued" keys_are id,location,price,registered_at,key_issued
check "GET values" test "$(jget id)|$(jget location)|$(jget price)|$(jget key_issued)" = "MAD-01|C/ Serrano 10|0.25|False"
check "registered_at: epoch seconds, a number" python3 -c "
import json, sys, time
v = json.load(open('$T_DIR/body'))['registered_at']
sys.exit(0 if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v - time.time()) < 120 else 1)"
count_call GET /v1/cps/MAD-01 "$S1"
check "GET with the CP's own secret: 200" status_is 200
q "update charging_points set cp_key='k' where id='MAD-01'"
count_call GET /v1/cps/MAD-01 "$S1"
check "key_issued true once Central stored a key" test "$(jget key_issued)" = True
count_call POST /v1/cps "$TOKEN" '{"id":"BCN-01","location":"Diagonal 1","price":0.31}'
S2=$(jget secret)
keep_secret "$S2"
count_call GET /v1/cps/MAD-01 "$S2"
check "GET with another CP's secret: 401" status_is 401
cp "$T_DIR/body" "$T_DIR/body.wrong"
count_call GET /v1/cps/MAD-01 -
check "GET without a credential: 401" status_is 401
check "one 401 body for a missing and a wrong credential" cmp -s "$T_DIR/body" "$T_DIR/body.wrong"
count_call GET /v1/cps/MAD-01 - - -H 'Authorization: Basic dXNlcjpwYXNz'
check "another auth scheme: 401" status_is 401
count_call GET /v1/cps/NOPE-9 "$TOKEN"
check "GET an unknown CP with the installer token: 404" status_is 404
count_call GET /v1/cps/NOPE-9 "$S1"
check "GET an unknown CP with a CP's secret: 401 (does not tell it is unknown)" status_is 401
count_call GET '/v1/cps/bad!id' "$TOKEN"
check "GET a malformed id with the installer token: 400" status_is 400

# ---- rotation
rev0=$(q "select max(reg_rev) from charging_points")
count_call POST /v1/cps/MAD-01/secret "$S1"
N1=$(jget secret)
keep_secret "$N1"
check "POST /v1/cps/MAD-01/secret with the CP's secret: 200 {id, secret}" bash -c "[ $ST = 200 ] && [ '$(jget id)' = MAD-01 ]"
check "the new secret differs and is well-formed" bash -c "[ '$N1' != '$S1' ] && [[ '$N1' =~ ^[A-Za-z0-9_-]{43}\$ ]]"
count_call GET /v1/cps/MAD-01 "$S1"
check "the old secret is dead at once (401)" status_is 401
count_call POST /v1/cps/MAD-01/secret "$S1"
check "the old secret cannot rotate either (401)" status_is 401
count_call GET /v1/cps/MAD-01 "$N1"
check "the new secret works (200)" status_is 200
check "rotation took the next reg_rev and changed the stored hash" test \
	"$(q "select reg_rev||'|'||secret_hash from charging_points where id='MAD-01'")" = "$((rev0 + 1))|$(printf %s "$N1" | sha256sum | cut -d' ' -f1)"
count_call POST /v1/cps/MAD-01/secret "$TOKEN"
N2=$(jget secret)
keep_secret "$N2"
count_call GET /v1/cps/MAD-01 "$N1"
check "rotation by the installer: 200, and the CP's previous secret is dead" bash -c "[ $ST = 401 ] && [ -n '$N2' ]"
count_call POST /v1/cps/NOPE-9/secret "$TOKEN"
check "rotating an unknown CP: 404" status_is 404

# ---- DELETE
rev1=$(q "select max(reg_rev) from charging_points")
count_call DELETE /v1/cps/MAD-01 "$N2"
check "DELETE with the CP's secret: 204, no body" bash -c "[ $ST = 204 ] && [ ! -s '$T_DIR/body' ]"
count_call GET /v1/cps/MAD-01 "$TOKEN"
check "then GET: 404" status_is 404
count_call GET /v1/cps/MAD-01 "$N2"
check "its secret is dead (401)" status_is 401
check "row kept: deleted_at set, secret_hash and cp_key cleared, next reg_rev" test \
	"$(q "select (deleted_at is not null)||'|'||coalesce(secret_hash,'-')||'|'||coalesce(cp_key,'-')||'|'||reg_rev from charging_points where id='MAD-01'")" \
	= "1|-|-|$((rev1 + 1))"
count_call DELETE /v1/cps/MAD-01 "$TOKEN"
check "DELETE again: 404" status_is 404
count_call POST /v1/cps "$TOKEN" '{"id":"MAD-01","location":"C/ Serrano 12","price":0.27}'
S3=$(jget secret)
keep_secret "$S3"
count_call GET /v1/cps/MAD-01 "$S3"
check "a deleted CP can be registered again (201, new secret works)" bash -c "[ $ST = 200 ] && [ '$(jget location)' = 'C/ Serrano 12' ]"
check "...audited as registered again after being unregistered" bash -c \
	"sqlite3 '$DB' \"select detail from audit_log where cp_id='MAD-01' and action='CP_REGISTERED' order by id desc limit 1\" | grep -q 'had been unregistered before'"

# ---- a row made by EV_Central --add-cp (Release 1 style, no secret) is taken over
if "$EV_CENTRAL" --add-cp ZGZ-01 'Coso 1' 0.2 --db "$DB" >/dev/null 2>"$T_DIR/central.err"; then
	ok "EV_Central --add-cp on the registry's database, the registry running"
else
	not_ok "EV_Central --add-cp on the registry's database"; diag "$(cat "$T_DIR/central.err")"
fi
q "update charging_points set stopped=1 where id='ZGZ-01'"
count_call GET /v1/cps/ZGZ-01 "$TOKEN"
check "a row without a secret is not registered (404)" status_is 404
count_call POST /v1/cps "$TOKEN" '{"id":"ZGZ-01","location":"Coso 2","price":0.22}'
S4=$(jget secret)
keep_secret "$S4"
check "POST takes it over: 201" status_is 201
check "taken over: new location and price, Central's own columns kept" test \
	"$(q "select location||'|'||price||'|'||stopped||'|'||(secret_hash is not null) from charging_points where id='ZGZ-01'")" = "Coso 2|0.22|1|1"

# ---- audit_log
check "audit: CP_REGISTERED rows (MAD-01 twice, VLC_1, LONG-1, CT-1, BCN-01, ZGZ-01)" test \
	"$(q "select count(*) from audit_log where action='CP_REGISTERED' and actor='registry' and source_ip='127.0.0.1'")" = 7
check "audit: CP_SECRET_ROTATED x2, CP_UNREGISTERED x1" test \
	"$(q "select sum(action='CP_SECRET_ROTATED')||'|'||sum(action='CP_UNREGISTERED') from audit_log")" = "2|1"
check "audit: every 401 is a CP_AUTH_FAILED row" test \
	"$(q "select count(*) from audit_log where action='CP_AUTH_FAILED'")" = 9
check "audit details are sentences (taking over said so)" bash -c \
	"sqlite3 '$DB' \"select detail from audit_log where cp_id='ZGZ-01'\" | grep -q 'known before without a credential'"
q "select * from audit_log" >"$T_DIR/audit.txt"
check "no secret or token in audit_log" no_secrets_in "$T_DIR/audit.txt"
check "audit_log refuses an UPDATE" bash -c "! sqlite3 '$DB' \"update audit_log set detail='x'\" 2>/dev/null"

# ---- logs
pid=$(pid_of reg)
kill -TERM "$pid"
wait "$pid"
rc=$?
check "SIGTERM: exit 0" test "$rc" = 0
lines=$(grep -Ec ' (GET|POST|PUT|DELETE) .* [0-9]{3} 127\.0\.0\.1' "$(log_of reg)")
check "one log line per request ($CALLS requests)" test "$lines" = "$CALLS"
check "a refused request's log line says why, without the path a client made up" bash -c \
	"grep -q 'GET (unknown path) 404 127.0.0.1' '$(log_of reg)' && ! grep -q 'bad!id' '$(log_of reg)'"
check "no secret or token in the registry's log" no_secrets_in "$(log_of reg)"
strings "$DB" "$DB-wal" 2>/dev/null >"$T_DIR/dbstrings"
check "no secret in the database file" no_secrets_in "$T_DIR/dbstrings"
