//! The agent-services workload: clients register service instances *on an agent* through its own
//! API (`PUT /v1/agent/service/register`), deregister them (`/v1/agent/service/deregister/<id>`)
//! and flip their TTL checks (`/v1/agent/check/pass|fail/<id>`), on agents (the servers) that
//! the scenario crashes and restarts.
//!
//! Each client owns [`SLOTS`] service ids (`svc-w1-0`, `svc-w1-1`, ...; slot 0 has no check, the
//! others a TTL check `<id>:ttl` with a TTL longer than any run, so it never expires), and
//! registers any of them on any agent: the object judged is `agent/service-id` (`s2/svc-w1-1`),
//! touched by one client at a time. Ops are recorded with the encoding of
//! [`checker::oracles::agent_services`].
//!
//! After the final heal and the liveness proof, [`Workload::final_reads`] waits for the clients to
//! stop, then polls every agent each second, up to [`CONVERGENCE_BOUND`]: what the agent holds
//! (`/v1/agent/services`, `/v1/agent/checks`) and what the catalog shows for its node
//! (`/v1/catalog/node/<node>?consistent`, `/v1/health/node/<node>?consistent`), until the two
//! agree for every agent. It records that observation (or the last one) as two reads per object
//! by client 0, and the oracle judges them against the acknowledged ops.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use checker::oracles::agent_services::{self as codec, State, ABSENT, CRITICAL, PASSING, PLAIN, WARNING};
use checker::{History, InvariantViolation, OkResult, Op, OpFn, Outcome, Verdict};
use hyper::{Method, StatusCode};
use rand::Rng;

use crate::http_client::{request, ClientError, Response};
use crate::workload::{now, ClientSpec, Workload, OP_TIMEOUT};

/// The service every instance belongs to.
pub const SERVICE: &str = "api";
/// Service ids per client.
pub const SLOTS: u32 = 3;
/// How long after the workload stopped the catalog may take to show every agent's state.
/// Anti-entropy syncs a change at once and retries a failed sync after at most 15 s (plus
/// stagger); a restarted agent syncs fully at start.
pub const CONVERGENCE_BOUND: Duration = Duration::from_secs(75);
/// Poll period of the final observation.
const POLL: Duration = Duration::from_secs(1);
/// TTL of the checks: longer than any run, so only the clients change their status.
const CHECK_TTL: &str = "1h";

/// The agent-services workload (see the module docs).
#[derive(Default)]
pub struct AgentServices {
    /// When the clients stop issuing ops (set by [`Workload::client`]).
    until: Cell<Duration>,
}

impl Workload for AgentServices {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::AgentServices.name()
    }
    fn object(&self) -> &'static str {
        "service"
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        self.until.set(self.until.get().max(spec.until));
        Box::pin(run_client(spec))
    }
    /// No linearizability claim: an agent's API is local and the catalog follows it eventually;
    /// [`Self::oracles`] judges the history.
    fn check(&self, _history: &History, _budget_per_object: Duration) -> Vec<(String, Verdict)> {
        Vec::new()
    }
    fn oracles(&self, history: &History) -> Vec<InvariantViolation> {
        checker::oracles::check_agent_services(history)
    }
    fn oracle_names(&self) -> &'static str {
        "registrations, deregistrations and TTL status held by their agent across restarts, catalog convergence"
    }
    fn final_reads_bound(&self) -> Duration {
        CONVERGENCE_BOUND + OP_TIMEOUT * 4
    }
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, _keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        let clients_done = self.until.get() + OP_TIMEOUT + Duration::from_millis(100);
        Box::pin(final_observation(servers, clients_done, history))
    }
}

fn service_id(client: u32, slot: u32) -> String {
    format!("svc-w{client}-{slot}")
}

fn check_id(service: &str) -> String {
    format!("{service}:ttl")
}

fn status_name(s: State) -> &'static str {
    match s {
        PASSING => "passing",
        _ => "critical",
    }
}

fn register_body(service: &str, with_check: bool, status: State) -> Vec<u8> {
    let mut body = serde_json::json!({ "ID": service, "Name": SERVICE, "Port": 8080 });
    if with_check {
        body["Check"] = serde_json::json!({ "CheckID": check_id(service), "Name": "ttl", "TTL": CHECK_TTL, "Status": status_name(status) });
    }
    body.to_string().into_bytes()
}

