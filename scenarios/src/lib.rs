//! Named simulation scenarios. Each is a short function, in its own file, that builds a nemesis
//! [`Schedule`] from the run's RNG; the simulator appends the final heal and the liveness phase to
//! every scenario.
//!
//! To add a scenario: write `fn(&mut ChaCha8Rng, &Params) -> Schedule` in a new file, declare
//! the module below, and add one line to [`REGISTRY`].

mod agent_restart;
mod bootstrap;
mod bridge;
mod client_agents;
mod clock_drift;
pub mod coordinates;
mod crash_restart;
mod dead_server_cleanup;
mod disk_corruption;
mod flapping_partitions;
mod gossip_keyring;
mod gossip_lossy;
mod gossip_partition;
mod group_commit;
mod health_flap;
mod leader_isolation;
mod leader_transfer;
mod lock_cli;
mod lock_contention;
mod majorities_ring;
mod membership_change;
mod one_way;
mod partition_heal;
mod pause_leader;
mod rolling_restart;
mod session_expiry;
mod slow_lossy;
mod snapshot_restore;
mod swarm;
mod swizzle_clog;
mod wan_federation;
mod wan_gossip;
pub mod windows;

use std::time::Duration;

use nemesis::Schedule;
use rand_chacha::ChaCha8Rng;

/// What a scenario may depend on.
#[derive(Clone, Debug)]
pub struct Params {
    /// Number of servers.
    pub servers: usize,
    /// Length of the fault (safety) phase.
    pub fault_phase: Duration,
}

/// Which workload the clients run (the simulator maps each to its `Workload` implementation and
/// the checker model that judges its history).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Reads, writes, CAS and deletes on a few KV keys, each checked as a linearizable register.
    KvRegister,
    /// Catalog registrations (service plus health check), deregistrations and
    /// `/v1/health/service` reads, each instance checked as a linearizable register.
    Catalog,
    /// Services registered, deregistered and TTL-checked through the agent API of chosen agents,
    /// judged by what each agent holds after its restarts and what the catalog shows after the
    /// heal.
    AgentServices,
    /// TTL sessions taking, renewing and releasing KV locks, each lock checked against the lock
    /// model (mutual exclusion, session-TTL safety).
    Locks,
    /// Transfers between KV accounts in `/v1/txn` transactions and reads of every balance in
    /// one; the total must never change.
    Bank,
    /// KV writes and reads as [`WorkloadKind::KvRegister`], plus a client that saves a snapshot
    /// early and restores it during the scenario's first partition, through the majority side;
    /// the restore is judged as a write of the archive to every key.
    SnapshotRestore,
    /// The KV register workload widened (issue 8): also `?stale` reads, `?recurse` prefix reads,
    /// prefix blocking queries and recursive deletes on a small key tree; prefix operations are
    /// judged per key they cover.
    KvWide,
    /// The KV register workload, plus a poll of every agent's gossip membership and the
    /// catalog's `serfHealth` after the heal, judged by the membership-convergence oracle.
    Gossip,
    /// The gossip workload with gossip encryption on every agent and a client that rotates the
    /// key mid-run (install, use, remove), judged by the membership-convergence oracle and by
    /// whether the rotation completes.
    GossipKeyring,
    /// `concord lock`'s recipe (a lock and a 2-place semaphore) run by every client with a
    /// scripted child; judged by whether displaced holders stop their children in time.
    LockCli,
    /// The gossip workload sent through client agents: each workload client talks only to a
    /// client agent of its own (which forwards to the servers); KV judged as a linearizable
    /// register, and the client agents polled with the servers for membership convergence.
    ClientAgents,
    /// The KV register workload, judged also by the autopilot oracles on the trace (the Raft
    /// configuration never shrinks below a quorum of the servers; a dead server leaves it within a
    /// bound) and by membership convergence after the heal.
    DeadServerCleanup,
    /// The KV register workload on a two-site network ([`coordinates`]), plus a poll after the
    /// heal of `/v1/coordinate/nodes` and of `/v1/catalog/nodes?near=<server>` for every server,
    /// judged by the coordinates oracle (estimates reflect the sites; `?near` lists its own site
    /// first).
    Coordinates,
    /// `concord watch`'s plan on one key (client `w1`), every delivery judged as a read of the
    /// key, beside KV register clients writing it.
    Watch,
    /// [`WorkloadKind::Gossip`] in a run whose only fault is packet loss: also judged by the
    /// no-false-failures oracle on the trace.
    GossipLossy,
    /// The KV register workload on servers that also run the WAN pool, plus a poll after the
    /// heal of every server's `/v1/agent/members?wan`, judged by the membership-convergence oracle.
    WanGossip,
    /// The KV register workload on two datacenters (`dc1`, `dc2`) joined by the WAN pool: keys
    /// belong to one datacenter, and each operation goes to a server of the key's datacenter or,
    /// with `?dc=`, to a server of the other; every (datacenter, key) is checked as a
    /// linearizable register. Half the clients register catalog instances the same way, each
    /// (datacenter, instance) a register too.
    WanFederation,
}

