//! `cloudsign device`: the bridge agent (issue 18, scenario [2], `docs/device-protocol.md`
//! "Devices"): a PKCS#11 token on the signer's computer, driven by the service.
//!
//! The agent connects out to the service (long-polling, "Transport"), shows every request on
//! the terminal, asks the signer to confirm and for the card PIN each time (never cached, never
//! from arguments or the environment), and signs the digests on the card. It never signs without
//! the signer: no "y", no PIN, no signature.
//!
//! Files, in the agent's directory (mode 0700; `--dir`, default
//! `$XDG_CONFIG_HOME/cloudsign-device` or `~/.config/cloudsign-device`), each mode 0600:
//!
//! * `device-key.p8`: the device key, ECDSA P-256, PKCS#8 DER ("Keys": signs protocol messages
//!   without asking the signer; never documents);
//! * `device.json`: the pairing (service, `aud`, device and credential ids, certificates, the
//!   card's module, token and key) and the last counter used (public data only);
//! * `ca.pem`: the private CA given with `--ca-file` at pairing, if any (the only TLS trust).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use clap::{Args, Subcommand};
use cloudsign_asn1::der::{explicit, oid, seq, set_of, tlv, uint};
use cloudsign_asn1::{HashAlgorithm, SignAlgorithm};
use cloudsign_device::b64::{self, B64};
use cloudsign_device::check::{ToSign, check_approval_request, check_sign_request, display_text};
use cloudsign_device::freshness::next_counter;
use cloudsign_device::jws;
use cloudsign_device::key::PublicKey;
use cloudsign_device::message::*;
use cloudsign_device::pairing::{ID_CHALLENGE_PASSWORD, PairingCode};
use cloudsign_device::{MAX_LABEL_CHARS, MAX_NAME_CHARS, MAX_TEXT_CHARS, RefusalCode};
// The service's PKCS#11 backend and the agent drive a token the same way.
use cloudsign_client::fetch::chain;
use cloudsign_keys::pkcs11::{ec_spki, mechanism_for, rsa_spki, unwrap_octet_string};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// What the agent says it is in its `hello` (for the service's audit log).
const AGENT: &str = concat!("cloudsign-device/", env!("CARGO_PKG_VERSION"));
/// "Transport": a poll is held up to 25 s; the request may take that plus the network.
const POLL_TIMEOUT: Duration = Duration::from_secs(45);
/// "Reconnection": 1 s, doubling, at most 60 s.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Wrong PINs the agent lets the signer retry per request (the card counts them too).
const PIN_TRIES: u32 = 3;

#[derive(Args)]
pub struct DeviceArgs {
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Pair a card's key with a service, with the one-time pairing code (`cloudsign admin
    /// device pair USER`). The code is read from a hidden prompt, the first line of stdin
    /// (when stdin is not a terminal, or with --code-stdin), --code-file, or
    /// CLOUDSIGN_PAIRING_CODE; then "y" to confirm the user and service shown, then the card PIN
    /// (hidden prompt, or the next line of stdin) to sign the certificate request on the card.
    Pair(PairArgs),
    /// Stay connected to the service and sign what the signer approves: every request is
    /// shown, then "Sign? [y/N]" and the card PIN are asked (from the terminal, or as lines of
    /// stdin when it is not one). An answer other than y, an empty PIN or the end of stdin
    /// declines the request.
    Run(RunArgs),
    /// Show the pairing stored in the agent's directory.
    Status(StatusArgs),
}

#[derive(Args)]
struct PairArgs {
    /// The service's base URL (https://sign.example.com; http only for a loopback address).
    #[arg(long)]
    service: String,
    /// Read the pairing code from this file (first line).
    #[arg(long, value_name = "PATH", conflicts_with = "code_stdin")]
    code_file: Option<PathBuf>,
    /// Read the pairing code from the first line of stdin, even when it is a terminal.
    #[arg(long)]
    code_stdin: bool,
    /// The PKCS#11 module (OpenSC: /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so).
    #[arg(long, value_name = "PATH")]
    module: PathBuf,
    /// The token, by label.
    #[arg(long, value_name = "LABEL", conflicts_with = "slot", required_unless_present = "slot")]
    token: Option<String>,
    /// The token, by slot id.
    #[arg(long, value_name = "ID")]
    slot: Option<u64>,
    /// The label (CKA_LABEL) of the card's private key that will sign.
    #[arg(long, value_name = "LABEL")]
    key_label: String,
    /// A name for this device, shown in the signer's and the administrator's lists.
    #[arg(long, default_value = "cloudsign device agent")]
    name: String,
    /// The agent's directory (default $XDG_CONFIG_HOME/cloudsign-device, or
    /// ~/.config/cloudsign-device).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Trust only this CA (PEM) for the service's TLS certificate (a private CA); copied into
    /// the agent's directory.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// The agent's directory (as for `pair`).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Handle one request (sign or decline), then exit: 0 when the service accepted the answer.
    #[arg(long)]
    once: bool,
}

#[derive(Args)]
struct StatusArgs {
    /// The agent's directory (as for `pair`).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub async fn run(args: DeviceArgs) -> anyhow::Result<()> {
    match args.command {
        DeviceCommand::Pair(a) => pair(a).await,
        DeviceCommand::Run(a) => Agent::load(&agent_dir(a.dir)?)?.run(a.once).await,
        DeviceCommand::Status(a) => {
            let dir = agent_dir(a.dir)?;
            let saved = Saved::load(&dir)?;
            println!("service:     {}", saved.service);
            println!("aud:         {}", saved.aud);
            println!("user:        {}", saved.user);
            println!("device:      {} ({})", saved.device_id, saved.name);
            println!("credential:  {}", saved.credential_id);
            println!("module:      {}", saved.card.module.display());
            match (&saved.card.token, saved.card.slot) {
                (Some(t), _) => println!("token:       {t}"),
                (None, Some(s)) => println!("slot:        {s}"),
                _ => {}
            }
            println!("key:         {} (id {})", saved.card.key_label, saved.card.key_id);
            println!("counter:     {}", saved.counter);
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

fn agent_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d);
    }
    let nonempty = |v: &std::ffi::OsString| !v.is_empty();
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(nonempty) {
        return Ok(PathBuf::from(x).join("cloudsign-device"));
    }
    let home = std::env::var_os("HOME").filter(nonempty).ok_or_else(|| anyhow!("no --dir, and neither XDG_CONFIG_HOME nor HOME is set"))?;
    Ok(PathBuf::from(home).join(".config").join("cloudsign-device"))
}

