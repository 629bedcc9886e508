//! Gossip under partitions: random halves and single servers cut off long enough for the pool to
//! suspect and then declare the other side failed, with quiet windows between; after the final
//! heal every agent must see every agent alive again and the catalog's `serfHealth` must pass
//! (the membership-convergence oracle), while the KV register workload runs throughout.
use nemesis::{random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

/// Fault windows outlast the pool's failure detection (probe 1 s, suspicion about 4 s), so both
/// sides of a cut go suspect and then failed.
pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 6_000..12_000, 2_000..6_000, |rng, s, start, end| {
        if rng.gen_bool(0.5) {
            let (a, b) = random_halves(rng, p.servers);
            s.at(start, Fault::Partition { a, b });
        } else {
            s.at(start, Fault::Isolate(Target::server(rng.gen_range(0..p.servers))));
        }
        s.at(end, Fault::HealAll);
    })
}
