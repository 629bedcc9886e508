//! The WAN pool under faults: one server at a time cut off (or crashed and restarted) long
//! enough for the WAN pool, on memberlist's WAN timing (5 s probes, at least 30 s of suspicion),
//! to declare it failed; after the final heal every server must see every server alive in the
//! WAN pool again (the membership-convergence oracle over `/v1/agent/members?wan`), while the
//! KV register workload runs throughout. The simulator runs the WAN pool only in this scenario.
use nemesis::{Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

/// Fault windows outlast the WAN pool's failure detection on both sides of the cut (a member is
/// probed once per round of 5 s probes, then suspected for at least 30 s: up to ~50 s with three
/// servers), so when the cut heals neither side probes the other any more and only reconnecting
/// to failed members brings them back together.
pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 55_000..70_000, 3_000..8_000, |rng, s, start, end| {
        let target = Target::server(rng.gen_range(0..p.servers));
        if rng.gen_bool(0.7) {
            s.at(start, Fault::Isolate(target));
            s.at(end, Fault::HealAll);
        } else {
            s.at(start, Fault::Crash(target.clone()));
            s.at(end, Fault::Restart(target));
        }
    })
}
