#!/usr/bin/env bash
# The test command (README "Run the tests"): installs what the tests need when it is missing,
# makes sure PostgreSQL runs on 127.0.0.1:5432, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v oathtool >/dev/null || need_apt+=(oathtool)           # independent RFC 6238 implementation
command -v psql >/dev/null || need_apt+=(postgresql-client)      # creates and drops per-test databases
command -v pg_isready >/dev/null || need_apt+=(postgresql-client)
command -v pdfsig >/dev/null || need_apt+=(poppler-utils)        # PDF signature validator (pyHanko interop test)
command -v certutil >/dev/null || need_apt+=(libnss3-tools)      # NSS trust store for pdfsig
command -v xmlsec1 >/dev/null || need_apt+=(xmlsec1)             # XMLDSig/XAdES validator
command -v xmllint >/dev/null || need_apt+=(libxml2-utils)       # exclusive C14N oracle
command -v qpdf >/dev/null || need_apt+=(qpdf)                   # PDF structure check of incremental updates
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)             # audit tampering and PRAGMA integrity_check (audit_chain, crash)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)                 # real browser on the consent pages
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v softhsm2-util >/dev/null || need_apt+=(softhsm2)      # PKCS#11 token for the HSM backend tests
command -v pkcs11-tool >/dev/null || need_apt+=(opensc)          # independent PKCS#11 client (object attributes)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# PostgreSQL: the machines run a cluster on 127.0.0.1:5432 with trust auth; start it if it stopped.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

# A pinned virtualenv with pyHanko, the independent CSC client and PDF/CMS validator.
venv="${CLOUDSIGN_VENV:-$PWD/.venv}"
requirements=crates/cli/tests/interop/requirements.txt
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "creating the pinned virtualenv in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi
export CLOUDSIGN_PYTHON="$venv/bin/python"

# playwright-core (pinned by package-lock.json) drives Debian's Chromium; it downloads no browser.
browser=interop/browser
if [ ! -d "$browser/node_modules/playwright-core" ] || [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
  echo "installing playwright-core in $browser"
  (cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

cargo test --workspace --locked "$@"
