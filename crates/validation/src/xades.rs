//! XAdES (ETSI EN 319 132-1) and plain XMLDSig validation, in the order of EN 319 102-1 §5 as
//! [`crate::engine::validate_cms`] does it for CMS: format (the document is parsed with entity
//! declarations and external DTDs refused, so hostile input is a FORMAT_FAILURE and never an
//! expansion), identification of the signing certificate (`ds:KeyInfo`, matched against
//! `xades:SigningCertificateV2`/`SigningCertificate` when present), every `ds:Reference`'s
//! digest after its transforms, the signature value over the canonical `ds:SignedInfo`, then the
//! signature time-stamp (the best signature time), the certificate path and each certificate's
//! revocation status, and the level (B-B, B-T, B-LT, B-LTA).
//!
//! Canonicalization is done by `cloudsign-xml` (bergshamra-c14n) on `uppsala` documents. A document
//! subset (a subtree referenced by Id, `ds:SignedInfo`, ...) is canonicalized from its source text,
//! re-parsed as a document of its own with the namespace declarations (and, for inclusive C14N, the
//! `xml:` attributes) it inherits declared on it; the enveloped-signature transform cuts the
//! `ds:Signature` out of the source. Supported transforms: enveloped-signature, exclusive C14N 1.0
//! (with `InclusiveNamespaces`), inclusive C14N 1.0 and 1.1 (with and without comments), base64.
//! XPath and XSLT transforms are refused (FORMAT_FAILURE).

use cloudsign_ades::digest;
use cloudsign_asn1::{HashAlgorithm, b64};
use cloudsign_xml::C14nMode;
use uppsala::{Document, NodeId};

use crate::engine::{Context, Evidence, Indication, SignatureReport, SubIndication, conclude, fail, new_report, rfc3339};
use crate::x509::{self, Certificate, Scheme};

const FORMAT: &str = "XAdES";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const XADES: &str = "http://uri.etsi.org/01903/v1.3.2#";
const XADES141: &str = "http://uri.etsi.org/01903/v1.4.1#";
const EXC_C14N_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const BASE64: &str = "http://www.w3.org/2000/09/xmldsig#base64";
const C14N10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const PSS_NS: &str = "http://www.w3.org/2007/05/xmldsig-more#";

type Failure = (Indication, SubIndication, String);

fn format_err(why: impl Into<String>) -> Failure {
    (Indication::Indeterminate, SubIndication::FormatFailure, why.into())
}

/// Validate every `ds:Signature` of an XML document (UTF-8). `detached` is the content of the
/// document a detached signature references by URI (every reference to another document is
/// resolved to it). One report per signature; a document that cannot be parsed, or holds no
/// signature, gives one FORMAT_FAILURE report.
pub fn validate_xades(xml: &[u8], detached: Option<&[u8]>, ctx: &Context<'_>) -> Vec<SignatureReport> {
    let failure = |e: String| vec![SignatureReport::format_failure("signature 1".to_string(), FORMAT, e)];
    let reports = with_document(xml, |doc| {
        let signatures = doc.get_elements_by_tag_name_ns(DS, "Signature");
        if signatures.is_empty() {
            return failure("no ds:Signature in the document".into());
        }
        signatures
            .iter()
            .enumerate()
            .map(|(i, sig)| {
                let id = doc.get_attribute(*sig, "Id").map_or_else(|| format!("signature {}", i + 1), str::to_string);
                match validate_signature(doc, *sig, &id, detached, ctx) {
                    Ok(report) => report,
                    Err((indication, sub, error)) => fail(new_report(id, FORMAT), indication, sub, error),
                }
            })
            .collect()
    });
    reports.unwrap_or_else(failure)
}

