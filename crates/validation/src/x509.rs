//! X.509 certificates (RFC 5280 §4) as a validator reads them, and signature verification for
//! the algorithms AdES signatures, certificates, CRLs and OCSP responses use.
//!
//! Everything here reads hostile input: lengths are checked before use, nothing indexes
//! unchecked, and the DER reader never recurses (each nesting level is a separate, explicit
//! step), so no input can exhaust the stack.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use cloudsign_asn1::der::Reader;
use cloudsign_asn1::oid::{self as asn1_oid, decode_oid};
use cloudsign_asn1::{HashAlgorithm, SignAlgorithm};

/// rsaEncryption (key and, in CMS, signature algorithm).
pub const OID_RSA_ENCRYPTION: &str = asn1_oid::RSA_ENCRYPTION;
/// id-RSASSA-PSS.
pub const OID_RSASSA_PSS: &str = asn1_oid::RSASSA_PSS;
/// id-ecPublicKey (key and, in CMS, signature algorithm).
pub const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// id-Ed25519.
pub const OID_ED25519: &str = "1.3.101.112";
/// id-Ed448.
pub const OID_ED448: &str = "1.3.101.113";
/// id-kp-OCSPSigning.
pub const OID_KP_OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";
/// id-sha1 (OCSP CertIDs only).
pub const OID_SHA1: &str = "1.3.14.3.2.26";

/// keyUsage bits as [`Certificate::key_usage`] holds them: named bit `n` is `1 << n`.
pub mod key_usage {
    /// digitalSignature (0).
    pub const DIGITAL_SIGNATURE: u16 = 1 << 0;
    /// nonRepudiation / contentCommitment (1).
    pub const NON_REPUDIATION: u16 = 1 << 1;
    /// keyEncipherment (2).
    pub const KEY_ENCIPHERMENT: u16 = 1 << 2;
    /// dataEncipherment (3).
    pub const DATA_ENCIPHERMENT: u16 = 1 << 3;
    /// keyAgreement (4).
    pub const KEY_AGREEMENT: u16 = 1 << 4;
    /// keyCertSign (5).
    pub const KEY_CERT_SIGN: u16 = 1 << 5;
    /// cRLSign (6).
    pub const CRL_SIGN: u16 = 1 << 6;
    /// encipherOnly (7).
    pub const ENCIPHER_ONLY: u16 = 1 << 7;
    /// decipherOnly (8).
    pub const DECIPHER_ONLY: u16 = 1 << 8;
}

const EXT_SUBJECT_DIRECTORY_ATTRIBUTES: &str = "2.5.29.9";
const EXT_SUBJECT_KEY_ID: &str = "2.5.29.14";
const EXT_KEY_USAGE: &str = "2.5.29.15";
const EXT_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const EXT_ISSUER_ALT_NAME: &str = "2.5.29.18";
const EXT_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const EXT_CRL_DISTRIBUTION_POINTS: &str = "2.5.29.31";
const EXT_CERTIFICATE_POLICIES: &str = "2.5.29.32";
const EXT_AUTHORITY_KEY_ID: &str = "2.5.29.35";
const EXT_EXTENDED_KEY_USAGE: &str = "2.5.29.37";
const EXT_FRESHEST_CRL: &str = "2.5.29.46";
const EXT_AUTHORITY_INFO_ACCESS: &str = "1.3.6.1.5.5.7.1.1";
const EXT_QC_STATEMENTS: &str = "1.3.6.1.5.5.7.1.3";
const EXT_SUBJECT_INFO_ACCESS: &str = "1.3.6.1.5.5.7.1.11";
const EXT_OCSP_NOCHECK: &str = "1.3.6.1.5.5.7.48.1.5";

/// The extensions this crate understands well enough to accept when marked critical. The
/// policy extensions (certificatePolicies is accepted: its content does not restrict what this
/// validator does), nameConstraints, policyConstraints, policyMappings and inhibitAnyPolicy are
/// not processed, so a critical one makes the certificate unacceptable in a path.
const KNOWN_EXTENSIONS: &[&str] = &[
    EXT_SUBJECT_DIRECTORY_ATTRIBUTES,
    EXT_SUBJECT_KEY_ID,
    EXT_KEY_USAGE,
    EXT_SUBJECT_ALT_NAME,
    EXT_ISSUER_ALT_NAME,
    EXT_BASIC_CONSTRAINTS,
    EXT_CRL_DISTRIBUTION_POINTS,
    EXT_CERTIFICATE_POLICIES,
    EXT_AUTHORITY_KEY_ID,
    EXT_EXTENDED_KEY_USAGE,
    EXT_FRESHEST_CRL,
    EXT_AUTHORITY_INFO_ACCESS,
    EXT_QC_STATEMENTS,
    EXT_SUBJECT_INFO_ACCESS,
    EXT_OCSP_NOCHECK,
];

/// Why a structure could not be read or a signature not verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    /// The DER is not the expected structure.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// An algorithm this validator does not accept (unknown, SHA-1, MD5, RSA below 2048 bits,
    /// RSASSA-PSS parameters other than MGF1 with the same digest and salt = digest length).
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The public key's type does not fit the signature algorithm.
    #[error("the public key ({key}) cannot verify {algorithm} signatures")]
    KeyMismatch {
        /// The key, e.g. "ECDSA P-256".
        key: String,
        /// The signature algorithm.
        algorithm: String,
    },
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// A CRL or OCSP response is not from the expected issuer.
    #[error("{0}")]
    WrongIssuer(String),
    /// An OCSP response whose responseStatus is not successful(0).
    #[error("the OCSP response status is {0} (not successful)")]
    OcspNotSuccessful(u8),
    /// An OCSP response signed by neither the CA nor a responder it authorised.
    #[error("the OCSP response is not signed by the issuer nor by a responder it authorised")]
    UnauthorizedResponder,
    /// An OCSP response that says nothing about the certificate.
    #[error("the OCSP response has no status for this certificate")]
    NoMatchingResponse,
}

type Result<T> = std::result::Result<T, X509Error>;

/// One certificate extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Dotted OID.
    pub oid: String,
    /// The critical flag.
    pub critical: bool,
    /// The extnValue OCTET STRING's contents (the extension's own DER).
    pub value: Vec<u8>,
}

