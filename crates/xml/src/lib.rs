//! XML for XMLDSig, shared by XAdES signing (`cloudsign-ades`) and validation
//! (`cloudsign-validation`, trusted lists included): canonicalization (C14N 1.0, 1.1 and
//! exclusive C14N, by `bergshamra-c14n`) of documents parsed by `uppsala`, and the plumbing
//! XMLDSig needs around it:
//!
//! - [`subtree_in_context`] and [`inherited_context`]: a subtree made a document of its own that
//!   canonicalizes as the subtree does in place (XMLDSig §4.3.3.3: a same-document reference is
//!   canonicalized with the namespaces, and for inclusive C14N the `xml:` attributes, it
//!   inherits);
//! - [`normalize_attribute_whitespace`]: the attribute-value normalization of XML 1.0 §3.3.3
//!   that uppsala 0.12 does not do;
//! - [`escape`] for what is written into XML, and [`in_scope`] for namespace lookups.
//!
//! The parser and the canonicalizer are pinned in the workspace: both sides of a signature must
//! canonicalize alike, so they are upgraded together, here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use bergshamra_c14n::C14nMode;
pub use uppsala::{Document, NodeId};

/// A document that cannot be canonicalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct XmlError(String);

/// The canonical form of the whole of `doc` in `mode`; `inclusive_prefixes` is exclusive C14N's
/// InclusiveNamespaces PrefixList (Exclusive XML Canonicalization §3), ignored by the other
/// modes.
pub fn canonicalize<S: AsRef<str>>(doc: &Document<'_>, mode: C14nMode, inclusive_prefixes: &[S]) -> Result<Vec<u8>, XmlError> {
    bergshamra_c14n::canonicalize_doc(doc, mode, None, inclusive_prefixes).map_err(|e| XmlError(e.to_string()))
}

/// The namespace URI `prefix` ("" for the default namespace) is bound to at `node`.
pub fn in_scope(doc: &Document<'_>, node: NodeId, prefix: &str) -> Option<String> {
    let mut current = Some(node);
    while let Some(n) = current {
        if let Some((_, uri)) = doc.element(n).and_then(|e| e.namespace_declarations.iter().find(|(p, _)| p == prefix)) {
            return (!uri.is_empty()).then(|| uri.to_string());
        }
        current = doc.parent(n);
    }
    None
}

/// The source of the subtree at `element`, made a document of its own that canonicalizes as
/// the subtree does in place: [`inherited_context`] written on its start tag. `None` when the
/// parser kept no source for it.
pub fn subtree_in_context(doc: &Document<'_>, element: NodeId, mode: C14nMode) -> Option<String> {
    let name = doc.element(element)?.name.prefixed_name();
    let source = doc.node_source(element)?;
    let name_end = 1 + name.len();
    (source.get(1..name_end) == Some(name.as_ref()))
        .then(|| format!("{}{}{}", &source[..name_end], inherited_context(doc, element, mode), &source[name_end..]))
}

/// What a subtree takes from its ancestors when XMLDSig canonicalizes it in place, as
/// attributes for its start tag: every namespace binding in scope the element does not declare
/// itself (exclusive C14N outputs only those visibly used, inclusive C14N all of them) and, for
/// the inclusive modes, the `xml:` attributes it inherits (C14N 1.0 §2.4; C14N 1.1 §2.4:
/// `xml:lang` and `xml:space` only, without `xml:base` fix-up).
pub fn inherited_context(doc: &Document<'_>, element: NodeId, mode: C14nMode) -> String {
    let Some(e) = doc.element(element) else { return String::new() };
    let is_xml = |a: &&uppsala::Attribute<'_>| a.name.prefix.as_deref() == Some("xml");
    let mut declared: Vec<&str> = e.namespace_declarations.iter().map(|(p, _)| p.as_ref()).collect();
    let mut xml_attributes: Vec<&str> = e.attributes.iter().filter(is_xml).map(|a| a.name.local_name.as_ref()).collect();
    let mut out = String::new();
    let mut current = doc.parent(element);
    while let Some(n) = current {
        if let Some(ancestor) = doc.element(n) {
            for (prefix, uri) in &ancestor.namespace_declarations {
                if declared.contains(&prefix.as_ref()) {
                    continue;
                }
                declared.push(prefix.as_ref());
                if !uri.is_empty() {
                    let name = if prefix.is_empty() { "xmlns".to_string() } else { format!("xmlns:{prefix}") };
                    out.push_str(&format!(" {name}=\"{}\"", escape(uri)));
                }
            }
            if !mode.is_exclusive() {
                for a in ancestor.attributes.iter().filter(is_xml) {
                    let local = a.name.local_name.as_ref();
                    let wanted = match mode {
                        C14nMode::Inclusive11 | C14nMode::Inclusive11WithComments => local == "lang" || local == "space",
                        _ => true,
                    };
                    if wanted && !xml_attributes.contains(&local) {
                        xml_attributes.push(local);
                        out.push_str(&format!(" xml:{local}=\"{}\"", escape(&a.value)));
                    }
                }
            }
        }
        current = doc.parent(n);
    }
    out
}