/// An agent API write's outcome: 200 is ok; an error the agent marks as not applied (unknown id,
/// bad input, a write to its data dir that failed and was rolled back), or a connection never
/// opened, is `fail`; anything else (a timeout, a dropped connection) is `info`.
fn agent_outcome(resp: &Result<Response, ClientError>) -> Outcome {
    match resp {
        Ok(r) if r.status == StatusCode::OK => Outcome::Ok(OkResult::Done),
        Ok(r) if r.headers.get("X-Concord-Write-Applied").is_some_and(|v| v == "false") => Outcome::Fail,
        Ok(_) => Outcome::Info,
        Err(ClientError::Connect(_)) => Outcome::Fail,
        Err(ClientError::Io(_)) => Outcome::Info,
    }
}

/// Runs one client until `spec.until`. Every error is recorded in the history.
pub async fn run_client(mut spec: ClientSpec) -> turmoil::Result {
    while now() < spec.until {
        let (agent, addr) = spec.servers[spec.rng.gen_range(0..spec.servers.len())].clone();
        let slot = spec.rng.gen_range(0..SLOTS);
        let service = service_id(spec.id, slot);
        let with_check = slot != 0;
        let roll = spec.rng.gen_range(0..100);
        let status = if spec.rng.gen_bool(0.5) { PASSING } else { CRITICAL };
        let (f, path, body) = if roll < 45 || (!with_check && roll >= 65) {
            let created = if with_check { status } else { PLAIN };
            (OpFn::Write(codec::register(created)), "/v1/agent/service/register".to_string(), register_body(&service, with_check, status))
        } else if roll < 65 {
            (OpFn::Delete, format!("/v1/agent/service/deregister/{service}"), Vec::new())
        } else {
            let verb = if status == PASSING { "pass" } else { "fail" };
            (OpFn::Write(codec::ttl(status)), format!("/v1/agent/check/{verb}/{}", check_id(&service)), Vec::new())
        };
        let invoke = now();
        let resp = tokio::time::timeout(OP_TIMEOUT, request(addr, Method::PUT, &path, body)).await;
        let resp = resp.unwrap_or_else(|_| Err(ClientError::Io("timeout".into())));
        spec.history.borrow_mut().push(Op {
            id: 0,
            client: spec.id,
            key: format!("{agent}/{service}"),
            f,
            invoke_ns: invoke.as_nanos() as u64,
            complete_ns: now().as_nanos() as u64,
            outcome: agent_outcome(&resp),
            server: None,
            mode: Default::default(),
        });
        let think = spec.rng.gen_range(20..300);
        tokio::time::sleep(Duration::from_millis(think)).await;
    }
    Ok(())
}

/// One agent's services of [`SERVICE`] with their state, as one side sees them (`None`: could
/// not be read).
type View = Option<BTreeMap<String, State>>;

fn status_state(s: Option<&str>) -> State {
    match s {
        Some("passing") => PASSING,
        Some("warning") => WARNING,
        Some("critical") => CRITICAL,
        _ => 9,
    }
}

async fn get_json(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let resp = tokio::time::timeout(OP_TIMEOUT, request(addr, Method::GET, path, Vec::new())).await.ok()?.ok()?;
    if resp.status != StatusCode::OK {
        return None;
    }
    serde_json::from_slice(&resp.body).ok()
}

/// Services (id → name) and checks (service id → status of its `<id>:ttl` check) into a view.
fn view_of<'a>(services: impl Iterator<Item = (&'a str, &'a str)>, checks: impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)>) -> BTreeMap<String, State> {
    let statuses: BTreeMap<&str, State> =
        checks.filter(|(cid, sid, _)| *cid == check_id(sid)).map(|(_, sid, status)| (sid, status_state(status))).collect();
    services
        .filter(|(_, name)| *name == SERVICE)
        .map(|(id, _)| (id.to_string(), statuses.get(id).copied().unwrap_or(PLAIN)))
        .collect()
}

/// What the agent itself holds.
async fn agent_view(addr: SocketAddr) -> View {
    let services = get_json(addr, "/v1/agent/services").await?;
    let checks = get_json(addr, "/v1/agent/checks").await?;
    let services = services.as_object()?.iter().map(|(id, s)| (id.as_str(), s.get("Service").and_then(|v| v.as_str()).unwrap_or("")));
    let checks = checks.as_object()?.iter().map(|(cid, c)| {
        (cid.as_str(), c.get("ServiceID").and_then(|v| v.as_str()).unwrap_or(""), c.get("Status").and_then(|v| v.as_str()))
    });
    Some(view_of(services, checks))
}

