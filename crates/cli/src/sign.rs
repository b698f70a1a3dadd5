//! `cloudsign sign`: sign local files through any CSC service (v2, or v1; the version is found
//! from `info` unless `--api` says). The work is `cloudsign_client::signer`'s; this module
//! parses the arguments, supplies the secrets — the password and PIN from a hidden prompt or
//! CLOUDSIGN_PASSWORD / CLOUDSIGN_PIN (and CLOUDSIGN_OTP), a bearer token from `--token-file`
//! or CLOUDSIGN_TOKEN, an OAuth client secret from `--client-secret-file` or
//! CLOUDSIGN_CLIENT_SECRET; never from arguments, which other users see in `ps` — shows the
//! OAuth authorization URL (and opens a browser when there is one), and prints what was signed.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};
use cloudsign_ades::format::{Format, Level, Packaging};
use cloudsign_client::auth::{AuthOptions, Grant, OAuthOptions};
use cloudsign_client::signer::{self, Interaction, Progress, Secret, SignError, SignRequest, SignedFile};
use zeroize::Zeroizing;

/// A clap parser for one of the `cloudsign_ades::format` enums, by the names the enum itself
/// gives (so `--help` lists them and there is no second definition of the values here).
fn by_name<T: Copy + Send + Sync + 'static>(all: &'static [T], name: fn(T) -> &'static str) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(all.iter().map(|v| name(*v))).map(move |s| {
        // PossibleValuesParser has already refused anything but these names.
        all.iter().copied().find(|v| name(*v) == s).unwrap_or(all[0])
    })
}

/// `--visible PAGE,X,Y,W,H`: the page from 1, the box in points from the lower-left corner.
fn parse_position(s: &str) -> Result<cloudsign_ades::pades::Position, String> {
    let shape = || format!("{s:?}: give PAGE,X,Y,W,H (e.g. 1,50,50,220,60)");
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [page, numbers @ ..] = parts.as_slice() else { return Err(shape()) };
    let page: u32 = page.parse().map_err(|_| shape())?;
    if page == 0 {
        return Err("pages are numbered from 1".into());
    }
    let numbers: Vec<f64> =
        numbers.iter().map(|n| n.parse::<f64>().ok().filter(|n| n.is_finite())).collect::<Option<_>>().ok_or_else(shape)?;
    let [x, y, width, height] = numbers[..] else { return Err(shape()) };
    if width <= 0.0 || height <= 0.0 {
        return Err("the box's width and height must be positive".into());
    }
    if x < 0.0 || y < 0.0 {
        return Err("the box's corner X,Y must not be negative".into());
    }
    Ok(cloudsign_ades::pades::Position { page, rect: cloudsign_ades::pades::Rect { x, y, width, height } })
}

/// `--api`.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Api {
    V1,
    V2,
}

/// `--grant`.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum GrantArg {
    /// OAuth 2.0 authorization code with PKCE, in your browser.
    AuthorizationCode,
    /// OAuth 2.0 client credentials (a confidential client registered to act for a user).
    ClientCredentials,
}

/// `--packaging`: a certification signature is asked for with `--certify`, not as a packaging.
const CLI_PACKAGINGS: [Packaging; 4] = [Packaging::Detached, Packaging::Attached, Packaging::Enveloped, Packaging::Enveloping];

