//! OAuth 2.0 end to end over HTTP against the real binary: the authorization-code flow through
//! the login and consent pages (service and credential scope, PKCE, RAR, PAR), the token,
//! refresh, client-credentials and revocation endpoints, and every refusal of the issue.

mod common;

use common::*;
use serde_json::{Value, json};

fn hashes_param(digests: &[Vec<u8>]) -> String {
    digests.iter().map(|d| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, d)).collect::<Vec<_>>().join(",")
}

async fn bearer_post(server: &Server, token: &str, method: &str, body: Value) -> (u16, Value) {
    let api = Api { http: reqwest::Client::new(), base: format!("{}/csc/v2", server.url), token: Some(token.to_string()) };
    api.post(method, body).await
}

#[tokio::test]
async fn service_scope_code_flow_refresh_revoke_and_discovery() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let (client, secret) = add_client(&env, "Acme Signer", &["--confidential"]);
    let secret = secret.expect("a confidential client has a secret");
    let (client, secret) = (client.as_str(), secret.as_str());
    let server = env.start();

    // Discovery: info (v2 and v1 base) and RFC 8414 metadata. CSC 2.2 allows exactly one of
    // oauth2, oauth2Issuer and oauth2Servers, and its Swift client requires oauth2.
    let info = reqwest::get(format!("{}/csc/v2/info", server.url)).await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(info["oauth2"], server.url);
    assert!(info.get("oauth2Issuer").is_none(), "{info}");
    for t in ["basic", "oauth2code", "oauth2client"] {
        assert!(info["authType"].as_array().unwrap().contains(&json!(t)), "{info}");
    }
    let v1 = reqwest::get(format!("{}/csc/v1/info", server.url)).await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(v1["oauth2"], format!("{}/", server.url));
    let meta = reqwest::get(format!("{}/.well-known/oauth-authorization-server", server.url)).await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(meta["issuer"], server.url);
    assert_eq!(meta["token_endpoint"], format!("{}/oauth2/token", server.url));
    assert_eq!(meta["pushed_authorization_request_endpoint"], format!("{}/oauth2/pushed_authorize", server.url));
    assert!(meta["code_challenge_methods_supported"].as_array().unwrap().contains(&json!("S256")));

    // The pages: login, a wrong password shows the form again, then consent.
    let mut b = Browser::new(&server);
    let login = b
        .authorize(&[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", REDIRECT_URI),
            ("state", "s-1"),
            ("scope", "service"),
        ])
        .await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains("Acme Signer"), "the login page names the application");
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(login.headers["cache-control"], "no-store");
    assert_eq!(login.headers["x-frame-options"], "DENY");
    let cookie = b.cookie.clone().unwrap();
    assert!(cookie.starts_with("cloudsign_flow="));
    let wrong = b.post("/oauth2/flow/login", &[("csrf", &login.csrf()), ("username", "alice"), ("password", "not the password")]).await;
    assert_eq!(wrong.status, 200);
    assert!(wrong.body.contains("Wrong user name or password"), "{}", wrong.body);
    assert!(!wrong.body.contains("not the password"), "a page never echoes a secret");
    let consent = b.login(&login, "alice").await;
    assert!(consent.body.contains("Allow access") && consent.body.contains("Acme Signer"), "{}", consent.body);
    let done = b.approve(&consent, &[]).await;
    assert_eq!(done.status, 302);
    let params = location_params(done.location.as_deref().unwrap());
    assert_eq!(params["state"], "s-1");
    let code = params["code"].clone();

    // Client authentication: a wrong secret is refused (and does not use the code).
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];
    let (s, v) = oauth_post(&server, "token", &form, Some((client, "wrong secret"))).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "{v}");
    let (s, v) = oauth_post(&server, "token", &[("grant_type", "authorization_code"), ("code", &code)], Some((client, secret))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "redirect_uri was sent, so it must be repeated: {v}");
    let (s, tokens) = oauth_post(&server, "token", &form, Some((client, secret))).await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let (s, list) = bearer_post(&server, &access, "credentials/list", json!({})).await;
    assert_eq!(s, 200, "a service token works on the CSC API: {list}");

    // The client rotates its refresh token once; then the code is replayed: refused, and what it
    // led to is revoked, the rotated tokens included (RFC 6749 §4.1.2).
    let (s, rotated) =
        oauth_post(&server, "token", &[("grant_type", "refresh_token"), ("refresh_token", &refresh)], Some((client, secret))).await;
    assert_eq!(s, 200, "{rotated}");
    let rotated_refresh = rotated["refresh_token"].as_str().unwrap().to_string();
    let rotated_access = rotated["access_token"].as_str().unwrap().to_string();
    let (s, v) = oauth_post(&server, "token", &form, Some((client, secret))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    let (s, _) = bearer_post(&server, &access, "credentials/list", json!({})).await;
    assert_eq!(s, 401, "the token of a replayed code is revoked");
    let (s, _) = bearer_post(&server, &rotated_access, "credentials/list", json!({})).await;
    assert_eq!(s, 401, "and so is the one its refresh token was rotated into");
    let (s, _) =
        oauth_post(&server, "token", &[("grant_type", "refresh_token"), ("refresh_token", &rotated_refresh)], Some((client, secret))).await;
    assert_eq!(s, 400, "and the rotated refresh token");

    // A second flow; the secret in the form body this time (client_secret_post).
    let params = consent_code(&server, &[("response_type", "code"), ("client_id", client)], "alice", &[]).await;
    assert!(!params.contains_key("state"));
    let (s, tokens) = oauth_post(
        &server,
        "token",
        &[("grant_type", "authorization_code"), ("code", &params["code"]), ("client_id", client), ("client_secret", &secret)],
        None,
    )
    .await;
    assert_eq!(s, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    // Refresh rotates; the old refresh token stops working.
    let (s, rotated) =
        oauth_post(&server, "token", &[("grant_type", "refresh_token"), ("refresh_token", &refresh)], Some((client, secret))).await;
    assert_eq!(s, 200, "{rotated}");
    let access = rotated["access_token"].as_str().unwrap();
    assert_eq!(bearer_post(&server, access, "credentials/list", json!({})).await.0, 200);
    // Another client cannot revoke it; its own client can (RFC 7009), then it is dead.
    let (other, other_secret) = add_client(&env, "Other", &[]);
    let (s, _) = oauth_post(&server, "revoke", &[("token", access)], Some((&other, other_secret.as_deref().unwrap()))).await;
    assert_eq!(s, 400);
    assert_eq!(bearer_post(&server, access, "credentials/list", json!({})).await.0, 200);
    let (s, v) = oauth_post(&server, "revoke", &[("token", access), ("token_type_hint", "access_token")], Some((client, secret))).await;
    assert_eq!(s, 204, "{v}");
    assert_eq!(bearer_post(&server, access, "credentials/list", json!({})).await.0, 401);
    // The old refresh token stops working; presented again it revokes the line (RFC 9700
    // §4.14.2), the refresh token it was rotated into included.
    let (s, v) =
        oauth_post(&server, "token", &[("grant_type", "refresh_token"), ("refresh_token", &refresh)], Some((client, secret))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    let rotated_refresh = rotated["refresh_token"].as_str().unwrap();
    let (s, v) =
        oauth_post(&server, "token", &[("grant_type", "refresh_token"), ("refresh_token", rotated_refresh)], Some((client, secret))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));

    // client_credentials: only for a confidential client registered to act as a user.
    let (s, v) = oauth_post(&server, "token", &[("grant_type", "client_credentials")], Some((client, secret))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("unauthorized_client")), "{v}");
    let (svc, svc_secret) = add_client(&env, "Batch service", &["--user", "alice"]);
    let (s, v) = oauth_post(&server, "token", &[("grant_type", "client_credentials")], Some((&svc, svc_secret.as_deref().unwrap()))).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("refresh_token").is_none(), "no refresh token for client credentials (RFC 6749 §4.4.3)");
    assert_eq!(bearer_post(&server, v["access_token"].as_str().unwrap(), "credentials/list", json!({})).await.0, 200);
    let (s, v) = oauth_post(&server, "token", &[("grant_type", "password")], Some((&svc, svc_secret.as_deref().unwrap()))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("unsupported_grant_type")));

    // Deleting a client revokes what it holds.
    let (s, v) = oauth_post(&server, "token", &[("grant_type", "client_credentials")], Some((&svc, svc_secret.as_deref().unwrap()))).await;
    assert_eq!(s, 200);
    env.admin(&["client", "delete", &svc], "");
    assert_eq!(bearer_post(&server, v["access_token"].as_str().unwrap(), "credentials/list", json!({})).await.0, 401);
    let listed = env.admin(&["client", "list", "--json"], "");
    assert!(listed.contains(&client) && !listed.contains(&svc), "{listed}");

    // The audit trail has the OAuth events, and no secret.
    let audit = env.admin(&["audit", "--json", "--limit", "1000"], "");
    for event in ["oauth2.login", "oauth2.consent", "oauth2.token", "oauth2.revoke", "admin.client.add"] {
        assert!(audit.contains(event), "audit lacks {event}");
    }
    assert!(!audit.contains(&secret) && !audit.contains(PASSWORD) && !audit.contains(&code));
    let log = env.server_log();
    assert!(!log.contains(&secret) && !log.contains(&code) && !log.contains(&refresh), "secrets never reach the log");
}

