//! Out-of-band credential authorization: `credentials/authorizeCheck` (CSC 2.0.0.2 §11.7) and
//! the approval page the signer opens from the link the service sent.
//!
//! The page (`GET /oauth2/approve?t=TOKEN`) shows what is being authorized and posts the
//! decision (`POST /oauth2/approve`, the token in the form). The one-time token is the only
//! thing that decides, and a cross-site page cannot know it, so it is also the form's CSRF
//! protection; it decides once. It travels in the query string and the form body, never in the
//! path, which is all the access log writes. The page is sent like the consent pages
//! (`oauth/pages.rs`): no script, nothing from elsewhere, a strict Content-Security-Policy,
//! `frame-ancestors 'none'` against clickjacking, `Referrer-Policy: no-referrer`; it is under
//! `/oauth2/`, so the per-client rate limit applies to it.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cloudsign_csc::ErrorCode;
use cloudsign_csc::v2::{AuthorizeCheckRequest, AuthorizePendingResponse, SadResponse};
use cloudsign_domain::approval::{APPROVE_PATH, ApprovalView, CheckOutcome, LinkState};

use crate::AppState;
use crate::error::{ApiError, v2};
use crate::extract::{Bearer, Caller, CscJson, with_client_data};

/// The methods of this module, as `info` lists them when out-of-band approval is enabled.
pub(crate) const METHODS: &[&str] = &["credentials/authorizeCheck"];

/// What `credentials/authorizeCheck` answers for a denied authorization: CSC `access_denied`
/// ("the user ... refused the request", csc-api.md §1.5), 400 as the spec's refusals are.
pub(crate) const DENIED: &str = "The signer denied the authorization";

/// What it answers for a lapsed one.
pub(crate) const EXPIRED: &str = "The authorization expired: the signer did not approve it in time, or its SAD was not collected in time";

/// `/csc/v2` routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/credentials/authorizeCheck", post(authorize_check))
}

/// Routes outside `/csc/v2` (the signer's approval page).
pub(crate) fn page_routes() -> Router<AppState> {
    Router::new().route(APPROVE_PATH, get(page).post(decide))
}

/// §11.7: 202 with the same handle while the signer has not decided, 200 with the SAD once
/// approved (that once only: a second call is refused as an unknown handle), 400
/// `access_denied` when denied, 400 `invalid_request` when expired or unknown.
async fn authorize_check(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<AuthorizeCheckRequest>,
) -> Result<Response, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    match state.service.authorize_check(&session, &ctx, &req.handle).await.map_err(v2)? {
        CheckOutcome::Pending => Ok((StatusCode::ACCEPTED, Json(AuthorizePendingResponse { handle: req.handle })).into_response()),
        CheckOutcome::Granted(sad) => Ok(Json(SadResponse { sad: sad.token, expires_in: sad.expires_in }).into_response()),
        CheckOutcome::Denied => Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::AccessDenied, DENIED)),
        CheckOutcome::Expired => Err(ApiError::invalid(EXPIRED)),
    }
}

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Template)]
#[template(path = "approval.html")]
struct ApprovalPage<'a> {
    service_name: &'a str,
    title: &'a str,
    /// The request, with the form; `None`: a message page.
    view: Option<&'a ApprovalView>,
    token: &'a str,
    minutes: i64,
    message: &'a str,
    /// The message is an error (`error`) or a result (`lead`).
    class: &'a str,
}

fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    crate::oauth::pages::html_with_csp(status, body, CSP)
}

fn message(state: &AppState, status: StatusCode, title: &str, text: &str, class: &str) -> Response {
    let page =
        ApprovalPage { service_name: &state.service.config().service_name, title, view: None, token: "", minutes: 0, message: text, class };
    html(status, page.render())
}

fn link_refused(state: &AppState, why: LinkState) -> Response {
    let (title, text) = match why {
        LinkState::Unknown => ("Link not valid", "This approval link is not valid. Check that you opened the whole link."),
        LinkState::Used => ("Link already used", "This request has been approved or denied already: each link decides once."),
        LinkState::Expired => {
            ("Request expired", "This request has expired: it was not approved in time. Ask the application to start again.")
        }
    };
    message(state, StatusCode::BAD_REQUEST, title, text, "error")
}

fn failed(state: &AppState, e: cloudsign_domain::Error) -> Response {
    tracing::error!(detail = %e, "approval page failed");
    let (status, text) = match e {
        cloudsign_domain::Error::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "The service is temporarily unavailable. Try again in a moment.")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side."),
    };
    message(state, status, "Error", text, "error")
}

/// The form or query parameters, each at most once.
fn params(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).ok()?;
    let mut seen = std::collections::HashSet::new();
    pairs.iter().all(|(k, _)| seen.insert(k.clone())).then_some(pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// `GET /oauth2/approve?t=TOKEN`: what is being authorized, with Approve and Deny. Opening
/// the page decides nothing (a link scanner that fetches it changes nothing).
async fn page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(pairs) = params(query.unwrap_or_default().as_bytes()) else { return link_refused(&state, LinkState::Unknown) };
    let Some(token) = param(&pairs, "t") else { return link_refused(&state, LinkState::Unknown) };
    match state.service.approval_view(token).await {
        Ok(Ok(view)) => {
            let page = ApprovalPage {
                service_name: &state.service.config().service_name,
                title: "Approve signature",
                view: Some(&view),
                token,
                minutes: (view.seconds_left + 59) / 60,
                message: "",
                class: "",
            };
            html(StatusCode::OK, page.render())
        }
        Ok(Err(why)) => link_refused(&state, why),
        Err(e) => failed(&state, e),
    }
}

/// `POST /oauth2/approve` (`t`, `decision` = `approve` | `deny`): the signer's decision.
async fn decide(State(state): State<AppState>, Caller(ctx): Caller, body: Bytes) -> Response {
    let Some(pairs) = params(&body) else { return link_refused(&state, LinkState::Unknown) };
    let Some(token) = param(&pairs, "t") else { return link_refused(&state, LinkState::Unknown) };
    let approve = match param(&pairs, "decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return message(
                &state,
                StatusCode::BAD_REQUEST,
                "Choose Approve or Deny",
                "Open the link again and choose Approve or Deny.",
                "error",
            );
        }
    };
    let decided = if approve { state.service.approve(&ctx, token).await } else { state.service.deny(&ctx, token).await };
    match decided {
        Ok(Ok(())) if approve => message(
            &state,
            StatusCode::OK,
            "Approved",
            "You approved the signature. You can close this page and return to the application.",
            "lead",
        ),
        Ok(Ok(())) => {
            message(&state, StatusCode::OK, "Denied", "You denied the request: nothing will be signed. You can close this page.", "lead")
        }
        Ok(Err(why)) => link_refused(&state, why),
        Err(e) => failed(&state, e),
    }
}
