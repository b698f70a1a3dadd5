//! A minimal PDF reader and incremental-update writer (ISO 32000-1 §7), enough to add a
//! signature to any PDF without loading it: the reader seeks to the few objects a signature
//! touches (trailer, catalog, AcroForm, first page), from classic cross-reference tables, xref
//! streams, hybrid files and object streams. The original bytes are never rewritten: an
//! incremental update (§7.5.6) appends the new and changed objects, so existing signatures
//! stay valid and memory does not grow with the file.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};

use crate::AdesError;

fn err(msg: impl Into<String>) -> AdesError {
    AdesError::Pdf(msg.into())
}

/// A PDF object (§7.3). Strings keep their bytes; reals keep their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A real number, as written.
    Real(String),
    /// A name, decoded (without `/`).
    Name(Vec<u8>),
    /// A string's bytes (literal or hexadecimal).
    Str(Vec<u8>),
    /// An array.
    Array(Vec<Obj>),
    /// A dictionary.
    Dict(Dict),
    /// An indirect reference.
    Ref(u32, u16),
}

/// A dictionary, in its original key order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dict(pub Vec<(Vec<u8>, Obj)>);

impl Dict {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Obj> {
        self.0.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v)
    }

    /// Set `key` (replacing, or appending).
    pub fn set(&mut self, key: &str, value: Obj) {
        match self.0.iter_mut().find(|(k, _)| k == key.as_bytes()) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.as_bytes().to_vec(), value)),
        }
    }

    /// Whether `key` names `/value`.
    pub fn name_is(&self, key: &str, value: &str) -> bool {
        matches!(self.get(key), Some(Obj::Name(n)) if n == value.as_bytes())
    }
}

impl Obj {
    /// A name object.
    pub fn name(n: &str) -> Obj {
        Obj::Name(n.as_bytes().to_vec())
    }

    /// Serialize (§7.3): strings as hexadecimal strings, which need no escaping.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Obj::Null => out.extend_from_slice(b"null"),
            Obj::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Obj::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Obj::Real(r) => out.extend_from_slice(r.as_bytes()),
            Obj::Name(n) => {
                out.push(b'/');
                for &c in n {
                    // §7.3.5: delimiters, whitespace, '#' and non-printables as #xx.
                    if c <= b' ' || c >= 0x7f || c == b'#' || is_delimiter(c) {
                        out.extend_from_slice(format!("#{c:02X}").as_bytes());
                    } else {
                        out.push(c);
                    }
                }
            }
            Obj::Str(s) => {
                out.push(b'<');
                out.extend_from_slice(hex_upper(s).as_bytes());
                out.push(b'>');
            }
            Obj::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Obj::Dict(d) => {
                out.extend_from_slice(b"<<");
                for (k, v) in &d.0 {
                    Obj::Name(k.clone()).write(out);
                    out.push(b' ');
                    v.write(out);
                }
                out.extend_from_slice(b">>");
            }
            Obj::Ref(n, g) => out.extend_from_slice(format!("{n} {g} R").as_bytes()),
        }
    }
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, 0 | 9 | 10 | 12 | 13 | 32)
}