#[derive(Args)]
pub struct SignArgs {
    /// The files to sign (several share one authorization).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The CSC service's base URI (e.g. https://sign.example.com), without `/csc/v2`: the
    /// version is added.
    #[arg(long)]
    service: String,
    /// Your user name, for services that offer `auth/login` (the password comes from a prompt
    /// or CLOUDSIGN_PASSWORD).
    #[arg(long)]
    user: Option<String>,
    /// A file holding a bearer access token for the service (also CLOUDSIGN_TOKEN).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Sign in with OAuth 2.0 as this registered client: by default the authorization code
    /// flow in your browser (the address is printed, and opened when a browser is there),
    /// with a redirect to a listener on 127.0.0.1.
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    /// The OAuth client's secret, for a confidential client (also CLOUDSIGN_CLIENT_SECRET).
    #[arg(long, value_name = "PATH")]
    client_secret_file: Option<PathBuf>,
    /// The OAuth 2.0 grant for the service token.
    #[arg(long, value_enum, default_value = "authorization-code")]
    grant: GrantArg,
    /// The loopback redirect URI registered for the client (http://127.0.0.1/PATH: any free
    /// port; with a port: that one).
    #[arg(long, value_name = "URI")]
    redirect_uri: Option<String>,
    /// Do not start a browser for OAuth; only print the address.
    #[arg(long)]
    no_browser: bool,
    /// Take time-stamps from this RFC 3161 TSA instead of the service's signatures/timestamp.
    #[arg(long, value_name = "URL")]
    tsa: Option<String>,
    /// `clientData` for the service's signatures/timestamp, for services that need it to
    /// pick a time-stamping unit (certomancer-csc-dummy: ARCH/TSA-LABEL).
    #[arg(long, value_name = "DATA")]
    timestamp_client_data: Option<String>,
    /// The credential to sign with.
    #[arg(long)]
    credential: String,
    /// Signature format (default: pades for .pdf files, cades otherwise).
    #[arg(long, value_parser = by_name(&Format::ALL, Format::id))]
    format: Option<Format>,
    /// AdES level (default B-T; JAdES B-B).
    #[arg(long, value_parser = by_name(&Level::ALL, Level::name))]
    level: Option<Level>,
    /// Packaging (defaults: PAdES inside the PDF, XAdES enveloped, CAdES and JAdES detached).
    #[arg(long, value_parser = by_name(&CLI_PACKAGINGS, Packaging::id))]
    packaging: Option<Packaging>,
    /// PAdES: make a certification signature (DocMDP) allowing 1: no changes, 2: filling in
    /// forms and signing, 3: those and annotations. Only as the document's first signature.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    certify: Option<u8>,
    /// JAdES: reference the file by name and hash in the protected header (`sigD`,
    /// ObjectIdByURIHash) instead of making it the detached payload.
    #[arg(long)]
    sigd: bool,
    /// PAdES: a visible signature on page PAGE (from 1) in the box X,Y,W,H, in points (1/72
    /// inch) from the page's lower-left corner; an A4 page is 595 x 842. The box shows who
    /// signed, when, and the reason. Without it the signature is invisible.
    #[arg(long, value_name = "PAGE,X,Y,W,H", value_parser = parse_position)]
    visible: Option<cloudsign_ades::pades::Position>,
    /// PAdES: why you sign (the signature's /Reason; shown in a visible signature).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// CSC API version of the service (default: v2 if the service answers there, else v1).
    #[arg(long, value_enum)]
    api: Option<Api>,
    /// Where to write the result (one input file only). Defaults next to each file:
    /// NAME-signed.pdf, FILE.p7s, NAME-signed.xml (FILE.xades.xml when not enveloped), FILE.jws
    /// (FILE.jws.json from B-T).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Ask the service to sign asynchronously (CSC API 2.2.0.0 `operationMode: "A"`) and fetch
    /// the signatures with `signatures/signPolling` (v2 only).
    #[arg(long = "async")]
    asynchronous: bool,
}

/// Secrets from the environment or a hidden prompt; progress and results on stderr.
struct Terminal {
    /// The percentage last shown for the file being hashed.
    shown: u64,
    /// Start a browser for OAuth authorization URLs.
    browser: bool,
}

