//! The algorithms the service signs with: digests, key types and signature schemes, their OIDs
//! (RFC 5754, RFC 8017, RFC 5758, RFC 5480), and the rule that turns a `signAlgo` +
//! `hashAlgorithmOID` + `signAlgoParams` triple into one scheme.
//!
//! The resolution rule lives here and not in the wire crate: which OID implies which digest and
//! which RSASSA-PSS parameters the signer implements are facts about the algorithms (RFC 8017,
//! RFC 4055), needed by every caller that names a scheme by OIDs; the CSC adapters only hand
//! in the three request members and pass the message on as `error_description`
//! (CSC v2 §11.10, v1 §11.9), which is why the messages name those members.

use pkcs1::RsaPssParamsOwned;
use pkcs1::der::Decode as _;

use crate::oid::*;

/// A digest algorithm accepted for signing. SHA-1 and MD5 are refused (ETSI TS 119 312).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256, `2.16.840.1.101.3.4.2.1`.
    Sha256,
    /// SHA-384, `2.16.840.1.101.3.4.2.2`.
    Sha384,
    /// SHA-512, `2.16.840.1.101.3.4.2.3`.
    Sha512,
}

impl HashAlgorithm {
    /// All accepted digest algorithms.
    pub const ALL: [HashAlgorithm; 3] = [Self::Sha256, Self::Sha384, Self::Sha512];

    /// The dotted OID.
    pub fn oid(self) -> &'static str {
        match self {
            Self::Sha256 => SHA256,
            Self::Sha384 => SHA384,
            Self::Sha512 => SHA512,
        }
    }

    /// Digest length in bytes.
    #[allow(clippy::len_without_is_empty)] // a digest length, never empty
    pub fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// Look up by dotted OID.
    pub fn from_oid(oid: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.oid() == oid)
    }

    /// The short name used in logs and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
        }
    }
}

/// The key types the service generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// ECDSA on P-521.
    EcdsaP521,
    /// RSA, 2048-bit modulus.
    Rsa2048,
    /// RSA, 3072-bit modulus.
    Rsa3072,
    /// RSA, 4096-bit modulus.
    Rsa4096,
}

impl KeyAlgorithm {
    /// All key types, in the order `info` lists them.
    pub const ALL: [KeyAlgorithm; 6] = [Self::EcdsaP256, Self::EcdsaP384, Self::EcdsaP521, Self::Rsa2048, Self::Rsa3072, Self::Rsa4096];

    /// The name used by the CLI and stored in the database.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::EcdsaP521 => "ecdsa-p521",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        }
    }

    /// Parse a CLI/database name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// `key.len`: the key size in bits.
    pub fn bits(self) -> u32 {
        match self {
            Self::EcdsaP256 => 256,
            Self::EcdsaP384 => 384,
            Self::EcdsaP521 => 521,
            Self::Rsa2048 => 2048,
            Self::Rsa3072 => 3072,
            Self::Rsa4096 => 4096,
        }
    }

    /// `key.curve`: the named curve OID, for EC keys only.
    pub fn curve(self) -> Option<&'static str> {
        match self {
            Self::EcdsaP256 => Some(CURVE_P256),
            Self::EcdsaP384 => Some(CURVE_P384),
            Self::EcdsaP521 => Some(CURVE_P521),
            _ => None,
        }
    }

    /// Whether this is an RSA key.
    pub fn is_rsa(self) -> bool {
        self.curve().is_none()
    }

    /// The schemes this key can sign with. The ECDSA pairs are those aws-lc offers for
    /// pre-hashed input; P-256 and P-384 keys are bound to their matching digest.
    pub fn schemes(self) -> Vec<SignAlgorithm> {
        use HashAlgorithm::*;
        match self {
            Self::EcdsaP256 => vec![SignAlgorithm::Ecdsa(Sha256)],
            Self::EcdsaP384 => vec![SignAlgorithm::Ecdsa(Sha384)],
            Self::EcdsaP521 => HashAlgorithm::ALL.into_iter().map(SignAlgorithm::Ecdsa).collect(),
            _ => HashAlgorithm::ALL.into_iter().flat_map(|h| [SignAlgorithm::RsaPkcs1(h), SignAlgorithm::RsaPss(h)]).collect(),
        }
    }

    /// `key.algo`: the `signAlgo` OIDs a client may send for this key.
    pub fn sign_algo_oids(self) -> Vec<&'static str> {
        if self.is_rsa() {
            vec![RSA_ENCRYPTION, SHA256_WITH_RSA, SHA384_WITH_RSA, SHA512_WITH_RSA, RSASSA_PSS]
        } else {
            let mut oids: Vec<&'static str> = self.schemes().iter().map(|s| s.oid()).collect();
            oids.dedup();
            oids
        }
    }
}

