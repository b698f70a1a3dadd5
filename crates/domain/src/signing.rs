//! `signatures/signHash` (CSC v2 §11.10): the signing policy. Everything is checked before the
//! SAD is touched; the SAD is consumed (with its audit record) in one transaction before any
//! signature is made, so a refused request signs nothing and a count is never exceeded.

use cloudsign_store::Outcome;
use std::sync::Arc;

use cloudsign_asn1::{KeyAlgorithm, SignAlgorithm};
use cloudsign_keys::SigningKey;
use cloudsign_store::{ConsumeOutcome, ConsumeSad, CredentialRow, NewAudit, SadGuard};
use serde_json::json;

use crate::credentials::sad_outcome;
use crate::secrets::token_hash;
use crate::{Error, RequestContext, Result, Service, Session, now};

/// A `signHash` call, decoded.
pub struct SignHashInput {
    /// The credential.
    pub credential_id: String,
    /// The SAD.
    pub sad: Option<String>,
    /// The digests, in request order.
    pub digests: Vec<Vec<u8>>,
    /// The resolved scheme.
    pub scheme: SignAlgorithm,
}

impl Service {
    /// Sign digests; signatures come back in request order. Every refusal is audited.
    pub async fn sign_hash(&self, session: &Session, ctx: &RequestContext, input: SignHashInput) -> Result<Vec<Vec<u8>>> {
        let result = self.sign_hash_checked(session, ctx, &input).await;
        self.audit_refusal(session, ctx, "signatures.signHash", &input.credential_id, result).await
    }

    /// Audit a refusal (not an internal failure, which is logged) under `event`, and pass the
    /// result on.
    pub(crate) async fn audit_refusal<T>(
        &self,
        session: &Session,
        ctx: &RequestContext,
        event: &str,
        credential_id: &str,
        result: Result<T>,
    ) -> Result<T> {
        if let Err(e) = &result
            && !matches!(e, Error::Internal(_) | Error::Unavailable(_))
        {
            self.audit(
                &session.user_name,
                event,
                Outcome::Refused,
                Some(credential_id),
                json!({"client": ctx.client, "reason": e.to_string()}),
            )
            .await?;
        }
        result
    }

    /// signHash for a bearer token, trying the fast path first: with the session and the
    /// credential as last read (remembered, not re-read), the consuming write re-checks the
    /// token, the user and the credential (`SadGuard`) in the same transaction, so nothing they
    /// say is trusted without the database agreeing. Anything else — a stale row, a refusal —
    /// goes through [`sign_hash`](Self::sign_hash) on fresh reads, which decides and audits.
    pub async fn sign_hash_bearer(
        &self,
        bearer: &str,
        session: Session,
        remembered: bool,
        ctx: &RequestContext,
        input: SignHashInput,
    ) -> Result<Vec<Vec<u8>>> {
        let bearer_hash = token_hash(bearer);
        if let Some(signatures) = self.sign_hash_fast(&session, ctx, &input, &bearer_hash).await? {
            return Ok(signatures);
        }
        self.forget_hot(&bearer_hash, &input.credential_id);
        let session = if remembered { self.authenticate(bearer).await? } else { session };
        self.sign_hash(&session, ctx, input).await
    }

    /// `Ok(None)`: nothing was consumed, decide on fresh reads.
    async fn sign_hash_fast(
        &self,
        session: &Session,
        ctx: &RequestContext,
        input: &SignHashInput,
        bearer_hash: &str,
    ) -> Result<Option<Vec<Vec<u8>>>> {
        let Some(row) = Self::recall(&self.hot_credentials, &input.credential_id) else { return Ok(None) };
        let scoped_elsewhere = session.credential.as_ref().is_some_and(|c| c.credential_id != row.id);
        // A device credential's signature is the device's: decided on fresh reads.
        if row.user_id != session.user_id
            || scoped_elsewhere
            || row.pin_wrap_salt.is_some()
            || row.key_backend == cloudsign_keys::KeyBackendKind::Device
            || self.check_usable(&row).is_err()
        {
            return Ok(None);
        }
        let (Ok(key_algorithm), Ok(sad_hash)) = (check_request(&row, input), sad_hash_of(session, input)) else { return Ok(None) };
        let Ok(key) = self.signing_key(&row).await else { return Ok(None) };
        let guard = SadGuard { token_hash: bearer_hash, key_handle: &row.key_handle };
        // A refusal falls back to fresh reads; a database error is final (a retry could spend
        // signatures twice if the first commit did land).
        let digests_hex: Vec<String> = input.digests.iter().map(|d| crate::secrets::hex(d)).collect();
        let consumed = self.consume(session, ctx, &row, "signatures.signHash", input.scheme, digests_hex, &sad_hash, Some(guard)).await?;
        if consumed != ConsumeOutcome::Consumed {
            return Ok(None);
        }
        self.sign_consumed(session, ctx, &row, key_algorithm, key, input).await.map(Some)
    }

