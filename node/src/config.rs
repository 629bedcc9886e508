//! Agent configuration: what `concord agent` flags produce and what the simulator builds directly.
//!
//! Defaults follow Consul: ports 8300 (server RPC), 8301/8302 (Serf LAN/WAN), 8500 (HTTP), 8600
//! (DNS); datacenter `dc1`; DNS domain `consul.`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Consul's default ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ports {
    pub http: u16,
    pub dns: u16,
    pub server: u16,
    pub serf_lan: u16,
    pub serf_wan: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self { http: 8500, dns: 8600, server: 8300, serf_lan: 8301, serf_wan: 8302 }
    }
}

/// Raft timing, in milliseconds. Consul's defaults are tuned for WANs (raft_multiplier 5); ours
/// match Consul's "performance.raft_multiplier = 1" production recommendation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many applied entries (Consul `raft_snapshot_threshold`, 8192).
    pub snapshot_threshold: u64,
    /// Entries kept in the log behind a snapshot, for slow followers (Consul `raft_trailing_logs`).
    pub trailing_logs: u64,
    /// How long KV delete tombstones are kept before the leader reaps them, in ms (Consul
    /// `tombstone_ttl`, 15 min). Must exceed the longest blocking-query wait (10 min).
    pub tombstone_ttl_ms: u64,
    /// Autopilot's dead-server cleanup (Consul `autopilot.cleanup_dead_servers`, on by default;
    /// see [`crate::server::autopilot`]). The simulator turns it on only where a scenario judges it.
    pub cleanup_dead_servers: bool,
}

impl Default for RaftTiming {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            snapshot_threshold: 8192,
            trailing_logs: 1024,
            tombstone_ttl_ms: 15 * 60 * 1000,
            cleanup_dead_servers: true,
        }
    }
}

/// The DNS interface's settings (Consul's `domain`, `recursors` and `dns_config` block; see
/// Consul's "DNS interface" and agent configuration docs). Defaults are Consul's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// The zone answered authoritatively, lowercase with a trailing dot (Consul `domain`, `consul.`).
    pub domain: String,
    /// TTL of node answers, in ms; DNS carries whole seconds (Consul `dns_config.node_ttl`, 0).
    pub node_ttl_ms: u64,
    /// TTL of service answers, in ms (Consul `dns_config.service_ttl`, 0).
    pub service_ttl_ms: u64,
    /// Answer only instances whose checks all pass; by default warning ones are included too
    /// (Consul `dns_config.only_passing`, false). Critical instances are never answered.
    pub only_passing: bool,
    /// Set TC when answers were dropped to fit a UDP reply, so clients retry over TCP (Consul
    /// `dns_config.enable_truncate`, false: Consul silently answers fewer records, #375).
    pub enable_truncate: bool,
    /// At most this many answers in a UDP reply to a client without EDNS0 (Consul
    /// `dns_config.udp_answer_limit`, 3; Consul never sends more than 8 there).
    pub udp_answer_limit: usize,
    /// Upstream resolvers for names outside `domain`, tried in order (Consul `recursors`, none).
    pub recursors: Vec<std::net::SocketAddr>,
    /// How long one recursor gets to answer before the next is tried, in ms (Consul
    /// `dns_config.recursor_timeout`, 2 s).
    pub recursor_timeout_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            domain: "consul.".to_string(),
            node_ttl_ms: 0,
            service_ttl_ms: 0,
            only_passing: false,
            enable_truncate: false,
            udp_answer_limit: 3,
            recursors: Vec::new(),
            recursor_timeout_ms: 2000,
        }
    }
}

