//! The lock workload: clients create TTL sessions, acquire and release KV locks with them, renew,
//! read the holders, destroy their sessions, and sometimes pause long enough to lose them.
//!
//! How it is judged: each lock key is checked against the lock model ([`checker::lock`]) by the
//! linearizability search, which covers mutual exclusion (two sessions never hold a key at once)
//! and session-TTL safety (a session is never invalidated before TTL has passed since its last
//! acknowledged renew: its TTL invalidation enters as an unknown-outcome operation invoked then).
//! A paused holder that still believes it holds the lock shows in the history as its later
//! release answering `false`, not as a violation: that is Consul's contract.
//!
//! Sessions are numbered `client * 1000 + n`; the numbers stand for the session UUIDs in the
//! history, which encodes lock operations with the KV register's op shapes:
//! - `acquire(s)` on key `k`: `cas k absent → s` (answer `true`/`false`);
//! - `release(s)`: `cas k s → 0`;
//! - a read: `read k` showing the holder `s`, or absent when the lock is free;
//! - session events on the pseudo-keys `session/create`, `session/renew`, `session/destroy`:
//!   `write s` (create only when acknowledged; every renew attempt, with its outcome).
//!
//! Liveness ([`checker::session_ttl`]): a read that shows a session holding a lock more than
//! 2×TTL (plus an election) after the session's last renew attempt and the last fault is late.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use checker::lock::{check_lock, LockCall, LockOp, LockVerdict};
use checker::{History, OkResult, Op, OpFn, Outcome, ReadMode, Value, Verdict, Violation};
use hyper::{Method, StatusCode};
use rand::Rng;

use crate::workload::{now, record_now, send, write_outcome, ClientSpec, Workload};

/// The TTL of every workload session, and the simulator agents' `session_ttl_min`.
pub const SESSION_TTL_MS: u64 = 2_000;
/// How long the final reads wait after the cluster proved live: the clients stopped renewing
/// their sessions, so by then every one must be gone and every lock free (2×TTL, the liveness
/// oracle's slack, and the simulator's 2 s settle time after the last fault, plus a margin).
const ABANDONED_SESSIONS_WAIT: Duration =
    Duration::from_millis(2 * SESSION_TTL_MS + checker::session_ttl::INVALIDATION_SLACK_NS / 1_000_000 + 2_000 + 500);
/// The pseudo-keys of session events.
const CREATE: &str = "session/create";
const RENEW: &str = "session/renew";
const DESTROY: &str = "session/destroy";
/// The pseudo-key of the TTL invalidations the checker adds.
const TTL: &str = "session/ttl";

/// Session UUID → session number, shared by the run's clients (one thread).
type SessionNumbers = Rc<RefCell<BTreeMap<String, Value>>>;

/// The lock workload (see the module docs).
#[derive(Default)]
pub struct Locks {
    numbers: SessionNumbers,
}

impl Workload for Locks {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::Locks.name()
    }
    fn object(&self) -> &'static str {
        "lock"
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        Box::pin(run_client(spec, self.numbers.clone()))
    }
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)> {
        check_locks(history, budget_per_object)
    }
    fn oracles(&self, _history: &History) -> Vec<checker::InvariantViolation> {
        Vec::new()
    }
    fn oracle_names(&self) -> &'static str {
        "mutual exclusion and session-TTL safety (inside the lock model)"
    }
    fn final_reads_bound(&self) -> Duration {
        ABANDONED_SESSIONS_WAIT
    }
    fn liveness_oracles(&self, history: &History, disturbed: &[checker::oracles::DisturbedSpan]) -> Vec<checker::InvariantViolation> {
        checker::session_ttl::check_session_ttl_liveness(history, &[CREATE, RENEW], SESSION_TTL_MS * 1_000_000, disturbed)
    }
    fn liveness_oracle_names(&self) -> &'static str {
        "an abandoned session frees its locks within 2×TTL of its last renew"
    }
    /// Waits out every session the clients left behind (see [`ABANDONED_SESSIONS_WAIT`]), then
    /// reads each lock's holder with `?consistent`.
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        let numbers = self.numbers.clone();
        Box::pin(async move {
            tokio::time::sleep(ABANDONED_SESSIONS_WAIT).await;
            for key in keys {
                let (name, addr) = servers[0].clone();
                read_holder(addr, &name, &key, ReadMode::Consistent, 0, &numbers, &history).await;
            }
        })
    }
}

