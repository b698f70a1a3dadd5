//! JAdES (ETSI TS 119 182-1) with a detached payload (RFC 7515 Appendix F, unencoded payload
//! `b64: false`, RFC 7797): any JOSE library verifies it given the file. The protected header
//! carries `x5t#S256` and `x5c` (the signer's certificate and chain) and `sigT`, the claimed
//! signing time, listed in `crit` with `b64`.
//!
//! B-B is the compact serialization. B-T and B-LT need the unprotected header `etsiU`
//! (TS 119 182-1 §5.3), which only the JSON serialization has: the flattened JWS JSON object
//! (RFC 7515 §7.2.2) without `payload`, with `etsiU` holding `sigTst` (the signature
//! time-stamp, §5.3.4) and for B-LT `xVals` and `rVals` (certificate and revocation values,
//! §5.3.5), each element base64url-encoded JSON.

use cloudsign_asn1::{HashAlgorithm, SignAlgorithm, b64};

pub use crate::Params;
use crate::{AdesError, digest};

/// The signing input, waiting for its signature.
pub struct Prepared {
    scheme: SignAlgorithm,
    header_b64: String,
    /// Attached: `BASE64URL(payload)`, which the JWS carries.
    payload_b64: Option<String>,
    /// The digest the signer signs: the hash of `BASE64URL(header) "." payload`.
    pub to_be_signed: Vec<u8>,
}

/// The JWS `alg` of a scheme (RFC 7518 §3.1). ES256/384/512 name the curve too (P-256 with
/// SHA-256, P-384 with SHA-384, P-521 with SHA-512): callers check the key fits.
fn jws_alg(scheme: SignAlgorithm) -> &'static str {
    use HashAlgorithm::*;
    match scheme {
        SignAlgorithm::Ecdsa(Sha256) => "ES256",
        SignAlgorithm::Ecdsa(Sha384) => "ES384",
        SignAlgorithm::Ecdsa(Sha512) => "ES512",
        SignAlgorithm::RsaPkcs1(Sha256) => "RS256",
        SignAlgorithm::RsaPkcs1(Sha384) => "RS384",
        SignAlgorithm::RsaPkcs1(Sha512) => "RS512",
        SignAlgorithm::RsaPss(Sha256) => "PS256",
        SignAlgorithm::RsaPss(Sha384) => "PS384",
        SignAlgorithm::RsaPss(Sha512) => "PS512",
    }
}

/// Build the protected header and the digest to sign for `payload` (kept by the caller: it is
/// detached).
pub fn prepare_detached(payload: &[u8], p: &Params<'_>) -> Result<Prepared, AdesError> {
    let header_b64 = protected_header(p, true);
    let mut input = Vec::with_capacity(header_b64.len() + 1 + payload.len());
    input.extend_from_slice(header_b64.as_bytes());
    input.push(b'.');
    input.extend_from_slice(payload);
    Ok(Prepared { scheme: p.scheme, to_be_signed: digest(p.scheme.hash(), &input), header_b64, payload_b64: None })
}

/// An attached JWS: the payload travels base64url-encoded inside it (RFC 7515 §3, `b64`
/// left at its default), for documents small enough to carry.
pub fn prepare_attached(payload: &[u8], p: &Params<'_>) -> Result<Prepared, AdesError> {
    let header_b64 = protected_header(p, false);
    let payload_b64 = b64::encode_url(payload);
    let input = format!("{header_b64}.{payload_b64}");
    Ok(Prepared { scheme: p.scheme, to_be_signed: digest(p.scheme.hash(), input.as_bytes()), header_b64, payload_b64: Some(payload_b64) })
}

/// Detached by reference (TS 119 182-1 §5.2.8.3.3, `sigD` with mechanism
/// `http://uri.etsi.org/19182/ObjectIdByURIHash`): the protected header names each document
/// (`pars`, its URI-encoded file name) with its digest (`hashV`, base64url, with the scheme's
/// hash), and the JWS payload is empty. Documents are hashed by the caller as they stream, and
/// one JWS can cover several.
pub fn prepare_sigd(documents: &[(&str, &[u8])], p: &Params<'_>) -> Result<Prepared, AdesError> {
    let hash = p.scheme.hash();
    if documents.is_empty() || documents.iter().any(|(_, d)| d.len() != hash.len()) {
        return Err(AdesError::DigestLength(hash.name()));
    }
    let hash_m = match hash {
        HashAlgorithm::Sha256 => "S256",
        HashAlgorithm::Sha384 => "S384",
        HashAlgorithm::Sha512 => "S512",
    };
    let sig_d = serde_json::json!({
        "mId": "http://uri.etsi.org/19182/ObjectIdByURIHash",
        "pars": documents.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        "hashM": hash_m,
        "hashV": documents.iter().map(|(_, d)| b64::encode_url(d)).collect::<Vec<_>>(),
    });
    let header_b64 = header_with(p, false, Some(sig_d));
    let to_be_signed = digest(hash, format!("{header_b64}.").as_bytes());
    Ok(Prepared { scheme: p.scheme, to_be_signed, header_b64, payload_b64: None })
}

