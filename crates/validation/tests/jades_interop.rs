//! JAdES / JWS validation against signatures made by jwcrypto (compact ES256 attached, JSON
//! with an unencoded detached payload `b64: false` + `crit`, general serialization with PS256,
//! `sigD` by URI hash) and by cloudsign-ades at B-T and with an archive time-stamp (signed with
//! `openssl pkeyutl`, time-stamped by `openssl ts`). The test PKI is
//! cloudsign-test-support's `fixtures/make-pki.sh` plus signers and a TSA without revocation
//! sources, so that the validation needs no revocation data.

mod common;

use std::process::Command;

use common::{now, pki, python, read, run};

use cloudsign_validation::engine::{Indication, SignatureReport, SubIndication};
use cloudsign_validation::jades::validate_jades;

fn validate_with(xml: &[u8], detached: Option<&[u8]>, anchor: &str) -> Vec<SignatureReport> {
    common::validate_against(anchor, |ctx| validate_jades(xml, detached, ctx))
}

fn validate(xml: &[u8], detached: Option<&[u8]>) -> SignatureReport {
    let reports = validate_with(xml, detached, "root.pem");
    assert_eq!(reports.len(), 1, "{reports:#?}");
    reports.into_iter().next().unwrap()
}

fn assert_passed(r: &SignatureReport) {
    assert_eq!(r.indication, Indication::TotalPassed, "{r:#?}");
    assert_eq!(r.format, "JAdES");
}

fn assert_failed(r: &SignatureReport, indication: Indication, sub: SubIndication) {
    assert_eq!((r.indication, r.sub_indication), (indication, Some(sub)), "{r:#?}");
}

const JWCRYPTO: &str = r#"
import sys, json, base64, hashlib
from jwcrypto import jwk, jws
from jwcrypto.common import json_encode
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
def der(p): return x509.load_pem_x509_certificate(open(p, 'rb').read()).public_bytes(Encoding.DER)
b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()
def base(name):
    leaf = der(name + '.pem')
    return {"x5c": [base64.b64encode(leaf).decode(), base64.b64encode(der('inter.pem')).decode()],
            "x5t#S256": b64u(hashlib.sha256(leaf).digest()), "sigT": "2025-06-01T12:00:00Z"}
reg = {n: jws.JWSEHeaderParameter(n, False, True, None) for n in ("sigT", "sigD")}
ec = jwk.JWK.from_pem(open('signer-ec.key', 'rb').read())
rsa = jwk.JWK.from_pem(open('signer-rsa.key', 'rb').read())
"#;

fn jwcrypto(code: &str) -> Vec<u8> {
    python(&format!("{JWCRYPTO}\n{code}"))
}

const PAYLOAD: &[u8] = b"{\"invoice\": 42, \"text\": \"Hello & welcome\"}";

