//! CSC API v2 `signatures/*` (§11.10 signHash, §11.11 signDoc, §11.13 timestamp).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use cloudsign_csc::v2::*;
use cloudsign_csc::{HashAlgorithm, SignAlgorithm, b64};
use cloudsign_domain::asynchronous::AsyncRequest;
use cloudsign_domain::{DocItem, Format, Level, Packaging, SignDocInput};

use crate::error::{ApiError, v2};
use crate::extract::{Bearer, Caller, CscJson, SigningBearer, with_client_data};
use crate::{AppState, shared};

type ApiResult<T> = Result<Json<T>, ApiError>;

/// `operationMode` (§11.10, §11.11; CSC API 2.2.0.0): `S` (default) or `A`, asynchronous.
/// `Ok(Some(..))`: asynchronous, with its members.
fn operation_mode(mode: Option<&str>, validity_period: Option<u64>, response_uri: Option<&str>) -> Result<Option<AsyncRequest>, ApiError> {
    match mode {
        None | Some("S") => {
            // Members that only mean something in mode A would be silently ignored: refuse.
            if response_uri.is_some() {
                return Err(ApiError::invalid("Invalid parameter response_uri: only with operationMode A"));
            }
            Ok(None)
        }
        Some("A") => Ok(Some(AsyncRequest { validity_period_ms: validity_period, response_uri: response_uri.map(String::from) })),
        Some(_) => Err(ApiError::invalid("Invalid parameter operationMode")),
    }
}

/// The answer to an accepted asynchronous request: 200 with `{"responseID": ...}`, the
/// method's own output in mode A (v2.0.0.2 §11.10 output; no 2.2 source shows another status,
/// and the 2.2 clients read 200 only).
fn accepted(response_id: String) -> Response {
    Json(AsyncResponse { response_id }).into_response()
}

/// §11.10.
pub(super) async fn sign_hash(
    State(state): State<AppState>,
    bearer: SigningBearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<SignHashRequest>,
) -> Result<Response, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    let mode = operation_mode(req.operation_mode.as_deref(), req.validity_period, req.response_uri.as_deref())?;
    let input = shared::sign_hash_input(
        req.credential_id,
        req.sad,
        &req.hashes,
        &req.sign_algo,
        req.hash_algorithm_oid.as_deref(),
        req.sign_algo_params.as_deref(),
    )?;
    if let Some(mode) = mode {
        state.service.start_async_worker();
        // A session from the cache is re-read: the asynchronous path has no guarded fast path.
        let session = if bearer.remembered { state.service.authenticate(&bearer.token).await.map_err(v2)? } else { bearer.session };
        let id = state.service.sign_hash_async(&session, &ctx, input, mode).await.map_err(v2)?;
        return Ok(accepted(id));
    }
    let signatures = state.service.sign_hash_bearer(&bearer.token, bearer.session, bearer.remembered, &ctx, input).await.map_err(v2)?;
    Ok(shared::signatures(&signatures).into_response())
}

/// §11.13.
pub(super) async fn timestamp(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<TimestampRequest>,
) -> ApiResult<TimestampResponse> {
    shared::timestamp(&state, &session, ctx, req, v2).await
}

