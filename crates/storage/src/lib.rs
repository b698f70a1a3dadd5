//! Document storage (issue 19, item 4): the documents a user signs stay on the service's side, in a
//! local directory by default or in an S3-compatible object store when configured, and are never
//! sent to a signer's device (a device signs hashes only).
//!
//! Every upload is bounded (`max_bytes`, refused with [`StorageError::TooLarge`] and nothing left
//! behind), checked for type ([`sniff`] against the claimed [`DocumentType`]) and atomic: a failed
//! or interrupted upload never leaves a partial document under its key and never replaces the
//! previous one (local: temporary file, fsync, rename; S3: a single PUT, which S3 applies atomically
//! per object). A put reports success only once the document is durable. A read re-checks the
//! SHA-256 recorded at upload, so a damaged document is reported ([`StorageError::Integrity`]),
//! never handed out as if it were the one signed. (S3: an object with no recorded SHA-256, one
//! written by another client, is read unchecked; `head` reports the recorded digest without
//! reading the object.)
//!
//! The S3 backend is a small client over the workspace's `reqwest` ([`s3`], [`sigv4`]): the
//! `object_store` crate's `aws` feature would add `ring` and a second `reqwest`/`hyper`/`rustls`
//! build, `chrono`, `quick-xml` and `rand` (about 130 crates), for the four object calls used here.

pub mod local;
pub mod s3;
pub mod sigv4;
mod xml;

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

pub use s3::{S3Config, SecretString};

/// Upper bound on a key's length in bytes (S3 allows 1024; file systems limit a name to 255).
pub const MAX_KEY_LEN: usize = 512;
/// Upper bound on one key segment (a file name in the local backend: `NAME_MAX` is 255 on Linux).
pub const MAX_SEGMENT_LEN: usize = 200;
/// The default upload bound: 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no document under key {key:?}")]
    NotFound { key: String },
    #[error("document exceeds the storage limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// A request that can never succeed as made: a bad key, a type mismatch, a bad setting.
    #[error("{0}")]
    Invalid(String),
    /// The store refused our credentials or the operation (HTTP 403): a configuration error.
    #[error("storage access denied: {0}")]
    Denied(String),
    /// The store could not be reached or did not complete the operation; retryable. Nothing was
    /// stored by the failed call (a put either completed or left the previous state).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored document no longer matches the SHA-256 recorded when it was stored.
    #[error("document under key {key:?} does not match its recorded SHA-256")]
    Integrity { key: String },
}

impl StorageError {
    /// Whether trying the same call again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Unavailable(_))
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// What an accepted upload became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub key: String,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// A document read back: its description and its bytes (SHA-256 already checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub stored: Stored,
    pub bytes: Vec<u8>,
}

/// One entry of [`DocumentStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// The document types the service signs: PDF (PAdES), XML (XAdES), anything else (CAdES).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentType {
    Pdf,
    Xml,
    Other,
}

impl DocumentType {
    /// The type a MIME type claims (parameters such as `; charset=` ignored).
    pub fn from_mime(mime: &str) -> Result<DocumentType> {
        let essence = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/pdf" => Ok(DocumentType::Pdf),
            "application/xml" | "text/xml" => Ok(DocumentType::Xml),
            m if m.starts_with("application/") && m.ends_with("+xml") => Ok(DocumentType::Xml),
            "application/octet-stream" => Ok(DocumentType::Other),
            _ => Err(StorageError::Invalid(format!("unsupported document type {mime:?}"))),
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            DocumentType::Pdf => "application/pdf",
            DocumentType::Xml => "application/xml",
            DocumentType::Other => "application/octet-stream",
        }
    }
}

/// How many leading bytes [`sniff`] looks at.
pub const SNIFF_LEN: usize = 1024;