/// Deliberate bugs, for proving the simulator's checkers bite. Never set by the `concord` binary's
/// documented flags; the simulator sets them with `--bug`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BugSwitches {
    /// Serve `?consistent` reads from a follower's local state instead of the leader.
    pub stale_consistent_read: bool,
    /// Acknowledge a write as soon as the leader proposes it, before it commits.
    pub ack_before_commit: bool,
    /// Acknowledge Raft log appends without fsync.
    pub skip_log_fsync: bool,
    /// Time the leader lease (and the quorum-contact step-down) as if clocks never drift: the
    /// maximum plus the minimum election timeout, when no follower could elect anyone else.
    pub lease_ignores_drift: bool,
    /// While handing leadership over, keep acting as leader (reporting itself, serving lease
    /// reads) until the new leader is seen ("it is still my term"), though heartbeats have
    /// stopped and the target may already lead.
    pub transfer_keeps_lease: bool,
    /// Acknowledge a saved Raft vote without writing it (kept in memory only), so a restarted
    /// server forgets its term and vote.
    pub vote_in_memory: bool,
    /// After restoring its snapshot at index `N`, report the state machine's last-applied index
    /// as `N - 1`, so openraft applies entry `N` a second time.
    pub double_apply: bool,
    /// Replace files (vote, log compaction, snapshot, identity, format marker) without syncing the
    /// directory after the rename, so a crash can undo the rename or the file's creation.
    pub non_durable_rename: bool,
    /// Apply a catalog re-registration whose check differs from the stored one only in its status
    /// as if nothing changed (a definition comparison that forgot the status), so health flips
    /// are lost while the service row moves on.
    pub check_status_ignored: bool,
    /// A lock release by the holder sets the value and answers `true` but leaves the session
    /// holding the lock (caught by the lock model: a free lock refuses an acquire).
    pub release_keeps_lock: bool,
    /// A transaction whose op fails keeps the ops before it: `/v1/txn` stops at the first failing
    /// operation and commits the ones before it instead of rolling the whole transaction back,
    /// while still answering 409 as if nothing had been applied (caught by the bank-transfer
    /// invariant: money appears or disappears).
    pub txn_partial_apply: bool,
    /// Every network-coordinate RTT sample counts as 1 ms whatever was measured, so Vivaldi
    /// places every node equally near (caught by the network-coordinates oracle: nodes across the
    /// slow link look as near as those beside them).
    pub vivaldi_ignores_rtt: bool,
    /// A snapshot restore merges the archive into the state instead of replacing it: KV rows the
    /// archive does not hold survive the restore (caught by the snapshot-restore oracle: a key
    /// written after the save still reads its value after an acknowledged restore).
    pub restore_keeps_old_keys: bool,
    /// The leader's session TTL timer fires after TTL/2 instead of Consul's 2×TTL, invalidating
    /// sessions that were renewed in time (caught by the session-TTL safety check).
    pub session_ttl_early: bool,
    /// A new leader arms TTL timers only for sessions created or renewed in its term, so a
    /// session abandoned before the leader change is never invalidated and its locks are never
    /// freed (caught by the session-TTL liveness oracle).
    pub session_ttl_forgotten: bool,
    /// A `?recurse` or `?keys` read in the default mode is served from the local state of the server it
    /// reached, as if `?stale`, instead of by the leader (caught by the KV model on kv-wide).
    pub recurse_read_stale: bool,
    /// Keep services and checks registered through the agent API in memory only (skip writing
    /// `local-services.json` / `local-checks.json`), so a restarted agent forgets them and its
    /// first full anti-entropy sync removes them from the catalog.
    pub local_state_not_persisted: bool,
    /// On every other applied batch, take the watches of the changed rows out of the watch set
    /// without firing them (a wake-up pass that forgot to notify what it removed), so a blocking
    /// query on such a row sleeps until its `wait` runs out.
    pub lost_wakeup: bool,
    /// Stop waiting for `-bootstrap-expect` servers after a few seconds and bootstrap Raft with
    /// whoever has been found (a "don't hang forever" convenience), so servers cut off from each
    /// other while the cluster forms each start a cluster of their own.
    pub bootstrap_timeout: bool,
    /// An agent the gossip pool declared failed (e.g. during a partition) never rejoins under a
    /// new generation, so after the partition heals the two sides keep seeing each other failed
    /// (caught by the membership-convergence oracle of `gossip-partition`).
    pub gossip_no_rejoin: bool,
    /// User events are de-duplicated by name instead of ID, so a second event of a name is
    /// dropped everywhere as already seen (caught by the event-delivery oracle of
    /// `gossip-partition`).
    pub event_dedup_by_name: bool,
    /// A client agent retries a request on the next server after *any* failure, including a
    /// timeout or an "outcome unknown" answer, so a write that was applied may be applied again
    /// and answered with the second attempt's result (caught by the KV register model on
    /// `client-agents`).
    pub client_retries_unknown: bool,
    /// Group commit answers each write in a batch with its neighbour's result (one place off),
    /// so a CAS that failed is told it succeeded and the other way round (caught by the KV
    /// register model on `group-commit`).
    pub batch_results_misrouted: bool,
    /// A read-index round answers its readers after the quorum check, without waiting for the
    /// state machine to apply the read index, so a new leader can answer before applying writes
    /// its predecessor acknowledged (caught by the KV register model on `group-commit`).
    pub read_index_skips_apply: bool,
    /// SWIM without its safeguards: one indirect probe and a suspect declared down after 1 ms,
    /// so lost packets get live members declared failed (caught on gossip-lossy).
    pub gossip_hasty_failure: bool,
    /// Autopilot removes every failed voter, without raft-autopilot's guard of at most
    /// `(voters - 1) / 2` per pass, so the leader can shrink the Raft configuration below a quorum
    /// of the datacenter's servers (caught by the quorum-floor oracle on `dead-server-cleanup`).
    pub autopilot_removes_below_quorum: bool,
    /// The WAN pool never announces to failed members again (no Serf reconnect), so servers a
    /// partition split apart in the WAN pool stay apart after it heals (caught by the WAN
    /// convergence oracle on `wan-gossip`).
    pub wan_no_reconnect: bool,
    /// The WAN pool's keyring is not persisted: a restarted server opens it from `-encrypt`
    /// again, whatever rotations happened (`gossip::wan::open_pool`).
    pub wan_keyring_not_persisted: bool,
    /// A request whose `?dc=` names another datacenter is served by this datacenter as if it named
    /// its own (no cross-datacenter forwarding).
    pub dc_forward_ignores_dc: bool,
}

