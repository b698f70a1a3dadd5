//! Algorithm identifiers (CSC v2 §5 "signAlgo"/"hashAlgorithmOID", RFC 8017, RFC 5758) and the
//! rules that turn `signAlgo` + `hashAlgorithmOID` + `signAlgoParams` into one signature scheme.

use crate::der::Reader as Der;

/// rsaEncryption: PKCS#1 v1.5 with the digest named separately (`hashAlgorithmOID`).
pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// RSASSA-PSS; its parameters come in `signAlgoParams`.
pub const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
/// sha256WithRSAEncryption.
pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
/// sha384WithRSAEncryption.
pub const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
/// sha512WithRSAEncryption.
pub const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
/// ecdsa-with-SHA256.
pub const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
/// ecdsa-with-SHA384.
pub const ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";
/// ecdsa-with-SHA512.
pub const ECDSA_WITH_SHA512: &str = "1.2.840.10045.4.3.4";
/// id-mgf1.
pub const MGF1: &str = "1.2.840.113549.1.1.8";
/// secp256r1.
pub const CURVE_P256: &str = "1.2.840.10045.3.1.7";
/// secp384r1.
pub const CURVE_P384: &str = "1.3.132.0.34";
/// secp521r1.
pub const CURVE_P521: &str = "1.3.132.0.35";

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
            Self::Sha256 => "2.16.840.1.101.3.4.2.1",
            Self::Sha384 => "2.16.840.1.101.3.4.2.2",
            Self::Sha512 => "2.16.840.1.101.3.4.2.3",
        }
    }

    /// Digest length in bytes.
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

/// Parse DER RSASSA-PSS-params and accept only what the signer implements: the same digest for
/// the message and MGF1, salt length equal to the digest length, trailer field 1.
fn parse_pss_params(der: &[u8]) -> Result<HashAlgorithm, String> {
    let bad = |why: &str| format!("Invalid parameter signAlgoParams: {why}");
    let mut outer = Der::new(der);
    let seq = outer.expect(0x30).ok_or_else(|| bad("not a DER SEQUENCE"))?;
    if !outer.is_empty() {
        return Err(bad("trailing bytes"));
    }
    let mut fields = Der::new(seq);
    // RFC 8017 A.2.3 defaults: sha1, mgf1SHA1, salt 20, trailer 1. sha1 is refused, so the
    // hash and MGF members must be present.
    let mut hash = None;
    let mut mgf_hash = None;
    let mut salt: u64 = 20;
    while !fields.is_empty() {
        let (tag, body, _) = fields.next().ok_or_else(|| bad("malformed field"))?;
        match tag {
            0xA0 => hash = Some(algorithm_id(body).ok_or_else(|| bad("malformed hashAlgorithm"))?),
            0xA1 => {
                let mut alg = Der::new(body);
                let mut inner = Der::new(alg.expect(0x30).ok_or_else(|| bad("malformed maskGenAlgorithm"))?);
                let oid = decode_oid(inner.expect(0x06).ok_or_else(|| bad("malformed maskGenAlgorithm"))?);
                if oid.as_deref() != Some(MGF1) {
                    return Err(bad("only MGF1 is supported"));
                }
                let rest = inner.rest();
                mgf_hash = Some(algorithm_id_seq(rest).ok_or_else(|| bad("malformed MGF1 digest"))?);
            }
            0xA2 => {
                let mut v = Der::new(body);
                salt =
                    decode_uint(v.expect(0x02).ok_or_else(|| bad("malformed saltLength"))?).ok_or_else(|| bad("malformed saltLength"))?;
            }
            0xA3 => {
                let mut v = Der::new(body);
                let t = decode_uint(v.expect(0x02).ok_or_else(|| bad("malformed trailerField"))?);
                if t != Some(1) {
                    return Err(bad("trailerField must be 1"));
                }
            }
            _ => return Err(bad("unknown field")),
        }
    }
    let hash_oid = hash.ok_or_else(|| bad("SHA-1 (the default digest) is not accepted"))?;
    let h = HashAlgorithm::from_oid(&hash_oid).ok_or_else(|| bad("unsupported digest"))?;
    if mgf_hash.as_deref() != Some(h.oid()) {
        return Err(bad("MGF1 must use the same digest as the signature"));
    }
    if salt != h.len() as u64 {
        return Err(bad("saltLength must equal the digest length"));
    }
    Ok(h)
}

/// `[n] EXPLICIT AlgorithmIdentifier` body → OID.
fn algorithm_id(body: &[u8]) -> Option<String> {
    algorithm_id_seq(body)
}

/// A DER `AlgorithmIdentifier` SEQUENCE → its OID (parameters ignored: NULL or absent).
fn algorithm_id_seq(bytes: &[u8]) -> Option<String> {
    let mut d = Der::new(bytes);
    let mut inner = Der::new(d.expect(0x30)?);
    decode_oid(inner.expect(0x06)?)
}

fn decode_uint(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 8 || bytes[0] & 0x80 != 0 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Dotted-decimal text of a DER OBJECT IDENTIFIER body.
pub fn decode_oid(bytes: &[u8]) -> Option<String> {
    // u128: UUID-derived OIDs (2.25.<uuid>) have a 128-bit arc.
    let mut arcs: Vec<u128> = Vec::new();
    let mut acc: u128 = 0;
    for (i, b) in bytes.iter().enumerate() {
        if acc > (u128::MAX >> 7) {
            return None;
        }
        acc = (acc << 7) | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        } else if i == bytes.len() - 1 {
            return None;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    Some(arcs.iter().map(u128::to_string).collect::<Vec<_>>().join("."))
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
    fn oid_decoding() {
        assert_eq!(decode_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08]).as_deref(), Some(MGF1));
        assert_eq!(decode_oid(&[0x86]), None);
    }
}
