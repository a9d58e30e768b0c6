#!/bin/bash
# EV_Driver's command line: help, version, and every bad argument is one
# error line plus the usage on stderr and exit status 2. No broker needed.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
tap_plan 13

run() { # run EXPECTED_RC DESC ARGS...: ok if the status matches and, for 2, stderr starts with one error line
	local want=$1 desc=$2; shift 2
	"$EV_DRIVER" "$@" >"$T_DIR/out" 2>"$T_DIR/err" </dev/null
	local rc=$?
	if [ "$rc" -ne "$want" ]; then
		not_ok "$desc (exit $rc, wanted $want)"; sed 's/^/#   /' "$T_DIR/err"; return
	fi
	if [ "$want" -eq 2 ] && ! head -n1 "$T_DIR/err" | grep -q '^EV_Driver: '; then
		not_ok "$desc (no error line)"; sed 's/^/#   /' "$T_DIR/err"; return
	fi
	ok "$desc"
}

run 0 "--help exits 0" --help
grep -q '^usage: EV_Driver' "$T_DIR/out" && ok "--help prints the usage on stdout" || not_ok "--help prints the usage on stdout"
run 0 "--version exits 0" --version
run 2 "no arguments" 
grep -q 'usage:' "$T_DIR/err" && ok "the usage follows the error line" || not_ok "the usage follows the error line"
run 2 "unknown option" 127.0.0.1:1 101 --frobnicate
run 2 "bad driver id" 127.0.0.1:1 'bad id!' --headless
run 2 "--answer-timeout not a number" 127.0.0.1:1 101 --headless --answer-timeout soon
run 2 "--pause negative" 127.0.0.1:1 101 --headless --pause -1
run 2 "missing services file" 127.0.0.1:1 101 "$T_DIR/nope.txt" --headless
grep -q "nope.txt" "$T_DIR/err" && ok "the error names the missing file" || not_ok "the error names the missing file"
run 2 "a directory as services file" 127.0.0.1:1 101 "$T_DIR" --headless
printf 'MAD-01\nnot a cp id\n' >"$T_DIR/bad.txt"
run 2 "a services file with a bad line" 127.0.0.1:1 101 "$T_DIR/bad.txt" --headless
