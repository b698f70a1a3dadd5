//! The OAuth 2.0 authorization server (CSC v2 §8.3, v1 §8.3; RFC 6749, RFC 7636 PKCE,
//! RFC 9126 PAR, RFC 9396 RAR, RFC 7009 revocation): the client registry, the authorization
//! request and the signer's consent, codes and tokens.
//!
//! A credential-scope token is a SAD (CSC v2 §8.3.3): exchanging the code stores it as a SAD
//! bound to the credential, the count and the digests the signer saw on the consent page, so
//! signHash consumes it under the same atomic rules as a SAD from `credentials/authorize`.
//!
//! The HTTP layer renders pages and encodes responses; every decision is made here.

use std::collections::HashMap;

use cloudsign_csc::{HashAlgorithm, b64};
use cloudsign_store::{ClientRow, CodeIssue, NewSad, NewToken, Redeemed};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::admin::url_encode;
use crate::credentials::factors_of;
use crate::secrets::{ct_eq, new_id, new_token, token_hash};
use crate::{Error, Factors, RequestContext, Result, Service, Session, now};

/// Lifetime of a pushed authorization request (RFC 9126 §2.2: short).
const PAR_TTL: u64 = 90;
/// The `request_uri` prefix (RFC 9126 §2.2).
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// An OAuth error response (RFC 6749 §5.2) for the token, revocation and PAR endpoints.
#[derive(Debug)]
pub struct OAuthError {
    /// HTTP status.
    pub status: u16,
    /// `error`.
    pub code: &'static str,
    /// `error_description` (never a secret).
    pub description: String,
}

impl OAuthError {
    fn new(status: u16, code: &'static str, description: impl Into<String>) -> Self {
        Self { status, code, description: description.into() }
    }

    fn request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }

    fn grant(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", description)
    }

    fn client() -> Self {
        Self::new(401, "invalid_client", "Client authentication failed")
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidRequest(m) => Self::request(m),
            Error::Unavailable(detail) => {
                tracing::warn!(%detail, "backend unavailable");
                Self::new(503, "temporarily_unavailable", "The service is temporarily unavailable")
            }
            other => {
                tracing::error!(detail = %other, "OAuth internal error");
                Self::new(500, "server_error", "Internal error")
            }
        }
    }
}

type OResult<T> = std::result::Result<T, OAuthError>;

/// Why the authorization endpoint cannot go on.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted (RFC 6749 §4.1.2.1): the user sees
    /// this message and is never redirected.
    NoRedirect(String),
    /// Return to the client with an error: the `Location`.
    Redirect(String),
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
    /// End: return to the application at this `Location`.
    Redirect(String),
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

/// A registered client as the administrator sees it.
#[derive(Debug, Clone)]
pub struct ClientView {
    /// `client_id`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Confidential (has a secret) or public.
    pub confidential: bool,
    /// The user it acts as with client_credentials.
    pub user: Option<String>,
    /// Creation time.
    pub created_at: i64,
}

/// A digest shown on the consent page and bound into the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentDigest {
    /// The digest.
    pub digest: Vec<u8>,
    /// The document's name, as the application gave it (RAR `label`).
    pub label: Option<String>,
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
    /// Asked for with v1's `hash` parameter: the token response says `token_type` `SAD`
    /// (CSC v1 §8.3.3).
    pub v1: bool,
    /// Sole control: the credential's PIN key, sealed under the authorization code (set at
    /// consent, moved under the token at the exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sole_key: Option<String>,
}

/// A validated authorization request.
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
}

/// What the authorization pages show.
#[derive(Debug)]
pub enum FlowView {
    /// The signer logs in.
    Login {
        /// The application's name.
        client_name: String,
        /// Credential scope (the login page says a signature is coming).
        credential: bool,
    },
    /// The signer approves or denies.
    Consent(Box<ConsentView>),
}

/// The consent page.
#[derive(Debug)]
pub struct ConsentView {
    /// The application's name.
    pub client_name: String,
    /// Who is logged in.
    pub user_name: String,
    /// What is signed, for credential scope.
    pub credential: Option<CredentialConsent>,
}

/// The credential part of the consent page.
#[derive(Debug)]
pub struct CredentialConsent {
    /// Certificate subject.
    pub subject: String,
    /// Certificate issuer.
    pub issuer: String,
    /// Key type.
    pub key: String,
    /// Signatures authorized.
    pub num_signatures: u64,
    /// Transaction description.
    pub description: Option<String>,
    /// Digest algorithm name.
    pub hash_algorithm: Option<String>,
    /// (label, base64 digest) per document.
    pub documents: Vec<(String, String)>,
    /// The PIN field.
    pub needs_pin: bool,
    /// The OTP field, with its hint.
    pub otp: Option<String>,
}

/// A token endpoint answer.
#[derive(Serialize)]
pub struct TokenResponse {
    /// The access token (service) or credential token.
    pub access_token: String,
    /// `Bearer`, or `SAD` for a v1 credential token.
    pub token_type: &'static str,
    /// Lifetime.
    pub expires_in: u64,
    /// Refresh token (service scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The credential of a credential token.
    #[serde(rename = "credentialID", skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// RAR echo (CSC v2 §8.3.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<serde_json::Value>,
    /// `service` or `credential`.
    pub scope: &'static str,
}

/// Request parameters, each given at most once (RFC 6749 §3.1).
pub struct Params(HashMap<String, String>);

impl Params {
    /// From decoded query or form pairs; a repeated parameter is refused.
    pub fn new(pairs: Vec<(String, String)>) -> std::result::Result<Self, String> {
        let mut map = HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            if map.contains_key(&k) {
                return Err(format!("Parameter {k} is repeated"));
            }
            map.insert(k, v);
        }
        Ok(Self(map))
    }

    /// A non-empty parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters (verifier and S256 challenge alike).
