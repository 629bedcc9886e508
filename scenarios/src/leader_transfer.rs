//! Operator leadership transfers (`consul operator raft transfer-leader`) while clients read and
//! write: to a random server, sometimes with the old leader cut off mid-handover (it must stop
//! serving reads on its own), the target crashed mid-handover (the old leader must take over
//! again), or a slow server.
use std::time::Duration;

use nemesis::{Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 3_000..6_000, 1_000..3_000, |rng, s, start, end| {
        let target = rng.gen_range(0..p.servers);
        s.at(start, Fault::TransferLeader(Target::server(target)));
        // Mid-handover moments, kept inside the window (its end is clamped to the fault phase).
        let ms = |lo: u64, hi: u64, rng: &mut ChaCha8Rng| (start + Duration::from_millis(rng.gen_range(lo..hi))).min(end);
        match rng.gen_range(0..4) {
            0 => {
                // After the target was told to campaign, before it does (~1.2 s in).
                s.at(ms(150, 900, rng), Fault::Isolate(Target::Leader));
                s.at(end, Fault::HealAll);
            }
            1 => {
                s.at(ms(50, 1_500, rng), Fault::Crash(Target::server(target)));
                s.at(end, Fault::Restart(Target::server(target)));
            }
            2 => {
                let slow = rng.gen_range(0..p.servers);
                s.at(start, Fault::SlowNode { host: Target::server(slow), min_ms: 20, jitter_ms: 80 });
                s.at(end, Fault::HealAll);
            }
            _ => {}
        }
    })
}
