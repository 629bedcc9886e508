//! Kill a server (unsynced disk writes are lost), then restart it from its disk. One window in
//! four kills a majority at once, which only durable (fsynced) logs survive.
use nemesis::{Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 1_000..5_000, 1_000..4_000, |rng, s, start, end| {
        let victims = if rng.gen_ratio(1, 4) { p.servers / 2 + 1 } else { 1 };
        let mut nodes: Vec<usize> = (0..p.servers).collect();
        rand::seq::SliceRandom::shuffle(nodes.as_mut_slice(), rng);
        for v in nodes.into_iter().take(victims) {
            s.at(start, Fault::Crash(Target::server(v)));
            s.at(end, Fault::Restart(Target::server(v)));
        }
    })
}
