//! The built-in time-stamping authority (RFC 3161, with the ESS signing-certificate-v2
//! attribute of RFC 5816). Requests are parsed, and tokens and responses built, by hand on the
//! foundation's DER reader and writer (`cloudsign_asn1::der`): the structures are few and fixed.
//! Not with `der` derive: the default policy (below) is a UUID OID whose 128-bit arc does not
//! fit `const-oid`'s `ObjectIdentifier` (u32 arcs), and TSTInfo's `policy` is one of its fields
//! (RFC 3161 §2.4.2); and no TSP crate exists for the der 0.8 generation.

use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cloudsign_asn1::oid::{ID_CT_TST_INFO, SHA256, decode_oid};
use cloudsign_asn1::{HashAlgorithm, KeyAlgorithm, SignAlgorithm};
use cloudsign_keys::SigningKey;

use crate::PkiError;
use cloudsign_asn1::der::{self, Reader};

pub use cloudsign_asn1::oid::ID_KP_TIME_STAMPING;
/// The default TSA policy: a UUID-derived OID (ITU-T X.667 `2.25`), so it needs no registration.
pub const DEFAULT_POLICY: &str = "2.25.270497441424498136419815473036385318735";

use crate::cms::{ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_SIGNED_DATA, ID_SIGNING_CERTIFICATE_V2};

/// Why a request is refused: RFC 3161 §2.4.2 PKIFailureInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Unrecognized or unsupported algorithm.
    BadAlg,
    /// Transaction not permitted or supported.
    BadRequest,
    /// The data submitted has the wrong format.
    BadDataFormat,
    /// The requested policy is not supported.
    UnacceptedPolicy,
    /// The requested extension is not supported.
    UnacceptedExtension,
    /// The request cannot be handled due to a system failure.
    SystemFailure,
}

impl Failure {
    fn bit(self) -> u32 {
        match self {
            Self::BadAlg => 0,
            Self::BadRequest => 2,
            Self::BadDataFormat => 5,
            Self::UnacceptedPolicy => 15,
            Self::UnacceptedExtension => 16,
            Self::SystemFailure => 25,
        }
    }

