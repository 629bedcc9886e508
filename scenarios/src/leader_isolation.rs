//! Cut the current leader off from the other servers, then heal, repeatedly.
use nemesis::{Fault, Schedule, Target};
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 1_000..6_000, 1_000..4_000, |_, s, start, end| {
        s.at(start, Fault::Isolate(Target::Leader));
        s.at(end, Fault::HealAll);
    })
}
