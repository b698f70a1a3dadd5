//! What the v1 and v2 adapters decode and encode alike: HTTP Basic login, the `certificates`
//! option, the `key` and `cert` objects, hash lists and signature algorithm parameters.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use cloudsign_csc::v2::{CertInfo, KeyInfo, LoginRequest, LoginResponse, RevokeRequest, TimestampRequest, TimestampResponse};
use cloudsign_csc::{ErrorCode, HashAlgorithm, SignAlgorithm, b64};
use cloudsign_domain::{CredentialView, Error, RequestContext, Session, SignHashInput};
use zeroize::Zeroizing;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::with_client_data;

/// `info.authType`: HTTP Basic at `auth/login`, and OAuth 2.0 (authorization code for users,
/// client credentials for a client registered to act as one user).
pub(crate) const AUTH_TYPES: &[&str] = &["basic", "oauth2code", "oauth2client"];

/// `auth/login` (v1 §11.2, v2 §11.2): HTTP Basic, or a refresh token in the body.
pub(crate) async fn login(
    state: &AppState,
    ctx: RequestContext,
    headers: &HeaderMap,
    req: LoginRequest,
    map: fn(Error) -> ApiError,
) -> Result<Json<LoginResponse>, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    let remember_me = req.remember_me.unwrap_or(false);
    let tokens = if let Some(refresh) = req.refresh_token.as_deref() {
        state.service.login_refresh(&ctx, refresh).await.map_err(map)?
    } else {
        let malformed = || ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::InvalidRequest, "Malformed authentication parameter.");
        let header = headers.get(axum::http::header::AUTHORIZATION).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let encoded = header.strip_prefix("Basic ").ok_or_else(malformed)?;
        let decoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| malformed())?);
        let text = std::str::from_utf8(&decoded).map_err(|_| ApiError::invalid("Malformed username-password."))?;
        let (user, password) = text.split_once(':').ok_or_else(|| ApiError::invalid("Malformed username-password."))?;
        if user.is_empty() {
            return Err(ApiError::invalid("Malformed username-password."));
        }
        state.service.login_password(&ctx, user, Zeroizing::new(password.to_string()), remember_me).await.map_err(map)?
    };
    Ok(Json(LoginResponse { access_token: tokens.access_token, refresh_token: tokens.refresh_token, expires_in: tokens.expires_in }))
}

/// `auth/revoke` (v1 §11.3, v2 §11.3): 204 without a body.
pub(crate) async fn revoke(
    state: &AppState,
    session: &Session,
    ctx: RequestContext,
    req: RevokeRequest,
    map: fn(Error) -> ApiError,
) -> Result<StatusCode, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    state.service.revoke(session, &ctx, &req.token, req.token_type_hint.as_deref()).await.map_err(map)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `certificates` option of `credentials/info` (and v2 `credentials/list`).
#[derive(Clone, Copy)]
pub(crate) enum Certificates {
    None,
    Single,
    Chain,
}

pub(crate) fn certificates_param(v: Option<&str>) -> Result<Certificates, ApiError> {
    match v {
        None | Some("single") => Ok(Certificates::Single),
        Some("none") => Ok(Certificates::None),
        Some("chain") => Ok(Certificates::Chain),
        Some(_) => Err(ApiError::invalid("Invalid parameter certificates")),
    }
}

/// The `key` object.
pub(crate) fn key_info(view: &CredentialView) -> KeyInfo {
    KeyInfo {
        status: if view.key_enabled { "enabled" } else { "disabled" }.into(),
        algo: view.key_algorithm.sign_algo_oids().into_iter().map(Into::into).collect(),
        len: view.key_algorithm.bits(),
        curve: view.key_algorithm.curve().map(Into::into),
    }
}

/// The `cert` object: certificates as asked, details with `certInfo`.
pub(crate) fn cert_info(view: &CredentialView, certificates: Certificates, details: bool) -> CertInfo {
    let certs = match certificates {
        Certificates::None => None,
        Certificates::Single => Some(vec![b64::encode(&view.cert_der)]),
        Certificates::Chain => Some(std::iter::once(&view.cert_der).chain(view.chain.iter()).map(|d| b64::encode(d)).collect()),
    };
    CertInfo {
        status: Some(view.cert_status.as_str().into()),
        certificates: certs,
        issuer_dn: details.then(|| view.issuer_dn.clone()),
        serial_number: details.then(|| view.serial_hex.clone()),
        subject_dn: details.then(|| view.subject_dn.clone()),
        valid_from: details.then(|| cloudsign_domain::generalized_time(view.not_before)),
        valid_to: details.then(|| cloudsign_domain::generalized_time(view.not_after)),
    }
}

