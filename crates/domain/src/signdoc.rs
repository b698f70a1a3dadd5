//! `signatures/signDoc` (CSC v2 §11.11): complete AdES signatures made in the service, from
//! document digests or whole documents. CAdES (ETSI EN 319 122-1) at B-B and B-T so far. The SAD
//! pays one signature per document and, when bound, must list each document's digest; it is
//! consumed with the audit record before anything is signed, as for signHash.

use cloudsign_ades::{cades, jades};
use cloudsign_csc::SignAlgorithm;
use cloudsign_pki::tsa::Request;

use crate::credentials::sad_outcome;
use crate::signing::{check_scheme, sad_hash_for};
use crate::timestamp::now_millis;
use crate::{Error, RequestContext, Result, Service, Session, now};

/// AdES conformance level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Basic signature.
    BB,
    /// With a signature time-stamp.
    BT,
    /// B-T with the validation material (certificates up to the root, the CRL, an OCSP
    /// response for the signer's certificate) inside.
    BLT,
}

/// The AdES format of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CAdES (CMS).
    Cades,
    /// JAdES (JWS compact, detached unencoded payload).
    Jades,
}

/// One document to sign.
pub struct DocItem {
    /// The format.
    pub format: Format,
    /// The document's digest (with the scheme's hash).
    pub digest: Vec<u8>,
    /// The document itself: the JAdES payload, or the content a CAdES signature encapsulates.
    pub document: Option<Vec<u8>>,
    /// CAdES: encapsulate the document (attached).
    pub attach: bool,
    /// The scheme.
    pub scheme: SignAlgorithm,
    /// The level.
    pub level: Level,
}

/// A `signDoc` call, decoded.
pub struct SignDocInput {
    /// The credential.
    pub credential_id: String,
    /// The SAD.
    pub sad: Option<String>,
    /// The documents, in request order.
    pub items: Vec<DocItem>,
}

impl Service {
    /// Sign documents; each signature (DER CMS, or the compact JWS text), in request order.
    /// Refusals are audited.
    pub async fn sign_doc(&self, session: &Session, ctx: &RequestContext, input: SignDocInput) -> Result<Vec<Vec<u8>>> {
        let credential_id = input.credential_id.clone();
        let result = self.sign_doc_checked(session, ctx, input).await;
        self.audit_refusal(session, ctx, "signatures.signDoc", &credential_id, result).await
    }

