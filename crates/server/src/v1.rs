//! CSC API v1.0.4.0 adapter (`/csc/v1/...`, spec §11): the same domain calls as v2, with v1's
//! spellings — flat `PIN`/`OTP` members, `hash` without an algorithm at authorization,
//! `hashAlgo`, paging, `sendOTP` — and v1's error codes.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use cloudsign_csc::v1::*;
use cloudsign_csc::{HashAlgorithm, b64};
use cloudsign_domain::approval::Authorization;
use cloudsign_domain::{AuthorizeInput, CredentialView, FactorKind, Factors, HashesInput};
use zeroize::Zeroizing;

use crate::error::{ApiError, v1};
use crate::extract::{Bearer, Caller, CscJson, SigningBearer, with_client_data};
use crate::{AppState, shared};

const METHODS: &[&str] = &[
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/sendOTP",
    "credentials/extendTransaction",
    "signatures/signHash",
];

/// Largest page of `credentials/list`; also the size when `maxResults` is absent or invalid.
const MAX_PAGE: usize = 100;

pub(crate) fn routes() -> Router<AppState> {
    routes_without_v1_names().layer(axum::middleware::map_response(v1_names))
}

fn routes_without_v1_names() -> Router<AppState> {
    Router::new()
        .route("/info", post(info).get(info))
        .route("/auth/login", post(login))
        .route("/auth/revoke", post(revoke))
        .route("/credentials/list", post(list))
        .route("/credentials/info", post(credential_info))
        .route("/credentials/authorize", post(authorize))
        .route("/credentials/sendOTP", post(send_otp))
        .route("/credentials/extendTransaction", post(extend_transaction))
        .route("/signatures/signHash", post(sign_hash))
        .route("/signatures/timestamp", post(timestamp))
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// v2's parameter names as the domain and the code shared with v2 word their messages, and
/// what a v1 client knows them as: v1 §11.6 and §11.8 bind `hash` (v2 `hashes`), with flat
/// `PIN` and `OTP` members (v2 `authData` objects); v1 §11.9 names the digest algorithm
/// `hashAlgo` (v2 `hashAlgorithmOID`); v1 §11.7 `sendOTP` takes only `credentialID` (v2
/// `getChallenge` also `authObjectID`). Whole messages first, then names; `hashes` only as a
/// parameter name (after "parameter "), never the English word ("More hashes than numSignatures").
/// Names both versions share (`credentialID`, `SAD`, `signAlgo`, `signAlgoParams`,
/// `numSignatures`, `clientData`) need nothing.
const V1_NAMES: &[(&str, &str)] = &[
    ("Missing authentication object PIN in authData", "Missing (or invalid type) string parameter PIN"),
    ("Missing authentication object OTP in authData", "Missing (or invalid type) string parameter OTP"),
    ("Invalid parameter authData: this credential has no OTP", "Invalid parameter OTP: this credential has no OTP"),
    (
        "Invalid parameter authObjectID: no challenge-response object with this id",
        "Invalid parameter credentialID: the credential has no online OTP (credentials/sendOTP is for OTP type online)",
    ),
    ("parameter hashes", "parameter hash"),
    ("hashAlgorithmOID", "hashAlgo"),
];

/// An error description in v1's names ([`V1_NAMES`]).
pub(crate) fn v1_wording(description: &str) -> String {
    V1_NAMES.iter().fold(description.to_string(), |text, (v2, v1)| text.replace(v2, v1))
}

/// Every error this adapter answers, whichever layer worded it (request parsing, shared code,
/// the domain), in v1's names: the one place where v2's names are kept from v1 clients.
async fn v1_names(response: axum::response::Response) -> axum::response::Response {
    let Some(rendered) = response.extensions().get::<crate::error::Rendered>() else { return response };
    let description = v1_wording(&rendered.description);
    if description == rendered.description {
        return response;
    }
    let rendered = crate::error::Rendered { code: rendered.code, description };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let body = rendered.body();
    parts.extensions.insert(rendered);
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

/// §11.1.
async fn info(State(state): State<AppState>) -> ApiResult<InfoResponse> {
    let cfg = state.service.config();
    Ok(Json(InfoResponse {
        specs: SPECS.into(),
        name: cfg.service_name.clone(),
        logo: String::new(),
        region: cfg.region.clone(),
        lang: cfg.lang.clone(),
        description: cfg.description.clone(),
        auth_type: shared::AUTH_TYPES.iter().map(|s| s.to_string()).collect(),
        oauth2: Some(format!("{}/", state.base_url)),
        methods: shared::methods(METHODS, state.service.tsa_enabled()),
    }))
}

/// §11.2.
async fn login(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    CscJson(req): CscJson<LoginRequest>,
) -> ApiResult<LoginResponse> {
    shared::login(&state, ctx, &headers, req, v1).await
}

/// §11.3.
async fn revoke(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<RevokeRequest>,
) -> Result<StatusCode, ApiError> {
    shared::revoke(&state, &session, ctx, req, v1).await
}

/// §11.4, with paging: `pageToken` is the offset of the next page, opaque to clients.
async fn list(State(state): State<AppState>, Bearer(session): Bearer, CscJson(req): CscJson<ListRequest>) -> ApiResult<ListResponse> {
    if req.user_id.is_some() {
        return Err(ApiError::invalid("userID parameter MUST be null"));
    }
    let offset = match req.page_token.as_deref() {
        None => 0,
        Some(t) => b64::decode_lenient(t)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse::<usize>().ok()))
            .ok_or_else(|| ApiError::invalid("Invalid parameter pageToken"))?,
    };
    // v1 §11.4: an invalid or too large maxResults means the server's own maximum.
    let size = match req.max_results {
        Some(n) if n >= 1 && n <= MAX_PAGE as u64 => n as usize,
        _ => MAX_PAGE,
    };
    let views = state.service.list_credentials(&session, false).await.map_err(v1)?;
    let ids: Vec<String> = views.iter().skip(offset).take(size).map(|v| v.id.clone()).collect();
    let next = offset + ids.len();
    let next_page_token = (next < views.len()).then(|| b64::encode_url(format!("offset:{next}").as_bytes()));
    Ok(Json(ListResponse { credential_ids: ids, next_page_token }))
}