/// A parsed X.509 v1/v2/v3 certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The whole certificate.
    pub der: Vec<u8>,
    /// The whole TBSCertificate encoding (what the issuer signed).
    pub tbs: Vec<u8>,
    /// 1, 2 or 3.
    pub version: u8,
    /// The serial number's INTEGER contents.
    pub serial: Vec<u8>,
    /// The issuer Name (whole DER).
    pub issuer: Vec<u8>,
    /// The subject Name (whole DER).
    pub subject: Vec<u8>,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds (inclusive, RFC 5280 §4.1.2.5).
    pub not_after: i64,
    /// SubjectPublicKeyInfo (whole DER).
    pub spki: Vec<u8>,
    /// The outer signatureAlgorithm (whole AlgorithmIdentifier DER; the TBS copy must match).
    pub signature_algorithm: Vec<u8>,
    /// The signatureValue BIT STRING's bits.
    pub signature: Vec<u8>,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// basicConstraints pathLenConstraint.
    pub path_len: Option<u32>,
    /// keyUsage, see [`key_usage`]; `None` when the extension is absent.
    pub key_usage: Option<u16>,
    /// extendedKeyUsage purposes (dotted OIDs); `None` when the extension is absent.
    pub extended_key_usage: Option<Vec<String>>,
    /// subjectKeyIdentifier.
    pub subject_key_id: Option<Vec<u8>>,
    /// authorityKeyIdentifier keyIdentifier.
    pub authority_key_id: Option<Vec<u8>>,
    /// All extensions, in order.
    pub extensions: Vec<Extension>,
    /// Whether a critical extension is not in the set this crate processes.
    pub has_unknown_critical_extension: bool,
}

impl Certificate {
    /// Parse one DER certificate (nothing may follow it).
    pub fn parse(der: &[u8]) -> Result<Certificate> {
        const M: X509Error = X509Error::Malformed("certificate");
        let body = single(der, 0x30).ok_or(M)?;
        let mut cert = Reader::new(body);
        let (tag, tbs_body, tbs_whole) = cert.next().ok_or(M)?;
        if tag != 0x30 {
            return Err(M);
        }
        let (tag, _, signature_algorithm) = cert.next().ok_or(M)?;
        if tag != 0x30 {
            return Err(M);
        }
        let signature = bit_string_octets(cert.expect(0x03).ok_or(M)?).ok_or(M)?;
        if !cert.is_empty() {
            return Err(M);
        }

        let mut tbs = Reader::new(tbs_body);
        let version = if tbs.peek_tag() == Some(0xA0) {
            let v = single(tbs.expect(0xA0).ok_or(M)?, 0x02).ok_or(X509Error::Malformed("certificate version"))?;
            match v {
                [0] => 1,
                [1] => 2,
                [2] => 3,
                _ => return Err(X509Error::Malformed("certificate version")),
            }
        } else {
            1
        };
        let serial = tbs.expect(0x02).filter(|s| !s.is_empty()).ok_or(X509Error::Malformed("certificate serial number"))?;
        let (tag, _, inner_algorithm) = tbs.next().ok_or(M)?;
        if tag != 0x30 || inner_algorithm != signature_algorithm {
            return Err(X509Error::Malformed("certificate: the TBS signature algorithm differs from the outer one"));
        }
        let issuer = next_whole(&mut tbs, 0x30).ok_or(X509Error::Malformed("certificate issuer"))?;
        let mut validity = Reader::new(tbs.expect(0x30).ok_or(X509Error::Malformed("certificate validity"))?);
        let not_before = read_time(&mut validity).ok_or(X509Error::Malformed("certificate notBefore"))?;
        let not_after = read_time(&mut validity).ok_or(X509Error::Malformed("certificate notAfter"))?;
        if !validity.is_empty() {
            return Err(X509Error::Malformed("certificate validity"));
        }
        let subject = next_whole(&mut tbs, 0x30).ok_or(X509Error::Malformed("certificate subject"))?;
        let spki = next_whole(&mut tbs, 0x30).ok_or(X509Error::Malformed("certificate subjectPublicKeyInfo"))?;
        spki_parts(spki)?;
        let mut extensions = Vec::new();
        let mut last_tag = 0u8;
        while let Some((tag, body, _)) = tbs.next() {
            // issuerUniqueID [1], subjectUniqueID [2], extensions [3], each at most once, in order.
            if tag <= last_tag {
                return Err(X509Error::Malformed("certificate: unexpected TBS field"));
            }
            last_tag = tag;
            match tag {
                0x81 | 0x82 if version >= 2 => {}
                0xA3 if version == 3 => {
                    extensions = parse_extensions(single(body, 0x30).ok_or(X509Error::Malformed("certificate extensions"))?)?;
                }
                _ => return Err(X509Error::Malformed("certificate: unexpected TBS field")),
            }
        }
        if !tbs.is_empty() {
            return Err(M);
        }

        let mut cert = Certificate {
            der: der.to_vec(),
            tbs: tbs_whole.to_vec(),
            version,
            serial: serial.to_vec(),
            issuer: issuer.to_vec(),
            subject: subject.to_vec(),
            not_before,
            not_after,
            spki: spki.to_vec(),
            signature_algorithm: signature_algorithm.to_vec(),
            signature: signature.to_vec(),
            is_ca: false,
            path_len: None,
            key_usage: None,
            extended_key_usage: None,
            subject_key_id: None,
            authority_key_id: None,
            extensions: Vec::new(),
            has_unknown_critical_extension: false,
        };
        for ext in &extensions {
            match ext.oid.as_str() {
                EXT_BASIC_CONSTRAINTS => {
                    let bad = X509Error::Malformed("basicConstraints");
                    let mut bc = Reader::new(single(&ext.value, 0x30).ok_or(bad.clone())?);
                    if bc.peek_tag() == Some(0x01) {
                        cert.is_ca = boolean(bc.expect(0x01).ok_or(bad.clone())?).ok_or(bad.clone())?;
                    }
                    if bc.peek_tag() == Some(0x02) {
                        cert.path_len = Some(small_uint(bc.expect(0x02).ok_or(bad.clone())?).ok_or(bad.clone())?);
                    }
                    if !bc.is_empty() {
                        return Err(bad);
                    }
                }
                EXT_KEY_USAGE => {
                    let bits = single(&ext.value, 0x03).ok_or(X509Error::Malformed("keyUsage"))?;
                    cert.key_usage = Some(named_bits_u16(bits).ok_or(X509Error::Malformed("keyUsage"))?);
                }
                EXT_EXTENDED_KEY_USAGE => {
                    let mut list = Reader::new(single(&ext.value, 0x30).ok_or(X509Error::Malformed("extendedKeyUsage"))?);
                    let mut purposes = Vec::new();
                    while !list.is_empty() {
                        let oid = list.expect(0x06).and_then(decode_oid).ok_or(X509Error::Malformed("extendedKeyUsage"))?;
                        purposes.push(oid);
                    }
                    cert.extended_key_usage = Some(purposes);
                }
                EXT_SUBJECT_KEY_ID => {
                    cert.subject_key_id = Some(single(&ext.value, 0x04).ok_or(X509Error::Malformed("subjectKeyIdentifier"))?.to_vec());
                }
                EXT_AUTHORITY_KEY_ID => {
                    let mut aki = Reader::new(single(&ext.value, 0x30).ok_or(X509Error::Malformed("authorityKeyIdentifier"))?);
                    while let Some((tag, body, _)) = aki.next() {
                        if tag == 0x80 {
                            cert.authority_key_id = Some(body.to_vec());
                        }
                    }
                    if !aki.is_empty() {
                        return Err(X509Error::Malformed("authorityKeyIdentifier"));
                    }
                }
                _ => {}
            }
            if ext.critical && !KNOWN_EXTENSIONS.contains(&ext.oid.as_str()) {
                cert.has_unknown_critical_extension = true;
            }
        }
        cert.extensions = extensions;
        Ok(cert)
    }

