//! The service object: configuration, bootstrap of a new store (key-encryption key check, CA
//! hierarchy), the unwrapped-key cache and the audit helper.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudsign_asn1::{KeyAlgorithm, b64};
use cloudsign_keys::pkcs11::{Pkcs11Backend, Pkcs11Config};
use cloudsign_keys::software::SoftwareKeystore;
use cloudsign_keys::{KeyBackend, KeyBackendKind, KeyBackends, SigningKey};
use cloudsign_pki::tsa::Tsa;
use cloudsign_pki::{CA_KEY, CaNames, IssuingCa, ca_key_binding};
use cloudsign_store::{CaRow, CertState, CredentialRow, NewAudit, Outcome, Store};

use crate::approval::LinkApprover;
use crate::otp::{OtpSender, OutboxSender};
use crate::secrets::Argon2Cost;
use crate::session::Session;
use crate::{Error, Result, now};

/// Domain configuration (the CLI fills it from file, environment and flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// `info.name`.
    pub service_name: String,
    /// `info.region` (ISO 3166-1 alpha-2).
    pub region: String,
    /// `info.lang`.
    pub lang: String,
    /// `info.description`.
    pub description: String,
    /// `O` in every certificate the CA issues.
    pub organization: String,
    /// Optional `C` in every certificate.
    pub country: Option<String>,
    /// Access token lifetime.
    pub access_token_ttl: u64,
    /// Refresh token lifetime.
    pub refresh_token_ttl: u64,
    /// SAD lifetime (`expiresIn`).
    pub sad_ttl: u64,
    /// Online OTP lifetime.
    pub otp_ttl: u64,
    /// Consecutive failed authorizations before a credential locks.
    pub max_auth_attempts: i64,
    /// End-entity certificate lifetime.
    pub cert_validity_days: u32,
    /// How long an unwrapped key stays in memory after it was unwrapped (0: never cached).
    pub key_cache_seconds: u64,
    /// argon2id cost for PINs and passwords.
    pub argon2: Argon2Cost,
    /// Where the default OTP sender writes.
    pub otp_outbox: PathBuf,
    /// Run the built-in RFC 3161 time-stamping authority.
    pub tsa_enabled: bool,
    /// The TSA policy OID written into every token.
    pub tsa_policy: String,
    /// The service's public base URL (e.g. `https://sign.example.com`). When set, every
    /// certificate issued carries `<public_url>/crl` as its CRL distribution point.
    pub public_url: Option<String>,
    /// Lifetime of an OAuth authorization code (RFC 6749 §4.1.2: short, 10 minutes at most).
    pub oauth_code_ttl: u64,
    /// How long a signer has to log in and consent on the authorization pages.
    pub oauth_flow_ttl: u64,
    /// Asynchronous signing (`[asynchronous]`).
    pub asynchronous: crate::asynchronous::AsyncConfig,
    /// On-demand credentials (`[on_demand]`).
    pub on_demand: crate::ondemand::OnDemandConfig,
    /// Out-of-band credential authorization (`[approval]`).
    pub approval: crate::approval::ApprovalConfig,
    /// The signer's own devices (`[device]`, `docs/device-protocol.md`).
    pub device: crate::device::DeviceConfig,
    /// The HSM, when one is configured (`--backend pkcs11` credentials).
    pub pkcs11: Option<Arc<Pkcs11Config>>,
    /// Renew certificates this many days before they end (0: no automatic renewal).
    pub renew_before_days: u32,
    /// Automatic renewal generates a new key (instead of certifying the same key again).
    pub renewal_new_key: bool,
    /// Where the CA and TSA keys are generated when the store is new (later starts load them
    /// from where they are).
    pub ca_key_backend: crate::KeyStorage,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service_name: "cloudsign".into(),
            region: "EU".into(),
            lang: "en-US".into(),
            description: "cloudsign remote signature service".into(),
            organization: "cloudsign".into(),
            country: None,
            access_token_ttl: 3600,
            refresh_token_ttl: 30 * 24 * 3600,
            sad_ttl: 300,
            otp_ttl: 300,
            max_auth_attempts: 5,
            cert_validity_days: 730,
            key_cache_seconds: 300,
            argon2: Argon2Cost::default(),
            otp_outbox: PathBuf::from("otp-outbox.txt"),
            tsa_enabled: true,
            tsa_policy: cloudsign_pki::tsa::DEFAULT_POLICY.into(),
            public_url: None,
            oauth_code_ttl: 60,
            oauth_flow_ttl: 600,
            asynchronous: Default::default(),
            on_demand: Default::default(),
            approval: Default::default(),
            device: Default::default(),
            pkcs11: None,
            renew_before_days: 30,
            renewal_new_key: false,
            ca_key_backend: crate::KeyStorage::Software,
        }
    }
}

