//! `cloudsign verify` on signatures made by cloudsign and by other tools (pyHanko, openssl), with
//! test PKIs made here: the expected ETSI EN 319 102-1 indication for each case, and for the good
//! cases agreement with `pyhanko sign validate` / `openssl cms -verify`.
//!
//! Needs the pinned virtualenv of `scripts/test.sh` (`CLOUDSIGN_PYTHON`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cloudsign_test_support::pki::{ca_and_leaf, cms_sign, der};
use common::verify::{granted_ca, indication, tsl_xml, verify_json, xmlsec_sign};
use common::*;
use serde_json::Value;

/// `pyhanko sign addsig` into `field` with a local key, certificate and chain.
fn pyhanko_sign(field: &str, (key, cert, chain): (&Path, &Path, &Path), input: &Path, output: &Path) {
    run(Command::new(venv_tool("pyhanko")).args(["sign", "addsig", "--field", field, "pemder", "--key"]).arg(key).args([
        Path::new("--cert"),
        cert,
        Path::new("--chain"),
        chain,
        Path::new("--no-pass"),
        input,
        output,
    ]));
}

/// `cloudsign verify FILE --trust TRUST --json EXTRA`: (exit code, report).
fn verify(env: &Env, file: &Path, trust: &Path, extra: &[&str]) -> (i32, Value) {
    let (code, report, _) = verify_json(env, file, &[&["--trust", trust.to_str().unwrap()], extra].concat(), &[]);
    (code, report)
}

