//! CSC API v2 adapter (`/csc/v2/...`, spec §11): 2.2.0.0, keeping every 2.0.0.2 behaviour, so
//! 2.0 and 2.2 clients use the same endpoints. Wire types in, domain calls, wire types out. No
//! business rule lives here.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;
use axum::{Json, Router};
use cloudsign_csc::v2::*;
use cloudsign_csc::{HashAlgorithm, KeyAlgorithm};
use cloudsign_domain::approval::{APPROVAL_OBJECT, Authorization};
use cloudsign_domain::{AuthorizeInput, CredentialView, FactorKind, Factors, HashesInput};
use zeroize::Zeroizing;

use crate::error::{ApiError, v2};
use crate::extract::{Bearer, Caller, CscJson, with_client_data};
use crate::{AppState, shared};

mod signatures;
use signatures::{sign_doc, sign_hash, timestamp};

/// The methods this adapter implements, as `info` lists them (the asynchronous, on-demand and
/// approval modules add theirs).
///
/// Only CSC method names: the `oauth2/*` endpoints are not listed, although both observed 2.2
/// servers do, because the Swift EUDI client decodes `methods` into a closed enum that has no
/// `oauth2/pushed_authorize` and then cannot read `info` at all (csc-api-2.2.md §1); the
/// Kotlin client drops names it does not know, and `oauth2` in `info` already says where the
/// authorization server is.
const METHODS: &[&str] = &[
    "info",
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

/// 2.2 `info.signAlgorithms.algoParams` for RSASSA-PSS: the SHA-256 parameters (RFC 8017
/// A.2.3: SHA-256, MGF1 with SHA-256, salt 32, trailer 1), the ones every PSS signer offers;
/// signHash takes the SHA-384 and SHA-512 forms too.
const PSS_SHA256_PARAMS: &str = "MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEg";

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
    // One parameter string per algorithm (the Swift client refuses nulls), empty where the
    // algorithm has none.
    let algo_params = algos.iter().map(|a| if a == cloudsign_csc::oid::RSASSA_PSS { PSS_SHA256_PARAMS } else { "" }.to_string()).collect();
    let mut fixed: Vec<&str> = METHODS.to_vec();
    fixed.extend_from_slice(crate::asynchronous::METHODS);
    // Only when they answer (the OAuth metadata lists their scopes on the same condition): a
    // client reading `info` should not find methods that refuse every call.
    if cfg.on_demand.enabled {
        fixed.extend_from_slice(crate::ondemand::METHODS);
    }
    // `credentials/authorizeCheck` only when out-of-band approval is on: the Swift EUDI client
    // decodes `methods` into a closed enum without it and then cannot read `info` at all
    // (csc-api-2.2.md §1, Trap (S)), and without an approver there is nothing to poll.
    if cfg.approval.enabled {
        fixed.extend_from_slice(crate::approval::METHODS);
    }
    Ok(Json(InfoResponse {
        specs: SPECS.into(),
        // 2.2 (Kotlin client): at most 255 characters, `logo` a URI, `lang` a language tag.
        name: cfg.service_name.chars().take(255).collect(),
        logo: format!("{}/oauth2/assets/logo.svg", state.base_url),
        region: cfg.region.clone(),
        lang: cfg.lang.clone(),
        description: cfg.description.chars().take(255).collect(),
        auth_type: shared::AUTH_TYPES.iter().map(|s| s.to_string()).collect(),
        // 2.2 (csc-api-2.2.md §2): exactly one of oauth2, oauth2Issuer and oauth2Servers, and
        // the Swift client requires `oauth2`; so `oauth2` alone, the base under which
        // `oauth2/authorize`, `oauth2/token` and `oauth2/pushed_authorize` are. The RFC 8414
        // metadata stays at the base's well-known URI for clients that look for it.
        oauth2: Some(state.base_url.to_string()),
        oauth2_issuer: None,
        oauth2_servers: None,
        // At top level, as there is no oauth2Servers (rule 1).
        supports_rar: Some(true),
        // The values' meaning is not settled (csc-api-2.2.md §12): the digest algorithms of
        // signHash and the OAuth pages, by OID, as the live Cleverbase server sends them.
        supported_hash_types: cloudsign_csc::HashAlgorithm::ALL.iter().map(|h| h.oid().to_string()).collect(),
        // Only once signPolling exists to fetch the results.
        asynchronous_operation_mode: cfg.asynchronous.enabled && crate::asynchronous::METHODS.contains(&"signatures/signPolling"),
        methods: shared::methods(&fixed, state.service.tsa_enabled()),
        validation_info: true,
        sign_algorithms: SignAlgorithms { algos, algo_params },
        signature_formats: SignatureFormats {
            formats: vec!["C".into(), "X".into(), "P".into(), "J".into()],
            envelope_properties: vec![
                vec!["Detached".into(), "Attached".into()],
                vec!["Enveloped".into(), "Enveloping".into()],
                vec!["Revision".into(), "Certification".into()],
                vec!["Detached".into(), "Attached".into()],
            ],
            allow_mix: Some(false),
        },
        conformance_levels: vec!["Ades-B-B".into(), "Ades-B-T".into(), "Ades-B-LT".into(), "Ades-B-LTA".into()],
        // What signDoc signs: PDF (PAdES), XML (XAdES), anything else (CAdES, JAdES).
        document_types: Some(vec![
            "application/pdf".into(),
            "text/xml".into(),
            "application/json".into(),
            "application/octet-stream".into(),
        ]),
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
            // §11.5: the out-of-band approval is a challenge-response completed elsewhere (one
            // of the four types strict 2.2 clients accept, csc-api-2.2.md §7).
            kind: match f.kind {
                FactorKind::Password => "Password".into(),
                FactorKind::ChallengeResponse => "ChallengeResponse".into(),
                FactorKind::OutOfBand => "ChallengeResponseOOB".into(),
            },
            id: f.id.into(),
            // `format` describes a value the client sends; an out-of-band object has none.
            format: (f.kind != FactorKind::OutOfBand).then(|| f.format.into()),
            generator: f.generator.map(Into::into),
            label: Some(f.label.into()),
            description: Some(f.description.into()),
        })
        .collect::<Vec<_>>();
    let expression = view.factors.iter().map(|f| f.id).collect::<Vec<_>>().join(" AND ");
    // 2.2 §11.7: absent when the certificate has no such extension (the built-in CA writes
    // neither, an imported certificate may).
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let cert_extensions = CertExtensions { qc_statements: non_empty(view.qc_statements()), policy: non_empty(view.policies()) };
    CredentialInfo {
        cert_extensions,
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

/// `credentials/create`'s answer (CSC 2.2 §11.4): the new credential as `credentials/info`
/// gives it with every part asked for (its `credentialID`, the certificate chain, `cert` and
/// `auth` details), so that a client needs no second call.
pub(crate) fn created_credential(view: CredentialView, lang: &str) -> CredentialInfo {
    render(view, shared::Certificates::Chain, true, true, lang, true)
}

/// Decode `hashes` + `hashAlgorithmOID` (both base64 alphabets accepted, csc-api.md §1.2).
fn hashes_input(hashes: Option<Vec<String>>, oid: Option<&str>) -> Result<Option<HashesInput>, ApiError> {
    let Some(hashes) = hashes else { return Ok(None) };
    let oid = oid.ok_or_else(|| ApiError::invalid("Missing (or invalid type) string parameter hashAlgorithmOID"))?;
    let algorithm = HashAlgorithm::from_oid(oid).ok_or_else(|| ApiError::invalid("Invalid parameter hashAlgorithmOID"))?;
    let digests = shared::decode_hashes(&hashes)?;
    Ok(Some(HashesInput { algorithm, digests }))
}

/// §11.6, explicit mode: `authData` carries `PIN` and `OTP` objects, and for a credential
/// with an approver the `approval` object, without a value (it is given out of band; sending
/// it is optional, the credential asks for the approval anyway). 200 with the SAD, or 202 with
/// a `handle` for `credentials/authorizeCheck` while the signer approves.
async fn authorize(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Caller(ctx): Caller,
    CscJson(req): CscJson<AuthorizeRequest>,
) -> Result<Response, ApiError> {
    let ctx = with_client_data(ctx, req.client_data.as_deref());
    let mut factors = Factors::default();
    let mut out_of_band = false;
    for datum in req.auth_data {
        if datum.id == APPROVAL_OBJECT {
            if datum.value.is_some() {
                return Err(ApiError::invalid("Invalid parameter authData: approval takes no value (it is given out of band)"));
            }
            if std::mem::replace(&mut out_of_band, true) {
                return Err(ApiError::invalid("Invalid parameter authData: approval given twice"));
            }
            continue;
        }
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
        out_of_band,
        description: req.description,
        link_base: Some(state.base_url.to_string()),
        accepts_pending: true,
    };
    Ok(match state.service.authorize(&session, &ctx, input).await.map_err(v2)? {
        Authorization::Granted(sad) => Json(SadResponse { sad: sad.token, expires_in: sad.expires_in }).into_response(),
        Authorization::Pending(p) => (StatusCode::ACCEPTED, Json(AuthorizePendingResponse { handle: p.handle })).into_response(),
    })
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
