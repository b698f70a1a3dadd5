//! The CSC API calls, v1 (1.0.4.0) and v2 (2.0.0.2), on the `cloudsign-csc` wire types. The
//! methods take version-neutral arguments (bytes, algorithm enums) and encode them in the
//! version the [`Client`] speaks; where the answers differ (`info`, `credentials/info`) they
//! come back as an enum of the two wire types.

use cloudsign_csc::{HashAlgorithm, SignAlgorithm, b64, v1, v2};
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::error::{ClientError, refusal_at};

/// The CSC API version a service speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// CSC API v1.0.4.0, under `/csc/v1`.
    V1,
    /// CSC API v2.0.0.2, under `/csc/v2`.
    V2,
}

impl Api {
    /// The path segment of the version (`v1`, `v2`).
    pub fn name(self) -> &'static str {
        match self {
            Api::V1 => "v1",
            Api::V2 => "v2",
        }
    }
}

/// A session with one CSC service: its base URL, the API version, and once logged in the
/// access token.
pub struct Client {
    http: reqwest::Client,
    service: String,
    base: String,
    api: Api,
    token: Option<Zeroizing<String>>,
    /// An RFC 3161 TSA to take time-stamps from instead of `signatures/timestamp`.
    tsa: Option<String>,
    /// `clientData` for `signatures/timestamp`.
    timestamp_client_data: Option<String>,
    /// signHash in `operationMode` `A` (CSC API 2.2.0.0), fetched with `signatures/signPolling`.
    asynchronous: bool,
}

/// `credentials/info`'s answer in the version asked.
#[derive(Debug)]
pub enum CredentialInfo {
    /// v1 §11.5 (flat `PIN` and `OTP` groups).
    V1(v1::CredentialInfo),
    /// v2 §11.5 (`auth.objects`).
    V2(v2::CredentialInfo),
}

impl CredentialInfo {
    /// The key: its algorithms and length.
    pub fn key(&self) -> &v2::KeyInfo {
        match self {
            CredentialInfo::V1(i) => &i.key,
            CredentialInfo::V2(i) => &i.key,
        }
    }

    /// The certificates (DER), end entity first; empty when none were asked for.
    pub fn certificates(&self) -> Result<Vec<Vec<u8>>, ClientError> {
        let cert = match self {
            CredentialInfo::V1(i) => &i.cert,
            CredentialInfo::V2(i) => &i.cert,
        };
        cert.certificates
            .iter()
            .flatten()
            .map(|c| {
                b64::decode_lenient(c).ok_or_else(|| ClientError::Malformed {
                    method: "credentials/info".into(),
                    detail: "a certificate is not base64".into(),
                })
            })
            .collect()
    }

    /// Whether `credentials/authorize` needs an OTP besides the PIN: v2 lists an `OTP` object
    /// in `auth.objects`, v1 has an `OTP` group whose `presence` is not `"false"`.
    pub fn needs_otp(&self) -> bool {
        match self {
            CredentialInfo::V1(i) => i.otp.as_ref().is_some_and(|o| o.presence != "false"),
            CredentialInfo::V2(i) => i.auth.objects.iter().flatten().any(|o| o.id == "OTP"),
        }
    }

    /// `authMode` (v1) or `auth.mode` (v2): `implicit`, `explicit` or `oauth2code`.
    pub fn auth_mode(&self) -> &str {
        match self {
            CredentialInfo::V1(i) => &i.auth_mode,
            CredentialInfo::V2(i) => &i.auth.mode,
        }
    }

    /// Whether `credentials/authorize` wants a PIN: explicit authorization, and (v1) a `PIN`
    /// group whose `presence` is not `"false"`, or (v2) a `PIN` object or no objects listed.
    pub fn needs_pin(&self) -> bool {
        match self {
            CredentialInfo::V1(i) => i.auth_mode == "explicit" && i.pin.as_ref().is_none_or(|p| p.presence != "false"),
            CredentialInfo::V2(i) => {
                i.auth.mode == "explicit" && i.auth.objects.as_ref().is_none_or(|o| o.is_empty() || o.iter().any(|o| o.id == "PIN"))
            }
        }
    }

