//! CSC API v1.0.4.0 request and response bodies (§11). Only what differs from v2 lives here;
//! `auth/login` and `auth/revoke` share the v2 types (their wire format is the same).

use serde::{Deserialize, Serialize};

pub use crate::v2::{
    CertInfo, KeyInfo, LoginRequest, LoginResponse, RevokeRequest, SadResponse, SignHashResponse, TimestampRequest, TimestampResponse,
};

/// The `specs` value this adapter implements (the v1.0.4.0 PDF's own sample still says 1.0.3.0;
/// csc-api.md §0.2).
pub const SPECS: &str = "1.0.4.0";

/// §11.1 `info` response.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::InfoResponse))]
pub struct InfoResponse {
    /// API version implemented.
    pub specs: String,
    /// Commercial name.
    pub name: String,
    /// Logo URI.
    pub logo: String,
    /// ISO 3166-1 alpha-2 country.
    pub region: String,
    /// Response language.
    pub lang: String,
    /// Free text.
    pub description: String,
    /// Service authorization types.
    #[serde(rename = "authType")]
    pub auth_type: Vec<String>,
    /// OAuth 2.0 base URI: the endpoints are `<oauth2>oauth2/authorize` etc. (v1 §11.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<String>,
    /// Implemented methods.
    pub methods: Vec<String>,
}

/// §11.4 `credentials/list` request.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::ListRequest))]
pub struct ListRequest {
    /// Must be absent with user-bound tokens.
    #[serde(rename = "userID", skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Page size.
    #[serde(rename = "maxResults", skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u64>,
    /// Opaque token of the next page.
    #[serde(rename = "pageToken", skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.4 `credentials/list` response.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::ListResponse))]
pub struct ListResponse {
    /// One page of credential identifiers.
    #[serde(rename = "credentialIDs")]
    pub credential_ids: Vec<String>,
    /// Present when more pages follow.
    #[serde(rename = "nextPageToken", skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// §11.5 `credentials/info` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::InfoCredentialRequest))]
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
    /// Include the `PIN` and `OTP` groups.
    #[serde(rename = "authInfo", default, skip_serializing_if = "std::ops::Not::not")]
    pub auth_info: bool,
    /// Preferred language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.5 `credentials/info` response: the authorization part is flat (`authMode`, `PIN`, `OTP`).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::CredentialInfo))]
pub struct CredentialInfo {
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The key.
    pub key: KeyInfo,
    /// The certificate.
    pub cert: CertInfo,
    /// `explicit` (cloudsign does not offer `implicit`; `oauth2code` comes with OAuth).
    #[serde(rename = "authMode")]
    pub auth_mode: String,
    /// `"1"` or `"2"`.
    #[serde(rename = "SCAL")]
    pub scal: String,
    /// PIN group.
    #[serde(rename = "PIN", skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinInfo>,
    /// OTP group.
    #[serde(rename = "OTP", skip_serializing_if = "Option::is_none")]
    pub otp: Option<OtpInfo>,
    /// Maximum signatures per authorization.
    pub multisign: u32,
    /// Response language (empty when a service leaves it out).
    #[serde(default)]
    pub lang: String,
}

// Responses: the members a client can do without default when absent (`#[serde(default)]`),
// so that `cloudsign-client` reads other services' answers; the server always sends them.

/// The `PIN` group; `presence` is a string (`"true"`, `"false"`, `"optional"`).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::PinInfo))]
pub struct PinInfo {
    /// `"true"`.
    pub presence: String,
    /// `A` or `N`.
    #[serde(default)]
    pub format: String,
    /// UI label.
    #[serde(default)]
    pub label: String,
    /// UI help.
    #[serde(default)]
    pub description: String,
}

/// The `OTP` group.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::OtpInfo))]
pub struct OtpInfo {
    /// `"true"` or `"false"`.
    pub presence: String,
    /// `offline` (generated by the user's device) or `online` (sent after `sendOTP`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `A` or `N`.
    #[serde(default)]
    pub format: String,
    /// UI label.
    #[serde(default)]
    pub label: String,
    /// UI help.
    #[serde(default)]
    pub description: String,
    /// Identifier of the OTP device or app.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Provider, e.g. `totp`.
    #[serde(default)]
    pub provider: String,
}

/// §11.6 `credentials/authorize` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::AuthorizeRequest))]
pub struct AuthorizeRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// Number of signatures authorized.
    #[serde(rename = "numSignatures")]
    pub num_signatures: u64,
    /// Base64 digests to bind (required for SCAL 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<Vec<String>>,
    /// The PIN.
    #[serde(rename = "PIN", skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// The OTP.
    #[serde(rename = "OTP", skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    /// Transaction description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.7 `credentials/sendOTP` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::SendOtpRequest))]
pub struct SendOtpRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.8 `credentials/extendTransaction` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::ExtendTransactionRequest))]
pub struct ExtendTransactionRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// More digests to bind. Some clients send one string instead of an array
    /// (csc-api.md §8.8); both are accepted.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = one_or_many_schema))]
    pub hash: Option<Vec<String>>,
    /// The current SAD.
    #[serde(rename = "SAD")]
    pub sad: String,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// §11.9 `signatures/signHash` request.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v1::SignHashRequest))]
pub struct SignHashRequest {
    /// The credential.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
    /// Signature activation data.
    #[serde(rename = "SAD")]
    pub sad: String,
    /// Base64 digests.
    pub hash: Vec<String>,
    /// Digest algorithm OID, when `signAlgo` does not imply one.
    #[serde(rename = "hashAlgo", skip_serializing_if = "Option::is_none")]
    pub hash_algo: Option<String>,
    /// Signature algorithm OID.
    #[serde(rename = "signAlgo")]
    pub sign_algo: String,
    /// Base64 DER parameters (RSASSA-PSS-params).
    #[serde(rename = "signAlgoParams", skip_serializing_if = "Option::is_none")]
    pub sign_algo_params: Option<String>,
    /// Opaque client data.
    #[serde(rename = "clientData", skip_serializing_if = "Option::is_none")]
    pub client_data: Option<String>,
}

/// The schema of a [`one_or_many`] member: a string, or an array of strings.
#[cfg(feature = "openapi")]
pub fn one_or_many_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let string = || ObjectBuilder::new().schema_type(Type::String);
    OneOfBuilder::new().item(string()).item(ArrayBuilder::new().items(string())).build().into()
}

/// A string or an array of strings (samples of both specs write a bare string where the tables
/// say array).
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}
