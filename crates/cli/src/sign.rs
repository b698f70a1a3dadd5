//! `cloudsign sign`: sign a local file through any CSC v2 service. The file never leaves this
//! machine: it is hashed here (streamed, so size does not matter), the signed attributes are
//! built here, and only their digest goes to `credentials/authorize` + `signatures/signHash`.
//! The password and PIN come from a hidden prompt, or from CLOUDSIGN_PASSWORD / CLOUDSIGN_PIN
//! (and CLOUDSIGN_OTP) for automation; never from arguments.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::{Args, ValueEnum};
use cloudsign_csc::{HashAlgorithm, SignAlgorithm};
use serde_json::{Value, json};
use zeroize::Zeroizing;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// CMS (ETSI EN 319 122), any file.
    Cades,
    /// PDF (not yet).
    Pades,
    /// XML (not yet).
    Xades,
    /// JWS (ETSI TS 119 182-1), any file as the detached payload.
    Jades,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Level {
    #[value(name = "B-B")]
    BB,
    #[value(name = "B-T")]
    BT,
    #[value(name = "B-LT")]
    BLt,
    #[value(name = "B-LTA")]
    BLta,
}

#[derive(Args)]
pub struct SignArgs {
    /// The file to sign.
    file: PathBuf,
    /// The CSC service's base URL (e.g. https://sign.example.com); `/csc/v2` is added.
    #[arg(long)]
    service: String,
    /// Your user name at the service.
    #[arg(long)]
    user: String,
    /// The credential to sign with.
    #[arg(long)]
    credential: String,
    /// Signature format.
    #[arg(long, value_enum, default_value = "cades")]
    format: Format,
    /// AdES level: B-B, or B-T with a time-stamp from the service (default: B-T for CAdES,
    /// B-B for JAdES).
    #[arg(long, value_enum)]
    level: Option<Level>,
    /// Where to write the signature (default: FILE.p7s, or FILE.jws for JAdES, next to the file).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn secret(var: &str, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    if let Ok(v) = std::env::var(var) {
        return Ok(Zeroizing::new(v));
    }
    Ok(Zeroizing::new(rpassword::prompt_password(prompt).with_context(|| format!("cannot prompt for it; set {var}"))?))
}

struct Csc {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Csc {
    async fn call(&self, method: &str, body: Value) -> anyhow::Result<Value> {
        let mut req = self.http.post(format!("{}/{method}", self.base)).json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach the service for {method}"))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error = value["error"].as_str().unwrap_or("error");
            let description = value["error_description"].as_str().unwrap_or("");
            bail!("{method} refused ({status}): {error}: {description}");
        }
        Ok(value)
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(v: &Value, what: &str) -> anyhow::Result<Vec<u8>> {
    let text = v.as_str().with_context(|| format!("the service sent no {what}"))?;
    base64::engine::general_purpose::STANDARD.decode(text).with_context(|| format!("the service sent a malformed {what}"))
}

/// The file's digest, read in chunks (after `prefix`, for a JWS signing input).
fn file_digest(path: &PathBuf, hash: HashAlgorithm, prefix: &[u8]) -> anyhow::Result<Vec<u8>> {
    use aws_lc_rs::digest as d;
    let alg = match hash {
        HashAlgorithm::Sha256 => &d::SHA256,
        HashAlgorithm::Sha384 => &d::SHA384,
        HashAlgorithm::Sha512 => &d::SHA512,
    };
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut ctx = d::Context::new(alg);
    ctx.update(prefix);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx.finish().as_ref().to_vec())
}

/// The password and PIN travel to the service: https, or plain http on this machine only.
fn check_service_url(url: &str) -> anyhow::Result<()> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let host = url.strip_prefix("http://").unwrap_or_default().split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return Ok(());
    }
    bail!("--service must be an https:// URL (plain http only on this machine): the password and PIN travel to it")
}

