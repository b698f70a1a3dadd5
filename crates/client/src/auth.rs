//! How the signing application authenticates to a CSC service, chosen from what the service's
//! `info` offers (v1/v2 §11.1 `authType`, `oauth2`, `oauth2Issuer`, `methods`) and what the
//! user gave:
//!
//! - a bearer token the user already has (`--token-file`, `CLOUDSIGN_TOKEN`);
//! - OAuth 2.0 client credentials (RFC 6749 §4.4) for a confidential client;
//! - OAuth 2.0 authorization code with PKCE (RFC 7636) from the terminal, as a native app
//!   (RFC 8252): a loopback redirect listener on `127.0.0.1` (§7.3), the authorization URL
//!   printed and opened in the system browser when there is one (§6);
//! - `auth/login` with HTTP Basic, only when the service offers it;
//! - nothing, for a service that authenticates otherwise (`authType: external`, `TLS`).
//!
//! The credential-scope variant of the code flow (CSC v2 §8.3.2, `scope=credential`) carries
//! `credentialID`, `numSignatures`, `hashes` and `hashAlgorithmOID` on the authorization
//! request, so that the consent page shows the signer the digests being signed; the token it
//! gives is the SAD.

use std::collections::HashMap;
use std::time::Duration;

use cloudsign_csc::oauth::AuthorizeRequest;
use cloudsign_csc::{HashAlgorithm, b64};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::csc::ServiceInfo;
use crate::error::ClientError;
use crate::oauth::{OAuthClient, Pkce, TokenResponse};

/// Which OAuth 2.0 grant a client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Authorization code with PKCE, through the user's browser (RFC 6749 §4.1, RFC 7636).
    AuthorizationCode,
    /// Client credentials (RFC 6749 §4.4): a confidential client acting for its user.
    ClientCredentials,
}

/// An OAuth 2.0 client of the service, as the user registered it.
#[derive(Clone)]
pub struct OAuthOptions {
    /// `client_id`.
    pub client_id: String,
    /// The secret of a confidential client.
    pub client_secret: Option<Zeroizing<String>>,
    /// The grant to use for the service token.
    pub grant: Grant,
    /// The loopback redirect URI (`http://127.0.0.1:PORT/PATH`; no port or port 0: any free
    /// port, RFC 8252 §7.3). Default `http://127.0.0.1/callback` on a free port.
    pub redirect_uri: Option<String>,
}

impl std::fmt::Debug for OAuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("OAuthOptions")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("grant", &self.grant)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// What the user gave to authenticate with.
#[derive(Clone, Default)]
pub struct AuthOptions {
    /// The user name for `auth/login`.
    pub user: Option<String>,
    /// A bearer token the user already has.
    pub token: Option<Zeroizing<String>>,
    /// An OAuth 2.0 client.
    pub oauth: Option<OAuthOptions>,
}

impl std::fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthOptions")
            .field("user", &self.user)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("oauth", &self.oauth)
            .finish()
    }
}

/// How to get the service token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Use the token given.
    Token,
    /// `auth/login` as this user, with the password (HTTP Basic).
    Login(String),
    /// OAuth 2.0 authorization code with PKCE (scope `service`).
    AuthorizationCode,
    /// OAuth 2.0 client credentials.
    ClientCredentials,
    /// No token: the service authenticates otherwise (`external`, `TLS`).
    Anonymous,
}

/// The `authType`s listed, for messages.
fn listed(info: &ServiceInfo) -> String {
    if info.auth_type.is_empty() { "none listed".into() } else { info.auth_type.join(", ") }
}

/// Choose how to authenticate: what the user gave first (a token, an OAuth client, a user
/// name), checked against what `info` offers; with nothing given, no token when the service
/// says it authenticates otherwise. Errors say what the service offers instead.
pub fn plan(info: &ServiceInfo, given: &AuthOptions) -> Result<Plan, String> {
    if given.token.is_some() {
        return Ok(Plan::Token);
    }
    if let Some(oauth) = &given.oauth {
        return match oauth.grant {
            Grant::ClientCredentials if oauth.client_secret.is_none() => {
                Err("the client credentials grant needs the client's secret: --client-secret-file or CLOUDSIGN_CLIENT_SECRET".into())
            }
            Grant::ClientCredentials => Ok(Plan::ClientCredentials),
            Grant::AuthorizationCode => Ok(Plan::AuthorizationCode),
        };
    }
    if let Some(user) = &given.user {
        if info.offers_login() {
            return Ok(Plan::Login(user.clone()));
        }
        let oauth = if info.oauth_base().is_some() { " or OAuth (--client-id)" } else { "" };
        return Err(format!(
            "the service does not offer auth/login (authType: {}); use --token-file{oauth} instead of --user",
            listed(info)
        ));
    }
    if info.auth_type.is_empty() || info.auth("external") || info.auth("TLS") {
        return Ok(Plan::Anonymous);
    }
    let mut ways = vec!["--token-file PATH (or CLOUDSIGN_TOKEN)"];
    if info.offers_login() {
        ways.push("--user NAME (auth/login)");
    }
    if info.oauth_base().is_some() {
        ways.push("--client-id ID (OAuth 2.0)");
    }
    Err(format!("the service wants authentication (authType: {}): give {}", listed(info), ways.join(" or ")))
}

