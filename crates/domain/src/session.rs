//! An authenticated caller and what its token lets it reach.

use serde::{Deserialize, Serialize};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Session {
    /// User id.
    pub user_id: String,
    /// User name.
    pub user_name: String,
    /// Set when the bearer is an OAuth credential-scope token: the session reaches that
    /// credential only, and the token itself is the SAD.
    pub credential: Option<CredentialScope>,
    /// The bearer token's hash, when the session comes from one: SADs are linked to it, so
    /// that revoking the token revokes them.
    pub token_hash: Option<String>,
}

impl Session {
    /// Whether this session may create credentials (CSC 2.2 §11.4 `credentials/create`).
    ///
    /// A service-scope session (auth/login, OAuth `service` scope, client credentials) may:
    /// it is the user acting on their own account. A credential-scope token may not (it
    /// authorizes signatures with one credential, nothing else). A 2.2 `credential-creation`
    /// token is never a `Session` of its own: `Service::authenticate` refuses it, and only
    /// `credentials/create` takes it, as a [`ManagementSession`].
    pub fn may_create_credentials(&self) -> bool {
        self.credential.is_none()
    }

    /// Whether this session may delete credential `credential_id` (CSC 2.2 §11.5
    /// `credentials/delete`): a service-scope session may (whether the credential is the
    /// user's is the caller's check, as for every credential method); a credential-scope
    /// token may not, not even for its own credential (signing is not deleting). A 2.2
    /// `credential-deletion` token reaches `credentials/delete` only, as a
    /// [`ManagementSession`], for the one credential it names.
    pub fn may_delete_credential(&self, credential_id: &str) -> bool {
        let _ = credential_id;
        self.credential.is_none()
    }

    /// The credential a credential-scope token is limited to, if the session is one.
    pub fn credential_scope(&self) -> Option<&str> {
        self.credential.as_ref().map(|c| c.credential_id.as_str())
    }
}

/// A one-shot grant of the CSC 2.2 credential-management scopes and RAR types
/// (`credential-creation`, `credential-deletion`, csc-api-2.2.md §4): what the signer approved
/// on the consent page, and all that the token reaches. Stored as JSON with the authorization
/// request (the field names are the stored format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "grant")]
pub enum CredentialManagement {
    /// `credential-creation`: one `credentials/create`.
    Creation {
        /// The RAR `credentialCreationRequest` the signer approved; `None` when the token was
        /// asked for with `scope` alone (then the create request says what it wants, within
        /// the operator's `[on_demand]` settings).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<CreationRequest>,
    },
    /// `credential-deletion`: one `credentials/delete` of this credential.
    Deletion {
        /// The credential.
        credential_id: String,
    },
}

/// What a credential creation asks for (CSC 2.2 §11.4 `credentialCreationRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreationRequest {
    /// Requested certificate policy (OID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_policy: Option<String>,
    /// The subject's data: OIDC claim names (ETSI TS 119 432) or `givenName`/`surname` (the
    /// EUDI server), a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The caller of `credentials/create` or `credentials/delete`: the session, and the one-shot
/// grant its token carries (`None`: a service- or credential-scope bearer, whose reach the
/// [`Session`] says). From `Service::authenticate_management`, the only way such a token
/// becomes a caller.
#[derive(Debug, Clone)]
pub struct ManagementSession {
    /// The user, and for a one-shot token its hash (`token_hash`, to spend it).
    pub session: Session,
    /// The credential-management grant of the token, if it is such a token.
    pub grant: Option<CredentialManagement>,
}

impl ManagementSession {
    /// Whether this caller may create a credential: a service-scope session, or a
    /// credential-creation token.
    pub fn may_create_credentials(&self) -> bool {
        match &self.grant {
            None => self.session.may_create_credentials(),
            Some(CredentialManagement::Creation { .. }) => true,
            Some(CredentialManagement::Deletion { .. }) => false,
        }
    }

    /// Whether this caller may delete credential `credential_id`: a service-scope session,
    /// or a credential-deletion token naming that credential.
    pub fn may_delete_credential(&self, credential_id: &str) -> bool {
        match &self.grant {
            None => self.session.may_delete_credential(credential_id),
            Some(CredentialManagement::Deletion { credential_id: granted }) => granted == credential_id,
            Some(CredentialManagement::Creation { .. }) => false,
        }
    }
}

#[cfg(test)]
mod session_tests {
    use super::*;

    fn service() -> Session {
        Session { user_id: "u".into(), user_name: "alice".into(), credential: None, token_hash: None }
    }

    #[test]
    fn only_service_scope_sessions_create_and_delete() {
        let service = service();
        assert!(service.may_create_credentials() && service.may_delete_credential("c1"));
        let scoped = Session {
            credential: Some(CredentialScope { credential_id: "c1".into(), sad_hash: "h".into(), token: "t".to_string().into() }),
            ..service
        };
        assert!(!scoped.may_create_credentials() && !scoped.may_delete_credential("c1"));
        assert_eq!(scoped.credential_scope(), Some("c1"));
        let scoped = ManagementSession { session: scoped, grant: None };
        assert!(!scoped.may_create_credentials() && !scoped.may_delete_credential("c1"));
    }

    #[test]
    fn management_grants_reach_their_one_method() {
        let creation = ManagementSession { session: service(), grant: Some(CredentialManagement::Creation { request: None }) };
        assert!(creation.may_create_credentials());
        assert!(!creation.may_delete_credential("c1"), "creating is not deleting");
        let deletion = ManagementSession { session: service(), grant: Some(CredentialManagement::Deletion { credential_id: "c1".into() }) };
        assert!(deletion.may_delete_credential("c1"));
        assert!(!deletion.may_delete_credential("c2"), "only the credential it names");
        assert!(!deletion.may_create_credentials());
        let service = ManagementSession { session: service(), grant: None };
        assert!(service.may_create_credentials() && service.may_delete_credential("c2"));
    }

    #[test]
    fn grants_are_stored_by_name() {
        let g = CredentialManagement::Deletion { credential_id: "c1".into() };
        assert_eq!(serde_json::to_string(&g).unwrap(), r#"{"grant":"deletion","credential_id":"c1"}"#);
        let g = CredentialManagement::Creation { request: None };
        assert_eq!(serde_json::from_str::<CredentialManagement>(r#"{"grant":"creation"}"#).unwrap(), g);
    }
}

/// The reach of a credential-scope token.
#[derive(Clone)]
pub struct CredentialScope {
    /// The credential.
    pub credential_id: String,
    /// The hash under which the token is stored as a SAD.
    pub(crate) sad_hash: String,
    /// The token itself: it is the SAD (a sole-control key is opened with it).
    pub(crate) token: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for CredentialScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialScope").field("credential_id", &self.credential_id).finish_non_exhaustive()
    }
}
