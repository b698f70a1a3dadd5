//! Public keys of devices and the signatures they make.
//!
//! A device has two keys (`docs/device-protocol.md`, "Keys"): the *device key*, ECDSA P-256,
//! which authenticates its protocol messages ([`DeviceKey`]); and the *signing key*, the
//! credential's key, which signs digests only after the signer approved ([`PublicKey`], any key
//! type the service signs with: ECDSA P-256/P-384/P-521, RSA 2048 to 8192 bits).
//!
//! Signatures travel as the key produced them: ECDSA as `r ‖ s` with each integer left-padded to
//! the curve's size (IEEE P1363; RFC 7518 §3.4; what WebCrypto and PKCS#11 `CKM_ECDSA` return),
//! RSA as the signature octet string (RFC 8017 §8). [`csc_signature`] turns an ECDSA value into
//! the DER `ECDSA-Sig-Value` that CMS and the CSC responses carry.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use cloudsign_asn1::der::Reader;
use cloudsign_asn1::oid::{CURVE_P256, CURVE_P384, CURVE_P521, RSA_ENCRYPTION, decode_oid};
use cloudsign_asn1::{HashAlgorithm, SignAlgorithm};

use crate::Refusal;

/// `id-ecPublicKey` (RFC 5480 §2.1.1).
pub const ID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// The kind of a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256 (secp256r1).
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// ECDSA on P-521.
    EcP521,
    /// RSA with a modulus of this many bits.
    Rsa(u32),
}

impl KeyKind {
    /// The size in bytes of `r` and of `s` in a raw ECDSA signature; `None` for RSA.
    pub fn ecdsa_scalar_len(self) -> Option<usize> {
        match self {
            Self::EcP256 => Some(32),
            Self::EcP384 => Some(48),
            Self::EcP521 => Some(66),
            Self::Rsa(_) => None,
        }
    }
}

/// How a signature value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFormat {
    /// ECDSA `r ‖ s` (IEEE P1363), RSA octets: what devices send.
    Raw,
    /// ECDSA DER `ECDSA-Sig-Value` (RFC 5480 §2.2.3), RSA octets: what a PKCS#10 request or an
    /// X.509 structure carries.
    Der,
}

/// A public key from its DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki: Vec<u8>,
    kind: KeyKind,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("kind", &self.kind).finish_non_exhaustive()
    }
}

fn malformed(what: &str) -> Refusal {
    Refusal::Malformed(what.to_string())
}

impl PublicKey {
    /// Parse a DER SubjectPublicKeyInfo: an EC key on P-256, P-384 or P-521 (named curve,
    /// uncompressed point, RFC 5480 §2.2) or an RSA key (RFC 8017 A.1.1) of 2048 bits or more.
    pub fn from_spki(der: &[u8]) -> Result<Self, Refusal> {
        let bad = || malformed("the public key is not a DER SubjectPublicKeyInfo");
        let mut outer = Reader::new(der);
        let mut spki = Reader::new(outer.expect(0x30).ok_or_else(bad)?);
        if !outer.is_empty() {
            return Err(bad());
        }
        let mut alg = Reader::new(spki.expect(0x30).ok_or_else(bad)?);
        let key_oid = decode_oid(alg.expect(0x06).ok_or_else(bad)?).ok_or_else(bad)?;
        let bits = spki.expect(0x03).ok_or_else(bad)?;
        if !spki.is_empty() {
            return Err(bad());
        }
        let (&unused, key) = bits.split_first().ok_or_else(bad)?;
        if unused != 0 {
            return Err(bad());
        }
        let kind = match key_oid.as_str() {
            ID_EC_PUBLIC_KEY => {
                let curve = decode_oid(alg.expect(0x06).ok_or_else(|| malformed("an EC key must name its curve"))?).ok_or_else(bad)?;
                let kind = match curve.as_str() {
                    CURVE_P256 => KeyKind::EcP256,
                    CURVE_P384 => KeyKind::EcP384,
                    CURVE_P521 => KeyKind::EcP521,
                    _ => return Err(Refusal::Unsupported("EC curves other than P-256, P-384 and P-521")),
                };
                if !alg.is_empty() {
                    return Err(bad());
                }
                let n = kind.ecdsa_scalar_len().unwrap_or(0);
                if key.len() != 1 + 2 * n || key[0] != 0x04 {
                    return Err(malformed("an EC public key must be an uncompressed point (SEC 1 §2.3.3)"));
                }
                kind
            }
            RSA_ENCRYPTION => {
                // RFC 8017 A.1: the parameters are NULL (some encoders leave them out).
                if !matches!(alg.rest(), [] | [0x05, 0x00]) {
                    return Err(bad());
                }
                let mut rsa = Reader::new(Reader::new(key).expect(0x30).ok_or_else(bad)?);
                let modulus = rsa.expect(0x02).ok_or_else(bad)?;
                let modulus = match modulus {
                    [0, rest @ ..] => rest,
                    m => m,
                };
                let first = *modulus.first().ok_or_else(bad)?;
                let bits = (modulus.len() as u32) * 8 - first.leading_zeros();
                if bits < 2048 {
                    return Err(Refusal::Unsupported("RSA keys shorter than 2048 bits"));
                }
                KeyKind::Rsa(bits)
            }
            _ => return Err(Refusal::Unsupported("public keys other than EC and RSA")),
        };
        let parsed = Self { spki: der.to_vec(), kind };
        // aws-lc checks that the point is on the curve (or that the RSA key is well formed).
        let check = parsed.algorithm(parsed.default_scheme(), SignatureFormat::Raw).ok_or_else(bad)?;
        signature::ParsedPublicKey::new(check, der).map_err(|_| malformed("the public key is not valid"))?;
        Ok(parsed)
    }

