//! Network coordinates over a two-site network: the servers are split into two groups
//! ([`groups`]); links inside a group are fast ([`NEAR_MS`]) and links across are slow
//! ([`FAR_MS`]), from the start and through the heal (geography, not a fault). Meanwhile a random
//! server is cut off now and then, so coordinates must survive members failing and rejoining.
//! After the heal the coordinates oracle judges the estimates: across-group round trips must
//! clearly exceed within-group ones, and `?near=<node>` must list the node's own group first.
use nemesis::{Fault, Host, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

/// One-way latency inside a group: fixed and jitter, in ms.
pub const NEAR_MS: (u64, u64) = (1, 1);
/// One-way latency across the groups: fixed and jitter, in ms (a round trip of 50–60 ms). Well
/// above what the simulator's step (up to 10 ms) makes of the fast links' round trips (10–30 ms
/// as the pings see them), and well below Raft's RPC deadline (the 100 ms heartbeat interval:
/// a site whose every append times out never hears from the leader).
pub const FAR_MS: (u64, u64) = (25, 5);

/// The two sites: the first half of the servers (rounded up) and the rest.
pub fn groups(servers: usize) -> (Vec<Host>, Vec<Host>) {
    let all = nemesis::hosts::servers(servers);
    let split = servers.div_ceil(2);
    (all[..split].to_vec(), all[split..].to_vec())
}

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    let (a, b) = groups(p.servers);
    let mut s = windows(rng, p, 3_000..6_000, 5_000..10_000, |rng, s, start, end| {
        s.at(start, Fault::Isolate(Target::server(rng.gen_range(0..p.servers))));
        s.at(end, Fault::HealAll);
    });
    let link = |a: &Vec<Host>, b: &Vec<Host>, (min_ms, jitter_ms): (u64, u64)| Fault::LinkLatency { a: a.clone(), b: b.clone(), min_ms, jitter_ms };
    let zero = std::time::Duration::ZERO;
    s.at(zero, link(&a, &a, NEAR_MS));
    s.at(zero, link(&b, &b, NEAR_MS));
    s.at(zero, link(&a, &b, FAR_MS));
    s
}
