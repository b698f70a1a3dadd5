//! Wire types of the Cloud Signature Consortium API: request and response structs with the
//! spec's exact member names, the error codes and JSON parsing. The algorithm enums, their OIDs
//! and the base64 codec are the ASN.1 foundation's (`cloudsign-asn1`), re-exported here because
//! the wire names them (`signAlgo`, `hashAlgorithmOID`, base64 members).
//!
//! No I/O, no storage, no crypto: this crate only says what travels on the wire, so the HTTP
//! adapters for each API version stay thin and the domain never sees a JSON spelling.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use cloudsign_asn1::b64;
pub mod error;
pub mod json;
pub mod oauth;
pub mod v1;
pub mod v2;

pub use cloudsign_asn1::{HashAlgorithm, KeyAlgorithm, SignAlgorithm, oid};
pub use error::ErrorCode;
