//! A real browser on the authorization pages: Debian's Chromium, headless, driven by
//! playwright-core (`interop/browser/consent.mjs`), logs in and consents, for a service token
//! and for a credential token; the codes it brings back are exchanged and used to sign.
//! Screenshots of both pages are kept in `target/test-artifacts/oauth/`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run the driver; secrets go through the environment, never argv.
fn drive(authorize_url: &str, pin: Option<&str>, shots: &str) -> Value {
    let root = workspace();
    let script = root.join("interop/browser/consent.mjs");
    assert!(
        root.join("interop/browser/node_modules/playwright-core").exists(),
        "playwright-core is missing: run scripts/test.sh (npm ci in interop/browser)"
    );
    let artifacts = root.join("target/test-artifacts/oauth");
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .env("CS_AUTHORIZE_URL", authorize_url)
        .env("CS_REDIRECT_URI", REDIRECT_URI)
        .env("CS_USER", "alice")
        .env("CS_PASSWORD", PASSWORD)
        .env("CS_SCREENSHOTS", artifacts.join(shots));
    if let Some(p) = pin {
        cmd.env("CS_PIN", p);
    }
    let out = cmd.output().expect("node must be installed");
    assert!(
        out.status.success(),
        "browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for page in ["login", "consent"] {
        let png = artifacts.join(format!("{shots}-{page}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|_| panic!("no screenshot {}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{} is not a real screenshot", png.display());
    }
    serde_json::from_slice(&out.stdout).expect("one JSON line from the driver")
}

/// Exchange a public client's code (with its PKCE verifier) for a token; a CSC client using it.
async fn exchange(server: &Server, client: &str, code: &str, verifier: &str) -> Api {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", client),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ];
    let (s, token) = oauth_post(server, "token", &form, None).await;
    assert_eq!(s, 200, "{token}");
    Api { http: reqwest::Client::new(), base: format!("{}/csc/v2", server.url), token: token["access_token"].as_str().map(String::from) }
}

#[tokio::test]
async fn chromium_completes_login_and_consent() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let id = env.add_credential("alice", &["--auth-mode", "oauth2code"])["credentialID"].as_str().unwrap().to_string();
    let (client, _) = add_client(&env, "Browser test app", &["--public"]);
    let server = env.start();

    // Service scope.
    let (verifier, challenge) = pkce(&env.dir);
    let q = query(&[
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", REDIRECT_URI),
        ("state", "svc"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let out = drive(&format!("{}/oauth2/authorize?{q}", server.url), None, "service");
    assert!(out["consentText"].as_str().unwrap().contains("Browser test app"), "{out}");
    let p = location_params(out["redirect"].as_str().unwrap());
    assert_eq!(p["state"], "svc");
    let api = exchange(&server, &client, &p["code"], &verifier).await;
    let list = api.ok("credentials/list", json!({"credentialInfo": true})).await;
    assert_eq!(list["credentialIDs"], json!([id]));
    let cert = list["credentialInfos"][0]["cert"]["certificates"][0].as_str().unwrap().to_string();

    // Credential scope with labelled documents (RAR); the signer approves with the PIN.
    let doc = b"%PDF-1.7 the document shown to the signer".to_vec();
    let digest = sha256(&doc);
    let (verifier, challenge) = pkce(&env.dir);
    let details = json!([{"type": "credential", "credentialID": id, "hashAlgorithmOID": SHA256,
        "documentDigests": [{"hash": b64(&digest), "label": "Purchase order 4711.pdf"}]}])
    .to_string();
    let q = query(&[
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", REDIRECT_URI),
        ("state", "cred"),
        ("authorization_details", &details),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let out = drive(&format!("{}/oauth2/authorize?{q}", server.url), Some(PIN), "credential");
    let shown = out["consentText"].as_str().unwrap();
    assert!(shown.contains("Purchase order 4711.pdf") && shown.contains(&b64(&digest)), "the page shows what is signed: {shown}");
    let p = location_params(out["redirect"].as_str().unwrap());
    assert_eq!(p["state"], "cred");
    let signer = exchange(&server, &client, &p["code"], &verifier).await;
    let v = signer
        .ok(
            "signatures/signHash",
            json!({"credentialID": id, "hashes": [b64(&digest)], "hashAlgorithmOID": SHA256, "signAlgo": "1.2.840.10045.4.3.2"}),
        )
        .await;
    openssl_verify_signature(&env.dir, &cert, &doc, &unb64(v["signatures"][0].as_str().unwrap()), "sha256", "ecdsa");
}
