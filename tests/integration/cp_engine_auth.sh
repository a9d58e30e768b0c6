#!/bin/bash
# The engine's challenge (evcharging(7) SECURITY), against the real EV_CP_E
# with a credential, driven by a raw client (eng_script in cp_lib.sh):
# without HELLO every frame is refused and the third closes; a wrong AUTH
# or a HELLO for another CP is refused and closed; AUTORIZAR_SUMINISTRO,
# PARAR and HEALTH_CHECK#..#CENTRAL_DOWN from a client that has not
# authenticated change nothing; a silent client is closed after 5 s; the
# engine listens on 127.0.0.1 only by default; the right AUTH gets AUTH_OK,
# SET_KEY an ACK, and without a key an authorisation is NACKed; an address
# that keeps failing is refused at once for a while, without touching a
# link that is already authenticated. Last, the Release-1 engine.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
tap_plan 35
K=127.0.0.1:$(free_port) # no broker needed: nothing is supplied here
SECRET=$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
export SECRET CPID=MAD-01
CRED=$T_DIR/mad01.cred
printf '{"id":"MAD-01","secret":"%s"}\n' "$SECRET" >"$CRED"
chmod 600 "$CRED"
KEY=$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
P=$CP_EPORT

# ---- arguments ----
cp "$CRED" "$T_DIR/open.cred"; chmod 640 "$T_DIR/open.cred"
"$EV_CP_E" "$K" "$(free_port)" --headless --credential "$T_DIR/open.cred" </dev/null >"$T_DIR/o.out" 2>"$T_DIR/o.err"
rc=$?
check "a credential file the group can read -> exit 1 naming file and mode" bash -c "[ $rc = 1 ] && grep -q 'open.cred: mode 0640' '$T_DIR/o.err'"
"$EV_CP_E" "$K" "$(free_port)" --headless --credential "$T_DIR/none.cred" </dev/null >/dev/null 2>"$T_DIR/n.err"
check "a missing credential file -> exit 1 naming it" bash -c "[ $? = 1 ] && grep -q 'none.cred' '$T_DIR/n.err'"

cp_engine e1 --credential "$CRED"
E=$(log_of e1)
check "the CP id comes from the credential" wait_grep 5 "$E" "^[0-9T:.-]* CP id=MAD-01 credential=$CRED\$"
check "it says it is secured" wait_grep 5 "$E" '^[0-9T:.-]* Secured mode: engine challenge on every connection'

# ---- only loopback by default ----
check "listening on 127.0.0.1:$P only" bash -c "[ \"\$(ss -ltnH 'sport = :$P' | awk '{print \$4}')\" = 127.0.0.1:$P ]"
addr=$(ip -4 -o addr show scope global 2>/dev/null | awk '{sub("/.*", "", $4); print $4; exit}')
if [ -n "$addr" ]; then
	r=$(python3 -c 'import socket,sys
try: socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); print("connected")
except OSError as e: print("refused", e)' "$addr" "$P")
	check "not reachable on this machine's address $addr ($r)" [ "${r%% *}" = refused ]
elif [ -n "${EVC_REQUIRE_ALL:-}" ]; then
	not_ok "no non-loopback IPv4 address to try (EVC_REQUIRE_ALL is set)"
else
	ok "not reachable on a non-loopback address # SKIP this machine has no non-loopback IPv4 address"
fi

# ---- no HELLO: refused, changes nothing, the third frame closes ----
r=$(SRC=127.0.0.2 eng_script "$P" "AUTORIZAR_SUMINISTRO#101#S1#0.25" PARAR "HEALTH_CHECK#MAD-01#CENTRAL_DOWN" WAITCLOSE)
diag "$r"
check "no HELLO: AUTORIZAR refused" [ "$(echo "$r" | sed -n 1p)" = "RECV ERROR#NOT_AUTHENTICATED" ]
check "no HELLO: PARAR refused" [ "$(echo "$r" | sed -n 2p)" = "RECV ERROR#NOT_AUTHENTICATED" ]
check "no HELLO: the third frame refused too, then EOT" bash -c "[ \"$(echo "$r" | sed -n 3p)\" = 'RECV ERROR#NOT_AUTHENTICATED' ] && echo '$(echo "$r" | sed -n 4p)' | grep -q '^EOT '"
check "logged: ENGINE_AUTH_FAILED with peer and reason" wait_grep 3 "$E" '^[0-9T:.-]* ENGINE_AUTH_FAILED peer=127\.0\.0\.2:[0-9]+ reason=3 frames before authentication \(last: HEALTH_CHECK\)$'
send e1 status
wait_grep 3 "$E" '^[0-9T:.-]* STATUS ' >/dev/null
check "nothing changed: idle, active, monitor and Central unknown, no key" grep -Eq '^[0-9T:.-]* STATUS cp=MAD-01 health=OK active activity=IDLE driver=- session=- kwh=0.000 importe=0.00 monitor=down central=down kafka=[a-z]+ mode=secured key=none$' "$E" ||
	grep '^[0-9T:.-]* STATUS' "$E" | sed 's/^/# /'
