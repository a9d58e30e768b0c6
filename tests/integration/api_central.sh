#!/usr/bin/env bash
# Central's HTTPS API (EV_Central(1) API) on the real EV_Central: real TLS
# with scripts/pki's certificates, curl as the client, scripted monitors
# (fake_monitor) on the link port and kcat as a driver on the real broker.
# Roles, statuses, shapes, commands through the main loop (and their
# audit rows), the weather rule through the readings endpoint, the event
# stream, /metrics through a real Prometheus parser, and no token anywhere
# it must not be.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
for t in kcat sqlite3 curl openssl python3; do
	command -v $t >/dev/null || tap_skip_all "$t needed"
done
pick_python json prometheus_client || tap_skip_all "python3-prometheus-client needed (Debian package)"
export PY
tap_plan 49

DB=$T_DIR/central.db
"$EVC_SRCDIR/scripts/pki" init "$T_DIR/pki" >/dev/null 2>&1 # pki/ beside the db: Central's defaults
check "pki ready" test -s "$T_DIR/pki/central.pem"
RO=$(openssl rand -hex 24) OP=$(openssl rand -hex 24) WX=$(openssl rand -hex 24) BAD=$(openssl rand -hex 24)
(umask 077 && printf '# name role token\nro read %s\nop operate %s\nwx weather %s\n' "$RO" "$OP" "$WX" >"$T_DIR/tokens")
"$EV_CENTRAL" --add-driver 101 --db "$DB" >/dev/null

# ---- refusals at start ----------------------------------------------------------
"$EV_CENTRAL" 0 "$K" "$DB" --headless --api 1 >/dev/null 2>"$T_DIR/e1"
check "--api without --api-tokens: exit 2, says why" bash -c "[ $? -eq 2 ] && grep -q -- '--api-tokens' '$T_DIR/e1'"
cp "$T_DIR/tokens" "$T_DIR/tokens.open" && chmod 644 "$T_DIR/tokens.open"
"$EV_CENTRAL" "$(free_port)" "$K" "$DB" --headless --plain-links --api "$(free_port)" --api-tokens "$T_DIR/tokens.open" \
	>"$T_DIR/e2" 2>&1 </dev/null
check "a tokens file others can read: exit 1, says so" bash -c "[ $? -eq 1 ] && grep -qi 'tokens' '$T_DIR/e2'"
check "and no token in what it printed" bash -c "! grep -Fq -e '$RO' -e '$OP' '$T_DIR/e2'"

API_PORT=$(free_port)
c_start c "$DB" --api "$API_PORT" --api-tokens "$T_DIR/tokens"
L=$(log_of c)
check "Central says where the API is" wait_grep 5 "$L" " API https://127\.0\.0\.1:$API_PORT serves"
m_start m1 MAD-01 "Gran Via 1, Madrid" 0.30
m_start m2 BCN-01 "Pg. de Gracia 21, Barcelona" 0.32
wait_grep 10 "$L" ' STATE BCN-01 ACTIVADO$'
wait_grep 10 "$L" ' STATE MAD-01 ACTIVADO$'
c_kafka_up c

