//! Workloads: what the clients of a run do and how their history is judged ([`Workload`]), chosen
//! by the scenario ([`scenarios::WorkloadKind`]).
//!
//! The KV register workload ([`KvRegister`]): clients issue KV reads, writes, CAS and deletes over
//! the HTTP API to random servers, with timeouts, and record every operation in the history
//! (invoke → ok / fail / info); each key is checked as a linearizable register.
//!
//! Values are unique per write (`client * 10^9 + counter`), so a CAS on a ModifyIndex the client
//! read can be checked as a CAS on the value it read (see `checker::history`).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use checker::{History, IndexObservation, InvariantViolation, OkResult, Op, OpFn, Outcome, ReadMode, Value, Verdict};
use hyper::{Method, StatusCode};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::http_client::{request, ClientError, Response};

/// Per-request timeout: past it the client records `info` (outcome unknown) and moves on.
pub const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// The `?wait=` of most blocking reads: under the simulator's tombstone TTL, so a blocking read
/// races the reaping of the tombstone it may be watching.
const SHORT_WAIT: Duration = Duration::from_millis(200);
/// The `?wait=` of the other blocking reads: well past the blocking-query latency bound
/// ([`checker::oracles::WAKE_BOUND_NS`]), so a query that is never woken shows as late.
const LONG_WAIT: Duration = Duration::from_secs(5);
/// Consul pads a blocking query's wait with up to wait/16 of jitter (`WAIT_JITTER_FRACTION`).
const WAIT_JITTER_DIVISOR: u32 = 16;

/// How long a client waits for a read in `mode`: [`OP_TIMEOUT`], plus a blocking read's wait
/// and the jitter Consul may add to it.
pub(crate) fn read_timeout(mode: &ReadMode) -> Duration {
    match mode {
        ReadMode::Blocking { wait_ms, .. } => {
            let wait = Duration::from_millis(*wait_ms);
            OP_TIMEOUT + wait + wait / WAIT_JITTER_DIVISOR
        }
        _ => OP_TIMEOUT,
    }
}

/// A workload: the client program every workload host runs, and the check of the history they
/// record. Catalog, session and lock workloads implement it next to [`KvRegister`].
pub trait Workload {
    /// The name printed in the report.
    fn name(&self) -> &'static str;
    /// What each independently checked object is, as the report names it (`kv`, `instance`).
    fn object(&self) -> &'static str;
    /// The program of one workload host; it records into `spec.history` until `spec.until`.
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>>;
    /// Judges the history: one verdict per independent object (e.g. per key), sorted by name.
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)>;
    /// The history oracles that apply to this workload's history (default: no phantom values,
    /// acknowledged writes survive, index monotonic).
    fn oracles(&self, history: &History) -> Vec<InvariantViolation> {
        checker::check_oracles(history)
    }
    /// The oracles of [`Self::oracles`], as the report lists them when they hold.
    fn oracle_names(&self) -> &'static str {
        "no phantom values, acknowledged writes survive, index monotonic"
    }
    /// After the cluster proved live: read every object through the servers (by host name and
    /// HTTP address) and record the reads as client 0, so the oracles can check that
    /// acknowledged writes survived everything. The catalog workload reads once with
    /// `?consistent` through the first server; the KV workload reads with `?consistent` through
    /// every server and then every server's applied state ([`crate::final_reads`]).
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>>;
    /// Whether each workload client sends its requests through a client agent of its own
    /// ([`crate::client_agents`]) instead of to the servers (default: no).
    fn through_client_agents(&self) -> bool {
        false
    }
    /// How long `final_reads` may take beyond a few requests (a convergence wait); the run's hard
    /// stop moves out by as much.
    fn final_reads_bound(&self) -> Duration {
        Duration::ZERO
    }
    /// The liveness oracles that apply to this workload's history, given the spans of time the
    /// nemesis had the cluster disturbed (default: none).
    fn liveness_oracles(&self, _history: &History, _disturbed: &[checker::oracles::DisturbedSpan]) -> Vec<InvariantViolation> {
        Vec::new()
    }
    /// The liveness oracles of [`Self::liveness_oracles`], as the report lists them when they
    /// hold (empty: none).
    fn liveness_oracle_names(&self) -> &'static str {
        ""
    }
    /// Invariants this workload's scenario adds on the run's trace, beyond the Raft invariants
    /// every run gets, given the number of servers (default: none).
    fn trace_oracles(&self, _trace: &[checker::Record], _servers: usize) -> Vec<InvariantViolation> {
        Vec::new()
    }
    /// The invariants of [`Self::trace_oracles`], as the report lists them when they hold.
    fn trace_oracle_names(&self) -> &'static str {
        ""
    }
}

