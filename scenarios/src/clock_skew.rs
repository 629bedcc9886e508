//! Skew and jump servers' wall clocks (forward and back) while partitions come and go. Raft and
//! leases must not depend on wall time; only timestamps Consul exposes may move.
use nemesis::{random_halves, Fault, Schedule};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 1_000..5_000, 1_000..3_000, |rng, s, start, end| {
        let node = rng.gen_range(0..p.servers);
        let offset_ms = rng.gen_range(-60_000i64..=60_000);
        s.at(start, Fault::ClockSkew { node, offset_ms });
        if rng.gen_bool(0.5) {
            let (a, b) = random_halves(rng, p.servers);
            s.at(start, Fault::Partition { a, b });
        }
        s.at(end, Fault::ClockSkew { node, offset_ms: 0 });
        s.at(end, Fault::HealAll);
    })
}
