//! How a device signs its messages: a JWS in the compact serialization (RFC 7515 §7.1) with
//! `ES256` (ECDSA P-256 and SHA-256, RFC 7518 §3.4), signed with the device key.
//!
//! The bytes signed are the JWS signing input, `ASCII(BASE64URL(header) ‖ '.' ‖
//! BASE64URL(payload))` (RFC 7515 §5.1): the service verifies the bytes it received, so no
//! canonical form of the JSON is needed (RFC 8785 would be, had the signature been over
//! re-encoded JSON), and any JOSE library can check a stored answer later.
//!
//! The header is fixed (RFC 8725 §3.1, §3.11): `alg` is `ES256` and nothing else (`none`, HMAC
//! and RSA are refused), `typ` is [`JWS_TYPE`], `kid` is the device id (the pairing id in a
//! `pair` message); any other member, `crit` included, is refused.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::EcdsaKeyPair;
use serde::{Deserialize, Serialize};

use crate::key::DeviceKey;
use crate::message::{DeviceMessage, Id, Pair};
use crate::{MAX_MESSAGE_BYTES, Refusal, b64};

/// The JWS `typ` of device messages (RFC 7515 §4.1.9; explicit typing, RFC 8725 §3.11).
pub const JWS_TYPE: &str = "cloudsign-device+jws";

/// The one algorithm of device messages.
pub const JWS_ALG: &str = "ES256";

/// The protected header of a device message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// `ES256`.
    pub alg: String,
    /// [`JWS_TYPE`].
    pub typ: String,
    /// The device id (the pairing id in a `pair` message).
    pub kid: Id,
}

/// A device message as received: its header read and checked, its signature not yet verified.
#[derive(Debug, Clone)]
pub struct Jws {
    header: Header,
    signing_input: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl Jws {
    /// Read a compact JWS: three base64url parts, a header as [`Header`] requires, a 64-byte
    /// signature. Nothing in the payload is looked at yet.
    pub fn parse(compact: &str) -> Result<Self, Refusal> {
        if compact.len() > MAX_MESSAGE_BYTES {
            return Err(Refusal::Malformed(format!("a device message has at most {MAX_MESSAGE_BYTES} bytes")));
        }
        let mut parts = compact.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(Refusal::Malformed("a device message is a compact JWS: three parts separated by '.'".into()));
        };
        let header_bytes = b64::decode(h).ok_or_else(|| Refusal::Malformed("the JWS header is not base64url".into()))?;
        let payload = b64::decode(p).ok_or_else(|| Refusal::Malformed("the JWS payload is not base64url".into()))?;
        let signature = b64::decode(s).ok_or_else(|| Refusal::Malformed("the JWS signature is not base64url".into()))?;
        let header: Header =
            serde_json::from_slice(&header_bytes).map_err(|e| Refusal::Malformed(format!("the JWS header: {}", json_error(&e))))?;
        if header.alg != JWS_ALG {
            return Err(Refusal::Unsupported("JWS algorithms other than ES256"));
        }
        if header.typ != JWS_TYPE {
            return Err(Refusal::Malformed(format!("the JWS typ must be {JWS_TYPE}")));
        }
        if signature.len() != 64 {
            return Err(Refusal::Malformed("an ES256 signature has 64 bytes (RFC 7518 §3.4)".into()));
        }
        let signing_input = compact.as_bytes()[..h.len() + 1 + p.len()].to_vec();
        Ok(Self { header, signing_input, payload, signature })
    }

    /// The `kid`: the device (or the pairing session) that claims to have signed.
    pub fn kid(&self) -> &Id {
        &self.header.kid
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The bytes the signature is over (RFC 7515 §5.2 step 8).
    pub fn signing_input(&self) -> &[u8] {
        &self.signing_input
    }

    /// Verify the signature with `key`, then read the payload. A signature by any other key is
    /// [`Refusal::Foreign`]; the payload is read only once the signature holds.
    pub fn verify(&self, key: &DeviceKey) -> Result<DeviceMessage, Refusal> {
        if !key.verify_es256(&self.signing_input, &self.signature) {
            return Err(Refusal::Foreign("the signature is not the device key's"));
        }
        parse_payload(&self.payload)
    }

    /// A `pair` message verifies with the device key it carries (the device is not known yet):
    /// read the payload, take the key, verify. Returns the message and the key.
    pub fn verify_pairing(&self) -> Result<(Pair, DeviceKey), Refusal> {
        let Ok(DeviceMessage::Pair(pair)) = parse_payload(&self.payload) else {
            // Either not a message or another type: a pairing endpoint takes only `pair`.
            return Err(Refusal::Malformed("the pairing step takes a pair message".into()));
        };
        let key = DeviceKey::from_spki(pair.device_key.as_bytes())?;
        if !key.verify_es256(&self.signing_input, &self.signature) {
            return Err(Refusal::Foreign("the pair message is not signed with the device key it carries"));
        }
        Ok((pair, key))
    }
}

/// serde's message without the value it may quote (a device's bytes are not echoed back).
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde_json appends " at line L column C"; keep the first clause, which names the member or
    // the expected type, and drop quoted values.
    let clause = text.split(" at line ").next().unwrap_or("invalid JSON");
    match clause.find('`').or_else(|| clause.find('"')) {
        Some(i) if !clause.starts_with("unknown field") && !clause.starts_with("missing field") => {
            format!("{}…", &clause[..i])
        }
        _ => clause.to_string(),
    }
}

