//! The device protocol's service side over HTTP (`docs/device-protocol.md` "Transport"):
//! pairing, long-polling, answers and the WebSocket connection under `/device/v1/`. The domain
//! makes every check (`cloudsign_domain::device`, `cloudsign_device::check`); this module
//! decodes, answers JSON, and maps refusals to the statuses of "Checks and refusals" (HTTP) or
//! to the frames and close codes of its WebSocket column. With `[device] enabled = false` every
//! path answers 404, as an unknown path does.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cloudsign_domain::RequestContext;
use cloudsign_domain::device::DeviceFailure;
use cloudsign_domain::device::protocol::check::{self, Device};
use cloudsign_domain::device::protocol::freshness::{ChallengeKey, Purpose};
use cloudsign_domain::device::protocol::jws::Jws;
use cloudsign_domain::device::protocol::key::DeviceKey;
use cloudsign_domain::device::protocol::message::{Ack, Cancel, CancelReason, Challenge, ErrorMessage, Id, Ready, ServiceMessage, V1};
use cloudsign_domain::device::protocol::{self, Refusal, RefusalCode};
use cloudsign_store::{NewAudit, Outcome};
use serde_json::json;
use tokio::time::Instant;

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
        .route("/device/v1/connect", get(connect))
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

// ---------------------------------------------------------------------------------------------
// The WebSocket (docs/device-protocol.md "Transport", "Connection"; RFC 6455)
// ---------------------------------------------------------------------------------------------
//
// One connection: the service's first frame is a `challenge`, the device's first frame a signed
// `hello` (steps 1-7 of "Checks and refusals", then the counter's conditional advance); `ready`;
// from then on the service pushes the device's requests (the same JSON messages a poll answers
// with, one per text frame) and `cancel`s for those that ended elsewhere, and the device sends
// its answers (JWS `signature`, `approval`, `decline`) as text frames, each answered with the
// `ack` that `POST /device/v1/answer` gives. Every answer is still verified on its own by
// `Service::device_answer` (the connection authenticates nothing after the `hello`: the audit
// log keeps each answer as its own evidence). A request stays in the store, pending, whatever
// becomes of a connection: a closed socket leaves it for the next `ready` or poll.

/// The subprotocol (RFC 6455 §1.9, §11.3.4): a service that does not speak it refuses.
const SUBPROTOCOL: &str = "cloudsign-device.v1";
/// How often a connection looks at the store for new requests, ended requests and revocation
/// (the domain's waiters look as often for what other nodes changed).
const TICK: Duration = Duration::from_millis(500);
/// How often a connection marks its device seen (online: seen within the poll hold + 10 s).
const SEEN_EVERY: Duration = Duration::from_secs(5);
/// A frame the device does not read within this time: the connection is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Refused `hello`s (`replayed`, `late`) after which a connection is closed: each costs a
/// signature verification and an audit record.
const MAX_HELLO_TRIES: u32 = 5;

/// The connection challenges' key. A connection's challenge is issued and checked by the node
/// holding the socket, so a key of this process is enough (long-polling challenges, which any
/// node may check, use the domain's shared key); with its own key a WebSocket challenge cannot
/// serve a poll, nor a poll's a WebSocket.
fn connect_key() -> &'static ChallengeKey {
    static KEY: OnceLock<ChallengeKey> = OnceLock::new();
    KEY.get_or_init(ChallengeKey::generate)
}

/// `scheme://host[:port]`, lowercase, without a default port (RFC 6454 §6.1): what a browser
/// sends as `Origin`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("http", Some((host, "80"))) | ("https", Some((host, "443"))) => host.to_string(),
        _ => authority,
    };
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

fn error_message(code: RefusalCode, description: &str, counter: Option<u64>) -> ServiceMessage {
    ServiceMessage::Error(ErrorMessage { v: V1, error: code, error_description: description.into(), counter })
}

