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
    /// Configuration file (TOML). Also CLOUDSIGN_CONFIG.
    #[arg(long, global = true, env = "CLOUDSIGN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, key-encryption key). Also CLOUDSIGN_DATA_DIR.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://... Also CLOUDSIGN_DATABASE_URL.
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
    /// Administer users, credentials and the CA on the service's store (works while it runs).
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Measure raw signing rate against signHash throughput over HTTP.
    Bench(bench::BenchArgs),
    /// Sign a local file through a CSC service (the file stays here; only a digest is sent).
    Sign(sign::SignArgs),
    /// Validate the signatures of a PDF or a CMS signature (exit code 0 only when all pass).
    Verify(verify::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
            let service = open_service(&settings).await?;
            let result = admin::run(&service, command).await;
            service.close().await;
            result
        }
        Command::Bench(args) => bench::run(args, Settings::load(cli.config.as_deref(), flags)?).await,
        Command::Sign(args) => sign::run(args).await,
        Command::Verify(args) => {
            let code = verify::run(args).await?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
    }
}

/// Open the store and the service on the configured data directory and database.
pub async fn open_service(settings: &Settings) -> anyhow::Result<Arc<Service>> {
    settings.ensure_data_dir()?;
    let kek = settings.key_encryption_key()?;
    let url = settings.database_url();
    let store = Store::connect_with(&url, settings.store_options())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", redact_url(&url)))?;
    if let Some(b) = settings.ca_backend.as_deref() {
        anyhow::ensure!(cloudsign_domain::KeyStorage::parse(b).is_some(), "ca_backend is software or pkcs11, not {b:?}");
    }
    let mut cfg = settings.domain();
    cfg.pkcs11 = settings.pkcs11()?;
    let service = Service::open(cfg, store, &kek).await.map_err(|e| match e {
        cloudsign_domain::Error::Internal(m) => anyhow::anyhow!("{m}"),
        other => anyhow::anyhow!("{other}"),
    })?;
    Ok(Arc::new(service))
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
    // Scripts and tests wait for this line.
    println!("cloudsign listening on {}", bound.url());
    std::io::stdout().flush()?;
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