/// The OAuth 2.0 endpoints of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The authorization endpoint (the browser goes there).
    pub authorize: String,
    /// The token endpoint.
    pub token: String,
}

/// RFC 8414 §2 metadata: the two endpoints used here.
#[derive(serde::Deserialize)]
struct Metadata {
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
}

/// The endpoints: under `info.oauth2` (`<oauth2>oauth2/authorize`, v1/v2 §8.3), or from the
/// RFC 8414 metadata of `oauth2Issuer` (v2 §11.1), falling back to the CSC paths under it.
pub async fn endpoints(http: &reqwest::Client, info: &ServiceInfo) -> Result<Endpoints, ClientError> {
    let under = |base: &str| {
        let base = base.trim_end_matches('/');
        Endpoints { authorize: format!("{base}/oauth2/authorize"), token: format!("{base}/oauth2/token") }
    };
    if let Some(base) = info.oauth2.as_deref().filter(|b| !b.is_empty()) {
        return Ok(under(base));
    }
    let Some(issuer) = info.oauth2_issuer.as_deref().filter(|b| !b.is_empty()) else {
        return Err(ClientError::Invalid("the service's info names no OAuth 2.0 server (neither oauth2 nor oauth2Issuer)".into()));
    };
    let fallback = under(issuer);
    // RFC 8414 §3: the well-known URI is inserted before the issuer's path.
    let metadata_url = match reqwest::Url::parse(issuer) {
        Ok(u) => format!("{}/.well-known/oauth-authorization-server{}", u.origin().ascii_serialization(), u.path().trim_end_matches('/')),
        Err(_) => return Ok(fallback),
    };
    let Ok(resp) = http.get(&metadata_url).send().await else { return Ok(fallback) };
    if !resp.status().is_success() {
        return Ok(fallback);
    }
    let Ok(m) = resp.json::<Metadata>().await else { return Ok(fallback) };
    Ok(Endpoints { authorize: m.authorization_endpoint.unwrap_or(fallback.authorize), token: m.token_endpoint.unwrap_or(fallback.token) })
}

/// What a credential-scope authorization binds (CSC v2 §8.3.2): shown on the consent page.
#[derive(Debug, Clone, Copy)]
pub struct CredentialScope<'a> {
    /// `credentialID`.
    pub credential_id: &'a str,
    /// The digests to be signed (`numSignatures` is their number).
    pub hashes: &'a [&'a [u8]],
    /// Their algorithm (`hashAlgorithmOID`).
    pub hash_algorithm: HashAlgorithm,
    /// `description`.
    pub description: Option<&'a str>,
}

/// The authorization request URL (RFC 6749 §4.1.1, RFC 7636 §4.3, CSC v2 §8.3.2): `scope`
/// `service`, or `credential` with the digests (base64url, comma separated).
pub fn authorization_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
    credential: Option<&CredentialScope<'_>>,
) -> Result<String, ClientError> {
    let mut q = AuthorizeRequest {
        response_type: Some("code".into()),
        client_id: Some(client_id.into()),
        redirect_uri: Some(redirect_uri.into()),
        state: Some(state.into()),
        scope: Some("service".into()),
        code_challenge: Some(challenge.into()),
        code_challenge_method: Some(Pkce::METHOD.into()),
        ..Default::default()
    };
    if let Some(c) = credential {
        q.scope = Some("credential".into());
        q.credential_id = Some(c.credential_id.into());
        q.num_signatures = Some(c.hashes.len().to_string());
        q.hashes = Some(c.hashes.iter().map(|h| b64::encode_url(h)).collect::<Vec<_>>().join(","));
        q.hash_algorithm_oid = Some(c.hash_algorithm.oid().into());
        q.description = c.description.map(Into::into);
    }
    let query = serde_urlencoded::to_string(&q).map_err(|e| ClientError::Invalid(e.to_string()))?;
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    Ok(format!("{endpoint}{sep}{query}"))
}

