//! The validation of one CMS-based signature (CAdES, or the CMS inside a PAdES signature), in
//! the order of ETSI EN 319 102-1 §5: format, identification of the signing certificate,
//! cryptographic verification (content digest, then signature value), the signature time-stamp
//! (its own token verified the same way: the best signature time), then the certificate path
//! and each certificate's revocation status at that time; finally the level the signature
//! reaches (B-B, B-T, B-LT, B-LTA).

use cloudsign_ades::digest;
use cloudsign_asn1::HashAlgorithm;
use serde::Serialize;

use crate::cms::{self, SignedData, SignerId, SignerInfo};
use crate::path::{self, TrustAnchors};
use crate::revocation::{self, RevocationStatus, Source};
use crate::x509::{self, Certificate};

/// EN 319 102-1 §5.1.3 main indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Indication {
    /// All checks passed.
    #[serde(rename = "TOTAL-PASSED")]
    TotalPassed,
    /// A check failed for certain (the signature is invalid).
    #[serde(rename = "TOTAL-FAILED")]
    TotalFailed,
    /// Not enough to decide.
    #[serde(rename = "INDETERMINATE")]
    Indeterminate,
}

/// EN 319 102-1 §5.1.3 sub-indications (the ones this engine reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubIndication {
    /// The signed content's digest does not match.
    HashFailure,
    /// The signature value does not verify with the signer's key.
    SigCryptoFailure,
    /// The signer's certificate (or one above it) was revoked before the signature existed.
    Revoked,
    /// No path from the signer's certificate to a trust anchor.
    NoCertificateChainFound,
    /// A certificate was outside its validity at the validation time, with no proof of earlier
    /// existence.
    OutOfBoundsNoPoe,
    /// The signing certificate cannot be found or does not match its reference.
    NoSigningCertificateFound,
    /// No revocation status could be obtained for a certificate of the path.
    TryLater,
    /// The signature cannot be parsed.
    FormatFailure,
    /// An algorithm or key is not accepted.
    CryptoConstraintsFailure,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The check passed.
    Passed,
    /// The check failed.
    Failed,
    /// The check could not decide (e.g. no trust anchor that fits: EN 319 102-1 INDETERMINATE).
    Indeterminate,
    /// The check was not made (an earlier one failed, or there was nothing to check).
    NotChecked,
}

/// One check of the validation and its outcome, named after the building blocks of
/// ETSI EN 319 102-1 §5.2: `format` (§5.2.2), `signing_certificate` (§5.2.3), `digest` and
/// `signature_value` (§5.2.7, cryptographic verification), `signature_timestamp` (§5.4),
/// `certificate_chain` (§5.2.6, X.509 certificate validation), `revocation` (§5.2.6 with
/// §5.2.5), `constraints` (§5.2.8, the policy's algorithms and key sizes), and for PDF signatures
/// `pdf_coverage` and `pdf_changes`. The integrity checks are made whatever the trust: a
/// signature with no trust anchor that fits still shows whether it is intact.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Its outcome.
    pub outcome: Outcome,
    /// What was found, readable.
    pub detail: String,
}

impl Check {
    /// A check with its outcome.
    pub fn new(name: &'static str, outcome: Outcome, detail: impl Into<String>) -> Self {
        Check { name, outcome, detail: detail.into() }
    }
}

/// A time-stamp found with the signature.
#[derive(Debug, Clone, Serialize)]
pub struct TimestampReport {
    /// `signature`, `document` or `archive`.
    pub kind: &'static str,
    /// genTime (RFC 3339, UTC).
    pub time: String,
    /// Whether the token verifies and its imprint matches.
    pub valid: bool,
    /// The TSA's certificate subject.
    pub tsa: Option<String>,
}

/// One certificate of the path.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateReport {
    /// Subject.
    pub subject: String,
    /// Validity end (RFC 3339).
    pub not_after: String,
    /// `good`, `revoked at ...`, `unknown`, or `trust anchor`.
    pub revocation: String,
    /// `embedded`, `fetched` or none.
    pub source: Option<&'static str>,
}