fn pkce_text_ok(s: &str) -> bool {
    (43..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Registered redirect URIs are absolute, without fragment; plain http only for loopback
/// (RFC 8252 §7.3); private-use schemes (`com.example.app:/cb`, RFC 8252 §7.1) for apps.
fn valid_redirect_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else { return false };
    // ASCII only (RFC 3986): the URI goes into a Location header as registered.
    if uri.contains('#') || uri.len() > 2000 || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    match scheme {
        "https" => rest.starts_with("//") && rest.len() > 2,
        "http" => {
            let host = rest.strip_prefix("//").unwrap_or_default().split(['/', '?']).next().unwrap_or_default();
            let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
            matches!(host, "127.0.0.1" | "localhost" | "[::1]")
        }
        s => s.contains('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)),
    }
}

/// `redirect_uri` with the response parameters appended (RFC 6749 §4.1.2).
fn redirect_to(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = redirect_uri.to_string();
    let mut sep = if redirect_uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&url_encode(v));
        sep = '&';
    }
    out
}

fn error_redirect(req_uri: &str, state: Option<&str>, code: &str, description: &str) -> String {
    let mut params = vec![("error", code), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    redirect_to(req_uri, &params)
}

/// The hash of the CSRF token of an authorization in progress: derived from the flow handle
/// held in the browser's cookie, so a page from another site cannot know it.
fn csrf_of(flow: &str) -> String {
    token_hash(&format!("csrf:{flow}"))
}

impl Service {
    // ---- client registry --------------------------------------------------------------------

    /// Register a client; a confidential client gets a secret, shown once. `user` lets a
    /// confidential client use the client_credentials grant, acting as that user.
    pub async fn add_client(
        &self,
        name: &str,
        redirect_uris: &[String],
        confidential: bool,
        user: Option<&str>,
    ) -> Result<(ClientView, Option<Zeroizing<String>>)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid("client names are 1-100 printable characters"));
        }
        if redirect_uris.is_empty() && user.is_none() {
            return Err(Error::invalid("a client needs at least one --redirect-uri (or --user for client_credentials)"));
        }
        if let Some(bad) = redirect_uris.iter().find(|u| !valid_redirect_uri(u)) {
            return Err(Error::invalid(format!(
                "invalid redirect URI {bad}: absolute, no fragment, https (http only for 127.0.0.1, localhost, [::1]) or an app scheme such as com.example.app:/cb"
            )));
        }
        if user.is_some() && !confidential {
            return Err(Error::invalid("only a confidential client can act as a user (client_credentials)"));
        }
        let user_row = match user {
            Some(u) => Some(self.store.user_by_name(u).await?.ok_or_else(|| Error::invalid(format!("no user {u}")))?),
            None => None,
        };
        let secret = if confidential { Some(Zeroizing::new(new_token()?)) } else { None };
        let row = ClientRow {
            id: new_id()?,
            name: name.to_string(),
            secret_hash: secret.as_ref().map(|s| token_hash(s)),
            redirect_uris: redirect_uris.to_vec(),
            user_id: user_row.as_ref().map(|u| u.id.clone()),
            created_at: now(),
        };
        self.store.insert_client(&row).await?;
        self.audit(
            "admin",
            "admin.client.add",
            "ok",
            None,
            json!({"client_id": row.id, "name": row.name, "redirect_uris": row.redirect_uris, "confidential": confidential, "user": user}),
        )
        .await?;
        Ok((self.client_view(row).await?, secret))
    }

    async fn client_view(&self, row: ClientRow) -> Result<ClientView> {
        let user = match &row.user_id {
            Some(id) => self.store.user_by_id(id).await?.map(|u| u.name),
            None => None,
        };
        Ok(ClientView {
            id: row.id,
            name: row.name,
            redirect_uris: row.redirect_uris,
            confidential: row.secret_hash.is_some(),
            user,
            created_at: row.created_at,
        })
    }

    /// All registered clients.
    pub async fn clients(&self) -> Result<Vec<ClientView>> {
        let mut out = Vec::new();
        for row in self.store.clients().await? {
            out.push(self.client_view(row).await?);
        }
        Ok(out)
    }

    /// Remove a client and revoke everything issued to it.
    pub async fn delete_client(&self, id: &str) -> Result<()> {
        if !self.store.delete_client(id).await? {
            return Err(Error::invalid(format!("no client {id}")));
        }
        self.audit("admin", "admin.client.delete", "ok", None, json!({"client_id": id})).await
    }

    /// RFC 6749 §2.3.1: a confidential client proves its secret (compared in constant time);
    /// a public client presents its id only.
    async fn authenticate_client(&self, auth: &ClientAuth) -> OResult<ClientRow> {
        let id = auth.client_id.as_deref().ok_or_else(|| OAuthError::request("Missing parameter client_id"))?;
        let client = self.store.client(id).await.map_err(Error::from)?.ok_or_else(OAuthError::client)?;
        match (&client.secret_hash, &auth.secret) {
            (Some(stored), Some(given)) if ct_eq(stored.as_bytes(), token_hash(given).as_bytes()) => Ok(client),
            (None, None) => Ok(client),
            _ => Err(OAuthError::client()),
        }
    }

    // ---- authorization request ----------------------------------------------------------------

    /// Validate an authorization request (query of `oauth2/authorize`, or the body of
    /// `pushed_authorize`). The client and redirect URI are checked first: until both are
    /// known good, errors are never sent to the redirect URI.
    fn validate_request(&self, client: &ClientRow, p: &Params) -> std::result::Result<AuthorizationRequest, AuthorizeError> {
        let redirect_uri = match p.get("redirect_uri") {
            Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_string(),
            Some(_) => return Err(AuthorizeError::NoRedirect("The redirect_uri is not registered for this client".into())),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return Err(AuthorizeError::NoRedirect("Missing parameter redirect_uri".into())),
        };
        let state = p.get("state").map(String::from);
        let fail =
            |code: &str, description: &str| AuthorizeError::Redirect(error_redirect(&redirect_uri, state.as_deref(), code, description));
        if state.as_ref().is_some_and(|s| s.len() > 512) {
            return Err(fail("invalid_request", "state is longer than 512 characters"));
        }
        match p.get("response_type") {
            Some("code") => {}
            None => return Err(fail("invalid_request", "Missing parameter response_type")),
            Some(_) => return Err(fail("unsupported_response_type", "Only response_type=code is supported")),
        }
        // RFC 7636; RFC 9700 §2.1.1: S256 for public clients, and never a downgrade to plain.
        let challenge = p.get("code_challenge").map(String::from);
        let method = match (&challenge, p.get("code_challenge_method")) {
            (None, Some(_)) => return Err(fail("invalid_request", "code_challenge_method without code_challenge")),
            (None, None) => None,
            (Some(_), None | Some("plain")) => Some("plain"),
            (Some(_), Some("S256")) => Some("S256"),
            (Some(_), Some(_)) => return Err(fail("invalid_request", "code_challenge_method must be S256 or plain")),
        };
        let public = client.secret_hash.is_none();
        if public && method != Some("S256") {
            return Err(fail("invalid_request", "PKCE with code_challenge_method=S256 is required for public clients"));
        }
        if let Some(c) = &challenge
            && !pkce_text_ok(c)
        {
            return Err(fail("invalid_request", "Invalid code_challenge"));
        }
        let credential = match (p.get("scope"), p.get("authorization_details")) {
            (None | Some("credential"), Some(details)) => Some(rar_grant(details).map_err(|m| fail("invalid_request", &m))?),
            (Some("credential"), None) => Some(param_grant(p).map_err(|m| fail("invalid_request", &m))?),
            (None | Some("service"), None) => None,
            (Some("service"), Some(_)) => return Err(fail("invalid_request", "authorization_details needs scope credential")),
            (Some(_), _) => return Err(fail("invalid_scope", "scope is service or credential")),
        };
        Ok(AuthorizationRequest {
            client_id: client.id.clone(),
            redirect_uri,
            redirect_uri_given: p.get("redirect_uri").is_some(),
            state,
            code_challenge: challenge,
            code_challenge_method: method.map(String::from),
            credential,
        })
    }

    /// `oauth2/pushed_authorize` (RFC 9126): validate and store the request; the browser then
    /// brings only `client_id` and the returned `request_uri`.
    pub async fn pushed_authorize(&self, ctx: &RequestContext, auth: &ClientAuth, p: &Params) -> OResult<(String, u64)> {
        let client = self.authenticate_client(auth).await?;
        if p.get("request_uri").is_some() {
            return Err(OAuthError::request("request_uri is not allowed in a pushed authorization request"));
        }
        if p.get("client_id").is_some_and(|id| id != client.id) {
            return Err(OAuthError::request("client_id differs from the authenticated client"));
        }
        let request = self.validate_request(&client, p).map_err(|e| match e {
            AuthorizeError::NoRedirect(m) => OAuthError::request(m),
            AuthorizeError::Redirect(location) => OAuthError::request(error_of(&location)),
        })?;
        let handle = new_token()?;
        let body = serde_json::to_string(&request).map_err(|e| Error::Internal(e.to_string()))?;
        self.store.put_oauth_request(&token_hash(&handle), "par", &client.id, &body, now() + PAR_TTL as i64).await.map_err(Error::from)?;
        self.audit("-", "oauth2.par", "ok", None, json!({"client": ctx.client, "client_id": client.id})).await?;
        Ok((format!("{REQUEST_URI_PREFIX}{handle}"), PAR_TTL))
    }

    /// `oauth2/authorize`: validate the request (or take the pushed one) and start an
    /// authorization in this browser. Returns the flow handle the browser keeps in a cookie.
    pub async fn begin_authorization(&self, p: &Params) -> std::result::Result<String, AuthorizeError> {
        let internal = |e: Error| {
            tracing::error!(detail = %e, "authorization request failed");
            AuthorizeError::NoRedirect("The service cannot take authorization requests now; try again later".into())
        };
        let client_id = p.get("client_id").ok_or_else(|| AuthorizeError::NoRedirect("Missing parameter client_id".into()))?;
        let client = self
            .store
            .client(client_id)
            .await
            .map_err(|e| internal(e.into()))?
            .ok_or_else(|| AuthorizeError::NoRedirect("Unknown client_id".into()))?;
        let request = match p.get("request_uri") {
            Some(uri) => {
                let handle = uri.strip_prefix(REQUEST_URI_PREFIX).unwrap_or_default();
                let row = self
                    .store
                    .take_oauth_request(&token_hash(handle), "par", now())
                    .await
                    .map_err(|e| internal(e.into()))?
                    .filter(|r| r.client_id == client.id)
                    .ok_or_else(|| AuthorizeError::NoRedirect("The request_uri is unknown, used or expired".into()))?;
                serde_json::from_str::<AuthorizationRequest>(&row.request).map_err(|e| internal(Error::Internal(e.to_string())))?
            }
            None => self.validate_request(&client, p)?,
        };
        let flow = new_token().map_err(internal)?;
        let body = serde_json::to_string(&request).map_err(|e| internal(Error::Internal(e.to_string())))?;
        self.store
            .put_oauth_request(&token_hash(&flow), "flow", &client.id, &body, now() + self.cfg.oauth_flow_ttl as i64)
            .await
            .map_err(|e| internal(e.into()))?;
        Ok(flow)
    }

    /// The CSRF token the pages embed for the flow `flow`.
    pub fn flow_csrf(&self, flow: &str) -> String {
        csrf_of(flow)
    }

    async fn load_flow(&self, flow: &str) -> std::result::Result<(AuthorizationRequest, ClientRow, Option<String>), FlowError> {
        let row = self.store.oauth_request(&token_hash(flow), "flow", now()).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
        let request: AuthorizationRequest = serde_json::from_str(&row.request).map_err(|e| Error::Internal(e.to_string()))?;
        let client = self.store.client(&row.client_id).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
        Ok((request, client, row.user_id))
    }

    fn check_csrf(flow: &str, csrf: Option<&str>) -> std::result::Result<(), FlowError> {
        match csrf {
            Some(c) if ct_eq(c.as_bytes(), csrf_of(flow).as_bytes()) => Ok(()),
            _ => Err(FlowError::Forbidden),
        }
    }

    /// What the authorization page shows now.
    pub async fn flow_view(&self, flow: &str) -> std::result::Result<FlowView, FlowError> {
        let (request, client, user_id) = self.load_flow(flow).await?;
        let Some(user_id) = user_id else {
            return Ok(FlowView::Login { client_name: client.name, credential: request.credential.is_some() });
        };
        let user = self.store.user_by_id(&user_id).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
        let credential = match &request.credential {
            None => None,
            Some(g) => {
                let row = self.store.credential(&g.credential_id).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
                let factors = factors_of(&row);
                let algorithm = g.hash_algorithm.as_deref().and_then(HashAlgorithm::from_oid);
                Some(CredentialConsent {
                    subject: row.cert.subject_dn.clone(),
                    issuer: row.cert.issuer_dn.clone(),
                    key: row.key_algo.clone(),
                    num_signatures: g.num_signatures,
                    description: g.description.clone(),
                    hash_algorithm: algorithm.map(|a| a.name().to_string()),
                    documents: g
                        .documents
                        .iter()
                        .enumerate()
                        .map(|(i, d)| (d.label.clone().unwrap_or_else(|| format!("Document {}", i + 1)), b64::encode(&d.digest)))
                        .collect(),
                    needs_pin: factors.iter().any(|f| f.id == "PIN"),
                    otp: factors.iter().find(|f| f.id == "OTP").map(|f| f.description.to_string()),
                })
            }
        };
        Ok(FlowView::Consent(Box::new(ConsentView { client_name: client.name, user_name: user.name, credential })))
    }

    /// The login form: check the password, then check that the credential asked for is this
    /// user's and usable (otherwise back to the application with the reason).
    pub async fn flow_login(
        &self,
        ctx: &RequestContext,
        flow: &str,
        csrf: Option<&str>,
        user_name: &str,
        password: Zeroizing<String>,
    ) -> std::result::Result<(), FlowError> {
        Self::check_csrf(flow, csrf)?;
        let (request, client, _) = self.load_flow(flow).await?;
        let user = match self.check_password(ctx, user_name, password, "oauth2.login").await {
            Ok(u) => u,
            Err(Error::AuthenticationFailed) => return Err(FlowError::Retry("Wrong user name or password".into())),
            Err(e @ Error::Throttled { .. }) => return Err(FlowError::Retry(e.to_string())),
            Err(e) => return Err(e.into()),
        };
        if let Some(g) = &request.credential {
            let session = Session { user_id: user.id.clone(), user_name: user.name.clone(), credential: None };
            let refuse =
                |code: &str, m: String| FlowError::Redirect(error_redirect(&request.redirect_uri, request.state.as_deref(), code, &m));
            let row = match self.own_credential(&session, &g.credential_id).await {
                Ok(r) => r,
                Err(_) => return Err(refuse("invalid_request", "Invalid parameter credentialID".into())),
            };
            if let Err(e) = self.check_usable(&row) {
                self.take_flow(flow).await?;
                let code = if matches!(e, Error::Locked) { "access_denied" } else { "invalid_request" };
                return Err(refuse(code, e.to_string()));
            }
            if g.num_signatures > row.multisign as u64 {
                return Err(refuse("invalid_request", "Numbers of signatures is too high".into()));
            }
            if row.scal == 2 && g.documents.is_empty() {
                return Err(refuse("invalid_request", "The credential (SCAL 2) requires the hashes to be signed".into()));
            }
            if let Some(algorithm) = g.hash_algorithm.as_deref().and_then(HashAlgorithm::from_oid) {
                let key = cloudsign_csc::KeyAlgorithm::from_name(&row.key_algo);
                if !key.is_some_and(|k| k.schemes().iter().any(|s| s.hash() == algorithm)) {
                    return Err(refuse(
                        "invalid_request",
                        format!("{} digests cannot be signed with this {} key", algorithm.name(), row.key_algo),
                    ));
                }
            }
            // An online OTP is sent now, so that it is waiting when the consent page shows.
            if row.otp_kind.as_deref() == Some("online") {
                self.get_challenge(&session, ctx, &row.id, "OTP").await?;
            }
        }
        if !self.store.set_oauth_request_user(&token_hash(flow), &user.id).await.map_err(Error::from)? {
            return Err(FlowError::NoFlow);
        }
        self.audit(&user.name, "oauth2.login", "ok", None, json!({"client": ctx.client, "client_id": client.id})).await?;
        Ok(())
    }

    async fn take_flow(&self, flow: &str) -> std::result::Result<(), FlowError> {
        self.store.take_oauth_request(&token_hash(flow), "flow", now()).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
        Ok(())
    }

    /// The consent form: deny, or approve (with the credential's factors, under the same
    /// attempt counting and lockout as `credentials/authorize`) and return to the application
    /// with a single-use code.
    pub async fn flow_decide(
        &self,
        ctx: &RequestContext,
        flow: &str,
        csrf: Option<&str>,
        approve: bool,
        factors: Factors,
    ) -> std::result::Result<String, FlowError> {
        Self::check_csrf(flow, csrf)?;
        let (request, client, user_id) = self.load_flow(flow).await?;
        let user_id = user_id.ok_or(FlowError::NoFlow)?;
        let user = self.store.user_by_id(&user_id).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
        let back = |code: &str, m: &str| error_redirect(&request.redirect_uri, request.state.as_deref(), code, m);
        let credential_id = request.credential.as_ref().map(|g| g.credential_id.clone());
        let mut pin_for_key = None;
        if !approve {
            self.take_flow(flow).await?;
            self.audit(
                &user.name,
                "oauth2.consent",
                "denied",
                credential_id.as_deref(),
                json!({"client": ctx.client, "client_id": client.id}),
            )
            .await?;
            return Ok(back("access_denied", "The user denied the request"));
        }
        if let Some(g) = &request.credential {
            let session = Session { user_id: user.id.clone(), user_name: user.name.clone(), credential: None };
            let row = self.own_credential(&session, &g.credential_id).await.map_err(|_| FlowError::NoFlow)?;
            if let Err(e) = self.check_usable(&row) {
                self.take_flow(flow).await?;
                return Err(FlowError::Redirect(back(
                    if matches!(e, Error::Locked) { "access_denied" } else { "invalid_request" },
                    &e.to_string(),
                )));
            }
            let needs_otp = factors_of(&row).iter().any(|f| f.id == "OTP");
            let Some(pin) = factors.pin.filter(|p| !p.is_empty()) else { return Err(FlowError::Retry("Enter the PIN".into())) };
            let otp = factors.otp.filter(|o| !o.is_empty());
            if needs_otp && otp.is_none() {
                return Err(FlowError::Retry("Enter the one-time code".into()));
            }
            pin_for_key = row.pin_wrap_salt.clone().map(|salt| (salt, pin.clone()));
            match self.verify_factors(&session, ctx, &row, pin, if needs_otp { otp } else { None }).await {
                Ok(()) => {}
                Err(Error::InvalidPin { attempts_left }) if attempts_left > 0 => return Err(FlowError::Retry(wrong("PIN", attempts_left))),
                Err(Error::InvalidOtp { attempts_left }) if attempts_left > 0 => {
                    return Err(FlowError::Retry(wrong("one-time code", attempts_left)));
                }
                // The last attempt failed (the credential is now locked), or it was locked already.
                Err(Error::Locked | Error::InvalidPin { .. } | Error::InvalidOtp { .. }) => {
                    self.take_flow(flow).await?;
                    self.audit(&user.name, "oauth2.consent", "refused", Some(&row.id), json!({"client": ctx.client, "reason": "locked"}))
                        .await?;
                    return Err(FlowError::Redirect(back("access_denied", "PIN locked: too many failed attempts")));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Taking the flow is what makes the approval count once, even if the form is sent twice.
        self.take_flow(flow).await?;
        let code = new_token()?;
        let mut request = request;
        if let (Some((salt, pin)), Some(g)) = (pin_for_key, request.credential.as_mut()) {
            let pin_key = self.pin_key(&pin, &salt).await?;
            g.sole_key = Some(crate::sole::wrap_for(&*pin_key, &code, &token_hash(&code))?);
        }
        let grant = serde_json::to_string(&request).map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .insert_code(&token_hash(&code), &client.id, &user.id, &grant, now() + self.cfg.oauth_code_ttl as i64)
            .await
            .map_err(Error::from)?;
        let digests: Option<Vec<String>> =
            request.credential.as_ref().map(|g| g.documents.iter().map(|d| crate::secrets::hex(&d.digest)).collect());
        self.audit(
            &user.name,
            "oauth2.consent",
            "ok",
            credential_id.as_deref(),
            json!({"client": ctx.client, "client_id": client.id, "numSignatures": request.credential.as_ref().map(|g| g.num_signatures), "hashes": digests}),
        )
        .await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &request.state {
            params.push(("state", s));
        }
        Ok(redirect_to(&request.redirect_uri, &params))
    }

    // ---- token endpoint -----------------------------------------------------------------------

    /// `oauth2/token` (RFC 6749 §4.1.3, §4.4, §6).
    pub async fn token(&self, ctx: &RequestContext, auth: &ClientAuth, p: &Params) -> OResult<TokenResponse> {
        let grant_type = p.get("grant_type").ok_or_else(|| OAuthError::request("Missing parameter grant_type"))?;
        if !matches!(grant_type, "authorization_code" | "client_credentials" | "refresh_token") {
            return Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                "grant_type is authorization_code, client_credentials or refresh_token",
            ));
        }
        let client = self.authenticate_client(auth).await;
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                self.audit(
                    "-",
                    "oauth2.token",
                    "refused",
                    None,
                    json!({"client": ctx.client, "grant_type": grant_type, "reason": e.description}),
                )
                .await?;
                return Err(e);
            }
        };
        let result = match grant_type {
            "authorization_code" => self.token_from_code(&client, p).await,
            "client_credentials" => self.token_for_client(&client, p).await,
            _ => self.token_from_refresh(&client, p).await,
        };
        let (outcome, reason) = match &result {
            Ok(_) => ("ok", None),
            Err(e) => ("refused", Some(e.description.clone())),
        };
        let credential = result.as_ref().ok().and_then(|(_, _, c)| c.clone());
        let actor = result.as_ref().map(|(_, user, _)| user.as_str()).unwrap_or("-");
        self.audit(
            actor,
            "oauth2.token",
            outcome,
            credential.as_deref(),
            json!({"client": ctx.client, "client_id": client.id, "grant_type": grant_type, "reason": reason}),
        )
        .await?;
        result.map(|(r, _, _)| r)
    }

    async fn token_from_code(&self, client: &ClientRow, p: &Params) -> OResult<(TokenResponse, String, Option<String>)> {
        let code = p.get("code").ok_or_else(|| OAuthError::request("Missing parameter code"))?;
        let code_hash = token_hash(code);
        let row = self.store.code(&code_hash).await.map_err(Error::from)?.ok_or_else(|| OAuthError::grant("Invalid code"))?;
        let request: AuthorizationRequest = serde_json::from_str(&row.grant_json).map_err(|e| Error::Internal(e.to_string()))?;
        let user = self.store.user_by_id(&row.user_id).await.map_err(Error::from)?.ok_or_else(|| OAuthError::grant("Invalid code"))?;
        if !row.used {
            if row.client_id != client.id {
                return Err(OAuthError::grant("The code was issued to another client"));
            }
            if row.expires_at <= now() {
                return Err(OAuthError::grant("The code has expired"));
            }
            match p.get("redirect_uri") {
                Some(u) if u != request.redirect_uri => {
                    return Err(OAuthError::grant("redirect_uri differs from the authorization request"));
                }
                None if request.redirect_uri_given => return Err(OAuthError::grant("Missing parameter redirect_uri")),
                _ => {}
            }
            check_pkce(&request, p.get("code_verifier"))?;
        }
        let t = now();
        let access_token = new_token()?;
        let access_hash = token_hash(&access_token);
        let (response, issue_refresh, sad_digests);
        match &request.credential {
            None => {
                let refresh = new_token()?;
                issue_refresh = Some(token_hash(&refresh));
                sad_digests = None;
                response = TokenResponse {
                    access_token,
                    token_type: "Bearer",
                    expires_in: self.cfg.access_token_ttl,
                    refresh_token: Some(refresh),
                    credential_id: None,
                    authorization_details: None,
                    scope: "service",
                };
            }
            Some(g) => {
                // The credential may have been revoked or locked since the consent.
                if !row.used {
                    let session = Session { user_id: user.id.clone(), user_name: user.name.clone(), credential: None };
                    let cred = self.own_credential(&session, &g.credential_id).await.map_err(|_| OAuthError::grant("Invalid code"))?;
                    self.check_usable(&cred).map_err(|e| OAuthError::grant(e.to_string()))?;
                }
                issue_refresh = None;
                sad_digests = Some(g.documents.iter().map(|d| crate::secrets::hex(&d.digest)).collect::<Vec<_>>());
                response = TokenResponse {
                    access_token,
                    token_type: if g.v1 { "SAD" } else { "Bearer" },
                    expires_in: self.cfg.sad_ttl,
                    refresh_token: None,
                    credential_id: Some(g.credential_id.clone()),
                    authorization_details: g.rar.then(|| rar_echo(g)),
                    scope: "credential",
                };
            }
        }
        let credential_id = request.credential.as_ref().map(|g| g.credential_id.as_str());
        let access = NewToken {
            hash: &access_hash,
            kind: if credential_id.is_some() { "credential" } else { "access" },
            user_id: &user.id,
            parent: issue_refresh.as_deref(),
            client_id: Some(&client.id),
            credential_id,
            expires_at: t + response.expires_in as i64,
            now: t,
        };
        let refresh = issue_refresh.as_deref().map(|hash| NewToken {
            hash,
            kind: "refresh",
            user_id: &user.id,
            parent: None,
            client_id: Some(&client.id),
            credential_id: None,
            expires_at: t + self.cfg.refresh_token_ttl as i64,
            now: t,
        });
        // Sole control: the PIN key moves from under the code to under the token.
        let sole_key = match request.credential.as_ref().and_then(|g| g.sole_key.as_deref()) {
            Some(sealed) => Some(crate::sole::rewrap(sealed, (code, &code_hash), (&response.access_token, &access_hash))?),
            None => None,
        };
        let sad = request.credential.as_ref().map(|g| NewSad {
            sole_key: sole_key.as_deref(),
            hash: &access_hash,
            user_id: &user.id,
            credential_id: &g.credential_id,
            remaining: g.num_signatures as i64,
            hash_algo: g.hash_algorithm.as_deref(),
            digests: (!g.documents.is_empty()).then_some(sad_digests.as_deref().unwrap_or_default()),
            expires_at: t + self.cfg.sad_ttl as i64,
            now: t,
        });
        // The sealed PIN key of a sole-control grant is not kept with the used code.
        let mut spent = request.clone();
        if let Some(g) = spent.credential.as_mut() {
            g.sole_key = None;
        }
        let spent = serde_json::to_string(&spent).map_err(|e| Error::Internal(e.to_string()))?;
        match self.store.redeem_code(&code_hash, t, &CodeIssue { access, refresh, sad }, &spent).await.map_err(Error::from)? {
            Redeemed::Issued => Ok((response, user.name, request.credential.map(|g| g.credential_id))),
            Redeemed::Reused => Err(OAuthError::grant("The code was already used; the tokens issued with it are revoked")),
            Redeemed::Invalid => Err(OAuthError::grant("The code has expired")),
        }
    }

    async fn token_for_client(&self, client: &ClientRow, p: &Params) -> OResult<(TokenResponse, String, Option<String>)> {
        if p.get("scope").is_some_and(|s| s != "service") {
            return Err(OAuthError::new(400, "invalid_scope", "client_credentials grants scope service only"));
        }
        let user_id = match (&client.secret_hash, &client.user_id) {
            (Some(_), Some(u)) => u,
            _ => return Err(OAuthError::new(400, "unauthorized_client", "This client is not registered for the client_credentials grant")),
        };
        let user = self.store.user_by_id(user_id).await.map_err(Error::from)?.filter(|u| !u.disabled);
        let user = user.ok_or_else(|| OAuthError::new(400, "unauthorized_client", "The client's user is disabled"))?;
        // RFC 6749 §4.4.3: no refresh token for client credentials.
        let tokens = self.issue_tokens(&user.id, false, Some(&client.id)).await?;
        Ok((service_response(tokens), user.name, None))
    }

    async fn token_from_refresh(&self, client: &ClientRow, p: &Params) -> OResult<(TokenResponse, String, Option<String>)> {
        let refresh = p.get("refresh_token").or_else(|| p.get("refreshToken")); // v1 sample spelling (csc-api.md §3.15.4)
        let refresh = refresh.ok_or_else(|| OAuthError::request("Missing parameter refresh_token"))?;
        let user_id = self
            .store
            .consume_refresh_token(&token_hash(refresh), Some(&client.id), now())
            .await
            .map_err(Error::from)?
            .ok_or_else(|| OAuthError::grant("Invalid refresh_token"))?;
        let user = self.store.user_by_id(&user_id).await.map_err(Error::from)?.filter(|u| !u.disabled);
        let user = user.ok_or_else(|| OAuthError::grant("Invalid refresh_token"))?;
        let tokens = self.issue_tokens(&user.id, true, Some(&client.id)).await?;
        Ok((service_response(tokens), user.name, None))
    }

    /// `oauth2/revoke` (RFC 7009; CSC: an unknown token is `invalid_request`).
    pub async fn oauth_revoke(&self, ctx: &RequestContext, auth: &ClientAuth, p: &Params) -> OResult<()> {
        let client = self.authenticate_client(auth).await?;
        let token = p.get("token").ok_or_else(|| OAuthError::request("Missing parameter token"))?;
        if let Some(hint) = p.get("token_type_hint")
            && hint != "access_token"
            && hint != "refresh_token"
        {
            return Err(OAuthError::new(400, "unsupported_token_type", "token_type_hint is access_token or refresh_token"));
        }
        let found = self.store.revoke_client_token(&token_hash(token), &client.id).await.map_err(Error::from)?;
        self.audit("-", "oauth2.revoke", if found { "ok" } else { "refused" }, None, json!({"client": ctx.client, "client_id": client.id}))
            .await?;
        if !found {
            return Err(OAuthError::request("Invalid parameter token"));
        }
        Ok(())
    }
}

