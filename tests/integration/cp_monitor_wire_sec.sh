#!/bin/bash
# The secured monitor's frames, byte for byte, between a scripted Central
# (python, so each frame it gets can be checked and each answer chosen) and
# the real engine, both with the same credential: REGISTER's fifth field,
# REGISTER_RESULT then KEY, the engine link's HELLO/CHALLENGE/AUTH and
# SET_KEY, REVOKED and re-authentication with 'a' on the same link, the key
# passed again to a restarted engine, an engine with another secret refused
# (FAULT), BAD_CREDENTIALS stopping the retries until 'a', RATE_LIMITED
# backing off 60 s. Neither the secret nor a key may appear in any log.
# (The same flow against the real EV_Central is cp_credentials.sh.)
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
tap_plan 37
K=127.0.0.1:$(free_port) # no broker: the engine's telemetry would just wait

# new_secret: 32 random bytes, base64url without padding (43 chars).
new_secret() { python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))'; }
new_key() { python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'; }
SECRET=$(new_secret)
CRED=$T_DIR/mad01.cred
printf '{"id":"MAD-01","secret":"%s"}\n' "$SECRET" >"$CRED"
chmod 600 "$CRED"
K1=$(new_key) K2=$(new_key)

# ---- arguments ----
"$EV_CP_M" 127.0.0.1:1 127.0.0.1:2 BCN-02 --credential "$CRED" --headless </dev/null >"$T_DIR/a.out" 2>"$T_DIR/a.err"
rc=$?
check "a credential for another CP -> exit 2 naming both ids" bash -c "[ $rc = 2 ] && grep -q 'credential .* is for CP MAD-01, not BCN-02' '$T_DIR/a.err'"
cp "$CRED" "$T_DIR/open.cred"; chmod 644 "$T_DIR/open.cred"
"$EV_CP_M" 127.0.0.1:1 127.0.0.1:2 MAD-01 --credential "$T_DIR/open.cred" --headless </dev/null >"$T_DIR/b.out" 2>"$T_DIR/b.err"
rc=$?
check "a credential file others can read -> exit 1 naming file and mode" bash -c "[ $rc = 1 ] && grep -q 'open.cred: mode 0644' '$T_DIR/b.err'"
check "and the secret is in no message" bash -c "! grep -qF '$SECRET' '$T_DIR/a.err' '$T_DIR/b.err' '$T_DIR/a.out' '$T_DIR/b.out'"

# ---- a scripted Central (cp_lib.sh) ----
cp_scripted_central central
C=$(log_of central)
cp_engine e1 --credential "$CRED" --auto-plug 0.2:60
E=$(log_of e1)
cp_monitor m1 MAD-01 --location "C/ Serrano 10" --price 0.25 --credential "$CRED"
M=$(log_of m1)
send central "accept 10"
check "the monitor says it is secured" wait_grep 5 "$M" '^[0-9T:.-]* Secured mode: credential '
check "REGISTER carries the secret as fifth field" wait_grep 10 "$C" "^RECV 1 REGISTER#MAD-01#C/ Serrano 10#0.25#$SECRET\$"
check "the event line shows the frame without it" wait_grep 5 "$M" '^[0-9T:.-]* REGISTER sent REGISTER#MAD-01#C/ Serrano 10#0\.25 \(\+ secret, not shown\)$'
send central "send REGISTER_RESULT#FIRST"
wait_grep 3 "$C" '^SENT 1 REGISTER_RESULT#FIRST$' >/dev/null
check "no HEARTBEAT before the KEY: not up yet" bash -c "! grep -q '^[0-9T:.-]* LINK central up' '$M'"
send central "send KEY#MAD-01#$K1"
check "KEY: the link is up (FIRST)" wait_grep 5 "$M" '^[0-9T:.-]* LINK central up \(FIRST\)$'
check "the monitor keeps the key" grep -q '^[0-9T:.-]* KEY received (new)$' "$M"
check "engine link: the challenge passed" wait_grep 5 "$E" '^[0-9T:.-]* ENGINE_AUTH_OK peer=127\.0\.0\.1:'
check "the monitor says its engine link is authenticated" wait_grep 5 "$M" '^[0-9T:.-]* LINK engine up \(authenticated\)$'
check "the key goes to the engine (SET_KEY, ACK)" wait_grep 5 "$E" '^[0-9T:.-]* KEY set$'
check "and the monitor sees the ACK" wait_grep 5 "$M" '^[0-9T:.-]* ENGINE key set$'
check "health checks flow after that: ACTIVADO, HEARTBEATs" bash -c "$(declare -f wait_for wait_grep); wait_grep 5 '$M' '^[0-9T:.-]* STATE ACTIVADO$' && wait_grep 5 '$C' '^RECV 1 HEARTBEAT#MAD-01$'"

# ---- REVOKED during a supply, then 'a' on the same link ----
send central "send AUTORIZAR_SUMINISTRO#101#S-REV#0.25"
check "a supply runs (relayed authorisation, auto-plug)" wait_grep 5 "$E" '^[0-9T:.-]* SUPPLY START driver=101 session=S-REV '
send central "send REVOKED#MAD-01"
check "REVOKED: Keys revoked shown" wait_grep 5 "$M" '^[0-9T:.-]* KEYS REVOKED by Central: Keys revoked'
check "the CP is FUERA_DE_SERVICIO on the monitor" wait_grep 5 "$M" '^[0-9T:.-]* STATE FUERA_DE_SERVICIO$'
check "no keys, no billing: the monitor stops the engine itself" wait_grep 5 "$E" '^[0-9T:.-]* STOPPED \(Out of Order\) reason=keys revoked$'
check "which ends the supply in progress" grep -q '^[0-9T:.-]* SUPPLY END driver=101 session=S-REV .*reason=stopped: keys revoked$' "$E"
send m1 status
check "status: key revoked" wait_grep 5 "$M" '^[0-9T:.-]* STATUS cp=MAD-01 state=FUERA_DE_SERVICIO central=up engine=up mode=secured key=revoked '
regs=$(count_grep "$C" '^RECV 1 REGISTER#')
send m1 a
check "a: REGISTER with the secret again, on the same link" wait_for 5 bash -c "[ \$(grep -c '^RECV 1 REGISTER#MAD-01#C/ Serrano 10#0.25#$SECRET\$' '$C') -gt $regs ]"
send central "send REGISTER_RESULT#RECONNECT"
send central "send KEY#MAD-01#$K2"
check "the new key restores the keys" wait_grep 5 "$M" '^[0-9T:.-]* REAUTH done: keys restored$'
check "the engine gets the new key at once" wait_grep 5 "$E" '^[0-9T:.-]* KEY replaced$'
check "and is resumed by the monitor" wait_grep 5 "$E" '^[0-9T:.-]* RESUMED$'
check "ACTIVADO again" wait_for 5 bash -c "grep '^[0-9T:.-]* STATE ' '$M' | tail -n 1 | grep -q '^[0-9T:.-]* STATE ACTIVADO$'"

# ---- the engine restarted: challenge and key again ----
stop e1 KILL
check "engine killed: FAULT to Central" wait_grep 5 "$C" '^RECV 1 FAULT#MAD-01#engine (unreachable|not answering)$'
cp_engine e2 --credential "$CRED"
E2=$(log_of e2)
check "the restarted engine gets the key again after the challenge" wait_grep 8 "$E2" '^[0-9T:.-]* KEY set$'
check "RECOVER to Central" wait_grep 5 "$C" '^RECV 1 RECOVER#MAD-01$'

# ---- an engine with another secret: refused, once in the log, FAULT ----
stop e2
OTHER=$T_DIR/other.cred
printf '{"id":"MAD-01","secret":"%s"}\n' "$(new_secret)" >"$OTHER"; chmod 600 "$OTHER"
cp_engine e3 --credential "$OTHER"
E3=$(log_of e3)
check "engine with another secret: it refuses the monitor" wait_grep 8 "$E3" '^[0-9T:.-]* ENGINE_AUTH_FAILED peer=127\.0\.0\.1:[0-9]+ reason=wrong answer to the challenge$'
check "the monitor says why" wait_grep 5 "$M" '^[0-9T:.-]* ERROR engine authentication failed: the engine refused our answer'
at_least() { [ "$(count_grep "$1" "$2")" -ge "$3" ]; }
if wait_for 10 at_least "$E3" '^[0-9T:.-]* ENGINE_AUTH_FAILED ' 3 && [ "$(count_grep "$M" '^[0-9T:.-]* ERROR engine authentication failed')" = 1 ]; then
	ok "once, however often it retries"; else not_ok "once, however often it retries"; fi
send m1 status
check "health KO with the reason" wait_grep 5 "$M" '^[0-9T:.-]* STATUS cp=MAD-01 .* health=KO reason=engine authentication failed$'
stop e3

# ---- BAD_CREDENTIALS stops the retries until 'a'; RATE_LIMITED backs off ----
send central eot
send central "accept 10"
wait_grep 10 "$C" '^RECV 2 REGISTER#' >/dev/null
send central "send REGISTER_RESULT#DENIED#BAD_CREDENTIALS"
send central eot
check "BAD_CREDENTIALS: shown, and no more retries" wait_grep 5 "$M" '^[0-9T:.-]* REGISTER STOPPED reason=BAD_CREDENTIALS: not retrying until the operator acts'
send central "accept 4"
check "no new connection in 4 s" wait_grep 8 "$C" '^NO_CONNECTION 4$'
send m1 a
send central "accept 10"
check "a: the credential is read again and the monitor retries" bash -c "$(declare -f wait_for wait_grep); wait_grep 5 '$M' '^[0-9T:.-]* REGISTER retry asked by the operator \(credential reloaded\)$' && wait_grep 10 '$C' '^RECV 3 REGISTER#'"
send central "send REGISTER_RESULT#DENIED#RATE_LIMITED"
send central eot
check "RATE_LIMITED: the next attempt waits at least 60 s" wait_grep 5 "$M" 'next attempt in (6[0-9]|7[0-9])\.[0-9] s'

check "neither the secret nor a key in any log" bash -c "! grep -qF -e '$SECRET' -e '$K1' -e '$K2' '$M' '$E' '$E2' '$E3'"
