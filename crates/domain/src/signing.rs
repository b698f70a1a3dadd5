//! `signatures/signHash` (CSC v2 §11.10): the signing policy. Everything is checked before the
//! SAD is touched; the SAD is consumed (with its audit record) in one transaction before any
//! signature is made, so a refused request signs nothing and a count is never exceeded.

use cloudsign_csc::SignAlgorithm;
use cloudsign_store::NewAudit;
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
        let credential_id = input.credential_id.clone();
        let result = self.sign_hash_checked(session, ctx, input).await;
        if let Err(e) = &result {
            if !matches!(e, Error::Internal(_) | Error::Unavailable(_)) {
                self.audit(
                    &session.user_name,
                    "signatures.signHash",
                    "refused",
                    Some(&credential_id),
                    json!({"client": ctx.client, "reason": e.to_string()}),
                )
                .await?;
            }
        }
        result
    }

    async fn sign_hash_checked(&self, session: &Session, ctx: &RequestContext, input: SignHashInput) -> Result<Vec<Vec<u8>>> {
        let row = self.own_credential(session, &input.credential_id).await?;
        self.check_usable(&row)?;
        let view_algo = cloudsign_csc::KeyAlgorithm::from_name(&row.key_algo).ok_or_else(|| Error::Internal("unknown key type".into()))?;
        if !view_algo.schemes().contains(&input.scheme) {
            return Err(Error::invalid(format!(
                "Invalid parameter signAlgo: {} is not usable with this {} key",
                input.scheme.name(),
                view_algo.name()
            )));
        }
        if input.digests.is_empty() {
            return Err(Error::invalid("Empty hash array"));
        }
        let hash = input.scheme.hash();
        if input.digests.iter().any(|d| d.len() != hash.len()) {
            return Err(Error::invalid("Invalid digest value length"));
        }
        // The SAD, or a credential-scope token sent as the bearer, which is its own SAD.
        let sad_hash = match (input.sad.as_deref(), &session.credential) {
            (Some(sad), _) => token_hash(sad),
            (None, Some(scope)) => scope.sad_hash.clone(),
            (None, None) => return Err(Error::invalid("Missing (or invalid type) string parameter SAD")),
        };
        // Open the key before consuming: a key that cannot be opened must not cost signatures.
        let key = match &row.pin_wrap_salt {
            // Sole control: the PIN key travels with the SAD, sealed under the SAD itself.
            Some(_) => {
                let token = match (input.sad.as_deref(), &session.credential) {
                    (Some(sad), _) => sad,
                    (None, Some(scope)) => scope.token.as_str(),
                    (None, None) => return Err(Error::invalid("Missing (or invalid type) string parameter SAD")),
                };
                let sealed =
                    self.store.sad(&sad_hash).await?.and_then(|s| s.sole_key).ok_or_else(|| Error::invalid("Invalid parameter SAD"))?;
                let pin_key = crate::sole::unwrap_from(&sealed, token, &sad_hash)?;
                self.sole_signing_key(&row, &pin_key)?
            }
            None => self.signing_key(&row).await?,
        };

        let digests_hex: Vec<String> = input.digests.iter().map(hex::encode).collect();
        let digests_len = input.digests.len();
        let detail = json!({"client": ctx.client, "clientData": ctx.client_data, "signAlgo": input.scheme.oid(), "algorithm": input.scheme.name(), "hashAlgorithmOID": hash.oid(), "hashes": digests_hex}).to_string();
        let t = now();
        let audit = NewAudit {
            at: t,
            actor: &session.user_name,
            event: "signatures.signHash",
            outcome: "ok",
            credential_id: Some(&row.id),
            detail: &detail,
        };
        let outcome = self.store.consume_sad(&sad_hash, &session.user_id, &row.id, hash.oid(), &digests_hex, t, &audit).await?;
        sad_outcome(outcome)?;

        let scheme = input.scheme;
        let digests = input.digests;
        let sign_all = move || digests.iter().map(|d| key.sign_digest(scheme, d)).collect::<std::result::Result<Vec<_>, _>>();
        // Small jobs run on the request's own task: a hand-off to the blocking pool costs more
        // than the signature. Long ones (RSA, batches) go to the blocking pool so they do not
        // stall other requests.
        // HSM calls always block: never inline.
        let in_process = row.key_backend != "pkcs11";
        let signed = if in_process && estimated_micros(view_algo) * digests_len as u64 <= INLINE_BUDGET_MICROS {
            sign_all()
        } else {
            tokio::task::spawn_blocking(sign_all).await.map_err(|e| Error::Internal(e.to_string()))?
        };
        match signed {
            Ok(signatures) => Ok(signatures),
            Err(e) => {
                self.audit(
                    &session.user_name,
                    "signatures.signHash",
                    "failed",
                    Some(&row.id),
                    json!({"client": ctx.client, "error": e.to_string()}),
                )
                .await?;
                Err(Error::Internal(e.to_string()))
            }
        }
    }
}

/// Work that may run inline on an async worker (tokio's guidance: well under a millisecond
/// between await points).
const INLINE_BUDGET_MICROS: u64 = 200;

/// Rough cost of one signature on a current x86 core (aws-lc), for the inline/blocking choice.
fn estimated_micros(key: cloudsign_csc::KeyAlgorithm) -> u64 {
    use cloudsign_csc::KeyAlgorithm::*;
    match key {
        EcdsaP256 => 15,
        EcdsaP384 => 60,
        EcdsaP521 => 150,
        Rsa2048 => 600,
        Rsa3072 => 1800,
        Rsa4096 => 4000,
    }
}
