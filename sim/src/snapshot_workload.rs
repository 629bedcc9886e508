//! The snapshot-restore workload: KV register clients (as [`crate::workload::KvRegister`]) plus a
//! snapshot client (client 1) that saves a snapshot early and restores it during the scenario's
//! first partition, through the majority side.
//!
//! The snapshot client first writes a seed-chosen, non-empty part of the keys itself, then saves
//! the snapshot (`GET /v1/snapshot`, retried until one arrives), decodes the archive and records
//! what it holds for every key ([`checker::SavedSnapshot`]); only then do the KV clients start.
//! So the archive holds some keys and lacks others, and a correct restore must both rewind keys
//! and delete keys written after the save. During the first partition of the schedule it
//! restores the archive (`PUT /v1/snapshot`): half the seeds try a minority server first (which
//! cannot commit: the attempt must fail or stay unknown), then it tries the majority side's
//! servers in turn until one acknowledges or the partition heals, and reads every key back
//! through the server that acknowledged (as an operator checking a restore would). Throughout the run it reads
//! the KV tables' `X-Consul-Index` from every server with `?stale`, and from one with the
//! default mode, every [`INDEX_POLL`].
//!
//! Judged by `checker::oracles::snapshot_restore` (see its module docs): the restore as a write
//! of the archive to every key inside per-key linearizability, the KV tables' index, convergence
//! after the heal; plus no phantom values and consistent reads matching the applied state. Not
//! judged: acknowledged writes surviving (a restore legitimately erases writes before it) and
//! per-key `X-Consul-Index` monotonicity (Consul lets a restore send a key's index back).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use checker::oracles::snapshot_restore::{check_converged, check_kv_index, with_restores, KV_INDEX_KEY, RESTORE_KEY};
use checker::{History, InvariantViolation, OkResult, OpFn, Outcome, ReadMode, SavedSnapshot, Value, Verdict};
use hyper::{Method, StatusCode};
use nemesis::{Fault, Schedule};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::http_client::{ClientError, Response};
use crate::workload::{now, parse_entry, record_now, send, write_outcome, ClientSpec, Workload};

/// The client that saves and restores.
const SNAPSHOT_CLIENT: u32 = 1;
/// Give up saving (and start the KV clients without a snapshot) after this long.
const SAVE_DEADLINE: Duration = Duration::from_secs(15);
/// Pause between two attempts of a write, a save or a restore.
const RETRY: Duration = Duration::from_millis(250);
/// How often the KV tables' index is read from every server.
const INDEX_POLL: Duration = Duration::from_millis(400);
/// The first restore attempt comes this long (ms) after the partition starts: sometimes before
/// the majority side elected a leader of its own, sometimes after.
const RESTORE_DELAY_MS: std::ops::Range<u64> = 200..2_500;
/// A KV list under this prefix is always empty, so its `X-Consul-Index` is the KV tables' index.
const PROBE_PATH: &str = "/v1/kv/snapshot-probe/?recurse";
/// Pause between an acknowledged restore and the reads that check it: longer than the coarsest
/// simulation step (10 ms).
const AFTER_ACK: Duration = Duration::from_millis(20);
/// How often a waiting KV client checks whether the snapshot was saved.
const START_POLL: Duration = Duration::from_millis(50);

/// The snapshot-restore workload (see the module docs).
#[derive(Default)]
pub struct SnapshotRestore {
    /// Set once the snapshot was saved (or the save gave up): the KV clients start then.
    saved: Rc<Cell<bool>>,
}

impl Workload for SnapshotRestore {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::SnapshotRestore.name()
    }
    fn object(&self) -> &'static str {
        "kv"
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        let saved = self.saved.clone();
        if spec.id == SNAPSHOT_CLIENT {
            return Box::pin(run_snapshot_client(spec, saved));
        }
        Box::pin(async move {
            while !saved.get() && now() < spec.until {
                tokio::time::sleep(START_POLL).await;
            }
            crate::workload::run_client(spec).await
        })
    }
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)> {
        checker::check_history(&with_restores(history), budget_per_object)
    }
    fn oracles(&self, history: &History) -> Vec<InvariantViolation> {
        let kv = with_restores(history);
        let mut out = checker::oracles::check_no_phantom_values(&kv);
        out.extend(checker::oracles::check_consistent_read_matches_applied_state(&kv));
        out.extend(check_kv_index(history));
        out.extend(check_converged(history));
        out
    }
    fn oracle_names(&self) -> &'static str {
        "the restore as a write of the archive to every key (inside linearizability), no phantom values, consistent reads match applied state, KV tables' index monotonic per server and past the archive after a restore, servers converged after the heal"
    }
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(crate::final_reads::final_kv_reads(servers, keys, history))
    }
    fn final_reads_bound(&self) -> Duration {
        crate::final_reads::AGREEMENT_BOUND
    }
}

