//! Reading: the cross-reference sections (§7.5.4, §7.5.8), objects in the file and in object
//! streams (§7.5.7), and the few stream data a signature and its validation need.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};

use crate::object::{Dict, Lexer, Obj, Parse, ParseError, bad};
use crate::{PdfError, err};

/// Where an object lives (§7.5.4, §7.5.8.3).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Entry {
    InFile { offset: u64, generation: u16 },
    InStream { stream: u32, index: u32 },
}

/// An open PDF: the merged cross-reference, the trailer, and the objects changed by the
/// updates written so far (which the reader sees instead of the file's versions).
pub struct Pdf<R> {
    src: R,
    /// Length of the original file.
    pub(crate) file_len: u64,
    /// Offset (in the whole output) of the newest cross-reference section.
    pub(crate) last_xref: u64,
    /// Bytes appended so far by updates.
    pub(crate) appended: u64,
    pub(crate) xref: HashMap<u32, Entry>,
    pub(crate) trailer: Dict,
    pub(crate) xref_stream: bool,
    pub(crate) size: u32,
    pub(crate) changed: HashMap<u32, Obj>,
    object_streams: HashMap<u32, ObjectStream>,
    pub(crate) ends_with_eol: bool,
    /// Bytes inflated so far (against [`MAX_INFLATED`]).
    inflated: usize,
}

/// A decoded object stream (§7.5.7): its data and (object number, offset) of each object.
type ObjectStream = (Vec<u8>, Vec<(u32, usize)>);

/// A stream's dictionary and where its data starts.
struct StreamAt {
    dict: Dict,
    data: u64,
}

const MAX_OBJECT_WINDOW: usize = 64 << 20;
/// ISO 32000-1 Annex C: at most 8,388,607 indirect objects.
pub(crate) const MAX_OBJECTS: i64 = 8_388_607;
/// Cross-reference sections followed (`/Prev`, `/XRefStm`).
const MAX_SECTIONS: usize = 4096;
/// Bytes inflated from cross-reference and object streams in all, per open PDF: a
/// decompression bomb stops here.
const MAX_INFLATED: usize = 256 << 20;
/// Decoded object streams kept at once.
const MAX_CACHED_STREAMS: usize = 16;

impl<R: Read + Seek> Pdf<R> {
    /// Open a PDF: read its trailer and every cross-reference section (following `/Prev` and
    /// `/XRefStm`).
    pub fn open(mut src: R) -> Result<Pdf<R>, PdfError> {
        let file_len = src.seek(SeekFrom::End(0)).map_err(|e| err(format!("cannot read the PDF: {e}")))?;
        let mut head = [0u8; 8];
        read_exact_at(&mut src, 0, &mut head).map_err(|_| err("not a PDF file (too short)"))?;
        if !head.starts_with(b"%PDF-") {
            return Err(err("not a PDF file (no %PDF- header)"));
        }
        let tail_len = file_len.min(2048);
        let tail = read_at(&mut src, file_len - tail_len, tail_len as usize).map_err(|e| err(format!("cannot read the PDF: {e}")))?;
        let at = tail.windows(9).rposition(|w| w == b"startxref").ok_or_else(|| err("not a PDF file (no startxref)"))?;
        let mut lx = Lexer { b: &tail[at + 9..], pos: 0 };
        let startxref = match lx.uint() {
            Ok(Some(n)) => n,
            _ => return Err(err("malformed startxref")),
        };
        let ends_with_eol = matches!(tail.last(), Some(b'\n' | b'\r'));
        let mut pdf = Pdf {
            src,
            file_len,
            last_xref: startxref,
            appended: 0,
            xref: HashMap::new(),
            trailer: Dict::default(),
            xref_stream: false,
            size: 0,
            changed: HashMap::new(),
            object_streams: HashMap::new(),
            ends_with_eol,
            inflated: 0,
        };
        let mut next = Some(startxref);
        let mut seen = HashSet::new();
        let mut first = true;
        while let Some(offset) = next {
            if !seen.insert(offset) || offset >= file_len || seen.len() > MAX_SECTIONS {
                return Err(err("malformed cross-reference chain"));
            }
            let (trailer, is_stream) = pdf.read_xref_section(offset)?;
            if first {
                pdf.trailer = trailer.clone();
                pdf.xref_stream = is_stream;
                first = false;
            }
            if let Some(Obj::Int(stm)) = trailer.get("XRefStm") {
                pdf.read_xref_section(*stm as u64)?;
            }
            next = match trailer.get("Prev") {
                Some(Obj::Int(p)) => Some(*p as u64),
                _ => None,
            };
        }
        // New objects are numbered from /Size, and never over an object in use.
        let highest = pdf.xref.keys().max().map_or(0, |n| i64::from(*n) + 1);
        pdf.size = match pdf.trailer.get("Size") {
            Some(Obj::Int(n)) if (1..=MAX_OBJECTS).contains(n) => (*n).max(highest) as u32,
            Some(Obj::Int(_)) => return Err(err("the trailer's /Size is out of range")),
            _ => return Err(err("the trailer has no /Size")),
        };
        if pdf.trailer.get("Encrypt").is_some() {
            return Err(err("encrypted PDFs cannot be signed by this version"));
        }
        Ok(pdf)
    }

