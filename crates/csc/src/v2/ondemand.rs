//! CSC API 2.2.0.0 `credentials/create` and `credentials/delete` bodies.

use serde::{Deserialize, Serialize};

/// §11.4 `credentialCreationRequest`, in the `credentials/create` body and in the RAR
/// `authorization_details` of type credential creation (csc-api-2.2.md §4), where it is
/// echoed as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::CredentialCreationRequest))]
#[serde(rename_all = "camelCase")]
pub struct CredentialCreationRequest {
    /// Requested certificate policy (OID). The built-in CA issues under none, so a request
    /// naming one is refused rather than answered with a certificate outside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_policy: Option<String>,
    /// Free JSON object: OIDC claim names (ETSI) or `givenName`/`surname` (csc-api-2.2.md §8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_data: Option<serde_json::Value>,
}

/// §11.4 request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCredentialRequest {
    /// The creation request (required by ETSI and Q; a missing one is taken as empty).
    pub credential_creation_request: Option<CredentialCreationRequest>,
    /// Free text for the audit.
    pub client_data: Option<String>,
}

/// Data Model 9.2 revocation fields, at top level or in a wrapper (both accepted, §9).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionRevocation {
    /// Whether to revoke (the certificate is always revoked: its key is gone).
    pub revoke: Option<bool>,
    /// RFC 5280 CRLReason code.
    pub revocation_reason: Option<i64>,
}

/// §11.5 request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteCredentialRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// Top-level form.
    pub revoke: Option<bool>,
    /// Top-level form.
    pub revocation_reason: Option<i64>,
    /// Wrapper form.
    pub credential_deletion_request: Option<DeletionRevocation>,
    /// Free text for the audit.
    pub client_data: Option<String>,
}
