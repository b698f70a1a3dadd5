//! The fault test of issue 15 ("How it is checked"): signHash load from 20 clients, `kill -9`
//! of the server mid-load, restart on the same store. Then every signature a client received
//! has its audit record, no SAD is spent beyond its count (and the SADs' counts account for
//! exactly the audited signatures: consumption and audit commit together), the SQLite file
//! passes `PRAGMA integrity_check`, and `admin audit verify` finds the hash chain intact. The
//! same with two nodes on one PostgreSQL database, killing one while the other carries on.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const CLIENTS: usize = 20;
/// Signatures per SAD: a client works through several SADs, so SADs are mid-use at the kill.
const PER_SAD: i64 = 25;
/// The kill comes this long into the load; the load ends by `LOAD` in any case.
const KILL_AFTER: Duration = Duration::from_millis(1500);
const LOAD: Duration = Duration::from_secs(4);

#[derive(Default)]
struct Received {
    /// Hex digests whose signature the client got.
    digests: Vec<String>,
    /// Signatures received per SAD.
    per_sad: Vec<usize>,
}

/// One client: authorize a SAD of `PER_SAD` signatures, spend it one hash at a time, again,
/// until the deadline or until its server is gone.
async fn client(http: reqwest::Client, base: String, token: String, credential: String, i: usize, deadline: Instant) -> Received {
    let mut got = Received::default();
    let post = |method: &str, body: Value| {
        http.post(format!("{base}/{method}")).bearer_auth(&token).json(&body).timeout(Duration::from_secs(15)).send()
    };
    let mut n = 0usize;
    'sads: while Instant::now() < deadline {
        let body = json!({"credentialID": credential, "numSignatures": PER_SAD, "authData": [{"id": "PIN", "value": PIN}]});
        let Ok(resp) = post("credentials/authorize", body).await else { break };
        if resp.status() != 200 {
            break;
        }
        let Ok(v) = resp.json::<Value>().await else { break };
        let sad = v["SAD"].as_str().unwrap().to_string();
        got.per_sad.push(0);
        for _ in 0..PER_SAD {
            if Instant::now() >= deadline {
                break 'sads;
            }
            n += 1;
            let digest = sha256(format!("crash test client {i} document {n}").as_bytes());
            let body = json!({"credentialID": credential, "SAD": sad, "hashes": [b64(&digest)], "signAlgo": ECDSA_SHA256});
            let Ok(resp) = post("signatures/signHash", body).await else { break 'sads };
            let status = resp.status().as_u16();
            let Ok(v) = resp.json::<Value>().await else { break 'sads };
            match status {
                200 => {
                    assert_eq!(v["signatures"].as_array().map(Vec::len), Some(1), "{v}");
                    got.digests.push(hex(&digest));
                    *got.per_sad.last_mut().unwrap() += 1;
                }
                // A database that went away with the node (PostgreSQL connections being torn down).
                503 => break 'sads,
                other => panic!("signHash: unexpected status {other}: {v}"),
            }
        }
    }
    got
}

/// `SELECT` one row of numbers through the database's own client.
fn query(env: &Env, sql: &str) -> Vec<i64> {
    let out = match &env.db {
        Db::Sqlite => run(Command::new("sqlite3").arg(env.file("cloudsign.db")).arg(sql)),
        Db::Postgres(name) => run(Command::new("psql").args(["-h", PG_HOST, "-d", name, "-tA", "-F", "|", "-c", sql])),
    };
    out.trim().split('|').map(|v| v.parse().unwrap_or_else(|_| panic!("{sql}: {out:?}"))).collect()
}

async fn crash_under_load(env: &Env, nodes: usize) {
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1", "--multisign", &PER_SAD.to_string()]);
    let id = cred["credentialID"].as_str().unwrap().to_string();
    let mut servers: Vec<Server> = (0..nodes).map(|_| env.start()).collect();
    let mut api = Api::new(&servers[0]);
    api.login("alice").await;
    let token = api.token.clone().unwrap();

    let start = Instant::now();
    let deadline = start + LOAD;
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let base = format!("{}/csc/v2", servers[i % nodes].url);
        tasks.push(tokio::spawn(client(reqwest::Client::new(), base, token.clone(), id.clone(), i, deadline)));
    }
    tokio::time::sleep(KILL_AFTER).await;
    // kill -9 (SIGKILL) of the first node, mid-load.
    let mut victim = servers.remove(0);
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    let mut received = Received::default();
    for t in tasks {
        let r = t.await.unwrap();
        received.digests.extend(r.digests);
        received.per_sad.extend(r.per_sad);
    }
    assert!(start.elapsed() < LOAD + Duration::from_secs(20), "the load is bounded");
    assert!(received.digests.len() >= CLIENTS, "the load ran before the kill: {} signatures", received.digests.len());

    // Restart on the same store (the survivor, if any, keeps running).
    servers.push(env.start());

    if matches!(env.db, Db::Sqlite) {
        let out = run(Command::new("sqlite3").arg(env.file("cloudsign.db")).arg("PRAGMA integrity_check"));
        assert_eq!(out.trim(), "ok", "integrity_check");
    }

    // Every signature a client received has its audit record.
    let export = env.admin(&["audit", "export"], "");
    let mut audited = Vec::new();
    for line in export.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        if e["event"] == "signatures.signHash" && e["outcome"] == "ok" {
            for h in e["detail"]["hashes"].as_array().unwrap() {
                audited.push(h.as_str().unwrap().to_string());
            }
        }
    }
    let audited_set: HashSet<&String> = audited.iter().collect();
    assert_eq!(audited_set.len(), audited.len(), "each digest signed once");
    let missing: Vec<&String> = received.digests.iter().filter(|d| !audited_set.contains(d)).collect();
    assert!(missing.is_empty(), "{} received signatures without an audit record", missing.len());

    // No SAD spent beyond its count, and the counts account for exactly the audited signatures.
    assert!(received.per_sad.iter().all(|&n| n as i64 <= PER_SAD), "a client got more signatures from one SAD than it allowed");
    let row = query(
        env,
        &format!("SELECT COUNT(*), COALESCE(SUM(remaining), 0), COALESCE(MIN(remaining), 0) FROM sads WHERE credential_id = '{id}'"),
    );
    let (sads, remaining, min_remaining) = (row[0], row[1], row[2]);
    assert!(min_remaining >= 0 && sads > 0);
    assert_eq!(sads * PER_SAD - remaining, audited.len() as i64, "SAD counts spent = audited signatures");
    assert!(audited.len() >= received.digests.len());

    let (ok, out, err) = env.admin_result(&["audit", "verify"], "");
    assert!(ok, "audit verify after the crash: {out}{err}");
    assert!(out.starts_with("ok: "), "{out}");
    eprintln!(
        "{nodes} node(s): {} signatures received, {} audited, {sads} SADs; verify: {}",
        received.digests.len(),
        audited.len(),
        out.trim()
    );
    drop(servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_sign_hash_load_sqlite() {
    let env = Env::new(BIN, "sqlite");
    crash_under_load(&env, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_of_two_postgres_nodes_under_load() {
    let env = Env::new(BIN, "postgres");
    crash_under_load(&env, 2).await;
}
