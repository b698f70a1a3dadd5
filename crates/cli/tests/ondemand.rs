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
    let (s, v) = api.sign(&id, &sad, std::slice::from_ref(&digest), ECDSA_SHA256, None).await;
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
    let (client, secret) = add_client(&env, "Wallet", &["--confidential"]);
    let server = env.start_env(&[("CLOUDSIGN_CONFIG", &cfg)]);
    let mut api = Api::new(&server);
    api.login("alice").await;
    // A creation RAR with subjectData, or a certificatePolicy: refused before the signer is
    // asked, when the operator takes subjects from the account (and the CA has no policy).
    for (request, why) in [
        (json!({"subjectData": {"given_name": "Eve", "family_name": "X"}}), "subjectData"),
        (json!({"certificatePolicy": "0.4.0.194112.1.2"}), "certificatePolicy"),
    ] {
        let details =
            json!([{"type": "https://cloudsignatureconsortium.org/2025/credential-creation", "credentialCreationRequest": request}]);
        let (s, v) = oauth_post(
            &server,
            "pushed_authorize",
            &[("response_type", "code"), ("redirect_uri", REDIRECT_URI), ("authorization_details", &details.to_string())],
            Some((&client, secret.as_deref().unwrap())),
        )
        .await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error_description"].as_str().unwrap().contains(why), "{why}: {v}");
    }
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

/// In SoftHSM2, with the subject from `subjectData` (allowed here): the key is made in the
/// token and destroyed by delete (C_DestroyObject), as `pkcs11-tool` sees.
#[tokio::test]
async fn pkcs11_key_destroyed_and_subject_from_request() {
    let (env, conf) = Env::new(BIN, "sqlite").with_softhsm();
    let env = env.with_env("CLOUDSIGN_PKCS11_PIN", hsm::PIN);
    env.add_user("alice");
    let cfg = config(&env, "on.toml", "enabled = true\nbackend = \"pkcs11\"\nsubject_from_request = true\ncertificate_minutes = 10");
    let server = env.start_env(&[("CLOUDSIGN_CONFIG", &cfg)]);
    let mut api = Api::new(&server);
    api.login("alice").await;
    assert_eq!(hsm::private_keys(&conf).matches("Private Key Object").count(), 0);

    let created = api
        .ok("credentials/create", json!({"credentialCreationRequest": {"subjectData": {"given_name": "Alice", "family_name": "Example"}}}))
        .await;
    let id = created["credentialID"].as_str().unwrap().to_string();
    assert_eq!(hsm::private_keys(&conf).matches("Private Key Object").count(), 1, "{}", hsm::private_keys(&conf));
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
    let keys = hsm::private_keys(&conf);
    assert_eq!(keys.matches("Private Key Object").count(), 0, "{keys}");
}

// ---- The CSC 2.2 credential-management grants (scopes credential-creation and
// credential-deletion, and their RAR types), through the OAuth pages without JavaScript. ----

const RAR_CREATION: &str = "https://cloudsignatureconsortium.org/2025/credential-creation";
const RAR_DELETION: &str = "https://cloudsignatureconsortium.org/2025/credential-deletion";

/// The code of an authorization with `params`, approved by `user` on the consent page, and
/// the consent page's text.
async fn approved(server: &Server, params: &[(&str, &str)], user: &str, factors: &[(&str, &str)]) -> (String, String) {
    let (p, page) = consent_code_and_page(server, params, user, factors).await;
    (p.get("code").unwrap_or_else(|| panic!("no code: {p:?}")).clone(), page)
}

/// A token for `params` (a confidential client's authorization, approved by `user`).
async fn token_for(
    server: &Server,
    client: (&str, &str),
    params: &[(&str, &str)],
    user: &str,
    factors: &[(&str, &str)],
) -> (Value, String) {
    let mut all = vec![("response_type", "code"), ("client_id", client.0), ("redirect_uri", REDIRECT_URI)];
    all.extend_from_slice(params);
    let (code, page) = approved(server, &all, user, factors).await;
    let (s, token) =
        oauth_post(server, "token", &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT_URI)], Some(client))
            .await;
    assert_eq!(s, 200, "{token}");
    (token, page)
}

fn bearer(server: &Server, token: &Value) -> Api {
    Api { http: reqwest::Client::new(), base: format!("{}/csc/v2", server.url), token: token["access_token"].as_str().map(String::from) }
}