/// The report for one signature.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    /// The signature's name (PDF field name, or its position).
    pub id: String,
    /// PAdES, CAdES.
    pub format: &'static str,
    /// The main indication.
    pub indication: Indication,
    /// Why, when not TOTAL-PASSED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_indication: Option<SubIndication>,
    /// What went wrong, readable.
    pub errors: Vec<String>,
    /// Every check made and its outcome, in the order of EN 319 102-1 §5.2 (see [`Check`]).
    pub checks: Vec<Check>,
    /// The signer's certificate subject.
    pub signer: Option<String>,
    /// The signer's key, e.g. `ECDSA P-256`, `RSA 2048`.
    pub key: Option<String>,
    /// Its size in bits.
    pub key_bits: Option<u32>,
    /// The digest algorithm of the signature, e.g. `SHA-256`.
    pub digest_algorithm: Option<String>,
    /// The signing time the signer claims (signing-time attribute or PDF /M).
    pub claimed_signing_time: Option<String>,
    /// The earliest time the signature is proven to exist (its time-stamp).
    pub proven_signing_time: Option<String>,
    /// The time-stamps.
    pub timestamps: Vec<TimestampReport>,
    /// The certificate path, signer first.
    pub chain: Vec<CertificateReport>,
    /// The AdES level the signature reaches.
    pub level: Option<&'static str>,
    /// PAdES: what the signature covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdf: Option<PdfCoverage>,
}

/// What a PDF signature covers.
#[derive(Debug, Clone, Serialize)]
pub struct PdfCoverage {
    /// The `/ByteRange`.
    pub byte_range: [u64; 4],
    /// The signed range is the whole file.
    pub covers_whole_file: bool,
    /// Incremental updates after the signed revision.
    pub later_revisions: usize,
    /// What those updates change that signing does not allow (empty: nothing).
    pub changes: Vec<String>,
}

/// What the validation may use besides the signature itself.
pub struct Context<'a> {
    /// The trust anchors.
    pub anchors: &'a TrustAnchors,
    /// Certificates, CRLs and OCSP responses found elsewhere in the document (a PDF's DSS).
    pub embedded_certificates: &'a [Vec<u8>],
    /// Embedded CRLs (DSS).
    pub embedded_crls: &'a [Vec<u8>],
    /// Embedded OCSP responses (DSS).
    pub embedded_ocsps: &'a [Vec<u8>],
    /// Revocation data fetched online for this validation.
    pub fetched_crls: &'a [Vec<u8>],
    /// OCSP responses fetched online.
    pub fetched_ocsps: &'a [Vec<u8>],
    /// The current time.
    pub now: i64,
    /// Archive or document time-stamps proving the signature existed by then (B-LTA).
    pub archive_times: &'a [i64],
    /// Revocation data whose thisUpdate is older than this many seconds (before now) is not used.
    pub max_revocation_age: Option<i64>,
}

impl SignatureReport {
    /// An empty, passing report (checks then fail it).
    pub fn new(id: String, format: &'static str) -> Self {
        SignatureReport {
            id,
            format,
            indication: Indication::TotalPassed,
            sub_indication: None,
            errors: Vec::new(),
            checks: Vec::new(),
            signer: None,
            key: None,
            key_bits: None,
            digest_algorithm: None,
            claimed_signing_time: None,
            proven_signing_time: None,
            timestamps: Vec::new(),
            chain: Vec::new(),
            level: None,
            pdf: None,
        }
    }

    fn fail(mut self, indication: Indication, sub: SubIndication, error: impl Into<String>) -> Self {
        self.indication = indication;
        self.sub_indication = Some(sub);
        self.errors.push(error.into());
        self
    }

    /// Record a check, replacing an earlier one of the same name.
    pub fn set_check(&mut self, name: &'static str, outcome: Outcome, detail: impl Into<String>) {
        let check = Check::new(name, outcome, detail);
        match self.checks.iter_mut().find(|c| c.name == name) {
            Some(c) => *c = check,
            None => self.checks.push(check),
        }
    }

    /// The outcome of the check `name`, if it was recorded.
    pub fn check(&self, name: &str) -> Option<Outcome> {
        self.checks.iter().find(|c| c.name == name).map(|c| c.outcome)
    }

