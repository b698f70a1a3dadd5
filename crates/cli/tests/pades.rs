//! `cloudsign sign` of PDFs (PAdES B-B to B-LTA) and XML (XAdES) through a running service
//! with a public URL (certificates name its OCSP responder and CRL, as in a real deployment),
//! checked by independent validators: pyHanko (`sign validate`, and `sign adesverify` with the
//! service stopped for the long-term levels), `pdfsig`, `qpdf --check`, `xmlsec1 --verify` and
//! signxml's XAdES verifier.
//!
//! Needs the pinned virtualenv of `scripts/test.sh` (`CLOUDSIGN_PYTHON`), qpdf, poppler-utils,
//! libnss3-tools and xmlsec1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn python() -> PathBuf {
    PathBuf::from(
        std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON must name the pinned virtualenv's python: run scripts/test.sh"),
    )
}

fn pyhanko() -> PathBuf {
    python().with_file_name("pyhanko")
}

fn sign(env: &Env, url: &str, files: &[&Path], credential: &str, extra: &[&str]) -> (bool, String) {
    let out = env
        .command()
        .arg("sign")
        .args(files)
        .args(["--service", url, "--user", "alice", "--credential", credential])
        .args(extra)
        .env("CLOUDSIGN_PASSWORD", PASSWORD)
        .env("CLOUDSIGN_PIN", PIN)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn pyhanko_validate(pdf: &Path, root: &Path) -> String {
    run(Command::new(pyhanko()).args(["sign", "validate", "--trust"]).arg(root).arg("--trust-replace").arg(pdf))
}

fn pdfsig(env: &Env, pdf: &Path) -> String {
    run(Command::new("pdfsig").arg("-nssdir").arg(format!("sql:{}", env.file("nss").display())).arg(pdf))
}

/// The DocMDP level pyHanko reads from the first signature (certification), e.g. `MDPPerm.FILL_FORMS`.
fn docmdp(pdf: &Path) -> String {
    let script = "import sys\nfrom pyhanko.pdf_utils.reader import PdfFileReader\nprint(PdfFileReader(open(sys.argv[1], 'rb')).embedded_signatures[0].docmdp_level)";
    run(Command::new(python()).arg("-c").arg(script).arg(pdf)).trim().to_string()
}

fn qpdf_check(pdf: &Path) {
    let out = run(Command::new("qpdf").arg("--check").arg(pdf));
    assert!(out.contains("No syntax or stream encoding errors"), "qpdf: {out}");
}

/// The same one-page PDF rewritten by qpdf with object streams and a cross-reference stream.
fn compressed_copy(src: &Path, dst: &Path) {
    run(Command::new("qpdf").arg("--object-streams=generate").arg(src).arg(dst));
    let bytes = std::fs::read(dst).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("/Type /XRef") || text.contains("/Type/XRef"), "qpdf wrote no xref stream");
    assert!(text.contains("/ObjStm"), "qpdf wrote no object stream");
}