    /// Human-readable reason.
    pub fn text(self) -> &'static str {
        match self {
            Self::BadAlg => "unsupported hash algorithm (SHA-256, SHA-384 and SHA-512 are accepted)",
            Self::BadRequest => "malformed or unsupported request",
            Self::BadDataFormat => "the message imprint has the wrong length for its algorithm",
            Self::UnacceptedPolicy => "the requested policy is not this TSA's",
            Self::UnacceptedExtension => "request extensions are not supported",
            Self::SystemFailure => "the time-stamping authority failed",
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Digest algorithm of the imprint.
    pub hash: HashAlgorithm,
    /// The imprint.
    pub digest: Vec<u8>,
    /// The nonce as DER INTEGER content, echoed in the token.
    pub nonce: Option<Vec<u8>>,
    /// Include the TSA certificate in the token.
    pub cert_req: bool,
}

impl Request {
    /// Parse a DER TimeStampReq (RFC 3161 §2.4.1); a requested policy must be `policy`.
    pub fn parse(der_bytes: &[u8], policy: &str) -> Result<Request, Failure> {
        let mut outer = Reader::new(der_bytes);
        let body = outer.expect(0x30).ok_or(Failure::BadRequest)?;
        if !outer.is_empty() {
            return Err(Failure::BadRequest);
        }
        let mut r = Reader::new(body);
        if r.expect(0x02).ok_or(Failure::BadRequest)? != [1] {
            return Err(Failure::BadRequest);
        }
        let mut imprint = Reader::new(r.expect(0x30).ok_or(Failure::BadRequest)?);
        let mut alg = Reader::new(imprint.expect(0x30).ok_or(Failure::BadRequest)?);
        let oid = decode_oid(alg.expect(0x06).ok_or(Failure::BadRequest)?).ok_or(Failure::BadRequest)?;
        let hash = HashAlgorithm::from_oid(&oid).ok_or(Failure::BadAlg)?;
        let digest = imprint.expect(0x04).ok_or(Failure::BadRequest)?.to_vec();
        if digest.len() != hash.len() {
            return Err(Failure::BadDataFormat);
        }
        let mut request = Request { hash, digest, nonce: None, cert_req: false };
        while let Some((tag, content, _)) = r.next() {
            match tag {
                0x06 => {
                    if decode_oid(content).as_deref() != Some(policy) {
                        return Err(Failure::UnacceptedPolicy);
                    }
                }
                0x02 => {
                    if content.is_empty() || content.len() > 64 {
                        return Err(Failure::BadRequest);
                    }
                    request.nonce = Some(content.to_vec());
                }
                0x01 => request.cert_req = content.first().is_some_and(|b| *b != 0),
                0xA0 => return Err(Failure::UnacceptedExtension),
                _ => return Err(Failure::BadRequest),
            }
        }
        if !r.is_empty() {
            return Err(Failure::BadRequest);
        }
        Ok(request)
    }
}

/// The TSA: its key, certificate and chain.
pub struct Tsa {
    key: Arc<dyn SigningKey>,
    cert_der: Vec<u8>,
    issuing_der: Vec<u8>,
    issuer_and_serial: Vec<u8>,
    cert_hash: Vec<u8>,
    policy: String,
    scheme: SignAlgorithm,
    rng: SystemRandom,
}

impl Tsa {
    /// A TSA signing with `key`, certified by `cert_der` (issued by `issuing_der`).
    pub fn new(key: Arc<dyn SigningKey>, cert_der: Vec<u8>, issuing_der: Vec<u8>, policy: &str) -> Result<Tsa, PkiError> {
        let (issuer, serial) =
            cloudsign_asn1::cert::issuer_and_serial(&cert_der).ok_or_else(|| PkiError::Build("unreadable TSA certificate".into()))?;
        let scheme = match key.algorithm() {
            KeyAlgorithm::EcdsaP256 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha256),
            KeyAlgorithm::EcdsaP384 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha384),
            KeyAlgorithm::EcdsaP521 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha512),
            _ => SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256),
        };
        Ok(Tsa {
            key,
            cert_hash: digest::digest(&digest::SHA256, &cert_der).as_ref().to_vec(),
            cert_der,
            issuing_der,
            issuer_and_serial: der::seq(&[&issuer, &serial]),
            policy: policy.to_string(),
            scheme,
            rng: SystemRandom::new(),
        })
    }

    /// The TSA certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        &self.cert_der
    }

    /// A TimeStampToken (CMS ContentInfo, RFC 3161 §2.4.2) for `req` at `unix_millis`.
    pub fn token(&self, req: &Request, unix_millis: i128) -> Result<Vec<u8>, PkiError> {
        let mut serial = [0u8; 16];
        self.rng.fill(&mut serial).map_err(|_| PkiError::Build("random generator".into()))?;
        serial[0] &= 0x7f;
        let imprint = der::seq(&[&der::algorithm(req.hash.oid()), &der::octets(&req.digest)]);
        // Accuracy: one second (the service clock is NTP-disciplined; RFC 3161 §2.4.2).
        let accuracy = der::seq(&[&der::small_uint(1)]);
        let nonce = req.nonce.as_ref().map(|n| der::tlv(0x02, n)).unwrap_or_default();
        let tst_info = der::seq(&[
            &der::small_uint(1),
            &der::oid(&self.policy),
            &imprint,
            &der::uint(&serial),
            &der::generalized_time_millis(unix_millis),
            &accuracy,
            &nonce,
        ]);
        let content_digest = digest::digest(&digest::SHA256, &tst_info);
        // RFC 5816 / RFC 5035: ESSCertIDv2 with the default hash (SHA-256) left implicit.
        let ess = der::seq(&[&der::seq(&[&der::seq(&[&der::octets(&self.cert_hash)])])]);
        let attrs = [
            der::seq(&[&der::oid(ID_CONTENT_TYPE), &der::set_of(&[&der::oid(ID_CT_TST_INFO)])]),
            der::seq(&[&der::oid(ID_MESSAGE_DIGEST), &der::set_of(&[&der::octets(content_digest.as_ref())])]),
            der::seq(&[&der::oid(ID_SIGNING_CERTIFICATE_V2), &der::set_of(&[&ess])]),
        ];
        let attr_refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
        // RFC 5652 §5.4: the signature covers the attributes encoded as a SET OF.
        let signed_attrs_set = der::set_of(&attr_refs);
        let to_sign = match self.scheme.hash() {
            HashAlgorithm::Sha256 => digest::digest(&digest::SHA256, &signed_attrs_set),
            HashAlgorithm::Sha384 => digest::digest(&digest::SHA384, &signed_attrs_set),
            HashAlgorithm::Sha512 => digest::digest(&digest::SHA512, &signed_attrs_set),
        };
        let signature = self.key.sign_digest(self.scheme, to_sign.as_ref())?;
        let signed_attrs = der::tlv(0xA0, &signed_attrs_set[signed_attrs_set.len() - content_len(&signed_attrs_set)..]);
        let signer_info = der::seq(&[
            &der::small_uint(1),
            &self.issuer_and_serial,
            &der::algorithm(self.scheme.hash().oid()),
            &signed_attrs,
            &der::algorithm(self.scheme.oid()),
            &der::octets(&signature),
        ]);
        let certificates =
            if req.cert_req { der::tlv(0xA0, &[self.cert_der.as_slice(), self.issuing_der.as_slice()].concat()) } else { Vec::new() };
        let signed_data = der::seq(&[
            &der::small_uint(3),
            &der::set_of(&[&der::algorithm(SHA256)]),
            &der::seq(&[&der::oid(ID_CT_TST_INFO), &der::explicit(0, &der::octets(&tst_info))]),
            &certificates,
            &der::set_of(&[&signer_info]),
        ]);
        Ok(der::seq(&[&der::oid(ID_SIGNED_DATA), &der::explicit(0, &signed_data)]))
    }

    /// Answer a DER TimeStampReq with a DER TimeStampResp: granted with a token, or a
    /// rejection carrying the failure reason.
    pub fn respond(&self, request_der: &[u8], unix_millis: i128) -> (Vec<u8>, Result<Request, Failure>) {
        let parsed = Request::parse(request_der, &self.policy);
        let response = match &parsed {
            Ok(req) => match self.token(req, unix_millis) {
                Ok(token) => der::seq(&[&der::seq(&[&der::small_uint(0)]), &token]),
                Err(_) => rejection(Failure::SystemFailure),
            },
            Err(f) => rejection(*f),
        };
        (response, parsed)
    }
}

