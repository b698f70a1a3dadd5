//! The OCSP responder (RFC 6960): requests are parsed and BasicOCSPResponses built by hand on
//! the foundation's DER reader and writer (no OCSP crate exists for the der 0.8 generation); the issuing CA signs its responses itself (§2.6: the CA that issued the
//! certificate is an authorized responder), so relying parties need no extra certificate.

use aws_lc_rs::digest;
use cloudsign_asn1::oid::{ID_PKIX_OCSP_BASIC, ID_PKIX_OCSP_NONCE, SHA1, decode_oid};
use cloudsign_asn1::{HashAlgorithm, SignAlgorithm};

use crate::{IssuingCa, PkiError};
use cloudsign_asn1::der::{self, Reader};

/// The status of one certificate, as the CA's records say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked (or suspended: reason certificateHold) at the given time.
    Revoked {
        /// Unix seconds.
        at: i64,
        /// RFC 5280 CRLReason.
        reason: i64,
    },
    /// Not a certificate this CA knows.
    Unknown,
}

/// One certificate asked about.
#[derive(Debug, Clone)]
pub struct Query {
    /// The CertID as sent, echoed in the response.
    cert_id: Vec<u8>,
    /// Whether issuerNameHash and issuerKeyHash name this CA.
    pub ours: bool,
    /// Serial number, upper-case hex as the store keeps it.
    pub serial_hex: String,
}

/// A parsed OCSPRequest.
#[derive(Debug, Clone)]
pub struct Request {
    /// The certificates asked about.
    pub queries: Vec<Query>,
    nonce: Option<Vec<u8>>,
}

fn hash(alg: &str, data: &[u8]) -> Option<Vec<u8>> {
    let d = match alg {
        // RFC 6960 CertIDs are SHA-1 by default; they identify, they do not protect.
        SHA1 => digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data),
        oid => match HashAlgorithm::from_oid(oid)? {
            HashAlgorithm::Sha256 => digest::digest(&digest::SHA256, data),
            HashAlgorithm::Sha384 => digest::digest(&digest::SHA384, data),
            HashAlgorithm::Sha512 => digest::digest(&digest::SHA512, data),
        },
    };
    Some(d.as_ref().to_vec())
}

impl Request {
    /// The request a relying party would send about one of the CA's certificates (SHA-256
    /// CertID, no nonce): how the service asks itself for the OCSP response it embeds in a
    /// long-term (B-LT) signature.
    pub fn for_certificate(cert_der: &[u8], ca: &IssuingCa) -> Option<Request> {
        let (ca_name, ca_key) = cloudsign_asn1::cert::subject_and_key(&ca.issuing_der)?;
        let (issuer, serial) = cloudsign_asn1::cert::issuer_and_serial(cert_der)?;
        if issuer != ca_name {
            return None;
        }
        let serial_body = Reader::new(&serial).expect(0x02)?;
        let sha256 = HashAlgorithm::Sha256.oid();
        let cert_id =
            der::seq(&[&der::algorithm(sha256), &der::octets(&hash(sha256, &ca_name)?), &der::octets(&hash(sha256, &ca_key)?), &serial]);
        let skip = serial_body.iter().take_while(|b| **b == 0).count().min(serial_body.len().saturating_sub(1));
        Some(Request { queries: vec![Query { cert_id, ours: true, serial_hex: hex::encode_upper(&serial_body[skip..]) }], nonce: None })
    }