const CONFIG_FILE: &str = "device.json";
const KEY_FILE: &str = "device-key.p8";
const CA_FILE: &str = "ca.pem";

/// Which key on which token ("Devices": any PKCS#11 module).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CardRef {
    module: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slot: Option<u64>,
    key_label: String,
    /// CKA_ID of the private key, hex.
    key_id: String,
}

/// `device.json`: the pairing and the last counter used.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Saved {
    version: u32,
    service: String,
    aud: String,
    user: String,
    name: String,
    device_id: Id,
    credential_id: Id,
    /// DER, end entity first.
    certificates: Vec<B64>,
    /// The card key's SubjectPublicKeyInfo (DER).
    signing_key: B64,
    card: CardRef,
    /// The last counter this agent signed a message with ("Authenticating device messages",
    /// layer 1); saved before the message is sent, so that a crash never reuses one.
    counter: u64,
    /// Whether `ca.pem` is the only TLS trust anchor.
    private_ca: bool,
}

impl Saved {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read(&path).with_context(|| format!("cannot read {} (pair first: cloudsign device pair)", path.display()))?;
        let saved: Saved = serde_json::from_slice(&text).with_context(|| format!("{} is not a pairing of this agent", path.display()))?;
        ensure!(saved.version == 1, "{}: unknown version {}", path.display(), saved.version);
        Ok(saved)
    }

    /// Written to a temporary file and renamed over the old one: the file is whole or old.
    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = dir.join(format!("{CONFIG_FILE}.tmp"));
        let mut f = private_file(&tmp, false)?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(CONFIG_FILE)).with_context(|| format!("cannot write {}", dir.display()))?;
        Ok(())
    }
}

/// A file only the owner may read (mode 0600, "Keys": the agent's software device key).
fn private_file(path: &Path, new: bool) -> anyhow::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path).with_context(|| format!("cannot create {}", path.display()))
}

/// The agent's directory, mode 0700 (made if missing, tightened if looser).
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        b.mode(0o700);
        b.create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    b.create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(())
}

fn load_device_key(dir: &Path) -> anyhow::Result<EcdsaKeyPair> {
    let path = dir.join(KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?.permissions().mode();
        // As ssh does for its keys: a device key others can read is a device key others have.
        ensure!(mode & 0o077 == 0, "{} is readable by other users (mode {:o}): chmod 600 it, or pair again", path.display(), mode & 0o777);
    }
    let der = Zeroizing::new(std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?);
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).map_err(|_| anyhow!("{} is not a P-256 PKCS#8 key", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The signer's input
// ---------------------------------------------------------------------------------------------

/// Whether the signer types on a terminal. When stdin is a pipe (scripts, tests), the
/// confirmation and the PIN are its next lines, and the prompts go to stderr.
fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// One visible line of stdin after a prompt on stderr; `None` at the end of stdin.
fn read_line(prompt: &str) -> Option<Zeroizing<String>> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = Zeroizing::new(String::new());
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => {
            if !interactive() {
                eprintln!();
            }
            None
        }
        Ok(_) => Some(Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())),
    }
}

/// A secret: a hidden prompt on the terminal, else the next line of stdin.
fn read_secret(prompt: &str) -> Option<Zeroizing<String>> {
    if interactive() { rpassword::prompt_password(prompt).ok().map(Zeroizing::new) } else { read_line(prompt) }
}

fn confirmed(prompt: &str) -> bool {
    read_line(prompt).is_some_and(|a| matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/// The service's base URL: https, or http to a loopback address only ("Transport": everything
/// runs over TLS to the service's public address; a local test service is the exception).
fn service_url(text: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(text).map_err(|e| anyhow!("--service {text:?} is not a URL: {e}"))?;
    ensure!(url.username().is_empty() && url.password().is_none(), "--service: no user or password in the URL");
    ensure!(url.query().is_none() && url.fragment().is_none(), "--service: no query or fragment in the URL");
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => bail!("--service: http is only for a loopback address (127.0.0.1, ::1, localhost); use https"),
        s => bail!("--service: {s} is not https"),
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn http_client(ca_pem: Option<&[u8]>) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(POLL_TIMEOUT)
        .user_agent(AGENT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| anyhow!("the CA file is not PEM certificates: {e}"))?;
        ensure!(!certs.is_empty(), "the CA file holds no certificate");
        // A private CA is the only trust: the agent talks to one service.
        b = b.tls_certs_only(certs);
    }
    b.build().map_err(|e| anyhow!("cannot set up HTTPS: {e}"))
}

/// Why an exchange with the service failed.
#[derive(Debug)]
enum Failure {
    /// Network, timeout, or a server or proxy error: try again later.
    Network(String),
    /// The service refused the message ("Checks and refusals").
    Refused(ErrorMessage),
    /// Not an answer of this protocol.
    Protocol(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Network(m) => write!(f, "{m}"),
            Self::Refused(e) => {
                write!(f, "the service refused: {} ({})", e.error.as_str(), display_text(&e.error_description, MAX_TEXT_CHARS))
            }
            Self::Protocol(m) => write!(f, "unexpected answer from the service: {m}"),
        }
    }
}

#[derive(Clone)]
struct Link {
    http: reqwest::Client,
    base: String,
}

