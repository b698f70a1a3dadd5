//! OAuth 2.0 wire types of the CSC authorization server (CSC v2 §8.3, v1 §8.3): the
//! parameters of the authorization, pushed authorization (RFC 9126), token (RFC 6749 §4.1.3,
//! §4.4.2, §6) and revocation (RFC 7009) requests, their responses, the RFC 6749 §5.2 error
//! body and the RFC 8414 authorization server metadata.
//!
//! Requests arrive form- or query-encoded, so every request member is an optional string:
//! what is missing, empty or malformed is the authorization server's to judge, in its order
//! and with its messages. Serde only; no I/O.

use serde::{Deserialize, Serialize, Serializer};

/// An OAuth error code (RFC 6749 §4.1.2.1 and §5.2, RFC 7009 §2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::ErrorCode))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing, repeated or malformed parameter.
    InvalidRequest,
    /// Client authentication failed (RFC 6749 §5.2: answered with 401).
    InvalidClient,
    /// The code, refresh token or PKCE verifier is invalid, expired or not this client's.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The scope is unknown or not allowed.
    InvalidScope,
    /// The signer (or the credential's lockout) refused (RFC 6749 §4.1.2.1).
    AccessDenied,
    /// Only `response_type=code` is supported (RFC 6749 §4.1.2.1).
    UnsupportedResponseType,
    /// RFC 7009 §2.2.1: the token type hint is not supported.
    UnsupportedTokenType,
    /// Something failed on the server's side.
    ServerError,
    /// The server cannot serve the request now (a backend is down).
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The code as it travels in `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// The error body of the token, revocation and PAR endpoints (RFC 6749 §5.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::ErrorResponse))]
pub struct ErrorResponse {
    /// `error`.
    pub error: ErrorCode,
    /// `error_description` (human readable, never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// The parameters of `oauth2/authorize` (query) and `oauth2/pushed_authorize` (form body):
/// RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 9126 §2.1, RFC 9396 §2, and the CSC credential-scope
/// parameters (CSC v2 §8.3.2, v1 §8.3.2).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::AuthorizeRequest))]
#[serde(default)]
pub struct AuthorizeRequest {
    /// `response_type` (`code`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    /// `client_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `redirect_uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// `state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `scope`: `service` or `credential`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `code_challenge` (RFC 7636).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// `code_challenge_method`: `S256` or `plain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    /// `request_uri` returned by PAR (RFC 9126 §4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_uri: Option<String>,
    /// `authorization_details`: a JSON array of [`AuthorizationDetail`] (RFC 9396 §2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<String>,
    /// `credentialID`.
    #[serde(rename = "credentialID", skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// `signatureQualifier`.
    #[serde(rename = "signatureQualifier", skip_serializing_if = "Option::is_none")]
    pub signature_qualifier: Option<String>,
    /// `numSignatures`, in decimal.
    #[serde(rename = "numSignatures", skip_serializing_if = "Option::is_none")]
    pub num_signatures: Option<String>,
    /// `hashes` (v2): base64url digests, comma separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes: Option<String>,
    /// `hash` (v1): base64url digests, comma separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// `hashAlgorithmOID`.
    #[serde(rename = "hashAlgorithmOID", skip_serializing_if = "Option::is_none")]
    pub hash_algorithm_oid: Option<String>,
    /// `description` of the transaction, shown to the signer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The parameters of `oauth2/token` (RFC 6749 §4.1.3, §4.4.2, §6).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::TokenRequest))]
