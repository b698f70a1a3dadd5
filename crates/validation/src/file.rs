//! What `cloudsign verify` and the validation API hand in: a signed PDF, XML (XAdES), JWS
//! (JAdES) or CMS signature (CAdES, attached or detached with its content), recognised by its
//! first bytes; the policy's constraints are applied to every report.

use std::io::{Read, Seek};
use std::path::Path;

use cloudsign_asn1::HashAlgorithm;

use crate::engine::{self, Context, SignatureReport};
use crate::path::TrustAnchors;
use crate::policy::Policy;

/// Revocation data fetched for this validation (OCSP responses, CRLs).
#[derive(Default)]
pub struct Fetched {
    /// OCSP responses.
    pub ocsps: Vec<Vec<u8>>,
    /// CRLs.
    pub crls: Vec<Vec<u8>>,
}

/// What a validation runs with.
pub struct Inputs<'a> {
    /// Trust anchors (the caller's and the policy's).
    pub anchors: &'a TrustAnchors,
    /// The policy.
    pub policy: &'a Policy,
    /// Revocation data fetched online.
    pub fetched: &'a Fetched,
    /// The current time.
    pub now: i64,
}

impl Inputs<'_> {
    fn context(&self) -> Context<'_> {
        Context {
            anchors: self.anchors,
            embedded_certificates: &[],
            embedded_crls: &[],
            embedded_ocsps: &[],
            fetched_ocsps: &self.fetched.ocsps,
            fetched_crls: &self.fetched.crls,
            now: self.now,
            archive_times: &[],
            max_revocation_age: self.policy.max_revocation_age(),
        }
    }
}

/// The kinds of signed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A PDF.
    Pdf,
    /// XML.
    Xml,
    /// A JWS (compact or JSON).
    Jws,
    /// A CMS signature (DER or PEM).
    Cms,
}

/// Recognise the input by its first bytes.
pub fn kind_of(head: &[u8]) -> Option<Kind> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let text: Vec<u8> = head.iter().skip_while(|b| b.is_ascii_whitespace()).copied().take(16).collect();
    if head.starts_with(b"%PDF-") {
        Some(Kind::Pdf)
    } else if head.first() == Some(&0x30) || text.starts_with(b"-----BEGIN") {
        Some(Kind::Cms)
    } else if text.starts_with(b"<") {
        Some(Kind::Xml)
    } else if text.starts_with(b"{") || text.starts_with(b"eyJ") {
        Some(Kind::Jws)
    } else {
        None
    }
}

fn unknown_kind() -> String {
    "the input is neither a PDF, XML, a JWS nor a CMS signature".into()
}

