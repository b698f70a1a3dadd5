//! The token endpoint (RFC 6749 §4.1.3 code exchange with RFC 7636 PKCE, §4.4
//! client_credentials, §6 refresh) and revocation (RFC 7009).

use cloudsign_asn1::b64;
use cloudsign_csc::oauth::{RevocationRequest, TokenRequest};
use cloudsign_store::Outcome;
use cloudsign_store::{ClientRow, CodeIssue, NewSad, NewToken, Redeemed, TokenKind};
use serde_json::json;

use super::{AuthorizationRequest, ClientAuth, CredentialGrant, ErrorCode, ManagementGrant, OAuthError, OResult, given, pkce_text_ok};
use crate::secrets::{ct_eq, new_token, token_hash};
use crate::session::CredentialManagement;
use crate::{Error, RequestContext, Service, Session, now};

/// What the token endpoint issued.
#[derive(Debug)]
pub struct IssuedToken {
    /// The access token (service scope) or the credential token, a SAD (credential scope).
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Refresh token (service scope, not for client_credentials: RFC 6749 §4.4.3).
    pub refresh_token: Option<String>,
    /// Credential scope: what the token authorizes (the sealed PIN key is never included).
    pub credential: Option<CredentialGrant>,
    /// A 2.2 credential-management token: its grant, and how it was asked for.
    pub management: Option<ManagementGrant>,
}

/// The token, the user it was issued to, and the credential (for the audit).
type Issued = (IssuedToken, String, Option<String>);

impl Service {
    /// `oauth2/token` (RFC 6749 §4.1.3, §4.4, §6).
    pub async fn token(&self, ctx: &RequestContext, auth: &ClientAuth, p: &TokenRequest) -> OResult<IssuedToken> {
        let grant_type = given(&p.grant_type).ok_or_else(|| OAuthError::request("Missing parameter grant_type"))?;
        if !matches!(grant_type, "authorization_code" | "client_credentials" | "refresh_token") {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
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
                    Outcome::Refused,
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
            Ok(_) => (Outcome::Ok, None),
            Err(e) => (Outcome::Refused, Some(e.description.clone())),
        };
        let credential = result.as_ref().ok().and_then(|(_, _, c)| c.clone());
        let actor = result.as_ref().map(|(_, user, _)| user.as_str()).unwrap_or("-");
        // A management token is no SAD: its credential (deletion) goes in the detail, so that
        // the SAD metrics, which count `oauth2.token` records with a credential, leave it out.
        let management = result.as_ref().ok().and_then(|(t, _, _)| t.management.as_ref());
        let deletes = management.and_then(|m| match &m.grant {
            CredentialManagement::Deletion { credential_id } => Some(credential_id.as_str()),
            CredentialManagement::Creation { .. } => None,
        });
        self.audit(
            actor,
            "oauth2.token",
            outcome,
            credential.as_deref(),
            json!({"client": ctx.client, "client_id": client.id, "grant_type": grant_type, "reason": reason,
                   "grant": management.map(|m| m.name()), "credentialID": deletes}),
        )
        .await?;
        result.map(|(r, _, _)| r)
    }

