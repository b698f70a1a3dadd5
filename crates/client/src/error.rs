//! What can go wrong talking to a CSC service, typed so that a caller can tell a method the
//! service does not have (HTTP 404) from a wrong password (`authentication_error`) or a wrong
//! PIN (`invalid_pin` in v1, `invalid_authentication_data` in v2).

use std::fmt;

use reqwest::StatusCode;
use serde::Deserialize;

/// A failed CSC or OAuth call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not reach the service, or its answer did not arrive.
    #[error("cannot reach the service for {method}")]
    Transport {
        /// The method called (`credentials/info`, `oauth2/token`, ...).
        method: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with an error status (CSC v1/v2 §10.1, RFC 6749 §5.2).
    #[error("{0}")]
    Refused(Box<Refusal>),
    /// The service answered with success, but not what the method's response holds.
    #[error("the service sent a malformed {method} response: {detail}")]
    Malformed {
        /// The method called.
        method: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The caller's input cannot be sent (a base URL that is not a URL, ...).
    #[error("{0}")]
    Invalid(String),
}

/// An error answer: the HTTP status and the CSC error body `{error, error_description}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The method called.
    pub method: String,
    /// The HTTP status.
    pub status: StatusCode,
    /// The `error` member (`invalid_request`, `invalid_pin`, ...); `error` when the body had none.
    pub error: String,
    /// The `error_description` member; empty when the body had none.
    pub description: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Refusal { method, status, error, description } = self;
        if method == "auth/login" {
            // A login refusal says what was wrong without the code, as the CLI always has.
            let description = if description.is_empty() { "wrong user name or password" } else { description };
            return write!(f, "{method} refused ({status}): {description}");
        }
        write!(f, "{method} refused ({status}): {error}: {description}")
    }
}

impl ClientError {
    /// The refusal, when the service answered with an error.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            ClientError::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<StatusCode> {
        self.refusal().map(|r| r.status)
    }

    /// The CSC (or OAuth) `error` code of an error answer.
    pub fn code(&self) -> Option<&str> {
        self.refusal().map(|r| r.error.as_str())
    }

    /// The service does not have the method (HTTP 404; CSC v2 §10.1 `not_implemented` too).
    pub fn is_not_implemented(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND) || self.code() == Some("not_implemented")
    }
}

/// The error body as other services send it: either member may be missing.
#[derive(Deserialize)]
struct WireError {
    error: Option<String>,
    error_description: Option<String>,
}

/// Decode an error answer. A body that is not a CSC error body (an HTML page from a proxy, an
/// empty 404) still gives the status.
pub(crate) fn refusal(method: &str, status: StatusCode, body: &[u8]) -> ClientError {
    let wire: Option<WireError> = serde_json::from_slice(body).ok();
    let (error, description) = wire.map_or((None, None), |w| (w.error, w.error_description));
    ClientError::Refused(Box::new(Refusal {
        method: method.to_string(),
        status,
        error: error.unwrap_or_else(|| "error".into()),
        description: description.unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_decode() {
        let e =
            refusal("credentials/authorize", StatusCode::BAD_REQUEST, br#"{"error":"invalid_pin","error_description":"The PIN is wrong"}"#);
        assert_eq!(e.code(), Some("invalid_pin"));
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
        assert!(!e.is_not_implemented());
        assert_eq!(e.to_string(), "credentials/authorize refused (400 Bad Request): invalid_pin: The PIN is wrong");
    }

    #[test]
    fn a_missing_method_is_told_apart() {
        let e = refusal("credentials/getChallenge", StatusCode::NOT_FOUND, b"<html>Not Found</html>");
        assert!(e.is_not_implemented());
        assert_eq!(e.code(), Some("error"));
        assert_eq!(e.to_string(), "credentials/getChallenge refused (404 Not Found): error: ");
        let e = refusal("signatures/signDoc", StatusCode::BAD_REQUEST, br#"{"error":"not_implemented"}"#);
        assert!(e.is_not_implemented());
    }

    #[test]
    fn a_login_refusal_reads_as_before() {
        let e = refusal("auth/login", StatusCode::UNAUTHORIZED, br#"{"error":"authentication_error"}"#);
        assert_eq!(e.code(), Some("authentication_error"));
        assert_eq!(e.to_string(), "auth/login refused (401 Unauthorized): wrong user name or password");
        let e = refusal("auth/login", StatusCode::UNAUTHORIZED, br#"{"error":"authentication_error","error_description":"Locked"}"#);
        assert_eq!(e.to_string(), "auth/login refused (401 Unauthorized): Locked");
    }
}
