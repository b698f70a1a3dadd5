//! Administration: users, credentials (key generation, certificate issuance, TOTP
//! enrolment), and their life cycle. The CLI calls these on the same store the running
//! service uses; the service reads credential state on every request, so changes apply at
//! once without a restart.

use cloudsign_asn1::KeyAlgorithm;
use cloudsign_keys::KeyBackendKind;
use cloudsign_store::Outcome;
use cloudsign_store::{CertState, CredentialRow, UserRow};
use serde_json::json;
use zeroize::Zeroizing;

use crate::credentials::otp_binding;
use crate::secrets::{base32, hash_secret, new_id, random_bytes};
use crate::service::credential_key_binding;
use crate::{Error, Result, Service, now};
use cloudsign_keys::software::SoftwareKeystore;

/// Sole control holds against a copy of the database and the KEK only as long as guessing the
/// PIN offline (one argon2id run per guess, no attempt counter) takes long: short PINs are
/// refused.
const SOLE_CONTROL_MIN_PIN: usize = 8;
const SOLE_CONTROL_PIN_RULE: &str =
    "sole-control PINs need at least 8 characters: with a copy of the database and the key-encryption key, a PIN can be guessed offline";

/// Second factor of a credential (the store's type: one definition).
pub use cloudsign_store::OtpKind;

/// `admin credential add`.
pub struct NewCredential {
    /// Owner's user name.
    pub user: String,
    /// The signing PIN.
    pub pin: Zeroizing<String>,
    /// Key type.
    pub key: KeyAlgorithm,
    /// Second factor.
    pub otp: Option<OtpKind>,
    /// 1 or 2.
    pub scal: u8,
    /// Maximum signatures per authorization.
    pub multisign: u32,
    /// Free text.
    pub description: Option<String>,
    /// How the credential is authorized.
    pub auth_mode: AuthMode,
    /// Where the key is generated and kept.
    pub backend: KeyStorage,
    /// Sole control: the software key is also sealed under a key derived from the PIN.
    pub sole_control: bool,
}

/// Where a credential's key lives: the software keystore (sealed under the key-encryption key
/// in the database) or the configured PKCS#11 token (generated inside, never extractable).
pub type KeyStorage = KeyBackendKind;

/// CSC `authMode` of a credential (stored with it).
pub use cloudsign_store::AuthMode;

/// What `admin credential add` reports.
#[derive(Debug)]
pub struct NewCredentialResult {
    /// `credentialID`.
    pub credential_id: String,
    /// `otpauth://totp/...` enrolment URI (TOTP credentials only). It carries the TOTP
    /// secret: shown once to the owner, never logged.
    pub otpauth: Option<Zeroizing<String>>,
    /// Certificate DER.
    pub cert_der: Vec<u8>,
}

fn valid_user_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
}

pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A user as the administrator sees it (no password hash).
#[derive(Debug, Clone)]
pub struct UserSummary {
    /// Login name.
    pub name: String,
    /// Disabled by an administrator.
    pub disabled: bool,
    /// Creation time (Unix seconds).
    pub created_at: i64,
}

impl Service {
    /// Every user, for `admin user list`.
    pub async fn users(&self) -> Result<Vec<UserSummary>> {
        Ok(self
            .store
            .users()
            .await?
            .into_iter()
            .map(|u| UserSummary { name: u.name, disabled: u.disabled, created_at: u.created_at })
            .collect())
    }

    /// The newest `limit` audit events, for `admin audit`.
    pub async fn audit_events(&self, limit: i64) -> Result<Vec<cloudsign_store::AuditEvent>> {
        Ok(self.store.audit_events(limit).await?)
    }

    /// Close the store's connections (at shutdown, so SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Create a user.
    pub async fn add_user(&self, name: &str, password: Zeroizing<String>) -> Result<()> {
        if !valid_user_name(name) {
            return Err(Error::invalid("user names are 1-64 characters of letters, digits and . _ @ -"));
        }
        if password.chars().count() < 8 {
            return Err(Error::invalid("passwords need at least 8 characters"));
        }
        let cost = self.cfg.argon2;
        let hash =
            tokio::task::spawn_blocking(move || hash_secret(&password, cost)).await.map_err(|e| Error::Internal(e.to_string()))??;
        let row = UserRow { id: new_id()?, name: name.into(), password_hash: hash, disabled: false, created_at: now() };
        self.store.insert_user(&row).await.map_err(|e| match e {
            cloudsign_store::StoreError::Conflict => Error::invalid(format!("user {name} already exists")),
            other => other.into(),
        })?;
        self.audit("admin", "admin.user.add", Outcome::Ok, None, json!({"user": name})).await
    }