/// The same for a payload too large to hold: the caller hashes `signing_input_prefix()`
/// followed by the payload with the scheme's hash, and hands the digest over.
pub fn prepare_streamed(p: &Params<'_>) -> StreamedPrepared {
    StreamedPrepared { scheme: p.scheme, header_b64: protected_header(p, true) }
}

/// A JAdES signature whose signing input the caller hashes itself.
pub struct StreamedPrepared {
    scheme: SignAlgorithm,
    header_b64: String,
}

impl StreamedPrepared {
    /// What precedes the payload in the JWS signing input: `BASE64URL(header) "."`.
    pub fn signing_input_prefix(&self) -> Vec<u8> {
        format!("{}.", self.header_b64).into_bytes()
    }

    /// With the digest of the whole signing input.
    pub fn with_digest(self, to_be_signed: Vec<u8>) -> Prepared {
        Prepared { scheme: self.scheme, header_b64: self.header_b64, to_be_signed, payload_b64: None }
    }
}

/// `BASE64URL(UTF8(JWS Protected Header))`; a detached payload is unencoded (`b64: false`).
fn protected_header(p: &Params<'_>, detached: bool) -> String {
    header_with(p, detached, None)
}

fn header_with(p: &Params<'_>, detached: bool, sig_d: Option<serde_json::Value>) -> String {
    let alg = jws_alg(p.scheme);
    let t = cloudsign_pki::generalized_time(p.signing_time);
    let sig_t = format!("{}-{}-{}T{}:{}:{}Z", &t[0..4], &t[4..6], &t[6..8], &t[8..10], &t[10..12], &t[12..14]);
    let x5c: Vec<String> = std::iter::once(p.certificate).chain(p.chain.iter().map(Vec::as_slice)).map(b64::encode).collect();
    let mut header = serde_json::json!({
        "alg": alg,
        "b64": false,
        "crit": ["b64", "sigT"],
        "sigT": sig_t,
        "x5t#S256": b64::encode_url(&digest(HashAlgorithm::Sha256, p.certificate)),
        "x5c": x5c,
    });
    if !detached {
        header.as_object_mut().map(|h| h.remove("b64"));
        header["crit"] = serde_json::json!(["sigT"]);
    }
    if let Some(sig_d) = sig_d {
        header["sigD"] = sig_d;
        header["crit"] = serde_json::json!(["sigT", "sigD"]);
    }
    b64::encode_url(header.to_string().as_bytes())
}

/// What the archive time-stamp (`arcTst`, TS 119 182-1 §5.3.6.3) of a JWS JSON covers: the
/// payload, then `suffix`. The payload is the JWS's own base64url `payload` when attached;
/// for a detached `b64: false` JWS it is the document's bytes, which the caller streams.
pub struct ArchiveInput {
    /// Attached: the base64url-encoded payload, as it appears in the JWS.
    pub payload: Option<String>,
    /// `"." protected "." signature "."` and then every `etsiU` element so far, as written
    /// (base64url strings), concatenated in order (§5.3.6.3.1.1).
    pub suffix: Vec<u8>,
}

fn parse_json_jws(jws_json: &str) -> Result<serde_json::Map<String, serde_json::Value>, AdesError> {
    match serde_json::from_str::<serde_json::Value>(jws_json) {
        Ok(serde_json::Value::Object(o))
            if o.get("protected").is_some_and(|v| v.is_string()) && o.get("signature").is_some_and(|v| v.is_string()) =>
        {
            Ok(o)
        }
        _ => Err(AdesError::Signature),
    }
}

