//! `cloudsign verify`: validate the signatures of a PDF, XML, JWS or CMS signature against the
//! trust anchors given, and say why when they do not pass (ETSI EN 319 102-1 indications). The
//! report is always printed: with no trust anchor that fits, the signature is INDETERMINATE /
//! NO_CERTIFICATE_CHAIN_FOUND and the integrity checks (format, digest, signature value,
//! time-stamp imprints) are still shown. The exit code is 0 only when every signature is
//! TOTAL-PASSED.
//!
//! Trust anchors come from PEM files (`--trust`, the policy's `trust`), ETSI TS 119 612 trusted
//! lists (`--trusted-list`), the system's CA store (`--trust-system`, see
//! [`cloudsign_validation::system`]) and the EU list of trusted lists (`--eu-lotl`): the LOTL's
//! signature is checked against the certificates given with `--lotl-signer` (the EU publishes
//! them in the Official Journal; none is built in, as they change), then every national list it
//! points to is fetched and checked against the certificates the LOTL gives for that list. A
//! source the user named that cannot be used (an unreadable file, a list whose signature does not
//! verify, the LOTL) stops the command; a national list reached through the LOTL that cannot be
//! used is skipped with a warning, as one country's broken list must not stop the others.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use cloudsign_validation::engine::{Indication, Outcome, SignatureReport};

#[derive(Args)]
pub struct VerifyArgs {
    /// The signed PDF, XML (XAdES), JWS (JAdES) or CMS signature (.p7s/.p7m, DER or PEM).
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
    /// Trust the system's CA store: SSL_CERT_FILE / SSL_CERT_DIR when set, else the first of
    /// /etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt, ... (these are the
    /// system's TLS roots, not qualified signature services).
    #[arg(long = "trust-system")]
    trust_system: bool,
    /// Trust the granted CA/QC and TSA/QTST services of the national lists the EU list of trusted
    /// lists points to. The LOTL is fetched from the official address, or `--eu-lotl=URL` (or a
    /// file); give its signing certificates (published in the Official Journal of the EU) with
    /// --lotl-signer. Lists are cached as --trusted-list URLs are.
    #[arg(long = "eu-lotl", num_args = 0..=1, require_equals = true, default_missing_value = cloudsign_validation::tsl::EU_LOTL_URL, requires = "lotl_signer", value_name = "URL")]
    eu_lotl: Option<String>,
    /// PEM certificate(s) the EU LOTL must be signed with (repeatable).
    #[arg(long = "lotl-signer")]
    lotl_signer: Vec<PathBuf>,
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
    // Where the anchors came from, for the report: (source, how many certificates).
    let mut sources: Vec<(String, usize)> = Vec::new();
    for t in a.trust.iter().chain(&policy.trust) {
        let pem = std::fs::read_to_string(t).with_context(|| format!("cannot read {}", t.display()))?;
        let more = cloudsign_validation::path::TrustAnchors::from_pem(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", t.display()))?;
        add_all(&mut anchors, &mut sources, t.display().to_string(), more.certificates());
    }
    // Built when something is fetched: the client reads the system's roots for HTTPS (and
    // SSL_CERT_FILE with them), which a run with local files only must not depend on.
    let http_cell = std::cell::OnceCell::new();
    let http = || -> anyhow::Result<reqwest::Client> {
        if let Some(c) = http_cell.get() {
            return Ok(Clone::clone(c));
        }
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("cannot set up the HTTP client (it reads the system's CA store, or SSL_CERT_FILE, for HTTPS)")?;
        Ok(Clone::clone(http_cell.get_or_init(|| client)))
    };
    if !a.trusted_list.is_empty() {
        let signer = a.trusted_list_signer.as_ref().map(std::fs::read_to_string).transpose()?.unwrap_or_default();
        let operators =
            cloudsign_validation::x509::Certificate::parse_pem_all(&signer).map_err(|e| anyhow::anyhow!("--trusted-list-signer: {e}"))?;
        for tl in &a.trusted_list {
            let list = trusted_list(&http()?, tl, &operators).await?;
            add_all(&mut anchors, &mut sources, format!("trusted list {tl}"), list.anchors(&[]).certificates());
        }
    }
    if a.trust_system {
        let (certs, files) = cloudsign_validation::system::load().map_err(|e| anyhow::anyhow!("--trust-system: {e}"))?;
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let shown =
            if names.len() > 3 { format!("{} and {} more files", names[..3].join(", "), names.len() - 3) } else { names.join(", ") };
        add_all(&mut anchors, &mut sources, format!("system CA store ({shown})"), &certs);
    }
    if let Some(lotl) = &a.eu_lotl {
        let mut signers = Vec::new();
        for path in &a.lotl_signer {
            let pem = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let certs = cloudsign_validation::x509::Certificate::parse_pem_all(&pem)
                .map_err(|e| anyhow::anyhow!("--lotl-signer {}: {e}", path.display()))?;
            anyhow::ensure!(!certs.is_empty(), "--lotl-signer {}: no CERTIFICATE in the file", path.display());
            signers.extend(certs);
        }
        for (source, certs) in eu_lotl(&http()?, lotl, &signers).await? {
            add_all(&mut anchors, &mut sources, source, &certs);
        }
    }
    if anchors.is_empty() {
        // EN 319 102-1 §5.2.6: without a trust anchor no chain can be found, but the signatures'
        // integrity is still decided and reported.
        eprintln!(
            "note: no trust anchors (--trust PEM, --trusted-list, --trust-system, --eu-lotl): the signatures' integrity is \
             checked, their trust cannot be"
        );
    }
    let mut fetched = cloudsign_validation::file::Fetched::default();
    if !a.offline && policy.online_revocation {
        let certs = cloudsign_validation::file::certificates_in(&a.file);
        let (ocsps, crls, problems) = cloudsign_client::fetch::fetch_available(&http()?, &certs).await;
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
            serde_json::to_string_pretty(&serde_json::json!({
                "file": a.file.display().to_string(),
                "policy": policy.name,
                "trust": sources.iter().map(|(s, n)| serde_json::json!({"source": s, "anchors": n})).collect::<Vec<_>>(),
                "signatures": reports,
            }))?
        );
    } else {
        let trust: Vec<String> = sources.iter().map(|(s, n)| format!("{n} from {s}")).collect();
        println!("trust anchors: {}", if trust.is_empty() { "none".to_string() } else { trust.join("; ") });
        print_summary(&reports);
    }
    Ok(if reports.iter().all(|r| r.indication == Indication::TotalPassed) { 0 } else { 1 })
}

