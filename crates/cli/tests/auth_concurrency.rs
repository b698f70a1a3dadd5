//! Authentication under concurrency and token revocation, on the real binary:
//! - right PINs and passwords sent at once never lock or throttle (only failures count), while
//!   wrong ones sent at once still lock after exactly `max_auth_attempts` and are throttled after
//!   exactly five free failures, on SQLite and on two server processes sharing one PostgreSQL
//!   database;
//! - a rotated refresh token presented again revokes its whole line (RFC 9700 §4.14.2);
//! - revoking a token revokes the SADs it obtained, their extensions included;
//! - a failed PKCE verifier burns the code (RFC 7636 §4.6, RFC 6749 §4.1.2).

mod common;

use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
/// `max_auth_attempts` default.
const MAX_ATTEMPTS: usize = 5;
/// `LOGIN_FREE_FAILURES`.
const FREE_LOGIN_FAILURES: usize = 5;

#[tokio::test]
async fn parallel_authentication_sqlite() {
    parallel_authentication(&Env::new(BIN, "sqlite"), 1).await;
}

#[tokio::test]
async fn parallel_authentication_two_postgres_nodes() {
    parallel_authentication(&Env::new(BIN, "postgres"), 2).await;
}

/// A client of node `i % nodes`, with `token`.
fn client(servers: &[Server], i: usize, token: Option<String>) -> Api {
    let mut api = Api::new(&servers[i % servers.len()]);
    api.token = token;
    api
}

async fn login_status(api: &Api, user: &str, password: &str) -> (u16, Option<String>) {
    let resp = api.http.post(format!("{}/auth/login", api.base)).basic_auth(user, Some(password)).json(&json!({})).send().await.unwrap();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (resp.status().as_u16(), retry_after)
}

