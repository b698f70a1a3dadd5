//! Revocation status from CRLs (RFC 5280 §5) and OCSP responses (RFC 6960), embedded in a
//! signature or fetched: each is parsed, its signature verified against the certificate's
//! issuer (or, for OCSP, a responder the issuer authorised), its scope and freshness checked,
//! and only then believed.

use serde::Serialize;

use crate::engine::rfc3339;
use crate::x509::{
    self, Certificate, Extension, OID_KP_OCSP_SIGNING, OID_SHA1, X509Error, algorithm_parts, bit_string_octets, key_usage, names_match,
    next_whole, parse_extensions, read_time, single,
};
use cloudsign_asn1::HashAlgorithm;
use cloudsign_asn1::der::Reader;
use cloudsign_asn1::oid::decode_oid;

const ID_PKIX_OCSP_BASIC: &str = "1.3.6.1.5.5.7.48.1.1";
const EXT_CRL_NUMBER: &str = "2.5.29.20";
const EXT_CRL_REASON: &str = "2.5.29.21";
const EXT_INVALIDITY_DATE: &str = "2.5.29.24";
const EXT_DELTA_CRL_INDICATOR: &str = "2.5.29.27";
const EXT_ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
const EXT_CERTIFICATE_ISSUER: &str = "2.5.29.29";
const EXT_AUTHORITY_KEY_ID: &str = "2.5.29.35";
const EXT_FRESHEST_CRL: &str = "2.5.29.46";
const EXT_AUTHORITY_INFO_ACCESS: &str = "1.3.6.1.5.5.7.1.1";
/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): the responder certificate need not be checked.
const ID_PKIX_OCSP_NOCHECK: &str = "1.3.6.1.5.5.7.48.1.5";

/// Where revocation data came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Source {
    /// Carried by the signature (CAdES revocation values, PAdES DSS).
    Embedded,
    /// Fetched from the CA's services during validation.
    Fetched,
}

/// What the revocation data says about a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RevocationStatus {
    /// Not revoked according to data current at the validation time.
    Good {
        /// Where the data came from.
        source: Source,
        /// The data's thisUpdate, unix seconds.
        this_update: i64,
        /// "OCSP" or "CRL".
        produced_by: &'static str,
    },
    /// Revoked at `at`. **`at` may be later than the validation time**: the certificate was
    /// then still good at that time (see [`RevocationStatus::is_good_at`]); the revocation is
    /// returned so that it can be reported.
    Revoked {
        /// The revocation time, unix seconds.
        at: i64,
        /// The CRLReason code, if given.
        reason: Option<u8>,
        /// Where the data came from.
        source: Source,
        /// The data's thisUpdate, unix seconds.
        this_update: i64,
        /// "OCSP" or "CRL".
        produced_by: &'static str,
    },
    /// No usable revocation data.
    Unknown,
}

impl RevocationStatus {
    /// Whether the certificate was revoked at or before `time`.
    pub fn is_revoked_at(&self, time: i64) -> bool {
        matches!(self, Self::Revoked { at, .. } if *at <= time)
    }

    /// Whether the certificate is known not to have been revoked at `time`.
    pub fn is_good_at(&self, time: i64) -> bool {
        match self {
            Self::Good { .. } => true,
            Self::Revoked { at, .. } => *at > time,
            Self::Unknown => false,
        }
    }
}

/// The name of a CRLReason code (RFC 5280 §5.3.1).
pub fn reason_text(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "unknown reason",
    }
}

/// One revoked certificate of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The serial number's INTEGER contents.
    pub serial: Vec<u8>,
    /// revocationDate, unix seconds.
    pub at: i64,
    /// The reasonCode entry extension.
    pub reason: Option<u8>,
}

/// What an issuingDistributionPoint restricts a CRL to (RFC 5280 §5.2.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrlScope {
    /// The distribution point's fullName URIs.
    pub distribution_point_uris: Vec<String>,
    /// onlyContainsUserCerts.
    pub only_user_certs: bool,
    /// onlyContainsCACerts.
    pub only_ca_certs: bool,
    /// onlySomeReasons present (a partial CRL: not supported).
    pub only_some_reasons: bool,
    /// indirectCRL (not supported).
    pub indirect: bool,
    /// onlyContainsAttributeCerts.
    pub only_attribute_certs: bool,
}

/// A parsed CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    /// The whole CertificateList.
    pub der: Vec<u8>,
    /// The whole TBSCertList encoding.
    pub tbs: Vec<u8>,
    /// The issuer Name (whole DER).
    pub issuer: Vec<u8>,
    /// thisUpdate, unix seconds.
    pub this_update: i64,
    /// nextUpdate, unix seconds.
    pub next_update: Option<i64>,
    /// The revoked certificates.
    pub revoked: Vec<RevokedEntry>,
    /// signatureAlgorithm (whole DER).
    pub signature_algorithm: Vec<u8>,
    /// The signature BIT STRING's bits.
    pub signature: Vec<u8>,
    /// cRLNumber INTEGER contents.
    pub crl_number: Option<Vec<u8>>,
    /// authorityKeyIdentifier keyIdentifier.
    pub authority_key_id: Option<Vec<u8>>,
    /// A delta CRL (not usable alone).
    pub is_delta: bool,
    /// issuingDistributionPoint.
    pub scope: CrlScope,
    /// A critical CRL or entry extension this crate does not process (or an indirect CRL
    /// entry): the CRL must not be used.
    pub has_unknown_critical_extension: bool,
}

