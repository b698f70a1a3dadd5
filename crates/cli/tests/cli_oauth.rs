//! End-to-end OAuth 2.0 from the CLI: `cloudsign sign --client-id ...` runs the authorization
//! code flow with PKCE as a native app (RFC 8252): it listens on a loopback redirect URI,
//! prints the authorization URL on an `authorize-url: ` line of stderr and waits. The test
//! plays the signer's browser — headless Chromium driven by interop/browser/cli_consent.mjs —
//! which logs in, consents and is redirected to the CLI's listener for real. The signatures
//! are verified by `openssl cms -verify`.
//!
//! - An explicit (PIN) credential: a service-scope token from the browser, then
//!   `credentials/authorize` with the PIN.
//! - An `oauth2code` credential: a second visit with `scope=credential`, whose consent page
//!   shows the digest being signed (the test checks it is the one the CLI announced); the
//!   token it gives is the SAD.
//! - The client credentials grant of a confidential client registered for the user.
//!
//! Needs Chromium, node and interop/browser/node_modules (`scripts/test.sh`).

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The browser: log in as alice and approve; secrets through the environment only. Err: what
/// the driver said.
fn browse(url: &str, shots: &str) -> Result<Value, String> {
    let root = workspace();
    assert!(
        root.join("interop/browser/node_modules/playwright-core").exists(),
        "playwright-core is missing: run scripts/test.sh (npm ci in interop/browser)"
    );
    let artifacts = root.join("target/test-artifacts/cli-oauth");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = Command::new("node")
        .arg(root.join("interop/browser/cli_consent.mjs"))
        .env("CS_AUTHORIZE_URL", url)
        .env("CS_USER", "alice")
        .env("CS_PASSWORD", PASSWORD)
        .env("CS_PIN", PIN)
        .env("CS_SCREENSHOTS", artifacts.join(shots))
        .output()
        .expect("node must be installed");
    if !out.status.success() {
        return Err(format!("browser run failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("not one JSON line from the driver: {e}"))
}

/// What one `cloudsign sign` run did.
struct Run {
    ok: bool,
    stderr: String,
    /// What the browser saw, per authorization URL the CLI printed.
    visits: Vec<Value>,
}

/// Run `cloudsign sign` with `args`; every `authorize-url: ` line it prints is visited by the
/// browser while the CLI waits on its loopback listener.
fn sign_in_browser(env: &Env, args: &[&str], shots: &str) -> Run {
    let mut child = env
        .command()
        .arg("sign")
        .args(args)
        .arg("--no-browser")
        .env("CLOUDSIGN_PIN", PIN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    let mut visits = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        if let Some(url) = line.strip_prefix("authorize-url: ") {
            match browse(url, &format!("{shots}-{}", visits.len() + 1)) {
                Ok(v) => visits.push(v),
                Err(e) => {
                    // The CLI would wait for the browser for minutes: stop it (our own child).
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{e}\ncloudsign sign said:\n{stderr}");
                }
            }
        }
    }
    let ok = child.wait().unwrap().success();
    Run { ok, stderr, visits }
}

/// A free loopback port, for a redirect URI registered with its port (the server matches
/// registered redirect URIs exactly).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn cms_verify(env: &Env, p7s: &Path, content: &Path) {
    let (_, root) = write_ca(env);
    let out = Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-out", "/dev/null", "-in"])
        .arg(p7s)
        .arg("-content")
        .arg(content)
        .arg("-CAfile")
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl cms -verify: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sign_with_oauth_from_the_terminal() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let pin_cred = env.add_credential("alice", &[])["credentialID"].as_str().unwrap().to_string();
    let oauth_cred = env.add_credential("alice", &["--auth-mode", "oauth2code"])["credentialID"].as_str().unwrap().to_string();
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let out = env.admin(&["client", "add", "--name", "cloudsign CLI", "--redirect-uri", &redirect, "--public", "--json"], "");
    let client: Value = serde_json::from_str(out.trim()).unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_string();
    let server = env.start();
    let doc = env.file("order.txt");
    std::fs::write(&doc, b"Purchase order 4711: signed with OAuth from the terminal\n").unwrap();

    // Service scope from the browser, then the PIN (CLOUDSIGN_PIN) for credentials/authorize.
    let p7s = env.file("pin.p7s");
    let args = ["--service", &server.url, "--client-id", &client_id, "--redirect-uri", &redirect, "--credential", &pin_cred];
    let run =
        sign_in_browser(&env, &[&args[..], &[doc.to_str().unwrap(), "--level", "B-B", "--out", p7s.to_str().unwrap()]].concat(), "service");
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.visits.len(), 1, "{}", run.stderr);
    assert!(run.visits[0]["consentText"].as_str().unwrap().contains("cloudsign CLI"), "{}", run.visits[0]);
    assert!(run.visits[0]["doneText"].as_str().unwrap().contains("Signed in"), "{}", run.visits[0]);
    assert!(run.visits[0]["final"].as_str().unwrap().starts_with(&format!("{redirect}?")), "{}", run.visits[0]);
    assert!(!run.stderr.contains("auth/login"), "{}", run.stderr);
    cms_verify(&env, &p7s, &doc);

    // An oauth2code credential: the second visit is for the credential, and its consent page
    // shows the digest the CLI announced.
    let p7s = env.file("oauth.p7s");
    let args = ["--service", &server.url, "--client-id", &client_id, "--redirect-uri", &redirect, "--credential", &oauth_cred];
    let run = sign_in_browser(
        &env,
        &[&args[..], &[doc.to_str().unwrap(), "--level", "B-T", "--out", p7s.to_str().unwrap()]].concat(),
        "credential",
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.visits.len(), 2, "{}", run.stderr);
    let announced = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("document 1 to sign, SHA-256 digest: "))
        .unwrap_or_else(|| panic!("no digest announced: {}", run.stderr))
        .to_string();
    let consent = run.visits[1]["consentText"].as_str().unwrap();
    assert!(consent.contains(&announced), "the consent page shows the digest {announced}: {consent}");
    assert!(!run.visits[0]["consentText"].as_str().unwrap().contains(&announced), "the service consent shows no digest");
    cms_verify(&env, &p7s, &doc);

    // The same credential without an OAuth client: told what to do.
    let out = env
        .command()
        .arg("sign")
        .arg(&doc)
        .args(["--service", &server.url, "--user", "alice", "--credential", &oauth_cred])
        .env("CLOUDSIGN_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("authMode oauth2code") && err.contains("--client-id"), "{err}");

    // Client credentials: a confidential client registered to act for alice; its secret from
    // a file, never on the command line.
    let out = env.admin(&["client", "add", "--name", "cloudsign batch", "--user", "alice", "--json"], "");
    let batch: Value = serde_json::from_str(out.trim()).unwrap();
    let secret_file = env.file("client-secret");
    std::fs::write(&secret_file, format!("{}\n", batch["client_secret"].as_str().unwrap())).unwrap();
    let p7s = env.file("batch.p7s");
    let out = env
        .command()
        .arg("sign")
        .arg(&doc)
        .args(["--service", &server.url, "--credential", &pin_cred, "--level", "B-B", "--out", p7s.to_str().unwrap()])
        .args(["--client-id", batch["client_id"].as_str().unwrap(), "--grant", "client-credentials", "--client-secret-file"])
        .arg(&secret_file)
        .env("CLOUDSIGN_PIN", PIN)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    cms_verify(&env, &p7s, &doc);

    // A wrong secret: the token endpoint's refusal with its status and a hint.
    std::fs::write(&secret_file, "not-the-secret").unwrap();
    let out = env
        .command()
        .arg("sign")
        .arg(&doc)
        .args(["--service", &server.url, "--credential", &pin_cred, "--out", env.file("x.p7s").to_str().unwrap()])
        .args(["--client-id", batch["client_id"].as_str().unwrap(), "--grant", "client-credentials", "--client-secret-file"])
        .arg(&secret_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("oauth2/token refused (HTTP 401") && err.contains("invalid_client"), "{err}");
    assert!(err.contains("hint: the OAuth client is unknown or its secret is wrong"), "{err}");
    assert!(!err.contains("not-the-secret"), "the secret never appears: {err}");
}

/// RFC 8252 §7.3: a loopback redirect URI registered without a port must accept the ephemeral
/// port the CLI listens on (its default, `--redirect-uri` left out).
#[test]
fn a_loopback_redirect_uri_takes_any_port() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let cred = env.add_credential("alice", &[])["credentialID"].as_str().unwrap().to_string();
    let out =
        env.admin(&["client", "add", "--name", "cloudsign CLI", "--redirect-uri", "http://127.0.0.1/callback", "--public", "--json"], "");
    let client: Value = serde_json::from_str(out.trim()).unwrap();
    let server = env.start();
    let doc = env.file("memo.txt");
    std::fs::write(&doc, b"any port").unwrap();
    let p7s = env.file("memo.p7s");
    let args = ["--service", &server.url, "--client-id", client["client_id"].as_str().unwrap(), "--credential", &cred, "--level", "B-B"];
    let run = sign_in_browser(&env, &[&args[..], &[doc.to_str().unwrap(), "--out", p7s.to_str().unwrap()]].concat(), "any-port");
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.visits.len(), 1, "{}", run.stderr);
    let fin = run.visits[0]["final"].as_str().unwrap();
    assert!(fin.starts_with("http://127.0.0.1:") && !fin.starts_with("http://127.0.0.1/"), "{fin}");
    cms_verify(&env, &p7s, &doc);
}