    /// The signatures one authorization allows.
    pub fn multisign(&self) -> u32 {
        match self {
            CredentialInfo::V1(i) => i.multisign,
            CredentialInfo::V2(i) => i.multisign,
        }
    }
}

/// `info`'s answer in the version asked.
#[derive(Debug)]
pub enum Info {
    /// v1 §11.1.
    V1(v1::InfoResponse),
    /// v2 §11.1.
    V2(v2::InfoResponse),
}

impl Info {
    /// The methods the service implements.
    pub fn methods(&self) -> &[String] {
        match self {
            Info::V1(i) => &i.methods,
            Info::V2(i) => &i.methods,
        }
    }
}

/// Which certificates `credentials/info` returns (`certificates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certificates {
    /// None.
    None,
    /// The end-entity certificate.
    Single,
    /// The whole chain.
    Chain,
}

impl Certificates {
    fn as_str(self) -> &'static str {
        match self {
            Certificates::None => "none",
            Certificates::Single => "single",
            Certificates::Chain => "chain",
        }
    }
}

/// A `credentials/authorize` call (explicit authorization: PIN and OTP).
#[derive(Debug, Clone, Copy)]
pub struct Authorize<'a> {
    /// The credential.
    pub credential_id: &'a str,
    /// Signatures the SAD will allow.
    pub num_signatures: u64,
    /// The digests to bind (required for SCAL 2); empty for none.
    pub hashes: &'a [&'a [u8]],
    /// Their algorithm (v2 `hashAlgorithmOID`; v1 has no member for it: the length tells).
    pub hash_algorithm: Option<HashAlgorithm>,
    /// The PIN.
    pub pin: Option<&'a str>,
    /// The OTP.
    pub otp: Option<&'a str>,
    /// A description of the transaction, shown to the user by some services.
    pub description: Option<&'a str>,
}

/// A `signatures/signHash` call.
#[derive(Debug, Clone, Copy)]
pub struct SignHash<'a> {
    /// The credential.
    pub credential_id: &'a str,
    /// The SAD from `credentials/authorize` (or an OAuth credential token, v1 `SAD`).
    pub sad: Option<&'a str>,
    /// The digests to sign.
    pub hashes: &'a [&'a [u8]],
    /// The signature scheme; its digest algorithm goes in `hashAlgorithmOID` (v1 `hashAlgo`).
    pub scheme: SignAlgorithm,
    /// DER `signAlgoParams` (RSASSA-PSS-params), when the service wants them.
    pub sign_algo_params: Option<&'a [u8]>,
}

fn encode_all(digests: &[&[u8]]) -> Vec<String> {
    digests.iter().map(|d| b64::encode(d)).collect()
}

fn some_hashes(digests: &[&[u8]]) -> Option<Vec<String>> {
    (!digests.is_empty()).then(|| encode_all(digests))
}

/// The `credentials/authorize` body for `api` (v1 §11.6: `hash`, `PIN`, `OTP`; v2 §11.6:
/// `hashes`, `hashAlgorithmOID`, `authData`).
pub(crate) fn authorize_body(api: Api, a: &Authorize<'_>) -> Result<serde_json::Value, serde_json::Error> {
    match api {
        Api::V1 => serde_json::to_value(v1::AuthorizeRequest {
            credential_id: a.credential_id.into(),
            num_signatures: a.num_signatures,
            hash: some_hashes(a.hashes),
            pin: a.pin.map(Into::into),
            otp: a.otp.map(Into::into),
            description: a.description.map(Into::into),
            client_data: None,
        }),
        Api::V2 => {
            let mut auth_data = Vec::new();
            for (id, value) in [("PIN", a.pin), ("OTP", a.otp)] {
                if let Some(value) = value {
                    auth_data.push(v2::AuthDatum { id: id.into(), value: Some(value.into()) });
                }
            }
            serde_json::to_value(v2::AuthorizeRequest {
                credential_id: a.credential_id.into(),
                num_signatures: a.num_signatures,
                hashes: some_hashes(a.hashes),
                hash_algorithm_oid: a.hash_algorithm.map(|h| h.oid().into()),
                auth_data,
                description: a.description.map(Into::into),
                client_data: None,
            })
        }
    }
}