/// The KV register workload (see the module docs).
pub struct KvRegister;

impl Workload for KvRegister {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::KvRegister.name()
    }
    fn object(&self) -> &'static str {
        "kv"
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        Box::pin(run_client(spec))
    }
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)> {
        checker::check_history(history, budget_per_object)
    }
    fn oracle_names(&self) -> &'static str {
        "no phantom values, acknowledged writes survive, consistent reads match applied state, index monotonic"
    }
    fn liveness_oracles(&self, history: &History, disturbed: &[checker::oracles::DisturbedSpan]) -> Vec<InvariantViolation> {
        checker::oracles::check_blocking_query_latency(history, disturbed, checker::oracles::WAKE_BOUND_NS)
    }
    fn liveness_oracle_names(&self) -> &'static str {
        "blocking queries answer within 2s of a change"
    }
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(crate::final_reads::final_kv_reads(servers, keys, history))
    }
    fn final_reads_bound(&self) -> Duration {
        crate::final_reads::AGREEMENT_BOUND
    }
}

/// The workload a scenario's clients run (the KV register for unknown names).
pub fn for_scenario(scenario: &str) -> Box<dyn Workload> {
    match scenarios::find(scenario).map(|s| s.workload) {
        Some(scenarios::WorkloadKind::KvRegister) | None => Box::new(KvRegister),
        Some(scenarios::WorkloadKind::Catalog) => Box::new(crate::catalog_workload::CatalogRegister),
        Some(scenarios::WorkloadKind::AgentServices) => Box::new(crate::agent_workload::AgentServices::default()),
        Some(scenarios::WorkloadKind::Locks) => Box::new(crate::lock_workload::Locks::default()),
        Some(scenarios::WorkloadKind::Bank) => Box::new(crate::bank_workload::Bank),
        Some(scenarios::WorkloadKind::KvWide) => Box::new(crate::kv_wide_workload::KvWide),
        Some(scenarios::WorkloadKind::SnapshotRestore) => Box::new(crate::snapshot_workload::SnapshotRestore::default()),
        Some(scenarios::WorkloadKind::Gossip) => Box::new(crate::gossip_workload::GossipMembership { through_client_agents: false, forbid_failures: false }),
        Some(scenarios::WorkloadKind::GossipKeyring) => Box::new(crate::keyring_workload::GossipKeyring::default()),
        Some(scenarios::WorkloadKind::LockCli) => Box::new(crate::lock_cli_workload::LockCli),
        Some(scenarios::WorkloadKind::Watch) => Box::new(crate::watch_workload::Watch),
        Some(scenarios::WorkloadKind::ClientAgents) => Box::new(crate::gossip_workload::GossipMembership { through_client_agents: true, forbid_failures: false }),
        Some(scenarios::WorkloadKind::GossipLossy) => Box::new(crate::gossip_workload::GossipMembership { through_client_agents: false, forbid_failures: true }),
        Some(scenarios::WorkloadKind::DeadServerCleanup) => Box::new(crate::dead_server_workload::DeadServerCleanup::default()),
        Some(scenarios::WorkloadKind::Coordinates) => Box::new(crate::coordinate_workload::Coordinates),
        Some(scenarios::WorkloadKind::WanGossip) => Box::new(crate::wan_workload::WanGossip),
        Some(scenarios::WorkloadKind::WanFederation) => Box::new(crate::federation_workload::WanFederation),
    }
}

/// What one workload client needs.
pub struct ClientSpec {
    pub id: u32,
    /// The servers, by host name and HTTP address.
    pub servers: Vec<(String, SocketAddr)>,
    pub keys: Vec<String>,
    /// Stop issuing new ops at this simulated time.
    pub until: Duration,
    pub rng: ChaCha8Rng,
    pub history: Rc<RefCell<History>>,
    /// The run's nemesis schedule, for a client that acts on a fault (the snapshot client
    /// restores during the first partition, through the majority side).
    pub schedule: nemesis::Schedule,
    /// The run's deliberate bugs, for those that live in client-side code (the lock recipe's).
    pub bugs: Vec<crate::options::Bug>,
}

/// Simulated time since the run started.
pub(crate) fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// Sends one request, giving up after [`OP_TIMEOUT`]; a timeout is [`ClientError::Io`] (the
/// outcome is unknown).
pub(crate) async fn send(addr: SocketAddr, method: Method, path: &str, body: Vec<u8>) -> Result<Response, ClientError> {
    tokio::time::timeout(OP_TIMEOUT, request(addr, method, path, body)).await.unwrap_or_else(|_| Err(ClientError::Io("timeout".into())))
}

