//! PAdES validation (ETSI EN 319 142-1, ISO 32000-1 §12.8): every signature field of a PDF,
//! its `/ByteRange` (which must be the whole revision but the `/Contents` value), the CMS inside,
//! the Document Security Store as embedded validation data, and document time-stamps as proof
//! of existence (B-LTA). The file is read through the streaming reader and hashed range by range.

use std::io::{Read, Seek, SeekFrom};

use cloudsign_asn1::HashAlgorithm;
use cloudsign_pdf::{Obj, Pdf, Prefix};

use crate::engine::{self, Context, PdfCoverage, SignatureReport, TimestampReport};

/// A signature dictionary found in the document.
struct Found {
    name: String,
    document_timestamp: bool,
    contents: Vec<u8>,
    byte_range: [u64; 4],
    claimed: Option<i64>,
}

/// Validate every signature of the PDF read from `file`.
pub fn validate<F: Read + Seek>(
    mut file: F,
    anchors: &crate::path::TrustAnchors,
    now: i64,
    fetched: (&[Vec<u8>], &[Vec<u8>]),
    max_revocation_age: Option<i64>,
) -> Result<Vec<SignatureReport>, String> {
    let len = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    let mut pdf = Pdf::open(std::io::BufReader::new(&mut file)).map_err(|e| e.to_string())?;
    let found = signatures(&mut pdf)?;
    let (certs, ocsps, crls) = dss(&mut pdf);
    drop(pdf);
    if found.is_empty() {
        return Err("the PDF has no signatures".into());
    }
    // Document time-stamps first: each proves the existence of what it covers.
    let mut archive: Vec<(u64, i64)> = Vec::new();
    let mut timestamps = Vec::new();
    let file = std::cell::RefCell::new(file);
    let file = &file;
    let covered = |range: [u64; 4]| move |h: HashAlgorithm| range_digest(&mut *file.borrow_mut(), range, len, h);
    for f in found.iter().filter(|f| f.document_timestamp) {
        let ts = if range_is_sane(f, len) {
            let ctx = Context {
                anchors,
                embedded_certificates: &certs,
                embedded_crls: &crls,
                embedded_ocsps: &ocsps,
                fetched_ocsps: fetched.0,
                fetched_crls: fetched.1,
                now,
                archive_times: &[],
                max_revocation_age,
            };
            document_timestamp(f, &covered(f.byte_range), &ctx, &certs)
        } else {
            engine::Timestamp::unchecked("the /ByteRange does not cover the file but the time-stamp token")
        };
        if let Some(t) = ts.time {
            archive.push((f.byte_range[2] + f.byte_range[3], t));
        }
        let mut r = engine::new_report(f.name.clone(), "PAdES document time-stamp");
        // EN 319 142-1 §5.4.3: a document time-stamp is an archive time-stamp of what it covers.
        r.set_check("archive_timestamp", ts.outcome, ts.detail.clone());
        if ts.time.is_none() {
            // A wrong imprint or a TSA revoked before genTime fail for certain; an untrusted TSA
            // or one without a known status leaves it open.
            r.indication =
                if ts.outcome == engine::Outcome::Failed { engine::Indication::TotalFailed } else { engine::Indication::Indeterminate };
            r.sub_indication = ts.sub_indication.or(Some(engine::SubIndication::NoCertificateChainFound));
            r.errors.push(ts.detail.clone());
        }
        r.timestamps.push(TimestampReport {
            kind: "document",
            time: ts.gen_time.map(rfc3339).unwrap_or_default(),
            valid: ts.time.is_some(),
            tsa: ts.tsa.clone(),
        });
        r.pdf = Some(coverage(f.byte_range, len, &mut *file.borrow_mut()));
        timestamps.push(r);
    }
    let mut reports = Vec::new();
    for f in found.iter().filter(|f| !f.document_timestamp) {
        let end = f.byte_range[2] + f.byte_range[3];
        // A document time-stamp added later covers this signature.
        let archive_times: Vec<i64> = archive.iter().filter(|(covers, _)| *covers > end).map(|(_, t)| *t).collect();
        let ctx = Context {
            anchors,
            embedded_certificates: &certs,
            embedded_crls: &crls,
            embedded_ocsps: &ocsps,
            fetched_ocsps: fetched.0,
            fetched_crls: fetched.1,
            now,
            archive_times: &archive_times,
            max_revocation_age,
        };
        let mut r = if !range_is_sane(f, len) {
            SignatureReport::format_failure(f.name.clone(), "PAdES", "the /ByteRange does not cover the file but the signature value")
        } else {
            engine::validate_cms(f.name.clone(), "PAdES", &f.contents, &covered(f.byte_range), f.claimed, &ctx)
        };
        let cov = coverage(f.byte_range, len, &mut *file.borrow_mut());
        let changes = if cov.later_revisions > 0 { changes_after(&mut *file.borrow_mut(), end) } else { Vec::new() };
        if !changes.is_empty() && r.indication == engine::Indication::TotalPassed {
            r.indication = engine::Indication::Indeterminate;
            r.sub_indication = Some(engine::SubIndication::FormatFailure);
            r.errors.push(format!("the document was changed after this signature: {}", changes.join("; ")));
        }
        r.pdf = Some(PdfCoverage { changes, ..cov });
        reports.push(r);
    }
    reports.extend(timestamps);
    Ok(reports)
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// `[0, a, b, c]` with `a < b`, the hole exactly the `<...>` of `/Contents`, inside the file.
fn range_is_sane(f: &Found, len: u64) -> bool {
    let [z, a, b, c] = f.byte_range;
    z == 0 && a < b && b.checked_add(c).is_some_and(|e| e <= len) && (b - a) == 2 * f.contents.len() as u64 + 2
}

fn coverage<F: Read + Seek>(range: [u64; 4], len: u64, file: &mut F) -> PdfCoverage {
    let end = range[2].saturating_add(range[3]);
    // Later revisions: each incremental update ends with its own startxref.
    let mut later = 0;
    if end < len && file.seek(SeekFrom::Start(end)).is_ok() {
        let mut tail = Vec::new();
        let _ = file.take(len - end).read_to_end(&mut tail);
        later = tail.windows(9).filter(|w| w == b"startxref").count();
    }
    PdfCoverage { byte_range: range, covers_whole_file: end == len, later_revisions: later, changes: Vec::new() }
}

/// What the incremental updates after `end` (the signed revision) change that a signature
/// cannot allow: every object they redefine is compared with its signed version. Allowed (ISO
/// 32000-1 §12.8.2.2, the changes signing and long-term validation make): new objects; the
/// catalog gaining or changing /AcroForm, /DSS, /Extensions; a page gaining annotations; the
/// form's field list growing and its signature flags; signature fields getting their value and
/// appearance; the DSS itself; arrays that only grow.
fn changes_after<F: Read + Seek>(file: &mut F, end: u64) -> Vec<String> {
    const MAX_OBJECTS: usize = 10_000;
    let mut current = Vec::new();
    {
        let Ok(mut full) = Pdf::open(std::io::BufReader::new(&mut *file)) else { return vec!["the later revisions cannot be read".into()] };
        let defined = full.objects_defined_after(end);
        if defined.len() > MAX_OBJECTS {
            return vec![format!("{} objects redefined", defined.len())];
        }
        for n in defined {
            current.push((n, full.object(n).unwrap_or(Obj::Null)));
        }
    }
    let Ok(mut signed) = Pdf::open(std::io::BufReader::new(Prefix::new(&mut *file, end))) else {
        return vec!["the signed revision cannot be read".into()];
    };
    let mut out = Vec::new();
    for (n, new) in current {
        let old = signed.object(n).unwrap_or(Obj::Null);
        if let Some(why) = disallowed(&old, &new) {
            out.push(format!("object {n}: {why}"));
            if out.len() >= 10 {
                break;
            }
        }
    }
    out
}

/// Why changing `old` into `new` is not a change signing allows, if it is not.
fn disallowed(old: &Obj, new: &Obj) -> Option<String> {
    match (old, new) {
        (Obj::Null, _) => None,
        (Obj::Array(a), Obj::Array(b)) if b.len() >= a.len() && b[..a.len()] == a[..] => None,
        (Obj::Dict(a), Obj::Dict(b)) => {
            let mut keys: Vec<&Vec<u8>> = a.0.iter().map(|(k, _)| k).chain(b.0.iter().map(|(k, _)| k)).collect();
            keys.sort();
            keys.dedup();
            let changed: Vec<String> = keys
                .into_iter()
                .filter(|k| {
                    let key = String::from_utf8_lossy(k);
                    a.get(&key) != b.get(&key)
                })
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            // The document's XMP metadata is rewritten by many signers (its ModifyDate).
            if a.name_is("Type", "Metadata") && b.name_is("Type", "Metadata") {
                return None;
            }
            if changed.is_empty() {
                // Rewritten as it was; a stream's data may still differ.
                return b.get("Length").map(|_| "a stream was rewritten".to_string());
            }
            let allowed: &[&str] = if a.name_is("Type", "Catalog") {
                &["AcroForm", "DSS", "Extensions", "Metadata", "Version"]
            } else if a.name_is("Type", "Page") {
                &["Annots"]
            } else if a.get("Fields").is_some() {
                &["Fields", "SigFlags", "DR", "DA", "NeedAppearances"]
            } else if a.name_is("FT", "Sig") {
                &["V", "AP", "AS"]
            } else if ["Certs", "OCSPs", "CRLs", "VRI"].iter().any(|k| a.get(k).is_some()) {
                &["Certs", "OCSPs", "CRLs", "VRI", "Type"]
            } else if a.get("Producer").is_some() || a.get("ModDate").is_some() {
                // The document information dictionary.
                &["ModDate", "Producer"]
            } else {
                &[]
            };
            let bad: Vec<&String> = changed.iter().filter(|k| !allowed.contains(&k.as_str())).collect();
            (!bad.is_empty()).then(|| format!("/{} changed", bad.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", /")))
        }
        _ => Some("changed".into()),
    }
}

