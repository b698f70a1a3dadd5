//! A CSC API 2.2.0.0 client written from the reference (`csc-api-2.2.md`), as strict as the
//! strictest public 2.2 clients (the EUDI Kotlin client "K" and the Swift client "S"), against
//! the real binary over TLS:
//!
//! 1. `info`: every rule those clients apply (specs exactly "2.2.0.0", the required members
//!    and their types, the OAuth server combinations they reject, `methods` a closed client
//!    can parse, string `algoParams`, `envelope_properties`);
//! 2. `credentials/list` and `credentials/info` the way K parses them;
//! 3. an authorization with the 2025 RAR type through the OAuth pages in headless Chromium,
//!    the token response as K's parser needs it, then `signatures/signHash` with the
//!    credential token, the signature verified by openssl.
//!
//! The credential comes from one function ([`credential_for_signing`]): today the operator's
//! `admin credential add`; with `credentials/create` it becomes create → authorize →
//! signHash → delete.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// The 2.2 RAR type of a credential authorization (csc-api-2.2.md §4).
const RAR_2025: &str = "https://cloudsignatureconsortium.org/2025/credential";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

/// The method names K recognises (csc-api-2.2.md §1). A closed client (S) fails on any other
/// string, so this test does too.
const KNOWN_METHODS: [&str; 16] = [
    "info",
    "auth/login",
    "auth/revoke",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "credentials/authorizeCheck",
    "credentials/getChallenge",
    "credentials/sendOTP",
    "credentials/extendTransaction",
    "credentials/create",
    "credentials/delete",
    "signatures/signHash",
    "signatures/signDoc",
    "signatures/signPolling",
    "signatures/timestamp",
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} must be a string: {v}"))
}

fn strings(v: &Value, what: &str) -> Vec<String> {
    let a = v.as_array().unwrap_or_else(|| panic!("{what} must be an array: {v}"));
    a.iter().map(|s| s.as_str().unwrap_or_else(|| panic!("{what} must hold strings only: {v}")).to_string()).collect()
}

fn is_oid(s: &str) -> bool {
    let arcs: Vec<&str> = s.split('.').collect();
    arcs.len() >= 2 && arcs.iter().all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
}

fn optional_bool(info: &Value, key: &str) {
    assert!(info.get(key).is_none_or(|v| v.is_boolean()), "{key} must be a boolean when present: {info}");
}