    /// Parse every certificate in PEM text (`-----BEGIN CERTIFICATE-----` blocks).
    pub fn parse_pem_all(pem: &str) -> Result<Vec<Certificate>> {
        pem_blocks(pem, "CERTIFICATE")?.iter().map(|der| Certificate::parse(der)).collect()
    }

    /// The subject as RFC 4514 text, e.g. `CN=alice,O=cloudsign`.
    pub fn subject_text(&self) -> String {
        name_text(&self.subject)
    }

    /// The issuer as RFC 4514 text.
    pub fn issuer_text(&self) -> String {
        name_text(&self.issuer)
    }

    /// The serial number in upper-case hex.
    pub fn serial_hex(&self) -> String {
        hex::encode_upper(&self.serial)
    }

    /// SHA-256 of the whole certificate, lower-case hex.
    pub fn fingerprint_sha256(&self) -> String {
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.der))
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        key_type(&self.spki).unwrap_or(KeyType::Unknown { oid: String::new() })
    }

    /// The key for humans: "ECDSA P-256", "RSA 2048", "Ed25519".
    pub fn key_description(&self) -> String {
        self.key_type().description()
    }

    /// The key size in bits (RSA modulus length, curve size); 0 when unknown.
    pub fn key_bits(&self) -> u32 {
        self.key_type().bits()
    }

    /// The subjectPublicKey BIT STRING's bits (what OCSP CertIDs and responder key ids hash).
    pub fn public_key_bits(&self) -> &[u8] {
        spki_parts(&self.spki).map(|(_, _, bits)| bits).unwrap_or_default()
    }

    /// Whether subject and issuer are the same Name.
    pub fn is_self_issued(&self) -> bool {
        names_match(&self.subject, &self.issuer)
    }

    /// Whether `issuer`'s key verifies this certificate's signature.
    pub fn verify_issued_by(&self, issuer: &Certificate) -> Result<()> {
        verify_signature(&issuer.spki, &self.signature_algorithm, &self.tbs, &self.signature)
    }

    /// Whether notBefore <= `at` <= notAfter.
    pub fn is_valid_at(&self, at: i64) -> bool {
        self.not_before <= at && at <= self.not_after
    }

    /// The extension with this OID.
    pub fn extension(&self, oid: &str) -> Option<&Extension> {
        self.extensions.iter().find(|e| e.oid == oid)
    }

    /// The critical extensions this crate does not process.
    pub fn unknown_critical_extensions(&self) -> Vec<&str> {
        self.extensions.iter().filter(|e| e.critical && !KNOWN_EXTENSIONS.contains(&e.oid.as_str())).map(|e| e.oid.as_str()).collect()
    }

    /// Whether extendedKeyUsage lists `purpose`.
    pub fn has_extended_key_usage(&self, purpose: &str) -> bool {
        self.extended_key_usage.as_ref().is_some_and(|p| p.iter().any(|o| o == purpose))
    }

    /// The certificatePolicies policy identifiers (dotted OIDs).
    pub fn policies(&self) -> Vec<String> {
        let Some(ext) = self.extension(EXT_CERTIFICATE_POLICIES) else { return Vec::new() };
        let Some(body) = single(&ext.value, 0x30) else { return Vec::new() };
        let mut list = Reader::new(body);
        let mut out = Vec::new();
        while let Some(info) = list.expect(0x30) {
            if let Some(oid) = Reader::new(info).expect(0x06).and_then(decode_oid) {
                out.push(oid);
            }
        }
        out
    }

    /// The OCSP responder URLs (authority information access).
    pub fn ocsp_urls(&self) -> Vec<String> {
        cloudsign_pki::x509::ocsp_urls(&self.der)
    }

    /// The CRL distribution point URLs.
    pub fn crl_urls(&self) -> Vec<String> {
        cloudsign_pki::x509::crl_urls(&self.der)
    }
}

/// A public key's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyType {
    /// RSA with this modulus length.
    Rsa {
        /// Modulus bits.
        bits: u32,
    },
    /// An EC key on a named curve.
    Ec {
        /// The curve OID.
        curve: String,
    },
    /// Ed25519.
    Ed25519,
    /// Ed448.
    Ed448,
    /// Anything else.
    Unknown {
        /// The algorithm OID.
        oid: String,
    },
}

impl KeyType {
    /// "ECDSA P-256", "RSA 2048", ...
    pub fn description(&self) -> String {
        match self {
            Self::Rsa { bits } => format!("RSA {bits}"),
            Self::Ec { curve } => match curve_name(curve) {
                Some((name, _)) => format!("ECDSA {name}"),
                None => format!("EC ({curve})"),
            },
            Self::Ed25519 => "Ed25519".to_string(),
            Self::Ed448 => "Ed448".to_string(),
            Self::Unknown { oid } if oid.is_empty() => "unknown".to_string(),
            Self::Unknown { oid } => format!("unknown ({oid})"),
        }
    }

