//! `tokens`: access, refresh and OAuth credential-scope tokens, by hash.

use crate::codec::StoredName;
use crate::db::{Conn, P};
use crate::{Result, Store};

/// What a stored token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A service access token (CSC v2 §11.2, or OAuth `service` scope).
    Access,
    /// A refresh token.
    Refresh,
    /// An OAuth `credential`-scope token (CSC v2 §8.3.3), which is also its own SAD.
    Credential,
}

impl TokenKind {
    /// The stored name (`access`, `refresh`, `credential`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::Credential => "credential",
        }
    }
}

impl StoredName for TokenKind {
    fn stored(self) -> &'static str {
        self.as_str()
    }
    fn from_stored(name: &str) -> Option<Self> {
        [Self::Access, Self::Refresh, Self::Credential].into_iter().find(|k| k.as_str() == name)
    }
}

/// What a bearer token resolves to.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// What the token is.
    pub kind: TokenKind,
    /// Owner.
    pub user_id: String,
    /// Owner's login name.
    pub user_name: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Revoked.
    pub revoked: bool,
    /// The credential of a credential-scope token.
    pub credential_id: Option<String>,
}

/// A token to store.
pub struct NewToken<'a> {
    /// SHA-256 of the token, hex.
    pub hash: &'a str,
    /// Access, refresh or credential token.
    pub kind: TokenKind,
    /// Owner.
    pub user_id: &'a str,
    /// The refresh token (hash) an access token was issued with.
    pub parent: Option<&'a str>,
    /// The OAuth client it was issued to (none for `auth/login`).
    pub client_id: Option<&'a str>,
    /// The credential of a credential-scope token.
    pub credential_id: Option<&'a str>,
    /// Expiry.
    pub expires_at: i64,
    /// Now.
    pub now: i64,
}

pub(crate) async fn insert_token(c: &mut Conn<'_>, t: &NewToken<'_>) -> Result<()> {
    c.exec(
        "INSERT INTO tokens (hash, kind, user_id, parent, expires_at, revoked, created_at, client_id, credential_id) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8)",
        &[
            P::S(t.hash),
            P::S(t.kind.as_str()),
            P::S(t.user_id),
            P::OS(t.parent),
            P::I(t.expires_at),
            P::I(t.now),
            P::OS(t.client_id),
            P::OS(t.credential_id),
        ],
    )
    .await?;
    Ok(())
}

impl Store {
    /// Store a token (by hash).
    pub async fn insert_token(&self, t: &NewToken<'_>) -> Result<()> {
        insert_token(&mut self.db.write().await?, t).await
    }

    /// Resolve a token hash, with its owner (a disabled owner makes the token revoked).
    pub async fn token(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = self
            .db
            .read()
            .await?
            .opt(
                "SELECT t.kind, t.user_id, u.name, t.expires_at, t.revoked, t.credential_id, u.disabled FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1",
                &[P::S(hash)],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(TokenRow {
            kind: r.name("kind")?,
            user_id: r.str("user_id")?,
            user_name: r.str("name")?,
            expires_at: r.i64("expires_at")?,
            revoked: r.flag("revoked")? || r.flag("disabled")?,
            credential_id: r.opt_str("credential_id")?,
        }))
    }

    /// Revoke a token; revoking a refresh token also revokes the access tokens issued from it
    /// (CSC §11.3, RFC 7009 §2.1). Only the user's own tokens are touched. Returns whether a
    /// token was found.
    /// A credential-scope token takes its SAD along.
    pub async fn revoke_token(&self, hash: &str, user_id: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = c
                .exec(
                    "UPDATE tokens SET revoked = 1 WHERE user_id = $2 AND (hash = $1 OR (parent = $1 AND EXISTS (SELECT 1 FROM tokens p WHERE p.hash = $1 AND p.kind = 'refresh')))",
                    &[P::S(hash), P::S(user_id)],
                )
                .await?;
            c.exec(
                "UPDATE sads SET revoked = 1 WHERE hash = $1 AND user_id = $2 AND EXISTS (SELECT 1 FROM tokens t WHERE t.hash = $1 AND t.kind = 'credential')",
                &[P::S(hash), P::S(user_id)],
            )
            .await?;
            Ok((n > 0, true))
        })
    }

    /// Atomically revoke a live refresh token (rotation); returns its owner if it was live and
    /// was issued to `client_id` (`None`: by `auth/login`), so a client cannot redeem another's.
    pub async fn consume_refresh_token(&self, hash: &str, client_id: Option<&str>, now: i64) -> Result<Option<String>> {
        let row = self
            .db
            .write()
            .await?
            .opt(
                "UPDATE tokens SET revoked = 1 WHERE hash = $1 AND kind = 'refresh' AND revoked = 0 AND expires_at > $2 \
                 AND COALESCE(client_id, '') = $3 RETURNING user_id",
                &[P::S(hash), P::I(now), P::S(client_id.unwrap_or(""))],
            )
            .await?;
        row.map(|r| r.str("user_id")).transpose()
    }

    /// Revoke a token issued to an OAuth client (RFC 7009): a refresh token takes its access
    /// tokens along, a credential token its SAD. Returns whether the client had such a token.
    pub async fn revoke_client_token(&self, hash: &str, client_id: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = c
                .exec(
                    "UPDATE tokens SET revoked = 1 WHERE client_id = $2 AND (hash = $1 OR (parent = $1 AND EXISTS \
                     (SELECT 1 FROM tokens p WHERE p.hash = $1 AND p.kind = 'refresh')))",
                    &[P::S(hash), P::S(client_id)],
                )
                .await?;
            c.exec(
                "UPDATE sads SET revoked = 1 WHERE hash = $1 AND EXISTS (SELECT 1 FROM tokens t WHERE t.hash = $1 AND t.client_id = $2)",
                &[P::S(hash), P::S(client_id)],
            )
            .await?;
            Ok((n > 0, true))
        })
    }
}
