//! `cloudsign sign`: sign local files through any CSC service (v2, or v1 with `--api v1`). The
//! work is `cloudsign_client::signer`'s; this module parses the arguments, supplies the
//! password and PIN from a hidden prompt, or from CLOUDSIGN_PASSWORD / CLOUDSIGN_PIN (and
//! CLOUDSIGN_OTP) for automation — never from arguments — and prints what was signed.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};
use cloudsign_ades::format::{Format, Level, Packaging};
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

/// `--api`.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Api {
    V1,
    V2,
}

/// `--packaging`: a certification signature is asked for with `--certify`, not as a packaging.
const CLI_PACKAGINGS: [Packaging; 4] = [Packaging::Detached, Packaging::Attached, Packaging::Enveloped, Packaging::Enveloping];

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
    #[arg(long, value_parser = by_name(&Format::ALL, Format::id))]
    format: Option<Format>,
    /// AdES level (default B-T; JAdES B-B).
    #[arg(long, value_parser = by_name(&Level::ALL, Level::name))]
    level: Option<Level>,
    /// Packaging (defaults: PAdES inside the PDF, CAdES and JAdES detached).
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
    /// CSC API version of the service.
    #[arg(long, value_enum, default_value = "v2")]
    api: Api,
    /// Where to write the result (one input file only). Defaults next to each file:
    /// NAME-signed.pdf, FILE.p7s, FILE.jws.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Secrets from the environment or a hidden prompt; progress and results on stderr.
struct Terminal {
    /// The percentage last shown for the file being hashed.
    shown: u64,
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
}

pub async fn run(a: SignArgs) -> anyhow::Result<()> {
    let request = SignRequest {
        files: a.files,
        service: a.service,
        api: match a.api {
            Api::V1 => cloudsign_client::Api::V1,
            Api::V2 => cloudsign_client::Api::V2,
        },
        user: a.user,
        credential: a.credential,
        format: a.format,
        level: a.level,
        packaging: a.packaging,
        certify: a.certify,
        sigd: a.sigd,
        out: a.out,
    };
    signer::sign_files(&request, &mut Terminal { shown: 0 }).await?;
    Ok(())
}