/// Reads a lock's holder and records it.
async fn read_holder(addr: SocketAddr, server: &str, key: &str, mode: ReadMode, client: u32, numbers: &SessionNumbers, history: &Rc<RefCell<History>>) {
    let invoke = now();
    let resp = send(addr, Method::GET, &format!("/v1/kv/{key}{}", mode.query()), Vec::new()).await;
    let outcome = match &resp {
        Ok(r) if r.status == StatusCode::NOT_FOUND => Outcome::Ok(OkResult::Read(None)),
        Ok(r) if r.status == StatusCode::OK => match holder_of(&r.body) {
            Some(None) => Outcome::Ok(OkResult::Read(None)),
            Some(Some(uuid)) => {
                let mut numbers = numbers.borrow_mut();
                // A holder no client created shows as a session number no one used.
                let unknown = u64::MAX - numbers.len() as u64;
                Outcome::Ok(OkResult::Read(Some(*numbers.entry(uuid).or_insert(unknown))))
            }
            None => Outcome::Fail,
        },
        _ => Outcome::Fail,
    };
    record_now(history, client, key, OpFn::Read, invoke, outcome, server, mode);
}

/// The `Session` of a KV GET answer: `Some(None)` when the key is not locked.
fn holder_of(body: &[u8]) -> Option<Option<String>> {
    let list: serde_json::Value = serde_json::from_slice(body).ok()?;
    let entry = list.as_array()?.first()?;
    Some(entry.get("Session").and_then(|s| s.as_str()).map(str::to_string))
}

/// A client's session: UUID, number, and when its last acknowledged renew (or create) was sent.
struct Held {
    id: String,
    no: Value,
    renewed_at: Duration,
}

