#!/bin/bash
# End to end, scenario 4: the operator stops a CP mid-supply from Central's
# console (the driver gets a SUPPLY_ERROR, the CP is FUERA_DE_SERVICIO and
# refuses requests), resumes it, then stops all and resumes all.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/e2e_lib.sh"
e2e_need
tap_plan 11

check "Central up with Kafka" e2e_central
ok_cps=1
for i in 1 2; do e2e_cp "$i" 0.5:3 || ok_cps=0; done
[ "$ok_cps" = 1 ] && ok "2 CPs registered and ACTIVADO" || not_ok "2 CPs registered and ACTIVADO"
e2e_driver a 101
L=$(log_of a) C=$(log_of c)
send a "r CP-1"
check "supply running" wait_grep 20 "$L" '^[0-9T:.-]* CONSUMO cp=CP-1 '
send c "P CP-1"
check "operator stop: the driver gets a SUPPLY_ERROR" wait_grep 15 "$L" '^[0-9T:.-]* SUPPLY_ERROR cp=CP-1 '
check "the CP is FUERA_DE_SERVICIO" wait_grep 15 "$C" ' STATE CP-1 FUERA_DE_SERVICIO$'
send a "r CP-1"
check "a request to the stopped CP is denied with a reason" wait_grep 15 "$L" '^[0-9T:.-]* AUTH_DENIED cp=CP-1 request=101-[^ ]+ reason=".+"'
send c "R CP-1"
check "resumed: ACTIVADO" wait_for 15 state_after CP-1 FUERA_DE_SERVICIO ACTIVADO
send c "PT"
both_stopped() { state_now CP-1 FUERA_DE_SERVICIO && state_now CP-2 FUERA_DE_SERVICIO; }
check "stop all: both FUERA_DE_SERVICIO" wait_for 15 both_stopped
check "the database agrees" db_is "$DB" "select group_concat(status, ' ') from (select status from charging_points order by id)" \
	"FUERA_DE_SERVICIO FUERA_DE_SERVICIO"
send c "RT"
both_active() { state_now CP-1 ACTIVADO && state_now CP-2 ACTIVADO; }
check "resume all: both ACTIVADO" wait_for 15 both_active
send a "r CP-2"
check "and they serve again: a ticket" wait_grep 30 "$L" '^[0-9T:.-]* TICKET cp=CP-2 '