/// Read a device message payload: version first (so that a device of a later version learns
/// that, not "malformed"), then strictly.
pub fn parse_payload(payload: &[u8]) -> Result<DeviceMessage, Refusal> {
    #[derive(Deserialize)]
    struct Probe {
        v: serde_json::Value,
    }
    let probe: Probe = serde_json::from_slice(payload).map_err(|e| Refusal::Malformed(format!("the payload: {}", json_error(&e))))?;
    match probe.v.as_u64() {
        Some(1) => {}
        Some(v) => return Err(Refusal::UnsupportedVersion(v)),
        None => return Err(Refusal::Malformed("the payload: v must be a positive integer".into())),
    }
    serde_json::from_slice(payload).map_err(|e| Refusal::Malformed(format!("the payload: {}", json_error(&e))))
}

/// Sign `message` as a device: the compact JWS with `kid` (the device id, or the pairing id for
/// a `pair` message). For devices written in Rust (the bridge agent) and for tests.
pub fn sign(key: &EcdsaKeyPair, kid: &Id, message: &DeviceMessage) -> String {
    let header = Header { alg: JWS_ALG.into(), typ: JWS_TYPE.into(), kid: kid.clone() };
    // Serializing these types cannot fail: plain structs, string keys.
    let h = b64::encode(&serde_json::to_vec(&header).expect("header serializes"));
    let p = b64::encode(&serde_json::to_vec(message).expect("message serializes"));
    let input = format!("{h}.{p}");
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).expect("ECDSA signing");
    format!("{input}.{}", b64::encode(sig.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::tests::{p256, spki_of};
    use crate::message::{Hello, V1};

    fn hello() -> DeviceMessage {
        DeviceMessage::Hello(Hello { v: V1, aud: "https://sign.example".into(), counter: 3, challenge: vec![1, 2].into(), agent: None })
    }

    #[test]
    fn sign_parse_verify() {
        let key = p256();
        let device = DeviceKey::from_spki(&spki_of(&key)).unwrap();
        let kid = Id::new("dev_1").unwrap();
        let jws = sign(&key, &kid, &hello());
        let parsed = Jws::parse(&jws).unwrap();
        assert_eq!(parsed.kid(), &kid);
        assert_eq!(parsed.verify(&device).unwrap(), hello());
        // Another device's key: foreign.
        let other = DeviceKey::from_spki(&spki_of(&p256())).unwrap();
        assert!(matches!(parsed.verify(&other), Err(Refusal::Foreign(_))));
    }

    #[test]
    fn tampering_and_bad_headers() {
        let key = p256();
        let device = DeviceKey::from_spki(&spki_of(&key)).unwrap();
        let kid = Id::new("dev_1").unwrap();
        let jws = sign(&key, &kid, &hello());
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let (h, _) = input.split_once('.').unwrap();
        // A payload swapped under the same signature.
        let mut other = hello();
        if let DeviceMessage::Hello(m) = &mut other {
            m.counter = 4;
        }
        let p2 = b64::encode(&serde_json::to_vec(&other).unwrap());
        let swapped = format!("{h}.{p2}.{sig}");
        assert!(matches!(Jws::parse(&swapped).unwrap().verify(&device), Err(Refusal::Foreign(_))));
        // Headers: alg none, alg HS256, extra member, wrong typ.
        for header in [
            r#"{"alg":"none","typ":"cloudsign-device+jws","kid":"dev_1"}"#,
            r#"{"alg":"HS256","typ":"cloudsign-device+jws","kid":"dev_1"}"#,
            r#"{"alg":"ES256","typ":"cloudsign-device+jws","kid":"dev_1","crit":["exp"]}"#,
            r#"{"alg":"ES256","typ":"JWT","kid":"dev_1"}"#,
            r#"{"alg":"ES256","typ":"cloudsign-device+jws"}"#,
        ] {
            let text = format!("{}.{}.{sig}", b64::encode(header.as_bytes()), input.split_once('.').unwrap().1);
            assert!(Jws::parse(&text).is_err(), "{header}");
        }
        // Structure.
        for bad in ["", "a.b", "a.b.c.d", &format!("{input}.{sig}="), &format!("{input}.AAAA")] {
            assert!(matches!(Jws::parse(bad), Err(Refusal::Malformed(_))), "{bad}");
        }
        assert!(matches!(Jws::parse(&"a".repeat(MAX_MESSAGE_BYTES + 1)), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn versions_and_errors_do_not_echo() {
        assert_eq!(parse_payload(br#"{"v":2,"type":"hello"}"#), Err(Refusal::UnsupportedVersion(2)));
        assert!(matches!(parse_payload(br#"{"type":"hello"}"#), Err(Refusal::Malformed(_))));
        assert!(matches!(parse_payload(b"[1]"), Err(Refusal::Malformed(_))));
        let Err(Refusal::Malformed(text)) = parse_payload(br#"{"v":1,"type":"hello","aud":"a","counter":"SECRETVALUE","challenge":"AA"}"#)
        else {
            panic!("a string counter is malformed");
        };
        assert!(!text.contains("SECRETVALUE"), "{text}");
        let Err(Refusal::Malformed(text)) = parse_payload(br#"{"v":1,"type":"hello","aud":"a","counter":1,"challenge":"AA","x":1}"#) else {
            panic!("an extra member is malformed");
        };
        assert!(text.contains("unknown field"), "{text}");
    }
}
