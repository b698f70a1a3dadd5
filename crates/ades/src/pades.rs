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

/// Add an invisible signature field on the first page with a `/Sig` (or `/DocTimeStamp`)
/// dictionary whose `/Contents` reserves `reserve` bytes. The update is final but for the
/// value.
pub fn add_signature<R: Read + Seek>(pdf: &mut Pdf<R>, kind: Kind, reserve: usize) -> Result<Placeholder, AdesError> {
    let (catalog_num, mut catalog) = pdf.catalog()?;
    // PAdES (EN 319 142-1 §5.4) lets DSS updates and document time-stamps follow any DocMDP level.
    if kind != Kind::DocumentTimestamp {
        refuse_if_locked(pdf, &catalog)?;
    }
    let (page_num, mut page) = pdf.first_page()?;

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

    let widget = Obj::Dict(Dict(vec![
        (b"Type".to_vec(), Obj::name("Annot")),
        (b"Subtype".to_vec(), Obj::name("Widget")),
        (b"FT".to_vec(), Obj::name("Sig")),
        (b"T".to_vec(), Obj::Str(name.into_bytes())),
        (b"V".to_vec(), Obj::Ref(sig_num, 0)),
        // Invisible (§12.7.4.5 allows a zero rectangle); Print + Locked flags.
        (b"Rect".to_vec(), Obj::Array(vec![Obj::Int(0); 4])),
        (b"F".to_vec(), Obj::Int(132)),
        (b"P".to_vec(), Obj::Ref(page_num, pdf.generation(page_num))),
    ]));
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
