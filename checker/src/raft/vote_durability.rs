//! Vote durability: currentTerm and votedFor are persistent state, "updated on stable storage
//! before responding to RPCs" (Ongaro & Ousterhout 2014, Figure 2), because "each server will vote
//! for at most one candidate in a given term" (§5.2) only holds across a crash if the vote
//! survives it. A server that forgets its vote can grant a second one in the same term and elect
//! two leaders.
//!
//! Checked per server over its whole life, all incarnations, on [`Event::VoteSaved`] (the log
//! store told openraft a vote is durable) and [`Event::VoteRestored`] (the vote a new incarnation
//! opened with):
//! - every saved vote is at least the previous one in openraft's vote order (below), so terms
//!   never go backwards and a voter grants at most one candidate per term;
//! - a restored vote is at least the last vote saved before the crash (restoring nothing after a
//!   saved vote is a forgotten vote).
//!
//! The order is openraft 0.9's `Vote` partial order with `single-term-leader` (our build):
//! higher term wins; in one term a vote for someone beats no vote, the same leader committed beats
//! it uncommitted, and a *committed* vote for `B` beats an uncommitted vote for `A` (a voter that
//! granted `A` later learns that `B` won the term: it follows `B`, it does not grant `B` a vote).
//! Two uncommitted votes for different candidates in one term are incomparable: a double vote.
//!
//! A [`Event::StorageAbandoned`] moves the server's storage aside and starts a new Raft identity
//! with no vote: the history restarts there.

use std::collections::BTreeMap;

use super::{Event, TraceEvent, Vote};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const VOTE_DURABILITY: &str = "vote_durability";

/// True if `new` is at least `old` in openraft's vote order (module docs).
pub fn vote_at_least(new: &Vote, old: &Vote) -> bool {
    if new.term != old.term {
        return new.term > old.term;
    }
    match (new.voted_for, old.voted_for) {
        (_, None) => new.committed || !old.committed || new.voted_for.is_some(),
        (None, Some(_)) => false,
        (Some(a), Some(b)) if a == b => new.committed || !old.committed,
        (Some(_), Some(_)) => new.committed && !old.committed,
    }
}

/// One violation per saved or restored vote below the server's last saved one; the evidence is
/// the last saved vote's line and the offending one.
pub fn check_vote_durability(events: &[TraceEvent]) -> Vec<InvariantViolation> {
    // server -> (its vote now, the line that saved or restored it).
    let mut last: BTreeMap<&str, (Vote, &str)> = BTreeMap::new();
    let mut out = Vec::new();
    for e in events {
        let node = e.node.as_str();
        match &e.kind {
            Event::StorageAbandoned { .. } => {
                last.remove(node);
            }
            Event::VoteSaved(vote) => {
                if let Some((prev, prev_line)) = last.get(node) {
                    if !vote_at_least(vote, prev) {
                        let what = if vote.term == prev.term && !vote.committed && !prev.committed {
                            format!("{node} voted twice in term {}: for {} after {prev}", vote.term, show_for(vote))
                        } else {
                            format!("{node} saved vote {vote} after {prev}: its vote went backwards")
                        };
                        out.push(InvariantViolation::new(VOTE_DURABILITY, what, vec![prev_line.to_string(), e.raw.clone()]));
                    }
                }
                last.insert(node, (*vote, e.raw.as_str()));
            }
            Event::VoteRestored(restored) => {
                if let Some((prev, prev_line)) = last.get(node) {
                    let kept = restored.as_ref().is_some_and(|r| vote_at_least(r, prev));
                    if !kept {
                        let got = restored.map_or("no vote".to_string(), |r| format!("vote {r}"));
                        out.push(InvariantViolation::new(
                            VOTE_DURABILITY,
                            format!("{node} restarted with {got}, though it had saved vote {prev}: a durable vote was lost"),
                            vec![prev_line.to_string(), e.raw.clone()],
                        ));
                    }
                }
                // Judge later saves against what the server now holds, so one loss is one violation.
                match restored {
                    Some(r) => last.insert(node, (*r, e.raw.as_str())),
                    None => last.remove(node),
                };
            }
            _ => {}
        }
    }
    out
}

