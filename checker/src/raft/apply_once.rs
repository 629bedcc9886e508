//! Apply once, in order, without gaps: a server applies committed entries one by one, "If
//! commitIndex > lastApplied: increment lastApplied, apply log[lastApplied] to state machine"
//! (Ongaro & Ousterhout 2014, Figure 2, "Rules for Servers"); a state restored from a snapshot
//! already reflects every entry up to its last included index (§7), so applying any of those
//! again applies a command twice (a second increment, a second lock grant).
//!
//! Checked per state-machine lifetime, i.e. per incarnation of a node ([`super::Lifecycles`]),
//! whose base is what the state reflects: [`Event::StateRestored`] at open (`N`, or empty), reset
//! by [`Event::SnapshotInstalled`] `N`. Every [`Event::Apply`] must be the entry right after what
//! the state reflects: `N + 1` (index 0 after an empty state). Below that is a double apply;
//! above it, a gap.
//!
//! Gaps are judged because openraft 0.9.25 never leaves one in a running server: the engine
//! initialises `committed` to the state machine's `last_applied` at start-up
//! (`StorageHelper::get_initial_state`), each `Command::Commit` applies exactly
//! `already_committed + 1 ..= upto` from the log (`RaftCore::apply_to_state_machine`), and a
//! snapshot install moves both to the snapshot's last log id. (Its storage *contract* and
//! conformance suite do hand a state machine entries after a gap, so the node itself only asserts
//! "strictly forward".) Every applied entry is traced, blank ones included.
//!
//! An incarnation whose open was not traced (traces from before `state restored` existed, which
//! did not trace blank entries either, or a trace cut to a sample) takes its first apply as its
//! base and is judged for double applies only, until a snapshot install gives it a known base.

use std::collections::BTreeMap;

use super::{Event, Lifecycles, TraceEvent};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const APPLY_ONCE: &str = "apply_once";

/// What one lifetime's state reflects.
struct Reflects<'a> {
    /// The highest index (`None`: empty).
    index: Option<u64>,
    /// The line that put it there.
    line: &'a str,
    /// Whether every apply since a traced base was traced, so a gap is a real gap.
    gapless: bool,
}

/// One violation per apply that is not the next entry of its lifetime's state; the evidence is the
/// line that set the state (restore, install or previous apply) and the offending apply.
pub fn check_apply_once(events: &[TraceEvent]) -> Vec<InvariantViolation> {
    let life = Lifecycles::of(events);
    let mut state: BTreeMap<(&str, u32), Reflects> = BTreeMap::new();
    let mut out = Vec::new();
    for (e, incarnation) in events.iter().zip(&life.incarnation) {
        let key = (e.node.as_str(), *incarnation);
        let line = e.raw.as_str();
        match e.kind {
            Event::StateRestored { index } => {
                state.insert(key, Reflects { index, line, gapless: true });
            }
            Event::SnapshotInstalled { index } => {
                state.insert(key, Reflects { index: Some(index), line, gapless: true });
            }
            Event::Apply { index, .. } => {
                let Some(now) = state.get_mut(&key) else {
                    state.insert(key, Reflects { index: Some(index), line, gapless: false });
                    continue;
                };
                if let Some(detail) = misplaced(&e.node, index, now) {
                    out.push(InvariantViolation::new(APPLY_ONCE, detail, vec![now.line.to_string(), e.raw.clone()]));
                }
                if now.index.is_none_or(|r| r < index) {
                    now.index = Some(index);
                    now.line = line;
                }
            }
            _ => {}
        }
    }
    out
}

/// Why applying `index` on top of `now` is wrong, if it is.
fn misplaced(node: &str, index: u64, now: &Reflects) -> Option<String> {
    let expected = now.index.map_or(0, |r| r + 1);
    let shown = now.index.map_or("nothing".to_string(), |r| format!("index {r}"));
    if index < expected {
        Some(format!("{node} applied index {index} again: its state already reflected {shown}"))
    } else if index > expected && now.gapless {
        Some(format!("{node} applied index {index} after {shown}: entries {expected}..{} were skipped", index - 1))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::testing::*;
    use crate::raft::{trace_events, Record};

    fn check(records: &[Record]) -> Vec<InvariantViolation> {
        check_apply_once(&trace_events(records))
    }

    #[test]
    fn contiguous_applies_from_the_restored_state_hold() {
        let v = check(&[
            at(1, "n1", restored(None)),
            at(607, "n1", membership(0)),
            at(620, "n1", blank(1, 2)),
            at(622, "n1", set(2, 2, "k1")),
            crash(2_000, "n1"),
            restart(3_000, "n1"),
            at(3_001, "n1", restored(Some(1))),
            at(3_500, "n1", set(2, 2, "k1")),
            at(4_000, "n1", Event::SnapshotInstalled { index: 640 }),
            at(4_100, "n1", blank(641, 3)),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn applying_the_restored_index_again_violates_apply_once() {
        let v = check(&[
            at(622, "n1", set(64, 2, "k1")),
            crash(2_000, "n1"),
            restart(3_000, "n1"),
            at(3_001, "n1", restored(Some(64))),
            at(3_500, "n1", set(64, 2, "k1")),
            at(3_501, "n1", set(65, 2, "k2")),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, APPLY_ONCE);
        assert!(v[0].detail.contains("n1 applied index 64 again: its state already reflected index 64"), "{}", v[0]);
        assert_eq!(
            v[0].evidence,
            vec!["     3.001 n1 state restored at 64", "     3.500 n1 apply 64 t2 set k1 len=10 cas=None ok=true"]
        );
    }

    #[test]
    fn applying_an_index_twice_after_an_install_violates_apply_once() {
        let v = check(&[at(1_000, "n3", Event::SnapshotInstalled { index: 640 }), at(1_100, "n3", set(640, 3, "k1"))]);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn a_gap_after_the_restored_state_violates_apply_once() {
        let v = check(&[at(1, "n2", restored(Some(10))), at(500, "n2", set(12, 2, "k1"))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("n2 applied index 12 after index 10: entries 11..11 were skipped"), "{}", v[0]);
    }

    #[test]
    fn an_empty_state_starts_at_index_zero() {
        let v = check(&[at(1, "n2", restored(None)), at(500, "n2", blank(1, 1))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("after nothing: entries 0..0"), "{}", v[0]);
    }

    #[test]
    fn an_untraced_open_is_judged_from_its_first_apply() {
        let v = check(&[at(500, "n2", set(7, 2, "k1")), at(501, "n2", set(9, 2, "k1")), at(502, "n2", set(9, 2, "k1"))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("applied index 9 again"), "{}", v[0]);
    }
}