impl Interaction for Terminal {
    fn secret(&mut self, which: Secret) -> Result<Zeroizing<String>, SignError> {
        let (var, prompt) = match which {
            Secret::Password => ("CLOUDSIGN_PASSWORD", "Password: "),
            Secret::Pin => ("CLOUDSIGN_PIN", "PIN: "),
            Secret::Otp => ("CLOUDSIGN_OTP", "One-time code: "),
        };
        if let Ok(v) = std::env::var(var) {
            return Ok(Zeroizing::new(v));
        }
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|source| SignError::Io { what: format!("cannot prompt for it; set {var}"), source })
    }

    /// A percentage on a terminal, for reads over 64 MiB.
    fn progress(&mut self, p: &Progress<'_>) {
        if !(std::io::stderr().is_terminal() && p.total > (64 << 20)) {
            return;
        }
        if p.finished {
            eprintln!("\r{}: done", p.label);
            self.shown = 0;
            return;
        }
        let pct = p.done * 100 / p.total.max(1);
        if pct != self.shown {
            self.shown = pct;
            eprint!("\r{}: {pct:3}%", p.label);
        }
    }

    fn signed(&mut self, file: &SignedFile) {
        eprintln!("signed: {} ({})", file.path.display(), file.kind());
    }

    /// As `gh auth login`: the address on a line of its own (`authorize-url: URL`, which
    /// scripts can read), and a browser started when there is one.
    fn authorize_in_browser(&mut self, url: &str, redirect_uri: &str) {
        let opened = self.browser && cloudsign_client::auth::open_browser(url);
        let how = if opened { "A browser was opened; if it did not show the page, open" } else { "Open" };
        eprintln!("{how} this address to sign in (waiting for the browser to come back to {redirect_uri}):");
        eprintln!("authorize-url: {url}");
    }

    fn note(&mut self, message: &str) {
        eprintln!("{message}");
    }
}

/// A secret from a file (trimmed: editors add a newline) or the environment variable.
fn secret_from(file: Option<&PathBuf>, var: &str, what: &str) -> anyhow::Result<Option<Zeroizing<String>>> {
    let value = match file {
        Some(path) => Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read the {what} from {}: {e}", path.display()))?,
        ),
        None => match std::env::var(var) {
            Ok(v) => Zeroizing::new(v),
            Err(_) => return Ok(None),
        },
    };
    let trimmed = value.trim();
    anyhow::ensure!(!trimmed.is_empty(), "the {what} is empty");
    Ok(Some(Zeroizing::new(trimmed.to_string())))
}

pub async fn run(a: SignArgs) -> anyhow::Result<()> {
    let token = secret_from(a.token_file.as_ref(), "CLOUDSIGN_TOKEN", "access token")?;
    let oauth = match a.client_id {
        Some(client_id) => Some(OAuthOptions {
            client_id,
            client_secret: secret_from(a.client_secret_file.as_ref(), "CLOUDSIGN_CLIENT_SECRET", "client secret")?,
            grant: match a.grant {
                GrantArg::AuthorizationCode => Grant::AuthorizationCode,
                GrantArg::ClientCredentials => Grant::ClientCredentials,
            },
            redirect_uri: a.redirect_uri,
        }),
        None => {
            anyhow::ensure!(
                a.client_secret_file.is_none() && a.redirect_uri.is_none() && a.grant == GrantArg::AuthorizationCode,
                "--client-secret-file, --redirect-uri and --grant go with --client-id"
            );
            None
        }
    };
    let request = SignRequest {
        files: a.files,
        service: a.service,
        api: a.api.map(|api| match api {
            Api::V1 => cloudsign_client::Api::V1,
            Api::V2 => cloudsign_client::Api::V2,
        }),
        auth: AuthOptions { user: a.user, token, oauth },
        tsa: a.tsa,
        timestamp_client_data: a.timestamp_client_data,
        credential: a.credential,
        format: a.format,
        level: a.level,
        packaging: a.packaging,
        certify: a.certify,
        sigd: a.sigd,
        visible: a.visible,
        reason: a.reason,
        out: a.out,
        asynchronous: a.asynchronous,
    };
    signer::sign_files(&request, &mut Terminal { shown: 0, browser: !a.no_browser }).await?;
    Ok(())
}
