#!/bin/bash
# EV_Driver restarted with the same id (kcat plays Central): the outcome of
# a service that ended while it was away is shown once (its group's
# committed offsets), and a supply still running is picked up.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
tap_plan 10

K=$EVC_KAFKA
notify() { printf '%s\t%s\n' "$1" "$2" | kcat -b "$K" -P -t "$(topic driver_notifications)" -K $'\t'; }
note() { # note TYPE USER CP SESSION EXTRA-JSON
	notify "$2" "{\"type\":\"$1\",\"cp_id\":\"$3\",\"user_id\":\"$2\",\"target_driver\":\"$2\",\"session_id\":\"$4\"$5}"
}
run_driver() { # run_driver NAME: start driver 301 and wait until it has read its backlog
	start "$1" "$EV_DRIVER" "$K" 301 --headless
	wait_grep 20 "$(log_of "$1")" '^[0-9T:.-]* READY$'
}

run_driver a
send a "r MAD-01"
wait_grep 5 "$(log_of a)" '^[0-9T:.-]* REQUEST cp=MAD-01'
note AUTH_OK 301 MAD-01 S1 ',"message":"ok"'
check "first run: authorised" wait_grep 10 "$(log_of a)" '^[0-9T:.-]* AUTH_OK cp=MAD-01 session=S1 '
stop a
# while it is away, the supply runs and ends
note CONSUMO_UPDATE 301 MAD-01 S1 ',"kwh":0.4,"importe":0.1,"kw":7.0'
note TICKET 301 MAD-01 S1 ',"kwh":1.2,"importe":0.3,"price":0.25,"started_at":1700000000.0,"ended_at":1700000100.0'

run_driver b
check "after the restart the missed ticket is shown" grep -Eq '^[0-9T:.-]* TICKET cp=MAD-01 session=S1 kwh=1.200 importe=0.30 price=0.25 .*earlier=1' "$(log_of b)"
[ "$(count_grep "$(log_of b)" '^[0-9T:.-]* TICKET')" -eq 1 ] && ok "shown once" || not_ok "shown once"
[ "$(count_grep "$(log_of b)" '^[0-9T:.-]* AUTH_OK cp=MAD-01 session=S1')" -eq 0 ] && ok "steps shown before are not repeated" || not_ok "steps shown before are not repeated"
send b q
stop b

run_driver c
[ "$(count_grep "$(log_of c)" '^[0-9T:.-]* TICKET')" -eq 0 ] && ok "a second restart does not show it again (committed)" || not_ok "a second restart does not show it again (committed)"
# a new supply starts (e.g. from the CP's menu) while the driver runs, then it goes away mid-supply
note AUTH_OK 301 BCN-01 S2 ',"message":"ok"'
note CONSUMO_UPDATE 301 BCN-01 S2 ',"kwh":0.2,"importe":0.06,"kw":7.0'
check "a session of ours it did not start is followed" wait_grep 10 "$(log_of c)" '^[0-9T:.-]* CONSUMO cp=BCN-01 session=S2 .*earlier=1'
stop c
note CONSUMO_UPDATE 301 BCN-01 S2 ',"kwh":0.9,"importe":0.27,"kw":7.0'

run_driver d
check "restarted mid-supply: the running supply is picked up" grep -Eq '^[0-9T:.-]* RESUMED cp=BCN-01 session=S2 state=CHARGING kwh=0.900 importe=0.27$' "$(log_of d)"
note CONSUMO_UPDATE 301 BCN-01 S2 ',"kwh":1.1,"importe":0.33,"kw":7.0'
check "and its live figures shown" wait_grep 10 "$(log_of d)" '^[0-9T:.-]* CONSUMO cp=BCN-01 session=S2 kw=7.00 kwh=1.100 importe=0.33'
note TICKET 301 BCN-01 S2 ',"kwh":1.5,"importe":0.45,"price":0.3,"started_at":1700000000.0,"ended_at":1700000100.0'
check "then its ticket" wait_grep 10 "$(log_of d)" '^[0-9T:.-]* TICKET cp=BCN-01 session=S2 kwh=1.500 importe=0.45'
send d "r MAD-01"
check "and a new request goes out once it has ended" wait_grep 10 "$(log_of d)" '^[0-9T:.-]* REQUEST cp=MAD-01'
send d q
stop d