    /// The subject public key of a DER X.509 certificate (RFC 5280 §4.1).
    pub fn from_certificate(cert: &[u8]) -> Result<Self, Refusal> {
        Self::from_spki(certificate_spki(cert).ok_or_else(|| malformed("not a DER X.509 certificate"))?)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The scheme a proof of possession is made with: ECDSA with the curve's own digest
    /// (SHA-256, SHA-384, SHA-512), RSASSA-PKCS1-v1_5 with SHA-256 for RSA.
    pub fn default_scheme(&self) -> SignAlgorithm {
        match self.kind {
            KeyKind::EcP256 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha256),
            KeyKind::EcP384 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha384),
            KeyKind::EcP521 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha512),
            KeyKind::Rsa(_) => SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256),
        }
    }

    /// Whether this key signs with `scheme`. ECDSA P-256 and P-384 keys are bound to their own
    /// digest, as the service's keys are (`KeyAlgorithm::schemes`); P-521 takes all three.
    pub fn supports(&self, scheme: SignAlgorithm) -> bool {
        self.algorithm(scheme, SignatureFormat::Raw).is_some()
    }

    fn algorithm(&self, scheme: SignAlgorithm, format: SignatureFormat) -> Option<&'static dyn VerificationAlgorithm> {
        use HashAlgorithm::*;
        use SignatureFormat::*;
        Some(match (self.kind, scheme, format) {
            (KeyKind::EcP256, SignAlgorithm::Ecdsa(Sha256), Raw) => &signature::ECDSA_P256_SHA256_FIXED,
            (KeyKind::EcP256, SignAlgorithm::Ecdsa(Sha256), Der) => &signature::ECDSA_P256_SHA256_ASN1,
            (KeyKind::EcP384, SignAlgorithm::Ecdsa(Sha384), Raw) => &signature::ECDSA_P384_SHA384_FIXED,
            (KeyKind::EcP384, SignAlgorithm::Ecdsa(Sha384), Der) => &signature::ECDSA_P384_SHA384_ASN1,
            (KeyKind::EcP521, SignAlgorithm::Ecdsa(Sha256), Raw) => &signature::ECDSA_P521_SHA256_FIXED,
            (KeyKind::EcP521, SignAlgorithm::Ecdsa(Sha384), Raw) => &signature::ECDSA_P521_SHA384_FIXED,
            (KeyKind::EcP521, SignAlgorithm::Ecdsa(Sha512), Raw) => &signature::ECDSA_P521_SHA512_FIXED,
            (KeyKind::EcP521, SignAlgorithm::Ecdsa(Sha256), Der) => &signature::ECDSA_P521_SHA256_ASN1,
            (KeyKind::EcP521, SignAlgorithm::Ecdsa(Sha384), Der) => &signature::ECDSA_P521_SHA384_ASN1,
            (KeyKind::EcP521, SignAlgorithm::Ecdsa(Sha512), Der) => &signature::ECDSA_P521_SHA512_ASN1,
            (KeyKind::Rsa(_), SignAlgorithm::RsaPkcs1(Sha256), _) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Rsa(_), SignAlgorithm::RsaPkcs1(Sha384), _) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (KeyKind::Rsa(_), SignAlgorithm::RsaPkcs1(Sha512), _) => &signature::RSA_PKCS1_2048_8192_SHA512,
            // RSASSA-PSS with MGF1 on the same digest and a salt as long as the digest, the one
            // parameter set the service signs with (`SignAlgorithm::RsaPss`).
            (KeyKind::Rsa(_), SignAlgorithm::RsaPss(Sha256), _) => &signature::RSA_PSS_2048_8192_SHA256,
            (KeyKind::Rsa(_), SignAlgorithm::RsaPss(Sha384), _) => &signature::RSA_PSS_2048_8192_SHA384,
            (KeyKind::Rsa(_), SignAlgorithm::RsaPss(Sha512), _) => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    /// Whether `signature` (raw form) is this key's signature with `scheme` over the
    /// precomputed `digest` (the DTBS/R of ETSI TS 119 432; what signHash signs).
    pub fn verify_digest(&self, scheme: SignAlgorithm, digest_value: &[u8], signature: &[u8]) -> bool {
        let Some(alg) = self.algorithm(scheme, SignatureFormat::Raw) else {
            return false;
        };
        let Ok(d) = digest::Digest::import_less_safe(digest_value, digest_algorithm(scheme.hash())) else {
            return false;
        };
        UnparsedPublicKey::new(alg, &self.spki).verify_digest(&d, signature).is_ok()
    }

    /// Whether `signature` is this key's signature with `scheme` over `message` (hashed with the
    /// scheme's digest first).
    pub fn verify_message(&self, scheme: SignAlgorithm, message: &[u8], signature: &[u8], format: SignatureFormat) -> bool {
        let Some(alg) = self.algorithm(scheme, format) else {
            return false;
        };
        UnparsedPublicKey::new(alg, &self.spki).verify(message, signature).is_ok()
    }
}