fn render(view: CredentialView, certificates: shared::Certificates, cert_info: bool, auth_info: bool, lang: &str) -> CredentialInfo {
    let pin = view.factors.iter().find(|f| f.id == "PIN").map(|f| PinInfo {
        presence: "true".into(),
        format: f.format.into(),
        label: f.label.into(),
        description: f.description.into(),
    });
    let otp = view.factors.iter().find(|f| f.id == "OTP").map(|f| OtpInfo {
        presence: "true".into(),
        kind: if f.kind == FactorKind::ChallengeResponse { "online" } else { "offline" }.into(),
        format: f.format.into(),
        label: f.label.into(),
        description: f.description.into(),
        id: format!("{}-{}", f.generator.unwrap_or("otp"), view.id),
        provider: f.generator.unwrap_or("otp").into(),
    });
    // v1 §8.3.2: `implicit` is the mode in which the RSSP obtains the signer's consent itself
    // (a push, a link) — what an out-of-band approval is. v1 has no 202 and no authorizeCheck
    // to wait for it, so `credentials/authorize` refuses such a credential here and says to use
    // /csc/v2; the mode still tells a v1 client that it cannot collect the factors itself.
    let out_of_band = view.factors.iter().any(|f| f.kind == FactorKind::OutOfBand);
    CredentialInfo {
        description: view.description.clone(),
        key: shared::key_info(&view),
        cert: shared::cert_info(&view, certificates, cert_info),
        auth_mode: if out_of_band { "implicit".into() } else { view.auth_mode.as_str().into() },
        scal: view.scal.to_string(),
        pin: if auth_info { pin } else { None },
        otp: if auth_info { otp } else { None },
        multisign: view.multisign,
        lang: lang.into(),
    }
}

/// §11.5.
async fn credential_info(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    CscJson(req): CscJson<InfoCredentialRequest>,
) -> ApiResult<CredentialInfo> {
    let certificates = shared::certificates_param(req.certificates.as_deref())?;
    let view = state.service.credential_info(&session, &req.credential_id).await.map_err(v1)?;
    Ok(Json(render(view, certificates, req.cert_info, req.auth_info, &state.service.config().lang)))
}

