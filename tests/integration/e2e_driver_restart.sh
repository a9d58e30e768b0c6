#!/bin/bash
# End to end, scenario 6: the driver is killed (SIGKILL) mid-supply and
# restarted with the same id. A supply still running is picked up and its
# ticket shown; a ticket issued while it was away is shown after the
# restart, once.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/e2e_lib.sh"
e2e_need
tap_plan 10

check "Central up with Kafka" e2e_central
check "CP-1 registered and ACTIVADO" e2e_cp 1 0.5:6
C=$(log_of c)

# 1. killed and back while the supply still runs
e2e_driver a 101
send a "r CP-1"
check "supply running" wait_grep 20 "$(log_of a)" '^[0-9T:.-]* CONSUMO cp=CP-1 '
S1=$(grep '^[0-9T:.-]* AUTH_OK cp=CP-1' "$(log_of a)" | sed -E 's/.* session=([^ ]+).*/\1/')
stop a KILL
e2e_driver b 101
B=$(log_of b)
check "restarted mid-supply: the running supply is shown" wait_grep 10 "$B" "^[0-9T:.-]* (RESUMED|CONSUMO|PLUGGED) cp=CP-1 session=$S1"
check "its ticket is shown after the restart" wait_grep 20 "$B" "^[0-9T:.-]* TICKET cp=CP-1 session=$S1 "

# 2. killed, the supply ends while it is away, then back
send b "r CP-1"
check "second supply running" wait_grep 20 "$B" '^[0-9T:.-]* CONSUMO cp=CP-1 session=[^ ]+ .*kwh='
S2=$(grep '^[0-9T:.-]* AUTH_OK cp=CP-1' "$B" | tail -n 1 | sed -E 's/.* session=([^ ]+).*/\1/')
stop b KILL
check "Central ends it with a ticket while the driver is away" wait_grep 20 "$C" " TICKET 101 CP-1 session=$S2 "
e2e_driver d 101
D=$(log_of d)
check "after the restart the missed ticket is shown" grep -q "^[0-9T:.-]* TICKET cp=CP-1 session=$S2 .*earlier=1" "$D"
[ "$(count_grep "$D" '^[0-9T:.-]* TICKET ')" = 1 ] && ok "only that ticket, once" || not_ok "only that ticket, once"
check "Central stored two sessions, both TICKET" db_is "$DB" \
	"select count(*)||' '||sum(outcome='TICKET') from sessions" "2 2"