fn content_len(tlv: &[u8]) -> usize {
    let mut r = Reader::new(tlv);
    r.next().map(|(_, c, _)| c.len()).unwrap_or(0)
}

/// PKIStatusInfo with status `rejection` (2), a statusString and the failure bit.
pub fn rejection(f: Failure) -> Vec<u8> {
    let text = der::seq(&[&der::tlv(0x0C, f.text().as_bytes())]);
    der::seq(&[&der::seq(&[&der::small_uint(2), &text, &der::named_bits(&[f.bit()])])])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(oid: &str, digest: &[u8], extra: &[&[u8]]) -> Vec<u8> {
        let imprint = der::seq(&[&der::algorithm(oid), &der::octets(digest)]);
        let mut parts: Vec<&[u8]> = vec![&[0x02, 0x01, 0x01], &imprint];
        parts.extend_from_slice(extra);
        der::seq(&parts)
    }

    #[test]
    fn requests_are_checked() {
        let ok = Request::parse(&req(SHA256, &[1; 32], &[&der::small_uint(42), &[0x01, 0x01, 0xff]]), DEFAULT_POLICY).unwrap();
        assert_eq!(ok.nonce.as_deref(), Some(&[42u8][..]));
        assert!(ok.cert_req);
        assert_eq!(Request::parse(&req("1.3.14.3.2.26", &[1; 20], &[]), DEFAULT_POLICY).unwrap_err(), Failure::BadAlg);
        assert_eq!(Request::parse(&req(SHA256, &[1; 31], &[]), DEFAULT_POLICY).unwrap_err(), Failure::BadDataFormat);
        assert_eq!(Request::parse(&req(SHA256, &[1; 32], &[&der::oid("1.2.3")]), DEFAULT_POLICY).unwrap_err(), Failure::UnacceptedPolicy);
        assert_eq!(
            Request::parse(&req(SHA256, &[1; 32], &[&der::tlv(0xA0, &[])]), DEFAULT_POLICY).unwrap_err(),
            Failure::UnacceptedExtension
        );
        assert_eq!(Request::parse(b"garbage", DEFAULT_POLICY).unwrap_err(), Failure::BadRequest);
        assert_eq!(Request::parse(&[], DEFAULT_POLICY).unwrap_err(), Failure::BadRequest);
    }
}
