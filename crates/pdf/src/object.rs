//! PDF objects (ISO 32000-1 §7.3): the object model, its serialization, and the lexer that
//! parses objects from a window of the file.

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

    /// A text string (§7.9.2.2): the bytes themselves when printable ASCII (which
    /// PDFDocEncoding shares), else UTF-16BE after the byte order mark.
    pub fn text(s: &str) -> Obj {
        if s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Obj::Str(s.as_bytes().to_vec());
        }
        let mut bytes = vec![0xFE, 0xFF];
        bytes.extend(s.encode_utf16().flat_map(u16::to_be_bytes));
        Obj::Str(bytes)
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

/// Upper-case hexadecimal: the body of a hexadecimal string (§7.3.4.3), which needs no escaping.
pub fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

pub(crate) fn is_whitespace(c: u8) -> bool {
    matches!(c, 0 | 9 | 10 | 12 | 13 | 32)
}

pub(crate) fn is_delimiter(c: u8) -> bool {
    matches!(c, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

/// Parsing ran off the end of the bytes read so far: read more and retry.
pub(crate) struct Truncated;

pub(crate) type Parse<T> = Result<T, ParseError>;

pub(crate) enum ParseError {
    Truncated(Truncated),
    Bad(String),
}

pub(crate) fn bad<T>(msg: &str) -> Parse<T> {
    Err(ParseError::Bad(msg.to_string()))
}

/// A tokenizer and object parser over a window of the file.
pub(crate) struct Lexer<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn peek(&self) -> Parse<u8> {
        self.b.get(self.pos).copied().ok_or(ParseError::Truncated(Truncated))
    }

    pub(crate) fn skip_ws(&mut self) -> Parse<()> {
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
    pub(crate) fn regular(&mut self) -> Parse<&'a [u8]> {
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

    pub(crate) fn keyword(&mut self, word: &[u8]) -> Parse<bool> {
        self.skip_ws()?;
        let save = self.pos;
        if self.regular()? == word {
            Ok(true)
        } else {
            self.pos = save;
            Ok(false)
        }
    }

    pub(crate) fn uint(&mut self) -> Parse<Option<u64>> {
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

    pub(crate) fn object(&mut self, depth: usize) -> Parse<Obj> {
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
    pub(crate) fn literal_string(&mut self) -> Parse<Vec<u8>> {
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
    fn text_strings_are_ascii_or_utf16() {
        assert_eq!(Obj::text("I approve"), Obj::Str(b"I approve".to_vec()));
        assert_eq!(Obj::text("Zoë"), Obj::Str(vec![0xFE, 0xFF, 0, b'Z', 0, b'o', 0, 0xEB]));
        // A literal string written by the lexer's rules reads back escaped (§7.3.4.2).
        let lit = crate::appearance::literal_string(b"a(b)\\c\n");
        assert_eq!(parse(std::str::from_utf8(&lit).unwrap()), Obj::Str(b"a(b)\\c\n".to_vec()));
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
}
