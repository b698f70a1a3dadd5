//! Persistence behind one interface, on SQLite (embedded default) or PostgreSQL (several
//! stateless nodes). One SQL dialect subset serves both through sqlx's `Any` driver: `$n`
//! placeholders, BIGINT for integers and flags, TEXT for everything else (binary values are
//! stored base64 by the caller).
//!
//! Every rule that must hold across threads and processes is one atomic statement here:
//! SAD consumption, PIN attempt counting, TOTP replay refusal.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod schema;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A unique constraint was violated (e.g. a user name that already exists).
    #[error("already exists")]
    Conflict,
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The store.
#[derive(Clone)]
pub struct Store {
    /// Readers (and, on PostgreSQL, writers too).
    pool: AnyPool,
    /// Writers. On SQLite one connection: SQLite admits one writer at a time, and concurrent
    /// writers on separate connections would sleep in SQLite's busy handler; queueing them here
    /// instead keeps the write path at the speed of a single commit.
    writer: AnyPool,
    backend: Backend,
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
    /// `root` or `issuing`.
    pub name: String,
    /// The certificate.
    pub cert: CertRow,
    /// Base64 key handle.
    pub key_handle_b64: String,
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
}

/// What a bearer token resolves to.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// `access` or `refresh`.
    pub kind: String,
    /// Owner.
    pub user_id: String,
    /// Owner's login name.
    pub user_name: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Revoked.
    pub revoked: bool,
    /// The refresh token this access token came from.
    pub parent: Option<String>,
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
    /// Whether hashes are bound (SCAL 2 or hashes given).
    pub bound: bool,
    /// OID of the bound hashes.
    pub hash_algo: Option<String>,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Superseded by extendTransaction or revoked.
    pub revoked: bool,
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

fn b(v: i64) -> bool {
    v != 0
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.code().is_some_and(|c| c == "23505" || c == "2067" || c == "1555") || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

const USER_COLS: &str = "id, name, password_hash, disabled, created_at";
const CRED_COLS: &str = "id, user_id, key_algo, key_handle, cert_der, serial_hex, subject_dn, issuer_dn, not_before, not_after, scal, multisign, pin_hash, pin_format, otp_kind, otp_secret, failed_attempts, locked, disabled, description, created_at";

fn user_row(r: &AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        disabled: b(r.try_get("disabled")?),
        created_at: r.try_get("created_at")?,
    })
}

