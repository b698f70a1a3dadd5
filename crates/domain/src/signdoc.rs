//! `signatures/signDoc` (CSC v2 §11.11): complete AdES signatures made in the service, from
//! document digests (CAdES) or whole documents (CAdES, XAdES, PAdES, JAdES), at B-B, B-T and
//! B-LT. The SAD
//! pays one signature per document and, when bound, must list each document's digest; it is
//! consumed with the audit record before anything is signed, as for signHash.

use cloudsign_ades::{cades, format, jades, pades, xades};
use cloudsign_asn1::SignAlgorithm;
use cloudsign_pki::tsa::Request;
use cloudsign_store::Outcome;

use std::sync::Arc;

use cloudsign_keys::SigningKey;

use crate::credentials::sad_outcome;
use crate::device::{DTBS_TOO_LARGE, DeviceAsk, DeviceMethod, DeviceNeed, protocol};
use crate::signing::{check_scheme, sad_hash_for};
use crate::timestamp::now_millis;
use crate::{Error, RequestContext, Result, Service, Session, now};

// One definition of format, level and packaging for every signer (the CLI's too).
pub use cloudsign_ades::format::{Format, Level, Packaging};

/// One document to sign.
pub struct DocItem {
    /// The format.
    pub format: Format,
    /// The document's digest (with the scheme's hash).
    pub digest: Vec<u8>,
    /// The document itself: the JAdES payload, or the content a CAdES signature encapsulates.
    pub document: Option<Vec<u8>>,
    /// Where signature and document go.
    pub packaging: Packaging,
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

/// What [`Service::check_doc`] found: the credential, its key (opened) or its device, its
/// certificate, the SAD (hash) that pays, and the one digest algorithm of the request.
pub(crate) struct DocChecked {
    pub(crate) row: cloudsign_store::CredentialRow,
    pub(crate) key: Option<Arc<dyn SigningKey>>,
    /// A device credential's device (then `key` is `None`).
    pub(crate) device: Option<cloudsign_store::DeviceRow>,
    pub(crate) certificate: Vec<u8>,
    pub(crate) sad_hash: String,
    pub(crate) scheme: SignAlgorithm,
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
        let DocChecked { row, key, device, certificate, sad_hash, scheme } = self.check_doc(session, &input, false).await?;
        let digests_hex: Vec<String> = input.items.iter().map(|i| crate::secrets::hex(&i.digest)).collect();
        sad_outcome(self.consume(session, ctx, &row, "signatures.signDoc", scheme, digests_hex.clone(), &sad_hash, None).await?)?;
        crate::metrics::METRICS.sad_spent(input.items.len());
        let signer = match (key, &device) {
            (Some(key), _) => DocSigner::Key(key),
            (None, Some(device)) => {
                let t = now();
                let sad_expiry =
                    self.store.sad(&sad_hash).await?.map(|s| s.expires_at).unwrap_or(t + self.cfg.device.request_seconds as i64);
                let ask = DeviceAsk {
                    actor: &session.user_name,
                    client: &ctx.client,
                    job: None,
                    application: self.device_application(session).await?,
                    label: String::new(),
                    row: &row,
                    device,
                    deadline: sad_expiry,
                    give_back: None,
                };
                DocSigner::device(ask, input.items.len())
            }
            (None, None) => return Err(Error::Internal("signDoc without a key".into())),
        };
        let result =
            self.sign_docs(&signer, &certificate, input.items).await.map(|s| crate::metrics::METRICS.signed_then(row.key_backend, s));
        if let (Err(e), Some(_)) = (&result, &device) {
            // A device credential: the application gets nothing, so the SAD gets back all it
            // paid (whatever the device signed before a decline or an expiry stays in the
            // audit trail only) — `docs/device-protocol.md`, "CSC integration".
            self.device_give_back(&session.user_name, ctx, &row, "signatures.signDoc", &sad_hash, &digests_hex, &e.to_string()).await?;
            return result;
        }
        // From here the signatures are paid for: a failure is final, and audited as such.
        if let Err(e) = &result {
            self.audit(
                &session.user_name,
                "signatures.signDoc",
                Outcome::Failed,
                Some(&row.id),
                serde_json::json!({"client": ctx.client, "error": e.to_string()}),
            )
            .await?;
        }
        result
    }

