//! `oauth_clients`, `oauth_requests` and `oauth_codes`: the OAuth 2.0 authorization server's
//! clients, pending authorization requests (PAR and browser flows) and authorization codes.

use crate::db::{P, Row};
use crate::sad::{NewSad, insert_sad};
use crate::tokens::{NewToken, insert_token};
use crate::{Result, Store};

/// What a pending authorization request (`oauth_requests`) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A pushed authorization request (RFC 9126), waiting for its `request_uri` to be used.
    Par,
    /// An authorization in progress in the signer's browser (login, then consent).
    Flow,
}

impl RequestKind {
    /// The stored name (`par`, `flow`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Par => "par",
            Self::Flow => "flow",
        }
    }
}

/// A registered OAuth 2.0 client (RFC 6749 §2).
#[derive(Debug, Clone)]
pub struct ClientRow {
    /// `client_id`.
    pub id: String,
    /// Display name, shown on the consent page.
    pub name: String,
    /// SHA-256 (hex) of the secret of a confidential client; `None` for a public client.
    pub secret_hash: Option<String>,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// The user a confidential client acts as with the client_credentials grant.
    pub user_id: Option<String>,
    /// Creation time.
    pub created_at: i64,
}

/// A pending authorization request: pushed (PAR) or in progress in a browser.
#[derive(Debug, Clone)]
pub struct OAuthRequestRow {
    /// The client.
    pub client_id: String,
    /// The validated request (JSON, owned by the domain).
    pub request: String,
    /// The user, once logged in on the authorization page.
    pub user_id: Option<String>,
    /// Expiry.
    pub expires_at: i64,
}

/// An authorization code as stored.
#[derive(Debug, Clone)]
pub struct CodeRow {
    /// The client it was issued to.
    pub client_id: String,
    /// The user who approved.
    pub user_id: String,
    /// What was granted (JSON, owned by the domain).
    pub grant_json: String,
    /// Expiry.
    pub expires_at: i64,
    /// Already exchanged.
    pub used: bool,
}

/// What exchanging a code issues, stored in the same transaction that marks the code used.
pub struct CodeIssue<'a> {
    /// The access token (service scope) or credential token.
    pub access: NewToken<'a>,
    /// The refresh token (service scope).
    pub refresh: Option<NewToken<'a>>,
    /// The SAD behind a credential token (same hash as `access`).
    pub sad: Option<NewSad<'a>>,
}

/// The result of exchanging a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    /// The tokens are stored.
    Issued,
    /// The code was already used: what it issued has now been revoked (RFC 6749 §4.1.2).
    Reused,
    /// Unknown or expired.
    Invalid,
}

