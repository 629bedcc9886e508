//! Blocking-query fan-out: N watchers of one key, each on its own connection, then one write;
//! how long until every watcher has its answer. Concord watchers are blocking GETs
//! (`?index=<X-Consul-Index>`); etcd watchers are `/v3/watch` streams, ready once etcd has sent
//! the `created` message, answered at the first event.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;

use super::client::Conn;
use super::etcd;
use super::load::{one_op, value, Op, System};
use super::stats::{new_histogram, record};

/// The watched key.
const WATCH_KEY: &str = "bench/watch";
/// Concurrent connection attempts while watchers connect (keeps SYNs within the listen backlog).
const CONNECT_CONCURRENCY: usize = 128;

/// The outcome of one fan-out.
#[derive(Clone, Debug)]
pub struct FanOut {
    /// Watchers started.
    pub watchers: usize,
    /// Watchers that got the write within the timeout.
    pub answered: usize,
    /// Time from the write being sent until the last watcher had its answer.
    pub all: Duration,
    /// ...until half of them had.
    pub p50: Duration,
    /// ...until 99% had.
    pub p99: Duration,
    /// The triggering write's own latency.
    pub write: Duration,
}

/// Runs one fan-out of `watchers` spread over `addrs` round-robin. Errors: watchers cannot
/// connect or be set up within `timeout`, or one answers before the write (a wrong index).
pub async fn fan_out(sys: System, addrs: &[SocketAddr], watchers: usize, timeout: Duration) -> Result<FanOut, String> {
    let mut control = Conn::connect(addrs[0]).await?;
    one_op(&mut control, sys, Op::Put, WATCH_KEY, &value()).await?;
    let index = match sys {
        System::Concord => {
            let r = control.request(Method::GET, &format!("/v1/kv/{WATCH_KEY}"), Bytes::new()).await?;
            r.consul_index.ok_or_else(|| format!("GET {WATCH_KEY}: no X-Consul-Index ({})", r.status))?
        }
        System::Etcd => 0,
    };
    let ready = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..watchers {
        let (addr, ready, finished, connecting) = (addrs[i % addrs.len()], ready.clone(), finished.clone(), connecting.clone());
        tasks.spawn(async move {
            let permit = connecting.acquire_owned().await.map_err(|e| e.to_string())?;
            let mut conn = Conn::connect(addr).await?;
            drop(permit);
            let answered = match sys {
                System::Concord => {
                    ready.fetch_add(1, Ordering::SeqCst);
                    let path = format!("/v1/kv/{WATCH_KEY}?index={index}&wait=120s");
                    let r = conn.request(Method::GET, &path, Bytes::new()).await?;
                    if r.status != 200 || r.consul_index.unwrap_or(0) <= index {
                        return Err(format!("watcher got status {} index {:?}", r.status, r.consul_index));
                    }
                    Instant::now()
                }
                System::Etcd => etcd_watch(&mut conn, &ready).await?,
            };
            finished.fetch_add(1, Ordering::SeqCst);
            Ok::<Instant, String>(answered)
        });
    }
    let setup_deadline = Instant::now() + timeout;
    while ready.load(Ordering::SeqCst) < watchers {
        if Instant::now() > setup_deadline {
            return Err(format!("only {} of {watchers} watchers ready", ready.load(Ordering::SeqCst)));
        }
        if let Some(Ok(Err(e))) = tasks.try_join_next() {
            return Err(format!("watcher failed during setup: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A Concord watcher counts as ready once it has sent its GET; give the servers time to park
    // every request (no acknowledgement exists for a blocking query that is still waiting).
    tokio::time::sleep(Duration::from_millis(200) + Duration::from_micros(100) * watchers as u32).await;
    if finished.load(Ordering::SeqCst) != 0 {
        return Err("a watcher answered before the write".into());
    }
    let t0 = Instant::now();
    one_op(&mut control, sys, Op::Put, WATCH_KEY, &value()).await?;
    let write = t0.elapsed();
    let mut h = new_histogram();
    let mut last = Duration::ZERO;
    let answer_deadline = tokio::time::Instant::now() + timeout;
    while let Ok(Some(done)) = tokio::time::timeout_at(answer_deadline, tasks.join_next()).await {
        if let Ok(Ok(at)) = done {
            let d = at.saturating_duration_since(t0);
            record(&mut h, d);
            last = last.max(d);
        }
    }
    tasks.abort_all();
    let us = |q: f64| Duration::from_micros(if h.is_empty() { 0 } else { h.value_at_quantile(q) });
    Ok(FanOut { watchers, answered: h.len() as usize, all: last, p50: us(0.5), p99: us(0.99), write })
}

/// One etcd watch stream: counts itself ready at the `created` message and returns when the
/// first event arrives.
async fn etcd_watch(conn: &mut Conn, ready: &AtomicUsize) -> Result<Instant, String> {
    let resp = conn.send(Method::POST, "/v3/watch", etcd::watch_body(WATCH_KEY).into()).await?;
    if resp.status() != 200 {
        return Err(format!("/v3/watch: status {}", resp.status()));
    }
    let mut body = resp.into_body();
    let mut seen = Vec::new();
    let mut created = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("/v3/watch stream: {e}"))?;
        if let Some(data) = frame.data_ref() {
            seen.extend_from_slice(data);
        }
        if !created && contains(&seen, b"\"created\":true") {
            created = true;
            ready.fetch_add(1, Ordering::SeqCst);
        }
        if created && contains(&seen, b"\"events\"") {
            return Ok(Instant::now());
        }
    }
    Err("/v3/watch stream ended without an event".into())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
