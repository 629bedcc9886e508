//! `concord lock`'s recipe under faults: a holder is paused (its client frozen; four
//! windows in seven), or a server is cut off, alone or with a random half, or paused, for 5.5–10.5 s: long enough
//! for a session to die (2×TTL of 2 s) and short enough that the holder's watcher, which gives up
//! after about 11 s of failed reads, is still watching when the fault heals: it must then see
//! that another holder took over and stop its child.
use nemesis::{random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 5_500..10_500, 1_000..4_000, |rng, s, start, end| {
        let victim = Target::server(rng.gen_range(0..p.servers));
        match rng.gen_range(0..7) {
            0..=3 => {
                // Every run has at least two clients.
                let client = rng.gen_range(0..2);
                s.at(start, Fault::PauseClient(client));
                s.at(end, Fault::ResumeClient(client));
            }
            4 => {
                s.at(start, Fault::Isolate(victim));
                s.at(end, Fault::HealAll);
            }
            5 => {
                let (a, b) = random_halves(rng, p.servers);
                s.at(start, Fault::Partition { a, b });
                s.at(end, Fault::HealAll);
            }
            _ => {
                s.at(start, Fault::Pause(victim.clone()));
                s.at(end, Fault::Resume(victim));
            }
        }
    })
}
