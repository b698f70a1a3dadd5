//! The built-in certification authority: a root, an issuing CA, and the end-entity profile
//! for signing credentials. Keys come from any [`KeyBackend`]; certificates are built with
//! rcgen, signed through our own [`SigningKey`] trait so that a CA key in an HSM works the same.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cms;
use cloudsign_asn1::der;
pub mod ocsp;
pub mod tsa;
pub mod x509;

use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cloudsign_asn1::{HashAlgorithm, KeyAlgorithm, SignAlgorithm};
use cloudsign_keys::{KeyBackend, KeyError, SigningKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyUsagePurpose, PublicKeyData, SerialNumber,
    SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};

/// The CA key type: ECDSA P-384 (ETSI TS 119 312 recommends ≥ 256-bit EC through 2030+).
pub const CA_KEY: KeyAlgorithm = KeyAlgorithm::EcdsaP384;

/// Why the CA could not act.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The key backend failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Building the certificate failed.
    #[error("certificate construction failed: {0}")]
    Build(String),
}

/// A certificate and what the API reports about it.
/// A certificate the CA issued, with its metadata.
pub type IssuedCert = cloudsign_asn1::cert::CertInfo;

/// A CA certificate with its stored key handle, for persisting a new hierarchy.
pub struct CaRecord {
    /// The certificate.
    pub cert: IssuedCert,
    /// The backend handle of its key.
    pub key_handle: Vec<u8>,
}

/// Names used by the CA.
#[derive(Debug, Clone)]
pub struct CaNames {
    /// `O` of every certificate.
    pub organization: String,
    /// Optional `C` (ISO 3166-1 alpha-2).
    pub country: Option<String>,
}

impl CaNames {
    fn dn(&self, common_name: &str) -> (DistinguishedName, String) {
        let mut dn = DistinguishedName::new();
        let mut parts = Vec::new();
        if let Some(c) = &self.country {
            dn.push(DnType::CountryName, c.as_str());
            parts.push(format!("C={}", rfc4514_escape(c)));
        }
        dn.push(DnType::OrganizationName, self.organization.as_str());
        parts.push(format!("O={}", rfc4514_escape(&self.organization)));
        dn.push(DnType::CommonName, common_name);
        parts.push(format!("CN={}", rfc4514_escape(common_name)));
        // RFC 4514 §2.1: the string form lists RDNs from the last to the first.
        parts.reverse();
        (dn, parts.join(","))
    }
}

/// The binding under which a CA key handle is sealed.
pub fn ca_key_binding(name: &str) -> String {
    format!("ca:{name}")
}

const ROOT_CN: &str = "cloudsign Root CA";
const TSA_CN: &str = "cloudsign Time-Stamping Authority";
const ISSUING_CN: &str = "cloudsign Issuing CA 1";

/// The issuing CA, ready to sign end-entity certificates.
pub struct IssuingCa {
    /// The service's public base URL: when set, every certificate issued names
    /// `<url>/crl` (CRL distribution point, RFC 5280 §4.2.1.13) and `<url>/ocsp` (authority
    /// information access, §4.2.2.1).
    public_url: Option<String>,
    params: CertificateParams,
    key: Arc<dyn SigningKey>,
    dn: String,
    /// End of the issuing CA's validity (Unix seconds): no certificate outlives it.
    pub not_after: i64,
    /// DER of the issuing CA certificate.
    pub issuing_der: Vec<u8>,
    /// DER of the root certificate.
    pub root_der: Vec<u8>,
}

fn issuing_params(names: &CaNames) -> (CertificateParams, String) {
    let (dn, text) = names.dn(ISSUING_CN);
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    (params, text)
}

fn root_params(names: &CaNames) -> (CertificateParams, String) {
    let (dn, text) = names.dn(ROOT_CN);
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params, text)
}

/// Create a new root and issuing CA. Returns (root, issuing).
pub fn create_hierarchy(backend: &dyn KeyBackend, names: &CaNames) -> Result<(CaRecord, CaRecord), PkiError> {
    create_hierarchy_at(backend, names, None)
}