/// The signing options of one `documentDigests`/`documents` element (§11.11): CAdES (B-B, B-T,
/// B-LT) or JAdES (B-B); `attached_default` is the CAdES envelope when none is named.
fn doc_options(
    o: &SignatureOptions,
    hash_oid: Option<&str>,
    from_document: bool,
) -> Result<(Format, SignAlgorithm, Level, Packaging), ApiError> {
    let format = match o.signature_format.to_ascii_uppercase().as_str() {
        "C" => Format::Cades,
        "X" => Format::Xades,
        "P" => Format::Pades,
        "J" => Format::Jades,
        other => return Err(ApiError::invalid(format!("Invalid parameter signature_format: {other} is not supported (C, X, P, J)"))),
    };
    let level = match o.conformance_level.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("ades-b-b") | Some("ades-b") => Level::BB,
        Some("ades-b-t") | Some("ades-t") => Level::BT,
        Some("ades-b-lt") | Some("ades-lt") => Level::BLT,
        Some("ades-b-lta") | Some("ades-lta") => Level::BLTA,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid parameter conformance_level: Ades-B-B, Ades-B-T, Ades-B-LT and Ades-B-LTA are supported",
            ));
        }
    };
    if o.signed_props.is_some() {
        return Err(ApiError::invalid("Invalid parameter signed_props: additional signed attributes are not supported"));
    }
    // §11.11 signed_envelope_property, by format; the default when absent.
    let envelope = o.signed_envelope_property.as_deref().map(str::to_ascii_lowercase);
    let packaging = match (format, envelope.as_deref()) {
        (Format::Jades, None | Some("detached")) => Packaging::Detached,
        (Format::Jades, Some("attached")) => Packaging::Attached,
        (Format::Jades, Some(_)) => {
            return Err(ApiError::invalid("Invalid parameter signed_envelope_property: Detached or Attached for JAdES"));
        }
        (Format::Cades, None) if from_document => Packaging::Attached,
        (Format::Cades, None | Some("detached")) => Packaging::Detached,
        (Format::Cades, Some("attached")) => Packaging::Attached,
        (Format::Cades, Some(_)) => {
            return Err(ApiError::invalid("Invalid parameter signed_envelope_property: Detached or Attached for CAdES"));
        }
        (Format::Xades, None | Some("enveloped")) => Packaging::Enveloped,
        (Format::Xades, Some("enveloping")) => Packaging::Enveloping,
        (Format::Xades, Some(_)) => {
            return Err(ApiError::invalid("Invalid parameter signed_envelope_property: Enveloped or Enveloping for XAdES"));
        }
        (Format::Pades, None | Some("revision")) => Packaging::Enveloped,
        (Format::Pades, Some("certification")) => Packaging::Certification,
        (Format::Pades, Some(_)) => {
            return Err(ApiError::invalid("Invalid parameter signed_envelope_property: Revision or Certification for PAdES"));
        }
    };
    let params = match o.sign_algo_params.as_deref() {
        Some(p) => Some(b64::decode_lenient(p).ok_or_else(|| ApiError::invalid("Invalid parameter signAlgoParams"))?),
        None => None,
    };
    // A `documents` element names no digest algorithm: rsaEncryption alone then means SHA-256.
    let scheme = SignAlgorithm::resolve(&o.sign_algo, hash_oid, params.as_deref())
        .or_else(|e| match hash_oid {
            None => SignAlgorithm::resolve(&o.sign_algo, Some(HashAlgorithm::Sha256.oid()), params.as_deref()).map_err(|_| e),
            Some(_) => Err(e),
        })
        .map_err(ApiError::invalid)?;
    Ok((format, scheme, level, packaging))
}

/// §11.11: signatures come back in request order, detached ones in `SignatureObject`, attached
/// ones in `DocumentWithSignature`.
pub(super) async fn sign_doc(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<SignDocRequest>,
) -> Result<Response, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    let mode = operation_mode(req.operation_mode.as_deref(), req.validity_period, req.response_uri.as_deref())?;
    let credential_id = match (req.credential_id, req.signature_qualifier) {
        (Some(id), _) => id,
        (None, Some(_)) => return Err(ApiError::invalid("Invalid parameter signatureQualifier: give credentialID")),
        (None, None) => return Err(ApiError::invalid("Missing (or invalid type) string parameter credentialID")),
    };
    if req.document_digests.is_none() && req.documents.is_none() && req.signature_creation_request.is_none() {
        return Err(ApiError::invalid("Missing documentDigests or documents (or the 2.2 signatureCreationRequest)"));
    }
    let mut items = Vec::new();
    for d in req.document_digests.iter().flatten() {
        let (format, scheme, level, packaging) = doc_options(&d.options, d.hash_algorithm_oid.as_deref(), false)?;
        if matches!(format, Format::Jades | Format::Xades | Format::Pades) {
            return Err(ApiError::invalid("Invalid parameter documentDigests: JAdES, XAdES and PAdES are signed from documents"));
        }
        if packaging != Packaging::Detached {
            return Err(ApiError::invalid("Invalid parameter signed_envelope_property: a digest can only be signed Detached"));
        }
        let hashes = d
            .hashes
            .as_deref()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ApiError::invalid("Invalid parameter documentDigests: empty hashes"))?;
        for digest in shared::decode_hashes(hashes)? {
            items.push(DocItem { format, digest, document: None, packaging, scheme, level });
        }
    }
    for d in req.documents.iter().flatten() {
        let (format, scheme, level, packaging) = doc_options(&d.options, None, true)?;
        let document =
            b64::decode_lenient(&d.document).ok_or_else(|| ApiError::invalid("Invalid parameter documents: invalid Base64 document"))?;
        let digest = cloudsign_domain::digest_of(scheme.hash(), &document);
        items.push(DocItem { format, digest, document: Some(document), packaging, scheme, level });
    }
    for r in req.signature_creation_request.iter().flatten() {
        items.extend(creation_request_items(r, req.sign_algo.as_deref(), req.hash_algorithm_oid.as_deref())?);
    }
    // Signatures that contain their document come back in DocumentWithSignature.
    let attached: Vec<bool> = items.iter().map(|i| i.packaging != Packaging::Detached).collect();
    let input = SignDocInput { credential_id, sad: req.sad, items };
    let validation_info = req.return_validation_info.unwrap_or(false);
    if let Some(mode) = mode {
        state.service.start_async_worker();
        let id = state.service.sign_doc_async(&session, &ctx, input, validation_info, mode).await.map_err(v2)?;
        return Ok(accepted(id));
    }
    let signed = state.service.sign_doc(&session, &ctx, input).await.map_err(v2)?;
    crate::asynchronous::sign_doc_output(&state, &signed, &attached, validation_info).await
}

