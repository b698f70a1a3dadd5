//! Long-term signatures in the configuration of a real deployment: `public_url` set, so every
//! certificate names the service's OCSP responder and CRL, and validators must check revocation.
//! PAdES B-LT and B-LTA made by `cloudsign sign` and by signDoc validate in pyHanko
//! (`adesverify` with fetching off, so only the DSS can answer, and its CLI as it is) after the
//! service has stopped; the same files with the DSS removed, or with revocation data of another
//! certificate, are refused alike by pyHanko and by `cloudsign verify --offline`. CAdES, XAdES
//! and JAdES at B-LT and B-LTA, from `cloudsign sign` and from signDoc, validate offline too
//! (openssl cms with CRL checks, xmlsec1, jwcrypto, and `cloudsign verify`, which checks the
//! CAdES archive-time-stamp-v3 too). A PAdES file whose TSA has no revocation data loses its
//! time-stamps in both validators (online, `cloudsign verify` fetches the TSA's status), and a
//! B-LT whose OCSP response is stale (EN 319 102-1 §5.2.5) is refused by both.
//!
//! Needs the pinned virtualenv of `scripts/test.sh` (`CLOUDSIGN_PYTHON`) and xmlsec1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::json;

const LTV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/ltv_offline.py");

fn python() -> PathBuf {
    PathBuf::from(
        std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON must name the pinned virtualenv's python: run scripts/test.sh"),
    )
}

