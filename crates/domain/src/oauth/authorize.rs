//! Authorization requests (RFC 6749 §4.1.1, CSC v2 §8.3.2), pushed authorization requests
//! (RFC 9126), and the flow: the authorization in progress in one browser, held by the handle
//! in its cookie.

use cloudsign_asn1::{HashAlgorithm, b64};
use cloudsign_csc::oauth::{
    AuthorizationDetail, AuthorizeRequest, CredentialCreationDetail, CredentialDeletionDetail, RAR_CREDENTIAL, RAR_CREDENTIAL_2025,
    RAR_CREDENTIAL_CREATION, RAR_CREDENTIAL_DELETION, SCOPE_CREDENTIAL_CREATION, SCOPE_CREDENTIAL_DELETION,
};
use cloudsign_store::ClientRow;
use cloudsign_store::{Outcome, RequestKind};
use serde_json::json;

use super::{
    AuthorizationRequest, AuthorizeError, ClientAuth, ClientRedirect, CredentialGrant, DocumentDigest, ErrorCode, FlowError,
    ManagementGrant, OAuthError, OResult, given, pkce_text_ok,
};
use crate::secrets::{ct_eq, new_token, token_hash};
use crate::session::{CreationRequest, CredentialManagement};
use crate::{Error, RequestContext, Service, now};

/// Lifetime of a pushed authorization request (RFC 9126 §2.2: short).
const PAR_TTL: u64 = 90;
/// The `request_uri` prefix (RFC 9126 §2.2).
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// What an authorization request asks for: a credential grant, a management grant, or
/// neither (service scope).
type Asked = (Option<CredentialGrant>, Option<ManagementGrant>);

/// The hash of the CSRF token of an authorization in progress: derived from the flow handle
/// held in the browser's cookie, so a page from another site cannot know it.
fn csrf_of(flow: &str) -> String {
    token_hash(&format!("csrf:{flow}"))
}

impl Service {
    /// Validate an authorization request (query of `oauth2/authorize`, or the body of
    /// `pushed_authorize`). The client and redirect URI are checked first: until both are
    /// known good, errors are never sent to the redirect URI (RFC 6749 §4.1.2.1).
    fn validate_request(&self, client: &ClientRow, p: &AuthorizeRequest) -> std::result::Result<AuthorizationRequest, AuthorizeError> {
        let redirect_uri = match given(&p.redirect_uri) {
            // A loopback redirect URI matches on any port (RFC 8252 §7.3, `clients::redirect_uri_matches`).
            Some(u) if client.redirect_uris.iter().any(|r| super::clients::redirect_uri_matches(r, u)) => u.to_string(),
            Some(_) => return Err(AuthorizeError::NoRedirect("The redirect_uri is not registered for this client".into())),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return Err(AuthorizeError::NoRedirect("Missing parameter redirect_uri".into())),
        };
        let state = given(&p.state).map(String::from);
        let fail = |code: ErrorCode, description: &str| {
            AuthorizeError::Redirect(ClientRedirect::error(&redirect_uri, state.as_deref(), code, description))
        };
        if state.as_ref().is_some_and(|s| s.len() > 512) {
            return Err(fail(ErrorCode::InvalidRequest, "state is longer than 512 characters"));
        }
        match given(&p.response_type) {
            Some("code") => {}
            None => return Err(fail(ErrorCode::InvalidRequest, "Missing parameter response_type")),
            Some(_) => return Err(fail(ErrorCode::UnsupportedResponseType, "Only response_type=code is supported")),
        }
        // RFC 7636; RFC 9700 §2.1.1: S256 for public clients, and never a downgrade to plain.
        let challenge = given(&p.code_challenge).map(String::from);
        let method = match (&challenge, given(&p.code_challenge_method)) {
            (None, Some(_)) => return Err(fail(ErrorCode::InvalidRequest, "code_challenge_method without code_challenge")),
            (None, None) => None,
            (Some(_), None | Some("plain")) => Some("plain"),
            (Some(_), Some("S256")) => Some("S256"),
            (Some(_), Some(_)) => return Err(fail(ErrorCode::InvalidRequest, "code_challenge_method must be S256 or plain")),
        };
        let public = client.secret_hash.is_none();
        if public && method != Some("S256") {
            return Err(fail(ErrorCode::InvalidRequest, "PKCE with code_challenge_method=S256 is required for public clients"));
        }
        if let Some(c) = &challenge
            && !pkce_text_ok(c)
        {
            return Err(fail(ErrorCode::InvalidRequest, "Invalid code_challenge"));
        }
        let (credential, management) = match self.asked_grant(p) {
            Ok(asked) => asked,
            Err((code, m)) => return Err(fail(code, &m)),
        };
        Ok(AuthorizationRequest {
            client_id: client.id.clone(),
            redirect_uri,
            redirect_uri_given: given(&p.redirect_uri).is_some(),
            state,
            code_challenge: challenge,
            code_challenge_method: method.map(String::from),
            credential,
            management,
        })
    }

