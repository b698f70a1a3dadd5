//! Certificate path building and validation (RFC 5280 §6, as ETSI EN 319 102-1 §5.2.6 "X.509
//! certificate validation" uses it): from a signer's certificate through the certificates at
//! hand to a configured trust anchor.
//!
//! The trust anchor is taken as a name and a key (RFC 5280 §6.1.1 (d)): its own validity period
//! and extensions are not checked, except that a pathLenConstraint in a CA anchor is honoured.
//! Policy processing and name constraints are not implemented; a certificate that marks such an
//! extension critical fails with [`PathError::UnknownCriticalExtension`].

use crate::x509::{Certificate, X509Error, key_usage, names_match};

/// The longest path built, anchor included.
pub const MAX_DEPTH: usize = 8;

/// The most signature verifications one path search performs (bounds the work a pool of many
/// same-named certificates can cause).
const MAX_SIGNATURE_CHECKS: u32 = 64;

/// The certificates trusted as path ends.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    certs: Vec<Certificate>,
}

impl TrustAnchors {
    /// No anchors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every certificate of PEM text; at least one is required.
    pub fn from_pem(pem: &str) -> Result<Self, X509Error> {
        let certs = Certificate::parse_pem_all(pem)?;
        if certs.is_empty() {
            return Err(X509Error::Malformed("trust anchors: no CERTIFICATE block"));
        }
        let mut anchors = Self::new();
        certs.into_iter().for_each(|c| anchors.add(c));
        Ok(anchors)
    }

    /// Add one anchor (a duplicate is ignored).
    pub fn add(&mut self, cert: Certificate) {
        if !self.contains(&cert) {
            self.certs.push(cert);
        }
    }

    /// The anchors.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certs
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// None configured.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Whether `cert` is an anchor: the same certificate, or the same subject and key (a
    /// re-issued root).
    pub fn contains(&self, cert: &Certificate) -> bool {
        self.find(cert).is_some()
    }

    fn find(&self, cert: &Certificate) -> Option<&Certificate> {
        self.certs.iter().find(|a| a.der == cert.der || (a.spki == cert.spki && names_match(&a.subject, &cert.subject)))
    }
}

/// Why no acceptable path exists. `cert` is the subject (RFC 4514 text) of the certificate at
/// fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// No path to a trust anchor (NO_CERTIFICATE_CHAIN_FOUND).
    #[error("no certificate chain to a trust anchor was found")]
    NoChainFound,
    /// A certificate's signature does not verify with its issuer's key.
    #[error("the signature of the certificate {cert} does not verify")]
    SignatureInvalid {
        /// The certificate.
        cert: String,
    },
    /// A certificate's issuer is not the next certificate's subject.
    #[error("the certificate {cert} is not issued by the next certificate in the chain")]
    IssuerMismatch {
        /// The certificate.
        cert: String,
    },
    /// A certificate had expired at the validation time (OUT_OF_BOUNDS_NO_POE).
    #[error("the certificate {cert} expired at {not_after}")]
    Expired {
        /// The certificate.
        cert: String,
        /// Its notAfter, unix seconds.
        not_after: i64,
    },
    /// A certificate was not yet valid at the validation time.
    #[error("the certificate {cert} is valid only from {not_before}")]
    NotYetValid {
        /// The certificate.
        cert: String,
        /// Its notBefore, unix seconds.
        not_before: i64,
    },
    /// A certificate that issues another is not a CA (basicConstraints cA absent or false).
    #[error("the certificate {cert} is not a CA certificate")]
    NotACa {
        /// The certificate.
        cert: String,
    },
    /// A CA certificate whose keyUsage lacks keyCertSign.
    #[error("the key usage of the certificate {cert} does not allow signing certificates")]
    KeyCertSignNotAllowed {
        /// The certificate.
        cert: String,
    },
    /// More intermediate CAs below a certificate than its pathLenConstraint allows.
    #[error("the path length constraint ({path_len}) of the certificate {cert} is exceeded")]
    PathLenExceeded {
        /// The certificate.
        cert: String,
        /// Its pathLenConstraint.
        path_len: u32,
    },
    /// A critical extension this validator does not process.
    #[error("the certificate {cert} has an unsupported critical extension {oid}")]
    UnknownCriticalExtension {
        /// The certificate.
        cert: String,
        /// The extension OID.
        oid: String,
    },
    /// A signature algorithm or key this validator does not accept.
    #[error("the certificate {cert} uses an unsupported algorithm: {detail}")]
    UnsupportedAlgorithm {
        /// The certificate.
        cert: String,
        /// What is unsupported.
        detail: String,
    },
}

