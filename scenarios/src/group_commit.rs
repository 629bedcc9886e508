//! Group commit under leader failures: 8–16 clients write at once, so the leader proposes many
//! writes per Raft entry (`server::group_commit`); servers crash (a majority at once, one window
//! in four: only fsynced batches survive), the leader is isolated with batches in flight, and
//! random halves are cut. Each write is judged on its own by the KV register model: a batch that
//! commits answers every write with its own result, one that fails leaves each outcome unknown.
use nemesis::{random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 1_000..6_000, 1_000..4_000, |rng, s, start, end| match rng.gen_range(0..4) {
        0 | 1 => {
            let victims = if rng.gen_ratio(1, 2) { p.servers / 2 + 1 } else { 1 };
            let mut nodes: Vec<usize> = (0..p.servers).collect();
            rand::seq::SliceRandom::shuffle(nodes.as_mut_slice(), rng);
            for v in nodes.into_iter().take(victims) {
                s.at(start, Fault::Crash(Target::server(v)));
                s.at(end, Fault::Restart(Target::server(v)));
            }
        }
        2 => {
            s.at(start, Fault::Isolate(Target::Leader));
            s.at(end, Fault::HealAll);
        }
        _ => {
            let (a, b) = random_halves(rng, p.servers);
            s.at(start, Fault::Partition { a, b });
            s.at(end, Fault::HealAll);
        }
    })
}
