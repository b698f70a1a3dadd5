//! Reading what a relying party needs from any certificate (RFC 5280): names, where its
//! revocation status is published (authority information access, CRL distribution points),
//! and the OCSP request about it (RFC 6960 §4.1). Used to gather long-term validation data for
//! certificates from any CA, not only ours.

use cloudsign_asn1::oid::{ID_AD_OCSP, ID_CE_CRL_DISTRIBUTION_POINTS, ID_PE_AUTHORITY_INFO_ACCESS, ID_PKIX_OCSP_BASIC, decode_oid};

use cloudsign_asn1::cert::extensions;
use cloudsign_asn1::der::{self, Reader};

/// The subject and issuer Names (whole DER encodings).
pub fn subject_and_issuer(cert: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (issuer, _) = cloudsign_asn1::cert::issuer_and_serial(cert)?;
    let (subject, _) = cloudsign_asn1::cert::subject_and_key(cert)?;
    Some((subject, issuer))
}

/// Whether the certificate is self-issued (a root).
pub fn is_self_issued(cert: &[u8]) -> bool {
    subject_and_issuer(cert).is_some_and(|(s, i)| s == i)
}

/// The certificate among `candidates` whose subject is `cert`'s issuer.
pub fn find_issuer<'a>(cert: &[u8], candidates: &'a [Vec<u8>]) -> Option<&'a [u8]> {
    let (_, issuer) = subject_and_issuer(cert)?;
    candidates.iter().find(|c| subject_and_issuer(c).is_some_and(|(s, _)| s == issuer)).map(Vec::as_slice)
}

/// URIs (GeneralName uniformResourceIdentifier, `[6] IA5String`) in a GeneralNames body.
fn uris(general_names: &[u8]) -> Vec<String> {
    let mut r = Reader::new(general_names);
    let mut out = Vec::new();
    while let Some((tag, body, _)) = r.next() {
        if tag == 0x86
            && let Ok(s) = std::str::from_utf8(body)
        {
            out.push(s.to_string());
        }
    }
    out
}

/// The OCSP responder URLs (authority information access, RFC 5280 §4.2.2.1).
pub fn ocsp_urls(cert: &[u8]) -> Vec<String> {
    let Some(exts) = extensions(cert) else { return Vec::new() };
    let mut out = Vec::new();
    for (oid, value) in exts {
        if oid != ID_PE_AUTHORITY_INFO_ACCESS {
            continue;
        }
        let Some(seq) = Reader::new(value).expect(0x30) else { continue };
        let mut list = Reader::new(seq);
        while let Some(desc) = list.expect(0x30) {
            let mut d = Reader::new(desc);
            let method = d.expect(0x06).and_then(decode_oid);
            let (_, _, location) = match d.next() {
                Some(x) => x,
                None => continue,
            };
            if method.as_deref() == Some(ID_AD_OCSP) {
                out.extend(uris(location));
            }
        }
    }
    out
}

/// The CRL distribution point URLs (RFC 5280 §4.2.1.13, fullName only).
pub fn crl_urls(cert: &[u8]) -> Vec<String> {
    let Some(exts) = extensions(cert) else { return Vec::new() };
    let mut out = Vec::new();
    for (oid, value) in exts {
        if oid != ID_CE_CRL_DISTRIBUTION_POINTS {
            continue;
        }
        let Some(seq) = Reader::new(value).expect(0x30) else { continue };
        let mut points = Reader::new(seq);
        while let Some(point) = points.expect(0x30) {
            // DistributionPoint { distributionPoint [0] { fullName [0] GeneralNames } }
            if let Some(name) = Reader::new(point).expect(0xA0)
                && let Some(full) = Reader::new(name).expect(0xA0)
            {
                out.extend(uris(full));
            }
        }
    }
    out
}

/// The hash of an OCSP CertID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertIdHash {
    /// SHA-256.
    Sha256,
    /// SHA-1: what RFC 5019 ("lightweight") responders require.
    Sha1,
}