impl Store {
    /// Register a client.
    pub async fn insert_client(&self, c: &ClientRow) -> Result<()> {
        let uris = c.redirect_uris.join("\n");
        self.db
            .write()
            .await?
            .exec(
                "INSERT INTO oauth_clients (id, name, secret_hash, redirect_uris, user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    P::S(&c.id),
                    P::S(&c.name),
                    P::OS(c.secret_hash.as_deref()),
                    P::S(&uris),
                    P::OS(c.user_id.as_deref()),
                    P::I(c.created_at),
                ],
            )
            .await?;
        Ok(())
    }

    /// One client.
    pub async fn client(&self, id: &str) -> Result<Option<ClientRow>> {
        let sql = "SELECT id, name, secret_hash, redirect_uris, user_id, created_at FROM oauth_clients WHERE id = $1";
        self.db.read().await?.opt(sql, &[P::S(id)]).await?.as_ref().map(client_row).transpose()
    }

    /// All clients, oldest first.
    pub async fn clients(&self) -> Result<Vec<ClientRow>> {
        let sql = "SELECT id, name, secret_hash, redirect_uris, user_id, created_at FROM oauth_clients ORDER BY created_at, id";
        self.db.read().await?.all(sql, &[]).await?.iter().map(client_row).collect()
    }

    /// Delete a client, revoking every token issued to it; returns whether it existed.
    pub async fn delete_client(&self, id: &str) -> Result<bool> {
        transaction!(self.db, |c| {
            c.exec(
                "UPDATE sads SET revoked = 1 WHERE hash IN (SELECT hash FROM tokens WHERE client_id = $1) \
                 OR token IN (SELECT hash FROM tokens WHERE client_id = $1)",
                &[P::S(id)],
            )
            .await?;
            c.exec("UPDATE tokens SET revoked = 1 WHERE client_id = $1", &[P::S(id)]).await?;
            c.exec("DELETE FROM oauth_codes WHERE client_id = $1", &[P::S(id)]).await?;
            c.exec("DELETE FROM oauth_requests WHERE client_id = $1", &[P::S(id)]).await?;
            let n = c.exec("DELETE FROM oauth_clients WHERE id = $1", &[P::S(id)]).await?;
            Ok((n == 1, true))
        })
    }

    /// Store a pending authorization request.
    pub async fn put_oauth_request(&self, hash: &str, kind: RequestKind, client_id: &str, request: &str, expires_at: i64) -> Result<()> {
        self.db
            .write()
            .await?
            .exec(
                "INSERT INTO oauth_requests (hash, kind, client_id, request, user_id, expires_at) VALUES ($1, $2, $3, $4, NULL, $5)",
                &[P::S(hash), P::S(kind.as_str()), P::S(client_id), P::S(request), P::I(expires_at)],
            )
            .await?;
        Ok(())
    }

    /// A live pending request of `kind`.
    pub async fn oauth_request(&self, hash: &str, kind: RequestKind, now: i64) -> Result<Option<OAuthRequestRow>> {
        let row = self
            .db
            .read()
            .await?
            .opt(
                "SELECT client_id, request, user_id, expires_at FROM oauth_requests WHERE hash = $1 AND kind = $2 AND expires_at > $3",
                &[P::S(hash), P::S(kind.as_str()), P::I(now)],
            )
            .await?;
        row.as_ref().map(oauth_request_row).transpose()
    }

    /// Remove a live pending request and return it: each is used once.
    pub async fn take_oauth_request(&self, hash: &str, kind: RequestKind, now: i64) -> Result<Option<OAuthRequestRow>> {
        let row = self
            .db
            .write()
            .await?
            .opt(
                "DELETE FROM oauth_requests WHERE hash = $1 AND kind = $2 AND expires_at > $3 RETURNING client_id, request, user_id, expires_at",
                &[P::S(hash), P::S(kind.as_str()), P::I(now)],
            )
            .await?;
        row.as_ref().map(oauth_request_row).transpose()
    }

    /// Record who logged in on an authorization in progress.
    pub async fn set_oauth_request_user(&self, hash: &str, user_id: &str) -> Result<bool> {
        let n = self.db.write().await?.exec("UPDATE oauth_requests SET user_id = $2 WHERE hash = $1", &[P::S(hash), P::S(user_id)]).await?;
        Ok(n == 1)
    }

    /// Store an authorization code (by hash).
    pub async fn insert_code(&self, hash: &str, client_id: &str, user_id: &str, grant_json: &str, expires_at: i64) -> Result<()> {
        self.db
            .write()
            .await?
            .exec(
                "INSERT INTO oauth_codes (hash, client_id, user_id, grant_json, expires_at, used) VALUES ($1, $2, $3, $4, $5, 0)",
                &[P::S(hash), P::S(client_id), P::S(user_id), P::S(grant_json), P::I(expires_at)],
            )
            .await?;
        Ok(())
    }

    /// An authorization code, used or not.
    pub async fn code(&self, hash: &str) -> Result<Option<CodeRow>> {
        let row = self
            .db
            .read()
            .await?
            .opt("SELECT client_id, user_id, grant_json, expires_at, used FROM oauth_codes WHERE hash = $1", &[P::S(hash)])
            .await?;
        row.map(|r| {
            Ok(CodeRow {
                client_id: r.str("client_id")?,
                user_id: r.str("user_id")?,
                grant_json: r.str("grant_json")?,
                expires_at: r.i64("expires_at")?,
                used: r.flag("used")?,
            })
        })
        .transpose()
    }

    /// What was granted by the code that issued the access token `access_hash` (its spent
    /// grant, JSON owned by the domain): the details a credential-creation token carries
    /// (CSC 2.2 RAR `credentialCreationRequest`). A used code is kept a day past its expiry
    /// (`Store::purge_expired`), longer than such a token lives.
    pub async fn issued_grant(&self, access_hash: &str) -> Result<Option<String>> {
        let row = self
            .db
            .read()
            .await?
            .opt("SELECT grant_json FROM oauth_codes WHERE issued_access = $1 AND used = 1", &[P::S(access_hash)])
            .await?;
        row.map(|r| r.str("grant_json")).transpose()
    }

    /// Burn an unused code after a failed PKCE check (RFC 7636 §4.6; RFC 6749 §4.1.2: a code is
    /// used once): whoever presented the wrong verifier may hold a stolen code, so it cannot be
    /// redeemed afterwards, even with the right verifier. Nothing was issued with it, so there
    /// is nothing to revoke; a later exchange finds no code.
    pub async fn burn_code(&self, hash: &str) -> Result<bool> {
        let n = self.db.write().await?.exec("DELETE FROM oauth_codes WHERE hash = $1 AND used = 0", &[P::S(hash)]).await?;
        Ok(n == 1)
    }

    /// Exchange a code: mark it used and store what it issues, in one transaction, so a code
    /// is redeemed once even by racing requests on several nodes. A second exchange revokes
    /// what the first one issued.
    /// `spent_grant` replaces the stored grant once used (it drops what only the exchange needed).
    pub async fn redeem_code(&self, hash: &str, now: i64, issue: &CodeIssue<'_>, spent_grant: &str) -> Result<Redeemed> {
        transaction!(self.db, |c| {
            let n = c
                .exec(
                    "UPDATE oauth_codes SET used = 1, issued_access = $3, issued_refresh = $4, grant_json = $5 \
                     WHERE hash = $1 AND used = 0 AND expires_at > $2",
                    &[P::S(hash), P::I(now), P::S(issue.access.hash), P::OS(issue.refresh.as_ref().map(|r| r.hash)), P::S(spent_grant)],
                )
                .await?;
            if n == 1 {
                if let Some(r) = &issue.refresh {
                    insert_token(&mut c, r).await?;
                }
                insert_token(&mut c, &issue.access).await?;
                if let Some(s) = &issue.sad {
                    insert_sad(&mut c, s).await?;
                }
                return Ok((Redeemed::Issued, true));
            }
            let Some(row) = c
                .opt("SELECT used, issued_access, issued_refresh, client_id, user_id FROM oauth_codes WHERE hash = $1", &[P::S(hash)])
                .await?
            else {
                return Ok((Redeemed::Invalid, false));
            };
            if !row.flag("used")? {
                return Ok((Redeemed::Invalid, false));
            }
            let access = row.opt_str("issued_access")?.unwrap_or_default();
            let refresh = row.opt_str("issued_refresh")?.unwrap_or_default();
            // What the code issued may have been rotated (refresh) since: revoke everything this
            // client holds for this user, and the SADs behind its credential tokens.
            let (client, user) = (row.str("client_id")?, row.str("user_id")?);
            c.exec("UPDATE tokens SET revoked = 1 WHERE hash = $1 OR hash = $2 OR parent = $2", &[P::S(&access), P::S(&refresh)]).await?;
            c.exec("UPDATE tokens SET revoked = 1 WHERE client_id = $1 AND user_id = $2", &[P::S(&client), P::S(&user)]).await?;
            c.exec(
                "UPDATE sads SET revoked = 1 WHERE hash = $1 OR origin = $1 \
                 OR hash IN (SELECT hash FROM tokens WHERE client_id = $2 AND user_id = $3) \
                 OR origin IN (SELECT hash FROM tokens WHERE client_id = $2 AND user_id = $3) \
                 OR token IN (SELECT hash FROM tokens WHERE client_id = $2 AND user_id = $3) \
                 OR origin IN (SELECT s.hash FROM sads s JOIN tokens t ON t.hash = s.token WHERE t.client_id = $2 AND t.user_id = $3)",
                &[P::S(&access), P::S(&client), P::S(&user)],
            )
            .await?;
            Ok((Redeemed::Reused, true))
        })
    }
}

fn client_row(r: &Row) -> Result<ClientRow> {
    Ok(ClientRow {
        id: r.str("id")?,
        name: r.str("name")?,
        secret_hash: r.opt_str("secret_hash")?,
        redirect_uris: r.str("redirect_uris")?.split('\n').filter(|u| !u.is_empty()).map(String::from).collect(),
        user_id: r.opt_str("user_id")?,
        created_at: r.i64("created_at")?,
    })
}

fn oauth_request_row(r: &Row) -> Result<OAuthRequestRow> {
    Ok(OAuthRequestRow {
        client_id: r.str("client_id")?,
        request: r.str("request")?,
        user_id: r.opt_str("user_id")?,
        expires_at: r.i64("expires_at")?,
    })
}