    /// Key size in bits; 0 when unknown.
    pub fn bits(&self) -> u32 {
        match self {
            Self::Rsa { bits } => *bits,
            Self::Ec { curve } => curve_name(curve).map_or(0, |(_, bits)| bits),
            Self::Ed25519 => 256,
            Self::Ed448 => 456,
            Self::Unknown { .. } => 0,
        }
    }
}

fn curve_name(oid: &str) -> Option<(&'static str, u32)> {
    Some(match oid {
        asn1_oid::CURVE_P256 => ("P-256", 256),
        asn1_oid::CURVE_P384 => ("P-384", 384),
        asn1_oid::CURVE_P521 => ("P-521", 521),
        "1.3.36.3.3.2.8.1.1.7" => ("brainpoolP256r1", 256),
        "1.3.36.3.3.2.8.1.1.11" => ("brainpoolP384r1", 384),
        "1.3.36.3.3.2.8.1.1.13" => ("brainpoolP512r1", 512),
        _ => return None,
    })
}

/// The key type of a SubjectPublicKeyInfo.
pub fn key_type(spki: &[u8]) -> Result<KeyType> {
    let (oid, params, bits) = spki_parts(spki)?;
    Ok(match oid.as_str() {
        OID_RSA_ENCRYPTION | OID_RSASSA_PSS => KeyType::Rsa { bits: rsa_modulus_bits(bits).ok_or(X509Error::Malformed("RSA public key"))? },
        OID_EC_PUBLIC_KEY => {
            let curve = params.and_then(|p| single(p, 0x06)).and_then(decode_oid).ok_or(X509Error::Malformed("EC key parameters"))?;
            KeyType::Ec { curve }
        }
        OID_ED25519 => KeyType::Ed25519,
        OID_ED448 => KeyType::Ed448,
        _ => KeyType::Unknown { oid },
    })
}

/// SubjectPublicKeyInfo → (algorithm OID, parameters element if any, key bits).
fn spki_parts(spki: &[u8]) -> Result<(String, Option<&[u8]>, &[u8])> {
    const M: X509Error = X509Error::Malformed("subjectPublicKeyInfo");
    let mut r = Reader::new(single(spki, 0x30).ok_or(M)?);
    let (tag, _, alg) = r.next().ok_or(M)?;
    if tag != 0x30 {
        return Err(M);
    }
    let (oid, params) = algorithm_parts(alg).ok_or(M)?;
    let bits = bit_string_octets(r.expect(0x03).ok_or(M)?).ok_or(M)?;
    if !r.is_empty() {
        return Err(M);
    }
    Ok((oid, params, bits))
}

fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Option<u32> {
    let mut r = Reader::new(single(rsa_public_key, 0x30)?);
    let n = r.expect(0x02)?;
    r.expect(0x02)?;
    let skip = n.iter().take_while(|b| **b == 0).count();
    let n = n.get(skip..)?;
    let first = *n.first()?;
    let bytes = u32::try_from(n.len()).ok()?;
    bytes.checked_sub(1)?.checked_mul(8)?.checked_add(8 - first.leading_zeros())
}

/// An AlgorithmIdentifier (whole DER) → (OID, the parameters element if present).
pub fn algorithm_parts(der: &[u8]) -> Option<(String, Option<&[u8]>)> {
    let mut r = Reader::new(single(der, 0x30)?);
    let oid = decode_oid(r.expect(0x06)?)?;
    let params = r.next().map(|(_, _, whole)| whole);
    r.is_empty().then_some((oid, params))
}

/// A signature scheme resolved from an AlgorithmIdentifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(HashAlgorithm),
    /// RSASSA-PSS, MGF1 with the same digest, salt length = digest length.
    RsaPss(HashAlgorithm),
    /// ECDSA, DER `ECDSA-Sig-Value`.
    Ecdsa(HashAlgorithm),
    /// Ed25519 (pure).
    Ed25519,
}

impl Scheme {
    /// Resolve a signature AlgorithmIdentifier (whole DER). `digest` is the separately named
    /// digest algorithm (a CMS SignerInfo's digestAlgorithm): required with plain rsaEncryption
    /// or id-ecPublicKey, ignored when the algorithm implies its digest (RFC 5754 §3.2: the
    /// signature's own algorithm decides how the signature was computed).
    pub fn from_algorithm(algorithm: &[u8], digest: Option<HashAlgorithm>) -> Result<Scheme> {
        use HashAlgorithm::*;
        let (oid, params) = algorithm_parts(algorithm).ok_or(X509Error::Malformed("signature AlgorithmIdentifier"))?;
        let need_digest = || digest.ok_or_else(|| X509Error::UnsupportedAlgorithm(format!("{oid} without a digest algorithm")));
        Ok(match oid.as_str() {
            asn1_oid::SHA256_WITH_RSA => Scheme::RsaPkcs1(Sha256),
            asn1_oid::SHA384_WITH_RSA => Scheme::RsaPkcs1(Sha384),
            asn1_oid::SHA512_WITH_RSA => Scheme::RsaPkcs1(Sha512),
            asn1_oid::ECDSA_WITH_SHA256 => Scheme::Ecdsa(Sha256),
            asn1_oid::ECDSA_WITH_SHA384 => Scheme::Ecdsa(Sha384),
            asn1_oid::ECDSA_WITH_SHA512 => Scheme::Ecdsa(Sha512),
            OID_RSA_ENCRYPTION => Scheme::RsaPkcs1(need_digest()?),
            OID_EC_PUBLIC_KEY => Scheme::Ecdsa(need_digest()?),
            OID_ED25519 => Scheme::Ed25519,
            OID_RSASSA_PSS => {
                let params = params.ok_or_else(|| X509Error::UnsupportedAlgorithm("RSASSA-PSS with default (SHA-1) parameters".into()))?;
                match SignAlgorithm::resolve(OID_RSASSA_PSS, None, Some(params)) {
                    Ok(SignAlgorithm::RsaPss(h)) => Scheme::RsaPss(h),
                    Ok(_) => return Err(X509Error::UnsupportedAlgorithm("RSASSA-PSS".into())),
                    Err(why) => return Err(X509Error::UnsupportedAlgorithm(format!("RSASSA-PSS: {why}"))),
                }
            }
            "1.2.840.113549.1.1.5" => return Err(X509Error::UnsupportedAlgorithm("sha1WithRSAEncryption (SHA-1)".into())),
            "1.2.840.113549.1.1.4" => return Err(X509Error::UnsupportedAlgorithm("md5WithRSAEncryption (MD5)".into())),
            "1.2.840.10045.4.1" => return Err(X509Error::UnsupportedAlgorithm("ecdsa-with-SHA1 (SHA-1)".into())),
            _ => return Err(X509Error::UnsupportedAlgorithm(oid)),
        })
    }

