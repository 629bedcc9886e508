//! Dead-server cleanup: a server crashes and stays down until the final heal; on half the seeds
//! an operator force-leaves it once gossip has declared it failed. The leader's autopilot must
//! take it out of the Raft configuration (at once when it left, as a failed server otherwise); then,
//! as fault time allows, another server crashes and restarts in cycles, down long enough to be
//! declared failed, which autopilot must *not* remove: of two voters, removing one is removing a
//! majority. At the final heal the dead server restarts and the leader adds it back. Judged by the
//! KV register, the quorum floor and dead-server removal on the trace, and membership convergence
//! after the heal.
use std::time::Duration;

use nemesis::{Fault, Schedule, Target};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::Params;

/// When the first server dies, in ms.
const CRASH_AT_MS: std::ops::Range<u64> = 1_000..2_000;
/// How long after the crash the operator force-leaves it (gossip declares a member failed about
/// 5 s after its last answer), in ms.
const FORCE_LEAVE_AFTER_MS: std::ops::Range<u64> = 7_000..9_000;
/// When the second server's crash-restart cycles start, after the first crash, in ms: past the
/// dead-server bound (`checker::oracles::autopilot::DEAD_SERVER_BOUND_NS`, 15 s), so the dead
/// server is out of Raft by then.
const CYCLES_AFTER_MS: std::ops::Range<u64> = 15_500..16_500;
/// How long the second server stays down in one cycle, in ms: long enough for gossip to declare
/// it failed (about 5 s) and an autopilot pass (every 2 s) to see it so.
const DOWN_MS: std::ops::Range<u64> = 7_500..8_500;
/// How long it stays up before the next cycle, in ms. Right after a restart Raft reaches it at once
/// while gossip still calls it failed for a moment: an unguarded autopilot removes it then.
const UP_MS: std::ops::Range<u64> = 1_500..3_000;

pub fn build(rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    let mut s = Schedule::new();
    let ms = Duration::from_millis;
    let dead = rng.gen_range(0..p.servers);
    let crash_at = ms(rng.gen_range(CRASH_AT_MS));
    s.at(crash_at, Fault::Crash(Target::server(dead)));
    if rng.gen_bool(0.5) {
        s.at(crash_at + ms(rng.gen_range(FORCE_LEAVE_AFTER_MS)), Fault::ForceLeave(Target::server(dead)));
    }
    // Crash-restart cycles of a live server (a follower about half the time: a crashed leader of
    // two voters leaves no one to lead, and nothing to judge).
    let mut start = crash_at + ms(rng.gen_range(CYCLES_AFTER_MS));
    while p.servers > 1 {
        let second = (dead + rng.gen_range(1..p.servers)) % p.servers;
        let (down, up) = (ms(rng.gen_range(DOWN_MS)), ms(rng.gen_range(UP_MS)));
        if start + down > p.fault_phase {
            break;
        }
        s.at(start, Fault::Crash(Target::server(second)));
        s.at(start + down, Fault::Restart(Target::server(second)));
        start += down + up;
    }
    s
}
