//! `cloudsign device`, the bridge agent (issue 18, scenario [2], `docs/device-protocol.md`):
//! SoftHSM2 as the signer's card (keys made by OpenSC's `pkcs11-tool`, not by us), the real
//! `cloudsign serve` with `[device] enabled = true`, `admin device pair`, `device pair` fed the
//! code, the confirmation and the card PIN on stdin, then `device run --once` answering one
//! request while an application calls `credentials/authorize` and `signatures/signHash` (v2).
//! Every signature is verified with `openssl` against the certificate the service issued.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::hsm;
use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const SHA256_RSA: &str = "1.2.840.113549.1.1.11";

/// A service with the device protocol on, alice, and a SoftHSM2 token holding an EC P-256 and
/// an RSA-2048 key (the "card"). Returns the env and the token's SOFTHSM2_CONF.
fn setup() -> (Env, PathBuf) {
    let env = Env::new(BIN, "sqlite").with_public_url();
    let cfg = env.file("device.toml");
    // Polls held 5 s rather than 25: the agent says "connected" when its first poll returns.
    std::fs::write(&cfg, "[device]\nenabled = true\npoll_hold_seconds = 5\n").unwrap();
    let env = env.with_env("CLOUDSIGN_CONFIG", cfg.to_str().unwrap());
    env.add_user("alice");
    let card = env.dir.join("card");
    std::fs::create_dir_all(&card).unwrap();
    let conf = hsm::token(&card);
    hsm::card_keys(&conf);
    (env, conf)
}

/// `cloudsign device ARGS` with only PATH, HOME and the token's configuration.
fn agent(conf: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("SOFTHSM2_CONF", conf).arg("device").args(args);
    c
}

/// A pairing code for alice (the credential's PIN is [`PIN`]).
fn pairing_code(env: &Env) -> String {
    let out = env.admin(&["device", "pair", "alice", "--json", "--pin-stdin"], &format!("{PIN}\n"));
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("device pair output {out:?}: {e}"));
    v["pairingCode"].as_str().unwrap().to_string()
}

