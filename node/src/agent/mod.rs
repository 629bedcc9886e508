//! The agent: wires Raft, the state store, server RPC and the HTTP API together, and routes reads
//! and writes (locally, or forwarded to the leader).
//!
//! Owns: startup and shutdown ([`start`], [`Agent::shutdown`]), the write path
//! ([`Agent::write`]), the read path with consistency modes ([`Agent::query`]), bootstrap and
//! joining ([`bootstrap`]), membership changes ([`membership`]) and recovery from corrupted
//! storage ([`identity`]).

pub mod bootstrap;
pub mod config;
pub mod identity;
pub mod membership;
pub mod query;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ServerState, SnapshotPolicy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use config::{AgentConfig, BugSwitches, Ports, RaftTiming};
use query::{evaluate, evaluate_blocking, Consistency, KvQuery, QueryError, QueryResult};

use crate::io::Io;
use crate::raft::log_store::LogStore;
use crate::raft::network::NetworkFactory;
use crate::raft::state_machine::{SharedState, StateMachine};
use crate::raft::{NodeId, Raft};
use crate::rpc::client::RpcClient;
use crate::rpc::{PeerInfo, RpcRequest, RpcResponse, WriteError};
use crate::state::{Command, CommandResult};

/// Deadline for a write forwarded to the leader (Consul's `rpc_hold_timeout` is 7 s).
const FORWARD_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a read waits for the restart barrier ([`Agent::startup_log_index`]) before giving up.
const RESTART_BARRIER_TIMEOUT: Duration = Duration::from_secs(2);
/// Extra time a forwarded blocking read gets beyond its wait.
const FORWARD_READ_SLACK: Duration = Duration::from_secs(5);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("config: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A running agent's shared core, handed to the HTTP and RPC servers.
pub struct Agent {
    pub config: AgentConfig,
    pub id: NodeId,
    pub raft: Raft,
    pub state: Arc<SharedState>,
    pub rpc: RpcClient,
    pub io: Io,
    /// Servers this one has heard of (bootstrap handshake), by node id.
    pub peers: Mutex<BTreeMap<NodeId, PeerInfo>>,
    /// When a follower last accepted an AppendEntries from a leader (for `X-Consul-LastContact`).
    pub last_leader_contact: Mutex<Option<tokio::time::Instant>>,
    /// This agent's RNG (blocking-query jitter), seeded from [`Io::seed`].
    rng: Mutex<ChaCha8Rng>,
    /// While leader: when the newest heartbeat acknowledged by a quorum was sent. Derived from
    /// openraft's `millis_since_quorum_ack` at the moment the metric is observed, because the
    /// metric itself is a snapshot that is not refreshed while no replies arrive.
    quorum_acked_at: Mutex<Option<tokio::time::Instant>>,
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
    /// The agent's long-running tasks (servers, bootstrap, metrics watcher), aborted on shutdown.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Agent {
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

    /// Stops the agent: aborts its servers and background tasks (freeing its ports) and shuts
    /// Raft down. Connections already accepted finish on their own.
    pub async fn shutdown(&self) {
        for task in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
        let _ = self.raft.shutdown().await;
    }

    /// This agent's seeded RNG.
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

    /// The current leader's id and RPC address, if one is known.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())?;
        Some((leader, addr))
    }

    /// RPC addresses of the Raft voters (Consul `/v1/status/peers`).
    pub fn voter_addrs(&self) -> Vec<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|n| n.addr.clone())).collect()
    }

    pub(crate) fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Whether this leader heard from a quorum within the lease: half the minimum election
    /// timeout, counted from when the acknowledged heartbeat was *sent*. No other leader can be
    /// elected that soon, so local reads are current. (openraft 0.9 does not make a leader that
    /// lost its quorum step down, so without this check a deposed leader would serve stale data
    /// indefinitely.)
    fn lease_valid(&self) -> bool {
        let lease = Duration::from_millis(self.config.raft.election_timeout_min_ms / 2);
        let acked = *self.quorum_acked_at.lock().unwrap_or_else(|e| e.into_inner());
        self.is_leader() && acked.is_some_and(|at| at.elapsed() < lease)
    }

    fn last_contact_ms(&self) -> u64 {
        if self.is_leader() {
            return 0;
        }
        match *self.last_leader_contact.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(at) => at.elapsed().as_millis() as u64,
            None => 0,
        }
    }

    /// Applies a write through Raft: on the leader directly, from a follower by forwarding.
    /// Errors say whether the write may have been applied ([`WriteError::Unknown`]) or certainly
    /// was not ([`WriteError::NoLeader`], [`WriteError::Rejected`]).
    pub async fn write(&self, cmd: Command) -> Result<CommandResult, WriteError> {
        if self.is_leader() {
            return self.write_as_leader(cmd).await;
        }
        let Some((_, addr)) = self.leader() else { return Err(WriteError::NoLeader) };
        let addr: SocketAddr = addr.parse().map_err(|e| WriteError::Rejected(format!("bad leader address: {e}")))?;
        match self.rpc.call(addr, crate::rpc::legacy::METHOD, &RpcRequest::ForwardWrite(cmd), FORWARD_WRITE_TIMEOUT).await {
            // Fault point: the leader's answer is lost on the way back.
            Ok(RpcResponse::ForwardWrite(_)) if crate::buggify!() => {
                Err(WriteError::Unknown("buggify: forwarded write's reply lost".into()))
            }
            Ok(RpcResponse::ForwardWrite(result)) => result,
            Ok(other) => Err(WriteError::Unknown(format!("unexpected response {other:?}"))),
            Err(e) if e.not_delivered() => Err(WriteError::Rejected(e.to_string())),
            Err(e) => Err(WriteError::Unknown(e.to_string())),
        }
    }

    /// Proposes a write on this server, which believes it is the leader. Never forwards again.
    pub async fn write_as_leader(&self, cmd: Command) -> Result<CommandResult, WriteError> {
        if !self.is_leader() {
            return Err(WriteError::NoLeader);
        }
        if self.config.bugs.ack_before_commit {
            // Deliberate bug: answer before the entry commits (the write may later be lost).
            let _pending = self.raft.client_write_ff(cmd).await;
            return Ok(CommandResult { ok: true, index: 0 });
        }
        match self.raft.client_write(cmd).await {
            Ok(resp) => Ok(resp.data),
            // Leadership moved while the entry was in flight: it may still commit.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(WriteError::Unknown("leadership lost while the write was in flight".into()))
            }
            Err(e) => Err(WriteError::Unknown(e.to_string())),
        }
    }

    /// Answers a KV read in the requested consistency mode, forwarding to the leader when needed.
    pub async fn query(&self, q: KvQuery) -> Result<QueryResult, QueryError> {
        let serve_locally = match q.consistency {
            Consistency::Stale => true,
            Consistency::Consistent if self.config.bugs.stale_consistent_read => true,
            _ => self.is_leader(),
        };
        if serve_locally {
            return self.query_local(q).await;
        }
        let Some((_, addr)) = self.leader() else { return Err(QueryError::NoLeader) };
        let addr: SocketAddr = addr.parse().map_err(|e| QueryError::Internal(format!("bad leader address: {e}")))?;
        let timeout = Duration::from_millis(q.wait_ms) + FORWARD_READ_SLACK;
        match self.rpc.call(addr, crate::rpc::legacy::METHOD, &RpcRequest::ForwardQuery(q), timeout).await {
            Ok(RpcResponse::ForwardQuery(result)) => result,
            Ok(other) => Err(QueryError::Rpc(format!("unexpected response {other:?}"))),
            Err(e) => Err(QueryError::Rpc(e.to_string())),
        }
    }

    /// Answers a read on this server without forwarding: stale reads anywhere; default and
    /// consistent reads only on a leader that can prove it is still the leader.
    pub async fn query_local(&self, q: KvQuery) -> Result<QueryResult, QueryError> {
        let bypass = q.consistency == Consistency::Stale
            || (q.consistency == Consistency::Consistent && self.config.bugs.stale_consistent_read);
        let (entries, keys, index) = if bypass {
            evaluate_blocking(&self.state, &q).await?
        } else {
            self.verify_leadership(q.consistency).await?;
            if q.min_index > 0 {
                // Block until what the query reads changes, then prove leadership again: the
                // answer must be current when it is sent, not when the wait began.
                evaluate_blocking(&self.state, &q).await?;
                self.verify_leadership(q.consistency).await?;
            }
            evaluate(&self.state, &q)?
        };
        Ok(QueryResult {
            entries,
            keys,
            index,
            known_leader: self.leader().is_some(),
            last_contact_ms: self.last_contact_ms(),
        })
    }

    /// Proves this server may answer a non-stale read from local state: it is the leader and
    /// either holds a valid lease (default mode, after one read-index round in this term) or has
    /// just completed a read-index round (`?consistent`). Errors: not (or no longer) the leader.
    async fn verify_leadership(&self, consistency: Consistency) -> Result<(), QueryError> {
        if !self.is_leader() {
            return Err(QueryError::NoLeader);
        }
        let term = self.raft.metrics().borrow().current_term;
        let ready = *self.read_ready_term.lock().unwrap_or_else(|e| e.into_inner()) == Some(term);
        if consistency == Consistency::Default && ready && self.lease_valid() {
            return Ok(());
        }
        self.raft.ensure_linearizable().await.map_err(|_| QueryError::NoLeader)?;
        self.raft
            .wait(Some(RESTART_BARRIER_TIMEOUT))
            .applied_index_at_least(Some(self.startup_log_index), "restart read barrier")
            .await
            .map_err(|_| QueryError::NoLeader)?;
        *self.read_ready_term.lock().unwrap_or_else(|e| e.into_inner()) = Some(term);
        Ok(())
    }
}

