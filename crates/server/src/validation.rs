//! The validation service in the spirit of ETSI TS 119 442 (JSON over HTTP):
//! `POST /validation/v1/verify` takes a signed document (or a signature and its detached
//! content) and returns the report `cloudsign verify --json` prints. The service's OpenAPI
//! document (`/openapi.json`, also at the old `/validation/v1/openapi.json`) describes it.
//!
//! Trust anchors: the service's own root, plus any the request names. Revocation data: what the
//! signatures embed, and for certificates this service issued, its own OCSP responses and CRLs,
//! produced in-process. Nothing is fetched from URLs a request supplies (no server-side request
//! forgery through crafted certificates).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cloudsign_csc::b64;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;

/// The request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = validation::VerifyRequest)]
pub(crate) struct VerifyRequest {
    /// The signed document or the signature (base64).
    document: String,
    /// A detached signature's content (base64).
    #[serde(default)]
    detached_content: Option<String>,
    /// A policy name (`strict` when absent).
    #[serde(default)]
    policy: Option<String>,
    /// Extra trust anchors (base64 DER certificates).
    #[serde(default)]
    trust_anchors: Vec<String>,
    /// Revocation evidence the caller obtained (base64 DER CRLs).
    #[serde(default)]
    crls: Vec<String>,
    /// Revocation evidence the caller obtained (base64 DER OCSP responses).
    #[serde(default)]
    ocsp_responses: Vec<String>,
}

fn bad(description: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_request", "error_description": description.into()}))).into_response()
}

pub(crate) async fn verify(
    State(state): State<AppState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    // A body over the limit is a JSON error like every other refusal, not axum's plain text.
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({"error": "invalid_request", "error_description": "Request body too large"})),
            )
                .into_response();
        }
        Err(_) => return bad("The request body could not be read"),
    };
    let req: VerifyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("Invalid request: {e}")),
    };
    let Some(document) = b64::decode_lenient(&req.document) else { return bad("Invalid parameter document: not base64") };
    let detached = match req.detached_content.as_deref().map(b64::decode_lenient) {
        Some(None) => return bad("Invalid parameter detachedContent: not base64"),
        Some(Some(d)) => Some(d),
        None => None,
    };
    let dir = std::env::var_os("CLOUDSIGN_VALIDATION_POLICY_DIR").map(std::path::PathBuf::from);
    let policy_name = req.policy.as_deref().unwrap_or("strict");
    // Names only through the API: no paths.
    if policy_name.ends_with(".toml") {
        return bad("Invalid parameter policy: a policy name");
    }
    let policy = match cloudsign_validation::policy::Policy::load(policy_name, dir.as_deref()) {
        Ok(p) => p,
        Err(e) => return bad(format!("Invalid parameter policy: {e}")),
    };
    let mut anchors = cloudsign_validation::path::TrustAnchors::default();
    if let Ok(root) = cloudsign_validation::x509::Certificate::parse(state.service.ca_chain()[1]) {
        anchors.add(root);
    }
    for a in &req.trust_anchors {
        match b64::decode_lenient(a).map(|d| cloudsign_validation::x509::Certificate::parse(&d)) {
            Some(Ok(c)) => anchors.add(c),
            _ => return bad("Invalid parameter trustAnchors: not a base64 DER certificate"),
        }
    }
    for path in &policy.trust {
        if let Ok(pem) = std::fs::read_to_string(path)
            && let Ok(more) = cloudsign_validation::path::TrustAnchors::from_pem(&pem)
        {
            for c in more.certificates() {
                anchors.add(c.clone());
            }
        }
    }
    // This service's own status for the certificates it issued (and its issuing CA), and what
    // the caller brings.
    let mut fetched = cloudsign_validation::file::Fetched::default();
    for (list, into, what) in [(&req.crls, &mut fetched.crls, "crls"), (&req.ocsp_responses, &mut fetched.ocsps, "ocspResponses")] {
        for item in list {
            match b64::decode_lenient(item) {
                Some(der) => into.push(der),
                None => return bad(format!("Invalid parameter {what}: not base64")),
            }
        }
    }
    for cert in cloudsign_validation::file::certificates_in_bytes(&document) {
        if let Ok(r) = state.service.ocsp_for(&cert).await {
            fetched.ocsps.push(r);
        }
    }
    if let Ok(arl) = state.service.arl() {
        fetched.crls.push(arl);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    // Validation is CPU work: off the async workers.
    let result = tokio::task::spawn_blocking(move || {
        let inputs = cloudsign_validation::file::Inputs { anchors: &anchors, policy: &policy, fetched: &fetched, now };
        cloudsign_validation::file::validate_bytes(&document, detached.as_deref(), &inputs).map(|r| (r, policy.name.clone()))
    })
    .await;
    match result {
        Ok(Ok((reports, policy))) => Json(json!({"policy": policy, "signatures": reports})).into_response(),
        Ok(Err(e)) => bad(format!("Invalid parameter document: {e}")),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "server_error", "error_description": "validation failed"})))
            .into_response(),
    }
}