impl Crl {
    /// Parse a DER CertificateList.
    pub fn parse(der: &[u8]) -> Result<Crl, X509Error> {
        const M: X509Error = X509Error::Malformed("CRL");
        let mut outer = Reader::new(single(der, 0x30).ok_or(M)?);
        let (tag, tbs_body, tbs_whole) = outer.next().ok_or(M)?;
        if tag != 0x30 {
            return Err(M);
        }
        let signature_algorithm = next_whole(&mut outer, 0x30).ok_or(M)?;
        let signature = bit_string_octets(outer.expect(0x03).ok_or(M)?).ok_or(M)?;
        if !outer.is_empty() {
            return Err(M);
        }
        let mut tbs = Reader::new(tbs_body);
        if tbs.peek_tag() == Some(0x02) {
            let v = tbs.expect(0x02).ok_or(M)?;
            if v != [1] {
                return Err(X509Error::Malformed("CRL version"));
            }
        }
        if next_whole(&mut tbs, 0x30) != Some(signature_algorithm) {
            return Err(X509Error::Malformed("CRL: the TBS signature algorithm differs from the outer one"));
        }
        let issuer = next_whole(&mut tbs, 0x30).ok_or(X509Error::Malformed("CRL issuer"))?;
        let this_update = read_time(&mut tbs).ok_or(X509Error::Malformed("CRL thisUpdate"))?;
        let next_update = match tbs.peek_tag() {
            Some(0x17 | 0x18) => Some(read_time(&mut tbs).ok_or(X509Error::Malformed("CRL nextUpdate"))?),
            _ => None,
        };
        let mut crl = Crl {
            der: der.to_vec(),
            tbs: tbs_whole.to_vec(),
            issuer: issuer.to_vec(),
            this_update,
            next_update,
            revoked: Vec::new(),
            signature_algorithm: signature_algorithm.to_vec(),
            signature: signature.to_vec(),
            crl_number: None,
            authority_key_id: None,
            is_delta: false,
            scope: CrlScope::default(),
            has_unknown_critical_extension: false,
        };
        if tbs.peek_tag() == Some(0x30) {
            let mut list = Reader::new(tbs.expect(0x30).ok_or(M)?);
            while !list.is_empty() {
                const E: X509Error = X509Error::Malformed("CRL entry");
                let mut entry = Reader::new(list.expect(0x30).ok_or(E)?);
                let serial = entry.expect(0x02).filter(|s| !s.is_empty()).ok_or(E)?;
                let at = read_time(&mut entry).ok_or(E)?;
                let mut reason = None;
                if entry.peek_tag() == Some(0x30) {
                    for ext in parse_extensions(entry.expect(0x30).ok_or(E)?)? {
                        match ext.oid.as_str() {
                            EXT_CRL_REASON => reason = Some(enumerated(&ext.value).ok_or(X509Error::Malformed("CRL reason code"))?),
                            EXT_INVALIDITY_DATE => {}
                            // Indirect CRL entries: not supported, so the CRL is not used.
                            EXT_CERTIFICATE_ISSUER => crl.has_unknown_critical_extension = true,
                            _ if ext.critical => crl.has_unknown_critical_extension = true,
                            _ => {}
                        }
                    }
                }
                if !entry.is_empty() {
                    return Err(E);
                }
                crl.revoked.push(RevokedEntry { serial: serial.to_vec(), at, reason });
            }
        }
        if tbs.peek_tag() == Some(0xA0) {
            let exts = parse_extensions(single(tbs.expect(0xA0).ok_or(M)?, 0x30).ok_or(M)?)?;
            for ext in &exts {
                crl.read_extension(ext)?;
            }
        }
        if !tbs.is_empty() {
            return Err(M);
        }
        Ok(crl)
    }

    fn read_extension(&mut self, ext: &Extension) -> Result<(), X509Error> {
        match ext.oid.as_str() {
            EXT_CRL_NUMBER => self.crl_number = Some(single(&ext.value, 0x02).ok_or(X509Error::Malformed("cRLNumber"))?.to_vec()),
            EXT_AUTHORITY_KEY_ID => {
                let mut aki = Reader::new(single(&ext.value, 0x30).ok_or(X509Error::Malformed("CRL authorityKeyIdentifier"))?);
                while let Some((tag, body, _)) = aki.next() {
                    if tag == 0x80 {
                        self.authority_key_id = Some(body.to_vec());
                    }
                }
            }
            EXT_DELTA_CRL_INDICATOR => self.is_delta = true,
            EXT_ISSUING_DISTRIBUTION_POINT => self.scope = parse_idp(&ext.value).ok_or(X509Error::Malformed("issuingDistributionPoint"))?,
            EXT_FRESHEST_CRL | EXT_AUTHORITY_INFO_ACCESS => {}
            _ if ext.critical => self.has_unknown_critical_extension = true,
            _ => {}
        }
        Ok(())
    }

