//! The local-directory backend: one file per key under a root directory (mode 0700, files 0600).
//!
//! A put writes a temporary file `.tmp-<random>` next to the target, fsyncs it, renames it over
//! the key and fsyncs the directory (rename(2) is atomic within a file system, so a reader or a
//! crash sees the old document or the new one, never a mix). Each file starts with a fixed
//! 72-byte header `CSDOC1 <SHA-256 in hex>\n` and then the document's bytes: the digest travels
//! with the document in the one rename (a digest in a second file would leave a window where an
//! interrupted put pairs the old document with the new digest), and a read can tell a damaged file.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::{Body, Document, DocumentType, Listed, Result, SNIFF_LEN, StorageError, Stored, check_type, sha256};

/// Length of the header before a document's bytes: `CSDOC1 `, 64 hex digits, `\n`.
pub const HEADER_LEN: usize = 72;
const MAGIC: &[u8] = b"CSDOC1 ";

fn header(sha: &[u8; 32]) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(hex::encode(sha).as_bytes());
    h.push(b'\n');
    h
}

fn parse_header(file: &[u8]) -> Option<[u8; 32]> {
    let h = file.get(..HEADER_LEN)?;
    if !h.starts_with(MAGIC) || h[HEADER_LEN - 1] != b'\n' {
        return None;
    }
    let mut sha = [0u8; 32];
    hex::decode_to_slice(&h[MAGIC.len()..HEADER_LEN - 1], &mut sha).ok()?;
    Some(sha)
}

pub struct LocalStore {
    root: PathBuf,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError::Unavailable(format!("{what} {}: {e}", path.display()))
}

/// Removes a temporary file unless disarmed (an error or a cancelled future leaves nothing).
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 12];
    // The name only has to be unique among concurrent writers; a failing RNG still gives a
    // name that `create_new` refuses to reuse.
    let _ = aws_lc_rs::rand::fill(&mut b);
    hex::encode(b)
}

impl LocalStore {
    pub async fn open(root: PathBuf) -> Result<LocalStore> {
        let mut b = tokio::fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(&root).await.map_err(|e| io_err("cannot create the document directory", &root, e))?;
        let meta = tokio::fs::metadata(&root).await.map_err(|e| io_err("cannot read", &root, e))?;
        if !meta.is_dir() {
            return Err(StorageError::Invalid(format!("{} is not a directory", root.display())));
        }
        Ok(LocalStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        // `validate_key` has checked every segment: no `..`, no absolute path, no hidden name.
        self.root.join(key)
    }

    async fn ensure_parent(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            let mut b = tokio::fs::DirBuilder::new();
            b.recursive(true).mode(0o700);
            b.create(parent).await.map_err(|e| io_err("cannot create", parent, e))?;
        }
        Ok(())
    }

    async fn commit(mut guard: TempGuard, to: &Path) -> Result<()> {
        let tmp = guard.0.clone().expect("armed guard");
        tokio::fs::rename(&tmp, to).await.map_err(|e| io_err("cannot rename into", to, e))?;
        guard.0 = None;
        Ok(())
    }

    async fn sync_dir(dir: &Path) -> Result<()> {
        // The rename is durable only once the directory entry is (fsync(2) on the directory).
        let d = tokio::fs::File::open(dir).await.map_err(|e| io_err("cannot open", dir, e))?;
        d.sync_all().await.map_err(|e| io_err("cannot sync", dir, e))
    }

