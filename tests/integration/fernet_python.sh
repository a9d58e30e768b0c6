#!/usr/bin/env bash
# Our Fernet against Python's cryptography.fernet (evcharging(7) SECURITY:
# Python must decrypt what the engine writes, Central must accept what
# Python writes). Python decrypts 50 tokens of ours (0 to 5000 bytes, UTF-8
# text and raw bytes), we decrypt 50 of Python's, and a tampered token, a
# wrong key and an expired token are refused by both.
. "$EVC_SRCDIR/tests/integration/lib.sh"

TOOL=$EVC_BUILDDIR/tests/tools/fernet_tool
# Debian's python3-cryptography first (EVC_PYTHON overrides): the one the
# network's own scripts get from scripts/setup.
PY=
for p in ${EVC_PYTHON:-} /usr/bin/python3 python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import cryptography.fernet' 2>/dev/null; then
		PY=$p
		break
	fi
done
[ -n "$PY" ] || tap_skip_all "python3-cryptography is not installed (apt-get install python3-cryptography)"

tap_plan 11
diag "$PY, cryptography $("$PY" -c 'import cryptography; print(cryptography.__version__)')"

# py_dec KEY TTL <token: the plaintext, or exit 1 ("InvalidToken" on stderr).
py_dec() {
	"$PY" -c '
import sys
from cryptography.fernet import Fernet, InvalidToken
key, ttl = sys.argv[1], int(sys.argv[2])
try:
    sys.stdout.buffer.write(Fernet(key.encode()).decrypt(sys.stdin.buffer.read().strip(), ttl=ttl or None))
except InvalidToken:
    print("InvalidToken", file=sys.stderr)
    sys.exit(1)' "$@"
}
# py_enc KEY [TIME] <plain: a token made at TIME (default now).
py_enc() {
	"$PY" -c '
import sys, time
from cryptography.fernet import Fernet
at = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
print(Fernet(sys.argv[1].encode()).encrypt_at_time(sys.stdin.buffer.read(), at).decode())' "$@"
}
# tamper FILE: the token in FILE with its middle character changed.
tamper() {
	local t m c r
	t=$(cat "$1")
	m=$((${#t} / 2))
	c=${t:m:1}
	r=A
	[ "$c" = A ] && r=B
	printf '%s\n' "${t:0:m}$r${t:m+1}"
}

D=$T_DIR
mkdir -p "$D/plain" "$D/ours" "$D/theirs" "$D/back"
KEY=$("$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
KEY2=$("$TOOL" key)

# 50 plaintexts: every length around the block and base64 boundaries plus
# random ones up to 5000 bytes; two in three are UTF-8 text (1 to 4 byte
# characters) of exactly that length, one in three raw bytes.
"$PY" - "$D/plain" <<'EOF'
import os, random, sys
d = sys.argv[1]
rng = random.Random(20251201)
lens = [0, 1, 2, 3, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 255, 256, 257,
        1023, 1024, 1025, 4095, 4096, 4097, 4999, 5000]
while len(lens) < 50:
    lens.append(rng.randint(0, 5000))
pieces = [p.encode() for p in ["a", "ñ", "€", "𝄞", "日本", '{"cp_id":"MAD-01","kw":7.4}', " ", "\n"]]
for i, n in enumerate(lens):
    if i % 3 == 2:
        data = bytes(rng.getrandbits(8) for _ in range(n))
    else:
        data = b""
        while len(data) < n:
            p = rng.choice(pieces)
            data += p if len(data) + len(p) <= n else b"x" * (n - len(data))
        data.decode("utf-8")
    assert len(data) == n
    with open(os.path.join(d, "%02d" % i), "wb") as f:
        f.write(data)
EOF
n_plain=$(ls "$D/plain" | wc -l)

# 1-3: ours -> Python
fails=0
for f in "$D"/plain/*; do
	"$TOOL" encrypt "$KEY" <"$f" >"$D/ours/${f##*/}" || fails=$((fails + 1))
done
check "our encryptor made $n_plain tokens (of 50)" [ "$fails" -eq 0 -a "$n_plain" -eq 50 ]
out=$("$PY" - "$KEY" "$D" <<'EOF'
import os, sys, time
from cryptography.fernet import Fernet
f, d, good = Fernet(sys.argv[1].encode()), sys.argv[2], 0
for name in sorted(os.listdir(d + "/plain")):
    want = open(d + "/plain/" + name, "rb").read()
    tok = open(d + "/ours/" + name, "rb").read().strip()
    try:
        got = f.decrypt(tok, ttl=60)
        age = time.time() - f.extract_timestamp(tok)
        if got == want and -5 < age < 60:
            good += 1
        else:
            print("# %s: %d bytes back of %d, age %.0f s" % (name, len(got), len(want), age))
    except Exception as e:
        print("# %s: %r" % (name, e))
print(good)
EOF
)
printf '%s\n' "$out" | grep '^#'
good=$(printf '%s\n' "$out" | tail -n 1)
check "Python decrypts $good of 50 of our tokens, with a TTL of 60 s and our time" [ "$good" = 50 ]

# 4-6: Python -> ours
fails=0
for f in "$D"/plain/*; do
	py_enc "$KEY" <"$f" >"$D/theirs/${f##*/}" || fails=$((fails + 1))
done
check "Python made 50 tokens" [ "$fails" -eq 0 ]
good=0
samelen=0
for f in "$D"/plain/*; do
	n=${f##*/}
	if "$TOOL" decrypt "$KEY" 60 <"$D/theirs/$n" >"$D/back/$n" 2>"$D/back/$n.err" && cmp -s "$f" "$D/back/$n"; then
		good=$((good + 1))
	else
		diag "$n: $(cat "$D/back/$n.err")"
	fi
	[ "$(wc -c <"$D/theirs/$n")" = "$(wc -c <"$D/ours/$n")" ] && samelen=$((samelen + 1))
done
check "we decrypt $good of 50 of Python's tokens to the same bytes" [ "$good" = 50 ]
check "our tokens are as long as Python's for all $samelen of 50 plaintexts" [ "$samelen" = 50 ]

# 7-8: tampered
tamper "$D/ours/40" >"$D/t_ours"
tamper "$D/theirs/40" >"$D/t_theirs"
if ! py_dec "$KEY" 0 <"$D/t_ours" >/dev/null 2>"$D/t_ours.err" && grep -q InvalidToken "$D/t_ours.err"; then
	ok "Python refuses a tampered token of ours"
else
	not_ok "Python refuses a tampered token of ours"
fi
if ! "$TOOL" decrypt "$KEY" <"$D/t_theirs" >/dev/null 2>"$D/t_theirs.err" &&
	grep -q "bad HMAC" "$D/t_theirs.err"; then
	ok "we refuse a tampered token of Python's ($(cat "$D/t_theirs.err"))"
else
	not_ok "we refuse a tampered token of Python's ($(cat "$D/t_theirs.err"))"
fi

# 9-10: wrong key (KEY2 is one of ours: Python takes it as a key)
if ! py_dec "$KEY2" 0 <"$D/ours/40" >/dev/null 2>"$D/k_ours.err" && grep -q InvalidToken "$D/k_ours.err"; then
	ok "Python refuses our token under another key"
else
	not_ok "Python refuses our token under another key"
fi
if ! "$TOOL" decrypt "$KEY2" <"$D/theirs/40" >/dev/null 2>"$D/k_theirs.err" &&
	grep -q "bad HMAC" "$D/k_theirs.err"; then
	ok "we refuse Python's token under another key ($(cat "$D/k_theirs.err"))"
else
	not_ok "we refuse Python's token under another key ($(cat "$D/k_theirs.err"))"
fi

# 11-12: expired (made 1000 s ago, TTL 60); without a TTL both still accept
# them, so it is the age that is refused.
old=$(($(date +%s) - 1000))
printf 'telemetry' | py_enc "$KEY2" "$old" >"$D/e_theirs"
printf 'telemetry' | "$TOOL" encrypt "$KEY2" "$old" >"$D/e_ours"
if ! "$TOOL" decrypt "$KEY2" 60 <"$D/e_theirs" >/dev/null 2>"$D/e_theirs.err" &&
	grep -q "expired" "$D/e_theirs.err" &&
	[ "$("$TOOL" decrypt "$KEY2" <"$D/e_theirs")" = telemetry ]; then
	ok "we refuse Python's token of 1000 s ago with a TTL of 60 s ($(cat "$D/e_theirs.err")), accept it without"
else
	not_ok "we refuse Python's token of 1000 s ago with a TTL of 60 s ($(cat "$D/e_theirs.err")), accept it without"
fi
if ! py_dec "$KEY2" 60 <"$D/e_ours" >/dev/null 2>"$D/e_ours.err" && grep -q InvalidToken "$D/e_ours.err" &&
	[ "$(py_dec "$KEY2" 0 <"$D/e_ours")" = telemetry ]; then
	ok "Python refuses our token of 1000 s ago with a TTL of 60 s, accepts it without"
else
	not_ok "Python refuses our token of 1000 s ago with a TTL of 60 s, accepts it without"
fi
