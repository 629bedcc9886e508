//! Gossip encryption under faults: every agent runs with `-encrypt`, and a workload client
//! rotates the key (install the new key everywhere, make it the primary, remove the old one)
//! while the nemesis cuts agents off (random halves, one isolated), makes links lossy or crashes
//! an agent and restarts it (from its saved keyring), with quiet windows between; after the final heal every agent must see every agent alive again
//! (the membership-convergence oracle), with only the new key installed.
use nemesis::{random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

/// Fault windows outlast the pool's failure detection (probe 1 s, suspicion about 4 s) about
/// half the time, so members go failed and must rejoin under the new key.
pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 2_000..10_000, 2_000..6_000, |rng, s, start, end| {
        match rng.gen_range(0..4) {
            0 => {
                let (a, b) = random_halves(rng, p.servers);
                s.at(start, Fault::Partition { a, b });
            }
            1 => {
                s.at(start, Fault::Isolate(Target::server(rng.gen_range(0..p.servers))));
            }
            2 => {
                let victim = Target::server(rng.gen_range(0..p.servers));
                s.at(start, Fault::Crash(victim.clone()));
                s.at(end, Fault::Restart(victim));
            }
            _ => {
                s.at(start, Fault::LossyNode { host: Target::server(rng.gen_range(0..p.servers)), per_mille: rng.gen_range(20..150) });
            }
        }
        s.at(end, Fault::HealAll);
    })
}