impl Link {
    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), Failure> {
        let resp = req.send().await.map_err(|e| Failure::Network(format!("cannot reach {}: {}", self.base, chain(&e))))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| Failure::Network(format!("the connection broke: {}", chain(&e))))?;
        ensure_small(&body)?;
        Ok((status, body.to_vec()))
    }

    /// One service message (or a refusal) from a response.
    fn message(status: u16, body: &[u8]) -> Result<ServiceMessage, Failure> {
        match serde_json::from_slice::<ServiceMessage>(body) {
            Ok(ServiceMessage::Error(e)) => Err(Failure::Refused(e)),
            Ok(m) => Ok(m),
            Err(_) if status >= 500 || status == 404 || status == 429 => {
                Err(Failure::Network(format!("the service answered HTTP {status}")))
            }
            Err(e) => Err(Failure::Protocol(format!("HTTP {status}: {e}"))),
        }
    }

    fn post_jose(&self, path: &str, jws: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base)).header(reqwest::header::CONTENT_TYPE, "application/jose").body(jws.to_string())
    }

    async fn pair_start(&self, code: &PairingCode) -> Result<PairChallenge, Failure> {
        let start = PairStart { v: V1, pairing_code: code.display().to_string() };
        let (status, body) = self.exchange(self.http.post(format!("{}/device/v1/pair/start", self.base)).json(&start)).await?;
        match Self::message(status, &body)? {
            ServiceMessage::PairChallenge(c) => Ok(c),
            _ => Err(Failure::Protocol("pair/start did not answer with a pairChallenge".into())),
        }
    }

    async fn pair_finish(&self, jws: &str) -> Result<Paired, Failure> {
        let (status, body) = self.exchange(self.post_jose("/device/v1/pair/finish", jws)).await?;
        match Self::message(status, &body)? {
            ServiceMessage::Paired(p) => Ok(p),
            _ => Err(Failure::Protocol("pair/finish did not answer with paired".into())),
        }
    }

    async fn challenge(&self) -> Result<Challenge, Failure> {
        let (status, body) = self.exchange(self.http.get(format!("{}/device/v1/challenge", self.base))).await?;
        match Self::message(status, &body)? {
            ServiceMessage::Challenge(c) => Ok(c),
            _ => Err(Failure::Protocol("challenge did not answer with a challenge".into())),
        }
    }

    /// One long poll ("Transport"): the messages, in order. Elements that are not messages of
    /// this version are dropped ("The device, for a service message").
    async fn poll(&self, jws: &str) -> Result<Vec<ServiceMessage>, Failure> {
        let (status, body) = self.exchange(self.post_jose("/device/v1/poll", jws)).await?;
        match serde_json::from_slice::<Vec<serde_json::Value>>(&body) {
            Ok(list) if (200..300).contains(&status) => Ok(list
                .into_iter()
                .filter_map(|v| match serde_json::from_value::<ServiceMessage>(v) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        eprintln!("warning: ignored a message from the service: {e}");
                        None
                    }
                })
                .collect()),
            _ => {
                let m = Self::message(status, &body)?;
                Err(Failure::Protocol(format!("poll answered HTTP {status} with a single {}", message_type(&m))))
            }
        }
    }

    async fn answer(&self, jws: &str) -> Result<Ack, Failure> {
        let (status, body) = self.exchange(self.post_jose("/device/v1/answer", jws)).await?;
        match Self::message(status, &body)? {
            ServiceMessage::Ack(a) => Ok(a),
            m => Err(Failure::Protocol(format!("answer was answered with {}", message_type(&m)))),
        }
    }
}

fn ensure_small(body: &[u8]) -> Result<(), Failure> {
    if body.len() > 8 * cloudsign_device::MAX_MESSAGE_BYTES {
        return Err(Failure::Protocol("the answer is too large".into()));
    }
    Ok(())
}

fn message_type(m: &ServiceMessage) -> &'static str {
    match m {
        ServiceMessage::Challenge(_) => "challenge",
        ServiceMessage::Ready(_) => "ready",
        ServiceMessage::SignRequest(_) => "signRequest",
        ServiceMessage::ApprovalRequest(_) => "approvalRequest",
        ServiceMessage::Cancel(_) => "cancel",
        ServiceMessage::Ack(_) => "ack",
        ServiceMessage::Error(_) => "error",
        ServiceMessage::PairChallenge(_) => "pairChallenge",
        ServiceMessage::Paired(_) => "paired",
    }
}

// ---------------------------------------------------------------------------------------------
// The card (PKCS#11)
// ---------------------------------------------------------------------------------------------

/// A logged-in session on the card, logged out and closed when dropped (the PIN is used once
/// per request, never kept: "Devices", the bridge agent).
struct Card {
    // Declared before the context: fields drop in order, the session before the module.
    session: Session,
    key: ObjectHandle,
    always_authenticate: bool,
    _ctx: Pkcs11,
}

/// Why the card did not sign.
#[derive(Debug)]
enum CardError {
    /// The PIN was refused; the signer may try again.
    WrongPin,
    /// Anything else (PIN locked, card gone, no such key).
    Other(String),
}

impl std::fmt::Display for CardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WrongPin => f.write_str("the card refused the PIN"),
            Self::Other(m) => f.write_str(m),
        }
    }
}

fn p11(what: &str) -> impl Fn(P11Error) -> CardError + '_ {
    move |e| CardError::Other(format!("{what}: {e}"))
}

