//! Asynchronous signing (CSC API 2.2.0.0, `operationMode: "A"`, `signatures/signPolling`).
//!
//! * Accept: everything the synchronous call checks is checked, the key is opened, and the SAD
//!   is spent with its audit record and the job stored (`async_jobs`) in one transaction
//!   (`Store::accept_job`): a crash cannot spend the SAD without storing the job. The caller
//!   gets a `responseID`.
//! * Run: a worker on any node claims waiting jobs, several at once (a lease: a node that dies
//!   mid-job loses them to another after `lease_seconds`), signs, and stores the result. A
//!   signHash with a key in this process (a software key) is claimed by its accept and signed
//!   right after it on the accepting node, when a worker slot is free there. A job that cannot
//!   be signed, or whose validity period ended before it ran, gives its SAD back (count and
//!   bound digests, audited) and stores the error.
//! * Poll: the owner gets the result (or the error) once — the statement that reads it deletes
//!   it, in the transaction of the delivery's audit record — or "still running".
//! * Notify: when a `response_uri` was given, the worker POSTs `{"responseID": ...}` there, only
//!   to hosts the configuration allows, never to private addresses unless allowed, with retries;
//!   notifications wait in a bounded queue. They are a hint: signPolling is the authority.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cloudsign_asn1::{HashAlgorithm, SignAlgorithm};
use cloudsign_keys::SigningKey;
use cloudsign_store::{ConsumeSad, CredentialRow, JobEnd, JobRow, NewAudit, NewJob, Outcome, TakenJob};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::credentials::sad_outcome;
use crate::device::{DeviceAsk, DeviceMethod, DeviceNeed};
use crate::secrets::{hex, new_token, token_hash};
use crate::signdoc::{DocChecked, DocSigner};
use crate::signing::{check_scheme, sad_hash_for};
use crate::{DocItem, Error, Format, Level, Packaging, RequestContext, Result, Service, Session, SignDocInput, SignHashInput, now};

/// The `[asynchronous]` settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsyncConfig {
    /// Offer `operationMode: "A"` (and `info.asynchronousOperationMode`).
    pub enabled: bool,
    /// Run jobs on this node. A node with `worker = false` still accepts and answers polls;
    /// jobs are then run by the nodes that have a worker (PostgreSQL cluster).
    pub worker: bool,
    /// Jobs signed at once by this node's worker.
    pub concurrency: usize,
    /// How long a result is kept when the request gives no `validity_period` (seconds).
    pub default_validity_seconds: u64,
    /// The longest `validity_period` granted (seconds); a longer one is shortened to this.
    pub max_validity_seconds: u64,
    /// Jobs waiting or running (all nodes) beyond which new ones are refused (503).
    pub max_open_jobs: i64,
    /// A claimed job is the claimer's for this long (seconds); then another node may run it.
    pub lease_seconds: i64,
    /// Claims of one job (a node dying each time) before it is failed and its SAD given back.
    pub max_attempts: i64,
    /// How often an idle worker looks for jobs accepted on other nodes (milliseconds).
    pub poll_interval_ms: u64,
    /// Hosts (DNS names or IP literals) that `response_uri` may name; none by default.
    pub response_uri_hosts: Vec<String>,
    /// Development: `http://` to a loopback host (`localhost`, 127.0.0.0/8, ::1), without
    /// listing it in `response_uri_hosts`.
    pub allow_loopback: bool,
    /// Allow `response_uri` hosts that resolve to private, link-local or other non-public
    /// addresses (an internal deployment). Off: no request to internal hosts (SSRF).
    pub allow_private: bool,
    /// Further tries of a notification that failed (1 s, 2 s, 4 s, ... apart).
    pub notify_retries: u32,
    /// Notifications waiting or being delivered at once on a node; more are dropped (logged).
    pub notify_queue: usize,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            worker: true,
            concurrency: 16,
            default_validity_seconds: 600,
            max_validity_seconds: 86_400,
            max_open_jobs: 10_000,
            lease_seconds: 60,
            max_attempts: 3,
            poll_interval_ms: 500,
            response_uri_hosts: Vec::new(),
            allow_loopback: false,
            allow_private: false,
            notify_retries: 3,
            notify_queue: 1000,
        }
    }
}

/// The asynchronous members of a signHash or signDoc request.
#[derive(Debug, Clone, Default)]
pub struct AsyncRequest {
    /// `validity_period`, milliseconds (CSC v2.0.0.2 §11.10).
    pub validity_period_ms: Option<u64>,
    /// `response_uri`.
    pub response_uri: Option<String>,
}

