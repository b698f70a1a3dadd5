//! The phone page (issue 18, scenario [3], `docs/device-protocol.md` "Devices"): the real
//! `cloudsign serve` with `[device] enabled = true` on loopback, `admin device pair`, and Debian's
//! Chromium, headless, driven by playwright-core (`interop/browser/device_phone.mjs`) as the
//! signer's phone: it opens `/device`, enters the code, pairs (two non-extractable WebCrypto
//! keys, a CSR built in the page), and stays connected over the WebSocket. An application signs
//! a PDF through CSC v2 `signatures/signDoc` (PAdES B-T); the page shows the request, its
//! verification code and label; the test taps Sign; pyHanko validates the PDF against the CA's
//! root, and the code the page showed is recomputed from the signature's own signed attributes
//! (`cloudsign_device::VerificationCode::of`, the protocol's function). The phone signs the
//! other structures the service builds over their data to be signed too (CAdES signed
//! attributes, XAdES SignedInfo, JAdES signing input: `cloudsign verify`, and openssl for the
//! CAdES); signHash, which has no data to be signed to give it, and a JAdES document too large to
//! carry are refused before the SAD is spent. Then the page reopens
//! with `?transport=poll` (the same keys), connects by long-polling, and a decline there gives
//! the application 400 `access_denied`. The screenshot of the request is kept as
//! `target/device-phone.png` (and the test's temp dir has every step's).

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::verify::verify_passes;
use common::*;
use serde_json::{Value, json};

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    PathBuf::from(
        std::env::var("CLOUDSIGN_PYTHON").expect("CLOUDSIGN_PYTHON must name the pinned virtualenv's python: run scripts/test.sh"),
    )
}

/// The browser driver: one JSON line per event on its stdout, one per command on its stdin.
struct Phone {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Phone {
    /// Start the driver; the pairing code goes through the environment, never argv.
    fn start(page_url: &str, code: &str, shots: &Path) -> Phone {
        let root = workspace();
        assert!(
            root.join("interop/browser/node_modules/playwright-core").exists(),
            "playwright-core is missing: run scripts/test.sh (npm ci in interop/browser)"
        );
        let mut child = Command::new("node")
            .arg(root.join("interop/browser/device_phone.mjs"))
            .env("CS_DEVICE_URL", page_url)
            .env("CS_PAIRING_CODE", code)
            .env("CS_SCREENSHOTS", shots)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node must be installed");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Phone { child, stdin, events, stderr }
    }

    /// The next event, which must be `want`.
    fn event(&mut self, want: &str) -> Value {
        let line = tokio::task::block_in_place(|| self.events.recv_timeout(Duration::from_secs(60)));
        let Ok(line) = line else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
            panic!("the phone driver gave no {want} event:\n{}", stderr.join().unwrap_or_default());
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver line {line:?}: {e}"));
        assert_eq!(v["event"], want, "{v}");
        v
    }

    fn send(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").expect("the phone driver is running");
        self.stdin.flush().unwrap();
    }

