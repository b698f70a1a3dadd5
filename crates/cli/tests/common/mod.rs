//! Test harness: the real `cloudsign` binary on a real socket (`cloudsign-test-support`'s
//! [`Env`], [`Server`] and [`Api`], given this crate's binary), and the independent oracles
//! (openssl, oathtool, certutil) the cli's tests check it with.
// Each test binary uses a part of the harness.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

pub use cloudsign_test_support::hsm;
pub use cloudsign_test_support::pdf::one_page_pdf;
pub use cloudsign_test_support::server::*;
use cloudsign_test_support::unique;
pub use cloudsign_test_support::{b64, unb64};

pub mod agent;
pub mod verify;

/// The binary under test, for [`Env::new`].
pub const BIN: &str = env!("CARGO_BIN_EXE_cloudsign");

/// `cloudsign sign INPUT --service URL --user USER --credential ID --out OUT EXTRA...` as an
/// application runs it, the password and PIN from the environment; (success, stderr).
pub fn sign_to(env: &Env, url: &str, user: &str, credential: &str, input: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let o = env
        .command()
        .arg("sign")
        .arg(input)
        .args(["--service", url, "--user", user, "--credential", credential, "--out"])
        .arg(out)
        .args(extra)
        .env("CLOUDSIGN_PASSWORD", PASSWORD)
        .env("CLOUDSIGN_PIN", PIN)
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Lower-case hex, as the audit records and openssl's `-digest` write digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

pub fn sha384(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, data).as_ref().to_vec()
}

pub fn sha512(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, data).as_ref().to_vec()
}

pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
pub const SHA384: &str = "2.16.840.1.101.3.4.2.2";
pub const SHA512: &str = "2.16.840.1.101.3.4.2.3";

/// A tool of the pinned virtualenv `scripts/test.sh` makes (`CLOUDSIGN_PYTHON` names its
/// python): `pyhanko`, `python`, ...
pub fn venv_tool(name: &str) -> PathBuf {
    let python = std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON must name the pinned virtualenv's python: run scripts/test.sh");
    PathBuf::from(python).with_file_name(name)
}

/// Run a command; panic with its output if it fails.
pub fn run(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&cloudsign_test_support::run(cmd)).into_owned()
}

/// Split `admin ca export` (issuing, root) into two files; returns (issuing, root) paths.
pub fn write_ca(env: &Env) -> (PathBuf, PathBuf) {
    let pem = env.ca_pem();
    let certs: Vec<String> = pem.split_inclusive("-----END CERTIFICATE-----\n").map(String::from).collect();
    assert_eq!(certs.len(), 2, "ca export prints issuing CA and root");
    let (issuing, root) = (env.file("issuing.pem"), env.file("root.pem"));
    std::fs::write(&issuing, &certs[0]).unwrap();
    std::fs::write(&root, &certs[1]).unwrap();
    (issuing, root)
}

/// `openssl verify` the certificate chain of a credential (base64 DER list, EE first).
pub fn openssl_verify_chain(env: &Env, chain_b64: &[Value]) {
    let (_, root) = write_ca(env);
    let pem = |der: &[u8]| {
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            b64(der).as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\n")
        )
    };
    let ee = env.file("ee.pem");
    std::fs::write(&ee, pem(&unb64(chain_b64[0].as_str().unwrap()))).unwrap();
    let untrusted = env.file("untrusted.pem");
    let rest: String = chain_b64[1..].iter().map(|c| pem(&unb64(c.as_str().unwrap()))).collect();
    std::fs::write(&untrusted, rest).unwrap();
    let out = run(Command::new("openssl").arg("verify").arg("-CAfile").arg(&root).arg("-untrusted").arg(&untrusted).arg(&ee));
    assert!(out.contains(": OK"), "{out}");
}