#[serde(default)]
pub struct TokenRequest {
    /// `grant_type`: `authorization_code`, `client_credentials` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// `code` (authorization_code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `redirect_uri` (authorization_code, when the authorization request named one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// `code_verifier` (RFC 7636 §4.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<String>,
    /// `refresh_token` (refresh_token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// `refreshToken`: the spelling of the CSC v1 sample (csc-api.md §3.15.4); `refresh_token`
    /// wins when both are given.
    #[serde(rename = "refreshToken", skip_serializing_if = "Option::is_none")]
    pub refresh_token_v1: Option<String>,
    /// `scope` (client_credentials: `service` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `client_id` (client_secret_post, or a public client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `client_secret` (client_secret_post, RFC 6749 §2.3.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// The parameters of `oauth2/revoke` (RFC 7009 §2.1).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::RevocationRequest))]
#[serde(default)]
pub struct RevocationRequest {
    /// `token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `token_type_hint`: `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
    /// `client_id` (client_secret_post, or a public client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `client_secret` (client_secret_post).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A token endpoint answer (RFC 6749 §5.1; CSC v2 §8.3.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::TokenResponse))]
pub struct TokenResponse {
    /// The access token (service scope) or the credential token, a SAD (credential scope).
    pub access_token: String,
    /// `Bearer`, or `SAD` for a CSC v1 credential token (CSC v1 §8.3.3).
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Refresh token (service scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The credential of a credential token.
    #[serde(rename = "credentialID", default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// The signatures a credential token authorizes (2.2, csc-api-2.2.md §4).
    #[serde(rename = "numSignatures", default, skip_serializing_if = "Option::is_none")]
    pub num_signatures: Option<u64>,
    /// The RAR grant, echoed (CSC v2 §8.3.3, RFC 9396 §7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<Vec<AnyAuthorizationDetail>>,
    /// `service`, `credential`, or (2.2) `credential-creation` / `credential-deletion` in the
    /// spelling the client asked with.
    pub scope: String,
}

/// The answer of `oauth2/pushed_authorize` (RFC 9126 §2.2), sent with 201.
///
/// The members are declared in the order the service has always sent them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::PushedAuthorizationResponse))]
pub struct PushedAuthorizationResponse {
    /// Lifetime of the `request_uri` in seconds.
    pub expires_in: u64,
    /// `urn:ietf:params:oauth:request_uri:...`, for the authorization request.
    pub request_uri: String,
}

/// The RAR `type` of a credential authorization in CSC 2.0.0.2.
pub const RAR_CREDENTIAL: &str = "credential";
/// The RAR `type` of a credential authorization in CSC 2.2.0.0 (csc-api-2.2.md §4: the EUDI
/// client sends it; the EUDI server accepts it beside `credential`).
pub const RAR_CREDENTIAL_2025: &str = "https://cloudsignatureconsortium.org/2025/credential";
/// 2.2 RAR types of credential creation: the URI form, and the spelling of the EUDI reference
/// server (csc-api-2.2.md §4, the spelling is not settled; both are accepted).
pub const RAR_CREDENTIAL_CREATION: [&str; 2] = ["https://cloudsignatureconsortium.org/2025/credential-creation", "credential_creation"];
/// 2.2 RAR types of credential deletion (URI form and the EUDI server's two spellings).
pub const RAR_CREDENTIAL_DELETION: [&str; 3] =
    ["https://cloudsignatureconsortium.org/2025/credential-deletion", "credential_deletion", "credential_delete"];
/// 2.2 OAuth scope of `credentials/create` (the Kotlin client's spelling first, then the
/// EUDI server's comments').
pub const SCOPE_CREDENTIAL_CREATION: [&str; 2] = ["credential-creation", "credential_creation"];
/// 2.2 OAuth scope of `credentials/delete`.
pub const SCOPE_CREDENTIAL_DELETION: [&str; 3] = ["credential-deletion", "credential_deletion", "credential_delete"];

/// One `authorization_details` object of type `credential` (RFC 9396 §2; CSC v2 §8.3.2,
/// csc-api.md §3.15.3; 2.2: csc-api-2.2.md §4).
///
/// The members are declared in the order they are checked when missing (the first missing
/// one is named in the error); they are written in the order the service has always sent
/// them, see the `Serialize` impl.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::AuthorizationDetail))]
pub struct AuthorizationDetail {
    /// `type`: `credential` (2.0.0.2) or [`RAR_CREDENTIAL_2025`] (2.2).
    #[serde(rename = "type")]
    pub kind: String,
    /// `credentialID`.
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    /// `signatureQualifier`.
    #[serde(rename = "signatureQualifier")]
    pub signature_qualifier: Option<String>,
    /// `documentDigests`.
    #[serde(rename = "documentDigests")]
    pub document_digests: Vec<DocumentDigest>,
    /// `hashAlgorithmOID`.
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: String,
    /// `numSignatures`: a JSON integer in 2.2 (the Kotlin client and the Data Model); a
    /// decimal string is read too (2.0-era clients copied the query parameter's form);
    /// 2.0.0.2 has none (one signature per digest).
    #[serde(rename = "numSignatures", default, deserialize_with = "integer_or_decimal")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub num_signatures: Option<u64>,
}

/// One `authorization_details` object of type credential creation (CSC 2.2 §11.4,
/// csc-api-2.2.md §4: the EUDI server's validator requires `credentialCreationRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::CredentialCreationDetail))]
pub struct CredentialCreationDetail {
    /// `type`: one of [`RAR_CREDENTIAL_CREATION`].
    #[serde(rename = "type")]
    pub kind: String,
    /// What to create: `certificatePolicy`, `subjectData` (both optional).
    #[serde(rename = "credentialCreationRequest")]
    pub credential_creation_request: crate::v2::CredentialCreationRequest,
}

/// One `authorization_details` object of type credential deletion (CSC 2.2 §11.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::CredentialDeletionDetail))]
pub struct CredentialDeletionDetail {
    /// `type`: one of [`RAR_CREDENTIAL_DELETION`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The credential to delete.
    #[serde(rename = "credentialID")]
    pub credential_id: String,
}

/// An `authorization_details` object of any type this server grants, as the token response
/// echoes it (RFC 9396 §7). Untagged: each type is told apart by its required members (a
/// credential detail has `documentDigests` and `hashAlgorithmOID`, a creation detail
/// `credentialCreationRequest`, a deletion detail only `credentialID`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::AnyAuthorizationDetail))]
#[serde(untagged)]
pub enum AnyAuthorizationDetail {
    /// Type `credential` (or its 2025 URI).
    Credential(AuthorizationDetail),
    /// Type credential creation.
    CredentialCreation(CredentialCreationDetail),
    /// Type credential deletion.
    CredentialDeletion(CredentialDeletionDetail),
}

/// A count given as a JSON integer or a decimal string.
fn integer_or_decimal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        Integer(u64),
        Decimal(String),
    }
    match Option::<Count>::deserialize(d)? {
        None => Ok(None),
        Some(Count::Integer(n)) => Ok(Some(n)),
        Some(Count::Decimal(s)) => {
            s.trim().parse().map(Some).map_err(|_| serde::de::Error::custom("numSignatures is not a non-negative integer"))
        }
    }
}

impl Serialize for AuthorizationDetail {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Keys in alphabetical order, as the token response has always carried them.
        #[derive(Serialize)]
        struct Sorted<'a> {
            #[serde(rename = "credentialID", skip_serializing_if = "Option::is_none")]
            credential_id: &'a Option<String>,
            #[serde(rename = "documentDigests")]
            document_digests: &'a [DocumentDigest],
            #[serde(rename = "hashAlgorithmOID")]
            hash_algorithm_oid: &'a str,
            #[serde(rename = "numSignatures", skip_serializing_if = "Option::is_none")]
            num_signatures: &'a Option<u64>,
            #[serde(rename = "signatureQualifier", skip_serializing_if = "Option::is_none")]
            signature_qualifier: &'a Option<String>,
            #[serde(rename = "type")]
            kind: &'a str,
        }
        Sorted {
            credential_id: &self.credential_id,
            document_digests: &self.document_digests,
            hash_algorithm_oid: &self.hash_algorithm_oid,
            num_signatures: &self.num_signatures,
            signature_qualifier: &self.signature_qualifier,
            kind: &self.kind,
        }
        .serialize(serializer)
    }
}