    /// Check that `issuer` issued this CRL: the names match, its keyUsage (if any) allows
    /// cRLSign, the key identifiers (if both present) agree, and its key verifies the signature.
    pub fn verify(&self, issuer: &Certificate) -> Result<(), X509Error> {
        if !names_match(&issuer.subject, &self.issuer) {
            return Err(X509Error::WrongIssuer(format!(
                "the CRL is issued by {}, not {}",
                x509::name_text(&self.issuer),
                issuer.subject_text()
            )));
        }
        if issuer.key_usage.is_some_and(|ku| ku & key_usage::CRL_SIGN == 0) {
            return Err(X509Error::WrongIssuer(format!("the key usage of {} does not allow signing CRLs", issuer.subject_text())));
        }
        if let (Some(aki), Some(ski)) = (&self.authority_key_id, &issuer.subject_key_id)
            && aki != ski
        {
            return Err(X509Error::WrongIssuer("the CRL's authority key identifier is not the issuer's key identifier".into()));
        }
        x509::verify_signature(&issuer.spki, &self.signature_algorithm, &self.tbs, &self.signature)
    }

    /// Whether this CRL is a complete CRL covering `cert` (same issuer, not a delta, not
    /// indirect or partitioned by reason, scope and distribution point compatible with the
    /// certificate); `Err` says why not.
    pub fn covers(&self, cert: &Certificate) -> Result<(), String> {
        if !names_match(&cert.issuer, &self.issuer) {
            return Err("the CRL is not issued by the certificate's issuer".into());
        }
        if self.is_delta {
            return Err("a delta CRL cannot be used alone".into());
        }
        if self.has_unknown_critical_extension {
            return Err("the CRL has an unsupported critical extension".into());
        }
        let s = &self.scope;
        if s.indirect || s.only_some_reasons || s.only_attribute_certs {
            return Err("indirect, reason-partitioned and attribute-certificate CRLs are not supported".into());
        }
        if s.only_user_certs && cert.is_ca {
            return Err("the CRL covers end-entity certificates only".into());
        }
        if s.only_ca_certs && !cert.is_ca {
            return Err("the CRL covers CA certificates only".into());
        }
        let cdp = cert.crl_urls();
        if !s.distribution_point_uris.is_empty() && !cdp.is_empty() && !cdp.iter().any(|u| s.distribution_point_uris.contains(u)) {
            return Err("the CRL's distribution point is not one of the certificate's".into());
        }
        Ok(())
    }

    /// The entry for a serial number (INTEGER contents).
    pub fn entry(&self, serial: &[u8]) -> Option<&RevokedEntry> {
        self.revoked.iter().find(|e| e.serial == serial)
    }
}

fn parse_idp(value: &[u8]) -> Option<CrlScope> {
    let mut r = Reader::new(single(value, 0x30)?);
    let mut scope = CrlScope::default();
    while let Some((tag, body, _)) = r.next() {
        match tag {
            0xA0 => {
                // DistributionPointName: fullName [0] GeneralNames | nameRelativeToCRLIssuer [1]
                let mut dpn = Reader::new(body);
                if let Some(full) = dpn.expect(0xA0) {
                    let mut names = Reader::new(full);
                    while let Some((t, uri, _)) = names.next() {
                        if t == 0x86
                            && let Ok(s) = std::str::from_utf8(uri)
                        {
                            scope.distribution_point_uris.push(s.to_string());
                        }
                    }
                }
            }
            0x81 => scope.only_user_certs = body == [0xFF],
            0x82 => scope.only_ca_certs = body == [0xFF],
            0x83 => scope.only_some_reasons = true,
            0x84 => scope.indirect = body == [0xFF],
            0x85 => scope.only_attribute_certs = body == [0xFF],
            _ => return None,
        }
    }
    r.is_empty().then_some(scope)
}

fn enumerated(value: &[u8]) -> Option<u8> {
    match single(value, 0x0A)? {
        [n] if *n < 0x80 => Some(*n),
        _ => None,
    }
}

/// OCSP ResponderID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponderId {
    /// byName: the responder's Name (whole DER).
    ByName(Vec<u8>),
    /// byKey: SHA-1 of the responder's public key bits.
    ByKey(Vec<u8>),
}

/// An OCSP certStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// good.
    Good,
    /// revoked.
    Revoked {
        /// revocationTime, unix seconds.
        at: i64,
        /// revocationReason.
        reason: Option<u8>,
    },
    /// unknown.
    Unknown,
}

/// One SingleResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleResponse {
    /// CertID hashAlgorithm (dotted OID).
    pub hash_algorithm: String,
    /// CertID issuerNameHash.
    pub issuer_name_hash: Vec<u8>,
    /// CertID issuerKeyHash.
    pub issuer_key_hash: Vec<u8>,
    /// CertID serialNumber (INTEGER contents).
    pub serial: Vec<u8>,
    /// certStatus.
    pub status: CertStatus,
    /// thisUpdate, unix seconds.
    pub this_update: i64,
    /// nextUpdate, unix seconds.
    pub next_update: Option<i64>,
}