/// The digest of the byte range with `hash`, read in chunks.
fn range_digest<F: Read + Seek>(file: &mut F, range: [u64; 4], len: u64, hash: HashAlgorithm) -> Option<Vec<u8>> {
    let mut ctx = aws_lc_rs::digest::Context::new(cloudsign_ades::aws_lc_algorithm(hash));
    let mut buf = vec![0u8; 1 << 16];
    for (start, count) in [(range[0], range[1]), (range[2], range[3])] {
        if start.saturating_add(count) > len {
            return None;
        }
        file.seek(SeekFrom::Start(start)).ok()?;
        let mut left = count;
        while left > 0 {
            let n = file.read(&mut buf[..left.min(1 << 16) as usize]).ok()?;
            if n == 0 {
                return None;
            }
            ctx.update(&buf[..n]);
            left -= n as u64;
        }
    }
    Some(ctx.finish().as_ref().to_vec())
}

/// A document time-stamp (EN 319 142-1 §5.4.3) checked as any time-stamp: its token's
/// signature, its message imprint over the /ByteRange bytes ("imprint wrong": TOTAL-FAILED),
/// its TSA's path and the TSA's revocation status at genTime from the DSS or fetched ("TSA not
/// trusted": INDETERMINATE).
fn document_timestamp(
    f: &Found,
    covered: &dyn Fn(HashAlgorithm) -> Option<Vec<u8>>,
    ctx: &Context<'_>,
    extra: &[Vec<u8>],
) -> engine::Timestamp {
    let pool: Vec<crate::x509::Certificate> =
        extra.iter().filter_map(|c| crate::x509::Certificate::parse(c).ok()).chain(ctx.anchors.certificates().iter().cloned()).collect();
    // A range that cannot be read hashes to nothing, which no imprint matches.
    engine::check_timestamp(&f.contents, &|h| covered(h).unwrap_or_default(), ctx, &pool, (ctx.embedded_ocsps, ctx.embedded_crls))
}

