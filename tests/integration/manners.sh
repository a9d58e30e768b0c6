#!/usr/bin/env bash
# Manners alike in every program (EV_Central, EV_CP_E, EV_CP_M, EV_Driver,
# EV_W): -V naming the libraries, --no-color, --list-options, one timestamp
# format on every line (stdout events and stderr diagnostics), JSON lines
# with named fields, --config; and the defects of the first operator's
# report: EV_CP_E's doubled "cannot listen", a bad broker host silent on
# EV_CP_E's stderr, EV_CP_M taking '7001' as an address and printing
# [::1]:7001 as ::1:7001, EV_Driver's raw librdkafka lines and its exit 0
# with messages not delivered.
. "$EVC_SRCDIR/tests/integration/lib.sh"
command -v python3 >/dev/null || tap_skip_all "python3 needed"
PROGS=(EV_Central EV_CP_E EV_CP_M EV_Driver EV_W EV_Registry)
tap_plan $((${#PROGS[@]} * 3 + 19))

O=$T_DIR/out E=$T_DIR/err
TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}'
run() { timeout 20 "$@" </dev/null >"$O" 2>"$E"; RC=$?; }
# every_line FILE ERE: each line of FILE matches (and there is one)
every_line() { [ -s "$1" ] && ! grep -Evq -- "$2" "$1"; }
all_json() { python3 -c '
import json, sys
n = 0
for l in open(sys.argv[1]):
    o = json.loads(l); assert "ts" in o and ("type" in o or "level" in o), l; n += 1
assert n > 0' "$1"; }

for p in "${PROGS[@]}"; do
	bin=$EVC_BUILDDIR/$p
	run "$bin" -V
	check "$p -V names the program and librdkafka, SQLite, OpenSSL" \
		eval '[ $RC -eq 0 ] && grep -Eq "^$p .*[0-9]+\.[0-9]+" "$O" && grep -Eq "librdkafka [0-9.]+, SQLite [0-9.]+, OpenSSL [0-9]" "$O"'
	run "$bin" --no-color --help
	check "$p takes --no-color" eval '[ $RC -eq 0 ] && grep -q "no-color" "$O"'
	run "$bin" --list-options
	check "$p --list-options: its options, one a line" eval '[ $RC -eq 0 ] && grep -qx -- "--no-color" "$O" && grep -qx -- "--config ARG" "$O"'
done

# EV_CP_E on a taken port: one clear message, not "cannot listen on port N:
# cannot listen on *:N: ...".
start holder python3 -c '
import socket, sys
s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen(1)
print("PORT", s.getsockname()[1], flush=True); sys.stdin.read()'
wait_grep 10 "$(log_of holder)" '^PORT [0-9]+'
held=$(awk '/^PORT/ {print $2}' "$(log_of holder)")
run "$EVC_BUILDDIR/EV_CP_E" 127.0.0.1:1 "$held" --headless
check "EV_CP_E on a taken port: exit 1, 'cannot listen' said once" \
	eval '[ $RC -eq 1 ] && [ "$(grep -o "cannot listen" "$E" | wc -l)" -eq 1 ] && grep -q "^EV_CP_E: cannot listen on 127.0.0.1:$held: Address already in use$" "$E"'
stop holder

# EV_CP_E with a broker host that does not exist: said on stderr too.
port=$(free_port)
start e_bad bash -c 'exec "$@" 2>"$0"' "$T_DIR/e_bad.err" "$EVC_BUILDDIR/EV_CP_E" nosuchhost.invalid:9092 "$port" --headless
check "EV_CP_E with an unknown broker host: stderr names it" \
	wait_grep 20 "$T_DIR/e_bad.err" "^$TS EV_CP_E warn kafka: nosuchhost.invalid:9092 unreachable: .+"
check "... and its event lines carry the timestamp" every_line "$(log_of e_bad)" "^$TS [^ ]"
stop e_bad
check "... every stderr line in the one format" every_line "$T_DIR/e_bad.err" "^$TS EV_CP_E (debug|info|warn|error) "

# EV_CP_M: one address parser with Central; [::1] printed as [::1]:port.
run "$EVC_BUILDDIR/EV_CP_M" 7001 127.0.0.1:9000 MAD-01 --headless
check "EV_CP_M '7001' as an address: usage error, as EV_Central's" \
	eval '[ $RC -eq 2 ] && grep -q "^EV_CP_M: engine address: invalid address .7001. (expected host:port" "$E"'
run "$EVC_BUILDDIR/EV_Central" 9000 localhost
check "EV_Central 'localhost' as the broker: the same parser's words" \
	eval '[ $RC -eq 2 ] && grep -q "^EV_Central: kafka: invalid address .localhost. (expected host:port" "$E"'
run "$EVC_BUILDDIR/EV_CP_M" ::1:7001 127.0.0.1:9000 MAD-01 --headless
check "EV_CP_M '::1:7001' (ambiguous): usage error asking for [v6]:port" \
	eval '[ $RC -eq 2 ] && grep -q "\[v6\]:port" "$E"'
p1=$(free_port) p2=$(free_port)
start m6 "$EVC_BUILDDIR/EV_CP_M" "[::1]:$p1" "127.0.0.1:$p2" MAD-01 --headless --location 'C/ Mayor 1'
check "EV_CP_M prints [::1]:$p1 as such" wait_grep 10 "$(log_of m6)" "^$TS START cp=MAD-01 engine=\[::1\]:$p1 central=127.0.0.1:$p2 "
stop m6
# JSON lines with named fields (the location free text last, whole)
start m7 "$EVC_BUILDDIR/EV_CP_M" "127.0.0.1:$p1" "127.0.0.1:$p2" MAD-02 --headless --log-format json --location 'C/ Mayor 1'
wait_grep 10 "$(log_of m7)" '"type":"START"'
stop m7
check "EV_CP_M --log-format json: every line one JSON object" all_json "$(log_of m7)"
check "... with its fields by name" python3 -c '
import json, sys
o = [json.loads(l) for l in open(sys.argv[1]) if "\"START\"" in l][0]
assert o["cp"] == "MAD-02" and o["engine"] == sys.argv[2] and o["price"] == 0.3 and o["location"] == "C/ Mayor 1", o
' "$(log_of m7)" "127.0.0.1:$p1"

# EV_CP_E: the broker from the configuration file, JSON lines.
printf '[evcharging]\nbroker = 127.0.0.1:%s\n[EV_CP_E]\nlog_format = json\n' "$(free_port)" >"$T_DIR/evc.conf"
port=$(free_port)
start e_conf "$EVC_BUILDDIR/EV_CP_E" "$port" --headless --config "$T_DIR/evc.conf"
check "EV_CP_E <port> --config: the broker from the file, JSON from [EV_CP_E]" \
	wait_grep 10 "$(log_of e_conf)" "^\\{\"ts\":\"$TS\",\"type\":\"START\",\"port\":$port,\"kafka\":\"127.0.0.1:[0-9]+\""
stop e_conf
printf '[evcharging]\nbrokr = x\n' >"$T_DIR/bad.conf"
run "$EVC_BUILDDIR/EV_CP_E" 7001 --headless --config "$T_DIR/bad.conf"
check "EV_CP_E with a bad configuration line: exit 2 naming file and line" \
	eval "[ \$RC -eq 2 ] && grep -q \"^EV_CP_E: $T_DIR/bad.conf:2: unknown key 'brokr'\" \"\$E\""

# EV_Driver against a broker that is not there: librdkafka's lines only
# through its logger, one format; the undelivered request makes exit 1,
# unless --keep-going.
dead=127.0.0.1:$(free_port)
printf 'r MAD-01\nq\n' | timeout 60 "$EVC_BUILDDIR/EV_Driver" "$dead" 101 --headless >"$O" 2>"$E"
RC=$?
check "EV_Driver: a request not delivered makes exit 1" eval '[ $RC -eq 1 ] && grep -q "not delivered" "$E"'
check "EV_Driver: every stderr line ours (no raw librdkafka lines), one format" every_line "$E" "^$TS EV_Driver (debug|info|warn|error) "
check "EV_Driver: every stdout line timestamped" every_line "$O" "^$TS [^ ]"
printf 'r MAD-01\nq\n' | timeout 60 "$EVC_BUILDDIR/EV_Driver" "$dead" 101 --headless --keep-going >"$O" 2>"$E"
RC=$?
check "EV_Driver --keep-going: exit 0 all the same" [ $RC -eq 0 ]
printf 'q\n' | timeout 60 "$EVC_BUILDDIR/EV_Driver" "$dead" 101 --headless --log-format json >"$O" 2>"$E"
check "EV_Driver --log-format json: stdout and stderr all JSON" eval 'all_json "$O" && all_json "$E"'
printf '[evcharging]\nbroker = %s\n' "$dead" >"$T_DIR/drv.conf"
printf 'q\n' | timeout 60 "$EVC_BUILDDIR/EV_Driver" 101 --headless --keep-going --config "$T_DIR/drv.conf" >"$O" 2>"$E"
RC=$?
check "EV_Driver <id> --config: the broker from the file" eval "[ \$RC -eq 0 ] && grep -q 'driver 101 on $dead ' \"\$E\""

# EV_Central's diagnostics on stderr in the same format (before the console
# takes over, and for the tools).
run "$EVC_BUILDDIR/EV_Central" --add-cp MAD-01 "Somewhere" 0.123456 --db "$T_DIR/c.db"
check "EV_Central tools: one line, price stored as printed" eval '[ $RC -eq 0 ] && grep -q "^added cp MAD-01 0.1235 Somewhere$" "$O"'
exit "$T_FAILED"
