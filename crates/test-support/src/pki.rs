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

/// A P-256 CA and a leaf certificate it issued, made by openssl in `dir` (files `NAME-ca.pem`,
/// `NAME-ca.key`, `NAME-leaf.pem`, `NAME-leaf.key`): a PKI cloudsign has nothing to do with. The
/// leaf names no revocation source, so its signatures validate offline. Returns (CA, leaf, leaf
/// key).
pub fn ca_and_leaf(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    let ext = p("ext.cnf");
    std::fs::write(&ext, "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n[leaf]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n").unwrap();
    run(Command::new("openssl").args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"]).arg(p("ca.key")));
    run(Command::new("openssl")
        .args(["req", "-x509", "-new", "-key"])
        .arg(p("ca.key"))
        .args(["-subj", &format!("/CN={name} Test CA"), "-days", "30", "-extensions", "ca", "-config"])
        .arg(&ext)
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl").args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"]).arg(p("leaf.key")));
    run(Command::new("openssl")
        .args(["req", "-new", "-key"])
        .arg(p("leaf.key"))
        .args(["-subj", &format!("/CN={name} Signer"), "-out"])
        .arg(p("leaf.csr")));
    run(Command::new("openssl")
        .args(["x509", "-req", "-in"])
        .arg(p("leaf.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .args(["-CAcreateserial", "-days", "10", "-extensions", "leaf", "-extfile"])
        .arg(&ext)
        .arg("-out")
        .arg(p("leaf.pem")));
    (p("ca.pem"), p("leaf.pem"), p("leaf.key"))
}

/// A detached CMS signature (DER) of `data` by `leaf` with `key`, made by `openssl cms -sign`,
/// with the certificates of `certfile` (an intermediate, say) in it too.
pub fn cms_sign(data: &Path, (leaf, key): (&Path, &Path), certfile: Option<&Path>, out: &Path) {
    let mut cmd = Command::new("openssl");
    cmd.args(["cms", "-sign", "-binary", "-in"]).arg(data).arg("-signer").arg(leaf).arg("-inkey").arg(key);
    if let Some(certs) = certfile {
        cmd.arg("-certfile").arg(certs);
    }
    run(cmd.args(["-outform", "DER", "-out"]).arg(out));
}

/// A PEM certificate file as DER (`openssl x509 -outform DER`).
pub fn der(pem: &Path) -> Vec<u8> {
    run(Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(pem))
}