    /// What an authorization request asks for, from its `scope` and `authorization_details`:
    /// service scope (neither), a credential grant, or a 2.2 credential-management grant.
    fn asked_grant(&self, p: &AuthorizeRequest) -> std::result::Result<Asked, (ErrorCode, String)> {
        let invalid = |m: String| (ErrorCode::InvalidRequest, m);
        let scope = given(&p.scope);
        let details = given(&p.authorization_details);
        let scope_kind = scope.map(ScopeKind::of);
        let rar_kind = details.map(rar_kind_of);
        let management = matches!(scope_kind, Some(ScopeKind::Creation | ScopeKind::Deletion))
            || matches!(rar_kind, Some(ScopeKind::Creation | ScopeKind::Deletion));
        // csc-api-2.2.md §4: offered with credentials/create and credentials/delete only.
        if management && !self.cfg.on_demand.enabled {
            return Err((ErrorCode::InvalidScope, "credential creation and deletion are not offered by this service".into()));
        }
        match (scope_kind, details, rar_kind) {
            (Some(ScopeKind::Other), _, _) => {
                Err((ErrorCode::InvalidScope, "scope is service, credential, credential-creation or credential-deletion".into()))
            }
            // The EUDI server derives the scope from the RAR type when `scope` is missing;
            // a scope that names another grant than the RAR type is a contradiction.
            (s, Some(d), Some(k @ (ScopeKind::Creation | ScopeKind::Deletion))) => {
                if s.is_some_and(|s| s != k) {
                    return Err(invalid("scope and the authorization_details type ask for different grants".into()));
                }
                let (grant, rar_type) = management_rar(d).map_err(invalid)?;
                self.check_management(&grant).map_err(invalid)?;
                Ok((None, Some(ManagementGrant { grant, rar_type: Some(rar_type), scope: scope.map(String::from) })))
            }
            (Some(ScopeKind::Creation | ScopeKind::Deletion), Some(_), _) => {
                Err(invalid("authorization_details of type credential needs scope credential".into()))
            }
            (Some(ScopeKind::Creation), None, _) => {
                let grant = CredentialManagement::Creation { request: None };
                Ok((None, Some(ManagementGrant { grant, rar_type: None, scope: scope.map(String::from) })))
            }
            // The credential to delete is the credential-scope parameter `credentialID`.
            (Some(ScopeKind::Deletion), None, _) => {
                let id = given(&p.credential_id).ok_or_else(|| invalid("Missing parameter credentialID".into()))?;
                let grant = CredentialManagement::Deletion { credential_id: id.to_string() };
                Ok((None, Some(ManagementGrant { grant, rar_type: None, scope: scope.map(String::from) })))
            }
            (None | Some(ScopeKind::Credential), Some(d), _) => Ok((Some(rar_grant(d).map_err(invalid)?), None)),
            (Some(ScopeKind::Credential), None, _) => Ok((Some(param_grant(p).map_err(invalid)?), None)),
            (None | Some(ScopeKind::Service), None, _) => Ok((None, None)),
            (Some(ScopeKind::Service), Some(_), _) => Err(invalid("authorization_details needs scope credential".into())),
        }
    }

