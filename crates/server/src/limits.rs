//! Connection and request limits against slow and greedy clients: a header-read timeout
//! (slowloris), an idle keep-alive timeout, a cap on open connections, and a per-client token
//! bucket on the endpoints that need no authentication.
//!
//! hyper's own `header_read_timeout` starts when the connection goes idle, so it cannot tell an
//! idle keep-alive connection from a slow request head; [`LimitAcceptor`] tracks both on the
//! socket itself, with the per-connection service telling it when a request is being handled.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::HTTP;

/// The connection and rate limits (defaults in docs/configuration.md).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a client has to send a complete request head, from the connection's start or from
    /// the first byte after an idle period. `None`: unbounded.
    pub header_read_timeout: Option<Duration>,
    /// Time a keep-alive connection may stay open with no request after its last response.
    pub idle_timeout: Option<Duration>,
    /// Time a client has to send a request's whole body once its head is in. `None`: unbounded.
    pub body_read_timeout: Option<Duration>,
    /// Open connections at most; more are closed at once. `0`: unbounded.
    pub max_connections: usize,
    /// Sustained requests per second per client on the unauthenticated endpoints; `0`: off.
    pub rate_limit: u32,
    /// Requests a client may make at once before the sustained rate applies.
    pub rate_limit_burst: u32,
    /// Peers (addresses or CIDR ranges) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(60)),
            // 1 MiB (the default body limit) at 20 KiB/s; a larger body_limit may want more.
            body_read_timeout: Some(Duration::from_secs(60)),
            max_connections: 4096,
            rate_limit: 50,
            rate_limit_burst: 200,
            trusted_proxies: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

const HEAD: u8 = 0; // waiting for (the rest of) a request head
const BUSY: u8 = 1; // a request is being handled
const IDLE: u8 = 2; // between requests (keep-alive)
const UPGRADED: u8 = 3; // switched protocols (a WebSocket, RFC 6455 §4.2.2): its handler keeps its own liveness

/// What the socket and the per-connection service share.
struct ConnState {
    phase: AtomicU8,
    in_flight: AtomicUsize,
}

/// An [`axum_server::accept::Accept`] that enforces the connection cap and wraps each socket
/// with the two timeouts. It sits under TLS, so the TLS handshake counts as part of the head.
#[derive(Clone)]
pub(crate) struct LimitAcceptor {
    slots: Option<Arc<Semaphore>>,
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
}

impl LimitAcceptor {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            slots: (limits.max_connections > 0).then(|| Arc::new(Semaphore::new(limits.max_connections))),
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
        }
    }
}

impl<I, S> axum_server::accept::Accept<I, S> for LimitAcceptor {
    type Stream = LimitedStream<I>;
    type Service = Tracked<S>;
    type Future = std::future::Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let permit = match &self.slots {
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    // Closing at once keeps a flood from holding file descriptors and tasks;
                    // the client sees the connection reset and may retry.
                    HTTP.connection_refused();
                    return std::future::ready(Err(io::Error::other("connection limit reached")));
                }
            },
            None => None,
        };
        let state = Arc::new(ConnState { phase: AtomicU8::new(HEAD), in_flight: AtomicUsize::new(0) });
        let deadline = self.header_read_timeout.map(|t| tokio::time::Instant::now() + t);
        HTTP.connection_opened();
        let stream = LimitedStream {
            inner: stream,
            state: state.clone(),
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            armed: deadline.map(|d| (HEAD, Box::pin(tokio::time::sleep_until(d)))),
            _permit: permit,
        };
        std::future::ready(Ok((stream, Tracked { inner: service, state })))
    }
}

