//! Raft membership changes while the cluster runs: remove a server from the voters, then add it
//! back (learner, then voter), sometimes under a partition or with a crash in the middle.
use nemesis::{random_halves, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    windows(rng, p, 2_000..7_000, 2_000..5_000, |rng, s, start, end| {
        let victim = rng.gen_range(0..p.servers);
        s.at(start, Fault::RemoveServer(Target::server(victim)));
        match rng.gen_range(0..4) {
            0 => {
                let (a, b) = random_halves(rng, p.servers);
                let mid = start + (end - start) / 2;
                s.at(mid, Fault::Partition { a, b });
                s.at(end, Fault::HealAll);
            }
            1 => {
                let other = (victim + 1) % p.servers;
                let mid = start + (end - start) / 3;
                s.at(mid, Fault::Crash(Target::server(other)));
                s.at(end, Fault::Restart(Target::server(other)));
            }
            _ => {}
        }
        s.at(end, Fault::AddServer(Target::server(victim)));
    })
}
