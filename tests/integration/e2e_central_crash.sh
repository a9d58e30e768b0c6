#!/bin/bash
# End to end, scenario 5: Central killed (SIGKILL) mid-supply and restarted
# on the same port and database. The supply in progress ends in a ticket or
# an error (once), a request sent while Central was down is answered
# (none lost), and no session is counted twice.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/e2e_lib.sh"
e2e_need
tap_plan 10

check "Central up with Kafka" e2e_central
ok_cps=1
for i in 1 2; do e2e_cp "$i" 0.5:8 || ok_cps=0; done
[ "$ok_cps" = 1 ] && ok "2 CPs registered and ACTIVADO" || not_ok "2 CPs registered and ACTIVADO"
e2e_driver a 101 --answer-timeout 60
e2e_driver b 102 --answer-timeout 60
A=$(log_of a) B=$(log_of b)
send a "r CP-1"
check "supply running" wait_grep 20 "$A" '^[0-9T:.-]* CONSUMO cp=CP-1 '
S1=$(grep '^[0-9T:.-]* AUTH_OK cp=CP-1' "$A" | sed -E 's/.* session=([^ ]+).*/\1/')
stop c KILL
send b "r CP-2"
wait_grep 5 "$B" '^[0-9T:.-]* REQUEST cp=CP-2'
c_start c2 "$DB"
ended() { grep -Eq "^[0-9T:.-]* (TICKET|SUPPLY_ERROR) cp=CP-1 session=$S1 " "$A"; }
check "the supply in progress ends in a ticket or an error" wait_for 40 ended
diag "$(grep -E "^[0-9T:.-]* (TICKET|SUPPLY_ERROR) cp=CP-1" "$A")"
check "the request sent while Central was down is answered" wait_grep 40 "$B" '^[0-9T:.-]* AUTH_(OK|DENIED) cp=CP-2 '
S2=$(grep '^[0-9T:.-]* AUTH_OK cp=CP-2' "$B" | sed -E 's/.* session=([^ ]+).*/\1/')
if [ -n "$S2" ]; then
	check "the session authorised after the crash ends too" wait_grep 40 "$B" "^[0-9T:.-]* (TICKET|SUPPLY_ERROR) cp=CP-2 session=$S2 "
else
	check "the request sent while Central was down was denied (no session to end)" grep -q '^[0-9T:.-]* AUTH_DENIED cp=CP-2 ' "$B"
fi
[ "$(grep -Ec "^[0-9T:.-]* (TICKET|SUPPLY_ERROR|SESSION_CANCELLED) cp=CP-1 session=$S1 " "$A")" = 1 ] &&
	ok "the driver gets exactly one outcome for it" || not_ok "the driver gets exactly one outcome for it"
check "the session is stored once, ended" db_is "$DB" \
	"select count(*)||' '||sum(outcome is not null) from sessions where id='$S1'" "1 1"
n_auth=$(cat "$A" "$B" | grep -c '^[0-9T:.-]* AUTH_OK ')
check "no session counted twice: one row per authorisation" db_is "$DB" "select count(*) from sessions" "$n_auth"
check "no row duplicated in the driver's ticket totals" bash -c "[ \$(grep -hc '^[0-9T:.-]* TICKET ' '$A' '$B' | paste -sd+ | bc) -le $n_auth ]"
