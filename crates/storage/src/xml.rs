//! Just enough XML for S3's responses (ListObjectsV2's `ListBucketResult`, `Error`): the text of
//! simple elements, found by name. No DTD, no entity definitions (a document that declares any is
//! refused, so no entity expansion), only the five predefined entities and character references
//! (XML 1.0 §4.6, §4.1); attributes and namespaces are ignored, which is all S3's flat elements need.

/// The bodies of every `<name>…</name>` element, in document order (not nested in each other).
pub fn elements<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    if doc.contains("<!DOCTYPE") || doc.contains("<!ENTITY") {
        return out;
    }
    let close = format!("</{name}>");
    let mut rest = doc;
    while let Some(i) = find_open(rest, name) {
        let after = &rest[i..];
        let Some(gt) = after.find('>') else { break };
        if after[..gt].ends_with('/') {
            // `<Name/>`: empty.
            out.push("");
            rest = &after[gt + 1..];
            continue;
        }
        let body_start = gt + 1;
        let Some(end) = after[body_start..].find(&close) else { break };
        out.push(&after[body_start..body_start + end]);
        rest = &after[body_start + end + close.len()..];
    }
    out
}

/// The index of the next start tag `<name` followed by `>`, `/` or white space.
fn find_open(s: &str, name: &str) -> Option<usize> {
    let pat = format!("<{name}");
    let mut from = 0;
    while let Some(i) = s[from..].find(&pat) {
        let at = from + i;
        match s.as_bytes().get(at + pat.len()) {
            Some(b'>' | b'/' | b' ' | b'\t' | b'\r' | b'\n') => return Some(at),
            _ => from = at + pat.len(),
        }
    }
    None
}

/// The decoded text of the first `<name>` element.
pub fn text(doc: &str, name: &str) -> Option<String> {
    elements(doc, name).first().and_then(|t| unescape(t))
}

/// Decode the predefined entities and character references; `None` on anything else (markup
/// inside a text-only element, an unknown entity, a bad reference).
pub fn unescape(s: &str) -> Option<String> {
    if s.contains('<') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let semi = after.find(';')?;
        let ent = &after[..semi];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ if ent.starts_with("#x") => char::from_u32(u32::from_str_radix(&ent[2..], 16).ok()?)?,
            _ if ent.starts_with('#') => char::from_u32(ent[1..].parse().ok()?)?,
            _ => return None,
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}
