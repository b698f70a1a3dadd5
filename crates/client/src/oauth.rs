//! OAuth 2.0 token calls against a service's `/oauth2/token` (RFC 6749 §4.1.3, §4.4, §6; CSC
//! v2 §8): an authorization code with its PKCE verifier (RFC 7636), client credentials, and a
//! refresh token. The client authenticates with HTTP Basic (`client_secret_basic`, RFC 6749
//! §2.3.1) when it has a secret, and by `client_id` alone when it is public.

use cloudsign_csc::oauth::TokenRequest;
pub use cloudsign_csc::oauth::TokenResponse;
use reqwest::StatusCode;
use zeroize::Zeroizing;

use crate::error::{ClientError, refusal_at};

/// A PKCE pair (RFC 7636 §4.1-4.2): the verifier stays with the client, the S256 challenge
/// goes in the authorization request.
pub struct Pkce {
    /// `code_verifier`: 43 characters of base64url (32 random bytes).
    pub verifier: Zeroizing<String>,
    /// `code_challenge`: BASE64URL(SHA-256(verifier)).
    pub challenge: String,
}

impl Pkce {
    /// A fresh pair from the system random generator.
    pub fn new() -> Result<Self, ClientError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| ClientError::Invalid("no random numbers".into()))?;
        Ok(Self::from_verifier(cloudsign_csc::b64::encode_url(bytes.as_ref())))
    }

    /// The pair for a given verifier.
    pub fn from_verifier(verifier: String) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        Pkce { challenge: cloudsign_csc::b64::encode_url(digest.as_ref()), verifier: Zeroizing::new(verifier) }
    }

    /// `code_challenge_method`.
    pub const METHOD: &'static str = "S256";
}

/// An OAuth client of one service.
pub struct OAuthClient {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Option<Zeroizing<String>>,
}

/// `application/x-www-form-urlencoded` for one value (RFC 6749 Appendix B), as Basic client
/// authentication needs for the id and secret before base64 (§2.3.1).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl OAuthClient {
    /// A client `client_id` (with its secret when confidential) of the service at `service`
    /// (its base URL; the token endpoint is `<service>/oauth2/token`).
    pub fn new(http: reqwest::Client, service: &str, client_id: &str, client_secret: Option<&str>) -> Self {
        OAuthClient {
            http,
            token_url: format!("{}/oauth2/token", service.trim_end_matches('/')),
            client_id: client_id.into(),
            client_secret: client_secret.map(|s| Zeroizing::new(s.into())),
        }
    }

    /// A client of the token endpoint at `token_url` (from `info` or RFC 8414 metadata).
    pub fn with_token_url(http: reqwest::Client, token_url: &str, client_id: &str, client_secret: Option<&str>) -> Self {
        OAuthClient {
            http,
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.map(|s| Zeroizing::new(s.into())),
        }
    }

    /// RFC 6749 §4.1.3: exchange an authorization code, with the PKCE verifier and the
    /// redirect URI of the authorization request.
    pub async fn authorization_code(&self, code: &str, redirect_uri: &str, code_verifier: &str) -> Result<TokenResponse, ClientError> {
        self.token(TokenRequest {
            grant_type: Some("authorization_code".into()),
            code: Some(code.into()),
            redirect_uri: Some(redirect_uri.into()),
            code_verifier: Some(code_verifier.into()),
            ..Default::default()
        })
        .await
    }

    /// RFC 6749 §4.4: a token for the client itself (confidential clients).
    pub async fn client_credentials(&self, scope: Option<&str>) -> Result<TokenResponse, ClientError> {
        self.token(TokenRequest { grant_type: Some("client_credentials".into()), scope: scope.map(Into::into), ..Default::default() }).await
    }

    /// RFC 6749 §6: a new access token from a refresh token.
    pub async fn refresh_token(&self, refresh_token: &str) -> Result<TokenResponse, ClientError> {
        self.token(TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: Some(refresh_token.into()),
            ..Default::default()
        })
        .await
    }

    /// The `Authorization` header (Basic, for a confidential client) and the form body; a
    /// public client names itself in the form (RFC 6749 §2.3.1, §3.2.1).
    fn encode(&self, mut form: TokenRequest) -> Result<(Option<Zeroizing<String>>, Zeroizing<String>), ClientError> {
        let header = match &self.client_secret {
            Some(secret) => {
                let pair = Zeroizing::new(format!("{}:{}", form_encode(&self.client_id), form_encode(secret)));
                Some(Zeroizing::new(format!("Basic {}", cloudsign_csc::b64::encode(pair.as_bytes()))))
            }
            None => {
                form.client_id = Some(self.client_id.clone());
                None
            }
        };
        let body = Zeroizing::new(serde_urlencoded::to_string(&form).map_err(|e| ClientError::Invalid(e.to_string()))?);
        Ok((header, body))
    }

    /// POST the form to the token endpoint.
    async fn token(&self, form: TokenRequest) -> Result<TokenResponse, ClientError> {
        let method = "oauth2/token";
        let (header, body) = self.encode(form)?;
        let mut req = self.http.post(&self.token_url).header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(header) = &header {
            req = req.header(reqwest::header::AUTHORIZATION, header.as_str());
        }
        let transport = |source| ClientError::Transport { method: method.into(), source };
        let resp = req.body(body.as_bytes().to_vec()).send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status != StatusCode::OK {
            return Err(refusal_at(method, &self.token_url, status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Malformed { method: method.into(), detail: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::refusal;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        let pkce = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(pkce.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let fresh = Pkce::new().unwrap();
        assert_eq!(fresh.verifier.len(), 43);
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(form_encode("my client:1/é"), "my+client%3A1%2F%C3%A9");
    }

    #[test]
    fn token_requests_are_forms() {
        let public = OAuthClient::new(reqwest::Client::new(), "https://sign.example/", "app", None);
        assert_eq!(public.token_url, "https://sign.example/oauth2/token");
        let form = TokenRequest {
            grant_type: Some("authorization_code".into()),
            code: Some("c 1".into()),
            redirect_uri: Some("https://app.example/cb?x=1".into()),
            code_verifier: Some("v".into()),
            ..Default::default()
        };
        let (header, body) = public.encode(form.clone()).unwrap();
        assert!(header.is_none());
        assert_eq!(
            body.as_str(),
            "grant_type=authorization_code&code=c+1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1&code_verifier=v&client_id=app"
        );
        let confidential = OAuthClient::new(reqwest::Client::new(), "https://sign.example", "app", Some("s3cret"));
        let (header, body) = confidential.encode(form).unwrap();
        assert_eq!(header.as_deref().map(String::as_str), Some("Basic YXBwOnMzY3JldA=="));
        assert!(!body.contains("client_id") && !body.contains("s3cret"));
    }

    #[test]
    fn oauth_errors_decode() {
        let e = refusal("oauth2/token", StatusCode::BAD_REQUEST, br#"{"error":"invalid_grant","error_description":"Invalid code"}"#);
        assert_eq!(e.code(), Some("invalid_grant"));
        assert_eq!(e.to_string(), "oauth2/token refused (HTTP 400 Bad Request): invalid_grant: Invalid code");
    }
}
