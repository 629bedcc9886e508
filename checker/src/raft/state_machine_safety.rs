//! State Machine Safety: "if a server has applied a log entry at a given index to its state
//! machine, no other server will ever apply a different log entry for the same index"
//! (Ongaro & Ousterhout 2014, Figure 3; proved in §5.4.3 from Leader Completeness and Log
//! Matching).
//!
//! Checked over `apply I tT COMMAND… ok=R` lines of every node and every incarnation (a restarted
//! node re-applies its log, which must reproduce the same entries). An entry is identified by its
//! term and command; the result (`ok=`) is compared too, because the state machine is
//! deterministic: the same entry applied to the same prefix must give the same result.

use std::collections::BTreeMap;

use super::{EventKind, TraceEvent};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const STATE_MACHINE_SAFETY: &str = "state_machine_safety";

/// One violation per log index applied with more than one distinct (term, command+result); the
/// evidence is the first apply line of each variant.
pub fn check_state_machine_safety(events: &[TraceEvent]) -> Vec<InvariantViolation> {
    // index -> distinct (term, command) variants, each with its first line.
    let mut applied: BTreeMap<u64, Vec<(u64, &str, &str)>> = BTreeMap::new();
    for e in events {
        if let EventKind::Apply { index, term, command } = &e.kind {
            let variants = applied.entry(*index).or_default();
            if !variants.iter().any(|(t, c, _)| t == term && c == command) {
                variants.push((*term, command.as_str(), e.raw.as_str()));
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
    use crate::raft::{lines, parse_trace};

    fn check(text: &str) -> Vec<InvariantViolation> {
        check_state_machine_safety(&parse_trace(&lines(text)))
    }

    #[test]
    fn same_entry_applied_everywhere_holds() {
        let v = check(
            "
     0.622 n2 apply 2 t2 set k1 len=10 cas=None ok=true
     0.623 n1 apply 2 t2 set k1 len=10 cas=None ok=true
     0.630 n1 apply 4 t2 delete k1 recurse=false cas=None ok=true
     2.000 nemesis crash n1
     3.000 nemesis restart n1
     3.500 n1 apply 2 t2 set k1 len=10 cas=None ok=true
",
        );
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn same_index_different_command_violates_state_machine_safety() {
        let v = check(
            "
     0.622 n2 apply 2 t2 set k1 len=10 cas=None ok=true
     0.623 n1 apply 2 t2 delete k1 recurse=false cas=None ok=true
",
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, STATE_MACHINE_SAFETY);
        assert!(v[0].detail.contains("index 2"), "{}", v[0]);
        assert_eq!(v[0].evidence.len(), 2);
    }

    #[test]
    fn same_index_different_term_violates_state_machine_safety() {
        let v = check(
            "
     0.622 n2 apply 2 t2 set k1 len=10 cas=None ok=true
     0.623 n1 apply 2 t3 set k1 len=10 cas=None ok=true
",
        );
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn same_entry_with_different_result_violates_state_machine_safety() {
        let v = check(
            "
     0.622 n2 apply 5 t2 set k1 len=10 cas=Some(3) ok=true
     0.623 n1 apply 5 t2 set k1 len=10 cas=Some(3) ok=false
",
        );
        assert_eq!(v.len(), 1, "{v:?}");
    }
}
