//! The nemesis: faults as data, scheduled over simulated time.
//!
//! A [`Schedule`] is a list of `(at, Fault)` pairs; the simulator applies each fault when the
//! simulated clock reaches `at`. Servers are named by index (`0..servers`), so a schedule is
//! independent of addresses and can be printed, diffed and replayed. Faults that depend on the
//! cluster's state at the time (e.g. "isolate whoever leads now") are resolved by the simulator
//! when applied, and the resolution is recorded in the run's fault log. Topology helpers
//! ([`topology`]) build the classic Jepsen partitions.

pub mod topology;

use std::fmt;
use std::time::Duration;

pub use topology::{bridge, majorities_ring, random_halves};

/// Which durable file a disk fault targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFile {
    /// The Raft log.
    RaftLog,
    /// The Raft snapshot.
    Snapshot,
}

/// One fault (or repair). Node arguments are server indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cut every link between the two sides (both directions).
    Partition { a: Vec<usize>, b: Vec<usize> },
    /// Drop messages from `from` to `to` only (asymmetric partition).
    PartitionOneWay { from: Vec<usize>, to: Vec<usize> },
    /// Cut exactly these server pairs (majorities-ring, bridge: shapes halves cannot express).
    Cut { pairs: Vec<(usize, usize)>, shape: &'static str },
    /// Cut the current leader off from every other server (resolved when applied; if no leader is
    /// known, nothing happens and the log says so).
    IsolateLeader,
    /// Restore every link: partitions, clogs, latency and loss.
    HealAll,
    /// Kill a server: its tasks stop and unsynced disk writes are lost.
    Crash(usize),
    /// Kill a server, keeping a torn part of its last unsynced write (a partial sector write).
    CrashTorn(usize),
    /// Start a crashed server again from its disk.
    Restart(usize),
    /// Freeze a server like SIGSTOP, as its peers see it: every message to and from it is held,
    /// then delivered in a burst on [`Fault::Resume`]. (turmoil cannot stop one host's clock, so
    /// the paused server's own timers still run; it wakes up still believing it leads.)
    Pause(usize),
    /// Release a paused server's held messages.
    Resume(usize),
    /// Hold (clog) the link between two servers: messages queue until [`Fault::Unclog`].
    Clog(usize, usize),
    /// Deliver a clogged link's queued messages and reopen it.
    Unclog(usize, usize),
    /// Set latency on every link of `node`: `min_ms` fixed plus up to `jitter_ms` more.
    SlowNode { node: usize, min_ms: u64, jitter_ms: u64 },
    /// Make every link of `node` flaky: each message may start a drop burst with this
    /// probability (per mille).
    LossyNode { node: usize, per_mille: u32 },
    /// Shift one server's wall clock by `offset_ms` (a skew, or a jump when applied abruptly).
    ClockSkew { node: usize, offset_ms: i64 },
    /// Arm a read error on the server's next disk read (hit when it next restarts).
    DiskReadError(usize),
    /// Remove a server from the Raft voters (through the leader's membership API, as an operator
    /// would with `DELETE /v1/operator/raft/peer`).
    RemoveServer(usize),
    /// Add a removed server back as a voter (learner first, then promoted).
    AddServer(usize),
    /// Flip one bit in a durable file of a server (silent media corruption), at a seed-chosen
    /// offset; checksums must catch it and the bad data must never be applied.
    BitFlip { node: usize, file: DiskFile, position_per_mille: u32 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |i: &usize| format!("n{}", i + 1);
        match self {
            Fault::Partition { a, b } => write!(f, "partition {a:?} | {b:?}"),
            Fault::PartitionOneWay { from, to } => write!(f, "partition one-way {from:?} -> {to:?}"),
            Fault::Cut { pairs, shape } => write!(f, "partition {shape}: cut {pairs:?}"),
            Fault::IsolateLeader => write!(f, "isolate leader"),
            Fault::HealAll => write!(f, "heal all"),
            Fault::Crash(i) => write!(f, "crash {}", n(i)),
            Fault::CrashTorn(i) => write!(f, "crash {} with a torn last write", n(i)),
            Fault::Restart(i) => write!(f, "restart {}", n(i)),
            Fault::Pause(i) => write!(f, "pause {}", n(i)),
            Fault::Resume(i) => write!(f, "resume {}", n(i)),
            Fault::Clog(a, b) => write!(f, "clog {}-{}", n(a), n(b)),
            Fault::Unclog(a, b) => write!(f, "unclog {}-{}", n(a), n(b)),
            Fault::SlowNode { node, min_ms, jitter_ms } => write!(f, "slow {} {min_ms}+{jitter_ms}ms", n(node)),
            Fault::LossyNode { node, per_mille } => write!(f, "lossy {} {per_mille}‰", n(node)),
            Fault::ClockSkew { node, offset_ms } => write!(f, "clock skew {} {offset_ms:+}ms", n(node)),
            Fault::DiskReadError(i) => write!(f, "disk read error armed on {}", n(i)),
            Fault::RemoveServer(i) => write!(f, "remove server {} from raft", n(i)),
            Fault::AddServer(i) => write!(f, "add server {} to raft", n(i)),
            Fault::BitFlip { node, file, position_per_mille } => {
                write!(f, "bit flip in {} {file:?} at {position_per_mille}‰", n(node))
            }
        }
    }
}

/// Faults in simulated-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    events: Vec<(Duration, Fault)>,
}

impl Schedule {
    /// An empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a fault at simulated time `at` (kept sorted; equal times keep insertion order).
    pub fn at(&mut self, at: Duration, fault: Fault) -> &mut Self {
        let pos = self.events.partition_point(|(t, _)| *t <= at);
        self.events.insert(pos, (at, fault));
        self
    }

    /// The scheduled faults in time order.
    pub fn events(&self) -> &[(Duration, Fault)] {
        &self.events
    }

    /// The time of the last fault (zero if none).
    pub fn end(&self) -> Duration {
        self.events.last().map(|(t, _)| *t).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_stays_sorted_and_stable() {
        let mut s = Schedule::new();
        s.at(Duration::from_secs(5), Fault::HealAll);
        s.at(Duration::from_secs(1), Fault::Crash(0));
        s.at(Duration::from_secs(5), Fault::Restart(0));
        let order: Vec<_> = s.events().iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(order, vec![Fault::Crash(0), Fault::HealAll, Fault::Restart(0)]);
        assert_eq!(s.end(), Duration::from_secs(5));
    }
}
