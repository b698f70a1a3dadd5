//! The OAuth 2.0 authorization server (CSC v2 §8.3, v1 §8.3; RFC 6749, RFC 7636 PKCE,
//! RFC 9126 PAR, RFC 9396 RAR, RFC 7009 revocation), split by what it does:
//!
//! - `clients`: the client registry and client authentication;
//! - `authorize`: authorization requests, pushed requests and the flow held by the browser;
//! - `consent`: the signer's login and consent steps;
//! - `token`: the code exchange, refresh, client_credentials and revocation.
//!
//! A credential-scope token is a SAD (CSC v2 §8.3.3): exchanging the code stores it as a SAD
//! bound to the credential, the count and the digests the signer saw on the consent page, so
//! signHash consumes it under the same atomic rules as a SAD from `credentials/authorize`.
//!
//! The CSC 2.2 credential-management grants (csc-api-2.2.md §4: scopes `credential-creation`
//! and `credential-deletion`, and their RAR types) are offered when `[on_demand]` is enabled.
//! Their tokens have kinds of their own in the store, live `[on_demand] token_seconds`, reach
//! `credentials/create` (or `credentials/delete` of the one credential named) once, and
//! nothing else; a deletion names a credential that must be the signer's, checked at login,
//! at consent, at the code exchange and at the deletion.
//!
//! Every decision is made here; the HTTP layer parses forms, renders pages, writes the
//! redirect `Location` and picks the HTTP status of an [`OAuthError`].

mod authorize;
mod clients;
mod consent;
mod token;

pub use clients::ClientView;
pub use cloudsign_csc::oauth::ErrorCode;
pub use consent::{ConsentView, CredentialConsent, FlowView, ManagementConsent};
pub use token::IssuedToken;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;
use crate::session::CredentialManagement;

/// An OAuth error (RFC 6749 §5.2 for the token, revocation and PAR endpoints; §4.1.2.1 in a
/// redirect): what went wrong, in OAuth's terms.
#[derive(Debug, Clone)]
pub struct OAuthError {
    /// `error`.
    pub code: ErrorCode,
    /// `error_description` (never a secret).
    pub description: String,
}

impl OAuthError {
    /// An error with this code and description.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self { code, description: description.into() }
    }

    fn request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    fn grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    fn client() -> Self {
        Self::new(ErrorCode::InvalidClient, "Client authentication failed")
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidRequest(m) => Self::request(m),
            Error::Unavailable(detail) => {
                tracing::warn!(%detail, "backend unavailable");
                Self::new(ErrorCode::TemporarilyUnavailable, "The service is temporarily unavailable")
            }
            other => {
                tracing::error!(detail = %other, "OAuth internal error");
                Self::new(ErrorCode::ServerError, "Internal error")
            }
        }
    }
}

type OResult<T> = std::result::Result<T, OAuthError>;

/// How an authorization ends at the client (RFC 6749 §4.1.2, §4.1.2.1): the HTTP layer sends
/// the browser to `redirect_uri` with `code` (or `error` and `error_description`) and `state`.
#[derive(Debug)]
pub struct ClientRedirect {
    /// The registered redirect URI the request named (or the only one registered).
    pub redirect_uri: String,
    /// The client's `state`, returned unchanged.
    pub state: Option<String>,
    /// The authorization code, or why there is none.
    pub result: std::result::Result<String, OAuthError>,
}

impl ClientRedirect {
    fn error(redirect_uri: &str, state: Option<&str>, code: ErrorCode, description: impl Into<String>) -> Self {
        Self { redirect_uri: redirect_uri.to_string(), state: state.map(String::from), result: Err(OAuthError::new(code, description)) }
    }

    /// An error for the client of `request`.
    fn refuse(request: &AuthorizationRequest, code: ErrorCode, description: impl Into<String>) -> Self {
        Self::error(&request.redirect_uri, request.state.as_deref(), code, description)
    }
}

/// Why the authorization endpoint cannot go on.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted (RFC 6749 §4.1.2.1): the user sees
    /// this message and is never redirected.
    NoRedirect(String),
    /// Return to the client with an error.
    Redirect(ClientRedirect),
}

