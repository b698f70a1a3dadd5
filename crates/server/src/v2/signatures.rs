//! CSC API v2 `signatures/*` (§11.10 signHash, §11.11 signDoc, §11.13 timestamp).

use axum::Json;
use axum::extract::State;
use cloudsign_csc::v2::*;
use cloudsign_csc::{HashAlgorithm, SignAlgorithm, b64};
use cloudsign_domain::{DocItem, Format, Level, Packaging, SignDocInput};

use crate::error::{ApiError, v2};
use crate::extract::{Bearer, Caller, CscJson, SigningBearer, with_client_data};
use crate::{AppState, shared};

type ApiResult<T> = Result<Json<T>, ApiError>;

/// `operationMode` (§11.10, §11.11): only `S`, synchronous, is offered.
fn synchronous_only(mode: Option<&str>) -> Result<(), ApiError> {
    match mode {
        None | Some("S") => Ok(()),
        Some("A") => Err(ApiError::invalid("Invalid parameter operationMode: asynchronous mode is not supported")),
        Some(_) => Err(ApiError::invalid("Invalid parameter operationMode")),
    }
}

/// §11.10.
pub(super) async fn sign_hash(
    State(state): State<AppState>,
    bearer: SigningBearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<SignHashRequest>,
) -> Result<shared::Signatures, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    synchronous_only(req.operation_mode.as_deref())?;
    let input = shared::sign_hash_input(
        req.credential_id,
        req.sad,
        &req.hashes,
        &req.sign_algo,
        req.hash_algorithm_oid.as_deref(),
        req.sign_algo_params.as_deref(),
    )?;
    let signatures = state.service.sign_hash_bearer(&bearer.token, bearer.session, bearer.remembered, &ctx, input).await.map_err(v2)?;
    Ok(shared::signatures(&signatures))
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
) -> ApiResult<SignDocResponse> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    synchronous_only(req.operation_mode.as_deref())?;
    let credential_id = match (req.credential_id, req.signature_qualifier) {
        (Some(id), _) => id,
        (None, Some(_)) => return Err(ApiError::invalid("Invalid parameter signatureQualifier: give credentialID")),
        (None, None) => return Err(ApiError::invalid("Missing (or invalid type) string parameter credentialID")),
    };
    if req.document_digests.is_none() && req.documents.is_none() {
        return Err(ApiError::invalid("Missing documentDigests or documents"));
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
    // Signatures that contain their document come back in DocumentWithSignature.
    let attached: Vec<bool> = items.iter().map(|i| i.packaging != Packaging::Detached).collect();
    let input = SignDocInput { credential_id, sad: req.sad, items };
    let signed = state.service.sign_doc(&session, &ctx, input).await.map_err(v2)?;
    let (mut objects, mut documents) = (Vec::new(), Vec::new());
    for (cms, attached) in signed.iter().zip(attached) {
        if attached { documents.push(b64::encode(cms)) } else { objects.push(b64::encode(cms)) }
    }
    let validation_info = if req.return_validation_info.unwrap_or(false) {
        // What a verifier needs that is not in the signatures: the root, and the current CRL.
        let crl = state.service.crl().await.map_err(v2)?;
        Some(serde_json::json!({"certificates": [b64::encode(state.service.ca_chain()[1])], "crl": [b64::encode(&crl)]}))
    } else {
        None
    };
    Ok(Json(SignDocResponse {
        document_with_signature: (!documents.is_empty()).then_some(documents),
        signature_object: (!objects.is_empty()).then_some(objects),
        validation_info,
    }))
}
