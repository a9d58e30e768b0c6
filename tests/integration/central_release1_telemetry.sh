#!/bin/bash
# A Release-1 peer's engine names no session and no seq in its telemetry
# (evcharging(7) SECURITY, Release 1): on a plaintext CP (--plain-links, a
# monitor without a credential) Central matches such messages to the CP's
# open session; the driver sees the figures, the SUPPLY_END bills the
# session once (a second one changes nothing), and the CP is free again.
# The real engine writes to another network's topics here, so the only
# telemetry Central sees is the Release-1 style one this test produces.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
tap_plan 7

request() { # request USER CP RID
	printf '%s\t{"type":"REQUEST_CHARGE","user_id":"%s","cp_id":"%s","request_id":"%s","timestamp":%s}\n' \
		"$1" "$1" "$2" "$3" "$(date +%s.%N)" | kcat -b "$K" -P -t "$(topic driver_requests)" -K $'\t'
}
r1tel() { # r1tel TYPE KWH: telemetry as a Release-1 engine writes it
	printf 'MAD-01\t{"type":"%s","cp_id":"MAD-01","user_id":"101","kwh":%s,"kw":7.2}\n' "$1" "$2" |
		kcat -b "$K" -P -t "$(topic cp_telemetry)" -K $'\t'
}
count_notes() { notes | grep "\"type\":\"$1\"" | grep -c "\"session_id\":\"$2\"" || true; }

cp_add_driver 101 Ana
start central "$EV_CENTRAL" "$CP_CPORT" "$K" --db "$CP_DB" --headless --plain-links
C=$(log_of central)
wait_grep 20 "$C" ' READY '
cp_engine e1 --power 50 --topic-prefix "lost-$T_PREFIX"
E=$(log_of e1)
cp_monitor m1 MAD-01 --price 0.25
wait_for 15 is_state "$C" MAD-01 ACTIVADO
request 101 MAD-01 r1-1
wait_grep 20 "$E" '^[0-9T:.-]* AUTH driver=101 session='
S=$(session_of "$E")
r1tel CONSUMO 0.5
check "a CONSUMO without session or seq starts the CP's open session" wait_for 10 is_state "$C" MAD-01 SUMINISTRANDO
upd() { note_for CONSUMO_UPDATE "$S" | grep -q '"kwh":0.5'; }
check "... and reaches the driver as that session's CONSUMO_UPDATE" wait_for 10 upd
r1tel SUPPLY_END 1.25
check "a SUPPLY_END without session or seq ends it with a TICKET" wait_for 10 has_note TICKET "$S"
check "... billing its kWh at the session's price" bash -c "$(declare -f notes note_for topic); K='$K' T_PREFIX='$T_PREFIX'
	note_for TICKET '$S' | grep -q '\"kwh\":1.25,\"importe\":0.31,'"
check "the CP is free again" wait_for 10 is_state "$C" MAD-01 ACTIVADO
r1tel SUPPLY_END 9.5
# A malformed message behind it on the same partition: once Central has
# logged that one (BAD_MSG), it has handled the second SUPPLY_END.
printf 'MAD-01\t{"type":"CONSUMO","cp_id":"MAD-01"}\n' | kcat -b "$K" -P -t "$(topic cp_telemetry)" -K $'\t'
wait_grep 10 "$C" 'BAD_MSG .*missing field' || diag "Central did not log the marker message"
check "a second SUPPLY_END changes nothing (one TICKET, still 1.25 kWh)" bash -c "$(declare -f notes topic count_notes)
	K='$K' T_PREFIX='$T_PREFIX'; [ \"\$(count_notes TICKET '$S')\" = 1 ] &&
	[ \"\$(sqlite3 '$CP_DB' \"select kwh from sessions where id='$S'\")\" = 1.25 ]"
check "Central logs the CP as Release 1" grep -q 'CP MAD-01 registered .*(Release-1 plaintext link)' "$C"