fn cred_row(r: &AnyRow) -> Result<CredentialRow> {
    Ok(CredentialRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        key_algo: r.try_get("key_algo")?,
        key_handle_b64: r.try_get("key_handle")?,
        cert: CertRow {
            der_b64: r.try_get("cert_der")?,
            serial_hex: r.try_get("serial_hex")?,
            subject_dn: r.try_get("subject_dn")?,
            issuer_dn: r.try_get("issuer_dn")?,
            not_before: r.try_get("not_before")?,
            not_after: r.try_get("not_after")?,
        },
        scal: r.try_get("scal")?,
        multisign: r.try_get("multisign")?,
        pin_hash: r.try_get("pin_hash")?,
        pin_format: r.try_get("pin_format")?,
        otp_kind: r.try_get("otp_kind")?,
        otp_secret_b64: r.try_get("otp_secret")?,
        failed_attempts: r.try_get("failed_attempts")?,
        locked: b(r.try_get("locked")?),
        disabled: b(r.try_get("disabled")?),
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Connect and bring the schema up to date. `url` is `sqlite://PATH` or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") { Backend::Postgres } else { Backend::Sqlite };
        let options = AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 8 } else { 16 });
        let options = if backend == Backend::Sqlite {
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; NORMAL sync is durable across
                    // application crashes (SQLite docs, "WAL mode"), and the busy timeout makes
                    // the admin CLI and the server wait for each other instead of failing.
                    sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.clone().connect(url).await?;
        let writer = if backend == Backend::Sqlite { options.max_connections(1).connect(url).await? } else { pool.clone() };
        let store = Self { pool, writer, backend };
        schema::migrate(&store.pool, backend).await?;
        Ok(store)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    // ---- meta -------------------------------------------------------------------------------

    /// Read a metadata value.
    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT v FROM meta WHERE k = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) => Some(r.try_get("v")?),
            None => None,
        })
    }

    /// Set a metadata value unless one exists; returns the value now stored.
    pub async fn meta_insert_if_absent(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(self.meta(key).await?.unwrap_or_default())
    }

    // ---- CA ---------------------------------------------------------------------------------

    /// Store a CA certificate unless one of that name exists (first node wins).
    pub async fn insert_ca_if_absent(&self, ca: &CaRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO ca_certs (name, cert_der, key_handle, serial_hex, subject_dn, issuer_dn, not_before, not_after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&ca.name)
        .bind(&ca.cert.der_b64)
        .bind(&ca.key_handle_b64)
        .bind(&ca.cert.serial_hex)
        .bind(&ca.cert.subject_dn)
        .bind(&ca.cert.issuer_dn)
        .bind(ca.cert.not_before)
        .bind(ca.cert.not_after)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Store a whole CA hierarchy in one transaction, unless a hierarchy exists already.
    /// Returns false when another process got there first.
    pub async fn insert_ca_hierarchy(&self, cas: &[CaRow]) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let exists = sqlx::query("SELECT name FROM ca_certs").fetch_optional(&mut *tx).await?.is_some();
        if exists {
            tx.rollback().await?;
            return Ok(false);
        }
        for ca in cas {
            let r = sqlx::query(
                "INSERT INTO ca_certs (name, cert_der, key_handle, serial_hex, subject_dn, issuer_dn, not_before, not_after) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&ca.name)
            .bind(&ca.cert.der_b64)
            .bind(&ca.key_handle_b64)
            .bind(&ca.cert.serial_hex)
            .bind(&ca.cert.subject_dn)
            .bind(&ca.cert.issuer_dn)
            .bind(ca.cert.not_before)
            .bind(ca.cert.not_after)
            .execute(&mut *tx)
            .await;
            if let Err(e) = r {
                if is_unique_violation(&e) {
                    return Ok(false);
                }
                return Err(e.into());
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Read a CA certificate.
    pub async fn ca(&self, name: &str) -> Result<Option<CaRow>> {
        let row = sqlx::query(
            "SELECT name, cert_der, key_handle, serial_hex, subject_dn, issuer_dn, not_before, not_after FROM ca_certs WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(CaRow {
            name: r.try_get("name")?,
            key_handle_b64: r.try_get("key_handle")?,
            cert: CertRow {
                der_b64: r.try_get("cert_der")?,
                serial_hex: r.try_get("serial_hex")?,
                subject_dn: r.try_get("subject_dn")?,
                issuer_dn: r.try_get("issuer_dn")?,
                not_before: r.try_get("not_before")?,
                not_after: r.try_get("not_after")?,
            },
        }))
    }

    // ---- users ------------------------------------------------------------------------------

    /// Create a user; `Conflict` if the name is taken.
    pub async fn insert_user(&self, u: &UserRow) -> Result<()> {
        sqlx::query("INSERT INTO users (id, name, password_hash, disabled, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&u.id)
            .bind(&u.name)
            .bind(&u.password_hash)
            .bind(i64::from(u.disabled))
            .bind(u.created_at)
            .execute(&self.writer)
            .await
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict } else { e.into() })?;
        Ok(())
    }

    /// Find a user by login name.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_row).transpose()
    }

    /// Find a user by id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_row).transpose()
    }

    /// All users by name.
    pub async fn users(&self) -> Result<Vec<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(user_row).collect()
    }

    /// Enable or disable a user; returns whether the user exists. Disabling also revokes the
    /// user's tokens so that a disabled account is shut out at once.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("UPDATE users SET disabled = $1 WHERE name = $2")
            .bind(i64::from(disabled))
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if disabled {
            sqlx::query("UPDATE tokens SET revoked = 1 WHERE user_id = (SELECT id FROM users WHERE name = $1)")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Delete a user with everything it owns; returns whether it existed.
    pub async fn delete_user(&self, name: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let Some(row) = sqlx::query("SELECT id FROM users WHERE name = $1").bind(name).fetch_optional(&mut *tx).await? else {
            return Ok(false);
        };
        let id: String = row.try_get("id")?;
        for sql in [
            "DELETE FROM sad_hashes WHERE sad IN (SELECT hash FROM sads WHERE user_id = $1)",
            "DELETE FROM sads WHERE user_id = $1",
            "DELETE FROM otp_challenges WHERE credential_id IN (SELECT id FROM credentials WHERE user_id = $1)",
            "DELETE FROM credentials WHERE user_id = $1",
            "DELETE FROM tokens WHERE user_id = $1",
            "DELETE FROM users WHERE id = $1",
        ] {
            sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    // ---- credentials ------------------------------------------------------------------------

    /// Store a new credential.
    pub async fn insert_credential(&self, c: &CredentialRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO credentials (id, user_id, key_algo, key_handle, cert_der, serial_hex, subject_dn, issuer_dn, not_before, not_after, \
             scal, multisign, pin_hash, pin_format, otp_kind, otp_secret, failed_attempts, locked, disabled, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $18, $14, $15, 0, 0, 0, $16, $17)",
        )
        .bind(&c.id)
        .bind(&c.user_id)
        .bind(&c.key_algo)
        .bind(&c.key_handle_b64)
        .bind(&c.cert.der_b64)
        .bind(&c.cert.serial_hex)
        .bind(&c.cert.subject_dn)
        .bind(&c.cert.issuer_dn)
        .bind(c.cert.not_before)
        .bind(c.cert.not_after)
        .bind(c.scal)
        .bind(c.multisign)
        .bind(&c.pin_hash)
        .bind(&c.otp_kind)
        .bind(&c.otp_secret_b64)
        .bind(&c.description)
        .bind(c.created_at)
        .bind(&c.pin_format)
        .execute(&self.writer)
        .await
        .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict } else { e.into() })?;
        Ok(())
    }

    /// One credential.
    pub async fn credential(&self, id: &str) -> Result<Option<CredentialRow>> {
        let sql = format!("SELECT {CRED_COLS} FROM credentials WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(cred_row).transpose()
    }

    /// A user's credentials, oldest first; all credentials when `user_id` is `None`.
    pub async fn credentials(&self, user_id: Option<&str>) -> Result<Vec<CredentialRow>> {
        let rows = match user_id {
            Some(u) => {
                let sql = format!("SELECT {CRED_COLS} FROM credentials WHERE user_id = $1 ORDER BY created_at, id");
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(u).fetch_all(&self.pool).await?
            }
            None => {
                let sql = format!("SELECT {CRED_COLS} FROM credentials ORDER BY created_at, id");
                sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?
            }
        };
        rows.iter().map(cred_row).collect()
    }

    /// Enable or disable a credential; returns whether it exists.
    pub async fn set_credential_disabled(&self, id: &str, disabled: bool) -> Result<bool> {
        let n = sqlx::query("UPDATE credentials SET disabled = $1 WHERE id = $2")
            .bind(i64::from(disabled))
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Clear the failure counter and the lock; returns whether it exists.
    pub async fn unlock_credential(&self, id: &str) -> Result<bool> {
        let n = sqlx::query("UPDATE credentials SET locked = 0, failed_attempts = 0 WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Delete a credential, its SADs and its challenges; returns whether it existed.
    pub async fn delete_credential(&self, id: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM sad_hashes WHERE sad IN (SELECT hash FROM sads WHERE credential_id = $1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sads WHERE credential_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM otp_challenges WHERE credential_id = $1").bind(id).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM credentials WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Reserve one authorization attempt before the factors are checked, so that parallel
    /// guesses cannot outrun the lockout: the counter goes up first and comes back to zero
    /// only on success. Returns the attempt number, or `None` if the credential is locked or
    /// has no attempts left (in which case it is marked locked).
    pub async fn begin_attempt(&self, id: &str, max_attempts: i64) -> Result<Option<i64>> {
        let row = sqlx::query(
            "UPDATE credentials SET failed_attempts = failed_attempts + 1 \
             WHERE id = $1 AND locked = 0 AND failed_attempts < $2 RETURNING failed_attempts",
        )
        .bind(id)
        .bind(max_attempts)
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(r) => Ok(Some(r.try_get("failed_attempts")?)),
            None => {
                sqlx::query("UPDATE credentials SET locked = 1 WHERE id = $1 AND failed_attempts >= $2")
                    .bind(id)
                    .bind(max_attempts)
                    .execute(&self.writer)
                    .await?;
                Ok(None)
            }
        }
    }

    /// The attempt succeeded: clear the counter.
    pub async fn attempt_succeeded(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE credentials SET failed_attempts = 0 WHERE id = $1").bind(id).execute(&self.writer).await?;
        Ok(())
    }

    /// The attempt failed: the counter stays up; lock when it reached the limit. Returns
    /// whether the credential is now locked.
    pub async fn attempt_failed(&self, id: &str, max_attempts: i64) -> Result<bool> {
        let row = sqlx::query(
            "UPDATE credentials SET locked = CASE WHEN failed_attempts >= $2 THEN 1 ELSE locked END WHERE id = $1 RETURNING locked",
        )
        .bind(id)
        .bind(max_attempts)
        .fetch_optional(&self.writer)
        .await?;
        Ok(match row {
            Some(r) => b(r.try_get("locked")?),
            None => false,
        })
    }

    /// Record a TOTP time step as used, refusing it if that step or a later one was used
    /// already (RFC 6238 §5.2: a code is accepted once).
    pub async fn use_totp_step(&self, id: &str, step: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE credentials SET otp_last_step = $2 WHERE id = $1 AND otp_last_step < $2")
            .bind(id)
            .bind(step)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Store (replacing) the pending online OTP of a credential.
    pub async fn put_otp_challenge(&self, credential_id: &str, code_hash: &str, expires_at: i64) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM otp_challenges WHERE credential_id = $1").bind(credential_id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO otp_challenges (credential_id, code_hash, expires_at) VALUES ($1, $2, $3)")
            .bind(credential_id)
            .bind(code_hash)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Take the pending online OTP (it is deleted: one use). Returns (hash, expiry).
    pub async fn take_otp_challenge(&self, credential_id: &str) -> Result<Option<(String, i64)>> {
        let row = sqlx::query("DELETE FROM otp_challenges WHERE credential_id = $1 RETURNING code_hash, expires_at")
            .bind(credential_id)
            .fetch_optional(&self.writer)
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("code_hash")?, r.try_get("expires_at")?)),
            None => None,
        })
    }

    // ---- tokens -----------------------------------------------------------------------------

    /// Store a token (by hash).
    pub async fn insert_token(&self, hash: &str, kind: &str, user_id: &str, parent: Option<&str>, expires_at: i64, now: i64) -> Result<()> {
        sqlx::query("INSERT INTO tokens (hash, kind, user_id, parent, expires_at, revoked, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6)")
            .bind(hash)
            .bind(kind)
            .bind(user_id)
            .bind(parent)
            .bind(expires_at)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Resolve a token hash, with its (enabled) owner.
    pub async fn token(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = sqlx::query(
            "SELECT t.kind, t.user_id, u.name, t.expires_at, t.revoked, t.parent, u.disabled FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let disabled: i64 = r.try_get("disabled")?;
        Ok(Some(TokenRow {
            kind: r.try_get("kind")?,
            user_id: r.try_get("user_id")?,
            user_name: r.try_get("name")?,
            expires_at: r.try_get("expires_at")?,
            revoked: b(r.try_get("revoked")?) || b(disabled),
            parent: r.try_get("parent")?,
        }))
    }

    /// Revoke a token; revoking a refresh token also revokes the access tokens issued from it
    /// (CSC §11.3, RFC 7009 §2.1). Only the user's own tokens are touched. Returns whether a
    /// token was found.
    pub async fn revoke_token(&self, hash: &str, user_id: &str) -> Result<bool> {
        let n = sqlx::query("UPDATE tokens SET revoked = 1 WHERE user_id = $2 AND (hash = $1 OR (parent = $1 AND EXISTS (SELECT 1 FROM tokens p WHERE p.hash = $1 AND p.kind = 'refresh')))")
            .bind(hash)
            .bind(user_id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Atomically revoke a refresh token for rotation; true if it was live and now is not.
    pub async fn consume_refresh_token(&self, hash: &str, now: i64) -> Result<Option<String>> {
        let row = sqlx::query(
            "UPDATE tokens SET revoked = 1 WHERE hash = $1 AND kind = 'refresh' AND revoked = 0 AND expires_at > $2 RETURNING user_id",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("user_id")?),
            None => None,
        })
    }

    // ---- SAD --------------------------------------------------------------------------------

    /// Store a SAD with its bound digests.
    pub async fn insert_sad(&self, s: &NewSad<'_>) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        insert_sad_tx(&mut tx, s).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Look a SAD up (to explain a refusal).
    pub async fn sad(&self, hash: &str) -> Result<Option<SadRow>> {
        let row = sqlx::query("SELECT user_id, credential_id, remaining, bound, hash_algo, expires_at, revoked FROM sads WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(SadRow {
            user_id: r.try_get("user_id")?,
            credential_id: r.try_get("credential_id")?,
            remaining: r.try_get("remaining")?,
            bound: b(r.try_get("bound")?),
            hash_algo: r.try_get("hash_algo")?,
            expires_at: r.try_get("expires_at")?,
            revoked: b(r.try_get("revoked")?),
        }))
    }

    /// Consume `digests.len()` signatures of a SAD, and each digest once if the SAD is bound,
    /// and write the audit record, in one transaction: all or nothing. The first statement
    /// takes the SAD row's write lock, so concurrent consumers (threads or server processes on
    /// one PostgreSQL) queue behind it and see the decremented count.
    pub async fn consume_sad(
        &self,
        hash: &str,
        user_id: &str,
        credential_id: &str,
        hash_algo: &str,
        digests_hex: &[String],
        now: i64,
        audit: &NewAudit<'_>,
    ) -> Result<ConsumeOutcome> {
        let n = digests_hex.len() as i64;
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "UPDATE sads SET remaining = remaining - $4 \
             WHERE hash = $1 AND user_id = $2 AND credential_id = $3 AND revoked = 0 AND expires_at > $5 AND remaining >= $4 \
             RETURNING bound, hash_algo",
        )
        .bind(hash)
        .bind(user_id)
        .bind(credential_id)
        .bind(n)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return self.explain_refusal(hash, user_id, credential_id, n, now).await;
        };
        if b(row.try_get("bound")?) {
            let bound_algo: Option<String> = row.try_get("hash_algo")?;
            if bound_algo.as_deref() != Some(hash_algo) {
                tx.rollback().await?;
                return Ok(ConsumeOutcome::HashAlgorithmMismatch);
            }
            for d in digests_hex {
                let used = sqlx::query(
                    "UPDATE sad_hashes SET used = 1 WHERE sad = $1 AND idx = (SELECT MIN(idx) FROM sad_hashes WHERE sad = $1 AND digest = $2 AND used = 0)",
                )
                .bind(hash)
                .bind(d)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if used != 1 {
                    tx.rollback().await?;
                    return Ok(ConsumeOutcome::HashNotAuthorized);
                }
            }
        }
        insert_audit_tx(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(ConsumeOutcome::Consumed)
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
    /// `old` (Consumed means the new SAD is stored).
    pub async fn extend_sad(
        &self,
        old: &str,
        user_id: &str,
        credential_id: &str,
        new: &NewSad<'_>,
        extra_digests: &[String],
    ) -> Result<(ConsumeOutcome, i64)> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "UPDATE sads SET revoked = 1 WHERE hash = $1 AND user_id = $2 AND credential_id = $3 AND revoked = 0 AND expires_at > $4 AND remaining > 0 \
             RETURNING remaining, bound, hash_algo",
        )
        .bind(old)
        .bind(user_id)
        .bind(credential_id)
        .bind(new.now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            let outcome = self.explain_refusal(old, user_id, credential_id, 1, new.now).await?;
            return Ok((outcome, 0));
        };
        let remaining: i64 = row.try_get("remaining")?;
        let bound = b(row.try_get("bound")?);
        let old_algo: Option<String> = row.try_get("hash_algo")?;
        let mut digests: Vec<String> = Vec::new();
        if bound {
            let rows =
                sqlx::query("SELECT digest FROM sad_hashes WHERE sad = $1 AND used = 0 ORDER BY idx").bind(old).fetch_all(&mut *tx).await?;
            for r in rows {
                digests.push(r.try_get("digest")?);
            }
            if !extra_digests.is_empty() && new.hash_algo.is_some() && old_algo.as_deref() != new.hash_algo {
                tx.rollback().await?;
                return Ok((ConsumeOutcome::HashAlgorithmMismatch, remaining));
            }
        }
        digests.extend(extra_digests.iter().cloned());
        if digests.len() as i64 > remaining {
            tx.rollback().await?;
            return Ok((ConsumeOutcome::Exhausted { remaining }, remaining));
        }
        let algo = if bound { old_algo.as_deref() } else { new.hash_algo };
        let keep_bound = bound || !extra_digests.is_empty();
        let fresh = NewSad { remaining, hash_algo: algo, digests: keep_bound.then_some(digests.as_slice()), ..*new };
        insert_sad_tx(&mut tx, &fresh).await?;
        tx.commit().await?;
        Ok((ConsumeOutcome::Consumed, remaining))
    }

    // ---- audit ------------------------------------------------------------------------------

    /// Append an audit event.
    pub async fn audit(&self, e: &NewAudit<'_>) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        insert_audit_tx(&mut tx, e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest `limit` events, oldest first.
    pub async fn audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query("SELECT seq, at, actor, event, outcome, credential_id, detail FROM audit ORDER BY seq DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut events = rows
            .iter()
            .map(|r| {
                Ok(AuditEvent {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    event: r.try_get("event")?,
                    outcome: r.try_get("outcome")?,
                    credential_id: r.try_get("credential_id")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }
}

async fn insert_sad_tx(tx: &mut sqlx::Transaction<'_, sqlx::Any>, s: &NewSad<'_>) -> Result<()> {
    sqlx::query("INSERT INTO sads (hash, user_id, credential_id, remaining, bound, hash_algo, expires_at, revoked, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)")
        .bind(s.hash)
        .bind(s.user_id)
        .bind(s.credential_id)
        .bind(s.remaining)
        .bind(i64::from(s.digests.is_some()))
        .bind(s.hash_algo)
        .bind(s.expires_at)
        .bind(s.now)
        .execute(&mut **tx)
        .await?;
    if let Some(digests) = s.digests {
        for (i, d) in digests.iter().enumerate() {
            sqlx::query("INSERT INTO sad_hashes (sad, idx, digest, used) VALUES ($1, $2, $3, 0)")
                .bind(s.hash)
                .bind(i as i64)
                .bind(d)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

async fn insert_audit_tx(tx: &mut sqlx::Transaction<'_, sqlx::Any>, e: &NewAudit<'_>) -> Result<()> {
    sqlx::query("INSERT INTO audit (at, actor, event, outcome, credential_id, detail) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(e.at)
        .bind(e.actor)
        .bind(e.event)
        .bind(e.outcome)
        .bind(e.credential_id)
        .bind(e.detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