/// The aws-lc digest of a hash algorithm.
pub(crate) fn digest_algorithm(h: HashAlgorithm) -> &'static digest::Algorithm {
    match h {
        HashAlgorithm::Sha256 => &digest::SHA256,
        HashAlgorithm::Sha384 => &digest::SHA384,
        HashAlgorithm::Sha512 => &digest::SHA512,
    }
}

/// The whole SubjectPublicKeyInfo encoding of a DER certificate (RFC 5280 §4.1: version,
/// serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo).
pub fn certificate_spki(cert: &[u8]) -> Option<&[u8]> {
    let mut outer = Reader::new(cert);
    let mut tbs = Reader::new(Reader::new(outer.expect(0x30)?).expect(0x30)?);
    if tbs.peek_tag() == Some(0xA0) {
        tbs.next()?;
    }
    tbs.expect(0x02)?; // serialNumber
    tbs.expect(0x30)?; // signature
    tbs.expect(0x30)?; // issuer
    tbs.expect(0x30)?; // validity
    tbs.expect(0x30)?; // subject
    match tbs.next()? {
        (0x30, _, whole) => Some(whole),
        _ => None,
    }
}

/// A device key: the ECDSA P-256 key that signs the device's protocol messages (JWS `ES256`,
/// RFC 7518 §3.4), never a document.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey(PublicKey);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(P-256)")
    }
}

impl DeviceKey {
    /// From a DER SubjectPublicKeyInfo, which must be an ECDSA P-256 key.
    pub fn from_spki(der: &[u8]) -> Result<Self, Refusal> {
        let key = PublicKey::from_spki(der)?;
        if key.kind() != KeyKind::EcP256 {
            return Err(Refusal::Unsupported("device keys other than ECDSA P-256"));
        }
        Ok(Self(key))
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        self.0.spki()
    }