    async fn sign_doc_checked(&self, session: &Session, ctx: &RequestContext, input: SignDocInput) -> Result<Vec<Vec<u8>>> {
        let row = self.own_credential(session, &input.credential_id).await?;
        self.check_usable(&row)?;
        let Some(first) = input.items.first() else { return Err(Error::invalid("Missing documentDigests or documents")) };
        let scheme = first.scheme;
        // One SAD, one digest algorithm: it is what a bound SAD is checked against.
        if input.items.iter().any(|i| i.scheme.hash() != scheme.hash()) {
            return Err(Error::invalid("All documents of one signDoc call use the same digest algorithm"));
        }
        for item in &input.items {
            let key = check_scheme(&row, item.scheme, std::slice::from_ref(&item.digest))?;
            if item.format == Format::Jades {
                // RFC 7518 §3.4: ES256/384/512 fix the curve as well as the hash.
                let fits = match (key, item.scheme) {
                    (cloudsign_csc::KeyAlgorithm::EcdsaP256, SignAlgorithm::Ecdsa(h)) => h == cloudsign_csc::HashAlgorithm::Sha256,
                    (cloudsign_csc::KeyAlgorithm::EcdsaP384, SignAlgorithm::Ecdsa(h)) => h == cloudsign_csc::HashAlgorithm::Sha384,
                    (cloudsign_csc::KeyAlgorithm::EcdsaP521, SignAlgorithm::Ecdsa(h)) => h == cloudsign_csc::HashAlgorithm::Sha512,
                    _ => true,
                };
                if !fits {
                    return Err(Error::invalid(
                        "Invalid parameter signAlgo: JAdES (JWS) pairs P-256 with SHA-256, P-384 with SHA-384, P-521 with SHA-512",
                    ));
                }
                if item.document.is_none() || item.level != Level::BB {
                    return Err(Error::invalid("JAdES is signed from documents, at Ades-B-B"));
                }
            }
        }
        if input.items.iter().any(|i| i.level != Level::BB) && self.tsa.is_none() {
            return Err(Error::invalid("Invalid parameter conformance_level: the time-stamping authority is not enabled"));
        }
        let sad_hash = sad_hash_for(session, input.sad.as_deref())?;
        let key = self.key_for_sad(session, &row, input.sad.as_deref(), &sad_hash).await?;
        let certificate =
            cloudsign_csc::b64::decode_lenient(&row.cert.der_b64).ok_or_else(|| Error::Internal("damaged certificate record".into()))?;
        // B-LT: what a verifier needs (root, TSA certificate, CRL, the signer certificate's OCSP
        // response), gathered before the SAD is spent, so that a failure here costs nothing.
        let validation = if input.items.iter().any(|i| i.level == Level::BLT) {
            let mut certificates = vec![self.ca.root_der.clone()];
            if let Some(tsa) = &self.tsa {
                certificates.push(tsa.certificate().to_vec());
            }
            // The issuing CA's CRL for the signer and TSA certificates, the root's for the
            // issuing CA, and the signer certificate's OCSP response.
            let crls = vec![self.crl().await?, self.arl()?];
            Some(cades::ValidationData { certificates, crls, ocsp: vec![self.ocsp_for(&certificate).await?] })
        } else {
            None
        };
        let digests_hex: Vec<String> = input.items.iter().map(|i| hex::encode(&i.digest)).collect();
        sad_outcome(self.consume(session, ctx, &row, "signatures.signDoc", scheme, &digests_hex, &sad_hash, None).await?)?;
        // From here the signatures are paid for: a failure is final, and audited as such.
        let result = self.sign_docs(&key, &certificate, input.items, validation.as_ref()).await;
        if let Err(e) = &result {
            self.audit(
                &session.user_name,
                "signatures.signDoc",
                "failed",
                Some(&row.id),
                serde_json::json!({"client": ctx.client, "error": e.to_string()}),
            )
            .await?;
        }
        result
    }

    async fn sign_docs(
        &self,
        key: &std::sync::Arc<dyn cloudsign_keys::SigningKey>,
        certificate: &[u8],
        items: Vec<DocItem>,
        validation: Option<&cades::ValidationData>,
    ) -> Result<Vec<Vec<u8>>> {
        let chain = vec![self.ca.issuing_der.clone()];
        let signing_time = now();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if item.format == Format::Jades {
                let payload = item.document.as_deref().unwrap_or_default();
                let params = jades::Params { scheme: item.scheme, certificate, chain: &chain, signing_time };
                let prepared = jades::prepare_detached(payload, &params).map_err(|e| Error::Internal(e.to_string()))?;
                let (key, tbs, scheme) = (key.clone(), prepared.to_be_signed.clone(), item.scheme);
                let signature = tokio::task::spawn_blocking(move || key.sign_digest(scheme, &tbs))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??;
                out.push(prepared.finish(&signature).map_err(|e| Error::Internal(e.to_string()))?.into_bytes());
                continue;
            }
            let params = cades::Params { scheme: item.scheme, certificate, chain: &chain, signing_time };
            let prepared = cades::prepare(&item.digest, &params).map_err(|e| Error::Internal(e.to_string()))?;
            let key = key.clone();
            let (tbs, scheme) = (prepared.to_be_signed.clone(), item.scheme);
            let signature =
                tokio::task::spawn_blocking(move || key.sign_digest(scheme, &tbs)).await.map_err(|e| Error::Internal(e.to_string()))??;
            let token = match (item.level, &self.tsa) {
                (Level::BT | Level::BLT, Some(tsa)) => {
                    let (hash, digest) = prepared.timestamp_imprint(&signature);
                    let req = Request { hash, digest, nonce: None, cert_req: true };
                    Some(crate::service::blocking_if(self.tsa_in_hsm, || tsa.token(&req, now_millis()))?)
                }
                _ => None,
            };
            let validation = validation.filter(|_| item.level == Level::BLT);
            let content = if item.attach { item.document.as_deref() } else { None };
            out.push(prepared.finish(&signature, token.as_deref(), content, validation));
        }
        Ok(out)
    }
}