    async fn sign_hash_checked(&self, session: &Session, ctx: &RequestContext, input: &SignHashInput) -> Result<Vec<Vec<u8>>> {
        let row = self.own_credential(session, &input.credential_id).await?;
        self.check_usable(&row)?;
        let key_algorithm = check_request(&row, input)?;
        let sad_hash = sad_hash_of(session, input)?;
        if row.key_backend == cloudsign_keys::KeyBackendKind::Device {
            // `docs/device-protocol.md` "CSC integration": an offline or document-only device
            // is refused before the SAD is touched; then the SAD is consumed, and only the
            // digests it matched are sent.
            let need = crate::device::DeviceNeed { method: crate::device::DeviceMethod::SignHash, online: true };
            let device = self.device_precheck(&row, need).await?;
            let digests_hex: Vec<String> = input.digests.iter().map(|d| crate::secrets::hex(d)).collect();
            sad_outcome(self.consume(session, ctx, &row, "signatures.signHash", input.scheme, digests_hex, &sad_hash, None).await?)?;
            crate::metrics::METRICS.sad_spent(input.digests.len());
            return self.device_sign(session, ctx, &row, &device, input.scheme, &input.digests, &sad_hash).await;
        }
        // Open the key before consuming: a key that cannot be opened must not cost signatures.
        let key = self.key_for_sad(session, &row, input.sad.as_deref(), &sad_hash).await?;
        let digests_hex: Vec<String> = input.digests.iter().map(|d| crate::secrets::hex(d)).collect();
        sad_outcome(self.consume(session, ctx, &row, "signatures.signHash", input.scheme, digests_hex, &sad_hash, None).await?)?;
        self.sign_consumed(session, ctx, &row, key_algorithm, key, input).await
    }

    /// The key that signs for this SAD: from the cache or its backend, or for sole control
    /// opened with the PIN key the SAD carries. Opened before consuming, so that a key that
    /// cannot be opened costs no signatures.
    pub(crate) async fn key_for_sad(
        &self,
        session: &Session,
        row: &CredentialRow,
        sad: Option<&str>,
        sad_hash: &str,
    ) -> Result<Arc<dyn SigningKey>> {
        Ok(match &row.pin_wrap_salt {
            // Sole control: the PIN key travels with the SAD, sealed under the SAD itself.
            Some(_) => {
                let token = match (sad, &session.credential) {
                    (Some(sad), _) => sad,
                    (None, Some(scope)) => scope.token.as_str(),
                    (None, None) => return Err(Error::invalid("Missing (or invalid type) string parameter SAD")),
                };
                // Only this user's live SAD for this credential carries a key worth opening.
                let sealed = self
                    .store
                    .sad(sad_hash)
                    .await?
                    .filter(|s| s.user_id == session.user_id && s.credential_id == row.id && !s.revoked && s.expires_at > now())
                    .and_then(|s| s.sole_key)
                    .ok_or_else(|| Error::invalid("Invalid parameter SAD"))?;
                let pin_key = crate::sole::unwrap_from(&sealed, token, sad_hash)?;
                self.sole_signing_key(row, &pin_key)?
            }
            None => self.signing_key(row).await?,
        })
    }