async fn parallel_authentication(env: &Env, nodes: usize) {
    env.add_user("alice");
    env.add_user("bob");
    let id = env.add_credential("alice", &["--scal", "1", "--multisign", "10"])["credentialID"].as_str().unwrap().to_string();
    let servers: Vec<Server> = (0..nodes).map(|_| env.start()).collect();

    // 20 right passwords at once: every one logs in.
    let logins: Vec<_> = (0..20)
        .map(|i| {
            let api = client(&servers, i, None);
            tokio::spawn(async move { login_status(&api, "alice", PASSWORD).await.0 })
        })
        .collect();
    for t in logins {
        assert_eq!(t.await.unwrap(), 200, "a right password is never throttled, however many arrive at once");
    }

    // 20 right PINs at once: every one gets a SAD, and the credential stays unlocked.
    let mut api = client(&servers, 0, None);
    api.login("alice").await;
    let token = api.token.clone();
    let authorizations: Vec<_> = (0..20)
        .map(|i| {
            let (api, id) = (client(&servers, i, token.clone()), id.clone());
            tokio::spawn(async move { api.authorize(&id, 1, None, json!([{"id": "PIN", "value": PIN}])).await })
        })
        .collect();
    let mut sads = Vec::new();
    for t in authorizations {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, 200, "a right PIN never counts as a failure: {v}");
        sads.push(v["SAD"].as_str().unwrap().to_string());
    }
    let info = api.ok("credentials/info", json!({"credentialID": id})).await;
    assert_eq!(info["key"]["status"], "enabled", "the credential stays unlocked: {info}");
    let (s, v) = api.sign(&id, &sads[19], &[sha256(b"after the burst")], ECDSA_SHA256, None).await;
    assert_eq!(s, 200, "{v}");

    // One wrong PIN, then a right one: the count starts again.
    let (s, v) = api.authorize(&id, 1, None, json!([{"id": "PIN", "value": "000000"}])).await;
    assert_error("authorize (wrong PIN)", s, &v, 400, "invalid_authentication_data", "4 attempts left");
    api.sad(&id, 1, None).await;

    // 12 wrong PINs at once: exactly MAX_ATTEMPTS are checked (4, 3, 2, 1, 0 attempts left),
    // the others find the credential locked, and then so does the right PIN.
    let guesses: Vec<_> = (0..12)
        .map(|i| {
            let (api, id) = (client(&servers, i, token.clone()), id.clone());
            tokio::spawn(async move { api.authorize(&id, 1, None, json!([{"id": "PIN", "value": format!("{:06}", 100 + i)}])).await })
        })
        .collect();
    let (mut wrong, mut locked, mut left) = (0, 0, Vec::new());
    for t in guesses {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, 400, "{v}");
        let d = v["error_description"].as_str().unwrap().to_string();
        match v["error"].as_str().unwrap() {
            "invalid_authentication_data" => {
                wrong += 1;
                left.push(d);
            }
            "invalid_request" => {
                assert!(d.starts_with("PIN locked"), "{d}");
                locked += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((wrong, locked), (MAX_ATTEMPTS, 12 - MAX_ATTEMPTS), "parallel guesses never get past the lockout: {left:?}");
    left.sort();
    assert_eq!(left.iter().filter(|d| d.contains("1 attempt left")).count(), 1, "{left:?}");
    assert_eq!(left.iter().filter(|d| d.contains("4 attempts left")).count(), 1, "{left:?}");
    let (s, v) = api.authorize(&id, 1, None, json!([{"id": "PIN", "value": PIN}])).await;
    assert_error("authorize (locked)", s, &v, 400, "invalid_request", "PIN locked");
    let info = api.ok("credentials/info", json!({"credentialID": id})).await;
    assert_eq!(info["key"]["status"], "disabled", "locked: {info}");
    env.admin(&["credential", "unlock", &id], "");
    api.sad(&id, 1, None).await;

    // 10 wrong passwords at once on bob: the five free failures and one slotted attempt are
    // checked (400 authentication_error), the rest wait for them and are then told to wait for the slot (429 with
    // Retry-After), as documented.
    let guesses: Vec<_> = (0..10)
        .map(|i| {
            let api = client(&servers, i, None);
            tokio::spawn(async move { login_status(&api, "bob", &format!("wrong password {i}")).await })
        })
        .collect();
    let (mut refused, mut throttled) = (0, 0);
    for t in guesses {
        match t.await.unwrap() {
            (400, _) => refused += 1,
            (429, Some(retry)) => {
                assert!(retry.parse::<u64>().unwrap() >= 1, "{retry}");
                throttled += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((refused, throttled), (FREE_LOGIN_FAILURES + 1, 10 - FREE_LOGIN_FAILURES - 1));

    // Each check was audited once, on whichever node ran it.
    let audit = env.admin(&["audit", "--json", "--limit", "100000"], "");
    let events: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let wrong_pins = events
        .iter()
        .filter(|e| e["event"] == "credentials.authorize" && e["outcome"] == "refused" && e["detail"]["reason"] == "wrong PIN")
        .count();
    assert_eq!(wrong_pins, 1 + MAX_ATTEMPTS);
    drop(servers);
}

/// Log in with `rememberMe`: (access token, refresh token).
async fn login_remember(api: &Api, user: &str) -> (String, String) {
    let resp = api.http.post(format!("{}/auth/login", api.base)).basic_auth(user, Some(PASSWORD)).json(&json!({"rememberMe": true}));
    let v: Value = resp.send().await.unwrap().json().await.unwrap();
    (v["access_token"].as_str().unwrap().to_string(), v["refresh_token"].as_str().unwrap().to_string())
}

async fn refresh(api: &Api, token: &str) -> (u16, Value) {
    api.post_raw("auth/login", json!({"refresh_token": token}).to_string().into_bytes(), None).await
}

#[tokio::test]
async fn refresh_reuse_revokes_the_line_and_its_sads() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let id = env.add_credential("alice", &["--scal", "1", "--multisign", "10"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let api = Api::new(&server);
    let (_, r1) = login_remember(&api, "alice").await;
    let (s, second) = refresh(&api, &r1).await;
    assert_eq!(s, 200, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap().to_string();
    let (s, third) = refresh(&api, &r2).await;
    assert_eq!(s, 200, "{third}");
    let (a3, r3) = (third["access_token"].as_str().unwrap().to_string(), third["refresh_token"].as_str().unwrap().to_string());
    let live = Api { token: Some(a3.clone()), ..Api::new(&server) };
    let sad = live.sad(&id, 5, None).await;
    assert_eq!(live.post("credentials/list", json!({})).await.0, 200);

    // r1 was rotated: presented again, it is refused and everything descended from it dies.
    let (s, v) = refresh(&api, &r1).await;
    assert_error("auth/login (reused refresh token)", s, &v, 400, "invalid_request", "refresh_token");
    assert_eq!(live.post("credentials/list", json!({})).await.0, 401, "the live access token of the line is revoked");
    let (s, v) = refresh(&api, &r3).await;
    assert_eq!(s, 400, "and the live refresh token: {v}");
    let mut other = Api::new(&server);
    other.login("alice").await;
    let (s, v) = other.sign(&id, &sad, &[sha256(b"x")], ECDSA_SHA256, None).await;
    assert_error("signHash (SAD of a revoked line)", s, &v, 400, "invalid_request", "Invalid parameter SAD");
    // A fresh login is not touched.
    let fresh = other.sad(&id, 1, None).await;
    assert_eq!(other.sign(&id, &fresh, &[sha256(b"y")], ECDSA_SHA256, None).await.0, 200);
}

#[tokio::test]
async fn revoking_a_token_revokes_its_sads() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let id = env.add_credential("alice", &["--scal", "1", "--multisign", "10"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let mut first = Api::new(&server);
    first.login("alice").await;
    let sad = first.sad(&id, 3, None).await;
    let extended = first.ok("credentials/extendTransaction", json!({"credentialID": id, "SAD": sad})).await;
    let extended = extended["SAD"].as_str().unwrap().to_string();
    let kept = first.sad(&id, 3, None).await;
    let mut second = Api::new(&server);
    second.login("alice").await;
    let other = second.sad(&id, 1, None).await;
    assert_eq!(second.sign(&id, &kept, &[sha256(b"before")], ECDSA_SHA256, None).await.0, 200, "a SAD works with any of the user's tokens");

    let token = first.token.clone().unwrap();
    assert_eq!(first.post("auth/revoke", json!({"token": token})).await.0, 204);
    for (what, sad) in [("SAD", &kept), ("extended SAD", &extended)] {
        let (s, v) = second.sign(&id, sad, &[sha256(b"after")], ECDSA_SHA256, None).await;
        assert_error(&format!("signHash ({what} of a revoked token)"), s, &v, 400, "invalid_request", "Invalid parameter SAD");
    }
    // The other token's SAD is untouched.
    assert_eq!(second.sign(&id, &other, &[sha256(b"other")], ECDSA_SHA256, None).await.0, 200);
}

#[tokio::test]
async fn failed_pkce_burns_the_code() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let (client, _) = add_client(&env, "Public app", &["--public"]);
    let server = env.start();
    let (verifier, challenge) = pkce(&env.dir);
    let params = consent_code(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", &client),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "service"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "alice",
        &[],
    )
    .await;
    let code = params["code"].as_str();
    let base = [("grant_type", "authorization_code"), ("code", code), ("client_id", &client), ("redirect_uri", REDIRECT_URI)];
    let last = if verifier.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &verifier[..verifier.len() - 1]);
    let mut form = base.to_vec();
    form.push(("code_verifier", &wrong));
    let (s, v) = oauth_post(&server, "token", &form, None).await;
    assert_eq!((s, v["error"].as_str(), v["error_description"].as_str()), (400, Some("invalid_grant"), Some("PKCE verification failed")));
    form.pop();
    form.push(("code_verifier", &verifier));
    let (s, v) = oauth_post(&server, "token", &form, None).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "the right verifier comes too late: {v}");
}