/// The checks of a strict 2.2 client on `info`; returns the OAuth base URI it would use.
fn check_info(info: &Value, service: &str) -> String {
    // K: the metadata constructor refuses anything else.
    assert_eq!(info["specs"], "2.2.0.0", "{info}");
    // K: name, logo, region, lang, description are required strings.
    for key in ["name", "logo", "region", "lang", "description"] {
        str_of(info, key);
    }
    assert!(str_of(info, "name").chars().count() <= 255 && str_of(info, "description").chars().count() <= 255);
    let logo = reqwest::Url::parse(str_of(info, "logo")).expect("logo must be a URI");
    assert!(logo.scheme() == "https", "logo {logo}");
    let lang = str_of(info, "lang");
    assert!(
        lang.split('-').all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric())),
        "lang must be a BCP 47 tag: {lang}"
    );

    // authType: strings of the known values.
    let auth_types = strings(&info["authType"], "authType");
    for t in &auth_types {
        assert!(["basic", "digest", "tls", "external", "oauth2code", "oauth2client"].contains(&t.as_str()), "authType {t}");
    }
    let oauth_types: HashSet<&str> = auth_types.iter().map(String::as_str).filter(|t| t.starts_with("oauth2")).collect();
    assert!(!oauth_types.is_empty(), "this service offers OAuth: {info}");

    // The OAuth server rules (K throws on each; csc-api-2.2.md §2 rules 1-5).
    let present = |k: &str| info.get(k).is_some_and(|v| !v.is_null());
    let oauth_base = if present("oauth2Servers") {
        assert!(!present("supportsRar"), "rule 1: no top-level supportsRar beside oauth2Servers");
        assert!(!present("oauth2") && !present("oauth2Issuer"), "rule 2: exactly one of oauth2, oauth2Issuer, oauth2Servers");
        let servers = info["oauth2Servers"].as_array().expect("oauth2Servers is an array");
        let mut union = HashSet::new();
        for s in servers {
            let types = strings(&s["authType"], "oauth2Servers[].authType");
            assert!(types.iter().all(|t| t == "oauth2code" || t == "oauth2client"), "{s}");
            union.extend(types);
            assert!(s.get("baseUri").is_some() != s.get("issuerIdentifier").is_some(), "rule 5: baseUri xor issuerIdentifier: {s}");
        }
        assert!(oauth_types.iter().all(|t| union.contains(*t)), "rule 4: the servers cover every oauth2 authType");
        panic!("this client follows S, which requires `oauth2`: {info}");
    } else {
        assert!(present("oauth2") != present("oauth2Issuer"), "rule 2: exactly one of oauth2, oauth2Issuer: {info}");
        // S decodes `oauth2` as a required string.
        let base = str_of(info, "oauth2");
        // K: a non-https URL counts as absent, and then resolution fails.
        assert!(base.starts_with("https://"), "oauth2 must be https: {base}");
        base.to_string()
    };
    assert_eq!(oauth_base.trim_end_matches('/'), service, "{info}");
    optional_bool(info, "supportsRar");
    assert_eq!(info["supportsRar"], true, "this service takes authorization_details");

    // K and S: supportedHashTypes is required (its meaning is open).
    let hash_types = strings(&info["supportedHashTypes"], "supportedHashTypes");
    assert!(!hash_types.is_empty());
    optional_bool(info, "asynchronousOperationMode");
    optional_bool(info, "validationInfo");

    // methods: every name must parse in a closed enum; S has no oauth2/pushed_authorize.
    let methods = strings(&info["methods"], "methods");
    assert!(!methods.is_empty());
    for m in &methods {
        assert!(KNOWN_METHODS.contains(&m.as_str()), "a strict 2.2 client cannot parse method {m:?}");
    }
    for m in ["credentials/list", "credentials/info", "signatures/signHash"] {
        assert!(methods.iter().any(|x| x == m), "{m} listed: {methods:?}");
    }
    assert_eq!(methods.len(), methods.iter().collect::<HashSet<_>>().len(), "no method twice: {methods:?}");

    // signAlgorithms: OIDs, and (S) algoParams an array of strings, one per algorithm.
    let algos = strings(&info["signAlgorithms"]["algos"], "signAlgorithms.algos");
    assert!(algos.iter().all(|a| is_oid(a)), "{algos:?}");
    assert!(algos.iter().any(|a| a == ECDSA_SHA256));
    let params = strings(&info["signAlgorithms"]["algoParams"], "signAlgorithms.algoParams");
    assert_eq!(params.len(), algos.len(), "one algoParams entry per algorithm");
    for p in &params {
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, p).unwrap_or_else(|_| panic!("algoParams {p:?} is not base64"));
    }

    // documentTypes: MIME types.
    if let Some(types) = info.get("documentTypes").filter(|v| !v.is_null()) {
        for t in strings(types, "documentTypes") {
            assert!(t.split_once('/').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()), "documentTypes {t}");
        }
    }

    // signature_formats with envelope_properties (S requires it), one list per format.
    let formats = strings(&info["signature_formats"]["formats"], "signature_formats.formats");
    assert!(formats.iter().all(|f| ["C", "X", "P", "J"].contains(&f.as_str())), "{formats:?}");
    let envelopes = info["signature_formats"]["envelope_properties"].as_array().expect("envelope_properties is required");
    assert_eq!(envelopes.len(), formats.len());
    for e in envelopes {
        strings(e, "envelope_properties[]");
    }
    optional_bool(&info["signature_formats"], "allowMix");
    // K and S: conformance_levels is required.
    assert!(!strings(&info["conformance_levels"], "conformance_levels").is_empty());
    oauth_base
}

/// K's checks on a `credentials/info` object (csc-api-2.2.md §7).
fn check_credential_info(c: &Value) {
    assert!(["enabled", "disabled"].contains(&str_of(&c["key"], "status")), "{c}");
    assert!(!strings(&c["key"]["algo"], "key.algo").is_empty());
    assert!(c["key"]["len"].is_u64(), "{c}");
    assert!(["valid", "expired", "revoked", "suspended"].contains(&str_of(&c["cert"], "status")), "{c}");
    for cert in strings(&c["cert"]["certificates"], "cert.certificates") {
        // Java's strict decoder: standard alphabet, padded, no line breaks.
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &cert).expect("standard base64 certificate");
    }
    for key in ["validFrom", "validTo"] {
        let t = str_of(&c["cert"], key);
        assert!(t.len() == 15 && t.ends_with('Z') && t[..14].bytes().all(|b| b.is_ascii_digit()), "{key} {t}");
    }
    // New in 2.2: OIDs when the certificate has them, absent otherwise (the built-in CA
    // writes neither extension).
    for key in ["qcStatements", "policy"] {
        if let Some(v) = c["cert"].get(key) {
            assert!(strings(v, key).iter().all(|o| is_oid(o)), "{c}");
        }
    }
    // K requires `auth` and its `objects` key, and refuses `implicit`.
    assert!(["explicit", "oauth2code"].contains(&str_of(&c["auth"], "mode")), "{c}");
    assert!(c["auth"].get("objects").is_some(), "auth.objects is required by K: {c}");
    assert!(["1", "2"].contains(&c["SCAL"].as_str().unwrap_or("1")), "{c}");
    assert!(c["multisign"].is_u64(), "{c}");
}