impl PathError {
    /// The ETSI EN 319 102-1 sub-indication this failure leads to when it concerns the signing
    /// certificate's path (the indication is INDETERMINATE; see §5.2.6 for when POE or
    /// revocation data turn OUT_OF_BOUNDS_NO_POE into something else).
    pub fn sub_indication(&self) -> &'static str {
        match self {
            Self::NoChainFound => "NO_CERTIFICATE_CHAIN_FOUND",
            Self::Expired { .. } => "OUT_OF_BOUNDS_NO_POE",
            Self::NotYetValid { .. } => "NOT_YET_VALID",
            Self::UnsupportedAlgorithm { .. } => "CRYPTO_CONSTRAINTS_FAILURE_NO_POE",
            Self::SignatureInvalid { .. }
            | Self::IssuerMismatch { .. }
            | Self::NotACa { .. }
            | Self::KeyCertSignNotAllowed { .. }
            | Self::PathLenExceeded { .. }
            | Self::UnknownCriticalExtension { .. } => "CERTIFICATE_CHAIN_GENERAL_FAILURE",
        }
    }

    /// Whether the only problem is a validity period (what proof of existence can cure).
    pub fn is_time_related(&self) -> bool {
        matches!(self, Self::Expired { .. } | Self::NotYetValid { .. })
    }
}

fn signature_error(cert: &Certificate, e: X509Error) -> PathError {
    match e {
        X509Error::UnsupportedAlgorithm(detail) => PathError::UnsupportedAlgorithm { cert: cert.subject_text(), detail },
        // A key that cannot make this kind of signature did not make it.
        _ => PathError::SignatureInvalid { cert: cert.subject_text() },
    }
}

/// Build a path `leaf, ..., anchor` from `pool` (any certificates at hand: those in the
/// signature, fetched ones) to one of `anchors`. Issuers are matched by name and, when both are
/// present, authorityKeyIdentifier = subjectKeyIdentifier; every link's signature is verified
/// (so a path is only returned when it is cryptographically sound), anchors are preferred to
/// pool certificates, no certificate (subject and key) appears twice, and paths are at most
/// [`MAX_DEPTH`] long. When no path exists the error is the first signature failure met, else
/// [`PathError::NoChainFound`]. A leaf that is itself an anchor is a path of one.
pub fn build_path(leaf: &Certificate, pool: &[Certificate], anchors: &TrustAnchors) -> Result<Vec<Certificate>, PathError> {
    if let Some(anchor) = anchors.find(leaf) {
        return Ok(vec![anchor.clone()]);
    }
    let mut search = Search { pool, anchors, failure: None, budget: MAX_SIGNATURE_CHECKS };
    let mut chain = vec![leaf.clone()];
    if search.extend(&mut chain) { Ok(chain) } else { Err(search.failure.unwrap_or(PathError::NoChainFound)) }
}

struct Search<'a> {
    pool: &'a [Certificate],
    anchors: &'a TrustAnchors,
    failure: Option<PathError>,
    budget: u32,
}

impl Search<'_> {
    /// Depth-first: extend `chain` until it ends in an anchor. Recursion is bounded by
    /// MAX_DEPTH.
    fn extend(&mut self, chain: &mut Vec<Certificate>) -> bool {
        let Some(current) = chain.last().cloned() else { return false };
        let anchors = self.anchors.certs.iter().map(|c| (c, true));
        let pool = self.pool.iter().filter(|c| !self.anchors.contains(c)).map(|c| (c, false));
        let candidates: Vec<(&Certificate, bool)> = anchors
            .chain(pool)
            .filter(|(c, _)| names_match(&c.subject, &current.issuer))
            .filter(|(c, _)| match (&current.authority_key_id, &c.subject_key_id) {
                (Some(aki), Some(ski)) => aki == ski,
                _ => true,
            })
            .filter(|(c, _)| !chain.iter().any(|seen| seen.spki == c.spki && names_match(&seen.subject, &c.subject)))
            .collect();
        for (candidate, is_anchor) in candidates {
            if self.budget == 0 {
                return false;
            }
            self.budget -= 1;
            if let Err(e) = current.verify_issued_by(candidate) {
                if self.failure.is_none() {
                    self.failure = Some(signature_error(&current, e));
                }
                continue;
            }
            chain.push(candidate.clone());
            if is_anchor {
                return true;
            }
            if chain.len() < MAX_DEPTH && self.extend(chain) {
                return true;
            }
            chain.pop();
        }
        false
    }
}

