//! Disk faults: crashes that tear the last write, read errors at restart, and (once, on one
//! server) a bit flip in its Raft log or snapshot while it is down. Torn tails must be cut, read
//! errors retried, and a flipped bit detected by its checksum: that server must never apply the
//! corrupt data; it moves its storage aside and rejoins under a new Raft identity, recovering its
//! state from its peers (the liveness phase waits for it).
use nemesis::{DiskFile, Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::windows::windows;
use crate::Params;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    let flip_victim = rng.gen_range(0..p.servers);
    let mut flipped = false;
    windows(rng, p, 1_000..4_000, 1_000..3_000, |rng, s, start, end| {
        let index = rng.gen_range(0..p.servers);
        let victim = Target::server(index);
        match rng.gen_range(0..10) {
            0..=4 => {
                s.at(start, Fault::CrashTorn(victim.clone()));
            }
            5..=7 => {
                s.at(start, Fault::Crash(victim.clone()));
                s.at(start, Fault::DiskReadError(victim.clone()));
            }
            _ if !flipped && index == flip_victim => {
                flipped = true;
                let file = if rng.gen_bool(0.5) { DiskFile::RaftLog } else { DiskFile::Snapshot };
                s.at(start, Fault::Crash(victim.clone()));
                s.at(start, Fault::BitFlip { host: victim.clone(), file, position_per_mille: rng.gen_range(0..1000) });
            }
            _ => {
                s.at(start, Fault::CrashTorn(victim.clone()));
            }
        }
        s.at(end, Fault::Restart(victim));
    })
}
