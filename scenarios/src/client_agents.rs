//! Client agents under server failures: every workload client talks only to its own client agent,
//! which found the servers through gossip and forwards each request to one of them. Servers crash
//! and restart (a client agent's server vanishes mid-request), the leader is isolated (its
//! followers answer "no leader" until a new one is elected) and random halves are cut; windows
//! sometimes outlast gossip's failure detection, so client agents also see servers fail and
//! return. Judged as the KV register and by membership convergence over servers and clients.
use nemesis::{random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 2_000..9_000, 1_000..4_000, |rng, s, start, end| match rng.gen_range(0..3) {
        0 => {
            let victim = Target::server(rng.gen_range(0..p.servers));
            s.at(start, Fault::Crash(victim.clone()));
            s.at(end, Fault::Restart(victim));
        }
        1 => {
            s.at(start, Fault::Isolate(Target::Leader));
            s.at(end, Fault::HealAll);
        }
        _ => {
            let (a, b) = random_halves(rng, p.servers);
            s.at(start, Fault::Partition { a, b });
            s.at(end, Fault::HealAll);
        }
    })
}