    /// The operator's rules on a management grant, before the signer sees it.
    fn check_management(&self, grant: &CredentialManagement) -> std::result::Result<(), String> {
        match grant {
            CredentialManagement::Creation { request: Some(r) } => self.check_creation_request(r).map(|_| ()).map_err(|e| e.to_string()),
            CredentialManagement::Creation { request: None } => Ok(()),
            CredentialManagement::Deletion { credential_id } if credential_id.is_empty() => {
                Err("authorization_details credentialID is empty".into())
            }
            CredentialManagement::Deletion { .. } => Ok(()),
        }
    }

    /// `oauth2/pushed_authorize` (RFC 9126): validate and store the request; the browser then
    /// brings only `client_id` and the returned `request_uri`. Returns the `request_uri` and
    /// its lifetime.
    pub async fn pushed_authorize(&self, ctx: &RequestContext, auth: &ClientAuth, p: &AuthorizeRequest) -> OResult<(String, u64)> {
        let client = self.authenticate_client(auth).await?;
        if given(&p.request_uri).is_some() {
            return Err(OAuthError::request("request_uri is not allowed in a pushed authorization request"));
        }
        if given(&p.client_id).is_some_and(|id| id != client.id) {
            return Err(OAuthError::request("client_id differs from the authenticated client"));
        }
        // RFC 9126 §2.3: the errors of the authorization endpoint, answered in the body.
        let request = self.validate_request(&client, p).map_err(|e| match e {
            AuthorizeError::NoRedirect(m) => OAuthError::request(m),
            AuthorizeError::Redirect(r) => {
                OAuthError::request(r.result.err().map(|e| e.description).unwrap_or_else(|| "Invalid authorization request".into()))
            }
        })?;
        let handle = new_token()?;
        let body = serde_json::to_string(&request).map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .put_oauth_request(&token_hash(&handle), RequestKind::Par, &client.id, &body, now() + PAR_TTL as i64)
            .await
            .map_err(Error::from)?;
        self.audit("-", "oauth2.par", Outcome::Ok, None, json!({"client": ctx.client, "client_id": client.id})).await?;
        Ok((format!("{REQUEST_URI_PREFIX}{handle}"), PAR_TTL))
    }

