//! Persistence behind one interface, on SQLite (embedded default) or PostgreSQL (several
//! stateless nodes). One SQL dialect subset serves both: `$n` placeholders, BIGINT for
//! integers and flags, TEXT for everything else. Rows carry real types (bytes, enums); binary
//! values are stored as base64 and enums by name, converted at the SQL boundary (`codec`).
//!
//! Every rule that must hold across threads and processes is one atomic statement here:
//! SAD consumption, PIN attempt counting, TOTP replay refusal.
//!
//! One module per table (or group of tables), each with its rows and its `impl Store` block:
//! `meta`, `ca` (CA certificates, and certificate status for the CRL and OCSP), `users`,
//! `credentials` (with OTP challenges), `tokens`, `oauth` (clients, requests, codes), `sad`
//! (SADs and their digests), `jobs` (asynchronous signature requests) and `audit`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Run `body` in a transaction: commit when it returns `Ok((value, true))`, roll back on
/// `Ok((value, false))` or an error.
///
/// `transaction!(chained db, |c| ...)`: a transaction that takes other row locks and appends
/// audit records. On PostgreSQL it opens with the audit chain head's lock (lock order,
/// `audit.rs`), commits without waiting for the WAL flush so that the head is released before
/// it, and then waits for the flush (`audit::BEGIN_LOCKING_CHAIN`, `audit::FLUSH_WAL`): nothing
/// is answered before it is durable. On SQLite it is the writer's transaction, as without
/// `chained`.
macro_rules! transaction {
    ($db:expr, |$c:ident| $body:block) => {
        transaction!(@run $db, false, |$c| $body)
    };
    (chained $db:expr, |$c:ident| $body:block) => {
        transaction!(@run $db, $db.is_postgres(), |$c| $body)
    };
    (@run $db:expr, $chained:expr, |$c:ident| $body:block) => {{
        let db = &$db;
        let chained: bool = $chained;
        let mut $c = if chained { db.transaction_with(crate::audit::BEGIN_LOCKING_CHAIN).await? } else { db.transaction().await? };
        let result: Result<(_, bool)> = async { $body }.await;
        match result {
            Ok((value, true)) => {
                $c.commit().await?;
                if chained {
                    db.write().await?.opt(crate::audit::FLUSH_WAL, &[]).await?;
                }
                Ok(value)
            }
            Ok((value, false)) => {
                $c.rollback().await;
                Ok(value)
            }
            Err(e) => {
                $c.rollback().await;
                Err(e)
            }
        }
    }};
}

mod approvals;
mod audit;
mod ca;
mod codec;
mod credentials;
mod db;
mod devices;
mod group;
mod jobs;
mod meta;
mod oauth;
mod sad;
mod schema;
#[cfg(test)]
mod tests;
mod tokens;
mod users;

pub use approvals::{ApprovalRow, ApprovalState, Claim, NewApproval};
pub use audit::{AuditCheckpoint, AuditEvent, GENESIS, NewAudit, Outcome, checkpoint_message, record_hash};
pub use ca::{CaRow, CertRow, RevokedCert};
pub use cloudsign_keys::KeyBackendKind;
pub use credentials::{AuthMode, CertState, CredentialRow, OtpKind};
pub use devices::{DeviceRequestRow, DeviceRow, PairingRow, RequestEnd};
pub use jobs::{JobEnd, JobRow, NewJob, TakenJob};
pub use oauth::{ClientRow, CodeIssue, CodeRow, OAuthRequestRow, Redeemed, RequestKind};
pub use sad::{ConsumeOutcome, ConsumeSad, NewSad, SadGuard, SadRow};
pub use tokens::{NewToken, TokenKind, TokenRow};
pub use users::{LoginAttempt, UserRow};

pub use db::StoreOptions;
use db::{Db, P};

/// A store failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database refused.
    #[error("database error: {0}")]
    Db(String),
    /// The database cannot be reached or is busy.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint was violated (e.g. a user name that already exists).
    #[error("already exists")]
    Conflict,
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The store.
#[derive(Clone)]
pub struct Store {
    db: std::sync::Arc<Db>,
    /// SQLite: SAD consumptions waiting for the writer (`group`).
    consumers: std::sync::Arc<group::GroupCommit>,
}

impl Store {
    /// Connect and bring the schema up to date. `url` is `sqlite://PATH` or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Whether the database at `url` is a cloudsign store (its schema holds the issuing CA),
    /// looked at without changing anything: no file is created, no schema migrated. `admin`
    /// commands other than `init` ask this before [`Store::connect_with`], so that one run in
    /// the wrong directory or against the wrong database refuses instead of creating a store.
    pub async fn holds_ca(url: &str, options: StoreOptions) -> Result<bool> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let db = Db::connect(url, options).await?;
            let held = async {
                let mut c = db.read().await?;
                let table = c.opt("SELECT CASE WHEN to_regclass('ca_certs') IS NULL THEN 0 ELSE 1 END AS present", &[]).await?;
                if !table.map(|r| r.flag("present")).transpose()?.unwrap_or(false) {
                    return Ok(false);
                }
                Ok(c.opt("SELECT 1 AS one FROM ca_certs WHERE name = 'issuing'", &[]).await?.is_some())
            }
            .await;
            db.close().await;
            return held;
        }
        db::sqlite_holds_ca(url)
    }

    /// [`Store::connect`] with a timeout and pool size other than the defaults.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self> {
        let db = Db::connect(url, options).await?;
        schema::migrate(&db).await?;
        Ok(Self { db: std::sync::Arc::new(db), consumers: Default::default() })
    }

    /// Close the connections.
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// Delete what can no longer be used: expired tokens, SADs (with their digests) and OTP
    /// challenges. Returns the number of rows removed. The audit log is never purged.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        transaction!(self.db, |c| {
            let mut n = 0;
            n += c.exec("DELETE FROM sad_hashes WHERE sad IN (SELECT hash FROM sads WHERE expires_at < $1)", &[P::I(now)]).await?;
            n += c.exec("DELETE FROM sads WHERE expires_at < $1", &[P::I(now)]).await?;
            n += c.exec("DELETE FROM tokens WHERE expires_at < $1", &[P::I(now)]).await?;
            n += c.exec("DELETE FROM otp_challenges WHERE expires_at < $1", &[P::I(now)]).await?;
            // Leases of PIN and password checks whose process died before it released them (the
            // next check of the same subject drops them too; these are subjects never retried).
            n += c.exec("DELETE FROM auth_attempts WHERE expires_at <= $1", &[P::I(now)]).await?;
            n += c.exec("DELETE FROM oauth_requests WHERE expires_at < $1", &[P::I(now)]).await?;
            // Used codes are kept a day past expiry so that a replay still revokes what they issued.
            n += c.exec("DELETE FROM oauth_codes WHERE expires_at < $1", &[P::I(now - 86_400)]).await?;
            Ok((n, true))
        })
    }
}
