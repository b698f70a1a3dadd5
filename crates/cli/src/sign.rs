//! `cloudsign sign`: sign local files through any CSC service (v2, or v1 with `--api v1`). The
//! work is `cloudsign_client::signer`'s; this module parses the arguments, supplies the
//! password and PIN from a hidden prompt, or from CLOUDSIGN_PASSWORD / CLOUDSIGN_PIN (and
//! CLOUDSIGN_OTP) for automation — never from arguments — and prints what was signed.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use cloudsign_ades::format;
use cloudsign_client::signer::{self, Interaction, Progress, Secret, SignError, SignRequest, SignedFile};
use zeroize::Zeroizing;

/// `--format` (clap's spelling of `cloudsign_ades::Format`).
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

impl From<Format> for format::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Pades => format::Format::Pades,
            Format::Cades => format::Format::Cades,
            Format::Xades => format::Format::Xades,
            Format::Jades => format::Format::Jades,
        }
    }
}

/// `--level`.
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

impl From<Level> for format::Level {
    fn from(l: Level) -> Self {
        match l {
            Level::BB => format::Level::BB,
            Level::BT => format::Level::BT,
            Level::BLt => format::Level::BLT,
            Level::BLta => format::Level::BLTA,
        }
    }
}

/// `--packaging`.
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

impl From<Packaging> for format::Packaging {
    fn from(p: Packaging) -> Self {
        match p {
            Packaging::Detached => format::Packaging::Detached,
            Packaging::Attached => format::Packaging::Attached,
            Packaging::Enveloped => format::Packaging::Enveloped,
            Packaging::Enveloping => format::Packaging::Enveloping,
        }
    }
}

/// `--api`.
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
        format: a.format.map(Into::into),
        level: a.level.map(Into::into),
        packaging: a.packaging.map(Into::into),
        certify: a.certify,
        sigd: a.sigd,
        out: a.out,
    };
    signer::sign_files(&request, &mut Terminal { shown: 0 }).await?;
    Ok(())
}
