//! Credentials whose keys live in a PKCS#11 token (SoftHSM2, a throw-away token under its own
//! SOFTHSM2_CONF): generated inside as sensitive and never extractable (as `pkcs11-tool` reports),
//! used by signHash for ECDSA and RSA (PKCS#1 v1.5 and PSS) with every signature verified by
//! openssl; and a token that is misconfigured or gone makes those credentials answer
//! `temporarily_unavailable` while software credentials keep signing.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::hsm::{PIN as HSM_PIN, private_keys};
use common::*;
use serde_json::json;

fn hsm_env(db: &str) -> (Env, PathBuf) {
    let (env, conf) = Env::new(BIN, db).with_softhsm();
    // The PIN comes from a file here (the variable CLOUDSIGN_PKCS11_PIN works too).
    let pin_file = env.file("hsm-pin");
    std::fs::write(&pin_file, format!("{HSM_PIN}\n")).unwrap();
    let env = env.with_env("CLOUDSIGN_PKCS11_PIN_FILE", pin_file.to_str().unwrap());
    (env, conf)
}

async fn hsm_signing(db: &str) {
    let (env, conf) = hsm_env(db);
    env.add_user("alice");
    let ec = env.add_credential("alice", &["--backend", "pkcs11", "--key", "ecdsa-p256", "--scal", "1"])["credentialID"]
        .as_str()
        .unwrap()
        .to_string();
    let p384 = env.add_credential("alice", &["--backend", "pkcs11", "--key", "ecdsa-p384", "--scal", "1"])["credentialID"]
        .as_str()
        .unwrap()
        .to_string();
    let rsa = env.add_credential("alice", &["--backend", "pkcs11", "--key", "rsa-2048", "--scal", "1"])["credentialID"]
        .as_str()
        .unwrap()
        .to_string();
    let soft = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let listed = env.admin(&["credential", "list", "--json"], "");
    assert_eq!(listed.matches("\"backend\":\"pkcs11\"").count(), 3, "{listed}");

    // The token holds three private keys, never extractable, labelled with their credential.
    let objects = private_keys(&conf);
    assert_eq!(objects.matches("Private Key Object").count(), 3, "{objects}");
    assert_eq!(objects.matches("never extractable").count(), 3, "{objects}");
    assert_eq!(objects.matches("sensitive, always sensitive").count(), 3, "{objects}");
    for id in [&ec, &p384, &rsa] {
        assert!(objects.contains(&format!("credential:{id}")), "{objects}");
    }
    assert!(!objects.contains("decrypt") && !objects.contains("unwrap"), "sign-only keys: {objects}");

    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let data = b"signed inside the HSM".to_vec();
    let cases = [
        (&ec, "1.2.840.10045.4.3.2", sha256(&data), SHA256, "sha256", "ecdsa"),
        (&p384, "1.2.840.10045.4.3.3", sha384(&data), SHA384, "sha384", "ecdsa"),
        (&rsa, "1.2.840.113549.1.1.11", sha256(&data), SHA256, "sha256", "pkcs1"),
        (&rsa, "1.2.840.113549.1.1.13", sha512(&data), SHA512, "sha512", "pkcs1"),
        (&rsa, "1.2.840.113549.1.1.10", sha384(&data), SHA384, "sha384", "pss"),
    ];
    for (id, sign_algo, digest, oid, dgst, mode) in cases {
        let info = api.ok("credentials/info", json!({"credentialID": id, "certificates": "chain"})).await;
        openssl_verify_chain(&env, info["cert"]["certificates"].as_array().unwrap());
        let sad = api.sad(id, 1, None).await;
        let mut body = json!({"credentialID": id, "SAD": sad, "hashes": [b64(&digest)], "hashAlgorithmOID": oid, "signAlgo": sign_algo});
        if mode == "pss" {
            // RSASSA-PSS-params for SHA-384, MGF1-SHA-384, salt 48 (DER, base64).
            body["signAlgoParams"] = json!("MDSgDzANBglghkgBZQMEAgIFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgIFAKIDAgEw");
        }
        let v = api.ok("signatures/signHash", body).await;
        let signature = unb64(v["signatures"][0].as_str().unwrap());
        openssl_verify_signature(&env.dir, info["cert"]["certificates"][0].as_str().unwrap(), &data, &signature, dgst, mode);
    }
    drop(server);

    // The same store, started with a wrong HSM PIN: HSM credentials get 503
    // temporarily_unavailable (promptly, no hang), software credentials keep signing.
    let server = env.start_env(&[("CLOUDSIGN_PKCS11_PIN", "wrong-pin-0000"), ("CLOUDSIGN_KEY_CACHE_SECONDS", "0")]);
    let mut api = Api::new(&server);
    api.login("alice").await;
    let sad = api.sad(&ec, 1, None).await;
    let started = std::time::Instant::now();
    let (s, v) = api.sign(&ec, &sad, &[sha256(&data)], "1.2.840.10045.4.3.2", Some(SHA256)).await;
    assert_error("signHash", s, &v, 503, "temporarily_unavailable", "temporarily unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let sad = api.sad(&soft, 1, None).await;
    let (s, v) = api.sign(&soft, &sad, &[sha256(&data)], "1.2.840.10045.4.3.2", Some(SHA256)).await;
    assert_eq!(s, 200, "{v}");
    drop(server);
    // The log of both servers of this environment.
    let log = env.server_log();
    assert!(log.contains("refused the configured PIN"), "the operator learns why: {log}");
    assert!(!log.contains(HSM_PIN) && !log.contains("wrong-pin-0000"), "the HSM PIN never reaches the log");

    // Deleting a credential destroys its key in the token.
    env.admin(&["credential", "delete", &p384], "");
    let objects = private_keys(&conf);
    assert_eq!(objects.matches("Private Key Object").count(), 2, "{objects}");
    assert!(!objects.contains(&format!("credential:{p384}")));
}

#[tokio::test]
async fn hsm_signing_sqlite() {
    hsm_signing("sqlite").await;
}

#[tokio::test]
async fn hsm_signing_postgres() {
    hsm_signing("postgres").await;
}

#[tokio::test]
async fn missing_or_unconfigured_hsm() {
    let (env, _) = hsm_env("sqlite");
    env.add_user("alice");
    let id = env.add_credential("alice", &["--backend", "pkcs11", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();

    // A module that is not there: the service starts, the HSM credential answers 503.
    let server = env.start_env(&[("CLOUDSIGN_PKCS11_MODULE", "/nonexistent/libpkcs11.so")]);
    let mut api = Api::new(&server);
    api.login("alice").await;
    let sad = api.sad(&id, 1, None).await;
    let (s, v) = api.sign(&id, &sad, &[sha256(b"x")], "1.2.840.10045.4.3.2", Some(SHA256)).await;
    assert_error("signHash", s, &v, 503, "temporarily_unavailable", "");
    drop(server);
    assert!(env.server_log().contains("cannot load the PKCS#11 module /nonexistent/libpkcs11.so"), "{}", env.server_log());

    // No HSM configured at all: creating an HSM credential fails with a clear message.
    let plain = Env::new(BIN, "sqlite");
    plain.add_user("bob");
    let (ok, _, err) =
        plain.admin_result(&["credential", "add", "--user", "bob", "--pin-stdin", "--backend", "pkcs11"], &format!("{PIN}\n"));
    assert!(!ok);
    assert!(err.contains("PKCS#11") && err.contains("none is configured"), "{err}");
    // A token label that does not exist.
    let (ok, _, err) = env.admin_result_env(
        &[("CLOUDSIGN_PKCS11_TOKEN", "no-such-token")],
        &["credential", "add", "--user", "alice", "--pin-stdin", "--backend", "pkcs11"],
        &format!("{PIN}\n"),
    );
    assert!(!ok);
    assert!(err.contains("no PKCS#11 token labelled \"no-such-token\""), "{err}");
}

#[tokio::test]
async fn ca_and_tsa_keys_in_the_hsm() {
    let (env, conf) = hsm_env("sqlite");
    let env = env.with_env("CLOUDSIGN_CA_BACKEND", "pkcs11");
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--scal", "1"]);
    let id = cred["credentialID"].as_str().unwrap().to_string();
    // Root, issuing CA and TSA keys were generated in the token, never extractable.
    let objects = private_keys(&conf);
    for label in ["ca:root", "ca:issuing", "ca:tsa"] {
        assert!(objects.contains(label), "{label} in {objects}");
    }
    assert_eq!(objects.matches("never extractable").count(), 3, "{objects}");

    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    // Certificates issued by the HSM-held CA verify (openssl), and so do signatures.
    let info = api.ok("credentials/info", json!({"credentialID": id, "certificates": "chain"})).await;
    openssl_verify_chain(&env, info["cert"]["certificates"].as_array().unwrap());
    let data = b"issued by an HSM-held CA".to_vec();
    sign_p256_and_verify(&env, &api, &id, info["cert"]["certificates"][0].as_str().unwrap(), &data).await;
    // The CRL, signed in the HSM, verifies against the issuing CA.
    let (issuing, _) = write_ca(&env);
    let crl = env.file("hsm.crl");
    std::fs::write(&crl, reqwest::get(format!("{}/crl", server.url)).await.unwrap().bytes().await.unwrap()).unwrap();
    let out =
        Command::new("openssl").args(["crl", "-inform", "DER", "-noout", "-in"]).arg(&crl).arg("-CAfile").arg(&issuing).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("verify OK"), "{text}");
    // A time-stamp token, signed in the HSM, verifies with openssl ts.
    let doc = env.file("doc.txt");
    std::fs::write(&doc, b"time-stamped by an HSM key").unwrap();
    let query = env.file("q.tsq");
    run(Command::new("openssl").args(["ts", "-query", "-sha256", "-cert", "-data"]).arg(&doc).arg("-out").arg(&query));
    let reply = reqwest::Client::new()
        .post(format!("{}/tsa", server.url))
        .header("content-type", "application/timestamp-query")
        .body(std::fs::read(&query).unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let reply_file = env.file("r.tsr");
    std::fs::write(&reply_file, reply).unwrap();
    openssl_ts_verify(&env, &reply_file, &query);
}
