#!/bin/bash
# The secured engine's and monitor's screens, for real (tmux), with a
# scripted Central (cp_lib.sh) that hands out a key and then revokes it:
# the headers say "secured", the engine shows whether it has a key, the
# monitor shows "Keys revoked" and its key bar offers 'a', and pressing a
# sends REGISTER again on the same link. Nothing secret is ever drawn.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
command -v tmux >/dev/null || tap_skip_all "tmux not installed"
tap_plan 10

SOCK="evc-cps-$$"
TM() { tmux -L "$SOCK" "$@"; }
t_screen_cleanup() { TM kill-server 2>/dev/null; t_cleanup; }
trap t_screen_cleanup EXIT
screen() { TM capture-pane -p -t "$1" 2>/dev/null; }
shows() { screen "$1" | grep -Eq -- "$2"; }
SECRET=$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
KEY=$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
CRED=$T_DIR/mad01.cred
printf '{"id":"MAD-01","secret":"%s"}\n' "$SECRET" >"$CRED"
chmod 600 "$CRED"
DEADK=127.0.0.1:$(free_port)

cp_scripted_central central
C=$(log_of central)
send central "accept 20"
TM -f /dev/null new-session -d -s e -x 110 -y 30 "$EV_CP_E $DEADK $CP_EPORT --credential $CRED"
TM new-session -d -s m -x 110 -y 30 "$EV_CP_M 127.0.0.1:$CP_EPORT 127.0.0.1:$CP_CPORT MAD-01 --credential $CRED"
check "engine header: secured, with the CP id from the credential" wait_for 10 bash -c "$(declare -f TM screen); SOCK=$SOCK; screen e | head -n 1 | grep -q 'EV_CP_E MAD-01  secured'"
check "engine screen: no key yet, no supply" wait_for 5 bash -c "$(declare -f TM screen shows); SOCK=$SOCK; shows e 'key none \(no supply\)'"
check "monitor header: secured" wait_for 10 bash -c "$(declare -f TM screen); SOCK=$SOCK; screen m | head -n 1 | grep -q 'EV_CP_M MAD-01  secured'"
check "monitor key bar offers a" wait_for 5 bash -c "$(declare -f TM screen shows); SOCK=$SOCK; shows m 'a re-authenticate / retry'"
wait_grep 10 "$C" '^RECV 1 REGISTER#' >/dev/null
send central "send REGISTER_RESULT#FIRST"
send central "send KEY#MAD-01#$KEY"
check "the key reaches the engine: 'key set' on its screen" wait_for 10 bash -c "$(declare -f TM screen shows); SOCK=$SOCK; shows e 'key set'"
check "monitor screen: Central up, ACTIVADO" wait_for 5 bash -c "$(declare -f TM screen shows); SOCK=$SOCK; shows m 'Central +up ' && shows m 'State +. ACTIVADO'"
send central "send REVOKED#MAD-01"
check "REVOKED: the monitor screen says Keys revoked and offers a" wait_for 5 bash -c "$(declare -f TM screen shows); SOCK=$SOCK; shows m 'Keys revoked \(a: re-authenticate\)'"
check "and shows FUERA_DE_SERVICIO" wait_for 5 bash -c "$(declare -f TM screen shows); SOCK=$SOCK; shows m 'State +. FUERA_DE_SERVICIO'"
TM send-keys -t m a
check "pressing a sends REGISTER again on the same link" wait_for 5 bash -c "[ \$(grep -c '^RECV 1 REGISTER#MAD-01#' '$C') = 2 ]"
check "neither the secret nor the key on either screen" bash -c "$(declare -f TM screen); SOCK=$SOCK; ! { screen e; screen m; } | grep -qF -e '$SECRET' -e '$KEY'"
