//! The bridge agent `cloudsign device` as the device tests drive it: `pair` fed the pairing
//! code, the confirmation and the card PIN on stdin; `run` fed the signer's answers, its
//! stderr collected.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{BIN, Env, PIN, Server, hsm};

/// `cloudsign device ARGS` with only PATH, HOME and the token's configuration.
pub fn agent(conf: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("SOFTHSM2_CONF", conf).arg("device").args(args);
    c
}

/// A pairing code for alice (the credential's PIN is [`PIN`]).
pub fn pairing_code(env: &Env) -> String {
    let out = env.admin(&["device", "pair", "alice", "--json", "--pin-stdin"], &format!("{PIN}\n"));
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("device pair output {out:?}: {e}"));
    v["pairingCode"].as_str().unwrap().to_string()
}

/// `cloudsign device pair` for the key labelled `label`; returns the credential id.
pub fn pair(env: &Env, server: &Server, conf: &Path, dir: &Path, label: &str) -> String {
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
pub struct Running {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Running {
    /// `device run --once`: one request answered, then the agent exits.
    pub fn start(conf: &Path, dir: &Path, input: &str) -> Running {
        Self::start_args(conf, &["run", "--once", "--dir", dir.to_str().unwrap()], input)
    }

    /// `device run`: every request answered from `input` (lines), until killed.
    pub fn start_many(conf: &Path, dir: &Path, input: &str) -> Running {
        Self::start_args(conf, &["run", "--dir", dir.to_str().unwrap()], input)
    }

    pub fn start_args(conf: &Path, args: &[&str], input: &str) -> Running {
        let mut child = agent(conf, args).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
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

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log has `n` occurrences of `text`.
    pub fn wait_for(&self, text: &str, n: usize) {
        for _ in 0..300 {
            if self.log().matches(text).count() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("agent never said {text:?} ({n}×):\n{}", self.log());
    }

    pub fn wait(mut self) -> (bool, String) {
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

/// A service with devices on and `public_url` set (so certificates name its OCSP responder and
/// CRLs), the `[device]` settings `device` besides, alice, and a SoftHSM2 token holding the
/// card's keys ([`hsm::card_keys`]). Returns the env and the token's SOFTHSM2_CONF.
pub fn card_service(device: &str) -> (Env, PathBuf) {
    let env = Env::new(BIN, "sqlite").with_public_url();
    let cfg = env.file("device.toml");
    // Polls held 5 s rather than 25: the agent says "connected" when its first poll returns.
    // The asynchronous worker looks for jobs every 50 ms.
    std::fs::write(&cfg, format!("[device]\nenabled = true\npoll_hold_seconds = 5\n{device}\n[asynchronous]\npoll_interval_ms = 50\n"))
        .unwrap();
    let env = env.with_env("CLOUDSIGN_CONFIG", cfg.to_str().unwrap());
    env.add_user("alice");
    let card = env.dir.join("card");
    std::fs::create_dir_all(&card).unwrap();
    let conf = hsm::token(&card);
    hsm::card_keys(&conf);
    (env, conf)
}