/// Decode a hash list; both base64 alphabets, padded or not (csc-api.md §1.2).
pub(crate) fn decode_hashes(hashes: &[String]) -> Result<Vec<Vec<u8>>, ApiError> {
    hashes.iter().map(|h| b64::decode_lenient(h).ok_or_else(|| ApiError::invalid("Invalid Base64 hash string parameter"))).collect()
}

/// A `signHash` call: resolve the scheme from `signAlgo`, the hash OID and the parameters,
/// and decode the hashes.
pub(crate) fn sign_hash_input(
    credential_id: String,
    sad: Option<String>,
    hashes: &[String],
    sign_algo: &str,
    hash_oid: Option<&str>,
    params: Option<&str>,
) -> Result<SignHashInput, ApiError> {
    let params = match params {
        Some(p) => Some(b64::decode_lenient(p).ok_or_else(|| ApiError::invalid("Invalid parameter signAlgoParams"))?),
        None => None,
    };
    let scheme = SignAlgorithm::resolve(sign_algo, hash_oid, params.as_deref()).map_err(ApiError::invalid)?;
    if hashes.is_empty() {
        return Err(ApiError::invalid("Empty hash array"));
    }
    Ok(SignHashInput { credential_id, sad, digests: decode_hashes(hashes)?, scheme })
}

/// The `signHash` response (v1 §11.9 and v2 §11.10 share it: `{"signatures": [...]}`,
/// standard base64 in request order), written straight into the body. Standard base64 needs
/// no JSON escaping; at 100 signatures a string per signature plus serde's escape scan showed
/// in profiles.
pub(crate) struct Signatures(String);

pub(crate) fn signatures(signatures: &[Vec<u8>]) -> Signatures {
    let mut body = String::with_capacity(24 + signatures.iter().map(|s| s.len().div_ceil(3) * 4 + 3).sum::<usize>());
    body.push_str("{\"signatures\":[");
    for (i, signature) in signatures.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push('"');
        b64::encode_append(signature, &mut body);
        body.push('"');
    }
    body.push_str("]}");
    Signatures(body)
}

impl IntoResponse for Signatures {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// `signatures/timestamp` (v1 §11.10, v2 §11.13).
pub(crate) async fn timestamp(
    state: &AppState,
    session: &Session,
    ctx: RequestContext,
    req: TimestampRequest,
    map: fn(Error) -> ApiError,
) -> Result<Json<TimestampResponse>, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    if req.hash.is_empty() {
        return Err(ApiError::invalid("Empty hash parameter"));
    }
    let digest = b64::decode_lenient(&req.hash).ok_or_else(|| ApiError::invalid("Invalid Base64 hash string parameter"))?;
    let hash = HashAlgorithm::from_oid(&req.hash_algo).ok_or_else(|| ApiError::invalid("Invalid parameter hashAlgo"))?;
    let token = state.service.timestamp(session, &ctx, hash, digest, req.nonce.as_deref()).await.map_err(map)?;
    Ok(Json(TimestampResponse { timestamp: b64::encode(&token) }))
}

/// The `methods` of `info`: the fixed list, plus `signatures/timestamp` when the TSA runs.
pub(crate) fn methods(fixed: &[&str], tsa: bool) -> Vec<String> {
    let mut methods: Vec<String> = fixed.iter().map(|m| m.to_string()).collect();
    if tsa {
        methods.push("signatures/timestamp".into());
    }
    methods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_signatures_body_is_the_spec_shape() {
        let signatures: Vec<Vec<u8>> = vec![vec![], vec![0xfb], vec![0xff, 0xfe], (0..=255).collect()];
        let body = super::signatures(&signatures).0;
        let parsed: cloudsign_csc::v2::SignHashResponse = serde_json::from_str(&body).unwrap();
        let expected: Vec<String> = signatures.iter().map(|s| b64::encode(s)).collect();
        assert_eq!(parsed.signatures, expected);
        assert_eq!(super::signatures(&[]).0, r#"{"signatures":[]}"#);
    }
}
