//! Trusted lists (ETSI TS 119 612) signed by xmlsec1 with keys and certificates made by the
//! openssl CLI at test time: loading with the operator's certificate, the anchors of granted
//! services, and refusal of modified lists, other signers, DOCTYPEs and truncated input.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use cloudsign_validation::tsl::{self, TslError};
use cloudsign_validation::x509::Certificate;

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// The keys and certificates, made once per test process (kept in memory; the files are removed).
struct Pki {
    /// File name → contents: `{name}.key` and `{name}.pem` for operator-ec, operator-rsa, other
    /// (list signers) and ca-granted, ca-withdrawn, tsa (listed services).
    files: HashMap<String, Vec<u8>>,
    certs: Vec<(&'static str, Certificate)>,
}

impl Pki {
    fn cert(&self, name: &str) -> &Certificate {
        &self.certs.iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// The certificate's DER as single-line base64 (as in a TL's X509Certificate).
    fn b64(&self, name: &str) -> String {
        let pem = std::str::from_utf8(&self.files[&format!("{name}.pem")]).unwrap();
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }
}

/// A fresh scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("cloudsign-tsl-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let scratch = Scratch::new();
        let dir = &scratch.0;
        let specs: [(&str, &[&str], &str, &str); 6] = [
            (
                "operator-ec",
                &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
                "/C=SE/O=Supervisory Body/CN=TL Operator EC",
                "sign",
            ),
            ("operator-rsa", &["-newkey", "rsa:2048"], "/C=SE/O=Supervisory Body/CN=TL Operator RSA", "sign"),
            ("other", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/C=SE/O=Somebody Else/CN=TL Operator", "sign"),
            ("ca-granted", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"], "/C=SE/O=Good TSP/CN=Qualified CA 1", "ca"),
            ("ca-withdrawn", &["-newkey", "rsa:2048"], "/C=SE/O=Good TSP/CN=Old Qualified CA", "ca"),
            ("tsa", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "/C=SE/O=Good TSP/CN=Qualified TSA", "tsa"),
        ];
        let mut certs = Vec::new();
        let mut files = HashMap::new();
        for (name, key, subject, kind) in specs {
            let ext: &[&str] = match kind {
                "ca" => &["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                "tsa" => &["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=critical,timeStamping"],
                _ => &["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "keyUsage=critical,digitalSignature,nonRepudiation"],
            };
            run(Command::new("openssl")
                .env("OPENSSL_CONF", "/dev/null")
                .current_dir(dir)
                .args(["req", "-x509", "-nodes", "-days", "3650", "-sha256", "-subj", subject])
                .args(key)
                .args(ext)
                .args(["-keyout", &format!("{name}.key"), "-out", &format!("{name}.pem")]));
            let pem = std::fs::read_to_string(dir.join(format!("{name}.pem"))).unwrap();
            certs.push((name, Certificate::parse_pem_all(&pem).unwrap().remove(0)));
            for file in [format!("{name}.key"), format!("{name}.pem")] {
                files.insert(file.clone(), std::fs::read(dir.join(&file)).unwrap());
            }
        }
        Pki { files, certs }
    })
}

/// How the template's signature is made.
struct Template {
    method: &'static str,
    /// The SignedInfo CanonicalizationMethod.
    c14n: &'static str,
    /// The list reference's URI: "" or "#tsl-id".
    uri: &'static str,
    /// A second reference to XAdES-like SignedProperties in a ds:Object.
    signed_properties: bool,
}

const EC_PLAIN: Template = Template { method: ECDSA_SHA256, c14n: EXC_C14N, uri: "", signed_properties: false };

fn service(name: &str, svc_type: &str, status: &str, cert_b64: &str) -> String {
    format!(
        r#"
        <tsl:TSPService>
          <tsl:ServiceInformation>
            <tsl:ServiceTypeIdentifier>{svc_type}</tsl:ServiceTypeIdentifier>
            <tsl:ServiceName>
              <tsl:Name xml:lang="sv">{name} (sv)</tsl:Name>
              <tsl:Name xml:lang="en">{name}</tsl:Name>
            </tsl:ServiceName>
            <tsl:ServiceDigitalIdentity>
              <tsl:DigitalId>
                <tsl:X509Certificate>{cert_b64}</tsl:X509Certificate>
              </tsl:DigitalId>
            </tsl:ServiceDigitalIdentity>
            <tsl:ServiceStatus>{status}</tsl:ServiceStatus>
            <tsl:StatusStartingTime>2016-06-30T22:00:00Z</tsl:StatusStartingTime>
          </tsl:ServiceInformation>
        </tsl:TSPService>"#
    )
}

/// A minimal TS 119 612 list: one TSP with a granted CA/QC, a granted TSA/QTST and a withdrawn
/// CA/QC, and a ds:Signature template for xmlsec1 to fill.
fn template(p: &Pki, t: &Template) -> String {
    let services = [
        service("Qualified CA 1", tsl::TYPE_CA_QC, tsl::STATUS_GRANTED, &p.b64("ca-granted")),
        service("Qualified TSA", tsl::TYPE_TSA_QTST, tsl::STATUS_GRANTED, &p.b64("tsa")),
        service("Old Qualified CA", tsl::TYPE_CA_QC, tsl::STATUS_WITHDRAWN, &p.b64("ca-withdrawn")),
    ]
    .concat();
    let (object, sp_reference) = if t.signed_properties {
        (
            r##"<ds:Object><xades:QualifyingProperties xmlns:xades="http://uri.etsi.org/01903/v1.3.2#" Target="#sig"><xades:SignedProperties Id="sig-sp">
<xades:SignedSignatureProperties><xades:SigningTime>2024-05-10T08:00:00Z</xades:SigningTime></xades:SignedSignatureProperties>
</xades:SignedProperties></xades:QualifyingProperties></ds:Object>"##,
            format!(
                r##"<ds:Reference Type="http://uri.etsi.org/01903#SignedProperties" URI="#sig-sp"><ds:Transforms><ds:Transform Algorithm="{EXC_C14N}"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference>"##
            ),
        )
    } else {
        ("", String::new())
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<tsl:TrustServiceStatusList xmlns:tsl="http://uri.etsi.org/02231/v2#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
    Id="tsl-id" TSLTag="http://uri.etsi.org/19612/TSLTag">
  <tsl:SchemeInformation>
    <tsl:TSLVersionIdentifier>5</tsl:TSLVersionIdentifier>
    <tsl:TSLSequenceNumber>42</tsl:TSLSequenceNumber>
    <tsl:TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric</tsl:TSLType>
    <tsl:SchemeOperatorName>
      <tsl:Name xml:lang="sv">Tillsynsmyndigheten</tsl:Name>
      <tsl:Name xml:lang="en">Supervisory Body &amp; Co</tsl:Name>
    </tsl:SchemeOperatorName>
    <tsl:SchemeTerritory>SE</tsl:SchemeTerritory>
    <tsl:ListIssueDateTime>2024-05-10T08:00:00Z</tsl:ListIssueDateTime>
    <tsl:NextUpdate>
      <tsl:dateTime>2024-11-10T08:00:00Z</tsl:dateTime>
    </tsl:NextUpdate>
  </tsl:SchemeInformation>
  <tsl:TrustServiceProviderList>
    <tsl:TrustServiceProvider>
      <tsl:TSPInformation>
        <tsl:TSPName>
          <tsl:Name xml:lang="en">Good TSP AB</tsl:Name>
        </tsl:TSPName>
      </tsl:TSPInformation>
      <tsl:TSPServices>{services}
      </tsl:TSPServices>
    </tsl:TrustServiceProvider>
  </tsl:TrustServiceProviderList>
<ds:Signature Id="sig"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="{c14n}"/><ds:SignatureMethod Algorithm="{method}"/><ds:Reference URI="{uri}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="{EXC_C14N}"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference>{sp_reference}</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo>{object}</ds:Signature></tsl:TrustServiceStatusList>
"#,
        c14n = t.c14n,
        method = t.method,
        uri = t.uri,
    )
}

const ID_ATTRS: [&str; 4] = [
    "--id-attr:Id",
    "http://uri.etsi.org/02231/v2#:TrustServiceStatusList",
    "--id-attr:Id",
    "http://uri.etsi.org/01903/v1.3.2#:SignedProperties",
];

/// Sign a template with xmlsec1 using the key and certificate `signer`.
fn xmlsec_sign(p: &Pki, xml: &str, signer: &str) -> Vec<u8> {
    let scratch = Scratch::new();
    let key = scratch.write("key.pem", &p.files[&format!("{signer}.key")]);
    let cert = scratch.write("cert.pem", &p.files[&format!("{signer}.pem")]);
    let input = scratch.write("template.xml", xml.as_bytes());
    let output = scratch.0.join("signed.xml");
    run(Command::new("xmlsec1")
        .arg("--sign")
        .arg("--privkey-pem")
        .arg(format!("{},{}", key.display(), cert.display()))
        .args(ID_ATTRS)
        .arg("--output")
        .arg(&output)
        .arg(&input));
    std::fs::read(&output).unwrap()
}

/// xmlsec1's own verification of a signed list with `cert` trusted.
fn xmlsec_verifies(p: &Pki, xml: &[u8], cert: &str) -> bool {
    let scratch = Scratch::new();
    let trusted = scratch.write("trusted.pem", &p.files[&format!("{cert}.pem")]);
    let path = scratch.write("list.xml", xml);
    Command::new("xmlsec1").arg("--verify").arg("--trusted-pem").arg(trusted).args(ID_ATTRS).arg(path).output().unwrap().status.success()
}

fn signed(t: &Template, signer: &str) -> Vec<u8> {
    let p = pki();
    xmlsec_sign(p, &template(p, t), signer)
}

fn replace_once(xml: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(xml.to_vec()).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from:?} occurs once");
    text.replacen(from, to, 1).into_bytes()
}

fn ders(anchors: &cloudsign_validation::path::TrustAnchors) -> Vec<&[u8]> {
    anchors.certificates().iter().map(|c| c.der.as_slice()).collect()
}

#[test]
fn ecdsa_signed_list_loads_and_gives_granted_anchors() {
    let p = pki();
    let xml = signed(&EC_PLAIN, "operator-ec");
    assert!(xmlsec_verifies(p, &xml, "operator-ec"), "xmlsec1 accepts its own signature");
    let list = tsl::load(&xml, std::slice::from_ref(p.cert("operator-ec"))).unwrap();
    assert_eq!(list.scheme_operator, "Supervisory Body & Co");
    assert_eq!(list.sequence_number, 42);
    assert_eq!(list.issue_date, Some(1_715_328_000));
    assert_eq!(list.next_update, Some(1_731_225_600));
    assert_eq!(list.services.len(), 3);
    assert!(list.services.iter().all(|s| s.provider == "Good TSP AB"));
    let names: Vec<&str> = list.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Qualified CA 1", "Qualified TSA", "Old Qualified CA"]);
    assert_eq!(list.services[2].status, tsl::STATUS_WITHDRAWN);
    assert_eq!(list.services[2].certificates[0].der, p.cert("ca-withdrawn").der);

    // CA/QC only: exactly the granted CA, the withdrawn one left out.
    let ca = list.anchors(&[tsl::TYPE_CA_QC]);
    assert_eq!(ders(&ca), [p.cert("ca-granted").der.as_slice()]);
    // Default types: the granted CA and the granted TSA.
    let default = list.anchors(&[]);
    assert_eq!(ders(&default), [p.cert("ca-granted").der.as_slice(), p.cert("tsa").der.as_slice()]);
    assert!(!default.contains(p.cert("ca-withdrawn")));
    assert!(list.anchors(&["http://uri.etsi.org/TrstSvc/Svctype/QESValidation/Q"]).is_empty());

    // Among several operator certificates (the LOTL may list more than one), the right one is found.
    let operators = [p.cert("other").clone(), p.cert("operator-rsa").clone(), p.cert("operator-ec").clone()];
    assert_eq!(tsl::load(&xml, &operators).unwrap().sequence_number, 42);
}

#[test]
fn rsa_signed_list_by_id_with_signed_properties_and_inclusive_signed_info() {
    let p = pki();
    let t = Template { method: RSA_SHA256, c14n: C14N, uri: "#tsl-id", signed_properties: true };
    let xml = signed(&t, "operator-rsa");
    assert!(xmlsec_verifies(p, &xml, "operator-rsa"), "xmlsec1 accepts its own signature");
    let list = tsl::load(&xml, std::slice::from_ref(p.cert("operator-rsa"))).unwrap();
    assert_eq!(ders(&list.anchors(&[tsl::TYPE_CA_QC])), [p.cert("ca-granted").der.as_slice()]);

    // The signed properties are covered too.
    let changed = replace_once(&xml, "2024-05-10T08:00:00Z</xades:SigningTime>", "2024-05-11T08:00:00Z</xades:SigningTime>");
    assert!(
        matches!(tsl::load(&changed, std::slice::from_ref(p.cert("operator-rsa"))), Err(TslError::DigestMismatch(uri)) if uri == "#sig-sp")
    );
    // The EC operator's certificate is not this list's signer.
    assert_eq!(tsl::load(&xml, std::slice::from_ref(p.cert("operator-ec"))).unwrap_err(), TslError::UnknownSigner);
}

#[test]
fn changed_service_name_fails_the_digest() {
    let p = pki();
    let xml = signed(&EC_PLAIN, "operator-ec");
    let changed = replace_once(&xml, ">Old Qualified CA<", ">Old Qualified CB<");
    assert!(!xmlsec_verifies(p, &changed, "operator-ec"));
    let err = tsl::load(&changed, std::slice::from_ref(p.cert("operator-ec"))).unwrap_err();
    assert_eq!(err, TslError::DigestMismatch(String::new()));

    // A withdrawn service turned granted is caught the same way.
    let text = String::from_utf8(xml.clone()).unwrap();
    let at = text.find(tsl::STATUS_WITHDRAWN).unwrap();
    let promoted = format!("{}{}{}", &text[..at], tsl::STATUS_GRANTED, &text[at + tsl::STATUS_WITHDRAWN.len()..]);
    assert!(matches!(tsl::load(promoted.as_bytes(), std::slice::from_ref(p.cert("operator-ec"))), Err(TslError::DigestMismatch(_))));

    // Whitespace in the list is signed as well (C14N keeps text nodes).
    let spaced = replace_once(&xml, "<tsl:TSLSequenceNumber>", "<tsl:TSLSequenceNumber> ");
    assert!(matches!(tsl::load(&spaced, std::slice::from_ref(p.cert("operator-ec"))), Err(TslError::DigestMismatch(_))));
}

#[test]
fn changed_signature_value_fails() {
    let p = pki();
    let xml = signed(&EC_PLAIN, "operator-ec");
    let text = String::from_utf8(xml).unwrap();
    let start = text.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
    let mut bytes = text.into_bytes();
    bytes[start + 5] = if bytes[start + 5] == b'A' { b'B' } else { b'A' };
    let err = tsl::load(&bytes, std::slice::from_ref(p.cert("operator-ec"))).unwrap_err();
    assert!(matches!(err, TslError::BadSignature(_)), "{err:?}");

    // A changed SignedInfo (here its DigestValue, with the list changed to match) fails too.
    let xml = signed(&EC_PLAIN, "operator-ec");
    let text = String::from_utf8(xml).unwrap();
    let start = text.find("<ds:DigestValue>").unwrap() + "<ds:DigestValue>".len();
    let mut bytes = text.into_bytes();
    bytes[start + 2] = if bytes[start + 2] == b'A' { b'B' } else { b'A' };
    assert!(tsl::load(&bytes, std::slice::from_ref(p.cert("operator-ec"))).is_err());
}

#[test]
fn other_signers_are_refused() {
    let p = pki();
    let xml = signed(&EC_PLAIN, "operator-ec");
    // Loaded with another operator's certificate.
    assert_eq!(tsl::load(&xml, std::slice::from_ref(p.cert("other"))).unwrap_err(), TslError::UnknownSigner);
    assert_eq!(tsl::load(&xml, &[]).unwrap_err(), TslError::UnknownSigner);

    // Signed by somebody else who names the operator's certificate in KeyInfo.
    let forged = signed(&EC_PLAIN, "other");
    assert!(xmlsec_verifies(p, &forged, "other"));
    assert_eq!(tsl::load(&forged, std::slice::from_ref(p.cert("operator-ec"))).unwrap_err(), TslError::UnknownSigner);
    let text = String::from_utf8(forged).unwrap();
    let (start, end) = (text.find("<ds:X509Certificate>").unwrap(), text.find("</ds:X509Certificate>").unwrap());
    let forged = format!("{}<ds:X509Certificate>{}{}", &text[..start], p.b64("operator-ec"), &text[end..]);
    let err = tsl::load(forged.as_bytes(), std::slice::from_ref(p.cert("operator-ec"))).unwrap_err();
    assert!(matches!(err, TslError::BadSignature(_)), "{err:?}");
    // Without KeyInfo at all the operator's key is tried, and fails.
    let start = forged.find("<ds:KeyInfo>").unwrap();
    let end = forged.find("</ds:KeyInfo>").unwrap() + "</ds:KeyInfo>".len();
    let bare = format!("{}{}", &forged[..start], &forged[end..]);
    assert!(matches!(tsl::load(bare.as_bytes(), std::slice::from_ref(p.cert("operator-ec"))), Err(TslError::BadSignature(_))));
}

#[test]
fn unsigned_and_doubly_signed_lists_are_refused() {
    let p = pki();
    let xml = String::from_utf8(signed(&EC_PLAIN, "operator-ec")).unwrap();
    let ops = std::slice::from_ref(p.cert("operator-ec"));
    let start = xml.find("<ds:Signature").unwrap();
    let end = xml.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let unsigned = format!("{}{}", &xml[..start], &xml[end..]);
    assert!(matches!(tsl::load(unsigned.as_bytes(), ops), Err(TslError::Signature(_))));
    let twice = format!("{}{}{}", &xml[..end], &xml[start..end], &xml[end..]);
    assert!(matches!(tsl::load(twice.as_bytes(), ops), Err(TslError::Signature(_))));
    // A signature of a list moved into another root is not a trusted list.
    let rooted = xml.replace("tsl:TrustServiceStatusList", "tsl:SomethingElse");
    assert!(matches!(tsl::load(rooted.as_bytes(), ops), Err(TslError::Structure(_))));
}

#[test]
fn doctype_and_entities_are_refused() {
    let p = pki();
    let xml = String::from_utf8(signed(&EC_PLAIN, "operator-ec")).unwrap();
    let ops = std::slice::from_ref(p.cert("operator-ec"));
    let decl_end = xml.find("?>").unwrap() + 2;
    for doctype in [
        "<!DOCTYPE tsl:TrustServiceStatusList>",
        "<!DOCTYPE tsl:TrustServiceStatusList [<!ENTITY op \"Supervisory Body\">]>",
        "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>",
        "<!DOCTYPE r SYSTEM \"file:///etc/passwd\">",
    ] {
        let with = format!("{}\n{doctype}{}", &xml[..decl_end], &xml[decl_end..]);
        assert!(matches!(tsl::load(with.as_bytes(), ops), Err(TslError::Xml(_))), "{doctype}");
        // Also with the entity used (and so with the list still well-formed only with the DTD).
        let used = with.replace("Supervisory Body &amp; Co", "&op;");
        assert!(matches!(tsl::load(used.as_bytes(), ops), Err(TslError::Xml(_))), "{doctype}");
    }
    // An undeclared entity without a DTD is not well-formed.
    let undeclared = xml.replace("Supervisory Body &amp; Co", "&op;");
    assert!(matches!(tsl::load(undeclared.as_bytes(), ops), Err(TslError::Xml(_))));
}

#[test]
fn truncated_and_garbled_input_is_refused_without_panic() {
    let p = pki();
    let xml = signed(&EC_PLAIN, "operator-ec");
    let ops = std::slice::from_ref(p.cert("operator-ec"));
    let end = xml.trim_ascii_end().len();
    for cut in (0..end).step_by(7).chain(end - 40..end) {
        assert!(tsl::load(&xml[..cut], ops).is_err(), "truncated at {cut} loads");
    }
    // Only trailing whitespace after the root element cut: still the same list.
    assert!(tsl::load(&xml[..end], ops).is_ok());
    // Bytes flipped throughout: an error or, if the change is outside what is signed (the
    // SignatureValue's line break, KeyInfo), a load; never a panic.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = xml.clone();
        let at = (state % bytes.len() as u64) as usize;
        bytes[at] ^= 1 << (state >> 32) % 8;
        let _ = tsl::load(&bytes, ops);
    }
    assert!(matches!(tsl::load(b"", ops), Err(TslError::Xml(_))));
    assert!(matches!(tsl::load(&[0xFF, 0xFE, 0x3C, 0x00], ops), Err(TslError::Xml(_))));
    let huge = vec![b' '; tsl::MAX_SIZE + 1];
    assert!(matches!(tsl::load(&huge, ops), Err(TslError::TooLarge(_))));
}

#[test]
fn deep_nesting_is_refused() {
    let p = pki();
    let deep = format!(
        "<tsl:TrustServiceStatusList xmlns:tsl=\"{}\">{}{}</tsl:TrustServiceStatusList>",
        tsl::TSL_NS,
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    assert!(matches!(tsl::load(deep.as_bytes(), std::slice::from_ref(p.cert("operator-ec"))), Err(TslError::Xml(_))));
}

#[test]
fn default_namespace_crlf_comments_and_inclusive_reference() {
    let p = pki();
    let xml = template(p, &EC_PLAIN)
        .replace("xmlns:tsl=", "xmlns=")
        .replace("<tsl:", "<")
        .replace("</tsl:", "</")
        .replace(
            &format!(r#"enveloped-signature"/><ds:Transform Algorithm="{EXC_C14N}"/>"#),
            &format!(r#"enveloped-signature"/><ds:Transform Algorithm="{C14N}"/>"#),
        )
        .replace("TSLTag=", "\n    TSLTag=")
        .replace("<TSLType>", "<!-- a comment --><?pi data?><TSLType>")
        .replace('\n', "\r\n");
    let signed = xmlsec_sign(p, &xml, "operator-ec");
    assert!(xmlsec_verifies(p, &signed, "operator-ec"));
    let ops = std::slice::from_ref(p.cert("operator-ec"));
    let list = tsl::load(&signed, ops).unwrap();
    assert_eq!(ders(&list.anchors(&[tsl::TYPE_CA_QC])), [p.cert("ca-granted").der.as_slice()]);
    // Comments are not signed (URI="" leaves them out); processing instructions are.
    let commented = replace_once(&signed, "<!-- a comment -->", "<!-- another comment -->");
    assert!(tsl::load(&commented, ops).is_ok());
    let pi = replace_once(&signed, "<?pi data?>", "<?pi other?>");
    assert!(matches!(tsl::load(&pi, ops), Err(TslError::DigestMismatch(_))));
}
