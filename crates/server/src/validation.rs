//! The validation service in the spirit of ETSI TS 119 442 (JSON over HTTP):
//! `POST /validation/v1/verify` takes a signed document (or a signature and its detached
//! content) and returns the report `cloudsign verify --json` prints. `GET
//! /validation/v1/openapi.json` describes it.
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
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

pub(crate) async fn verify(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
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

pub(crate) async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], include_str!("../assets/validation-openapi.json")).into_response()
}
