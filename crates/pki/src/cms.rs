//! CMS object identifiers (RFC 5652, RFC 5035) shared by the TSA's tokens and the AdES
//! signatures: one place for each.

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
