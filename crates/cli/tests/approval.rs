//! Out-of-band credential authorization (issue 17, item 3) on the real binary: a credential
//! created with `--approval link` answers `credentials/authorize` 202 with a handle; the
//! signer gets a one-time link through the OTP outbox, opens it in headless Chromium and
//! approves (or denies); `credentials/authorizeCheck` answers 202 while pending, then the SAD
//! exactly once, and that SAD signs (the signature checked by openssl). Denied and expired
//! approvals are refused; another user's handle is refused as an unknown one; twenty calls at
//! once on two PostgreSQL nodes collect one SAD (of a sole-control credential, whose PIN key
//! travels from the handle to the SAD).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const SOLE_PIN: &str = "sole-approval-2468";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An environment whose configuration file turns approval on with this lifetime; admin
/// commands and servers read it (`CLOUDSIGN_CONFIG`).
fn approval_env(db: &str, seconds: u64) -> Env {
    let env = Env::new(BIN, db);
    let config = env.file("cloudsign.toml");
    std::fs::write(&config, format!("[approval]\nenabled = true\nseconds = {seconds}\n")).unwrap();
    let path = config.display().to_string();
    env.with_env("CLOUDSIGN_CONFIG", &path)
}

/// The link the service sent `credential`'s owner last (the outbox line is
/// `user credentialID link`).
fn sent_link(env: &Env, user: &str, credential: &str) -> String {
    let outbox = std::fs::read_to_string(env.file("otp-outbox.txt")).expect("the outbox");
    let line = outbox.lines().rev().find(|l| l.starts_with(&format!("{user} {credential} "))).expect("a link for the credential");
    let link = line.rsplit(' ').next().unwrap().to_string();
    assert!(link.contains("/oauth2/approve?t="), "{link}");
    link
}

fn outbox_lines(env: &Env) -> usize {
    std::fs::read_to_string(env.file("otp-outbox.txt")).map(|s| s.lines().count()).unwrap_or(0)
}

/// Open `link` in headless Chromium (playwright-core from `interop/browser`, Debian's
/// Chromium), read the page, and click the `decision` button if there is one. The link is a
/// secret: it goes through the environment, never argv. Returns the driver's JSON:
/// `{status, text, after: {status, text} | null}`; a screenshot of the page is kept in
/// `target/test-artifacts/approval/`.
fn chromium(link: &str, decision: &str, shot: &str) -> Value {
    let browser = workspace().join("interop/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run scripts/test.sh (npm ci in interop/browser)"
    );
    let artifacts = workspace().join("target/test-artifacts/approval");
    std::fs::create_dir_all(&artifacts).unwrap();
    const DRIVER: &str = r#"
import { chromium } from 'playwright-core';
const env = process.env;
const watchdog = setTimeout(() => { process.stderr.write('approval driver: gave up after 60 s\n'); process.exit(1); }, 60000);
watchdog.unref();
const browser = await chromium.launch({ executablePath: env.CHROMIUM || '/usr/bin/chromium', headless: true, args: ['--no-sandbox'], timeout: 20000 });
let code = 0;
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, locale: 'en-US' });
  context.setDefaultTimeout(20000);
  const page = await context.newPage();
  const resp = await page.goto(env.CS_LINK, { waitUntil: 'load' });
  const text = await page.locator('main').innerText();
  await page.screenshot({ path: env.CS_SCREENSHOT, fullPage: true });
  let after = null;
  const button = page.locator(`form button[name=decision][value=${env.CS_DECISION}]`);
  if ((await button.count()) === 1) {
    const hidden = page.locator('form input[name=t]');
    if ((await hidden.count()) !== 1 || (await hidden.getAttribute('type')) !== 'hidden') throw new Error('the form has no hidden token');
    const [r] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
    after = { status: r ? r.status() : null, text: await page.locator('main').innerText() };
  }
  process.stdout.write(JSON.stringify({ status: resp.status(), text, after }) + '\n');
} catch (e) {
  code = 1;
  process.stderr.write(`approval driver: ${e && e.message ? e.message : e}\n`);
} finally {
  await browser.close().catch(() => {});
}
process.exit(code);
"#;
    let mut child = Command::new("node")
        .args(["--input-type=module", "-"])
        .current_dir(&browser)
        .env("CS_LINK", link)
        .env("CS_DECISION", decision)
        .env("CS_SCREENSHOT", artifacts.join(format!("{shot}.png")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), DRIVER.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(artifacts.join(format!("{shot}.png"))).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "not a real screenshot");
    serde_json::from_slice(&out.stdout).expect("one JSON line from the driver")
}

