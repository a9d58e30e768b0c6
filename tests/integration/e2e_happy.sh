#!/bin/bash
# End to end, scenario 1 (happy path): Central, 3 CPs (monitor + engine
# with --auto-plug), 2 drivers with 10-service files each, all real
# processes. All 20 services end in tickets, each ticket's amount is its
# kWh x price, and the sessions table holds exactly those 20, as TICKET.
# Prints the median time from a driver's request to its AUTH_OK.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/e2e_lib.sh"
e2e_need
tap_plan 9
T0=$(date +%s%N)

check "Central up with Kafka" e2e_central
ok_cps=1
for i in 1 2 3; do e2e_cp "$i" 0.5:1 || ok_cps=0; done
[ "$ok_cps" = 1 ] && ok "3 CPs registered and ACTIVADO" || not_ok "3 CPs registered and ACTIVADO"

# Driver 101 alternates CP-1 and CP-2, driver 102 uses CP-3: no two
# requests meet on one CP, so every service can end in a ticket.
for k in 1 2 3 4 5; do printf 'CP-1\nCP-2\n'; done >"$T_DIR/s101.txt"
{ echo "# ten at CP-3"; for k in $(seq 10); do echo CP-3; done; } >"$T_DIR/s102.txt"
start d101 "$EV_DRIVER" "$K" 101 "$T_DIR/s101.txt" --headless --pause 1 --answer-timeout 20
start d102 "$EV_DRIVER" "$K" 102 "$T_DIR/s102.txt" --headless --pause 1 --answer-timeout 20
exit_status d101 90; rc1=$RC
exit_status d102 30; rc2=$RC
[ "$rc1" = 0 ] && [ "$rc2" = 0 ] && ok "both drivers end their files with status 0" ||
	not_ok "both drivers end their files with status 0 ($rc1, $rc2)"
L1=$(log_of d101) L2=$(log_of d102)
grep -q '^[0-9T:.-]* SUMMARY served=10 denied=0 failed=0 ' "$L1" && grep -q '^[0-9T:.-]* SUMMARY served=10 denied=0 failed=0 ' "$L2" &&
	ok "each driver: served=10 denied=0 failed=0" || not_ok "each driver: served=10 denied=0 failed=0"
n=$(cat "$L1" "$L2" | grep -c '^[0-9T:.-]* TICKET ')
[ "$n" = 20 ] && ok "20 tickets shown" || not_ok "20 tickets shown (got $n)"
check "each ticket's amount = kWh x price" tickets_match_price "$L1" "$L2"
bad_price=$(grep -h '^[0-9T:.-]* TICKET ' "$L1" "$L2" | awk '{ split($3, c, "="); split($7, p, "=");
	want = 0.20 + 0.05 * substr(c[2], 4); d = p[2] - want; if (d > 0.00005 || d < -0.00005) print }' | wc -l)
[ "$bad_price" = 0 ] && ok "each ticket carries its CP's price" || not_ok "each ticket carries its CP's price ($bad_price wrong)"
check "sessions table: exactly 20, all TICKET" db_is "$DB" \
	"select count(*)||' '||sum(outcome='TICKET') from sessions" "20 20"
grep -h '^[0-9T:.-]* TICKET ' "$L1" "$L2" | sed -E 's/.* session=([^ ]+).*/\1/' | sort >"$T_DIR/shown"
dbq "$DB" "select id from sessions where outcome='TICKET'" | sort >"$T_DIR/stored"
check "the stored sessions are the ones the drivers were given" cmp -s "$T_DIR/shown" "$T_DIR/stored"

med=$(median_wait "$L1" "$L2")
diag "median request -> AUTH_OK: ${med} ms over $(cat "$L1" "$L2" | grep -c '^[0-9T:.-]* AUTH_OK ') requests"
diag "wall time: $(( ($(date +%s%N) - T0) / 1000000 )) ms"