    /// Fill in the checks a validation that stopped early did not record, from its
    /// sub-indication (EN 319 102-1 §5.2: the building blocks run in order, so a failure of one
    /// means the earlier ones passed and the later ones were not made), and the PDF coverage.
    /// Called once per report, after the policy is applied.
    pub fn complete_checks(&mut self) {
        use Outcome::*;
        const ORDER: [&str; 4] = ["format", "signing_certificate", "digest", "signature_value"];
        let failed_at = match self.sub_indication {
            _ if self.check("signature_value").is_some() => None,
            Some(SubIndication::FormatFailure) => Some(0),
            Some(SubIndication::NoSigningCertificateFound) => Some(1),
            Some(SubIndication::HashFailure) => Some(2),
            Some(SubIndication::SigCryptoFailure) => Some(3),
            // An algorithm refused before the signature value could be checked.
            Some(SubIndication::CryptoConstraintsFailure) => Some(2),
            _ => None,
        };
        if let Some(at) = failed_at {
            let why = self.errors.first().cloned().unwrap_or_default();
            for (i, name) in ORDER.iter().enumerate() {
                if self.check(name).is_none() {
                    let (outcome, detail) = match i.cmp(&at) {
                        std::cmp::Ordering::Less => (Passed, String::new()),
                        std::cmp::Ordering::Equal => (Failed, why.clone()),
                        std::cmp::Ordering::Greater => (NotChecked, String::new()),
                    };
                    self.set_check(name, outcome, detail);
                }
            }
            for name in ["certificate_chain", "revocation"] {
                if self.check(name).is_none() {
                    self.set_check(name, NotChecked, "");
                }
            }
        }
        if let Some(p) = &self.pdf
            && self.format == "PAdES"
        {
            let coverage = if p.covers_whole_file {
                "the /ByteRange covers the whole file but the signature value".to_string()
            } else {
                format!("the /ByteRange covers the revision signed; {} later revision(s)", p.later_revisions)
            };
            let changes = if p.changes.is_empty() {
                (Passed, "no change after signing that signing does not allow".to_string())
            } else {
                (Failed, p.changes.join("; "))
            };
            if self.check("pdf_coverage").is_none() && self.check("format") == Some(Passed) {
                self.set_check("pdf_coverage", Passed, coverage);
            }
            self.set_check("pdf_changes", changes.0, changes.1);
        }
        // The order of EN 319 102-1 §5.2 (stable: several time-stamps keep theirs).
        const ALL: [&str; 11] = [
            "format",
            "signing_certificate",
            "digest",
            "signature_value",
            "pdf_coverage",
            "pdf_changes",
            "signature_timestamp",
            "archive_timestamp",
            "certificate_chain",
            "revocation",
            "constraints",
        ];
        self.checks.sort_by_key(|c| ALL.iter().position(|n| *n == c.name).unwrap_or(ALL.len()));
    }

    /// The integrity checks of a signature whose signature value verified (what
    /// [`conclude`] is given), unless already recorded in more detail.
    fn integrity_passed(&mut self) {
        let digest = match self.format {
            "XAdES" => "every ds:Reference digest matches",
            "JAdES" => "the JWS signing input covers the payload",
            "PAdES" => "the message-digest attribute matches the /ByteRange bytes",
            _ => "the message-digest attribute matches the signed content",
        };
        for (name, detail) in [
            ("format", "the signature parses"),
            ("signing_certificate", "found, and matches its reference where the signature has one"),
            ("digest", digest),
            ("signature_value", "verifies with the signing certificate's key"),
        ] {
            if self.check(name).is_none() {
                self.set_check(name, Outcome::Passed, detail);
            }
        }
    }

    /// A signature that could not even be parsed.
    pub fn format_failure(id: String, format: &'static str, error: impl Into<String>) -> Self {
        SignatureReport::new(id, format).fail(Indication::Indeterminate, SubIndication::FormatFailure, error)
    }
}

/// The signer's certificate among `pool`.
fn signer_certificate(si: &SignerInfo, pool: &[Certificate]) -> Option<Certificate> {
    pool.iter()
        .find(|c| match &si.sid {
            SignerId::IssuerSerial(issuer, serial) => c.issuer == *issuer && strip_zeros(&c.serial) == strip_zeros(serial),
            SignerId::KeyId(id) => c.subject_key_id.as_deref() == Some(id.as_slice()),
        })
        .cloned()
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let skip = b.iter().take_while(|x| **x == 0).count().min(b.len().saturating_sub(1));
    &b[skip..]
}

