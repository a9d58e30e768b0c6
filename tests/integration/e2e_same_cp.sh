#!/bin/bash
# End to end, scenario 2: two drivers ask for the same CP at once. Exactly
# one is authorised, the other denied with a reason; the winner's supply
# ends in a ticket, and then the other driver can have the CP.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/e2e_lib.sh"
e2e_need
tap_plan 7

check "Central up with Kafka" e2e_central
check "CP-1 registered and ACTIVADO" e2e_cp 1 1:2
e2e_driver a 101 && e2e_driver b 102
L1=$(log_of a) L2=$(log_of b)
send a "r CP-1"
send b "r CP-1"
answered() { has_n "$L1" '^[0-9T:.-]* AUTH_(OK|DENIED) cp=CP-1' 1 && has_n "$L2" '^[0-9T:.-]* AUTH_(OK|DENIED) cp=CP-1' 1; }
check "both drivers get an answer" wait_for 20 answered
okn=$(cat "$L1" "$L2" | grep -c '^[0-9T:.-]* AUTH_OK cp=CP-1')
den=$(cat "$L1" "$L2" | grep -c '^[0-9T:.-]* AUTH_DENIED cp=CP-1 .* reason=".\+"')
[ "$okn" = 1 ] && [ "$den" = 1 ] && ok "exactly one authorised, the other denied with a reason" ||
	not_ok "exactly one authorised, the other denied with a reason (ok=$okn denied=$den)"
diag "$(grep -h '^[0-9T:.-]* AUTH_DENIED' "$L1" "$L2")"
if grep -q '^[0-9T:.-]* AUTH_OK' "$L1"; then W=a WL=$L1 O=b OL=$L2; else W=b WL=$L2 O=a OL=$L1; fi
check "the winner's supply ends in a ticket" wait_grep 30 "$WL" '^[0-9T:.-]* TICKET cp=CP-1 '
check "Central stored one session for CP-1, TICKET" db_is "$DB" \
	"select count(*)||' '||sum(outcome='TICKET') from sessions where cp_id='CP-1'" "1 1"
send "$O" "r CP-1"
check "then the other driver is authorised at CP-1" wait_grep 20 "$OL" '^[0-9T:.-]* AUTH_OK cp=CP-1 '
