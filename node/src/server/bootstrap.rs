//! Cluster bootstrap: `-bootstrap-expect=N`, through the LAN gossip pool.
//!
//! As Consul's `maybeBootstrap` (agent/consul/server_serf.go): a server waits until the LAN pool
//! holds N live servers of its datacenter (itself included; members tagged `role=consul`, `dc`,
//! `port`), then asks each of them over RPC (`Server.Hello`, Consul's `Status.Peers` check) who
//! it is (its Raft id) and whether its Raft is already initialised. If one is, a cluster exists
//! and this server asks it to be added as a voter (`Server.Join`) instead of bootstrapping a
//! second one; if a server does not answer, it tries again later; otherwise it initialises Raft
//! with exactly those servers as voters. Every server that gets there computes the same set, and
//! openraft accepts the same initial membership on several servers (it is log index 0 with the
//! same content everywhere). A server restarted with a log is already initialised and skips all
//! of this. The pool itself is joined through `-retry-join` (see `agent::retry_join_lan`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::endpoints::{SERVER_HELLO, SERVER_JOIN};
use super::forward::Forwarded;
use super::Server;
use crate::io::trace::Event;
use crate::raft::NodeId;

/// Who a server is, exchanged while bootstrapping (`-bootstrap-expect`, `-retry-join`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerInfo {
    pub node_id: NodeId,
    pub name: String,
    /// Server RPC address, `ip:port`.
    pub rpc_addr: String,
    pub datacenter: String,
}

/// `Server.Hello`'s answer: the responder, whether its Raft is initialised, the peers it knows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HelloResponse {
    pub me: PeerInfo,
    pub initialized: bool,
    pub known: Vec<PeerInfo>,
}

/// `Server.Join`: add `peer` as a voter, in place of its old Raft id `replaces` (after it
/// abandoned corrupted storage). Followers forward it to the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    pub peer: PeerInfo,
    pub replaces: Option<NodeId>,
}

/// Pause between rounds of join attempts (Consul's `retry_interval` is 30 s; servers bootstrapping
/// together want it shorter).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
const HELLO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the deliberate bug `bootstrap_timeout` waits for `-bootstrap-expect` servers.
const BUGGY_BOOTSTRAP_WAIT: Duration = Duration::from_secs(2);

/// A join waits for the leader to bring this server up to date as a learner.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until this server's Raft is initialised (by us or by a peer), or it has joined a running
/// cluster. Wakes on every change of the LAN pool's view, and at least every [`RETRY_INTERVAL`].
pub async fn run(agent: Arc<Server>) {
    let started = tokio::time::Instant::now();
    let expect = agent.config.bootstrap_expect.max(1);
    let mut view = agent.gossip.subscribe();
    loop {
        match agent.raft.is_initialized().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "raft stopped before bootstrap");
                return;
            }
        }
        let servers = pool_servers(&agent);
        // Deliberate bug (simulator only): give up waiting for `-bootstrap-expect` servers.
        let gave_up = agent.config.bugs.bootstrap_timeout && started.elapsed() >= BUGGY_BOOTSTRAP_WAIT;
        if servers.len() + 1 >= expect || gave_up {
            match confirm(&agent, &servers).await {
                Confirmed::Initialized => {
                    // The cluster already exists: join it (in place of our old id, if we had to
                    // abandon corrupted storage) instead of bootstrapping a second one.
                    join_running_cluster(&agent).await;
                    return;
                }
                Confirmed::Fresh(peers) if peers.len() + 1 >= expect || gave_up => {
                    initialize(&agent, peers).await;
                    return;
                }
                // A server did not answer: it may be down and not yet known failed. Consul's
                // maybeBootstrap likewise waits for every server it sees to confirm.
                Confirmed::Fresh(_) => {}
            }
        } else {
            let names: Vec<&str> = servers.iter().map(|(name, _)| name.as_str()).collect();
            agent.telemetry.peers.bootstrap_waiting(&agent.config.node_name, expect, &names);
        }
        if tokio::time::timeout(RETRY_INTERVAL, view.changed()).await.is_ok_and(|r| r.is_err()) {
            // The pool stopped (the agent is shutting down): poll instead of spinning.
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
    }
}