/// Verify the first signer of `sd`: the content digest (computed by `content_digest` with the
/// signer's digest algorithm; `None` when the signature encapsulates its content), the signature
/// value over the signed attributes, and the signing-certificate reference. Returns the signer's
/// certificate. Each check made is recorded in `report`.
fn verify_signer(
    sd: &SignedData,
    content_digest: &dyn Fn(HashAlgorithm) -> Option<Vec<u8>>,
    pool: &[Certificate],
    report: &mut SignatureReport,
) -> Result<Certificate, (Indication, SubIndication, String)> {
    use Indication::{Indeterminate, TotalFailed};
    use Outcome::{Failed, NotChecked, Passed};
    use SubIndication::*;
    let si = sd.signers.first().ok_or((Indeterminate, FormatFailure, "no SignerInfo".to_string()))?;
    let attrs = si.signed_attrs_der.as_deref().ok_or((Indeterminate, FormatFailure, "no signed attributes".to_string()))?;
    let expected = si.message_digest().ok_or((Indeterminate, FormatFailure, "no message-digest attribute".to_string()))?;
    report.set_check("format", Passed, "the CMS SignedData and its signed attributes parse");
    let hash = si.digest_algorithm.ok_or_else(|| {
        report.set_check("digest", Failed, "unsupported digest algorithm");
        (TotalFailed, CryptoConstraintsFailure, "unsupported digest algorithm".to_string())
    })?;
    let cert = signer_certificate(si, pool).ok_or_else(|| {
        let why = "the signer's certificate is not in the signature".to_string();
        report.set_check("signing_certificate", Failed, why.clone());
        (Indeterminate, NoSigningCertificateFound, why)
    })?;
    report.signer = Some(cert.subject_text());
    report.set_check("signing_certificate", Passed, cert.subject_text());
    let actual = match (content_digest(hash), &sd.content) {
        (Some(d), _) => d,
        (None, Some(content)) => digest(hash, content),
        (None, None) => {
            let why = "detached signature without its content".to_string();
            report.set_check("digest", NotChecked, why.clone());
            return Err((Indeterminate, FormatFailure, why));
        }
    };
    if actual != expected {
        let why = "the signed content has changed (message digest mismatch)".to_string();
        report.set_check("digest", Failed, why.clone());
        return Err((TotalFailed, HashFailure, why));
    }
    let signed = if report.format == "PAdES" { "the /ByteRange bytes" } else { "the signed content" };
    report.set_check("digest", Passed, format!("the message-digest attribute matches {signed} ({})", hash.name()));
    x509::verify_with(&cert.spki, &si.signature_algorithm, Some(hash), attrs, &si.signature).map_err(|e| {
        let why = format!("the signature value does not verify: {e}");
        report.set_check("signature_value", Failed, why.clone());
        (TotalFailed, SigCryptoFailure, why)
    })?;
    report.set_check("signature_value", Passed, format!("verifies with the key of {}", cert.subject_text()));
    if let Some((h, cert_hash)) = si.signing_certificate_v2()
        && digest(h, &cert.der) != cert_hash
    {
        let why = "the signing-certificate-v2 reference does not match the certificate".to_string();
        report.set_check("signing_certificate", Failed, why.clone());
        return Err((Indeterminate, NoSigningCertificateFound, why));
    }
    let reference = if si.signing_certificate_v2().is_some() { "; the signing-certificate-v2 reference matches" } else { "" };
    report.set_check("signing_certificate", Passed, format!("{}{reference}", cert.subject_text()));
    Ok(cert)
}

/// A time-stamp token as checked by [`check_timestamp`].
#[derive(Debug, Clone)]
pub(crate) struct Timestamp {
    /// genTime, when the token is a proof of existence (it verifies, its imprint matches and its
    /// TSA was trusted and not revoked at genTime).
    pub time: Option<i64>,
    /// genTime as the token says, whatever the outcome (for the report).
    pub gen_time: Option<i64>,
    /// The TSA's certificate subject.
    pub tsa: Option<String>,
    /// The check's outcome and what was found.
    pub outcome: Outcome,
    pub detail: String,
    /// Why the token is not a proof of existence, in EN 319 102-1 §5.1.3 terms.
    pub sub_indication: Option<SubIndication>,
    /// The TSA's revocation status came from data carried by the signature or the document
    /// (what B-LT needs for the TSA too: EN 319 102-1 §5.5, EN 319 142-1 §5.4 for the DSS).
    pub embedded: bool,
}