    /// Enable or disable a user (disabling revokes the user's tokens).
    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        if !self.store.set_user_disabled(name, disabled).await? {
            return Err(Error::invalid(format!("no user {name}")));
        }
        self.audit("admin", if disabled { "admin.user.disable" } else { "admin.user.enable" }, Outcome::Ok, None, json!({"user": name}))
            .await
    }

    /// Delete a user, its credentials (keys included), tokens and SADs.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let user = self.store.user_by_name(name).await?.ok_or_else(|| Error::invalid(format!("no user {name}")))?;
        for c in self.store.credentials(Some(&user.id)).await? {
            self.forget_key(&c.id);
        }
        self.store.delete_user(name).await?;
        self.audit("admin", "admin.user.delete", Outcome::Ok, None, json!({"user": name})).await
    }

    /// Create a credential: generate the key in the keystore, have the CA certify it, and
    /// enrol the second factor.
    pub async fn add_credential(&self, req: NewCredential) -> Result<NewCredentialResult> {
        self.add_credential_with_approval(req, None).await
    }

    /// [`Service::add_credential`], with an out-of-band factor: every authorization also needs
    /// the signer's approval through the approver named `approval` (`link`: a one-time link
    /// sent through the OTP sender), after the PIN (CSC v2 §11.6 202 answer, §11.7).
    pub async fn add_credential_with_approval(&self, req: NewCredential, approval: Option<&str>) -> Result<NewCredentialResult> {
        if let Some(name) = approval {
            if self.approvers.get(name).is_none() {
                return Err(Error::invalid(format!("unknown approver {name}: use one of {}", self.approvers.names().join(", "))));
            }
            if !self.cfg.approval.enabled {
                return Err(Error::invalid("out-of-band approval is disabled: set enabled = true in [approval] first"));
            }
            // The consent page is where an oauth2code credential is authorized; an approver
            // applies to credentials/authorize (explicit mode) only.
            if req.auth_mode != AuthMode::Explicit {
                return Err(Error::invalid(
                    "an approver applies to credentials authorized with credentials/authorize (--auth-mode explicit)",
                ));
            }
        }
        let user = self.store.user_by_name(&req.user).await?.ok_or_else(|| Error::invalid(format!("no user {}", req.user)))?;
        if req.pin.chars().count() < 4 {
            return Err(Error::invalid("PINs need at least 4 characters"));
        }
        if req.scal != 1 && req.scal != 2 {
            return Err(Error::invalid("SCAL is 1 or 2"));
        }
        if req.multisign < 1 {
            return Err(Error::invalid("multisign must be at least 1"));
        }
        let pin_format = if req.pin.chars().all(|c| c.is_ascii_digit()) { "N" } else { "A" };
        let id = new_id()?;
        if req.sole_control && req.backend != KeyStorage::Software {
            return Err(Error::invalid("sole control applies to software keys (an HSM key is protected by the HSM)"));
        }
        if req.sole_control && req.pin.chars().count() < SOLE_CONTROL_MIN_PIN {
            return Err(Error::invalid(SOLE_CONTROL_PIN_RULE));
        }
        let keystore = self.backend_of(req.backend)?;
        let (algorithm, binding) = (req.key, credential_key_binding(&id));
        // RSA-4096 generation takes seconds: keep it off the async workers.
        let (handle, key, pin_wrap_salt) = if req.sole_control {
            let pkcs8 = tokio::task::spawn_blocking(move || SoftwareKeystore::generate_pkcs8(algorithm))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            let salt = random_bytes(16)?;
            let pin_key = self.pin_key(&req.pin, &salt).await?;
            (self.seal_sole(&pkcs8, &*pin_key, &id)?, SoftwareKeystore::key_from_pkcs8_der(algorithm, &pkcs8)?, Some(salt))
        } else {
            let generated = tokio::task::spawn_blocking(move || keystore.generate(algorithm, &binding))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            (generated.handle, generated.key, None)
        };
        let cert = crate::service::blocking_if(self.ca_in_hsm, || {
            self.ca.issue_signing_cert(&self.names, &user.name, key.as_ref(), self.cfg.cert_validity_days)
        })?;
        let cost = self.cfg.argon2;
        let pin = req.pin;
        let pin_hash = tokio::task::spawn_blocking(move || hash_secret(&pin, cost)).await.map_err(|e| Error::Internal(e.to_string()))??;

        let (otp_kind, otp_secret, otpauth) = match req.otp {
            None => (None, None, None),
            Some(OtpKind::Online) => (Some(OtpKind::Online), None, None),
            Some(OtpKind::Totp) => {
                let secret = Zeroizing::new(random_bytes(20)?);
                let sealed = self.keystore.seal(&secret, &otp_binding(&id))?;
                let issuer = url_encode(&self.cfg.service_name);
                let uri = Zeroizing::new(format!(
                    "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={}&period={}",
                    url_encode(&user.name),
                    base32(&secret),
                    crate::secrets::TOTP_DIGITS,
                    crate::secrets::TOTP_PERIOD
                ));
                (Some(OtpKind::Totp), Some(sealed), Some(uri))
            }
        };
        let row = CredentialRow {
            id: id.clone(),
            user_id: user.id.clone(),
            key_algo: req.key,
            key_handle: handle,
            cert: cert.clone(),
            scal: i64::from(req.scal),
            multisign: i64::from(req.multisign),
            pin_hash,
            pin_format: pin_format.into(),
            otp_kind,
            otp_secret,
            failed_attempts: 0,
            locked: false,
            disabled: false,
            description: req.description,
            created_at: now(),
            cert_status: CertState::Valid,
            revoked_at: None,
            revocation_reason: None,
            auth_mode: req.auth_mode,
            key_backend: req.backend,
            pin_wrap_salt,
        };
        self.store.insert_credential_with_approval(&row, approval).await?;
        self.audit(
            "admin",
            "admin.credential.add",
            Outcome::Ok,
            Some(&id),
            json!({"user": user.name, "key": req.key.name(), "scal": req.scal, "authMode": req.auth_mode.as_str(), "backend": req.backend.as_str(), "soleControl": req.sole_control, "multisign": req.multisign, "otp": row.otp_kind.map(|k| k.as_str()), "approval": approval, "serial": cert.serial_hex}),
        )
        .await?;
        Ok(NewCredentialResult { credential_id: id, otpauth, cert_der: cert.der })
    }

    /// Enable or disable a credential.
    pub async fn set_credential_disabled(&self, id: &str, disabled: bool) -> Result<()> {
        if !self.store.set_credential_disabled(id, disabled).await? {
            return Err(Error::invalid(format!("no credential {id}")));
        }
        self.forget_key(id);
        self.audit("admin", if disabled { "admin.credential.disable" } else { "admin.credential.enable" }, Outcome::Ok, Some(id), json!({}))
            .await
    }

    /// Revoke a credential's certificate (final). `reason` is an RFC 5280 CRLReason name:
    /// unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation,
    /// privilegeWithdrawn.
    pub async fn revoke_credential(&self, id: &str, reason: &str) -> Result<()> {
        let code = match reason {
            "unspecified" => 0,
            "keyCompromise" => 1,
            "affiliationChanged" => 3,
            "superseded" => 4,
            "cessationOfOperation" => 5,
            "privilegeWithdrawn" => 9,
            other => return Err(Error::invalid(format!("unknown revocation reason {other}"))),
        };
        if !self.store.set_cert_status(id, &[CertState::Valid, CertState::Suspended], CertState::Revoked, Some(code), now()).await? {
            return Err(Error::invalid(format!("no credential {id} with a valid or suspended certificate")));
        }
        self.forget_key(id);
        self.audit("admin", "admin.credential.revoke", Outcome::Ok, Some(id), json!({"reason": reason})).await
    }

    /// Suspend a credential's certificate (CRLReason certificateHold) until resumed.
    pub async fn suspend_credential(&self, id: &str) -> Result<()> {
        if !self.store.set_cert_status(id, &[CertState::Valid], CertState::Suspended, Some(6), now()).await? {
            return Err(Error::invalid(format!("no credential {id} with a valid certificate")));
        }
        self.audit("admin", "admin.credential.suspend", Outcome::Ok, Some(id), json!({})).await
    }

    /// Lift a suspension.
    pub async fn resume_credential(&self, id: &str) -> Result<()> {
        if !self.store.set_cert_status(id, &[CertState::Suspended], CertState::Valid, None, now()).await? {
            return Err(Error::invalid(format!("no suspended credential {id}")));
        }
        self.audit("admin", "admin.credential.resume", Outcome::Ok, Some(id), json!({})).await
    }

    /// Unlock a credential locked by failed attempts.
    pub async fn unlock_credential(&self, id: &str) -> Result<()> {
        if !self.store.unlock_credential(id).await? {
            return Err(Error::invalid(format!("no credential {id}")));
        }
        self.audit("admin", "admin.credential.unlock", Outcome::Ok, Some(id), json!({})).await
    }

    /// Delete a credential and its key.
    pub async fn delete_credential(&self, id: &str) -> Result<()> {
        let row = self.store.credential(id).await?.ok_or_else(|| Error::invalid(format!("no credential {id}")))?;
        // An HSM key is destroyed first: if the token cannot be reached, nothing is deleted.
        self.destroy_key(row.key_backend, &row.key_handle, id).await?;
        if !self.store.delete_credential(id).await? {
            return Err(Error::invalid(format!("no credential {id}")));
        }
        self.forget_key(id);
        self.audit("admin", "admin.credential.delete", Outcome::Ok, Some(id), json!({})).await
    }

    /// Change a credential's PIN: the current PIN is checked (and counted, like an
    /// authorization), and under sole control the key is re-wrapped under the new PIN. SADs
    /// issued before stop working. There is no reset without the current PIN for sole-control
    /// credentials: nobody else can open their key.
    pub async fn change_pin(&self, id: &str, current: Zeroizing<String>, new: Zeroizing<String>) -> Result<()> {
        let row = self.store.credential(id).await?.ok_or_else(|| Error::invalid(format!("no credential {id}")))?;
        if new.chars().count() < 4 {
            return Err(Error::invalid("PINs need at least 4 characters"));
        }
        if row.pin_wrap_salt.is_some() && new.chars().count() < SOLE_CONTROL_MIN_PIN {
            return Err(Error::invalid(SOLE_CONTROL_PIN_RULE));
        }
        let session = crate::Session { user_id: row.user_id.clone(), user_name: "admin".into(), credential: None, token_hash: None };
        let ctx = crate::RequestContext { client: "admin change-pin".into(), client_data: None };
        let current_for_key = current.clone();
        match self.verify_factors(&session, &ctx, &row, current, None).await {
            Ok(()) => {}
            Err(Error::InvalidPin { attempts_left }) => {
                return Err(Error::invalid(format!("wrong current PIN ({attempts_left} attempts left)")));
            }
            Err(e) => return Err(e),
        }
        let (handle, salt) = match &row.pin_wrap_salt {
            Some(old_salt) => {
                let old_key = self.pin_key(&current_for_key, old_salt).await?;
                let pkcs8 = self.open_sole(&row, &*old_key)?;
                let salt = random_bytes(16)?;
                let new_key = self.pin_key(&new, &salt).await?;
                (self.seal_sole(&pkcs8, &*new_key, id)?, Some(salt))
            }
            None => (row.key_handle.clone(), None),
        };
        let pin_format = if new.chars().all(|c| c.is_ascii_digit()) { "N" } else { "A" };
        let cost = self.cfg.argon2;
        let pin_hash = tokio::task::spawn_blocking(move || hash_secret(&new, cost)).await.map_err(|e| Error::Internal(e.to_string()))??;
        self.store.update_credential_pin(id, &pin_hash, pin_format, &handle, salt.as_deref()).await?;
        self.forget_key(id);
        self.audit("admin", "admin.credential.change-pin", Outcome::Ok, Some(id), json!({"soleControl": salt.is_some()})).await
    }

    /// Renew a credential's certificate (same subject, a fresh validity period). With the same
    /// key the public key is taken from the current certificate, so no private key is opened
    /// (this works for sole-control and HSM keys alike); with `new_key` a fresh key is generated
    /// in the same backend (not for sole-control credentials, whose key only the PIN opens).
    /// The replaced certificate keeps its status through OCSP and the CRL. Returns the new serial.
    pub async fn renew_credential(&self, id: &str, new_key: bool, actor: &str) -> Result<String> {
        let row = self.store.credential(id).await?.ok_or_else(|| Error::invalid(format!("no credential {id}")))?;
        if row.cert_status != CertState::Valid {
            return Err(Error::invalid(format!("the certificate is {}: only valid certificates are renewed", row.cert_status.as_str())));
        }
        if new_key && row.pin_wrap_salt.is_some() {
            return Err(Error::invalid("a sole-control key is opened only with the PIN: renew it with the same key"));
        }
        let user = self.store.user_by_id(&row.user_id).await?.ok_or_else(|| Error::Internal("credential without owner".into()))?;
        let algorithm = row.key_algo;
        let (cert, handle) = if new_key {
            let backend = self.backend_of(row.key_backend)?;
            let binding = credential_key_binding(id);
            let generated = tokio::task::spawn_blocking(move || backend.generate(algorithm, &binding))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            let handle = generated.handle;
            let cert = crate::service::blocking_if(self.ca_in_hsm, || {
                self.ca.issue_signing_cert(&self.names, &user.name, generated.key.as_ref(), self.cfg.cert_validity_days)
            });
            match cert {
                Ok(cert) => (cert, Some(handle)),
                Err(e) => {
                    self.destroy_key(row.key_backend, &handle, id).await?;
                    return Err(e.into());
                }
            }
        } else {
            let raw = cloudsign_pki::subject_public_key(&row.cert.der).ok_or_else(|| Error::Internal("unreadable certificate".into()))?;
            let cert = crate::service::blocking_if(self.ca_in_hsm, || {
                self.ca.issue_signing_cert_for(&self.names, &user.name, algorithm, &raw, self.cfg.cert_validity_days)
            })?;
            (cert, None)
        };
        if !self.store.renew_certificate(id, &row.cert.serial_hex, &cert, handle.as_deref(), now()).await? {
            // Another node renewed first: the key made here is not used.
            if let Some(h) = &handle {
                self.destroy_key(row.key_backend, h, id).await?;
            }
            return Err(Error::invalid("the credential changed during the renewal; try again"));
        }
        // The old key signs no more; its signatures stay verifiable from the certificates.
        if handle.is_some()
            && let Err(e) = self.destroy_key(row.key_backend, &row.key_handle, id).await
        {
            tracing::warn!(credential = id, error = %e, "the replaced HSM key could not be destroyed");
        }
        self.forget_key(id);
        self.audit(
            actor,
            "credential.renew",
            Outcome::Ok,
            Some(id),
            json!({"oldSerial": row.cert.serial_hex, "serial": cert.serial_hex, "notAfter": cert.not_after, "newKey": new_key}),
        )
        .await?;
        Ok(cert.serial_hex)
    }

    /// Renew every certificate that ends within `renew_before_days` (the server calls this
    /// periodically). A renewal that would not extend the validity (the CA itself ends first)
    /// is skipped. Returns how many were renewed; failures are logged and audited.
    pub async fn renew_due(&self) -> Result<usize> {
        if self.cfg.renew_before_days == 0 {
            return Ok(0);
        }
        let t = now();
        let horizon = t + i64::from(self.cfg.renew_before_days) * 86_400;
        let ca_end = self.ca.not_after;
        let mut renewed = 0;
        for row in self.store.credentials_expiring(horizon).await? {
            let new_end = (t + i64::from(self.cfg.cert_validity_days) * 86_400).min(ca_end);
            if new_end <= row.cert.not_after + 86_400 {
                continue;
            }
            let new_key = self.cfg.renewal_new_key && row.pin_wrap_salt.is_none();
            match self.renew_credential(&row.id, new_key, "system").await {
                Ok(_) => renewed += 1,
                Err(e) => {
                    tracing::warn!(credential = %row.id, error = %e, "certificate renewal failed");
                    self.audit("system", "credential.renew", Outcome::Failed, Some(&row.id), json!({"error": e.to_string()})).await?;
                }
            }
        }
        Ok(renewed)
    }

    /// Destroy a credential's key where it lives outside its record (an HSM); a no-op for the
    /// software keystore, whose handle is the key.
    pub(crate) async fn destroy_key(&self, kind: KeyBackendKind, handle: &[u8], credential_id: &str) -> Result<()> {
        let backend = self.backend_of(kind)?;
        let binding = credential_key_binding(credential_id);
        if !backend.blocks() {
            return Ok(backend.destroy(handle, &binding)?);
        }
        let handle = handle.to_vec();
        tokio::task::spawn_blocking(move || backend.destroy(&handle, &binding)).await.map_err(|e| Error::Internal(e.to_string()))??;
        Ok(())
    }

    /// Credentials with their owners' names and their approvers, for `admin credential list`.
    pub async fn admin_credentials(&self, user: Option<&str>) -> Result<Vec<(String, CredentialRow, Option<String>)>> {
        let users = self.store.users().await?;
        let user_id = match user {
            Some(name) => Some(users.iter().find(|u| u.name == name).ok_or_else(|| Error::invalid(format!("no user {name}")))?.id.clone()),
            None => None,
        };
        let rows = self.store.credentials(user_id.as_deref()).await?;
        let approvals = self.store.credential_approvals(user_id.as_deref()).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let owner = users.iter().find(|u| u.id == r.user_id).map(|u| u.name.clone()).unwrap_or_default();
                let approval = approvals.iter().find(|(id, _)| *id == r.id).map(|(_, a)| a.clone());
                (owner, r, approval)
            })
            .collect())
    }
}
