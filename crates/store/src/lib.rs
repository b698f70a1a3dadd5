//! Persistence behind one interface, on SQLite (embedded default) or PostgreSQL (several
//! stateless nodes). One SQL dialect subset serves both: `$n` placeholders, BIGINT for
//! integers and flags, TEXT for everything else (binary values are stored base64 by the
//! caller).
//!
//! Every rule that must hold across threads and processes is one atomic statement here:
//! SAD consumption, PIN attempt counting, TOTP replay refusal.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod db;
mod group;
mod schema;
#[cfg(test)]
mod tests;

use db::{Conn, Db, P, Row};

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

/// A user account.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Internal id.
    pub id: String,
    /// Login name.
    pub name: String,
    /// Encoded argon2id hash.
    pub password_hash: String,
    /// Disabled by an administrator.
    pub disabled: bool,
    /// Creation time.
    pub created_at: i64,
}

/// A certificate and its metadata as stored.
#[derive(Debug, Clone)]
pub struct CertRow {
    /// Base64 DER.
    pub der_b64: String,
    /// Hex serial.
    pub serial_hex: String,
    /// RFC 4514 subject.
    pub subject_dn: String,
    /// RFC 4514 issuer.
    pub issuer_dn: String,
    /// Validity start (Unix seconds).
    pub not_before: i64,
    /// Validity end (Unix seconds).
    pub not_after: i64,
}

/// A CA certificate with its key handle.
#[derive(Debug, Clone)]
pub struct CaRow {
    /// `root`, `issuing` or `tsa`.
    pub name: String,
    /// The certificate.
    pub cert: CertRow,
    /// Base64 key handle.
    pub key_handle_b64: String,
    /// Where the key lives: `software` or `pkcs11`.
    pub key_backend: String,
}

/// A signing credential.
#[derive(Debug, Clone)]
pub struct CredentialRow {
    /// The CSC `credentialID`.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Key type name (`ecdsa-p256`, ...).
    pub key_algo: String,
    /// Base64 key handle.
    pub key_handle_b64: String,
    /// The end-entity certificate.
    pub cert: CertRow,
    /// 1 or 2.
    pub scal: i64,
    /// Maximum signatures per authorization.
    pub multisign: i64,
    /// argon2id hash of the PIN.
    pub pin_hash: String,
    /// `N` (digits only) or `A`.
    pub pin_format: String,
    /// `totp`, `online` or none.
    pub otp_kind: Option<String>,
    /// Sealed TOTP secret (base64).
    pub otp_secret_b64: Option<String>,
    /// Consecutive failed (or in-flight) authorization attempts.
    pub failed_attempts: i64,
    /// Locked after too many failures.
    pub locked: bool,
    /// Disabled by an administrator.
    pub disabled: bool,
    /// Free text.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Certificate status: `valid`, `revoked` or `suspended` (expiry is computed, not stored).
    pub cert_status: String,
    /// When the certificate was revoked or suspended (Unix seconds).
    pub revoked_at: Option<i64>,
    /// RFC 5280 CRLReason code of the revocation or suspension.
    pub revocation_reason: Option<i64>,
    /// CSC `authMode`: `explicit` (credentials/authorize with PIN/OTP) or `oauth2code`.
    pub auth_mode: String,
    /// Where the key lives: `software` (sealed in `key_handle`) or `pkcs11` (`key_handle` is
    /// the key's CKA_ID in the HSM).
    pub key_backend: String,
    /// Sole control: the salt (base64) of the PIN-derived key that wraps the sealed key once
    /// more; `None` for credentials without sole control.
    pub pin_wrap_salt: Option<String>,
}

/// A revoked or suspended certificate, for the CRL.
#[derive(Debug, Clone)]
pub struct RevokedCert {
    /// Hex serial.
    pub serial_hex: String,
    /// When (Unix seconds).
    pub revoked_at: i64,
    /// CRLReason code.
    pub reason: i64,
}

/// What a bearer token resolves to.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// `access`, `refresh`, or `credential` (an OAuth credential-scope token, which is also a SAD).
    pub kind: String,
    /// Owner.
    pub user_id: String,
    /// Owner's login name.
    pub user_name: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Revoked.
    pub revoked: bool,
    /// The credential of a credential-scope token.
    pub credential_id: Option<String>,
}

/// A token to store.
pub struct NewToken<'a> {
    /// SHA-256 of the token, hex.
    pub hash: &'a str,
    /// `access`, `refresh` or `credential`.
    pub kind: &'a str,
    /// Owner.
    pub user_id: &'a str,
    /// The refresh token (hash) an access token was issued with.
    pub parent: Option<&'a str>,
    /// The OAuth client it was issued to (none for `auth/login`).
    pub client_id: Option<&'a str>,
    /// The credential of a credential-scope token.
    pub credential_id: Option<&'a str>,
    /// Expiry.
    pub expires_at: i64,
    /// Now.
    pub now: i64,
}

/// A registered OAuth 2.0 client (RFC 6749 §2).
#[derive(Debug, Clone)]
pub struct ClientRow {
    /// `client_id`.
    pub id: String,
    /// Display name, shown on the consent page.
    pub name: String,
    /// SHA-256 (hex) of the secret of a confidential client; `None` for a public client.
    pub secret_hash: Option<String>,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// The user a confidential client acts as with the client_credentials grant.
    pub user_id: Option<String>,
    /// Creation time.
    pub created_at: i64,
}

/// A pending authorization request: pushed (PAR) or in progress in a browser.
#[derive(Debug, Clone)]
pub struct OAuthRequestRow {
    /// The client.
    pub client_id: String,
    /// The validated request (JSON, owned by the domain).
    pub request: String,
    /// The user, once logged in on the authorization page.
    pub user_id: Option<String>,
    /// Expiry.
    pub expires_at: i64,
}

/// An authorization code as stored.
#[derive(Debug, Clone)]
pub struct CodeRow {
    /// The client it was issued to.
    pub client_id: String,
    /// The user who approved.
    pub user_id: String,
    /// What was granted (JSON, owned by the domain).
    pub grant_json: String,
    /// Expiry.
    pub expires_at: i64,
    /// Already exchanged.
    pub used: bool,
}

/// What exchanging a code issues, stored in the same transaction that marks the code used.
pub struct CodeIssue<'a> {
    /// The access token (service scope) or credential token.
    pub access: NewToken<'a>,
    /// The refresh token (service scope).
    pub refresh: Option<NewToken<'a>>,
    /// The SAD behind a credential token (same hash as `access`).
    pub sad: Option<NewSad<'a>>,
}

/// The result of exchanging a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    /// The tokens are stored.
    Issued,
    /// The code was already used: what it issued has now been revoked (RFC 6749 §4.1.2).
    Reused,
    /// Unknown or expired.
    Invalid,
}

/// A SAD as stored (looked up when consumption fails, to say why).
#[derive(Debug, Clone)]
pub struct SadRow {
    /// Owner.
    pub user_id: String,
    /// Credential.
    pub credential_id: String,
    /// Signatures left.
    pub remaining: i64,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Superseded by extendTransaction or revoked.
    pub revoked: bool,
    /// Sole control: the credential's PIN-derived key, sealed under a key derived from the SAD.
    pub sole_key: Option<String>,
}

