//! The signer's steps on the authorization pages: log in, then approve or deny (CSC v2
//! §8.3.2: the signer authorizes the credential with its PIN and OTP on the consent page).

use cloudsign_asn1::{HashAlgorithm, b64};
use cloudsign_store::Outcome;
use serde_json::json;
use zeroize::Zeroizing;

use super::{ClientRedirect, ErrorCode, FlowError};
use crate::credentials::factors_of;
use crate::secrets::{new_token, token_hash};
use crate::session::CredentialManagement;
use crate::{Error, Factors, RequestContext, Service, Session, now};

/// What the authorization pages show.
#[derive(Debug)]
pub enum FlowView {
    /// The signer logs in.
    Login {
        /// The application's name.
        client_name: String,
        /// Credential scope (the login page says a signature is coming).
        credential: bool,
    },
    /// The signer approves or denies.
    Consent(Box<ConsentView>),
}

/// The consent page.
#[derive(Debug)]
pub struct ConsentView {
    /// The application's name.
    pub client_name: String,
    /// Who is logged in.
    pub user_name: String,
    /// What is signed, for credential scope.
    pub credential: Option<CredentialConsent>,
    /// What is created or deleted, for a 2.2 credential-management grant.
    pub management: Option<ManagementConsent>,
}

/// The credential-management part of the consent page (CSC 2.2 §11.4, §11.5): what the
/// token will allow, in words the signer can check.
#[derive(Debug)]
pub enum ManagementConsent {
    /// One `credentials/create`.
    Creation {
        /// The new certificate's common name; `None`: the application may name it (a
        /// `scope`-only request, where the operator takes subjects from requests).
        subject: Option<String>,
        /// Key type.
        key: String,
        /// Certificate lifetime in minutes.
        minutes: u32,
    },
    /// One `credentials/delete` of this credential.
    Deletion {
        /// The credential.
        credential_id: String,
        /// Its certificate's subject.
        subject: String,
        /// Its certificate's serial number (hex).
        serial: String,
    },
}

/// The credential part of the consent page.
#[derive(Debug)]
pub struct CredentialConsent {
    /// Certificate subject.
    pub subject: String,
    /// Certificate issuer.
    pub issuer: String,
    /// Key type.
    pub key: String,
    /// Signatures authorized.
    pub num_signatures: u64,
    /// Transaction description.
    pub description: Option<String>,
    /// Digest algorithm name.
    pub hash_algorithm: Option<String>,
    /// (label, base64 digest) per document.
    pub documents: Vec<(String, String)>,
    /// The PIN field.
    pub needs_pin: bool,
    /// The OTP field, with its hint.
    pub otp: Option<String>,
}

impl Service {
    /// What the authorization page shows now.
    pub async fn flow_view(&self, flow: &str) -> std::result::Result<FlowView, FlowError> {
        let (request, client, user_id) = self.load_flow(flow).await?;
        let Some(user_id) = user_id else {
            return Ok(FlowView::Login { client_name: client.name, credential: request.credential.is_some() });
        };
        let user = self.store.user_by_id(&user_id).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
        let credential = match &request.credential {
            None => None,
            Some(g) => {
                let row = self.store.credential(&g.credential_id).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
                let factors = factors_of(&row);
                let algorithm = g.hash_algorithm.as_deref().and_then(HashAlgorithm::from_oid);
                Some(CredentialConsent {
                    subject: row.cert.subject_dn.clone(),
                    issuer: row.cert.issuer_dn.clone(),
                    key: row.key_algo.name().into(),
                    num_signatures: g.num_signatures,
                    description: g.description.clone(),
                    hash_algorithm: algorithm.map(|a| a.name().to_string()),
                    documents: g
                        .documents
                        .iter()
                        .enumerate()
                        .map(|(i, d)| (d.label.clone().unwrap_or_else(|| format!("Document {}", i + 1)), b64::encode(&d.digest)))
                        .collect(),
                    needs_pin: factors.iter().any(|f| f.id == "PIN"),
                    otp: factors.iter().find(|f| f.id == "OTP").map(|f| f.description.to_string()),
                })
            }
        };
        let management = match request.management.as_ref().map(|m| &m.grant) {
            None => None,
            Some(CredentialManagement::Creation { request: approved }) => {
                let subject = match approved {
                    Some(r) => Some(self.check_creation_request(r)?.unwrap_or_else(|| user.name.clone())),
                    None if self.cfg.on_demand.subject_from_request => None,
                    None => Some(user.name.clone()),
                };
                let cfg = &self.cfg.on_demand;
                Some(ManagementConsent::Creation { subject, key: cfg.key.clone(), minutes: cfg.certificate_minutes.max(1) })
            }
            Some(CredentialManagement::Deletion { credential_id }) => {
                let row = self.deletable_credential(&user.id, &user.name, credential_id).await.map_err(|_| FlowError::NoFlow)?;
                Some(ManagementConsent::Deletion {
                    credential_id: row.id.clone(),
                    subject: row.cert.subject_dn.clone(),
                    serial: row.cert.serial_hex.clone(),
                })
            }
        };
        Ok(FlowView::Consent(Box::new(ConsentView { client_name: client.name, user_name: user.name, credential, management })))
    }

