//! Restart every server in turn, as a rolling upgrade does; sometimes without waiting long enough
//! for the previous one to catch up.
use std::time::Duration;

use nemesis::{Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    let mut s = Schedule::new();
    let mut t = Duration::from_millis(rng.gen_range(1_000..3_000));
    'rounds: loop {
        for node in 0..p.servers {
            let down = Duration::from_millis(rng.gen_range(200..3_000));
            if t + down >= p.fault_phase {
                break 'rounds;
            }
            s.at(t, Fault::Crash(Target::server(node)));
            s.at(t + down, Fault::Restart(Target::server(node)));
            t += down + Duration::from_millis(rng.gen_range(100..3_000));
        }
    }
    s
}
