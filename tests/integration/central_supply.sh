#!/usr/bin/env bash
# Driver requests and engine telemetry over Kafka through a headless
# Central: authorisation granted and each denial reason, a full supply
# ending in one TICKET whose amount is kWh x Central's price, duplicates
# ignored, a fault and an operator stop mid-supply, reservation timeout,
# DRIVER_QUIT, a driver added while Central runs, network_status.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v kcat >/dev/null && command -v sqlite3 >/dev/null || tap_skip_all "kcat and sqlite3 needed"
tap_plan 30

DB=$T_DIR/central.db
for d in 101 102 103; do "$EV_CENTRAL" --add-driver "$d" "Driver $d" --db "$DB" >/dev/null; done
c_start c "$DB" --reservation-timeout 2
L=$(log_of c)
m_start m1 MAD-01 "C/ Serrano 10" 0.25
m_start m2 MAD-02 "Gran Via 1" 0.40
m_start m3 MAD-03 "Alcala 5" 0.30
wait_grep 10 "$L" ' STATE MAD-03 ACTIVADO$'
wait_grep 10 "$L" ' STATE MAD-02 ACTIVADO$'
check "Kafka reachable" c_kafka_up c
notif_start n
N=$(log_of n)

# A driver who is not registered.
req 999 MAD-01
check "unregistered driver denied" wait_grep 15 "$L" ' AUTH_DENIED 999 MAD-01 reason=.+'
check "denial reaches the driver (key = user_id)" wait_grep 10 "$N" '^999 .*"type":"AUTH_DENIED".*"target_driver":"999"'

# A driver registered while Central runs counts at once; nobody plugs in:
# the reservation is cancelled after 2 s.
"$EV_CENTRAL" --add-driver 104 "Late Driver" --db "$DB" >/dev/null
req 104 MAD-03
check "driver added while running is authorised" wait_grep 10 "$L" ' AUTH_OK 104 MAD-03 session='
check "CP reserved" wait_grep 5 "$L" ' STATE MAD-03 RESERVADO$'
check "reservation timeout: SESSION_CANCELLED" wait_grep 10 "$L" ' SESSION_CANCELLED 104 MAD-03 session='
check "reservation timeout: CP back to ACTIVADO" wait_for 5 has_n "$L" ' STATE MAD-03 ACTIVADO$' 2

# A full supply.
req 101 MAD-01
check "AUTH_OK for 101 on MAD-01" wait_grep 10 "$L" ' AUTH_OK 101 MAD-01 session='
S1=$(session_of "$L" 101 MAD-01)
check "monitor got AUTORIZAR_SUMINISTRO with the session and price" \
	grep -q "^RECV AUTORIZAR_SUMINISTRO#101#$S1#0.25" "$(log_of m1)"
req 102 MAD-01
check "CP with an open session: denied" wait_grep 10 "$L" ' AUTH_DENIED 102 MAD-01 reason=.+'
req 101 MAD-02
check "driver with an open session: denied" wait_grep 10 "$L" ' AUTH_DENIED 101 MAD-02 reason=.+'
req 102 MAD-02 "$(( $(date +%s) - 300 ))"
check "request older than 60 s: denied" wait_grep 10 "$L" ' AUTH_DENIED 102 MAD-02 reason=.+'
req 102 NOPE-9
check "unknown CP: denied" wait_grep 10 "$L" ' AUTH_DENIED 102 NOPE-9 reason=.+'

tele SESSION_STARTED MAD-01 101 "$S1" 1
check "SESSION_STARTED -> SUMINISTRANDO" wait_grep 10 "$L" ' STATE MAD-01 SUMINISTRANDO$'
tele CONSUMO MAD-01 101 "$S1" 2 '"kwh":2.0,"importe":0.5,"kw":7.2'
check "CONSUMO relayed" wait_grep 10 "$N" '^101 .*"type":"CONSUMO_UPDATE"'
# The engine's importe is ignored: Central's figures are authoritative.
tele SUPPLY_END MAD-01 101 "$S1" 3 '"kwh":12.5,"importe":99.0'
check "TICKET with amount = 12.5 kWh x 0.25, to the cent" wait_grep 10 "$L" \
	" TICKET 101 MAD-01 session=$S1 kwh=12.5000 price=0.2500 importe=3.1300$"
# Amounts are kept in cents (core rounds): 3.125 -> 3.13, stored and sent alike.
check "TICKET reaches the driver" wait_grep 10 "$N" '^101 .*"type":"TICKET".*"kwh":12.5,"importe":3.13,"price":0.25'
check "session stored as TICKET" wait_for 5 db_is "$DB" \
	"select outcome||'|'||kwh||'|'||importe||'|'||price from sessions where id='$S1'" 'TICKET|12.5|3.13|0.25'