/// The certificates the `ds:Signature`s of an XML document carry, for an online revocation
/// check: every `ds:X509Certificate` of their `ds:KeyInfo`, every
/// `xades:EncapsulatedX509Certificate` (`CertificateValues`, `TimeStampValidationData`), and
/// the certificates inside every `xades:EncapsulatedTimeStamp` token (signature and archive
/// time-stamps: the TSAs' status is checked like the signer's). The document is parsed as
/// [`validate_xades`] parses it; one that cannot be gives nothing.
pub(crate) fn certificates(xml: &[u8]) -> Vec<Vec<u8>> {
    with_document(xml, |doc| {
        let mut out = Vec::new();
        for sig in doc.get_elements_by_tag_name_ns(DS, "Signature") {
            for key_info in children(doc, sig, DS, "KeyInfo") {
                let certs = doc.descendants(key_info).into_iter().filter(|n| is(doc, *n, DS, "X509Certificate"));
                out.extend(certs.filter_map(|n| base64_content(doc, n)));
            }
            for node in doc.descendants(sig) {
                if is(doc, node, XADES, "EncapsulatedX509Certificate") {
                    out.extend(base64_content(doc, node));
                } else if is(doc, node, XADES, "EncapsulatedTimeStamp")
                    && let Some(token) = base64_content(doc, node)
                {
                    out.extend(cloudsign_pki::x509::cms_certificates(&token));
                }
            }
        }
        out
    })
    .unwrap_or_default()
}

/// Parse an XML document (UTF-8, with or without a byte-order mark; attribute whitespace
/// normalized as XML 1.0 §3.3.3 does) with [`parse_document`], and hand it to `f`.
fn with_document<T>(xml: &[u8], f: impl FnOnce(&Document<'_>) -> T) -> Result<T, String> {
    let bom = if xml.starts_with(&[0xEF, 0xBB, 0xBF]) { 3 } else { 0 };
    let text = std::str::from_utf8(&xml[bom..]).map_err(|_| "the XML document is not UTF-8".to_string())?;
    let normalized = cloudsign_xml::normalize_attribute_whitespace(text);
    let text = normalized.as_deref().unwrap_or(text);
    Ok(f(&parse_document(text)?))
}

/// Parse the whole document: entity declarations are refused by the parser (billion laughs,
/// external entities), external DTDs and attribute-list declarations (defaulted attributes,
/// which would change the canonical form) by looking at the DOCTYPE.
fn parse_document(text: &str) -> Result<Document<'_>, String> {
    let doc = uppsala::Parser::new().with_forbid_entities(true).parse(text).map_err(|e| {
        if text.contains("<!ENTITY") { format!("DOCTYPE with entity declarations refused: {e}") } else { format!("malformed XML: {e}") }
    })?;
    let root = doc.document_element().ok_or("no root element")?;
    let prolog = &text[..doc.node_range(root).map_or(0, |r| r.start)];
    if let Some(at) = prolog.find("<!DOCTYPE") {
        let doctype = &prolog[at..];
        if doctype.contains("<!ATTLIST") || doctype.contains("<!ENTITY") {
            return Err("DOCTYPE with declarations refused".into());
        }
        let rest = doctype[9..].trim_start();
        let rest = rest[rest.find(|c: char| c.is_whitespace() || c == '[' || c == '>').unwrap_or(rest.len())..].trim_start();
        if rest.starts_with("SYSTEM") || rest.starts_with("PUBLIC") {
            return Err("DOCTYPE with an external DTD refused".into());
        }
    }
    Ok(doc)
}

fn parse_fragment(text: &str) -> Result<Document<'_>, String> {
    uppsala::Parser::new().with_forbid_dtd(true).parse(text).map_err(|e| format!("malformed XML: {e}"))
}

fn child(doc: &Document<'_>, parent: NodeId, ns: &str, name: &str) -> Option<NodeId> {
    doc.first_child_element_by_name_ns(parent, ns, name)
}

fn children(doc: &Document<'_>, parent: NodeId, ns: &str, name: &str) -> Vec<NodeId> {
    doc.child_elements_by_name_ns(parent, ns, name)
}

fn element_children(doc: &Document<'_>, parent: NodeId) -> Vec<NodeId> {
    doc.children(parent).into_iter().filter(|n| doc.element(*n).is_some()).collect()
}

