//! The device protocol's service side over HTTP (`docs/device-protocol.md` "Transport"):
//! pairing, long-polling and answers under `/device/v1/`. The domain makes every check
//! (`cloudsign_domain::device`); this module decodes, answers JSON, and maps refusals to the
//! statuses of "Checks and refusals". With `[device] enabled = false` every path answers 404,
//! as an unknown path does.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cloudsign_domain::device::DeviceFailure;
use cloudsign_domain::device::protocol::message::ServiceMessage;

use crate::AppState;
use crate::error::{not_found, v2};
use crate::extract::Caller;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/device/v1/pair/start", post(pair_start))
        .route("/device/v1/pair/finish", post(pair_finish))
        .route("/device/v1/challenge", get(challenge))
        .route("/device/v1/poll", post(poll))
        .route("/device/v1/answer", post(answer))
}

/// JSON with `Cache-Control: no-store`: every answer here is for one device, once.
fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn failure(f: DeviceFailure) -> Response {
    match f {
        DeviceFailure::Refused { status, message } => {
            json(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), &ServiceMessage::Error(message))
        }
        DeviceFailure::Service(e) => v2(e).into_response(),
    }
}

fn answer_with<T: serde::Serialize>(r: Result<T, DeviceFailure>) -> Response {
    match r {
        Ok(body) => json(StatusCode::OK, &body),
        Err(f) => failure(f),
    }
}

async fn pair_start(State(state): State<AppState>, Caller(ctx): Caller, body: Bytes) -> Response {
    if !state.service.device_config().enabled {
        return not_found().await.into_response();
    }
    answer_with(state.service.device_pair_start(&ctx, &body).await)
}

async fn pair_finish(State(state): State<AppState>, Caller(ctx): Caller, body: Bytes) -> Response {
    if !state.service.device_config().enabled {
        return not_found().await.into_response();
    }
    answer_with(state.service.device_pair_finish(&ctx, &body).await)
}

async fn challenge(State(state): State<AppState>) -> Response {
    if !state.service.device_config().enabled {
        return not_found().await.into_response();
    }
    json(StatusCode::OK, &state.service.device_challenge())
}

async fn poll(State(state): State<AppState>, Caller(ctx): Caller, body: Bytes) -> Response {
    if !state.service.device_config().enabled {
        return not_found().await.into_response();
    }
    answer_with(state.service.device_poll(&ctx, &body).await)
}

async fn answer(State(state): State<AppState>, Caller(ctx): Caller, body: Bytes) -> Response {
    if !state.service.device_config().enabled {
        return not_found().await.into_response();
    }
    answer_with(state.service.device_answer(&ctx, &body).await)
}
