//! Jepsen's bridge: two halves that cannot see each other, joined through one server.
use nemesis::{bridge, Fault, Schedule};
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 2_000..7_000, 1_000..4_000, |rng, s, start, end| {
        let (pairs, _bridge) = bridge(rng, p.servers);
        s.at(start, Fault::Cut { pairs, shape: "bridge" });
        s.at(end, Fault::HealAll);
    })
}
