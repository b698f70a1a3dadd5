//! Visible PAdES signatures (issue 19, item 2): `cloudsign sign --visible PAGE,X,Y,W,H
//! --reason TEXT` through a running service puts a signature box on the chosen page of a
//! three-page PDF, then a second signer's box on page 1 over the signed file. Judged by
//! independent tools: `pdfsig` and `pyhanko sign validate` (both signatures valid), `qpdf
//! --check`, `pdftoppm` (the boxes are drawn where they were placed, nothing elsewhere) and
//! `pdftotext` (the appearance's text is there). Bad `--visible` values are refused clearly.
//!
//! Needs the pinned virtualenv of `scripts/test.sh` (`CLOUDSIGN_PYTHON`), poppler-utils,
//! libnss3-tools and qpdf.

mod common;

use std::path::Path;
use std::process::Command;

use cloudsign_ades::pdf::{Obj, Pdf};
use common::*;

/// A three-page A4 PDF: each page says "Page N"; page 1 has an inline `/Annots` array and
/// page 2 an indirect one, each with an invisible link that a signature must keep.
fn three_page_pdf() -> Vec<u8> {
    let content = |n: u32| {
        let s = format!("BT /F1 24 Tf 72 760 Td (Page {n}) Tj ET");
        format!("<< /Length {} >>\nstream\n{s}\nendstream", s.len())
    };
    let link = |y: u32| {
        format!(
            "<< /Type /Annot /Subtype /Link /Rect [72 {y} 200 {}] /Border [0 0 0] /A << /S /URI /URI (https://example.com/) >> >>",
            y + 20
        )
    };
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R 5 0 R 7 0 R] /Count 3 /MediaBox [0 0 595 842] /Resources << /Font << /F1 9 0 R >> >> >>".into(),
        "<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Annots [10 0 R] >>".into(),
        content(1),
        "<< /Type /Page /Parent 2 0 R /Contents 6 0 R /Annots 11 0 R >>".into(),
        content(2),
        "<< /Type /Page /Parent 2 0 R /Contents 8 0 R >>".into(),
        content(3),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
        link(400),
        "[12 0 R]".into(),
        link(420),
    ];
    cloudsign_test_support::pdf::pdf_of(&objects)
}

/// A page rendered by `pdftoppm` at 72 dpi, so one pixel is one PDF unit: (width, height, RGB).
/// PPM (P6) output, which needs no decoder.
fn render(env: &Env, pdf: &Path, page: u32) -> (usize, usize, Vec<u8>) {
    let prefix = env.file(&format!("render-{page}"));
    let p = page.to_string();
    run(Command::new("pdftoppm").args(["-r", "72", "-f", &p, "-l", &p, "-singlefile"]).arg(pdf).arg(&prefix));
    let ppm = std::fs::read(prefix.with_extension("ppm")).unwrap();
    // "P6" width height maxval, each followed by one whitespace byte, then the pixels.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while ppm[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !ppm[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&ppm[start..at]).into_owned());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P6", "255"), "pdftoppm wrote an 8-bit PPM");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let pixels = ppm[at + 1..].to_vec();
    assert_eq!(pixels.len(), w * h * 3);
    (w, h, pixels)
}

/// Pixels that are not white in the PDF rectangle (x, y from the bottom-left, w, h).
fn ink(image: &(usize, usize, Vec<u8>), (x, y, w, h): (usize, usize, usize, usize)) -> usize {
    let (width, height, pixels) = image;
    let mut n = 0;
    for row in height - (y + h)..height - y {
        for col in x..x + w {
            let i = (row * width + col) * 3;
            if pixels[i..i + 3].iter().any(|&c| c < 250) {
                n += 1;
            }
        }
    }
    n
}

fn text_of(pdf: &Path, page: u32) -> String {
    let p = page.to_string();
    run(Command::new("pdftotext").args(["-f", &p, "-l", &p]).arg(pdf).arg("-"))
}

/// The number of entries of a page's `/Annots` (inline or indirect).
fn annotations(pdf: &Path, page: u32) -> usize {
    let mut pdf = Pdf::open(std::fs::File::open(pdf).unwrap()).unwrap();
    let page = pdf.page(page).unwrap();
    match page.dict.get("Annots").map(|a| pdf.resolve(a).unwrap()) {
        None => 0,
        Some(Obj::Array(a)) => a.len(),
        other => panic!("/Annots is {other:?}"),
    }
}

