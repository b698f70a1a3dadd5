//! Out-of-band credential authorization: a pending authorization that a signer approves
//! elsewhere (CSC v2 §11.6 202 answer, §11.7 `credentials/authorizeCheck`).
//!
//! A credential may have an approver besides its PIN (and OTP): `credentials/info` shows it as
//! an auth object of type `ChallengeResponseOOB` with id [`APPROVAL_OBJECT`], the expression
//! `PIN AND approval`. `credentials/authorize` checks the PIN as always, then stores a pending
//! approval and hands the client an opaque `handle` (202) instead of a SAD; the [`Approver`]
//! delivers the request to the signer with a one-time token. The signer's decision comes back
//! through [`Service::approve`] or [`Service::deny`] with that token (the built-in
//! [`LinkApprover`]'s page calls them, and so will a device's approver); the client polls
//! [`Service::authorize_check`] with its handle and gets the SAD once, bound as the
//! authorization asked (count, digests).
//!
//! The handle and the token are 256-bit random values, stored only as SHA-256 hashes (the
//! store's lookup is by hash; the found row's hash is compared again in constant time). Every
//! change of state is one conditional UPDATE in the store with its audit record in the same
//! transaction, so it happens once even with requests racing on several nodes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cloudsign_asn1::{HashAlgorithm, b64};
use cloudsign_store::{ApprovalRow, ApprovalState, Claim, CredentialRow, NewApproval, NewAudit, NewSad, Outcome};
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::credentials::{AuthorizeInput, Sad};
use crate::otp::OtpSender;
use crate::secrets::{ct_eq, hex, new_token, token_hash};
use crate::{Error, RequestContext, Result, Service, Session, now};

/// The id of the out-of-band auth object in `credentials/info` and `authData`.
pub const APPROVAL_OBJECT: &str = "approval";

/// The built-in approver: a one-time link through the OTP sender.
pub const LINK_APPROVER: &str = "link";

/// Where the approval page is: `GET {base}/oauth2/approve?t=TOKEN`. The token travels in the
/// query, not the path, so that the access log (which writes paths only) never holds it.
pub const APPROVE_PATH: &str = "/oauth2/approve";

/// Approvals that ended are kept this long past their deadline, so that a late poll still
/// learns "denied" or "expired" rather than "unknown handle".
const KEEP_ENDED_SECONDS: i64 = 86_400;

/// The `[approval]` settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// Offer out-of-band approval: credentials with an approver can be authorized, and `info`
    /// lists `credentials/authorizeCheck`. Off by default: a strict client (the Swift EUDI
    /// client) cannot read an `info` whose `methods` name `credentials/authorizeCheck`
    /// (csc-api-2.2.md §1, Trap (S)), and the link goes through the OTP sender, which the
    /// operator has to have wired to the signers first.
    pub enabled: bool,
    /// How long the signer has to decide, and then the client to collect the SAD (seconds).
    pub seconds: u64,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        Self { enabled: false, seconds: 300 }
    }
}

/// What `credentials/authorize` gives.
#[derive(Debug)]
pub enum Authorization {
    /// The SAD (200).
    Granted(Sad),
    /// The signer approves elsewhere; poll `credentials/authorizeCheck` (202).
    Pending(PendingAuthorization),
}

