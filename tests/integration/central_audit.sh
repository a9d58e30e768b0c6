#!/usr/bin/env bash
# The audit log (evcharging(7) SECURITY) from a real Central: links,
# operator commands, driver decisions and faults leave rows in the same
# transaction as what they record; `EV_Central --audit` prints them from
# the database (read-only, never creating one), filtered by --cp and
# --since; the table refuses UPDATE and DELETE.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v kcat >/dev/null && command -v sqlite3 >/dev/null || tap_skip_all "kcat and sqlite3 needed"
tap_plan 10

DB=$T_DIR/central.db
"$EV_CENTRAL" --add-driver 101 --db "$DB" >/dev/null
c_start c "$DB" --plain-links
L=$(log_of c)
m_start m1 MAD-01
m_start m2 BCN-01
wait_grep 10 "$L" ' STATE BCN-01 ACTIVADO$'
c_kafka_up c
t_mid=$(date +%s.%N)
send c "P MAD-01"
wait_grep 10 "$(log_of m1)" 'RECV PARAR'
send m1 "send ACK#PARAR"
wait_grep 10 "$L" ' STATE MAD-01 FUERA_DE_SERVICIO$'
req 999 BCN-01
wait_grep 15 "$L" ' AUTH_DENIED 999 BCN-01 '
send m2 "send FAULT#BCN-01#engine KO"
wait_grep 10 "$L" ' STATE BCN-01 AVERIADO$'
stop c

A=$T_DIR/audit.txt
"$EV_CENTRAL" --audit --db "$DB" >"$A" 2>&1
check "--audit prints the log and exits 0" test $? -eq 0
check "plaintext links accepted are audited, with the peer's address" \
	grep -Eq '^[0-9-]+[T ][0-9:.]+ PLAIN_LINK_ACCEPTED actor=central ip=127\.0\.0\.1 cp=MAD-01 ' "$A"
check "the operator's stop, actor operator" grep -Eq ' OPERATOR_STOP actor=operator ip=- cp=MAD-01 PARAR sent' "$A"
check "a driver's denied request" grep -Eq ' DRIVER_AUTH_DENIED actor=driver:999 ip=- cp=BCN-01 ' "$A"
check "a fault" grep -Eq ' CP_FAULT actor=central ip=- cp=BCN-01 .*engine KO' "$A"
"$EV_CENTRAL" --audit --cp MAD-01 --db "$DB" >"$T_DIR/mad.txt"
check "--cp keeps only that CP's rows" bash -c "[ -s '$T_DIR/mad.txt' ] && ! grep -v ' cp=MAD-01 ' '$T_DIR/mad.txt'"
"$EV_CENTRAL" --audit --since "$t_mid" --db "$DB" >"$T_DIR/late.txt"
check "--since keeps only later rows" bash -c "grep -q OPERATOR_STOP '$T_DIR/late.txt' && ! grep -q PLAIN_LINK_ACCEPTED '$T_DIR/late.txt'"
"$EV_CENTRAL" --audit --db "$T_DIR/none.db" >"$T_DIR/o" 2>"$T_DIR/e"
rc=$?
check "a missing database: exit 1 with a message, and none is created" \
	bash -c "[ $rc -eq 1 ] && grep -q 'cannot open' '$T_DIR/e' && [ ! -e '$T_DIR/none.db' ]"
check "the audit log refuses UPDATE" bash -c "! sqlite3 '$DB' \"update audit_log set detail='x'\" 2>/dev/null"
check "... and DELETE" bash -c "! sqlite3 '$DB' 'delete from audit_log' 2>/dev/null && [ \$(sqlite3 '$DB' 'select count(*) from audit_log') -gt 3 ]"
