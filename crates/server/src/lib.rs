//! The HTTP layer: decode, authenticate the bearer, call the domain, encode. Each CSC API
//! version is a thin adapter module over the same [`Service`] calls.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod approval;
mod asynchronous;
mod device;
mod device_page;
mod error;
mod extract;
mod limits;
mod metrics;
mod oauth;
mod ondemand;
mod openapi;
mod shared;
mod v1;
mod v2;
mod validation;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use cloudsign_domain::Service;

pub use error::ApiError;
pub use limits::{IpNet, Limits};

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// TLS certificate chain (PEM) and private key (PEM); plain HTTP when absent.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Timeouts, the connection cap and the rate limits.
    pub limits: Limits,
    /// Which requests the access log records.
    pub log_requests: LogRequests,
    /// Where `/metrics` is served (never on the API's address); `None`: nowhere.
    pub metrics_listen: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { body_limit: 1024 * 1024, tls: None, limits: Limits::default(), log_requests: LogRequests::Errors, metrics_listen: None }
    }
}

/// Which requests reach the access log (target `cloudsign::http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRequests {
    /// None.
    Off,
    /// Responses with a status of 400 or more (the default: a successful request costs no log write).
    Errors,
    /// Every request.
    All,
}

impl LogRequests {
    /// `off`, `errors` or `all`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(Self::Off),
            "errors" => Some(Self::Errors),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub service: Arc<Service>,
    /// The public base URL: OAuth issuer and `info.oauth2`.
    pub base_url: Arc<str>,
    /// Cookies carry `Secure` (the service is reached over https).
    pub secure_cookies: bool,
    /// The per-client limit of the unauthenticated endpoints; `None`: off.
    pub rate_limiter: Option<Arc<limits::RateLimiter>>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpNet]>,
    pub log_requests: LogRequests,
    /// Per-route request metrics are recorded (a metrics listener is configured).
    pub metrics: bool,
}