/// A parsed (successful, basic) OCSP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspResponse {
    /// The BasicOCSPResponse (whole DER), as CAdES revocation values carry it.
    pub basic: Vec<u8>,
    /// The whole ResponseData encoding (what is signed).
    pub tbs: Vec<u8>,
    /// responderID.
    pub responder: ResponderId,
    /// producedAt, unix seconds.
    pub produced_at: i64,
    /// The SingleResponses.
    pub responses: Vec<SingleResponse>,
    /// signatureAlgorithm (whole DER).
    pub signature_algorithm: Vec<u8>,
    /// The signature BIT STRING's bits.
    pub signature: Vec<u8>,
    /// The certificates included (that parse).
    pub certs: Vec<Certificate>,
}

impl OcspResponse {
    /// Parse a DER OCSPResponse (RFC 6960 §4.2.1) or a bare BasicOCSPResponse (as in CAdES
    /// RevocationValues). A response whose status is not successful is an error.
    pub fn parse(der: &[u8]) -> Result<OcspResponse, X509Error> {
        const M: X509Error = X509Error::Malformed("OCSP response");
        let body = single(der, 0x30).ok_or(M)?;
        let basic = if Reader::new(body).peek_tag() == Some(0x0A) {
            let mut r = Reader::new(body);
            let status = match r.expect(0x0A).ok_or(M)? {
                [s] => *s,
                _ => return Err(M),
            };
            if status != 0 {
                return Err(X509Error::OcspNotSuccessful(status));
            }
            let mut bytes = Reader::new(single(r.expect(0xA0).ok_or(M)?, 0x30).ok_or(M)?);
            if !r.is_empty() {
                return Err(M);
            }
            if bytes.expect(0x06).and_then(decode_oid).as_deref() != Some(ID_PKIX_OCSP_BASIC) {
                return Err(X509Error::Malformed("OCSP response: not a basic response"));
            }
            let basic = bytes.expect(0x04).ok_or(M)?;
            if !bytes.is_empty() {
                return Err(M);
            }
            basic
        } else {
            der
        };
        Self::parse_basic(basic)
    }

    fn parse_basic(basic: &[u8]) -> Result<OcspResponse, X509Error> {
        const M: X509Error = X509Error::Malformed("BasicOCSPResponse");
        let mut r = Reader::new(single(basic, 0x30).ok_or(M)?);
        let (tag, tbs_body, tbs_whole) = r.next().ok_or(M)?;
        if tag != 0x30 {
            return Err(M);
        }
        let signature_algorithm = next_whole(&mut r, 0x30).ok_or(M)?;
        let signature = bit_string_octets(r.expect(0x03).ok_or(M)?).ok_or(M)?;
        let mut certs = Vec::new();
        if r.peek_tag() == Some(0xA0) {
            let mut list = Reader::new(single(r.expect(0xA0).ok_or(M)?, 0x30).ok_or(M)?);
            while let Some((_, _, whole)) = list.next() {
                if let Ok(c) = Certificate::parse(whole) {
                    certs.push(c);
                }
            }
        }
        if !r.is_empty() {
            return Err(M);
        }

        const D: X509Error = X509Error::Malformed("OCSP ResponseData");
        let mut tbs = Reader::new(tbs_body);
        if tbs.peek_tag() == Some(0xA0) {
            let v = single(tbs.expect(0xA0).ok_or(D)?, 0x02).ok_or(D)?;
            if v != [0] {
                return Err(X509Error::Malformed("OCSP response version"));
            }
        }
        let responder = match tbs.next().ok_or(D)? {
            (0xA1, body, _) => {
                single(body, 0x30).ok_or(D)?;
                ResponderId::ByName(body.to_vec())
            }
            (0xA2, body, _) => ResponderId::ByKey(single(body, 0x04).ok_or(D)?.to_vec()),
            _ => return Err(D),
        };
        let produced_at = read_time(&mut tbs).ok_or(X509Error::Malformed("OCSP producedAt"))?;
        let mut list = Reader::new(tbs.expect(0x30).ok_or(D)?);
        let mut responses = Vec::new();
        while !list.is_empty() {
            responses.push(parse_single(list.expect(0x30).ok_or(D)?).ok_or(X509Error::Malformed("OCSP SingleResponse"))?);
        }
        if tbs.peek_tag() == Some(0xA1) {
            tbs.next(); // responseExtensions (nonce, ...)
        }
        if !tbs.is_empty() {
            return Err(D);
        }
        Ok(OcspResponse {
            basic: basic.to_vec(),
            tbs: tbs_whole.to_vec(),
            responder,
            produced_at,
            responses,
            signature_algorithm: signature_algorithm.to_vec(),
            signature: signature.to_vec(),
            certs,
        })
    }

    /// Verify the response's signature: by `issuer` itself, or by a delegated responder
    /// certificate (among those included and `extra`) issued by `issuer`, with the
    /// id-kp-OCSPSigning extended key usage and valid at producedAt. Returns the signer.
    pub fn verify(&self, issuer: &Certificate, extra: &[Certificate]) -> Result<Certificate, X509Error> {
        let check = |key: &Certificate| x509::verify_signature(&key.spki, &self.signature_algorithm, &self.tbs, &self.signature);
        match check(issuer) {
            Ok(()) => return Ok(issuer.clone()),
            Err(e @ X509Error::UnsupportedAlgorithm(_)) => return Err(e),
            Err(_) => {}
        }
        for responder in self.certs.iter().chain(extra) {
            let authorised = responder.has_extended_key_usage(OID_KP_OCSP_SIGNING)
                && names_match(&responder.issuer, &issuer.subject)
                && responder.is_valid_at(self.produced_at)
                && responder.verify_issued_by(issuer).is_ok();
            if authorised && check(responder).is_ok() {
                return Ok(responder.clone());
            }
        }
        Err(X509Error::UnauthorizedResponder)
    }