/// Runs one client until `spec.until`. Every lock operation is recorded in the history.
pub async fn run_client(mut spec: ClientSpec, numbers: SessionNumbers) -> turmoil::Result {
    let ttl = Duration::from_millis(SESSION_TTL_MS);
    let mut session: Option<Held> = None;
    let mut holding: Option<String> = None;
    let mut made: u64 = 0;
    while now() < spec.until {
        let (server_name, server) = spec.servers[spec.rng.gen_range(0..spec.servers.len())].clone();
        let Some(s) = &mut session else {
            made += 1;
            let no = u64::from(spec.id) * 1000 + made;
            let invoke = now();
            // `NodeChecks: []`: a TTL-only session. By default a session binds its node's
            // `serfHealth`, which gossip turns critical whenever a partition cuts the node off,
            // invalidating the session at a moment the lock model (TTL, destroy) cannot know;
            // that binding is tested on its own (tests/tests/e2e_gossip.rs).
            let body = format!(r#"{{"Name":"w{}-{made}","TTL":"{}ms","LockDelay":"0s","Behavior":"release","NodeChecks":[]}}"#, spec.id, SESSION_TTL_MS);
            let resp = send(server, Method::PUT, "/v1/session/create", body.into_bytes()).await;
            let id = resp.ok().filter(|r| r.status == StatusCode::OK).and_then(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.body).ok()?.get("ID")?.as_str().map(str::to_string)
            });
            if let Some(id) = id {
                numbers.borrow_mut().insert(id.clone(), no);
                record_now(&spec.history, spec.id, CREATE, OpFn::Write(no), invoke, Outcome::Ok(OkResult::Done), &server_name, ReadMode::Default);
                session = Some(Held { id, no, renewed_at: invoke });
            }
            tokio::time::sleep(Duration::from_millis(spec.rng.gen_range(5..50))).await;
            continue;
        };
        if now().saturating_sub(s.renewed_at) >= ttl / 4 {
            let invoke = now();
            let resp = send(server, Method::PUT, &format!("/v1/session/renew/{}", s.id), Vec::new()).await;
            match resp {
                Ok(r) if r.status == StatusCode::OK => {
                    s.renewed_at = invoke;
                    record_now(&spec.history, spec.id, RENEW, OpFn::Write(s.no), invoke, Outcome::Ok(OkResult::Done), &server_name, ReadMode::Default);
                }
                Ok(r) if r.status == StatusCode::NOT_FOUND => {
                    // The session is gone: whatever this client held, it holds no more.
                    record_now(&spec.history, spec.id, RENEW, OpFn::Write(s.no), invoke, Outcome::Fail, &server_name, ReadMode::Default);
                    session = None;
                    holding = None;
                }
                // Unanswered or refused: it may still have reached the leader, which moves the
                // TTL liveness deadline (the safety check counts acknowledged renews only).
                other => {
                    let outcome = if write_outcome(&other, false) == Outcome::Fail { Outcome::Fail } else { Outcome::Info };
                    record_now(&spec.history, spec.id, RENEW, OpFn::Write(s.no), invoke, outcome, &server_name, ReadMode::Default);
                }
            }
            continue;
        }
        let (id, no) = (s.id.clone(), s.no);
        let roll = spec.rng.gen_range(0..100);
        match (roll, &holding) {
            (0..=44, None) => {
                let key = spec.keys[spec.rng.gen_range(0..spec.keys.len())].clone();
                let invoke = now();
                let resp = send(server, Method::PUT, &format!("/v1/kv/{key}?acquire={id}"), format!("w{}", spec.id).into_bytes()).await;
                let outcome = write_outcome(&resp, true);
                let session_gone = matches!(&resp, Ok(r) if r.body.starts_with(b"invalid session"));
                record_now(&spec.history, spec.id, &key, OpFn::Cas { expect: None, new: no }, invoke, outcome.clone(), &server_name, ReadMode::Default);
                match outcome {
                    Outcome::Ok(OkResult::Cas(true)) => holding = Some(key),
                    // Unknown whether it holds the lock: give the session up (its TTL frees it).
                    Outcome::Info => session = None,
                    _ if session_gone => session = None,
                    _ => {}
                }
            }
            (0..=44, Some(key)) => {
                let key = key.clone();
                let invoke = now();
                let resp = send(server, Method::PUT, &format!("/v1/kv/{key}?release={id}"), Vec::new()).await;
                let outcome = write_outcome(&resp, true);
                record_now(&spec.history, spec.id, &key, OpFn::Cas { expect: Some(no), new: 0 }, invoke, outcome.clone(), &server_name, ReadMode::Default);
                match outcome {
                    Outcome::Ok(_) => holding = None,
                    Outcome::Info => {
                        session = None;
                        holding = None;
                    }
                    Outcome::Fail => {}
                }
            }
            (45..=91, _) => {
                let key = spec.keys[spec.rng.gen_range(0..spec.keys.len())].clone();
                let mode = if spec.rng.gen_bool(0.5) { ReadMode::Consistent } else { ReadMode::Default };
                read_holder(server, &server_name, &key, mode, spec.id, &numbers, &spec.history).await;
            }
            (92..=95, _) => {
                let invoke = now();
                let resp = send(server, Method::PUT, &format!("/v1/session/destroy/{id}"), Vec::new()).await;
                let outcome = write_outcome(&resp, false);
                record_now(&spec.history, spec.id, DESTROY, OpFn::Write(no), invoke, outcome.clone(), &server_name, ReadMode::Default);
                if outcome != Outcome::Fail {
                    session = None;
                    holding = None;
                }
            }
            _ => {
                // The paused holder: no renew for a while, sometimes past the session's TTL.
                let pause = ttl.mul_f64(spec.rng.gen_range(0.25..2.5));
                tokio::time::sleep(pause).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(spec.rng.gen_range(5..50))).await;
    }
    Ok(())
}

