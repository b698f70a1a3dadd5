//! Asynchronous signing (CSC API 2.2.0.0 `operationMode: "A"`, `signatures/signPolling`) on
//! the real binary: accept → pending → the result once → an error; the signatures checked by
//! openssl and pyHanko; a restart between accept and poll; two PostgreSQL nodes (one accepts,
//! the other runs and answers); `response_uri` notified once on a listener of the test and
//! refused for hosts the configuration does not allow; a failed job gives its SAD back.
//!
//! A node started with `[asynchronous] worker = false` accepts and answers polls but runs no
//! job, which makes "still running" observable without timing tricks.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

/// A configuration file with this `[asynchronous]` table; its path, for `CLOUDSIGN_CONFIG`.
fn config(env: &Env, name: &str, table: &str) -> String {
    let path = env.file(name);
    std::fs::write(&path, format!("[asynchronous]\n{table}\n")).unwrap();
    path.display().to_string()
}

/// What most tests start from: alice with an ECDSA P-256 credential (`admin credential add
/// --key ecdsa-p256` and `credential`), a server on SQLite whose `[asynchronous]` table is
/// `table`, and alice logged in there. Fields drop in order: the server before the environment.
struct Alice {
    api: Api,
    server: Server,
    id: String,
    cred: Value,
    env: Env,
}

async fn alice(credential: &[&str], table: &str) -> Alice {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let cred = env.add_credential("alice", &[&["--key", "ecdsa-p256"], credential].concat());
    let id = cred["credentialID"].as_str().unwrap().to_string();
    let cfg = config(&env, "first.toml", table);
    let server = env.start_env(&[("CLOUDSIGN_CONFIG", &cfg)]);
    let mut api = Api::new(&server);
    api.login("alice").await;
    Alice { api, server, id, cred, env }
}

/// A server of `env` started (again) with `table`, and `api`'s session pointed at it.
fn restarted(env: &Env, api: &Api, table: &str) -> (Server, Api) {
    let cfg = config(env, "restarted.toml", table);
    let server = env.start_env(&[("CLOUDSIGN_CONFIG", &cfg)]);
    let api = Api { base: Api::new(&server).base, ..api.clone() };
    (server, api)
}

/// pyHanko validates the PDF's signature against `root` (when the pinned venv is there).
fn pyhanko_validate(pdf: &std::path::Path, root: &std::path::Path) {
    let v = run(Command::new(venv_tool("pyhanko")).args(["sign", "validate", "--trust"]).arg(root).arg("--trust-replace").arg(pdf));
    assert!(v.contains(":INTACT:TRUSTED") && v.contains("UNTOUCHED"), "pyhanko: {v}");
}

/// `openssl cms -verify` of a detached CAdES signature of `content`, to the CA's root.
fn cms_verify(env: &Env, cms: &[u8], content: &[u8], issuing: &std::path::Path, root: &std::path::Path) {
    let tag = format!("{:x}", sha256(cms)[0] as u32 * 65536 + sha256(content)[1] as u32);
    let (sig_file, content_file, chain) =
        (env.file(&format!("{tag}.p7s")), env.file(&format!("{tag}.txt")), env.file(&format!("{tag}.pem")));
    std::fs::write(&sig_file, cms).unwrap();
    std::fs::write(&content_file, content).unwrap();
    std::fs::write(&chain, [std::fs::read(issuing).unwrap(), std::fs::read(root).unwrap()].concat()).unwrap();
    let v = Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(&sig_file)
        .arg("-content")
        .arg(&content_file)
        .arg("-CAfile")
        .arg(&chain)
        .args(["-purpose", "any", "-out", "/dev/null"])
        .output()
        .unwrap();
    assert!(v.status.success(), "openssl cms -verify: {}", String::from_utf8_lossy(&v.stderr));
}

fn cert_der_b64(cred: &Value) -> String {
    cred["certificate"].as_str().unwrap().lines().filter(|l| !l.starts_with("-----")).collect()
}

