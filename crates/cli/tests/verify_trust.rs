//! `cloudsign verify` and where its trust comes from: no anchors at all (the report is printed,
//! with the integrity checks, and the signature is INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND),
//! the system's CA store (`--trust-system`), and the EU list of trusted lists (`--eu-lotl`) with
//! a LOTL and two national lists built here (ETSI TS 119 612), signed by xmlsec1 and served on
//! loopback by a small HTTP server that counts what it is asked for.
//!
//! The signatures are made by other tools (pyHanko, openssl, signxml) with PKIs made by openssl.
//! Needs the pinned virtualenv of `scripts/test.sh` (`CLOUDSIGN_PYTHON`).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use cloudsign_test_support::pki::{ca_and_leaf, cms_sign};
use common::verify::*;
use common::*;
use serde_json::Value;

/// The outcome of the check `name` of signature `i`.
fn check<'a>(report: &'a Value, i: usize, name: &str) -> &'a str {
    report["signatures"][i]["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .and_then(|c| c["outcome"].as_str())
        .unwrap_or("absent")
}

fn no_chain() -> (String, String) {
    ("INDETERMINATE".into(), "NO_CERTIFICATE_CHAIN_FOUND".into())
}

#[tokio::test]
async fn without_trust_anchors_the_report_shows_the_integrity_checks() {
    let env = Env::new(BIN, "sqlite");
    let dir = env.file("");
    let (ca, leaf, key) = ca_and_leaf(&dir, "nobody");

    // PAdES by pyHanko.
    let pdf = env.file("doc.pdf");
    std::fs::write(&pdf, one_page_pdf("signed by pyHanko")).unwrap();
    let signed_pdf = env.file("doc-signed.pdf");
    run(Command::new(venv_tool("pyhanko"))
        .args(["sign", "addsig", "--field", "Sig1", "pemder", "--key"])
        .arg(&key)
        .arg("--cert")
        .arg(&leaf)
        .arg("--chain")
        .arg(&ca)
        .arg("--no-pass")
        .arg(&pdf)
        .arg(&signed_pdf));
    // CAdES (detached) by openssl.
    let data = env.file("data.bin");
    std::fs::write(&data, b"any file at all\n").unwrap();
    let p7s = env.file("data.p7s");
    cms_sign(&data, (&leaf, &key), None, &p7s);
    // XAdES (enveloped) by signxml.
    let xml = env.file("order.xml");
    std::fs::write(&xml, "<order xmlns=\"urn:example\"><item>1</item></order>").unwrap();
    let signed_xml = env.file("order-signed.xml");
    let script = r#"
import sys
from lxml import etree
from signxml import SignatureMethod
from signxml.xades import XAdESSigner
root = etree.parse(sys.argv[1]).getroot()
signed = XAdESSigner(signature_algorithm=SignatureMethod.ECDSA_SHA256).sign(
    root, key=open(sys.argv[2], "rb").read(), cert=[open(sys.argv[3]).read()])
open(sys.argv[4], "wb").write(etree.tostring(signed))
"#;
    run(Command::new(venv_tool("python")).arg("-c").arg(script).arg(&xml).arg(&key).arg(&leaf).arg(&signed_xml));

    let detached = ["--offline", "--detached", data.to_str().unwrap()];
    let cases: [(&Path, &[&str], &str); 3] =
        [(&signed_pdf, &["--offline"], "PAdES"), (&p7s, &detached, "CAdES"), (&signed_xml, &["--offline"], "XAdES")];
    for (file, args, format) in cases {
        let (code, r, err) = verify_json(&env, file, args, &[]);
        assert_eq!((code, indication(&r, 0)), (1, no_chain()), "{format}: {r:#}");
        assert_eq!(r["signatures"][0]["format"], format, "{r:#}");
        assert_eq!(r["signatures"][0]["signer"], "CN=nobody Signer", "{format}: {r:#}");
        // The integrity checks were made and passed; only the trust is undecided.
        for name in ["format", "signing_certificate", "digest", "signature_value"] {
            assert_eq!(check(&r, 0, name), "passed", "{format} {name}: {r:#}");
        }
        assert_eq!(check(&r, 0, "certificate_chain"), "indeterminate", "{format}: {r:#}");
        assert!(err.contains("no trust anchors"), "{format}: {err}");
        assert_eq!(r["trust"], serde_json::json!([]), "{r:#}");

        // The readable report says the same.
        let out = verify_output(&env, file, args, &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND"), "{format}: {text}");
        assert!(text.contains("signature value      passed"), "{format}: {text}");
        assert!(text.contains("trust anchors: none"), "{format}: {text}");
    }
    // The same PDF with the CA trusted passes: the checks above were not vacuous.
    let (code, r, _) = verify_json(&env, &signed_pdf, &["--offline", "--trust", ca.to_str().unwrap()], &[]);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}");
    assert_eq!(check(&r, 0, "certificate_chain"), "passed", "{r:#}");

    // Without anchors a changed document is still caught: TOTAL-FAILED, not merely untrusted.
    let other = env.file("other.bin");
    std::fs::write(&other, b"another file\n").unwrap();
    let (code, r, _) = verify_json(&env, &p7s, &["--offline", "--detached", other.to_str().unwrap()], &[]);
    assert_eq!((code, indication(&r, 0)), (1, ("TOTAL-FAILED".into(), "HASH_FAILURE".into())), "{r:#}");
    assert_eq!((check(&r, 0, "digest"), check(&r, 0, "signature_value")), ("failed", "not_checked"), "{r:#}");
    let mut bytes = std::fs::read(&signed_pdf).unwrap();
    let at = bytes.windows(7).position(|w| w == b"pyHanko").unwrap();
    bytes[at] = b'P';
    let tampered = env.file("doc-tampered.pdf");
    std::fs::write(&tampered, &bytes).unwrap();
    let (code, r, _) = verify_json(&env, &tampered, &["--offline"], &[]);
    assert_eq!((code, indication(&r, 0)), (1, ("TOTAL-FAILED".into(), "HASH_FAILURE".into())), "{r:#}");
    assert_eq!(check(&r, 0, "digest"), "failed", "{r:#}");
    let signed = std::fs::read_to_string(&signed_xml).unwrap();
    let tampered_xml = env.file("order-tampered.xml");
    std::fs::write(&tampered_xml, signed.replace("<item>1</item>", "<item>2</item>")).unwrap();
    let (code, r, _) = verify_json(&env, &tampered_xml, &["--offline"], &[]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(indication(&r, 0), ("TOTAL-FAILED".into(), "HASH_FAILURE".into()), "{r:#}");
}

#[tokio::test]
async fn without_trust_anchors_the_time_stamp_imprint_is_still_checked() {
    // A PAdES B-T made through the service: its signature time-stamp is checked (token signature,
    // message imprint over the signature value, RFC 3161 §2.4.2) even when the TSA cannot be
    // trusted for want of anchors.
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let (_, root) = write_ca(&env);
    let pdf = env.file("doc.pdf");
    std::fs::write(&pdf, one_page_pdf("time-stamped")).unwrap();
    let signed = env.file("doc-bt.pdf");
    let o = env
        .command()
        .arg("sign")
        .arg(&pdf)
        .args(["--service", &server.url, "--user", "alice", "--credential", &cred, "--level", "B-T", "--out"])
        .arg(&signed)
        .env("CLOUDSIGN_PASSWORD", PASSWORD)
        .env("CLOUDSIGN_PIN", PIN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    drop(server);
    let (code, r, _) = verify_json(&env, &signed, &["--offline"], &[]);
    assert_eq!((code, indication(&r, 0)), (1, no_chain()), "{r:#}");
    assert_eq!(check(&r, 0, "signature_value"), "passed", "{r:#}");
    assert_eq!(check(&r, 0, "signature_timestamp"), "indeterminate", "{r:#}");
    let detail = r["signatures"][0]["checks"].as_array().unwrap().iter().find(|c| c["name"] == "signature_timestamp").unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("message imprint matches") && detail.contains("trust anchor"), "{detail}");
    // With the service's root trusted the same time-stamp passes.
    let (code, r, _) = verify_json(&env, &signed, &["--offline", "--trust", root.to_str().unwrap()], &[]);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}");
    assert_eq!(check(&r, 0, "signature_timestamp"), "passed", "{r:#}");
}

