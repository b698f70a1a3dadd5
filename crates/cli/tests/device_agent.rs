//! `cloudsign device`, the bridge agent (issue 18, scenario [2], `docs/device-protocol.md`):
//! SoftHSM2 as the signer's card (keys made by OpenSC's `pkcs11-tool`, not by us), the real
//! `cloudsign serve` with `[device] enabled = true`, `admin device pair`, `device pair` fed the
//! code, the confirmation and the card PIN on stdin, then `device run --once` answering one
//! request while an application calls `credentials/authorize` and `signatures/signHash` (v2).
//! Every signature is verified with `openssl` against the certificate the service issued.
//! Then the same card behind the CSC API's other paths: signHash in the asynchronous mode
//! (accepted while the agent is away, signPolling pending until the card answers; a decline is
//! `access_denied` there too and gives the SAD back; an unanswered request expires and costs
//! nothing), and signDoc, where the service builds CAdES, XAdES, JAdES and PAdES structures at
//! B-B, B-T, B-LT and B-LTA and the card signs their digests (checked by `cloudsign verify` and
//! pyHanko).

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::agent::*;
use common::hsm;
use common::verify::verify_passes;
use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const SHA256_RSA: &str = "1.2.840.113549.1.1.11";

/// A service with the device protocol on, alice, and a SoftHSM2 token holding an EC P-256 and
/// an RSA-2048 key (the "card"). Returns the env and the token's SOFTHSM2_CONF.
fn setup() -> (Env, PathBuf) {
    card_service("")
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

/// signHash in the asynchronous mode (CSC API 2.2.0.0 `operationMode: "A"`) of one digest.
async fn sign_hash_async(api: &Api, credential: &str, sad: &str, digest: &[u8]) -> String {
    let (s, v) = api
        .post(
            "signatures/signHash",
            json!({"credentialID": credential, "SAD": sad, "hashes": [b64(digest)], "signAlgo": ECDSA_SHA256,
                "hashAlgorithmOID": SHA256, "operationMode": "A"}),
        )
        .await;
    assert_eq!(s, 200, "accepted: {v}");
    v["responseID"].as_str().unwrap().to_string()
}

/// signPolling until the job has ended (every answer before checked "still being processed").
async fn poll_until_done(api: &Api, response_id: &str) -> (u16, Value) {
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let (s, v) = api.post("signatures/signPolling", json!({"responseID": response_id})).await;
        if s == 400 && v["error_description"].as_str().is_some_and(|d| d.contains("still being processed")) {
            assert!(std::time::Instant::now() < deadline, "the job never ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        return (s, v);
    }
}

/// signHash with an existing SAD, retried while the device is not connected yet (that
/// refusal spends nothing).
async fn sign_with(api: &Api, credential: &str, sad: &str, digest: &[u8]) -> (u16, Value) {
    for _ in 0..50 {
        let (s, v) = api.sign(credential, sad, &[digest.to_vec()], ECDSA_SHA256, Some(SHA256)).await;
        if s == 400 && v["error_description"].as_str().unwrap_or_default().contains("not connected") {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        return (s, v);
    }
    panic!("the device never connected");
}

fn audit_events(env: &Env) -> Vec<Value> {
    env.admin(&["audit", "--json"], "").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn asynchronous_sign_hash_waits_for_the_card() {
    let (env, conf) = setup();
    let server = env.start();
    let dir = env.dir.join("agent");
    let credential = pair(&env, &server, &conf, &dir, "card-ec");
    let mut api = Api::new(&server);
    api.login("alice").await;

    // Accepted while the agent is not running (an offline device is no error in mode A), and
    // pending until the card has answered.
    let data = b"signed asynchronously on the card".to_vec();
    let digest = sha256(&data);
    let sad = api.sad(&credential, 1, Some((std::slice::from_ref(&digest), SHA256))).await;
    let response_id = sign_hash_async(&api, &credential, &sad, &digest).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, v) = api.post("signatures/signPolling", json!({"responseID": response_id})).await;
    assert_error("signPolling", s, &v, 400, "invalid_request", "still being processed");
    let running = Running::start(&conf, &dir, &format!("y\n{}\n", hsm::PIN));
    let (s, v) = poll_until_done(&api, &response_id).await;
    assert_eq!(s, 200, "{v}\n{}", running.log());
    openssl_verify(&api, &env, &credential, &data, &unb64(v["signatures"][0].as_str().unwrap())).await;
    let (ok, log) = running.wait();
    assert!(ok, "{log}");
    assert!(log.contains(&verification_code(&[&digest])), "the code is shown: {log}");
    // Handed out once.
    api.err("signatures/signPolling", json!({"responseID": response_id}), 400, "invalid_request", "Invalid parameter responseID").await;

    // Declined on the card: signPolling answers as signHash would (400 access_denied), and the
    // job's SAD is given back: its one signature of its one digest can still be made.
    let data = b"declined asynchronously".to_vec();
    let digest = sha256(&data);
    let sad = api.sad(&credential, 1, Some((std::slice::from_ref(&digest), SHA256))).await;
    let running = Running::start(&conf, &dir, "n\n");
    running.wait_for("connected to", 1);
    let response_id = sign_hash_async(&api, &credential, &sad, &digest).await;
    let (s, v) = poll_until_done(&api, &response_id).await;
    assert_error("signPolling", s, &v, 400, "access_denied", "The signer declined on the device");
    let (ok, log) = running.wait();
    assert!(ok, "{log}");
    let running = Running::start(&conf, &dir, &format!("y\n{}\n", hsm::PIN));
    running.wait_for("connected to", 1);
    let (s, v) = sign_with(&api, &credential, &sad, &digest).await;
    assert_eq!(s, 200, "the SAD was given back: {v}\n{}", running.log());
    openssl_verify(&api, &env, &credential, &data, &unb64(v["signatures"][0].as_str().unwrap())).await;
    let (ok, log) = running.wait();
    assert!(ok, "{log}");
    let (s, v) = api.sign(&credential, &sad, std::slice::from_ref(&digest), ECDSA_SHA256, Some(SHA256)).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "");

    // Audited: the job's give-back, and the device's declining answer.
    let events = audit_events(&env);
    let given_back = events.iter().find(|e| e["event"] == "signatures.signHash" && e["detail"]["returned"].is_string());
    let given_back = given_back.unwrap_or_else(|| panic!("no give-back record: {events:?}"));
    assert!(given_back["outcome"].as_str().unwrap().eq_ignore_ascii_case("failed"), "{given_back}");
    assert!(events.iter().any(|e| e["event"] == "device.answer" && e["outcome"].as_str().unwrap().eq_ignore_ascii_case("denied")));
    drop(server);
}

#[tokio::test]
async fn an_unanswered_asynchronous_request_expires_and_costs_nothing() {
    let (env, conf) = card_service("request_seconds = 2\n");
    let server = env.start();
    let dir = env.dir.join("agent");
    let credential = pair(&env, &server, &conf, &dir, "card-ec");
    let mut api = Api::new(&server);
    api.login("alice").await;
    let digest = sha256(b"nobody answers");
    let sad = api.sad(&credential, 1, Some((std::slice::from_ref(&digest), SHA256))).await;
    // No agent runs: the request waits, then expires; the job fails, its SAD given back.
    for _ in 0..2 {
        let response_id = sign_hash_async(&api, &credential, &sad, &digest).await;
        let (s, v) = poll_until_done(&api, &response_id).await;
        assert_error("signPolling", s, &v, 400, "invalid_request", "The signer did not answer on the device in time");
        // (The second accept spends the same SAD again: it was given back.)
    }
    let events = audit_events(&env);
    let cancels = events.iter().filter(|e| e["event"] == "device.cancel" && e["detail"]["reason"] == "expired").count();
    assert_eq!(cancels, 2, "{events:?}");
    drop(server);
}

#[tokio::test]
async fn sign_doc_on_the_card_at_every_level() {
    let (env, conf) = setup();
    let server = env.start();
    let dir = env.dir.join("agent");
    let credential = pair(&env, &server, &conf, &dir, "card-ec");
    let (_, root) = write_ca(&env);
    let mut api = Api::new(&server);
    api.login("alice").await;

    let data = b"a contract, signed by the service's structures and the card's key\n".to_vec();
    let xml =
        b"<?xml version=\"1.0\"?>\n<inv:Invoice xmlns:inv=\"urn:example:invoice\"><inv:Total>12.50</inv:Total></inv:Invoice>\n".to_vec();
    let payload = b"a payload for JAdES, detached\n".to_vec();
    let stamped = b"a contract with a signature time-stamp\n".to_vec();
    let pdf = one_page_pdf("signed by signDoc on the card");
    // SCAL 2: the SAD is bound to the documents' digests (what the service hashes of each).
    let bound = |docs: &[&[u8]]| docs.iter().map(|d| sha256(d)).collect::<Vec<_>>();
    let body = |sad: &str| {
        json!({"credentialID": credential, "SAD": sad,
            "documentDigests": [
                {"hashes": [b64(&sha256(&data))], "hashAlgorithmOID": SHA256, "signature_format": "C",
                    "conformance_level": "Ades-B-B", "signAlgo": ECDSA_SHA256},
                {"hashes": [b64(&sha256(&stamped))], "hashAlgorithmOID": SHA256, "signature_format": "C",
                    "conformance_level": "Ades-B-T", "signAlgo": ECDSA_SHA256}],
            "documents": [
                {"document": b64(&xml), "signature_format": "X", "conformance_level": "Ades-B-LT", "signAlgo": ECDSA_SHA256},
                {"document": b64(&payload), "signature_format": "J", "conformance_level": "Ades-B-LT", "signAlgo": ECDSA_SHA256},
                {"document": b64(&pdf), "signature_format": "P", "conformance_level": "Ades-B-LTA", "signAlgo": ECDSA_SHA256}]})
    };

    // Not connected: refused before the SAD is spent.
    let sad = api.sad(&credential, 5, Some((&bound(&[&data, &stamped, &xml, &payload, &pdf]), SHA256))).await;
    api.err("signatures/signDoc", body(&sad), 400, "invalid_request", "The credential's signing device is not connected").await;

    // One request per document, each shown with what it is; the same SAD signs all five.
    let running = Running::start_many(&conf, &dir, &format!("y\n{}\n", hsm::PIN).repeat(5));
    running.wait_for("connected to", 1);
    let v = api.ok("signatures/signDoc", body(&sad)).await;
    let log = running.log();
    assert_eq!(log.matches("Sign? [y/N]").count(), 5, "{log}");
    assert!(log.contains("PDF document, PAdES B-LTA signature (5 of 5)"), "{log}");
    assert!(!log.contains(hsm::PIN), "{log}");
    drop(running);

    let write = |name: &str, b64_text: &Value| {
        let f = env.file(name);
        std::fs::write(&f, unb64(b64_text.as_str().unwrap())).unwrap();
        f
    };
    let content = env.file("contract.bin");
    std::fs::write(&content, &data).unwrap();
    let detached = env.file("payload.bin");
    std::fs::write(&detached, &payload).unwrap();
    let cades = write("card.p7s", &v["SignatureObject"][0]);
    let cades_t = write("card-t.p7s", &v["SignatureObject"][1]);
    let jades = write("card.json", &v["SignatureObject"][2]);
    let stamped_file = env.file("stamped.bin");
    std::fs::write(&stamped_file, &stamped).unwrap();
    let xades = write("card.xml", &v["DocumentWithSignature"][0]);
    let pades = write("card.pdf", &v["DocumentWithSignature"][1]);
    // B-B and B-T with the revocation status fetched from the running service; the long-term
    // levels offline, from what they embed.
    for (file, detached, level, offline) in [
        (&cades, Some(&content), "B-B", false),
        (&cades_t, Some(&stamped_file), "B-T", false),
        (&xades, None, "B-LT", true),
        (&jades, Some(&detached), "B-LT", true),
        (&pades, None, "B-LTA", true),
    ] {
        let report = verify_passes(&env, file, &root, detached.map(|p| p.as_path()), offline);
        assert!(report.contains(&format!("level:         {level}\n")), "{file:?}: {report}");
    }
    let p = run(Command::new(venv_tool("pyhanko")).args(["sign", "validate", "--trust"]).arg(&root).arg("--trust-replace").arg(&pades));
    assert!(p.contains(":INTACT:TRUSTED"), "pyhanko: {p}");

    // Asynchronously: the job waits for the card, signPolling hands out the PDF.
    let sad = api.sad(&credential, 1, Some((&bound(&[&pdf]), SHA256))).await;
    let (s, accepted) = api
        .post(
            "signatures/signDoc",
            json!({"credentialID": credential, "SAD": sad, "operationMode": "A",
                "documents": [{"document": b64(&pdf), "signature_format": "P", "conformance_level": "Ades-B-LT", "signAlgo": ECDSA_SHA256}]}),
        )
        .await;
    assert_eq!(s, 200, "{accepted}");
    let running = Running::start(&conf, &dir, &format!("y\n{}\n", hsm::PIN));
    let (s, v) = poll_until_done(&api, accepted["responseID"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{v}\n{}", running.log());
    let (ok, log) = running.wait();
    assert!(ok && log.contains("PDF document, PAdES B-LT signature"), "{log}");
    let pades = write("card-async.pdf", &v["DocumentWithSignature"][0]);
    let report = verify_passes(&env, &pades, &root, None, true);
    assert!(report.contains("level:         B-LT\n"), "{report}");

    // Declined: nothing is handed out and the SAD is whole again (a second signDoc with it is
    // accepted and signed).
    let sad = api.sad(&credential, 1, Some((&bound(&[&pdf]), SHA256))).await;
    let one = json!({"credentialID": credential, "SAD": sad,
        "documents": [{"document": b64(&pdf), "signature_format": "P", "conformance_level": "Ades-B-B", "signAlgo": ECDSA_SHA256}]});
    let running = Running::start(&conf, &dir, "n\n");
    running.wait_for("connected to", 1);
    api.err("signatures/signDoc", one.clone(), 400, "access_denied", "The signer declined on the device").await;
    let _ = running.wait();
    let running = Running::start(&conf, &dir, &format!("y\n{}\n", hsm::PIN));
    running.wait_for("connected to", 1);
    let v = api.ok("signatures/signDoc", one).await;
    assert!(v["DocumentWithSignature"][0].is_string(), "{v}");
    let (ok, log) = running.wait();
    assert!(ok, "{log}");
    drop(server);
}
