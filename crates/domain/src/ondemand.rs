//! On-demand credentials (CSC API 2.2.0.0 §11.4 `credentials/create`, §11.5
//! `credentials/delete`): a key and a short-lived certificate made for one signing session.
//!
//! The callers: a service-scope session (the user on their own account), or a one-shot OAuth
//! token of the 2.2 scopes and RAR types `credential-creation` / `credential-deletion`
//! (csc-api-2.2.md §4), which reaches one call of its method and nothing else. It is spent
//! once the call has passed its checks, before the key is made or destroyed: a refused
//! request leaves it usable, a failure after that point (an HSM that cannot be reached)
//! spends it, and the client asks the signer again.
//!
//! How a create request and a creation token's RAR combine: the signer approved the RAR's
//! `credentialCreationRequest` on the consent page, so its `subjectData` is the subject (ETSI
//! TS 119 432: with RAR the server takes the subject data from the authorization server
//! through the token's `authorization_details`); the create request may leave it out or
//! repeat it, but not change it, and may not add one the signer did not see. A token asked
//! for with `scope` alone carries no creation request: the create request's `subjectData`
//! is used as for a service-scope session. Either way the operator's `subject_from_request`
//! decides whether request subjects are taken at all.

use cloudsign_asn1::KeyAlgorithm;
use cloudsign_keys::KeyBackendKind;
use cloudsign_store::{AuthMode, CertState, CredentialRow, Outcome, TokenKind};
use serde::Deserialize;
use serde_json::json;

use crate::secrets::new_id;
use crate::service::credential_key_binding;
pub use crate::session::{CreationRequest, CredentialManagement, ManagementSession};
use crate::{Error, Result, Service, Session, now};

/// Marks a credential as made by `credentials/create` (only those may be deleted through
/// `credentials/delete`; an administrator's credential is not the signer's to destroy).
pub const ON_DEMAND_DESCRIPTION: &str = "On-demand credential";

/// The `[on_demand]` settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    /// Lifetime in seconds of the OAuth `credential-creation` and `credential-deletion`
    /// tokens (`expires_in`): one-shot grants, used right after the consent. At most a day
    /// (the creation details stay with the spent authorization code that long).
    pub token_seconds: u64,
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
            token_seconds: 300,
        }
    }
}

impl OnDemandConfig {
    /// The lifetime of the one-shot OAuth tokens, within its bound.
    pub fn token_lifetime(&self) -> u64 {
        self.token_seconds.clamp(1, MAX_TOKEN_SECONDS)
    }
}

/// The longest life of a credential-management token: the spent authorization code that holds
/// its creation details is purged a day after it expired (`Store::purge_expired`).
const MAX_TOKEN_SECONDS: u64 = 86_400;

/// The common name from `subjectData`: OIDC claims (ETSI TS 119 432: `given_name`,
/// `family_name`) or the EUDI server's `givenName`/`surname`; `commonName` or `name` first.
pub fn subject_common_name(data: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let get = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty());
    if let Some(cn) = get("commonName").or_else(|| get("name")) {
        return Some(cn.to_owned());
    }
    let given = get("given_name").or_else(|| get("givenName"));
    let family = get("family_name").or_else(|| get("surname"));
    match (given, family) {
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        (Some(x), None) | (None, Some(x)) => Some(x.to_owned()),
        _ => None,
    }
}

/// The certificate's common name for `data`, or why it cannot be one.
fn common_name_of(data: &serde_json::Map<String, serde_json::Value>) -> Result<String> {
    match subject_common_name(data) {
        Some(cn) if cn.chars().count() <= 64 && !cn.chars().any(char::is_control) => Ok(cn),
        Some(_) => Err(Error::invalid("Invalid parameter subjectData: the name is longer than 64 characters")),
        None => Err(Error::invalid("Invalid parameter subjectData: no name")),
    }
}

/// What `credentials/create` asks for: its `credentialCreationRequest` (empty when absent).
#[derive(Debug, Default)]
pub struct CreateInput {
    /// The request's creation request.
    pub request: CreationRequest,
}

/// The stored name of a grant, for the audit and the token response's `scope`.
fn grant_name(caller: &ManagementSession) -> &'static str {
    match &caller.grant {
        None => "service",
        Some(CredentialManagement::Creation { .. }) => "credential-creation",
        Some(CredentialManagement::Deletion { .. }) => "credential-deletion",
    }
}

