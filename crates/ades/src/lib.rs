//! AdES signature formats (ETSI EN 319 122 CAdES so far) built in two steps, so that the
//! signature value can come from anywhere — a local key, an HSM, or a remote CSC `signHash` —
//! with no network or key code in here:
//!
//! 1. [`cades::prepare`] computes the signed attributes over the document's digest and returns
//!    the digest the signer must sign (`to_be_signed`);
//! 2. [`cades::Prepared::finish`] assembles the CMS with the signature value (and, for B-T, the
//!    time-stamp token over that value, whose imprint [`cades::Prepared::timestamp_imprint`]
//!    gives).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cades;
pub mod format;
pub mod jades;
pub mod pades;
pub mod xades;

/// The PDF reader and incremental writer PAdES works on, re-exported so that callers of
/// [`pades`] name the same types.
pub use cloudsign_pdf as pdf;

pub use format::{Format, Level, Packaging};

/// A signature that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum AdesError {
    /// The certificate cannot be read.
    #[error("the signing certificate cannot be read")]
    Certificate,
    /// The digest does not fit the algorithm.
    #[error("the digest has the wrong length for {0}")]
    DigestLength(&'static str),
    /// The signature value is malformed.
    #[error("the signature value is malformed")]
    Signature,
    /// The PDF cannot be read or signed.
    #[error("PDF: {0}")]
    Pdf(String),
}

/// What the signature is made with.
pub struct Params<'a> {
    /// The signature scheme (its hash is the digest algorithm throughout).
    pub scheme: cloudsign_asn1::SignAlgorithm,
    /// The signer's certificate (DER).
    pub certificate: &'a [u8],
    /// The rest of the chain to embed (issuing CA, ...), DER.
    pub chain: &'a [Vec<u8>],
    /// The claimed signing time (Unix seconds).
    pub signing_time: i64,
}

/// DER `ECDSA-Sig-Value` (what CSC signHash returns) to the fixed-width r ‖ s that JWS
/// (RFC 7518 §3.4) and XMLDSig (RFC 4050) carry; `None` when malformed or too wide.
pub(crate) fn ecdsa_der_to_raw(der: &[u8], width: usize) -> Option<Vec<u8>> {
    let mut outer = cloudsign_asn1::der::Reader::new(der);
    let mut seq = cloudsign_asn1::der::Reader::new(outer.expect(0x30)?);
    let mut out = Vec::with_capacity(2 * width);
    for _ in 0..2 {
        let int = seq.expect(0x02)?;
        let skip = int.iter().take_while(|b| **b == 0).count();
        let int = &int[skip..];
        if int.len() > width {
            return None;
        }
        out.extend(std::iter::repeat_n(0u8, width - int.len()));
        out.extend_from_slice(int);
    }
    (seq.is_empty() && outer.is_empty()).then_some(out)
}

/// aws-lc's digest for our algorithm enum, for callers that hash as they stream.
pub fn aws_lc_algorithm(algorithm: cloudsign_asn1::HashAlgorithm) -> &'static aws_lc_rs::digest::Algorithm {
    match algorithm {
        cloudsign_asn1::HashAlgorithm::Sha256 => &aws_lc_rs::digest::SHA256,
        cloudsign_asn1::HashAlgorithm::Sha384 => &aws_lc_rs::digest::SHA384,
        cloudsign_asn1::HashAlgorithm::Sha512 => &aws_lc_rs::digest::SHA512,
    }
}

/// Digest helper shared by callers: one-shot SHA-2 by our algorithm enum.
pub fn digest(algorithm: cloudsign_asn1::HashAlgorithm, data: &[u8]) -> Vec<u8> {
    digest_parts(algorithm, &[data])
}

/// The digest of `parts` one after the other, without joining them (a PDF's byte ranges).
pub fn digest_parts(algorithm: cloudsign_asn1::HashAlgorithm, parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(aws_lc_algorithm(algorithm));
    for part in parts {
        ctx.update(part);
    }
    ctx.finish().as_ref().to_vec()
}