fn is(doc: &Document<'_>, node: NodeId, ns: &str, name: &str) -> bool {
    doc.element(node).is_some_and(|e| e.matches_name_ns(ns, name))
}

/// Base64 content of an element (line breaks and spaces allowed, as XML Schema base64Binary).
fn base64_content(doc: &Document<'_>, node: NodeId) -> Option<Vec<u8>> {
    base64_text(&doc.text_content_deep(node))
}

fn base64_text(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    b64::decode_lenient(&compact)
}

// ---------------------------------------------------------------------------------------------
// Canonicalization of node sets.

/// A node set of the document: the whole document or the subtree at `apex`, without the
/// subtree `exclude` (the enveloped signature), with or without comments.
#[derive(Debug, Clone, Copy)]
struct Nodes {
    apex: Option<NodeId>,
    exclude: Option<NodeId>,
    comments: bool,
}

fn without_comments(mode: C14nMode) -> C14nMode {
    match mode {
        C14nMode::InclusiveWithComments => C14nMode::Inclusive,
        C14nMode::Inclusive11WithComments => C14nMode::Inclusive11,
        C14nMode::ExclusiveWithComments => C14nMode::Exclusive,
        other => other,
    }
}

/// Canonicalize a node set of `doc` with `mode` (and the exclusive C14N InclusiveNamespaces
/// `prefixes`).
fn c14n_nodes(doc: &Document<'_>, nodes: Nodes, mode: C14nMode, prefixes: &[String]) -> Result<Vec<u8>, String> {
    let mode = if nodes.comments { mode } else { without_comments(mode) };
    let text = doc.input_text();
    let range = match nodes.apex {
        None => 0..text.len(),
        Some(e) => doc.node_range(e).ok_or("no source position")?,
    };
    let cut = nodes.exclude.and_then(|x| doc.node_range(x)).filter(|x| x.start > range.start && x.end <= range.end);
    let mut source = match cut {
        Some(x) => format!("{}{}", &text[range.start..x.start], &text[x.end..range.end]),
        None => text[range.clone()].to_string(),
    };
    let canonical = match nodes.apex {
        None => cloudsign_xml::canonicalize(&parse_document(&source)?, mode, prefixes),
        Some(e) => {
            let name = doc.element(e).ok_or("not an element")?.name.prefixed_name().into_owned();
            if source.get(1..1 + name.len()) != Some(name.as_str()) {
                return Err("unexpected element source".into());
            }
            source.insert_str(1 + name.len(), &cloudsign_xml::inherited_context(doc, e, mode));
            cloudsign_xml::canonicalize(&parse_fragment(&source)?, mode, prefixes)
        }
    };
    canonical.map_err(|e| format!("canonicalization: {e}"))
}

/// The canonicalization algorithm and InclusiveNamespaces prefix list of a
/// `CanonicalizationMethod` or `Transform` element (`default` when absent).
fn c14n_method(doc: &Document<'_>, element: Option<NodeId>, default: &str) -> Result<(C14nMode, Vec<String>), String> {
    let uri = element.and_then(|e| doc.get_attribute(e, "Algorithm")).unwrap_or(default);
    let mode = C14nMode::from_uri(uri).ok_or_else(|| format!("unsupported canonicalization {uri}"))?;
    let prefixes = element
        .and_then(|e| child(doc, e, EXC_C14N_NS, "InclusiveNamespaces"))
        .and_then(|n| doc.get_attribute(n, "PrefixList"))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Ok((mode, prefixes))
}

// ---------------------------------------------------------------------------------------------
// References.

enum Data {
    Nodes(Nodes),
    Octets(Vec<u8>),
}

