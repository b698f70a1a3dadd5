//! `cloudsign sign`: sign local files through any CSC service (v2, or v1 with `--api v1`). The
//! files never leave this machine: they are hashed here (streamed, so size does not matter),
//! the signed attributes are built here, and only their digests go to
//! `credentials/authorize` + `signatures/signHash`. Several files share one authorization.
//! The password and PIN come from a hidden prompt, or from CLOUDSIGN_PASSWORD / CLOUDSIGN_PIN
//! (and CLOUDSIGN_OTP) for automation; never from arguments.

use std::fs::File;
use std::io::{BufReader, IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use aws_lc_rs::digest;
use base64::Engine as _;
use clap::{Args, ValueEnum};
use cloudsign_ades::cades::ValidationData;
use cloudsign_ades::pades::{self, Kind};
use cloudsign_ades::pdf::Pdf;
use cloudsign_csc::{HashAlgorithm, SignAlgorithm};
use serde_json::{Value, json};
use zeroize::Zeroizing;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Format {
    /// PDF (ETSI EN 319 142), the signature inside the PDF.
    Pades,
    /// CMS (ETSI EN 319 122), any file.
    Cades,
    /// XML (ETSI EN 319 132).
    Xades,
    /// JWS (ETSI TS 119 182-1), any file as the detached payload.
    Jades,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, PartialOrd, Ord, Debug)]
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

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Packaging {
    /// The signature in its own file, the data untouched.
    Detached,
    /// The data inside the signature (CAdES).
    Attached,
    /// The signature inside the document (PAdES, XAdES).
    Enveloped,
    /// The document inside the signature (XAdES).
    Enveloping,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Api {
    V1,
    V2,
}

#[derive(Args)]
pub struct SignArgs {
    /// The files to sign (several share one authorization).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The CSC service's base URL (e.g. https://sign.example.com); `/csc/v2` (or v1) is added.
    #[arg(long)]
    service: String,
    /// Your user name at the service.
    #[arg(long)]
    user: String,
    /// The credential to sign with.
    #[arg(long)]
    credential: String,
    /// Signature format (default: pades for .pdf files, cades otherwise).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// AdES level (default B-T; JAdES B-B).
    #[arg(long, value_enum)]
    level: Option<Level>,
    /// Packaging (defaults: PAdES inside the PDF, CAdES and JAdES detached).
    #[arg(long, value_enum)]
    packaging: Option<Packaging>,
    /// PAdES: make a certification signature (DocMDP) allowing 1: no changes, 2: filling in
    /// forms and signing, 3: those and annotations. Only as the document's first signature.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    certify: Option<u8>,
    /// JAdES: reference the file by name and hash in the protected header (`sigD`,
    /// ObjectIdByURIHash) instead of making it the detached payload.
    #[arg(long)]
    sigd: bool,
    /// CSC API version of the service.
    #[arg(long, value_enum, default_value = "v2")]
    api: Api,
    /// Where to write the result (one input file only). Defaults next to each file:
    /// NAME-signed.pdf, FILE.p7s, FILE.jws.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn secret(var: &str, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    if let Ok(v) = std::env::var(var) {
        return Ok(Zeroizing::new(v));
    }
    Ok(Zeroizing::new(rpassword::prompt_password(prompt).with_context(|| format!("cannot prompt for it; set {var}"))?))
}

/// A CSC session: the base URL of one API version and the access token.
struct Csc {
    http: reqwest::Client,
    /// The service's base URL (its own OCSP/CRL endpoints hang off it).
    service: String,
    base: String,
    api: Api,
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

