//! On-demand credentials (CSC API 2.2.0.0 §11.4 `credentials/create`, §11.5
//! `credentials/delete`): the certificate's lifetime and subject are checked with
//! `openssl x509`, the signature with `openssl dgst -verify`, the revocation with
//! `openssl ocsp` against the service's responder and `openssl crl` on its CRL.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

fn config(env: &Env, name: &str, table: &str) -> String {
    let path = env.file(name);
    std::fs::write(&path, format!("[on_demand]\n{table}\n")).unwrap();
    path.display().to_string()
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The credential's certificate (from `credentials/info`) as a PEM file.
async fn cert_pem(api: &Api, env: &Env, id: &str) -> std::path::PathBuf {
    let info = api.ok("credentials/info", json!({"credentialID": id, "certificates": "single"})).await;
    let der = env.file(&format!("{id}.der"));
    std::fs::write(&der, unb64(info["cert"]["certificates"][0].as_str().unwrap())).unwrap();
    let pem = env.file(&format!("{id}.pem"));
    run(Command::new("openssl").args(["x509", "-inform", "DER", "-in"]).arg(&der).arg("-out").arg(&pem));
    pem
}

#[tokio::test]
async fn create_sign_delete_revokes_software() {
    let env = Env::new(BIN, "sqlite").with_public_url();
    env.add_user("alice");
    env.add_user("bob");
    let cfg = config(&env, "on.toml", "enabled = true\ncertificate_minutes = 30\nmax_per_user = 2");
    let server = env.start_env(&[("CLOUDSIGN_CONFIG", &cfg)]);
    let mut api = Api::new(&server);
    api.login("alice").await;

    let created = api.ok("credentials/create", json!({"credentialCreationRequest": {}})).await;
    let id = created["credentialID"].as_str().unwrap().to_string();
    // Answered like credentials/info (CSC 2.2 §11.4): the key, the chain, the cert and auth parts.
    assert_eq!(created["key"]["status"], "enabled", "{created}");
    assert_eq!(created["cert"]["status"], "valid", "{created}");
    assert_eq!(created["cert"]["certificates"].as_array().map(Vec::len), Some(3), "leaf, issuing CA, root: {created}");
    assert!(created["cert"]["validTo"].is_string() && created["auth"]["mode"] == "explicit", "{created}");
    let pem = cert_pem(&api, &env, &id).await;

    // Lifetime and subject as configured, read by openssl.
    let dates = run(Command::new("openssl").args(["x509", "-noout", "-dates", "-subject", "-in"]).arg(&pem));
    let date_of = |key: &str| {
        let line = dates.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{dates}"));
        let s = line.split_once('=').unwrap().1;
        let out = Command::new("date").args(["-u", "-d", s, "+%s"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().parse::<i64>().unwrap()
    };
    let lifetime = date_of("notAfter") - date_of("notBefore");
    assert!((30 * 60 - 5..=30 * 60 + 5).contains(&lifetime), "lifetime {lifetime}s: {dates}");
    assert!(dates.contains("CN = alice") || dates.contains("CN=alice"), "{dates}");

    // Authorize with the account password (the on-demand credential's PIN), sign, verify.
    let data = b"on-demand document";
    let digest = sha256(data);
    let (s, v) = api.authorize(&id, 1, None, json!([{"id": "PIN", "value": PASSWORD}])).await;
    assert_eq!(s, 200, "{v}");
    let sad = v["SAD"].as_str().unwrap().to_string();
    let (s, v) = api.sign(&id, &sad, &[digest.clone()], ECDSA_SHA256, None).await;
    assert_eq!(s, 200, "{v}");
    let sig = env.file("sig.der");
    std::fs::write(&sig, unb64(v["signatures"][0].as_str().unwrap())).unwrap();
    let pubkey = env.file("pub.pem");
    run(Command::new("openssl").args(["x509", "-noout", "-pubkey", "-in"]).arg(&pem).arg("-out").arg(&pubkey));
    let doc = env.file("doc.txt");
    std::fs::write(&doc, data).unwrap();
    let out =
        Command::new("openssl").args(["dgst", "-sha256", "-verify"]).arg(&pubkey).arg("-signature").arg(&sig).arg(&doc).output().unwrap();
    assert!(out.status.success() && text(&out).contains("Verified OK"), "{}", text(&out));

    // Bob may not delete Alice's credential.
    let mut bob = Api::new(&server);
    bob.login("bob").await;
    let (s, v) = bob.post("credentials/delete", json!({"credentialID": id})).await;
    assert_eq!(s, 400, "{v}");

    // Delete: 204, then signing is refused and OCSP and the CRL say revoked.
    let (s, v) = api.post("credentials/delete", json!({"credentialID": id})).await;
    assert_eq!(s, 204, "{v}");
    let sad2 = api.authorize(&id, 1, None, json!([{"id": "PIN", "value": PASSWORD}])).await;
    assert_ne!(sad2.0, 200, "authorize after delete: {}", sad2.1);
    let (s, _) = api.sign(&id, &sad, &[digest], ECDSA_SHA256, None).await;
    assert_ne!(s, 200);

    let (issuing, root) = write_ca(&env);
    let out = Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(&issuing)
        .arg("-cert")
        .arg(&pem)
        .args(["-url", &format!("{}/ocsp", server.url), "-CAfile"])
        .arg(&root)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success() && t.contains("Response verify OK") && t.contains(": revoked"), "{t}");

    let crl = reqwest::get(format!("{}/crl", server.url)).await.unwrap().bytes().await.unwrap();
    let crl_file = env.file("crl.der");
    std::fs::write(&crl_file, &crl).unwrap();
    let crl_text = run(Command::new("openssl").args(["crl", "-inform", "DER", "-noout", "-text", "-in"]).arg(&crl_file));
    let serial = run(Command::new("openssl").args(["x509", "-noout", "-serial", "-in"]).arg(&pem));
    let serial = serial.trim().trim_start_matches("serial=").to_uppercase();
    assert!(crl_text.to_uppercase().contains(&serial), "serial {serial} not on the CRL: {crl_text}");
}

#[tokio::test]
async fn refusals() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let bob_cred = {
        env.add_user("bob");
        env.add_credential("bob", &["--key", "ecdsa-p256", "--scal", "1"])
    };
    let bob_id = bob_cred["credentialID"].as_str().unwrap().to_string();

    // Disabled (the default): refused.
    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let (s, v) = api.post("credentials/create", json!({"credentialCreationRequest": {}})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("not enabled"), "{v}");
    drop(server);

    let cfg = config(&env, "on.toml", "enabled = true\nmax_per_user = 1");
    let server = env.start_env(&[("CLOUDSIGN_CONFIG", &cfg)]);
    let mut api = Api::new(&server);
    api.login("alice").await;
    // subjectData without the operator's leave: refused.
    let (s, v) = api
        .post("credentials/create", json!({"credentialCreationRequest": {"subjectData": {"given_name": "Eve", "family_name": "X"}}}))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("subjectData"), "{v}");
    // Another user's credential: refused, and it is left alone.
    let (s, v) = api.post("credentials/delete", json!({"credentialID": bob_id})).await;
    assert_eq!(s, 400, "{v}");
    // The per-user maximum.
    api.ok("credentials/create", json!({"credentialCreationRequest": {}})).await;
    let (s, v): (u16, Value) = api.post("credentials/create", json!({"credentialCreationRequest": {}})).await;
    assert_eq!(s, 400, "{v}");
    let mut bob = Api::new(&server);
    bob.login("bob").await;
    bob.ok("credentials/info", json!({"credentialID": bob_id})).await;
}

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "cloudsign-test";
const HSM_PIN: &str = "hsm-user-pin-1234";