/// Turns one recorded op into a lock operation (`None`: not a lock op, or certainly not done).
fn lock_op(op: &Op) -> Option<LockOp> {
    let (call, ok) = match (&op.f, &op.outcome) {
        (_, Outcome::Fail) => return None,
        (OpFn::Cas { expect: None, new }, Outcome::Ok(OkResult::Cas(b))) => (LockCall::Acquire(*new), Some(*b)),
        (OpFn::Cas { expect: None, new }, _) => (LockCall::Acquire(*new), None),
        (OpFn::Cas { expect: Some(s), .. }, Outcome::Ok(OkResult::Cas(b))) => (LockCall::Release(*s), Some(*b)),
        (OpFn::Cas { expect: Some(s), .. }, _) => (LockCall::Release(*s), None),
        (OpFn::Read, Outcome::Ok(OkResult::Read(h))) => (LockCall::Read(*h), None),
        (OpFn::Write(s), _) if op.key == DESTROY || op.key == TTL => (LockCall::Invalidate(*s), None),
        _ => return None,
    };
    let return_ns = if op.outcome == Outcome::Info { u64::MAX } else { op.complete_ns };
    Some(LockOp { id: op.id, call, ok, invoke_ns: op.invoke_ns, return_ns })
}

/// The TTL invalidation of every session: an unknown-outcome op invoked one TTL after the send of
/// its last acknowledged create or renew.
fn ttl_invalidations(history: &History) -> Vec<Op> {
    let mut last: BTreeMap<Value, &Op> = BTreeMap::new();
    for op in history.ops.iter().filter(|o| (o.key == CREATE || o.key == RENEW) && matches!(o.outcome, Outcome::Ok(_))) {
        if let OpFn::Write(s) = op.f {
            let e = last.entry(s).or_insert(op);
            if op.invoke_ns > e.invoke_ns {
                *e = op;
            }
        }
    }
    let ttl_ns = SESSION_TTL_MS * 1_000_000;
    last.into_iter()
        .enumerate()
        .map(|(i, (s, op))| Op {
            id: history.ops.len() + i,
            client: op.client,
            key: TTL.to_string(),
            f: OpFn::Write(s),
            invoke_ns: op.invoke_ns + ttl_ns,
            complete_ns: op.invoke_ns + ttl_ns,
            outcome: Outcome::Info,
            server: None,
            mode: ReadMode::Default,
        })
        .collect()
}

/// Checks every lock key of the history against the lock model.
pub fn check_locks(history: &History, budget: Duration) -> Vec<(String, Verdict)> {
    let ttls = ttl_invalidations(history);
    let all: Vec<&Op> = history.ops.iter().chain(ttls.iter()).collect();
    let by_id: BTreeMap<usize, &Op> = all.iter().map(|o| (o.id, *o)).collect();
    let session_ops: Vec<LockOp> = all.iter().filter(|o| o.key == DESTROY || o.key == TTL).filter_map(|o| lock_op(o)).collect();
    let mut keys: Vec<&str> = history.ops.iter().map(|o| o.key.as_str()).filter(|k| !k.starts_with("session/")).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|key| {
            let mut ops: Vec<LockOp> = history.ops.iter().filter(|o| o.key == key).filter_map(lock_op).collect();
            ops.extend(session_ops.iter().cloned());
            let verdict = match check_lock(&ops, budget) {
                LockVerdict::Linearizable => Verdict::Linearizable,
                LockVerdict::Unknown { reason } => Verdict::Unknown { reason: format!("lock {key:?}: {reason}") },
                LockVerdict::NotLinearizable { ops, explanation } => {
                    let listing: Vec<String> = ops.iter().map(|o| format!("  {} (client {})", o, by_id.get(&o.id).map_or("?".into(), |h| h.client_name()))).collect();
                    let context = session_context(history, &ttls, &ops);
                    Verdict::NotLinearizable(Violation {
                        key: key.to_string(),
                        ops: ops.iter().filter_map(|o| by_id.get(&o.id).map(|h| (*h).clone())).collect(),
                        explanation: format!("lock operations:\n{}\n{explanation}\nsessions involved:\n{context}", listing.join("\n")),
                    })
                }
            };
            (key.to_string(), verdict)
        })
        .collect()
}

