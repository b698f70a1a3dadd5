//! The client-authenticated endpoints: `oauth2/token` (RFC 6749 §4.1.3, §4.4, §6),
//! `oauth2/revoke` (RFC 7009), `oauth2/pushed_authorize` (RFC 9126), and the authorization
//! server metadata (RFC 8414).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use cloudsign_csc::b64;
use cloudsign_csc::oauth::{
    AnyAuthorizationDetail, AuthorizationDetail, AuthorizationServerMetadata, AuthorizeRequest, CredentialCreationDetail,
    CredentialDeletionDetail, DocumentDigest, ErrorCode, PushedAuthorizationResponse, RAR_CREDENTIAL, RAR_CREDENTIAL_2025,
    RAR_CREDENTIAL_CREATION, RAR_CREDENTIAL_DELETION, RevocationRequest, SCOPE_CREDENTIAL_CREATION, SCOPE_CREDENTIAL_DELETION,
    TokenRequest, TokenResponse,
};
use cloudsign_csc::v2::CredentialCreationRequest;
use cloudsign_domain::oauth::{ClientAuth, CredentialGrant, IssuedToken, ManagementGrant, OAuthError};
use cloudsign_domain::ondemand::CredentialManagement;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::{Params, oauth_error, parse};
use crate::AppState;
use crate::extract::Caller;

/// RFC 6749 §2.3.1: HTTP Basic (id and secret form-encoded, then base64) or the body, not both.
fn client_auth(headers: &HeaderMap, p: &Params) -> Result<ClientAuth, OAuthError> {
    let invalid_client = |d: &str| OAuthError::new(ErrorCode::InvalidClient, d);
    if p.get("client_assertion").is_some() || p.get("client_assertion_type").is_some() {
        return Err(invalid_client("Client assertions are not supported: use client_secret_basic or client_secret_post"));
    }
    let header = headers.get(AUTHORIZATION).and_then(|h| h.to_str().ok());
    match header {
        Some(h) => {
            let encoded = h.strip_prefix("Basic ").ok_or_else(|| invalid_client("Malformed Authorization header"))?;
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| invalid_client("Malformed Authorization header"))?,
            );
            let text = std::str::from_utf8(&decoded).map_err(|_| invalid_client("Malformed Authorization header"))?;
            let (id, secret) = text.split_once(':').ok_or_else(|| invalid_client("Malformed Authorization header"))?;
            let decode = |s: &str| -> Result<String, OAuthError> {
                let pairs: Vec<(String, String)> =
                    serde_urlencoded::from_str(&format!("v={s}")).map_err(|_| invalid_client("Malformed Authorization header"))?;
                Ok(pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default())
            };
            if p.get("client_secret").is_some() {
                return Err(OAuthError::new(ErrorCode::InvalidRequest, "Use one client authentication method"));
            }
            let id = decode(id)?;
            if p.get("client_id").is_some_and(|b| b != id) {
                return Err(OAuthError::new(ErrorCode::InvalidRequest, "client_id differs from the Authorization header"));
            }
            Ok(ClientAuth { client_id: Some(id), secret: Some(Zeroizing::new(decode(secret)?)) })
        }
        None => Ok(ClientAuth {
            client_id: p.get("client_id").map(String::from),
            secret: p.get("client_secret").map(|s| Zeroizing::new(s.to_string())),
        }),
    }
}

/// The form of a client-authenticated endpoint (token, revoke, PAR) and its client
/// authentication (RFC 6749 §3.2: `application/x-www-form-urlencoded` only).
fn client_request<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<(T, ClientAuth), OAuthError> {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthError::new(ErrorCode::InvalidRequest, "Content-Type must be application/x-www-form-urlencoded"));
    }
    let (p, request) = parse(body).map_err(|m| OAuthError::new(ErrorCode::InvalidRequest, m))?;
    let auth = client_auth(headers, &p)?;
    Ok((request, auth))
}

/// The RAR grant as the token response echoes it (CSC v2 §8.3.3): in the type the client
/// used, with `credentialID` and an integer `numSignatures` always (the 2.2 Kotlin client
/// needs both, csc-api-2.2.md §4) and each `hashType` as the client spelt it.
fn authorization_detail(g: &CredentialGrant) -> AuthorizationDetail {
    AuthorizationDetail {
        kind: g.rar_type.clone().unwrap_or_else(|| RAR_CREDENTIAL.into()),
        credential_id: Some(g.credential_id.clone()),
        signature_qualifier: None,
        document_digests: g
            .documents
            .iter()
            .map(|d| DocumentDigest { hash: b64::encode(&d.digest), label: d.label.clone(), hash_type: d.hash_type.clone() })
            .collect(),
        hash_algorithm_oid: g.hash_algorithm.clone().unwrap_or_default(),
        num_signatures: Some(g.num_signatures),
    }
}