fn wrong(what: &str, attempts_left: i64) -> String {
    match attempts_left {
        1 => format!("Wrong {what}: 1 attempt left before the credential locks."),
        n => format!("Wrong {what}: {n} attempts left before the credential locks."),
    }
}

fn service_response(t: crate::Tokens) -> TokenResponse {
    TokenResponse {
        access_token: t.access_token,
        token_type: "Bearer",
        expires_in: t.expires_in,
        refresh_token: t.refresh_token,
        credential_id: None,
        authorization_details: None,
        scope: "service",
    }
}

/// The error description carried in an error redirect (for PAR, which answers in JSON).
fn error_of(location: &str) -> String {
    location
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("error_description="))
        .map(|v| v.replace('+', " "))
        .map(|v| percent_decode(&v))
        .unwrap_or_else(|| "Invalid authorization request".into())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 7636 §4.6; RFC 9700 §2.1.1: a verifier without a challenge is refused too.
fn check_pkce(request: &AuthorizationRequest, verifier: Option<&str>) -> OResult<()> {
    match (&request.code_challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::grant("code_verifier given but the authorization request had no code_challenge")),
        (Some(_), None) => Err(OAuthError::grant("Missing parameter code_verifier")),
        (Some(challenge), Some(v)) => {
            if !pkce_text_ok(v) {
                return Err(OAuthError::grant("Invalid code_verifier"));
            }
            let computed = if request.code_challenge_method.as_deref() == Some("S256") {
                b64::encode_url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.as_bytes()).as_ref())
            } else {
                v.to_string()
            };
            if ct_eq(computed.as_bytes(), challenge.as_bytes()) { Ok(()) } else { Err(OAuthError::grant("PKCE verification failed")) }
        }
    }
}

