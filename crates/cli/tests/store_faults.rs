//! Store faults under a running server (issue 15, item 2): a PostgreSQL database dropped,
//! refusing connections, or holding a lock that stalls every statement is answered
//! `503 temporarily_unavailable` within the store timeout, never 500, and the service recovers
//! by itself once the database is back; a SQLite database locked by another process likewise.
//! The data directory and the files in it end up 0700/0600, also when they were created looser.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

/// The store timeout the servers here run with, and what a 503 may take beyond it (the HTTP
/// round trip, a loaded CI machine).
const TIMEOUT_MS: u64 = 1000;
const SLACK: Duration = Duration::from_millis(1500);

fn psql(sql: &str) {
    let out = Command::new("psql").args(["-h", PG_HOST, "-d", "test", "-v", "ON_ERROR_STOP=1", "-c", sql]).output().unwrap();
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
}

fn db_name(env: &Env) -> String {
    match &env.db {
        Db::Postgres(name) => name.clone(),
        Db::Sqlite => unreachable!(),
    }
}

/// One signature over a fresh digest: (status, body, seconds taken).
async fn sign_once(api: &Api, id: &str, sad: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = api.sign(id, sad, &[sha256(b"store faults")], ECDSA_SHA256, None).await;
    (status, body, started.elapsed())
}

/// The request is answered 503 `temporarily_unavailable` within the bound.
fn assert_unavailable(what: &str, status: u16, body: &Value, took: Duration) {
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(took <= Duration::from_millis(TIMEOUT_MS) + SLACK, "{what}: answered after {took:?}");
}

/// A signer with a SAD for many signatures on a started server.
async fn signer(server: &Server, id: &str) -> (Api, String) {
    let mut api = Api::new(server);
    api.login("alice").await;
    let sad = api.sad(id, 1000, None).await;
    let (status, body, _) = sign_once(&api, id, &sad).await;
    assert_eq!(status, 200, "{body}");
    (api, sad)
}