fn sign(env: &Env, url: &str, file: &Path, credential: &str, extra: &[&str]) {
    let out = env
        .command()
        .arg("sign")
        .arg(file)
        .args(["--service", url, "--user", "alice", "--credential", credential])
        .args(extra)
        .env("CLOUDSIGN_PASSWORD", PASSWORD)
        .env("CLOUDSIGN_PIN", PIN)
        .output()
        .unwrap();
    assert!(out.status.success(), "cloudsign sign {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `pyhanko sign adesverify` with online fetching off (see ltv_offline.py): (exit success,
/// stdout, stderr).
fn adesverify_offline(pdf: &Path, root: &Path) -> (bool, String, String) {
    let out = Command::new(python())
        .arg(LTV)
        .args(["adesverify", "--trust"])
        .arg(root)
        .arg("--trust-replace")
        .arg(pdf)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// `cloudsign verify --offline`: (exit success, report).
fn cloudsign_verify(env: &Env, file: &Path, root: &Path, detached: Option<&Path>) -> (bool, String) {
    let mut cmd = env.command();
    cmd.arg("verify").arg(file).arg("--trust").arg(root).arg("--offline");
    if let Some(d) = detached {
        cmd.arg("--detached").arg(d);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn assert_offline_trusted(env: &Env, pdf: &Path, root: &Path, level: &str) {
    let (ok, out, err) = adesverify_offline(pdf, root);
    // The summary line pyHanko prints: the signature, its time-stamp, the DSS updates.
    assert!(ok && out.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,EXTENDED_WITH_LTA_UPDATES"), "{pdf:?}: {out}{err}");
    assert!(!err.contains("HTTP connection was attempted"), "nothing was fetched: {err}");
    let (ok, report) = cloudsign_verify(env, pdf, root, None);
    assert!(ok && report.contains("Signature1 (PAdES): TOTAL-PASSED"), "{pdf:?}: {report}");
    assert!(report.contains(&format!("level:         {level}\n")), "{report}");
    assert!(report.contains("CN=alice,O=cloudsign — good (embedded)"), "the signer's status came from the file: {report}");
}

/// Neither validator accepts `pdf`, and both for a revocation reason; `cloudsign verify` names
/// `cert` as the one without a status.
fn assert_both_refuse(env: &Env, pdf: &Path, root: &Path, cert: &str) {
    let (ok, out, err) = adesverify_offline(pdf, root);
    assert!(!ok && out.contains(":INTACT:UNTRUSTED"), "pyHanko {pdf:?}: {out}{err}");
    assert!(
        err.contains("no revocation information could be found") || err.contains("revocation checks failed"),
        "pyHanko refuses for lack of revocation data: {err}"
    );
    // (A B-LTA's document time-stamp may still pass on its own: the signature may not.)
    let (ok, report) = cloudsign_verify(env, pdf, root, None);
    assert!(!ok && report.contains("Signature1 (PAdES): INDETERMINATE / TRY_LATER"), "{pdf:?}: {report}");
    assert!(report.contains(&format!("no revocation status for {cert}")), "{report}");
}

fn ltv(args: &[&std::ffi::OsStr]) {
    run(Command::new(python()).arg(LTV).args(args));
}

#[tokio::test]
async fn pades_lt_and_lta_validate_offline_with_public_url() {
    let env = Env::new(BIN, "sqlite").with_public_url();
    let url = env.public_url().unwrap();
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--scal", "1"]);
    let id = cred["credentialID"].as_str().unwrap().to_string();
    let other = env.add_credential("alice", &["--scal", "1"]);
    let server = env.start();
    assert_eq!(server.url, url, "the server listens where its certificates point");
    let (issuing, root) = write_ca(&env);

    // The certificates name the service (openssl reads the extensions).
    let cert = env.file("alice.pem");
    std::fs::write(&cert, cred["certificate"].as_str().unwrap()).unwrap();
    let text = run(Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(&cert));
    assert!(text.contains(&format!("OCSP - URI:{url}/ocsp")) && text.contains(&format!("URI:{url}/crl")), "{text}");
    let text = run(Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(&issuing));
    assert!(text.contains(&format!("URI:{url}/arl")), "{text}");

    // cloudsign sign, B-LT and B-LTA.
    let plain = env.file("plain.pdf");
    std::fs::write(&plain, one_page_pdf("long-term")).unwrap();
    let mut files = Vec::new();
    for level in ["B-LT", "B-LTA"] {
        let out = env.file(&format!("cli-{level}.pdf"));
        sign(&env, &server.url, &plain, &id, &["--level", level, "--out", out.to_str().unwrap()]);
        files.push((out, level));
    }
    // signDoc, B-LT and B-LTA.
    let mut api = Api::new(&server);
    api.login("alice").await;
    let sad = api.sad(&id, 2, None).await;
    let pdf = one_page_pdf("signed in the service");
    let doc = |level: &str| json!({"document": b64(&pdf), "signature_format": "P", "conformance_level": level, "signAlgo": "1.2.840.10045.4.3.2"});
    let v = api.ok("signatures/signDoc", json!({"credentialID": id, "SAD": sad, "documents": [doc("Ades-B-LT"), doc("Ades-B-LTA")]})).await;
    for (i, level) in ["B-LT", "B-LTA"].into_iter().enumerate() {
        let out = env.file(&format!("service-{level}.pdf"));
        std::fs::write(&out, unb64(v["DocumentWithSignature"][i].as_str().unwrap())).unwrap();
        files.push((out, level));
    }

    // Revocation data of another certificate of the same CA: its OCSP response (asked for by
    // openssl, SHA-1 CertID, the responder's signature checked) and the root's CRL.
    let other_pem = env.file("other.pem");
    std::fs::write(&other_pem, other["certificate"].as_str().unwrap()).unwrap();
    let other_ocsp = env.file("other.ocsp");
    let out = run(Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(&issuing)
        .arg("-cert")
        .arg(&other_pem)
        .args(["-url", &format!("{url}/ocsp"), "-CAfile"])
        .arg(&root)
        .arg("-respout")
        .arg(&other_ocsp));
    assert!(out.contains(": good"), "{out}");
    let arl = env.file("root.crl");
    std::fs::write(&arl, reqwest::get(format!("{url}/arl")).await.unwrap().bytes().await.unwrap()).unwrap();

    // Online, a TSA whose revocation data is not in the file is checked with data fetched from
    // the URLs its certificate names: the time-stamp holds, and the signature is a B-T (not
    // B-LT: the file does not carry all it needs).
    let online = files[0].0.with_extension("no-tsa-online.pdf");
    ltv(&["drop-tsa-revinfo".as_ref(), files[0].0.as_os_str(), online.as_os_str()]);
    let out = env.command().arg("verify").arg(&online).arg("--trust").arg(&root).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && report.contains("Signature1 (PAdES): TOTAL-PASSED"), "{report}");
    assert!(report.contains("level:         B-T\n"), "{report}");
    assert!(
        report.contains("check:         signature timestamp  passed")
            && report.contains("CN=cloudsign Time-Stamping Authority,O=cloudsign: good (fetched)"),
        "{report}"
    );

    // The service is gone: nothing can be fetched any more.
    drop(server);
    assert!(std::net::TcpStream::connect(url.trim_start_matches("http://")).is_err(), "the service stopped");

    for (file, level) in &files {
        assert_offline_trusted(&env, file, &root, level);
    }

    // pyHanko's own CLI, which fetches OCSP responses first: that fails (the service is down),
    // and it skips the DSS's OCSP responses then (see ltv_offline.py); it passes because the DSS
    // also holds the issuing CA's CRL, which pyHanko takes from the DSS before fetching.
    let pyhanko = python().with_file_name("pyhanko");
    for (file, _) in &files {
        let out =
            Command::new(&pyhanko).args(["sign", "adesverify", "--trust"]).arg(&root).arg("--trust-replace").arg(file).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success() && stdout.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>"),
            "pyhanko sign adesverify {file:?}: {stdout}{stderr}"
        );
    }

    // The same files without their DSS, and with revocation data of another certificate.
    for (file, _) in &files {
        let stripped = file.with_extension("stripped.pdf");
        ltv(&["strip-dss".as_ref(), file.as_os_str(), stripped.as_os_str()]);
        assert_both_refuse(&env, &stripped, &root, "CN=alice,O=cloudsign");

        let foreign = file.with_extension("foreign.pdf");
        ltv(&[
            "replace-revinfo".as_ref(),
            file.as_os_str(),
            foreign.as_os_str(),
            "--ocsp".as_ref(),
            other_ocsp.as_os_str(),
            "--crl".as_ref(),
            arl.as_os_str(),
        ]);
        assert_both_refuse(&env, &foreign, &root, "CN=alice,O=cloudsign");

        // The signer's OCSP response kept, the CRLs gone: nothing about the issuing CA.
        let no_crls = file.with_extension("no-crls.pdf");
        ltv(&["drop-crls".as_ref(), file.as_os_str(), no_crls.as_os_str()]);
        assert_both_refuse(&env, &no_crls, &root, "CN=cloudsign Issuing CA 1,O=cloudsign");

        // The signer's revocation data kept, the TSA's (its OCSP response, its issuer's CRL)
        // gone: the time-stamps are
        // no proof of existence (EN 319 102-1 §5.4: the TSA's certificate is validated with its
        // revocation status like any other), so neither validator reports a time-stamp or B-LT.
        let no_tsa = file.with_extension("no-tsa.pdf");
        ltv(&["drop-tsa-revinfo".as_ref(), file.as_os_str(), no_tsa.as_os_str()]);
        assert_tsa_unchecked(&env, &no_tsa, &root);
    }
}

/// `pdf` has the signer's revocation data but not its TSA's: pyHanko drops the time-stamp
/// from its verdict, and `cloudsign verify` finds it INDETERMINATE (no status for the TSA) and
/// reports neither B-T nor B-LT.
fn assert_tsa_unchecked(env: &Env, pdf: &Path, root: &Path) {
    let (_, out, err) = adesverify_offline(pdf, root);
    let (_, report) = cloudsign_verify(env, pdf, root, None);
    assert!(out.contains(":INTACT:") && !out.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "pyHanko {pdf:?}: {out}{err}\n{report}");
    assert!(report.contains("Signature1 (PAdES): "), "{report}");
    let signature = report.split("\n\n").next().unwrap_or(&report);
    assert!(
        signature.contains("signature timestamp  INDETERMINATE")
            && signature.contains("no revocation status for CN=cloudsign Time-Stamping Authority"),
        "{pdf:?}: {report}"
    );
    assert!(signature.contains("time-stamp:    signature ") && signature.contains(" NOT valid"), "{report}");
    assert!(!signature.contains("level:         B-T") && !signature.contains("level:         B-LT"), "{report}");
    assert!(signature.contains("CN=alice,O=cloudsign — good (embedded)"), "the signer's status is still there: {report}");
    // A B-LTA's document time-stamp, from the same TSA: intact, but no proof of existence
    // either (EN 319 142-1 §5.4.3: it is validated as an archive time-stamp).
    if pdf.to_string_lossy().contains("B-LTA") {
        assert!(report.contains("(PAdES document time-stamp): INDETERMINATE / TRY_LATER"), "{report}");
        assert!(
            report.contains("check:         archive timestamp    INDETERMINATE — ")
                && report.contains("the token's signature verifies and its message imprint matches; the TSA"),
            "{report}"
        );
        assert!(!signature.contains("level:         B-LTA"), "{report}");
    }
}

/// A JAdES JWS JSON with a detached unencoded payload, checked by jwcrypto with the key of its
/// `x5c` certificate; prints which unsigned properties it carries.
fn jwcrypto_verify(jws: &Path, payload: &Path) -> String {
    let script = r#"
import base64, json, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk, jws
from jwcrypto.common import JWSEHeaderParameter
token = open(sys.argv[1]).read()
b64u = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
obj = json.loads(token)
header = json.loads(b64u(obj["protected"]))
props = [k for item in obj.get("header", {}).get("etsiU", []) for k in json.loads(b64u(item))]
cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
key = jwk.JWK.from_pem(cert.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
s = jws.JWS(header_registry={"sigT": JWSEHeaderParameter("Claimed signing time (JAdES)", True, True, None)})
s.deserialize(token)
s.verify(key, detached_payload=open(sys.argv[2], "rb").read())
print("VALID", " ".join(props))
"#;
    run(Command::new(python()).arg("-c").arg(script).arg(jws).arg(payload)).trim().to_string()
}

#[tokio::test]
async fn cades_xades_jades_lt_and_lta_validate_offline_with_public_url() {
    let env = Env::new(BIN, "sqlite").with_public_url();
    env.add_user("alice");
    let id = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let (issuing, root) = write_ca(&env);
    let data = env.file("contract.bin");
    std::fs::write(&data, b"a contract, signed for the long term\n").unwrap();
    let xml = env.file("invoice.xml");
    std::fs::write(
        &xml,
        "<?xml version=\"1.0\"?>\n<inv:Invoice xmlns:inv=\"urn:example:invoice\"><inv:Total>12.50</inv:Total></inv:Invoice>\n",
    )
    .unwrap();
    let mut made = Vec::new();
    for level in ["B-LT", "B-LTA"] {
        let p7s = env.file(&format!("contract-{level}.p7s"));
        sign(&env, &server.url, &data, &id, &["--format", "cades", "--level", level, "--out", p7s.to_str().unwrap()]);
        made.push(("cades", level, p7s, Some(data.clone())));
        let signed = env.file(&format!("invoice-{level}.xml"));
        sign(
            &env,
            &server.url,
            &xml,
            &id,
            &["--format", "xades", "--packaging", "enveloped", "--level", level, "--out", signed.to_str().unwrap()],
        );
        made.push(("xades", level, signed, None));
        let jws = env.file(&format!("contract-{level}.json"));
        sign(&env, &server.url, &data, &id, &["--format", "jades", "--level", level, "--out", jws.to_str().unwrap()]);
        made.push(("jades", level, jws, Some(data.clone())));
    }
    // The same three formats from signDoc: CAdES from a digest, JAdES and XAdES from documents.
    let mut api = Api::new(&server);
    api.login("alice").await;
    let body = std::fs::read(&data).unwrap();
    let xml_body = std::fs::read(&xml).unwrap();
    let algo = "1.2.840.10045.4.3.2";
    let sad = api.sad(&id, 6, None).await;
    let (lt, lta) = ("Ades-B-LT", "Ades-B-LTA");
    let v = api
        .ok(
            "signatures/signDoc",
            json!({"credentialID": id, "SAD": sad,
                "documentDigests": [
                    {"hashes": [b64(&sha256(&body))], "hashAlgorithmOID": SHA256, "signature_format": "C", "conformance_level": lt, "signAlgo": algo},
                    {"hashes": [b64(&sha256(&body))], "hashAlgorithmOID": SHA256, "signature_format": "C", "conformance_level": lta, "signAlgo": algo}],
                "documents": [
                    {"document": b64(&body), "signature_format": "J", "conformance_level": lt, "signAlgo": algo},
                    {"document": b64(&body), "signature_format": "J", "conformance_level": lta, "signAlgo": algo},
                    {"document": b64(&xml_body), "signature_format": "X", "conformance_level": lt, "signAlgo": algo},
                    {"document": b64(&xml_body), "signature_format": "X", "conformance_level": lta, "signAlgo": algo}]}),
        )
        .await;
    let objects = v["SignatureObject"].as_array().unwrap();
    for (i, (format, level, name)) in [
        ("cades", "B-LT", "service-lt.p7s"),
        ("cades", "B-LTA", "service-lta.p7s"),
        ("jades", "B-LT", "service-lt.json"),
        ("jades", "B-LTA", "service-lta.json"),
    ]
    .into_iter()
    .enumerate()
    {
        let file = env.file(name);
        std::fs::write(&file, unb64(objects[i].as_str().unwrap())).unwrap();
        made.push((format, level, file, Some(data.clone())));
    }
    for (i, level) in ["B-LT", "B-LTA"].into_iter().enumerate() {
        let file = env.file(&format!("service-{level}.xml"));
        std::fs::write(&file, unb64(v["DocumentWithSignature"][i].as_str().unwrap())).unwrap();
        made.push(("xades", level, file, None));
    }
    drop(server);

    for (format, level, file, detached) in &made {
        match *format {
            "cades" => {
                // openssl with CRL checks of the whole chain: the CRLs embedded in the CMS.
                let out = Command::new("openssl")
                    .args(["cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-crl_check_all", "-out", "/dev/null", "-in"])
                    .arg(file)
                    .arg("-content")
                    .arg(detached.as_ref().unwrap())
                    .arg("-CAfile")
                    .arg(&root)
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success() && text.contains("Verification successful"), "openssl cms {level}: {text}");
            }
            "xades" => {
                let out = Command::new("xmlsec1")
                    .args(["--verify", "--trusted-pem"])
                    .arg(&root)
                    .arg("--untrusted-pem")
                    .arg(&issuing)
                    .args(["--id-attr:Id", "http://uri.etsi.org/01903/v1.3.2#:SignedProperties"])
                    .arg(file)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "xmlsec1 {level}: {}", String::from_utf8_lossy(&out.stderr));
            }
            _ => {
                let verdict = jwcrypto_verify(file, detached.as_ref().unwrap());
                assert!(
                    verdict.starts_with("VALID") && verdict.contains("xVals") && verdict.contains("rVals"),
                    "jwcrypto {level}: {verdict}"
                );
                assert_eq!(verdict.contains("arcTst"), *level == "B-LTA", "{verdict}");
            }
        }
        // Each at the level it was made; a B-LTA's archive time-stamp (CAdES: archive-time-stamp-v3
        // with its ats-hash-index-v3, EN 319 122-1 §5.5.3) checked.
        let (ok, report) = cloudsign_verify(&env, file, &root, detached.as_deref());
        assert!(
            ok && report.contains("TOTAL-PASSED") && report.contains(&format!("level:         {level}\n")),
            "{format} {level}: {report}"
        );
        assert_eq!(report.contains("check:         archive timestamp    passed"), *level == "B-LTA", "{format} {level}: {report}");
        assert!(report.contains("check:         signature timestamp  passed"), "{format} {level}: {report}");
        assert!(report.contains("CN=alice,O=cloudsign — good (embedded)"), "{format} {level}: {report}");

        // A CAdES B-LTA that lost a certificate its ats-hash-index-v3 covers (the root, which
        // the validation does not need: it is the trust anchor): the archive time-stamp no
        // longer holds (EN 319 122-1 §5.5.3), the signature is still a B-LT.
        if *format == "cades" && *level == "B-LTA" {
            let tampered = file.with_extension("tampered.p7s");
            run(Command::new(python()).arg("-c").arg(DROP_LAST_CERTIFICATE).arg(file).arg(&tampered));
            let (ok, report) = cloudsign_verify(&env, &tampered, &root, detached.as_deref());
            assert!(ok && report.contains("level:         B-LT\n"), "tampered {level}: {report}");
            assert!(
                report.contains(
                    "check:         archive timestamp    FAILED — the ats-hash-index-v3 covers a certificate the signature no longer has"
                ),
                "tampered {level}: {report}"
            );
        }
    }
}

/// Remove the last certificate of a CMS SignedData (asn1crypto; everything else keeps its
/// encoding).
const DROP_LAST_CERTIFICATE: &str = r#"
import sys
from asn1crypto import cms
ci = cms.ContentInfo.load(open(sys.argv[1], "rb").read())
sd = ci["content"]
certs = list(sd["certificates"])
assert len(certs) > 1
sd["certificates"] = cms.CertificateSet(certs[:-1])
open(sys.argv[2], "wb").write(ci.dump(force=False))
"#;

/// EN 319 102-1 §5.2.5 freshness: a B-LT whose only revocation data for the signer is an OCSP
/// response issued before the best-signature-time minus its own update interval (nextUpdate −
/// thisUpdate) is stale: pyHanko and `cloudsign verify` both refuse it (INDETERMINATE /
/// TRY_LATER, the stale response named); the same file with a response issued after the
/// time-stamp passes in both. The files are pyHanko's, over a PKI of stale_revinfo.py.
#[test]
fn stale_embedded_ocsp_is_refused_alike() {
    let env = Env::new(BIN, "sqlite");
    let plain = env.file("plain.pdf");
    std::fs::write(&plain, one_page_pdf("stale revocation data")).unwrap();
    let dir = plain.parent().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/stale_revinfo.py");
    run(Command::new(python()).arg(script).arg(&plain).arg(dir).env("PYTHONWARNINGS", "ignore"));
    let root = dir.join("root.pem");

    let fresh = dir.join("fresh.pdf");
    let (ok, out, err) = adesverify_offline(&fresh, &root);
    let (verified, report) = cloudsign_verify(&env, &fresh, &root, None);
    assert!(ok && out.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "pyHanko, fresh: {out}{err}\n{report}");
    assert!(verified && report.contains("Signature1 (PAdES): TOTAL-PASSED"), "{report}");
    assert!(report.contains("level:         B-LT\n") && report.contains("O=stale-test,CN=stale-test signer — good (embedded)"), "{report}");

    let stale = dir.join("stale.pdf");
    let (ok, out, err) = adesverify_offline(&stale, &root);
    let (verified, report) = cloudsign_verify(&env, &stale, &root, None);
    assert!(!ok && out.contains(":INTACT:UNTRUSTED"), "pyHanko, stale: {out}{err}\n{report}");
    assert!(!verified && report.contains("Signature1 (PAdES): INDETERMINATE / TRY_LATER"), "{report}");
    assert!(report.contains("no revocation status for O=stale-test,CN=stale-test signer"), "{report}");
    assert!(report.contains("not current at the validation time"), "the stale response is named: {report}");
}
