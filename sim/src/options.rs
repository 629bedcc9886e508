//! Run options: what the command line fixes and what the seed chooses. Every option is printed in
//! the report so a run can be understood and replayed.

use std::fmt;
use std::time::Duration;

use node::agent::BugSwitches;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Environment variables that change what a seed does; the replay line carries them.
pub const REPLAY_ENV: [&str; 2] = ["CONCORD_SIM_TICK_MS", "CONCORD_SIM_NO_BUGGIFY"];

/// A deliberate bug to switch on (to prove the checkers catch it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bug {
    /// `?consistent` reads served from a follower's local state.
    StaleConsistentRead,
    /// Writes acknowledged before they commit.
    AckBeforeCommit,
    /// Raft log appends acknowledged without fsync.
    SkipFsync,
    /// The leader lease timed as if clocks never drift (caught by `clock-drift`, whose drift
    /// reaches openraft's timers too).
    LeaseIgnoresDrift,
    /// A leader handing over keeps serving lease reads until it sees the new leader (caught by
    /// `leader-transfer`).
    TransferKeepsLease,
    /// Raft votes acknowledged but kept in memory only, so a restarted server forgets its vote.
    VoteInMemory,
    /// After a restart the state machine reports one entry less than it restored, so that entry is
    /// applied twice.
    DoubleApply,
    /// Files replaced by rename without syncing the directory, so a crash can undo the rename
    /// (caught by `crash-restart`).
    NonDurableRename,
    /// A catalog re-registration whose check changed only its status is applied as if nothing
    /// changed, so health flips are lost (caught by `health-flap`).
    CheckStatusIgnored,
    /// Services and checks registered through the agent API kept in memory only, so a restarted
    /// agent forgets them (caught by `agent-restart`).
    LocalStateNotPersisted,
    /// Every other batch of applied changes drops the watches of the rows it changed without
    /// firing them, so a blocking query sleeps until its wait runs out (caught by the
    /// blocking-query latency oracle on `partition-heal`).
    LostWakeup,
    /// Servers stop waiting for `-bootstrap-expect` peers after 2 s and bootstrap with whoever
    /// they found, so servers cut off while the cluster forms start clusters of their own (caught
    /// by the Raft invariants on `bootstrap`).
    BootstrapTimeout,
    /// A lock release by the holder answers `true` but leaves the lock held (caught by the lock
    /// model on `lock-contention`).
    ReleaseKeepsLock,
    /// The leader's session TTL timer fires at TTL/2 instead of 2×TTL (caught by the session-TTL
    /// safety check on `session-expiry`).
    SessionTtlEarly,
    /// A new leader arms session TTL timers only for sessions created or renewed in its term, so
    /// a lock held by a client that stopped renewing before a leader change is never freed
    /// (caught by the session-TTL liveness oracle on `session-expiry`).
    SessionTtlForgotten,
    /// A `?recurse` or `?keys` read in the default mode is answered from the local state of whichever
    /// server it reached, as if `?stale`, skipping the leader (caught by the KV register model
    /// on `kv-wide`, which judges prefix reads per key).
    RecurseReadStale,
    /// A `/v1/txn` whose operation fails keeps the operations before it while answering 409
    /// (caught by the bank-transfer invariant on `txn-bank`).
    TxnPartialApply,
    /// A snapshot restore merges the archive into the state instead of replacing it, so keys
    /// written after the save survive it (caught by the restore projected onto each key on
    /// `snapshot-restore`).
    RestoreKeepsOldKeys,
    /// An agent the gossip pool declared failed never rejoins under a new generation, so after a
    /// partition heals the sides keep seeing each other failed (caught by the membership
    /// convergence oracle on `gossip-partition`).
    GossipNoRejoin,
    /// `concord lock`'s watcher ignores a change of holder and gives up only when its reads
    /// fail, so a holder whose session died during a short fault keeps running its child after
    /// another took the lock (caught by the holders-step-down oracle on `lock-cli`).
    LockWatchIgnoresHolder,
    /// User events told apart by name instead of ID, so a second event of a name is dropped as
    /// already seen (caught by the event-delivery oracle on `gossip-partition`).
    EventDedupByName,
    /// A client agent retries a request on the next server after any failure, even one that may
    /// have been applied (caught by the KV register model on `client-agents`).
    ClientRetriesUnknown,
    /// `concord watch`'s plan hands its handler the result before the change instead of the new
    /// one (caught by the KV register model on `watch`, which judges each delivery as a read).
    WatchDeliversPrevious,
    /// The key rotation switches the primary key (and removes the old one) right after
    /// installing the new key, without waiting until every agent holds it, so the agent that
    /// took the steps seals gossip with a key no other member has (caught by the
    /// membership-convergence oracle on `gossip-keyring`).
    KeyringUseBeforeInstall,
    /// Group commit answers each write in a batch with its neighbour's result, so a failed CAS
    /// is reported applied and an applied write failed (caught by the KV register model on
    /// `group-commit`).
    BatchResultsMisrouted,
    /// A read-index round answers its readers after the quorum check, without waiting for the
    /// state machine to apply the read index, so a new leader can answer before applying writes
    /// its predecessor acknowledged (caught by the KV register model on `group-commit`).
    ReadIndexSkipsApply,
    /// SWIM without suspicion or indirect probes, so a few lost packets get a live member declared
    /// failed (caught by the no-false-failures oracle on `gossip-lossy`).
    GossipHastyFailure,
    /// Autopilot removes every failed voter without raft-autopilot's majority guard, so the leader
    /// shrinks the Raft configuration below a quorum of the servers (caught by the quorum-floor
    /// oracle on `dead-server-cleanup`).
    AutopilotRemovesBelowQuorum,
    /// Every network-coordinate RTT sample counts as 1 ms whatever was measured, so every node
    /// looks equally near (caught by the coordinates oracle on `coordinates`).
    VivaldiIgnoresRtt,
    /// The WAN pool joins once and never reconnects: no Serf reconnect to failed members and no
    /// re-join when alone (flood joins still add servers missing from it), so a server cut off long enough to be declared failed stays apart
    /// after the heal (caught by the membership-convergence oracle on `wan-gossip`).
    WanNoReconnect,
    /// A restarted server opens its WAN pool's keyring from `-encrypt` again instead of its
    /// saved `remote.keyring`, so after a key rotation it cannot talk in the WAN pool.
    WanKeyringNotPersisted,
    /// A request whose `?dc=` names another datacenter is served in the datacenter of the server
    /// it reached, as if `?dc=` were absent, so a write "to dc2" sent through dc1 lands in dc1's
    /// store (caught by the KV register model per datacenter and key on `wan-federation`).
    DcForwardIgnoresDc,
}

