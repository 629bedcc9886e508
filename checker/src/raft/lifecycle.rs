//! Incarnations of nodes across crashes and restarts, the lifecycle the Figure 3 invariants of
//! Ongaro & Ousterhout 2014 are judged against: a crashed server keeps only its persistent state
//! (Figure 2, "Persistent state on all servers": currentTerm, votedFor, log[]; the state machine is
//! volatile and rebuilt, §7 for snapshots), so each restart begins a new incarnation whose applies
//! start over from its last snapshot.

use std::collections::{BTreeMap, BTreeSet};

use super::{EventKind, TraceEvent, NEMESIS};

/// Crash/restart bookkeeping: which incarnation of its node emitted each event, and which nodes
/// were down when the trace ended.
#[derive(Clone, Debug, Default)]
pub struct Lifecycles {
    /// Per event (same positions as the input slice): the incarnation of `event.node` that emitted
    /// it, counting restarts from 0. Nemesis events get 0; a `start failed` or `raft fatal` line
    /// belongs to the incarnation it ends.
    pub incarnation: Vec<u32>,
    /// Nodes crashed after their last restart.
    pub down_at_end: BTreeSet<String>,
    /// Every node seen (emitting lines or named by a crash/restart), with its incarnation at the
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
                EventKind::Crash { node } => {
                    restarts.entry(node.clone()).or_default();
                    down.insert(node.clone());
                }
                EventKind::Restart { node } => {
                    *restarts.entry(node.clone()).or_default() += 1;
                    down.remove(node);
                }
                EventKind::FinalHeal { restarted } => {
                    for node in restarted {
                        *restarts.entry(node.clone()).or_default() += 1;
                        down.remove(node);
                    }
                }
                _ => {}
            }
            let current = match restarts.get(e.node.as_str()) {
                _ if e.node == NEMESIS => 0,
                Some(n) => *n,
                None => {
                    restarts.insert(e.node.clone(), 0);
                    0
                }
            };
            incarnation.push(current);
            if matches!(e.kind, EventKind::StartFailed { .. } | EventKind::RaftFatal { .. }) {
                // The host restarts the process by itself: its next lines are a new incarnation.
                restarts.insert(e.node.clone(), current + 1);
            }
        }
        Self { incarnation, down_at_end: down, final_incarnation: restarts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{lines, parse_trace};

    #[test]
    fn restarts_start_new_incarnations_and_final_heal_restarts_count() {
        let events = parse_trace(&lines(
            r#"
     1.000 n1 apply 1 t1 noop ok=true
     2.000 nemesis crash n1
     3.000 nemesis restart n1
     4.000 n1 apply 1 t1 noop ok=true
     5.000 nemesis crash n1
     6.000 nemesis crash n2
     7.000 nemesis final heal all; restart ["n1"]; liveness phase begins
     8.000 n1 apply 1 t1 noop ok=true
"#,
        ));
        let life = Lifecycles::of(&events);
        let of_n1: Vec<u32> = events.iter().zip(&life.incarnation).filter(|(e, _)| e.node == "n1").map(|(_, i)| *i).collect();
        assert_eq!(of_n1, vec![0, 1, 2]);
        assert_eq!(life.down_at_end, BTreeSet::from(["n2".to_string()]));
        assert_eq!(life.final_incarnation, BTreeMap::from([("n1".to_string(), 2), ("n2".to_string(), 0)]));
    }

    #[test]
    fn host_restarts_after_start_failure_or_fatal_error_start_new_incarnations() {
        let events = parse_trace(&lines(
            "
     1.000 n1 apply 1 t1 noop ok=true
     2.000 n1 raft fatal: fsync failed; restarting
     3.000 n1 start failed: storage: injected read error
     4.000 n1 apply 1 t1 noop ok=true
",
        ));
        let life = Lifecycles::of(&events);
        assert_eq!(life.incarnation, vec![0, 0, 1, 2]);
        assert!(life.down_at_end.is_empty());
    }
}
