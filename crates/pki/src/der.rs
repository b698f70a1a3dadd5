//! A minimal DER writer and reader for the structures the CA, the TSA and (later) OCSP build by
//! hand: definite lengths, single-byte tags. Typed enough to keep call sites readable.

/// Tag + length + content.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// SEQUENCE of already-encoded elements.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// SET OF already-encoded elements, sorted as DER requires (X.690 §11.6).
pub fn set_of(parts: &[&[u8]]) -> Vec<u8> {
    let mut sorted: Vec<&[u8]> = parts.to_vec();
    sorted.sort();
    tlv(0x31, &sorted.concat())
}

/// INTEGER from an unsigned big-endian magnitude.
pub fn uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let skip = magnitude.iter().take_while(|b| **b == 0).count();
        if skip == magnitude.len() { &[0] } else { &magnitude[skip..] }
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(0x02, &content)
}

/// INTEGER from a small number.
pub fn small_uint(n: u64) -> Vec<u8> {
    uint(&n.to_be_bytes())
}

/// OCTET STRING.
pub fn octets(content: &[u8]) -> Vec<u8> {
    tlv(0x04, content)
}

/// OBJECT IDENTIFIER from dotted text. Panics only on a malformed constant (programmer error):
/// callers pass the OID constants of this crate.
pub fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u128> = dotted.split('.').map(|a| a.parse().unwrap_or(0)).collect();
    let mut content = Vec::new();
    let first = arcs.first().copied().unwrap_or(0) * 40 + arcs.get(1).copied().unwrap_or(0);
    for arc in std::iter::once(first).chain(arcs.iter().skip(2).copied()) {
        let mut stack = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            stack.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        stack.reverse();
        content.extend_from_slice(&stack);
    }
    tlv(0x06, &content)
}

/// AlgorithmIdentifier without parameters (SHA-2, ECDSA; RFC 5754 §2, RFC 5758 §3.2).
pub fn algorithm(dotted: &str) -> Vec<u8> {
    seq(&[&oid(dotted)])
}

/// `[n] EXPLICIT` / constructed context tag.
pub fn explicit(n: u8, content: &[u8]) -> Vec<u8> {
    tlv(0xA0 | n, content)
}

/// GeneralizedTime with milliseconds, UTC.
pub fn generalized_time_millis(unix_millis: i128) -> Vec<u8> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(unix_millis * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let text = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    );
    // X.690 §11.7: no trailing zeros in the fraction, no bare decimal point.
    let text = if text.contains('.') {
        let (head, frac) = text.trim_end_matches('Z').split_once('.').unwrap_or((&text, ""));
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() { format!("{head}Z") } else { format!("{head}.{frac}Z") }
    } else {
        text
    };
    tlv(0x18, text.as_bytes())
}

/// BIT STRING holding named bits (RFC 3161 PKIFailureInfo), minimal DER form.
pub fn named_bits(bits: &[u32]) -> Vec<u8> {
    let Some(&max) = bits.iter().max() else { return tlv(0x03, &[0]) };
    let len = (max / 8 + 1) as usize;
    let mut bytes = vec![0u8; len];
    for b in bits {
        bytes[(*b / 8) as usize] |= 0x80 >> (b % 8);
    }
    let unused = 7 - (max % 8) as u8;
    let mut content = vec![unused];
    content.extend_from_slice(&bytes);
    tlv(0x03, &content)
}

pub use cloudsign_csc::der::Reader;

/// From a DER certificate: the issuer Name (whole encoding) and the serial number (whole
/// INTEGER encoding), for CMS IssuerAndSerialNumber.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(oid("1.2.840.113549.1.1.8"), vec![0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08]);
        assert_eq!(uint(&[0x00, 0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        let uuid_oid = "2.25.270497441424498136419815473036385318735";
        assert_eq!(cloudsign_csc::oid::decode_oid(&oid(uuid_oid)[2..]).as_deref(), Some(uuid_oid));
        assert_eq!(uint(&[0, 0]), vec![0x02, 0x01, 0x00]);
        assert_eq!(named_bits(&[0]), vec![0x03, 0x02, 0x07, 0x80]);
        assert_eq!(named_bits(&[2]), vec![0x03, 0x02, 0x05, 0x20]);
        assert_eq!(named_bits(&[15]), vec![0x03, 0x03, 0x00, 0x00, 0x01]);
        assert_eq!(tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(generalized_time_millis(1_700_000_000_120), tlv(0x18, b"20231114221320.12Z"));
        assert_eq!(generalized_time_millis(1_700_000_000_000), tlv(0x18, b"20231114221320Z"));
    }
}