/// The one element whose `Id` (or `ID`, `id`, `xml:id`) is `id`; refused when ambiguous, so that
/// a reference cannot be pointed at a wrapped copy.
fn by_id(doc: &Document<'_>, id: &str) -> Result<NodeId, String> {
    let found: Vec<NodeId> = doc
        .descendants(doc.root())
        .into_iter()
        .filter(|n| {
            doc.element(*n)
                .is_some_and(|e| e.attributes.iter().any(|a| matches!(a.name.local_name.as_ref(), "Id" | "ID" | "id") && a.value == id))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("no element with Id {id:?}")),
        _ => Err(format!("more than one element with Id {id:?}")),
    }
}

/// Digest algorithms by XMLDSig URI; SHA-1 separately (accepted only to identify certificates).
fn digest_uri(uri: &str) -> Option<Option<HashAlgorithm>> {
    Some(match uri {
        "http://www.w3.org/2001/04/xmlenc#sha256" => Some(HashAlgorithm::Sha256),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Some(HashAlgorithm::Sha384),
        "http://www.w3.org/2001/04/xmlenc#sha512" => Some(HashAlgorithm::Sha512),
        "http://www.w3.org/2000/09/xmldsig#sha1" => None,
        _ => return None,
    })
}

fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()
}

/// The octets a `ds:Reference` digests: its URI dereferenced, its transforms applied, and a
/// node set left at the end canonicalized with inclusive C14N 1.0 (XMLDSig §4.4.3.2).
fn reference_output(doc: &Document<'_>, sig: NodeId, reference: NodeId, detached: Option<&[u8]>) -> Result<Vec<u8>, Failure> {
    let uri = doc.get_attribute(reference, "URI");
    let mut data = match uri {
        // A reference without URI: the application knows the data (the detached document).
        None => Data::Octets(detached.ok_or_else(|| format_err("a reference without URI, and no detached document provided"))?.to_vec()),
        Some("") => Data::Nodes(Nodes { apex: None, exclude: None, comments: false }),
        Some("#xpointer(/)") => Data::Nodes(Nodes { apex: None, exclude: None, comments: true }),
        Some(u) if u.starts_with("#xpointer(id(") => {
            let id = u.trim_start_matches("#xpointer(id(").trim_end_matches("))").trim_matches(|c| c == '\'' || c == '"');
            Data::Nodes(Nodes { apex: Some(by_id(doc, id).map_err(format_err)?), exclude: None, comments: true })
        }
        Some(u) if u.starts_with('#') => {
            Data::Nodes(Nodes { apex: Some(by_id(doc, &u[1..]).map_err(format_err)?), exclude: None, comments: false })
        }
        Some(u) => Data::Octets(
            detached.ok_or_else(|| format_err(format!("the detached document {u:?} the signature references was not provided")))?.to_vec(),
        ),
    };
    let transforms = child(doc, reference, DS, "Transforms").map(|t| children(doc, t, DS, "Transform")).unwrap_or_default();
    for transform in transforms {
        let algorithm = doc.get_attribute(transform, "Algorithm").unwrap_or_default();
        data = match (algorithm, data) {
            (ENVELOPED, Data::Nodes(n)) => Data::Nodes(Nodes { exclude: Some(sig), ..n }),
            (BASE64, Data::Nodes(n)) => {
                let text = doc.text_content_deep(n.apex.unwrap_or(doc.root()));
                Data::Octets(base64_text(&text).ok_or_else(|| format_err("the base64 transform's input is not base64"))?)
            }
            (BASE64, Data::Octets(o)) => Data::Octets(
                base64_text(&String::from_utf8_lossy(&o)).ok_or_else(|| format_err("the base64 transform's input is not base64"))?,
            ),
            (a, input) if C14nMode::from_uri(a).is_some() => {
                let (mode, prefixes) = c14n_method(doc, Some(transform), a).map_err(format_err)?;
                match input {
                    Data::Nodes(n) => Data::Octets(c14n_nodes(doc, n, mode, &prefixes).map_err(format_err)?),
                    Data::Octets(o) => {
                        let text = String::from_utf8(o).map_err(|_| format_err("the transform input is not UTF-8 XML"))?;
                        let parsed = parse_document(&text).map_err(format_err)?;
                        Data::Octets(cloudsign_xml::canonicalize(&parsed, mode, &prefixes).map_err(|e| format_err(e.to_string()))?)
                    }
                }
            }
            (a, _) => return Err(format_err(format!("unsupported transform {a}"))),
        };
    }
    match data {
        Data::Octets(o) => Ok(o),
        Data::Nodes(n) => c14n_nodes(doc, n, C14nMode::Inclusive, &[]).map_err(format_err),
    }
}

