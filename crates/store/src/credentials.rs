//! `credentials` (keys, certificates, PIN and OTP state, the out-of-band approver, attempt
//! counting, TOTP replay), `cert_history` (certificates a renewal replaced) and
//! `otp_challenges` (pending online OTPs).

use cloudsign_asn1::KeyAlgorithm;
use cloudsign_keys::KeyBackendKind;

use crate::ca::{CertRow, cert_row};
use crate::codec::{StoredName, encode};
use crate::db::{Conn, P, Row};
use crate::{Result, Store};

/// A certificate's stored status. Expiry is computed from the certificate, not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertState {
    /// Neither revoked nor suspended.
    Valid,
    /// Revoked (final).
    Revoked,
    /// Suspended (RFC 5280 certificateHold) until resumed.
    Suspended,
}

impl CertState {
    /// The stored name (`valid`, `revoked`, `suspended`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Revoked => "revoked",
            Self::Suspended => "suspended",
        }
    }
}

impl StoredName for CertState {
    fn stored(self) -> &'static str {
        self.as_str()
    }
    fn from_stored(name: &str) -> Option<Self> {
        [Self::Valid, Self::Revoked, Self::Suspended].into_iter().find(|s| s.as_str() == name)
    }
}

/// CSC `authMode` of a credential, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `credentials/authorize` with the PIN (and OTP).
    Explicit,
    /// Only through the OAuth 2.0 authorization-code flow, where the signer consents on the
    /// service's own page (CSC v2 §8.3.3); `credentials/authorize` is refused.
    OAuth2Code,
}

impl AuthMode {
    /// Wire (and stored) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::OAuth2Code => "oauth2code",
        }
    }

    /// Parse the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "explicit" => Some(Self::Explicit),
            "oauth2code" => Some(Self::OAuth2Code),
            _ => None,
        }
    }
}

impl StoredName for AuthMode {
    fn stored(self) -> &'static str {
        self.as_str()
    }
    fn from_stored(name: &str) -> Option<Self> {
        Self::parse(name)
    }
}

/// A credential's one-time password, besides its PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    /// RFC 6238 TOTP from an authenticator app (CSC `generator` "totp", an offline OTP).
    Totp,
    /// A code the service sends on `credentials/getChallenge` / `sendOTP` (an online OTP).
    Online,
}

impl OtpKind {
    /// The stored name (`totp`, `online`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Online => "online",
        }
    }
}

impl StoredName for OtpKind {
    fn stored(self) -> &'static str {
        self.as_str()
    }
    fn from_stored(name: &str) -> Option<Self> {
        [Self::Totp, Self::Online].into_iter().find(|k| k.as_str() == name)
    }
}

/// A signing credential.
#[derive(Debug, Clone)]
pub struct CredentialRow {
    /// The CSC `credentialID`.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Key type (stored by name: `ecdsa-p256`, ...).
    pub key_algo: KeyAlgorithm,
    /// The key's handle in its backend (software: the sealed key; PKCS#11: the key's CKA_ID).
    pub key_handle: Vec<u8>,
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
    /// The second factor, if any.
    pub otp_kind: Option<OtpKind>,
    /// Sealed TOTP secret.
    pub otp_secret: Option<Vec<u8>>,
    /// Consecutive failed authorization attempts (checks in flight are not counted here).
    pub failed_attempts: i64,
    /// Locked after too many failures.
    pub locked: bool,
    /// Disabled by an administrator.
    pub disabled: bool,
    /// Free text.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Certificate status (expiry is computed, not stored).
    pub cert_status: CertState,
    /// When the certificate was revoked or suspended (Unix seconds).
    pub revoked_at: Option<i64>,
    /// RFC 5280 CRLReason code of the revocation or suspension.
    pub revocation_reason: Option<i64>,
    /// CSC `authMode`.
    pub auth_mode: AuthMode,
    /// Where the key lives.
    pub key_backend: KeyBackendKind,
    /// Sole control: the salt of the PIN-derived key that wraps the sealed key once more;
    /// `None` for credentials without sole control.
    pub pin_wrap_salt: Option<Vec<u8>>,
}