    async fn token_from_code(&self, client: &ClientRow, p: &TokenRequest) -> OResult<Issued> {
        let code = given(&p.code).ok_or_else(|| OAuthError::request("Missing parameter code"))?;
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
            match given(&p.redirect_uri) {
                Some(u) if u != request.redirect_uri => {
                    return Err(OAuthError::grant("redirect_uri differs from the authorization request"));
                }
                None if request.redirect_uri_given => return Err(OAuthError::grant("Missing parameter redirect_uri")),
                _ => {}
            }
            let verifier = given(&p.code_verifier);
            if let Err(e) = check_pkce(&request, verifier) {
                // RFC 7636 §4.6 with RFC 6749 §4.1.2: whoever presented a verifier that fails
                // may hold a stolen code and is guessing, so the code is burnt; the right
                // verifier cannot redeem it afterwards. A missing verifier guesses nothing.
                if verifier.is_some() {
                    self.store.burn_code(&code_hash).await.map_err(Error::from)?;
                }
                return Err(e);
            }
        }
        let t = now();
        let access_token = new_token()?;
        let access_hash = token_hash(&access_token);
        let (response, issue_refresh, sad_digests);
        match (&request.credential, &request.management) {
            (None, None) => {
                let refresh = new_token()?;
                issue_refresh = Some(token_hash(&refresh));
                sad_digests = None;
                response = IssuedToken {
                    access_token,
                    expires_in: self.cfg.access_token_ttl,
                    refresh_token: Some(refresh),
                    credential: None,
                    management: None,
                };
            }
            // A one-shot grant: no refresh token, no SAD, a short life.
            (None, Some(m)) => {
                // The credential to delete may have been deleted since the consent.
                if !row.used
                    && let CredentialManagement::Deletion { credential_id } = &m.grant
                {
                    self.deletable_credential(&user.id, &user.name, credential_id).await.map_err(|e| OAuthError::grant(e.to_string()))?;
                }
                issue_refresh = None;
                sad_digests = None;
                let expires_in = self.cfg.on_demand.token_lifetime();
                response = IssuedToken { access_token, expires_in, refresh_token: None, credential: None, management: Some(m.clone()) };
            }
            (Some(g), _) => {
                // The credential may have been revoked or locked since the consent.
                if !row.used {
                    let session = Session { user_id: user.id.clone(), user_name: user.name.clone(), credential: None, token_hash: None };
                    let cred = self.own_credential(&session, &g.credential_id).await.map_err(|_| OAuthError::grant("Invalid code"))?;
                    self.check_usable(&cred).map_err(|e| OAuthError::grant(e.to_string()))?;
                    self.refuse_if_approved_elsewhere(&cred).await.map_err(|e| OAuthError::grant(e.to_string()))?;
                }
                issue_refresh = None;
                sad_digests = Some(g.documents.iter().map(|d| crate::secrets::hex(&d.digest)).collect::<Vec<_>>());
                // The sealed PIN key stays in the store, under the token.
                let credential = CredentialGrant { sole_key: None, ..g.clone() };
                response = IssuedToken {
                    access_token,
                    expires_in: self.cfg.sad_ttl,
                    refresh_token: None,
                    credential: Some(credential),
                    management: None,
                };
            }
        }
        let (kind, credential_id) = match (&request.credential, request.management.as_ref().map(|m| &m.grant)) {
            (Some(g), _) => (TokenKind::Credential, Some(g.credential_id.as_str())),
            (None, Some(CredentialManagement::Creation { .. })) => (TokenKind::CredentialCreation, None),
            // The deletion token is bound to the one credential it names.
            (None, Some(CredentialManagement::Deletion { credential_id })) => (TokenKind::CredentialDeletion, Some(credential_id.as_str())),
            (None, None) => (TokenKind::Access, None),
        };
        let access = NewToken {
            hash: &access_hash,
            kind,
            user_id: &user.id,
            parent: issue_refresh.as_deref(),
            client_id: Some(&client.id),
            credential_id,
            expires_at: t + response.expires_in as i64,
            now: t,
        };
        let refresh = issue_refresh.as_deref().map(|hash| NewToken {
            hash,
            kind: TokenKind::Refresh,
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

    async fn token_for_client(&self, client: &ClientRow, p: &TokenRequest) -> OResult<Issued> {
        if given(&p.scope).is_some_and(|s| s != "service") {
            return Err(OAuthError::new(ErrorCode::InvalidScope, "client_credentials grants scope service only"));
        }
        let user_id = match (&client.secret_hash, &client.user_id) {
            (Some(_), Some(u)) => u,
            _ => {
                return Err(OAuthError::new(
                    ErrorCode::UnauthorizedClient,
                    "This client is not registered for the client_credentials grant",
                ));
            }
        };
        let user = self.store.user_by_id(user_id).await.map_err(Error::from)?.filter(|u| !u.disabled);
        let user = user.ok_or_else(|| OAuthError::new(ErrorCode::UnauthorizedClient, "The client's user is disabled"))?;
        // RFC 6749 §4.4.3: no refresh token for client credentials.
        let tokens = self.issue_tokens(&user.id, false, Some(&client.id), None).await?;
        Ok((service_response(tokens), user.name, None))
    }

    async fn token_from_refresh(&self, client: &ClientRow, p: &TokenRequest) -> OResult<Issued> {
        let refresh = given(&p.refresh_token).or_else(|| given(&p.refresh_token_v1)); // v1 sample spelling (csc-api.md §3.15.4)
        let refresh = refresh.ok_or_else(|| OAuthError::request("Missing parameter refresh_token"))?;
        let old = token_hash(refresh);
        // RFC 9700 §4.14.2: a rotated refresh token presented again revokes its whole line.
        let user_id = self
            .store
            .consume_refresh_token(&old, Some(&client.id), now())
            .await
            .map_err(Error::from)?
            .ok_or_else(|| OAuthError::grant("Invalid refresh_token"))?;
        let user = self.store.user_by_id(&user_id).await.map_err(Error::from)?.filter(|u| !u.disabled);
        let user = user.ok_or_else(|| OAuthError::grant("Invalid refresh_token"))?;
        let tokens = self.issue_tokens(&user.id, true, Some(&client.id), Some(&old)).await?;
        Ok((service_response(tokens), user.name, None))
    }

    /// `oauth2/revoke` (RFC 7009; CSC: an unknown token is `invalid_request`).
    pub async fn oauth_revoke(&self, ctx: &RequestContext, auth: &ClientAuth, p: &RevocationRequest) -> OResult<()> {
        let client = self.authenticate_client(auth).await?;
        let token = given(&p.token).ok_or_else(|| OAuthError::request("Missing parameter token"))?;
        if let Some(hint) = given(&p.token_type_hint)
            && hint != "access_token"
            && hint != "refresh_token"
        {
            return Err(OAuthError::new(ErrorCode::UnsupportedTokenType, "token_type_hint is access_token or refresh_token"));
        }
        let found = self.store.revoke_client_token(&token_hash(token), &client.id).await.map_err(Error::from)?;
        self.audit(
            "-",
            "oauth2.revoke",
            if found { Outcome::Ok } else { Outcome::Refused },
            None,
            json!({"client": ctx.client, "client_id": client.id}),
        )
        .await?;
        if !found {
            return Err(OAuthError::request("Invalid parameter token"));
        }
        Ok(())
    }
}

fn service_response(t: crate::Tokens) -> IssuedToken {
    IssuedToken {
        access_token: t.access_token,
        expires_in: t.expires_in,
        refresh_token: t.refresh_token,
        credential: None,
        management: None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
            management: None,
        };
        assert!(check_pkce(&request, Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).is_ok());
        assert!(check_pkce(&request, Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx")).is_err());
        assert!(check_pkce(&request, None).is_err());
    }
}
