#!/usr/bin/env bash
# The web page (EV_Central(1) API, the page) in a real headless Chromium
# (Debian's chromium, driven over its DevTools protocol by
# tests/tools/page_probe.py) against the real EV_Central over real TLS:
# the token from the #token= fragment, the live grid with the panel's
# states and captions, a change on the page within a second of it
# happening at Central (measured), the weather line, the audit lines, a
# wrong token asked again; a screenshot saved for a person to look at.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
for t in chromium curl openssl python3 sqlite3; do
	command -v $t >/dev/null || tap_skip_all "$t needed"
done
pick_python json websocket || tap_skip_all "python3-websocket needed (Debian package)"
tap_plan 15

PROBE=$EVC_SRCDIR/tests/tools/page_probe.py
DB=$T_DIR/central.db
"$EVC_SRCDIR/scripts/pki" init "$T_DIR/pki" >/dev/null 2>&1
RO=$(openssl rand -hex 24) OP=$(openssl rand -hex 24) WX=$(openssl rand -hex 24)
(umask 077 && printf 'ro read %s\nop operate %s\nwx weather %s\n' "$RO" "$OP" "$WX" >"$T_DIR/tokens")
API_PORT=$(free_port)
c_start c "$DB" --api "$API_PORT" --api-tokens "$T_DIR/tokens"
L=$(log_of c)
m_start m1 MAD-01 "Gran Via 1, Madrid" 0.30
m_start m2 BCN-01 "Pg. de Gracia 21, Barcelona" 0.32
wait_grep 10 "$L" ' STATE MAD-01 ACTIVADO$'
wait_grep 10 "$L" ' STATE BCN-01 ACTIVADO$'
API=https://127.0.0.1:$API_PORT
apiq() { # apiq TOKEN METHOD PATH [JSON]
	local a=(-s --max-time 10 --cacert "$T_DIR/pki/ca.pem" -H "Authorization: Bearer $1" -X "$2" -o /dev/null -w '%{http_code}')
	[ $# -ge 4 ] && a+=(-H 'Content-Type: application/json' --data "$4")
	curl "${a[@]}" "$API$3"
}
# Chromium trusts Central's certificate by its key (SPKI pin), nothing else.
SPKI=$(openssl x509 -in "$T_DIR/pki/central.pem" -pubkey -noout | openssl pkey -pubin -outform der |
	openssl dgst -sha256 -binary | base64)

# probe NAME CMD...: send one command to the page probe NAME, wait for its answer line
probe() {
	local n=$1 f answers
	shift
	f=$(log_of "$n")
	answers=$(grep -c -E '^(ok|fail) ' "$f")
	send "$n" "$*"
	wait_for 40 bash -c "[ \$(grep -c -E '^(ok|fail) ' '$f') -gt $answers ]" || return 1
	grep -E '^(ok|fail) ' "$f" | sed -n "$((answers + 1))p" | grep -q '^ok '
}

start p "$PY" "$PROBE" "$API/#token=$RO" --spki "$SPKI"
check "Chromium starts and opens the page" wait_grep 40 "$(log_of p)" '^ok start'
check "the page goes live with the token from the fragment" probe p wait 20 "document.body.dataset.conn === 'live'"
check "the fragment is gone from the address bar (the token is not left in it)" probe p wait 5 "location.hash === ''"
check "two cards, ACTIVADO, with their locations and prices" probe p wait 10 \
	"document.querySelectorAll('#grid .card').length === 2 && document.getElementById('cp-MAD-01').dataset.state === 'ACTIVADO' && document.querySelector('#cp-MAD-01 .cp-location').textContent.includes('Gran Via') && document.querySelector('#cp-BCN-01 .cp-price').textContent.includes('0.32')"
check "the card's colour is the panel's (ACTIVADO green, #2fb344)" probe p wait 5 \
	"getComputedStyle(document.getElementById('cp-MAD-01')).backgroundColor === 'rgb(47, 179, 68)'"

# a change at Central reaches the page: measured from the ACK that makes it
check "stop MAD-01 through the API: 202" test "$(apiq "$OP" POST /api/v1/cps/MAD-01/stop)" = 202
wait_grep 10 "$(log_of m1)" 'RECV PARAR'
t0=$(date +%s%N)
send m1 "send ACK#PARAR"
probe p wait 10 "document.getElementById('cp-MAD-01').dataset.state === 'FUERA_DE_SERVICIO'"
rc=$? t1=$(date +%s%N)
check "the card turns FUERA_DE_SERVICIO" test $rc -eq 0
ms=$(( (t1 - t0) / 1000000 ))
diag "ACK at the monitor -> card changed on the page: $ms ms (includes the probe's 100 ms polling)"
check "within a second of the change (${ms} ms)" test "$ms" -le 1000
check "its caption is the panel's (Out of Order)" probe p wait 5 \
	"document.querySelector('#cp-MAD-01 .cp-caption').textContent === 'Out of Order'"

# the weather line and the audit lines
apiq "$WX" POST /api/v1/weather/readings '{"city":"Barcelona","temperature":-2}' >/dev/null
check "the weather line shows Barcelona alerted" probe p wait 10 \
	"!!document.querySelector('#weather .wx-city[data-city=\"Barcelona\"][data-alert=\"true\"]')"
wait_grep 10 "$(log_of m2)" 'RECV PARAR' && send m2 "send ACK#PARAR"
check "BCN-01's card: Weather alert" probe p wait 10 \
	"document.querySelector('#cp-BCN-01 .cp-caption').textContent === 'Weather alert'"
check "the audit lines show WEATHER_ALERT" probe p wait 10 "!!document.querySelector('#audit li.audit[data-action=\"WEATHER_ALERT\"]')"
SHOT=${EVC_BUILDDIR}/tests/api_page.png
check "a screenshot is saved ($SHOT)" probe p shot "$T_DIR/page.png"
cp "$T_DIR/page.png" "$SHOT" 2>/dev/null
check "... and it is a real PNG of a real size" bash -c "[ \"\$(head -c 8 '$T_DIR/page.png' | od -An -tx1 | tr -d ' ')\" = 89504e470d0a1a0a ] && [ \$(stat -c %s '$T_DIR/page.png') -gt 10000 ]"
send p quit
stop p

# a wrong token: the page asks again and says why
start p2 "$PY" "$PROBE" "$API/#token=$(openssl rand -hex 24)" --spki "$SPKI"
wait_grep 40 "$(log_of p2)" '^ok start'
check "a wrong token: the login form is shown again with why" probe p2 wait 20 \
	"document.body.dataset.conn === 'login' && !document.getElementById('login').hidden && document.getElementById('login-msg').textContent.length > 0"
send p2 quit
stop p2