    /// `oauth2/authorize`: validate the request (or take the pushed one) and start an
    /// authorization in this browser. Returns the flow handle the browser keeps in a cookie.
    pub async fn begin_authorization(&self, p: &AuthorizeRequest) -> std::result::Result<String, AuthorizeError> {
        let internal = |e: Error| {
            tracing::error!(detail = %e, "authorization request failed");
            AuthorizeError::NoRedirect("The service cannot take authorization requests now; try again later".into())
        };
        let client_id = given(&p.client_id).ok_or_else(|| AuthorizeError::NoRedirect("Missing parameter client_id".into()))?;
        let client = self
            .store
            .client(client_id)
            .await
            .map_err(|e| internal(e.into()))?
            .ok_or_else(|| AuthorizeError::NoRedirect("Unknown client_id".into()))?;
        let request = match given(&p.request_uri) {
            Some(uri) => {
                let handle = uri.strip_prefix(REQUEST_URI_PREFIX).unwrap_or_default();
                let row = self
                    .store
                    .take_oauth_request(&token_hash(handle), RequestKind::Par, now())
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
            .put_oauth_request(&token_hash(&flow), RequestKind::Flow, &client.id, &body, now() + self.cfg.oauth_flow_ttl as i64)
            .await
            .map_err(|e| internal(e.into()))?;
        Ok(flow)
    }

    /// The CSRF token the pages embed for the flow `flow`.
    pub fn flow_csrf(&self, flow: &str) -> String {
        csrf_of(flow)
    }

    /// The flow's request, its client and the user once logged in.
    pub(super) async fn load_flow(&self, flow: &str) -> std::result::Result<(AuthorizationRequest, ClientRow, Option<String>), FlowError> {
        let row =
            self.store.oauth_request(&token_hash(flow), RequestKind::Flow, now()).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
        let request: AuthorizationRequest = serde_json::from_str(&row.request).map_err(|e| Error::Internal(e.to_string()))?;
        let client = self.store.client(&row.client_id).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
        Ok((request, client, row.user_id))
    }

    pub(super) fn check_csrf(flow: &str, csrf: Option<&str>) -> std::result::Result<(), FlowError> {
        match csrf {
            Some(c) if ct_eq(c.as_bytes(), csrf_of(flow).as_bytes()) => Ok(()),
            _ => Err(FlowError::Forbidden),
        }
    }

    /// End the flow: what makes an approval (or a refusal) count once.
    pub(super) async fn take_flow(&self, flow: &str) -> std::result::Result<(), FlowError> {
        self.store.take_oauth_request(&token_hash(flow), RequestKind::Flow, now()).await.map_err(Error::from)?.ok_or(FlowError::NoFlow)?;
        Ok(())
    }
}

/// The grant a `scope` value or an `authorization_details` type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeKind {
    Service,
    Credential,
    /// 2.2 `credential-creation` (csc-api-2.2.md §4: every spelling seen is accepted).
    Creation,
    /// 2.2 `credential-deletion`.
    Deletion,
    Other,
}

impl ScopeKind {
    fn of(scope: &str) -> Self {
        match scope {
            "service" => Self::Service,
            "credential" => Self::Credential,
            s if SCOPE_CREDENTIAL_CREATION.contains(&s) => Self::Creation,
            s if SCOPE_CREDENTIAL_DELETION.contains(&s) => Self::Deletion,
            _ => Self::Other,
        }
    }
}

/// The grant `authorization_details` asks for, from the `type` of its first object: creation,
/// deletion, or (anything else, including what does not parse) credential, whose parser
/// names what is wrong.
fn rar_kind_of(details: &str) -> ScopeKind {
    let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(details) else { return ScopeKind::Credential };
    match list.first().and_then(|d| d.get("type")).and_then(|t| t.as_str()) {
        Some(t) if RAR_CREDENTIAL_CREATION.contains(&t) => ScopeKind::Creation,
        Some(t) if RAR_CREDENTIAL_DELETION.contains(&t) => ScopeKind::Deletion,
        _ => ScopeKind::Credential,
    }
}

/// RAR `authorization_details` of a 2.2 credential-management type (csc-api-2.2.md §4):
/// creation with its `credentialCreationRequest`, deletion with its `credentialID`. Returns
/// the grant and the type as sent.
fn management_rar(details: &str) -> std::result::Result<(CredentialManagement, String), String> {
    let list: Vec<serde_json::Value> =
        cloudsign_csc::json::parse(details.as_bytes()).map_err(|e| format!("Invalid authorization_details: {e}"))?;
    let [d] = <[serde_json::Value; 1]>::try_from(list).map_err(|_| "authorization_details must hold exactly one object".to_string())?;
    let text = d.to_string();
    let kind = d.get("type").and_then(|t| t.as_str()).unwrap_or_default();
    if RAR_CREDENTIAL_CREATION.contains(&kind) {
        let c: CredentialCreationDetail =
            cloudsign_csc::json::parse(text.as_bytes()).map_err(|e| format!("Invalid authorization_details: {e}"))?;
        let r = c.credential_creation_request;
        let subject_data = match r.subject_data {
            None => None,
            Some(serde_json::Value::Object(m)) => Some(m),
            Some(_) => return Err("Invalid authorization_details: subjectData is not a JSON object".into()),
        };
        let request = CreationRequest { certificate_policy: r.certificate_policy, subject_data };
        Ok((CredentialManagement::Creation { request: Some(request) }, c.kind))
    } else {
        let c: CredentialDeletionDetail =
            cloudsign_csc::json::parse(text.as_bytes()).map_err(|e| format!("Invalid authorization_details: {e}"))?;
        Ok((CredentialManagement::Deletion { credential_id: c.credential_id }, c.kind))
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
fn param_grant(p: &AuthorizeRequest) -> std::result::Result<CredentialGrant, String> {
    if given(&p.signature_qualifier).is_some() && given(&p.credential_id).is_none() {
        return Err("signatureQualifier is not supported: give credentialID".into());
    }
    let (list, v1) = match (given(&p.hashes), given(&p.hash)) {
        (Some(h), None) => (Some(h), false),
        (None, Some(h)) => (Some(h), true),
        (None, None) => (None, false),
        (Some(_), Some(_)) => return Err("Give hashes or hash, not both".into()),
    };
    let digests = list.map(digests_of).transpose()?.unwrap_or_default();
    let hash_algorithm = match given(&p.hash_algorithm_oid) {
        Some(oid) => Some(oid.to_string()),
        None if v1 => digests.first().and_then(|d| algorithm_by_length(d.len())).map(|a| a.oid().to_string()),
        None if !digests.is_empty() => return Err("Missing parameter hashAlgorithmOID".into()),
        None => None,
    };
    let num_signatures = match given(&p.num_signatures) {
        Some(n) => n.parse::<u64>().map_err(|_| "Invalid value for parameter numSignatures".to_string())?,
        None if !digests.is_empty() => digests.len() as u64,
        None => return Err("Missing parameter numSignatures".into()),
    };
    let g = CredentialGrant {
        credential_id: given(&p.credential_id).unwrap_or_default().to_string(),
        num_signatures,
        hash_algorithm,
        documents: digests.into_iter().map(|digest| DocumentDigest { digest, label: None, hash_type: None }).collect(),
        description: given(&p.description).map(String::from),
        rar: false,
        rar_type: None,
        v1,
        sole_key: None,
    };
    check_grant(&g)?;
    Ok(g)
}

/// RAR `authorization_details` of type `credential` (CSC v2 §8.3.3, csc-api.md §3.15.3) or
/// its 2.2 URI form (csc-api-2.2.md §4).
fn rar_grant(details: &str) -> std::result::Result<CredentialGrant, String> {
    let list: Vec<AuthorizationDetail> =
        cloudsign_csc::json::parse(details.as_bytes()).map_err(|e| format!("Invalid authorization_details: {e}"))?;
    let [d] = <[AuthorizationDetail; 1]>::try_from(list).map_err(|_| "authorization_details must hold exactly one object".to_string())?;
    if d.kind != RAR_CREDENTIAL && d.kind != RAR_CREDENTIAL_2025 {
        return Err(format!("authorization_details type must be {RAR_CREDENTIAL} or {RAR_CREDENTIAL_2025}"));
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
        // 2.2 `hashType`: matched without letter case, kept as sent (csc-api-2.2.md §4).
        if let Some(t) = &doc.hash_type
            && !cloudsign_csc::v2::HASH_TYPES.iter().any(|k| k.eq_ignore_ascii_case(t))
        {
            return Err("Invalid hashType in documentDigests: SDR, DTBSR or SODR".into());
        }
        documents.push(DocumentDigest { digest, label, hash_type: doc.hash_type });
    }
    // CSC 2.0.0.2 has no count in RAR: one signature per digest (later versions add
    // numSignatures; it may not be below the digest count).
    let num_signatures = d.num_signatures.unwrap_or(documents.len() as u64);
    let g = CredentialGrant {
        credential_id: d.credential_id.unwrap_or_default(),
        num_signatures,
        hash_algorithm: Some(d.hash_algorithm_oid),
        documents,
        description: None,
        rar: true,
        rar_type: Some(d.kind),
        v1: false,
        sole_key: None,
    };
    check_grant(&g)?;
    Ok(g)
}