/// A finished job's result.
#[derive(Debug)]
pub enum AsyncResult {
    /// signHash: the signature values, in request order.
    Signatures(Vec<Vec<u8>>),
    /// signDoc: the signatures (as the synchronous call returns them), which of them hold their
    /// document, and whether `validationInfo` was asked for.
    Documents {
        /// The signatures.
        signed: Vec<Vec<u8>>,
        /// Per signature: attached (`DocumentWithSignature`) or not (`SignatureObject`).
        attached: Vec<bool>,
        /// `returnValidationInfo` was set.
        validation_info: bool,
    },
}

/// What signPolling found.
#[derive(Debug)]
pub enum Polled {
    /// The result, handed out now and never again.
    Ready(AsyncResult),
    /// The job is waiting or running.
    Pending,
}

/// What a signHash job signs.
#[derive(Serialize, Deserialize)]
struct HashJob {
    scheme: Scheme,
    digests: Vec<String>,
}

/// What a signDoc job signs.
#[derive(Serialize, Deserialize)]
struct DocJob {
    items: Vec<DocJobItem>,
    validation_info: bool,
}

#[derive(Serialize, Deserialize)]
struct DocJobItem {
    format: String,
    level: String,
    packaging: String,
    scheme: Scheme,
    digest: String,
    document: Option<String>,
}

/// A [`SignAlgorithm`] as stored: its family and digest OID.
#[derive(Serialize, Deserialize)]
struct Scheme {
    family: String,
    hash: String,
}

impl From<SignAlgorithm> for Scheme {
    fn from(s: SignAlgorithm) -> Self {
        let family = match s {
            SignAlgorithm::RsaPkcs1(_) => "rsa-pkcs1",
            SignAlgorithm::RsaPss(_) => "rsa-pss",
            SignAlgorithm::Ecdsa(_) => "ecdsa",
        };
        Scheme { family: family.into(), hash: s.hash().oid().into() }
    }
}

impl Scheme {
    fn algorithm(&self) -> Result<SignAlgorithm> {
        let h = HashAlgorithm::from_oid(&self.hash).ok_or_else(|| Error::Internal("stored job: digest algorithm".into()))?;
        Ok(match self.family.as_str() {
            "rsa-pkcs1" => SignAlgorithm::RsaPkcs1(h),
            "rsa-pss" => SignAlgorithm::RsaPss(h),
            "ecdsa" => SignAlgorithm::Ecdsa(h),
            _ => return Err(Error::Internal("stored job: signature scheme".into())),
        })
    }
}

const FORMATS: [(Format, &str); 4] = [(Format::Cades, "C"), (Format::Xades, "X"), (Format::Pades, "P"), (Format::Jades, "J")];
const LEVELS: [(Level, &str); 4] = [(Level::BB, "B-B"), (Level::BT, "B-T"), (Level::BLT, "B-LT"), (Level::BLTA, "B-LTA")];
const PACKAGINGS: [(Packaging, &str); 5] = [
    (Packaging::Detached, "detached"),
    (Packaging::Attached, "attached"),
    (Packaging::Enveloped, "enveloped"),
    (Packaging::Enveloping, "enveloping"),
    (Packaging::Certification, "certification"),
];