#[tokio::test]
async fn trust_system_reads_the_system_store_or_ssl_cert_file() {
    let env = Env::new(BIN, "sqlite");
    let dir = env.file("");
    let (ca, leaf, key) = ca_and_leaf(&dir, "system");
    let data = env.file("data.bin");
    std::fs::write(&data, b"trusted by the system store").unwrap();
    let p7s = env.file("data.p7s");
    cms_sign(&data, (&leaf, &key), None, &p7s);
    let args = ["--offline", "--trust-system", "--detached", data.to_str().unwrap()];

    // A bundle as the system has them (the system's own roots, then the test CA).
    let bundle = env.file("bundle.pem");
    let system = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    std::fs::write(&bundle, format!("{system}{}", std::fs::read_to_string(&ca).unwrap())).unwrap();
    let (code, r, _) = verify_json(&env, &p7s, &args, &[("SSL_CERT_FILE", &bundle)]);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}");
    let source = r["trust"][0]["source"].as_str().unwrap();
    assert!(source.contains("bundle.pem"), "{r:#}");
    assert!(r["trust"][0]["anchors"].as_u64().unwrap() >= 1, "{r:#}");

    // A directory of PEM files (SSL_CERT_DIR) works alike.
    let certs = env.file("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&ca, certs.join("test-ca.pem")).unwrap();
    let (code, r, _) = verify_json(&env, &p7s, &args, &[("SSL_CERT_DIR", &certs)]);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}");

    // The system's own store does not hold the test CA.
    if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        let (code, r, _) = verify_json(&env, &p7s, &args, &[]);
        assert_eq!((code, indication(&r, 0)), (1, no_chain()), "{r:#}");
        assert!(r["trust"][0]["source"].as_str().unwrap().contains("/etc/ssl/certs/ca-certificates.crt"), "{r:#}");
        assert!(r["trust"][0]["anchors"].as_u64().unwrap() > 10, "the system's roots are read: {r:#}");
    }
    // A named bundle that is not there is an error, not an empty store.
    let out = verify_output(&env, &p7s, &args, &[("SSL_CERT_FILE", &env.file("missing.pem"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("SSL_CERT_FILE") && err.contains("missing.pem"), "{err}");
}

// ─── The EU list of trusted lists ───

/// A tiny HTTP/1.1 server on loopback serving `files` (path → body), counting the requests for
/// each path. Lives as long as the test process; `stop` makes it refuse everything after.
struct Served {
    url: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Served {
    fn start() -> Served {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (f, h) = (files.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                *h.lock().unwrap().entry(path.clone()).or_default() += 1;
                let body = f.lock().unwrap().get(&path).cloned();
                let response = match body {
                    Some(b) => [
                        format!("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.etsi.tsl+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len())
                            .into_bytes(),
                        b,
                    ]
                    .concat(),
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                };
                let _ = stream.write_all(&response);
            }
        });
        Served { url, files, hits }
    }

    fn put(&self, path: &str, body: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_string(), body);
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// When the lists built here are next updated: so far ahead that a cached copy serves.
const NEXT_UPDATE: Option<&str> = Some("2099-01-01T00:00:00Z");

/// A national list naming `ca` as a granted CA/QC service.
fn national_list(territory: &str, ca: &Path) -> String {
    let scheme = format!(
        "<tsl:TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric</tsl:TSLType>\n    <tsl:SchemeTerritory>{territory}</tsl:SchemeTerritory>"
    );
    let providers = granted_ca(&format!("TSP of {territory}"), &format!("Qualified CA of {territory}"), ca);
    tsl_xml(&format!("Supervisory body of {territory}"), &scheme, &providers, NEXT_UPDATE)
}

/// One `OtherTSLPointer`.
fn pointer(location: &str, signer: &Path, tsl_type: &str, territory: &str, mime: &str) -> String {
    format!(
        r#"<tsl:OtherTSLPointer>
        <tsl:ServiceDigitalIdentities><tsl:ServiceDigitalIdentity><tsl:DigitalId><tsl:X509Certificate>{}</tsl:X509Certificate></tsl:DigitalId></tsl:ServiceDigitalIdentity></tsl:ServiceDigitalIdentities>
        <tsl:TSLLocation>{location}</tsl:TSLLocation>
        <tsl:AdditionalInformation>
          <tsl:OtherInformation><tsl:TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/{tsl_type}</tsl:TSLType></tsl:OtherInformation>
          <tsl:OtherInformation><tsl:SchemeTerritory>{territory}</tsl:SchemeTerritory></tsl:OtherInformation>
          <tsl:OtherInformation><tslx:MimeType>{mime}</tslx:MimeType></tsl:OtherInformation>
        </tsl:AdditionalInformation>
      </tsl:OtherTSLPointer>"#,
        pem_body(signer)
    )
}

#[tokio::test]
async fn eu_lotl_points_to_the_national_lists() {
    let env = Env::new(BIN, "sqlite");
    let dir = env.file("");
    // Two member states' CAs with a signer each; the LOTL's signer, two list operators, and a
    // key the LOTL does not name.
    let (ca1, leaf1, key1) = ca_and_leaf(&dir, "state1");
    let (ca2, leaf2, key2) = ca_and_leaf(&dir, "state2");
    let (lotl_cert, _, _) = ca_and_leaf(&dir, "lotl");
    let (op1, _, _) = ca_and_leaf(&dir, "operator1");
    let (op2, _, _) = ca_and_leaf(&dir, "operator2");
    let (rogue, _, _) = ca_and_leaf(&dir, "rogue");
    let (other_signer, _, _) = ca_and_leaf(&dir, "other-lotl");
    let key_of = |name: &str| dir.join(format!("{name}-ca.key"));

    let server = Served::start();
    let url = |path: &str| format!("{}{path}", server.url);
    // List 1 signed by its operator; list 2 by a key the LOTL does not give for it.
    server.put("/tl-xa.xml", xmlsec_sign(&dir, "tl-xa", &national_list("XA", &ca1), (&key_of("operator1"), &op1)));
    server.put("/tl-xb.xml", xmlsec_sign(&dir, "tl-xb", &national_list("XB", &ca2), (&key_of("rogue"), &rogue)));
    // The LOTL: the two national lists, a pointer to itself and one to a PDF rendering (neither
    // is followed).
    let pointers = [
        pointer(&url("/lotl.xml"), &lotl_cert, "EUlistofthelists", "EU", "application/vnd.etsi.tsl+xml"),
        pointer(&url("/tl-xa.xml"), &op1, "EUgeneric", "XA", "application/vnd.etsi.tsl+xml"),
        pointer(&url("/tl-xa.pdf"), &op1, "EUgeneric", "XA", "application/pdf"),
        pointer(&url("/tl-xb.xml"), &op2, "EUgeneric", "XB", "application/vnd.etsi.tsl+xml"),
    ]
    .concat();
    let scheme = format!(
        "<tsl:TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUlistofthelists</tsl:TSLType>\n    <tsl:SchemeTerritory>EU</tsl:SchemeTerritory>\n    <tsl:PointersToOtherTSL>{pointers}</tsl:PointersToOtherTSL>"
    );
    let lotl = xmlsec_sign(&dir, "lotl", &tsl_xml("European Commission", &scheme, "", NEXT_UPDATE), (&key_of("lotl"), &lotl_cert));
    server.put("/lotl.xml", lotl.clone());
    // The same LOTL changed after signing: one national list's address replaced.
    let text = String::from_utf8(lotl.clone()).unwrap();
    assert!(text.contains("/tl-xb.xml"));
    server.put("/lotl-changed.xml", text.replace("/tl-xb.xml", "/tl-evil.xml").into_bytes());

    let data = env.file("data.bin");
    std::fs::write(&data, b"signed in a member state").unwrap();
    let (p7s1, p7s2) = (env.file("one.p7s"), env.file("two.p7s"));
    cms_sign(&data, (&leaf1, &key1), None, &p7s1);
    cms_sign(&data, (&leaf2, &key2), None, &p7s2);
    let cache = env.file("cache");
    let with_lotl = |file: &Path, lotl: &str, signer: &Path| {
        let lotl = format!("--eu-lotl={lotl}");
        let args = ["--offline", "--detached", data.to_str().unwrap(), lotl.as_str(), "--lotl-signer", signer.to_str().unwrap()];
        verify_json(&env, file, &args, &[("XDG_CACHE_HOME", &cache)])
    };

    // A signature whose CA is in list 1: trusted through the LOTL.
    let (code, r, err) = with_lotl(&p7s1, &url("/lotl.xml"), &lotl_cert);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}\n{err}");
    assert_eq!(check(&r, 0, "certificate_chain"), "passed", "{r:#}");
    let sources: Vec<&str> = r["trust"].as_array().unwrap().iter().filter_map(|t| t["source"].as_str()).collect();
    assert_eq!(sources.len(), 1, "only list 1 is used: {r:#}");
    assert!(sources[0].contains("XA") && sources[0].contains("/tl-xa.xml"), "{r:#}");
    assert_eq!(r["trust"][0]["anchors"], 1, "{r:#}");
    // List 2 is refused, and says why.
    assert!(err.contains("trusted list of XB") && err.contains("refused") && err.contains("not signed by any"), "{err}");
    assert_eq!(
        (server.hits("/lotl.xml"), server.hits("/tl-xa.xml"), server.hits("/tl-xb.xml"), server.hits("/tl-xa.pdf")),
        (1, 1, 1, 0),
        "the LOTL's pointer to itself and to a PDF are not followed"
    );

    // The CA of list 2 is not trusted.
    let (code, r, err) = with_lotl(&p7s2, &url("/lotl.xml"), &lotl_cert);
    assert_eq!((code, indication(&r, 0)), (1, no_chain()), "{r:#}\n{err}");
    assert_eq!(check(&r, 0, "signature_value"), "passed", "{r:#}");

    // Second run: the LOTL and list 1 come from the cache (their NextUpdate is ahead); the
    // refused list 2 was not cached and is asked for again.
    let (code, r, _) = with_lotl(&p7s1, &url("/lotl.xml"), &lotl_cert);
    assert_eq!((code, indication(&r, 0).0.as_str()), (0, "TOTAL-PASSED"), "{r:#}");
    assert_eq!((server.hits("/lotl.xml"), server.hits("/tl-xa.xml"), server.hits("/tl-xb.xml")), (1, 1, 3));

    // A LOTL changed after signing is refused, and nothing is trusted from it.
    let out = {
        let lotl = format!("--eu-lotl={}", url("/lotl-changed.xml"));
        let args = ["--offline", "--detached", data.to_str().unwrap(), lotl.as_str(), "--lotl-signer", lotl_cert.to_str().unwrap()];
        verify_output(&env, &p7s1, &args, &[("XDG_CACHE_HOME", &cache)])
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("list of trusted lists is refused") && err.contains("modified"), "{err}");
    assert_eq!(server.hits("/tl-evil.xml"), 0);
    // A LOTL signed by someone else than the signer given is refused too.
    let lotl_arg = format!("--eu-lotl={}", url("/lotl.xml"));
    let args = ["--offline", "--detached", data.to_str().unwrap(), lotl_arg.as_str(), "--lotl-signer", other_signer.to_str().unwrap()];
    let out = verify_output(&env, &p7s1, &args, &[("XDG_CACHE_HOME", &env.file("cache2"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("list of trusted lists is refused") && err.contains("not signed by any"), "{err}");
    // --eu-lotl needs the LOTL's signing certificates.
    let out = verify_output(&env, &p7s1, &["--offline", &lotl_arg], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--lotl-signer"), "{err}");
}
