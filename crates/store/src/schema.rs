//! The schema, created on first connect. One script for both databases; only the audit
//! sequence column differs.

use crate::Result;
use crate::db::{Db, P};

/// Version 2: certificate status (revoked, suspended) on credentials.
/// Version 3: OAuth 2.0 (clients, pending authorization requests, codes; credential auth mode;
/// the client and credential a token was issued for).
/// Version 4: where a credential's key lives (`software` or `pkcs11`); sole control (the salt
/// of a credential's PIN-derived wrapping key, and a SAD's copy of that key); the certificates
/// a renewal replaced.
/// Version 5: password-guessing backoff on users (failed logins, blocked until).
/// Version 6: the SAD an extended SAD descends from (`origin`), so that revoking a SAD (an OAuth
/// code replayed) reaches its extensions.
/// Version 7: the access token a SAD was obtained with (`sads.token`), so that revoking the
/// token revokes the SAD; authorization attempts in flight (`auth_attempts`), so that only
/// failures count towards a lockout or backoff.
/// Version 8: the audit hash chain (`audit.prev_hash`, `audit.hash`, the chain head
/// `audit_head`) and signed checkpoints (`audit_checkpoints`); records written before are
/// chained at migration (`audit::chain_existing`).
/// Version 9: asynchronous signature requests (`async_jobs`, CSC API 2.2.0.0 `operationMode: "A"`).
/// Version 10: out-of-band credential authorization: the approver of a credential
/// (`credentials.approval`, NULL for none) and the pending approvals (`approvals`, CSC v2 §11.6
/// 202 answer and §11.7 `credentials/authorizeCheck`).
/// Version 11: the signer's own devices (issue 18, `docs/device-protocol.md`): pairing codes
/// and sessions (`device_pairings`), paired devices (`devices`), and the requests sent to them
/// (`device_requests`).
const SCHEMA_VERSION: &str = "11";

/// Migrations from each older version to the next, run in order.
const MIGRATIONS: &[(&str, &[&str])] = &[
    (
        "1",
        &[
            "ALTER TABLE credentials ADD COLUMN cert_status TEXT NOT NULL DEFAULT 'valid'",
            "ALTER TABLE credentials ADD COLUMN revoked_at BIGINT",
            "ALTER TABLE credentials ADD COLUMN revocation_reason BIGINT",
        ],
    ),
    (
        "2",
        &[
            "ALTER TABLE credentials ADD COLUMN auth_mode TEXT NOT NULL DEFAULT 'explicit'",
            "ALTER TABLE tokens ADD COLUMN client_id TEXT",
            "ALTER TABLE tokens ADD COLUMN credential_id TEXT",
        ],
    ),
    (
        "3",
        &[
            "ALTER TABLE credentials ADD COLUMN key_backend TEXT NOT NULL DEFAULT 'software'",
            "ALTER TABLE credentials ADD COLUMN pin_wrap_salt TEXT",
            "ALTER TABLE sads ADD COLUMN sole_key TEXT",
            "ALTER TABLE ca_certs ADD COLUMN key_backend TEXT NOT NULL DEFAULT 'software'",
        ],
    ),
    (
        "4",
        &[
            "ALTER TABLE users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE users ADD COLUMN login_blocked_until BIGINT NOT NULL DEFAULT 0",
        ],
    ),
    ("5", &["ALTER TABLE sads ADD COLUMN origin TEXT"]),
    ("6", &["ALTER TABLE sads ADD COLUMN token TEXT"]),
    // Then `audit::chain_existing` (in `migrate`).
    ("7", &["ALTER TABLE audit ADD COLUMN prev_hash TEXT", "ALTER TABLE audit ADD COLUMN hash TEXT"]),
    // The table itself is in `TABLES` (created if absent on every start).
    ("8", &[]),
    // `approvals` is in `TABLES`.
    ("9", &["ALTER TABLE credentials ADD COLUMN approval TEXT"]),
    // `device_pairings`, `devices` and `device_requests` are in `TABLES`.
    ("10", &[]),
];