/// [`create_hierarchy`] for a service reachable at `public_url`: the issuing CA's certificate
/// names `<public_url>/arl`, the root's CRL, so that any relying party can fetch its status
/// (long-term validation data for the whole chain, ETSI EN 319 102-1 §5.2.5).
pub fn create_hierarchy_at(backend: &dyn KeyBackend, names: &CaNames, public_url: Option<&str>) -> Result<(CaRecord, CaRecord), PkiError> {
    let now = OffsetDateTime::now_utc();
    let root_key = backend.generate(CA_KEY, &ca_key_binding("root"))?;
    let (mut rp, root_dn) = root_params(names);
    set_validity(&mut rp, now, now + Duration::days(365 * 20))?;
    let root_signer = RcgenSigner::new(root_key.key.clone())?;
    let root_cert = rp.self_signed(&root_signer).map_err(build)?;
    let root_issuer = Issuer::new(rp.clone(), root_signer);

    let issuing_key = backend.generate(CA_KEY, &ca_key_binding("issuing"))?;
    let (mut ip, issuing_dn) = issuing_params(names);
    if let Some(base) = public_url {
        ip.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: vec![format!("{}/arl", base.trim_end_matches('/'))] }];
    }
    set_validity(&mut ip, now, now + Duration::days(365 * 10))?;
    let issuing_public = RcgenSigner::new(issuing_key.key.clone())?;
    let issuing_cert = ip.signed_by(&issuing_public, &root_issuer).map_err(build)?;

    let record = |der: Vec<u8>, p: &CertificateParams, subject: String, issuer: String, handle: Vec<u8>| CaRecord {
        cert: IssuedCert {
            der,
            serial_hex: serial_hex(p),
            subject_dn: subject,
            issuer_dn: issuer,
            not_before: p.not_before.unix_timestamp(),
            not_after: p.not_after.unix_timestamp(),
        },
        key_handle: handle,
    };
    Ok((
        record(root_cert.der().to_vec(), &rp, root_dn.clone(), root_dn.clone(), root_key.handle),
        record(issuing_cert.der().to_vec(), &ip, issuing_dn, root_dn, issuing_key.handle),
    ))
}

fn serial_hex(p: &CertificateParams) -> String {
    p.serial_number.as_ref().map(|s| hex::encode_upper(s.as_ref())).unwrap_or_default()
}

fn set_validity(p: &mut CertificateParams, from: OffsetDateTime, to: OffsetDateTime) -> Result<(), PkiError> {
    p.not_before = from.replace_nanosecond(0).map_err(build)?;
    p.not_after = to.replace_nanosecond(0).map_err(build)?;
    p.serial_number = Some(random_serial()?);
    Ok(())
}

