//! The phone page (`docs/device-protocol.md` "Devices"): the reference device for scenario [3],
//! served by the service and installable as a web app.
//!
//! `GET /device` is the page; its script (`app.js`, with the protocol's pure functions in
//! `lib.js`), style, web app manifest and icon are under `/device/`, compiled into the binary
//! (`static/device/`): nothing is fetched from elsewhere, at build time or at run time. The
//! page keeps its two keys (device key, signing key) as non-extractable WebCrypto keys in
//! IndexedDB and speaks the protocol of `/device/v1/` (`device.rs`) from the browser.
//!
//! Security headers ("Threat model", "Malicious script in the phone page's origin"): a strict
//! Content-Security-Policy — scripts only from this origin, no inline script, no `eval`, no
//! plugins, connections (fetch, WebSocket) only to this origin — `frame-ancestors 'none'`
//! against clickjacking (the Sign button must not be clickable through someone else's frame),
//! `Referrer-Policy: no-referrer` (a preview link holds a capability), `nosniff`. The page reads
//! the pairing code from the URL fragment (`#pair=CODE`), which browsers never send, so the code
//! reaches no access log.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// The page's path (also the web app's `start_url` and `scope`).
pub(crate) const PAGE_PATH: &str = "/device";

/// Everything from this origin only (CSP Level 3): `connect-src 'self'` covers fetch and the
/// same-origin WebSocket (`ws:`/`wss:` of this host); `frame-src 'self'` only for a preview of
/// the service's own; `form-action 'none'`: the page posts no forms, its script talks JSON/JWS.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
frame-src 'self'; manifest-src 'self'; worker-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    service_name: &'a str,
}

pub(crate) fn page_routes() -> Router<AppState> {
    Router::new()
        .route(PAGE_PATH, get(page))
        .route("/device/app.js", get(|| asset(APP_JS, "text/javascript; charset=utf-8")))
        .route("/device/lib.js", get(|| asset(LIB_JS, "text/javascript; charset=utf-8")))
        .route("/device/device.css", get(|| asset(STYLE, "text/css; charset=utf-8")))
        .route("/device/manifest.webmanifest", get(|| asset(MANIFEST, "application/manifest+json")))
        .route("/device/icon.svg", get(|| asset(ICON, "image/svg+xml")))
}

const APP_JS: &str = include_str!("../static/device/app.js");
const LIB_JS: &str = include_str!("../static/device/lib.js");
const STYLE: &str = include_str!("../static/device/device.css");
const MANIFEST: &str = include_str!("../static/device/manifest.webmanifest");
const ICON: &str = include_str!("../static/device/icon.svg");

/// `GET /device`: the page. The same for everyone: the device's state is in the browser.
async fn page(State(state): State<AppState>) -> Response {
    let body = DevicePage { service_name: &state.service.config().service_name }.render();
    let mut r = crate::oauth::pages::html_with_csp(StatusCode::OK, body, CSP);
    // A new release's page and script go together: the browser revalidates both each time
    // (the script is small; an installed web app opens the page from the network anyway).
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A compiled-in file of the page, revalidated on each load so that page and script stay of one
/// release.
async fn asset(body: &'static str, media_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}