async fn sign_hash_async(api: &Api, id: &str, sad: &str, digests: &[Vec<u8>], extra: Value) -> (u16, Value) {
    let mut body = json!({"credentialID": id, "SAD": sad, "hashes": digests.iter().map(|d| b64(d)).collect::<Vec<_>>(),
        "signAlgo": ECDSA_SHA256, "operationMode": "A"});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    api.post("signatures/signHash", body).await
}

/// Poll until the result comes (every "still running" answer checked on the way).
async fn poll_until_done(api: &Api, response_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = api.post("signatures/signPolling", json!({"responseID": response_id})).await;
        if status == 200 {
            return body;
        }
        assert_pending(status, &body);
        assert!(Instant::now() < deadline, "no result within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_pending(status: u16, body: &Value) {
    assert_error("signatures/signPolling", status, body, 400, "invalid_request", "still being processed");
}

async fn assert_gone(api: &Api, response_id: &str) {
    api.err("signatures/signPolling", json!({"responseID": response_id}), 400, "invalid_request", "Invalid parameter responseID").await;
}

/// 20 signPolling at once for one responseID, spread over `apis` (nodes), round after round until
/// the job has ended: of all those polls exactly one gets the result; every other is told "still
/// running" (it came before the result) or "Invalid parameter responseID" (after it was taken).
async fn twenty_polls_at_once(apis: &[&Api], response_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut results = Vec::new();
    loop {
        let polls: Vec<_> = (0..20)
            .map(|i| {
                let api = apis[i % apis.len()].clone();
                let body = json!({"responseID": response_id});
                tokio::spawn(async move { api.post("signatures/signPolling", body).await })
            })
            .collect();
        let mut taken = false;
        for poll in polls {
            let (status, body) = poll.await.unwrap();
            if status == 200 {
                results.push(body);
            } else if body["error_description"].as_str().is_some_and(|d| d.contains("still being processed")) {
                assert_pending(status, &body);
            } else {
                assert_error("signPolling", status, &body, 400, "invalid_request", "Invalid parameter responseID");
                taken = true;
            }
        }
        if taken || !results.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no result within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(results.len(), 1, "exactly one poll gets the result: {results:?}");
    for api in apis {
        assert_gone(api, response_id).await;
    }
    results.pop().unwrap()
}

#[tokio::test]
async fn sign_hash_and_sign_doc_survive_a_restart_and_answer_once() {
    // Accepted on a node that runs no job: the SAD is spent now, the job waits.
    let Alice { env, id, cred, server, api } = alice(&["--scal", "1", "--multisign", "10"], "worker = false").await;
    let sad = api.sad(&id, 2, None).await;
    let docs: Vec<Vec<u8>> = (0..2).map(|i| format!("async document {i}").into_bytes()).collect();
    let digests: Vec<Vec<u8>> = docs.iter().map(|d| sha256(d)).collect();
    let (status, accepted) = sign_hash_async(&api, &id, &sad, &digests, json!({"validity_period": 600_000})).await;
    assert_eq!(status, 200, "{accepted}");
    let response_id = accepted["responseID"].as_str().expect("responseID").to_string();
    assert!(accepted.get("signatures").is_none(), "no signatures in mode A: {accepted}");
    // Spent at accept: the same SAD signs nothing more.
    let (s, v) = api.sign(&id, &sad, &digests[..1], ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "SAD");

    // Still running, under either member name; another user's poll learns nothing.
    let (s, v) = api.post("signatures/signPolling", json!({"responseID": response_id})).await;
    assert_pending(s, &v);
    let (s, v) = api.post("signatures/signPolling", json!({"requestID": response_id})).await;
    assert_pending(s, &v);
    env.admin(&["user", "add", "mallory", "--password-stdin"], &format!("{PASSWORD}\n"));
    let mut mallory = Api::new(&server);
    mallory.login("mallory").await;
    assert_gone(&mallory, &response_id).await;

    // signDoc too: a PAdES document and a detached CAdES signature of a digest.
    let pdf = one_page_pdf("signed asynchronously");
    let doc_sad = api.sad(&id, 2, None).await;
    let (s, doc_accepted) = api
        .post(
            "signatures/signDoc",
            json!({"credentialID": id, "SAD": doc_sad, "operationMode": "A",
                "documents": [{"document": b64(&pdf), "signature_format": "P", "signAlgo": ECDSA_SHA256}],
                "documentDigests": [{"hashes": [b64(&sha256(&docs[0]))], "hashAlgorithmOID": SHA256, "signature_format": "C", "signAlgo": ECDSA_SHA256}]}),
        )
        .await;
    assert_eq!(s, 200, "{doc_accepted}");
    let doc_response_id = doc_accepted["responseID"].as_str().unwrap().to_string();
    drop(server);

    // A restart, now with a worker: nothing is lost.
    let (_server, api) = restarted(&env, &api, "worker = true\npoll_interval_ms = 50");
    let result = poll_until_done(&api, &response_id).await;
    let signatures = result["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 2);
    for (doc, sig) in docs.iter().zip(signatures) {
        openssl_verify_signature(&env.dir, &cert_der_b64(&cred), doc, &unb64(sig.as_str().unwrap()), "sha256", "ecdsa");
    }
    // Once only.
    assert_gone(&api, &response_id).await;
    let (s, v) = api.post("signatures/signPolling", json!({"requestID": response_id})).await;
    assert_error("signPolling", s, &v, 400, "invalid_request", "responseID");

    let doc = poll_until_done(&api, &doc_response_id).await;
    assert_gone(&api, &doc_response_id).await;
    let signed_pdf = unb64(doc["DocumentWithSignature"][0].as_str().expect("the signed PDF"));
    let cades = unb64(doc["SignatureObject"][0].as_str().expect("the detached CAdES signature"));
    let (issuing, root) = write_ca(&env);
    let out = env.file("async.pdf");
    std::fs::write(&out, &signed_pdf).unwrap();
    pyhanko_validate(&out, &root);
    cms_verify(&env, &cades, &docs[0], &issuing, &root);

    // Mode S is untouched, and a response_uri without mode A is refused (it would be ignored).
    let sad = api.sad(&id, 1, None).await;
    let (s, v) = api
        .post(
            "signatures/signHash",
            json!({"credentialID": id, "SAD": sad, "hashes": [b64(&digests[0])], "signAlgo": ECDSA_SHA256, "response_uri": "http://127.0.0.1:1/"}),
        )
        .await;
    assert_error("signHash", s, &v, 400, "invalid_request", "response_uri");
    let (s, v) = api.sign(&id, &sad, &digests[..1], ECDSA_SHA256, None).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn a_failed_job_gives_its_sad_back() {
    let Alice { env, id, cred, server, api } = alice(&["--scal", "2"], "worker = false").await;
    // SCAL2: the SAD is bound to this one digest, signs it once.
    let digest = sha256(b"given back");
    let sad = api.sad(&id, 1, Some((std::slice::from_ref(&digest), SHA256))).await;
    let (s, accepted) = sign_hash_async(&api, &id, &sad, std::slice::from_ref(&digest), json!({})).await;
    assert_eq!(s, 200, "{accepted}");
    let response_id = accepted["responseID"].as_str().unwrap().to_string();
    drop(server);

    // The credential is disabled before any worker runs the job: it fails.
    env.admin(&["credential", "disable", &id], "");
    let (_server, api) = restarted(&env, &api, "poll_interval_ms = 50");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = api.post("signatures/signPolling", json!({"responseID": response_id})).await;
        if v["error_description"].as_str().is_some_and(|d| d.contains("still being processed")) {
            assert!(Instant::now() < deadline, "the job never ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_error("signPolling", s, &v, 400, "invalid_request", "asynchronous signature request failed");
        assert!(v["error_description"].as_str().unwrap().contains("disabled"), "{v}");
        break;
    }
    assert_gone(&api, &response_id).await;

    // The SAD is whole again: its one signature, of its one bound digest, can be made.
    env.admin(&["credential", "enable", &id], "");
    let (s, v) = api.sign(&id, &sad, std::slice::from_ref(&digest), ECDSA_SHA256, None).await;
    assert_eq!(s, 200, "the SAD was given back: {v}");
    openssl_verify_signature(
        &env.dir,
        &cert_der_b64(&cred),
        b"given back",
        &unb64(v["signatures"][0].as_str().unwrap()),
        "sha256",
        "ecdsa",
    );
    let (s, v) = api.sign(&id, &sad, std::slice::from_ref(&digest), ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "");
    // Audited: the spending at accept, and the give-back of the failed job.
    let audit = env.admin(&["audit", "--json"], "");
    let events: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let given_back = events.iter().find(|e| e["event"] == "signatures.signHash" && e["detail"]["returned"].is_string());
    let given_back = given_back.unwrap_or_else(|| panic!("no give-back record: {audit}"));
    assert_eq!(given_back["credentialID"], id.as_str());
    assert!(given_back["outcome"].as_str().unwrap().eq_ignore_ascii_case("failed"), "{given_back}");
    assert!(given_back["detail"]["error"].as_str().unwrap().contains("disabled"), "{given_back}");
}

/// A loopback HTTP listener that answers 200 to every request and keeps the bodies.
async fn listener() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then Content-Length bytes of body.
                loop {
                    let Ok(n) = s.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            keep.lock().unwrap().push(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}/signed"), got)
}

#[tokio::test]
async fn response_uri_is_called_once_and_only_where_allowed() {
    let table = "allow_loopback = true\npoll_interval_ms = 50\nresponse_uri_hosts = [\"rp.example\"]";
    let Alice { env, id, cred, server: _server, api } = alice(&["--scal", "1", "--multisign", "10"], table).await;
    let (uri, got) = listener().await;
    let sad = api.sad(&id, 1, None).await;
    let digest = sha256(b"notified");

    // Refused before anything is spent: hosts not listed, private addresses, other schemes.
    for bad in ["https://internal.example/cb", "http://10.0.0.1/cb", "https://169.254.169.254/latest", "ftp://127.0.0.1/", "not a uri"] {
        let (s, v) = sign_hash_async(&api, &id, &sad, std::slice::from_ref(&digest), json!({"response_uri": bad})).await;
        assert_error("signHash", s, &v, 400, "invalid_request", "response_uri");
    }
    // Listed, but it does not resolve (no DNS on the test machine) — or would have to resolve
    // to a public address: refused either way.
    let (s, v) = sign_hash_async(&api, &id, &sad, std::slice::from_ref(&digest), json!({"response_uri": "https://rp.example/cb"})).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "response_uri");

    let (s, accepted) = sign_hash_async(&api, &id, &sad, std::slice::from_ref(&digest), json!({"response_uri": uri})).await;
    assert_eq!(s, 200, "the refusals spent nothing: {accepted}");
    let response_id = accepted["responseID"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no notification within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let result = poll_until_done(&api, &response_id).await;
    openssl_verify_signature(
        &env.dir,
        &cert_der_b64(&cred),
        b"notified",
        &unb64(result["signatures"][0].as_str().unwrap()),
        "sha256",
        "ecdsa",
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "called once: {bodies:?}");
    let body: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body["responseID"], response_id.as_str());
}

#[tokio::test]
async fn two_postgres_nodes_accept_on_one_answer_on_the_other() {
    let env = Env::new(BIN, "postgres");
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1", "--multisign", "100"]);
    let id = cred["credentialID"].as_str().unwrap().to_string();
    let off = config(&env, "off.toml", "worker = false");
    let on = config(&env, "on.toml", "poll_interval_ms = 50");
    let front = env.start_env(&[("CLOUDSIGN_CONFIG", &off)]);
    let back = env.start_env(&[("CLOUDSIGN_CONFIG", &on)]);
    let back2 = env.start_env(&[("CLOUDSIGN_CONFIG", &on)]);
    let mut a = Api::new(&front);
    a.login("alice").await;
    let mut b = Api::new(&back);
    b.token = a.token.clone();

    // Many jobs accepted on the node without a worker, run by the two with one (SKIP LOCKED:
    // each job once), every result fetched once on the other node.
    let sad = a.sad(&id, 20, None).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let digest = sha256(format!("cluster {i}").as_bytes());
        let (s, v) = sign_hash_async(&a, &id, &sad, &[digest], json!({})).await;
        assert_eq!(s, 200, "{v}");
        ids.push(v["responseID"].as_str().unwrap().to_string());
    }
    for (i, rid) in ids.iter().enumerate() {
        let result = poll_until_done(&b, rid).await;
        let sig = unb64(result["signatures"][0].as_str().unwrap());
        openssl_verify_signature(&env.dir, &cert_der_b64(&cred), format!("cluster {i}").as_bytes(), &sig, "sha256", "ecdsa");
        assert_gone(&a, rid).await;
        assert_gone(&b, rid).await;
    }

    // One job, 20 polls at once over two nodes: one of them gets its signature.
    let sad = a.sad(&id, 1, None).await;
    let (s, v) = sign_hash_async(&a, &id, &sad, &[sha256(b"polled twenty times")], json!({})).await;
    assert_eq!(s, 200, "{v}");
    let result = twenty_polls_at_once(&[&a, &b], v["responseID"].as_str().unwrap()).await;
    let sig = unb64(result["signatures"][0].as_str().unwrap());
    openssl_verify_signature(&env.dir, &cert_der_b64(&cred), b"polled twenty times", &sig, "sha256", "ecdsa");
    // Every delivery is audited, once per job.
    let audit = env.admin(&["audit", "--json"], "");
    assert_eq!(audit.lines().filter(|l| l.contains("\"signatures.signPolling\"")).count(), 21, "{audit}");
    drop(back2);
}

/// On one node that signs at once after the accept (a software key): 20 polls at once, one
/// result; and the accept's audit record names the job its delivery names.
#[tokio::test]
async fn twenty_parallel_polls_get_the_result_once() {
    let Alice { env, id, cred, server: _server, api } = alice(&["--scal", "1", "--multisign", "10"], "poll_interval_ms = 5000").await;
    for round in 0..3 {
        let data = format!("polled at once {round}");
        let sad = api.sad(&id, 1, None).await;
        let (s, v) = sign_hash_async(&api, &id, &sad, &[sha256(data.as_bytes())], json!({})).await;
        assert_eq!(s, 200, "{v}");
        let result = twenty_polls_at_once(&[&api], v["responseID"].as_str().unwrap()).await;
        let sig = unb64(result["signatures"][0].as_str().unwrap());
        openssl_verify_signature(&env.dir, &cert_der_b64(&cred), data.as_bytes(), &sig, "sha256", "ecdsa");
    }
    let audit = env.admin(&["audit", "--json"], "");
    let events: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let accepted: Vec<&Value> =
        events.iter().filter(|e| e["event"] == "signatures.signHash" && e["detail"]["operationMode"] == "A").collect();
    let delivered: Vec<&Value> = events.iter().filter(|e| e["event"] == "signatures.signPolling").collect();
    assert_eq!((accepted.len(), delivered.len()), (3, 3), "{audit}");
    for (a, d) in accepted.iter().zip(&delivered) {
        assert!(a["detail"]["job"].is_string() && a["detail"]["job"] == d["detail"]["job"], "{a} / {d}");
        assert!(d["outcome"].as_str().unwrap().eq_ignore_ascii_case("ok"), "{d}");
    }
}

/// A job whose validity period ends before any worker runs it is not signed: its SAD is given
/// back whole, and nothing can fetch it.
#[tokio::test]
async fn a_job_run_after_its_validity_period_costs_nothing() {
    let Alice { env, id, cred, server, api } = alice(&["--scal", "1"], "worker = false").await;
    let digest = sha256(b"too late");
    let sad = api.sad(&id, 1, None).await;
    // CSC v2.0.0.2 §11.10: validity_period in milliseconds; one second.
    let (s, accepted) = sign_hash_async(&api, &id, &sad, std::slice::from_ref(&digest), json!({"validity_period": 1000})).await;
    assert_eq!(s, 200, "{accepted}");
    let response_id = accepted["responseID"].as_str().unwrap().to_string();
    let (s, v) = api.sign(&id, &sad, std::slice::from_ref(&digest), ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "SAD");
    drop(server);
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let (_server, api) = restarted(&env, &api, "poll_interval_ms = 50");
    assert_gone(&api, &response_id).await;
    // The worker fails the job and gives the SAD back: its one signature can be made now.
    let deadline = Instant::now() + Duration::from_secs(30);
    let signed = loop {
        let (s, v) = api.sign(&id, &sad, std::slice::from_ref(&digest), ECDSA_SHA256, None).await;
        if s == 200 {
            break v;
        }
        assert_error("signHash", s, &v, 400, "invalid_request", "SAD");
        assert!(Instant::now() < deadline, "the SAD was never given back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sig = unb64(signed["signatures"][0].as_str().unwrap());
    openssl_verify_signature(&env.dir, &cert_der_b64(&cred), b"too late", &sig, "sha256", "ecdsa");
    assert_gone(&api, &response_id).await;
    let audit = env.admin(&["audit", "--json"], "");
    assert!(audit.lines().any(|l| l.contains("validity period ended") && l.contains("\"returned\"")), "{audit}");
}

/// Past `max_open_jobs` an accept is refused 503 before anything is spent.
#[tokio::test]
async fn a_full_queue_refuses_before_spending() {
    let Alice { env, id, cred, server: _server, api } =
        alice(&["--scal", "1", "--multisign", "10"], "worker = false\nmax_open_jobs = 2").await;
    let sad = api.sad(&id, 3, None).await;
    for i in 0..2 {
        let (s, v) = sign_hash_async(&api, &id, &sad, &[sha256(format!("queued {i}").as_bytes())], json!({})).await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = sign_hash_async(&api, &id, &sad, &[sha256(b"one too many")], json!({})).await;
    assert_error("signHash", s, &v, 503, "temporarily_unavailable", "");
    // Its signature is still on the SAD.
    let (s, v) = api.sign(&id, &sad, &[sha256(b"one too many")], ECDSA_SHA256, None).await;
    assert_eq!(s, 200, "the refused accept spent nothing: {v}");
    openssl_verify_signature(
        &env.dir,
        &cert_der_b64(&cred),
        b"one too many",
        &unb64(v["signatures"][0].as_str().unwrap()),
        "sha256",
        "ecdsa",
    );
}

/// A notification that cannot be delivered is logged without the URI (the relying party's, with
/// its own secret in it), and no SAD, token or responseID reaches the log on the way.
#[tokio::test]
async fn failed_notifications_log_no_secrets() {
    let Alice { env, id, cred, server, api } =
        alice(&["--scal", "1"], "allow_loopback = true\nnotify_retries = 0\npoll_interval_ms = 50").await;
    // Nobody listens there.
    let closed = free_loopback_addr();
    let secret = "rp-secret-4c1f9e";
    let uri = format!("http://{closed}/done?token={secret}");
    let sad = api.sad(&id, 1, None).await;
    let (s, accepted) = sign_hash_async(&api, &id, &sad, &[sha256(b"nobody listens")], json!({"response_uri": uri})).await;
    assert_eq!(s, 200, "{accepted}");
    let response_id = accepted["responseID"].as_str().unwrap().to_string();
    let result = poll_until_done(&api, &response_id).await;
    let sig = unb64(result["signatures"][0].as_str().unwrap());
    openssl_verify_signature(&env.dir, &cert_der_b64(&cred), b"nobody listens", &sig, "sha256", "ecdsa");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env.server_log().contains("notification given up") {
        assert!(Instant::now() < deadline, "the failed notification is not logged: {}", env.server_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server);
    let log = env.server_log();
    assert!(log.contains("response_uri notification failed"), "{log}");
    for (what, value) in [("the URI's secret", secret), ("the SAD", sad.as_str()), ("the responseID", response_id.as_str())] {
        assert!(!log.contains(value), "{what} in the log: {log}");
    }
    assert!(!log.contains(api.token.as_deref().unwrap()), "the access token in the log: {log}");
}

/// The 2.2 signDoc form (`signatureCreationRequest`, csc-api-2.2.md §11), synchronous and
/// asynchronous: one object with TS 119 432's `adesParameters`, or an array of the Data Model's
/// flat objects; documents by content or by hashes; a reference refused before anything is spent.
#[tokio::test]
async fn sign_doc_signature_creation_request_form() {
    let Alice { env, id, server: _server, api, .. } = alice(&["--scal", "1", "--multisign", "10"], "poll_interval_ms = 50").await;
    let (issuing, root) = write_ca(&env);
    let pdf = one_page_pdf("signed from a signatureCreationRequest");
    let content = b"a representation signed by hash".to_vec();

    // One object, TS 119 432's nesting.
    let sad = api.sad(&id, 1, None).await;
    let v = api
        .ok(
            "signatures/signDoc",
            json!({"credentialID": id, "SAD": sad, "signatureCreationRequest": {"label": "contract", "document": b64(&pdf),
                "adesParameters": {"signature_format": "P", "conformance_level": "AdES-B-B"}, "signAlgo": ECDSA_SHA256}}),
        )
        .await;
    let out = env.file("scr.pdf");
    std::fs::write(&out, unb64(v["DocumentWithSignature"][0].as_str().unwrap())).unwrap();
    pyhanko_validate(&out, &root);

    // Refusals spend nothing: a reference, no document form, no format.
    let sad = api.sad(&id, 2, None).await;
    for (bad, text) in [
        (
            json!({"href": "https://docs.example/a.pdf", "checksum": "sha256-AAAA", "signature_format": "P", "signAlgo": ECDSA_SHA256}),
            "href",
        ),
        (json!({"signature_format": "C", "signAlgo": ECDSA_SHA256}), "signatureCreationRequest"),
        (json!({"document": b64(&pdf), "signAlgo": ECDSA_SHA256}), "signature_format"),
    ] {
        api.err(
            "signatures/signDoc",
            json!({"credentialID": id, "SAD": sad, "signatureCreationRequest": [bad]}),
            400,
            "invalid_request",
            text,
        )
        .await;
    }

    // An array of flat objects, by hashes with the request's hashAlgorithmOID and signAlgo, in
    // mode A.
    let (s, accepted) = api
        .post(
            "signatures/signDoc",
            json!({"credentialID": id, "SAD": sad, "operationMode": "A", "signAlgo": ECDSA_SHA256, "hashAlgorithmOID": SHA256,
                "signatureCreationRequest": [
                    {"hashes": [b64(&sha256(&content))], "signature_format": "C", "conformance_level": "AdES-B-B"},
                    {"document": b64(&pdf), "signature_format": "P"}]}),
        )
        .await;
    assert_eq!(s, 200, "{accepted}");
    let result = poll_until_done(&api, accepted["responseID"].as_str().unwrap()).await;
    cms_verify(&env, &unb64(result["SignatureObject"][0].as_str().unwrap()), &content, &issuing, &root);
    let out = env.file("scr-async.pdf");
    std::fs::write(&out, unb64(result["DocumentWithSignature"][0].as_str().unwrap())).unwrap();
    pyhanko_validate(&out, &root);
}

/// `cloudsign sign --async`: the client's side, signHash in mode A then signPolling; the PDF
/// it writes validates with pyHanko.
#[tokio::test]
async fn cloudsign_sign_async_signs_a_pdf() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let id = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let cfg = config(&env, "on.toml", "poll_interval_ms = 50");
    let server = env.start_env(&[("CLOUDSIGN_CONFIG", &cfg)]);
    let (_, root) = write_ca(&env);
    let pdf = env.file("in.pdf");
    std::fs::write(&pdf, one_page_pdf("signed with cloudsign sign --async")).unwrap();
    let out = env.file("out.pdf");
    let result = env
        .command()
        .arg("sign")
        .arg(&pdf)
        .args(["--service", &server.url, "--user", "alice", "--credential", &id, "--level", "B-B", "--async", "--out"])
        .arg(&out)
        .env("CLOUDSIGN_PASSWORD", PASSWORD)
        .env("CLOUDSIGN_PIN", PIN)
        .output()
        .unwrap();
    assert!(result.status.success(), "cloudsign sign --async: {}", String::from_utf8_lossy(&result.stderr));
    pyhanko_validate(&out, &root);
    // It went through the asynchronous path: the audit trail has the delivery by signPolling.
    let audit = env.admin(&["audit", "--json"], "");
    assert!(audit.lines().any(|l| l.contains("\"signatures.signPolling\"")), "{audit}");
}
