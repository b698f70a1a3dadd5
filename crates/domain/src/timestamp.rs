//! Time-stamping: `signatures/timestamp` (CSC v1 §11.10, v2 §11.13) and the RFC 3161 HTTP
//! endpoint, both on the built-in TSA.

use cloudsign_asn1::HashAlgorithm;
use cloudsign_pki::tsa::{Failure, Request};
use cloudsign_store::Outcome;
use serde_json::json;

use crate::{Error, RequestContext, Result, Service, Session};

pub(crate) fn now_millis() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i128).unwrap_or(0)
}

impl Service {
    /// Whether the TSA runs (`info` lists `signatures/timestamp` only then).
    pub fn tsa_enabled(&self) -> bool {
        self.tsa.is_some()
    }

    /// `signatures/timestamp`: a TimeStampToken over `digest`, with the nonce (hex, as CSC
    /// sends it) echoed. The token carries the TSA certificate and the issuing CA.
    pub async fn timestamp(
        &self,
        session: &Session,
        ctx: &RequestContext,
        hash: HashAlgorithm,
        digest: Vec<u8>,
        nonce_hex: Option<&str>,
    ) -> Result<Vec<u8>> {
        let tsa = self.tsa.as_ref().ok_or_else(|| Error::invalid("The time-stamping authority is not enabled"))?;
        if digest.len() != hash.len() {
            return Err(Error::invalid("Invalid digest value length"));
        }
        let nonce = match nonce_hex {
            None => None,
            Some(text) => Some(nonce_integer(text).ok_or_else(|| Error::invalid("Invalid parameter nonce"))?),
        };
        let imprint = crate::secrets::hex(&digest);
        let token =
            crate::service::blocking_if(self.tsa_in_hsm, || tsa.token(&Request { hash, digest, nonce, cert_req: true }, now_millis()))?;
        self.audit(
            &session.user_name,
            "signatures.timestamp",
            Outcome::Ok,
            None,
            json!({"client": ctx.client, "hashAlgo": hash.oid(), "hash": imprint}),
        )
        .await?;
        Ok(token)
    }

    /// `POST /tsa` (RFC 3161 §3.4): a DER TimeStampResp for a DER TimeStampReq; malformed or
    /// unsupported requests get a `rejection` with its failure info, never an HTTP error.
    pub async fn tsa_respond(&self, ctx: &RequestContext, request: &[u8]) -> Result<Vec<u8>> {
        let Some(tsa) = self.tsa.as_ref() else {
            return Ok(cloudsign_pki::tsa::rejection(Failure::SystemFailure));
        };
        let (response, parsed) = crate::service::blocking_if(self.tsa_in_hsm, || tsa.respond(request, now_millis()));
        let detail = match &parsed {
            Ok(r) => json!({"client": ctx.client, "hashAlgo": r.hash.oid(), "hash": crate::secrets::hex(&r.digest)}),
            Err(f) => json!({"client": ctx.client, "reason": f.text()}),
        };
        self.audit("-", "tsa.timestamp", if parsed.is_ok() { Outcome::Ok } else { Outcome::Refused }, None, detail).await?;
        Ok(response)
    }
}

/// A hex nonce (CSC: "a large random number as hex string") as DER INTEGER content: positive,
/// minimal.
fn nonce_integer(text: &str) -> Option<Vec<u8>> {
    let text = if text.len() % 2 == 1 { format!("0{text}") } else { text.to_string() };
    let bytes = hex::decode(text).ok()?;
    if bytes.is_empty() || bytes.len() > 32 {
        return None;
    }
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(bytes.len() - 1);
    let mut out = Vec::with_capacity(bytes.len() + 1);
    if bytes[skip] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[skip..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nonces() {
        assert_eq!(super::nonce_integer("ff"), Some(vec![0, 0xff]));
        assert_eq!(super::nonce_integer("0001"), Some(vec![1]));
        assert_eq!(super::nonce_integer("abc"), Some(vec![0x0a, 0xbc]));
        assert_eq!(super::nonce_integer("xyz"), None);
        assert_eq!(super::nonce_integer(""), None);
    }
}