/// A DER OCSPRequest about `cert` (issued by `issuer`), no nonce, so that a responder may
/// answer from a cache.
pub fn ocsp_request(cert: &[u8], issuer: &[u8], hash: CertIdHash) -> Option<Vec<u8>> {
    use aws_lc_rs::digest;
    let (issuer_name, issuer_key) = cloudsign_asn1::cert::subject_and_key(issuer)?;
    let (_, serial) = cloudsign_asn1::cert::issuer_and_serial(cert)?;
    let (alg, oid) = match hash {
        CertIdHash::Sha256 => (&digest::SHA256, cloudsign_asn1::HashAlgorithm::Sha256.oid()),
        CertIdHash::Sha1 => (&digest::SHA1_FOR_LEGACY_USE_ONLY, "1.3.14.3.2.26"),
    };
    let h = |d: &[u8]| digest::digest(alg, d).as_ref().to_vec();
    let cert_id = der::seq(&[&der::algorithm(oid), &der::octets(&h(&issuer_name)), &der::octets(&h(&issuer_key)), &serial]);
    let request = der::seq(&[&cert_id]);
    Some(der::seq(&[&der::seq(&[&der::seq(&[&request])])]))
}

/// The certificates in a CMS SignedData (e.g. an RFC 3161 time-stamp token): the TSA's.
pub fn cms_certificates(content_info: &[u8]) -> Vec<Vec<u8>> {
    let f = || -> Option<Vec<Vec<u8>>> {
        let mut ci = Reader::new(Reader::new(content_info).expect(0x30)?);
        ci.expect(0x06)?;
        let mut sd = Reader::new(Reader::new(ci.expect(0xA0)?).expect(0x30)?);
        sd.expect(0x02)?; // version
        sd.expect(0x31)?; // digestAlgorithms
        sd.expect(0x30)?; // encapContentInfo
        let mut out = Vec::new();
        if sd.peek_tag() == Some(0xA0) {
            let mut certs = Reader::new(sd.expect(0xA0)?);
            while let Some((tag, _, whole)) = certs.next() {
                if tag == 0x30 {
                    out.push(whole.to_vec());
                }
            }
        }
        Some(out)
    };
    f().unwrap_or_default()
}

/// What an OCSP response says about a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspStatus {
    /// `good`.
    Good,
    /// `revoked`.
    Revoked,
    /// `unknown`.
    Unknown,
}

/// The status an OCSP response (RFC 6960 §4.2.1) gives for `cert` (matched by serial number
/// among its SingleResponses); `None` when the response is not a successful basic response
/// about it.
pub fn ocsp_status(response: &[u8], cert: &[u8]) -> Option<OcspStatus> {
    let (_, serial) = cloudsign_asn1::cert::issuer_and_serial(cert)?;
    let serial = Reader::new(&serial).expect(0x02)?;
    let mut outer = Reader::new(Reader::new(response).expect(0x30)?);
    if outer.expect(0x0a)? != [0] {
        return None;
    }
    let mut bytes = Reader::new(Reader::new(outer.expect(0xA0)?).expect(0x30)?);
    if decode_oid(bytes.expect(0x06)?).as_deref() != Some(ID_PKIX_OCSP_BASIC) {
        return None;
    }
    let basic = bytes.expect(0x04)?;
    let mut basic = Reader::new(Reader::new(basic).expect(0x30)?);
    let mut tbs = Reader::new(basic.expect(0x30)?);
    if tbs.peek_tag() == Some(0xA0) {
        tbs.next()?; // version
    }
    tbs.next()?; // responderID
    tbs.expect(0x18)?; // producedAt
    let mut responses = Reader::new(tbs.expect(0x30)?);
    while !responses.is_empty() {
        let mut single = Reader::new(responses.expect(0x30)?);
        let mut cert_id = Reader::new(single.expect(0x30)?);
        cert_id.expect(0x30)?;
        cert_id.expect(0x04)?;
        cert_id.expect(0x04)?;
        if cert_id.expect(0x02)? != serial {
            continue;
        }
        return match single.next()?.0 {
            0x80 => Some(OcspStatus::Good),
            0xA1 => Some(OcspStatus::Revoked),
            0x82 => Some(OcspStatus::Unknown),
            _ => None,
        };
    }
    None
}
