//! `cloudsign bench`: in one run, (a) the raw in-process signing rate of the software keystore
//! on all cores, and (b) end-to-end `signatures/signHash` throughput over HTTP on loopback against
//! a real `cloudsign serve` process on SQLite, with 1 and with 100 hashes per request; each
//! figure is printed with its ratio to (a), measured in slices that alternate with (b). The
//! figures in docs/performance.md come from here.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use cloudsign_client::csc::{Api, Authorize, Client};
use cloudsign_csc::v2::SignHashRequest;
use cloudsign_csc::{HashAlgorithm, KeyAlgorithm, SignAlgorithm};
use cloudsign_keys::KeyBackend as _;
use cloudsign_keys::software::SoftwareKeystore;
use serde_json::json;

#[derive(Args)]
pub struct BenchArgs {
    /// Seconds of HTTP load per figure (split into `--rounds` slices).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Slices per figure: each slice of HTTP load is measured between two raw slices of the
    /// same length, so the VM's drift in speed reaches both sides of each ratio alike.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: u64,
    /// Concurrent HTTP clients. A throughput figure needs a load that keeps the server busy:
    /// with 8 clients the 1-hash run left the server's cores ~18 % idle (each client waits out
    /// a loopback round trip and a wake-up per request); at 32 the idle share is about 10 %.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Key types to measure (comma separated).
    #[arg(long, default_value = "ecdsa-p256,rsa-2048", value_delimiter = ',')]
    keys: Vec<String>,
    /// Print one JSON object per figure instead of a table.
    #[arg(long)]
    json: bool,
}

struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scheme_for(key: KeyAlgorithm) -> SignAlgorithm {
    match key {
        KeyAlgorithm::EcdsaP256 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha256),
        KeyAlgorithm::EcdsaP384 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha384),
        KeyAlgorithm::EcdsaP521 => SignAlgorithm::Ecdsa(HashAlgorithm::Sha512),
        _ => SignAlgorithm::RsaPkcs1(HashAlgorithm::Sha256),
    }
}

/// (a): signatures per second with one signing thread per core.
fn raw_rate(key: KeyAlgorithm, seconds: f64) -> anyhow::Result<f64> {
    let store = SoftwareKeystore::new(&[0x42; 32])?;
    let generated = store.generate(key, "bench")?;
    let signer = generated.key;
    let scheme = scheme_for(key);
    let digest = vec![0x5au8; scheme.hash().len()];
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (signer, stop, count, digest) = (signer.clone(), stop.clone(), count.clone(), digest.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if signer.sign_digest(scheme, &digest).is_ok() {
                        n += 1;
                    }
                }
                count.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn start_server(dir: &std::path::Path) -> anyhow::Result<(ServerChild, String)> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    // The bench runs on its own throw-away data directory: none of the caller's settings apply.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CLOUDSIGN_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CLOUDSIGN_DATA_DIR", dir)
        .env("CLOUDSIGN_LOG", "warn")
        .env("CLOUDSIGN_ARGON2_MEMORY_KIB", "4096")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the server")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let guard = ServerChild(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("cloudsign listening on ")
        .map(str::to_string)
        .with_context(|| format!("unexpected server output {line:?}"))?;
    Ok((guard, url))
}

/// Load before each HTTP slice is counted: enough for 32 clients' first responses at 100
/// RSA signatures per request.
const WARM_UP: Duration = Duration::from_millis(250);

/// Signatures one SAD allows in the bench: enough for any run length at 100 hashes/request.
const BENCH_SIGNATURES: u64 = 1_000_000_000;

