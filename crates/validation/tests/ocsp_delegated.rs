//! Delegated OCSP responders (RFC 6960 §4.2.2.2): responses made by `openssl ocsp -index …
//! -rsigner`, signed by a responder certificate the CA issued. The response is believed only
//! when the responder has id-kp-OCSPSigning and was issued by the certificate's CA, and its own
//! status is known not revoked (from the CA's CRL, or an OCSP response the CA signed) unless it
//! carries id-pkix-ocsp-nocheck (§4.2.2.2.1).

use std::path::PathBuf;
use std::process::Command;

use cloudsign_test_support::run;
use cloudsign_validation::revocation::{self, Options, RevocationStatus, Source};
use cloudsign_validation::x509::Certificate;

const SCRIPT: &str = r#"
set -e
cd "$1"
cat > ext.cnf <<'EOF'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[ee]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
crlDistributionPoints = URI:http://127.0.0.1:9/ca.crl
authorityInfoAccess = OCSP;URI:http://127.0.0.1:9/ocsp
[responder]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
crlDistributionPoints = URI:http://127.0.0.1:9/ca.crl
[responder_nocheck]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
[no_eku]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
noCheck = ignored
[ca_conf]
database = index.txt
default_md = sha256
EOF
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
ca() { key "$1"; openssl req -x509 -new -key "$1.key" -subj "/CN=$1" -days 30 -extensions ca -config ext.cnf -out "$1.pem" 2>/dev/null; }
cert() { # name issuer section
  key "$1"
  openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 10 -extfile ext.cnf -extensions "$3" -out "$1.pem" 2>/dev/null
}
ca ca; ca other-ca
cert ee ca ee
cert responder ca responder
cert responder-nocheck ca responder_nocheck
cert responder-no-eku ca no_eku
cert foreign-responder other-ca responder_nocheck
serial() { openssl x509 -in "$1.pem" -noout -serial | cut -d= -f2; }
exp=$(date -u -d '+10 days' +%y%m%d%H%M%SZ)
printf 'V\t%s\t\t%s\tunknown\t/CN=ee\n' "$exp" "$(serial ee)" > index.txt
# The CA's CRLs: one that does not list the responder, one that does (revoked a day ago). Made
# before the OCSP responses: the responder's status is checked at their producedAt with data
# current then (default options), which a CRL issued a second later is not.
: > crl-index.txt
openssl ca -gencrl -keyfile ca.key -cert ca.pem -config <(printf '[ca]\ndefault_ca=c\n[c]\ndatabase=crl-index.txt\ndefault_md=sha256\ndefault_crl_days=1\n') -out good.crl.pem 2>/dev/null
printf 'R\t%s\t%s\t%s\tunknown\t/CN=responder\n' "$exp" "$(date -u -d '-1 day' +%y%m%d%H%M%SZ)" "$(serial responder)" > crl-index.txt
openssl ca -gencrl -keyfile ca.key -cert ca.pem -config <(printf '[ca]\ndefault_ca=c\n[c]\ndatabase=crl-index.txt\ndefault_md=sha256\ndefault_crl_days=1\n') -out revoked.crl.pem 2>/dev/null
for c in good revoked; do openssl crl -in $c.crl.pem -outform DER -out $c.crl; done
openssl ocsp -issuer ca.pem -cert ee.pem -no_nonce -reqout req.der
for r in responder responder-nocheck responder-no-eku foreign-responder; do
  openssl ocsp -index index.txt -rsigner "$r.pem" -rkey "$r.key" -CA ca.pem -reqin req.der -ndays 1 -respout "$r.ocsp" >/dev/null 2>&1
done
"#;

struct Pki(PathBuf);

impl Pki {
    fn new() -> Pki {
        // A fresh directory: a stale one (a reused process id) would hand openssl an old CA
        // database and serial file.
        let dir = std::env::temp_dir().join(cloudsign_test_support::unique("cloudsign-ocsp-delegated-"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("bash").arg("-c").arg(SCRIPT).arg("make").arg(&dir));
        Pki(dir)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.0.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn cert(&self, name: &str) -> Certificate {
        let pem = String::from_utf8(self.read(&format!("{name}.pem"))).unwrap();
        Certificate::parse_pem_all(&pem).unwrap().remove(0)
    }

    /// The status of `ee` from the response `responder` made and the CRLs given, and why the
    /// data not used was not.
    fn status(&self, responder: &str, crls: &[&str]) -> (RevocationStatus, Vec<String>) {
        let crls: Vec<Vec<u8>> = crls.iter().map(|c| self.read(c)).collect();
        let ocsps = vec![self.read(&format!("{responder}.ocsp"))];
        let now = cloudsign_test_support::now();
        let outcome = revocation::check(&self.cert("ee"), &self.cert("ca"), &ocsps, &crls, now, Source::Embedded, &Options::default());
        (outcome.status, outcome.notes)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_good_ocsp(s: &RevocationStatus) -> bool {
    matches!(s, RevocationStatus::Good { produced_by: "OCSP", .. })
}

#[test]
fn delegated_responders() {
    let pki = Pki::new();

    // id-kp-OCSPSigning and id-pkix-ocsp-nocheck: believed without more.
    let (status, notes) = pki.status("responder-nocheck", &[]);
    assert!(is_good_ocsp(&status), "{status:?} {notes:?}");

    // No nocheck: its own status is needed. Nothing about it: the response is not used.
    let (status, notes) = pki.status("responder", &[]);
    assert_eq!(status, RevocationStatus::Unknown, "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("no revocation status for the delegated responder CN=responder")), "{notes:?}");

    // The CA's CRL, not listing it: used. (The CRL then also answers for ee, but OCSP is
    // preferred, so a good OCSP status shows the response was used.)
    let (status, notes) = pki.status("responder", &["good.crl"]);
    assert!(is_good_ocsp(&status), "{status:?} {notes:?}");

    // The CA's CRL listing it as revoked a day ago: the response is not used (the CRL still
    // says ee is good).
    let (status, notes) = pki.status("responder", &["revoked.crl"]);
    assert!(matches!(status, RevocationStatus::Good { produced_by: "CRL", .. }), "{status:?} {notes:?}");
    assert!(notes.iter().any(|n| n.contains("delegated responder CN=responder was revoked")), "{notes:?}");

    // Without id-kp-OCSPSigning, or issued by another CA: not authorised.
    for responder in ["responder-no-eku", "foreign-responder"] {
        let (status, notes) = pki.status(responder, &[]);
        assert_eq!(status, RevocationStatus::Unknown, "{responder}: {notes:?}");
        assert!(notes.iter().any(|n| n.to_lowercase().contains("responder")), "{responder}: {notes:?}");
    }
}