    pub async fn put(&self, key: &str, body: Body<'_>, claimed: DocumentType, limit: u64) -> Result<Stored> {
        // Bytes in memory are checked before anything touches the disk.
        if let Body::Bytes(b) = &body {
            if b.len() as u64 > limit {
                return Err(StorageError::TooLarge { limit });
            }
            check_type(b, claimed)?;
        }
        let path = self.path(key);
        self.ensure_parent(&path).await?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let tmp = dir.join(format!(".tmp-{}", random_suffix()));
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .await
            .map_err(|e| io_err("cannot create", &tmp, e))?;
        let guard = TempGuard(Some(tmp.clone()));
        // The header's digest is filled in once the body is read (below).
        f.write_all(&header(&[0u8; 32])).await.map_err(|e| io_err("cannot write", &tmp, e))?;
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut head: Vec<u8> = Vec::new();
        let mut size: u64 = 0;
        match body {
            Body::Bytes(b) => {
                ctx.update(b);
                size = b.len() as u64;
                f.write_all(b).await.map_err(|e| io_err("cannot write", &tmp, e))?;
            }
            Body::Reader(mut r) => {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = r.read(&mut buf).await.map_err(|e| StorageError::Unavailable(format!("reading the upload failed: {e}")))?;
                    if n == 0 {
                        break;
                    }
                    size += n as u64;
                    if size > limit {
                        // The guard removes the partial temporary file.
                        return Err(StorageError::TooLarge { limit });
                    }
                    if head.len() < SNIFF_LEN {
                        let take = (SNIFF_LEN - head.len()).min(n);
                        head.extend_from_slice(&buf[..take]);
                    }
                    ctx.update(&buf[..n]);
                    f.write_all(&buf[..n]).await.map_err(|e| io_err("cannot write", &tmp, e))?;
                }
                check_type(&head, claimed)?;
            }
        }
        let mut sha = [0u8; 32];
        sha.copy_from_slice(ctx.finish().as_ref());
        f.seek(std::io::SeekFrom::Start(0)).await.map_err(|e| io_err("cannot write", &tmp, e))?;
        f.write_all(&header(&sha)).await.map_err(|e| io_err("cannot write", &tmp, e))?;
        f.sync_all().await.map_err(|e| io_err("cannot sync", &tmp, e))?;
        drop(f);
        Self::commit(guard, &path).await?;
        Self::sync_dir(&dir).await?;
        Ok(Stored { key: key.to_string(), size, sha256: sha })
    }

    async fn read_bounded(&self, key: &str, path: &Path, limit: u64) -> Result<Vec<u8>> {
        let f = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(StorageError::NotFound { key: key.to_string() }),
            Err(e) => return Err(io_err("cannot open", path, e)),
        };
        let meta = f.metadata().await.map_err(|e| io_err("cannot read", path, e))?;
        if !meta.is_file() {
            return Err(StorageError::NotFound { key: key.to_string() });
        }
        let mut out = Vec::new();
        f.take(limit.saturating_add(1 + HEADER_LEN as u64)).read_to_end(&mut out).await.map_err(|e| io_err("cannot read", path, e))?;
        if out.len() as u64 > limit + HEADER_LEN as u64 {
            return Err(StorageError::TooLarge { limit });
        }
        Ok(out)
    }

    pub async fn get(&self, key: &str, limit: u64) -> Result<Document> {
        let path = self.path(key);
        let mut bytes = self.read_bounded(key, &path, limit).await?;
        let recorded = parse_header(&bytes).ok_or_else(|| StorageError::Integrity { key: key.to_string() })?;
        bytes.drain(..HEADER_LEN);
        let sha = sha256(&bytes);
        if recorded != sha {
            return Err(StorageError::Integrity { key: key.to_string() });
        }
        Ok(Document { stored: Stored { key: key.to_string(), size: bytes.len() as u64, sha256: sha }, bytes })
    }

    pub async fn head(&self, key: &str, limit: u64) -> Result<Stored> {
        // The size and digest must describe the bytes on disk, so the file is hashed (documents
        // are bounded by `max_bytes`); `get` is the same work plus handing out the bytes.
        Ok(self.get(key, limit).await?.stored)
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot remove", &path, e)),
        }
        if let Some(dir) = path.parent() {
            Self::sync_dir(dir).await.or_else(|e| match e {
                // The directory itself may never have existed.
                StorageError::Unavailable(_) if !dir.exists() => Ok(()),
                e => Err(e),
            })?;
        }
        Ok(())
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let mut rd = match tokio::fs::read_dir(&dir).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("cannot list", &dir, e)),
            };
            while let Some(entry) = rd.next_entry().await.map_err(|e| io_err("cannot list", &dir, e))? {
                let name = entry.file_name().to_string_lossy().into_owned();
                // Temporary and digest files start with '.', which no key segment does.
                if name.starts_with('.') {
                    continue;
                }
                let key = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
                let ft = entry.file_type().await.map_err(|e| io_err("cannot list", &dir, e))?;
                if ft.is_dir() {
                    // Descend only where the prefix can still match.
                    let as_dir = format!("{key}/");
                    if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                        stack.push((entry.path(), key));
                    }
                } else if ft.is_file() && key.starts_with(prefix) && crate::validate_key(&key).is_ok() {
                    let meta = entry.metadata().await.map_err(|e| io_err("cannot read", &entry.path(), e))?;
                    out.push(Listed { key, size: meta.len().saturating_sub(HEADER_LEN as u64) });
                }
            }
        }
        Ok(out)
    }
}

/// The mode bits of a path (for tests and diagnostics).
pub fn mode_of(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}