/// `cloudsign sign INPUT --out OUT` as alice with `credential`, `extra` options; it must succeed.
fn sign_as_alice(env: &Env, url: &str, credential: &str, input: &Path, out: &Path, extra: &[&str]) {
    let o = env
        .command()
        .arg("sign")
        .arg(input)
        .args(["--service", url, "--user", "alice", "--credential", credential])
        .args(extra)
        .arg("--out")
        .arg(out)
        .env("CLOUDSIGN_PASSWORD", PASSWORD)
        .env("CLOUDSIGN_PIN", PIN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[tokio::test]
async fn foreign_signatures_get_the_right_indication() {
    let env = Env::new(BIN, "sqlite");
    let dir = env.file("");
    let (ca, leaf, key) = ca_and_leaf(&dir, "foreign");
    let (other_ca, _, _) = ca_and_leaf(&dir, "other");

    // pyHanko signs a PDF with a local key: TOTAL-PASSED, as pyHanko itself judges it.
    let pdf = env.file("doc.pdf");
    std::fs::write(&pdf, one_page_pdf("signed by pyHanko")).unwrap();
    let signed = env.file("doc-pyhanko.pdf");
    pyhanko_sign("Sig1", (&key, &leaf, &ca), &pdf, &signed);
    let judged = run(Command::new(venv_tool("pyhanko")).args(["sign", "validate", "--trust"]).arg(&ca).arg("--trust-replace").arg(&signed));
    assert!(judged.contains("INTACT:TRUSTED"), "{judged}");
    let (code, r) = verify(&env, &signed, &ca, &["--offline"]);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}");
    assert_eq!(r["signatures"][0]["signer"], "CN=foreign Signer", "{r:#}");
    assert_eq!(r["signatures"][0]["pdf"]["covers_whole_file"], true);

    // Another trust anchor: no chain.
    let (code, r) = verify(&env, &signed, &other_ca, &["--offline"]);
    assert_eq!((code, indication(&r, 0)), (1, ("INDETERMINATE".into(), "NO_CERTIFICATE_CHAIN_FOUND".into())), "{r:#}");

    // A byte of the signed content changed: the digest no longer matches.
    let mut bytes = std::fs::read(&signed).unwrap();
    let at = bytes.windows(7).position(|w| w == b"pyHanko").unwrap();
    bytes[at] = b'P';
    let tampered = env.file("doc-tampered.pdf");
    std::fs::write(&tampered, &bytes).unwrap();
    let (code, r) = verify(&env, &tampered, &ca, &["--offline"]);
    assert_eq!((code, indication(&r, 0)), (1, ("TOTAL-FAILED".into(), "HASH_FAILURE".into())), "{r:#}");

    // Content appended after signing: the signature still holds for what it covers, and the
    // report says it does not cover the whole file.
    let appended = env.file("doc-appended.pdf");
    let mut more = std::fs::read(&signed).unwrap();
    more.extend_from_slice(b"\n% appended after signing\n");
    std::fs::write(&appended, &more).unwrap();
    let (_, r) = verify(&env, &appended, &ca, &["--offline"]);
    assert_eq!(r["signatures"][0]["pdf"]["covers_whole_file"], false, "{r:#}");

    // An incremental update that rotates the page after signing: the signed bytes are intact,
    // but the document shows something else; a second signature is a change signing allows.
    let rotated = env.file("doc-rotated.pdf");
    let base = std::fs::read(&signed).unwrap();
    let mut pdf = cloudsign_ades::pdf::Pdf::open(std::io::Cursor::new(base.clone())).unwrap();
    let (n, mut page) = pdf.first_page().unwrap();
    page.set("Rotate", cloudsign_ades::pdf::Obj::Int(90));
    let mut update = pdf.update();
    update.object(n, &cloudsign_ades::pdf::Obj::Dict(page));
    let tail = pdf.finish(update, Vec::new());
    std::fs::write(&rotated, [base.as_slice(), &tail].concat()).unwrap();
    let (code, r) = verify(&env, &rotated, &ca, &["--offline"]);
    assert_eq!((code, indication(&r, 0)), (1, ("INDETERMINATE".into(), "FORMAT_FAILURE".into())), "{r:#}");
    assert!(r["signatures"][0]["pdf"]["changes"][0].as_str().unwrap().contains("/Rotate"), "{r:#}");
    let twice = env.file("doc-twice.pdf");
    pyhanko_sign("Sig2", (&key, &leaf, &ca), &signed, &twice);
    let (code, r) = verify(&env, &twice, &ca, &["--offline"]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["signatures"].as_array().unwrap().len(), 2, "{r:#}");
    assert_eq!(r["signatures"][0]["pdf"]["later_revisions"], 1, "{r:#}");

    // openssl signs a detached CMS: TOTAL-PASSED, and HASH_FAILURE for another content.
    let data = env.file("data.bin");
    std::fs::write(&data, b"any file at all\n").unwrap();
    let p7s = env.file("data.p7s");
    cms_sign(&data, (&leaf, &key), None, &p7s);
    let (code, r) = verify(&env, &p7s, &ca, &["--offline", "--detached", data.to_str().unwrap()]);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}");
    let other = env.file("other.bin");
    std::fs::write(&other, b"another file\n").unwrap();
    let (code, r) = verify(&env, &p7s, &ca, &["--offline", "--detached", other.to_str().unwrap()]);
    assert_eq!((code, indication(&r, 0)), (1, ("TOTAL-FAILED".into(), "HASH_FAILURE".into())), "{r:#}");

    // A signature value with a flipped bit.
    let mut cms = std::fs::read(&p7s).unwrap();
    let n = cms.len();
    cms[n - 10] ^= 0x01;
    let bad = env.file("bad.p7s");
    std::fs::write(&bad, &cms).unwrap();
    let (code, r) = verify(&env, &bad, &ca, &["--offline", "--detached", data.to_str().unwrap()]);
    assert_eq!(code, 1, "{r:#}");
    assert_ne!(indication(&r, 0).0, "TOTAL-PASSED", "{r:#}");

    // Not a signature at all: a clear error, not a crash.
    let out = env.command().arg("verify").arg(&data).arg("--trust").arg(&ca).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is neither a PDF"), "{err}");
}