    /// The key's thumbprint: SHA-256 of its DER SubjectPublicKeyInfo, as pairing proofs and the
    /// audit log name it.
    pub fn thumbprint(&self) -> [u8; 32] {
        let d = digest::digest(&digest::SHA256, self.spki());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// Whether `signature` (`r ‖ s`, 64 bytes) is this key's ES256 signature over `message`.
    pub fn verify_es256(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == 64
            && self.0.verify_message(SignAlgorithm::Ecdsa(HashAlgorithm::Sha256), message, signature, SignatureFormat::Raw)
    }
}

/// A device's signature in the form a CSC response and CMS carry: ECDSA `r ‖ s` becomes DER
/// `ECDSA-Sig-Value` (RFC 5480 §2.2.3; CSC leaves the encoding open, cloudsign returns DER as its
/// other backends do), RSA stays as it is. `None` if an ECDSA value does not have the key's size.
pub fn csc_signature(kind: KeyKind, raw: &[u8]) -> Option<Vec<u8>> {
    match kind.ecdsa_scalar_len() {
        None => Some(raw.to_vec()),
        Some(n) if raw.len() == 2 * n => cloudsign_asn1::der::ecdsa_sig_value(raw),
        Some(_) => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    pub(crate) fn p256() -> EcdsaKeyPair {
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()
    }

    pub(crate) fn spki_of(key: &EcdsaKeyPair) -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer as _;
        key.public_key().as_der().unwrap().as_ref().to_vec()
    }

    #[test]
    fn parses_ec_keys_and_refuses_others() {
        let key = p256();
        let spki = spki_of(&key);
        let public = PublicKey::from_spki(&spki).unwrap();
        assert_eq!(public.kind(), KeyKind::EcP256);
        assert!(DeviceKey::from_spki(&spki).is_ok());
        let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let p384_spki = spki_of(&p384);
        assert_eq!(PublicKey::from_spki(&p384_spki).unwrap().kind(), KeyKind::EcP384);
        assert!(matches!(DeviceKey::from_spki(&p384_spki), Err(Refusal::Unsupported(_))));
        // Trailing bytes, truncation, a point off the curve.
        let mut trailing = spki.clone();
        trailing.push(0);
        assert!(matches!(PublicKey::from_spki(&trailing), Err(Refusal::Malformed(_))));
        assert!(PublicKey::from_spki(&spki[..spki.len() - 1]).is_err());
        let mut off_curve = spki.clone();
        let last = off_curve.len() - 1;
        off_curve[last] ^= 1;
        assert!(matches!(PublicKey::from_spki(&off_curve), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn digest_signatures_verify_only_for_their_digest() {
        let key = p256();
        let public = PublicKey::from_spki(&spki_of(&key)).unwrap();
        let rng = SystemRandom::new();
        let message = b"to be signed";
        let sig = key.sign(&rng, message).unwrap();
        let d = digest::digest(&digest::SHA256, message);
        let scheme = SignAlgorithm::Ecdsa(HashAlgorithm::Sha256);
        assert!(public.verify_digest(scheme, d.as_ref(), sig.as_ref()));
        assert!(public.verify_message(scheme, message, sig.as_ref(), SignatureFormat::Raw));
        let other = digest::digest(&digest::SHA256, b"something else");
        assert!(!public.verify_digest(scheme, other.as_ref(), sig.as_ref()));
        assert!(!public.verify_digest(scheme, &d.as_ref()[..31], sig.as_ref()));
        assert!(!public.verify_digest(SignAlgorithm::Ecdsa(HashAlgorithm::Sha384), d.as_ref(), sig.as_ref()));
        assert!(!public.supports(SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256)));
        let der = csc_signature(KeyKind::EcP256, sig.as_ref()).unwrap();
        assert_eq!(der[0], 0x30);
        assert!(public.verify_message(scheme, message, &der, SignatureFormat::Der));
        assert!(csc_signature(KeyKind::EcP256, &sig.as_ref()[..63]).is_none());
    }
}
