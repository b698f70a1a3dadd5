//! Signature validation following the ETSI EN 319 102-1 model: for each signature an
//! indication (TOTAL-PASSED, TOTAL-FAILED, INDETERMINATE) with its sub-indication, the signer,
//! the times claimed and proven, the certificate chain with each certificate's revocation status,
//! and the AdES level reached. Works on signatures made by anyone; nothing here trusts the
//! signature's own claims beyond what it can check.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cades;
pub mod cms;
pub mod engine;
pub mod file;
pub mod jades;
pub mod pades;
pub mod path;
pub mod policy;
pub mod revocation;
pub mod system;
pub mod tsl;
pub mod x509;
pub mod xades;
