//! Gossip under packet loss, without partitions (issue 10): every server drops 5% of the UDP
//! datagrams it sends, each independently, for the whole fault phase (gossip-only loss: Raft and
//! HTTP over TCP are untouched), while the KV register workload runs. No member is
//! ever cut off, crashed or paused, so SWIM's indirect probes and suspicion must keep every live
//! member alive: a `failed` verdict is a false failure (the no-false-failures oracle).
use std::time::Duration;

use nemesis::{Fault, Schedule, Target};
use rand_chacha::ChaCha8Rng;

use crate::Params;

/// Loss on every server's links, per mille (issue 10: "a configured loss rate of 5%").
pub const LOSS_PER_MILLE: u32 = 50;

pub fn build(_rng: &mut ChaCha8Rng, p: &Params) -> Schedule {
    let mut s = Schedule::new();
    for i in 0..p.servers {
        s.at(Duration::from_secs(1), Fault::UdpLoss { host: Target::server(i), per_mille: LOSS_PER_MILLE });
    }
    s.at(p.fault_phase, Fault::HealAll);
    s
}
