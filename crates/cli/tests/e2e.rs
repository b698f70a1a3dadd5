//! End-to-end: the real binary on a real socket, driven over HTTP, on SQLite and PostgreSQL.
//! Every signature is verified by `openssl dgst`, every chain by `openssl verify`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
const RSA: &str = "1.2.840.113549.1.1.1";
const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
const PSS: &str = "1.2.840.113549.1.1.10";
/// DER RSASSA-PSS-params: SHA-256, MGF1-SHA-256, salt 32 (as pyHanko sends them).
const PSS_SHA256_PARAMS: &str = "MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEg";

#[tokio::test]
async fn signing_flow_sqlite() {
    signing_flow("sqlite").await;
}

#[tokio::test]
async fn signing_flow_postgres() {
    signing_flow("postgres").await;
}

#[tokio::test]
async fn refusals_sqlite() {
    refusals("sqlite").await;
}

#[tokio::test]
async fn refusals_postgres() {
    refusals("postgres").await;
}

/// login -> list -> info -> authorize -> signHash for every key type and scheme.
async fn signing_flow(db: &str) {
    // As deployed: certificates name the service's OCSP responder and CRL.
    let env = Env::new(BIN, db).with_public_url();
    env.add_user("alice");
    env.add_user("bob");
    let p256 = env.add_credential("alice", &["--key", "ecdsa-p256"]);
    let p384 = env.add_credential("alice", &["--key", "ecdsa-p384", "--scal", "1"]);
    let p521 = env.add_credential("alice", &["--key", "ecdsa-p521"]);
    let rsa = env.add_credential("alice", &["--key", "rsa-2048", "--multisign", "5"]);
    let bobs = env.add_credential("bob", &["--key", "ecdsa-p256"]);
    let id = |c: &Value| c["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let mut api = Api::new(&server);

    let (s, info) = api.post("info", json!({})).await;
    assert_eq!(s, 200);
    // CSC 2.2 keeps the /csc/v2 base and every 2.0.0.2 member; `specs` names 2.2.0.0 (the EUDI
    // 2.2 client refuses anything else, 2.0 clients never read it).
    assert_eq!(info["specs"], "2.2.0.0");
    assert_eq!(info["authType"], json!(["basic", "oauth2code", "oauth2client"]));
    for m in ["auth/login", "credentials/authorize", "signatures/signHash", "credentials/getChallenge"] {
        assert!(info["methods"].as_array().unwrap().contains(&json!(m)), "{m} in {info}");
    }
    assert!(info["signAlgorithms"]["algos"].as_array().unwrap().contains(&json!(PSS)));

    let login = api.login("alice").await;
    assert!(login["refresh_token"].is_string());
    assert_eq!(login["expires_in"], 3600);

    // Only the caller's credentials, with the details asked for.
    let list =
        api.ok("credentials/list", json!({"credentialInfo": true, "certificates": "chain", "certInfo": true, "authInfo": true})).await;
    let mut ids: Vec<String> = list["credentialIDs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    ids.sort();
    let mut want = vec![id(&p256), id(&p384), id(&p521), id(&rsa)];
    want.sort();
    assert_eq!(ids, want);
    assert!(!ids.contains(&id(&bobs)));
    for info in list["credentialInfos"].as_array().unwrap() {
        assert!(info["credentialID"].is_string());
        let chain = info["cert"]["certificates"].as_array().unwrap();
        assert_eq!(chain.len(), 3, "EE, issuing CA, root");
        openssl_verify_chain(&env, chain);
        assert_eq!(info["cert"]["status"], "valid");
        assert_eq!(info["cert"]["subjectDN"], "CN=alice,O=cloudsign");
        assert_eq!(info["cert"]["issuerDN"], "CN=cloudsign Issuing CA 1,O=cloudsign");
        assert!(info["cert"]["validFrom"].as_str().unwrap().ends_with('Z'));
        assert_eq!(info["auth"]["mode"], "explicit");
        assert_eq!(info["auth"]["expression"], "PIN");
        assert_eq!(info["auth"]["objects"][0]["id"], "PIN");
        assert_eq!(info["auth"]["objects"][0]["type"], "Password");
    }
    let info = api.ok("credentials/info", json!({"credentialID": id(&p256)})).await;
    assert_eq!(info["key"]["status"], "enabled");
    assert_eq!(info["key"]["algo"], json!([ECDSA_SHA256]));
    assert_eq!(info["key"]["len"], 256);
    assert_eq!(info["key"]["curve"], "1.2.840.10045.3.1.7");
    assert_eq!(info["SCAL"], "2");
    assert_eq!(info["multisign"], 10);
    assert_eq!(info["cert"]["certificates"].as_array().unwrap().len(), 1, "single is the default");
    assert!(info["cert"].get("serialNumber").is_none(), "certInfo defaults to false");
    assert!(info["auth"].get("objects").is_none(), "authInfo defaults to false");
    let none = api.ok("credentials/info", json!({"credentialID": id(&rsa), "certificates": "none", "certInfo": true})).await;
    assert!(none["cert"].get("certificates").is_none());
    assert!(none["cert"]["serialNumber"].as_str().unwrap().chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(none["key"]["len"], 2048);

    let docs: Vec<Vec<u8>> = vec![b"first contract".to_vec(), b"second contract".to_vec()];
    // (credential, signAlgo, hashAlgorithmOID, digest, openssl digest, openssl mode, params)
    type Case<'a> = (&'a Value, &'a str, Option<&'a str>, fn(&[u8]) -> Vec<u8>, &'a str, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (&p256, ECDSA_SHA256, None, sha256, "sha256", "ecdsa", None),
        (&p384, ECDSA_SHA384, None, sha384, "sha384", "ecdsa", None),
        (&p521, ECDSA_SHA512, None, sha512, "sha512", "ecdsa", None),
        (&p521, ECDSA_SHA256, Some(SHA256), sha256, "sha256", "ecdsa", None),
        (&rsa, SHA256_RSA, None, sha256, "sha256", "pkcs1", None),
        (&rsa, RSA, Some(SHA384), sha384, "sha384", "pkcs1", None),
        (&rsa, PSS, None, sha256, "sha256", "pss", Some(PSS_SHA256_PARAMS)),
    ];
    for (cred, sign_algo, hash_oid, digest, dgst, mode, params) in cases {
        let digests: Vec<Vec<u8>> = docs.iter().map(|d| digest(d)).collect();
        let oid = match dgst {
            "sha256" => SHA256,
            "sha384" => SHA384,
            _ => SHA512,
        };
        let scal2 = cred["credentialID"] != p384["credentialID"];
        let sad = api.sad(&id(cred), 2, scal2.then_some((digests.as_slice(), oid))).await;
        let mut body = json!({"credentialID": id(cred), "SAD": sad, "signAlgo": sign_algo,
            // one hash in standard base64, one in base64url without padding: both must match the binding
            "hashes": [b64(&digests[0]), b64(&digests[1]).replace('+', "-").replace('/', "_").trim_end_matches('=').to_string()]});
        if let Some(h) = hash_oid {
            body["hashAlgorithmOID"] = json!(h);
        }
        if let Some(p) = params {
            body["signAlgoParams"] = json!(p);
        }
        let signed = api.ok("signatures/signHash", body).await;
        let sigs = signed["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), 2);
        let cert = cred["certificate"].as_str().unwrap();
        let der = pem_to_der(cert);
        for (doc, sig) in docs.iter().zip(sigs) {
            openssl_verify_signature(&env.dir, &b64(&der), doc, &unb64(sig.as_str().unwrap()), dgst, mode);
        }
    }

    // Refresh-token login rotates the refresh token.
    let refresh = login["refresh_token"].as_str().unwrap();
    let (s, again) = api.post_raw("auth/login", json!({"refresh_token": refresh}).to_string().into_bytes(), None).await;
    assert_eq!(s, 200, "{again}");
    assert!(again["refresh_token"].is_string());
    let (s, v) = api.post_raw("auth/login", json!({"refresh_token": refresh}).to_string().into_bytes(), None).await;
    assert_error("auth/login", s, &v, 400, "invalid_request", "refresh_token");
    // RFC 9700 §4.14.2: the rotated refresh token presented again revoked its whole line, the
    // first login's access token included.
    api.err("credentials/list", json!({}), 401, "expired_token", "").await;
    api.login("alice").await;

    // Revoking the access token shuts it out at once.
    let token = api.token.clone().unwrap();
    let (s, _) = api.post("auth/revoke", json!({"token": token, "token_type_hint": "access_token"})).await;
    assert_eq!(s, 204);
    api.err("credentials/list", json!({}), 401, "expired_token", "").await;

    // The audit log has every signature with its hash, algorithm and client.
    let audit = env.admin(&["audit", "--json", "--limit", "1000"], "");
    let signatures: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "signatures.signHash" && e["outcome"] == "ok")
        .collect();
    assert_eq!(signatures.len(), 7);
    assert!(signatures.iter().all(|e| e["detail"]["hashes"].as_array().unwrap().len() == 2
        && e["detail"]["algorithm"].is_string()
        && e["detail"]["client"].is_string()));
    assert_no_secrets(&env, &[PIN, PASSWORD, refresh, &token]);
    drop(server);
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    unb64(&body)
}

/// Neither the server log nor the audit log may contain a secret.
fn assert_no_secrets(env: &Env, secrets: &[&str]) {
    let log = env.server_log();
    let audit = env.admin(&["audit", "--json", "--limit", "100000"], "");
    for s in secrets {
        assert!(!log.contains(s), "a secret reached the server log");
        assert!(!audit.contains(s), "a secret reached the audit log");
    }
}

/// Negative tests for every rule: SAD replay, unbound hash, other users, count overrun, expiry,
/// PIN lockout, OTP reuse, revoked tokens, malformed input.
async fn refusals(db: &str) {
    let env = Env::new(BIN, db).with_public_url().with_env("CLOUDSIGN_SAD_TTL", "2").with_env("CLOUDSIGN_BODY_LIMIT", "65536");
    env.add_user("alice");
    env.add_user("bob");
    let scal2 = env.add_credential("alice", &["--key", "ecdsa-p256"])["credentialID"].as_str().unwrap().to_string();
    let scal1 = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1", "--multisign", "3"])["credentialID"]
        .as_str()
        .unwrap()
        .to_string();
    let rsa = env.add_credential("alice", &["--key", "rsa-2048", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let totp_cred = env.add_credential("alice", &["--key", "ecdsa-p256", "--otp", "totp", "--scal", "1"]);
    let totp_id = totp_cred["credentialID"].as_str().unwrap().to_string();
    let otpauth = totp_cred["otpauth"].as_str().unwrap().to_string();
    assert!(otpauth.starts_with("otpauth://totp/cloudsign:alice?secret="));
    let online = env.add_credential("alice", &["--key", "ecdsa-p256", "--otp", "online", "--scal", "1"])["credentialID"]
        .as_str()
        .unwrap()
        .to_string();
    let bobs = env.add_credential("bob", &["--key", "ecdsa-p256", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let mut api = Api::new(&server);
    let mut bob = Api::new(&server);

    // --- service authentication
    let resp = api
        .http
        .post(format!("{}/auth/login", api.base))
        .basic_auth("alice", Some("wrong password"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "authentication_error");
    let resp =
        api.http.post(format!("{}/auth/login", api.base)).header("authorization", "Basic !!!").json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let resp = api.http.post(format!("{}/auth/login", api.base)).basic_auth("alice", Some(PASSWORD)).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store", "token responses are never cached");
    api.err("credentials/list", json!({}), 401, "invalid_request", "Bearer").await;
    let (s, v) = api.post_raw("credentials/list", b"{}".to_vec(), Some("not-a-token")).await;
    assert_error("list", s, &v, 401, "invalid_token", "");
    api.login("alice").await;
    bob.login("bob").await;

    // --- malformed input
    let (s, v) = api.post_raw("credentials/authorize", b"{\"credentialID\": ".to_vec(), api.token.as_deref()).await;
    assert_error("authorize", s, &v, 400, "invalid_request", "Malformed JSON");
    api.err(
        "credentials/authorize",
        json!({"credentialID": scal1, "numSignatures": "two", "authData": []}),
        400,
        "invalid_request",
        "numSignatures",
    )
    .await;
    api.err("credentials/authorize", json!({"numSignatures": 1}), 400, "invalid_request", "credentialID").await;
    api.err("credentials/info", json!({"credentialID": "no-such-credential"}), 400, "invalid_request", "credentialID").await;
    api.err("credentials/info", json!({"credentialID": scal1, "certificates": "all"}), 400, "invalid_request", "certificates").await;
    api.err("credentials/list", json!({"userID": "alice"}), 400, "invalid_request", "userID parameter MUST be null").await;
    api.err("credentials/list", json!({"clientData": 5}), 400, "invalid_request", "clientData").await;
    let huge = vec![b' '; 70_000]; // just over the 64 KiB limit: small enough that the client finishes sending before the 413
    let (s, v) = api.post_raw("credentials/list", huge, api.token.as_deref()).await;
    assert_error("list", s, &v, 413, "invalid_request", "too large");
    let (s, v) = api.post_raw("no/such/method", b"{}".to_vec(), api.token.as_deref()).await;
    assert_error("unknown", s, &v, 404, "invalid_request", "Unknown method");
    let resp = api.http.get(format!("{}/credentials/list", api.base)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    api.err(
        "credentials/authorize",
        json!({"credentialID": scal1, "numSignatures": 0, "authData": [{"id": "PIN", "value": PIN}]}),
        400,
        "invalid_request",
        "numSignatures",
    )
    .await;
    api.err(
        "credentials/authorize",
        json!({"credentialID": scal1, "numSignatures": 4, "authData": [{"id": "PIN", "value": PIN}]}),
        400,
        "invalid_request",
        "too high",
    )
    .await;
    api.err(
        "credentials/authorize",
        json!({"credentialID": scal2, "numSignatures": 1, "authData": [{"id": "PIN", "value": PIN}]}),
        400,
        "invalid_request",
        "hashes",
    )
    .await;
    api.err("credentials/authorize", json!({"credentialID": scal1, "numSignatures": 1, "authData": []}), 400, "invalid_request", "PIN")
        .await;
    api.err("credentials/authorize", json!({"credentialID": scal1, "numSignatures": 1, "hashes": ["@@@"], "hashAlgorithmOID": SHA256, "authData": [{"id": "PIN", "value": PIN}]}), 400, "invalid_request", "Base64").await;
    api.err("credentials/authorize", json!({"credentialID": scal1, "numSignatures": 1, "hashes": [b64(&[1; 20])], "hashAlgorithmOID": SHA256, "authData": [{"id": "PIN", "value": PIN}]}), 400, "invalid_request", "length").await;
    api.err("credentials/authorize", json!({"credentialID": scal1, "numSignatures": 1, "hashes": [b64(&[1; 20])], "hashAlgorithmOID": "1.3.14.3.2.26", "authData": [{"id": "PIN", "value": PIN}]}), 400, "invalid_request", "hashAlgorithmOID").await;

    let h1 = sha256(b"doc one");
    let h2 = sha256(b"doc two");
    let sad = api.sad(&scal1, 3, None).await;
    api.err(
        "signatures/signHash",
        json!({"credentialID": scal1, "SAD": sad, "hashes": [b64(&h1)], "signAlgo": "1.2.3.4"}),
        400,
        "invalid_request",
        "signAlgo",
    )
    .await;
    api.err(
        "signatures/signHash",
        json!({"credentialID": scal1, "SAD": sad, "hashes": [b64(&h1)], "signAlgo": SHA256_RSA}),
        400,
        "invalid_request",
        "signAlgo",
    )
    .await;
    api.err(
        "signatures/signHash",
        json!({"credentialID": scal1, "SAD": sad, "hashes": [b64(&h1[..31])], "signAlgo": ECDSA_SHA256}),
        400,
        "invalid_request",
        "length",
    )
    .await;
    api.err(
        "signatures/signHash",
        json!({"credentialID": scal1, "SAD": sad, "hashes": [], "signAlgo": ECDSA_SHA256}),
        400,
        "invalid_request",
        "Empty hash",
    )
    .await;
    api.err(
        "signatures/signHash",
        json!({"credentialID": scal1, "SAD": sad, "hashes": [b64(&h1)], "signAlgo": ECDSA_SHA256, "hashAlgorithmOID": SHA384}),
        400,
        "invalid_request",
        "contradicts",
    )
    .await;
    api.err(
        "signatures/signHash",
        json!({"credentialID": scal1, "hashes": [b64(&h1)], "signAlgo": ECDSA_SHA256}),
        400,
        "invalid_request",
        "SAD",
    )
    .await;
    api.err(
        "signatures/signHash",
        // "S" and "A" (CSC 2.2 asynchronous, tests/asynchronous.rs) are the only modes.
        json!({"credentialID": scal1, "SAD": sad, "hashes": [b64(&h1)], "signAlgo": ECDSA_SHA256, "operationMode": "B"}),
        400,
        "invalid_request",
        "Invalid parameter operationMode",
    )
    .await;
    api.err(
        "signatures/signHash",
        json!({"credentialID": rsa, "SAD": sad, "hashes": [b64(&h1)], "signAlgo": RSA}),
        400,
        "invalid_request",
        "hashAlgorithmOID",
    )
    .await;
    // None of these refusals consumed anything: the SAD still has 3 signatures.
    // --- count overrun: 4 hashes on a 3-signature SAD fail whole, then 3 succeed, then replay fails.
    let four = vec![h1.clone(), h2.clone(), h1.clone(), h2.clone()];
    let (s, v) = api.sign(&scal1, &sad, &four, ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "too high");
    let (s, v) = api.sign(&scal1, &sad, &four[..3], ECDSA_SHA256, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.sign(&scal1, &sad, &four[..1], ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "too high");

    // --- SCAL 2: an unbound hash signs nothing; the bound one still works once.
    let sad = api.sad(&scal2, 1, Some((&[h1.clone()], SHA256))).await;
    let (s, v) = api.sign(&scal2, &sad, &[h2.clone()], ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "not authorized");
    let (s, v) = api.sign(&scal2, &sad, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.sign(&scal2, &sad, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_error("signHash (replay)", s, &v, 400, "invalid_request", "");

    // --- SCAL 2 binds a multiset: [h1, h1] allows h1 twice, not h1 three times.
    let sad = api.sad(&scal2, 2, Some((&[h1.clone(), h1.clone()], SHA256))).await;
    let (s, _) = api.sign(&scal2, &sad, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_eq!(s, 200);
    let (s, _) = api.sign(&scal2, &sad, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_eq!(s, 200);

    // --- extendTransaction: the new SAD carries the remaining count; the old one is dead.
    let sad = api.sad(&scal2, 2, Some((&[h1.clone()], SHA256))).await;
    let (s, _) = api.sign(&scal2, &sad, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_eq!(s, 200);
    let ext = api
        .ok("credentials/extendTransaction", json!({"credentialID": scal2, "SAD": sad, "hashes": [b64(&h2)], "hashAlgorithmOID": SHA256}))
        .await;
    let sad2 = ext["SAD"].as_str().unwrap();
    let (s, v) = api.sign(&scal2, &sad, &[h2.clone()], ECDSA_SHA256, None).await;
    assert_error("signHash (old SAD)", s, &v, 400, "invalid_request", "SAD");
    let (s, v) = api.sign(&scal2, sad2, &[h2.clone()], ECDSA_SHA256, None).await;
    assert_eq!(s, 200, "{v}");

    // --- other users: bob can use neither alice's credential nor her SAD.
    let sad = api.sad(&scal1, 1, None).await;
    bob.err("credentials/info", json!({"credentialID": scal1}), 400, "invalid_request", "credentialID").await;
    let (s, v) = bob.sign(&scal1, &sad, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "credentialID");
    let (s, v) = bob.sign(&bobs, &sad, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "SAD");
    let (s, v) = api.sign(&scal2, &sad, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_error("signHash (SAD of another credential)", s, &v, 400, "invalid_request", "SAD");
    let (s, _) = api.sign(&scal1, &sad, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_eq!(s, 200, "still usable by its owner on its credential");

    // --- expiry (SAD lifetime set to 2 s for this server)
    let sad = api.sad(&scal1, 1, None).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, v) = api.sign(&scal1, &sad, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "SAD expired");

    // --- TOTP: accepted once; the next step's code works.
    let code = totp(&otpauth, 0);
    let (s, v) = api.authorize(&totp_id, 1, None, json!([{"id": "PIN", "value": PIN}])).await;
    assert_error("authorize", s, &v, 400, "invalid_request", "OTP");
    let (s, v) = api.authorize(&totp_id, 1, None, json!([{"id": "PIN", "value": PIN}, {"id": "OTP", "value": code}])).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.authorize(&totp_id, 1, None, json!([{"id": "PIN", "value": PIN}, {"id": "OTP", "value": code}])).await;
    assert_error("authorize (reused OTP)", s, &v, 400, "invalid_authentication_data", "OTP");
    let (s, v) = api.authorize(&totp_id, 1, None, json!([{"id": "PIN", "value": PIN}, {"id": "OTP", "value": totp(&otpauth, 1)}])).await;
    assert_eq!(s, 200, "{v}");
    let info = api.ok("credentials/info", json!({"credentialID": totp_id, "authInfo": true})).await;
    assert_eq!(info["auth"]["expression"], "PIN AND OTP");
    assert_eq!(info["auth"]["objects"][1]["generator"], "totp");

    // --- online OTP through getChallenge and the outbox.
    let (s, _) = api.post("credentials/getChallenge", json!({"credentialID": online, "authObjectID": "OTP"})).await;
    assert_eq!(s, 204);
    let outbox = std::fs::read_to_string(env.file("otp-outbox.txt")).unwrap();
    let line = outbox.lines().last().unwrap();
    assert!(line.starts_with(&format!("alice {online} ")));
    let code = line.rsplit(' ').next().unwrap().to_string();
    let (s, v) = api.authorize(&online, 1, None, json!([{"id": "PIN", "value": PIN}, {"id": "OTP", "value": code}])).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.authorize(&online, 1, None, json!([{"id": "PIN", "value": PIN}, {"id": "OTP", "value": code}])).await;
    assert_error("authorize (reused online OTP)", s, &v, 400, "invalid_authentication_data", "OTP");
    api.err("credentials/getChallenge", json!({"credentialID": scal1, "authObjectID": "OTP"}), 400, "invalid_request", "authObjectID")
        .await;

    // --- PIN lockout after 5 failures; unlock by the administrator (server keeps running).
    let before_lockout = api.sad(&scal1, 1, None).await;
    for i in 0..5 {
        let (s, v) = api.authorize(&scal1, 1, None, json!([{"id": "PIN", "value": "000000"}])).await;
        assert_error("authorize (wrong PIN)", s, &v, 400, "invalid_authentication_data", "PIN");
        let left = if i == 3 { "1 attempt left".to_string() } else { format!("{} attempts left", 4 - i) };
        assert!(v["error_description"].as_str().unwrap().contains(&left), "{v}");
    }
    let (s, v) = api.authorize(&scal1, 1, None, json!([{"id": "PIN", "value": PIN}])).await;
    assert_error("authorize (locked)", s, &v, 400, "invalid_request", "PIN locked");
    let (s, v) = api.sign(&scal1, &before_lockout, &[h1.clone()], ECDSA_SHA256, None).await;
    assert_error("signHash (locked, SAD from before)", s, &v, 400, "invalid_request", "PIN locked");
    let list = api.ok("credentials/list", json!({"onlyValid": true})).await;
    assert!(!list["credentialIDs"].as_array().unwrap().contains(&json!(scal1)), "a locked credential is not valid");
    assert_eq!(list["onlyValid"], true);
    env.admin(&["credential", "unlock", &scal1], "");
    let _ = api.sad(&scal1, 1, None).await;

    // --- disabled credential and user, changed while the server runs.
    env.admin(&["credential", "disable", &scal1], "");
    api.err(
        "credentials/authorize",
        json!({"credentialID": scal1, "numSignatures": 1, "authData": [{"id": "PIN", "value": PIN}]}),
        400,
        "invalid_request",
        "disabled",
    )
    .await;
    let info = api.ok("credentials/info", json!({"credentialID": scal1})).await;
    assert_eq!(info["key"]["status"], "disabled");
    env.admin(&["credential", "enable", &scal1], "");
    let _ = api.sad(&scal1, 1, None).await;
    env.admin(&["user", "disable", "bob"], "");
    bob.err("credentials/list", json!({}), 401, "expired_token", "").await;
    let resp = api.http.post(format!("{}/auth/login", api.base)).basic_auth("bob", Some(PASSWORD)).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 400);

    // --- admin errors are readable and exit non-zero.
    let (ok, _, err) = env.admin_result(&["credential", "add", "--user", "nobody", "--pin-stdin"], "1234\n");
    assert!(!ok && err.contains("no user nobody"), "{err}");
    let (ok, _, err) = env.admin_result(&["credential", "add", "--user", "alice", "--pin-stdin", "--key", "dsa-1024"], "1234\n");
    assert!(!ok && err.contains("unknown key type"), "{err}");
    let (ok, _, err) = env.admin_result(&["user", "add", "alice", "--password-stdin"], "another password\n");
    assert!(!ok && err.contains("already exists"), "{err}");

    // --- the audit trail records refusals too.
    let audit = env.admin(&["audit", "--json", "--limit", "1000"], "");
    let events: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        events.iter().any(|e| e["event"] == "credentials.authorize" && e["outcome"] == "refused" && e["detail"]["reason"] == "wrong PIN")
    );
    assert!(events.iter().any(|e| e["event"] == "auth.login" && e["outcome"] == "refused"));
    assert!(events.iter().any(|e| e["event"] == "signatures.signHash"
        && e["outcome"] == "refused"
        && e["detail"]["reason"] == "Hash is not authorized by the SAD."));
    assert!(
        events.iter().any(|e| e["event"] == "credentials.authorize" && e["outcome"] == "refused" && e["detail"]["reason"] == "PIN locked")
    );
    assert!(events.iter().any(|e| e["event"] == "admin.credential.unlock"));
    assert_no_secrets(&env, &[PIN, PASSWORD, &code, api.token.as_deref().unwrap()]);
    drop(server);
}

/// TLS with rustls when a certificate and key are configured.
#[tokio::test]
async fn tls() {
    let env = Env::new(BIN, "sqlite");
    let (cert, key) = (env.file("tls.crt"), env.file("tls.key"));
    cloudsign_test_support::pki::self_signed_p256(
        &key,
        &cert,
        "/CN=localhost",
        1,
        &["subjectAltName=IP:127.0.0.1,DNS:localhost", "basicConstraints=critical,CA:FALSE"],
    );
    let server = env.start_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    let resp = http.post(format!("{}/csc/v2/info", server.url)).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["specs"], "2.2.0.0");
}

/// Access tokens expire; the key-encryption key is a 0600 file; a node with another key is
/// refused at start instead of failing later.
#[tokio::test]
async fn token_expiry_and_key_encryption_key() {
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_ACCESS_TOKEN_TTL", "1");
    env.add_user("alice");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(env.file("kek")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key-encryption key is readable by its owner only");
    }
    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let _ = api.ok("credentials/list", json!({})).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    api.err("credentials/list", json!({}), 401, "expired_token", "").await;
    drop(server);

    let other = Env::new(BIN, "sqlite");
    let mut cmd = other.command();
    // Point a second node at the first one's database with a different key.
    cmd.env("CLOUDSIGN_DATABASE_URL", format!("sqlite://{}?mode=rwc", env.file("cloudsign.db").display()))
        .env("CLOUDSIGN_KEK", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    let out = cmd.args(["admin", "user", "list"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key-encryption key does not match"), "{err}");
}

/// PostgreSQL over TLS (`sslmode=require`): the server's connections are encrypted, as
/// PostgreSQL itself reports in pg_stat_ssl.
#[tokio::test]
async fn postgres_over_tls() {
    let env = Env::new(BIN, "postgres").with_env("TEST_PG_QUERY", "sslmode=require");
    env.add_user("alice");
    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let _ = api.ok("credentials/list", json!({})).await;
    let Db::Postgres(name) = &env.db else { unreachable!() };
    let sql = format!(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{name}'"
    );
    let out = run(std::process::Command::new("psql").args(["-h", PG_HOST, "-d", "test", "-At", "-c", &sql]));
    let (encrypted, total) = out.trim().split_once('|').unwrap();
    assert!(total.parse::<u32>().unwrap() > 0, "the server holds connections");
    assert_eq!(encrypted, total, "every connection of the server uses TLS");
    drop(server);
}

/// signHash remembers the caller's session and credential between requests, but the consuming
/// write re-checks them: every change made while the server runs (disable, suspend, revoke,
/// lock, user disabled) applies to the very next signature.
#[tokio::test]
async fn remembered_rows_never_outvote_the_database() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let id = env.add_credential("alice", &["--scal", "1", "--multisign", "100"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let sad = api.sad(&id, 100, None).await;
    let digest = sha256(b"cached or not");
    let sign = |api: &Api| {
        let (id, sad, digest) = (id.clone(), sad.clone(), digest.clone());
        let api = Api { http: api.http.clone(), base: api.base.clone(), token: api.token.clone() };
        async move { api.sign(&id, &sad, &[digest], ECDSA_SHA256, None).await }
    };
    let mut ok = 0;
    for _ in 0..3 {
        assert_eq!(sign(&api).await.0, 200);
        ok += 1;
    }
    env.admin(&["credential", "disable", &id], "");
    let (s, v) = sign(&api).await;
    assert_error("signHash (disabled)", s, &v, 400, "invalid_request", "disabled");
    env.admin(&["credential", "enable", &id], "");
    assert_eq!(sign(&api).await.0, 200);
    ok += 1;
    env.admin(&["credential", "suspend", &id], "");
    let (s, v) = sign(&api).await;
    assert_error("signHash (suspended)", s, &v, 400, "invalid_request", "suspended");
    env.admin(&["credential", "resume", &id], "");
    assert_eq!(sign(&api).await.0, 200);
    ok += 1;
    // The bearer token revoked: 401 at once; after a new login the SAD that token obtained is
    // revoked too (a new one signs on).
    let token = api.token.clone().unwrap();
    assert_eq!(api.post("auth/revoke", json!({"token": token})).await.0, 204);
    let (s, v) = sign(&api).await;
    assert_error("signHash (revoked token)", s, &v, 401, "expired_token", "");
    api.login("alice").await;
    let (s, v) = sign(&api).await;
    assert_error("signHash (SAD of a revoked token)", s, &v, 400, "invalid_request", "Invalid parameter SAD");
    let sad = api.sad(&id, 100, None).await;
    let sign = |api: &Api| {
        let (id, sad, digest) = (id.clone(), sad.clone(), digest.clone());
        let api = Api { http: api.http.clone(), base: api.base.clone(), token: api.token.clone() };
        async move { api.sign(&id, &sad, &[digest], ECDSA_SHA256, None).await }
    };
    assert_eq!(sign(&api).await.0, 200);
    ok += 1;
    // A key replaced by another process (renewal with a new key) is not used from memory.
    env.admin(&["credential", "renew", &id, "--new-key"], "");
    let (s, v) = sign(&api).await;
    assert_eq!(s, 200, "{v}");
    ok += 1;
    let cert = api.ok("credentials/info", json!({"credentialID": id})).await["cert"]["certificates"][0].as_str().unwrap().to_string();
    openssl_verify_signature(&env.dir, &cert, b"cached or not", &unb64(v["signatures"][0].as_str().unwrap()), "sha256", "ecdsa");
    // The user disabled.
    env.admin(&["user", "disable", "alice"], "");
    let (s, v) = sign(&api).await;
    assert_error("signHash (user disabled)", s, &v, 401, "expired_token", "");
    // Exactly the successful requests consumed signatures and were audited.
    let audit = env.admin(&["audit", "--json", "--limit", "1000"], "");
    let signed = audit.lines().filter(|l| l.contains("\"signatures.signHash\"") && l.contains("\"outcome\":\"ok\"")).count();
    assert_eq!(signed, ok);
    let refused = audit.lines().filter(|l| l.contains("\"signatures.signHash\"") && l.contains("\"outcome\":\"refused\"")).count();
    assert_eq!(refused, 3, "disabled, suspended and the revoked token's SAD are audited refusals: {audit}");
}

#[tokio::test]
async fn password_guessing_is_slowed_sqlite() {
    password_guessing("sqlite").await;
}

#[tokio::test]
async fn password_guessing_is_slowed_postgres() {
    password_guessing("postgres").await;
}

/// Wrong passwords on one account: five are free, then each attempt waits for its slot (2, 4, 8
/// s ...), refused with 429 `access_denied` and `Retry-After` before it, the right password too;
/// parallel guesses cannot pass the limit together; other accounts are untouched; a right
/// password or `admin user enable` starts the count again; the refusals are audited.
async fn password_guessing(db: &str) {
    let env = Env::new(BIN, db);
    env.add_user("alice");
    env.add_user("bob");
    let server = env.start();
    let api = Api::new(&server);
    let login = |user: &'static str, password: &'static str| {
        let request = api.http.post(format!("{}/auth/login", api.base)).basic_auth(user, Some(password)).json(&json!({}));
        async move { request.send().await.unwrap() }
    };
    for i in 0..6 {
        let r = login("alice", "wrong password").await;
        assert_eq!((i, r.status().as_u16()), (i, 400));
    }
    let r = login("alice", PASSWORD).await;
    assert_eq!(r.status(), 429, "the seventh attempt comes before its slot, whatever the password");
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "access_denied");
    assert!(v["error_description"].as_str().unwrap().contains("try again in"), "{v}");
    assert_eq!(login("bob", PASSWORD).await.status(), 200, "another account is not slowed");
    assert_eq!(login("mallory", "guess").await.status(), 400, "unknown names are refused as before");

    tokio::time::sleep(Duration::from_millis(wait * 1000 + 100)).await;
    assert_eq!(login("alice", PASSWORD).await.status(), 200, "after the wait the right password is taken");
    for _ in 0..5 {
        assert_eq!(login("alice", "wrong password").await.status(), 400, "a success starts the count again");
    }
    // Eight guesses at once: the sixth attempt is taken and reserves the next slot, the rest
    // find the account waiting.
    let guesses: Vec<_> = (0..8).map(|_| tokio::spawn(login("alice", "wrong password"))).collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap().status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7, "{statuses:?}");

    env.admin(&["user", "enable", "alice"], "");
    assert_eq!(login("alice", PASSWORD).await.status(), 200, "an administrator lets the owner in at once");
    let audit = env.admin(&["audit", "--json", "--limit", "1000"], "");
    assert!(audit.contains("throttled"), "throttled logins are audited");
}