/// `credentials/authorize` with the PIN and the out-of-band object: 202 and its handle.
async fn authorize_pending(api: &Api, credential: &str, n: u64, hashes: Option<(&[Vec<u8>], &str)>, pin: &str) -> String {
    let (s, v) = api.authorize(credential, n, hashes, json!([{"id": "PIN", "value": pin}, {"id": "approval"}])).await;
    assert_eq!(s, 202, "authorize: {v}");
    let handle = v["handle"].as_str().expect("a handle").to_string();
    assert_eq!(v.as_object().unwrap().len(), 1, "only the handle: {v}");
    assert!(handle.len() >= 43, "256 bits: {handle}");
    handle
}

async fn check(api: &Api, handle: &str) -> (u16, Value) {
    api.post("credentials/authorizeCheck", json!({"handle": handle})).await
}

/// The signer's decision without a browser: the form the page posts.
async fn decide(link: &str, decision: &str) -> (u16, String) {
    let (base, query) = link.split_once("/oauth2/approve?").unwrap();
    let token = query.strip_prefix("t=").unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{base}/oauth2/approve"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("t={token}&decision={decision}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn audit(env: &Env) -> Vec<Value> {
    env.admin(&["audit", "--json", "--limit", "100000"], "").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn events<'a>(audit: &'a [Value], event: &str) -> Vec<&'a Value> {
    audit.iter().filter(|e| e["event"] == event).collect()
}

/// Neither the server log nor the audit log holds a handle, a link token or a SAD.
fn no_secret_logged(env: &Env, secrets: &[&str]) {
    let log = env.server_log();
    let audit = env.admin(&["audit", "--json", "--limit", "100000"], "");
    for s in secrets {
        assert!(!log.contains(s), "a secret is in the server log");
        assert!(!audit.contains(s), "a secret is in the audit log");
    }
}