// ---------------------------------------------------------------------------------------------
// Signature methods.

/// The SignatureMethod URIs whose parameters are all in the URI (RFC 9231 §2.3.2 RSA, §2.3.6
/// ECDSA, §2.3.10 RSASSA-PSS with MGF1, Ed25519): shared with the trusted-list check.
pub(crate) fn xmldsig_scheme(uri: &str) -> Option<Scheme> {
    use HashAlgorithm::*;
    Some(match uri {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => Scheme::RsaPkcs1(Sha256),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => Scheme::RsaPkcs1(Sha384),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => Scheme::RsaPkcs1(Sha512),
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => Scheme::Ecdsa(Sha256),
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => Scheme::Ecdsa(Sha384),
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" => Scheme::Ecdsa(Sha512),
        "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1" => Scheme::RsaPss(Sha256),
        "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1" => Scheme::RsaPss(Sha384),
        "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1" => Scheme::RsaPss(Sha512),
        "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed25519" => Scheme::Ed25519,
        _ => return None,
    })
}

/// The scheme of a `SignatureMethod`, and whether its value is ECDSA r ‖ s.
fn signature_method(doc: &Document<'_>, method: NodeId) -> Result<Scheme, Failure> {
    use HashAlgorithm::*;
    let uri = doc.get_attribute(method, "Algorithm").unwrap_or_default();
    let weak = |what: &str| Err((Indication::TotalFailed, SubIndication::CryptoConstraintsFailure, format!("{what} is not accepted")));
    if let Some(scheme) = xmldsig_scheme(uri) {
        return Ok(scheme);
    }
    Ok(match uri {
        "http://www.w3.org/2007/05/xmldsig-more#rsa-pss" => {
            // RFC 9231 §2.3.10: RSAPSSParams (DigestMethod, SaltLength), SHA-256 by default.
            let params = child(doc, method, PSS_NS, "RSAPSSParams");
            let hash = match params.and_then(|p| child(doc, p, DS, "DigestMethod")).and_then(|d| doc.get_attribute(d, "Algorithm")) {
                None => Sha256,
                Some(u) => match digest_uri(u) {
                    Some(Some(h)) => h,
                    _ => return weak(&format!("RSA-PSS with digest {u}")),
                },
            };
            let salt = params.and_then(|p| child(doc, p, PSS_NS, "SaltLength")).map(|s| doc.text_content_deep(s).trim().parse::<usize>());
            if let Some(salt) = salt
                && salt != Ok(hash.len())
            {
                return weak("RSA-PSS with a salt length other than the digest length");
            }
            Scheme::RsaPss(hash)
        }
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
        | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
        | "http://www.w3.org/2000/09/xmldsig#dsa-sha1" => {
            return weak(&format!("the SHA-1 signature method {uri}"));
        }
        other => return Err(format_err(format!("unsupported signature method {other:?}"))),
    })
}

/// XMLDSig 1.1 §6.4.3 / RFC 7518 §3.4: ECDSA values are r ‖ s; the verifier takes DER.
pub(crate) fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    cloudsign_asn1::der::ecdsa_sig_value(raw)
}