/// What the catalog shows for `node`, read through `addr` with `?consistent`.
async fn catalog_view(addr: SocketAddr, node: &str) -> View {
    let services = get_json(addr, &format!("/v1/catalog/node/{node}?consistent")).await?;
    let checks = get_json(addr, &format!("/v1/health/node/{node}?consistent")).await?;
    let empty = serde_json::Map::new();
    let services = match &services {
        serde_json::Value::Null => &empty,
        v => v.get("Services")?.as_object()?,
    };
    let services = services.iter().map(|(id, s)| (id.as_str(), s.get("Service").and_then(|v| v.as_str()).unwrap_or("")));
    let checks = checks.as_array()?.iter().map(|c| {
        (
            c.get("CheckID").and_then(|v| v.as_str()).unwrap_or(""),
            c.get("ServiceID").and_then(|v| v.as_str()).unwrap_or(""),
            c.get("Status").and_then(|v| v.as_str()),
        )
    });
    Some(view_of(services, checks))
}

/// Waits for the clients to stop, then polls every agent until the catalog shows what each
/// holds or [`CONVERGENCE_BOUND`] runs out, and records that observation (see the module docs).
async fn final_observation(servers: Vec<(String, SocketAddr)>, clients_done: Duration, history: Rc<RefCell<History>>) {
    tokio::time::sleep(clients_done.saturating_sub(now())).await;
    let deadline = now() + CONVERGENCE_BOUND;
    loop {
        let invoke = now();
        let mut views: Vec<(String, View, View)> = Vec::new();
        for (name, addr) in &servers {
            views.push((name.clone(), agent_view(*addr).await, catalog_view(*addr, name).await));
        }
        let converged = views.iter().all(|(_, a, c)| a.is_some() && a == c);
        if converged || now() >= deadline {
            record(&history, invoke, &views);
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Records one observation: for every object the history touched or either view shows, the
/// agent's and the catalog's state (a view that could not be read is left out).
fn record(history: &Rc<RefCell<History>>, invoke: Duration, views: &[(String, View, View)]) {
    let complete = now();
    let mut h = history.borrow_mut();
    let mut objects: BTreeSet<String> = h.ops.iter().filter(|o| o.client != 0).map(|o| o.key.clone()).collect();
    for (name, a, c) in views {
        for v in [a, c].into_iter().flatten() {
            objects.extend(v.keys().map(|id| format!("{name}/{id}")));
        }
    }
    for key in objects {
        let Some((agent, id)) = key.split_once('/') else { continue };
        let Some((_, a, c)) = views.iter().find(|(name, _, _)| name == agent) else { continue };
        for (view, encode) in [(a, codec::agent_view as fn(State) -> u64), (c, codec::catalog_view)] {
            if let Some(v) = view {
                let state = v.get(id).copied().unwrap_or(ABSENT);
                h.push(Op {
                    id: 0,
                    client: 0,
                    key: key.clone(),
                    f: OpFn::Read,
                    invoke_ns: invoke.as_nanos() as u64,
                    complete_ns: complete.as_nanos() as u64,
                    outcome: Outcome::Ok(OkResult::Read(Some(encode(state)))),
                    server: None,
                    mode: Default::default(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_pair_each_service_with_its_ttl_check() {
        let services = [("svc-w1-0", "api"), ("svc-w1-1", "api"), ("consul", "consul")];
        let checks = [("svc-w1-1:ttl", "svc-w1-1", Some("passing")), ("serfHealth", "", Some("passing"))];
        let v = view_of(services.into_iter(), checks.into_iter());
        assert_eq!(v, BTreeMap::from([("svc-w1-0".to_string(), PLAIN), ("svc-w1-1".to_string(), PASSING)]));
    }

    #[test]
    fn registrations_carry_the_ttl_check_and_its_initial_status() {
        let body: serde_json::Value = serde_json::from_slice(&register_body("svc-w2-1", true, CRITICAL)).expect("json");
        assert_eq!(body["Check"]["CheckID"], "svc-w2-1:ttl");
        assert_eq!(body["Check"]["Status"], "critical");
        let body: serde_json::Value = serde_json::from_slice(&register_body("svc-w2-0", false, PLAIN)).expect("json");
        assert!(body.get("Check").is_none());
    }
}
