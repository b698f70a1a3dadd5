//! `cloudsign bench`: in one run, (a) the raw in-process signing rate of the key backend
//! (software keystore, or a PKCS#11 token with `--backend pkcs11`: `C_Sign` in a loop on the
//! backend's own session pool) on all cores, and (b) end-to-end `signatures/signHash`
//! throughput over HTTP on loopback against a real `cloudsign serve` process, with 1 and with
//! 100 hashes per request; each figure is printed with its ratio to (a), measured in slices
//! that alternate with (b), and with p50/p99 latency at full load (the closed-loop clients)
//! and at half load (the same clients paced to half the measured rate). With a PostgreSQL
//! `--database-url` everything is measured on SQLite and then on PostgreSQL in the same run.
//! On SQLite the WAL file's size is sampled during the load. The figures in
//! docs/performance.md come from here.

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
use cloudsign_keys::software::SoftwareKeystore;
use cloudsign_keys::{KeyBackend, SigningKey};
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
    /// Where the credentials' keys live: `software`, or `pkcs11` (the token of the usual
    /// `pkcs11_module`, `pkcs11_token` and `pkcs11_pin` settings; `SOFTHSM2_CONF` reaches the
    /// server).
    #[arg(long, default_value = "software")]
    backend: String,
    /// Also measure asynchronous signHash (`operationMode: "A"`, accept + signPolling until the
    /// result) against synchronous signHash, with the same client, in the same run.
    #[arg(long = "async")]
    asynchronous: bool,
}

/// The throw-away key-encryption key of a PostgreSQL bench database, so that a database filled
/// by an earlier run can be used again (the service refuses a KEK that does not match the
/// database's check value).
const BENCH_KEK: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

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

/// A key of the bench's backend for (a), made once per key type.
fn raw_key(backend: &dyn KeyBackend, key: KeyAlgorithm) -> anyhow::Result<Arc<dyn SigningKey>> {
    Ok(backend.generate(key, "bench-raw")?.key)
}

/// (a): signatures per second with one signing thread per core.
fn raw_rate(signer: &Arc<dyn SigningKey>, key: KeyAlgorithm, seconds: f64) -> anyhow::Result<f64> {
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

fn start_server(dir: &std::path::Path, database_url: Option<&str>, extra: &[(&str, String)]) -> anyhow::Result<(ServerChild, String)> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    // The bench runs on its own throw-away data directory: none of the caller's settings apply.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CLOUDSIGN_") {
            cmd.env_remove(k);
        }
    }
    if let Some(url) = database_url {
        cmd.env("CLOUDSIGN_DATABASE_URL", url).env("CLOUDSIGN_KEK", BENCH_KEK);
    }
    // The token, as the caller configured it (in the environment, not on the command line).
    cmd.envs(extra.iter().map(|(k, v)| (k, v)));
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

/// What one slice of HTTP load measured.
struct Slice {
    /// Signatures per second.
    rate: f64,
    /// Each counted request's latency, microseconds.
    latencies: Vec<u32>,
}

/// A signHash request body for `per_request` hashes under a fresh SAD for
/// [`BENCH_SIGNATURES`] signatures, in `operation_mode` (CSC 2.2 `"A"`) or synchronous.
async fn sign_hash_body(
    csc: &Client,
    credential: &str,
    key: KeyAlgorithm,
    per_request: usize,
    operation_mode: Option<&str>,
) -> anyhow::Result<String> {
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
    Ok(serde_json::to_string(&SignHashRequest {
        credential_id: credential.into(),
        sad: Some(sad),
        hashes: vec![digest; per_request],
        hash_algorithm_oid: Some(scheme.hash().oid().into()),
        sign_algo: scheme.oid().into(),
        sign_algo_params: None,
        operation_mode: operation_mode.map(str::to_string),
        validity_period: None,
        response_uri: None,
        client_data: None,
    })?)
}

