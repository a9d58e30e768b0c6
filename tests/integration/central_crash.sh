#!/usr/bin/env bash
# Central killed with SIGKILL in the middle of a supply and of a
# reservation, then restarted on the same database and topics: every CP
# starts DESCONECTADO, each open session waits for its CP (evcharging(7)
# RULES): the engine's telemetry sent while Central was down is billed, its
# end of supply makes the ticket, the reservation is cancelled by its own
# timeout; each ends exactly once with its driver told, replayed Kafka
# messages change nothing, and a further restart finds nothing left.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v kcat >/dev/null && command -v sqlite3 >/dev/null || tap_skip_all "kcat and sqlite3 needed"
tap_plan 19

DB=$T_DIR/central.db
for d in 101 102; do "$EV_CENTRAL" --add-driver "$d" --db "$DB" >/dev/null; done
c_start c1 "$DB"
L1=$(log_of c1)
m_start m1 MAD-01 "C/ Serrano 10" 0.25
m_start m2 MAD-02 "Gran Via 1" 0.40
wait_grep 10 "$L1" ' STATE MAD-02 ACTIVADO$'
c_kafka_up c1
notif_start n
N=$(log_of n)

req 101 MAD-01
wait_grep 15 "$L1" ' AUTH_OK 101 MAD-01 session='
S1=$(session_of "$L1" 101 MAD-01)
tele SESSION_STARTED MAD-01 101 "$S1" 1
tele CONSUMO MAD-01 101 "$S1" 2 '"kwh":3.0,"importe":0.75,"kw":7.0'
check "supply running before the crash" wait_grep 10 "$L1" " CONSUMO 101 MAD-01 session=$S1 kwh=3.0000"
req 102 MAD-02
wait_grep 15 "$L1" ' AUTH_OK 102 MAD-02 session='
S2=$(session_of "$L1" 102 MAD-02)
check "partial figures stored before the crash" wait_for 5 db_is "$DB" \
	"select kwh||'|'||charging from sessions where id='$S1'" '3.0|1'

c1pid=$(pid_of c1)
kill -KILL "$c1pid"
wait "$c1pid" 2>/dev/null
check "monitors see the link drop" wait_grep 10 "$(log_of m1)" '^CLOSED$'
# While Central is down the engine keeps metering and reporting.
tele CONSUMO MAD-01 101 "$S1" 3 '"kwh":3.5,"importe":0.875,"kw":7.0'

c_start c2 "$DB" --reservation-timeout 5
L2=$(log_of c2)
check "restart: every CP stored DESCONECTADO" db_is "$DB" \
	"select count(*) from charging_points where status<>'DESCONECTADO'" 0
check "restart: the supply's session waits for its CP" wait_grep 10 "$L2" \
	"session $S1 on CP MAD-01 kept after Central's restart"
check "the CONSUMO sent while Central was down is applied (billed as metered)" wait_grep 20 "$L2" \
	" CONSUMO 101 MAD-01 session=$S1 kwh=3.5000"
check "restart: the reservation ends SESSION_CANCELLED by its own timeout" wait_grep 20 "$L2" \
	" SESSION_CANCELLED 102 MAD-02 session=$S2 "
tele SUPPLY_END MAD-01 101 "$S1" 4 '"kwh":4.0,"importe":1.0,"kw":0'
check "the engine's end of supply makes the ticket with its figures" wait_grep 20 "$L2" \
	" TICKET 101 MAD-01 session=$S1 kwh=4.0000 "
check "sessions stored with their outcome" db_is "$DB" \
	"select group_concat(outcome) from (select outcome from sessions where id in ('$S1','$S2') order by driver_id)" \
	'TICKET,SESSION_CANCELLED'
check "driver 101 told TICKET" wait_grep 20 "$N" "^101 .*\"type\":\"TICKET\".*\"session_id\":\"$S1\""
check "driver 102 told SESSION_CANCELLED" wait_grep 20 "$N" "^102 .*\"type\":\"SESSION_CANCELLED\".*\"session_id\":\"$S2\""

# Markers on the same partitions (same keys) show when the replay is read.
kp cp_telemetry MAD-01 'marker: not json'
kp driver_requests 101 'marker: not json'
kp driver_requests 102 'marker: not json'
wait_for 20 has_n "$L2" ' BAD_MSG topic=cp_telemetry ' 1
wait_for 20 has_n "$L2" ' BAD_MSG topic=driver_requests ' 2
check "the CONSUMO applied once, not again on a replay" test "$(count_grep "$L2" " CONSUMO 101 ")" -eq 1
check "no request re-authorised after the restart" test "$(count_grep "$L2" ' AUTH_OK ')" -eq 0
check "session figures unchanged by the replay" db_is "$DB" \
	"select kwh||'|'||outcome from sessions where id='$S1'" '4.0|TICKET'
check "one final notification for the session" test "$(grep -Ec "(TICKET|SUPPLY_ERROR).*\"session_id\":\"$S1\"|\"session_id\":\"$S1\".*(TICKET|SUPPLY_ERROR)" "$N")" -eq 1

# The monitor reconnects: the CP is served again.
m_start m1b MAD-01 "C/ Serrano 10" 0.25
check "CP registers again after the restart" wait_grep 10 "$L2" ' STATE MAD-01 ACTIVADO$'

# A clean restart finds nothing to close.
stop c2
c_start c3 "$DB"
L3=$(log_of c3)
kp cp_telemetry MAD-01 'marker 2: not json'
wait_grep 20 "$L3" ' BAD_MSG topic=cp_telemetry '
check "second restart: nothing closed again" test "$(count_grep "$L3" ' (SUPPLY_ERROR|SESSION_CANCELLED|TICKET) ')" -eq 0
check "second restart: offsets were committed (no old marker replayed)" test "$(count_grep "$L3" ' BAD_MSG ')" -eq 1
check "exactly two sessions in the db" db_is "$DB" "select count(*) from sessions" 2