#[tokio::test]
async fn approved_through_the_link_in_chromium_then_the_sad_signs_once() {
    let env = approval_env("sqlite", 300);
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--approval", "link", "--description", "Payroll signing key", "--multisign", "5"]);
    let id = cred["credentialID"].as_str().unwrap().to_string();
    let plain = env.add_credential("alice", &[])["credentialID"].as_str().unwrap().to_string();
    let listed = env.admin(&["credential", "list", "--json"], "");
    let listed: Vec<Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(listed.iter().find(|c| c["credentialID"] == id.as_str()).unwrap()["approval"], "link");
    assert_eq!(listed.iter().find(|c| c["credentialID"] == plain.as_str()).unwrap()["approval"], Value::Null);
    assert!(env.admin(&["credential", "list"], "").lines().any(|l| l.starts_with(&id) && l.ends_with("approval:link")));
    // An approver applies to credentials/authorize, not to the consent page.
    let (ok, _, err) = env.admin_result(
        &["credential", "add", "--user", "alice", "--pin-stdin", "--approval", "link", "--auth-mode", "oauth2code"],
        &format!("{PIN}\n"),
    );
    assert!(!ok && err.contains("--auth-mode explicit"), "{err}");
    // Every request in the access log, so that the check below sees the page's too.
    let server = env.start_env(&[("CLOUDSIGN_LOG_REQUESTS", "all")]);
    let mut api = Api::new(&server);
    api.login("alice").await;

    // CSC v2 §11.5: the approval is a ChallengeResponseOOB object after the PIN; the mode
    // stays explicit. `info` lists authorizeCheck since approval is enabled.
    let info = api.ok("credentials/info", json!({"credentialID": id, "authInfo": true})).await;
    assert_eq!(info["auth"]["mode"], "explicit");
    assert_eq!(info["auth"]["expression"], "PIN AND approval");
    let oob = &info["auth"]["objects"][1];
    assert_eq!((&oob["type"], &oob["id"]), (&json!("ChallengeResponseOOB"), &json!("approval")), "{info}");
    assert!(oob.get("format").is_none() && oob["label"].is_string(), "{oob}");
    let list = api.ok("credentials/list", json!({"credentialInfo": true, "authInfo": true})).await;
    let expressions: Vec<&Value> = list["credentialInfos"].as_array().unwrap().iter().map(|c| &c["auth"]["expression"]).collect();
    assert!(expressions.contains(&&json!("PIN AND approval")) && expressions.contains(&&json!("PIN")), "{list}");
    let methods = api.ok("info", json!({})).await["methods"].clone();
    assert!(methods.as_array().unwrap().contains(&json!("credentials/authorizeCheck")), "{methods}");

    // v1.0.4.0 has no 202 and no polling: implicit in credentials/info, refused by authorize
    // (before the PIN is checked or a link sent).
    let mut v1 = Api::v1(&server);
    v1.login("alice").await;
    let v1_info = v1.ok("credentials/info", json!({"credentialID": id, "authInfo": true})).await;
    assert_eq!(v1_info["authMode"], "implicit");
    let sent = outbox_lines(&env);
    v1.err("credentials/authorize", json!({"credentialID": id, "numSignatures": 1, "PIN": PIN}), 400, "invalid_request", "/csc/v2").await;

    // A wrong PIN is refused as always, and nothing is sent.
    let docs = [b"first contract".to_vec(), b"second contract".to_vec()];
    let digests: Vec<Vec<u8>> = docs.iter().map(|d| sha256(d)).collect();
    let (s, v) = api.authorize(&id, 2, Some((&digests, SHA256)), json!([{"id": "PIN", "value": "000000"}, {"id": "approval"}])).await;
    assert_error("authorize (wrong PIN)", s, &v, 400, "invalid_authentication_data", "PIN");
    let (s, v) =
        api.authorize(&id, 2, Some((&digests, SHA256)), json!([{"id": "PIN", "value": PIN}, {"id": "approval", "value": "x"}])).await;
    assert_error("authorize (a value for approval)", s, &v, 400, "invalid_request", "approval");
    let (s, v) = api.authorize(&plain, 1, None, json!([{"id": "PIN", "value": PIN}, {"id": "approval"}])).await;
    assert_error("authorize (no approver)", s, &v, 400, "invalid_request", "approval");
    assert_eq!(outbox_lines(&env), sent, "no link for a refused authorization");

    // Two documents bound (SCAL 2): 202, then pending.
    let body = json!({"credentialID": id, "numSignatures": 2, "hashes": digests.iter().map(|d| b64(d)).collect::<Vec<_>>(),
        "hashAlgorithmOID": SHA256, "authData": [{"id": "PIN", "value": PIN}, {"id": "approval"}], "description": "Two employment contracts"});
    let (s, v) = api.post("credentials/authorize", body).await;
    assert_eq!(s, 202, "{v}");
    let handle = v["handle"].as_str().unwrap().to_string();
    let (s, v) = check(&api, &handle).await;
    assert_eq!((s, &v), (202, &json!({"handle": handle})), "pending");
    assert_eq!(outbox_lines(&env), sent + 1, "one link");
    let link = sent_link(&env, "alice", &id);
    assert!(link.starts_with(&server.url), "{link} is on the service");

    // The signer follows the link in Chromium: the page shows what is authorized; Approve.
    let shown = chromium(&link, "approve", "approve");
    assert_eq!(shown["status"], 200, "{shown}");
    let text = shown["text"].as_str().unwrap();
    for part in ["Payroll signing key", "Two employment contracts", &b64(&digests[0]), &b64(&digests[1]), "alice"] {
        assert!(text.contains(part), "the page shows {part:?}: {text}");
    }
    assert_eq!(shown["after"]["status"], 200, "{shown}");
    assert!(shown["after"]["text"].as_str().unwrap().contains("You approved"), "{shown}");

    // The SAD, once; it signs the two bound documents, and openssl verifies them.
    let (s, v) = check(&api, &handle).await;
    assert_eq!(s, 200, "{v}");
    let sad = v["SAD"].as_str().unwrap().to_string();
    assert!(v["expiresIn"].as_u64().unwrap() > 0, "{v}");
    let (s, again) = check(&api, &handle).await;
    assert_error("authorizeCheck (again)", s, &again, 400, "invalid_request", "Invalid parameter handle");
    let (s, v) = api.sign(&id, &sad, &[sha256(b"another document")], ECDSA_SHA256, Some(SHA256)).await;
    assert_error("signHash (a hash not approved)", s, &v, 400, "invalid_request", "Hash is not authorized");
    let (s, v) = api.sign(&id, &sad, &digests, ECDSA_SHA256, Some(SHA256)).await;
    assert_eq!(s, 200, "{v}");
    let cert = cred["certificate"].as_str().unwrap().lines().filter(|l| !l.starts_with("-----")).collect::<String>();
    for (doc, sig) in docs.iter().zip(v["signatures"].as_array().unwrap()) {
        openssl_verify_signature(&env.dir, &cert, doc, &unb64(sig.as_str().unwrap()), "sha256", "ecdsa");
    }
    // What the signer approved cannot be widened afterwards.
    let (s, v) = api
        .post(
            "credentials/extendTransaction",
            json!({"credentialID": id, "SAD": sad, "hashes": [b64(&sha256(b"x"))], "hashAlgorithmOID": SHA256}),
        )
        .await;
    assert_error("extendTransaction (new hashes)", s, &v, 400, "invalid_request", "hashes");

    // The link decided once: opened again it says so.
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 400);
    let body = page.text().await.unwrap();
    assert!(body.contains("already") && !body.contains("name=\"decision\""), "{body}");
    assert_eq!(decide(&link, "deny").await.0, 400, "a used link cannot deny");

    let audit = audit(&env);
    assert_eq!(events(&audit, "approval.request").len(), 1);
    assert_eq!(events(&audit, "approval.approve")[0]["outcome"], "ok");
    let issued: Vec<&Value> = events(&audit, "credentials.authorizeCheck").into_iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(issued.len(), 1, "one SAD issued");
    assert_eq!(issued[0]["detail"]["hashes"], json!(digests.iter().map(|d| hex(d)).collect::<Vec<_>>()));
    let token = link.rsplit("t=").next().unwrap();
    let log = env.server_log();
    assert!(
        log.contains("/oauth2/approve") && log.contains("/csc/v2/credentials/authorizeCheck"),
        "the access log has the requests: {log}"
    );
    no_secret_logged(&env, &[&handle, token, &sad]);
}