/// One signature scheme over a pre-computed digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignAlgorithm {
    /// RSASSA-PKCS1-v1_5 over a DigestInfo of the digest.
    RsaPkcs1(HashAlgorithm),
    /// RSASSA-PSS, MGF1 with the same digest, salt length = digest length, trailer 1.
    RsaPss(HashAlgorithm),
    /// ECDSA; the value is DER `ECDSA-Sig-Value` (CSC leaves the encoding open; X.509 and CMS
    /// use DER, so cloudsign returns DER).
    Ecdsa(HashAlgorithm),
}

impl SignAlgorithm {
    /// The digest this scheme signs.
    pub fn hash(self) -> HashAlgorithm {
        match self {
            Self::RsaPkcs1(h) | Self::RsaPss(h) | Self::Ecdsa(h) => h,
        }
    }

    /// The combined OID (for PSS: id-RSASSA-PSS).
    pub fn oid(self) -> &'static str {
        use HashAlgorithm::*;
        match self {
            Self::RsaPkcs1(Sha256) => SHA256_WITH_RSA,
            Self::RsaPkcs1(Sha384) => SHA384_WITH_RSA,
            Self::RsaPkcs1(Sha512) => SHA512_WITH_RSA,
            Self::RsaPss(_) => RSASSA_PSS,
            Self::Ecdsa(Sha256) => ECDSA_WITH_SHA256,
            Self::Ecdsa(Sha384) => ECDSA_WITH_SHA384,
            Self::Ecdsa(Sha512) => ECDSA_WITH_SHA512,
        }
    }

    /// A readable name for the audit trail.
    pub fn name(self) -> String {
        match self {
            Self::RsaPkcs1(h) => format!("RSA-PKCS1-{}", h.name()),
            Self::RsaPss(h) => format!("RSA-PSS-{}", h.name()),
            Self::Ecdsa(h) => format!("ECDSA-{}", h.name()),
        }
    }

    /// Resolve the three request members into one scheme (CSC v2 §11.10; v1 §11.9).
    ///
    /// * `rsaEncryption` needs `hashAlgorithmOID`.
    /// * a combined OID implies its digest; a contradicting `hashAlgorithmOID` is refused.
    /// * RSASSA-PSS takes its digest from `signAlgoParams` (DER RSASSA-PSS-params, RFC 8017
    ///   A.2.3), or from `hashAlgorithmOID` when no parameters are sent.
    pub fn resolve(sign_algo: &str, hash_oid: Option<&str>, params: Option<&[u8]>) -> Result<Self, String> {
        use HashAlgorithm::*;
        let named_hash = match hash_oid {
            None => None,
            Some(oid) => Some(
                HashAlgorithm::from_oid(oid)
                    .ok_or_else(|| "Invalid parameter hashAlgorithmOID: only SHA-256, SHA-384 and SHA-512 are accepted".to_string())?,
            ),
        };
        let implied = |h: HashAlgorithm| match named_hash {
            Some(n) if n != h => Err("hashAlgorithmOID contradicts signAlgo".to_string()),
            _ => Ok(h),
        };
        let scheme = match sign_algo {
            RSA_ENCRYPTION => Self::RsaPkcs1(
                named_hash.ok_or("Missing (or invalid type) string parameter hashAlgorithmOID: required with signAlgo rsaEncryption")?,
            ),
            SHA256_WITH_RSA => Self::RsaPkcs1(implied(Sha256)?),
            SHA384_WITH_RSA => Self::RsaPkcs1(implied(Sha384)?),
            SHA512_WITH_RSA => Self::RsaPkcs1(implied(Sha512)?),
            ECDSA_WITH_SHA256 => Self::Ecdsa(implied(Sha256)?),
            ECDSA_WITH_SHA384 => Self::Ecdsa(implied(Sha384)?),
            ECDSA_WITH_SHA512 => Self::Ecdsa(implied(Sha512)?),
            RSASSA_PSS => match params {
                Some(der) => Self::RsaPss(implied(parse_pss_params(der)?)?),
                None => Self::RsaPss(named_hash.ok_or("Missing parameter signAlgoParams: required with signAlgo RSASSA-PSS")?),
            },
            _ => return Err("Invalid parameter signAlgo".to_string()),
        };
        Ok(scheme)
    }
}

