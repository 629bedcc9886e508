//! The catalog under faults (the same schedule drives txn-bank): clients register instances with their health check flipping between
//! passing and critical while random halves are cut off, the leader is isolated, or a server
//! crashes and restarts. Judged per instance as a register (see the simulator's catalog
//! workload): a torn registration or a dropped status change shows as a value never written.
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
            let victim = Target::server(rng.gen_range(0..p.servers));
            s.at(start, Fault::Crash(victim.clone()));
            s.at(end, Fault::Restart(victim));
        }
    })
}