/// `GET /device/v1/connect`: the upgrade. Refused (before any frame) when the device protocol
/// is off (404), when it is not a WebSocket upgrade (axum's 400/405/426), when the `Origin` is
/// present and not this service's (403: cross-site WebSocket hijacking, RFC 6455 §10.2; the
/// phone page is same-origin, the agent sends none), and when the device does not offer the
/// subprotocol (400).
async fn connect(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !state.service.device_config().enabled {
        return not_found().await.into_response();
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ours = origin_of(&state.base_url);
        let theirs = origin.to_str().ok().and_then(origin_of);
        if ours.is_none() || ours != theirs {
            let m = error_message(RefusalCode::Foreign, "a WebSocket from another origin", None);
            return json(StatusCode::FORBIDDEN, &m);
        }
    }
    let upgrade =
        upgrade.protocols([SUBPROTOCOL]).max_message_size(protocol::MAX_MESSAGE_BYTES).max_frame_size(protocol::MAX_MESSAGE_BYTES);
    if upgrade.selected_protocol().is_none() {
        let m = error_message(RefusalCode::UnsupportedVersion, "the WebSocket subprotocol is cloudsign-device.v1", None);
        return json(StatusCode::BAD_REQUEST, &m);
    }
    upgrade.on_upgrade(move |socket| async move {
        let mut c = Connection { shared: Shared { state, ctx }, ws: socket, heard: Instant::now() };
        c.run().await;
    })
}

/// Why a connection ends.
enum End {
    /// The socket closed or failed (nothing more can be sent).
    Gone,
    /// Close with this code and reason (RFC 6455 §7.4.1).
    Close(u16, &'static str),
}

/// A refused `hello` or answer, as the connection handles it.
enum Refused {
    /// A protocol refusal: the `error` message (its code decides what follows).
    Protocol(ErrorMessage),
    /// The service failed (the store): close with 1011; the device reconnects.
    Service,
}

impl From<cloudsign_domain::Error> for Refused {
    fn from(e: cloudsign_domain::Error) -> Self {
        tracing::error!(error = %e, "device connection: service error");
        Refused::Service
    }
}

impl From<cloudsign_store::StoreError> for Refused {
    fn from(e: cloudsign_store::StoreError) -> Self {
        tracing::error!(error = %e, "device connection: store error");
        Refused::Service
    }
}

/// What a connection's checks need (apart from the socket, which is not `Sync`).
struct Shared {
    state: AppState,
    ctx: RequestContext,
}

impl Shared {
    async fn audit(&self, actor: &str, outcome: Outcome, credential: Option<&str>, detail: serde_json::Value) -> Result<(), Refused> {
        let detail = detail.to_string();
        let audit =
            NewAudit { at: cloudsign_domain::now(), actor, event: "device.connect", outcome, credential_id: credential, detail: &detail };
        self.state.service.store().audit(&audit).await?;
        Ok(())
    }