/// Digests of the query-string form: base64url, comma separated (CSC v2 `hashes`, v1 `hash`).
fn digests_of(list: &str) -> std::result::Result<Vec<Vec<u8>>, String> {
    list.split(',')
        .map(|h| b64::decode_lenient(h.trim()).filter(|d| !d.is_empty()).ok_or_else(|| "Invalid hash: not base64url".to_string()))
        .collect()
}

/// v1 sends digests without naming their algorithm: infer it from the length.
fn algorithm_by_length(len: usize) -> Option<HashAlgorithm> {
    [HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512].into_iter().find(|a| a.len() == len)
}

fn check_grant(g: &CredentialGrant) -> std::result::Result<(), String> {
    if g.credential_id.is_empty() {
        return Err("Missing parameter credentialID".into());
    }
    if g.num_signatures < 1 || g.num_signatures > 100_000 {
        return Err("Invalid value for parameter numSignatures".into());
    }
    if (g.documents.len() as u64) > g.num_signatures {
        return Err("More hashes than numSignatures".into());
    }
    if g.documents.len() > 1000 {
        return Err("Too many hashes (at most 1000)".into());
    }
    if g.description.as_ref().is_some_and(|d| d.chars().count() > 500) {
        return Err("description is longer than 500 characters".into());
    }
    if !g.documents.is_empty() {
        let algorithm = g.hash_algorithm.as_deref().and_then(HashAlgorithm::from_oid).ok_or("Invalid parameter hashAlgorithmOID")?;
        if g.documents.iter().any(|d| d.digest.len() != algorithm.len()) {
            return Err("Invalid digest value length".into());
        }
    }
    Ok(())
}

