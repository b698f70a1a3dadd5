//! The signing application: sign local files through any CSC service (v2, or v1). The files
//! never leave this machine: they are hashed here (streamed, so size does not matter), the
//! signed attributes are built here (`cloudsign-ades`), and only their digests go to
//! `credentials/authorize` + `signatures/signHash`. Several files share one authorization.
//! B-T and above take their time-stamps from the service's `signatures/timestamp` (with
//! `clientData` when the service needs it) or from an RFC 3161 TSA ([`crate::tsa`]); B-LT
//! gathers validation data ([`crate::fetch`]); B-LTA adds the archive time-stamp.
//!
//! How to authenticate is read from the service's `info` ([`crate::auth`]): `auth/login` only
//! where it is offered, a given token, OAuth 2.0 through the user's browser, or nothing for a
//! service that authenticates otherwise.
//!
//! The password, PIN and OTP are asked for through [`Interaction`] when they are needed, so a
//! program decides where they come from (a hidden prompt, the environment, a dialog).

use std::fs::File;
use std::io::{BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use cloudsign_ades::cades::ValidationData;
use cloudsign_ades::format::{self, Format, Level, Packaging};
use cloudsign_ades::pades::{self, Kind};
use cloudsign_ades::pdf::Pdf;
use cloudsign_ades::xades::XadesError;
use cloudsign_ades::{AdesError, Params};
use cloudsign_csc::{HashAlgorithm, SignAlgorithm};
use zeroize::Zeroizing;

use crate::auth::{self, AuthOptions, CredentialScope, Plan};
use crate::csc::{Api, Authorize, Certificates, Client, ServiceInfo, SignHash};
use crate::error::ClientError;
use crate::fetch::{self, FetchError};

/// Why files could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A CSC call failed.
    #[error(transparent)]
    Csc(#[from] ClientError),
    /// B-LT validation data could not be had.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A signature could not be built.
    #[error(transparent)]
    Ades(#[from] AdesError),
    /// An XAdES signature could not be built.
    #[error(transparent)]
    Xades(#[from] XadesError),
    /// The options do not go together.
    #[error("{0}")]
    Usage(String),
    /// The service's answers do not allow signing (no certificate, no usable algorithm).
    #[error("{0}")]
    Service(String),
    /// A file could not be read or written, or a secret could not be asked for.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A document cannot be signed (not a PDF, not XML, ...).
    #[error("{what}")]
    Document {
        /// Which document.
        what: String,
        /// What is wrong with it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> SignError {
    move |source| SignError::Io { what, source }
}

fn cannot_sign<E: std::error::Error + Send + Sync + 'static>(path: &Path) -> impl FnOnce(E) -> SignError + '_ {
    move |e| SignError::Document { what: format!("cannot sign {}", path.display()), source: Box::new(e) }
}

/// A secret the signer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// The user's password at the service (`auth/login`).
    Password,
    /// The credential's PIN (`credentials/authorize`).
    Pin,
    /// The one-time code, when the credential asks for one.
    Otp,
}

/// Progress of a long read.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// What is being read (`hashing FILE`).
    pub label: &'a str,
    /// Bytes read so far.
    pub done: u64,
    /// Bytes in all (the file's size when it started).
    pub total: u64,
    /// The read is over.
    pub finished: bool,
}

/// What the signer asks of the program that runs it.
pub trait Interaction {
    /// The secret, asked for when it is needed (the PIN only once the files are prepared).
    fn secret(&mut self, which: Secret) -> Result<Zeroizing<String>, SignError>;
    /// A file is being hashed.
    fn progress(&mut self, _progress: &Progress<'_>) {}
    /// A file was signed and written.
    fn signed(&mut self, _file: &SignedFile) {}
    /// The user must visit `url` in a browser (OAuth 2.0); the browser then comes back to
    /// `redirect_uri`, where the signer waits.
    fn authorize_in_browser(&mut self, url: &str, _redirect_uri: &str) {
        eprintln!("authorize-url: {url}");
    }
    /// What the signer is doing, for the user (the authentication chosen, ...).
    fn note(&mut self, _message: &str) {}
}

/// What to sign, where, and how.
#[derive(Debug, Clone)]
pub struct SignRequest {
    /// The files to sign (several share one authorization).
    pub files: Vec<PathBuf>,
    /// The CSC service's base URL (`/csc/v2` or `/csc/v1` is added).
    pub service: String,
    /// Its API version; `None`: v2 if the service answers `info` there, else v1.
    pub api: Option<Api>,
    /// How to authenticate (a user name for `auth/login`, a token, an OAuth client).
    pub auth: AuthOptions,
    /// An RFC 3161 TSA for the time-stamps, instead of the service's `signatures/timestamp`.
    pub tsa: Option<String>,
    /// `clientData` for `signatures/timestamp`.
    pub timestamp_client_data: Option<String>,
    /// The credential to sign with.
    pub credential: String,
    /// The format (default: PAdES for PDF files, CAdES otherwise).
    pub format: Option<Format>,
    /// The level (default B-T; JAdES B-B).
    pub level: Option<Level>,
    /// The packaging (defaults: PAdES and XAdES enveloped, CAdES and JAdES detached).
    pub packaging: Option<Packaging>,
    /// PAdES: a certification signature (DocMDP) with these permissions (1 to 3).
    pub certify: Option<u8>,
    /// JAdES: reference the file by name and hash in `sigD` instead of as the payload.
    pub sigd: bool,
    /// PAdES: a visible signature at this place (who signed, when and why, drawn in a box);
    /// `None`: invisible.
    pub visible: Option<pades::Position>,
    /// PAdES: the signature dictionary's `/Reason` (also shown in a visible signature).
    pub reason: Option<String>,
    /// Where to write the result (one file only); default next to each file.
    pub out: Option<PathBuf>,
    /// signHash in asynchronous mode (CSC API 2.2.0.0 `operationMode: "A"`, then
    /// `signatures/signPolling`).
    pub asynchronous: bool,
}

/// A file signed and written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedFile {
    /// The output written.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Its level.
    pub level: Level,
}

impl SignedFile {
    /// `PAdES B-T`, ...
    pub fn kind(&self) -> String {
        format!("{} {}", self.format.name(), self.level.name())
    }
}

/// The format, level and packaging the request resolves to, with the defaults applied.
pub fn resolve(request: &SignRequest) -> Result<(Format, Level, Packaging), SignError> {
    let usage = |m: &str| Err(SignError::Usage(m.into()));
    let is_pdf = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
    let format = request.format.unwrap_or(if request.files.iter().all(|f| is_pdf(f)) { Format::Pades } else { Format::Cades });
    let level = request.level.unwrap_or(if format == Format::Jades { Level::BB } else { Level::BT });
    let packaging = request.packaging.unwrap_or(match format {
        Format::Pades | Format::Xades => Packaging::Enveloped,
        _ => Packaging::Detached,
    });
    match (format, level, packaging) {
        (Format::Xades, _, Packaging::Attached | Packaging::Certification) => {
            return usage("XAdES packaging is enveloped, enveloping or detached");
        }
        (Format::Xades, ..) => {}
        (Format::Pades, _, Packaging::Enveloped | Packaging::Certification) => {}
        (Format::Pades, ..) => return usage("PAdES signatures are always inside the PDF (--packaging enveloped)"),
        (Format::Cades, _, Packaging::Detached | Packaging::Attached) => {}
        (Format::Cades, ..) => return usage("CAdES packaging is detached or attached"),
        (Format::Jades, _, Packaging::Detached | Packaging::Attached) => {}
        (Format::Jades, ..) => return usage("JAdES packaging is detached (RFC 7515 Appendix F) or attached"),
    }
    if request.sigd && (format != Format::Jades || packaging != Packaging::Detached || level == Level::BLTA) {
        return usage("--sigd is for detached JAdES up to B-LT");
    }
    if request.certify.is_some() && format != Format::Pades {
        return usage("--certify is for PAdES");
    }
    if (request.visible.is_some() || request.reason.is_some()) && format != Format::Pades {
        return usage("--visible and --reason are for PAdES");
    }
    if request.out.is_some() && request.files.len() > 1 {
        return usage("--out names one output: give one file, or leave --out out to write next to each file");
    }
    Ok((format, level, packaging))
}

/// The password, tokens and PIN travel to the service: https, or plain http on this machine only.
pub fn check_service_url(url: &str) -> Result<(), SignError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| SignError::Usage(format!("--service {url:?} is not a URL")))?;
    match (parsed.scheme(), parsed.host_str()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some("127.0.0.1" | "localhost" | "[::1]")) => Ok(()),
        _ => Err(SignError::Usage(
            "--service must be an https:// URL (plain http only on this machine): the password and PIN travel to it".into(),
        )),
    }
}