const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ca_certs (name TEXT PRIMARY KEY, cert_der TEXT NOT NULL, key_handle TEXT NOT NULL, serial_hex TEXT NOT NULL, \
     subject_dn TEXT NOT NULL, issuer_dn TEXT NOT NULL, not_before BIGINT NOT NULL, not_after BIGINT NOT NULL, \
     key_backend TEXT NOT NULL DEFAULT 'software')",
    "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, \
     disabled BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, failed_logins BIGINT NOT NULL DEFAULT 0, \
     login_blocked_until BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS credentials (id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), key_algo TEXT NOT NULL, \
     key_handle TEXT NOT NULL, cert_der TEXT NOT NULL, serial_hex TEXT NOT NULL, subject_dn TEXT NOT NULL, issuer_dn TEXT NOT NULL, \
     not_before BIGINT NOT NULL, not_after BIGINT NOT NULL, scal BIGINT NOT NULL, multisign BIGINT NOT NULL, pin_hash TEXT NOT NULL, \
     pin_format TEXT NOT NULL DEFAULT 'N', otp_kind TEXT, otp_secret TEXT, otp_last_step BIGINT NOT NULL DEFAULT 0, failed_attempts BIGINT NOT NULL DEFAULT 0, \
     locked BIGINT NOT NULL DEFAULT 0, disabled BIGINT NOT NULL DEFAULT 0, description TEXT, created_at BIGINT NOT NULL, \
     cert_status TEXT NOT NULL DEFAULT 'valid', revoked_at BIGINT, revocation_reason BIGINT, auth_mode TEXT NOT NULL DEFAULT 'explicit', \
     key_backend TEXT NOT NULL DEFAULT 'software', pin_wrap_salt TEXT, approval TEXT)",
    "CREATE INDEX IF NOT EXISTS credentials_user ON credentials (user_id)",
    "CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, user_id TEXT NOT NULL, parent TEXT, \
     expires_at BIGINT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, client_id TEXT, credential_id TEXT)",
    "CREATE INDEX IF NOT EXISTS tokens_parent ON tokens (parent)",
    "CREATE INDEX IF NOT EXISTS tokens_user ON tokens (user_id)",
    "CREATE TABLE IF NOT EXISTS sads (hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, credential_id TEXT NOT NULL, remaining BIGINT NOT NULL, \
     bound BIGINT NOT NULL, hash_algo TEXT, expires_at BIGINT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, \
     sole_key TEXT, origin TEXT, token TEXT)",
    "CREATE INDEX IF NOT EXISTS sads_credential ON sads (credential_id)",
    "CREATE TABLE IF NOT EXISTS sad_hashes (sad TEXT NOT NULL, idx BIGINT NOT NULL, digest TEXT NOT NULL, used BIGINT NOT NULL DEFAULT 0, \
     PRIMARY KEY (sad, idx))",
    "CREATE TABLE IF NOT EXISTS otp_challenges (credential_id TEXT PRIMARY KEY, code_hash TEXT NOT NULL, expires_at BIGINT NOT NULL)",
    // Certificates replaced by a renewal: their status (OCSP, CRL) follows their credential's.
    "CREATE TABLE IF NOT EXISTS cert_history (serial_hex TEXT PRIMARY KEY, credential_id TEXT NOT NULL, cert_der TEXT NOT NULL, \
     not_after BIGINT NOT NULL, replaced_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS cert_history_credential ON cert_history (credential_id)",
    "CREATE TABLE IF NOT EXISTS oauth_clients (id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_hash TEXT, redirect_uris TEXT NOT NULL, \
     user_id TEXT, created_at BIGINT NOT NULL)",
    // Pushed authorization requests (kind `par`) and authorizations in progress in a browser
    // (kind `flow`), by the hash of their handle.
    "CREATE TABLE IF NOT EXISTS oauth_requests (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL, request TEXT NOT NULL, \
     user_id TEXT, expires_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS oauth_codes (hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, user_id TEXT NOT NULL, grant_json TEXT NOT NULL, \
     expires_at BIGINT NOT NULL, used BIGINT NOT NULL DEFAULT 0, issued_access TEXT, issued_refresh TEXT)",
    // PIN and password checks in flight, each a lease (`subject` is `credential:<id>` or
    // `user:<id>`): admitted only while failures plus live leases stay under the limit.
    "CREATE TABLE IF NOT EXISTS auth_attempts (subject TEXT NOT NULL, id TEXT NOT NULL, expires_at BIGINT NOT NULL, \
     PRIMARY KEY (subject, id))",
    // The audit chain's head (one row, id 1): the last record's seq and hash (`audit.rs`).
    "CREATE TABLE IF NOT EXISTS audit_head (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL)",
    // Signed checkpoints of the audit chain: the CA's signature over (seq, hash, at).
    "CREATE TABLE IF NOT EXISTS audit_checkpoints (seq BIGINT NOT NULL, hash TEXT NOT NULL, at BIGINT NOT NULL, signature TEXT NOT NULL, \
     PRIMARY KEY (seq, at))",
    // Asynchronous signature requests (`jobs.rs`) by the hash of their responseID: `state`
    // pending, running (under a lease until `lease_until`, claim number `attempts`), done or
    // failed (`result` waiting for signPolling, kept until `expires_at`).
    "CREATE TABLE IF NOT EXISTS async_jobs (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, actor TEXT NOT NULL, credential_id TEXT NOT NULL, \
     method TEXT NOT NULL, request TEXT NOT NULL, sad_hash TEXT NOT NULL, digests TEXT NOT NULL, state TEXT NOT NULL, result TEXT, \
     attempts BIGINT NOT NULL DEFAULT 0, lease_until BIGINT NOT NULL DEFAULT 0, response_uri TEXT, response_id TEXT, \
     created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS async_jobs_state ON async_jobs (state, created_at)",
    // Out-of-band authorizations (`approvals.rs`) by the hash of the client's handle, and of
    // the signer's one-time token: `state` pending, approved, denied, expired or issued; each
    // carries what the SAD will be (count, bound digests) and, under sole control, the PIN key
    // sealed under the handle.
    "CREATE TABLE IF NOT EXISTS approvals (handle_hash TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, approver TEXT NOT NULL, \
     user_id TEXT NOT NULL, actor TEXT NOT NULL, credential_id TEXT NOT NULL, num_signatures BIGINT NOT NULL, hash_algo TEXT, digests TEXT, \
     description TEXT, sole_key TEXT, state TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, decided_at BIGINT)",
    "CREATE INDEX IF NOT EXISTS approvals_state ON approvals (state, expires_at)",
    "CREATE INDEX IF NOT EXISTS approvals_credential ON approvals (credential_id)",
    // Device pairing (`devices.rs`): a one-time code by its hash (`state` code → started →
    // paired), with the PIN hash the device credential will have; `pairing_id` once started.
    "CREATE TABLE IF NOT EXISTS device_pairings (code_hash TEXT PRIMARY KEY, pairing_id TEXT UNIQUE, user_id TEXT NOT NULL, \
     actor TEXT NOT NULL, pin_hash TEXT NOT NULL, state TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)",
    // Paired devices: the device key (SPKI) and its thumbprint, the last accepted counter
    // (advanced by one conditional update), when it was last seen (long-polling presence).
    "CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, credential_id TEXT NOT NULL, name TEXT NOT NULL, \
     kind TEXT NOT NULL, prehashed BIGINT NOT NULL, device_key TEXT NOT NULL, thumbprint TEXT NOT NULL, last_counter BIGINT NOT NULL DEFAULT 0, \
     revoked BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, last_seen BIGINT)",
    "CREATE INDEX IF NOT EXISTS devices_user ON devices (user_id)",
    "CREATE INDEX IF NOT EXISTS devices_credential ON devices (credential_id)",
    // Requests sent to a device (`state` pending → signed, declined, refused, expired), with
    // the service message as sent and, once answered, the device's JWS and the signatures;
    // `delivered_at` once a poll handed it out.
    "CREATE TABLE IF NOT EXISTS device_requests (id TEXT PRIMARY KEY, device_id TEXT NOT NULL, credential_id TEXT NOT NULL, \
     message TEXT NOT NULL, state TEXT NOT NULL, result TEXT, answer TEXT, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, \
     delivered_at BIGINT)",
    "CREATE INDEX IF NOT EXISTS device_requests_device ON device_requests (device_id, state)",
];

