#!/usr/bin/env bash
# EV_W --headless against the SIMULATED provider (tests/tools/weather_sim),
# Central's URL pointing at a closed loopback port (no Central needed for
# this part): every city is read (a UTF-8 name with a space too), 404 /
# badjson / 5xx / 401 / timeout are reported as errors and the loop goes
# on, the config is re-read (a city added is read, a broken file keeps the
# last good one), the key file is re-read, the unreachable Central is
# retried with growing gaps and at most one waiting reading per city, the
# key and the token are never printed, and q ends it with status 0.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/weather_lib.sh"
w_need
tap_plan 25

w_secrets
w_ca || { echo "1..0 # cannot make a CA"; exit 1; }
w_sim_start --city Madrid=12.5 --city 'San Sebastián=-1.5' --city Cairo=30 --city Oslo=-7 --city Lima=18 ||
	{ not_ok "weather_sim starts"; exit 1; }
check "weather_sim's banner says SIMULATED" grep -q 'SIMULATED weather, not real data' "$(log_of sim)"
check "weather_sim's answers say simulated" bash -c \
	"curl -sf '$W_SIM/data/2.5/weather?q=Madrid&appid=$W_KEY&units=metric' | grep -q '\"simulated\": true'"
w_city Cairo '{"fail":"badjson"}'
w_city Oslo '{"fail":500}'
w_city Lima '{"fail":"timeout"}'

CENTRAL_PORT=$(free_port) # nothing listens there
w_config Madrid 'San Sebastián' Atlantis Cairo Oslo Lima
LOG=$(log_of w)
start w "$EV_W" "https://127.0.0.1:$CENTRAL_PORT" "$T_DIR/config.json" --token-file "$T_DIR/weather.token" --headless
T0=$(date +%s)

check "reads a city" wait_grep 15 "$LOG" ' reading city=Madrid temp=12\.5 alert=unknown central=unreachable$'
check "reads a UTF-8 city name with a space (quoted in the line)" \
	wait_grep 10 "$LOG" ' reading city="San Sebastián" temp=-1\.5 alert=unknown central=unreachable$'
check "an unknown city: 404 reported as an error" \
	wait_grep 10 "$LOG" ' error city=Atlantis error="city not found \(HTTP 404\)" alert=unknown'
check "an answer that is not JSON: reported as bad JSON" wait_grep 10 "$LOG" ' error city=Cairo error="bad JSON'
check "a provider 500: reported as a provider error" \
	wait_grep 10 "$LOG" ' error city=Oslo error="provider error \(HTTP 500\)"'

# The config, re-read every cycle: a city added is read.
w_city Sevilla '{"temp":25}'
n=$(nlines "$LOG")
w_config Madrid 'San Sebastián' Atlantis Cairo Oslo Lima Sevilla
check "the config is re-read: a city added" wait_for 10 lines_after "$n" "$LOG" ' config reloaded cities=7 '
check "the added city is read" wait_for 10 lines_after "$n" "$LOG" ' reading city=Sevilla temp=25 '

# A config that went bad keeps the last good one, and says so once.
n=$(nlines "$LOG")
printf '{"provider":"%s","api_key_file":"owm.key","cities":["Madrid",""],"interval":1}\n' "$W_SIM" \
	>"$T_DIR/config.json"
check "a bad config is reported, naming the field" \
	wait_for 10 lines_after "$n" "$LOG" ' config error=".*cities\[1\]: empty city name" \(keeping the last good config\)'
n2=$(nlines "$LOG")
check "with a bad config the last good one goes on (Sevilla still read)" \
	wait_for 10 lines_after "$n2" "$LOG" ' reading city=Sevilla temp=25 '
check "the same bad config is reported once, not every cycle" \
	test "$(tail -n +"$((n + 1))" "$LOG" | grep -c ' config error=')" -eq 1
