//! The test PKI, made by the openssl CLI (an oracle independent of our own DER code):
//! `fixtures/make-pki.sh` (root, intermediate, leaves for every case, a CRL, OCSP responses,
//! signatures; see its header), plus [`SIGNERS`] (an ECDSA and an RSA signer and a TSA without
//! revocation sources, so that their signatures validate with no revocation data), and
//! self-signed certificates for one-off cases (TLS, a lone signer).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::run;

/// The script that builds the PKI into the directory given as its argument.
pub const MAKE_PKI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/make-pki.sh");

/// Signers and the TSA, issued by the fixture's intermediate CA (run in a directory
/// [`MAKE_PKI`] built): `signer-ec`, `signer-rsa`, `tsa` (`.key`, `.pem`, `.der`) and `ts.cnf`
/// for `openssl ts -reply`.
pub const SIGNERS: &str = r#"set -eu
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

/// Build the fixture PKI into `dir` (created; an existing one is replaced).
pub fn make_pki(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    run(Command::new("sh").arg(MAKE_PKI).arg(dir));
}

/// The fixture PKI with [`SIGNERS`], built once per test process.
pub fn shared() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cloudsign-test-pki-{}", std::process::id()));
        make_pki(&dir);
        run(Command::new("sh").arg("-c").arg(SIGNERS).current_dir(&dir));
        dir
    })
}

/// A file of the [`shared`] PKI.
pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(shared().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A self-signed ECDSA P-256 certificate for `subject` (`/CN=...`), valid `days`, with the
/// `-addext` extensions given, written as PEM to `cert` with its key in `key`.
pub fn self_signed_p256(key: &Path, cert: &Path, subject: &str, days: u32, extensions: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subject, "-days"]);
    cmd.arg(days.to_string());
    for e in extensions {
        cmd.args(["-addext", e]);
    }
    cmd.arg("-keyout").arg(key).arg("-out").arg(cert);
    run(&mut cmd);
}