/// A `credentials/authorize` answered 202 (CSC v2 §11.6).
pub struct PendingAuthorization {
    /// The opaque handle for `credentials/authorizeCheck` (a secret: it collects the SAD).
    pub handle: String,
    /// How long the signer has to decide (seconds).
    pub expires_in: u64,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// What `credentials/authorizeCheck` finds (an unknown handle, or one of another user, is an
/// error: `Invalid parameter handle`).
#[derive(Debug)]
pub enum CheckOutcome {
    /// The signer has not decided yet (202).
    Pending,
    /// Approved: the SAD, handed out this once.
    Granted(Sad),
    /// The signer denied it.
    Denied,
    /// Nobody decided in time (or the SAD was not collected in time).
    Expired,
}

/// A request for the signer's approval, as an [`Approver`] delivers it.
pub struct PendingApproval {
    /// The credential.
    pub credential_id: String,
    /// The signer (user name): whom to deliver to, as online OTPs are.
    pub user: String,
    /// The credential's description.
    pub credential_description: Option<String>,
    /// Signatures asked for.
    pub num_signatures: u64,
    /// The digests' algorithm, when the authorization binds digests.
    pub hash_algorithm: Option<HashAlgorithm>,
    /// The digests the SAD will be bound to.
    pub digests: Vec<Vec<u8>>,
    /// The application's transaction description.
    pub description: Option<String>,
    /// The one-time token that decides ([`Service::approve`], [`Service::deny`]): a secret.
    pub token: Zeroizing<String>,
    /// The service's address as signers reach it (no trailing slash).
    pub link_base: String,
    /// The signer must decide before then (Unix seconds).
    pub expires_at: i64,
}

impl PendingApproval {
    /// The approval page's address with the token: a secret, like the token.
    pub fn link(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}{APPROVE_PATH}?t={}", self.link_base, self.token.as_str()))
    }
}

/// An approver's delivery in progress.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// Delivers a request for approval to the signer (a link, a push to a device). The decision
/// comes back through [`Service::approve`] / [`Service::deny`] with the request's token.
pub trait Approver: Send + Sync {
    /// The name credentials are created with (`admin credential add --approval NAME`).
    fn name(&self) -> &'static str;
    /// Deliver `pending` to its signer.
    fn request<'a>(&'a self, pending: &'a PendingApproval) -> Delivery<'a>;
}

/// The built-in approver: a one-time link to the approval page, sent through the service's OTP
/// sender to the credential's owner (the outbox line is `user credentialID link`).
pub struct LinkApprover {
    sender: Arc<dyn OtpSender>,
}

impl LinkApprover {
    /// Links through `sender`.
    pub fn new(sender: Arc<dyn OtpSender>) -> Self {
        Self { sender }
    }
}

impl Approver for LinkApprover {
    fn name(&self) -> &'static str {
        LINK_APPROVER
    }

    fn request<'a>(&'a self, pending: &'a PendingApproval) -> Delivery<'a> {
        Box::pin(async move {
            let link = pending.link();
            // The sender's error never carries the link.
            self.sender
                .send(&pending.user, &pending.credential_id, &link)
                .map_err(|e| Error::Unavailable(format!("approval link delivery failed: {}", e.kind())))
        })
    }
}

/// The approvers a service knows, by name.
#[derive(Clone, Default)]
pub struct Approvers {
    by_name: HashMap<&'static str, Arc<dyn Approver>>,
}

impl Approvers {
    /// These approvers and `approver` (replacing one of the same name).
    pub fn with(mut self, approver: Arc<dyn Approver>) -> Self {
        self.by_name.insert(approver.name(), approver);
        self
    }

    /// The approver named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Approver>> {
        self.by_name.get(name)
    }

    /// Their names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.by_name.keys().copied().collect();
        names.sort_unstable();
        names
    }
}

/// What the approval page shows.
#[derive(Debug, Clone)]
pub struct ApprovalView {
    /// The signer.
    pub user_name: String,
    /// The credential's description.
    pub credential_description: Option<String>,
    /// The certificate's subject.
    pub subject: String,
    /// The key type.
    pub key: String,
    /// Signatures asked for.
    pub num_signatures: i64,
    /// The digests' algorithm (name), when bound.
    pub hash_algorithm: Option<String>,
    /// The bound digests, base64, in order.
    pub hashes: Vec<String>,
    /// The application's transaction description.
    pub description: Option<String>,
    /// Seconds left to decide.
    pub seconds_left: i64,
}

/// Why a link cannot be used (the page says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No such link.
    Unknown,
    /// Decided already (a link decides once).
    Used,
    /// Its time is up.
    Expired,
}

/// The result of a page action: done, or why the link cannot be used.
pub type LinkResult<T> = std::result::Result<T, LinkState>;

fn unknown_handle() -> Error {
    Error::invalid("Invalid parameter handle")
}

