//! Builders for typed trace samples in the invariants' unit tests: one call per trace line, so a
//! sample reads like the trace it stands for (`at(622, "n2", set(2, 2, "k1"))` is
//! `0.622 n2 apply 2 t2 set k1 len=10 cas=None ok=true`).

use super::{AppliedEntry, Event, Nemesis, RaftRole, Record, Vote, NEMESIS};

/// The voters of the sample cluster's initial membership.
pub(crate) const VOTERS: [u64; 3] = [1, 2, 3];

/// `who` reported `event` at `time_ms`.
pub(crate) fn at(time_ms: u64, who: &str, event: Event) -> Record {
    Record { time_ms, who: who.to_string(), event }
}

/// The nemesis did `fault` at `time_ms`.
pub(crate) fn nemesis(time_ms: u64, fault: Nemesis) -> Record {
    at(time_ms, NEMESIS, Event::Nemesis(fault))
}

/// `crash NODE`.
pub(crate) fn crash(time_ms: u64, node: &str) -> Record {
    nemesis(time_ms, Nemesis::Crash { node: node.to_string(), torn: false })
}

/// `restart NODE`.
pub(crate) fn restart(time_ms: u64, node: &str) -> Record {
    nemesis(time_ms, Nemesis::Restart { node: node.to_string() })
}

/// `final heal all; restart [NODES]; liveness phase begins`.
pub(crate) fn final_heal(time_ms: u64, restarted: &[&str]) -> Record {
    nemesis(time_ms, Nemesis::FinalHeal { restarted: restarted.iter().map(|n| n.to_string()).collect() })
}

/// `raft term=T state=ROLE leader=L`.
pub(crate) fn raft(term: u64, role: RaftRole, leader: Option<u64>) -> Event {
    Event::RaftState { term, role, leader }
}

/// `apply I tT SUMMARY ok=OK`.
pub(crate) fn apply(index: u64, term: u64, summary: &str, ok: bool) -> Event {
    Event::Apply { index, term, entry: AppliedEntry::Command { summary: summary.to_string(), ok } }
}

/// `apply I tT set KEY len=10 cas=None ok=true`.
pub(crate) fn set(index: u64, term: u64, key: &str) -> Event {
    apply(index, term, &format!("set {key} len=10 cas=None"), true)
}

/// `apply I tT delete KEY recurse=false cas=None ok=true`.
pub(crate) fn delete(index: u64, term: u64, key: &str) -> Event {
    apply(index, term, &format!("delete {key} recurse=false cas=None"), true)
}

/// `apply I t0 membership [1, 2, 3]`.
pub(crate) fn membership(index: u64) -> Event {
    Event::Apply { index, term: 0, entry: AppliedEntry::Membership { voters: VOTERS.to_vec() } }
}

/// `apply I t1 noop ok=true`.
pub(crate) fn noop(index: u64) -> Event {
    apply(index, 1, "noop", true)
}


/// An uncommitted vote (`tT for N`): granted to a candidate, or a candidate's own.
pub(crate) fn vote(term: u64, voted_for: Option<u64>) -> Vote {
    Vote { term, voted_for, committed: false }
}

/// A committed vote (`tT for N committed`): for the elected leader of the term.
pub(crate) fn committed(term: u64, leader: u64) -> Vote {
    Vote { term, voted_for: Some(leader), committed: true }
}

/// `vote saved V`.
pub(crate) fn vote_saved(v: Vote) -> Event {
    Event::VoteSaved(v)
}

/// `apply I tT blank`.
pub(crate) fn blank(index: u64, term: u64) -> Event {
    Event::Apply { index, term, entry: AppliedEntry::Blank }
}

/// `state restored at N` (`state restored empty` for `None`).
pub(crate) fn restored(index: Option<u64>) -> Event {
    Event::StateRestored { index }
}