/// openraft configuration from the agent's timing.
fn raft_config(config: &AgentConfig) -> Result<openraft::Config, StartError> {
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
    .map_err(|e| StartError::Config(e.to_string()))
}

/// Starts an agent and returns once its servers are listening; the agent runs on spawned tasks
/// until the process (or simulated host) stops. Errors: bad config, unreadable or corrupt storage,
/// a port that cannot be bound.
pub async fn start(config: AgentConfig, io: Io) -> Result<Arc<Agent>, StartError> {
    if !config.server {
        return Err(StartError::Config("client mode is not implemented yet; pass -server".into()));
    }
    let join = config.join_addrs().map_err(StartError::Config)?;
    let identity = recover_identity(&config, &io).await?;
    let id = identity.node_id(&config.node_name);
    let replaces = identity.replaces(&config.node_name);
    let (mut log_store, report) = LogStore::open(io.disk.clone()).await.map_err(|e| StartError::Storage(e.to_string()))?;
    log_store.set_skip_fsync(config.bugs.skip_log_fsync);
    let startup_log_index = {
        use openraft::storage::RaftLogStorage;
        let st = log_store.get_log_state().await.map_err(|e| StartError::Storage(e.to_string()))?;
        st.last_log_id.map(|l| l.index).unwrap_or(0)
    };
    if report.torn_tail_bytes > 0 {
        io.trace.event(&config.node_name, &format!("recovered: cut torn tail of {} bytes", report.torn_tail_bytes));
    }
    let state = Arc::new(SharedState::default());
    let sm = StateMachine::open(state.clone(), io.disk.clone(), io.trace.clone(), config.node_name.clone())
        .await
        .map_err(|e| StartError::Storage(e.to_string()))?;
    let rpc = RpcClient::new(io.net.clone());
    let raft_cfg = Arc::new(raft_config(&config)?);
    let raft = Raft::new(id, raft_cfg, NetworkFactory { rpc: rpc.clone() }, log_store, sm)
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;

    let rpc_listener = io
        .net
        .bind(config.rpc_addr())
        .await
        .map_err(|source| StartError::Bind { addr: config.rpc_addr(), source })?;
    let http_listener = io
        .net
        .bind(config.http_addr())
        .await
        .map_err(|source| StartError::Bind { addr: config.http_addr(), source })?;

    let agent = Arc::new(Agent {
        config,
        id,
        raft,
        state,
        rpc,
        peers: Mutex::new(BTreeMap::new()),
        last_leader_contact: Mutex::new(None),
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(io.seed)),
        quorum_acked_at: Mutex::new(None),
        read_ready_term: Mutex::new(None),
        tasks: Mutex::new(Vec::new()),
        startup_log_index,
        replaces,
        io,
    });
    let me = agent.me();
    agent.peers.lock().unwrap_or_else(|e| e.into_inner()).insert(me.node_id, me);

    let tasks = vec![
        tokio::spawn(crate::rpc::serve(Arc::new(crate::rpc::legacy::AgentHandler(agent.clone())), rpc_listener)),
        tokio::spawn(crate::http::serve(agent.clone(), http_listener)),
        tokio::spawn(bootstrap::run(agent.clone(), join)),
        tokio::spawn(watch_raft_metrics(agent.clone())),
        tokio::spawn(election_backoff(agent.clone())),
    ];
    *agent.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
    tracing::info!(node = %agent.config.node_name, id = agent.id, rpc = %agent.config.rpc_addr(),
        http = %agent.config.http_addr(), "agent started");
    Ok(agent)
}