impl Bug {
    /// The `--bug` spelling.
    pub fn flag(self) -> &'static str {
        match self {
            Bug::StaleConsistentRead => "stale-consistent-read",
            Bug::AckBeforeCommit => "ack-before-commit",
            Bug::SkipFsync => "skip-fsync",
            Bug::LeaseIgnoresDrift => "lease-ignores-drift",
            Bug::TransferKeepsLease => "transfer-keeps-lease",
            Bug::VoteInMemory => "vote-in-memory",
            Bug::DoubleApply => "double-apply",
            Bug::NonDurableRename => "non-durable-rename",
            Bug::CheckStatusIgnored => "check-status-ignored",
            Bug::LocalStateNotPersisted => "local-state-not-persisted",
            Bug::LostWakeup => "lost-wakeup",
            Bug::BootstrapTimeout => "bootstrap-timeout",
            Bug::ReleaseKeepsLock => "release-keeps-lock",
            Bug::SessionTtlEarly => "session-ttl-early",
            Bug::SessionTtlForgotten => "session-ttl-forgotten",
            Bug::RecurseReadStale => "recurse-read-stale",
            Bug::TxnPartialApply => "txn-partial-apply",
            Bug::RestoreKeepsOldKeys => "restore-keeps-old-keys",
            Bug::GossipNoRejoin => "gossip-no-rejoin",
            Bug::LockWatchIgnoresHolder => "lock-watch-ignores-holder",
            Bug::EventDedupByName => "event-dedup-by-name",
            Bug::ClientRetriesUnknown => "client-retries-unknown",
            Bug::WatchDeliversPrevious => "watch-delivers-previous",
            Bug::KeyringUseBeforeInstall => "keyring-use-before-install",
            Bug::BatchResultsMisrouted => "batch-results-misrouted",
            Bug::ReadIndexSkipsApply => "read-index-skips-apply",
            Bug::GossipHastyFailure => "gossip-hasty-failure",
            Bug::AutopilotRemovesBelowQuorum => "autopilot-removes-below-quorum",
            Bug::VivaldiIgnoresRtt => "vivaldi-ignores-rtt",
            Bug::WanNoReconnect => "wan-no-reconnect",
            Bug::WanKeyringNotPersisted => "wan-keyring-not-persisted",
            Bug::DcForwardIgnoresDc => "dc-forward-ignores-dc",
        }
    }

    /// The scenarios whose faults and workload can expose this bug, the one the bite test and the
    /// seed corpus use first (`sim --bug X` without `--scenario` runs it). A bug needs its
    /// trigger: a lost fsync or an unsynced rename needs a crash, a stale read needs a lagging
    /// server, a health flip needs the catalog workload.
    pub fn scenarios(self) -> &'static [&'static str] {
        /// Scenarios that cut servers off, so a follower lags or a leader is deposed.
        const CUTS: &[&str] = &[
            "partition-heal",
            "leader-isolation",
            "pause-leader",
            "flapping-partitions",
            "majorities-ring",
            "bridge",
            "one-way",
            "swizzle-clog",
            "swarm",
        ];
        match self {
            Bug::StaleConsistentRead | Bug::AckBeforeCommit => CUTS,
            Bug::SkipFsync => &["rolling-restart", "crash-restart", "disk-corruption", "swarm"],
            Bug::LeaseIgnoresDrift => &["clock-drift"],
            Bug::TransferKeepsLease => &["leader-transfer"],
            Bug::VoteInMemory | Bug::NonDurableRename => &["crash-restart", "rolling-restart", "disk-corruption", "swarm"],
            Bug::DoubleApply => &["rolling-restart", "crash-restart", "swarm"],
            Bug::CheckStatusIgnored => &["health-flap"],
            Bug::LocalStateNotPersisted => &["agent-restart"],
            Bug::LostWakeup => LOST_WAKEUP_SCENARIOS,
            Bug::BootstrapTimeout => &["bootstrap"],
            Bug::ReleaseKeepsLock => &["lock-contention"],
            Bug::SessionTtlEarly => &["session-expiry", "lock-contention"],
            Bug::SessionTtlForgotten => &["session-expiry", "lock-contention"],
            Bug::RecurseReadStale => &["kv-wide"],
            Bug::TxnPartialApply => &["txn-bank"],
            Bug::RestoreKeepsOldKeys => &["snapshot-restore"],
            Bug::GossipNoRejoin => &["gossip-partition"],
            Bug::LockWatchIgnoresHolder => &["lock-cli"],
            Bug::EventDedupByName => &["gossip-partition"],
            Bug::ClientRetriesUnknown => &["client-agents"],
            Bug::WatchDeliversPrevious => &["watch"],
            Bug::KeyringUseBeforeInstall => &["gossip-keyring"],
            Bug::BatchResultsMisrouted => &["group-commit"],
            Bug::ReadIndexSkipsApply => &["group-commit", "leader-isolation", "crash-restart"],
            Bug::GossipHastyFailure => &["gossip-lossy"],
            Bug::AutopilotRemovesBelowQuorum => &["dead-server-cleanup"],
            Bug::VivaldiIgnoresRtt => &["coordinates"],
            Bug::WanNoReconnect => &["wan-gossip"],
            Bug::WanKeyringNotPersisted => &["gossip-keyring"],
            Bug::DcForwardIgnoresDc => &["wan-federation"],
        }
    }

    /// Whether `scenario` is one of [`Self::scenarios`].
    pub fn shows_in(self, scenario: &str) -> bool {
        self.scenarios().contains(&scenario)
    }
}