/// A new SAD to store.
pub struct NewSad<'a> {
    /// SHA-256 of the SAD, hex.
    pub hash: &'a str,
    /// Owner.
    pub user_id: &'a str,
    /// Credential.
    pub credential_id: &'a str,
    /// Signatures authorized.
    pub remaining: i64,
    /// OID of `digests`, when bound.
    pub hash_algo: Option<&'a str>,
    /// Bound digests (hex), or `None` for an unbound SAD.
    pub digests: Option<&'a [String]>,
    /// Expiry.
    pub expires_at: i64,
    /// Now.
    pub now: i64,
    /// Sole control: the PIN-derived key sealed under the SAD.
    pub sole_key: Option<&'a str>,
}

/// Conditions re-checked inside the consuming transaction when the caller's token and
/// credential rows came from a cache: the write, not the cache, decides.
pub struct SadGuard<'a> {
    /// The bearer token (hash): live, not revoked, its user enabled.
    pub token_hash: &'a str,
    /// The credential's stored key handle: unchanged, and the credential enabled, unlocked,
    /// valid and within its certificate's validity.
    pub key_handle: &'a str,
}

/// May a password be tried on an account now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Yes; the attempt is counted.
    Allowed,
    /// Not before `retry_after` seconds.
    Throttled {
        /// Seconds until the next attempt is taken.
        retry_after: i64,
    },
}

/// Why a SAD could not be consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// Consumed; the signatures may be made.
    Consumed,
    /// No such SAD for this user and credential (or superseded).
    Unknown,
    /// Expired.
    Expired,
    /// Fewer signatures left than asked.
    Exhausted {
        /// Signatures left.
        remaining: i64,
    },
    /// A digest is not among the bound ones (or already used).
    HashNotAuthorized,
    /// The digest algorithm differs from the bound one.
    HashAlgorithmMismatch,
}

/// An audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Sequence number (store order).
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who: a user name, `admin`, or `-`.
    pub actor: String,
    /// What: `auth.login`, `credentials.authorize`, `signatures.signHash`, `admin.user.add`, ...
    pub event: String,
    /// `ok` or `refused`/`failed`.
    pub outcome: String,
    /// The credential concerned, if any.
    pub credential_id: Option<String>,
    /// JSON detail (never secrets).
    pub detail: String,
}

/// An audit event to write.
pub struct NewAudit<'a> {
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: &'a str,
    /// What.
    pub event: &'a str,
    /// Outcome.
    pub outcome: &'a str,
    /// Credential.
    pub credential_id: Option<&'a str>,
    /// JSON detail.
    pub detail: &'a str,
}

const USER_COLS: &str = "id, name, password_hash, disabled, created_at";
const CRED_COLS: &str = "id, user_id, key_algo, key_handle, cert_der, serial_hex, subject_dn, issuer_dn, not_before, not_after, scal, multisign, pin_hash, pin_format, otp_kind, otp_secret, failed_attempts, locked, disabled, description, created_at, auth_mode, key_backend, pin_wrap_salt";
/// The insert columns plus the certificate status, for reads.
const CRED_READ_COLS: &str = "id, user_id, key_algo, key_handle, cert_der, serial_hex, subject_dn, issuer_dn, not_before, not_after, scal, multisign, pin_hash, pin_format, otp_kind, otp_secret, failed_attempts, locked, disabled, description, created_at, cert_status, revoked_at, revocation_reason, auth_mode, key_backend, pin_wrap_salt";
const CA_COLS: &str = "name, cert_der, key_handle, serial_hex, subject_dn, issuer_dn, not_before, not_after, key_backend";

fn user_row(r: &Row) -> Result<UserRow> {
    Ok(UserRow {
        id: r.str("id")?,
        name: r.str("name")?,
        password_hash: r.str("password_hash")?,
        disabled: r.flag("disabled")?,
        created_at: r.i64("created_at")?,
    })
}

fn cert_row(r: &Row) -> Result<CertRow> {
    Ok(CertRow {
        der_b64: r.str("cert_der")?,
        serial_hex: r.str("serial_hex")?,
        subject_dn: r.str("subject_dn")?,
        issuer_dn: r.str("issuer_dn")?,
        not_before: r.i64("not_before")?,
        not_after: r.i64("not_after")?,
    })
}

fn cred_row(r: &Row) -> Result<CredentialRow> {
    Ok(CredentialRow {
        id: r.str("id")?,
        user_id: r.str("user_id")?,
        key_algo: r.str("key_algo")?,
        key_handle_b64: r.str("key_handle")?,
        cert: cert_row(r)?,
        scal: r.i64("scal")?,
        multisign: r.i64("multisign")?,
        pin_hash: r.str("pin_hash")?,
        pin_format: r.str("pin_format")?,
        otp_kind: r.opt_str("otp_kind")?,
        otp_secret_b64: r.opt_str("otp_secret")?,
        failed_attempts: r.i64("failed_attempts")?,
        locked: r.flag("locked")?,
        disabled: r.flag("disabled")?,
        description: r.opt_str("description")?,
        created_at: r.i64("created_at")?,
        cert_status: r.str("cert_status")?,
        revoked_at: r.opt_i64("revoked_at")?,
        revocation_reason: r.opt_i64("revocation_reason")?,
        auth_mode: r.str("auth_mode")?,
        key_backend: r.str("key_backend")?,
        pin_wrap_salt: r.opt_str("pin_wrap_salt")?,
    })
}

fn ca_params(ca: &CaRow) -> [P<'_>; 9] {
    [
        P::S(&ca.name),
        P::S(&ca.cert.der_b64),
        P::S(&ca.key_handle_b64),
        P::S(&ca.cert.serial_hex),
        P::S(&ca.cert.subject_dn),
        P::S(&ca.cert.issuer_dn),
        P::I(ca.cert.not_before),
        P::I(ca.cert.not_after),
        P::S(&ca.key_backend),
    ]
}

