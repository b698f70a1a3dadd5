//! Base64, one codec for every place DER and digests travel as text: PEM bodies (RFC 7468),
//! XML `base64Binary` (XMLDSig, XAdES, trusted lists), JOSE base64url (RFC 7515 §2) and the
//! CSC API's JSON (re-exported as `cloudsign_csc::b64`).
//!
//! CSC v1 §5 / v2 §5: JSON bodies carry standard base64 with padding; the OAuth query string
//! carries base64url. Clients mix them up in practice, so input accepts both alphabets with or
//! without padding, and output is standard base64 with padding ([`encode`]) or base64url
//! without padding ([`encode_url`]).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD};

/// Standard alphabet, padding optional: what nearly every client sends, decoded without the
/// normalizing copy below (at 100 hashes per signHash that copy showed in profiles).
const STANDARD_PADDING_OPTIONAL: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

/// Encode as standard base64 with padding, the form every CSC response uses.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Append standard base64 with padding to `out` (a response written in place).
pub fn encode_append(bytes: &[u8], out: &mut String) {
    STANDARD.encode_string(bytes, out);
}

/// Encode as base64url without padding (tokens, identifiers).
pub fn encode_url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decode standard base64 or base64url, padded or not. Whitespace is not accepted.
pub fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    if let Ok(bytes) = STANDARD_PADDING_OPTIONAL.decode(text) {
        return Some(bytes);
    }
    let trimmed = text.trim_end_matches('=');
    if trimmed.len() + 2 < text.len() {
        return None; // more than two '=' is never valid padding
    }
    // Byte-wise: any non-ASCII byte stays as it is and fails the decode.
    let normalized: Vec<u8> = trimmed
        .bytes()
        .map(|b| match b {
            b'+' => b'-',
            b'/' => b'_',
            other => other,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(&normalized).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_alphabets_with_and_without_padding_decode_to_the_same_bytes() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        let std = STANDARD.encode(&bytes);
        let url = base64::engine::general_purpose::URL_SAFE.encode(&bytes);
        for text in [std.as_str(), std.trim_end_matches('='), url.as_str(), url.trim_end_matches('=')] {
            assert_eq!(decode_lenient(text).as_deref(), Some(bytes.as_slice()), "{text}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode_lenient("a b"), None);
        assert_eq!(decode_lenient("abc==="), None);
        assert_eq!(decode_lenient("!!!!"), None);
        assert_eq!(decode_lenient("QQ==="), None, "three padding characters");
        assert_eq!(decode_lenient("QR=="), None, "non-zero trailing bits");
    }

    #[test]
    fn the_fast_path_and_the_normalizing_path_agree() {
        // Padding the standard engine calls non-canonical still decodes, through the slow path.
        assert_eq!(decode_lenient("QUJD="), Some(b"ABC".to_vec()));
        assert_eq!(decode_lenient("QQ="), Some(b"A".to_vec()));
        assert_eq!(decode_lenient("-_-_"), decode_lenient("+/+/"));
        let mut out = String::from("x");
        encode_append(b"A", &mut out);
        assert_eq!(out, "xQQ==");
    }
}
