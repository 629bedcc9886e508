//! Two datacenters joined by the WAN pool, and faults across it: `dc1` is servers `s1..sN`,
//! `dc2` is `sN+1..s2N` (N = `--servers`), each its own Raft cluster, dc2's servers joining
//! dc1's WAN pool as `-retry-join-wan` does. The KV register workload sends each key to its own
//! datacenter, directly or through the other one with `?dc=`.
//!
//! On half the seeds (when the fault phase has room) the run opens with a long cut of the WAN
//! itself (every dc1 server from every dc2 server) for [`LONG_CUT_MS`], past the WAN pool's
//! failure detection (5 s probes, at least 30 s of suspicion): each side declares the other's
//! servers failed, and `?dc=` requests are answered "No path to datacenter" (a certain failure)
//! until the heal and the WAN pool's reconnect. Then short fault windows, each of which cuts one
//! server of either datacenter off from every other server (or crashes it, then restarts it),
//! cuts one server of each datacenter off at once, or cuts the WAN for a few seconds: too short
//! for failure detection, so a forwarding server still believes the cut-off servers alive and
//! must skip one it cannot reach for another of that datacenter, or time out.
use std::time::Duration;

use nemesis::{Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

/// Datacenters in this scenario's world (`dc1`, `dc2`), each of `Params::servers` servers.
pub const DATACENTERS: usize = 2;
/// How long the opening WAN cut lasts, in simulated ms: past the WAN pool's failure detection on
/// both sides (up to ~50 s with three servers a side, as in `wan_gossip`), plus time in which
/// requests meet "No path to datacenter".
pub const LONG_CUT_MS: std::ops::Range<u64> = 60_000..70_000;
/// When the opening WAN cut starts, in simulated ms: once the WAN pool has formed.
const LONG_CUT_START_MS: u64 = 5_000;
/// The fault phase must leave this much room after the opening cut for short windows.
const AFTER_LONG_CUT_MS: u64 = 15_000;

/// The host names of datacenter `dc`'s servers (0-based `dc`), `per_dc` servers each.
fn servers_of(dc: usize, per_dc: usize) -> Vec<String> {
    (dc * per_dc..(dc + 1) * per_dc).map(nemesis::hosts::server).collect()
}

/// Every dc1 server cut from every dc2 server.
fn wan_cut(per_dc: usize) -> Fault {
    Fault::Partition { a: servers_of(0, per_dc), b: servers_of(1, per_dc) }
}

/// See the module docs.
pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    let room = LONG_CUT_START_MS + LONG_CUT_MS.end + AFTER_LONG_CUT_MS;
    let long_cut = p.fault_phase >= Duration::from_millis(room) && rng.gen_ratio(1, 2);
    let mut s = Schedule::new();
    let mut offset = Duration::ZERO;
    if long_cut {
        let start = Duration::from_millis(LONG_CUT_START_MS);
        offset = start + Duration::from_millis(rng.gen_range(LONG_CUT_MS));
        s.at(start, wan_cut(p.servers));
        s.at(offset, Fault::HealAll);
    }
    let rest = Params { servers: p.servers, fault_phase: p.fault_phase - offset };
    let short = windows(rng, &rest, 2_000..8_000, 1_000..4_000, |rng, s, start, end| short_window(rng, p, s, start, end));
    for (at, fault) in short.events() {
        s.at(*at + offset, fault.clone());
    }
    let cut = if long_cut { format!("; WAN cut {:.1}s from {}s", (offset.as_millis() as u64 - LONG_CUT_START_MS) as f64 / 1000.0, LONG_CUT_START_MS / 1000) } else { String::new() };
    s.options = Some(format!("datacenters: dc1 {}, dc2 {}{cut}", servers_of(0, p.servers).join(","), servers_of(1, p.servers).join(",")));
    s
}

/// One short fault window from `start` to `end` (see the module docs).
fn short_window(rng: &mut ChaCha8Rng, p: &Params, s: &mut Schedule, start: Duration, end: Duration) {
    let total = p.servers * DATACENTERS;
    match rng.gen_range(0..10) {
        0..=4 => {
            s.at(start, Fault::Isolate(Target::server(rng.gen_range(0..total))));
            s.at(end, Fault::HealAll);
        }
        5..=6 => {
            let target = Target::server(rng.gen_range(0..total));
            s.at(start, Fault::Crash(target.clone()));
            s.at(end, Fault::Restart(target));
        }
        7 => {
            // One server of each datacenter at once: a forwarding server may be cut off from the
            // server it picks in the other datacenter, and that one from its own leader.
            for dc in 0..DATACENTERS {
                s.at(start, Fault::Isolate(Target::server(dc * p.servers + rng.gen_range(0..p.servers))));
            }
            s.at(end, Fault::HealAll);
        }
        _ => {
            s.at(start, wan_cut(p.servers));
            s.at(end, Fault::HealAll);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_long_wan_cut_opens_half_the_runs_that_have_room_for_it() {
        let p = Params { servers: 3, fault_phase: Duration::from_secs(100) };
        let mut long = 0;
        for seed in 0..40 {
            let s = build(&mut ChaCha8Rng::seed_from_u64(seed), &p);
            assert!(s.end() <= p.fault_phase);
            let first = &s.events()[0];
            if first.0 == Duration::from_millis(LONG_CUT_START_MS) && first.1 == wan_cut(3) {
                long += 1;
                assert_eq!(s.events()[1].1, Fault::HealAll, "nothing else happens during the long cut");
                assert!(s.events()[1].0 >= Duration::from_millis(LONG_CUT_START_MS + LONG_CUT_MS.start));
            }
        }
        assert!((10..=30).contains(&long), "{long} of 40 seeds open with a long WAN cut");
        let short = Params { servers: 3, fault_phase: Duration::from_secs(30) };
        let s = build(&mut ChaCha8Rng::seed_from_u64(1), &short);
        assert!(s.events().iter().all(|(at, _)| *at <= short.fault_phase), "no long cut without room");
    }
}
