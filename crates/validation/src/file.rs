//! What `cloudsign verify` and the API hand in: a signed PDF, or a CMS signature (attached, or
//! detached with its content), recognised by its first bytes.

use std::io::{Read, Seek};
use std::path::Path;

use cloudsign_csc::HashAlgorithm;

use crate::engine::{self, Context, SignatureReport};
use crate::path::TrustAnchors;

/// Revocation data fetched for this validation (OCSP responses, CRLs).
#[derive(Default)]
pub struct Fetched {
    /// OCSP responses.
    pub ocsps: Vec<Vec<u8>>,
    /// CRLs.
    pub crls: Vec<Vec<u8>>,
}

/// Validate every signature in `file` (a PDF, or a DER/PEM CMS with `detached` content).
pub fn validate_file(
    file: &Path,
    detached: Option<&Path>,
    anchors: &TrustAnchors,
    now: i64,
    fetched: &Fetched,
) -> Result<Vec<SignatureReport>, String> {
    let mut f = std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let mut head = [0u8; 5];
    let n = f.read(&mut head).map_err(|e| e.to_string())?;
    f.rewind().map_err(|e| e.to_string())?;
    if head[..n].starts_with(b"%PDF-") {
        return crate::pades::validate(f, anchors, now, (&fetched.ocsps, &fetched.crls));
    }
    let cms = read_cms(file)?;
    let ctx = Context {
        anchors,
        embedded_certificates: &[],
        embedded_crls: &[],
        embedded_ocsps: &[],
        fetched_ocsps: &fetched.ocsps,
        fetched_crls: &fetched.crls,
        now,
        archive_times: &[],
    };
    let content = |hash: HashAlgorithm| detached.and_then(|d| digest_file(d, hash));
    if detached.is_some() && content(HashAlgorithm::Sha256).is_none() {
        return Err(format!("cannot read {}", detached.map(|d| d.display().to_string()).unwrap_or_default()));
    }
    Ok(vec![engine::validate_cms("signature 1".into(), "CAdES", &cms, &content, None, &ctx)])
}

/// The certificates a file's signatures carry (CMS certificates and a PDF's DSS): what an online
/// revocation check asks about.
pub fn certificates_in(file: &Path) -> Vec<Vec<u8>> {
    let Ok(bytes) = std::fs::read(file) else { return Vec::new() };
    if bytes.starts_with(b"%PDF-") {
        return crate::pades::certificates(std::io::Cursor::new(bytes));
    }
    let Ok(cms) = read_cms(file) else { return Vec::new() };
    let Ok(sd) = crate::cms::parse(&cms) else { return Vec::new() };
    let mut out = sd.certificates.clone();
    // The signature time-stamp's TSA certificates too.
    for si in &sd.signers {
        for token in si.unsigned(cloudsign_pki::cms::ID_SIGNATURE_TIME_STAMP) {
            out.extend(cloudsign_pki::x509::cms_certificates(token));
        }
    }
    out
}

/// DER, or PEM (`-----BEGIN PKCS7-----` / `CMS`).
fn read_cms(file: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if bytes.first() == Some(&0x30) {
        return Ok(bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    cloudsign_csc::b64::decode_lenient(body.trim())
        .filter(|d| d.first() == Some(&0x30))
        .ok_or_else(|| format!("{} is neither a PDF nor a CMS signature", file.display()))
}

fn digest_file(path: &Path, hash: HashAlgorithm) -> Option<Vec<u8>> {
    use aws_lc_rs::digest as d;
    let alg = match hash {
        HashAlgorithm::Sha256 => &d::SHA256,
        HashAlgorithm::Sha384 => &d::SHA384,
        HashAlgorithm::Sha512 => &d::SHA512,
    };
    let mut f = std::fs::File::open(path).ok()?;
    let mut ctx = d::Context::new(alg);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Some(ctx.finish().as_ref().to_vec())
}
