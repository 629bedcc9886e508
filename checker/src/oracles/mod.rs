//! History oracles: cheap, targeted properties of a client [`History`], complementary to the full
//! linearizability search of [`crate::linearizable`]. Each names exactly what went wrong (a value
//! from nowhere, a lost acknowledged write, a blocking-query index going backwards) and is
//! conservative: it flags only what no legal execution could explain.
//!
//! They are the client-visible faces of the Raft safety properties (Ongaro & Ousterhout 2014,
//! "In Search of an Understandable Consensus Algorithm", Figure 3): a phantom value contradicts
//! State Machine Safety (§5.4.3), a lost acknowledged write contradicts Leader Completeness (§5.4),
//! and a backwards `X-Consul-Index` contradicts the monotonic commit/apply index (§5.3).

pub mod acknowledged_writes_survive;
pub mod autopilot;
pub mod agent_services;
pub mod blocking_query_latency;
pub mod consistent_read_matches_applied_state;
pub mod coordinates_reflect_latency;
pub mod holders_step_down;
pub mod index_monotonic;
pub mod membership_converges;
pub mod no_false_failures;
pub mod no_phantom_values;
pub mod snapshot_restore;

pub use acknowledged_writes_survive::check_acknowledged_writes_survive;
pub use agent_services::check_agent_services;
pub use blocking_query_latency::{check_blocking_query_latency, DisturbedSpan, WAKE_BOUND_NS};
pub use consistent_read_matches_applied_state::check_consistent_read_matches_applied_state;
pub use coordinates_reflect_latency::{check_coordinates_reflect_latency, COORDINATES_BOUND_NS};
pub use holders_step_down::check_holders_step_down;
pub use index_monotonic::check_index_monotonic;
pub use membership_converges::{check_membership_converges, check_wan_membership_converges, MEMBERSHIP_BOUND_NS};
pub use no_false_failures::check_no_false_failures;
pub use no_phantom_values::check_no_phantom_values;

use crate::history::{History, OkResult, Op, OpFn, Outcome, Value};
use crate::invariant::InvariantViolation;

/// Runs the safety oracles: no phantom values, acknowledged writes survive, consistent reads
/// match the applied state, index monotonic. (The liveness oracle
/// [`check_blocking_query_latency`] needs the nemesis' disturbed spans and runs apart.)
pub fn check_oracles(history: &History) -> Vec<InvariantViolation> {
    let mut out = check_no_phantom_values(history);
    out.extend(check_acknowledged_writes_survive(history));
    out.extend(check_consistent_read_matches_applied_state(history));
    out.extend(check_index_monotonic(history));
    out
}

/// Whether `op` may have deleted its key: a delete, or a delete-cas that did not answer `false`.
pub(crate) fn may_delete(op: &Op) -> bool {
    match op.f {
        OpFn::Delete => true,
        OpFn::DeleteCas { .. } => !matches!(op.outcome, Outcome::Ok(OkResult::Cas(false))),
        _ => false,
    }
}

/// The value an op would store: `Write(v)` and `Cas { new: v, .. }`; `None` for reads and deletes.
pub(crate) fn written_value(op: &Op) -> Option<Value> {
    match op.f {
        OpFn::Write(v) | OpFn::Cas { new: v, .. } => Some(v),
        OpFn::Read | OpFn::Delete | OpFn::DeleteCas { .. } => None,
    }
}

/// `12.345678s` from nanoseconds.
pub(crate) fn secs(ns: u64) -> String {
    format!("{}.{:06}s", ns / 1_000_000_000, (ns % 1_000_000_000) / 1_000)
}

