//! VOPR-style swarm testing: the seed chooses which fault kinds are enabled and how often each
//! fires, so across seeds the simulator explores many different mixes rather than one average.
use std::time::Duration;

use nemesis::hosts::server;
use nemesis::{majorities_ring, random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::Params;

const KINDS: [&str; 8] = ["partition", "isolate-leader", "crash", "pause", "clog", "slow", "lossy", "ring"];

/// The seed's choice: enabled kinds and their relative weights.
fn choose(rng: &mut ChaCha8Rng) -> Vec<(&'static str, u32)> {
    let mut chosen: Vec<(&'static str, u32)> = Vec::new();
    for kind in KINDS {
        if rng.gen_bool(0.5) {
            chosen.push((kind, rng.gen_range(1..=10)));
        }
    }
    if chosen.is_empty() {
        chosen.push((KINDS[rng.gen_range(0..KINDS.len())], 1));
    }
    chosen
}

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    let chosen = choose(rng);
    let mean_gap_ms: u64 = rng.gen_range(300..4_000);
    let total: u32 = chosen.iter().map(|(_, w)| w).sum();
    let mut s = Schedule::new();
    // Described from the draws themselves, so the report cannot disagree with the schedule.
    let parts: Vec<String> = chosen.iter().map(|(k, w)| format!("{k}x{w}")).collect();
    s.options = Some(format!("swarm faults: {} mean_gap={mean_gap_ms}ms", parts.join(" ")));
    let mut t = Duration::from_millis(rng.gen_range(500..2_000));
    while t < p.fault_phase {
        let mut pick = rng.gen_range(0..total);
        let kind = chosen.iter().find(|(_, w)| if pick < *w { true } else { pick -= w; false }).map(|(k, _)| *k).unwrap_or("partition");
        let len = Duration::from_millis(rng.gen_range(200..5_000));
        let end = (t + len).min(p.fault_phase);
        let node = rng.gen_range(0..p.servers);
        let host = Target::server(node);
        match kind {
            "partition" => {
                let (a, b) = random_halves(rng, p.servers);
                s.at(t, Fault::Partition { a, b });
                s.at(end, Fault::HealAll);
            }
            "isolate-leader" => {
                s.at(t, Fault::Isolate(Target::Leader));
                s.at(end, Fault::HealAll);
            }
            "crash" => {
                s.at(t, if rng.gen_bool(0.3) { Fault::CrashTorn(host.clone()) } else { Fault::Crash(host.clone()) });
                s.at(end, Fault::Restart(host));
            }
            "pause" => {
                s.at(t, Fault::Pause(host.clone()));
                s.at(end, Fault::Resume(host));
            }
            "clog" => {
                let other = (node + rng.gen_range(1..p.servers.max(2))) % p.servers;
                s.at(t, Fault::Clog(server(node), server(other)));
                s.at(end, Fault::Unclog(server(node), server(other)));
            }
            "slow" => {
                s.at(t, Fault::SlowNode { host, min_ms: rng.gen_range(10..200), jitter_ms: rng.gen_range(0..200) });
                s.at(end, Fault::HealAll);
            }
            "lossy" => {
                s.at(t, Fault::LossyNode { host, per_mille: rng.gen_range(5..60) });
                s.at(end, Fault::HealAll);
            }
            _ => {
                s.at(t, Fault::Cut { pairs: majorities_ring(rng, p.servers), shape: "majorities-ring" });
                s.at(end, Fault::HealAll);
            }
        }
        t = end + Duration::from_millis(rng.gen_range(mean_gap_ms / 2..mean_gap_ms * 3 / 2 + 1));
    }
    s
}
