//! PAdES (ETSI EN 319 142-1) by incremental update: a signature field whose `/Sig` dictionary
//! (SubFilter `ETSI.CAdES.detached`) holds a CAdES signature over the `/ByteRange` (the whole
//! file but the `/Contents` value); for B-LT a Document Security Store (`/DSS`, §5.4.2) with
//! the certificates, OCSP responses and CRLs; for B-LTA a document time-stamp
//! (SubFilter `ETSI.RFC3161`, §5.4.3). Each step appends to the file and leaves the earlier
//! bytes, and any earlier signatures, as they were.
//!
//! The signature value is not made here: [`add_signature`] reserves its place and returns the
//! bytes to hash around it ([`Placeholder::signed_parts`], after the original file), and
//! [`Placeholder::fill`] puts the CMS (or time-stamp token) in.
//!
//! A signature is invisible by default (a zero rectangle on the first page). [`add_signature_field`]
//! with a [`Field`] adds a `/Reason` and, with [`Visible`], a widget on a chosen page whose
//! appearance shows a few lines of text ([`signer_lines`]: who signed, when, why).

use std::io::{Read, Seek};

use cloudsign_pdf::{Dict, Obj, Pdf, PdfError};

use crate::AdesError;

fn err(msg: impl Into<String>) -> AdesError {
    AdesError::Pdf(msg.into())
}

/// A file the reader refuses is refused as a signature that cannot be built, with the same text.
impl From<PdfError> for AdesError {
    fn from(e: PdfError) -> Self {
        AdesError::Pdf(e.message().to_string())
    }
}

/// What the new signature field holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A signature (EN 319 142-1 §6.2: SubFilter ETSI.CAdES.detached), with `/M` the claimed
    /// signing time (the CMS carries no signing-time attribute, §6.2.1).
    Signature {
        /// Unix seconds.
        signing_time: i64,
    },
    /// A document time-stamp (§5.4.3: SubFilter ETSI.RFC3161), for B-LTA.
    DocumentTimestamp,
    /// A certification signature (ISO 32000-1 §12.8.2.2, DocMDP): a signature that also states
    /// which later changes keep the document valid — `permissions` 1: none, 2: filling in forms
    /// and signing, 3: those and annotations. It must be the document's first signature.
    Certification {
        /// Unix seconds.
        signing_time: i64,
        /// DocMDP `P`: 1, 2 or 3.
        permissions: u8,
    },
}

/// The update with a zero-filled `/Contents`, waiting for the value.
pub struct Placeholder {
    /// The update's bytes (to append after the file as it was).
    pub update: Vec<u8>,
    /// `<` and one past `>` of `/Contents`, relative to `update`.
    contents: (usize, usize),
    base: u64,
}

impl Placeholder {
    /// What is hashed after the preceding bytes of the file: the update before and after the
    /// `/Contents` value (ISO 32000-1 §12.8.1).
    pub fn signed_parts(&self) -> (&[u8], &[u8]) {
        (&self.update[..self.contents.0], &self.update[self.contents.1..])
    }

    /// The `/ByteRange` written into the dictionary.
    pub fn byte_range(&self) -> [u64; 4] {
        let total = self.base + self.update.len() as u64;
        let (a, b) = (self.base + self.contents.0 as u64, self.base + self.contents.1 as u64);
        [0, a, b, total - b]
    }

    /// Bytes available for the value (DER), after hex encoding.
    pub fn capacity(&self) -> usize {
        (self.contents.1 - self.contents.0 - 2) / 2
    }

