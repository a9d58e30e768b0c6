#!/usr/bin/env bash
# EV_Central and its CP links, headless, against a real broker: register,
# fault, recover, operator stop/resume of one and all (re-sent on reconnect),
# heartbeat loss, denied registrations, console commands and errors, clean
# shutdown with EOT, stdin EOF not quitting, Q quitting.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v kcat >/dev/null && command -v sqlite3 >/dev/null || tap_skip_all "kcat and sqlite3 needed"
tap_plan 34

DB=$T_DIR/central.db
"$EV_CENTRAL" --add-cp MAD-02 "Gran Via 1" 0.30 --db "$DB" >/dev/null
c_start c "$DB" --heartbeat-timeout 1
L=$(log_of c)
check "READY line names the prefix" grep -q "prefix=$T_PREFIX" "$L"

m_start m1 MAD-01 "C/ Serrano 10" 0.25
M1=$(log_of m1)
check "new CP: REGISTER_RESULT#FIRST" wait_grep 10 "$M1" '^RECV REGISTER_RESULT#FIRST$'
check "new CP: console STATE ACTIVADO" wait_grep 5 "$L" ' STATE MAD-01 ACTIVADO$'
check "new CP: link line" grep -Eq ' LINK up conn=[0-9]+ peer=127\.0\.0\.1:' "$L"
check "new CP: stored ACTIVADO with location and price" wait_for 5 db_is "$DB" \
	"select status||'|'||location||'|'||price from charging_points where id='MAD-01'" 'ACTIVADO|C/ Serrano 10|0.25'

send m1 "send FAULT#MAD-01#engine KO"
check "FAULT -> AVERIADO" wait_grep 5 "$L" ' STATE MAD-01 AVERIADO$'
check "AVERIADO stored" wait_for 5 db_is "$DB" "select status from charging_points where id='MAD-01'" AVERIADO
send m1 "send RECOVER#MAD-01"
check "RECOVER -> ACTIVADO" wait_for 5 has_n "$L" ' STATE MAD-01 ACTIVADO$' 2

send c "p MAD-01"
check "stop: CMD sent (lower-case command accepted)" wait_grep 5 "$L" ' CMD PARAR MAD-01 sent$'
check "stop: monitor got PARAR#CENTRAL" wait_grep 5 "$M1" '^RECV PARAR#CENTRAL$'
check "stop: FUERA_DE_SERVICIO once ACKed" wait_grep 5 "$L" ' STATE MAD-01 FUERA_DE_SERVICIO$'
check "stop: stored (stopped=1)" wait_for 5 db_is "$DB" \
	"select status||'|'||stopped from charging_points where id='MAD-01'" 'FUERA_DE_SERVICIO|1'

# Reconnect while stopped: the stop is re-sent and the CP stays out of service.
send m1 "close"
check "link closed -> DESCONECTADO" wait_grep 5 "$L" ' STATE MAD-01 DESCONECTADO$'
m_start m1b MAD-01 "C/ Serrano 10" 0.25
M1B=$(log_of m1b)
check "reconnect: REGISTER_RESULT#RECONNECT" wait_grep 10 "$M1B" '^RECV REGISTER_RESULT#RECONNECT$'
check "reconnect: PARAR re-sent" wait_grep 5 "$M1B" '^RECV PARAR#CENTRAL$'
check "reconnect: still FUERA_DE_SERVICIO" wait_for 5 has_n "$L" ' STATE MAD-01 FUERA_DE_SERVICIO$' 2

send c "REANUDAR MAD-01"
check "resume: monitor got REANUDAR#CENTRAL" wait_grep 5 "$M1B" '^RECV REANUDAR#CENTRAL$'
check "resume: ACTIVADO, stored stopped=0" wait_for 5 db_is "$DB" \
	"select status||'|'||stopped from charging_points where id='MAD-01'" 'ACTIVADO|0'

send c "P MAD-02"
check "command to a disconnected CP fails at once" wait_grep 5 "$L" ' CMD PARAR MAD-02 failed reason=.+'
send c "FROB 12"
check "unknown command: one ERROR line" wait_grep 5 "$L" ' ERROR .*FROB|ERROR .*unknown'

m_start m2 MAD-02 "Gran Via 1" 0.30
M2=$(log_of m2)
check "known CP registers: RECONNECT" wait_grep 10 "$M2" '^RECV REGISTER_RESULT#RECONNECT$'
send c "PT"
check "stop all: both CPs FUERA_DE_SERVICIO" wait_for 8 bash -c \
	"grep -q ' STATE MAD-01 FUERA_DE_SERVICIO' '$L' && grep -q ' STATE MAD-02 FUERA_DE_SERVICIO' '$L' && [ \$(grep -c ' STATE MAD-01 FUERA_DE_SERVICIO' '$L') -ge 3 ]"
send c "rt"
check "resume all: both ACTIVADO in the db" wait_for 8 db_is "$DB" \
	"select group_concat(status) from (select status from charging_points order by id)" 'ACTIVADO,ACTIVADO'

# A second REGISTER for a live CP, and an invalid one, are denied and closed.
m_start m3 MAD-02 "Gran Via 1" 0.30
check "second REGISTER of a live CP denied" wait_grep 10 "$(log_of m3)" '^RECV REGISTER_RESULT#DENIED#'
check "denied link is closed by Central" wait_grep 5 "$(log_of m3)" '^CLOSED$'
m_start m4 BAD-PRICE "Somewhere" 500
check "REGISTER with price 500 denied" wait_grep 10 "$(log_of m4)" '^RECV REGISTER_RESULT#DENIED#'

send c "S"
check "STATUS lists CPs and a summary" wait_grep 5 "$L" ' SUMMARY cps=2 .*ACTIVADO=2'

# Heartbeat loss (timeout 1 s here): the link is closed, the CP shown DESCONECTADO.
send m2 "hb off"
check "heartbeat loss: MAD-02 DESCONECTADO" wait_grep 6 "$L" ' STATE MAD-02 DESCONECTADO$'
check "heartbeat loss: monitor's link closed" wait_grep 5 "$M2" '^(GOT EOT|CLOSED)$'

# Clean shutdown: EOT to every CP, exit 0, every CP stored DESCONECTADO.
cpid=$(pid_of c)
kill -TERM "$cpid"
check "SIGTERM: exit status 0" exits_with 10 "$cpid" 0
check "SIGTERM: EOT sent to the connected CP" grep -q '^GOT EOT$' "$M1B"
check "after shutdown every CP is DESCONECTADO in the db" db_is "$DB" \
	"select count(*) from charging_points where status<>'DESCONECTADO'" 0

# stdin at EOF does not stop Central; Q does, with status 0.
P2=$(free_port)
"$EV_CENTRAL" "$P2" "$K" "$T_DIR/eof.db" --headless --plain-links </dev/null >"$T_DIR/eof.log" 2>&1 &
epid=$!
T_PIDS+=("$epid")
wait_grep 15 "$T_DIR/eof.log" ' READY '
C_PORT=$P2 m_start m5 EOF-01
check "stdin EOF: Central keeps serving links" wait_grep 10 "$(log_of m5)" '^RECV REGISTER_RESULT#FIRST$'
kill -TERM "$epid"
wait_for 10 bash -c "! kill -0 $epid 2>/dev/null"
P3=$(free_port)
C_PORT=$P3 c_start q "$T_DIR/q.db"
qpid=$(pid_of q)
send q "Q"
check "Q: clean exit with status 0" exits_with 10 "$qpid" 0