fn name_of<T: PartialEq + Copy>(table: &[(T, &'static str)], v: T) -> String {
    table.iter().find(|(t, _)| *t == v).map(|(_, n)| (*n).to_string()).unwrap_or_default()
}

fn parse_name<T: Copy>(table: &[(T, &'static str)], n: &str) -> Result<T> {
    table.iter().find(|(_, name)| *name == n).map(|(t, _)| *t).ok_or_else(|| Error::Internal(format!("stored job: {n}")))
}

fn unb64(s: &str) -> Result<Vec<u8>> {
    STANDARD.decode(s).map_err(|_| Error::Internal("stored job: base64".into()))
}

/// A stored result: the method's output, or the error to hand out.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attached: Option<Vec<bool>>,
    #[serde(default)]
    validation_info: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The CSC error code of `error` when it is not `invalid_request`: `access_denied` (the
    /// signer declined on the device), as the synchronous call would have answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

/// One node's worker: woken when this node accepts a job (others' are found by polling).
struct Worker {
    wake: tokio::sync::Notify,
    /// Jobs in hand on this node (`concurrency`): claimed by the worker loop, or by their accept.
    slots: Arc<tokio::sync::Semaphore>,
    notifications: Arc<tokio::sync::Semaphore>,
}

/// Jobs claimed by one statement at most (the free slots, up to this).
const CLAIM_BATCH: usize = 32;

/// What an accept spends and stores.
struct Accepting<'a> {
    /// [`SIGN_HASH`] or [`SIGN_DOC`].
    method: &'static str,
    scheme: SignAlgorithm,
    digests_hex: Vec<String>,
    sad_hash: &'a str,
    /// The job's own encoding of what to sign.
    request: String,
    response_uri: Option<String>,
    expires_at: i64,
}

/// A credential and its opened key, as the accept checked them.
type Prepared = (CredentialRow, Arc<dyn SigningKey>);

/// The workers started in this process, one per service.
static WORKERS: Mutex<Vec<(Weak<Service>, Arc<Worker>)>> = Mutex::new(Vec::new());

const SIGN_HASH: &str = "signatures/signHash";
const SIGN_DOC: &str = "signatures/signDoc";
/// The audit event of a delivery.
const POLLING: &str = "signatures.signPolling";

/// The audit event of a job's method.
fn event_of(method: &str) -> &'static str {
    if method == SIGN_DOC { "signatures.signDoc" } else { "signatures.signHash" }
}

impl Service {
    /// Whether `operationMode: "A"` is offered (`info.asynchronousOperationMode`).
    pub fn async_enabled(&self) -> bool {
        self.cfg.asynchronous.enabled
    }

    /// Start this node's job worker (and notifier) unless it runs already or the configuration
    /// turns it off. Idempotent: the server calls it at start and on every asynchronous call.
    pub fn start_async_worker(self: &Arc<Self>) {
        let _ = self.async_worker();
    }

    fn async_worker(self: &Arc<Self>) -> Option<Arc<Worker>> {
        let cfg = &self.cfg.asynchronous;
        if !cfg.enabled || !cfg.worker {
            return None;
        }
        let mut workers = WORKERS.lock().ok()?;
        workers.retain(|(s, _)| s.strong_count() > 0);
        if let Some((_, w)) = workers.iter().find(|(s, _)| std::ptr::eq(s.as_ptr(), Arc::as_ptr(self))) {
            return Some(w.clone());
        }
        // Outside a runtime (an admin command) there is nothing to run jobs on.
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let worker = Arc::new(Worker {
            wake: tokio::sync::Notify::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1))),
            notifications: Arc::new(tokio::sync::Semaphore::new(cfg.notify_queue.max(1))),
        });
        workers.push((Arc::downgrade(self), worker.clone()));
        handle.spawn(run_worker(Arc::downgrade(self), worker.clone()));
        Some(worker)
    }

    /// signHash in mode `A`: checked and paid for now (the SAD is spent), signed by a worker.
    /// Returns the `responseID`.
    pub async fn sign_hash_async(
        self: &Arc<Self>,
        session: &Session,
        ctx: &RequestContext,
        input: SignHashInput,
        req: AsyncRequest,
    ) -> Result<String> {
        let result = self.sign_hash_accept(session, ctx, &input, &req).await;
        self.audit_refusal(session, ctx, "signatures.signHash", &input.credential_id, result).await
    }

    async fn sign_hash_accept(
        self: &Arc<Self>,
        session: &Session,
        ctx: &RequestContext,
        input: &SignHashInput,
        req: &AsyncRequest,
    ) -> Result<String> {
        let (expires_at, response_uri) = self.check_async(req).await?;
        let row = self.own_credential(session, &input.credential_id).await?;
        self.check_usable(&row)?;
        no_sole_control(&row)?;
        check_scheme(&row, input.scheme, &input.digests)?;
        let sad_hash = sad_hash_for(session, input.sad.as_deref())?;
        let job = HashJob { scheme: input.scheme.into(), digests: input.digests.iter().map(|d| STANDARD.encode(d)).collect() };
        let accepting = Accepting {
            method: SIGN_HASH,
            scheme: input.scheme,
            digests_hex: input.digests.iter().map(|d| hex(d)).collect(),
            sad_hash: &sad_hash,
            request: serde_json::to_string(&job).map_err(|e| Error::Internal(e.to_string()))?,
            response_uri,
            expires_at,
        };
        if row.key_backend == cloudsign_keys::KeyBackendKind::Device {
            // `docs/device-protocol.md`, "CSC integration", asynchronous: the device may be
            // offline now (its request waits in the store); a revoked or document-only device is
            // refused before the SAD is spent. The worker loop sends the request and waits.
            self.device_precheck(&row, DeviceNeed { method: DeviceMethod::SignHash, online: false }).await?;
            let (response_id, _) = self.accept(session, ctx, &row, &accepting, false).await?;
            crate::metrics::METRICS.sad_spent(input.digests.len());
            self.run_accepted(None);
            return Ok(response_id);
        }
        // Opened before consuming: a key that cannot be opened must not cost signatures.
        let key = self.signing_key(&row).await?;
        // A key in this process signs at once, on this node, without a claim or a wait for the
        // worker loop: the accept claims the job (another node takes it only if this one dies
        // and the lease runs out). Keys that wait on something outside the process (an HSM, a
        // device) are left to the worker loop, as is everything once this node's slots are full.
        let here = if key.blocks() { None } else { self.free_slot() };
        let (response_id, claimed) = self.accept(session, ctx, &row, &accepting, here.is_some()).await?;
        crate::metrics::METRICS.sad_spent(input.digests.len());
        self.run_accepted(here.zip(claimed).map(|((worker, slot), job)| (worker, slot, job, (row, key))));
        Ok(response_id)
    }

    /// signDoc in mode `A`; `validation_info`: `returnValidationInfo`. Returns the `responseID`.
    pub async fn sign_doc_async(
        self: &Arc<Self>,
        session: &Session,
        ctx: &RequestContext,
        input: SignDocInput,
        validation_info: bool,
        req: AsyncRequest,
    ) -> Result<String> {
        let credential_id = input.credential_id.clone();
        let result = self.sign_doc_accept(session, ctx, input, validation_info, &req).await;
        self.audit_refusal(session, ctx, "signatures.signDoc", &credential_id, result).await
    }

    async fn sign_doc_accept(
        self: &Arc<Self>,
        session: &Session,
        ctx: &RequestContext,
        input: SignDocInput,
        validation_info: bool,
        req: &AsyncRequest,
    ) -> Result<String> {
        let (expires_at, response_uri) = self.check_async(req).await?;
        let DocChecked { row, sad_hash, scheme, .. } = self.check_doc(session, &input, true).await?;
        no_sole_control(&row)?;
        let digests_hex: Vec<String> = input.items.iter().map(|i| hex(&i.digest)).collect();
        let items = input
            .items
            .iter()
            .map(|i| DocJobItem {
                format: name_of(&FORMATS, i.format),
                level: name_of(&LEVELS, i.level),
                packaging: name_of(&PACKAGINGS, i.packaging),
                scheme: i.scheme.into(),
                digest: STANDARD.encode(&i.digest),
                document: i.document.as_deref().map(|d| STANDARD.encode(d)),
            })
            .collect();
        let accepting = Accepting {
            method: SIGN_DOC,
            scheme,
            digests_hex,
            sad_hash: &sad_hash,
            request: serde_json::to_string(&DocJob { items, validation_info }).map_err(|e| Error::Internal(e.to_string()))?,
            response_uri,
            expires_at,
        };
        // Documents (time-stamps, validation data) are the worker loop's: woken now.
        let (response_id, _) = self.accept(session, ctx, &row, &accepting, false).await?;
        crate::metrics::METRICS.sad_spent(input.items.len());
        self.run_accepted(None);
        Ok(response_id)
    }

    /// The asynchronous members, checked before anything is spent: the queue has room, the
    /// `response_uri` is allowed. Returns the result's expiry and the URI.
    async fn check_async(&self, req: &AsyncRequest) -> Result<(i64, Option<String>)> {
        let cfg = &self.cfg.asynchronous;
        if !cfg.enabled {
            return Err(Error::invalid("Invalid parameter operationMode: asynchronous mode is not enabled"));
        }
        if self.store.open_jobs().await? >= cfg.max_open_jobs {
            return Err(Error::Unavailable("the asynchronous queue is full".into()));
        }
        // CSC v2.0.0.2 §11.10: validity_period in milliseconds; kept at least a second, at
        // most the configured maximum.
        let seconds = match req.validity_period_ms {
            Some(ms) => (ms / 1000).clamp(1, cfg.max_validity_seconds.max(1)),
            None => cfg.default_validity_seconds.min(cfg.max_validity_seconds).max(1),
        };
        let uri = match &req.response_uri {
            Some(uri) => {
                let url = allowed_uri(cfg, uri)?;
                resolve_allowed(cfg, &url).await?;
                Some(url.to_string())
            }
            None => None,
        };
        Ok((now().saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)), uri))
    }

    /// Spend the SAD (with the audit record of the signatures, which names the job) and store
    /// the job, in one transaction (`Store::accept_job`). With `claim`, the job is stored as
    /// claimed by this node (its first claim) and comes back to be run here. Returns the
    /// `responseID`.
    async fn accept(
        &self,
        session: &Session,
        ctx: &RequestContext,
        row: &CredentialRow,
        a: &Accepting<'_>,
        claim: bool,
    ) -> Result<(String, Option<JobRow>)> {
        let response_id = new_token()?;
        let id = token_hash(&response_id);
        let t = now();
        let hash = a.scheme.hash();
        // The synchronous call's record (`Service::consume`), with the job it paid for.
        let detail = crate::signing::consume_detail(a.scheme, ctx, &a.digests_hex, Some(&id[..16]))?;
        let event = event_of(a.method);
        let audit =
            NewAudit { at: t, actor: &session.user_name, event, outcome: Outcome::Ok, credential_id: Some(&row.id), detail: &detail };
        let consume = ConsumeSad {
            hash: a.sad_hash,
            user_id: &session.user_id,
            credential_id: &row.id,
            hash_algo: hash.oid(),
            digests_hex: a.digests_hex.clone(),
            now: t,
            audit,
            guard: None,
        };
        let job = NewJob {
            id: &id,
            user_id: &session.user_id,
            actor: &session.user_name,
            credential_id: &row.id,
            method: a.method,
            request: &a.request,
            sad_hash: a.sad_hash,
            digests_hex: &a.digests_hex,
            response_uri: a.response_uri.as_deref(),
            response_id: a.response_uri.as_ref().map(|_| response_id.as_str()),
            claimed_until: claim.then(|| t.saturating_add(self.cfg.asynchronous.lease_seconds.max(1))),
            now: t,
            expires_at: a.expires_at,
        };
        sad_outcome(self.store.accept_job(consume, &job).await?)?;
        let claimed = claim.then(|| JobRow {
            id: id.clone(),
            user_id: session.user_id.clone(),
            actor: session.user_name.clone(),
            credential_id: row.id.clone(),
            method: a.method.to_string(),
            request: a.request.clone(),
            attempts: 1,
            response_uri: a.response_uri.clone(),
            response_id: a.response_uri.as_ref().map(|_| response_id.clone()),
            expires_at: a.expires_at,
        });
        Ok((response_id, claimed))
    }

    /// A free slot of this node's worker, taken (none: no worker here, or all busy).
    fn free_slot(self: &Arc<Self>) -> Option<(Arc<Worker>, tokio::sync::OwnedSemaphorePermit)> {
        let worker = self.async_worker()?;
        let slot = worker.slots.clone().try_acquire_owned().ok()?;
        Some((worker, slot))
    }

    /// After an accept: run the job it claimed, in the slot taken for it, or wake this node's
    /// worker loop for the job it stored.
    fn run_accepted(self: &Arc<Self>, claimed: Option<(Arc<Worker>, tokio::sync::OwnedSemaphorePermit, JobRow, Prepared)>) {
        match claimed {
            Some((worker, slot, job, prepared)) => {
                let service = self.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    service.run_job(&worker, job, Some(prepared)).await;
                });
            }
            None => {
                if let Some(w) = self.async_worker() {
                    w.wake.notify_one();
                }
            }
        }
    }

    /// signPolling (CSC API 2.2.0.0 §11.15): the result of `response_id` once, or `Pending`.
    /// A job that failed answers its error, once; after that, or for an id that is not the
    /// caller's, `Invalid parameter responseID`.
    pub async fn sign_polling(self: &Arc<Self>, session: &Session, ctx: &RequestContext, response_id: &str) -> Result<Polled> {
        let id = token_hash(response_id);
        let detail = json!({"client": ctx.client, "job": &id[..16]});
        let text = detail.to_string();
        // Written with the result's removal: its outcome is set from how the job ended.
        let delivery =
            NewAudit { at: now(), actor: &session.user_name, event: POLLING, outcome: Outcome::Ok, credential_id: None, detail: &text };
        let (ok, stored) = match self.store.take_job_result(&id, &session.user_id, now(), &delivery).await? {
            TakenJob::Pending => return Ok(Polled::Pending),
            TakenJob::Unknown => return Err(Error::invalid("Invalid parameter responseID")),
            TakenJob::Done(ok, stored) => (ok, stored),
        };
        crate::metrics::METRICS.audited(POLLING, if ok { Outcome::Ok } else { Outcome::Failed }, false, &detail);
        let stored: Stored = serde_json::from_str(&stored).map_err(|e| Error::Internal(e.to_string()))?;
        if !ok {
            if stored.code.as_deref() == Some("access_denied") {
                return Err(Error::AccessDenied(stored.error.unwrap_or_else(|| "The signer declined on the device".into())));
            }
            return Err(Error::invalid(format!(
                "The asynchronous signature request failed: {}",
                stored.error.as_deref().unwrap_or("the signature could not be made")
            )));
        }
        let signed = stored.signed.unwrap_or_default().iter().map(|s| unb64(s)).collect::<Result<Vec<_>>>()?;
        Ok(Polled::Ready(match stored.attached {
            None => AsyncResult::Signatures(signed),
            Some(attached) => AsyncResult::Documents { signed, attached, validation_info: stored.validation_info },
        }))
    }

    /// Run one claimed job to its end; `prepared`: the credential and key its accept (on this
    /// node, just now) checked and opened.
    async fn run_job(self: &Arc<Self>, worker: &Worker, job: JobRow, prepared: Option<Prepared>) {
        let cfg = &self.cfg.asynchronous;
        let expired = job.expires_at <= now();
        let outcome = if job.attempts > cfg.max_attempts {
            Err(Error::Internal(format!("given up after {} attempts", job.attempts - 1)))
        } else if expired {
            // Nobody could fetch what it would make (CSC v2.0.0.2 §11.10 validity_period): the
            // signatures are given back unmade.
            Err(Error::Internal("its validity period ended before it could be run".into()))
        } else {
            self.sign_job(&job, prepared).await
        };
        let (stored, end_error) = match outcome {
            Ok(stored) => (stored, None),
            // The database or the HSM is away: the lease runs out and the job is tried again
            // (up to `max_attempts`).
            Err(Error::Unavailable(m)) if job.attempts < cfg.max_attempts => {
                tracing::warn!(error = %m, "asynchronous job postponed");
                return;
            }
            Err(e) => {
                let (shown, code) = match &e {
                    Error::InvalidRequest(m) => (m.clone(), None),
                    // The signer declined on the device: signPolling answers as signHash would.
                    Error::AccessDenied(m) => (m.clone(), Some("access_denied".to_string())),
                    _ => ("the signature could not be made".to_string(), None),
                };
                // The operator's record (log and audit) says why; the caller is told less.
                let why = match &e {
                    Error::Internal(m) | Error::Unavailable(m) => m.clone(),
                    other => other.to_string(),
                };
                tracing::warn!(error = %why, method = %job.method, "asynchronous job failed; its SAD is given back");
                (Stored { signed: None, attached: None, validation_info: false, error: Some(shown.clone()), code }, Some((shown, why)))
            }
        };
        let Ok(text) = serde_json::to_string(&stored) else { return };
        let recorded = match &end_error {
            None => self.store.finish_job(&job.id, job.attempts, JobEnd::Done(&text)).await,
            Some((_, internal)) => {
                let detail = json!({"job": &job.id[..16], "error": internal, "returned": "all"}).to_string();
                let audit = failed_audit(&job.actor, &job.method, &job.credential_id, &detail);
                self.store.finish_job(&job.id, job.attempts, JobEnd::Failed { error: &text, audit }).await
            }
        };
        match recorded {
            Ok(true) => {
                if let (Some(uri), Some(id), false) = (job.response_uri, job.response_id, expired) {
                    self.queue_notification(worker, uri, id);
                }
            }
            Ok(false) => tracing::info!("asynchronous job taken over by another claim; its result is discarded"),
            Err(e) => tracing::warn!(error = %e, "asynchronous job result not stored; it will be run again"),
        }
    }

    /// Sign what a job paid for, with the credential as it is now (disabled, revoked or
    /// deleted since: refused, and the SAD given back). A device credential's job asks the
    /// device and waits for its answer.
    async fn sign_job(&self, job: &JobRow, prepared: Option<Prepared>) -> Result<Stored> {
        let (row, key) = match prepared {
            Some((row, key)) => (row, Some(key)),
            None => {
                let row = match self.store.credential(&job.credential_id).await? {
                    Some(r) if r.user_id == job.user_id => r,
                    _ => return Err(Error::invalid("Invalid parameter credentialID")),
                };
                self.check_usable(&row)?;
                let key =
                    if row.key_backend == cloudsign_keys::KeyBackendKind::Device { None } else { Some(self.signing_key(&row).await?) };
                (row, key)
            }
        };
        let device = match &key {
            Some(_) => None,
            None => {
                let method = if job.method == SIGN_DOC { DeviceMethod::SignDoc } else { DeviceMethod::SignHash };
                Some(self.device_precheck(&row, DeviceNeed { method, online: false }).await?)
            }
        };
        // A device's request must end while this claim holds the job (its lease): after it,
        // another claim would run the job again and ask the signer a second time. The lease
        // began a moment ago, when the job was claimed; its end, less a margin, and the job's
        // validity period bound the request.
        let lease = self.cfg.asynchronous.lease_seconds.max(1);
        let deadline = (now() + lease - 3).min(job.expires_at);
        let ask = device.as_ref().map(|device| DeviceAsk {
            actor: &job.actor,
            client: "asynchronous job",
            job: Some(&job.id[..16]),
            application: None,
            label: String::new(),
            row: &row,
            device,
            deadline,
            give_back: None,
        });
        match job.method.as_str() {
            SIGN_HASH => {
                let j: HashJob = serde_json::from_str(&job.request).map_err(|e| Error::Internal(e.to_string()))?;
                let scheme = j.scheme.algorithm()?;
                let digests = j.digests.iter().map(|d| unb64(d)).collect::<Result<Vec<_>>>()?;
                check_scheme(&row, scheme, &digests)?;
                let signatures = match (key, ask) {
                    (Some(key), _) => tokio::task::spawn_blocking(move || {
                        digests.iter().map(|d| key.sign_digest(scheme, d)).collect::<std::result::Result<Vec<_>, _>>()
                    })
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??,
                    (None, Some(mut ask)) => {
                        let n = digests.len();
                        ask.label = if n == 1 { "1 document".to_string() } else { format!("{n} documents") };
                        // Declined, expired, refused: the job fails and its SAD is given back
                        // (`finish_job`), and signPolling answers as signHash would have.
                        self.device_request(&ask, scheme, &digests).await?.signatures()?
                    }
                    (None, None) => return Err(Error::Internal("a job without a key".into())),
                };
                let signatures = crate::metrics::METRICS.signed_then(row.key_backend, signatures);
                Ok(Stored {
                    signed: Some(signatures.iter().map(|s| STANDARD.encode(s)).collect()),
                    attached: None,
                    validation_info: false,
                    error: None,
                    code: None,
                })
            }
            SIGN_DOC => {
                let j: DocJob = serde_json::from_str(&job.request).map_err(|e| Error::Internal(e.to_string()))?;
                let mut items = Vec::with_capacity(j.items.len());
                for i in &j.items {
                    items.push(DocItem {
                        format: parse_name(&FORMATS, &i.format)?,
                        level: parse_name(&LEVELS, &i.level)?,
                        packaging: parse_name(&PACKAGINGS, &i.packaging)?,
                        scheme: i.scheme.algorithm()?,
                        digest: unb64(&i.digest)?,
                        document: i.document.as_deref().map(unb64).transpose()?,
                    });
                }
                let attached = items.iter().map(|i| i.packaging != Packaging::Detached).collect();
                let signer = match (key, ask) {
                    (Some(key), _) => DocSigner::Key(key),
                    (None, Some(ask)) => DocSigner::device(ask, items.len()),
                    (None, None) => return Err(Error::Internal("a job without a key".into())),
                };
                let signed = self.sign_docs(&signer, &row.cert.der, items).await?;
                let signed = crate::metrics::METRICS.signed_then(row.key_backend, signed);
                Ok(Stored {
                    signed: Some(signed.iter().map(|s| STANDARD.encode(s)).collect()),
                    attached: Some(attached),
                    validation_info: j.validation_info,
                    error: None,
                    code: None,
                })
            }
            other => Err(Error::Internal(format!("stored job: unknown method {other}"))),
        }
    }

    /// Queue `{"responseID": id}` for `uri`; a full queue drops it (polling still works).
    fn queue_notification(&self, worker: &Worker, uri: String, id: String) {
        let Ok(permit) = worker.notifications.clone().try_acquire_owned() else {
            tracing::warn!("response_uri notification dropped: the queue is full");
            return;
        };
        let cfg = self.cfg.asynchronous.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut delay = Duration::from_secs(1);
            for attempt in 0..=cfg.notify_retries {
                match notify(&cfg, &uri, &id).await {
                    Ok(()) => return,
                    Err(e) => tracing::info!(attempt, error = %e, "response_uri notification failed"),
                }
                if attempt < cfg.notify_retries {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
            tracing::warn!("response_uri notification given up");
        });
    }
}

