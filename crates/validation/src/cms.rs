//! CMS SignedData (RFC 5652) as CAdES (ETSI EN 319 122-1), PAdES and RFC 3161 time-stamp
//! tokens carry it: parsed without trusting it, then checked piece by piece by [`crate::engine`].

use cloudsign_asn1::HashAlgorithm;
use cloudsign_asn1::der::Reader;
use cloudsign_asn1::oid::decode_oid;
use cloudsign_pki::cms::{ID_MESSAGE_DIGEST, ID_RI_OCSP_RESPONSE, ID_SIGNED_DATA, ID_SIGNING_CERTIFICATE_V2, ID_SIGNING_TIME};

/// A CMS structure that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed CMS: {0}")]
pub struct CmsError(pub &'static str);

fn bad<T>(what: &'static str) -> Result<T, CmsError> {
    Err(CmsError(what))
}

/// How a SignerInfo names its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerId {
    /// issuer Name (DER) and serial number (INTEGER content).
    IssuerSerial(Vec<u8>, Vec<u8>),
    /// subjectKeyIdentifier.
    KeyId(Vec<u8>),
}

/// One signer.
#[derive(Debug, Clone)]
pub struct SignerInfo {
    /// Its certificate's identifier.
    pub sid: SignerId,
    /// The digest algorithm of the content and signed attributes.
    pub digest_algorithm: Option<HashAlgorithm>,
    /// The signed attributes re-tagged as a SET (what the signature covers, RFC 5652 §5.4).
    pub signed_attrs_der: Option<Vec<u8>>,
    /// The signed attributes: (OID, values as whole encodings).
    pub signed_attrs: Vec<(String, Vec<Vec<u8>>)>,
    /// The signature AlgorithmIdentifier (DER).
    pub signature_algorithm: Vec<u8>,
    /// The signature value.
    pub signature: Vec<u8>,
    /// The unsigned attributes.
    pub unsigned_attrs: Vec<(String, Vec<Vec<u8>>)>,
    /// The unsigned attributes as encoded: (attrType's whole OID encoding, each AttributeValue's
    /// whole encoding), what an ats-hash-index-v3 hashes (EN 319 122-1 §5.5.2).
    pub unsigned_attrs_raw: Vec<RawAttribute>,
    /// version, sid, digestAlgorithm, signedAttrs, signatureAlgorithm and signature as encoded
    /// (the SignerInfo but its unsigned attributes: EN 319 122-1 §5.5.3 step 3).
    pub signed_fields: Vec<u8>,
}

impl SignerInfo {
    /// The first value of a signed attribute.
    pub fn signed(&self, oid: &str) -> Option<&[u8]> {
        self.signed_attrs.iter().find(|(o, _)| o == oid).and_then(|(_, v)| v.first()).map(Vec::as_slice)
    }

    /// All values of an unsigned attribute.
    pub fn unsigned(&self, oid: &str) -> Vec<&[u8]> {
        self.unsigned_attrs.iter().filter(|(o, _)| o == oid).flat_map(|(_, v)| v.iter().map(Vec::as_slice)).collect()
    }

    /// The message-digest attribute's value.
    pub fn message_digest(&self) -> Option<Vec<u8>> {
        Reader::new(self.signed(ID_MESSAGE_DIGEST)?).expect(0x04).map(<[u8]>::to_vec)
    }

    /// The claimed signing time (signing-time attribute), Unix seconds.
    pub fn signing_time(&self) -> Option<i64> {
        let (tag, body, _) = Reader::new(self.signed(ID_SIGNING_TIME)?).next()?;
        parse_time(tag, body)
    }

    /// The certificate hash of signing-certificate-v2 (RFC 5035) with its algorithm.
    pub fn signing_certificate_v2(&self) -> Option<(HashAlgorithm, Vec<u8>)> {
        let mut outer = Reader::new(Reader::new(self.signed(ID_SIGNING_CERTIFICATE_V2)?).expect(0x30)?);
        let mut ids = Reader::new(outer.expect(0x30)?);
        let mut id = Reader::new(ids.expect(0x30)?);
        let hash = if id.peek_tag() == Some(0x30) {
            let mut alg = Reader::new(id.expect(0x30)?);
            HashAlgorithm::from_oid(&decode_oid(alg.expect(0x06)?)?)?
        } else {
            HashAlgorithm::Sha256
        };
        Some((hash, id.expect(0x04)?.to_vec()))
    }
}

/// A parsed SignedData.
#[derive(Debug, Clone)]
pub struct SignedData {
    /// eContentType.
    pub content_type: String,
    /// The encapsulated content (attached signatures, time-stamp tokens' TSTInfo).
    pub content: Option<Vec<u8>>,
    /// The certificates field.
    pub certificates: Vec<Vec<u8>>,
    /// CRLs from the crls field.
    pub crls: Vec<Vec<u8>>,
    /// OCSP responses from the crls field (`id-ri-ocsp-response`, RFC 5940).
    pub ocsps: Vec<Vec<u8>>,
    /// The signers.
    pub signers: Vec<SignerInfo>,
    /// eContentType's whole encoding.
    pub content_type_der: Vec<u8>,
    /// Each CertificateChoices of `certificates` as encoded.
    pub certificate_choices: Vec<Vec<u8>>,
    /// Each RevocationInfoChoice of `crls` as encoded.
    pub revocation_choices: Vec<Vec<u8>>,
}

