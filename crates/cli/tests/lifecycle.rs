//! Certificate life cycle: revocation and suspension change `cert.status`, stop authorization
//! and signing, and appear on the CRL, which `openssl crl` parses and `openssl verify
//! -crl_check` applies, and in OCSP answers, which `openssl ocsp` queries and verifies.

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

async fn fetch_crl(server: &Server, env: &Env, name: &str) -> (std::path::PathBuf, String) {
    let resp = reqwest::get(format!("{}/crl", server.url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pkix-crl");
    let der = env.file(&format!("{name}.der"));
    std::fs::write(&der, resp.bytes().await.unwrap()).unwrap();
    let pem = env.file(&format!("{name}.pem"));
    run(Command::new("openssl").args(["crl", "-inform", "DER", "-in"]).arg(&der).arg("-out").arg(&pem));
    let text = run(Command::new("openssl").args(["crl", "-noout", "-text", "-in"]).arg(&pem));
    (pem, text)
}

fn verify_with_crl(env: &Env, cert_pem: &str, crl: &std::path::Path) -> (bool, String) {
    let (issuing, root) = write_ca(env);
    let cert = env.file("subject.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-crl_check")
        .arg("-CAfile")
        .arg(&root)
        .arg("-untrusted")
        .arg(&issuing)
        .arg("-CRLfile")
        .arg(crl)
        .arg(&cert)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `openssl ocsp` against the responder (POST, with a nonce); returns stdout + stderr.
fn ocsp(env: &Env, server: &Server, cert_pem: &str) -> String {
    let (issuing, root) = write_ca(env);
    let cert = env.file("ocsp-subject.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    let out = Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(&issuing)
        .arg("-cert")
        .arg(&cert)
        .args(["-url", &format!("{}/ocsp", server.url), "-CAfile"])
        .arg(&root)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "openssl ocsp: {text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(!text.contains("nonce"), "the nonce is echoed: {text}");
    text
}

#[tokio::test]
async fn revocation_suspension_and_crl() {
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_PUBLIC_URL", "https://sign.example.test/");
    env.add_user("alice");
    let a = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1"]);
    let b = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1"]);
    let (a_id, b_id) = (a["credentialID"].as_str().unwrap().to_string(), b["credentialID"].as_str().unwrap().to_string());
    let a_pem = a["certificate"].as_str().unwrap();
    let b_pem = b["certificate"].as_str().unwrap();
    let text = {
        let f = env.file("a.pem");
        std::fs::write(&f, a_pem).unwrap();
        run(Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(&f))
    };
    assert!(text.contains("X509v3 CRL Distribution Points") && text.contains("URI:https://sign.example.test/crl"), "{text}");
    assert!(text.contains("OCSP - URI:https://sign.example.test/ocsp"), "{text}");

    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let serial = |id: &str| {
        let id = id.to_string();
        let api = &api;
        async move {
            api.ok("credentials/info", json!({"credentialID": id, "certInfo": true})).await["cert"]["serialNumber"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (a_serial, b_serial) = (serial(&a_id).await, serial(&b_id).await);

    let (crl, text) = fetch_crl(&server, &env, "crl0").await;
    assert!(text.contains("No Revoked Certificates"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    let (ok, out) = verify_with_crl(&env, a_pem, &crl);
    assert!(ok, "{out}");
    let sad_before = api.sad(&a_id, 1, None).await;
    assert!(ocsp(&env, &server, a_pem).contains("subject.pem: good"));

    // GET form (RFC 6960 A.1): the DER request base64 in the path.
    let (issuing, root) = write_ca(&env);
    let req = env.file("ocsp-req.der");
    std::fs::write(env.file("a-cert.pem"), a_pem).unwrap();
    run(Command::new("openssl")
        .args(["ocsp", "-no_nonce", "-issuer"])
        .arg(&issuing)
        .arg("-cert")
        .arg(env.file("a-cert.pem"))
        .arg("-reqout")
        .arg(&req));
    let encoded = b64(&std::fs::read(&req).unwrap()).replace('/', "%2F").replace('+', "%2B").replace('=', "%3D");
    let resp = reqwest::get(format!("{}/ocsp/{encoded}", server.url)).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/ocsp-response");
    let respin = env.file("ocsp-resp.der");
    std::fs::write(&respin, resp.bytes().await.unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["ocsp", "-respin"])
        .arg(&respin)
        .arg("-issuer")
        .arg(&issuing)
        .arg("-cert")
        .arg(env.file("a-cert.pem"))
        .arg("-CAfile")
        .arg(&root)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Response verify OK") && text.contains(": good"), "{text}");
    // Garbage is a malformedRequest, not an HTTP error.
    let resp = reqwest::Client::new().post(format!("{}/ocsp", server.url)).body("garbage").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &[0x30, 0x03, 0x0a, 0x01, 0x01]);

    // Revocation: final, on the CRL with its reason, and the credential stops working.
    env.admin(&["credential", "revoke", &a_id, "--reason", "keyCompromise"], "");
    let info = api.ok("credentials/info", json!({"credentialID": a_id})).await;
    assert_eq!(info["cert"]["status"], "revoked");
    assert_eq!(info["key"]["status"], "disabled");
    api.err(
        "credentials/authorize",
        json!({"credentialID": a_id, "numSignatures": 1, "authData": [{"id": "PIN", "value": PIN}]}),
        400,
        "invalid_request",
        "revoked",
    )
    .await;
    let (s, v) = api.sign(&a_id, &sad_before, &[sha256(b"x")], ECDSA_SHA256, None).await;
    assert_error("signHash (revoked)", s, &v, 400, "invalid_request", "revoked");
    let (crl, text) = fetch_crl(&server, &env, "crl1").await;
    assert!(text.contains(&format!("Serial Number: {a_serial}")), "{a_serial} in {text}");
    assert!(text.contains("Key Compromise"), "{text}");
    let (ok, out) = verify_with_crl(&env, a_pem, &crl);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let text = ocsp(&env, &server, a_pem);
    assert!(text.contains("subject.pem: revoked") && text.contains("Reason: keyCompromise"), "{text}");
    let (ok, out) = verify_with_crl(&env, b_pem, &crl);
    assert!(ok, "other certificates stay valid: {out}");
    let (ok, _, err) = env.admin_result(&["credential", "resume", &a_id], "");
    assert!(!ok && err.contains("no suspended credential"), "{err}");
    let (ok, _, err) = env.admin_result(&["credential", "revoke", &a_id, "--reason", "nonsense"], "");
    assert!(!ok && err.contains("unknown revocation reason"), "{err}");

    // Suspension: certificateHold on the CRL until resumed.
    env.admin(&["credential", "suspend", &b_id], "");
    let info = api.ok("credentials/info", json!({"credentialID": b_id})).await;
    assert_eq!(info["cert"]["status"], "suspended");
    api.err(
        "credentials/authorize",
        json!({"credentialID": b_id, "numSignatures": 1, "authData": [{"id": "PIN", "value": PIN}]}),
        400,
        "invalid_request",
        "suspended",
    )
    .await;
    let (crl, text) = fetch_crl(&server, &env, "crl2").await;
    assert!(text.contains(&format!("Serial Number: {b_serial}")) && text.contains("Certificate Hold"), "{text}");
    let (ok, out) = verify_with_crl(&env, b_pem, &crl);
    assert!(!ok, "{out}");
    let text = ocsp(&env, &server, b_pem);
    assert!(text.contains("subject.pem: revoked") && text.contains("Reason: certificateHold"), "{text}");
    env.admin(&["credential", "resume", &b_id], "");
    let _ = api.sad(&b_id, 1, None).await;
    let (crl, text) = fetch_crl(&server, &env, "crl3").await;
    assert!(!text.contains(&format!("Serial Number: {b_serial}")), "{text}");
    assert!(text.contains(&format!("Serial Number: {a_serial}")), "{text}");
    let (ok, out) = verify_with_crl(&env, b_pem, &crl);
    assert!(ok, "{out}");
    assert!(ocsp(&env, &server, b_pem).contains("subject.pem: good"));

    let audit = env.admin(&["audit", "--json"], "");
    for event in ["admin.credential.revoke", "admin.credential.suspend", "admin.credential.resume"] {
        assert!(audit.contains(event), "{event} audited");
    }
    drop(server);
}

async fn current(api: &Api, id: &str) -> serde_json::Value {
    api.ok("credentials/info", json!({"credentialID": id, "certificates": "chain", "certInfo": true})).await
}

fn pem(der_b64: &str) -> String {
    let body = der_b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\n");
    format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
}

/// The certificate's public key as openssl prints it, and its notAfter.
fn public_key_and_end(env: &Env, cert_pem: &str) -> (String, String) {
    let f = env.file("renewal-subject.pem");
    std::fs::write(&f, cert_pem).unwrap();
    let key = run(Command::new("openssl").args(["x509", "-noout", "-pubkey", "-in"]).arg(&f));
    let end = run(Command::new("openssl").args(["x509", "-noout", "-enddate", "-in"]).arg(&f));
    (key, end)
}

#[tokio::test]
async fn renewal_before_expiry_same_key_then_new_key() {
    // Certificates issued for one day; the server renews 30 days before the end, for 730 days.
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_CERT_VALIDITY_DAYS", "1");
    env.add_user("alice");
    let created = env.add_credential("alice", &["--scal", "1"]);
    let id = created["credentialID"].as_str().unwrap().to_string();
    let first_pem = created["certificate"].as_str().unwrap().to_string();
    let (first_key, first_end) = public_key_and_end(&env, &first_pem);

    let server = env.start_env(&[("CLOUDSIGN_CERT_VALIDITY_DAYS", "730"), ("CLOUDSIGN_RENEW_BEFORE_DAYS", "30")]);
    let mut api = Api::new(&server);
    api.login("alice").await;
    // The server renews at start, then every 10 minutes.
    let mut info = current(&api, &id).await;
    for _ in 0..50 {
        if pem(info["cert"]["certificates"][0].as_str().unwrap()) != first_pem {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        info = current(&api, &id).await;
    }
    let second_pem = pem(info["cert"]["certificates"][0].as_str().unwrap());
    assert_ne!(second_pem, first_pem, "the certificate was renewed before its end");
    let (second_key, second_end) = public_key_and_end(&env, &second_pem);
    assert_eq!(second_key, first_key, "renewal keeps the key by default");
    assert_ne!(second_end, first_end);
    let not_after: i64 = info["cert"]["validTo"].as_str().unwrap()[..4].parse().unwrap();
    assert!(not_after >= 2028, "a fresh validity period: {}", info["cert"]["validTo"]);
    openssl_verify_chain(&env, info["cert"]["certificates"].as_array().unwrap());
    assert_eq!(info["cert"]["status"], "valid");
    // The user signs on without noticing; openssl checks the signature with the new certificate.
    let data = b"after the renewal".to_vec();
    sign_p256_and_verify(&env, &api, &id, info["cert"]["certificates"][0].as_str().unwrap(), &data).await;
    // The replaced certificate is still known to the OCSP responder.
    assert!(ocsp(&env, &server, &first_pem).contains("subject.pem: good"));
    assert!(ocsp(&env, &server, &second_pem).contains("subject.pem: good"));

    // Renewal with a new key, by the administrator.
    let serial = env.admin(&["credential", "renew", &id, "--new-key"], "").trim().to_string();
    let info = current(&api, &id).await;
    assert_eq!(
        info["cert"]["serialNumber"].as_str().unwrap().to_ascii_lowercase().trim_start_matches('0'),
        serial.to_ascii_lowercase().trim_start_matches('0')
    );
    let third_pem = pem(info["cert"]["certificates"][0].as_str().unwrap());
    let (third_key, _) = public_key_and_end(&env, &third_pem);
    assert_ne!(third_key, first_key, "--new-key changes the key");
    sign_p256_and_verify(&env, &api, &id, info["cert"]["certificates"][0].as_str().unwrap(), &data).await;

    // Revoking the credential revokes every certificate it had.
    env.admin(&["credential", "revoke", &id, "--reason", "keyCompromise"], "");
    let (crl, text) = fetch_crl(&server, &env, "crl-renewed").await;
    assert_eq!(text.matches("Serial Number:").count(), 3, "{text}");
    for p in [&first_pem, &second_pem, &third_pem] {
        let (ok, out) = verify_with_crl(&env, p, &crl);
        assert!(!ok && out.contains("certificate revoked"), "{out}");
        assert!(ocsp(&env, &server, p).contains("subject.pem: revoked"));
    }
    let (ok, _, err) = env.admin_result(&["credential", "renew", &id], "");
    assert!(!ok && err.contains("only valid certificates are renewed"), "{err}");

    let audit = env.admin(&["audit", "--json"], "");
    let renewals: Vec<&str> = audit.lines().filter(|l| l.contains("\"credential.renew\"")).collect();
    assert_eq!(renewals.len(), 2, "{audit}");
    assert!(renewals[0].contains("\"actor\":\"system\"") && renewals[1].contains("\"actor\":\"admin\""), "{renewals:?}");
    assert!(renewals[1].contains("\"newKey\":true"));
}