/// Each one-shot token reaches one call of its own method and nothing else: a creation token
/// cannot list, read, authorize, sign or delete; a deletion token for credential A cannot
/// delete B, nor anything after A; a credential-scope token cannot create; a deletion is
/// refused on the authorization pages for a credential that is not the signer's.
#[tokio::test]
async fn management_tokens_reach_one_call_only() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    env.add_user("bob");
    let admin_id = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let (client, secret) = add_client(&env, "Wallet", &["--confidential"]);
    let secret = secret.unwrap();
    let client = (client.as_str(), secret.as_str());
    let cfg = config(&env, "on.toml", "enabled = true\nsubject_from_request = true\nmax_per_user = 5\ntoken_seconds = 120");
    let server = env.start_env(&[("CLOUDSIGN_CONFIG", &cfg)]);
    let mut alice = Api::new(&server);
    alice.login("alice").await;
    let mut bob = Api::new(&server);
    bob.login("bob").await;
    let bob_id = bob.ok("credentials/create", json!({})).await["credentialID"].as_str().unwrap().to_string();

    // A creation token from the scope alone (Kotlin spelling).
    let (creation, page) = token_for(&server, client, &[("scope", "credential-creation")], "alice", &[]).await;
    assert!(page.contains("create a signing credential"), "{page}");
    assert_eq!(creation["scope"], "credential-creation", "{creation}");
    assert_eq!(creation["token_type"], "Bearer");
    let lifetime = creation["expires_in"].as_u64().unwrap();
    assert!((1..=120).contains(&lifetime), "{creation}");
    assert!(creation.get("refresh_token").is_none() && creation.get("authorization_details").is_none(), "{creation}");
    let maker = bearer(&server, &creation);
    let digest = sha256(b"not for this token");
    for (method, body) in [
        ("credentials/list", json!({})),
        ("credentials/info", json!({"credentialID": admin_id})),
        ("credentials/authorize", json!({"credentialID": admin_id, "numSignatures": 1, "authData": [{"id": "PIN", "value": PIN}]})),
        (
            "signatures/signHash",
            json!({"credentialID": admin_id, "hashes": [b64(&digest)], "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256}),
        ),
        ("auth/revoke", json!({"token": creation["access_token"]})),
    ] {
        let v = maker.err(method, body, 401, "invalid_token", "credentials/create only").await;
        assert!(!v.to_string().contains(creation["access_token"].as_str().unwrap()), "the token is never echoed: {v}");
    }
    maker.err("credentials/delete", json!({"credentialID": bob_id}), 400, "invalid_request", "does not allow deleting").await;
    // One credential, then the token is spent.
    let a = maker
        .ok("credentials/create", json!({"credentialCreationRequest": {"subjectData": {"given_name": "Alice", "family_name": "A"}}}))
        .await;
    let a_id = a["credentialID"].as_str().unwrap().to_string();
    assert!(a["cert"]["subjectDN"].as_str().is_some_and(|s| s.contains("Alice A")), "a scope token takes the request's subject: {a}");
    maker.err("credentials/create", json!({}), 401, "expired_token", "").await;

    // A creation token from RAR (the EUDI server's spellings): the subject the signer saw is
    // the subject; the create request may repeat it but not change it.
    let subject = json!({"givenName": "Alice", "surname": "Example"});
    let details = json!([{"type": "credential_creation", "credentialCreationRequest": {"subjectData": subject}}]).to_string();
    let (rar, page) =
        token_for(&server, client, &[("scope", "credential_creation"), ("authorization_details", &details)], "alice", &[]).await;
    assert!(page.contains("Alice Example"), "the consent page shows the subject: {page}");
    assert_eq!(rar["authorization_details"], serde_json::from_str::<Value>(&details).unwrap(), "echoed as sent: {rar}");
    assert_eq!(rar["scope"], "credential_creation");
    let maker = bearer(&server, &rar);
    maker
        .err(
            "credentials/create",
            json!({"credentialCreationRequest": {"subjectData": {"givenName": "Eve"}}}),
            400,
            "invalid_request",
            "differs",
        )
        .await;
    maker
        .err(
            "credentials/create",
            json!({"credentialCreationRequest": {"certificatePolicy": "0.4.0.194112.1.2"}}),
            400,
            "invalid_request",
            "certificatePolicy",
        )
        .await;
    let b = maker.ok("credentials/create", json!({"credentialCreationRequest": {"subjectData": subject}})).await;
    let b_id = b["credentialID"].as_str().unwrap().to_string();
    assert!(b["cert"]["subjectDN"].as_str().is_some_and(|s| s.contains("Alice Example")), "{b}");

    // A credential-scope token cannot create.
    let (signing, _) = token_for(
        &server,
        client,
        &[("scope", "credential"), ("credentialID", &a_id), ("numSignatures", "1")],
        "alice",
        &[("pin", PASSWORD)],
    )
    .await;
    bearer(&server, &signing).err("credentials/create", json!({}), 400, "invalid_request", "does not allow creating").await;

    // A deletion token (EUDI scope spelling, the credential as credentialID) for A: not B.
    let (deletion, page) = token_for(&server, client, &[("scope", "credential_delete"), ("credentialID", &a_id)], "alice", &[]).await;
    assert!(page.contains(&format!("delete credential {a_id}")), "{page}");
    assert_eq!(deletion["credentialID"], a_id.as_str(), "{deletion}");
    let remover = bearer(&server, &deletion);
    remover
        .err("credentials/delete", json!({"credentialID": b_id}), 400, "invalid_request", "does not allow deleting this credential")
        .await;
    remover.err("credentials/list", json!({}), 401, "invalid_token", "credentials/delete only").await;
    remover.err("credentials/create", json!({}), 400, "invalid_request", "does not allow creating").await;
    assert_eq!(alice.ok("credentials/info", json!({"credentialID": b_id})).await["cert"]["status"], "valid", "B is left alone");
    let (s, v) = remover.post("credentials/delete", json!({"credentialID": a_id})).await;
    assert_eq!(s, 204, "{v}");
    assert_eq!(alice.ok("credentials/info", json!({"credentialID": a_id})).await["cert"]["status"], "revoked");
    remover.err("credentials/delete", json!({"credentialID": a_id}), 401, "expired_token", "").await;

    // Refused on the pages: a deletion of Bob's credential, of an administrator's credential,
    // of one already deleted; back to the application with the reason, no code.
    for (id, why) in [(&bob_id, "credentialID"), (&admin_id, "not an on-demand credential"), (&a_id, "already deleted")] {
        let details = json!([{"type": RAR_DELETION, "credentialID": id}]).to_string();
        let mut browser = Browser::new(&server);
        let login = browser
            .authorize(&[
                ("response_type", "code"),
                ("client_id", client.0),
                ("redirect_uri", REDIRECT_URI),
                ("authorization_details", &details),
            ])
            .await;
        assert_eq!(login.status, 200, "{}", login.body);
        let done = browser.post("/oauth2/flow/login", &[("csrf", &login.csrf()), ("username", "alice"), ("password", PASSWORD)]).await;
        assert_eq!(done.status, 302, "{}", done.body);
        let p = location_params(&done.location.unwrap());
        assert_eq!(p.get("error").map(String::as_str), Some("invalid_request"), "{id}: {p:?}");
        assert!(p["error_description"].contains(why) && !p.contains_key("code"), "{why}: {p:?}");
    }
    // The types and scopes are checked before anyone logs in.
    for (details, why) in [
        (json!([{"type": RAR_CREATION}]), "credentialCreationRequest"),
        (json!([{"type": RAR_CREATION, "credentialCreationRequest": {"subjectData": "Alice"}}]), "subjectData"),
        (json!([{"type": RAR_DELETION}]), "credentialID"),
        (json!([{"type": RAR_DELETION, "credentialID": bob_id}, {"type": RAR_DELETION, "credentialID": a_id}]), "exactly one"),
    ] {
        let details = details.to_string();
        let (s, v) = oauth_post(
            &server,
            "pushed_authorize",
            &[("response_type", "code"), ("redirect_uri", REDIRECT_URI), ("authorization_details", &details)],
            Some(client),
        )
        .await;
        assert_eq!(s, 400, "{details}: {v}");
        assert!(v["error_description"].as_str().unwrap().contains(why), "{why}: {v}");
    }
    let (s, v) = oauth_post(
        &server,
        "pushed_authorize",
        &[("response_type", "code"), ("redirect_uri", REDIRECT_URI), ("scope", "credential-deletion")],
        Some(client),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("credentialID"), "{v}");
    let details = json!([{"type": RAR_DELETION, "credentialID": b_id}]).to_string();
    let (s, v) = oauth_post(
        &server,
        "pushed_authorize",
        &[("response_type", "code"), ("redirect_uri", REDIRECT_URI), ("scope", "credential-creation"), ("authorization_details", &details)],
        Some(client),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("different grants"), "{v}");

    // The grants are audited: consent, token, and the call they allowed, with the grant named.
    let audit = env.admin(&["audit", "--json", "--limit", "100000"], "");
    for (event, grant) in [
        ("oauth2.consent", "credential-creation"),
        ("oauth2.token", "credential-creation"),
        ("credential.create", "credential-creation"),
        ("oauth2.consent", "credential-deletion"),
        ("oauth2.token", "credential-deletion"),
        ("credential.delete", "credential-deletion"),
    ] {
        assert!(
            audit.lines().any(|l| l.contains(&format!("\"{event}\"")) && l.contains(grant) && l.contains("\"ok\"")),
            "{event} with {grant} is audited: {:?}",
            audit.lines().filter(|l| l.contains(&format!("\"{event}\""))).collect::<Vec<_>>()
        );
    }
    assert!(audit.lines().any(|l| l.contains("\"credential.create\"") && l.contains("\"refused\"") && l.contains("differs")), "{audit}");
    let refused_deletions = audit
        .lines()
        .filter(|l| l.contains("\"oauth2.consent\"") && l.contains("\"refused\"") && l.contains("credential-deletion"))
        .count();
    assert_eq!(refused_deletions, 3, "each deletion refused on the pages is audited: {audit}");
    assert!(!audit.contains("redirect_uri_given") && !audit.contains("sole_key"), "the stored grant is never audited");
    for t in [&creation, &rar, &deletion] {
        assert!(!audit.contains(t["access_token"].as_str().unwrap()), "no token in the audit");
        assert!(!env.server_log().contains(t["access_token"].as_str().unwrap()), "no token in the log");
    }
}
