//! The OAuth 2.0 endpoints (CSC v2 §8.3, csc-api.md §3.15) and the signer's pages: decode
//! forms and cookies, call the domain, render HTML or RFC 6749 JSON. Every rule lives in
//! `cloudsign_domain::oauth`.
//!
//! The pages work without JavaScript and load nothing from elsewhere; they are sent with a
//! strict Content-Security-Policy, `frame-ancestors 'none'` against clickjacking, and
//! `Referrer-Policy: no-referrer` so that no page address leaks to the application.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use cloudsign_domain::Factors;
use cloudsign_domain::oauth::{AuthorizeError, ClientAuth, FlowError, FlowView, OAuthError, Params};
use serde_json::json;
use zeroize::Zeroizing;

use crate::AppState;
use crate::extract::Caller;

/// The flow cookie. With TLS it takes the `__Host-` prefix (RFC 6265bis §4.1.3.2): Secure,
/// host-only, path `/`.
const COOKIE_PLAIN: &str = "cloudsign_flow";
const COOKIE_SECURE: &str = "__Host-cloudsign_flow";

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth2/authorize", get(authorize))
        .route("/oauth2/flow", get(flow_page))
        .route("/oauth2/flow/login", post(flow_login))
        .route("/oauth2/flow/consent", post(flow_consent))
        .route("/oauth2/token", post(token))
        .route("/oauth2/revoke", post(revoke))
        .route("/oauth2/pushed_authorize", post(pushed_authorize))
        .route("/oauth2/assets/style.css", get(style))
        .route("/.well-known/oauth-authorization-server", get(metadata))
}

// ---- pages ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    service_name: &'a str,
    client_name: &'a str,
    credential: bool,
    error: Option<&'a str>,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    service_name: &'a str,
    client_name: &'a str,
    user_name: &'a str,
    credential: Option<&'a cloudsign_domain::oauth::CredentialConsent>,
    error: Option<&'a str>,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    service_name: &'a str,
    title: &'a str,
    message: &'a str,
}

fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response();
        }
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

fn message(state: &AppState, status: StatusCode, title: &str, text: &str) -> Response {
    let page = MessagePage { service_name: &state.service.config().service_name, title, message: text };
    html(status, page.render())
}

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

fn see_other(location: &'static str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(LOCATION, HeaderValue::from_static(location));
    r
}

fn cookie_name(state: &AppState) -> &'static str {
    if state.secure_cookies { COOKIE_SECURE } else { COOKIE_PLAIN }
}

fn flow_cookie(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(state);
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name && !v.is_empty()).then(|| v.to_string())
    })
}

fn pairs(bytes: &[u8]) -> Result<Params, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|_| "The parameters are not valid form encoding".to_string())?;
    Params::new(pairs)
}

/// `GET oauth2/authorize`: validate, start the flow in a cookie, and show the login page.
async fn authorize(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let params = match pairs(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(m) => return message(&state, StatusCode::BAD_REQUEST, "Invalid request", &m),
    };
    match state.service.begin_authorization(&params).await {
        Ok(flow) => {
            let secure = if state.secure_cookies { "; Secure" } else { "" };
            let max_age = state.service.config().oauth_flow_ttl;
            let cookie = format!("{}={flow}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}", cookie_name(&state));
            let mut r = see_other("/oauth2/flow");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            r
        }
        // RFC 6749 §4.1.2.1: never redirect to an unverified URI.
        Err(AuthorizeError::NoRedirect(m)) => message(&state, StatusCode::BAD_REQUEST, "Invalid request", &m),
        Err(AuthorizeError::Redirect(location)) => redirect(&location),
    }
}