    /// The login form: check the password, then check that the credential asked for is this
    /// user's and usable (otherwise back to the application with the reason).
    pub async fn flow_login(
        &self,
        ctx: &RequestContext,
        flow: &str,
        csrf: Option<&str>,
        user_name: &str,
        password: Zeroizing<String>,
    ) -> std::result::Result<(), FlowError> {
        Self::check_csrf(flow, csrf)?;
        let (request, client, _) = self.load_flow(flow).await?;
        let user = match self.check_password(ctx, user_name, password, "oauth2.login").await {
            Ok(u) => u,
            Err(Error::AuthenticationFailed) => return Err(FlowError::Retry("Wrong user name or password".into())),
            Err(e @ Error::Throttled { .. }) => return Err(FlowError::Retry(e.to_string())),
            Err(e) => return Err(e.into()),
        };
        if let Some(g) = &request.credential {
            let session = Session { user_id: user.id.clone(), user_name: user.name.clone(), credential: None, token_hash: None };
            let refuse = |code: ErrorCode, m: String| FlowError::Redirect(ClientRedirect::refuse(&request, code, m));
            let row = match self.own_credential(&session, &g.credential_id).await {
                Ok(r) => r,
                Err(_) => return Err(refuse(ErrorCode::InvalidRequest, "Invalid parameter credentialID".into())),
            };
            if let Err(e) = self.check_usable(&row) {
                self.take_flow(flow).await?;
                let code = if matches!(e, Error::Locked) { ErrorCode::AccessDenied } else { ErrorCode::InvalidRequest };
                return Err(refuse(code, e.to_string()));
            }
            if let Err(e) = self.refuse_if_approved_elsewhere(&row).await {
                self.take_flow(flow).await?;
                return Err(refuse(ErrorCode::InvalidRequest, e.to_string()));
            }
            if g.num_signatures > row.multisign as u64 {
                return Err(refuse(ErrorCode::InvalidRequest, "Numbers of signatures is too high".into()));
            }
            if row.scal == 2 && g.documents.is_empty() {
                return Err(refuse(ErrorCode::InvalidRequest, "The credential (SCAL 2) requires the hashes to be signed".into()));
            }
            if let Some(algorithm) = g.hash_algorithm.as_deref().and_then(HashAlgorithm::from_oid) {
                let key = Some(row.key_algo);
                if !key.is_some_and(|k| k.schemes().iter().any(|s| s.hash() == algorithm)) {
                    return Err(refuse(
                        ErrorCode::InvalidRequest,
                        format!("{} digests cannot be signed with this {} key", algorithm.name(), row.key_algo.name()),
                    ));
                }
            }
            // An online OTP is sent now, so that it is waiting when the consent page shows.
            if row.otp_kind == Some(cloudsign_store::OtpKind::Online) {
                self.get_challenge(&session, ctx, &row.id, "OTP").await?;
            }
        }
        // A deletion names a credential that must be this signer's, on-demand and not yet
        // deleted (checked again at consent, at the code exchange and at the deletion).
        if let Some(CredentialManagement::Deletion { credential_id }) = request.management.as_ref().map(|m| &m.grant)
            && let Err(e) = self.deletable_credential(&user.id, &user.name, credential_id).await
        {
            self.take_flow(flow).await?;
            self.audit_deletion_refused(ctx, &user.name, &client.id, &e).await?;
            return Err(FlowError::Redirect(ClientRedirect::refuse(&request, ErrorCode::InvalidRequest, e.to_string())));
        }
        if !self.store.set_oauth_request_user(&token_hash(flow), &user.id).await.map_err(Error::from)? {
            return Err(FlowError::NoFlow);
        }
        self.audit(&user.name, "oauth2.login", Outcome::Ok, None, json!({"client": ctx.client, "client_id": client.id})).await?;
        Ok(())
    }

