//! Trust anchors from ETSI TS 119 612 trusted lists (the EU member states' lists of qualified
//! trust service providers and the services they run).
//!
//! [`load`] parses a list and verifies its enveloped XMLDSig signature against the certificates
//! the caller knows the list's scheme operator by (as the EU list of trusted lists publishes them);
//! a list signed by anyone else, with a broken signature or a digest that does not cover the list,
//! is refused. [`TrustedList::anchors`] then gives the certificates of the services of the wanted
//! types whose current status is granted, as [`TrustAnchors`] for path building.
//!
//! What is read: `SchemeInformation` (sequence number, operator name, issue date, next update) and,
//! for every `TSPService`, its current `ServiceInformation` (type, name, status, the X.509
//! certificates of its `ServiceDigitalIdentity`), the scheme's `TSLType` and `SchemeTerritory`,
//! and its `PointersToOtherTSL` (§5.3.13: each pointer's `TSLLocation`, the X.509 certificates
//! of its `ServiceDigitalIdentities`, and the `TSLType`, `SchemeTerritory` and `MimeType` of its
//! `AdditionalInformation`). `ServiceHistory` and extensions (qualifiers, additional service
//! information) are not interpreted.
//!
//! A list of trusted lists (the EU LOTL) is a list like any other whose pointers name the
//! national lists and the certificates each is signed with: [`TrustedList::national_pointers`]
//! gives the pointers to follow, and each list they lead to is loaded with [`load`] against the
//! pointer's certificates, so that trust flows from the LOTL's signer down.
//!
//! The signature: one `ds:Signature` child of the root with one `ds:Reference` covering the whole
//! list (`URI=""` or `URI="#"` + the root's `Id`) through the enveloped-signature transform and
//! optionally one canonicalization (exclusive or inclusive C14N 1.0 / 1.1); further references may
//! cover elements inside the signature (the XAdES `SignedProperties` of the EU lists), each through
//! at most one canonicalization. `SignedInfo` is canonicalized per its `CanonicalizationMethod`
//! (exclusive `InclusiveNamespaces` prefix lists honoured). Digests SHA-256/384/512; signatures
//! RSA PKCS#1 v1.5, RSA-PSS (MGF1, salt = hash length) and ECDSA (XMLDSig `r ‖ s`) with
//! SHA-256/384/512, verified with [`crate::x509::verify_scheme`]. The signer is one of
//! `operator_certs`: the certificates in `KeyInfo` (if any) must include one of them, by DER or by
//! public key, and the signature must verify with that key.
//!
//! XML: UTF-8 only, at most [`MAX_SIZE`] bytes, no DOCTYPE at all (a trusted list has no use for
//! entities), element nesting at most [`MAX_DEPTH`]. Literal tabs and line breaks in attribute
//! values are normalized to spaces before parsing (XML 1.0 §3.3.3; uppsala 0.12 keeps them), as
//! `cloudsign-ades`'s XAdES module does, so that canonical forms match libxml2's.

use cloudsign_asn1::HashAlgorithm;

use crate::path::TrustAnchors;
use crate::x509::{self, Certificate, Scheme};
use crate::xades::ecdsa_raw_to_der;

/// The TS 119 612 namespace.
pub const TSL_NS: &str = "http://uri.etsi.org/02231/v2#";
/// The XMLDSig namespace.
pub const DS_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
const EXC_C14N_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Service type: CA issuing qualified certificates.
pub const TYPE_CA_QC: &str = "http://uri.etsi.org/TrstSvc/Svctype/CA/QC";
/// Service type: qualified time-stamping authority.
pub const TYPE_TSA_QTST: &str = "http://uri.etsi.org/TrstSvc/Svctype/TSA/QTST";
/// The service types [`TrustedList::anchors`] uses when given none.
pub const DEFAULT_TYPES: [&str; 2] = [TYPE_CA_QC, TYPE_TSA_QTST];

/// Status: granted (eIDAS).
pub const STATUS_GRANTED: &str = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted";
/// Status: withdrawn (eIDAS).
pub const STATUS_WITHDRAWN: &str = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/withdrawn";
/// Status: under supervision (pre-eIDAS lists, TS 119 612 v1).
pub const STATUS_UNDER_SUPERVISION: &str = "http://uri.etsi.org/TrstSvc/Svcstatus/undersupervision";
/// Status: accredited (pre-eIDAS lists, TS 119 612 v1).
pub const STATUS_ACCREDITED: &str = "http://uri.etsi.org/TrstSvc/Svcstatus/accredited";
/// The statuses under which a service's certificates are trust anchors.
pub const GRANTED_STATUSES: [&str; 3] = [STATUS_GRANTED, STATUS_UNDER_SUPERVISION, STATUS_ACCREDITED];

