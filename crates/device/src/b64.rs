//! Binary values in device messages: base64url without padding (RFC 7515 §2 `BASE64URL`, RFC 4648
//! §5), the form JOSE uses and that a browser gets from its own encoder in a few lines.
//!
//! Decoding is strict: one spelling per value (no padding, no standard alphabet, no whitespace),
//! so that two encodings of one message never differ and a signed message means one thing.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Encode as base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    cloudsign_asn1::b64::encode_url(bytes)
}

/// Decode base64url without padding, refusing every other spelling.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    // `decode_lenient` accepts both alphabets with or without padding; the re-encoding check
    // keeps only the canonical base64url form (which also refuses non-zero trailing bits).
    if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return None;
    }
    let bytes = cloudsign_asn1::b64::decode_lenient(text)?;
    (encode(&bytes) == text).then_some(bytes)
}

/// Bytes that travel as base64url (a digest, a signature, a DER structure, a nonce).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct B64(pub Vec<u8>);

impl B64 {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for B64 {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for B64 {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl AsRef<[u8]> for B64 {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for B64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B64({})", encode(&self.0))
    }
}

impl Serialize for B64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = B64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64url string without padding")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<B64, E> {
                // The value is not echoed: it may be long, and the message names the member.
                decode(v).map(B64).ok_or_else(|| E::custom("not base64url without padding (RFC 7515 §2)"))
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_only() {
        assert_eq!(decode("AQID"), Some(vec![1, 2, 3]));
        assert_eq!(decode("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode(""), Some(vec![]));
        assert_eq!(decode("AQI="), None, "padding");
        assert_eq!(decode("+/8"), None, "standard alphabet");
        assert_eq!(decode("AQ ID"), None, "whitespace");
        assert_eq!(decode("AR"), None, "non-zero trailing bits");
        assert_eq!(decode("A"), None, "impossible length");
        assert_eq!(decode("é"), None);
    }

    #[test]
    fn serde_round_trip() {
        let b = B64(vec![0, 255, 16]);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"AP8Q\"");
        assert_eq!(serde_json::from_str::<B64>(&json).unwrap(), b);
        assert!(serde_json::from_str::<B64>("\"AP8Q==\"").is_err());
        assert!(serde_json::from_str::<B64>("17").is_err());
    }
}
