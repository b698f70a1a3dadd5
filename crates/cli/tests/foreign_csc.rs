//! `cloudsign sign` against a CSC service nobody here wrote: `certomancer-csc-dummy` (PyPI,
//! pinned in interop/requirements.txt), pyHanko's test server. It speaks CSC v1.0.4.0 only,
//! says `authType: ["external"]`, has no `auth/login` (requests are not authenticated),
//! authorizes implicitly (no PIN), and its `signatures/timestamp` — not listed in `methods` —
//! answers 409 unless `clientData` names the time-stamping unit (`ARCH/TSA-LABEL`).
//!
//! The CLI must find all of that out from `info` and the answers: no `auth/login` is ever sent
//! (the dummy's access log is checked), no password or PIN is asked for, v1 is found without
//! `--api`. A PDF is signed at PAdES B-B and B-T; each result is validated by pyHanko (with
//! the Certomancer root, exported by Certomancer itself, as the only trust anchor) and by
//! `cloudsign verify`. The refusals show method, status, the service's body and a hint.
//!
//! Needs the pinned virtualenv of `scripts/test.sh` (`CLOUDSIGN_PYTHON`) and openssl.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/certomancer/certomancer.yml");

fn venv_bin(name: &str) -> PathBuf {
    let python = std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON must name the pinned virtualenv's python: run scripts/test.sh");
    PathBuf::from(python).with_file_name(name)
}

/// The dummy service, stopped (by its process id) when the test ends.
struct Dummy {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dummy {
    /// The requests the dummy logged (aiohttp's access log: `"POST /csc/v1/... HTTP/1.1" 200`).
    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().filter(|l| l.contains("\"POST ")).collect::<Vec<_>>().join("\n")
    }
}

/// The Certomancer configuration with fresh P-256 keys next to it.
fn pki(dir: &Path) -> PathBuf {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for k in ["root", "signer", "tsa"] {
        run(Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
            .arg(keys.join(format!("{k}.key.pem"))));
    }
    let config = dir.join("certomancer.yml");
    std::fs::copy(CONFIG, &config).unwrap();
    config
}

/// Start `certomancer-csc CONFIG PORT SCAL` (SCAL 2: hash pinning, so the SAD is bound to the
/// digests) and wait until `info` answers.
fn start_dummy(dir: &Path, config: &Path) -> Dummy {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = dir.join("dummy.log");
    let child = Command::new(venv_bin("certomancer-csc"))
        .arg(config)
        .arg(port.to_string())
        .arg("2")
        .stdout(Stdio::from(std::fs::File::create(dir.join("dummy.out")).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .expect("certomancer-csc is installed in the virtualenv (interop/requirements.txt)");
    let dummy = Dummy { child, url: format!("http://127.0.0.1:{port}"), log };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answers(&dummy.url) {
        assert!(Instant::now() < deadline, "certomancer-csc did not start:\n{}", std::fs::read_to_string(&dummy.log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(200));
    }
    dummy
}

/// Whether `POST /csc/v1/info` answers 200 (plain HTTP/1.1 over a socket: the test needs no
/// HTTP client for this).
fn answers(url: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let addr = url.trim_start_matches("http://");
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return false };
    let req = format!(
        "POST /csc/v1/info HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

/// `cloudsign sign` with a clean environment: no password, PIN or token anywhere.
fn sign(env: &Env, dummy: &Dummy, input: &Path, extra: &[&str]) -> (bool, String) {
    let out = env
        .command()
        .arg("sign")
        .arg(input)
        .args(["--service", &dummy.url, "--credential", "testing/signer"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn pyhanko_validate(pdf: &Path, root: &Path, timestamped: bool) {
    let out = run(Command::new(venv_bin("pyhanko")).args(["sign", "validate", "--trust"]).arg(root).arg("--trust-replace").arg(pdf));
    assert!(out.contains(":INTACT:TRUSTED"), "pyhanko: {out}");
    assert!(out.contains("UNTOUCHED"), "pyhanko: {out}");
    assert_eq!(out.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), timestamped, "pyhanko: {out}");
}

fn cloudsign_verify(env: &Env, pdf: &Path, root: &Path, level: &str) {
    let out = env.command().arg("verify").arg(pdf).arg("--trust").arg(root).arg("--offline").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("TOTAL-PASSED"), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(level), "{text}");
}

#[test]
fn pades_through_certomancer_csc_dummy() {
    let env = Env::new(BIN, "sqlite");
    let config = pki(&env.dir);
    let dummy = start_dummy(&env.dir, &config);
    // The trust anchor, from Certomancer itself (not from the service's answers).
    let root = env.file("root.pem");
    run(Command::new(venv_bin("certomancer")).arg("--config").arg(&config).args(["summon", "testing", "root"]).arg(&root));
    let input = env.file("contract.pdf");
    std::fs::write(&input, one_page_pdf("Signed through a foreign CSC service")).unwrap();

    // B-B: found v1, no authentication, implicit authorization (no PIN asked: stdin is closed
    // and CLOUDSIGN_PIN unset, so a prompt would fail).
    let bb = env.file("b-b.pdf");
    let (ok, err) = sign(&env, &dummy, &input, &["--level", "B-B", "--out", bb.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("PAdES B-B"), "{err}");
    pyhanko_validate(&bb, &root, false);
    cloudsign_verify(&env, &bb, &root, "B-B");

    // B-T: the dummy's time-stamp with clientData naming its TSA.
    let bt = env.file("b-t.pdf");
    let (ok, err) = sign(&env, &dummy, &input, &["--timestamp-client-data", "testing/tsa", "--out", bt.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("PAdES B-T"), "{err}");
    pyhanko_validate(&bt, &root, true);
    cloudsign_verify(&env, &bt, &root, "B-T");

    // Without clientData the dummy answers a bare 409: the method, the status, its body and
    // what to do — never an empty "error: ".
    let (ok, err) = sign(&env, &dummy, &input, &["--out", env.file("no-client-data.pdf").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("signatures/timestamp refused (HTTP 409 Conflict): 409: Conflict"), "{err}");
    assert!(err.contains("hint:") && err.contains("--timestamp-client-data") && err.contains("--tsa"), "{err}");
    assert!(!err.contains("error: \n") && !err.trim_end().ends_with("error:"), "{err}");
    assert!(!env.file("no-client-data.pdf").exists() && !env.file(".no-client-data.pdf.partial").exists());

    // --user for a service without auth/login: refused from info, with what to do instead.
    let (ok, err) = sign(&env, &dummy, &input, &["--user", "alice", "--out", env.file("user.pdf").to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("does not offer auth/login (authType: external)") && err.contains("--token-file"), "{err}");
    assert!(!err.contains("wrong user name or password"), "{err}");

    // A base URI that already holds the version.
    let (ok, err) = env
        .command()
        .arg("sign")
        .arg(&input)
        .args(["--service", &format!("{}/csc/v1", dummy.url), "--credential", "testing/signer"])
        .output()
        .map(|o| (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned()))
        .unwrap();
    assert!(!ok);
    assert!(err.contains("info refused (HTTP 404 Not Found)") && err.contains("without /csc/v1 or /csc/v2"), "{err}");

    // The dummy saw the whole exchange, and never an auth/login.
    let requests = dummy.requests();
    for method in ["info", "credentials/info", "credentials/authorize", "signatures/signHash", "signatures/timestamp"] {
        assert!(requests.contains(&format!("/csc/v1/{method} ")), "no {method} in:\n{requests}");
    }
    assert!(!requests.contains("auth/login"), "auth/login was sent to a service that does not offer it:\n{requests}");
}
