#!/bin/bash
# An authorisation Central cancels without telling the engine (here its
# reservation timeout, 3 s) must not block the CP: the next
# AUTORIZAR_SUMINISTRO for another session replaces it and that driver is
# served to a TICKET. And the engine gives up an unplugged authorisation by
# itself after --auth-timeout.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
tap_plan 10

cp_add_driver 101 Ana
cp_add_driver 102 Luis
start central "$EV_CENTRAL" "$CP_CPORT" "$K" --db "$CP_DB" --headless --plain-links --reservation-timeout 3
C=$(log_of central)
wait_grep 20 "$C" ' READY ' >/dev/null
cp_engine e1 --power 900
E=$(log_of e1)
cp_monitor m1 MAD-01 --price 0.25
wait_for 10 is_state "$C" MAD-01 ACTIVADO

send e1 "d 101"
check "driver 101 authorised" wait_grep 20 "$E" '^[0-9T:.-]* AUTH driver=101 session=[^ ]+ price=0.25$'
S1=$(session_of "$E")
check "not plugged in: Central cancels it after 3 s" wait_for 15 has_note SESSION_CANCELLED "$S1"
check "CP back to ACTIVADO at Central" wait_for 5 is_state "$C" MAD-01 ACTIVADO
send e1 "d 102"
check "driver 102 authorised on the same CP" wait_grep 20 "$E" '^[0-9T:.-]* AUTH driver=102 session=[^ ]+ price=0.25$'
S2=$(session_of "$E")
check "the old authorisation is dropped as superseded" grep -q "^[0-9T:.-]* AUTH DROPPED driver=101 session=$S1 reason=superseded by Central$" "$E"
send e1 e
check "driver 102 plugs in" wait_grep 5 "$E" "^[0-9T:.-]* SUPPLY START driver=102 session=$S2 "
wait_grep 8 "$E" '^[0-9T:.-]* CONSUMO seq=3 ' >/dev/null
send e1 u
check "and gets a TICKET" wait_for 15 has_note TICKET "$S2"

# --auth-timeout: an engine on its own gives up an unplugged authorisation.
EP2=$(free_port)
start e2 "$EV_CP_E" "$K" "$EP2" --headless --auth-timeout 1
E2=$(log_of e2)
wait_grep 10 "$E2" '^[0-9T:.-]* START port=' >/dev/null
exchange "$EP2" "HEALTH_CHECK#BCN-02" >/dev/null
a=$(exchange "$EP2" "AUTORIZAR_SUMINISTRO#201#S-T#0.30")
check "engine 2 authorised ($a)" [ "$a" = "ACK#AUTORIZAR_SUMINISTRO" ]
check "--auth-timeout 1: dropped by itself" wait_grep 4 "$E2" '^[0-9T:.-]* AUTH DROPPED driver=201 session=S-T reason=not plugged in within 1 s$'
"$EV_CP_E" "$K" "$(free_port)" --headless --auth-timeout -1 >/dev/null 2>&1
check "--auth-timeout -1 -> exit 2" [ $? = 2 ]
