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

/// Appends `user credentialID code` lines to a file created with mode 0600; an existing file
/// readable by others is tightened to 0600 before a code is written to it (the codes are
/// secrets, like the database the data directory rule protects).
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = f.metadata()?.permissions().mode();
            if mode & 0o077 != 0 {
                f.set_permissions(std::fs::Permissions::from_mode(mode & 0o700 | 0o600))?;
            }
        }
        writeln!(f, "{user} {credential_id} {code}")
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_outbox_is_owner_only_new_or_existing() {
        let dir = std::env::temp_dir().join(format!("cloudsign-outbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let fresh = dir.join("new.txt");
        OutboxSender::new(fresh.clone()).send("alice", "c1", "123456").unwrap();
        assert_eq!(mode(&fresh), 0o600);
        let loose = dir.join("loose.txt");
        std::fs::write(&loose, "").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        OutboxSender::new(loose.clone()).send("alice", "c1", "654321").unwrap();
        assert_eq!(mode(&loose), 0o600, "an outbox left readable by others is tightened");
        assert_eq!(std::fs::read_to_string(&loose).unwrap(), "alice c1 654321\n");
        let _ = std::fs::remove_dir_all(dir);
    }
}
