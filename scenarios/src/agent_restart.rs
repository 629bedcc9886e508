//! Agents that crash and restart while clients register services on them through the agent API:
//! one server at a time is killed (losing unsynced disk writes, sometimes tearing the last one)
//! and restarted from its disk, with partitions between the crashes that keep anti-entropy from
//! reaching a leader. Judged by the agent-services workload: every acknowledged registration,
//! deregistration and TTL status must be what the agent holds after its restart, and the catalog
//! must show it for the agent's node within a bound after the final heal.
use nemesis::{random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 1_000..5_000, 1_000..4_000, |rng, s, start, end| match rng.gen_range(0..10) {
        0..=5 => {
            let victim = Target::server(rng.gen_range(0..p.servers));
            let crash = if rng.gen_ratio(1, 3) { Fault::CrashTorn(victim.clone()) } else { Fault::Crash(victim.clone()) };
            s.at(start, crash);
            s.at(end, Fault::Restart(victim));
        }
        6..=7 => {
            let (a, b) = random_halves(rng, p.servers);
            s.at(start, Fault::Partition { a, b });
            s.at(end, Fault::HealAll);
        }
        _ => {
            s.at(start, Fault::Isolate(Target::Leader));
            s.at(end, Fault::HealAll);
        }
    })
}