/// (b): signatures per second through `signatures/signHash`.
async fn http_rate(
    csc: &Client,
    credential: &str,
    key: KeyAlgorithm,
    per_request: usize,
    seconds: f64,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let (url, token) = (csc.service(), csc.access_token().context("not logged in")?);
    let scheme = scheme_for(key);
    let authorize = Authorize {
        credential_id: credential,
        num_signatures: BENCH_SIGNATURES,
        hashes: &[],
        hash_algorithm: None,
        pin: Some("2468"),
        otp: None,
        description: None,
    };
    let sad = csc.authorize(&authorize).await?.sad;
    let digest = cloudsign_csc::b64::encode(&vec![0x5au8; scheme.hash().len()]);
    // The request is serialized once and sent raw by `load`.
    let body = serde_json::to_string(&SignHashRequest {
        credential_id: credential.into(),
        sad: Some(sad),
        hashes: vec![digest; per_request],
        hash_algorithm_oid: Some(scheme.hash().oid().into()),
        sign_algo: scheme.oid().into(),
        sign_algo_params: None,
        operation_mode: None,
        validity_period: None,
        response_uri: None,
        client_data: None,
    })?;
    let addr: std::net::SocketAddr = url.strip_prefix("http://").context("the bench server speaks plain HTTP")?.parse()?;
    let request = Arc::new(
        format!(
            "POST /csc/v2/signatures/signHash HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    // The clients run on one thread of their own (a current-thread runtime), as wrk runs one
    // event loop per thread: on two cores every extra client thread and cross-thread wake-up is
    // CPU taken from the server being measured.
    let client = {
        let (request, stop, count, failures) = (request.clone(), stop.clone(), count.clone(), failures.clone());
        std::thread::Builder::new().name("bench-client".into()).spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..concurrency {
                    let (request, stop, count, failures) = (request.clone(), stop.clone(), count.clone(), failures.clone());
                    tasks.spawn(async move {
                        if let Err(e) = load(addr, &request, &stop, &count, per_request as u64).await {
                            eprintln!("bench client: {e:#}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
            });
            Ok(())
        })?
    };
    // Counted from the moment the pipeline is full: until then the first requests are still in
    // progress and a short slice would be charged for the ramp-up.
    tokio::time::sleep(WARM_UP).await;
    let (started, counted_before) = (Instant::now(), count.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let counted = count.load(Ordering::Relaxed) - counted_before;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || client.join()).await?.map_err(|_| anyhow::anyhow!("the bench client panicked"))??;
    if failures.load(Ordering::Relaxed) > 0 {
        bail!("{} signHash requests failed during the run", failures.load(Ordering::Relaxed));
    }
    Ok(counted as f64 / elapsed)
}

/// One keep-alive connection sending the same signHash request until `stop`: a minimal
/// HTTP/1.1 client (the request serialized once, each response read by its Content-Length and
/// checked for 200). A general client's per-request work (pool, header maps, body streams) cost a
/// third of a core at 5,000 requests/s, taken from the server on a 2-core machine; load
/// generators such as wrk make the same choice.
async fn load(addr: std::net::SocketAddr, request: &[u8], stop: &AtomicBool, count: &AtomicU64, per_request: u64) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while !stop.load(Ordering::Relaxed) {
        stream.write_all(request).await?;
        buf.clear();
        let total = loop {
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("the server closed the connection");
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let head = std::str::from_utf8(&buf[..end])?;
            if !head.starts_with("HTTP/1.1 200") {
                bail!("signHash failed: {} {}", head.lines().next().unwrap_or_default(), String::from_utf8_lossy(&buf[end + 4..]));
            }
            let length = head
                .lines()
                .find_map(|l| {
                    l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse::<usize>())
                })
                .context("no Content-Length")??;
            break end + 4 + length;
        };
        while buf.len() < total {
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("the server closed the connection");
            }
        }
        count.fetch_add(per_request, Ordering::Relaxed);
    }
    Ok(())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let keys: Vec<KeyAlgorithm> =
        args.keys.iter().map(|k| KeyAlgorithm::from_name(k).with_context(|| format!("unknown key type {k}"))).collect::<Result<_, _>>()?;
    let dir = std::env::temp_dir().join(format!("cloudsign-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = crate::config::Settings { data_dir: Some(dir.clone()), argon2_memory_kib: Some(4096), ..Default::default() };
    let service = crate::open_service(&settings).await?;
    service.add_user("bench", zeroize::Zeroizing::new("bench password".into())).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut credentials = Vec::new();
    for key in &keys {
        let created = service
            .add_credential(cloudsign_domain::NewCredential {
                auth_mode: cloudsign_domain::AuthMode::Explicit,
                backend: cloudsign_domain::KeyStorage::Software,
                sole_control: false,
                user: "bench".into(),
                pin: zeroize::Zeroizing::new("2468".into()),
                key: *key,
                otp: None,
                scal: 1,
                multisign: BENCH_SIGNATURES as u32,
                description: Some("benchmark".into()),
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        credentials.push(created.credential_id);
    }
    service.close().await;
    drop(service);

    let (server, url) = start_server(&dir)?;
    let mut csc = Client::new(&url, Api::V2)?;
    csc.login("bench", "bench password", false).await?;

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if !args.json {
        println!(
            "cloudsign bench: {cores} cores, {} s of load per figure in {} slices, {} HTTP clients, SQLite, SCAL 1",
            args.seconds, args.rounds, args.concurrency
        );
        println!(
            "{:<12} {:>16} {:>18} {:>8} {:>20} {:>8}",
            "key", "raw sig/s", "1 hash/req sig/s", "ratio", "100 hashes/req sig/s", "ratio"
        );
    }
    let slice = args.seconds as f64 / args.rounds as f64;
    for (key, credential) in keys.iter().zip(&credentials) {
        // On a shared VM the machine's speed drifts by ±10 % within a minute, and a ratio of
        // two measurements taken a minute apart inherited that drift (single runs swung from
        // 73 % to 93 %). So each figure is measured in slices, each slice of HTTP load between
        // two raw slices of the same length, and the ratio is the HTTP signatures over the raw
        // signatures the same seconds would have given (the mean of the two raw slices around
        // each HTTP slice). The raw slice between the two figures serves both.
        let mut raw_prev = raw_rate(*key, slice)?;
        let mut raws = vec![raw_prev];
        let mut figures = Vec::new();
        for per_request in [1, 100] {
            let (mut signed, mut expected) = (0.0, 0.0);
            for _ in 0..args.rounds {
                let rate = http_rate(&csc, credential, *key, per_request, slice, args.concurrency).await?;
                let raw_next = raw_rate(*key, slice)?;
                signed += rate;
                expected += (raw_prev + raw_next) / 2.0;
                raws.push(raw_next);
                raw_prev = raw_next;
            }
            figures.push((signed / args.rounds as f64, signed / expected));
        }
        let [(one, ratio_1), (hundred, ratio_100)] = [figures[0], figures[1]];
        let raw = raws.iter().sum::<f64>() / raws.len() as f64;
        let (raw_min, raw_max) = raws.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        if args.json {
            println!(
                "{}",
                json!({"key": key.name(), "cores": cores, "raw_per_s": raw, "raw_slices_per_s": raws,
                       "http_1_per_s": one, "ratio_1": ratio_1, "http_100_per_s": hundred, "ratio_100": ratio_100})
            );
        } else {
            println!(
                "{:<12} {:>16.0} {:>18.0} {:>7.0}% {:>20.0} {:>7.0}%   (raw slices {:.0}–{:.0})",
                key.name(),
                raw,
                one,
                100.0 * ratio_1,
                hundred,
                100.0 * ratio_100,
                raw_min,
                raw_max
            );
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