/// A document digest of an [`AuthorizationDetail`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::DocumentDigest))]
pub struct DocumentDigest {
    /// The digest, base64 (standard or URL-safe).
    pub hash: String,
    /// The document's name, shown to the signer (`null` when absent).
    pub label: Option<String>,
    /// 2.2: `SDR`, `DTBSR` or `SODR` (any letter case; echoed as sent).
    #[serde(rename = "hashType", default, skip_serializing_if = "Option::is_none")]
    pub hash_type: Option<String>,
}

/// Authorization server metadata (RFC 8414 §2), at `/.well-known/oauth-authorization-server`.
///
/// The members are declared in alphabetical order, the order the service has always sent them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = oauth::AuthorizationServerMetadata))]
pub struct AuthorizationServerMetadata {
    /// RFC 9396 §10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details_types_supported: Vec<String>,
    /// `oauth2/authorize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// RFC 7636 methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    /// Grant types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types_supported: Vec<String>,
    /// The issuer identifier: the service's base URL.
    pub issuer: String,
    /// RFC 9126 §5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_authorization_request_endpoint: Option<String>,
    /// Response modes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_modes_supported: Vec<String>,
    /// Response types.
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// RFC 7009 endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Client authentication methods at the revocation endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// `oauth2/token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// Client authentication methods at the token endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_their_strings() {
        for code in [ErrorCode::InvalidClient, ErrorCode::UnsupportedTokenType, ErrorCode::TemporarilyUnavailable] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        let body = ErrorResponse { error: ErrorCode::InvalidGrant, error_description: Some("x".into()) };
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"error":"invalid_grant","error_description":"x"}"#);
    }

    #[test]
    fn authorization_detail_is_written_in_sorted_order() {
        let d = AuthorizationDetail {
            kind: "credential".into(),
            credential_id: Some("c".into()),
            signature_qualifier: None,
            document_digests: vec![DocumentDigest { hash: "aGk=".into(), label: None, hash_type: None }],
            hash_algorithm_oid: "2.16.840.1.101.3.4.2.1".into(),
            num_signatures: None,
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"credentialID":"c","documentDigests":[{"hash":"aGk=","label":null}],"hashAlgorithmOID":"2.16.840.1.101.3.4.2.1","type":"credential"}"#
        );
    }

    #[test]
    fn management_details_are_told_apart_and_echoed_as_sent() {
        let creation = r#"{"type":"https://cloudsignatureconsortium.org/2025/credential-creation","credentialCreationRequest":{"subjectData":{"given_name":"A","family_name":"B"}}}"#;
        let deletion = r#"{"type":"credential_delete","credentialID":"c1"}"#;
        let credential = r#"{"credentialID":"c","documentDigests":[{"hash":"aGk=","label":null}],"hashAlgorithmOID":"2.16.840.1.101.3.4.2.1","numSignatures":1,"type":"credential"}"#;
        for (text, kind) in [(creation, "creation"), (deletion, "deletion"), (credential, "credential")] {
            let d: AnyAuthorizationDetail = serde_json::from_str(text).unwrap();
            let got = match &d {
                AnyAuthorizationDetail::Credential(_) => "credential",
                AnyAuthorizationDetail::CredentialCreation(_) => "creation",
                AnyAuthorizationDetail::CredentialDeletion(_) => "deletion",
            };
            assert_eq!(got, kind, "{text}");
            let back: serde_json::Value = serde_json::to_value(&d).unwrap();
            assert_eq!(back, serde_json::from_str::<serde_json::Value>(text).unwrap(), "{text}");
        }
    }

    #[test]
    fn the_first_missing_member_is_named() {
        let e = crate::json::parse::<Vec<AuthorizationDetail>>(br#"[{"credentialID": "c"}]"#).unwrap_err();
        assert!(e.contains("`type`"), "{e}");
    }

    #[test]
    fn num_signatures_is_an_integer_or_a_decimal_string() {
        let parse = |n: &str| {
            let text = format!(r#"[{{"type":"credential","documentDigests":[],"hashAlgorithmOID":"x","numSignatures":{n}}}]"#);
            crate::json::parse::<Vec<AuthorizationDetail>>(text.as_bytes()).map(|v| v[0].num_signatures)
        };
        assert_eq!(parse("3").unwrap(), Some(3));
        assert_eq!(parse(r#""4""#).unwrap(), Some(4));
        assert_eq!(parse("null").unwrap(), None);
        assert!(parse(r#""two""#).is_err());
        assert!(parse("-1").is_err());
    }
}
