//! XAdES / XMLDSig validation against signatures made by other tools: xmlsec1 (enveloped, from
//! a template, ECDSA with exclusive C14N and RSA with inclusive C14N 1.0), signxml (XMLSigner
//! enveloped ECDSA with C14N 1.1, XAdESSigner with RSA-PSS), and cloudsign-ades at B-T (signed
//! with `openssl pkeyutl`, time-stamped by `openssl ts`). The test PKI is
//! cloudsign-test-support's `fixtures/make-pki.sh` plus signers and a TSA without revocation
//! sources, so that the validation needs no revocation data.

mod common;

use std::process::Command;

use common::{now, pki, python, read, run};

use cloudsign_validation::engine::{Indication, SignatureReport, SubIndication};
use cloudsign_validation::xades::validate_xades;

fn validate_with(xml: &[u8], detached: Option<&[u8]>, anchor: &str) -> Vec<SignatureReport> {
    common::validate_against(anchor, |ctx| validate_xades(xml, detached, ctx))
}

fn validate(xml: &[u8]) -> SignatureReport {
    let reports = validate_with(xml, None, "root.pem");
    assert_eq!(reports.len(), 1, "{reports:#?}");
    reports.into_iter().next().unwrap()
}

fn assert_passed(r: &SignatureReport) {
    assert_eq!(r.indication, Indication::TotalPassed, "{r:#?}");
    assert_eq!(r.format, "XAdES");
}

fn assert_failed(r: &SignatureReport, indication: Indication, sub: SubIndication) {
    assert_eq!((r.indication, r.sub_indication), (indication, Some(sub)), "{r:#?}");
}

/// The common negative checks: changed content, changed signature value, another anchor.
fn check_tampering(xml: &[u8], content: (&str, &str)) {
    let text = String::from_utf8(xml.to_vec()).unwrap();
    assert!(text.contains(content.0));
    let changed = text.replacen(content.0, content.1, 1);
    assert_failed(&validate(changed.as_bytes()), Indication::TotalFailed, SubIndication::HashFailure);

    // One base64 character of the signature value changed.
    let open = text.find("SignatureValue").unwrap();
    let at = open + text[open..].find('>').unwrap() + 5;
    let c = text.as_bytes()[at];
    let mut bytes = text.clone().into_bytes();
    bytes[at] = if c == b'A' { b'B' } else { b'A' };
    assert_failed(&validate(&bytes), Indication::TotalFailed, SubIndication::SigCryptoFailure);

    let reports = validate_with(xml, None, "other-root.pem");
    assert_failed(&reports[0], Indication::Indeterminate, SubIndication::NoCertificateChainFound);
}

const DOC: &str = "<doc xmlns=\"urn:test\"><item id=\"i1\">Hello &amp; welcome</item><!-- a comment -->\n<other xmlns:p=\"urn:p\" p:a=\"1\">text</other></doc>\n";

fn xmlsec_template(method: &str, c14n: &str, transforms: &str) -> String {
    let doc = DOC.trim_end().trim_end_matches("</doc>");
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{doc}<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo>",
            "<CanonicalizationMethod Algorithm=\"{c14n}\"/><SignatureMethod Algorithm=\"{method}\"/>",
            "<Reference URI=\"\"><Transforms><Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>{transforms}</Transforms>",
            "<DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><DigestValue/></Reference></SignedInfo>",
            "<SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature></doc>\n"
        ),
        doc = doc,
        c14n = c14n,
        method = method,
        transforms = transforms
    )
}

fn xmlsec_sign(name: &str, template: &str, key: &str) -> Vec<u8> {
    let dir = pki();
    std::fs::write(dir.join(format!("{name}.tmpl.xml")), template).unwrap();
    run(Command::new("xmlsec1")
        .args(["--sign", "--privkey-pem", &format!("{key}.key,{key}.pem,inter.pem"), "--output"])
        .arg(format!("{name}.xml"))
        .arg(format!("{name}.tmpl.xml"))
        .current_dir(dir));
    read(&format!("{name}.xml"))
}

