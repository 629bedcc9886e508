//! Election Safety: "at most one leader can be elected in a given term" (Ongaro & Ousterhout 2014,
//! Figure 3; argued in §5.2: each server votes for at most one candidate per term, and a candidate
//! needs votes from a majority, so two candidates cannot both win the same term).
//!
//! Checked over [`Event::RaftState`] events with role `Leader`: for every term, at most one
//! distinct node ever reports itself leader. The same node reporting `Leader` for one term twice
//! (e.g. openraft restarting a crashed leader as leader of its old term) is not a second leader.

use std::collections::BTreeMap;

use super::{Event, RaftRole, TraceEvent};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const ELECTION_SAFETY: &str = "election_safety";

/// One violation per term in which more than one distinct node became leader; the evidence is the
/// first `Leader` event of each such node.
pub fn check_election_safety(events: &[TraceEvent]) -> Vec<InvariantViolation> {
    // term -> leaders in order of first appearance, with their first Leader line.
    let mut leaders: BTreeMap<u64, Vec<(&str, &str)>> = BTreeMap::new();
    for e in events {
        if let Event::RaftState { term, role: RaftRole::Leader, .. } = e.kind {
            let seen = leaders.entry(term).or_default();
            if !seen.iter().any(|(node, _)| *node == e.node) {
                seen.push((e.node.as_str(), e.raw.as_str()));
            }
        }
    }
    leaders
        .into_iter()
        .filter(|(_, seen)| seen.len() > 1)
        .map(|(term, seen)| {
            let names: Vec<&str> = seen.iter().map(|(n, _)| *n).collect();
            InvariantViolation::new(
                ELECTION_SAFETY,
                format!("{} leaders in term {term}: {}", seen.len(), names.join(", ")),
                seen.iter().map(|(_, raw)| raw.to_string()).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::testing::*;
    use crate::raft::{trace_events, Record};
    use RaftRole::{Candidate, Follower, Leader};

    fn check(records: &[Record]) -> Vec<InvariantViolation> {
        check_election_safety(&trace_events(records))
    }

    #[test]
    fn one_leader_per_term_holds() {
        let v = check(&[
            at(600, "n2", raft(2, Candidate, None)),
            at(603, "n2", raft(2, Leader, Some(22))),
            at(604, "n1", raft(2, Follower, Some(22))),
            at(5_000, "n1", raft(3, Leader, Some(11))),
            at(5_001, "n2", raft(3, Follower, Some(11))),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn same_node_leading_one_term_twice_is_not_two_leaders() {
        let v = check(&[
            at(603, "n2", raft(2, Leader, Some(22))),
            crash(2_000, "n2"),
            restart(3_000, "n2"),
            at(3_100, "n2", raft(2, Leader, Some(22))),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn two_leaders_in_one_term_violates_election_safety() {
        let v = check(&[
            at(603, "n2", raft(2, Leader, Some(22))),
            at(900, "n3", raft(2, Leader, Some(33))),
            at(950, "n1", raft(3, Leader, Some(11))),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, ELECTION_SAFETY);
        assert!(v[0].detail.contains("term 2") && v[0].detail.contains("n2, n3"), "{}", v[0]);
        assert_eq!(v[0].evidence, vec![
            "     0.603 n2 raft term=2 state=Leader leader=22".to_string(),
            "     0.900 n3 raft term=2 state=Leader leader=33".to_string(),
        ]);
    }
}
