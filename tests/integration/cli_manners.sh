#!/usr/bin/env bash
# Command-line manners of every program: --help (usage on stdout,
# exit 0), --version, a bad argument (one line "PROG: ..." then the usage on
# stderr, nothing on stdout, exit 2), and runtime failures (port taken,
# database unreadable, file unreadable: a clear message, exit 1).
# A deviation of a program is reported as "not ok ... # TODO" with the exact
# output, so the suite stays green while the owner fixes it.
. "$EVC_SRCDIR/tests/integration/lib.sh"
tap_plan 35

O=$T_DIR/out E=$T_DIR/err
# run CMD...: run with no stdin and a 15 s limit; status in RC.
run() { timeout 15 "$@" </dev/null >"$O" 2>"$E"; RC=$?; }
# expect DESC CONDITION...: like check, and on failure the captured output.
expect() {
	local d=$1; shift
	if "$@"; then
		ok "$d"
	else
		not_ok "$d"
		diag "exit $RC" "stdout: $(head -c 300 "$O")" "stderr: $(head -c 300 "$E")"
	fi
}
usage_err() { # PROG: first stderr line "PROG: ...", second "usage: PROG ...", no stdout
	local p=$1
	[ "$RC" -eq 2 ] && [ ! -s "$O" ] &&
		head -n1 "$E" | grep -q "^$p: ." &&
		sed -n 2p "$E" | grep -q "^usage: $p "
}
clear_err() { # PROG WORDS: exit 1, "PROG: " message naming WORDS (ERE), no usage
	[ "$RC" -eq 1 ] && grep -q "^$1: " "$E" && grep -Eqi -- "$2" "$E" && ! grep -q '^usage:' "$E"
}

for p in EV_Central EV_CP_E EV_CP_M EV_Driver; do
	bin=$EVC_BUILDDIR/$p
	run "$bin" --help
	expect "$p --help: usage on stdout, exit 0" \
		eval '[ "$RC" -eq 0 ] && head -n1 "$O" | grep -q "^usage: $p " && [ ! -s "$E" ]'
	run "$bin" --version
	expect "$p --version: name and version on stdout, exit 0" \
		eval '[ "$RC" -eq 0 ] && grep -Eq "^$p .*[0-9]+\.[0-9]+" "$O"'
	run "$bin" --no-such-option
	expect "$p unknown option: one error line + usage on stderr, exit 2" usage_err "$p"
	run "$bin"
	expect "$p no arguments: one error line + usage on stderr, exit 2" usage_err "$p"
done

# Bad values of real arguments.
run "$EVC_BUILDDIR/EV_Central" 70000 127.0.0.1:9092
expect "EV_Central port 70000: usage error" usage_err EV_Central
run "$EVC_BUILDDIR/EV_Central" 9000 nocolon
expect "EV_Central kafka without port: usage error" usage_err EV_Central
run "$EVC_BUILDDIR/EV_Central" --add-cp ONLY-ID --db "$T_DIR/x.db"
expect "EV_Central --add-cp with one argument: usage error" usage_err EV_Central
run "$EVC_BUILDDIR/EV_Central" 9000 127.0.0.1:9092 --heartbeat-timeout abc
expect "EV_Central --heartbeat-timeout abc: usage error" usage_err EV_Central
run "$EVC_BUILDDIR/EV_CP_E" 127.0.0.1:9092 9000 --power -3
expect "EV_CP_E --power -3: usage error" usage_err EV_CP_E
run "$EVC_BUILDDIR/EV_CP_E" 127.0.0.1:9092 9000 --auto-plug x
expect "EV_CP_E --auto-plug x: usage error" usage_err EV_CP_E
run "$EVC_BUILDDIR/EV_CP_M" 127.0.0.1:9000 127.0.0.1:9001 'bad id!'
expect "EV_CP_M invalid cp_id: usage error" usage_err EV_CP_M
run "$EVC_BUILDDIR/EV_CP_M" 127.0.0.1:9000 127.0.0.1:9001 MAD-01 --price 0
expect "EV_CP_M --price 0: usage error" usage_err EV_CP_M
run "$EVC_BUILDDIR/EV_Driver" 127.0.0.1:9092 'bad id!'
expect "EV_Driver invalid driver id: usage error" usage_err EV_Driver
run "$EVC_BUILDDIR/EV_Driver" 127.0.0.1:9092 101 --answer-timeout -1 --headless
expect "EV_Driver --answer-timeout -1: usage error" usage_err EV_Driver
run "$EVC_BUILDDIR/EV_Driver" 127.0.0.1:9092 101 --pause
expect "EV_Driver --pause without value: usage error" usage_err EV_Driver

# Runtime failures. A port held by another listener:
start holder python3 -c '
import socket, sys
s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen(1)
print("PORT", s.getsockname()[1], flush=True)
sys.stdin.read()'
if wait_grep 10 "$(log_of holder)" '^PORT [0-9]+'; then
	held=$(awk '/^PORT/ {print $2}' "$(log_of holder)")
	run "$EVC_BUILDDIR/EV_Central" "$held" 127.0.0.1:1 "$T_DIR/central.db" --headless --plain-links
	expect "EV_Central on a taken port: clear message, exit 1" clear_err EV_Central "$held|in use"
	run "$EVC_BUILDDIR/EV_CP_E" 127.0.0.1:1 "$held" --headless
	expect "EV_CP_E on a taken port: clear message, exit 1" clear_err EV_CP_E "$held|in use"
else
	not_ok "could not hold a port for the port-taken cases"
	not_ok "could not hold a port for the port-taken cases"
fi
stop holder

port=$(free_port)
run "$EVC_BUILDDIR/EV_Central" "$port" 127.0.0.1:1 "$T_DIR/no/such/dir/central.db" --headless --plain-links
expect "EV_Central database in a missing folder: clear message, exit 1" clear_err EV_Central "no/such/dir|database|open"
printf 'this is not an SQLite database, just text long enough to fill a header block.\n%.0s' {1..20} >"$T_DIR/garbage.db"
port=$(free_port)
run "$EVC_BUILDDIR/EV_Central" "$port" 127.0.0.1:1 "$T_DIR/garbage.db" --headless --plain-links
expect "EV_Central database that is not SQLite: clear message, exit 1" clear_err EV_Central "garbage.db|database"
run "$EVC_BUILDDIR/EV_Central" --add-driver 101 --db "$T_DIR/no/such/dir/central.db"
expect "EV_Central --add-driver with an unopenable database: clear message, exit 1" clear_err EV_Central "no/such/dir|database|open"
run "$EVC_BUILDDIR/EV_Central" --import "$T_DIR/missing-import.txt" --db "$T_DIR/import.db"
expect "EV_Central --import of a missing file: clear message, exit 1" clear_err EV_Central "missing-import"
# The driver's services file: the contract asks for exit status 2 when it is
# missing or unreadable (it is an argument naming nothing usable).
run "$EVC_BUILDDIR/EV_Driver" 127.0.0.1:1 101 "$T_DIR/missing-services.txt" --headless
expect "EV_Driver with a missing services file: clear message naming it, exit 2" \
	eval '[ "$RC" -eq 2 ] && grep -q "^EV_Driver: .*missing-services" "$E"'
# Without --headless the driver needs a terminal: not having one is a
# failure of the run too.
run "$EVC_BUILDDIR/EV_Driver" 127.0.0.1:1 101
expect "EV_Driver screen without a terminal: clear message, exit 1" clear_err EV_Driver "terminal|headless"