    /// A readable name: "ECDSA-SHA-256", "RSA-PSS-SHA-384", ...
    pub fn name(self) -> String {
        match self {
            Self::RsaPkcs1(h) => format!("RSA-PKCS1-{}", h.name()),
            Self::RsaPss(h) => format!("RSA-PSS-{}", h.name()),
            Self::Ecdsa(h) => format!("ECDSA-{}", h.name()),
            Self::Ed25519 => "Ed25519".to_string(),
        }
    }

    /// The digest, if the scheme has a separate one.
    pub fn hash(self) -> Option<HashAlgorithm> {
        match self {
            Self::RsaPkcs1(h) | Self::RsaPss(h) | Self::Ecdsa(h) => Some(h),
            Self::Ed25519 => None,
        }
    }
}

/// Verify `signature` over `message` (the signed bytes, not a digest) with the public key
/// `spki` (SubjectPublicKeyInfo DER) and the signature AlgorithmIdentifier `algorithm` (DER).
pub fn verify_signature(spki: &[u8], algorithm: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
    verify_with(spki, algorithm, None, message, signature)
}

/// [`verify_signature`] for CMS SignerInfos, whose signatureAlgorithm may be plain
/// rsaEncryption or id-ecPublicKey with the digest named by `digest_algorithm`.
pub fn verify_with(
    spki: &[u8],
    signature_algorithm: &[u8],
    digest_algorithm: Option<HashAlgorithm>,
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    let scheme = Scheme::from_algorithm(signature_algorithm, digest_algorithm)?;
    verify_scheme(spki, scheme, message, signature)
}