    /// Parse a DER OCSPRequest against the CA's name and key. `None`: malformed.
    pub fn parse(der_bytes: &[u8], ca: &IssuingCa) -> Option<Request> {
        let (ca_name, ca_key) = cloudsign_asn1::cert::subject_and_key(&ca.issuing_der)?;
        let mut outer = Reader::new(der_bytes);
        let mut request = Reader::new(outer.expect(0x30)?);
        let mut tbs = Reader::new(request.expect(0x30)?);
        if tbs.peek_tag() == Some(0xA0) {
            tbs.next()?; // version
        }
        if tbs.peek_tag() == Some(0xA1) {
            tbs.next()?; // requestorName
        }
        let mut list = Reader::new(tbs.expect(0x30)?);
        let mut queries = Vec::new();
        while !list.is_empty() {
            let mut single = Reader::new(list.expect(0x30)?);
            let (tag, body, cert_id) = single.next()?;
            if tag != 0x30 {
                return None;
            }
            let mut id = Reader::new(body);
            let mut alg = Reader::new(id.expect(0x30)?);
            let alg = decode_oid(alg.expect(0x06)?)?;
            let name_hash = id.expect(0x04)?;
            let key_hash = id.expect(0x04)?;
            let serial = id.expect(0x02)?;
            let ours = hash(&alg, &ca_name).as_deref() == Some(name_hash) && hash(&alg, &ca_key).as_deref() == Some(key_hash);
            let skip = serial.iter().take_while(|b| **b == 0).count().min(serial.len().saturating_sub(1));
            queries.push(Query { cert_id: cert_id.to_vec(), ours, serial_hex: hex::encode_upper(&serial[skip..]) });
        }
        if queries.is_empty() {
            return None;
        }
        let mut nonce = None;
        if tbs.peek_tag() == Some(0xA2) {
            let mut exts = Reader::new(Reader::new(tbs.expect(0xA2)?).expect(0x30)?);
            while !exts.is_empty() {
                let (_, body, whole) = exts.next()?;
                let mut ext = Reader::new(body);
                if decode_oid(ext.expect(0x06)?).as_deref() == Some(ID_PKIX_OCSP_NONCE) {
                    nonce = Some(whole.to_vec());
                }
            }
        }
        Some(Request { queries, nonce })
    }
}

/// `OCSPResponse` with an error status and no body (RFC 6960 §4.2.1): 1 malformedRequest,
/// 2 internalError.
pub fn error_response(status: u8) -> Vec<u8> {
    der::seq(&[&der::tlv(0x0A, &[status])])
}

impl IssuingCa {
    /// A signed BasicOCSPResponse for `req`, with `statuses` in query order, produced at `now`
    /// and valid for `validity_secs`; the request's nonce is echoed (§4.4.1).
    pub fn ocsp_response(&self, req: &Request, statuses: &[CertStatus], now: i64, validity_secs: i64) -> Result<Vec<u8>, PkiError> {
        let time = |t: i64| der::generalized_time_millis(i128::from(t) * 1000);
        let responses: Vec<Vec<u8>> = req
            .queries
            .iter()
            .zip(statuses)
            .map(|(q, status)| {
                let status = match status {
                    CertStatus::Good => vec![0x80, 0x00],
                    CertStatus::Unknown => vec![0x82, 0x00],
                    CertStatus::Revoked { at, reason } => {
                        der::tlv(0xA1, &[time(*at), der::explicit(0, &der::tlv(0x0A, &[*reason as u8]))].concat())
                    }
                };
                der::seq(&[&q.cert_id, &status, &time(now), &der::explicit(0, &time(now + validity_secs))])
            })
            .collect();
        let response_refs: Vec<&[u8]> = responses.iter().map(Vec::as_slice).collect();
        let (ca_name, _) =
            cloudsign_asn1::cert::subject_and_key(&self.issuing_der).ok_or_else(|| PkiError::Build("unreadable CA certificate".into()))?;
        let extensions = match &req.nonce {
            Some(nonce) => der::explicit(1, &der::seq(&[nonce])),
            None => Vec::new(),
        };
        let response_data = der::seq(&[&der::explicit(1, &ca_name), &time(now), &der::seq(&response_refs), &extensions]);
        let scheme = SignAlgorithm::Ecdsa(HashAlgorithm::Sha384);
        let signature = self.sign_message(scheme, &response_data)?;
        let basic = der::seq(&[&response_data, &der::algorithm(scheme.oid()), &der::tlv(0x03, &[&[0u8][..], &signature].concat())]);
        let bytes = der::seq(&[&der::oid(ID_PKIX_OCSP_BASIC), &der::octets(&basic)]);
        Ok(der::seq(&[&der::tlv(0x0A, &[0]), &der::explicit(0, &bytes)]))
    }
}
