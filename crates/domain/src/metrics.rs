//! Service metrics: counters the domain bumps where events happen, and the primitives (labelled
//! counters, histograms) the HTTP layer uses for its own, rendered in the Prometheus text
//! exposition format (version 0.0.4) for `/metrics`.
//!
//! A handful of atomics, not a metrics library: recording costs one relaxed increment (plus a
//! read-locked lookup for labelled families), so the counters are always on and the scrape
//! endpoint alone is optional. They are process-wide ([`METRICS`]), as a scrape target is.

use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use cloudsign_keys::KeyBackendKind;
use cloudsign_store::Outcome;

/// The domain's metrics.
pub static METRICS: Metrics = Metrics::new();

/// A counter per label value (`values` joined by `\u{1f}` for several labels). Label values
/// come from code (event names, backend kinds, bounded reason classes), never from requests.
pub struct Family {
    cells: RwLock<Vec<(Box<str>, AtomicU64)>>,
}

impl Family {
    /// Empty.
    pub const fn new() -> Self {
        Self { cells: RwLock::new(Vec::new()) }
    }

    /// Add `n` to the counter of `key`.
    pub fn add(&self, key: &str, n: u64) {
        if let Ok(cells) = self.cells.read()
            && let Some((_, c)) = cells.iter().find(|(k, _)| &**k == key)
        {
            c.fetch_add(n, Ordering::Relaxed);
            return;
        }
        if let Ok(mut cells) = self.cells.write() {
            match cells.iter().find(|(k, _)| &**k == key) {
                Some((_, c)) => {
                    c.fetch_add(n, Ordering::Relaxed);
                }
                None => cells.push((key.into(), AtomicU64::new(n))),
            }
        }
    }

    /// `(key, value)` pairs, sorted by key.
    pub fn values(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = match self.cells.read() {
            Ok(cells) => cells.iter().map(|(k, c)| (k.to_string(), c.load(Ordering::Relaxed))).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }
}

impl Default for Family {
    fn default() -> Self {
        Self::new()
    }
}

/// Latency bucket bounds in seconds: signHash takes about a millisecond, a validation or an
/// HSM signature tens to hundreds.
pub const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A histogram of durations (cumulative buckets are computed at render time).
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Empty.
    pub const fn new() -> Self {
        Self { buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len() + 1], sum_micros: AtomicU64::new(0) }
    }

    /// Record one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|b| s <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Render as `name_bucket`, `name_sum`, `name_count` with `labels` (`k="v"` list, may be empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut total = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {total}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {total}");
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value escaped for the text format.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A family with one or more labels as text-format samples.
pub fn render_family(out: &mut String, name: &str, labels: &[&str], family: &Family) {
    for (key, value) in family.values() {
        let pairs: Vec<String> = labels.iter().zip(key.split('\u{1f}')).map(|(l, v)| format!("{l}=\"{}\"", escape(v))).collect();
        let _ = writeln!(out, "{name}{{{}}} {value}", pairs.join(","));
    }
}

/// What the domain counts.
pub struct Metrics {
    signatures: Family,
    audit: Family,
    refusals: Family,
    sads_issued: AtomicU64,
    sad_signatures_spent: AtomicU64,
    store_errors: Family,
    hsm_errors: AtomicU64,
    /// -1: no HSM configured or not checked yet; 0: down; 1: up.
    hsm_up: AtomicI64,
}

impl Metrics {
    const fn new() -> Self {
        Self {
            signatures: Family::new(),
            audit: Family::new(),
            refusals: Family::new(),
            sads_issued: AtomicU64::new(0),
            sad_signatures_spent: AtomicU64::new(0),
            store_errors: Family::new(),
            hsm_errors: AtomicU64::new(0),
            hsm_up: AtomicI64::new(-1),
        }
    }

    /// `n` signatures made with a key of `backend`.
    pub fn signed(&self, backend: KeyBackendKind, n: usize) {
        self.signatures.add(backend.as_str(), n as u64);
    }

    /// [`signed`](Self::signed) for a batch of signatures, passed on.
    pub fn signed_then<T>(&self, backend: KeyBackendKind, signatures: Vec<T>) -> Vec<T> {
        self.signed(backend, signatures.len());
        signatures
    }

