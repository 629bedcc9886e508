//! The catalog workload: clients register, re-register (flipping the health check) and
//! deregister service instances through `/v1/catalog/register|deregister`, and read them back
//! through `/v1/health/service/web` (default, `?consistent` and blocking modes).
//!
//! How it is judged: each instance is a register, so the KV register checker judges it unchanged.
//! Instance `k` is service `web-k` on node `n-k` with one service check `chk-k`. A registration
//! writes value `w` into the service's `Meta["v"]` and sets the check passing when `w` is odd,
//! critical when even, in the same Raft entry; a deregistration is a delete. A read of the
//! instance list becomes one read per instance, of the value `Meta["v"]` *with its low bit
//! replaced by the check status it was returned with*. A consistent view reads back a written
//! value; a view that pairs a service with another registration's check status (a registration
//! applied in part, a status change dropped) reads `w ^ 1`, which no client ever writes, and is
//! reported as a phantom value and as not linearizable.
//!
//! Values are `client * 10^9 + 2 * counter + parity`, unique per instance, and `w ^ 1` is never
//! written by anyone.
//!
//! A key names its instance by its last `/`-separated part and its group by the rest: `k0` is
//! instance `k0` of the one group; the WAN federation workload's `dc2/web/k0` is instance `k0`
//! of group `dc2/web`, registered in dc2 ([`run_client_routed`]). A list read is a read of every
//! instance of the group it was sent to.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use checker::{History, IndexObservation, OkResult, Op, OpFn, Outcome, Value, Verdict};
use hyper::{Method, StatusCode};
use rand::Rng;

use crate::http_client::{ClientError, Response};
use crate::workload::{now, send, with_datacenter, write_outcome, ClientSpec, Route, Workload};

/// The one service every instance belongs to.
pub const SERVICE: &str = "web";
/// The key under which a group's blocking-read indexes are recorded: `health/service/web`, or
/// `dc2/web/health/service/web` for group `dc2/web`.
fn index_key(group: &str) -> String {
    match group {
        "" => format!("health/service/{SERVICE}"),
        g => format!("{g}/health/service/{SERVICE}"),
    }
}

/// The instance a key names (its last `/`-separated part): `k0` for `k0` and `dc2/web/k0`.
pub fn instance_of(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, i)| i)
}

/// The group of instances a key belongs to (all but its last part): `""` for `k0`, `dc2/web` for
/// `dc2/web/k0`.
pub fn group_of(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The catalog workload (see the module docs).
pub struct CatalogRegister;

impl Workload for CatalogRegister {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::Catalog.name()
    }
    fn object(&self) -> &'static str {
        "instance"
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        Box::pin(run_client(spec))
    }
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)> {
        checker::check_history(history, budget_per_object)
    }
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        let server = servers[0].1;
        Box::pin(async move {
            let invoke = now();
            let resp = send(server, Method::GET, "/v1/health/service/web?consistent", Vec::new()).await;
            record_read(&history, 0, &keys, invoke, &resp);
        })
    }
}

fn register_body(key: &str, value: Value) -> Vec<u8> {
    let key = instance_of(key);
    let status = if value % 2 == 1 { "passing" } else { "critical" };
    serde_json::json!({
        "Node": format!("n-{key}"),
        "Address": "10.1.0.1",
        "Service": { "ID": format!("web-{key}"), "Service": SERVICE, "Port": 80, "Meta": { "v": value.to_string() } },
        "Check": { "CheckID": format!("chk-{key}"), "Name": "alive", "ServiceID": format!("web-{key}"), "Status": status },
    })
    .to_string()
    .into_bytes()
}

fn deregister_body(key: &str) -> Vec<u8> {
    let key = instance_of(key);
    serde_json::json!({ "Node": format!("n-{key}"), "ServiceID": format!("web-{key}") }).to_string().into_bytes()
}

/// Reads every instance out of a `/v1/health/service/web` answer: key → the value its instance
/// shows (see the module docs). `None` if the body is not Consul's shape.
fn parse_instances(body: &[u8], keys: &[String]) -> Option<Vec<(String, Option<Value>)>> {
    let list: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut seen = std::collections::BTreeMap::new();
    for entry in list.as_array()? {
        let id = entry.get("Service")?.get("ID")?.as_str()?;
        let v: Value = entry.get("Service")?.get("Meta")?.get("v")?.as_str()?.parse().ok()?;
        let checks = entry.get("Checks")?.as_array()?;
        let passing = checks.iter().find(|c| c.get("ServiceID").and_then(|s| s.as_str()) == Some(id))?.get("Status")?.as_str()? == "passing";
        seen.insert(id.strip_prefix("web-")?.to_string(), (v & !1) | u64::from(passing));
    }
    Some(keys.iter().map(|k| (k.clone(), seen.get(instance_of(k)).copied())).collect())
}

/// Records one list read as a read of every instance of `keys`.
pub(crate) fn record_read(history: &Rc<RefCell<History>>, client: u32, keys: &[String], invoke: Duration, resp: &Result<Response, ClientError>) {
    let complete = now();
    let parsed = match resp {
        Ok(r) if r.status == StatusCode::OK => parse_instances(&r.body, keys),
        _ => None,
    };
    for key in keys {
        let outcome = match &parsed {
            Some(rows) => Outcome::Ok(OkResult::Read(rows.iter().find(|(k, _)| k == key).and_then(|(_, v)| *v))),
            None => Outcome::Fail,
        };
        history.borrow_mut().push(Op {
            id: 0,
            client,
            key: key.clone(),
            f: OpFn::Read,
            invoke_ns: invoke.as_nanos() as u64,
            complete_ns: complete.as_nanos() as u64,
            outcome,
            server: None,
            mode: Default::default(),
        });
    }
}