/// Sign `request.files`: read `info`, authenticate as it allows, read the credential, prepare every file, one authorization
/// and one `signHash` for all of them, then each file's time-stamps and validation data.
/// Each output appears whole or not at all.
pub async fn sign_files(request: &SignRequest, ui: &mut dyn Interaction) -> Result<Vec<SignedFile>, SignError> {
    check_service_url(&request.service)?;
    let (format, level, packaging) = resolve(request)?;
    for f in &request.files {
        if !f.is_file() {
            return Err(SignError::Usage(format!("{} is not a readable file", f.display())));
        }
    }

    if let Some(tsa) = &request.tsa {
        let ok = reqwest::Url::parse(tsa).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(SignError::Usage(format!("--tsa {tsa:?} is not an http(s) URL")));
        }
    }

    let http = reqwest::Client::new();
    let (mut csc, info) = connect(&http, &request.service, request.api).await?;
    csc.set_timestamps(request.tsa.clone(), request.timestamp_client_data.clone());
    csc.set_asynchronous(request.asynchronous);
    authenticate(&mut csc, &info, &request.auth, ui).await?;
    let cred = credential(&csc, &request.credential, format).await?;
    let hash = cred.scheme.hash();

    // The time-stamp token's size, measured on a probe, sizes the PDF placeholders.
    let token_allowance = if format == Format::Pades && level.timestamped() {
        let probe = digest::digest(cloudsign_ades::aws_lc_algorithm(hash), b"cloudsign probe");
        format::timestamp_allowance(csc.stamp(hash, probe.as_ref()).await?.len())
    } else {
        0
    };
    let certify = match (request.certify, packaging) {
        (None, Packaging::Certification) => Some(2),
        (c, _) => c,
    };

    let signing_time = now();
    let placement = Placement {
        certify,
        field: pades::Field {
            reason: request.reason.clone(),
            visible: request.visible.map(|position| pades::Visible {
                position,
                lines: pades::signer_lines(&cred.certificate, signing_time, request.reason.as_deref()),
            }),
        },
    };
    let mut jobs = Vec::new();
    for path in &request.files {
        let out = request.out.clone().unwrap_or_else(|| default_out(path, format, packaging, level));
        let params = cred.params(signing_time);
        let job = match format {
            Format::Jades if request.sigd => {
                let mut ctx = digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
                stream_file(ui, path, &mut ctx, None)?;
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let uri = cloudsign_ades::xades::file_name_uri(&name);
                let prepared = cloudsign_ades::jades::prepare_sigd(&[(&uri, ctx.finish().as_ref())], &params)?;
                Job::Jades { path: path.clone(), out, prepared }
            }
            Format::Jades if packaging == Packaging::Attached => {
                let payload = std::fs::read(path).map_err(io(format!("cannot read {}", path.display())))?;
                Job::Jades { path: path.clone(), out, prepared: cloudsign_ades::jades::prepare_attached(&payload, &params)? }
            }
            Format::Jades => {
                let streamed = cloudsign_ades::jades::prepare_streamed(&params);
                let mut ctx = digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
                ctx.update(&streamed.signing_input_prefix());
                stream_file(ui, path, &mut ctx, None)?;
                Job::Jades { path: path.clone(), out, prepared: streamed.with_digest(ctx.finish().as_ref().to_vec()) }
            }
            Format::Cades => {
                let mut ctx = digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
                stream_file(ui, path, &mut ctx, None)?;
                let content_digest = ctx.finish().as_ref().to_vec();
                let prepared = cloudsign_ades::cades::prepare(&content_digest, &params)?;
                Job::Cades { path: path.clone(), out, prepared, attached: packaging == Packaging::Attached, content_digest }
            }
            Format::Pades => Job::Pades(Box::new(prepare_pdf(ui, path, out, &cred, &params, token_allowance, &placement)?)),
            Format::Xades => Job::Xades {
                path: path.clone(),
                out,
                prepared: prepare_xml(ui, path, packaging, &params)?,
                detached: packaging == Packaging::Detached,
            },
        };
        jobs.push(job);
    }

    let digests: Vec<&[u8]> = jobs.iter().map(Job::to_be_signed).collect();
    let signatures = sign_hashes(&mut csc, &info, &request.auth, ui, &request.credential, &cred, &digests).await?;

    let mut signed = Vec::with_capacity(jobs.len());
    for (job, signature) in jobs.into_iter().zip(signatures) {
        let out = match job {
            Job::Jades { path, out, prepared } => {
                let jws = match level {
                    Level::BB => prepared.finish(&signature)?,
                    _ => {
                        let (h, imprint) = prepared.timestamp_imprint(&signature)?;
                        let token = csc.stamp(h, &imprint).await?;
                        let validation = match level {
                            Level::BLT | Level::BLTA => {
                                Some(fetch::gather_validation(csc.http(), csc.service(), &certificates_with(&cred, &token)).await?)
                            }
                            _ => None,
                        };
                        let jws = prepared.finish_json(&signature, Some(&token), validation.as_ref())?;
                        if level == Level::BLTA { jades_archive(&csc, ui, &path, &jws, hash).await? } else { jws }
                    }
                };
                write_new(&out, jws.as_bytes())?;
                out
            }
            Job::Xades { path, out, prepared, detached } => {
                let token = match level {
                    Level::BB => None,
                    _ => {
                        let (h, imprint) = prepared.timestamp_imprint(&signature)?;
                        Some(csc.stamp(h, &imprint).await?)
                    }
                };
                let validation = match level {
                    Level::BLT | Level::BLTA => Some(embedded_validation(&csc, &cred, token.as_deref()).await?),
                    _ => None,
                };
                let mut xml = prepared.finish(&signature, token.as_deref(), validation.as_ref())?;
                if level == Level::BLTA {
                    // EN 319 132-1 §5.5.2: xadesv141:ArchiveTimeStamp over the B-LT signature (and
                    // a detached file's bytes, read again as they stream).
                    let mut file =
                        if detached { Some(File::open(&path).map_err(io(format!("cannot open {}", path.display())))?) } else { None };
                    let archive = cloudsign_ades::xades::archive_imprint(&xml, file.as_mut().map(|f| f as &mut dyn std::io::Read), hash)?;
                    let token = csc.stamp(archive.hash(), archive.imprint()).await?;
                    xml = archive.finish(&token)?;
                }
                write_new(&out, &xml)?;
                out
            }
            Job::Cades { path, out, prepared, attached, content_digest } => {
                let token = match level {
                    Level::BB => None,
                    _ => {
                        let (h, imprint) = prepared.timestamp_imprint(&signature);
                        Some(csc.stamp(h, &imprint).await?)
                    }
                };
                let validation = match level {
                    Level::BLT | Level::BLTA => Some(embedded_validation(&csc, &cred, token.as_deref()).await?),
                    _ => None,
                };
                let content =
                    if attached { Some(std::fs::read(&path).map_err(io(format!("cannot read {}", path.display())))?) } else { None };
                let mut cms = prepared.finish(&signature, token.as_deref(), content.as_deref(), validation.as_ref());
                if level == Level::BLTA {
                    // EN 319 122-1 §5.5.3: archive-time-stamp-v3 over the B-LT signature.
                    let archive = cloudsign_ades::cades::archive_imprint(&cms, Some(&content_digest), hash)?;
                    let token = csc.stamp(archive.hash(), archive.imprint()).await?;
                    cms = archive.finish(&token)?;
                }
                write_new(&out, &cms)?;
                out
            }
            Job::Pades(job) => finish_pdf(*job, &csc, &cred, level, &signature, token_allowance).await?,
        };
        let file = SignedFile { path: out, format, level };
        ui.signed(&file);
        signed.push(file);
    }
    Ok(signed)
}