/// (b): signatures per second through `signatures/signHash`. With `pace` (requests per second
/// in total) the clients send on a schedule instead of as fast as the server answers.
async fn http_rate(
    csc: &Client,
    credential: &str,
    key: KeyAlgorithm,
    per_request: usize,
    seconds: f64,
    concurrency: usize,
    pace: Option<f64>,
) -> anyhow::Result<Slice> {
    let (url, token) = (csc.service(), csc.access_token().context("not logged in")?);
    // The request is serialized once and sent raw by `load`.
    let body = sign_hash_body(csc, credential, key, per_request, None).await?;
    let addr: std::net::SocketAddr = url.strip_prefix("http://").context("the bench server speaks plain HTTP")?.parse()?;
    let request = Arc::new(
        format!(
            "POST /csc/v2/signatures/signHash HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    // Each client's interval between sends, for the paced run.
    let interval = pace.map(|rate| Duration::from_secs_f64(concurrency as f64 / rate.max(1.0)));
    // The clients run on one thread of their own (a current-thread runtime), as wrk runs one
    // event loop per thread: on two cores every extra client thread and cross-thread wake-up is
    // CPU taken from the server being measured.
    let client = {
        let (request, stop, count, failures) = (request.clone(), stop.clone(), count.clone(), failures.clone());
        let (counting, latencies) = (counting.clone(), latencies.clone());
        std::thread::Builder::new().name("bench-client".into()).spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for i in 0..concurrency {
                    let (request, stop, count, failures) = (request.clone(), stop.clone(), count.clone(), failures.clone());
                    let (counting, latencies) = (counting.clone(), latencies.clone());
                    // Paced clients start spread over one interval, not all at once.
                    let offset = interval.map(|d| d.mul_f64(i as f64 / concurrency as f64));
                    tasks.spawn(async move {
                        let load = Load { addr, request: &request, stop: &stop, counting: &counting, count: &count };
                        match load.run(per_request as u64, interval, offset).await {
                            Ok(mine) => latencies.lock().unwrap_or_else(|p| p.into_inner()).extend(mine),
                            Err(e) => {
                                eprintln!("bench client: {e:#}");
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
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
    counting.store(true, Ordering::Relaxed);
    let (started, counted_before) = (Instant::now(), count.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let counted = count.load(Ordering::Relaxed) - counted_before;
    let elapsed = started.elapsed().as_secs_f64();
    counting.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || client.join()).await?.map_err(|_| anyhow::anyhow!("the bench client panicked"))??;
    if failures.load(Ordering::Relaxed) > 0 {
        bail!("{} signHash requests failed during the run", failures.load(Ordering::Relaxed));
    }
    let latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Slice { rate: counted as f64 / elapsed, latencies })
}

/// The `q` quantile of `v` (sorted here), in milliseconds.
fn quantile_ms(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    f64::from(v[i]) / 1000.0
}

/// One client connection's shared state.
struct Load<'a> {
    addr: std::net::SocketAddr,
    request: &'a [u8],
    stop: &'a AtomicBool,
    /// Past the warm-up: requests are counted and their latencies kept.
    counting: &'a AtomicBool,
    count: &'a AtomicU64,
}

/// One keep-alive connection sending the same signHash request until `stop`: a minimal
/// HTTP/1.1 client (the request serialized once, each response read by its Content-Length and
/// checked for 200). A general client's per-request work (pool, header maps, body streams) cost a
/// third of a core at 5,000 requests/s, taken from the server on a 2-core machine; load
/// generators such as wrk make the same choice.
/// Paced (`interval`), a request's latency is counted from its scheduled send time, so a server
/// that falls behind is charged for the wait it causes (no "coordinated omission").
impl Load<'_> {
    async fn run(&self, per_request: u64, interval: Option<Duration>, offset: Option<Duration>) -> anyhow::Result<Vec<u32>> {
        let Load { addr, request, stop, counting, count } = *self;
        let mut latencies = Vec::new();
        let mut next = tokio::time::Instant::now() + offset.unwrap_or_default();
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        while !stop.load(Ordering::Relaxed) {
            let sent = match interval {
                Some(d) => {
                    tokio::time::sleep_until(next).await;
                    let at = next;
                    next += d;
                    at
                }
                None => tokio::time::Instant::now(),
            };
            exchange(&mut stream, &mut buf, request).await?;
            if counting.load(Ordering::Relaxed) {
                count.fetch_add(per_request, Ordering::Relaxed);
                latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
        }
        Ok(latencies)
    }
}

/// Send `request` and read its response (which must be a 200) by its Content-Length.
async fn exchange(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, request: &[u8]) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    {
        stream.write_all(request).await?;
        buf.clear();
        let total = loop {
            if stream.read_buf(buf).await? == 0 {
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
            if stream.read_buf(buf).await? == 0 {
                bail!("the server closed the connection");
            }
        }
    }
    Ok(())
}

/// One key's figures on one store.
struct Figures {
    store: &'static str,
    key: KeyAlgorithm,
    raw: f64,
    raws: Vec<f64>,
    /// Per hashes/request (1, 100): (sig/s, ratio to raw, full-load p50/p99 ms, half-load p50/p99 ms).
    http: Vec<(f64, f64, (f64, f64), (f64, f64))>,
}

/// The SQLite WAL's size, sampled every 100 ms while the load runs: (largest, at the end).
struct WalWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
}

impl WalWatch {
    fn start(path: std::path::PathBuf) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("bench-wal".into()).spawn(move || {
            let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let mut largest = 0;
            while !flag.load(Ordering::Relaxed) {
                largest = largest.max(size());
                std::thread::sleep(Duration::from_millis(100));
            }
            (largest.max(size()), size())
        })?;
        Ok(Self { stop, thread })
    }

    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

pub async fn run(args: BenchArgs, settings: crate::config::Settings) -> anyhow::Result<()> {
    let keys: Vec<KeyAlgorithm> =
        args.keys.iter().map(|k| KeyAlgorithm::from_name(k).with_context(|| format!("unknown key type {k}"))).collect::<Result<_, _>>()?;
    let storage = cloudsign_domain::KeyStorage::parse(&args.backend).with_context(|| format!("unknown backend {}", args.backend))?;
    let pkcs11 = storage == cloudsign_domain::KeyStorage::Pkcs11;
    let pkcs11_config = if pkcs11 {
        Some(settings.pkcs11()?.context("--backend pkcs11 needs pkcs11_module, pkcs11_token and pkcs11_pin (or pkcs11_pin_file)")?)
    } else {
        None
    };
    // Before `--database-url` reached the bench it was ignored and SQLite measured instead.
    let postgres = match settings.database_url.as_deref() {
        Some(url) if url.starts_with("postgres:") || url.starts_with("postgresql:") => Some(url.to_string()),
        Some(url) => bail!(
            "--database-url for the bench names a PostgreSQL database (SQLite is always measured, in a throw-away directory), not {url}"
        ),
        None => None,
    };
    // (a): the backend itself, one key per type, made once.
    let backend: Box<dyn KeyBackend> = match &pkcs11_config {
        Some(cfg) => Box::new(cloudsign_keys::pkcs11::Pkcs11Backend::new(cloudsign_domain::Pkcs11Config {
            module: cfg.module.clone(),
            token: cfg.token.clone(),
            pin: cfg.pin.clone(),
        })),
        None => Box::new(SoftwareKeystore::new(&[0x42; 32])?),
    };
    let raw_keys = keys.iter().map(|k| raw_key(backend.as_ref(), *k)).collect::<anyhow::Result<Vec<_>>>()?;

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let stores: Vec<(&'static str, Option<String>)> =
        std::iter::once(("sqlite", None)).chain(postgres.map(|url| ("postgres", Some(url)))).collect();
    if !args.json {
        println!(
            "cloudsign bench: {cores} cores, {} s of load per figure in {} slices, {} HTTP clients, {} keys, SCAL 1; stores: {}",
            args.seconds,
            args.rounds,
            args.concurrency,
            storage.as_str(),
            stores.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(", ")
        );
    }
    let mut all = Vec::new();
    for (store, url) in &stores {
        let figures = measure_store(&args, &settings, &keys, &raw_keys, storage, store, url.as_deref()).await?;
        all.extend(figures);
    }
    if stores.len() > 1 {
        for key in &keys {
            let of = |store: &str| all.iter().find(|f: &&Figures| f.store == store && f.key == *key).map(|f| f.http[0].0);
            if let (Some(sqlite), Some(pg)) = (of("sqlite"), of("postgres")) {
                if args.json {
                    println!("{}", json!({"key": key.name(), "postgres_1_over_sqlite_1": pg / sqlite}));
                } else {
                    println!("{:<12} PostgreSQL / SQLite at 1 hash/request: {:.0} %", key.name(), 100.0 * pg / sqlite);
                }
            }
        }
    }
    Ok(())
}

/// Every figure of every key on one store: a fresh data directory (and, for PostgreSQL, the
/// given database), a server of its own.
#[allow(clippy::too_many_arguments)]
async fn measure_store(
    args: &BenchArgs,
    caller: &crate::config::Settings,
    keys: &[KeyAlgorithm],
    raw_keys: &[Arc<dyn SigningKey>],
    storage: cloudsign_domain::KeyStorage,
    store: &'static str,
    database_url: Option<&str>,
) -> anyhow::Result<Vec<Figures>> {
    let dir = std::env::temp_dir().join(format!("cloudsign-bench-{}-{store}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = crate::config::Settings {
        data_dir: Some(dir.clone()),
        database_url: database_url.map(str::to_string),
        kek: database_url.map(|_| BENCH_KEK.to_string()),
        argon2_memory_kib: Some(4096),
        // The token, as the caller configured it; nothing else of the caller's settings applies.
        pkcs11_module: caller.pkcs11_module.clone(),
        pkcs11_token: caller.pkcs11_token.clone(),
        pkcs11_pin: caller.pkcs11_pin.clone(),
        pkcs11_pin_file: caller.pkcs11_pin_file.clone(),
        ..Default::default()
    };
    let service = crate::open_service(&settings).await?;
    // A PostgreSQL database may hold an earlier run's user: each run has its own.
    let user = format!("bench-{}", std::process::id());
    service.add_user(&user, zeroize::Zeroizing::new("bench password".into())).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut credentials = Vec::new();
    for key in keys {
        let created = service
            .add_credential(cloudsign_domain::NewCredential {
                auth_mode: cloudsign_domain::AuthMode::Explicit,
                backend: storage,
                sole_control: false,
                user: user.clone(),
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

    let mut extra = Vec::new();
    if storage == cloudsign_domain::KeyStorage::Pkcs11 {
        let as_text = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        for (k, v) in [
            ("CLOUDSIGN_PKCS11_MODULE", as_text(&settings.pkcs11_module)),
            ("CLOUDSIGN_PKCS11_TOKEN", settings.pkcs11_token.clone()),
            ("CLOUDSIGN_PKCS11_PIN", settings.pkcs11_pin.clone()),
            ("CLOUDSIGN_PKCS11_PIN_FILE", as_text(&settings.pkcs11_pin_file)),
        ] {
            if let Some(v) = v {
                extra.push((k, v));
            }
        }
    }
    let (server, url) = start_server(&dir, database_url, &extra)?;
    let mut csc = Client::new(&url, Api::V2)?;
    csc.login(&user, "bench password", false).await?;
    let wal = if database_url.is_none() { Some(WalWatch::start(dir.join("cloudsign.db-wal"))?) } else { None };

    if !args.json {
        println!("{store}:");
        println!(
            "{:<12} {:>12} {:>14} {:>6} {:>18} {:>18} {:>16} {:>6} {:>18} {:>18}",
            "key",
            "raw sig/s",
            "1 hash sig/s",
            "ratio",
            "p50/p99 ms full",
            "p50/p99 ms half",
            "100 hashes sig/s",
            "ratio",
            "p50/p99 ms full",
            "p50/p99 ms half"
        );
    }
    let slice = args.seconds as f64 / args.rounds as f64;
    let mut out = Vec::new();
    for ((key, credential), signer) in keys.iter().zip(&credentials).zip(raw_keys) {
        // On a shared VM the machine's speed drifts by ±10 % within a minute, and a ratio of
        // two measurements taken a minute apart inherited that drift (single runs swung from
        // 73 % to 93 %). So each figure is measured in slices, each slice of HTTP load between
        // two raw slices of the same length, and the ratio is the HTTP signatures over the raw
        // signatures the same seconds would have given (the mean of the two raw slices around
        // each HTTP slice). The raw slice between the two figures serves both.
        let mut raw_prev = raw_rate(signer, *key, slice)?;
        let mut raws = vec![raw_prev];
        let mut http = Vec::new();
        for per_request in [1, 100] {
            let (mut signed, mut expected, mut latencies) = (0.0, 0.0, Vec::new());
            for _ in 0..args.rounds {
                let measured = http_rate(&csc, credential, *key, per_request, slice, args.concurrency, None).await?;
                let raw_next = raw_rate(signer, *key, slice)?;
                signed += measured.rate;
                latencies.extend(measured.latencies);
                expected += (raw_prev + raw_next) / 2.0;
                raws.push(raw_next);
                raw_prev = raw_next;
            }
            let rate = signed / args.rounds as f64;
            let full = (quantile_ms(&mut latencies, 0.5), quantile_ms(&mut latencies, 0.99));
            // Half load: the same clients, paced to half the requests per second just measured.
            let requests_per_s = rate / per_request as f64;
            let mut half = http_rate(&csc, credential, *key, per_request, slice, args.concurrency, Some(requests_per_s / 2.0)).await?;
            let half = (quantile_ms(&mut half.latencies, 0.5), quantile_ms(&mut half.latencies, 0.99));
            http.push((rate, signed / expected, full, half));
        }
        let raw = raws.iter().sum::<f64>() / raws.len() as f64;
        let (raw_min, raw_max) = raws.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let f = Figures { store, key: *key, raw, raws, http };
        if args.json {
            let per: Vec<_> = [1, 100]
                .iter()
                .zip(&f.http)
                .map(|(n, (rate, ratio, full, half))| {
                    json!({"hashes_per_request": n, "per_s": rate, "ratio": ratio,
                           "full_load_p50_ms": full.0, "full_load_p99_ms": full.1,
                           "half_load_p50_ms": half.0, "half_load_p99_ms": half.1})
                })
                .collect();
            println!(
                "{}",
                json!({"store": store, "backend": storage.as_str(), "key": key.name(), "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                       "raw_per_s": f.raw, "raw_slices_per_s": f.raws, "http": per})
            );
        } else {
            let [(one, r1, f1, h1), (hundred, r100, f100, h100)] = [f.http[0], f.http[1]];
            let pair = |(a, b): (f64, f64)| format!("{a:.2}/{b:.2}");
            println!(
                "{:<12} {:>12.0} {:>14.0} {:>5.0}% {:>18} {:>18} {:>16.0} {:>5.0}% {:>18} {:>18}   (raw slices {:.0}–{:.0})",
                key.name(),
                raw,
                one,
                100.0 * r1,
                pair(f1),
                pair(h1),
                hundred,
                100.0 * r100,
                pair(f100),
                pair(h100),
                raw_min,
                raw_max
            );
        }
        out.push(f);
    }
    if args.asynchronous {
        for (key, credential) in keys.iter().zip(&credentials) {
            let slice = args.seconds as f64;
            let sync = sync_vs_async(&csc, credential, *key, slice, args.concurrency, false).await?;
            let asynchronous = sync_vs_async(&csc, credential, *key, slice, args.concurrency, true).await?;
            if args.json {
                println!(
                    "{}",
                    json!({"store": store, "key": key.name(), "sync_sig_per_s": sync.0, "async_sig_per_s": asynchronous.0,
                           "sync_p50_ms": sync.1, "async_p50_ms": asynchronous.1, "async_polls_per_signature": asynchronous.2})
                );
            } else {
                println!(
                    "{:<12} 1 hash/request, one client for both: sync {:.0} sig/s (p50 {:.2} ms), async accept+poll {:.0} sig/s \
                     (p50 {:.2} ms to the result, {:.2} polls per result): {:.0} %",
                    key.name(),
                    sync.0,
                    sync.1,
                    asynchronous.0,
                    asynchronous.1,
                    asynchronous.2,
                    100.0 * asynchronous.0 / sync.0
                );
            }
        }
    }
    if let Some(wal) = wal {
        let (largest, end) = wal.finish();
        if args.json {
            println!("{}", json!({"store": store, "wal_largest_bytes": largest, "wal_end_bytes": end}));
        } else {
            println!(
                "SQLite WAL during the run: largest {:.1} MiB, at the end {:.1} MiB",
                largest as f64 / 1048576.0,
                end as f64 / 1048576.0
            );
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

/// Synchronous or asynchronous signHash, one hash per request, through one HTTP client (reqwest,
/// for both, so that the ratio is the mode's cost and not the client's): (signatures/s, p50 ms
/// from the first request to the signature, signPolling calls per signature). Asynchronous: the
/// accept, then signPolling every 2 ms until the result.
async fn sync_vs_async(
    csc: &Client,
    credential: &str,
    key: KeyAlgorithm,
    seconds: f64,
    concurrency: usize,
    asynchronous: bool,
) -> anyhow::Result<(f64, f64, f64)> {
    let (url, token) = (csc.service().to_string(), csc.access_token().context("not logged in")?.to_string());
    let body = sign_hash_body(csc, credential, key, 1, asynchronous.then_some("A")).await?;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, url, token, body) = (http.clone(), url.clone(), token.clone(), body.clone());
        tasks.spawn(async move {
            let (mut done, mut polls, mut latencies) = (0u64, 0u64, Vec::new());
            while Instant::now() < deadline {
                let started = Instant::now();
                let resp = http
                    .post(format!("{url}/csc/v2/signatures/signHash"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                if resp.status() != 200 {
                    bail!("signHash: HTTP {} {}", resp.status(), resp.text().await.unwrap_or_default());
                }
                let v: serde_json::Value = resp.json().await?;
                if asynchronous {
                    let id = v["responseID"].as_str().context("no responseID")?.to_string();
                    loop {
                        polls += 1;
                        let resp = http
                            .post(format!("{url}/csc/v2/signatures/signPolling"))
                            .bearer_auth(&token)
                            .json(&json!({"responseID": id}))
                            .send()
                            .await?;
                        if resp.status() == 200 {
                            resp.bytes().await?;
                            break;
                        }
                        let text = resp.text().await.unwrap_or_default();
                        if !text.contains("still being processed") {
                            bail!("signPolling: {text}");
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                done += 1;
                latencies.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Ok::<_, anyhow::Error>((done, polls, latencies))
        });
    }
    let started = Instant::now();
    let (mut done, mut polls, mut latencies) = (0u64, 0u64, Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (d, p, l) = r??;
        done += d;
        polls += p;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((done as f64 / elapsed, quantile_ms(&mut latencies, 0.5), polls as f64 / (done.max(1) as f64)))
}