/// The credential the first signing flow uses: the operator's (`admin credential add`).
/// [`a_strict_2_2_client_creates_signs_with_and_deletes_a_credential`] has a 2.2 client
/// create its own instead, and delete it at the end.
fn credential_for_signing(env: &Env) -> String {
    env.add_credential("alice", &["--key", "ecdsa-p256", "--auth-mode", "oauth2code"])["credentialID"].as_str().unwrap().to_string()
}

/// An HTTP client trusting only the test's TLS certificate.
fn tls_client(cert: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(cert).unwrap()).unwrap();
    reqwest::Client::builder().tls_certs_only([ca]).build().unwrap()
}

/// A home directory whose NSS database trusts the server certificate, for Chromium.
fn chromium_home(env: &Env, cert: &Path) -> PathBuf {
    let home = env.file("chromium-home");
    let nss = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nss).unwrap();
    let db = format!("sql:{}", nss.display());
    run(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]));
    run(Command::new("certutil").args(["-A", "-d", &db, "-n", "cloudsign-tls", "-t", "CP,,", "-i"]).arg(cert));
    home
}

/// Log in and consent in Chromium (`interop/browser/consent.mjs`); secrets in the environment.
fn drive(home: &Path, authorize_url: &str) -> Value {
    drive_as(home, authorize_url, Some(PIN), "rar2025")
}

/// [`drive`] with the consent page's PIN (`None`: a page without one), screenshots under `shots`.
fn drive_as(home: &Path, authorize_url: &str, pin: Option<&str>, shots: &str) -> Value {
    let root = workspace();
    assert!(
        root.join("interop/browser/node_modules/playwright-core").exists(),
        "playwright-core is missing: run scripts/test.sh (npm ci in interop/browser)"
    );
    let artifacts = root.join("target/test-artifacts/csc22");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = Command::new("node")
        .arg(root.join("interop/browser/consent.mjs"))
        .env("HOME", home)
        .env("CS_AUTHORIZE_URL", authorize_url)
        .env("CS_REDIRECT_URI", REDIRECT_URI)
        .env("CS_USER", "alice")
        .env("CS_PASSWORD", PASSWORD)
        .env("CS_PIN", pin.unwrap_or_default())
        .env("CS_SCREENSHOTS", artifacts.join(shots))
        .output()
        .expect("node must be installed");
    assert!(
        out.status.success(),
        "browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line from the driver")
}

/// A TLS certificate and key for `https://127.0.0.1` (the 2.2 clients want the service on https).
fn tls_pair(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (env.file("tls.crt"), env.file("tls.key"));
    cloudsign_test_support::pki::self_signed_p256(
        &key,
        &cert,
        "/CN=localhost",
        1,
        &["subjectAltName=IP:127.0.0.1,DNS:localhost", "basicConstraints=critical,CA:FALSE"],
    );
    (cert, key)
}