/// Indexes on columns that a migration adds: created after the migrations have run.
const LATE_INDEXES: &[&str] =
    &["CREATE INDEX IF NOT EXISTS sads_token ON sads (token)", "CREATE INDEX IF NOT EXISTS sads_origin ON sads (origin)"];

/// The table and column of an `ALTER TABLE t ADD COLUMN c ...` step.
fn added_column(sql: &str) -> Option<(&str, &str)> {
    let mut words = sql.strip_prefix("ALTER TABLE ")?.split_whitespace();
    let table = words.next()?;
    (words.next()? == "ADD" && words.next()? == "COLUMN").then_some(())?;
    Some((table, words.next()?))
}

/// Whether `table` has `column` already. A step that adds a column there is skipped, so that a
/// database whose version lags behind its tables (a migration interrupted between its DDL and
/// the version update: the loop is not one transaction) is brought forward anyway.
async fn column_exists(conn: &mut crate::db::Conn<'_>, pg: bool, table: &str, column: &str) -> Result<bool> {
    let sql = if pg {
        "SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2"
    } else {
        "SELECT COUNT(*) AS n FROM pragma_table_info($1) WHERE name = $2"
    };
    let row = conn.opt(sql, &[P::S(table), P::S(column)]).await?;
    Ok(row.map(|r| r.i64("n")).transpose()?.unwrap_or(0) > 0)
}

