#!/usr/bin/env bash
# EV_Registry's transport and command line: TLS 1.2 and 1.3 with the
# certificate of scripts/pki (name and IP checked), TLS 1.1 refused, plain
# HTTP never answered in clear, the wrong CA refused by the client; bad
# arguments exit 2; a token or key file others can read, a missing file, a
# short token, a file that is not a database, a newer database and a port
# in use exit 1 with a message; --listen on IPv6 with explicit --cert/--key/
# --installer-token-file; idle connections closed after 10 s and the
# per-address connection limit (a slow client cannot hold the registry).
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/registry_lib.sh"
command -v openssl >/dev/null || tap_skip_all "openssl needed"
tap_plan 39

# ---- command line
check "--help: usage on stdout, exit 0" bash -c "'$EV_REGISTRY' --help | grep -q '^usage: EV_Registry <port>'"
check "--version and -V: name and version, exit 0" bash -c \
	"'$EV_REGISTRY' --version | grep -q '^EV_Registry ' && '$EV_REGISTRY' -V | grep -q '^EV_Registry '"
bad_args() { # exit 2: "EV_Registry: ..." then the usage on stderr, nothing on stdout
	"$EV_REGISTRY" "$@" >"$T_DIR/out" 2>"$T_DIR/err" </dev/null
	local rc=$?
	[ $rc -eq 2 ] && [ ! -s "$T_DIR/out" ] && head -n 1 "$T_DIR/err" | grep -q '^EV_Registry: .' &&
		sed -n 2p "$T_DIR/err" | grep -q '^usage: EV_Registry '
}
check "no arguments: exit 2" bad_args
check "bad port: exit 2" bad_args 70000
check "port 0: exit 2" bad_args 0
check "unknown option: exit 2" bad_args 8443 --frobnicate
check "option without its value: exit 2" bad_args 8443 --cert
check "three arguments: exit 2" bad_args 8443 a.db extra

# runtime_err WORDS ARGS...: exit 1, "EV_Registry: " and WORDS (ERE) on stderr, no usage.
runtime_err() {
	local words=$1
	shift
	timeout 15 "$EV_REGISTRY" "$@" >"$T_DIR/out" 2>"$T_DIR/err" </dev/null
	local rc=$?
	[ $rc -eq 1 ] && grep -q '^EV_Registry: ' "$T_DIR/err" && grep -Eq -- "$words" "$T_DIR/err" &&
		! grep -q '^usage:' "$T_DIR/err" || { diag "exit $rc: $(head -c 300 "$T_DIR/err")"; return 1; }
}
P=$(free_port)
chmod 0644 "$T_DIR/pki/installer.token"
check "installer token mode 0644: exit 1 naming the file and the mode" runtime_err 'installer\.token.*0644' "$P" "$DB"
check "...and the token is not in the message" bash -c "! grep -qF -- '$TOKEN' '$T_DIR/err'"
chmod 0600 "$T_DIR/pki/installer.token"
chmod 0640 "$T_DIR/pki/registry.key"
check "key mode 0640: exit 1 naming the file and the mode" runtime_err 'registry\.key.*0640' "$P" "$DB"
chmod 0600 "$T_DIR/pki/registry.key"
check "missing token file: exit 1 naming it" runtime_err 'nothere' "$P" "$DB" --installer-token-file "$T_DIR/nothere"
printf 'short\n' >"$T_DIR/short.token"
chmod 0600 "$T_DIR/short.token"
check "token shorter than 16 characters: exit 1" runtime_err 'shorter than 16' "$P" "$DB" --installer-token-file "$T_DIR/short.token"
check "certificate missing: exit 1 naming it" runtime_err 'nocert\.pem' "$P" "$DB" --cert "$T_DIR/nocert.pem"
check "a certificate that is not PEM: exit 1" runtime_err 'not a PEM' "$P" "$DB" --cert "$T_DIR/pki/installer.token"
head -c 4096 /dev/urandom >"$T_DIR/junk.db"
check "a file that is not a database: exit 1" runtime_err 'not a database' "$P" "$T_DIR/junk.db" \
	--cert "$T_DIR/pki/registry.pem" --key "$T_DIR/pki/registry.key" --installer-token-file "$T_DIR/pki/installer.token"
