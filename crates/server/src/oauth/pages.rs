//! `oauth2/authorize` and the signer's login and consent pages (askama templates).
//!
//! The pages work without JavaScript and load nothing from elsewhere; they are sent with a
//! strict Content-Security-Policy, `frame-ancestors 'none'` against clickjacking, and
//! `Referrer-Policy: no-referrer` so that no page address leaks to the application.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cloudsign_csc::oauth::AuthorizeRequest;
use cloudsign_domain::Factors;
use cloudsign_domain::oauth::{AuthorizeError, CredentialConsent, FlowError, FlowView, ManagementConsent};
use zeroize::Zeroizing;

use super::{location, pairs, parse, redirect};
use crate::AppState;
use crate::extract::Caller;

/// The flow cookie. With TLS it takes the `__Host-` prefix (RFC 6265bis §4.1.3.2): Secure,
/// host-only, path `/`.
const COOKIE_PLAIN: &str = "cloudsign_flow";
const COOKIE_SECURE: &str = "__Host-cloudsign_flow";

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'";

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
    credential: Option<&'a CredentialConsent>,
    management: Option<&'a ManagementConsent>,
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
    html_with_csp(status, body, CSP)
}

/// A page (rendered by askama) with the security headers every page of the service carries,
/// and the page's `Content-Security-Policy`.
pub(crate) fn html_with_csp(status: StatusCode, body: Result<String, askama::Error>, csp: &'static str) -> Response {
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
    h.insert("content-security-policy", HeaderValue::from_static(csp));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

fn message(state: &AppState, status: StatusCode, title: &str, text: &str) -> Response {
    let page = MessagePage { service_name: &state.service.config().service_name, title, message: text };
    html(status, page.render())
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

/// `GET oauth2/authorize`: validate, start the flow in a cookie, and show the login page.
pub(super) async fn authorize(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let request: AuthorizeRequest = match parse(query.unwrap_or_default().as_bytes()) {
        Ok((_, r)) => r,
        Err(m) => return message(&state, StatusCode::BAD_REQUEST, "Invalid request", &m),
    };
    match state.service.begin_authorization(&request).await {
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
        Err(AuthorizeError::Redirect(r)) => redirect(&location(&r)),
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
                management: v.management.as_ref(),
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
        FlowError::Redirect(r) => redirect(&location(&r)),
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
pub(super) async fn flow_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match flow_cookie(&state, &headers) {
        Some(flow) => render_flow(&state, &flow, None).await,
        None => flow_error(&state, FlowError::NoFlow).await,
    }
}

/// `POST oauth2/flow/login`.
pub(super) async fn flow_login(State(state): State<AppState>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> Response {
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
pub(super) async fn flow_consent(State(state): State<AppState>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> Response {
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
        Ok(r) => redirect(&location(&r)),
        Err(FlowError::Retry(m)) => render_flow(&state, &flow, Some(&m)).await,
        Err(e) => flow_error(&state, e).await,
    }
}

pub(super) async fn style() -> Response {
    let mut r = include_str!("../../assets/style.css").into_response();
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r
}

/// The service logo (`info.logo`, which 2.2 clients require to be a URI).
pub(super) async fn logo() -> Response {
    const LOGO: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 64 64\"><rect width=\"64\" height=\"64\" rx=\"12\" fill=\"#1d4ed8\"/><path d=\"M14 42c8-2 12-18 20-18s6 14 16 10\" stroke=\"#fff\" stroke-width=\"5\" fill=\"none\" stroke-linecap=\"round\"/></svg>";
    let mut r = LOGO.into_response();
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    r
}