/// One op as an evidence line: `#id <client host> <key> <fn>[<read mode>][ via <server>]
/// [invoke..complete] -> <outcome>`.
pub(crate) fn describe(op: &Op) -> String {
    let f = match &op.f {
        OpFn::Read => "read".to_string(),
        OpFn::Write(v) => format!("write {v}"),
        OpFn::Cas { expect: Some(e), new } => format!("cas {e}->{new}"),
        OpFn::Cas { expect: None, new } => format!("cas absent->{new}"),
        OpFn::Delete => "delete".to_string(),
        OpFn::DeleteCas { expect } => format!("delete-cas {expect}"),
    };
    let outcome = match &op.outcome {
        Outcome::Ok(OkResult::Read(Some(v))) => format!("ok {v}"),
        Outcome::Ok(OkResult::Read(None)) => "ok absent".to_string(),
        Outcome::Ok(OkResult::Present) => "ok present".to_string(),
        Outcome::Ok(OkResult::Cas(swapped)) => format!("ok {swapped}"),
        Outcome::Ok(OkResult::Done) => "ok".to_string(),
        Outcome::Fail => "fail".to_string(),
        Outcome::Info => "info".to_string(),
    };
    let complete = if op.outcome == Outcome::Info { "?".to_string() } else { secs(op.complete_ns) };
    let via = op.server.as_deref().map(|s| format!(" via {s}")).unwrap_or_default();
    format!("#{} {} {} {f}{}{via} [{}..{complete}] -> {outcome}", op.id, op.client_name(), op.key, op.mode.query(), secs(op.invoke_ns))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for hand-written histories (times in milliseconds).
    use crate::history::{History, OkResult, Op, OpFn, Outcome};

    /// A history of `ops` on key `k`, ids assigned in order.
    pub fn history(ops: Vec<Op>) -> History {
        let mut h = History::default();
        for op in ops {
            h.push(op);
        }
        h
    }

    /// An op by `client` on `key` from `invoke_ms` to `complete_ms`.
    pub fn op(client: u32, key: &str, f: OpFn, invoke_ms: u64, complete_ms: u64, outcome: Outcome) -> Op {
        Op {
            id: 0,
            client,
            key: key.to_string(),
            f,
            invoke_ns: invoke_ms * 1_000_000,
            complete_ns: complete_ms * 1_000_000,
            outcome,
            server: None,
            mode: Default::default(),
        }
    }

    pub fn write(v: u64, invoke_ms: u64, complete_ms: u64, outcome: Outcome) -> Op {
        op(1, "k", OpFn::Write(v), invoke_ms, complete_ms, outcome)
    }

    pub fn cas(expect: Option<u64>, new: u64, invoke_ms: u64, complete_ms: u64, outcome: Outcome) -> Op {
        op(1, "k", OpFn::Cas { expect, new }, invoke_ms, complete_ms, outcome)
    }

    pub fn delete(invoke_ms: u64, complete_ms: u64, outcome: Outcome) -> Op {
        op(1, "k", OpFn::Delete, invoke_ms, complete_ms, outcome)
    }

    pub fn read(v: Option<u64>, invoke_ms: u64, complete_ms: u64) -> Op {
        op(2, "k", OpFn::Read, invoke_ms, complete_ms, Outcome::Ok(OkResult::Read(v)))
    }

    pub const DONE: Outcome = Outcome::Ok(OkResult::Done);
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn describe_renders_an_op_on_one_line() {
        let h = history(vec![write(7, 1, 2, DONE), read(Some(7), 3, 4)]);
        assert_eq!(describe(&h.ops[0]), "#0 w1 k write 7 [0.001000s..0.002000s] -> ok");
        assert_eq!(describe(&h.ops[1]), "#1 w2 k read [0.003000s..0.004000s] -> ok 7");
        let mut stale = h.ops[1].clone();
        stale.mode = crate::history::ReadMode::Stale;
        stale.server = Some("n3".into());
        assert_eq!(describe(&stale), "#1 w2 k read?stale via n3 [0.003000s..0.004000s] -> ok 7");
    }

    #[test]
    fn a_clean_history_passes_every_oracle() {
        let h = history(vec![write(7, 1, 2, DONE), cas(Some(7), 8, 3, 4, Outcome::Ok(OkResult::Cas(true))), read(Some(8), 5, 6)]);
        assert!(check_oracles(&h).is_empty());
    }
}
