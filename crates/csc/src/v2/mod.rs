//! CSC API v2 request and response bodies (§11): 2.2.0.0, which keeps every 2.0.0.2 member
//! (a 2.0 client ignores what 2.2 added). Member names are the spec's own, renamed field by
//! field: the spec mixes camelCase, snake_case and UPPERCASE. What 2.2 changed is rebuilt
//! from its public clients and servers (`csc-api-2.2.md`); the clause numbers below are 2.2's
//! where that document gives them.
//!
//! Requests reject nothing they do not understand (clients add vendor members), but every
//! member they do read has its spec type.

use serde::{Deserialize, Serialize};

mod approval;
mod ondemand;
mod signatures;
pub use approval::*;
pub use ondemand::*;
pub use signatures::*;

/// The `specs` value this adapter implements. 2.2 has no version negotiation and keeps the
/// `/csc/v2` base (2.2 §7.2): `specs` is the only marker, and the EUDI Kotlin client refuses
/// any other value (csc-api-2.2.md §3). 2.0.0.2 clients never check it.
pub const SPECS: &str = "2.2.0.0";

/// The 2.0.0.2 version this adapter stays compatible with.
pub const SPECS_2_0: &str = "2.0.0.2";

/// The `documentDigests[].hashType` values of 2.2 (signer's document representation,
/// data-to-be-signed representation, signer's original document representation). Clients
/// disagree on the letter case (csc-api-2.2.md §4), so they are matched without it.
pub const HASH_TYPES: [&str; 3] = ["SDR", "DTBSR", "SODR"];

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
    /// OAuth 2.0 base URI, when OAuth is offered. 2.2: exactly one of `oauth2`,
    /// `oauth2Issuer` and `oauth2Servers` (csc-api-2.2.md §2, rules 1–5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<String>,
    /// RFC 8414 issuer of the authorization server (v2 §11.1).
    #[serde(rename = "oauth2Issuer", default, skip_serializing_if = "Option::is_none")]
    pub oauth2_issuer: Option<String>,
    /// 2.2: several authorization servers (only without `oauth2` and `oauth2Issuer`).
    #[serde(rename = "oauth2Servers", default, skip_serializing_if = "Option::is_none")]
    pub oauth2_servers: Option<Vec<OAuth2Server>>,
    /// 2.2: whether the authorization server takes RFC 9396 `authorization_details`; at top
    /// level only when there is no `oauth2Servers`.
    #[serde(rename = "supportsRar", default, skip_serializing_if = "Option::is_none")]
    pub supports_rar: Option<bool>,
    /// 2.2: required by the EUDI clients; what the values mean is not settled
    /// (csc-api-2.2.md §12).
    #[serde(rename = "supportedHashTypes", default)]
    pub supported_hash_types: Vec<String>,
    /// Whether `operationMode: "A"` is supported.
    #[serde(rename = "asynchronousOperationMode", default)]
    pub asynchronous_operation_mode: bool,
    /// Implemented method names.
    pub methods: Vec<String>,
    /// Whether signDoc can return validation info.
    #[serde(rename = "validationInfo", default)]
    pub validation_info: bool,
    /// Signature algorithms offered.
    #[serde(rename = "signAlgorithms")]
    pub sign_algorithms: SignAlgorithms,
    /// AdES formats offered by signDoc.
    pub signature_formats: SignatureFormats,
    /// AdES levels offered by signDoc.
    #[serde(default)]
    pub conformance_levels: Vec<String>,
    /// 2.2: MIME types signDoc takes.
    #[serde(rename = "documentTypes", default, skip_serializing_if = "Option::is_none")]
    pub document_types: Option<Vec<String>>,
}

/// 2.2 `info.oauth2Servers[]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::OAuth2Server))]
pub struct OAuth2Server {
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// CSC-style base URI (`{baseUri}/oauth2/...`).
    #[serde(rename = "baseUri", default, skip_serializing_if = "Option::is_none")]
    pub base_uri: Option<String>,
    /// RFC 8414 issuer.
    #[serde(rename = "issuerIdentifier", default, skip_serializing_if = "Option::is_none")]
    pub issuer_identifier: Option<String>,
    /// `oauth2code` and/or `oauth2client`.
    #[serde(rename = "authType")]
    pub auth_type: Vec<String>,
    /// Whether this server takes `authorization_details`.
    #[serde(rename = "supportsRar", default, skip_serializing_if = "Option::is_none")]
    pub supports_rar: Option<bool>,
}