/// `TSLType` of the EU list of trusted lists (TS 119 612 Annex E / D.5).
pub const TYPE_EU_LOTL: &str = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUlistofthelists";
/// `TSLType` of an EU member state's trusted list.
pub const TYPE_EU_GENERIC: &str = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric";
/// The MIME type of a trusted list in XML (TS 119 612 §5.3.13, `AdditionalInformation`).
pub const MIME_TSL_XML: &str = "application/vnd.etsi.tsl+xml";
/// The official address of the EU list of trusted lists.
pub const EU_LOTL_URL: &str = "https://ec.europa.eu/tools/lotl/eu-lotl.xml";

/// The largest list accepted, in bytes (national lists are a few MB).
pub const MAX_SIZE: usize = 32 << 20;
/// The deepest element nesting accepted (a list with XAdES properties needs about 15).
pub const MAX_DEPTH: u32 = 64;
/// The most `ds:Reference`s a signature may have.
const MAX_REFERENCES: usize = 16;

/// Why a trusted list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TslError {
    /// Larger than [`MAX_SIZE`].
    #[error("the trusted list is {0} bytes (at most {MAX_SIZE} accepted)")]
    TooLarge(usize),
    /// Not well-formed UTF-8 XML, or with a DOCTYPE.
    #[error("the trusted list is not acceptable XML: {0}")]
    Xml(String),
    /// Well-formed but not a TS 119 612 list (a required element missing or unreadable).
    #[error("not a TS 119 612 trusted list: {0}")]
    Structure(String),
    /// The signature is missing or not of the form accepted (see the module documentation).
    #[error("the trusted list's signature is missing or malformed: {0}")]
    Signature(String),
    /// An algorithm (canonicalization, transform, digest, signature) not accepted.
    #[error("unsupported algorithm in the trusted list's signature: {0}")]
    Unsupported(String),
    /// A reference's digest does not match: the list (or the signed properties) changed.
    #[error("the digest of reference {0:?} does not match: the trusted list was modified")]
    DigestMismatch(String),
    /// The signature value does not verify with the operator's key.
    #[error("the trusted list's signature value does not verify: {0}")]
    BadSignature(String),
    /// The list is not signed by any of the operator certificates given.
    #[error("the trusted list is not signed by any of the scheme operator's certificates")]
    UnknownSigner,
}

type Result<T> = std::result::Result<T, TslError>;

/// A trusted list whose signature verified.
#[derive(Debug, Clone)]
pub struct TrustedList {
    /// `SchemeOperatorName` (the English name if there is one, else the first).
    pub scheme_operator: String,
    /// `TSLSequenceNumber`.
    pub sequence_number: u64,
    /// `ListIssueDateTime`, unix seconds.
    pub issue_date: Option<i64>,
    /// `NextUpdate/dateTime`, unix seconds (`None` for a closed list).
    pub next_update: Option<i64>,
    /// `TSLType` (e.g. [`TYPE_EU_LOTL`], [`TYPE_EU_GENERIC`]).
    pub tsl_type: Option<String>,
    /// `SchemeTerritory` (e.g. `EU`, `AT`).
    pub territory: Option<String>,
    /// Every `TSPService` of every provider, in document order.
    pub services: Vec<TrustService>,
    /// `PointersToOtherTSL`, in document order.
    pub pointers: Vec<TslPointer>,
}

/// One `OtherTSLPointer` (TS 119 612 §5.3.13): where another list is and who signs it.
#[derive(Debug, Clone)]
pub struct TslPointer {
    /// `TSLLocation`.
    pub location: String,
    /// The X.509 certificates of its `ServiceDigitalIdentities`: the list must be signed by one.
    pub certificates: Vec<Certificate>,
    /// `TSLType` of the list pointed to.
    pub tsl_type: Option<String>,
    /// `SchemeTerritory` of the list pointed to.
    pub territory: Option<String>,
    /// `MimeType` of the list pointed to (the EU LOTL also points to PDF renderings).
    pub mime_type: Option<String>,
}

impl TslPointer {
    /// Whether this points to a machine-processable list (XML, or no MIME type given) that is
    /// not itself a list of lists.
    pub fn is_trusted_list(&self) -> bool {
        let xml = self.mime_type.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(MIME_TSL_XML) || m.ends_with("xml"));
        let lotl = self.tsl_type.as_deref().is_some_and(|t| t.to_ascii_lowercase().ends_with("listofthelists"));
        xml && !lotl
    }
}

