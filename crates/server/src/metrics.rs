//! HTTP metrics and the `/metrics` endpoint (Prometheus text exposition format 0.0.4), served
//! on its own listener (`metrics_listen`) so that it is never reachable from the API's address.

use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use cloudsign_domain::metrics::{Family, Histogram, METRICS, escape, header, render_family};

/// The HTTP layer's metrics (process-wide, like the domain's).
pub(crate) static HTTP: HttpMetrics = HttpMetrics::new();

pub(crate) struct HttpMetrics {
    requests: Family,
    latency: RwLock<Vec<(Box<str>, Box<Histogram>)>>,
    open: AtomicI64,
    accepted: AtomicU64,
    refused: AtomicU64,
    header_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    rate_limited: AtomicU64,
}

impl HttpMetrics {
    const fn new() -> Self {
        Self {
            requests: Family::new(),
            latency: RwLock::new(Vec::new()),
            open: AtomicI64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
            body_timeouts: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }

    /// One request on `route` (the matched route pattern, a bounded set) with its status.
    pub(crate) fn request(&self, route: &str, status: u16, took: Duration) {
        self.requests.add(&format!("{route}\u{1f}{status}"), 1);
        if let Ok(table) = self.latency.read()
            && let Some((_, h)) = table.iter().find(|(r, _)| &**r == route)
        {
            h.observe(took);
            return;
        }
        if let Ok(mut table) = self.latency.write() {
            match table.iter().find(|(r, _)| &**r == route) {
                Some((_, h)) => h.observe(took),
                None => {
                    let h = Box::new(Histogram::new());
                    h.observe(took);
                    table.push((route.into(), h));
                }
            }
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_timed_out(&self, idle: bool) {
        if idle { &self.idle_timeouts } else { &self.header_timeouts }.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn body_timed_out(&self) {
        self.body_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        header(out, "cloudsign_http_requests_total", "counter", "HTTP requests, by route and status.");
        render_family(out, "cloudsign_http_requests_total", &["route", "status"], &self.requests);
        header(out, "cloudsign_http_request_duration_seconds", "histogram", "Time to the response head, by route.");
        if let Ok(table) = self.latency.read() {
            let mut rows: Vec<_> = table.iter().collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            for (route, h) in rows {
                h.render(out, "cloudsign_http_request_duration_seconds", &format!("route=\"{}\"", escape(route)));
            }
        }
        header(out, "cloudsign_http_open_connections", "gauge", "Connections open now.");
        let _ = writeln!(out, "cloudsign_http_open_connections {}", self.open.load(Ordering::Relaxed));
        header(out, "cloudsign_http_connections_total", "counter", "Connections accepted.");
        let _ = writeln!(out, "cloudsign_http_connections_total {}", n(&self.accepted));
        header(out, "cloudsign_http_connections_refused_total", "counter", "Connections closed at once: max_connections reached.");
        let _ = writeln!(out, "cloudsign_http_connections_refused_total {}", n(&self.refused));
        header(out, "cloudsign_http_connection_timeouts_total", "counter", "Connections closed by a timeout, by kind.");
        let _ = writeln!(out, "cloudsign_http_connection_timeouts_total{{kind=\"header\"}} {}", n(&self.header_timeouts));
        let _ = writeln!(out, "cloudsign_http_connection_timeouts_total{{kind=\"idle\"}} {}", n(&self.idle_timeouts));
        let _ = writeln!(out, "cloudsign_http_connection_timeouts_total{{kind=\"body\"}} {}", n(&self.body_timeouts));
        header(out, "cloudsign_http_rate_limited_total", "counter", "Requests refused with 429 by the per-client rate limit.");
        let _ = writeln!(out, "cloudsign_http_rate_limited_total {}", n(&self.rate_limited));
    }
}

/// The metrics listener's router: `GET /metrics` only.
pub(crate) fn router() -> Router {
    Router::new().route("/metrics", axum::routing::get(scrape))
}

async fn scrape() -> Response {
    let mut out = String::with_capacity(8 * 1024);
    HTTP.render(&mut out);
    METRICS.render(&mut out);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