/// B-LTA, first step: the message imprint input of an archive time-stamp over a B-LT JWS JSON.
pub fn archive_input(jws_json: &str) -> Result<ArchiveInput, AdesError> {
    let o = parse_json_jws(jws_json)?;
    let text = |k: &str| o.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let mut suffix = format!(".{}.{}.", text("protected"), text("signature")).into_bytes();
    for item in o.get("header").and_then(|h| h.get("etsiU")).and_then(|e| e.as_array()).into_iter().flatten() {
        // Our etsiU elements are base64url strings; clear JSON ones would need a
        // canonicalization (§5.3.6.3.1.2), which is not offered.
        suffix.extend_from_slice(item.as_str().ok_or(AdesError::Signature)?.as_bytes());
    }
    Ok(ArchiveInput { payload: o.get("payload").and_then(|p| p.as_str()).map(str::to_string), suffix })
}

/// B-LTA, second step: the JWS JSON with `{"arcTst": {"tstTokens": [{"val": token}]}}`
/// appended to `etsiU`.
pub fn add_archive_timestamp(jws_json: &str, token: &[u8]) -> Result<String, AdesError> {
    let mut o = parse_json_jws(jws_json)?;
    let arc = serde_json::json!({"arcTst": {"tstTokens": [{"val": b64::encode(token)}]}});
    let element = serde_json::Value::String(b64::encode_url(arc.to_string().as_bytes()));
    let header = o.entry("header").or_insert_with(|| serde_json::json!({}));
    match header.get_mut("etsiU").and_then(|e| e.as_array_mut()) {
        Some(list) => list.push(element),
        None => header["etsiU"] = serde_json::json!([element]),
    }
    Ok(serde_json::Value::Object(o).to_string())
}

/// Coordinate width of an ECDSA scheme's curve, for the JWS r ‖ s form (RFC 7518 §3.4).
fn ecdsa_width(scheme: SignAlgorithm) -> Option<usize> {
    match scheme {
        SignAlgorithm::Ecdsa(HashAlgorithm::Sha256) => Some(32),
        SignAlgorithm::Ecdsa(HashAlgorithm::Sha384) => Some(48),
        SignAlgorithm::Ecdsa(HashAlgorithm::Sha512) => Some(66),
        _ => None,
    }
}

impl Prepared {
    /// The JWS signing input whose hash is [`to_be_signed`](Self::to_be_signed) (RFC 7515 §5.1,
    /// ETSI TS 119 432's DTBS), for a signer that hashes what it signs (a WebCrypto key):
    /// `BASE64URL(header) "."` and the payload part. Attached, that is the base64url payload
    /// this JWS carries, and `detached_payload` is ignored; otherwise the payload is not held
    /// here and the caller passes it as the signing input has it: the document unencoded
    /// (`b64: false`, RFC 7797 §3) for [`prepare_detached`] and [`prepare_streamed`], nothing
    /// for [`prepare_sigd`]. It is a copy: callers bound the size first.
    pub fn signing_input(&self, detached_payload: &[u8]) -> Vec<u8> {
        let payload = self.payload_b64.as_deref().map(str::as_bytes).unwrap_or(detached_payload);
        let mut input = Vec::with_capacity(self.header_b64.len() + 1 + payload.len());
        input.extend_from_slice(self.header_b64.as_bytes());
        input.push(b'.');
        input.extend_from_slice(payload);
        input
    }

    /// The JWS signature value: ECDSA signatures come in as DER `ECDSA-Sig-Value` and go out as
    /// fixed-width r ‖ s (RFC 7518 §3.4).
    fn value(&self, signature: &[u8]) -> Result<Vec<u8>, AdesError> {
        match ecdsa_width(self.scheme) {
            Some(width) => crate::ecdsa_der_to_raw(signature, width).ok_or(AdesError::Signature),
            None => Ok(signature.to_vec()),
        }
    }

    /// The compact JWS (B-B): `header..signature` with the payload left out, or
    /// `header.payload.signature` attached.
    pub fn finish(self, signature: &[u8]) -> Result<String, AdesError> {
        Ok(format!("{}.{}.{}", self.header_b64, self.payload_b64.as_deref().unwrap_or(""), b64::encode_url(&self.value(signature)?)))
    }

    /// The message imprint of the B-T signature time-stamp: the hash of the base64url-encoded
    /// JWS signature value (TS 119 182-1 §5.3.4.1).
    pub fn timestamp_imprint(&self, signature: &[u8]) -> Result<(HashAlgorithm, Vec<u8>), AdesError> {
        let hash = self.scheme.hash();
        Ok((hash, digest(hash, b64::encode_url(&self.value(signature)?).as_bytes())))
    }

