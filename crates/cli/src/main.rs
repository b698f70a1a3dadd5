//! The `cloudsign` binary: argument parsing and output only; everything it does is a library
//! call (`cloudsign-server`, `cloudsign-domain`, `cloudsign-client`).

/// mimalloc instead of the system allocator: a signHash allocates a few hundred small
/// buffers (JSON, base64, hex, the audit record), and glibc's malloc/free were ~7 % of the
/// server's CPU at 100 hashes per request (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod bench;
mod config;
mod device;
mod sign;
mod verify;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use cloudsign_domain::{Service, Store};
use config::Settings;

#[derive(Parser)]
#[command(name = "cloudsign", version, about = "Remote signature service (Cloud Signature Consortium API)")]
struct Cli {
    /// The service's configuration file (TOML), for serve, admin and bench; sign and verify
    /// do not read it.
    #[arg(long, global = true, env = "CLOUDSIGN_CONFIG")]
    config: Option<PathBuf>,
    /// The service's data directory (database, key-encryption key), for serve and admin. Also
    /// CLOUDSIGN_DATA_DIR.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// The service's database, for serve, admin and bench: sqlite://PATH or postgres://...
    /// Also CLOUDSIGN_DATABASE_URL.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080). Also CLOUDSIGN_LISTEN.
        #[arg(long)]
        listen: Option<String>,
        /// TLS certificate chain (PEM). Also CLOUDSIGN_TLS_CERT.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM). Also CLOUDSIGN_TLS_KEY.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Administer users, credentials, clients, the CA and the audit log on the service's store
    /// (works while it runs; `admin init` creates the store).
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Measure raw signing rate against signHash throughput over HTTP.
    Bench(bench::BenchArgs),
    /// Sign local files through a CSC service (the files stay here; only digests are sent).
    Sign(sign::SignArgs),
    /// Validate the signatures of a PDF, XML (XAdES), JWS (JAdES) or CMS (CAdES) file (exit
    /// code 0 only when all pass).
    Verify(verify::VerifyArgs),
    /// The bridge agent for a smart card on this computer (PKCS#11): pair it with a service,
    /// then stay connected and sign the requests the signer approves, with the card PIN each time.
    Device(device::DeviceArgs),
}

fn main() -> ExitCode {
    // Help and usage errors are printed by clap, which ignores a closed stdout.
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        default_sigpipe();
    }
    let default_level = if matches!(cli.command, Command::Serve { .. }) { "info" } else { "warn" };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CLOUDSIGN_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // Where SIGPIPE does not end the process (not Unix, or `serve`), a closed stdout is
        // the reader's choice, not a failure: stop quietly, as `head` expects.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Output to a closed pipe (`cloudsign verify FILE | head -1`) ends the process as it ends
