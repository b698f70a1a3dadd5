#!/usr/bin/env bash
# Validation benchmark (docs/performance.md): validations per second of a PAdES B-LT PDF by
# `cloudsign verify --offline` against `pyhanko sign validate` on the same file, in one run.
# Both run as one process per validation, as a user would run them; N rounds each (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-20}"
. scripts/bench-service.sh
"$bin" admin ca export | awk 'BEGIN{n=0} /BEGIN CERT/{n++} n==2{print}' > "$work/root.pem"
"$venv/bin/python" - "$work/doc.pdf" <<'PY'
import sys
objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"]
out = bytearray(b"%PDF-1.7\n"); offs = []
for i, o in enumerate(objects):
    offs.append(len(out)); out += b"%d 0 obj\n" % (i + 1) + o + b"\nendobj\n"
x = len(out)
out += b"xref\n0 4\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offs)
out += b"trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % x
open(sys.argv[1], "wb").write(out)
PY
CLOUDSIGN_PASSWORD="bench password" CLOUDSIGN_PIN=13572468 "$bin" sign "$work/doc.pdf" --service "$url" --user bench --credential "$cred" --level B-LT --out "$work/lt.pdf" 2>/dev/null
kill "$server"; server=""
"$bin" verify "$work/lt.pdf" --trust "$work/root.pem" --offline >/dev/null
"$venv/bin/pyhanko" sign validate --trust "$work/root.pem" --trust-replace "$work/lt.pdf" >/dev/null 2>&1 || true

time_runs() { local start end; start=$(date +%s.%N); for _ in $(seq 1 "$rounds"); do "$@" >/dev/null 2>&1 || true; done; end=$(date +%s.%N); echo "$start $end"; }
read -r a b <<<"$(time_runs "$bin" verify "$work/lt.pdf" --trust "$work/root.pem" --offline)"
read -r c d <<<"$(time_runs "$venv/bin/pyhanko" sign validate --trust "$work/root.pem" --trust-replace "$work/lt.pdf")"
awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v n="$rounds" 'BEGIN {
  cs = n / (b - a); ph = n / (d - c);
  printf "PAdES B-LT, %d validations each, one process per validation\n", n;
  printf "cloudsign verify --offline   %8.1f validations/s\n", cs;
  printf "pyhanko sign validate        %8.1f validations/s\n", ph;
  printf "ratio cloudsign/pyHanko: %.1f\n", cs / ph }'