    /// The SingleResponse about `cert` (issued by `issuer`), matched by CertID (SHA-1 or
    /// SHA-2 hashes of the issuer's name and key, and the serial number), after verifying the
    /// response's signature ([`OcspResponse::verify`]).
    pub fn status_for(&self, cert: &Certificate, issuer: &Certificate) -> Result<SingleResponse, X509Error> {
        self.status_for_with(cert, issuer, &[])
    }

    /// [`OcspResponse::status_for`] with responder certificates from elsewhere.
    pub fn status_for_with(&self, cert: &Certificate, issuer: &Certificate, extra: &[Certificate]) -> Result<SingleResponse, X509Error> {
        self.verify(issuer, extra)?;
        self.find(cert, issuer).cloned().ok_or(X509Error::NoMatchingResponse)
    }

    /// The SingleResponse whose CertID designates `cert` (no signature check).
    pub fn find(&self, cert: &Certificate, issuer: &Certificate) -> Option<&SingleResponse> {
        use aws_lc_rs::digest;
        self.responses.iter().find(|r| {
            if r.serial != cert.serial {
                return false;
            }
            let alg = match r.hash_algorithm.as_str() {
                OID_SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
                oid => match HashAlgorithm::from_oid(oid) {
                    Some(hash) => cloudsign_ades::aws_lc_algorithm(hash),
                    None => return false,
                },
            };
            let h = |data: &[u8]| digest::digest(alg, data);
            let name_ok = h(&cert.issuer).as_ref() == r.issuer_name_hash || h(&issuer.subject).as_ref() == r.issuer_name_hash;
            name_ok && h(issuer.public_key_bits()).as_ref() == r.issuer_key_hash
        })
    }
}

fn parse_single(body: &[u8]) -> Option<SingleResponse> {
    let mut r = Reader::new(body);
    let mut id = Reader::new(r.expect(0x30)?);
    let (hash_algorithm, _) = algorithm_parts(next_whole(&mut id, 0x30)?)?;
    let issuer_name_hash = id.expect(0x04)?.to_vec();
    let issuer_key_hash = id.expect(0x04)?.to_vec();
    let serial = id.expect(0x02).filter(|s| !s.is_empty())?.to_vec();
    if !id.is_empty() {
        return None;
    }
    let status = match r.next()? {
        (0x80, [], _) => CertStatus::Good,
        (0xA1, info, _) => {
            let mut info = Reader::new(info);
            let at = read_time(&mut info)?;
            let reason = match info.next() {
                None => None,
                Some((0xA0, body, _)) => Some(enumerated(body)?),
                Some(_) => return None,
            };
            if !info.is_empty() {
                return None;
            }
            CertStatus::Revoked { at, reason }
        }
        (0x82, [], _) => CertStatus::Unknown,
        _ => return None,
    };
    let this_update = read_time(&mut r)?;
    let mut next_update = None;
    if r.peek_tag() == Some(0xA0) {
        let mut n = Reader::new(r.expect(0xA0)?);
        next_update = Some(read_time(&mut n)?);
        if !n.is_empty() {
            return None;
        }
    }
    if r.peek_tag() == Some(0xA1) {
        r.next()?; // singleExtensions
    }
    r.is_empty().then_some(SingleResponse { hash_algorithm, issuer_name_hash, issuer_key_hash, serial, status, this_update, next_update })
}

/// How current revocation data must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Also accept data with thisUpdate <= at <= thisUpdate + max_age (seconds), whatever its
    /// nextUpdate (and data without nextUpdate).
    pub max_age: Option<i64>,
    /// Also accept data issued after `at` (thisUpdate > at): for validation at a past time,
    /// where data gathered later shows whether the certificate had been revoked by then.
    pub accept_later: bool,
}

/// The result of [`check`]: the status and, for each datum not used, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The status.
    pub status: RevocationStatus,
    /// Why each unused OCSP response or CRL was not used.
    pub notes: Vec<String>,
}

/// The status of `cert` (issued by `issuer`) at time `at` from the OCSP responses and CRLs
/// given (DER), with the default [`Options`]: only data valid at `at` (thisUpdate <= at <
/// nextUpdate) counts. See [`check`].
pub fn status(cert: &Certificate, issuer: &Certificate, ocsps: &[Vec<u8>], crls: &[Vec<u8>], at: i64, source: Source) -> RevocationStatus {
    check(cert, issuer, ocsps, crls, at, source, &Options::default()).status
}