    /// `signatures/timestamp` (v2 §11.13, v1 §11.10: the same request).
    async fn timestamp(&self, hash: HashAlgorithm, imprint: &[u8]) -> anyhow::Result<Vec<u8>> {
        let ts = self.call("signatures/timestamp", json!({"hash": b64(imprint), "hashAlgo": hash.oid()})).await?;
        unb64(&ts["timestamp"], "time-stamp token")
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(v: &Value, what: &str) -> anyhow::Result<Vec<u8>> {
    let text = v.as_str().with_context(|| format!("the service sent no {what}"))?;
    base64::engine::general_purpose::STANDARD.decode(text).with_context(|| format!("the service sent a malformed {what}"))
}

/// Progress on a terminal, for long reads.
struct Progress {
    label: String,
    total: u64,
    done: u64,
    shown: u64,
    on: bool,
}

impl Progress {
    fn new(label: &str, total: u64) -> Self {
        Progress { label: label.to_string(), total, done: 0, shown: 0, on: std::io::stderr().is_terminal() && total > (64 << 20) }
    }

    fn add(&mut self, n: usize) {
        self.done += n as u64;
        let pct = self.done * 100 / self.total.max(1);
        if self.on && pct != self.shown {
            self.shown = pct;
            eprint!("\r{}: {pct:3}%", self.label);
        }
    }

    fn end(&self) {
        if self.on {
            eprintln!("\r{}: done", self.label);
        }
    }
}

/// Read `path` in chunks into `ctx` (after `prefix`), copying to `copy` when given.
fn stream_file(path: &Path, ctx: &mut digest::Context, mut copy: Option<&mut File>) -> anyhow::Result<()> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut progress = Progress::new(&format!("hashing {}", path.display()), total);
    let mut buf = vec![0u8; 1 << 17];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        if let Some(out) = copy.as_deref_mut() {
            out.write_all(&buf[..n]).context("cannot write the signed file")?;
        }
        progress.add(n);
    }
    progress.end();
    Ok(())
}

/// The password and PIN travel to the service: https, or plain http on this machine only.
fn check_service_url(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--service {url:?} is not a URL"))?;
    match (parsed.scheme(), parsed.host_str()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some("127.0.0.1" | "localhost" | "[::1]")) => Ok(()),
        _ => bail!("--service must be an https:// URL (plain http only on this machine): the password and PIN travel to it"),
    }
}

/// What the credential signs with.
struct Credential {
    certificate: Vec<u8>,
    chain: Vec<Vec<u8>>,
    scheme: SignAlgorithm,
    key_bits: u64,
    needs_otp: bool,
}

impl Credential {
    fn params(&self, signing_time: i64) -> cloudsign_ades::Params<'_> {
        cloudsign_ades::Params { scheme: self.scheme, certificate: &self.certificate, chain: &self.chain, signing_time }
    }

    /// The largest DER signature value the key can produce: reserves room in a PDF. The key
    /// size comes from the certificate (a service may leave `key.len` out).
    fn max_signature_len(&self) -> usize {
        let from_cert = cloudsign_pki::der::subject_and_key(&self.certificate).map_or(0, |(_, k)| k.len() as u64 * 8);
        let bytes = self.key_bits.max(from_cert).div_ceil(8) as usize;
        match self.scheme {
            // ECDSA-Sig-Value: SEQUENCE { INTEGER r, INTEGER s }, each with a possible 0x00.
            SignAlgorithm::Ecdsa(_) => 2 * (bytes + 1 + 3) + 4,
            _ => bytes,
        }
    }
}

/// One file on its way to being signed.
enum Job {
    Cades { path: PathBuf, out: PathBuf, prepared: cloudsign_ades::cades::Prepared, attached: bool, content_digest: Vec<u8> },
    Jades { path: PathBuf, out: PathBuf, prepared: cloudsign_ades::jades::Prepared },
    Xades { path: PathBuf, out: PathBuf, prepared: cloudsign_ades::xades::Prepared, detached: bool },
    Pades(Box<PadesJob>),
}

