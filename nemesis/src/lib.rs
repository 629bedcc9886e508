//! The nemesis: faults as data, scheduled over simulated time.
//!
//! A [`Schedule`] is a list of `(at, Fault)` pairs; the simulator applies each fault when the
//! simulated clock reaches `at`. Hosts are named by role ([`hosts`]: servers `s1`, `s2`…), and a
//! fault addresses a host by name or by role ([`Target`]), so a schedule is independent of
//! addresses and can be printed, diffed and replayed. Targets that depend on the cluster's state
//! at the time ([`Target::Leader`], [`Target::Any`]) are resolved by the simulator when applied,
//! and the resolution is recorded in the run's fault log under the host's name. Topology helpers
//! ([`topology`]) build the classic Jepsen partitions.

pub mod hosts;
pub mod topology;

use std::fmt;
use std::time::Duration;

pub use hosts::{Host, Role, Target};
pub use topology::{bridge, majorities_ring, random_halves};

/// Which durable file a disk fault targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFile {
    /// The Raft log.
    RaftLog,
    /// The Raft snapshot.
    Snapshot,
}

/// A clock rate in parts per million of real time: [`RATE_REAL`] runs at real speed, 1_050_000
/// runs 5% fast.
pub type RatePpm = u32;

/// The rate of a clock that keeps real time.
pub const RATE_REAL: RatePpm = 1_000_000;

/// One fault (or repair). Hosts are named ([`hosts`]) or resolved when applied ([`Target`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cut every link between the two sides (both directions).
    Partition { a: Vec<Host>, b: Vec<Host> },
    /// Drop messages from `from` to `to` only (asymmetric partition).
    PartitionOneWay { from: Vec<Host>, to: Vec<Host> },
    /// Cut exactly these host pairs (majorities-ring, bridge: shapes halves cannot express).
    Cut { pairs: Vec<(Host, Host)>, shape: &'static str },
    /// Cut a server off from every other server (`Isolate(Target::Leader)`: whoever leads now;
    /// if no leader is known, nothing happens and the log says so).
    Isolate(Target),
    /// Restore every link: partitions, clogs, latency and loss.
    HealAll,
    /// Kill a server: its tasks stop and unsynced disk writes are lost.
    Crash(Target),
    /// Kill a server, keeping a torn part of its last unsynced write (a partial sector write).
    CrashTorn(Target),
    /// Start a crashed server again from its disk.
    Restart(Target),
    /// Freeze a server like SIGSTOP, as its peers see it: every message to and from it is held,
    /// then delivered in a burst on [`Fault::Resume`]. (turmoil cannot stop one host's clock, so
    /// the paused server's own timers still run; it wakes up still believing it leads.)
    Pause(Target),
    /// Release a paused server's held messages.
    Resume(Target),
    /// Freeze workload client `i` (host `w{i+1}`, [`hosts::workload`]) as its servers see it, like
    /// a SIGSTOPped `concord lock`: its messages to and from every server are held, then
    /// delivered on [`Fault::ResumeClient`]. A run with fewer clients skips it.
    PauseClient(usize),
    /// Release a paused client's held messages.
    ResumeClient(usize),
    /// Hold (clog) the link between two hosts: messages queue until [`Fault::Unclog`].
    Clog(Host, Host),
    /// Deliver a clogged link's queued messages and reopen it.
    Unclog(Host, Host),
    /// Set latency on every link of `host`: `min_ms` fixed plus up to `jitter_ms` more.
    SlowNode { host: Target, min_ms: u64, jitter_ms: u64 },
    /// Set the latency of every link between a host of `a` and a host of `b` (`a == b`: every
    /// link within the group): `min_ms` fixed plus up to `jitter_ms` more, one way. Geography, not
    /// a fault: [`Fault::HealAll`] keeps it (it restores only what other faults degraded), so a
    /// run can judge network coordinates after the heal.
    LinkLatency { a: Vec<Host>, b: Vec<Host>, min_ms: u64, jitter_ms: u64 },
    /// Make every link of `host` flaky: each message may start a drop burst with this
    /// probability (per mille).
    LossyNode { host: Target, per_mille: u32 },
    /// Gossip-only packet loss: `host` drops this share (per mille) of the UDP datagrams it
    /// sends, each independently; TCP (Raft, RPC, HTTP) is untouched.
    UdpLoss { host: Target, per_mille: u32 },
    /// Set the rate of a server's clock ([`RATE_REAL`] = real time). The clock stays continuous
    /// at the change; leases and TTLs time themselves with it.
    ClockDrift { host: Target, rate_ppm: RatePpm },
    /// Arm a read error on the server's next disk read (hit when it next restarts).
    DiskReadError(Target),
    /// Remove a server from the Raft voters (through the leader's membership API, as an operator
    /// would with `DELETE /v1/operator/raft/peer`).
    RemoveServer(Target),
    /// Add a removed server back as a voter (learner first, then promoted).
    AddServer(Target),
    /// Force a (crashed) server's gossip member to leave, as an operator would with `consul
    /// force-leave NODE` through a live agent; the leader's autopilot then drops it from Raft.
    ForceLeave(Target),
    /// Hand leadership to this server (as an operator would with `consul operator raft
    /// transfer-leader -id=…`); skipped if it already leads or no leader is known.
    TransferLeader(Target),
    /// Flip one bit in a durable file of a server (silent media corruption), at a seed-chosen
    /// offset; checksums must catch it and the bad data must never be applied.
    BitFlip { host: Target, file: DiskFile, position_per_mille: u32 },
}