/// Verify a signature over `data` with openssl, using the certificate's public key.
/// `mode` is `pkcs1`, `pss` or `ecdsa`; `digest` is sha256/sha384/sha512.
pub fn openssl_verify_signature(dir: &Path, cert_b64: &str, data: &[u8], signature: &[u8], digest: &str, mode: &str) {
    let tag = unique("sig");
    let cert = dir.join(format!("{tag}.crt"));
    std::fs::write(&cert, unb64(cert_b64)).unwrap();
    let pubkey = dir.join(format!("{tag}.pub"));
    run(Command::new("openssl").args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"]).arg(&cert).arg("-out").arg(&pubkey));
    let data_file = dir.join(format!("{tag}.dat"));
    std::fs::write(&data_file, data).unwrap();
    let sig_file = dir.join(format!("{tag}.sig"));
    std::fs::write(&sig_file, signature).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.arg("dgst").arg(format!("-{digest}")).arg("-verify").arg(&pubkey).arg("-signature").arg(&sig_file);
    if mode == "pss" {
        cmd.args(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]);
    }
    cmd.arg(&data_file);
    let out = run(&mut cmd);
    assert!(out.contains("Verified OK"), "openssl: {out}");
}

/// The current TOTP code (or `offset_steps` later) computed by oathtool, an independent
/// implementation of RFC 6238.
pub fn totp(otpauth: &str, offset_steps: i64) -> String {
    let secret = otpauth.split("secret=").nth(1).unwrap().split('&').next().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + offset_steps * 30;
    run(Command::new("oathtool").args(["--totp", "-b", "-N", &format!("@{now}"), secret])).trim().to_string()
}

// ---- OAuth 2.0 -------------------------------------------------------------------------------

pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";

/// A registered client: (client_id, client_secret for confidential clients).
pub fn add_client(env: &Env, name: &str, extra: &[&str]) -> (String, Option<String>) {
    let mut args = vec!["client", "add", "--name", name, "--redirect-uri", REDIRECT_URI, "--json"];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(env.admin(&args, "").trim()).unwrap();
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().map(String::from))
}

