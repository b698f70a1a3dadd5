//! CSC API v1.0.4.0 beside v2 on the same service: v1 spellings, paging, sendOTP, v1 error codes.
//! Signatures are verified by openssl, chains by openssl verify.

mod common;

use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const RSA: &str = "1.2.840.113549.1.1.1";
const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
const PSS: &str = "1.2.840.113549.1.1.10";
const PSS_SHA256_PARAMS: &str = "MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEg";

fn der(cred: &Value) -> String {
    cred["certificate"].as_str().unwrap().lines().filter(|l| !l.starts_with("-----")).collect()
}

#[tokio::test]
async fn v1_adapter() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let rsa = env.add_credential("alice", &["--key", "rsa-2048"]);
    let p256 = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1"]);
    let online = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1", "--otp", "online"]);
    let totp_cred = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1", "--otp", "totp"]);
    let id = |c: &Value| c["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let mut api = Api::v1(&server);

    let (s, info) = api.post("info", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(info["specs"], "1.0.4.0");
    assert!(info["methods"].as_array().unwrap().contains(&json!("credentials/sendOTP")));
    assert!(info.get("signAlgorithms").is_none(), "v2-only member");

    api.login("alice").await;
    // A v1 token works on v2 and vice versa: one service, two wire formats.
    let mut v2 = Api::new(&server);
    v2.token = api.token.clone();
    let _ = v2.ok("credentials/list", json!({})).await;

    // Paging.
    let page1 = api.ok("credentials/list", json!({"maxResults": 3})).await;
    assert_eq!(page1["credentialIDs"].as_array().unwrap().len(), 3);
    let token = page1["nextPageToken"].as_str().expect("a next page").to_string();
    let page2 = api.ok("credentials/list", json!({"maxResults": 3, "pageToken": token})).await;
    assert_eq!(page2["credentialIDs"].as_array().unwrap().len(), 1);
    assert!(page2.get("nextPageToken").is_none(), "last page");
    let mut all: Vec<Value> = page1["credentialIDs"].as_array().unwrap().clone();
    all.extend(page2["credentialIDs"].as_array().unwrap().iter().cloned());
    for c in [&rsa, &p256, &online, &totp_cred] {
        assert!(all.contains(&json!(id(c))));
    }
    let everything = api.ok("credentials/list", json!({})).await;
    assert_eq!(everything["credentialIDs"].as_array().unwrap().len(), 4);
    api.err("credentials/list", json!({"pageToken": "bogus"}), 400, "invalid_request", "pageToken").await;
    api.err("credentials/list", json!({"userID": "alice"}), 400, "invalid_request", "userID parameter MUST be null").await;

    // Flat authorization members with string-valued presence.
    let info =
        api.ok("credentials/info", json!({"credentialID": id(&online), "certificates": "chain", "certInfo": true, "authInfo": true})).await;
    assert_eq!(info["authMode"], "explicit");
    assert_eq!(info["PIN"]["presence"], "true");
    assert_eq!(info["PIN"]["format"], "N");
    assert_eq!(info["OTP"]["presence"], "true");
    assert_eq!(info["OTP"]["type"], "online");
    assert!(info["OTP"]["ID"].is_string());
    assert_eq!(info["SCAL"], "1");
    assert!(info.get("auth").is_none(), "v2-only member");
    openssl_verify_chain(&env, info["cert"]["certificates"].as_array().unwrap());
    let info = api.ok("credentials/info", json!({"credentialID": id(&totp_cred), "authInfo": true})).await;
    assert_eq!(info["OTP"]["type"], "offline");
    assert_eq!(info["OTP"]["provider"], "totp");
    let info = api.ok("credentials/info", json!({"credentialID": id(&rsa)})).await;
    assert!(info.get("PIN").is_none(), "PIN/OTP groups only with authInfo");
    assert_eq!(info["SCAL"], "2");

    // SCAL 2 with v1's `hash` (no algorithm member) and every RSA spelling of signHash.
    let docs = [b"v1 one".to_vec(), b"v1 two".to_vec()];
    let digests: Vec<Vec<u8>> = docs.iter().map(|d| sha256(d)).collect();
    for (sign_algo, hash_algo, params, mode) in
        [(RSA, Some(SHA256), None, "pkcs1"), (SHA256_RSA, None, None, "pkcs1"), (PSS, None, Some(PSS_SHA256_PARAMS), "pss")]
    {
        let sad = api
            .ok("credentials/authorize", json!({"credentialID": id(&rsa), "numSignatures": 2, "hash": digests.iter().map(|d| b64(d)).collect::<Vec<_>>(), "PIN": PIN}))
            .await["SAD"]
            .as_str()
            .unwrap()
            .to_string();
        let mut body = json!({"credentialID": id(&rsa), "SAD": sad, "hash": digests.iter().map(|d| b64(d)).collect::<Vec<_>>(), "signAlgo": sign_algo});
        if let Some(h) = hash_algo {
            body["hashAlgo"] = json!(h);
        }
        if let Some(p) = params {
            body["signAlgoParams"] = json!(p);
        }
        let signed = api.ok("signatures/signHash", body).await;
        for (doc, sig) in docs.iter().zip(signed["signatures"].as_array().unwrap()) {
            openssl_verify_signature(&env.dir, &der(&rsa), doc, &unb64(sig.as_str().unwrap()), "sha256", mode);
        }
    }
    let sad = api
        .ok("credentials/authorize", json!({"credentialID": id(&rsa), "numSignatures": 1, "hash": [b64(&digests[0])], "PIN": PIN}))
        .await;
    api.err(
        "signatures/signHash",
        json!({"credentialID": id(&rsa), "SAD": sad["SAD"], "hash": [b64(&digests[0])], "signAlgo": RSA, "hashAlgo": "1.3.14.3.2.26"}),
        400,
        "invalid_request",
        "hashAlgo",
    )
    .await;
    api.err(
        "signatures/signHash",
        json!({"credentialID": id(&rsa), "SAD": sad["SAD"], "hash": [b64(&digests[0])], "signAlgo": RSA}),
        400,
        "invalid_request",
        "hashAlgo",
    )
    .await;

    // extendTransaction: the new SAD carries the remaining count; the old one is dead. `hash` may
    // be one string (Laverca's client sends it so).
    let sad1 = api
        .ok("credentials/authorize", json!({"credentialID": id(&rsa), "numSignatures": 2, "hash": [b64(&digests[0])], "PIN": PIN}))
        .await["SAD"]
        .as_str()
        .unwrap()
        .to_string();
    let one = json!({"credentialID": id(&rsa), "SAD": sad1, "hash": [b64(&digests[0])], "signAlgo": SHA256_RSA});
    let _ = api.ok("signatures/signHash", one).await;
    let sad2 =
        api.ok("credentials/extendTransaction", json!({"credentialID": id(&rsa), "SAD": sad1, "hash": b64(&digests[1])})).await["SAD"]
            .as_str()
            .unwrap()
            .to_string();
    api.err(
        "signatures/signHash",
        json!({"credentialID": id(&rsa), "SAD": sad1, "hash": [b64(&digests[1])], "signAlgo": SHA256_RSA}),
        400,
        "invalid_request",
        "SAD",
    )
    .await;
    let signed = api
        .ok("signatures/signHash", json!({"credentialID": id(&rsa), "SAD": sad2, "hash": [b64(&digests[1])], "signAlgo": SHA256_RSA}))
        .await;
    openssl_verify_signature(&env.dir, &der(&rsa), &docs[1], &unb64(signed["signatures"][0].as_str().unwrap()), "sha256", "pkcs1");
    api.err(
        "signatures/signHash",
        json!({"credentialID": id(&rsa), "SAD": sad2, "hash": [b64(&digests[1])], "signAlgo": SHA256_RSA}),
        400,
        "invalid_request",
        "",
    )
    .await;
    api.err("credentials/extendTransaction", json!({"credentialID": id(&rsa), "SAD": sad2}), 400, "invalid_request", "SAD").await;

    // SCAL 1, ECDSA.
    let sad = api.ok("credentials/authorize", json!({"credentialID": id(&p256), "numSignatures": 1, "PIN": PIN})).await;
    let signed = api
        .ok(
            "signatures/signHash",
            json!({"credentialID": id(&p256), "SAD": sad["SAD"], "hash": [b64(&digests[0])], "signAlgo": ECDSA_SHA256}),
        )
        .await;
    openssl_verify_signature(&env.dir, &der(&p256), &docs[0], &unb64(signed["signatures"][0].as_str().unwrap()), "sha256", "ecdsa");

    // sendOTP only for online OTP.
    let (s, _) = api.post("credentials/sendOTP", json!({"credentialID": id(&online)})).await;
    assert_eq!(s, 204);
    let outbox = std::fs::read_to_string(env.file("otp-outbox.txt")).unwrap();
    let code = outbox.lines().last().unwrap().rsplit(' ').next().unwrap().to_string();
    let _ = api.ok("credentials/authorize", json!({"credentialID": id(&online), "numSignatures": 1, "PIN": PIN, "OTP": code})).await;
    api.err("credentials/sendOTP", json!({"credentialID": id(&p256)}), 400, "invalid_request", "").await;
    api.err("credentials/sendOTP", json!({"credentialID": id(&totp_cred)}), 400, "invalid_request", "").await;

    // v1 error codes.
    api.err("credentials/authorize", json!({"credentialID": id(&p256), "numSignatures": 1, "PIN": "999999"}), 400, "invalid_pin", "PIN")
        .await;
    api.err(
        "credentials/authorize",
        json!({"credentialID": id(&totp_cred), "numSignatures": 1, "PIN": PIN, "OTP": "000000"}),
        400,
        "invalid_otp",
        "OTP",
    )
    .await;
    let otpauth = totp_cred["otpauth"].as_str().unwrap();
    let _ = api
        .ok("credentials/authorize", json!({"credentialID": id(&totp_cred), "numSignatures": 1, "PIN": PIN, "OTP": totp(otpauth, 0)}))
        .await;
    api.err("credentials/authorize", json!({"credentialID": id(&rsa), "numSignatures": 1, "PIN": PIN}), 400, "invalid_request", "hash")
        .await;
    api.err(
        "credentials/authorize",
        json!({"credentialID": id(&p256), "numSignatures": 1, "hash": [b64(&[1; 20])], "PIN": PIN}),
        400,
        "invalid_request",
        "length",
    )
    .await;
    drop(server);
}

/// v1 clients are told about v1's parameters by v1's names (v1 §11.6 `hash`, `PIN`, `OTP`;
/// §11.9 `hash`, `hashAlgo`; §11.7 `sendOTP` without `authObjectID`), whichever layer words
/// the message; v2 keeps its own (`hashes`, `hashAlgorithmOID`, `authData`) for the same
/// mistakes. Exact descriptions, status 400 and `invalid_request` throughout.
#[tokio::test]
async fn v1_errors_use_v1_names() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let id = |c: &Value| c["credentialID"].as_str().unwrap().to_string();
    let scal2 = id(&env.add_credential("alice", &["--key", "ecdsa-p256"]));
    let scal1 = id(&env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1"]));
    let rsa = id(&env.add_credential("alice", &["--key", "rsa-2048", "--scal", "1"]));
    let totp = id(&env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1", "--otp", "totp"]));
    let server = env.start();
    let mut v1 = Api::v1(&server);
    v1.login("alice").await;
    let mut v2 = Api::new(&server);
    v2.token = v1.token.clone();
    let exact = async |api: &Api, method: &str, body: Value, description: &str| {
        let (status, v) = api.post(method, body).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")), "{method}: {v}");
        assert_eq!(v["error_description"], description, "{method}");
    };
    let h = b64(&sha256(b"v1 names"));
    let sad = v1.ok("credentials/authorize", json!({"credentialID": scal1, "numSignatures": 1, "PIN": PIN})).await["SAD"].clone();
    let rsa_sad = v1.ok("credentials/authorize", json!({"credentialID": rsa, "numSignatures": 1, "PIN": PIN})).await["SAD"].clone();

    // signHash.
    exact(
        &v1,
        "signatures/signHash",
        json!({"credentialID": scal1, "SAD": sad, "signAlgo": ECDSA_SHA256}),
        "Invalid request body: missing field `hash`",
    )
    .await;
    exact(
        &v1,
        "signatures/signHash",
        json!({"credentialID": rsa, "SAD": rsa_sad, "hash": [h], "signAlgo": RSA}),
        "Missing (or invalid type) string parameter hashAlgo: required with signAlgo rsaEncryption",
    )
    .await;
    exact(
        &v1,
        "signatures/signHash",
        json!({"credentialID": rsa, "SAD": rsa_sad, "hash": [h], "signAlgo": RSA, "hashAlgo": "1.3.14.3.2.26"}),
        "Invalid parameter hashAlgo: only SHA-256, SHA-384 and SHA-512 are accepted",
    )
    .await;
    exact(
        &v1,
        "signatures/signHash",
        json!({"credentialID": scal1, "SAD": sad, "hash": [h], "signAlgo": ECDSA_SHA256, "hashAlgo": SHA384}),
        "hashAlgo contradicts signAlgo",
    )
    .await;

    // credentials/authorize: flat PIN and OTP, `hash`.
    exact(
        &v1,
        "credentials/authorize",
        json!({"credentialID": scal2, "numSignatures": 1, "PIN": PIN}),
        "Missing (or invalid type) array parameter hash: required for SCAL 2 credentials",
    )
    .await;
    exact(
        &v1,
        "credentials/authorize",
        json!({"credentialID": scal1, "numSignatures": 1}),
        "Missing (or invalid type) string parameter PIN",
    )
    .await;
    exact(
        &v1,
        "credentials/authorize",
        json!({"credentialID": totp, "numSignatures": 1, "PIN": PIN}),
        "Missing (or invalid type) string parameter OTP",
    )
    .await;
    exact(
        &v1,
        "credentials/authorize",
        json!({"credentialID": scal1, "numSignatures": 1, "PIN": PIN, "OTP": "123456"}),
        "Invalid parameter OTP: this credential has no OTP",
    )
    .await;
    // "hashes" as a word, not a parameter name, stays.
    exact(
        &v1,
        "credentials/authorize",
        json!({"credentialID": scal2, "numSignatures": 1, "hash": [h, b64(&sha256(b"two"))], "PIN": PIN}),
        "More hashes than numSignatures",
    )
    .await;

    // sendOTP has no authObjectID in v1.
    exact(
        &v1,
        "credentials/sendOTP",
        json!({"credentialID": totp}),
        "Invalid parameter credentialID: the credential has no online OTP (credentials/sendOTP is for OTP type online)",
    )
    .await;

    // The same mistakes on v2 keep v2's names.
    exact(
        &v2,
        "credentials/authorize",
        json!({"credentialID": scal2, "numSignatures": 1, "authData": [{"id": "PIN", "value": PIN}]}),
        "Missing (or invalid type) array parameter hashes: required for SCAL 2 credentials",
    )
    .await;
    exact(
        &v2,
        "credentials/authorize",
        json!({"credentialID": scal1, "numSignatures": 1, "authData": []}),
        "Missing authentication object PIN in authData",
    )
    .await;
    let (_, v2_sad) = v2.authorize(&rsa, 1, None, json!([{"id": "PIN", "value": PIN}])).await;
    exact(
        &v2,
        "signatures/signHash",
        json!({"credentialID": rsa, "SAD": v2_sad["SAD"], "hashes": [h], "signAlgo": RSA}),
        "Missing (or invalid type) string parameter hashAlgorithmOID: required with signAlgo rsaEncryption",
    )
    .await;
    drop(server);
}
