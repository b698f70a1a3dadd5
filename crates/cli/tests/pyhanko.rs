//! Interoperability with a CSC client nobody here wrote: pyHanko's `CSCSigner` (CSC API
//! v1.0.4.0) signs through a live cloudsign with a public URL (its certificates name its OCSP
//! responder and CRL, which the validators consult), for ECDSA and RSA credentials at SCAL 1 and SCAL 2:
//! PAdES B-B, PAdES B-T with cloudsign's own `/tsa`, two PDFs in one batch under one SAD, and a
//! detached CMS. Every output is judged by independent validators: `pyhanko sign validate`
//! (INTACT:TRUSTED), `pdfsig` (valid, trusted) and `openssl cms -verify`.
//!
//! Needs the pinned virtualenv that `scripts/test.sh` creates (`CLOUDSIGN_PYTHON` points at its
//! interpreter), poppler-utils and libnss3-tools.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/pyhanko_csc.py");

fn python() -> PathBuf {
    PathBuf::from(
        std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON must name the pinned virtualenv's python: run scripts/test.sh"),
    )
}

fn sign(url: &str, credential: &str, mode: &str, files: &[&Path]) {
    let mut cmd = Command::new(python());
    cmd.arg(SCRIPT).args([url, "alice", credential, mode]).args(files);
    // Secrets through the environment, never argv.
    cmd.env("CLOUDSIGN_PASSWORD", PASSWORD).env("CLOUDSIGN_PIN", PIN).env("PYTHONWARNINGS", "ignore");
    run(&mut cmd);
}

fn validate_pdf(env: &Env, pdf: &Path, root: &Path, timestamped: bool) {
    let pyhanko = python().with_file_name("pyhanko");
    let out = run(Command::new(&pyhanko).args(["sign", "validate", "--trust"]).arg(root).arg("--trust-replace").arg(pdf));
    assert!(out.contains(":INTACT:TRUSTED"), "pyhanko: {out}");
    assert!(out.contains("UNTOUCHED"), "pyhanko: {out}");
    if timestamped {
        assert!(out.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "pyhanko: {out}");
    }
    let out = run(Command::new("pdfsig").arg("-nssdir").arg(format!("sql:{}", env.file("nss").display())).arg(pdf));
    assert!(out.contains("Signature Validation: Signature is Valid."), "pdfsig: {out}");
    assert!(out.contains("Certificate Validation: Certificate is Trusted."), "pdfsig: {out}");
    assert!(out.contains("Total document signed"), "pdfsig: {out}");
}

#[tokio::test]
async fn pyhanko_csc_signer() {
    let env = Env::new(BIN, "sqlite").with_public_url();
    env.add_user("alice");
    let credentials: Vec<(String, Value)> = [("ecdsa-p256", "1"), ("ecdsa-p256", "2"), ("rsa-2048", "1"), ("rsa-2048", "2")]
        .iter()
        .map(|(key, scal)| (format!("{key}-scal{scal}"), env.add_credential("alice", &["--key", key, "--scal", scal])))
        .collect();
    let server = env.start();
    let (_, root) = write_ca(&env);
    nss_trust(&env, &root);
    let data = env.file("data.txt");
    std::fs::write(&data, b"any file, signed as detached CMS\n").unwrap();

    for (name, cred) in &credentials {
        let id = cred["credentialID"].as_str().unwrap();
        let input = env.file(&format!("{name}.pdf"));
        std::fs::write(&input, one_page_pdf(&format!("Signed by {name}"))).unwrap();

        let bb = env.file(&format!("{name}-b-b.pdf"));
        sign(&server.url, id, "pades-b-b", &[&bb, &input]);
        validate_pdf(&env, &bb, &root, false);

        let bt = env.file(&format!("{name}-b-t.pdf"));
        sign(&server.url, id, "pades-b-t", &[&bt, &input]);
        validate_pdf(&env, &bt, &root, true);

        let second = env.file(&format!("{name}-2.pdf"));
        std::fs::write(&second, one_page_pdf(&format!("Second document for {name}"))).unwrap();
        let (out1, out2) = (env.file(&format!("{name}-batch1.pdf")), env.file(&format!("{name}-batch2.pdf")));
        sign(&server.url, id, "batch", &[&out1, &input, &second, &out2]);
        validate_pdf(&env, &out1, &root, false);
        validate_pdf(&env, &out2, &root, false);

        // Detached CMS over any file. (pyHanko's prefer_pss asks for the maximal PSS salt length,
        // which the aws-lc signer cannot produce: cloudsign signs PSS with salt length = digest
        // length and refuses other parameters with a clear error; PSS is checked in e2e.rs.)
        let p7s = env.file(&format!("{name}.p7s"));
        sign(&server.url, id, "cms", &[&p7s, &data]);
        let out = Command::new("openssl")
            .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
            .arg(&p7s)
            .arg("-content")
            .arg(&data)
            .arg("-CAfile")
            .arg(&root)
            .args(["-out", "/dev/null"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.contains("Verification successful"), "openssl cms -verify ({name}): {err}");
    }

    // The batch really was one signHash with two hashes under one SAD, for every credential.
    let audit = env.admin(&["audit", "--json", "--limit", "100000"], "");
    let events: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (name, cred) in &credentials {
        let batches = events
            .iter()
            .filter(|e| e["event"] == "signatures.signHash" && e["outcome"] == "ok" && e["credentialID"] == cred["credentialID"])
            .filter(|e| e["detail"]["hashes"].as_array().unwrap().len() == 2)
            .count();
        assert_eq!(batches, 1, "{name}: one signHash call signed both documents");
        let authorizations = events
            .iter()
            .filter(|e| {
                e["event"] == "credentials.authorize"
                    && e["outcome"] == "ok"
                    && e["credentialID"] == cred["credentialID"]
                    && e["detail"]["numSignatures"] == 2
            })
            .count();
        assert_eq!(authorizations, 1, "{name}: one SAD for the batch");
    }
    drop(server);
}
