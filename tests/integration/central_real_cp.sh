#!/usr/bin/env bash
# Central with the real CP programs (EV_CP_M and EV_CP_E) instead of the
# scripted monitor: registration, a supply from a Kafka request to a TICKET
# whose amount is kWh x price, stop and resume, a fault and its recovery,
# the engine dying, the monitor dying.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v kcat >/dev/null && command -v sqlite3 >/dev/null || tap_skip_all "kcat and sqlite3 needed"
[ -x "$EV_CP_M" ] && [ -x "$EV_CP_E" ] || tap_skip_all "EV_CP_M / EV_CP_E not built"
tap_plan 12

DB=$T_DIR/central.db
"$EV_CENTRAL" --add-driver 101 --db "$DB" >/dev/null
c_start c "$DB"
L=$(log_of c)
c_kafka_up c
EPORT=$(free_port)
start e "$EV_CP_E" "$K" "$EPORT" --headless --auto-plug 1:2
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$EPORT" 2>/dev/null
start m "$EV_CP_M" "127.0.0.1:$EPORT" "127.0.0.1:$C_PORT" MAD-01 --location "C/ Serrano 10" --price 0.25 --headless
check "real monitor registers: ACTIVADO" wait_grep 20 "$L" ' STATE MAD-01 ACTIVADO$'
check "location and price stored" wait_for 5 db_is "$DB" \
	"select location||'|'||price from charging_points where id='MAD-01'" 'C/ Serrano 10|0.25'

req 101 MAD-01
check "AUTH_OK through the real monitor and engine" wait_grep 20 "$L" ' AUTH_OK 101 MAD-01 session='
check "supply starts (auto-plug)" wait_grep 20 "$L" ' STATE MAD-01 SUMINISTRANDO$'
check "TICKET at the end" wait_grep 30 "$L" ' TICKET 101 MAD-01 '
check "ticket amount = kWh x 0.25 (to the cent)" bash -c "grep ' TICKET 101 MAD-01 ' '$L' | tail -n 1 |
	sed -E 's/.* kwh=([0-9.]+) price=([0-9.]+) importe=([0-9.]+).*/\\1 \\2 \\3/' |
	awk '{ d = \$1 * 0.25 - \$3; if (\$2 != 0.25 || d > 0.0051 || d < -0.0051 || \$1 <= 0) exit 1 }'"

send c "P MAD-01"
check "stop acknowledged by the real CP" wait_grep 15 "$L" ' STATE MAD-01 FUERA_DE_SERVICIO$'
send c "R MAD-01"
check "resume acknowledged" wait_for 15 has_n "$L" ' STATE MAD-01 ACTIVADO$' 3

send e "k"
check "engine KO: AVERIADO" wait_grep 15 "$L" ' STATE MAD-01 AVERIADO$'
send e "k"
check "engine OK again: ACTIVADO" wait_for 15 has_n "$L" ' STATE MAD-01 ACTIVADO$' 4

stop e KILL
check "engine dead: AVERIADO" wait_for 15 has_n "$L" ' STATE MAD-01 AVERIADO$' 2
stop m KILL
check "monitor dead: DESCONECTADO" wait_grep 15 "$L" ' STATE MAD-01 DESCONECTADO$'
