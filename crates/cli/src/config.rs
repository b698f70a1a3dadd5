//! Configuration: built-in defaults, then a TOML file, then `CLOUDSIGN_*` environment
//! variables, then command-line flags; each layer overrides the one before. Every key of the
//! file has an environment variable of the same name, upper-cased, with the `CLOUDSIGN_`
//! prefix (`sad_ttl` ↔ `CLOUDSIGN_SAD_TTL`). See docs/configuration.md.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use cloudsign_domain::Config;
use serde::Deserialize;

/// Every setting; `None` means "not set at this layer".
#[derive(Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub store_timeout_ms: Option<u64>,
    pub database_max_connections: Option<u32>,
    pub kek: Option<String>,
    pub kek_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub body_limit: Option<usize>,
    pub header_read_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub body_read_timeout: Option<u64>,
    pub max_connections: Option<usize>,
    pub rate_limit: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub trusted_proxies: Option<String>,
    pub log_requests: Option<String>,
    pub metrics_listen: Option<String>,
    pub service_name: Option<String>,
    pub region: Option<String>,
    pub lang: Option<String>,
    pub description: Option<String>,
    pub organization: Option<String>,
    pub country: Option<String>,
    pub access_token_ttl: Option<u64>,
    pub refresh_token_ttl: Option<u64>,
    pub sad_ttl: Option<u64>,
    pub otp_ttl: Option<u64>,
    pub max_auth_attempts: Option<i64>,
    pub cert_validity_days: Option<u32>,
    pub key_cache_seconds: Option<u64>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub otp_outbox: Option<PathBuf>,
    pub tsa_enabled: Option<bool>,
    pub tsa_policy: Option<String>,
    pub public_url: Option<String>,
    pub oauth_code_ttl: Option<u64>,
    pub oauth_flow_ttl: Option<u64>,
    /// `[asynchronous]`: asynchronous signing (see `cloudsign_domain::asynchronous`).
    pub asynchronous: Option<cloudsign_domain::asynchronous::AsyncConfig>,
    /// `[on_demand]`: on-demand credentials (see `cloudsign_domain::ondemand`).
    pub on_demand: Option<cloudsign_domain::ondemand::OnDemandConfig>,
    /// `[approval]`: out-of-band credential authorization (see `cloudsign_domain::approval`).
    pub approval: Option<cloudsign_domain::approval::ApprovalConfig>,
    /// `[device]`: the signer's own devices (see `cloudsign_domain::device`).
    pub device: Option<cloudsign_domain::device::DeviceConfig>,
    pub pkcs11_module: Option<PathBuf>,
    pub pkcs11_token: Option<String>,
    pub pkcs11_pin: Option<String>,
    pub pkcs11_pin_file: Option<PathBuf>,
    pub renew_before_days: Option<u32>,
    pub renewal_key: Option<String>,
    pub ca_backend: Option<String>,
    pub audit_checkpoint_seconds: Option<u64>,
}

/// The keys, for the environment layer.
const KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "database_url",
    "store_timeout_ms",
    "database_max_connections",
    "kek",
    "kek_file",
    "tls_cert",
    "tls_key",
    "body_limit",
    "header_read_timeout",
    "idle_timeout",
    "body_read_timeout",
    "max_connections",
    "rate_limit",
    "rate_limit_burst",
    "trusted_proxies",
    "log_requests",
    "metrics_listen",
    "service_name",
    "region",
    "lang",
    "description",
    "organization",
    "country",
    "access_token_ttl",
    "refresh_token_ttl",
    "sad_ttl",
    "otp_ttl",
    "max_auth_attempts",
    "cert_validity_days",
    "key_cache_seconds",
    "argon2_memory_kib",
    "argon2_iterations",
    "otp_outbox",
    "tsa_enabled",
    "tsa_policy",
    "public_url",
    "oauth_code_ttl",
    "oauth_flow_ttl",
    "pkcs11_module",
    "pkcs11_token",
    "pkcs11_pin",
    "pkcs11_pin_file",
    "renew_before_days",
    "renewal_key",
    "ca_backend",
    "audit_checkpoint_seconds",
];