/// Runs one client until `spec.until`, each operation to a random server. Every error is
/// recorded in the history.
pub async fn run_client(spec: ClientSpec) -> turmoil::Result {
    run_client_routed(spec, |rng, servers, _key| (servers[rng.gen_range(0..servers.len())].clone(), None)).await
}

/// [`run_client`] with each operation's server (and `?dc=`) chosen by `route(rng, servers, key)`
/// after its key is drawn; a read lists the drawn key's group.
pub async fn run_client_routed(
    mut spec: ClientSpec,
    mut route: impl FnMut(&mut rand_chacha::ChaCha8Rng, &[(String, SocketAddr)], &str) -> Route,
) -> turmoil::Result {
    // Last X-Consul-Index per group, for blocking reads.
    let mut last_index: std::collections::BTreeMap<String, u64> = Default::default();
    let mut counter: u64 = 0;
    while now() < spec.until {
        let key = spec.keys[spec.rng.gen_range(0..spec.keys.len())].clone();
        let ((server_name, server), dc) = route(&mut spec.rng, &spec.servers, &key);
        let group = group_of(&key).to_string();
        counter += 1;
        let value = u64::from(spec.id) * 1_000_000_000 + 2 * counter + spec.rng.gen_range(0..2);
        let roll = spec.rng.gen_range(0..100);
        let invoke = now();
        if roll < 45 {
            let mode = match (spec.rng.gen_range(0..10), last_index.get(&group)) {
                (0..=2, Some(idx)) => format!("?index={idx}&wait=200ms"),
                (3..=6, _) => "?consistent".to_string(),
                _ => String::new(),
            };
            let path = with_datacenter(format!("/v1/health/service/{SERVICE}{mode}"), dc.as_deref());
            let resp = send(server, Method::GET, &path, Vec::new()).await;
            if let Ok(r) = &resp {
                let index = r.headers.get("X-Consul-Index").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
                if let (Some(index), true) = (index, r.status == StatusCode::OK) {
                    last_index.insert(group.clone(), index);
                    spec.history.borrow_mut().index_observations.push(IndexObservation {
                        client: spec.id,
                        key: index_key(&group),
                        index,
                        at_ns: now().as_nanos() as u64,
                        server: server_name.clone(),
                        stale: false,
                    });
                }
            }
            let keys: Vec<String> = spec.keys.iter().filter(|k| group_of(k) == group).cloned().collect();
            record_read(&spec.history, spec.id, &keys, invoke, &resp);
        } else {
            let (f, path, body) = if roll < 85 {
                (OpFn::Write(value), "/v1/catalog/register", register_body(&key, value))
            } else {
                (OpFn::Delete, "/v1/catalog/deregister", deregister_body(&key))
            };
            let path = with_datacenter(path.to_string(), dc.as_deref());
            let resp = send(server, Method::PUT, &path, body).await;
            spec.history.borrow_mut().push(Op {
                id: 0,
                client: spec.id,
                key,
                f,
                invoke_ns: invoke.as_nanos() as u64,
                complete_ns: now().as_nanos() as u64,
                outcome: write_outcome(&resp, false),
                server: Some(server_name.clone()),
                mode: Default::default(),
            });
        }
        let think = spec.rng.gen_range(1..20);
        tokio::time::sleep(Duration::from_millis(think)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(rows: &[(&str, u64, &str)]) -> Vec<u8> {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(k, v, status)| {
                serde_json::json!({
                    "Node": { "Node": format!("n-{k}") },
                    "Service": { "ID": format!("web-{k}"), "Meta": { "v": v.to_string() } },
                    "Checks": [ { "CheckID": "serfHealth", "ServiceID": "", "Status": "passing" },
                                { "CheckID": format!("chk-{k}"), "ServiceID": format!("web-{k}"), "Status": status } ],
                })
            })
            .collect();
        serde_json::to_vec(&list).expect("json")
    }

    #[test]
    fn a_consistent_view_reads_back_the_written_value_and_a_torn_one_does_not() {
        let keys = vec!["k0".to_string(), "k1".to_string()];
        let rows = parse_instances(&answer(&[("k0", 1_000_000_003, "passing")]), &keys).expect("parses");
        assert_eq!(rows, vec![("k0".into(), Some(1_000_000_003)), ("k1".into(), None)]);
        let torn = parse_instances(&answer(&[("k0", 1_000_000_003, "critical")]), &keys).expect("parses");
        assert_eq!(torn[0].1, Some(1_000_000_002), "a status from another registration shows as a value never written");
    }

    #[test]
    fn the_registration_carries_the_value_and_its_parity_as_check_status() {
        let body: serde_json::Value = serde_json::from_slice(&register_body("k3", 7)).expect("json");
        assert_eq!(body["Service"]["Meta"]["v"], "7");
        assert_eq!(body["Check"]["Status"], "passing");
        let body: serde_json::Value = serde_json::from_slice(&register_body("k3", 8)).expect("json");
        assert_eq!(body["Check"]["Status"], "critical");
    }
}
