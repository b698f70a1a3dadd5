//! Pairing: the one-time code, and the proofs that the device holds its signing key
//! (`docs/device-protocol.md`, "Pairing").
//!
//! * [`PairingCode`]: ten Crockford base32 symbols (50 bits), shown as `XXXXX-XXXXX`, typed on
//!   the device or carried in a QR code. The service stores only its hash and accepts it once.
//! * [`verify_csr`]: a certificate from the service's CA is asked for with a PKCS#10 request
//!   (RFC 2986) signed with the signing key, whose challengePassword attribute (RFC 2985
//!   §5.4.1) is the pairing challenge: proof of possession that cannot be replayed into another
//!   pairing.
//! * [`verify_key_proof`]: a key that has a certificate already (a smart card's) proves
//!   possession by signing [`key_proof_input`]; its certificate must carry that key.

use aws_lc_rs::digest;
use cloudsign_asn1::der::Reader;
use cloudsign_asn1::oid::{self, decode_oid};
use cloudsign_asn1::{HashAlgorithm, SignAlgorithm};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::Refusal;
use crate::freshness::random;
use crate::key::{DeviceKey, PublicKey, SignatureFormat};
use crate::message::Id;

/// `challengePassword` (PKCS #9, RFC 2985 §5.4.1).
pub const ID_CHALLENGE_PASSWORD: &str = "1.2.840.113549.1.9.7";

/// Crockford's base32 alphabet (no I, L, O, U: nothing to misread).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_LEN: usize = 10;
const CODE_LABEL: &[u8] = b"cloudsign-device-pairing-code-v1\0";
const KEY_PROOF_LABEL: &[u8] = b"cloudsign-device-key-proof-v1\0";

/// A pairing code: 50 random bits, one use, a short life (the service's setting).
pub struct PairingCode(Zeroizing<String>);

impl std::fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingCode(<secret>)")
    }
}

impl PairingCode {
    /// A new random code.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 8]);
        random(&mut bytes[1..]); // 56 bits, of which 50 are used: each symbol is 5 uniform bits
        let n = Zeroizing::new(u64::from_be_bytes(*bytes));
        let mut s = Zeroizing::new(String::with_capacity(CODE_LEN));
        for i in 0..CODE_LEN {
            s.push(ALPHABET[((*n >> (5 * i)) & 31) as usize] as char);
        }
        Self(s)
    }

    /// Read a code as a person typed it: letters of either case, `-` and spaces anywhere, `O`
    /// for `0` and `I`/`L` for `1` (Crockford's decoding rules). `None` if it is not ten symbols.
    pub fn parse(input: &str) -> Option<Self> {
        if input.len() > 4 * CODE_LEN {
            return None;
        }
        let mut s = Zeroizing::new(String::with_capacity(CODE_LEN));
        for c in input.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
                _ => return None,
            };
            s.push(c);
        }
        (s.len() == CODE_LEN).then_some(Self(s))
    }

    /// The code as shown to the signer: `XXXXX-XXXXX`.
    pub fn display(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}-{}", &self.0[..5], &self.0[5..]))
    }

    /// What the service stores: SHA-256 over a label and the canonical code. (A leaked hash
    /// could be searched — 2^50 tries — but a code lives minutes and is used once.)
    pub fn hash(&self) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(CODE_LABEL);
        ctx.update(self.0.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Whether this is the code whose hash is `stored`, compared in constant time.
    pub fn matches(&self, stored: &[u8]) -> bool {
        let h = self.hash();
        stored.len() == h.len() && bool::from(h.ct_eq(stored))
    }
}

