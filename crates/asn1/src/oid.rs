//! Object identifiers as named constants (dotted text), and the decoder from DER.
//!
//! Dotted text rather than `const-oid`'s `ObjectIdentifier`: the parsers compare what they
//! decode against these constants, and some OIDs they meet (the default TSA policy, a UUID OID
//! under `2.25`, X.667) have arcs past the `u32` that `ObjectIdentifier` holds.

/// SHA-1 (RFC 3279 §2.2.1): refused for signing, still the usual OCSP CertID hash (RFC 6960 §4.1.1).
pub const SHA1: &str = "1.3.14.3.2.26";
/// SHA-256 (RFC 5754 §2.2).
pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
/// SHA-384 (RFC 5754 §2.3).
pub const SHA384: &str = "2.16.840.1.101.3.4.2.2";
/// SHA-512 (RFC 5754 §2.4).
pub const SHA512: &str = "2.16.840.1.101.3.4.2.3";

/// rsaEncryption: PKCS#1 v1.5 with the digest named separately (`hashAlgorithmOID`).
pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// RSASSA-PSS; its parameters come in `signAlgoParams`.
pub const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
/// sha256WithRSAEncryption.
pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
/// sha384WithRSAEncryption.
pub const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
/// sha512WithRSAEncryption.
pub const SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
/// ecdsa-with-SHA256.
pub const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
/// ecdsa-with-SHA384.
pub const ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";
/// ecdsa-with-SHA512.
pub const ECDSA_WITH_SHA512: &str = "1.2.840.10045.4.3.4";
/// id-mgf1.
pub const MGF1: &str = "1.2.840.113549.1.1.8";
/// secp256r1.
pub const CURVE_P256: &str = "1.2.840.10045.3.1.7";
/// secp384r1.
pub const CURVE_P384: &str = "1.3.132.0.34";
/// secp521r1.
pub const CURVE_P521: &str = "1.3.132.0.35";

/// id-data (RFC 5652 §4).
pub const ID_DATA: &str = "1.2.840.113549.1.7.1";
/// id-signedData (RFC 5652 §5).
pub const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
/// id-contentType attribute (RFC 5652 §11.1).
pub const ID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
/// id-messageDigest attribute (RFC 5652 §11.2).
pub const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
/// id-signingTime attribute (RFC 5652 §11.3).
pub const ID_SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
/// id-aa-signingCertificateV2 (RFC 5035 §3).
pub const ID_SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";
/// id-ri-ocsp-response: an OCSP response as OtherRevocationInfoFormat (RFC 5940 §4.1).
pub const ID_RI_OCSP_RESPONSE: &str = "1.3.6.1.5.5.7.16.2";
/// id-aa-signatureTimeStampToken (RFC 3161 Appendix A).
pub const ID_SIGNATURE_TIME_STAMP: &str = "1.2.840.113549.1.9.16.2.14";
/// id-ct-TSTInfo, the content type of a time-stamp token (RFC 3161 §2.4.2).
pub const ID_CT_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";

/// id-kp-timeStamping extended key usage (RFC 3161 §2.3, RFC 5280 §4.2.1.12).
pub const ID_KP_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";
/// id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1).
pub const ID_PE_AUTHORITY_INFO_ACCESS: &str = "1.3.6.1.5.5.7.1.1";
/// id-ce-cRLDistributionPoints (RFC 5280 §4.2.1.13).
pub const ID_CE_CRL_DISTRIBUTION_POINTS: &str = "2.5.29.31";
/// id-ad-ocsp, the OCSP access method (RFC 5280 §4.2.2.1, RFC 6960 §4.4).
pub const ID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";
/// id-pkix-ocsp-basic, the BasicOCSPResponse type (RFC 6960 §4.2.1).
pub const ID_PKIX_OCSP_BASIC: &str = "1.3.6.1.5.5.7.48.1.1";
/// id-pkix-ocsp-nonce extension (RFC 6960 §4.4.1).
pub const ID_PKIX_OCSP_NONCE: &str = "1.3.6.1.5.5.7.48.1.2";

/// Dotted-decimal text of a DER OBJECT IDENTIFIER body (X.690 §8.19).
pub fn decode_oid(bytes: &[u8]) -> Option<String> {
    // u128: UUID-derived OIDs (2.25.<uuid>, X.667) have a 128-bit arc.
    let mut arcs: Vec<u128> = Vec::new();
    let mut acc: u128 = 0;
    for (i, b) in bytes.iter().enumerate() {
        if acc > (u128::MAX >> 7) {
            return None;
        }
        acc = (acc << 7) | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                // X.690 §8.19.4: the first subidentifier packs the first two arcs.
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        } else if i == bytes.len() - 1 {
            return None;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    Some(arcs.iter().map(u128::to_string).collect::<Vec<_>>().join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_decoding() {
        assert_eq!(decode_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08]).as_deref(), Some(MGF1));
        assert_eq!(decode_oid(&[0x86]), None);
    }
}
