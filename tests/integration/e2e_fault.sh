#!/bin/bash
# End to end, scenario 3: the engine goes KO mid-supply. The driver gets one
# SUPPLY_ERROR with partial figures; the CP is AVERIADO, then ACTIVADO once
# the engine is OK again, and serves again (to a ticket).
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/e2e_lib.sh"
e2e_need
tap_plan 9

check "Central up with Kafka" e2e_central
check "CP-1 registered and ACTIVADO" e2e_cp 1 0.5:4
e2e_driver a 101
L=$(log_of a) C=$(log_of c)
send a "r CP-1"
check "supply running, figures above zero" wait_grep 20 "$L" '^[0-9T:.-]* CONSUMO cp=CP-1 .* kwh=0\.0*[1-9]'
send e1 "k"
check "the driver gets a SUPPLY_ERROR with partial figures" wait_grep 15 "$L" '^[0-9T:.-]* SUPPLY_ERROR cp=CP-1 session=[^ ]+ kwh=0\.0*[1-9][0-9]* '
check "the CP is AVERIADO" wait_grep 15 "$C" ' STATE CP-1 AVERIADO$'
send e1 "k"
check "the CP is ACTIVADO after recovery" wait_for 15 state_after CP-1 AVERIADO ACTIVADO
[ "$(count_grep "$L" '^[0-9T:.-]* SUPPLY_ERROR')" = 1 ] && ok "exactly one SUPPLY_ERROR" || not_ok "exactly one SUPPLY_ERROR"
send a "r CP-1"
check "it serves again: a ticket" wait_grep 30 "$L" '^[0-9T:.-]* TICKET cp=CP-1 '
check "sessions: one SUPPLY_ERROR, one TICKET" db_is "$DB" \
	"select group_concat(outcome, ' ') from (select outcome from sessions order by outcome)" "SUPPLY_ERROR TICKET"