/// The `signatures/signHash` body for `api` (v1 §11.9: `hash`, `hashAlgo`; v2 §11.10:
/// `hashes`, `hashAlgorithmOID`).
pub(crate) fn sign_hash_body(api: Api, s: &SignHash<'_>) -> Result<serde_json::Value, serde_json::Error> {
    let params = s.sign_algo_params.map(b64::encode);
    match api {
        Api::V1 => serde_json::to_value(v1::SignHashRequest {
            credential_id: s.credential_id.into(),
            sad: s.sad.unwrap_or_default().into(),
            hash: encode_all(s.hashes),
            hash_algo: Some(s.scheme.hash().oid().into()),
            sign_algo: s.scheme.oid().into(),
            sign_algo_params: params,
            client_data: None,
        }),
        Api::V2 => serde_json::to_value(v2::SignHashRequest {
            credential_id: s.credential_id.into(),
            sad: s.sad.map(Into::into),
            hashes: encode_all(s.hashes),
            hash_algorithm_oid: Some(s.scheme.hash().oid().into()),
            sign_algo: s.scheme.oid().into(),
            sign_algo_params: params,
            operation_mode: None,
            validity_period: None,
            response_uri: None,
            client_data: None,
        }),
    }
}

/// The `credentials/extendTransaction` body for `api` (v1 §11.8 `hash`; v2 §11.9 `hashes`,
/// `hashAlgorithmOID`).
pub(crate) fn extend_body(
    api: Api,
    credential_id: &str,
    sad: &str,
    hashes: &[&[u8]],
    hash: Option<HashAlgorithm>,
) -> Result<serde_json::Value, serde_json::Error> {
    match api {
        Api::V1 => serde_json::to_value(v1::ExtendTransactionRequest {
            credential_id: credential_id.into(),
            hash: some_hashes(hashes),
            sad: sad.into(),
            client_data: None,
        }),
        Api::V2 => serde_json::to_value(v2::ExtendTransactionRequest {
            credential_id: credential_id.into(),
            hashes: some_hashes(hashes),
            hash_algorithm_oid: hash.map(|h| h.oid().into()),
            sad: sad.into(),
            client_data: None,
        }),
    }
}

impl Client {
    /// A client for the service at `service` (its base URL, e.g. `https://sign.example.com`;
    /// `/csc/v1` or `/csc/v2` is added).
    pub fn new(service: &str, api: Api) -> Result<Self, ClientError> {
        Self::with_http(reqwest::Client::new(), service, api)
    }

    /// The same, over a configured HTTP client (timeouts, TLS roots).
    pub fn with_http(http: reqwest::Client, service: &str, api: Api) -> Result<Self, ClientError> {
        reqwest::Url::parse(service).map_err(|_| ClientError::Invalid(format!("{service:?} is not a URL")))?;
        let service = service.trim_end_matches('/').to_string();
        let base = format!("{service}/csc/{}", api.name());
        Ok(Client { http, service, base, api, token: None, tsa: None, timestamp_client_data: None, asynchronous: false })
    }

    /// The API version spoken.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The service's base URL, without a trailing slash (its `/ocsp`, `/crl`, `/oauth2/` hang
    /// off it).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The HTTP client, for the service's other endpoints.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The access token sent as `Authorization: Bearer`, if any.
    pub fn access_token(&self) -> Option<&str> {
        self.token.as_deref().map(String::as_str)
    }