/// A credential request in query parameters (CSC v2 §8.3.2 / v1 §8.3.2).
fn param_grant(p: &Params) -> std::result::Result<CredentialGrant, String> {
    if p.get("signatureQualifier").is_some() && p.get("credentialID").is_none() {
        return Err("signatureQualifier is not supported: give credentialID".into());
    }
    let (list, v1) = match (p.get("hashes"), p.get("hash")) {
        (Some(h), None) => (Some(h), false),
        (None, Some(h)) => (Some(h), true),
        (None, None) => (None, false),
        (Some(_), Some(_)) => return Err("Give hashes or hash, not both".into()),
    };
    let digests = list.map(digests_of).transpose()?.unwrap_or_default();
    let hash_algorithm = match p.get("hashAlgorithmOID") {
        Some(oid) => Some(oid.to_string()),
        None if v1 => digests.first().and_then(|d| algorithm_by_length(d.len())).map(|a| a.oid().to_string()),
        None if !digests.is_empty() => return Err("Missing parameter hashAlgorithmOID".into()),
        None => None,
    };
    let num_signatures = match p.get("numSignatures") {
        Some(n) => n.parse::<u64>().map_err(|_| "Invalid value for parameter numSignatures".to_string())?,
        None if !digests.is_empty() => digests.len() as u64,
        None => return Err("Missing parameter numSignatures".into()),
    };
    let g = CredentialGrant {
        credential_id: p.get("credentialID").unwrap_or_default().to_string(),
        num_signatures,
        hash_algorithm,
        documents: digests.into_iter().map(|digest| DocumentDigest { digest, label: None }).collect(),
        description: p.get("description").map(String::from),
        rar: false,
        v1,
        sole_key: None,
    };
    check_grant(&g)?;
    Ok(g)
}