/// Who is calling, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Peer address and user agent.
    pub client: String,
    /// CSC `clientData`, truncated.
    pub client_data: Option<String>,
}

/// The service core.
pub struct Service {
    pub(crate) store: Store,
    pub(crate) keystore: Arc<SoftwareKeystore>,
    pub(crate) ca: IssuingCa,
    pub(crate) names: CaNames,
    pub(crate) cfg: Config,
    pub(crate) otp_sender: Arc<dyn OtpSender>,
    /// Who delivers out-of-band approval requests, by name (the built-in link approver, which
    /// sends through `otp_sender`, and any added with `with_approver`).
    pub(crate) approvers: crate::approval::Approvers,
    pub(crate) tsa: Option<Tsa>,
    /// Every configured key backend (the software keystore, and the PKCS#11 token if one is
    /// configured, loaded on first use), by the kind key records name.
    pub(crate) backends: KeyBackends,
    /// The issuing CA's key blocks (it is in an HSM): its signatures (CRL, OCSP) are made off
    /// the async workers.
    pub(crate) ca_in_hsm: bool,
    /// The root's key and names, for its CRL (ARL), which long-term signatures embed.
    root_key: Arc<dyn SigningKey>,
    ca_names: CaNames,
    /// The TSA's key blocks (it is in an HSM).
    pub(crate) tsa_in_hsm: bool,
    /// Unwrapped keys by credential id, with the stored handle they came from: a key replaced
    /// by another process (renewal with a new key) is not served from a stale entry.
    key_cache: Mutex<HashMap<String, CachedKey>>,
    /// Sessions by token hash and credential rows by id, as last read: only signHash's fast path
    /// uses them, and its consuming write re-checks everything they say (`SadGuard`).
    pub(crate) hot_sessions: Mutex<HashMap<String, (Session, Instant)>>,
    pub(crate) hot_credentials: Mutex<HashMap<String, (CredentialRow, Instant)>>,
    dummy_password_hash: String,
    /// Slots for argon2 verifications (passwords, PINs): each holds `argon2.memory_kib` of
    /// memory for a few dozen milliseconds, and the blocking pool would otherwise run hundreds
    /// at once under a flood of logins.
    secret_slots: tokio::sync::Semaphore,
    /// Woken when a PIN or password check in this process ends, for the attempts waiting for a
    /// place (`wait_for_attempt`); other nodes' checks are seen by polling.
    attempt_ended: tokio::sync::Notify,
    /// Device pairing and requests: the challenge key, the wake-up of local waiters.
    pub(crate) devices: crate::device::Hub,
}

/// How long a PIN or password check waits for a place among the attempts in flight before it
/// is answered `temporarily_unavailable` (nothing counted).
const ATTEMPT_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting check asks the store again (places freed by other nodes).
const ATTEMPT_POLL: Duration = Duration::from_millis(20);

/// How long signHash's fast path trusts a remembered row before reading it again (it never
/// trusts it alone: the consuming write re-checks).
const HOT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Bound on remembered rows per map.
const HOT_CACHE_ENTRIES: usize = 10_000;

/// An unwrapped key, when it was unwrapped, and the stored handle it came from.
type CachedKey = (Arc<dyn SigningKey>, Instant, Vec<u8>);

const KEK_CHECK: &str = "cloudsign key-encryption key check";