/// The application router. `base_url` is the address clients use (the configured public
/// URL, or the bound address): the OAuth issuer and the base of its endpoints.
pub fn router(service: Arc<Service>, cfg: &ServerConfig, base_url: &str) -> Router {
    // Every node runs asynchronous jobs (CSC 2.2 operationMode "A"), whether or not it is
    // asked for one: a job accepted on another node may be waiting (idempotent).
    service.start_async_worker();
    let base_url = base_url.trim_end_matches('/');
    let state = AppState {
        service,
        secure_cookies: base_url.starts_with("https://"),
        base_url: base_url.into(),
        rate_limiter: limits::RateLimiter::new(cfg.limits.rate_limit, cfg.limits.rate_limit_burst).map(Arc::new),
        trusted_proxies: cfg.limits.trusted_proxies.clone().into(),
        log_requests: cfg.log_requests,
        metrics: cfg.metrics_listen.is_some(),
    };
    Router::new()
        .merge(oauth::routes())
        .merge(approval::page_routes())
        .merge(device::routes())
        .merge(device_page::page_routes())
        .route("/tsa", axum::routing::post(tsa))
        .route("/crl", axum::routing::get(crl))
        .route("/arl", axum::routing::get(arl))
        .route("/validation/v1/verify", axum::routing::post(validation::verify))
        .route("/validation/v1/openapi.json", axum::routing::get(validation::openapi))
        .route("/openapi.json", axum::routing::get(openapi::openapi))
        .route("/ocsp", axum::routing::post(ocsp_post))
        .route("/ocsp/{*request}", axum::routing::get(ocsp_get))
        .nest("/csc/v1", v1::routes())
        .nest("/csc/v2", v2::routes().merge(asynchronous::routes()).merge(ondemand::routes()).merge(approval::routes()))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.body_limit))
        .layer(middleware::from_fn_with_state(cfg.limits.body_read_timeout, limits::body_deadline))
        .layer(middleware::from_fn_with_state(state.clone(), limits::rate_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// RFC 3161 §3.4 time-stamp protocol over HTTP: `application/timestamp-query` in,
/// `application/timestamp-reply` out. Refusals are `rejection` responses, not HTTP errors.
async fn tsa(
    axum::extract::State(state): axum::extract::State<AppState>,
    extract::Caller(ctx): extract::Caller,
    body: axum::body::Bytes,
) -> Response {
    use axum::response::IntoResponse as _;
    match state.service.tsa_respond(&ctx, &body).await {
        Ok(reply) => ([(axum::http::header::CONTENT_TYPE, "application/timestamp-reply")], reply).into_response(),
        Err(e) => error::v2(e).into_response(),
    }
}

/// The CRL (RFC 5280 §5, DER), as named by the certificates' CRL distribution point.
async fn crl(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    use axum::response::IntoResponse as _;
    match state.service.crl().await {
        Ok(der) => ([(axum::http::header::CONTENT_TYPE, "application/pkix-crl")], der).into_response(),
        Err(e) => error::v2(e).into_response(),
    }
}

/// The root's CRL (ARL), as named by the issuing CA's certificate.
async fn arl(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    use axum::response::IntoResponse as _;
    match state.service.arl() {
        Ok(der) => ([(axum::http::header::CONTENT_TYPE, "application/pkix-crl")], der).into_response(),
        Err(e) => error::v2(e).into_response(),
    }
}

/// RFC 6960 Appendix A.1: OCSP over HTTP POST (`application/ocsp-request`).
async fn ocsp_post(axum::extract::State(state): axum::extract::State<AppState>, body: axum::body::Bytes) -> Response {
    ocsp_answer(&state, &body).await
}

/// RFC 6960 Appendix A.1: OCSP over HTTP GET, the request base64 (then URL-encoded) in the path.
async fn ocsp_get(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(request): axum::extract::Path<String>,
) -> Response {
    // axum has already percent-decoded the path; base64 may use either alphabet.
    let der = cloudsign_csc::b64::decode_lenient(&request).unwrap_or_default();
    ocsp_answer(&state, &der).await
}

async fn ocsp_answer(state: &AppState, der: &[u8]) -> Response {
    use axum::response::IntoResponse as _;
    match state.service.ocsp(der).await {
        Ok(reply) => ([(axum::http::header::CONTENT_TYPE, "application/ocsp-response")], reply).into_response(),
        Err(e) => error::v2(e).into_response(),
    }
}

/// `Cache-Control: no-store` on every response; the access log (method, path, status,
/// duration; never headers or bodies: they carry passwords, PINs, tokens and SADs) as
/// `log_requests` says; the request metrics when a metrics listener is configured. With the
/// defaults a successful request costs neither a clock read nor a log write.
async fn observe(axum::extract::State(state): axum::extract::State<AppState>, req: Request, next: Next) -> Response {
    let timed = state.metrics || state.log_requests != LogRequests::Off;
    let started = timed.then(Instant::now);
    // Cloning these shares their bytes; the path is only formatted when a line is written.
    let method = timed.then(|| req.method().clone());
    let uri = (state.log_requests != LogRequests::Off).then(|| req.uri().clone());
    let route = state.metrics.then(|| req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_owned()));
    let mut response = next.run(req).await;
    // Responses carry tokens and SADs: never cached (RFC 6749 §5.1).
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    if let Some(started) = started {
        let took = started.elapsed();
        let status = response.status().as_u16();
        if let Some(route) = route {
            metrics::HTTP.request(route.as_deref().unwrap_or("unmatched"), status, took);
        }
        if let (Some(uri), Some(method)) = (uri, method)
            && (state.log_requests == LogRequests::All || status >= 400)
        {
            tracing::info!(target: "cloudsign::http", %method, path = %uri.path(), status, micros = took.as_micros() as u64);
        }
    }
    response
}

/// A bound, not yet serving, server: the address is known (port 0 resolves here) before
/// requests are taken, so the caller can print it.
pub struct Bound {
    listener: std::net::TcpListener,
    /// The address actually bound.
    pub addr: SocketAddr,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    limits: Limits,
    /// The metrics listener, when configured.
    metrics: Option<std::net::TcpListener>,
    /// Its address.
    pub metrics_addr: Option<SocketAddr>,
    /// SIGINT/SIGTERM, listened for from `bind` on: a signal sent as soon as the caller has
    /// announced the address (scripts and tests wait for that line) must find the handler.
    shutdown: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl Bound {
    /// The URL clients use.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls.is_some() { "https" } else { "http" }, self.addr)
    }
}

/// Bind the listening socket and load the TLS material.
pub async fn bind(listen: &str, cfg: &ServerConfig) -> anyhow::Result<Bound> {
    let listener = std::net::TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| anyhow::anyhow!("cannot load TLS certificate {} / key {}: {e}", cert.display(), key.display()))?,
        ),
        None => None,
    };
    let metrics = match &cfg.metrics_listen {
        Some(at) => Some(std::net::TcpListener::bind(at).map_err(|e| anyhow::anyhow!("cannot listen on metrics_listen {at}: {e}"))?),
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
    Ok(Bound { listener, addr, tls, limits: cfg.limits.clone(), metrics, metrics_addr, shutdown: shutdown_signal() })
}

/// Serve until SIGINT/SIGTERM, then drain connections for up to 10 seconds.
pub async fn serve(bound: Bound, app: Router) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let metrics_handle = axum_server::Handle::new();
    let (shutdown, metrics_shutdown) = (handle.clone(), metrics_handle.clone());
    let signal = bound.shutdown;
    tokio::spawn(async move {
        signal.await;
        shutdown.graceful_shutdown(Some(Duration::from_secs(10)));
        metrics_shutdown.shutdown();
    });
    if let Some(listener) = bound.metrics {
        let server = axum_server::from_tcp(listener)?.handle(metrics_handle);
        tokio::spawn(async move {
            if let Err(e) = server.serve(metrics::router().into_make_service()).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    let acceptor = limits::LimitAcceptor::new(&bound.limits);
    match bound.tls {
        Some(tls) => {
            axum_server::from_tcp_rustls(bound.listener, tls)?.map(|tls| tls.acceptor(acceptor)).handle(handle).serve(make).await?
        }
        None => axum_server::from_tcp(bound.listener)?.acceptor(acceptor).handle(handle).serve(make).await?,
    }
    Ok(())
}

/// SIGINT or SIGTERM. The handlers are installed now, not when the future is first polled.
fn shutdown_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (term, int) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
        Box::pin(async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