/// v1 binds hashes without naming their algorithm; the accepted digests (SHA-256/384/512) are
/// told apart by length, and `signHash` must then use that algorithm.
fn hashes_v1(hashes: Option<Vec<String>>) -> Result<Option<HashesInput>, ApiError> {
    let Some(hashes) = hashes else { return Ok(None) };
    let digests = shared::decode_hashes(&hashes)?;
    let Some(first) = digests.first() else { return Err(ApiError::invalid("Empty hash array")) };
    let algorithm =
        HashAlgorithm::ALL.into_iter().find(|h| h.len() == first.len()).ok_or_else(|| ApiError::invalid("Invalid digest value length"))?;
    if digests.iter().any(|d| d.len() != first.len()) {
        return Err(ApiError::invalid("Invalid parameter hash: all hashes must have the same algorithm"));
    }
    Ok(Some(HashesInput { algorithm, digests }))
}

/// §11.6, explicit mode: `PIN` and `OTP` members.
async fn authorize(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<AuthorizeRequest>,
) -> ApiResult<SadResponse> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    let input = AuthorizeInput {
        credential_id: req.credential_id,
        num_signatures: req.num_signatures,
        hashes: hashes_v1(req.hash)?,
        factors: Factors { pin: req.pin.map(Zeroizing::new), otp: req.otp.map(Zeroizing::new) },
        out_of_band: false,
        description: req.description,
        link_base: None,
        // v1.0.4.0 has no 202 answer and no authorizeCheck.
        accepts_pending: false,
    };
    match state.service.authorize(&session, &ctx, input).await.map_err(v1)? {
        Authorization::Granted(sad) => Ok(Json(SadResponse { sad: sad.token, expires_in: sad.expires_in })),
        // Refused by the domain before anything is stored (`accepts_pending: false`).
        Authorization::Pending(_) => Err(ApiError::invalid("Out-of-band authorization needs /csc/v2")),
    }
}

/// §11.7: start delivery of an online OTP (only for credentials whose OTP type is `online`).
async fn send_otp(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<SendOtpRequest>,
) -> Result<StatusCode, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    state.service.get_challenge(&session, &ctx, &req.credential_id, "OTP").await.map_err(v1)?;
    Ok(StatusCode::NO_CONTENT)
}

/// §11.8.
async fn extend_transaction(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<ExtendTransactionRequest>,
) -> ApiResult<SadResponse> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    let hashes = hashes_v1(req.hash)?;
    let sad = state.service.extend_transaction(&session, &ctx, &req.credential_id, &req.sad, hashes).await.map_err(v1)?;
    Ok(Json(SadResponse { sad: sad.token, expires_in: sad.expires_in }))
}

/// §11.9.
async fn sign_hash(
    State(state): State<AppState>,
    bearer: SigningBearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<SignHashRequest>,
) -> Result<shared::Signatures, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    let input = shared::sign_hash_input(
        req.credential_id,
        Some(req.sad),
        &req.hash,
        &req.sign_algo,
        req.hash_algo.as_deref(),
        req.sign_algo_params.as_deref(),
    )?;
    let signatures = state.service.sign_hash_bearer(&bearer.token, bearer.session, bearer.remembered, &ctx, input).await.map_err(v1)?;
    Ok(shared::signatures(&signatures))
}

/// §11.10.
async fn timestamp(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<TimestampRequest>,
) -> ApiResult<TimestampResponse> {
    shared::timestamp(&state, &session, ctx, req, v1).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn v2_names_become_v1_names() {
        let cases = [
            (
                "Missing (or invalid type) array parameter hashes: required for SCAL 2 credentials",
                "Missing (or invalid type) array parameter hash: required for SCAL 2 credentials",
            ),
            (
                "Invalid parameter hashes: an authorization given on the consent page covers only the documents approved there",
                "Invalid parameter hash: an authorization given on the consent page covers only the documents approved there",
            ),
            ("hashAlgorithmOID differs from the one authorized by the SAD", "hashAlgo differs from the one authorized by the SAD"),
            ("Missing authentication object PIN in authData", "Missing (or invalid type) string parameter PIN"),
            // Names v1 shares, and "hashes" as a word, stay.
            ("More hashes than numSignatures", "More hashes than numSignatures"),
            ("Invalid parameter signAlgo", "Invalid parameter signAlgo"),
            ("Invalid Base64 hash string parameter", "Invalid Base64 hash string parameter"),
        ];
        for (v2, v1) in cases {
            assert_eq!(super::v1_wording(v2), v1);
        }
    }
}
