//! Random halves, then heal, repeatedly (Jepsen `partition-random-halves`).
use nemesis::{random_halves, Fault, Schedule};
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 1_000..6_000, 1_000..4_000, |rng, s, start, end| {
        let (a, b) = random_halves(rng, p.servers);
        s.at(start, Fault::Partition { a, b });
        s.at(end, Fault::HealAll);
    })
}
