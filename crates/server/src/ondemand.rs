//! CSC API 2.2.0.0 on-demand credentials: `credentials/create` (§11.4), `credentials/delete` (§11.5).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use cloudsign_csc::v2::{CreateCredentialRequest, CredentialInfo, DeleteCredentialRequest};
use cloudsign_domain::ondemand::{CreateInput, CreationRequest};

use crate::AppState;
use crate::error::{ApiError, v2};
use crate::extract::{CscJson, ManagementBearer};

/// The methods this module adds to `info.methods`.
pub(crate) const METHODS: &[&str] = &["credentials/create", "credentials/delete"];

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/credentials/create", post(create)).route("/credentials/delete", post(delete))
}

async fn create(
    State(state): State<AppState>,
    ManagementBearer(caller): ManagementBearer,
    CscJson(req): CscJson<CreateCredentialRequest>,
) -> Result<Json<CredentialInfo>, ApiError> {
    let asked = req.credential_creation_request.unwrap_or_default();
    let subject_data = match asked.subject_data {
        None => None,
        Some(serde_json::Value::Object(m)) => Some(m),
        Some(_) => return Err(ApiError::invalid("Invalid parameter subjectData: not a JSON object")),
    };
    let input = CreateInput { request: CreationRequest { certificate_policy: asked.certificate_policy, subject_data } };
    let id = state.service.create_on_demand(&caller, input).await.map_err(v2)?;
    let view = state.service.credential_info(&caller.session, &id).await.map_err(v2)?;
    Ok(Json(crate::v2::created_credential(view, &state.service.config().lang)))
}

/// Answers 204 No Content (ETSI TS 119 432 7.9.3.1, citing CSC §11.5 Output).
async fn delete(
    State(state): State<AppState>,
    ManagementBearer(caller): ManagementBearer,
    CscJson(req): CscJson<DeleteCredentialRequest>,
) -> Result<StatusCode, ApiError> {
    let reason = req.revocation_reason.or(req.credential_deletion_request.and_then(|d| d.revocation_reason));
    state.service.delete_on_demand(&caller, &req.credential_id, reason).await.map_err(v2)?;
    Ok(StatusCode::NO_CONTENT)
}