/// `cloudsign device pair` for the key labelled `label`; returns the credential id.
fn pair(env: &Env, server: &Server, conf: &Path, dir: &Path, label: &str) -> String {
    let code = pairing_code(env);
    let mut child = agent(
        conf,
        &[
            "pair",
            "--service",
            &server.url,
            "--code-stdin",
            "--module",
            hsm::MODULE,
            "--token",
            hsm::TOKEN,
            "--key-label",
            label,
            "--name",
            "test card",
            "--dir",
            dir.to_str().unwrap(),
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(format!("{code}\ny\n{}\n", hsm::PIN).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "device pair failed: {err}");
    assert!(err.contains("alice"), "the user is shown before pairing: {err}");
    assert!(!err.contains(&code) && !err.contains(hsm::PIN), "no secret echoed: {err}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running `device run --once`, its stderr collected.
struct Running {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Running {
    fn start(conf: &Path, dir: &Path, input: &str) -> Running {
        let mut child = agent(conf, &["run", "--once", "--dir", dir.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The answers are there before the request: the agent reads them only after showing it.
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Running { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log has `n` occurrences of `text`.
    fn wait_for(&self, text: &str, n: usize) {
        for _ in 0..300 {
            if self.log().matches(text).count() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("agent never said {text:?} ({n}×):\n{}", self.log());
    }

    fn wait(mut self) -> (bool, String) {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                return (status.success(), self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("agent did not exit:\n{}", self.log());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// authorize + signHash, retried while the service says the device is not connected (it
/// becomes so with its first poll; no SAD is spent by that refusal).
async fn sign_hash(api: &Api, credential: &str, digest: &[u8], sign_algo: &str) -> (u16, Value) {
    for _ in 0..50 {
        let sad = api.sad(credential, 1, Some((&[digest.to_vec()], SHA256))).await;
        let (s, v) = api.sign(credential, &sad, &[digest.to_vec()], sign_algo, Some(SHA256)).await;
        if s == 400 && v["error_description"].as_str().unwrap_or_default().contains("not connected") {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        return (s, v);
    }
    panic!("the device never connected");
}

fn verification_code(digests: &[&[u8]]) -> String {
    let mut sorted: Vec<&[u8]> = digests.to_vec();
    sorted.sort();
    let h = sha256(&sorted.concat());
    format!("{:04}", (u32::from(h[30]) * 256 + u32::from(h[31])) % 10000)
}

/// openssl verifies `signature` over `data` with the credential's certificate.
async fn openssl_verify(api: &Api, env: &Env, credential: &str, data: &[u8], signature: &[u8]) {
    let info = api.ok("credentials/info", json!({"credentialID": credential, "certificates": "chain"})).await;
    openssl_verify_chain(env, info["cert"]["certificates"].as_array().unwrap());
    let cert = env.file(&format!("{credential}.der"));
    std::fs::write(&cert, unb64(info["cert"]["certificates"][0].as_str().unwrap())).unwrap();
    let pubkey = env.file(&format!("{credential}.pub.pem"));
    run(Command::new("openssl").args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"]).arg(&cert).arg("-out").arg(&pubkey));
    let (d, s) = (env.file("data.bin"), env.file("sig.bin"));
    std::fs::write(&d, data).unwrap();
    std::fs::write(&s, signature).unwrap();
    let out = run(Command::new("openssl").args(["dgst", "-sha256", "-verify"]).arg(&pubkey).arg("-signature").arg(&s).arg(&d));
    assert!(out.contains("Verified OK"), "{out}");
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn pair_sign_decline_reconnect() {
    let (env, conf) = setup();
    let server = env.start();
    let dir = env.dir.join("agent");
    let credential = pair(&env, &server, &conf, &dir, "card-ec");
    assert!(credential.starts_with("cred") || !credential.is_empty(), "{credential}");
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("device-key.p8")), 0o600);
        assert_eq!(mode(&dir.join("device.json")), 0o600);
    }
    let saved: Value = serde_json::from_slice(&std::fs::read(dir.join("device.json")).unwrap()).unwrap();
    assert_eq!(saved["credentialId"], credential.as_str());
    // The card's key stays in the token, never extractable (OpenSC reads it, not us).
    let objects = hsm::private_keys(&conf);
    assert_eq!(objects.matches("Private Key Object").count(), 2, "{objects}");

    let mut api = Api::new(&server);
    api.login("alice").await;

    // Signed: the agent shows the code the application computes, and the signature verifies.
    let data = b"a contract signed on the card".to_vec();
    let digest = sha256(&data);
    let running = Running::start(&conf, &dir, &format!("y\n{}\n", hsm::PIN));
    running.wait_for("connected to", 1);
    let (s, v) = sign_hash(&api, &credential, &digest, ECDSA_SHA256).await;
    assert_eq!(s, 200, "{v}\n{}", running.log());
    let signature = unb64(v["signatures"][0].as_str().unwrap());
    openssl_verify(&api, &env, &credential, &data, &signature).await;
    let (ok, log) = running.wait();
    assert!(ok, "{log}");
    assert!(log.contains(&verification_code(&[&digest])), "the code is shown: {log}");
    assert!(!log.contains(hsm::PIN), "{log}");

    // Declined: "n" gives the application 400 access_denied (as an approval denial).
    let running = Running::start(&conf, &dir, "n\n");
    running.wait_for("connected to", 1);
    let (s, v) = sign_hash(&api, &credential, &sha256(b"declined"), ECDSA_SHA256).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "access_denied", "{v}");
    let (ok, log) = running.wait();
    assert!(ok, "{log}");

    // The service goes away while the agent waits, and comes back on the same address: the
    // agent reconnects (backoff) and signs.
    let running = Running::start(&conf, &dir, &format!("y\n{}\n", hsm::PIN));
    running.wait_for("connected to", 1);
    drop(server);
    running.wait_for("reconnecting in", 1);
    let server = env.start();
    running.wait_for("connected to", 2);
    let mut api = Api::new(&server);
    api.login("alice").await;
    let data = b"signed after a reconnection".to_vec();
    let (s, v) = sign_hash(&api, &credential, &sha256(&data), ECDSA_SHA256).await;
    assert_eq!(s, 200, "{v}\n{}", running.log());
    openssl_verify(&api, &env, &credential, &data, &unb64(v["signatures"][0].as_str().unwrap())).await;
    let (ok, log) = running.wait();
    assert!(ok, "{log}");
    drop(server);
}

#[tokio::test]
async fn rsa_card() {
    let (env, conf) = setup();
    let server = env.start();
    let dir = env.dir.join("agent-rsa");
    let credential = pair(&env, &server, &conf, &dir, "card-rsa");
    let mut api = Api::new(&server);
    api.login("alice").await;
    let data = b"an RSA card".to_vec();
    let running = Running::start(&conf, &dir, &format!("y\n{}\n", hsm::PIN));
    running.wait_for("connected to", 1);
    let (s, v) = sign_hash(&api, &credential, &sha256(&data), SHA256_RSA).await;
    assert_eq!(s, 200, "{v}\n{}", running.log());
    openssl_verify(&api, &env, &credential, &data, &unb64(v["signatures"][0].as_str().unwrap())).await;
    let (ok, log) = running.wait();
    assert!(ok, "{log}");
}

/// Refusals before any network: a second pairing into the same directory, http to a
/// non-loopback address, a code that is not one.
#[test]
fn bad_input() {
    let dir = std::env::temp_dir().join(cloudsign_test_support::unique("cloudsign-agent-"));
    let base = ["pair", "--module", hsm::MODULE, "--token", "t", "--key-label", "k", "--code-stdin", "--dir", dir.to_str().unwrap()];
    let out = agent(Path::new("/nonexistent"), &base).args(["--service", "http://sign.example.com"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("loopback"), "{err}");
    let mut child = agent(Path::new("/nonexistent"), &base)
        .args(["--service", "http://127.0.0.1:9"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"not a code\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not a pairing code") && !err.contains("not a code\n"), "{err}");
    let out = agent(Path::new("/nonexistent"), &["run", "--dir", dir.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("pair first"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