/// Why a step of the authorization pages cannot go on.
#[derive(Debug)]
pub enum FlowError {
    /// No authorization in progress in this browser (expired, finished, or no cookie).
    NoFlow,
    /// The CSRF token is missing or wrong.
    Forbidden,
    /// Show the page again with this message (wrong password, wrong PIN).
    Retry(String),
    /// End: return to the application with an error.
    Redirect(ClientRedirect),
    /// Something failed on our side.
    Failed(Error),
}

impl From<Error> for FlowError {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// Client authentication presented at the token, revocation and PAR endpoints (RFC 6749
/// §2.3.1: HTTP Basic or the form body).
#[derive(Default)]
pub struct ClientAuth {
    /// From the Basic header or the `client_id` parameter.
    pub client_id: Option<String>,
    /// From the Basic header or the `client_secret` parameter.
    pub secret: Option<Zeroizing<String>>,
}

/// A digest shown on the consent page and bound into the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentDigest {
    /// The digest.
    pub digest: Vec<u8>,
    /// The document's name, as the application gave it (RAR `label`).
    pub label: Option<String>,
    /// 2.2 RAR `hashType` (`SDR`, `DTBSR`, `SODR`), exactly as the client spelt it: clients
    /// disagree on the letter case, and the Kotlin client reads only upper case back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_type: Option<String>,
}

/// What a credential-scope request asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialGrant {
    /// The credential.
    pub credential_id: String,
    /// Signatures authorized.
    pub num_signatures: u64,
    /// OID of the digests.
    pub hash_algorithm: Option<String>,
    /// The digests (may be empty for SCAL 1).
    pub documents: Vec<DocumentDigest>,
    /// Transaction description for the signer.
    pub description: Option<String>,
    /// Asked for with `authorization_details` (echoed in the token response).
    pub rar: bool,
    /// The RAR `type` the client used (`credential`, or the 2.2 URI), echoed as it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rar_type: Option<String>,
    /// Asked for with v1's `hash` parameter: the token response says `token_type` `SAD`
    /// (CSC v1 §8.3.3).
    pub v1: bool,
    /// Sole control: the credential's PIN key, sealed under the authorization code (set at
    /// consent, moved under the token at the exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sole_key: Option<String>,
}

/// A validated authorization request: the state of a pushed request, of an authorization in
/// progress in a browser, and of an issued code (stored as JSON; the field names are the
/// stored format).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: String,
    /// Where the answer goes (registered, matched exactly).
    pub redirect_uri: String,
    /// Whether the request named it (then the token request must repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    /// Opaque client state.
    pub state: Option<String>,
    /// PKCE challenge.
    pub code_challenge: Option<String>,
    /// `S256` or `plain`.
    pub code_challenge_method: Option<String>,
    /// Credential scope; `None` for service scope.
    pub credential: Option<CredentialGrant>,
    /// A 2.2 credential-management grant; `None` for service and credential scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management: Option<ManagementGrant>,
}

/// What a credential-management request asks for, and how (csc-api-2.2.md §4).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagementGrant {
    /// What the token will reach.
    pub grant: CredentialManagement,
    /// Asked for with `authorization_details`: the RAR `type` as the client spelt it (echoed
    /// with the grant in the token response). `None`: asked for with `scope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rar_type: Option<String>,
    /// The `scope` as the client spelt it (echoed in the token response), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl ManagementGrant {
    /// The grant's name in the audit: `credential-creation` or `credential-deletion`.
    pub fn name(&self) -> &'static str {
        match &self.grant {
            CredentialManagement::Creation { .. } => "credential-creation",
            CredentialManagement::Deletion { .. } => "credential-deletion",
        }
    }

    /// The token response's `scope`: as the client spelt it, else the Kotlin client's spelling.
    pub fn scope(&self) -> &str {
        match (&self.scope, &self.grant) {
            (Some(s), _) => s,
            (None, CredentialManagement::Creation { .. }) => cloudsign_csc::oauth::SCOPE_CREDENTIAL_CREATION[0],
            (None, CredentialManagement::Deletion { .. }) => cloudsign_csc::oauth::SCOPE_CREDENTIAL_DELETION[0],
        }
    }
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters (verifier and S256 challenge alike).
fn pkce_text_ok(s: &str) -> bool {
    (43..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A request parameter as the endpoints read it: RFC 6749 §3.1, a parameter sent without a
/// value is treated as omitted.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| !v.is_empty())
}
