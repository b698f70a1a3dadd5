//! Time-stamps from any RFC 3161 time-stamping authority over HTTP (RFC 3161 §3.4): a DER
//! `TimeStampReq` posted as `application/timestamp-query`, a `TimeStampResp` back. Used instead
//! of the CSC service's `signatures/timestamp` when `--tsa URL` is given (or the service has
//! none).

use cloudsign_asn1::der::{self, Reader};
use cloudsign_csc::HashAlgorithm;
use reqwest::header::CONTENT_TYPE;

use crate::error::{ClientError, refusal_at};

/// DER tags used here.
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BOOLEAN_TRUE: [u8; 3] = [0x01, 0x01, 0xff];

/// The method name shown in errors.
const METHOD: &str = "RFC 3161 time-stamp";

/// RFC 3161 §2.4.1 TimeStampReq: version 1, the message imprint, a nonce, `certReq` TRUE (the
/// TSA's certificate goes into the token, as validators need it).
pub fn request(hash: HashAlgorithm, imprint: &[u8], nonce: &[u8]) -> Vec<u8> {
    let imprint = der::seq(&[&der::algorithm(hash.oid()), &der::octets(imprint)]);
    der::seq(&[&der::small_uint(1), &imprint, &der::uint(nonce), &BOOLEAN_TRUE])
}

/// RFC 3161 §2.4.2 TimeStampResp: the token when the status is granted (0) or
/// grantedWithMods (1); otherwise the status and its text.
pub fn token_of(response: &[u8]) -> Result<Vec<u8>, String> {
    let mut outer = Reader::new(response);
    let body = outer.expect(SEQUENCE).ok_or("not a TimeStampResp")?;
    let mut fields = Reader::new(body);
    let status_info = fields.expect(SEQUENCE).ok_or("no PKIStatusInfo")?;
    let mut status = Reader::new(status_info);
    let code = status.expect(INTEGER).ok_or("no PKIStatus")?;
    if !(code == [0] || code == [1]) {
        // PKIFreeText: a SEQUENCE of UTF8String.
        let text = status
            .expect(SEQUENCE)
            .map(|t| {
                let mut r = Reader::new(t);
                let mut parts = Vec::new();
                while let Some((_, s, _)) = r.next() {
                    parts.push(String::from_utf8_lossy(s).into_owned());
                }
                parts.join("; ")
            })
            .unwrap_or_default();
        return Err(format!(
            "the TSA refused (PKIStatus {}){}",
            code.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)),
            if text.is_empty() { String::new() } else { format!(": {text}") }
        ));
    }
    let (tag, _, whole) = fields.next().ok_or("granted, but no time-stamp token")?;
    if tag != SEQUENCE {
        return Err("the time-stamp token is not a ContentInfo".into());
    }
    Ok(whole.to_vec())
}

/// Ask the TSA at `url` for a token over `imprint`.
pub async fn timestamp(http: &reqwest::Client, url: &str, hash: HashAlgorithm, imprint: &[u8]) -> Result<Vec<u8>, ClientError> {
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| ClientError::Invalid("no random numbers".into()))?;
    let transport = |source| ClientError::Transport { method: METHOD.into(), source };
    let resp = http
        .post(url)
        .header(CONTENT_TYPE, "application/timestamp-query")
        .body(request(hash, imprint, &nonce))
        .send()
        .await
        .map_err(transport)?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(transport)?;
    if !status.is_success() {
        return Err(refusal_at(METHOD, url, status, &bytes));
    }
    token_of(&bytes).map_err(|detail| ClientError::Malformed { method: format!("{METHOD} from {url}"), detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_rfc_3161_der() {
        let req = request(HashAlgorithm::Sha256, &[7; 32], &[0x80, 1]);
        // SEQUENCE { INTEGER 1, SEQUENCE { SEQUENCE { OID sha256 }, OCTET STRING }, INTEGER
        // 0x008001 (positive), BOOLEAN TRUE }
        let mut r = Reader::new(&req);
        let body = r.expect(SEQUENCE).unwrap();
        assert!(r.is_empty());
        let mut f = Reader::new(body);
        assert_eq!(f.expect(INTEGER).unwrap(), [1]);
        let imprint = f.expect(SEQUENCE).unwrap();
        assert!(imprint.ends_with(&[0x04, 32, 7, 7]) || imprint.ends_with(&[7; 32]));
        assert_eq!(f.expect(INTEGER).unwrap(), [0, 0x80, 1]);
        assert_eq!(f.rest(), BOOLEAN_TRUE);
    }

    #[test]
    fn responses_give_the_token_or_the_refusal() {
        let token = der::seq(&[&der::oid("1.2.840.113549.1.7.2")]);
        let granted = der::seq(&[&der::seq(&[&der::small_uint(0)]), &token]);
        assert_eq!(token_of(&granted).unwrap(), token);
        let text = der::tlv(0x0c, b"bad alg");
        let rejected = der::seq(&[&der::seq(&[&der::small_uint(2), &der::seq(&[&text])])]);
        assert_eq!(token_of(&rejected).unwrap_err(), "the TSA refused (PKIStatus 2): bad alg");
        assert!(token_of(b"<html>").is_err());
    }
}