pub async fn run(mut a: SignArgs) -> anyhow::Result<()> {
    check_service_url(&a.service)?;
    let level = a.level.unwrap_or(if a.format == Format::Jades { Level::BB } else { Level::BT });
    a.level = Some(level);
    match (a.format, level) {
        (Format::Pades | Format::Xades, _) => {
            bail!("only --format cades and jades are available in this version (PAdES and XAdES are on the roadmap)")
        }
        (Format::Jades, Level::BB) | (Format::Cades, Level::BB | Level::BT) => {}
        (Format::Jades, _) => bail!("JAdES is available at --level B-B in this version"),
        (Format::Cades, _) => bail!("CAdES is available at --level B-B and B-T in this version"),
    }
    if !a.file.is_file() {
        bail!("{} is not a readable file", a.file.display());
    }
    let mut csc = Csc { http: reqwest::Client::new(), base: format!("{}/csc/v2", a.service.trim_end_matches('/')), token: None };

    let password = secret("CLOUDSIGN_PASSWORD", "Password: ")?;
    let resp = csc
        .http
        .post(format!("{}/auth/login", csc.base))
        .basic_auth(&a.user, Some(password.as_str()))
        .json(&json!({}))
        .send()
        .await
        .context("cannot reach the service for auth/login")?;
    let status = resp.status();
    let login: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("auth/login refused ({status}): {}", login["error_description"].as_str().unwrap_or("wrong user name or password"));
    }
    csc.token = Some(login["access_token"].as_str().context("the service sent no access_token")?.to_string());

    let info = csc.call("credentials/info", json!({"credentialID": a.credential, "certificates": "chain", "authInfo": true})).await?;
    let certs = info["cert"]["certificates"].as_array().context("the service sent no certificates")?;
    let certs: Vec<Vec<u8>> = certs.iter().map(|c| unb64(c, "certificate")).collect::<anyhow::Result<_>>()?;
    let (certificate, chain) = certs.split_first().context("the service sent no certificate")?;
    // The first algorithm the key offers (`key.algo`); a bare rsaEncryption is used with SHA-256.
    let algos: Vec<&str> = info["key"]["algo"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    // JWS pairs each curve with one hash (RFC 7518 §3.4): ES256 P-256, ES384 P-384, ES512 P-521.
    let key_bits = info["key"]["len"].as_u64().unwrap_or(0);
    let jws_fits = |s: &SignAlgorithm| match s {
        SignAlgorithm::Ecdsa(h) => {
            matches!((key_bits, h), (256, HashAlgorithm::Sha256) | (384, HashAlgorithm::Sha384) | (521, HashAlgorithm::Sha512))
        }
        _ => true,
    };
    let scheme = algos
        .iter()
        .filter_map(|algo| {
            SignAlgorithm::resolve(algo, None, None).or_else(|_| SignAlgorithm::resolve(algo, Some(HashAlgorithm::Sha256.oid()), None)).ok()
        })
        .find(|s| a.format != Format::Jades || jws_fits(s))
        .with_context(|| format!("the credential offers no signature algorithm this client can use for this format ({algos:?})"))?;
    let hash = scheme.hash();

    let signing_time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let chain: Vec<Vec<u8>> = chain.iter().filter(|c| *c != certificate).cloned().collect();
    let params = cloudsign_ades::Params { scheme, certificate, chain: &chain, signing_time };
    let prepared = match a.format {
        Format::Jades => {
            let streamed = cloudsign_ades::jades::prepare_streamed(&params);
            let tbs = file_digest(&a.file, hash, &streamed.signing_input_prefix())?;
            Prepared::Jades(streamed.with_digest(tbs))
        }
        _ => Prepared::Cades(cloudsign_ades::cades::prepare(&file_digest(&a.file, hash, &[])?, &params)?),
    };
    let to_be_signed = match &prepared {
        Prepared::Cades(p) => p.to_be_signed.clone(),
        Prepared::Jades(p) => p.to_be_signed.clone(),
    };

    let pin = secret("CLOUDSIGN_PIN", "PIN: ")?;
    let mut auth_data = vec![json!({"id": "PIN", "value": pin.as_str()})];
    let needs_otp = info["auth"]["objects"].as_array().is_some_and(|o| o.iter().any(|x| x["id"] == "OTP"));
    if needs_otp {
        let otp = secret("CLOUDSIGN_OTP", "One-time code: ")?;
        auth_data.push(json!({"id": "OTP", "value": otp.as_str()}));
    }
    let tbs = b64(&to_be_signed);
    let authorized = csc
        .call(
            "credentials/authorize",
            json!({"credentialID": a.credential, "numSignatures": 1, "hashes": [tbs], "hashAlgorithmOID": hash.oid(), "authData": auth_data}),
        )
        .await?;
    let sad = authorized["SAD"].as_str().context("the service sent no SAD")?;
    let signed = csc
        .call(
            "signatures/signHash",
            json!({"credentialID": a.credential, "SAD": sad, "hashes": [tbs], "hashAlgorithmOID": hash.oid(), "signAlgo": scheme.oid()}),
        )
        .await?;
    let signature = unb64(&signed["signatures"][0], "signature")?;

    let (bytes, extension, what) = match prepared {
        Prepared::Jades(p) => (p.finish(&signature)?.into_bytes(), ".jws", "JAdES B-B"),
        Prepared::Cades(p) => {
            let token = if level == Level::BT {
                let (h, imprint) = p.timestamp_imprint(&signature);
                let ts = csc.call("signatures/timestamp", json!({"hash": b64(&imprint), "hashAlgo": h.oid()})).await?;
                Some(unb64(&ts["timestamp"], "time-stamp token")?)
            } else {
                None
            };
            let what = if token.is_some() { "CAdES B-T" } else { "CAdES B-B" };
            (p.finish(&signature, token.as_deref(), None, None), ".p7s", what)
        }
    };
    let out = a.out.unwrap_or_else(|| {
        let mut name = a.file.clone().into_os_string();
        name.push(extension);
        PathBuf::from(name)
    });
    std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("signed: {} ({} bytes, {what})", out.display(), bytes.len());
    Ok(())
}

/// A signature waiting for its value, in either format.
enum Prepared {
    Cades(cloudsign_ades::cades::Prepared),
    Jades(cloudsign_ades::jades::Prepared),
}
