//! Signature appearances: the normal appearance (ISO 32000-1 §12.5.5) of a visible signature
//! widget (§12.7.4.5), a Form XObject (§8.10) that shows a few lines of text in a thin frame.
//!
//! The text is set in Helvetica, one of the standard 14 fonts every conforming reader has
//! (§9.6.2.2), with `/WinAnsiEncoding` (Annex D): nothing is embedded, and the widths below
//! (Adobe's Helvetica AFM) are what the layout measures with. Lines are wrapped at spaces and the
//! size shrinks until they fit the box.

use crate::object::{Dict, Obj};

/// A rectangle in PDF user-space units (1/72 inch): its lower-left corner and its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Lower-left x.
    pub x: f64,
    /// Lower-left y.
    pub y: f64,
    /// Width (positive).
    pub width: f64,
    /// Height (positive).
    pub height: f64,
}

impl Rect {
    /// `[llx lly urx ury]`, as `/Rect` and `/BBox` hold it (§7.9.5).
    pub fn to_array(&self) -> Obj {
        Obj::Array([self.x, self.y, self.x + self.width, self.y + self.height].into_iter().map(number).collect())
    }
}

/// A number as PDF writes it (§7.3.3): an integer when it is one, else at most three decimals.
pub fn number(v: f64) -> Obj {
    let v = if v.is_finite() { v } else { 0.0 };
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return Obj::Int(v as i64);
    }
    Obj::Real(real(v))
}

/// A real number's text: up to three decimals, no exponent (§7.3.3 has none), no trailing zeros.
fn real(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_string() } else { s.to_string() }
}

/// Text in WinAnsiEncoding (ISO 32000-1 Annex D.2): Latin-1 as is, the few characters of
/// 0x80–0x9F from their Unicode code points, control characters as spaces, and anything the
/// encoding lacks as `?`.
pub fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' | '\u{A0}'..='\u{FF}' => c as u8,
            c if c.is_control() => b' ',
            c => WIN_ANSI_HIGH.iter().find(|(u, _)| *u == c).map_or(b'?', |(_, b)| *b),
        })
        .collect()
}

/// Annex D.2: the code points WinAnsiEncoding puts at 0x80–0x9F.
const WIN_ANSI_HIGH: [(char, u8); 27] = [
    ('€', 0x80),
    ('‚', 0x82),
    ('ƒ', 0x83),
    ('„', 0x84),
    ('…', 0x85),
    ('†', 0x86),
    ('‡', 0x87),
    ('ˆ', 0x88),
    ('‰', 0x89),
    ('Š', 0x8A),
    ('‹', 0x8B),
    ('Œ', 0x8C),
    ('Ž', 0x8E),
    ('‘', 0x91),
    ('’', 0x92),
    ('“', 0x93),
    ('”', 0x94),
    ('•', 0x95),
    ('–', 0x96),
    ('—', 0x97),
    ('˜', 0x98),
    ('™', 0x99),
    ('š', 0x9A),
    ('›', 0x9B),
    ('œ', 0x9C),
    ('ž', 0x9E),
    ('Ÿ', 0x9F),
];

/// A literal string (§7.3.4.2): `(`, `)` and `\` escaped with a backslash, and bytes outside
/// printable ASCII as octal escapes (so that no end-of-line inside is rewritten by a reader).
pub fn literal_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(b'(');
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b' '..=b'~' => out.push(b),
            _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
        }
    }
    out.push(b')');
    out
}

/// Glyph widths of Helvetica in thousandths of the font size, for WinAnsi codes 32–255
/// (Adobe Core 14 AFM; codes WinAnsi leaves unused count as a space).
const HELVETICA_WIDTHS: [u16; 224] = [
    // 32–63: space ! " # $ % & ' ( ) * + , - . / 0–9 : ; < = > ?
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278,
    278, 584, 584, 584, 556, // 64–95: @ A–Z [ \ ] ^ _
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611,
    278, 278, 278, 469, 556, // 96–127: ` a–z { | } ~ (127 unused)
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500,
    334, 260, 334, 584,
    278, // 128–159: € . ‚ ƒ „ … † ‡ ˆ ‰ Š ‹ Œ . Ž . . ‘ ’ “ ” • – — ˜ ™ š › œ . ž Ÿ
    556, 278, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 278, 611, 278, 278, 222, 222, 333, 333, 350, 556, 1000, 333, 1000,
    500, 333, 944, 278, 500,
    667, // 160–191: nbsp ¡ ¢ £ ¤ ¥ ¦ § ¨ © ª « ¬ shy ® ¯ ° ± ² ³ ´ µ ¶ · ¸ ¹ º » ¼ ½ ¾ ¿
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, 400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365,
    556, 834, 834, 834, 611, // 192–223: À–Ö × Ø–ß
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, 722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722,
    722, 722, 667, 667, 611, // 224–255: à–ö ÷ ø–ÿ
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278, 556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556,
    556, 556, 500, 556, 500,
];