    /// Parse one cross-reference section; entries already known (from newer sections) win.
    fn read_xref_section(&mut self, offset: u64) -> Result<(Dict, bool), PdfError> {
        let probe = read_at(&mut self.src, offset, 4).map_err(|e| err(format!("cannot read the PDF: {e}")))?;
        if probe == b"xref" {
            let mut window = 1 << 16;
            loop {
                let buf = read_at(&mut self.src, offset, window).map_err(|e| err(format!("cannot read the PDF: {e}")))?;
                let complete = offset + buf.len() as u64 >= self.file_len + self.appended;
                match parse_xref_table(&buf) {
                    Ok((entries, trailer)) => {
                        for (num, entry) in entries {
                            if i64::from(num) < MAX_OBJECTS {
                                self.xref.entry(num).or_insert(entry);
                            }
                        }
                        return Ok((trailer, false));
                    }
                    Err(ParseError::Truncated(_)) if !complete && window < MAX_OBJECT_WINDOW => {
                        window = (window * 4).min(MAX_OBJECT_WINDOW)
                    }
                    Err(ParseError::Truncated(_)) => return Err(err("truncated cross-reference table")),
                    Err(ParseError::Bad(m)) => return Err(err(format!("malformed cross-reference table: {m}"))),
                }
            }
        }
        let (_, _, obj, stream) = self.parse_indirect_at(offset)?;
        let (Obj::Dict(dict), Some(stream)) = (obj, stream) else { return Err(err("startxref does not point to a cross-reference")) };
        if !stream.dict.name_is("Type", "XRef") {
            return Err(err("startxref does not point to a cross-reference stream"));
        }
        let data = self.stream_data(&stream)?;
        let widths: Vec<usize> = match dict.get("W") {
            Some(Obj::Array(w)) if w.len() == 3 => w.iter().map(|x| if let Obj::Int(n) = x { *n as usize } else { 99 }).collect(),
            _ => return Err(err("malformed cross-reference stream /W")),
        };
        if widths.iter().any(|w| *w > 8) {
            return Err(err("malformed cross-reference stream /W"));
        }
        let size = match dict.get("Size") {
            Some(Obj::Int(n)) if (0..=MAX_OBJECTS).contains(n) => *n,
            _ => return Err(err("cross-reference stream without a usable /Size")),
        };
        let index: Vec<i64> = match dict.get("Index") {
            Some(Obj::Array(a)) => a.iter().map(|x| if let Obj::Int(n) = x { *n } else { 0 }).collect(),
            _ => vec![0, size],
        };
        let row = widths.iter().sum::<usize>();
        let field = |r: &[u8], i: usize| -> u64 {
            let start: usize = widths[..i].iter().sum();
            r[start..start + widths[i]].iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))
        };
        let mut rows = data.chunks_exact(row.max(1));
        for pair in index.chunks(2) {
            let [start, count] = pair else { break };
            if *start < 0 || *count < 0 || start.saturating_add(*count) > size {
                return Err(err("cross-reference stream /Index beyond /Size"));
            }
            for k in 0..*count {
                let Some(r) = rows.next() else { return Err(err("short cross-reference stream")) };
                let kind = if widths[0] == 0 { 1 } else { field(r, 0) };
                let num = (start + k) as u32;
                let entry = match kind {
                    1 => Entry::InFile { offset: field(r, 1), generation: field(r, 2) as u16 },
                    2 => Entry::InStream { stream: field(r, 1) as u32, index: field(r, 2) as u32 },
                    _ => continue,
                };
                self.xref.entry(num).or_insert(entry);
            }
        }
        Ok((dict, true))
    }

    /// `n g obj <object> [stream]` at `offset`.
    fn parse_indirect_at(&mut self, offset: u64) -> Result<(u32, u16, Obj, Option<StreamAt>), PdfError> {
        let mut window = 4096usize;
        loop {
            let buf = read_at(&mut self.src, offset, window).map_err(|e| err(format!("cannot read the PDF: {e}")))?;
            let complete = buf.len() < window;
            let mut lx = Lexer { b: &buf, pos: 0 };
            let parsed = (|| -> Parse<(u32, u16, Obj, Option<usize>)> {
                let Some(num) = lx.uint()? else { return bad("no object number") };
                let Some(generation) = lx.uint()? else { return bad("no generation number") };
                if !lx.keyword(b"obj")? {
                    return bad("no 'obj' keyword");
                }
                let obj = lx.object(0)?;
                let stream = if matches!(obj, Obj::Dict(_)) && lx.keyword(b"stream")? {
                    // §7.3.8.1: the keyword is followed by CRLF or LF.
                    if lx.peek()? == b'\r' {
                        lx.pos += 1;
                    }
                    if lx.peek()? == b'\n' {
                        lx.pos += 1;
                    }
                    Some(lx.pos)
                } else {
                    None
                };
                Ok((num as u32, generation as u16, obj, stream))
            })();
            match parsed {
                Ok((num, generation, obj, stream)) => {
                    let stream = match (&obj, stream) {
                        (Obj::Dict(d), Some(at)) => Some(StreamAt { dict: d.clone(), data: offset + at as u64 }),
                        _ => None,
                    };
                    return Ok((num, generation, obj, stream));
                }
                Err(ParseError::Truncated(_)) if !complete && window < MAX_OBJECT_WINDOW => window = (window * 8).min(MAX_OBJECT_WINDOW),
                Err(ParseError::Truncated(_)) => return Err(err(format!("truncated object at offset {offset}"))),
                Err(ParseError::Bad(m)) => return Err(err(format!("malformed object at offset {offset}: {m}"))),
            }
        }
    }

    /// A stream's decoded data (FlateDecode with PNG predictors, or unfiltered): used for
    /// cross-reference and object streams only, which are small.
    fn stream_data(&mut self, s: &StreamAt) -> Result<Vec<u8>, PdfError> {
        let length = match s.dict.get("Length") {
            Some(Obj::Int(n)) if *n >= 0 => *n as usize,
            // Only an object stored plainly in the file: one inside an object stream could lead
            // back here (a /Length inside the very stream being decoded).
            Some(Obj::Ref(n, _)) if matches!(self.xref.get(n), Some(Entry::InFile { .. })) && !self.changed.contains_key(n) => {
                match self.object(*n)? {
                    Obj::Int(l) if l >= 0 => l as usize,
                    _ => return Err(err("malformed stream /Length")),
                }
            }
            _ => return Err(err("stream without /Length")),
        };
        if length > MAX_OBJECT_WINDOW {
            return Err(err("stream too large for a cross-reference or object stream"));
        }
        let raw = read_at(&mut self.src, s.data, length).map_err(|e| err(format!("cannot read the PDF: {e}")))?;
        let filters: Vec<Vec<u8>> = match s.dict.get("Filter") {
            None => vec![],
            Some(Obj::Name(n)) => vec![n.clone()],
            Some(Obj::Array(a)) => a.iter().filter_map(|x| if let Obj::Name(n) = x { Some(n.clone()) } else { None }).collect(),
            _ => return Err(err("malformed stream /Filter")),
        };
        let mut data = raw;
        for f in &filters {
            if f != b"FlateDecode" {
                return Err(err(format!("unsupported filter /{} on a cross-reference or object stream", String::from_utf8_lossy(f))));
            }
            let budget = MAX_INFLATED.saturating_sub(self.inflated).min(MAX_OBJECT_WINDOW);
            data = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&data, budget)
                .map_err(|_| err("corrupt or oversized compressed stream"))?;
            self.inflated += data.len();
        }
        let parms = match s.dict.get("DecodeParms") {
            Some(Obj::Dict(d)) => Some(d.clone()),
            Some(Obj::Array(a)) => a.iter().find_map(|x| if let Obj::Dict(d) = x { Some(d.clone()) } else { None }),
            _ => None,
        };
        if let Some(p) = parms
            && let Some(Obj::Int(predictor)) = p.get("Predictor")
            && *predictor >= 10
        {
            let columns = match p.get("Columns") {
                None => 1,
                Some(Obj::Int(c)) if *c > 0 && (*c as u64) < data.len() as u64 => *c as usize,
                _ => return Err(err("malformed predictor /Columns")),
            };
            data = png_unpredict(&data, columns)?;
        }
        Ok(data)
    }

    /// The current version of object `num` (an update's, or the file's).
    pub fn object(&mut self, num: u32) -> Result<Obj, PdfError> {
        if let Some(o) = self.changed.get(&num) {
            return Ok(o.clone());
        }
        match self.xref.get(&num).copied() {
            None => Ok(Obj::Null),
            Some(Entry::InFile { offset, .. }) => {
                let (n, _, obj, _) = self.parse_indirect_at(offset)?;
                if n != num {
                    return Err(err(format!("the cross-reference points object {num} to object {n}")));
                }
                Ok(obj)
            }
            Some(Entry::InStream { stream, index }) => {
                if !self.object_streams.contains_key(&stream) {
                    let Some(Entry::InFile { offset, .. }) = self.xref.get(&stream).copied() else {
                        return Err(err("an object stream is not in the file"));
                    };
                    let (_, _, _, at) = self.parse_indirect_at(offset)?;
                    let at = at.ok_or_else(|| err("an object stream is not a stream"))?;
                    let first = match at.dict.get("First") {
                        Some(Obj::Int(f)) if *f >= 0 => *f as usize,
                        _ => return Err(err("object stream without /First")),
                    };
                    let count = match at.dict.get("N") {
                        Some(Obj::Int(n)) if (0..=MAX_OBJECTS).contains(n) => *n as usize,
                        _ => return Err(err("object stream without a usable /N")),
                    };
                    let data = self.stream_data(&at)?;
                    // Each header pair takes at least four bytes ("1 0 ").
                    if count > data.len() / 4 + 1 {
                        return Err(err("malformed object stream header"));
                    }
                    let mut lx = Lexer { b: &data, pos: 0 };
                    let mut table = Vec::with_capacity(count);
                    for _ in 0..count {
                        match (lx.uint(), lx.uint()) {
                            (Ok(Some(n)), Ok(Some(o))) if n < MAX_OBJECTS as u64 && o < data.len() as u64 => {
                                table.push((n as u32, first.saturating_add(o as usize)))
                            }
                            _ => return Err(err("malformed object stream header")),
                        }
                    }
                    if self.object_streams.len() >= MAX_CACHED_STREAMS {
                        self.object_streams.clear();
                    }
                    self.object_streams.insert(stream, (data, table));
                }
                let (data, table) = &self.object_streams[&stream];
                let &(n, start) = table.get(index as usize).ok_or_else(|| err("object stream index out of range"))?;
                if n != num {
                    return Err(err("the cross-reference disagrees with an object stream"));
                }
                // Up to the next object (offsets ascend, §7.5.7), and a trailing space lets the
                // lexer see the end of a final token.
                let end = table.get(index as usize + 1).map_or(data.len(), |&(_, next)| next).clamp(start, data.len());
                let mut tail = data.get(start..end).ok_or_else(|| err("object stream offset out of range"))?.to_vec();
                tail.push(b' ');
                let mut lx = Lexer { b: &tail, pos: 0 };
                lx.object(0).map_err(|_| err(format!("malformed object {num} in an object stream")))
            }
        }
    }

    /// Objects whose current definition lies at or after `offset` in the file (written by an
    /// incremental update from there on): what a validator compares with the signed revision.
    pub fn objects_defined_after(&self, offset: u64) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .xref
            .iter()
            .filter(|(_, e)| match e {
                Entry::InFile { offset: o, .. } => *o >= offset,
                Entry::InStream { stream, .. } => matches!(self.xref.get(stream), Some(Entry::InFile { offset: o, .. }) if *o >= offset),
            })
            .map(|(n, _)| *n)
            .collect();
        out.sort_unstable();
        out
    }

    /// The decoded data of stream object `num` (unfiltered or FlateDecode; bounded like the
    /// cross-reference streams): what a validator reads from a DSS.
    pub fn stream(&mut self, num: u32) -> Result<Vec<u8>, PdfError> {
        let Some(Entry::InFile { offset, .. }) = self.xref.get(&num).copied() else {
            return Err(err(format!("object {num} is not a stream in the file")));
        };
        let (_, _, _, at) = self.parse_indirect_at(offset)?;
        let at = at.ok_or_else(|| err(format!("object {num} is not a stream")))?;
        self.stream_data(&at)
    }

    /// Follow a reference (one level).
    pub fn resolve(&mut self, obj: &Obj) -> Result<Obj, PdfError> {
        match obj {
            Obj::Ref(n, _) => self.object(*n),
            other => Ok(other.clone()),
        }
    }

    /// The trailer of the newest section.
    pub fn trailer(&self) -> &Dict {
        &self.trailer
    }

    /// Total length so far: the original file and the updates appended.
    pub fn len(&self) -> u64 {
        self.file_len + self.appended
    }

    /// Never empty (a PDF has a header).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The catalog's object number and dictionary.
    pub fn catalog(&mut self) -> Result<(u32, Dict), PdfError> {
        let Some(Obj::Ref(n, _)) = self.trailer.get("Root").cloned() else { return Err(err("the trailer has no /Root")) };
        match self.object(n)? {
            Obj::Dict(d) => Ok((n, d)),
            _ => Err(err("the catalog is not a dictionary")),
        }
    }

    /// The first page's object number and dictionary (walking the page tree, §7.7.3).
    pub fn first_page(&mut self) -> Result<(u32, Dict), PdfError> {
        let (_, catalog) = self.catalog()?;
        let mut node = catalog.get("Pages").cloned().ok_or_else(|| err("the catalog has no /Pages"))?;
        for _ in 0..64 {
            let Obj::Ref(n, _) = node else { return Err(err("malformed page tree")) };
            let Obj::Dict(d) = self.object(n)? else { return Err(err("malformed page tree")) };
            if d.name_is("Type", "Page") || d.get("Kids").is_none() {
                return Ok((n, d));
            }
            let kids = match d.get("Kids") {
                Some(k) => self.resolve(&k.clone())?,
                None => Obj::Null,
            };
            node = match kids {
                Obj::Array(k) if !k.is_empty() => k[0].clone(),
                _ => return Err(err("the document has no pages")),
            };
        }
        Err(err("page tree too deep"))
    }

    /// The number of pages: the page tree root's `/Count` (§7.7.3.2).
    pub fn page_count(&mut self) -> Result<u32, PdfError> {
        let (_, catalog) = self.catalog()?;
        let root = catalog.get("Pages").cloned().ok_or_else(|| err("the catalog has no /Pages"))?;
        let Obj::Dict(root) = self.resolve(&root)? else { return Err(err("malformed page tree")) };
        self.count_of(&root)
    }

    /// Page `number` (1-based, as viewers number pages), found by the `/Count` of each page tree
    /// node (§7.7.3.2), with the boxes it inherits (§7.7.3.4).
    pub fn page(&mut self, number: u32) -> Result<Page, PdfError> {
        let count = self.page_count()?;
        if number == 0 || number > count {
            let s = if count == 1 { "" } else { "s" };
            return Err(err(format!("there is no page {number}: the document has {count} page{s}, numbered from 1")));
        }
        let mut index = number - 1;
        let (_, catalog) = self.catalog()?;
        let mut node = catalog.get("Pages").cloned().ok_or_else(|| err("the catalog has no /Pages"))?;
        let (mut media_box, mut crop_box) = (None, None);
        for _ in 0..64 {
            let Obj::Ref(n, _) = node else { return Err(err("malformed page tree")) };
            let Obj::Dict(d) = self.object(n)? else { return Err(err("malformed page tree")) };
            // Table 30: MediaBox and CropBox are inheritable; the nearest node's wins.
            if let Some(b) = d.get("MediaBox").cloned() {
                media_box = Some(self.rectangle(&b)?);
            }
            if let Some(b) = d.get("CropBox").cloned() {
                crop_box = Some(self.rectangle(&b)?);
            }
            let Some(kids) = d.get("Kids").cloned().filter(|_| !d.name_is("Type", "Page")) else {
                if index != 0 {
                    return Err(err("the page tree's /Count disagrees with its pages"));
                }
                // MediaBox is required; a page without one is shown as US Letter, as viewers do.
                let media_box = media_box.unwrap_or([0.0, 0.0, 612.0, 792.0]);
                // §14.11.2: the crop box is clipped to the media box; by default it is the media box.
                let crop_box = match crop_box {
                    Some(c) => [c[0].max(media_box[0]), c[1].max(media_box[1]), c[2].min(media_box[2]), c[3].min(media_box[3])],
                    None => media_box,
                };
                return Ok(Page { num: n, dict: d, media_box, crop_box });
            };
            let Obj::Array(kids) = self.resolve(&kids)? else { return Err(err("malformed page tree")) };
            let mut next = None;
            for kid in kids {
                let Obj::Ref(k, _) = kid else { return Err(err("malformed page tree")) };
                let Obj::Dict(kd) = self.object(k)? else { return Err(err("malformed page tree")) };
                let c = if kd.name_is("Type", "Page") || kd.get("Kids").is_none() { 1 } else { self.count_of(&kd)? };
                if index < c {
                    next = Some(kid);
                    break;
                }
                index -= c;
            }
            node = next.ok_or_else(|| err("the page tree's /Count disagrees with its pages"))?;
        }
        Err(err("page tree too deep"))
    }

    /// A page tree node's `/Count`.
    fn count_of(&mut self, node: &Dict) -> Result<u32, PdfError> {
        let count = match node.get("Count").cloned() {
            Some(c) => self.resolve(&c)?,
            None => Obj::Null,
        };
        match count {
            Obj::Int(c) if (0..=MAX_OBJECTS).contains(&c) => Ok(c as u32),
            _ => Err(err("the page tree has no usable /Count")),
        }
    }

    /// A rectangle (§7.9.5), normalized to `[llx lly urx ury]`.
    fn rectangle(&mut self, obj: &Obj) -> Result<[f64; 4], PdfError> {
        let Obj::Array(items) = self.resolve(obj)? else { return Err(err("a page box is not an array")) };
        let mut v = [0.0; 4];
        if items.len() != 4 {
            return Err(err("a page box does not have four numbers"));
        }
        for (slot, item) in v.iter_mut().zip(&items) {
            *slot = match self.resolve(item)? {
                Obj::Int(i) => i as f64,
                Obj::Real(r) => r.parse().map_err(|_| err("a page box holds a malformed number"))?,
                _ => return Err(err("a page box holds something other than a number")),
            };
        }
        Ok([v[0].min(v[2]), v[1].min(v[3]), v[0].max(v[2]), v[1].max(v[3])])
    }
}

