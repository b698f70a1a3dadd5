//! Sole control of software keys: a `--sole-control` credential signs only with the PIN (through
//! its SAD); an attacker holding the database and the key-encryption key gets a PKCS#8 for an
//! ordinary credential but only ciphertext for a sole-control one (checked by Python's
//! `cryptography`, not by our code); a PIN change re-wraps the key, and the old PIN stops working.
//!
//! Needs the pinned virtualenv of `scripts/test.sh` (`CLOUDSIGN_PYTHON`).

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

const SOLE_PIN: &str = "sole-pin-24680";
const NEW_PIN: &str = "new-sole-pin-13579";

/// What an attacker with the SQLite file and the KEK file recovers from a credential's stored
/// key: `PKCS8 <curve>` when the KEK alone opens it, `OPAQUE` otherwise.
fn attacker_view(env: &Env, credential: &str) -> String {
    let python = std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON must name the pinned virtualenv's python: run scripts/test.sh");
    let script = r#"
import base64, sqlite3, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization
db, kek_file, cid = sys.argv[1], sys.argv[2], sys.argv[3]
handle = sqlite3.connect(db).execute("SELECT key_handle FROM credentials WHERE id = ?", (cid,)).fetchone()[0]
sealed = base64.b64decode(handle)
kek = open(kek_file, "rb").read()
inner = AESGCM(kek).decrypt(sealed[:12], sealed[12:], ("credential:" + cid).encode())
try:
    key = serialization.load_der_private_key(inner, None)
    print("PKCS8", key.curve.name)
except Exception:
    print("OPAQUE", len(inner))
"#;
    let out = run(Command::new(python).arg("-c").arg(script).arg(env.file("cloudsign.db")).arg(env.file("kek")).arg(credential));
    out.trim().to_string()
}

#[tokio::test]
async fn sole_control_needs_the_pin() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    // Sole control wants a PIN that resists offline guessing: short ones are refused.
    let (ok, _, err) = env.admin_result(&["credential", "add", "--user", "alice", "--pin-stdin", "--sole-control"], &format!("{PIN}\n"));
    assert!(!ok && err.contains("at least 8 characters"), "{err}");
    let created = env.admin(
        &["credential", "add", "--user", "alice", "--pin-stdin", "--sole-control", "--scal", "1", "--json"],
        &format!("{SOLE_PIN}\n"),
    );
    let sole = serde_json::from_str::<serde_json::Value>(created.trim()).unwrap()["credentialID"].as_str().unwrap().to_string();
    let plain = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let (ok, _, err) = env.admin_result(
        &["credential", "add", "--user", "alice", "--pin-stdin", "--sole-control", "--backend", "pkcs11"],
        &format!("{PIN}\n"),
    );
    assert!(!ok && err.contains("sole control applies to software keys"), "{err}");

    // The database plus the KEK open the ordinary key, but not the sole-control one.
    assert_eq!(attacker_view(&env, &plain), "PKCS8 secp256r1");
    assert!(attacker_view(&env, &sole).starts_with("OPAQUE"), "{}", attacker_view(&env, &sole));

    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let info = api.ok("credentials/info", json!({"credentialID": sole})).await;
    let cert = info["cert"]["certificates"][0].as_str().unwrap().to_string();
    let data = b"only with the signer's PIN".to_vec();
    let (s, v) = api.authorize(&sole, 2, None, json!([{"id": "PIN", "value": SOLE_PIN}])).await;
    assert_eq!(s, 200, "{v}");
    let sad = v["SAD"].as_str().unwrap().to_string();
    let v = api.ok(
        "signatures/signHash",
        json!({"credentialID": sole, "SAD": sad, "hashes": [b64(&sha256(&data))], "hashAlgorithmOID": SHA256, "signAlgo": "1.2.840.10045.4.3.2"}),
    )
    .await;
    openssl_verify_signature(&env.dir, &cert, &data, &unb64(v["signatures"][0].as_str().unwrap()), "sha256", "ecdsa");
    // extendTransaction carries the PIN key to the new SAD.
    let extended = api.ok("credentials/extendTransaction", json!({"credentialID": sole, "SAD": sad})).await;
    let fresh = extended["SAD"].as_str().unwrap();
    let (s, v) = api.sign(&sole, fresh, &[sha256(&data)], "1.2.840.10045.4.3.2", Some(SHA256)).await;
    assert_eq!(s, 200, "{v}");
    // A SAD of another credential does not open this one.
    let other_sad = api.sad(&plain, 1, None).await;
    let (s, _) = api.sign(&sole, &other_sad, &[sha256(&data)], "1.2.840.10045.4.3.2", Some(SHA256)).await;
    assert_eq!(s, 400);

    // A PIN change needs the current PIN and re-wraps the key.
    let (ok, _, err) = env.admin_result(&["credential", "change-pin", &sole, "--pin-stdin"], "99999999\nanother-pin-97531\n");
    assert!(!ok && err.contains("wrong current PIN"), "{err}");
    let (ok, _, err) = env.admin_result(&["credential", "change-pin", &sole, "--pin-stdin"], &format!("{SOLE_PIN}\n1357\n"));
    assert!(!ok && err.contains("at least 8 characters"), "{err}");
    env.admin(&["credential", "change-pin", &sole, "--pin-stdin"], &format!("{SOLE_PIN}\n{NEW_PIN}\n"));
    assert!(attacker_view(&env, &sole).starts_with("OPAQUE"));
    let (s, v) = api.authorize(&sole, 1, None, json!([{"id": "PIN", "value": SOLE_PIN}])).await;
    assert_error("authorize", s, &v, 400, "invalid_authentication_data", "PIN");
    let (s, v) = api.authorize(&sole, 1, None, json!([{"id": "PIN", "value": NEW_PIN}])).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api.sign(&sole, v["SAD"].as_str().unwrap(), &[sha256(&data)], "1.2.840.10045.4.3.2", Some(SHA256)).await;
    assert_eq!(s, 200, "{v}");
    openssl_verify_signature(&env.dir, &cert, &data, &unb64(v["signatures"][0].as_str().unwrap()), "sha256", "ecdsa");

    // Through OAuth too: the consent page's PIN opens the key for the credential token.
    let (client, secret) = add_client(&env, "Sole app", &[]);
    let digest = sha256(&data);
    let hashes = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &digest);
    let q = [
        ("response_type", "code"),
        ("client_id", client.as_str()),
        ("scope", "credential"),
        ("credentialID", sole.as_str()),
        ("hashes", hashes.as_str()),
        ("hashAlgorithmOID", SHA256),
    ];
    let p = consent_code(&server, &q, "alice", &[("pin", NEW_PIN)]).await;
    let (s, token) = oauth_post(
        &server,
        "token",
        &[("grant_type", "authorization_code"), ("code", &p["code"])],
        Some((&client, secret.as_deref().unwrap())),
    )
    .await;
    assert_eq!(s, 200, "{token}");
    let signer = Api { http: reqwest::Client::new(), base: api.base.clone(), token: token["access_token"].as_str().map(String::from) };
    let v = signer
        .ok(
            "signatures/signHash",
            json!({"credentialID": sole, "hashes": [b64(&digest)], "hashAlgorithmOID": SHA256, "signAlgo": "1.2.840.10045.4.3.2"}),
        )
        .await;
    openssl_verify_signature(&env.dir, &cert, &data, &unb64(v["signatures"][0].as_str().unwrap()), "sha256", "ecdsa");
    assert!(!env.server_log().contains(NEW_PIN) && !env.server_log().contains(SOLE_PIN));
}