impl Timestamp {
    /// A token that could not be checked at all (its imprint input could not be computed).
    pub(crate) fn unchecked(why: impl Into<String>) -> Self {
        Timestamp {
            time: None,
            gen_time: None,
            tsa: None,
            outcome: Outcome::Indeterminate,
            detail: why.into(),
            sub_indication: Some(SubIndication::FormatFailure),
            embedded: false,
        }
    }

    /// A token over data that was changed since (its imprint cannot match).
    pub(crate) fn hash_failure(why: impl Into<String>) -> Self {
        Timestamp::failed(None, None, Outcome::Failed, SubIndication::HashFailure, why.into())
    }

    fn failed(gen_time: Option<i64>, tsa: Option<String>, outcome: Outcome, sub: SubIndication, detail: String) -> Self {
        Timestamp { time: None, gen_time, tsa, outcome, detail, sub_indication: Some(sub), embedded: false }
    }
}

/// A time-stamp token over `imprint_input` (hashed with the token's own algorithm), checked as
/// EN 319 102-1 §5.4 validates a time-stamp: the token's signature and message imprint (RFC
/// 3161 §2.4.2; integrity, decided whatever the trust), the TSA's path to a trust anchor at
/// genTime, and the revocation status of each certificate of that path at genTime, from
/// `embedded` (OCSP responses, CRLs: the signature's and the document's validation data) and the
/// token's own, else from the data fetched online. A token whose TSA has no known status is not
/// a proof of existence (INDETERMINATE / TRY_LATER), as pyHanko drops it from its verdict.
pub(crate) fn check_timestamp(
    token: &[u8],
    imprint_input: &dyn Fn(HashAlgorithm) -> Vec<u8>,
    ctx: &Context<'_>,
    pool: &[Certificate],
    embedded: (&[Vec<u8>], &[Vec<u8>]),
) -> Timestamp {
    use SubIndication::*;
    let Ok(sd) = cms::parse(token) else {
        return Timestamp::failed(None, None, Outcome::Failed, FormatFailure, "the time-stamp token does not parse".into());
    };
    let Some(info) = cms::tst_info(&sd) else {
        return Timestamp::failed(None, None, Outcome::Failed, FormatFailure, "the time-stamp token holds no TSTInfo".into());
    };
    let gen_at = Some(info.gen_time);
    let mut tsa_pool: Vec<Certificate> = sd.certificates.iter().filter_map(|c| Certificate::parse(c).ok()).collect();
    tsa_pool.extend(pool.iter().cloned());
    let mut scratch = SignatureReport::new(String::new(), "token");
    let tsa = match verify_signer(&sd, &|_| None, &tsa_pool, &mut scratch) {
        Ok(tsa) => tsa,
        Err((_, sub, e)) => return Timestamp::failed(gen_at, None, Outcome::Failed, sub, format!("the time-stamp token: {e}")),
    };
    let subject = Some(tsa.subject_text());
    if imprint_input(info.hash) != info.imprint {
        return Timestamp::failed(
            gen_at,
            subject,
            Outcome::Failed,
            HashFailure,
            "the message imprint does not match what it time-stamps".into(),
        );
    }
    let intact = format!("{}: the token's signature verifies and its message imprint matches", rfc3339(info.gen_time));
    let untrusted = |sub, e: String| {
        Timestamp::failed(gen_at, subject.clone(), Outcome::Indeterminate, sub, format!("{intact}; the TSA {}: {e}", tsa.subject_text()))
    };
    let chain = match path::build_path(&tsa, &tsa_pool, ctx.anchors) {
        Ok(chain) => chain,
        Err(e) => return untrusted(NoCertificateChainFound, e.to_string()),
    };
    if let Err(e) = path::validate_path(&chain, info.gen_time) {
        return untrusted(if e.is_time_related() { OutOfBoundsNoPoe } else { NoCertificateChainFound }, e.to_string());
    }
    // The token's own revocation data (CMS crls field), then the signature's and the document's.
    let ocsps: Vec<Vec<u8>> = sd.ocsps.iter().chain(embedded.0).cloned().collect();
    let crls: Vec<Vec<u8>> = sd.crls.iter().chain(embedded.1).cloned().collect();
    let mut all_embedded = true;
    let mut statuses = Vec::new();
    for (i, c) in chain.iter().enumerate() {
        let Some(issuer) = chain.get(i + 1) else { break };
        let options = revocation::Options { max_age: None, accept_later: true };
        let mut status = revocation::check(c, issuer, &ocsps, &crls, info.gen_time, Source::Embedded, &options).status;
        if matches!(status, RevocationStatus::Unknown) {
            all_embedded = false;
            status = revocation::check(c, issuer, ctx.fetched_ocsps, ctx.fetched_crls, info.gen_time, Source::Fetched, &options).status;
        }
        let source = |s: &Source| if *s == Source::Embedded { "embedded" } else { "fetched" };
        match &status {
            RevocationStatus::Revoked { at, .. } if status.is_revoked_at(info.gen_time) => {
                let e = format!("{} was revoked at {}, before genTime", c.subject_text(), rfc3339(*at));
                return Timestamp::failed(gen_at, subject.clone(), Outcome::Failed, Revoked, format!("{intact}; {e}"));
            }
            RevocationStatus::Good { source: s, .. } | RevocationStatus::Revoked { source: s, .. } => {
                statuses.push(format!("{}: good ({})", c.subject_text(), source(s)))
            }
            // Accepted unchecked, as for the signer's path.
            RevocationStatus::Unknown if c.ocsp_urls().is_empty() && c.crl_urls().is_empty() => {
                statuses.push(format!("{}: names no revocation source", c.subject_text()))
            }
            RevocationStatus::Unknown => return untrusted(TryLater, format!("no revocation status for {}", c.subject_text())),
        }
    }
    Timestamp {
        time: gen_at,
        gen_time: gen_at,
        tsa: subject,
        outcome: Outcome::Passed,
        detail: format!("{intact}; the TSA is trusted ({})", statuses.join("; ")),
        sub_indication: None,
        embedded: all_embedded,
    }
}

