#!/usr/bin/env bash
# Bad input never crashes or hangs Central: garbage bytes, a wrong LRC, a
# 2 KB frame, a frame split into single bytes, unknown opcodes, 1,000
# connections that never send ENQ, a half-open connection, invalid JSON,
# wrong fields and unknown ids on Kafka, garbage on the console.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v kcat >/dev/null && command -v sqlite3 >/dev/null || tap_skip_all "kcat and sqlite3 needed"
tap_plan 23

DB=$T_DIR/central.db
"$EV_CENTRAL" --add-driver 101 --db "$DB" >/dev/null
c_start c "$DB" --heartbeat-timeout 2
L=$(log_of c)

# Garbage instead of ENQ: refused and closed.
start g "$FAKE_MON"
send g "connect 127.0.0.1 $C_PORT"
send g "raw 41424344ff00"
check "garbage before ENQ: connection closed" wait_grep 10 "$(log_of g)" '^CLOSED$'

# 1,000 connections that never send ENQ, held while a real CP works.
start idle "$FAKE_MON"
send idle "idle 1000 127.0.0.1 $C_PORT"
check "1000 idle connections opened" wait_grep 20 "$(log_of idle)" '^IDLE_OPEN 1000$'

# A monitor that misbehaves in every way the link allows, then behaves.
start m "$FAKE_MON"
M=$(log_of m)
send m "connect 127.0.0.1 $C_PORT"
send m "enq"
check "ENQ answered while 1000 idle connections wait" wait_grep 10 "$M" '^GOT ACK$'
send m "split REGISTER#MAD-01#C/ Serrano 10#0.25"
check "REGISTER split into single bytes understood" wait_grep 10 "$M" '^RECV REGISTER_RESULT#FIRST$'
send m "hb MAD-01 300"
send m "badlrc HEARTBEAT#MAD-01"
check "wrong LRC answered with NACK" wait_grep 10 "$M" '^GOT NACK$'
send m "raw 4142430d0a7f80fe"
send m "big 2048"
send m "send FROB#1"
check "unknown opcode after garbage and a 2 KB frame: ERROR frame" wait_grep 10 "$M" '^RECV ERROR#'
send m "send FAULT#OTHER-CP"
check "FAULT for another CP id: ERROR frame" wait_for 10 has_n "$M" '^RECV ERROR#' 2
send m "send REGISTER#MAD-01#Elsewhere#0.30"
check "REGISTER twice on one link: answered, not crashed" wait_for 10 has_n "$M" '^RECV (ERROR#|REGISTER_RESULT#)' 4
check "link still up: CP ACTIVADO" grep -q ' STATE MAD-01 ACTIVADO$' "$L"
check "idle connections closed by the handshake timeout" wait_grep 15 "$(log_of idle)" '^IDLE_ALL_CLOSED$'
check "CP link survived all that" test "$(count_grep "$L" ' STATE MAD-01 DESCONECTADO')" -eq 0

# Half-open: the peer stops sending (write side shut) without EOT.
m_start h HALF-01
wait_grep 10 "$L" ' STATE HALF-01 ACTIVADO$'
send h "shutwr"
check "half-closed peer: link down" wait_grep 10 "$L" ' STATE HALF-01 DESCONECTADO$'
# Half-open the other way: connected and registered, then silent.
m_start s SILENT-01
wait_grep 10 "$L" ' STATE SILENT-01 ACTIVADO$'
send s "hb off"
check "silent peer: closed after the heartbeat timeout" wait_grep 10 "$L" ' STATE SILENT-01 DESCONECTADO$'

# Kafka: invalid JSON, wrong types, unknown types and ids, invalid UTF-8, 100 KB.
c_kafka_up c
kp driver_requests x '{"type":"REQUEST_CHARGE","user_id":"101"' \
	'{"type":"REQUEST_CHARGE","user_id":101,"cp_id":"MAD-01","timestamp":1}' \
	'{"type":"WHATEVER","user_id":"101"}' \
	'[1,2,3]' \
	"{\"type\":\"REQUEST_CHARGE\",\"user_id\":\"$(printf '\xff\xfe')\",\"cp_id\":\"MAD-01\",\"timestamp\":1}"
big=$(head -c 100000 /dev/zero | tr '\0' 'a')
kp driver_requests x "{\"type\":\"REQUEST_CHARGE\",\"user_id\":\"$big\",\"cp_id\":\"MAD-01\",\"timestamp\":1}"
check "six invalid driver requests: six BAD_MSG lines" wait_for 20 has_n "$L" ' BAD_MSG topic=driver_requests ' 6
req 101 NOPE-404
check "request for an unknown CP denied" wait_grep 10 "$L" ' AUTH_DENIED 101 NOPE-404 reason=.+'
req 555 MAD-01
check "request from an unknown driver denied" wait_grep 10 "$L" ' AUTH_DENIED 555 MAD-01 reason=.+'
tele CONSUMO MAD-01 101 no-such-session 1 '"kwh":1,"importe":1,"kw":1'
tele SUPPLY_END GHOST-1 101 no-such-session 2 '"kwh":1,"importe":1'
kp cp_telemetry MAD-01 '{"type":"CONSUMO","cp_id":"MAD-01","user_id":"101","session_id":"s","seq":-4,"kwh":"x"}'
check "telemetry with a bad field: BAD_MSG" wait_grep 20 "$L" ' BAD_MSG topic=cp_telemetry '
check "telemetry for unknown sessions and CPs: no TICKET, no crash" test "$(count_grep "$L" ' TICKET ')" -eq 0

# Console garbage.
send c "$(head -c 3000 /dev/zero | tr '\0' 'x')"
send c "P"
send c "R NO-SUCH-CP"
check "overlong console line: one ERROR" wait_grep 10 "$L" ' ERROR input line too long'
check "P without a CP: ERROR line" wait_for 10 has_n "$L" ' ERROR ' 2
check "R of an unknown CP: CMD failed" wait_grep 10 "$L" ' CMD REANUDAR NO-SUCH-CP failed reason=.+'
send c "S"
check "still answering: STATUS summary" wait_grep 10 "$L" ' SUMMARY cps='
cpid=$(pid_of c)
kill -TERM "$cpid"
check "clean exit after all that" exits_with 10 "$cpid" 0
