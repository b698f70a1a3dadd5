//! HTTP limits and metrics on the real binary (issue 15, items 3 and 5): slow-header and idle
//! keep-alive connections are closed after their (short, configured) timeouts while other
//! clients are served; the connection cap; the per-client rate limit answers 429 with
//! `Retry-After` and recovers; `/metrics` on its own address counts signHash calls.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

fn addr(server: &Server) -> String {
    server.url.strip_prefix("http://").unwrap().to_string()
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(addr(server)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Read one HTTP/1.1 response (head and `Content-Length` body); its status.
fn read_response(s: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed in the middle of a response: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize =
        head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head[9..12].parse().unwrap()
}

fn get_crl(s: &mut TcpStream) -> u16 {
    s.write_all(b"GET /crl HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    read_response(s)
}

/// Wait until the server closes `s` (EOF or reset); how long that took.
fn time_to_close(s: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_while_others_are_served() {
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_HEADER_READ_TIMEOUT", "1").with_env("CLOUDSIGN_IDLE_TIMEOUT", "3");
    let server = env.start();
    let (a, b) = (connect(&server), connect(&server));
    let trickler = std::thread::spawn(move || {
        // Slowloris: a request head one byte every 200 ms never completes in time.
        let mut s = a;
        let started = Instant::now();
        s.write_all(b"GET /crl HTTP/1.1\r\nHost: test\r\n").unwrap();
        for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
            if s.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = time_to_close(&mut s);
        started.elapsed()
    });
    let silent = std::thread::spawn(move || {
        let mut s = b;
        time_to_close(&mut s)
    });
    // Meanwhile another client is served, twice on one connection.
    let mut c = connect(&server);
    assert_eq!(get_crl(&mut c), 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get_crl(&mut c), 200);
    let slow = trickler.join().unwrap();
    assert!(slow >= Duration::from_millis(900) && slow < Duration::from_secs(4), "slow head closed after {slow:?}");
    let silent = silent.join().unwrap();
    assert!(silent >= Duration::from_millis(900) && silent < Duration::from_secs(4), "silent connection closed after {silent:?}");

    // Idle keep-alive: the header timeout (1 s) does not apply between requests, the idle one
    // (3 s) does, counted from the last response.
    let mut idle = connect(&server);
    assert_eq!(get_crl(&mut idle), 200);
    std::thread::sleep(Duration::from_millis(1800));
    assert_eq!(get_crl(&mut idle), 200, "idle for less than idle_timeout: still open");
    let closed = time_to_close(&mut idle);
    assert!(closed >= Duration::from_millis(2500) && closed < Duration::from_secs(6), "idle connection closed after {closed:?}");
    // The server is still fine.
    let mut d = connect(&server);
    assert_eq!(get_crl(&mut d), 200);
}

/// A request whose head arrives at once but whose body trickles in is answered 408 once
/// `body_read_timeout` has passed, and its connection closed; a slow handler is not a slow
/// body (a whole body sent at once, then a signature made, is never cut off).
#[tokio::test]
async fn slow_bodies_are_answered_408_and_closed() {
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_BODY_READ_TIMEOUT", "1").with_env("CLOUDSIGN_HEADER_READ_TIMEOUT", "30");
    let server = env.start();
    let mut s = connect(&server);
    let body = br#"{"lang": "en-US"}"#;
    let started = Instant::now();
    s.write_all(
        format!("POST /csc/v2/info HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len())
            .as_bytes(),
    )
    .unwrap();
    let trickle = std::thread::spawn({
        let mut s = s.try_clone().unwrap();
        move || {
            for byte in body {
                if s.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    });
    assert_eq!(read_response(&mut s), 408, "a body still incomplete after 1 s");
    let answered = started.elapsed();
    assert!(answered >= Duration::from_millis(900) && answered < Duration::from_secs(4), "answered after {answered:?}");
    let closed = time_to_close(&mut s);
    assert!(closed < Duration::from_secs(3), "the connection is closed after the 408 ({closed:?})");
    let _ = trickle.join();
    // The same body sent at once is served, on a connection of its own.
    let mut t = connect(&server);
    t.write_all(
        format!("POST /csc/v2/info HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len())
            .as_bytes(),
    )
    .unwrap();
    t.write_all(body).unwrap();
    assert_eq!(read_response(&mut t), 200);
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_MAX_CONNECTIONS", "3");
    let server = env.start();
    let mut open: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    for s in open.iter_mut() {
        assert_eq!(get_crl(s), 200);
    }
    let mut extra = connect(&server);
    let _ = extra.write_all(b"GET /crl HTTP/1.1\r\nHost: test\r\n\r\n");
    let mut buf = [0u8; 64];
    let started = Instant::now();
    assert!(matches!(extra.read(&mut buf), Ok(0) | Err(_)), "a fourth connection is closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The three are still served; one closed makes room for a new one.
    assert_eq!(get_crl(&mut open[0]), 200);
    drop(open.pop());
    let mut served = false;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let mut s = connect(&server);
        if s.write_all(b"GET /crl HTTP/1.1\r\nHost: test\r\n\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| n > 0) {
            served = true;
            break;
        }
    }
    assert!(served, "a slot freed by a closed connection is used again");
}

#[tokio::test]
async fn unauthenticated_endpoints_are_rate_limited_per_client() {
    let env = Env::new(BIN, "sqlite")
        .with_env("CLOUDSIGN_RATE_LIMIT", "2")
        .with_env("CLOUDSIGN_RATE_LIMIT_BURST", "3")
        .with_env("CLOUDSIGN_TRUSTED_PROXIES", "127.0.0.1");
    let server = env.start();
    let http = reqwest::Client::new();
    let get = |path: &str, forwarded: Option<&str>| {
        let mut req = http.get(format!("{}{path}", server.url));
        if let Some(f) = forwarded {
            req = req.header("x-forwarded-for", f);
        }
        req.send()
    };
    for path in ["/crl", "/arl", "/oauth2/assets/style.css"] {
        assert_eq!(get(path, None).await.unwrap().status(), 200, "{path}: within the burst");
    }
    for path in ["/crl", "/ocsp/AA", "/validation/v1/openapi.json", "/.well-known/oauth-authorization-server"] {
        let resp = get(path, None).await.unwrap();
        assert_eq!(resp.status(), 429, "{path}: over the burst");
        let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "access_denied", "{body}");
        assert!(body["error_description"].as_str().unwrap().contains("Too many requests"), "{body}");
    }
    let resp = http.post(format!("{}/tsa", server.url)).body(vec![0u8; 4]).send().await.unwrap();
    assert_eq!(resp.status(), 429, "/tsa is limited");
    // The CSC API is authenticated and not limited here.
    for _ in 0..10 {
        assert_eq!(http.get(format!("{}/csc/v2/info", server.url)).send().await.unwrap().status(), 200);
    }
    // Behind a trusted proxy, the client named in X-Forwarded-For has its own bucket.
    assert_eq!(get("/crl", Some("203.0.113.7")).await.unwrap().status(), 200);
    assert_eq!(get("/crl", Some("198.51.100.1, 203.0.113.8")).await.unwrap().status(), 200);
    // And the window refills: 2 per second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get("/crl", None).await.unwrap().status(), 200, "recovered after the window");
}

/// `name{labels}` → value, from the text exposition format.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {l:?}"));
            (k.to_string(), v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")))
        })
        .collect()
}

#[tokio::test]
async fn metrics_are_served_on_their_own_address() {
    let metrics_at = free_loopback_addr();
    let env = Env::new(BIN, "sqlite").with_env("CLOUDSIGN_METRICS_LISTEN", &metrics_at);
    env.add_user("alice");
    let cred = env.add_credential("alice", &["--key", "ecdsa-p256", "--scal", "1", "--multisign", "10"]);
    let id = cred["credentialID"].as_str().unwrap().to_string();
    let server = env.start();
    let http = reqwest::Client::new();
    let scrape = || async {
        let resp = http.get(format!("http://{metrics_at}/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        parse_metrics(&resp.text().await.unwrap())
    };
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);

    let mut api = Api::new(&server);
    api.login("alice").await;
    let sad = api.sad(&id, 5, None).await;
    for i in 0..3 {
        let (status, body) = api.sign(&id, &sad, &[sha256(format!("doc {i}").as_bytes())], ECDSA_SHA256, None).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = api.authorize(&id, 1, None, serde_json::json!([{"id": "PIN", "value": "999999"}])).await;
    assert_eq!(status, 400);

    let m = scrape().await;
    let route = "route=\"/csc/v2/signatures/signHash\"";
    assert_eq!(get(&m, &format!("cloudsign_http_requests_total{{{route},status=\"200\"}}")), 3.0, "{m:?}");
    assert_eq!(get(&m, &format!("cloudsign_http_request_duration_seconds_count{{{route}}}")), 3.0);
    assert!(get(&m, &format!("cloudsign_http_request_duration_seconds_sum{{{route}}}")) > 0.0);
    assert_eq!(get(&m, &format!("cloudsign_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}}")), 3.0);
    assert_eq!(get(&m, "cloudsign_signatures_total{backend=\"software\"}"), 3.0);
    assert_eq!(get(&m, "cloudsign_sads_issued_total"), 1.0);
    assert_eq!(get(&m, "cloudsign_sad_signatures_spent_total"), 3.0);
    assert_eq!(get(&m, "cloudsign_audit_events_total{event=\"credentials.authorize\",outcome=\"ok\"}"), 1.0);
    assert_eq!(get(&m, "cloudsign_refusals_total{event=\"credentials.authorize\",reason=\"wrong_pin\"}"), 1.0, "{m:?}");
    assert_eq!(get(&m, "cloudsign_http_requests_total{route=\"/csc/v2/credentials/authorize\",status=\"400\"}"), 1.0);
    assert!(get(&m, "cloudsign_http_open_connections") >= 1.0);
    assert!(!m.keys().any(|k| k.starts_with("cloudsign_store_errors_total{")), "no store errors: {m:?}");

    // The counters move.
    let (status, _) = api.sign(&id, &sad, &[sha256(b"doc 4")], ECDSA_SHA256, None).await;
    assert_eq!(status, 200);
    let m2 = scrape().await;
    assert_eq!(get(&m2, &format!("cloudsign_http_requests_total{{{route},status=\"200\"}}")), 4.0);
    assert_eq!(get(&m2, "cloudsign_signatures_total{backend=\"software\"}"), 4.0);
    assert_eq!(get(&m2, "cloudsign_sad_signatures_spent_total"), 4.0);

    // Not on the API's address, and the metrics address serves nothing else.
    assert_eq!(http.get(format!("{}/metrics", server.url)).send().await.unwrap().status(), 404);
    assert_eq!(http.get(format!("http://{metrics_at}/csc/v2/info")).send().await.unwrap().status(), 404);
}
