//! `tokens`: access, refresh, OAuth credential-scope and credential-management tokens, by hash.

use crate::codec::StoredName;
use crate::db::{Conn, P};
use crate::sad::{NewSad, insert_sad};
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
    /// An OAuth `credential-creation` token (CSC 2.2 §11.4, csc-api-2.2.md §4): one
    /// `credentials/create`, nothing else.
    CredentialCreation,
    /// An OAuth `credential-deletion` token (CSC 2.2 §11.5): one `credentials/delete` of the
    /// credential in `credential_id`, nothing else.
    CredentialDeletion,
}

impl TokenKind {
    /// Every kind, for reading the stored names back.
    const ALL: [Self; 5] = [Self::Access, Self::Refresh, Self::Credential, Self::CredentialCreation, Self::CredentialDeletion];

    /// The stored name (`access`, `refresh`, `credential`, `credential_creation`,
    /// `credential_deletion`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::Credential => "credential",
            Self::CredentialCreation => "credential_creation",
            Self::CredentialDeletion => "credential_deletion",
        }
    }
}

impl StoredName for TokenKind {
    fn stored(self) -> &'static str {
        self.as_str()
    }
    fn from_stored(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
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
    /// The credential of a credential-scope or credential-deletion token.
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
    /// The credential of a credential-scope or credential-deletion token.
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

    /// Spend a one-shot token (CSC 2.2 credential-creation and credential-deletion): revoke it
    /// if it is live, of `kind`, and (for a deletion token) bound to `credential_id`. One
    /// statement, so that of racing requests on any number of nodes exactly one gets `true`.
    pub async fn consume_token(&self, hash: &str, kind: TokenKind, credential_id: Option<&str>, now: i64) -> Result<bool> {
        let n = self
            .db
            .write()
            .await?
            .exec(
                "UPDATE tokens SET revoked = 1 WHERE hash = $1 AND kind = $2 AND revoked = 0 AND expires_at > $3 \
                 AND COALESCE(credential_id, '') = $4 \
                 AND user_id IN (SELECT id FROM users WHERE disabled = 0)",
                &[P::S(hash), P::S(kind.as_str()), P::I(now), P::S(credential_id.unwrap_or(""))],
            )
            .await?;
        Ok(n == 1)
    }

    /// Revoke a token and every token descended from it: a refresh token takes along the access
    /// tokens issued with it and the refresh tokens it was rotated into (with theirs), so that
    /// revoking any refresh token of a line ends the grant (RFC 7009 §2.1). The SADs those tokens
    /// obtained, and their extensions, stop working too; a credential-scope token takes its own
    /// SAD along. Only the user's own tokens are touched (CSC §11.3). Returns whether a token was
    /// found.
    pub async fn revoke_token(&self, hash: &str, user_id: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = revoke_tree(&mut c, "hash = $1 AND user_id = $2", &[P::S(hash), P::S(user_id)]).await?;
            Ok((n > 0, true))
        })
    }

    /// Rotate a live refresh token: revoke it and return its owner, if it was live and issued to
    /// `client_id` (`None`: by `auth/login`), so a client cannot redeem another's. A refresh
    /// token that was already rotated (or revoked) and is presented again is a sign that it
    /// leaked: every token descended from it is revoked, with the SADs they obtained, so the
    /// live end of the line stops working (RFC 9700 §4.14.2).
    pub async fn consume_refresh_token(&self, hash: &str, client_id: Option<&str>, now: i64) -> Result<Option<String>> {
        transaction!(self.db, |c| {
            let row = c
                .opt(
                    "UPDATE tokens SET revoked = 1 WHERE hash = $1 AND kind = 'refresh' AND revoked = 0 AND expires_at > $2 \
                     AND COALESCE(client_id, '') = $3 RETURNING user_id",
                    &[P::S(hash), P::I(now), P::S(client_id.unwrap_or(""))],
                )
                .await?;
            if let Some(r) = row {
                return Ok((Some(r.str("user_id")?), true));
            }
            let n = revoke_tree(&mut c, "hash = $1 AND kind = 'refresh' AND revoked = 1", &[P::S(hash)]).await?;
            Ok((None, n > 0))
        })
    }

    /// Revoke a token issued to an OAuth client (RFC 7009) with everything descended from it,
    /// as [`Store::revoke_token`] does. Returns whether the client had such a token.
    pub async fn revoke_client_token(&self, hash: &str, client_id: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            let n = revoke_tree(&mut c, "hash = $1 AND client_id = $2", &[P::S(hash), P::S(client_id)]).await?;
            Ok((n > 0, true))
        })
    }

    /// Store a SAD obtained with the access token `token` (hash), so that revoking the token
    /// revokes the SAD. Returns `false`, storing nothing, if the token is no longer live: it
    /// was revoked while the factors were checked.
    pub async fn insert_sad_for_token(&self, s: &NewSad<'_>, token: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            // Takes the token's row lock (PostgreSQL): a revocation either ran before (and this
            // finds the token revoked) or waits for this commit (and then sees the SAD).
            let live = c
                .exec(
                    "UPDATE tokens SET revoked = revoked WHERE hash = $1 AND revoked = 0 AND expires_at > $2",
                    &[P::S(token), P::I(s.now)],
                )
                .await?;
            if live != 1 {
                return Ok((false, false));
            }
            insert_sad(&mut c, s).await?;
            c.exec("UPDATE sads SET token = $2 WHERE hash = $1", &[P::S(s.hash), P::S(token)]).await?;
            Ok((true, true))
        })
    }
}