/// Parse a ContentInfo holding SignedData (definite lengths only).
pub fn parse(content_info: &[u8]) -> Result<SignedData, CmsError> {
    let mut outer = Reader::new(content_info);
    let Some(ci) = outer.expect(0x30) else { return bad("not a ContentInfo") };
    let mut ci = Reader::new(ci);
    if ci.expect(0x06).and_then(decode_oid).as_deref() != Some(ID_SIGNED_DATA) {
        return bad("not SignedData");
    }
    let Some(sd) = ci.expect(0xA0).and_then(|b| Reader::new(b).expect(0x30)) else { return bad("no SignedData") };
    let mut sd = Reader::new(sd);
    if sd.expect(0x02).is_none() || sd.expect(0x31).is_none() {
        return bad("SignedData version or digestAlgorithms");
    }
    let Some(encap) = sd.expect(0x30) else { return bad("no encapContentInfo") };
    let mut encap = Reader::new(encap);
    let Some((0x06, oid, content_type_der)) = encap.next() else { return bad("eContentType") };
    let Some(content_type) = decode_oid(oid) else { return bad("eContentType") };
    let content = match encap.expect(0xA0) {
        Some(b) => Some(Reader::new(b).expect(0x04).ok_or(CmsError("eContent is not an OCTET STRING"))?.to_vec()),
        None => None,
    };
    let mut out = SignedData {
        content_type,
        content,
        certificates: Vec::new(),
        crls: Vec::new(),
        ocsps: Vec::new(),
        signers: Vec::new(),
        content_type_der: content_type_der.to_vec(),
        certificate_choices: Vec::new(),
        revocation_choices: Vec::new(),
    };
    if sd.peek_tag() == Some(0xA0) {
        let mut certs = Reader::new(sd.expect(0xA0).unwrap_or_default());
        while let Some((tag, _, whole)) = certs.next() {
            out.certificate_choices.push(whole.to_vec());
            if tag == 0x30 {
                out.certificates.push(whole.to_vec());
            }
        }
    }
    if sd.peek_tag() == Some(0xA1) {
        let mut crls = Reader::new(sd.expect(0xA1).unwrap_or_default());
        while let Some((tag, body, whole)) = crls.next() {
            out.revocation_choices.push(whole.to_vec());
            match tag {
                0x30 => out.crls.push(whole.to_vec()),
                // other [1] IMPLICIT OtherRevocationInfoFormat { oid, info }
                0xA1 => {
                    let mut other = Reader::new(body);
                    if other.expect(0x06).and_then(decode_oid).as_deref() == Some(ID_RI_OCSP_RESPONSE)
                        && let Some((_, _, info)) = other.next()
                    {
                        out.ocsps.push(info.to_vec());
                    }
                }
                _ => {}
            }
        }
    }
    let Some(signers) = sd.expect(0x31) else { return bad("no signerInfos") };
    let mut signers = Reader::new(signers);
    while !signers.is_empty() {
        let Some(si) = signers.expect(0x30) else { return bad("SignerInfo") };
        out.signers.push(parse_signer(si)?);
    }
    Ok(out)
}

fn parse_signer(body: &[u8]) -> Result<SignerInfo, CmsError> {
    let mut si = Reader::new(body);
    if si.expect(0x02).is_none() {
        return bad("SignerInfo version");
    }
    let sid = match si.next() {
        Some((0x30, body, _)) => {
            let mut r = Reader::new(body);
            let (Some((0x30, _, issuer)), Some(serial)) = (r.next(), r.expect(0x02)) else { return bad("IssuerAndSerialNumber") };
            SignerId::IssuerSerial(issuer.to_vec(), serial.to_vec())
        }
        Some((0x80, body, _)) => SignerId::KeyId(body.to_vec()),
        _ => return bad("SignerIdentifier"),
    };
    let digest_algorithm =
        si.expect(0x30).and_then(|a| Reader::new(a).expect(0x06)).and_then(decode_oid).and_then(|o| HashAlgorithm::from_oid(&o));
    let (mut signed_attrs_der, mut signed_attrs) = (None, Vec::new());
    if si.peek_tag() == Some(0xA0) {
        let Some((_, body, whole)) = si.next() else { return bad("signedAttrs") };
        // RFC 5652 §5.4: the signature covers the attributes with the SET OF tag.
        let mut set = whole.to_vec();
        set[0] = 0x31;
        signed_attrs_der = Some(set);
        signed_attrs = attributes(body)?;
    }
    let Some((0x30, _, signature_algorithm)) = si.next() else { return bad("signatureAlgorithm") };
    let Some(signature) = si.expect(0x04) else { return bad("signature") };
    let signed_fields = body[..body.len() - si.rest().len()].to_vec();
    let (unsigned_attrs, unsigned_attrs_raw) = match si.expect(0xA1) {
        Some(body) => (attributes(body)?, raw_attributes(body)?),
        None => (Vec::new(), Vec::new()),
    };
    Ok(SignerInfo {
        sid,
        digest_algorithm,
        signed_attrs_der,
        signed_attrs,
        signature_algorithm: signature_algorithm.to_vec(),
        signature: signature.to_vec(),
        unsigned_attrs,
        unsigned_attrs_raw,
        signed_fields,
    })
}