impl Card {
    /// Open the token of `card` and log in with `pin`. The private key is found by its label
    /// (pairing), and with `by_id` by its stored CKA_ID too. Returns the key's CKA_ID.
    fn open(card: &CardRef, pin: &str, by_id: bool) -> Result<(Card, Vec<u8>), CardError> {
        let module = card.module.display();
        let ctx = Pkcs11::new(&card.module).map_err(|e| CardError::Other(format!("cannot load the PKCS#11 module {module}: {e}")))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(CardError::Other(format!("the PKCS#11 module {module} failed to initialize: {e}"))),
        }
        let slot = match (&card.token, card.slot) {
            (_, Some(id)) => Slot::try_from(id).map_err(|e| CardError::Other(format!("slot {id}: {e}")))?,
            (Some(label), None) => {
                let mut found = None;
                for slot in ctx.get_slots_with_token().map_err(p11("cannot list the PKCS#11 slots"))? {
                    if ctx.get_token_info(slot).is_ok_and(|i| i.label() == label.as_str()) {
                        found = Some(slot);
                        break;
                    }
                }
                found.ok_or_else(|| CardError::Other(format!("no token labelled {label:?} in {module} (is the card in the reader?)")))?
            }
            (None, None) => return Err(CardError::Other("neither a token label nor a slot".into())),
        };
        let session = ctx.open_ro_session(slot).map_err(p11("cannot open a PKCS#11 session"))?;
        let auth = AuthPin::new(pin.into());
        // PKCS#11 login state is per token and application (v2.40 §5.6): if this process is
        // still logged in, C_Login does not check the PIN. The signer's PIN must be checked by
        // the card for every request ("Devices": never cached), so log out and in again.
        let login = match session.login(UserType::User, Some(&auth)) {
            Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                session.logout().map_err(p11("PKCS#11 logout"))?;
                session.login(UserType::User, Some(&auth))
            }
            other => other,
        };
        match login {
            Ok(()) => {}
            Err(P11Error::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => return Err(CardError::WrongPin),
            Err(P11Error::Pkcs11(RvError::PinLocked, _)) => return Err(CardError::Other("the card's PIN is locked".into())),
            Err(e) => return Err(CardError::Other(format!("PKCS#11 login failed: {e}"))),
        }
        let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(card.key_label.as_bytes().to_vec())];
        if by_id {
            template.push(Attribute::Id(hex::decode(&card.key_id).map_err(|_| CardError::Other("the stored key id is not hex".into()))?));
        }
        let found = session.find_objects(&template).map_err(p11("cannot search the token"))?;
        let key = match found[..] {
            [k] => k,
            [] => return Err(CardError::Other(format!("no private key labelled {:?} on the token", card.key_label))),
            _ => return Err(CardError::Other(format!("several private keys labelled {:?}: give the key a unique label", card.key_label))),
        };
        let attrs =
            session.get_attributes(key, &[AttributeType::Id, AttributeType::AlwaysAuthenticate]).map_err(p11("cannot read the key"))?;
        let id = attrs.iter().find_map(|a| if let Attribute::Id(i) = a { Some(i.clone()) } else { None }).unwrap_or_default();
        let always_authenticate = attrs.iter().any(|a| matches!(a, Attribute::AlwaysAuthenticate(true)));
        Ok((Card { _ctx: ctx, session, key, always_authenticate }, id))
    }

    /// The key's SubjectPublicKeyInfo: from its public key object, or its certificate.
    fn public_key(&self, id: &[u8]) -> Result<PublicKey, CardError> {
        let s = &self.session;
        let find = |class| s.find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())]).map_err(p11("cannot search the token"));
        if let Some(&h) = find(ObjectClass::PUBLIC_KEY)?.first() {
            let attrs = s
                .get_attributes(
                    h,
                    &[
                        AttributeType::KeyType,
                        AttributeType::EcParams,
                        AttributeType::EcPoint,
                        AttributeType::Modulus,
                        AttributeType::PublicExponent,
                    ],
                )
                .map_err(p11("cannot read the public key"))?;
            let get = |t: AttributeType| {
                attrs.iter().find_map(|a| match (a, t) {
                    (Attribute::EcParams(v), AttributeType::EcParams)
                    | (Attribute::EcPoint(v), AttributeType::EcPoint)
                    | (Attribute::Modulus(v), AttributeType::Modulus)
                    | (Attribute::PublicExponent(v), AttributeType::PublicExponent) => Some(v.clone()),
                    _ => None,
                })
            };
            let ec = attrs.iter().any(|a| matches!(a, Attribute::KeyType(k) if *k == KeyType::EC));
            let spki = if ec {
                let (params, point) = get(AttributeType::EcParams)
                    .zip(get(AttributeType::EcPoint))
                    .ok_or_else(|| CardError::Other("the EC public key has no point".into()))?;
                ec_spki(&params, &unwrap_octet_string(&point))
            } else {
                let (n, e) = get(AttributeType::Modulus)
                    .zip(get(AttributeType::PublicExponent))
                    .ok_or_else(|| CardError::Other("the public key is neither EC nor RSA".into()))?;
                rsa_spki(&seq(&[&uint(&n), &uint(&e)]))
            };
            return PublicKey::from_spki(&spki).map_err(|e| CardError::Other(format!("the card's public key: {e}")));
        }
        if let Some(&h) = find(ObjectClass::CERTIFICATE)?.first() {
            let attrs = s.get_attributes(h, &[AttributeType::Value]).map_err(p11("cannot read the certificate"))?;
            if let Some(Attribute::Value(der)) = attrs.first() {
                return PublicKey::from_certificate(der).map_err(|e| CardError::Other(format!("the card's certificate: {e}")));
            }
        }
        Err(CardError::Other("the token has no public key or certificate with the private key's id".into()))
    }

    /// Sign one digest: raw signature (ECDSA r‖s, RSA octets), as the protocol carries it
    /// ("Signing", `signature`).
    fn sign_digest(&self, scheme: SignAlgorithm, digest: &[u8], pin: &str) -> Result<Vec<u8>, CardError> {
        let (mechanism, input) = mechanism_for(scheme, digest);
        if self.always_authenticate {
            // PKCS#11 v2.40 §4.9 CKA_ALWAYS_AUTHENTICATE: a context-specific login after
            // C_SignInit, for each signature. cryptoki's one-call sign cannot interleave it;
            // such keys need the multi-part form, which CKM_ECDSA rarely allows.
            self.session.sign_init(&mechanism, self.key).map_err(p11("C_SignInit"))?;
            self.session.login(UserType::ContextSpecific, Some(&AuthPin::new(pin.into()))).map_err(|e| match e {
                P11Error::Pkcs11(RvError::PinIncorrect, _) => CardError::WrongPin,
                e => CardError::Other(format!("context-specific login: {e}")),
            })?;
            self.session.sign_update(&input).map_err(p11("C_SignUpdate"))?;
            return self.session.sign_final().map_err(p11("C_SignFinal"));
        }
        self.session.sign(&mechanism, self.key, &input).map_err(p11("the card did not sign"))
    }
}

impl Drop for Card {
    fn drop(&mut self) {
        let _ = self.session.logout();
    }
}

/// The PKCS#10 request for the card key ("Pairing", step 2): subject CN = the device name
/// (ignored by the CA), the challengePassword attribute (RFC 2985 §5.4.1) = the pairing
/// challenge as base64url text in a UTF8String (the alphabet has `_`, which PrintableString
/// lacks), signed with `sign` over the DER CertificationRequestInfo (RFC 2986 §4.1) with the
/// key's default scheme.
fn build_csr(
    key: &PublicKey,
    name: &str,
    challenge: &[u8],
    sign: impl FnOnce(SignAlgorithm, &[u8]) -> Result<Vec<u8>, CardError>,
) -> Result<Vec<u8>, CardError> {
    const CN: &str = "2.5.4.3";
    let subject = seq(&[&set_of(&[&seq(&[&oid(CN), &tlv(0x0C, name.as_bytes())])])]);
    let password = seq(&[&oid(ID_CHALLENGE_PASSWORD), &set_of(&[&tlv(0x0C, b64::encode(challenge).as_bytes())])]);
    let info = seq(&[&uint(&[0]), &subject, key.spki(), &explicit(0, &password)]);
    let scheme = key.default_scheme();
    let alg = aws_lc_rs::digest::digest(digest_alg(scheme.hash()), &info);
    let raw = sign(scheme, alg.as_ref())?;
    let (signature, algorithm) = match scheme {
        SignAlgorithm::Ecdsa(_) => (
            cloudsign_asn1::der::ecdsa_sig_value(&raw)
                .ok_or_else(|| CardError::Other("the card gave a malformed ECDSA signature".into()))?,
            seq(&[&oid(scheme.oid())]),
        ),
        _ => (raw, seq(&[&oid(scheme.oid()), &[0x05, 0x00]])),
    };
    Ok(seq(&[&info, &algorithm, &tlv(0x03, &[&[0u8][..], &signature].concat())]))
}

