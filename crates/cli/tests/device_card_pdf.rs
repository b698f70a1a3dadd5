//! Issue 18, scenario [2], end to end: a PDF signed at PAdES B-LT with the signer's smart card.
//!
//! SoftHSM2 is the card (its key pair made inside the token by OpenSC's `pkcs11-tool`), the
//! bridge agent `cloudsign device` holds it and is paired with a running service whose
//! `public_url` is set (so the certificates name its OCSP responder and CRLs, and B-LT must
//! embed them), and an application signs a PDF through the CSC API with `cloudsign sign
//! --level B-LT`: once synchronously (signHash waits for the card), once with `--async`
//! (signHash in mode A, then signPolling until the card has answered). The signer's step on the
//! agent — "y", then the card PIN — is the test's, on the agent's stdin.
//!
//! Judged by others than us: pyHanko (`sign validate` against the root, online, and
//! `adesverify` offline after the service has stopped, so only the file's DSS can answer),
//! `cloudsign verify --offline`, and OpenSC's `pkcs11-tool`, which shows the card's private key
//! sensitive and never extractable, and whose public key is the certificate's.
//!
//! Needs the pinned virtualenv of `scripts/test.sh` (`CLOUDSIGN_PYTHON`), softhsm2 and
//! opensc.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::agent::{Running, card_service, pair};
use common::hsm;
use common::*;
use serde_json::{Value, json};

const LTV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/ltv_offline.py");

/// The `Access:` attributes `pkcs11-tool --list-objects` prints for the private key `label`.
fn access_of(objects: &str, label: &str) -> Vec<String> {
    let block = objects
        .split("Private Key Object")
        .find(|b| b.lines().any(|l| l.trim() == format!("label:      {label}")))
        .unwrap_or_else(|| panic!("no private key {label}: {objects}"));
    let line = block.lines().find_map(|l| l.trim().strip_prefix("Access:")).unwrap_or_else(|| panic!("no Access line: {block}"));
    line.split(',').map(|a| a.trim().to_string()).collect()
}

#[tokio::test]
async fn a_pdf_signed_at_b_lt_on_the_card_validates_in_pyhanko() {
    let (env, conf) = card_service("");
    let server = env.start();
    let dir = env.dir.join("agent");
    let credential = pair(&env, &server, &conf, &dir, "card-ec");
    let (_, root) = write_ca(&env);

    // The card's key is the certificate's, and it never leaves the card: OpenSC reads the
    // token's attributes (CKA_SENSITIVE true, CKA_EXTRACTABLE false: PKCS#11 v2.40 §4.9).
    let access = access_of(&hsm::private_keys(&conf), "card-ec");
    assert!(access.iter().any(|a| a == "sensitive"), "{access:?}");
    assert!(access.iter().any(|a| a == "never extractable"), "{access:?}");
    assert!(!access.iter().any(|a| a == "extractable"), "the card's key is not extractable: {access:?}");
    let card_pub = env.file("card-pub.der");
    run(Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--module", hsm::MODULE, "--token-label", hsm::TOKEN, "--read-object", "--type", "pubkey", "--label", "card-ec", "-o"])
        .arg(&card_pub));
    let mut api = Api::new(&server);
    api.login("alice").await;
    let info = api.ok("credentials/info", json!({"credentialID": credential, "certificates": "single"})).await;
    let cert = env.file("alice-card.der");
    std::fs::write(&cert, unb64(info["cert"]["certificates"][0].as_str().unwrap())).unwrap();
    let cert_pub = run(Command::new("openssl").args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"]).arg(&cert));
    let card_pub = run(Command::new("openssl").args(["pkey", "-pubin", "-inform", "DER", "-in"]).arg(&card_pub));
    assert_eq!(cert_pub, card_pub, "the certificate's key is the card's");

    let input = env.file("contract.pdf");
    std::fs::write(&input, one_page_pdf("signed with alice's smart card")).unwrap();
    let mut signed = Vec::new();
    for (name, extra) in [("sync", &[][..]), ("async", &["--async"][..])] {
        let running = Running::start(&conf, &dir, &format!("y\n{}\n", hsm::PIN));
        running.wait_for("connected to", 1);
        let out = env.file(&format!("contract-{name}.pdf"));
        let (ok, err) = sign_to(&env, &server.url, "alice", &credential, &input, &out, &[&["--level", "B-LT"], extra].concat());
        assert!(ok, "cloudsign sign {extra:?}: {err}\nagent: {}", running.log());
        assert!(err.contains("PAdES B-LT"), "{err}");
        let (ok, log) = running.wait();
        assert!(ok, "the agent signed one request: {log}");
        assert!(log.contains("Sign? [y/N]"), "the agent asked the signer: {log}");
        assert!(!log.contains(hsm::PIN) && !err.contains(hsm::PIN), "no PIN echoed: {log}{err}");
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.starts_with(&std::fs::read(&input).unwrap()), "incremental updates only");
        assert!(String::from_utf8_lossy(&bytes).contains("/DSS"), "the file has a Document Security Store");
        signed.push(out);
    }

    // Online, as any reader would: intact, trusted, time-stamped.
    for pdf in &signed {
        let v = run(Command::new(venv_tool("pyhanko")).args(["sign", "validate", "--trust"]).arg(&root).arg("--trust-replace").arg(pdf));
        assert!(v.contains(":INTACT:TRUSTED"), "pyhanko {pdf:?}: {v}");
        assert!(!v.contains("SUSPICIOUS"), "pyhanko {pdf:?}: {v}");
    }

    // Audited: one device request and one signed answer per signature, and the asynchronous
    // one delivered by signPolling.
    let audit = env.admin(&["audit", "--json"], "");
    let events: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let count = |event: &str, outcome: &str| {
        events.iter().filter(|e| e["event"] == event && e["outcome"].as_str().unwrap_or_default().eq_ignore_ascii_case(outcome)).count()
    };
    assert_eq!(count("device.request", "ok"), 2, "{audit}");
    assert_eq!(count("device.answer", "ok"), 2, "{audit}");
    assert_eq!(count("signatures.signPolling", "ok"), 1, "{audit}");
    drop(server);

    // Offline, with the service gone: the DSS alone answers for the signer's, the CA's and the
    // TSA's revocation status (pyHanko's adesverify with fetching off; `cloudsign verify`).
    for pdf in &signed {
        let out = Command::new(PathBuf::from(std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON")))
            .arg(LTV)
            .args(["adesverify", "--trust"])
            .arg(&root)
            .arg("--trust-replace")
            .arg(pdf)
            .env("PYTHONWARNINGS", "ignore")
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success() && stdout.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,EXTENDED_WITH_LTA_UPDATES"),
            "pyhanko adesverify (offline) {pdf:?}: {stdout}{stderr}"
        );
        assert!(!stderr.contains("HTTP connection was attempted"), "nothing was fetched: {stderr}");
        let out = env.command().arg("verify").arg(pdf).arg("--trust").arg(&root).arg("--offline").output().unwrap();
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && report.contains("Signature1 (PAdES): TOTAL-PASSED"), "{pdf:?}: {report}");
        assert!(report.contains("level:         B-LT\n"), "{report}");
        assert!(report.contains("CN=alice,O=cloudsign — good (embedded)"), "{report}");
    }
}