/// Signature fields with a value, walking the form's field tree (§12.7.3.1).
fn signatures<R: Read + Seek>(pdf: &mut Pdf<R>) -> Result<Vec<Found>, String> {
    let (_, catalog) = pdf.catalog().map_err(|e| e.to_string())?;
    let acro = match catalog.get("AcroForm").cloned() {
        Some(a) => pdf.resolve(&a).map_err(|e| e.to_string())?,
        None => return Ok(Vec::new()),
    };
    let Obj::Dict(acro) = acro else { return Ok(Vec::new()) };
    let fields = match acro.get("Fields").cloned() {
        Some(f) => pdf.resolve(&f).map_err(|e| e.to_string())?,
        None => Obj::Array(Vec::new()),
    };
    let Obj::Array(fields) = fields else { return Ok(Vec::new()) };
    let mut stack: Vec<(Obj, String, usize)> = fields.into_iter().rev().map(|f| (f, String::new(), 0)).collect();
    let mut out = Vec::new();
    let mut visited = 0usize;
    while let Some((field, prefix, depth)) = stack.pop() {
        visited += 1;
        if visited > 10_000 || depth > 32 {
            return Err("the form's field tree is too large or too deep".into());
        }
        let Ok(Obj::Dict(d)) = pdf.resolve(&field) else { continue };
        let name = match d.get("T") {
            Some(Obj::Str(t)) => {
                let t = String::from_utf8_lossy(t).into_owned();
                if prefix.is_empty() { t } else { format!("{prefix}.{t}") }
            }
            _ => prefix.clone(),
        };
        if let Some(Obj::Array(kids)) = d.get("Kids").cloned().map(|k| pdf.resolve(&k).unwrap_or(Obj::Null)) {
            stack.extend(kids.into_iter().rev().map(|k| (k, name.clone(), depth + 1)));
        }
        if !d.name_is("FT", "Sig") {
            continue;
        }
        let Some(v) = d.get("V").cloned() else { continue };
        let Ok(Obj::Dict(sig)) = pdf.resolve(&v) else { continue };
        let Some(Obj::Str(contents)) = sig.get("Contents").cloned() else { continue };
        let byte_range = match sig.get("ByteRange").cloned().map(|b| pdf.resolve(&b)) {
            Some(Ok(Obj::Array(a))) if a.len() == 4 => {
                let n: Vec<u64> = a.iter().map(|x| if let Obj::Int(i) = x { (*i).max(0) as u64 } else { 0 }).collect();
                [n[0], n[1], n[2], n[3]]
            }
            _ => [0; 4],
        };
        let claimed = match sig.get("M") {
            Some(Obj::Str(m)) => cloudsign_pdf::date::parse(&String::from_utf8_lossy(m)),
            _ => None,
        };
        out.push(Found {
            name,
            document_timestamp: sig.name_is("Type", "DocTimeStamp") || sig.name_is("SubFilter", "ETSI.RFC3161"),
            contents,
            byte_range,
            claimed,
        });
    }
    Ok(out)
}

