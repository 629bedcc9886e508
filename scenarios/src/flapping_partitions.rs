//! Short partitions in quick succession: elections start and are cut short again and again.
use nemesis::{random_halves, Fault, Schedule};
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 100..900, 50..600, |rng, s, start, end| {
        let (a, b) = random_halves(rng, p.servers);
        s.at(start, Fault::Partition { a, b });
        s.at(end, Fault::HealAll);
    })
}
