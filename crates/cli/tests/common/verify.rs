//! `cloudsign verify` as the tests run it, and the ETSI TS 119 612 trusted lists they build
//! (signed by xmlsec1, an implementation independent of ours).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use super::{Env, run};

/// `cloudsign verify FILE --trust ROOT [--detached DATA] [--offline]`, which must pass
/// (TOTAL-PASSED); the report. `offline`: from the validation data the signature embeds.
pub fn verify_passes(env: &Env, file: &Path, root: &Path, detached: Option<&Path>, offline: bool) -> String {
    let mut cmd = env.command();
    cmd.arg("verify").arg(file).arg("--trust").arg(root);
    if offline {
        cmd.arg("--offline");
    }
    if let Some(d) = detached {
        cmd.arg("--detached").arg(d);
    }
    let out = cmd.output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.contains("TOTAL-PASSED"), "{file:?}: {report}");
    report
}

/// `cloudsign verify FILE ARGS` with `vars` set.
pub fn verify_output(env: &Env, file: &Path, args: &[&str], vars: &[(&str, &Path)]) -> Output {
    let mut c = env.command();
    c.arg("verify").arg(file).args(args);
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// `cloudsign verify FILE --json ARGS` with `vars`: (exit code, report, stderr). The report must
/// be there whatever the outcome.
pub fn verify_json(env: &Env, file: &Path, args: &[&str], vars: &[(&str, &Path)]) -> (i32, Value, String) {
    let out = verify_output(env, file, &[&["--json"], args].concat(), vars);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&text).unwrap_or_else(|e| panic!("no JSON report ({e}): {text}\n{err}"));
    (out.status.code().unwrap_or(-1), report, err)
}

/// The indication and sub-indication (ETSI EN 319 102-1) of signature `i` of a report.
pub fn indication(report: &Value, i: usize) -> (String, String) {
    let s = &report["signatures"][i];
    (s["indication"].as_str().unwrap_or_default().to_string(), s["sub_indication"].as_str().unwrap_or_default().to_string())
}

/// The base64 body of a PEM certificate file.
pub fn pem_body(pem: &Path) -> String {
    std::fs::read_to_string(pem).unwrap().lines().filter(|l| !l.starts_with("-----")).collect()
}

/// The enveloped XMLDSig template TS 119 612 §5.7 lists carry, for xmlsec1 to fill in.
pub const SIGNATURE_TEMPLATE: &str = r#"<ds:Signature Id="sig"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/><ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>"#;

/// A TS 119 612 list: `scheme` is the rest of its SchemeInformation (type, territory,
/// pointers), `providers` its TrustServiceProviderList (see [`granted_ca`]); `next_update` its
/// NextUpdate (none: a list to fetch again every time).
pub fn tsl_xml(operator: &str, scheme: &str, providers: &str, next_update: Option<&str>) -> String {
    let next_update = next_update.map(|t| format!("<tsl:NextUpdate><tsl:dateTime>{t}</tsl:dateTime></tsl:NextUpdate>")).unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<tsl:TrustServiceStatusList xmlns:tsl="http://uri.etsi.org/02231/v2#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:tslx="http://uri.etsi.org/02231/v2/additionaltypes#" Id="tsl" TSLTag="http://uri.etsi.org/19612/TSLTag">
  <tsl:SchemeInformation>
    <tsl:TSLVersionIdentifier>5</tsl:TSLVersionIdentifier>
    <tsl:TSLSequenceNumber>3</tsl:TSLSequenceNumber>
    {scheme}
    <tsl:SchemeOperatorName><tsl:Name xml:lang="en">{operator}</tsl:Name></tsl:SchemeOperatorName>
    <tsl:ListIssueDateTime>2026-11-01T00:00:00Z</tsl:ListIssueDateTime>
    {next_update}
  </tsl:SchemeInformation>
  {providers}
{SIGNATURE_TEMPLATE}</tsl:TrustServiceStatusList>
"#
    )
}

/// A TrustServiceProviderList of one provider `tsp` whose service `service` is the CA `ca`
/// (a PEM file), a granted CA/QC.
pub fn granted_ca(tsp: &str, service: &str, ca: &Path) -> String {
    format!(
        r#"<tsl:TrustServiceProviderList><tsl:TrustServiceProvider>
    <tsl:TSPInformation><tsl:TSPName><tsl:Name xml:lang="en">{tsp}</tsl:Name></tsl:TSPName></tsl:TSPInformation>
    <tsl:TSPServices><tsl:TSPService><tsl:ServiceInformation>
      <tsl:ServiceTypeIdentifier>http://uri.etsi.org/TrstSvc/Svctype/CA/QC</tsl:ServiceTypeIdentifier>
      <tsl:ServiceName><tsl:Name xml:lang="en">{service}</tsl:Name></tsl:ServiceName>
      <tsl:ServiceDigitalIdentity><tsl:DigitalId><tsl:X509Certificate>{}</tsl:X509Certificate></tsl:DigitalId></tsl:ServiceDigitalIdentity>
      <tsl:ServiceStatus>http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted</tsl:ServiceStatus>
    </tsl:ServiceInformation></tsl:TSPService></tsl:TSPServices>
  </tsl:TrustServiceProvider></tsl:TrustServiceProviderList>"#,
        pem_body(ca)
    )
}

/// Sign the list `xml` with `key` (its certificate `cert` goes into KeyInfo), as the EU and
/// the member states sign theirs: an enveloped XMLDSig signature, made by xmlsec1 into
/// `DIR/NAME.xml` (from `DIR/NAME-template.xml`). Returns the signed list.
pub fn xmlsec_sign(dir: &Path, name: &str, xml: &str, (key, cert): (&Path, &Path)) -> Vec<u8> {
    let template = dir.join(format!("{name}-template.xml"));
    std::fs::write(&template, xml).unwrap();
    let out = dir.join(format!("{name}.xml"));
    run(Command::new("xmlsec1")
        .arg("--sign")
        .arg("--privkey-pem")
        .arg(format!("{},{}", key.display(), cert.display()))
        .arg("--output")
        .arg(&out)
        .arg(&template));
    std::fs::read(&out).unwrap()
}