/// Validate a path `leaf, ..., anchor` (as [`build_path`] returns it) at time `at` (unix
/// seconds): each certificate is issued (name and signature) by the next; every certificate
/// between leaf and anchor is a CA (basicConstraints cA), has keyCertSign when it has a
/// keyUsage, and respects its pathLenConstraint (as does a CA anchor); no certificate but the
/// anchor has an unknown critical extension; every certificate but the anchor is within its
/// validity period at `at`.
///
/// Validity periods are checked last, so that [`PathError::Expired`] and
/// [`PathError::NotYetValid`] mean the path is otherwise sound (the case proof of existence can
/// cure, EN 319 102-1 §5.6.2.1).
pub fn validate_path(chain: &[Certificate], at: i64) -> Result<(), PathError> {
    let Some((_anchor, below_anchor)) = chain.split_last() else { return Err(PathError::NoChainFound) };
    if chain.len() > MAX_DEPTH {
        return Err(PathError::NoChainFound);
    }
    // Links.
    for (cert, issuer) in chain.iter().zip(chain.iter().skip(1)) {
        if !names_match(&issuer.subject, &cert.issuer) {
            return Err(PathError::IssuerMismatch { cert: cert.subject_text() });
        }
        cert.verify_issued_by(issuer).map_err(|e| signature_error(cert, e))?;
    }
    // CA constraints, from the leaf's issuer up.
    let mut intermediates_below: u32 = 0;
    for (i, ca) in chain.iter().enumerate().skip(1) {
        let is_anchor = i + 1 == chain.len();
        if !is_anchor {
            if !ca.is_ca {
                return Err(PathError::NotACa { cert: ca.subject_text() });
            }
            if ca.key_usage.is_some_and(|ku| ku & key_usage::KEY_CERT_SIGN == 0) {
                return Err(PathError::KeyCertSignNotAllowed { cert: ca.subject_text() });
            }
        }
        if let Some(path_len) = ca.path_len
            && ca.is_ca
            && intermediates_below > path_len
        {
            return Err(PathError::PathLenExceeded { cert: ca.subject_text(), path_len });
        }
        if !ca.is_self_issued() {
            intermediates_below = intermediates_below.saturating_add(1);
        }
    }
    // Extensions.
    for cert in below_anchor {
        if let Some(oid) = cert.unknown_critical_extensions().first() {
            return Err(PathError::UnknownCriticalExtension { cert: cert.subject_text(), oid: oid.to_string() });
        }
    }
    // Validity periods (not the anchor's).
    for cert in below_anchor {
        if at < cert.not_before {
            return Err(PathError::NotYetValid { cert: cert.subject_text(), not_before: cert.not_before });
        }
        if at > cert.not_after {
            return Err(PathError::Expired { cert: cert.subject_text(), not_after: cert.not_after });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::test_pki::{cert, now, read};

    fn anchors() -> TrustAnchors {
        TrustAnchors::from_pem(&cloudsign_pki::pem_certificate(&read("root.der"))).unwrap()
    }

    fn pool() -> Vec<Certificate> {
        ["inter", "other-root", "leaf-rsa", "ocsp"].into_iter().map(cert).collect()
    }

    #[test]
    fn good_leaves_build_and_validate() {
        let anchors = anchors();
        for name in ["leaf-ec", "leaf-rsa"] {
            let leaf = cert(name);
            let chain = build_path(&leaf, &pool(), &anchors).unwrap();
            let subjects: Vec<String> = chain.iter().map(Certificate::subject_text).collect();
            assert_eq!(subjects[1..], ["CN=Test Issuing CA,O=cloudsign", "CN=Test Root,O=cloudsign"]);
            validate_path(&chain, now()).unwrap();
        }
        // The anchor itself, and the intermediate.
        assert_eq!(build_path(&cert("root"), &[], &anchors).unwrap().len(), 1);
        let chain = build_path(&cert("inter"), &[], &anchors).unwrap();
        assert_eq!(chain.len(), 2);
        validate_path(&chain, now()).unwrap();
    }

    #[test]
    fn untrusted_root_and_missing_intermediate() {
        let anchors = anchors();
        let mut pool = pool();
        pool.push(cert("other-root"));
        assert_eq!(build_path(&cert("other-leaf"), &pool, &anchors), Err(PathError::NoChainFound));
        assert_eq!(build_path(&cert("other-root"), &pool, &anchors), Err(PathError::NoChainFound));
        assert_eq!(build_path(&cert("leaf-ec"), &[], &anchors), Err(PathError::NoChainFound));
        assert_eq!(build_path(&cert("leaf-ec"), &pool, &TrustAnchors::new()), Err(PathError::NoChainFound));
        assert_eq!(PathError::NoChainFound.sub_indication(), "NO_CERTIFICATE_CHAIN_FOUND");
    }

    #[test]
    fn expired_leaf() {
        let chain = build_path(&cert("leaf-expired"), &pool(), &anchors()).unwrap();
        let err = validate_path(&chain, now()).unwrap_err();
        assert_eq!(err, PathError::Expired { cert: "CN=carol,O=cloudsign".into(), not_after: 1_609_459_200 });
        assert_eq!(err.sub_indication(), "OUT_OF_BOUNDS_NO_POE");
        assert!(err.is_time_related());
        // Within its validity period the path is good, but the CA did not exist yet then: the
        // intermediate is not yet valid.
        assert!(matches!(validate_path(&chain, 1_600_000_000), Err(PathError::NotYetValid { .. })));
        // A good leaf validated after it expires.
        let chain = build_path(&cert("leaf-ec"), &pool(), &anchors()).unwrap();
        assert!(matches!(validate_path(&chain, chain[0].not_after + 1), Err(PathError::Expired { .. })));
    }

    #[test]
    fn tampered_certificate_fails_its_signature() {
        let der = read("leaf-ec.der");
        let pos = der.windows(5).position(|w| w == b"alice").unwrap();
        let mut bad = der.clone();
        bad[pos] = b'A';
        let tampered = Certificate::parse(&bad).unwrap();
        let err = build_path(&tampered, &pool(), &anchors()).unwrap_err();
        assert_eq!(err, PathError::SignatureInvalid { cert: "CN=Alice,O=cloudsign".into() });
        // validate_path re-checks the links of a path given to it.
        let mut chain = build_path(&cert("leaf-ec"), &pool(), &anchors()).unwrap();
        chain[0] = tampered;
        assert!(matches!(validate_path(&chain, now()), Err(PathError::SignatureInvalid { .. })));
    }

    #[test]
    fn ca_constraints() {
        let anchors = anchors();
        let mut pool = pool();
        pool.extend(["leaf-ec", "inter2", "inter-noku"].map(cert));
        let build = |name: &str| build_path(&cert(name), &pool, &anchors).unwrap();

        let chain = build("sub-of-leaf");
        assert_eq!(chain.len(), 4);
        assert_eq!(validate_path(&chain, now()), Err(PathError::NotACa { cert: "CN=alice,O=cloudsign".into() }));

        let chain = build("leaf-deep");
        assert_eq!(
            validate_path(&chain, now()),
            Err(PathError::PathLenExceeded { cert: "CN=Test Issuing CA,O=cloudsign".into(), path_len: 0 })
        );
        validate_path(&chain[1..], now()).unwrap(); // inter2 itself is fine under inter

        let chain = build("leaf-noku");
        assert_eq!(validate_path(&chain, now()), Err(PathError::KeyCertSignNotAllowed { cert: "CN=CA without keyCertSign".into() }));

        let chain = build("leaf-crit");
        let err = validate_path(&chain, now()).unwrap_err();
        assert_eq!(err, PathError::UnknownCriticalExtension { cert: "CN=critical extension".into(), oid: "1.2.3.4".into() });
        assert_eq!(err.sub_indication(), "CERTIFICATE_CHAIN_GENERAL_FAILURE");
        // Constraint failures come before validity periods.
        assert!(matches!(validate_path(&chain, 0), Err(PathError::UnknownCriticalExtension { .. })));

        // Links are checked: a path whose issuer names do not chain.
        let (root, inter, leaf) = (cert("root"), cert("inter"), cert("leaf-ec"));
        assert!(matches!(validate_path(&[leaf, root.clone(), inter.clone()], now()), Err(PathError::IssuerMismatch { .. })));
        assert!(validate_path(&[], now()).is_err());
        let long: Vec<Certificate> = std::iter::repeat_n(root.clone(), MAX_DEPTH + 1).collect();
        assert_eq!(validate_path(&long, now()), Err(PathError::NoChainFound));
        // A self-issued CA repeated is not counted against path lengths.
        validate_path(&[inter, root.clone(), root.clone(), root], now()).unwrap();
    }

    #[test]
    fn trust_anchor_parsing() {
        assert!(TrustAnchors::from_pem("nothing here").is_err());
        let mut a = anchors();
        a.add(cert("root"));
        assert_eq!(a.len(), 1);
        assert!(a.contains(&cert("root")));
        assert!(!a.contains(&cert("other-root")));
    }
}
