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

/// The certificates a file's signatures carry (CMS certificates and a PDF's DSS; XAdES
/// `ds:KeyInfo` and certificate values; JAdES `x5c` and `xVals`; the certificates of every
/// signature and archive time-stamp token): what an online revocation check asks about.
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
        // XAdES and JAdES: each format's own reading of its signatures, so that what is fetched
        // for is what validation then looks at.
        Some(Kind::Xml) => distinct(crate::xades::certificates(bytes)),
        Some(Kind::Jws) => distinct(crate::jades::certificates(bytes)),
        None => Vec::new(),
    }
}

/// The certificates that parse, each once (a certificate in `ds:KeyInfo` and in
/// `CertificateValues`, or in `x5c` and a time-stamp token, is asked about once).
fn distinct(certs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(certs.len());
    for c in certs {
        if !out.contains(&c) && crate::x509::Certificate::parse(&c).is_ok() {
            out.push(c);
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::test_pki::read;
    use cloudsign_asn1::b64;

    /// A CMS SignedData over a message by `leaf-rsa`, carrying `leaf-rsa` and `ocsp`: it stands
    /// for a time-stamp token here (only its certificates are read).
    fn token() -> Vec<u8> {
        static TOKEN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        TOKEN
            .get_or_init(|| {
                let dir = std::env::temp_dir().join(format!("cloudsign-file-token-{}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                for name in ["leaf-rsa.pem", "leaf-rsa.key", "ocsp.pem", "msg.txt"] {
                    std::fs::write(dir.join(name), read(name)).unwrap();
                }
                let out = std::process::Command::new("openssl")
                    .args(["cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-in", "msg.txt", "-signer", "leaf-rsa.pem"])
                    .args(["-inkey", "leaf-rsa.key", "-certfile", "ocsp.pem", "-out", "token.der"])
                    .current_dir(&dir)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                let token = std::fs::read(dir.join("token.der")).unwrap();
                let _ = std::fs::remove_dir_all(&dir);
                token
            })
            .clone()
    }

    fn b64url(bytes: &[u8]) -> String {
        b64::encode_url(bytes)
    }

    /// The fixture names of `certs`, sorted (a CMS SET OF has its own order), each once.
    fn names(certs: &[Vec<u8>]) -> Vec<String> {
        let all = ["root", "inter", "leaf-ec", "leaf-rsa", "ocsp"];
        let mut out: Vec<String> = certs
            .iter()
            .map(|c| all.iter().find(|n| read(&format!("{n}.der")) == *c).map_or_else(|| "unknown".into(), |n| n.to_string()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn xades_certificates_from_key_info_values_and_time_stamps() {
        let (leaf, inter, token) = (b64::encode(&read("leaf-ec.der")), b64::encode(&read("inter.der")), b64::encode(&token()));
        // The leaf twice (KeyInfo and CertificateValues), the certificate split over lines as
        // base64Binary allows; an X509Certificate outside KeyInfo is no signature's.
        let wrapped: String = leaf.as_bytes().chunks(64).map(|c| format!("{}\n", std::str::from_utf8(c).unwrap())).collect();
        let xml = format!(
            r#"<doc><ds:X509Certificate xmlns:ds="http://www.w3.org/2000/09/xmldsig#">{inter}</ds:X509Certificate>
<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
{wrapped}</ds:X509Certificate></ds:X509Data></ds:KeyInfo><ds:Object><xades:QualifyingProperties xmlns:xades="http://uri.etsi.org/01903/v1.3.2#">
<xades:UnsignedProperties><xades:UnsignedSignatureProperties><xades:SignatureTimeStamp><xades:EncapsulatedTimeStamp>{token}</xades:EncapsulatedTimeStamp></xades:SignatureTimeStamp>
<xades:CertificateValues><xades:EncapsulatedX509Certificate>{leaf}</xades:EncapsulatedX509Certificate><xades:EncapsulatedX509Certificate>{inter}</xades:EncapsulatedX509Certificate><xades:EncapsulatedX509Certificate>bm90IGEgY2VydGlmaWNhdGU=</xades:EncapsulatedX509Certificate></xades:CertificateValues>
</xades:UnsignedSignatureProperties></xades:UnsignedProperties></xades:QualifyingProperties></ds:Object></ds:Signature></doc>"#
        );
        let got = certificates_in_bytes(xml.as_bytes());
        assert_eq!(names(&got), ["inter", "leaf-ec", "leaf-rsa", "ocsp"]);
        assert_eq!(got.len(), 4, "each once");
    }

    #[test]
    fn jades_certificates_from_x5c_xvals_and_time_stamps() {
        let (leaf, inter, token) = (read("leaf-ec.der"), read("inter.der"), token());
        assert_eq!(names(&cloudsign_pki::x509::cms_certificates(&token)), ["leaf-rsa", "ocsp"]);
        let protected = b64url(serde_json::json!({"alg": "ES256", "x5c": [b64::encode(&leaf)]}).to_string().as_bytes());
        // One etsiU element base64url-encoded, one clear JSON (TS 119 182-1 §5.3.1 allows both).
        let x_vals = b64url(serde_json::json!({"xVals": [{"x509Cert": {"val": b64::encode(&inter)}}]}).to_string().as_bytes());
        let sig_tst = serde_json::json!({"sigTst": {"tstTokens": [{"val": b64::encode(&token)}]}});
        let arc_tst = b64url(serde_json::json!({"arcTst": {"tstTokens": [{"val": b64::encode(&token)}]}}).to_string().as_bytes());
        let flattened = serde_json::json!({
            "protected": protected, "payload": "", "signature": "AAAA",
            "header": {"etsiU": [x_vals, sig_tst, arc_tst, 7, "!!"]},
        });
        let want = ["inter", "leaf-ec", "leaf-rsa", "ocsp"];
        let got = certificates_in_bytes(flattened.to_string().as_bytes());
        assert_eq!((names(&got), got.len()), (want.map(String::from).to_vec(), 4));
        let general = serde_json::json!({"payload": "", "signatures": [flattened.as_object().unwrap().clone().into_iter().filter(|(k, _)| k != "payload").collect::<serde_json::Map<_, _>>()]});
        assert_eq!(names(&certificates_in_bytes(general.to_string().as_bytes())), want);
        // Compact: the protected header only.
        assert_eq!(names(&certificates_in_bytes(format!("{protected}..AAAA").as_bytes())), ["leaf-ec"]);
    }

    #[test]
    fn malformed_xml_and_jws_give_no_certificates() {
        let leaf = b64::encode(&read("leaf-ec.der"));
        let ds = r#"xmlns:ds="http://www.w3.org/2000/09/xmldsig#""#;
        let header = |json: serde_json::Value| b64url(json.to_string().as_bytes());
        let cases: Vec<Vec<u8>> = vec![
            // XML: not well-formed, entities (refused before any reading), not UTF-8, garbage
            // base64, a truncated certificate, a time-stamp token that is no CMS.
            format!("<ds:Signature {ds}><ds:KeyInfo><ds:X509Certificate>{leaf}</ds:X509Certificate>").into_bytes(),
            format!(r#"<!DOCTYPE d [<!ENTITY c "{leaf}">]><ds:Signature {ds}><ds:KeyInfo><ds:X509Certificate>&c;</ds:X509Certificate></ds:KeyInfo></ds:Signature>"#).into_bytes(),
            b"<\xff\xfe>".to_vec(),
            format!("<ds:Signature {ds}><ds:KeyInfo><ds:X509Certificate>!!not base64!!</ds:X509Certificate></ds:KeyInfo></ds:Signature>").into_bytes(),
            format!("<ds:Signature {ds}><ds:KeyInfo><ds:X509Certificate>{}</ds:X509Certificate></ds:KeyInfo></ds:Signature>", &leaf[..40]).into_bytes(),
            format!(r#"<ds:Signature {ds}><x:EncapsulatedTimeStamp xmlns:x="http://uri.etsi.org/01903/v1.3.2#">MAMCAQA=</x:EncapsulatedTimeStamp></ds:Signature>"#).into_bytes(),
            b"<doc/>".to_vec(),
            // JWS: not JSON, not an object, no signature, a protected header that is not
            // base64url JSON, x5c not a list, a compact JWS of two parts, etsiU not a list.
            b"{\"protected\": ".to_vec(),
            b"{}".to_vec(),
            br#"{"payload": "", "signatures": []}"#.to_vec(),
            br#"{"protected": "!!", "payload": "", "signature": ""}"#.to_vec(),
            format!(r#"{{"protected": "{}", "payload": "", "signature": ""}}"#, header(serde_json::json!({"x5c": leaf}))).into_bytes(),
            format!("{}.AAAA", header(serde_json::json!({"x5c": [leaf]}))).into_bytes(),
            format!(r#"{{"protected": "eyJ9", "payload": "", "signature": "", "header": {{"etsiU": {{"xVals": [{{"x509Cert": {{"val": "{leaf}"}}}}]}}}}}}"#).into_bytes(),
            b"eyJ\xff".to_vec(),
        ];
        for (i, case) in cases.iter().enumerate() {
            assert_eq!(names(&certificates_in_bytes(case)), Vec::<String>::new(), "case {i}: {}", String::from_utf8_lossy(case));
        }
    }
}