pub(crate) async fn migrate(db: &Db) -> Result<()> {
    let pg = db.is_postgres();
    let mut conn = db.write().await?;
    if pg {
        // Several nodes may start at once on an empty database: serialize the DDL.
        conn.exec("SELECT pg_advisory_lock(7263845)", &[]).await?;
    }
    let result = async {
        for sql in TABLES {
            conn.exec(sql, &[]).await?;
        }
        let audit = if pg {
            "CREATE TABLE IF NOT EXISTS audit (seq BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL, \
             event TEXT NOT NULL, outcome TEXT NOT NULL, credential_id TEXT, detail TEXT NOT NULL, prev_hash TEXT, hash TEXT)"
        } else {
            "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL, \
             event TEXT NOT NULL, outcome TEXT NOT NULL, credential_id TEXT, detail TEXT NOT NULL, prev_hash TEXT, hash TEXT)"
        };
        conn.exec(audit, &[]).await?;
        // A database that has no meta row was created by the statements above, at the current
        // version; an older one is brought forward step by step.
        let fresh = conn.opt("SELECT v FROM meta WHERE k = 'schema_version'", &[]).await?.is_none();
        if fresh {
            conn.exec("INSERT INTO meta (k, v) VALUES ('schema_version', $1)", &[P::S(SCHEMA_VERSION)]).await?;
            conn.exec("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, $1)", &[P::S(crate::audit::GENESIS)]).await?;
        }
        loop {
            let row = conn.opt("SELECT v FROM meta WHERE k = 'schema_version'", &[]).await?;
            let version = row.map(|r| r.str("v")).transpose()?.unwrap_or_default();
            let Some((_, steps)) = MIGRATIONS.iter().find(|(from, _)| *from == version) else { break };
            for sql in *steps {
                if let Some((table, column)) = added_column(sql)
                    && column_exists(&mut conn, pg, table, column).await?
                {
                    continue;
                }
                conn.exec(sql, &[]).await?;
            }
            if version == "7" {
                crate::audit::chain_existing(&mut conn).await?;
            }
            let next = (version.parse::<u32>().unwrap_or(0) + 1).to_string();
            conn.exec("UPDATE meta SET v = $1 WHERE k = 'schema_version'", &[P::S(&next)]).await?;
        }
        for sql in LATE_INDEXES {
            conn.exec(sql, &[]).await?;
        }
        Ok::<(), crate::StoreError>(())
    }
    .await;
    if pg {
        conn.exec("SELECT pg_advisory_unlock(7263845)", &[]).await?;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_column_steps_are_recognised() {
        assert_eq!(added_column("ALTER TABLE credentials ADD COLUMN approval TEXT"), Some(("credentials", "approval")));
        assert_eq!(added_column("ALTER TABLE sads ADD COLUMN origin TEXT"), Some(("sads", "origin")));
        assert_eq!(added_column("CREATE TABLE x (a TEXT)"), None);
        assert_eq!(added_column("ALTER TABLE t DROP COLUMN c"), None);
    }

    /// A version 9 store (no approver column, no approvals table) is brought to version 10.
    #[tokio::test]
    async fn version_9_gains_the_approvals() {
        let (dir, store) = crate::tests::store().await;
        store.close().await;
        drop(store);
        let path = dir.join("db.sqlite");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "ALTER TABLE credentials DROP COLUMN approval; DROP TABLE approvals; UPDATE meta SET v = '9' WHERE k = 'schema_version'",
        )
        .unwrap();
        drop(c);
        let store = crate::Store::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        assert_eq!(store.meta("schema_version").await.unwrap().as_deref(), Some(SCHEMA_VERSION));
        assert!(store.credential_approval("none").await.unwrap().is_none());
        assert!(store.approval_by_handle("h").await.unwrap().is_none());
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