fn flip_signature(jws: &str) -> String {
    // One character of the signature (the last base64url part or member) changed.
    let at = jws.rfind("signature").map_or_else(|| jws.rfind('.').unwrap() + 3, |s| s + 15);
    let mut b = jws.as_bytes().to_vec();
    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

#[test]
fn jwcrypto_compact_attached_es256() {
    std::fs::write(pki().join("payload.bin"), PAYLOAD).unwrap();
    let jws = jwcrypto(
        "s = jws.JWS(open('payload.bin', 'rb').read())\n\
         s.add_signature(ec, None, json_encode(dict(base('signer-ec'), alg='ES256')))\n\
         print(s.serialize(compact=True), end='')",
    );
    let text = String::from_utf8(jws.clone()).unwrap();
    let r = validate(&jws, None);
    assert_passed(&r);
    assert!(r.signer.as_deref().unwrap().contains("xml signer ec"));
    assert_eq!(r.level, Some("B-B"));
    assert_eq!(r.claimed_signing_time.as_deref(), Some("2025-06-01T12:00:00Z"));
    // Changed content: a JWS has no separate digest, the signature value fails.
    let parts: Vec<&str> = text.split('.').collect();
    let other = cloudsign_asn1::b64::encode_url(b"{\"invoice\": 43}");
    let changed = format!("{}.{}.{}", parts[0], other, parts[2]);
    assert_failed(&validate(changed.as_bytes(), None), Indication::TotalFailed, SubIndication::SigCryptoFailure);
    assert_failed(&validate(flip_signature(&text).as_bytes(), None), Indication::TotalFailed, SubIndication::SigCryptoFailure);
    let reports = validate_with(&jws, None, "other-root.pem");
    assert_failed(&reports[0], Indication::Indeterminate, SubIndication::NoCertificateChainFound);
}

#[test]
fn jwcrypto_json_unencoded_detached_payload() {
    std::fs::write(pki().join("payload.bin"), PAYLOAD).unwrap();
    let jws = jwcrypto(
        "s = jws.JWS(open('payload.bin', 'rb').read(), header_registry=reg)\n\
         s.add_signature(ec, None, json_encode(dict(base('signer-ec'), alg='ES256', b64=False, crit=['b64', 'sigT'])))\n\
         s.detach_payload()\n\
         print(s.serialize(), end='')",
    );
    let text = String::from_utf8(jws.clone()).unwrap();
    let r = validate(&jws, Some(PAYLOAD));
    assert_passed(&r);
    assert_eq!(r.level, Some("B-B"));
    // Another payload, or none.
    assert_failed(&validate(&jws, Some(b"changed")), Indication::TotalFailed, SubIndication::SigCryptoFailure);
    assert_failed(&validate(&jws, None), Indication::Indeterminate, SubIndication::FormatFailure);
    assert_failed(&validate(flip_signature(&text).as_bytes(), Some(PAYLOAD)), Indication::TotalFailed, SubIndication::SigCryptoFailure);
    let reports = validate_with(&jws, Some(PAYLOAD), "other-root.pem");
    assert_failed(&reports[0], Indication::Indeterminate, SubIndication::NoCertificateChainFound);
}

#[test]
fn jwcrypto_general_serialization_ps256_and_es256() {
    std::fs::write(pki().join("payload.bin"), PAYLOAD).unwrap();
    let jws = jwcrypto(
        "s = jws.JWS(open('payload.bin', 'rb').read())\n\
         s.add_signature(rsa, None, json_encode(dict(base('signer-rsa'), alg='PS256')))\n\
         s.add_signature(ec, None, json_encode(dict(base('signer-ec'), alg='ES256')))\n\
         print(s.serialize(), end='')",
    );
    assert!(String::from_utf8_lossy(&jws).contains("\"signatures\""));
    let reports = validate_with(&jws, None, "root.pem");
    assert_eq!(reports.len(), 2);
    reports.iter().for_each(assert_passed);
    assert!(reports[0].signer.as_deref().unwrap().contains("rsa"));
}

#[test]
fn jwcrypto_sigd_by_uri_hash() {
    let doc = b"the signed document\n";
    std::fs::write(pki().join("doc.bin"), doc).unwrap();
    let jws = jwcrypto(
        "d = open('doc.bin', 'rb').read()\n\
         sigd = {'mId': 'http://uri.etsi.org/19182/ObjectIdByURIHash', 'pars': ['doc.bin'], 'hashM': 'S256', 'hashV': [b64u(hashlib.sha256(d).digest())]}\n\
         s = jws.JWS(b'', header_registry=reg)\n\
         s.add_signature(ec, None, json_encode(dict(base('signer-ec'), alg='ES256', sigD=sigd, crit=['sigT', 'sigD'])))\n\
         print(s.serialize(compact=True), end='')",
    );
    assert_passed(&validate(&jws, Some(doc)));
    assert_failed(&validate(&jws, Some(b"another document\n")), Indication::TotalFailed, SubIndication::HashFailure);
    assert_failed(&validate(&jws, None), Indication::Indeterminate, SubIndication::FormatFailure);
}

#[test]
fn malformed_jws_is_a_format_failure() {
    let ec_header = |h: &str| format!("{}.{}.{}", cloudsign_asn1::b64::encode_url(h.as_bytes()), "eyJhIjoxfQ", "AAAA");
    let cases = [
        "".to_string(),
        "not a jws".to_string(),
        "a.b".to_string(),
        "a.b.c.d".to_string(),
        "!!!.e30.AAAA".to_string(),
        "{\"payload\": 1}".to_string(),
        "{\"signatures\": []}".to_string(),
        "{\"protected\": \"e30\"".to_string(),
        ec_header("not json"),
        ec_header("{}"),
        ec_header("{\"alg\":\"ES256\",\"crit\":[\"unknownParam\"],\"unknownParam\":1}"),
        ec_header("{\"alg\":\"ES256\",\"crit\":[]}"),
        ec_header("{\"alg\":\"ES256\",\"b64\":false}"),
        ec_header("{\"alg\":\"ES256\",\"x5c\":[\"not base64!\"]}"),
        ec_header("{\"alg\":\"ES256\"}"),
    ];
    for case in &cases {
        let reports = validate_with(case.as_bytes(), None, "root.pem");
        assert_eq!(reports.len(), 1, "{case}");
        assert_eq!(reports[0].indication, Indication::Indeterminate, "{case}: {:#?}", reports[0]);
        let sub = reports[0].sub_indication;
        assert!(matches!(sub, Some(SubIndication::FormatFailure | SubIndication::NoSigningCertificateFound)), "{case}: {sub:?}");
    }
    // A critical parameter this validator does not understand, on a real signature.
    let jws = jwcrypto(
        "r = dict(reg); r['zzz'] = jws.JWSEHeaderParameter('zzz', False, True, None)\n\
         s = jws.JWS(b'x', header_registry=r)\n\
         s.add_signature(ec, None, json_encode(dict(base('signer-ec'), alg='ES256', zzz=1, crit=['zzz'])))\n\
         print(s.serialize(compact=True), end='')",
    );
    assert_failed(&validate(&jws, None), Indication::Indeterminate, SubIndication::FormatFailure);
    // alg none is refused.
    let none = format!("{}.eyJhIjoxfQ.", cloudsign_asn1::b64::encode_url(b"{\"alg\":\"none\"}"));
    assert_ne!(validate(none.as_bytes(), None).indication, Indication::TotalPassed);
}

/// cloudsign-ades JAdES: detached `b64: false` JSON at B-T, plus an archive time-stamp; and
/// `sigD` by hash.
#[test]
fn cloudsign_jades_b_t_and_archive() {
    use cloudsign_ades::jades::{Params, add_archive_timestamp, archive_input, prepare_detached, prepare_sigd};
    use cloudsign_asn1::{HashAlgorithm, SignAlgorithm};
    let dir = pki();
    let cert = read("signer-ec.der");
    let chain = [read("inter.der")];
    let p = Params { scheme: SignAlgorithm::Ecdsa(HashAlgorithm::Sha256), certificate: &cert, chain: &chain, signing_time: now() - 60 };
    let sign = |tbs: &[u8]| {
        std::fs::write(dir.join("tbs.bin"), tbs).unwrap();
        run(Command::new("openssl")
            .args(["pkeyutl", "-sign", "-inkey", "signer-ec.key", "-in", "tbs.bin", "-out", "sig.der"])
            .current_dir(dir));
        read("sig.der")
    };
    let prepared = prepare_detached(PAYLOAD, &p).unwrap();
    let signature = sign(&prepared.to_be_signed);
    let (_, imprint) = prepared.timestamp_imprint(&signature).unwrap();
    let jws = prepared.finish_json(&signature, Some(&timestamp(&imprint)), None).unwrap();
    let r = validate(jws.as_bytes(), Some(PAYLOAD));
    assert_passed(&r);
    assert_eq!(r.level, Some("B-T"), "{r:#?}");
    assert!(r.proven_signing_time.is_some());
    assert_failed(&validate(jws.as_bytes(), Some(b"changed")), Indication::TotalFailed, SubIndication::SigCryptoFailure);

    // An archive time-stamp: reported valid (the level stays B-T: the test certificates name no
    // revocation source, so the validation data is not complete for B-LT).
    let input = archive_input(&jws).unwrap();
    let mut data = PAYLOAD.to_vec();
    data.extend_from_slice(&input.suffix);
    let archived = add_archive_timestamp(&jws, &timestamp(&cloudsign_ades::digest(HashAlgorithm::Sha256, &data))).unwrap();
    let r = validate(archived.as_bytes(), Some(PAYLOAD));
    assert_passed(&r);
    let archive: Vec<_> = r.timestamps.iter().filter(|t| t.kind == "archive").collect();
    assert_eq!(archive.len(), 1);
    assert!(archive[0].valid, "{r:#?}");
    // An archive time-stamp over something else is reported invalid.
    let wrong = add_archive_timestamp(&jws, &timestamp(&[7u8; 32])).unwrap();
    let r = validate(wrong.as_bytes(), Some(PAYLOAD));
    assert!(r.timestamps.iter().any(|t| t.kind == "archive" && !t.valid), "{r:#?}");

    // sigD.
    let doc_digest = cloudsign_ades::digest(HashAlgorithm::Sha256, b"document");
    let prepared = prepare_sigd(&[("document.txt", &doc_digest)], &p).unwrap();
    let signature = sign(&prepared.to_be_signed);
    let compact = prepared.finish(&signature).unwrap();
    assert_passed(&validate(compact.as_bytes(), Some(b"document")));
    assert_failed(&validate(compact.as_bytes(), Some(b"Document")), Indication::TotalFailed, SubIndication::HashFailure);
}

/// An RFC 3161 token over a SHA-256 imprint from `openssl ts`.
fn timestamp(imprint: &[u8]) -> Vec<u8> {
    let dir = pki();
    let hex: String = imprint.iter().map(|b| format!("{b:02x}")).collect();
    run(Command::new("openssl").args(["ts", "-query", "-sha256", "-cert", "-digest", &hex, "-out", "req.tsq"]).current_dir(dir));
    run(Command::new("openssl")
        .args(["ts", "-reply", "-config", "ts.cnf", "-queryfile", "req.tsq", "-token_out", "-out", "token.der"])
        .env("OPENSSL_CONF", "/dev/null")
        .current_dir(dir));
    read("token.der")
}
