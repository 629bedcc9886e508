//! Autopilot's dead-server cleanup, judged on the simulator's trace: the Raft configuration never
//! shrinks below a quorum of the datacenter's servers, and a server that died is out of the
//! configuration within a bound.
//!
//! raft-autopilot (`reconcile.go`, `adjudicateRemoval`) removes failed voters only while that
//! leaves a majority of the voters in place, and Consul's docs promise that autopilot "will not
//! remove dead servers if doing so would cause the cluster to lose quorum": in a cluster of `n`
//! servers the voters never number fewer than `n / 2 + 1` because of it (an operator's explicit
//! `remove-peer` could go further; the scenario judged here makes none). The configurations are
//! the membership entries the servers applied ([`Event::Apply`] of [`AppliedEntry::Membership`]),
//! so a change counts once it committed.

use std::collections::BTreeMap;

use concord_trace::{AppliedEntry, Event, Nemesis, Record};

use crate::invariant::InvariantViolation;

/// How long after a server's crash it must be out of the Raft configuration, in ns: gossip
/// declares it failed in about 5 s, an autopilot pass runs every 2 s, an election may come first.
pub const DEAD_SERVER_BOUND_NS: u64 = 15_000_000_000;

/// Every applied membership entry, once per log index: (time in ns, index, voters, rendered line).
fn configurations(trace: &[Record]) -> Vec<(u64, u64, Vec<u64>, String)> {
    let mut seen = BTreeMap::new();
    for r in trace {
        if let Event::Apply { index, entry: AppliedEntry::Membership { voters }, .. } = &r.event {
            seen.entry(*index).or_insert_with(|| (r.time_ms * 1_000_000, *index, voters.clone(), r.to_string()));
        }
    }
    let mut out: Vec<_> = seen.into_values().collect();
    out.sort_by_key(|c| (c.0, c.1));
    out
}

/// The quorum floor: every committed configuration names at least `servers / 2 + 1` voters.
pub fn check_quorum_floor(trace: &[Record], servers: usize) -> Vec<InvariantViolation> {
    let floor = servers / 2 + 1;
    let Some((_, index, voters, line)) = configurations(trace).into_iter().find(|c| c.2.len() < floor) else { return Vec::new() };
    vec![InvariantViolation::new(
        "autopilot_keeps_quorum",
        format!("the raft configuration at index {index} has {} voter(s), fewer than a quorum ({floor}) of the {servers} servers", voters.len()),
        vec![line],
    )]
}

/// Dead servers leave the configuration: a server that crashed and stayed down for
/// [`DEAD_SERVER_BOUND_NS`], while no other server crashed, is out of the last configuration
/// committed by then. `ids`: each server's Raft id by host name.
pub fn check_dead_servers_removed(trace: &[Record], ids: &BTreeMap<String, u64>) -> Vec<InvariantViolation> {
    let ns = |r: &Record| r.time_ms * 1_000_000;
    let configs = configurations(trace);
    let mut out = Vec::new();
    for (i, r) in trace.iter().enumerate() {
        let Event::Nemesis(Nemesis::Crash { node, .. }) = &r.event else { continue };
        let (Some(id), t0) = (ids.get(node), ns(r)) else { continue };
        let until = t0.saturating_add(DEAD_SERVER_BOUND_NS);
        let disturbed = trace[i + 1..].iter().take_while(|x| ns(x) <= until).any(|x| {
            matches!(&x.event, Event::Nemesis(Nemesis::Crash { .. } | Nemesis::Restart { .. } | Nemesis::FinalHeal { .. }))
        });
        let ran_long_enough = trace.last().is_some_and(|x| ns(x) > until);
        if disturbed || !ran_long_enough {
            continue;
        }
        let last = configs.iter().rev().find(|c| c.0 <= until);
        if let Some((_, index, _, line)) = last.filter(|c| c.2.contains(id)) {
            out.push(InvariantViolation::new(
                "dead_server_removed",
                format!("{node} crashed at t={:.3}s and stayed down, but {}s later the raft configuration (index {index}) still names it", t0 as f64 / 1e9, DEAD_SERVER_BOUND_NS / 1_000_000_000),
                vec![r.to_string(), line.clone()],
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(time_ms: u64, who: &str, event: Event) -> Record {
        Record { time_ms, who: who.into(), event }
    }

    fn config(time_ms: u64, index: u64, voters: &[u64]) -> Record {
        rec(time_ms, "s1", Event::Apply { index, term: 1, entry: AppliedEntry::Membership { voters: voters.to_vec() } })
    }

    fn crash(time_ms: u64, node: &str) -> Record {
        rec(time_ms, concord_trace::NEMESIS, Event::Nemesis(Nemesis::Crash { node: node.into(), torn: false }))
    }

    #[test]
    fn a_configuration_below_a_quorum_of_the_servers_is_caught() {
        let ok = [config(0, 0, &[1, 2, 3]), config(9_000, 7, &[1, 2])];
        assert!(check_quorum_floor(&ok, 3).is_empty());
        let bad = [config(0, 0, &[1, 2, 3]), config(9_000, 7, &[1, 2]), config(30_000, 12, &[1])];
        let v = check_quorum_floor(&bad, 3);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("index 12 has 1 voter(s)"), "{}", v[0].detail);
    }

    #[test]
    fn a_dead_server_still_in_the_configuration_after_the_bound_is_caught() {
        let ids = BTreeMap::from([("s3".to_string(), 3)]);
        let end = rec(40_000, "s1", Event::Bootstrap { servers: 3 });
        let removed = [config(0, 0, &[1, 2, 3]), crash(2_000, "s3"), config(10_000, 9, &[1, 2]), end.clone()];
        assert!(check_dead_servers_removed(&removed, &ids).is_empty());
        let kept = [config(0, 0, &[1, 2, 3]), crash(2_000, "s3"), end.clone()];
        assert_eq!(check_dead_servers_removed(&kept, &ids).len(), 1);
        let late = [config(0, 0, &[1, 2, 3]), crash(2_000, "s3"), config(20_000, 9, &[1, 2]), end];
        assert_eq!(check_dead_servers_removed(&late, &ids).len(), 1, "removed only after the bound");
    }

    #[test]
    fn a_crash_overlapping_another_is_not_judged() {
        let ids = BTreeMap::from([("s3".to_string(), 3), ("s2".to_string(), 2)]);
        let restart = rec(10_000, concord_trace::NEMESIS, Event::Nemesis(Nemesis::Restart { node: "s2".into() }));
        let trace = [config(0, 0, &[1, 2, 3]), crash(2_000, "s3"), crash(5_000, "s2"), restart, rec(40_000, "s1", Event::Bootstrap { servers: 3 })];
        assert!(check_dead_servers_removed(&trace, &ids).is_empty());
    }
}