const CRED_COLS: &str = "id, user_id, key_algo, key_handle, cert_der, serial_hex, subject_dn, issuer_dn, not_before, not_after, scal, multisign, pin_hash, pin_format, otp_kind, otp_secret, failed_attempts, locked, disabled, description, created_at, auth_mode, key_backend, pin_wrap_salt";
/// The insert columns plus the certificate status, for reads.
const CRED_READ_COLS: &str = "id, user_id, key_algo, key_handle, cert_der, serial_hex, subject_dn, issuer_dn, not_before, not_after, scal, multisign, pin_hash, pin_format, otp_kind, otp_secret, failed_attempts, locked, disabled, description, created_at, cert_status, revoked_at, revocation_reason, auth_mode, key_backend, pin_wrap_salt";

fn cred_row(r: &Row) -> Result<CredentialRow> {
    Ok(CredentialRow {
        id: r.str("id")?,
        user_id: r.str("user_id")?,
        key_algo: r.name("key_algo")?,
        key_handle: r.bytes("key_handle")?,
        cert: cert_row(r)?,
        scal: r.i64("scal")?,
        multisign: r.i64("multisign")?,
        pin_hash: r.str("pin_hash")?,
        pin_format: r.str("pin_format")?,
        otp_kind: r.opt_name("otp_kind")?,
        otp_secret: r.opt_bytes("otp_secret")?,
        failed_attempts: r.i64("failed_attempts")?,
        locked: r.flag("locked")?,
        disabled: r.flag("disabled")?,
        description: r.opt_str("description")?,
        created_at: r.i64("created_at")?,
        cert_status: r.name("cert_status")?,
        revoked_at: r.opt_i64("revoked_at")?,
        revocation_reason: r.opt_i64("revocation_reason")?,
        auth_mode: r.name("auth_mode")?,
        key_backend: r.name("key_backend")?,
        pin_wrap_salt: r.opt_bytes("pin_wrap_salt")?,
    })
}

impl Store {
    /// Store a new credential.
    pub async fn insert_credential(&self, c: &CredentialRow) -> Result<()> {
        self.insert_credential_with_approval(c, None).await
    }

    /// Store a new credential whose authorization also needs the approval of the signer
    /// through the approver `approval` (`credentials.approval`, schema version 10), in the same
    /// statement: a credential never exists, even for a moment, without the factor it was
    /// created with.
    pub async fn insert_credential_with_approval(&self, c: &CredentialRow, approval: Option<&str>) -> Result<()> {
        let sql = format!(
            "INSERT INTO credentials ({CRED_COLS}, approval) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, 0, 0, $17, $18, $19, $20, $21, $22)"
        );
        let (handle, der) = (encode(&c.key_handle), encode(&c.cert.der));
        let otp_secret = c.otp_secret.as_deref().map(encode);
        let salt = c.pin_wrap_salt.as_deref().map(encode);
        self.db
            .write()
            .await?
            .exec(
                &sql,
                &[
                    P::S(&c.id),
                    P::S(&c.user_id),
                    P::S(c.key_algo.stored()),
                    P::S(&handle),
                    P::S(&der),
                    P::S(&c.cert.serial_hex),
                    P::S(&c.cert.subject_dn),
                    P::S(&c.cert.issuer_dn),
                    P::I(c.cert.not_before),
                    P::I(c.cert.not_after),
                    P::I(c.scal),
                    P::I(c.multisign),
                    P::S(&c.pin_hash),
                    P::S(&c.pin_format),
                    P::OS(c.otp_kind.map(OtpKind::as_str)),
                    P::OS(otp_secret.as_deref()),
                    P::OS(c.description.as_deref()),
                    P::I(c.created_at),
                    P::S(c.auth_mode.stored()),
                    P::S(c.key_backend.stored()),
                    P::OS(salt.as_deref()),
                    P::OS(approval),
                ],
            )
            .await?;
        Ok(())
    }

    /// The approver whose approval a credential's authorization needs besides its PIN (and
    /// OTP), if any (`None` also for an unknown credential).
    pub async fn credential_approval(&self, id: &str) -> Result<Option<String>> {
        let row = self.db.read().await?.opt("SELECT approval FROM credentials WHERE id = $1", &[P::S(id)]).await?;
        Ok(row.map(|r| r.opt_str("approval")).transpose()?.flatten())
    }