    /// Use `token` (from `auth/login`, or an OAuth token) for the calls that follow.
    pub fn set_access_token(&mut self, token: Option<String>) {
        self.token = token.map(Zeroizing::new);
    }

    /// POST `body` to `method` under the version's base and decode the answer. Public so that
    /// a caller (a conformance check) can send what the typed methods do not.
    pub async fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(&self, method: &str, body: &Req) -> Result<Resp, ClientError> {
        let (status, bytes) = self.post(method, body, None).await?;
        if status == StatusCode::NO_CONTENT {
            // A 204 has no body; `()` and types whose members are all optional take `null`.
            return serde_json::from_value(serde_json::Value::Null)
                .map_err(|e| ClientError::Malformed { method: method.into(), detail: e.to_string() });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Malformed { method: method.into(), detail: e.to_string() })
    }

    /// POST, with Basic authentication instead of the bearer token when `basic` is given.
    async fn post<Req: Serialize + ?Sized>(
        &self,
        method: &str,
        body: &Req,
        basic: Option<(&str, &str)>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let url = format!("{}/{method}", self.base);
        let mut req = self.http.post(&url).json(body);
        match (basic, &self.token) {
            (Some((user, password)), _) => req = req.basic_auth(user, Some(password)),
            (None, Some(t)) => req = req.bearer_auth(t.as_str()),
            (None, None) => {}
        }
        let transport = |source| ClientError::Transport { method: method.into(), source };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?.to_vec();
        if !status.is_success() {
            return Err(refusal_at(method, &url, status, &bytes));
        }
        Ok((status, bytes))
    }

    /// `info` (v1 §11.1, v2 §11.1).
    pub async fn info(&self) -> Result<Info, ClientError> {
        let request = v2::InfoRequest::default();
        Ok(match self.api {
            Api::V1 => Info::V1(self.call("info", &request).await?),
            Api::V2 => Info::V2(self.call("info", &request).await?),
        })
    }

    /// `auth/login` with the user's name and password (HTTP Basic, v1/v2 §11.2); keeps the
    /// access token for the calls that follow. `remember_me` asks for a refresh token.
    pub async fn login(&mut self, user: &str, password: &str, remember_me: bool) -> Result<v2::LoginResponse, ClientError> {
        let request = v2::LoginRequest { remember_me: remember_me.then_some(true), ..Default::default() };
        let (_, bytes) = self.post("auth/login", &request, Some((user, password))).await?;
        self.logged_in(&bytes)
    }

    /// `auth/login` with a refresh token instead of a password (§11.2); keeps the new access
    /// token.
    pub async fn login_refresh(&mut self, refresh_token: &str) -> Result<v2::LoginResponse, ClientError> {
        let request = v2::LoginRequest { refresh_token: Some(refresh_token.into()), ..Default::default() };
        self.token = None;
        let (_, bytes) = self.post("auth/login", &request, None).await?;
        self.logged_in(&bytes)
    }

    fn logged_in(&mut self, bytes: &[u8]) -> Result<v2::LoginResponse, ClientError> {
        let login: v2::LoginResponse =
            serde_json::from_slice(bytes).map_err(|e| ClientError::Malformed { method: "auth/login".into(), detail: e.to_string() })?;
        self.token = Some(Zeroizing::new(login.access_token.clone()));
        Ok(login)
    }

    /// `auth/revoke` (§11.3): `token` with its `token_type_hint` (`access_token`,
    /// `refresh_token`). Revoking the token in use forgets it.
    pub async fn revoke(&mut self, token: &str, hint: Option<&str>) -> Result<(), ClientError> {
        let request = v2::RevokeRequest { token: token.into(), token_type_hint: hint.map(Into::into), client_data: None };
        self.post("auth/revoke", &request, None).await?;
        if self.access_token() == Some(token) {
            self.token = None;
        }
        Ok(())
    }

