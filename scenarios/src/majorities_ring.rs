//! Jepsen's majorities ring: every server sees a majority, but no two see the same one.
use nemesis::{majorities_ring, Fault, Schedule};
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 2_000..7_000, 1_000..4_000, |rng, s, start, end| {
        s.at(start, Fault::Cut { pairs: majorities_ring(rng, p.servers), shape: "majorities-ring" });
        s.at(end, Fault::HealAll);
    })
}