/// `GET /validation/v1/openapi.json`, the address this API's own document had: now the whole
/// service's document (`crate::openapi`), which includes this API.
pub(crate) async fn openapi() -> Response {
    crate::openapi::openapi().await
}

/// The report's schemas for the OpenAPI document. The report types live in
/// `cloudsign-validation`, which knows nothing of OpenAPI, so they are written here, as
/// `cloudsign verify --json` prints them (`engine.rs`: `SignatureReport`, `TimestampReport`,
/// `CertificateReport`, `PdfCoverage`).
pub(crate) fn report_schemas() -> Vec<(&'static str, serde_json::Value)> {
    let string = json!({"type": "string"});
    let nullable = |t: &str| json!({"type": [t, "null"]});
    vec![
        (
            "validation.Report",
            json!({"type": "object", "required": ["policy", "signatures"], "properties": {
                "policy": string,
                "signatures": {"type": "array", "items": {"$ref": "#/components/schemas/validation.SignatureReport"}},
            }}),
        ),
        (
            "validation.SignatureReport",
            json!({"type": "object", "required": ["id", "format", "indication", "errors"], "properties": {
                "id": {"type": "string", "description": "PDF field name, or the signature's position."},
                "format": {"type": "string", "description": "PAdES, PAdES document time-stamp, CAdES, XAdES, JAdES."},
                "indication": {"type": "string", "enum": ["TOTAL-PASSED", "TOTAL-FAILED", "INDETERMINATE"]},
                "sub_indication": {"type": "string", "description": "ETSI EN 319 102-1 §5.1.3, e.g. HASH_FAILURE, REVOKED, TRY_LATER."},
                "errors": {"type": "array", "items": string},
                "signer": nullable("string"),
                "key": nullable("string"),
                "key_bits": nullable("integer"),
                "digest_algorithm": nullable("string"),
                "claimed_signing_time": nullable("string"),
                "proven_signing_time": nullable("string"),
                "timestamps": {"type": "array", "items": {"type": "object"}},
                "chain": {"type": "array", "items": {"type": "object"}},
                "checks": {"type": "array", "description": "The checks of ETSI EN 319 102-1 §5.2 made, each with its outcome.", "items": {
                    "type": "object", "required": ["name", "outcome", "detail"], "properties": {
                        "name": string,
                        "outcome": {"type": "string", "enum": ["passed", "failed", "indeterminate", "not_checked"]},
                        "detail": string,
                    }}},
                "level": {"type": ["string", "null"], "description": "B-B, B-T, B-LT, B-LTA."},
                "pdf": {"type": "object", "properties": {
                    "byte_range": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
                    "covers_whole_file": {"type": "boolean"},
                    "later_revisions": {"type": "integer"},
                    "changes": {"type": "array", "items": string},
                }},
            }}),
        ),
    ]
}