/// A loopback redirect listener (RFC 8252 §7.3): an `http://127.0.0.1` URI on a port of its
/// own, where the browser brings the code.
pub struct Loopback {
    listener: TcpListener,
    path: String,
    redirect_uri: String,
}

/// How long the browser may take (log in, read, consent).
pub const BROWSER_WAIT: Duration = Duration::from_secs(300);

impl Loopback {
    /// Listen for `redirect_uri` (default `http://127.0.0.1/callback`): on its port, or on a
    /// free one when it names none (or 0). Only loopback addresses: RFC 8252 §8.3 — a listener
    /// on all interfaces would let others on the network hand it a code.
    pub async fn bind(redirect_uri: Option<&str>) -> Result<Self, ClientError> {
        let uri = redirect_uri.unwrap_or("http://127.0.0.1/callback");
        let bad = || ClientError::Invalid(format!("--redirect-uri {uri:?}: give a loopback URI such as http://127.0.0.1:8400/callback"));
        let parsed = reqwest::Url::parse(uri).map_err(|_| bad())?;
        let host = parsed.host_str().ok_or_else(bad)?.to_string();
        if parsed.scheme() != "http" || !matches!(host.as_str(), "127.0.0.1" | "[::1]" | "localhost") || parsed.fragment().is_some() {
            return Err(bad());
        }
        // RFC 8252 §8.3: "localhost" is resolved by the browser as it likes; listen on the IPv4
        // loopback address for it and for 127.0.0.1.
        let addr = if host == "[::1]" { "[::1]" } else { "127.0.0.1" };
        let port = parsed.port().unwrap_or(0);
        let listener = TcpListener::bind(format!("{addr}:{port}"))
            .await
            .map_err(|e| ClientError::Invalid(format!("cannot listen on {addr}:{port} for the OAuth redirect: {e}")))?;
        let port = listener.local_addr().map_err(|e| ClientError::Invalid(e.to_string()))?.port();
        let path = if parsed.path().is_empty() { "/".to_string() } else { parsed.path().to_string() };
        let query = parsed.query().map(|q| format!("?{q}")).unwrap_or_default();
        Ok(Loopback { listener, redirect_uri: format!("http://{host}:{port}{path}{query}"), path })
    }

    /// The redirect URI to send (with the port in use).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Wait for the browser: the code of the redirect that carries `state` (RFC 6749 §10.12:
    /// a redirect with another state is not ours and is refused), or the error the server sent.
    pub async fn wait(&self, state: &str, timeout: Duration) -> Result<Zeroizing<String>, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let accepted = tokio::time::timeout_at(deadline, self.listener.accept())
                .await
                .map_err(|_| ClientError::Invalid(format!("no answer from the browser within {} s", timeout.as_secs())))?;
            let Ok((mut stream, _)) = accepted else { continue };
            let Ok(Ok(request)) = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream)).await else { continue };
            let outcome = self.answer(&request, state);
            let (status, page) = match &outcome {
                Some(Ok(_)) => ("200 OK", "Signed in: you can close this window and go back to the terminal."),
                Some(Err(_)) => ("400 Bad Request", "The authorization did not succeed; the terminal says why."),
                None => ("404 Not Found", "Not found."),
            };
            let body = format!("<!doctype html><meta charset=utf-8><title>cloudsign</title><p>{page}</p>\n");
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
            if let Some(outcome) = outcome {
                return outcome;
            }
        }
    }

    /// `None` for a request that is not the redirect (a favicon); else the code or the error.
    fn answer(&self, head: &str, state: &str) -> Option<Result<Zeroizing<String>, ClientError>> {
        let target = head.lines().next()?.strip_prefix("GET ")?.split(' ').next()?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != self.path {
            return None;
        }
        let params: HashMap<String, String> = serde_urlencoded::from_str(query).unwrap_or_default();
        if params.get("state").map(String::as_str) != Some(state) {
            return Some(Err(ClientError::Invalid(
                "the redirect carried another state than the authorization request (RFC 6749 §10.12): refused".into(),
            )));
        }
        if let Some(error) = params.get("error") {
            let description = params.get("error_description").map(|d| format!(": {d}")).unwrap_or_default();
            return Some(Err(ClientError::Invalid(format!("the authorization was refused: {error}{description}"))));
        }
        match params.get("code") {
            Some(code) if !code.is_empty() => Some(Ok(Zeroizing::new(code.clone()))),
            _ => Some(Err(ClientError::Invalid("the redirect carried no code".into()))),
        }
    }
}