/// Records an op of `client` through `server` that was invoked at `invoke` and completes now.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_now(
    history: &Rc<RefCell<History>>,
    client: u32,
    key: &str,
    f: OpFn,
    invoke: Duration,
    outcome: Outcome,
    server: &str,
    mode: ReadMode,
) {
    history.borrow_mut().push(Op {
        id: 0,
        client,
        key: key.to_string(),
        f,
        invoke_ns: invoke.as_nanos() as u64,
        complete_ns: now().as_nanos() as u64,
        outcome,
        server: Some(server.to_string()),
        mode,
    });
}

/// Decodes a Consul KV GET response body into (value, ModifyIndex).
pub(crate) fn parse_entry(body: &[u8]) -> Option<(Value, u64)> {
    let list: serde_json::Value = serde_json::from_slice(body).ok()?;
    let entry = list.as_array()?.first()?;
    let b64 = entry.get("Value")?.as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let value = std::str::from_utf8(&raw).ok()?.parse().ok()?;
    Some((value, entry.get("ModifyIndex")?.as_u64()?))
}

/// A write's outcome from its HTTP answer: `true` is ok; a refusal the server marks as certainly
/// not applied, or a connection never opened, is `fail`; anything else is `info`.
pub(crate) fn write_outcome(resp: &Result<Response, ClientError>, cas: bool) -> Outcome {
    match resp {
        Ok(r) if r.status == StatusCode::OK => match r.body.as_ref() {
            b"true" if cas => Outcome::Ok(OkResult::Cas(true)),
            b"false" if cas => Outcome::Ok(OkResult::Cas(false)),
            b"true" => Outcome::Ok(OkResult::Done),
            _ => Outcome::Info,
        },
        // The server says the write certainly did not reach Raft.
        Ok(r) if r.headers.get("X-Concord-Write-Applied").is_some_and(|v| v == "false") => Outcome::Fail,
        Ok(_) => Outcome::Info,
        Err(ClientError::Connect(_)) => Outcome::Fail,
        Err(ClientError::Io(_)) => Outcome::Info,
    }
}

/// Where one operation goes: the server it is sent to (host name, HTTP address), and the
/// datacenter it names with `?dc=` (none: the server's own).
pub type Route = ((String, SocketAddr), Option<String>);

/// `path` with `?dc=<dc>` (or `&dc=<dc>`) appended when `dc` is given.
pub(crate) fn with_datacenter(path: String, dc: Option<&str>) -> String {
    match dc {
        None => path,
        Some(dc) if path.contains('?') => format!("{path}&dc={dc}"),
        Some(dc) => format!("{path}?dc={dc}"),
    }
}

/// Runs one client until `spec.until`, each operation to a random server. Never fails: every
/// error is recorded in the history.
pub async fn run_client(spec: ClientSpec) -> turmoil::Result {
    run_client_routed(spec, |rng, servers, _key| (servers[rng.gen_range(0..servers.len())].clone(), None)).await
}

