//! What kind of AdES signature to make — format, conformance level, packaging — and how much
//! room a signature needs in a PDF. One definition for every signer: `cloudsign sign` (through
//! `cloudsign-client`) and the service's `signatures/signDoc` (`cloudsign-domain`) alike, so the
//! two cannot drift apart.

use cloudsign_asn1::SignAlgorithm;

use crate::{AdesError, Params, cades};

/// The AdES format of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// CAdES (ETSI EN 319 122): CMS, any file.
    Cades,
    /// JAdES (ETSI TS 119 182-1): JWS, any file as the (detached or attached) payload.
    Jades,
    /// XAdES (ETSI EN 319 132): XML signature.
    Xades,
    /// PAdES (ETSI EN 319 142): the signature inside the PDF.
    Pades,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [Format::Pades, Format::Cades, Format::Xades, Format::Jades];

    /// The lower-case identifier (`pades`, `cades`, `xades`, `jades`), as `cloudsign sign
    /// --format` takes it.
    pub fn id(self) -> &'static str {
        match self {
            Format::Cades => "cades",
            Format::Jades => "jades",
            Format::Xades => "xades",
            Format::Pades => "pades",
        }
    }

    /// The name ETSI gives it (`CAdES`, `JAdES`, `XAdES`, `PAdES`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Cades => "CAdES",
            Format::Jades => "JAdES",
            Format::Xades => "XAdES",
            Format::Pades => "PAdES",
        }
    }
}

/// AdES conformance level (the baseline levels of EN 319 122-1/132-1/142-1, TS 119 182-1).
/// Ordered: each level includes the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Basic signature.
    BB,
    /// With a signature time-stamp.
    BT,
    /// B-T with the validation material (certificates up to the root, CRLs, OCSP responses).
    BLT,
    /// B-LT with an archive time-stamp over it all (CAdES archive-time-stamp-v3, XAdES
    /// ArchiveTimeStamp, JAdES arcTst, PAdES a document time-stamp).
    BLTA,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 4] = [Level::BB, Level::BT, Level::BLT, Level::BLTA];

    /// B-LT and above carry validation material.
    pub fn long_term(self) -> bool {
        matches!(self, Level::BLT | Level::BLTA)
    }

    /// B-T and above carry a signature time-stamp.
    pub fn timestamped(self) -> bool {
        self != Level::BB
    }

    /// The name the standards give it (`B-B`, `B-T`, `B-LT`, `B-LTA`).
    pub fn name(self) -> &'static str {
        match self {
            Level::BB => "B-B",
            Level::BT => "B-T",
            Level::BLT => "B-LT",
            Level::BLTA => "B-LTA",
        }
    }
}

/// Where the signature and the signed data are (CSC v2 §11.11 `signed_envelope_property`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Packaging {
    /// The signature in its own file, the data untouched.
    Detached,
    /// CAdES, JAdES: the data inside the signature.
    Attached,
    /// XAdES: the signature inside the XML; PAdES: inside the PDF (a new revision).
    Enveloped,
    /// XAdES: the document inside the signature.
    Enveloping,
    /// PAdES: a certification signature (DocMDP), the document's first — CSC's
    /// `Certification` envelope property.
    Certification,
}

impl Packaging {
    /// Every packaging.
    pub const ALL: [Packaging; 5] =
        [Packaging::Detached, Packaging::Attached, Packaging::Enveloped, Packaging::Enveloping, Packaging::Certification];

    /// The lower-case identifier (`detached`, `attached`, `enveloped`, `enveloping`,
    /// `certification`), as `cloudsign sign --packaging` takes it.
    pub fn id(self) -> &'static str {
        match self {
            Packaging::Detached => "detached",
            Packaging::Attached => "attached",
            Packaging::Enveloped => "enveloped",
            Packaging::Enveloping => "enveloping",
            Packaging::Certification => "certification",
        }
    }
}