/// `cat` or `grep`: killed by SIGPIPE, with nothing on stderr (exit status 141 in the shell).
/// Rust ignores SIGPIPE by default, so a write to a closed pipe fails with EPIPE instead and
/// `println!` panics on it (exit 101, "failed printing to stdout"). Every command but `serve`
/// gets the default action back before it prints anything; `serve` keeps SIGPIPE ignored, so
/// that it never dies because whoever read its stdout or stderr went away. Sockets are not
/// affected either way: std and mio send with MSG_NOSIGNAL (Linux) or SO_NOSIGPIPE (macOS),
/// so a peer that hangs up is an error, never a signal.
#[cfg(unix)]
fn default_sigpipe() {
    // POSIX signal(2); libc is linked anyway, a binding avoids a dependency for one call.
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    // SIGPIPE is 13 on Linux, macOS and the BSDs; SIG_DFL is 0.
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: called once at start, before any other thread exists (the tokio runtime is
    // built afterwards), and it installs the default action, not a handler.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

/// An error that is a write to a closed pipe (`is_broken_pipe` in `main`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut flags = Settings { data_dir: cli.data_dir, database_url: cli.database_url, ..Default::default() };
    match cli.command {
        Command::Serve { listen, tls_cert, tls_key } => {
            flags.listen = listen;
            flags.tls_cert = tls_cert;
            flags.tls_key = tls_key;
            let settings = Settings::load(cli.config.as_deref(), flags)?;
            serve(settings).await
        }
        Command::Admin { command } => {
            let settings = Settings::load(cli.config.as_deref(), flags)?;
            // Only `admin init` (and `serve`) create a store: an admin command run from the
            // wrong directory must not make a second store with a new CA and report on it.
            let init = matches!(command, admin::AdminCommand::Init);
            let (service, created) = open_service_with(&settings, init).await?;
            if init {
                admin::report_init(&service, created, &settings.store_location());
            }
            let result = admin::run(&service, command).await;
            service.close().await;
            result
        }
        Command::Bench(args) => bench::run(args, Settings::load(cli.config.as_deref(), flags)?).await,
        Command::Sign(args) => sign::run(args).await,
        Command::Device(args) => device::run(args).await,
        Command::Verify(args) => {
            let code = verify::run(args).await?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
    }
}

/// Open the store and the service on the configured data directory and database, creating
/// them (data directory, key-encryption key, schema, CA) when they do not exist yet.
pub async fn open_service(settings: &Settings) -> anyhow::Result<Arc<Service>> {
    Ok(open_service_with(settings, true).await?.0)
}

/// [`open_service`]; with `create` false, a missing store is refused before anything is
/// created: no data directory, no key file, no SQLite file, no CA. Also says whether this call
/// created the store's CA.
pub async fn open_service_with(settings: &Settings, create: bool) -> anyhow::Result<(Arc<Service>, bool)> {
    let url = settings.database_url();
    let missing = || {
        anyhow::anyhow!(
            "there is no cloudsign store at {}: create one with `cloudsign admin init` (or `cloudsign serve`, which \
             creates it on first start), or point --data-dir, --database-url or --config at the existing one",
            settings.store_location()
        )
    };
    if create {
        settings.ensure_data_dir()?;
    } else {
        // Looked at before connecting: connecting creates the file and migrates the schema.
        let held = Store::holds_ca(&url, settings.store_options())
            .await
            .map_err(|e| anyhow::anyhow!("cannot read database {}: {e}", redact_url(&url)))?;
        if !held {
            return Err(missing());
        }
    }
    let store = Store::connect_with(&url, settings.store_options())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", redact_url(&url)))?;
    // A store is a database with its CA: what `Service::open` creates on a new one.
    let had_ca = store.ca("issuing").await.map_err(|e| anyhow::anyhow!("cannot read database {}: {e}", redact_url(&url)))?.is_some();
    settings.ensure_data_dir()?;
    let kek = settings.key_encryption_key()?;
    if let Some(b) = settings.ca_backend.as_deref() {
        anyhow::ensure!(cloudsign_domain::KeyStorage::parse(b).is_some(), "ca_backend is software or pkcs11, not {b:?}");
    }
    let mut cfg = settings.domain();
    cfg.pkcs11 = settings.pkcs11()?;
    let service = Service::open(cfg, store, &kek).await.map_err(|e| match e {
        cloudsign_domain::Error::Internal(m) => anyhow::anyhow!("{m}"),
        other => anyhow::anyhow!("{other}"),
    })?;
    Ok((Arc::new(service), !had_ca))
}

/// Drop a password from a database URL before it reaches a message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme && url[scheme + 3..at].contains(':') => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let service = open_service(&settings).await?;
    if let Some(k) = settings.renewal_key.as_deref() {
        anyhow::ensure!(k == "same" || k == "new", "renewal_key is same or new, not {k:?}");
    }
    let cfg = cloudsign_server::ServerConfig {
        body_limit: settings.body_limit.unwrap_or(1024 * 1024),
        tls: match (&settings.tls_cert, &settings.tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => anyhow::bail!("TLS needs both tls_cert and tls_key"),
        },
        limits: settings.limits()?,
        log_requests: settings.log_requests()?,
        metrics_listen: settings.metrics_listen.clone(),
    };
    match service.check_hsm().await {
        Ok(true) => tracing::info!("PKCS#11 token ready"),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "PKCS#11 token unavailable: HSM-backed credentials will answer temporarily_unavailable until it is")
        }
    }
    if cfg.metrics_listen.is_some() {
        // `cloudsign_hsm_up`: the backends' check (module loaded, logged in; no new login after
        // a refused PIN) now and every 30 s; a failed operation in between sets it to 0 at once.
        let probe = service.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                every.tick().await;
                let up = match probe.check_hsm().await {
                    Ok(true) => Some(true),
                    Ok(false) => None,
                    Err(_) => Some(false),
                };
                cloudsign_domain::metrics::METRICS.hsm_checked(up);
            }
        });
    }
    let bound = cloudsign_server::bind(&settings.listen(), &cfg).await?;
    let base_url = service.config().public_url.clone().unwrap_or_else(|| bound.url());
    let app = cloudsign_server::router(service.clone(), &cfg, &base_url);
    let janitor = service.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            match janitor.purge_expired().await {
                Ok(n) => tracing::debug!(rows = n, "purged expired tokens and SADs"),
                Err(e) => tracing::warn!(error = %e, "purging expired tokens and SADs failed"),
            }
            // Certificates close to their end are renewed without the user noticing.
            match janitor.renew_due().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(renewed = n, "renewed certificates"),
                Err(e) => tracing::warn!(error = %e, "certificate renewal failed"),
            }
        }
    });
    // The audit chain's signed checkpoints: every `audit_checkpoint_seconds` (0: only at
    // shutdown), so that a rewrite of the log is caught back to at most that long ago.
    let every = settings.audit_checkpoint_seconds.unwrap_or(300);
    if every > 0 {
        let notary = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(every));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = notary.audit_checkpoint().await {
                    tracing::warn!(error = %e, "audit checkpoint failed");
                }
            }
        });
    }
    // Scripts and tests wait for this line. Nobody reading it (a closed stdout) is no reason
    // to stop serving.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "cloudsign listening on {}", bound.url()).and_then(|()| stdout.flush());
    drop(stdout);
    tracing::info!(url = %bound.url(), database = %redact_url(&settings.database_url()), "serving CSC API v2 at /csc/v2/");
    if let Some(at) = bound.metrics_addr {
        tracing::info!(url = %format!("http://{at}/metrics"), "serving Prometheus metrics");
    }
    cloudsign_server::serve(bound, app).await?;
    if let Err(e) = service.audit_checkpoint().await {
        tracing::warn!(error = %e, "audit checkpoint at shutdown failed");
    }
    service.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_their_password() {
        assert_eq!(super::redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(super::redact_url("postgres://root@h/db"), "postgres://root@h/db");
    }
}
