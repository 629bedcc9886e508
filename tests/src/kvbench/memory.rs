//! kv-bench's memory modes (issue 12 items 4 and 5), each on one Concord server:
//! - `--memory N`: the server's steady-state RSS holding N keys of [`VALUE_BYTES`], against the
//!   bound "2x the data size plus the RSS of the empty server";
//! - `--recurse-memory`: [`RECURSE_DATA_BYTES`] under one prefix, then [`RECURSE_READERS`]
//!   concurrent `?recurse` reads of it; RSS before, peak during (sampled), after.
//!
//! RSS is `VmRSS` from `/proc/<pid>/status`, sampled every [`SAMPLE_EVERY`] by a thread while the
//! reads run (the process's `VmHWM` would also count the load's own peak).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;

use super::client::Conn;
use super::load::{key_name, preload, System, VALUE_BYTES};

/// Data loaded under one prefix for `--recurse-memory`: ~54 MB, the figure.
pub const RECURSE_DATA_BYTES: usize = 54_000_000;
/// Value size for `--recurse-memory` (13,184 keys of 4 KiB make ~54 MB).
pub const RECURSE_VALUE_BYTES: usize = 4096;
/// Concurrent `?recurse` readers (the figure).
pub const RECURSE_READERS: usize = 5;
/// The prefix `--recurse-memory` loads and reads.
const RECURSE_PREFIX: &str = "big/";
/// How often the sampler reads VmRSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// Time the server gets to settle (apply, free buffers) before RSS is read.
const SETTLE: Duration = Duration::from_secs(3);
/// Concurrent writers for the loads.
const LOAD_CLIENTS: usize = 32;

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:").unwrap_or(0)
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Samples a process's VmRSS on a thread until stopped; reports the largest sample.
struct Sampler {
    stop: Arc<AtomicBool>,
    max_kib: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kib = Arc::new(AtomicU64::new(rss_kib(pid)));
        let (s, m) = (stop.clone(), max_kib.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
        Self { stop, max_kib, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.max_kib.load(Ordering::Relaxed)
    }
}

/// Writes `keys` keys named by `name` with `value`, `LOAD_CLIENTS` at a time.
async fn load_keys(addr: SocketAddr, keys: u64, name: fn(u64) -> String, value: Bytes) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..LOAD_CLIENTS {
        let (next, value) = (next.clone(), value.clone());
        let mut conn = Conn::connect(addr).await?;
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= keys {
                    return Ok::<(), String>(());
                }
                let r = conn.request(Method::PUT, &format!("/v1/kv/{}", name(n)), value.clone()).await?;
                if r.status != 200 || r.body.trim_ascii() != b"true" {
                    return Err(format!("PUT {}: status {} {}", name(n), r.status, r.text()));
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("load task failed: {e}"))??;
    }
    Ok(())
}

fn recurse_key(n: u64) -> String {
    format!("{RECURSE_PREFIX}k{n:06}")
}

/// `--recurse-memory`: loads ~54 MB under one prefix into the server at `addr` (process `pid`),
/// then runs [`RECURSE_READERS`] concurrent `?recurse` reads; prints and returns the report.
/// Errors: a write or read fails, or the readers' answers differ.
pub async fn recurse_memory(addr: SocketAddr, pid: u32) -> Result<String, String> {
    let keys = (RECURSE_DATA_BYTES / RECURSE_VALUE_BYTES) as u64;
    let value = Bytes::from((0..RECURSE_VALUE_BYTES).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>());
    let empty_kib = rss_kib(pid);
    let t = Instant::now();
    load_keys(addr, keys, recurse_key, value).await?;
    eprintln!("  loaded {keys} keys x {RECURSE_VALUE_BYTES} B under {RECURSE_PREFIX} in {:.1}s", t.elapsed().as_secs_f64());
    tokio::time::sleep(SETTLE).await;
    let before_kib = rss_kib(pid);
    let sampler = Sampler::start(pid);
    let t = Instant::now();
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..RECURSE_READERS {
        let mut conn = Conn::connect(addr).await?;
        readers.spawn(async move {
            let r = conn.request(Method::GET, &format!("/v1/kv/{RECURSE_PREFIX}?recurse"), Bytes::new()).await?;
            match r.status {
                200 => Ok::<usize, String>(r.body.len()),
                s => Err(format!("?recurse: status {s} {}", r.text())),
            }
        });
    }
    let mut sizes = Vec::new();
    while let Some(done) = readers.join_next().await {
        sizes.push(done.map_err(|e| format!("reader failed: {e}"))??);
    }
    let read_secs = t.elapsed().as_secs_f64();
    let peak_kib = sampler.finish();
    if sizes.iter().any(|&s| s != sizes[0]) {
        return Err(format!("the readers' answers differ in size: {sizes:?}"));
    }
    tokio::time::sleep(SETTLE).await;
    let after_kib = rss_kib(pid);
    let data_mb = (keys as usize * RECURSE_VALUE_BYTES) as f64 / 1e6;
    Ok(format!(
        "recurse-memory: {keys} keys x {RECURSE_VALUE_BYTES} B = {data_mb:.1} MB under {RECURSE_PREFIX}; {RECURSE_READERS} concurrent ?recurse reads of {:.1} MB JSON each in {read_secs:.1}s\n\
         server RSS: empty {:.0} MB, before reads {:.0} MB, peak during {:.0} MB (+{:.0} MB, {:.2}x before), after {:.0} MB",
        sizes[0] as f64 / 1e6,
        mb(empty_kib),
        mb(before_kib),
        mb(peak_kib),
        mb(peak_kib.saturating_sub(before_kib)),
        peak_kib as f64 / before_kib.max(1) as f64,
        mb(after_kib),
    ))
}

/// `--memory N`: the RSS of the empty server at `addr` (process `pid`; the fixed base), then of
/// the same server holding `keys` keys of [`VALUE_BYTES`] once settled; the bound is
/// `2 x data + base`, data counting keys and values. Errors: a write fails.
pub async fn steady_memory(addr: SocketAddr, pid: u32, keys: u64) -> Result<String, String> {
    tokio::time::sleep(SETTLE).await;
    let base_kib = rss_kib(pid);
    let t = Instant::now();
    preload(System::Concord, &[addr], keys, LOAD_CLIENTS).await?;
    eprintln!("  loaded {keys} keys x {VALUE_BYTES} B in {:.1}s", t.elapsed().as_secs_f64());
    tokio::time::sleep(SETTLE).await;
    let loaded_kib = rss_kib(pid);
    let hwm_kib = status_kib(pid, "VmHWM:").unwrap_or(0);
    let data_bytes: u64 = (0..keys).map(|n| (key_name(n).len() + VALUE_BYTES) as u64).sum();
    let data_kib = data_bytes / 1024;
    let bound_kib = 2 * data_kib + base_kib;
    let verdict = if loaded_kib <= bound_kib { "within" } else { "OVER" };
    Ok(format!(
        "memory: {keys} keys x {VALUE_BYTES} B = {:.1} MB of keys and values\n\
         server RSS: empty (base) {:.0} MB, holding them {:.0} MB (peak {:.0} MB); (RSS - base) / data = {:.2}x; \
         bound 2 x data + base = {:.0} MB: {verdict}",
        data_bytes as f64 / 1e6,
        mb(base_kib),
        mb(loaded_kib),
        mb(hwm_kib),
        loaded_kib.saturating_sub(base_kib) as f64 / data_kib.max(1) as f64,
        mb(bound_kib),
    ))
}
