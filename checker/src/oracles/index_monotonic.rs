//! Monotonic `X-Consul-Index`: Consul blocking queries rely on the index a client sees never going
//! backwards (a client blocks "until the index exceeds the one I have"). The index is the Raft
//! index of the last applied change, and Raft's commit and apply indexes only grow (Ongaro &
//! Ousterhout 2014, Figure 2 "commitIndex … increases monotonically" and "lastApplied … increases
//! monotonically"; Log Matching, Figure 3, §5.3), so a cluster that is safe never serves a client
//! an older index after a newer one, even when the client switches servers.
//!
//! For each (client, key), the observations in recorded order must have non-decreasing indexes,
//! and every index must be at least 1. A `?stale` read is answered from whichever server it
//! reached, which may lag the others, so stale observations form their own sequences, one per
//! (client, key, server): one server's applied index only grows (issue 8's model for `?stale`;
//! the scenarios that read stale do not restart servers, whose applied state may restart behind) (Consul never returns 0: a client would spin). A snapshot
//! restore may legitimately send a key's index back (restored rows keep their ModifyIndex; Consul's
//! blocking-query guide tells clients to reset then), so the snapshot-restore workload does not
//! run this oracle; [`super::snapshot_restore`] checks the KV tables' index instead.

use std::collections::BTreeMap;

use crate::history::{History, IndexObservation};
use crate::invariant::InvariantViolation;

use super::secs;

/// Name used in [`InvariantViolation::invariant`].
pub const INDEX_MONOTONIC: &str = "index_monotonic";

fn describe(o: &IndexObservation) -> String {
    format!("{} {} index={} at {} from {}", crate::history::client_name(o.client), o.key, o.index, secs(o.at_ns), o.server)
}

/// One violation per zero index and per step backwards; the evidence is the offending
/// observation (and, for a step backwards, the highest index the client had seen before).
pub fn check_index_monotonic(history: &History) -> Vec<InvariantViolation> {
    let mut highest: BTreeMap<(u32, &str, Option<&str>), &IndexObservation> = BTreeMap::new();
    let mut out = Vec::new();
    for o in &history.index_observations {
        if o.index == 0 {
            out.push(InvariantViolation::new(
                INDEX_MONOTONIC,
                format!("client {} got X-Consul-Index 0 for {}", crate::history::client_name(o.client), o.key),
                vec![describe(o)],
            ));
            continue;
        }
        let server = o.stale.then_some(o.server.as_str());
        let slot = highest.entry((o.client, o.key.as_str(), server)).or_insert(o);
        if o.index < slot.index {
            out.push(InvariantViolation::new(
                INDEX_MONOTONIC,
                format!("client {} saw X-Consul-Index for {} go back from {} to {}", crate::history::client_name(o.client), o.key, slot.index, o.index),
                vec![describe(slot), describe(o)],
            ));
        } else {
            *slot = o;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(client: u32, key: &str, index: u64, at_ms: u64) -> IndexObservation {
        IndexObservation { client, key: key.to_string(), index, at_ns: at_ms * 1_000_000, server: format!("s{}", at_ms % 3 + 1), stale: false }
    }

    #[test]
    fn stale_indexes_only_grow_per_server() {
        let stale = |index: u64, server: &str| IndexObservation { server: server.into(), stale: true, ..obs(1, "k", index, 0) };
        // s2 lags s1: fine for ?stale, as long as each server's own index only grows.
        let h = with(vec![obs(1, "k", 9, 1), stale(9, "s1"), stale(4, "s2"), stale(6, "s2"), stale(9, "s1")]);
        assert!(check_index_monotonic(&h).is_empty());
        let v = check_index_monotonic(&with(vec![stale(6, "s2"), stale(4, "s2")]));
        assert_eq!(v.len(), 1, "{v:?}");
    }

    fn with(observations: Vec<IndexObservation>) -> History {
        History { index_observations: observations, ..History::default() }
    }

    #[test]
    fn non_decreasing_indexes_per_client_and_key_hold() {
        let h = with(vec![obs(1, "k", 5, 1), obs(1, "k", 5, 2), obs(2, "k", 3, 3), obs(1, "j", 1, 4), obs(1, "k", 9, 5)]);
        assert!(check_index_monotonic(&h).is_empty());
    }

    #[test]
    fn index_going_backwards_for_a_client_is_caught() {
        let h = with(vec![obs(1, "k", 5, 1), obs(1, "k", 9, 2), obs(1, "k", 7, 3), obs(1, "k", 8, 4)]);
        let v = check_index_monotonic(&h);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].invariant, INDEX_MONOTONIC);
        assert!(v[0].detail.contains("from 9 to 7"), "{}", v[0]);
        assert!(v[1].detail.contains("from 9 to 8"), "{}", v[1]);
    }

    #[test]
    fn zero_index_is_caught() {
        let v = check_index_monotonic(&with(vec![obs(1, "k", 0, 1)]));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("X-Consul-Index 0"), "{}", v[0]);
    }

    #[test]
    fn histories_recorded_before_index_observations_still_load() {
        let h: Result<History, _> = serde_json::from_str(r#"{"ops": []}"#);
        assert!(h.is_ok_and(|h| h.index_observations.is_empty()));
    }
}
