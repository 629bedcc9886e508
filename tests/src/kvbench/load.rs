//! kv-bench's closed-loop load: what one operation is on Concord and on etcd, N clients each
//! looping on its own keep-alive connection until the duration or the op budget runs out, and the
//! pre-load of the read key space.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;

use super::client::Conn;
use super::etcd;
use super::stats::{new_histogram, record, Summary};

/// Which store a load runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Concord,
    Etcd,
}

/// One benchmark operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Concord `PUT /v1/kv/<key>`; etcd `/v3/kv/put`. Random key of the write key space.
    Put,
    /// Concord `GET /v1/kv/<key>` (default consistency); etcd `/v3/kv/range` (linearizable,
    /// etcd has no leader-lease read mode). Random pre-loaded key.
    Get,
    /// Concord `GET ?consistent`; etcd `/v3/kv/range` (linearizable).
    GetConsistent,
    /// Concord `GET ?stale`; etcd `/v3/kv/range` with `serializable`.
    GetStale,
    /// A read-modify-write on the client's own key: Concord `GET` then `PUT ?cas=<ModifyIndex>`;
    /// etcd range then `/v3/kv/txn` comparing `mod_revision`. One op = both requests.
    Cas,
}

impl Op {
    /// Every operation, in table order.
    pub const ALL: [Op; 5] = [Op::Put, Op::Get, Op::GetConsistent, Op::GetStale, Op::Cas];

    /// The row label: Concord's request, then etcd's.
    pub fn label(self) -> &'static str {
        match self {
            Op::Put => "PUT / put",
            Op::Get => "GET default / range",
            Op::GetConsistent => "GET ?consistent / range",
            Op::GetStale => "GET ?stale / range serializable",
            Op::Cas => "CAS: GET+PUT ?cas / range+txn",
        }
    }
}

/// Keys written at random.
pub const WRITE_KEYS: u64 = 100_000;
/// Keys pre-loaded and read at random (the first `READ_KEYS` of the write key space).
pub const READ_KEYS: u64 = 10_000;
/// Bytes per value.
pub const VALUE_BYTES: usize = 256;

/// The `n`th benchmark key.
pub fn key_name(n: u64) -> String {
    format!("bench/k{n:06}")
}

/// A 256-byte printable value (the same bytes for every write; the size is what matters).
pub fn value() -> Bytes {
    Bytes::from((0..VALUE_BYTES).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>())
}

/// xorshift64*: a cheap per-client key picker (no shared state, no OS randomness).
pub struct Rng(u64);

impl Rng {
    /// A generator for client `i` (never zero state).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform-ish in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Concord's path for `key` with an optional query.
fn kv_path(key: &str, query: &str) -> String {
    if query.is_empty() {
        format!("/v1/kv/{key}")
    } else {
        format!("/v1/kv/{key}?{query}")
    }
}

fn expect(ok: bool, what: &str, reply: &super::client::Reply) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: status {} {}", reply.status, reply.text()))
    }
}

/// Concord's `ModifyIndex` of the first entry of a KV GET answer.
fn concord_modify_index(body: &[u8]) -> Result<u64, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("KV answer is not JSON: {e}"))?;
    v[0]["ModifyIndex"].as_u64().ok_or_else(|| format!("KV answer without ModifyIndex: {v}"))
}

/// Performs `op` once on `key` and checks the answer.
pub async fn one_op(conn: &mut Conn, sys: System, op: Op, key: &str, value: &Bytes) -> Result<(), String> {
    match sys {
        System::Concord => {
            let (method, query) = match op {
                Op::Put => (Method::PUT, ""),
                Op::Get => (Method::GET, ""),
                Op::GetConsistent => (Method::GET, "consistent"),
                Op::GetStale => (Method::GET, "stale"),
                Op::Cas => {
                    let r = conn.request(Method::GET, &kv_path(key, ""), Bytes::new()).await?;
                    let index = match r.status {
                        404 => 0,
                        200 => concord_modify_index(&r.body)?,
                        _ => return expect(false, "CAS read", &r),
                    };
                    let r = conn.request(Method::PUT, &kv_path(key, &format!("cas={index}")), value.clone()).await?;
                    return expect(r.status == 200 && r.body.trim_ascii() == b"true", "CAS write", &r);
                }
            };
            let body = if method == Method::PUT { value.clone() } else { Bytes::new() };
            let r = conn.request(method, &kv_path(key, query), body).await?;
            let ok = r.status == 200 && (op != Op::Put || r.body.trim_ascii() == b"true");
            expect(ok, key, &r)
        }
        System::Etcd => {
            let (path, body) = match op {
                Op::Put => ("/v3/kv/put", etcd::put_body(key, value)),
                Op::Get | Op::GetConsistent => ("/v3/kv/range", etcd::range_body(key, false)),
                Op::GetStale => ("/v3/kv/range", etcd::range_body(key, true)),
                Op::Cas => {
                    let r = conn.request(Method::POST, "/v3/kv/range", etcd::range_body(key, false).into()).await?;
                    expect(r.status == 200, "CAS range", &r)?;
                    let rev = etcd::range_mod_revision(&r.body)?;
                    let r = conn.request(Method::POST, "/v3/kv/txn", etcd::cas_txn_body(key, value, rev).into()).await?;
                    return expect(r.status == 200 && etcd::txn_succeeded(&r.body), "CAS txn", &r);
                }
            };
            let r = conn.request(Method::POST, path, body.into()).await?;
            let ok = r.status == 200 && (op == Op::Put || r.body.windows(5).any(|w| w == b"\"kvs\""));
            expect(ok, key, &r)
        }
    }
}

