//! One error type for the API: it knows its HTTP status and CSC error code, and renders the
//! `{ "error", "error_description" }` body (CSC v2 §10.1).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cloudsign_csc::ErrorCode;
use cloudsign_csc::error::ErrorBody;
use cloudsign_domain::Error;

/// A CSC error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    description: String,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

impl ApiError {
    /// Build one.
    pub fn new(status: StatusCode, code: ErrorCode, description: impl Into<String>) -> Self {
        Self { status, code, description: description.into(), retry_after: None }
    }

    /// 400 `invalid_request`.
    pub fn invalid(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, description)
    }
}

/// The error body of a response, kept beside it as an extension so that an adapter can
/// reword it after the handler has run (`v1::v1_names`) without parsing the JSON again.
#[derive(Clone, Debug)]
pub(crate) struct Rendered {
    pub(crate) code: &'static str,
    pub(crate) description: String,
}

impl Rendered {
    /// The JSON body for this error.
    pub(crate) fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody { error: self.code, error_description: self.description.clone() }).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let rendered = Rendered { code: self.code.as_str(), description: self.description.clone() };
        let mut response =
            (self.status, Json(ErrorBody { error: self.code.as_str(), error_description: self.description })).into_response();
        response.extensions_mut().insert(rendered);
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3.
            response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            // RFC 9110 §10.2.3.
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}

/// How the v2 adapter reports domain errors.
pub(crate) fn v2(e: Error) -> ApiError {
    map(e, false)
}

/// How the v1 adapter reports domain errors: as v2, but a wrong PIN or OTP has its own code
/// (v1 §11.6: `invalid_pin`, `invalid_otp`).
pub(crate) fn v1(e: Error) -> ApiError {
    map(e, true)
}

fn map(e: Error, v1: bool) -> ApiError {
    use StatusCode as S;
    let (pin, otp) = if v1 {
        (ErrorCode::InvalidPin, ErrorCode::InvalidOtp)
    } else {
        (ErrorCode::InvalidAuthenticationData, ErrorCode::InvalidAuthenticationData)
    };
    match e {
        Error::InvalidRequest(m) => ApiError::new(S::BAD_REQUEST, ErrorCode::InvalidRequest, m),
        Error::AuthenticationFailed => ApiError::new(S::BAD_REQUEST, ErrorCode::AuthenticationError, e.to_string()),
        Error::InvalidToken(m) => ApiError::new(S::UNAUTHORIZED, ErrorCode::InvalidToken, m),
        Error::ExpiredToken => ApiError::new(S::UNAUTHORIZED, ErrorCode::ExpiredToken, e.to_string()),
        Error::InvalidPin { attempts_left } => {
            ApiError::new(S::BAD_REQUEST, pin, format!("The PIN is invalid ({})", attempts(attempts_left)))
        }
        Error::InvalidOtp { attempts_left } => {
            ApiError::new(S::BAD_REQUEST, otp, format!("The OTP is invalid ({})", attempts(attempts_left)))
        }
        // 400, as `credentials/authorizeCheck` answers a denied approval (approval.rs).
        Error::AccessDenied(m) => ApiError::new(S::BAD_REQUEST, ErrorCode::AccessDenied, m),
        Error::Locked => ApiError::new(
            S::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "PIN locked: too many failed attempts; the credential must be unlocked by an administrator",
        ),
        // RFC 6585 §4. The CSC has no code of its own for it; `access_denied` is what a refused
        // login is nearest to, and the description says when to come back.
        Error::Throttled { retry_after } => {
            let mut e = ApiError::new(S::TOO_MANY_REQUESTS, ErrorCode::AccessDenied, e.to_string());
            e.retry_after = Some(retry_after);
            e
        }
        Error::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            ApiError::new(S::INTERNAL_SERVER_ERROR, ErrorCode::ServerError, "Internal error")
        }
        // A store or HSM fault (the store's errors are classified in `store/src/db.rs`): the
        // request may be retried; RFC 9110 §15.6.4 lets a 503 say when.
        Error::Unavailable(detail) => {
            tracing::warn!(%detail, "backend unavailable");
            let mut e = ApiError::new(S::SERVICE_UNAVAILABLE, ErrorCode::TemporarilyUnavailable, "The service is temporarily unavailable");
            e.retry_after = Some(1);
            e
        }
    }
}

fn attempts(n: i64) -> String {
    if n == 1 { "1 attempt left".into() } else { format!("{n} attempts left") }
}

/// Unknown paths.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::InvalidRequest, "Unknown method")
}

/// Wrong HTTP method on a known path (CSC methods are POST).
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::InvalidRequest, "CSC methods are called with POST")
}
