//! The OAuth 2.0 endpoints (CSC v2 §8.3, csc-api.md §3.15) and the signer's pages, over the
//! authorization server in `cloudsign_domain::oauth`, which makes every decision. This layer
//! does what is HTTP's: it parses query strings and forms into the wire types of
//! `cloudsign_csc::oauth`, reads client authentication from the `Authorization` header, writes
//! the redirect back to the client, and picks the HTTP status of each OAuth error.
//!
//! - `pages`: `oauth2/authorize` and the login and consent pages;
//! - `token`: the token, revocation and PAR endpoints and the RFC 8414 metadata.

pub(crate) mod pages;
mod token;

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::http::header::{LOCATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cloudsign_csc::oauth::{ErrorCode, ErrorResponse};
use cloudsign_domain::oauth::{ClientRedirect, OAuthError};
use serde::de::DeserializeOwned;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth2/authorize", get(pages::authorize))
        .route("/oauth2/flow", get(pages::flow_page))
        .route("/oauth2/flow/login", post(pages::flow_login))
        .route("/oauth2/flow/consent", post(pages::flow_consent))
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/revoke", post(token::revoke))
        .route("/oauth2/pushed_authorize", post(token::pushed_authorize))
        .route("/oauth2/assets/style.css", get(pages::style))
        .route("/oauth2/assets/logo.svg", get(pages::logo))
        .route("/.well-known/oauth-authorization-server", get(token::metadata))
}

// ---- parameters -----------------------------------------------------------------------------

/// Request parameters, each given at most once (RFC 6749 §3.1).
struct Params(HashMap<String, String>);

impl Params {
    /// From decoded query or form pairs; a repeated parameter is refused.
    fn new(pairs: Vec<(String, String)>) -> Result<Self, String> {
        let mut map = HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            if map.contains_key(&k) {
                return Err(format!("Parameter {k} is repeated"));
            }
            map.insert(k, v);
        }
        Ok(Self(map))
    }

    /// A non-empty parameter (RFC 6749 §3.1: a parameter without a value counts as omitted).
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
}

const NOT_FORM: &str = "The parameters are not valid form encoding";

/// Parse a query string or form body.
fn pairs(bytes: &[u8]) -> Result<Params, String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).map_err(|_| NOT_FORM.to_string())?;
    Params::new(pairs)
}

/// Parse a query string or form body into its parameters and the endpoint's wire request.
/// The wire types hold optional strings only, so once no parameter repeats this cannot fail.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<(Params, T), String> {
    let params = pairs(bytes)?;
    let request = serde_urlencoded::from_bytes(bytes).map_err(|_| NOT_FORM.to_string())?;
    Ok((params, request))
}

// ---- answers --------------------------------------------------------------------------------

/// Percent-encoding of a query component: everything but RFC 3986 unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// `redirect_uri` with the response parameters appended (RFC 6749 §4.1.2).
fn redirect_to(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = redirect_uri.to_string();
    let mut sep = if redirect_uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&url_encode(v));
        sep = '&';
    }
    out
}

/// The `Location` of the end of an authorization: `code` (RFC 6749 §4.1.2) or `error` and
/// `error_description` (§4.1.2.1), then `state`.
fn location(r: &ClientRedirect) -> String {
    let mut params = match &r.result {
        Ok(code) => vec![("code", code.as_str())],
        Err(e) => vec![("error", e.code.as_str()), ("error_description", e.description.as_str())],
    };
    if let Some(s) = &r.state {
        params.push(("state", s));
    }
    redirect_to(&r.redirect_uri, &params)
}

/// A 302 to `location`.
fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut r = StatusCode::FOUND.into_response();
            r.headers_mut().insert(LOCATION, v);
            r
        }
        Err(_) => (StatusCode::BAD_REQUEST, "Invalid redirect").into_response(),
    }
}

/// The HTTP status of an OAuth error (RFC 6749 §5.2: 400, and 401 for a failed client
/// authentication; the server's own failures as 500 and 503).
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The RFC 6749 §5.2 error body with its status; a 401 names the Basic scheme (RFC 6749
/// §5.2: the client authenticated, or may, with the Authorization header).
fn oauth_error(e: OAuthError) -> Response {
    let status = status_of(e.code);
    let mut r = (status, Json(ErrorResponse { error: e.code, error_description: Some(e.description) })).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"cloudsign\""));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_parameters_are_encoded() {
        assert_eq!(redirect_to("https://a/cb", &[("code", "x y"), ("state", "&=")]), "https://a/cb?code=x%20y&state=%26%3D");
        assert_eq!(redirect_to("https://a/cb?k=1", &[("code", "c")]), "https://a/cb?k=1&code=c");
        let e = OAuthError::new(ErrorCode::InvalidRequest, "bad thing");
        let l = location(&ClientRedirect { redirect_uri: "https://a/cb".into(), state: Some("s".into()), result: Err(e) });
        assert_eq!(l, "https://a/cb?error=invalid_request&error_description=bad%20thing&state=s");
        let l = location(&ClientRedirect { redirect_uri: "https://a/cb".into(), state: None, result: Ok("c+d".into()) });
        assert_eq!(l, "https://a/cb?code=c%2Bd");
    }

    #[test]
    fn parameters_are_given_once() {
        assert_eq!(pairs(b"a=1&a=2").err().as_deref(), Some("Parameter a is repeated"));
        let (p, t) = parse::<cloudsign_csc::oauth::TokenRequest>(b"grant_type=refresh_token&refreshToken=r&code=").unwrap();
        assert_eq!((p.get("code"), t.refresh_token_v1.as_deref()), (None, Some("r")));
    }

    #[test]
    fn statuses() {
        assert_eq!(status_of(ErrorCode::InvalidClient), StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(ErrorCode::InvalidGrant), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(ErrorCode::TemporarilyUnavailable), StatusCode::SERVICE_UNAVAILABLE);
    }
}
