#!/usr/bin/env bash
# EV_W's command line and start-up: --help, --version/-V, every bad
# argument is one "EV_W: ..." line plus the usage on stderr and status 2;
# every start-up failure (config unreadable or invalid, a secret file
# missing or open to group/others, a CA missing, no terminal) is one clear
# message and status 1, naming the file (and the mode) and never a secret.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/weather_lib.sh"
w_need
tap_plan 23

O=$T_DIR/out E=$T_DIR/err
run() { timeout 15 "$EV_W" "$@" </dev/null >"$O" 2>"$E"; RC=$?; }
usage_err() { # exit 2, "EV_W: <words>" then "usage: EV_W ", nothing on stdout
	[ "$RC" -eq 2 ] && [ ! -s "$O" ] && head -n1 "$E" | grep -Eq "^EV_W: .*$1" && sed -n 2p "$E" | grep -q '^usage: EV_W '
}
clear_err() { # exit 1, "EV_W: " message matching the ERE, no usage, no secret
	[ "$RC" -eq 1 ] && grep -Eq "^EV_W: .*$1" "$E" && ! grep -q '^usage:' "$E" &&
		! grep -Fq -e "$W_KEY" -e "$W_TOKEN" "$E" "$O"
}
expect() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; diag "exit $RC" "stdout: $(head -c 300 "$O")" "stderr: $(head -c 400 "$E")"; fi; }

w_secrets
w_ca
W_SIM=http://127.0.0.1:9 # never contacted here
w_config Madrid
C=https://127.0.0.1:9
TOK=(--token-file "$T_DIR/weather.token")

run --help
expect "--help: usage on stdout, exit 0" eval '[ "$RC" -eq 0 ] && head -n1 "$O" | grep -q "^usage: EV_W " && [ ! -s "$E" ]'
run --version
expect "--version: name and version, exit 0" eval '[ "$RC" -eq 0 ] && grep -Eq "^EV_W .*[0-9]+\.[0-9]+" "$O"'
run -V
expect "-V: the same" eval '[ "$RC" -eq 0 ] && grep -Eq "^EV_W .*[0-9]+\.[0-9]+" "$O"'
run
expect "no arguments: usage error" usage_err "missing"
run "$C"
expect "no config: usage error" usage_err "config"
run "$C" "$T_DIR/config.json" "${TOK[@]}" --frobnicate
expect "unknown option: usage error" usage_err "frobnicate"
run "$C" "$T_DIR/config.json" "${TOK[@]}" extra
expect "a third argument: usage error" usage_err "extra"
run "$C" "$T_DIR/config.json" --headless
expect "no --token-file: usage error" usage_err "token-file"
run "$C" "$T_DIR/config.json" --headless --token-file
expect "--token-file without a value: usage error" usage_err "token-file"
run http://127.0.0.1:9 "$T_DIR/config.json" "${TOK[@]}" --headless
expect "Central over plain http: usage error (HTTPS only)" usage_err "HTTPS only"
run not-a-url "$T_DIR/config.json" "${TOK[@]}" --headless
expect "Central not a URL: usage error" usage_err "central_api_url"

# Start-up failures: status 1, one clear message.
run "$C" "$T_DIR/missing.json" "${TOK[@]}" --headless
expect "config missing: names it, exit 1" clear_err "missing\.json"
printf '{"provider":"%s","api_key_file":"owm.key","cities":["Madrid"],"interval":0}\n' "$W_SIM" >"$T_DIR/bad.json"
run "$C" "$T_DIR/bad.json" "${TOK[@]}" --headless
expect "config invalid: names the field, exit 1" clear_err "bad\.json: interval"
printf '{"provider":"%s","api_key_file":"nokey","cities":["Madrid"]}\n' "$W_SIM" >"$T_DIR/nokey.json"
run "$C" "$T_DIR/nokey.json" "${TOK[@]}" --headless
expect "API key file missing: names it, exit 1" clear_err "API key file .*nokey"
chmod 644 "$T_DIR/owm.key"
run "$C" "$T_DIR/config.json" "${TOK[@]}" --headless
expect "API key file mode 0644: names file and mode, exit 1" clear_err "owm\.key: mode 0644 lets others read it; chmod 600"
chmod 600 "$T_DIR/owm.key"
chmod 640 "$T_DIR/weather.token"
run "$C" "$T_DIR/config.json" "${TOK[@]}" --headless
expect "token file mode 0640: names file and mode, exit 1" clear_err "weather\.token: mode 0640"
chmod 604 "$T_DIR/weather.token"
run "$C" "$T_DIR/config.json" "${TOK[@]}" --headless
expect "token file mode 0604 (others): refused too" clear_err "weather\.token: mode 0604"
chmod 600 "$T_DIR/weather.token"
run "$C" "$T_DIR/config.json" --token-file "$T_DIR/none.token" --headless
expect "token file missing: names it, exit 1" clear_err "none\.token"
printf 'two words\n' >"$T_DIR/spaced.token"; chmod 600 "$T_DIR/spaced.token"
run "$C" "$T_DIR/config.json" --token-file "$T_DIR/spaced.token" --headless
expect "token with a space: refused, exit 1, not quoted" \
	eval 'clear_err "spaced\.token" && ! grep -q "two words" "$E"'
run "$C" "$T_DIR/config.json" "${TOK[@]}" --ca "$T_DIR/no-ca.pem" --headless
expect "--ca missing: names it, exit 1" clear_err "no-ca\.pem"
mv "$T_DIR/pki" "$T_DIR/pki.away"
run "$C" "$T_DIR/config.json" "${TOK[@]}" --headless
expect "default CA (pki/ca.pem beside the config) missing: names it, exit 1" clear_err "pki/ca\.pem"
mv "$T_DIR/pki.away" "$T_DIR/pki"
run "$C" "$T_DIR/config.json" "${TOK[@]}" --provider-ca "$T_DIR/no-pca.pem" --headless
expect "--provider-ca missing: names it, exit 1" clear_err "no-pca\.pem"
run "$C" "$T_DIR/config.json" "${TOK[@]}"
expect "the screen without a terminal: clear message, exit 1" clear_err "terminal.*headless"