# A duplicate end and late telemetry change nothing. The bad message after
# them (same key, same partition) marks when they have been read.
tele SUPPLY_END MAD-01 101 "$S1" 3 '"kwh":12.5,"importe":3.125'
tele CONSUMO MAD-01 101 "$S1" 4 '"kwh":13.0,"importe":3.25,"kw":7.0'
kp cp_telemetry MAD-01 'this is not json'
wait_grep 10 "$L" ' BAD_MSG topic=cp_telemetry '
check "duplicate SUPPLY_END and late CONSUMO: still one TICKET" has_n "$L" " TICKET 101 " 1
check "... and not two" test "$(count_grep "$L" " TICKET 101 ")" -eq 1

# A fault mid-supply: one SUPPLY_ERROR with the partial figures, even when
# the engine also reports AVERIADO for the same session.
req 102 MAD-02
wait_grep 10 "$L" ' AUTH_OK 102 MAD-02 session='
S2=$(session_of "$L" 102 MAD-02)
tele SESSION_STARTED MAD-02 102 "$S2" 1
tele CONSUMO MAD-02 102 "$S2" 2 '"kwh":1.0,"importe":0.4,"kw":7.0'
wait_grep 10 "$L" " CONSUMO 102 MAD-02 session=$S2 "
send m2 "send FAULT#MAD-02#engine KO"
check "fault mid-supply: SUPPLY_ERROR with partial figures" wait_grep 10 "$L" \
	" SUPPLY_ERROR 102 MAD-02 session=$S2 kwh=1.0000 importe=0.4000 reason=.+"
tele AVERIADO MAD-02 102 "$S2" 3 '"kwh":1.0,"importe":0.4'
kp cp_telemetry MAD-02 '{"type":"CONSUMO"}'
wait_for 10 has_n "$L" ' BAD_MSG topic=cp_telemetry ' 2
check "AVERIADO for the same session: still one SUPPLY_ERROR" test "$(count_grep "$L" " SUPPLY_ERROR 102 ")" -eq 1
check "session stored as SUPPLY_ERROR" db_is "$DB" "select outcome from sessions where id='$S2'" SUPPLY_ERROR

# An operator stop mid-supply.
send m2 "send RECOVER#MAD-02"
wait_for 10 has_n "$L" ' STATE MAD-02 ACTIVADO$' 2
req 103 MAD-02
wait_grep 10 "$L" ' AUTH_OK 103 MAD-02 session='
S3=$(session_of "$L" 103 MAD-02)
tele SESSION_STARTED MAD-02 103 "$S3" 1
tele CONSUMO MAD-02 103 "$S3" 2 '"kwh":0.5,"importe":0.2,"kw":7.0'
wait_grep 10 "$L" " CONSUMO 103 MAD-02 session=$S3 "
send c "P MAD-02"
check "stop mid-supply: SUPPLY_ERROR" wait_grep 10 "$L" " SUPPLY_ERROR 103 MAD-02 session=$S3 kwh=0.5000 "
check "stop mid-supply: FUERA_DE_SERVICIO" wait_grep 10 "$L" ' STATE MAD-02 FUERA_DE_SERVICIO$'
tele SUPPLY_END MAD-02 103 "$S3" 3 '"kwh":0.6,"importe":0.24'
kp cp_telemetry MAD-02 '{"type":"CONSUMO","cp_id":"MAD-02"}'
wait_for 10 has_n "$L" ' BAD_MSG topic=cp_telemetry ' 3
check "SUPPLY_END after the stop: no TICKET" test "$(count_grep "$L" " TICKET 103 ")" -eq 0

# DRIVER_QUIT cancels an authorised session that has not started.
req 101 MAD-01
wait_for 10 has_n "$L" ' AUTH_OK 101 MAD-01 ' 2
kp driver_requests 101 '{"type":"DRIVER_QUIT","user_id":"101"}'
check "DRIVER_QUIT: SESSION_CANCELLED" wait_grep 10 "$L" ' SESSION_CANCELLED 101 MAD-01 '
check "every session ended exactly once in the db" db_is "$DB" \
	"select count(*) from sessions where outcome is null" 0

# network_status: one message with every CP and its state.
ns_last() { timeout 20 kcat -C -b "$K" -t "$(topic network_status)" -o beginning -e -q -f '%T %s\n' 2>/dev/null | sort -n | tail -n 1; }
wait_for 10 bash -c "$(declare -f ns_last); K=$K T_PREFIX=$T_PREFIX; topic() { echo \$T_PREFIX\$1; }; ns_last | grep -q '\"id\":\"MAD-02\",\"status\":\"FUERA_DE_SERVICIO\"'"
ns=$(ns_last)
check "network_status lists the CPs" grep -q '"type":"NETWORK_STATUS_UPDATE".*"id":"MAD-01".*"id":"MAD-02","status":"FUERA_DE_SERVICIO"' <<<"$ns"

check "Central never logged a crash or stopped" alive c