/// Record `event` in the metrics and build its audit record (written by the store in the
/// transaction of the change it records).
fn audit_record<'a>(actor: &'a str, event: &'a str, outcome: Outcome, credential_id: &'a str, detail: &'a str) -> NewAudit<'a> {
    NewAudit { at: now(), actor, event, outcome, credential_id: Some(credential_id), detail }
}

fn metrics(event: &str, outcome: Outcome, detail: &serde_json::Value) {
    crate::metrics::METRICS.audited(event, outcome, true, detail);
}

impl Service {
    /// Add an approver (a device's, say) besides the built-in [`LinkApprover`].
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approvers = std::mem::take(&mut self.approvers).with(approver);
        self
    }

    /// The approvers this service knows.
    pub fn approvers(&self) -> &Approvers {
        &self.approvers
    }

    /// Refuses the OAuth authorization of a credential whose signer approves out of band: the
    /// consent page checks the PIN only, so a credential-scope token would skip the approval.
    /// Such a credential is authorized by `credentials/authorize` and `authorizeCheck` only.
    pub(crate) async fn refuse_if_approved_elsewhere(&self, row: &CredentialRow) -> Result<()> {
        if self.store.credential_approval(&row.id).await?.is_some() {
            return Err(Error::invalid("The credential is approved out of band: use credentials/authorize and credentials/authorizeCheck"));
        }
        Ok(())
    }

    /// `credentials/authorize` on a credential with an approver, once its PIN (and OTP) were
    /// right: store the pending approval (with its audit record), have the approver deliver it,
    /// and give the client its handle. `pin_key`: under sole control, the PIN-derived key, which
    /// waits sealed under the handle until the SAD takes it over. A delivery that fails leaves
    /// a pending approval that nobody can decide; it lapses.
    pub(crate) async fn request_approval(
        &self,
        session: &Session,
        ctx: &RequestContext,
        row: &CredentialRow,
        approver_name: &str,
        input: AuthorizeInput,
        pin_key: Option<Zeroizing<[u8; 32]>>,
    ) -> Result<PendingAuthorization> {
        let approver = self
            .approvers
            .get(approver_name)
            .cloned()
            .ok_or_else(|| Error::Unavailable(format!("the approver {approver_name} of credential {} is not configured", row.id)))?;
        let link_base = input
            .link_base
            .or_else(|| self.cfg.public_url.clone())
            .map(|b| b.trim_end_matches('/').to_string())
            .ok_or_else(|| Error::Internal("no public address for approval links (set public_url)".into()))?;
        let handle = new_token()?;
        let handle_hash = token_hash(&handle);
        let token = Zeroizing::new(new_token()?);
        let token_digest = token_hash(&token);
        let sole_key = pin_key.map(|k| crate::sole::seal_for(&*k, &handle, &handle_hash)).transpose()?;
        let ttl = self.cfg.approval.seconds.max(1);
        let t = now();
        let expires_at = t + ttl as i64;
        let (hash_algorithm, digests) = match input.hashes {
            Some(h) => (Some(h.algorithm), h.digests),
            None => (None, Vec::new()),
        };
        let digests_hex: Option<Vec<String>> = hash_algorithm.map(|_| digests.iter().map(|d| hex(d)).collect());
        // CSC v2 §11.6: `description` is at most 500 characters; it is only shown, so a longer
        // one is cut rather than refused.
        let description: Option<String> = input.description.map(|d| d.chars().take(500).collect());
        let detail = json!({"client": ctx.client, "clientData": ctx.client_data, "approver": approver_name, "numSignatures": input.num_signatures, "hashes": digests_hex, "hashAlgorithmOID": hash_algorithm.map(|h| h.oid()), "expiresAt": expires_at});
        metrics("approval.request", Outcome::Ok, &detail);
        let detail = detail.to_string();
        let new = NewApproval {
            handle_hash: &handle_hash,
            token_hash: &token_digest,
            approver: approver_name,
            user_id: &session.user_id,
            actor: &session.user_name,
            credential_id: &row.id,
            num_signatures: i64::try_from(input.num_signatures).unwrap_or(i64::MAX),
            hash_algo: hash_algorithm.map(|h| h.oid()),
            digests: digests_hex.as_deref(),
            description: description.as_deref(),
            sole_key: sole_key.as_deref(),
            now: t,
            expires_at,
        };
        self.store.insert_approval(&new, &audit_record(&session.user_name, "approval.request", Outcome::Ok, &row.id, &detail)).await?;
        let pending = PendingApproval {
            credential_id: row.id.clone(),
            user: session.user_name.clone(),
            credential_description: row.description.clone(),
            num_signatures: input.num_signatures,
            hash_algorithm,
            digests,
            description,
            token,
            link_base,
            expires_at,
        };
        approver.request(&pending).await?;
        Ok(PendingAuthorization { handle, expires_in: ttl })
    }

    /// `credentials/authorizeCheck` (CSC v2 §11.7): where the approval `handle` names stands;
    /// once approved, the SAD, handed out exactly once (one conditional UPDATE in the store,
    /// whichever node and however many calls race for it). An unknown handle, one of another
    /// user, and one whose SAD was collected already get the same refusal.
    pub async fn authorize_check(&self, session: &Session, ctx: &RequestContext, handle: &str) -> Result<CheckOutcome> {
        let result = self.authorize_check_inner(session, ctx, handle).await;
        let refusal = match &result {
            Ok(CheckOutcome::Denied) => Some("denied".to_string()),
            Ok(CheckOutcome::Expired) => Some("expired".to_string()),
            Ok(_) | Err(Error::Internal(_) | Error::Unavailable(_)) => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = refusal {
            let detail = json!({"client": ctx.client, "reason": reason});
            self.audit(&session.user_name, "credentials.authorizeCheck", Outcome::Refused, None, detail).await?;
        }
        result
    }

    async fn authorize_check_inner(&self, session: &Session, ctx: &RequestContext, handle: &str) -> Result<CheckOutcome> {
        // Our handles are 43 characters; anything much longer is not one (and is not hashed).
        if handle.is_empty() || handle.len() > 256 {
            return Err(unknown_handle());
        }
        let hash = token_hash(handle);
        let row = match self.store.approval_by_handle(&hash).await? {
            Some(r) if ct_eq(r.handle_hash.as_bytes(), hash.as_bytes()) && r.user_id == session.user_id => r,
            _ => return Err(unknown_handle()),
        };
        // A credential-scope token reaches its own credential only.
        if session.credential_scope().is_some_and(|c| c != row.credential_id) {
            return Err(unknown_handle());
        }
        let t = now();
        if row.lapsed(t) {
            self.expire(&row, t, "credentials/authorizeCheck").await?;
            return Ok(CheckOutcome::Expired);
        }
        match row.state {
            ApprovalState::Pending => Ok(CheckOutcome::Pending),
            ApprovalState::Denied => Ok(CheckOutcome::Denied),
            ApprovalState::Expired => Ok(CheckOutcome::Expired),
            ApprovalState::Issued => Err(unknown_handle()),
            ApprovalState::Approved => self.issue_approved(session, ctx, handle, &row, t).await,
        }
    }

    /// The SAD of an approved approval: made here, stored by the claim that marks the approval
    /// issued (so a claim that loses the race stores nothing).
    async fn issue_approved(
        &self,
        session: &Session,
        ctx: &RequestContext,
        handle: &str,
        row: &ApprovalRow,
        t: i64,
    ) -> Result<CheckOutcome> {
        let credential = self.own_credential(session, &row.credential_id).await.map_err(|_| unknown_handle())?;
        // Disabled, locked or revoked since: no SAD (the approval stays, should it be lifted in time).
        self.check_usable(&credential)?;
        let sad = new_token()?;
        let sad_hash = token_hash(&sad);
        // Sole control: the PIN key moves from under the handle to under the SAD.
        let sole_key = match &row.sole_key {
            Some(sealed) => Some(
                crate::sole::rewrap_sealed(sealed, (handle, &row.handle_hash), (&sad, &sad_hash))
                    .map_err(|_| Error::Internal("damaged sole-control record of an approval".into()))?,
            ),
            None => None,
        };
        let new = NewSad {
            hash: &sad_hash,
            user_id: &session.user_id,
            credential_id: &row.credential_id,
            remaining: row.num_signatures,
            hash_algo: row.hash_algo.as_deref(),
            digests: row.digests.as_deref(),
            expires_at: t + self.cfg.sad_ttl as i64,
            now: t,
            sole_key: sole_key.as_deref(),
        };
        let detail = json!({"client": ctx.client, "clientData": ctx.client_data, "approver": row.approver, "numSignatures": row.num_signatures, "hashes": row.digests, "hashAlgorithmOID": row.hash_algo});
        let text = detail.to_string();
        let audit = audit_record(&session.user_name, "credentials.authorizeCheck", Outcome::Ok, &row.credential_id, &text);
        match self.store.claim_approval(&row.handle_hash, &session.user_id, &new, session.token_hash.as_deref(), &audit).await? {
            Claim::Issued => {
                metrics("credentials.authorizeCheck", Outcome::Ok, &detail);
                Ok(CheckOutcome::Granted(Sad { token: sad, expires_in: self.cfg.sad_ttl }))
            }
            Claim::TokenGone => Err(Error::ExpiredToken),
            // Another call collected it first, or it lapsed a moment ago.
            Claim::NotApproved => match self.store.approval_by_handle(&row.handle_hash).await? {
                Some(r) if r.lapsed(now()) => {
                    self.expire(&r, now(), "credentials/authorizeCheck").await?;
                    Ok(CheckOutcome::Expired)
                }
                _ => Err(unknown_handle()),
            },
        }
    }

    /// Mark a lapsed approval expired, with its audit record (only the first to notice writes it).
    async fn expire(&self, row: &ApprovalRow, t: i64, noticed_by: &str) -> Result<()> {
        let detail = json!({"reason": "expired", "was": row.state.as_str(), "approver": row.approver, "noticedBy": noticed_by});
        let text = detail.to_string();
        if self
            .store
            .expire_approval(&row.handle_hash, t, &audit_record(&row.actor, "approval.expire", Outcome::Refused, &row.credential_id, &text))
            .await?
        {
            metrics("approval.expire", Outcome::Refused, &detail);
        }
        Ok(())
    }

    /// Mark the approvals whose time is up expired (audited), and delete those that ended a
    /// while ago (the periodic purge). Returns the number of rows deleted.
    pub(crate) async fn purge_approvals(&self) -> Result<u64> {
        let t = now();
        let expired = self
            .store
            .expire_approvals(t, "approval.expire", Outcome::Refused, |r| {
                json!({"reason": "expired", "was": r.state.as_str(), "approver": r.approver, "noticedBy": "purge"}).to_string()
            })
            .await?;
        for _ in &expired {
            metrics("approval.expire", Outcome::Refused, &json!({"reason": "expired"}));
        }
        Ok(self.store.purge_approvals(t - KEEP_ENDED_SECONDS).await?)
    }

    /// The pending approval a signer's token names, if it can still be decided.
    async fn decidable(&self, token: &str) -> Result<LinkResult<ApprovalRow>> {
        if token.is_empty() || token.len() > 256 {
            return Ok(Err(LinkState::Unknown));
        }
        let hash = token_hash(token);
        let row = match self.store.approval_by_token(&hash).await? {
            Some(r) if ct_eq(r.token_hash.as_bytes(), hash.as_bytes()) => r,
            _ => return Ok(Err(LinkState::Unknown)),
        };
        let t = now();
        if row.lapsed(t) {
            self.expire(&row, t, "approval page").await?;
            return Ok(Err(LinkState::Expired));
        }
        Ok(match row.state {
            ApprovalState::Pending => Ok(row),
            ApprovalState::Expired => Err(LinkState::Expired),
            ApprovalState::Approved | ApprovalState::Denied | ApprovalState::Issued => Err(LinkState::Used),
        })
    }

    /// What the approval page of `token` shows: what is being authorized.
    pub async fn approval_view(&self, token: &str) -> Result<LinkResult<ApprovalView>> {
        let row = match self.decidable(token).await? {
            Ok(r) => r,
            Err(state) => return Ok(Err(state)),
        };
        let Some(credential) = self.store.credential(&row.credential_id).await? else { return Ok(Err(LinkState::Unknown)) };
        let hashes = row
            .digests
            .iter()
            .flatten()
            .map(|d| ::hex::decode(d).map(|bytes| b64::encode(&bytes)).map_err(|_| Error::Internal("damaged approval digests".into())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Ok(ApprovalView {
            user_name: row.actor.clone(),
            credential_description: credential.description.clone(),
            subject: credential.cert.subject_dn.clone(),
            key: credential.key_algo.name().to_string(),
            num_signatures: row.num_signatures,
            hash_algorithm: row.hash_algo.as_deref().and_then(HashAlgorithm::from_oid).map(|h| h.name().to_string()),
            hashes,
            description: row.description.clone(),
            seconds_left: (row.expires_at - now()).max(0),
        }))
    }

    /// The signer approves the request `token` names (once; an approver's page or device calls
    /// this). The client then collects the SAD with `credentials/authorizeCheck` within the
    /// approval lifetime.
    pub async fn approve(&self, ctx: &RequestContext, token: &str) -> Result<LinkResult<()>> {
        self.decide(ctx, token, true).await
    }

    /// The signer denies the request `token` names (once).
    pub async fn deny(&self, ctx: &RequestContext, token: &str) -> Result<LinkResult<()>> {
        self.decide(ctx, token, false).await
    }

    async fn decide(&self, ctx: &RequestContext, token: &str, approve: bool) -> Result<LinkResult<()>> {
        let row = match self.decidable(token).await? {
            Ok(r) => r,
            Err(state) => return Ok(Err(state)),
        };
        let (event, outcome) = if approve { ("approval.approve", Outcome::Ok) } else { ("approval.deny", Outcome::Denied) };
        let detail = json!({"client": ctx.client, "approver": row.approver});
        let text = detail.to_string();
        let t = now();
        let collect_until = t + self.cfg.approval.seconds.max(1) as i64;
        let audit = audit_record(&row.actor, event, outcome, &row.credential_id, &text);
        if self.store.decide_approval(&row.token_hash, approve, t, collect_until, &audit).await? {
            metrics(event, outcome, &detail);
            return Ok(Ok(()));
        }
        // Decided (or lapsed) by another request in the meantime.
        Ok(match self.store.approval_by_token(&row.token_hash).await? {
            Some(r) if r.lapsed(now()) || r.state == ApprovalState::Expired => Err(LinkState::Expired),
            Some(_) => Err(LinkState::Used),
            None => Err(LinkState::Unknown),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(std::sync::Mutex<Vec<String>>);

    impl OtpSender for Recorder {
        fn send(&self, user: &str, credential_id: &str, code: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(format!("{user} {credential_id} {code}"));
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_link_approver_sends_the_page_address_with_the_token_to_the_owner() {
        let sender = Arc::new(Recorder(Default::default()));
        let approvers = Approvers::default().with(Arc::new(LinkApprover::new(sender.clone())));
        assert_eq!(approvers.names(), [LINK_APPROVER]);
        let pending = PendingApproval {
            credential_id: "c1".into(),
            user: "alice".into(),
            credential_description: None,
            num_signatures: 1,
            hash_algorithm: None,
            digests: Vec::new(),
            description: None,
            token: Zeroizing::new("tok".into()),
            link_base: "https://sign.example".into(),
            expires_at: 0,
        };
        approvers.get(LINK_APPROVER).unwrap().request(&pending).await.unwrap();
        assert_eq!(*sender.0.lock().unwrap(), ["alice c1 https://sign.example/oauth2/approve?t=tok"]);
        assert!(approvers.get("device").is_none());
        assert!(!format!("{:?}", PendingAuthorization { handle: "secret".into(), expires_in: 1 }).contains("secret"));
    }
}