    /// Steps 1-7 of "Checks and refusals" for a `hello`, then the counter's conditional
    /// advance; every refusal audited (`device.connect` `refused`), the acceptance too (`ok`,
    /// transport `websocket`).
    async fn check_hello(&self, text: &str) -> Result<(Connected, u64), Refused> {
        let service = &self.state.service;
        let cfg = service.device_config();
        let client = self.ctx.client.as_str();
        let Some(aud) = service.config().public_url.as_deref().map(|u| u.trim_end_matches('/').to_string()) else {
            tracing::error!("device connection: the service has no public_url");
            return Err(Refused::Service);
        };
        let jws = match Jws::parse(text.trim()) {
            Ok(j) => j,
            Err(r) => {
                self.audit("-", Outcome::Refused, None, json!({"client": client, "transport": "websocket", "reason": r.code().as_str()}))
                    .await?;
                return Err(Refused::Protocol(ErrorMessage { v: V1, error: r.code(), error_description: r.to_string(), counter: None }));
            }
        };
        let store = service.store();
        let device = match store.device(jws.kid().as_str()).await? {
            Some(d) if !d.revoked => d,
            other => {
                let detail = json!({"client": client, "transport": "websocket", "reason": "unpaired", "device": jws.kid().as_str()});
                self.audit("-", Outcome::Refused, other.as_ref().map(|d| d.credential_id.as_str()), detail).await?;
                return Err(Refused::Protocol(ErrorMessage {
                    v: V1,
                    error: RefusalCode::Unpaired,
                    error_description: "the device is not paired (unknown or revoked)".into(),
                    counter: None,
                }));
            }
        };
        let user = store.user_by_id(&device.user_id).await?.map(|u| u.name).unwrap_or_default();
        let last = device.last_counter as u64;
        let refuse = |r: Refusal| {
            let detail = json!({"client": client, "transport": "websocket", "device": device.id, "thumbprint": device.thumbprint,
                "reason": r.code().as_str(), "detail": r.to_string()});
            (detail, ErrorMessage { v: V1, error: r.code(), error_description: r.to_string(), counter: Some(last) })
        };
        let (Ok(key), Some(id)) = (DeviceKey::from_spki(&device.device_key), Id::new(device.id.clone())) else {
            tracing::error!(device = %device.id, "device connection: stored device key or id unreadable");
            return Err(Refused::Service);
        };
        let t = cloudsign_domain::now();
        let checked = check::verify_device_message(&jws, &Device { id: &id, key: &key, last_counter: last }, &aud)
            .and_then(|v| check::accept_hello(&v, connect_key(), cfg.challenge_seconds as i64, t).map(|h| (v.counter, h)));
        let (counter, hello) = match checked {
            Ok(c) => c,
            Err(r) => {
                let (detail, e) = refuse(r);
                self.audit(&user, Outcome::Refused, Some(&device.credential_id), detail).await?;
                return Err(Refused::Protocol(e));
            }
        };
        // Step 6 across nodes and connections: the counter is taken once.
        if !store.advance_device_counter(&device.id, counter as i64, t).await? {
            let (detail, e) = refuse(Refusal::Replayed { last });
            self.audit(&user, Outcome::Refused, Some(&device.credential_id), detail).await?;
            return Err(Refused::Protocol(e));
        }
        let detail = json!({"client": client, "device": device.id, "thumbprint": device.thumbprint, "transport": "websocket",
            "agent": hello.agent, "counter": counter});
        self.audit(&user, Outcome::Ok, Some(&device.credential_id), detail).await?;
        Ok((Connected { id: device.id }, counter))
    }
}

struct Connection {
    shared: Shared,
    ws: WebSocket,
    /// The last frame from the device (any: text, ping, pong).
    heard: Instant,
}

/// A paired device, once its `hello` was accepted.
struct Connected {
    id: String,
}

impl Connection {
    async fn run(&mut self) {
        let end = match self.hello().await {
            Ok(device) => self.serve(&device).await,
            Err(end) => end,
        };
        if let End::Close(code, reason) = end {
            let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
            let _ = tokio::time::timeout(SEND_TIMEOUT, self.ws.send(Message::Close(Some(frame)))).await;
        }
    }

    async fn send(&mut self, m: &ServiceMessage) -> Result<(), End> {
        let text = serde_json::to_string(m).map_err(|_| End::Close(close_code::ERROR, "internal error"))?;
        match tokio::time::timeout(SEND_TIMEOUT, self.ws.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Gone),
        }
    }