/// The Document Security Store's certificates, OCSP responses and CRLs (EN 319 142-1 §5.4.2).
fn dss<R: Read + Seek>(pdf: &mut Pdf<R>) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    let Ok((_, catalog)) = pdf.catalog() else { return out };
    let Some(d) = catalog.get("DSS").cloned() else { return out };
    let Ok(Obj::Dict(d)) = pdf.resolve(&d) else { return out };
    for (key, list) in [("Certs", &mut out.0), ("OCSPs", &mut out.1), ("CRLs", &mut out.2)] {
        let Some(Ok(Obj::Array(items))) = d.get(key).cloned().map(|a| pdf.resolve(&a)) else { continue };
        for item in items.iter().take(1000) {
            if let Obj::Ref(n, _) = item
                && let Ok(data) = pdf.stream(*n)
            {
                list.push(data);
            }
        }
    }
    out
}

/// The certificates the PDF's signatures and DSS carry.
pub fn certificates<F: Read + Seek>(file: F) -> Vec<Vec<u8>> {
    let Ok(mut pdf) = Pdf::open(std::io::BufReader::new(file)) else { return Vec::new() };
    let mut out = dss(&mut pdf).0;
    for f in signatures(&mut pdf).unwrap_or_default() {
        if let Ok(sd) = crate::cms::parse(&f.contents) {
            out.extend(sd.certificates.iter().cloned());
            for si in &sd.signers {
                for token in si.unsigned(cloudsign_pki::cms::ID_SIGNATURE_TIME_STAMP) {
                    out.extend(cloudsign_pki::x509::cms_certificates(token));
                }
            }
        }
    }
    out
}