/// The request line and headers (at most 16 KiB).
async fn read_head(stream: &mut tokio::net::TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 << 10 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A random `state` (RFC 6749 §10.12): 16 bytes, base64url.
pub fn new_state() -> Result<String, ClientError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ClientError::Invalid("no random numbers".into()))?;
    Ok(b64::encode_url(&bytes))
}

/// Open `url` in the user's browser, as `gh auth login` does: `$BROWSER` when set, else
/// `xdg-open` (`open` on macOS) when there is a display. Returns whether one was started; the
/// URL is printed either way.
pub fn open_browser(url: &str) -> bool {
    use std::process::{Command, Stdio};
    let spawn =
        |program: &str| Command::new(program).arg(url).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().is_ok();
    if let Some(browser) = std::env::var_os("BROWSER").filter(|b| !b.is_empty()) {
        return spawn(&browser.to_string_lossy());
    }
    if cfg!(target_os = "macos") {
        return spawn("open");
    }
    let display = ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    display && spawn("xdg-open")
}

/// The code flow from the terminal: listen on the loopback, show the URL (`show` prints it and
/// may open a browser), wait for the code and exchange it with the PKCE verifier.
pub async fn authorization_code(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    oauth: &OAuthOptions,
    credential: Option<&CredentialScope<'_>>,
    show: &mut dyn FnMut(&str, &str),
) -> Result<TokenResponse, ClientError> {
    let loopback = Loopback::bind(oauth.redirect_uri.as_deref()).await?;
    let pkce = Pkce::new()?;
    let state = new_state()?;
    let url = authorization_url(&endpoints.authorize, &oauth.client_id, loopback.redirect_uri(), &state, &pkce.challenge, credential)?;
    show(&url, loopback.redirect_uri());
    let code = loopback.wait(&state, BROWSER_WAIT).await?;
    let client =
        OAuthClient::with_token_url(http.clone(), &endpoints.token, &oauth.client_id, oauth.client_secret.as_deref().map(String::as_str));
    client.authorization_code(&code, loopback.redirect_uri(), &pkce.verifier).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(auth: &[&str], methods: &[&str], oauth2: Option<&str>) -> ServiceInfo {
        ServiceInfo {
            auth_type: auth.iter().map(|s| s.to_string()).collect(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            oauth2: oauth2.map(Into::into),
            ..Default::default()
        }
    }

    fn user(name: &str) -> AuthOptions {
        AuthOptions { user: Some(name.into()), ..Default::default() }
    }

    #[test]
    fn auth_login_only_when_offered() {
        // certomancer-csc-dummy: authType external, no auth/login.
        let dummy = info(&["external"], &["credentials/list", "credentials/info", "credentials/authorize", "signatures/signHash"], None);
        assert_eq!(plan(&dummy, &AuthOptions::default()), Ok(Plan::Anonymous));
        let refused = plan(&dummy, &user("alice")).unwrap_err();
        assert!(refused.contains("does not offer auth/login") && refused.contains("--token-file"), "{refused}");
        let ours = info(&["basic", "oauth2code", "oauth2client"], &["auth/login", "credentials/list"], Some("https://s/"));
        assert_eq!(plan(&ours, &user("alice")), Ok(Plan::Login("alice".into())));
        // An OAuth-only service told to log in: the hint names OAuth.
        let oauth_only = info(&["oauth2code"], &["credentials/list"], Some("https://s/"));
        let refused = plan(&oauth_only, &user("alice")).unwrap_err();
        assert!(refused.contains("--client-id"), "{refused}");
        let refused = plan(&oauth_only, &AuthOptions::default()).unwrap_err();
        assert!(refused.contains("oauth2code") && refused.contains("--client-id") && !refused.contains("--user"), "{refused}");
    }

    #[test]
    fn what_the_user_gave_comes_first() {
        let ours = info(&["basic", "oauth2code"], &["auth/login"], Some("https://s/"));
        let token = AuthOptions { token: Some(Zeroizing::new("t".into())), ..user("alice") };
        assert_eq!(plan(&ours, &token), Ok(Plan::Token));
        let code = OAuthOptions { client_id: "app".into(), client_secret: None, grant: Grant::AuthorizationCode, redirect_uri: None };
        assert_eq!(plan(&ours, &AuthOptions { oauth: Some(code.clone()), ..user("alice") }), Ok(Plan::AuthorizationCode));
        let cc = OAuthOptions { grant: Grant::ClientCredentials, ..code.clone() };
        assert!(plan(&ours, &AuthOptions { oauth: Some(cc.clone()), ..Default::default() }).unwrap_err().contains("secret"));
        let cc = OAuthOptions { client_secret: Some(Zeroizing::new("s".into())), ..cc };
        assert_eq!(plan(&ours, &AuthOptions { oauth: Some(cc.clone()), ..Default::default() }), Ok(Plan::ClientCredentials));
        // Secrets stay out of Debug output.
        let shown = format!("{:?}", AuthOptions { oauth: Some(cc), token: Some(Zeroizing::new("tok3n".into())), user: None });
        assert!(!shown.contains("tok3n") && !shown.contains("\"s\""), "{shown}");
    }

    #[test]
    fn credential_scope_urls_carry_the_digests() {
        let d1 = [1u8; 32];
        let scope =
            CredentialScope { credential_id: "c 1", hashes: &[&d1, &[0xfb; 32]], hash_algorithm: HashAlgorithm::Sha256, description: None };
        let url = authorization_url("https://s/oauth2/authorize", "app", "http://127.0.0.1:5/cb", "st", "ch", Some(&scope)).unwrap();
        let q: HashMap<String, String> = serde_urlencoded::from_str(url.split_once('?').unwrap().1).unwrap();
        assert_eq!(q["scope"], "credential");
        assert_eq!(q["credentialID"], "c 1");
        assert_eq!(q["numSignatures"], "2");
        assert_eq!(q["hashes"], format!("{},{}", b64::encode_url(&d1), b64::encode_url(&[0xfb; 32])));
        assert_eq!(q["hashAlgorithmOID"], "2.16.840.1.101.3.4.2.1");
        assert_eq!((q["code_challenge_method"].as_str(), q["state"].as_str(), q["response_type"].as_str()), ("S256", "st", "code"));
        let url = authorization_url("https://s/oauth2/authorize", "app", "http://127.0.0.1:5/cb", "st", "ch", None).unwrap();
        assert!(url.contains("scope=service") && !url.contains("hashes"), "{url}");
    }

    #[tokio::test]
    async fn the_loopback_listener_takes_only_our_redirect() {
        let lb = Loopback::bind(None).await.unwrap();
        let uri = lb.redirect_uri().to_string();
        assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback") && !uri.contains(":0/"), "{uri}");
        let base = uri.clone();
        let browser = tokio::spawn(async move {
            let http = reqwest::Client::new();
            // Not the redirect path: 404, and the listener keeps waiting.
            let other = http.get(base.replace("/callback", "/favicon.ico")).send().await.unwrap();
            assert_eq!(other.status(), 404);
            http.get(format!("{base}?code=abc&state=s1")).send().await.unwrap().status()
        });
        let code = lb.wait("s1", Duration::from_secs(20)).await.unwrap();
        assert_eq!(code.as_str(), "abc");
        assert_eq!(browser.await.unwrap(), 200);
        // A forged redirect with another state is refused.
        let lb = Loopback::bind(Some("http://127.0.0.1:0/cb")).await.unwrap();
        let uri = lb.redirect_uri().to_string();
        tokio::spawn(async move { reqwest::get(format!("{uri}?code=abc&state=evil")).await });
        let e = lb.wait("s1", Duration::from_secs(20)).await.unwrap_err();
        assert!(e.to_string().contains("another state"), "{e}");
        // The server's error reaches the user.
        let lb = Loopback::bind(None).await.unwrap();
        let uri = lb.redirect_uri().to_string();
        tokio::spawn(async move { reqwest::get(format!("{uri}?error=access_denied&error_description=The+user+declined&state=s1")).await });
        let e = lb.wait("s1", Duration::from_secs(20)).await.unwrap_err();
        assert_eq!(e.to_string(), "the authorization was refused: access_denied: The user declined");
        assert!(Loopback::bind(Some("https://app.example/cb")).await.is_err());
        assert!(Loopback::bind(Some("http://0.0.0.0:1/cb")).await.is_err());
    }
}