    /// v1 `credentials/list` (§11.4), one page.
    pub async fn list_v1(&self, request: &v1::ListRequest) -> Result<v1::ListResponse, ClientError> {
        self.call("credentials/list", request).await
    }

    /// v2 `credentials/list` (§11.4).
    pub async fn list_v2(&self, request: &v2::ListRequest) -> Result<v2::ListResponse, ClientError> {
        self.call("credentials/list", request).await
    }

    /// Every credential identifier of the user, following v1's pages.
    pub async fn credential_ids(&self) -> Result<Vec<String>, ClientError> {
        match self.api {
            Api::V2 => Ok(self.list_v2(&v2::ListRequest::default()).await?.credential_ids),
            Api::V1 => {
                let mut ids = Vec::new();
                let mut page_token = None;
                loop {
                    let page = self.list_v1(&v1::ListRequest { page_token, ..Default::default() }).await?;
                    ids.extend(page.credential_ids);
                    match page.next_page_token {
                        Some(next) => page_token = Some(next),
                        None => return Ok(ids),
                    }
                }
            }
        }
    }

    /// `credentials/info` (§11.5).
    pub async fn credential_info(
        &self,
        credential_id: &str,
        certificates: Certificates,
        cert_info: bool,
        auth_info: bool,
    ) -> Result<CredentialInfo, ClientError> {
        let certificates = Some(certificates.as_str().into());
        Ok(match self.api {
            Api::V1 => {
                let request = v1::InfoCredentialRequest {
                    credential_id: credential_id.into(),
                    certificates,
                    cert_info,
                    auth_info,
                    lang: None,
                    client_data: None,
                };
                CredentialInfo::V1(self.call("credentials/info", &request).await?)
            }
            Api::V2 => {
                let request = v2::InfoCredentialRequest {
                    credential_id: credential_id.into(),
                    certificates,
                    cert_info,
                    auth_info,
                    lang: None,
                    client_data: None,
                };
                CredentialInfo::V2(self.call("credentials/info", &request).await?)
            }
        })
    }

    /// `credentials/authorize` (§11.6): the SAD.
    pub async fn authorize(&self, authorize: &Authorize<'_>) -> Result<v2::SadResponse, ClientError> {
        let body = authorize_body(self.api, authorize).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let sad: LenientSad = self.call("credentials/authorize", &body).await?;
        Ok(v2::SadResponse { sad: sad.sad, expires_in: sad.expires_in.unwrap_or(3600) })
    }

    /// `credentials/extendTransaction` (v1 §11.8, v2 §11.9): a new SAD for more digests.
    pub async fn extend_transaction(
        &self,
        credential_id: &str,
        sad: &str,
        hashes: &[&[u8]],
        hash: Option<HashAlgorithm>,
    ) -> Result<v2::SadResponse, ClientError> {
        let body = extend_body(self.api, credential_id, sad, hashes, hash).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.call("credentials/extendTransaction", &body).await
    }

    /// Ask the service to send the user an OTP: v1 `credentials/sendOTP` (§11.7), v2
    /// `credentials/getChallenge` (§11.8) for the `OTP` object.
    pub async fn send_otp(&self, credential_id: &str) -> Result<(), ClientError> {
        match self.api {
            Api::V1 => {
                let request = v1::SendOtpRequest { credential_id: credential_id.into(), client_data: None };
                self.post("credentials/sendOTP", &request, None).await?;
            }
            Api::V2 => {
                let request =
                    v2::GetChallengeRequest { credential_id: credential_id.into(), auth_object_id: "OTP".into(), client_data: None };
                self.post("credentials/getChallenge", &request, None).await?;
            }
        }
        Ok(())
    }

