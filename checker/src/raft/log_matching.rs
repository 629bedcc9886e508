//! Apply order, the state-machine face of Log Matching (Ongaro & Ousterhout 2014, Figure 3;
//! §5.3): logs that agree at an index agree on everything before it, and a server applies its
//! committed entries in log order (Figure 2, "Rules for Servers": "If commitIndex > lastApplied:
//! increment lastApplied, apply log[lastApplied]"). So within one incarnation of a node the applied
//! indexes strictly increase.
//!
//! A restart starts a new incarnation that re-applies from its last snapshot, so re-applying an
//! index after `nemesis restart` is normal. `snapshot installed at N` moves the state to `N`
//! without apply lines: later applies in that incarnation must be above `N`, and the install
//! itself must not move the state below what was already applied.

use std::collections::BTreeMap;

use super::{EventKind, Lifecycles, TraceEvent};
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
            EventKind::Apply { index, .. } => {
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
            EventKind::SnapshotInstalled { index } => {
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
    use crate::raft::{lines, parse_trace};

    fn check(text: &str) -> Vec<InvariantViolation> {
        check_log_matching(&parse_trace(&lines(text)))
    }

    #[test]
    fn increasing_applies_with_gaps_hold() {
        let v = check(
            "
     0.607 n2 apply 0 t0 membership [1, 2, 3]
     0.622 n2 apply 2 t2 set k1 len=10 cas=None ok=true
     0.623 n1 apply 0 t0 membership [1, 2, 3]
     0.639 n2 apply 4 t2 delete k1 recurse=false cas=None ok=true
",
        );
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn reapplying_after_restart_is_not_an_order_violation() {
        let v = check(
            r#"
     0.622 n1 apply 2 t2 set k1 len=10 cas=None ok=true
     0.639 n1 apply 4 t2 delete k1 recurse=false cas=None ok=true
     2.565 nemesis crash n1
     7.973 nemesis restart n1
     8.000 n1 apply 0 t0 membership [1, 2, 3]
     8.001 n1 apply 2 t2 set k1 len=10 cas=None ok=true
     9.000 nemesis crash n1
    29.000 nemesis final heal all; restart ["n1"]; liveness phase begins
    29.500 n1 apply 2 t2 set k1 len=10 cas=None ok=true
"#,
        );
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn applying_an_index_twice_in_one_incarnation_violates_order() {
        let v = check(
            "
     0.622 n1 apply 2 t2 set k1 len=10 cas=None ok=true
     0.639 n1 apply 4 t2 delete k1 recurse=false cas=None ok=true
     0.700 n1 apply 3 t2 set k2 len=10 cas=None ok=true
",
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, LOG_MATCHING);
        assert!(v[0].detail.contains("index 3") && v[0].detail.contains("reached 4"), "{}", v[0]);
    }

    #[test]
    fn applying_below_an_installed_snapshot_violates_order() {
        let v = check(
            "
     1.000 n3 apply 500 t2 set k1 len=10 cas=None ok=true
     2.000 n3 snapshot installed at 640
     2.100 n3 apply 641 t3 set k1 len=10 cas=None ok=true
     2.200 n3 apply 600 t3 set k1 len=10 cas=None ok=true
",
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("index 600"), "{}", v[0]);
    }

    #[test]
    fn snapshot_below_applied_state_violates_order() {
        let v = check(
            "
     1.000 n3 apply 700 t2 set k1 len=10 cas=None ok=true
     2.000 n3 snapshot installed at 640
",
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("snapshot at 640"), "{}", v[0]);
    }
}