/// The type a document's leading bytes show.
///
/// PDF: the file starts with the header `%PDF-` and a version digit (ISO 32000-1 §7.5.2, ISO
/// 32000-2 §7.5.2; readers that search the first 1024 bytes are lenient, a signer should not be).
/// XML: after an optional UTF-8 byte order mark and white space, an XML declaration `<?xml`, a
/// comment, a processing instruction or a start tag (XML 1.0 §2.1 `document`, §2.8 `prolog`).
/// UTF-16 XML is reported as `Other`: the XAdES path reads UTF-8 only. Everything else is `Other`.
pub fn sniff(bytes: &[u8]) -> DocumentType {
    let head = &bytes[..bytes.len().min(SNIFF_LEN)];
    if head.len() > 5 && head.starts_with(b"%PDF-") && head[5].is_ascii_digit() {
        return DocumentType::Pdf;
    }
    let rest = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = rest.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    if let Some(i) = start {
        let rest = &rest[i..];
        if rest.len() >= 2 && rest[0] == b'<' {
            let c = rest[1];
            if c == b'?' || c == b'!' || c.is_ascii_alphabetic() || c == b'_' || c == b':' || c >= 0x80 {
                return DocumentType::Xml;
            }
        }
    }
    DocumentType::Other
}

/// Refuse content whose leading bytes do not show the claimed type.
pub fn check_type(head: &[u8], claimed: DocumentType) -> Result<()> {
    let found = sniff(head);
    if found == claimed {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!("document content is {} but was declared {}", found.mime(), claimed.mime())))
    }
}

/// Check a key: 1 to [`MAX_KEY_LEN`] bytes of `/`-separated segments, each 1 to
/// [`MAX_SEGMENT_LEN`] bytes of `[A-Za-z0-9._-]` starting with a letter or digit. So no absolute
/// path, no `.` or `..` segment, no empty segment, no hidden name (the local backend's temporary
/// files start with `.`), nothing an S3 key or a file name would treat specially.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |why: &str| Err(StorageError::Invalid(format!("invalid document key {:?}: {why}", truncate(key))));
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("too long");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("empty path segment (leading, trailing or doubled '/')");
        }
        if segment.len() > MAX_SEGMENT_LEN {
            return bad("path segment too long");
        }
        if !segment.as_bytes()[0].is_ascii_alphanumeric() {
            return bad("a segment must start with a letter or digit");
        }
        if !segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return bad("only A-Z a-z 0-9 . _ - and '/' between segments are allowed");
        }
    }
    Ok(())
}

/// Check a list prefix: empty, or a key, or a key followed by `/`, or a key whose last segment is
/// cut short (the same characters as [`validate_key`]).
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    validate_key(trimmed).map_err(|_| StorageError::Invalid(format!("invalid list prefix {:?}", truncate(prefix))))
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// What to upload: bytes in memory, or a reader (read only up to the bound).
pub enum Body<'a> {
    Bytes(&'a [u8]),
    Reader(Box<dyn AsyncRead + Unpin + Send + 'a>),
}

impl<'a> Body<'a> {
    pub fn reader(r: impl AsyncRead + Unpin + Send + 'a) -> Body<'a> {
        Body::Reader(Box::new(r))
    }

    /// Read the whole body into memory, refusing beyond `limit` bytes.
    pub(crate) async fn into_bounded_vec(self, limit: u64) -> Result<Vec<u8>> {
        match self {
            Body::Bytes(b) => {
                if b.len() as u64 > limit {
                    return Err(StorageError::TooLarge { limit });
                }
                Ok(b.to_vec())
            }
            Body::Reader(r) => {
                let mut out = Vec::new();
                // One byte past the limit tells "exactly at the limit" from "beyond it".
                r.take(limit.saturating_add(1))
                    .read_to_end(&mut out)
                    .await
                    .map_err(|e| StorageError::Unavailable(format!("reading the upload failed: {e}")))?;
                if out.len() as u64 > limit {
                    return Err(StorageError::TooLarge { limit });
                }
                Ok(out)
            }
        }
    }
}

impl<'a> From<&'a [u8]> for Body<'a> {
    fn from(b: &'a [u8]) -> Self {
        Body::Bytes(b)
    }
}

impl<'a> From<&'a Vec<u8>> for Body<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        Body::Bytes(b)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Body<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        Body::Bytes(b)
    }
}