    /// Everything signDoc checks before the SAD is spent (the synchronous and the asynchronous
    /// mode alike): the credential, the formats and algorithms, the documents (parsed), the
    /// validation data for long-term levels, and the key (opened).
    /// `asynchronous`: a device credential's device may be offline now (its request waits).
    pub(crate) async fn check_doc(&self, session: &Session, input: &SignDocInput, asynchronous: bool) -> Result<DocChecked> {
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
                    (cloudsign_asn1::KeyAlgorithm::EcdsaP256, SignAlgorithm::Ecdsa(h)) => h == cloudsign_asn1::HashAlgorithm::Sha256,
                    (cloudsign_asn1::KeyAlgorithm::EcdsaP384, SignAlgorithm::Ecdsa(h)) => h == cloudsign_asn1::HashAlgorithm::Sha384,
                    (cloudsign_asn1::KeyAlgorithm::EcdsaP521, SignAlgorithm::Ecdsa(h)) => h == cloudsign_asn1::HashAlgorithm::Sha512,
                    _ => true,
                };
                if !fits {
                    return Err(Error::invalid(
                        "Invalid parameter signAlgo: JAdES (JWS) pairs P-256 with SHA-256, P-384 with SHA-384, P-521 with SHA-512",
                    ));
                }
                if item.document.is_none() {
                    return Err(Error::invalid("JAdES is signed from documents"));
                }
            }
            if matches!(item.format, Format::Xades | Format::Pades) && item.document.is_none() {
                return Err(Error::invalid("XAdES and PAdES are signed from documents"));
            }
        }
        if input.items.iter().any(|i| i.level != Level::BB) && self.tsa.is_none() {
            return Err(Error::invalid("Invalid parameter conformance_level: the time-stamping authority is not enabled"));
        }
        let sad_hash = sad_hash_for(session, input.sad.as_deref())?;
        // The device signs the digest of what the service builds (`docs/device-protocol.md`,
        // "Signing"); refused before the SAD is spent when it cannot.
        let (key, device) = if row.key_backend == cloudsign_keys::KeyBackendKind::Device {
            let need = DeviceNeed { method: DeviceMethod::SignDoc, online: !asynchronous };
            (None, Some(self.device_precheck(&row, need).await?))
        } else {
            (Some(self.key_for_sad(session, &row, input.sad.as_deref(), &sad_hash).await?), None)
        };
        let certificate = row.cert.der.clone();
        // A device that hashes what it signs gets the data to be signed with each digest
        // (`docs/device-protocol.md`, "DTBS and DTBS/R"), at most 64 KiB each. For JAdES that is
        // the JWS signing input, which holds the whole document (base64url when attached, as it
        // is when detached: RFC 7797 §3): refused here, before the SAD is spent, when it is too
        // large. The other formats' DTBS (signed attributes, SignedInfo) are small.
        if let Some(d) = &device
            && !d.prehashed
        {
            let chain = [self.ca.issuing_der.clone()];
            for item in input.items.iter().filter(|i| i.format == Format::Jades) {
                if jades_signing_input_len(item, &certificate, &chain)? > protocol::MAX_DTBS_BYTES {
                    return Err(Error::invalid(DTBS_TOO_LARGE));
                }
            }
        }
        // B-LT: the validation data can be made (the CRLs, the signer certificate's OCSP
        // response) — tried before the SAD is spent, so that a failure here costs nothing. What
        // goes into the signatures is made again after their time-stamps (`sign_docs`).
        if input.items.iter().any(|i| i.level.long_term()) {
            self.validation_data(&certificate).await?;
        }
        // Documents that cannot be signed are refused before the SAD is spent.
        for item in &input.items {
            preflight(item, &certificate, &self.ca.issuing_der)?;
        }
        Ok(DocChecked { row, key, device, certificate, sad_hash, scheme })
    }

    /// What a verifier needs for B-LT (root, TSA certificate, the issuing CA's CRL for the
    /// signer and TSA certificates, the root's for the issuing CA, and the signer certificate's
    /// OCSP response), as of now.
    async fn validation_data(&self, certificate: &[u8]) -> Result<cades::ValidationData> {
        let mut certificates = vec![self.ca.root_der.clone()];
        if let Some(tsa) = &self.tsa {
            certificates.push(tsa.certificate().to_vec());
        }
        let crls = vec![self.crl().await?, self.arl()?];
        Ok(cades::ValidationData { certificates, crls, ocsp: vec![self.ocsp_for(certificate).await?] })
    }

    /// Sign every item in two passes: first each signature and its signature time-stamp, then —
    /// once every time-stamp exists — the validation data for B-LT and the archive time-stamps
    /// for B-LTA. The revocation data must not predate the time the signature is proven to have
    /// existed (EN 319 102-1 §5.6.2.4, freshness against the best-signature-time): made before
    /// the time-stamp, a strict validator would find it stale. OCSP `producedAt` and CRL
    /// `thisUpdate` have whole seconds and the time-stamps milliseconds, so the data is made in
    /// the second after the last time-stamp.
    pub(crate) async fn sign_docs(&self, key: &DocSigner<'_>, certificate: &[u8], items: Vec<DocItem>) -> Result<Vec<Vec<u8>>> {
        let chain = vec![self.ca.issuing_der.clone()];
        let signing_time = now();
        let mut signed = Vec::with_capacity(items.len());
        for item in items {
            let params = cades::Params { scheme: item.scheme, certificate, chain: &chain, signing_time };
            signed.push(match item.format {
                Format::Jades => self.sign_jws(key, item, &params).await?,
                Format::Xades => self.sign_xml(key, item, &params).await?,
                Format::Pades => self.sign_pdf(key, item, &params).await?,
                Format::Cades => {
                    let prepared = cades::prepare(&item.digest, &params).map_err(|e| Error::Internal(e.to_string()))?;
                    let dtbs = key.needs_dtbs().then(|| prepared.data_to_be_signed());
                    let signature = self.sign_one(key, &item, prepared.to_be_signed.clone(), dtbs).await?;
                    let token = self.signature_timestamp(item.level, prepared.timestamp_imprint(&signature))?;
                    Signed::Cades { item, prepared, signature, token }
                }
            });
        }
        let validation = if signed.iter().any(|s| s.level().is_some_and(Level::long_term)) {
            let next_second = (now_millis() / 1000 + 1) * 1000;
            let wait = next_second - now_millis();
            if wait > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
            }
            Some(self.validation_data(certificate).await?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(signed.len());
        for s in signed {
            out.push(self.complete(s, certificate, &chain, validation.as_ref())?);
        }
        Ok(out)
    }

    /// The second pass of [`sign_docs`](Self::sign_docs) for one item.
    fn complete(
        &self,
        signed: Signed,
        certificate: &[u8],
        chain: &[Vec<u8>],
        validation: Option<&cades::ValidationData>,
    ) -> Result<Vec<u8>> {
        let internal = |e: cloudsign_ades::AdesError| Error::Internal(e.to_string());
        match signed {
            Signed::Done(bytes) => Ok(bytes),
            Signed::Jades { item, prepared, signature, token } => {
                let validation = validation.filter(|_| item.level.long_term());
                let jws = prepared.finish_json(&signature, Some(&token), validation).map_err(internal)?;
                if item.level != Level::BLTA {
                    return Ok(jws.into_bytes());
                }
                // TS 119 182-1 §5.3.6.3: the payload (unencoded when detached), then the rest.
                let input = jades::archive_input(&jws).map_err(internal)?;
                let payload = item.document.as_deref().unwrap_or_default();
                let mut data = input.payload.map(String::into_bytes).unwrap_or_else(|| payload.to_vec());
                data.extend_from_slice(&input.suffix);
                let hash = item.scheme.hash();
                let token = self.tsa_token(hash, cloudsign_ades::digest(hash, &data))?;
                Ok(jades::add_archive_timestamp(&jws, &token).map_err(internal)?.into_bytes())
            }
            Signed::Cades { item, prepared, signature, token } => {
                let validation = validation.filter(|_| item.level.long_term());
                let content = if item.packaging == Packaging::Attached { item.document.as_deref() } else { None };
                let cms = prepared.finish(&signature, token.as_deref(), content, validation);
                if item.level != Level::BLTA {
                    return Ok(cms);
                }
                // EN 319 122-1 §5.5.3: archive-time-stamp-v3; the digest signed is the content's.
                let archive = cades::archive_imprint(&cms, Some(&item.digest), item.scheme.hash()).map_err(internal)?;
                let token = self.tsa_token(archive.hash(), archive.imprint().to_vec())?;
                archive.finish(&token).map_err(internal)
            }
            Signed::Xades { item, prepared, signature, token } => {
                let validation = validation.filter(|_| item.level.long_term());
                let internal = |e: xades::XadesError| Error::Internal(e.to_string());
                let xml = prepared.finish(&signature, token.as_deref(), validation).map_err(internal)?;
                if item.level != Level::BLTA {
                    return Ok(xml);
                }
                // EN 319 132-1 §5.5.2: xadesv141:ArchiveTimeStamp (enveloped or enveloping: no external data).
                let archive = xades::archive_imprint(&xml, None, item.scheme.hash()).map_err(internal)?;
                let token = self.tsa_token(archive.hash(), archive.imprint().to_vec())?;
                archive.finish(&token).map_err(internal)
            }
            Signed::Pades { level, scheme, mut pdf, mut out, token_allowance } => {
                if let Some(v) = validation {
                    let mut certificates = vec![certificate.to_vec()];
                    certificates.extend(chain.iter().cloned());
                    certificates.extend(v.certificates.iter().cloned());
                    out.extend_from_slice(&pades::add_dss(&mut pdf, &certificates, &v.ocsp, &v.crls).map_err(internal)?);
                }
                if level == Level::BLTA {
                    // EN 319 142-1 §5.4.3: a document time-stamp over everything so far.
                    let reserve = format::document_timestamp_reserve(token_allowance);
                    let placeholder = pades::add_signature(&mut pdf, pades::Kind::DocumentTimestamp, reserve).map_err(internal)?;
                    let hash = scheme.hash();
                    let (before, after) = placeholder.signed_parts();
                    let mut data = Vec::with_capacity(out.len() + before.len() + after.len());
                    data.extend_from_slice(&out);
                    data.extend_from_slice(before);
                    data.extend_from_slice(after);
                    let token = self.tsa_token(hash, cloudsign_ades::digest(hash, &data))?;
                    out.extend_from_slice(&placeholder.fill(&token).map_err(internal)?);
                }
                Ok(out)
            }
        }
    }

    /// JAdES (TS 119 182-1): B-B compact; B-T and up the JSON serialization with `etsiU`.
    async fn sign_jws(&self, key: &DocSigner<'_>, item: DocItem, params: &cades::Params<'_>) -> Result<Signed> {
        let payload = item.document.as_deref().unwrap_or_default();
        let jparams =
            jades::Params { scheme: item.scheme, certificate: params.certificate, chain: params.chain, signing_time: params.signing_time };
        let prepared = match item.packaging {
            Packaging::Attached => jades::prepare_attached(payload, &jparams),
            _ => jades::prepare_detached(payload, &jparams),
        }
        .map_err(|e| Error::Internal(e.to_string()))?;
        // The signing input holds the payload: built only for a device that needs it, whose
        // size `check_doc` bounded (attached, the payload part is the JWS's own).
        let dtbs = key.needs_dtbs().then(|| prepared.signing_input(payload));
        let signature = self.sign_one(key, &item, prepared.to_be_signed.clone(), dtbs).await?;
        let internal = |e: cloudsign_ades::AdesError| Error::Internal(e.to_string());
        if item.level == Level::BB {
            return Ok(Signed::Done(prepared.finish(&signature).map_err(internal)?.into_bytes()));
        }
        let imprint = prepared.timestamp_imprint(&signature).map_err(internal)?;
        let token = self.tsa_token(imprint.0, imprint.1)?;
        Ok(Signed::Jades { item, prepared, signature, token })
    }

    /// One signature value over the digest `tbs` of `item`'s structure: by the key on the
    /// blocking pool, or by the signer's device (one request, waited for), which also gets the
    /// structure itself, `dtbs`, when it hashes what it signs ([`DocSigner::needs_dtbs`]).
    async fn sign_one(&self, signer: &DocSigner<'_>, item: &DocItem, tbs: Vec<u8>, dtbs: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let scheme = item.scheme;
        match signer {
            DocSigner::Key(key) => {
                let key = key.clone();
                Ok(tokio::task::spawn_blocking(move || key.sign_digest(scheme, &tbs))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??)
            }
            DocSigner::Device { ask, documents, sent } => {
                let k = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let what = item_label(item);
                let label = if *documents == 1 { what } else { format!("{what} ({k} of {documents})") };
                let ask = DeviceAsk { label, ..ask.clone() };
                let dtbs = dtbs.as_ref().map(std::slice::from_ref);
                let mut signatures = self.device_request_with(&ask, scheme, std::slice::from_ref(&tbs), dtbs).await?.signatures()?;
                signatures.pop().ok_or_else(|| Error::Internal("the device returned no signature".into()))
            }
        }
    }

    /// The signature time-stamp token over `imprint`, when the level asks for one.
    fn signature_timestamp(&self, level: Level, imprint: (cloudsign_asn1::HashAlgorithm, Vec<u8>)) -> Result<Option<Vec<u8>>> {
        match level {
            Level::BB => Ok(None),
            _ => self.tsa_token(imprint.0, imprint.1).map(Some),
        }
    }

    /// A token from our TSA over `digest` (checked enabled before the SAD was spent).
    fn tsa_token(&self, hash: cloudsign_asn1::HashAlgorithm, digest: Vec<u8>) -> Result<Vec<u8>> {
        let tsa = self.tsa.as_ref().ok_or_else(|| Error::Internal("the time-stamping authority is not enabled".into()))?;
        let req = Request { hash, digest, nonce: None, cert_req: true };
        Ok(crate::service::blocking_if(self.tsa_in_hsm, || tsa.token(&req, now_millis()))?)
    }

    /// XAdES enveloped in the XML document, or enveloping it (ETSI EN 319 132-1).
    async fn sign_xml(&self, key: &DocSigner<'_>, item: DocItem, params: &cades::Params<'_>) -> Result<Signed> {
        let document = item.document.as_deref().unwrap_or_default();
        let prepared = xades::prepare(xml_input(item.packaging, document), params)
            .map_err(|e| Error::invalid(format!("Invalid parameter documents: {e}")))?;
        let dtbs = key.needs_dtbs().then(|| prepared.data_to_be_signed().to_vec());
        let signature = self.sign_one(key, &item, prepared.to_be_signed.clone(), dtbs).await?;
        let token = match item.level {
            Level::BB => None,
            _ => {
                self.signature_timestamp(item.level, prepared.timestamp_imprint(&signature).map_err(|e| Error::Internal(e.to_string()))?)?
            }
        };
        Ok(Signed::Xades { item, prepared, signature, token })
    }

    /// PAdES: the PDF with a new revision holding the signature (and, for B-LT, a further one
    /// with the Document Security Store), ETSI EN 319 142-1.
    async fn sign_pdf(&self, key: &DocSigner<'_>, item: DocItem, params: &cades::Params<'_>) -> Result<Signed> {
        let document = item.document.as_deref().unwrap_or_default();
        let bad = |e: cloudsign_ades::AdesError| Error::invalid(format!("Invalid parameter documents: {e}"));
        // The reader owns its copy: it lives on into the second pass (DSS, document time-stamp).
        let mut pdf = cloudsign_ades::pdf::Pdf::open(std::io::Cursor::new(document.to_vec())).map_err(|e| bad(e.into()))?;
        let hash = item.scheme.hash();
        // The placeholder is sized from the real signature: the CMS with a maximum-size value,
        // and the time-stamp token (our TSA's certificates plus its fixed-size content).
        let token_allowance = match item.level {
            Level::BB => 0,
            // A probe token from our TSA (its size does not depend on the imprint) + margin.
            _ => format::timestamp_allowance(self.tsa_token(hash, vec![0; hash.len()])?.len()),
        };
        let reserve = format::pades_reserve(params, 0, token_allowance).map_err(bad)?;
        let placeholder = pades::add_signature(&mut pdf, pdf_kind(item.packaging, params.signing_time), reserve).map_err(bad)?;
        let (before, after) = placeholder.signed_parts();
        let prepared = cades::prepare_pades(&cloudsign_ades::digest_parts(hash, &[document, before, after]), params).map_err(bad)?;
        let dtbs = key.needs_dtbs().then(|| prepared.data_to_be_signed());
        let signature = self.sign_one(key, &item, prepared.to_be_signed.clone(), dtbs).await?;
        let token = self.signature_timestamp(item.level, prepared.timestamp_imprint(&signature))?;
        let cms = prepared.finish(&signature, token.as_deref(), None, None);
        let mut out = document.to_vec();
        out.extend_from_slice(&placeholder.fill(&cms).map_err(|e| Error::Internal(e.to_string()))?);
        if !item.level.long_term() {
            return Ok(Signed::Done(out));
        }
        Ok(Signed::Pades { level: item.level, scheme: item.scheme, pdf, out, token_allowance })
    }
}

