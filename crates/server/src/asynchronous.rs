//! CSC API 2.2.0.0 asynchronous signing: `signatures/signPolling` (§11.15).
//!
//! The reference leaves the "still running" answer open (csc-api-2.2.md §11); the one signal
//! seen on the wire is HTTP 400 with a description saying the earlier request is still being
//! processed (a provider's client retries on exactly that). cloudsign answers so: 400
//! `invalid_request`, "The asynchronous signature request is still being processed", with
//! `Retry-After: 1`. The result comes once (200, the original method's output); after that,
//! and for an unknown or another user's handle, 400 `invalid_request` "Invalid parameter
//! responseID". A job that failed answers its error once (400 `invalid_request`, "The
//! asynchronous signature request failed: ..."), its SAD given back.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use cloudsign_csc::b64;
use cloudsign_csc::v2::{SignDocResponse, SignPollingRequest};
use cloudsign_domain::asynchronous::{AsyncResult, Polled};

use crate::error::{ApiError, v2};
use crate::extract::{Bearer, Caller, CscJson, with_client_data};
use crate::{AppState, shared};

/// The methods this module adds to `info.methods`.
#[allow(dead_code)] // listed by `info`
pub(crate) const METHODS: &[&str] = &["signatures/signPolling"];

/// The description of the "still running" answer.
pub(crate) const PENDING: &str = "The asynchronous signature request is still being processed";

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/signatures/signPolling", post(sign_polling))
}

/// §11.15.
async fn sign_polling(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<SignPollingRequest>,
) -> Result<Response, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    // After a restart, the first poll starts this node's worker if nothing else has.
    state.service.start_async_worker();
    match state.service.sign_polling(&session, &ctx, &req.response_id).await.map_err(v2)? {
        Polled::Pending => {
            let mut resp = ApiError::invalid(PENDING).into_response();
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(resp)
        }
        Polled::Ready(AsyncResult::Signatures(signatures)) => Ok(shared::signatures(&signatures).into_response()),
        Polled::Ready(AsyncResult::Documents { signed, attached, validation_info }) => {
            sign_doc_output(&state, &signed, &attached, validation_info).await
        }
    }
}

/// signDoc's output (§11.11), for the call itself and for signPolling.
pub(crate) async fn sign_doc_output(
    state: &AppState,
    signed: &[Vec<u8>],
    attached: &[bool],
    validation_info: bool,
) -> Result<Response, ApiError> {
    let (mut objects, mut documents) = (Vec::new(), Vec::new());
    for (cms, attached) in signed.iter().zip(attached) {
        if *attached { documents.push(b64::encode(cms)) } else { objects.push(b64::encode(cms)) }
    }
    let validation_info = if validation_info {
        // What a verifier needs that is not in the signatures: the root, and the current CRL.
        let crl = state.service.crl().await.map_err(v2)?;
        Some(serde_json::json!({"certificates": [b64::encode(state.service.ca_chain()[1])], "crl": [b64::encode(&crl)]}))
    } else {
        None
    };
    Ok(Json(SignDocResponse {
        document_with_signature: (!documents.is_empty()).then_some(documents),
        signature_object: (!objects.is_empty()).then_some(objects),
        validation_info,
    })
    .into_response())
}