/// The `[storage]` settings.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    Local { dir: PathBuf, max_bytes: u64 },
    S3 { s3: Box<S3Config>, max_bytes: u64 },
}

enum Backend {
    Local(local::LocalStore),
    S3(Box<s3::S3Store>),
}

/// The document store: one interface over the local directory and S3.
pub struct DocumentStore {
    backend: Backend,
    max_bytes: u64,
}

impl std::fmt::Debug for DocumentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.backend {
            Backend::Local(l) => format!("local {}", l.root().display()),
            Backend::S3(s) => format!("s3 {}", s.describe()),
        };
        f.debug_struct("DocumentStore").field("backend", &kind).field("max_bytes", &self.max_bytes).finish()
    }
}

impl DocumentStore {
    pub async fn open(config: &StorageConfig) -> Result<DocumentStore> {
        match config {
            StorageConfig::Local { dir, max_bytes } => DocumentStore::local(dir.clone(), *max_bytes).await,
            StorageConfig::S3 { s3, max_bytes } => DocumentStore::s3((**s3).clone(), *max_bytes),
        }
    }

    /// A store in `dir` (created with mode 0700 if missing).
    pub async fn local(dir: PathBuf, max_bytes: u64) -> Result<DocumentStore> {
        Ok(DocumentStore { backend: Backend::Local(local::LocalStore::open(dir).await?), max_bytes })
    }

    /// A store in an S3 bucket (no request is made here; see [`DocumentStore::create_bucket`]).
    pub fn s3(config: S3Config, max_bytes: u64) -> Result<DocumentStore> {
        Ok(DocumentStore { backend: Backend::S3(Box::new(s3::S3Store::new(config)?)), max_bytes })
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Create the bucket if it does not exist (S3); a no-op for the local directory.
    pub async fn create_bucket(&self) -> Result<()> {
        match &self.backend {
            Backend::Local(_) => Ok(()),
            Backend::S3(s) => s.create_bucket().await,
        }
    }

    /// Store a document under `key`, replacing any document there only once the new one is
    /// complete and of the claimed type. Refused beyond `max_bytes`; on any error nothing new is
    /// left under the key and the previous document (if any) is intact — except a local put whose
    /// final directory fsync fails after the rename: the new document is then in place, but its
    /// durability is not confirmed, and the error says `Unavailable`.
    pub async fn put<'a>(&self, key: &str, body: impl Into<Body<'a>>, claimed: DocumentType) -> Result<Stored> {
        validate_key(key)?;
        match &self.backend {
            Backend::Local(l) => l.put(key, body.into(), claimed, self.max_bytes).await,
            Backend::S3(s) => {
                let bytes = body.into().into_bounded_vec(self.max_bytes).await?;
                check_type(&bytes, claimed)?;
                s.put(key, &bytes, claimed).await
            }
        }
    }

    /// Read a document (bounded by `max_bytes`), its SHA-256 checked against the one recorded.
    pub async fn get(&self, key: &str) -> Result<Document> {
        validate_key(key)?;
        match &self.backend {
            Backend::Local(l) => l.get(key, self.max_bytes).await,
            Backend::S3(s) => s.get(key, self.max_bytes).await,
        }
    }

    /// Size and SHA-256 of a document, without its bytes where the backend allows.
    pub async fn head(&self, key: &str) -> Result<Stored> {
        validate_key(key)?;
        match &self.backend {
            Backend::Local(l) => l.head(key, self.max_bytes).await,
            Backend::S3(s) => s.head(key, self.max_bytes).await,
        }
    }

    /// Remove a document. Removing a key that holds nothing succeeds (as S3's DELETE does), so a
    /// retried delete after an outage is safe.
    pub async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        match &self.backend {
            Backend::Local(l) => l.delete(key).await,
            Backend::S3(s) => s.delete(key).await,
        }
    }

    /// The documents whose keys start with `prefix`, in key order (byte order).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        validate_prefix(prefix)?;
        let mut out = match &self.backend {
            Backend::Local(l) => l.list(prefix).await?,
            Backend::S3(s) => s.list(prefix).await?,
        };
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// Timeouts a store uses when not told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
