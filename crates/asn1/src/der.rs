//! The one DER reader and the one DER writer of the workspace (X.690 §8 and §10: definite
//! lengths, single-byte tags).
//!
//! Why this is hand-written and not the RustCrypto `der` crate's `SliceReader`/`Encode`:
//!
//! * The validation parsers (`cloudsign-validation`) walk foreign certificates, CRLs, OCSP
//!   responses and CMS tag by tag and need each element's *whole encoding* next to its content:
//!   a signature covers the bytes as received (RFC 5280 §4.1.1.3 tbsCertificate, §5.1.1.3
//!   tbsCertList; RFC 6960 §4.2.1 tbsResponseData; RFC 5652 §5.4 signed attributes), never a
//!   re-encoding. [`Reader::next`] hands out those bytes without copying.
//! * Object identifiers are dotted text with arcs up to 128 bits ([`crate::oid::decode_oid`]):
//!   the default TSA policy is a UUID OID (X.667, `2.25.<uuid>`) whose arc does not fit the
//!   `u32` arcs of `const-oid`'s `ObjectIdentifier`, so `der`'s OID type cannot carry it.
//! * The reader's leniency is exactly today's: it refuses indefinite lengths (X.690 §8.1.3.6),
//!   lengths over 4 octets and lengths past the buffer, and accepts a non-minimal long-form
//!   length (which X.690 §10.1 forbids in DER). `der`'s `Header` refuses that last case; moving
//!   the validation engine onto it is a behaviour change for foreign input and is left to a
//!   separate step with its own interop tests.
//! * The writer builds a few fixed structures (TSTInfo, CMS SignedData and its attributes,
//!   OCSP responses, ESS certificate references, SPKIs from PKCS#11 attributes, ECDSA-Sig-Value)
//!   from already-encoded parts; these helpers are infallible where `der`'s encoders return a
//!   `Result` for every length computation.
//!
//! Where a RustCrypto type covers a whole structure and its limits do not bite, it is used
//! instead: RSASSA-PSS-params are decoded with `pkcs1` (see [`crate::alg`]).

/// A DER reader over one buffer.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Read `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// What has not been read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// The next tag without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.bytes.first().copied()
    }

    /// The next element: (tag, content, whole encoding).
    // Not an Iterator: a malformed element ends the walk with None, and callers mix next and expect.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let start = self.bytes;
        let (&tag, rest) = self.bytes.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            // X.690 §8.1.3.5 long form; 0x80 (indefinite, §8.1.3.6) is BER only.
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        self.bytes = &rest[len..];
        let header = start.len() - rest.len();
        Some((tag, &rest[..len], &start[..header + len]))
    }

    /// The next element's content if it has `tag`.
    pub fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, content, _) if t == tag => Some(content),
            _ => None,
        }
    }
}

/// Tag + length + content (X.690 §8.1; the length in the minimal form §10.1 requires).
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

/// INTEGER from an unsigned big-endian magnitude (X.690 §8.3: minimal two's complement, so a
/// leading zero octet when the top bit is set).
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

/// OBJECT IDENTIFIER from dotted text (X.690 §8.19; arcs up to 128 bits, for UUID OIDs).
/// Callers pass the OID constants of [`crate::oid`] or a configured policy OID checked at start;
/// an arc that is not a number encodes as 0 rather than panicking.
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

/// BIT STRING holding named bits (RFC 3161 PKIFailureInfo), minimal DER form (X.690 §11.2.2).
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

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 5480 §2.2.3, X9.62) from the raw
/// `r ‖ s` form that PKCS#11 (CKM_ECDSA, §2.3.1), XMLDSig 1.1 (§6.4.3) and JWS (RFC 7518 §3.4)
/// use. `None` for an empty or odd-length value, or one longer than P-521's 2 × 66 bytes.
pub fn ecdsa_sig_value(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 2 * 66 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Some(seq(&[&uint(r), &uint(s)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_raw_to_sig_value() {
        // r has its top bit set (a zero byte is prepended), s has leading zeros (trimmed).
        let mut raw = vec![0x80; 32];
        raw.extend(std::iter::repeat_n(0, 31).chain([5]));
        let der = ecdsa_sig_value(&raw).expect("valid");
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x21, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x05]);
        assert_eq!(ecdsa_sig_value(&[]), None);
        assert_eq!(ecdsa_sig_value(&[1, 2, 3]), None);
        assert_eq!(ecdsa_sig_value(&[1; 134]), None);
    }

    #[test]
    fn encodings() {
        assert_eq!(oid("1.2.840.113549.1.1.8"), vec![0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08]);
        assert_eq!(uint(&[0x00, 0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        let uuid_oid = "2.25.270497441424498136419815473036385318735";
        assert_eq!(crate::oid::decode_oid(&oid(uuid_oid)[2..]).as_deref(), Some(uuid_oid));
        assert_eq!(uint(&[0, 0]), vec![0x02, 0x01, 0x00]);
        assert_eq!(uint(&[0x00, 0x00, 0x01]), vec![0x02, 0x01, 0x01]);
        assert_eq!(named_bits(&[0]), vec![0x03, 0x02, 0x07, 0x80]);
        assert_eq!(named_bits(&[2]), vec![0x03, 0x02, 0x05, 0x20]);
        assert_eq!(named_bits(&[15]), vec![0x03, 0x03, 0x00, 0x00, 0x01]);
        assert_eq!(tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(generalized_time_millis(1_700_000_000_120), tlv(0x18, b"20231114221320.12Z"));
        assert_eq!(generalized_time_millis(1_700_000_000_000), tlv(0x18, b"20231114221320Z"));
    }

    #[test]
    fn the_reader_returns_content_and_whole_encoding() {
        let inner = octets(&[0u8; 200]);
        let outer = seq(&[&inner, &small_uint(5)]);
        let mut r = Reader::new(&outer);
        let body = r.expect(0x30).unwrap();
        assert!(r.is_empty());
        let mut fields = Reader::new(body);
        assert_eq!(fields.peek_tag(), Some(0x04));
        let (tag, content, whole) = fields.next().unwrap();
        assert_eq!((tag, content.len(), whole), (0x04, 200, inner.as_slice()));
        assert_eq!(fields.expect(0x02), Some(&[5u8][..]));
        // Indefinite length (BER only), a length past the buffer, a truncated header.
        assert!(Reader::new(&[0x30, 0x80, 0x00, 0x00]).next().is_none());
        assert!(Reader::new(&[0x04, 0x05, 0x00]).next().is_none());
        assert!(Reader::new(&[0x04, 0x82, 0x01]).next().is_none());
        assert!(Reader::new(&[0x04]).next().is_none());
    }
}
