//! Atomic SAD consumption: many parallel signHash calls on one SAD, spread over two server
//! processes on one PostgreSQL database (and over one SQLite server), produce exactly
//! `numSignatures` signatures, each verified by openssl.

mod common;

use common::*;
use serde_json::Value;

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

#[tokio::test]
async fn parallel_sign_hash_two_postgres_nodes() {
    let env = Env::new(BIN, "postgres");
    parallel_sign_hash(&env, 2).await;
}

#[tokio::test]
async fn parallel_sign_hash_sqlite() {
    let env = Env::new(BIN, "sqlite");
    parallel_sign_hash(&env, 1).await;
}

async fn parallel_sign_hash(env: &Env, nodes: usize) {
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1", "--multisign", "1000"]);
    let id = cred["credentialID"].as_str().unwrap().to_string();
    let servers: Vec<Server> = (0..nodes).map(|_| env.start()).collect();
    let mut apis: Vec<Api> = servers.iter().map(Api::new).collect();
    apis[0].login("alice").await;
    let token = apis[0].token.clone();
    for api in apis.iter_mut() {
        api.token = token.clone(); // a token issued by one node works on every node
    }

    for (per_request, authorized, requests) in [(1usize, 20u64, 100usize), (3, 20, 40)] {
        let sad = apis[0].sad(&id, authorized, None).await;
        let mut tasks = Vec::new();
        for i in 0..requests {
            let api = Api { http: apis[i % nodes].http.clone(), base: apis[i % nodes].base.clone(), token: token.clone() };
            let (id, sad) = (id.clone(), sad.clone());
            tasks.push(tokio::spawn(async move {
                let docs: Vec<Vec<u8>> = (0..per_request).map(|j| format!("document {i}/{j}").into_bytes()).collect();
                let digests: Vec<Vec<u8>> = docs.iter().map(|d| sha256(d)).collect();
                let (status, body) = api.sign(&id, &sad, &digests, ECDSA_SHA256, None).await;
                (status, body, docs)
            }));
        }
        let mut signed = 0usize;
        let mut refused = 0usize;
        let mut checked = 0;
        for t in tasks {
            let (status, body, docs): (u16, Value, Vec<Vec<u8>>) = t.await.unwrap();
            match status {
                200 => {
                    let sigs = body["signatures"].as_array().unwrap();
                    assert_eq!(sigs.len(), per_request, "all or nothing");
                    signed += sigs.len();
                    if checked < 3 {
                        let der = cred["certificate"].as_str().unwrap().lines().filter(|l| !l.starts_with("-----")).collect::<String>();
                        openssl_verify_signature(&env.dir, &der, &docs[0], &unb64(sigs[0].as_str().unwrap()), "sha256", "ecdsa");
                        checked += 1;
                    }
                }
                400 => {
                    assert_eq!(body["error"], "invalid_request", "{body}");
                    refused += 1;
                }
                other => panic!("unexpected status {other}: {body}"),
            }
        }
        let expected = (authorized as usize / per_request) * per_request;
        assert_eq!(signed, expected, "exactly the authorized number of signatures ({per_request} per request)");
        assert_eq!(refused, requests - expected / per_request);
    }

    // A SAD bound to 10 digests, each sent twice, spread over the nodes: each digest signs
    // once (PostgreSQL batches run bound consumptions in savepoints; a refusal undoes only its
    // own statements).
    let docs: Vec<Vec<u8>> = (0..10).map(|i| format!("bound {i}").into_bytes()).collect();
    let digests: Vec<Vec<u8>> = docs.iter().map(|d| sha256(d)).collect();
    let sad = apis[0].sad(&id, 10, Some((&digests, "2.16.840.1.101.3.4.2.1"))).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let api = Api { http: apis[i % nodes].http.clone(), base: apis[i % nodes].base.clone(), token: token.clone() };
        let (id, sad, digest) = (id.clone(), sad.clone(), digests[i % 10].clone());
        tasks.push(tokio::spawn(async move { api.sign(&id, &sad, &[digest], ECDSA_SHA256, Some("2.16.840.1.101.3.4.2.1")).await }));
    }
    let mut bound_signed = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => bound_signed += 1,
            400 => assert_eq!(body["error"], "invalid_request", "{body}"),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!(bound_signed, 10, "each bound digest signs exactly once");

    // The audit log agrees: one record per successful request.
    let audit = env.admin(&["audit", "--json", "--limit", "100000"], "");
    let ok: usize = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "signatures.signHash" && e["outcome"] == "ok")
        .map(|e| e["detail"]["hashes"].as_array().unwrap().len())
        .sum();
    assert_eq!(ok, 20 + 18 + 10);
    drop(servers);
}