/// Retry `f` until it returns true (the service recovered), for at most 15 s.
async fn recovers<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < Duration::from_secs(15), "{what}: the service did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn env_pg() -> (Env, String) {
    let env = Env::new(BIN, "postgres").with_env("CLOUDSIGN_STORE_TIMEOUT_MS", &TIMEOUT_MS.to_string());
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1", "--multisign", "1000"]);
    (env, cred["credentialID"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn postgres_dropped_under_the_server_is_503_then_recovers() {
    let (env, id) = env_pg();
    let name = db_name(&env);
    // A copy of the database as the admin commands left it, to bring it back from.
    let copy = format!("{name}_copy");
    psql(&format!("CREATE DATABASE {copy} TEMPLATE {name}"));
    let server = env.start();
    let (api, sad) = signer(&server, &id).await;

    psql(&format!("DROP DATABASE {name} WITH (FORCE)"));
    for _ in 0..3 {
        let (status, body, took) = sign_once(&api, &id, &sad).await;
        assert_unavailable("signHash, database dropped", status, &body, took);
    }
    let started = Instant::now();
    let (status, body) = api.post("credentials/list", json!({})).await;
    assert_unavailable("credentials/list, database dropped", status, &body, started.elapsed());

    // Back (from the copy: the token and SAD issued since are gone, the user is not).
    psql(&format!("CREATE DATABASE {name} TEMPLATE {copy}"));
    psql(&format!("DROP DATABASE {copy}"));
    recovers("database recreated", || async {
        let mut fresh = Api::new(&server);
        let (status, _) = fresh.post_raw("credentials/list", b"{}".to_vec(), None).await;
        if status == 503 {
            return false;
        }
        // The pool's other connections may still be the dropped database's: a 503 until
        // they are replaced, never another error.
        match fresh.try_login("alice").await {
            (200, _) => {}
            (503, _) => return false,
            (status, body) => panic!("auth/login after recovery: {status} {body}"),
        }
        let sad = fresh.sad(&id, 1, None).await;
        let (status, body, _) = sign_once(&fresh, &id, &sad).await;
        assert_eq!(status, 200, "{body}");
        true
    })
    .await;
    assert!(!env.server_log().contains("internal error"), "{}", env.server_log());
}

#[tokio::test]
async fn postgres_refusing_connections_is_503_then_recovers() {
    let (env, id) = env_pg();
    let name = db_name(&env);
    let server = env.start();
    let (api, sad) = signer(&server, &id).await;

    psql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"));
    psql(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"));
    for _ in 0..3 {
        let (status, body, took) = sign_once(&api, &id, &sad).await;
        assert_unavailable("signHash, connections refused", status, &body, took);
    }
    psql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    // The same token and SAD work again: nothing was lost.
    recovers("connections allowed again", || async {
        let (status, body, _) = sign_once(&api, &id, &sad).await;
        assert!(status == 200 || status == 503, "{status} {body}");
        status == 200
    })
    .await;
    assert!(!env.server_log().contains("internal error"), "{}", env.server_log());
}

/// A database that stops answering (here: a lock held on the SAD table, so every consuming
/// statement waits) holds a request no longer than the store timeout.
#[tokio::test]
async fn postgres_not_answering_is_503_within_the_timeout() {
    let (env, id) = env_pg();
    let name = db_name(&env);
    let server = env.start();
    let (api, sad) = signer(&server, &id).await;

    let mut locker = Command::new("psql")
        .args(["-h", PG_HOST, "-d", &name, "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = locker.stdin.take().unwrap();
    stdin.write_all(b"BEGIN;\nLOCK TABLE sads IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n").unwrap();
    stdin.flush().unwrap();
    // Wait until the lock is held.
    let started = Instant::now();
    loop {
        let out = Command::new("psql")
            .args(["-h", PG_HOST, "-d", "test", "-tAc", &format!("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE d.datname = '{name}' AND l.mode = 'AccessExclusiveLock' AND l.granted")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() != "0" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the lock was not taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body, took) = sign_once(&api, &id, &sad).await;
    assert_unavailable("signHash, table locked", status, &body, took);

    stdin.write_all(b"ROLLBACK;\n").unwrap();
    drop(stdin);
    let _ = locker.wait();
    recovers("lock released", || async {
        let (status, body, _) = sign_once(&api, &id, &sad).await;
        assert!(status == 200 || status == 503, "{status} {body}");
        status == 200
    })
    .await;
}

/// SQLite locked by another process (an exclusive transaction held open): writes wait out the
/// busy timeout, then 503.
#[tokio::test]
async fn sqlite_locked_by_another_process_is_503_then_recovers() {
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_STORE_TIMEOUT_MS", &TIMEOUT_MS.to_string());
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1", "--multisign", "1000"]);
    let id = cred["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let (api, sad) = signer(&server, &id).await;

    let mut locker = Command::new("sqlite3").arg(env.file("cloudsign.db")).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = locker.stdin.take().unwrap();
    stdin.write_all(b".timeout 5000\nBEGIN EXCLUSIVE;\nSELECT 'locked';\n").unwrap();
    stdin.flush().unwrap();
    let mut stdout = std::io::BufReader::new(locker.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "locked");

    let (status, body, took) = sign_once(&api, &id, &sad).await;
    assert_unavailable("signHash, SQLite locked", status, &body, took);

    stdin.write_all(b"ROLLBACK;\n").unwrap();
    drop(stdin);
    let _ = locker.wait();
    recovers("lock released", || async {
        let (status, body, _) = sign_once(&api, &id, &sad).await;
        assert!(status == 200 || status == 503, "{status} {body}");
        status == 200
    })
    .await;
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A new data directory is created 0700 with its files 0600; an existing one left open to
/// others (directory 0755, database and key 0644) is tightened when the service opens it.
#[cfg(unix)]
#[tokio::test]
async fn data_directory_and_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::new(BIN, "sqlite");
    // Fresh: a data directory that does not exist yet.
    let fresh = env.dir.join("fresh");
    let out = env.command().env("CLOUDSIGN_DATA_DIR", &fresh).args(["admin", "init"]).status();
    assert!(out.unwrap().success());
    assert_eq!(mode(&fresh), 0o700);
    let names: Vec<_> = std::fs::read_dir(&fresh).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(names.iter().any(|p| p.ends_with("cloudsign.db")) && names.iter().any(|p| p.ends_with("kek")), "{names:?}");
    for p in &names {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }

    // Loose: the harness's directory, opened up after the first run.
    env.add_user("alice");
    let loose = [env.dir.clone(), env.file("cloudsign.db"), env.file("kek")];
    std::fs::set_permissions(&loose[0], std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in &loose[1..] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = env.start();
    assert_eq!(mode(&env.dir), 0o700);
    for f in ["cloudsign.db", "cloudsign.db-wal", "cloudsign.db-shm", "kek"] {
        assert_eq!(mode(&env.file(f)), 0o600, "{f}");
    }
    assert!(env.server_log().contains("open to other users"), "the tightening is logged: {}", env.server_log());
    drop(server);
}