type Server = (String, SocketAddr);

/// When and where the restore happens: the first partition of the schedule and its sides.
struct Plan {
    start: Duration,
    heal: Duration,
    majority: Vec<Server>,
    minority: Vec<Server>,
}

fn plan(schedule: &Schedule, servers: &[Server]) -> Option<Plan> {
    let events = schedule.events();
    let (i, start, a, b) = events.iter().enumerate().find_map(|(i, (t, f))| match f {
        Fault::Partition { a, b } => Some((i, *t, a, b)),
        _ => None,
    })?;
    let heal = events[i + 1..].iter().find(|(_, f)| matches!(f, Fault::HealAll)).map(|(t, _)| *t)?;
    let side = |names: &[String]| servers.iter().filter(|(n, _)| names.contains(n)).cloned().collect::<Vec<Server>>();
    // With an even split (`--servers 4`) neither side can commit: every attempt must then fail
    // or stay unknown, which the oracles judge the same way.
    let (majority, minority) = if a.len() > b.len() { (side(a), side(b)) } else { (side(b), side(a)) };
    Some(Plan { start, heal, majority, minority })
}

/// Runs the snapshot client until `spec.until` (see the module docs).
async fn run_snapshot_client(mut spec: ClientSpec, saved: Rc<Cell<bool>>) -> turmoil::Result {
    let mut keys = spec.keys.clone();
    keys.shuffle(&mut spec.rng);
    let early = spec.rng.gen_range(1..keys.len().max(2)).min(keys.len());
    let mut counter: u64 = 0;
    for key in &keys[..early] {
        while now() < SAVE_DEADLINE {
            counter += 1;
            let value = u64::from(spec.id) * 1_000_000_000 + counter;
            let (name, addr) = pick(&mut spec);
            let invoke = now();
            let resp = send(addr, Method::PUT, &format!("/v1/kv/{key}"), value.to_string().into_bytes()).await;
            let outcome = write_outcome(&resp, false);
            let done = matches!(outcome, Outcome::Ok(_));
            record_now(&spec.history, spec.id, key, OpFn::Write(value), invoke, outcome, &name, ReadMode::Default);
            if done {
                break;
            }
            tokio::time::sleep(RETRY).await;
        }
    }
    let snapshot = save(&mut spec).await;
    saved.set(true);
    let restore_plan = snapshot.and_then(|s| plan(&spec.schedule, &spec.servers).map(|p| (s, p)));
    let Some(((index, archive), plan)) = restore_plan else {
        let until = spec.until;
        poll_index_until(&mut spec, until).await;
        return Ok(());
    };
    let first_try = plan.start + Duration::from_millis(spec.rng.gen_range(RESTORE_DELAY_MS));
    poll_index_until(&mut spec, first_try).await;
    if !plan.minority.is_empty() && spec.rng.gen_bool(0.5) {
        let server = plan.minority[spec.rng.gen_range(0..plan.minority.len())].clone();
        restore(&spec, &server, index, &archive).await;
    }
    let mut turn = spec.rng.gen_range(0..plan.majority.len().max(1));
    while now() < plan.heal && !plan.majority.is_empty() {
        let server = plan.majority[turn % plan.majority.len()].clone();
        turn += 1;
        if restore(&spec, &server, index, &archive).await {
            // Past the simulation step, so the reads begin strictly after the acknowledgement
            // (ops whose intervals touch count as concurrent).
            tokio::time::sleep(AFTER_ACK).await;
            read_keys(&spec, &server).await;
            break;
        }
        tokio::time::sleep(RETRY).await;
    }
    let until = spec.until;
    poll_index_until(&mut spec, until).await;
    Ok(())
}

fn pick(spec: &mut ClientSpec) -> Server {
    spec.servers[spec.rng.gen_range(0..spec.servers.len())].clone()
}