/// Where a lost wake-up shows: KV-register scenarios with quiet stretches, where the latency
/// oracle judges blocking reads (it excuses every read a fault came near). Each caught it within
/// 20 seeds when the bug was added; partition-heal and rolling-restart at seed 1.
const LOST_WAKEUP_SCENARIOS: &[&str] = &["partition-heal", "rolling-restart", "crash-restart", "leader-isolation", "membership-change"];

/// Everything that defines a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub seed: u64,
    pub scenario: String,
    pub servers: usize,
    pub bugs: Vec<Bug>,
    /// Keep and print the per-event trace.
    pub trace: bool,
    // Chosen by the seed:
    pub clients: usize,
    pub keys: usize,
    pub fault_phase: Duration,
    pub liveness_bound: Duration,
    pub latency_max: Duration,
    pub snapshot_threshold: u64,
    /// Simulation step: every host runs this much simulated time per step. Coarser steps are
    /// faster (the per-step cost of turmoil dominates) but deliver messages in coarser batches.
    pub tick: Duration,
}

impl RunOptions {
    /// Derives the seed-chosen options. The derivation uses its own RNG stream so adding a
    /// command-line flag never changes what a seed means.
    pub fn derive(seed: u64, scenario: &str, servers: usize, bugs: Vec<Bug>, trace: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6f70_7469_6f6e_7321);
        let mut options = Self {
            seed,
            scenario: scenario.to_string(),
            servers,
            bugs,
            trace,
            clients: rng.gen_range(2..=4),
            keys: rng.gen_range(2..=4),
            fault_phase: Duration::from_secs(rng.gen_range(20..=40)),
            liveness_bound: Duration::from_secs(30),
            latency_max: Duration::from_millis(rng.gen_range(2..=25)),
            snapshot_threshold: [64, 256, 8192][rng.gen_range(0..3)],
            tick: Duration::from_millis(match std::env::var("CONCORD_SIM_TICK_MS").ok().and_then(|v| v.parse().ok()) {
                Some(ms) => ms,
                // Mostly coarse steps (fast), sometimes fine ones (more interleavings).
                None => [1, 2, 2, 5, 5, 5, 10, 10, 10, 10][rng.gen_range(0..10)],
            }),
        };
        // Drawn last, so the other scenarios' options stay what their seeds always meant.
        if scenario == "group-commit" {
            // Enough writers at once that the leader batches them (server::group_commit).
            options.clients = rng.gen_range(8..=16);
        }
        if scenario == "wan-gossip" {
            // The WAN pool declares a member failed only after 30 s of suspicion: fault windows
            // must outlast that (see scenarios::wan_gossip).
            options.fault_phase = Duration::from_secs(rng.gen_range(90..=120));
        }
        if scenario == "wan-federation" {
            // Room for a WAN cut past the WAN pool's failure detection, then short windows (see
            // scenarios::wan_federation).
            options.fault_phase = Duration::from_secs(rng.gen_range(90..=120));
        }
        options
    }

    /// The agent bug switches for this run.
    pub fn bug_switches(&self) -> BugSwitches {
        BugSwitches {
            stale_consistent_read: self.bugs.contains(&Bug::StaleConsistentRead),
            ack_before_commit: self.bugs.contains(&Bug::AckBeforeCommit),
            skip_log_fsync: self.bugs.contains(&Bug::SkipFsync),
            lease_ignores_drift: self.bugs.contains(&Bug::LeaseIgnoresDrift),
            transfer_keeps_lease: self.bugs.contains(&Bug::TransferKeepsLease),
            vote_in_memory: self.bugs.contains(&Bug::VoteInMemory),
            double_apply: self.bugs.contains(&Bug::DoubleApply),
            check_status_ignored: self.bugs.contains(&Bug::CheckStatusIgnored),
            non_durable_rename: self.bugs.contains(&Bug::NonDurableRename),
            local_state_not_persisted: self.bugs.contains(&Bug::LocalStateNotPersisted),
            lost_wakeup: self.bugs.contains(&Bug::LostWakeup),
            bootstrap_timeout: self.bugs.contains(&Bug::BootstrapTimeout),
            gossip_no_rejoin: self.bugs.contains(&Bug::GossipNoRejoin),
            event_dedup_by_name: self.bugs.contains(&Bug::EventDedupByName),
            client_retries_unknown: self.bugs.contains(&Bug::ClientRetriesUnknown),
            batch_results_misrouted: self.bugs.contains(&Bug::BatchResultsMisrouted),
            read_index_skips_apply: self.bugs.contains(&Bug::ReadIndexSkipsApply),
            gossip_hasty_failure: self.bugs.contains(&Bug::GossipHastyFailure),
            autopilot_removes_below_quorum: self.bugs.contains(&Bug::AutopilotRemovesBelowQuorum),
            release_keeps_lock: self.bugs.contains(&Bug::ReleaseKeepsLock),
            session_ttl_early: self.bugs.contains(&Bug::SessionTtlEarly),
            session_ttl_forgotten: self.bugs.contains(&Bug::SessionTtlForgotten),
            recurse_read_stale: self.bugs.contains(&Bug::RecurseReadStale),
            txn_partial_apply: self.bugs.contains(&Bug::TxnPartialApply),
            restore_keeps_old_keys: self.bugs.contains(&Bug::RestoreKeepsOldKeys),
            vivaldi_ignores_rtt: self.bugs.contains(&Bug::VivaldiIgnoresRtt),
            wan_no_reconnect: self.bugs.contains(&Bug::WanNoReconnect),
            wan_keyring_not_persisted: self.bugs.contains(&Bug::WanKeyringNotPersisted),
            dc_forward_ignores_dc: self.bugs.contains(&Bug::DcForwardIgnoresDc),
        }
    }

    /// The command line that replays this run, with the environment settings that change a run
    /// (`CONCORD_SIM_TICK_MS`, `CONCORD_SIM_NO_BUGGIFY`) in front when they are set.
    pub fn replay_command(&self) -> String {
        let mut cmd = String::new();
        for var in REPLAY_ENV {
            if let Some(v) = std::env::var_os(var) {
                cmd.push_str(&format!("{var}={} ", v.to_string_lossy()));
            }
        }
        cmd.push_str(&format!(
            "cargo run --release -p sim -- --seed {} --scenario {} --servers {}",
            self.seed, self.scenario, self.servers
        ));
        for b in &self.bugs {
            cmd.push_str(&format!(" --bug {}", b.flag()));
        }
        cmd
    }
}

impl fmt::Display for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "servers={} clients={} keys={} fault_phase={}s liveness_bound={}s latency=1..{}ms snapshot_threshold={} tick={}ms",
            self.servers,
            self.clients,
            self.keys,
            self.fault_phase.as_secs(),
            self.liveness_bound.as_secs(),
            self.latency_max.as_millis(),
            self.snapshot_threshold,
            self.tick.as_millis()
        )?;
        if !self.bugs.is_empty() {
            let bugs: Vec<&str> = self.bugs.iter().map(|b| b.flag()).collect();
            write!(f, " bugs={}", bugs.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn every_bug_names_registered_scenarios_that_can_show_it() {
        for bug in Bug::value_variants() {
            assert!(!bug.scenarios().is_empty(), "{} names no scenario", bug.flag());
            for name in bug.scenarios() {
                assert!(scenarios::find(name).is_some(), "{} names unknown scenario {name}", bug.flag());
            }
        }
        assert!(Bug::SkipFsync.shows_in("rolling-restart") && !Bug::SkipFsync.shows_in("partition-heal"));
    }
}