    /// Consume the SAD (one signature per digest, each bound digest once) with the audit record
    /// of `event`, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn consume(
        &self,
        session: &Session,
        ctx: &RequestContext,
        row: &CredentialRow,
        event: &str,
        scheme: SignAlgorithm,
        digests_hex: Vec<String>,
        sad_hash: &str,
        guard: Option<SadGuard<'_>>,
    ) -> Result<ConsumeOutcome> {
        let hash = scheme.hash();
        let detail = consume_detail(scheme, ctx, &digests_hex, None)?;
        let t = now();
        let audit =
            NewAudit { at: t, actor: &session.user_name, event, outcome: Outcome::Ok, credential_id: Some(&row.id), detail: &detail };
        let consume = ConsumeSad {
            hash: sad_hash,
            user_id: &session.user_id,
            credential_id: &row.id,
            hash_algo: hash.oid(),
            digests_hex,
            now: t,
            audit,
            guard,
        };
        Ok(self.store.consume_sad(consume).await?)
    }

    /// Sign what a consumed SAD paid for. A failure now is final (and audited): the signatures
    /// are spent.
    async fn sign_consumed(
        &self,
        session: &Session,
        ctx: &RequestContext,
        row: &CredentialRow,
        key_algorithm: KeyAlgorithm,
        key: Arc<dyn SigningKey>,
        input: &SignHashInput,
    ) -> Result<Vec<Vec<u8>>> {
        let scheme = input.scheme;
        let digests_len = input.digests.len();
        crate::metrics::METRICS.sad_spent(digests_len);
        // Software signatures that are cheap one by one (ECDSA) run on the request's own task,
        // in slices that fit the inline budget with a yield between them, so a batch of 100
        // never holds a worker long and never pays hand-offs to the blocking pool (on a small
        // VM each cross-thread wake-up costs more than a P-256 signature). Expensive ones (RSA)
        // and keys that block (an HSM's) go to the blocking pool.
        let in_process = !key.blocks();
        let per_signature = estimated_micros(key_algorithm);
        let signed = if in_process && per_signature <= INLINE_BUDGET_MICROS {
            let slice = (INLINE_BUDGET_MICROS / per_signature) as usize;
            let mut signatures = Vec::with_capacity(digests_len);
            let mut failed = None;
            for (i, chunk) in input.digests.chunks(slice).enumerate() {
                if i > 0 {
                    tokio::task::yield_now().await;
                }
                match chunk.iter().map(|d| key.sign_digest(scheme, d)).collect::<std::result::Result<Vec<_>, _>>() {
                    Ok(more) => signatures.extend(more),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            failed.map_or(Ok(signatures), Err)
        } else {
            let digests = input.digests.clone();
            tokio::task::spawn_blocking(move || {
                digests.iter().map(|d| key.sign_digest(scheme, d)).collect::<std::result::Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
        };
        match signed {
            Ok(signatures) => Ok(crate::metrics::METRICS.signed_then(row.key_backend, signatures)),
            Err(e) => {
                self.audit(
                    &session.user_name,
                    "signatures.signHash",
                    Outcome::Failed,
                    Some(&row.id),
                    json!({"client": ctx.client, "error": e.to_string()}),
                )
                .await?;
                Err(Error::from(e))
            }
        }
    }
}

/// The request's own rules: the scheme fits the key, and the digests fit the scheme.
fn check_request(row: &CredentialRow, input: &SignHashInput) -> Result<KeyAlgorithm> {
    check_scheme(row, input.scheme, &input.digests)
}

pub(crate) fn check_scheme(row: &CredentialRow, scheme: SignAlgorithm, digests: &[Vec<u8>]) -> Result<KeyAlgorithm> {
    let key_algorithm = row.key_algo;
    if !key_algorithm.schemes().contains(&scheme) {
        return Err(Error::invalid(format!(
            "Invalid parameter signAlgo: {} is not usable with this {} key",
            scheme.name(),
            key_algorithm.name()
        )));
    }
    if digests.is_empty() {
        return Err(Error::invalid("Empty hash array"));
    }
    if digests.iter().any(|d| d.len() != scheme.hash().len()) {
        return Err(Error::invalid("Invalid digest value length"));
    }
    Ok(key_algorithm)
}

/// The SAD, or a credential-scope token sent as the bearer, which is its own SAD.
fn sad_hash_of(session: &Session, input: &SignHashInput) -> Result<String> {
    sad_hash_for(session, input.sad.as_deref())
}

pub(crate) fn sad_hash_for(session: &Session, sad: Option<&str>) -> Result<String> {
    match (sad, &session.credential) {
        (Some(sad), _) => Ok(token_hash(sad)),
        (None, Some(scope)) => Ok(scope.sad_hash.clone()),
        (None, None) => Err(Error::invalid("Missing (or invalid type) string parameter SAD")),
    }
}

/// Work that may run inline on an async worker (tokio's guidance: well under a millisecond
/// between await points).
const INLINE_BUDGET_MICROS: u64 = 200;

/// Rough cost of one signature on a current x86 core (aws-lc), for the inline/blocking choice.
fn estimated_micros(key: KeyAlgorithm) -> u64 {
    use KeyAlgorithm::*;
    match key {
        EcdsaP256 => 15,
        EcdsaP384 => 60,
        EcdsaP521 => 150,
        Rsa2048 => 600,
        Rsa3072 => 1800,
        Rsa4096 => 4000,
    }
}

/// The audit detail of a signature's SAD consumption (synchronous, or an asynchronous job's
/// acceptance with the job it paid for). Serialized from borrowed fields, keys in the order
/// `json!` would sort them: at 100 hashes a `Value` tree copied every digest once more.
pub(crate) fn consume_detail(scheme: SignAlgorithm, ctx: &RequestContext, digests_hex: &[String], job: Option<&str>) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Detail<'a> {
        algorithm: &'a str,
        client: &'a str,
        #[serde(rename = "clientData")]
        client_data: Option<&'a str>,
        #[serde(rename = "hashAlgorithmOID")]
        hash_algorithm_oid: &'a str,
        hashes: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        job: Option<&'a str>,
        #[serde(rename = "operationMode", skip_serializing_if = "Option::is_none")]
        operation_mode: Option<&'a str>,
        #[serde(rename = "signAlgo")]
        sign_algo: &'a str,
    }
    serde_json::to_string(&Detail {
        algorithm: &scheme.name(),
        client: &ctx.client,
        client_data: ctx.client_data.as_deref(),
        hash_algorithm_oid: scheme.hash().oid(),
        hashes: digests_hex,
        job,
        operation_mode: job.map(|_| "A"),
        sign_algo: scheme.oid(),
    })
    .map_err(|e| Error::Internal(e.to_string()))
}