#[tokio::test]
async fn pades_at_every_level_validates_and_survives_the_service() {
    let env = Env::new(BIN, "sqlite").with_public_url();
    env.add_user("alice");
    let ec = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let rsa = env.add_credential("alice", &["--key", "rsa-2048", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let (_, root) = write_ca(&env);
    nss_trust(&env, &root);

    let plain = env.file("plain.pdf");
    std::fs::write(&plain, one_page_pdf("Hello PAdES")).unwrap();
    let compressed = env.file("compressed.pdf");
    compressed_copy(&plain, &compressed);

    // B-B and B-T for both key types and both cross-reference styles.
    for (key, cred) in [("ec", &ec), ("rsa", &rsa)] {
        for (style, input) in [("plain", &plain), ("compressed", &compressed)] {
            for level in ["B-B", "B-T"] {
                let out = env.file(&format!("{key}-{style}-{level}.pdf"));
                let (ok, err) = sign(&env, &server.url, &[input], cred, &["--level", level, "--out", out.to_str().unwrap()]);
                assert!(ok, "{key} {style} {level}: {err}");
                assert!(err.contains(&format!("PAdES {level}")), "{err}");
                qpdf_check(&out);
                // The original bytes are untouched: an incremental update.
                let original = std::fs::read(input).unwrap();
                assert!(std::fs::read(&out).unwrap().starts_with(&original));
                let v = pyhanko_validate(&out, &root);
                assert!(v.contains(":INTACT:TRUSTED") && v.contains("UNTOUCHED"), "pyhanko {key} {style} {level}: {v}");
                assert_eq!(v.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), level == "B-T", "{v}");
                let p = pdfsig(&env, &out);
                assert!(p.contains("Signature Validation: Signature is Valid."), "pdfsig: {p}");
                assert!(p.contains("Certificate Validation: Certificate is Trusted."), "pdfsig: {p}");
                assert!(p.contains("Signature Type: ETSI.CAdES.detached") && p.contains("Total document signed"), "pdfsig: {p}");
            }
        }
    }

    // A second signature keeps the first one valid.
    let twice = env.file("twice.pdf");
    let first = env.file("ec-plain-B-T.pdf");
    let (ok, err) = sign(&env, &server.url, &[&first], &rsa, &["--level", "B-B", "--out", twice.to_str().unwrap()]);
    assert!(ok, "{err}");
    let v = pyhanko_validate(&twice, &root);
    assert_eq!(v.matches(":INTACT:TRUSTED").count(), 2, "both signatures: {v}");
    assert!(v.contains("Signature2:"), "the new field has its own name: {v}");
    let p = pdfsig(&env, &twice);
    assert_eq!(p.matches("Signature is Valid.").count(), 2, "pdfsig: {p}");

    // B-LT and B-LTA: the validation data is embedded (DSS), then a document time-stamp.
    let lt = env.file("lt.pdf");
    let lta = env.file("lta.pdf");
    for (out, level) in [(&lt, "B-LT"), (&lta, "B-LTA")] {
        let (ok, err) = sign(&env, &server.url, &[&compressed], &ec, &["--level", level, "--out", out.to_str().unwrap()]);
        assert!(ok && err.contains(&format!("PAdES {level}")), "{err}");
        qpdf_check(out);
    }
    let bytes = std::fs::read(&lt).unwrap();
    for key in [&b"/DSS"[..], b"/OCSPs", b"/CRLs", b"/Certs"] {
        assert!(bytes.windows(key.len()).any(|w| w == key), "B-LT lacks {}", String::from_utf8_lossy(key));
    }
    let p = pdfsig(&env, &lta);
    assert!(p.contains("Signature #2") && p.contains("Timestamp1"), "the document time-stamp is listed: {p}");
    assert!(p.contains("Signing Time: Jan 01 1970") || p.contains("Signature Type: unknown") || p.contains("ETSI.RFC3161"), "{p}");

    // Offline: everything needed is in the files. The certificates name the stopped service's
    // OCSP responder and CRL, so pyHanko must check revocation; told not to fetch
    // (interop/ltv_offline.py), it can only use the DSS.
    drop(server);
    let ltv = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/ltv_offline.py");
    for file in [&lt, &lta] {
        let out = run(Command::new(python()).args([ltv, "adesverify", "--trust"]).arg(&root).arg("--trust-replace").arg(file));
        assert!(out.contains(":INTACT:TRUSTED") && out.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "adesverify offline: {out}");
        assert!(out.contains("EXTENDED_WITH_LTA_UPDATES"), "the DSS (and time-stamp) updates are recognised: {out}");
    }
    // And it does check: the B-LT file without its DSS is not trusted.
    let stripped = env.file("lt-stripped.pdf");
    run(Command::new(python()).args([ltv, "strip-dss"]).arg(&lt).arg(&stripped));
    let out =
        Command::new(python()).args([ltv, "adesverify", "--trust"]).arg(&root).arg("--trust-replace").arg(&stripped).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && stdout.contains(":INTACT:UNTRUSTED"), "{stdout}{stderr}");
    assert!(stderr.contains("no revocation information could be found"), "{stderr}");
}

