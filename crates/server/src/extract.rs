//! Extractors that turn every decoding failure into a CSC error instead of axum's plain-text
//! rejections: JSON bodies, the bearer token, and the caller's context.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use cloudsign_csc::ErrorCode;
use cloudsign_domain::{RequestContext, Session};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, v2};

/// A JSON request body parsed into a CSC request type.
pub(crate) struct CscJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CscJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(axum::http::header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
            if !ct.starts_with("application/json") && !ct.is_empty() {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ErrorCode::InvalidRequest,
                    "Content-Type must be application/json",
                ));
            }
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::InvalidRequest, "Request body too large")
            } else {
                ApiError::invalid("The request body could not be read")
            }
        })?;
        cloudsign_csc::json::parse(&body).map(CscJson).map_err(ApiError::invalid)
    }
}

/// The authenticated caller (`Authorization: Bearer ...`).
pub(crate) struct Bearer(pub Session);

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).and_then(|h| h.to_str().ok()).unwrap_or_default();
    header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::InvalidRequest, "Malformed authorization header: a Bearer token is required")
    })
}

/// The caller of `credentials/create` and `credentials/delete` (`Authorization: Bearer ...`):
/// a service-scope session, or a one-shot token of the 2.2 scopes `credential-creation` and
/// `credential-deletion`, which every other method refuses (`Service::authenticate`).
pub(crate) struct ManagementBearer(pub cloudsign_domain::ondemand::ManagementSession);

impl FromRequestParts<AppState> for ManagementBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.service.authenticate_management(bearer_token(parts)?).await.map(ManagementBearer).map_err(v2)
    }
}

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.service.authenticate(bearer_token(parts)?).await.map(Bearer).map_err(v2)
    }
}

/// The caller of signHash: the session as last read when it is remembered (the consuming write
/// re-checks the token), else freshly authenticated; unknown tokens are refused here as usual.
pub(crate) struct SigningBearer {
    pub token: zeroize::Zeroizing<String>,
    pub session: Session,
    pub remembered: bool,
}

impl FromRequestParts<AppState> for SigningBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let (session, remembered) = state.service.session_for_signing(token).await.map_err(v2)?;
        Ok(SigningBearer { token: zeroize::Zeroizing::new(token.to_string()), session, remembered })
    }
}

/// Who is calling: peer address and user agent, for the audit trail.
pub(crate) struct Caller(pub RequestContext);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string()).unwrap_or_else(|| "-".into());
        let agent: String = parts.headers.get(USER_AGENT).and_then(|h| h.to_str().ok()).unwrap_or("-").chars().take(120).collect();
        Ok(Caller(RequestContext { client: format!("{peer} {agent}"), client_data: None }))
    }
}

/// Attach `clientData` (truncated: it is free text chosen by the client).
pub(crate) fn with_client_data(mut ctx: RequestContext, client_data: Option<&str>) -> RequestContext {
    ctx.client_data = client_data.map(|s| s.chars().take(256).collect());
    ctx
}