/// The status of `cert` at `at`. Each OCSP response and CRL is used only when it parses, is
/// signed by `issuer` (or, for OCSP, a responder `issuer` authorised), covers `cert` and is
/// current at `at` per `options`. Then: a revocation at or before `at` wins (OCSP looked at
/// first, then CRLs: verified revocation evidence is never ignored); else a revocation after
/// `at` (the earliest), which means good at `at` but is returned to be reported; else the good
/// status from OCSP with the latest thisUpdate; else from a CRL; else [`RevocationStatus::Unknown`].
pub fn check(
    cert: &Certificate,
    issuer: &Certificate,
    ocsps: &[Vec<u8>],
    crls: &[Vec<u8>],
    at: i64,
    source: Source,
    options: &Options,
) -> Outcome {
    let mut notes = Vec::new();
    if !names_match(&cert.issuer, &issuer.subject) {
        notes.push(format!("{} is not the issuer of {}", issuer.subject_text(), cert.subject_text()));
        return Outcome { status: RevocationStatus::Unknown, notes };
    }
    let mut from_ocsp = Vec::new();
    for (i, der) in ocsps.iter().enumerate() {
        match ocsp_status(cert, issuer, der, at, source, options, (ocsps, crls)) {
            Ok(s) => from_ocsp.push(s),
            Err(why) => notes.push(format!("OCSP response #{}: {why}", i + 1)),
        }
    }
    let mut from_crl = Vec::new();
    for (i, der) in crls.iter().enumerate() {
        match crl_status(cert, issuer, der, at, source, options) {
            Ok(s) => from_crl.push(s),
            Err(why) => notes.push(format!("CRL #{}: {why}", i + 1)),
        }
    }
    let all = || from_ocsp.iter().chain(&from_crl);
    let revoked_at = |s: &RevocationStatus| match s {
        RevocationStatus::Revoked { at, .. } => Some(*at),
        _ => None,
    };
    let this_update = |s: &RevocationStatus| match s {
        RevocationStatus::Good { this_update, .. } | RevocationStatus::Revoked { this_update, .. } => *this_update,
        RevocationStatus::Unknown => i64::MIN,
    };
    let status = all()
        .find(|s| s.is_revoked_at(at))
        .or_else(|| all().filter(|s| revoked_at(s).is_some()).min_by_key(|s| revoked_at(s)))
        .or_else(|| from_ocsp.iter().max_by_key(|s| this_update(s)))
        .or_else(|| from_crl.iter().max_by_key(|s| this_update(s)))
        .cloned()
        .unwrap_or(RevocationStatus::Unknown);
    Outcome { status, notes }
}

fn fresh(this_update: i64, next_update: Option<i64>, at: i64, options: &Options) -> Result<(), String> {
    if this_update > at {
        return if options.accept_later {
            Ok(())
        } else {
            Err(format!("issued ({}) after the validation time ({})", rfc3339(this_update), rfc3339(at)))
        };
    }
    if next_update.is_some_and(|next| at < next) || options.max_age.is_some_and(|max| at.saturating_sub(this_update) <= max) {
        return Ok(());
    }
    let next = next_update.map(rfc3339).unwrap_or_else(|| "none".into());
    Err(format!("not current at the validation time {} (thisUpdate {}, nextUpdate {next}): stale", rfc3339(at), rfc3339(this_update)))
}

fn ocsp_status(
    cert: &Certificate,
    issuer: &Certificate,
    der: &[u8],
    at: i64,
    source: Source,
    options: &Options,
    others: (&[Vec<u8>], &[Vec<u8>]),
) -> Result<RevocationStatus, String> {
    let response = OcspResponse::parse(der).map_err(|e| e.to_string())?;
    let signer = response.verify(issuer, &[]).map_err(|e| e.to_string())?;
    let single = response.find(cert, issuer).cloned().ok_or_else(|| X509Error::NoMatchingResponse.to_string())?;
    if signer.der != issuer.der {
        delegated_responder_status(&signer, issuer, response.produced_at, options, others)?;
    }
    fresh(single.this_update, single.next_update, at, options)?;
    match single.status {
        CertStatus::Good => Ok(RevocationStatus::Good { source, this_update: single.this_update, produced_by: "OCSP" }),
        CertStatus::Revoked { at: revoked, reason } => {
            Ok(RevocationStatus::Revoked { at: revoked, reason, source, this_update: single.this_update, produced_by: "OCSP" })
        }
        CertStatus::Unknown => Err("the responder does not know the certificate".into()),
    }
}