/// RFC 7636 PKCE pair (verifier, S256 challenge); the challenge is computed by openssl, not by
/// our code.
pub fn pkce(dir: &Path) -> (String, String) {
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(unique("verifier-").as_bytes().repeat(2));
    let file = dir.join(unique("pkce"));
    std::fs::write(&file, &verifier).unwrap();
    let digest = Command::new("openssl").args(["dgst", "-sha256", "-binary"]).arg(&file).output().unwrap().stdout;
    (verifier, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

pub fn query(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect::<Vec<_>>().join("&")
}

/// The parameters of a redirect `Location`.
pub fn location_params(location: &str) -> std::collections::HashMap<String, String> {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    serde_urlencoded_pairs(q).into_iter().collect()
}

fn serde_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A browser without JavaScript: follows nothing by itself, keeps the flow cookie.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The hidden CSRF field of the form on this page.
    pub fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl Browser {
    pub fn new(server: &Server) -> Browser {
        Browser {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            base: server.url.clone(),
            cookie: None,
        }
    }

    async fn page(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        };
        let resp = req.send().await.unwrap();
        if let Some(c) = resp.headers().get("set-cookie") {
            self.cookie = Some(c.to_str().unwrap().split(';').next().unwrap().to_string());
        }
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        let headers = resp.headers().clone();
        Page { status, location, headers, body: resp.text().await.unwrap() }
    }

    pub async fn get(&mut self, path_and_query: &str) -> Page {
        let req = self.http.get(format!("{}{path_and_query}", self.base));
        self.page(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req =
            self.http.post(format!("{}{path}", self.base)).header("content-type", "application/x-www-form-urlencoded").body(query(form));
        self.page(req).await
    }

    /// `oauth2/authorize` up to the login page.
    pub async fn authorize(&mut self, params: &[(&str, &str)]) -> Page {
        let start = self.get(&format!("/oauth2/authorize?{}", query(params))).await;
        if start.status != 303 {
            return start;
        }
        assert_eq!(start.location.as_deref(), Some("/oauth2/flow"));
        self.get("/oauth2/flow").await
    }

    /// Log in on the login page; returns the consent page.
    pub async fn login(&mut self, login_page: &Page, user: &str) -> Page {
        assert_eq!(login_page.status, 200, "{}", login_page.body);
        let done = self.post("/oauth2/flow/login", &[("csrf", &login_page.csrf()), ("username", user), ("password", PASSWORD)]).await;
        assert_eq!(done.status, 303, "login: {}", done.body);
        self.get("/oauth2/flow").await
    }

    /// Approve on the consent page; returns the response (a redirect when it worked).
    pub async fn approve(&mut self, consent: &Page, factors: &[(&str, &str)]) -> Page {
        let csrf = consent.csrf();
        let mut form = vec![("csrf", csrf.as_str()), ("decision", "approve")];
        form.extend_from_slice(factors);
        self.post("/oauth2/flow/consent", &form).await
    }
}

/// The whole flow through a fresh browser: the redirect's parameters (code, state or error).
pub async fn consent_code(
    server: &Server,
    params: &[(&str, &str)],
    user: &str,
    factors: &[(&str, &str)],
) -> std::collections::HashMap<String, String> {
    consent_code_and_page(server, params, user, factors).await.0
}

/// [`consent_code`], and the consent page's HTML.
pub async fn consent_code_and_page(
    server: &Server,
    params: &[(&str, &str)],
    user: &str,
    factors: &[(&str, &str)],
) -> (std::collections::HashMap<String, String>, String) {
    let mut b = Browser::new(server);
    let login = b.authorize(params).await;
    let consent = b.login(&login, user).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let done = b.approve(&consent, factors).await;
    assert_eq!(done.status, 302, "approve: {}", done.body);
    let location = done.location.unwrap();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    (location_params(&location), consent.body)
}

/// `POST oauth2/<endpoint>` with a form and optional HTTP Basic client authentication.
pub async fn oauth_post(server: &Server, endpoint: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/oauth2/{endpoint}", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query(form));
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or_else(|_| panic!("{endpoint}: {text}")) })
}

/// Authorize one ECDSA P-256/SHA-256 signature (unbound SAD: SCAL 1), sign `data`'s digest, and
/// verify the signature with openssl against `cert_b64`.
pub async fn sign_p256_and_verify(env: &Env, api: &Api, credential: &str, cert_b64: &str, data: &[u8]) {
    let sad = api.sad(credential, 1, None).await;
    let (s, v) = api.sign(credential, &sad, &[sha256(data)], "1.2.840.10045.4.3.2", Some(SHA256)).await;
    assert_eq!(s, 200, "{v}");
    openssl_verify_signature(&env.dir, cert_b64, data, &unb64(v["signatures"][0].as_str().unwrap()), "sha256", "ecdsa");
}

/// `openssl ts -verify` of a TimeStampResp against its query, trusting the service's root.
pub fn openssl_ts_verify(env: &Env, reply: &Path, query: &Path) {
    let (issuing, root) = write_ca(env);
    let out = run(Command::new("openssl")
        .args(["ts", "-verify", "-in"])
        .arg(reply)
        .arg("-queryfile")
        .arg(query)
        .arg("-CAfile")
        .arg(&root)
        .arg("-untrusted")
        .arg(&issuing));
    assert!(out.contains("Verification: OK"), "{out}");
}

/// An NSS database in `<env>/nss` trusting `root`, for `pdfsig -nssdir`.
pub fn nss_trust(env: &Env, root: &Path) {
    let nss = env.file("nss");
    std::fs::create_dir_all(&nss).unwrap();
    let db = format!("sql:{}", nss.display());
    run(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]));
    run(Command::new("certutil").args(["-A", "-d", &db, "-n", "cloudsign-root", "-t", "CT,C,C", "-i"]).arg(root));
}

/// A loopback address no one listens on right now (for a server whose public URL must be known
/// before it starts).
pub fn free_loopback_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}