/// 127 random bits, positive, never a leading zero octet (RFC 5280 §4.1.2.2: ≤ 20 octets).
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).map_err(|_| PkiError::Build("random generator".into()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn build(e: impl std::fmt::Display) -> PkiError {
    PkiError::Build(e.to_string())
}

impl IssuingCa {
    /// Reassemble the issuing CA from its stored certificate and key.
    pub fn new(names: &CaNames, key: Arc<dyn SigningKey>, issuing: &IssuedCert, root_der: Vec<u8>, public_url: Option<String>) -> Self {
        let (params, dn) = issuing_params(names);
        let public_url = public_url.map(|u| u.trim_end_matches('/').to_string());
        Self { public_url, params, key, dn, not_after: issuing.not_after, issuing_der: issuing.der.clone(), root_der }
    }

    /// Sign `message` with the issuing CA key (ECDSA P-384 with SHA-384).
    pub(crate) fn sign_message(&self, scheme: SignAlgorithm, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let d = match scheme.hash() {
            HashAlgorithm::Sha256 => digest::digest(&digest::SHA256, message),
            HashAlgorithm::Sha384 => digest::digest(&digest::SHA384, message),
            HashAlgorithm::Sha512 => digest::digest(&digest::SHA512, message),
        };
        Ok(self.key.sign_digest(scheme, d.as_ref())?)
    }

    /// A CRL (RFC 5280 §5) of the revoked and suspended certificates, valid for
    /// `validity_secs`. `crl_number` must grow from one CRL to the next (§5.2.3); the service
    /// uses the issue time in milliseconds.
    pub fn crl(&self, revoked: &[RevokedEntry], now: i64, validity_secs: i64, crl_number: u64) -> Result<Vec<u8>, PkiError> {
        sign_crl(&self.params, self.key.clone(), revoked, now, validity_secs, crl_number)
    }

    /// Issue a signing certificate for `public_key` (key usage digitalSignature +
    /// nonRepudiation, as ETSI EN 319 412-2 §4.3.2 wants for signatures), valid for
    /// `validity_days`, never beyond the issuing CA.
    pub fn issue_signing_cert(
        &self,
        names: &CaNames,
        common_name: &str,
        public_key: &dyn SigningKey,
        validity_days: u32,
    ) -> Result<IssuedCert, PkiError> {
        self.issue_signing_cert_for(names, common_name, public_key.algorithm(), public_key.public_key_raw(), validity_days)
    }

    /// The same, for a public key known only from elsewhere (renewal with the same key reads it
    /// from the certificate being replaced, so the private key need not be opened).
    pub fn issue_signing_cert_for(
        &self,
        names: &CaNames,
        common_name: &str,
        algorithm: KeyAlgorithm,
        raw_public_key: &[u8],
        validity_days: u32,
    ) -> Result<IssuedCert, PkiError> {
        let usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        self.issue(names, common_name, (algorithm, raw_public_key), Duration::days(i64::from(validity_days)), usages, Vec::new())
    }

    /// A short-lived signing certificate (on-demand credentials, CSC 2.2 §11.4): the same
    /// profile, valid for `validity_minutes` (capped at the CA's own end).
    pub fn issue_short_signing_cert(
        &self,
        names: &CaNames,
        common_name: &str,
        public_key: &dyn SigningKey,
        validity_minutes: u32,
    ) -> Result<IssuedCert, PkiError> {
        let usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        let key = (public_key.algorithm(), public_key.public_key_raw());
        self.issue(names, common_name, key, Duration::minutes(i64::from(validity_minutes)), usages, Vec::new())
    }

    /// Issue the time-stamping authority's certificate: key usage digitalSignature and the
    /// extended key usage id-kp-timeStamping, marked critical as RFC 3161 §2.3 requires.
    pub fn issue_tsa_cert(&self, names: &CaNames, public_key: &dyn SigningKey, validity_days: u32) -> Result<IssuedCert, PkiError> {
        let eku = der::seq(&[&der::oid(tsa::ID_KP_TIME_STAMPING)]);
        let mut ext = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 37], eku);
        ext.set_criticality(true);
        let key = (public_key.algorithm(), public_key.public_key_raw());
        self.issue(names, TSA_CN, key, Duration::days(i64::from(validity_days)), vec![KeyUsagePurpose::DigitalSignature], vec![ext])
    }

    fn issue(
        &self,
        names: &CaNames,
        common_name: &str,
        (algorithm, raw_public_key): (KeyAlgorithm, &[u8]),
        validity: Duration,
        key_usages: Vec<KeyUsagePurpose>,
        extensions: Vec<rcgen::CustomExtension>,
    ) -> Result<IssuedCert, PkiError> {
        let now = OffsetDateTime::now_utc();
        let (dn, subject) = names.dn(common_name);
        let mut p = CertificateParams::default();
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = key_usages;
        p.custom_extensions = extensions;
        if let Some(base) = &self.public_url {
            p.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: vec![format!("{base}/crl")] }];
            // AuthorityInfoAccess { id-ad-ocsp, uniformResourceIdentifier [6] }
            let ocsp = der::seq(&[&der::oid(cloudsign_asn1::oid::ID_AD_OCSP), &der::tlv(0x86, format!("{base}/ocsp").as_bytes())]);
            p.custom_extensions.push(rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], der::seq(&[&ocsp])));
        }
        p.use_authority_key_identifier_extension = true;
        let ca_end = OffsetDateTime::from_unix_timestamp(self.not_after).map_err(build)?;
        let end = (now + validity).min(ca_end);
        set_validity(&mut p, now, end)?;
        let subject_key = EndEntityPublicKey { raw: raw_public_key.to_vec(), alg: rcgen_alg(algorithm) };
        let issuer = Issuer::from_params(&self.params, RcgenSigner::new(self.key.clone())?);
        let cert = p.signed_by(&subject_key, &issuer).map_err(build)?;
        Ok(IssuedCert {
            der: cert.der().to_vec(),
            serial_hex: serial_hex(&p),
            subject_dn: subject,
            issuer_dn: self.dn.clone(),
            not_before: p.not_before.unix_timestamp(),
            not_after: p.not_after.unix_timestamp(),
        })
    }
}

fn rcgen_alg(k: KeyAlgorithm) -> &'static SignatureAlgorithm {
    match k {
        KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyAlgorithm::EcdsaP521 => &rcgen::PKCS_ECDSA_P521_SHA512,
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
    }
}

/// One entry of a CRL.
#[derive(Debug, Clone)]
pub struct RevokedEntry {
    /// Hex serial number.
    pub serial_hex: String,
    /// Revocation time (Unix seconds).
    pub revoked_at: i64,
    /// RFC 5280 CRLReason code.
    pub reason: i64,
}

fn reason(code: i64) -> rcgen::RevocationReason {
    use rcgen::RevocationReason::*;
    match code {
        1 => KeyCompromise,
        3 => AffiliationChanged,
        4 => Superseded,
        5 => CessationOfOperation,
        6 => CertificateHold,
        9 => PrivilegeWithdrawn,
        _ => Unspecified,
    }
}