/// The settings that are numbers (every other one is text, even if it looks like a number).
const NUMERIC: &[&str] = &[
    "store_timeout_ms",
    "database_max_connections",
    "body_limit",
    "header_read_timeout",
    "idle_timeout",
    "body_read_timeout",
    "max_connections",
    "rate_limit",
    "rate_limit_burst",
    "access_token_ttl",
    "refresh_token_ttl",
    "sad_ttl",
    "otp_ttl",
    "max_auth_attempts",
    "cert_validity_days",
    "key_cache_seconds",
    "argon2_memory_kib",
    "argon2_iterations",
    "oauth_code_ttl",
    "oauth_flow_ttl",
    "renew_before_days",
    "audit_checkpoint_seconds",
];

impl Settings {
    /// Read a TOML file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read configuration file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid configuration file {}", path.display()))
    }

    /// Read the `CLOUDSIGN_*` environment variables.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut table = toml::Table::new();
        for key in KEYS {
            let var = format!("CLOUDSIGN_{}", key.to_ascii_uppercase());
            if let Ok(value) = std::env::var(&var) {
                let v = match (value.parse::<i64>(), value.as_str()) {
                    (Ok(n), _) if NUMERIC.contains(key) => toml::Value::Integer(n),
                    (_, "true" | "1" | "yes") if *key == "tsa_enabled" => toml::Value::Boolean(true),
                    (_, "false" | "0" | "no") if *key == "tsa_enabled" => toml::Value::Boolean(false),
                    _ => toml::Value::String(value),
                };
                table.insert((*key).to_string(), v);
            }
        }
        toml::Value::Table(table).try_into().context("invalid CLOUDSIGN_* environment variable")
    }

    /// `other` wins wherever it is set.
    pub fn overlay(self, other: Settings) -> Settings {
        macro_rules! pick {
            ($($f:ident),*) => { Settings { $($f: other.$f.or(self.$f)),* } };
        }
        pick!(
            data_dir,
            listen,
            database_url,
            store_timeout_ms,
            database_max_connections,
            kek,
            kek_file,
            tls_cert,
            tls_key,
            body_limit,
            header_read_timeout,
            idle_timeout,
            body_read_timeout,
            max_connections,
            rate_limit,
            rate_limit_burst,
            trusted_proxies,
            log_requests,
            metrics_listen,
            service_name,
            region,
            lang,
            description,
            organization,
            country,
            access_token_ttl,
            refresh_token_ttl,
            sad_ttl,
            otp_ttl,
            max_auth_attempts,
            cert_validity_days,
            key_cache_seconds,
            argon2_memory_kib,
            argon2_iterations,
            otp_outbox,
            tsa_enabled,
            tsa_policy,
            public_url,
            oauth_code_ttl,
            oauth_flow_ttl,
            asynchronous,
            on_demand,
            approval,
            device,
            pkcs11_module,
            pkcs11_token,
            pkcs11_pin,
            pkcs11_pin_file,
            renew_before_days,
            renewal_key,
            ca_backend,
            audit_checkpoint_seconds
        )
    }

    /// Defaults < file < environment < flags.
    pub fn load(config_file: Option<&Path>, flags: Settings) -> anyhow::Result<Settings> {
        let file = match config_file {
            Some(p) => Settings::from_file(p)?,
            None => Settings::default(),
        };
        Ok(file.overlay(Settings::from_env()?).overlay(flags))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("./cloudsign-data"))
    }

    pub fn listen(&self) -> String {
        self.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".into())
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir().join("cloudsign.db").display()),
        }
    }

    /// The SQLite database file, or `None` for PostgreSQL. The URL is read as the store reads
    /// it (`sqlite://PATH`, `sqlite:PATH` or a bare path, options after `?`).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let url = self.database_url();
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            return None;
        }
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(&url);
        Some(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
    }

    /// Where the store is, for messages: the SQLite file (absolute) or the PostgreSQL URL
    /// without its password.
    pub fn store_location(&self) -> String {
        match self.sqlite_path() {
            Some(p) => std::path::absolute(&p).unwrap_or(p).display().to_string(),
            None => crate::redact_url(&self.database_url()),
        }
    }

    /// How long a request waits for the database before it is answered 503 (default 2 s), and
    /// PostgreSQL's pool size (default 16).
    pub fn store_options(&self) -> cloudsign_domain::StoreOptions {
        let d = cloudsign_domain::StoreOptions::default();
        cloudsign_domain::StoreOptions {
            timeout: self.store_timeout_ms.map_or(d.timeout, |ms| std::time::Duration::from_millis(ms.max(1))),
            max_connections: self.database_max_connections.unwrap_or(d.max_connections),
        }
    }

    /// The HTTP limits: defaults from `cloudsign_server::Limits`, `0` turns one off.
    pub fn limits(&self) -> anyhow::Result<cloudsign_server::Limits> {
        let d = cloudsign_server::Limits::default();
        let seconds = |v: Option<u64>, d: Option<std::time::Duration>| match v {
            Some(0) => None,
            Some(s) => Some(std::time::Duration::from_secs(s)),
            None => d,
        };
        let trusted_proxies = match &self.trusted_proxies {
            Some(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    cloudsign_server::IpNet::parse(s).with_context(|| format!("trusted_proxies: {s:?} is not an address or CIDR range"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            None => d.trusted_proxies,
        };
        Ok(cloudsign_server::Limits {
            header_read_timeout: seconds(self.header_read_timeout, d.header_read_timeout),
            idle_timeout: seconds(self.idle_timeout, d.idle_timeout),
            body_read_timeout: seconds(self.body_read_timeout, d.body_read_timeout),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            rate_limit: self.rate_limit.unwrap_or(d.rate_limit),
            rate_limit_burst: self.rate_limit_burst.unwrap_or(d.rate_limit_burst),
            trusted_proxies,
        })
    }

    /// `log_requests`: `off`, `errors` (default) or `all`.
    pub fn log_requests(&self) -> anyhow::Result<cloudsign_server::LogRequests> {
        match &self.log_requests {
            None => Ok(cloudsign_server::LogRequests::Errors),
            Some(v) => cloudsign_server::LogRequests::parse(v).with_context(|| format!("log_requests is off, errors or all, not {v:?}")),
        }
    }

    pub fn domain(&self) -> Config {
        let d = Config::default();
        let mut argon2 = d.argon2;
        if let Some(m) = self.argon2_memory_kib {
            argon2.memory_kib = m;
        }
        if let Some(t) = self.argon2_iterations {
            argon2.iterations = t;
        }
        Config {
            service_name: self.service_name.clone().unwrap_or(d.service_name),
            region: self.region.clone().unwrap_or(d.region),
            lang: self.lang.clone().unwrap_or(d.lang),
            description: self.description.clone().unwrap_or(d.description),
            organization: self.organization.clone().unwrap_or(d.organization),
            country: self.country.clone().or(d.country),
            access_token_ttl: self.access_token_ttl.unwrap_or(d.access_token_ttl),
            refresh_token_ttl: self.refresh_token_ttl.unwrap_or(d.refresh_token_ttl),
            sad_ttl: self.sad_ttl.unwrap_or(d.sad_ttl),
            otp_ttl: self.otp_ttl.unwrap_or(d.otp_ttl),
            max_auth_attempts: self.max_auth_attempts.unwrap_or(d.max_auth_attempts),
            cert_validity_days: self.cert_validity_days.unwrap_or(d.cert_validity_days),
            key_cache_seconds: self.key_cache_seconds.unwrap_or(d.key_cache_seconds),
            argon2,
            otp_outbox: self.otp_outbox.clone().unwrap_or_else(|| self.data_dir().join("otp-outbox.txt")),
            tsa_enabled: self.tsa_enabled.unwrap_or(d.tsa_enabled),
            tsa_policy: self.tsa_policy.clone().unwrap_or(d.tsa_policy),
            public_url: self.public_url.clone().or(d.public_url),
            oauth_code_ttl: self.oauth_code_ttl.unwrap_or(d.oauth_code_ttl),
            oauth_flow_ttl: self.oauth_flow_ttl.unwrap_or(d.oauth_flow_ttl),
            asynchronous: self.asynchronous.clone().unwrap_or(d.asynchronous),
            on_demand: self.on_demand.clone().unwrap_or(d.on_demand),
            approval: self.approval.clone().unwrap_or(d.approval),
            device: self.device.clone().unwrap_or(d.device),
            // Filled by `pkcs11()`, which can fail (PIN file).
            pkcs11: None,
            renew_before_days: self.renew_before_days.unwrap_or(d.renew_before_days),
            renewal_new_key: self.renewal_key.as_deref() == Some("new"),
            // An unknown name is refused by `open_service` before this is used.
            ca_key_backend: self
                .ca_backend
                .as_deref()
                .and_then(cloudsign_domain::KeyStorage::parse)
                .unwrap_or(cloudsign_domain::KeyStorage::Software),
        }
    }

    /// Create the data directory (mode 0700) if needed. It holds the key-encryption key and the
    /// SQLite database (argon2 hashes of PINs and passwords, sealed keys): an existing directory
    /// that others can read or enter is tightened to 0700, and so is any file in it that others
    /// can read (to 0600), with a warning; what cannot be tightened (not ours) is refused.
    pub fn ensure_data_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self.data_dir();
        if dir.exists() {
            #[cfg(unix)]
            tighten(&dir)?;
        } else {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt as _;
                b.mode(0o700);
            }
            b.create(&dir).with_context(|| format!("cannot create data directory {}", dir.display()))?;
        }
        Ok(dir)
    }
}

