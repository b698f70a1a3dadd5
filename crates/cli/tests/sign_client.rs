//! `cloudsign sign`: a local file signed as CAdES through the CSC v2 API of a running service.
//! `openssl cms -verify` checks every signature (and refuses it once the file changes); the B-T
//! time-stamp token is taken out of the CMS with Python's asn1crypto and checked by
//! `openssl ts -verify` against the signature value.
//!
//! Needs the pinned virtualenv of `scripts/test.sh` (`CLOUDSIGN_PYTHON`).

mod common;

use std::process::Command;

use common::*;

fn sign(env: &Env, server: &Server, file: &std::path::Path, credential: &str, extra: &[&str], pin: &str) -> (bool, String) {
    let out = env
        .command()
        .arg("sign")
        .arg(file)
        .args(["--service", &server.url, "--user", "alice", "--credential", credential])
        .args(extra)
        .env("CLOUDSIGN_PASSWORD", PASSWORD)
        .env("CLOUDSIGN_PIN", pin)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn cms_verify(env: &Env, p7s: &std::path::Path, content: &std::path::Path) -> (bool, String) {
    cms_verify_with(env, p7s, content, &[])
}

/// `openssl cms -verify` of a detached signature, with extra options (e.g. `-crl_check`).
fn cms_verify_with(env: &Env, p7s: &std::path::Path, content: &std::path::Path, options: &[&str]) -> (bool, String) {
    let (_, root) = write_ca(env);
    let out = Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any"])
        .args(options)
        .args(["-out", "/dev/null", "-in"])
        .arg(p7s)
        .arg("-content")
        .arg(content)
        .arg("-CAfile")
        .arg(&root)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The signature time-stamp of a CAdES signature, checked by openssl ts against the hash of the
/// signature value.
fn verify_signature_timestamp(env: &Env, p7s: &std::path::Path, digest: &str) {
    let python = std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON must name the pinned virtualenv's python: run scripts/test.sh");
    let script = r#"
import hashlib, sys
from asn1crypto import cms
info = cms.ContentInfo.load(open(sys.argv[1], "rb").read())
signer = info["content"]["signer_infos"][0]
token = [a for a in signer["unsigned_attrs"] if a["type"].dotted == "1.2.840.113549.1.9.16.2.14"][0]["values"][0]
open(sys.argv[2], "wb").write(token.dump())
print(hashlib.new(sys.argv[3], signer["signature"].native).hexdigest())
"#;
    let token = env.file("signature-timestamp.tst");
    let imprint = run(Command::new(python).arg("-c").arg(script).arg(p7s).arg(&token).arg(digest)).trim().to_string();
    ts_verify_digest(env, &token, &imprint);
}

/// `openssl ts -verify` of a time-stamp token against the message imprint it must carry.
fn ts_verify_digest(env: &Env, token: &std::path::Path, imprint: &str) {
    let (issuing, root) = write_ca(env);
    let out = run(Command::new("openssl")
        .args(["ts", "-verify", "-token_in", "-in"])
        .arg(token)
        .args(["-digest", imprint, "-CAfile"])
        .arg(&root)
        .arg("-untrusted")
        .arg(&issuing));
    assert!(out.contains("Verification: OK"), "{out}");
}

#[tokio::test]
async fn cades_through_the_csc_api() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let ec = env.add_credential("alice", &[])["credentialID"].as_str().unwrap().to_string();
    let rsa = env.add_credential("alice", &["--key", "rsa-2048"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();

    // A file larger than the read buffer, signed by both credentials, at B-T (default) and B-B.
    let doc = env.file("contract.bin");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&doc, &body).unwrap();
    let (ok, err) = sign(&env, &server, &doc, &ec, &[], PIN);
    assert!(ok, "{err}");
    assert!(err.contains("CAdES B-T"), "{err}");
    let p7s = env.file("contract.bin.p7s");
    let (ok, out) = cms_verify(&env, &p7s, &doc);
    assert!(ok && out.contains("Verification successful"), "{out}");
    verify_signature_timestamp(&env, &p7s, "sha256");
    let printed = run(Command::new("openssl").args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"]).arg(&p7s));
    for attr in ["contentType", "signingTime", "messageDigest", "id-smime-aa-signingCertificateV2", "id-smime-aa-timeStampToken"] {
        assert!(printed.contains(attr), "{attr} missing: {printed}");
    }

    // pyHanko judges the detached CMS too (INTACT:TRUSTED, its time-stamp as well), and the
    // B-LT one carries the CRLs and OCSP responses that make it verifiable later.
    let lt = env.file("contract.lt.p7s");
    let (ok, err) = sign(&env, &server, &doc, &ec, &["--level", "B-LT", "--out", lt.to_str().unwrap()], PIN);
    assert!(ok && err.contains("CAdES B-LT"), "{err}");
    let (_, root) = write_ca(&env);
    let pyhanko = std::path::PathBuf::from(std::env::var("CLOUDSIGN_PYTHON").unwrap()).with_file_name("pyhanko");
    for p7s in [&p7s, &lt] {
        let out = run(Command::new(&pyhanko)
            .args(["sign", "validate", "--detached"])
            .arg(p7s)
            .arg("--trust")
            .arg(&root)
            .arg("--trust-replace")
            .arg(&doc));
        assert!(out.contains("INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "pyhanko --detached: {out}");
    }
    // B-LTA: archive-time-stamp-v3, its imprint recomputed independently (asn1crypto) and the
    // token checked by openssl ts -verify; the whole CMS still verifies.
    let lta = env.file("contract.lta.p7s");
    let (ok, err) = sign(&env, &server, &doc, &ec, &["--level", "B-LTA", "--out", lta.to_str().unwrap()], PIN);
    assert!(ok && err.contains("CAdES B-LTA"), "{err}");
    let python = std::env::var("CLOUDSIGN_PYTHON").unwrap();
    let check = concat!(env!("CARGO_MANIFEST_DIR"), "/../ades/tests/cades_ats_check.py");
    let out = run(Command::new(&python).arg(check).arg(&lta).arg(&doc).arg("--ca").arg(&root));
    assert!(out.contains("all checks passed"), "{out}");
    let out = run(Command::new(&pyhanko)
        .args(["sign", "validate", "--detached"])
        .arg(&lta)
        .arg("--trust")
        .arg(&root)
        .arg("--trust-replace")
        .arg(&doc));
    assert!(out.contains("INTACT:TRUSTED"), "pyhanko --detached B-LTA: {out}");
    let (ok, out) = cms_verify_with(&env, &lt, &doc, &["-crl_check_all"]);
    assert!(ok, "the embedded CRLs cover the whole chain: {out}");
    let printed = run(Command::new("openssl").args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"]).arg(&lt));
    assert!(printed.contains("1.3.6.1.5.5.7.16.2") || printed.contains("id-ri-ocsp-response"), "the OCSP response is embedded: {printed}");

    let rsa_out = env.file("contract.rsa.p7s");
    let (ok, err) = sign(&env, &server, &doc, &rsa, &["--level", "B-B", "--out", rsa_out.to_str().unwrap()], PIN);
    assert!(ok && err.contains("CAdES B-B"), "{err}");
    let (ok, out) = cms_verify(&env, &rsa_out, &doc);
    assert!(ok, "{out}");
    let printed = run(Command::new("openssl").args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"]).arg(&rsa_out));
    assert!(!printed.contains("id-smime-aa-timeStampToken"), "B-B has no time-stamp");

    // The file changed after signing: openssl refuses.
    let mut changed = body.clone();
    changed[1000] ^= 1;
    let other = env.file("contract-changed.bin");
    std::fs::write(&other, &changed).unwrap();
    let (ok, out) = cms_verify(&env, &p7s, &other);
    assert!(!ok, "a changed file must not verify: {out}");

    // Refusals are readable and exit non-zero: wrong PIN, unknown credential, a format to come.
    let (ok, err) = sign(&env, &server, &doc, &ec, &["--out", env.file("x.p7s").to_str().unwrap()], "000000");
    assert!(!ok && err.contains("credentials/authorize refused") && err.contains("PIN"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("000000"), "{err}");
    let (ok, err) = sign(&env, &server, &doc, "no-such-credential", &[], PIN);
    assert!(!ok && err.contains("credentials/info refused"), "{err}");
    let (ok, err) = sign(&env, &server, &doc, &ec, &["--format", "pades"], PIN);
    assert!(!ok && err.contains("not a PDF"), "{err}");
    let (ok, err) = sign(&env, &server, &env.file("missing.bin"), &ec, &[], PIN);
    assert!(!ok && err.contains("not a readable file"), "{err}");
    assert!(!env.file("x.p7s").exists(), "nothing written on failure");

    // JAdES: the file is the detached payload of a compact JWS, hashed as it streams.
    let (ok, err) = sign(&env, &server, &doc, &ec, &["--format", "jades", "--level", "B-B"], PIN);
    assert!(ok && err.contains("JAdES B-B"), "{err}");
    let token = std::fs::read_to_string(env.file("contract.bin.jws")).unwrap();
    let verdict = jwcrypto_verify(&env, &token, &body);
    assert!(verdict.starts_with("VALID ES256"), "{verdict}");
    assert!(jwcrypto_verify(&env, &token, &changed).starts_with("INVALID"));
    // B-T and B-LT: JWS JSON with the signature time-stamp (and validation values) in etsiU.
    for level in ["B-T", "B-LT"] {
        let out = env.file(&format!("contract.{level}.jws.json"));
        let (ok, err) = sign(&env, &server, &doc, &ec, &["--format", "jades", "--level", level, "--out", out.to_str().unwrap()], PIN);
        assert!(ok && err.contains(&format!("JAdES {level}")), "{err}");
        let verdict = jwcrypto_verify(&env, &std::fs::read_to_string(&out).unwrap(), &body);
        assert!(verdict.starts_with("VALID ES256"), "{verdict}");
        let imprint = verdict.split(" TST ").nth(1).and_then(|t| t.split(' ').next()).unwrap_or_else(|| panic!("no sigTst: {verdict}"));
        ts_verify_digest(&env, &env.file("jades.tst"), imprint);
        assert_eq!(verdict.contains("xVals") && verdict.contains("rVals"), level == "B-LT", "{verdict}");
    }
    // sigD: the file named by its hash in the protected header, the payload empty.
    let sigd = env.file("contract.sigd.jws");
    let (ok, err) = sign(&env, &server, &doc, &ec, &["--format", "jades", "--sigd", "--out", sigd.to_str().unwrap()], PIN);
    assert!(ok, "{err}");
    let verdict = jwcrypto_verify(&env, &std::fs::read_to_string(&sigd).unwrap(), &body);
    assert!(verdict.starts_with("VALID ES256") && verdict.contains("SIGD contract.bin"), "{verdict}");

    // Attached: the document travels inside the JWS.
    let attached = env.file("contract.attached.jws");
    let (ok, err) =
        sign(&env, &server, &doc, &ec, &["--format", "jades", "--packaging", "attached", "--out", attached.to_str().unwrap()], PIN);
    assert!(ok, "{err}");
    let verdict = jwcrypto_verify(&env, &std::fs::read_to_string(&attached).unwrap(), &body);
    assert!(verdict.starts_with("VALID ES256"), "{verdict}");
    // B-LTA: arcTst over payload, header, signature and the etsiU elements before it.
    let out = env.file("contract.lta.jws.json");
    let (ok, err) = sign(&env, &server, &doc, &ec, &["--format", "jades", "--level", "B-LTA", "--out", out.to_str().unwrap()], PIN);
    assert!(ok && err.contains("JAdES B-LTA"), "{err}");
    let verdict = jwcrypto_verify(&env, &std::fs::read_to_string(&out).unwrap(), &body);
    assert!(verdict.starts_with("VALID ES256") && verdict.contains("xVals"), "{verdict}");
    let arc = verdict.split(" ARC ").nth(1).unwrap_or_else(|| panic!("no arcTst: {verdict}"));
    let mut arc_token = env.file("jades.tst").into_os_string();
    arc_token.push(".arc");
    ts_verify_digest(&env, std::path::Path::new(&arc_token), arc.trim());
    // A P-521 key signs JAdES as ES512 (the only JWS name for P-521), by default at B-B.
    let p521 = env.add_credential("alice", &["--key", "ecdsa-p521"])["credentialID"].as_str().unwrap().to_string();
    let out = env.file("contract.es512.jws");
    let (ok, err) = sign(&env, &server, &doc, &p521, &["--format", "jades", "--out", out.to_str().unwrap()], PIN);
    assert!(ok, "{err}");
    let verdict = jwcrypto_verify(&env, &std::fs::read_to_string(&out).unwrap(), &body);
    assert!(verdict.starts_with("VALID ES512"), "{verdict}");
    // The password and PIN never go to a plain-http service elsewhere.
    let remote = env
        .command()
        .arg("sign")
        .arg(&doc)
        .args(["--service", "http://sign.example.com", "--user", "alice", "--credential", &ec])
        .env("CLOUDSIGN_PASSWORD", PASSWORD)
        .env("CLOUDSIGN_PIN", PIN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&remote.stderr);
    assert!(!remote.status.success() && err.contains("https://"), "{err}");
}

#[tokio::test]
async fn sign_doc_cades_detached_and_attached() {
    use serde_json::json;
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let id = env.add_credential("alice", &[])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let info = api.ok("info", json!({})).await;
    assert_eq!(info["signature_formats"]["formats"], json!(["C", "X", "P", "J"]));
    assert_eq!(info["conformance_levels"], json!(["Ades-B-B", "Ades-B-T", "Ades-B-LT", "Ades-B-LTA"]));
    assert!(info["methods"].as_array().unwrap().contains(&json!("signatures/signDoc")));

    let (a, b) = (b"first document".to_vec(), b"second document, attached".to_vec());
    let (da, db) = (sha256(&a), sha256(&b));
    // SCAL 2: the SAD binds both documents' digests.
    let sad = api.sad(&id, 2, Some((&[da.clone(), db.clone()], SHA256))).await;
    let body = json!({
        "credentialID": id, "SAD": sad, "returnValidationInformation": true,
        "documentDigests": [{"hashes": [b64(&da)], "hashAlgorithmOID": SHA256, "signature_format": "C", "conformance_level": "Ades-B-T", "signAlgo": "1.2.840.10045.4.3.2"}],
        "documents": [{"document": b64(&b), "signature_format": "C", "conformance_level": "ades-b-b", "signAlgo": "1.2.840.10045.4.3.2"}],
    });
    let v = api.ok("signatures/signDoc", body.clone()).await;
    assert!(v["validationInfo"]["crl"][0].is_string(), "{v}");
    // Detached CAdES B-T over the first document's digest.
    let p7s = env.file("a.p7s");
    std::fs::write(&p7s, unb64(v["SignatureObject"][0].as_str().unwrap())).unwrap();
    let doc_a = env.file("a.txt");
    std::fs::write(&doc_a, &a).unwrap();
    let (ok, out) = cms_verify(&env, &p7s, &doc_a);
    assert!(ok, "{out}");
    verify_signature_timestamp(&env, &p7s, "sha256");
    // Attached CAdES B-B: openssl verifies it and gives the document back.
    let attached = env.file("b.p7m");
    std::fs::write(&attached, unb64(v["DocumentWithSignature"][0].as_str().unwrap())).unwrap();
    let (_, root) = write_ca(&env);
    let content = env.file("b.out");
    run(Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in"])
        .arg(&attached)
        .arg("-CAfile")
        .arg(&root)
        .arg("-out")
        .arg(&content));
    assert_eq!(std::fs::read(&content).unwrap(), b);

    // B-LT: the root, the TSA certificate, the CRL and the signer's OCSP response travel inside;
    // openssl checks revocation from the embedded CRL alone.
    let sad = api.sad(&id, 1, Some((std::slice::from_ref(&da), SHA256))).await;
    let lt = api
        .ok(
            "signatures/signDoc",
            json!({"credentialID": id, "SAD": sad,
                "documentDigests": [{"hashes": [b64(&da)], "signature_format": "C", "conformance_level": "Ades-B-LT", "signAlgo": "1.2.840.10045.4.3.2"}]}),
        )
        .await;
    let lt_file = env.file("a-lt.p7s");
    std::fs::write(&lt_file, unb64(lt["SignatureObject"][0].as_str().unwrap())).unwrap();
    let (ok, text) = cms_verify_with(&env, &lt_file, &doc_a, &["-crl_check"]);
    assert!(ok && text.contains("Verification successful"), "{text}");
    // With the root's CRL inside too, revocation is checked for every certificate of the chain.
    let (ok, text) = cms_verify_with(&env, &lt_file, &doc_a, &["-crl_check_all"]);
    assert!(ok && text.contains("Verification successful"), "{text}");
    let (ok, text) = cms_verify_with(&env, &p7s, &doc_a, &["-crl_check"]);
    assert!(!ok && text.contains("unable to get certificate CRL"), "without B-LT there is no CRL to check against: {text}");
    let printed = run(Command::new("openssl").args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"]).arg(&lt_file));
    assert!(
        printed.contains("otherRevInfoFormat") && printed.contains("1.3.6.1.5.5.7.16.2") && printed.contains("Basic OCSP Response"),
        "the OCSP response is embedded (RFC 5940): {printed}"
    );
    verify_signature_timestamp(&env, &lt_file, "sha256");

    // The SAD is spent (one signature per document); a digest it does not bind is refused.
    let (s, v) = api.post("signatures/signDoc", body).await;
    assert_error("signDoc (spent)", s, &v, 400, "invalid_request", "");
    let sad = api.sad(&id, 1, Some((std::slice::from_ref(&da), SHA256))).await;
    let unbound = json!({"credentialID": id, "SAD": sad,
        "documentDigests": [{"hashes": [b64(&db)], "signature_format": "C", "signAlgo": "1.2.840.10045.4.3.2"}]});
    let (s, v) = api.post("signatures/signDoc", unbound).await;
    assert_error("signDoc (unbound)", s, &v, 400, "invalid_request", "not authorized");
    for (field, value, text) in [
        ("signature_format", "Z", "signature_format"),
        ("signature_format", "P", "signed from documents"),
        ("conformance_level", "Ades-B-XL", "conformance_level"),
        ("signed_envelope_property", "Attached", "Detached"),
    ] {
        let mut element = json!({"hashes": [b64(&da)], "signature_format": "C", "signAlgo": "1.2.840.10045.4.3.2"});
        element[field] = json!(value);
        let (s, v) = api.post("signatures/signDoc", json!({"credentialID": id, "SAD": sad, "documentDigests": [element]})).await;
        assert_error("signDoc (options)", s, &v, 400, "invalid_request", text);
    }
    let (s, v) = api.post("signatures/signDoc", json!({"credentialID": id, "SAD": sad})).await;
    assert_error("signDoc (nothing)", s, &v, 400, "invalid_request", "documentDigests or documents");
    // The SAD survived those refusals: it still signs its document.
    let ok_body = json!({"credentialID": id, "SAD": sad,
        "documentDigests": [{"hashes": b64(&da), "signature_format": "C", "signAlgo": "1.2.840.10045.4.3.2"}]});
    assert!(api.ok("signatures/signDoc", ok_body).await["SignatureObject"][0].is_string());
}

/// A JAdES compact JWS with a detached, unencoded payload, verified by jwcrypto with the key of
/// the certificate in its `x5c`; `x5t#S256` checked against that certificate.
fn jwcrypto_verify(env: &Env, jws: &str, payload: &[u8]) -> String {
    let python = std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON must name the pinned virtualenv's python: run scripts/test.sh");
    let script = r#"
import base64, hashlib, json, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk, jws
from jwcrypto.common import JWSEHeaderParameter
token = open(sys.argv[1]).read()
payload = open(sys.argv[2], "rb").read()
b64u = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
tst = ""
if token.startswith("{"):
    # Flattened JWS JSON (RFC 7515 7.2.2) without payload; etsiU in the unprotected header.
    obj = json.loads(token)
    header = json.loads(b64u(obj["protected"]))
    for item in obj.get("header", {}).get("etsiU", []):
        prop = json.loads(b64u(item))
        if "sigTst" in prop:
            open(sys.argv[3], "wb").write(base64.b64decode(prop["sigTst"]["tstTokens"][0]["val"]))
            # TS 119 182-1 5.3.4.1: the imprint is over the base64url JWS signature value.
            tst = " TST " + hashlib.new(sys.argv[4], obj["signature"].encode()).hexdigest()
        for key in ("xVals", "rVals"):
            if key in prop:
                tst += " " + key
        if "arcTst" in prop:
            # TS 119 182-1 5.3.6.3: payload (unencoded for b64 false), ".", protected, ".",
            # signature, ".", then the etsiU elements before arcTst as written.
            before = obj["header"]["etsiU"][: obj["header"]["etsiU"].index(item)]
            body = obj["payload"].encode() if "payload" in obj else payload
            data = body + b"." + obj["protected"].encode() + b"." + obj["signature"].encode() + b"." + "".join(before).encode()
            open(sys.argv[3] + ".arc", "wb").write(base64.b64decode(prop["arcTst"]["tstTokens"][0]["val"]))
            tst += " ARC " + hashlib.new(sys.argv[4], data).hexdigest()
else:
    header = json.loads(b64u(token.split(".")[0]))
der = base64.b64decode(header["x5c"][0])
assert header["x5t#S256"] == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode(), "x5t#S256"
attached = (obj.get("payload") if token.startswith("{") else token.split(".")[1]) not in (None, "")
sigd = header.get("sigD")
if sigd:
    # TS 119 182-1 5.2.8.3.3: the payload is empty; the header names the file and its hash.
    assert sigd["mId"] == "http://uri.etsi.org/19182/ObjectIdByURIHash" and set(header["crit"]) == {"sigT", "sigD"}, header
    assert sigd["hashM"] == "S256" and sigd["hashV"] == [base64.urlsafe_b64encode(hashlib.sha256(payload).digest()).rstrip(b"=").decode()], sigd
    tst += " SIGD " + sigd["pars"][0]
elif attached:
    assert "b64" not in header and header["crit"] == ["sigT"], header
else:
    assert header["b64"] is False and set(header["crit"]) == {"b64", "sigT"}, header
cert = x509.load_der_x509_certificate(der)
key = jwk.JWK.from_pem(cert.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
registry = {"sigT": JWSEHeaderParameter("Claimed signing time (JAdES)", True, True, None),
            "sigD": JWSEHeaderParameter("Signed data references (JAdES)", True, True, None)}
s = jws.JWS(header_registry=registry)
s.deserialize(token)
try:
    if sigd:
        s.verify(key, detached_payload=b"")
    elif attached:
        s.verify(key)
        assert s.payload == payload, "the attached payload is the document"
    else:
        s.verify(key, detached_payload=payload)
    print("VALID", header["alg"], header["sigT"] + tst)
except Exception as e:
    print("INVALID", type(e).__name__)
"#;
    let (token_file, payload_file) = (env.file("jades.jws"), env.file("jades.payload"));
    std::fs::write(&token_file, jws).unwrap();
    std::fs::write(&payload_file, payload).unwrap();
    run(Command::new(python).arg("-c").arg(script).arg(&token_file).arg(&payload_file).arg(env.file("jades.tst")).arg("sha256"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn sign_doc_jades_verified_by_jwcrypto() {
    use serde_json::json;
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let p256 = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let p521 = env.add_credential("alice", &["--scal", "1", "--key", "ecdsa-p521"])["credentialID"].as_str().unwrap().to_string();
    let rsa = env.add_credential("alice", &["--scal", "1", "--key", "rsa-2048"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let mut api = Api::new(&server);
    api.login("alice").await;
    let payload = br#"{"order": 4711, "amount": "42.00 EUR"}"#.to_vec();
    for (id, sign_algo, alg) in
        [(&p256, "1.2.840.10045.4.3.2", "ES256"), (&p521, "1.2.840.10045.4.3.4", "ES512"), (&rsa, "1.2.840.113549.1.1.11", "RS256")]
    {
        let sad = api.sad(id, 1, None).await;
        let v = api
            .ok(
                "signatures/signDoc",
                json!({"credentialID": id, "SAD": sad, "documents": [{"document": b64(&payload), "signature_format": "J", "signAlgo": sign_algo}]}),
            )
            .await;
        let token = String::from_utf8(unb64(v["SignatureObject"][0].as_str().unwrap())).unwrap();
        assert_eq!(token.split('.').nth(1), Some(""), "detached: the payload is left out of the compact form: {token}");
        let verdict = jwcrypto_verify(&env, &token, &payload);
        assert!(verdict.starts_with(&format!("VALID {alg}")), "{verdict}");
        let mut changed = payload.clone();
        changed[10] ^= 1;
        assert!(jwcrypto_verify(&env, &token, &changed).starts_with("INVALID"), "a changed payload must not verify");
    }
    // Refusal: P-521 with SHA-256 has no JWS name.
    let sad = api.sad(&p521, 1, None).await;
    let (s, v) = api
        .post(
            "signatures/signDoc",
            json!({"credentialID": p521, "SAD": sad, "documents": [{"document": b64(&payload), "signature_format": "J", "signAlgo": "1.2.840.10045.4.3.2"}]}),
        )
        .await;
    assert_error("signDoc (JWS curve)", s, &v, 400, "invalid_request", "P-521 with SHA-512");
    // B-LTA from the service: CAdES from a digest (archive-time-stamp-v3, checked by
    // cades_ats_check.py) and JAdES from a document (arcTst, recomputed by the script above).
    let sad = api.sad(&p256, 2, None).await;
    let v = api
        .ok(
            "signatures/signDoc",
            json!({"credentialID": p256, "SAD": sad,
                "documentDigests": [{"hashes": [b64(&sha256(&payload))], "hashAlgorithmOID": SHA256, "signature_format": "C", "conformance_level": "Ades-B-LTA", "signAlgo": "1.2.840.10045.4.3.2"}],
                "documents": [{"document": b64(&payload), "signature_format": "J", "conformance_level": "Ades-B-LTA", "signAlgo": "1.2.840.10045.4.3.2"}]}),
        )
        .await;
    let (p7s, data) = (env.file("service-lta.p7s"), env.file("service-lta.json"));
    std::fs::write(&p7s, unb64(v["SignatureObject"][0].as_str().unwrap())).unwrap();
    std::fs::write(&data, &payload).unwrap();
    let (_, root) = write_ca(&env);
    let python = std::env::var("CLOUDSIGN_PYTHON").unwrap();
    let check = concat!(env!("CARGO_MANIFEST_DIR"), "/../ades/tests/cades_ats_check.py");
    let out = run(Command::new(&python).arg(check).arg(&p7s).arg(&data).arg("--ca").arg(&root));
    assert!(out.contains("all checks passed"), "{out}");
    let jws = String::from_utf8(unb64(v["SignatureObject"][1].as_str().unwrap())).unwrap();
    let verdict = jwcrypto_verify(&env, &jws, &payload);
    let arc = verdict.split(" ARC ").nth(1).unwrap_or_else(|| panic!("no arcTst: {verdict}"));
    let mut arc_token = env.file("jades.tst").into_os_string();
    arc_token.push(".arc");
    ts_verify_digest(&env, std::path::Path::new(&arc_token), arc.trim());

    // B-T: the JSON serialization with the signature time-stamp in etsiU.
    let sad = api.sad(&p256, 1, None).await;
    let v = api
        .ok(
            "signatures/signDoc",
            json!({"credentialID": p256, "SAD": sad, "documents": [{"document": b64(&payload), "signature_format": "J", "conformance_level": "Ades-B-T", "signAlgo": "1.2.840.10045.4.3.2"}]}),
        )
        .await;
    let jws = String::from_utf8(unb64(v["SignatureObject"][0].as_str().unwrap())).unwrap();
    let verdict = jwcrypto_verify(&env, &jws, &payload);
    assert!(verdict.starts_with("VALID ES256") && verdict.contains(" TST "), "{verdict}");
    let imprint = verdict.split(" TST ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    ts_verify_digest(&env, &env.file("jades.tst"), &imprint);
}

/// How the CLI authenticates follows the service's `info` and what the user gave; refusals
/// name the method, the HTTP status, the service's message and, for the usual mistakes, what
/// to do. Time-stamps can come from any RFC 3161 TSA (`--tsa`).
#[tokio::test]
async fn tokens_tsa_and_refusals() {
    let env = Env::new(BIN, "sqlite");
    env.add_user("alice");
    let ec = env.add_credential("alice", &[])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let doc = env.file("memo.txt");
    std::fs::write(&doc, b"A memo signed with a bearer token").unwrap();
    let cli = |args: &[&str], envs: &[(&str, &str)]| {
        let out =
            env.command().arg("sign").arg(&doc).args(args).envs(envs.iter().copied()).stdin(std::process::Stdio::null()).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };

    // A token from auth/login (any client), given in a file: no password needed.
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/csc/v2/auth/login", server.url))
        .basic_auth("alice", Some(PASSWORD))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let token_file = env.file("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let out = env.file("token.p7s");
    let (ok, err) = cli(
        &[
            "--service",
            &server.url,
            "--credential",
            &ec,
            "--token-file",
            token_file.to_str().unwrap(),
            "--level",
            "B-B",
            "--out",
            out.to_str().unwrap(),
        ],
        &[("CLOUDSIGN_PIN", PIN)],
    );
    assert!(ok && !err.contains("auth/login"), "{err}");
    let (ok, text) = cms_verify(&env, &out, &doc);
    assert!(ok, "{text}");
    // ... or in CLOUDSIGN_TOKEN; B-T with the time-stamp from the RFC 3161 TSA named by --tsa.
    let out = env.file("tsa.p7s");
    let tsa = format!("{}/tsa", server.url);
    let (ok, err) = cli(
        &["--service", &server.url, "--credential", &ec, "--tsa", &tsa, "--out", out.to_str().unwrap()],
        &[("CLOUDSIGN_PIN", PIN), ("CLOUDSIGN_TOKEN", token)],
    );
    assert!(ok && err.contains("CAdES B-T"), "{err}");
    let (ok, text) = cms_verify(&env, &out, &doc);
    assert!(ok, "{text}");
    verify_signature_timestamp(&env, &out, "sha256");
    // --tsa is really used: a TSA that is not there fails the signing, saying which call.
    let (ok, err) = cli(
        &[
            "--service",
            &server.url,
            "--credential",
            &ec,
            "--tsa",
            "http://127.0.0.1:9/tsa",
            "--out",
            env.file("none.p7s").to_str().unwrap(),
        ],
        &[("CLOUDSIGN_PIN", PIN), ("CLOUDSIGN_TOKEN", token)],
    );
    assert!(!ok && err.contains("RFC 3161 time-stamp"), "{err}");
    assert!(!env.file("none.p7s").exists());

    // A wrong token: 401 with the service's message and a hint; the token is never shown.
    let (ok, err) = cli(&["--service", &server.url, "--credential", &ec], &[("CLOUDSIGN_TOKEN", "not-a-valid-token-4711")]);
    assert!(!ok, "{err}");
    assert!(err.contains("credentials/info refused (HTTP 401 Unauthorized): "), "{err}");
    assert!(err.contains("hint: ") && err.contains("may have expired"), "{err}");
    assert!(!err.contains("not-a-valid-token-4711"), "{err}");
    // A base URI with the version in it.
    let (ok, err) =
        cli(&["--service", &format!("{}/csc/v2", server.url), "--user", "alice", "--credential", &ec], &[("CLOUDSIGN_PASSWORD", PASSWORD)]);
    assert!(!ok && err.contains("info refused (HTTP ") && err.contains("without /csc/v1 or /csc/v2"), "{err}");
    // No way to authenticate given: what the service offers instead.
    let (ok, err) = cli(&["--service", &server.url, "--credential", &ec], &[]);
    assert!(!ok && err.contains("the service wants authentication (authType: basic") && err.contains("--user"), "{err}");
    // v1, found by --api: the same login and signature.
    let out = env.file("v1.p7s");
    let (ok, err) = cli(
        &[
            "--service",
            &server.url,
            "--api",
            "v1",
            "--user",
            "alice",
            "--credential",
            &ec,
            "--level",
            "B-B",
            "--out",
            out.to_str().unwrap(),
        ],
        &[("CLOUDSIGN_PASSWORD", PASSWORD), ("CLOUDSIGN_PIN", PIN)],
    );
    assert!(ok, "{err}");
    let (ok, text) = cms_verify(&env, &out, &doc);
    assert!(ok, "{text}");
    // Never an empty message.
    assert!(!err.contains("error: \n"), "{err}");
}
