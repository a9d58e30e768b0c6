#!/bin/bash
# EV_Driver against the real broker, with kcat playing Central: the request
# on driver_requests, the steps it shows (only its own), the CPs available,
# a bad message skipped, DRIVER_QUIT on q; then file mode: sequencing with
# the pause, a ticket, a denial and a timeout, and the summary.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
tap_plan 27

K=$EVC_KAFKA
# notify USER JSON: a notification as Central would send it (key = user).
notify() { printf '%s\t%s\n' "$1" "$2" | kcat -b "$K" -P -t "$(topic driver_notifications)" -K $'\t'; }
# requests: everything on driver_requests so far, as "key<TAB>value".
requests() { kcat -b "$K" -C -t "$(topic driver_requests)" -o beginning -e -q -f '%k\t%s\n' 2>/dev/null; }
note() { # note TYPE USER CP SESSION EXTRA-JSON
	local s=""; [ -n "$4" ] && s=",\"session_id\":\"$4\""
	notify "$2" "{\"type\":\"$1\",\"cp_id\":\"$3\",\"user_id\":\"$2\",\"target_driver\":\"$2\"$s$5}"
}
exit_status() { # exit_status NAME: wait for it to end by itself; its status in RC
	local pid; pid=$(pid_of "$1")
	RC=timeout
	wait_for 15 bash -c "! kill -0 $pid 2>/dev/null" || return 0
	wait "$pid"; RC=$?
}

# ---- interactive (stdin) mode --------------------------------------------
start d1 "$EV_DRIVER" "$K" 101 --headless
L=$(log_of d1)
check "driver reads its notification backlog and is ready" wait_grep 20 "$L" '^[0-9T:.-]* READY$'
send d1 "r MAD-01"
check "REQUEST line shown" wait_grep 5 "$L" '^[0-9T:.-]* REQUEST cp=MAD-01 request=[^ ]+$'
check "REQUEST_CHARGE on driver_requests, key = user, all fields" wait_for 10 bash -c \
	"$(declare -f requests topic); T_PREFIX='$T_PREFIX' K='$K'; requests | grep -E '^101	\{' | grep '\"type\":\"REQUEST_CHARGE\"' | grep '\"user_id\":\"101\"' | grep '\"cp_id\":\"MAD-01\"' | grep '\"origin\":\"driver\"' | grep '\"request_id\":\"' | grep -q '\"timestamp\":'"
note AUTH_OK 102 MAD-01 S-OTHER ',"message":"not yours"'
note AUTH_OK 101 MAD-01 S1 ',"message":"go ahead"'
check "AUTH_OK shown with session and wait" wait_grep 10 "$L" '^[0-9T:.-]* AUTH_OK cp=MAD-01 session=S1 wait_ms=[0-9]+ message="go ahead"$'
note CONSUMO_UPDATE 101 MAD-01 S1 ',"kwh":0.5,"importe":0.13,"kw":7.2'
check "plugged, then the live figures" wait_grep 10 "$L" '^[0-9T:.-]* CONSUMO cp=MAD-01 session=S1 kw=7.20 kwh=0.500 importe=0.13'
grep -q '^[0-9T:.-]* PLUGGED cp=MAD-01 session=S1$' "$L" && ok "PLUGGED shown once the supply starts" || not_ok "PLUGGED shown once the supply starts"
notify 101 'this is not json'
note TICKET 101 MAD-01 S1 ',"kwh":1.0,"importe":0.25,"price":0.25,"started_at":1700000000.0,"ended_at":1700000060.5'
# The figures as the CONSUMO lines print them, the times as every timestamp
# (it was kwh=1.000000 ... started=1700000000.000).
t0=$(date -d @1700000000 +%Y-%m-%dT%H:%M:%S.000)
t1=$(date -d @1700000060 +%Y-%m-%dT%H:%M:%S.500)
check "TICKET shown with kWh, EUR, price, start, end" wait_grep 10 "$L" \
	"^[0-9T:.-]* TICKET cp=MAD-01 session=S1 kwh=1.000 importe=0.25 price=0.25 started=$t0 ended=$t1\$"
grep -q 'skipping a bad message' "$L" && ok "bad JSON logged and skipped" || not_ok "bad JSON logged and skipped"
[ "$(count_grep "$L" 'S-OTHER')" -eq 0 ] && ok "another driver's notification is not shown" || not_ok "another driver's notification is not shown"
send d1 "r MAD-02"
wait_grep 5 "$L" '^[0-9T:.-]* REQUEST cp=MAD-02'
note AUTH_DENIED 101 MAD-02 "" ',"reason":"CP MAD-02 is AVERIADO"'
check "AUTH_DENIED shown with its reason" wait_grep 10 "$L" '^[0-9T:.-]* AUTH_DENIED cp=MAD-02 request=- reason="CP MAD-02 is AVERIADO"$'
printf '%s\n' '{"type":"NETWORK_STATUS_UPDATE","timestamp":1700000100.0,"cps":[{"id":"MAD-01","status":"ACTIVADO","location":"C/ Serrano 10","price":0.25},{"id":"MAD-02","status":"AVERIADO","location":"Gran Via 1","price":0.3},{"id":"BCN-01","status":"ACTIVADO","location":"Diagonal 5","price":0.31}]}' |
	kcat -b "$K" -P -t "$(topic network_status)"
