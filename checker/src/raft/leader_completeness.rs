//! Committed entries are never lost: Leader Completeness (Ongaro & Ousterhout 2014, Figure 3;
//! §5.4: "if a log entry is committed in a given term, then that entry will be present in the logs
//! of the leaders for all higher-numbered terms"), observed from the outside. An entry some node
//! applied was committed; once faults stop, every later leader holds it and replicates it, so every
//! node still running at the end of the trace must have it in its state machine.
//!
//! Checked: every index applied by any node before the `nemesis final heal` line must be in the
//! final state of every running node, i.e. of its last incarnation. That state covers index `i` if
//! the incarnation applied `i`, or installed a snapshot at `N >= i`, or `i` lies below the first
//! index it applied (a restarted node silently loads its own snapshot and resumes after it; blank
//! entries are not traced either, so this is the conservative reading).
//!
//! Not judged: a trace without a final heal (nothing promises convergence), nodes that are not
//! running at the end (crashed after their last restart, or last role `Shutdown`), and nodes whose
//! last incarnation applied nothing at all, e.g. one still failing to start (a liveness matter,
//! listed by [`survivors_that_applied_nothing`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{EventKind, Lifecycles, RaftRole, TraceEvent, NEMESIS};
use crate::invariant::InvariantViolation;

/// Name used in [`InvariantViolation::invariant`].
pub const LEADER_COMPLETENESS: &str = "leader_completeness";

/// How many missing indexes a violation lists.
const SHOWN: usize = 10;

/// What a running node's last incarnation did to its state machine.
struct FinalState<'a> {
    /// Highest index assumed present before its first traced state change.
    base: Option<u64>,
    applied: BTreeSet<u64>,
    /// Highest snapshot installed.
    installed: Option<u64>,
    last_line: Option<&'a str>,
}

impl FinalState<'_> {
    fn covers(&self, index: u64) -> bool {
        self.base.is_some_and(|b| index <= b) || self.installed.is_some_and(|n| index <= n) || self.applied.contains(&index)
    }
}

/// One violation per running node missing entries applied (anywhere) before the final heal; the
/// evidence is the first apply line of some missing entries and the node's last state change.
pub fn check_leader_completeness(events: &[TraceEvent]) -> Vec<InvariantViolation> {
    let Some(heal) = events.iter().position(|e| matches!(e.kind, EventKind::FinalHeal { .. })) else {
        return Vec::new();
    };
    let mut committed: BTreeMap<u64, &str> = BTreeMap::new();
    for e in &events[..heal] {
        if let EventKind::Apply { index, .. } = e.kind {
            committed.entry(index).or_insert(e.raw.as_str());
        }
    }
    let mut out = Vec::new();
    for (node, state) in final_states(events) {
        let Some(state) = state else { continue };
        let missing: Vec<u64> = committed.keys().copied().filter(|i| !state.covers(*i)).collect();
        if missing.is_empty() {
            continue;
        }
        let shown: Vec<String> = missing.iter().take(SHOWN).map(u64::to_string).collect();
        let more = if missing.len() > SHOWN { format!(" and {} more", missing.len() - SHOWN) } else { String::new() };
        let mut evidence: Vec<String> =
            missing.iter().take(3).filter_map(|i| committed.get(i)).map(|l| l.to_string()).collect();
        evidence.extend(state.last_line.map(|l| format!("{l}   <- last state change of {node}")));
        out.push(InvariantViolation::new(
            LEADER_COMPLETENESS,
            format!(
                "{node}, running at the end, lacks {} entries applied before the final heal: indexes {}{more}",
                missing.len(),
                shown.join(", ")
            ),
            evidence,
        ));
    }
    out
}

/// Nodes running at the end whose last incarnation applied nothing (no apply, no snapshot
/// install): [`check_leader_completeness`] skips them; a liveness checker may not.
pub fn survivors_that_applied_nothing(events: &[TraceEvent]) -> Vec<String> {
    final_states(events).into_iter().filter(|(_, s)| s.is_none()).map(|(n, _)| n).collect()
}

