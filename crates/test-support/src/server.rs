//! The real `cloudsign` binary on a real socket: a throw-away data directory and (for
//! PostgreSQL) a throw-away database ([`Env`]), users and credentials made through
//! `cloudsign admin`, started servers ([`Server`]) and a CSC client that returns status and
//! body so that tests can assert on errors too ([`Api`]).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{b64, unique};

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery";
/// The PIN every test credential gets.
pub const PIN: &str = "246810";
/// The PostgreSQL server tests use (trust authentication, database `test`).
pub const PG_HOST: &str = "127.0.0.1";

/// Which database a server runs on.
#[derive(Clone)]
pub enum Db {
    /// SQLite in the data directory (the embedded default).
    Sqlite,
    /// A fresh PostgreSQL database (dropped when the `Env` goes away).
    Postgres(String),
}

/// A data directory + database shared by one or more server processes and admin commands.
pub struct Env {
    /// The `cloudsign` binary under test.
    pub bin: PathBuf,
    /// The data directory (`CLOUDSIGN_DATA_DIR`), removed when the `Env` goes away.
    pub dir: PathBuf,
    /// The database.
    pub db: Db,
    /// Variables set for every command and server of this environment.
    pub extra_env: Vec<(String, String)>,
}

impl Env {
    /// A fresh environment for the binary at `bin` on `db` (`sqlite`, or `postgres`: a new
    /// database on the local server, dropped with the `Env`).
    pub fn new(bin: impl Into<PathBuf>, db: &str) -> Env {
        let dir = std::env::temp_dir().join(unique("cloudsign-test-"));
        std::fs::create_dir_all(&dir).unwrap();
        let db = match db {
            "sqlite" => Db::Sqlite,
            "postgres" => {
                let name = unique("cs_");
                let out = Command::new("psql")
                    .args(["-h", PG_HOST, "-d", "test", "-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
                    .output()
                    .expect("psql (postgresql-client) must be installed");
                assert!(out.status.success(), "cannot create database: {}", String::from_utf8_lossy(&out.stderr));
                Db::Postgres(name)
            }
            other => panic!("unknown db {other}"),
        };
        // A light argon2 cost keeps the suite fast; the production default is in docs/configuration.md.
        Env { bin: bin.into(), dir, db, extra_env: vec![("CLOUDSIGN_ARGON2_MEMORY_KIB".into(), "4096".into())] }
    }

    /// The configuration of a real deployment: a public URL (`CLOUDSIGN_PUBLIC_URL`) on a
    /// loopback port reserved now, so that every certificate the CA issues names its OCSP
    /// responder (authority information access, RFC 5280 §4.2.2.1) and CRL distribution point
    /// (§4.2.1.13) on the service, and servers of this environment listen on that port. Must
    /// come before the first admin command: the CA hierarchy is made with the URL in it.
    pub fn with_public_url(self) -> Self {
        // Bound and released: the port stays free for `serve` (ports from `:0` are handed out
        // in turn, so another test taking it in the meantime is unlikely, and would only make
        // `serve` fail loudly).
        let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port");
        self.with_env("CLOUDSIGN_PUBLIC_URL", &format!("http://{addr}/"))
    }

    /// The public URL set by [`Env::with_public_url`] (or `CLOUDSIGN_PUBLIC_URL` given with
    /// [`Env::with_env`]), without its trailing slash.
    pub fn public_url(&self) -> Option<String> {
        self.extra_env.iter().rev().find(|(k, _)| k == "CLOUDSIGN_PUBLIC_URL").map(|(_, v)| v.trim_end_matches('/').to_string())
    }

    /// Where servers of this environment listen when no `--listen` is given: the port of a
    /// loopback public URL (see [`Env::with_public_url`]), else any free loopback port.
    fn listen_addr(&self) -> String {
        self.public_url()
            .and_then(|u| u.strip_prefix("http://127.0.0.1:").filter(|p| p.parse::<u16>().is_ok()).map(|p| format!("127.0.0.1:{p}")))
            .unwrap_or_else(|| "127.0.0.1:0".into())
    }

    /// One more variable for every command and server.
    pub fn with_env(mut self, k: &str, v: &str) -> Self {
        self.extra_env.push((k.into(), v.into()));
        self
    }

    /// `cloudsign` with a clean environment: `PATH`, the data directory, the database and
    /// [`Env::extra_env`].
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env_clear();
        c.env("PATH", std::env::var("PATH").unwrap_or_default());
        c.env("CLOUDSIGN_DATA_DIR", &self.dir);
        if let Db::Postgres(name) = &self.db {
            // psql connects as the OS user (or PGUSER); the service uses the same role.
            let role = std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into());
            let query = self.extra_env.iter().find(|(k, _)| k == "TEST_PG_QUERY").map(|(_, v)| format!("?{v}")).unwrap_or_default();
            c.env("CLOUDSIGN_DATABASE_URL", format!("postgres://{role}@{PG_HOST}:5432/{name}{query}"));
        }
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// Run `cloudsign admin ARGS` with `stdin`; returns stdout, panics on failure.
    pub fn admin(&self, args: &[&str], stdin: &str) -> String {
        let (ok, out, err) = self.admin_result(args, stdin);
        assert!(ok, "admin {args:?} failed: {err}");
        out
    }

    /// Run `cloudsign admin ARGS` with `stdin`: (success, stdout, stderr).
    pub fn admin_result(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        self.admin_result_env(&[], args, stdin)
    }

    /// [`Env::admin_result`] with some variables changed (e.g. another token label).
    pub fn admin_result_env(&self, vars: &[(&str, &str)], args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut child = self
            .command()
            .envs(vars.iter().copied())
            .arg("admin")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `admin init`: create the store (CA hierarchy included) unless it exists. `admin`
    /// commands refuse to create one themselves; `serve` does on its first start.
    pub fn init(&self) {
        self.admin(&["init"], "");
    }

    /// `admin user add NAME` with [`PASSWORD`], after [`Env::init`] (most tests start with
    /// their users; a test of a missing store runs its commands itself).
    pub fn add_user(&self, name: &str) {
        self.init();
        self.admin(&["user", "add", name, "--password-stdin"], &format!("{PASSWORD}\n"));
    }

    /// `admin credential add --user USER ... --json` with [`PIN`]: the credential as JSON.
    pub fn add_credential(&self, user: &str, extra: &[&str]) -> Value {
        let mut args = vec!["credential", "add", "--user", user, "--pin-stdin", "--json"];
        args.extend_from_slice(extra);
        let out = self.admin(&args, &format!("{PIN}\n"));
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("credential add output {out:?}: {e}"))
    }

    /// `cloudsign serve` on a free loopback port (the public URL's, if one was set with
    /// [`Env::with_public_url`]), once it listens.
    pub fn start(&self) -> Server {
        self.start_with(&[])
    }

    /// [`Env::start`] with more `serve` arguments.
    pub fn start_with(&self, args: &[&str]) -> Server {
        self.spawn_server(args, &[])
    }

    /// A server of this environment with some variables changed (e.g. a wrong HSM PIN).
    pub fn start_env(&self, vars: &[(&str, &str)]) -> Server {
        self.spawn_server(&[], vars)
    }

    fn spawn_server(&self, args: &[&str], vars: &[(&str, &str)]) -> Server {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.file("server.log")).unwrap();
        let listen = self.listen_addr();
        let mut child = self
            .command()
            .envs(vars.iter().copied())
            .arg("serve")
            .args(if args.contains(&"--listen") { Vec::new() } else { vec!["--listen", listen.as_str()] })
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("server did not print its URL");
        let url = line.strip_prefix("cloudsign listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_string();
        Server { child, url }
    }

    /// `admin ca export`: the issuing CA and the root, PEM.
    pub fn ca_pem(&self) -> String {
        self.admin(&["ca", "export"], "")
    }

    /// Everything the servers of this environment wrote to stderr.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.file("server.log")).unwrap_or_default()
    }