async fn render_flow(state: &AppState, flow: &str, error: Option<&str>) -> Response {
    let name = &state.service.config().service_name;
    let csrf = state.service.flow_csrf(flow);
    match state.service.flow_view(flow).await {
        Ok(FlowView::Login { client_name, credential }) => {
            html(StatusCode::OK, LoginPage { service_name: name, client_name: &client_name, credential, error, csrf: &csrf }.render())
        }
        Ok(FlowView::Consent(v)) => html(
            StatusCode::OK,
            ConsentPage {
                service_name: name,
                client_name: &v.client_name,
                user_name: &v.user_name,
                credential: v.credential.as_ref(),
                error,
                csrf: &csrf,
            }
            .render(),
        ),
        Err(e) => flow_error(state, e).await,
    }
}

async fn flow_error(state: &AppState, e: FlowError) -> Response {
    match e {
        FlowError::NoFlow => message(
            state,
            StatusCode::BAD_REQUEST,
            "No authorization in progress",
            "This authorization has expired or is finished (or cookies are blocked).",
        ),
        FlowError::Forbidden => {
            message(state, StatusCode::FORBIDDEN, "Request refused", "The form is not valid for this session (CSRF check).")
        }
        FlowError::Redirect(location) => redirect(&location),
        FlowError::Retry(m) => message(state, StatusCode::BAD_REQUEST, "Try again", &m),
        FlowError::Failed(e) => {
            tracing::error!(detail = %e, "authorization page failed");
            let (status, text) = match e {
                cloudsign_domain::Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "The service is temporarily unavailable."),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side."),
            };
            message(state, status, "Error", text)
        }
    }
}

/// `GET oauth2/flow`: the current step (login or consent).
async fn flow_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match flow_cookie(&state, &headers) {
        Some(flow) => render_flow(&state, &flow, None).await,
        None => flow_error(&state, FlowError::NoFlow).await,
    }
}

/// `POST oauth2/flow/login`.
async fn flow_login(State(state): State<AppState>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> Response {
    let Some(flow) = flow_cookie(&state, &headers) else { return flow_error(&state, FlowError::NoFlow).await };
    let Ok(p) = pairs(&body) else { return flow_error(&state, FlowError::Forbidden).await };
    let user = p.get("username").unwrap_or_default().to_string();
    let password = Zeroizing::new(p.get("password").unwrap_or_default().to_string());
    match state.service.flow_login(&ctx, &flow, p.get("csrf"), &user, password).await {
        Ok(()) => see_other("/oauth2/flow"),
        Err(FlowError::Retry(m)) => render_flow(&state, &flow, Some(&m)).await,
        Err(e) => flow_error(&state, e).await,
    }
}

/// `POST oauth2/flow/consent`.
async fn flow_consent(State(state): State<AppState>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> Response {
    let Some(flow) = flow_cookie(&state, &headers) else { return flow_error(&state, FlowError::NoFlow).await };
    let Ok(p) = pairs(&body) else { return flow_error(&state, FlowError::Forbidden).await };
    let approve = match p.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => return render_flow(&state, &flow, Some("Choose Approve or Deny")).await,
    };
    let factors =
        Factors { pin: p.get("pin").map(|v| Zeroizing::new(v.to_string())), otp: p.get("otp").map(|v| Zeroizing::new(v.to_string())) };
    match state.service.flow_decide(&ctx, &flow, p.get("csrf"), approve, factors).await {
        Ok(location) => redirect(&location),
        Err(FlowError::Retry(m)) => render_flow(&state, &flow, Some(&m)).await,
        Err(e) => flow_error(&state, e).await,
    }
}

async fn style() -> Response {
    let mut r = include_str!("../assets/style.css").into_response();
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r
}

// ---- JSON endpoints -------------------------------------------------------------------------

fn oauth_error(e: OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = (status, Json(json!({"error": e.code, "error_description": e.description}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"cloudsign\""));
    }
    r
}

fn bad(description: &str) -> Response {
    oauth_error(OAuthError { status: 400, code: "invalid_request", description: description.into() })
}

/// RFC 6749 §2.3.1: HTTP Basic (id and secret form-encoded, then base64) or the body, not both.
fn client_auth(headers: &HeaderMap, p: &Params) -> Result<ClientAuth, OAuthError> {
    let invalid_client = |d: &str| OAuthError { status: 401, code: "invalid_client", description: d.into() };
    if p.get("client_assertion").is_some() || p.get("client_assertion_type").is_some() {
        return Err(invalid_client("Client assertions are not supported: use client_secret_basic or client_secret_post"));
    }
    let header = headers.get(AUTHORIZATION).and_then(|h| h.to_str().ok());
    match header {
        Some(h) => {
            let encoded = h.strip_prefix("Basic ").ok_or_else(|| invalid_client("Malformed Authorization header"))?;
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| invalid_client("Malformed Authorization header"))?,
            );
            let text = std::str::from_utf8(&decoded).map_err(|_| invalid_client("Malformed Authorization header"))?;
            let (id, secret) = text.split_once(':').ok_or_else(|| invalid_client("Malformed Authorization header"))?;
            let decode = |s: &str| -> Result<String, OAuthError> {
                let pairs: Vec<(String, String)> =
                    serde_urlencoded::from_str(&format!("v={s}")).map_err(|_| invalid_client("Malformed Authorization header"))?;
                Ok(pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default())
            };
            if p.get("client_secret").is_some() {
                return Err(OAuthError {
                    status: 400,
                    code: "invalid_request",
                    description: "Use one client authentication method".into(),
                });
            }
            let id = decode(id)?;
            if p.get("client_id").is_some_and(|b| b != id) {
                return Err(OAuthError {
                    status: 400,
                    code: "invalid_request",
                    description: "client_id differs from the Authorization header".into(),
                });
            }
            Ok(ClientAuth { client_id: Some(id), secret: Some(Zeroizing::new(decode(secret)?)) })
        }
        None => Ok(ClientAuth {
            client_id: p.get("client_id").map(String::from),
            secret: p.get("client_secret").map(|s| Zeroizing::new(s.to_string())),
        }),
    }
}

fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, Response> {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(bad("Content-Type must be application/x-www-form-urlencoded"));
    }
    pairs(body).map_err(|m| bad(&m))
}

/// The form of a client-authenticated endpoint (token, revoke, PAR) and its client authentication.
fn client_request(headers: &HeaderMap, body: &[u8]) -> Result<(Params, ClientAuth), Response> {
    let p = form_params(headers, body)?;
    let auth = client_auth(headers, &p).map_err(oauth_error)?;
    Ok((p, auth))
}

/// `POST oauth2/token`.
async fn token(State(state): State<AppState>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> Response {
    let (p, auth) = match client_request(&headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.service.token(&ctx, &auth, &p).await {
        Ok(t) => {
            let mut r = Json(t).into_response();
            r.headers_mut().insert("pragma", HeaderValue::from_static("no-cache"));
            r
        }
        Err(e) => oauth_error(e),
    }
}

/// `POST oauth2/revoke` (204, as CSC says; RFC 7009 allows 200).
async fn revoke(State(state): State<AppState>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> Response {
    let (p, auth) = match client_request(&headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.service.oauth_revoke(&ctx, &auth, &p).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => oauth_error(e),
    }
}

/// `POST oauth2/pushed_authorize` (RFC 9126 §2): 201 with the `request_uri`.
async fn pushed_authorize(State(state): State<AppState>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> Response {
    let (p, auth) = match client_request(&headers, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.service.pushed_authorize(&ctx, &auth, &p).await {
        Ok((request_uri, expires_in)) => {
            (StatusCode::CREATED, Json(json!({"request_uri": request_uri, "expires_in": expires_in}))).into_response()
        }
        Err(e) => oauth_error(e),
    }
}

/// RFC 8414 authorization server metadata.
async fn metadata(State(state): State<AppState>) -> Response {
    let base = state.base_url.trim_end_matches('/');
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "pushed_authorization_request_endpoint": format!("{base}/oauth2/pushed_authorize"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": ["service", "credential"],
        "authorization_details_types_supported": ["credential"],
    }))
    .into_response()
}
