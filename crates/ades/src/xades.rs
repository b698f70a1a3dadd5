//! XAdES (ETSI EN 319 132-1) baseline B-B, B-T, B-LT and B-LTA: an XMLDSig `ds:Signature` whose second
//! reference covers `xades:SignedProperties` (signing time, signing certificate, data object
//! format), enveloped in an XML document, enveloping its data in a `ds:Object`, or detached
//! from a file the caller hashed itself.
//!
//! The signature is built in two steps like [`crate::cades`]: [`prepare`] gives the digest to
//! sign (`to_be_signed`, the hash of the canonical `ds:SignedInfo`), and [`Prepared::finish`]
//! assembles the document with the signature value (and, for B-T, the time-stamp token over
//! `ds:SignatureValue`, whose imprint [`Prepared::timestamp_imprint`] gives).
//!
//! B-LTA extends a finished B-LT document in two steps as well, since the archive time-stamp
//! comes from a remote TSA: [`archive_imprint`] reads the document (and, detached, the signed
//! file) and computes the imprint of a `xadesv141:ArchiveTimeStamp` (EN 319 132-1 §5.5.2), and
//! [`ArchivePrepared::finish`] appends it with the token. Repeating both renews the archive
//! time-stamp, each new one covering those before it.
//!
//! Canonicalization is exclusive C14N 1.0 throughout. Every fragment this module writes
//! (`SignedInfo`, `SignedProperties`, the enveloping `ds:Object`, `SignatureValue`) is written
//! standalone with the namespace declarations it uses, canonicalized, and hashed: exclusive
//! C14N of a subtree does not depend on the ancestors' namespaces, so the bytes hashed here are
//! the bytes a verifier canonicalizes in the final document. The caller's document is
//! canonicalized by `cloudsign-xml` (bergshamra-c14n, checked against xmlsec1, lxml and
//! signxml) and is otherwise left byte for byte as it came. Where uppsala 0.12 parses unlike XML 1.0 the
//! document is refused (entities holding markup, external or parameter entities, ATTLIST) or
//! worked around (literal tabs and line breaks in attribute values). A document with entity
//! declarations signs correctly, but xmlsec1 1.2 and signxml refuse to verify any DTD.

use cloudsign_asn1::der;
use cloudsign_asn1::{HashAlgorithm, SignAlgorithm, b64};
use cloudsign_xml::{C14nMode, escape, in_scope, normalize_attribute_whitespace, subtree_in_context};

pub use crate::Params;
use crate::cades::ValidationData;
use crate::ecdsa_der_to_raw;
use crate::{AdesError, digest};

const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const XADES: &str = "http://uri.etsi.org/01903/v1.3.2#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const BASE64: &str = "http://www.w3.org/2000/09/xmldsig#base64";
const SIGNED_PROPERTIES_TYPE: &str = "http://uri.etsi.org/01903#SignedProperties";
const XADES141: &str = "http://uri.etsi.org/01903/v1.4.1#";

/// A XAdES signature that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum XadesError {
    /// The certificate, digest or signature value is unusable.
    #[error(transparent)]
    Ades(#[from] AdesError),
    /// The XML document cannot be parsed, canonicalized or signed in that packaging.
    #[error("the XML document cannot be signed: {0}")]
    Xml(String),
}

