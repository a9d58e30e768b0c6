#!/bin/bash
# Encrypted telemetry (evcharging(7) SECURITY), with the real engine and
# the real broker: an engine with a credential and a key set over SET_KEY
# supplies (--auto-plug); every message it wrote to cp_telemetry is the
# envelope {"cp_id","encrypted":true,"ciphertext"} whose Fernet token
# Python's cryptography.fernet decrypts with that key, each plaintext being
# the Release-1 message (same fields, in the same order, as a Release-1
# engine writes them); no plaintext carries the session id. Then the key
# is replaced (as after a revocation): the next supply is sealed with the
# new key at once and the old key opens none of it.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
need_kafka
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
python3 -c 'import cryptography.fernet' 2>/dev/null || tap_skip_all "python3-cryptography not installed"
tap_plan 17

SECRET=$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
export SECRET CPID=MAD-01
CRED=$T_DIR/mad01.cred
printf '{"id":"MAD-01","secret":"%s"}\n' "$SECRET" >"$CRED"
chmod 600 "$CRED"
K1=$(python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
K2=$(python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
S1="MAD-01-$(date +%s%N)-1" S2="MAD-01-$(date +%s%N)-2" S3="BCN-02-$(date +%s%N)-3"
TOPIC=$(topic cp_telemetry)

cp_engine e1 --credential "$CRED" --auto-plug 0.3:3.2 --power 50
E=$(log_of e1)
r=$(eng_script "$CP_EPORT" HELLO#MAD-01 AUTH! "SET_KEY#$K1" "AUTORIZAR_SUMINISTRO#101#$S1#0.25")
diag "$r"
check "authenticated client sets the key and authorises" [ "$(echo "$r" | tail -n 2 | tr '\n' ' ')" = "RECV ACK#SET_KEY RECV ACK#AUTORIZAR_SUMINISTRO " ]
check "the engine supplies with its key (auto-plug)" wait_grep 5 "$E" "^[0-9T:.-]* SUPPLY START driver=101 session=$S1 "
check "and unplugs: SUPPLY END" wait_grep 10 "$E" "^[0-9T:.-]* SUPPLY END driver=101 session=$S1 .*reason=unplugged$"

# A Release-1 engine on the same topic, for the plaintext it writes.
EP2=$(free_port)
start e2 "$EV_CP_E" "$K" "$EP2" --headless --auto-plug 0.3:2.2 --power 50
E2=$(log_of e2)
wait_grep 10 "$E2" '^[0-9T:.-]* START port=' >/dev/null
eng_script "$EP2" HELLO#BCN-02 HEALTH_CHECK#BCN-02 "AUTORIZAR_SUMINISTRO#102#$S3#0.25" >/dev/null
wait_grep 10 "$E2" "^[0-9T:.-]* SUPPLY END driver=102 session=$S3 .*reason=unplugged$" >/dev/null

# The key replaced: the next supply is sealed with the new one at once.
r=$(eng_script "$CP_EPORT" HELLO#MAD-01 AUTH! "SET_KEY#$K2" "AUTORIZAR_SUMINISTRO#101#$S2#0.25")
check "a new key replaces the old one" bash -c "$(declare -f wait_for wait_grep); echo '$r' | grep -q '^RECV ACK#SET_KEY$' && wait_grep 5 '$E' '^[0-9T:.-]* KEY replaced$'"
check "second supply ends" wait_grep 10 "$E" "^[0-9T:.-]* SUPPLY END driver=101 session=$S2 .*reason=unplugged$"
n1=$(grep -c "^[0-9T:.-]* CONSUMO " "$E")

# everything on the topic: "key<TAB>value" per message
msgs() { kcat -b "$K" -C -t "$TOPIC" -o beginning -e -q -f '%k\t%s\n' 2>/dev/null; }
want=$((n1 + 4)) # SESSION_STARTED + SUPPLY_END for each of the two supplies
check "all $want messages of MAD-01 are on the topic" wait_for 20 bash -c "$(declare -f msgs); K='$K' TOPIC='$TOPIC'; [ \$(msgs | grep -c '^MAD-01	') -ge $want ]"
msgs >"$T_DIR/topic.txt"
diag "$(wc -l <"$T_DIR/topic.txt") messages on $TOPIC"

r=$(python3 - "$T_DIR/topic.txt" "$K1" "$K2" "$S1" "$S2" "$S3" <<'PY'
import base64, json, sys, time
from cryptography.fernet import Fernet, InvalidToken
path, k1, k2, s1, s2, s3 = sys.argv[1:]
f1, f2 = Fernet(k1.encode()), Fernet(k2.encode())
env_ok = True; plain_by_session = {s1: [], s2: []}; r1 = []
wrong_key = 0; under = {s1: set(), s2: set()}; ivs = set(); ts_ok = True; n_tokens = 0
now = time.time()
for line in open(path, encoding="utf-8"):
    key, _, value = line.rstrip("\n").partition("\t")
    o = json.loads(value)
    if key == "BCN-02":
        r1.append(o); continue
    if key != "MAD-01": continue
    if list(o.keys()) != ["cp_id", "encrypted", "ciphertext"] or o["cp_id"] != "MAD-01" or o["encrypted"] is not True:
        env_ok = False; print("bad envelope", value); continue
    tok = o["ciphertext"].encode(); n_tokens += 1
    raw = base64.urlsafe_b64decode(tok); ivs.add(raw[9:25])
    if abs(int.from_bytes(raw[1:9], "big") - now) > 120: ts_ok = False
    for name, f in (("k1", f1), ("k2", f2)):
        try:
            p = f.decrypt(tok)
        except InvalidToken:
            continue
        m = json.loads(p)
        if m.get("session_id") in plain_by_session:
            plain_by_session[m["session_id"]].append((m, p))
            under[m["session_id"]].add(name)
        break
    else:
        wrong_key += 1
def shape(ms):
    return {m["type"]: list(m.keys()) for m in ms}
p1 = [m for m, _ in plain_by_session[s1]]; p2 = [m for m, _ in plain_by_session[s2]]
print("envelopes", "ok" if env_ok and n_tokens > 0 else "bad", n_tokens)
print("undecryptable", wrong_key)
print("s1 keys", ",".join(sorted(under[s1])) or "-", "s2 keys", ",".join(sorted(under[s2])) or "-")
seq1 = [m["seq"] for m in p1]
print("s1 seq", "ok" if seq1 == list(range(1, len(seq1) + 1)) and len(seq1) >= 4 else "bad %r" % seq1,
      "types", p1[0]["type"] if p1 else "-", p1[-1]["type"] if p1 else "-")
inner_ok = all(m["cp_id"] == "MAD-01" and m["user_id"] == "101" for m in p1 + p2)
print("inner cp_id and user", "ok" if inner_ok and p2 else "bad")
r1_shape = shape(r1); r2_shape = shape(p1)
same = bool(r1_shape) and all(r2_shape.get(t) == fields for t, fields in r1_shape.items()) and set(r1_shape) == set(r2_shape)
print("release-1 shape", "same" if same else "differs %r vs %r" % (r1_shape, r2_shape))
print("ivs", "distinct" if len(ivs) == n_tokens else "repeated")
print("timestamps", "now" if ts_ok else "off")
PY
)
diag "$r"
check "every MAD-01 message is the envelope {cp_id, encrypted:true, ciphertext}" bash -c "echo '$r' | grep -q '^envelopes ok '"
check "Python's Fernet decrypts every one of them with the key in force" bash -c "echo '$r' | grep -q '^undecryptable 0$'"
check "first supply sealed with the first key only, second with the new key only" bash -c "echo '$r' | grep -q '^s1 keys k1 s2 keys k2$'"
check "plaintexts: seq 1, 2, 3... from SESSION_STARTED to SUPPLY_END" bash -c "echo '$r' | grep -q '^s1 seq ok types SESSION_STARTED SUPPLY_END$'"
check "inside, the same cp_id as outside and the driver" bash -c "echo '$r' | grep -q '^inner cp_id and user ok$'"
check "each plaintext is the Release-1 message: same fields in the same order per type" bash -c "echo '$r' | grep -q '^release-1 shape same$'"
check "a fresh random IV in every token" bash -c "echo '$r' | grep -q '^ivs distinct$'"
check "token time is the wall clock" bash -c "echo '$r' | grep -q '^timestamps now$'"
check "no plaintext on the topic carries either session id" bash -c "! grep -qF -e '$S1' -e '$S2' '$T_DIR/topic.txt'"
check "the Release-1 engine's session is there in plaintext (the check above can fail)" grep -qF "$S3" "$T_DIR/topic.txt"
check "no key in the engine's output" bash -c "! grep -qF -e '$K1' -e '$K2' -e '$SECRET' '$E'"
