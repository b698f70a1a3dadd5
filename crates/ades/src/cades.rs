//! CAdES (ETSI EN 319 122-1) detached signatures: CMS SignedData (RFC 5652) without
//! encapsulated content, with the signed attributes content-type, signing-time, message-digest
//! and signing-certificate-v2 (RFC 5035), and for B-T an unsigned signature-time-stamp
//! (id-aa-signatureTimeStampToken, RFC 3161 token over the signature value).

use cloudsign_csc::{HashAlgorithm, SignAlgorithm};
use cloudsign_pki::cms::{
    ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_RI_OCSP_RESPONSE, ID_SIGNATURE_TIME_STAMP, ID_SIGNED_DATA, ID_SIGNING_CERTIFICATE_V2,
    ID_SIGNING_TIME,
};

/// Validation material for B-LT (ETSI EN 319 122-1 §5.5): the certificates up to the trust
/// anchor and the revocation data, carried in SignedData's `certificates` and `crls` fields
/// (CRLs as such, OCSP responses as `id-ri-ocsp-response`, RFC 5940).
#[derive(Default)]
pub struct ValidationData {
    /// Certificates not already in the chain (e.g. the root, the TSA's).
    pub certificates: Vec<Vec<u8>>,
    /// DER CertificateLists.
    pub crls: Vec<Vec<u8>>,
    /// DER OCSPResponses.
    pub ocsp: Vec<Vec<u8>>,
}
use cloudsign_pki::der;

pub use crate::Params;
use crate::{AdesError, digest};

/// The signed attributes, waiting for their signature value.
pub struct Prepared {
    scheme: SignAlgorithm,
    certificates: Vec<u8>,
    issuer_and_serial: Vec<u8>,
    /// `[0] IMPLICIT` SignedAttributes as they go into the SignerInfo.
    signed_attrs: Vec<u8>,
    /// The digest the signer signs: the hash of the DER SET OF the signed attributes
    /// (RFC 5652 §5.4).
    pub to_be_signed: Vec<u8>,
}

/// Build the signed attributes over `content_digest` (the document's digest with the scheme's
/// hash algorithm) and the digest to sign.
pub fn prepare(content_digest: &[u8], p: &Params<'_>) -> Result<Prepared, AdesError> {
    prepare_with(content_digest, p, true)
}

/// The CMS of a PAdES signature: as [`prepare`] but without the signing-time attribute, which
/// ETSI EN 319 142-1 §6.3 excludes (the time is the `/M` entry of the signature dictionary).
pub fn prepare_pades(content_digest: &[u8], p: &Params<'_>) -> Result<Prepared, AdesError> {
    prepare_with(content_digest, p, false)
}

fn prepare_with(content_digest: &[u8], p: &Params<'_>, signing_time_attribute: bool) -> Result<Prepared, AdesError> {
    let hash = p.scheme.hash();
    if content_digest.len() != hash.len() {
        return Err(AdesError::DigestLength(hash.name()));
    }
    let (issuer, serial) = der::issuer_and_serial(p.certificate).ok_or(AdesError::Certificate)?;
    // RFC 5035 ESSCertIDv2: the certificate hash with its algorithm (omitted when SHA-256, the
    // default), and the issuer and serial as a GeneralNames/serial pair.
    let cert_hash = digest(hash, p.certificate);
    let issuer_serial = der::seq(&[&der::seq(&[&der::explicit(4, &issuer)]), &serial]);
    let ess_cert_id = if hash == HashAlgorithm::Sha256 {
        der::seq(&[&der::octets(&cert_hash), &issuer_serial])
    } else {
        der::seq(&[&der::algorithm(hash.oid()), &der::octets(&cert_hash), &issuer_serial])
    };
    let signing_certificate_v2 = der::seq(&[&der::seq(&[&ess_cert_id])]);
    let mut attrs = vec![
        der::seq(&[&der::oid(ID_CONTENT_TYPE), &der::set_of(&[&der::oid(ID_DATA)])]),
        der::seq(&[&der::oid(ID_MESSAGE_DIGEST), &der::set_of(&[&der::octets(content_digest)])]),
        der::seq(&[&der::oid(ID_SIGNING_CERTIFICATE_V2), &der::set_of(&[&signing_certificate_v2])]),
    ];
    if signing_time_attribute {
        attrs.insert(1, der::seq(&[&der::oid(ID_SIGNING_TIME), &der::set_of(&[&signing_time(p.signing_time)])]));
    }
    let refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
    let set = der::set_of(&refs);
    let to_be_signed = digest(hash, &set);
    // The same content under the context tag [0] IMPLICIT in the SignerInfo.
    let mut signed_attrs = set;
    signed_attrs[0] = 0xA0;
    let certificates: Vec<u8> = std::iter::once(p.certificate).chain(p.chain.iter().map(Vec::as_slice)).flatten().copied().collect();
    Ok(Prepared {
        scheme: p.scheme,
        certificates: der::tlv(0xA0, &certificates),
        issuer_and_serial: der::seq(&[&issuer, &serial]),
        signed_attrs,
        to_be_signed,
    })
}

/// RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise.
fn signing_time(unix: i64) -> Vec<u8> {
    let g = cloudsign_pki::generalized_time(unix);
    let year: i64 = g[..4].parse().unwrap_or(2000);
    if (1950..2050).contains(&year) { der::tlv(0x17, &g.as_bytes()[2..]) } else { der::tlv(0x18, g.as_bytes()) }
}

impl Prepared {
    /// The message imprint a B-T time-stamp is requested for: the hash of the signature value
    /// (ETSI EN 319 122-1 §5.3).
    pub fn timestamp_imprint(&self, signature: &[u8]) -> (HashAlgorithm, Vec<u8>) {
        let hash = self.scheme.hash();
        (hash, digest(hash, signature))
    }

    /// The DER ContentInfo: detached, or with `content` encapsulated (attached); with
    /// `validation` data for B-LT.
    pub fn finish(
        self,
        signature: &[u8],
        timestamp_token: Option<&[u8]>,
        content: Option<&[u8]>,
        validation: Option<&ValidationData>,
    ) -> Vec<u8> {
        let unsigned = match timestamp_token {
            Some(token) => der::tlv(0xA1, &der::seq(&[&der::oid(ID_SIGNATURE_TIME_STAMP), &der::set_of(&[token])])),
            None => Vec::new(),
        };
        let signer_info = der::seq(&[
            &der::small_uint(1),
            &self.issuer_and_serial,
            &der::algorithm(self.scheme.hash().oid()),
            &self.signed_attrs,
            &signature_algorithm(self.scheme),
            &der::octets(signature),
            &unsigned,
        ]);
        let mut certificates = self.certificates;
        let mut revocation = Vec::new();
        if let Some(v) = validation {
            // The [0] IMPLICIT SET of certificates grows by the extra ones.
            let mut body = der::Reader::new(&certificates).expect(0xA0).unwrap_or_default().to_vec();
            for c in &v.certificates {
                body.extend_from_slice(c);
            }
            certificates = der::tlv(0xA0, &body);
            let mut items: Vec<u8> = v.crls.concat();
            for o in &v.ocsp {
                // RevocationInfoChoice `other [1] IMPLICIT OtherRevocationInfoFormat`.
                items.extend_from_slice(&der::tlv(0xA1, &[der::oid(ID_RI_OCSP_RESPONSE), o.clone()].concat()));
            }
            if !items.is_empty() {
                revocation = der::tlv(0xA1, &items);
            }
        }
        // RFC 5652 §5.1: version 5 when an `other` revocation format is present.
        let version = if validation.is_some_and(|v| !v.ocsp.is_empty()) { 5 } else { 1 };
        let signed_data = der::seq(&[
            &der::small_uint(version),
            &der::set_of(&[&der::algorithm(self.scheme.hash().oid())]),
            &match content {
                Some(c) => der::seq(&[&der::oid(ID_DATA), &der::explicit(0, &der::octets(c))]),
                None => der::seq(&[&der::oid(ID_DATA)]),
            },
            &certificates,
            &revocation,
            &der::set_of(&[&signer_info]),
        ]);
        der::seq(&[&der::oid(ID_SIGNED_DATA), &der::explicit(0, &signed_data)])
    }
}

/// The SignerInfo's signatureAlgorithm: ecdsa-with-SHA* carry no parameters (RFC 5758);
/// sha*WithRSAEncryption a NULL (RFC 4055); RSASSA-PSS its parameters.
fn signature_algorithm(scheme: SignAlgorithm) -> Vec<u8> {
    match scheme {
        SignAlgorithm::Ecdsa(_) => der::seq(&[&der::oid(scheme.oid())]),
        SignAlgorithm::RsaPkcs1(_) => der::seq(&[&der::oid(scheme.oid()), &[0x05, 0x00]]),
        SignAlgorithm::RsaPss(h) => {
            let hash_alg = der::algorithm(h.oid());
            let mgf = der::seq(&[&der::oid("1.2.840.113549.1.1.8"), &hash_alg]);
            let params =
                der::seq(&[&der::explicit(0, &hash_alg), &der::explicit(1, &mgf), &der::explicit(2, &der::small_uint(h.len() as u64))]);
            der::seq(&[&der::oid("1.2.840.113549.1.1.10"), &params])
        }
    }
}