impl Service {
    /// Check a creation request (from an authorization request's RAR, or from
    /// `credentials/create`) against the operator's settings: returns the certificate's
    /// common name, `None` for the user's account name.
    pub(crate) fn check_creation_request(&self, request: &CreationRequest) -> Result<Option<String>> {
        if request.certificate_policy.is_some() {
            // The built-in CA writes no certificatePolicies extension (nor does its short-lived
            // profile): a certificate "under" the policy asked for would be a false claim.
            return Err(Error::invalid(
                "Invalid parameter certificatePolicy: this service issues its certificates under no certificate policy",
            ));
        }
        match &request.subject_data {
            None => Ok(None),
            Some(_) if !self.cfg.on_demand.subject_from_request => {
                Err(Error::invalid("Invalid parameter subjectData: this service takes the subject from the user's account"))
            }
            Some(data) => common_name_of(data).map(Some),
        }
    }

    /// The creation request in force for `caller`: the one the signer approved (a RAR
    /// creation token), which the create request may repeat but not change, else the create
    /// request's own (see the module comment).
    fn effective_creation_request(caller: &ManagementSession, asked: CreationRequest) -> Result<CreationRequest> {
        let Some(CredentialManagement::Creation { request: Some(approved) }) = &caller.grant else { return Ok(asked) };
        if asked.subject_data.as_ref().is_some_and(|s| Some(s) != approved.subject_data.as_ref()) {
            return Err(Error::invalid(
                "Invalid parameter subjectData: it differs from what the signer approved (the token's authorization_details)",
            ));
        }
        if asked.certificate_policy.as_ref().is_some_and(|p| Some(p) != approved.certificate_policy.as_ref()) {
            return Err(Error::invalid(
                "Invalid parameter certificatePolicy: it differs from what the signer approved (the token's authorization_details)",
            ));
        }
        Ok(approved.clone())
    }

    /// Audit a refused create or delete and return the refusal.
    async fn refuse_management<T>(&self, caller: &ManagementSession, event: &str, credential: Option<&str>, e: Error) -> Result<T> {
        let reason = e.to_string();
        self.audit(&caller.session.user_name, event, Outcome::Refused, credential, json!({"grant": grant_name(caller), "reason": reason}))
            .await?;
        Err(e)
    }

    /// Spend the caller's one-shot token, if it is one: a second use (or a racing one) finds it
    /// spent.
    async fn spend_management_token(&self, caller: &ManagementSession, event: &str, credential: Option<&str>) -> Result<()> {
        let kind = match &caller.grant {
            None => return Ok(()),
            Some(CredentialManagement::Creation { .. }) => TokenKind::CredentialCreation,
            Some(CredentialManagement::Deletion { .. }) => TokenKind::CredentialDeletion,
        };
        let hash = caller.session.token_hash.as_deref().ok_or(Error::ExpiredToken)?;
        if self.store.consume_token(hash, kind, credential.filter(|_| kind == TokenKind::CredentialDeletion), now()).await? {
            Ok(())
        } else {
            self.refuse_management(caller, event, credential, Error::ExpiredToken).await
        }
    }

    /// `credentials/create`: returns the new credential's id.
    pub async fn create_on_demand(&self, caller: &ManagementSession, input: CreateInput) -> Result<String> {
        const EVENT: &str = crate::audit::EVENT_CREDENTIAL_CREATE;
        let cfg = &self.cfg.on_demand;
        if !cfg.enabled {
            return Err(Error::invalid("credentials/create is not enabled on this service"));
        }
        if !caller.may_create_credentials() {
            return self
                .refuse_management(caller, EVENT, None, Error::invalid("The access token does not allow creating credentials"))
                .await;
        }
        let request = match Self::effective_creation_request(caller, input.request) {
            Ok(r) => r,
            Err(e) => return self.refuse_management(caller, EVENT, None, e).await,
        };
        let subject = match self.check_creation_request(&request) {
            Ok(s) => s,
            Err(e) => return self.refuse_management(caller, EVENT, None, e).await,
        };
        let key = KeyAlgorithm::from_name(&cfg.key).ok_or_else(|| Error::Internal(format!("[on_demand] key {} is unknown", cfg.key)))?;
        let backend = KeyBackendKind::parse(&cfg.backend)
            .ok_or_else(|| Error::Internal(format!("[on_demand] backend {} is unknown", cfg.backend)))?;
        let session = &caller.session;
        let user = self.store.user_by_id(&session.user_id).await?.ok_or_else(|| Error::invalid("no such user"))?;
        let held = self
            .store
            .credentials(Some(&user.id))
            .await?
            .iter()
            .filter(|c| c.description.as_deref() == Some(ON_DEMAND_DESCRIPTION) && c.cert_status == CertState::Valid)
            .count();
        if held >= cfg.max_per_user as usize {
            return self
                .refuse_management(caller, EVENT, None, Error::invalid("The user holds the most on-demand credentials allowed"))
                .await;
        }
        // Everything that can be checked was: the one-shot token is spent now, before the key
        // is made, so that two racing requests cannot both create with it.
        self.spend_management_token(caller, EVENT, None).await?;
        let cn = subject.unwrap_or_else(|| user.name.clone());
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
        let rar = matches!(&caller.grant, Some(CredentialManagement::Creation { request: Some(_) }));
        self.audit(
            &user.name,
            EVENT,
            Outcome::Ok,
            Some(&id),
            json!({"key": key.name(), "backend": backend.as_str(), "serial": cert.serial_hex, "minutes": minutes,
                   "grant": grant_name(caller), "rar": rar, "subject": cn}),
        )
        .await?;
        Ok(id)
    }