/// What is signed, and where the signature goes.
pub enum Input<'a> {
    /// An XML document (UTF-8): the signature becomes the last child of its root element, with
    /// a reference `URI=""` and the transforms enveloped-signature and exclusive C14N. The
    /// document's bytes are otherwise kept as they are.
    Enveloped(&'a [u8]),
    /// An XML document (UTF-8, without a DOCTYPE) whose root element is moved, as written, into
    /// a `ds:Object` of the signature, referenced by Id with exclusive C14N.
    EnvelopingXml(&'a [u8]),
    /// Any bytes, base64 in a `ds:Object`, referenced by Id with the base64 transform: the
    /// digest is over the bytes themselves.
    Enveloping {
        /// The data.
        data: &'a [u8],
        /// Its media type for `DataObjectFormat` (default `application/octet-stream`).
        mime_type: Option<&'a str>,
    },
    /// A document kept apart (never loaded here): the caller hashes it while streaming, with
    /// the scheme's hash, and names it by a URI reference, typically its file name relative to
    /// the signature (see [`file_name_uri`]). No transforms.
    Detached {
        /// The document's digest with `p.scheme.hash()`.
        digest: &'a [u8],
        /// The reference URI, already percent-encoded.
        uri: &'a str,
        /// Its media type for `DataObjectFormat` (default `application/octet-stream`).
        mime_type: Option<&'a str>,
    },
}

/// A relative URI reference for a file name: every byte outside RFC 3986 `unreserved` is
/// percent-encoded, so the name survives as one path segment.
pub fn file_name_uri(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where the finished `ds:Signature` goes.
enum Placement {
    /// A document of its own (enveloping, detached).
    Standalone,
    /// Inside the caller's document at byte `at`: `head` and `tail` surround the signature
    /// there (for a self-closing root, `>` and the end tag replace its `/>`).
    Enveloped { document: Vec<u8>, at: usize, resume: usize, head: String, tail: String },
}

/// The signed part of a XAdES signature, waiting for its signature value.
pub struct Prepared {
    scheme: SignAlgorithm,
    id: String,
    /// ECDSA coordinate width (the value goes in as r ‖ s), from the certificate's key.
    ecdsa_width: Option<usize>,
    signed_info: String,
    key_info: String,
    data_object: String,
    signed_properties: String,
    placement: Placement,
    /// The digest the signer signs: the hash of the exclusive canonical `ds:SignedInfo`.
    pub to_be_signed: Vec<u8>,
}

/// Build the signed properties and `ds:SignedInfo` for `input`, and the digest to sign.
pub fn prepare(input: Input<'_>, p: &Params<'_>) -> Result<Prepared, XadesError> {
    let hash = p.scheme.hash();
    let signature_method = signature_method(p.scheme);
    let id = fresh_id(match &input {
        Input::Enveloped(d) | Input::EnvelopingXml(d) => d,
        _ => &[],
    });
    let (issuer, serial) = cloudsign_asn1::cert::issuer_and_serial(p.certificate).ok_or(AdesError::Certificate)?;
    let ecdsa_width = match p.scheme {
        SignAlgorithm::Ecdsa(_) => Some(ec_width(p.certificate).ok_or(AdesError::Certificate)?),
        _ => None,
    };

    // The data reference: URI, transforms, digest, media type; and the ds:Object it points to
    // when enveloping.
    let ref_id = format!("{id}-ref0");
    let obj_id = format!("{id}-obj");
    let (uri, transforms, data_digest, mime, data_object, placement) = match input {
        Input::Enveloped(doc) => {
            let (text, bom) = utf8(doc)?;
            let parsed = parse(text, true)?;
            let root = parsed.document_element().ok_or_else(|| XadesError::Xml("no root element".into()))?;
            let range = parsed.node_range(root).ok_or_else(|| XadesError::Xml("no source position".into()))?;
            check_doctype(&text[..range.start])?;
            let canonical = canonical_document(text, &parsed)?;
            let source = &text[range.clone()];
            let name = parsed.element(root).map(|e| e.name.prefixed_name().into_owned()).unwrap_or_default();
            let placement = if source.ends_with("/>") {
                // `<root .../>` becomes `<root ...>` signature `</root>`: the same element.
                let at = bom + range.end - 2;
                Placement::Enveloped { document: doc.to_vec(), at, resume: at + 2, head: ">".into(), tail: format!("</{name}>") }
            } else {
                // Before the end tag `</name>`: the last '<' of the element.
                let at = bom + range.start + source.rfind('<').ok_or_else(|| XadesError::Xml("no end tag".into()))?;
                Placement::Enveloped { document: doc.to_vec(), at, resume: at, head: String::new(), tail: String::new() }
            };
            let transforms =
                format!(r#"<ds:Transforms><ds:Transform Algorithm="{ENVELOPED}"/><ds:Transform Algorithm="{EXC_C14N}"/></ds:Transforms>"#);
            (String::new(), transforms, digest(hash, &canonical), "text/xml".to_string(), String::new(), placement)
        }
        Input::EnvelopingXml(doc) => {
            let (text, _) = utf8(doc)?;
            let parsed = parse(text, false)?;
            let root = parsed.document_element().ok_or_else(|| XadesError::Xml("no root element".into()))?;
            let source = parsed.node_source(root).ok_or_else(|| XadesError::Xml("no source position".into()))?;
            // The root element as written; its canonical form inside ds:Object is what the
            // reference covers.
            let object = format!(r#"<ds:Object xmlns:ds="{DS}" Id="{obj_id}">{source}</ds:Object>"#);
            let canonical = c14n(&object)?;
            let transforms = format!(r#"<ds:Transforms><ds:Transform Algorithm="{EXC_C14N}"/></ds:Transforms>"#);
            (format!("#{obj_id}"), transforms, digest(hash, canonical.as_bytes()), "text/xml".to_string(), object, Placement::Standalone)
        }
        Input::Enveloping { data, mime_type } => {
            let object = format!(r#"<ds:Object xmlns:ds="{DS}" Encoding="{BASE64}" Id="{obj_id}">{}</ds:Object>"#, b64::encode(data));
            let transforms = format!(r#"<ds:Transforms><ds:Transform Algorithm="{BASE64}"/></ds:Transforms>"#);
            let mime = mime_type.unwrap_or("application/octet-stream").to_string();
            (format!("#{obj_id}"), transforms, digest(hash, data), mime, object, Placement::Standalone)
        }
        Input::Detached { digest: d, uri, mime_type } => {
            if d.len() != hash.len() {
                return Err(AdesError::DigestLength(hash.name()).into());
            }
            if uri.is_empty() || uri.starts_with('#') {
                return Err(XadesError::Xml("a detached reference needs a URI to another document".into()));
            }
            let mime = mime_type.unwrap_or("application/octet-stream").to_string();
            (uri.to_string(), String::new(), d.to_vec(), mime, String::new(), Placement::Standalone)
        }
    };

    // EN 319 132-1 §5.2: SigningTime, SigningCertificateV2 (digest and IssuerSerialV2, the DER
    // IssuerSerial of RFC 5035), DataObjectFormat for the data reference.
    let t = cloudsign_pki::generalized_time(p.signing_time);
    let signing_time = format!("{}-{}-{}T{}:{}:{}Z", &t[0..4], &t[4..6], &t[6..8], &t[8..10], &t[10..12], &t[12..14]);
    let issuer_serial = der::seq(&[&der::seq(&[&der::explicit(4, &issuer)]), &serial]);
    let digest_method = digest_method(hash);
    let signed_properties = c14n(&format!(
        concat!(
            r#"<xades:SignedProperties xmlns:xades="{xades}" xmlns:ds="{ds}" Id="{id}-sp">"#,
            "<xades:SignedSignatureProperties>",
            "<xades:SigningTime>{time}</xades:SigningTime>",
            "<xades:SigningCertificateV2><xades:Cert><xades:CertDigest>",
            r#"<ds:DigestMethod Algorithm="{dm}"/><ds:DigestValue>{cert_digest}</ds:DigestValue>"#,
            "</xades:CertDigest><xades:IssuerSerialV2>{issuer_serial}</xades:IssuerSerialV2></xades:Cert></xades:SigningCertificateV2>",
            "</xades:SignedSignatureProperties>",
            "<xades:SignedDataObjectProperties>",
            r##"<xades:DataObjectFormat ObjectReference="#{ref_id}"><xades:MimeType>{mime}</xades:MimeType></xades:DataObjectFormat>"##,
            "</xades:SignedDataObjectProperties>",
            "</xades:SignedProperties>"
        ),
        xades = XADES,
        ds = DS,
        id = id,
        time = signing_time,
        dm = digest_method,
        cert_digest = b64::encode(&digest(hash, p.certificate)),
        issuer_serial = b64::encode(&issuer_serial),
        ref_id = ref_id,
        mime = escape(&mime),
    ))?;

    let signed_info = c14n(&format!(
        concat!(
            r#"<ds:SignedInfo xmlns:ds="{ds}">"#,
            r#"<ds:CanonicalizationMethod Algorithm="{c14n}"/>"#,
            r#"<ds:SignatureMethod Algorithm="{sm}"/>"#,
            r#"<ds:Reference Id="{ref_id}" URI="{uri}">{transforms}<ds:DigestMethod Algorithm="{dm}"/><ds:DigestValue>{data_digest}</ds:DigestValue></ds:Reference>"#,
            r##"<ds:Reference Type="{sp_type}" URI="#{id}-sp"><ds:Transforms><ds:Transform Algorithm="{c14n}"/></ds:Transforms>"##,
            r#"<ds:DigestMethod Algorithm="{dm}"/><ds:DigestValue>{sp_digest}</ds:DigestValue></ds:Reference>"#,
            "</ds:SignedInfo>"
        ),
        ds = DS,
        c14n = EXC_C14N,
        sm = signature_method,
        ref_id = ref_id,
        uri = escape(&uri),
        transforms = transforms,
        dm = digest_method,
        data_digest = b64::encode(&data_digest),
        sp_type = SIGNED_PROPERTIES_TYPE,
        id = id,
        sp_digest = b64::encode(&digest(hash, signed_properties.as_bytes())),
    ))?;

    let certificates: String = std::iter::once(p.certificate)
        .chain(p.chain.iter().map(Vec::as_slice))
        .map(|c| format!("<ds:X509Certificate>{}</ds:X509Certificate>", b64::encode(c)))
        .collect();
    Ok(Prepared {
        scheme: p.scheme,
        ecdsa_width,
        to_be_signed: digest(hash, signed_info.as_bytes()),
        key_info: format!("<ds:KeyInfo><ds:X509Data>{certificates}</ds:X509Data></ds:KeyInfo>"),
        id,
        signed_info,
        data_object,
        signed_properties,
        placement,
    })
}

impl Prepared {
    /// The `Id` of the `ds:Signature`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The data to be signed (ETSI TS 119 432's DTBS) whose hash is
    /// [`to_be_signed`](Self::to_be_signed): the exclusive canonical `ds:SignedInfo`
    /// (XMLDSig 1.1 §3.1.2, the bytes the SignatureMethod is computed over), for a signer that
    /// hashes what it signs (a WebCrypto key).
    pub fn data_to_be_signed(&self) -> &[u8] {
        self.signed_info.as_bytes()
    }

    /// The `ds:SignatureValue` element, in canonical form, for a signature value as the signer
    /// returns it: ECDSA as DER `ECDSA-Sig-Value` (or already r ‖ s), RSA as is.
    fn signature_value(&self, signature: &[u8]) -> Result<String, XadesError> {
        // XMLDSig 1.1 §6.4.3: ECDSA values are r ‖ s, each as wide as the curve's order.
        let value = match self.ecdsa_width {
            Some(width) => match ecdsa_der_to_raw(signature, width) {
                Some(raw) => raw,
                None if signature.len() == 2 * width => signature.to_vec(),
                None => return Err(AdesError::Signature.into()),
            },
            None => signature.to_vec(),
        };
        Ok(format!(r#"<ds:SignatureValue xmlns:ds="{DS}" Id="{}-sv">{}</ds:SignatureValue>"#, self.id, b64::encode(&value)))
    }

    /// The message imprint a B-T time-stamp is requested for: the hash of the exclusive
    /// canonical `ds:SignatureValue` element (EN 319 132-1 §5.3, SignatureTimeStamp).
    pub fn timestamp_imprint(&self, signature: &[u8]) -> Result<(HashAlgorithm, Vec<u8>), XadesError> {
        let hash = self.scheme.hash();
        Ok((hash, digest(hash, self.signature_value(signature)?.as_bytes())))
    }

    /// The signed document: the caller's document with the signature inside (enveloped), or
    /// the `ds:Signature` as a document of its own (enveloping, detached). With a time-stamp
    /// token over the signature value (B-T) and with `validation` data (B-LT: certificate and
    /// revocation values, EN 319 132-1 §5.4).
    pub fn finish(
        self,
        signature: &[u8],
        timestamp_token: Option<&[u8]>,
        validation: Option<&ValidationData>,
    ) -> Result<Vec<u8>, XadesError> {
        let signature_value = self.signature_value(signature)?;
        let id = &self.id;
        let mut unsigned = String::new();
        if let Some(token) = timestamp_token {
            unsigned.push_str(&format!(
                r#"<xades:SignatureTimeStamp Id="{id}-ts"><ds:CanonicalizationMethod Algorithm="{EXC_C14N}"/><xades:EncapsulatedTimeStamp>{}</xades:EncapsulatedTimeStamp></xades:SignatureTimeStamp>"#,
                b64::encode(token)
            ));
        }
        if let Some(v) = validation {
            if !v.certificates.is_empty() {
                unsigned.push_str("<xades:CertificateValues>");
                for c in &v.certificates {
                    unsigned
                        .push_str(&format!("<xades:EncapsulatedX509Certificate>{}</xades:EncapsulatedX509Certificate>", b64::encode(c)));
                }
                unsigned.push_str("</xades:CertificateValues>");
            }
            if !v.crls.is_empty() || !v.ocsp.is_empty() {
                unsigned.push_str("<xades:RevocationValues>");
                if !v.crls.is_empty() {
                    unsigned.push_str("<xades:CRLValues>");
                    for c in &v.crls {
                        unsigned.push_str(&format!("<xades:EncapsulatedCRLValue>{}</xades:EncapsulatedCRLValue>", b64::encode(c)));
                    }
                    unsigned.push_str("</xades:CRLValues>");
                }
                if !v.ocsp.is_empty() {
                    unsigned.push_str("<xades:OCSPValues>");
                    for o in &v.ocsp {
                        unsigned.push_str(&format!("<xades:EncapsulatedOCSPValue>{}</xades:EncapsulatedOCSPValue>", b64::encode(o)));
                    }
                    unsigned.push_str("</xades:OCSPValues>");
                }
                unsigned.push_str("</xades:RevocationValues>");
            }
        }
        if !unsigned.is_empty() {
            unsigned = format!(
                "<xades:UnsignedProperties><xades:UnsignedSignatureProperties>{unsigned}</xades:UnsignedSignatureProperties></xades:UnsignedProperties>"
            );
        }
        let signature_xml = format!(
            concat!(
                r#"<ds:Signature xmlns:ds="{ds}" Id="{id}">"#,
                "{signed_info}{signature_value}{key_info}{data_object}",
                r##"<ds:Object><xades:QualifyingProperties xmlns:xades="{xades}" Target="#{id}">{signed_properties}{unsigned}</xades:QualifyingProperties></ds:Object>"##,
                "</ds:Signature>"
            ),
            ds = DS,
            id = id,
            signed_info = self.signed_info,
            signature_value = signature_value,
            key_info = self.key_info,
            data_object = self.data_object,
            xades = XADES,
            signed_properties = self.signed_properties,
            unsigned = unsigned,
        );
        Ok(match self.placement {
            Placement::Standalone => format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{signature_xml}\n").into_bytes(),
            Placement::Enveloped { document, at, resume, head, tail } => {
                let mut out = Vec::with_capacity(document.len() + head.len() + signature_xml.len() + tail.len());
                out.extend_from_slice(&document[..at]);
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(signature_xml.as_bytes());
                out.extend_from_slice(tail.as_bytes());
                out.extend_from_slice(&document[resume..]);
                out
            }
        })
    }
}

/// A finished B-LT signature waiting for its archive time-stamp (B-LTA, EN 319 132-1 §5.5.2):
/// the document, the place at the end of `xades:UnsignedSignatureProperties` where the
/// `xadesv141:ArchiveTimeStamp` goes, and the message imprint the time-stamp is requested for.
pub struct ArchivePrepared {
    document: Vec<u8>,
    /// Byte offset of the `UnsignedSignatureProperties` end tag in `document`.
    at: usize,
    /// The new element's `Id`.
    id: String,
    /// Declarations of `ds:` and `xades:` for the new element where the document binds those
    /// prefixes otherwise (never, for documents [`Prepared::finish`] wrote).
    declarations: String,
    hash: HashAlgorithm,
    imprint: Vec<u8>,
}

/// Compute the message imprint of a B-LTA archive time-stamp over `signed_xml`, a XAdES
/// document as [`Prepared::finish`] wrote it at B-LT (or an earlier B-LTA: each further
/// archive time-stamp covers the ones before it). `detached` reads the document a detached
/// signature references (streamed once; its digest is checked against the reference). `hash`
/// is the imprint's algorithm.
///
/// The time-stamp input is that of EN 319 132-1 §5.5.2.2 (TS 101 903 v1.4.1 §8.2.1), each
/// part canonicalized with exclusive C14N 1.0, the algorithm the new element names:
/// 1. the output of every `ds:Reference` in `ds:SignedInfo`, in order, including the one to
///    `SignedProperties` (here always an octet stream: the last transform is exclusive C14N
///    or base64, or a detached reference has no transforms);
/// 2. `ds:SignedInfo`, `ds:SignatureValue`, `ds:KeyInfo`;
/// 3. every child of `xades:UnsignedSignatureProperties` (the new element goes last);
/// 4. every `ds:Object` of the signature except the one holding `xades:QualifyingProperties`
///    (also those a reference covers, unlike TS 101 903 v1.3.2).
///
/// The reference digests are checked on the way, so a document that does not match its
/// signature is refused rather than time-stamped.
pub fn archive_imprint(
    signed_xml: &[u8],
    detached: Option<&mut dyn std::io::Read>,
    hash: HashAlgorithm,
) -> Result<ArchivePrepared, XadesError> {
    let bad = |why: &str| XadesError::Xml(why.to_string());
    let (text, bom) = utf8(signed_xml)?;
    let doc = parse(text, true)?;
    let root = doc.document_element().ok_or_else(|| bad("no root element"))?;
    // Where finish puts it: the root element, or the last child element of the root.
    let sig = if is(&doc, root, DS, "Signature") {
        root
    } else {
        let last = doc.children(root).into_iter().rev().find(|n| doc.element(*n).is_some());
        last.filter(|n| is(&doc, *n, DS, "Signature")).ok_or_else(|| bad("no ds:Signature at the end of the root element"))?
    };
    let sig_id = doc.get_attribute(sig, "Id").ok_or_else(|| bad("the ds:Signature has no Id"))?;
    let signed_info = doc.first_child_element_by_name_ns(sig, DS, "SignedInfo").ok_or_else(|| bad("no ds:SignedInfo"))?;
    let signature_value = doc.first_child_element_by_name_ns(sig, DS, "SignatureValue").ok_or_else(|| bad("no ds:SignatureValue"))?;
    let key_info = doc.first_child_element_by_name_ns(sig, DS, "KeyInfo");
    let objects = doc.child_elements_by_name_ns(sig, DS, "Object");
    let target = format!("#{sig_id}");
    let is_qualifying = |object: uppsala::NodeId| {
        doc.first_child_element_by_name_ns(object, XADES, "QualifyingProperties")
            .is_some_and(|q| doc.get_attribute(q, "Target") == Some(target.as_str()))
    };
    let qualifying = objects.iter().copied().find(|o| is_qualifying(*o)).ok_or_else(|| bad("no xades:QualifyingProperties"))?;
    let qualifying = doc.first_child_element_by_name_ns(qualifying, XADES, "QualifyingProperties").unwrap_or(qualifying);
    let unsigned = doc
        .first_child_element_by_name_ns(qualifying, XADES, "UnsignedProperties")
        .and_then(|u| doc.first_child_element_by_name_ns(u, XADES, "UnsignedSignatureProperties"))
        .ok_or_else(|| bad("no unsigned signature properties: B-LTA extends a B-LT signature"))?;
    let properties: Vec<_> = doc.children(unsigned).into_iter().filter(|n| doc.element(*n).is_some()).collect();
    // EN 319 132-1 §6.3: B-LTA builds on B-LT (a signature time-stamp and validation data).
    for name in ["SignatureTimeStamp", "CertificateValues"] {
        if !properties.iter().any(|p| is(&doc, *p, XADES, name)) {
            return Err(XadesError::Xml(format!("no xades:{name}: B-LTA extends a B-LT signature")));
        }
    }

    let mut input = ArchiveInput::new(hash);
    // 1. The references' outputs, checked against their digests.
    let mut detached = detached;
    for reference in doc.child_elements_by_name_ns(signed_info, DS, "Reference") {
        let uri = doc.get_attribute(reference, "URI").ok_or_else(|| bad("a ds:Reference without URI"))?;
        let method = doc
            .first_child_element_by_name_ns(reference, DS, "DigestMethod")
            .and_then(|m| doc.get_attribute(m, "Algorithm"))
            .and_then(digest_algorithm)
            .ok_or_else(|| bad("a ds:Reference with an unknown DigestMethod"))?;
        let expected = doc
            .first_child_element_by_name_ns(reference, DS, "DigestValue")
            .and_then(|v| b64::decode_lenient(&doc.text_content_deep(v)))
            .ok_or_else(|| bad("a ds:Reference without DigestValue"))?;
        let mut transforms = Vec::new();
        if let Some(t) = doc.first_child_element_by_name_ns(reference, DS, "Transforms") {
            for transform in doc.child_elements_by_name_ns(t, DS, "Transform") {
                if doc.children(transform).iter().any(|n| doc.element(*n).is_some()) {
                    return Err(bad("transform parameters are not supported"));
                }
                transforms.push(doc.get_attribute(transform, "Algorithm").unwrap_or_default());
            }
        }
        let mut check = aws_lc_rs::digest::Context::new(crate::aws_lc_algorithm(method));
        match (uri, transforms.as_slice()) {
            ("", [ENVELOPED, EXC_C14N]) => {
                // The whole document without this signature and without comments.
                let range = doc.node_range(sig).ok_or_else(|| bad("no source position"))?;
                let rest = format!("{}{}", &text[..range.start], &text[range.end..]);
                check_doctype(&text[..doc.node_range(root).map_or(0, |r| r.start)])?;
                let canonical = canonical_document(&rest, &parse(&rest, true)?)?;
                check.update(&canonical);
                input.update(&canonical);
            }
            (_, [EXC_C14N]) if uri.starts_with('#') => {
                let canonical = c14n_subtree(&doc, by_id(&doc, &uri[1..])?)?;
                check.update(&canonical);
                input.update(&canonical);
            }
            (_, [BASE64]) if uri.starts_with('#') => {
                let data = b64::decode_lenient(&doc.text_content_deep(by_id(&doc, &uri[1..])?)).ok_or_else(|| bad("bad base64 content"))?;
                check.update(&data);
                input.update(&data);
            }
            (_, []) if !uri.is_empty() && !uri.starts_with('#') => {
                let reader = detached.take().ok_or_else(|| XadesError::Xml(format!("the detached document {uri:?} is needed")))?;
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    let n = match reader.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(XadesError::Xml(format!("reading the detached document: {e}"))),
                    };
                    check.update(&buffer[..n]);
                    input.update(&buffer[..n]);
                }
            }
            _ => return Err(XadesError::Xml(format!("unsupported reference {uri:?} (transforms {transforms:?})"))),
        }
        if check.finish().as_ref() != expected.as_slice() {
            return Err(XadesError::Xml(format!("the data of reference {uri:?} does not match its digest")));
        }
    }
    // 2. The signature's own elements.
    input.update(&c14n_subtree(&doc, signed_info)?);
    input.update(&c14n_subtree(&doc, signature_value)?);
    if let Some(key_info) = key_info {
        input.update(&c14n_subtree(&doc, key_info)?);
    }
    // 3. The unsigned signature properties before the new one, in order.
    for property in &properties {
        input.update(&c14n_subtree(&doc, *property)?);
    }
    // 4. The other ds:Object elements.
    for object in objects.iter().filter(|o| !is_qualifying(**o)) {
        input.update(&c14n_subtree(&doc, *object)?);
    }

    // The new element goes before the end tag `</xades:UnsignedSignatureProperties>`.
    let range = doc.node_range(unsigned).ok_or_else(|| bad("no source position"))?;
    let end_tag = text[range.clone()].rfind('<').ok_or_else(|| bad("no end tag"))?;
    let mut n = properties.iter().filter(|p| is(&doc, **p, XADES141, "ArchiveTimeStamp")).count();
    let id = loop {
        let id = format!("{sig_id}-ats{n}");
        if !text.contains(&format!("\"{id}\"")) {
            break id;
        }
        n += 1;
    };
    let mut declarations = String::new();
    for (prefix, uri) in [("ds", DS), ("xades", XADES)] {
        if in_scope(&doc, unsigned, prefix).as_deref() != Some(uri) {
            declarations.push_str(&format!(r#" xmlns:{prefix}="{uri}""#));
        }
    }
    Ok(ArchivePrepared { document: signed_xml.to_vec(), at: bom + range.start + end_tag, id, declarations, hash, imprint: input.finish() })
}

impl ArchivePrepared {
    /// The message imprint to request the archive time-stamp for.
    pub fn imprint(&self) -> &[u8] {
        &self.imprint
    }

    /// The imprint's hash algorithm.
    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }

    /// The `Id` the `xadesv141:ArchiveTimeStamp` gets.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The document with the `xadesv141:ArchiveTimeStamp` holding `token` (an RFC 3161
    /// TimeStampToken, whose message imprint must be this one) at the end of the unsigned
    /// signature properties; everything else stays byte for byte.
    pub fn finish(self, token: &[u8]) -> Result<Vec<u8>, XadesError> {
        match token_imprint(token) {
            Some((algorithm, imprint)) if algorithm == self.hash && imprint == self.imprint.as_slice() => {}
            Some(_) => return Err(XadesError::Xml("the time-stamp token is for another message imprint".into())),
            None => return Err(XadesError::Xml("the time-stamp token cannot be read".into())),
        }
        let element = format!(
            concat!(
                r#"<xades141:ArchiveTimeStamp xmlns:xades141="{xades141}"{declarations} Id="{id}">"#,
                r#"<ds:CanonicalizationMethod Algorithm="{c14n}"/>"#,
                "<xades:EncapsulatedTimeStamp>{token}</xades:EncapsulatedTimeStamp></xades141:ArchiveTimeStamp>"
            ),
            xades141 = XADES141,
            declarations = self.declarations,
            id = self.id,
            c14n = EXC_C14N,
            token = b64::encode(token),
        );
        let mut out = Vec::with_capacity(self.document.len() + element.len());
        out.extend_from_slice(&self.document[..self.at]);
        out.extend_from_slice(element.as_bytes());
        out.extend_from_slice(&self.document[self.at..]);
        Ok(out)
    }
}

/// The streamed archive time-stamp input: its hash.
struct ArchiveInput(aws_lc_rs::digest::Context);

impl ArchiveInput {
    fn new(hash: HashAlgorithm) -> Self {
        ArchiveInput(aws_lc_rs::digest::Context::new(crate::aws_lc_algorithm(hash)))
    }

    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(self) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}

/// The hash of a DigestMethod URI this module writes.
fn digest_algorithm(uri: &str) -> Option<HashAlgorithm> {
    HashAlgorithm::ALL.into_iter().find(|h| digest_method(*h) == uri)
}

/// Whether `node` is the element `{ns}local`.
fn is(doc: &uppsala::Document<'_>, node: uppsala::NodeId, ns: &str, local: &str) -> bool {
    doc.element(node).is_some_and(|e| e.matches_name_ns(ns, local))
}

/// The one element whose `Id` is `id`.
fn by_id(doc: &uppsala::Document<'_>, id: &str) -> Result<uppsala::NodeId, XadesError> {
    let mut found = doc.descendants(doc.root()).into_iter().filter(|n| doc.element(*n).and_then(|e| e.get_attribute("Id")) == Some(id));
    match (found.next(), found.next()) {
        (Some(node), None) => Ok(node),
        (None, _) => Err(XadesError::Xml(format!("no element with Id {id:?}"))),
        _ => Err(XadesError::Xml(format!("more than one element with Id {id:?}"))),
    }
}

/// Exclusive C14N 1.0 without comments of the subtree at `element`, as XMLDSig canonicalizes
/// it in place (see [`subtree_in_context`]).
fn c14n_subtree(doc: &uppsala::Document<'_>, element: uppsala::NodeId) -> Result<Vec<u8>, XadesError> {
    let fragment =
        subtree_in_context(doc, element, C14nMode::Exclusive).ok_or_else(|| XadesError::Xml("no source for the element".into()))?;
    let normalized = normalize_attribute_whitespace(&fragment);
    c14n_doc(&parse(normalized.as_deref().unwrap_or(&fragment), false)?)
}

/// The message imprint of an RFC 3161 TimeStampToken: its hash algorithm and the hashed
/// message (ContentInfo → SignedData → encapContentInfo → TSTInfo → messageImprint).
fn token_imprint(token: &[u8]) -> Option<(HashAlgorithm, &[u8])> {
    use cloudsign_asn1::der::Reader;
    let mut ci = Reader::new(Reader::new(token).expect(0x30)?);
    ci.expect(0x06)?;
    let mut sd = Reader::new(Reader::new(ci.expect(0xA0)?).expect(0x30)?);
    sd.expect(0x02)?;
    sd.expect(0x31)?;
    let mut encap = Reader::new(sd.expect(0x30)?);
    encap.expect(0x06)?;
    let tst_info = Reader::new(encap.expect(0xA0)?).expect(0x04)?;
    let mut tst = Reader::new(Reader::new(tst_info).expect(0x30)?);
    tst.expect(0x02)?;
    tst.expect(0x06)?;
    let mut imprint = Reader::new(tst.expect(0x30)?);
    let mut algorithm = Reader::new(imprint.expect(0x30)?);
    let oid = algorithm.expect(0x06)?;
    let hash = HashAlgorithm::ALL.into_iter().find(|h| der::oid(h.oid())[2..] == *oid)?;
    Some((hash, imprint.expect(0x04)?))
}

/// XMLDSig SignatureMethod URIs: RFC 6931 §2.3.2 (RSA), §2.3.6 (ECDSA), §2.3.10 (RSASSA-PSS
/// with MGF1 of the same hash and a salt as long as the hash, i.e. the CSC/aws-lc defaults).
fn signature_method(scheme: SignAlgorithm) -> &'static str {
    use HashAlgorithm::*;
    match scheme {
        SignAlgorithm::Ecdsa(Sha256) => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        SignAlgorithm::Ecdsa(Sha384) => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        SignAlgorithm::Ecdsa(Sha512) => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        SignAlgorithm::RsaPkcs1(Sha256) => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        SignAlgorithm::RsaPkcs1(Sha384) => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        SignAlgorithm::RsaPkcs1(Sha512) => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        SignAlgorithm::RsaPss(Sha256) => "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
        SignAlgorithm::RsaPss(Sha384) => "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1",
        SignAlgorithm::RsaPss(Sha512) => "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1",
    }
}

/// XMLDSig DigestMethod URIs (XML Encryption §5.7.2, RFC 6931 §2.1.3).
fn digest_method(hash: HashAlgorithm) -> &'static str {
    match hash {
        HashAlgorithm::Sha256 => "http://www.w3.org/2001/04/xmlenc#sha256",
        HashAlgorithm::Sha384 => "http://www.w3.org/2001/04/xmldsig-more#sha384",
        HashAlgorithm::Sha512 => "http://www.w3.org/2001/04/xmlenc#sha512",
    }
}

/// A fresh `Id` prefix (an NCName) that does not occur in the document.
fn fresh_id(document: &[u8]) -> String {
    loop {
        let mut r = [0u8; 8];
        // With no randomness the id is still unique enough for one document; check below.
        let _ = aws_lc_rs::rand::fill(&mut r);
        let id = format!("xades-{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>());
        if !document.windows(id.len()).any(|w| w == id.as_bytes()) {
            return id;
        }
    }
}

/// The ECDSA coordinate width of the certificate's key: its public point is `04 ‖ X ‖ Y`.
fn ec_width(certificate: &[u8]) -> Option<usize> {
    let key = cloudsign_pki::subject_public_key(certificate)?;
    (key.first() == Some(&0x04) && key.len() % 2 == 1).then(|| (key.len() - 1) / 2)
}

/// The document as UTF-8 text, without a byte order mark, and the mark's length.
fn utf8(doc: &[u8]) -> Result<(&str, usize), XadesError> {
    let bom = if doc.starts_with(&[0xEF, 0xBB, 0xBF]) { 3 } else { 0 };
    let text = std::str::from_utf8(&doc[bom..]).map_err(|_| XadesError::Xml("the document is not UTF-8".into()))?;
    Ok((text, bom))
}

/// Parse with uppsala's limits on depth and entity expansion; a DTD only where allowed.
fn parse(text: &str, allow_dtd: bool) -> Result<uppsala::Document<'_>, XadesError> {
    uppsala::Parser::new().with_forbid_dtd(!allow_dtd).parse(text).map_err(|e| XadesError::Xml(e.to_string()))
}

/// Refuse what uppsala 0.12 would canonicalize differently from libxml2 and other XML 1.0
/// parsers: entities whose replacement text holds markup (it expands them as text), external
/// and parameter entities, and attribute-list declarations (defaulted attributes).
fn check_doctype(prolog: &str) -> Result<(), XadesError> {
    let Some(start) = prolog.find("<!DOCTYPE") else { return Ok(()) };
    let doctype = &prolog[start..];
    let refuse = |why: &str| Err(XadesError::Xml(format!("unsupported DOCTYPE: {why}")));
    if doctype.contains("<!ATTLIST") {
        return refuse("attribute-list declarations");
    }
    let mut rest = doctype;
    while let Some(at) = rest.find("<!ENTITY") {
        rest = rest[at + 8..].trim_start();
        if rest.starts_with('%') {
            return refuse("parameter entities");
        }
        let name_end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
        rest = rest[name_end..].trim_start();
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else { return refuse("external entities") };
        let Some(end) = rest[1..].find(quote) else { return refuse("unterminated entity") };
        let literal = &rest[1..1 + end];
        if literal.contains('<') || literal.contains("&#") {
            return refuse("entities with markup or character references");
        }
        rest = &rest[1 + end..];
    }
    Ok(())
}

/// Exclusive C14N 1.0 without comments of the caller's document (`parsed` from `text`), as a
/// verifier sees it once the enveloped signature is taken out.
fn canonical_document(text: &str, parsed: &uppsala::Document<'_>) -> Result<Vec<u8>, XadesError> {
    match normalize_attribute_whitespace(text) {
        Some(normalized) => c14n_doc(&parse(&normalized, true)?),
        None => c14n_doc(parsed),
    }
}

/// Exclusive C14N 1.0 without comments of a whole parsed document.
fn c14n_doc(doc: &uppsala::Document<'_>) -> Result<Vec<u8>, XadesError> {
    cloudsign_xml::canonicalize(doc, C14nMode::Exclusive, &[] as &[&str]).map_err(|e| XadesError::Xml(e.to_string()))
}

/// Exclusive C14N of a fragment this module wrote (which, enveloping XML, holds the caller's
/// root element as written: see [`normalize_attribute_whitespace`]).
fn c14n(xml: &str) -> Result<String, XadesError> {
    let normalized = normalize_attribute_whitespace(xml);
    let canonical = c14n_doc(&parse(normalized.as_deref().unwrap_or(xml), false)?)?;
    String::from_utf8(canonical).map_err(|_| XadesError::Xml("canonical form is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bergshamra_xml::NodeSet;
    use cloudsign_asn1::KeyAlgorithm;
    use cloudsign_keys::software::SoftwareKeystore;
    use cloudsign_keys::{KeyBackend, SigningKey};
    use cloudsign_pki::{CaNames, IssuingCa};
    use std::sync::Arc;

    const T: i64 = 1_750_000_000;

    /// A root and issuing CA from the project's PKI, a TSA, and signers.
    struct Pki {
        keystore: SoftwareKeystore,
        names: CaNames,
        ca: IssuingCa,
        tsa: cloudsign_pki::tsa::Tsa,
    }

    impl Pki {
        fn new() -> Pki {
            let keystore = SoftwareKeystore::new(&[7u8; 32]).unwrap();
            let names = CaNames { organization: "XAdES test".into(), country: Some("SE".into()) };
            let (root, issuing) = cloudsign_pki::create_hierarchy(&keystore, &names).unwrap();
            let key = keystore.load(cloudsign_pki::CA_KEY, &issuing.key_handle, &cloudsign_pki::ca_key_binding("issuing")).unwrap();
            let ca = IssuingCa::new(&names, key, &issuing.cert, root.cert.der.clone(), None);
            let tsa_key = keystore.generate(KeyAlgorithm::EcdsaP256, "tsa").unwrap().key;
            let tsa_cert = ca.issue_tsa_cert(&names, tsa_key.as_ref(), 30).unwrap();
            let tsa = cloudsign_pki::tsa::Tsa::new(tsa_key, tsa_cert.der, ca.issuing_der.clone(), "1.2.3.4.1").unwrap();
            Pki { keystore, names, ca, tsa }
        }

        fn signer(&self, algorithm: KeyAlgorithm) -> (Arc<dyn SigningKey>, Vec<u8>) {
            let key = self.keystore.generate(algorithm, "signer").unwrap().key;
            let cert = self.ca.issue_signing_cert(&self.names, "Alice Signer", key.as_ref(), 30).unwrap();
            (key, cert.der)
        }

        fn token(&self, (hash, imprint): (HashAlgorithm, Vec<u8>)) -> Vec<u8> {
            let req = cloudsign_pki::tsa::Request { hash, digest: imprint, nonce: None, cert_req: true };
            self.tsa.token(&req, T as i128 * 1000).unwrap()
        }
    }

    /// Sign `input` end to end; with a time-stamp (B-T) and validation data (B-LT) on request.
    fn sign(pki: &Pki, key: &dyn SigningKey, cert: &[u8], scheme: SignAlgorithm, input: Input<'_>, level: u8) -> Vec<u8> {
        let chain = [pki.ca.issuing_der.clone()];
        let p = Params { scheme, certificate: cert, chain: &chain, signing_time: T };
        let prepared = prepare(input, &p).unwrap();
        let signature = key.sign_digest(scheme, &prepared.to_be_signed).unwrap();
        let token = (level >= 1).then(|| pki.token(prepared.timestamp_imprint(&signature).unwrap()));
        let validation = ValidationData {
            certificates: vec![pki.ca.root_der.clone(), pki.tsa.certificate().to_vec()],
            crls: vec![pki.ca.crl(&[], T, 86_400, 1).unwrap()],
            ocsp: vec![],
        };
        prepared.finish(&signature, token.as_deref(), (level >= 2).then_some(&validation)).unwrap()
    }

    fn ds_child<'d>(doc: &uppsala::Document<'d>, parent: uppsala::NodeId, name: &str) -> Option<uppsala::NodeId> {
        doc.first_child_element_by_name_ns(parent, DS, name)
    }

    fn by_id(doc: &uppsala::Document<'_>, id: &str) -> uppsala::NodeId {
        let all = doc.descendants(doc.root());
        let found: Vec<_> = all.into_iter().filter(|n| doc.element(*n).and_then(|e| e.get_attribute("Id")) == Some(id)).collect();
        assert_eq!(found.len(), 1, "exactly one element with Id {id}");
        found[0]
    }

    fn c14n_set(doc: &uppsala::Document<'_>, set: &NodeSet) -> Vec<u8> {
        bergshamra_c14n::canonicalize_doc(doc, bergshamra_c14n::C14nMode::Exclusive, Some(set), &[] as &[&str]).unwrap()
    }

    /// A small XMLDSig core verifier, independent of how the signature was built: it
    /// canonicalizes `SignedInfo` and each reference in the final document, checks digests
    /// and the signature value against the certificate in `KeyInfo`. `detached` resolves a
    /// reference to another document. Returns the reference URIs.
    fn verify(xml: &[u8], detached: Option<&[u8]>) -> Result<Vec<String>, String> {
        let (text, _) = utf8(xml).unwrap();
        // uppsala keeps literal whitespace in attribute values (see normalize_attribute_whitespace).
        let normalized = normalize_attribute_whitespace(text);
        let doc = uppsala::parse(normalized.as_deref().unwrap_or(text)).map_err(|e| e.to_string())?;
        let sig = doc.get_elements_by_tag_name_ns(DS, "Signature").first().copied().ok_or("no Signature")?;
        let signed_info = ds_child(&doc, sig, "SignedInfo").ok_or("no SignedInfo")?;
        let method =
            doc.element(ds_child(&doc, signed_info, "SignatureMethod").unwrap()).unwrap().get_attribute("Algorithm").unwrap().to_string();
        let hash = |data: &[u8]| match method.as_str() {
            m if m.ends_with("256") || m.ends_with("sha256-rsa-MGF1") => digest(HashAlgorithm::Sha256, data),
            m if m.ends_with("384") || m.ends_with("sha384-rsa-MGF1") => digest(HashAlgorithm::Sha384, data),
            _ => digest(HashAlgorithm::Sha512, data),
        };
        let mut uris = Vec::new();
        for reference in doc.child_elements_by_name_ns(signed_info, DS, "Reference") {
            let uri = doc.element(reference).unwrap().get_attribute("URI").unwrap().to_string();
            let transforms: Vec<String> = ds_child(&doc, reference, "Transforms")
                .map(|t| {
                    doc.child_elements_by_name_ns(t, DS, "Transform")
                        .iter()
                        .map(|n| doc.get_attribute(*n, "Algorithm").unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let data = if uri.is_empty() {
                assert_eq!(transforms, [ENVELOPED, EXC_C14N]);
                let set = NodeSet::all_without_comments(&doc).subtract(&NodeSet::tree_with_comments(sig, &doc));
                c14n_set(&doc, &set)
            } else if let Some(id) = uri.strip_prefix('#') {
                let target = by_id(&doc, id);
                if transforms == [BASE64] {
                    b64::decode_lenient(&doc.text_content_deep(target)).ok_or("bad base64")?
                } else {
                    assert_eq!(transforms, [EXC_C14N]);
                    c14n_set(&doc, &NodeSet::tree_without_comments(target, &doc))
                }
            } else {
                assert!(transforms.is_empty());
                detached.ok_or("detached data missing")?.to_vec()
            };
            let value = doc.element_text(ds_child(&doc, reference, "DigestValue").unwrap()).unwrap_or_default();
            if b64::encode(&hash(&data)) != value {
                return Err(format!("digest mismatch for reference {uri:?}"));
            }
            uris.push(uri);
        }
        let x509 = doc.get_elements_by_tag_name_ns(DS, "X509Certificate");
        let cert = b64::decode_lenient(doc.element_text(x509[0]).unwrap()).unwrap();
        let public = cloudsign_pki::subject_public_key(&cert).unwrap();
        let value = b64::decode_lenient(doc.element_text(ds_child(&doc, sig, "SignatureValue").unwrap()).unwrap()).unwrap();
        let signed = c14n_set(&doc, &NodeSet::tree_without_comments(signed_info, &doc));
        use aws_lc_rs::signature as s;
        let alg: &dyn s::VerificationAlgorithm = match method.rsplit('#').next().unwrap() {
            "ecdsa-sha256" => &s::ECDSA_P256_SHA256_FIXED,
            "ecdsa-sha384" => &s::ECDSA_P384_SHA384_FIXED,
            "rsa-sha256" => &s::RSA_PKCS1_2048_8192_SHA256,
            "sha256-rsa-MGF1" => &s::RSA_PSS_2048_8192_SHA256,
            other => return Err(format!("unexpected method {other}")),
        };
        s::UnparsedPublicKey::new(alg, &public).verify(&signed, &value).map_err(|_| "bad signature value".to_string())?;
        Ok(uris)
    }

    const DOC: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- lead -->\n<inv:Invoice xmlns:inv=\"urn:x-inv\" xmlns:unused=\"urn:x-unused\" xmlns=\"urn:x-default\" b='2' a=\"1\">\r\n  <Line  no=\"1\" xml:lang=\"sv\">Bröd &amp; smör <![CDATA[<raw> & ]]>&#x41;</Line><!-- c -->\n  <?pi data?>\n  <empty/>\n</inv:Invoice>\n<!-- trail -->\n";

    /// Documents whose canonical form is easy to get wrong; each is signed enveloped and
    /// verified here and, through `write_samples`, by xmlsec1 and signxml.
    const TRICKY: &[&str] = &[
        "<a:r xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" xmlns=\"urn:d\"><c xmlns=\"\" b:z=\"1\" a:y=\"2\" x=\"3\"><b:e xmlns:b=\"urn:b2\"/></c><d xml:space=\"preserve\" xml:base=\"http://x/\">  </d></a:r>",
        "<?xml version=\"1.0\"?>\r\n<!DOCTYPE r [\r\n<!ENTITY ent \"a &amp;amp; b\">\r\n<!ENTITY el \"plain\">\r\n]>\r\n<r>\r\n\t<t v=\"&ent;\">&ent;&el;</t>\r\n</r>\r\n",
        "<r a=\"tab\there&#9;nl&#10;cr&#13;lt&lt;gt>quot&quot;apos'\">text\rwith&#13;cr &gt; ]]&gt; &#x10000; é</r>",
        "<?pi before?>\n<!-- c0 -->\n<p:r xmlns:p=\"urn:p\"><!-- inner --><p:x><![CDATA[]]></p:x><![CDATA[a]]b]]></p:r>\n\n<?pi after?>",
        "<r xmlns=\"urn:only-default\"\n   attr = 'single \"quoted\"'/>",
    ];

    #[test]
    fn ecdsa_der_becomes_fixed_width() {
        let der = [0x30, 0x08, 0x02, 0x02, 0x00, 0x80, 0x02, 0x02, 0x01, 0x02];
        let raw = ecdsa_der_to_raw(&der, 32).unwrap();
        assert_eq!(raw.len(), 64);
        assert_eq!(raw[31], 0x80);
        assert_eq!(&raw[62..], &[0x01, 0x02]);
        assert!(ecdsa_der_to_raw(&[0x30, 0x03, 0x02, 0x01, 0x01], 32).is_none());
    }

    #[test]
    fn exclusive_c14n_matches_xmllint() {
        // Expected output from `xmllint --exc-c14n` (libxml2 2.9.14) with the comments
        // removed, as XMLDSig's URI="" does.
        let canonical = canonical_document(DOC, &parse(DOC, true).unwrap()).unwrap();
        let expected = "<inv:Invoice xmlns:inv=\"urn:x-inv\" a=\"1\" b=\"2\">\n  <Line xmlns=\"urn:x-default\" no=\"1\" xml:lang=\"sv\">Bröd &amp; smör &lt;raw&gt; &amp; A</Line>\n  <?pi data?>\n  <empty xmlns=\"urn:x-default\"></empty>\n</inv:Invoice>";
        assert_eq!(String::from_utf8(canonical).unwrap(), expected);
    }

    #[test]
    fn enveloped_ecdsa_and_rsa_verify() {
        let pki = Pki::new();
        for (alg, scheme) in [
            (KeyAlgorithm::EcdsaP256, SignAlgorithm::Ecdsa(HashAlgorithm::Sha256)),
            (KeyAlgorithm::Rsa2048, SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256)),
            (KeyAlgorithm::Rsa2048, SignAlgorithm::RsaPss(HashAlgorithm::Sha256)),
        ] {
            let (key, cert) = pki.signer(alg);
            let out = sign(&pki, key.as_ref(), &cert, scheme, Input::Enveloped(DOC.as_bytes()), 0);
            assert_eq!(verify(&out, None).unwrap().len(), 2);
            // The caller's bytes are untouched around the inserted signature.
            let text = std::str::from_utf8(&out).unwrap();
            let at = text.find("<ds:Signature ").unwrap();
            assert_eq!(&text[..at], &DOC[..DOC.find("</inv:Invoice>").unwrap()]);
            assert!(text.ends_with("</ds:Signature></inv:Invoice>\n<!-- trail -->\n"));
            // Tampering with the document breaks the first reference.
            let tampered = text.replace("Bröd", "Bread");
            assert!(verify(tampered.as_bytes(), None).unwrap_err().contains("digest mismatch"));
        }
    }

    #[test]
    fn tricky_documents_verify() {
        let pki = Pki::new();
        let (key, cert) = pki.signer(KeyAlgorithm::EcdsaP256);
        for doc in TRICKY {
            let out = sign(&pki, key.as_ref(), &cert, SignAlgorithm::Ecdsa(HashAlgorithm::Sha256), Input::Enveloped(doc.as_bytes()), 0);
            verify(&out, None).unwrap_or_else(|e| panic!("{e}: {doc}"));
        }
    }

    #[test]
    fn enveloped_self_closing_root_bom_and_doctype() {
        let pki = Pki::new();
        let (key, cert) = pki.signer(KeyAlgorithm::EcdsaP256);
        let scheme = SignAlgorithm::Ecdsa(HashAlgorithm::Sha256);
        let doc = "\u{feff}<!DOCTYPE r [<!ENTITY e \"entity text\">]><r x=\"&e;\"/>";
        let out = sign(&pki, key.as_ref(), &cert, scheme, Input::Enveloped(doc.as_bytes()), 0);
        assert!(out.starts_with("\u{feff}<!DOCTYPE r [<!ENTITY e \"entity text\">]><r x=\"&e;\"><ds:Signature ".as_bytes()));
        assert!(out.ends_with(b"</ds:Signature></r>"));
        verify(&out, None).unwrap();
    }

    #[test]
    fn enveloping_and_detached_verify() {
        let pki = Pki::new();
        let (key, cert) = pki.signer(KeyAlgorithm::EcdsaP256);
        let scheme = SignAlgorithm::Ecdsa(HashAlgorithm::Sha256);
        let out = sign(&pki, key.as_ref(), &cert, scheme, Input::EnvelopingXml(DOC.as_bytes()), 0);
        assert_eq!(verify(&out, None).unwrap()[0], format!("#{}", by_id_prefix(&out, "-obj")));
        let out = sign(
            &pki,
            key.as_ref(),
            &cert,
            scheme,
            Input::Enveloping { data: b"\x00binary\xff", mime_type: Some("application/x-test") },
            0,
        );
        verify(&out, None).unwrap();
        assert!(std::str::from_utf8(&out).unwrap().contains("<xades:MimeType>application/x-test</xades:MimeType>"));
        let data = b"%PDF-1.7 some document";
        let d = digest(HashAlgorithm::Sha256, data);
        let uri = file_name_uri("my file.pdf");
        assert_eq!(uri, "my%20file.pdf");
        let input = Input::Detached { digest: &d, uri: &uri, mime_type: Some("application/pdf") };
        let out = sign(&pki, key.as_ref(), &cert, scheme, input, 0);
        assert_eq!(verify(&out, Some(data)).unwrap()[0], "my%20file.pdf");
        assert!(verify(&out, Some(b"other")).is_err());
        // A DOCTYPE cannot move into a ds:Object.
        assert!(matches!(prepare(Input::EnvelopingXml(b"<!DOCTYPE r><r/>"), &params(scheme, &cert)), Err(XadesError::Xml(_))));
        assert!(matches!(prepare(Input::Enveloped(b"<r>"), &params(scheme, &cert)), Err(XadesError::Xml(_))));
        // DTD features uppsala would canonicalize unlike libxml2 are refused.
        for dtd in ["<!ENTITY e \"<i/>\">", "<!ENTITY e SYSTEM \"x\">", "<!ENTITY % p \"\">", "<!ATTLIST r a CDATA \"d\">"] {
            let doc = format!("<!DOCTYPE r [{dtd}]><r/>");
            assert!(matches!(prepare(Input::Enveloped(doc.as_bytes()), &params(scheme, &cert)), Err(XadesError::Xml(_))), "{dtd}");
        }
    }

    fn params<'a>(scheme: SignAlgorithm, cert: &'a [u8]) -> Params<'a> {
        Params { scheme, certificate: cert, chain: &[], signing_time: T }
    }

    fn by_id_prefix(xml: &[u8], suffix: &str) -> String {
        let text = std::str::from_utf8(xml).unwrap();
        let doc = uppsala::parse(text).unwrap();
        let sig = doc.get_elements_by_tag_name_ns(DS, "Signature")[0];
        format!("{}{suffix}", doc.get_attribute(sig, "Id").unwrap())
    }

    /// The DTBS a hashing signer gets is the canonical `ds:SignedInfo` a verifier computes in
    /// the final document, and hashes to `to_be_signed`.
    #[test]
    fn data_to_be_signed_is_the_canonical_signed_info() {
        let pki = Pki::new();
        let (key, cert) = pki.signer(KeyAlgorithm::EcdsaP256);
        let scheme = SignAlgorithm::Ecdsa(HashAlgorithm::Sha256);
        let chain = [pki.ca.issuing_der.clone()];
        let p = Params { scheme, certificate: &cert, chain: &chain, signing_time: T };
        let prepared = prepare(Input::Enveloped(DOC.as_bytes()), &p).unwrap();
        let dtbs = prepared.data_to_be_signed().to_vec();
        assert_eq!(digest(HashAlgorithm::Sha256, &dtbs), prepared.to_be_signed);
        let signature = key.sign_digest(scheme, &prepared.to_be_signed).unwrap();
        let out = prepared.finish(&signature, None, None).unwrap();
        let doc = uppsala::parse(std::str::from_utf8(&out).unwrap()).unwrap();
        let signed_info = doc.get_elements_by_tag_name_ns(DS, "SignedInfo")[0];
        assert_eq!(c14n_set(&doc, &NodeSet::tree_without_comments(signed_info, &doc)), dtbs);
    }

    #[test]
    fn signed_properties_and_b_lt_values() {
        let pki = Pki::new();
        let (key, cert) = pki.signer(KeyAlgorithm::EcdsaP256);
        let scheme = SignAlgorithm::Ecdsa(HashAlgorithm::Sha256);
        let out = sign(&pki, key.as_ref(), &cert, scheme, Input::Enveloped(DOC.as_bytes()), 2);
        verify(&out, None).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        let doc = uppsala::parse(text).unwrap();
        let x = |name: &str| doc.get_elements_by_tag_name_ns(XADES, name);
        assert_eq!(doc.element_text(x("SigningTime")[0]), Some("2025-06-15T15:06:40Z"));
        let (issuer, serial) = cloudsign_asn1::cert::issuer_and_serial(&cert).unwrap();
        let issuer_serial = der::seq(&[&der::seq(&[&der::explicit(4, &issuer)]), &serial]);
        assert_eq!(doc.element_text(x("IssuerSerialV2")[0]), Some(b64::encode(&issuer_serial).as_str()));
        let cert_digest = doc.first_child_element_by_name_ns(x("CertDigest")[0], DS, "DigestValue").unwrap();
        assert_eq!(doc.element_text(cert_digest), Some(b64::encode(&digest(HashAlgorithm::Sha256, &cert)).as_str()));
        // The time-stamp token's imprint is the hash of the canonical ds:SignatureValue as it
        // stands in the document.
        let sv = doc.get_elements_by_tag_name_ns(DS, "SignatureValue")[0];
        let imprint = digest(HashAlgorithm::Sha256, &c14n_set(&doc, &NodeSet::tree_without_comments(sv, &doc)));
        let token = b64::decode_lenient(doc.element_text(x("EncapsulatedTimeStamp")[0]).unwrap()).unwrap();
        assert!(token.windows(imprint.len()).any(|w| w == imprint), "token over the SignatureValue");
        assert_eq!(x("EncapsulatedX509Certificate").len(), 2);
        assert_eq!(x("EncapsulatedCRLValue").len(), 1);
        assert!(x("OCSPValues").is_empty());
        // Unsigned properties come after SignedProperties, in EN 319 132-1 order.
        let order: Vec<usize> = ["SignedProperties", "SignatureTimeStamp", "CertificateValues", "RevocationValues"]
            .iter()
            .map(|n| text.find(&format!("<xades:{n}")).unwrap())
            .collect();
        assert!(order.is_sorted());
    }

    /// Extend a B-LT (or B-LTA) document with an archive time-stamp from the test TSA.
    fn archive(pki: &Pki, xml: &[u8], detached: Option<&[u8]>, hash: HashAlgorithm) -> Result<Vec<u8>, XadesError> {
        let mut reader = detached;
        let prepared = archive_imprint(xml, reader.as_mut().map(|r| r as &mut dyn std::io::Read), hash)?;
        let token = pki.token((prepared.hash(), prepared.imprint().to_vec()));
        prepared.finish(&token)
    }

    /// The archive time-stamp input of EN 319 132-1 §5.5.2.2 recomputed over the final document
    /// with node sets, as XMLDSig canonicalizes in place (not from standalone fragments as
    /// `archive_imprint` does), for the `n`-th ArchiveTimeStamp; with its token's imprint.
    fn recompute_archive_input(xml: &[u8], detached: Option<&[u8]>, n: usize) -> (Vec<u8>, Vec<u8>) {
        let text = std::str::from_utf8(xml).unwrap();
        let normalized = normalize_attribute_whitespace(text);
        let doc = uppsala::parse(normalized.as_deref().unwrap_or(text)).unwrap();
        let sig = doc.get_elements_by_tag_name_ns(DS, "Signature")[0];
        let tree = |node| c14n_set(&doc, &NodeSet::tree_without_comments(node, &doc));
        let mut input = Vec::new();
        let signed_info = ds_child(&doc, sig, "SignedInfo").unwrap();
        for reference in doc.child_elements_by_name_ns(signed_info, DS, "Reference") {
            let uri = doc.get_attribute(reference, "URI").unwrap();
            let transforms =
                ds_child(&doc, reference, "Transforms").map(|t| doc.child_elements_by_name_ns(t, DS, "Transform").len()).unwrap_or(0);
            if uri.is_empty() {
                let set = NodeSet::all_without_comments(&doc).subtract(&NodeSet::tree_with_comments(sig, &doc));
                input.extend(c14n_set(&doc, &set));
            } else if let Some(id) = uri.strip_prefix('#') {
                let target = by_id(&doc, id);
                if doc.get_attribute(target, "Encoding") == Some(BASE64) {
                    input.extend(b64::decode_lenient(&doc.text_content_deep(target)).unwrap());
                } else {
                    input.extend(tree(target));
                }
            } else {
                assert_eq!(transforms, 0);
                input.extend(detached.unwrap());
            }
        }
        input.extend(tree(signed_info));
        input.extend(tree(ds_child(&doc, sig, "SignatureValue").unwrap()));
        input.extend(tree(ds_child(&doc, sig, "KeyInfo").unwrap()));
        let unsigned = doc.get_elements_by_tag_name_ns(XADES, "UnsignedSignatureProperties")[0];
        let ats = doc.get_elements_by_tag_name_ns(XADES141, "ArchiveTimeStamp");
        for property in doc.children(unsigned).into_iter().filter(|p| doc.element(*p).is_some()) {
            if property == ats[n] {
                break;
            }
            input.extend(tree(property));
        }
        for object in doc.child_elements_by_name_ns(sig, DS, "Object") {
            if doc.first_child_element_by_name_ns(object, XADES, "QualifyingProperties").is_none() {
                input.extend(tree(object));
            }
        }
        let token = b64::decode_lenient(
            &doc.text_content_deep(doc.first_child_element_by_name_ns(ats[n], XADES, "EncapsulatedTimeStamp").unwrap()),
        )
        .unwrap();
        (input, token_imprint(&token).unwrap().1.to_vec())
    }

    #[test]
    fn b_lta_in_every_packaging() {
        let pki = Pki::new();
        let (key, cert) = pki.signer(KeyAlgorithm::EcdsaP256);
        let scheme = SignAlgorithm::Ecdsa(HashAlgorithm::Sha256);
        let data = b"%PDF-1.7 detached\n";
        let d = digest(HashAlgorithm::Sha256, data);
        let cases: Vec<(Input<'_>, Option<&[u8]>)> = vec![
            (Input::Enveloped(DOC.as_bytes()), None),
            (Input::Enveloped(TRICKY[1].as_bytes()), None),
            (Input::Enveloped(TRICKY[2].as_bytes()), None),
            (Input::EnvelopingXml(DOC.as_bytes()), None),
            (Input::EnvelopingXml(TRICKY[2].as_bytes()), None),
            (Input::Enveloping { data, mime_type: None }, None),
            (Input::Detached { digest: &d, uri: "data.bin", mime_type: None }, Some(data)),
        ];
        for (input, detached) in cases {
            let lt = sign(&pki, key.as_ref(), &cert, scheme, input, 2);
            let lta = archive(&pki, &lt, detached, HashAlgorithm::Sha256).unwrap();
            // Only the new element is added, at the end of the unsigned signature properties.
            let text = std::str::from_utf8(&lta).unwrap();
            let at = text.find("<xades141:ArchiveTimeStamp ").unwrap();
            let end = text.find("</xades:UnsignedSignatureProperties>").unwrap();
            assert_eq!(format!("{}{}", &text[..at], &text[end..]).as_bytes(), lt.as_slice());
            assert!(text[at..end].ends_with("</xades141:ArchiveTimeStamp>"));
            verify(&lta, detached).unwrap();
            let (input, imprint) = recompute_archive_input(&lta, detached, 0);
            assert_eq!(digest(HashAlgorithm::Sha256, &input), imprint, "{text}");
            // A second archive time-stamp (SHA-512) covers the first one.
            let lta2 = archive(&pki, &lta, detached, HashAlgorithm::Sha512).unwrap();
            assert!(std::str::from_utf8(&lta2).unwrap().contains("-ats1\""));
            let (input2, imprint2) = recompute_archive_input(&lta2, detached, 1);
            assert_eq!(digest(HashAlgorithm::Sha512, &input2), imprint2);
            assert!(input2.len() > input.len());
            assert_eq!(recompute_archive_input(&lta2, detached, 0).1, imprint);
            verify(&lta2, detached).unwrap();
        }
    }

    #[test]
    fn b_lta_refusals() {
        let pki = Pki::new();
        let (key, cert) = pki.signer(KeyAlgorithm::EcdsaP256);
        let scheme = SignAlgorithm::Ecdsa(HashAlgorithm::Sha256);
        let h = HashAlgorithm::Sha256;
        // Below B-LT.
        for level in [0, 1] {
            let out = sign(&pki, key.as_ref(), &cert, scheme, Input::Enveloped(DOC.as_bytes()), level);
            assert!(matches!(archive_imprint(&out, None, h), Err(XadesError::Xml(e)) if e.contains("B-LT")));
        }
        // A changed document, a missing or different detached file.
        let lt = sign(&pki, key.as_ref(), &cert, scheme, Input::Enveloped(DOC.as_bytes()), 2);
        let tampered = std::str::from_utf8(&lt).unwrap().replace("Bröd", "Bread");
        assert!(matches!(archive_imprint(tampered.as_bytes(), None, h), Err(XadesError::Xml(e)) if e.contains("does not match")));
        let data = b"detached";
        let d = digest(h, data);
        let lt = sign(&pki, key.as_ref(), &cert, scheme, Input::Detached { digest: &d, uri: "d.bin", mime_type: None }, 2);
        assert!(archive_imprint(&lt, None, h).is_err());
        assert!(archive(&pki, &lt, Some(b"other"), h).is_err());
        // A token over another imprint, or not a token.
        let prepared = archive_imprint(&lt, Some(&mut &data[..]), h).unwrap();
        let other = pki.token((h, digest(h, b"else")));
        assert!(archive_imprint(&lt, Some(&mut &data[..]), h).unwrap().finish(&other).is_err());
        let sha512 = pki.token((HashAlgorithm::Sha512, digest(HashAlgorithm::Sha512, b"x")));
        assert!(archive_imprint(&lt, Some(&mut &data[..]), h).unwrap().finish(&sha512).is_err());
        assert!(prepared.finish(b"\x30\x00").is_err());
    }

    /// Writes sample signatures for the external validators (xmlsec1, signxml) into
    /// `$XADES_SAMPLES`: `cargo test -p cloudsign-ades xades::tests::write_samples -- --ignored`.
    #[test]
    #[ignore]
    fn write_samples() {
        let Ok(dir) = std::env::var("XADES_SAMPLES") else { return };
        let dir = std::path::Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        let pki = Pki::new();
        std::fs::write(dir.join("ca.pem"), cloudsign_pki::pem_certificate(&pki.ca.root_der)).unwrap();
        std::fs::write(dir.join("issuing.pem"), cloudsign_pki::pem_certificate(&pki.ca.issuing_der)).unwrap();
        std::fs::write(dir.join("document.xml"), DOC).unwrap();
        let data = b"%PDF-1.7 detached document\n";
        std::fs::write(dir.join("detached data.bin"), data).unwrap();
        for (i, doc) in TRICKY.iter().enumerate() {
            std::fs::write(dir.join(format!("tricky{i}.in")), doc).unwrap();
            std::fs::write(dir.join(format!("tricky{i}.c14n")), canonical_document(doc, &parse(doc, true).unwrap()).unwrap()).unwrap();
            let (key, cert) = pki.signer(KeyAlgorithm::EcdsaP256);
            std::fs::write(dir.join(format!("tricky{i}-signer.pem")), cloudsign_pki::pem_certificate(&cert)).unwrap();
            let scheme = SignAlgorithm::Ecdsa(HashAlgorithm::Sha256);
            let out = sign(&pki, key.as_ref(), &cert, scheme, Input::Enveloped(doc.as_bytes()), 0);
            std::fs::write(dir.join(format!("tricky{i}-enveloped-b.xml")), out).unwrap();
            let out = sign(&pki, key.as_ref(), &cert, scheme, Input::Enveloped(doc.as_bytes()), 2);
            std::fs::write(dir.join(format!("tricky{i}-enveloped-lta.xml")), archive(&pki, &out, None, HashAlgorithm::Sha256).unwrap())
                .unwrap();
            if !doc.contains("<!DOCTYPE") {
                let out = sign(&pki, key.as_ref(), &cert, scheme, Input::EnvelopingXml(doc.as_bytes()), 2);
                let out = archive(&pki, &out, None, HashAlgorithm::Sha256).unwrap();
                std::fs::write(dir.join(format!("tricky{i}-enveloping-xml-lta.xml")), out).unwrap();
            }
        }
        for (name, alg, scheme) in [
            ("ec", KeyAlgorithm::EcdsaP256, SignAlgorithm::Ecdsa(HashAlgorithm::Sha256)),
            ("rsa", KeyAlgorithm::Rsa2048, SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256)),
            ("pss", KeyAlgorithm::Rsa2048, SignAlgorithm::RsaPss(HashAlgorithm::Sha256)),
        ] {
            let (key, cert) = pki.signer(alg);
            std::fs::write(dir.join(format!("{name}-signer.pem")), cloudsign_pki::pem_certificate(&cert)).unwrap();
            let d = digest(scheme.hash(), data);
            let uri = file_name_uri("detached data.bin");
            for (level, suffix) in [(0, "b"), (1, "t"), (2, "lt"), (3, "lta")] {
                let inputs = [
                    ("enveloped", Input::Enveloped(DOC.as_bytes())),
                    ("enveloping-xml", Input::EnvelopingXml(DOC.as_bytes())),
                    ("enveloping-bin", Input::Enveloping { data, mime_type: Some("application/pdf") }),
                    ("detached", Input::Detached { digest: &d, uri: &uri, mime_type: Some("application/pdf") }),
                ];
                for (packaging, input) in inputs {
                    let detached = (packaging == "detached").then_some(&data[..]);
                    let mut out = sign(&pki, key.as_ref(), &cert, scheme, input, level.min(2));
                    if level == 3 {
                        out = archive(&pki, &out, detached, HashAlgorithm::Sha256).unwrap();
                        // A second one, over the first, with another hash.
                        if name == "rsa" {
                            out = archive(&pki, &out, detached, HashAlgorithm::Sha512).unwrap();
                        }
                    }
                    std::fs::write(dir.join(format!("{name}-{packaging}-{suffix}.xml")), out).unwrap();
                }
            }
        }
    }
}
