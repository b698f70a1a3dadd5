//! What the workspace's tests share, so that no test crate keeps its own copy: a one-page PDF
//! ([`pdf`]), the openssl test PKI ([`pki`]), SoftHSM2 tokens ([`hsm`]), and the real `cloudsign`
//! binary started on a real socket with users and credentials made through `cloudsign admin`
//! ([`server`]).
//!
//! A dev-dependency only (`publish = false`). It depends on none of the workspace's crates, so
//! any of them can use it in its own tests; the binary under test is passed in by path
//! (`env!("CARGO_BIN_EXE_cloudsign")` exists in the cli's integration tests only).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::process::Command;

use base64::Engine as _;

pub mod hsm;
pub mod pdf;
pub mod pki;
pub mod server;

/// Run a command; panic with its output if it fails. Returns its standard output.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Standard base64, padded (what CSC responses carry).
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard base64 decoded; panics on anything else (a test asserting on a response).
pub fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text).expect("standard base64 in a response")
}

/// Now, Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A name no other test process or test uses: `prefix`, the process id and 64 random bits.
pub fn unique(prefix: &str) -> String {
    let n: u64 =
        aws_lc_rs::rand::generate::<[u8; 8]>(&aws_lc_rs::rand::SystemRandom::new()).map(|r| u64::from_le_bytes(r.expose())).unwrap_or(0);
    format!("{prefix}{}_{n:016x}", std::process::id())
}
