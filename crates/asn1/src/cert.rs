//! The few certificate fields the signing paths need, read from DER without a full parse
//! (RFC 5280 §4.1): they only locate elements and hand back their exact encodings, so any
//! certificate the CA or a trust list produced yields the bytes that were signed.

use crate::der::Reader;

/// A certificate with the metadata a service keeps beside it (CSC `cert` object: serial
/// number, subject and issuer, validity), as the CA issues it and as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DER encoding.
    pub der: Vec<u8>,
    /// Serial number, upper-case hex (CSC `cert.serialNumber`).
    pub serial_hex: String,
    /// RFC 4514 subject.
    pub subject_dn: String,
    /// RFC 4514 issuer.
    pub issuer_dn: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

/// From a DER certificate: the issuer Name (whole encoding) and the serial number (whole
/// INTEGER encoding), for CMS IssuerAndSerialNumber (RFC 5652 §10.2.4).
pub fn issuer_and_serial(cert: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut outer = Reader::new(cert);
    let mut tbs = Reader::new(Reader::new(outer.expect(0x30)?).expect(0x30)?);
    if tbs.peek_tag() == Some(0xA0) {
        tbs.next()?;
    }
    let (t, _, serial) = tbs.next()?;
    if t != 0x02 {
        return None;
    }
    tbs.expect(0x30)?; // signature algorithm
    let (t, _, issuer) = tbs.next()?;
    (t == 0x30).then(|| (issuer.to_vec(), serial.to_vec()))
}

/// From a DER certificate: the subject Name (whole encoding) and the subject public key
/// (the BIT STRING's bits, without the unused-bits octet), as OCSP CertID hashes them
/// (RFC 6960 §4.1.1).
pub fn subject_and_key(cert: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut outer = Reader::new(cert);
    let mut tbs = Reader::new(Reader::new(outer.expect(0x30)?).expect(0x30)?);
    if tbs.peek_tag() == Some(0xA0) {
        tbs.next()?;
    }
    tbs.expect(0x02)?; // serial
    tbs.expect(0x30)?; // signature algorithm
    tbs.expect(0x30)?; // issuer
    tbs.expect(0x30)?; // validity
    let (t, _, subject) = tbs.next()?;
    if t != 0x30 {
        return None;
    }
    let mut spki = Reader::new(tbs.expect(0x30)?);
    spki.expect(0x30)?; // algorithm
    let bits = spki.expect(0x03)?;
    Some((subject.to_vec(), bits.get(1..)?.to_vec()))
}

/// From a DER certificate: its extensions as (OID, extnValue contents), in order (RFC 5280
/// §4.1, `extensions [3] EXPLICIT`); `None` if the certificate does not parse.
pub fn extensions(cert: &[u8]) -> Option<Vec<(String, &[u8])>> {
    let mut outer = Reader::new(cert);
    let mut tbs = Reader::new(Reader::new(outer.expect(0x30)?).expect(0x30)?);
    let mut out = Vec::new();
    while let Some((tag, body, _)) = tbs.next() {
        if tag != 0xA3 {
            continue;
        }
        let mut list = Reader::new(Reader::new(body).expect(0x30)?);
        while !list.is_empty() {
            let mut ext = Reader::new(list.expect(0x30)?);
            let oid = crate::oid::decode_oid(ext.expect(0x06)?)?;
            if ext.peek_tag() == Some(0x01) {
                ext.next()?; // critical
            }
            out.push((oid, ext.expect(0x04)?));
        }
    }
    Some(out)
}
