//! The gossip membership workload (`gossip-partition`, and `client-agents` through client
//! agents): KV register clients as in
//! [`crate::workload::KvRegister`], and after the final heal a membership poll that records, every
//! [`POLL_INTERVAL`], each server's `/v1/agent/members` and the catalog's `serfHealth` checks
//! (`/v1/health/state/any?consistent`) and each server's `/v1/event/list` (two user events of one
//! name are fired first) into the history, until a round shows convergence or
//! [`POLL_BOUND`] passes. The oracle `membership_converges` judges those rounds against the heal.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use checker::oracles::{check_blocking_query_latency, check_membership_converges, DisturbedSpan, MEMBERSHIP_BOUND_NS, WAKE_BOUND_NS};
use checker::{History, InvariantViolation, MembershipRound, Verdict};
use hyper::{Method, StatusCode};

use crate::http_client::request;
use crate::workload::{now, ClientSpec, Workload};

/// Pause between membership rounds.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long the poll runs at most (it starts once the cluster proved live, after the heal; the
/// oracle's bound counts from the heal, so this covers it).
pub(crate) const POLL_BOUND: Duration = Duration::from_nanos(MEMBERSHIP_BOUND_NS + 5_000_000_000);
/// User events fired after the heal (two of one name).
const FIRED_EVENTS: usize = 2;
/// Deadline for one membership or catalog read.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// See the module docs. With `through_client_agents` (`client-agents`), every workload client
/// sends its KV operations through a client agent of its own, and the membership poll covers the
/// client agents too. `forbid_failures`: the scenario never cuts a member off (only packet
/// loss), so any `failed` verdict in the trace is a false failure (`gossip-lossy`).
pub struct GossipMembership {
    pub through_client_agents: bool,
    pub forbid_failures: bool,
}

impl Workload for GossipMembership {
    fn name(&self) -> &'static str {
        if self.through_client_agents {
            scenarios::WorkloadKind::ClientAgents.name()
        } else if self.forbid_failures {
            scenarios::WorkloadKind::GossipLossy.name()
        } else {
            scenarios::WorkloadKind::Gossip.name()
        }
    }
    fn through_client_agents(&self) -> bool {
        self.through_client_agents
    }
    fn object(&self) -> &'static str {
        "kv"
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        Box::pin(crate::workload::run_client(spec))
    }
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)> {
        checker::check_history(history, budget_per_object)
    }
    fn oracle_names(&self) -> &'static str {
        crate::workload::KvRegister.oracle_names()
    }
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(async move {
            // The applied-state path compares the servers' own state; a client agent has none
            // (its reads are a server's), so only the servers take part. Every agent is polled.
            let server_hosts: Vec<(String, SocketAddr)> =
                servers.iter().filter(|(n, _)| nemesis::hosts::role_of(n) == Some(nemesis::Role::Server)).cloned().collect();
            crate::final_reads::final_kv_reads(server_hosts, keys, history.clone()).await;
            poll_membership(servers, history).await;
        })
    }
    fn final_reads_bound(&self) -> Duration {
        crate::final_reads::AGREEMENT_BOUND + POLL_BOUND
    }
    /// Blocking-query latency as for KV, and membership convergence counted from the final heal
    /// (the judge appends the span from the final heal to proven liveness last).
    fn liveness_oracles(&self, history: &History, disturbed: &[DisturbedSpan]) -> Vec<InvariantViolation> {
        let mut out = check_blocking_query_latency(history, disturbed, WAKE_BOUND_NS);
        let heal_ns = disturbed.last().map(|d| d.0).unwrap_or(0);
        out.extend(check_membership_converges(history, heal_ns, MEMBERSHIP_BOUND_NS));
        out
    }
    fn liveness_oracle_names(&self) -> &'static str {
        "blocking queries answer within 2s of a change, membership converges within 30s of the heal"
    }
    fn trace_oracles(&self, trace: &[checker::Record], _servers: usize) -> Vec<InvariantViolation> {
        if self.forbid_failures {
            checker::oracles::check_no_false_failures(trace)
        } else {
            Vec::new()
        }
    }
    fn trace_oracle_names(&self) -> &'static str {
        if self.forbid_failures {
            "no live member declared failed under packet loss"
        } else {
            ""
        }
    }
}

