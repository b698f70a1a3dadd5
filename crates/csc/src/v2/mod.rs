//! CSC API v2.0.0.2 request and response bodies (§11). Member names are the spec's own,
//! renamed field by field: the spec mixes camelCase, snake_case and UPPERCASE.
//!
//! Requests reject nothing they do not understand (clients add vendor members), but every
//! member they do read has its spec type.

use serde::{Deserialize, Serialize};

mod ondemand;
mod signatures;
pub use ondemand::*;
pub use signatures::*;

/// The `specs` value this adapter implements.
pub const SPECS: &str = "2.0.0.2";

/// §11.1 `info` request.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::InfoRequest))]
pub struct InfoRequest {
    /// Preferred response language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// §11.1 `info` response.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::InfoResponse))]
pub struct InfoResponse {
    /// API version implemented.
    pub specs: String,
    /// Commercial name of the service.
    pub name: String,
    /// URI of the service logo.
    pub logo: String,
    /// ISO 3166-1 alpha-2 country of the provider.
    pub region: String,
    /// Language of the responses.
    pub lang: String,
    /// Free text.
    pub description: String,
    /// Service authorization types offered.
    #[serde(rename = "authType")]
    pub auth_type: Vec<String>,
    /// OAuth 2.0 base URI, when OAuth is offered (v2: only without `oauth2Issuer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<String>,
    /// RFC 8414 issuer of the authorization server (v2 §11.1).
    #[serde(rename = "oauth2Issuer", skip_serializing_if = "Option::is_none")]
    pub oauth2_issuer: Option<String>,
    /// Whether `operationMode: "A"` is supported.
    #[serde(rename = "asynchronousOperationMode")]
    pub asynchronous_operation_mode: bool,
    /// Implemented method names.
    pub methods: Vec<String>,
    /// Whether signDoc can return validation info.
    #[serde(rename = "validationInfo")]
    pub validation_info: bool,
    /// Signature algorithms offered.
    #[serde(rename = "signAlgorithms")]
    pub sign_algorithms: SignAlgorithms,
    /// AdES formats offered by signDoc.
    pub signature_formats: SignatureFormats,
    /// AdES levels offered by signDoc.
    pub conformance_levels: Vec<String>,
}

/// `info.signAlgorithms`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignAlgorithms))]
pub struct SignAlgorithms {
    /// Signature algorithm OIDs.
    pub algos: Vec<String>,
    /// Base64 DER parameter blobs (RSASSA-PSS-params).
    #[serde(rename = "algoParams", skip_serializing_if = "Vec::is_empty", default)]
    pub algo_params: Vec<String>,
}

/// `info.signature_formats`.
#[derive(Debug, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignatureFormats))]
pub struct SignatureFormats {
    /// `C`, `X`, `P`, `J`.
    pub formats: Vec<String>,
    /// One list of envelope properties per format.
    pub envelope_properties: Vec<Vec<String>>,
}

/// §11.2 `auth/login` request (the user's credentials travel in the Basic header).
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::LoginRequest))]
pub struct LoginRequest {
    /// Log in again with a refresh token instead of a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Ask for a refresh token.
    #[serde(rename = "rememberMe", skip_serializing_if = "Option::is_none")]
    pub remember_me: Option<bool>,
    /// Opaque client data (logged only in the audit trail).
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.2 `auth/login` response.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::LoginResponse))]
pub struct LoginResponse {
    /// The service access token.
    pub access_token: String,
    /// Present when `rememberMe` was true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
}

/// §11.3 `auth/revoke` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::RevokeRequest))]
pub struct RevokeRequest {
    /// The token to revoke.
    pub token: String,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.4 `credentials/list` request.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::ListRequest))]
pub struct ListRequest {
    /// Must be absent with user-bound tokens.
    #[serde(rename = "userID", skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Also return `credentialInfos`.
    #[serde(rename = "credentialInfo", default, skip_serializing_if = "std::ops::Not::not")]
    pub credential_info: bool,
    /// `none`, `single` or `chain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<String>,
    /// Include certificate details.
    #[serde(rename = "certInfo", default, skip_serializing_if = "std::ops::Not::not")]
    pub cert_info: bool,
    /// Include the `auth` details.
    #[serde(rename = "authInfo", default, skip_serializing_if = "std::ops::Not::not")]
    pub auth_info: bool,
    /// Only credentials usable now.
    #[serde(rename = "onlyValid", default, skip_serializing_if = "std::ops::Not::not")]
    pub only_valid: bool,
    /// Preferred language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
    /// v1 paging member some v2 clients still send; accepted and ignored (csc-api.md §8.13).
    #[serde(rename = "maxResults", skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u64>,
    /// v1 paging member; accepted and ignored.
    #[serde(rename = "pageToken", skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
}

/// §11.4 `credentials/list` response.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::ListResponse))]
pub struct ListResponse {
    /// The caller's credential identifiers.
    #[serde(rename = "credentialIDs")]
    pub credential_ids: Vec<String>,
    /// One info object per identifier, when asked.
    #[serde(rename = "credentialInfos", skip_serializing_if = "Option::is_none")]
    pub credential_infos: Option<Vec<CredentialInfo>>,
    /// Echoed when `onlyValid` was honoured.
    #[serde(rename = "onlyValid", skip_serializing_if = "Option::is_none")]
    pub only_valid: Option<bool>,
}

