//! The tamper-evident audit log (issue 15, item 6), through the real binary: `admin audit
//! verify` passes on an untouched log and names each kind of tampering done to the database
//! directly with SQL (the `sqlite3` CLI); `admin audit export` writes the chain as JSON lines;
//! a server signs a checkpoint when it shuts down.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// A log of eight records (users a..h added), with a signed checkpoint after the sixth.
fn base() -> Env {
    let env = Env::new(BIN, "sqlite");
    for u in ["a", "b", "c", "d", "e", "f"] {
        env.add_user(u);
    }
    assert_eq!(env.admin(&["audit", "checkpoint"], "").trim(), "checkpoint at seq 6");
    for u in ["g", "h"] {
        env.add_user(u);
    }
    env
}

/// A copy of `base`'s data directory (database, WAL, key-encryption key) in a new environment.
fn fork(base: &Env) -> Env {
    let env = Env::new(BIN, "sqlite");
    for entry in std::fs::read_dir(&base.dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), env.dir.join(entry.file_name())).unwrap();
        }
    }
    env
}

fn sql(env: &Env, statements: &str) {
    run(Command::new("sqlite3").arg(env.file("cloudsign.db")).arg(statements));
}

/// `admin audit verify`: (success, stdout).
fn verify(env: &Env) -> (bool, String) {
    let (ok, out, err) = env.admin_result(&["audit", "verify"], "");
    if !ok {
        assert!(err.contains("the audit log was tampered with"), "{err}");
    }
    (ok, out)
}

fn tampered(base: &Env, statements: &str, expected: &[&str]) {
    let env = fork(base);
    sql(&env, statements);
    let (ok, out) = verify(&env);
    assert!(!ok, "verify must fail after {statements:?}:\n{out}");
    for e in expected {
        assert!(out.lines().any(|l| l.starts_with(e)), "after {statements:?} expected a line starting {e:?}:\n{out}");
    }
    assert_eq!(out.lines().count(), expected.len(), "exactly the expected findings after {statements:?}:\n{out}");
}

#[test]
fn verify_names_each_kind_of_tampering() {
    let base = base();
    let (ok, out) = verify(&base);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "ok: 8 records, last checkpoint at seq 6");

    tampered(&base, "UPDATE audit SET detail = '{\"user\":\"mallory\"}' WHERE seq = 3", &["changed: record 3:"]);
    tampered(&base, "DELETE FROM audit WHERE seq = 4", &["deleted: record 4:"]);
    tampered(
        &base,
        "INSERT INTO audit (seq, at, actor, event, outcome, credential_id, detail) VALUES (9, 1, 'admin', 'admin.user.delete', 'ok', NULL, '{}')",
        &["inserted: record 9:"],
    );
    tampered(
        &base,
        "UPDATE audit SET seq = -2 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 5; UPDATE audit SET seq = 5 WHERE seq = -2",
        &["reordered: record 2: it was written as record 5", "reordered: record 5: it was written as record 2"],
    );
    // The tail after the last checkpoint: the chain head still names record 8.
    tampered(&base, "DELETE FROM audit WHERE seq > 6", &["truncated: records 7..8:"]);
    // Records the checkpoint covers, and the chain head moved back to match: the signed
    // checkpoint still names record 6.
    tampered(
        &base,
        "DELETE FROM audit WHERE seq > 4; UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM audit WHERE seq = 4)",
        &["truncated: records 5..6: the signed checkpoint at seq 6 covers them"],
    );
    // A checkpoint edited to match a rewritten log no longer carries the CA's signature.
    tampered(&base, "UPDATE audit_checkpoints SET hash = (SELECT hash FROM audit WHERE seq = 5), seq = 5", &["checkpoint: record 5:"]);
}

#[test]
fn export_writes_the_chain_as_json_lines() {
    let base = base();
    let out = base.admin(&["audit", "export"], "");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 8);
    let mut prev = "0".repeat(64);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as i64 + 1);
        assert_eq!(l["event"], "admin.user.add");
        assert_eq!(l["detail"]["user"].as_str().unwrap().len(), 1);
        assert_eq!(l["prevHash"], prev.as_str(), "each record names the hash of the one before");
        prev = l["hash"].as_str().unwrap().to_string();
        assert_eq!(prev.len(), 64);
    }
    let after = base.admin(&["audit", "export", "--after", "6"], "");
    assert_eq!(after.lines().count(), 2);
}

#[test]
fn a_server_signs_a_checkpoint_at_shutdown() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let server = env.start();
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let mut server = server;
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown: {exit:?}\n{}", env.server_log());
    let (ok, out) = verify(&env);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "ok: 1 records, last checkpoint at seq 1");
}

/// Wait (up to 10 s) until `admin audit verify` reports a checkpoint covering `seq`.
fn await_checkpoint(env: &Env, seq: usize) -> String {
    let want = format!("ok: {seq} records, last checkpoint at seq {seq}");
    let started = std::time::Instant::now();
    loop {
        let (ok, out) = verify(env);
        assert!(ok, "{out}");
        if out.trim() == want || started.elapsed() > std::time::Duration::from_secs(10) {
            return out.trim().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A running server signs a checkpoint every `audit_checkpoint_seconds` once the chain has
/// grown, without being stopped: a `kill -9` (no shutdown checkpoint) loses no more than the
/// records after the last periodic one.
#[test]
fn a_running_server_signs_checkpoints_periodically() {
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_AUDIT_CHECKPOINT_SECONDS", "1");
    env.add_user("alice");
    let mut server = env.start();
    assert_eq!(await_checkpoint(&env, 1), "ok: 1 records, last checkpoint at seq 1", "{}", env.server_log());
    // The chain grows while the server runs (admin commands write to the same store).
    env.add_user("bob");
    env.add_user("carol");
    assert_eq!(await_checkpoint(&env, 3), "ok: 3 records, last checkpoint at seq 3", "{}", env.server_log());
    let count = || run(Command::new("sqlite3").arg(env.file("cloudsign.db")).arg("SELECT count(*) FROM audit_checkpoints"));
    let made = count();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(count(), made, "no new checkpoint while the chain stood still");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let (ok, out) = verify(&env);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "ok: 3 records, last checkpoint at seq 3", "the periodic checkpoint, not a shutdown one");
}
