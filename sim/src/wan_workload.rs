//! The WAN gossip workload (`wan-gossip`): KV register clients as in
//! [`crate::workload::KvRegister`], and after the final heal a membership poll of every server's
//! WAN pool (`/v1/agent/members?wan`, members named `<node>.dc1`), judged by the
//! membership-convergence oracle: within its bound of the heal every server sees every server
//! alive in the WAN pool (and, as on `gossip-partition`, in the LAN pool's catalog `serfHealth`).
//!
//! The simulator builds one datacenter, so the WAN pool here is the servers of dc1 alone: it
//! proves the WAN driver (the LAN driver run with foca's WAN profile on `serf_wan`) joins, detects
//! failures and heals, not cross-datacenter forwarding (which the e2e test `e2e_wan` covers).

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use checker::oracles::{check_membership_converges, DisturbedSpan, MEMBERSHIP_BOUND_NS};
use checker::{History, InvariantViolation, Verdict};

use crate::workload::{ClientSpec, Workload};

/// The datacenter every simulated server is in, as WAN member names carry it.
pub const SIM_DATACENTER: &str = "dc1";

/// See the module docs.
pub struct WanGossip;

impl Workload for WanGossip {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::WanGossip.name()
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
            let suffix = format!(".{SIM_DATACENTER}");
            crate::gossip_workload::poll_pool(servers, history, Some(&suffix)).await;
        })
    }
    fn final_reads_bound(&self) -> Duration {
        crate::final_reads::AGREEMENT_BOUND + crate::gossip_workload::POLL_BOUND
    }
    /// WAN membership convergence counted from the final heal (the judge appends the span from
    /// the final heal to proven liveness last).
    fn liveness_oracles(&self, history: &History, disturbed: &[DisturbedSpan]) -> Vec<InvariantViolation> {
        let mut out = checker::oracles::check_blocking_query_latency(history, disturbed, checker::oracles::WAKE_BOUND_NS);
        let heal_ns = disturbed.last().map(|d| d.0).unwrap_or(0);
        out.extend(check_membership_converges(history, heal_ns, MEMBERSHIP_BOUND_NS));
        out
    }
    fn liveness_oracle_names(&self) -> &'static str {
        "blocking queries answer within 2s of a change, WAN membership converges within 30s of the heal"
    }
}
