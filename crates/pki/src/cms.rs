//! CMS object identifiers (RFC 5652, RFC 5035) shared by the TSA's tokens and the AdES
//! signatures; defined once in the ASN.1 foundation (`cloudsign_asn1::oid`).

pub use cloudsign_asn1::oid::{
    ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_RI_OCSP_RESPONSE, ID_SIGNATURE_TIME_STAMP, ID_SIGNED_DATA, ID_SIGNING_CERTIFICATE_V2,
    ID_SIGNING_TIME,
};
