//! Committed entries are never lost: Leader Completeness (Ongaro & Ousterhout 2014, Figure 3;
//! §5.4: "if a log entry is committed in a given term, then that entry will be present in the logs
//! of the leaders for all higher-numbered terms"), observed from the outside. An entry some node
//! applied was committed; once faults stop, every later leader holds it and replicates it, so every
//! node still running at the end of the trace must have it in its state machine.
//!
//! Checked: every index applied by any node before the nemesis's final heal must be in the
//! final state of every running node, i.e. of its last incarnation. That state covers index `i` if
//! the incarnation applied `i`, or installed a snapshot at `N >= i`, or `i` lies below the first
//! index it applied (a restarted node loads its own snapshot, `state restored at N`, and resumes
//! after it; traces from before blank entries were traced skip them too, so this is the
//! conservative reading).
//!
//! Not judged: a trace without a final heal (nothing promises convergence), nodes that are not
//! running at the end (crashed after their last restart, or last role `Shutdown`), and nodes whose
//! last incarnation applied nothing at all, e.g. one still failing to start (a liveness matter,
//! listed by [`survivors_that_applied_nothing`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{Event, Lifecycles, Nemesis, RaftRole, TraceEvent};
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
    let Some(heal) = events.iter().position(|e| matches!(e.kind, Event::Nemesis(Nemesis::FinalHeal { .. }))) else {
        return Vec::new();
    };
    let mut committed: BTreeMap<u64, &str> = BTreeMap::new();
    for e in &events[..heal] {
        if let Event::Apply { index, .. } = e.kind {
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
        if !e.kind.from_agent() || life.final_incarnation.get(&e.node) != Some(incarnation) {
            continue;
        }
        let Some(slot) = states.get_mut(&e.node) else { continue };
        match e.kind {
            Event::RaftState { role: RaftRole::Shutdown, .. } => {
                shut_down.insert(e.node.as_str());
            }
            Event::RaftState { .. } => {
                shut_down.remove(e.node.as_str());
            }
            Event::Apply { index, .. } => {
                let s = slot.get_or_insert_with(|| FinalState {
                    base: index.checked_sub(1),
                    applied: BTreeSet::new(),
                    installed: None,
                    last_line: None,
                });
                s.applied.insert(index);
                s.last_line = Some(e.raw.as_str());
            }
            Event::SnapshotInstalled { index } => {
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
    use crate::raft::testing::*;
    use crate::raft::{trace_events, Record};

    fn check(records: &[Record]) -> Vec<InvariantViolation> {
        check_leader_completeness(&trace_events(records))
    }

    /// Applies before the final heal: n1 reached index 4, n2 index 2.
    fn before_heal() -> Vec<Record> {
        vec![
            at(607, "n1", membership(0)),
            at(607, "n2", membership(0)),
            at(622, "n1", set(2, 2, "k1")),
            at(623, "n2", set(2, 2, "k1")),
            at(639, "n1", delete(4, 2, "k1")),
        ]
    }

    /// [`before_heal`] followed by `rest`.
    fn trace(rest: Vec<Record>) -> Vec<Record> {
        let mut t = before_heal();
        t.extend(rest);
        t
    }

    #[test]
    fn entries_applied_everywhere_after_heal_hold() {
        let v = check(&trace(vec![final_heal(29_000, &[]), at(29_100, "n2", delete(4, 2, "k1"))]));
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn entry_applied_before_heal_missing_on_survivor_is_lost() {
        let v = check(&trace(vec![final_heal(29_000, &[]), at(29_100, "n2", set(5, 3, "k2"))]));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, LEADER_COMPLETENESS);
        assert!(v[0].detail.starts_with("n2,") && v[0].detail.contains("indexes 4"), "{}", v[0]);
    }

    #[test]
    fn restarted_node_resuming_from_its_snapshot_or_an_installed_one_holds() {
        let v = check(&trace(vec![
            crash(1_000, "n1"),
            crash(1_100, "n2"),
            final_heal(29_000, &["n1", "n2"]),
            at(29_100, "n1", set(3, 2, "k2")),
            at(29_200, "n1", delete(4, 2, "k1")),
            at(29_300, "n2", Event::SnapshotInstalled { index: 4 }),
        ]));
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn entries_applied_only_by_an_earlier_incarnation_do_not_count() {
        let v = check(&trace(vec![
            crash(1_000, "n1"),
            restart(2_000, "n1"),
            at(2_100, "n1", membership(0)),
            final_heal(29_000, &[]),
            at(29_100, "n2", delete(4, 2, "k1")),
        ]));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.starts_with("n1,") && v[0].detail.contains("indexes 2, 4"), "{}", v[0]);
    }

    #[test]
    fn crashed_idle_and_shut_down_nodes_are_not_judged() {
        let records = trace(vec![
            at(700, "n3", raft(2, RaftRole::Follower, Some(1))),
            crash(1_000, "n1"),
            final_heal(29_000, &["n1"]),
            at(29_100, "n2", delete(4, 2, "k1")),
            at(29_200, "n2", raft(3, RaftRole::Shutdown, None)),
            crash(29_300, "n3"),
            restart(29_400, "n3"),
            at(29_500, "n3", Event::StartFailed { reason: "storage: raft log corrupted; refusing to start".into() }),
            crash(29_600, "n1"),
            at(29_700, "n4", raft(2, RaftRole::Follower, Some(1))),
            at(29_800, "operator", Event::Operator("PUT /v1/operator/raft/peer?node=n4: done".into())),
        ]);
        let events = trace_events(&records);
        assert!(check_leader_completeness(&events).is_empty());
        assert_eq!(survivors_that_applied_nothing(&events), vec!["n3".to_string(), "n4".to_string()]);
    }

    #[test]
    fn without_a_final_heal_nothing_is_judged() {
        assert!(check(&before_heal()).is_empty());
    }
}
