//! Degraded links: high latency with jitter, and flaky links that drop bursts of messages.
use nemesis::{Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 2_000..8_000, 1_000..3_000, |rng, s, start, end| {
        let host = Target::server(rng.gen_range(0..p.servers));
        if rng.gen_bool(0.5) {
            s.at(start, Fault::SlowNode { host: host.clone(), min_ms: rng.gen_range(20..300), jitter_ms: rng.gen_range(0..300) });
        } else {
            s.at(start, Fault::LossyNode { host, per_mille: rng.gen_range(5..100) });
        }
        s.at(end, Fault::HealAll);
    })
}