/// One `TSPService` as its current `ServiceInformation` describes it.
#[derive(Debug, Clone)]
pub struct TrustService {
    /// The provider's `TSPName` (English if there is one, else the first).
    pub provider: String,
    /// `ServiceName` (English if there is one, else the first).
    pub name: String,
    /// `ServiceTypeIdentifier` (a URI, e.g. [`TYPE_CA_QC`]).
    pub service_type: String,
    /// `ServiceStatus` (a URI, e.g. [`STATUS_GRANTED`]).
    pub status: String,
    /// The `X509Certificate`s of the `ServiceDigitalIdentity` (those that do not parse as
    /// certificates are left out).
    pub certificates: Vec<Certificate>,
}

impl TrustService {
    /// Whether the current status is one of [`GRANTED_STATUSES`].
    pub fn is_granted(&self) -> bool {
        GRANTED_STATUSES.contains(&self.status.as_str())
    }
}

impl TrustedList {
    /// The pointers a list of trusted lists gives to the lists to follow
    /// ([`TslPointer::is_trusted_list`]), each location once.
    pub fn national_pointers(&self) -> Vec<&TslPointer> {
        let mut seen = std::collections::HashSet::new();
        self.pointers.iter().filter(|p| p.is_trusted_list() && seen.insert(p.location.as_str())).collect()
    }

    /// The certificates of services of the given types (none given: [`DEFAULT_TYPES`]) whose
    /// current status is granted ([`GRANTED_STATUSES`]), as trust anchors.
    pub fn anchors(&self, types: &[&str]) -> TrustAnchors {
        let types = if types.is_empty() { &DEFAULT_TYPES[..] } else { types };
        let mut anchors = TrustAnchors::new();
        for service in self.services.iter().filter(|s| s.is_granted() && types.contains(&s.service_type.as_str())) {
            service.certificates.iter().for_each(|c| anchors.add(c.clone()));
        }
        anchors
    }
}

/// Parse a trusted list (XML) and verify its enveloped XMLDSig signature against one of
/// `operator_certs` (the certificates the list's operator is known by, given by the caller as the
/// EU list of trusted lists publishes them). A list signed by anyone else, or with a broken
/// signature, is refused.
pub fn load(xml: &[u8], operator_certs: &[Certificate]) -> Result<TrustedList> {
    if xml.len() > MAX_SIZE {
        return Err(TslError::TooLarge(xml.len()));
    }
    let xml = xml.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(xml);
    let text = std::str::from_utf8(xml).map_err(|_| TslError::Xml("not UTF-8".into()))?;
    let normalized = cloudsign_xml::normalize_attribute_whitespace(text);
    let text = normalized.as_deref().unwrap_or(text);
    let doc = parse(text)?;
    let root = doc.document_element().ok_or_else(|| TslError::Xml("no root element".into()))?;
    if !is(&doc, root, TSL_NS, "TrustServiceStatusList") {
        return Err(TslError::Structure("the root is not tsl:TrustServiceStatusList".into()));
    }
    verify_signature(&doc, root, operator_certs)?;
    read_list(&doc, root)
}

// ─── Signature ───

