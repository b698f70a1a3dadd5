//! The verification code: four digits derived from the digests to be signed, shown on the
//! application's screen and on the device, so that the signer can tell that the request on the
//! device is the one they started (`docs/device-protocol.md`, "Verification code").
//!
//! For one digest it is Smart-ID's code (Smart-ID RP API v2 §2.3.12.2, "Computing the
//! verification code"): `integer(SHA256(hash)[-2:-1]) mod 10000`, the last two bytes of the
//! SHA-256 of the digest's bytes read as a big-endian unsigned integer, reduced mod 10000 and
//! written with four digits. SHA-256 is used whatever the digest's own algorithm.
//!
//! For several digests (one request may carry a batch), the input is their concatenation in
//! ascending byte order, duplicates kept. The order is fixed so that an authorization and the
//! signHash that follows it show one code even when they list the digests differently; all
//! digests of a request have one algorithm, hence one length, so the concatenation is
//! unambiguous.
//!
//! The code is a 1-in-10 000 check against mix-ups and unsolicited requests, not a security
//! binding: see the threat model in the protocol document.

use std::fmt;

use aws_lc_rs::digest;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use subtle::ConstantTimeEq as _;

/// A verification code: exactly four decimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationCode([u8; 4]);

impl VerificationCode {
    /// The code of `digests` (see the module documentation). `None` for an empty list.
    pub fn of<D: AsRef<[u8]>>(digests: &[D]) -> Option<Self> {
        if digests.is_empty() {
            return None;
        }
        let mut sorted: Vec<&[u8]> = digests.iter().map(AsRef::as_ref).collect();
        sorted.sort_unstable();
        let mut ctx = digest::Context::new(&digest::SHA256);
        for d in sorted {
            ctx.update(d);
        }
        let h = ctx.finish();
        let h = h.as_ref();
        let n = u16::from_be_bytes([h[30], h[31]]) % 10_000;
        Some(Self::from_number(n))
    }

    fn from_number(n: u16) -> Self {
        let d = |p: u16| b'0' + ((n / p) % 10) as u8;
        Self([d(1000), d(100), d(10), d(1)])
    }

    /// Parse four ASCII digits.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        (b.len() == 4 && b.iter().all(u8::is_ascii_digit)).then(|| Self([b[0], b[1], b[2], b[3]]))
    }

    /// The four digits.
    pub fn as_str(&self) -> &str {
        // Always ASCII digits (the only constructors are `of`/`from_number` and `parse`).
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// Whether `self` and `other` are the same code, compared in constant time (a code the
    /// signer chose on a device is compared with the expected one).
    pub fn matches(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Display for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerificationCode({})", self.as_str())
    }
}

impl Serialize for VerificationCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for VerificationCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).ok_or_else(|| de::Error::custom("a verification code is four decimal digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(data: &[u8]) -> Vec<u8> {
        digest::digest(&digest::SHA256, data).as_ref().to_vec()
    }

    /// Vectors published by others for the single-digest code, computed by their own
    /// implementations: SK ID Solutions' smart-id-java-client (`VerificationCodeCalculatorTest`:
    /// the two bytes 1B BB, and SHA-256 digests of five strings) and Auðkenni's documentation
    /// ("Calculating Verification Code": a SHA-512 digest given in base64).
    #[test]
    fn published_single_digest_vectors() {
        assert_eq!(VerificationCode::of(&[[0x1b, 0xbb]]).unwrap().as_str(), "4555");
        for (code, text) in [
            ("7712", "Hello World!"),
            ("4612", "Hedgehogs – why can't they just share the hedge?"),
            ("7782", "Go ahead, make my day."),
            ("1464", "You're gonna need a bigger boat."),
            ("4240", "Say 'hello' to my little friend!"),
        ] {
            assert_eq!(VerificationCode::of(&[sha256(text.as_bytes())]).unwrap().as_str(), code, "{text}");
        }
        let audkenni =
            cloudsign_asn1::b64::decode_lenient("n/kRNhXaZ2jFKv8KlQX7ydgedXUmVy8b2O4xNq2ZxHteG7wOvCa0Kg3rY1JLOrOBXYQm+z2FRVwIv47w8gUb5g==")
                .unwrap();
        assert_eq!(audkenni.len(), 64);
        assert_eq!(VerificationCode::of(&[audkenni]).unwrap().as_str(), "4141");
    }

    /// Several digests: vectors computed with Python's hashlib, independently of this code:
    /// `sha256(b"".join(sorted(ds))).digest()[-2:]`, big-endian, mod 10000.
    #[test]
    fn batch_vectors_and_order_independence() {
        let a = sha256(b"a");
        let b = sha256(b"b");
        let c = sha256(b"c");
        // python3 -c 'import hashlib as h;d=[h.sha256(x).digest() for x in (b"a",b"b",b"c")];
        //   print("%04d" % (int.from_bytes(h.sha256(b"".join(sorted(d))).digest()[-2:],"big") % 10000))'
        assert_eq!(VerificationCode::of(&[&a, &b, &c]).unwrap().as_str(), "7557");
        assert_eq!(VerificationCode::of(&[&c, &a, &b]).unwrap().as_str(), "7557");
        // A multiset: [a, a] is not [a].
        assert_eq!(VerificationCode::of(&[&a, &a]).unwrap().as_str(), "8529");
        assert_eq!(VerificationCode::of(&[&a]).unwrap().as_str(), "2168");
        // The protocol document's two-digest example.
        let hello = sha256(b"Hello World!");
        let day = sha256(b"Go ahead, make my day.");
        assert_eq!(VerificationCode::of(&[&hello, &day]).unwrap().as_str(), "7705");
        assert!(VerificationCode::of::<Vec<u8>>(&[]).is_none());
    }

    #[test]
    fn leading_zeros_and_parsing() {
        assert_eq!(VerificationCode::from_number(41).as_str(), "0041");
        assert_eq!(VerificationCode::from_number(0).as_str(), "0000");
        assert_eq!(VerificationCode::parse("0041"), Some(VerificationCode::from_number(41)));
        for bad in ["041", "00410", "00a1", "", "٠١٢٣"] {
            assert_eq!(VerificationCode::parse(bad), None, "{bad}");
        }
        assert!(serde_json::from_str::<VerificationCode>("\"12345\"").is_err());
        assert!(serde_json::from_str::<VerificationCode>("1234").is_err());
        let code: VerificationCode = serde_json::from_str("\"0007\"").unwrap();
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"0007\"");
        assert!(code.matches(&VerificationCode::from_number(7)));
        assert!(!code.matches(&VerificationCode::from_number(8)));
    }
}
