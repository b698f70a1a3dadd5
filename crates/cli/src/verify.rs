//! `cloudsign verify`: validate the signatures of a PDF or a CMS signature against the trust
//! anchors given, and say why when they do not pass (ETSI EN 319 102-1 indications). The exit
//! code is 0 only when every signature is TOTAL-PASSED.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use cloudsign_validation::engine::{Indication, SignatureReport};

#[derive(Args)]
pub struct VerifyArgs {
    /// The signed PDF, or a CMS signature (.p7s/.p7m, DER or PEM).
    file: PathBuf,
    /// The content of a detached CMS signature.
    #[arg(long)]
    detached: Option<PathBuf>,
    /// Trust anchors (PEM; repeat for several files).
    #[arg(long = "trust")]
    trust: Vec<PathBuf>,
    /// ETSI TS 119 612 trusted list (a file, or an https:// URL, fetched and cached until its
    /// NextUpdate) whose granted CA and TSA services are trust anchors; give the list
    /// operator's certificate with --trusted-list-signer.
    #[arg(long = "trusted-list", requires = "trusted_list_signer")]
    trusted_list: Vec<String>,
    /// PEM certificate(s) of the trusted lists' operator: the lists must be signed by one of them.
    #[arg(long = "trusted-list-signer")]
    trusted_list_signer: Option<PathBuf>,
    /// Validation policy: `strict` (built in), a name in CLOUDSIGN_VALIDATION_POLICY_DIR, or a
    /// path to a .toml file.
    #[arg(long, default_value = "strict")]
    policy: String,
    /// Print the full report as JSON.
    #[arg(long)]
    json: bool,
    /// Do not fetch revocation data from the URLs in the certificates.
    #[arg(long)]
    offline: bool,
    /// A CRL (DER or PEM) to use as revocation evidence (repeatable): for relying parties that
    /// obtained it themselves.
    #[arg(long)]
    crl: Vec<PathBuf>,
    /// An OCSP response (DER) to use as revocation evidence (repeatable).
    #[arg(long)]
    ocsp: Vec<PathBuf>,
}

pub async fn run(a: VerifyArgs) -> anyhow::Result<i32> {
    let dir = std::env::var_os("CLOUDSIGN_VALIDATION_POLICY_DIR").map(PathBuf::from);
    let policy = cloudsign_validation::policy::Policy::load(&a.policy, dir.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    let mut anchors = cloudsign_validation::path::TrustAnchors::default();
    for t in a.trust.iter().chain(&policy.trust) {
        let pem = std::fs::read_to_string(t).with_context(|| format!("cannot read {}", t.display()))?;
        let more = cloudsign_validation::path::TrustAnchors::from_pem(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", t.display()))?;
        for c in more.certificates() {
            anchors.add(c.clone());
        }
    }
    if !a.trusted_list.is_empty() {
        let signer = a.trusted_list_signer.as_ref().map(std::fs::read_to_string).transpose()?.unwrap_or_default();
        let operators =
            cloudsign_validation::x509::Certificate::parse_pem_all(&signer).map_err(|e| anyhow::anyhow!("--trusted-list-signer: {e}"))?;
        for tl in &a.trusted_list {
            let list = trusted_list(tl, &operators).await?;
            for c in list.anchors(&[]).certificates() {
                anchors.add(c.clone());
            }
        }
    }
    if anchors.is_empty() {
        anyhow::bail!("no trust anchors: give --trust PEM, --trusted-list, or a policy with trust anchors");
    }
    let mut fetched = cloudsign_validation::file::Fetched::default();
    if !a.offline && policy.online_revocation {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
        let certs = cloudsign_validation::file::certificates_in(&a.file);
        let (ocsps, crls, problems) = cloudsign_client::fetch::fetch_available(&http, &certs).await;
        for p in problems {
            tracing::info!("revocation data not fetched: {p}");
        }
        fetched.ocsps = ocsps;
        fetched.crls = crls;
    }
    for path in &a.crl {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        fetched.crls.push(pem_or_der(&bytes, "X509 CRL"));
    }
    for path in &a.ocsp {
        fetched.ocsps.push(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let inputs = cloudsign_validation::file::Inputs { anchors: &anchors, policy: &policy, fetched: &fetched, now };
    let reports = cloudsign_validation::file::validate_file(&a.file, a.detached.as_deref(), &inputs).map_err(|e| anyhow::anyhow!(e))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"file": a.file.display().to_string(), "policy": policy.name, "signatures": reports})
            )?
        );
    } else {
        print_summary(&reports);
    }
    Ok(if reports.iter().all(|r| r.indication == Indication::TotalPassed) { 0 } else { 1 })
}

