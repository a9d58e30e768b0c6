#!/usr/bin/env bash
# End to end: the real EV_W, the SIMULATED provider (tests/tools/weather_sim)
# and the real EV_Central with its HTTPS API (--api PORT --api-tokens FILE
# --weather-threshold C), real CPs (EV_CP_E + EV_CP_M on Release-1 links,
# --plain-links) and a real EV_Driver over the real Kafka broker.
# Nothing is faked.
#
#  1  readings delivered: EV_W says alert=false; GET /api/v1/weather has them
#  2  a city below the threshold: its CPs (location names the city, any
#     case, whole word; "Madridejos" is not Madrid) get a weather stop:
#     FUERA_DE_SERVICIO, caption "Weather alert"; EV_W lists them; the
#     supply in progress ends as an operator stop's does; a request there
#     is denied; WEATHER_ALERT audited as actor weather
#  3  an operator resume does not clear a weather stop; an operator stop
#     still holds after the weather clears
#  4  back at or above the threshold: cleared, resumed, WEATHER_CLEAR
#  5  a provider error while alerted is posted and keeps the alert
#  6  the threshold changed through the API (operate role; read refused)
#  7  tokens: a read token gets 403, a wrong one 401, both API_DENIED,
#     EV_W shows REFUSED and goes on
#  8  TLS: another CA is refused (no reading gets through); https://localhost
#     works (the certificate's SAN)
#  9  Central restarted: EV_W backs off, then delivers the latest reading
#     (delayed=) and the alert is back
# 10  no token or key in any log, answer or audit row
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/e2e_lib.sh"
. "$EVC_SRCDIR/tests/integration/weather_lib.sh"
e2e_need
w_need
tap_plan 44

# ---- trust material, tokens, the provider -------------------------------
w_secrets
if [ -x "$EVC_SRCDIR/scripts/pki" ]; then
	"$EVC_SRCDIR/scripts/pki" init "$T_DIR/pki" >/dev/null
else # the same material by hand: a P-256 CA and Central's certificate
	mkdir -p "$T_DIR/pki" && (
		cd "$T_DIR/pki" && umask 077 &&
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
				-subj "/CN=evc test CA" -keyout ca.key -out ca.pem &&
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=central" \
				-keyout central.key -out central.csr &&
			printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext &&
			openssl x509 -req -in central.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
				-extfile san.ext -out central.pem
	) >/dev/null 2>&1
fi
check "PKI ready (CA and Central's certificate)" test -s "$T_DIR/pki/ca.pem" -a -s "$T_DIR/pki/central.pem"
# another CA, for the wrong-CA case
mkdir -p "$T_DIR/other" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=not our CA" -keyout "$T_DIR/other/ca.key" -out "$T_DIR/other/ca.pem" >/dev/null 2>&1
RO_TOKEN=$(openssl rand -hex 24) OP_TOKEN=$(openssl rand -hex 24) BAD_TOKEN=$(openssl rand -hex 24)
(umask 077 && printf '# test tokens\nwx weather %s\nro read %s\nop operate %s\n' "$W_TOKEN" "$RO_TOKEN" "$OP_TOKEN" \
	>"$T_DIR/api.tokens" && printf '%s\n' "$RO_TOKEN" >"$T_DIR/ro.token" && printf '%s\n' "$BAD_TOKEN" >"$T_DIR/bad.token")

w_sim_start --city Madrid=12.5 --city Valencia=18 || { not_ok "weather_sim starts"; exit 1; }
w_config Madrid Valencia

# ---- Central, CPs, a driver ----------------------------------------------
API_PORT=$(free_port)
# Central's certificate: pki/central.pem and .key beside the database (the
# --link-cert/--link-key defaults), which the API serves too.
CENTRAL_ARGS=(--api "$API_PORT" --api-tokens "$T_DIR/api.tokens" --weather-threshold 0)
# Release-1 monitors need --plain-links once Central has TLS links
"$EV_CENTRAL" --help 2>&1 | grep -q -- '--plain-links' && CENTRAL_ARGS+=(--plain-links)
check "Central up with its API and Kafka" e2e_central "${CENTRAL_ARGS[@]}"
C=$(log_of c)
API=https://127.0.0.1:$API_PORT
# api TOKEN METHOD PATH [JSON]: the answer's body on stdout, its status in $T_DIR/status
api() {
	local args=(-s --max-time 10 --cacert "$T_DIR/pki/ca.pem" -H "Authorization: Bearer $1" -X "$2"
		-o "$T_DIR/body" -w '%{http_code}')
	[ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data "$4")
	curl "${args[@]}" "$API$3" >"$T_DIR/status"
	cat "$T_DIR/body"
}
status_is() { [ "$(cat "$T_DIR/status")" = "$1" ]; }
# jget EXPR: evaluate a Python expression on the last body (j), print it
jget() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$T_DIR/body" "$1"; }
cp_field() { api "$RO_TOKEN" GET "/api/v1/cps/$1" >/dev/null && jget "j[\"$2\"]"; }
caption_is() { [ "$(cp_field "$1" caption)" = "$2" ]; }
api_up() { api "$RO_TOKEN" GET /api/v1/cps >/dev/null; status_is 200; }
wait_for 15 api_up || diag "the API does not answer on $API"