#[tokio::test]
async fn cloudsign_signatures_at_every_level() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let (_, root) = write_ca(&env);
    let pdf = env.file("contract.pdf");
    std::fs::write(&pdf, one_page_pdf("levels")).unwrap();
    let sign = |level: &str, out: &Path| sign_as_alice(&env, &server.url, &cred, &pdf, out, &["--level", level]);
    let files: Vec<(String, PathBuf)> =
        ["B-B", "B-T", "B-LT", "B-LTA"].iter().map(|l| (l.to_string(), env.file(&format!("c-{l}.pdf")))).collect();
    for (level, out) in &files {
        sign(level, out);
    }
    // XAdES (enveloped) and JAdES (detached) made by cloudsign, verified after the service stops.
    let xml = env.file("order.xml");
    std::fs::write(&xml, "<order xmlns=\"urn:example\"><item>1</item></order>").unwrap();
    let data = env.file("data.json");
    std::fs::write(&data, br#"{"amount": 42}"#).unwrap();
    let extra: Vec<(PathBuf, Vec<&str>, &str)> = vec![
        (env.file("order-signed.xml"), vec!["--format", "xades", "--level", "B-LT"], "B-LT"),
        (env.file("data.jws.json"), vec!["--format", "jades", "--level", "B-T"], "B-T"),
    ];
    for (out, args, _) in &extra {
        let input = if out.to_string_lossy().ends_with(".xml") { &xml } else { &data };
        sign_as_alice(&env, &server.url, &cred, input, out, args);
    }
    drop(server);
    for (out, _, level) in &extra {
        let detached = if out.to_string_lossy().ends_with(".json") { vec!["--detached", data.to_str().unwrap()] } else { vec![] };
        let (code, r) = verify(&env, out, &root, &[&["--offline"][..], &detached].concat());
        assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{out:?}: {r:#}");
        assert_eq!(r["signatures"][0]["level"], *level, "{out:?}: {r:#}");
    }
    // Offline, with the service stopped: everything the long-term levels need is inside.
    for (level, out) in &files {
        let (code, r) = verify(&env, out, &root, &["--offline"]);
        assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{level}: {r:#}");
        assert_eq!(r["signatures"][0]["level"], level.as_str(), "{level}: {r:#}");
        assert_eq!(r["signatures"][0]["signer"], "CN=alice,O=cloudsign", "{r:#}");
    }
    let (_, r) = verify(&env, &files[3].1, &root, &["--offline"]);
    assert_eq!(r["signatures"][1]["timestamps"][0]["kind"], "document", "{r:#}");
    // The readable summary.
    let out = env.command().arg("verify").arg(&files[1].1).arg("--trust").arg(&root).arg("--offline").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("TOTAL-PASSED") && text.contains("level:         B-T"), "{text}");
}

#[tokio::test]
async fn revocation_is_checked_online_against_the_proven_time() {
    // Certificates that name the service's OCSP responder and CRL (a public URL known in advance).
    let addr = free_loopback_addr();
    let url = format!("http://{addr}");
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_PUBLIC_URL", &url);
    env.add_user("alice");
    let created = env.add_credential("alice", &["--scal", "1"]);
    let cred = created["credentialID"].as_str().unwrap().to_string();
    let server = env.start_with(&["--listen", &addr]);
    assert_eq!(server.url, url);
    let (_, root) = write_ca(&env);
    let pdf = env.file("doc.pdf");
    std::fs::write(&pdf, one_page_pdf("revocation")).unwrap();
    let sign = |level: &str, out: &Path| sign_as_alice(&env, &url, &cred, &pdf, out, &["--level", level]);
    let (bb, bt) = (env.file("bb.pdf"), env.file("bt.pdf"));
    sign("B-B", &bb);
    sign("B-T", &bt);
    // Before revocation: good, from the responder.
    let (code, r) = verify(&env, &bb, &root, &[]);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}");
    assert_eq!(r["signatures"][0]["chain"][0]["revocation"], "good", "{r:#}");
    assert_eq!(r["signatures"][0]["chain"][0]["source"], "fetched", "{r:#}");
    // Offline, there is nothing to decide with.
    let (code, r) = verify(&env, &bb, &root, &["--offline"]);
    assert_eq!((code, indication(&r, 0)), (1, ("INDETERMINATE".into(), "TRY_LATER".into())), "{r:#}");

    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.admin(&["credential", "revoke", &cred, "--reason", "keyCompromise"], "");
    // Without proof of existence the signature falls with its certificate; the time-stamped one
    // was made before the revocation and stands.
    let (code, r) = verify(&env, &bb, &root, &[]);
    assert_eq!((code, indication(&r, 0)), (1, ("TOTAL-FAILED".into(), "REVOKED".into())), "{r:#}");
    let (code, r) = verify(&env, &bt, &root, &[]);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}");
    assert!(r["signatures"][0]["chain"][0]["revocation"].as_str().unwrap().starts_with("revoked at"), "{r:#}");
    drop(server);
}