fn is_delimiter(c: u8) -> bool {
    matches!(c, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

/// Parsing ran off the end of the bytes read so far: read more and retry.
struct Truncated;

type Parse<T> = Result<T, ParseError>;

enum ParseError {
    Truncated(Truncated),
    Bad(String),
}

fn bad<T>(msg: &str) -> Parse<T> {
    Err(ParseError::Bad(msg.to_string()))
}

/// A tokenizer and object parser over a window of the file.
struct Lexer<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Parse<u8> {
        self.b.get(self.pos).copied().ok_or(ParseError::Truncated(Truncated))
    }

    fn skip_ws(&mut self) -> Parse<()> {
        loop {
            let c = self.peek()?;
            if is_whitespace(c) {
                self.pos += 1;
            } else if c == b'%' {
                while !matches!(self.peek()?, b'\r' | b'\n') {
                    self.pos += 1;
                }
            } else {
                return Ok(());
            }
        }
    }

    /// A run of regular characters.
    fn regular(&mut self) -> Parse<&'a [u8]> {
        let start = self.pos;
        while let Some(&c) = self.b.get(self.pos) {
            if is_whitespace(c) || is_delimiter(c) {
                break;
            }
            self.pos += 1;
        }
        if self.pos == self.b.len() {
            return Err(ParseError::Truncated(Truncated));
        }
        Ok(&self.b[start..self.pos])
    }

    fn keyword(&mut self, word: &[u8]) -> Parse<bool> {
        self.skip_ws()?;
        let save = self.pos;
        if self.regular()? == word {
            Ok(true)
        } else {
            self.pos = save;
            Ok(false)
        }
    }

    fn uint(&mut self) -> Parse<Option<u64>> {
        self.skip_ws()?;
        let save = self.pos;
        let tok = self.regular()?;
        match std::str::from_utf8(tok).ok().and_then(|t| t.parse::<u64>().ok()) {
            Some(n) if !tok.is_empty() && tok.iter().all(u8::is_ascii_digit) => Ok(Some(n)),
            _ => {
                self.pos = save;
                Ok(None)
            }
        }
    }

    fn object(&mut self, depth: usize) -> Parse<Obj> {
        if depth > 64 {
            return bad("objects nested too deeply");
        }
        self.skip_ws()?;
        let c = self.peek()?;
        match c {
            b'/' => {
                self.pos += 1;
                let raw = self.regular()?;
                let mut name = Vec::with_capacity(raw.len());
                let mut i = 0;
                while i < raw.len() {
                    if raw[i] == b'#'
                        && i + 3 <= raw.len()
                        && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&raw[i + 1..i + 3]).unwrap_or("zz"), 16)
                    {
                        name.push(v);
                        i += 3;
                        continue;
                    }
                    name.push(raw[i]);
                    i += 1;
                }
                Ok(Obj::Name(name))
            }
            b'(' => self.literal_string().map(Obj::Str),
            b'<' if self.b.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                let mut d = Dict::default();
                loop {
                    self.skip_ws()?;
                    if self.peek()? == b'>' {
                        match self.b.get(self.pos + 1) {
                            Some(b'>') => {}
                            Some(_) => return bad("malformed dictionary end"),
                            None => return Err(ParseError::Truncated(Truncated)),
                        }
                        self.pos += 2;
                        return Ok(Obj::Dict(d));
                    }
                    let Obj::Name(key) = self.object(depth + 1)? else { return bad("a dictionary key is not a name") };
                    let value = self.object(depth + 1)?;
                    d.0.push((key, value));
                }
            }
            b'<' => {
                self.pos += 1;
                let mut digits = Vec::new();
                loop {
                    let c = self.peek()?;
                    self.pos += 1;
                    match c {
                        b'>' => break,
                        c if c.is_ascii_hexdigit() => digits.push(c),
                        c if is_whitespace(c) => {}
                        _ => return bad("malformed hexadecimal string"),
                    }
                }
                if digits.len() % 2 == 1 {
                    digits.push(b'0');
                }
                Ok(Obj::Str(
                    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("00"), 16).unwrap_or(0)).collect(),
                ))
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws()?;
                    if self.peek()? == b']' {
                        self.pos += 1;
                        return Ok(Obj::Array(items));
                    }
                    items.push(self.object(depth + 1)?);
                }
            }
            b'0'..=b'9' | b'+' | b'-' | b'.' => {
                let tok = self.regular()?;
                let text = std::str::from_utf8(tok).map_err(|_| ParseError::Bad("malformed number".into()))?;
                if let Ok(n) = text.parse::<i64>() {
                    // `n g R`: an indirect reference.
                    if n >= 0 && tok.iter().all(u8::is_ascii_digit) {
                        let save = self.pos;
                        if let Some(g) = self.uint()?
                            && self.keyword(b"R")?
                        {
                            return Ok(Obj::Ref(n as u32, g as u16));
                        }
                        self.pos = save;
                    }
                    Ok(Obj::Int(n))
                } else if text.parse::<f64>().is_ok() {
                    Ok(Obj::Real(text.to_string()))
                } else {
                    bad("malformed number")
                }
            }
            _ => match self.regular()? {
                b"true" => Ok(Obj::Bool(true)),
                b"false" => Ok(Obj::Bool(false)),
                b"null" => Ok(Obj::Null),
                _ => bad("unexpected token"),
            },
        }
    }

    /// §7.3.4.2: balanced parentheses, backslash escapes, octal codes, line continuations.
    fn literal_string(&mut self) -> Parse<Vec<u8>> {
        self.pos += 1;
        let mut out = Vec::new();
        let mut depth = 1;
        loop {
            let c = self.peek()?;
            self.pos += 1;
            match c {
                b'(' => {
                    depth += 1;
                    out.push(c);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                    out.push(c);
                }
                b'\\' => {
                    let e = self.peek()?;
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek()? {
                                    d @ b'0'..=b'7' => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push(v as u8);
                        }
                        b'\r' => {
                            if self.peek()? == b'\n' {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        other => out.push(other),
                    }
                }
                _ => out.push(c),
            }
        }
    }
}