printf '{"provider":' >"$T_DIR/config.json"
check "broken JSON is reported too" wait_for 10 lines_after "$n2" "$LOG" ' config error=".*not JSON'
w_config Madrid 'San Sebastián' Atlantis Cairo Oslo Lima Sevilla
check "a good config again: said on the log" wait_for 10 lines_after "$n" "$LOG" 'config: good again'

# The key file, re-read every cycle: a wrong key gets 401 for every city.
n=$(nlines "$LOG")
(umask 077 && echo "wrong-$W_KEY" >"$T_DIR/owm.key.new" && mv "$T_DIR/owm.key.new" "$T_DIR/owm.key")
check "a wrong key: 401 reported as an error" \
	wait_for 10 lines_after "$n" "$LOG" ' error city=Madrid error="provider refused the API key \(HTTP 401\)"'
n=$(nlines "$LOG")
(umask 077 && echo "$W_KEY" >"$T_DIR/owm.key.new" && mv "$T_DIR/owm.key.new" "$T_DIR/owm.key")
check "the right key again: read again" wait_for 10 lines_after "$n" "$LOG" ' reading city=Madrid temp=12\.5 '

# Lima's answer is held longer than EV_W waits (10 s).
check "a provider that does not answer: a timeout, reported" \
	wait_grep 30 "$LOG" ' error city=Lima error="provider: timed out'
n=$(nlines "$LOG")
check "after the timeout the loop goes on (Madrid read again)" \
	wait_for 10 lines_after "$n" "$LOG" ' reading city=Madrid temp=12\.5 '
check "alive after 401, 404, 500, bad JSON, a timeout and bad configs" alive w

# Central unreachable: attempts spaced by a backoff that grows.
check "Central retried with backoff: 6 attempts" \
	wait_for 40 grep -q ' central unreachable attempt=6 ' "$LOG"
# attempt times in ms and the announced waits
grep ' central unreachable attempt=' "$LOG" | head -n 6 |
	awk '{ split($1, dt, "T"); split(dt[2], t, ":"); ms = (t[1] * 3600 + t[2] * 60 + t[3]) * 1000
	       for (i = 2; i <= NF; i++) if ($i ~ /^retry_in=/) { r = substr($i, 10); sub(/s$/, "", r) }
	       print ms, r }' >"$T_DIR/attempts"
gaps_grow() {
	awk 'NR > 1 { g[NR - 1] = ($1 - pms) / 1000; w[NR - 1] = pr }
	     { pms = $1; pr = $2 }
	     END {
		if (NR < 6) exit 1
		for (i = 1; i < NR; i++) {
			printf "# attempt %d -> %d: %.2f s (announced %.2f s)\n", i, i + 1, g[i], w[i]
			if (g[i] < w[i] - 0.05 || g[i] > w[i] + 1.0) bad = 1   # the wait announced is the wait kept
			if (w[i] > 30) bad = 1
			if (i > 1 && g[i] < g[i - 1] - 0.1) bad = 1            # never shorter than the one before
		}
		if (g[NR - 1] < 4 * g[1]) bad = 1                          # and clearly growing
		exit bad }' "$T_DIR/attempts"
}
check "the gaps between attempts grow (0.5 s doubling, each within its step)" gaps_grow
check "the first wait is at most 0.5 s" awk 'NR == 1 { exit !($2 <= 0.5) }' "$T_DIR/attempts"
max_waiting=$(grep -o ' waiting=[0-9]*' "$LOG" | cut -d= -f2 | sort -n | tail -n 1)
check "at most one reading per city waits for Central (max waiting=${max_waiting:-?}, 7 cities)" \
	test "${max_waiting:-99}" -le 7

# Secrets.
check "the API key and the token never appear in EV_W's output" \
	bash -c "! grep -Fq -e '$W_KEY' -e '$W_TOKEN' '$LOG'"

send w q
pid=$(pid_of w)
wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
wait "$pid"
check "q ends it with status 0 (after $(($(date +%s) - T0)) s)" test $? -eq 0