/// Validate a CMS signature. `content_digest` gives the digest of the signed content for a
/// hash algorithm (the file, or a PDF's byte range); `None` for attached content.
pub fn validate_cms(
    id: String,
    format: &'static str,
    cms_der: &[u8],
    content_digest: &dyn Fn(HashAlgorithm) -> Option<Vec<u8>>,
    claimed_time: Option<i64>,
    ctx: &Context<'_>,
) -> SignatureReport {
    let mut report = SignatureReport::new(id.clone(), format);
    let sd = match cms::parse(cms_der) {
        Ok(sd) => sd,
        Err(e) => return SignatureReport::format_failure(id, format, e.to_string()),
    };
    let mut pool: Vec<Certificate> =
        sd.certificates.iter().chain(ctx.embedded_certificates).filter_map(|c| Certificate::parse(c).ok()).collect();
    pool.extend(ctx.anchors.certificates().iter().cloned());
    let cert = match verify_signer(&sd, content_digest, &pool, &mut report) {
        Ok(c) => c,
        Err((i, s, e)) => return report.fail(i, s, e),
    };
    report.signer = Some(cert.subject_text());
    report.key = Some(cert.key_description());
    report.key_bits = Some(cert.key_bits());
    let si = &sd.signers[0];
    report.digest_algorithm = si.digest_algorithm.map(|h| h.name().to_string());
    let claimed = claimed_time.or_else(|| si.signing_time());
    report.claimed_signing_time = claimed.map(rfc3339);
    report.level = Some("B-B");

    // The signature time-stamp (id-aa-signatureTimeStampToken over the signature value); its
    // TSA's revocation data may be in the SignedData (CAdES B-LT) or the DSS (PAdES).
    let crls: Vec<Vec<u8>> = sd.crls.iter().chain(ctx.embedded_crls).cloned().collect();
    let ocsps: Vec<Vec<u8>> = sd.ocsps.iter().chain(ctx.embedded_ocsps).cloned().collect();
    let signature_timestamps = si
        .unsigned(cloudsign_pki::cms::ID_SIGNATURE_TIME_STAMP)
        .iter()
        .map(|token| check_timestamp(token, &|h| digest(h, &si.signature), ctx, &pool, (&ocsps, &crls)))
        .collect();
    let archive_timestamps = crate::cades::archive_timestamps(&sd, content_digest, ctx, &pool, (&ocsps, &crls));
    let evidence = Evidence { cert, crls, ocsps, pool, digest: si.digest_algorithm, ades: true, signature_timestamps, archive_timestamps };
    conclude(report, evidence, ctx)
}

pub(crate) fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

pub(crate) fn new_report(id: String, format: &'static str) -> SignatureReport {
    SignatureReport::new(id, format)
}