check "CPs available now (ACTIVADO only) from network_status" wait_grep 15 "$L" '^[0-9T:.-]* AVAILABLE n=2 cps=MAD-01@0.25,BCN-01@0.31$'
send d1 "x y z"
check "unknown command answered with an error line" wait_grep 5 "$L" "^[0-9T:.-]* ERROR unknown command 'x y z'"
send d1 "r"
check "r without a CP id is answered with an error line" wait_grep 5 "$L" '^[0-9T:.-]* ERROR r needs a CP id'
send d1 "q"
exit_status d1
[ "$RC" = 1 ] && ok "q exits 1: a service was denied (only --keep-going exits 0 then)" || not_ok "q exits 1 after a denial (got $RC)"
grep -q '^[0-9T:.-]* SUMMARY served=1 denied=1 failed=0 kwh=1.000 importe=0.25$' "$L" && ok "summary counts the ticket and the denial" || not_ok "summary counts the ticket and the denial"
check "DRIVER_QUIT sent on close" bash -c "$(declare -f requests topic); T_PREFIX='$T_PREFIX' K='$K'; requests | grep -q '^101	{\"type\":\"DRIVER_QUIT\",\"user_id\":\"101\"'"

# ---- file mode -----------------------------------------------------------
printf '# three services\nCP-A\n\n   CP-B   # denied\nCP-C\n' >"$T_DIR/services.txt"
start d2 "$EV_DRIVER" "$K" 202 "$T_DIR/services.txt" --headless --pause 1 --answer-timeout 2
L=$(log_of d2)
check "file mode: first request" wait_grep 20 "$L" '^[0-9T:.-]* REQUEST cp=CP-A '
note AUTH_OK 202 CP-A S-A ',"message":"ok"'
note TICKET 202 CP-A S-A ',"kwh":2.0,"importe":0.5,"price":0.25,"started_at":1700000000.0,"ended_at":1700000010.0'
wait_grep 10 "$L" '^[0-9T:.-]* TICKET cp=CP-A'
check "file mode: second request after the pause" wait_grep 10 "$L" '^[0-9T:.-]* REQUEST cp=CP-B '
# The gap between the two lines' own timestamps (not when this test saw them).
gap=$(python3 -c '
import datetime, re, sys
ts = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) (TICKET cp=CP-A|REQUEST cp=CP-B) ", line)
    if m and m.group(2) not in ts:
        ts[m.group(2)] = datetime.datetime.fromisoformat(m.group(1))
print(int((ts["REQUEST cp=CP-B"] - ts["TICKET cp=CP-A"]).total_seconds() * 1000))' "$L" 2>/dev/null || echo 0)
[ "$gap" -ge 800 ] && ok "the next service waits the pause (${gap} ms)" || not_ok "the next service waits the pause (${gap} ms)"
note AUTH_DENIED 202 CP-B "" ',"reason":"no such CP"'
check "file mode: third request after the denial" wait_grep 10 "$L" '^[0-9T:.-]* REQUEST cp=CP-C '
check "no answer: TIMEOUT after --answer-timeout" wait_grep 10 "$L" '^[0-9T:.-]* TIMEOUT cp=CP-C '
exit_status d2
[ "$RC" = 1 ] && ok "file mode ends by itself, status 1 (a denial and a timeout)" || not_ok "file mode ends by itself with status 1 (got $RC)"
grep -q '^[0-9T:.-]* SUMMARY served=1 denied=1 failed=1 kwh=2.000 importe=0.50$' "$L" && ok "file mode summary" || not_ok "file mode summary"

# --keep-going: a failed service still exits 0 (Release 1's way).
printf 'CP-Z\n' >"$T_DIR/one.txt"
start d2k "$EV_DRIVER" "$K" 205 "$T_DIR/one.txt" --headless --answer-timeout 1 --keep-going
exit_status d2k
[ "$RC" = 0 ] && grep -q '^[0-9T:.-]* SUMMARY served=0 denied=0 failed=1 ' "$(log_of d2k)" &&
	ok "--keep-going: a timed-out service still exits 0" || not_ok "--keep-going: exit 0 after a failed service (got $RC)"

# ---- closing by signal and by end of input ----------------------------------
start d3 "$EV_DRIVER" "$K" 303 --headless
wait_grep 20 "$(log_of d3)" '^[0-9T:.-]* READY$'
kill -TERM "$(pid_of d3)"
exit_status d3
[ "$RC" = 0 ] && ok "SIGTERM: closes with status 0" || not_ok "SIGTERM: closes with status 0 (got $RC)"
check "SIGTERM: DRIVER_QUIT sent" wait_for 10 bash -c "$(declare -f requests topic); T_PREFIX='$T_PREFIX' K='$K'; requests | grep -q '^303	{\"type\":\"DRIVER_QUIT\"'"
timeout 30 "$EV_DRIVER" "$K" 304 --headless </dev/null >"$T_DIR/eof.log" 2>&1
rc=$?
[ "$rc" = 0 ] && grep -q '^[0-9T:.-]* SUMMARY ' "$T_DIR/eof.log" && ok "end of stdin (no file) quits with status 0" ||
	not_ok "end of stdin (no file) quits with status 0 (got $rc)"
