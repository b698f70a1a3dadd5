//! One behaviour suite over both backends: a local temporary directory, and moto (an
//! S3-compatible server, started here on 127.0.0.1 with signature checking on: it recomputes
//! every request's Signature Version 4 with botocore). Objects our client writes are read back
//! with boto3, a second, independent client. Outages: a refused port, a server that never
//! answers, a connection cut in the middle of a PUT, the server stopped; for the local backend a
//! directory that turns read-only.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloudsign_storage::{Body, DocumentStore, DocumentType, S3Config, SecretString, StorageError, local, sniff};
use cloudsign_test_support::{pdf::one_page_pdf, unique};

const LIMIT: u64 = 256 * 1024;

fn sha256(b: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    d.as_ref().try_into().unwrap()
}

fn xml_doc() -> Vec<u8> {
    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Invoice xmlns=\"urn:example\"><Total>42</Total></Invoice>\n".to_vec()
}

macro_rules! assert_err {
    ($e:expr, $pat:pat) => {
        match $e {
            Err($pat) => {}
            other => panic!("expected {}, got {:?}", stringify!($pat), other),
        }
    };
}

/// The behaviour both backends must show. `store` is empty and bounded by `LIMIT`.
async fn behaviour(store: &DocumentStore) {
    // Round trip, SHA-256 checked.
    let pdf = one_page_pdf("stored");
    let s = store.put("docs/a.pdf", &pdf, DocumentType::Pdf).await.unwrap();
    assert_eq!((s.key.as_str(), s.size, s.sha256), ("docs/a.pdf", pdf.len() as u64, sha256(&pdf)));
    let d = store.get("docs/a.pdf").await.unwrap();
    assert_eq!(d.bytes, pdf);
    assert_eq!(d.stored, s);
    assert_eq!(store.head("docs/a.pdf").await.unwrap(), s);

    // A stream upload.
    let xml = xml_doc();
    let s = store.put("docs/b.xml", Body::reader(&xml[..]), DocumentType::Xml).await.unwrap();
    assert_eq!(s.sha256, sha256(&xml));
    assert_eq!(store.get("docs/b.xml").await.unwrap().bytes, xml);
    store.put("other/c.bin", &b"\x00\x01binary"[..], DocumentType::Other).await.unwrap();

    // The content must be what was claimed; nothing is stored otherwise.
    assert_err!(store.put("docs/c.pdf", &xml, DocumentType::Pdf).await, StorageError::Invalid(_));
    assert_err!(store.put("docs/c.pdf", Body::reader(&xml[..]), DocumentType::Pdf).await, StorageError::Invalid(_));
    assert_err!(store.put("docs/c.xml", &pdf, DocumentType::Xml).await, StorageError::Invalid(_));
    assert_err!(store.get("docs/c.pdf").await, StorageError::NotFound { .. });
    assert_err!(store.get("docs/c.xml").await, StorageError::NotFound { .. });

    // List.
    let keys = |l: Vec<cloudsign_storage::Listed>| l.into_iter().map(|e| (e.key, e.size)).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list("docs/").await.unwrap()),
        vec![("docs/a.pdf".into(), pdf.len() as u64), ("docs/b.xml".into(), xml.len() as u64)]
    );
    assert_eq!(keys(store.list("docs/a").await.unwrap()), vec![("docs/a.pdf".into(), pdf.len() as u64)]);
    assert_eq!(store.list("").await.unwrap().len(), 3);
    assert!(store.list("none/").await.unwrap().is_empty());

    // Too large: refused, nothing left, by bytes and by stream; exactly the limit is accepted.
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(LIMIT as usize + 1, b' ');
    assert_err!(store.put("docs/big.pdf", &big, DocumentType::Pdf).await, StorageError::TooLarge { limit: LIMIT });
    assert_err!(store.put("docs/big.pdf", Body::reader(&big[..]), DocumentType::Pdf).await, StorageError::TooLarge { .. });
    assert_err!(store.get("docs/big.pdf").await, StorageError::NotFound { .. });
    let s = store.put("docs/big.pdf", &big[..LIMIT as usize], DocumentType::Pdf).await.unwrap();
    assert_eq!(s.size, LIMIT);
    store.delete("docs/big.pdf").await.unwrap();

    // A failed replacement leaves the previous document intact.
    assert_err!(store.put("docs/a.pdf", &big, DocumentType::Pdf).await, StorageError::TooLarge { .. });
    assert_err!(store.put("docs/a.pdf", &xml, DocumentType::Pdf).await, StorageError::Invalid(_));
    assert_eq!(store.get("docs/a.pdf").await.unwrap().bytes, pdf);
    // A successful one replaces it.
    let pdf2 = one_page_pdf("replaced");
    store.put("docs/a.pdf", &pdf2, DocumentType::Pdf).await.unwrap();
    assert_eq!(store.get("docs/a.pdf").await.unwrap().bytes, pdf2);
    store.put("docs/a.pdf", &pdf, DocumentType::Pdf).await.unwrap();

    // Bad keys are refused before any I/O.
    let long = "a".repeat(600);
    for key in [
        "",
        "/abs.pdf",
        "../x.pdf",
        "docs/../a.pdf",
        "docs/./a.pdf",
        "a//b",
        "docs/",
        ".hidden",
        "docs/.tmp-1",
        "a b",
        "a\\b",
        "ü.pdf",
        "a?b",
        "%2e%2e/x",
        long.as_str(),
    ] {
        assert_err!(store.put(key, &pdf, DocumentType::Pdf).await, StorageError::Invalid(_));
        assert_err!(store.get(key).await, StorageError::Invalid(_));
        assert_err!(store.head(key).await, StorageError::Invalid(_));
        assert_err!(store.delete(key).await, StorageError::Invalid(_));
    }
    for prefix in ["../", "/", "docs//", "a b"] {
        assert_err!(store.list(prefix).await, StorageError::Invalid(_));
    }

    // Delete and not found; deleting nothing succeeds (a retried delete is safe).
    store.delete("docs/b.xml").await.unwrap();
    assert_err!(store.get("docs/b.xml").await, StorageError::NotFound { .. });
    assert_err!(store.head("docs/b.xml").await, StorageError::NotFound { .. });
    store.delete("docs/b.xml").await.unwrap();
    assert_err!(store.get("never/stored.pdf").await, StorageError::NotFound { .. });
    assert_eq!(keys(store.list("docs/").await.unwrap()), vec![("docs/a.pdf".into(), pdf.len() as u64)]);
}