/// Everything an agent needs to start.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Unique node name in the datacenter (Consul `-node`).
    pub node_name: String,
    pub datacenter: String,
    /// Server mode (a Raft voter). Client agents are not yet implemented.
    pub server: bool,
    /// Wait for this many servers before bootstrapping Raft (Consul `-bootstrap-expect`).
    pub bootstrap_expect: usize,
    /// Address for cluster traffic (server RPC); also advertised to peers.
    pub bind_addr: IpAddr,
    /// Address for client interfaces (HTTP, DNS).
    pub client_addr: IpAddr,
    pub ports: Ports,
    /// `None` keeps all state in memory (`-dev`).
    pub data_dir: Option<PathBuf>,
    /// Agents to join the LAN pool through at start, `ip[:port]`; the port defaults to the LAN
    /// gossip port (Consul's `-retry-join`). See [`AgentConfig::join_addrs`].
    pub retry_join: Vec<String>,
    pub raft: RaftTiming,
    pub dns: DnsConfig,
    pub bugs: BugSwitches,
    /// `-dev` mode: one in-memory server.
    pub dev: bool,
    /// Accept script checks (`Args`) registered through the HTTP API (Consul
    /// `-enable-script-checks`, off by default: it lets any API client run commands here).
    pub enable_script_checks: bool,
    /// Services and checks from config files (`-config-file`, `-config-dir`), registered at
    /// start, not persisted, replaced on reload (see [`crate::local::Local::replace_config_entries`]).
    pub config_entries: crate::local::ConfigEntries,
    /// Shortest session TTL accepted, in ms (Consul's `session_ttl_min`, default 10 s). The
    /// simulator lowers it so that sessions expire within a run.
    pub session_ttl_min_ms: u64,
    /// The LAN gossip pool's timing ([`crate::gossip::GossipConfig`]).
    pub gossip: crate::gossip::GossipConfig,
    /// The WAN gossip pool (servers only; [`crate::gossip::wan`]).
    pub wan: crate::gossip::wan::WanSettings,
}

impl AgentConfig {
    /// `concord agent -dev`: one in-memory server on 127.0.0.1, like `consul agent -dev`.
    pub fn dev() -> Self {
        Self {
            node_name: "concord-dev".to_string(),
            datacenter: "dc1".to_string(),
            server: true,
            bootstrap_expect: 1,
            bind_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: Ports::default(),
            data_dir: None,
            retry_join: Vec::new(),
            raft: RaftTiming::default(),
            dns: DnsConfig::default(),
            bugs: BugSwitches::default(),
            dev: true,
            enable_script_checks: false,
            config_entries: Default::default(),
            session_ttl_min_ms: crate::structs::session::MIN_SESSION_TTL_MS,
            gossip: Default::default(),
            wan: crate::gossip::wan::WanSettings { enabled: true, ..Default::default() },
        }
    }

    /// This server's RPC address as peers dial it.
    pub fn rpc_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_addr, self.ports.server)
    }

    /// The HTTP API address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client_addr, self.ports.http)
    }

    /// The LAN gossip address (UDP).
    pub fn serf_lan_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_addr, self.ports.serf_lan)
    }

    /// The WAN gossip address (UDP; servers only).
    pub fn serf_wan_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_addr, self.ports.serf_wan)
    }

    /// Whether this agent runs the WAN pool: a server with it enabled.
    pub fn runs_wan_pool(&self) -> bool {
        self.server && self.wan.enabled
    }

    /// The DNS address (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client_addr, self.ports.dns)
    }

    /// Parses `retry_join` into the LAN gossip addresses to join through: `ip:port` as given, a
    /// bare `ip` on the LAN gossip port (this agent's `-serf-lan-port`, 8301 by default), as
    /// Consul's `-retry-join`. (An entry naming a server RPC port also works: the join asks that
    /// server for its gossip address, see `gossip::join_targets`.) Errors name the bad entry.
    pub fn join_addrs(&self) -> Result<Vec<SocketAddr>, String> {
        self.retry_join
            .iter()
            .map(|s| {
                if let Ok(sa) = s.parse::<SocketAddr>() {
                    return Ok(sa);
                }
                s.parse::<IpAddr>()
                    .map(|ip| SocketAddr::new(ip, self.ports.serf_lan))
                    .map_err(|_| format!("retry-join address {s:?} is not ip or ip:port"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_join_defaults_to_the_lan_gossip_port_as_consul() {
        let mut c = AgentConfig { retry_join: vec!["10.0.0.2".into(), "10.0.0.3:8300".into()], ..AgentConfig::dev() };
        c.ports.serf_lan = 9301;
        let addrs = c.join_addrs().expect("valid entries");
        assert_eq!(addrs, ["10.0.0.2:9301".parse().unwrap(), "10.0.0.3:8300".parse().unwrap()]);
        c.retry_join = vec!["not-an-address".into()];
        let err = c.join_addrs().expect_err("a name is not an address");
        assert!(err.contains("not-an-address"), "{err}");
    }
}