fn failed_audit<'a>(actor: &'a str, method: &str, credential_id: &'a str, detail: &'a str) -> NewAudit<'a> {
    NewAudit { at: now(), actor, event: event_of(method), outcome: Outcome::Failed, credential_id: Some(credential_id), detail }
}

/// Sole control: the PIN-derived key travels with the SAD, sealed under the SAD itself, and is
/// never stored where a worker could open it; such credentials sign synchronously only.
fn no_sole_control(row: &cloudsign_store::CredentialRow) -> Result<()> {
    if row.pin_wrap_salt.is_some() {
        return Err(Error::invalid("Invalid parameter operationMode: this credential (sole control) signs synchronously only"));
    }
    Ok(())
}

/// The worker loop: claim as many jobs as there are free slots (up to [`CLAIM_BATCH`]) in one
/// statement, run each in its slot, repeat; idle, wait for a local accept or the poll interval
/// (jobs accepted on other nodes).
async fn run_worker(service: Weak<Service>, worker: Arc<Worker>) {
    let Some(cfg) = service.upgrade().map(|s| s.cfg.asynchronous.clone()) else { return };
    let mut last_purge = 0;
    loop {
        let Ok(first) = worker.slots.clone().acquire_owned().await else { return };
        let mut slots = vec![first];
        while slots.len() < CLAIM_BATCH {
            match worker.slots.clone().try_acquire_owned() {
                Ok(slot) => slots.push(slot),
                Err(_) => break,
            }
        }
        let Some(s) = service.upgrade() else { return };
        if now() - last_purge > 60 {
            last_purge = now();
            if let Err(e) = s.store.purge_jobs(now()).await {
                tracing::warn!(error = %e, "expired asynchronous results not purged");
            }
        }
        match s.store.claim_jobs(now(), cfg.lease_seconds.max(1), slots.len()).await {
            Ok(jobs) if !jobs.is_empty() => {
                // The slots left over go back with the iterator.
                for (job, slot) in jobs.into_iter().zip(slots) {
                    let (s, w) = (s.clone(), worker.clone());
                    tokio::spawn(async move {
                        let _slot = slot;
                        s.run_job(&w, job, None).await;
                    });
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "asynchronous jobs cannot be claimed"),
        }
        drop((slots, s));
        tokio::select! {
            _ = worker.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(cfg.poll_interval_ms.max(10))) => {}
        }
    }
}