check "no state line: no AUTH, no STOPPED, no LINK monitor/central" bash -c "! grep -Eq '^[0-9T:.-]* (AUTH driver|STOPPED|LINK monitor|LINK central)' '$E'"

# ---- wrong answers ----
r=$(SRC=127.0.0.3 eng_script "$P" HELLO#MAD-01 AUTHBAD! WAITCLOSE)
diag "$r"
check "HELLO gets a fresh CHALLENGE of 32 hex digits" bash -c "echo '$r' | sed -n 1p | grep -Eq '^RECV CHALLENGE#[0-9a-f]{32}$'"
check "a wrong AUTH: ERROR#NOT_AUTHENTICATED, then EOT" bash -c "[ \"\$(echo '$r' | sed -n 2p)\" = 'RECV ERROR#NOT_AUTHENTICATED' ] && echo '$r' | sed -n 3p | grep -q '^EOT '"
check "logged as a wrong answer" wait_grep 3 "$E" '^[0-9T:.-]* ENGINE_AUTH_FAILED peer=127\.0\.0\.3:[0-9]+ reason=wrong answer to the challenge$'
r=$(SRC=127.0.0.3 eng_script "$P" HELLO#BCN-02 WAITCLOSE)
check "a HELLO for another CP: refused and closed" bash -c "[ \"\$(echo '$r' | sed -n 1p)\" = 'RECV ERROR#NOT_AUTHENTICATED' ] && echo '$r' | sed -n 2p | grep -q '^EOT '"
check "logged with both ids" wait_grep 3 "$E" '^[0-9T:.-]* ENGINE_AUTH_FAILED peer=127\.0\.0\.3:[0-9]+ reason=HELLO for CP BCN-02; this engine serves MAD-01$'
c1=$(SRC=127.0.0.4 eng_script "$P" HELLO#MAD-01 | sed 's/.*#//')
c2=$(SRC=127.0.0.4 eng_script "$P" HELLO#MAD-01 | sed 's/.*#//')
check "a new nonce for every connection ($c1 $c2)" bash -c "[ ${#c1} = 32 ] && [ '$c1' != '$c2' ]"

# ---- a silent client is closed at the deadline ----
r=$(SRC=127.0.0.5 eng_script "$P" HELLO#MAD-01 SILENT)
diag "$r"
check "HELLO and then nothing: ERROR#NOT_AUTHENTICATED and EOT after 5 s" bash -c "echo '$r' | grep -q '^RECV ERROR#NOT_AUTHENTICATED$' && echo '$r' | tail -n 1 | grep -Eq '^EOT (4\.[89]|5\.[0-9]|6\.[0-9])$'"
check "logged: not authenticated within 5 s" wait_grep 3 "$E" '^[0-9T:.-]* ENGINE_AUTH_FAILED peer=127\.0\.0\.5:[0-9]+ reason=not authenticated within 5 s$'

# ---- the right answer ----
r=$(SRC=127.0.0.6 eng_script "$P" HELLO#MAD-01 AUTH! "AUTORIZAR_SUMINISTRO#101#S1#0.25" SET_KEY#bad "SET_KEY#$KEY" "AUTORIZAR_SUMINISTRO#101#S1#0.25" PARAR)
diag "$r"
check "the right AUTH: AUTH_OK" [ "$(echo "$r" | sed -n 2p)" = "RECV AUTH_OK" ]
check "logged: ENGINE_AUTH_OK" wait_grep 3 "$E" '^[0-9T:.-]* ENGINE_AUTH_OK peer=127\.0\.0\.6:[0-9]+$'
check "no key yet: the authorisation is NACKed" [ "$(echo "$r" | sed -n 3p)" = "RECV NACK#AUTORIZAR_SUMINISTRO#no key from Central yet" ]
check "a bad key: NACK#SET_KEY#bad key" [ "$(echo "$r" | sed -n 4p)" = "RECV NACK#SET_KEY#bad key" ]
check "SET_KEY: ACK#SET_KEY" [ "$(echo "$r" | sed -n 5p)" = "RECV ACK#SET_KEY" ]
check "with the key the authorisation is accepted" [ "$(echo "$r" | sed -n 6p)" = "RECV ACK#AUTORIZAR_SUMINISTRO" ]
check "and PARAR obeyed" bash -c "[ \"\$(echo '$r' | sed -n 7p)\" = 'RECV ACK#PARAR' ] && grep -q '^[0-9T:.-]* STOPPED (Out of Order)$' '$E'"
check "neither the secret, an answer nor the key in the engine's output" bash -c "! grep -qF -e '$SECRET' -e '$KEY' -e 'AUTH#' '$E'"

# ---- five failures from one address: refused at once for 60 s ----
r=$(python3 - "$P" <<'PY'
import hashlib, hmac, os, socket, sys
port = int(sys.argv[1]); secret = os.environ["SECRET"].encode()
def lrc(d):
    x = 0x01
    for b in d: x ^= b
    return x
class C:
    def __init__(self, src):
        self.s = socket.socket(); self.s.bind((src, 0)); self.s.settimeout(3)
        self.s.connect(("127.0.0.1", port)); self.buf = b""
        self.s.sendall(b"\x05"); self.enq = self.ctrl()
    def ctrl(self):
        while not self.buf:
            c = self.s.recv(4096)
            if not c: return None
            self.buf += c
        b, self.buf = self.buf[0], self.buf[1:]; return b
    def ask(self, data):   # send a frame, return the answer frame's DATA
        d = data.encode(); self.s.sendall(b"\x02" + d + b"\x03" + bytes([lrc(d)]))
        assert self.ctrl() == 0x06
        while b"\x03" not in self.buf[1:] or len(self.buf) < self.buf.index(b"\x03") + 2:
            c = self.s.recv(4096)
            if not c: return None
            self.buf += c
        e = self.buf.index(b"\x03"); a = self.buf[1:e].decode(); self.buf = self.buf[e + 2:]
        self.s.sendall(b"\x06"); return a
m = C("127.0.0.7")    # an authenticated link, like a monitor's
ch = m.ask("HELLO#MAD-01").split("#")[1]
m.ask("AUTH#" + hmac.new(secret, bytes.fromhex(ch) + b"MAD-01", hashlib.sha256).hexdigest())
for i in range(5):    # five wrong answers from the same address
    c = C("127.0.0.7"); c.ask("HELLO#MAD-01"); c.ask("AUTH#" + "0" * 64); c.s.close()
late = C("127.0.0.7")
print("newcomer", "NACK" if late.enq == 0x15 else "ACK" if late.enq == 0x06 else repr(late.enq))
print("other address", "ACK" if C("127.0.0.8").enq == 0x06 else "refused")
print("authenticated link", m.ask("HEALTH_CHECK#MAD-01"))
PY
)
diag "$r"
check "after 5 failures a newcomer from that address is refused at once (NACK to ENQ)" bash -c "echo '$r' | grep -q '^newcomer NACK$'"
check "logged: ENGINE_AUTH_BLOCKED for 60 s" wait_grep 3 "$E" '^[0-9T:.-]* ENGINE_AUTH_BLOCKED addr=127\.0\.0\.7 seconds=60 '
check "the refusal is logged as ENGINE_AUTH_FAILED" wait_grep 3 "$E" '^[0-9T:.-]* ENGINE_AUTH_FAILED peer=127\.0\.0\.7:[0-9]+ reason=address blocked after repeated failures'
check "another address still gets in" bash -c "echo '$r' | grep -q '^other address ACK$'"
check "a link authenticated before the block keeps working" bash -c "echo '$r' | grep -q '^authenticated link OK$'"

# ---- the Release-1 engine: no challenge, and it says so ----
EP2=$(free_port)
start e2 "$EV_CP_E" "$K" "$EP2" --headless
wait_grep 10 "$(log_of e2)" '^[0-9T:.-]* START port=' >/dev/null
r=$(eng_script "$EP2" HELLO#MAD-01 "SET_KEY#$KEY" HEALTH_CHECK#MAD-01)
diag "$r"
check "Release-1 engine: the start line says so" wait_grep 5 "$(log_of e2)" '^[0-9T:.-]* Release-1 mode: no credential, plaintext telemetry, no engine authentication$'
check "Release-1 engine: no challenge (HELLO is unknown), SET_KEY NACKed, checks answered" \
	[ "$r" = "$(printf 'RECV ERROR#unknown opcode HELLO\nRECV NACK#SET_KEY#Release-1 mode: this engine has no credential\nRECV OK')" ]