# w_cp ID LOCATION AUTOPLUG: engine + Release-1 monitor, ACTIVADO at Central
w_cp() {
	local id=$1 loc=$2 ap=$3 port
	port=$(free_port)
	start "e-$id" "$EV_CP_E" "$K" "$port" --headless --auto-plug "$ap"
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
	start "m-$id" "$EV_CP_M" "127.0.0.1:$port" "127.0.0.1:$C_PORT" "$id" --location "$loc" --price 0.30 --headless
	wait_grep 20 "$C" " STATE $id ACTIVADO$"
}
ok_cps=1
w_cp MAD-1 "Gran Via 1, Madrid" 0.5:300 || ok_cps=0
w_cp MAD-2 "MADRID centro" 0.5:300 || ok_cps=0
w_cp MDJ-1 "Madridejos" 0.5:300 || ok_cps=0
w_cp VLC-1 "Calle Colon 2, Valencia" 0.5:300 || ok_cps=0
check "4 CPs ACTIVADO (2 in Madrid, 1 in Madridejos, 1 in Valencia)" test "$ok_cps" = 1
e2e_driver d 101
D=$(log_of d)

# ---- 1: readings delivered ------------------------------------------------
start w "$EV_W" "$API" "$T_DIR/config.json" --token-file "$T_DIR/weather.token" --headless
W=$(log_of w)
check "EV_W: Central up" wait_grep 15 "$W" ' central up$'
check "EV_W: Madrid 12.5 delivered, no alert" wait_grep 10 "$W" ' reading city=Madrid temp=12\.5 alert=false cps=-$'
check "EV_W: Valencia 18 delivered, no alert" wait_grep 10 "$W" ' reading city=Valencia temp=18 alert=false cps=-$'
weather_has() { api "$RO_TOKEN" GET /api/v1/weather >/dev/null && status_is 200 && [ "$(jget "$1")" = True ]; }
check "GET /api/v1/weather: threshold 0 and both cities, no alert" wait_for 10 weather_has \
	'j["threshold"] == 0 and sorted((c["city"], c["temperature"], c["alert"]) for c in j["cities"]) == [("Madrid", 12.5, False), ("Valencia", 18, False)]'

send d "r MAD-1"
check "a supply runs at MAD-1" wait_grep 30 "$D" '^[0-9T:.-]* CONSUMO cp=MAD-1 '

# ---- 2: below the threshold -----------------------------------------------
n=$(nlines "$W")
w_city Madrid '{"temp":-3.5}'
check "EV_W: Madrid -3.5 raises the alert" wait_for 15 lines_after "$n" "$W" ' reading city=Madrid temp=-3\.5 alert=true cps='
alert_cps() { tail -n +"$((n + 1))" "$W" | grep ' reading city=Madrid temp=-3\.5 alert=true' | head -n 1 |
	sed -E 's/.* cps=([^ ]*).*/\1/' | tr ',' '\n' | sort | paste -sd, -; }
check "EV_W lists exactly MAD-1 and MAD-2 (whole word, any case; not Madridejos)" test "$(alert_cps)" = "MAD-1,MAD-2"
check "MAD-1 FUERA_DE_SERVICIO" wait_grep 15 "$C" ' STATE MAD-1 FUERA_DE_SERVICIO$'
check "MAD-2 FUERA_DE_SERVICIO" wait_grep 15 "$C" ' STATE MAD-2 FUERA_DE_SERVICIO$'
# Measured (not a pass condition): EV_W's line is written when Central has
# answered, i.e. once the reading's turn is stored; the STATE line when the
# CP has acknowledged its PARAR.
t_r=$(grep -m1 ' reading city=Madrid temp=-3\.5 alert=true' "$W" | cut -d' ' -f1)
t_s=$(grep -m1 ' STATE MAD-1 FUERA_DE_SERVICIO$' "$C" | cut -d' ' -f1)
[ -n "$t_r" ] && [ -n "$t_s" ] &&
	diag "reading answered (EV_W) -> MAD-1 FUERA_DE_SERVICIO at Central: $(( ($(date -d "$t_s" +%s%N) - $(date -d "$t_r" +%s%N)) / 1000000 )) ms"