    /// Put the DER value into `/Contents` and return the finished update.
    pub fn fill(mut self, value: &[u8]) -> Result<Vec<u8>, AdesError> {
        if value.len() > self.capacity() {
            return Err(err(format!("the signature ({} bytes) does not fit the space reserved ({} bytes)", value.len(), self.capacity())));
        }
        let hex = cloudsign_pdf::hex_upper(value);
        let start = self.contents.0 + 1;
        self.update[start..start + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(self.update)
    }
}

/// Width reserved for each `/ByteRange` number.
const RANGE_DIGITS: usize = 10;

pub use cloudsign_pdf::appearance::Rect;

/// Where a visible signature goes: a page, and a rectangle in PDF user-space units (1/72 inch)
/// whose origin is the lower-left corner of the page's crop box (the media box when it has
/// none), the region a viewer shows. Coordinates are those of the unrotated page, as `/Rect`'s
/// always are (ISO 32000-1 §12.5.2): on a page with `/Rotate` the box turns with the page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// The page, numbered from 1.
    pub page: u32,
    /// The widget's rectangle, relative to the crop box's lower-left corner.
    pub rect: Rect,
}

/// A visible signature: its position and the lines of text its appearance shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Visible {
    /// Where the widget goes.
    pub position: Position,
    /// The lines, top to bottom (wrapped, and shrunk to fit the box).
    pub lines: Vec<String>,
}

/// What a signature field carries besides the signature: all optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Field {
    /// `/Reason` of the signature dictionary (ISO 32000-1 §12.8.1, Table 252).
    pub reason: Option<String>,
    /// A visible widget; `None`: invisible, on the first page.
    pub visible: Option<Visible>,
}

/// The signer's name for an appearance: the certificate subject's common name (X.520
/// `id-at-commonName`), `None` when it has none or cannot be read.
pub fn signer_name(certificate: &[u8]) -> Option<String> {
    use cloudsign_asn1::der::Reader;
    let (subject, _) = cloudsign_asn1::cert::subject_and_key(certificate)?;
    let mut rdns = Reader::new(Reader::new(&subject).expect(0x30)?);
    while let Some((_, set, _)) = rdns.next() {
        let mut set = Reader::new(set);
        while let Some(attribute) = set.expect(0x30) {
            let mut attribute = Reader::new(attribute);
            // 2.5.4.3 = 55 04 03.
            if attribute.expect(0x06)? != [0x55, 0x04, 0x03] {
                continue;
            }
            let (tag, value, _) = attribute.next()?;
            return match tag {
                // UTF8String, PrintableString, IA5String; TeletexString read as Latin-1.
                0x0C | 0x13 | 0x16 => String::from_utf8(value.to_vec()).ok(),
                0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
                // BMPString: UTF-16BE.
                0x1E => {
                    char::decode_utf16(value.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))).collect::<Result<String, _>>().ok()
                }
                _ => None,
            };
        }
    }
    None
}

/// The usual lines of a visible signature: `Signed by NAME` (the certificate's common name),
/// `Date: YYYY-MM-DD HH:MM UTC` (the claimed signing time), and `Reason: ...` when given.
pub fn signer_lines(certificate: &[u8], signing_time: i64, reason: Option<&str>) -> Vec<String> {
    let mut lines = vec![match signer_name(certificate) {
        Some(name) => format!("Signed by {name}"),
        None => "Digitally signed".to_string(),
    }];
    lines.push(format!("Date: {}", cloudsign_pdf::date::display_utc(signing_time)));
    if let Some(reason) = reason.filter(|r| !r.trim().is_empty()) {
        lines.push(format!("Reason: {reason}"));
    }
    lines
}

/// Add an invisible signature field on the first page with a `/Sig` (or `/DocTimeStamp`)
/// dictionary whose `/Contents` reserves `reserve` bytes. The update is final but for the
/// value.
pub fn add_signature<R: Read + Seek>(pdf: &mut Pdf<R>, kind: Kind, reserve: usize) -> Result<Placeholder, AdesError> {
    add_signature_field(pdf, kind, reserve, &Field::default())
}