    /// The consent form: deny, or approve (with the credential's factors, under the same
    /// attempt counting and lockout as `credentials/authorize`) and return to the application
    /// with a single-use code.
    pub async fn flow_decide(
        &self,
        ctx: &RequestContext,
        flow: &str,
        csrf: Option<&str>,
        approve: bool,
        factors: Factors,
    ) -> std::result::Result<ClientRedirect, FlowError> {
        Self::check_csrf(flow, csrf)?;
        let (request, client, user_id) = self.load_flow(flow).await?;
        let user_id = user_id.ok_or(FlowError::NoFlow)?;
        let user = self.store.user_by_id(&user_id).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
        let back = |code: ErrorCode, m: &str| ClientRedirect::refuse(&request, code, m);
        let deletion = match request.management.as_ref().map(|m| &m.grant) {
            Some(CredentialManagement::Deletion { credential_id }) => Some(credential_id.clone()),
            _ => None,
        };
        let grant_name = request.management.as_ref().map(|m| m.name());
        let credential_id = request.credential.as_ref().map(|g| g.credential_id.clone()).or_else(|| deletion.clone());
        let mut pin_for_key = None;
        if !approve {
            self.take_flow(flow).await?;
            self.audit(
                &user.name,
                "oauth2.consent",
                Outcome::Denied,
                credential_id.as_deref(),
                json!({"client": ctx.client, "client_id": client.id, "grant": grant_name}),
            )
            .await?;
            return Ok(back(ErrorCode::AccessDenied, "The user denied the request"));
        }
        if let Some(id) = &deletion
            && let Err(e) = self.deletable_credential(&user.id, &user.name, id).await
        {
            self.take_flow(flow).await?;
            self.audit_deletion_refused(ctx, &user.name, &client.id, &e).await?;
            return Err(FlowError::Redirect(back(ErrorCode::InvalidRequest, &e.to_string())));
        }
        if let Some(g) = &request.credential {
            let session = Session { user_id: user.id.clone(), user_name: user.name.clone(), credential: None, token_hash: None };
            let row = self.own_credential(&session, &g.credential_id).await.map_err(|_| FlowError::NoFlow)?;
            if let Err(e) = self.check_usable(&row) {
                self.take_flow(flow).await?;
                return Err(FlowError::Redirect(back(
                    if matches!(e, Error::Locked) { ErrorCode::AccessDenied } else { ErrorCode::InvalidRequest },
                    &e.to_string(),
                )));
            }
            if let Err(e) = self.refuse_if_approved_elsewhere(&row).await {
                self.take_flow(flow).await?;
                return Err(FlowError::Redirect(back(ErrorCode::InvalidRequest, &e.to_string())));
            }
            let needs_otp = factors_of(&row).iter().any(|f| f.id == "OTP");
            let Some(pin) = factors.pin.filter(|p| !p.is_empty()) else { return Err(FlowError::Retry("Enter the PIN".into())) };
            let otp = factors.otp.filter(|o| !o.is_empty());
            if needs_otp && otp.is_none() {
                return Err(FlowError::Retry("Enter the one-time code".into()));
            }
            pin_for_key = row.pin_wrap_salt.clone().map(|salt| (salt, pin.clone()));
            match self.verify_factors(&session, ctx, &row, pin, if needs_otp { otp } else { None }).await {
                Ok(()) => {}
                Err(Error::InvalidPin { attempts_left }) if attempts_left > 0 => return Err(FlowError::Retry(wrong("PIN", attempts_left))),
                Err(Error::InvalidOtp { attempts_left }) if attempts_left > 0 => {
                    return Err(FlowError::Retry(wrong("one-time code", attempts_left)));
                }
                // The last attempt failed (the credential is now locked), or it was locked already.
                Err(Error::Locked | Error::InvalidPin { .. } | Error::InvalidOtp { .. }) => {
                    self.take_flow(flow).await?;
                    self.audit(
                        &user.name,
                        "oauth2.consent",
                        Outcome::Refused,
                        Some(&row.id),
                        json!({"client": ctx.client, "reason": "locked"}),
                    )
                    .await?;
                    return Err(FlowError::Redirect(back(ErrorCode::AccessDenied, "PIN locked: too many failed attempts")));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Taking the flow is what makes the approval count once, even if the form is sent twice.
        self.take_flow(flow).await?;
        let code = new_token()?;
        let mut request = request;
        if let (Some((salt, pin)), Some(g)) = (pin_for_key, request.credential.as_mut()) {
            let pin_key = self.pin_key(&pin, &salt).await?;
            g.sole_key = Some(crate::sole::wrap_for(&*pin_key, &code, &token_hash(&code))?);
        }
        let grant = serde_json::to_string(&request).map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .insert_code(&token_hash(&code), &client.id, &user.id, &grant, now() + self.cfg.oauth_code_ttl as i64)
            .await
            .map_err(Error::from)?;
        let digests: Option<Vec<String>> =
            request.credential.as_ref().map(|g| g.documents.iter().map(|d| crate::secrets::hex(&d.digest)).collect());
        self.audit(
            &user.name,
            "oauth2.consent",
            Outcome::Ok,
            credential_id.as_deref(),
            json!({"client": ctx.client, "client_id": client.id, "numSignatures": request.credential.as_ref().map(|g| g.num_signatures), "hashes": digests, "grant": grant_name}),
        )
        .await?;
        Ok(ClientRedirect { redirect_uri: request.redirect_uri, state: request.state, result: Ok(code) })
    }
}

impl Service {
    /// Audit a credential-deletion grant refused on the pages (the credential is not the
    /// signer's, not on-demand, or already deleted). The credential id asked for is not
    /// recorded as the record's credential: it may be another user's.
    async fn audit_deletion_refused(&self, ctx: &RequestContext, user: &str, client_id: &str, e: &Error) -> Result<(), FlowError> {
        let detail = json!({"client": ctx.client, "client_id": client_id, "grant": "credential-deletion", "reason": e.to_string()});
        Ok(self.audit(user, "oauth2.consent", Outcome::Refused, None, detail).await?)
    }
}

fn wrong(what: &str, attempts_left: i64) -> String {
    match attempts_left {
        1 => format!("Wrong {what}: 1 attempt left before the credential locks."),
        n => format!("Wrong {what}: {n} attempts left before the credential locks."),
    }
}