sqlite3 "$T_DIR/new.db" 'create table t(x); pragma user_version=99'
check "a database of a newer evcharging: exit 1" runtime_err 'newer evcharging \(schema 99' "$P" "$T_DIR/new.db" \
	--cert "$T_DIR/pki/registry.pem" --key "$T_DIR/pki/registry.key" --installer-token-file "$T_DIR/pki/installer.token"
check "... and left at version 99" test "$(sqlite3 "$T_DIR/new.db" 'pragma user_version')" = 99
check "--listen with a name, not an address: exit 1" runtime_err 'not an IPv4 or IPv6' "$P" "$DB" --listen localhost

# ---- TLS
r_start reg || { not_ok "EV_Registry starts"; exit 1; }
ok "EV_Registry starts"
busy=$(free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(30)' "$busy" &
holder=$!
wait_for 5 python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])))' "$busy"
check "port in use: exit 1 saying so" runtime_err 'in use' "$busy" "$DB"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

sc() { echo | timeout 10 openssl s_client -connect "127.0.0.1:$R_PORT" -CAfile "$CA" -verify_return_error "$@" 2>&1; }
check "TLS 1.3: handshake, certificate verified for localhost" bash -c \
	"$(declare -f sc); R_PORT=$R_PORT CA='$CA'; sc -tls1_3 -verify_hostname localhost | grep -q 'Verify return code: 0 (ok)' &&
	 sc -tls1_3 -verify_hostname localhost | grep -q 'TLSv1.3'"
check "TLS 1.2: handshake, certificate verified for 127.0.0.1" bash -c \
	"$(declare -f sc); R_PORT=$R_PORT CA='$CA'; sc -tls1_2 -verify_ip 127.0.0.1 | grep -Eq 'Protocol *: TLSv1.2' &&
	 sc -tls1_2 -verify_ip 127.0.0.1 | grep -q 'Verify return code: 0 (ok)'"
out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$R_PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' 2>&1)
check "TLS 1.1: the client offers it, the registry refuses (no cipher)" bash -c \
	"grep -Eq 'written [1-9][0-9]* bytes' <<<'$out' && grep -q 'Cipher is (NONE)' <<<'$out'"