impl Fault {
    /// Every host the fault names (not those resolved when it applies). Exhaustive on purpose: a
    /// new fault kind must say which hosts it names, so range checks cover it.
    pub fn named_hosts(&self) -> Vec<&str> {
        match self {
            Fault::Partition { a, b } => a.iter().chain(b).map(String::as_str).collect(),
            Fault::PartitionOneWay { from, to } => from.iter().chain(to).map(String::as_str).collect(),
            Fault::LinkLatency { a, b, .. } => a.iter().chain(b).map(String::as_str).collect(),
            Fault::Cut { pairs, .. } => pairs.iter().flat_map(|(x, y)| [x.as_str(), y.as_str()]).collect(),
            Fault::Clog(x, y) | Fault::Unclog(x, y) => vec![x.as_str(), y.as_str()],
            // Clients are not servers: range checks over servers do not apply.
            Fault::HealAll | Fault::PauseClient(_) | Fault::ResumeClient(_) => vec![],
            Fault::Isolate(h)
            | Fault::Crash(h)
            | Fault::CrashTorn(h)
            | Fault::Restart(h)
            | Fault::Pause(h)
            | Fault::Resume(h)
            | Fault::DiskReadError(h)
            | Fault::RemoveServer(h)
            | Fault::AddServer(h)
            | Fault::ForceLeave(h)
            | Fault::TransferLeader(h)
            | Fault::SlowNode { host: h, .. }
            | Fault::LossyNode { host: h, .. }
            | Fault::UdpLoss { host: h, .. }
            | Fault::ClockDrift { host: h, .. }
            | Fault::BitFlip { host: h, .. } => h.host().into_iter().collect(),
        }
    }
}

fn list(hosts: &[Host]) -> String {
    format!("[{}]", hosts.join(", "))
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { a, b } => write!(f, "partition {} | {}", list(a), list(b)),
            Fault::PartitionOneWay { from, to } => write!(f, "partition one-way {} -> {}", list(from), list(to)),
            Fault::Cut { pairs, shape } => {
                let cut: Vec<String> = pairs.iter().map(|(x, y)| format!("{x}-{y}")).collect();
                write!(f, "partition {shape}: cut [{}]", cut.join(", "))
            }
            Fault::Isolate(Target::Leader) => write!(f, "isolate leader"),
            Fault::Isolate(t) => write!(f, "isolate {t}"),
            Fault::HealAll => write!(f, "heal all"),
            Fault::Crash(t) => write!(f, "crash {t}"),
            Fault::CrashTorn(t) => write!(f, "crash {t} with a torn last write"),
            Fault::Restart(t) => write!(f, "restart {t}"),
            Fault::Pause(t) => write!(f, "pause {t}"),
            Fault::Resume(t) => write!(f, "resume {t}"),
            Fault::PauseClient(i) => write!(f, "pause client {}", hosts::workload(*i)),
            Fault::ResumeClient(i) => write!(f, "resume client {}", hosts::workload(*i)),
            Fault::Clog(a, b) => write!(f, "clog {a}-{b}"),
            Fault::Unclog(a, b) => write!(f, "unclog {a}-{b}"),
            Fault::SlowNode { host, min_ms, jitter_ms } => write!(f, "slow {host} {min_ms}+{jitter_ms}ms"),
            Fault::LinkLatency { a, b, min_ms, jitter_ms } => write!(f, "latency {} <-> {} {min_ms}+{jitter_ms}ms", list(a), list(b)),
            Fault::LossyNode { host, per_mille } => write!(f, "lossy {host} {per_mille}‰"),
            Fault::UdpLoss { host, per_mille } => write!(f, "udp loss {host} {per_mille}‰"),
            Fault::ClockDrift { host, rate_ppm } => {
                let pct = (f64::from(*rate_ppm) - f64::from(RATE_REAL)) / 1e4;
                write!(f, "clock drift {host} rate {pct:+.2}%")
            }
            Fault::DiskReadError(t) => write!(f, "disk read error armed on {t}"),
            Fault::RemoveServer(t) => write!(f, "remove server {t} from raft"),
            Fault::AddServer(t) => write!(f, "add server {t} to raft"),
            Fault::ForceLeave(t) => write!(f, "force-leave {t}"),
            Fault::TransferLeader(t) => write!(f, "transfer leadership to {t}"),
            Fault::BitFlip { host, file, position_per_mille } => {
                write!(f, "bit flip in {host} {file:?} at {position_per_mille}‰")
            }
        }
    }
}

/// Faults in simulated-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    events: Vec<(Duration, Fault)>,
    /// What the builder chose from the seed, in one line, when that is not obvious from the
    /// faults (the swarm's enabled kinds and weights); printed in the report.
    pub options: Option<String>,
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
        s.at(Duration::from_secs(1), Fault::Crash(Target::server(0)));
        s.at(Duration::from_secs(5), Fault::Restart(Target::server(0)));
        let order: Vec<_> = s.events().iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(order, vec![Fault::Crash(Target::server(0)), Fault::HealAll, Fault::Restart(Target::server(0))]);
        assert_eq!(s.end(), Duration::from_secs(5));
    }

    #[test]
    fn faults_print_host_names() {
        let f = Fault::Partition { a: hosts::servers(1), b: vec!["s2".into(), "s3".into()] };
        assert_eq!(f.to_string(), "partition [s1] | [s2, s3]");
        assert_eq!(Fault::Crash(Target::server(1)).to_string(), "crash s2");
        assert_eq!(Fault::ClockDrift { host: Target::Leader, rate_ppm: 1_050_000 }.to_string(), "clock drift the leader rate +5.00%");
        assert_eq!(f.named_hosts(), vec!["s1", "s2", "s3"]);
    }
}