#[tokio::test]
async fn visible_signatures_are_drawn_where_placed_and_keep_earlier_ones_valid() {
    let env = Env::new(BIN, "sqlite").with_public_url();
    env.add_user("alice");
    env.add_user("bob");
    let alice = env.add_credential("alice", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let bob = env.add_credential("bob", &["--scal", "1"])["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let (_, root) = write_ca(&env);
    nss_trust(&env, &root);

    let input = env.file("three.pdf");
    std::fs::write(&input, three_page_pdf()).unwrap();
    let once = env.file("once.pdf");
    let (ok, err) = sign_to(
        &env,
        &server.url,
        "alice",
        &alice,
        &input,
        &once,
        &["--visible", "2,100,100,220,60", "--reason", "I approve (draft \\ 2)", "--level", "B-T"],
    );
    assert!(ok && err.contains("PAdES B-T"), "{err}");
    let twice = env.file("twice.pdf");
    let (ok, err) = sign_to(&env, &server.url, "bob", &bob, &once, &twice, &["--visible", "1,300,700,250,50", "--level", "B-T"]);
    assert!(ok, "{err}");
    // Incremental updates only: each file starts with the one before.
    assert!(std::fs::read(&twice).unwrap().starts_with(&std::fs::read(&once).unwrap()));
    assert!(std::fs::read(&once).unwrap().starts_with(&three_page_pdf()));

    // Both signatures valid, for poppler and for pyHanko (whose difference analysis accepts
    // the second field, widget and appearance as a signature's own update).
    let p = run(Command::new("pdfsig").arg("-nssdir").arg(format!("sql:{}", env.file("nss").display())).arg(&twice));
    assert_eq!(p.matches("Signature Validation: Signature is Valid.").count(), 2, "pdfsig: {p}");
    // (pdfsig calls the second signer's certificate "Unknown issue" whether or not either
    // signature is visible, as in pades.rs; pyHanko below checks both paths.)
    assert!(p.contains("Certificate Validation: Certificate is Trusted."), "pdfsig: {p}");
    assert!(p.contains("Signer Certificate Common Name: alice") && p.contains("Signer Certificate Common Name: bob"), "{p}");
    // The reason is the signature dictionary's /Reason (a hexadecimal string, as all ours are).
    let reason = cloudsign_ades::pdf::hex_upper(b"I approve (draft \\ 2)");
    assert!(String::from_utf8_lossy(&std::fs::read(&twice).unwrap()).contains(&format!("/Reason <{reason}>")));
    let v = run(Command::new(venv_tool("pyhanko")).args(["sign", "validate", "--trust"]).arg(&root).arg("--trust-replace").arg(&twice));
    assert_eq!(v.matches(":INTACT:TRUSTED").count(), 2, "pyhanko: {v}");
    assert!(!v.contains("SUSPICIOUS"), "pyhanko: {v}");
    // scripts/test.sh installs qpdf: the check is never skipped.
    let q = run(Command::new("qpdf").arg("--check").arg(&twice));
    assert!(q.contains("No syntax or stream encoding errors"), "qpdf: {q}");

    // The existing annotations are kept, inline (page 1) and indirect (page 2).
    assert_eq!((annotations(&twice, 1), annotations(&twice, 2), annotations(&twice, 3)), (2, 2, 0));

    // Drawn where placed: ink inside each box, none in the rest of the page's lower half.
    let page2 = render(&env, &twice, 2);
    assert_eq!((page2.0, page2.1), (595, 842));
    assert!(ink(&page2, (102, 102, 216, 56)) > 200, "alice's box on page 2 is drawn");
    assert_eq!(ink(&page2, (0, 0, 595, 95)) + ink(&page2, (330, 95, 265, 300)) + ink(&page2, (0, 170, 595, 220)), 0);
    let page1 = render(&env, &twice, 1);
    assert!(ink(&page1, (302, 702, 246, 46)) > 200, "bob's box on page 1 is drawn");
    assert_eq!(ink(&page1, (0, 0, 595, 390)), 0, "nothing else on page 1's lower half");
    let page3 = render(&env, &twice, 3);
    assert_eq!(ink(&page3, (0, 0, 595, 700)), 0, "page 3 has no box");

    let text = text_of(&twice, 2);
    assert!(text.contains("Signed by alice") && text.contains("Reason: I approve (draft \\ 2)"), "{text}");
    assert!(text.contains("Date: 20") && text.contains(" UTC"), "{text}");
    assert!(text_of(&twice, 1).contains("Signed by bob"), "page 1: {}", text_of(&twice, 1));

    // Bad boxes: a clear error, a non-zero exit, and no output written.
    let bad = env.file("bad.pdf");
    for (visible, says) in [
        ("0,100,100,220,60", "pages are numbered from 1"),
        ("4,100,100,220,60", "there is no page 4: the document has 3 pages"),
        ("1,100,100,-220,60", "must be positive"),
        ("1,100,100,220", "PAGE,X,Y,W,H"),
        ("1,500,100,220,60", "does not fit on page 1, which is 595 x 842 units"),
    ] {
        let (ok, err) = sign_to(&env, &server.url, "alice", &alice, &input, &bad, &["--visible", visible]);
        assert!(!ok && err.contains(says), "--visible {visible}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!bad.exists(), "--visible {visible} left {}", bad.display());
    }
    let (ok, err) = sign_to(&env, &server.url, "alice", &alice, &input, &bad, &["--visible", "1,1,1,10,10", "--format", "cades"]);
    assert!(!ok && err.contains("--visible and --reason are for PAdES"), "{err}");
    drop(server);
}