    /// The next text frame from the device; pings and pongs only count as signs of life.
    /// `Ok(None)`: `deadline` passed first.
    async fn next_text(&mut self, deadline: Instant) -> Result<Option<String>, End> {
        loop {
            let frame = tokio::select! {
                f = self.ws.recv() => f,
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
            };
            self.heard = Instant::now();
            match frame {
                Some(Ok(Message::Text(t))) => return Ok(Some(t.as_str().to_string())),
                Some(Ok(Message::Binary(_))) => {
                    let m = error_message(RefusalCode::Malformed, "device messages are text frames", None);
                    self.send(&m).await?;
                    return Err(End::Close(close_code::POLICY, "binary frame"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => return Err(End::Gone),
                // RFC 6455 §7.4.1: 1009 for a message too big to process (tungstenite's
                // capacity error, "Space limit exceeded", behind axum's opaque error); any other
                // read error (a protocol violation, a reset) ends the connection.
                Some(Err(e)) => {
                    let too_big = e.to_string().contains("Space limit exceeded")
                        || std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("Space limit exceeded"));
                    return Err(if too_big { End::Close(close_code::SIZE, "message too big") } else { End::Gone });
                }
            }
        }
    }

    fn fresh_challenge(&self, counter: Option<u64>) -> ServiceMessage {
        let t = cloudsign_domain::now();
        ServiceMessage::Challenge(Challenge {
            v: V1,
            challenge: connect_key().issue(Purpose::Connect, t),
            counter,
            expires_at: t + self.shared.state.service.device_config().challenge_seconds as i64,
        })
    }

    /// Challenge, `hello`, `ready` ("Connection"). A `replayed` or `late` hello gets an `error`
    /// and a fresh challenge; any other refusal closes with 1008.
    async fn hello(&mut self) -> Result<Connected, End> {
        let lifetime = Duration::from_secs(self.shared.state.service.device_config().challenge_seconds);
        let first = self.fresh_challenge(None);
        self.send(&first).await?;
        let mut deadline = Instant::now() + lifetime;
        for _ in 0..MAX_HELLO_TRIES {
            let Some(text) = self.next_text(deadline).await? else {
                return Err(End::Close(close_code::POLICY, "no hello in time"));
            };
            match self.shared.check_hello(&text).await {
                Ok((device, counter)) => {
                    let Some(device_id) = Id::new(device.id.clone()) else {
                        return Err(End::Close(close_code::ERROR, "internal error"));
                    };
                    self.send(&ServiceMessage::Ready(Ready { v: V1, device_id, counter })).await?;
                    return Ok(device);
                }
                Err(Refused::Service) => return Err(End::Close(close_code::ERROR, "service error")),
                Err(Refused::Protocol(e)) => {
                    let retry = matches!(e.error, RefusalCode::Replayed | RefusalCode::Late);
                    let counter = e.counter;
                    self.send(&ServiceMessage::Error(e)).await?;
                    if !retry {
                        return Err(End::Close(close_code::POLICY, "hello refused"));
                    }
                    let again = self.fresh_challenge(counter);
                    self.send(&again).await?;
                    deadline = Instant::now() + lifetime;
                }
            }
        }
        Err(End::Close(close_code::POLICY, "too many refused hellos"))
    }

    /// After `ready`: push requests, cancels and pings; take answers.
    async fn serve(&mut self, device: &Connected) -> End {
        let cfg = self.shared.state.service.device_config().clone();
        let offline_after = Duration::from_secs(cfg.offline_after_seconds.max(1));
        let ping_every = Duration::from_secs(cfg.ping_seconds.max(1));
        // A request handed out this long ago and still pending is handed out again (as a poll
        // does): the frame that carried it may have been lost with its connection.
        let redeliver_after = cfg.poll_hold_seconds as i64 + 10;
        // The requests this connection delivered and not yet saw end: id → expiry.
        let mut sent: HashMap<String, i64> = HashMap::new();
        let (mut last_ping, mut last_seen) = (Instant::now(), Instant::now());
        // On `ready`, every pending request of the device ("Reconnection": requests sent while
        // it was away are delivered on its next ready), even one handed out to a connection
        // that is gone.
        let mut redeliver_before = cloudsign_domain::now() + 1;
        loop {
            if let Err(end) = self.deliver(device, &mut sent, redeliver_before).await {
                return end;
            }
            redeliver_before = cloudsign_domain::now() - redeliver_after;
            if let Err(end) = self.cancel_ended(&mut sent).await {
                return end;
            }
            let text = match self.next_text(Instant::now() + TICK).await {
                Ok(t) => t,
                Err(end) => return end,
            };
            if let Some(text) = text
                && let Err(end) = self.answer(device, &text, &mut sent).await
            {
                return end;
            }
            if self.heard.elapsed() >= offline_after {
                return End::Close(close_code::AWAY, "no frame from the device in time");
            }
            if last_ping.elapsed() >= ping_every {
                last_ping = Instant::now();
                if tokio::time::timeout(SEND_TIMEOUT, self.ws.send(Message::Ping(Bytes::from_static(b"cloudsign")))).await.is_err() {
                    return End::Gone;
                }
            }
            if last_seen.elapsed() >= SEEN_EVERY {
                last_seen = Instant::now();
                let store = self.shared.state.service.store();
                match store.device(&device.id).await {
                    Ok(Some(d)) if !d.revoked => {}
                    Ok(_) => {
                        let m = error_message(RefusalCode::Unpaired, "the device was revoked", None);
                        let _ = self.send(&m).await;
                        return End::Close(close_code::POLICY, "revoked");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "device connection: store error");
                        return End::Close(close_code::ERROR, "service error");
                    }
                }
                if let Err(e) = store.device_seen(&device.id, cloudsign_domain::now()).await {
                    tracing::error!(error = %e, "device connection: store error");
                    return End::Close(close_code::ERROR, "service error");
                }
            }
        }
    }

    /// The device's requests no connection or poll holds (or held before `redeliver_before`).
    async fn deliver(&mut self, device: &Connected, sent: &mut HashMap<String, i64>, redeliver_before: i64) -> Result<(), End> {
        let t = cloudsign_domain::now();
        let rows = match self.shared.state.service.store().take_undelivered_device_requests(&device.id, t, redeliver_before).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "device connection: store error");
                return Err(End::Close(close_code::ERROR, "service error"));
            }
        };
        for r in rows {
            if let Ok(m) = serde_json::from_str::<ServiceMessage>(&r.message) {
                self.send(&m).await?;
                sent.insert(r.id, r.expires_at);
            }
        }
        Ok(())
    }

    /// `cancel` for the requests this connection delivered that ended otherwise: expired,
    /// answered elsewhere (another connection, a poll), or withdrawn.
    async fn cancel_ended(&mut self, sent: &mut HashMap<String, i64>) -> Result<(), End> {
        if sent.is_empty() {
            return Ok(());
        }
        let t = cloudsign_domain::now();
        let ids: Vec<(String, i64)> = sent.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for (id, expires_at) in ids {
            let row = match self.shared.state.service.store().device_request(&id).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "device connection: store error");
                    return Err(End::Close(close_code::ERROR, "service error"));
                }
            };
            let reason = match row.as_ref().map(|r| r.state.as_str()) {
                Some("pending") if t < expires_at => continue,
                Some("pending" | "expired") => CancelReason::Expired,
                Some("signed" | "declined" | "refused" | "approved") => CancelReason::Answered,
                _ => CancelReason::Withdrawn,
            };
            sent.remove(&id);
            if let Some(request_id) = Id::new(id) {
                self.send(&ServiceMessage::Cancel(Cancel { v: V1, request_id, reason })).await?;
            }
        }
        Ok(())
    }

    /// An answer: checked and stored by `Service::device_answer` (steps 1-12), acknowledged on
    /// the socket as "Checks and refusals" says: `ack` (accepted or refused) for refusals that
    /// concern the request, `error` and close 1008 for those that concern the device.
    async fn answer(&mut self, device: &Connected, text: &str, sent: &mut HashMap<String, i64>) -> Result<(), End> {
        // The requestId, read before verification only to address the `ack` (the device's own
        // connection); the answer itself is verified by `device_answer` before anything counts.
        let request_id = Jws::parse(text.trim()).ok().and_then(|jws| {
            if jws.kid().as_str() != device.id {
                return None;
            }
            let input = std::str::from_utf8(jws.signing_input()).ok()?;
            let payload = protocol::b64::decode(input.split_once('.')?.1)?;
            protocol::jws::parse_payload(&payload).ok()?.request_id().cloned()
        });
        if let Ok(jws) = Jws::parse(text.trim())
            && jws.kid().as_str() != device.id
        {
            // Another device's message on this device's connection.
            let m = error_message(RefusalCode::Foreign, "this connection is another device's", None);
            self.send(&m).await?;
            return Err(End::Close(close_code::POLICY, "another device's message"));
        }
        let result = self.shared.state.service.device_answer(&self.shared.ctx, text.as_bytes()).await;
        match result {
            Ok(ack) => {
                if let Some(id) = &request_id {
                    sent.remove(id.as_str());
                }
                self.send(&ack).await
            }
            Err(DeviceFailure::Service(e)) => {
                tracing::error!(error = %e, device = %device.id, "device answer: service error");
                Err(End::Close(close_code::ERROR, "service error"))
            }
            Err(DeviceFailure::Refused { message, .. }) => {
                use RefusalCode::*;
                match (message.error, request_id) {
                    (Replayed | UnknownRequest | Late | WrongVerificationCode | DigestNotRequested | BadSignature, Some(request_id)) => {
                        if !matches!(message.error, Replayed | Late) {
                            sent.remove(request_id.as_str());
                        }
                        let counter = message.counter.unwrap_or(0);
                        let ack = ServiceMessage::Ack(Ack {
                            v: V1,
                            request_id,
                            accepted: false,
                            error: Some(message.error),
                            error_description: Some(message.error_description),
                            counter,
                        });
                        self.send(&ack).await
                    }
                    (Replayed | UnknownRequest | Late, None) => self.send(&ServiceMessage::Error(message)).await,
                    _ => {
                        self.send(&ServiceMessage::Error(message)).await?;
                        Err(End::Close(close_code::POLICY, "answer refused"))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn origins_compare_as_browsers_send_them() {
        assert_eq!(origin_of("http://127.0.0.1:8080/").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(origin_of("https://Sign.Example.com:443/x?y").as_deref(), Some("https://sign.example.com"));
        assert_eq!(origin_of("http://h:80").as_deref(), Some("http://h"));
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("http://"), None);
    }
}