#[test]
fn xmlsec1_enveloped_ecdsa_exclusive_c14n() {
    let xml = xmlsec_sign(
        "xmlsec-ec",
        &xmlsec_template(
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            "http://www.w3.org/2001/10/xml-exc-c14n#",
            "<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        ),
        "signer-ec",
    );
    let r = validate(&xml);
    assert_passed(&r);
    assert!(r.signer.as_deref().unwrap().contains("xml signer ec"));
    assert_eq!(r.level, None, "plain XMLDSig has no AdES level");
    check_tampering(&xml, ("welcome", "welcomE"));
}

#[test]
fn xmlsec1_enveloped_rsa_inclusive_c14n() {
    // No C14N transform: the node set is converted with inclusive C14N 1.0.
    let xml = xmlsec_sign(
        "xmlsec-rsa",
        &xmlsec_template("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315", ""),
        "signer-rsa",
    );
    let r = validate(&xml);
    assert_passed(&r);
    assert!(r.signer.as_deref().unwrap().contains("xml signer rsa"));
    check_tampering(&xml, ("text</other>", "texT</other>"));
}

const SIGNXML: &str = r#"
import sys
from lxml import etree
from signxml import XMLSigner, methods, SignatureMethod
from signxml.xades import XAdESSigner
root = etree.fromstring(open('doc.xml', 'rb').read())
kind = sys.argv[1] if len(sys.argv) > 1 else ''
"#;

fn signxml(code: &str) -> Vec<u8> {
    std::fs::write(pki().join("doc.xml"), DOC).unwrap();
    python(&format!("{SIGNXML}\n{code}"))
}

#[test]
fn signxml_enveloped_ecdsa_c14n11() {
    let xml = signxml(
        "certs = open('signer-ec.pem').read() + open('inter.pem').read()\n\
         signed = XMLSigner(method=methods.enveloped, signature_algorithm=SignatureMethod.ECDSA_SHA256).sign(root, key=open('signer-ec.key', 'rb').read(), cert=certs)\n\
         sys.stdout.buffer.write(etree.tostring(signed))",
    );
    assert!(String::from_utf8_lossy(&xml).contains("xml-c14n11"));
    let r = validate(&xml);
    assert_passed(&r);
    check_tampering(&xml, ("welcome", "welcomE"));
}

#[test]
fn signxml_xades_rsa_pss() {
    let xml = signxml(
        "certs = open('signer-rsa.pem').read() + open('inter.pem').read()\n\
         signed = XAdESSigner(signature_algorithm=SignatureMethod.SHA256_RSA_MGF1).sign(root, key=open('signer-rsa.key', 'rb').read(), cert=certs)\n\
         sys.stdout.buffer.write(etree.tostring(signed))",
    );
    assert!(String::from_utf8_lossy(&xml).contains("SignedProperties"));
    let r = validate(&xml);
    assert_passed(&r);
    assert_eq!(r.level, Some("B-B"), "{r:#?}");
    assert!(r.claimed_signing_time.is_some(), "{r:#?}");
    check_tampering(&xml, ("welcome", "welcomE"));
    // A changed signed property: the SignedProperties reference fails.
    let text = String::from_utf8(xml).unwrap();
    let at = text.find("SigningTime>").unwrap() + "SigningTime>".len();
    let year: u32 = text[at..at + 4].parse().unwrap();
    let changed = format!("{}{}{}", &text[..at], year - 1, &text[at + 4..]);
    assert_failed(&validate(changed.as_bytes()), Indication::TotalFailed, SubIndication::HashFailure);
}

#[test]
fn hostile_xml_is_a_format_failure() {
    let laughs = concat!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n",
        "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n",
        "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n",
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n",
        "<!ENTITY lol9 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n",
        "]>\n<lolz>&lol9;<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"/></lolz>"
    );
    let xxe = "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<r>&x;<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"/></r>";
    let external_dtd = "<?xml version=\"1.0\"?>\n<!DOCTYPE r SYSTEM \"http://example.invalid/r.dtd\">\n<r><Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"/></r>";
    let parameter = "<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://example.invalid/p\"> %p;]><r/>";
    // The test PKI is made on first use: not inside the timed part.
    let _ = validate_with(b"<r/>", None, "root.pem");
    for (name, xml) in
        [("billion laughs", laughs), ("external entity", xxe), ("external DTD", external_dtd), ("parameter entity", parameter)]
    {
        let start = std::time::Instant::now();
        let reports = validate_with(xml.as_bytes(), None, "root.pem");
        assert_eq!(reports.len(), 1, "{name}");
        assert_failed(&reports[0], Indication::Indeterminate, SubIndication::FormatFailure);
        assert!(start.elapsed().as_secs() < 2, "{name}");
    }
    // Not XML, no signature, and a signature without its parts.
    for xml in ["not xml", "<r/>", "<r><Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"/></r>"] {
        assert_failed(&validate(xml.as_bytes()), Indication::Indeterminate, SubIndication::FormatFailure);
    }
}

/// A cloudsign-ades XAdES at B-T: enveloped and detached, signed with `openssl pkeyutl`, the
/// signature time-stamp from `openssl ts`.
#[test]
fn cloudsign_xades_b_t() {
    use cloudsign_ades::xades::{Input, Params, prepare};
    use cloudsign_asn1::{HashAlgorithm, SignAlgorithm};
    let dir = pki();
    let cert = read("signer-ec.der");
    let chain = [read("inter.der")];
    let p = Params { scheme: SignAlgorithm::Ecdsa(HashAlgorithm::Sha256), certificate: &cert, chain: &chain, signing_time: now() - 60 };
    let file = b"a detached file\n".to_vec();
    let file_digest = cloudsign_ades::digest(HashAlgorithm::Sha256, &file);
    for (n, input) in [Input::Enveloped(DOC.as_bytes()), Input::Detached { digest: &file_digest, uri: "file.txt", mime_type: None }]
        .into_iter()
        .enumerate()
    {
        let prepared = prepare(input, &p).unwrap();
        std::fs::write(dir.join("tbs.bin"), &prepared.to_be_signed).unwrap();
        run(Command::new("openssl")
            .args(["pkeyutl", "-sign", "-inkey", "signer-ec.key", "-in", "tbs.bin", "-out", "sig.der"])
            .current_dir(dir));
        let signature = read("sig.der");
        let (_, imprint) = prepared.timestamp_imprint(&signature).unwrap();
        let token = timestamp(&imprint);
        let xml = prepared.finish(&signature, Some(&token), None).unwrap();
        let detached = (n == 1).then_some(file.as_slice());
        let reports = validate_with(&xml, detached, "root.pem");
        let r = &reports[0];
        assert_passed(r);
        assert_eq!(r.level, Some("B-T"), "{r:#?}");
        assert!(r.proven_signing_time.is_some() && r.timestamps.iter().all(|t| t.valid), "{r:#?}");
        assert!(r.claimed_signing_time.is_some());
        if n == 1 {
            let changed = validate_with(&xml, Some(b"another file\n"), "root.pem");
            assert_failed(&changed[0], Indication::TotalFailed, SubIndication::HashFailure);
            let missing = validate_with(&xml, None, "root.pem");
            assert_failed(&missing[0], Indication::Indeterminate, SubIndication::FormatFailure);
        } else {
            check_tampering(&xml, ("welcome", "welcomE"));
        }
    }
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
