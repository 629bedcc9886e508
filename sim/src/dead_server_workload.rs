//! The `dead-server-cleanup` workload: the gossip membership workload (KV register clients, and
//! after the heal the membership poll judged by membership convergence, which now also proves the
//! leader added the dead server back), plus the autopilot oracles on the trace: the Raft
//! configuration never shrinks below a quorum of the servers, and a dead server leaves it within
//! [`checker::oracles::autopilot::DEAD_SERVER_BOUND_NS`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use checker::oracles::autopilot::{check_dead_servers_removed, check_quorum_floor};
use checker::oracles::DisturbedSpan;
use checker::{History, InvariantViolation, Record, Verdict};

use crate::gossip_workload::GossipMembership;
use crate::workload::{ClientSpec, Workload};

/// See the module docs.
pub struct DeadServerCleanup {
    gossip: GossipMembership,
}

impl Default for DeadServerCleanup {
    fn default() -> Self {
        Self { gossip: GossipMembership { through_client_agents: false, forbid_failures: false } }
    }
}

impl Workload for DeadServerCleanup {
    fn name(&self) -> &'static str {
        scenarios::WorkloadKind::DeadServerCleanup.name()
    }
    fn object(&self) -> &'static str {
        self.gossip.object()
    }
    fn client(&self, spec: ClientSpec) -> Pin<Box<dyn Future<Output = turmoil::Result>>> {
        self.gossip.client(spec)
    }
    fn check(&self, history: &History, budget_per_object: Duration) -> Vec<(String, Verdict)> {
        self.gossip.check(history, budget_per_object)
    }
    fn oracle_names(&self) -> &'static str {
        "no phantom values, acknowledged writes survive, consistent reads match applied state, index monotonic, raft configuration keeps a quorum of the servers, dead servers leave it within 15s"
    }
    fn final_reads(&self, servers: Vec<(String, SocketAddr)>, keys: Vec<String>, history: Rc<RefCell<History>>) -> Pin<Box<dyn Future<Output = ()>>> {
        self.gossip.final_reads(servers, keys, history)
    }
    fn final_reads_bound(&self) -> Duration {
        self.gossip.final_reads_bound()
    }
    fn liveness_oracles(&self, history: &History, disturbed: &[DisturbedSpan]) -> Vec<InvariantViolation> {
        self.gossip.liveness_oracles(history, disturbed)
    }
    fn liveness_oracle_names(&self) -> &'static str {
        self.gossip.liveness_oracle_names()
    }
    fn trace_oracles(&self, trace: &[Record], servers: usize) -> Vec<InvariantViolation> {
        let ids: BTreeMap<String, u64> = nemesis::hosts::servers(servers).into_iter().map(|n| (n.clone(), node::raft::node_id_for(&n))).collect();
        let mut out = check_quorum_floor(trace, servers);
        out.extend(check_dead_servers_removed(trace, &ids));
        out
    }
}
