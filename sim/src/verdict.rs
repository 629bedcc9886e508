//! Judging a run: the checkers applied to its history and liveness record.

use std::time::Duration;

use checker::linearizable::Verdict;
use checker::InvariantViolation;

use crate::run::RunResult;

/// Time budget per key for the linearizability search (Unknown past it, never a silent pass).
pub const CHECK_BUDGET_PER_KEY: Duration = Duration::from_secs(20);

/// The checkers' findings for one run.
pub struct Judgement {
    /// Per-key linearizability verdicts (the liveness key is excluded).
    pub linearizable: Vec<(String, Verdict)>,
    /// `None` if the cluster proved live in time, else why not.
    pub no_liveness: Option<String>,
    /// A host that failed to run, or the panic that ended the run early.
    pub host_error: Option<String>,
    /// Raft invariants on the trace and history oracles that failed.
    pub invariants: Vec<InvariantViolation>,
    /// Liveness oracles that failed (e.g. a blocking query answered late after a change).
    pub late: Vec<InvariantViolation>,
}

impl Judgement {
    /// True if any safety checker found a violation (Unknown is not a pass; see [`Self::unknown`]).
    pub fn safety_violation(&self) -> bool {
        self.linearizable.iter().any(|(_, v)| matches!(v, Verdict::NotLinearizable(_))) || !self.invariants.is_empty()
    }
    /// True if the cluster did not prove live after the heal, or a liveness oracle failed.
    pub fn liveness_violation(&self) -> bool {
        self.no_liveness.is_some() || !self.late.is_empty()
    }
    /// True if a checker could not decide within its budget.
    pub fn unknown(&self) -> bool {
        self.linearizable.iter().any(|(_, v)| matches!(v, Verdict::Unknown { .. }))
    }
    /// True if the run passes every check.
    pub fn passed(&self) -> bool {
        !self.safety_violation() && !self.unknown() && !self.liveness_violation() && self.host_error.is_none()
    }
}

/// How long after a leader is elected the cluster still counts as disturbed (as after a fault).
const ELECTION_SETTLE_NS: u64 = 2_000_000_000;

/// Leader elections in the trace, as disturbed spans: from a server standing as candidate until a
/// leader is elected, plus [`ELECTION_SETTLE_NS`] (`u64::MAX` if none was). Elections the nemesis
/// did not cause happen too (a follower that missed heartbeats, e.g. under buggify's cut RPC
/// deadlines), and a new leader restarts what the old one timed (session TTLs, leases), so the
/// liveness oracles must excuse them as they excuse faults.
fn elections(trace: &[checker::Record]) -> Vec<checker::oracles::DisturbedSpan> {
    use concord_trace::{Event, RaftRole};
    let ms = 1_000_000;
    let mut spans = Vec::new();
    let mut open: Option<u64> = None;
    for r in trace {
        match &r.event {
            Event::RaftState { role: RaftRole::Candidate, .. } => {
                open.get_or_insert(r.time_ms * ms);
            }
            Event::RaftState { role: RaftRole::Leader, .. } => {
                if let Some(from) = open.take() {
                    spans.push((from, r.time_ms * ms + ELECTION_SETTLE_NS));
                }
            }
            _ => {}
        }
    }
    spans.extend(open.map(|from| (from, u64::MAX)));
    spans
}

/// Runs every checker over `result`.
pub fn judge(result: &RunResult) -> Judgement {
    let workload = crate::workload::for_scenario(&result.options.scenario);
    let linearizable = workload.check(&result.history, CHECK_BUDGET_PER_KEY);
    let no_liveness = match result.live_at {
        // A run a panic cut short never reached its liveness phase: the panic is its failure.
        _ if result.panic.is_some() => None,
        Some(_) => None,
        None => Some(format!(
            "no liveness: within {}s of the final heal (t={:.1}s) the cluster did not serve a write and a ?consistent read through every server",
            result.options.liveness_bound.as_secs(),
            result.healed_at.as_secs_f64()
        )),
    };
    // Per datacenter: each is its own Raft cluster.
    let datacenters = crate::datacenters::count(&result.options.scenario);
    let mut invariants = crate::datacenters::check_raft_trace(&result.trace, &result.servers, datacenters);
    invariants.extend(workload.oracles(&result.history));
    invariants.extend(workload.trace_oracles(&result.trace, result.options.servers));
    // Until the liveness probe proves the cluster serves again, the final heal still disturbs it.
    let mut disturbed = result.disturbed.clone();
    disturbed.extend(elections(&result.trace));
    // The final heal's span goes last: oracles that count from the heal read it there.
    let ns = |d: std::time::Duration| d.as_nanos() as u64;
    disturbed.push((ns(result.healed_at), result.live_at.map_or(u64::MAX, ns)));
    let late = if result.panic.is_some() { Vec::new() } else { workload.liveness_oracles(&result.history, &disturbed) };
    Judgement { linearizable, no_liveness, host_error: result.host_error.clone(), invariants, late }
}
