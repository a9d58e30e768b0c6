#!/bin/bash
# End to end, scenario 7: the Kafka broker is stopped for 10 s mid-supply
# and restarted (same data). No telemetry is lost (every CONSUMO the engine
# sent is on Kafka and Central consumes it) and the ticket is right (the engine's final
# figures, amount = kWh x price). Uses a broker of its own on free ports
# (scripts/kafka), never the shared one.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/e2e_lib.sh"
e2e_need
KP=$(free_port)
export KAFKA_PORT=$KP KAFKA_CONTROLLER_PORT=$(free_port) EVC_KAFKA_STATE=$T_DIR/broker
kstop() { "$EVC_SRCDIR/scripts/kafka" stop >/dev/null 2>&1 || true; }
"$EVC_SRCDIR/scripts/kafka" start >"$T_DIR/kafka-start.log" 2>&1 ||
	tap_skip_all "cannot start a private broker (scripts/kafka start failed)"
trap 'kstop; t_cleanup' EXIT
K=127.0.0.1:$KP
tap_plan 10

# broker_down: stop the broker cleanly, keeping its data and command line.
broker_down() {
	BPID=$(cat "$EVC_KAFKA_STATE/kafka.pid")
	mapfile -d '' BCMD <"/proc/$BPID/cmdline"
	kill -TERM "$BPID"
	wait_for 30 bash -c "! kill -0 $BPID 2>/dev/null"
}
# broker_up: the same broker again, on the same data.
broker_up() {
	setsid "${BCMD[@]}" >>"$EVC_KAFKA_STATE/kafka.log" 2>&1 </dev/null &
	echo $! >"$EVC_KAFKA_STATE/kafka.pid"
	wait_for 60 kcat -b "$K" -L -m 2
}

check "Central up with Kafka" e2e_central
check "CP-1 registered and ACTIVADO" e2e_cp 1 0.5:16
e2e_driver a 101 --answer-timeout 60
A=$(log_of a) C=$(log_of c)
send a "r CP-1"
check "supply running" wait_grep 20 "$A" '^[0-9T:.-]* CONSUMO cp=CP-1 '
S=$(grep '^[0-9T:.-]* AUTH_OK cp=CP-1' "$A" | sed -E 's/.* session=([^ ]+).*/\1/')
check "broker stopped" broker_down
T_DOWN=$(date +%s%N)
check "Central notices" wait_grep 15 "$C" ' KAFKA down'
# The outage itself lasts 10 s (the scenario's length, not a wait for
# anything): telemetry piles up in the engine's producer meanwhile.
sleep 10
check "broker back on the same data" broker_up
diag "broker down for $(( ($(date +%s%N) - T_DOWN) / 1000000 )) ms"
check "the driver gets the ticket" wait_grep 40 "$A" "^[0-9T:.-]* TICKET cp=CP-1 session=$S "
E=$(log_of e1)
# What piled up in the engine reaches Kafka, and Central consumes it all:
# its kafka_in counter covers every message of both input topics (more if
# some were read twice). A backlog is coalesced (evcharging(7) RULES), so
# its console shows fewer CONSUMO lines than it applied.
sent=$(grep -c '^[0-9T:.-]* CONSUMO seq=' "$E")
onk=$(kcat -C -b "$K" -t "$(topic cp_telemetry)" -o beginning -e -q 2>/dev/null | grep -F "\"$S\"" | grep -c '"type":"CONSUMO"')
total=$( (kcat -C -b "$K" -t "$(topic cp_telemetry)" -o beginning -e -q; kcat -C -b "$K" -t "$(topic driver_requests)" -o beginning -e -q) 2>/dev/null | grep -c .)
send c "S"
wait_grep 10 "$C" ' SUMMARY cps=' >/dev/null
kin=$(grep ' SUMMARY cps=' "$C" | tail -n 1 | sed -E 's/.* kafka_in=([0-9]+).*/\1/')
[ "$sent" -gt 0 ] && [ "$onk" = "$sent" ] && [ "${kin:-0}" -ge "$total" ] &&
	ok "no telemetry lost: all $sent CONSUMO on Kafka, Central consumed all $total messages (kafka_in=$kin)" ||
	not_ok "no telemetry lost: engine sent $sent CONSUMO, $onk on Kafka; Central kafka_in=$kin of $total"
end_kwh=$(grep "^[0-9T:.-]* SUPPLY END .*session=$S " "$E" | sed -E 's/.* kwh=([0-9.]+).*/\1/')
t_kwh=$(grep "^[0-9T:.-]* TICKET cp=CP-1 session=$S " "$A" | sed -E 's/.* kwh=([0-9.]+).*/\1/')
awk -v a="$end_kwh" -v b="$t_kwh" 'BEGIN { d = a - b; exit !(a > 0 && d < 0.0006 && d > -0.0006) }' &&
	ok "the ticket's kWh are the engine's final kWh ($t_kwh)" || not_ok "the ticket's kWh ($t_kwh) are the engine's final kWh ($end_kwh)"
check "the ticket's amount = kWh x price" tickets_match_price "$A"