/// A 2.2 credential-management grant asked for with RAR, echoed as the client sent it (the
/// type in its spelling, the creation request's members as given).
fn management_detail(m: &ManagementGrant) -> Option<AnyAuthorizationDetail> {
    let kind = m.rar_type.clone()?;
    Some(match &m.grant {
        CredentialManagement::Creation { request } => {
            let request = request.clone().unwrap_or_default();
            AnyAuthorizationDetail::CredentialCreation(CredentialCreationDetail {
                kind,
                credential_creation_request: CredentialCreationRequest {
                    certificate_policy: request.certificate_policy,
                    subject_data: request.subject_data.map(serde_json::Value::Object),
                },
            })
        }
        CredentialManagement::Deletion { credential_id } => {
            AnyAuthorizationDetail::CredentialDeletion(CredentialDeletionDetail { kind, credential_id: credential_id.clone() })
        }
    })
}

fn token_response(t: IssuedToken) -> TokenResponse {
    let g = t.credential.as_ref();
    let m = t.management.as_ref();
    let scope = match (g, m) {
        (Some(_), _) => "credential",
        (None, Some(m)) => m.scope(),
        (None, None) => "service",
    };
    let deletes = m.and_then(|m| match &m.grant {
        CredentialManagement::Deletion { credential_id } => Some(credential_id.clone()),
        CredentialManagement::Creation { .. } => None,
    });
    let details = match (g, m) {
        (Some(g), _) => g.rar.then(|| vec![AnyAuthorizationDetail::Credential(authorization_detail(g))]),
        (None, Some(m)) => management_detail(m).map(|d| vec![d]),
        (None, None) => None,
    };
    TokenResponse {
        scope: scope.into(),
        access_token: t.access_token,
        // CSC v1 §8.3.3: a credential token asked for with v1's `hash` is of type SAD.
        token_type: if g.is_some_and(|g| g.v1) { "SAD" } else { "Bearer" }.into(),
        expires_in: t.expires_in,
        refresh_token: t.refresh_token,
        credential_id: g.map(|g| g.credential_id.clone()).or(deletes),
        num_signatures: g.map(|g| g.num_signatures),
        authorization_details: details,
    }
}

/// `POST oauth2/token`.
pub(super) async fn token(State(state): State<AppState>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> Response {
    let (request, auth) = match client_request::<TokenRequest>(&headers, &body) {
        Ok(r) => r,
        Err(e) => return oauth_error(e),
    };
    match state.service.token(&ctx, &auth, &request).await {
        Ok(t) => {
            // RFC 6749 §5.1: the answer carries tokens, so it is never cached.
            let mut r = Json(token_response(t)).into_response();
            r.headers_mut().insert("pragma", HeaderValue::from_static("no-cache"));
            r
        }
        Err(e) => oauth_error(e),
    }
}

/// `POST oauth2/revoke` (204, as CSC says; RFC 7009 allows 200).
pub(super) async fn revoke(State(state): State<AppState>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> Response {
    let (request, auth) = match client_request::<RevocationRequest>(&headers, &body) {
        Ok(r) => r,
        Err(e) => return oauth_error(e),
    };
    match state.service.oauth_revoke(&ctx, &auth, &request).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => oauth_error(e),
    }
}

/// `POST oauth2/pushed_authorize` (RFC 9126 §2): 201 with the `request_uri`.
pub(super) async fn pushed_authorize(State(state): State<AppState>, Caller(ctx): Caller, headers: HeaderMap, body: Bytes) -> Response {
    let (request, auth) = match client_request::<AuthorizeRequest>(&headers, &body) {
        Ok(r) => r,
        Err(e) => return oauth_error(e),
    };
    match state.service.pushed_authorize(&ctx, &auth, &request).await {
        Ok((request_uri, expires_in)) => {
            (StatusCode::CREATED, Json(PushedAuthorizationResponse { expires_in, request_uri })).into_response()
        }
        Err(e) => oauth_error(e),
    }
}

/// RFC 8414 authorization server metadata.
pub(super) async fn metadata(State(state): State<AppState>) -> Response {
    let base = state.base_url.trim_end_matches('/');
    let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    // The 2.2 credential-management grants, offered with credentials/create and delete.
    let management = state.service.config().on_demand.enabled;
    Json(AuthorizationServerMetadata {
        issuer: base.to_string(),
        authorization_endpoint: Some(format!("{base}/oauth2/authorize")),
        token_endpoint: Some(format!("{base}/oauth2/token")),
        revocation_endpoint: Some(format!("{base}/oauth2/revoke")),
        pushed_authorization_request_endpoint: Some(format!("{base}/oauth2/pushed_authorize")),
        response_types_supported: list(&["code"]),
        response_modes_supported: list(&["query"]),
        grant_types_supported: list(&["authorization_code", "client_credentials", "refresh_token"]),
        code_challenge_methods_supported: list(&["S256", "plain"]),
        token_endpoint_auth_methods_supported: list(&auth_methods),
        revocation_endpoint_auth_methods_supported: list(&auth_methods),
        scopes_supported: if management {
            list(&["service", "credential", SCOPE_CREDENTIAL_CREATION[0], SCOPE_CREDENTIAL_DELETION[0]])
        } else {
            list(&["service", "credential"])
        },
        authorization_details_types_supported: if management {
            let mut types = list(&[RAR_CREDENTIAL, RAR_CREDENTIAL_2025]);
            types.extend(RAR_CREDENTIAL_CREATION.iter().chain(&RAR_CREDENTIAL_DELETION).map(|t| t.to_string()));
            types
        } else {
            list(&[RAR_CREDENTIAL, RAR_CREDENTIAL_2025])
        },
    })
    .into_response()
}