/// Parse DER RSASSA-PSS-params (RFC 8017 A.2.3) and accept only what the signer implements:
/// the same digest for the message and MGF1, salt length equal to the digest length, trailer
/// field 1. The structure is decoded by `pkcs1`'s typed `RsaPssParams` (der 0.8), which applies
/// the ASN.1 DEFAULTs, refuses unknown fields, trailing bytes and a trailer field other than 1.
fn parse_pss_params(der: &[u8]) -> Result<HashAlgorithm, String> {
    let bad = |why: &str| format!("Invalid parameter signAlgoParams: {why}");
    let params = RsaPssParamsOwned::from_der(der).map_err(|_| bad("not DER RSASSA-PSS-params (RFC 8017 A.2.3)"))?;
    // The DEFAULTs are sha1 and mgf1SHA1 (RFC 8017 A.2.3); sha1 is refused.
    let hash_oid = params.hash.oid.to_string();
    if hash_oid == SHA1 {
        return Err(bad("SHA-1 (the default digest) is not accepted"));
    }
    let h = HashAlgorithm::from_oid(&hash_oid).ok_or_else(|| bad("unsupported digest"))?;
    if params.mask_gen.oid.to_string() != MGF1 {
        return Err(bad("only MGF1 is supported"));
    }
    let mgf_hash = params.mask_gen.parameters.as_ref().map(|a| a.oid.to_string());
    if mgf_hash.as_deref() != Some(h.oid()) {
        return Err(bad("MGF1 must use the same digest as the signature"));
    }
    if usize::from(params.salt_len) != h.len() {
        return Err(bad("saltLength must equal the digest length"));
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RSASSA-PSS-params for SHA-256 as pyHanko and openssl emit them.
    const PSS_SHA256: &[u8] = &[
        0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30,
        0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
        0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
    ];

    #[test]
    fn pss_params_resolve_to_sha256() {
        assert_eq!(SignAlgorithm::resolve(RSASSA_PSS, None, Some(PSS_SHA256)), Ok(SignAlgorithm::RsaPss(HashAlgorithm::Sha256)));
        assert!(SignAlgorithm::resolve(RSASSA_PSS, Some(HashAlgorithm::Sha384.oid()), Some(PSS_SHA256)).is_err());
        let mut wrong_salt = PSS_SHA256.to_vec();
        *wrong_salt.last_mut().unwrap() = 0x14;
        assert!(SignAlgorithm::resolve(RSASSA_PSS, None, Some(&wrong_salt)).is_err());
        assert!(SignAlgorithm::resolve(RSASSA_PSS, None, Some(&PSS_SHA256[..20])).is_err());
        // Defaults (empty SEQUENCE) mean SHA-1: refused.
        assert!(SignAlgorithm::resolve(RSASSA_PSS, None, Some(&[0x30, 0x00])).is_err());
    }

    #[test]
    fn combined_oids_imply_their_digest() {
        use HashAlgorithm::*;
        assert_eq!(SignAlgorithm::resolve(SHA256_WITH_RSA, None, None), Ok(SignAlgorithm::RsaPkcs1(Sha256)));
        assert_eq!(SignAlgorithm::resolve(RSA_ENCRYPTION, Some(Sha512.oid()), None), Ok(SignAlgorithm::RsaPkcs1(Sha512)));
        assert!(SignAlgorithm::resolve(RSA_ENCRYPTION, None, None).is_err());
        assert!(SignAlgorithm::resolve(ECDSA_WITH_SHA256, Some(Sha384.oid()), None).is_err());
        assert!(SignAlgorithm::resolve("1.3.14.3.2.29", None, None).is_err());
        assert!(SignAlgorithm::resolve(RSA_ENCRYPTION, Some("1.3.14.3.2.26"), None).is_err());
    }

    #[test]
    fn pss_params_outside_what_the_signer_does_are_refused() {
        use crate::der::{algorithm, explicit, oid, seq, small_uint};
        let params = |hash: &str, mgf_hash: &str, salt: u64, extra: &[u8]| {
            seq(&[
                &explicit(0, &algorithm(hash)),
                &explicit(1, &seq(&[&oid(MGF1), &algorithm(mgf_hash)])),
                &explicit(2, &small_uint(salt)),
                extra,
            ])
        };
        let resolve = |der: &[u8]| SignAlgorithm::resolve(RSASSA_PSS, None, Some(der));
        assert_eq!(resolve(&params(SHA384, SHA384, 48, &[])), Ok(SignAlgorithm::RsaPss(HashAlgorithm::Sha384)));
        assert_eq!(resolve(&params(SHA384, SHA384, 48, &explicit(3, &small_uint(1)))), Ok(SignAlgorithm::RsaPss(HashAlgorithm::Sha384)));
        assert!(resolve(&params(SHA384, SHA256, 48, &[])).is_err(), "MGF1 digest differs");
        assert!(resolve(&params(SHA1, SHA1, 20, &[])).is_err(), "explicit SHA-1");
        assert!(resolve(&params(SHA384, SHA384, 48, &explicit(3, &small_uint(2)))).is_err(), "trailer field 2");
        assert!(resolve(&params(SHA384, SHA384, 48, &explicit(4, &small_uint(0)))).is_err(), "unknown field");
        assert!(resolve(&[params(SHA384, SHA384, 48, &[]), vec![0]].concat()).is_err(), "trailing bytes");
    }
}
