//! The network-coordinates workload (`coordinates`): KV register clients as in
//! [`crate::workload::KvRegister`] while the scenario's two sites and cut-offs play out; after the
//! final heal (which keeps the sites: [`nemesis::Fault::LinkLatency`]) a poll that records, every
//! [`POLL_INTERVAL`], the servers' stored coordinates (`/v1/coordinate/nodes`, turned into
//! estimated round trips with serf's distance) and each server's `/v1/catalog/nodes?near=<it>`
//! into the history, until a round reflects the sites or [`POLL_BOUND`] passes. The oracle
//! `coordinates_reflect_latency` judges those rounds against the heal.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use checker::oracles::{check_blocking_query_latency, check_coordinates_reflect_latency, DisturbedSpan, COORDINATES_BOUND_NS, WAKE_BOUND_NS};
use checker::{CoordinateRound, History, InvariantViolation, Verdict};
use hyper::{Method, StatusCode};
use node::structs::{CoordinateEntry, Node};


use crate::http_client::request;
use crate::workload::{now, ClientSpec, Workload};

/// Pause between rounds.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long the poll runs at most (the oracle's bound counts from the heal; this covers it).
const POLL_BOUND: Duration = Duration::from_nanos(COORDINATES_BOUND_NS + 5_000_000_000);
/// Deadline for one read.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// See the module docs.
pub struct Coordinates;

impl Workload for Coordinates {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::Coordinates.name()
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
            crate::final_reads::final_kv_reads(servers.clone(), keys, history.clone()).await;
            poll_coordinates(servers, history).await;
        })
    }
    fn final_reads_bound(&self) -> Duration {
        crate::final_reads::AGREEMENT_BOUND + POLL_BOUND
    }
    fn liveness_oracles(&self, history: &History, disturbed: &[DisturbedSpan]) -> Vec<InvariantViolation> {
        let mut out = check_blocking_query_latency(history, disturbed, WAKE_BOUND_NS);
        let heal_ns = disturbed.last().map(|d| d.0).unwrap_or(0);
        out.extend(check_coordinates_reflect_latency(history, heal_ns, COORDINATES_BOUND_NS));
        out
    }
    fn liveness_oracle_names(&self) -> &'static str {
        "blocking queries answer within 2s of a change, coordinates reflect the two sites within 90s of the heal"
    }
}

/// Polls until a round reflects the sites or [`POLL_BOUND`] passes, recording every round.
async fn poll_coordinates(servers: Vec<(String, SocketAddr)>, history: Rc<RefCell<History>>) {
    let until = now() + POLL_BOUND;
    let (a, _) = scenarios::coordinates::groups(servers.len());
    let site_of: BTreeMap<String, u32> = servers.iter().map(|(n, _)| (n.clone(), u32::from(!a.contains(n)))).collect();
    let across_rtt_min_us = 2 * scenarios::coordinates::FAR_MS.0 * 1_000;
    loop {
        let mut stored = None;
        for (_, addr) in &servers {
            stored = get_body(*addr, "/v1/coordinate/nodes").await.and_then(|b| serde_json::from_slice::<Vec<CoordinateEntry>>(&b).ok());
            if stored.is_some() {
                break;
            }
        }
        let by_node: BTreeMap<String, CoordinateEntry> = stored.unwrap_or_default().into_iter().map(|c| (c.node.clone(), c)).collect();
        let missing: Vec<String> = site_of.keys().filter(|n| !by_node.contains_key(*n)).cloned().collect();
        let mut rtt_us = Vec::new();
        let known: Vec<&CoordinateEntry> = site_of.keys().filter_map(|n| by_node.get(n)).collect();
        for (i, x) in known.iter().enumerate() {
            for y in &known[i + 1..] {
                if let Some(d) = x.coord.distance_to(&y.coord) {
                    rtt_us.push((x.node.clone(), y.node.clone(), d.as_micros() as u64));
                }
            }
        }
        let mut near = BTreeMap::new();
        for (name, addr) in &servers {
            let listed = get_body(*addr, &format!("/v1/catalog/nodes?near={name}")).await.and_then(|b| serde_json::from_slice::<Vec<Node>>(&b).ok());
            if let Some(nodes) = listed {
                near.insert(name.clone(), nodes.into_iter().map(|n| n.node).filter(|n| site_of.contains_key(n)).collect());
            }
        }
        let round = CoordinateRound { at_ns: now().as_nanos() as u64, site_of: site_of.clone(), missing, rtt_us, across_rtt_min_us, near };
        let done = checker::oracles::coordinates_reflect_latency::disagreement(&round).is_none();
        history.borrow_mut().coordinates.push(round);
        if done || now() >= until {
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The body of a 200 answer to `GET path`, if one came within [`READ_TIMEOUT`].
async fn get_body(addr: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let resp = tokio::time::timeout(READ_TIMEOUT, request(addr, Method::GET, path, Vec::new())).await.ok()?.ok()?;
    (resp.status == StatusCode::OK).then_some(resp.body.to_vec())
}