impl WorkloadKind {
    /// The name printed in the report.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::KvRegister => "kv-register",
            WorkloadKind::Catalog => "catalog-register",
            WorkloadKind::AgentServices => "agent-services",
            WorkloadKind::Locks => "locks",
            WorkloadKind::Bank => "txn-bank",
            WorkloadKind::SnapshotRestore => "snapshot-restore",
            WorkloadKind::KvWide => "kv-wide",
            WorkloadKind::Gossip => "gossip-membership",
            WorkloadKind::GossipKeyring => "gossip-keyring",
            WorkloadKind::LockCli => "lock-cli",
            WorkloadKind::ClientAgents => "client-agents",
            WorkloadKind::Watch => "watch",
            WorkloadKind::GossipLossy => "gossip-membership-lossy",
            WorkloadKind::DeadServerCleanup => "dead-server-cleanup",
            WorkloadKind::Coordinates => "coordinates",
            WorkloadKind::WanGossip => "wan-gossip-membership",
            WorkloadKind::WanFederation => "wan-federation-kv-catalog",
        }
    }

    /// How many datacenters the simulator builds for this workload: two for
    /// [`WorkloadKind::WanFederation`] (servers `s1..sN` in `dc1`, `sN+1..s2N` in `dc2`), one
    /// (`dc1`) for every other.
    pub fn datacenters(self) -> usize {
        match self {
            WorkloadKind::WanFederation => wan_federation::DATACENTERS,
            _ => 1,
        }
    }
}

const KV: WorkloadKind = WorkloadKind::KvRegister;
const CATALOG: WorkloadKind = WorkloadKind::Catalog;
const AGENT: WorkloadKind = WorkloadKind::AgentServices;
const LOCKS: WorkloadKind = WorkloadKind::Locks;
const BANK: WorkloadKind = WorkloadKind::Bank;
const SNAPSHOT: WorkloadKind = WorkloadKind::SnapshotRestore;
const KV_WIDE: WorkloadKind = WorkloadKind::KvWide;
const GOSSIP: WorkloadKind = WorkloadKind::Gossip;
const GOSSIP_KEYRING: WorkloadKind = WorkloadKind::GossipKeyring;
const LOCK_CLI: WorkloadKind = WorkloadKind::LockCli;
const CLIENT_AGENTS: WorkloadKind = WorkloadKind::ClientAgents;
const WATCH: WorkloadKind = WorkloadKind::Watch;
const GOSSIP_LOSSY: WorkloadKind = WorkloadKind::GossipLossy;
const DEAD_SERVER: WorkloadKind = WorkloadKind::DeadServerCleanup;
const COORDINATES: WorkloadKind = WorkloadKind::Coordinates;
const WAN_GOSSIP: WorkloadKind = WorkloadKind::WanGossip;
const WAN_FEDERATION: WorkloadKind = WorkloadKind::WanFederation;

/// A scenario: name, one-line description, schedule builder (which may describe what it chose
/// from the seed in [`Schedule::options`]), and the workload its clients run.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub build: fn(&mut ChaCha8Rng, &Params) -> Schedule,
    pub workload: WorkloadKind,
}