/// Verify the enveloped signature of the list whose root is `root`.
fn verify_signature(doc: &uppsala::Document<'_>, root: uppsala::NodeId, operator_certs: &[Certificate]) -> Result<()> {
    let sig = match doc.child_elements_by_name_ns(root, DS_NS, "Signature").as_slice() {
        [one] => *one,
        [] => return Err(TslError::Signature("no ds:Signature in the root element".into())),
        _ => return Err(TslError::Signature("more than one ds:Signature in the root element".into())),
    };
    let signed_info = ds_child(doc, sig, "SignedInfo")?;

    // Who signed: the operator certificates KeyInfo names (all of them if it names none).
    let key_info_certs = key_info_certificates(doc, sig)?;
    let candidates: Vec<&Certificate> = operator_certs
        .iter()
        .filter(|op| key_info_certs.is_empty() || key_info_certs.iter().any(|der| *der == op.der || same_key(der, op)))
        .collect();
    if candidates.is_empty() {
        return Err(TslError::UnknownSigner);
    }

    // What was signed: every reference's digest.
    let references = doc.child_elements_by_name_ns(signed_info, DS_NS, "Reference");
    if references.is_empty() || references.len() > MAX_REFERENCES {
        return Err(TslError::Signature(format!("{} ds:Reference elements", references.len())));
    }
    let root_id = doc.get_attribute(root, "Id");
    let mut covers_list = 0;
    for reference in references {
        let uri = doc.get_attribute(reference, "URI").ok_or_else(|| TslError::Signature("a ds:Reference without URI".into()))?;
        let transforms = transforms(doc, reference)?;
        let whole_list =
            uri.is_empty() || (uri.strip_prefix('#').is_some_and(|id| Some(id) == root_id) && unique_id(doc, &uri[1..]) == Some(root));
        let data = if whole_list {
            covers_list += 1;
            let (first, rest) =
                transforms.split_first().ok_or_else(|| TslError::Signature("the list's reference has no transforms".into()))?;
            if first.0 != ENVELOPED {
                return Err(TslError::Unsupported(format!(
                    "the list's reference transforms start with {} (not enveloped-signature)",
                    first.0
                )));
            }
            let (mode, prefixes) = single_c14n(rest)?;
            canonical_list(doc, sig, !uri.is_empty(), mode, &prefixes)?
        } else {
            let target =
                uri.strip_prefix('#').and_then(|id| unique_id(doc, id)).filter(|t| doc.ancestors(*t).contains(&sig)).ok_or_else(|| {
                    TslError::Signature(format!("reference {uri:?} is neither the list nor one element inside the signature"))
                })?;
            let (mode, prefixes) = single_c14n(&transforms)?;
            c14n_subtree(doc, target, mode, &prefixes)?
        };
        let hash = digest_algorithm(doc.get_attribute(ds_child(doc, reference, "DigestMethod")?, "Algorithm").unwrap_or_default())?;
        let expected = base64(doc, ds_child(doc, reference, "DigestValue")?)?;
        if cloudsign_ades::digest(hash, &data) != expected {
            return Err(TslError::DigestMismatch(uri.to_string()));
        }
    }
    if covers_list != 1 {
        return Err(TslError::Signature(format!("{covers_list} references cover the whole list (exactly one required)")));
    }

    // The signature value over the canonical SignedInfo.
    let method = ds_child(doc, signed_info, "CanonicalizationMethod")?;
    let mode = c14n_mode(doc.get_attribute(method, "Algorithm").unwrap_or_default())?;
    let canonical_signed_info = c14n_subtree(doc, signed_info, mode, &inclusive_prefixes(doc, method))?;
    let scheme = signature_scheme(doc.get_attribute(ds_child(doc, signed_info, "SignatureMethod")?, "Algorithm").unwrap_or_default())?;
    let value = base64(doc, ds_child(doc, sig, "SignatureValue")?)?;
    let mut last_error = None;
    for cert in candidates {
        let value = match scheme {
            Scheme::Ecdsa(_) => ecdsa_raw_to_der(&value).ok_or_else(|| TslError::BadSignature("malformed ECDSA signature value".into()))?,
            _ => value.clone(),
        };
        match x509::verify_scheme(&cert.spki, scheme, &canonical_signed_info, &value) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(TslError::BadSignature(last_error.map(|e| e.to_string()).unwrap_or_default()))
}

/// The DER of every `ds:X509Certificate` in the signature's `KeyInfo`.
fn key_info_certificates(doc: &uppsala::Document<'_>, sig: uppsala::NodeId) -> Result<Vec<Vec<u8>>> {
    let Some(key_info) = doc.first_child_element_by_name_ns(sig, DS_NS, "KeyInfo") else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for data in doc.child_elements_by_name_ns(key_info, DS_NS, "X509Data") {
        for cert in doc.child_elements_by_name_ns(data, DS_NS, "X509Certificate") {
            out.push(base64(doc, cert)?);
        }
    }
    Ok(out)
}

/// Whether the certificate `der` has the public key of `op`.
fn same_key(der: &[u8], op: &Certificate) -> bool {
    Certificate::parse(der).is_ok_and(|c| c.spki == op.spki)
}

/// A reference's transforms: each algorithm URI with its exclusive C14N prefix list.
fn transforms(doc: &uppsala::Document<'_>, reference: uppsala::NodeId) -> Result<Vec<(String, Vec<String>)>> {
    let Some(list) = doc.first_child_element_by_name_ns(reference, DS_NS, "Transforms") else { return Ok(Vec::new()) };
    let transforms = doc.child_elements_by_name_ns(list, DS_NS, "Transform");
    if transforms.len() > 4 {
        return Err(TslError::Unsupported(format!("{} transforms", transforms.len())));
    }
    Ok(transforms
        .into_iter()
        .map(|t| (doc.get_attribute(t, "Algorithm").unwrap_or_default().to_string(), inclusive_prefixes(doc, t)))
        .collect())
}

/// At most one canonicalization transform (none: inclusive C14N 1.0, the XMLDSig default).
/// Same-document references select no comments, so a "with comments" variant is the same as
/// the one without.
fn single_c14n(transforms: &[(String, Vec<String>)]) -> Result<(cloudsign_xml::C14nMode, Vec<String>)> {
    use cloudsign_xml::C14nMode::*;
    match transforms {
        [] => Ok((Inclusive, Vec::new())),
        [(uri, prefixes)] => {
            let mode = match c14n_mode(uri)? {
                InclusiveWithComments => Inclusive,
                Inclusive11WithComments => Inclusive11,
                ExclusiveWithComments => Exclusive,
                other => other,
            };
            Ok((mode, prefixes.clone()))
        }
        _ => Err(TslError::Unsupported(format!("transforms {:?}", transforms.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>()))),
    }
}

fn c14n_mode(uri: &str) -> Result<cloudsign_xml::C14nMode> {
    cloudsign_xml::C14nMode::from_uri(uri).ok_or_else(|| TslError::Unsupported(format!("canonicalization or transform {uri:?}")))
}

/// The `PrefixList` of an `ec:InclusiveNamespaces` child of a transform or canonicalization method.
fn inclusive_prefixes(doc: &uppsala::Document<'_>, method: uppsala::NodeId) -> Vec<String> {
    doc.first_child_element_by_name_ns(method, EXC_C14N_NS, "InclusiveNamespaces")
        .and_then(|n| doc.get_attribute(n, "PrefixList"))
        .map(|list| list.split_ascii_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The canonical form of the list without its signature: the document (`URI=""`) or the root
/// element (`URI="#id"`) with the `ds:Signature` element cut out of the source and parsed again.
fn canonical_list(
    doc: &uppsala::Document<'_>,
    sig: uppsala::NodeId,
    root_only: bool,
    mode: cloudsign_xml::C14nMode,
    prefixes: &[String],
) -> Result<Vec<u8>> {
    let text = doc.input_text();
    let range = doc.node_range(sig).filter(|r| r.end <= text.len()).ok_or_else(|| TslError::Xml("no source position".into()))?;
    let without = format!("{}{}", &text[..range.start], &text[range.end..]);
    let stripped = parse(&without)?;
    if root_only {
        let root = stripped.document_element().ok_or_else(|| TslError::Xml("no root element".into()))?;
        let source = stripped.node_source(root).ok_or_else(|| TslError::Xml("no source position".into()))?;
        c14n_doc(&parse(source)?, mode, prefixes)
    } else {
        c14n_doc(&stripped, mode, prefixes)
    }
}

/// The canonical form of the subtree at `element` as XMLDSig canonicalizes it in place.
fn c14n_subtree(
    doc: &uppsala::Document<'_>,
    element: uppsala::NodeId,
    mode: cloudsign_xml::C14nMode,
    prefixes: &[String],
) -> Result<Vec<u8>> {
    let fragment =
        cloudsign_xml::subtree_in_context(doc, element, mode).ok_or_else(|| TslError::Xml("no source for the element".into()))?;
    c14n_doc(&parse(&fragment)?, mode, prefixes)
}

fn c14n_doc(doc: &uppsala::Document<'_>, mode: cloudsign_xml::C14nMode, prefixes: &[String]) -> Result<Vec<u8>> {
    cloudsign_xml::canonicalize(doc, mode, prefixes).map_err(|e| TslError::Xml(format!("canonicalization: {e}")))
}

/// The one element whose `Id` is `id`, if exactly one has it.
fn unique_id(doc: &uppsala::Document<'_>, id: &str) -> Option<uppsala::NodeId> {
    let mut found = doc.descendants(doc.root()).into_iter().filter(|n| doc.get_attribute(*n, "Id") == Some(id));
    match (found.next(), found.next()) {
        (Some(node), None) => Some(node),
        _ => None,
    }
}

/// XMLDSig DigestMethod URIs (XML Encryption §5.7.2, RFC 6931 §2.1.3); SHA-1 is refused.
fn digest_algorithm(uri: &str) -> Result<HashAlgorithm> {
    match uri {
        "http://www.w3.org/2001/04/xmlenc#sha256" => Ok(HashAlgorithm::Sha256),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Ok(HashAlgorithm::Sha384),
        "http://www.w3.org/2001/04/xmlenc#sha512" => Ok(HashAlgorithm::Sha512),
        other => Err(TslError::Unsupported(format!("digest method {other:?}"))),
    }
}

/// XMLDSig SignatureMethod URIs: RFC 6931 §2.3.2 (RSA), §2.3.6 (ECDSA), §2.3.10 (RSASSA-PSS).
fn signature_scheme(uri: &str) -> Result<Scheme> {
    crate::xades::xmldsig_scheme(uri).ok_or_else(|| TslError::Unsupported(format!("signature method {uri:?}")))
}

// ─── The list ───

fn read_list(doc: &uppsala::Document<'_>, root: uppsala::NodeId) -> Result<TrustedList> {
    let scheme = child(doc, root, "SchemeInformation")?;
    let sequence = text(doc, child(doc, scheme, "TSLSequenceNumber")?);
    let sequence_number = sequence.parse().map_err(|_| TslError::Structure(format!("TSLSequenceNumber {sequence:?}")))?;
    let scheme_operator = name(doc, child(doc, scheme, "SchemeOperatorName")?)?;
    let issue_date = optional_time(doc, doc.first_child_element_by_name_ns(scheme, TSL_NS, "ListIssueDateTime"))?;
    let next_update = doc.first_child_element_by_name_ns(scheme, TSL_NS, "NextUpdate");
    let next_update = optional_time(doc, next_update.and_then(|n| doc.first_child_element_by_name_ns(n, TSL_NS, "dateTime")))?;

    let mut services = Vec::new();
    if let Some(providers) = doc.first_child_element_by_name_ns(root, TSL_NS, "TrustServiceProviderList") {
        for tsp in doc.child_elements_by_name_ns(providers, TSL_NS, "TrustServiceProvider") {
            let provider = name(doc, child(doc, child(doc, tsp, "TSPInformation")?, "TSPName")?)?;
            let Some(list) = doc.first_child_element_by_name_ns(tsp, TSL_NS, "TSPServices") else { continue };
            for service in doc.child_elements_by_name_ns(list, TSL_NS, "TSPService") {
                let info = child(doc, service, "ServiceInformation")?;
                let mut certificates = Vec::new();
                if let Some(identity) = doc.first_child_element_by_name_ns(info, TSL_NS, "ServiceDigitalIdentity") {
                    for id in doc.child_elements_by_name_ns(identity, TSL_NS, "DigitalId") {
                        for cert in doc.child_elements_by_name_ns(id, TSL_NS, "X509Certificate") {
                            if let Ok(c) =
                                base64(doc, cert).and_then(|der| Certificate::parse(&der).map_err(|e| TslError::Structure(e.to_string())))
                            {
                                certificates.push(c);
                            }
                        }
                    }
                }
                services.push(TrustService {
                    provider: provider.clone(),
                    name: name(doc, child(doc, info, "ServiceName")?)?,
                    service_type: text(doc, child(doc, info, "ServiceTypeIdentifier")?),
                    status: text(doc, child(doc, info, "ServiceStatus")?),
                    certificates,
                });
            }
        }
    }
    let optional_text = |parent: uppsala::NodeId, local: &str| {
        doc.first_child_element_by_name_ns(parent, TSL_NS, local).map(|n| text(doc, n)).filter(|t| !t.is_empty())
    };
    let tsl_type = optional_text(scheme, "TSLType");
    let territory = optional_text(scheme, "SchemeTerritory");
    let mut pointers = Vec::new();
    if let Some(list) = doc.first_child_element_by_name_ns(scheme, TSL_NS, "PointersToOtherTSL") {
        for pointer in doc.child_elements_by_name_ns(list, TSL_NS, "OtherTSLPointer") {
            let location = text(doc, child(doc, pointer, "TSLLocation")?);
            let mut certificates = Vec::new();
            if let Some(ids) = doc.first_child_element_by_name_ns(pointer, TSL_NS, "ServiceDigitalIdentities") {
                for identity in doc.child_elements_by_name_ns(ids, TSL_NS, "ServiceDigitalIdentity") {
                    for id in doc.child_elements_by_name_ns(identity, TSL_NS, "DigitalId") {
                        for cert in doc.child_elements_by_name_ns(id, TSL_NS, "X509Certificate") {
                            if let Ok(c) =
                                base64(doc, cert).and_then(|der| Certificate::parse(&der).map_err(|e| TslError::Structure(e.to_string())))
                            {
                                certificates.push(c);
                            }
                        }
                    }
                }
            }
            // AdditionalInformation/OtherInformation: TSLType and SchemeTerritory in the TSL
            // namespace, MimeType in the "additionaltypes" one (matched by local name).
            let (mut tsl_type, mut territory, mut mime_type) = (None, None, None);
            if let Some(info) = doc.first_child_element_by_name_ns(pointer, TSL_NS, "AdditionalInformation") {
                for other in doc.child_elements_by_name_ns(info, TSL_NS, "OtherInformation") {
                    for item in doc.children(other).into_iter().filter(|n| doc.element(*n).is_some()) {
                        let value = Some(text(doc, item)).filter(|t| !t.is_empty());
                        match local_name(doc, item).as_str() {
                            "TSLType" => tsl_type = value,
                            "SchemeTerritory" => territory = value,
                            "MimeType" => mime_type = value,
                            _ => {}
                        }
                    }
                }
            }
            pointers.push(TslPointer { location, certificates, tsl_type, territory, mime_type });
        }
    }
    Ok(TrustedList { scheme_operator, sequence_number, issue_date, next_update, tsl_type, territory, services, pointers })
}

/// The `Name` children of a multilingual name: the English one, else the first.
fn name(doc: &uppsala::Document<'_>, parent: uppsala::NodeId) -> Result<String> {
    let names = doc.child_elements_by_name_ns(parent, TSL_NS, "Name");
    let lang = |n: uppsala::NodeId| doc.get_attribute_ns(n, XML_NS, "lang").or_else(|| doc.get_attribute(n, "lang"));
    let chosen = names.iter().find(|n| lang(**n).is_some_and(|l| l.eq_ignore_ascii_case("en"))).or(names.first());
    chosen.map(|n| text(doc, *n)).ok_or_else(|| TslError::Structure(format!("no Name in {}", local_name(doc, parent))))
}

fn optional_time(doc: &uppsala::Document<'_>, node: Option<uppsala::NodeId>) -> Result<Option<i64>> {
    let Some(node) = node else { return Ok(None) };
    let value = text(doc, node);
    date_time(&value).map(Some).ok_or_else(|| TslError::Structure(format!("{} {value:?} is not an xsd:dateTime", local_name(doc, node))))
}

/// An xsd:dateTime (`YYYY-MM-DDThh:mm:ss[.f][Z|±hh:mm]`, no zone read as UTC) → unix seconds.
fn date_time(value: &str) -> Option<i64> {
    let (date, time) = value.split_once('T')?;
    let (time, offset) = if let Some(t) = time.strip_suffix('Z') {
        (t, 0)
    } else if time.len() > 6 && matches!(time.as_bytes()[time.len() - 6], b'+' | b'-') && time.as_bytes()[time.len() - 3] == b':' {
        let (t, zone) = time.split_at(time.len() - 6);
        let number = |s: &str| s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse::<i64>().ok()).flatten();
        let (hours, minutes) = (number(&zone[1..3])?, number(&zone[4..6])?);
        if hours > 14 || minutes > 59 {
            return None;
        }
        let seconds = hours * 3600 + minutes * 60;
        (t, if zone.starts_with('-') { -seconds } else { seconds })
    } else {
        (time, 0)
    };
    let time = time.split_once('.').map_or(time, |(t, fraction)| if fraction.bytes().all(|b| b.is_ascii_digit()) { t } else { "!" });
    let date: Vec<&str> = date.split('-').collect();
    let time: Vec<&str> = time.split(':').collect();
    let ([y, m, d], [hh, mm, ss]) = (date.as_slice(), time.as_slice()) else { return None };
    if y.len() != 4 || [m, d, hh, mm, ss].iter().any(|p| p.len() != 2) {
        return None;
    }
    let utc = x509::parse_time(0x18, format!("{y}{m}{d}{hh}{mm}{ss}Z").as_bytes())?;
    Some(utc - offset)
}

// ─── XML helpers ───

/// Parse with DTDs refused (so no entities but the predefined ones) and nesting bounded.
fn parse(text: &str) -> Result<uppsala::Document<'_>> {
    uppsala::Parser::new().with_forbid_dtd(true).with_max_depth(MAX_DEPTH).parse(text).map_err(|e| TslError::Xml(e.to_string()))
}

/// Whether `node` is the element `{ns}local`.
fn is(doc: &uppsala::Document<'_>, node: uppsala::NodeId, ns: &str, local: &str) -> bool {
    doc.element(node).is_some_and(|e| e.matches_name_ns(ns, local))
}

fn local_name(doc: &uppsala::Document<'_>, node: uppsala::NodeId) -> String {
    doc.element(node).map(|e| e.name.local_name.to_string()).unwrap_or_default()
}

/// The first `tsl:{local}` child, required.
fn child(doc: &uppsala::Document<'_>, parent: uppsala::NodeId, local: &str) -> Result<uppsala::NodeId> {
    doc.first_child_element_by_name_ns(parent, TSL_NS, local)
        .ok_or_else(|| TslError::Structure(format!("no {local} in {}", local_name(doc, parent))))
}

/// The first `ds:{local}` child, required.
fn ds_child(doc: &uppsala::Document<'_>, parent: uppsala::NodeId, local: &str) -> Result<uppsala::NodeId> {
    doc.first_child_element_by_name_ns(parent, DS_NS, local)
        .ok_or_else(|| TslError::Signature(format!("no ds:{local} in ds:{}", local_name(doc, parent))))
}

/// The text content, trimmed.
fn text(doc: &uppsala::Document<'_>, node: uppsala::NodeId) -> String {
    doc.text_content_deep(node).trim().to_string()
}

/// Base64 text content (whitespace ignored).
fn base64(doc: &uppsala::Document<'_>, node: uppsala::NodeId) -> Result<Vec<u8>> {
    let text: String = doc.text_content_deep(node).chars().filter(|c| !c.is_ascii_whitespace()).collect();
    cloudsign_asn1::b64::decode_lenient(&text).ok_or_else(|| TslError::Structure(format!("{} is not base64", local_name(doc, node))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_of_a_list_of_lists() {
        let xml = r#"<tsl:TrustServiceStatusList xmlns:tsl="http://uri.etsi.org/02231/v2#" xmlns:x="http://uri.etsi.org/02231/v2/additionaltypes#">
  <tsl:SchemeInformation>
    <tsl:TSLSequenceNumber>1</tsl:TSLSequenceNumber>
    <tsl:TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUlistofthelists</tsl:TSLType>
    <tsl:SchemeOperatorName><tsl:Name xml:lang="en">EC</tsl:Name></tsl:SchemeOperatorName>
    <tsl:SchemeTerritory>EU</tsl:SchemeTerritory>
    <tsl:PointersToOtherTSL>
      <tsl:OtherTSLPointer><tsl:TSLLocation>https://x.example/lotl.xml</tsl:TSLLocation>
        <tsl:AdditionalInformation><tsl:OtherInformation><tsl:TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUlistofthelists</tsl:TSLType></tsl:OtherInformation></tsl:AdditionalInformation>
      </tsl:OtherTSLPointer>
      <tsl:OtherTSLPointer><tsl:TSLLocation> https://at.example/tl.xml </tsl:TSLLocation>
        <tsl:ServiceDigitalIdentities><tsl:ServiceDigitalIdentity><tsl:DigitalId><tsl:X509Certificate>bm90IGEgY2VydA==</tsl:X509Certificate></tsl:DigitalId></tsl:ServiceDigitalIdentity></tsl:ServiceDigitalIdentities>
        <tsl:AdditionalInformation>
          <tsl:OtherInformation><tsl:TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric</tsl:TSLType></tsl:OtherInformation>
          <tsl:OtherInformation><tsl:SchemeTerritory>AT</tsl:SchemeTerritory></tsl:OtherInformation>
          <tsl:OtherInformation><x:MimeType>application/vnd.etsi.tsl+xml</x:MimeType></tsl:OtherInformation>
        </tsl:AdditionalInformation>
      </tsl:OtherTSLPointer>
      <tsl:OtherTSLPointer><tsl:TSLLocation>https://at.example/tl.pdf</tsl:TSLLocation>
        <tsl:AdditionalInformation><tsl:OtherInformation><x:MimeType>application/pdf</x:MimeType></tsl:OtherInformation></tsl:AdditionalInformation>
      </tsl:OtherTSLPointer>
      <tsl:OtherTSLPointer><tsl:TSLLocation>https://at.example/tl.xml</tsl:TSLLocation></tsl:OtherTSLPointer>
    </tsl:PointersToOtherTSL>
  </tsl:SchemeInformation>
</tsl:TrustServiceStatusList>"#;
        let doc = parse(xml).unwrap();
        let list = read_list(&doc, doc.document_element().unwrap()).unwrap();
        assert_eq!((list.tsl_type.as_deref(), list.territory.as_deref()), (Some(TYPE_EU_LOTL), Some("EU")));
        assert_eq!(list.pointers.len(), 4);
        let at = &list.pointers[1];
        assert_eq!(
            (at.location.as_str(), at.territory.as_deref(), at.tsl_type.as_deref()),
            ("https://at.example/tl.xml", Some("AT"), Some(TYPE_EU_GENERIC))
        );
        assert_eq!(at.mime_type.as_deref(), Some(MIME_TSL_XML));
        assert!(at.certificates.is_empty(), "what does not parse as a certificate is left out");
        // Not the LOTL itself, not the PDF, each location once.
        let followed: Vec<&str> = list.national_pointers().iter().map(|p| p.location.as_str()).collect();
        assert_eq!(followed, ["https://at.example/tl.xml"]);
    }

    #[test]
    fn date_times() {
        assert_eq!(date_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(date_time("2024-02-29T12:30:15.123Z"), Some(1_709_209_815));
        assert_eq!(date_time("2024-02-29T13:30:15+01:00"), Some(1_709_209_815));
        assert_eq!(date_time("2024-02-29T11:30:15-01:00"), Some(1_709_209_815));
        assert_eq!(date_time("2024-02-29T12:30:15"), Some(1_709_209_815));
        for bad in ["2023-02-29T00:00:00Z", "2024-01-01", "2024-01-01T00:00Z", "2024-1-01T00:00:00Z", "2024-01-01T00:00:00.x", "x"] {
            assert_eq!(date_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn ecdsa_values_become_der() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80;
        raw[63] = 1;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x21, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x01]);
        assert_eq!(ecdsa_raw_to_der(&[0u8; 4]).unwrap(), [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]);
        let wide = ecdsa_raw_to_der(&[0xFFu8; 132]).unwrap();
        assert_eq!(&wide[..3], &[0x30, 0x81, 0x8A]);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_none());
        assert!(ecdsa_raw_to_der(&[]).is_none());
    }
}