/// See [`Settings::ensure_data_dir`].
#[cfg(unix)]
fn tighten(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let restrict = |path: &Path, mode: u32| -> anyhow::Result<()> {
        let meta = std::fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        let was = meta.permissions().mode() & 0o777;
        if meta.file_type().is_symlink() || was & 0o077 == 0 {
            return Ok(());
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(was & mode)).with_context(|| {
            format!(
                "{} is open to other users (mode {was:o}) and cannot be restricted to {mode:o}; fix it or use another data_dir",
                path.display()
            )
        })?;
        tracing::warn!(path = %path.display(), was = format!("{was:o}"), now = format!("{:o}", was & mode), "data directory entry was open to other users");
        Ok(())
    };
    if !dir.is_dir() {
        bail!("data directory {} is not a directory", dir.display());
    }
    restrict(dir, 0o700)?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read data directory {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            restrict(&entry.path(), 0o600)?;
        }
    }
    Ok(())
}

impl Settings {
    /// The key-encryption key: `kek` (base64, from the file or `CLOUDSIGN_KEK`) when set, so that
    /// several nodes share it; otherwise the key file, created (mode 0600) on first use.
    /// The PKCS#11 token, when `pkcs11_module` is set: `pkcs11_token` names it, and the user
    /// PIN comes from `pkcs11_pin` or the first line of `pkcs11_pin_file`.
    pub fn pkcs11(&self) -> anyhow::Result<Option<std::sync::Arc<cloudsign_domain::Pkcs11Config>>> {
        let Some(module) = &self.pkcs11_module else { return Ok(None) };
        let token = self.pkcs11_token.clone().context("pkcs11_module is set but pkcs11_token (the token label) is not")?;
        let pin = match (&self.pkcs11_pin, &self.pkcs11_pin_file) {
            (Some(p), _) => zeroize::Zeroizing::new(p.clone()),
            (None, Some(path)) => {
                let text = zeroize::Zeroizing::new(
                    std::fs::read_to_string(path).with_context(|| format!("cannot read pkcs11_pin_file {}", path.display()))?,
                );
                zeroize::Zeroizing::new(text.lines().next().unwrap_or_default().to_string())
            }
            (None, None) => bail!("pkcs11_module is set but neither pkcs11_pin nor pkcs11_pin_file is"),
        };
        Ok(Some(std::sync::Arc::new(cloudsign_domain::Pkcs11Config { module: module.clone(), token, pin })))
    }