/// The `response_uri`, if the configuration allows it: https to a listed host, or (development)
/// http or https to a loopback host when `allow_loopback` is set. No user information.
fn allowed_uri(cfg: &AsyncConfig, uri: &str) -> Result<reqwest::Url> {
    let bad = |why: &str| Error::invalid(format!("Invalid parameter response_uri: {why}"));
    let url = reqwest::Url::parse(uri).map_err(|_| bad("not a URI"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("user information is not allowed"));
    }
    let host = url.host_str().ok_or_else(|| bad("no host"))?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let listed = cfg.response_uri_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host));
    match url.scheme() {
        "https" if listed || (loopback && cfg.allow_loopback) => Ok(url),
        "http" if loopback && cfg.allow_loopback => Ok(url),
        "https" | "http" => Err(bad("the host is not allowed by this service")),
        _ => Err(bad("https only")),
    }
}

/// The address to send to: the host resolved, every address checked (no private, link-local,
/// loopback or otherwise internal address unless allowed), the first one allowed. The
/// notification is sent to exactly this address, so a second DNS answer cannot redirect it.
async fn resolve_allowed(cfg: &AsyncConfig, url: &reqwest::Url) -> Result<SocketAddr> {
    let bad = |why: &str| Error::invalid(format!("Invalid parameter response_uri: {why}"));
    let host = url.host_str().ok_or_else(|| bad("no host"))?.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), port))).await {
        Ok(Ok(a)) => a.collect(),
        _ => return Err(bad("the host cannot be resolved")),
    };
    addrs
        .into_iter()
        .find(|a| {
            let ip = a.ip();
            if ip.is_loopback() { cfg.allow_loopback || cfg.allow_private } else { cfg.allow_private || is_public(ip) }
        })
        .ok_or_else(|| bad("the host resolves to an address this service does not call"))
}

