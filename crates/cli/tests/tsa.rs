//! The built-in RFC 3161 time-stamping authority, judged by `openssl ts`: replies from `/tsa`
//! and tokens from `signatures/timestamp` (v1 and v2) verify against the CA; bad requests get a
//! `rejection` with the right failure info.

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

async fn post_tsa(server: &Server, body: Vec<u8>) -> Vec<u8> {
    let resp = reqwest::Client::new()
        .post(format!("{}/tsa", server.url))
        .header("content-type", "application/timestamp-query")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/timestamp-reply");
    resp.bytes().await.unwrap().to_vec()
}

fn reply_text(reply: &std::path::Path, token: bool) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["ts", "-reply", "-in"]).arg(reply).arg("-text");
    if token {
        cmd.args(["-token_in", "-token_out"]);
    }
    run(&mut cmd)
}

#[tokio::test]
async fn rfc3161_tsa() {
    // As deployed: the TSA's certificate names the service's OCSP responder and CRL.
    let env = Env::new(BIN, "sqlite").with_public_url();
    env.add_user("alice");
    let server = env.start();
    let (issuing, root) = write_ca(&env);
    let doc = env.file("doc.txt");
    std::fs::write(&doc, b"a document to time-stamp").unwrap();

    // openssl ts -query -> POST /tsa -> openssl ts -verify
    let mut serials = Vec::new();
    for i in 0..2 {
        let query = env.file(&format!("q{i}.tsq"));
        run(Command::new("openssl").args(["ts", "-query", "-sha256", "-cert", "-data"]).arg(&doc).arg("-out").arg(&query));
        let reply = env.file(&format!("r{i}.tsr"));
        std::fs::write(&reply, post_tsa(&server, std::fs::read(&query).unwrap()).await).unwrap();
        let text = reply_text(&reply, false);
        assert!(text.contains("Status: Granted."), "{text}");
        assert!(text.contains("Policy OID: 2.25.270497441424498136419815473036385318735"), "{text}");
        assert!(text.contains("Accuracy: 0x01 seconds"), "{text}");
        serials.push(text.lines().find(|l| l.starts_with("Serial number:")).unwrap().to_string());
        openssl_ts_verify(&env, &reply, &query);
    }
    assert_ne!(serials[0], serials[1], "serial numbers are unique");

    // Refusals are rejections with failure info, not HTTP errors.
    let bad = env.file("bad.tsr");
    std::fs::write(&bad, post_tsa(&server, b"not a request".to_vec()).await).unwrap();
    let text = reply_text(&bad, false);
    assert!(text.contains("Status: Rejected."), "{text}");
    assert!(text.contains("transaction not permitted or supported"), "{text}");
    let sha1_query = env.file("sha1.tsq");
    run(Command::new("openssl").args(["ts", "-query", "-sha1", "-data"]).arg(&doc).arg("-out").arg(&sha1_query));
    std::fs::write(&bad, post_tsa(&server, std::fs::read(&sha1_query).unwrap()).await).unwrap();
    let text = reply_text(&bad, false);
    assert!(text.contains("Status: Rejected.") && text.contains("unrecognized or unsupported algorithm"), "{text}");
    let policy_query = env.file("policy.tsq");
    run(Command::new("openssl")
        .args(["ts", "-query", "-sha256", "-tspolicy", "1.2.3.4", "-data"])
        .arg(&doc)
        .arg("-out")
        .arg(&policy_query));
    std::fs::write(&bad, post_tsa(&server, std::fs::read(&policy_query).unwrap()).await).unwrap();
    let text = reply_text(&bad, false);
    assert!(text.contains("Status: Rejected.") && text.contains("policy is not supported"), "{text}");

    // signatures/timestamp in both API versions, with a nonce.
    let digest = sha256(&std::fs::read(&doc).unwrap());
    for version in ["v1", "v2"] {
        let mut api = if version == "v1" { Api::v1(&server) } else { Api::new(&server) };
        api.login("alice").await;
        let (_, info) = api.post("info", json!({})).await;
        assert!(info["methods"].as_array().unwrap().contains(&json!("signatures/timestamp")));
        let resp = api.ok("signatures/timestamp", json!({"hash": b64(&digest), "hashAlgo": SHA256, "nonce": "0badc0ffee15beef"})).await;
        let token = env.file(&format!("token-{version}.der"));
        std::fs::write(&token, unb64(resp["timestamp"].as_str().unwrap())).unwrap();
        let text = reply_text(&token, true);
        assert!(text.contains("Nonce: 0x0BADC0FFEE15BEEF"), "{text}");
        let out = run(Command::new("openssl")
            .args(["ts", "-verify", "-token_in", "-in"])
            .arg(&token)
            .args(["-digest", &hex(&digest)])
            .arg("-CAfile")
            .arg(&root)
            .arg("-untrusted")
            .arg(&issuing));
        assert!(out.contains("Verification: OK"), "{out}");
        api.err("signatures/timestamp", json!({"hash": b64(&digest), "hashAlgo": SHA256, "nonce": "xyz"}), 400, "invalid_request", "nonce")
            .await;
        api.err("signatures/timestamp", json!({"hash": b64(&digest[..20]), "hashAlgo": SHA256}), 400, "invalid_request", "length").await;
        api.err("signatures/timestamp", json!({"hash": b64(&digest), "hashAlgo": "1.3.14.3.2.26"}), 400, "invalid_request", "hashAlgo")
            .await;
        api.err("signatures/timestamp", json!({"hash": "", "hashAlgo": SHA256}), 400, "invalid_request", "Empty hash").await;
    }
    drop(server);

    // The policy is configuration.
    let custom = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_TSA_POLICY", "1.3.6.1.4.1.99999.1");
    custom.add_user("carol");
    let server = custom.start();
    let query = custom.file("custom.tsq");
    run(Command::new("openssl")
        .args(["ts", "-query", "-sha256", "-tspolicy", "1.3.6.1.4.1.99999.1", "-data"])
        .arg(&doc)
        .arg("-out")
        .arg(&query));
    let reply = custom.file("custom.tsr");
    std::fs::write(&reply, post_tsa(&server, std::fs::read(&query).unwrap()).await).unwrap();
    let text = reply_text(&reply, false);
    assert!(text.contains("Status: Granted.") && text.contains("Policy OID: 1.3.6.1.4.1.99999.1"), "{text}");
    drop(server);

    // The TSA can be switched off.
    let off = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_TSA_ENABLED", "false");
    off.add_user("bob");
    let server = off.start();
    let mut api = Api::new(&server);
    api.login("bob").await;
    let (_, info) = api.post("info", json!({})).await;
    assert!(!info["methods"].as_array().unwrap().contains(&json!("signatures/timestamp")));
    api.err("signatures/timestamp", json!({"hash": b64(&digest), "hashAlgo": SHA256}), 400, "invalid_request", "not enabled").await;
}