/// The other live servers of this datacenter in the LAN pool, by node name, with their server
/// RPC addresses (members tagged `role=consul`, this `dc`, and a `port`).
fn pool_servers(agent: &Server) -> Vec<(String, SocketAddr)> {
    let dc = &agent.config.datacenter;
    agent
        .gossip
        .members()
        .iter()
        .filter(|m| m.name != agent.config.node_name)
        .filter_map(|m| super::router::server_rpc_addr(m, dc).map(|addr| (m.name.clone(), addr)))
        .collect()
}

/// What the servers in the pool said about themselves.
enum Confirmed {
    /// One of them has an initialised Raft: a cluster exists.
    Initialized,
    /// None has; the ones that answered (a server that did not is missing).
    Fresh(Vec<PeerInfo>),
}

/// Asks every server in `servers` for its identity and whether its Raft is initialised
/// (`Server.Hello`), and records the servers it names for logs and the API.
async fn confirm(agent: &Server, servers: &[(String, SocketAddr)]) -> Confirmed {
    let mut answered = Vec::new();
    for (name, addr) in servers {
        match agent.rpc.call::<_, HelloResponse>(*addr, SERVER_HELLO, &agent.me(), HELLO_TIMEOUT).await {
            Ok(HelloResponse { me, initialized, known }) => {
                let mut peers = agent.peers.lock().unwrap_or_else(|e| e.into_inner());
                for p in known.into_iter().chain(std::iter::once(me.clone())) {
                    if p.datacenter == agent.config.datacenter {
                        peers.insert(p.node_id, p);
                    }
                }
                if initialized {
                    return Confirmed::Initialized;
                }
                answered.push(me);
            }
            Err(e) => tracing::debug!(server = %name, error = %e, "bootstrap: server did not confirm its raft state"),
        }
    }
    Confirmed::Fresh(answered)
}

/// Initialises Raft with this server and `peers` as the voters.
async fn initialize(agent: &Server, peers: Vec<PeerInfo>) {
    let me = agent.me();
    let mut names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).chain([me.name.as_str()]).collect();
    names.sort_unstable();
    let members: BTreeMap<u64, BasicNode> =
        peers.iter().chain([&me]).map(|p| (p.node_id, BasicNode { addr: p.rpc_addr.clone() })).collect();
    tracing::info!(servers = %names.join(", "), "bootstrap-expect reached; initialising raft");
    agent.io.trace.event(&agent.config.node_name, Event::Bootstrap { servers: members.len() });
    if let Err(e) = agent.raft.initialize(members).await {
        tracing::info!(error = %e, "raft initialise skipped");
    }
}

/// Asks the running cluster, through any server in the LAN pool, to add this server as a voter;
/// retries until a membership change including it commits or Raft stops.
async fn join_running_cluster(agent: &Server) {
    let req = Forwarded { forwarded: false, args: JoinRequest { peer: agent.me(), replaces: agent.replaces } };
    loop {
        for (name, addr) in pool_servers(agent) {
            match agent.rpc.call::<_, Result<u64, String>>(addr, SERVER_JOIN, &req, JOIN_TIMEOUT).await {
                Ok(Ok(index)) => {
                    tracing::info!(index, replaces = ?agent.replaces, "joined the running cluster");
                    agent.io.trace.event(&agent.config.node_name, Event::JoinedCluster { index });
                    return;
                }
                Ok(other) => tracing::debug!(server = %name, ?other, "join refused"),
                Err(e) => tracing::debug!(server = %name, error = %e, "join attempt failed"),
            }
        }
        if agent.raft.is_initialized().await.is_err() {
            return;
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}
