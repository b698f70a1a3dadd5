# Shared by the bench-*.sh scripts (sourced, not run): a release build, a throw-away data
# directory, a running `cloudsign serve` on a free loopback port, a user `bench` (password
# "bench password") with a P-256 SCAL 1 credential (PIN 13572468). Sets: venv, bin, work, url,
# cred, server (killed, and work removed, on exit).
venv="${CLOUDSIGN_VENV:-$PWD/.venv}"
[ -x "$venv/bin/pyhanko" ] || { echo "no pyHanko in $venv: run scripts/test.sh first" >&2; exit 1; }
cargo build --release -q -p cloudsign
bin="$PWD/target/release/cloudsign"
work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

export CLOUDSIGN_DATA_DIR="$work/data" CLOUDSIGN_LOG=warn
"$bin" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/^cloudsign listening on //p' "$work/serve.out")"
echo "bench password" | "$bin" admin user add bench --password-stdin >/dev/null
cred="$(echo 13572468 | "$bin" admin credential add --user bench --pin-stdin --key ecdsa-p256 --scal 1 --json | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["credentialID"])')"
