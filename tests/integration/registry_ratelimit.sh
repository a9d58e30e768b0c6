#!/usr/bin/env bash
# EV_Registry's limit on failed authentications: 10 from one address are
# answered 401, the 11th within the minute blocks the address (429 with
# Retry-After, for every request, even with the right token, audited once
# as RATE_LIMITED), other addresses are still served; missing credentials
# and wrong CP secrets count as failures too. (The end of the 60 s block
# is checked by tests/unit/test_ratelimit with given times, not waited for
# here.)
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/registry_lib.sh"
tap_plan 17

r_start reg || { not_ok "EV_Registry starts"; exit 1; }
register MAD-01
keep_secret "$SECRET"
check "a CP registered" status_is 201

codes=
for i in $(seq 1 10); do
	call GET /v1/cps/MAD-01 "wrong-token-$i"
	codes="$codes $ST"
done
check "10 wrong tokens: 401 each" test "$codes" = "$(printf ' 401%.0s' {1..10})"
call GET /v1/cps/MAD-01 wrong-token-11
check "the 11th within the minute: 429" status_is 429
ra=$(header Retry-After)
check "429 carries Retry-After of at most 60 s (${ra:-none})" bash -c "[[ '$ra' =~ ^[0-9]+\$ ]] && [ '$ra' -ge 1 ] && [ '$ra' -le 60 ]"
check "429 body is a JSON error" bash -c "[ \"\$(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1]))))' '$T_DIR/body')\" = \"['error']\" ]"
call GET /v1/cps/MAD-01 "$TOKEN"
check "the right installer token from that address: 429 too" status_is 429
ra=$(header Retry-After)
check "...with Retry-After (${ra:-none})" bash -c "[[ '$ra' =~ ^[0-9]+\$ ]] && [ '$ra' -ge 1 ] && [ '$ra' -le 60 ]"
call GET /v1/cps/MAD-01 "$SECRET"
check "the CP's own secret from that address: 429" status_is 429
call GET /nowhere "$TOKEN"
check "any path from that address: 429" status_is 429
code=$(curl -4 -sS --max-time 10 --cacert "$CA" --interface 127.0.0.2 -H "Authorization: Bearer $TOKEN" \
	-o /dev/null -w '%{http_code}' "https://localhost:$R_PORT/v1/cps/MAD-01" 2>"$T_DIR/curl.err")
check "another address (127.0.0.2) is still served: 200" test "$code" = 200
check "audit: 11 CP_AUTH_FAILED and one RATE_LIMITED from 127.0.0.1" test \
	"$(q "select sum(action='CP_AUTH_FAILED')||'|'||sum(action='RATE_LIMITED')||'|'||count(distinct source_ip) from audit_log where action in ('CP_AUTH_FAILED','RATE_LIMITED')")" = "11|1|1"
check "the RATE_LIMITED detail says what and for how long" bash -c \
	"sqlite3 '$DB' \"select detail from audit_log where action='RATE_LIMITED'\" | grep -q 'more than 10 failed authentications from 127.0.0.1 within 60 s'"
for i in 1 2 3; do call GET /v1/cps/MAD-01 "still-wrong-$i"; done
check "requests refused while blocked add no audit rows" test "$(q "select count(*) from audit_log where action in ('CP_AUTH_FAILED','RATE_LIMITED')")" = 12

# Missing credentials count: 127.0.0.3 without any Authorization header.
for i in $(seq 1 11); do
	code=$(curl -4 -sS --max-time 10 --cacert "$CA" --interface 127.0.0.3 -o /dev/null -w '%{http_code}' \
		"https://localhost:$R_PORT/v1/cps/MAD-01" 2>"$T_DIR/curl.err")
done
check "11 requests without a credential from 127.0.0.3: the last is 429" test "$code" = 429
# Wrong CP secrets count: 127.0.0.4 with well-formed secrets of nobody.
for i in $(seq 1 11); do
	fake=$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
	code=$(curl -4 -sS --max-time 10 --cacert "$CA" --interface 127.0.0.4 -H "Authorization: Bearer $fake" \
		-X DELETE -o /dev/null -w '%{http_code}' "https://localhost:$R_PORT/v1/cps/MAD-01" 2>"$T_DIR/curl.err")
done
check "11 wrong CP secrets from 127.0.0.4: the last is 429" test "$code" = 429
call GET /v1/cps/MAD-01 - - --interface 127.0.0.2 -4
check "127.0.0.2 still unaffected (its one request above was good): 401 without a credential" status_is 401
check "no secret or token in the registry's log" no_secrets_in "$(log_of reg)"