/// Verify a PKCS#10 request: DER, version 0, signed with its own key (ECDSA with SHA-256/384/512
/// or RSASSA-PKCS1-v1_5), with exactly one challengePassword equal to `challenge` (as
/// base64url text). Returns the key. The subject is not used: the CA names the signer.
pub fn verify_csr(csr: &[u8], challenge: &[u8]) -> Result<PublicKey, Refusal> {
    let bad = |what: &str| Refusal::Malformed(format!("the CSR: {what}"));
    let mut outer = Reader::new(csr);
    let mut req = Reader::new(outer.expect(0x30).ok_or_else(|| bad("not a DER CertificationRequest (RFC 2986 §4.2)"))?);
    if !outer.is_empty() {
        return Err(bad("trailing bytes"));
    }
    let (tag, info_content, info_whole) = req.next().ok_or_else(|| bad("no certificationRequestInfo"))?;
    if tag != 0x30 {
        return Err(bad("no certificationRequestInfo"));
    }
    let mut alg = Reader::new(req.expect(0x30).ok_or_else(|| bad("no signatureAlgorithm"))?);
    let bits = req.expect(0x03).ok_or_else(|| bad("no signature"))?;
    if !req.is_empty() {
        return Err(bad("trailing elements"));
    }
    let sig_oid = decode_oid(alg.expect(0x06).ok_or_else(|| bad("no signatureAlgorithm"))?).ok_or_else(|| bad("bad OID"))?;
    let scheme = match sig_oid.as_str() {
        oid::ECDSA_WITH_SHA256 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha256),
        oid::ECDSA_WITH_SHA384 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha384),
        oid::ECDSA_WITH_SHA512 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha512),
        oid::SHA256_WITH_RSA => SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256),
        oid::SHA384_WITH_RSA => SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha384),
        oid::SHA512_WITH_RSA => SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha512),
        _ => return Err(Refusal::Unsupported("CSR signature algorithms other than ECDSA and RSASSA-PKCS1-v1_5 with SHA-2")),
    };
    let (&unused, signature) = bits.split_first().ok_or_else(|| bad("empty signature"))?;
    if unused != 0 {
        return Err(bad("the signature has unused bits"));
    }

    let mut info = Reader::new(info_content);
    if info.expect(0x02) != Some(&[0][..]) {
        return Err(bad("version must be 0 (v1)"));
    }
    info.expect(0x30).ok_or_else(|| bad("no subject"))?;
    let spki = match info.next() {
        Some((0x30, _, whole)) => whole,
        _ => return Err(bad("no subjectPKInfo")),
    };
    let attributes = info.expect(0xA0).ok_or_else(|| bad("no attributes (a challengePassword is required)"))?;
    if !info.is_empty() {
        return Err(bad("trailing elements in certificationRequestInfo"));
    }
    let key = PublicKey::from_spki(spki)?;

    let mut passwords = Vec::new();
    let mut attrs = Reader::new(attributes);
    while !attrs.is_empty() {
        let mut attr = Reader::new(attrs.expect(0x30).ok_or_else(|| bad("an attribute is not a SEQUENCE"))?);
        let t = decode_oid(attr.expect(0x06).ok_or_else(|| bad("an attribute has no type"))?).ok_or_else(|| bad("bad OID"))?;
        let values = attr.expect(0x31).ok_or_else(|| bad("an attribute has no values"))?;
        if t == ID_CHALLENGE_PASSWORD {
            let mut vals = Reader::new(values);
            // DirectoryString: UTF8String or PrintableString (the challenge's alphabet has '_',
            // which PrintableString lacks, so a device sends UTF8String).
            match vals.next() {
                Some((0x0C | 0x13, text, _)) if vals.is_empty() => passwords.push(text),
                _ => return Err(bad("challengePassword must be one UTF8String")),
            }
        }
    }
    let [password] = passwords[..] else {
        return Err(bad("exactly one challengePassword attribute is required"));
    };
    let expected = crate::b64::encode(challenge);
    if !(password.len() == expected.len() && bool::from(password.ct_eq(expected.as_bytes()))) {
        return Err(Refusal::Foreign("the CSR's challengePassword is not this pairing's challenge"));
    }
    if !key.verify_message(scheme, info_whole, signature, SignatureFormat::Der) {
        return Err(Refusal::Foreign("the CSR is not signed with the key it names"));
    }
    Ok(key)
}

/// The bytes a signing key signs to prove possession when it brings its own certificate:
/// `"cloudsign-device-key-proof-v1" 0x00 ‖ aud 0x00 ‖ pairingId 0x00 ‖ BASE64URL(challenge)
/// 0x00 ‖ BASE64URL(SHA-256(device key SPKI))`, as UTF-8. It ties the signing key to this
/// service, this pairing session and this device key.
pub fn key_proof_input(aud: &str, pairing_id: &Id, challenge: &[u8], device_key: &DeviceKey) -> Vec<u8> {
    let mut out = KEY_PROOF_LABEL.to_vec();
    for part in [aud, pairing_id.as_str(), &crate::b64::encode(challenge), &crate::b64::encode(&device_key.thumbprint())] {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out.pop();
    out
}

/// Verify a key proof: `proof` (raw form) is the signature, with the key's default scheme, of
/// the key in `certificate` over `input`. Returns that key. Whether the certificate itself is
/// acceptable (chain, validity, key usage, whose it is) is the service's policy, checked apart.
pub fn verify_key_proof(certificate: &[u8], input: &[u8], proof: &[u8]) -> Result<PublicKey, Refusal> {
    let key = PublicKey::from_certificate(certificate)?;
    if !key.verify_message(key.default_scheme(), input, proof, SignatureFormat::Raw) {
        return Err(Refusal::Foreign("the key proof is not made by the certificate's key"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let code = PairingCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 11);
        assert_eq!(&shown[5..6], "-");
        let typed = shown.to_lowercase().replace('-', " ");
        let again = PairingCode::parse(&typed).unwrap();
        assert!(again.matches(&code.hash()));
        assert!(!PairingCode::generate().matches(&code.hash()));
        assert!(!code.matches(&code.hash()[..31]));
        // Crockford's substitutions.
        let a = PairingCode::parse("O1234-5678I").unwrap();
        let b = PairingCode::parse("01234-5678l").unwrap();
        assert_eq!(*a.display(), "01234-56781");
        assert!(a.matches(&b.hash()));
        for bad in ["0123456789A", "012345678", "0123U-56789", "01234_56789", "０1234-56789", &"-".repeat(100)] {
            assert!(PairingCode::parse(bad).is_none(), "{bad}");
        }
        assert!(!format!("{code:?}").contains(&shown[..5]));
        // Every symbol is used: over many codes, all 32 appear.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.extend(PairingCode::generate().display().chars().filter(|c| *c != '-'));
        }
        assert_eq!(seen.len(), 32);
    }
}