check "caption \"Weather alert\" in the API" wait_for 10 caption_is MAD-2 "Weather alert"
check "MDJ-1 and VLC-1 untouched (ACTIVADO)" bash -c "[ \"\$(grep -E ' STATE (MDJ-1|VLC-1) ' '$C' | awk '{print \$NF}' | sort -u)\" = ACTIVADO ]"
check "the supply at MAD-1 ends as an operator stop's does" wait_grep 15 "$D" '^[0-9T:.-]* SUPPLY_ERROR cp=MAD-1 '
send d "r MAD-2"
check "a request at a weather-stopped CP is denied" wait_grep 15 "$D" '^[0-9T:.-]* AUTH_DENIED cp=MAD-2 '
check "WEATHER_ALERT audited as actor weather" wait_for 10 bash -c \
	"[ \"\$(sqlite3 -cmd '.timeout 3000' '$DB' \"select count(*) from audit_log where action='WEATHER_ALERT' and actor='weather'\")\" -ge 1 ]"
check "GET /api/v1/weather: Madrid alerted with its CPs" wait_for 10 weather_has \
	'[sorted(c["cps"]) for c in j["cities"] if c["city"] == "Madrid" and c["alert"]] == [["MAD-1", "MAD-2"]]'

# ---- 3: operators and the weather -------------------------------------------
api "$OP_TOKEN" POST /api/v1/cps/MAD-2/resume >/dev/null
n=$(nlines "$W")
wait_for 10 lines_after "$n" "$W" ' reading city=Madrid temp=-3\.5 alert=true' # a cycle later
check "an operator resume does not clear a weather stop" test "$(cp_field MAD-2 state)" = FUERA_DE_SERVICIO
api "$OP_TOKEN" POST /api/v1/cps/MAD-1/stop >/dev/null
check "an operator stop on a weather-stopped CP is taken (202 or 409)" bash -c "grep -Eq '^(202|409)$' '$T_DIR/status'"

# ---- 4: cleared ---------------------------------------------------------------
n=$(nlines "$W")
w_city Madrid '{"temp":4}'
check "EV_W: Madrid 4 clears the alert" wait_for 15 lines_after "$n" "$W" ' reading city=Madrid temp=4 alert=false cps=-$'
check "MAD-2 resumes (ACTIVADO)" wait_for 15 state_after MAD-2 FUERA_DE_SERVICIO ACTIVADO
check "MAD-1 stays stopped: the operator stop still holds" bash -c "sleep 0; [ \"\$(grep -E ' STATE MAD-1 ' '$C' | tail -n 1 | awk '{print \$NF}')\" = FUERA_DE_SERVICIO ]"
check "WEATHER_CLEAR audited" wait_for 10 bash -c \
	"[ \"\$(sqlite3 -cmd '.timeout 3000' '$DB' \"select count(*) from audit_log where action='WEATHER_CLEAR'\")\" -ge 1 ]"
api "$OP_TOKEN" POST /api/v1/cps/MAD-1/resume >/dev/null
check "the operator resumes MAD-1: ACTIVADO" wait_for 15 state_after MAD-1 FUERA_DE_SERVICIO ACTIVADO

# ---- 5: a provider error while alerted ------------------------------------
n=$(nlines "$W")
w_city Madrid '{"temp":-2}'
wait_for 15 lines_after "$n" "$W" ' reading city=Madrid temp=-2 alert=true'
n=$(nlines "$W")
w_city Madrid '{"fail":500}'
check "a provider error is posted; Central keeps the alert" \
	wait_for 15 lines_after "$n" "$W" ' error city=Madrid error="provider error \(HTTP 500\)" alert=true cps='
state_is() { [ "$(cp_field "$1" state)" = "$2" ]; }
check "the CPs stay stopped through the error" wait_for 10 state_is MAD-2 FUERA_DE_SERVICIO
n=$(nlines "$W")
w_city Madrid '{"temp":10}'
check "good readings again clear it" wait_for 15 lines_after "$n" "$W" ' reading city=Madrid temp=10 alert=false'