/// Polls until a round converges or [`POLL_BOUND`] passes, recording every round.
pub(crate) async fn poll_membership(servers: Vec<(String, SocketAddr)>, history: Rc<RefCell<History>>) {
    poll_pool(servers, history, None).await
}

/// [`poll_membership`] of the LAN pool, or with `wan_suffix` (`.dc1`) of the WAN pool
/// (`/v1/agent/members?wan`), whose member names lose the suffix so they compare with host names.
pub(crate) async fn poll_pool(servers: Vec<(String, SocketAddr)>, history: Rc<RefCell<History>>, wan_suffix: Option<&str>) {
    let until = now() + POLL_BOUND;
    let expected: Vec<String> = servers.iter().map(|(n, _)| n.clone()).collect();
    let fired_events = fire_events(&servers).await;
    loop {
        let mut views = BTreeMap::new();
        for (name, addr) in &servers {
            if let Some(view) = members_of(*addr, wan_suffix).await {
                views.insert(name.clone(), view);
            }
        }
        let mut serf_health = None;
        for (_, addr) in &servers {
            serf_health = serf_health_of(*addr).await;
            if serf_health.is_some() {
                break;
            }
        }
        let mut events = BTreeMap::new();
        for (name, addr) in &servers {
            if let Some(ids) = event_ids(*addr).await {
                events.insert(name.clone(), ids);
            }
        }
        let round = MembershipRound { at_ns: now().as_nanos() as u64, expected: expected.clone(), views, serf_health, fired_events: fired_events.clone(), events };
        let done = checker::oracles::membership_converges::disagreement(&round).is_none();
        history.borrow_mut().membership.push(round);
        if done || now() >= until {
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Fires [`FIRED_EVENTS`] user events of one name through the first server that accepts them
/// (the same name on purpose: events are told apart by ID). Returns their IDs.
async fn fire_events(servers: &[(String, SocketAddr)]) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..FIRED_EVENTS {
        for (_, addr) in servers {
            let fired = tokio::time::timeout(READ_TIMEOUT, request(*addr, Method::PUT, "/v1/event/fire/sim-heal", format!("{i}").into_bytes())).await;
            let id = match fired {
                Ok(Ok(r)) if r.status == StatusCode::OK => serde_json::from_slice::<serde_json::Value>(&r.body).ok().and_then(|v| v["ID"].as_str().map(str::to_string)),
                _ => None,
            };
            if let Some(id) = id {
                ids.push(id);
                break;
            }
        }
    }
    ids
}

/// The IDs of the user events an agent lists.
async fn event_ids(addr: SocketAddr) -> Option<Vec<String>> {
    let list = get_json(addr, "/v1/event/list").await?;
    Some(list.as_array()?.iter().filter_map(|e| e["ID"].as_str().map(str::to_string)).collect())
}

async fn get_json(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let resp = tokio::time::timeout(READ_TIMEOUT, request(addr, Method::GET, path, Vec::new())).await.ok()?.ok()?;
    if resp.status != StatusCode::OK {
        return None;
    }
    serde_json::from_slice(&resp.body).ok()
}

/// One agent's members: name → Consul status name (of the WAN pool with `wan_suffix`, which is
/// stripped from the names).
async fn members_of(addr: SocketAddr, wan_suffix: Option<&str>) -> Option<BTreeMap<String, String>> {
    let list = get_json(addr, if wan_suffix.is_some() { "/v1/agent/members?wan" } else { "/v1/agent/members" }).await?;
    let name = |n: &str| match wan_suffix {
        Some(suffix) => n.strip_suffix(suffix).unwrap_or(n).to_string(),
        None => n.to_string(),
    };
    let status = |code: u64| match code {
        1 => "alive",
        2 => "leaving",
        3 => "left",
        4 => "failed",
        _ => "unknown",
    };
    Some(
        list.as_array()?
            .iter()
            .filter_map(|m| Some((name(m["Name"].as_str()?), status(m["Status"].as_u64()?).to_string())))
            .collect(),
    )
}

/// The catalog's `serfHealth` statuses: node → status.
async fn serf_health_of(addr: SocketAddr) -> Option<BTreeMap<String, String>> {
    let list = get_json(addr, "/v1/health/state/any?consistent").await?;
    Some(
        list.as_array()?
            .iter()
            .filter(|c| c["CheckID"] == "serfHealth")
            .filter_map(|c| Some((c["Node"].as_str()?.to_string(), c["Status"].as_str()?.to_string())))
            .collect(),
    )
}
