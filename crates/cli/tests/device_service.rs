//! The service side of the device protocol (issue 18, `docs/device-protocol.md`) on the real
//! binary: a device whose keys, CSR and signatures are made by Python's `cryptography`
//! (`crates/device/tests/oracle.py`, sharing nothing with our code) pairs with an admin-made
//! code and a CSR, long-polls, and answers the signRequests an application's signHash causes.
//! The signatures are checked by openssl against the certificate the CA issued. Refusals: an
//! offline device (400, the SAD still usable), a decline, a replayed answer, an answer signed by
//! another key, a wrong verification code, other digests echoed, signatures that do not verify
//! (over another digest, by another key, corrupted), another user's device answering (each
//! audited, the SAD given back), and a revoked device.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The independent device: `oracle.py COMMAND < args.json`.
fn oracle(cmd: &str, args: Value) -> Value {
    let python = std::env::var("CLOUDSIGN_PYTHON").map(PathBuf::from).unwrap_or_else(|_| workspace().join(".venv/bin/python"));
    let mut child = Command::new(python)
        .arg(workspace().join("crates/device/tests/oracle.py"))
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(args.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "oracle {cmd}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn b64u(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn unb64u(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// A paired device as the test drives it.
struct Dev {
    http: reqwest::Client,
    base: String,
    aud: String,
    id: String,
    credential: String,
    certificates: Vec<String>,
    device_pkcs8: String,
    signing_pkcs8: String,
    counter: u64,
}

async fn post(http: &reqwest::Client, url: &str, ctype: &str, body: String) -> (u16, Value) {
    let resp = http.post(url).header("content-type", ctype).body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn jws(device_pkcs8: &str, kid: &str, payload: Value) -> String {
    oracle("jws", json!({"device_pkcs8": device_pkcs8, "kid": kid, "payload": payload}))["jws"].as_str().unwrap().to_string()
}

impl Dev {
    async fn pair(server: &Server, aud: &str, user: &str, code: &str) -> Dev {
        let http = reqwest::Client::new();
        let base = format!("{}/device/v1", server.url);
        let (s, ch) =
            post(&http, &format!("{base}/pair/start"), "application/json", json!({"v": 1, "pairingCode": code}).to_string()).await;
        assert_eq!(s, 200, "{ch}");
        assert_eq!(ch["type"], "pairChallenge");
        assert_eq!(ch["user"], user);
        assert_eq!(ch["aud"], aud);
        let pairing_id = ch["pairingId"].as_str().unwrap();
        let challenge = ch["challenge"].as_str().unwrap();
        let keys = oracle("keys", json!({"signing": "p256", "challenge": challenge}));
        let device_pkcs8 = keys["device_pkcs8"].as_str().unwrap().to_string();
        let payload = json!({
            "type": "pair", "v": 1, "aud": aud, "pairingId": pairing_id, "challenge": challenge,
            "deviceKey": keys["device_spki"], "name": "test card reader", "kind": "agent", "prehashed": true, "csr": keys["csr"],
        });
        let message = jws(&device_pkcs8, pairing_id, payload);
        let (s, paired) = post(&http, &format!("{base}/pair/finish"), "application/jose", message.clone()).await;
        assert_eq!(s, 200, "{paired}");
        assert_eq!(paired["type"], "paired");
        assert_eq!(paired["counter"], 0);
        // The same pair message again: the session is over.
        let (s, again) = post(&http, &format!("{base}/pair/finish"), "application/jose", message).await;
        assert!(s == 401 || s == 409, "{s} {again}");
        Dev {
            http,
            base,
            aud: aud.to_string(),
            id: paired["deviceId"].as_str().unwrap().to_string(),
            credential: paired["credentialId"].as_str().unwrap().to_string(),
            certificates: paired["certificates"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect(),
            device_pkcs8,
            signing_pkcs8: keys["signing_pkcs8"].as_str().unwrap().to_string(),
            counter: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// One long poll: the service messages it returned.
    async fn poll(&mut self) -> Vec<Value> {
        let (s, ch) = {
            let r = self.http.get(format!("{}/challenge", self.base)).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        };
        assert_eq!(s, 200, "{ch}");
        let counter = self.next();
        let hello = jws(
            &self.device_pkcs8,
            &self.id,
            json!({"type": "hello", "v": 1, "aud": self.aud, "counter": counter, "challenge": ch["challenge"], "agent": "oracle/1"}),
        );
        let (s, v) = post(&self.http, &format!("{}/poll", self.base), "application/jose", hello).await;
        assert_eq!(s, 200, "{v}");
        let list = v.as_array().unwrap().clone();
        let last = list.last().unwrap();
        assert_eq!(last["type"], "challenge");
        assert_eq!(last["counter"], counter);
        list
    }

    /// Poll until a signRequest comes.
    async fn request(&mut self) -> Value {
        for _ in 0..20 {
            if let Some(r) = self.poll().await.into_iter().find(|m| m["type"] == "signRequest") {
                return r;
            }
        }
        panic!("no signRequest");
    }

    /// The signature answer (signed by the signing key over the request's digests), with the
    /// code as given.
    fn signature(&mut self, req: &Value, code: &str) -> String {
        let sigs = self.sign_digests(&req["digests"]);
        self.signature_with(req, code, req["digests"].clone(), sigs)
    }

    /// This device's signing key over `digests` (base64url): the `signatures` member.
    fn sign_digests(&self, digests: &Value) -> Value {
        oracle("sign_digests", json!({"signing_pkcs8": self.signing_pkcs8, "scheme": "es256", "digests": digests}))["signatures"].clone()
    }

    /// A signature answer to `req`, authentic (this device's key, kid and next counter, the
    /// request's id and nonce), with the echoed digests and the signatures as given.
    fn signature_with(&mut self, req: &Value, code: &str, digests: Value, signatures: Value) -> String {
        let counter = self.next();
        jws(
            &self.device_pkcs8,
            &self.id,
            json!({"type": "signature", "v": 1, "aud": self.aud, "counter": counter, "requestId": req["requestId"], "nonce": req["nonce"],
                   "verificationCode": code, "digests": digests, "signatures": signatures}),
        )
    }

    async fn answer(&self, message: String) -> (u16, Value) {
        post(&self.http, &format!("{}/answer", self.base), "application/jose", message).await
    }
}

/// `signatures/signHash` of one digest, started now: the device answers while it waits.
fn start_sign(api: &Api, credential: &str, sad: &str, digest: &[u8]) -> tokio::task::JoinHandle<(u16, Value)> {
    let (app, cred, sad, d) = (api.clone(), credential.to_string(), sad.to_string(), digest.to_vec());
    tokio::spawn(async move { app.sign(&cred, &sad, &[d], ECDSA_SHA256, None).await })
}

fn audit(env: &Env) -> Vec<Value> {
    env.admin(&["audit", "--json", "--limit", "100000"], "").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_python_device_pairs_long_polls_and_signs() {
    let env = Env::new(BIN, "sqlite").with_public_url();
    let aud = env.public_url().unwrap();
    let config = env.file("cloudsign.toml");
    std::fs::write(&config, "[device]\nenabled = true\npoll_hold_seconds = 2\nrequest_seconds = 20\n").unwrap();
    let env = env.with_env("CLOUDSIGN_CONFIG", &config.display().to_string());
    env.add_user("alice");
    env.add_user("bob");

    // Disabled devices: the routes are unknown paths.
    {
        let off = Env::new(BIN, "sqlite");
        off.init();
        let server = off.start();
        let r = reqwest::get(format!("{}/device/v1/challenge", server.url)).await.unwrap();
        assert_eq!(r.status(), 404);
    }

    let out = env.admin(&["device", "pair", "alice", "--pin-stdin", "--json"], &format!("{PIN}\n"));
    let code: Value = serde_json::from_str(out.trim()).unwrap();
    let code = code["pairingCode"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 11, "{code}");
    let out = env.admin(&["device", "pair", "bob", "--pin-stdin", "--json"], &format!("{PIN}\n"));
    let bob_code: Value = serde_json::from_str(out.trim()).unwrap();
    let bob_code = bob_code["pairingCode"].as_str().unwrap().to_string();
    let server = env.start();
    // A wrong code is refused and audited.
    let http = reqwest::Client::new();
    let (s, _) = post(
        &http,
        &format!("{}/device/v1/pair/start", server.url),
        "application/json",
        json!({"v":1,"pairingCode":"00000-00000"}).to_string(),
    )
    .await;
    assert_eq!(s, 401);
    let mut dev = Dev::pair(&server, &aud, "alice", &code).await;
    // The code worked once.
    let (s, _) =
        post(&http, &format!("{}/device/v1/pair/start", server.url), "application/json", json!({"v":1,"pairingCode": code}).to_string())
            .await;
    assert_eq!(s, 401);
    openssl_verify_chain(&env, &dev.certificates.iter().map(|c| json!(b64(&unb64u(c)))).collect::<Vec<_>>());

    let mut api = Api::new(&server);
    api.login("alice").await;
    let info = api.ok("credentials/info", json!({"credentialID": dev.credential, "certInfo": true})).await;
    assert_eq!(info["key"]["status"], "enabled", "{info}");

    // Offline (never polled): 400 before the SAD is touched.
    let data = b"contract one".to_vec();
    let digest = sha256(&data);
    let sad = api.sad(&dev.credential, 1, Some((std::slice::from_ref(&digest), SHA256))).await;
    let (s, v) = api.sign(&dev.credential, &sad, std::slice::from_ref(&digest), ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "not connected");

    // Online: a first poll (nothing for it), then signHash and the device's answer at once.
    assert_eq!(dev.poll().await.len(), 1);
    let cert = b64(&unb64u(&dev.certificates[0]));
    let app = api.clone();
    let (cred, d) = (dev.credential.clone(), digest.clone());
    let sad2 = sad.clone();
    let signing = tokio::spawn(async move { app.sign(&cred, &sad2, &[d], ECDSA_SHA256, None).await });
    let req = dev.request().await;
    assert_eq!(req["label"], "1 document");
    let expected = oracle("vc", json!({"digests": [b64u(&digest)]}))["code"].as_str().unwrap().to_string();
    assert_eq!(req["verificationCode"], expected.as_str());
    // Signed by a key that is not the device's, under its kid: foreign, and the request stays.
    let other = oracle("keys", json!({"signing": "p256"}));
    let forged = jws(
        other["device_pkcs8"].as_str().unwrap(),
        &dev.id,
        json!({"type": "decline", "v": 1, "aud": aud, "counter": 99, "requestId": req["requestId"], "nonce": req["nonce"], "reason": "user_refused"}),
    );
    let (s, v) = dev.answer(forged).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"], "foreign");
    let answer = dev.signature(&req, &expected);
    let (s, ack) = dev.answer(answer.clone()).await;
    assert_eq!(s, 200, "{ack}");
    assert_eq!(ack["accepted"], true);
    let (s, v) = signing.await.unwrap();
    assert_eq!(s, 200, "{v}");
    let signature = unb64(v["signatures"][0].as_str().unwrap());
    openssl_verify_signature(&env.dir, &cert, &data, &signature, "sha256", "ecdsa");
    // Replayed: the counter is taken.
    let (s, v) = dev.answer(answer).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"], "replayed");

    // A decline: refused, the SAD given back (it signs afterwards).
    let data = b"contract two".to_vec();
    let digest = sha256(&data);
    let sad = api.sad(&dev.credential, 1, Some((std::slice::from_ref(&digest), SHA256))).await;
    let (app, cred, d, sad2) = (api.clone(), dev.credential.clone(), digest.clone(), sad.clone());
    let signing = tokio::spawn(async move { app.sign(&cred, &sad2, &[d], ECDSA_SHA256, None).await });
    let req = dev.request().await;
    let counter = dev.next();
    let decline = jws(
        &dev.device_pkcs8,
        &dev.id,
        json!({"type": "decline", "v": 1, "aud": aud, "counter": counter, "requestId": req["requestId"], "nonce": req["nonce"], "reason": "user_refused"}),
    );
    let (s, v) = dev.answer(decline).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = signing.await.unwrap();
    assert_error("signHash", s, &v, 400, "access_denied", "declined");

    // A wrong verification code: refused and audited; the SAD given back again.
    let (app, cred, d, sad2) = (api.clone(), dev.credential.clone(), digest.clone(), sad.clone());
    let signing = tokio::spawn(async move { app.sign(&cred, &sad2, &[d], ECDSA_SHA256, None).await });
    let req = dev.request().await;
    let wrong = if expected == "0000" { "0001" } else { "0000" };
    let wrong = if wrong == req["verificationCode"].as_str().unwrap() { "1111" } else { wrong };
    let answer = dev.signature(&req, wrong);
    let (s, v) = dev.answer(answer).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "wrong_verification_code");
    let (s, v) = signing.await.unwrap();
    assert_error("signHash", s, &v, 400, "invalid_request", "wrong_verification_code");

    // Authentic answers for what the device was not sent, or whose signatures do not verify
    // ("Checks and refusals", steps 11 and 12): each refused with its code, the request ended
    // as refused (the application gets the documented 400), the SAD given back each time.
    let other_digest = sha256(b"a document the signer never saw");
    let other_key = oracle("keys", json!({"signing": "p256"}));
    let other_signatures = |digests: &Value| {
        oracle("sign_digests", json!({"signing_pkcs8": other_key["signing_pkcs8"], "scheme": "es256", "digests": digests}))["signatures"]
            .clone()
    };
    let mut refused_requests: Vec<(String, &str)> = Vec::new();
    for case in ["other digest echoed", "a digest added", "over another digest", "by another key", "corrupted"] {
        let signing = start_sign(&api, &dev.credential, &sad, &digest);
        let req = dev.request().await;
        // The request's own code: only the digests or the signatures are wrong.
        let vc = req["verificationCode"].as_str().unwrap().to_string();
        let theirs = req["digests"].clone();
        let (echoed, signatures, code) = match case {
            "other digest echoed" => {
                let echoed = json!([b64u(&other_digest)]);
                let sigs = dev.sign_digests(&echoed);
                (echoed, sigs, "digest_not_requested")
            }
            "a digest added" => {
                let echoed = json!([theirs[0], b64u(&other_digest)]);
                let sigs = dev.sign_digests(&echoed);
                (echoed, sigs, "digest_not_requested")
            }
            "over another digest" => (theirs, dev.sign_digests(&json!([b64u(&other_digest)])), "bad_signature"),
            "by another key" => {
                let sigs = other_signatures(&theirs);
                (theirs, sigs, "bad_signature")
            }
            _ => {
                let mut raw = unb64u(dev.sign_digests(&theirs)[0].as_str().unwrap());
                let last = raw.len() - 1;
                raw[last] ^= 0x01;
                (theirs, json!([b64u(&raw)]), "bad_signature")
            }
        };
        let answer = dev.signature_with(&req, &vc, echoed, signatures);
        let (s, v) = dev.answer(answer).await;
        assert_eq!(s, 400, "{case}: {v}");
        assert_eq!(v["error"], code, "{case}: {v}");
        let (s, v) = signing.await.unwrap();
        assert_error("signHash", s, &v, 400, "invalid_request", &format!("answer was refused ({code})"));
        refused_requests.push((req["requestId"].as_str().unwrap().to_string(), code));
    }

    // Bob's device, paired with his own code, answers alice's request with his own key and kid
    // (and her request's id, nonce and code, as if he had them): `foreign` ("sent to another
    // device", step 8), audited, and her request stays for her device, which signs it.
    let mut bob = Dev::pair(&server, &aud, "bob", &bob_code).await;
    assert_ne!(bob.id, dev.id);
    let signing = start_sign(&api, &dev.credential, &sad, &digest);
    let req = dev.request().await;
    // Not `code`: that is the pairing code, checked against the audit log below.
    let vc = req["verificationCode"].as_str().unwrap().to_string();
    let bobs = bob.signature(&req, &vc);
    let (s, v) = bob.answer(bobs).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"], "foreign");
    // Nor does his decline end it.
    let counter = bob.next();
    let decline = jws(
        &bob.device_pkcs8,
        &bob.id,
        json!({"type": "decline", "v": 1, "aud": aud, "counter": counter, "requestId": req["requestId"], "nonce": req["nonce"], "reason": "user_refused"}),
    );
    let (s, v) = bob.answer(decline).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"], "foreign");
    assert!(!signing.is_finished(), "another user's device ended alice's request");

    // And still usable: the device signs it this time.
    let answer = dev.signature(&req, &vc);
    assert_eq!(dev.answer(answer).await.0, 200);
    let (s, v) = signing.await.unwrap();
    assert_eq!(s, 200, "{v}");
    openssl_verify_signature(&env.dir, &cert, &data, &unb64(v["signatures"][0].as_str().unwrap()), "sha256", "ecdsa");
    // Spent now: the SAD was for one signature, and only the signed one counted.
    let (s, v) = api.sign(&dev.credential, &sad, std::slice::from_ref(&digest), ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "SAD");
    let alice_request = req["requestId"].as_str().unwrap().to_string();

    let events = audit(&env);
    let has = |event: &str, outcome: &str| events.iter().any(|e| e["event"] == event && e["outcome"] == outcome);
    for (e, o) in [
        ("device.pair.code", "ok"),
        ("device.pair.start", "ok"),
        ("device.pair.start", "refused"),
        ("device.pair", "ok"),
        ("device.connect", "ok"),
        ("device.request", "ok"),
        ("device.answer", "ok"),
        ("device.answer", "denied"),
        ("device.answer", "refused"),
    ] {
        assert!(has(e, o), "no {e} {o} in the audit log");
    }
    // Each refused answer, under its request, with its code.
    for (request, code) in &refused_requests {
        assert!(
            events.iter().any(|e| e["event"] == "device.answer"
                && e["outcome"] == "refused"
                && e["detail"]["request"] == request.as_str()
                && e["detail"]["device"] == dev.id.as_str()
                && e["detail"]["result"]["reason"] == *code),
            "no refused answer {code} for {request} in the audit log"
        );
    }
    // Bob's answers to alice's request: refused as his device's, foreign.
    let bobs: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["event"] == "device.answer" && e["detail"]["device"] == bob.id.as_str() && e["detail"]["request"] == alice_request.as_str()
        })
        .collect();
    assert_eq!(bobs.len(), 2, "{bobs:?}");
    for e in bobs {
        assert_eq!(e["outcome"], "refused", "{e}");
        assert_eq!(e["detail"]["reason"], "foreign", "{e}");
        assert_eq!(e["actor"], "bob", "{e}");
        assert_eq!(e["credentialID"], bob.credential.as_str(), "{e}");
    }
    // The request itself was answered by alice's device.
    assert!(events.iter().any(|e| e["event"] == "device.answer"
        && e["outcome"] == "ok"
        && e["detail"]["request"] == alice_request.as_str()
        && e["detail"]["device"] == dev.id.as_str()));
    let all = env.admin(&["audit", "--json", "--limit", "100000"], "");
    for code in [&code, &bob_code] {
        assert!(!all.contains(&code.replace('-', "")) && !all.contains(code.as_str()), "a pairing code is in the audit log");
    }

    // List, rename, revoke: then the credential signs no more.
    let list: Vec<Value> =
        env.admin(&["device", "list", "--user", "alice", "--json"], "").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["deviceId"], dev.id.as_str());
    assert_eq!(list[0]["credentialId"], dev.credential.as_str());
    env.admin(&["device", "rename", &dev.id, "office reader"], "");
    env.admin(&["device", "revoke", &dev.id], "");
    let list = env.admin(&["device", "list", "--json"], "");
    assert!(list.contains("office reader") && list.contains("\"revoked\":true"), "{list}");
    let digest = sha256(b"contract three");
    let (s, v) = api.authorize(&dev.credential, 1, Some((&[digest], SHA256)), json!([{"id": "PIN", "value": PIN}])).await;
    assert_eq!(s, 400, "{v}");
    // Its messages are refused.
    let r = dev.http.get(format!("{}/challenge", dev.base)).send().await.unwrap().json::<Value>().await.unwrap();
    let counter = dev.next();
    let hello =
        jws(&dev.device_pkcs8, &dev.id, json!({"type": "hello", "v": 1, "aud": aud, "counter": counter, "challenge": r["challenge"]}));
    let (s, v) = post(&dev.http, &format!("{}/poll", dev.base), "application/jose", hello).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"], "unpaired");
    let _ = Duration::from_secs(0);
}