/// The items of one 2.2 `signatureCreationRequest` (CSC Data Model 1.0.0 §9.3): a document by
/// content (as a `documents` element), or its representations (`hashes`, as a
/// `documentDigests` element). The AdES parameters come from `adesParameters` (TS 119 432) or
/// the flat members (Data Model), the algorithms from the element or the request.
fn creation_request_items(r: &SignatureCreationRequest, sign_algo: Option<&str>, hash_oid: Option<&str>) -> Result<Vec<DocItem>, ApiError> {
    let nested = r.ades_parameters.as_ref();
    let pick = |nested: Option<&Option<String>>, flat: &Option<String>| nested.and_then(|n| n.clone()).or_else(|| flat.clone());
    let format = pick(nested.map(|n| &n.signature_format), &r.flat.signature_format)
        .ok_or_else(|| ApiError::invalid("Missing (or invalid type) string parameter signature_format in signatureCreationRequest"))?;
    let options = SignatureOptions {
        signature_format: format,
        conformance_level: pick(nested.map(|n| &n.conformance_level), &r.flat.conformance_level),
        sign_algo: r
            .sign_algo
            .clone()
            .or_else(|| sign_algo.map(String::from))
            .ok_or_else(|| ApiError::invalid("Missing (or invalid type) string parameter signAlgo in signatureCreationRequest"))?,
        sign_algo_params: r.sign_algo_params.clone(),
        signed_props: nested.and_then(|n| n.signed_props.clone()).or_else(|| r.flat.signed_props.clone()),
        signed_envelope_property: pick(nested.map(|n| &n.signed_envelope_property), &r.flat.signed_envelope_property),
    };
    if r.href.is_some() {
        return Err(ApiError::invalid("Invalid parameter href: documents by reference are not supported; send the document or its hashes"));
    }
    match (&r.document, &r.hashes) {
        (Some(document), None) => {
            let (format, scheme, level, packaging) = doc_options(&options, None, true)?;
            let document = b64::decode_lenient(document)
                .ok_or_else(|| ApiError::invalid("Invalid parameter document: invalid Base64 document in signatureCreationRequest"))?;
            let digest = cloudsign_domain::digest_of(scheme.hash(), &document);
            Ok(vec![DocItem { format, digest, document: Some(document), packaging, scheme, level }])
        }
        (None, Some(hashes)) if !hashes.is_empty() => {
            let (format, scheme, level, packaging) = doc_options(&options, r.hash_algorithm_oid.as_deref().or(hash_oid), false)?;
            if matches!(format, Format::Jades | Format::Xades | Format::Pades) {
                return Err(ApiError::invalid("Invalid parameter hashes: JAdES, XAdES and PAdES are signed from documents"));
            }
            if packaging != Packaging::Detached {
                return Err(ApiError::invalid("Invalid parameter signed_envelope_property: a digest can only be signed Detached"));
            }
            Ok(shared::decode_hashes(hashes)?
                .into_iter()
                .map(|digest| DocItem { format, digest, document: None, packaging, scheme, level })
                .collect())
        }
        _ => Err(ApiError::invalid("Invalid parameter signatureCreationRequest: give one of document, href or hashes")),
    }
}
