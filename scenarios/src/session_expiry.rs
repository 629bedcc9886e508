//! Session TTLs under drifting clocks and leader changes: server clocks run up to 25% fast or
//! slow (the leader's TTL timers read its clock), and leadership moves by isolation or transfer
//! while sessions are alive. Consul's 2×TTL grace must keep every renewed session alive, and
//! each new leader restarts every timer.
use nemesis::{Fault, Schedule, Target, RATE_REAL};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

/// Largest drift from real rate, in parts per million (25%).
const MAX_DRIFT_PPM: u32 = 250_000;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 1_000..4_000, 1_000..3_000, |rng, s, start, end| {
        for i in 0..p.servers {
            let rate = RATE_REAL - MAX_DRIFT_PPM + rng.gen_range(0..=2 * MAX_DRIFT_PPM);
            s.at(start, Fault::ClockDrift { host: Target::server(i), rate_ppm: rate });
        }
        if rng.gen_bool(0.5) {
            s.at(start, Fault::Isolate(Target::Leader));
            s.at(end, Fault::HealAll);
        } else {
            s.at(start, Fault::TransferLeader(Target::Any(nemesis::Role::Server)));
        }
        if rng.gen_bool(0.5) {
            for i in 0..p.servers {
                s.at(end, Fault::ClockDrift { host: Target::server(i), rate_ppm: RATE_REAL });
            }
        }
    })
}
