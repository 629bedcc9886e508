//! The wide KV workload (issue 8, item 3): the KV register workload's reads, writes, CAS and
//! deletes, plus the code paths it never runs: `?stale` reads, `?recurse` and `?keys` reads of a
//! prefix, prefix blocking queries (`?recurse&index=&wait=`, `?keys&index=&wait=`), recursive deletes and deletes with CAS
//! (`DELETE ?cas=`, on the ModifyIndex of the value last read: the register model's `DeleteCas`). Keys live in a small
//! tree, `w/a/k0`, `w/b/k1`, `w/a/k2`, … (the run's keys, split between two subtrees), and prefix
//! operations pick `w/`, `w/a/` or `w/b/`.
//!
//! How a multi-key operation is judged: one prefix operation is atomic in Consul (a prefix read is
//! one snapshot of the store, a recursive delete one Raft entry), so its projection onto each key
//! it covers is a legal single-key operation at the same instant. A prefix read is recorded as one
//! read per workload key under the prefix (absent from the answer: a read of "absent"; named by a
//! `?keys` listing, which carries no values: a read of "present", [`OkResult::Present`]), a
//! recursive delete as one delete per key, and a prefix blocking query as one blocking read per
//! key with the prefix's index. Each key is then checked as a linearizable register, which judges
//! prefix reads in the default and `?consistent` modes as linearizable (weaker than a multi-key
//! model: it cannot see a read that mixes two instants across keys, which the bank workload's
//! transactions cover). `?stale` reads are judged by their own model: no phantom values (a value
//! some write stored, invoked before the read returned) and, per server, an `X-Consul-Index`
//! that never goes backwards (`checker::oracles::index_monotonic`). Every op names the server
//! that answered it and its read mode.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use checker::{History, IndexObservation, InvariantViolation, OkResult, OpFn, Outcome, ReadMode, Value, Verdict};
use hyper::{Method, StatusCode};
use rand::Rng;

use crate::http_client::{request, ClientError, Response};
use crate::workload::{now, parse_entry, read_timeout, record_now, write_outcome, ClientSpec, KvRegister, Workload, OP_TIMEOUT};

/// The prefixes of prefix reads, prefix blocking queries and recursive deletes.
const PREFIXES: [&str; 3] = ["w/", "w/a/", "w/b/"];
/// The `?wait=` of blocking reads: past the latency bound, so a read never woken shows as late.
const BLOCKING_WAIT: Duration = Duration::from_secs(5);

/// The wide KV workload (see the module docs).
pub struct KvWide;

/// The tree names of the run's keys: `k<i>` becomes `w/a/k<i>` (even i) or `w/b/k<i>` (odd).
pub fn tree_keys(keys: &[String]) -> Vec<String> {
    keys.iter().enumerate().map(|(i, k)| format!("w/{}/{k}", if i % 2 == 0 { "a" } else { "b" })).collect()
}

impl Workload for KvWide {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::KvWide.name()
    }
    fn object(&self) -> &'static str {
        "kv"
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        Box::pin(run_client(spec))
    }
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)> {
        KvRegister.check(history, budget_per_object)
    }
    fn oracle_names(&self) -> &'static str {
        "no phantom values (stale reads included), acknowledged writes survive, consistent reads match applied state, index monotonic (per server for ?stale)"
    }
    /// The KV register's (its blocking-query latency judges prefix watches per key).
    fn liveness_oracles(&self, history: &History, disturbed: &[checker::oracles::DisturbedSpan]) -> Vec<InvariantViolation> {
        KvRegister.liveness_oracles(history, disturbed)
    }
    fn liveness_oracle_names(&self) -> &'static str {
        "blocking queries, single-key and prefix, answer within 2s of a change"
    }
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        KvRegister.final_reads(servers, tree_keys(&keys), history)
    }
    fn final_reads_bound(&self) -> Duration {
        KvRegister.final_reads_bound()
    }
}