/// Validate every signature in `file`, with `detached` content for a detached signature. PDFs
/// and detached content are read as they are needed, never whole.
pub fn validate_file(file: &Path, detached: Option<&Path>, inputs: &Inputs<'_>) -> Result<Vec<SignatureReport>, String> {
    let mut f = std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let mut head = vec![0u8; 64];
    let n = f.read(&mut head).map_err(|e| e.to_string())?;
    head.truncate(n);
    f.rewind().map_err(|e| e.to_string())?;
    let kind = kind_of(&head).ok_or_else(|| format!("{}: {}", file.display(), unknown_kind()))?;
    let mut reports = match kind {
        Kind::Pdf => pdf(f, inputs)?,
        Kind::Cms => {
            let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if let Some(d) = detached {
                std::fs::metadata(d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
            }
            cms(&bytes, &|hash| detached.and_then(|d| digest_reader(std::fs::File::open(d).ok()?, hash)), inputs)?
        }
        Kind::Xml | Kind::Jws => {
            let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let content = detached.map(|d| std::fs::read(d).map_err(|e| format!("cannot read {}: {e}", d.display()))).transpose()?;
            other(kind, &bytes, content.as_deref(), inputs)?
        }
    };
    for r in &mut reports {
        inputs.policy.apply(r, inputs.now);
        r.complete_checks();
    }
    Ok(reports)
}

/// The same for bytes in memory (the HTTP API).
pub fn validate_bytes(bytes: &[u8], detached: Option<&[u8]>, inputs: &Inputs<'_>) -> Result<Vec<SignatureReport>, String> {
    let kind = kind_of(bytes.get(..64).unwrap_or(bytes)).ok_or_else(unknown_kind)?;
    let mut reports = match kind {
        Kind::Pdf => pdf(std::io::Cursor::new(bytes), inputs)?,
        Kind::Cms => cms(bytes, &|hash| detached.and_then(|d| digest_reader(d, hash)), inputs)?,
        Kind::Xml | Kind::Jws => other(kind, bytes, detached, inputs)?,
    };
    for r in &mut reports {
        inputs.policy.apply(r, inputs.now);
        r.complete_checks();
    }
    Ok(reports)
}

fn pdf<F: Read + Seek>(f: F, inputs: &Inputs<'_>) -> Result<Vec<SignatureReport>, String> {
    crate::pades::validate(f, inputs.anchors, inputs.now, (&inputs.fetched.ocsps, &inputs.fetched.crls), inputs.policy.max_revocation_age())
}

fn cms(bytes: &[u8], content: &dyn Fn(HashAlgorithm) -> Option<Vec<u8>>, inputs: &Inputs<'_>) -> Result<Vec<SignatureReport>, String> {
    let der = cms_der(bytes)?;
    Ok(vec![engine::validate_cms("signature 1".into(), "CAdES", &der, content, None, &inputs.context())])
}

fn other(kind: Kind, bytes: &[u8], detached: Option<&[u8]>, inputs: &Inputs<'_>) -> Result<Vec<SignatureReport>, String> {
    let ctx = inputs.context();
    Ok(match kind {
        Kind::Xml => crate::xades::validate_xades(bytes, detached, &ctx),
        _ => crate::jades::validate_jades(bytes, detached, &ctx),
    })
}

/// The certificates a file's signatures carry (CMS certificates and a PDF's DSS): what an online
/// revocation check asks about.
pub fn certificates_in(file: &Path) -> Vec<Vec<u8>> {
    let Ok(bytes) = std::fs::read(file) else { return Vec::new() };
    certificates_in_bytes(&bytes)
}

/// The same for bytes in memory.
pub fn certificates_in_bytes(bytes: &[u8]) -> Vec<Vec<u8>> {
    match kind_of(bytes.get(..64).unwrap_or(bytes)) {
        Some(Kind::Pdf) => crate::pades::certificates(std::io::Cursor::new(bytes)),
        Some(Kind::Cms) => {
            let Ok(der) = cms_der(bytes) else { return Vec::new() };
            let Ok(sd) = crate::cms::parse(&der) else { return Vec::new() };
            let mut out = sd.certificates.clone();
            // The TSA certificates of the signature and archive time-stamps too: their status
            // is checked like the signer's.
            for si in &sd.signers {
                let tokens = si.unsigned(cloudsign_pki::cms::ID_SIGNATURE_TIME_STAMP);
                for token in tokens.into_iter().chain(si.unsigned(cloudsign_ades::cades::ID_ARCHIVE_TIME_STAMP_V3)) {
                    out.extend(cloudsign_pki::x509::cms_certificates(token));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// DER, or PEM (`-----BEGIN PKCS7-----` / `CMS`).
fn cms_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let text = String::from_utf8_lossy(bytes);
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    cloudsign_asn1::b64::decode_lenient(body.trim()).filter(|d| d.first() == Some(&0x30)).ok_or_else(unknown_kind)
}

fn digest_reader<R: Read>(mut r: R, hash: HashAlgorithm) -> Option<Vec<u8>> {
    let mut ctx = aws_lc_rs::digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Some(ctx.finish().as_ref().to_vec())
}