#[derive(Deserialize)]
struct RarDigest {
    hash: String,
    label: Option<String>,
}

#[derive(Deserialize)]
struct RarDetail {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "credentialID")]
    credential_id: Option<String>,
    #[serde(rename = "signatureQualifier")]
    signature_qualifier: Option<String>,
    #[serde(rename = "documentDigests")]
    document_digests: Vec<RarDigest>,
    #[serde(rename = "hashAlgorithmOID")]
    hash_algorithm: String,
    #[serde(rename = "numSignatures")]
    num_signatures: Option<u64>,
}

/// RAR `authorization_details` of type `credential` (CSC v2 §8.3.3, csc-api.md §3.15.3).
fn rar_grant(details: &str) -> std::result::Result<CredentialGrant, String> {
    let list: Vec<RarDetail> = cloudsign_csc::json::parse(details.as_bytes()).map_err(|e| format!("Invalid authorization_details: {e}"))?;
    let [d] = <[RarDetail; 1]>::try_from(list).map_err(|_| "authorization_details must hold exactly one object".to_string())?;
    if d.kind != "credential" {
        return Err("authorization_details type must be credential".into());
    }
    if d.credential_id.is_none() && d.signature_qualifier.is_some() {
        return Err("signatureQualifier is not supported: give credentialID".into());
    }
    if d.document_digests.is_empty() {
        return Err("authorization_details documentDigests is empty".into());
    }
    let mut documents = Vec::with_capacity(d.document_digests.len());
    for doc in d.document_digests {
        let digest = b64::decode_lenient(&doc.hash).filter(|v| !v.is_empty()).ok_or("Invalid hash in documentDigests: not base64")?;
        let label = doc.label.map(|l| l.chars().filter(|c| !c.is_control()).take(200).collect());
        documents.push(DocumentDigest { digest, label });
    }
    // CSC 2.0.0.2 has no count in RAR: one signature per digest (later versions add
    // numSignatures; it may not be below the digest count).
    let num_signatures = d.num_signatures.unwrap_or(documents.len() as u64);
    let g = CredentialGrant {
        credential_id: d.credential_id.unwrap_or_default(),
        num_signatures,
        hash_algorithm: Some(d.hash_algorithm),
        documents,
        description: None,
        rar: true,
        v1: false,
        sole_key: None,
    };
    check_grant(&g)?;
    Ok(g)
}