fn digest_alg(h: HashAlgorithm) -> &'static aws_lc_rs::digest::Algorithm {
    match h {
        HashAlgorithm::Sha256 => &aws_lc_rs::digest::SHA256,
        HashAlgorithm::Sha384 => &aws_lc_rs::digest::SHA384,
        HashAlgorithm::Sha512 => &aws_lc_rs::digest::SHA512,
    }
}

// ---------------------------------------------------------------------------------------------
// pair
// ---------------------------------------------------------------------------------------------

fn read_code(args: &PairArgs) -> anyhow::Result<PairingCode> {
    let text: Zeroizing<String> = if let Some(path) = &args.code_file {
        let all = Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?);
        Zeroizing::new(all.lines().next().unwrap_or_default().to_string())
    } else if let Some(v) = std::env::var("CLOUDSIGN_PAIRING_CODE").ok().filter(|v| !v.is_empty() && !args.code_stdin) {
        Zeroizing::new(v)
    } else if args.code_stdin || !interactive() {
        read_line("Pairing code: ").ok_or_else(|| anyhow!("no pairing code on standard input"))?
    } else {
        read_secret("Pairing code: ").ok_or_else(|| anyhow!("no pairing code"))?
    };
    PairingCode::parse(&text).ok_or_else(|| anyhow!("that is not a pairing code (ten letters and digits, XXXXX-XXXXX)"))
}

async fn pair(args: PairArgs) -> anyhow::Result<()> {
    let dir = agent_dir(args.dir.clone())?;
    ensure!(
        !dir.join(CONFIG_FILE).exists(),
        "{} already holds a pairing (device {}): use another --dir, or remove it to pair again",
        dir.display(),
        Saved::load(&dir).map(|s| s.device_id.to_string()).unwrap_or_else(|_| "?".into())
    );
    ensure!(
        display_text(&args.name, MAX_NAME_CHARS) == args.name && !args.name.is_empty(),
        "--name: 1 to 64 characters, no control characters"
    );
    let base = service_url(&args.service)?;
    let ca_pem = args.ca_file.as_ref().map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))).transpose()?;
    let link = Link { http: http_client(ca_pem.as_deref())?, base: base.clone() };
    let mut card_ref = CardRef {
        module: args.module.clone(),
        token: args.token.clone(),
        slot: args.slot,
        key_label: args.key_label.clone(),
        key_id: String::new(),
    };

    let code = read_code(&args)?;
    let challenge = link.pair_start(&code).await.map_err(|e| anyhow!("pairing refused: {e}"))?;
    drop(code);
    eprintln!(
        "Pair this card's key for user {:?} at {}?",
        display_text(&challenge.user, MAX_NAME_CHARS),
        display_text(&challenge.aud, MAX_LABEL_CHARS)
    );
    if challenge.aud.trim_end_matches('/') != base {
        eprintln!("  note: the service calls itself {} (you gave {base})", display_text(&challenge.aud, MAX_LABEL_CHARS));
    }
    ensure!(confirmed("Pair? [y/N] "), "not paired: not confirmed");
    let pin = read_secret("Card PIN: ").filter(|p| !p.is_empty()).ok_or_else(|| anyhow!("not paired: no card PIN"))?;

    // The card signs the CSR (its PIN once); the device key is a software key made here.
    let name = args.name.clone();
    let challenge_bytes = challenge.challenge.0.clone();
    let card_for_csr = card_ref.clone();
    let (csr, signing_key, key_id) = tokio::task::spawn_blocking(move || -> Result<_, CardError> {
        let (card, id) = Card::open(&card_for_csr, &pin, false)?;
        let key = card.public_key(&id)?;
        let csr = build_csr(&key, &name, &challenge_bytes, |scheme, digest| card.sign_digest(scheme, digest, &pin))?;
        Ok((csr, key, hex::encode(id)))
    })
    .await?
    .map_err(|e| anyhow!("not paired: {e}"))?;
    let rng = SystemRandom::new();
    let pkcs8 = Zeroizing::new(
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow!("cannot make the device key"))?
            .as_ref()
            .to_vec(),
    );
    let device_key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).map_err(|_| anyhow!("cannot make the device key"))?;
    let device_spki = device_key.public_key().as_der().map_err(|_| anyhow!("cannot encode the device key"))?.as_ref().to_vec();

    let message = DeviceMessage::Pair(Pair {
        v: V1,
        aud: challenge.aud.clone(),
        pairing_id: challenge.pairing_id.clone(),
        challenge: challenge.challenge.clone(),
        device_key: B64(device_spki),
        name: args.name.clone(),
        kind: DeviceKind::Agent,
        // PKCS#11 CKM_ECDSA / CKM_RSA_PKCS sign precomputed digests ("DTBS and DTBS/R").
        prehashed: true,
        csr: Some(B64(csr)),
        certificate: None,
        key_proof: None,
    });
    let paired =
        link.pair_finish(&jws::sign(&device_key, &challenge.pairing_id, &message)).await.map_err(|e| anyhow!("pairing refused: {e}"))?;
    let issued = paired.certificates.first().ok_or_else(|| anyhow!("the service sent no certificate"))?;
    let cert_key = PublicKey::from_certificate(issued.as_bytes()).map_err(|e| anyhow!("the service's certificate: {e}"))?;
    ensure!(cert_key.spki() == signing_key.spki(), "the service's certificate is not for the card's key");

    private_dir(&dir)?;
    private_file(&dir.join(KEY_FILE), true)?.write_all(&pkcs8)?;
    if let Some(pem) = &ca_pem {
        private_file(&dir.join(CA_FILE), false)?.write_all(pem)?;
    }
    let saved = Saved {
        version: 1,
        service: base,
        aud: challenge.aud,
        user: challenge.user,
        name: args.name,
        device_id: paired.device_id,
        credential_id: paired.credential_id,
        certificates: paired.certificates,
        signing_key: B64(signing_key.spki().to_vec()),
        card: {
            card_ref.key_id = key_id;
            card_ref
        },
        counter: paired.counter,
        private_ca: ca_pem.is_some(),
    };
    saved.save(&dir)?;
    eprintln!("paired: device {}, credential {} (stored in {})", saved.device_id, saved.credential_id, dir.display());
    println!("{}", saved.credential_id);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------------------------

