//! Membership converges after the heal: within [`MEMBERSHIP_BOUND_NS`] of the final heal, some
//! polling round shows every expected agent answering, every one of them seeing every expected
//! agent `alive`, and the catalog's `serfHealth` `passing` for every expected agent (the leader
//! reconciled membership into the catalog), and every expected agent listing every user event
//! fired after the heal (events ride gossip broadcasts to every member).
//!
//! SWIM (Das, Gupta & Motivala 2002, §4) promises eventual detection and dissemination; with
//! Lifeguard-style rejoin an agent wrongly declared failed comes back under a new incarnation. A
//! healed partition that leaves two sides seeing each other failed forever breaks it (Serf heals
//! it by reconnecting to failed members; foca by announcing to down members).

use crate::history::{History, MembershipRound};
use crate::invariant::InvariantViolation;

/// How long after the final heal membership may take to converge, in ns: two reconnect rounds
/// (10 s each) plus suspicion and dissemination, with room for the leader's reconcile.
pub const MEMBERSHIP_BOUND_NS: u64 = 30_000_000_000;

/// What keeps `round` from being converged, or `None` if it is.
pub fn disagreement(round: &MembershipRound) -> Option<String> {
    for observer in &round.expected {
        let Some(view) = round.views.get(observer) else { return Some(format!("{observer} did not answer")) };
        for member in &round.expected {
            match view.get(member).map(String::as_str) {
                Some("alive") => {}
                Some(other) => return Some(format!("{observer} sees {member} {other}")),
                None => return Some(format!("{observer} does not know {member}")),
            }
        }
    }
    let Some(serf) = &round.serf_health else { return Some("no server answered the catalog read".into()) };
    for member in &round.expected {
        match serf.get(member).map(String::as_str) {
            Some("passing") => {}
            Some(other) => return Some(format!("catalog serfHealth of {member} is {other}")),
            None => return Some(format!("catalog has no serfHealth for {member}")),
        }
    }
    for member in &round.expected {
        let Some(listed) = round.events.get(member) else {
            if round.fired_events.is_empty() {
                continue;
            }
            return Some(format!("{member} did not answer its event list"));
        };
        if let Some(missing) = round.fired_events.iter().find(|id| !listed.contains(id)) {
            return Some(format!("{member} has not received user event {missing}"));
        }
    }
    None
}

/// Checks the history's membership rounds against the heal at `heal_ns` (no rounds: nothing to
/// judge, e.g. a workload that does not poll membership).
pub fn check_membership_converges(history: &History, heal_ns: u64, bound_ns: u64) -> Vec<InvariantViolation> {
    check_rounds_converge("membership_converges", "membership", &history.membership, heal_ns, bound_ns)
}

/// [`check_membership_converges`] for the WAN pool's rounds (`History::wan_membership`), reported
/// as `wan_membership_converges`.
pub fn check_wan_membership_converges(history: &History, heal_ns: u64, bound_ns: u64) -> Vec<InvariantViolation> {
    check_rounds_converge("wan_membership_converges", "WAN membership", &history.wan_membership, heal_ns, bound_ns)
}

fn check_rounds_converge(invariant: &'static str, what: &str, rounds: &[MembershipRound], heal_ns: u64, bound_ns: u64) -> Vec<InvariantViolation> {
    if rounds.is_empty() {
        return Vec::new();
    }
    let deadline = heal_ns.saturating_add(bound_ns);
    if rounds.iter().any(|r| r.at_ns <= deadline && disagreement(r).is_none()) {
        return Vec::new();
    }
    let last = rounds.iter().rev().find(|r| r.at_ns <= deadline).unwrap_or(&rounds[0]);
    let why = disagreement(last).unwrap_or_else(|| "converged only after the bound".into());
    let evidence = rounds
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|r| format!("t={:.3}s: {}", r.at_ns as f64 / 1e9, disagreement(r).unwrap_or_else(|| "converged".into())))
        .collect();
    vec![InvariantViolation::new(
        invariant,
        format!("{}s after the final heal {what} had not converged: {why}", bound_ns / 1_000_000_000),
        evidence,
    )]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn round(at_s: u64, views: &[(&str, &[(&str, &str)])], serf: &[(&str, &str)]) -> MembershipRound {
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        MembershipRound {
            at_ns: at_s * 1_000_000_000,
            expected: vec!["s1".into(), "s2".into()],
            views: views.iter().map(|(o, v)| (o.to_string(), map(v))).collect(),
            serf_health: Some(map(serf)),
            fired_events: Vec::new(),
            events: BTreeMap::new(),
        }
    }

    fn converged(at_s: u64) -> MembershipRound {
        round(at_s, &[("s1", &[("s1", "alive"), ("s2", "alive")]), ("s2", &[("s1", "alive"), ("s2", "alive")])], &[("s1", "passing"), ("s2", "passing")])
    }

    fn split(at_s: u64) -> MembershipRound {
        round(at_s, &[("s1", &[("s1", "alive"), ("s2", "failed")]), ("s2", &[("s1", "failed"), ("s2", "alive")])], &[("s1", "passing"), ("s2", "critical")])
    }

    #[test]
    fn converging_within_the_bound_passes() {
        let h = History { membership: vec![split(21), converged(25)], ..History::default() };
        assert!(check_membership_converges(&h, 20_000_000_000, MEMBERSHIP_BOUND_NS).is_empty());
    }

    #[test]
    fn sides_that_never_readmit_each_other_are_caught() {
        let h = History { membership: vec![split(21), split(40), split(55)], ..History::default() };
        let v = check_membership_converges(&h, 20_000_000_000, MEMBERSHIP_BOUND_NS);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, "membership_converges");
        assert!(v[0].detail.contains("s1 sees s2 failed"), "{}", v[0].detail);
    }

    #[test]
    fn a_catalog_that_keeps_serf_health_critical_is_caught() {
        let mut r = converged(25);
        r.serf_health = Some([("s1".to_string(), "passing".to_string()), ("s2".to_string(), "critical".to_string())].into());
        let h = History { membership: vec![r], ..History::default() };
        assert!(!check_membership_converges(&h, 20_000_000_000, MEMBERSHIP_BOUND_NS).is_empty());
    }

    #[test]
    fn an_event_some_agent_never_lists_is_caught() {
        let mut r = converged(25);
        r.fired_events = vec!["e1".into(), "e2".into()];
        r.events = [("s1".to_string(), vec!["e1".to_string(), "e2".to_string()]), ("s2".to_string(), vec!["e1".to_string()])].into();
        assert_eq!(disagreement(&r).as_deref(), Some("s2 has not received user event e2"));
        r.events.insert("s2".into(), vec!["e2".into(), "e1".into()]);
        assert_eq!(disagreement(&r), None);
    }
}