fn rar_echo(g: &CredentialGrant) -> serde_json::Value {
    json!([{
        "type": "credential",
        "credentialID": g.credential_id,
        "hashAlgorithmOID": g.hash_algorithm,
        "documentDigests": g.documents.iter().map(|d| json!({"hash": b64::encode(&d.digest), "label": d.label})).collect::<Vec<_>>(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris() {
        assert!(valid_redirect_uri("https://app.example/cb"));
        assert!(valid_redirect_uri("http://127.0.0.1:8080/cb"));
        assert!(valid_redirect_uri("http://localhost/cb"));
        assert!(valid_redirect_uri("com.example.app:/cb"));
        assert!(!valid_redirect_uri("http://app.example/cb"));
        assert!(!valid_redirect_uri("https://app.example/cb#x"));
        assert!(!valid_redirect_uri("javascript:alert(1)"));
        assert!(!valid_redirect_uri("/relative"));
    }

    #[test]
    fn redirect_parameters_are_encoded() {
        assert_eq!(redirect_to("https://a/cb", &[("code", "x y"), ("state", "&=")]), "https://a/cb?code=x%20y&state=%26%3D");
        assert_eq!(redirect_to("https://a/cb?k=1", &[("code", "c")]), "https://a/cb?k=1&code=c");
        let l = error_redirect("https://a/cb", Some("s"), "invalid_request", "bad thing");
        assert_eq!(error_of(&l), "bad thing");
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let request = AuthorizationRequest {
            client_id: "c".into(),
            redirect_uri: "https://a/cb".into(),
            redirect_uri_given: true,
            state: None,
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            credential: None,
        };
        assert!(check_pkce(&request, Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).is_ok());
        assert!(check_pkce(&request, Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx")).is_err());
        assert!(check_pkce(&request, None).is_err());
    }
}
