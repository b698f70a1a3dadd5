//! The S3-compatible backend: path-style requests (`{endpoint}/{bucket}/{key}`, so any
//! S3-compatible server works without DNS per bucket) signed with Signature Version 4
//! ([`crate::sigv4`]) over the workspace's `reqwest`.
//!
//! Calls: PutObject, GetObject, HeadObject, DeleteObject, ListObjectsV2, CreateBucket. The
//! payload's SHA-256 is signed (`x-amz-content-sha256`) so the server refuses a body changed in
//! transit, and recorded as the user metadata `x-amz-meta-sha256` so reads are checked.
//! A PUT replaces an object atomically (S3 never exposes a partial object), so a failed upload
//! leaves the previous document under the key. No retries here: callers retry `Unavailable`.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use zeroize::Zeroizing;

use crate::sigv4::{self, EMPTY_SHA256, Signer};
use crate::{Document, DocumentType, Listed, Result, StorageError, Stored, sha256, xml};

/// A secret kept out of `Debug`, logs and errors, and wiped from memory when dropped.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(s: String) -> SecretString {
        SecretString(Zeroizing::new(s))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct S3Config {
    /// `https://s3.eu-central-1.amazonaws.com`, `http://127.0.0.1:9000`, ...
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub connect_timeout: Duration,
    /// Bound on a whole request, body included.
    pub request_timeout: Duration,
    /// Allow `http://` to a host other than the loopback (documents and signatures then cross
    /// the network in clear).
    pub allow_http: bool,
}

impl S3Config {
    pub fn new(endpoint: &str, region: &str, bucket: &str, access_key_id: &str, secret: SecretString) -> S3Config {
        S3Config {
            endpoint: endpoint.to_string(),
            region: region.to_string(),
            bucket: bucket.to_string(),
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret,
            connect_timeout: crate::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: crate::DEFAULT_REQUEST_TIMEOUT,
            allow_http: false,
        }
    }
}

pub struct S3Store {
    config: S3Config,
    base: Url,
    host: String,
    http: reqwest::Client,
}

/// S3 bucket names (S3 User Guide, "Bucket naming rules"): 3-63 of `a-z 0-9 . -`, starting and
/// ending with a letter or digit.
fn validate_bucket(b: &str) -> Result<()> {
    let ok = (3..=63).contains(&b.len())
        && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric();
    if ok { Ok(()) } else { Err(StorageError::Invalid(format!("invalid S3 bucket name {b:?}"))) }
}