/// XML 1.0 §3.3.3: literal tabs and line breaks in attribute values read as spaces (a CR LF
/// pair as one). uppsala 0.12 keeps them, which canonicalizes to `&#x9;` and the like, so the
/// document is canonicalized from a copy with them replaced (character references such as
/// `&#9;` stay as they are). `None` when there is nothing to replace.
pub fn normalize_attribute_whitespace(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    let skip_to = |from: usize, end: &str| text[from..].find(end).map_or(b.len(), |e| from + e + end.len());
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let tail = &text[i..];
        if tail.starts_with("<!--") {
            i = skip_to(i + 4, "-->");
        } else if tail.starts_with("<![CDATA[") {
            i = skip_to(i + 9, "]]>");
        } else if tail.starts_with("<?") {
            i = skip_to(i + 2, "?>");
        } else if tail.starts_with("<!") {
            // DOCTYPE: to the end of the internal subset, if any, then to '>'.
            let close = tail.find('>').unwrap_or(tail.len());
            i = match tail[..close].find('[') {
                Some(_) => skip_to(i, "]"),
                None => i + close,
            };
        } else {
            // A start or end tag: rewrite whitespace inside quoted values.
            let mut quote = None;
            i += 1;
            while i < b.len() {
                let c = b[i];
                match quote {
                    None if c == b'>' => break,
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    Some(q) if c == q => quote = None,
                    Some(_) if matches!(c, b'\t' | b'\n' | b'\r') => {
                        let o = out.get_or_insert_with(|| b.to_vec());
                        if c == b'\r' && b.get(i + 1) == Some(&b'\n') {
                            // CR LF is one line break: the LF becomes the space, the CR goes
                            // (marked with a byte that cannot occur, removed below).
                            o[i] = 0;
                        } else {
                            o[i] = b' ';
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
    }
    out.map(|mut o| {
        o.retain(|c| *c != 0);
        String::from_utf8(o).unwrap_or_default()
    })
}

/// Escaping for text and attribute values we write into XML (URIs, media types, re-parsed
/// fragments). Tab, line feed and carriage return are character references so that attribute
/// value normalization (XML 1.0 §3.3.3) gives the value back unchanged.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_whitespace() {
        assert_eq!(normalize_attribute_whitespace("<a b=\"x\ty\r\nz\">\t</a>").unwrap(), "<a b=\"x y z\">\t</a>");
        assert_eq!(normalize_attribute_whitespace("<a b=\"x\"><!-- \t --></a>"), None);
    }

    #[test]
    fn a_subtree_carries_what_it_inherits() {
        let text = r#"<r xmlns="urn:d" xmlns:p="urn:p" xml:lang="sv"><p:c xmlns:q="urn:q"><e>t</e></p:c></r>"#;
        let doc = uppsala::parse(text).unwrap();
        let c = doc.descendants(doc.root()).into_iter().find(|n| doc.element(*n).is_some_and(|e| e.name.local_name == "c")).unwrap();
        // Inclusive C14N 1.0: every namespace in scope and the inherited xml:lang.
        let inclusive = subtree_in_context(&doc, c, C14nMode::Inclusive).unwrap();
        assert_eq!(inclusive, r#"<p:c xmlns="urn:d" xmlns:p="urn:p" xml:lang="sv" xmlns:q="urn:q"><e>t</e></p:c>"#);
        let exclusive = inherited_context(&doc, c, C14nMode::Exclusive);
        assert_eq!(exclusive, r#" xmlns="urn:d" xmlns:p="urn:p""#);
        // Canonicalized on its own, the subtree is what exclusive C14N makes of it in place.
        let source = subtree_in_context(&doc, c, C14nMode::Exclusive).unwrap();
        let own = uppsala::parse(&source).unwrap();
        let canonical = String::from_utf8(canonicalize(&own, C14nMode::Exclusive, &[] as &[&str]).unwrap()).unwrap();
        assert_eq!(canonical, r#"<p:c xmlns:p="urn:p"><e xmlns="urn:d">t</e></p:c>"#);
        assert_eq!(in_scope(&doc, c, "").as_deref(), Some("urn:d"));
        assert_eq!(in_scope(&doc, c, "x"), None);
    }

    #[test]
    fn escaped_values_read_back_unchanged() {
        assert_eq!(escape("a&b<c>\"d\"\te\nf\rg"), "a&amp;b&lt;c&gt;&quot;d&quot;&#9;e&#10;f&#13;g");
    }
}
