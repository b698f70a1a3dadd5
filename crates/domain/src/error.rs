//! Domain errors: what went wrong in the vocabulary of the standard, not of HTTP. Each API
//! adapter maps them to its own error codes and statuses. No variant ever carries a secret.

/// A refused or failed operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is missing, malformed or not acceptable (CSC `invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// Wrong user name or password.
    #[error("An error occurred during authentication process")]
    AuthenticationFailed,
    /// The bearer token is unknown or not an access token.
    #[error("{0}")]
    InvalidToken(String),
    /// The bearer token has expired or was revoked.
    #[error("The access token has expired or was revoked")]
    ExpiredToken,
    /// Wrong PIN.
    #[error("The PIN is invalid")]
    InvalidPin {
        /// Attempts left before the credential locks.
        attempts_left: i64,
    },
    /// Wrong, expired or reused OTP.
    #[error("The OTP is invalid")]
    InvalidOtp {
        /// Attempts left before the credential locks.
        attempts_left: i64,
    },
    /// Too many failed attempts: the credential is locked until an administrator unlocks it.
    #[error("PIN locked")]
    Locked,
    /// The signer refused (on their device): CSC `access_denied`, as an approval denial.
    #[error("{0}")]
    AccessDenied(String),
    /// Too many wrong passwords for this account lately: try again after `retry_after` seconds.
    #[error("Too many failed logins for this account; try again in {retry_after} s")]
    Throttled {
        /// Seconds until the next attempt is taken.
        retry_after: u64,
    },
    /// Unexpected failure; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
    /// A backend (database, HSM) cannot be reached now.
    #[error("The service is temporarily unavailable")]
    Unavailable(String),
}

impl Error {
    /// Convenience for `InvalidRequest`.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidRequest(msg.into())
    }
}

impl From<cloudsign_store::StoreError> for Error {
    fn from(e: cloudsign_store::StoreError) -> Self {
        crate::metrics::METRICS.store_error(&e);
        match e {
            cloudsign_store::StoreError::Conflict => Error::InvalidRequest("already exists".into()),
            cloudsign_store::StoreError::Unavailable(m) => Error::Unavailable(m),
            cloudsign_store::StoreError::Db(m) => Error::Internal(m),
        }
    }
}

impl From<cloudsign_keys::KeyError> for Error {
    fn from(e: cloudsign_keys::KeyError) -> Self {
        match e {
            cloudsign_keys::KeyError::Unavailable(m) => crate::metrics::METRICS.hsm_error_then(Error::Unavailable(m)),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<cloudsign_pki::PkiError> for Error {
    fn from(e: cloudsign_pki::PkiError) -> Self {
        Error::Internal(e.to_string())
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