    /// The user's on-demand credential `id` that may still be deleted, for the OAuth
    /// deletion grant (checked at login, at consent and at the code exchange; the deletion
    /// itself checks again).
    pub(crate) async fn deletable_credential(&self, user_id: &str, user_name: &str, id: &str) -> Result<CredentialRow> {
        let session = Session { user_id: user_id.to_string(), user_name: user_name.to_string(), credential: None, token_hash: None };
        let row = self.own_credential(&session, id).await?;
        if row.description.as_deref() != Some(ON_DEMAND_DESCRIPTION) {
            return Err(Error::invalid("Invalid parameter credentialID: not an on-demand credential"));
        }
        if row.disabled || row.cert_status == CertState::Revoked {
            return Err(Error::invalid("Invalid parameter credentialID: the credential is already deleted"));
        }
        Ok(row)
    }

    /// `credentials/delete`: destroy the key and revoke the certificate (RFC 5280 reason
    /// `reason`, default cessationOfOperation). The record stays, revoked and disabled, so that
    /// OCSP and the CRL keep answering for the certificate.
    pub async fn delete_on_demand(&self, caller: &ManagementSession, id: &str, reason: Option<i64>) -> Result<()> {
        const EVENT: &str = crate::audit::EVENT_CREDENTIAL_DELETE;
        if !self.cfg.on_demand.enabled {
            return Err(Error::invalid("credentials/delete is not enabled on this service"));
        }
        if !caller.may_delete_credential(id) {
            let e = Error::invalid("The access token does not allow deleting this credential");
            return self.refuse_management(caller, EVENT, None, e).await;
        }
        let reason = reason.unwrap_or(5);
        // RFC 5280 §5.3.1: 7 is unused; removeFromCRL (8) is not a revocation.
        if !(0..=10).contains(&reason) || reason == 7 || reason == 8 {
            return Err(Error::invalid("Invalid parameter revocationReason"));
        }
        let session = &caller.session;
        let row = match self.own_credential(session, id).await {
            Ok(r) => r,
            Err(e) => return self.refuse_management(caller, EVENT, None, e).await,
        };
        if row.description.as_deref() != Some(ON_DEMAND_DESCRIPTION) {
            let e = Error::invalid("Invalid parameter credentialID: not an on-demand credential");
            return self.refuse_management(caller, EVENT, Some(id), e).await;
        }
        self.spend_management_token(caller, EVENT, Some(id)).await?;
        // The key first: if the HSM cannot be reached, nothing changes.
        self.destroy_key(row.key_backend, &row.key_handle, id).await?;
        self.store.set_cert_status(id, &[CertState::Valid, CertState::Suspended], CertState::Revoked, Some(reason), now()).await?;
        self.store.set_credential_disabled(id, true).await?;
        // Erase the stored handle (for software keys, the wrapped key itself); this also
        // revokes the credential's SADs.
        self.store.update_credential_pin(id, &row.pin_hash, &row.pin_format, &[], None).await?;
        self.forget_key(id);
        self.audit(
            &session.user_name,
            EVENT,
            Outcome::Ok,
            Some(id),
            json!({"reason": reason, "serial": row.cert.serial_hex, "grant": grant_name(caller)}),
        )
        .await
    }
}
