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
    /// The `error` member (`invalid_request`, `invalid_pin`, ...); empty when the body had none.
    pub error: String,
    /// The `error_description` member; empty when the body had none.
    pub description: String,
    /// The start of a body that is not a CSC error body (an HTML page from a proxy, aiohttp's
    /// `409: Conflict`), so that the user sees what the service said; empty otherwise.
    pub body: String,
    /// The URL called, when known (to recognize a base URI that already holds `/csc/v2`).
    pub url: String,
}

/// How much of a non-JSON error body is shown.
const BODY_EXCERPT: usize = 200;

impl Refusal {
    /// What the service said: `error: description`, or the start of its body.
    fn message(&self) -> String {
        match (self.error.as_str(), self.description.as_str()) {
            ("", "") if self.body.is_empty() => "(no message)".into(),
            ("", "") => self.body.clone(),
            (e, "") => e.into(),
            ("", d) => d.into(),
            (e, d) => format!("{e}: {d}"),
        }
    }

    /// A hint for the mistakes users make most, or `None`.
    pub fn hint(&self) -> Option<String> {
        let status = self.status.as_u16();
        let unknown = status == 404 || self.error == "not_implemented" || self.description.contains("Unknown method");
        // A `--service` that already ends in the version: the calls go to /csc/v2/csc/v2/...
        if unknown && (self.url.contains("/csc/v1/csc/") || self.url.contains("/csc/v2/csc/")) {
            return Some(
                "give the service's base URI without /csc/v1 or /csc/v2 (e.g. https://sign.example.com): the version is added".into(),
            );
        }
        match (self.method.as_str(), status) {
            ("auth/login", 404) => Some("the service does not offer auth/login; use --token-file or OAuth (--client-id)".into()),
            ("info", 404) => Some("no CSC service answers there: check the base URI, or try the other version (--api v1 or --api v2)".into()),
            // certomancer-csc-dummy answers 409 when it cannot tell which TSA to use.
            ("signatures/timestamp", 409 | 400) if self.error.is_empty() || self.error == "invalid_request" => Some(
                "the service may want clientData naming its time-stamping unit: --timestamp-client-data VALUE; or use any RFC 3161 TSA with --tsa URL".into(),
            ),
            ("signatures/timestamp", 404) => Some("the service has no signatures/timestamp: use an RFC 3161 TSA with --tsa URL".into()),
            ("oauth2/token", _) if self.error == "invalid_client" => {
                Some("the OAuth client is unknown or its secret is wrong: check --client-id and --client-secret-file".into())
            }
            (m, 401) if m != "auth/login" => Some(
                "the service did not accept the access token: it may have expired or be for another service; log in again or give a fresh --token-file".into(),
            ),
            (_, 404) => Some(format!("the service does not offer {}", self.method)),
            _ => None,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Refusal { method, status, description, .. } = self;
        if method == "auth/login" && status.as_u16() != 404 && (status.as_u16() == 401 || self.error == "authentication_error") {
            // A login refusal says what was wrong without the code, as the CLI always has.
            let description = if description.is_empty() { "wrong user name or password" } else { description };
            write!(f, "{method} refused (HTTP {status}): {description}")?;
        } else {
            write!(f, "{method} refused (HTTP {status}): {}", self.message())?;
        }
        if let Some(hint) = self.hint() {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
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

    /// The CSC (or OAuth) `error` code of an error answer (empty when the body had none).
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
/// empty 404) still gives the status, and its start is kept to be shown.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn refusal(method: &str, status: StatusCode, body: &[u8]) -> ClientError {
    refusal_at(method, "", status, body)
}

/// [`refusal`] of a call to `url`.
pub(crate) fn refusal_at(method: &str, url: &str, status: StatusCode, body: &[u8]) -> ClientError {
    let wire: Option<WireError> = serde_json::from_slice(body).ok();
    let (error, description) = wire.map_or((None, None), |w| (w.error, w.error_description));
    let excerpt = if error.is_none() && description.is_none() { excerpt(body) } else { String::new() };
    ClientError::Refused(Box::new(Refusal {
        method: method.to_string(),
        status,
        error: error.unwrap_or_default(),
        description: description.unwrap_or_default(),
        body: excerpt,
        url: url.to_string(),
    }))
}

/// The first [`BODY_EXCERPT`] characters of a body, on one line, control characters dropped.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String =
        text.split_whitespace().collect::<Vec<_>>().join(" ").chars().filter(|c| !c.is_control()).take(BODY_EXCERPT + 1).collect();
    if one_line.chars().count() > BODY_EXCERPT {
        format!("{}...", one_line.chars().take(BODY_EXCERPT).collect::<String>())
    } else {
        one_line
    }
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
        assert_eq!(e.to_string(), "credentials/authorize refused (HTTP 400 Bad Request): invalid_pin: The PIN is wrong");
    }

    #[test]
    fn a_non_json_body_is_shown_never_an_empty_message() {
        let e = refusal("credentials/getChallenge", StatusCode::NOT_FOUND, b"<html>\n  Not Found</html>");
        assert!(e.is_not_implemented());
        assert_eq!(e.code(), Some(""));
        assert_eq!(
            e.to_string(),
            "credentials/getChallenge refused (HTTP 404 Not Found): <html> Not Found</html>\nhint: the service does not offer credentials/getChallenge"
        );
        let e = refusal("signatures/signDoc", StatusCode::BAD_REQUEST, br#"{"error":"not_implemented"}"#);
        assert!(e.is_not_implemented());
        let e = refusal("credentials/list", StatusCode::INTERNAL_SERVER_ERROR, b"");
        assert_eq!(e.to_string(), "credentials/list refused (HTTP 500 Internal Server Error): (no message)");
        let long = "x".repeat(1000);
        let e = refusal("credentials/list", StatusCode::BAD_GATEWAY, long.as_bytes());
        assert_eq!(e.refusal().unwrap().body.len(), BODY_EXCERPT + 3);
    }

    #[test]
    fn common_mistakes_get_a_hint() {
        // certomancer-csc-dummy: no auth/login route.
        let e = refusal_at("auth/login", "http://localhost:1/csc/v1/auth/login", StatusCode::NOT_FOUND, b"404: Not Found");
        let text = e.to_string();
        assert!(text.starts_with("auth/login refused (HTTP 404 Not Found): 404: Not Found\nhint: "), "{text}");
        assert!(text.contains("does not offer auth/login; use --token-file or OAuth"), "{text}");
        // The version given twice.
        let e = refusal_at(
            "info",
            "https://sign.example/csc/v2/csc/v2/info",
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_request","error_description":"Unknown method"}"#,
        );
        assert!(e.to_string().contains("without /csc/v1 or /csc/v2"), "{e}");
        // An expired token.
        let e = refusal("credentials/info", StatusCode::UNAUTHORIZED, br#"{"error":"invalid_token","error_description":"expired"}"#);
        let text = e.to_string();
        assert!(text.contains("HTTP 401") && text.contains("invalid_token: expired") && text.contains("may have expired"), "{text}");
        // A time-stamp method that wants clientData.
        let e = refusal("signatures/timestamp", StatusCode::CONFLICT, b"409: Conflict");
        let text = e.to_string();
        assert!(text.contains("409: Conflict") && text.contains("--timestamp-client-data") && text.contains("--tsa"), "{text}");
    }

    #[test]
    fn a_login_refusal_reads_as_before() {
        let e = refusal("auth/login", StatusCode::UNAUTHORIZED, br#"{"error":"authentication_error"}"#);
        assert_eq!(e.code(), Some("authentication_error"));
        assert_eq!(e.to_string(), "auth/login refused (HTTP 401 Unauthorized): wrong user name or password");
        let e = refusal("auth/login", StatusCode::UNAUTHORIZED, br#"{"error":"authentication_error","error_description":"Locked"}"#);
        assert_eq!(e.to_string(), "auth/login refused (HTTP 401 Unauthorized): Locked");
    }
}