/// [`run_client`] with each operation's server (and `?dc=`) chosen by `route(rng, servers, key)`
/// after its key is drawn. A `?dc=` write that certainly did not apply (e.g. "No path to
/// datacenter") is `fail`, like any other ([`write_outcome`]).
pub async fn run_client_routed(
    mut spec: ClientSpec,
    mut route: impl FnMut(&mut ChaCha8Rng, &[(String, SocketAddr)], &str) -> Route,
) -> turmoil::Result {
    // Last (value, ModifyIndex) this client read per key; CAS uses it as its expectation.
    let mut seen: BTreeMap<String, Option<(Value, u64)>> = BTreeMap::new();
    // Last X-Consul-Index per key and when it was seen, for blocking reads (`?index=&wait=`).
    let mut last_index: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut counter: u64 = 0;
    while now() < spec.until {
        let key = spec.keys[spec.rng.gen_range(0..spec.keys.len())].clone();
        let ((server_name, server), dc) = route(&mut spec.rng, &spec.servers, &key);
        counter += 1;
        let value = u64::from(spec.id) * 1_000_000_000 + counter;
        let roll = spec.rng.gen_range(0..100);
        let mut mode = ReadMode::Default;
        let (f, method, path, body) = if roll < 45 {
            mode = match (spec.rng.gen_range(0..10), last_index.get(&key)) {
                // A blocking read: returns when the key passes the index, or after the wait.
                (r @ 0..=1, Some(&(index, index_seen_ns))) => {
                    let wait = if r == 0 { SHORT_WAIT } else { LONG_WAIT };
                    ReadMode::Blocking { index, wait_ms: wait.as_millis() as u64, index_seen_ns }
                }
                (2..=5, _) => ReadMode::Consistent,
                _ => ReadMode::Default,
            };
            (OpFn::Read, Method::GET, format!("/v1/kv/{key}{}", mode.query()), Vec::new())
        } else if roll < 70 {
            (OpFn::Write(value), Method::PUT, format!("/v1/kv/{key}"), value.to_string().into_bytes())
        } else if roll < 90 {
            let (expect, idx) = match seen.get(&key).copied().flatten() {
                Some((v, idx)) => (Some(v), idx),
                None => (None, 0),
            };
            (OpFn::Cas { expect, new: value }, Method::PUT, format!("/v1/kv/{key}?cas={idx}"), value.to_string().into_bytes())
        } else {
            (OpFn::Delete, Method::DELETE, format!("/v1/kv/{key}"), Vec::new())
        };
        let path = with_datacenter(path, dc.as_deref());
        let invoke = now();
        let resp = tokio::time::timeout(read_timeout(&mode), request(server, method, &path, body)).await;
        let complete = now();
        let resp = match resp {
            Ok(r) => r,
            Err(_) => Err(ClientError::Io("timeout".into())),
        };
        if let (OpFn::Read, Ok(r)) = (&f, &resp) {
            let index = r.headers.get("X-Consul-Index").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
            if let (Some(index), true) = (index, r.status == StatusCode::OK || r.status == StatusCode::NOT_FOUND) {
                last_index.insert(key.clone(), (index, complete.as_nanos() as u64));
                spec.history.borrow_mut().index_observations.push(IndexObservation {
                    client: spec.id,
                    key: key.clone(),
                    index,
                    at_ns: complete.as_nanos() as u64,
                    server: server_name.clone(),
                    stale: false,
                });
            }
        }
        let outcome = match &f {
            OpFn::Read => match &resp {
                Ok(r) if r.status == StatusCode::OK => match parse_entry(&r.body) {
                    Some((v, idx)) => {
                        seen.insert(key.clone(), Some((v, idx)));
                        Outcome::Ok(OkResult::Read(Some(v)))
                    }
                    None => Outcome::Fail,
                },
                Ok(r) if r.status == StatusCode::NOT_FOUND => {
                    seen.insert(key.clone(), None);
                    Outcome::Ok(OkResult::Read(None))
                }
                _ => Outcome::Fail,
            },
            OpFn::Cas { .. } => write_outcome(&resp, true),
            _ => write_outcome(&resp, false),
        };
        spec.history.borrow_mut().push(Op {
            id: 0,
            client: spec.id,
            key,
            f,
            invoke_ns: invoke.as_nanos() as u64,
            complete_ns: complete.as_nanos() as u64,
            outcome,
            server: Some(server_name),
            mode,
        });
        // Think time: a few ms, so clients interleave without flooding the simulated network.
        let think = spec.rng.gen_range(1..20);
        tokio::time::sleep(Duration::from_millis(think)).await;
    }
    Ok(())
}

/// The liveness probe: from `start`, repeatedly write a fresh value through each server in turn
/// and read it back with `?consistent`, until every server in `servers` has served one such round
/// trip, then runs the workload's `final_reads`. The simulator starts it at the final heal.
/// Returns the simulated time at which the cluster was proven live, if it was before `deadline`.
pub async fn liveness_probe(
    servers: Vec<SocketAddr>,
    start: Duration,
    deadline: Duration,
    proven_at: Rc<RefCell<Option<Duration>>>,
    final_reads: Pin<Box<dyn Future<Output = ()>>>,
) -> turmoil::Result {
    tokio::time::sleep(start.saturating_sub(now())).await;
    let mut remaining: Vec<SocketAddr> = servers.clone();
    let mut n: u64 = 0;
    while !remaining.is_empty() && now() < deadline {
        let server = remaining[0];
        n += 1;
        let value = format!("live-{n}");
        let put = tokio::time::timeout(OP_TIMEOUT, request(server, Method::PUT, "/v1/kv/_liveness", value.clone().into_bytes())).await;
        let put_ok = matches!(&put, Ok(Ok(r)) if r.status == StatusCode::OK && r.body.as_ref() == b"true");
        if put_ok {
            let get = tokio::time::timeout(OP_TIMEOUT, request(server, Method::GET, "/v1/kv/_liveness?consistent&raw", Vec::new())).await;
            if matches!(&get, Ok(Ok(r)) if r.status == StatusCode::OK && r.body.as_ref() == value.as_bytes()) {
                remaining.remove(0);
                continue;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if remaining.is_empty() {
        *proven_at.borrow_mut() = Some(now());
        final_reads.await;
    }
    Ok(())
}
