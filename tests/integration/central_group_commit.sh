#!/usr/bin/env bash
# EV_Central --group-commit (EV_Central(1)): changes that come within MS of
# the last COMMIT share the next one, and nothing is lost or reordered:
# every FAULT and RECOVER of a quick burst is shown and stored in order,
# the last state stored; changes still waiting for their COMMIT when the
# operator quits are stored before Central exits; bad values are refused.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v sqlite3 >/dev/null || tap_skip_all "sqlite3 needed"
tap_plan 8

for bad in -1 1001 abc ''; do
	"$EV_CENTRAL" 0 --group-commit "$bad" >/dev/null 2>"$T_DIR/bad.err"
	echo "$? $(cat "$T_DIR/bad.err")" >>"$T_DIR/bad.out"
done
check "--group-commit out of 0..1000 or not a number: refused" \
	[ "$(grep -c '^2 .*--group-commit: invalid number of milliseconds' "$T_DIR/bad.out")" = 4 ]

DB=$T_DIR/central.db
c_start c "$DB" --group-commit 400
L=$(log_of c)
m_start m1 MAD-01
M1=$(log_of m1)
check "registers" wait_for 10 db_is "$DB" "select status from charging_points where id='MAD-01'" ACTIVADO

# A burst of five changes, well within one group.
for f in FAULT RECOVER FAULT RECOVER FAULT; do send m1 "send $f#MAD-01"; done
check "every change shown, in order" wait_for 10 bash -c \
	"[ \"\$(grep -E ' STATE MAD-01 ' '$L' | sed -E 's/.* STATE MAD-01 //' | tr '\n' ' ')\" = 'ACTIVADO AVERIADO ACTIVADO AVERIADO ACTIVADO AVERIADO ' ]"
check "the last state stored" wait_for 5 db_is "$DB" "select status from charging_points where id='MAD-01'" AVERIADO
check "every change stored as an event, in order" db_is "$DB" \
	"select group_concat(event, ' ') from (select event from cp_events where cp_id='MAD-01' and event in ('FAULT','RECOVER') order by id)" \
	'FAULT RECOVER FAULT RECOVER FAULT'

# Changes still gathering when the operator quits are stored first.
acks=$(count_grep "$M1" '^GOT ACK$')
send m1 "send RECOVER#MAD-01"
send m1 "send FAULT#MAD-01"
send m1 "send RECOVER#MAD-01"
check "... the link thread has them (three more ACKs)" wait_for 10 has_n "$M1" '^GOT ACK$' $((acks + 3))
PID=$(pid_of c)
send c "Q"
check "Q: Central exits 0" exits_with 20 "$PID" 0
check "... with the changes of its last group stored" db_is "$DB" \
	"select group_concat(event, ' ') from (select event from cp_events where cp_id='MAD-01' and event in ('FAULT','RECOVER') order by id)" \
	'FAULT RECOVER FAULT RECOVER FAULT RECOVER FAULT RECOVER'