/// A page of the document (§7.7.3.3) and the boxes it has or inherits.
#[derive(Debug, Clone)]
pub struct Page {
    /// Its object number.
    pub num: u32,
    /// Its dictionary.
    pub dict: Dict,
    /// The media box `[llx lly urx ury]` (§14.11.2).
    pub media_box: [f64; 4],
    /// The crop box, the region a viewer shows (the media box when absent), clipped to it.
    pub crop_box: [f64; 4],
}

/// Undo PNG predictors (§7.4.4.4, predictors 10–15: a filter-type byte per row).
fn png_unpredict(data: &[u8], columns: usize) -> Result<Vec<u8>, PdfError> {
    let stride = columns + 1;
    if !data.len().is_multiple_of(stride) {
        return Err(err("malformed predictor data"));
    }
    let mut out = Vec::with_capacity(data.len() / stride * columns);
    let mut prev = vec![0u8; columns];
    for row in data.chunks_exact(stride) {
        let (kind, src) = (row[0], &row[1..]);
        let mut cur = vec![0u8; columns];
        for i in 0..columns {
            let left = if i > 0 { cur[i - 1] } else { 0 };
            let up = prev[i];
            let up_left = if i > 0 { prev[i - 1] } else { 0 };
            cur[i] = src[i].wrapping_add(match kind {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => {
                    let p = i16::from(left) + i16::from(up) - i16::from(up_left);
                    let (pa, pb, pc) = ((p - i16::from(left)).abs(), (p - i16::from(up)).abs(), (p - i16::from(up_left)).abs());
                    if pa <= pb && pa <= pc {
                        left
                    } else if pb <= pc {
                        up
                    } else {
                        up_left
                    }
                }
                _ => return Err(err("unknown PNG predictor")),
            });
        }
        out.extend_from_slice(&cur);
        prev = cur;
    }
    Ok(out)
}