    pub fn key_encryption_key(&self) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
        if let Some(text) = &self.kek {
            let key = base64::engine::general_purpose::STANDARD.decode(text.trim()).context("kek is not valid base64")?;
            if key.len() != 32 {
                bail!("kek must be 32 bytes (44 base64 characters)");
            }
            return Ok(zeroize::Zeroizing::new(key));
        }
        let path = self.kek_file.clone().unwrap_or_else(|| self.data_dir().join("kek"));
        match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes = zeroize::Zeroizing::new(bytes);
                if bytes.len() != 32 {
                    bail!("key-encryption key file {} must hold exactly 32 bytes", path.display());
                }
                Ok(bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = zeroize::Zeroizing::new(cloudsign_domain::secrets::random_bytes(32).map_err(|e| anyhow::anyhow!("{e}"))?);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt as _;
                    options.mode(0o600);
                }
                match options.open(&path) {
                    Ok(mut f) => {
                        use std::io::Write as _;
                        f.write_all(&key).with_context(|| format!("cannot write {}", path.display()))?;
                        f.sync_all()?;
                        Ok(key)
                    }
                    // Another process (server or admin command) created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.key_encryption_key(),
                    Err(e) => Err(e).with_context(|| format!("cannot create key-encryption key file {}", path.display())),
                }
            }
            Err(e) => Err(e).with_context(|| format!("cannot read key-encryption key file {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win() {
        let file: Settings = toml::from_str("listen = \"0.0.0.0:1\"\nsad_ttl = 10\n").unwrap();
        let flags = Settings { listen: Some("127.0.0.1:2".into()), ..Default::default() };
        let merged = file.overlay(flags);
        assert_eq!(merged.listen(), "127.0.0.1:2");
        assert_eq!(merged.sad_ttl, Some(10));
        assert!(toml::from_str::<Settings>("no_such_key = 1").is_err(), "typos are reported");
    }

    #[test]
    fn the_approval_table() {
        let d = Settings::default().domain().approval;
        assert_eq!((d.enabled, d.seconds), (false, 300), "off by default, five minutes");
        let s: Settings = toml::from_str("[approval]\nenabled = true\n").unwrap();
        let a = s.domain().approval;
        assert_eq!((a.enabled, a.seconds), (true, 300), "an omitted key keeps its default");
        let s: Settings = toml::from_str("[approval]\nenabled = true\nseconds = 30\n").unwrap();
        assert_eq!(s.domain().approval.seconds, 30);
        assert!(toml::from_str::<Settings>("[approval]\nminutes = 5\n").is_err(), "typos are reported");
    }

    #[test]
    fn the_device_table() {
        let d = Settings::default().domain().device;
        assert!(!d.enabled);
        assert_eq!((d.request_seconds, d.challenge_seconds, d.pairing_minutes, d.poll_hold_seconds), (90, 60, 10, 25));
        assert_eq!((d.ping_seconds, d.offline_after_seconds, d.allow_import), (20, 45, false));
        let s: Settings = toml::from_str("[device]\nenabled = true\npoll_hold_seconds = 5\n").unwrap();
        let d = s.domain().device;
        assert!(d.enabled);
        assert_eq!((d.poll_hold_seconds, d.request_seconds), (5, 90));
        assert!(toml::from_str::<Settings>("[device]\nrequest_minutes = 5\n").is_err(), "typos are reported");
    }

    #[test]
    fn the_sqlite_file_is_read_from_the_url_as_the_store_reads_it() {
        let at = |url: &str| Settings { database_url: Some(url.into()), ..Default::default() }.sqlite_path();
        assert_eq!(at("sqlite:///var/lib/cs/cloudsign.db?mode=rwc"), Some(PathBuf::from("/var/lib/cs/cloudsign.db")));
        assert_eq!(at("sqlite:relative.db"), Some(PathBuf::from("relative.db")));
        assert_eq!(at("/bare/path.db"), Some(PathBuf::from("/bare/path.db")));
        assert_eq!(at("postgres://u:secret@h/db"), None);
        assert_eq!(at("postgresql://h/db"), None);
        let default = Settings { data_dir: Some("/d".into()), ..Default::default() };
        assert_eq!(default.sqlite_path(), Some(PathBuf::from("/d/cloudsign.db")));
        assert_eq!(
            Settings { database_url: Some("postgres://u:secret@h/db".into()), ..Default::default() }.store_location(),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn http_limits() {
        let s: Settings = toml::from_str("idle_timeout = 0\nrate_limit = 5\ntrusted_proxies = \"10.0.0.0/8, 192.0.2.1\"\n").unwrap();
        let l = s.limits().unwrap();
        assert_eq!(l.idle_timeout, None, "0 turns a timeout off");
        assert_eq!(l.header_read_timeout, Some(std::time::Duration::from_secs(10)));
        assert_eq!((l.rate_limit, l.rate_limit_burst, l.max_connections), (5, 200, 4096));
        assert_eq!(l.trusted_proxies.len(), 2);
        let bad = Settings { trusted_proxies: Some("10.0.0.0/99".into()), ..Default::default() };
        assert!(bad.limits().is_err());
        assert_eq!(s.log_requests().unwrap(), cloudsign_server::LogRequests::Errors);
        assert!(Settings { log_requests: Some("loud".into()), ..Default::default() }.log_requests().is_err());
    }
}
