//! Raft safety invariants checked over the simulator's trace.
//!
//! The simulator records every agent event as a typed [`Record`] (simulated time, host, [`Event`]);
//! [`trace_events`] numbers them and keeps their rendered line as evidence, and the checkers match
//! on the event types (nothing is parsed back from text, so new event kinds never break them). The
//! invariants are the safety properties of Ongaro & Ousterhout, "In Search of an Understandable
//! Consensus Algorithm" (USENIX ATC 2014), Figure 3, one per module:
//!
//! - [`election_safety`]: at most one leader per term (§5.2).
//! - [`log_matching`]: a node applies its log in index order (§5.3).
//! - [`leader_completeness`]: committed entries are never lost (§5.4).
//! - [`state_machine_safety`]: no two nodes apply different entries at one index (§5.4.3).
//!
//! And two durability properties across restarts, from Figure 2's persistent state and rules:
//!
//! - [`vote_durability`]: a saved vote never goes backwards, not even across a crash (§5.2).
//! - [`apply_once`]: a state machine applies each entry once, in order, after what it restored (§7).
//!
//! Incarnations: after the nemesis crashes `sX` ([`Nemesis::Crash`]), node `sX` emits nothing
//! until the nemesis restarts it ([`Nemesis::Restart`], or the [`Nemesis::FinalHeal`] restart
//! list), and its later events come from a new process that re-applies its log from its last
//! snapshot. The host also restarts a node by itself after [`Event::StartFailed`] or
//! [`Event::RaftFatal`]. [`Lifecycles`] numbers those incarnations.

pub mod apply_once;
pub mod election_safety;
pub mod leader_completeness;
mod lifecycle;
pub mod log_matching;
pub mod state_machine_safety;
#[cfg(test)]
pub(crate) mod testing;
pub mod vote_durability;

pub use apply_once::check_apply_once;
pub use concord_trace::{AppliedEntry, Event, Nemesis, RaftRole, Record, Vote, NEMESIS};
pub use election_safety::check_election_safety;
pub use leader_completeness::{check_leader_completeness, survivors_that_applied_nothing};
pub use lifecycle::Lifecycles;
pub use log_matching::check_log_matching;
pub use state_machine_safety::check_state_machine_safety;
pub use vote_durability::check_vote_durability;

use crate::invariant::InvariantViolation;

/// One trace record, as the invariants read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Simulated time in milliseconds since the run started.
    pub time_ms: u64,
    /// Who emitted it: a node name (`s1`), [`NEMESIS`] or `operator`.
    pub node: String,
    /// What happened.
    pub kind: Event,
    /// 0-based position of the record in the trace.
    pub line: usize,
    /// The record as rendered in the trace (`     0.603 s2 raft term=2 …`), for evidence.
    pub raw: String,
}

/// The records in trace order, numbered, with their rendered lines.
pub fn trace_events(records: &[Record]) -> Vec<TraceEvent> {
    records
        .iter()
        .enumerate()
        .map(|(line, r)| TraceEvent { time_ms: r.time_ms, node: r.who.clone(), kind: r.event.clone(), line, raw: r.to_string() })
        .collect()
}

/// Runs all the Raft invariants over a trace.
pub fn check_raft_trace(records: &[Record]) -> Vec<InvariantViolation> {
    let events = trace_events(records);
    let mut out = check_election_safety(&events);
    out.extend(check_state_machine_safety(&events));
    out.extend(check_log_matching(&events));
    out.extend(check_leader_completeness(&events));
    out.extend(check_vote_durability(&events));
    out.extend(check_apply_once(&events));
    out
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn trace_events_keep_order_time_host_and_rendered_line() {
        let records = [
            at(7, "n3", Event::Bootstrap { servers: 3 }),
            at(603, "n2", raft(2, RaftRole::Leader, Some(22))),
            at(622, "n2", set(2, 2, "k1")),
            final_heal(29_000, &["n2"]),
        ];
        let events = trace_events(&records);
        assert_eq!(events.len(), records.len());
        assert_eq!(events.iter().map(|e| e.line).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!((events[1].time_ms, events[1].node.as_str()), (603, "n2"));
        assert_eq!(events[1].kind, raft(2, RaftRole::Leader, Some(22)));
        assert_eq!(events[2].raw, "     0.622 n2 apply 2 t2 set k1 len=10 cas=None ok=true");
        assert_eq!(events[3].raw, r#"    29.000 nemesis final heal all; restart ["n2"]; liveness phase begins"#);
        assert!(!events[3].kind.from_agent());
    }
}
