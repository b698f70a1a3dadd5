//! The operating system's CA store as trust anchors (`cloudsign verify --trust-system`).
//!
//! Where it is looked for, as OpenSSL and Go's `crypto/x509` look for it:
//! - `SSL_CERT_FILE` (a PEM bundle) and `SSL_CERT_DIR` (directories of PEM files, separated by
//!   `:`), when either is set: those and nothing else (OpenSSL's `X509_get_default_cert_file_env`
//!   and `X509_get_default_cert_dir_env`);
//! - otherwise the first bundle of [`BUNDLES`] that exists;
//! - and when none does, every file of the directories of [`DIRECTORIES`].
//!
//! The bundle is what the system trusts for TLS: its roots are web-server CAs, not a list of
//! qualified signature services. A certificate in it that does not parse is skipped.

use std::path::{Path, PathBuf};

use crate::x509::{Certificate, pem_blocks};

/// The system bundles, first found wins: Debian, Ubuntu, Gentoo, Arch; Fedora and RHEL 6;
/// openSUSE; OpenELEC; CentOS and RHEL 7+; Alpine, OpenBSD, macOS (the list of Go's
/// `crypto/x509/root_linux.go`), and FreeBSD.
pub const BUNDLES: [&str; 7] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/ssl/cert.pem",
];

/// The directories of separate PEM files, when no bundle exists.
pub const DIRECTORIES: [&str; 2] = ["/etc/ssl/certs", "/etc/pki/tls/certs"];

/// The largest file read (a full bundle is about 200 KB).
const MAX_FILE: u64 = 16 << 20;

/// The certificates of the system's CA store and the files they came from. An error when no
/// store is found, or when `SSL_CERT_FILE` names a file that cannot be read.
pub fn load() -> Result<(Vec<Certificate>, Vec<PathBuf>), String> {
    let file = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()).map(PathBuf::from);
    let dirs: Option<Vec<PathBuf>> =
        std::env::var_os("SSL_CERT_DIR").filter(|v| !v.is_empty()).map(|v| std::env::split_paths(&v).collect());
    let (files, dirs): (Vec<PathBuf>, Vec<PathBuf>) = if file.is_some() || dirs.is_some() {
        if let Some(f) = &file {
            std::fs::metadata(f).map_err(|e| format!("SSL_CERT_FILE {}: {e}", f.display()))?;
        }
        (file.into_iter().collect(), dirs.unwrap_or_default())
    } else {
        match BUNDLES.iter().map(PathBuf::from).find(|p| p.is_file()) {
            Some(bundle) => (vec![bundle], Vec::new()),
            None => (Vec::new(), DIRECTORIES.iter().map(PathBuf::from).collect()),
        }
    };
    let mut sources = files;
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        names.sort();
        sources.extend(names);
    }
    let mut certs = Vec::new();
    let mut used = Vec::new();
    for path in sources {
        let found = read_certificates(&path);
        if !found.is_empty() {
            certs.extend(found);
            used.push(path);
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "no system CA store found: looked for {} and in {} (set SSL_CERT_FILE or SSL_CERT_DIR)",
            BUNDLES.join(", "),
            DIRECTORIES.join(", ")
        ));
    }
    Ok((certs, used))
}

/// The certificates of a PEM file (none when it cannot be read or holds none).
fn read_certificates(path: &Path) -> Vec<Certificate> {
    if std::fs::metadata(path).map(|m| m.len() > MAX_FILE).unwrap_or(true) {
        return Vec::new();
    }
    let Ok(text) = std::fs::read(path) else { return Vec::new() };
    let text = String::from_utf8_lossy(&text);
    // One bad block must not hide the others: parse block by block.
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    const END: &str = "-----END CERTIFICATE-----";
    while let Some(stop) = rest.find(END) {
        let block = &rest[..stop + END.len()];
        if let Ok(ders) = pem_blocks(block, "CERTIFICATE") {
            out.extend(ders.iter().filter_map(|der| Certificate::parse(der).ok()));
        }
        rest = &rest[stop + END.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_block_does_not_hide_the_others() {
        let dir = std::env::temp_dir().join(format!("cloudsign-system-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("k.pem");
        let cert = dir.join("c.pem");
        let ok = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=bundle", "-days", "1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(ok.status.success());
        let good = std::fs::read_to_string(&cert).unwrap();
        let bundle = dir.join("bundle.pem");
        let bad = "# junk\n-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n";
        std::fs::write(&bundle, format!("{bad}{good}{bad}{good}")).unwrap();
        let certs = read_certificates(&bundle);
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].subject_text(), "CN=bundle");
        assert!(read_certificates(&dir.join("missing.pem")).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