/// A globally routable unicast address (not private, shared, link-local, loopback,
/// unspecified, multicast, broadcast, documentation or benchmarking: RFC 6890).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

/// POST `{"responseID": id}` to `uri`, at the address checked now; no redirects.
async fn notify(cfg: &AsyncConfig, uri: &str, id: &str) -> std::result::Result<(), String> {
    let url = allowed_uri(cfg, uri).map_err(|e| e.to_string())?;
    let addr = resolve_allowed(cfg, &url).await.map_err(|e| e.to_string())?;
    let host = url.host_str().unwrap_or_default().to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .resolve(&host, addr)
        .build()
        .map_err(|e| e.without_url().to_string())?;
    // Without the URI: it is the relying party's, and may carry its own secret.
    let resp = client.post(url).json(&json!({"responseID": id})).send().await.map_err(|e| e.without_url().to_string())?;
    if resp.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", resp.status().as_u16())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_hosts_and_public_addresses() {
        let mut cfg = AsyncConfig { response_uri_hosts: vec!["rp.example".into()], ..Default::default() };
        assert!(allowed_uri(&cfg, "https://rp.example/done").is_ok());
        assert!(allowed_uri(&cfg, "http://rp.example/done").is_err(), "https only");
        assert!(allowed_uri(&cfg, "https://other.example/").is_err());
        assert!(allowed_uri(&cfg, "https://u:p@rp.example/").is_err());
        assert!(allowed_uri(&cfg, "http://127.0.0.1:8080/").is_err(), "loopback needs allow_loopback");
        cfg.allow_loopback = true;
        assert!(allowed_uri(&cfg, "http://127.0.0.1:8080/").is_ok());
        assert!(allowed_uri(&cfg, "http://[::1]:8080/").is_ok());
        assert!(allowed_uri(&cfg, "http://10.0.0.1/").is_err());
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2a00:1450::1", "1.1.1.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn config_defaults_apply_to_a_partial_table() {
        let c: AsyncConfig = serde_json::from_str(r#"{"allow_loopback": true}"#).unwrap();
        assert!(c.enabled && c.worker && c.allow_loopback);
        assert_eq!(c.max_attempts, 3);
    }
}
