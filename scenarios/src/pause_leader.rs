//! Freeze the current leader (its peers see silence), then resume it: it wakes up still
//! believing it leads, with a burst of stale messages in flight.
use nemesis::{Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    // The leader is resolved when the fault applies, so pause every server in turn within a
    // window; the one leading is the one that matters, and the others exercise pauses of followers.
    windows(rng, p, 1_000..5_000, 1_000..3_000, |rng, s, start, end| {
        let victim = rng.gen_range(0..p.servers);
        s.at(start, Fault::Pause(Target::server(victim)));
        s.at(end, Fault::Resume(Target::server(victim)));
    })
}