    fn ask(&mut self, command: Value, want: &str) -> Value {
        self.send(command);
        self.event(want)
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pairing code for alice (the credential's PIN is [`PIN`]).
fn pairing_code(env: &Env) -> String {
    let out = env.admin(&["device", "pair", "alice", "--json", "--pin-stdin"], &format!("{PIN}\n"));
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("device pair output {out:?}: {e}"));
    v["pairingCode"].as_str().unwrap().to_string()
}

/// The digest the signer's key signed in the PDF's first signature: SHA-256 of the DER of its
/// signed attributes as a SET OF (RFC 5652 §5.4), read by pyHanko (asn1crypto), not by us.
fn signed_attributes_digest(pdf: &Path) -> Vec<u8> {
    let script = "import sys, hashlib\n\
from pyhanko.pdf_utils.reader import PdfFileReader\n\
s = PdfFileReader(open(sys.argv[1], 'rb')).embedded_signatures[0]\n\
der = s.signer_info['signed_attrs'].dump()\n\
print(hashlib.sha256(b'\\x31' + der[1:]).hexdigest())";
    let out = run(Command::new(python()).arg("-c").arg(script).arg(pdf));
    hex::decode(out.trim()).expect("a hex digest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_pairs_the_phone_page_and_signs_a_pdf() {
    let env = Env::new(BIN, "sqlite").with_public_url();
    let cfg = env.file("device.toml");
    // Polls held 5 s rather than 25: the long-polling part ends sooner.
    std::fs::write(&cfg, "[device]\nenabled = true\npoll_hold_seconds = 5\n").unwrap();
    let env = env.with_env("CLOUDSIGN_CONFIG", cfg.to_str().unwrap());
    env.add_user("alice");
    let server = env.start();
    let (issuing, root) = write_ca(&env);
    let shots = env.file("screenshots");
    let public = env.public_url().unwrap();

    // Pairing, then the WebSocket.
    let code = pairing_code(&env);
    let mut phone = Phone::start(&format!("{}/device", server.url), &code, &shots);
    let paired = phone.event("paired");
    assert_eq!(paired["user"], "alice", "{paired}");
    assert_eq!(paired["aud"], public.as_str(), "{paired}");
    assert_eq!(paired["transport"], "connected (WebSocket)", "{paired}");
    // The keys are CryptoKeys the browser will not export (doc "Keys").
    for key in ["deviceKey", "signingKey"] {
        let k = &paired["keys"][key];
        assert_eq!(k["isCryptoKey"], true, "{key}: {k}");
        assert_eq!(k["type"], "private", "{key}: {k}");
        assert_eq!(k["extractable"], false, "{key}: {k}");
        assert_eq!(k["algorithm"], "ECDSA", "{key}: {k}");
        assert_eq!(k["namedCurve"], "P-256", "{key}: {k}");
        assert_eq!(k["pkcs8Export"], "InvalidAccessError", "{key}: {k}");
    }
    assert_eq!(paired["problems"], json!([]), "no script error, console error or CSP violation: {paired}");
    let credential = paired["credentialId"].as_str().unwrap().to_string();
    // `admin device list --json`: one JSON object per line.
    let devices = env.admin(&["device", "list", "--json"], "");
    let listed = devices.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|d| d["credentialId"] == credential.as_str());
    let listed = listed.unwrap_or_else(|| panic!("the paired device is listed: {devices}"));
    assert_eq!(listed["deviceId"], paired["deviceId"], "{listed}");
    assert_eq!((listed["kind"].as_str(), listed["prehashed"].as_bool()), (Some("phone"), Some(false)), "{listed}");

    // The connection stays up: past the server's header-read and idle timeouts (10 s), and
    // across the service's pings, without reconnecting.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let status = phone.ask(json!({"cmd": "status"}), "status");
    assert_eq!(status["transport"], "connected (WebSocket)", "{status}");
    assert_eq!(status["sockets"], json!({"opened": 1, "closed": 0}), "one WebSocket, still open: {status}");

    // Bad input on the WebSocket: refused with the protocol's frames and close codes (doc
    // "Checks and refusals", WebSocket column; RFC 6455 §7.4.1), never a crash; the page's own
    // connection is untouched.
    let probe = phone.ask(json!({"cmd": "probe"}), "probe");
    assert_eq!(
        probe["garbage"],
        json!({"seen": ["challenge", "error:malformed"], "code": 1008, "protocol": "cloudsign-device.v1"}),
        "{probe}"
    );
    assert_eq!(probe["unknownDevice"]["seen"], json!(["challenge", "error:unpaired"]), "{probe}");
    assert_eq!(probe["unknownDevice"]["code"], 1008, "{probe}");
    assert_eq!(probe["binary"]["seen"], json!(["challenge", "error:malformed"]), "{probe}");
    assert_eq!(probe["binary"]["code"], 1008, "{probe}");
    assert_eq!(probe["tooBig"]["code"], 1009, "a frame over 512 KiB: {probe}");
    // Without the subprotocol the upgrade is refused (400): the browser sees an abnormal close,
    // and logs the refused handshake, which is the probe's doing, not the page's (the driver
    // keeps it out of "problems", which must stay empty to the end).
    assert_eq!(probe["noSubprotocol"], json!({"seen": [], "code": 1006, "protocol": ""}), "{probe}");
    let noise = probe["consoleErrors"].as_array().unwrap_or_else(|| panic!("{probe}"));
    assert!(noise.len() == 1 && noise[0].as_str().is_some_and(|t| t.contains("/device/v1/connect") && t.contains("400")), "{probe}");
    let http = reqwest::Client::new();
    let upgrade = |origin: &str, protocol: Option<&str>| {
        let mut r = http
            .get(format!("{}/device/v1/connect", server.url))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("origin", origin);
        if let Some(p) = protocol {
            r = r.header("sec-websocket-protocol", p);
        }
        r.send()
    };
    let r = upgrade("http://evil.example", Some("cloudsign-device.v1")).await.unwrap();
    assert_eq!(r.status(), 403, "a WebSocket from another origin (RFC 6455 §10.2)");
    let r = upgrade(&public, Some("cloudsign-device.v2")).await.unwrap();
    assert_eq!(r.status(), 400, "a subprotocol this service does not speak");
    let r = http.get(format!("{}/device/v1/connect", server.url)).send().await.unwrap();
    assert!(r.status().is_client_error(), "a plain GET is no upgrade: {}", r.status());
    let status = phone.ask(json!({"cmd": "status"}), "status");
    assert_eq!(status["sockets"], json!({"opened": 6, "closed": 5}), "the page's socket stays open: {status}");
    assert_eq!(status["transport"], "connected (WebSocket)", "{status}");

    // The long-polling fallback (`?transport=poll`, networks that break WebSockets), with the
    // same keys: still connected after a held poll came back (a refused one shows "stopped" or
    // "offline"); then back to the WebSocket.
    let online = phone.ask(json!({"cmd": "open", "query": "?transport=poll"}), "online");
    assert_eq!(online["transport"], "connected (long-polling)", "{online}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let status = phone.ask(json!({"cmd": "status"}), "status");
    assert_eq!(status["transport"], "connected (long-polling)", "{status}");
    assert_eq!(status["sockets"]["opened"], 6, "no WebSocket when told to poll: {status}");
    let online = phone.ask(json!({"cmd": "open", "query": ""}), "online");
    assert_eq!(online["transport"], "connected (WebSocket)", "{online}");

    // An application signs a PDF (PAdES B-T, made in the service); the phone approves.
    let mut api = Api::new(&server);
    api.login("alice").await;
    let pdf = one_page_pdf("signed on a phone");
    let sign_doc = |api: &Api, sad: String| {
        let api = api.clone();
        let body = json!({"credentialID": credential, "SAD": sad, "documents": [
            {"document": b64(&pdf), "signature_format": "P", "conformance_level": "Ades-B-T", "signAlgo": ECDSA_SHA256}]});
        tokio::spawn(async move { api.post("signatures/signDoc", body).await })
    };
    let sad = api.sad(&credential, 1, Some((&[sha256(&pdf)], SHA256))).await;
    let signing = sign_doc(&api, sad);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if signing.is_finished() {
        let (status, v) = signing.await.unwrap();
        panic!("signDoc must wait for the phone, but answered {status} {v}");
    }
    let shown = phone.ask(json!({"cmd": "request", "screenshot": "request-websocket"}), "request");
    let png = shots.join("request-websocket.png");
    let bytes = std::fs::read(&png).unwrap_or_else(|_| panic!("no screenshot {}", png.display()));
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{} is not a real screenshot", png.display());
    let kept = workspace().join("target/device-phone.png");
    std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
    std::fs::copy(&png, &kept).unwrap();
    println!("the phone page's request screenshot: {} (and {})", kept.display(), png.display());
    assert_eq!(shown["title"], "Sign a document", "{shown}");
    assert_eq!(shown["count"], "1", "{shown}");
    let label = shown["label"].as_str().unwrap();
    assert!(label.contains("PDF"), "the page names what is signed: {shown}");
    let shown_code = shown["code"].as_str().unwrap().to_string();
    assert!(shown_code.len() == 4 && shown_code.bytes().all(|b| b.is_ascii_digit()), "{shown}");
    let answered = phone.ask(json!({"cmd": "sign"}), "answered");
    assert_eq!(answered["ack"], "signed:accepted", "{answered}");
    let (status, v) = signing.await.unwrap();
    assert_eq!(status, 200, "signDoc: {v}");
    let signed = env.file("signed-on-phone.pdf");
    let signed_bytes = unb64(v["DocumentWithSignature"][0].as_str().unwrap());
    assert!(signed_bytes.starts_with(&pdf), "an incremental update of the document sent");
    std::fs::write(&signed, &signed_bytes).unwrap();
    let validated = run(Command::new(python().with_file_name("pyhanko"))
        .args(["sign", "validate", "--trust"])
        .arg(&root)
        .arg("--trust-replace")
        .arg(&signed));
    assert!(validated.contains(":INTACT:TRUSTED") && validated.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "{validated}");
    // The code on the phone is the one of the digest its key signed (doc "Verification code").
    let digest = signed_attributes_digest(&signed);
    let expected = cloudsign_device::VerificationCode::of(&[digest]).unwrap();
    assert_eq!(shown_code, expected.as_str(), "the page's code is the signed digest's");

    // The other structures the service builds, each signed on the phone over its data to be
    // signed (doc "DTBS and DTBS/R"): CAdES from a digest (the signed attributes), XAdES (the
    // canonical SignedInfo), JAdES detached (the JWS signing input, which holds the document).
    let data = b"a contract, signed on a phone\n".to_vec();
    let xml =
        b"<?xml version=\"1.0\"?>\n<inv:Invoice xmlns:inv=\"urn:example:invoice\"><inv:Total>12.50</inv:Total></inv:Invoice>\n".to_vec();
    let payload = b"a JAdES payload, detached, signed on a phone\n".to_vec();
    let sad = api.sad(&credential, 3, Some((&[sha256(&data), sha256(&xml), sha256(&payload)], SHA256))).await;
    // signHash has no data to be signed to give a phone: refused, and the SAD is untouched.
    let (status, v) = api.sign(&credential, &sad, &[sha256(&data)], ECDSA_SHA256, None).await;
    assert_error("signatures/signHash", status, &v, 400, "invalid_request", "signs documents only: use signatures/signDoc");
    // A JAdES signing input over 64 KiB cannot be carried to the phone: refused before the SAD
    // is spent.
    let big = vec![b'x'; 70 * 1024];
    let too_big = json!({"credentialID": credential, "SAD": sad,
        "documents": [{"document": b64(&big), "signature_format": "J", "conformance_level": "Ades-B-B", "signAlgo": ECDSA_SHA256}]});
    api.err("signatures/signDoc", too_big, 400, "invalid_request", "larger than the 64 KiB a device request carries").await;
    let three = json!({"credentialID": credential, "SAD": sad,
        "documentDigests": [{"hashes": [b64(&sha256(&data))], "hashAlgorithmOID": SHA256, "signature_format": "C",
            "conformance_level": "Ades-B-B", "signAlgo": ECDSA_SHA256}],
        "documents": [
            {"document": b64(&xml), "signature_format": "X", "conformance_level": "Ades-B-LT", "signAlgo": ECDSA_SHA256},
            {"document": b64(&payload), "signature_format": "J", "conformance_level": "Ades-B-LT", "signAlgo": ECDSA_SHA256}]});
    let signing = {
        let api = api.clone();
        tokio::spawn(async move { api.post("signatures/signDoc", three).await })
    };
    for (k, what) in [(1, "CAdES"), (2, "XAdES"), (3, "JAdES")] {
        let shown = phone.ask(json!({"cmd": "request", "screenshot": format!("request-{what}")}), "request");
        let label = shown["label"].as_str().unwrap();
        assert!(label.contains(what) && label.contains(&format!("({k} of 3)")), "{shown}");
        let answered = phone.ask(json!({"cmd": "sign"}), "answered");
        assert_eq!(answered["ack"], "signed:accepted", "{what}: {answered}");
    }
    let (status, v) = signing.await.unwrap();
    assert_eq!(status, 200, "signDoc: {v}");
    let write = |name: &str, bytes: &[u8]| {
        let f = env.file(name);
        std::fs::write(&f, bytes).unwrap();
        f
    };
    let (content, detached) = (write("phone-contract.txt", &data), write("phone-payload.txt", &payload));
    let cades = write("phone.p7s", &unb64(v["SignatureObject"][0].as_str().unwrap()));
    let jades = write("phone.json", &unb64(v["SignatureObject"][1].as_str().unwrap()));
    let xades = write("phone.xml", &unb64(v["DocumentWithSignature"][0].as_str().unwrap()));
    // B-B with the revocation status fetched from the running service; B-LT offline, from what
    // it embeds.
    for (file, detached, level, offline) in
        [(&cades, Some(&content), "B-B", false), (&xades, None, "B-LT", true), (&jades, Some(&detached), "B-LT", true)]
    {
        let report = verify_passes(&env, file, &root, detached.map(|p| p.as_path()), offline);
        assert!(report.contains(&format!("level:         {level}\n")), "{file:?}: {report}");
    }
    // And the CAdES by openssl, which shares no code with the service.
    let chain = write("phone-chain.pem", &[std::fs::read(&issuing).unwrap(), std::fs::read(&root).unwrap()].concat());
    run(Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(&cades)
        .arg("-content")
        .arg(&content)
        .arg("-CAfile")
        .arg(&chain)
        .args(["-purpose", "any", "-out", "/dev/null"]));

    // The same phone over long-polling (networks that break WebSockets); the signer declines.
    let online = phone.ask(json!({"cmd": "open", "query": "?transport=poll"}), "online");
    assert_eq!(online["transport"], "connected (long-polling)", "{online}");
    let sad = api.sad(&credential, 1, Some((&[sha256(&pdf)], SHA256))).await;
    let declined = sign_doc(&api, sad);
    let shown = phone.ask(json!({"cmd": "request", "screenshot": "request-poll"}), "request");
    assert!(shown["label"].as_str().unwrap().contains("PDF"), "{shown}");
    let answered = phone.ask(json!({"cmd": "decline"}), "answered");
    assert_eq!(answered["ack"], "declined:accepted", "{answered}");
    let (status, v) = declined.await.unwrap();
    assert_error("signatures/signDoc", status, &v, 400, "access_denied", "declined");

    let bye = phone.ask(json!({"cmd": "quit"}), "bye");
    assert_eq!(bye["problems"], json!([]), "no script error, console error or CSP violation: {bye}");
}