out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$R_PORT" -tls1 -cipher 'DEFAULT:@SECLEVEL=0' 2>&1)
check "TLS 1.0: refused" grep -q 'Cipher is (NONE)' <<<"$out"
python3 - "$R_PORT" >"$T_DIR/plain.out" 2>&1 <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(b"GET /v1/cps/MAD-01 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
data = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
except socket.timeout:
    pass
print(repr(data[:200]))
sys.exit(0 if not data.startswith(b"HTTP") and b"HTTP/1." not in data else 1)
PY
rc=$?
check "plain HTTP on the port gets no HTTP answer" bash -c "[ $rc -eq 0 ]" || diag "$(cat "$T_DIR/plain.out")"
call GET /v1/cps/X "$TOKEN"
check "curl --cacert ca.pem https://localhost: an answer (404)" status_is 404
R_HOST=127.0.0.1 call GET /v1/cps/X "$TOKEN"
check "curl --cacert ca.pem https://127.0.0.1: an answer (404)" status_is 404
"$PKI" init "$T_DIR/other" >/dev/null
curl -sS --cacert "$T_DIR/other/ca.pem" -o /dev/null "https://localhost:$R_PORT/v1/cps/X" 2>"$T_DIR/curl.err"
rc=$?
check "curl with another network's CA: certificate refused (exit 60)" test $rc -eq 60
curl -sS --cacert "$CA" --resolve "registry.example:$R_PORT:127.0.0.1" -o /dev/null \
	"https://registry.example:$R_PORT/v1/cps/X" 2>"$T_DIR/curl.err"
rc=$?
check "curl to a name not in the certificate: refused (exit 60)" test $rc -eq 60
check "failed handshakes left no HTTP log line" test "$(grep -c ' 404 ' "$(log_of reg)")" = 2

# ---- idle connections and the per-address limit
cat >"$T_DIR/idle.py" <<'PY'
import socket, sys, time
# Hold N idle connections; print how long the registry took to close each.
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
print("open", flush=True)
t0 = time.monotonic()
for s in socks:
    s.settimeout(30)
    try:
        while s.recv(1024):
            pass
    except (socket.timeout, ConnectionResetError):
        pass
print("closed after %.1f" % (time.monotonic() - t0), flush=True)
PY
start idle python3 "$T_DIR/idle.py" "$R_PORT" 8
wait_grep 10 "$(log_of idle)" '^open' || diag "idle connections not opened"
# The registry accepts the 9th from 127.0.0.1 only to close it...
wait_for 5 bash -c "! curl -sS --max-time 5 --cacert '$CA' -o /dev/null https://localhost:$R_PORT/v1/cps/X 2>/dev/null"
rc=$?
check "with 8 idle connections from 127.0.0.1, a 9th from it is refused" test $rc -eq 0
curl -4 -sS --max-time 5 --cacert "$CA" --interface 127.0.0.2 -H "Authorization: Bearer $TOKEN" -o /dev/null -w '%{http_code}' \
	"https://localhost:$R_PORT/v1/cps/X" >"$T_DIR/code2" 2>"$T_DIR/curl.err"
check "...while another address is still served" test "$(cat "$T_DIR/code2")" = 404
wait_grep 25 "$(log_of idle)" '^closed after' || true
secs=$(sed -n 's/^closed after //p' "$(log_of idle)")
check "idle connections closed after about 10 s (${secs:-never})" \
	python3 -c "import sys; s=float(sys.argv[1] or 99); sys.exit(0 if 8 <= s <= 16 else 1)" "${secs:-}"
call GET /v1/cps/X "$TOKEN"
check "then 127.0.0.1 is served again" status_is 404
stop reg

# ---- IPv6, explicit files
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
	"$PKI" init "$T_DIR/v6" --san ::1 >/dev/null
	V6=$(free_port)
	start reg6 "$EV_REGISTRY" "$V6" "$T_DIR/v6.db" --listen '[::1]' --headless --cert "$T_DIR/v6/registry.pem" \
		--key "$T_DIR/v6/registry.key" --installer-token-file "$T_DIR/v6/installer.token"
	check "--listen [::1] with --cert, --key, --installer-token-file: serving" wait_grep 10 "$(log_of reg6)" "serving https://\[::1\]:$V6"
	keep_secret "$(cat "$T_DIR/v6/installer.token")"
	code=$(curl -sS --max-time 10 --cacert "$T_DIR/v6/ca.pem" -H "Authorization: Bearer $(cat "$T_DIR/v6/installer.token")" \
		-H 'Content-Type: application/json' -d '{"id":"V6-1","location":"IPv6 street","price":0.3}' \
		-o "$T_DIR/body" -w '%{http_code}' "https://[::1]:$V6/v1/cps" 2>"$T_DIR/curl.err")
	keep_secret "$(jget secret)"
	check "POST over IPv6, certificate verified for ::1: 201" test "$code" = 201
	check "the IPv6 peer is logged and audited" bash -c \
		"grep -q 'POST /v1/cps 201 ::1' '$(log_of reg6)' && [ \"\$(sqlite3 '$T_DIR/v6.db' \"select source_ip from audit_log\")\" = ::1 ]"
	stop reg6
else
	for i in 1 2 3; do
		if [ -n "${EVC_REQUIRE_ALL:-}" ]; then not_ok "IPv6 loopback unavailable (EVC_REQUIRE_ALL)"; else ok "IPv6 # SKIP no IPv6 loopback"; fi
	done
fi
check "no secret or token in any log of the run" no_secrets_in "$T_DIR"/*.log "$T_DIR/err"