#[tokio::test]
async fn xades_and_jades_revocation_is_checked_online() {
    // As `revocation_is_checked_online_against_the_proven_time`, for the formats whose
    // certificates `verify` reads from XML (ds:KeyInfo, time-stamp tokens) and from a JWS
    // (x5c, etsiU): without those the validator had no status and said INDETERMINATE.
    let addr = free_loopback_addr();
    let url = format!("http://{addr}");
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_PUBLIC_URL", &url);
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start_with(&["--listen", &addr]);
    let (_, root) = write_ca(&env);
    let xml = env.file("order.xml");
    std::fs::write(&xml, "<order xmlns=\"urn:example\"><item>1</item></order>").unwrap();
    let data = env.file("data.json");
    std::fs::write(&data, br#"{"amount": 42}"#).unwrap();
    // (signed file, sign options, verify options, level): XAdES enveloped, JAdES B-B compact
    // and detached, JAdES B-T in the JSON serialization with its sigTst in etsiU.
    let cases: Vec<(PathBuf, Vec<&str>, Vec<&str>, &str)> = vec![
        (env.file("order-bb.xml"), vec!["--format", "xades", "--level", "B-B"], vec![], "B-B"),
        (env.file("order-bt.xml"), vec!["--format", "xades", "--level", "B-T"], vec![], "B-T"),
        (env.file("data-bb.jws"), vec!["--format", "jades", "--level", "B-B"], vec!["--detached", data.to_str().unwrap()], "B-B"),
        (env.file("data-bt.jws.json"), vec!["--format", "jades", "--level", "B-T"], vec!["--detached", data.to_str().unwrap()], "B-T"),
    ];
    for (out, sign, _, _) in &cases {
        let input = if sign[1] == "xades" { &xml } else { &data };
        sign_as_alice(&env, &url, &cred, input, out, sign);
    }
    let jws = std::fs::read_to_string(&cases[2].0).unwrap();
    assert_eq!(jws.split('.').count(), 3, "B-B JAdES is compact: {jws}");
    for (out, _, extra, level) in &cases {
        // Online: good, from the service's responder.
        let (code, r) = verify(&env, out, &root, extra);
        assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{out:?}: {r:#}");
        assert_eq!(r["signatures"][0]["level"], *level, "{out:?}: {r:#}");
        assert_eq!(r["signatures"][0]["chain"][0]["revocation"], "good", "{out:?}: {r:#}");
        assert_eq!(r["signatures"][0]["chain"][0]["source"], "fetched", "{out:?}: {r:#}");
        // Offline there is nothing to decide with: it was the fetched status that decided.
        let (code, r) = verify(&env, out, &root, &[&["--offline"][..], extra].concat());
        assert_eq!((code, indication(&r, 0)), (1, ("INDETERMINATE".into(), "TRY_LATER".into())), "{out:?}: {r:#}");
    }

    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.admin(&["credential", "revoke", &cred, "--reason", "keyCompromise"], "");
    // The revocation is seen online: B-B signatures fall with their certificate; B-T ones were
    // made, as their time-stamp proves, before it and stand.
    for (out, _, extra, level) in &cases {
        let (code, r) = verify(&env, out, &root, extra);
        let revocation = r["signatures"][0]["chain"][0]["revocation"].as_str().unwrap_or_default().to_string();
        assert!(revocation.starts_with("revoked at"), "{out:?}: {r:#}");
        if *level == "B-B" {
            assert_eq!((code, indication(&r, 0)), (1, ("TOTAL-FAILED".into(), "REVOKED".into())), "{out:?}: {r:#}");
        } else {
            assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{out:?}: {r:#}");
        }
    }
    drop(server);
}

#[tokio::test]
async fn validation_api() {
    use serde_json::json;
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let pdf = env.file("doc.pdf");
    std::fs::write(&pdf, one_page_pdf("api")).unwrap();
    let signed = env.file("doc-signed.pdf");
    sign_as_alice(&env, &server.url, &cred, &pdf, &signed, &[]);
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let http = http.clone();
        let url = format!("{}/validation/v1/verify", server.url);
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // The service's own signatures: its root is trusted, its OCSP answers in-process.
    let bytes = std::fs::read(&signed).unwrap();
    let (s, v) = post(json!({"document": b64(&bytes)})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["signatures"][0]["indication"], "TOTAL-PASSED", "{v:#}");
    assert_eq!(v["signatures"][0]["level"], "B-T", "{v:#}");
    assert_eq!(v["policy"], "strict");
    let mut tampered = bytes.clone();
    let at = tampered.windows(3).position(|w| w == b"api").unwrap();
    tampered[at] = b'A';
    let (s, v) = post(json!({"document": b64(&tampered)})).await;
    assert_eq!((s, v["signatures"][0]["sub_indication"].as_str()), (200, Some("HASH_FAILURE")), "{v:#}");

    // A foreign detached CMS with the caller's trust anchor.
    let (ca, leaf, key) = ca_and_leaf(&env.file(""), "api");
    let data = env.file("data.bin");
    std::fs::write(&data, b"payload").unwrap();
    let p7s = env.file("data.p7s");
    cms_sign(&data, (&leaf, &key), None, &p7s);
    let body =
        json!({"document": b64(&std::fs::read(&p7s).unwrap()), "detachedContent": b64(b"payload"), "trustAnchors": [b64(&der(&ca))]});
    let (s, v) = post(body).await;
    assert_eq!((s, v["signatures"][0]["indication"].as_str()), (200, Some("TOTAL-PASSED")), "{v:#}");
    let (s, v) = post(json!({"document": b64(&std::fs::read(&p7s).unwrap()), "detachedContent": b64(b"payload")})).await;
    assert_eq!((s, v["signatures"][0]["sub_indication"].as_str()), (200, Some("NO_CERTIFICATE_CHAIN_FOUND")), "{v:#}");

    // Refusals are CSC-style errors.
    for (body, text) in [
        (json!({"document": "%%%"}), "document"),
        (json!({"document": b64(b"plain text")}), "neither"),
        (json!({"document": b64(&bytes), "policy": "../../etc/passwd"}), "policy"),
        (json!({"document": b64(&bytes), "policy": "x.toml"}), "policy"),
        (json!({"documents": "x"}), "Invalid request"),
    ] {
        let (s, v) = post(body).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
        assert!(v["error_description"].as_str().unwrap().contains(text), "{v}");
    }
    // The OpenAPI document.
    let doc: Value = http.get(format!("{}/validation/v1/openapi.json", server.url)).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"]["/validation/v1/verify"]["post"].is_object(), "{doc}");
}

#[tokio::test]
async fn revoked_and_expired_foreign_certificates() {
    // The validation crate's test PKI (openssl ca): a CRL revoking one leaf, an expired leaf.
    let env = Env::new(BIN, "sqlite");
    let dir = env.file("pki");
    cloudsign_test_support::pki::make_pki(&dir);
    let msg = env.file("msg.bin");
    std::fs::write(&msg, b"signed by openssl cms").unwrap();
    let sign = |leaf: &str| {
        let out = env.file(&format!("{leaf}.p7s"));
        let (cert, key) = (dir.join(format!("{leaf}.pem")), dir.join(format!("{leaf}.key")));
        cms_sign(&msg, (&cert, &key), Some(&dir.join("inter.pem")), &out);
        out
    };
    let root = dir.join("root.pem");
    let crl = dir.join("crl.der");
    let detached = ["--offline", "--detached", msg.to_str().unwrap()];
    let with_crl = [&detached[..], &["--crl", crl.to_str().unwrap()]].concat();
    // Good: the CRL says so; openssl agrees.
    let good = sign("leaf-ec");
    let (code, r) = verify(&env, &good, &root, &with_crl);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}");
    run(Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in"])
        .arg(&good)
        .arg("-content")
        .arg(&msg)
        .arg("-CAfile")
        .arg(&root)
        .args(["-out", "/dev/null"]));
    // The certificate names a CRL and an OCSP responder that cannot be reached: no decision.
    let (code, r) = verify(&env, &good, &root, &detached);
    assert_eq!((code, indication(&r, 0)), (1, ("INDETERMINATE".into(), "TRY_LATER".into())), "{r:#}");
    // Revoked (keyCompromise), with no proof the signature existed before.
    let (code, r) = verify(&env, &sign("leaf-revoked"), &root, &with_crl);
    assert_eq!((code, indication(&r, 0)), (1, ("TOTAL-FAILED".into(), "REVOKED".into())), "{r:#}");
    // Expired in 2021, no proof of existence before that.
    let (code, r) = verify(&env, &sign("leaf-expired"), &root, &with_crl);
    assert_eq!((code, indication(&r, 0)), (1, ("INDETERMINATE".into(), "OUT_OF_BOUNDS_NO_POE".into())), "{r:#}");

    // The validation API gives the same indications, with the CRL sent in the request.
    let server = env.start();
    let http = reqwest::Client::new();
    for (leaf, want) in [
        ("leaf-ec", ("TOTAL-PASSED", "")),
        ("leaf-revoked", ("TOTAL-FAILED", "REVOKED")),
        ("leaf-expired", ("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE")),
    ] {
        let body = serde_json::json!({
            "document": b64(&std::fs::read(sign(leaf)).unwrap()),
            "detachedContent": b64(&std::fs::read(&msg).unwrap()),
            "trustAnchors": [b64(&der(&root))],
            "crls": [b64(&std::fs::read(&crl).unwrap())],
        });
        let v: Value = http.post(format!("{}/validation/v1/verify", server.url)).json(&body).send().await.unwrap().json().await.unwrap();
        assert_eq!(indication(&v, 0), (want.0.to_string(), want.1.to_string()), "{leaf}: {v:#}");
    }
}

#[tokio::test]
async fn trusted_list_gives_the_trust_anchors() {
    let env = Env::new(BIN, "sqlite");
    let dir = env.file("");
    let (ca, leaf, key) = ca_and_leaf(&dir, "listed");
    let (op_ca, _, _) = ca_and_leaf(&dir, "operator");
    let op_key = dir.join("operator-ca.key");
    // An ETSI TS 119 612 list naming the CA as a granted CA/QC service, signed by the operator;
    // no NextUpdate, so that every run fetches it again.
    let list = tsl_xml("Test Supervisory Body", "", &granted_ca("Listed TSP", "Listed CA", &ca), None);
    let tl = env.file("tl.xml");
    xmlsec_sign(&dir, "tl", &list, (&op_key, &op_ca));
    let data = env.file("data.bin");
    std::fs::write(&data, b"trusted through the list").unwrap();
    let p7s = env.file("data.p7s");
    cms_sign(&data, (&leaf, &key), None, &p7s);
    let verify_with_list = |list: &Path| {
        env.command()
            .arg("verify")
            .arg(&p7s)
            .args(["--offline", "--json", "--detached", data.to_str().unwrap(), "--trusted-list"])
            .arg(list)
            .arg("--trusted-list-signer")
            .arg(&op_ca)
            .output()
            .unwrap()
    };
    let out = verify_with_list(&tl);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["signatures"][0]["indication"], "TOTAL-PASSED", "{report:#}");
    // From a URL: fetched and cached; when the server is gone, the cached copy still serves.
    let addr = free_loopback_addr();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let mut http = Command::new("python3")
        .args(["-m", "http.server", &port, "--bind", "127.0.0.1", "--directory"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{addr}/tl.xml");
    let cache = env.file("cache");
    let by_url = || {
        env.command()
            .arg("verify")
            .arg(&p7s)
            .args(["--offline", "--json", "--detached", data.to_str().unwrap(), "--trusted-list", &url, "--trusted-list-signer"])
            .arg(&op_ca)
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap()
    };
    let mut fetched = by_url();
    for _ in 0..50 {
        if fetched.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        fetched = by_url();
    }
    assert!(fetched.status.success(), "{}", String::from_utf8_lossy(&fetched.stderr));
    assert!(std::fs::read_dir(cache.join("cloudsign/trusted-lists")).unwrap().count() == 1, "the list is cached");
    let _ = http.kill();
    let _ = http.wait();
    let offline = by_url();
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    assert!(String::from_utf8_lossy(&offline.stderr).contains("using the cached copy"), "{}", String::from_utf8_lossy(&offline.stderr));

    // A list changed after signing is refused, and nothing is trusted from it.
    let changed = env.file("tl-changed.xml");
    std::fs::write(&changed, std::fs::read_to_string(&tl).unwrap().replace("Listed CA", "Listed CA!")).unwrap();
    let out = verify_with_list(&changed);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("tl-changed.xml"), "{err}");
}
