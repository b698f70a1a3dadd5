//! On-demand credentials (CSC API 2.2.0.0 §11.4 `credentials/create`, §11.5
//! `credentials/delete`): a key and a short-lived certificate made for one signing session.

use cloudsign_asn1::KeyAlgorithm;
use cloudsign_keys::KeyBackendKind;
use cloudsign_store::{AuthMode, CertState, CredentialRow, Outcome};
use serde::Deserialize;
use serde_json::json;

use crate::secrets::new_id;
use crate::service::credential_key_binding;
use crate::{Error, Result, Service, Session, now};

/// Marks a credential as made by `credentials/create` (only those may be deleted through
/// `credentials/delete`; an administrator's credential is not the signer's to destroy).
pub const ON_DEMAND_DESCRIPTION: &str = "On-demand credential";

/// The `[on_demand]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnDemandConfig {
    /// Whether `credentials/create` and `credentials/delete` are offered.
    pub enabled: bool,
    /// Lifetime of the certificate, in minutes.
    pub certificate_minutes: u32,
    /// Key type (`ecdsa-p256`, ...): no source has a key parameter in the request (csc-api-2.2.md §8).
    pub key: String,
    /// `software` or `pkcs11`.
    pub backend: String,
    /// Whether the request's `subjectData` may set the subject (otherwise the user's name).
    pub subject_from_request: bool,
    /// Most on-demand credentials one user may hold at once (valid certificates).
    pub max_per_user: u32,
}

impl Default for OnDemandConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            certificate_minutes: 60,
            key: "ecdsa-p256".into(),
            backend: "software".into(),
            subject_from_request: false,
            max_per_user: 5,
        }
    }
}

/// What `credentials/create` asks for.
#[derive(Debug, Default)]
pub struct CreateInput {
    /// The subject's common name taken from `subjectData`, when sent.
    pub subject_common_name: Option<String>,
    /// Whether the request carried `subjectData` at all.
    pub has_subject_data: bool,
}

impl Service {
    /// `credentials/create`: returns the new credential's id.
    pub async fn create_on_demand(&self, session: &Session, input: CreateInput) -> Result<String> {
        let cfg = &self.cfg.on_demand;
        if !cfg.enabled {
            return Err(Error::invalid("credentials/create is not enabled on this service"));
        }
        if !session.may_create_credentials() {
            return Err(Error::invalid("The access token does not allow creating credentials"));
        }
        if input.has_subject_data && !cfg.subject_from_request {
            return Err(Error::invalid("Invalid parameter subjectData: this service takes the subject from the user's account"));
        }
        let key = KeyAlgorithm::from_name(&cfg.key).ok_or_else(|| Error::Internal(format!("[on_demand] key {} is unknown", cfg.key)))?;
        let backend = KeyBackendKind::parse(&cfg.backend)
            .ok_or_else(|| Error::Internal(format!("[on_demand] backend {} is unknown", cfg.backend)))?;
        let user = self.store.user_by_id(&session.user_id).await?.ok_or_else(|| Error::invalid("no such user"))?;
        let held = self
            .store
            .credentials(Some(&user.id))
            .await?
            .iter()
            .filter(|c| c.description.as_deref() == Some(ON_DEMAND_DESCRIPTION) && c.cert_status == CertState::Valid)
            .count();
        if held >= cfg.max_per_user as usize {
            return Err(Error::invalid("The user holds the most on-demand credentials allowed"));
        }
        let cn = match input.subject_common_name {
            Some(cn) if !cn.trim().is_empty() && cn.len() <= 64 => cn,
            Some(_) => return Err(Error::invalid("Invalid parameter subjectData")),
            None => user.name.clone(),
        };
        let id = new_id()?;
        let keystore = self.backend_of(backend)?;
        let binding = credential_key_binding(&id);
        let generated =
            tokio::task::spawn_blocking(move || keystore.generate(key, &binding)).await.map_err(|e| Error::Internal(e.to_string()))??;
        let minutes = cfg.certificate_minutes.max(1);
        let cert = crate::service::blocking_if(self.ca_in_hsm, || {
            self.ca.issue_short_signing_cert(&self.names, &cn, generated.key.as_ref(), minutes)
        })?;
        // The signer authorizes with their account password (explicit mode, PIN = password):
        // the request carries no PIN (csc-api-2.2.md §8), and the password's argon2 hash is
        // the same format as a PIN hash.
        let row = CredentialRow {
            id: id.clone(),
            user_id: user.id.clone(),
            key_algo: key,
            key_handle: generated.handle,
            cert: cert.clone(),
            scal: 1,
            multisign: 1,
            pin_hash: user.password_hash.clone(),
            pin_format: "A".into(),
            otp_kind: None,
            otp_secret: None,
            failed_attempts: 0,
            locked: false,
            disabled: false,
            description: Some(ON_DEMAND_DESCRIPTION.into()),
            created_at: now(),
            cert_status: CertState::Valid,
            revoked_at: None,
            revocation_reason: None,
            auth_mode: AuthMode::Explicit,
            key_backend: backend,
            pin_wrap_salt: None,
        };
        self.store.insert_credential(&row).await?;
        self.audit(
            &user.name,
            "credential.create",
            Outcome::Ok,
            Some(&id),
            json!({"key": key.name(), "backend": backend.as_str(), "serial": cert.serial_hex, "minutes": minutes}),
        )
        .await?;
        Ok(id)
    }

    /// `credentials/delete`: destroy the key and revoke the certificate (RFC 5280 reason
    /// `reason`, default cessationOfOperation). The record stays, revoked and disabled, so that
    /// OCSP and the CRL keep answering for the certificate.
    pub async fn delete_on_demand(&self, session: &Session, id: &str, reason: Option<i64>) -> Result<()> {
        if !self.cfg.on_demand.enabled {
            return Err(Error::invalid("credentials/delete is not enabled on this service"));
        }
        if !session.may_delete_credential(id) {
            return Err(Error::invalid("The access token does not allow deleting this credential"));
        }
        let reason = reason.unwrap_or(5);
        // RFC 5280 §5.3.1: 7 is unused; removeFromCRL (8) is not a revocation.
        if !(0..=10).contains(&reason) || reason == 7 || reason == 8 {
            return Err(Error::invalid("Invalid parameter revocationReason"));
        }
        let row = self.own_credential(session, id).await?;
        if row.description.as_deref() != Some(ON_DEMAND_DESCRIPTION) {
            return Err(Error::invalid("Invalid parameter credentialID: not an on-demand credential"));
        }
        // The key first: if the HSM cannot be reached, nothing changes.
        self.destroy_key(row.key_backend, &row.key_handle, id).await?;
        self.store.set_cert_status(id, &[CertState::Valid, CertState::Suspended], CertState::Revoked, Some(reason), now()).await?;
        self.store.set_credential_disabled(id, true).await?;
        // Erase the stored handle (for software keys, the wrapped key itself); this also
        // revokes the credential's SADs.
        self.store.update_credential_pin(id, &row.pin_hash, &row.pin_format, &[], None).await?;
        self.forget_key(id);
        self.audit(&session.user_name, "credential.delete", Outcome::Ok, Some(id), json!({"reason": reason, "serial": row.cert.serial_hex}))
            .await
    }
}