    /// `n` signatures paid for from a SAD (or a credential token).
    pub fn sad_spent(&self, n: usize) {
        self.sad_signatures_spent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// An audit record written: every event with its outcome; refusals by a bounded reason;
    /// issued SADs (`credentials/authorize`, and OAuth tokens bound to a credential).
    pub fn audited(&self, event: &str, outcome: Outcome, credential: bool, detail: &serde_json::Value) {
        self.audit.add(&format!("{event}\u{1f}{}", outcome.as_str()), 1);
        match outcome {
            Outcome::Ok
                if event == "credentials.authorize" || event == "credentials.authorizeCheck" || (event == "oauth2.token" && credential) =>
            {
                self.sads_issued.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Refused => {
                let reason = reason_class(detail.get("reason").and_then(|r| r.as_str()).unwrap_or_default());
                self.refusals.add(&format!("{event}\u{1f}{reason}"), 1);
            }
            _ => {}
        }
    }

    /// A database error (`unavailable`: unreachable or timed out; `db`: anything else).
    pub fn store_error(&self, e: &cloudsign_store::StoreError) {
        match e {
            cloudsign_store::StoreError::Conflict => {}
            cloudsign_store::StoreError::Unavailable(_) => self.store_errors.add("unavailable", 1),
            cloudsign_store::StoreError::Db(_) => self.store_errors.add("db", 1),
        }
    }

    /// A key backend could not be reached.
    pub fn hsm_error(&self) {
        self.hsm_errors.fetch_add(1, Ordering::Relaxed);
        self.hsm_up.store(0, Ordering::Relaxed);
    }

    /// [`hsm_error`](Self::hsm_error), passing the error on.
    pub fn hsm_error_then<E>(&self, e: E) -> E {
        self.hsm_error();
        e
    }

    /// The result of a health check of the external key backends (`None`: none configured).
    pub fn hsm_checked(&self, up: Option<bool>) {
        self.hsm_up.store(up.map_or(-1, i64::from), Ordering::Relaxed);
    }

    /// Append the domain's metrics in the text format.
    pub fn render(&self, out: &mut String) {
        header(out, "cloudsign_signatures_total", "counter", "Signatures made, by key backend.");
        render_family(out, "cloudsign_signatures_total", &["backend"], &self.signatures);
        header(out, "cloudsign_audit_events_total", "counter", "Audit records written, by event and outcome.");
        render_family(out, "cloudsign_audit_events_total", &["event", "outcome"], &self.audit);
        header(out, "cloudsign_refusals_total", "counter", "Refused operations, by event and reason.");
        render_family(out, "cloudsign_refusals_total", &["event", "reason"], &self.refusals);
        header(out, "cloudsign_sads_issued_total", "counter", "SADs and credential tokens issued.");
        let _ = writeln!(out, "cloudsign_sads_issued_total {}", self.sads_issued.load(Ordering::Relaxed));
        header(out, "cloudsign_sad_signatures_spent_total", "counter", "Signatures consumed from SADs and credential tokens.");
        let _ = writeln!(out, "cloudsign_sad_signatures_spent_total {}", self.sad_signatures_spent.load(Ordering::Relaxed));
        header(out, "cloudsign_store_errors_total", "counter", "Database errors, by kind.");
        render_family(out, "cloudsign_store_errors_total", &["kind"], &self.store_errors);
        header(out, "cloudsign_hsm_errors_total", "counter", "Times an external key backend (HSM) could not be reached.");
        let _ = writeln!(out, "cloudsign_hsm_errors_total {}", self.hsm_errors.load(Ordering::Relaxed));
        let up = self.hsm_up.load(Ordering::Relaxed);
        if up >= 0 {
            header(out, "cloudsign_hsm_up", "gauge", "1 when the external key backends answered their last check.");
            let _ = writeln!(out, "cloudsign_hsm_up {up}");
        }
    }
}

/// A refusal's reason as one of a few classes: audit reasons carry free text (some of it from
/// the request), which must not become label values.
fn reason_class(reason: &str) -> &'static str {
    const CLASSES: &[(&str, &str)] = &[
        ("wrong PIN", "wrong_pin"),
        ("The PIN is invalid", "wrong_pin"),
        ("wrong OTP", "wrong_otp"),
        ("The OTP is invalid", "wrong_otp"),
        ("PIN locked", "locked"),
        ("locked", "locked"),
        ("throttled", "throttled"),
        ("Too many failed logins", "throttled"),
        ("An error occurred during authentication", "authentication_failed"),
        ("The access token", "invalid_token"),
        ("Invalid parameter SAD", "invalid_sad"),
        ("SAD expired", "invalid_sad"),
        ("denied", "denied"),
    ];
    CLASSES.iter().find(|(prefix, _)| reason.starts_with(prefix)).map_or(if reason.is_empty() { "none" } else { "other" }, |(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::new();
        m.signed(KeyBackendKind::Software, 3);
        m.audited("credentials.authorize", Outcome::Ok, true, &serde_json::json!({}));
        m.audited("credentials.authorize", Outcome::Refused, true, &serde_json::json!({"reason": "wrong PIN"}));
        m.audited("signatures.signHash", Outcome::Refused, true, &serde_json::json!({"reason": "Signing certificate 'x\"' is expired."}));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("cloudsign_signatures_total{backend=\"software\"} 3\n"), "{out}");
        assert!(out.contains("cloudsign_sads_issued_total 1\n"), "{out}");
        assert!(out.contains("cloudsign_refusals_total{event=\"credentials.authorize\",reason=\"wrong_pin\"} 1\n"), "{out}");
        assert!(out.contains("cloudsign_refusals_total{event=\"signatures.signHash\",reason=\"other\"} 1\n"), "{out}");
        assert!(!out.contains("cloudsign_hsm_up"), "no HSM, no gauge");
        let h = Histogram::new();
        h.observe(std::time::Duration::from_millis(3));
        let mut out = String::new();
        h.render(&mut out, "x", "route=\"/a\"");
        assert!(out.contains("x_bucket{route=\"/a\",le=\"0.0025\"} 0\nx_bucket{route=\"/a\",le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_count{route=\"/a\"} 1\n"), "{out}");
    }
}
