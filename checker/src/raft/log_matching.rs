//! Apply order, the state-machine face of Log Matching (Ongaro & Ousterhout 2014, Figure 3;
//! §5.3): logs that agree at an index agree on everything before it, and a server applies its
//! committed entries in log order (Figure 2, "Rules for Servers": "If commitIndex > lastApplied:
//! increment lastApplied, apply log[lastApplied]"). So within one incarnation of a node the applied
//! indexes strictly increase.
//!
//! A restart starts a new incarnation that re-applies from its last snapshot, so re-applying an
//! index after a restart is normal. `snapshot installed at N` moves the state to `N` without
//! apply events: later applies in that incarnation must be above `N`, and the install
//! itself must not move the state below what was already applied.

use std::collections::BTreeMap;

use super::{Event, Lifecycles, TraceEvent};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const LOG_MATCHING: &str = "log_matching";

/// One violation per point where a node's applied state went backwards (or stood still) within
/// one incarnation; the evidence is the previous state-changing line and the offending one.
pub fn check_log_matching(events: &[TraceEvent]) -> Vec<InvariantViolation> {
    let life = Lifecycles::of(events);
    // (node, incarnation) -> (highest index the state reflects, the line that put it there).
    let mut state: BTreeMap<(&str, u32), (u64, &str)> = BTreeMap::new();
    let mut out = Vec::new();
    for (e, incarnation) in events.iter().zip(&life.incarnation) {
        let key = (e.node.as_str(), *incarnation);
        match e.kind {
            Event::Apply { index, .. } => {
                if let Some((last, prev)) = state.get(&key) {
                    if index <= *last {
                        out.push(InvariantViolation::new(
                            LOG_MATCHING,
                            format!("{} applied index {index} after its state already reached {last}", e.node),
                            vec![prev.to_string(), e.raw.clone()],
                        ));
                    }
                }
                state.insert(key, (index, e.raw.as_str()));
            }
            Event::SnapshotInstalled { index } => {
                match state.get(&key) {
                    Some((last, prev)) if index < *last => out.push(InvariantViolation::new(
                        LOG_MATCHING,
                        format!("{} installed a snapshot at {index} below its applied index {last}", e.node),
                        vec![prev.to_string(), e.raw.clone()],
                    )),
                    _ => {}
                }
                state.insert(key, (index, e.raw.as_str()));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::testing::*;
    use crate::raft::{trace_events, Record};

    fn check(records: &[Record]) -> Vec<InvariantViolation> {
        check_log_matching(&trace_events(records))
    }

    #[test]
    fn increasing_applies_with_gaps_hold() {
        let v = check(&[
            at(607, "n2", membership(0)),
            at(622, "n2", set(2, 2, "k1")),
            at(623, "n1", membership(0)),
            at(639, "n2", delete(4, 2, "k1")),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn reapplying_after_restart_is_not_an_order_violation() {
        let v = check(&[
            at(622, "n1", set(2, 2, "k1")),
            at(639, "n1", delete(4, 2, "k1")),
            crash(2_565, "n1"),
            restart(7_973, "n1"),
            at(8_000, "n1", membership(0)),
            at(8_001, "n1", set(2, 2, "k1")),
            crash(9_000, "n1"),
            final_heal(29_000, &["n1"]),
            at(29_500, "n1", set(2, 2, "k1")),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn applying_an_index_twice_in_one_incarnation_violates_order() {
        let v = check(&[
            at(622, "n1", set(2, 2, "k1")),
            at(639, "n1", delete(4, 2, "k1")),
            at(700, "n1", set(3, 2, "k2")),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, LOG_MATCHING);
        assert!(v[0].detail.contains("index 3") && v[0].detail.contains("reached 4"), "{}", v[0]);
    }

    #[test]
    fn applying_below_an_installed_snapshot_violates_order() {
        let v = check(&[
            at(1_000, "n3", set(500, 2, "k1")),
            at(2_000, "n3", Event::SnapshotInstalled { index: 640 }),
            at(2_100, "n3", set(641, 3, "k1")),
            at(2_200, "n3", set(600, 3, "k1")),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("index 600"), "{}", v[0]);
    }

    #[test]
    fn snapshot_below_applied_state_violates_order() {
        let v = check(&[at(1_000, "n3", set(700, 2, "k1")), at(2_000, "n3", Event::SnapshotInstalled { index: 640 })]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("snapshot at 640"), "{}", v[0]);
    }
}