    /// The flattened JWS JSON serialization without `payload` (B-T with `timestamp_token`,
    /// B-LT with `validation` too): `{"protected", "header": {"etsiU": [...]}, "signature"}`.
    pub fn finish_json(
        self,
        signature: &[u8],
        timestamp_token: Option<&[u8]>,
        validation: Option<&crate::cades::ValidationData>,
    ) -> Result<String, AdesError> {
        let value = b64::encode_url(&self.value(signature)?);
        let mut etsi_u = Vec::new();
        // Each unsigned property is one JSON object, base64url-encoded (§5.3.1).
        let mut push = |v: serde_json::Value| etsi_u.push(serde_json::Value::String(b64::encode_url(v.to_string().as_bytes())));
        if let Some(token) = timestamp_token {
            push(serde_json::json!({"sigTst": {"tstTokens": [{"val": b64::encode(token)}]}}));
        }
        if let Some(v) = validation {
            if !v.certificates.is_empty() {
                let certs: Vec<_> = v.certificates.iter().map(|c| serde_json::json!({"x509Cert": {"val": b64::encode(c)}})).collect();
                push(serde_json::json!({"xVals": certs}));
            }
            let crls: Vec<_> = v.crls.iter().map(|c| serde_json::json!({"val": b64::encode(c)})).collect();
            let ocsps: Vec<_> = v.ocsp.iter().map(|o| serde_json::json!({"val": b64::encode(o)})).collect();
            let mut r = serde_json::Map::new();
            if !crls.is_empty() {
                r.insert("crlVals".into(), crls.into());
            }
            if !ocsps.is_empty() {
                r.insert("ocspVals".into(), ocsps.into());
            }
            if !r.is_empty() {
                push(serde_json::json!({"rVals": r}));
            }
        }
        let mut jws = serde_json::json!({"protected": self.header_b64, "signature": value});
        if let Some(payload) = &self.payload_b64 {
            jws["payload"] = serde_json::json!(payload);
        }
        if !etsi_u.is_empty() {
            jws["header"] = serde_json::json!({"etsiU": etsi_u});
        }
        Ok(jws.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signing input a hashing signer gets hashes to `to_be_signed` in every form: the
    /// payload part is the JWS's own when attached, the caller's otherwise.
    #[test]
    fn signing_input_hashes_to_to_be_signed() {
        let hash = HashAlgorithm::Sha256;
        let cert = b"certificate bytes (only hashed and encoded here)".to_vec();
        let p = Params { scheme: SignAlgorithm::Ecdsa(hash), certificate: &cert, chain: &[], signing_time: 1_750_000_000 };
        let payload = br#"{"a":1}"#;
        let attached = prepare_attached(payload, &p).unwrap();
        let input = attached.signing_input(b"ignored when attached");
        assert!(input.ends_with(b".eyJhIjoxfQ"), "{}", String::from_utf8_lossy(&input));
        assert_eq!(digest(hash, &input), attached.to_be_signed);
        let detached = prepare_detached(payload, &p).unwrap();
        let input = detached.signing_input(payload);
        assert!(input.ends_with(br#".{"a":1}"#));
        assert_eq!(digest(hash, &input), detached.to_be_signed);
        let sigd = prepare_sigd(&[("a.txt", &digest(hash, payload))], &p).unwrap();
        let input = sigd.signing_input(b"");
        assert_eq!(input.last(), Some(&b'.'));
        assert_eq!(digest(hash, &input), sigd.to_be_signed);
        let streamed = prepare_streamed(&p);
        let whole = [streamed.signing_input_prefix(), payload.to_vec()].concat();
        let streamed = streamed.with_digest(digest(hash, &whole));
        assert_eq!(streamed.signing_input(payload), whole);
    }

    #[test]
    fn ecdsa_der_becomes_fixed_width() {
        let der = [0x30, 0x08, 0x02, 0x02, 0x00, 0x80, 0x02, 0x02, 0x01, 0x02];
        let raw = crate::ecdsa_der_to_raw(&der, 32).unwrap();
        assert_eq!(raw.len(), 64);
        assert_eq!(raw[31], 0x80);
        assert_eq!(&raw[62..], &[0x01, 0x02]);
    }
}