/// Every scenario, by name.
pub const REGISTRY: &[Scenario] = &[
    Scenario { name: "partition-heal", about: "random halves, then heal, repeatedly", build: partition_heal::build, workload: KV },
    Scenario { name: "leader-isolation", about: "cut the current leader off, then heal, repeatedly", build: leader_isolation::build, workload: KV },
    Scenario { name: "crash-restart", about: "kill a server (losing unsynced writes), then restart it", build: crash_restart::build, workload: KV },
    Scenario { name: "pause-leader", about: "freeze the current leader's traffic (SIGSTOP-like), then resume it", build: pause_leader::build, workload: KV },
    Scenario { name: "clock-drift", about: "drift clock rates within the lease's bound, then cut off the slow-clocked leader", build: clock_drift::build, workload: KV },
    Scenario { name: "disk-corruption", about: "torn writes, read errors at restart, a bit flip that must be refused", build: disk_corruption::build, workload: KV },
    Scenario { name: "leader-transfer", about: "operator leadership transfers, the old leader cut off or the target crashed mid-handover", build: leader_transfer::build, workload: KV },
    Scenario { name: "membership-change", about: "remove a server from raft and add it back, under faults", build: membership_change::build, workload: KV },
    Scenario { name: "swizzle-clog", about: "clog links one by one, then unclog in random order (FoundationDB)", build: swizzle_clog::build, workload: KV },
    Scenario { name: "rolling-restart", about: "restart every server in turn, as an upgrade would", build: rolling_restart::build, workload: KV },
    Scenario { name: "flapping-partitions", about: "short partitions in quick succession", build: flapping_partitions::build, workload: KV },
    Scenario { name: "majorities-ring", about: "every server sees a majority, no two the same (Jepsen)", build: majorities_ring::build, workload: KV },
    Scenario { name: "bridge", about: "two halves joined only through one server (Jepsen)", build: bridge::build, workload: KV },
    Scenario { name: "one-way", about: "asymmetric partitions: messages flow one way only", build: one_way::build, workload: KV },
    Scenario { name: "slow-lossy", about: "high latency, jitter and lossy links on random servers", build: slow_lossy::build, workload: KV },
    Scenario { name: "health-flap", about: "catalog registrations with flapping health checks under partitions, leader isolation and crashes", build: health_flap::build, workload: CATALOG },
    Scenario { name: "agent-restart", about: "services registered on agents through their API while agents crash (some torn) and restart, with partitions between", build: agent_restart::build, workload: AGENT },
    Scenario { name: "bootstrap", about: "partitions, crashes and a late server while the cluster forms; one cluster must form", build: bootstrap::build, workload: KV },
    Scenario { name: "lock-contention", about: "TTL sessions contend for KV locks (holders pausing past their TTL) under partitions, leader isolation and pauses", build: lock_contention::build, workload: LOCKS },
    Scenario { name: "session-expiry", about: "TTL sessions under drifting server clocks and leader changes (isolation, transfer)", build: session_expiry::build, workload: LOCKS },
    Scenario { name: "txn-bank", about: "transfers between accounts in /v1/txn transactions under partitions, leader isolation and crashes; the total never changes", build: health_flap::build, workload: BANK },
    Scenario { name: "snapshot-restore", about: "a snapshot saved early is restored during a partition through the majority side (sometimes tried on the minority first), then more faults; every server converges on it", build: snapshot_restore::build, workload: SNAPSHOT },
    Scenario { name: "kv-wide", about: "stale, prefix and prefix-blocking reads and recursive deletes on a key tree, under random-halves partitions", build: partition_heal::build, workload: KV_WIDE },
    Scenario { name: "gossip-lossy", about: "5% packet loss on every server's links and no partition: no live member may be declared failed", build: gossip_lossy::build, workload: GOSSIP_LOSSY },
    Scenario { name: "gossip-partition", about: "partitions long enough for gossip to declare members failed; after the heal all rejoin and serfHealth passes", build: gossip_partition::build, workload: GOSSIP },
    Scenario { name: "gossip-keyring", about: "every agent gossips encrypted; the key is rotated (install, use, remove) under partitions, lossy links and crashes; membership converges", build: gossip_keyring::build, workload: GOSSIP_KEYRING },
    Scenario { name: "lock-cli", about: "concord lock's recipe holds a lock and a semaphore around scripted children while holders' servers are cut off for seconds, isolated and paused", build: lock_cli::build, workload: LOCK_CLI },
    Scenario { name: "client-agents", about: "KV through client agents (one -retry-join each, servers found by gossip) while servers crash, the leader is isolated and halves are cut; all agents converge after the heal", build: client_agents::build, workload: CLIENT_AGENTS },
    Scenario { name: "watch", about: "concord watch's plan on a key through one server while others write it, under random-halves partitions; every delivery is a linearizable read", build: partition_heal::build, workload: WATCH },
    Scenario { name: "group-commit", about: "8-16 clients write at once so the leader batches writes into shared entries, while servers crash (sometimes a majority), the leader is isolated and halves are cut", build: group_commit::build, workload: KV },
    Scenario { name: "dead-server-cleanup", about: "a server dies until the final heal (force-left on half the seeds): autopilot removes it from raft, keeps a second failed server, and adds the dead one back when it returns", build: dead_server_cleanup::build, workload: DEAD_SERVER },
    Scenario { name: "coordinates", about: "two sites, fast links inside and slow ones across, with servers cut off now and then; after the heal RTT estimates and ?near reflect the sites", build: coordinates::build, workload: COORDINATES },
    Scenario { name: "wan-gossip", about: "servers also gossip in the WAN pool; one at a time is cut off or crashed long enough to be declared failed there; after the heal every server sees every server alive in the WAN pool", build: wan_gossip::build, workload: WAN_GOSSIP },
    Scenario { name: "wan-federation", about: "two datacenters joined by the WAN pool; KV and catalog registrations per datacenter sent directly or through the other with ?dc=, while servers of either are cut off or crashed and the WAN itself is cut", build: wan_federation::build, workload: WAN_FEDERATION },
    Scenario { name: "swarm", about: "seed-chosen mix of every fault kind at seed-chosen rates (VOPR-style)", build: swarm::build, workload: KV },
];