/// RFC 6960 §4.2.2.2.1: a delegated responder's certificate (already found to be issued by
/// `issuer` with id-kp-OCSPSigning, [`OcspResponse::verify`]) is itself checked for revocation
/// at the response's producedAt, unless it carries id-pkix-ocsp-nocheck: from the CA's CRLs, or
/// an OCSP response the CA signed itself (not one of its delegated responders: no loop). A
/// responder revoked by then, or with no status, does not make the response usable.
fn delegated_responder_status(
    responder: &Certificate,
    issuer: &Certificate,
    produced_at: i64,
    options: &Options,
    (ocsps, crls): (&[Vec<u8>], &[Vec<u8>]),
) -> Result<(), String> {
    if responder.extension(ID_PKIX_OCSP_NOCHECK).is_some() {
        return Ok(());
    }
    let mut statuses: Vec<RevocationStatus> =
        crls.iter().filter_map(|der| crl_status(responder, issuer, der, produced_at, Source::Embedded, options).ok()).collect();
    for der in ocsps {
        let Ok(r) = OcspResponse::parse(der) else { continue };
        if !r.verify(issuer, &[]).is_ok_and(|s| s.der == issuer.der) {
            continue;
        }
        if let Some(single) = r.find(responder, issuer)
            && fresh(single.this_update, single.next_update, produced_at, options).is_ok()
        {
            match single.status {
                CertStatus::Good => {
                    statuses.push(RevocationStatus::Good { source: Source::Embedded, this_update: single.this_update, produced_by: "OCSP" })
                }
                CertStatus::Revoked { at, reason } => statuses.push(RevocationStatus::Revoked {
                    at,
                    reason,
                    source: Source::Embedded,
                    this_update: single.this_update,
                    produced_by: "OCSP",
                }),
                CertStatus::Unknown => {}
            }
        }
    }
    if let Some(RevocationStatus::Revoked { at, .. }) = statuses.iter().find(|s| s.is_revoked_at(produced_at)) {
        return Err(format!("the delegated responder {} was revoked at {at}, before the response", responder.subject_text()));
    }
    if statuses.is_empty() {
        return Err(format!(
            "no revocation status for the delegated responder {} (it has no id-pkix-ocsp-nocheck)",
            responder.subject_text()
        ));
    }
    Ok(())
}