#[tokio::test]
async fn batches_v1_and_refusals() {
    let env = Env::new(BIN, "sqlite").with_public_url();
    env.add_user("alice");
    // SCAL 2: the one authorization binds every document's digest.
    let ec = env.add_credential("alice", &[])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let (_, root) = write_ca(&env);

    let (a, b) = (env.file("a.pdf"), env.file("b.pdf"));
    std::fs::write(&a, one_page_pdf("first")).unwrap();
    std::fs::write(&b, one_page_pdf("second")).unwrap();
    let (ok, err) = sign(&env, &server.url, &[&a, &b], &ec, &[]);
    assert!(ok, "{err}");
    assert_eq!(err.matches("(PAdES B-T)").count(), 2, "{err}");
    for out in [env.file("a-signed.pdf"), env.file("b-signed.pdf")] {
        let v = pyhanko_validate(&out, &root);
        assert!(v.contains(":INTACT:TRUSTED") && v.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "{v}");
    }
    // One authorization for the batch.
    let log = env.admin(&["audit", "--json", "--limit", "1000"], "");
    let events: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let count = |event: &str| events.iter().filter(|e| e["event"] == event && e["outcome"] == "ok").count();
    assert_eq!(count("credentials.authorize"), 1, "{log}");
    assert_eq!(count("signatures.signHash"), 1, "{log}");

    // CSC v1.
    let v1 = env.file("v1.pdf");
    let (ok, err) = sign(&env, &server.url, &[&a], &ec, &["--api", "v1", "--out", v1.to_str().unwrap()]);
    assert!(ok, "{err}");
    let v = pyhanko_validate(&v1, &root);
    assert!(v.contains(":INTACT:TRUSTED") && v.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "{v}");

    // Certification (DocMDP): pyHanko reads the permission level; P=1 refuses a later
    // signature but takes the B-LTA updates (DSS, document time-stamp).
    let (c2, c1) = (env.file("certified-2.pdf"), env.file("certified-1.pdf"));
    let (ok, err) = sign(&env, &server.url, &[&a], &ec, &["--certify", "2", "--out", c2.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(docmdp(&c2), "MDPPerm.FILL_FORMS");
    let (ok, err) = sign(&env, &server.url, &[&a], &ec, &["--certify", "1", "--level", "B-LTA", "--out", c1.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(docmdp(&c1), "MDPPerm.NO_CHANGES");
    let v = pyhanko_validate(&c1, &root);
    assert!(v.contains(":INTACT:TRUSTED") && v.contains("ACCEPTABLE_MODIFICATIONS"), "{v}");
    let (ok, err) = sign(&env, &server.url, &[&c1], &ec, &["--out", env.file("refused.pdf").to_str().unwrap()]);
    assert!(!ok && err.contains("no changes allowed"), "{err}");
    let (ok, err) = sign(&env, &server.url, &[&c2], &ec, &["--certify", "2", "--out", env.file("refused.pdf").to_str().unwrap()]);
    assert!(!ok && err.contains("first signature"), "{err}");

    // Not a PDF: a readable error, a non-zero exit, nothing left behind.
    let text = env.file("notes.txt");
    std::fs::write(&text, b"just text").unwrap();
    let (ok, err) = sign(&env, &server.url, &[&text], &ec, &["--format", "pades"]);
    assert!(!ok && err.contains("not a PDF"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A wrong PIN after the PDF was prepared: no partial output remains.
    let out = env
        .command()
        .arg("sign")
        .arg(&a)
        .args(["--service", &server.url, "--user", "alice", "--credential", &ec, "--out"])
        .arg(env.file("never.pdf"))
        .env("CLOUDSIGN_PASSWORD", PASSWORD)
        .env("CLOUDSIGN_PIN", "00000000")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("credentials/authorize refused"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(env.file(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("never"))
        .collect();
    assert!(leftovers.is_empty(), "nothing half-signed left: {leftovers:?}");
    // Several files and one --out.
    let (ok, err) = sign(&env, &server.url, &[&a, &b], &ec, &["--out", "x.pdf"]);
    assert!(!ok && err.contains("--out names one output"), "{err}");
}

#[tokio::test]
async fn xades_through_the_cli_verifies_with_xmlsec1_and_signxml() {
    let env = Env::new(BIN, "sqlite").with_public_url();
    env.add_user("alice");
    let ec = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let rsa = env.add_credential("alice", &["--key", "rsa-2048", "--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let (_, root) = write_ca(&env);

    let xml = env.file("invoice.xml");
    std::fs::write(&xml, "<?xml version=\"1.0\"?>\n<inv:Invoice xmlns:inv=\"urn:example:invoice\" id=\"7\">\n  <inv:Total currency=\"EUR\">12.50</inv:Total>\n  <!-- a comment -->\n</inv:Invoice>\n").unwrap();
    let xmlsec = |file: &Path| {
        Command::new("xmlsec1")
            .args(["--verify", "--trusted-pem"])
            .arg(&root)
            .args(["--id-attr:Id", "http://uri.etsi.org/01903/v1.3.2#:SignedProperties"])
            .arg(file)
            .current_dir(env.file(""))
            .output()
            .unwrap()
    };
    for (key, cred) in [("ec", &ec), ("rsa", &rsa)] {
        for (packaging, level) in [("enveloped", "B-T"), ("enveloping", "B-B"), ("detached", "B-LT")] {
            let out = env.file(&format!("{key}-{packaging}.xml"));
            let (ok, err) = sign(
                &env,
                &server.url,
                &[&xml],
                cred,
                &["--format", "xades", "--packaging", packaging, "--level", level, "--out", out.to_str().unwrap()],
            );
            assert!(ok && err.contains(&format!("XAdES {level}")), "{key} {packaging}: {err}");
            let r = xmlsec(&out);
            let text = format!("{}{}", String::from_utf8_lossy(&r.stdout), String::from_utf8_lossy(&r.stderr));
            assert!(r.status.success() && text.contains("OK"), "xmlsec1 {key} {packaging}: {text}");
            assert!(text.contains("References (ok/all): 2/2"), "{text}");
            // signxml's XAdES verifier: the signature, the SignedProperties and their digests.
            let script = r#"
import sys, signxml
from signxml.xades import XAdESVerifier
data = open(sys.argv[1], "rb").read()
doc = open(sys.argv[3], "rb").read()
res = XAdESVerifier().verify(data, ca_pem_file=sys.argv[2], expect_references=2, uri_resolver=lambda uri: doc)
print("VALID", len(res))
"#;
            let v = run(Command::new(python()).arg("-c").arg(script).arg(&out).arg(&root).arg(&xml));
            assert!(v.starts_with("VALID"), "signxml {key} {packaging}: {v}");
        }
    }
    // B-LTA: an archive time-stamp over the B-LT signature; the time-stamp input is rebuilt
    // independently (lxml exclusive C14N) by xades_lta.py, which also runs openssl ts -verify.
    let lta_dir = env.file("lta");
    std::fs::create_dir_all(&lta_dir).unwrap();
    let (issuing, _) = write_ca(&env);
    std::fs::copy(&root, lta_dir.join("ca.pem")).unwrap();
    std::fs::copy(&issuing, lta_dir.join("issuing.pem")).unwrap();
    let lta_xml = lta_dir.join("invoice.xml");
    std::fs::copy(&xml, &lta_xml).unwrap();
    for packaging in ["enveloped", "detached"] {
        let out = lta_dir.join(format!("{packaging}-lta.xml"));
        let (ok, err) = sign(
            &env,
            &server.url,
            &[&lta_xml],
            &ec,
            &["--format", "xades", "--packaging", packaging, "--level", "B-LTA", "--out", out.to_str().unwrap()],
        );
        assert!(ok && err.contains("XAdES B-LTA"), "{packaging}: {err}");
        let r = xmlsec(&out);
        assert!(r.status.success(), "xmlsec1 {packaging} B-LTA: {}", String::from_utf8_lossy(&r.stderr));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../ades/tests/xades_lta.py");
    let out = run(Command::new(python()).arg(script).arg(&lta_dir));
    assert!(out.contains("2/2 files OK"), "{out}");

    // The enveloped signature breaks when the document changes.
    let signed = std::fs::read_to_string(env.file("ec-enveloped.xml")).unwrap();
    let tampered = env.file("tampered.xml");
    std::fs::write(&tampered, signed.replace("12.50", "99.50")).unwrap();
    assert!(!xmlsec(&tampered).status.success(), "a changed document must not verify");
}

#[tokio::test]
async fn sign_doc_returns_signed_pdfs_and_xml() {
    use serde_json::json;
    let env = Env::new(BIN, "sqlite").with_public_url();
    env.add_user("alice");
    let id = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let (_, root) = write_ca(&env);
    nss_trust(&env, &root);
    let mut api = Api::new(&server);
    api.login("alice").await;

    let pdf = one_page_pdf("signed in the service");
    let xml = b"<doc xmlns=\"urn:example\"><item n=\"1\">value</item></doc>".to_vec();
    let sad = api.sad(&id, 6, None).await;
    let v = api
        .ok(
            "signatures/signDoc",
            json!({
                "credentialID": id, "SAD": sad,
                "documents": [
                    {"document": b64(&pdf), "signature_format": "P", "conformance_level": "Ades-B-T", "signAlgo": "1.2.840.10045.4.3.2"},
                    {"document": b64(&pdf), "signature_format": "p", "conformance_level": "ades-b-lt", "signAlgo": "1.2.840.10045.4.3.2"},
                    {"document": b64(&xml), "signature_format": "X", "conformance_level": "Ades-B-T", "signAlgo": "1.2.840.10045.4.3.2"},
                    {"document": b64(&pdf), "signature_format": "P", "signed_envelope_property": "Certification", "signAlgo": "1.2.840.10045.4.3.2"},
                    {"document": b64(&pdf), "signature_format": "P", "conformance_level": "Ades-B-LTA", "signAlgo": "1.2.840.10045.4.3.2"},
                    {"document": b64(&xml), "signature_format": "X", "conformance_level": "Ades-B-LTA", "signAlgo": "1.2.840.10045.4.3.2"},
                ],
            }),
        )
        .await;
    let docs = v["DocumentWithSignature"].as_array().unwrap();
    assert_eq!(docs.len(), 6, "{v}");
    // B-LTA from the service: the PDF's document time-stamp, the XML's archive time-stamp.
    let lta_pdf = env.file("service-lta.pdf");
    std::fs::write(&lta_pdf, unb64(docs[4].as_str().unwrap())).unwrap();
    let r = pyhanko_validate(&lta_pdf, &root);
    assert!(r.contains(":INTACT:TRUSTED") && r.contains("EXTENDED_WITH_LTA_UPDATES"), "{r}");
    assert!(pdfsig(&env, &lta_pdf).contains("Timestamp1"), "the document time-stamp is listed");
    let lta_dir = env.file("service-lta");
    std::fs::create_dir_all(&lta_dir).unwrap();
    let (issuing, _) = write_ca(&env);
    std::fs::copy(&root, lta_dir.join("ca.pem")).unwrap();
    std::fs::copy(&issuing, lta_dir.join("issuing.pem")).unwrap();
    std::fs::write(lta_dir.join("service-lta.xml"), unb64(docs[5].as_str().unwrap())).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../ades/tests/xades_lta.py");
    let out = run(Command::new(python()).arg(script).arg(&lta_dir));
    assert!(out.contains("1/1 files OK"), "{out}");
    let certified = env.file("service-certified.pdf");
    std::fs::write(&certified, unb64(docs[3].as_str().unwrap())).unwrap();
    assert!(pyhanko_validate(&certified, &root).contains(":INTACT:TRUSTED"));
    assert_eq!(docmdp(&certified), "MDPPerm.FILL_FORMS");
    for (i, level) in [(0, "B-T"), (1, "B-LT")] {
        let out = env.file(&format!("service-{level}.pdf"));
        let bytes = unb64(docs[i].as_str().unwrap());
        assert!(bytes.starts_with(&pdf), "an incremental update of the document sent");
        std::fs::write(&out, &bytes).unwrap();
        qpdf_check(&out);
        let r = pyhanko_validate(&out, &root);
        assert!(r.contains(":INTACT:TRUSTED") && r.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "{level}: {r}");
        assert_eq!(String::from_utf8_lossy(&bytes).contains("/DSS"), level == "B-LT");
        if level == "B-LT" {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/revocation_after_timestamp.py");
            let checked = run(Command::new(python()).arg(script).arg(&out));
            assert!(checked.contains("fresh:"), "{checked}");
        }
    }
    let signed_xml = env.file("service.xml");
    std::fs::write(&signed_xml, unb64(docs[2].as_str().unwrap())).unwrap();
    let r = Command::new("xmlsec1")
        .args(["--verify", "--trusted-pem"])
        .arg(&root)
        .args(["--id-attr:Id", "http://uri.etsi.org/01903/v1.3.2#:SignedProperties"])
        .arg(&signed_xml)
        .output()
        .unwrap();
    assert!(r.status.success(), "xmlsec1: {}", String::from_utf8_lossy(&r.stderr));

    // Malformed documents and digests are CSC errors, not 500s; nothing is spent on them.
    let sad = api.sad(&id, 1, None).await;
    let body = |doc: &[u8], format: &str| json!({"credentialID": id, "SAD": sad, "documents": [{"document": b64(doc), "signature_format": format, "signAlgo": "1.2.840.10045.4.3.2"}]});
    api.err("signatures/signDoc", body(b"not a pdf", "P"), 400, "invalid_request", "PDF").await;
    api.err("signatures/signDoc", body(b"<unclosed", "X"), 400, "invalid_request", "documents").await;
    let digest = json!({"credentialID": id, "SAD": sad, "documentDigests": [{"hashes": [b64(&sha256(&pdf))], "hashAlgorithmOID": SHA256, "signature_format": "P", "signAlgo": "1.2.840.10045.4.3.2"}]});
    api.err("signatures/signDoc", digest, 400, "invalid_request", "signed from documents").await;
    let ok = api.ok("signatures/signDoc", body(&pdf, "P")).await;
    assert!(ok["DocumentWithSignature"][0].is_string(), "the SAD was not spent by the refusals: {ok}");
}