API=https://127.0.0.1:$API_PORT
# api TOKEN METHOD PATH [JSON [CONTENT_TYPE]]: body to $T_DIR/body, status to $T_DIR/status
api() {
	local args=(-s --max-time 10 --cacert "$T_DIR/pki/ca.pem" -X "$2" -o "$T_DIR/body" -w '%{http_code}')
	[ -n "$1" ] && args+=(-H "Authorization: Bearer $1")
	[ $# -ge 4 ] && args+=(-H "Content-Type: ${5:-application/json}" --data-binary "$4")
	curl "${args[@]}" "$API$3" >"$T_DIR/status" 2>/dev/null
	cat "$T_DIR/body" >>"$T_DIR/answers"
	echo >>"$T_DIR/answers"
}
st() { [ "$(cat "$T_DIR/status")" = "$1" ]; }
# j EXPR: a Python expression on the last body (j) is true
j() { "$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$T_DIR/body" "$1"; }
field_is() { api "$RO" GET "/api/v1/cps/$1" && st 200 && j "j[\"$2\"] == \"$3\""; }

# ---- reads and roles --------------------------------------------------------------
# The snapshot the reads come from follows the STATE lines within 100 ms.
cps_up() { api "$RO" GET /api/v1/cps && st 200 && j 'len(j) == 2 and all(c["state"] == "ACTIVADO" for c in j)'; }
wait_for 10 cps_up
check "GET /api/v1/cps (read): 200" st 200
check "two CPs with exactly the documented fields" j 'len(j) == 2 and all(sorted(c) == sorted(["id","location","price","state","caption","link","driver_id","kw","kwh","importe","since"]) for c in j)'
check "values: id order, location, price, state, caption, link plain" j 'j[0]["id"] == "BCN-01" and j[1]["location"] == "Gran Via 1, Madrid" and j[1]["price"] == 0.3 and j[1]["state"] == "ACTIVADO" and j[1]["caption"] == "Available" and j[1]["link"] == "plain"'
api "" GET /api/v1/cps
check "no token: 401" st 401
api "$BAD" GET /api/v1/cps
check "a wrong token: 401 with {\"error\"}" bash -c "[ \"\$(cat '$T_DIR/status')\" = 401 ] && grep -q '\"error\"' '$T_DIR/body'"
api "$WX" GET /api/v1/cps
check "the weather role may not read: 403" st 403
api "$RO" POST /api/v1/cps/MAD-01/stop
check "a read token may not stop: 403" st 403
api "$RO" GET /api/v1/cps/NOPE-9
check "an unknown CP: 404" st 404
api "$RO" DELETE /api/v1/cps
check "a wrong method: 405" st 405
check "the denials are audited as API_DENIED (4 rows, no token in them)" wait_for 10 bash -c \
	"[ \"\$(sqlite3 '$DB' \"select count(*) from audit_log where action='API_DENIED'\")\" -ge 4 ] && [ \"\$(sqlite3 '$DB' \"select count(*) from audit_log where instr(detail,'$BAD') or instr(detail,'$RO')\")\" = 0 ]"

# ---- the event stream ------------------------------------------------------------------
curl -s -N --max-time 60 --cacert "$T_DIR/pki/ca.pem" -H "Authorization: Bearer $RO" "$API/api/v1/events" \
	>"$T_DIR/sse" 2>/dev/null &
SSE_PID=$!
wait_for 10 bash -c "curl -s --max-time 5 --cacert '$T_DIR/pki/ca.pem' -H 'Authorization: Bearer $RO' '$API/metrics' | grep -q '^evc_api_event_streams 1'"

# ---- commands ------------------------------------------------------------------------------
api "$OP" POST /api/v1/cps/MAD-01/stop
check "POST stop (operate): 202 {\"sent\":true}" bash -c "[ \"\$(cat '$T_DIR/status')\" = 202 ] && grep -q '\"sent\": *true' '$T_DIR/body'"
check "the monitor gets PARAR" wait_grep 10 "$(log_of m1)" 'RECV PARAR'
send m1 "send ACK#PARAR"
check "MAD-01 FUERA_DE_SERVICIO in the API" wait_for 10 field_is MAD-01 state FUERA_DE_SERVICIO
check "the stream had the change (event: cp, MAD-01 FUERA_DE_SERVICIO)" wait_for 10 bash -c \
	"grep -A1 '^event: cp' '$T_DIR/sse' | grep -q '\"id\": *\"MAD-01\".*\"state\": *\"FUERA_DE_SERVICIO\"'"
check "the stop is audited with actor api:op and the client's address" wait_for 10 bash -c \
	"[ \"\$(sqlite3 '$DB' \"select count(*) from audit_log where action='OPERATOR_STOP' and actor='api:op' and source_ip='127.0.0.1' and cp_id='MAD-01'\")\" = 1 ]"
api "$OP" POST /api/v1/cps/MAD-01/stop
check "stop again: 409 with why" bash -c "[ \"\$(cat '$T_DIR/status')\" = 409 ] && grep -q 'error' '$T_DIR/body'"
api "$OP" POST /api/v1/cps/MAD-01/resume
check "POST resume: 202" st 202
wait_grep 10 "$(log_of m1)" 'RECV REANUDAR'
send m1 "send ACK#REANUDAR"
check "MAD-01 ACTIVADO again" wait_for 10 field_is MAD-01 state ACTIVADO
api "$OP" POST /api/v1/cps/stop-all
check "stop-all: 202 with both CPs sent" bash -c "[ \"\$(cat '$T_DIR/status')\" = 202 ]" 
check "stop-all's answer lists the two ids" j 'sorted(j["sent"]) == ["BCN-01","MAD-01"] and j["failed"] == []'
wait_grep 10 "$(log_of m2)" 'RECV PARAR'
send m2 "send ACK#PARAR"
n1=$(count_grep "$(log_of m1)" 'RECV PARAR')
[ "$n1" -ge 2 ] && send m1 "send ACK#PARAR"
wait_for 10 field_is BCN-01 state FUERA_DE_SERVICIO
api "$OP" POST /api/v1/cps/resume-all
check "resume-all: 202" st 202
wait_grep 10 "$(log_of m2)" 'RECV REANUDAR'
send m2 "send ACK#REANUDAR"
wait_for 10 bash -c "[ \$(grep -c 'RECV REANUDAR' '$(log_of m1)') -ge 2 ]" && send m1 "send ACK#REANUDAR"
check "both ACTIVADO after resume-all" wait_for 10 bash -c "$(declare -f api st j field_is); API=$API T_DIR=$T_DIR RO=$RO; field_is MAD-01 state ACTIVADO && field_is BCN-01 state ACTIVADO"

# ---- bodies ---------------------------------------------------------------------------------
api "$OP" PUT /api/v1/weather/threshold '{"threshold":"cold"}'
check "a threshold that is not a number: 400" st 400
api "$OP" PUT /api/v1/weather/threshold '{"threshold":1}' text/plain
check "a body that is not JSON by its type: 415" st 415
head -c 20000 /dev/zero | tr '\0' 'x' >"$T_DIR/big"
api "$WX" POST /api/v1/weather/readings "@$T_DIR/big"
check "a body over 16 KiB: 413" st 413

# ---- the weather rule ---------------------------------------------------------------------
api "$OP" PUT /api/v1/weather/threshold '{"threshold":0}'
check "PUT threshold (operate): 200" st 200
api "$WX" POST /api/v1/weather/readings '{"city":"Madrid","temperature":-3.5}'
check "a reading below it: 200 alert true, cps [MAD-01]" bash -c "[ \"\$(cat '$T_DIR/status')\" = 200 ]"
check "its answer names the CPs in the city" j 'j == {"alert": True, "cps": ["MAD-01"]}'
check "MAD-01's monitor gets PARAR (the weather stop)" wait_for 10 bash -c "[ \$(grep -c 'RECV PARAR' '$(log_of m1)') -ge 3 ]"
send m1 "send ACK#PARAR"
check "caption \"Weather alert\", FUERA_DE_SERVICIO" wait_for 10 bash -c "$(declare -f api st j field_is); API=$API T_DIR=$T_DIR RO=$RO; field_is MAD-01 caption 'Weather alert' && field_is MAD-01 state FUERA_DE_SERVICIO"
check "BCN-01 untouched" field_is BCN-01 state ACTIVADO
check "WEATHER_ALERT audited (actor weather)" wait_for 10 db_is "$DB" \
	"select count(*) from audit_log where action='WEATHER_ALERT' and actor='weather'" 1
api "$OP" POST /api/v1/cps/MAD-01/resume
check "an operator resume does not clear a weather stop: 409 naming the weather" bash -c \
	"[ \"\$(cat '$T_DIR/status')\" = 409 ] && grep -qi 'weather' '$T_DIR/body'"
api "$RO" GET /api/v1/weather
check "GET /api/v1/weather: threshold, Madrid alerted with its CP" j 'j["threshold"] == 0 and [(c["city"], c["temperature"], c["alert"], c["cps"]) for c in j["cities"]] == [("Madrid", -3.5, True, ["MAD-01"])]'
api "$WX" POST /api/v1/weather/readings '{"city":"Madrid","error":"provider timeout"}'
check "an error reading keeps the alert" j 'j["alert"] == True'
api "$WX" POST /api/v1/weather/readings '{"city":"Madrid","temperature":4}'
check "a reading at or above: alert false" j 'j["alert"] == False'
check "MAD-01 gets REANUDAR (the clear)" wait_for 10 bash -c "[ \$(grep -c 'RECV REANUDAR' '$(log_of m1)') -ge 3 ]"
send m1 "send ACK#REANUDAR"
check "MAD-01 ACTIVADO after the clear; WEATHER_CLEAR audited" wait_for 10 bash -c \
	"$(declare -f api st j field_is dbq); API=$API T_DIR=$T_DIR RO=$RO; field_is MAD-01 state ACTIVADO && [ \"\$(dbq '$DB' \"select count(*) from audit_log where action='WEATHER_CLEAR'\")\" = 1 ]"

# ---- a driver, the history, /metrics ----------------------------------------------------
req 101 BCN-01
wait_grep 15 "$L" ' AUTH_OK 101 BCN-01 '
req 999 BCN-01
wait_grep 15 "$L" ' AUTH_DENIED 999 BCN-01 '
bcn_detail() { api "$RO" GET /api/v1/cps/BCN-01 && j '"events" in j and "sessions" in j and len(j["events"]) >= 1 and j["driver_id"] == "101"'; }
check "GET /api/v1/cps/BCN-01: its events and sessions" wait_for 10 bcn_detail
api "$RO" GET '/api/v1/audit?limit=5'
check "GET /api/v1/audit?limit=5: 5 rows, newest first, documented fields" j 'len(j) == 5 and j[0]["id"] > j[4]["id"] and sorted(j[0]) == sorted(["id","ts","actor","source_ip","action","cp_id","detail"])'
check "the stream had the request lines and audit lines" wait_for 10 bash -c "grep -q '^event: request' '$T_DIR/sse' && grep -q '^event: audit' '$T_DIR/sse'"
metrics_ok() {
	curl -s --max-time 5 --cacert "$T_DIR/pki/ca.pem" -H "Authorization: Bearer $RO" "$API/metrics" >"$T_DIR/metrics" &&
		"$PY" - "$T_DIR/metrics" <<'EOF'
import sys
from prometheus_client.parser import text_string_to_metric_families
fam = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
def val(name, **labels):
    for s in fam[name].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()) and s.name == name:
            return s.value
    raise KeyError(name)
assert sum(s.value for s in fam["evc_cps"].samples) == 2
assert val("evc_cps", state="RESERVADO") == 1
assert val("evc_links", kind="plain") == 2 and val("evc_links", kind="tls") == 0
assert val("evc_open_sessions") == 1
assert val("evc_kafka_up") == 1
# prometheus_client strips _total from counter family names
assert val("evc_driver_requests_total", outcome="authorised") == 1 if "evc_driver_requests" not in fam else True
dr = fam.get("evc_driver_requests") or fam["evc_driver_requests_total"]
got = {s.labels["outcome"]: s.value for s in dr.samples}
assert got["authorised"] == 1 and got["denied"] == 1, got
h = fam["evc_store_commit_seconds"]
assert [s for s in h.samples if s.name.endswith("_count")][0].value > 0
EOF
}
check "/metrics parses (prometheus_client) with the network's figures" wait_for 10 metrics_ok

# ---- secrets -------------------------------------------------------------------------------
kill "$SSE_PID" 2>/dev/null
wait "$SSE_PID" 2>/dev/null
stop c
check "no token in Central's log, any answer, the stream or the database" bash -c \
	"! grep -Fq -e '$RO' -e '$OP' -e '$WX' -e '$BAD' '$L' '$T_DIR/answers' '$T_DIR/sse' && ! sqlite3 '$DB' .dump | grep -Fq -e '$RO' -e '$OP' -e '$WX' -e '$BAD'"
check "Central stopped cleanly (its SHUTDOWN line)" grep -q ' SHUTDOWN reason=signal' "$L"