/// The subject public key of an end-entity certificate.
struct EndEntityPublicKey {
    raw: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for EndEntityPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// Adapts our [`SigningKey`] to rcgen: rcgen hands over the TBS bytes, we hash and sign the
/// digest, so the CA key never has to be in this process in clear.
struct RcgenSigner {
    key: Arc<dyn SigningKey>,
    scheme: SignAlgorithm,
    alg: &'static SignatureAlgorithm,
}

impl RcgenSigner {
    fn new(key: Arc<dyn SigningKey>) -> Result<Self, PkiError> {
        let (scheme, alg) = match key.algorithm() {
            KeyAlgorithm::EcdsaP256 => (SignAlgorithm::Ecdsa(HashAlgorithm::Sha256), &rcgen::PKCS_ECDSA_P256_SHA256),
            KeyAlgorithm::EcdsaP384 => (SignAlgorithm::Ecdsa(HashAlgorithm::Sha384), &rcgen::PKCS_ECDSA_P384_SHA384),
            KeyAlgorithm::EcdsaP521 => (SignAlgorithm::Ecdsa(HashAlgorithm::Sha512), &rcgen::PKCS_ECDSA_P521_SHA512),
            _ => (SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256), &rcgen::PKCS_RSA_SHA256),
        };
        Ok(Self { key, scheme, alg })
    }
}

impl PublicKeyData for RcgenSigner {
    fn der_bytes(&self) -> &[u8] {
        self.key.public_key_raw()
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

impl rcgen::SigningKey for RcgenSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let d = match self.scheme.hash() {
            HashAlgorithm::Sha256 => digest::digest(&digest::SHA256, msg),
            HashAlgorithm::Sha384 => digest::digest(&digest::SHA384, msg),
            HashAlgorithm::Sha512 => digest::digest(&digest::SHA512, msg),
        };
        self.key.sign_digest(self.scheme, d.as_ref()).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// RFC 4514 §2.4 escaping of an attribute value.
pub fn rfc4514_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special =
            matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\') || (i == 0 && (c == '#' || c == ' ')) || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `YYYYMMDDHHMMSSZ` (CSC `cert.validFrom` / `cert.validTo`).
pub fn generalized_time(unix: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}{:02}{:02}{:02}{:02}{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// The subject public key of a certificate as `public_key_raw` gives it (RFC 5280 §4.1.2.7:
/// the BIT STRING of SubjectPublicKeyInfo): an EC point or a DER RSAPublicKey.
pub fn subject_public_key(cert_der: &[u8]) -> Option<Vec<u8>> {
    cloudsign_asn1::cert::subject_and_key(cert_der).map(|(_, key)| key).filter(|k| !k.is_empty())
}

/// PEM armour for a certificate.
pub fn pem_certificate(der: &[u8]) -> String {
    let b64 = cloudsign_asn1::b64::encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A CRL signed by the CA described by `ca_params` with `key`.
fn sign_crl(
    ca_params: &CertificateParams,
    key: Arc<dyn SigningKey>,
    revoked: &[RevokedEntry],
    now: i64,
    validity_secs: i64,
    crl_number: u64,
) -> Result<Vec<u8>, PkiError> {
    let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).map_err(build);

    let revoked_certs = revoked
        .iter()
        .map(|r| {
            Ok(rcgen::RevokedCertParams {
                serial_number: SerialNumber::from_slice(&hex::decode(&r.serial_hex).map_err(build)?),
                revocation_time: at(r.revoked_at)?,
                reason_code: Some(reason(r.reason)),
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, PkiError>>()?;
    let params = rcgen::CertificateRevocationListParams {
        this_update: at(now)?,
        next_update: at(now + validity_secs)?,
        crl_number: SerialNumber::from(crl_number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: ca_params.key_identifier_method.clone(),
    };
    let issuer = Issuer::from_params(ca_params, RcgenSigner::new(key)?);
    Ok(params.signed_by(&issuer).map_err(build)?.der().to_vec())
}

/// The root's CRL (an authority revocation list, RFC 5280 §5): no revoked CA certificates.
/// Long-term signatures embed it as the revocation evidence for the issuing CA.
pub fn root_crl(
    names: &CaNames,
    root_key: Arc<dyn SigningKey>,
    now: i64,
    validity_secs: i64,
    crl_number: u64,
) -> Result<Vec<u8>, PkiError> {
    sign_crl(&root_params(names).0, root_key, &[], now, validity_secs, crl_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_time_format() {
        assert_eq!(rfc4514_escape("Doe, John"), "Doe\\, John");
        assert_eq!(rfc4514_escape(" #x "), "\\ #x\\ ");
        assert_eq!(generalized_time(0), "19700101000000Z");
        assert_eq!(generalized_time(1_700_000_000), "20231114221320Z");
    }
}