/// What one HTTP operation was, before its answer splits it into per-key ops.
enum Request {
    /// A read of one key, or of every key under a prefix (`keys` lists the workload keys it
    /// covers; `prefix` is `Some` for a prefix read: `?keys` when `names_only`, else `?recurse`).
    Read { prefix: Option<&'static str>, keys: Vec<String>, mode: ReadMode, names_only: bool },
    Write { key: String, f: OpFn },
    /// A recursive delete of `prefix`, covering `keys`.
    DeleteTree { prefix: &'static str, keys: Vec<String> },
}

/// Entries of a KV list answer by key: (value, ModifyIndex). `None`: not a list of our entries.
fn parse_entries(body: &[u8]) -> Option<BTreeMap<String, (Value, u64)>> {
    let list: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut out = BTreeMap::new();
    for entry in list.as_array()? {
        let raw = base64::engine::general_purpose::STANDARD.decode(entry.get("Value")?.as_str()?).ok()?;
        let value = std::str::from_utf8(&raw).ok()?.parse().ok()?;
        out.insert(entry.get("Key")?.as_str()?.to_string(), (value, entry.get("ModifyIndex")?.as_u64()?));
    }
    Some(out)
}

/// The key names of a `?keys` answer. `None`: not a list of strings.
fn parse_key_names(body: &[u8]) -> Option<Vec<String>> {
    serde_json::from_slice(body).ok()
}

/// How a prefix query is named for its last index (blocking reads): `w/a/?recurse`, `w/a/?keys`.
fn prefix_query(prefix: &str, names_only: bool) -> String {
    format!("{prefix}?{}", if names_only { "keys" } else { "recurse" })
}

/// Runs one client until `spec.until`; every operation is recorded, split per key.
pub async fn run_client(mut spec: ClientSpec) -> turmoil::Result {
    let keys = tree_keys(&spec.keys);
    let under = |prefix: &str| -> Vec<String> { keys.iter().filter(|k| k.starts_with(prefix)).cloned().collect() };
    // Last (value, ModifyIndex) this client read per key, for CAS expectations.
    let mut seen: BTreeMap<String, Option<(Value, u64)>> = BTreeMap::new();
    // Last X-Consul-Index per key or prefix query, and when it was seen (for blocking reads).
    let mut last_index: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut counter: u64 = 0;
    while now() < spec.until {
        let (server_name, server) = spec.servers[spec.rng.gen_range(0..spec.servers.len())].clone();
        counter += 1;
        let value = u64::from(spec.id) * 1_000_000_000 + counter;
        let key = keys[spec.rng.gen_range(0..keys.len())].clone();
        let prefix = PREFIXES[spec.rng.gen_range(0..PREFIXES.len())];
        let roll = spec.rng.gen_range(0..100);
        // What this client last read of `key` (value, ModifyIndex): the CAS expectation and index.
        let last_read = seen.get(&key).copied().flatten();
        let pick_mode = |rng: &mut rand_chacha::ChaCha8Rng, watched: Option<&(u64, u64)>| match (rng.gen_range(0..10), watched) {
            (0..=1, Some(&(index, index_seen_ns))) => ReadMode::Blocking { index, wait_ms: BLOCKING_WAIT.as_millis() as u64, index_seen_ns },
            (2..=4, _) => ReadMode::Consistent,
            (5..=6, _) => ReadMode::Stale,
            _ => ReadMode::Default,
        };
        let req = match roll {
            0..=24 => Request::Read { prefix: None, keys: vec![key.clone()], mode: pick_mode(&mut spec.rng, last_index.get(&key)), names_only: false },
            25..=39 => {
                let names_only = roll >= 33;
                let mode = pick_mode(&mut spec.rng, last_index.get(&prefix_query(prefix, names_only)));
                Request::Read { prefix: Some(prefix), keys: under(prefix), mode, names_only }
            }
            40..=59 => Request::Write { key: key.clone(), f: OpFn::Write(value) },
            60..=76 => Request::Write { key: key.clone(), f: OpFn::Cas { expect: last_read.map(|(v, _)| v), new: value } },
            77..=88 => match last_read {
                // A delete-cas on the ModifyIndex of the value this client last read.
                Some((expect, _)) if spec.rng.gen_bool(0.5) => Request::Write { key: key.clone(), f: OpFn::DeleteCas { expect } },
                _ => Request::Write { key: key.clone(), f: OpFn::Delete },
            },
            // Mostly a subtree, sometimes the whole tree.
            _ => {
                let prefix = if spec.rng.gen_range(0..5) == 0 { "w/" } else { PREFIXES[1 + spec.rng.gen_range(0..2)] };
                Request::DeleteTree { prefix, keys: under(prefix) }
            }
        };
        let (method, path, body, timeout) = match &req {
            Request::Read { prefix, keys, mode, names_only } => {
                let (target, listing) = match prefix {
                    Some(p) => (p.to_string(), Some(if *names_only { "keys" } else { "recurse" })),
                    None => (keys[0].clone(), None),
                };
                let query = mode.query();
                let listing = match (listing, query.is_empty()) {
                    (None, _) => String::new(),
                    (Some(l), true) => format!("?{l}"),
                    (Some(l), false) => format!("&{l}"),
                };
                (Method::GET, format!("/v1/kv/{target}{query}{listing}"), Vec::new(), read_timeout(mode))
            }
            Request::Write { key, f: OpFn::Cas { .. } } => {
                let idx = last_read.map_or(0, |(_, i)| i);
                (Method::PUT, format!("/v1/kv/{key}?cas={idx}"), value.to_string().into_bytes(), OP_TIMEOUT)
            }
            Request::Write { key, f: OpFn::Delete } => (Method::DELETE, format!("/v1/kv/{key}"), Vec::new(), OP_TIMEOUT),
            Request::Write { key, f: OpFn::DeleteCas { .. } } => {
                let idx = last_read.map_or(0, |(_, i)| i);
                (Method::DELETE, format!("/v1/kv/{key}?cas={idx}"), Vec::new(), OP_TIMEOUT)
            }
            Request::Write { key, .. } => (Method::PUT, format!("/v1/kv/{key}"), value.to_string().into_bytes(), OP_TIMEOUT),
            Request::DeleteTree { prefix, .. } => (Method::DELETE, format!("/v1/kv/{prefix}?recurse"), Vec::new(), OP_TIMEOUT),
        };
        let invoke = now();
        let resp: Result<Response, ClientError> =
            tokio::time::timeout(timeout, request(server, method, &path, body)).await.unwrap_or_else(|_| Err(ClientError::Io("timeout".into())));
        let record = |key: &str, f: OpFn, outcome: Outcome, mode: ReadMode| record_now(&spec.history, spec.id, key, f, invoke, outcome, &server_name, mode);
        match req {
            Request::Read { prefix, keys, mode, names_only } => {
                // Each covered key: `Some(Some(entry))` with its value, `Some(None)` listed
                // without one (`?keys`); absent from the map: absent.
                let answered: Option<BTreeMap<String, Option<(Value, u64)>>> = match &resp {
                    Ok(r) if r.status == StatusCode::NOT_FOUND => Some(BTreeMap::new()),
                    Ok(r) if r.status == StatusCode::OK && names_only => parse_key_names(&r.body).map(|names| names.into_iter().map(|k| (k, None)).collect()),
                    Ok(r) if r.status == StatusCode::OK && prefix.is_some() => parse_entries(&r.body).map(|m| m.into_iter().map(|(k, e)| (k, Some(e))).collect()),
                    Ok(r) if r.status == StatusCode::OK => parse_entry(&r.body).map(|e| BTreeMap::from([(keys[0].clone(), Some(e))])),
                    _ => None,
                };
                if let (Ok(r), Some(_)) = (&resp, &answered) {
                    let index = r.headers.get("X-Consul-Index").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
                    let watched = prefix.map_or_else(|| keys[0].clone(), |p| prefix_query(p, names_only));
                    if let Some(index) = index {
                        let at_ns = now().as_nanos() as u64;
                        last_index.insert(watched.clone(), (index, at_ns));
                        let stale = mode == ReadMode::Stale;
                        let obs = IndexObservation { client: spec.id, key: watched, index, at_ns, server: server_name.clone(), stale };
                        spec.history.borrow_mut().index_observations.push(obs);
                    }
                }
                for key in &keys {
                    let outcome = match answered.as_ref().map(|entries| entries.get(key).copied()) {
                        Some(Some(Some(entry))) => {
                            seen.insert(key.clone(), Some(entry));
                            Outcome::Ok(OkResult::Read(Some(entry.0)))
                        }
                        // Listed by `?keys`: present, value unknown (the CAS expectation stays).
                        Some(Some(None)) => Outcome::Ok(OkResult::Present),
                        Some(None) => {
                            seen.insert(key.clone(), None);
                            Outcome::Ok(OkResult::Read(None))
                        }
                        None => Outcome::Fail,
                    };
                    record(key, OpFn::Read, outcome, mode.clone());
                }
            }
            Request::Write { key, f } => {
                let outcome = write_outcome(&resp, matches!(f, OpFn::Cas { .. } | OpFn::DeleteCas { .. }));
                record(&key, f, outcome, ReadMode::Default);
            }
            Request::DeleteTree { keys, .. } => {
                let outcome = write_outcome(&resp, false);
                for key in &keys {
                    record(key, OpFn::Delete, outcome.clone(), ReadMode::Default);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(spec.rng.gen_range(1..20))).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_two_subtrees_and_list_answers_parse() {
        let keys: Vec<String> = (0..3).map(|i| format!("k{i}")).collect();
        assert_eq!(tree_keys(&keys), ["w/a/k0", "w/b/k1", "w/a/k2"]);
        let body = br#"[{"Key":"w/a/k0","Value":"MTIz","ModifyIndex":7},{"Key":"w/a/k2","Value":"NDU2","ModifyIndex":9}]"#;
        let entries = parse_entries(body).expect("parses");
        assert_eq!(entries.get("w/a/k0"), Some(&(123, 7)));
        assert_eq!(entries.get("w/a/k2"), Some(&(456, 9)));
        assert!(parse_entries(br#"[{"Key":"w/a/k0","Value":null}]"#).is_none(), "an entry that is not ours fails the read");
        assert_eq!(parse_key_names(br#"["w/a/k0","w/a/k2"]"#), Some(vec!["w/a/k0".to_string(), "w/a/k2".to_string()]));
        assert_eq!(parse_key_names(br#"[{"Key":"w/a/k0"}]"#), None);
    }
}
