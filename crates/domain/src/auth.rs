//! Service authorization (CSC v2 §8.2, §11.2, §11.3): password login, refresh tokens, bearer
//! resolution and revocation.

use serde_json::json;
use zeroize::Zeroizing;

use crate::secrets::{new_token, token_hash, verify_secret};
use crate::{Error, RequestContext, Result, Service, Session, now};

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
        let user = self.store.user_by_name(user_name).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| self.dummy_password_hash().to_string());
        // Always run argon2, even for unknown users, so timing does not reveal which names exist.
        let matches =
            tokio::task::spawn_blocking(move || verify_secret(&password, &stored)).await.map_err(|e| Error::Internal(e.to_string()))??;
        let user = match user {
            Some(u) if matches && !u.disabled => u,
            _ => {
                self.audit(user_name, "auth.login", "refused", None, json!({"client": ctx.client})).await?;
                return Err(Error::AuthenticationFailed);
            }
        };
        let tokens = self.issue_tokens(&user.id, remember_me).await?;
        self.audit(&user.name, "auth.login", "ok", None, json!({"client": ctx.client, "rememberMe": remember_me})).await?;
        Ok(tokens)
    }

    /// Log in again with a refresh token. The refresh token is rotated: the old one stops
    /// working and a new one is returned with the new access token.
    pub async fn login_refresh(&self, ctx: &RequestContext, refresh_token: &str) -> Result<Tokens> {
        let Some(user_id) = self.store.consume_refresh_token(&token_hash(refresh_token), now()).await? else {
            self.audit("-", "auth.login", "refused", None, json!({"client": ctx.client, "grant": "refresh_token"})).await?;
            return Err(Error::invalid("Invalid refresh_token"));
        };
        let user = self.store.user_by_id(&user_id).await?.filter(|u| !u.disabled).ok_or_else(|| Error::invalid("Invalid refresh_token"))?;
        let tokens = self.issue_tokens(&user.id, true).await?;
        self.audit(&user.name, "auth.login", "ok", None, json!({"client": ctx.client, "grant": "refresh_token"})).await?;
        Ok(tokens)
    }

    async fn issue_tokens(&self, user_id: &str, remember_me: bool) -> Result<Tokens> {
        let t = now();
        let refresh_token = if remember_me {
            let token = new_token()?;
            self.store.insert_token(&token_hash(&token), "refresh", user_id, None, t + self.cfg.refresh_token_ttl as i64, t).await?;
            Some(token)
        } else {
            None
        };
        let access_token = new_token()?;
        let parent = refresh_token.as_deref().map(token_hash);
        self.store
            .insert_token(&token_hash(&access_token), "access", user_id, parent.as_deref(), t + self.cfg.access_token_ttl as i64, t)
            .await?;
        Ok(Tokens { access_token, refresh_token, expires_in: self.cfg.access_token_ttl })
    }

    /// Resolve a bearer token to its session.
    pub async fn authenticate(&self, bearer: &str) -> Result<Session> {
        let row =
            self.store.token(&token_hash(bearer)).await?.ok_or_else(|| Error::InvalidToken("The access token is not valid".into()))?;
        if row.kind != "access" {
            return Err(Error::InvalidToken("The access token is not valid".into()));
        }
        if row.revoked || row.expires_at <= now() {
            return Err(Error::ExpiredToken);
        }
        Ok(Session { user_id: row.user_id, user_name: row.user_name })
    }

    /// Revoke one of the caller's tokens (CSC v2 §11.3). Revoking a refresh token also revokes
    /// the access tokens issued with it; revoking an access token leaves the refresh token.
    pub async fn revoke(&self, session: &Session, ctx: &RequestContext, token: &str, hint: Option<&str>) -> Result<()> {
        if let Some(h) = hint {
            if h != "access_token" && h != "refresh_token" {
                return Err(Error::invalid("Invalid parameter token_type_hint"));
            }
        }
        let found = self.store.revoke_token(&token_hash(token), &session.user_id).await?;
        self.audit(&session.user_name, "auth.revoke", if found { "ok" } else { "refused" }, None, json!({"client": ctx.client})).await?;
        if !found {
            return Err(Error::invalid("Invalid parameter token"));
        }
        Ok(())
    }
}