struct Agent {
    dir: PathBuf,
    saved: Mutex<Saved>,
    key: EcdsaKeyPair,
    kid: Id,
    aud: String,
    card: CardRef,
    signing_key: PublicKey,
    link: Link,
    /// Requests withdrawn while shown (`cancel`), and requests already shown.
    cancelled: Mutex<std::collections::HashSet<String>>,
}

/// A request for the signer.
enum Pending {
    Sign(SignRequest),
    Approve(ApprovalRequest),
}

impl Agent {
    fn load(dir: &Path) -> anyhow::Result<Arc<Agent>> {
        let saved = Saved::load(dir)?;
        let key = load_device_key(dir)?;
        let ca = if saved.private_ca {
            Some(std::fs::read(dir.join(CA_FILE)).with_context(|| format!("cannot read {}", dir.join(CA_FILE).display()))?)
        } else {
            None
        };
        let signing_key = PublicKey::from_spki(saved.signing_key.as_bytes()).map_err(|e| anyhow!("{CONFIG_FILE}: the signing key: {e}"))?;
        Ok(Arc::new(Agent {
            dir: dir.to_path_buf(),
            key,
            kid: saved.device_id.clone(),
            aud: saved.aud.clone(),
            card: saved.card.clone(),
            signing_key,
            link: Link { http: http_client(ca.as_deref())?, base: saved.service.clone() },
            saved: Mutex::new(saved),
            cancelled: Mutex::new(Default::default()),
        }))
    }

    /// The next counter, saved before use: above everything this agent and, as far as it
    /// knows, the service has seen ("Replay protection", layer 1: next = max(own, service's) + 1).
    fn next_counter(&self, service: Option<u64>) -> anyhow::Result<u64> {
        let mut s = self.saved.lock().map_err(|_| anyhow!("state poisoned"))?;
        s.counter = next_counter(s.counter, service);
        s.save(&self.dir)?;
        Ok(s.counter)
    }

    fn sign_message(&self, m: &DeviceMessage) -> String {
        jws::sign(&self.key, &self.kid, m)
    }