/// Loads this server's identity; if its Raft storage fails its checksums, moves it aside and
/// takes the next identity (see [`identity`]). Errors: unreadable storage (maybe transient: the
/// start fails and is retried) or a failure while moving files.
async fn recover_identity(config: &AgentConfig, io: &Io) -> Result<identity::Identity, StartError> {
    let disk = io.disk.as_ref();
    let current = identity::load(disk).await.map_err(StartError::Storage)?;
    let io_err = |e: std::io::Error| StartError::Storage(e.to_string());
    let corruption = match crate::raft::log_store::check_integrity(disk).await.map_err(io_err)? {
        Some(why) => Some(why),
        None => crate::raft::state_machine::check_integrity(disk).await.map_err(io_err)?,
    };
    let Some(why) = corruption else { return Ok(current) };
    let next = identity::abandon_storage(disk, current).await.map_err(StartError::Storage)?;
    tracing::error!(%why, generation = next.generation, "raft storage corrupted: moved aside; rejoining as a new server");
    io.trace.event(
        &config.node_name,
        &format!("storage corrupted ({why}); moved aside, rejoining as generation {}", next.generation),
    );
    Ok(next)
}

/// Breaks election lockstep. openraft 0.9 draws each server's election timeout once, at start,
/// and checks it on a fixed tick; two servers whose timers were reset by the same heartbeat and
/// whose timeouts round to the same tick then campaign in the same instant every round and split
/// the vote forever (found by the simulator: membership-change seed 7, after the leader removed
/// itself). After two failed elections in a row, this server sits out elections for a random
/// time up to one maximum election timeout, as Raft's randomised timeouts intend.
async fn election_backoff(agent: Arc<Agent>) {
    let mut rx = agent.raft.metrics();
    let mut failed_in_a_row = 0u32;
    let mut last_candidate_term = None;
    loop {
        let (state, term) = {
            let m = rx.borrow_and_update();
            (m.state, m.current_term)
        };
        match state {
            ServerState::Candidate if last_candidate_term.is_some_and(|t| t < term) => {
                failed_in_a_row += 1;
                last_candidate_term = Some(term);
            }
            ServerState::Candidate => last_candidate_term = Some(term),
            _ => {
                failed_in_a_row = 0;
                last_candidate_term = None;
            }
        }
        if failed_in_a_row >= 2 {
            let max_ms = agent.config.raft.election_timeout_max_ms;
            let pause = Duration::from_millis(agent.rng().gen_range(0..=max_ms));
            agent.raft.runtime_config().elect(false);
            tokio::time::sleep(pause).await;
            agent.raft.runtime_config().elect(true);
            failed_in_a_row = 0;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Follows openraft's metrics: keeps the leader lease's quorum-ack time, and emits a trace line
/// whenever this server's term, role or known leader changes.
async fn watch_raft_metrics(agent: Arc<Agent>) {
    let mut rx = agent.raft.metrics();
    let mut last = None;
    loop {
        let (now, acked_ms) = {
            let m = rx.borrow_and_update();
            ((m.current_term, m.state, m.current_leader), m.millis_since_quorum_ack)
        };
        let acked_at = match (now.1, acked_ms) {
            (ServerState::Leader, Some(ms)) => tokio::time::Instant::now().checked_sub(Duration::from_millis(ms)),
            _ => None,
        };
        *agent.quorum_acked_at.lock().unwrap_or_else(|e| e.into_inner()) = acked_at;
        if last != Some(now) {
            let leader = now.2.map(|l| l.to_string()).unwrap_or_else(|| "none".into());
            agent.io.trace.event(&agent.config.node_name, &format!("raft term={} state={:?} leader={leader}", now.0, now.1));
            last = Some(now);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