/// The width of WinAnsi `text` in Helvetica at `size`.
pub fn helvetica_width(text: &[u8], size: f64) -> f64 {
    let units: u32 = text.iter().map(|&b| u32::from(HELVETICA_WIDTHS[usize::from(b.max(32)) - 32])).sum();
    f64::from(units) * size / 1000.0
}

/// The font resource of the appearance: Helvetica in WinAnsiEncoding (§9.6.2.2, §9.6.6.1).
pub fn helvetica() -> Obj {
    Obj::Dict(Dict(vec![
        (b"Type".to_vec(), Obj::name("Font")),
        (b"Subtype".to_vec(), Obj::name("Type1")),
        (b"BaseFont".to_vec(), Obj::name("Helvetica")),
        (b"Encoding".to_vec(), Obj::name("WinAnsiEncoding")),
    ]))
}

/// The resource name the content stream uses for the font.
const FONT: &str = "Helv";
/// Space between the frame and the text.
const PADDING: f64 = 3.0;
/// Baseline-to-baseline distance, in font sizes.
const LEADING: f64 = 1.2;
/// The largest and smallest font sizes tried.
const MAX_SIZE: f64 = 11.0;
const MIN_SIZE: f64 = 4.0;

/// Lines of text laid out in a box: the font size and the lines (WinAnsi) after wrapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The font size chosen.
    pub size: f64,
    /// The lines to show, top to bottom.
    pub lines: Vec<Vec<u8>>,
}

/// Fit `lines` into a `width` × `height` box (less the padding): the largest size from 11 down
/// to 4 points at which the lines, wrapped at spaces, fit; at 4 points words are broken too
/// and what still does not fit is left out.
pub fn layout(lines: &[String], width: f64, height: f64) -> Layout {
    let (w, h) = (width - 2.0 * PADDING, height - 2.0 * PADDING);
    let encoded: Vec<Vec<u8>> = lines.iter().map(|l| win_ansi(l)).collect();
    // Text of n lines needs one size for the first (ascender and descender) and the leading
    // for each further one.
    let needed = |n: usize, size: f64| size * (1.0 + LEADING * (n.saturating_sub(1)) as f64);
    let mut size = MAX_SIZE;
    while size > MIN_SIZE {
        let wrapped = wrap(&encoded, w, size, false);
        if wrapped.iter().all(|l| helvetica_width(l, size) <= w) && needed(wrapped.len(), size) <= h {
            return Layout { size, lines: wrapped };
        }
        size -= 0.5;
    }
    let mut wrapped = wrap(&encoded, w, MIN_SIZE, true);
    while !wrapped.is_empty() && needed(wrapped.len(), MIN_SIZE) > h {
        wrapped.pop();
    }
    Layout { size: MIN_SIZE, lines: wrapped }
}

/// Greedy wrapping at spaces; with `break_words`, a word wider than the line is cut too.
fn wrap(lines: &[Vec<u8>], width: f64, size: f64, break_words: bool) -> Vec<Vec<u8>> {
    let fits = |l: &[u8]| helvetica_width(l, size) <= width;
    let mut out = Vec::new();
    for line in lines {
        let mut current: Vec<u8> = Vec::new();
        for word in line.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            let mut candidate = current.clone();
            if !candidate.is_empty() {
                candidate.push(b' ');
            }
            candidate.extend_from_slice(word);
            if fits(&candidate) || current.is_empty() && !break_words {
                current = candidate;
                continue;
            }
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            if fits(word) || !break_words {
                current = word.to_vec();
                continue;
            }
            for &b in word {
                current.push(b);
                if !fits(&current) && current.len() > 1 {
                    current.pop();
                    out.push(std::mem::replace(&mut current, vec![b]));
                }
            }
        }
        out.push(current);
    }
    out
}

/// The appearance stream's content (§8.10.1): a thin grey frame just inside the bounding box
/// and the laid-out lines in black, top-left aligned.
pub fn text_box_content(width: f64, height: f64, lines: &[String]) -> Vec<u8> {
    let n = |v: f64| real(v);
    let mut out = Vec::new();
    out.extend_from_slice(format!("q 0.5 w 0.3 0.3 0.3 RG 0.25 0.25 {} {} re S Q\n", n(width - 0.5), n(height - 0.5)).as_bytes());
    let layout = layout(lines, width, height);
    if layout.lines.is_empty() {
        return out;
    }
    // The first baseline sits Helvetica's ascender (0.718 em) below the padding.
    let top = height - PADDING - 0.718 * layout.size;
    out.extend_from_slice(
        format!("BT /{FONT} {} Tf 0 g {} TL {} {} Td\n", n(layout.size), n(layout.size * LEADING), n(PADDING), n(top)).as_bytes(),
    );
    for (i, line) in layout.lines.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"T* ");
        }
        out.extend_from_slice(&literal_string(line));
        out.extend_from_slice(b" Tj\n");
    }
    out.extend_from_slice(b"ET\n");
    out
}

