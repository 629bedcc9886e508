//! The server core (Consul's `agent/consul.Server`): holds Raft and the state store, and serves
//! reads and writes — locally, or forwarded to the leader.
//!
//! Owns: opening the core from disk ([`Server::open`]), the leader's view of itself (leader
//! lease, quorum contact, stepping down), the write path ([`write`]), the read path with
//! consistency modes and blocking queries over any table ([`read`]), forwarding
//! ([`forward`]), the named RPC endpoints ([`endpoints`], [`kvs`], [`catalog`], [`session`], [`txn`]), the leader's background
//! duties ([`leader`]), bootstrap and joining ([`bootstrap`]), membership changes
//! ([`membership`]) and recovery from corrupted storage ([`identity`]).
//!
//! Layering: HTTP → server core → state store / Raft. This module never imports `http` or
//! `agent`; the agent starts it and binds its ports.

pub mod autopilot;
pub mod bootstrap;
pub mod catalog;
pub mod coordinate;
pub mod endpoints;
pub mod events;
pub mod federation;
pub mod forward;
pub mod group_commit;
pub mod identity;
pub mod kvs;
pub mod leader;
pub mod lease;
pub mod leave;
pub mod membership;
pub mod read;
pub mod read_index;
pub mod reconcile;
pub mod router;
pub mod session;
pub mod session_ttl;
pub mod snapshot;
pub mod transfer;
pub mod txn;
pub mod write;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{ServerState, SnapshotPolicy};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use bootstrap::PeerInfo;

use crate::config::AgentConfig;
use crate::io::Io;
use crate::raft::log_store::LogStore;
use crate::raft::network::NetworkFactory;
use crate::raft::state_machine::{SharedState, StateMachine};
use crate::raft::{NodeId, Raft};
use crate::rpc::RpcClient;

/// Why the server core could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("config: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// The Raft-holding core, shared by the HTTP API and the RPC server.
pub struct Server {
    pub config: AgentConfig,
    pub id: NodeId,
    pub raft: Raft,
    /// The Raft log as this server holds it, for bounding it by bytes ([`leader::watch_raft_metrics`]).
    pub log: crate::raft::log_store::LogReader,
    pub state: Arc<SharedState>,
    pub rpc: RpcClient,
    pub io: Io,
    /// Servers this one has heard of (bootstrap handshake), by node id.
    pub peers: Mutex<BTreeMap<NodeId, PeerInfo>>,
    /// When a follower last accepted an AppendEntries from a leader (for `X-Consul-LastContact`).
    pub last_leader_contact: Mutex<Option<tokio::time::Instant>>,
    /// This server's RNG (blocking-query jitter, election backoff), seeded from [`Io::seed`].
    rng: Mutex<ChaCha8Rng>,
    /// While leader: when it won its election (a quorum voted for it then).
    leader_since: Mutex<Option<tokio::time::Instant>>,
    /// The leader lease, timed on this host's (possibly drifting) clock.
    lease: lease::Lease,
    /// The term in which this leader last completed a read-index round (`ensure_linearizable`),
    /// which proves its state machine has applied everything committed before its term began.
    /// Lease reads are allowed only in that term: Consul's "ready for consistent reads" barrier
    /// (Consul #2644), without which a new leader answers from a state machine still replaying.
    read_ready_term: Mutex<Option<u64>>,
    /// The last log index this server had when it started. openraft 0.9 restores a server that
    /// was leader *as leader* of its old term without a persisted commit index, and sets its read
    /// index to the first entry of that term; `ensure_linearizable` would then accept reads while
    /// the state machine is still replaying, missing writes acknowledged before the crash (found
    /// by the simulator: `crash-restart` seeds 13 and 6). Every write this server may have
    /// acknowledged is in its log, so non-stale reads also wait until this index is applied.
    startup_log_index: u64,
    /// The Raft id this server replaced after abandoning corrupted storage, if any: it joins the
    /// cluster in that id's place.
    pub replaces: Option<NodeId>,
    /// The core's long-running tasks, aborted on shutdown.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Metrics and peer reachability (see [`crate::telemetry`]).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// Consul's NodeID: a UUID generated once and kept in the data dir
    /// ([`identity::load_or_create_node_uuid`]).
    pub node_uuid: String,
    /// Fired when a graceful leave completed (`PUT /v1/agent/leave`): the process should exit.
    pub leave: leave::LeaveSignal,
    /// Set while this leader hands leadership over ([`transfer`]): new writes are refused.
    pub transfer: transfer::TransferState,
    /// The services and checks registered on this agent, their check runners and anti-entropy
    /// ([`crate::local`]), started by [`Server::start_background`].
    pub local: Arc<crate::local::Local>,
    /// While leader: the TTL timers of sessions ([`session_ttl`]).
    pub session_timers: session_ttl::SessionTimers,
    /// The LAN gossip pool's membership view ([`crate::gossip`]); its driver is started by the agent.
    pub gossip: Arc<crate::gossip::Pool>,
    /// The WAN gossip pool ([`crate::gossip::wan`]): servers with it enabled only; its driver is
    /// started by the agent.
    pub wan: Option<Arc<crate::gossip::Pool>>,
    /// A client agent's choice of server ([`router`]); unused on a server.
    pub router: router::Router,
    /// The queue that group-commits this leader's writes ([`group_commit`]).
    group_commit: group_commit::GroupCommit,
    /// The queue that shares leadership rounds between this leader's reads ([`read_index`]).
    read_index: read_index::ReadIndex,
}

