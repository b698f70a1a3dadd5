#!/usr/bin/env bash
# Device signature latency (issue 18): what a signature through the signer's own device adds
# over a signature in the service's HSM. One SoftHSM2 token is both: the HSM of an
# `--backend pkcs11` credential, and the "card" of a device credential served by the real
# bridge agent (`cloudsign device run`, answering "y" and the card PIN to every request, as a
# signer who approves at once would). The same client then times `signatures/signHash`
# (after its `credentials/authorize`, not timed) one request at a time on loopback, N times
# for each credential, alternating, and prints p50/p99 and the difference.
#
#   cargo build --release -p cloudsign && scripts/bench-device.sh [N]     # N: default 200
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/${CLOUDSIGN_BIN:-target/release/cloudsign}"
n="${1:-200}"
python="${CLOUDSIGN_PYTHON:-python3}"
module=/usr/lib/softhsm/libsofthsm2.so
for tool in softhsm2-util pkcs11-tool; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install softhsm2 opensc)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "no $bin: cargo build --release -p cloudsign" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/tokens"
export SOFTHSM2_CONF="$work/softhsm2.conf"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" > "$SOFTHSM2_CONF"
card_pin=123456
softhsm2-util --init-token --free --label bench --so-pin 12345678 --pin "$card_pin" >/dev/null
pkcs11-tool --module "$module" --token-label bench --login --pin "$card_pin" \
  --keypairgen --key-type EC:prime256v1 --label card-key --id 01 >/dev/null 2>&1

port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
cat > "$work/config.toml" <<TOML
data_dir = "$work/data"
listen = "127.0.0.1:$port"
public_url = "$url"
pkcs11_module = "$module"
pkcs11_token = "bench"
pkcs11_pin = "$card_pin"
log_requests = "off"

[device]
enabled = true
TOML
export CLOUDSIGN_CONFIG="$work/config.toml"
export CLOUDSIGN_LOG=warn
pin=4321
password=bench-password
"$bin" admin init >/dev/null
printf '%s\n' "$password" | "$bin" admin user add alice --password-stdin >/dev/null
hsm="$(printf '%s\n' "$pin" | "$bin" admin credential add --user alice --backend pkcs11 --scal 2 --pin-stdin --json \
  | "$python" -c 'import json,sys; print(json.load(sys.stdin)["credentialID"])')"
code="$(printf '%s\n' "$pin" | "$bin" admin device pair alice --pin-stdin --json \
  | "$python" -c 'import json,sys; print(json.load(sys.stdin)["pairingCode"])')"

"$bin" serve >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do "$python" -c "import urllib.request; urllib.request.urlopen('$url/csc/v2/info', data=b'{}')" 2>/dev/null && break; sleep 0.1; done

agent_dir="$work/agent"
device="$(printf '%s\ny\n%s\n' "$code" "$card_pin" | env -u CLOUDSIGN_CONFIG "$bin" device pair --service "$url" --code-stdin \
  --module "$module" --token bench --key-label card-key --name "bench card" --dir "$agent_dir" 2>"$work/pair.log")"
[ -n "$device" ] || { cat "$work/pair.log" >&2; exit 1; }
# The signer: "y" and the card PIN, for every request.
env -u CLOUDSIGN_CONFIG "$bin" device run --dir "$agent_dir" < <(while :; do printf 'y\n%s\n' "$card_pin"; done) >/dev/null 2>"$work/agent.log" &
pids+=($!)

"$python" - "$url" "$password" "$pin" "$n" "$hsm" "$device" <<'PY'
import base64, hashlib, http.client, json, sys, time, urllib.parse
url, password, pin, n, hsm, device = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
u = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(u.hostname, u.port)
def post(path, body, token=None, basic=None):
    headers = {"content-type": "application/json"}
    if token: headers["authorization"] = "Bearer " + token
    if basic: headers["authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    conn.request("POST", "/csc/v2/" + path, json.dumps(body), headers)
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"null")
s, v = post("auth/login", {}, basic="alice:" + password)
assert s == 200, v
token = v["access_token"]
SHA256 = "2.16.840.1.101.3.4.2.1"
def once(cred, i):
    digest = base64.b64encode(hashlib.sha256(b"%s %d" % (cred.encode(), i)).digest()).decode()
    for _ in range(100):
        s, v = post("credentials/authorize", {"credentialID": cred, "numSignatures": 1, "hashes": [digest],
            "hashAlgorithmOID": SHA256, "authData": [{"id": "PIN", "value": pin}]}, token)
        assert s == 200, v
        t = time.perf_counter()
        s, v = post("signatures/signHash", {"credentialID": cred, "SAD": v["SAD"], "hashes": [digest],
            "signAlgo": "1.2.840.10045.4.3.2", "hashAlgorithmOID": SHA256}, token)
        took = time.perf_counter() - t
        if s == 400 and "not connected" in v.get("error_description", ""):
            time.sleep(0.2)   # the agent's first poll is not in yet
            continue
        assert s == 200 and len(v["signatures"]) == 1, v
        return took * 1000
    raise SystemExit("the device never connected")
for warm in range(5):
    once(hsm, -1 - warm); once(device, -1 - warm)
times = {hsm: [], device: []}
for i in range(n):
    for cred in (hsm, device):
        times[cred].append(once(cred, i))
def q(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))]
h, d = times[hsm], times[device]
print(f"signHash, 1 hash, P-256 on one SoftHSM2 token, {n} sequential requests each, loopback")
print(f"{'credential':<28}{'p50 ms':>10}{'p99 ms':>10}")
print(f"{'HSM (--backend pkcs11)':<28}{q(h, .5):>10.2f}{q(h, .99):>10.2f}")
print(f"{'device (bridge agent)':<28}{q(d, .5):>10.2f}{q(d, .99):>10.2f}")
print(f"{'added by the device':<28}{q(d, .5) - q(h, .5):>10.2f}{q(d, .99) - q(h, .99):>10.2f}")
PY
