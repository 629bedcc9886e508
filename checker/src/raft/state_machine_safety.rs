//! State Machine Safety: "if a server has applied a log entry at a given index to its state
//! machine, no other server will ever apply a different log entry for the same index"
//! (Ongaro & Ousterhout 2014, Figure 3; proved in §5.4.3 from Leader Completeness and Log
//! Matching).
//!
//! Checked over the [`Event::Apply`] events of every node and every incarnation (a restarted node
//! re-applies its log, which must reproduce the same entries). An entry is identified by its term
//! and what it applied ([`AppliedEntry`]: the command summary, or the membership); a command's result
//! (`ok`) is compared too, because the state machine is deterministic: the same entry applied to
//! the same prefix must give the same result.

use std::collections::BTreeMap;

use super::{AppliedEntry, Event, TraceEvent};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const STATE_MACHINE_SAFETY: &str = "state_machine_safety";

/// One violation per log index applied with more than one distinct (term, entry); the evidence is
/// the first apply line of each variant.
pub fn check_state_machine_safety(events: &[TraceEvent]) -> Vec<InvariantViolation> {
    // index -> distinct (term, entry) variants, each with its first line.
    let mut applied: BTreeMap<u64, Vec<(u64, &AppliedEntry, &str)>> = BTreeMap::new();
    for e in events {
        if let Event::Apply { index, term, entry } = &e.kind {
            let variants = applied.entry(*index).or_default();
            if !variants.iter().any(|(t, a, _)| t == term && *a == entry) {
                variants.push((*term, entry, e.raw.as_str()));
            }
        }
    }
    applied
        .into_iter()
        .filter(|(_, variants)| variants.len() > 1)
        .map(|(index, variants)| {
            let what: Vec<String> = variants.iter().map(|(t, c, _)| format!("t{t} {c}")).collect();
            InvariantViolation::new(
                STATE_MACHINE_SAFETY,
                format!("index {index} applied as {} different entries: {}", variants.len(), what.join(" / ")),
                variants.iter().map(|(_, _, raw)| raw.to_string()).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::testing::*;
    use crate::raft::{trace_events, Record};

    fn check(records: &[Record]) -> Vec<InvariantViolation> {
        check_state_machine_safety(&trace_events(records))
    }

    #[test]
    fn same_entry_applied_everywhere_holds() {
        let v = check(&[
            at(622, "n2", set(2, 2, "k1")),
            at(623, "n1", set(2, 2, "k1")),
            at(630, "n1", delete(4, 2, "k1")),
            crash(2_000, "n1"),
            restart(3_000, "n1"),
            at(3_500, "n1", set(2, 2, "k1")),
            at(3_600, "n1", membership(5)),
            at(3_700, "n2", membership(5)),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn same_index_different_command_violates_state_machine_safety() {
        let v = check(&[at(622, "n2", set(2, 2, "k1")), at(623, "n1", delete(2, 2, "k1"))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, STATE_MACHINE_SAFETY);
        assert!(v[0].detail.contains("index 2"), "{}", v[0]);
        assert!(v[0].detail.contains("t2 set k1 len=10 cas=None ok=true / t2 delete k1"), "{}", v[0]);
        assert_eq!(v[0].evidence.len(), 2);
    }

    #[test]
    fn same_index_different_term_violates_state_machine_safety() {
        let v = check(&[at(622, "n2", set(2, 2, "k1")), at(623, "n1", set(2, 3, "k1"))]);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn same_entry_with_different_result_violates_state_machine_safety() {
        let v = check(&[
            at(622, "n2", apply(5, 2, "set k1 len=10 cas=Some(3)", true)),
            at(623, "n1", apply(5, 2, "set k1 len=10 cas=Some(3)", false)),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn command_and_membership_at_one_index_violate_state_machine_safety() {
        let v = check(&[at(622, "n2", set(5, 0, "k1")), at(623, "n1", membership(5))]);
        assert_eq!(v.len(), 1, "{v:?}");
    }
}