/// The entries and trailer of a classic cross-reference table (§7.5.4, §7.5.5).
fn parse_xref_table(buf: &[u8]) -> Parse<(Vec<(u32, Entry)>, Dict)> {
    let mut lx = Lexer { b: buf, pos: 0 };
    if !lx.keyword(b"xref")? {
        return bad("no xref keyword");
    }
    let mut entries = Vec::new();
    loop {
        if lx.keyword(b"trailer")? {
            let Obj::Dict(trailer) = lx.object(0)? else { return bad("the trailer is not a dictionary") };
            return Ok((entries, trailer));
        }
        let (Some(start), Some(count)) = (lx.uint()?, lx.uint()?) else { return bad("malformed subsection header") };
        for k in 0..count {
            let (Some(offset), Some(generation)) = (lx.uint()?, lx.uint()?) else { return bad("malformed entry") };
            lx.skip_ws()?;
            let kind = lx.peek()?;
            lx.pos += 1;
            if kind == b'n' && start.saturating_add(k) < MAX_OBJECTS as u64 {
                entries.push(((start + k) as u32, Entry::InFile { offset, generation: generation as u16 }));
            } else if kind != b'f' {
                return bad("malformed entry type");
            }
        }
    }
}

fn read_at<R: Read + Seek>(src: &mut R, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    src.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len.min(1 << 20));
    src.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn read_exact_at<R: Read + Seek>(src: &mut R, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    src.seek(SeekFrom::Start(offset))?;
    src.read_exact(buf)
}

