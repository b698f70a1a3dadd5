//! CSC API 2.2.0.0 on-demand credentials: `credentials/create` (§11.4), `credentials/delete` (§11.5).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use cloudsign_csc::v2::{CreateCredentialRequest, CredentialInfo, DeleteCredentialRequest};
use cloudsign_domain::ondemand::CreateInput;

use crate::AppState;
use crate::error::{ApiError, v2};
use crate::extract::{Bearer, CscJson};

/// The methods this module adds to `info.methods`.
#[allow(dead_code)] // listed by `info` once the methods exist
pub(crate) const METHODS: &[&str] = &["credentials/create", "credentials/delete"];

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/credentials/create", post(create)).route("/credentials/delete", post(delete))
}

/// The common name from `subjectData`: OIDC claims (ETSI) or Q's `givenName`/`surname`.
fn subject_common_name(data: &serde_json::Value) -> Option<String> {
    let get = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty());
    if let Some(cn) = get("commonName").or_else(|| get("name")) {
        return Some(cn.to_owned());
    }
    let given = get("given_name").or_else(|| get("givenName"));
    let family = get("family_name").or_else(|| get("surname"));
    match (given, family) {
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        (Some(x), None) | (None, Some(x)) => Some(x.to_owned()),
        _ => None,
    }
}

async fn create(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    CscJson(req): CscJson<CreateCredentialRequest>,
) -> Result<Json<CredentialInfo>, ApiError> {
    let subject = req.credential_creation_request.and_then(|c| c.subject_data);
    let mut input = CreateInput { has_subject_data: subject.is_some(), ..Default::default() };
    if let Some(data) = &subject {
        input.subject_common_name =
            Some(subject_common_name(data).ok_or_else(|| ApiError::invalid("Invalid parameter subjectData: no name"))?);
    }
    let id = state.service.create_on_demand(&session, input).await.map_err(v2)?;
    let view = state.service.credential_info(&session, &id).await.map_err(v2)?;
    Ok(Json(crate::v2::created_credential(view, &state.service.config().lang)))
}

/// Answers 204 No Content (ETSI TS 119 432 7.9.3.1, citing CSC §11.5 Output).
async fn delete(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    CscJson(req): CscJson<DeleteCredentialRequest>,
) -> Result<StatusCode, ApiError> {
    let reason = req.revocation_reason.or(req.credential_deletion_request.and_then(|d| d.revocation_reason));
    state.service.delete_on_demand(&session, &req.credential_id, reason).await.map_err(v2)?;
    Ok(StatusCode::NO_CONTENT)
}