fn show_for(vote: &Vote) -> String {
    vote.voted_for.map_or("none".to_string(), |id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::testing::*;
    use crate::raft::{trace_events, Record};

    fn check(records: &[Record]) -> Vec<InvariantViolation> {
        check_vote_durability(&trace_events(records))
    }

    #[test]
    fn votes_that_move_forward_and_survive_restarts_hold() {
        let v = check(&[
            at(1, "n1", Event::VoteRestored(None)),
            at(500, "n1", vote_saved(vote(1, Some(1)))),
            at(600, "n1", vote_saved(committed(1, 1))),
            at(900, "n1", vote_saved(vote(2, Some(2)))),
            // Voted for 2 in term 2, then learnt that 3 won term 2.
            at(950, "n1", vote_saved(committed(2, 3))),
            crash(2_000, "n1"),
            restart(3_000, "n1"),
            at(3_001, "n1", Event::VoteRestored(Some(committed(2, 3)))),
            at(3_500, "n1", vote_saved(vote(3, Some(1)))),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn restart_that_forgets_the_vote_violates_vote_durability() {
        let v = check(&[
            at(500, "n1", vote_saved(vote(4, Some(2)))),
            crash(2_000, "n1"),
            restart(3_000, "n1"),
            at(3_001, "n1", Event::VoteRestored(None)),
            at(3_500, "n1", vote_saved(vote(1, Some(1)))),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, VOTE_DURABILITY);
        assert!(v[0].detail.contains("n1 restarted with no vote, though it had saved vote t4 for 2"), "{}", v[0]);
        assert_eq!(v[0].evidence, vec!["     0.500 n1 vote saved t4 for 2", "     3.001 n1 vote restored none"]);
    }

    #[test]
    fn restoring_an_older_vote_violates_vote_durability() {
        let v = check(&[
            at(500, "n1", vote_saved(vote(3, Some(2)))),
            at(600, "n1", vote_saved(vote(4, Some(1)))),
            crash(2_000, "n1"),
            restart(3_000, "n1"),
            at(3_001, "n1", Event::VoteRestored(Some(vote(3, Some(2))))),
        ]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("restarted with vote t3 for 2, though it had saved vote t4 for 1"), "{}", v[0]);
    }

    #[test]
    fn saving_a_lower_term_violates_vote_durability() {
        let v = check(&[at(500, "n2", vote_saved(vote(5, Some(2)))), at(600, "n2", vote_saved(vote(4, Some(3))))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("n2 saved vote t4 for 3 after t5 for 2: its vote went backwards"), "{}", v[0]);
    }

    #[test]
    fn granting_two_candidates_one_term_violates_vote_durability() {
        let v = check(&[at(500, "n2", vote_saved(vote(5, Some(2)))), at(600, "n2", vote_saved(vote(5, Some(3))))]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("n2 voted twice in term 5: for 3 after t5 for 2"), "{}", v[0]);
    }

    #[test]
    fn uncommitting_a_leader_violates_vote_durability() {
        let v = check(&[at(500, "n2", vote_saved(committed(5, 2))), at(600, "n2", vote_saved(vote(5, Some(3))))]);
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn abandoned_storage_starts_a_new_vote_history() {
        let v = check(&[
            at(500, "n3", vote_saved(vote(7, Some(3)))),
            crash(2_000, "n3"),
            restart(3_000, "n3"),
            at(3_001, "n3", Event::StorageAbandoned { why: "bad crc".into(), generation: 1 }),
            at(3_002, "n3", Event::VoteRestored(None)),
            at(3_500, "n3", vote_saved(vote(1, Some(1)))),
        ]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn servers_are_judged_apart() {
        let v = check(&[at(500, "n1", vote_saved(vote(5, Some(1)))), at(600, "n2", vote_saved(vote(2, Some(2))))]);
        assert!(v.is_empty(), "{v:?}");
    }
}
