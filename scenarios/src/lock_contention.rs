//! Locks under contention: clients take, hold, renew and release KV locks with TTL sessions (and
//! sometimes pause past their TTL) while random halves are cut off, the leader is isolated, or
//! the leader is paused. Judged by the lock model: mutual exclusion, and no session invalidated
//! before its TTL.
use nemesis::{random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 1_000..5_000, 1_000..4_000, |rng, s, start, end| match rng.gen_range(0..3) {
        0 => {
            let (a, b) = random_halves(rng, p.servers);
            s.at(start, Fault::Partition { a, b });
            s.at(end, Fault::HealAll);
        }
        1 => {
            s.at(start, Fault::Isolate(Target::Leader));
            s.at(end, Fault::HealAll);
        }
        _ => {
            // Pause each server in turn's traffic; the leader's pause is the one that matters.
            let victim = Target::server(rng.gen_range(0..p.servers));
            s.at(start, Fault::Pause(victim.clone()));
            s.at(end, Fault::Resume(victim));
        }
    })
}
