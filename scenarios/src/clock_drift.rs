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
    // A cut must outlast the slowest lease the bound allows (an election timeout stretched by
    // 25%, about 2 s) for a successor to be elected under it; quiet windows only need the cluster
    // to settle. Short windows give many cuts per run.
    windows(rng, p, 2_000..3_500, 800..2_000, |rng, s, start, end| {
        // Followers may run fast or slow, one of them fast (near the bound, as the worst case the
        // lease must survive); the leader slow (at the edge of the bound, mostly), and then it is
        // isolated, so only its lease stands between clients and a stale read.
        let fast = rng.gen_range(0..p.servers);
        for i in 0..p.servers {
            let rate = if i == fast {
                RATE_REAL + MAX_DRIFT_PPM - rng.gen_range(0..=MAX_DRIFT_PPM / 5)
            } else {
                RATE_REAL - MAX_DRIFT_PPM + rng.gen_range(0..=2 * MAX_DRIFT_PPM)
            };
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
