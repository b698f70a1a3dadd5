//! The ASN.1 foundation of cloudsign, below every other crate: the one DER reader and writer
//! ([`der`]), the object identifiers ([`oid`]), the algorithm enums and their OID mapping
//! ([`alg`]: [`HashAlgorithm`], [`KeyAlgorithm`], [`SignAlgorithm`] and the rule that resolves a
//! scheme from its OIDs), the certificate fields the signers read ([`cert`]), and base64
//! ([`b64`]), the text form DER travels in (PEM, RFC 7468; XML `base64Binary`; JOSE base64url,
//! RFC 7515 §2; the CSC API's JSON).
//!
//! It knows nothing of the CSC wire, keys or I/O, so the key backends, the CA, the AdES
//! builders and the validator share it without depending on the protocol crate. Where a
//! RustCrypto crate covers a structure it is used (`pkcs1` for RSASSA-PSS-params); why the
//! primitive codec stays hand-written is said in [`der`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alg;
pub mod b64;
pub mod cert;
pub mod der;
pub mod oid;

pub use alg::{HashAlgorithm, KeyAlgorithm, SignAlgorithm};