/// Run `body` in a transaction: commit when it returns `Ok((value, true))`, roll back on
/// `Ok((value, false))` or an error.
macro_rules! transaction {
    ($db:expr, |$c:ident| $body:block) => {{
        let mut $c = $db.transaction().await?;
        let result: Result<(_, bool)> = async { $body }.await;
        match result {
            Ok((value, true)) => {
                $c.commit().await?;
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

impl Store {
    /// Connect and bring the schema up to date. `url` is `sqlite://PATH` or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self> {
        let db = Db::connect(url).await?;
        schema::migrate(&db).await?;
        Ok(Self { db: std::sync::Arc::new(db), consumers: Default::default() })
    }

    /// Close the connections.
    pub async fn close(&self) {
        self.db.close().await;
    }

    // ---- meta -------------------------------------------------------------------------------

    /// Read a metadata value.
    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = self.db.read().await?.opt("SELECT v FROM meta WHERE k = $1", &[P::S(key)]).await?;
        row.map(|r| r.str("v")).transpose()
    }

    /// Set a metadata value unless one exists; returns the value now stored.
    pub async fn meta_insert_if_absent(&self, key: &str, value: &str) -> Result<String> {
        self.db
            .write()
            .await?
            .exec("INSERT INTO meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING", &[P::S(key), P::S(value)])
            .await?;
        Ok(self.meta(key).await?.unwrap_or_default())
    }

    // ---- CA ---------------------------------------------------------------------------------

    /// Store a whole CA hierarchy in one transaction, unless a hierarchy exists already.
    /// Returns false when another process got there first.
    pub async fn insert_ca_hierarchy(&self, cas: &[CaRow]) -> Result<bool> {
        let sql = format!("INSERT INTO ca_certs ({CA_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        let r: Result<bool> = transaction!(self.db, |c| {
            if c.opt("SELECT name FROM ca_certs", &[]).await?.is_some() {
                return Ok((false, false));
            }
            for ca in cas {
                c.exec(&sql, &ca_params(ca)).await?;
            }
            Ok((true, true))
        });
        match r {
            Err(StoreError::Conflict) => Ok(false),
            other => other,
        }
    }

    /// Store one CA-side certificate (e.g. the TSA's) unless one of that name exists (the first
    /// node to start wins; the others then load its record).
    pub async fn insert_ca_if_absent(&self, ca: &CaRow) -> Result<()> {
        let sql = format!("INSERT INTO ca_certs ({CA_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING");
        self.db.write().await?.exec(&sql, &ca_params(ca)).await?;
        Ok(())
    }

    /// Read a CA certificate.
    pub async fn ca(&self, name: &str) -> Result<Option<CaRow>> {
        let sql = format!("SELECT {CA_COLS} FROM ca_certs WHERE name = $1");
        let row = self.db.read().await?.opt(&sql, &[P::S(name)]).await?;
        row.map(|r| {
            Ok(CaRow {
                name: r.str("name")?,
                key_handle_b64: r.str("key_handle")?,
                cert: cert_row(&r)?,
                key_backend: r.str("key_backend")?,
            })
        })
        .transpose()
    }

    // ---- users ------------------------------------------------------------------------------

    /// Create a user; `Conflict` if the name is taken.
    pub async fn insert_user(&self, u: &UserRow) -> Result<()> {
        self.db
            .write()
            .await?
            .exec(
                "INSERT INTO users (id, name, password_hash, disabled, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[P::S(&u.id), P::S(&u.name), P::S(&u.password_hash), P::I(i64::from(u.disabled)), P::I(u.created_at)],
            )
            .await?;
        Ok(())
    }

    /// Find a user by login name.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE name = $1");
        self.db.read().await?.opt(&sql, &[P::S(name)]).await?.as_ref().map(user_row).transpose()
    }

    /// Count a password attempt on an account before the password is checked, and reserve the
    /// account's next slot: the first `free` consecutive failures cost nothing, each later
    /// attempt blocks the account for 2, 4, 8, ... seconds up to `max_delay` (whole seconds: the
    /// first wait is two so that it is at least one). One transaction, so guesses sent in
    /// parallel (or to several nodes) cannot all pass. A success resets the count
    /// ([`Store::login_succeeded`]).
    pub async fn begin_login_attempt(&self, user_id: &str, now: i64, free: i64, max_delay: i64) -> Result<LoginAttempt> {
        transaction!(self.db, |c| {
            let row = c
                .opt(
                    "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 AND login_blocked_until <= $2 RETURNING failed_logins",
                    &[P::S(user_id), P::I(now)],
                )
                .await?;
            let Some(row) = row else {
                let until = c.opt("SELECT login_blocked_until FROM users WHERE id = $1", &[P::S(user_id)]).await?;
                let until = until.map(|r| r.i64("login_blocked_until")).transpose()?.unwrap_or(now);
                return Ok((LoginAttempt::Throttled { retry_after: (until - now).max(1) }, false));
            };
            let n = row.i64("failed_logins")?;
            if n > free {
                let delay = (2i64 << (n - free - 1).min(20)).min(max_delay);
                c.exec("UPDATE users SET login_blocked_until = $2 WHERE id = $1", &[P::S(user_id), P::I(now + delay)]).await?;
            }
            Ok((LoginAttempt::Allowed, true))
        })
    }

    /// The password was right: the account's failure count starts again.
    pub async fn login_succeeded(&self, user_id: &str) -> Result<()> {
        self.db
            .write()
            .await?
            .exec("UPDATE users SET failed_logins = 0, login_blocked_until = 0 WHERE id = $1 AND failed_logins > 0", &[P::S(user_id)])
            .await?;
        Ok(())
    }

    /// Find a user by id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        self.db.read().await?.opt(&sql, &[P::S(id)]).await?.as_ref().map(user_row).transpose()
    }

    /// All users by name.
    pub async fn users(&self) -> Result<Vec<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY name");
        self.db.read().await?.all(&sql, &[]).await?.iter().map(user_row).collect()
    }

    /// Enable or disable a user; returns whether the user exists. Disabling also revokes the
    /// user's tokens so that a disabled account is shut out at once; enabling also clears the
    /// password-guessing backoff, so an administrator can let the owner in at once.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = if disabled {
                c.exec("UPDATE users SET disabled = 1 WHERE name = $1", &[P::S(name)]).await?
            } else {
                c.exec("UPDATE users SET disabled = 0, failed_logins = 0, login_blocked_until = 0 WHERE name = $1", &[P::S(name)]).await?
            };
            if disabled {
                c.exec("UPDATE tokens SET revoked = 1 WHERE user_id = (SELECT id FROM users WHERE name = $1)", &[P::S(name)]).await?;
            }
            Ok((n == 1, true))
        })
    }

    /// Delete a user with everything it owns; returns whether it existed.
    pub async fn delete_user(&self, name: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            let Some(row) = c.opt("SELECT id FROM users WHERE name = $1", &[P::S(name)]).await? else {
                return Ok((false, false));
            };
            let id = row.str("id")?;
            for sql in [
                "DELETE FROM sad_hashes WHERE sad IN (SELECT hash FROM sads WHERE user_id = $1)",
                "DELETE FROM sads WHERE user_id = $1",
                "DELETE FROM otp_challenges WHERE credential_id IN (SELECT id FROM credentials WHERE user_id = $1)",
                "DELETE FROM cert_history WHERE credential_id IN (SELECT id FROM credentials WHERE user_id = $1)",
                "DELETE FROM credentials WHERE user_id = $1",
                "DELETE FROM tokens WHERE user_id = $1",
                "DELETE FROM oauth_codes WHERE user_id = $1",
                "DELETE FROM oauth_requests WHERE user_id = $1",
                "UPDATE oauth_clients SET user_id = NULL WHERE user_id = $1",
                "DELETE FROM users WHERE id = $1",
            ] {
                c.exec(sql, &[P::S(&id)]).await?;
            }
            Ok((true, true))
        })
    }

    // ---- credentials ------------------------------------------------------------------------

    /// Store a new credential.
    pub async fn insert_credential(&self, c: &CredentialRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO credentials ({CRED_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, 0, 0, $17, $18, $19, $20, $21)"
        );
        self.db
            .write()
            .await?
            .exec(
                &sql,
                &[
                    P::S(&c.id),
                    P::S(&c.user_id),
                    P::S(&c.key_algo),
                    P::S(&c.key_handle_b64),
                    P::S(&c.cert.der_b64),
                    P::S(&c.cert.serial_hex),
                    P::S(&c.cert.subject_dn),
                    P::S(&c.cert.issuer_dn),
                    P::I(c.cert.not_before),
                    P::I(c.cert.not_after),
                    P::I(c.scal),
                    P::I(c.multisign),
                    P::S(&c.pin_hash),
                    P::S(&c.pin_format),
                    P::OS(c.otp_kind.as_deref()),
                    P::OS(c.otp_secret_b64.as_deref()),
                    P::OS(c.description.as_deref()),
                    P::I(c.created_at),
                    P::S(&c.auth_mode),
                    P::S(&c.key_backend),
                    P::OS(c.pin_wrap_salt.as_deref()),
                ],
            )
            .await?;
        Ok(())
    }

    /// One credential.
    pub async fn credential(&self, id: &str) -> Result<Option<CredentialRow>> {
        let sql = format!("SELECT {CRED_READ_COLS} FROM credentials WHERE id = $1");
        self.db.read().await?.opt(&sql, &[P::S(id)]).await?.as_ref().map(cred_row).transpose()
    }

    /// A user's credentials, oldest first; all credentials when `user_id` is `None`.
    pub async fn credentials(&self, user_id: Option<&str>) -> Result<Vec<CredentialRow>> {
        let mut c = self.db.read().await?;
        let rows = match user_id {
            Some(u) => {
                c.all(&format!("SELECT {CRED_READ_COLS} FROM credentials WHERE user_id = $1 ORDER BY created_at, id"), &[P::S(u)]).await?
            }
            None => c.all(&format!("SELECT {CRED_READ_COLS} FROM credentials ORDER BY created_at, id"), &[]).await?,
        };
        rows.iter().map(cred_row).collect()
    }

    /// Replace a credential's PIN hash (and, under sole control, its re-wrapped key and salt);
    /// SADs issued under the old PIN stop working.
    pub async fn update_credential_pin(
        &self,
        id: &str,
        pin_hash: &str,
        pin_format: &str,
        key_handle: &str,
        pin_wrap_salt: Option<&str>,
    ) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = c
                .exec(
                    "UPDATE credentials SET pin_hash = $2, pin_format = $3, key_handle = $4, pin_wrap_salt = $5 WHERE id = $1",
                    &[P::S(id), P::S(pin_hash), P::S(pin_format), P::S(key_handle), P::OS(pin_wrap_salt)],
                )
                .await?;
            c.exec("UPDATE sads SET revoked = 1 WHERE credential_id = $1", &[P::S(id)]).await?;
            Ok((n == 1, true))
        })
    }

    /// Replace a credential's certificate (renewal), keeping the old one in `cert_history`;
    /// `key_handle` is the new key's handle when the key changes too. Only a credential whose
    /// certificate is still `expected_serial` and valid is renewed, so concurrent renewals (two
    /// nodes) renew once. Returns whether it was renewed.
    pub async fn renew_certificate(
        &self,
        id: &str,
        expected_serial: &str,
        cert: &CertRow,
        key_handle: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        transaction!(self.db, |c| {
            let moved = c
                .exec(
                    "INSERT INTO cert_history (serial_hex, credential_id, cert_der, not_after, replaced_at) \
                     SELECT serial_hex, id, cert_der, not_after, $3 FROM credentials WHERE id = $1 AND serial_hex = $2 AND cert_status = 'valid'",
                    &[P::S(id), P::S(expected_serial), P::I(now)],
                )
                .await?;
            if moved != 1 {
                return Ok((false, false));
            }
            c.exec(
                "UPDATE credentials SET cert_der = $2, serial_hex = $3, subject_dn = $4, issuer_dn = $5, not_before = $6, not_after = $7, \
                 key_handle = COALESCE($8, key_handle) WHERE id = $1",
                &[
                    P::S(id),
                    P::S(&cert.der_b64),
                    P::S(&cert.serial_hex),
                    P::S(&cert.subject_dn),
                    P::S(&cert.issuer_dn),
                    P::I(cert.not_before),
                    P::I(cert.not_after),
                    P::OS(key_handle),
                ],
            )
            .await?;
            Ok((true, true))
        })
    }

    /// Credentials in use whose certificate ends before `before` (renewal candidates).
    pub async fn credentials_expiring(&self, before: i64) -> Result<Vec<CredentialRow>> {
        let sql = format!(
            "SELECT {CRED_READ_COLS} FROM credentials WHERE cert_status = 'valid' AND disabled = 0 AND not_after < $1 ORDER BY not_after"
        );
        self.db.read().await?.all(&sql, &[P::I(before)]).await?.iter().map(cred_row).collect()
    }

    /// Enable or disable a credential; returns whether it exists.
    pub async fn set_credential_disabled(&self, id: &str, disabled: bool) -> Result<bool> {
        let n = self
            .db
            .write()
            .await?
            .exec("UPDATE credentials SET disabled = $1 WHERE id = $2", &[P::I(i64::from(disabled)), P::S(id)])
            .await?;
        Ok(n == 1)
    }

    /// Change a certificate's status. `from` lists the statuses the change is allowed from
    /// (a revocation is final). Returns whether a credential changed.
    pub async fn set_cert_status(&self, id: &str, from: &[&str], to: &str, reason: Option<i64>, at: i64) -> Result<bool> {
        let mut changed = 0;
        let mut c = self.db.write().await?;
        for f in from {
            changed += c
                .exec(
                    "UPDATE credentials SET cert_status = $2, revocation_reason = $3, revoked_at = $4 WHERE id = $1 AND cert_status = $5",
                    &[
                        P::S(id),
                        P::S(to),
                        match reason {
                            Some(r) => P::I(r),
                            None => P::OS(None),
                        },
                        if to == "valid" { P::OS(None) } else { P::I(at) },
                        P::S(f),
                    ],
                )
                .await?;
        }
        Ok(changed > 0)
    }

    /// The status of the certificate with this serial (credentials, then the CA-side
    /// certificates such as the TSA's, which are always `valid`): (status, time, reason).
    pub async fn cert_status_by_serial(&self, serial_hex: &str) -> Result<Option<(String, Option<i64>, Option<i64>)>> {
        let mut c = self.db.read().await?;
        if let Some(r) =
            c.opt("SELECT cert_status, revoked_at, revocation_reason FROM credentials WHERE serial_hex = $1", &[P::S(serial_hex)]).await?
        {
            return Ok(Some((r.str("cert_status")?, r.opt_i64("revoked_at")?, r.opt_i64("revocation_reason")?)));
        }
        // A certificate replaced by a renewal shares its credential's fate.
        if let Some(r) = c
            .opt(
                "SELECT c.cert_status, c.revoked_at, c.revocation_reason FROM cert_history h JOIN credentials c ON c.id = h.credential_id \
                 WHERE h.serial_hex = $1",
                &[P::S(serial_hex)],
            )
            .await?
        {
            return Ok(Some((r.str("cert_status")?, r.opt_i64("revoked_at")?, r.opt_i64("revocation_reason")?)));
        }
        let ca = c.opt("SELECT name FROM ca_certs WHERE serial_hex = $1 AND name = 'tsa'", &[P::S(serial_hex)]).await?;
        Ok(ca.map(|_| ("valid".to_string(), None, None)))
    }

    /// Every revoked or suspended certificate, for the CRL.
    pub async fn revoked_certificates(&self) -> Result<Vec<RevokedCert>> {
        let rows = self
            .db
            .read()
            .await?
            .all(
                "SELECT serial_hex, revoked_at, revocation_reason FROM credentials WHERE cert_status <> 'valid' \
                 UNION ALL SELECT h.serial_hex, c.revoked_at, c.revocation_reason FROM cert_history h JOIN credentials c ON c.id = h.credential_id \
                 WHERE c.cert_status <> 'valid' ORDER BY 2, 1",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RevokedCert {
                    serial_hex: r.str("serial_hex")?,
                    revoked_at: r.opt_i64("revoked_at")?.unwrap_or(0),
                    reason: r.opt_i64("revocation_reason")?.unwrap_or(0),
                })
            })
            .collect()
    }

    /// Clear the failure counter and the lock; returns whether it exists.
    pub async fn unlock_credential(&self, id: &str) -> Result<bool> {
        let n = self.db.write().await?.exec("UPDATE credentials SET locked = 0, failed_attempts = 0 WHERE id = $1", &[P::S(id)]).await?;
        Ok(n == 1)
    }

    /// Delete a credential, its SADs and its challenges; returns whether it existed.
    pub async fn delete_credential(&self, id: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            c.exec("DELETE FROM sad_hashes WHERE sad IN (SELECT hash FROM sads WHERE credential_id = $1)", &[P::S(id)]).await?;
            c.exec("DELETE FROM sads WHERE credential_id = $1", &[P::S(id)]).await?;
            c.exec("DELETE FROM otp_challenges WHERE credential_id = $1", &[P::S(id)]).await?;
            c.exec("DELETE FROM cert_history WHERE credential_id = $1", &[P::S(id)]).await?;
            let n = c.exec("DELETE FROM credentials WHERE id = $1", &[P::S(id)]).await?;
            Ok((n == 1, true))
        })
    }

    /// Reserve one authorization attempt before the factors are checked, so that parallel
    /// guesses cannot outrun the lockout: the counter goes up first and comes back to zero
    /// only on success. Returns the attempt number, or `None` if the credential is locked or
    /// has no attempts left (in which case it is marked locked).
    pub async fn begin_attempt(&self, id: &str, max_attempts: i64) -> Result<Option<i64>> {
        let mut c = self.db.write().await?;
        let row = c
            .opt(
                "UPDATE credentials SET failed_attempts = failed_attempts + 1 WHERE id = $1 AND locked = 0 AND failed_attempts < $2 RETURNING failed_attempts",
                &[P::S(id), P::I(max_attempts)],
            )
            .await?;
        match row {
            Some(r) => Ok(Some(r.i64("failed_attempts")?)),
            None => {
                c.exec("UPDATE credentials SET locked = 1 WHERE id = $1 AND failed_attempts >= $2", &[P::S(id), P::I(max_attempts)])
                    .await?;
                Ok(None)
            }
        }
    }

    /// The attempt succeeded: clear the counter.
    pub async fn attempt_succeeded(&self, id: &str) -> Result<()> {
        self.db.write().await?.exec("UPDATE credentials SET failed_attempts = 0 WHERE id = $1", &[P::S(id)]).await?;
        Ok(())
    }

    /// The attempt failed: the counter stays up; lock when it reached the limit. Returns
    /// whether the credential is now locked.
    pub async fn attempt_failed(&self, id: &str, max_attempts: i64) -> Result<bool> {
        let row = self
            .db
            .write()
            .await?
            .opt(
                "UPDATE credentials SET locked = CASE WHEN failed_attempts >= $2 THEN 1 ELSE locked END WHERE id = $1 RETURNING locked",
                &[P::S(id), P::I(max_attempts)],
            )
            .await?;
        Ok(match row {
            Some(r) => r.flag("locked")?,
            None => false,
        })
    }

    /// Record a TOTP time step as used, refusing it if that step or a later one was used
    /// already (RFC 6238 §5.2: a code is accepted once).
    pub async fn use_totp_step(&self, id: &str, step: i64) -> Result<bool> {
        let n = self
            .db
            .write()
            .await?
            .exec("UPDATE credentials SET otp_last_step = $2 WHERE id = $1 AND otp_last_step < $2", &[P::S(id), P::I(step)])
            .await?;
        Ok(n == 1)
    }

    /// Store (replacing) the pending online OTP of a credential.
    pub async fn put_otp_challenge(&self, credential_id: &str, code_hash: &str, expires_at: i64) -> Result<()> {
        transaction!(self.db, |c| {
            c.exec("DELETE FROM otp_challenges WHERE credential_id = $1", &[P::S(credential_id)]).await?;
            c.exec(
                "INSERT INTO otp_challenges (credential_id, code_hash, expires_at) VALUES ($1, $2, $3)",
                &[P::S(credential_id), P::S(code_hash), P::I(expires_at)],
            )
            .await?;
            Ok(((), true))
        })
    }

    /// Take the pending online OTP (it is deleted: one use). Returns (hash, expiry).
    pub async fn take_otp_challenge(&self, credential_id: &str) -> Result<Option<(String, i64)>> {
        let row = self
            .db
            .write()
            .await?
            .opt("DELETE FROM otp_challenges WHERE credential_id = $1 RETURNING code_hash, expires_at", &[P::S(credential_id)])
            .await?;
        row.map(|r| Ok((r.str("code_hash")?, r.i64("expires_at")?))).transpose()
    }

    // ---- tokens -----------------------------------------------------------------------------

    /// Store a token (by hash).
    pub async fn insert_token(&self, t: &NewToken<'_>) -> Result<()> {
        insert_token(&mut self.db.write().await?, t).await
    }

    /// Resolve a token hash, with its owner (a disabled owner makes the token revoked).
    pub async fn token(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = self
            .db
            .read()
            .await?
            .opt(
                "SELECT t.kind, t.user_id, u.name, t.expires_at, t.revoked, t.credential_id, u.disabled FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1",
                &[P::S(hash)],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(TokenRow {
            kind: r.str("kind")?,
            user_id: r.str("user_id")?,
            user_name: r.str("name")?,
            expires_at: r.i64("expires_at")?,
            revoked: r.flag("revoked")? || r.flag("disabled")?,
            credential_id: r.opt_str("credential_id")?,
        }))
    }

    /// Revoke a token; revoking a refresh token also revokes the access tokens issued from it
    /// (CSC §11.3, RFC 7009 §2.1). Only the user's own tokens are touched. Returns whether a
    /// token was found.
    /// A credential-scope token takes its SAD along.
    pub async fn revoke_token(&self, hash: &str, user_id: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = c
                .exec(
                    "UPDATE tokens SET revoked = 1 WHERE user_id = $2 AND (hash = $1 OR (parent = $1 AND EXISTS (SELECT 1 FROM tokens p WHERE p.hash = $1 AND p.kind = 'refresh')))",
                    &[P::S(hash), P::S(user_id)],
                )
                .await?;
            c.exec(
                "UPDATE sads SET revoked = 1 WHERE hash = $1 AND user_id = $2 AND EXISTS (SELECT 1 FROM tokens t WHERE t.hash = $1 AND t.kind = 'credential')",
                &[P::S(hash), P::S(user_id)],
            )
            .await?;
            Ok((n > 0, true))
        })
    }

    /// Atomically revoke a live refresh token (rotation); returns its owner if it was live and
    /// was issued to `client_id` (`None`: by `auth/login`), so a client cannot redeem another's.
    pub async fn consume_refresh_token(&self, hash: &str, client_id: Option<&str>, now: i64) -> Result<Option<String>> {
        let row = self
            .db
            .write()
            .await?
            .opt(
                "UPDATE tokens SET revoked = 1 WHERE hash = $1 AND kind = 'refresh' AND revoked = 0 AND expires_at > $2 \
                 AND COALESCE(client_id, '') = $3 RETURNING user_id",
                &[P::S(hash), P::I(now), P::S(client_id.unwrap_or(""))],
            )
            .await?;
        row.map(|r| r.str("user_id")).transpose()
    }

    /// Revoke a token issued to an OAuth client (RFC 7009): a refresh token takes its access
    /// tokens along, a credential token its SAD. Returns whether the client had such a token.
    pub async fn revoke_client_token(&self, hash: &str, client_id: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = c
                .exec(
                    "UPDATE tokens SET revoked = 1 WHERE client_id = $2 AND (hash = $1 OR (parent = $1 AND EXISTS \
                     (SELECT 1 FROM tokens p WHERE p.hash = $1 AND p.kind = 'refresh')))",
                    &[P::S(hash), P::S(client_id)],
                )
                .await?;
            c.exec(
                "UPDATE sads SET revoked = 1 WHERE hash = $1 AND EXISTS (SELECT 1 FROM tokens t WHERE t.hash = $1 AND t.client_id = $2)",
                &[P::S(hash), P::S(client_id)],
            )
            .await?;
            Ok((n > 0, true))
        })
    }

    // ---- OAuth 2.0 ----------------------------------------------------------------------------

    /// Register a client.
    pub async fn insert_client(&self, c: &ClientRow) -> Result<()> {
        let uris = c.redirect_uris.join("\n");
        self.db
            .write()
            .await?
            .exec(
                "INSERT INTO oauth_clients (id, name, secret_hash, redirect_uris, user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    P::S(&c.id),
                    P::S(&c.name),
                    P::OS(c.secret_hash.as_deref()),
                    P::S(&uris),
                    P::OS(c.user_id.as_deref()),
                    P::I(c.created_at),
                ],
            )
            .await?;
        Ok(())
    }

    /// One client.
    pub async fn client(&self, id: &str) -> Result<Option<ClientRow>> {
        let sql = "SELECT id, name, secret_hash, redirect_uris, user_id, created_at FROM oauth_clients WHERE id = $1";
        self.db.read().await?.opt(sql, &[P::S(id)]).await?.as_ref().map(client_row).transpose()
    }

    /// All clients, oldest first.
    pub async fn clients(&self) -> Result<Vec<ClientRow>> {
        let sql = "SELECT id, name, secret_hash, redirect_uris, user_id, created_at FROM oauth_clients ORDER BY created_at, id";
        self.db.read().await?.all(sql, &[]).await?.iter().map(client_row).collect()
    }

    /// Delete a client, revoking every token issued to it; returns whether it existed.
    pub async fn delete_client(&self, id: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            c.exec("UPDATE sads SET revoked = 1 WHERE hash IN (SELECT hash FROM tokens WHERE client_id = $1)", &[P::S(id)]).await?;
            c.exec("UPDATE tokens SET revoked = 1 WHERE client_id = $1", &[P::S(id)]).await?;
            c.exec("DELETE FROM oauth_codes WHERE client_id = $1", &[P::S(id)]).await?;
            c.exec("DELETE FROM oauth_requests WHERE client_id = $1", &[P::S(id)]).await?;
            let n = c.exec("DELETE FROM oauth_clients WHERE id = $1", &[P::S(id)]).await?;
            Ok((n == 1, true))
        })
    }

    /// Store a pending authorization request (`kind` `par` or `flow`).
    pub async fn put_oauth_request(&self, hash: &str, kind: &str, client_id: &str, request: &str, expires_at: i64) -> Result<()> {
        self.db
            .write()
            .await?
            .exec(
                "INSERT INTO oauth_requests (hash, kind, client_id, request, user_id, expires_at) VALUES ($1, $2, $3, $4, NULL, $5)",
                &[P::S(hash), P::S(kind), P::S(client_id), P::S(request), P::I(expires_at)],
            )
            .await?;
        Ok(())
    }

    /// A live pending request of `kind`.
    pub async fn oauth_request(&self, hash: &str, kind: &str, now: i64) -> Result<Option<OAuthRequestRow>> {
        let row = self
            .db
            .read()
            .await?
            .opt(
                "SELECT client_id, request, user_id, expires_at FROM oauth_requests WHERE hash = $1 AND kind = $2 AND expires_at > $3",
                &[P::S(hash), P::S(kind), P::I(now)],
            )
            .await?;
        row.as_ref().map(oauth_request_row).transpose()
    }

    /// Remove a live pending request and return it: each is used once.
    pub async fn take_oauth_request(&self, hash: &str, kind: &str, now: i64) -> Result<Option<OAuthRequestRow>> {
        let row = self
            .db
            .write()
            .await?
            .opt(
                "DELETE FROM oauth_requests WHERE hash = $1 AND kind = $2 AND expires_at > $3 RETURNING client_id, request, user_id, expires_at",
                &[P::S(hash), P::S(kind), P::I(now)],
            )
            .await?;
        row.as_ref().map(oauth_request_row).transpose()
    }

    /// Record who logged in on an authorization in progress.
    pub async fn set_oauth_request_user(&self, hash: &str, user_id: &str) -> Result<bool> {
        let n = self.db.write().await?.exec("UPDATE oauth_requests SET user_id = $2 WHERE hash = $1", &[P::S(hash), P::S(user_id)]).await?;
        Ok(n == 1)
    }

    /// Store an authorization code (by hash).
    pub async fn insert_code(&self, hash: &str, client_id: &str, user_id: &str, grant_json: &str, expires_at: i64) -> Result<()> {
        self.db
            .write()
            .await?
            .exec(
                "INSERT INTO oauth_codes (hash, client_id, user_id, grant_json, expires_at, used) VALUES ($1, $2, $3, $4, $5, 0)",
                &[P::S(hash), P::S(client_id), P::S(user_id), P::S(grant_json), P::I(expires_at)],
            )
            .await?;
        Ok(())
    }

    /// An authorization code, used or not.
    pub async fn code(&self, hash: &str) -> Result<Option<CodeRow>> {
        let row = self
            .db
            .read()
            .await?
            .opt("SELECT client_id, user_id, grant_json, expires_at, used FROM oauth_codes WHERE hash = $1", &[P::S(hash)])
            .await?;
        row.map(|r| {
            Ok(CodeRow {
                client_id: r.str("client_id")?,
                user_id: r.str("user_id")?,
                grant_json: r.str("grant_json")?,
                expires_at: r.i64("expires_at")?,
                used: r.flag("used")?,
            })
        })
        .transpose()
    }

    /// Exchange a code: mark it used and store what it issues, in one transaction, so a code
    /// is redeemed once even by racing requests on several nodes. A second exchange revokes
    /// what the first one issued.
    /// `spent_grant` replaces the stored grant once used (it drops what only the exchange needed).
    pub async fn redeem_code(&self, hash: &str, now: i64, issue: &CodeIssue<'_>, spent_grant: &str) -> Result<Redeemed> {
        transaction!(self.db, |c| {
            let n = c
                .exec(
                    "UPDATE oauth_codes SET used = 1, issued_access = $3, issued_refresh = $4, grant_json = $5 \
                     WHERE hash = $1 AND used = 0 AND expires_at > $2",
                    &[P::S(hash), P::I(now), P::S(issue.access.hash), P::OS(issue.refresh.as_ref().map(|r| r.hash)), P::S(spent_grant)],
                )
                .await?;
            if n == 1 {
                if let Some(r) = &issue.refresh {
                    insert_token(&mut c, r).await?;
                }
                insert_token(&mut c, &issue.access).await?;
                if let Some(s) = &issue.sad {
                    insert_sad(&mut c, s).await?;
                }
                return Ok((Redeemed::Issued, true));
            }
            let Some(row) = c
                .opt("SELECT used, issued_access, issued_refresh, client_id, user_id FROM oauth_codes WHERE hash = $1", &[P::S(hash)])
                .await?
            else {
                return Ok((Redeemed::Invalid, false));
            };
            if !row.flag("used")? {
                return Ok((Redeemed::Invalid, false));
            }
            let access = row.opt_str("issued_access")?.unwrap_or_default();
            let refresh = row.opt_str("issued_refresh")?.unwrap_or_default();
            // What the code issued may have been rotated (refresh) since: revoke everything this
            // client holds for this user, and the SADs behind its credential tokens.
            let (client, user) = (row.str("client_id")?, row.str("user_id")?);
            c.exec("UPDATE tokens SET revoked = 1 WHERE hash = $1 OR hash = $2 OR parent = $2", &[P::S(&access), P::S(&refresh)]).await?;
            c.exec("UPDATE tokens SET revoked = 1 WHERE client_id = $1 AND user_id = $2", &[P::S(&client), P::S(&user)]).await?;
            c.exec(
                "UPDATE sads SET revoked = 1 WHERE hash = $1 OR origin = $1 \
                 OR hash IN (SELECT hash FROM tokens WHERE client_id = $2 AND user_id = $3) \
                 OR origin IN (SELECT hash FROM tokens WHERE client_id = $2 AND user_id = $3)",
                &[P::S(&access), P::S(&client), P::S(&user)],
            )
            .await?;
            Ok((Redeemed::Reused, true))
        })
    }

    // ---- SAD --------------------------------------------------------------------------------

    /// Store a SAD with its bound digests.
    pub async fn insert_sad(&self, s: &NewSad<'_>) -> Result<()> {
        transaction!(self.db, |c| {
            insert_sad(&mut c, s).await?;
            Ok(((), true))
        })
    }

    /// Look a SAD up (to explain a refusal).
    pub async fn sad(&self, hash: &str) -> Result<Option<SadRow>> {
        let row = self
            .db
            .read()
            .await?
            .opt("SELECT user_id, credential_id, remaining, expires_at, revoked, sole_key FROM sads WHERE hash = $1", &[P::S(hash)])
            .await?;
        row.map(|r| {
            Ok(SadRow {
                user_id: r.str("user_id")?,
                credential_id: r.str("credential_id")?,
                remaining: r.i64("remaining")?,
                expires_at: r.i64("expires_at")?,
                revoked: r.flag("revoked")?,
                sole_key: r.opt_str("sole_key")?,
            })
        })
        .transpose()
    }

    /// Consume `digests.len()` signatures of a SAD, and each digest once if the SAD is bound,
    /// and write the audit record, in one transaction: all or nothing. The first statement
    /// takes the SAD row's write lock, so concurrent consumers (threads or server processes on
    /// one PostgreSQL) queue behind it and see the decremented count. On SQLite, requests
    /// waiting for the one writer share a transaction (group commit, see `group.rs`).
    #[allow(clippy::too_many_arguments)]
    pub async fn consume_sad(
        &self,
        hash: &str,
        user_id: &str,
        credential_id: &str,
        hash_algo: &str,
        digests_hex: Vec<String>,
        now: i64,
        audit: &NewAudit<'_>,
        guard: Option<&SadGuard<'_>>,
    ) -> Result<ConsumeOutcome> {
        let n = digests_hex.len() as i64;
        let job = group::ConsumeJob {
            hash: hash.to_string(),
            user_id: user_id.to_string(),
            credential_id: credential_id.to_string(),
            hash_algo: hash_algo.to_string(),
            digests_hex,
            now,
            audit: audit.into(),
            guard: guard.map(|g| (g.token_hash.to_string(), g.key_handle.to_string())),
        };
        let outcome = if self.db.is_postgres() {
            transaction!(self.db, |c| { consume_in(&mut c, &job).await })?
        } else {
            let (_queued, mut done) = self.consumers.push(job);
            tokio::select! {
                biased;
                // Another request's transaction ran this one.
                r = &mut done => r.map_err(|_| StoreError::Db("the consuming transaction was abandoned".into()))??,
                w = self.db.write() => {
                    let mut w = w?;
                    match done.try_recv() {
                        Ok(r) => r?,
                        Err(_) => {
                            tokio::task::yield_now().await;
                            self.consumers.lead(&mut w).await;
                            drop(w);
                            done.await.map_err(|_| StoreError::Db("the consuming transaction was abandoned".into()))??
                        }
                    }
                }
            }
        };
        match outcome {
            Some(o) => Ok(o),
            // A guarded caller falls back to fresh reads, which explain the refusal.
            None if guard.is_some() => Ok(ConsumeOutcome::Unknown),
            None => self.explain_refusal(hash, user_id, credential_id, n, now).await,
        }
    }

    async fn explain_refusal(&self, hash: &str, user_id: &str, credential_id: &str, n: i64, now: i64) -> Result<ConsumeOutcome> {
        let Some(s) = self.sad(hash).await? else { return Ok(ConsumeOutcome::Unknown) };
        Ok(if s.user_id != user_id || s.credential_id != credential_id || s.revoked {
            ConsumeOutcome::Unknown
        } else if s.expires_at <= now {
            ConsumeOutcome::Expired
        } else if s.remaining < n {
            ConsumeOutcome::Exhausted { remaining: s.remaining }
        } else {
            ConsumeOutcome::Unknown
        })
    }

    /// extendTransaction: supersede `old` by `new`, carrying the remaining count and the
    /// unused bound digests (plus the new ones), in one transaction. Returns the outcome for
    /// `old` (Consumed means the new SAD is stored) and the count carried over.
    pub async fn extend_sad(
        &self,
        old: &str,
        user_id: &str,
        credential_id: &str,
        new: &NewSad<'_>,
        extra_digests: &[String],
    ) -> Result<(ConsumeOutcome, i64)> {
        let result = transaction!(self.db, |c| {
            let row = c
                .opt(
                    "UPDATE sads SET revoked = 1 WHERE hash = $1 AND user_id = $2 AND credential_id = $3 AND revoked = 0 AND expires_at > $4 AND remaining > 0 \
                     RETURNING remaining, bound, hash_algo",
                    &[P::S(old), P::S(user_id), P::S(credential_id), P::I(new.now)],
                )
                .await?;
            let Some(row) = row else { return Ok((None, false)) };
            let remaining = row.i64("remaining")?;
            let bound = row.flag("bound")?;
            let old_algo = row.opt_str("hash_algo")?;
            let mut digests: Vec<String> = Vec::new();
            if bound {
                for r in c.all("SELECT digest FROM sad_hashes WHERE sad = $1 AND used = 0 ORDER BY idx", &[P::S(old)]).await? {
                    digests.push(r.str("digest")?);
                }
                if !extra_digests.is_empty() && new.hash_algo.is_some() && old_algo.as_deref() != new.hash_algo {
                    return Ok((Some((ConsumeOutcome::HashAlgorithmMismatch, remaining)), false));
                }
            }
            digests.extend(extra_digests.iter().cloned());
            if digests.len() as i64 > remaining {
                return Ok((Some((ConsumeOutcome::Exhausted { remaining }, remaining)), false));
            }
            let algo = if bound { old_algo.as_deref() } else { new.hash_algo };
            let keep_bound = bound || !extra_digests.is_empty();
            let fresh = NewSad { remaining, hash_algo: algo, digests: keep_bound.then_some(digests.as_slice()), ..*new };
            insert_sad(&mut c, &fresh).await?;
            // The first SAD of the line (an OAuth credential token, say): revoking it reaches
            // every extension (`redeem_code` on a replayed code).
            c.exec(
                "UPDATE sads SET origin = (SELECT COALESCE(origin, hash) FROM sads WHERE hash = $2) WHERE hash = $1",
                &[P::S(fresh.hash), P::S(old)],
            )
            .await?;
            Ok((Some((ConsumeOutcome::Consumed, remaining)), true))
        })?;
        match result {
            Some(r) => Ok(r),
            None => Ok((self.explain_refusal(old, user_id, credential_id, 1, new.now).await?, 0)),
        }
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
            n += c.exec("DELETE FROM oauth_requests WHERE expires_at < $1", &[P::I(now)]).await?;
            // Used codes are kept a day past expiry so that a replay still revokes what they issued.
            n += c.exec("DELETE FROM oauth_codes WHERE expires_at < $1", &[P::I(now - 86_400)]).await?;
            Ok((n, true))
        })
    }

    // ---- audit ------------------------------------------------------------------------------

    /// Append an audit event.
    pub async fn audit(&self, e: &NewAudit<'_>) -> Result<()> {
        insert_audit(&mut self.db.write().await?, e).await
    }

    /// The latest `limit` events, oldest first.
    pub async fn audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>> {
        let rows = self
            .db
            .read()
            .await?
            .all("SELECT seq, at, actor, event, outcome, credential_id, detail FROM audit ORDER BY seq DESC LIMIT $1", &[P::I(limit)])
            .await?;
        let mut events = rows
            .iter()
            .map(|r| {
                Ok(AuditEvent {
                    seq: r.i64("seq")?,
                    at: r.i64("at")?,
                    actor: r.str("actor")?,
                    event: r.str("event")?,
                    outcome: r.str("outcome")?,
                    credential_id: r.opt_str("credential_id")?,
                    detail: r.str("detail")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }
}

async fn insert_sad(c: &mut Conn<'_>, s: &NewSad<'_>) -> Result<()> {
    c.exec(
        "INSERT INTO sads (hash, user_id, credential_id, remaining, bound, hash_algo, expires_at, revoked, created_at, sole_key) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
        &[P::S(s.hash), P::S(s.user_id), P::S(s.credential_id), P::I(s.remaining), P::I(i64::from(s.digests.is_some())), P::OS(s.hash_algo), P::I(s.expires_at), P::I(s.now), P::OS(s.sole_key)],
    )
    .await?;
    if let Some(digests) = s.digests {
        for (i, d) in digests.iter().enumerate() {
            c.exec("INSERT INTO sad_hashes (sad, idx, digest, used) VALUES ($1, $2, $3, 0)", &[P::S(s.hash), P::I(i as i64), P::S(d)])
                .await?;
        }
    }
    Ok(())
}

async fn insert_token(c: &mut Conn<'_>, t: &NewToken<'_>) -> Result<()> {
    c.exec(
        "INSERT INTO tokens (hash, kind, user_id, parent, expires_at, revoked, created_at, client_id, credential_id) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8)",
        &[
            P::S(t.hash),
            P::S(t.kind),
            P::S(t.user_id),
            P::OS(t.parent),
            P::I(t.expires_at),
            P::I(t.now),
            P::OS(t.client_id),
            P::OS(t.credential_id),
        ],
    )
    .await?;
    Ok(())
}

fn client_row(r: &Row) -> Result<ClientRow> {
    Ok(ClientRow {
        id: r.str("id")?,
        name: r.str("name")?,
        secret_hash: r.opt_str("secret_hash")?,
        redirect_uris: r.str("redirect_uris")?.split('\n').filter(|u| !u.is_empty()).map(String::from).collect(),
        user_id: r.opt_str("user_id")?,
        created_at: r.i64("created_at")?,
    })
}

fn oauth_request_row(r: &Row) -> Result<OAuthRequestRow> {
    Ok(OAuthRequestRow {
        client_id: r.str("client_id")?,
        request: r.str("request")?,
        user_id: r.opt_str("user_id")?,
        expires_at: r.i64("expires_at")?,
    })
}

/// The statements of one SAD consumption (see [`Store::consume_sad`]), in the caller's
/// transaction: `(None, false)` when the SAD's conditions do not hold.
pub(crate) async fn consume_in(c: &mut Conn<'_>, job: &group::ConsumeJob) -> Result<group::Decided> {
    let n = job.digests_hex.len() as i64;
    let (hash, user_id, credential_id, now) = (job.hash.as_str(), job.user_id.as_str(), job.credential_id.as_str(), job.now);
    let row = match &job.guard {
        None => {
            c.opt(
                "UPDATE sads SET remaining = remaining - $4 \
                 WHERE hash = $1 AND user_id = $2 AND credential_id = $3 AND revoked = 0 AND expires_at > $5 AND remaining >= $4 \
                 RETURNING bound, hash_algo",
                &[P::S(hash), P::S(user_id), P::S(credential_id), P::I(n), P::I(now)],
            )
            .await?
        }
        Some((token_hash, key_handle)) => {
            c.opt(
                "UPDATE sads SET remaining = remaining - $4 \
                 WHERE hash = $1 AND user_id = $2 AND credential_id = $3 AND revoked = 0 AND expires_at > $5 AND remaining >= $4 \
                 AND EXISTS (SELECT 1 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $6 AND t.user_id = $2 \
                   AND t.revoked = 0 AND t.expires_at > $5 AND u.disabled = 0) \
                 AND EXISTS (SELECT 1 FROM credentials c WHERE c.id = $3 AND c.user_id = $2 AND c.disabled = 0 AND c.locked = 0 \
                   AND c.cert_status = 'valid' AND c.key_handle = $7 AND c.not_before <= $5 AND c.not_after > $5) \
                 RETURNING bound, hash_algo",
                &[P::S(hash), P::S(user_id), P::S(credential_id), P::I(n), P::I(now), P::S(token_hash), P::S(key_handle)],
            )
            .await?
        }
    };
    let Some(row) = row else { return Ok((None, false)) };
    if row.flag("bound")? {
        if row.opt_str("hash_algo")?.as_deref() != Some(job.hash_algo.as_str()) {
            return Ok((Some(ConsumeOutcome::HashAlgorithmMismatch), false));
        }
        for d in &job.digests_hex {
            let used = c
                .exec(
                    "UPDATE sad_hashes SET used = 1 WHERE sad = $1 AND idx = (SELECT MIN(idx) FROM sad_hashes WHERE sad = $1 AND digest = $2 AND used = 0)",
                    &[P::S(hash), P::S(d)],
                )
                .await?;
            if used != 1 {
                return Ok((Some(ConsumeOutcome::HashNotAuthorized), false));
            }
        }
    }
    c.exec(INSERT_AUDIT, &job.audit.params()).await?;
    Ok((Some(ConsumeOutcome::Consumed), true))
}

const INSERT_AUDIT: &str = "INSERT INTO audit (at, actor, event, outcome, credential_id, detail) VALUES ($1, $2, $3, $4, $5, $6)";

async fn insert_audit(c: &mut Conn<'_>, e: &NewAudit<'_>) -> Result<()> {
    c.exec(INSERT_AUDIT, &[P::I(e.at), P::S(e.actor), P::S(e.event), P::S(e.outcome), P::OS(e.credential_id), P::S(e.detail)]).await?;
    Ok(())
}