    async fn run(self: Arc<Self>, once: bool) -> anyhow::Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Pending>();
        let poller = tokio::spawn(self.clone().poll_loop(tx));
        // One request at a time in front of the signer; the polls go on meanwhile, so that the
        // device stays online and cancels arrive.
        let mut result = Ok(());
        while let Some(pending) = rx.recv().await {
            match self.clone().handle(pending).await {
                Ok(Some(accepted)) if once => {
                    if !accepted {
                        result = Err(anyhow!("the service did not accept the answer"));
                    }
                    break;
                }
                Ok(_) => {}
                Err(e) => eprintln!("error: {e:#}"),
            }
        }
        poller.abort();
        match poller.await {
            Ok(Err(e)) => Err(e),
            _ => result,
        }
    }

    /// Long-poll for ever ("Transport", "Reconnection"); returns only for a final refusal.
    async fn poll_loop(self: Arc<Self>, tx: tokio::sync::mpsc::UnboundedSender<Pending>) -> anyhow::Result<()> {
        let mut backoff = Duration::from_secs(1);
        let mut challenge: Option<Challenge> = None;
        let mut online = false;
        let mut seen = std::collections::HashSet::<String>::new();
        loop {
            let result = async {
                let c = match challenge.take() {
                    Some(c) => c,
                    None => self.link.challenge().await?,
                };
                let counter = self.next_counter(c.counter).map_err(|e| Failure::Protocol(format!("{e:#}")))?;
                let hello = DeviceMessage::Hello(Hello {
                    v: V1,
                    aud: self.aud.clone(),
                    counter,
                    challenge: c.challenge,
                    agent: Some(AGENT.into()),
                });
                self.link.poll(&self.sign_message(&hello)).await
            }
            .await;
            match result {
                Ok(messages) => {
                    if !online {
                        eprintln!("connected to {} as device {} (long-polling)", self.link.base, self.kid);
                        online = true;
                    }
                    backoff = Duration::from_secs(1);
                    for m in messages {
                        match m {
                            ServiceMessage::Challenge(c) => challenge = Some(c),
                            ServiceMessage::SignRequest(r) if seen.insert(r.request_id.to_string()) => {
                                let _ = tx.send(Pending::Sign(r));
                            }
                            ServiceMessage::ApprovalRequest(r) if seen.insert(r.request_id.to_string()) => {
                                let _ = tx.send(Pending::Approve(r));
                            }
                            ServiceMessage::Cancel(c) => {
                                eprintln!("request {} withdrawn by the service ({:?})", c.request_id, c.reason);
                                if let Ok(mut set) = self.cancelled.lock() {
                                    set.insert(c.request_id.to_string());
                                }
                            }
                            _ => {}
                        }
                    }
                }
                Err(Failure::Refused(e)) => match e.error {
                    // "Connection": for replayed and late the device tries again, with the
                    // counter the error reports.
                    RefusalCode::Replayed | RefusalCode::Late => {
                        if let Some(c) = e.counter {
                            self.next_counter(Some(c))?;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    code => {
                        bail!(
                            "the service refused this device ({}: {}); pair it again with `cloudsign device pair`",
                            code.as_str(),
                            display_text(&e.error_description, MAX_TEXT_CHARS)
                        )
                    }
                },
                Err(f) => {
                    if online {
                        eprintln!("connection lost: {f}");
                        online = false;
                    }
                    let wait = jitter(backoff);
                    eprintln!("reconnecting in {:.1} s", wait.as_secs_f64());
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn is_cancelled(&self, id: &Id) -> bool {
        self.cancelled.lock().map(|s| s.contains(id.as_str())).unwrap_or(false)
    }

    /// Show a request, ask the signer, answer. `Some(accepted)` once an answer was sent.
    async fn handle(self: Arc<Self>, pending: Pending) -> anyhow::Result<Option<bool>> {
        match pending {
            Pending::Sign(req) => self.handle_sign(req).await,
            Pending::Approve(req) => self.handle_approval(req).await,
        }
    }

    async fn handle_sign(self: Arc<Self>, req: SignRequest) -> anyhow::Result<Option<bool>> {
        let now = unix_now();
        let ours = self.saved.lock().map_err(|_| anyhow!("state poisoned"))?.credential_id == req.credential_id;
        if !ours {
            eprintln!("declined request {}: it is for another credential", req.request_id);
            return self.send_decline(|c| req.decline(&self.aud, c, DeclineReason::Unsupported)).await.map(Some);
        }
        let to_sign = match check_sign_request(&req, &self.signing_key, true, now) {
            Ok(t) => t,
            Err((reason, why)) => {
                eprintln!("declined request {}: {why}", req.request_id);
                return self.send_decline(|c| req.decline(&self.aud, c, reason)).await.map(Some);
            }
        };
        show_request(
            "Signature request",
            &req.request_id,
            req.application.as_deref(),
            Some(&req.label),
            req.description.as_deref(),
            to_sign.digests.len() as u64,
            Some(to_sign.verification_code.as_str()),
            req.expires_at - now,
        );
        let me = self.clone();
        let request = req.clone();
        let signed = tokio::task::spawn_blocking(move || me.ask_and_sign(&request, &to_sign)).await??;
        match signed {
            Decision::Signed(to_sign, signatures) => {
                let reply = self.send_answer(|c| req.answer(&to_sign, &self.aud, c, signatures.clone())).await?;
                if reply {
                    eprintln!("signed: {} signature(s) delivered", to_sign.digests.len());
                }
                Ok(Some(reply))
            }
            Decision::Declined => self.send_decline(|c| req.decline(&self.aud, c, DeclineReason::UserRefused)).await.map(Some),
            Decision::Gone(why) => {
                eprintln!("nothing signed: {why}");
                Ok(Some(false))
            }
        }
    }

    /// On the blocking pool: "Sign? [y/N]", the PIN, the card.
    fn ask_and_sign(&self, req: &SignRequest, to_sign: &ToSign) -> anyhow::Result<Decision> {
        if !confirmed("Sign? [y/N] ") {
            eprintln!("declined");
            return Ok(Decision::Declined);
        }
        for attempt in 1..=PIN_TRIES {
            let Some(pin) = read_secret("Card PIN: ").filter(|p| !p.is_empty()) else {
                eprintln!("no PIN: declined");
                return Ok(Decision::Declined);
            };
            if self.is_cancelled(&req.request_id) {
                return Ok(Decision::Gone("the service withdrew the request"));
            }
            if unix_now() >= req.expires_at {
                return Ok(Decision::Gone("the request expired"));
            }
            let result = (|| {
                let (card, _) = Card::open(&self.card, &pin, true)?;
                to_sign.digests.iter().map(|d| card.sign_digest(to_sign.scheme, d, &pin)).collect::<Result<Vec<_>, _>>()
            })();
            match result {
                Ok(signatures) => {
                    // A signature that does not verify with the credential's key would only be
                    // refused by the service (step 12); say so here.
                    for (s, d) in signatures.iter().zip(&to_sign.digests) {
                        ensure!(
                            self.signing_key.verify_digest(to_sign.scheme, d, s),
                            "the card's signature does not verify with the paired key"
                        );
                    }
                    return Ok(Decision::Signed(to_sign.clone(), signatures));
                }
                Err(CardError::WrongPin) if attempt < PIN_TRIES => eprintln!("the card refused the PIN; try again"),
                Err(e) => {
                    eprintln!("not signed: {e}");
                    return Ok(Decision::Declined);
                }
            }
        }
        Ok(Decision::Declined)
    }

    async fn handle_approval(self: Arc<Self>, req: ApprovalRequest) -> anyhow::Result<Option<bool>> {
        let now = unix_now();
        let code = match check_approval_request(&req, now) {
            Ok(c) => c,
            Err((reason, why)) => {
                eprintln!("declined request {}: {why}", req.request_id);
                return self.send_decline(|c| req.decline(&self.aud, c, reason)).await.map(Some);
            }
        };
        show_request(
            "Authorization request",
            &req.request_id,
            req.application.as_deref(),
            req.label.as_deref(),
            req.description.as_deref(),
            req.num_signatures,
            code.as_ref().map(|c| c.as_str()),
            req.expires_at - now,
        );
        let yes = tokio::task::spawn_blocking(|| confirmed("Approve? [y/N] ")).await?;
        if !yes || self.is_cancelled(&req.request_id) {
            return self.send_decline(|c| req.decline(&self.aud, c, DeclineReason::UserRefused)).await.map(Some);
        }
        self.send_answer(|c| req.approve(&self.aud, c, code)).await.map(Some)
    }

    async fn send_decline(&self, make: impl Fn(u64) -> DeviceMessage) -> anyhow::Result<bool> {
        let accepted = self.send_answer(make).await?;
        if accepted {
            eprintln!("declined: the service was told");
        }
        Ok(accepted)
    }

    /// Send an answer until the service decides ("Reconnection": network errors are retried;
    /// a `replayed` refusal, from a poll that took a later counter meanwhile, is re-signed
    /// with a counter above the service's).
    async fn send_answer(&self, make: impl Fn(u64) -> DeviceMessage) -> anyhow::Result<bool> {
        let mut service_counter = None;
        let mut backoff = Duration::from_secs(1);
        for _ in 0..20 {
            let counter = self.next_counter(service_counter)?;
            match self.link.answer(&self.sign_message(&make(counter))).await {
                Ok(ack) if ack.accepted => return Ok(true),
                Ok(ack) if ack.error == Some(RefusalCode::Replayed) => service_counter = Some(ack.counter),
                Ok(ack) => {
                    eprintln!(
                        "the service did not accept the answer: {} {}",
                        ack.error.map(|e| e.as_str()).unwrap_or("refused"),
                        ack.error_description.as_deref().map(|d| display_text(d, MAX_TEXT_CHARS)).unwrap_or_default()
                    );
                    return Ok(false);
                }
                Err(Failure::Refused(e)) if e.error == RefusalCode::Replayed => service_counter = e.counter,
                Err(Failure::Network(m)) => {
                    eprintln!("cannot deliver the answer ({m}); retrying");
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
                Err(f) => {
                    eprintln!("the answer was refused: {f}");
                    return Ok(false);
                }
            }
        }
        Ok(false)
    }
}

enum Decision {
    Signed(ToSign, Vec<Vec<u8>>),
    Declined,
    Gone(&'static str),
}

/// The request as the signer sees it ("Signing": the application, the label, the description,
/// the number of signatures, and the device's own verification code).
#[allow(clippy::too_many_arguments)]
fn show_request(
    title: &str,
    id: &Id,
    application: Option<&str>,
    label: Option<&str>,
    description: Option<&str>,
    n: u64,
    code: Option<&str>,
    seconds: i64,
) {
    let mut out = format!("\n{title} {id}\n");
    out.push_str(&format!(
        "  Application:        {}\n",
        application.map(|a| display_text(a, MAX_NAME_CHARS)).unwrap_or_else(|| "(not named)".into())
    ));
    if let Some(l) = label {
        out.push_str(&format!("  Document:           {}\n", display_text(l, MAX_LABEL_CHARS)));
    }
    if let Some(d) = description {
        out.push_str(&format!("  Description:        {}\n", display_text(d, MAX_TEXT_CHARS)));
    }
    out.push_str(&format!("  Signatures:         {n}\n"));
    if let Some(c) = code {
        out.push_str(&format!("  Verification code:  {c}   (the application must show the same code)\n"));
    }
    out.push_str(&format!("  Expires in:         {} s\n", seconds.max(0)));
    eprint!("{out}");
}

/// ±20 % ("Reconnection").
fn jitter(d: Duration) -> Duration {
    let r = aws_lc_rs::rand::generate::<[u8; 2]>(&SystemRandom::new()).map(|r| u16::from_le_bytes(r.expose())).unwrap_or(32768);
    let factor = 0.8 + 0.4 * (f64::from(r) / f64::from(u16::MAX));
    d.mul_f64(factor)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsign_device::key::KeyKind;
    use std::process::Command;

    #[test]
    fn urls() {
        assert_eq!(service_url("https://sign.example.com/").unwrap(), "https://sign.example.com");
        assert_eq!(service_url("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert!(service_url("http://[::1]:80/").is_ok());
        assert!(service_url("http://localhost:1").is_ok());
        assert!(service_url("http://sign.example.com").is_err());
        assert!(service_url("https://u:p@sign.example.com").is_err());
        assert!(service_url("ftp://x").is_err());
    }

    #[test]
    fn messages_verify_with_the_crate() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let device = cloudsign_device::key::DeviceKey::from_spki(key.public_key().as_der().unwrap().as_ref()).unwrap();
        let kid = Id::new("dev_1").unwrap();
        let hello = DeviceMessage::Hello(Hello {
            v: V1,
            aud: "https://s".into(),
            counter: 4,
            challenge: B64(vec![1, 2, 3]),
            agent: Some(AGENT.into()),
        });
        let jws = jws::sign(&key, &kid, &hello);
        assert_eq!(jws::Jws::parse(&jws).unwrap().verify(&device).unwrap(), hello);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(10));
            assert!(j >= Duration::from_secs(8) && j <= Duration::from_secs(12), "{j:?}");
        }
    }

    /// The CSR made and signed on SoftHSM2 (EC P-256 and RSA-2048) verifies with `openssl req
    /// -verify` and with `cloudsign_device::pairing::verify_csr`. SoftHSM2 reads SOFTHSM2_CONF
    /// when initialized, so the part with the token runs in a child process of this test binary
    /// with its own environment (setting a variable in a threaded test process is not safe).
    #[test]
    fn csr_signed_on_softhsm() {
        if let Ok(dir) = std::env::var("CLOUDSIGN_DEVICE_CSR_CHILD") {
            return csr_child(Path::new(&dir));
        }
        use cloudsign_test_support::hsm;
        let dir = std::env::temp_dir().join(cloudsign_test_support::unique("cloudsign-device-csr-"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = hsm::token(&dir);
        hsm::card_keys(&conf);
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "device::tests::csr_signed_on_softhsm", "--nocapture", "--test-threads", "1"])
            .env("SOFTHSM2_CONF", &conf)
            .env("CLOUDSIGN_DEVICE_CSR_CHILD", &dir)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        for label in ["card-ec", "card-rsa"] {
            let der = dir.join(format!("{label}.csr"));
            let verified = cloudsign_test_support::run(
                Command::new("openssl").args(["req", "-inform", "DER", "-verify", "-noout", "-text", "-in"]).arg(&der),
            );
            let shown = String::from_utf8_lossy(&verified);
            assert!(shown.contains("challengePassword"), "{shown}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn csr_child(dir: &Path) {
        use cloudsign_test_support::hsm;
        let challenge = b"a pairing challenge of forty bytes, here".to_vec();
        for label in ["card-ec", "card-rsa"] {
            let card_ref = CardRef {
                module: hsm::MODULE.into(),
                token: Some(hsm::TOKEN.into()),
                slot: None,
                key_label: label.into(),
                key_id: String::new(),
            };
            let (card, id) = Card::open(&card_ref, hsm::PIN, false).unwrap();
            let key = card.public_key(&id).unwrap();
            let csr = build_csr(&key, "test card", &challenge, |s, d| card.sign_digest(s, d, hsm::PIN)).unwrap();
            let verified = cloudsign_device::pairing::verify_csr(&csr, &challenge).unwrap();
            assert_eq!(verified.spki(), key.spki());
            assert!(cloudsign_device::pairing::verify_csr(&csr, b"another challenge").is_err());
            // By id, as `run` finds it; a digest signature verifies with the crate.
            drop(card);
            let by_id = CardRef { key_id: hex::encode(&id), ..card_ref };
            let (card, _) = Card::open(&by_id, hsm::PIN, true).unwrap();
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"doc");
            let schemes: &[SignAlgorithm] = if matches!(key.kind(), KeyKind::Rsa(_)) {
                &[SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256), SignAlgorithm::RsaPss(HashAlgorithm::Sha256)]
            } else {
                &[SignAlgorithm::Ecdsa(HashAlgorithm::Sha256)]
            };
            for &s in schemes {
                let sig = card.sign_digest(s, digest.as_ref(), hsm::PIN).unwrap();
                assert!(key.verify_digest(s, digest.as_ref(), &sig), "{s:?}");
            }
            assert!(matches!(Card::open(&by_id, "wrong-pin", true), Err(CardError::WrongPin)));
            std::fs::write(dir.join(format!("{label}.csr")), &csr).unwrap();
        }
    }
}