/// What makes a signDoc's signature values: a key in the service (software, HSM), or the
/// signer's device, asked once per document for the digest of the structure the service built
/// (the signed attributes, the `ds:SignedInfo`, the JWS signing input) — and sent that structure
/// too when it hashes what it signs (the phone page).
pub(crate) enum DocSigner<'a> {
    /// A key in the service.
    Key(Arc<dyn SigningKey>),
    /// The signer's device.
    Device {
        /// Who asks, until when (the label is each document's).
        ask: DeviceAsk<'a>,
        /// Documents in the call (the label says "k of n").
        documents: usize,
        /// Requests sent so far.
        sent: std::sync::atomic::AtomicUsize,
    },
}

impl<'a> DocSigner<'a> {
    pub(crate) fn device(ask: DeviceAsk<'a>, documents: usize) -> Self {
        DocSigner::Device { ask, documents, sent: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Whether the signer needs the data to be signed besides its digest: a device paired with
    /// `prehashed: false` (WebCrypto signs only what it hashes itself; "DTBS and DTBS/R").
    fn needs_dtbs(&self) -> bool {
        matches!(self, DocSigner::Device { ask, .. } if !ask.device.prehashed)
    }
}

/// The length of an item's JWS signing input (RFC 7515 §5.1), without building it: the
/// protected header (whose length depends on neither the signing time nor the payload) and the
/// payload part, base64url without padding when attached, the document itself when detached.
fn jades_signing_input_len(item: &DocItem, certificate: &[u8], chain: &[Vec<u8>]) -> Result<usize> {
    let n = item.document.as_ref().map_or(0, Vec::len);
    let p = jades::Params { scheme: item.scheme, certificate, chain, signing_time: 0 };
    let (empty, payload) = match item.packaging {
        Packaging::Attached => (jades::prepare_attached(&[], &p), n / 3 * 4 + [0, 2, 3][n % 3]),
        _ => (jades::prepare_detached(&[], &p), n),
    };
    let header = empty.map_err(|e| Error::Internal(e.to_string()))?.signing_input(&[]).len();
    Ok(header + payload)
}

/// What the signer's device shows for one document: its format and level.
fn item_label(item: &DocItem) -> String {
    let (kind, format) = match item.format {
        Format::Pades => ("PDF document", "PAdES"),
        Format::Xades => ("XML document", "XAdES"),
        Format::Jades => ("document", "JAdES"),
        Format::Cades => ("document", "CAdES"),
    };
    format!("{kind}, {format} {} signature", item.level.name())
}

/// One item after the first pass of `Service::sign_docs`: signed and time-stamped, waiting
/// for its validation data and archive time-stamp — or finished.
enum Signed {
    Done(Vec<u8>),
    Jades {
        item: DocItem,
        prepared: jades::Prepared,
        signature: Vec<u8>,
        token: Vec<u8>,
    },
    Cades {
        item: DocItem,
        prepared: cades::Prepared,
        signature: Vec<u8>,
        token: Option<Vec<u8>>,
    },
    Xades {
        item: DocItem,
        prepared: xades::Prepared,
        signature: Vec<u8>,
        token: Option<Vec<u8>>,
    },
    Pades {
        level: Level,
        scheme: SignAlgorithm,
        pdf: cloudsign_ades::pdf::Pdf<std::io::Cursor<Vec<u8>>>,
        out: Vec<u8>,
        token_allowance: usize,
    },
}

impl Signed {
    fn level(&self) -> Option<Level> {
        match self {
            Signed::Done(_) => None,
            Signed::Jades { item, .. } | Signed::Cades { item, .. } | Signed::Xades { item, .. } => Some(item.level),
            Signed::Pades { level, .. } => Some(*level),
        }
    }
}

/// PAdES: an approval signature, or a certification one (DocMDP P=2).
fn pdf_kind(packaging: Packaging, signing_time: i64) -> pades::Kind {
    match packaging {
        Packaging::Certification => pades::Kind::Certification { signing_time, permissions: 2 },
        _ => pades::Kind::Signature { signing_time },
    }
}

/// XAdES: the signature inside the XML, or the document inside the signature.
fn xml_input(packaging: Packaging, document: &[u8]) -> xades::Input<'_> {
    match packaging {
        Packaging::Enveloping => xades::Input::Enveloping { data: document, mime_type: None },
        _ => xades::Input::Enveloped(document),
    }
}

/// Parse what will be signed (a PDF's structure, an XML document) so that a document the
/// service cannot sign is refused as `invalid_request` before anything is consumed.
fn preflight(item: &DocItem, certificate: &[u8], issuing: &[u8]) -> Result<()> {
    let Some(document) = item.document.as_deref() else { return Ok(()) };
    let bad = |e: String| Error::invalid(format!("Invalid parameter documents: {e}"));
    match item.format {
        Format::Pades => {
            let mut pdf = cloudsign_ades::pdf::Pdf::open(std::io::Cursor::new(document)).map_err(|e| bad(e.to_string()))?;
            pades::add_signature(&mut pdf, pdf_kind(item.packaging, 0), 1).map_err(|e| bad(e.to_string()))?;
            if item.level.long_term() {
                // The DSS update reads an existing DSS: a broken one is refused now too.
                pades::add_dss(&mut pdf, &[], &[], &[]).map_err(|e| bad(e.to_string()))?;
            }
        }
        Format::Xades => {
            let chain = [issuing.to_vec()];
            let params = cades::Params { scheme: item.scheme, certificate, chain: &chain, signing_time: 0 };
            xades::prepare(xml_input(item.packaging, document), &params).map_err(|e| bad(e.to_string()))?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length `check_doc` bounds is the length of the signing input the device is sent.
    #[test]
    fn jades_signing_input_len_is_exact() {
        let scheme = SignAlgorithm::Ecdsa(cloudsign_asn1::HashAlgorithm::Sha256);
        let certificate = vec![0x30; 700];
        let chain = vec![vec![0x30; 900]];
        for packaging in [Packaging::Attached, Packaging::Detached] {
            for n in [0, 1, 2, 3, 4, 5, 1000, 65_537] {
                let document: Vec<u8> = (0..n).map(|i| i as u8).collect();
                let p = jades::Params { scheme, certificate: &certificate, chain: &chain, signing_time: 1_800_000_000 };
                let prepared = match packaging {
                    Packaging::Attached => jades::prepare_attached(&document, &p),
                    _ => jades::prepare_detached(&document, &p),
                }
                .unwrap();
                let item = DocItem {
                    format: Format::Jades,
                    digest: vec![0; 32],
                    document: Some(document.clone()),
                    packaging,
                    scheme,
                    level: Level::BB,
                };
                let len = jades_signing_input_len(&item, &certificate, &chain).unwrap();
                assert_eq!(len, prepared.signing_input(&document).len(), "{packaging:?}, {n} bytes");
            }
        }
    }
}