/// Verify with an already resolved scheme.
pub fn verify_scheme(spki: &[u8], scheme: Scheme, message: &[u8], signature: &[u8]) -> Result<()> {
    use HashAlgorithm::*;
    let (key_oid, _, key_bits) = spki_parts(spki)?;
    let key = key_type(spki)?;
    let mismatch = || X509Error::KeyMismatch { key: key.description(), algorithm: scheme.name() };
    let algorithm: &'static dyn VerificationAlgorithm = match scheme {
        Scheme::RsaPkcs1(h) | Scheme::RsaPss(h) => {
            let KeyType::Rsa { bits } = key else { return Err(mismatch()) };
            // An id-RSASSA-PSS key may only make PSS signatures (RFC 4055 §1.2).
            if key_oid == OID_RSASSA_PSS && matches!(scheme, Scheme::RsaPkcs1(_)) {
                return Err(mismatch());
            }
            if !(2048..=8192).contains(&bits) {
                return Err(X509Error::UnsupportedAlgorithm(format!("RSA key of {bits} bits (2048 to 8192 accepted)")));
            }
            match (scheme, h) {
                (Scheme::RsaPkcs1(_), Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
                (Scheme::RsaPkcs1(_), Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
                (Scheme::RsaPkcs1(_), Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
                (_, Sha256) => &signature::RSA_PSS_2048_8192_SHA256,
                (_, Sha384) => &signature::RSA_PSS_2048_8192_SHA384,
                (_, Sha512) => &signature::RSA_PSS_2048_8192_SHA512,
            }
        }
        Scheme::Ecdsa(h) => {
            let KeyType::Ec { curve } = &key else { return Err(mismatch()) };
            match (curve.as_str(), h) {
                (asn1_oid::CURVE_P256, Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
                (asn1_oid::CURVE_P256, Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
                (asn1_oid::CURVE_P256, Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
                (asn1_oid::CURVE_P384, Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
                (asn1_oid::CURVE_P384, Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
                (asn1_oid::CURVE_P384, Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
                (asn1_oid::CURVE_P521, Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
                (asn1_oid::CURVE_P521, Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
                (asn1_oid::CURVE_P521, Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
                _ => return Err(X509Error::UnsupportedAlgorithm(format!("ECDSA on {}", key.description()))),
            }
        }
        Scheme::Ed25519 => {
            if key != KeyType::Ed25519 {
                return Err(mismatch());
            }
            &signature::ED25519
        }
    };
    UnparsedPublicKey::new(algorithm, key_bits).verify(message, signature).map_err(|_| X509Error::BadSignature)
}

/// Whether two Names are the same: byte-equal, or equal after decoding (different string
/// types, RFC 5280 §7.1 comparison is approximated by case-insensitive comparison of the text).
pub fn names_match(a: &[u8], b: &[u8]) -> bool {
    a == b || {
        let (ta, tb) = (name_text(a), name_text(b));
        !ta.is_empty() && !ta.starts_with('#') && ta.to_lowercase() == tb.to_lowercase()
    }
}

/// A Name (whole DER) as RFC 4514 text: RDNs last-first, comma-separated, multi-valued RDNs
/// joined by '+'. Unknown attribute types appear as dotted OIDs; values that are not strings
/// as `#hex`. A Name that cannot be read at all is `#` + the hex of its encoding.
pub fn name_text(name: &[u8]) -> String {
    name_text_parts(name).unwrap_or_else(|| format!("#{}", hex::encode(name)))
}

fn name_text_parts(name: &[u8]) -> Option<String> {
    let mut rdns = Reader::new(single(name, 0x30)?);
    let mut out: Vec<String> = Vec::new();
    while !rdns.is_empty() {
        let mut set = Reader::new(rdns.expect(0x31)?);
        let mut parts = Vec::new();
        while !set.is_empty() {
            let mut atv = Reader::new(set.expect(0x30)?);
            let oid = decode_oid(atv.expect(0x06)?)?;
            let (tag, value, whole) = atv.next()?;
            if !atv.is_empty() {
                return None;
            }
            let label = attribute_label(&oid).map_or(oid, str::to_string);
            let text = match directory_string(tag, value) {
                Some(s) => cloudsign_pki::rfc4514_escape(&s),
                None => format!("#{}", hex::encode(whole)),
            };
            parts.push(format!("{label}={text}"));
        }
        out.push(parts.join("+"));
    }
    out.reverse();
    Some(out.join(","))
}

fn attribute_label(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// A DirectoryString (or IA5String, etc.) as text.
fn directory_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        0x0C => std::str::from_utf8(value).ok().map(str::to_string),
        // PrintableString, IA5String, NumericString, VisibleString, TeletexString (read as Latin-1).
        0x13 | 0x16 | 0x12 | 0x1A | 0x14 => Some(value.iter().map(|b| char::from(*b)).collect()),
        0x1E => {
            if !value.len().is_multiple_of(2) {
                return None;
            }
            let units = value.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units).collect::<std::result::Result<String, _>>().ok()
        }
        0x1C => {
            if !value.len().is_multiple_of(4) {
                return None;
            }
            value.chunks_exact(4).map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect()
        }
        _ => None,
    }
}

/// Extensions SEQUENCE contents → extensions (duplicates refused, RFC 5280 §4.2).
pub(crate) fn parse_extensions(list: &[u8]) -> Result<Vec<Extension>> {
    const M: X509Error = X509Error::Malformed("extension");
    let mut r = Reader::new(list);
    let mut out: Vec<Extension> = Vec::new();
    while !r.is_empty() {
        let mut ext = Reader::new(r.expect(0x30).ok_or(M)?);
        let oid = ext.expect(0x06).and_then(decode_oid).ok_or(M)?;
        let critical = if ext.peek_tag() == Some(0x01) { boolean(ext.expect(0x01).ok_or(M)?).ok_or(M)? } else { false };
        let value = ext.expect(0x04).ok_or(M)?;
        if !ext.is_empty() {
            return Err(M);
        }
        if out.iter().any(|e| e.oid == oid) {
            return Err(X509Error::Malformed("extensions: duplicate extension"));
        }
        out.push(Extension { oid, critical, value: value.to_vec() });
    }
    Ok(out)
}

/// `bytes` is exactly one element with `tag`: its contents.
pub(crate) fn single(bytes: &[u8], tag: u8) -> Option<&[u8]> {
    let mut r = Reader::new(bytes);
    let content = r.expect(tag)?;
    r.is_empty().then_some(content)
}

/// The next element if it has `tag`: its whole encoding.
pub(crate) fn next_whole<'a>(r: &mut Reader<'a>, tag: u8) -> Option<&'a [u8]> {
    match r.next()? {
        (t, _, whole) if t == tag => Some(whole),
        _ => None,
    }
}

/// BIT STRING contents with no unused bits → the octets.
pub(crate) fn bit_string_octets(content: &[u8]) -> Option<&[u8]> {
    match content.split_first()? {
        (0, rest) => Some(rest),
        _ => None,
    }
}

/// A named-bit BIT STRING (keyUsage) → bit `n` as `1 << n` (bits 0..=15).
fn named_bits_u16(content: &[u8]) -> Option<u16> {
    let (&unused, bits) = content.split_first()?;
    if unused > 7 || (bits.is_empty() && unused != 0) {
        return None;
    }
    let mut out = 0u16;
    for (i, byte) in bits.iter().take(2).enumerate() {
        for j in 0..8 {
            if byte & (0x80 >> j) != 0 {
                out |= 1 << (i * 8 + j);
            }
        }
    }
    Some(out)
}

fn boolean(content: &[u8]) -> Option<bool> {
    match content {
        [0x00] => Some(false),
        [0xFF] => Some(true),
        _ => None,
    }
}

/// A non-negative INTEGER that fits u32.
pub(crate) fn small_uint(content: &[u8]) -> Option<u32> {
    let (&first, _) = content.split_first()?;
    if first & 0x80 != 0 {
        return None;
    }
    let skip = content.iter().take_while(|b| **b == 0).count();
    let digits = content.get(skip..)?;
    if digits.len() > 4 {
        return None;
    }
    Some(digits.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// The next element as a Time (UTCTime or GeneralizedTime) → unix seconds.
pub(crate) fn read_time(r: &mut Reader<'_>) -> Option<i64> {
    let (tag, content, _) = r.next()?;
    parse_time(tag, content)
}

/// UTCTime (0x17, `YYMMDDHHMM[SS]Z`, years 1950..=2049) or GeneralizedTime (0x18,
/// `YYYYMMDDHHMMSS[.fff]Z`) → unix seconds. Only UTC ("Z") is accepted; fractions are dropped.
pub fn parse_time(tag: u8, content: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(content).ok()?;
    let text = text.strip_suffix('Z')?;
    let digits = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (year, rest) = match tag {
        0x17 => {
            let yy = digits(text.get(..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, text.get(2..)?)
        }
        0x18 => (digits(text.get(..4)?)?, text.get(4..)?),
        _ => return None,
    };
    let (main, fraction) = match rest.split_once('.') {
        Some((m, f)) if tag == 0x18 => (m, Some(f)),
        Some(_) => return None,
        None => (rest, None),
    };
    if let Some(f) = fraction {
        digits(f)?;
    }
    let month = digits(main.get(0..2)?)?;
    let day = digits(main.get(2..4)?)?;
    let hour = digits(main.get(4..6)?)?;
    let minute = digits(main.get(6..8)?)?;
    let second = match main.len() {
        8 if tag == 0x17 => 0,
        10 => digits(main.get(8..10)?)?,
        _ => return None,
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 (H. Hinnant's algorithm); year is 0..=9999 here, so no overflow.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The DER contents of every `-----BEGIN {label}-----` block in `text`.
pub fn pem_blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = rest.get(start + begin.len()..).unwrap_or_default();
        let stop = after.find(&end).ok_or(X509Error::Malformed("PEM: missing END line"))?;
        let body: String = after.get(..stop).unwrap_or_default().chars().filter(|c| !c.is_ascii_whitespace()).collect();
        out.push(cloudsign_asn1::b64::decode_lenient(&body).ok_or(X509Error::Malformed("PEM: bad base64"))?);
        rest = after.get(stop + end.len()..).unwrap_or_default();
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod test_pki {
    //! The PKI of `crates/test-support/fixtures/make-pki.sh`, built once per test process with the openssl CLI.

    use std::collections::HashMap;
    use std::sync::OnceLock;

    use super::Certificate;

    /// Every fixture file by name; the files are read into memory and the directory removed.
    fn files() -> &'static HashMap<String, Vec<u8>> {
        static FILES: OnceLock<HashMap<String, Vec<u8>>> = OnceLock::new();
        FILES.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("cloudsign-validation-pki-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../test-support/fixtures/make-pki.sh");
            let out = std::process::Command::new("sh").arg(script).arg(&dir).output().expect("run sh");
            let files = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| Some((e.file_name().into_string().ok()?, std::fs::read(e.path()).ok()?)))
                .collect();
            let _ = std::fs::remove_dir_all(&dir);
            assert!(
                out.status.success(),
                "make-pki.sh failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            files
        })
    }

    /// A fixture file's bytes.
    pub fn read(name: &str) -> Vec<u8> {
        files().get(name).cloned().unwrap_or_else(|| panic!("no fixture {name}"))
    }

    /// A fixture certificate (`<name>.der`).
    pub fn cert(name: &str) -> Certificate {
        Certificate::parse(&read(&format!("{name}.der"))).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Now, unix seconds.
    pub fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::test_pki::{cert, read};
    use super::*;
    use cloudsign_asn1::der;

    fn pss_algorithm(h: HashAlgorithm) -> Vec<u8> {
        let hash = der::algorithm(h.oid());
        let mgf = der::seq(&[&der::oid(asn1_oid::MGF1), &hash]);
        let params = der::seq(&[&der::explicit(0, &hash), &der::explicit(1, &mgf), &der::explicit(2, &der::small_uint(h.len() as u64))]);
        der::seq(&[&der::oid(OID_RSASSA_PSS), &params])
    }

    fn with_null(oid: &str) -> Vec<u8> {
        der::seq(&[&der::oid(oid), &[0x05, 0x00]])
    }

    #[test]
    fn parses_fixture_certificates() {
        let leaf = cert("leaf-ec");
        assert_eq!(leaf.version, 3);
        assert_eq!(leaf.subject_text(), "CN=alice,O=cloudsign");
        assert_eq!(leaf.issuer_text(), "CN=Test Issuing CA,O=cloudsign");
        assert_eq!(leaf.key_description(), "ECDSA P-256");
        assert_eq!(leaf.key_bits(), 256);
        assert!(!leaf.is_ca);
        assert_eq!(leaf.key_usage, Some(key_usage::DIGITAL_SIGNATURE | key_usage::NON_REPUDIATION));
        assert!(leaf.subject_key_id.is_some());
        assert!(!leaf.has_unknown_critical_extension);
        assert_eq!(leaf.serial_hex(), "1000");
        assert_eq!(leaf.ocsp_urls(), vec!["http://ocsp.test/".to_string()]);
        assert_eq!(leaf.crl_urls(), vec!["http://crl.test/inter.crl".to_string()]);
        assert!(leaf.not_before < leaf.not_after);

        let inter = cert("inter");
        assert!(inter.is_ca);
        assert_eq!(inter.path_len, Some(0));
        assert_eq!(inter.key_usage, Some(key_usage::KEY_CERT_SIGN | key_usage::CRL_SIGN));
        assert_eq!(inter.key_description(), "ECDSA P-384");
        assert_eq!(leaf.authority_key_id, inter.subject_key_id);

        let root = cert("root");
        assert_eq!(root.key_description(), "RSA 2048");
        assert!(root.is_self_issued());
        assert_eq!(cert("leaf-rsa").key_bits(), 2048);
        assert!(cert("ocsp").has_extended_key_usage(OID_KP_OCSP_SIGNING));

        // 2020-01-01 .. 2021-01-01
        let expired = cert("leaf-expired");
        assert_eq!(expired.not_before, 1_577_836_800);
        assert_eq!(expired.not_after, 1_609_459_200);
    }

    #[test]
    fn certificate_signatures_verify() {
        let (root, inter, leaf) = (cert("root"), cert("inter"), cert("leaf-ec"));
        // Root signs with RSA PKCS#1 (itself) and RSASSA-PSS (the intermediate).
        root.verify_issued_by(&root).unwrap();
        inter.verify_issued_by(&root).unwrap();
        assert_eq!(Scheme::from_algorithm(&inter.signature_algorithm, None), Ok(Scheme::RsaPss(HashAlgorithm::Sha256)));
        leaf.verify_issued_by(&inter).unwrap();
        cert("leaf-rsa").verify_issued_by(&inter).unwrap();
        assert!(matches!(leaf.verify_issued_by(&root), Err(X509Error::KeyMismatch { .. })));
        assert_eq!(cert("leaf-rsa").verify_issued_by(&leaf), Err(X509Error::BadSignature));
    }

    #[test]
    fn message_signatures_verify_and_flipped_bytes_fail() {
        use HashAlgorithm::*;
        let msg = read("msg.txt");
        let (ec, rsa, inter) = (cert("leaf-ec"), cert("leaf-rsa"), cert("inter"));
        let cases: Vec<(&Certificate, Vec<u8>, &str)> = vec![
            (&ec, der::algorithm(asn1_oid::ECDSA_WITH_SHA256), "msg.ecdsa-sha256.sig"),
            (&inter, der::algorithm(asn1_oid::ECDSA_WITH_SHA384), "msg.ecdsa-p384-sha384.sig"),
            (&rsa, with_null(asn1_oid::SHA256_WITH_RSA), "msg.rsa-sha256.sig"),
            (&rsa, with_null(asn1_oid::SHA512_WITH_RSA), "msg.rsa-sha512.sig"),
            (&rsa, pss_algorithm(Sha256), "msg.rsa-pss-sha256.sig"),
            (&rsa, pss_algorithm(Sha384), "msg.rsa-pss-sha384.sig"),
        ];
        for (cert, alg, file) in cases {
            let sig = read(file);
            verify_signature(&cert.spki, &alg, &msg, &sig).unwrap_or_else(|e| panic!("{file}: {e}"));
            let mut bad = sig.clone();
            let i = bad.len() / 2;
            bad[i] ^= 0x01;
            assert!(verify_signature(&cert.spki, &alg, &msg, &bad).is_err(), "{file}: flipped signature");
            let mut bad_msg = msg.clone();
            bad_msg[0] ^= 0x01;
            assert_eq!(verify_signature(&cert.spki, &alg, &bad_msg, &sig), Err(X509Error::BadSignature), "{file}: flipped message");
        }
        // CMS style: plain rsaEncryption / id-ecPublicKey plus the SignerInfo's digest algorithm.
        let ed = cert("ed25519");
        assert_eq!(ed.key_description(), "Ed25519");
        ed.verify_issued_by(&ed).unwrap();
        verify_signature(&ed.spki, &der::algorithm(OID_ED25519), &msg, &read("msg.ed25519.sig")).unwrap();
        assert_eq!(
            verify_signature(&ed.spki, &der::algorithm(OID_ED25519), b"other", &read("msg.ed25519.sig")),
            Err(X509Error::BadSignature)
        );
        verify_with(&rsa.spki, &with_null(OID_RSA_ENCRYPTION), Some(Sha256), &msg, &read("msg.rsa-sha256.sig")).unwrap();
        verify_with(&ec.spki, &der::algorithm(OID_EC_PUBLIC_KEY), Some(Sha256), &msg, &read("msg.ecdsa-sha256.sig")).unwrap();
        assert!(matches!(
            verify_signature(&rsa.spki, &with_null(OID_RSA_ENCRYPTION), &msg, &read("msg.rsa-sha256.sig")),
            Err(X509Error::UnsupportedAlgorithm(_))
        ));
        // PSS with a salt other than the digest length is refused by the scheme (salt = max).
        assert!(verify_signature(&rsa.spki, &pss_algorithm(Sha256), &msg, &read("msg.rsa-pss-saltmax.sig")).is_err());
        // Wrong digest in the PSS parameters, wrong key type, SHA-1.
        assert!(verify_signature(&rsa.spki, &pss_algorithm(Sha384), &msg, &read("msg.rsa-pss-sha256.sig")).is_err());
        assert!(matches!(
            verify_signature(&ec.spki, &with_null(asn1_oid::SHA256_WITH_RSA), &msg, &read("msg.rsa-sha256.sig")),
            Err(X509Error::KeyMismatch { .. })
        ));
        assert!(matches!(
            verify_signature(&rsa.spki, &with_null("1.2.840.113549.1.1.5"), &msg, &read("msg.rsa-sha256.sig")),
            Err(X509Error::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(parse_time(0x18, b"20000229120000Z"), Some(951_825_600));
        assert_eq!(parse_time(0x18, b"20231114221320.12Z"), Some(1_700_000_000));
        assert_eq!(parse_time(0x18, b"19000228000000Z"), Some(-2_203_977_600));
        assert_eq!(parse_time(0x18, b"19000229000000Z"), None);
        assert_eq!(parse_time(0x18, b"20231114221320"), None);
        assert_eq!(parse_time(0x18, b"20231314221320Z"), None);
        assert_eq!(parse_time(0x17, b"2311142213+0Z"), None);
        assert_eq!(parse_time(0x18, b"Z"), None);
        assert_eq!(parse_time(0x18, "2023111422132é".as_bytes()), None);
    }

    #[test]
    fn names() {
        let name = der::seq(&[
            &der::set_of(&[&der::seq(&[&der::oid("2.5.4.6"), &der::tlv(0x13, b"BE")])]),
            &der::set_of(&[&der::seq(&[&der::oid("2.5.4.10"), &der::tlv(0x0C, "Ünïcode, Inc.".as_bytes())])]),
            &der::set_of(&[&der::seq(&[&der::oid("2.5.4.3"), &der::tlv(0x1E, &[0, b'a', 0, b'b'])])]),
            &der::set_of(&[&der::seq(&[&der::oid("1.2.3.4"), &der::tlv(0x02, &[1])])]),
        ]);
        assert_eq!(name_text(&name), "1.2.3.4=#020101,CN=ab,O=Ünïcode\\, Inc.,C=BE");
        assert_eq!(name_text(&[0x30, 0x03, 0x31]), "#300331");
    }

    #[test]
    fn pem() {
        let pem =
            format!("junk\n{}{}", cloudsign_pki::pem_certificate(&read("root.der")), cloudsign_pki::pem_certificate(&read("inter.der")));
        let certs = Certificate::parse_pem_all(&pem).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[1].subject_text(), "CN=Test Issuing CA,O=cloudsign");
        assert!(Certificate::parse_pem_all("-----BEGIN CERTIFICATE-----\nAAA").is_err());
        assert!(Certificate::parse_pem_all("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----").is_err());
    }

    #[test]
    fn hostile_input_is_refused_without_panicking() {
        let good = read("leaf-ec.der");
        // Every truncation and every single-byte corruption either parses or errors.
        for n in 0..good.len() {
            assert!(Certificate::parse(&good[..n]).is_err());
        }
        for i in 0..good.len() {
            for v in [0x00, 0x80, 0xFF, good[i] ^ 0x01] {
                let mut bad = good.clone();
                bad[i] = v;
                if let Ok(c) = Certificate::parse(&bad) {
                    let _ = (c.subject_text(), c.key_description(), c.policies(), c.verify_issued_by(&c));
                }
            }
        }
        // Trailing data, huge lengths, indefinite length, deep nesting.
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Certificate::parse(&trailing).is_err());
        assert!(Certificate::parse(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x30]).is_err());
        assert!(Certificate::parse(&[0x30, 0x88, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(Certificate::parse(&[0x30, 0x80, 0x00, 0x00]).is_err());
        let mut deep = Vec::new();
        for _ in 0..3_000 {
            deep = der::seq(&[&deep]);
        }
        assert!(Certificate::parse(&deep).is_err());
        assert_eq!(name_text(&deep).chars().next(), Some('#'));
        assert!(key_type(&deep).is_err());
        assert!(verify_signature(&deep, &deep, b"", b"").is_err());
        assert!(verify_signature(&[], &[], b"", b"").is_err());
        assert!(Scheme::from_algorithm(&[0x30, 0x02, 0x06, 0x00], None).is_err());
        assert!(rsa_modulus_bits(&[0x30, 0x04, 0x02, 0x00, 0x02, 0x00]).is_none());
        assert_eq!(named_bits_u16(&[0x08, 0x80]), None);
        assert_eq!(small_uint(&[0x01, 0x00, 0x00, 0x00, 0x00]), None);
    }
}