/// A trusted list from a file, or from a URL through a cache: a cached list is used until its
/// NextUpdate, then fetched again (and the stale copy used, with a warning, when the fetch fails).
async fn trusted_list(
    source: &str,
    operators: &[cloudsign_validation::x509::Certificate],
) -> anyhow::Result<cloudsign_validation::tsl::TrustedList> {
    use cloudsign_validation::tsl;
    if !(source.starts_with("https://") || source.starts_with("http://")) {
        let xml = std::fs::read(source).with_context(|| format!("cannot read {source}"))?;
        return tsl::load(&xml, operators).map_err(|e| anyhow::anyhow!("{source}: {e}"));
    }
    let cache_dir = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("cloudsign")
        .join("trusted-lists");
    let name = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, source.as_bytes()));
    let cached_path = cache_dir.join(format!("{name}.xml"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    // A cached copy is checked again (its signature, against these operators) before use.
    let cached = match std::fs::read(&cached_path).ok().and_then(|xml| tsl::load(&xml, operators).ok()) {
        Some(list) if list.next_update.is_some_and(|n| n > now) => return Ok(list),
        other => other,
    };
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?;
    match cloudsign_client::fetch::fetch(&http, source, None, "the trusted list").await.map_err(anyhow::Error::from) {
        Ok(xml) => {
            let list = tsl::load(&xml, operators).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
            if std::fs::create_dir_all(&cache_dir).is_ok() {
                let _ = std::fs::write(&cached_path, &xml);
            }
            Ok(list)
        }
        Err(e) => match cached {
            Some(list) => {
                eprintln!("warning: {e:#}; using the cached copy of {source} (next update was due)");
                Ok(list)
            }
            None => Err(e),
        },
    }
}

/// DER as is; PEM of `label` decoded.
fn pem_or_der(bytes: &[u8], label: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let begin = format!("-----BEGIN {label}-----");
    match text.find(&begin) {
        Some(at) => {
            let body: String = text[at + begin.len()..].lines().take_while(|l| !l.starts_with("-----END")).collect();
            cloudsign_csc::b64::decode_lenient(body.trim()).unwrap_or_default()
        }
        None => bytes.to_vec(),
    }
}

fn print_summary(reports: &[SignatureReport]) {
    let color = std::io::stdout().is_terminal();
    for r in reports {
        let indication = serde_json::to_value(r.indication).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let sub = r.sub_indication.and_then(|s| serde_json::to_value(s).ok()).and_then(|v| v.as_str().map(str::to_string));
        let mark = match (r.indication, color) {
            (Indication::TotalPassed, true) => "\x1b[32m",
            (Indication::TotalFailed, true) => "\x1b[31m",
            (Indication::Indeterminate, true) => "\x1b[33m",
            _ => "",
        };
        let reset = if color { "\x1b[0m" } else { "" };
        println!("{} ({}): {mark}{indication}{}{reset}", r.id, r.format, sub.map(|s| format!(" / {s}")).unwrap_or_default());
        if let Some(s) = &r.signer {
            println!("  signer:        {s}");
        }
        if let Some(level) = r.level {
            println!("  level:         {level}");
        }
        if let Some(t) = &r.claimed_signing_time {
            println!("  claimed time:  {t}");
        }
        if let Some(t) = &r.proven_signing_time {
            println!("  proven time:   {t} (signature time-stamp)");
        }
        for t in &r.timestamps {
            println!("  time-stamp:    {} {} {}", t.kind, t.time, if t.valid { "valid" } else { "NOT valid" });
        }
        for c in &r.chain {
            println!("  certificate:   {} — {}{}", c.subject, c.revocation, c.source.map(|s| format!(" ({s})")).unwrap_or_default());
        }
        if let Some(p) = &r.pdf {
            let whole = if p.covers_whole_file { "the whole file" } else { "part of the file" };
            println!("  covers:        {whole} (ByteRange {:?}); later revisions: {}", p.byte_range, p.later_revisions);
        }
        for e in &r.errors {
            println!("  why:           {e}");
        }
    }
}