/// The largest DER signature value the key of `certificate` can produce, for `scheme`: it sizes
/// the `/Contents` a PDF reserves before the value exists (EN 319 142-1 §5.3: the byte range
/// is signed around it, so the room cannot grow afterwards).
///
/// `key_bits` is the key length a CSC service reports (`key.len`, 0 when unknown); the larger of
/// it and what the certificate says is used, so a wrong or missing `key.len` cannot make the
/// value overflow. Both bounds are upper bounds:
/// - RSA: the value is as long as the modulus; the certificate's `RSAPublicKey` DER (modulus,
///   exponent and their headers) is a little longer, so it bounds it for any key size.
/// - ECDSA: `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3), each
///   INTEGER at most the coordinate size plus a leading 0x00, with a 2-byte header; the
///   SEQUENCE header takes 3 bytes once its content passes 127 (P-521). The coordinate size
///   comes from the point in the certificate.
/// - A certificate that cannot be read and no `key_bits`: 512 bytes (RSA 4096, and more than
///   any ECDSA curve needs).
pub fn max_signature_len(scheme: SignAlgorithm, certificate: &[u8], key_bits: u32) -> usize {
    let reported = (key_bits as usize).div_ceil(8);
    let public_key = cloudsign_asn1::cert::subject_and_key(certificate).map(|(_, k)| k);
    match scheme {
        SignAlgorithm::Ecdsa(_) => {
            // SEC 1 §2.3.3: 04 ‖ X ‖ Y uncompressed, 02/03 ‖ X compressed.
            let from_cert = public_key.map_or(0, |point| match point.first() {
                Some(0x04) => (point.len() - 1).div_ceil(2),
                Some(0x02 | 0x03) => point.len() - 1,
                _ => point.len(),
            });
            let coordinate = match reported.max(from_cert) {
                0 => 66, // P-521, the largest curve
                n => n,
            };
            2 * (coordinate + 1 + 2) + 3
        }
        SignAlgorithm::RsaPkcs1(_) | SignAlgorithm::RsaPss(_) => match reported.max(public_key.map_or(0, |k| k.len())) {
            0 => 512,
            n => n,
        },
    }
}

/// Room for a time-stamp token whose probe (a token from the same TSA) measured `probe_len`
/// bytes: tokens differ in size from one to the next (serial number, genTime fraction, DER
/// lengths, a TSA that adds or drops a certificate), so a margin goes on top.
pub fn timestamp_allowance(probe_len: usize) -> usize {
    probe_len + 512
}

/// The bytes a PAdES signature's `/Contents` must reserve: the CMS built with a value of
/// [`max_signature_len`], plus `timestamp_allowance` (0 at B-B; [`timestamp_allowance`] of a
/// probe token otherwise) for the signature time-stamp token it will carry unsigned, plus a
/// little slack. The validation data of B-LT goes into a DSS revision, not the CMS, so it
/// takes no room here.
pub fn pades_reserve(params: &Params<'_>, key_bits: u32, timestamp_allowance: usize) -> Result<usize, AdesError> {
    let probe = cades::prepare_pades(&vec![0; params.scheme.hash().len()], params)?;
    let value = vec![0xff; max_signature_len(params.scheme, params.certificate, key_bits)];
    Ok(probe.finish(&value, None, None, None).len() + timestamp_allowance + 32)
}

/// The bytes a PAdES document time-stamp (B-LTA, EN 319 142-1 §5.4.3) must reserve for a
/// token from a TSA whose tokens need `timestamp_allowance`.
pub fn document_timestamp_reserve(timestamp_allowance: usize) -> usize {
    timestamp_allowance + 32
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsign_asn1::HashAlgorithm;

    #[test]
    fn ecdsa_bounds_cover_each_curve() {
        // Known maxima of DER ECDSA-Sig-Value: P-256 72, P-384 104, P-521 139 bytes.
        for (bits, max) in [(256, 72), (384, 104), (521, 139)] {
            let bound = max_signature_len(SignAlgorithm::Ecdsa(HashAlgorithm::Sha256), b"not a certificate", bits);
            assert!(bound >= max && bound <= max + 8, "P-{bits}: {bound}");
        }
        assert!(max_signature_len(SignAlgorithm::Ecdsa(HashAlgorithm::Sha512), b"", 0) >= 139);
    }

    #[test]
    fn rsa_bounds_cover_the_modulus() {
        for bits in [2048, 3072, 4096] {
            assert!(max_signature_len(SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256), b"", bits) >= bits as usize / 8);
        }
        assert_eq!(max_signature_len(SignAlgorithm::RsaPss(HashAlgorithm::Sha256), b"", 0), 512);
    }

    #[test]
    fn levels_are_ordered() {
        assert!(Level::BB < Level::BT && Level::BT < Level::BLT && Level::BLT < Level::BLTA);
        assert!(Level::BLTA.long_term() && !Level::BT.long_term() && !Level::BB.timestamped());
        assert_eq!(format!("{} {}", Format::Pades.name(), Level::BLTA.name()), "PAdES B-LTA");
        assert_eq!(Format::ALL.map(Format::id), ["pades", "cades", "xades", "jades"]);
        assert_eq!(Packaging::ALL.map(Packaging::id).len(), 5);
    }
}