pub(crate) fn fail(mut report: SignatureReport, indication: Indication, sub: SubIndication, error: String) -> SignatureReport {
    report.indication = indication;
    report.sub_indication = Some(sub);
    report.errors.push(error);
    report
}

/// What a verified signature brings to the rest of the validation.
pub(crate) struct Evidence {
    /// The signer's certificate (its signature value verified).
    pub cert: Certificate,
    /// Certificates to build paths from (the signature's, the context's, the anchors).
    pub pool: Vec<Certificate>,
    /// Revocation data embedded in the signature (and the context's embedded data).
    pub crls: Vec<Vec<u8>>,
    pub ocsps: Vec<Vec<u8>>,
    /// The signature's digest algorithm.
    pub digest: Option<HashAlgorithm>,
    /// An AdES signature (B-B at least), not plain XMLDSig/JWS.
    pub ades: bool,
    /// Each signature time-stamp, checked.
    pub signature_timestamps: Vec<Timestamp>,
    /// Each archive time-stamp, checked.
    pub archive_timestamps: Vec<Timestamp>,
}

pub(crate) fn conclude(mut report: SignatureReport, ev: Evidence, ctx: &Context<'_>) -> SignatureReport {
    use Indication::*;
    use SubIndication::*;
    report.signer = Some(ev.cert.subject_text());
    report.key = Some(ev.cert.key_description());
    report.key_bits = Some(ev.cert.key_bits());
    report.digest_algorithm = ev.digest.map(|h| h.name().to_string());
    if ev.ades {
        report.level = Some("B-B");
    }
    report.integrity_passed();
    let mut best_time = ctx.now;
    // B-LT needs the validation data of every time-stamp used, not only of the signer's path.
    let mut timestamps_embedded = true;
    for ts in &ev.signature_timestamps {
        report.checks.push(Check::new("signature_timestamp", ts.outcome, ts.detail.clone()));
        report.timestamps.push(TimestampReport {
            kind: "signature",
            time: ts.gen_time.map(rfc3339).unwrap_or_default(),
            valid: ts.time.is_some(),
            tsa: ts.tsa.clone(),
        });
        if let Some(t) = ts.time {
            best_time = best_time.min(t);
            timestamps_embedded &= ts.embedded;
            if ev.ades {
                report.level = Some("B-T");
            }
        }
    }
    if report.level == Some("B-T") {
        report.proven_signing_time = Some(rfc3339(best_time));
    }
    let mut archived = !ctx.archive_times.is_empty();
    for t in ctx.archive_times {
        best_time = best_time.min(*t);
    }
    for ts in &ev.archive_timestamps {
        report.checks.push(Check::new("archive_timestamp", ts.outcome, ts.detail.clone()));
        report.timestamps.push(TimestampReport {
            kind: "archive",
            time: ts.gen_time.map(rfc3339).unwrap_or_default(),
            valid: ts.time.is_some(),
            tsa: ts.tsa.clone(),
        });
        if let Some(t) = ts.time {
            best_time = best_time.min(t);
            archived = true;
        }
    }

    let chain = match path::build_path(&ev.cert, &ev.pool, ctx.anchors) {
        Ok(c) => c,
        Err(e) => {
            // EN 319 102-1 §5.2.6: no chain to a trust anchor is INDETERMINATE, whatever the
            // integrity checks above found.
            let why = if ctx.anchors.is_empty() { format!("{e} (no trust anchors were given)") } else { e.to_string() };
            let outcome = if e == path::PathError::NoChainFound { Outcome::Indeterminate } else { Outcome::Failed };
            report.set_check("certificate_chain", outcome, why.clone());
            report.set_check("revocation", Outcome::NotChecked, "");
            return fail(report, Indeterminate, NoCertificateChainFound, why);
        }
    };
    if let Err(e) = path::validate_path(&chain, best_time) {
        let sub = if e.is_time_related() { OutOfBoundsNoPoe } else { NoCertificateChainFound };
        report.chain = chain.iter().map(|c| cert_report(c, "not checked", None)).collect();
        report.set_check("certificate_chain", Outcome::Indeterminate, e.to_string());
        report.set_check("revocation", Outcome::NotChecked, "");
        return fail(report, Indeterminate, sub, e.to_string());
    }
    let anchor = chain.last().map(Certificate::subject_text).unwrap_or_default();
    report.set_check("certificate_chain", Outcome::Passed, format!("{} certificate(s) to the trust anchor {anchor}", chain.len()));
    let mut all_embedded = true;
    let mut failure = None;
    for (i, c) in chain.iter().enumerate() {
        let Some(issuer) = chain.get(i + 1) else {
            report.chain.push(cert_report(c, "trust anchor", None));
            continue;
        };
        let options = revocation::Options { max_age: ctx.max_revocation_age, accept_later: true };
        // EN 319 102-1 §5.2.5: revocation data is fresh when issued after the validation time
        // (here the best-signature-time) minus the maximum accepted age: the policy's, else the
        // data's own update interval (nextUpdate − thisUpdate, `revocation::check`). Data issued
        // after the best-signature-time always is: it says whether the certificate had been
        // revoked by then. Stale data is not used; with nothing else the status is unknown
        // (INDETERMINATE / TRY_LATER, §5.2.6).
        let embedded = revocation::check(c, issuer, &ev.ocsps, &ev.crls, best_time, Source::Embedded, &options);
        let mut status = embedded.status;
        let mut unused: Vec<String> =
            embedded.notes.into_iter().filter(|n| n.contains("not current") || n.contains("delegated responder")).collect();
        if matches!(status, RevocationStatus::Unknown) {
            all_embedded = false;
            let fetched = revocation::check(c, issuer, ctx.fetched_ocsps, ctx.fetched_crls, best_time, Source::Fetched, &options);
            status = fetched.status;
            unused.extend(fetched.notes.into_iter().filter(|n| n.contains("not current") || n.contains("delegated responder")));
        }
        // The policy's limit on the age of revocation data, at the validation time.
        if let (RevocationStatus::Good { this_update, .. }, Some(max)) = (&status, ctx.max_revocation_age)
            && best_time - this_update > max
        {
            unused.push(format!("the revocation data of {} is older than the policy's maximum age ({max} s)", rfc3339(*this_update)));
            status = RevocationStatus::Unknown;
        }
        match status {
            RevocationStatus::Good { source, .. } => report.chain.push(cert_report(c, "good", Some(source))),
            RevocationStatus::Revoked { at, source, .. } => {
                report.chain.push(cert_report(c, &format!("revoked at {}", rfc3339(at)), Some(source)));
                if status.is_revoked_at(best_time) && failure.is_none() {
                    failure = Some((TotalFailed, Revoked, format!("{} was revoked at {}", c.subject_text(), rfc3339(at))));
                }
            }
            RevocationStatus::Unknown
                if cloudsign_pki::x509::ocsp_urls(&c.der).is_empty() && cloudsign_pki::x509::crl_urls(&c.der).is_empty() =>
            {
                all_embedded = false;
                report.chain.push(cert_report(c, "not checked (the certificate names no revocation source)", None));
            }
            RevocationStatus::Unknown => {
                report.chain.push(cert_report(c, "unknown", None));
                if failure.is_none() {
                    let why = if unused.is_empty() { String::new() } else { format!(" ({})", unused.join("; ")) };
                    failure = Some((Indeterminate, TryLater, format!("no revocation status for {}{why}", c.subject_text())));
                }
            }
        }
    }
    if let Some((i, s, e)) = failure {
        let outcome = if i == TotalFailed { Outcome::Failed } else { Outcome::Indeterminate };
        report.set_check("revocation", outcome, e.clone());
        return fail(report, i, s, e);
    }
    let statuses: Vec<String> = report.chain.iter().map(|c| format!("{}: {}", c.subject, c.revocation)).collect();
    // Certificates that name no revocation source are accepted unchecked; say so when no
    // certificate of the path was checked at all.
    let checked = report.chain.iter().any(|c| c.source.is_some());
    let outcome = if checked || report.chain.len() <= 1 { Outcome::Passed } else { Outcome::NotChecked };
    report.set_check("revocation", outcome, statuses.join("; "));
    if report.level == Some("B-T") && all_embedded && timestamps_embedded {
        report.level = Some("B-LT");
        if archived {
            report.level = Some("B-LTA");
        }
    }
    report
}

fn cert_report(c: &Certificate, revocation: &str, source: Option<Source>) -> CertificateReport {
    CertificateReport {
        subject: c.subject_text(),
        not_after: rfc3339(c.not_after),
        revocation: revocation.to_string(),
        source: source.map(|s| match s {
            Source::Embedded => "embedded",
            Source::Fetched => "fetched",
        }),
    }
}
