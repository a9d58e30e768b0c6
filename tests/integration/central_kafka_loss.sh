#!/usr/bin/env bash
# Kafka lost while Central runs, and back: Central reports "KAFKA down",
# keeps serving CP links, and recovers by itself (consumes and produces
# again) when the broker returns. Uses a broker of its own (scripts/kafka on
# a free port), never the shared one.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat needed"
KP=$(free_port)
export KAFKA_PORT=$KP KAFKA_CONTROLLER_PORT=$(free_port) EVC_KAFKA_STATE=$T_DIR/broker
kstart() { "$EVC_SRCDIR/scripts/kafka" start >"$T_DIR/kafka-start.log" 2>&1; }
kstop() { "$EVC_SRCDIR/scripts/kafka" stop >/dev/null 2>&1 || true; }
kstart || tap_skip_all "cannot start a private broker (scripts/kafka start failed)"
trap 'kstop; t_cleanup' EXIT
tap_plan 8
K=127.0.0.1:$KP

DB=$T_DIR/central.db
"$EV_CENTRAL" --add-driver 101 --db "$DB" >/dev/null
c_start c "$DB"
L=$(log_of c)
check "Kafka up at start" c_kafka_up c
m_start m1 MAD-01 "C/ Serrano 10" 0.25
wait_grep 10 "$L" ' STATE MAD-01 ACTIVADO$'

kstop
check "broker gone: KAFKA down reported" wait_grep 20 "$L" ' KAFKA down reason=.+'
m_start m2 MAD-02 "Gran Via 1" 0.40
check "CP links still served while Kafka is down" wait_grep 10 "$L" ' STATE MAD-02 ACTIVADO$'
send m1 "send FAULT#MAD-01"
check "CP events still handled while Kafka is down" wait_grep 10 "$L" ' STATE MAD-01 AVERIADO$'

kstart || diag "broker restart failed"
check "broker back: KAFKA up again" wait_for 40 has_n "$L" ' KAFKA up' 2
# The new broker starts empty; Central recreates its topics and rejoins its group.
req 101 MAD-02
# Within a minute: a connection stuck in its setup is given up after 10 s
# and made again (evcharging(7) KAFKA TOPICS AND MESSAGES).
check "requests consumed again after recovery" wait_grep 60 "$L" ' AUTH_OK 101 MAD-02 session='
notif_start n
check "notifications produced again after recovery" wait_grep 20 "$(log_of n)" '^101 .*"type":"AUTH_OK"'
check "Central stayed up throughout" alive c
