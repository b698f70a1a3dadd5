//! Service authorization (CSC v2 §8.2, §11.2, §11.3): password login, refresh tokens, bearer
//! resolution and revocation.

use cloudsign_store::Outcome;
use serde_json::json;
use zeroize::Zeroizing;

use cloudsign_store::{LoginAttempt, NewToken, TokenKind, UserRow};

use crate::credentials::{AttemptGuard, AttemptOf, lapsed};
use crate::secrets::{new_token, token_hash};
use crate::session::{CredentialManagement, CredentialScope, ManagementSession};
use crate::{Error, RequestContext, Result, Service, Session, now};

/// Consecutive wrong passwords an account takes before attempts are spaced out.
pub const LOGIN_FREE_FAILURES: i64 = 5;
/// The longest wait between two password attempts on one account.
pub const LOGIN_MAX_DELAY_SECONDS: i64 = 300;

/// Tokens issued by a login.
#[derive(Debug)]
pub struct Tokens {
    /// Access token.
    pub access_token: String,
    /// Refresh token, when asked for.
    pub refresh_token: Option<String>,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
}

impl Service {
    /// Log in with a user name and password (HTTP Basic at `auth/login`).
    pub async fn login_password(
        &self,
        ctx: &RequestContext,
        user_name: &str,
        password: Zeroizing<String>,
        remember_me: bool,
    ) -> Result<Tokens> {
        let user = self.check_password(ctx, user_name, password, "auth.login").await?;
        let tokens = self.issue_tokens(&user.id, remember_me, None, None).await?;
        self.audit(&user.name, "auth.login", Outcome::Ok, None, json!({"client": ctx.client, "rememberMe": remember_me})).await?;
        Ok(tokens)
    }