/// `info.signAlgorithms`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignAlgorithms))]
pub struct SignAlgorithms {
    /// Signature algorithm OIDs.
    pub algos: Vec<String>,
    /// Base64 DER parameter blobs (RSASSA-PSS-params), one per `algos` entry, `""` for an
    /// algorithm without parameters. 2.2: the Swift EUDI client requires an array of strings
    /// (a `null` entry fails it), so none is written; one is read as `""`.
    #[serde(rename = "algoParams", default, deserialize_with = "strings_or_nulls")]
    pub algo_params: Vec<String>,
}

/// `[String | null]` read as strings (`null` as `""`): the Kotlin client's fixtures send nulls.
fn strings_or_nulls<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v: Option<Vec<Option<String>>> = Option::deserialize(d)?;
    Ok(v.unwrap_or_default().into_iter().map(Option::unwrap_or_default).collect())
}

/// `info.signature_formats`.
#[derive(Debug, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = v2::SignatureFormats))]
pub struct SignatureFormats {
    /// `C`, `X`, `P`, `J`.
    pub formats: Vec<String>,
    /// One list of envelope properties per format.
    #[serde(default)]
    pub envelope_properties: Vec<Vec<String>>,
    /// 2.2: whether one request may mix formats (default false).
    #[serde(rename = "allowMix", default, skip_serializing_if = "Option::is_none")]
    pub allow_mix: Option<bool>,
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

/// §11.5 (2.2 §11.7) `credentials/info` response; in `credentials/list` it also carries
/// `credentialID`.
///
/// The 2.2 members of `cert` (`qcStatements`, `policy`) are held in [`CertExtensions`] beside
/// [`CertInfo`] (which v1 shares) and written into the `cert` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "CredentialInfoWire", from = "CredentialInfoWire")]
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
    /// 2.2 `cert.qcStatements` and `cert.policy`.
    #[serde(skip)]
    pub cert_extensions: CertExtensions,
}

/// The 2.2 members of `cert` (2.2 §11.7): OIDs read from the certificate's extensions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CertExtensions {
    /// QC statement OIDs (ETSI EN 319 412-5), e.g. `0.4.0.1862.1.1`; absent when none.
    #[serde(rename = "qcStatements", default, skip_serializing_if = "Option::is_none")]
    pub qc_statements: Option<Vec<String>>,
    /// Certificate policy OIDs (RFC 5280 §4.2.1.4); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Vec<String>>,
}

/// `cert` as it travels: [`CertInfo`] and the 2.2 members in one object.
#[derive(Serialize, Deserialize)]
struct CertWire {
    #[serde(flatten)]
    base: CertInfo,
    #[serde(flatten)]
    extensions: CertExtensions,
}

/// [`CredentialInfo`] as it travels.
#[derive(Serialize, Deserialize)]
struct CredentialInfoWire {
    #[serde(rename = "credentialID", default, skip_serializing_if = "Option::is_none")]
    credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    key: KeyInfo,
    cert: CertWire,
    auth: AuthInfo,
    #[serde(rename = "SCAL", default = "scal_default")]
    scal: String,
    multisign: u32,
    #[serde(default)]
    lang: String,
}

impl From<CredentialInfo> for CredentialInfoWire {
    fn from(c: CredentialInfo) -> Self {
        Self {
            credential_id: c.credential_id,
            description: c.description,
            key: c.key,
            cert: CertWire { base: c.cert, extensions: c.cert_extensions },
            auth: c.auth,
            scal: c.scal,
            multisign: c.multisign,
            lang: c.lang,
        }
    }
}

impl From<CredentialInfoWire> for CredentialInfo {
    fn from(c: CredentialInfoWire) -> Self {
        Self {
            credential_id: c.credential_id,
            description: c.description,
            key: c.key,
            cert: c.cert.base,
            auth: c.auth,
            scal: c.scal,
            multisign: c.multisign,
            lang: c.lang,
            cert_extensions: c.cert.extensions,
        }
    }
}

/// v2 §11.5: `SCAL` is optional; absent means `"1"`.
fn scal_default() -> String {
    "1".into()
}

/// `key` member.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