fn crl_status(
    cert: &Certificate,
    issuer: &Certificate,
    der: &[u8],
    at: i64,
    source: Source,
    options: &Options,
) -> Result<RevocationStatus, String> {
    let crl = Crl::parse(der).map_err(|e| e.to_string())?;
    crl.covers(cert)?;
    crl.verify(issuer).map_err(|e| e.to_string())?;
    fresh(crl.this_update, crl.next_update, at, options)?;
    Ok(match crl.entry(&cert.serial) {
        // certificateHold counts as revoked while it is listed.
        Some(e) => RevocationStatus::Revoked { at: e.at, reason: e.reason, source, this_update: crl.this_update, produced_by: "CRL" },
        None => RevocationStatus::Good { source, this_update: crl.this_update, produced_by: "CRL" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::test_pki::{cert, now, read};

    #[test]
    fn crl_parses_and_verifies() {
        let crl = Crl::parse(&read("crl.der")).unwrap();
        let (inter, root) = (cert("inter"), cert("root"));
        crl.verify(&inter).unwrap();
        assert!(matches!(crl.verify(&root), Err(X509Error::WrongIssuer(_))));
        assert_eq!(crl.revoked.len(), 1);
        let revoked = cert("leaf-revoked");
        let entry = crl.entry(&revoked.serial).unwrap();
        assert_eq!(entry.reason, Some(1));
        assert_eq!(reason_text(1), "keyCompromise");
        assert_eq!(crl.next_update.map(|n| n - crl.this_update), Some(30 * 86_400));
        assert_eq!(crl.crl_number, Some(vec![1]));
        assert!(crl.covers(&revoked).is_ok());
        assert!(crl.covers(&inter).is_err()); // issued by root, not by inter

        // A flipped signature byte.
        let mut bad = crl.clone();
        let last = bad.signature.len() - 2;
        bad.signature[last] ^= 1;
        assert!(bad.verify(&inter).is_err());
    }

    #[test]
    fn crl_status() {
        let (inter, revoked, good) = (cert("inter"), cert("leaf-revoked"), cert("leaf-ec"));
        let crls = vec![read("crl.der")];
        let t = now();
        match status(&revoked, &inter, &[], &crls, t, Source::Fetched) {
            RevocationStatus::Revoked { reason: Some(1), source: Source::Fetched, produced_by: "CRL", at, .. } => assert!(at <= t),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            status(&good, &inter, &[], &crls, t, Source::Embedded),
            RevocationStatus::Good { source: Source::Embedded, produced_by: "CRL", .. }
        ));

        // Not current: after nextUpdate, or before thisUpdate.
        let crl = Crl::parse(&crls[0]).unwrap();
        let after = crl.next_update.unwrap() + 1;
        assert_eq!(status(&good, &inter, &[], &crls, after, Source::Fetched), RevocationStatus::Unknown);
        let opts = Options { max_age: Some(after - crl.this_update), ..Options::default() };
        assert!(matches!(check(&good, &inter, &[], &crls, after, Source::Fetched, &opts).status, RevocationStatus::Good { .. }));
        let before = crl.this_update - 3600;
        let outcome = check(&revoked, &inter, &[], &crls, before, Source::Fetched, &Options::default());
        assert_eq!(outcome.status, RevocationStatus::Unknown);
        assert_eq!(outcome.notes.len(), 1, "{:?}", outcome.notes);
        // Data from later, for a validation in the past: revoked after `before`, so good then.
        let later = check(&revoked, &inter, &[], &crls, before, Source::Embedded, &Options { accept_later: true, max_age: None }).status;
        assert!(matches!(later, RevocationStatus::Revoked { .. }));
        assert!(later.is_good_at(before) && !later.is_revoked_at(before) && later.is_revoked_at(t));

        // A CRL whose signature does not verify is not used.
        let mut tampered = crls[0].clone();
        let n = tampered.len();
        tampered[n - 3] ^= 1;
        let outcome = check(&revoked, &inter, &[], &[tampered], t, Source::Fetched, &Options::default());
        assert_eq!(outcome.status, RevocationStatus::Unknown);
        assert!(outcome.notes[0].contains("signature"), "{:?}", outcome.notes);
        // The wrong issuer.
        assert_eq!(status(&revoked, &cert("root"), &[], &crls, t, Source::Fetched), RevocationStatus::Unknown);
    }

    #[test]
    fn ocsp_responses() {
        let (inter, leaf, rsa, revoked) = (cert("inter"), cert("leaf-ec"), cert("leaf-rsa"), cert("leaf-revoked"));
        let t = now();

        // Delegated responder, byName, SHA-1 CertID.
        let good = OcspResponse::parse(&read("ocsp-good.der")).unwrap();
        assert!(matches!(good.responder, ResponderId::ByName(_)));
        assert_eq!(good.verify(&inter, &[]).unwrap().subject_text(), "CN=Test OCSP Responder,O=cloudsign");
        let single = good.status_for(&leaf, &inter).unwrap();
        assert_eq!(single.status, CertStatus::Good);
        assert_eq!(single.hash_algorithm, OID_SHA1);
        assert_eq!(good.status_for(&rsa, &inter), Err(X509Error::NoMatchingResponse));

        let bad = OcspResponse::parse(&read("ocsp-revoked.der")).unwrap();
        assert!(matches!(bad.status_for(&revoked, &inter).unwrap().status, CertStatus::Revoked { reason: Some(1), .. }));

        // Signed by the CA itself, byKey, SHA-256 CertID.
        let by_ca = OcspResponse::parse(&read("ocsp-by-ca.der")).unwrap();
        assert!(matches!(by_ca.responder, ResponderId::ByKey(_)));
        assert_eq!(by_ca.verify(&inter, &[]).unwrap(), inter);
        assert_eq!(by_ca.status_for(&rsa, &inter).unwrap().hash_algorithm, HashAlgorithm::Sha256.oid());

        // Signed by a key the CA never authorised.
        let forged = OcspResponse::parse(&read("ocsp-forged.der")).unwrap();
        assert_eq!(forged.status_for(&leaf, &inter), Err(X509Error::UnauthorizedResponder));

        // A bare BasicOCSPResponse parses the same.
        assert_eq!(OcspResponse::parse(&good.basic).unwrap(), good);
        // Not successful.
        assert_eq!(OcspResponse::parse(&[0x30, 0x03, 0x0A, 0x01, 0x06]), Err(X509Error::OcspNotSuccessful(6)));

        // Through `status`: OCSP first, CRL as well.
        let ocsps = vec![read("ocsp-good.der"), read("ocsp-revoked.der"), read("ocsp-by-ca.der"), read("ocsp-forged.der")];
        let crls = vec![read("crl.der")];
        assert!(matches!(status(&leaf, &inter, &ocsps, &crls, t, Source::Fetched), RevocationStatus::Good { produced_by: "OCSP", .. }));
        assert!(matches!(status(&rsa, &inter, &ocsps, &[], t, Source::Fetched), RevocationStatus::Good { produced_by: "OCSP", .. }));
        assert!(matches!(
            status(&revoked, &inter, &ocsps, &crls, t, Source::Embedded),
            RevocationStatus::Revoked { produced_by: "OCSP", reason: Some(1), source: Source::Embedded, .. }
        ));
        // The revoked leaf with only a (verified) response about another certificate and the CRL.
        assert!(matches!(
            status(&revoked, &inter, &ocsps[..1], &crls, t, Source::Fetched),
            RevocationStatus::Revoked { produced_by: "CRL", .. }
        ));
        // Only the forged response.
        let outcome = check(&leaf, &inter, &ocsps[3..], &[], t, Source::Fetched, &Options::default());
        assert_eq!(outcome.status, RevocationStatus::Unknown);
        assert!(outcome.notes[0].contains("not signed by the issuer"), "{:?}", outcome.notes);
        // Past nextUpdate.
        let next = single.next_update.unwrap();
        assert_eq!(status(&leaf, &inter, &ocsps, &[], next, Source::Fetched), RevocationStatus::Unknown);
    }

    #[test]
    fn hostile_revocation_data() {
        let (leaf, inter) = (cert("leaf-ec"), cert("inter"));
        for file in ["crl.der", "ocsp-good.der", "ocsp-by-ca.der"] {
            let good = read(file);
            for n in 0..good.len() {
                assert!(Crl::parse(&good[..n]).is_err());
                assert!(OcspResponse::parse(&good[..n]).is_err());
            }
            for i in 0..good.len() {
                let mut bad = good.clone();
                bad[i] ^= 0x80;
                let _ = Crl::parse(&bad);
                let _ = OcspResponse::parse(&bad);
                let _ = status(&leaf, &inter, std::slice::from_ref(&bad), std::slice::from_ref(&bad), now(), Source::Fetched);
            }
        }
        assert!(Crl::parse(&[0x30, 0x84, 0x7F, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(OcspResponse::parse(&[0x30, 0x89, 0x01]).is_err());
        assert!(OcspResponse::parse(&[]).is_err());
    }
}