/// A reader over the first `len` bytes of another: a PDF as it was at an earlier revision
/// (incremental updates only append).
pub struct Prefix<R> {
    inner: R,
    len: u64,
    pos: u64,
}

impl<R: Read + Seek> Prefix<R> {
    /// The first `len` bytes of `inner`.
    pub fn new(inner: R, len: u64) -> Self {
        Prefix { inner, len, pos: 0 }
    }
}

impl<R: Read + Seek> Read for Prefix<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(left as usize);
        self.inner.seek(SeekFrom::Start(self.pos))?;
        let n = self.inner.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Prefix<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(o) => Some(o),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file whose only cross-reference section is the stream `dict` (empty data).
    fn xref_stream_only(dict: &str) -> Vec<u8> {
        let mut out = b"%PDF-1.7\n".to_vec();
        let at = out.len();
        out.extend_from_slice(format!("1 0 obj\n{dict}\nstream\n\nendstream\nendobj\nstartxref\n{at}\n%%EOF\n").as_bytes());
        out
    }

    use cloudsign_test_support::pdf::pdf_of as file_of;

    #[test]
    fn pages_are_found_by_number_with_inherited_boxes() {
        let bytes = file_of(&[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 3 /MediaBox [0 0 600 800] >>",
            "<< /Type /Page /Parent 2 0 R >>",
            "<< /Type /Pages /Parent 2 0 R /Kids [5 0 R 6 0 R] /Count 2 /CropBox [10 10.5 500 700] >>",
            "<< /Type /Page /Parent 4 0 R /MediaBox [300 400 0 0] >>",
            "<< /Type /Page /Parent 4 0 R >>",
        ]);
        let mut pdf = Pdf::open(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(pdf.page_count().unwrap(), 3);
        let first = pdf.page(1).unwrap();
        assert_eq!((first.num, first.media_box, first.crop_box), (3, [0.0, 0.0, 600.0, 800.0], [0.0, 0.0, 600.0, 800.0]));
        // Its own media box (normalized), the inherited crop box clipped to it.
        let second = pdf.page(2).unwrap();
        assert_eq!((second.num, second.media_box, second.crop_box), (5, [0.0, 0.0, 300.0, 400.0], [10.0, 10.5, 300.0, 400.0]));
        let third = pdf.page(3).unwrap();
        assert_eq!((third.num, third.crop_box), (6, [10.0, 10.5, 500.0, 700.0]));
        for bad in [0, 4] {
            let e = pdf.page(bad).unwrap_err();
            assert!(e.message().contains("the document has 3 pages"), "{e}");
        }
        // A tree whose /Count lies is refused, not followed.
        let lying = file_of(&["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 2 >>", "<< /Type /Page >>"]);
        let mut pdf = Pdf::open(std::io::Cursor::new(lying)).unwrap();
        assert!(pdf.page(2).is_err());
    }

    #[test]
    fn hostile_cross_reference_streams_are_refused_not_obeyed() {
        // A predictor row width that would size a terabyte allocation.
        let columns = xref_stream_only("<</Type/XRef/Size 2/W[1 1 1]/Length 0/DecodeParms<</Predictor 12/Columns 1099511627776>>>>");
        assert!(Pdf::open(std::io::Cursor::new(columns)).is_err());
        // Object numbers beyond the format's limit.
        let size = xref_stream_only("<</Type/XRef/Size 4294967295/W[1 1 1]/Length 0/Root 1 0 R>>");
        assert!(Pdf::open(std::io::Cursor::new(size)).is_err());
        let index = xref_stream_only("<</Type/XRef/Size 2/Index[0 67108864]/W[0 0 0]/Length 0/Root 1 0 R>>");
        assert!(Pdf::open(std::io::Cursor::new(index)).is_err());
        // A /Length that is not a plain object of the file.
        let length = xref_stream_only("<</Type/XRef/Size 2/W[1 1 1]/Length 7 0 R/Root 1 0 R>>");
        assert!(Pdf::open(std::io::Cursor::new(length)).is_err());
    }

    #[test]
    fn png_up_predictor() {
        let data = [2, 1, 2, 2, 1, 1];
        assert_eq!(png_unpredict(&data, 2).unwrap(), vec![1, 2, 2, 3]);
    }

    #[test]
    fn not_a_pdf_is_refused() {
        assert!(Pdf::open(std::io::Cursor::new(b"hello world".to_vec())).is_err());
        let mut broken = cloudsign_test_support::pdf::one_page_pdf("reader");
        let n = broken.len();
        broken.truncate(n - 20);
        assert!(Pdf::open(std::io::Cursor::new(broken)).is_err());
    }
}
