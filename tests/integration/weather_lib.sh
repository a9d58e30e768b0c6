# Helpers shared by the weather_*.sh integration tests (sourced after
# lib.sh): the SIMULATED provider (tests/tools/weather_sim) on a port of
# its own, an API key and a token in mode-0600 files, a CA made with the
# openssl CLI (scripts/pki when the tree has it), and EV_W's config.
EV_W=$EVC_BUILDDIR/EV_W
WEATHER_SIM=$EVC_SRCDIR/tests/tools/weather_sim

w_need() {
	[ -x "$EV_W" ] || tap_skip_all "EV_W not built"
	command -v python3 >/dev/null || tap_skip_all "python3 needed for weather_sim"
	command -v openssl >/dev/null || tap_skip_all "openssl needed for the test CA"
	command -v curl >/dev/null || tap_skip_all "curl needed to drive weather_sim"
}

# w_secrets: $T_DIR/owm.key (W_KEY) and $T_DIR/weather.token (W_TOKEN),
# random, mode 0600.
w_secrets() {
	W_KEY=$(openssl rand -hex 16)
	W_TOKEN=$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')
	(umask 077 && printf '%s\n' "$W_KEY" >"$T_DIR/owm.key" && printf '%s\n' "$W_TOKEN" >"$T_DIR/weather.token")
}

# w_ca: a CA at $T_DIR/pki/ca.pem (EV_W's default beside the config).
w_ca() {
	if [ -x "$EVC_SRCDIR/scripts/pki" ]; then
		"$EVC_SRCDIR/scripts/pki" init "$T_DIR/pki" >/dev/null 2>&1 && return 0
	fi
	mkdir -p "$T_DIR/pki" &&
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj "/CN=evc test CA" -keyout "$T_DIR/pki/ca.key" -out "$T_DIR/pki/ca.pem" >/dev/null 2>&1 &&
		chmod 600 "$T_DIR/pki/ca.key"
}

# w_sim_start [ARGS...]: the simulated provider (log name sim), its URL in
# W_SIM once its banner is out.
w_sim_start() {
	start sim "$WEATHER_SIM" --key-file "$T_DIR/owm.key" "$@"
	wait_grep 15 "$(log_of sim)" '^weather_sim listening on 127\.0\.0\.1:[0-9]+ ' || return 1
	W_SIM=http://127.0.0.1:$(sed -nE 's/^weather_sim listening on 127\.0\.0\.1:([0-9]+) .*/\1/p' "$(log_of sim)" | head -n 1)
}

# w_city NAME JSON: PUT /sim/cities/NAME (NAME URL-escaped by the caller).
w_city() { curl -sf -o /dev/null -X PUT -d "$2" "$W_SIM/sim/cities/$1"; }

# w_config CITY...: $T_DIR/config.json with those cities, interval ${W_INTERVAL:-1}.
w_config() {
	local list="" c
	for c in "$@"; do list="$list${list:+,}\"$c\""; done
	printf '{"provider":"%s","api_key_file":"owm.key","cities":[%s],"interval":%s}\n' \
		"$W_SIM" "$list" "${W_INTERVAL:-1}" >"$T_DIR/config.json.new" &&
		mv "$T_DIR/config.json.new" "$T_DIR/config.json"
}

# lines_after N FILE PATTERN: a line after line N of FILE matches PATTERN (ERE).
lines_after() { tail -n +"$(($1 + 1))" "$2" | grep -Eq -- "$3"; }
nlines() { wc -l <"$1"; }