/// The dictionary of the appearance's Form XObject (§8.10.2, Table 95; `/Length` is added
/// when it is written): a bounding box of the widget's size at the origin, so the identity
/// matrix maps it onto the annotation's rectangle (§12.5.5), and `font` as `/Helv`.
pub fn form_xobject(width: f64, height: f64, font: Obj) -> Dict {
    let resources = Dict(vec![
        (b"Font".to_vec(), Obj::Dict(Dict(vec![(FONT.as_bytes().to_vec(), font)]))),
        (b"ProcSet".to_vec(), Obj::Array(vec![Obj::name("PDF"), Obj::name("Text")])),
    ]);
    Dict(vec![
        (b"Type".to_vec(), Obj::name("XObject")),
        (b"Subtype".to_vec(), Obj::name("Form")),
        (b"BBox".to_vec(), Rect { x: 0.0, y: 0.0, width, height }.to_array()),
        (b"Resources".to_vec(), Obj::Dict(resources)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_strings_escape_delimiters_and_non_ascii() {
        assert_eq!(literal_string(b"a(b)c\\d"), b"(a\\(b\\)c\\\\d)".to_vec());
        assert_eq!(literal_string(b"x\ny\r\xE9"), b"(x\\012y\\015\\351)".to_vec());
        assert_eq!(literal_string(b""), b"()".to_vec());
    }

    #[test]
    fn win_ansi_maps_latin1_and_replaces_the_rest() {
        assert_eq!(win_ansi("Zoë €5 – “ok”"), b"Zo\xEB \x805 \x96 \x93ok\x94".to_vec());
        assert_eq!(win_ansi("名前\tA"), b"?? A".to_vec());
    }

    #[test]
    fn widths_follow_the_afm() {
        assert_eq!(helvetica_width(b"A", 1000.0), 667.0);
        assert_eq!(helvetica_width(b"Hello", 10.0), (722.0 + 556.0 + 222.0 + 222.0 + 556.0) / 100.0);
        assert_eq!(helvetica_width(b"\xE9", 1000.0), 556.0);
    }

    #[test]
    fn numbers_are_written_without_exponents() {
        assert_eq!(number(100.0), Obj::Int(100));
        assert_eq!(number(0.25), Obj::Real("0.25".into()));
        assert_eq!(number(1.0 / 3.0), Obj::Real("0.333".into()));
        assert_eq!(number(-0.0001), Obj::Real("0".into()));
    }

    #[test]
    fn text_shrinks_and_wraps_to_fit() {
        let lines = ["Signed by Alice Example".to_string(), "Date: 2026-12-08 02:30 UTC".into(), "Reason: I approve".into()];
        let roomy = layout(&lines, 220.0, 60.0);
        assert_eq!(roomy.lines.len(), 3);
        assert!(roomy.size >= 9.0, "{roomy:?}");
        // Narrow: wrapped and smaller, every line within the width.
        let narrow = layout(&lines, 80.0, 120.0);
        assert!(narrow.lines.len() > 3, "{narrow:?}");
        assert!(narrow.lines.iter().all(|l| helvetica_width(l, narrow.size) <= 80.0 - 2.0 * PADDING));
        // Tiny: at the smallest size, what does not fit is left out, never drawn outside.
        let tiny = layout(&lines, 30.0, 12.0);
        assert_eq!(tiny.size, MIN_SIZE);
        assert!(tiny.lines.len() <= 1);
        assert!(tiny.lines.iter().all(|l| helvetica_width(l, MIN_SIZE) <= 30.0 - 2.0 * PADDING));
    }

    #[test]
    fn appearance_stream_draws_a_frame_and_escaped_text() {
        let content = text_box_content(220.0, 60.0, &["Signed by O'Brien (test) \\ co".to_string()]);
        let text = String::from_utf8(content).unwrap();
        assert!(text.starts_with("q 0.5 w 0.3 0.3 0.3 RG 0.25 0.25 219.5 59.5 re S Q\n"), "{text}");
        assert!(text.contains("BT /Helv 11 Tf 0 g 13.2 TL 3 "), "{text}");
        assert!(text.contains("(Signed by O'Brien \\(test\\) \\\\ co) Tj\nET\n"), "{text}");
        let dict = form_xobject(220.0, 60.0, Obj::Ref(9, 0));
        let mut out = Vec::new();
        Obj::Dict(dict).write(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<</Type /XObject/Subtype /Form/BBox [0 0 220 60]/Resources <</Font <</Helv 9 0 R>>/ProcSet [/PDF /Text]>>>>"
        );
    }
}