/// Read `path` in chunks into `ctx`, copying to `copy` when given.
fn stream_file(ui: &mut dyn Interaction, path: &Path, ctx: &mut digest::Context, mut copy: Option<&mut File>) -> Result<(), SignError> {
    let mut f = File::open(path).map_err(io(format!("cannot open {}", path.display())))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let label = format!("hashing {}", path.display());
    let mut done = 0u64;
    let mut buf = vec![0u8; 1 << 17];
    loop {
        let n = f.read(&mut buf).map_err(io(format!("cannot read {}", path.display())))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        if let Some(out) = copy.as_deref_mut() {
            out.write_all(&buf[..n]).map_err(io("cannot write the signed file".into()))?;
        }
        done += n as u64;
        ui.progress(&Progress { label: &label, done, total, finished: false });
    }
    ui.progress(&Progress { label: &label, done, total, finished: true });
    Ok(())
}

/// What the credential signs with.
struct Credential {
    certificate: Vec<u8>,
    chain: Vec<Vec<u8>>,
    scheme: SignAlgorithm,
    key_bits: u32,
    needs_otp: bool,
    needs_pin: bool,
    /// `authMode` `oauth2code`: the SAD comes from a credential-scope OAuth authorization.
    oauth: bool,
}

impl Credential {
    fn params(&self, signing_time: i64) -> Params<'_> {
        Params { scheme: self.scheme, certificate: &self.certificate, chain: &self.chain, signing_time }
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

/// Next to the file: NAME-signed.pdf (and .xml for enveloped XAdES), FILE.p7s, FILE.jws,
/// FILE.jws.json, FILE.xades.xml.
pub fn default_out(path: &Path, format: Format, packaging: Packaging, level: Level) -> PathBuf {
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

/// Write `out` whole or not at all: a temporary file next to it, renamed when complete.
fn write_new(out: &Path, bytes: &[u8]) -> Result<(), SignError> {
    let mut tmp = Partial { path: partial_path(out), done: false };
    std::fs::write(&tmp.path, bytes).map_err(io(format!("cannot write {}", tmp.path.display())))?;
    std::fs::rename(&tmp.path, out).map_err(io(format!("cannot write {}", out.display())))?;
    tmp.done = true;
    Ok(())
}

/// `.NAME.partial` next to `out`.
fn partial_path(out: &Path) -> PathBuf {
    out.with_file_name(format!(".{}.partial", out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()))
}

/// `credentials/info`: the certificate chain, the algorithm, what authorization needs.
async fn credential(csc: &Client, id: &str, format: Format) -> Result<Credential, SignError> {
    let info = csc.credential_info(id, Certificates::Chain, false, true).await?;
    let certs = info.certificates()?;
    let (certificate, chain) = certs.split_first().ok_or_else(|| SignError::Service("the service sent no certificate".into()))?;
    let algos = &info.key().algo;
    let key_bits = info.key().len;
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
        .ok_or_else(|| {
            SignError::Service(format!("the credential offers no signature algorithm this client can use for this format ({algos:?})"))
        })?;
    Ok(Credential {
        chain: chain.iter().filter(|c| *c != certificate).cloned().collect(),
        certificate: certificate.clone(),
        scheme,
        key_bits,
        needs_otp: info.needs_otp(),
        needs_pin: info.needs_pin(),
        oauth: info.auth_mode() == "oauth2code",
    })
}

/// One authorization for all digests, then one `signatures/signHash`. The SAD comes from
/// `credentials/authorize` (explicit: PIN and OTP; implicit: nothing asked), or, for a
/// credential whose `authMode` is `oauth2code`, from a credential-scope OAuth authorization
/// whose consent page shows the digests (CSC v2 §8.3.2): its token is the SAD — sent as the
/// bearer token of `signHash` (v2 §11.10), and as `SAD` too in v1.
async fn sign_hashes(
    csc: &mut Client,
    info: &ServiceInfo,
    given: &AuthOptions,
    ui: &mut dyn Interaction,
    id: &str,
    cred: &Credential,
    digests: &[&[u8]],
) -> Result<Vec<Vec<u8>>, SignError> {
    if cred.oauth {
        let Some(oauth) = &given.oauth else {
            return Err(SignError::Usage(format!(
                "credential {id} is authorized through OAuth 2.0 (authMode oauth2code): give --client-id of a client registered at the service"
            )));
        };
        let endpoints = auth::endpoints(csc.http(), info).await?;
        let scope = CredentialScope { credential_id: id, hashes: digests, hash_algorithm: cred.scheme.hash(), description: None };
        for (i, d) in digests.iter().enumerate() {
            ui.note(&format!("document {} to sign, {} digest: {}", i + 1, cred.scheme.hash().name(), cloudsign_csc::b64::encode(d)));
        }
        let token = auth::authorization_code(csc.http(), &endpoints, oauth, Some(&scope), &mut |url, redirect| {
            ui.authorize_in_browser(url, redirect)
        })
        .await?;
        let sad = Zeroizing::new(token.access_token.clone());
        let service_token = csc.access_token().map(String::from).map(Zeroizing::new);
        csc.set_access_token(Some(sad.to_string()));
        let v1_sad = (csc.api() == Api::V1).then_some(sad.as_str());
        let sign = SignHash { credential_id: id, sad: v1_sad, hashes: digests, scheme: cred.scheme, sign_algo_params: None };
        let signed = csc.sign_hash(&sign).await;
        csc.set_access_token(service_token.map(|t| t.to_string()));
        return Ok(signed?);
    }
    let pin = if cred.needs_pin { Some(ui.secret(Secret::Pin)?) } else { None };
    let otp = if cred.needs_otp { Some(ui.secret(Secret::Otp)?) } else { None };
    let authorize = Authorize {
        credential_id: id,
        num_signatures: digests.len() as u64,
        hashes: digests,
        hash_algorithm: Some(cred.scheme.hash()),
        pin: pin.as_deref().map(String::as_str),
        otp: otp.as_deref().map(String::as_str),
        description: None,
    };
    let sad = Zeroizing::new(csc.authorize(&authorize).await?.sad);
    drop((pin, otp));
    let sign = SignHash { credential_id: id, sad: Some(sad.as_str()), hashes: digests, scheme: cred.scheme, sign_algo_params: None };
    Ok(csc.sign_hash(&sign).await?)
}

/// The client for the service, and its `info`: in the version asked, or v2 if the service
/// answers `info` there and v1 otherwise (certomancer-csc-dummy speaks v1 only).
pub async fn connect(http: &reqwest::Client, service: &str, api: Option<Api>) -> Result<(Client, ServiceInfo), SignError> {
    let tries: &[Api] = match api {
        Some(Api::V1) => &[Api::V1],
        Some(Api::V2) => &[Api::V2],
        None => &[Api::V2, Api::V1],
    };
    let mut first_error = None;
    for &api in tries {
        let client = Client::with_http(http.clone(), service, api)?;
        match client.service_info().await {
            Ok(info) => return Ok((client, info)),
            Err(e) if e.is_not_implemented() || e.status().is_some_and(|s| s.as_u16() == 405) => {
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(first_error.map(SignError::from).unwrap_or_else(|| SignError::Service("the service answered no info".into())))
}

/// Get the service token the way [`auth::plan`] chose.
pub async fn authenticate(csc: &mut Client, info: &ServiceInfo, given: &AuthOptions, ui: &mut dyn Interaction) -> Result<(), SignError> {
    let plan = auth::plan(info, given).map_err(SignError::Usage)?;
    match plan {
        Plan::Token => csc.set_access_token(given.token.as_deref().cloned()),
        Plan::Login(user) => {
            ui.note(&format!("logging in as {user} (auth/login)"));
            let password = ui.secret(Secret::Password)?;
            csc.login(&user, &password, false).await?;
        }
        Plan::AuthorizationCode | Plan::ClientCredentials => {
            let Some(oauth) = &given.oauth else { return Err(SignError::Usage("no OAuth client given".into())) };
            let endpoints = auth::endpoints(csc.http(), info).await?;
            let token = if plan == Plan::ClientCredentials {
                ui.note(&format!("OAuth 2.0 client credentials of {} at {}", oauth.client_id, endpoints.token));
                let client = crate::oauth::OAuthClient::with_token_url(
                    csc.http().clone(),
                    &endpoints.token,
                    &oauth.client_id,
                    oauth.client_secret.as_deref().map(String::as_str),
                );
                client.client_credentials(Some("service")).await?
            } else {
                auth::authorization_code(csc.http(), &endpoints, oauth, None, &mut |url, redirect| ui.authorize_in_browser(url, redirect))
                    .await?
            };
            csc.set_access_token(Some(token.access_token.clone()));
        }
        Plan::Anonymous => ui.note(&format!("no authentication: the service's authType is {:?}", info.auth_type)),
    }
    Ok(())
}

/// XAdES: an XML document enveloped (read whole: the signature goes inside it), any file
/// enveloping (base64 in a ds:Object), or detached (hashed as it streams, referenced by name).
fn prepare_xml(
    ui: &mut dyn Interaction,
    path: &Path,
    packaging: Packaging,
    params: &Params<'_>,
) -> Result<cloudsign_ades::xades::Prepared, SignError> {
    use cloudsign_ades::xades::{Input, file_name_uri, prepare};
    let read = || std::fs::read(path).map_err(io(format!("cannot read {}", path.display())));
    let prepared = match packaging {
        Packaging::Enveloped => prepare(Input::Enveloped(&read()?), params),
        Packaging::Enveloping => prepare(Input::Enveloping { data: &read()?, mime_type: None }, params),
        _ => {
            let mut ctx = digest::Context::new(cloudsign_ades::aws_lc_algorithm(params.scheme.hash()));
            stream_file(ui, path, &mut ctx, None)?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            prepare(Input::Detached { digest: ctx.finish().as_ref(), uri: &file_name_uri(&name), mime_type: None }, params)
        }
    };
    prepared.map_err(cannot_sign(path))
}

/// How a PAdES signature sits in the document: certification or not, reason, visible box.
struct Placement {
    certify: Option<u8>,
    field: pades::Field,
}

/// Reserve the signature's place in the PDF, copy the original to a temporary file next to the
/// output while hashing it, and build the signed attributes over the byte range.
fn prepare_pdf(
    ui: &mut dyn Interaction,
    path: &Path,
    out: PathBuf,
    cred: &Credential,
    params: &Params<'_>,
    token_allowance: usize,
    placement: &Placement,
) -> Result<PadesJob, SignError> {
    let input = File::open(path).map_err(io(format!("cannot open {}", path.display())))?;
    let mut pdf = Pdf::open(BufReader::new(input)).map_err(cannot_sign(path))?;
    let hash = cred.scheme.hash();
    // The placeholder is sized from the real signature: the CMS with a maximum-size value, and
    // the measured size of a time-stamp token from the same TSA.
    let reserve = format::pades_reserve(params, cred.key_bits, token_allowance)?;
    let kind = match placement.certify {
        Some(permissions) => Kind::Certification { signing_time: params.signing_time, permissions },
        None => Kind::Signature { signing_time: params.signing_time },
    };
    let placeholder = pades::add_signature_field(&mut pdf, kind, reserve, &placement.field).map_err(cannot_sign(path))?;
    let tmp = partial_path(&out);
    let mut file = File::create(&tmp).map_err(io(format!("cannot write {}", tmp.display())))?;
    let tmp = Partial { path: tmp, done: false };
    let mut written = digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
    stream_file(ui, path, &mut written, Some(&mut file))?;
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
    csc: &Client,
    cred: &Credential,
    level: Level,
    signature: &[u8],
    token_allowance: usize,
) -> Result<PathBuf, SignError> {
    let PadesJob { out, mut tmp, file, mut pdf, placeholder, written, prepared } = job;
    let mut output = Output { file, written };
    let token = match level {
        Level::BB => None,
        _ => {
            let (h, imprint) = prepared.timestamp_imprint(signature);
            Some(csc.stamp(h, &imprint).await?)
        }
    };
    let cms = prepared.finish(signature, token.as_deref(), None, None);
    output.append(&placeholder.fill(&cms)?)?;
    if level.long_term() {
        let certs = certificates_with(cred, token.as_deref().unwrap_or_default());
        let v = fetch::gather_validation(csc.http(), csc.service(), &certs).await?;
        output.append(&pades::add_dss(&mut pdf, &v.certificates, &v.ocsp, &v.crls)?)?;
    }
    if level == Level::BLTA {
        // EN 319 142-1 §5.4.3: a document time-stamp over everything so far.
        let placeholder = pades::add_signature(&mut pdf, Kind::DocumentTimestamp, format::document_timestamp_reserve(token_allowance))?;
        let mut ctx = output.written.clone();
        let (before, after) = placeholder.signed_parts();
        ctx.update(before);
        ctx.update(after);
        let token = csc.stamp(cred.scheme.hash(), ctx.finish().as_ref()).await?;
        output.append(&placeholder.fill(&token)?)?;
    }
    output.file.sync_all().map_err(io("cannot write the signed file".into()))?;
    std::fs::rename(&tmp.path, &out).map_err(io(format!("cannot write {}", out.display())))?;
    tmp.done = true;
    Ok(out)
}

/// The signed PDF being written, and the hash of what it holds so far.
struct Output {
    file: File,
    written: digest::Context,
}

impl Output {
    fn append(&mut self, bytes: &[u8]) -> Result<(), SignError> {
        self.file.write_all(bytes).map_err(io("cannot write the signed file".into()))?;
        self.written.update(bytes);
        Ok(())
    }
}

/// JAdES B-LTA: an archive time-stamp (`arcTst`) over the B-LT JWS JSON and its payload — the
/// JWS's own base64url payload when attached, the file's bytes (streamed) when detached.
async fn jades_archive(csc: &Client, ui: &mut dyn Interaction, path: &Path, jws: &str, hash: HashAlgorithm) -> Result<String, SignError> {
    let input = cloudsign_ades::jades::archive_input(jws)?;
    let mut ctx = digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
    match &input.payload {
        Some(payload) => ctx.update(payload.as_bytes()),
        None => stream_file(ui, path, &mut ctx, None)?,
    }
    ctx.update(&input.suffix);
    let token = csc.stamp(hash, ctx.finish().as_ref()).await?;
    Ok(cloudsign_ades::jades::add_archive_timestamp(jws, &token)?)
}

/// B-LT validation data to embed in a CMS or XAdES signature, whose certificates field or
/// KeyInfo already carries the signer's chain: the rest (root, TSA) and the revocation data.
async fn embedded_validation(csc: &Client, cred: &Credential, token: Option<&[u8]>) -> Result<ValidationData, SignError> {
    let certs = certificates_with(cred, token.unwrap_or_default());
    let mut v = fetch::gather_validation(csc.http(), csc.service(), &certs).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(files: &[&str]) -> SignRequest {
        SignRequest {
            files: files.iter().map(PathBuf::from).collect(),
            service: "https://sign.example".into(),
            api: Some(Api::V2),
            auth: AuthOptions { user: Some("u".into()), ..Default::default() },
            tsa: None,
            timestamp_client_data: None,
            credential: "c".into(),
            format: None,
            level: None,
            packaging: None,
            certify: None,
            sigd: false,
            visible: None,
            reason: None,
            out: None,
            asynchronous: false,
        }
    }

    #[test]
    fn defaults_follow_the_files() {
        assert_eq!(resolve(&request(&["a.pdf", "b.PDF"])).unwrap(), (Format::Pades, Level::BT, Packaging::Enveloped));
        assert_eq!(resolve(&request(&["a.pdf", "b.txt"])).unwrap(), (Format::Cades, Level::BT, Packaging::Detached));
        let jades = SignRequest { format: Some(Format::Jades), ..request(&["a.bin"]) };
        assert_eq!(resolve(&jades).unwrap(), (Format::Jades, Level::BB, Packaging::Detached));
        let bad = SignRequest { packaging: Some(Packaging::Detached), ..request(&["a.pdf"]) };
        let reason = SignRequest { reason: Some("ok".into()), ..request(&["a.xml"]) };
        assert!(matches!(resolve(&reason), Err(SignError::Usage(m)) if m.contains("--visible and --reason are for PAdES")));
        assert!(resolve(&bad).unwrap_err().to_string().contains("inside the PDF"));
    }

    #[test]
    fn outputs_go_next_to_the_file() {
        let p = Path::new("/d/contract.pdf");
        assert_eq!(default_out(p, Format::Pades, Packaging::Enveloped, Level::BT), PathBuf::from("/d/contract-signed.pdf"));
        assert_eq!(default_out(p, Format::Cades, Packaging::Detached, Level::BT), PathBuf::from("/d/contract.pdf.p7s"));
        assert_eq!(default_out(p, Format::Jades, Packaging::Detached, Level::BT), PathBuf::from("/d/contract.pdf.jws.json"));
        assert_eq!(partial_path(Path::new("/d/x.p7s")), PathBuf::from("/d/.x.p7s.partial"));
    }

    #[test]
    fn only_https_or_loopback() {
        assert!(check_service_url("https://sign.example").is_ok());
        assert!(check_service_url("http://127.0.0.1:8080").is_ok());
        assert!(check_service_url("http://sign.example").unwrap_err().to_string().contains("https://"));
    }
}
