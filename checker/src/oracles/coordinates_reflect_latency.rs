//! Network coordinates reflect the network: on a network of two sites (fast links inside, slow
//! ones across), within [`COORDINATES_BOUND_NS`] of the final heal some polling round shows every
//! node with a stored coordinate, every estimated round trip across the sites at least
//! [`SEPARATION`] times every one within a site and at least half the true across-site minimum,
//! and `?near=<node>` listing every node of the node's own site before any of the other.
//!
//! Vivaldi (Dabek, Cox, Kaashoek & Morris 2004, §3–4) places nodes so that distances predict
//! round trips; a 50 ms gap between sites dwarfs its typical error (a few ms on such a topology;
//! serf's own split-network test bounds the average error at 60 µs on a 10 ms gap). A node that
//! fed Vivaldi the wrong RTT (a constant, or the wrong unit) cannot pass.

use crate::history::{CoordinateRound, History};
use crate::invariant::InvariantViolation;

/// How long after the final heal the coordinates may take to reflect the sites, in ns: a few
/// dozen pings per node (one a second) and up to two coordinate syncs (15–30 s each).
pub const COORDINATES_BOUND_NS: u64 = 90_000_000_000;
/// How many times the smallest across-site estimate must exceed the largest within-site one.
pub const SEPARATION: u64 = 2;

/// What keeps `round` from reflecting the sites, or `None` if it does.
pub fn disagreement(round: &CoordinateRound) -> Option<String> {
    if let Some(n) = round.missing.first() {
        return Some(format!("no stored coordinate for {n}"));
    }
    let site = |n: &str| round.site_of.get(n).copied();
    let (mut within, mut across) = (None::<&(String, String, u64)>, None::<&(String, String, u64)>);
    for pair in &round.rtt_us {
        if site(&pair.0) == site(&pair.1) {
            within = within.filter(|w| w.2 >= pair.2).or(Some(pair));
        } else {
            across = across.filter(|a| a.2 <= pair.2).or(Some(pair));
        }
    }
    if let Some(a) = across {
        if a.2 * 2 < round.across_rtt_min_us {
            return Some(format!("estimated rtt {} <-> {} across the sites is {} µs, under half the true {} µs", a.0, a.1, a.2, round.across_rtt_min_us));
        }
        if let Some(w) = within.filter(|w| a.2 < w.2 * SEPARATION) {
            return Some(format!(
                "estimated rtt {} <-> {} across the sites ({} µs) is not {SEPARATION}× {} <-> {} within a site ({} µs)",
                a.0, a.1, a.2, w.0, w.1, w.2
            ));
        }
    }
    for (from, order) in &round.near {
        let mine = site(from);
        if let Some(i) = order.iter().position(|n| site(n) != mine) {
            if let Some(late) = order[i..].iter().find(|n| site(n) == mine) {
                return Some(format!("?near={from} lists {} (other site) before {late} (same site): {order:?}", order[i]));
            }
        }
    }
    None
}

/// Checks that some round within `bound_ns` of `heal_ns` reflects the sites; reports the last
/// round's disagreement otherwise. A history without coordinate rounds has nothing to judge.
pub fn check_coordinates_reflect_latency(history: &History, heal_ns: u64, bound_ns: u64) -> Vec<InvariantViolation> {
    let rounds = &history.coordinates;
    let Some(last) = rounds.last() else { return Vec::new() };
    if rounds.iter().any(|r| r.at_ns <= heal_ns + bound_ns && disagreement(r).is_none()) {
        return Vec::new();
    }
    let why = disagreement(last).unwrap_or_else(|| "only after the bound".into());
    let evidence = rounds.iter().rev().take(3).map(|r| format!("at {} ms: {:?}", r.at_ns / 1_000_000, disagreement(r))).collect();
    vec![InvariantViolation::new(
        "coordinates_reflect_latency",
        format!("{} s after the heal, network coordinates do not reflect the two sites: {why}", bound_ns / 1_000_000_000),
        evidence,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn round(within_us: u64, across_us: u64, near_s1: &[&str]) -> CoordinateRound {
        let site_of: BTreeMap<String, u32> = [("s1", 0), ("s2", 0), ("s3", 1)].map(|(n, s)| (n.to_string(), s)).into();
        let p = |a: &str, b: &str, us| (a.to_string(), b.to_string(), us);
        CoordinateRound {
            at_ns: 1,
            site_of,
            missing: vec![],
            rtt_us: vec![p("s1", "s2", within_us), p("s1", "s3", across_us), p("s2", "s3", across_us)],
            across_rtt_min_us: 50_000,
            near: [("s1".to_string(), near_s1.iter().map(|s| s.to_string()).collect())].into(),
        }
    }

    #[test]
    fn separated_sites_with_near_ordered_by_site_pass() {
        assert_eq!(disagreement(&round(3_000, 55_000, &["s1", "s2", "s3"])), None);
    }

    #[test]
    fn sites_that_look_equally_near_fail() {
        assert!(disagreement(&round(1_000, 1_100, &["s1", "s2", "s3"])).unwrap().contains("under half"));
        assert!(disagreement(&round(30_000, 55_000, &["s1", "s2", "s3"])).unwrap().contains("not 2×"));
    }

    #[test]
    fn near_listing_the_other_site_first_fails() {
        assert!(disagreement(&round(3_000, 55_000, &["s1", "s3", "s2"])).unwrap().contains("?near=s1"));
    }

    #[test]
    fn a_missing_coordinate_fails_and_a_late_pass_is_reported() {
        let mut r = round(3_000, 55_000, &["s1", "s2", "s3"]);
        r.missing = vec!["s3".into()];
        let h = History { coordinates: vec![r], ..History::default() };
        let v = check_coordinates_reflect_latency(&h, 0, 10);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("no stored coordinate for s3"));
    }
}