/// Revoke the tokens matching `root` (a condition on `tokens`, with `params`) and every token
/// descended from them (`parent`), and the SADs they obtained (`sads.token`) or are
/// (credential tokens), with the SADs extended from those (`sads.origin`). Returns the number of
/// tokens touched. The tokens are written first, so that a SAD being issued for one of them
/// (`insert_sad_for_token`, which locks its token) is either refused or seen here.
pub(crate) async fn revoke_tree(c: &mut Conn<'_>, root: &str, params: &[P<'_>]) -> Result<u64> {
    let tree = format!(
        "WITH RECURSIVE tree(hash) AS (SELECT hash FROM tokens WHERE {root} UNION SELECT t.hash FROM tokens t JOIN tree ON t.parent = tree.hash)"
    );
    let n = c.exec(&format!("{tree} UPDATE tokens SET revoked = 1 WHERE hash IN (SELECT hash FROM tree)"), params).await?;
    if n > 0 {
        c.exec(
            &format!(
                "{tree}, obtained(hash) AS (SELECT hash FROM sads WHERE token IN (SELECT hash FROM tree) OR hash IN (SELECT hash FROM tree)) \
                 UPDATE sads SET revoked = 1 WHERE hash IN (SELECT hash FROM obtained) OR origin IN (SELECT hash FROM obtained)"
            ),
            params,
        )
        .await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserRow;

    fn one_shot<'a>(hash: &'a str, kind: TokenKind, credential_id: Option<&'a str>, expires_at: i64) -> NewToken<'a> {
        NewToken { hash, kind, user_id: "u", parent: None, client_id: Some("client"), credential_id, expires_at, now: 1 }
    }

    /// The credential-management kinds are stored by name and read back; each token is spent
    /// once, only as its own kind, only for its own credential, only while live.
    async fn one_shot_tokens(store: &Store) {
        let user = UserRow { id: "u".into(), name: "alice".into(), password_hash: "x".into(), disabled: false, created_at: 1 };
        store.insert_user(&user).await.unwrap();
        store.insert_token(&one_shot("C", TokenKind::CredentialCreation, None, 100)).await.unwrap();
        store.insert_token(&one_shot("D", TokenKind::CredentialDeletion, Some("c1"), 100)).await.unwrap();
        store.insert_token(&one_shot("OLD", TokenKind::CredentialCreation, None, 10)).await.unwrap();
        let read = store.token("D").await.unwrap().unwrap();
        assert_eq!((read.kind, read.credential_id.as_deref()), (TokenKind::CredentialDeletion, Some("c1")));
        assert_eq!(store.token("C").await.unwrap().unwrap().kind, TokenKind::CredentialCreation);

        assert!(!store.consume_token("C", TokenKind::CredentialDeletion, None, 50).await.unwrap(), "another kind");
        assert!(store.consume_token("C", TokenKind::CredentialCreation, None, 50).await.unwrap());
        assert!(!store.consume_token("C", TokenKind::CredentialCreation, None, 50).await.unwrap(), "spent");
        assert!(store.token("C").await.unwrap().unwrap().revoked);

        assert!(!store.consume_token("D", TokenKind::CredentialDeletion, Some("c2"), 50).await.unwrap(), "another credential");
        assert!(!store.consume_token("D", TokenKind::CredentialDeletion, None, 50).await.unwrap(), "no credential");
        assert!(store.consume_token("D", TokenKind::CredentialDeletion, Some("c1"), 50).await.unwrap());
        assert!(!store.consume_token("OLD", TokenKind::CredentialCreation, None, 50).await.unwrap(), "expired");

        // The grant of the code that issued a token is found from the token.
        store.insert_code("code", "client", "u", r#"{"asked":1}"#, 100).await.unwrap();
        let issue = crate::CodeIssue { access: one_shot("G", TokenKind::CredentialCreation, None, 100), refresh: None, sad: None };
        assert_eq!(store.redeem_code("code", 2, &issue, r#"{"spent":1}"#).await.unwrap(), crate::Redeemed::Issued);
        assert_eq!(store.issued_grant("G").await.unwrap().as_deref(), Some(r#"{"spent":1}"#));
        assert_eq!(store.issued_grant("C").await.unwrap(), None);

        // A disabled owner's token is not spent.
        store.insert_token(&one_shot("E", TokenKind::CredentialCreation, None, 100)).await.unwrap();
        let mut w = store.db.write().await.unwrap();
        w.exec("UPDATE users SET disabled = 1 WHERE id = $1", &[P::S("u")]).await.unwrap();
        drop(w);
        assert!(!store.consume_token("E", TokenKind::CredentialCreation, None, 50).await.unwrap(), "disabled owner");
    }

    #[tokio::test]
    async fn one_shot_tokens_sqlite() {
        let (dir, store) = crate::tests::store().await;
        one_shot_tokens(&store).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The same on PostgreSQL (the local server's `test` database, trust authentication), in
    /// a database of its own.
    #[tokio::test]
    async fn one_shot_tokens_postgres() {
        let role = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into());
        let url = |db: &str| format!("postgres://{role}@127.0.0.1:5432/{db}");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("cs_tokens_{}_{nanos}", std::process::id());
        let admin = sqlx::PgPool::connect(&url("test")).await.expect("PostgreSQL on 127.0.0.1:5432");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        let store = Store::connect(&url(&name)).await.unwrap();
        one_shot_tokens(&store).await;
        drop(store);
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&admin).await;
        admin.close().await;
    }
}