/// A socket with the header-read and idle timeouts: when one runs out, the next read fails and
/// hyper closes the connection.
pub(crate) struct LimitedStream<I> {
    inner: I,
    state: Arc<ConnState>,
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// The running timer and the phase it was armed for.
    armed: Option<(u8, Pin<Box<tokio::time::Sleep>>)>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl<I> Drop for LimitedStream<I> {
    fn drop(&mut self) {
        HTTP.connection_closed();
    }
}

impl<I> LimitedStream<I> {
    /// (Re)arm the timer of `phase` from now, or disarm it.
    fn arm(&mut self, phase: u8) {
        let timeout = match phase {
            HEAD => self.header_read_timeout,
            IDLE => self.idle_timeout,
            _ => None,
        };
        match (timeout, &mut self.armed) {
            (None, _) => self.armed = None,
            (Some(t), Some((p, sleep))) => {
                *p = phase;
                sleep.as_mut().reset(tokio::time::Instant::now() + t);
            }
            (Some(t), None) => self.armed = Some((phase, Box::pin(tokio::time::sleep(t)))),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for LimitedStream<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let phase = self.state.phase.load(Ordering::Acquire);
        match &result {
            Poll::Ready(Ok(())) if buf.filled().len() > before && phase == IDLE => {
                // The first byte of the next request: it has `header_read_timeout` to complete.
                self.state.phase.store(HEAD, Ordering::Release);
                self.arm(HEAD);
            }
            Poll::Pending if phase != BUSY && phase != UPGRADED => {
                if self.armed.as_ref().map(|(p, _)| *p) != Some(phase) {
                    self.arm(phase);
                }
                if let Some((p, sleep)) = &mut self.armed
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    HTTP.connection_timed_out(*p == IDLE);
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection timed out")));
                }
            }
            _ => {}
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for LimitedStream<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, data))?;
        // Idle time counts from the last byte of the response.
        if n > 0 && self.state.phase.load(Ordering::Acquire) == IDLE {
            self.arm(IDLE);
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        if n > 0 && self.state.phase.load(Ordering::Acquire) == IDLE {
            self.arm(IDLE);
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The per-connection service: marks the connection busy while a request is handled, so a slow
/// handler is not mistaken for a slow or idle client.
#[derive(Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S: tower_service::Service<R, Response = axum::http::Response<B>>, R, B> tower_service::Service<R> for Tracked<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        self.state.phase.store(BUSY, Ordering::Release);
        TrackedFuture { inner: self.inner.call(req), guard: BusyGuard(self.state.clone()) }
    }
}

struct BusyGuard(Arc<ConnState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // An upgraded connection never goes back to HTTP: no header-read or idle timer.
            let _ = self.0.phase.compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

pin_project_lite::pin_project! {
    /// The handler's future; the connection is idle again when it is done or dropped.
    pub(crate) struct TrackedFuture<F> {
        #[pin]
        inner: F,
        guard: BusyGuard,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<axum::http::Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        // 101 Switching Protocols: the bytes that follow are the new protocol's (a WebSocket's
        // frames), not request heads; the header-read and idle timeouts would cut it after 10 s.
        if let Ok(r) = &out
            && r.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS
        {
            this.guard.0.phase.store(UPGRADED, Ordering::Release);
        }
        Poll::Ready(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// A network, `addr/prefix`, for `trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `192.0.2.1`, `10.0.0.0/8`, `2001:db8::/32`.
    pub fn parse(text: &str) -> Option<Self> {
        let (a, p) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask(u32::from(net) as u128, u32::from(ip) as u128, 32, self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask(u128::from(net), u128::from(ip), 128, self.prefix),
            _ => false,
        }
    }
}

fn mask(net: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    let shift = bits - prefix;
    shift >= bits || (net >> shift) == (ip >> shift)
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client a request is counted against: the peer, or — when the peer is a trusted proxy —
/// the nearest address in `X-Forwarded-For` that is not one (RFC 7239 §5.2 semantics: the
/// rightmost entries were added by our own proxies, anything left of them is the client's word).
pub(crate) fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else { return peer };
    let mut client = peer;
    for entry in header.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(client) {
                    break;
                }
            }
            // A malformed entry ends what can be believed.
            Err(_) => break,
        }
    }
    client
}

/// The bucket key: an IPv6 client usually owns a whole /64, so that is one client.
fn bucket_key(ip: IpAddr) -> u128 {
    match canonical(ip) {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => (u128::from(v6) >> 64 << 64) | 1,
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per client: `burst` requests at once, refilled at `rate` per second.
/// Written here rather than taken from `governor`: a few dozen lines against a dependency tree
/// (dashmap, quanta, futures, parking_lot, rand) for one keyed limiter.
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<u128, Bucket>>,
}

/// Clients tracked at most; past this, full buckets are forgotten, and if that is not enough
/// the oldest state goes (a flood of addresses then meets fresh buckets, never unbounded memory).
const MAX_CLIENTS: usize = 100_000;

impl RateLimiter {
    pub(crate) fn new(rate: u32, burst: u32) -> Option<Self> {
        (rate > 0).then(|| Self { rate: rate as f64, burst: burst.max(1) as f64, buckets: Mutex::new(HashMap::new()) })
    }

    /// `Err(seconds)`: refused, with the time until one request would be taken.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() >= MAX_CLIENTS {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_CLIENTS {
                buckets.clear();
            }
        }
        let b = buckets.entry(bucket_key(ip)).or_insert(Bucket { tokens: self.burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies

pin_project_lite::pin_project! {
    /// A request body that fails once its deadline has passed: the socket's timeouts cover the
    /// request head and idle keep-alive only, since hyper reads the body while the handler
    /// runs, when a quiet socket is no sign of a slow client. Without this a client that sends
    /// a head and then one body byte every few seconds would hold its connection for ever
    /// (a slow-body variant of slowloris).
    struct Deadline {
        #[pin]
        inner: axum::body::Body,
        #[pin]
        sleep: tokio::time::Sleep,
        expired: Arc<std::sync::atomic::AtomicBool>,
    }
}

impl http_body::Body for Deadline {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.sleep.poll(cx).is_ready() {
            this.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err("the request body was not received in time".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: give every request body [`Limits::body_read_timeout`] to arrive; a body that
/// does not is answered `408 Request Timeout` (RFC 9110 §15.5.9) with the connection closed,
/// whatever the handler made of the failed read.
pub(crate) async fn body_deadline(
    axum::extract::State(timeout): axum::extract::State<Option<Duration>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let Some(timeout) = timeout else { return next.run(req).await };
    let expired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (parts, inner) = req.into_parts();
    let body = Deadline { inner, sleep: tokio::time::sleep(timeout), expired: expired.clone() };
    let response = next.run(axum::extract::Request::from_parts(parts, axum::body::Body::new(body))).await;
    if !expired.load(Ordering::Acquire) {
        return response;
    }
    HTTP.body_timed_out();
    let body = cloudsign_csc::error::ErrorBody {
        error: cloudsign_csc::ErrorCode::InvalidRequest.as_str(),
        error_description: format!("The request body was not received within {} s", timeout.as_secs()),
    };
    let mut response = (axum::http::StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
    response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

/// The endpoints anyone may call without a token or client authentication (and that cost the
/// service a signature, a database read or a validation): the rate limit applies to these.
pub(crate) fn rate_limited_path(path: &str) -> bool {
    matches!(path, "/tsa" | "/ocsp" | "/crl" | "/arl")
        || path.starts_with("/ocsp/")
        || path.starts_with("/validation/")
        || path.starts_with("/oauth2/")
        || path.starts_with("/.well-known/")
        // The device protocol's unauthenticated steps (pairing codes, challenges, polls, answers:
        // each refusal is audited) and the phone page (docs/device-protocol.md, "Pairing").
        || path == "/device"
        || path.starts_with("/device/")
}

/// Middleware: refuse a client over its rate with 429 and `Retry-After` (RFC 6585 §4, RFC 9110
/// §10.2.3), in the CSC error body the login throttle uses.
pub(crate) async fn rate_limit(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if let Some(limiter) = &state.rate_limiter
        && rate_limited_path(req.uri().path())
        && let Some(peer) = req.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
    {
        let xff = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let ip = client_ip(peer, xff, &state.trusted_proxies);
        if let Err(seconds) = limiter.check(ip) {
            HTTP.rate_limited();
            let body = cloudsign_csc::error::ErrorBody {
                error: cloudsign_csc::ErrorCode::AccessDenied.as_str(),
                error_description: format!("Too many requests; try again in {seconds} s"),
            };
            let mut response = (axum::http::StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
            return response;
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let trusted = vec![IpNet::parse("10.0.0.0/8").unwrap(), IpNet::parse("192.0.2.1").unwrap()];
        // Not a proxy: its header is ignored.
        assert_eq!(client_ip(ip("198.51.100.7"), Some("203.0.113.9"), &trusted), ip("198.51.100.7"));
        // A proxy: the nearest untrusted entry, whatever the client put further left.
        assert_eq!(client_ip(ip("10.1.2.3"), Some("1.1.1.1, 203.0.113.9, 192.0.2.1"), &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("10.1.2.3"), None, &trusted), ip("10.1.2.3"));
        assert_eq!(client_ip(ip("::ffff:10.1.2.3"), Some("203.0.113.9"), &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("10.1.2.3"), Some("garbage, 203.0.113.9"), &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("10.1.2.3"), Some("203.0.113.9"), &[]), ip("10.1.2.3"));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(IpNet::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn bucket_refuses_past_the_burst_and_refills() {
        let limiter = RateLimiter::new(10, 3).unwrap();
        let client = ip("203.0.113.9");
        for _ in 0..3 {
            assert!(limiter.check(client).is_ok());
        }
        assert_eq!(limiter.check(client), Err(1));
        assert!(limiter.check(ip("203.0.113.10")).is_ok(), "other clients have their own bucket");
        std::thread::sleep(Duration::from_millis(150));
        assert!(limiter.check(client).is_ok());
        // One /64 is one client.
        let a = RateLimiter::new(1, 1).unwrap();
        assert!(a.check(ip("2001:db8::1")).is_ok());
        assert!(a.check(ip("2001:db8::2")).is_err());
    }
}
