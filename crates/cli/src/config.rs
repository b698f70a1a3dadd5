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
    pub kek: Option<String>,
    pub kek_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub body_limit: Option<usize>,
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
    pub pkcs11_module: Option<PathBuf>,
    pub pkcs11_token: Option<String>,
    pub pkcs11_pin: Option<String>,
    pub pkcs11_pin_file: Option<PathBuf>,
    pub renew_before_days: Option<u32>,
    pub renewal_key: Option<String>,
    pub ca_backend: Option<String>,
}

/// The keys, for the environment layer.
const KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "database_url",
    "kek",
    "kek_file",
    "tls_cert",
    "tls_key",
    "body_limit",
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
];

/// The settings that are numbers (every other one is text, even if it looks like a number).
const NUMERIC: &[&str] = &[
    "body_limit",
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
            kek,
            kek_file,
            tls_cert,
            tls_key,
            body_limit,
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
            pkcs11_module,
            pkcs11_token,
            pkcs11_pin,
            pkcs11_pin_file,
            renew_before_days,
            renewal_key,
            ca_backend
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

    /// Create the data directory (mode 0700) if needed.
    pub fn ensure_data_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self.data_dir();
        if !dir.exists() {
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
}
