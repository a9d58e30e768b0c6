#!/usr/bin/env bash
# EV_Central when its database refuses writes: it does not act on what it
# could not store (no REGISTER_RESULT, no notification), commits no offset,
# says why and exits 1; restarted on a healthy database it carries on from
# the last stored state. The failure is a trigger added behind Central's
# back (another process, as an operator's tool could), which makes every
# insert into cp_events abort at once.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v kcat >/dev/null && command -v sqlite3 >/dev/null || tap_skip_all "kcat and sqlite3 needed"
tap_plan 9

DB=$T_DIR/central.db
c_start c "$DB"
L=$(log_of c)
m_start m1 MAD-01
check "healthy database: MAD-01 registered" wait_grep 10 "$(log_of m1)" '^RECV REGISTER_RESULT#FIRST$'

dbq "$DB" "CREATE TRIGGER evc_test_fail BEFORE INSERT ON cp_events BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;"
m_start m2 MAD-02
PID=$(pid_of c)
check "writes failing: Central exits with status 1" exits_with 30 "$PID" 1
check "it says why, with SQLite's reason" grep -q 'disk on fire' "$L"
check "the batch it could not store was not acted on (no REGISTER_RESULT)" bash -c "! grep -q 'REGISTER_RESULT' '$(log_of m2)'"
check "stderr says a restart replays it" grep -q 'database writes keep failing' "$L"
check "nothing of MAD-02 in the database" db_is "$DB" "select count(*) from charging_points where id='MAD-02'" 0

dbq "$DB" "DROP TRIGGER evc_test_fail;"
stop m1
stop m2
c_start c2 "$DB"
L2=$(log_of c2)
m_start m3 MAD-02
check "restarted on a healthy database: MAD-02 registers" wait_grep 10 "$(log_of m3)" '^RECV REGISTER_RESULT#FIRST$'
check "... and is stored ACTIVADO" wait_for 10 db_is "$DB" "select status from charging_points where id='MAD-02'" ACTIVADO
check "MAD-01 was kept from before (DESCONECTADO after the restart)" db_is "$DB" "select status from charging_points where id='MAD-01'" DESCONECTADO
