//! The service core: users, credentials, credential authorization (PIN, TOTP, online OTP),
//! SAD issue and consumption, the signing policy and the audit trail.
//!
//! It knows nothing of HTTP or JSON spellings: the CSC v2 adapter (and later v1) translate
//! wire requests into the calls below and [`Error`] into CSC error bodies.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
pub mod approval;
pub mod asynchronous;
pub mod audit;
mod auth;
mod credentials;
pub mod device;
mod error;
pub mod metrics;
pub mod oauth;
pub mod ondemand;
pub mod otp;
pub mod secrets;
mod service;
mod session;
mod signdoc;
mod signing;
mod sole;
mod timestamp;

pub use admin::{AuthMode, KeyStorage, NewCredential, NewCredentialResult, OtpKind, UserSummary};
pub use auth::Tokens;
pub use cloudsign_ades::digest as digest_of;
pub use cloudsign_keys::pkcs11::Pkcs11Config;
pub use cloudsign_pki::{generalized_time, pem_certificate};
pub use credentials::{AuthFactor, AuthorizeInput, CertStatus, CredentialView, FactorKind, Factors, HashesInput, Sad};
pub use error::{Error, Result};
pub use otp::{OtpSender, OutboxSender};
pub use service::{Config, RequestContext, Service};
pub use session::{CredentialScope, Session};
pub use signdoc::{DocItem, Format, Level, Packaging, SignDocInput};
pub use signing::SignHashInput;

pub use cloudsign_asn1::{HashAlgorithm, KeyAlgorithm, SignAlgorithm};
pub use cloudsign_store::{AuditEvent, Store, StoreOptions};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