    /// `signatures/signHash` (v1 §11.9, v2 §11.10): one signature value per digest, in order.
    pub async fn sign_hash(&self, sign: &SignHash<'_>) -> Result<Vec<Vec<u8>>, ClientError> {
        let method = "signatures/signHash";
        let mut body = sign_hash_body(self.api, sign).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let signed: v2::SignHashResponse = if self.asynchronous && self.api == Api::V2 {
            body["operationMode"] = "A".into();
            let accepted: v2::AsyncResponse = self.call(method, &body).await?;
            self.poll(&accepted.response_id).await?
        } else {
            self.call(method, &body).await?
        };
        if signed.signatures.len() != sign.hashes.len() {
            return Err(ClientError::Malformed {
                method: method.into(),
                detail: format!("{} signatures for {} hashes", signed.signatures.len(), sign.hashes.len()),
            });
        }
        signed
            .signatures
            .iter()
            .map(|s| {
                b64::decode_lenient(s)
                    .ok_or_else(|| ClientError::Malformed { method: method.into(), detail: "a signature is not base64".into() })
            })
            .collect()
    }

    /// Sign asynchronously (`operationMode: "A"`, CSC API 2.2.0.0) from now on (v2 only).
    pub fn set_asynchronous(&mut self, on: bool) {
        self.asynchronous = on;
    }

    /// `signatures/signPolling` (CSC API 2.2.0.0 §11.15) until the result: 200 is the result;
    /// "still running" is an error answer whose description says so (the only signal seen on
    /// the wire, csc-api-2.2.md §11), tried again after a growing pause, for up to ten minutes.
    async fn poll<Resp: DeserializeOwned>(&self, response_id: &str) -> Result<Resp, ClientError> {
        let request = v2::SignPollingRequest { response_id: response_id.into(), client_data: None };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            match self.call("signatures/signPolling", &request).await {
                Err(e) if still_running(&e) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// `signatures/timestamp` (v2 §11.13, v1 §11.10: the same request): an RFC 3161
    /// TimeStampToken (DER) over `imprint`, with `nonce` (hex) when given.
    pub async fn timestamp(&self, hash: HashAlgorithm, imprint: &[u8], nonce: Option<&str>) -> Result<Vec<u8>, ClientError> {
        self.timestamp_with(hash, imprint, nonce, None).await
    }

    /// [`Client::timestamp`] with `clientData` (§11.13: "arbitrary data from the signature
    /// application"), which some services need to pick a time-stamping unit
    /// (certomancer-csc-dummy: `ARCH/TSA-LABEL`, HTTP 409 without it).
    pub async fn timestamp_with(
        &self,
        hash: HashAlgorithm,
        imprint: &[u8],
        nonce: Option<&str>,
        client_data: Option<&str>,
    ) -> Result<Vec<u8>, ClientError> {
        let method = "signatures/timestamp";
        let request = v2::TimestampRequest {
            hash: b64::encode(imprint),
            hash_algo: hash.oid().into(),
            nonce: nonce.map(Into::into),
            client_data: client_data.map(Into::into),
        };
        let ts: v2::TimestampResponse = self.call(method, &request).await?;
        b64::decode_lenient(&ts.timestamp)
            .ok_or_else(|| ClientError::Malformed { method: method.into(), detail: "the token is not base64".into() })
    }

    /// Where [`Client::stamp`] takes time-stamps from: the RFC 3161 TSA at `tsa`, or the
    /// service's `signatures/timestamp` with `client_data`.
    pub fn set_timestamps(&mut self, tsa: Option<String>, client_data: Option<String>) {
        self.tsa = tsa;
        self.timestamp_client_data = client_data;
    }

    /// A time-stamp token over `imprint` from the source [`Client::set_timestamps`] chose.
    pub async fn stamp(&self, hash: HashAlgorithm, imprint: &[u8]) -> Result<Vec<u8>, ClientError> {
        match &self.tsa {
            Some(url) => crate::tsa::timestamp(&self.http, url, hash, imprint).await,
            None => self.timestamp_with(hash, imprint, None, self.timestamp_client_data.as_deref()).await,
        }
    }

    /// `info`, read leniently: the members that decide how to authenticate, from a v1 or v2
    /// answer, whatever else the service leaves out.
    pub async fn service_info(&self) -> Result<ServiceInfo, ClientError> {
        self.call("info", &serde_json::json!({})).await
    }
}

/// The SAD answer as other services send it: `expiresIn` is optional (v1 §11.6 default 3600 s;
/// certomancer-csc-dummy leaves it out).
#[derive(serde::Deserialize)]
struct LenientSad {
    #[serde(rename = "SAD")]
    sad: String,
    #[serde(rename = "expiresIn", default)]
    expires_in: Option<u64>,
}

/// What `info` says about authentication and methods (v1 and v2 §11.1), read leniently: a
/// service that leaves out members it considers optional can still be used.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ServiceInfo {
    /// `specs`: the API version implemented.
    #[serde(default)]
    pub specs: String,
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `authType`: `basic`, `digest`, `oauth2code`, `oauth2implicit`, `oauth2client`,
    /// `external`, `TLS`.
    #[serde(rename = "authType", default)]
    pub auth_type: Vec<String>,
    /// `oauth2`: the base URI of the OAuth 2.0 server (`<oauth2>oauth2/authorize`, ...).
    #[serde(default)]
    pub oauth2: Option<String>,
    /// v2 `oauth2Issuer`: the RFC 8414 issuer.
    #[serde(rename = "oauth2Issuer", default)]
    pub oauth2_issuer: Option<String>,
    /// `methods`.
    #[serde(default)]
    pub methods: Vec<String>,
}

impl ServiceInfo {
    /// `methods` lists `method`.
    pub fn offers(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }

    /// `authType` lists `kind`.
    pub fn auth(&self, kind: &str) -> bool {
        self.auth_type.iter().any(|a| a.eq_ignore_ascii_case(kind))
    }

    /// `auth/login` with HTTP Basic is offered: listed in `methods`, or `basic` in `authType`
    /// (v1 §11.1: "basic: HTTP Basic Authentication" of auth/login).
    pub fn offers_login(&self) -> bool {
        self.offers("auth/login") || self.auth("basic")
    }

    /// The OAuth 2.0 server: `oauth2`, or the v2 `oauth2Issuer`.
    pub fn oauth_base(&self) -> Option<&str> {
        self.oauth2.as_deref().or(self.oauth2_issuer.as_deref()).filter(|u| !u.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D1: &[u8] = &[1; 32];
    const D2: &[u8] = &[2; 32];

    fn authorize() -> Authorize<'static> {
        Authorize {
            credential_id: "cred",
            num_signatures: 2,
            hashes: &[D1, D2],
            hash_algorithm: Some(HashAlgorithm::Sha256),
            pin: Some("1234"),
            otp: Some("987654"),
            description: None,
        }
    }

    #[test]
    fn authorize_uses_each_versions_names() {
        let (h1, h2) = (b64::encode(D1), b64::encode(D2));
        assert_eq!(
            authorize_body(Api::V1, &authorize()).unwrap(),
            json!({"credentialID": "cred", "numSignatures": 2, "hash": [h1, h2], "PIN": "1234", "OTP": "987654"})
        );
        assert_eq!(
            authorize_body(Api::V2, &authorize()).unwrap(),
            json!({"credentialID": "cred", "numSignatures": 2, "hashes": [h1, h2], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                   "authData": [{"id": "PIN", "value": "1234"}, {"id": "OTP", "value": "987654"}]})
        );
        // Nothing optional is sent as null: no hashes, no OTP.
        let bare = Authorize { hashes: &[], otp: None, hash_algorithm: None, ..authorize() };
        assert_eq!(authorize_body(Api::V1, &bare).unwrap(), json!({"credentialID": "cred", "numSignatures": 2, "PIN": "1234"}));
        assert_eq!(
            authorize_body(Api::V2, &bare).unwrap(),
            json!({"credentialID": "cred", "numSignatures": 2, "authData": [{"id": "PIN", "value": "1234"}]})
        );
    }

    #[test]
    fn sign_hash_uses_each_versions_names() {
        let sign = SignHash {
            credential_id: "cred",
            sad: Some("sad"),
            hashes: &[D1],
            scheme: SignAlgorithm::Ecdsa(HashAlgorithm::Sha256),
            sign_algo_params: None,
        };
        let h1 = b64::encode(D1);
        assert_eq!(
            sign_hash_body(Api::V1, &sign).unwrap(),
            json!({"credentialID": "cred", "SAD": "sad", "hash": [h1], "hashAlgo": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.10045.4.3.2"})
        );
        assert_eq!(
            sign_hash_body(Api::V2, &sign).unwrap(),
            json!({"credentialID": "cred", "SAD": "sad", "hashes": [h1], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.10045.4.3.2"})
        );
    }

    #[test]
    fn extend_transaction_uses_each_versions_names() {
        let h1 = b64::encode(D1);
        assert_eq!(
            extend_body(Api::V1, "cred", "sad", &[D1], Some(HashAlgorithm::Sha256)).unwrap(),
            json!({"credentialID": "cred", "hash": [h1], "SAD": "sad"})
        );
        assert_eq!(
            extend_body(Api::V2, "cred", "sad", &[D1], Some(HashAlgorithm::Sha256)).unwrap(),
            json!({"credentialID": "cred", "hashes": [h1], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "SAD": "sad"})
        );
    }

    #[test]
    fn the_wire_requests_round_trip_through_the_servers_decoder() {
        // What the client encodes is what the server's own request types read.
        let body = authorize_body(Api::V2, &authorize()).unwrap();
        let back: v2::AuthorizeRequest = serde_json::from_value(body).unwrap();
        assert_eq!(back.auth_data.len(), 2);
        assert_eq!(back.hashes.map(|h| h.len()), Some(2));
        let body = authorize_body(Api::V1, &authorize()).unwrap();
        let back: v1::AuthorizeRequest = serde_json::from_value(body).unwrap();
        assert_eq!(back.pin.as_deref(), Some("1234"));
    }

    #[test]
    fn credential_info_of_either_version_answers_the_same_questions() {
        let key = json!({"status": "enabled", "algo": ["1.2.840.10045.4.3.2"], "len": 256});
        let cert = json!({"certificates": [b64::encode(b"cert"), b64::encode(b"ca")]});
        let v2: v2::CredentialInfo = serde_json::from_value(json!({
            "key": key, "cert": cert, "multisign": 5,
            "auth": {"mode": "explicit", "objects": [{"type": "Password", "id": "PIN"}, {"type": "Password", "id": "OTP"}]}
        }))
        .unwrap();
        let v2 = CredentialInfo::V2(v2);
        assert!(v2.needs_otp());
        assert_eq!(v2.certificates().unwrap(), vec![b"cert".to_vec(), b"ca".to_vec()]);
        assert_eq!(v2.key().len, 256);
        // Another service may leave out `lang`, `SCAL`, `key.len`, the OTP group's labels.
        let v1: v1::CredentialInfo = serde_json::from_value(json!({
            "key": {"algo": ["1.2.840.113549.1.1.11"]}, "cert": {}, "authMode": "explicit", "multisign": 1,
            "SCAL": "1", "PIN": {"presence": "true"}, "OTP": {"presence": "true", "type": "offline"}
        }))
        .unwrap();
        let v1 = CredentialInfo::V1(v1);
        assert!(v1.needs_otp() && v1.key().len == 0 && v1.certificates().unwrap().is_empty());
    }
}

/// A signPolling answer that says the request is still being processed (cloudsign's wording,
/// and "in progress"/"pending" as other services may put it).
fn still_running(e: &ClientError) -> bool {
    e.refusal().is_some_and(|r| {
        let d = r.description.to_ascii_lowercase();
        r.status == StatusCode::BAD_REQUEST
            && ["still being processed", "in progress", "pending", "still running"].iter().any(|w| d.contains(w))
    })
}