/// §11.5 `credentials/info` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::InfoCredentialRequest))]
pub struct InfoCredentialRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// `none`, `single` or `chain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<String>,
    /// Include certificate details.
    #[serde(rename = "certInfo", default, skip_serializing_if = "std::ops::Not::not")]
    pub cert_info: bool,
    /// Include the `auth` details.
    #[serde(rename = "authInfo", default, skip_serializing_if = "std::ops::Not::not")]
    pub auth_info: bool,
    /// Preferred language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.5 `credentials/info` response; in `credentials/list` it also carries `credentialID`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::CredentialInfo))]
pub struct CredentialInfo {
    /// Present only inside `credentials/list`.
    #[serde(rename = "credentialID", skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The key.
    pub key: KeyInfo,
    /// The certificate.
    pub cert: CertInfo,
    /// How the credential is authorized.
    pub auth: AuthInfo,
    /// `"1"` or `"2"`; v2 §11.5 makes it optional with `"1"` as the default.
    #[serde(rename = "SCAL", default = "scal_default")]
    pub scal: String,
    /// Maximum signatures per authorization.
    pub multisign: u32,
    /// Response language (empty when a service leaves it out).
    #[serde(default)]
    pub lang: String,
}

/// v2 §11.5: `SCAL` is optional; absent means `"1"`.
fn scal_default() -> String {
    "1".into()
}

/// `key` member.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::KeyInfo))]
pub struct KeyInfo {
    /// `enabled` or `disabled`. A client reading another service's answer does without it.
    #[serde(default)]
    pub status: String,
    /// Usable `signAlgo` OIDs.
    pub algo: Vec<String>,
    /// Key length in bits; 0 when a service leaves it out (the certificate tells).
    #[serde(default)]
    pub len: u32,
    /// Curve OID for EC keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

/// `cert` member.
#[derive(Debug, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::CertInfo))]
pub struct CertInfo {
    /// `valid`, `expired`, `revoked` or `suspended`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Base64 DER certificates, end entity first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<String>>,
    /// RFC 4514 issuer.
    #[serde(rename = "issuerDN", skip_serializing_if = "Option::is_none")]
    pub issuer_dn: Option<String>,
    /// Hex serial number.
    #[serde(rename = "serialNumber", skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// RFC 4514 subject.
    #[serde(rename = "subjectDN", skip_serializing_if = "Option::is_none")]
    pub subject_dn: Option<String>,
    /// GeneralizedTime `YYYYMMDDHHMMSSZ`.
    #[serde(rename = "validFrom", skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// GeneralizedTime `YYYYMMDDHHMMSSZ`.
    #[serde(rename = "validTo", skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

/// `auth` member.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::AuthInfo))]
pub struct AuthInfo {
    /// `explicit` or `oauth2code`.
    pub mode: String,
    /// Boolean expression over object ids, e.g. `PIN AND OTP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// The authentication objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<AuthObject>>,
}

/// One element of `auth.objects`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::AuthObject))]
pub struct AuthObject {
    /// `Password`, `ChallengeResponse`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Identifier used in `authData`.
    pub id: String,
    /// `A` or `N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// How the value is produced, e.g. `totp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    /// UI label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// UI help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One element of `authData`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::AuthDatum))]
pub struct AuthDatum {
    /// The object id (`PIN`, `OTP`).
    pub id: String,
    /// The secret; absent for out-of-band objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// §11.6 `credentials/authorize` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::AuthorizeRequest))]
pub struct AuthorizeRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// Number of signatures authorized.
    #[serde(rename = "numSignatures")]
    pub num_signatures: u64,
    /// Base64 digests to bind (required for SCAL 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Vec<String>>,
    /// Algorithm of `hashes`.
    #[serde(rename = "hashAlgorithmOID", skip_serializing_if = "Option::is_none")]
    pub hash_algorithm_oid: Option<String>,
    /// The factors.
    #[serde(rename = "authData", default, skip_serializing_if = "Vec::is_empty")]
    pub auth_data: Vec<AuthDatum>,
    /// Transaction description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.6 / §11.9 response.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SadResponse))]
pub struct SadResponse {
    /// Signature activation data.
    #[serde(rename = "SAD")]
    pub sad: String,
    /// Lifetime in seconds.
    #[serde(rename = "expiresIn")]
    pub expires_in: u64,
}

/// §11.9 `credentials/extendTransaction` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::ExtendTransactionRequest))]
pub struct ExtendTransactionRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// More digests to bind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Vec<String>>,
    /// Algorithm of `hashes`.
    #[serde(rename = "hashAlgorithmOID", skip_serializing_if = "Option::is_none")]
    pub hash_algorithm_oid: Option<String>,
    /// The current SAD.
    #[serde(rename = "SAD")]
    pub sad: String,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.8 `credentials/getChallenge` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::GetChallengeRequest))]
pub struct GetChallengeRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// The auth object id the challenge is for.
    #[serde(rename = "authObjectID")]
    pub auth_object_id: String,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}
