//! CSC API v2.0.0.2 adapter (`/csc/v2/...`, spec §11): wire types in, domain calls, wire types
//! out. No business rule lives here.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use cloudsign_csc::v2::*;
use cloudsign_csc::{HashAlgorithm, KeyAlgorithm};
use cloudsign_domain::{AuthorizeInput, CredentialView, FactorKind, Factors, HashesInput};
use zeroize::Zeroizing;

use crate::error::{ApiError, v2};
use crate::extract::{Bearer, Caller, CscJson, with_client_data};
use crate::{AppState, shared};

mod signatures;
use signatures::{sign_doc, sign_hash, timestamp};

/// The methods this adapter implements, as `info` lists them.
const METHODS: &[&str] = &[
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/extendTransaction",
    "credentials/getChallenge",
    "signatures/signHash",
    "signatures/signDoc",
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/info", post(info).get(info_get))
        .route("/auth/login", post(login))
        .route("/auth/revoke", post(revoke))
        .route("/credentials/list", post(list))
        .route("/credentials/info", post(credential_info))
        .route("/credentials/authorize", post(authorize))
        .route("/credentials/extendTransaction", post(extend_transaction))
        .route("/credentials/getChallenge", post(get_challenge))
        .route("/signatures/signHash", post(sign_hash))
        .route("/signatures/signDoc", post(sign_doc))
        .route("/signatures/timestamp", post(timestamp))
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn info(State(state): State<AppState>, CscJson(_req): CscJson<InfoRequest>) -> ApiResult<InfoResponse> {
    let cfg = state.service.config();
    let mut algos: Vec<String> = Vec::new();
    for k in KeyAlgorithm::ALL {
        for oid in k.sign_algo_oids() {
            if !algos.iter().any(|a| a == oid) {
                algos.push(oid.to_string());
            }
        }
    }
    Ok(Json(InfoResponse {
        specs: SPECS.into(),
        name: cfg.service_name.clone(),
        logo: String::new(),
        region: cfg.region.clone(),
        lang: cfg.lang.clone(),
        description: cfg.description.clone(),
        auth_type: shared::AUTH_TYPES.iter().map(|s| s.to_string()).collect(),
        oauth2: None,
        oauth2_issuer: Some(state.base_url.to_string()),
        asynchronous_operation_mode: false,
        methods: shared::methods(METHODS, state.service.tsa_enabled()),
        validation_info: true,
        sign_algorithms: SignAlgorithms { algos, algo_params: Vec::new() },
        signature_formats: SignatureFormats {
            formats: vec!["C".into(), "X".into(), "P".into(), "J".into()],
            envelope_properties: vec![
                vec!["Detached".into(), "Attached".into()],
                vec!["Enveloped".into(), "Enveloping".into()],
                vec!["Revision".into(), "Certification".into()],
                vec!["Detached".into(), "Attached".into()],
            ],
        },
        conformance_levels: vec!["Ades-B-B".into(), "Ades-B-T".into(), "Ades-B-LT".into(), "Ades-B-LTA".into()],
    }))
}

/// `GET /csc/v2/info`, a convenience some servers offer (csc-api.md §1.1).
async fn info_get(state: State<AppState>) -> ApiResult<InfoResponse> {
    info(state, CscJson(InfoRequest::default())).await
}

/// §11.2: HTTP Basic (or a refresh token in the body).
async fn login(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    CscJson(req): CscJson<LoginRequest>,
) -> ApiResult<LoginResponse> {
    shared::login(&state, ctx, &headers, req, v2).await
}

/// §11.3.
async fn revoke(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<RevokeRequest>,
) -> Result<StatusCode, ApiError> {
    shared::revoke(&state, &session, ctx, req, v2).await
}

fn render(
    view: CredentialView,
    certificates: shared::Certificates,
    cert_info: bool,
    auth_info: bool,
    lang: &str,
    with_id: bool,
) -> CredentialInfo {
    let cert = shared::cert_info(&view, certificates, cert_info);
    let objects = view
        .factors
        .iter()
        .map(|f| AuthObject {
            kind: match f.kind {
                FactorKind::Password => "Password".into(),
                FactorKind::ChallengeResponse => "ChallengeResponse".into(),
            },
            id: f.id.into(),
            format: Some(f.format.into()),
            generator: f.generator.map(Into::into),
            label: Some(f.label.into()),
            description: Some(f.description.into()),
        })
        .collect::<Vec<_>>();
    let expression = view.factors.iter().map(|f| f.id).collect::<Vec<_>>().join(" AND ");
    CredentialInfo {
        credential_id: with_id.then(|| view.id.clone()),
        description: view.description.clone(),
        key: shared::key_info(&view),
        cert,
        auth: AuthInfo {
            mode: view.auth_mode.as_str().into(),
            expression: auth_info.then_some(expression),
            objects: auth_info.then_some(objects),
        },
        scal: view.scal.to_string(),
        multisign: view.multisign,
        lang: lang.into(),
    }
}

/// §11.4.
async fn list(State(state): State<AppState>, Bearer(session): Bearer, CscJson(req): CscJson<ListRequest>) -> ApiResult<ListResponse> {
    // §11.4: with user-bound (basic) authentication userID must be absent.
    if req.user_id.is_some() {
        return Err(ApiError::invalid("userID parameter MUST be null"));
    }
    let certificates = shared::certificates_param(req.certificates.as_deref())?;
    let views = state.service.list_credentials(&session, req.only_valid).await.map_err(v2)?;
    let ids = views.iter().map(|v| v.id.clone()).collect();
    let lang = state.service.config().lang.clone();
    let infos = req
        .credential_info
        .then(|| views.into_iter().map(|v| render(v, certificates, req.cert_info, req.auth_info, &lang, true)).collect());
    Ok(Json(ListResponse { credential_ids: ids, credential_infos: infos, only_valid: req.only_valid.then_some(true) }))
}

/// §11.5.
async fn credential_info(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    CscJson(req): CscJson<InfoCredentialRequest>,
) -> ApiResult<CredentialInfo> {
    let certificates = shared::certificates_param(req.certificates.as_deref())?;
    let view = state.service.credential_info(&session, &req.credential_id).await.map_err(v2)?;
    Ok(Json(render(view, certificates, req.cert_info, req.auth_info, &state.service.config().lang, false)))
}

/// Decode `hashes` + `hashAlgorithmOID` (both base64 alphabets accepted, csc-api.md §1.2).
fn hashes_input(hashes: Option<Vec<String>>, oid: Option<&str>) -> Result<Option<HashesInput>, ApiError> {
    let Some(hashes) = hashes else { return Ok(None) };
    let oid = oid.ok_or_else(|| ApiError::invalid("Missing (or invalid type) string parameter hashAlgorithmOID"))?;
    let algorithm = HashAlgorithm::from_oid(oid).ok_or_else(|| ApiError::invalid("Invalid parameter hashAlgorithmOID"))?;
    let digests = shared::decode_hashes(&hashes)?;
    Ok(Some(HashesInput { algorithm, digests }))
}

/// §11.6, explicit mode: `authData` carries `PIN` and `OTP` objects.
async fn authorize(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<AuthorizeRequest>,
) -> ApiResult<SadResponse> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    let mut factors = Factors::default();
    for datum in req.auth_data {
        let value = datum.value.ok_or_else(|| ApiError::invalid(format!("Missing value for authentication object {}", datum.id)))?;
        let slot = match datum.id.as_str() {
            "PIN" => &mut factors.pin,
            "OTP" => &mut factors.otp,
            _ => return Err(ApiError::invalid("Invalid parameter authData: unknown authentication object id")),
        };
        if slot.replace(Zeroizing::new(value)).is_some() {
            return Err(ApiError::invalid(format!("Invalid parameter authData: {} given twice", datum.id)));
        }
    }
    let input = AuthorizeInput {
        credential_id: req.credential_id,
        num_signatures: req.num_signatures,
        hashes: hashes_input(req.hashes, req.hash_algorithm_oid.as_deref())?,
        factors,
    };
    let sad = state.service.authorize(&session, &ctx, input).await.map_err(v2)?;
    Ok(Json(SadResponse { sad: sad.token, expires_in: sad.expires_in }))
}

/// §11.9.
async fn extend_transaction(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<ExtendTransactionRequest>,
) -> ApiResult<SadResponse> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    let hashes = hashes_input(req.hashes, req.hash_algorithm_oid.as_deref())?;
    let sad = state.service.extend_transaction(&session, &ctx, &req.credential_id, &req.sad, hashes).await.map_err(v2)?;
    Ok(Json(SadResponse { sad: sad.token, expires_in: sad.expires_in }))
}

/// §11.8: the code goes out of band, so the answer is 204 without a body.
async fn get_challenge(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<GetChallengeRequest>,
) -> Result<StatusCode, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    state.service.get_challenge(&session, &ctx, &req.credential_id, &req.auth_object_id).await.map_err(v2)?;
    Ok(StatusCode::NO_CONTENT)
}
