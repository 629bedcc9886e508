//! Drift servers' clock rates (within the ±25% bound the leader lease assumes) and cut the leader
//! off while its clock runs slow, so a lease timed on that clock lasts longer in real time than
//! it believes. A correct lease expires before the other servers can elect a new leader; one that
//! ignores drift serves stale default-mode reads (`--bug lease-ignores-drift`).
use nemesis::{Fault, Schedule, Target, RATE_REAL};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

/// How far rates are drifted: up to 25% (the bound `node::server::lease` assumes), in ppm.
const MAX_DRIFT_PPM: u32 = 250_000;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 1_500..5_000, 1_000..3_000, |rng, s, start, end| {
        // Followers may run fast or slow; the leader slow (at the edge of the bound, mostly), and
        // then it is isolated, so only its lease stands between clients and a stale read.
        for i in 0..p.servers {
            let rate = RATE_REAL - MAX_DRIFT_PPM + rng.gen_range(0..=2 * MAX_DRIFT_PPM);
            s.at(start, Fault::ClockDrift { host: Target::server(i), rate_ppm: rate });
        }
        let slow = RATE_REAL - MAX_DRIFT_PPM + rng.gen_range(0..=MAX_DRIFT_PPM / 5);
        s.at(start, Fault::ClockDrift { host: Target::Leader, rate_ppm: slow });
        s.at(start, Fault::Isolate(Target::Leader));
        s.at(end, Fault::HealAll);
        if rng.gen_bool(0.5) {
            for i in 0..p.servers {
                s.at(end, Fault::ClockDrift { host: Target::server(i), rate_ppm: RATE_REAL });
            }
        }
    })
}