    /// A path in the data directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Db::Postgres(name) = &self.db {
            let _ = Command::new("psql")
                .args(["-h", PG_HOST, "-d", "test", "-c", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
                .output();
        }
    }
}

/// A running `cloudsign serve`, killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its base URL, as it printed it.
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CSC v2 client over HTTP, returning (status, body) so tests can assert on errors too.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The API's base URL (`.../csc/v2` or `.../csc/v1`).
    pub base: String,
    /// The bearer token, once logged in.
    pub token: Option<String>,
}

impl Api {
    /// A client of the CSC v2 adapter.
    pub fn new(server: &Server) -> Api {
        Api { http: reqwest::Client::new(), base: format!("{}/csc/v2", server.url), token: None }
    }

    /// A client of the CSC v1 adapter.
    pub fn v1(server: &Server) -> Api {
        Api { http: reqwest::Client::new(), base: format!("{}/csc/v1", server.url), token: None }
    }

    /// POST `method` with a JSON body and the bearer token.
    pub async fn post(&self, method: &str, body: Value) -> (u16, Value) {
        self.post_raw(method, body.to_string().into_bytes(), self.token.as_deref()).await
    }

    /// POST raw bytes as JSON, with `token` as the bearer.
    pub async fn post_raw(&self, method: &str, body: Vec<u8>, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}/{method}", self.base)).header("content-type", "application/json").body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method}: non-JSON body {text:?} (status {status})"))
        };
        (status, value)
    }

    /// `auth/login` with HTTP Basic and [`PASSWORD`]; keeps the access token.
    pub async fn login(&mut self, user: &str) -> Value {
        let (status, body) = self.try_login(user).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// [`Api::login`] that reports a refusal (status and body) instead of failing the test:
    /// for a test waiting for the service to recover.
    pub async fn try_login(&mut self, user: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/auth/login", self.base))
            .basic_auth(user, Some(PASSWORD))
            .json(&json!({"rememberMe": true}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 200 {
            self.token = Some(body["access_token"].as_str().unwrap().to_string());
        }
        (status, body)
    }

    /// POST and assert 200; the body.
    pub async fn ok(&self, method: &str, body: Value) -> Value {
        let (status, value) = self.post(method, body).await;
        assert_eq!(status, 200, "{method}: {value}");
        value
    }

    /// Assert a CSC error: status, `error` code, and a substring of the description.
    pub async fn err(&self, method: &str, body: Value, status: u16, code: &str, text: &str) -> Value {
        let (s, v) = self.post(method, body).await;
        assert_error(method, s, &v, status, code, text);
        v
    }

    /// `credentials/authorize` for `n` signatures, optionally bound to `hashes` (with their
    /// algorithm OID), with `authData` `auth`.
    pub async fn authorize(&self, credential: &str, n: u64, hashes: Option<(&[Vec<u8>], &str)>, auth: Value) -> (u16, Value) {
        let mut body = json!({"credentialID": credential, "numSignatures": n, "authData": auth});
        if let Some((hs, oid)) = hashes {
            body["hashes"] = json!(hs.iter().map(|h| b64(h)).collect::<Vec<_>>());
            body["hashAlgorithmOID"] = json!(oid);
        }
        self.post("credentials/authorize", body).await
    }

    /// A SAD authorized with [`PIN`].
    pub async fn sad(&self, credential: &str, n: u64, hashes: Option<(&[Vec<u8>], &str)>) -> String {
        let (s, v) = self.authorize(credential, n, hashes, json!([{"id": "PIN", "value": PIN}])).await;
        assert_eq!(s, 200, "authorize: {v}");
        v["SAD"].as_str().unwrap().to_string()
    }

    /// `signatures/signHash`.
    pub async fn sign(&self, credential: &str, sad: &str, hashes: &[Vec<u8>], sign_algo: &str, hash_oid: Option<&str>) -> (u16, Value) {
        let mut body = json!({"credentialID": credential, "SAD": sad, "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(), "signAlgo": sign_algo});
        if let Some(oid) = hash_oid {
            body["hashAlgorithmOID"] = json!(oid);
        }
        self.post("signatures/signHash", body).await
    }
}

/// Assert a CSC error response: status, `error` code, and a substring of
/// `error_description`.
pub fn assert_error(method: &str, status: u16, v: &Value, want_status: u16, code: &str, text: &str) {
    assert_eq!(status, want_status, "{method}: {v}");
    assert_eq!(v["error"], code, "{method}: {v}");
    let d = v["error_description"].as_str().unwrap_or_default();
    assert!(d.contains(text), "{method}: description {d:?} lacks {text:?}");
}
