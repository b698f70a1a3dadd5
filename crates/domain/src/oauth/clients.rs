//! The client registry (administration) and client authentication (RFC 6749 §2.3.1).

use cloudsign_store::ClientRow;
use cloudsign_store::Outcome;
use serde_json::json;
use zeroize::Zeroizing;

use super::{ClientAuth, OAuthError, OResult};
use crate::secrets::{ct_eq, new_id, new_token, token_hash};
use crate::{Error, Result, Service, now};

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

/// Whether the `redirect_uri` of a request matches a registered one: exactly, or — for a
/// loopback `http` URI — with any port. RFC 8252 §7.3: "The authorization server MUST allow any
/// port to be specified at the time of the request for loopback IP redirect URIs, to
/// accommodate clients that obtain an available ephemeral port from the operating system at
/// the time of the request" (`cloudsign sign --client-id` does). Scheme, host, path and query
/// must still be the same; `localhost` is not a loopback IP literal (§8.3), so it is matched
/// exactly.
// Used by the authorization and token endpoints' redirect URI checks (authorize.rs).
pub(crate) fn redirect_uri_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let split = |uri: &str| -> Option<(String, String)> {
        let rest = uri.strip_prefix("http://")?;
        let (authority, tail) = rest.find(['/', '?']).map_or((rest, ""), |i| rest.split_at(i));
        let host = match authority.rsplit_once(':') {
            _ if authority.ends_with(']') => authority,
            Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some((_, _)) => return None,
            None => authority,
        };
        if !matches!(host, "127.0.0.1" | "[::1]") {
            return None;
        }
        // An empty path is the same as "/" (RFC 3986 §6.2.3).
        let tail = if tail.is_empty() || tail.starts_with('?') { format!("/{tail}") } else { tail.to_string() };
        Some((host.to_string(), tail))
    };
    matches!((split(registered), split(given)), (Some(r), Some(g)) if r == g)
}

impl Service {
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
            Outcome::Ok,
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
        self.audit("admin", "admin.client.delete", Outcome::Ok, None, json!({"client_id": id})).await
    }

    /// RFC 6749 §2.3.1: a confidential client proves its secret (compared in constant time);
    /// a public client presents its id only.
    pub(super) async fn authenticate_client(&self, auth: &ClientAuth) -> OResult<ClientRow> {
        let id = auth.client_id.as_deref().ok_or_else(|| OAuthError::request("Missing parameter client_id"))?;
        let client = self.store.client(id).await.map_err(Error::from)?.ok_or_else(OAuthError::client)?;
        match (&client.secret_hash, &auth.secret) {
            (Some(stored), Some(given)) if ct_eq(stored.as_bytes(), token_hash(given).as_bytes()) => Ok(client),
            (None, None) => Ok(client),
            _ => Err(OAuthError::client()),
        }
    }
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
    fn loopback_redirect_uris_match_with_any_port() {
        // RFC 8252 §7.3: any port for loopback IP literals.
        assert!(redirect_uri_matches("http://127.0.0.1/callback", "http://127.0.0.1:49152/callback"));
        assert!(redirect_uri_matches("http://127.0.0.1:8080/callback", "http://127.0.0.1:49152/callback"));
        assert!(redirect_uri_matches("http://[::1]/cb?x=1", "http://[::1]:5000/cb?x=1"));
        assert!(redirect_uri_matches("http://127.0.0.1", "http://127.0.0.1:5000/"));
        // Everything else must be the same.
        assert!(!redirect_uri_matches("http://127.0.0.1/callback", "http://127.0.0.1:49152/other"));
        assert!(!redirect_uri_matches("http://127.0.0.1/cb?x=1", "http://127.0.0.1:1/cb?x=2"));
        assert!(!redirect_uri_matches("http://127.0.0.1/cb", "http://[::1]:1/cb"));
        assert!(!redirect_uri_matches("http://127.0.0.1/cb", "https://127.0.0.1:1/cb"));
        assert!(!redirect_uri_matches("http://127.0.0.1/cb", "http://127.0.0.1.evil.example:1/cb"));
        assert!(!redirect_uri_matches("http://127.0.0.1/cb", "http://127.0.0.1:1@evil.example/cb"));
        assert!(!redirect_uri_matches("http://localhost/cb", "http://localhost:1/cb"));
        assert!(!redirect_uri_matches("https://app.example/cb", "https://app.example:444/cb"));
        assert!(redirect_uri_matches("https://app.example/cb", "https://app.example/cb"));
    }
}
