//! Hostile input (issue #7): thousands of mutations of a real signed PDF and a real CMS
//! signature — bytes flipped, runs overwritten with digits, truncations, huge numbers — go
//! through the whole validation. Each must end in a report or a clear error, never a panic, and
//! quickly. The signatures are made by openssl over a PDF prepared with cloudsign's writer.

use std::process::Command;
use std::time::{Duration, Instant};

use cloudsign_test_support::pdf::one_page_pdf;
use cloudsign_test_support::pki::self_signed_p256;
use cloudsign_test_support::run;
use cloudsign_validation::file::{Fetched, Inputs, validate_file};
use cloudsign_validation::path::TrustAnchors;
use cloudsign_validation::policy::Policy;

/// A tiny deterministic generator (xorshift64*): reproducible mutations without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    match rng.below(5) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(rng.below(b.len())),
        2 => {
            let i = rng.below(b.len());
            let digits = b"99999999999999999999";
            for (k, d) in digits.iter().enumerate().take(b.len() - i) {
                b[i + k] = *d;
            }
        }
        3 => {
            let i = rng.below(b.len());
            let len = rng.below(64).min(b.len() - i);
            b.drain(i..i + len);
        }
        _ => {
            let i = rng.below(b.len());
            b[i] = [0x30, 0x84, 0xff, b'<', b'[', b'/', b'(', b'%'][rng.below(8)];
        }
    }
    b
}

#[test]
fn mutated_signatures_never_crash_and_stay_fast() {
    let dir = std::env::temp_dir().join(format!("cloudsign-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = |f: &str| dir.join(f);
    self_signed_p256(&p("key.pem"), &p("cert.pem"), "/CN=hostile", 2, &[]);

    // A one-page PDF, a signature field reserved by cloudsign's writer, and openssl's CMS over
    // exactly the bytes the /ByteRange covers.
    let original = one_page_pdf("hostile");
    let mut pdf = cloudsign_pdf::Pdf::open(std::io::Cursor::new(original.clone())).unwrap();
    let placeholder =
        cloudsign_ades::pades::add_signature(&mut pdf, cloudsign_ades::pades::Kind::Signature { signing_time: 0 }, 4096).unwrap();
    let (before, after) = placeholder.signed_parts();
    std::fs::write(p("ranges.bin"), [original.as_slice(), before, after].concat()).unwrap();
    run(Command::new("openssl")
        .args(["cms", "-sign", "-binary", "-in"])
        .arg(p("ranges.bin"))
        .arg("-signer")
        .arg(p("cert.pem"))
        .arg("-inkey")
        .arg(p("key.pem"))
        .args(["-outform", "DER", "-out"])
        .arg(p("sig.der")));
    let cms = std::fs::read(p("sig.der")).unwrap();
    let signed_pdf = [original.as_slice(), &placeholder.fill(&cms).unwrap()].concat();
    std::fs::write(p("content.bin"), b"detached content").unwrap();
    run(Command::new("openssl")
        .args(["cms", "-sign", "-binary", "-in"])
        .arg(p("content.bin"))
        .arg("-signer")
        .arg(p("cert.pem"))
        .arg("-inkey")
        .arg(p("key.pem"))
        .args(["-outform", "DER", "-out"])
        .arg(p("detached.der")));
    let detached_cms = std::fs::read(p("detached.der")).unwrap();

    let anchors = TrustAnchors::from_pem(&std::fs::read_to_string(p("cert.pem")).unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let fetched = Fetched::default();
    let policy = Policy::strict();
    let inputs = Inputs { anchors: &anchors, policy: &policy, fetched: &fetched, now };

    // The unmutated inputs validate.
    std::fs::write(p("case.pdf"), &signed_pdf).unwrap();
    let r = validate_file(&p("case.pdf"), None, &inputs).unwrap();
    assert_eq!(format!("{:?}", r[0].indication), "TotalPassed", "{:?}", r[0]);
    std::fs::write(p("case.p7s"), &detached_cms).unwrap();
    let r = validate_file(&p("case.p7s"), Some(&p("content.bin")), &inputs).unwrap();
    assert_eq!(format!("{:?}", r[0].indication), "TotalPassed", "{:?}", r[0]);

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let (mut passed, mut rounds) = (0, 0);
    for round in 0..1500 {
        let (input, name, detached) =
            if round % 2 == 0 { (&signed_pdf, "case.pdf", None) } else { (&detached_cms, "case.p7s", Some(p("content.bin"))) };
        let mutated = mutate(&mut rng, input);
        std::fs::write(p(name), &mutated).unwrap();
        let one = Instant::now();
        if let Ok(reports) = validate_file(&p(name), detached.as_deref(), &inputs) {
            passed += reports.iter().filter(|r| format!("{:?}", r.indication) == "TotalPassed").count();
        }
        assert!(one.elapsed() < Duration::from_secs(2), "round {round} took {:?}", one.elapsed());
        rounds += 1;
    }
    // Some mutations hit bytes nothing reads (padding in /Contents); most must not pass.
    assert!(passed < rounds / 2, "{passed} of {rounds} mutated inputs still passed");
    assert!(started.elapsed() < Duration::from_secs(120));
    let _ = std::fs::remove_dir_all(&dir);
}
