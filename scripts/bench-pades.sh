#!/usr/bin/env bash
# PAdES benchmark (docs/performance.md): `cloudsign sign` of a 100 MB PDF through a running
# service (CSC v2, ECDSA P-256, level B-B) against pyHanko signing the same PDF with a local
# P-256 key, in one run: wall time and peak memory (max RSS) of each, and their ratios.
# Three alternating rounds; the median of each is reported.
#
#   scripts/bench-pades.sh            # needs the pinned virtualenv (scripts/test.sh makes it)
#   SIZE_MB=500 scripts/bench-pades.sh
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb="${SIZE_MB:-100}"
. scripts/bench-service.sh

# A one-page PDF whose page shows a size_mb image (random RGB pixels, uncompressed).
"$venv/bin/python" - "$work/big.pdf" "$size_mb" <<'EOF'
import os, sys
path, mb = sys.argv[1], int(sys.argv[2])
w = 4096
h = mb * 1024 * 1024 // (w * 3)
n = w * h * 3
out = open(path, "wb")
offsets = []
def obj(body):
    offsets.append(out.tell())
    out.write(b"%d 0 obj\n" % len(offsets) + body + b"\nendobj\n")
out.write(b"%PDF-1.7\n")
obj(b"<< /Type /Catalog /Pages 2 0 R >>")
obj(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
obj(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /XObject << /Im1 5 0 R >> >> >>")
content = b"q 595 0 0 842 0 0 cm /Im1 Do Q"
obj(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
offsets.append(out.tell())
out.write(b"5 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length %d >>\nstream\n" % (w, h, n))
chunk = os.urandom(1 << 20)
left = n
while left:
    k = min(left, len(chunk))
    out.write(chunk[:k])
    left -= k
out.write(b"\nendstream\nendobj\n")
xref = out.tell()
out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
for o in offsets:
    out.write(b"%010d 00000 n \n" % o)
out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref))
EOF
openssl ecparam -name prime256v1 -genkey -noout -out "$work/key.pem" 2>/dev/null
openssl req -x509 -new -key "$work/key.pem" -subj "/CN=pyHanko bench" -days 1 -out "$work/cert.pem" 2>/dev/null

measure() { # label, command...: prints "seconds kilobytes"
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$work/$label.time" "$@" >/dev/null 2>"$work/$label.err" || { cat "$work/$label.err" >&2; exit 1; }
  cat "$work/$label.time"
}
cs=(); ph=()
for round in 1 2 3; do
  rm -f "$work/cs.pdf" "$work/ph.pdf"
  cs+=("$(CLOUDSIGN_PASSWORD="bench password" CLOUDSIGN_PIN=13572468 measure cs "$bin" sign "$work/big.pdf" --service "$url" --user bench --credential "$cred" --level B-B --out "$work/cs.pdf")")
  ph+=("$(measure ph "$venv/bin/pyhanko" sign addsig --field Sig1 pemder --key "$work/key.pem" --cert "$work/cert.pem" --no-pass "$work/big.pdf" "$work/ph.pdf")")
done
# Both results are real signatures.
"$venv/bin/pyhanko" sign validate --trust "$work/cert.pem" --trust-replace "$work/ph.pdf" >/dev/null 2>&1 || true
pdfsig "$work/cs.pdf" | grep -q "Signature is Valid" || { echo "cloudsign's output did not validate" >&2; exit 1; }

median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
cs_s=$(median "$(echo "${cs[0]}" | cut -d' ' -f1)" "$(echo "${cs[1]}" | cut -d' ' -f1)" "$(echo "${cs[2]}" | cut -d' ' -f1)")
cs_k=$(median "$(echo "${cs[0]}" | cut -d' ' -f2)" "$(echo "${cs[1]}" | cut -d' ' -f2)" "$(echo "${cs[2]}" | cut -d' ' -f2)")
ph_s=$(median "$(echo "${ph[0]}" | cut -d' ' -f1)" "$(echo "${ph[1]}" | cut -d' ' -f1)" "$(echo "${ph[2]}" | cut -d' ' -f1)")
ph_k=$(median "$(echo "${ph[0]}" | cut -d' ' -f2)" "$(echo "${ph[1]}" | cut -d' ' -f2)" "$(echo "${ph[2]}" | cut -d' ' -f2)")
size=$(stat -c %s "$work/big.pdf")
echo "PDF: $((size / 1024 / 1024)) MiB, ECDSA P-256, PAdES B-B; median of 3 rounds (all: cloudsign ${cs[*]} | pyHanko ${ph[*]})"
printf '%-28s %10s %14s\n' "" "wall s" "peak RSS MiB"
printf '%-28s %10s %14s\n' "cloudsign sign (CSC v2)" "$cs_s" "$((cs_k / 1024))"
printf '%-28s %10s %14s\n' "pyHanko addsig (local key)" "$ph_s" "$((ph_k / 1024))"
awk -v a="$cs_s" -v b="$ph_s" -v c="$cs_k" -v d="$ph_k" 'BEGIN { printf "ratio cloudsign/pyHanko: time %.2f, memory %.2f\n", a / b, c / d }'