fn is_loopback(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

impl S3Store {
    pub fn new(config: S3Config) -> Result<S3Store> {
        validate_bucket(&config.bucket)?;
        if config.region.is_empty() || !config.region.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
            return Err(StorageError::Invalid(format!("invalid S3 region {:?}", config.region)));
        }
        if config.access_key_id.is_empty() || config.secret_access_key.expose().is_empty() {
            return Err(StorageError::Invalid("S3 access key id and secret access key are required".into()));
        }
        let mut base =
            Url::parse(&config.endpoint).map_err(|e| StorageError::Invalid(format!("invalid S3 endpoint {:?}: {e}", config.endpoint)))?;
        let host_only = base.host_str().unwrap_or("").to_string();
        match base.scheme() {
            "https" => {}
            "http" if config.allow_http || is_loopback(&host_only) => {}
            "http" => {
                return Err(StorageError::Invalid(format!(
                    "S3 endpoint {:?} is plain http to a non-loopback host (set allow_http to accept)",
                    config.endpoint
                )));
            }
            s => return Err(StorageError::Invalid(format!("S3 endpoint scheme {s:?} is not http(s)"))),
        }
        if host_only.is_empty() || !base.username().is_empty() || base.password().is_some() || base.query().is_some() {
            return Err(StorageError::Invalid(format!(
                "S3 endpoint {:?} must be scheme://host[:port][/path] without credentials or query",
                config.endpoint
            )));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let host = match base.port() {
            Some(p) => format!("{host_only}:{p}"),
            None => host_only,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirect would be re-sent unsigned or to another host: treat as an error.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StorageError::Invalid(format!("cannot build the S3 HTTP client: {e}")))?;
        Ok(S3Store { config, base, host, http })
    }

    /// `endpoint bucket` for diagnostics (never the credentials).
    pub fn describe(&self) -> String {
        format!("{} bucket {}", self.config.endpoint, self.config.bucket)
    }

    /// The raw path of an object (`key` already validated: its characters need no escaping in
    /// a URL, and `uri_encode` leaves them unchanged in the canonical request).
    fn object_path(&self, key: Option<&str>) -> String {
        let mut p = format!("{}{}", self.base.path(), self.config.bucket);
        if let Some(k) = key {
            p.push('/');
            p.push_str(k);
        }
        p
    }

    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<reqwest::Response> {
        let path = self.object_path(key);
        let mut url = self.base.clone();
        url.set_path(&path);
        if !query.is_empty() {
            url.set_query(Some(&sigv4::canonical_query(query)));
        }
        let payload_sha = match body {
            Some(b) => sigv4::hex_sha256(b),
            None => EMPTY_SHA256.to_string(),
        };
        let date = sigv4::amz_date(time::OffsetDateTime::now_utc());
        let mut headers: Vec<(&str, &str)> = vec![("host", &self.host), ("x-amz-content-sha256", &payload_sha), ("x-amz-date", &date)];
        headers.extend_from_slice(extra);
        let signer = Signer {
            access_key_id: &self.config.access_key_id,
            secret_access_key: self.config.secret_access_key.expose(),
            region: &self.config.region,
            service: "s3",
        };
        let auth = sigv4::authorization(
            &signer,
            &sigv4::Request { method: method.as_str(), path: &path, query, headers: &headers, payload_sha256: &payload_sha },
            &date,
        );
        let mut rb = self.http.request(method.clone(), url);
        for (k, v) in &headers {
            rb = rb.header(*k, *v);
        }
        rb = rb.header("authorization", auth);
        if let Some(b) = body {
            rb = rb.body(b.to_vec());
        }
        rb.send().await.map_err(|e| {
            // reqwest's error text names the URL (endpoint, bucket, key: no secret) and the cause.
            StorageError::Unavailable(format!("{method} to {} failed: {}", self.describe(), error_chain(&e)))
        })
    }

    /// Map a non-success response to an error.
    async fn failure(&self, key: Option<&str>, resp: reqwest::Response) -> StorageError {
        let status = resp.status();
        // Error bodies are small; read a bounded amount (a HEAD has none).
        let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let code = xml::text(&text, "Code").unwrap_or_default();
        let message = xml::text(&text, "Message").unwrap_or_default();
        let detail = if code.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status} {code}: {message}") };
        match status {
            StatusCode::NOT_FOUND if code == "NoSuchBucket" => {
                StorageError::Invalid(format!("S3 bucket {:?} does not exist", self.config.bucket))
            }
            StatusCode::NOT_FOUND => StorageError::NotFound { key: key.unwrap_or("").to_string() },
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => StorageError::Denied(detail),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT => {
                StorageError::Unavailable(detail)
            }
            _ => StorageError::Invalid(format!("S3 refused the request: {detail}")),
        }
    }

    pub async fn create_bucket(&self) -> Result<()> {
        // CreateBucket: us-east-1 takes no body; other regions name themselves.
        let body = (self.config.region != "us-east-1").then(|| {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.config.region
            )
        });
        let resp = self.send(Method::PUT, None, &[], &[], body.as_deref().map(str::as_bytes)).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        if resp.status() == StatusCode::CONFLICT {
            let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
            if xml::text(&String::from_utf8_lossy(&body), "Code").as_deref() == Some("BucketAlreadyOwnedByYou") {
                return Ok(());
            }
            return Err(StorageError::Invalid(format!("S3 bucket {:?} exists and is not ours", self.config.bucket)));
        }
        Err(self.failure(None, resp).await)
    }

    pub async fn put(&self, key: &str, bytes: &[u8], ty: DocumentType) -> Result<Stored> {
        let sha = sha256(bytes);
        let sha_hex = hex::encode(sha);
        let extra = [("content-type", ty.mime()), ("x-amz-meta-sha256", sha_hex.as_str())];
        let resp = self.send(Method::PUT, Some(key), &[], &extra, Some(bytes)).await?;
        if !resp.status().is_success() {
            return Err(self.failure(Some(key), resp).await);
        }
        // Drain the (empty) body so the connection completes cleanly; the PUT is acknowledged.
        let _ = read_limited(resp, 64 * 1024).await;
        Ok(Stored { key: key.to_string(), size: bytes.len() as u64, sha256: sha })
    }

    fn recorded_sha(key: &str, headers: &reqwest::header::HeaderMap) -> Result<Option<[u8; 32]>> {
        let Some(v) = headers.get("x-amz-meta-sha256") else { return Ok(None) };
        let mut sha = [0u8; 32];
        let s = v.to_str().map_err(|_| StorageError::Integrity { key: key.to_string() })?;
        hex::decode_to_slice(s.trim(), &mut sha).map_err(|_| StorageError::Integrity { key: key.to_string() })?;
        Ok(Some(sha))
    }

    pub async fn get(&self, key: &str, limit: u64) -> Result<Document> {
        let resp = self.send(Method::GET, Some(key), &[], &[], None).await?;
        if !resp.status().is_success() {
            return Err(self.failure(Some(key), resp).await);
        }
        let recorded = Self::recorded_sha(key, resp.headers())?;
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(StorageError::TooLarge { limit });
        }
        let bytes = read_limited(resp, limit).await?;
        let sha = sha256(&bytes);
        // An object another writer stored has no recorded digest: its hash is what was read.
        if recorded.is_some_and(|r| r != sha) {
            return Err(StorageError::Integrity { key: key.to_string() });
        }
        Ok(Document { stored: Stored { key: key.to_string(), size: bytes.len() as u64, sha256: sha }, bytes })
    }

    pub async fn head(&self, key: &str, limit: u64) -> Result<Stored> {
        let resp = self.send(Method::HEAD, Some(key), &[], &[], None).await?;
        if !resp.status().is_success() {
            return Err(self.failure(Some(key), resp).await);
        }
        let size = resp
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| StorageError::Invalid("S3 HEAD answered without Content-Length".into()))?;
        match Self::recorded_sha(key, resp.headers())? {
            Some(sha256) => Ok(Stored { key: key.to_string(), size, sha256 }),
            None => Ok(self.get(key, limit).await?.stored),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        let resp = self.send(Method::DELETE, Some(key), &[], &[], None).await?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(self.failure(Some(key), resp).await)
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        // Bounded: 10 000 pages of up to 1000 keys each.
        for _ in 0..10_000 {
            let mut query: Vec<(&str, &str)> = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(t) = &token {
                query.push(("continuation-token", t));
            }
            let resp = self.send(Method::GET, None, &query, &[], None).await?;
            if !resp.status().is_success() {
                return Err(self.failure(None, resp).await);
            }
            let body = read_limited(resp, 16 * 1024 * 1024).await?;
            let text = String::from_utf8(body).map_err(|_| StorageError::Invalid("S3 list answer is not UTF-8".into()))?;
            for contents in xml::elements(&text, "Contents") {
                let key = xml::text(contents, "Key").ok_or_else(|| StorageError::Invalid("S3 list entry without Key".into()))?;
                let size = xml::text(contents, "Size").and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0);
                // Objects whose keys this API cannot address (other writers) are not ours.
                if crate::validate_key(&key).is_ok() && key.starts_with(prefix) {
                    out.push(Listed { key, size });
                }
            }
            if xml::text(&text, "IsTruncated").as_deref() != Some("true") {
                return Ok(out);
            }
            token = xml::text(&text, "NextContinuationToken");
            if token.is_none() {
                return Err(StorageError::Invalid("S3 list truncated without NextContinuationToken".into()));
            }
        }
        Err(StorageError::Invalid("S3 list did not end".into()))
    }
}

/// Read at most `limit` bytes of a body; `TooLarge` beyond it.
async fn read_limited(mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) =
        resp.chunk().await.map_err(|e| StorageError::Unavailable(format!("reading the S3 answer failed: {}", error_chain(&e))))?
    {
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(StorageError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