/// `pkcs11-tool --list-objects` of the token's private keys: OpenSC reads the token, not us.
fn private_keys(conf: &std::path::Path) -> String {
    run(Command::new("pkcs11-tool").env("SOFTHSM2_CONF", conf).args([
        "--module",
        MODULE,
        "--token-label",
        TOKEN,
        "--login",
        "--pin",
        HSM_PIN,
        "--list-objects",
        "--type",
        "privkey",
    ]))
}

/// In SoftHSM2, with the subject from `subjectData` (allowed here): the key is made in the
/// token and destroyed by delete (C_DestroyObject), as `pkcs11-tool` sees.
#[tokio::test]
async fn pkcs11_key_destroyed_and_subject_from_request() {
    let env = Env::new(BIN, "sqlite");
    let tokens = env.dir.join("softhsm-tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = env.dir.join("softhsm2.conf");
    std::fs::write(&conf, format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display())).unwrap();
    run(Command::new("softhsm2-util").env("SOFTHSM2_CONF", &conf).args([
        "--init-token",
        "--free",
        "--label",
        TOKEN,
        "--so-pin",
        "so-pin-87654321",
        "--pin",
        HSM_PIN,
    ]));
    let env = env
        .with_env("SOFTHSM2_CONF", conf.to_str().unwrap())
        .with_env("CLOUDSIGN_PKCS11_MODULE", MODULE)
        .with_env("CLOUDSIGN_PKCS11_TOKEN", TOKEN)
        .with_env("CLOUDSIGN_PKCS11_PIN", HSM_PIN);
    env.add_user("alice");
    let cfg = config(&env, "on.toml", "enabled = true\nbackend = \"pkcs11\"\nsubject_from_request = true\ncertificate_minutes = 10");
    let server = env.start_env(&[("CLOUDSIGN_CONFIG", &cfg)]);
    let mut api = Api::new(&server);
    api.login("alice").await;
    assert_eq!(private_keys(&conf).matches("Private Key Object").count(), 0);

    let created = api
        .ok("credentials/create", json!({"credentialCreationRequest": {"subjectData": {"given_name": "Alice", "family_name": "Example"}}}))
        .await;
    let id = created["credentialID"].as_str().unwrap().to_string();
    assert_eq!(private_keys(&conf).matches("Private Key Object").count(), 1, "{}", private_keys(&conf));
    let pem = cert_pem(&api, &env, &id).await;
    let subject = run(Command::new("openssl").args(["x509", "-noout", "-subject", "-in"]).arg(&pem));
    assert!(subject.contains("CN = Alice Example"), "{subject}");

    let digest = sha256(b"hsm on-demand");
    let (s, v) = api.authorize(&id, 1, None, json!([{"id": "PIN", "value": PASSWORD}])).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.sign(&id, v["SAD"].as_str().unwrap(), &[digest], ECDSA_SHA256, None).await;
    assert_eq!(s, 200, "{v}");

    let (s, v) = api.post("credentials/delete", json!({"credentialID": id, "revocationReason": 4})).await;
    assert_eq!(s, 204, "{v}");
    let keys = private_keys(&conf);
    assert_eq!(keys.matches("Private Key Object").count(), 0, "{keys}");
}
