//! Wire types of the Cloud Signature Consortium API: request and response structs with the
//! spec's exact member names, the error codes, the algorithm OIDs and the base64 rules.
//!
//! No I/O, no storage, no crypto: this crate only says what travels on the wire, so the HTTP
//! adapters for each API version stay thin and the domain never sees a JSON spelling.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod b64;
pub mod der;
pub mod error;
pub mod json;
pub mod oid;
pub mod v1;
pub mod v2;

pub use error::ErrorCode;
pub use oid::{HashAlgorithm, KeyAlgorithm, SignAlgorithm};
