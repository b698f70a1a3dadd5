//! Delivery of online OTPs (CSC v2 §11.8 `credentials/getChallenge`). The sender is
//! pluggable; the default appends to an outbox file that an operator's SMS/e-mail gateway
//! (or a test) reads.

use std::io::Write as _;
use std::path::PathBuf;

/// Delivers a one-time code to the credential's owner out of band.
pub trait OtpSender: Send + Sync {
    /// Deliver `code` for `credential_id` to `user`.
    fn send(&self, user: &str, credential_id: &str, code: &str) -> std::io::Result<()>;
}

/// Appends `user credentialID code` lines to a file created with mode 0600.
pub struct OutboxSender {
    path: PathBuf,
}

impl OutboxSender {
    /// An outbox at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl OtpSender for OutboxSender {
    fn send(&self, user: &str, credential_id: &str, code: &str) -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut f = options.open(&self.path)?;
        writeln!(f, "{user} {credential_id} {code}")
    }
}