/// A trusted list from a file, or from a URL through a cache: a cached list is used until its
/// NextUpdate, then fetched again (and the stale copy used, with a warning, when the fetch fails).
async fn trusted_list(
    http: &reqwest::Client,
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
    match cloudsign_client::fetch::fetch(http, source, None, "the trusted list").await.map_err(anyhow::Error::from) {
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

/// Add `certs` to `anchors`, noting the source.
fn add_all(
    anchors: &mut cloudsign_validation::path::TrustAnchors,
    sources: &mut Vec<(String, usize)>,
    source: String,
    certs: &[cloudsign_validation::x509::Certificate],
) {
    certs.iter().for_each(|c| anchors.add(c.clone()));
    sources.push((source, certs.len()));
}

/// The trust anchors of the EU list of trusted lists at `source` (URL or file): the LOTL's
/// signature is checked against `signers`, then each national list it points to (TS 119 612
/// §5.3.13 `OtherTSLPointer`: its `TSLLocation`, checked against the certificates of its
/// `ServiceDigitalIdentities`) is loaded through the cache, and its granted CA/QC and TSA/QTST
/// services become anchors. Returns one (source, certificates) per national list used.
async fn eu_lotl(
    http: &reqwest::Client,
    source: &str,
    signers: &[cloudsign_validation::x509::Certificate],
) -> anyhow::Result<Vec<(String, Vec<cloudsign_validation::x509::Certificate>)>> {
    let lotl = trusted_list(http, source, signers)
        .await
        .map_err(|e| anyhow::anyhow!("the EU list of trusted lists is refused: {e:#} (its signature is checked against --lotl-signer)"))?;
    let pointers: Vec<cloudsign_validation::tsl::TslPointer> = lotl.national_pointers().into_iter().cloned().collect();
    anyhow::ensure!(!pointers.is_empty(), "{source}: the list points to no trusted lists (is it a list of trusted lists?)");
    // The national lists are fetched side by side: the EU LOTL points to about thirty.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, pointer) in pointers.into_iter().enumerate() {
        let http = http.clone();
        tasks.spawn(async move {
            let result = trusted_list(&http, &pointer.location, &pointer.certificates).await;
            (i, pointer, result)
        });
    }
    let mut lists = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, pointer, result)) = joined else { continue };
        let territory = pointer.territory.clone().unwrap_or_else(|| "?".into());
        let list = result.and_then(|list| match (&pointer.territory, &list.territory) {
            // A list served at one territory's address that says it is another's.
            (Some(want), Some(got)) if !want.eq_ignore_ascii_case(got) => {
                Err(anyhow::anyhow!("the list says its territory is {got}, the LOTL points to it for {want}"))
            }
            _ => Ok(list),
        });
        match list {
            Ok(list) => {
                let certs = list.anchors(&[]).certificates().to_vec();
                lists.push((i, (format!("trusted list {territory} ({}) through the EU LOTL", pointer.location), certs)));
            }
            Err(e) => eprintln!(
                "warning: the trusted list of {territory} ({}) is refused, its services are not trusted: {e:#} (the LOTL gives {} \
                 certificate(s) for it)",
                pointer.location,
                pointer.certificates.len()
            ),
        }
    }
    lists.sort_by_key(|(i, _)| *i);
    Ok(lists.into_iter().map(|(_, l)| l).collect())
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
        for c in &r.checks {
            let (outcome, paint) = match c.outcome {
                Outcome::Passed => ("passed", "\x1b[32m"),
                Outcome::Failed => ("FAILED", "\x1b[31m"),
                Outcome::Indeterminate => ("INDETERMINATE", "\x1b[33m"),
                Outcome::NotChecked => ("not checked", ""),
            };
            let paint = if color { paint } else { "" };
            let detail = if c.detail.is_empty() { String::new() } else { format!(" — {}", c.detail) };
            println!("  check:         {:<20} {paint}{outcome}{reset}{detail}", c.name.replace('_', " "));
        }
        for e in &r.errors {
            println!("  why:           {e}");
        }
    }
}
