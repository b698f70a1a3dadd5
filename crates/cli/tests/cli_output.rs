//! The `cloudsign` binary towards the person or script that runs it: output into a closed pipe
//! ends quietly, never with a panic; `admin` commands refuse a data directory or database
//! without a store (only `admin init` and `serve` create one); `admin ca export` gives the
//! chain or the root alone, as openssl reads them.

mod common;

use std::process::{Command, Output, Stdio};

use common::*;

/// Run `cmd` with its standard output a pipe whose reading end is already closed, as after
/// `| head -1` has read its line: every write fails (EPIPE) or raises SIGPIPE.
fn into_closed_pipe(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdin(Stdio::null()).stdout(writer).stderr(Stdio::piped()).output().unwrap()
}

/// Run `cmd` normally: its output must not be empty, or the closed-pipe run proves nothing.
fn prints(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!stdout.trim().is_empty(), "{cmd:?} prints nothing: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The documented outcome of writing into a closed pipe (README, "Scripts and pipes"): the
/// process ends as `cat` does, killed by SIGPIPE (shell status 141), with nothing on stderr;
/// never Rust's "failed printing to stdout" panic and its exit code 101.
fn assert_ends_quietly(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_ne!(out.status.code(), Some(101), "{what}: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(out.status.signal(), Some(13), "{what}: ended by SIGPIPE, not {:?}; stderr: {stderr}", out.status);
    }
    assert!(stderr.trim().is_empty(), "{what}: nothing on stderr, got {stderr}");
}

fn admin(env: &Env, args: &[&str]) -> Command {
    let mut cmd = env.command();
    cmd.arg("admin").args(args);
    cmd
}

/// `admin ARGS` with `stdin`, for an `Env` whose store this test makes itself.
fn admin_output(env: &Env, args: &[&str], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = admin(env, args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The command may refuse before reading: a closed stdin is then not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `admin init` on `env`: its stderr.
fn init(env: &Env) -> String {
    let out = admin_output(env, &["init"], "");
    assert!(out.status.success(), "admin init: {}", stderr(&out));
    stderr(&out)
}

#[test]
fn closed_pipes_end_quietly() {
    let env = Env::new(BIN, "sqlite");
    init(&env);
    admin_output(&env, &["user", "add", "alice", "--password-stdin"], &format!("{PASSWORD}\n"));

    // clap writes help itself and ignores a closed stdout: exit 0.
    for args in [&["--help"][..], &["sign", "--help"], &["verify", "--help"], &["admin", "--help"]] {
        prints(env.command().args(args));
        let out = into_closed_pipe(env.command().args(args));
        assert!(!stderr(&out).contains("panicked"), "{args:?}: {}", stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }

    for args in [&["ca", "export"][..], &["user", "list"], &["audit"], &["audit", "export"], &["audit", "verify"]] {
        prints(&mut admin(&env, args));
        assert_ends_quietly(&format!("admin {args:?}"), &into_closed_pipe(&mut admin(&env, args)));
    }

    // `verify` prints a report: a detached CMS signature made by openssl with its own key.
    let (key, cert, content, sig) = (env.file("k.pem"), env.file("c.pem"), env.file("content.txt"), env.file("sig.p7s"));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=pipe test", "-days", "2"])
        .args(["-addext", "keyUsage=critical,digitalSignature,nonRepudiation", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    std::fs::write(&content, "read by head\n").unwrap();
    run(Command::new("openssl")
        .args(["cms", "-sign", "-binary", "-outform", "DER", "-in"])
        .arg(&content)
        .arg("-signer")
        .arg(&cert)
        .arg("-inkey")
        .arg(&key)
        .arg("-out")
        .arg(&sig));
    let verify = || {
        let mut cmd = env.command();
        cmd.arg("verify").arg(&sig).arg("--detached").arg(&content).arg("--trust").arg(&cert).arg("--offline");
        cmd
    };
    assert!(prints(&mut verify()).contains("TOTAL-PASSED"));
    assert_ends_quietly("verify", &into_closed_pipe(&mut verify()));
}

/// Run in a directory without a store, every admin command but `init` refuses, says where it
/// looked and what creates a store, and creates nothing: no data directory, key file,
/// database or CA.
#[test]
fn admin_refuses_a_missing_store() {
    let env = Env::new(BIN, "sqlite");
    let absent = env.dir.join("elsewhere");
    let commands: &[&[&str]] = &[
        &["user", "list"],
        &["user", "add", "bob", "--password-stdin"],
        &["credential", "list"],
        &["client", "list"],
        &["ca", "export"],
        &["audit"],
        &["audit", "export"],
        &["audit", "verify"],
    ];
    for (dir, label) in [(&env.dir, "an empty data directory"), (&absent, "a data directory that does not exist")] {
        for args in commands {
            let mut cmd = env.command();
            cmd.env("CLOUDSIGN_DATA_DIR", dir).arg("admin").args(*args);
            let out = {
                use std::io::Write as _;
                let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
                let _ = child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes());
                child.wait_with_output().unwrap()
            };
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{label}, admin {args:?}: {err}");
            let db = dir.join("cloudsign.db");
            assert_eq!(
                err.trim(),
                format!(
                    "error: there is no cloudsign store at {}: create one with `cloudsign admin init` (or `cloudsign serve`, \
                     which creates it on first start), or point --data-dir, --database-url or --config at the existing one",
                    db.display()
                ),
                "{label}, admin {args:?}"
            );
            assert!(out.stdout.is_empty(), "{label}, admin {args:?}: nothing on stdout");
        }
    }
    assert!(!absent.exists(), "the missing data directory was not created");
    assert_eq!(std::fs::read_dir(&env.dir).unwrap().count(), 0, "nothing was created in the empty data directory");

    // `admin init` creates it; a second one changes nothing; then the other commands work.
    let first = init(&env);
    assert!(first.contains(&format!("created the cloudsign store at {}", env.file("cloudsign.db").display())), "{first}");
    let root = admin_output(&env, &["ca", "export", "--root"], "");
    std::fs::write(env.file("root.pem"), &root.stdout).unwrap();
    // openssl's fingerprint of the exported root is the one `init` printed.
    let openssl_fingerprint =
        run(Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(env.file("root.pem")));
    let fingerprint = openssl_fingerprint.trim().rsplit('=').next().unwrap().to_string();
    assert!(first.contains(&format!("root CA SHA-256 fingerprint: {fingerprint}")), "{first} / {openssl_fingerprint}");
    let second = init(&env);
    assert!(second.contains("exists already; nothing changed"), "{second}");
    assert!(second.contains(&fingerprint), "the same CA: {second}");

    let out = admin_output(&env, &["user", "list"], "");
    assert!(out.status.success() && out.stdout.is_empty(), "{}", stderr(&out));
    let out = admin_output(&env, &["user", "add", "bob", "--password-stdin"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = admin_output(&env, &["user", "list"], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bob\tenabled\n");
}

/// On PostgreSQL a database without a store (no CA in it) is refused alike, with the URL
/// (its password never shown) in the message.
#[test]
fn admin_refuses_a_postgres_database_without_a_store() {
    let env = Env::new(BIN, "postgres");
    let out = admin_output(&env, &["user", "list"], "");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("there is no cloudsign store at postgres://") && err.contains("cloudsign admin init"), "{err}");
    assert!(!env.file("kek").exists(), "no key-encryption key was made for a store that does not exist");
    assert!(init(&env).contains("created the cloudsign store at postgres://"));
    let out = admin_output(&env, &["user", "list"], "");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `admin ca export`: by default (and with `--chain`) the issuing CA then the root, as
/// before; `--root` only the root, the single trust anchor that xmlsec1 `--trusted-pem` and
/// pyHanko take. Checked with openssl: subjects, issuers, and the chain verifies.
#[test]
fn ca_export_root_and_chain() {
    let env = Env::new(BIN, "sqlite");
    init(&env);
    let export = |args: &[&str]| {
        let mut all = vec!["ca", "export"];
        all.extend_from_slice(args);
        let out = admin_output(&env, &all, "");
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let split = |pem: &str| pem.split_inclusive("-----END CERTIFICATE-----\n").map(String::from).collect::<Vec<_>>();
    let subject_issuer = |pem: &str, name: &str| {
        let path = env.file(name);
        std::fs::write(&path, pem).unwrap();
        let text = run(Command::new("openssl").args(["x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253", "-in"]).arg(&path));
        let field = |p: &str| text.lines().find_map(|l| l.strip_prefix(p)).unwrap().trim().to_string();
        (field("subject="), field("issuer="), path)
    };

    let root = export(&["--root"]);
    let root_certs = split(&root);
    assert_eq!(root_certs.len(), 1, "{root}");
    let (subject, issuer, root_path) = subject_issuer(&root_certs[0], "root.pem");
    assert_eq!(subject, "CN=cloudsign Root CA,O=cloudsign");
    assert_eq!(issuer, subject, "self-signed");

    let chain = export(&["--chain"]);
    assert_eq!(export(&[]), chain, "the default is the chain, as before --chain existed");
    let certs = split(&chain);
    assert_eq!(certs.len(), 2, "{chain}");
    let (issuing_subject, issuing_issuer, issuing_path) = subject_issuer(&certs[0], "issuing.pem");
    assert!(issuing_subject.starts_with("CN=cloudsign Issuing CA"), "{issuing_subject}");
    assert_eq!(issuing_issuer, subject, "the issuing CA is certified by the root");
    assert_eq!(certs[1], root_certs[0], "the chain ends with the same root");
    let verified = run(Command::new("openssl").arg("verify").arg("-CAfile").arg(&root_path).arg(&issuing_path));
    assert!(verified.contains(": OK"), "{verified}");

    let both = admin_output(&env, &["ca", "export", "--root", "--chain"], "");
    assert_eq!(both.status.code(), Some(2), "usage error: {}", stderr(&both));
    assert!(stderr(&both).contains("cannot be used with"), "{}", stderr(&both));
}
