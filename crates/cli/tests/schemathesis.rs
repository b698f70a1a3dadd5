//! The OpenAPI contract (`/openapi.json`) against the live server: schemathesis, a property-based
//! API tester nobody here wrote, generates valid and invalid requests for every operation of the
//! document and checks each answer against it: no 5xx, only documented statuses, content types
//! and headers, and bodies that match the documented schema.
//!
//! Authentication is set up as a client would: a user, a credential, a bearer token from
//! `auth/login`, given to schemathesis per security scheme (Basic for `auth/login`, Bearer for the
//! rest) through its configuration file and the environment, never argv. The credential's id is
//! offered as a value of every `credentialID` member, so requests reach past "unknown credential".
//!
//! Needs the pinned virtualenv that `scripts/test.sh` creates (`CLOUDSIGN_PYTHON` points at its
//! interpreter; schemathesis is pinned in `interop/requirements.txt`). Bounded: a fixed seed, a
//! few examples per operation, and a time budget well under two minutes.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::*;

fn st() -> PathBuf {
    let python = std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON must name the pinned virtualenv's python: run scripts/test.sh");
    // The `st` entry point of the same virtualenv.
    PathBuf::from(python).with_file_name("st")
}

/// The checks of issue 15: server errors and anything that contradicts the document.
const CHECKS: &str =
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance";

#[tokio::test]
async fn the_live_api_keeps_its_openapi_contract() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let credential = env.add_credential("alice", &["--key", "ecdsa-p256"]);
    let credential_id = credential["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let token = api.token.clone().unwrap();

    // The document is served and is OpenAPI 3.1; the validation API's old address still works.
    let http = reqwest::Client::new();
    let doc: serde_json::Value = http.get(format!("{}/openapi.json", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0", "{doc}");
    let old: serde_json::Value = http.get(format!("{}/validation/v1/openapi.json", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(old, doc);

    let config = env.file("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[auth.openapi.basic]
username = "alice"
password = "${{CLOUDSIGN_ST_PASSWORD}}"

[auth.openapi.bearer]
bearer = "${{CLOUDSIGN_ST_TOKEN}}"

[dictionaries.credentials]
values = ["{credential_id}"]

[parameters]
"body.credentialID" = {{ dictionary = "credentials", probability = 0.5 }}
"#
        ),
    )
    .unwrap();

    // The DER bodies of /tsa and /ocsp are bytes like application/octet-stream: schemathesis
    // only needs to be told so.
    std::fs::write(
        env.file("cloudsign_st_hooks.py"),
        "import schemathesis\nschemathesis.serializer.alias([\"application/timestamp-query\", \"application/ocsp-request\"], \"application/octet-stream\")\n",
    )
    .unwrap();

    let started = Instant::now();
    let out = Command::new(st())
        .current_dir(env.file(""))
        .args(["--no-color", "--config-file"])
        .arg(&config)
        .arg("run")
        .arg(format!("{}/openapi.json", server.url))
        .args(["--checks", CHECKS])
        // Examples, boundary values and random data; the stateful phase needs links the document
        // does not declare.
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "10", "--seed", "15", "--workers", "2", "--max-time", "45"])
        // A redirect is the answer under test (oauth2/authorize, the flow pages), not a hop.
        .args(["--max-redirects", "0", "--request-timeout", "10"])
        .args(["--suppress-health-check", "all", "--generation-database", "none"])
        .env("CLOUDSIGN_ST_PASSWORD", PASSWORD)
        .env("CLOUDSIGN_ST_TOKEN", &token)
        .env("SCHEMATHESIS_HOOKS", "cloudsign_st_hooks")
        .env("PYTHONPATH", env.file(""))
        .output()
        .expect("run schemathesis");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}\nschemathesis took {:.1} s", elapsed.as_secs_f64());
    assert!(out.status.success(), "schemathesis found problems:\n{stdout}\n{stderr}\nserver log:\n{}", env.server_log());
    // It really exercised the API, the authenticated methods included.
    assert!(stdout.contains("/csc/v2/signatures/signHash"), "{stdout}");
    assert!(!env.server_log().contains("internal error"), "{}", env.server_log());
}