    /// [`Store::credential_approval`] of every credential of a user (of all users with `None`)
    /// that has one: `(credential id, approver)`.
    pub async fn credential_approvals(&self, user_id: Option<&str>) -> Result<Vec<(String, String)>> {
        let mut c = self.db.read().await?;
        let rows = match user_id {
            Some(u) => c.all("SELECT id, approval FROM credentials WHERE user_id = $1 AND approval IS NOT NULL", &[P::S(u)]).await?,
            None => c.all("SELECT id, approval FROM credentials WHERE approval IS NOT NULL", &[]).await?,
        };
        rows.iter().map(|r| Ok((r.str("id")?, r.str("approval")?))).collect()
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
        key_handle: &[u8],
        pin_wrap_salt: Option<&[u8]>,
    ) -> Result<bool> {
        let (key_handle, pin_wrap_salt) = (encode(key_handle), pin_wrap_salt.map(encode));
        transaction!(self.db, |c| {
            let n = c
                .exec(
                    "UPDATE credentials SET pin_hash = $2, pin_format = $3, key_handle = $4, pin_wrap_salt = $5 WHERE id = $1",
                    &[P::S(id), P::S(pin_hash), P::S(pin_format), P::S(&key_handle), P::OS(pin_wrap_salt.as_deref())],
                )
                .await?;
            c.exec("UPDATE sads SET revoked = 1 WHERE credential_id = $1", &[P::S(id)]).await?;
            // Approvals asked for under the old PIN lapse too (a sole-control one carries the
            // old PIN's key).
            c.exec("UPDATE approvals SET expires_at = 0 WHERE credential_id = $1 AND state IN ('pending', 'approved')", &[P::S(id)])
                .await?;
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
        key_handle: Option<&[u8]>,
        now: i64,
    ) -> Result<bool> {
        let (der, key_handle) = (encode(&cert.der), key_handle.map(encode));
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
                    P::S(&der),
                    P::S(&cert.serial_hex),
                    P::S(&cert.subject_dn),
                    P::S(&cert.issuer_dn),
                    P::I(cert.not_before),
                    P::I(cert.not_after),
                    P::OS(key_handle.as_deref()),
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
    pub async fn set_cert_status(&self, id: &str, from: &[CertState], to: CertState, reason: Option<i64>, at: i64) -> Result<bool> {
        let mut changed = 0;
        let mut c = self.db.write().await?;
        for f in from {
            changed += c
                .exec(
                    "UPDATE credentials SET cert_status = $2, revocation_reason = $3, revoked_at = $4 WHERE id = $1 AND cert_status = $5",
                    &[
                        P::S(id),
                        P::S(to.stored()),
                        match reason {
                            Some(r) => P::I(r),
                            None => P::OS(None),
                        },
                        if to == CertState::Valid { P::OS(None) } else { P::I(at) },
                        P::S(f.stored()),
                    ],
                )
                .await?;
        }
        Ok(changed > 0)
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
            c.exec("DELETE FROM approvals WHERE credential_id = $1", &[P::S(id)]).await?;
            c.exec("DELETE FROM cert_history WHERE credential_id = $1", &[P::S(id)]).await?;
            let n = c.exec("DELETE FROM credentials WHERE id = $1", &[P::S(id)]).await?;
            Ok((n == 1, true))
        })
    }

    /// Ask to check the factors of a credential, before argon2 runs. Failures and checks in
    /// flight together never exceed `max_attempts`, so parallel guesses cannot outrun the
    /// lockout, while a right PIN never counts as a failure: an admitted check holds a lease
    /// (`auth_attempts`) and only [`Store::attempt_failed`] raises the failure counter. Returns
    /// `Some(true)` when admitted under `lease` (end it with `attempt_succeeded`,
    /// `attempt_failed` or `abandon_attempt`), `Some(false)` when every attempt left is in
    /// flight (ask again when one ends), `None` when the credential is locked (it is marked
    /// locked if its failures reached the limit).
    pub async fn begin_attempt(&self, id: &str, lease: &str, max_attempts: i64, now: i64) -> Result<Option<bool>> {
        let subject = credential_subject(id);
        transaction!(self.db, |c| {
            // A no-op write that takes the credential's row lock (PostgreSQL): admissions on
            // several nodes queue here and each sees the leases the previous one committed.
            let row = c
                .opt(
                    "UPDATE credentials SET failed_attempts = failed_attempts WHERE id = $1 RETURNING failed_attempts, locked",
                    &[P::S(id)],
                )
                .await?;
            let Some(row) = row else { return Ok((None, false)) };
            if row.flag("locked")? {
                return Ok((None, false));
            }
            let failures = row.i64("failed_attempts")?;
            if failures >= max_attempts {
                c.exec("UPDATE credentials SET locked = 1 WHERE id = $1", &[P::S(id)]).await?;
                return Ok((None, true));
            }
            let admitted = take_lease(&mut c, &subject, lease, max_attempts - failures, now).await?;
            Ok((Some(admitted), admitted))
        })
    }

    /// The admitted check succeeded: the failure counter starts again. Returns `false` (and
    /// changes nothing) if the lease had lapsed: its place may have been given to another
    /// attempt, so the result must not be used.
    pub async fn attempt_succeeded(&self, id: &str, lease: &str, now: i64) -> Result<bool> {
        transaction!(self.db, |c| {
            c.exec("UPDATE credentials SET failed_attempts = 0 WHERE id = $1", &[P::S(id)]).await?;
            let held = release_lease(&mut c, &credential_subject(id), lease, now).await?;
            Ok((held, held))
        })
    }

    /// The admitted check failed: count the failure, and lock when the failures reach
    /// `max_attempts`. Returns the failures so far and whether the credential is now locked, or
    /// `None` (changing nothing) if the lease had lapsed.
    pub async fn attempt_failed(&self, id: &str, lease: &str, max_attempts: i64, now: i64) -> Result<Option<(i64, bool)>> {
        transaction!(self.db, |c| {
            let row = c
                .opt(
                    "UPDATE credentials SET failed_attempts = failed_attempts + 1, \
                     locked = CASE WHEN failed_attempts + 1 >= $2 THEN 1 ELSE locked END WHERE id = $1 RETURNING failed_attempts, locked",
                    &[P::S(id), P::I(max_attempts)],
                )
                .await?;
            let held = release_lease(&mut c, &credential_subject(id), lease, now).await?;
            match row {
                Some(r) if held => Ok((Some((r.i64("failed_attempts")?, r.flag("locked")?)), true)),
                _ => Ok((None, false)),
            }
        })
    }

    /// Give an admitted check's place back without a result (the request went away before
    /// its answer could be sent, so nothing was learnt from it).
    pub async fn abandon_attempt(&self, id: &str, lease: &str) -> Result<()> {
        let mut c = self.db.write().await?;
        c.exec("DELETE FROM auth_attempts WHERE subject = $1 AND id = $2", &[P::S(&credential_subject(id)), P::S(lease)]).await?;
        Ok(())
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
}

/// How long an admitted PIN or password check keeps its place (`auth_attempts`). A check takes
/// milliseconds to seconds (argon2, queued behind the others); a place is lost only if its
/// process dies, and comes back after this long.
pub(crate) const ATTEMPT_LEASE_SECONDS: i64 = 60;

fn credential_subject(id: &str) -> String {
    format!("credential:{id}")
}

/// Take one of `places` for `subject` under `lease`, if one is free; lapsed leases are dropped
/// first. Run inside a transaction that holds the subject's row lock.
pub(crate) async fn take_lease(c: &mut Conn<'_>, subject: &str, lease: &str, places: i64, now: i64) -> Result<bool> {
    c.exec("DELETE FROM auth_attempts WHERE subject = $1 AND expires_at <= $2", &[P::S(subject), P::I(now)]).await?;
    let in_flight = c.opt("SELECT COUNT(*) AS n FROM auth_attempts WHERE subject = $1", &[P::S(subject)]).await?;
    if in_flight.map(|r| r.i64("n")).transpose()?.unwrap_or(0) >= places {
        return Ok(false);
    }
    c.exec(
        "INSERT INTO auth_attempts (subject, id, expires_at) VALUES ($1, $2, $3)",
        &[P::S(subject), P::S(lease), P::I(now + ATTEMPT_LEASE_SECONDS)],
    )
    .await?;
    Ok(true)
}

/// End a lease; `false` if it had lapsed (or was never taken).
pub(crate) async fn release_lease(c: &mut Conn<'_>, subject: &str, lease: &str, now: i64) -> Result<bool> {
    let n = c
        .exec("DELETE FROM auth_attempts WHERE subject = $1 AND id = $2 AND expires_at > $3", &[P::S(subject), P::S(lease), P::I(now)])
        .await?;
    Ok(n == 1)
}
