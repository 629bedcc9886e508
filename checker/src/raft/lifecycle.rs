//! Incarnations of nodes across crashes and restarts, the lifecycle the Figure 3 invariants of
//! Ongaro & Ousterhout 2014 are judged against: a crashed server keeps only its persistent state
//! (Figure 2, "Persistent state on all servers": currentTerm, votedFor, log[]; the state machine is
//! volatile and rebuilt, §7 for snapshots), so each restart begins a new incarnation whose applies
//! start over from its last snapshot.

use std::collections::{BTreeMap, BTreeSet};

use super::{Event, Nemesis, TraceEvent};

/// Crash/restart bookkeeping: which incarnation of its node emitted each event, and which nodes
/// were down when the trace ended.
#[derive(Clone, Debug, Default)]
pub struct Lifecycles {
    /// Per event (same positions as the input slice): the incarnation of `event.node` that emitted
    /// it, counting restarts from 0. The simulator's own events (nemesis, operator) get 0; a
    /// `start failed` or `raft fatal` event belongs to the incarnation it ends.
    pub incarnation: Vec<u32>,
    /// Nodes crashed after their last restart.
    pub down_at_end: BTreeSet<String>,
    /// Every node seen (emitting events or named by a crash/restart), with its incarnation at the
    /// end of the trace.
    pub final_incarnation: BTreeMap<String, u32>,
}

impl Lifecycles {
    /// Walks the events in order, counting each node's restarts: by the nemesis (`restart`, the
    /// final heal's restart list) and by its host (after `start failed` or `raft fatal`).
    pub fn of(events: &[TraceEvent]) -> Self {
        let mut restarts: BTreeMap<String, u32> = BTreeMap::new();
        let mut down: BTreeSet<String> = BTreeSet::new();
        let mut incarnation = Vec::with_capacity(events.len());
        for e in events {
            match &e.kind {
                Event::Nemesis(Nemesis::Crash { node, .. }) => {
                    restarts.entry(node.clone()).or_default();
                    down.insert(node.clone());
                }
                Event::Nemesis(Nemesis::Restart { node }) => {
                    *restarts.entry(node.clone()).or_default() += 1;
                    down.remove(node);
                }
                Event::Nemesis(Nemesis::FinalHeal { restarted }) => {
                    for node in restarted {
                        *restarts.entry(node.clone()).or_default() += 1;
                        down.remove(node);
                    }
                }
                _ => {}
            }
            let current = match restarts.get(e.node.as_str()) {
                _ if !e.kind.from_agent() => 0,
                Some(n) => *n,
                None => {
                    restarts.insert(e.node.clone(), 0);
                    0
                }
            };
            incarnation.push(current);
            if matches!(e.kind, Event::StartFailed { .. } | Event::RaftFatal { .. }) {
                // The host restarts the process by itself: its next events are a new incarnation.
                restarts.insert(e.node.clone(), current + 1);
            }
        }
        Self { incarnation, down_at_end: down, final_incarnation: restarts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::testing::*;
    use crate::raft::{trace_events, NEMESIS};

    #[test]
    fn restarts_start_new_incarnations_and_final_heal_restarts_count() {
        let events = trace_events(&[
            at(1_000, "n1", noop(1)),
            crash(2_000, "n1"),
            restart(3_000, "n1"),
            at(4_000, "n1", noop(1)),
            crash(5_000, "n1"),
            crash(6_000, "n2"),
            final_heal(7_000, &["n1"]),
            at(8_000, "n1", noop(1)),
        ]);
        let life = Lifecycles::of(&events);
        let of_n1: Vec<u32> = events.iter().zip(&life.incarnation).filter(|(e, _)| e.node == "n1").map(|(_, i)| *i).collect();
        assert_eq!(of_n1, vec![0, 1, 2]);
        assert_eq!(life.down_at_end, BTreeSet::from(["n2".to_string()]));
        assert_eq!(life.final_incarnation, BTreeMap::from([("n1".to_string(), 2), ("n2".to_string(), 0)]));
    }

    #[test]
    fn host_restarts_after_start_failure_or_fatal_error_start_new_incarnations() {
        let events = trace_events(&[
            at(1_000, "n1", noop(1)),
            at(2_000, "n1", Event::RaftFatal { reason: "fsync failed".into() }),
            at(3_000, "n1", Event::StartFailed { reason: "storage: injected read error".into() }),
            at(4_000, "n1", noop(1)),
        ]);
        let life = Lifecycles::of(&events);
        assert_eq!(life.incarnation, vec![0, 0, 1, 2]);
        assert!(life.down_at_end.is_empty());
    }

    #[test]
    fn skipped_faults_and_simulator_events_name_no_node() {
        let skipped = Nemesis::Skipped { fault: "crash n1".into(), why: "n1 already down".into() };
        let events = trace_events(&[
            at(1_000, "n1", noop(1)),
            nemesis(2_000, skipped),
            nemesis(2_100, Nemesis::Other("pause n1".into())),
            at(2_200, "operator", Event::Operator("PUT /v1/operator/raft/peer?node=n1: done".into())),
            at(3_000, "n1", noop(2)),
        ]);
        let life = Lifecycles::of(&events);
        assert_eq!(life.incarnation, vec![0, 0, 0, 0, 0]);
        assert!(life.down_at_end.is_empty());
        assert_eq!(life.final_incarnation.keys().collect::<Vec<_>>(), vec!["n1"]);
        assert!(!life.final_incarnation.contains_key(NEMESIS));
    }
}