/// What the history says about each session a violation names: when its last acknowledged
/// create or renew was sent (so when its TTL may end) and whether its client destroyed it.
fn session_context(history: &History, ttls: &[Op], ops: &[LockOp]) -> String {
    let mut sessions: Vec<Value> = ops.iter().filter_map(LockOp::session).collect();
    sessions.sort_unstable();
    sessions.dedup();
    let ms = |ns: u64| format!("{:.1} ms", ns as f64 / 1e6);
    let lines: Vec<String> = sessions
        .iter()
        .map(|s| {
            let ttl = ttls.iter().find(|o| o.f == OpFn::Write(*s));
            let destroyed: Vec<String> = history
                .ops
                .iter()
                .filter(|o| o.key == DESTROY && o.f == OpFn::Write(*s) && o.outcome != Outcome::Fail)
                .map(|o| format!("destroy sent at {}", ms(o.invoke_ns)))
                .collect();
            let ttl = match ttl {
                Some(t) => format!("last acknowledged create/renew sent at {}, so its TTL may end from {}", ms(t.invoke_ns - SESSION_TTL_MS * 1_000_000), ms(t.invoke_ns)),
                None => "never acknowledged as created".to_string(),
            };
            let destroyed = if destroyed.is_empty() { "not destroyed by its client".to_string() } else { destroyed.join(", ") };
            format!("  s{s}: {ttl}; {destroyed}")
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: usize, key: &str, f: OpFn, outcome: Outcome, invoke_ms: u64, complete_ms: u64) -> Op {
        Op { id, client: 1, key: key.into(), f, invoke_ns: invoke_ms * 1_000_000, complete_ns: complete_ms * 1_000_000, outcome, server: None, mode: ReadMode::Default }
    }

    #[test]
    fn a_lock_taken_from_a_renewed_session_before_its_ttl_is_a_violation() {
        let mut h = History::default();
        h.ops = vec![
            op(0, CREATE, OpFn::Write(1001), Outcome::Ok(OkResult::Done), 0, 5),
            op(1, "k0", OpFn::Cas { expect: None, new: 1001 }, Outcome::Ok(OkResult::Cas(true)), 10, 20),
            op(2, RENEW, OpFn::Write(1001), Outcome::Ok(OkResult::Done), 500, 510),
            // s2 takes the lock 1.5 s after s1's last renew: before s1's TTL (2 s) could end.
            op(3, "k0", OpFn::Cas { expect: None, new: 2001 }, Outcome::Ok(OkResult::Cas(true)), 1_990, 2_000),
        ];
        let verdicts = check_locks(&h, Duration::from_secs(1));
        assert_eq!(verdicts.len(), 1);
        assert!(matches!(&verdicts[0].1, Verdict::NotLinearizable(_)), "{:?}", verdicts[0].1);
        // The same acquire after the TTL is legal.
        h.ops[3] = op(3, "k0", OpFn::Cas { expect: None, new: 2001 }, Outcome::Ok(OkResult::Cas(true)), 2_600, 2_610);
        assert!(check_locks(&h, Duration::from_secs(1))[0].1.is_linearizable());
    }

    #[test]
    fn destroy_frees_the_lock_and_reads_see_it() {
        let mut h = History::default();
        h.ops = vec![
            op(0, CREATE, OpFn::Write(1001), Outcome::Ok(OkResult::Done), 0, 5),
            op(1, "k0", OpFn::Cas { expect: None, new: 1001 }, Outcome::Ok(OkResult::Cas(true)), 10, 20),
            op(2, "k0", OpFn::Read, Outcome::Ok(OkResult::Read(Some(1001))), 30, 40),
            op(3, DESTROY, OpFn::Write(1001), Outcome::Ok(OkResult::Done), 50, 60),
            op(4, "k0", OpFn::Read, Outcome::Ok(OkResult::Read(None)), 70, 80),
            op(5, "k0", OpFn::Cas { expect: Some(1001), new: 0 }, Outcome::Ok(OkResult::Cas(false)), 90, 100),
        ];
        assert!(check_locks(&h, Duration::from_secs(1))[0].1.is_linearizable());
        assert_eq!(holder_of(br#"[{"Key":"k0","Session":"abc"}]"#), Some(Some("abc".to_string())));
        assert_eq!(holder_of(br#"[{"Key":"k0"}]"#), Some(None));
    }
}