async fn credential_scope(db: &str) {
    let env = Env::new(BIN, db);
    env.add_user("alice");
    env.add_user("bob");
    let cred = env.add_credential("alice", &["--auth-mode", "oauth2code", "--otp", "totp", "--scal", "2", "--key", "ecdsa-p384"]);
    let id = cred["credentialID"].as_str().unwrap().to_string();
    let otpauth = cred["otpauth"].as_str().unwrap().to_string();
    let other = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let (client, secret) = add_client(&env, "Mobile wallet", &["--public"]);
    assert!(secret.is_none(), "a public client has no secret");
    let client = client.as_str();
    let server = env.start();

    // The credential says oauth2code and refuses credentials/authorize.
    let mut api = Api::new(&server);
    api.login("alice").await;
    let info = api.ok("credentials/info", json!({"credentialID": id, "authInfo": true})).await;
    assert_eq!(info["auth"]["mode"], "oauth2code");
    let (s, v) = api.authorize(&id, 1, Some((&[sha384(b"x")], SHA384)), json!([{"id": "PIN", "value": PIN}])).await;
    assert_error("authorize", s, &v, 400, "invalid_request", "oauth2code");
    let mut v1 = Api::v1(&server);
    v1.login("alice").await;
    assert_eq!(v1.ok("credentials/info", json!({"credentialID": id})).await["authMode"], "oauth2code");

    let docs = [b"contract".to_vec(), b"annex".to_vec()];
    let digests: Vec<Vec<u8>> = docs.iter().map(|d| sha384(d)).collect();
    let (verifier, challenge) = pkce(&env.dir);
    let hashes = hashes_param(&digests);
    let params = [
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "credential"),
        ("credentialID", id.as_str()),
        ("numSignatures", "2"),
        ("hashes", hashes.as_str()),
        ("hashAlgorithmOID", SHA384),
        ("description", "Lease <b>agreement</b>"),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let mut b = Browser::new(&server);
    let login = b.authorize(&params).await;
    let consent = b.login(&login, "alice").await;
    // The consent page shows who signs, with what, how many times, and each digest.
    let page = &consent.body;
    for text in ["Mobile wallet", "Approve 2 signatures", "CN=alice", "Issuing CA", "SHA-384", "Document 1", "Document 2", "name=\"otp\""] {
        assert!(page.contains(text), "consent page lacks {text:?}: {page}");
    }
    for d in &digests {
        assert!(page.contains(&b64(d)), "consent page lacks a digest");
    }
    assert!(page.contains("Lease &lt;b&gt;agreement&lt;/b&gt;") || page.contains("Lease &#60;b&#62;"), "description escaped: {page}");
    // Missing OTP: asked again, nothing counted.
    let again = b.approve(&consent, &[("pin", PIN)]).await;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("Enter the one-time code"));
    let done = b.approve(&consent, &[("pin", PIN), ("otp", &totp(&otpauth, 0))]).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let params = location_params(done.location.as_deref().unwrap());
    let code = params["code"].as_str();

    // PKCE: no verifier (refused, the code kept), then the right one. (A wrong verifier burns
    // the code: tests/auth_concurrency.rs `failed_pkce_burns_the_code`.)
    let base = [("grant_type", "authorization_code"), ("code", code), ("client_id", client), ("redirect_uri", REDIRECT_URI)];
    let (s, v) = oauth_post(&server, "token", &base, None).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    let mut form = base.to_vec();
    form.push(("code_verifier", &verifier));
    let (s, token) = oauth_post(&server, "token", &form, None).await;
    assert_eq!(s, 200, "{token}");
    assert_eq!(token["credentialID"], id.as_str());
    assert_eq!(token["token_type"], "Bearer");
    assert!(token.get("refresh_token").is_none());
    let credential_token = token["access_token"].as_str().unwrap().to_string();

    // A consent cannot be widened afterwards: extendTransaction refuses new hashes.
    let (s, v) = api
        .post(
            "credentials/extendTransaction",
            json!({"credentialID": id, "SAD": credential_token, "hashes": [b64(&sha384(b"not shown"))], "hashAlgorithmOID": SHA384}),
        )
        .await;
    assert_error("extendTransaction", s, &v, 400, "invalid_request", "consent page");

    let cert = info["cert"]["certificates"][0].as_str().unwrap().to_string();
    let sign = |bearer: String, body: Value| {
        let server = &server;
        async move { bearer_post(server, &bearer, "signatures/signHash", body).await }
    };
    // A hash the signer did not see is refused.
    let (s, v) = sign(
        credential_token.clone(),
        json!({"credentialID": id, "hashes": [b64(&sha384(b"forged"))], "hashAlgorithmOID": SHA384, "signAlgo": "1.2.840.10045.4.3.3"}),
    )
    .await;
    assert_error("signHash", s, &v, 400, "invalid_request", "Hash is not authorized");
    // The credential token as the bearer, no SAD: it is its own SAD.
    let (s, v) = sign(
        credential_token.clone(),
        json!({"credentialID": id, "hashes": [b64(&digests[0])], "hashAlgorithmOID": SHA384, "signAlgo": "1.2.840.10045.4.3.3"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    openssl_verify_signature(&env.dir, &cert, &docs[0], &unb64(v["signatures"][0].as_str().unwrap()), "sha384", "ecdsa");
    // It reaches only its credential.
    let (s, v) = bearer_post(&server, &credential_token, "credentials/list", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(v["credentialIDs"], json!([id]), "a credential token lists its own credential only");
    let (s, _) = bearer_post(&server, &credential_token, "credentials/info", json!({"credentialID": other})).await;
    assert_eq!(s, 400);
    // The same token placed in SAD, with a service token as the bearer.
    let (s, v) = api.sign(&id, &credential_token, &[digests[1].clone()], "1.2.840.10045.4.3.3", Some(SHA384)).await;
    assert_eq!(s, 200, "{v}");
    openssl_verify_signature(&env.dir, &cert, &docs[1], &unb64(v["signatures"][0].as_str().unwrap()), "sha384", "ecdsa");
    // Used up: a third signature is refused, whatever the hash.
    let (s, v) = api.sign(&id, &credential_token, &[digests[0].clone()], "1.2.840.10045.4.3.3", Some(SHA384)).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "");
    // Bob cannot use Alice's token as a SAD.
    let mut bob = Api::new(&server);
    bob.login("bob").await;
    let (s, _) = bob.sign(&id, &credential_token, &[digests[0].clone()], "1.2.840.10045.4.3.3", Some(SHA384)).await;
    assert_eq!(s, 400);

    // The audit trail records the consent with the digests the signer saw.
    let audit = env.admin(&["audit", "--json", "--limit", "1000"], "");
    let consent_event = audit.lines().find(|l| l.contains("\"oauth2.consent\"") && l.contains("\"ok\"")).expect("consent audited");
    assert!(consent_event.contains(&hex::encode(&digests[0])), "{consent_event}");
}

#[tokio::test]
async fn credential_scope_sqlite() {
    credential_scope("sqlite").await;
}

#[tokio::test]
async fn credential_scope_postgres() {
    credential_scope("postgres").await;
}

#[tokio::test]
async fn pushed_request_with_authorization_details() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let id = env.add_credential("alice", &["--auth-mode", "oauth2code", "--key", "rsa-2048"])["credentialID"].as_str().unwrap().to_string();
    let (client, secret) = add_client(&env, "Contract portal", &[]);
    let secret = secret.unwrap();
    let (client, secret) = (client.as_str(), secret.as_str());
    let server = env.start();

    let docs = [b"%PDF contract".to_vec(), b"%PDF terms".to_vec()];
    let digests: Vec<Vec<u8>> = docs.iter().map(|d| sha256(d)).collect();
    let details = json!([{
        "type": "credential",
        "credentialID": id,
        "hashAlgorithmOID": SHA256,
        "documentDigests": [{"hash": b64(&digests[0]), "label": "Rental contract.pdf"}, {"hash": b64(&digests[1]), "label": "Terms of service.pdf"}],
    }])
    .to_string();
    let (verifier, challenge) = pkce(&env.dir);
    let par = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("authorization_details", details.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "par-state"),
    ];
    // PAR needs client authentication.
    let (s, _) = oauth_post(&server, "pushed_authorize", &par, Some((client, "nope"))).await;
    assert_eq!(s, 401);
    let (s, pushed) = oauth_post(&server, "pushed_authorize", &par, Some((client, secret))).await;
    assert_eq!(s, 201, "{pushed}");
    assert_eq!(pushed["expires_in"], 90);
    let request_uri = pushed["request_uri"].as_str().unwrap().to_string();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    let mut b = Browser::new(&server);
    let login = b.authorize(&[("client_id", client), ("request_uri", &request_uri)]).await;
    let consent = b.login(&login, "alice").await;
    for label in ["Rental contract.pdf", "Terms of service.pdf", "Approve 2 signatures"] {
        assert!(consent.body.contains(label), "consent lacks {label}");
    }
    // The request_uri was single use.
    let mut again = Browser::new(&server);
    let reused = again.get(&format!("/oauth2/authorize?{}", query(&[("client_id", client), ("request_uri", &request_uri)]))).await;
    assert_eq!(reused.status, 400);
    assert!(reused.location.is_none());

    let done = b.approve(&consent, &[("pin", PIN)]).await;
    let params = location_params(done.location.as_deref().unwrap());
    assert_eq!(params["state"], "par-state");
    let form =
        [("grant_type", "authorization_code"), ("code", &params["code"]), ("redirect_uri", REDIRECT_URI), ("code_verifier", &verifier)];
    let (s, token) = oauth_post(&server, "token", &form, Some((client, secret))).await;
    assert_eq!(s, 200, "{token}");
    assert_eq!(token["authorization_details"][0]["credentialID"], id.as_str());
    assert_eq!(token["authorization_details"][0]["documentDigests"][1]["label"], "Terms of service.pdf");

    // Both documents signed in one call with the token as bearer; RSA PKCS#1 verified by openssl.
    let (s, v) = bearer_post(
        &server,
        token["access_token"].as_str().unwrap(),
        "signatures/signHash",
        json!({"credentialID": id, "hashes": [b64(&digests[0]), b64(&digests[1])], "hashAlgorithmOID": SHA256, "signAlgo": "1.2.840.113549.1.1.11"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let mut api = Api::new(&server);
    api.login("alice").await;
    let cert = api.ok("credentials/info", json!({"credentialID": id})).await["cert"]["certificates"][0].as_str().unwrap().to_string();
    for (i, doc) in docs.iter().enumerate() {
        openssl_verify_signature(&env.dir, &cert, doc, &unb64(v["signatures"][i].as_str().unwrap()), "sha256", "pkcs1");
    }
}

#[tokio::test]
async fn authorization_refusals() {
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_MAX_AUTH_ATTEMPTS", "3").with_env("CLOUDSIGN_OAUTH_CODE_TTL", "1");
    env.add_user("alice");
    let id = env.add_credential("alice", &["--auth-mode", "oauth2code"])["credentialID"].as_str().unwrap().to_string();
    let (public, _) = add_client(&env, "Public app", &["--public"]);
    let (client, secret) = add_client(&env, "Server app", &[]);
    let secret = secret.unwrap();
    let (public, client, secret) = (public.as_str(), client.as_str(), secret.as_str());
    let server = env.start();
    let (_, challenge) = pkce(&env.dir);

    // Unknown client, unregistered redirect URI: an error page, never a redirect.
    for q in [
        vec![("response_type", "code"), ("client_id", "nope"), ("redirect_uri", REDIRECT_URI)],
        vec![("response_type", "code"), ("client_id", client), ("redirect_uri", "http://127.0.0.1:9/evil")],
        vec![("response_type", "code"), ("client_id", client), ("redirect_uri", "https://attacker.example/cb")],
    ] {
        let page = Browser::new(&server).get(&format!("/oauth2/authorize?{}", query(&q))).await;
        assert_eq!(page.status, 400, "{q:?}");
        assert!(page.location.is_none(), "never redirected to an unregistered URI: {q:?}");
        assert!(page.body.contains("Invalid request"));
    }
    // Errors after the redirect URI is trusted go back to it with error and state.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("client_id", client), ("state", "a")], "invalid_request"),
        (vec![("response_type", "token"), ("client_id", client), ("state", "a")], "unsupported_response_type"),
        (vec![("response_type", "code"), ("client_id", client), ("scope", "admin"), ("state", "a")], "invalid_scope"),
        (vec![("response_type", "code"), ("client_id", public), ("state", "a")], "invalid_request"),
        (
            vec![
                ("response_type", "code"),
                ("client_id", public),
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
                ("state", "a"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("response_type", "code"),
                ("client_id", client),
                ("scope", "credential"),
                ("credentialID", &id),
                ("hashes", "AAAA"),
                ("state", "a"),
            ],
            "invalid_request",
        ),
    ];
    for (q, error) in cases {
        let page = Browser::new(&server).get(&format!("/oauth2/authorize?{}", query(&q))).await;
        assert_eq!(page.status, 302, "{q:?}: {}", page.body);
        let p = location_params(page.location.as_deref().unwrap());
        assert_eq!((p["error"].as_str(), p["state"].as_str()), (error, "a"), "{q:?}");
    }

    // Deny: back with access_denied and the state.
    let mut b = Browser::new(&server);
    let login = b.authorize(&[("response_type", "code"), ("client_id", client), ("state", "d")]).await;
    let consent = b.login(&login, "alice").await;
    let denied = b.post("/oauth2/flow/consent", &[("csrf", &consent.csrf()), ("decision", "deny")]).await;
    assert_eq!(denied.status, 302);
    let p = location_params(denied.location.as_deref().unwrap());
    assert_eq!((p["error"].as_str(), p["state"].as_str(), p.get("code")), ("access_denied", "d", None));

    // CSRF: a form without the token, or with another flow's, is refused.
    let mut b = Browser::new(&server);
    let login = b.authorize(&[("response_type", "code"), ("client_id", client)]).await;
    let forged = b.post("/oauth2/flow/login", &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(forged.status, 403);
    let mut other = Browser::new(&server);
    let other_login = other.authorize(&[("response_type", "code"), ("client_id", client)]).await;
    let forged = b.post("/oauth2/flow/login", &[("csrf", &other_login.csrf()), ("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(forged.status, 403);
    let consent = b.login(&login, "alice").await;
    let forged = b.post("/oauth2/flow/consent", &[("decision", "approve")]).await;
    assert_eq!(forged.status, 403);
    // Without the cookie there is no flow at all.
    let mut no_cookie = Browser::new(&server);
    let lost = no_cookie.post("/oauth2/flow/consent", &[("csrf", &consent.csrf()), ("decision", "approve")]).await;
    assert_eq!(lost.status, 400);

    // An expired code (CLOUDSIGN_OAUTH_CODE_TTL=1).
    let done = b.approve(&consent, &[]).await;
    let code = location_params(done.location.as_deref().unwrap())["code"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, v) = oauth_post(&server, "token", &[("grant_type", "authorization_code"), ("code", &code)], Some((client, secret))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("expired"), "{v}");
    // A code is bound to its client.
    let code = consent_code(&server, &[("response_type", "code"), ("client_id", client)], "alice", &[]).await["code"].clone();
    let (s, v) = oauth_post(&server, "token", &[("grant_type", "authorization_code"), ("code", &code), ("client_id", public)], None).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");

    // Wrong PIN on the consent page: counted like credentials/authorize, locked at 3.
    let digest = sha256(b"doc");
    let hashes = hashes_param(&[digest.clone()]);
    let q = [
        ("response_type", "code"),
        ("client_id", client),
        ("scope", "credential"),
        ("credentialID", id.as_str()),
        ("numSignatures", "1"),
        ("hashes", hashes.as_str()),
        ("hashAlgorithmOID", SHA256),
        ("state", "pin"),
    ];
    let mut b = Browser::new(&server);
    let login = b.authorize(&q).await;
    let consent = b.login(&login, "alice").await;
    let first = b.approve(&consent, &[("pin", "000000")]).await;
    assert_eq!(first.status, 200);
    assert!(first.body.contains("Wrong PIN: 2 attempts left"), "{}", first.body);
    let second = b.approve(&first, &[("pin", "111111")]).await;
    assert!(second.body.contains("Wrong PIN: 1 attempt left"), "{}", second.body);
    let third = b.approve(&second, &[("pin", "222222")]).await;
    assert_eq!(third.status, 302, "the third failure locks and returns to the application");
    let p = location_params(third.location.as_deref().unwrap());
    assert_eq!((p["error"].as_str(), p["state"].as_str()), ("access_denied", "pin"));
    // Locked: even the right PIN no longer works, here or in a new flow, until unlocked.
    let listed = env.admin(&["credential", "list", "--json"], "");
    assert!(listed.contains("\"locked\""), "{listed}");
    let mut b = Browser::new(&server);
    let login = b.authorize(&q).await;
    let done = b.post("/oauth2/flow/login", &[("csrf", &login.csrf()), ("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(done.status, 302, "a locked credential ends the flow at login");
    assert_eq!(location_params(done.location.as_deref().unwrap())["error"], "access_denied");
    env.admin(&["credential", "unlock", &id], "");
    let p = consent_code(&server, &q, "alice", &[("pin", PIN)]).await;
    assert!(p.contains_key("code"), "{p:?}");

    // A credential token used beyond its count.
    let (s, token) =
        oauth_post(&server, "token", &[("grant_type", "authorization_code"), ("code", &p["code"])], Some((client, secret))).await;
    assert_eq!(s, 200, "{token}");
    let t = token["access_token"].as_str().unwrap();
    let body = json!({"credentialID": id, "hashes": [b64(&digest)], "hashAlgorithmOID": SHA256, "signAlgo": "1.2.840.10045.4.3.2"});
    assert_eq!(bearer_post(&server, t, "signatures/signHash", body.clone()).await.0, 200);
    let (s, v) = bearer_post(&server, t, "signatures/signHash", body.clone()).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "Numbers of signatures is too high");
    // Revoking a credential token through the OAuth endpoint ends it as a SAD too.
    let p = consent_code(&server, &q, "alice", &[("pin", PIN)]).await;
    let (_, token) =
        oauth_post(&server, "token", &[("grant_type", "authorization_code"), ("code", &p["code"])], Some((client, secret))).await;
    let t = token["access_token"].as_str().unwrap();
    let (s, _) = oauth_post(&server, "revoke", &[("token", t)], Some((client, secret))).await;
    assert_eq!(s, 204);
    let mut api = Api::new(&server);
    api.login("alice").await;
    let (s, v) = api.sign(&id, t, &[digest.clone()], "1.2.840.10045.4.3.2", Some(SHA256)).await;
    assert_error("signHash", s, &v, 400, "invalid_request", "Invalid parameter SAD");

    // Malformed token requests get RFC 6749 errors, never a 500.
    let (s, v) = oauth_post(&server, "token", &[("code", "x")], Some((client, secret))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    let (s, v) =
        oauth_post(&server, "token", &[("grant_type", "authorization_code"), ("code", "x"), ("code", "y")], Some((client, secret))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    let (s, v) = oauth_post(&server, "token", &[("grant_type", "authorization_code"), ("code", "unknown")], Some((client, secret))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth2/token", server.url))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "JSON is not a token request");
}