/// Verify a signature value made with `scheme` (ECDSA values as r ‖ s).
pub(crate) fn verify_value(cert: &Certificate, scheme: Scheme, message: &[u8], value: &[u8]) -> Result<(), Failure> {
    let crypto =
        |e: String| (Indication::TotalFailed, SubIndication::SigCryptoFailure, format!("the signature value does not verify: {e}"));
    let value = match scheme {
        Scheme::Ecdsa(_) => ecdsa_raw_to_der(value).ok_or_else(|| crypto("malformed ECDSA value".into()))?,
        _ => value.to_vec(),
    };
    x509::verify_scheme(&cert.spki, scheme, message, &value).map_err(|e| crypto(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// One signature.

/// `xs:dateTime` (`YYYY-MM-DDThh:mm:ss[.fff][Z|±hh:mm]`, a missing zone read as UTC) to Unix
/// seconds.
pub(crate) fn parse_datetime(text: &str) -> Option<i64> {
    let t = text.trim();
    let num = |r: std::ops::Range<usize>| t.get(r).filter(|s| s.bytes().all(|c| c.is_ascii_digit())).and_then(|s| s.parse::<i64>().ok());
    if t.get(4..5) != Some("-")
        || t.get(7..8) != Some("-")
        || t.get(10..11) != Some("T")
        || t.get(13..14) != Some(":")
        || t.get(16..17) != Some(":")
    {
        return None;
    }
    let (year, month, day, hour, minute, second) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" | "Z" => 0,
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = zone[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let at = date.with_hms(u8::try_from(hour).ok()?, u8::try_from(minute).ok()?, u8::try_from(second).ok()?).ok()?;
    Some(at.assume_utc().unix_timestamp() - offset)
}

fn validate_signature(
    doc: &Document<'_>,
    sig: NodeId,
    id: &str,
    detached: Option<&[u8]>,
    ctx: &Context<'_>,
) -> Result<SignatureReport, Failure> {
    let mut report = new_report(id.to_string(), FORMAT);
    let signed_info = child(doc, sig, DS, "SignedInfo").ok_or_else(|| format_err("no ds:SignedInfo"))?;
    let signature_value = child(doc, sig, DS, "SignatureValue").ok_or_else(|| format_err("no ds:SignatureValue"))?;
    let value = base64_content(doc, signature_value).ok_or_else(|| format_err("ds:SignatureValue is not base64"))?;
    let (mode, prefixes) = c14n_method(doc, child(doc, signed_info, DS, "CanonicalizationMethod"), "").map_err(format_err)?;
    let method = child(doc, signed_info, DS, "SignatureMethod").ok_or_else(|| format_err("no ds:SignatureMethod"))?;
    let scheme = signature_method(doc, method)?;
    let references = children(doc, signed_info, DS, "Reference");
    if references.is_empty() {
        return Err(format_err("ds:SignedInfo has no ds:Reference"));
    }
    let key_info = child(doc, sig, DS, "KeyInfo");

    // The XAdES qualifying properties of this signature, and whether a reference signs them.
    let sig_id = doc.get_attribute(sig, "Id");
    let qualifying_object = children(doc, sig, DS, "Object").into_iter().find(|o| {
        child(doc, *o, XADES, "QualifyingProperties").is_some_and(|q| match (sig_id, doc.get_attribute(q, "Target")) {
            (Some(id), Some(target)) => target.strip_prefix('#') == Some(id),
            _ => true,
        })
    });
    let qualifying = qualifying_object.and_then(|o| child(doc, o, XADES, "QualifyingProperties"));
    let signed_properties = qualifying.and_then(|q| child(doc, q, XADES, "SignedProperties")).filter(|sp| {
        doc.get_attribute(*sp, "Id").is_some_and(|spid| {
            references.iter().any(|r| doc.get_attribute(*r, "URI").and_then(|u| u.strip_prefix('#')) == Some(spid))
                && by_id(doc, spid).ok() == Some(*sp)
        })
    });
    let signed_signature_properties = signed_properties.and_then(|sp| child(doc, sp, XADES, "SignedSignatureProperties"));
    let unsigned = qualifying
        .and_then(|q| child(doc, q, XADES, "UnsignedProperties"))
        .and_then(|u| child(doc, u, XADES, "UnsignedSignatureProperties"));
    let unsigned_properties = unsigned.map(|u| element_children(doc, u)).unwrap_or_default();
    let property_values = |container: &str, item: &str| -> Vec<Vec<u8>> {
        unsigned_properties
            .iter()
            .filter(|p| is(doc, **p, XADES, container))
            .flat_map(|p| doc.descendants(*p))
            .filter(|n| is(doc, *n, XADES, item))
            .filter_map(|n| base64_content(doc, n))
            .collect()
    };

    // Certificates: KeyInfo, CertificateValues, the context, the anchors.
    let key_info_certs: Vec<Certificate> = key_info
        .map(|k| doc.descendants(k).into_iter().filter(|n| is(doc, *n, DS, "X509Certificate")).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| base64_content(doc, n))
        .filter_map(|der| Certificate::parse(&der).ok())
        .collect();
    let certificate_values = property_values("CertificateValues", "EncapsulatedX509Certificate");
    let mut pool: Vec<Certificate> = key_info_certs.clone();
    pool.extend(certificate_values.iter().chain(ctx.embedded_certificates).filter_map(|c| Certificate::parse(c).ok()));
    pool.extend(ctx.anchors.certificates().iter().cloned());
    let mut crls = property_values("RevocationValues", "EncapsulatedCRLValue");
    crls.extend(ctx.embedded_crls.iter().cloned());
    let mut ocsps = property_values("RevocationValues", "EncapsulatedOCSPValue");
    ocsps.extend(ctx.embedded_ocsps.iter().cloned());

    // The signing certificate: the one SigningCertificateV2 (or SigningCertificate) names by
    // digest, else the KeyInfo certificate that issued none of the others.
    let cert_ref = signed_signature_properties
        .and_then(|s| child(doc, s, XADES, "SigningCertificateV2").or_else(|| child(doc, s, XADES, "SigningCertificate")))
        .and_then(|s| child(doc, s, XADES, "Cert"))
        .and_then(|c| child(doc, c, XADES, "CertDigest"));
    let referenced = match cert_ref {
        None => None,
        Some(cd) => {
            let algorithm = child(doc, cd, DS, "DigestMethod").and_then(|m| doc.get_attribute(m, "Algorithm")).and_then(digest_uri);
            let expected = child(doc, cd, DS, "DigestValue").and_then(|v| base64_content(doc, v));
            match (algorithm, expected) {
                (Some(h), Some(expected)) => Some(pool.iter().find(|c| match h {
                    Some(h) => digest(h, &c.der) == expected,
                    None => sha1(&c.der) == expected,
                })),
                _ => return Err(format_err("unreadable xades:CertDigest")),
            }
        }
    };
    let leaf = key_info_certs
        .iter()
        .find(|c| !key_info_certs.iter().any(|o| o.der != c.der && x509::names_match(&o.issuer, &c.subject)))
        .or(key_info_certs.first());
    let cert = referenced.flatten().or(leaf).cloned().ok_or((
        Indication::Indeterminate,
        SubIndication::NoSigningCertificateFound,
        "no signing certificate in ds:KeyInfo or the signing-certificate reference".to_string(),
    ))?;

    // The references, then the signature value over the canonical SignedInfo.
    let mut outputs = Vec::new();
    for (i, reference) in references.iter().enumerate() {
        let uri = doc.get_attribute(*reference, "URI").unwrap_or_default();
        let algorithm = child(doc, *reference, DS, "DigestMethod").and_then(|m| doc.get_attribute(m, "Algorithm")).unwrap_or_default();
        let hash = match digest_uri(algorithm) {
            Some(Some(h)) => h,
            Some(None) => {
                return Err((
                    Indication::TotalFailed,
                    SubIndication::CryptoConstraintsFailure,
                    "SHA-1 reference digests are not accepted".into(),
                ));
            }
            None => return Err(format_err(format!("unsupported digest method {algorithm:?}"))),
        };
        let expected = child(doc, *reference, DS, "DigestValue")
            .and_then(|v| base64_content(doc, v))
            .ok_or_else(|| format_err("ds:Reference without a readable DigestValue"))?;
        let output = reference_output(doc, sig, *reference, detached)?;
        if digest(hash, &output) != expected {
            return Err((
                Indication::TotalFailed,
                SubIndication::HashFailure,
                format!("the data of reference {} (URI {uri:?}) has changed (digest mismatch)", i + 1),
            ));
        }
        outputs.push(output);
    }
    let canonical_signed_info =
        c14n_nodes(doc, Nodes { apex: Some(signed_info), exclude: None, comments: true }, mode, &prefixes).map_err(format_err)?;
    verify_value(&cert, scheme, &canonical_signed_info, &value)?;
    if matches!(referenced, Some(None)) {
        return Err((
            Indication::Indeterminate,
            SubIndication::NoSigningCertificateFound,
            "the signing-certificate reference does not match any certificate of the signature".into(),
        ));
    }
    report.signer = Some(cert.subject_text());
    report.claimed_signing_time = signed_signature_properties
        .and_then(|s| child(doc, s, XADES, "SigningTime"))
        .and_then(|t| parse_datetime(&doc.text_content_deep(t)))
        .map(rfc3339);
    let is_xades = signed_properties.is_some() && cert_ref.is_some();
    if !is_xades {
        report.errors.push("plain XMLDSig (no signed XAdES properties): no AdES level".into());
    }

    // Signature time-stamps: over the canonical ds:SignatureValue element.
    let mut signature_timestamps = Vec::new();
    let mut archive_timestamps = Vec::new();
    for (k, property) in unsigned_properties.iter().enumerate() {
        let is_signature_ts = is(doc, *property, XADES, "SignatureTimeStamp");
        let is_archive_ts = is(doc, *property, XADES141, "ArchiveTimeStamp");
        if !is_signature_ts && !is_archive_ts {
            continue;
        }
        let token = child(doc, *property, XADES, "EncapsulatedTimeStamp").and_then(|t| base64_content(doc, t));
        let method = c14n_method(doc, child(doc, *property, DS, "CanonicalizationMethod"), C14N10);
        let input = method.and_then(|(mode, prefixes)| {
            let c14n = |n: NodeId| c14n_nodes(doc, Nodes { apex: Some(n), exclude: None, comments: true }, mode, &prefixes);
            if is_signature_ts {
                return c14n(signature_value);
            }
            // EN 319 132-1 §5.5.2.2: the references' outputs, SignedInfo, SignatureValue,
            // KeyInfo, the unsigned signature properties before this one, the other ds:Objects.
            let mut input = outputs.concat();
            input.extend(c14n(signed_info)?);
            input.extend(c14n(signature_value)?);
            if let Some(k) = key_info {
                input.extend(c14n(k)?);
            }
            for p in &unsigned_properties[..k] {
                input.extend(c14n(*p)?);
            }
            for o in children(doc, sig, DS, "Object").into_iter().filter(|o| Some(*o) != qualifying_object) {
                input.extend(c14n(o)?);
            }
            Ok(input)
        });
        let result = match (token, input) {
            (Some(token), Ok(input)) => crate::engine::check_timestamp(&token, &|h| digest(h, &input), ctx, &pool, (&ocsps, &crls)),
            (None, _) => crate::engine::Timestamp::unchecked("no EncapsulatedTimeStamp"),
            (_, Err(e)) => crate::engine::Timestamp::unchecked(format!("the time-stamped data cannot be canonicalized: {e}")),
        };
        if is_signature_ts { signature_timestamps.push(result) } else { archive_timestamps.push(result) }
    }

    Ok(conclude(
        report,
        Evidence { cert, pool, crls, ocsps, digest: scheme.hash(), ades: is_xades, signature_timestamps, archive_timestamps },
        ctx,
    ))
}

// ---------------------------------------------------------------------------------------------
// Shared with JAdES: the report, the time-stamps, the path and revocation, the level, as
// `engine::validate_cms` does them.