/// As [`add_signature`], with a reason and, when `field.visible` says, a visible widget:
/// its `/Rect` on the chosen page and a normal appearance (`/AP /N`, ISO 32000-1 §12.5.5) that
/// shows the lines in Helvetica inside a thin frame. The page's `/Annots` gains the widget
/// (the page, or its indirect `/Annots` array, is rewritten in the update).
pub fn add_signature_field<R: Read + Seek>(pdf: &mut Pdf<R>, kind: Kind, reserve: usize, field: &Field) -> Result<Placeholder, AdesError> {
    let (catalog_num, mut catalog) = pdf.catalog()?;
    // PAdES (EN 319 142-1 §5.4) lets DSS updates and document time-stamps follow any DocMDP level.
    if kind != Kind::DocumentTimestamp {
        refuse_if_locked(pdf, &catalog)?;
    }
    // The widget's page, and its rectangle in the page's default user space.
    let (page_num, mut page, rect) = match &field.visible {
        None => {
            let (num, dict) = pdf.first_page()?;
            (num, dict, None)
        }
        Some(v) => {
            let page = pdf.page(v.position.page)?;
            let r = v.position.rect;
            let [llx, lly, urx, ury] = page.crop_box;
            let (w, h) = (urx - llx, ury - lly);
            if ![r.x, r.y, r.width, r.height].iter().all(|n| n.is_finite()) || r.width <= 0.0 || r.height <= 0.0 {
                return Err(err("the signature's box needs a positive width and height"));
            }
            if r.x < 0.0 || r.y < 0.0 || r.x + r.width > w + 1e-9 || r.y + r.height > h + 1e-9 {
                return Err(err(format!(
                    "the signature's box ({} {} {} {}) does not fit on page {}, which is {} x {} units",
                    r.x, r.y, r.width, r.height, v.position.page, w, h
                )));
            }
            (page.num, page.dict, Some(Rect { x: llx + r.x, y: lly + r.y, width: r.width, height: r.height }))
        }
    };

    // The AcroForm (§12.7.2): direct in the catalog, indirect, or new.
    let acro_ref = match catalog.get("AcroForm") {
        Some(Obj::Ref(n, _)) => Some(*n),
        _ => None,
    };
    let mut acro = match catalog.get("AcroForm").cloned() {
        Some(o) => match pdf.resolve(&o)? {
            Obj::Dict(d) => d,
            _ => Dict::default(),
        },
        None => Dict::default(),
    };
    let fields_ref = match acro.get("Fields") {
        Some(Obj::Ref(n, _)) => Some(*n),
        _ => None,
    };
    let mut fields = match acro.get("Fields").cloned() {
        Some(o) => match pdf.resolve(&o)? {
            Obj::Array(a) => a,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    // A field name not taken yet (§12.7.3.2: fully qualified names are unique). Only the
    // top-level fields are looked at, and at most a few thousand of them.
    let mut taken = std::collections::HashSet::new();
    let mut signed = flags_of(&acro) & 1 != 0;
    for f in fields.iter().take(4096) {
        if let Ok(Obj::Dict(d)) = pdf.resolve(f) {
            if let Some(Obj::Str(t)) = d.get("T") {
                taken.insert(t.clone());
            }
            signed |= d.name_is("FT", "Sig") && d.get("V").is_some();
        }
    }
    let stem = if kind == Kind::DocumentTimestamp { "Timestamp" } else { "Signature" };
    let name = (1..).map(|k| format!("{stem}{k}")).find(|n| !taken.contains(n.as_bytes())).unwrap_or_default();

    let sig_num = pdf.allocate();
    let widget_num = pdf.allocate();
    let appearance = rect.map(|r| (r, pdf.allocate(), pdf.allocate()));
    let mut update = pdf.update();
    let base = update.base();

    // The signature dictionary, written by hand to know where the placeholders are.
    let mut sig = Vec::new();
    sig.extend_from_slice(format!("{sig_num} 0 obj\n").as_bytes());
    match kind {
        Kind::Signature { signing_time } => {
            sig.extend_from_slice(b"<</Type /Sig/Filter /Adobe.PPKLite/SubFilter /ETSI.CAdES.detached/M ");
            Obj::Str(cloudsign_pdf::date::format(signing_time).into_bytes()).write(&mut sig);
        }
        Kind::Certification { signing_time, permissions } => {
            if !(1..=3).contains(&permissions) {
                return Err(err("DocMDP permissions are 1, 2 or 3"));
            }
            if signed {
                return Err(err("a certification signature must be the document's first signature"));
            }
            sig.extend_from_slice(b"<</Type /Sig/Filter /Adobe.PPKLite/SubFilter /ETSI.CAdES.detached/M ");
            Obj::Str(cloudsign_pdf::date::format(signing_time).into_bytes()).write(&mut sig);
            sig.extend_from_slice(
                format!("/Reference [<</Type /SigRef/TransformMethod /DocMDP/TransformParams <</Type /TransformParams/P {permissions}/V /1.2>>>>]")
                    .as_bytes(),
            );
        }
        Kind::DocumentTimestamp => sig.extend_from_slice(b"<</Type /DocTimeStamp/Filter /Adobe.PPKLite/SubFilter /ETSI.RFC3161"),
    }
    if let Some(reason) = &field.reason {
        sig.extend_from_slice(b"/Reason ");
        Obj::text(reason).write(&mut sig);
    }
    sig.extend_from_slice(b"/ByteRange ");
    let range_at = sig.len();
    sig.extend_from_slice(format!("[{}]", ["0"; 4].map(|z| z.repeat(RANGE_DIGITS)).join(" ")).as_bytes());
    let range_end = sig.len();
    sig.extend_from_slice(b"/Contents ");
    let contents_at = sig.len();
    sig.push(b'<');
    sig.extend(std::iter::repeat_n(b'0', reserve * 2));
    sig.push(b'>');
    let contents_end = sig.len();
    sig.extend_from_slice(b">>\nendobj\n");
    let sig_start = update.raw_object(sig_num, &sig);

    let mut widget = Dict(vec![
        (b"Type".to_vec(), Obj::name("Annot")),
        (b"Subtype".to_vec(), Obj::name("Widget")),
        (b"FT".to_vec(), Obj::name("Sig")),
        (b"T".to_vec(), Obj::Str(name.into_bytes())),
        (b"V".to_vec(), Obj::Ref(sig_num, 0)),
        // Invisible: §12.7.4.5 allows a zero rectangle.
        (b"Rect".to_vec(), Obj::Array(vec![Obj::Int(0); 4])),
        // §12.5.3, Table 165: Print (4), so the appearance is printed, + Locked (128), so a
        // viewer does not let the widget be moved or deleted.
        (b"F".to_vec(), Obj::Int(132)),
        (b"P".to_vec(), Obj::Ref(page_num, pdf.generation(page_num))),
    ]);
    if let (Some((rect, font_num, form_num)), Some(visible)) = (appearance, &field.visible) {
        use cloudsign_pdf::appearance;
        // The font is an indirect object, as §9.6.1 has font dictionaries.
        update.object(font_num, &appearance::helvetica());
        let content = appearance::text_box_content(rect.width, rect.height, &visible.lines);
        update.stream(form_num, appearance::form_xobject(rect.width, rect.height, Obj::Ref(font_num, 0)), &content);
        widget.set("Rect", rect.to_array());
        // §12.5.5: the normal appearance; its /BBox is the rectangle's size at the origin.
        widget.set("AP", Obj::Dict(Dict(vec![(b"N".to_vec(), Obj::Ref(form_num, 0))])));
    }
    let widget = Obj::Dict(widget);
    update.object(widget_num, &widget);
    // The widget is readable by later updates (a further field must not take its name).
    let mut changed = vec![(widget_num, widget)];

    // The page's annotations gain the widget.
    match page.get("Annots").cloned() {
        Some(Obj::Ref(n, _)) => {
            let mut annots = match pdf.object(n)? {
                Obj::Array(a) => a,
                _ => Vec::new(),
            };
            annots.push(Obj::Ref(widget_num, 0));
            let annots = Obj::Array(annots);
            update.object(n, &annots);
            changed.push((n, annots));
        }
        other => {
            let mut annots = match other {
                Some(Obj::Array(a)) => a,
                _ => Vec::new(),
            };
            annots.push(Obj::Ref(widget_num, 0));
            page.set("Annots", Obj::Array(annots));
            let page = Obj::Dict(page);
            update.object(page_num, &page);
            changed.push((page_num, page));
        }
    }

    // The form gains the field; SigFlags SignaturesExist | AppendOnly (§12.7.2, Table 219).
    fields.push(Obj::Ref(widget_num, 0));
    match fields_ref {
        Some(n) => {
            let fields = Obj::Array(fields);
            update.object(n, &fields);
            changed.push((n, fields));
        }
        None => acro.set("Fields", Obj::Array(fields)),
    }
    acro.set("SigFlags", Obj::Int(flags_of(&acro) | 3));
    // A certification signature is named in the catalog's /Perms (§12.8.4).
    let certify = matches!(kind, Kind::Certification { .. });
    if certify {
        catalog.set("Perms", Obj::Dict(Dict(vec![(b"DocMDP".to_vec(), Obj::Ref(sig_num, 0))])));
    }
    match acro_ref {
        Some(n) => {
            let acro = Obj::Dict(acro);
            update.object(n, &acro);
            changed.push((n, acro));
        }
        None => catalog.set("AcroForm", Obj::Dict(acro)),
    }
    if acro_ref.is_none() || certify {
        let catalog = Obj::Dict(catalog);
        update.object(catalog_num, &catalog);
        changed.push((catalog_num, catalog));
    }

    let update = pdf.finish(update, changed);
    let mut placeholder = Placeholder { update, contents: (sig_start + contents_at, sig_start + contents_end), base };
    // The real /ByteRange, padded with spaces to the reserved width.
    let [a, b, c, d] = placeholder.byte_range();
    let mut range = format!("[{a} {b} {c} {d}]").into_bytes();
    range.resize(range_end - range_at, b' ');
    placeholder.update[sig_start + range_at..sig_start + range_end].copy_from_slice(&range);
    Ok(placeholder)
}

/// The AcroForm's `/SigFlags` (0 when absent).
fn flags_of(acro: &Dict) -> i64 {
    match acro.get("SigFlags") {
        Some(Obj::Int(f)) => *f,
        _ => 0,
    }
}

/// A certification signature that allows no changes (DocMDP P = 1, ISO 32000-1 §12.8.2.2)
/// forbids another signature.
fn refuse_if_locked<R: Read + Seek>(pdf: &mut Pdf<R>, catalog: &Dict) -> Result<(), AdesError> {
    let Some(perms) = catalog.get("Perms").cloned() else { return Ok(()) };
    let Obj::Dict(perms) = pdf.resolve(&perms)? else { return Ok(()) };
    let Some(docmdp) = perms.get("DocMDP").cloned() else { return Ok(()) };
    let Obj::Dict(sig) = pdf.resolve(&docmdp)? else { return Ok(()) };
    let Some(Obj::Array(refs)) = sig.get("Reference").cloned().map(|r| pdf.resolve(&r)).transpose()? else { return Ok(()) };
    for r in refs {
        if let Obj::Dict(r) = pdf.resolve(&r)?
            && let Some(params) = r.get("TransformParams").cloned()
            && let Obj::Dict(params) = pdf.resolve(&params)?
            && matches!(params.get("P"), Some(Obj::Int(1)))
        {
            return Err(err("the document is certified with no changes allowed (DocMDP P=1): it cannot take another signature"));
        }
    }
    Ok(())
}

/// Validation data for the Document Security Store (EN 319 142-1 §5.4.2).
pub fn add_dss<R: Read + Seek>(
    pdf: &mut Pdf<R>,
    certificates: &[Vec<u8>],
    ocsp: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<Vec<u8>, AdesError> {
    let (catalog_num, mut catalog) = pdf.catalog()?;
    // An existing DSS keeps its entries; ours are added.
    let (dss_num, mut dss) = match catalog.get("DSS").cloned() {
        Some(Obj::Ref(n, _)) => match pdf.object(n)? {
            Obj::Dict(d) => (n, d),
            _ => (n, Dict::default()),
        },
        Some(Obj::Dict(d)) => (pdf.allocate(), d),
        _ => (pdf.allocate(), Dict::default()),
    };
    let mut update = pdf.update();
    for (key, items) in [("Certs", certificates), ("OCSPs", ocsp), ("CRLs", crls)] {
        if items.is_empty() {
            continue;
        }
        let mut list = match dss.get(key).cloned() {
            Some(o) => match pdf.resolve(&o)? {
                Obj::Array(a) => a,
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        for item in items {
            let n = pdf.allocate();
            update.stream(n, Dict::default(), item);
            list.push(Obj::Ref(n, 0));
        }
        dss.set(key, Obj::Array(list));
    }
    let dss = Obj::Dict(dss);
    update.object(dss_num, &dss);
    let mut changed = vec![(dss_num, dss)];
    if !matches!(catalog.get("DSS"), Some(Obj::Ref(n, _)) if *n == dss_num) {
        catalog.set("DSS", Obj::Ref(dss_num, 0));
        let catalog = Obj::Dict(catalog);
        update.object(catalog_num, &catalog);
        changed.push((catalog_num, catalog));
    }
    Ok(pdf.finish(update, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudsign_test_support::pdf::one_page_pdf;

    #[test]
    fn signature_update_reserves_and_fills() {
        let original = one_page_pdf("PAdES");
        let mut pdf = Pdf::open(std::io::Cursor::new(original.clone())).unwrap();
        let p = add_signature(&mut pdf, Kind::Signature { signing_time: 1_800_000_000 }, 100).unwrap();
        let [a, b, c, d] = p.byte_range();
        assert_eq!(a, 0);
        let whole = [original.as_slice(), &p.update].concat();
        assert_eq!(whole[b as usize], b'<');
        assert_eq!(whole[c as usize - 1], b'>');
        assert_eq!(c + d, whole.len() as u64);
        let (x, y) = p.signed_parts();
        assert_eq!(original.len() + x.len(), b as usize);
        assert_eq!(y.len() as u64, d);
        assert!(String::from_utf8_lossy(&p.update).contains(&format!("/ByteRange [0 {b} {c} {d}]")));
        let filled = p.fill(&[0xAB; 100]).unwrap();
        assert!(String::from_utf8_lossy(&filled).contains(&"AB".repeat(100)));

        // The result reads back: the new catalog has the form, the page the widget.
        let mut again = Pdf::open(std::io::Cursor::new([original.as_slice(), &filled].concat())).unwrap();
        let (_, catalog) = again.catalog().unwrap();
        let Some(Obj::Dict(acro)) = catalog.get("AcroForm") else { panic!("no AcroForm") };
        assert_eq!(acro.get("SigFlags"), Some(&Obj::Int(3)));
        let (_, page) = again.first_page().unwrap();
        assert!(matches!(page.get("Annots"), Some(Obj::Array(a)) if a.len() == 1));
    }

    #[test]
    fn certification_goes_first_and_names_its_permissions() {
        let mut pdf = Pdf::open(std::io::Cursor::new(one_page_pdf("PAdES"))).unwrap();
        let p = add_signature(&mut pdf, Kind::Certification { signing_time: 0, permissions: 2 }, 10).unwrap();
        let text = String::from_utf8_lossy(&p.update).into_owned();
        assert!(text.contains("/TransformMethod /DocMDP") && text.contains("/P 2"), "{text}");
        let (_, catalog) = pdf.catalog().unwrap();
        assert!(matches!(catalog.get("Perms"), Some(Obj::Dict(d)) if d.get("DocMDP").is_some()));
        // Not after another signature; and P=1 then forbids a further signature, not a time-stamp.
        assert!(add_signature(&mut pdf, Kind::Certification { signing_time: 0, permissions: 2 }, 10).is_err());
        let mut locked = Pdf::open(std::io::Cursor::new(one_page_pdf("PAdES"))).unwrap();
        let first = add_signature(&mut locked, Kind::Certification { signing_time: 0, permissions: 1 }, 10).unwrap();
        let bytes = [one_page_pdf("PAdES"), first.fill(&[1]).unwrap()].concat();
        let mut again = Pdf::open(std::io::Cursor::new(bytes)).unwrap();
        assert!(add_signature(&mut again, Kind::Signature { signing_time: 0 }, 10).is_err());
        assert!(add_signature(&mut again, Kind::DocumentTimestamp, 10).is_ok());
    }

    /// A certificate shaped enough for `subject_and_key`: its subject is `rdns`.
    fn cert_with_subject(rdns: &[&[u8]]) -> Vec<u8> {
        use cloudsign_asn1::der::{seq, tlv};
        let name = seq(rdns);
        let spki = seq(&[&seq(&[&tlv(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01])]), &tlv(0x03, &[0, 4])]);
        let tbs = seq(&[&tlv(0xA0, &tlv(0x02, &[2])), &tlv(0x02, &[1]), &seq(&[]), &seq(&[]), &seq(&[]), &name, &spki]);
        seq(&[&tbs, &seq(&[]), &tlv(0x03, &[0])])
    }

    fn rdn(oid_last: u8, tag: u8, value: &[u8]) -> Vec<u8> {
        use cloudsign_asn1::der::{seq, set_of, tlv};
        set_of(&[&seq(&[&tlv(0x06, &[0x55, 0x04, oid_last]), &tlv(tag, value)])])
    }

    #[test]
    fn the_signer_is_named_by_the_common_name() {
        let cert = cert_with_subject(&[&rdn(10, 0x0C, b"cloudsign"), &rdn(3, 0x0C, "Zoë Example".as_bytes())]);
        assert_eq!(signer_name(&cert).as_deref(), Some("Zoë Example"));
        let bmp: Vec<u8> = "Ångström".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(signer_name(&cert_with_subject(&[&rdn(3, 0x1E, &bmp)])).as_deref(), Some("Ångström"));
        let none = cert_with_subject(&[&rdn(10, 0x13, b"no CN")]);
        assert_eq!(signer_name(&none), None);
        assert_eq!(
            signer_lines(&cert, 1_700_000_000, Some("I approve")),
            ["Signed by Zoë Example", "Date: 2023-11-14 22:13 UTC", "Reason: I approve"]
        );
        assert_eq!(signer_lines(&none, 0, Some(" ")), ["Digitally signed", "Date: 1970-01-01 00:00 UTC"]);
    }

    fn visible(page: u32, x: f64, y: f64, width: f64, height: f64) -> Field {
        Field {
            reason: Some("Zoë agrees".into()),
            visible: Some(Visible {
                position: Position { page, rect: Rect { x, y, width, height } },
                lines: vec!["Signed by (Zoë)".into(), "Date: 2026-12-08 02:30 UTC".into()],
            }),
        }
    }

    #[test]
    fn a_visible_signature_has_a_widget_with_an_appearance_on_its_page() {
        let original = one_page_pdf("PAdES");
        let mut pdf = Pdf::open(std::io::Cursor::new(original.clone())).unwrap();
        let p = add_signature_field(&mut pdf, Kind::Signature { signing_time: 0 }, 100, &visible(1, 100.0, 100.5, 220.0, 60.0)).unwrap();
        let text = String::from_utf8_lossy(&p.update).into_owned();
        assert!(text.contains("/Rect [100 100.5 320 160.5]"), "{text}");
        assert!(text.contains("/Subtype /Form/BBox [0 0 220 60]"), "{text}");
        assert!(text.contains("/BaseFont /Helvetica/Encoding /WinAnsiEncoding"), "{text}");
        assert!(text.contains("(Signed by \\(Zo\\353\\)) Tj"), "{text}");
        // The reason in the signature dictionary, as a UTF-16BE text string.
        assert!(text.contains(&format!(
            "/Reason <{}>",
            cloudsign_pdf::hex_upper(&{
                let Obj::Str(b) = Obj::text("Zoë agrees") else { unreachable!() };
                b
            })
        )));
        let filled = p.fill(&[1; 100]).unwrap();
        let mut again = Pdf::open(std::io::Cursor::new([original.as_slice(), &filled].concat())).unwrap();
        let page = again.page(1).unwrap();
        let Some(Obj::Array(annots)) = page.dict.get("Annots") else { panic!("no /Annots") };
        let Obj::Dict(widget) = again.resolve(&annots[0]).unwrap() else { panic!("no widget") };
        let Some(Obj::Dict(ap)) = widget.get("AP") else { panic!("no /AP") };
        let Some(Obj::Ref(form, _)) = ap.get("N") else { panic!("no /AP /N") };
        let content = String::from_utf8(again.stream(*form).unwrap()).unwrap();
        assert!(content.contains(" re S") && content.contains("(Date: 2026-12-08 02:30 UTC) Tj"), "{content}");

        // A second one keeps the first widget in the page's /Annots.
        let second = add_signature_field(&mut again, Kind::Signature { signing_time: 0 }, 10, &visible(1, 0.0, 0.0, 595.0, 20.0)).unwrap();
        let bytes = [original.as_slice(), &filled, &second.fill(&[1]).unwrap()].concat();
        let mut third = Pdf::open(std::io::Cursor::new(bytes)).unwrap();
        assert!(matches!(third.page(1).unwrap().dict.get("Annots"), Some(Obj::Array(a)) if a.len() == 2));
    }

    #[test]
    fn a_box_off_the_page_or_a_missing_page_is_refused() {
        let mut pdf = Pdf::open(std::io::Cursor::new(one_page_pdf("PAdES"))).unwrap();
        let sign = |pdf: &mut Pdf<_>, f: Field| {
            add_signature_field(pdf, Kind::Signature { signing_time: 0 }, 10, &f).map(|_| ()).unwrap_err().to_string()
        };
        assert!(sign(&mut pdf, visible(2, 0.0, 0.0, 10.0, 10.0)).contains("there is no page 2: the document has 1 page,"));
        assert!(sign(&mut pdf, visible(0, 0.0, 0.0, 10.0, 10.0)).contains("there is no page 0"));
        assert!(sign(&mut pdf, visible(1, 500.0, 0.0, 100.0, 10.0)).contains("does not fit on page 1, which is 595 x 842 units"));
        assert!(sign(&mut pdf, visible(1, 0.0, 0.0, -1.0, 10.0)).contains("positive width and height"));
        assert!(sign(&mut pdf, visible(1, f64::NAN, 0.0, 1.0, 10.0)).contains("positive width and height"));
    }

    #[test]
    fn too_large_a_value_is_refused() {
        let mut pdf = Pdf::open(std::io::Cursor::new(one_page_pdf("PAdES"))).unwrap();
        let p = add_signature(&mut pdf, Kind::DocumentTimestamp, 10).unwrap();
        assert!(p.fill(&[1; 11]).is_err());
    }

    #[test]
    fn second_signature_gets_a_new_name_and_dss_merges() {
        let original = one_page_pdf("PAdES");
        let mut pdf = Pdf::open(std::io::Cursor::new(original)).unwrap();
        let first = add_signature(&mut pdf, Kind::Signature { signing_time: 0 }, 10).unwrap();
        assert!(String::from_utf8_lossy(&first.update).contains(&format!("/T <{}>", cloudsign_pdf::hex_upper(b"Signature1"))));
        let dss = add_dss(&mut pdf, &[vec![1, 2, 3]], &[], &[vec![4]]).unwrap();
        assert!(String::from_utf8_lossy(&dss).contains("/Certs [") && String::from_utf8_lossy(&dss).contains("/DSS "));
        let second = add_signature(&mut pdf, Kind::DocumentTimestamp, 10).unwrap();
        assert!(String::from_utf8_lossy(&second.update).contains(&format!("/T <{}>", cloudsign_pdf::hex_upper(b"Timestamp1"))));
        let (_, catalog) = pdf.catalog().unwrap();
        assert!(catalog.get("DSS").is_some());
    }
}