async fn form_post(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http.post(url).header("content-type", "application/x-www-form-urlencoded").body(query(form)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json::<Value>().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_strict_2_2_client_reads_info_authorizes_with_rar_2025_and_signs() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let (client, _) = add_client(&env, "CSC 2.2 wallet", &["--public"]);
    let (cert, key) = tls_pair(&env);
    let id = credential_for_signing(&env);
    let server = env.start_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let http = tls_client(&cert);
    let mut api = Api { http: http.clone(), base: format!("{}/csc/v2", server.url), token: None };

    // 1. info, as K sends it ({"lang": ...}) and as G sends it ({}).
    let info = api.ok("info", json!({"lang": "en-US"})).await;
    let oauth = check_info(&info, &server.url);
    assert_eq!(api.ok("info", json!({})).await, info);
    // `[on_demand]` is off here: its methods are not offered.
    let methods = strings(&info["methods"], "methods");
    assert!(!methods.iter().any(|m| m == "credentials/create" || m == "credentials/delete"), "{methods:?}");
    let logo = http.get(str_of(&info, "logo")).send().await.unwrap();
    assert_eq!(logo.status(), 200, "the logo URI answers");
    assert!(logo.headers()["content-type"].to_str().unwrap().starts_with("image/"));
    // K derives the endpoints from `oauth2`; the RFC 8414 metadata agrees and lists the 2025 type.
    let meta: Value =
        http.get(format!("{}/.well-known/oauth-authorization-server", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["authorization_endpoint"], format!("{oauth}/oauth2/authorize"));
    assert_eq!(meta["token_endpoint"], format!("{oauth}/oauth2/token"));
    assert!(meta["authorization_details_types_supported"].as_array().unwrap().contains(&json!(RAR_2025)), "{meta}");

    // 2. The service-level calls, with the explicit nulls K's encoder writes.
    api.login("alice").await;
    let list = api
        .ok(
            "credentials/list",
            json!({"credentialInfo": true, "certificates": "chain", "certInfo": true, "authInfo": true, "onlyValid": true,
                   "lang": null, "clientData": null}),
        )
        .await;
    assert_eq!(list["credentialIDs"], json!([id]));
    assert_eq!(list["onlyValid"], true, "onlyValid was applied: {list}");
    let listed = &list["credentialInfos"][0];
    assert_eq!(listed["credentialID"], id.as_str());
    check_credential_info(listed);
    let info_c = api
        .ok("credentials/info", json!({"credentialID": id, "certificates": "single", "certInfo": true, "authInfo": true, "lang": null}))
        .await;
    check_credential_info(&info_c);
    assert!(info_c["cert"].get("qcStatements").is_none() && info_c["cert"].get("policy").is_none(), "the built-in CA writes neither");
    let cert_b64 = info_c["cert"]["certificates"][0].as_str().unwrap().to_string();

    // 3. Authorization with the 2025 RAR type, integer numSignatures and hashType.
    let doc = b"%PDF-1.7 a contract a 2.2 wallet signs".to_vec();
    let digest = sha256(&doc);
    let details = json!([{"type": RAR_2025, "credentialID": id, "numSignatures": 1, "hashAlgorithmOID": SHA256,
        "documentDigests": [{"hash": b64(&digest), "label": "Contract.pdf", "hashType": "DTBSR"}]}])
    .to_string();
    let (verifier, challenge) = pkce(&env.dir);
    let q = query(&[
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", REDIRECT_URI),
        ("state", "rar-2025"),
        ("authorization_details", &details),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        // K always adds it; the service shows its login page anyway.
        ("prompt", "login"),
    ]);
    let home = chromium_home(&env, &cert);
    let out = drive(&home, &format!("{oauth}/oauth2/authorize?{q}"));
    let shown = out["consentText"].as_str().unwrap();
    assert!(shown.contains("Contract.pdf") && shown.contains(&b64(&digest)), "the page shows what is signed: {shown}");
    let p = location_params(out["redirect"].as_str().unwrap());
    assert_eq!(p["state"], "rar-2025");

    // K re-sends authorization_details with the code.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", p["code"].as_str()),
        ("client_id", client.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
        ("authorization_details", details.as_str()),
    ];
    let (s, token) = form_post(&http, &format!("{oauth}/oauth2/token"), &form).await;
    assert_eq!(s, 200, "{token}");
    // K's token parser: credentialID and an integer numSignatures, at top level and in the
    // first detail, which also carries documentDigests and hashAlgorithmOID; the type and
    // hashType come back as sent.
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["credentialID"], id.as_str());
    assert_eq!(token["numSignatures"], 1);
    let d = &token["authorization_details"][0];
    assert_eq!(d["type"], RAR_2025, "{token}");
    assert_eq!(d["credentialID"], id.as_str());
    assert!(d["numSignatures"].is_u64() && d["numSignatures"] == 1, "{token}");
    assert_eq!(d["hashAlgorithmOID"], SHA256);
    assert_eq!(d["documentDigests"][0]["hash"], b64(&digest));
    assert_eq!(d["documentDigests"][0]["hashType"], "DTBSR");
    assert_eq!(d["documentDigests"][0]["label"], "Contract.pdf");

    // 4. signHash as K sends it (signAlgoParams null, operationMode "S"), with the credential
    //    token as the bearer and no SAD.
    let signer =
        Api { http: http.clone(), base: format!("{}/csc/v2", server.url), token: token["access_token"].as_str().map(String::from) };
    let v = signer
        .ok(
            "signatures/signHash",
            json!({"credentialID": id, "hashes": [b64(&digest)], "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256,
                   "signAlgoParams": null, "operationMode": "S", "clientData": null}),
        )
        .await;
    let sigs = strings(&v["signatures"], "signatures");
    assert_eq!(sigs.len(), 1, "one signature per hash");
    openssl_verify_signature(&env.dir, &cert_b64, &doc, &unb64(&sigs[0]), "sha256", "ecdsa");
    // numSignatures was 1: the token is spent.
    let (s, again) = signer
        .post(
            "signatures/signHash",
            json!({"credentialID": id, "hashes": [b64(&digest)], "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256}),
        )
        .await;
    assert_eq!(s, 400, "{again}");
}

/// The same service still answers the 2.0.0.2 forms: the RAR type `credential` without
/// numSignatures, a numSignatures given as a decimal string, and a lowercase hashType
/// (Data Model spelling) echoed as sent; an unknown hashType and the 2.2 management scopes,
/// which this service offers only with `[on_demand]` enabled (here it is not), are refused
/// at the authorization endpoint.
#[tokio::test]
async fn rar_forms_of_2_0_and_2_2_are_both_accepted() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let id =
        env.add_credential("alice", &["--key", "ecdsa-p256", "--auth-mode", "oauth2code"])["credentialID"].as_str().unwrap().to_string();
    let (client, secret) = add_client(&env, "Mixed app", &["--confidential"]);
    let secret = secret.unwrap();
    let server = env.start();
    let digest = sha256(b"doc");
    let par = |detail: Value| {
        let details = json!([detail]).to_string();
        let (client, secret, server) = (client.clone(), secret.clone(), &server);
        async move {
            oauth_post(
                server,
                "pushed_authorize",
                &[("response_type", "code"), ("redirect_uri", REDIRECT_URI), ("authorization_details", &details)],
                Some((&client, &secret)),
            )
            .await
        }
    };
    let base = json!({"credentialID": id, "hashAlgorithmOID": SHA256, "documentDigests": [{"hash": b64(&digest)}]});
    let with = |extra: Value| {
        let mut d = base.clone();
        d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        d
    };
    for ok in [
        with(json!({"type": "credential"})),
        with(json!({"type": RAR_2025, "numSignatures": "1"})),
        with(json!({"type": RAR_2025, "numSignatures": 1, "documentDigests": [{"hash": b64(&digest), "hashType": "sdr"}]})),
    ] {
        let (s, v) = par(ok.clone()).await;
        assert_eq!(s, 201, "{ok}: {v}");
    }
    for (bad, why) in [
        (with(json!({"type": RAR_2025, "documentDigests": [{"hash": b64(&digest), "hashType": "PDF"}]})), "hashType"),
        (with(json!({"type": RAR_2025, "numSignatures": "one"})), "numSignatures"),
        (with(json!({"type": "https://cloudsignatureconsortium.org/2024/credential"})), "type"),
        (json!({"type": "https://cloudsignatureconsortium.org/2025/credential-deletion", "credentialID": id}), "deletion"),
    ] {
        let (s, v) = par(bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(v["error_description"].as_str().unwrap().contains(why), "{why}: {v}");
    }
    // The management scopes are recognised, and refused as not offered.
    let (s, v) = oauth_post(
        &server,
        "pushed_authorize",
        &[("response_type", "code"), ("redirect_uri", REDIRECT_URI), ("scope", "credential-creation")],
        Some((&client, &secret)),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("creation"), "{v}");
}

/// The 2025 RAR types of credential creation and deletion (csc-api-2.2.md §4).
const RAR_CREATION_2025: &str = "https://cloudsignatureconsortium.org/2025/credential-creation";
const RAR_DELETION_2025: &str = "https://cloudsignatureconsortium.org/2025/credential-deletion";

/// `oauth2/pushed_authorize` for a public client (RFC 9126 §2: its `client_id` in the form),
/// then the authorization URL that carries only `client_id` and `request_uri`; returns the
/// URL and the PKCE verifier.
async fn pushed(http: &reqwest::Client, env: &Env, oauth: &str, client: &str, state: &str, details: &str) -> (String, String) {
    let (verifier, challenge) = pkce(&env.dir);
    let form = [
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT_URI),
        ("state", state),
        ("authorization_details", details),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (s, par) = form_post(http, &format!("{oauth}/oauth2/pushed_authorize"), &form).await;
    assert_eq!(s, 201, "{par}");
    assert!(par["expires_in"].is_u64(), "{par}");
    let q = query(&[("client_id", client), ("request_uri", str_of(&par, "request_uri"))]);
    (format!("{oauth}/oauth2/authorize?{q}"), verifier)
}

/// The code exchange as K makes it (re-sending `authorization_details`); the token response.
async fn exchange(http: &reqwest::Client, oauth: &str, client: &str, redirect: &str, state: &str, verifier: &str, details: &str) -> Value {
    let p = location_params(redirect);
    assert_eq!(p.get("state").map(String::as_str), Some(state), "{redirect}");
    let code = p.get("code").unwrap_or_else(|| panic!("no code: {redirect}"));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", client),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
        ("authorization_details", details),
    ];
    let (s, token) = form_post(http, &format!("{oauth}/oauth2/token"), &form).await;
    assert_eq!(s, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer", "{token}");
    assert!(token["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{token}");
    token
}

/// A DER certificate (standard base64) as a PEM file.
fn pem_file(env: &Env, name: &str, cert_b64: &str) -> PathBuf {
    let der = env.file(&format!("{name}.der"));
    std::fs::write(&der, unb64(cert_b64)).unwrap();
    let pem = env.file(&format!("{name}.pem"));
    run(Command::new("openssl").args(["x509", "-inform", "DER", "-in"]).arg(&der).arg("-out").arg(&pem));
    pem
}

/// The certificate's status from the service's OCSP responder (over TLS, with our client),
/// read and verified by `openssl ocsp` against the service's root.
async fn ocsp_status(env: &Env, http: &reqwest::Client, server: &str, cert: &Path) -> String {
    let (issuing, root) = write_ca(env);
    let request = env.file("ocsp-request.der");
    run(Command::new("openssl").args(["ocsp", "-no_nonce", "-issuer"]).arg(&issuing).arg("-cert").arg(cert).arg("-reqout").arg(&request));
    let body = std::fs::read(&request).unwrap();
    let resp = http.post(format!("{server}/ocsp")).header("content-type", "application/ocsp-request").body(body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let response = env.file("ocsp-response.der");
    std::fs::write(&response, resp.bytes().await.unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(&issuing)
        .arg("-cert")
        .arg(cert)
        .arg("-respin")
        .arg(&response)
        .arg("-CAfile")
        .arg(&root)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("Response verify OK"), "{text}");
    text
}

/// A 2.2 client that brings its own credential: with the 2025 RAR types, through the OAuth
/// pages in headless Chromium over TLS, it obtains a creation token (PAR), creates the
/// credential, authorizes one signature with the credential type (plain authorize), signs
/// (openssl verifies against the returned certificate), obtains a deletion token (PAR) and
/// deletes; then the certificate is revoked in the service's OCSP responder and the one-shot
/// tokens are spent. Each token reaches its own method only.
#[tokio::test]
async fn a_strict_2_2_client_creates_signs_with_and_deletes_a_credential() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let (client, _) = add_client(&env, "CSC 2.2 wallet", &["--public"]);
    let (cert, key) = tls_pair(&env);
    let cfg = env.file("on-demand.toml");
    std::fs::write(
        &cfg,
        "[on_demand]
enabled = true
subject_from_request = true
certificate_minutes = 20
token_seconds = 120
",
    )
    .unwrap();
    let env = env.with_env("CLOUDSIGN_CONFIG", cfg.to_str().unwrap());
    let server = env.start_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let http = tls_client(&cert);
    let csc = |token: Option<&str>| Api { http: http.clone(), base: format!("{}/csc/v2", server.url), token: token.map(String::from) };
    let home = chromium_home(&env, &cert);

    // 1. info, with create and delete among the methods; the metadata names the 2025 types.
    let info = csc(None).ok("info", json!({"lang": "en-US"})).await;
    let oauth = check_info(&info, &server.url);
    let methods = strings(&info["methods"], "methods");
    for m in ["credentials/create", "credentials/delete"] {
        assert!(methods.iter().any(|x| x == m), "{m} listed: {methods:?}");
    }
    let meta: Value =
        http.get(format!("{}/.well-known/oauth-authorization-server", server.url)).send().await.unwrap().json().await.unwrap();
    for t in [RAR_2025, RAR_CREATION_2025, RAR_DELETION_2025] {
        assert!(meta["authorization_details_types_supported"].as_array().unwrap().contains(&json!(t)), "{t}: {meta}");
    }
    for scope in ["credential-creation", "credential-deletion"] {
        assert!(meta["scopes_supported"].as_array().unwrap().contains(&json!(scope)), "{scope}: {meta}");
    }

    // 2. Creation: RAR credential-creation with subjectData in OIDC claim names (ETSI), by PAR.
    let creation = json!([{"type": RAR_CREATION_2025,
        "credentialCreationRequest": {"subjectData": {"given_name": "Alice", "family_name": "Example", "address": {"country": "BE"}}}}])
    .to_string();
    let (url, verifier) = pushed(&http, &env, &oauth, &client, "create", &creation).await;
    let out = drive_as(&home, &url, None, "create2025");
    let shown = out["consentText"].as_str().unwrap();
    assert!(shown.contains("create a signing credential") && shown.contains("Alice Example"), "the page says what is granted: {shown}");
    let token = exchange(&http, &oauth, &client, out["redirect"].as_str().unwrap(), "create", &verifier, &creation).await;
    assert_eq!(token["scope"], "credential-creation", "{token}");
    assert_eq!(token["authorization_details"], serde_json::from_str::<Value>(&creation).unwrap(), "echoed as sent: {token}");
    assert!((1..=120).contains(&token["expires_in"].as_u64().unwrap()), "a short-lived grant: {token}");
    assert!(token.get("refresh_token").is_none(), "{token}");
    let maker = csc(token["access_token"].as_str());
    // It reaches credentials/create only.
    maker.err("credentials/list", json!({"credentialInfo": true}), 401, "invalid_token", "credentials/create only").await;

    // 3. credentials/create, as K would send it: the subject comes with the token.
    let created = maker
        .ok("credentials/create", json!({"credentialCreationRequest": {}, "certificates": "chain", "certInfo": true, "authInfo": true}))
        .await;
    let id = str_of(&created, "credentialID").to_string();
    check_credential_info(&created);
    let cert_b64 = created["cert"]["certificates"][0].as_str().unwrap().to_string();
    let leaf = pem_file(&env, "on-demand", &cert_b64);
    let subject = run(Command::new("openssl").args(["x509", "-noout", "-subject", "-in"]).arg(&leaf));
    assert!(subject.contains("CN = Alice Example"), "the subject the signer approved: {subject}");
    // One-shot: the token is spent.
    maker.err("credentials/create", json!({"credentialCreationRequest": {}}), 401, "expired_token", "").await;

    // 4. A signature with the new credential: the 2025 credential type, integer
    //    numSignatures, hashType, by plain authorize; the PIN is the account password.
    let doc = b"%PDF-1.7 a document signed with an on-demand credential".to_vec();
    let digest = sha256(&doc);
    let details = json!([{"type": RAR_2025, "credentialID": id, "numSignatures": 1, "hashAlgorithmOID": SHA256,
        "documentDigests": [{"hash": b64(&digest), "label": "Order.pdf", "hashType": "DTBSR"}]}])
    .to_string();
    let (verifier, challenge) = pkce(&env.dir);
    let q = query(&[
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", REDIRECT_URI),
        ("state", "sign"),
        ("authorization_details", &details),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("prompt", "login"),
    ]);
    let out = drive_as(&home, &format!("{oauth}/oauth2/authorize?{q}"), Some(PASSWORD), "sign2025");
    let shown = out["consentText"].as_str().unwrap();
    assert!(shown.contains("Order.pdf") && shown.contains(&b64(&digest)), "{shown}");
    let token = exchange(&http, &oauth, &client, out["redirect"].as_str().unwrap(), "sign", &verifier, &details).await;
    assert_eq!(token["credentialID"], id.as_str());
    assert_eq!(token["numSignatures"], 1);
    let d = &token["authorization_details"][0];
    assert_eq!((&d["type"], &d["credentialID"], &d["numSignatures"]), (&json!(RAR_2025), &json!(id), &json!(1)), "{token}");
    assert_eq!(d["documentDigests"][0]["hashType"], "DTBSR");
    let signer = csc(token["access_token"].as_str());
    let v = signer
        .ok(
            "signatures/signHash",
            json!({"credentialID": id, "hashes": [b64(&digest)], "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256,
                   "signAlgoParams": null, "operationMode": "S", "clientData": null}),
        )
        .await;
    let sigs = strings(&v["signatures"], "signatures");
    assert_eq!(sigs.len(), 1);
    openssl_verify_signature(&env.dir, &cert_b64, &doc, &unb64(&sigs[0]), "sha256", "ecdsa");
    // A credential token cannot delete its credential.
    signer.err("credentials/delete", json!({"credentialID": id}), 400, "invalid_request", "does not allow deleting").await;

    // 5. Deletion: RAR credential-deletion naming the new credential, by PAR.
    let deletion = json!([{"type": RAR_DELETION_2025, "credentialID": id}]).to_string();
    let (url, verifier) = pushed(&http, &env, &oauth, &client, "delete", &deletion).await;
    let out = drive_as(&home, &url, None, "delete2025");
    let shown = out["consentText"].as_str().unwrap();
    assert!(shown.contains(&format!("delete credential {id}")), "the page says what is granted: {shown}");
    let token = exchange(&http, &oauth, &client, out["redirect"].as_str().unwrap(), "delete", &verifier, &deletion).await;
    assert_eq!(token["scope"], "credential-deletion", "{token}");
    assert_eq!(token["credentialID"], id.as_str(), "{token}");
    assert_eq!(token["authorization_details"], serde_json::from_str::<Value>(&deletion).unwrap(), "echoed as sent: {token}");
    let remover = csc(token["access_token"].as_str());
    remover.err("credentials/info", json!({"credentialID": id}), 401, "invalid_token", "credentials/delete only").await;
    let (s, v) = remover.post("credentials/delete", json!({"credentialID": id})).await;
    assert_eq!(s, 204, "{v}");
    assert!(v.is_null(), "204 has no body: {v}");
    remover.err("credentials/delete", json!({"credentialID": id}), 401, "expired_token", "").await;

    // 6. Gone: the certificate is revoked in OCSP, signing and info refuse or say revoked.
    let status = ocsp_status(&env, &http, &server.url, &leaf).await;
    assert!(status.contains(": revoked"), "{status}");
    let (s, v) = signer
        .post(
            "signatures/signHash",
            json!({"credentialID": id, "hashes": [b64(&digest)], "hashAlgorithmOID": SHA256, "signAlgo": ECDSA_SHA256}),
        )
        .await;
    assert!(s == 400 || s == 401, "{v}");
    let mut owner = csc(None);
    owner.login("alice").await;
    let after = owner.ok("credentials/info", json!({"credentialID": id, "certInfo": true})).await;
    assert_eq!((&after["cert"]["status"], &after["key"]["status"]), (&json!("revoked"), &json!("disabled")), "{after}");
}

/// The checks of [`check_info`] can fail: the shapes the reference says strict clients
/// reject, each applied to a copy of a valid answer.
#[test]
fn the_strict_checks_reject_what_2_2_clients_reject() {
    let good = json!({
        "specs": "2.2.0.0", "name": "n", "logo": "https://s.example/logo.svg", "region": "EU", "lang": "en-US",
        "description": "d", "authType": ["basic", "oauth2code"], "oauth2": "https://s.example", "supportsRar": true,
        "supportedHashTypes": ["2.16.840.1.101.3.4.2.1"], "methods": ["credentials/list", "credentials/info", "signatures/signHash"],
        "signAlgorithms": {"algos": [ECDSA_SHA256], "algoParams": [""]},
        "signature_formats": {"formats": ["C"], "envelope_properties": [["Detached"]]}, "conformance_levels": ["Ades-B-B"],
    });
    check_info(&good, "https://s.example");
    let bad: [(&str, Value); 10] = [
        ("specs", json!("2.0.0.2")),
        ("oauth2Issuer", json!("https://s.example")),
        ("oauth2Servers", json!([{"baseUri": "https://s.example", "authType": ["oauth2code"]}])),
        ("oauth2", json!("http://s.example")),
        ("supportedHashTypes", Value::Null),
        ("methods", json!(["credentials/list", "credentials/info", "signatures/signHash", "oauth2/pushed_authorize"])),
        ("signAlgorithms", json!({"algos": [ECDSA_SHA256], "algoParams": [null]})),
        ("signature_formats", json!({"formats": ["C"]})),
        ("conformance_levels", Value::Null),
        ("logo", json!("not a uri")),
    ];
    for (key, value) in bad {
        let mut info = good.clone();
        info[key] = value;
        let refused = std::panic::catch_unwind(|| check_info(&info, "https://s.example")).is_err();
        assert!(refused, "an info with this {key} must be refused: {info}");
    }
}