impl Server {
    /// Opens the core from the data dir: checks its format, recovers from corrupted storage,
    /// opens the Raft log and state machine and starts Raft. Nothing is bound and no background
    /// task runs until [`Server::start_background`]. Errors: bad config, an old or corrupt data
    /// dir, unreadable storage.
    ///
    /// A client agent (`config.server` false) opens the same core, but its Raft log and state
    /// machine live in memory and are never initialised: it joins no Raft configuration, has no
    /// Raft port, writes no Raft data, and forwards every RPC to a server ([`router`]).
    pub async fn open(config: AgentConfig, mut io: Io) -> Result<Arc<Self>, OpenError> {
        if config.bugs.non_durable_rename {
            io.disk = Arc::new(crate::io::SkipDirSync(io.disk));
        }
        crate::raft::format::ensure_format(io.disk.as_ref()).await.map_err(OpenError::Storage)?;
        let agent_disk = io.disk.clone();
        if !config.server {
            io.disk = Arc::new(crate::io::mem::MemDisk::new());
        }
        let identity = identity::recover(&config, &io).await?;
        let id = identity.node_id(&config.node_name);
        let replaces = identity.replaces(&config.node_name);
        let (mut log_store, report) = LogStore::open(io.disk.clone(), io.trace.clone(), config.node_name.clone())
            .await
            .map_err(|e| OpenError::Storage(e.to_string()))?;
        log_store.set_skip_fsync(config.bugs.skip_log_fsync);
        log_store.set_vote_in_memory(config.bugs.vote_in_memory);
        let telemetry = Arc::new(crate::telemetry::Telemetry::default());
        log_store.set_telemetry(telemetry.clone());
        let log = log_store.reader();
        let node_uuid = identity::load_or_create_node_uuid(agent_disk.as_ref(), io.seed).await.map_err(OpenError::Storage)?;
        let local = crate::local::Local::open(&config, Io { disk: agent_disk.clone(), ..io.clone() }, &node_uuid)
            .await
            .map_err(OpenError::Storage)?;
        local
            .apply_config_at_open(config.config_entries.clone())
            .map_err(|e| OpenError::Config(format!("config files: {e}")))?;
        let startup_log_index = {
            use openraft::storage::RaftLogStorage;
            let st = log_store.get_log_state().await.map_err(|e| OpenError::Storage(e.to_string()))?;
            st.last_log_id.map(|l| l.index).unwrap_or(0)
        };
        if report.torn_tail_bytes > 0 {
            io.trace.event(&config.node_name, crate::io::trace::Event::TornTailCut { bytes: report.torn_tail_bytes as u64 });
        }
        let state = Arc::new(SharedState::default());
        state.watches.lose_wakeups(config.bugs.lost_wakeup);
        let mut sm = StateMachine::open(state.clone(), io.disk.clone(), io.trace.clone(), config.node_name.clone())
            .await
            .map(|sm| sm.reporting_one_entry_less(config.bugs.double_apply).ignoring_check_status(config.bugs.check_status_ignored).releasing_nothing(config.bugs.release_keeps_lock).partially_applying_txns(config.bugs.txn_partial_apply).merging_restores(config.bugs.restore_keeps_old_keys).with_clock(io.clock.clone()))
            .map_err(|e| OpenError::Storage(e.to_string()))?;
        sm.set_telemetry(telemetry.clone());
        let recovered = crate::raft::recover::recover_if_asked(io.disk.as_ref(), &mut log_store, &mut sm, id)
            .await
            .map_err(OpenError::Storage)?;
        if let Some(r) = recovered {
            let voters: Vec<String> = r.voters.iter().map(|v| membership::server_id(*v)).collect();
            tracing::warn!(node = %config.node_name, index = r.at.index, term = r.at.leader_id.term, applied = r.applied, voters = %voters.join(", "),
                "recovered from peers.json: Raft membership rewritten");
        }
        let rpc = RpcClient::new(io.net.clone());
        let raft_cfg = Arc::new(raft_config(&config)?);
        let raft = Raft::new(id, raft_cfg, NetworkFactory { rpc: rpc.clone(), telemetry: telemetry.clone() }, log_store, sm)
            .await
            .map_err(|e| OpenError::Raft(e.to_string()))?;
        let session_timers = session_ttl::SessionTimers::new(config.bugs.session_ttl_early, config.bugs.session_ttl_forgotten);
        let identity = crate::gossip::agent_identity(&config, &node_uuid, io.clock.wall_now());
        let lan_keyring = crate::gossip::keyring_sync::LAN_KEYRING_FILE;
        let gossip = crate::gossip::Pool::open(&identity, config.gossip.encrypt.clone(), lan_keyring, io.disk.clone(), telemetry.metrics.gossip_decrypt_failures())
            .await
            .map_err(OpenError::Config)?;
        let gossip = Arc::new(gossip.with_events_deduped_by_name(config.bugs.event_dedup_by_name).with_vivaldi_ignoring_rtt(config.bugs.vivaldi_ignores_rtt));
        let wan = match config.runs_wan_pool() {
            true => {
                let me = crate::gossip::wan::wan_identity(&identity, &config);
                let pool = crate::gossip::wan::open_pool(&me, &config, io.disk.clone(), telemetry.metrics.gossip_decrypt_failures()).await.map_err(OpenError::Config)?;
                Some(Arc::new(pool))
            }
            false => None,
        };
        let services = local.clone();
        gossip.events.set_service_source(Box::new(move || services.services().into_iter().map(|(id, s)| (id, s.tags)).collect()));
        let (group_commit, batcher) = group_commit::GroupCommit::start(raft.clone(), config.bugs.batch_results_misrouted);
        let (read_index, read_rounds) = read_index::ReadIndex::start(raft.clone(), config.bugs.read_index_skips_apply);
        let server = Arc::new(Server {
            id,
            raft,
            log,
            group_commit,
            read_index,
            state,
            rpc,
            peers: Mutex::new(BTreeMap::new()),
            last_leader_contact: Mutex::new(None),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(io.seed)),
            leader_since: Mutex::new(None),
            lease: lease::Lease::new(io.clock.clone()),
            read_ready_term: Mutex::new(None),
            tasks: Mutex::new(vec![batcher, read_rounds]),
            startup_log_index,
            replaces,
            io: Io { disk: agent_disk, ..io },
            config,
            telemetry,
            node_uuid,
            leave: leave::LeaveSignal::default(),
            transfer: transfer::TransferState::default(),
            session_timers,
            local,
            gossip,
            wan,
            router: router::Router::default(),
        });
        let me = server.me();
        server.peers.lock().unwrap_or_else(|e| e.into_inner()).insert(me.node_id, me);
        Ok(server)
    }

    /// Starts the core's background duties: bootstrap/join through the LAN pool, the Raft metrics
    /// watcher, election backoff, the quorum-loss announcer, the leader's tombstone reaper, and
    /// the agent's check runners and anti-entropy ([`crate::local::Local::start`]).
    /// A client agent starts only its local duties: it has no Raft to bootstrap or lead.
    pub fn start_background(self: &Arc<Self>) {
        if self.is_client() {
            self.local.start(self.clone());
            return;
        }
        let mut tasks = vec![
            tokio::spawn(bootstrap::run(self.clone())),
            tokio::spawn(leader::watch_raft_metrics(self.clone())),
            tokio::spawn(leader::election_backoff(self.clone())),
            tokio::spawn(leader::watch_quorum_contact(self.clone())),
            tokio::spawn(leader::reap_tombstones(self.clone())),
            tokio::spawn(session_ttl::run_session_ttls(self.clone())),
            tokio::spawn(reconcile::reconcile_members(self.clone())),
        ];
        if self.config.raft.cleanup_dead_servers {
            tasks.push(tokio::spawn(autopilot::run(self.clone())));
        }
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).extend(tasks);
        self.local.start(self.clone());
    }

    /// Resolves when Raft has stopped on a fatal error (e.g. a failed fsync: the log can no longer
    /// be trusted to be durable), with the error. The process should then exit and be restarted
    /// from its disk, as PostgreSQL does after an fsync failure.
    pub async fn wait_fatal(&self) -> String {
        let mut rx = self.raft.metrics();
        loop {
            if let Err(e) = &rx.borrow_and_update().running_state {
                return e.to_string();
            }
            if rx.changed().await.is_err() {
                return "raft stopped".to_string();
            }
        }
    }

    /// Stops the core's background tasks and shuts Raft down.
    pub async fn shutdown(&self) {
        self.local.shutdown();
        for task in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
        let _ = self.raft.shutdown().await;
    }

    /// This server's seeded RNG.
    pub fn rng(&self) -> std::sync::MutexGuard<'_, ChaCha8Rng> {
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This server's identity as exchanged with peers.
    pub fn me(&self) -> PeerInfo {
        PeerInfo {
            node_id: self.id,
            name: self.config.node_name.clone(),
            rpc_addr: self.config.rpc_addr().to_string(),
            datacenter: self.config.datacenter.clone(),
        }
    }

    /// The name of the server with Raft id `id`, if this server has heard of it.
    pub fn peer_name(&self, id: NodeId) -> Option<String> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).get(&id).map(|p| p.name.clone())
    }

    /// The current leader's id and RPC address, if one is known. A leader that has not heard from
    /// a quorum within an election timeout has stepped down as far as clients can tell: it
    /// reports no leader (`/v1/status/leader` answers `""`), refuses lease reads and new writes.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        if leader == self.id && !self.has_quorum_contact() {
            return None;
        }
        let addr = m.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())?;
        Some((leader, addr))
    }

    /// The leader's RPC address, parsed.
    pub fn leader_addr(&self) -> Option<SocketAddr> {
        self.leader().and_then(|(_, addr)| addr.parse().ok())
    }

    /// RPC addresses of the Raft voters (Consul `/v1/status/peers`).
    pub fn voter_addrs(&self) -> Vec<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|n| n.addr.clone())).collect()
    }

    /// Whether openraft holds this server as leader (whatever its quorum contact).
    pub fn is_raft_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Whether this server leads and has heard from a quorum within an election timeout.
    pub fn is_leader(&self) -> bool {
        self.is_raft_leader() && self.has_quorum_contact()
    }

    fn since(at: &Mutex<Option<tokio::time::Instant>>) -> Option<Duration> {
        at.lock().unwrap_or_else(|e| e.into_inner()).map(|at| at.elapsed())
    }

    /// Quorum contact (an acknowledged heartbeat, timed on this host's clock like the lease, or the
    /// election itself) within the longest election timeout: past it, the followers may already have elected someone else, so this
    /// leader steps down as far as clients can tell (openraft 0.9 itself does not).
    pub(super) fn has_quorum_contact(&self) -> bool {
        if self.config.bugs.transfer_keeps_lease && self.transfer.in_progress() {
            // Deliberate bug: "still the leader until I see the new one".
            return true;
        }
        let mut bound = Duration::from_millis(self.config.raft.election_timeout_max_ms);
        if self.config.bugs.lease_ignores_drift {
            // Deliberate bug: the step-down trusts the same drift-free reasoning as the lease.
            bound += Duration::from_millis(self.config.raft.election_timeout_min_ms);
        }
        let recent = |at: &Mutex<Option<tokio::time::Instant>>| Self::since(at).is_some_and(|e| e < bound);
        self.lease.held(bound) || recent(&self.leader_since)
    }

    /// Whether this leader heard from a quorum within the lease ([`lease`]: counted on this
    /// host's clock from when the acknowledged heartbeat was *sent*, short enough that no other
    /// leader can be elected meanwhile under the assumed clock drift), so local reads are current.
    fn lease_valid(&self) -> bool {
        if self.config.bugs.transfer_keeps_lease && self.transfer.in_progress() {
            // Deliberate bug: "still my term until I see the new leader".
            return self.is_raft_leader();
        }
        let min = Duration::from_millis(self.config.raft.election_timeout_min_ms);
        let max = Duration::from_millis(self.config.raft.election_timeout_max_ms);
        self.is_raft_leader() && self.lease.held(lease::lease_duration(min, max, self.config.bugs.lease_ignores_drift))
    }

    /// `X-Consul-LastContact` in ms: 0 on the leader, else since the last AppendEntries.
    pub fn last_contact_ms(&self) -> u64 {
        if self.is_raft_leader() {
            return 0;
        }
        match *self.last_leader_contact.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(at) => at.elapsed().as_millis() as u64,
            None => 0,
        }
    }
}

/// openraft configuration from the agent's timing.
fn raft_config(config: &AgentConfig) -> Result<openraft::Config, OpenError> {
    let t = &config.raft;
    openraft::Config {
        cluster_name: config.datacenter.clone(),
        heartbeat_interval: t.heartbeat_ms,
        election_timeout_min: t.election_timeout_min_ms,
        election_timeout_max: t.election_timeout_max_ms,
        max_payload_entries: 64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(t.snapshot_threshold),
        max_in_snapshot_log_to_keep: t.trailing_logs,
        install_snapshot_timeout: t.election_timeout_min_ms.max(200),
        ..Default::default()
    }
    .validate()
    .map_err(|e| OpenError::Config(e.to_string()))
}