/// The output being written under a temporary name; removed unless it was completed, so a
/// failure (a refused PIN, a lost connection) leaves nothing half-signed behind.
struct Partial {
    path: PathBuf,
    done: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

struct PadesJob {
    out: PathBuf,
    tmp: Partial,
    file: File,
    pdf: Pdf<BufReader<File>>,
    placeholder: pades::Placeholder,
    /// The hash of everything written so far (for the document time-stamp of B-LTA).
    written: digest::Context,
    prepared: cloudsign_ades::cades::Prepared,
}

impl Job {
    fn to_be_signed(&self) -> &[u8] {
        match self {
            Job::Cades { prepared, .. } => &prepared.to_be_signed,
            Job::Jades { prepared, .. } => &prepared.to_be_signed,
            Job::Xades { prepared, .. } => &prepared.to_be_signed,
            Job::Pades(p) => &p.prepared.to_be_signed,
        }
    }
}

fn default_out(path: &Path, format: Format, packaging: Packaging, level: Level) -> PathBuf {
    match (format, packaging) {
        (Format::Pades, _) | (Format::Xades, Packaging::Enveloped) => {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
            path.with_file_name(format!("{stem}-signed{ext}"))
        }
        _ => {
            let mut name = path.to_path_buf().into_os_string();
            name.push(match format {
                // B-T and above are JWS JSON (the unprotected header needs it).
                Format::Jades if level == Level::BB => ".jws",
                Format::Jades => ".jws.json",
                Format::Xades => ".xades.xml",
                _ => ".p7s",
            });
            PathBuf::from(name)
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub async fn run(a: SignArgs) -> anyhow::Result<()> {
    check_service_url(&a.service)?;
    let is_pdf = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
    let format = a.format.unwrap_or(if a.files.iter().all(|f| is_pdf(f)) { Format::Pades } else { Format::Cades });
    let level = a.level.unwrap_or(if format == Format::Jades { Level::BB } else { Level::BT });
    let packaging = a.packaging.unwrap_or(match format {
        Format::Pades | Format::Xades => Packaging::Enveloped,
        _ => Packaging::Detached,
    });
    match (format, level, packaging) {
        (Format::Xades, _, Packaging::Attached) => bail!("XAdES packaging is enveloped, enveloping or detached"),
        (Format::Xades, ..) => {}
        (Format::Pades, _, Packaging::Enveloped) => {}
        (Format::Pades, ..) => bail!("PAdES signatures are always inside the PDF (--packaging enveloped)"),
        (Format::Cades, _, Packaging::Detached | Packaging::Attached) => {}
        (Format::Cades, ..) => bail!("CAdES packaging is detached or attached"),
        (Format::Jades, _, Packaging::Detached | Packaging::Attached) => {}
        (Format::Jades, ..) => bail!("JAdES packaging is detached (RFC 7515 Appendix F) or attached"),
    }
    if a.sigd && (format != Format::Jades || packaging != Packaging::Detached || level == Level::BLta) {
        bail!("--sigd is for detached JAdES up to B-LT");
    }
    if a.certify.is_some() && format != Format::Pades {
        bail!("--certify is for PAdES");
    }
    if a.out.is_some() && a.files.len() > 1 {
        bail!("--out names one output: give one file, or leave --out out to write next to each file");
    }
    for f in &a.files {
        if !f.is_file() {
            bail!("{} is not a readable file", f.display());
        }
    }

    let version = match a.api {
        Api::V1 => "v1",
        Api::V2 => "v2",
    };
    let mut csc = Csc {
        http: reqwest::Client::new(),
        service: a.service.clone(),
        base: format!("{}/csc/{version}", a.service.trim_end_matches('/')),
        api: a.api,
        token: None,
    };
    login(&mut csc, &a.user).await?;
    let cred = credential(&csc, &a.credential, format).await?;
    let hash = cred.scheme.hash();

    // The time-stamp token's size, measured on a probe, sizes the PDF placeholders.
    let token_allowance = if format == Format::Pades && level >= Level::BT {
        csc.timestamp(hash, digest::digest(cloudsign_ades::aws_lc_algorithm(hash), b"cloudsign probe").as_ref()).await?.len() + 512
    } else {
        0
    };

    let signing_time = now();
    let mut jobs = Vec::new();
    for path in &a.files {
        let out = a.out.clone().unwrap_or_else(|| default_out(path, format, packaging, level));
        let params = cred.params(signing_time);
        let job = match format {
            Format::Jades if a.sigd => {
                let mut ctx = digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
                stream_file(path, &mut ctx, None)?;
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let uri = cloudsign_ades::xades::file_name_uri(&name);
                let prepared = cloudsign_ades::jades::prepare_sigd(&[(&uri, ctx.finish().as_ref())], &params)?;
                Job::Jades { path: path.clone(), out, prepared }
            }
            Format::Jades if packaging == Packaging::Attached => {
                let payload = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                Job::Jades { path: path.clone(), out, prepared: cloudsign_ades::jades::prepare_attached(&payload, &params)? }
            }
            Format::Jades => {
                let streamed = cloudsign_ades::jades::prepare_streamed(&params);
                let mut ctx = digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
                ctx.update(&streamed.signing_input_prefix());
                stream_file(path, &mut ctx, None)?;
                Job::Jades { path: path.clone(), out, prepared: streamed.with_digest(ctx.finish().as_ref().to_vec()) }
            }
            Format::Cades => {
                let mut ctx = digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
                stream_file(path, &mut ctx, None)?;
                let content_digest = ctx.finish().as_ref().to_vec();
                let prepared = cloudsign_ades::cades::prepare(&content_digest, &params)?;
                Job::Cades { path: path.clone(), out, prepared, attached: packaging == Packaging::Attached, content_digest }
            }
            Format::Pades => Job::Pades(Box::new(prepare_pdf(path, out, &cred, &params, token_allowance, a.certify)?)),
            Format::Xades => Job::Xades {
                path: path.clone(),
                out,
                prepared: prepare_xml(path, packaging, &params)?,
                detached: packaging == Packaging::Detached,
            },
        };
        jobs.push(job);
    }

    let digests: Vec<&[u8]> = jobs.iter().map(Job::to_be_signed).collect();
    let signatures = sign_hashes(&csc, &a.credential, &cred, &digests).await?;

    for (job, signature) in jobs.into_iter().zip(signatures) {
        let (out, what) = match job {
            Job::Jades { path, out, prepared } => {
                let jws = match level {
                    Level::BB => prepared.finish(&signature)?,
                    _ => {
                        let (h, imprint) = prepared.timestamp_imprint(&signature)?;
                        let token = csc.timestamp(h, &imprint).await?;
                        let validation = match level {
                            Level::BLt | Level::BLta => {
                                Some(crate::fetch::gather_validation(&csc.http, &csc.service, &certificates_with(&cred, &token)).await?)
                            }
                            _ => None,
                        };
                        let jws = prepared.finish_json(&signature, Some(&token), validation.as_ref())?;
                        if level == Level::BLta { jades_archive(&csc, &path, &jws, hash).await? } else { jws }
                    }
                };
                write_new(&out, jws.as_bytes())?;
                (out, format!("JAdES {}", level_name(level)))
            }
            Job::Xades { path, out, prepared, detached } => {
                let token = match level {
                    Level::BB => None,
                    _ => {
                        let (h, imprint) = prepared.timestamp_imprint(&signature)?;
                        Some(csc.timestamp(h, &imprint).await?)
                    }
                };
                let validation = match level {
                    Level::BLt | Level::BLta => Some(embedded_validation(&csc, &cred, token.as_deref()).await?),
                    _ => None,
                };
                let mut xml = prepared.finish(&signature, token.as_deref(), validation.as_ref())?;
                if level == Level::BLta {
                    // EN 319 132-1 §5.5.2: xadesv141:ArchiveTimeStamp over the B-LT signature (and
                    // a detached file's bytes, read again as they stream).
                    let mut file =
                        if detached { Some(File::open(&path).with_context(|| format!("cannot open {}", path.display()))?) } else { None };
                    let archive = cloudsign_ades::xades::archive_imprint(&xml, file.as_mut().map(|f| f as &mut dyn std::io::Read), hash)?;
                    let token = csc.timestamp(archive.hash(), archive.imprint()).await?;
                    xml = archive.finish(&token)?;
                }
                write_new(&out, &xml)?;
                (out, format!("XAdES {}", level_name(level)))
            }
            Job::Cades { path, out, prepared, attached, content_digest } => {
                let token = match level {
                    Level::BB => None,
                    _ => {
                        let (h, imprint) = prepared.timestamp_imprint(&signature);
                        Some(csc.timestamp(h, &imprint).await?)
                    }
                };
                let validation = match level {
                    Level::BLt | Level::BLta => Some(embedded_validation(&csc, &cred, token.as_deref()).await?),
                    _ => None,
                };
                let content =
                    if attached { Some(std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?) } else { None };
                let mut cms = prepared.finish(&signature, token.as_deref(), content.as_deref(), validation.as_ref());
                if level == Level::BLta {
                    // EN 319 122-1 §5.5.3: archive-time-stamp-v3 over the B-LT signature.
                    let archive = cloudsign_ades::cades::archive_imprint(&cms, Some(&content_digest), hash)?;
                    let token = csc.timestamp(archive.hash(), archive.imprint()).await?;
                    cms = archive.finish(&token)?;
                }
                write_new(&out, &cms)?;
                (out, format!("CAdES {}", level_name(level)))
            }
            Job::Pades(job) => finish_pdf(*job, &csc, &cred, level, &signature, token_allowance).await?,
        };
        eprintln!("signed: {} ({what})", out.display());
    }
    Ok(())
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::BB => "B-B",
        Level::BT => "B-T",
        Level::BLt => "B-LT",
        Level::BLta => "B-LTA",
    }
}

/// Write `out` whole or not at all: a temporary file next to it, renamed when complete.
fn write_new(out: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = Partial { path: partial_path(out), done: false };
    std::fs::write(&tmp.path, bytes).with_context(|| format!("cannot write {}", tmp.path.display()))?;
    std::fs::rename(&tmp.path, out).with_context(|| format!("cannot write {}", out.display()))?;
    tmp.done = true;
    Ok(())
}

/// `.NAME.partial` next to `out`.
fn partial_path(out: &Path) -> PathBuf {
    out.with_file_name(format!(".{}.partial", out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()))
}

async fn login(csc: &mut Csc, user: &str) -> anyhow::Result<()> {
    let password = secret("CLOUDSIGN_PASSWORD", "Password: ")?;
    let resp = csc
        .http
        .post(format!("{}/auth/login", csc.base))
        .basic_auth(user, Some(password.as_str()))
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
    Ok(())
}

/// `credentials/info`: the certificate chain, the algorithm, what authorization needs.
async fn credential(csc: &Csc, id: &str, format: Format) -> anyhow::Result<Credential> {
    let info = csc.call("credentials/info", json!({"credentialID": id, "certificates": "chain", "authInfo": true})).await?;
    let certs = info["cert"]["certificates"].as_array().context("the service sent no certificates")?;
    let certs: Vec<Vec<u8>> = certs.iter().map(|c| unb64(c, "certificate")).collect::<anyhow::Result<_>>()?;
    let (certificate, chain) = certs.split_first().context("the service sent no certificate")?;
    let algos: Vec<&str> = info["key"]["algo"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let key_bits = info["key"]["len"].as_u64().unwrap_or(0);
    // JWS pairs each curve with one hash (RFC 7518 §3.4): ES256 P-256, ES384 P-384, ES512 P-521.
    let jws_fits = |s: &SignAlgorithm| match s {
        SignAlgorithm::Ecdsa(h) => {
            matches!((key_bits, h), (256, HashAlgorithm::Sha256) | (384, HashAlgorithm::Sha384) | (521, HashAlgorithm::Sha512))
        }
        _ => true,
    };
    // The first algorithm the key offers (`key.algo`); a bare rsaEncryption is used with SHA-256.
    let scheme = algos
        .iter()
        .filter_map(|algo| {
            SignAlgorithm::resolve(algo, None, None).or_else(|_| SignAlgorithm::resolve(algo, Some(HashAlgorithm::Sha256.oid()), None)).ok()
        })
        .find(|s| format != Format::Jades || jws_fits(s))
        .with_context(|| format!("the credential offers no signature algorithm this client can use for this format ({algos:?})"))?;
    let needs_otp = match csc.api {
        Api::V2 => info["auth"]["objects"].as_array().is_some_and(|o| o.iter().any(|x| x["id"] == "OTP")),
        Api::V1 => info["OTP"]["presence"].as_str().is_some_and(|p| p != "false"),
    };
    Ok(Credential {
        chain: chain.iter().filter(|c| *c != certificate).cloned().collect(),
        certificate: certificate.clone(),
        scheme,
        key_bits,
        needs_otp,
    })
}

/// One `credentials/authorize` for all digests, then one `signatures/signHash`.
async fn sign_hashes(csc: &Csc, id: &str, cred: &Credential, digests: &[&[u8]]) -> anyhow::Result<Vec<Vec<u8>>> {
    let hash = cred.scheme.hash();
    let hashes: Vec<String> = digests.iter().map(|d| b64(d)).collect();
    let pin = secret("CLOUDSIGN_PIN", "PIN: ")?;
    let otp = if cred.needs_otp { Some(secret("CLOUDSIGN_OTP", "One-time code: ")?) } else { None };
    let (authorize, sign) = match csc.api {
        Api::V2 => {
            let mut auth_data = vec![json!({"id": "PIN", "value": pin.as_str()})];
            if let Some(otp) = &otp {
                auth_data.push(json!({"id": "OTP", "value": otp.as_str()}));
            }
            (
                json!({"credentialID": id, "numSignatures": digests.len(), "hashes": hashes, "hashAlgorithmOID": hash.oid(), "authData": auth_data}),
                json!({"credentialID": id, "hashes": hashes, "hashAlgorithmOID": hash.oid(), "signAlgo": cred.scheme.oid()}),
            )
        }
        Api::V1 => {
            let mut body = json!({"credentialID": id, "numSignatures": digests.len(), "hash": hashes, "PIN": pin.as_str()});
            if let Some(otp) = &otp {
                body["OTP"] = json!(otp.as_str());
            }
            (body, json!({"credentialID": id, "hash": hashes, "hashAlgo": hash.oid(), "signAlgo": cred.scheme.oid()}))
        }
    };
    let authorized = csc.call("credentials/authorize", authorize).await?;
    let sad = authorized["SAD"].as_str().context("the service sent no SAD")?;
    let mut sign = sign;
    sign["SAD"] = json!(sad);
    let signed = csc.call("signatures/signHash", sign).await?;
    let list = signed["signatures"].as_array().context("the service sent no signatures")?;
    if list.len() != digests.len() {
        bail!("the service sent {} signatures for {} documents", list.len(), digests.len());
    }
    list.iter().map(|s| unb64(s, "signature")).collect()
}

/// XAdES: an XML document enveloped (read whole: the signature goes inside it), any file
/// enveloping (base64 in a ds:Object), or detached (hashed as it streams, referenced by name).
fn prepare_xml(path: &Path, packaging: Packaging, params: &cloudsign_ades::Params<'_>) -> anyhow::Result<cloudsign_ades::xades::Prepared> {
    use cloudsign_ades::xades::{Input, file_name_uri, prepare};
    let read = || std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
    let prepared = match packaging {
        Packaging::Enveloped => prepare(Input::Enveloped(&read()?), params),
        Packaging::Enveloping => prepare(Input::Enveloping { data: &read()?, mime_type: None }, params),
        _ => {
            let mut ctx = digest::Context::new(cloudsign_ades::aws_lc_algorithm(params.scheme.hash()));
            stream_file(path, &mut ctx, None)?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            prepare(Input::Detached { digest: ctx.finish().as_ref(), uri: &file_name_uri(&name), mime_type: None }, params)
        }
    };
    prepared.with_context(|| format!("cannot sign {}", path.display()))
}

/// Reserve the signature's place in the PDF, copy the original to a temporary file next to the
/// output while hashing it, and build the signed attributes over the byte range.
fn prepare_pdf(
    path: &Path,
    out: PathBuf,
    cred: &Credential,
    params: &cloudsign_ades::Params<'_>,
    token_allowance: usize,
    certify: Option<u8>,
) -> anyhow::Result<PadesJob> {
    let input = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut pdf = Pdf::open(BufReader::new(input)).with_context(|| format!("cannot sign {}", path.display()))?;
    let hash = cred.scheme.hash();
    // The placeholder is sized from the real signature: the CMS with a maximum-size value, and
    // the measured size of a time-stamp token from the same TSA.
    let probe = cloudsign_ades::cades::prepare_pades(&vec![0; hash.len()], params)?;
    let reserve = probe.finish(&vec![0xff; cred.max_signature_len()], None, None, None).len() + token_allowance + 32;
    let kind = match certify {
        Some(permissions) => Kind::Certification { signing_time: params.signing_time, permissions },
        None => Kind::Signature { signing_time: params.signing_time },
    };
    let placeholder = pades::add_signature(&mut pdf, kind, reserve).with_context(|| format!("cannot sign {}", path.display()))?;
    let tmp = partial_path(&out);
    let mut file = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let tmp = Partial { path: tmp, done: false };
    let mut written = digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
    stream_file(path, &mut written, Some(&mut file))?;
    let mut ctx = written.clone();
    let (before, after) = placeholder.signed_parts();
    ctx.update(before);
    ctx.update(after);
    let prepared = cloudsign_ades::cades::prepare_pades(ctx.finish().as_ref(), params)?;
    Ok(PadesJob { out, tmp, file, pdf, placeholder, written, prepared })
}

/// Put the CMS in, then for B-LT the validation data (DSS) and for B-LTA a document
/// time-stamp, each an incremental update; the output appears only when complete.
async fn finish_pdf(
    job: PadesJob,
    csc: &Csc,
    cred: &Credential,
    level: Level,
    signature: &[u8],
    token_allowance: usize,
) -> anyhow::Result<(PathBuf, String)> {
    let PadesJob { out, mut tmp, file, mut pdf, placeholder, written, prepared } = job;
    let mut output = Output { file, written };
    let result = async {
        let token = match level {
            Level::BB => None,
            _ => {
                let (h, imprint) = prepared.timestamp_imprint(signature);
                Some(csc.timestamp(h, &imprint).await?)
            }
        };
        let cms = prepared.finish(signature, token.as_deref(), None, None);
        output.append(&placeholder.fill(&cms)?)?;
        if level >= Level::BLt {
            let v =
                crate::fetch::gather_validation(&csc.http, &csc.service, &certificates_with(cred, token.as_deref().unwrap_or_default()))
                    .await?;
            output.append(&pades::add_dss(&mut pdf, &v.certificates, &v.ocsp, &v.crls)?)?;
        }
        if level == Level::BLta {
            let placeholder = pades::add_signature(&mut pdf, Kind::DocumentTimestamp, token_allowance + 32)?;
            let mut ctx = output.written.clone();
            let (before, after) = placeholder.signed_parts();
            ctx.update(before);
            ctx.update(after);
            let token = csc.timestamp(cred.scheme.hash(), ctx.finish().as_ref()).await?;
            output.append(&placeholder.fill(&token)?)?;
        }
        output.file.sync_all().context("cannot write the signed file")?;
        std::fs::rename(&tmp.path, &out).with_context(|| format!("cannot write {}", out.display()))?;
        tmp.done = true;
        anyhow::Ok(())
    }
    .await;
    result?;
    Ok((out, format!("PAdES {}", level_name(level))))
}

/// The signed PDF being written, and the hash of what it holds so far.
struct Output {
    file: File,
    written: digest::Context,
}

impl Output {
    fn append(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.file.write_all(bytes).context("cannot write the signed file")?;
        self.written.update(bytes);
        Ok(())
    }
}

/// JAdES B-LTA: an archive time-stamp (`arcTst`) over the B-LT JWS JSON and its payload — the
/// JWS's own base64url payload when attached, the file's bytes (streamed) when detached.
async fn jades_archive(csc: &Csc, path: &Path, jws: &str, hash: HashAlgorithm) -> anyhow::Result<String> {
    let input = cloudsign_ades::jades::archive_input(jws)?;
    let mut ctx = digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
    match &input.payload {
        Some(payload) => ctx.update(payload.as_bytes()),
        None => stream_file(path, &mut ctx, None)?,
    }
    ctx.update(&input.suffix);
    let token = csc.timestamp(hash, ctx.finish().as_ref()).await?;
    Ok(cloudsign_ades::jades::add_archive_timestamp(jws, &token)?)
}

/// B-LT validation data to embed in a CMS or XAdES signature, whose certificates field or
/// KeyInfo already carries the signer's chain: the rest (root, TSA) and the revocation data.
async fn embedded_validation(csc: &Csc, cred: &Credential, token: Option<&[u8]>) -> anyhow::Result<ValidationData> {
    let certs = certificates_with(cred, token.unwrap_or_default());
    let mut v = crate::fetch::gather_validation(&csc.http, &csc.service, &certs).await?;
    v.certificates.retain(|c| *c != cred.certificate && !cred.chain.contains(c));
    Ok(v)
}

/// The signer's chain and the certificates in a time-stamp token (the TSA's).
fn certificates_with(cred: &Credential, token: &[u8]) -> Vec<Vec<u8>> {
    let mut certs = vec![cred.certificate.clone()];
    certs.extend(cred.chain.iter().cloned());
    certs.extend(cloudsign_pki::x509::cms_certificates(token));
    certs
}