/// For each node running at the end: the state of its last incarnation (`None` if it applied
/// nothing).
fn final_states(events: &[TraceEvent]) -> BTreeMap<String, Option<FinalState<'_>>> {
    let life = Lifecycles::of(events);
    let mut shut_down: BTreeSet<&str> = BTreeSet::new();
    let mut states: BTreeMap<String, Option<FinalState<'_>>> = BTreeMap::new();
    for (node, _) in life.final_incarnation.iter().filter(|(n, _)| !life.down_at_end.contains(*n)) {
        states.insert(node.clone(), None);
    }
    for (e, incarnation) in events.iter().zip(&life.incarnation) {
        if e.node == NEMESIS || life.final_incarnation.get(&e.node) != Some(incarnation) {
            continue;
        }
        let Some(slot) = states.get_mut(&e.node) else { continue };
        match e.kind {
            EventKind::RaftState { role, .. } if role == RaftRole::Shutdown => {
                shut_down.insert(e.node.as_str());
            }
            EventKind::RaftState { .. } => {
                shut_down.remove(e.node.as_str());
            }
            EventKind::Apply { index, .. } => {
                let s = slot.get_or_insert_with(|| FinalState {
                    base: index.checked_sub(1),
                    applied: BTreeSet::new(),
                    installed: None,
                    last_line: None,
                });
                s.applied.insert(index);
                s.last_line = Some(e.raw.as_str());
            }
            EventKind::SnapshotInstalled { index } => {
                let s = slot.get_or_insert_with(|| FinalState {
                    base: Some(index),
                    applied: BTreeSet::new(),
                    installed: None,
                    last_line: None,
                });
                s.installed = s.installed.max(Some(index));
                s.last_line = Some(e.raw.as_str());
            }
            _ => {}
        }
    }
    states.retain(|node, _| !shut_down.contains(node.as_str()));
    states
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{lines, parse_trace};

    fn check(text: &str) -> Vec<InvariantViolation> {
        check_leader_completeness(&parse_trace(&lines(text)))
    }

    const BEFORE_HEAL: &str = "
     0.607 n1 apply 0 t0 membership [1, 2, 3]
     0.607 n2 apply 0 t0 membership [1, 2, 3]
     0.622 n1 apply 2 t2 set k1 len=10 cas=None ok=true
     0.623 n2 apply 2 t2 set k1 len=10 cas=None ok=true
     0.639 n1 apply 4 t2 delete k1 recurse=false cas=None ok=true
";

    #[test]
    fn entries_applied_everywhere_after_heal_hold() {
        let v = check(&format!(
            "{BEFORE_HEAL}
    29.000 nemesis final heal all; restart []; liveness phase begins
    29.100 n2 apply 4 t2 delete k1 recurse=false cas=None ok=true
"
        ));
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn entry_applied_before_heal_missing_on_survivor_is_lost() {
        let v = check(&format!(
            "{BEFORE_HEAL}
    29.000 nemesis final heal all; restart []; liveness phase begins
    29.100 n2 apply 5 t3 set k2 len=10 cas=None ok=true
"
        ));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, LEADER_COMPLETENESS);
        assert!(v[0].detail.starts_with("n2,") && v[0].detail.contains("indexes 4"), "{}", v[0]);
    }

    #[test]
    fn restarted_node_resuming_from_its_snapshot_or_an_installed_one_holds() {
        let v = check(&format!(
            r#"{BEFORE_HEAL}
     1.000 nemesis crash n1
     1.100 nemesis crash n2
    29.000 nemesis final heal all; restart ["n1", "n2"]; liveness phase begins
    29.100 n1 apply 3 t2 set k2 len=10 cas=None ok=true
    29.200 n1 apply 4 t2 delete k1 recurse=false cas=None ok=true
    29.300 n2 snapshot installed at 4
"#
        ));
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn entries_applied_only_by_an_earlier_incarnation_do_not_count() {
        let v = check(&format!(
            r#"{BEFORE_HEAL}
     1.000 nemesis crash n1
     2.000 nemesis restart n1
     2.100 n1 apply 0 t0 membership [1, 2, 3]
    29.000 nemesis final heal all; restart []; liveness phase begins
    29.100 n2 apply 4 t2 delete k1 recurse=false cas=None ok=true
"#
        ));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.starts_with("n1,") && v[0].detail.contains("indexes 2, 4"), "{}", v[0]);
    }

    #[test]
    fn crashed_idle_and_shut_down_nodes_are_not_judged() {
        let text = format!(
            r#"{BEFORE_HEAL}
     0.700 n3 raft term=2 state=Follower leader=1
     1.000 nemesis crash n1
    29.000 nemesis final heal all; restart ["n1"]; liveness phase begins
    29.100 n2 apply 4 t2 delete k1 recurse=false cas=None ok=true
    29.200 n2 raft term=3 state=Shutdown leader=none
    29.300 nemesis crash n3
    29.400 nemesis restart n3
    29.500 n3 start failed: storage: raft log corrupted; refusing to start
    29.600 nemesis crash n1
    29.700 n4 raft term=2 state=Follower leader=1
"#
        );
        let events = parse_trace(&lines(&text));
        assert!(check_leader_completeness(&events).is_empty());
        assert_eq!(survivors_that_applied_nothing(&events), vec!["n3".to_string(), "n4".to_string()]);
    }

    #[test]
    fn without_a_final_heal_nothing_is_judged() {
        assert!(check(BEFORE_HEAL).is_empty());
    }
}