impl Service {
    /// Open the service on a store: verify that `kek` is the key this store was sealed with
    /// (the first node to start records a check value), and create the CA hierarchy on an
    /// empty store.
    pub async fn open(cfg: Config, store: Store, kek: &[u8]) -> Result<Self> {
        let keystore = Arc::new(SoftwareKeystore::new(kek)?);
        let check = b64::encode(&keystore.seal(KEK_CHECK.as_bytes(), "kek-check")?);
        let stored = store.meta_insert_if_absent("kek_check", &check).await?;
        let opened = b64::decode_lenient(&stored).and_then(|s| keystore.open(&s, "kek-check").ok());
        if opened.as_deref().map(|v| v.as_slice()) != Some(KEK_CHECK.as_bytes()) {
            return Err(Error::Internal(
                "the key-encryption key does not match this database (configure the same key on every node)".into(),
            ));
        }
        let mut backends = KeyBackends::new(keystore.clone());
        if let Some(c) = &cfg.pkcs11 {
            let hsm = Pkcs11Backend::new(Pkcs11Config { module: c.module.clone(), token: c.token.clone(), pin: c.pin.clone() });
            backends = backends.with(Arc::new(hsm));
        }
        // Device credentials' keys are on the signer's device; the backend holds nothing.
        backends = backends.with(Arc::new(cloudsign_keys::device::DeviceBackend));
        let names = CaNames { organization: cfg.organization.clone(), country: cfg.country.clone() };
        if store.ca("issuing").await?.is_none() {
            store.meta_insert_if_absent("ca_organization", &names.organization).await?;
            store.meta_insert_if_absent("ca_country", names.country.as_deref().unwrap_or("")).await?;
            let kind = cfg.ca_key_backend;
            let (root, issuing) =
                cloudsign_pki::create_hierarchy_at(ca_backend(&backends, kind)?.as_ref(), &names, cfg.public_url.as_deref())?;
            let rows = [ca_row("root", root, kind), ca_row("issuing", issuing, kind)];
            // Another node may have won the race; then its hierarchy is the one we load.
            store.insert_ca_hierarchy(&rows).await?;
        }
        let issuing = store.ca("issuing").await?.ok_or_else(|| Error::Internal("CA hierarchy missing".into()))?;
        let root = store.ca("root").await?.ok_or_else(|| Error::Internal("CA root missing".into()))?;
        // At start, HSM calls may block: there is no request to hold up yet.
        let key = ca_backend(&backends, issuing.key_backend)?.load(CA_KEY, &issuing.key_handle, &ca_key_binding("issuing"))?;
        let ca_in_hsm = key.blocks();
        let issuing_cert = issuing.cert.clone();
        let root_der = root.cert.der.clone();
        // The issuer name must stay the one in the stored CA certificate even if `organization` or
        // `country` change later (they then apply to new end-entity subjects only).
        let ca_names = CaNames {
            organization: store.meta("ca_organization").await?.unwrap_or_else(|| names.organization.clone()),
            country: match store.meta("ca_country").await? {
                Some(c) if c.is_empty() => None,
                Some(c) => Some(c),
                None => names.country.clone(),
            },
        };
        let root_key = ca_backend(&backends, root.key_backend)?.load(CA_KEY, &root.key_handle, &ca_key_binding("root"))?;
        let ca = IssuingCa::new(&ca_names, key, &issuing_cert, root_der, cfg.public_url.clone());
        let (tsa, tsa_in_hsm) = if cfg.tsa_enabled {
            let (tsa, in_hsm) = open_tsa(&store, &backends, cfg.ca_key_backend, &ca, &ca_names, &cfg.tsa_policy).await?;
            (Some(tsa), in_hsm)
        } else {
            (None, false)
        };
        let otp_sender: Arc<dyn OtpSender> = Arc::new(OutboxSender::new(cfg.otp_outbox.clone()));
        let approvers = crate::approval::Approvers::default().with(Arc::new(LinkApprover::new(otp_sender.clone())));
        let dummy_password_hash = crate::secrets::hash_secret("timing equalizer", cfg.argon2)?;
        Ok(Self {
            store,
            keystore,
            ca,
            names,
            cfg,
            otp_sender,
            approvers,
            tsa,
            backends,
            ca_in_hsm,
            tsa_in_hsm,
            root_key,
            ca_names,
            key_cache: Mutex::new(HashMap::new()),
            hot_sessions: Mutex::new(HashMap::new()),
            hot_credentials: Mutex::new(HashMap::new()),
            dummy_password_hash,
            secret_slots: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)),
            attempt_ended: tokio::sync::Notify::new(),
            devices: crate::device::Hub::new(kek),
        })
    }

    /// The current CRL (DER), listing every revoked or suspended certificate; valid one day,
    /// regenerated on every request so that it always reflects the store.
    pub async fn crl(&self) -> Result<Vec<u8>> {
        let revoked: Vec<cloudsign_pki::RevokedEntry> = self
            .store
            .revoked_certificates()
            .await?
            .into_iter()
            .map(|r| cloudsign_pki::RevokedEntry { serial_hex: r.serial_hex, revoked_at: r.revoked_at, reason: r.reason })
            .collect();
        let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Ok(blocking_if(self.ca_in_hsm, || self.ca.crl(&revoked, now(), 24 * 3600, millis))?)
    }

    /// Answer a DER OCSPRequest (RFC 6960) with a DER OCSPResponse: `good` for the service's
    /// valid certificates, `revoked` (suspensions with reason certificateHold) for the others,
    /// `unknown` for serials or issuers it does not know; malformedRequest for garbage.
    pub async fn ocsp(&self, request: &[u8]) -> Result<Vec<u8>> {
        use cloudsign_pki::ocsp::{Request, error_response};
        let Some(req) = Request::parse(request, &self.ca) else { return Ok(error_response(1)) };
        self.ocsp_answer(&req).await
    }

    /// The root's CRL (ARL, DER): the issuing CA is not revoked. Valid one day. Published at
    /// `/arl`, which the issuing CA's certificate names when the service has a public URL.
    pub fn arl(&self) -> Result<Vec<u8>> {
        let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Ok(blocking_if(self.ca_in_hsm, || cloudsign_pki::root_crl(&self.ca_names, self.root_key.clone(), now(), 24 * 3600, millis))?)
    }

    /// The OCSP response (DER) for one of the CA's certificates, as a relying party would get
    /// it: validation material for long-term signatures.
    pub async fn ocsp_for(&self, cert_der: &[u8]) -> Result<Vec<u8>> {
        let req = cloudsign_pki::ocsp::Request::for_certificate(cert_der, &self.ca)
            .ok_or_else(|| Error::Internal("certificate not issued by the current issuing CA".into()))?;
        let response = self.ocsp_answer(&req).await?;
        // OCSPResponse.responseStatus must be successful (0): an error response is no evidence.
        let mut outer = cloudsign_asn1::der::Reader::new(&response);
        let status = outer.expect(0x30).and_then(|body| cloudsign_asn1::der::Reader::new(body).expect(0x0A));
        if status != Some(&[0u8][..]) {
            return Err(Error::Internal("the OCSP responder could not answer for the signer's certificate".into()));
        }
        Ok(response)
    }

    async fn ocsp_answer(&self, req: &cloudsign_pki::ocsp::Request) -> Result<Vec<u8>> {
        use cloudsign_pki::ocsp::{CertStatus, error_response};
        let mut statuses = Vec::with_capacity(req.queries.len());
        for q in &req.queries {
            let status = if !q.ours {
                CertStatus::Unknown
            } else {
                match self.store.cert_status_by_serial(&q.serial_hex).await? {
                    Some((status, at, reason)) if status != CertState::Valid => {
                        CertStatus::Revoked { at: at.unwrap_or(0), reason: reason.unwrap_or(0) }
                    }
                    Some(_) => CertStatus::Good,
                    None => CertStatus::Unknown,
                }
            };
            statuses.push(status);
        }
        match blocking_if(self.ca_in_hsm, || self.ca.ocsp_response(req, &statuses, now(), 3600)) {
            Ok(der) => Ok(der),
            Err(e) => {
                tracing::error!(error = %e, "OCSP response failed");
                Ok(error_response(2))
            }
        }
    }

    /// Replace the OTP sender (e.g. an SMS gateway); approval links go through it too.
    pub fn with_otp_sender(mut self, sender: Arc<dyn OtpSender>) -> Self {
        self.approvers = std::mem::take(&mut self.approvers).with(Arc::new(LinkApprover::new(sender.clone())));
        self.otp_sender = sender;
        self
    }

    /// Remove expired tokens, SADs and OTP challenges, and mark lapsed approvals expired
    /// (audited) and remove those that ended a day ago (the server runs this periodically).
    pub async fn purge_expired(&self) -> Result<u64> {
        let removed = self.store.purge_expired(now()).await?;
        Ok(removed + self.purge_approvals().await?)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The store (for the admin CLI's listings).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// DER of the CA certificates: issuing CA, then root.
    pub fn ca_chain(&self) -> [&[u8]; 2] {
        [&self.ca.issuing_der, &self.ca.root_der]
    }

    /// Check a password or PIN against its argon2id hash on the blocking pool, at most one per
    /// core at a time (`secret_slots`).
    pub(crate) async fn verify_secret_bounded(&self, secret: zeroize::Zeroizing<String>, stored: String) -> Result<bool> {
        let _slot = self.secret_slots.acquire().await.map_err(|e| Error::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(move || crate::secrets::verify_secret(&secret, &stored))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// Ask the store for a place for a PIN or password check (`ask` answers `None` when every
    /// place is taken by checks in flight) until one is free, for at most `ATTEMPT_WAIT`: a
    /// check is never refused, and never counted, because others are still running.
    pub(crate) async fn wait_for_attempt<T, F, Fut>(&self, mut ask: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let deadline = tokio::time::Instant::now() + ATTEMPT_WAIT;
        loop {
            // Registered before asking, so an end between the answer and the wait is not missed.
            let mut ended = std::pin::pin!(self.attempt_ended.notified());
            ended.as_mut().enable();
            if let Some(decided) = ask().await? {
                return Ok(decided);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::Unavailable("too many authentication attempts in flight for this account or credential".into()));
            }
            let _ = tokio::time::timeout(ATTEMPT_POLL.min(deadline - now), ended).await;
        }
    }

    /// A PIN or password check ended: wake the attempts waiting for its place.
    pub(crate) fn attempt_ended(&self) {
        self.attempt_ended.notify_waiters();
    }

    pub(crate) fn dummy_password_hash(&self) -> &str {
        &self.dummy_password_hash
    }

    /// Reach the configured external key backends now (load the PKCS#11 module, log in): a
    /// misconfigured HSM is reported at start (the service still starts; HSM-backed
    /// credentials answer `temporarily_unavailable`). Returns whether there is any.
    pub async fn check_hsm(&self) -> Result<bool> {
        // The device backend has nothing to reach: the devices connect to the service.
        let external: Vec<Arc<dyn KeyBackend>> = self.backends.external().filter(|b| b.kind() != KeyBackendKind::Device).cloned().collect();
        let any = !external.is_empty();
        for backend in external {
            tokio::task::spawn_blocking(move || backend.check()).await.map_err(|e| Error::Internal(e.to_string()))??;
        }
        Ok(any)
    }

    /// The key backend a credential's key lives in (`Unavailable` when it is not configured).
    pub(crate) fn backend_of(&self, kind: KeyBackendKind) -> Result<Arc<dyn KeyBackend>> {
        Ok(self.backends.get(kind)?)
    }

    /// The unwrapped key of a credential, from the cache or its backend. The cache keeps aws-lc
    /// key objects only (never the clear PKCS#8), or the HSM object's id, and forgets them after
    /// `key_cache_seconds`. HSM calls block, so they run on the blocking pool.
    pub(crate) async fn signing_key(&self, cred: &CredentialRow) -> Result<Arc<dyn SigningKey>> {
        if cred.key_backend == KeyBackendKind::Device {
            // The key is on the signer's device: signHash, signDoc and the asynchronous jobs send it
            // requests (`device.rs`) and never come here. Refused before any SAD is spent, not as the
            // backend's "unavailable", which would invite a retry that can never succeed.
            return Err(Error::invalid("This credential's key is on the signer's device: it signs only through the device protocol"));
        }
        let ttl = Duration::from_secs(self.cfg.key_cache_seconds);
        if !ttl.is_zero() {
            let mut cache = self.key_cache.lock().map_err(|_| Error::Internal("key cache poisoned".into()))?;
            if let Some((key, at, handle)) = cache.get(&cred.id) {
                if at.elapsed() < ttl && *handle == cred.key_handle {
                    return Ok(key.clone());
                }
                cache.remove(&cred.id);
            }
        }
        let algorithm = cred.key_algo;
        let binding = credential_key_binding(&cred.id);
        let backend = self.backend_of(cred.key_backend)?;
        // A backend that blocks (an HSM) is called off the async workers.
        let key = if backend.blocks() {
            let handle = cred.key_handle.clone();
            tokio::task::spawn_blocking(move || backend.load(algorithm, &handle, &binding))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??
        } else {
            backend.load(algorithm, &cred.key_handle, &binding)?
        };
        if !ttl.is_zero() {
            let mut cache = self.key_cache.lock().map_err(|_| Error::Internal("key cache poisoned".into()))?;
            cache.retain(|_, (_, at, _)| at.elapsed() < ttl);
            cache.insert(cred.id.clone(), (key.clone(), Instant::now(), cred.key_handle.clone()));
        }
        Ok(key)
    }

    /// Remember a row for signHash's fast path.
    pub(crate) fn remember<T: Clone>(map: &Mutex<HashMap<String, (T, Instant)>>, key: &str, value: &T) {
        if let Ok(mut m) = map.lock() {
            if m.len() >= HOT_CACHE_ENTRIES {
                m.clear();
            }
            m.insert(key.to_string(), (value.clone(), Instant::now()));
        }
    }

    /// A remembered row, if recent.
    pub(crate) fn recall<T: Clone>(map: &Mutex<HashMap<String, (T, Instant)>>, key: &str) -> Option<T> {
        let m = map.lock().ok()?;
        m.get(key).filter(|(_, at)| at.elapsed() < HOT_CACHE_TTL).map(|(v, _)| v.clone())
    }

    /// Forget remembered rows after the write refused them.
    pub(crate) fn forget_hot(&self, token_hash: &str, credential_id: &str) {
        if let Ok(mut m) = self.hot_sessions.lock() {
            m.remove(token_hash);
        }
        if let Ok(mut m) = self.hot_credentials.lock() {
            m.remove(credential_id);
        }
    }

    /// Drop a credential's key from the cache (disable, delete).
    pub(crate) fn forget_key(&self, credential_id: &str) {
        if let Ok(mut cache) = self.key_cache.lock() {
            cache.remove(credential_id);
        }
    }

    /// Write an audit event; failures to audit fail the operation (no unaudited action).
    pub(crate) async fn audit(
        &self,
        actor: &str,
        event: &str,
        outcome: Outcome,
        credential_id: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<()> {
        crate::metrics::METRICS.audited(event, outcome, credential_id.is_some(), &detail);
        let detail = detail.to_string();
        self.store.audit(&NewAudit { at: now(), actor, event, outcome, credential_id, detail: &detail }).await?;
        Ok(())
    }
}

/// The backend of the CA-side keys, at start: a missing one is a configuration error (the
/// service cannot start without its CA).
fn ca_backend(backends: &KeyBackends, kind: KeyBackendKind) -> Result<Arc<dyn KeyBackend>> {
    backends.get(kind).map_err(|_| Error::Internal(format!("the CA keys are in {}, and none is configured", kind.describe())))
}

/// Run a signing step with a key that blocks (an HSM): on the multi-threaded runtime, tell
/// tokio this worker blocks, so other requests move to the other workers.
pub(crate) fn blocking_if<T>(blocks: bool, f: impl FnOnce() -> T) -> T {
    if blocks && tokio::runtime::Handle::try_current().is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread) {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The TSA key and certificate, created on first start (P-256 key beside the CA keys,
/// certificate from the issuing CA, five years but never past the CA). Returns whether the
/// key is in the HSM.
async fn open_tsa(
    store: &Store,
    backends: &KeyBackends,
    new_backend: KeyBackendKind,
    ca: &IssuingCa,
    names: &CaNames,
    policy: &str,
) -> Result<(Tsa, bool)> {
    if store.ca("tsa").await?.is_none() {
        let generated = ca_backend(backends, new_backend)?.generate(KeyAlgorithm::EcdsaP256, &ca_key_binding("tsa"))?;
        let cert = ca.issue_tsa_cert(names, generated.key.as_ref(), 5 * 365)?;
        let row = CaRow { name: "tsa".into(), cert: cert.clone(), key_handle: generated.handle, key_backend: new_backend };
        store.insert_ca_if_absent(&row).await?;
    }
    let row = store.ca("tsa").await?.ok_or_else(|| Error::Internal("TSA record missing".into()))?;
    let key = ca_backend(backends, row.key_backend)?.load(KeyAlgorithm::EcdsaP256, &row.key_handle, &ca_key_binding("tsa"))?;
    let blocks = key.blocks();
    Ok((Tsa::new(key, row.cert.der, ca.issuing_der.clone(), policy)?, blocks))
}

/// The binding under which a credential's key handle is sealed.
pub(crate) fn credential_key_binding(id: &str) -> String {
    format!("credential:{id}")
}

fn ca_row(name: &str, r: cloudsign_pki::CaRecord, backend: KeyBackendKind) -> CaRow {
    CaRow { name: name.into(), cert: r.cert, key_handle: r.key_handle, key_backend: backend }
}