/// Where an object lives (§7.5.4, §7.5.8.3).
#[derive(Debug, Clone, Copy)]
enum Entry {
    InFile { offset: u64, generation: u16 },
    InStream { stream: u32, index: u32 },
}

/// An open PDF: the merged cross-reference, the trailer, and the objects changed by the
/// updates written so far (which the reader sees instead of the file's versions).
pub struct Pdf<R> {
    src: R,
    /// Length of the original file.
    file_len: u64,
    /// Offset (in the whole output) of the newest cross-reference section.
    last_xref: u64,
    /// Bytes appended so far by updates.
    appended: u64,
    xref: HashMap<u32, Entry>,
    trailer: Dict,
    xref_stream: bool,
    size: u32,
    changed: HashMap<u32, Obj>,
    object_streams: HashMap<u32, ObjectStream>,
    ends_with_eol: bool,
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
const MAX_OBJECTS: i64 = 8_388_607;
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
    pub fn open(mut src: R) -> Result<Pdf<R>, AdesError> {
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
    fn read_xref_section(&mut self, offset: u64) -> Result<(Dict, bool), AdesError> {
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
    fn parse_indirect_at(&mut self, offset: u64) -> Result<(u32, u16, Obj, Option<StreamAt>), AdesError> {
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
    fn stream_data(&mut self, s: &StreamAt) -> Result<Vec<u8>, AdesError> {
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
    pub fn object(&mut self, num: u32) -> Result<Obj, AdesError> {
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
    pub fn stream(&mut self, num: u32) -> Result<Vec<u8>, AdesError> {
        let Some(Entry::InFile { offset, .. }) = self.xref.get(&num).copied() else {
            return Err(err(format!("object {num} is not a stream in the file")));
        };
        let (_, _, _, at) = self.parse_indirect_at(offset)?;
        let at = at.ok_or_else(|| err(format!("object {num} is not a stream")))?;
        self.stream_data(&at)
    }

    /// Follow a reference (one level).
    pub fn resolve(&mut self, obj: &Obj) -> Result<Obj, AdesError> {
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
    pub fn catalog(&mut self) -> Result<(u32, Dict), AdesError> {
        let Some(Obj::Ref(n, _)) = self.trailer.get("Root").cloned() else { return Err(err("the trailer has no /Root")) };
        match self.object(n)? {
            Obj::Dict(d) => Ok((n, d)),
            _ => Err(err("the catalog is not a dictionary")),
        }
    }

    /// The first page's object number and dictionary (walking the page tree, §7.7.3).
    pub fn first_page(&mut self) -> Result<(u32, Dict), AdesError> {
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

    /// A new object number.
    pub fn allocate(&mut self) -> u32 {
        // /Size is at most MAX_OBJECTS (checked at open): far from u32::MAX.
        self.size += 1;
        self.size - 1
    }

    /// The generation number of object `num` (0 for new objects).
    pub fn generation(&self, num: u32) -> u16 {
        match self.xref.get(&num) {
            Some(Entry::InFile { generation, .. }) => *generation,
            _ => 0,
        }
    }

    /// Start an incremental update.
    pub fn update(&self) -> Update {
        let mut body = Vec::new();
        if self.appended == 0 && !self.ends_with_eol {
            body.push(b'\n');
        }
        let generations = self
            .xref
            .iter()
            .filter_map(|(n, e)| match e {
                Entry::InFile { generation, .. } if *generation != 0 => Some((*n, *generation)),
                _ => None,
            })
            .collect();
        Update { base: self.len(), body, offsets: Vec::new(), generations }
    }

    /// Close `update`: its cross-reference section (of the file's kind) and trailer go at the
    /// end; the objects it wrote become the current versions. Returns the update's bytes.
    pub fn finish(&mut self, mut update: Update, changed: Vec<(u32, Obj)>) -> Vec<u8> {
        let xref_offset = update.base + update.body.len() as u64;
        let mut trailer = Dict::default();
        for key in ["Root", "Info", "ID"] {
            if let Some(v) = self.trailer.get(key) {
                trailer.set(key, v.clone());
            }
        }
        update.offsets.sort_unstable();
        let generation = |n: u32| update.generations.get(&n).copied().unwrap_or(0);
        if self.xref_stream {
            // §7.5.8: an uncompressed cross-reference stream; it lists itself too.
            let own = self.allocate();
            update.offsets.push((own, xref_offset));
            let mut data = Vec::new();
            let mut index = Vec::new();
            for group in contiguous(&update.offsets) {
                index.push(Obj::Int(i64::from(group[0].0)));
                index.push(Obj::Int(group.len() as i64));
                for (n, off) in group {
                    data.push(1);
                    data.extend_from_slice(&off.to_be_bytes()[3..]);
                    data.extend_from_slice(&generation(*n).to_be_bytes());
                }
            }
            trailer.set("Type", Obj::name("XRef"));
            trailer.set("Size", Obj::Int(i64::from(self.size)));
            trailer.set("Index", Obj::Array(index));
            trailer.set("W", Obj::Array(vec![Obj::Int(1), Obj::Int(5), Obj::Int(2)]));
            trailer.set("Prev", Obj::Int(self.last_xref as i64));
            trailer.set("Length", Obj::Int(data.len() as i64));
            update.body.extend_from_slice(format!("{own} 0 obj\n").as_bytes());
            Obj::Dict(trailer.clone()).write(&mut update.body);
            update.body.extend_from_slice(b"\nstream\n");
            update.body.extend_from_slice(&data);
            update.body.extend_from_slice(b"\nendstream\nendobj\n");
        } else {
            update.body.extend_from_slice(b"xref\n");
            for group in contiguous(&update.offsets) {
                update.body.extend_from_slice(format!("{} {}\n", group[0].0, group.len()).as_bytes());
                for (n, off) in group {
                    update.body.extend_from_slice(format!("{off:010} {:05} n\r\n", generation(*n)).as_bytes());
                }
            }
            trailer.set("Size", Obj::Int(i64::from(self.size)));
            trailer.set("Prev", Obj::Int(self.last_xref as i64));
            update.body.extend_from_slice(b"trailer\n");
            Obj::Dict(trailer.clone()).write(&mut update.body);
            update.body.push(b'\n');
        }
        update.body.extend_from_slice(format!("startxref\n{xref_offset}\n%%EOF\n").as_bytes());
        self.last_xref = xref_offset;
        self.appended += update.body.len() as u64;
        for (n, o) in changed {
            self.changed.insert(n, o);
        }
        update.body
    }
}

/// Runs of consecutive object numbers, for cross-reference subsections.
fn contiguous(offsets: &[(u32, u64)]) -> Vec<&[(u32, u64)]> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=offsets.len() {
        if i == offsets.len() || offsets[i].0 != offsets[i - 1].0 + 1 {
            if start < i {
                groups.push(&offsets[start..i]);
            }
            start = i;
        }
    }
    groups
}

/// An incremental update being written.
pub struct Update {
    base: u64,
    /// The update's bytes so far.
    pub body: Vec<u8>,
    offsets: Vec<(u32, u64)>,
    /// Existing objects with a generation other than 0: a new version keeps it (§7.5.6).
    generations: HashMap<u32, u16>,
}

impl Update {
    /// Append object `num` (generation 0), returning where its serialization starts in `body`.
    pub fn object(&mut self, num: u32, obj: &Obj) -> usize {
        let at = self.body.len();
        self.offsets.push((num, self.base + at as u64));
        let generation = self.generations.get(&num).copied().unwrap_or(0);
        self.body.extend_from_slice(format!("{num} {generation} obj\n").as_bytes());
        let start = self.body.len();
        obj.write(&mut self.body);
        self.body.extend_from_slice(b"\nendobj\n");
        start
    }

    /// Append an object already serialized (with its `n 0 obj` and `endobj`), returning where
    /// it starts in `body`.
    pub fn raw_object(&mut self, num: u32, bytes: &[u8]) -> usize {
        let at = self.body.len();
        self.offsets.push((num, self.base + at as u64));
        self.body.extend_from_slice(bytes);
        at
    }

    /// Append a stream object with unfiltered `data`.
    pub fn stream(&mut self, num: u32, mut dict: Dict, data: &[u8]) {
        self.offsets.push((num, self.base + self.body.len() as u64));
        dict.set("Length", Obj::Int(data.len() as i64));
        self.body.extend_from_slice(format!("{num} 0 obj\n").as_bytes());
        Obj::Dict(dict).write(&mut self.body);
        self.body.extend_from_slice(b"\nstream\n");
        self.body.extend_from_slice(data);
        self.body.extend_from_slice(b"\nendstream\nendobj\n");
    }

    /// Where the update starts in the whole file.
    pub fn base(&self) -> u64 {
        self.base
    }
}

/// Undo PNG predictors (§7.4.4.4, predictors 10–15: a filter-type byte per row).
fn png_unpredict(data: &[u8], columns: usize) -> Result<Vec<u8>, AdesError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Obj {
        let t = format!("{text} ");
        let mut lx = Lexer { b: t.as_bytes(), pos: 0 };
        match lx.object(0) {
            Ok(o) => o,
            Err(_) => panic!("cannot parse {text}"),
        }
    }

    #[test]
    fn objects_parse_and_serialize() {
        assert_eq!(parse("12 0 R"), Obj::Ref(12, 0));
        assert_eq!(parse("[1 2 R 3]"), Obj::Array(vec![Obj::Ref(1, 2), Obj::Int(3)]));
        assert_eq!(parse("(a\\(b\\)c\\101\\\nd)"), Obj::Str(b"a(b)cAd".to_vec()));
        assert_eq!(parse("<41 42 4>"), Obj::Str(b"AB@".to_vec()));
        assert_eq!(parse("/A#20B"), Obj::Name(b"A B".to_vec()));
        assert_eq!(parse("-1.5"), Obj::Real("-1.5".into()));
        let d = parse("<</Type/Page/Kids[1 0 R]%comment\n/N null>>");
        let mut out = Vec::new();
        d.write(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "<</Type /Page/Kids [1 0 R]/N null>>");
        let mut out = Vec::new();
        Obj::Name(b"A B#".to_vec()).write(&mut out);
        assert_eq!(out, b"/A#20B#23");
    }

    /// A file whose only cross-reference section is the stream `dict` (empty data).
    fn xref_stream_only(dict: &str) -> Vec<u8> {
        let mut out = b"%PDF-1.7\n".to_vec();
        let at = out.len();
        out.extend_from_slice(format!("1 0 obj\n{dict}\nstream\n\nendstream\nendobj\nstartxref\n{at}\n%%EOF\n").as_bytes());
        out
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
    fn deep_nesting_and_runaway_strings_are_errors() {
        // 100,000 nested arrays: refused at the depth limit, no stack overflow.
        let deep = format!("{}{} ", "[".repeat(100_000), "]".repeat(100_000));
        assert!(Lexer { b: deep.as_bytes(), pos: 0 }.object(0).is_err());
        let dicts = format!("{}{} ", "<</A ".repeat(10_000), ">>".repeat(10_000));
        assert!(Lexer { b: dicts.as_bytes(), pos: 0 }.object(0).is_err());
        // An unterminated string or dictionary asks for more input instead of running off.
        assert!(matches!(Lexer { b: b"(abc", pos: 0 }.object(0), Err(ParseError::Truncated(_))));
        assert!(matches!(Lexer { b: b"<</A 1", pos: 0 }.object(0), Err(ParseError::Truncated(_))));
    }

    #[test]
    fn png_up_predictor() {
        let data = [2, 1, 2, 2, 1, 1];
        assert_eq!(png_unpredict(&data, 2).unwrap(), vec![1, 2, 2, 3]);
    }

    #[test]
    fn consecutive_numbers_form_subsections() {
        let offsets = [(3, 10), (4, 20), (7, 30)];
        let groups = contiguous(&offsets);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 2);
    }
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