#[test]
fn sniffing() {
    assert_eq!(sniff(&one_page_pdf("x")), DocumentType::Pdf);
    assert_eq!(sniff(b"%PDF-2.0\n"), DocumentType::Pdf);
    assert_eq!(sniff(b"%PDF-"), DocumentType::Other);
    assert_eq!(sniff(b" %PDF-1.7"), DocumentType::Other, "the header must come first");
    assert_eq!(sniff(&xml_doc()), DocumentType::Xml);
    assert_eq!(sniff(b"\xEF\xBB\xBF\n  <root/>"), DocumentType::Xml);
    assert_eq!(sniff(b"<!-- c --><r/>"), DocumentType::Xml);
    assert_eq!(sniff(b"<1"), DocumentType::Other);
    assert_eq!(sniff(b""), DocumentType::Other);
    assert_eq!(sniff(b"\xFF\xFE<\0?\0x\0"), DocumentType::Other, "UTF-16 XML is not accepted as XML");
    assert_eq!(sniff(b"PK\x03\x04"), DocumentType::Other);
    assert_eq!(DocumentType::from_mime("application/pdf").unwrap(), DocumentType::Pdf);
    assert_eq!(DocumentType::from_mime("text/xml; charset=utf-8").unwrap(), DocumentType::Xml);
    assert_eq!(DocumentType::from_mime("application/vnd.etsi.asic-e+xml").unwrap(), DocumentType::Xml);
    assert!(DocumentType::from_mime("text/html").is_err());
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(unique(name))
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

/// Make `dir` refuse new files: mode 0500, or (as root, whom modes do not stop) the immutable
/// attribute. Returns false if neither works here.
fn make_read_only(dir: &Path, on: bool) -> bool {
    use std::os::unix::fs::PermissionsExt;
    if !on {
        let _ = Command::new("chattr").arg("-i").arg(dir).stderr(Stdio::null()).status();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        return true;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let probe = dir.join("probe");
    if std::fs::write(&probe, b"x").is_err() {
        return true;
    }
    std::fs::remove_file(&probe).unwrap();
    let ok = Command::new("chattr").arg("+i").arg(dir).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    ok && std::fs::write(&probe, b"x").is_err()
}

#[tokio::test]
async fn local_directory() {
    let root = temp_dir("cloudsign-storage-");
    let store = DocumentStore::local(root.join("documents"), LIMIT).await.unwrap();
    behaviour(&store).await;

    let docs = root.join("documents");
    assert_eq!(local::mode_of(&docs).unwrap(), 0o700);
    assert_eq!(local::mode_of(&docs.join("docs")).unwrap(), 0o700);
    assert_eq!(local::mode_of(&docs.join("docs/a.pdf")).unwrap(), 0o600);
    // Failed and refused uploads left no temporary file behind.
    let files = files_under(&docs);
    assert!(files.iter().all(|f| !f.contains(".tmp-")), "{files:?}");
    assert_eq!(files.len(), 2, "{files:?}");

    // A damaged file is reported, never served as the stored document.
    let pdf = one_page_pdf("damaged");
    store.put("docs/d.pdf", &pdf, DocumentType::Pdf).await.unwrap();
    let path = docs.join("docs/d.pdf");
    let mut raw = std::fs::read(&path).unwrap();
    let last = raw.len() - 3;
    raw[last] ^= 1;
    std::fs::write(&path, &raw).unwrap();
    assert_err!(store.get("docs/d.pdf").await, StorageError::Integrity { .. });
    store.delete("docs/d.pdf").await.unwrap();

    // Outage: the directory turns read-only in the middle of the flow.
    let kept = store.get("docs/a.pdf").await.unwrap();
    // Never skipped: a set-up where neither stops writes fails here rather than passing untested.
    assert!(make_read_only(&docs.join("docs"), true), "neither mode 0500 nor chattr +i stops writes here: the outage cannot be made");
    {
        let t = Instant::now();
        let e = store.put("docs/e.pdf", &pdf, DocumentType::Pdf).await;
        let replaced = store.put("docs/a.pdf", &pdf, DocumentType::Pdf).await;
        make_read_only(&docs.join("docs"), false);
        assert_err!(e, StorageError::Unavailable(_));
        assert_err!(replaced, StorageError::Unavailable(_));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_err!(store.get("docs/e.pdf").await, StorageError::NotFound { .. });
        assert_eq!(store.get("docs/a.pdf").await.unwrap(), kept);
        assert!(files_under(&docs).iter().all(|f| !f.contains(".tmp-")));
        // And it works again once writable.
        store.put("docs/e.pdf", &pdf, DocumentType::Pdf).await.unwrap();
    }
    std::fs::remove_dir_all(&root).unwrap();
}

// ---- moto ----

/// The pinned virtualenv's directory of tools: `CLOUDSIGN_MOTO` names `moto_server` itself;
/// otherwise the venv of `CLOUDSIGN_PYTHON` (as `venv_tool` in crates/cli/tests finds pyhanko);
/// otherwise the workspace's `.venv` that `scripts/test.sh` makes.
fn moto_server() -> PathBuf {
    if let Some(m) = std::env::var_os("CLOUDSIGN_MOTO") {
        return PathBuf::from(m);
    }
    venv_tool("moto_server")
}

fn venv_tool(name: &str) -> PathBuf {
    match std::env::var_os("CLOUDSIGN_PYTHON") {
        Some(p) => PathBuf::from(p).with_file_name(name),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin").join(name),
    }
}

fn python() -> PathBuf {
    match std::env::var_os("CLOUDSIGN_MOTO") {
        Some(m) if std::env::var_os("CLOUDSIGN_PYTHON").is_none() => PathBuf::from(m).with_file_name("python"),
        _ => venv_tool("python"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// moto with authentication on: the first 3 requests (creating an IAM user, its access key
    /// and its policy) go unchecked, every later one must carry a valid signature.
    fn start() -> Moto {
        let port = free_port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", moto_server().display()));
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// An IAM user allowed s3:*; its (access key id, secret), read from the script's stdout.
    fn credentials(&self) -> (String, String) {
        let script = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="cloudsign")
k = iam.create_access_key(UserName="cloudsign")["AccessKey"]
iam.put_user_policy(UserName="cloudsign", PolicyName="s3", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
print(k["AccessKeyId"]); print(k["SecretAccessKey"])
"#;
        let out = Command::new(python()).arg("-c").arg(script).arg(&self.endpoint).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut lines = out.stdout.lines();
        (lines.next().unwrap().unwrap(), lines.next().unwrap().unwrap())
    }
}

fn s3_config(endpoint: &str, bucket: &str, id: &str, secret: &str) -> S3Config {
    let mut c = S3Config::new(endpoint, "us-east-1", bucket, id, SecretString::new(secret.to_string()));
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(3);
    c
}

/// boto3 reads an object: (SHA-256 hex, Content-Type, our x-amz-meta-sha256). The credentials
/// go through the environment, not argv.
fn boto3_read(endpoint: &str, bucket: &str, key: &str, (id, secret): (&str, &str)) -> (String, String, String) {
    let script = r#"
import boto3, hashlib, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
o = s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])
print(hashlib.sha256(o["Body"].read()).hexdigest()); print(o["ContentType"]); print(o["Metadata"].get("sha256", ""))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args([endpoint, bucket, key])
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let l: Vec<String> = out.stdout.lines().map(Result::unwrap).collect();
    (l[0].clone(), l[1].clone(), l[2].clone())
}

/// A TCP relay to `upstream` that forwards at most `cut_after` bytes of the request, then
/// drops both connections: the PUT dies mid-body, as in a network or server outage.
fn cutting_proxy(upstream: SocketAddr, cut_after: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut client) = conn else { return };
            std::thread::spawn(move || {
                use std::io::Read;
                let Ok(mut server) = TcpStream::connect(upstream) else { return };
                let mut sent = 0;
                let mut buf = [0u8; 8192];
                while sent < cut_after {
                    let n = match client.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n.min(cut_after - sent),
                    };
                    if server.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    sent += n;
                }
                let _ = server.shutdown(std::net::Shutdown::Both);
                let _ = client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

/// A server that accepts connections and never answers.
fn silent_server() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_on_moto() {
    let mut moto = Moto::start();
    let (id, secret) = moto.credentials();
    let bucket = "cloudsign-docs";
    let store = DocumentStore::s3(s3_config(&moto.endpoint, bucket, &id, &secret), LIMIT).unwrap();
    // Before the bucket exists: a clear configuration error.
    assert_err!(store.put("docs/x.pdf", &one_page_pdf("x"), DocumentType::Pdf).await, StorageError::Invalid(_));
    store.create_bucket().await.unwrap();
    store.create_bucket().await.unwrap();
    behaviour(&store).await;

    // The secret stays out of Debug output.
    let dbg = format!("{store:?} {:?}", s3_config(&moto.endpoint, bucket, &id, &secret));
    assert!(!dbg.contains(&secret), "{dbg}");

    // A second client (boto3) reads what ours wrote.
    let pdf = one_page_pdf("read by boto3");
    let s = store.put("docs/boto.pdf", &pdf, DocumentType::Pdf).await.unwrap();
    let (sha, ctype, meta) = boto3_read(&moto.endpoint, bucket, "docs/boto.pdf", (&id, &secret));
    assert_eq!(sha, hex::encode(sha256(&pdf)));
    assert_eq!(sha, hex::encode(s.sha256));
    assert_eq!(meta, sha);
    assert_eq!(ctype, "application/pdf");

    // moto checks signatures: a wrong secret is refused as Denied, its error text has no secret.
    let wrong = DocumentStore::s3(s3_config(&moto.endpoint, bucket, &id, "not-the-secret"), LIMIT).unwrap();
    let e = wrong.get("docs/boto.pdf").await;
    assert_err!(&e, StorageError::Denied(_));
    let e = wrong.put("docs/forged.pdf", &pdf, DocumentType::Pdf).await.unwrap_err();
    assert!(matches!(e, StorageError::Denied(_)), "{e:?}");
    assert!(!e.to_string().contains("not-the-secret"));
    assert_err!(store.get("docs/forged.pdf").await, StorageError::NotFound { .. });

    let kept = store.get("docs/a.pdf").await.unwrap();
    let upstream: SocketAddr = moto.endpoint.trim_start_matches("http://").parse().unwrap();

    // Outage 1: a refused port.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let down = DocumentStore::s3(s3_config(&closed, bucket, &id, &secret), LIMIT).unwrap();
    let t = Instant::now();
    let e = down.put("docs/a.pdf", &pdf, DocumentType::Pdf).await.unwrap_err();
    assert!(e.is_retryable() && matches!(e, StorageError::Unavailable(_)), "{e:?}");
    assert!(!e.to_string().contains(&secret));
    assert_err!(down.get("docs/a.pdf").await, StorageError::Unavailable(_));
    assert_err!(down.list("").await, StorageError::Unavailable(_));
    assert!(t.elapsed() < Duration::from_secs(5));

    // Outage 2: a server that accepts and never answers: bounded by the request timeout.
    let (_silent, port) = silent_server();
    let hung = DocumentStore::s3(s3_config(&format!("http://127.0.0.1:{port}"), bucket, &id, &secret), LIMIT).unwrap();
    let t = Instant::now();
    assert_err!(hung.put("docs/hung.pdf", &pdf, DocumentType::Pdf).await, StorageError::Unavailable(_));
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());

    // Outage 3: the connection dies in the middle of the PUT body (about half of 200 KB sent).
    let mut halfway = b"%PDF-1.7\n".to_vec();
    halfway.resize(200 * 1024, b'x');
    let port = cutting_proxy(upstream, 100 * 1024);
    let cut = DocumentStore::s3(s3_config(&format!("http://127.0.0.1:{port}"), bucket, &id, &secret), LIMIT).unwrap();
    let t = Instant::now();
    assert_err!(cut.put("docs/a.pdf", &halfway, DocumentType::Pdf).await, StorageError::Unavailable(_));
    assert_err!(cut.put("docs/cut.pdf", &halfway, DocumentType::Pdf).await, StorageError::Unavailable(_));
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    // Nothing reported stored is missing, nothing not reported stored appeared.
    assert_eq!(store.get("docs/a.pdf").await.unwrap(), kept);
    assert_err!(store.get("docs/cut.pdf").await, StorageError::NotFound { .. });
    assert_eq!(store.list("docs/").await.unwrap().into_iter().map(|l| l.key).collect::<Vec<_>>(), vec!["docs/a.pdf", "docs/boto.pdf"]);

    // Outage 4: the server stops (moto keeps objects in memory, so only the failure is checked).
    let _ = moto.child.kill();
    let _ = moto.child.wait();
    let t = Instant::now();
    assert_err!(store.put("docs/after.pdf", &pdf, DocumentType::Pdf).await, StorageError::Unavailable(_));
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn s3_config_checks() {
    let ok = |e: &str| DocumentStore::s3(s3_config(e, "bucket-1", "id", "s"), LIMIT);
    assert!(ok("http://127.0.0.1:9000").is_ok());
    assert!(ok("https://s3.example.com").is_ok());
    assert!(matches!(ok("http://s3.example.com"), Err(StorageError::Invalid(_))), "plain http off the loopback");
    assert!(matches!(ok("ftp://127.0.0.1"), Err(StorageError::Invalid(_))));
    assert!(matches!(ok("http://u:p@127.0.0.1"), Err(StorageError::Invalid(_))));
    assert!(DocumentStore::s3(s3_config("http://127.0.0.1:1", "Bad_Bucket", "id", "s"), LIMIT).is_err());
    assert!(DocumentStore::s3(s3_config("http://127.0.0.1:1", "b1", "id", "s"), LIMIT).is_err());
    assert!(DocumentStore::s3(s3_config("http://127.0.0.1:1", "bucket", "id", ""), LIMIT).is_err());
    let dbg = format!("{:?}", s3_config("http://127.0.0.1:1", "bucket", "id", "very-secret"));
    assert!(!dbg.contains("very-secret") && dbg.contains("<redacted>"), "{dbg}");
}