#[tokio::test]
async fn denied_through_the_link_in_chromium() {
    let env = approval_env("sqlite", 300);
    env.add_user("alice");
    let id = env.add_credential("alice", &["--approval", "link", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    // SCAL 1, no hashes: the page says the application chooses what it signs.
    let handle = authorize_pending(&api, &id, 1, None, PIN).await;
    let link = sent_link(&env, "alice", &id);
    let shown = chromium(&link, "deny", "deny");
    assert!(shown["text"].as_str().unwrap().contains("did not say which documents"), "{shown}");
    assert!(shown["after"]["text"].as_str().unwrap().contains("You denied"), "{shown}");
    let (s, v) = check(&api, &handle).await;
    assert_error("authorizeCheck (denied)", s, &v, 400, "access_denied", "The signer denied the authorization");
    let (s, v) = check(&api, &handle).await;
    assert_error("authorizeCheck (denied, again)", s, &v, 400, "access_denied", "denied");
    let (s, page) = decide(&link, "approve").await;
    assert!(s == 400 && page.contains("already"), "a denied request cannot be approved later: {s} {page}");
    let audit = audit(&env);
    assert_eq!(events(&audit, "approval.deny")[0]["outcome"], "denied");
    assert!(events(&audit, "approval.approve").is_empty());
    assert!(events(&audit, "credentials.authorizeCheck").iter().all(|e| e["outcome"] == "refused"));
}

#[tokio::test]
async fn an_approval_not_given_in_time_expires() {
    let env = approval_env("sqlite", 3);
    env.add_user("alice");
    let id = env.add_credential("alice", &["--approval", "link", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let handle = authorize_pending(&api, &id, 1, None, PIN).await;
    let link = sent_link(&env, "alice", &id);
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let (s, v) = check(&api, &handle).await;
    assert_error("authorizeCheck (expired)", s, &v, 400, "invalid_request", "expired");
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("expired"));
    let (s, _) = decide(&link, "approve").await;
    assert_eq!(s, 400, "too late to approve");
    let (s, v) = check(&api, &handle).await;
    assert_error("authorizeCheck (still expired)", s, &v, 400, "invalid_request", "expired");

    // Approved in time, but the SAD not collected in time: expired too.
    let handle = authorize_pending(&api, &id, 1, None, PIN).await;
    assert_eq!(decide(&sent_link(&env, "alice", &id), "approve").await.0, 200);
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let (s, v) = check(&api, &handle).await;
    assert_error("authorizeCheck (collected too late)", s, &v, 400, "invalid_request", "expired");
    let audit = audit(&env);
    assert_eq!(events(&audit, "approval.expire").len(), 2, "each expiry recorded once");
    assert_eq!(events(&audit, "approval.expire")[1]["detail"]["was"], "approved");
}

#[tokio::test]
async fn a_handle_works_for_its_owner_only() {
    let env = approval_env("sqlite", 300);
    env.add_user("alice");
    env.admin(&["user", "add", "bob", "--password-stdin"], &format!("{PASSWORD}\n"));
    let id = env.add_credential("alice", &["--approval", "link", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let (mut alice, mut bob) = (Api::new(&server), Api::new(&server));
    alice.login("alice").await;
    bob.login("bob").await;
    let handle = authorize_pending(&alice, &id, 1, None, PIN).await;
    // Bob's call with Alice's handle, and anyone's with a made-up one, get the same answer.
    let (s, theirs) = check(&bob, &handle).await;
    assert_error("authorizeCheck (another user's handle)", s, &theirs, 400, "invalid_request", "Invalid parameter handle");
    let (s, made_up) = check(&alice, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!((s, &made_up), (400, &theirs), "no oracle");
    let (s, v) = check(&alice, &"x".repeat(10_000)).await;
    assert_eq!((s, &v), (400, &theirs));
    alice.err("credentials/authorizeCheck", json!({}), 400, "invalid_request", "handle").await;
    alice.err("credentials/authorizeCheck", json!({"handle": 7}), 400, "invalid_request", "handle").await;
    let (s, _) = alice.post_raw("credentials/authorizeCheck", json!({"handle": handle}).to_string().into_bytes(), None).await;
    assert_eq!(s, 401, "a bearer token is needed");
    // Bob approving through a link he does not have is not possible; Alice's stays pending.
    let (s, v) = check(&alice, &handle).await;
    assert_eq!((s, &v["handle"]), (202, &json!(handle)));
    // Bob cannot collect even once Alice approved.
    assert_eq!(decide(&sent_link(&env, "alice", &id), "approve").await.0, 200);
    let (s, v) = check(&bob, &handle).await;
    assert_eq!((s, &v), (400, &theirs));
    let (s, v) = check(&alice, &handle).await;
    assert_eq!(s, 200, "{v}");
}

/// Two nodes on one PostgreSQL, twenty `authorizeCheck` calls at once after the approval: one
/// SAD. The credential is under sole control: the SAD signs only if the PIN key came along.
#[tokio::test]
async fn twenty_checks_at_once_on_two_nodes_collect_one_sad() {
    let env = approval_env("postgres", 300);
    env.add_user("alice");
    let out = env.admin(
        &["credential", "add", "--user", "alice", "--pin-stdin", "--json", "--approval", "link", "--sole-control", "--scal", "1"],
        &format!("{SOLE_PIN}\n"),
    );
    let cred: Value = serde_json::from_str(out.trim()).unwrap();
    let id = cred["credentialID"].as_str().unwrap().to_string();
    let (one, two) = (env.start(), env.start());
    let mut api = Api::new(&one);
    api.login("alice").await;
    let mut other = Api::new(&two);
    other.token = api.token.clone();
    let handle = authorize_pending(&api, &id, 1, None, SOLE_PIN).await;
    let (s, v) = check(&other, &handle).await;
    assert_eq!(s, 202, "the other node sees it pending: {v}");
    assert_eq!(decide(&sent_link(&env, "alice", &id), "approve").await.0, 200);
    let mut calls = Vec::new();
    for i in 0..20 {
        let api = Api {
            http: reqwest::Client::new(),
            base: if i % 2 == 0 { api.base.clone() } else { other.base.clone() },
            token: api.token.clone(),
        };
        let handle = handle.clone();
        calls.push(tokio::spawn(async move { check(&api, &handle).await }));
    }
    let mut sads = Vec::new();
    for c in calls {
        let (s, v) = c.await.unwrap();
        match s {
            200 => sads.push(v["SAD"].as_str().unwrap().to_string()),
            400 => assert_eq!(v["error_description"], "Invalid parameter handle", "{v}"),
            other => panic!("authorizeCheck: {other} {v}"),
        }
    }
    assert_eq!(sads.len(), 1, "exactly one SAD");
    let data = b"signed under sole control, approved out of band";
    let (s, v) = other.sign(&id, &sads[0], &[sha256(data)], ECDSA_SHA256, Some(SHA256)).await;
    assert_eq!(s, 200, "{v}");
    let cert = cred["certificate"].as_str().unwrap().lines().filter(|l| !l.starts_with("-----")).collect::<String>();
    openssl_verify_signature(&env.dir, &cert, data, &unb64(v["signatures"][0].as_str().unwrap()), "sha256", "ecdsa");
    let audit = audit(&env);
    assert_eq!(events(&audit, "credentials.authorizeCheck").iter().filter(|e| e["outcome"] == "ok").count(), 1);
}

/// Off by default: `info` does not name authorizeCheck (the Swift client could not read it),
/// and no credential gets an approver.
#[tokio::test]
async fn approval_is_off_by_default() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let (ok, _, err) =
        env.admin_result(&["credential", "add", "--user", "alice", "--pin-stdin", "--approval", "link"], &format!("{PIN}\n"));
    assert!(!ok && err.contains("[approval]"), "{err}");
    let server = env.start();
    let methods = Api::new(&server).ok("info", json!({})).await["methods"].clone();
    assert!(!methods.as_array().unwrap().contains(&json!("credentials/authorizeCheck")), "{methods}");
    assert!(methods.as_array().unwrap().contains(&json!("credentials/authorize")), "{methods}");
}

/// The OAuth consent page checks the PIN only, so a credential whose signer approves out of
/// band is never authorized there: a credential-scope token would skip the approval. The
/// client hears why, and no link is sent.
#[tokio::test]
async fn the_consent_page_refuses_a_credential_approved_out_of_band() {
    let env = approval_env("sqlite", 300);
    env.add_user("alice");
    let id = env.add_credential("alice", &["--approval", "link", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let (client, _) = add_client(&env, "Wallet", &["--public"]);
    let server = env.start();
    let (_verifier, challenge) = pkce(&env.dir);
    let params = [
        ("response_type", "code"),
        ("client_id", client.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "credential"),
        ("credentialID", id.as_str()),
        ("numSignatures", "1"),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let mut b = Browser::new(&server);
    let login = b.authorize(&params).await;
    assert_eq!(login.status, 200, "{}", login.body);
    // Refused as soon as the signer is known: the login answers with the redirect to the client.
    let after_login = b.post("/oauth2/flow/login", &[("csrf", &login.csrf()), ("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(after_login.status, 302, "{}", after_login.body);
    let location = after_login.location.clone().unwrap_or_else(|| panic!("no redirect to the client: {}", after_login.body));
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let back = location_params(&location);
    assert_eq!(back.get("error").map(String::as_str), Some("invalid_request"), "{back:?}");
    assert!(back.get("error_description").is_some_and(|d| d.contains("out of band")), "{back:?}");
    assert_eq!(back.get("state").map(String::as_str), Some("st"));
    assert_eq!(outbox_lines(&env), 0, "no approval link was sent");
}

/// `admin settings` shows the 2.2 features as this node runs them: the file's values over the
/// defaults, and an unknown key in a table is refused (not silently ignored).
#[test]
fn admin_settings_show_the_effective_values() {
    let env = approval_env("sqlite", 42);
    env.add_user("alice");
    let v: Value = serde_json::from_str(&env.admin(&["settings", "--json"], "")).unwrap();
    assert_eq!(v["approval"]["enabled"], true);
    assert_eq!(v["approval"]["seconds"], 42, "{v}");
    assert_eq!(v["on_demand"]["enabled"], false, "the default");
    assert_eq!(v["on_demand"]["certificate_minutes"], 60, "the default");
    assert_eq!(v["asynchronous"]["enabled"], true, "the default");
    let text = env.admin(&["settings"], "");
    assert!(text.lines().any(|l| l == "approval.seconds = 42"), "{text}");
    assert!(text.lines().any(|l| l == "asynchronous.max_validity_seconds = 86400"), "{text}");

    std::fs::write(env.file("cloudsign.toml"), "[approval]\nenabled = true\nsecond = 5\n").unwrap();
    let (ok, _, err) = env.admin_result(&["settings"], "");
    assert!(!ok && err.contains("second"), "{err}");
}