# ---- 6: the threshold through the API ----------------------------------------
api "$RO_TOKEN" PUT /api/v1/weather/threshold '{"threshold":15}' >/dev/null
check "PUT threshold with a read token: 403" status_is 403
n=$(nlines "$W")
api "$OP_TOKEN" PUT /api/v1/weather/threshold '{"threshold":15}' >/dev/null
check "PUT threshold 15 with an operate token: 200" status_is 200
check "Madrid 10 is now below it: alert" wait_for 15 lines_after "$n" "$W" ' reading city=Madrid temp=10 alert=true'
n=$(nlines "$W")
api "$OP_TOKEN" PUT /api/v1/weather/threshold '{"threshold":0}' >/dev/null
check "threshold 0 again: cleared" wait_for 15 lines_after "$n" "$W" ' reading city=Madrid temp=10 alert=false'

# ---- 7: tokens and roles ----------------------------------------------------------
start wro "$EV_W" "$API" "$T_DIR/config.json" --token-file "$T_DIR/ro.token" --headless
check "a read token cannot post readings: 403, EV_W says refused" wait_grep 15 "$(log_of wro)" ' central refused error="HTTP 403'
start wbad "$EV_W" "$API" "$T_DIR/config.json" --token-file "$T_DIR/bad.token" --headless
check "a wrong token: 401, EV_W says refused" wait_grep 15 "$(log_of wbad)" ' central refused error="HTTP 401'
check "both refusals audited as API_DENIED" wait_for 10 bash -c \
	"[ \"\$(sqlite3 -cmd '.timeout 3000' '$DB' \"select count(*) from audit_log where action='API_DENIED'\")\" -ge 2 ]"
check "refused EV_Ws go on reading (alive)" bash -c "kill -0 $(pid_of wro) && kill -0 $(pid_of wbad)"
stop wro
stop wbad

# ---- 8: TLS -------------------------------------------------------------------------
start wca "$EV_W" "$API" "$T_DIR/config.json" --token-file "$T_DIR/weather.token" --ca "$T_DIR/other/ca.pem" --headless
check "another CA: Central's certificate refused, backing off" \
	wait_grep 15 "$(log_of wca)" ' central unreachable attempt=2 .*error="TLS: '
check "and no reading got through with it" bash -c "! grep -q ' central up' '$(log_of wca)'"
stop wca
start wlh "$EV_W" "https://localhost:$API_PORT" "$T_DIR/config.json" --token-file "$T_DIR/weather.token" --headless
check "https://localhost: the name in the certificate, accepted" wait_grep 15 "$(log_of wlh)" ' reading city=Madrid .* alert=false'
stop wlh

# ---- 9: Central restarted ---------------------------------------------------------------
# Counted before the stop: EV_W may fail twice while Central shuts down.
n=$(nlines "$W")
stop c
check "Central gone: EV_W backs off" wait_for 15 lines_after "$n" "$W" ' central unreachable attempt=2 '
w_city Madrid '{"temp":-5}'
wait_for 10 lines_after "$n" "$W" ' reading city=Madrid temp=-5 alert=unknown central=unreachable'
c_start c "$DB" "${CENTRAL_ARGS[@]}"
check "Central back: EV_W delivers the latest reading (delayed)" \
	wait_for 45 lines_after "$n" "$W" ' reading city=Madrid temp=-5 alert=true .*delayed='
check "EV_W says Central is up after the failed attempts" lines_after "$n" "$W" ' central up after [0-9]+ failed attempts'
check "the alert is back on MAD-1 once its monitor is back" wait_for 30 caption_is MAD-1 "Weather alert"

# ---- 10: secrets ---------------------------------------------------------------------------
api "$RO_TOKEN" GET '/api/v1/audit?limit=1000' >"$T_DIR/audit.json"
no_secret() {
	! grep -Fq -e "$W_TOKEN" -e "$RO_TOKEN" -e "$OP_TOKEN" -e "$BAD_TOKEN" -e "$W_KEY" \
		"$T_DIR"/*.log "$T_DIR/audit.json" &&
		[ "$(sqlite3 -cmd '.timeout 3000' "$DB" "select count(*) from audit_log where instr(detail, '$W_TOKEN') or instr(detail, '$BAD_TOKEN') or instr(detail, '$RO_TOKEN')")" = 0 ]
}
check "no token or key in any log, the audit answer or the audit table" no_secret
