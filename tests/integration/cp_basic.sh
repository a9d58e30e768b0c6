#!/bin/bash
# The charging point against the real Central: arguments, registration,
# simulated faults, engine and monitor killed, Central restarted (the monitor
# reconnects and a faulty engine stays AVERIADO).
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
tap_plan 23

# ---- arguments ----
"$EV_CP_M" 127.0.0.1:1 >"$T_DIR/a.out" 2>"$T_DIR/a.err"; rc=$?
check "monitor: missing arguments -> exit 2" [ "$rc" = 2 ]
check "monitor: one error line, then the usage" bash -c "head -n 1 '$T_DIR/a.err' | grep -q '^EV_CP_M: expected 3 arguments' && sed -n 2p '$T_DIR/a.err' | grep -q '^usage: '"
"$EV_CP_M" 127.0.0.1:1 127.0.0.1:2 'bad id!' 2>"$T_DIR/b.err"; rc=$?
check "monitor: invalid cp_id -> exit 2 with the reason" bash -c "[ $rc = 2 ] && grep -q 'invalid cp_id' '$T_DIR/b.err'"
"$EV_CP_M" 127.0.0.1:1 127.0.0.1:2 X --price 0 2>"$T_DIR/c.err"; rc=$?
check "monitor: price 0 -> exit 2" bash -c "[ $rc = 2 ] && grep -q 'invalid --price' '$T_DIR/c.err'"
"$EV_CP_E" "$K" 80000 2>"$T_DIR/d.err"; rc=$?
check "engine: bad port -> exit 2" bash -c "[ $rc = 2 ] && grep -q 'listen port' '$T_DIR/d.err'"
"$EV_CP_E" "$K" 5000 --auto-plug x 2>/dev/null; rc=$?
check "engine: bad --auto-plug -> exit 2" [ "$rc" = 2 ]
"$EV_CP_E" --help | grep -q '^usage: EV_CP_E' && "$EV_CP_M" --version | grep -q '^EV_CP_M' && ok "--help and --version" || not_ok "--help and --version"

# ---- registration and faults ----
cp_central central
C=$(log_of central)
cp_engine e1
cp_monitor m1 MAD-01 --location "C/ Serrano 10" --price 0.25
check "Register -> ACTIVADO" wait_for 10 is_state "$C" MAD-01 ACTIVADO
check "monitor shows ACTIVADO too" wait_grep 5 "$(log_of m1)" '^[0-9T:.-]* STATE ACTIVADO$'

# A second engine on the same port is a runtime failure, not a usage error.
"$EV_CP_E" "$K" "$CP_EPORT" --headless </dev/null >"$T_DIR/busy.out" 2>"$T_DIR/busy.err"; rc=$?
check "engine: port taken -> exit 1 with a clear message" bash -c "[ $rc = 1 ] && grep -q 'cannot listen on [^ ]*:$CP_EPORT: ' '$T_DIR/busy.err' && [ \$(grep -o 'cannot listen' '$T_DIR/busy.err' | wc -l) -eq 1 ]"

send e1 k
t0=$(date +%s%N)
check "k -> AVERIADO within 2 s" wait_for 2 is_state "$C" MAD-01 AVERIADO
diag "fault seen by Central after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
send e1 k
check "k again -> ACTIVADO" wait_for 3 is_state "$C" MAD-01 ACTIVADO

stop e1 KILL
check "engine killed -> AVERIADO" wait_for 3 is_state "$C" MAD-01 AVERIADO
cp_engine e2
check "engine back -> ACTIVADO" wait_for 6 is_state "$C" MAD-01 ACTIVADO

stop m1 KILL
t0=$(date +%s%N)
check "monitor killed -> DESCONECTADO within 4 s" wait_for 4 is_state "$C" MAD-01 DESCONECTADO
diag "link loss seen after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
cp_monitor m2 MAD-01 --location "C/ Serrano 10" --price 0.25
wait_for 10 is_state "$C" MAD-01 ACTIVADO

# ---- Central restarted while the engine is faulty ----
send e2 k
wait_for 3 is_state "$C" MAD-01 AVERIADO
stop central
check "monitor notices Central is gone" wait_grep 5 "$(log_of m2)" '^[0-9T:.-]* LINK central down'
cp_central central2
C2=$(log_of central2)
check "monitor reconnects to the new Central" wait_grep 15 "$(log_of m2)" '^[0-9T:.-]* LINK central up \(RECONNECT\)'
check "a faulty engine stays AVERIADO after the reconnect" wait_for 5 is_state "$C2" MAD-01 AVERIADO
send e2 k
check "and recovers to ACTIVADO when the engine is OK again" wait_for 4 is_state "$C2" MAD-01 ACTIVADO

# ---- an operator stop outlives an engine restart ----
send central2 "P MAD-01"
check "P -> FUERA_DE_SERVICIO" wait_for 5 is_state "$C2" MAD-01 FUERA_DE_SERVICIO
stop e2 KILL
cp_engine e3
check "the restarted engine is told the stop again" wait_grep 8 "$(log_of e3)" '^[0-9T:.-]* STOPPED \(Out of Order\)$'
check "Central still shows FUERA_DE_SERVICIO" bash -c "$(declare -f last_state is_state); is_state '$C2' MAD-01 FUERA_DE_SERVICIO"
send central2 "R MAD-01"
check "R -> ACTIVADO" wait_for 6 is_state "$C2" MAD-01 ACTIVADO
