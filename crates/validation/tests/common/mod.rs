//! The test PKI the interop tests share (`cloudsign-test-support`: the fixture PKI plus an
//! ECDSA and an RSA signer and a TSA without revocation sources, so validation needs no
//! revocation data), and the helpers to run the other tools.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use cloudsign_validation::engine::{Context, SignatureReport};
use cloudsign_validation::path::TrustAnchors;

pub use cloudsign_test_support::pki::read;
pub use cloudsign_test_support::{now, run};

/// The PKI directory, built once per test process.
pub fn pki() -> &'static Path {
    cloudsign_test_support::pki::shared()
}

/// The pinned virtualenv's python (`CLOUDSIGN_PYTHON`, as scripts/test.sh sets it; else the
/// repository's `.venv`).
pub fn python(code: &str) -> Vec<u8> {
    let py =
        std::env::var("CLOUDSIGN_PYTHON").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python").to_string());
    run(Command::new(py).arg("-c").arg(code).current_dir(pki()))
}

/// Run `validate` with the shared PKI's `anchor` (a PEM file) as the only trust anchor, now as
/// the validation time, and no revocation data: the signers and the TSA name no revocation
/// sources.
pub fn validate_against(anchor: &str, validate: impl FnOnce(&Context<'_>) -> Vec<SignatureReport>) -> Vec<SignatureReport> {
    let anchors = TrustAnchors::from_pem(&String::from_utf8(read(anchor)).unwrap()).unwrap();
    let ctx = Context {
        anchors: &anchors,
        embedded_certificates: &[],
        embedded_crls: &[],
        embedded_ocsps: &[],
        fetched_crls: &[],
        fetched_ocsps: &[],
        now: now(),
        archive_times: &[],
        max_revocation_age: None,
    };
    validate(&ctx)
}