/// An attribute as encoded: its type's whole OID encoding, each value's whole encoding.
pub type RawAttribute = (Vec<u8>, Vec<Vec<u8>>);

fn raw_attributes(body: &[u8]) -> Result<Vec<RawAttribute>, CmsError> {
    let mut r = Reader::new(body);
    let mut out = Vec::new();
    while !r.is_empty() {
        let Some(attr) = r.expect(0x30) else { return bad("Attribute") };
        let mut a = Reader::new(attr);
        let (Some((0x06, _, oid)), Some(values)) = (a.next(), a.expect(0x31)) else { return bad("attribute type") };
        let mut v = Reader::new(values);
        let mut list = Vec::new();
        while let Some((_, _, whole)) = v.next() {
            list.push(whole.to_vec());
        }
        out.push((oid.to_vec(), list));
    }
    Ok(out)
}

fn attributes(body: &[u8]) -> Result<Vec<(String, Vec<Vec<u8>>)>, CmsError> {
    let mut r = Reader::new(body);
    let mut out = Vec::new();
    while !r.is_empty() {
        let Some(attr) = r.expect(0x30) else { return bad("Attribute") };
        let mut a = Reader::new(attr);
        let Some(oid) = a.expect(0x06).and_then(decode_oid) else { return bad("attribute type") };
        let Some(values) = a.expect(0x31) else { return bad("attribute values") };
        let mut v = Reader::new(values);
        let mut list = Vec::new();
        while let Some((_, _, whole)) = v.next() {
            list.push(whole.to_vec());
        }
        out.push((oid, list));
    }
    Ok(out)
}

/// UTCTime (0x17) or GeneralizedTime (0x18) to Unix seconds (fractions dropped).
pub fn parse_time(tag: u8, body: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(body).ok()?;
    let digits = |s: &str| s.parse::<i64>().ok();
    let (year, rest) = match tag {
        0x17 => {
            let yy = digits(text.get(0..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, text.get(2..)?)
        }
        0x18 => (digits(text.get(0..4)?)?, text.get(4..)?),
        _ => return None,
    };
    let (month, day, hour, minute) =
        (digits(rest.get(0..2)?)?, digits(rest.get(2..4)?)?, digits(rest.get(4..6)?)?, digits(rest.get(6..8)?)?);
    let second = rest.get(8..10).and_then(digits).unwrap_or(0);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let t = time::Time::from_hms(u8::try_from(hour).ok()?, u8::try_from(minute).ok()?, u8::try_from(second).ok()?).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc().unix_timestamp())
}

/// An RFC 3161 TSTInfo: the imprint and the time.
#[derive(Debug, Clone)]
pub struct TstInfo {
    /// messageImprint hash algorithm.
    pub hash: HashAlgorithm,
    /// messageImprint hashedMessage.
    pub imprint: Vec<u8>,
    /// genTime, Unix seconds.
    pub gen_time: i64,
}

/// Parse the TSTInfo of a time-stamp token (RFC 3161 §2.4.2).
pub fn tst_info(token: &SignedData) -> Option<TstInfo> {
    if token.content_type != "1.2.840.113549.1.9.16.1.4" {
        return None;
    }
    let content = token.content.as_deref()?;
    let mut info = Reader::new(Reader::new(content).expect(0x30)?);
    info.expect(0x02)?; // version
    info.expect(0x06)?; // policy
    let mut mi = Reader::new(info.expect(0x30)?);
    let mut alg = Reader::new(mi.expect(0x30)?);
    let hash = HashAlgorithm::from_oid(&decode_oid(alg.expect(0x06)?)?)?;
    let imprint = mi.expect(0x04)?.to_vec();
    info.expect(0x02)?; // serialNumber
    let (tag, body, _) = info.next()?;
    Some(TstInfo { hash, imprint, gen_time: parse_time(tag, body)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(0x18, b"20260101120000.123Z"), Some(1_767_268_800));
        assert_eq!(parse_time(0x18, b"2026"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [&b""[..], b"\x30", b"\x30\x84\xff\xff\xff\xff", b"\x30\x03\x06\x01\x00", &[0x30; 64]] {
            assert!(parse(input).is_err());
        }
    }
}