/// Saves a snapshot through random servers until one arrives and decodes; records it in the
/// history. Returns its index and the archive bytes, or `None` past [`SAVE_DEADLINE`].
async fn save(spec: &mut ClientSpec) -> Option<(u64, Vec<u8>)> {
    while now() < SAVE_DEADLINE {
        let (_, addr) = pick(spec);
        if let Ok(r) = send(addr, Method::GET, "/v1/snapshot", Vec::new()).await {
            if r.status == StatusCode::OK {
                if let Some(snapshot) = decode(spec, &r.body) {
                    let index = snapshot.index;
                    spec.history.borrow_mut().snapshots.push(snapshot);
                    return Some((index, r.body.to_vec()));
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
    None
}

/// What the archive holds for each workload key; `None` if it does not verify or holds a value
/// the workload never writes (not a number).
fn decode(spec: &ClientSpec, archive: &[u8]) -> Option<SavedSnapshot> {
    let (meta, store, _) = node::state::archive::verify(archive).ok()?;
    let mut kv = BTreeMap::new();
    for key in &spec.keys {
        let value: Option<Value> = match store.kv_get(key).0 {
            Some(e) => Some(std::str::from_utf8(&e.value).ok()?.parse().ok()?),
            None => None,
        };
        kv.insert(key.clone(), value);
    }
    Some(SavedSnapshot { client: spec.id, index: meta.index, at_ns: now().as_nanos() as u64, kv })
}

/// One restore attempt through `server`, recorded as `write <index>` on [`RESTORE_KEY`]; true if
/// acknowledged.
async fn restore(spec: &ClientSpec, server: &Server, index: u64, archive: &[u8]) -> bool {
    let invoke = now();
    let resp = send(server.1, Method::PUT, "/v1/snapshot", archive.to_vec()).await;
    let outcome = restore_outcome(&resp);
    let acked = matches!(outcome, Outcome::Ok(_));
    record_now(&spec.history, spec.id, RESTORE_KEY, OpFn::Write(index), invoke, outcome, &server.0, ReadMode::Default);
    acked
}

/// Reads every key once through `server` in the default mode, as an operator checking a restore
/// would (recorded as ordinary KV reads).
async fn read_keys(spec: &ClientSpec, server: &Server) {
    for key in &spec.keys {
        let invoke = now();
        let outcome = match send(server.1, Method::GET, &format!("/v1/kv/{key}"), Vec::new()).await {
            Ok(r) if r.status == StatusCode::OK => parse_entry(&r.body).map_or(Outcome::Fail, |(v, _)| Outcome::Ok(OkResult::Read(Some(v)))),
            Ok(r) if r.status == StatusCode::NOT_FOUND => Outcome::Ok(OkResult::Read(None)),
            _ => Outcome::Fail,
        };
        record_now(&spec.history, spec.id, key, OpFn::Read, invoke, outcome, &server.0, ReadMode::Default);
    }
}

/// 200 is applied; a refused archive (400), a write the server marks as never proposed, or a
/// connection never opened, is not; anything else (a timeout, a 500 from the write path) is
/// unknown.
fn restore_outcome(resp: &Result<Response, ClientError>) -> Outcome {
    match resp {
        Ok(r) if r.status == StatusCode::OK => Outcome::Ok(OkResult::Done),
        Ok(r) if r.status == StatusCode::BAD_REQUEST => Outcome::Fail,
        Ok(r) if r.headers.get("X-Concord-Write-Applied").is_some_and(|v| v == "false") => Outcome::Fail,
        Err(ClientError::Connect(_)) => Outcome::Fail,
        _ => Outcome::Info,
    }
}

/// Reads the KV tables' index every [`INDEX_POLL`] until `until`: from every server with
/// `?stale`, then from a random one in the default mode.
async fn poll_index_until(spec: &mut ClientSpec, until: Duration) {
    while now() < until {
        for server in spec.servers.clone() {
            read_index(spec, &server, ReadMode::Stale).await;
        }
        let server = pick(spec);
        read_index(spec, &server, ReadMode::Default).await;
        let left = until.saturating_sub(now());
        tokio::time::sleep(INDEX_POLL.min(left)).await;
    }
}

/// One read of the KV tables' index, recorded as `read` on [`KV_INDEX_KEY`] answering it.
async fn read_index(spec: &ClientSpec, server: &Server, mode: ReadMode) {
    let invoke = now();
    let path = match mode {
        ReadMode::Stale => format!("{PROBE_PATH}&stale"),
        _ => PROBE_PATH.to_string(),
    };
    let resp = send(server.1, Method::GET, &path, Vec::new()).await;
    let index = match &resp {
        Ok(r) if r.status == StatusCode::NOT_FOUND || r.status == StatusCode::OK => {
            r.headers.get("X-Consul-Index").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        }
        _ => None,
    };
    let outcome = match index {
        Some(i) => Outcome::Ok(OkResult::Read(Some(i))),
        None => Outcome::Fail,
    };
    record_now(&spec.history, spec.id, KV_INDEX_KEY, OpFn::Read, invoke, outcome, &server.0, mode);
}