/// Looks a scenario up by name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    REGISTRY.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nemesis::Fault;
    use rand::SeedableRng;

    #[test]
    fn every_scenario_is_deterministic_and_ends_inside_the_fault_phase() {
        let p = Params { servers: 3, fault_phase: Duration::from_secs(30) };
        for sc in REGISTRY {
            for seed in 0..20 {
                let a = (sc.build)(&mut ChaCha8Rng::seed_from_u64(seed), &p);
                let b = (sc.build)(&mut ChaCha8Rng::seed_from_u64(seed), &p);
                assert_eq!(a, b, "{} must be a function of the seed", sc.name);
                assert!(!a.events().is_empty(), "{} seed {seed} schedules faults", sc.name);
                assert!(a.end() <= p.fault_phase, "{} ends within the fault phase", sc.name);
                for (_, f) in a.events() {
                    for host in f.named_hosts() {
                        let servers = p.servers * sc.workload.datacenters();
                        let in_range = nemesis::hosts::server_index(host).is_some_and(|i| i < servers);
                        assert!(in_range, "{} seed {seed}: {host} is not one of the {servers} servers in {f}", sc.name);
                    }
                }
            }
        }
    }

    #[test]
    fn crash_style_scenarios_restart_every_crashed_server() {
        let p = Params { servers: 3, fault_phase: Duration::from_secs(60) };
        for name in ["crash-restart", "rolling-restart", "disk-corruption", "leader-transfer", "health-flap", "agent-restart", "gossip-keyring"] {
            let sc = find(name).expect("registered");
            let s = (sc.build)(&mut ChaCha8Rng::seed_from_u64(3), &p);
            let crashes = s.events().iter().filter(|(_, f)| matches!(f, Fault::Crash(_) | Fault::CrashTorn(_))).count();
            let restarts = s.events().iter().filter(|(_, f)| matches!(f, Fault::Restart(_))).count();
            assert_eq!(crashes, restarts, "{name}");
        }
    }

    #[test]
    fn the_swarm_describes_exactly_the_kinds_it_schedules() {
        let p = Params { servers: 3, fault_phase: Duration::from_secs(30) };
        let kind = |f: &Fault| match f {
            Fault::Partition { .. } => Some("partition"),
            Fault::Isolate(_) => Some("isolate-leader"),
            Fault::Crash(_) | Fault::CrashTorn(_) => Some("crash"),
            Fault::Pause(_) => Some("pause"),
            Fault::Clog(..) => Some("clog"),
            Fault::SlowNode { .. } => Some("slow"),
            Fault::LossyNode { .. } => Some("lossy"),
            Fault::Cut { .. } => Some("ring"),
            _ => None, // repairs
        };
        let sc = find("swarm").expect("registered");
        for seed in 0..30 {
            let s = (sc.build)(&mut ChaCha8Rng::seed_from_u64(seed), &p);
            let options = s.options.clone().unwrap_or_else(|| panic!("seed {seed}: the swarm describes its options"));
            for (_, f) in s.events() {
                if let Some(k) = kind(f) {
                    assert!(options.contains(&format!(" {k}x")), "seed {seed}: {f} scheduled but {options:?} does not list {k}");
                }
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = REGISTRY.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
    }
}
