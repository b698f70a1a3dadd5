//! The test PKI the interop tests share: `tests/fixtures/make-pki.sh` plus an ECDSA and an RSA
//! signer and a TSA without revocation sources (so validation needs no revocation data), built
//! once per test binary, and the helpers to run the other tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Signers and the TSA, issued by the fixture's intermediate CA.
pub const EXTRA: &str = r#"set -eu
export OPENSSL_CONF=/dev/null
cat > plain.cnf <<'CNF'
[plain]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[tsa]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
mk() {
  openssl genpkey -algorithm "$2" -pkeyopt "$3" -out "$1.key" 2>/dev/null
  openssl req -new -key "$1.key" -subj "$4" -config ext.cnf -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA inter.pem -CAkey inter.key -set_serial "$5" -days 365 -sha384 -extfile plain.cnf -extensions "$6" -out "$1.pem" 2>/dev/null
  openssl x509 -in "$1.pem" -outform DER -out "$1.der"
}
mk signer-ec EC ec_paramgen_curve:P-256 "/O=cloudsign/CN=xml signer ec" 100 plain
mk signer-rsa RSA rsa_keygen_bits:2048 "/O=cloudsign/CN=xml signer rsa" 101 plain
mk tsa EC ec_paramgen_curve:P-256 "/O=cloudsign/CN=Test TSA" 102 tsa
cat > ts.cnf <<'CNF'
[tsa]
default_tsa = tsa1
[tsa1]
serial = ./tsaserial
crypto_device = builtin
signer_cert = ./tsa.pem
signer_key = ./tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ess_cert_id_alg = sha256
ess_cert_id_chain = no
CNF
echo 01 > tsaserial
"#;

/// The PKI directory, built once per test process.
pub fn pki() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cloudsign-{}-{}", env!("CARGO_CRATE_NAME"), std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/make-pki.sh");
        run(Command::new("sh").arg(script).arg(&dir));
        run(Command::new("sh").arg("-c").arg(EXTRA).current_dir(&dir));
        dir
    })
}

pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(pki().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The pinned virtualenv's python (`CLOUDSIGN_PYTHON`, as scripts/test.sh sets it; else the
/// repository's `.venv`).
pub fn python(code: &str) -> Vec<u8> {
    let py =
        std::env::var("CLOUDSIGN_PYTHON").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python").to_string());
    run(Command::new(py).arg("-c").arg(code).current_dir(pki()))
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