/// One measured row's shape.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// What every client does.
    pub op: Op,
    /// Concurrent closed-loop clients, one connection each.
    pub clients: usize,
    /// Each client stops at this wall time...
    pub duration: Duration,
    /// ...or when the clients together have started this many operations.
    pub max_ops: u64,
    /// Keys `0..read_keys` are pre-loaded and read.
    pub read_keys: u64,
}

/// Opens `clients` connections, client `i` to `addrs[i % addrs.len()]` (callers put the leader
/// first, so one client talks to the leader on both systems).
pub async fn connect_all(addrs: &[SocketAddr], clients: usize) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        conns.push(Conn::connect(addrs[i % addrs.len()]).await?);
    }
    Ok(conns)
}

/// Runs `load` against `addrs` and summarises it. The first error is returned alongside (errors
/// are counted, not fatal, so one slow answer does not void a row).
pub async fn run_load(sys: System, addrs: &[SocketAddr], load: Load) -> Result<(Summary, Option<String>), String> {
    let conns = connect_all(addrs, load.clients).await?;
    let budget = Arc::new(AtomicI64::new(i64::try_from(load.max_ops).unwrap_or(i64::MAX)));
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let budget = budget.clone();
        tasks.spawn(async move {
            let (mut h, mut errors, mut first_error) = (new_histogram(), 0u64, None);
            let mut rng = Rng::new(i as u64 + 1);
            let value = value();
            let cas_key = format!("bench/cas{i:03}");
            while Instant::now() < deadline && budget.fetch_sub(1, Ordering::Relaxed) > 0 {
                let key = match load.op {
                    Op::Put => key_name(rng.below(WRITE_KEYS)),
                    Op::Cas => cas_key.clone(),
                    _ => key_name(rng.below(load.read_keys)),
                };
                let t = Instant::now();
                match one_op(&mut conn, sys, load.op, &key, &value).await {
                    Ok(()) => record(&mut h, t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (h, errors, first_error)
        });
    }
    let (mut all, mut errors, mut first_error) = (new_histogram(), 0, None);
    while let Some(done) = tasks.join_next().await {
        let (h, e, fe) = done.map_err(|e| format!("client task failed: {e}"))?;
        all.add(&h).map_err(|e| format!("merge histograms: {e}"))?;
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    Ok((Summary::of(&all, errors, started.elapsed()), first_error))
}

/// Writes keys `0..keys` with `clients` concurrent clients (not measured: it fills the read key
/// space). Errors: any write fails.
pub async fn preload(sys: System, addrs: &[SocketAddr], keys: u64, clients: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in connect_all(addrs, clients).await? {
        let next = next.clone();
        tasks.spawn(async move {
            let value = value();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= keys {
                    return Ok::<(), String>(());
                }
                one_op(&mut conn, sys, Op::Put, &key_name(n), &value).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("preload task failed: {e}"))??;
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_picker() {
        assert_eq!(key_name(42), "bench/k000042");
        assert_eq!(value().len(), VALUE_BYTES);
        let mut rng = Rng::new(1);
        let picks: Vec<u64> = (0..1000).map(|_| rng.below(10)).collect();
        assert!(picks.iter().all(|&p| p < 10));
        assert!((0..10).all(|d| picks.contains(&d)), "every key is reachable");
        assert_ne!(Rng::new(1).below(1 << 40), Rng::new(2).below(1 << 40), "clients pick different keys");
    }

    #[test]
    fn concord_cas_reads_the_modify_index() {
        assert_eq!(concord_modify_index(br#"[{"Key":"k","ModifyIndex":17,"Value":"dg=="}]"#), Ok(17));
        assert!(concord_modify_index(b"[]").is_err());
        assert_eq!(kv_path("bench/k000001", "cas=3"), "/v1/kv/bench/k000001?cas=3");
    }
}