    /// Check a user's password (auditing a refusal under `event`). Unknown users cost the same
    /// argon2 run as known ones, so timing does not reveal which names exist.
    ///
    /// Password guessing is slowed per account (`Store::begin_login_attempt`): after
    /// `LOGIN_FREE_FAILURES` consecutive failures each attempt waits for its slot, 2, 4, 8, ...
    /// seconds apart up to `LOGIN_MAX_DELAY_SECONDS`, and an attempt before its slot is refused
    /// without running argon2. Only wrong passwords count: a check holds a place while it runs
    /// (a possible failure), and one that would go past the free failures while others are in
    /// flight waits for them (`wait_for_attempt`), so right passwords sent at once are never
    /// throttled. The count lives in the store, so it holds across nodes and restarts; a right
    /// password (or `admin user enable`) resets it.
    pub(crate) async fn check_password(
        &self,
        ctx: &RequestContext,
        user_name: &str,
        password: Zeroizing<String>,
        event: &str,
    ) -> Result<UserRow> {
        let user = self.store.user_by_name(user_name).await?;
        let mut guard = None;
        if let Some(u) = &user {
            let lease = new_token()?;
            let attempt = self
                .wait_for_attempt(|| async {
                    Ok(match self.store.begin_login_attempt(&u.id, &lease, now(), LOGIN_FREE_FAILURES, LOGIN_MAX_DELAY_SECONDS).await? {
                        LoginAttempt::Busy => None,
                        decided => Some(decided),
                    })
                })
                .await?;
            if let LoginAttempt::Throttled { retry_after } = attempt {
                self.audit(
                    user_name,
                    event,
                    Outcome::Refused,
                    None,
                    json!({"client": ctx.client, "reason": "throttled", "retryAfter": retry_after}),
                )
                .await?;
                return Err(Error::Throttled { retry_after: retry_after as u64 });
            }
            guard = Some(AttemptGuard::new(self, AttemptOf::User(u.id.clone()), lease));
        }
        let stored = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| self.dummy_password_hash().to_string());
        let matches = self.verify_secret_bounded(password, stored).await?;
        // A disabled account's right password counts as a failure: its backoff must not tell
        // whether a guess was right.
        let ok = matches && user.as_ref().is_some_and(|u| !u.disabled);
        if let (Some(u), Some(g)) = (&user, guard.as_mut()) {
            let held = if ok {
                self.store.login_succeeded(&u.id, g.lease(), now()).await
            } else {
                self.store.login_failed(&u.id, g.lease(), now()).await
            };
            g.ended(self);
            if !held? {
                return Err(lapsed());
            }
        }
        match user {
            Some(u) if ok => Ok(u),
            _ => {
                self.audit(user_name, event, Outcome::Refused, None, json!({"client": ctx.client})).await?;
                Err(Error::AuthenticationFailed)
            }
        }
    }

    /// Log in again with a refresh token. The refresh token is rotated: the old one stops
    /// working and a new one is returned with the new access token.
    /// A refresh token presented again after its rotation revokes the whole line (RFC 9700
    /// §4.14.2, `Store::consume_refresh_token`).
    pub async fn login_refresh(&self, ctx: &RequestContext, refresh_token: &str) -> Result<Tokens> {
        let old = token_hash(refresh_token);
        let Some(user_id) = self.store.consume_refresh_token(&old, None, now()).await? else {
            self.audit("-", "auth.login", Outcome::Refused, None, json!({"client": ctx.client, "grant": "refresh_token"})).await?;
            return Err(Error::invalid("Invalid refresh_token"));
        };
        let user = self.store.user_by_id(&user_id).await?.filter(|u| !u.disabled).ok_or_else(|| Error::invalid("Invalid refresh_token"))?;
        let tokens = self.issue_tokens(&user.id, true, None, Some(&old)).await?;
        self.audit(&user.name, "auth.login", Outcome::Ok, None, json!({"client": ctx.client, "grant": "refresh_token"})).await?;
        Ok(tokens)
    }

    /// Issue a service access token (and a refresh token), for `auth/login` (`client_id`
    /// `None`) or an OAuth client. A refresh token that replaces a rotated one (`rotated_from`)
    /// descends from it (`parent`), so that the rotated one presented again revokes it.
    pub(crate) async fn issue_tokens(
        &self,
        user_id: &str,
        with_refresh: bool,
        client_id: Option<&str>,
        rotated_from: Option<&str>,
    ) -> Result<Tokens> {
        let t = now();
        let refresh_token = if with_refresh { Some(new_token()?) } else { None };
        let parent = refresh_token.as_deref().map(token_hash);
        if let Some(hash) = &parent {
            let expires_at = t + self.cfg.refresh_token_ttl as i64;
            let token = NewToken {
                hash,
                kind: TokenKind::Refresh,
                user_id,
                parent: rotated_from,
                client_id,
                credential_id: None,
                expires_at,
                now: t,
            };
            self.store.insert_token(&token).await?;
        }
        let access_token = new_token()?;
        let hash = token_hash(&access_token);
        let expires_at = t + self.cfg.access_token_ttl as i64;
        let token = NewToken {
            hash: &hash,
            kind: TokenKind::Access,
            user_id,
            parent: parent.as_deref(),
            client_id,
            credential_id: None,
            expires_at,
            now: t,
        };
        self.store.insert_token(&token).await?;
        Ok(Tokens { access_token, refresh_token, expires_in: self.cfg.access_token_ttl })
    }

    /// Resolve a bearer token to its session: a service access token, or an OAuth
    /// credential-scope token (CSC v2 §8.3.3), which only reaches its own credential.
    ///
    /// The one-shot tokens of the 2.2 scopes `credential-creation` and `credential-deletion`
    /// are refused here, so that they reach no method but their own (list, info, authorize,
    /// signHash and every later method alike): `credentials/create` and `credentials/delete`
    /// take them through [`authenticate_management`](Self::authenticate_management).
    pub async fn authenticate(&self, bearer: &str) -> Result<Session> {
        let hash = token_hash(bearer);
        let row = self.store.token(&hash).await?.ok_or_else(|| Error::InvalidToken("The access token is not valid".into()))?;
        self.session_of(bearer, hash, row)
    }

    /// [`authenticate`](Self::authenticate) of a token row already read.
    fn session_of(&self, bearer: &str, hash: String, row: cloudsign_store::TokenRow) -> Result<Session> {
        let credential = match (row.kind, row.credential_id) {
            (TokenKind::Access, _) => None,
            (TokenKind::Credential, Some(credential_id)) => {
                Some(CredentialScope { credential_id, sad_hash: hash.clone(), token: Zeroizing::new(bearer.to_string()) })
            }
            (TokenKind::CredentialCreation, _) => {
                return Err(Error::InvalidToken("The access token grants credentials/create only".into()));
            }
            (TokenKind::CredentialDeletion, _) => {
                return Err(Error::InvalidToken("The access token grants credentials/delete only".into()));
            }
            _ => return Err(Error::InvalidToken("The access token is not valid".into())),
        };
        if row.revoked || row.expires_at <= now() {
            return Err(Error::ExpiredToken);
        }
        let session = Session { user_id: row.user_id, user_name: row.user_name, credential, token_hash: Some(hash.clone()) };
        Self::remember(&self.hot_sessions, &hash, &session);
        Ok(session)
    }

    /// Resolve the bearer of `credentials/create` or `credentials/delete` (CSC 2.2 §11.4,
    /// §11.5): what [`authenticate`](Self::authenticate) takes, or a one-shot
    /// `credential-creation` / `credential-deletion` token, with its grant. A creation token
    /// carries the creation request the signer approved (RAR), read back from the spent
    /// authorization code that issued it.
    pub async fn authenticate_management(&self, bearer: &str) -> Result<ManagementSession> {
        let hash = token_hash(bearer);
        let row = self.store.token(&hash).await?.ok_or_else(|| Error::InvalidToken("The access token is not valid".into()))?;
        let grant = match (row.kind, &row.credential_id) {
            (TokenKind::CredentialCreation, _) => {
                let stored = self.store.issued_grant(&hash).await?.ok_or(Error::ExpiredToken)?;
                let request: crate::oauth::AuthorizationRequest =
                    serde_json::from_str(&stored).map_err(|e| Error::Internal(format!("stored grant: {e}")))?;
                match request.management.map(|m| m.grant) {
                    Some(g @ CredentialManagement::Creation { .. }) => g,
                    _ => return Err(Error::Internal("a credential-creation token without its grant".into())),
                }
            }
            (TokenKind::CredentialDeletion, Some(id)) => CredentialManagement::Deletion { credential_id: id.clone() },
            _ => return Ok(ManagementSession { session: self.session_of(bearer, hash, row)?, grant: None }),
        };
        if row.revoked || row.expires_at <= now() {
            return Err(Error::ExpiredToken);
        }
        let session = Session { user_id: row.user_id, user_name: row.user_name, credential: None, token_hash: Some(hash) };
        Ok(ManagementSession { session, grant: Some(grant) })
    }

    /// The session for a signHash call: a remembered one (for the fast path, whose write
    /// re-checks the token) or a fresh [`authenticate`](Self::authenticate). Returns whether it
    /// was remembered.
    pub async fn session_for_signing(&self, bearer: &str) -> Result<(Session, bool)> {
        match Self::recall(&self.hot_sessions, &token_hash(bearer)) {
            Some(s) => Ok((s, true)),
            None => Ok((self.authenticate(bearer).await?, false)),
        }
    }

    /// Revoke one of the caller's tokens (CSC v2 §11.3). Revoking a refresh token also revokes
    /// the access tokens issued with it and the refresh tokens it was rotated into; revoking an
    /// access token leaves the refresh token. The SADs the revoked tokens obtained stop working.
    pub async fn revoke(&self, session: &Session, ctx: &RequestContext, token: &str, hint: Option<&str>) -> Result<()> {
        if let Some(h) = hint
            && h != "access_token"
            && h != "refresh_token"
        {
            return Err(Error::invalid("Invalid parameter token_type_hint"));
        }
        let found = self.store.revoke_token(&token_hash(token), &session.user_id).await?;
        self.audit(
            &session.user_name,
            "auth.revoke",
            if found { Outcome::Ok } else { Outcome::Refused },
            None,
            json!({"client": ctx.client}),
        )
        .await?;
        if !found {
            return Err(Error::invalid("Invalid parameter token"));
        }
        Ok(())
    }
}
