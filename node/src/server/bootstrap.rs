//! Cluster bootstrap: `-bootstrap-expect=N` with `-retry-join`.
//!
//! Until gossip exists, servers find each other by calling `Hello` on the join addresses' server
//! RPC port; each answer carries the responder's identity, whether its Raft is initialised, and
//! the servers it knows. Once a server knows N servers (itself included) and none reports an
//! initialised Raft, it initialises Raft with exactly those servers as voters. Every server that
//! gets there computes the same set, and openraft accepts the same initial membership on several
//! servers (it is log index 0 with the same content everywhere). A server restarted with a log is
//! already initialised and skips all of this.

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
/// cluster.
pub async fn run(agent: Arc<Server>, join: Vec<SocketAddr>) {
    let started = tokio::time::Instant::now();
    loop {
        match agent.raft.is_initialized().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "raft stopped before bootstrap");
                return;
            }
        }
        let mut peer_initialized = false;
        for addr in &join {
            if *addr == agent.config.rpc_addr() {
                continue;
            }
            match agent.rpc.call::<_, HelloResponse>(*addr, SERVER_HELLO, &agent.me(), HELLO_TIMEOUT).await {
                Ok(HelloResponse { me, initialized, known }) => {
                    peer_initialized |= initialized;
                    let mut peers = agent.peers.lock().unwrap_or_else(|e| e.into_inner());
                    for p in known.into_iter().chain(std::iter::once(me)) {
                        if p.datacenter == agent.config.datacenter {
                            peers.insert(p.node_id, p);
                        }
                    }
                }
                Err(e) => tracing::debug!(%addr, error = %e, "join attempt failed"),
            }
        }
        if peer_initialized {
            // The cluster already exists: join it (in place of our old id, if we had to abandon
            // corrupted storage) instead of bootstrapping a second one.
            join_running_cluster(&agent, &join).await;
            return;
        }
        let members: BTreeMap<u64, BasicNode> = {
            let peers = agent.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers.values().map(|p| (p.node_id, BasicNode { addr: p.rpc_addr.clone() })).collect()
        };
        // Deliberate bug (simulator only): give up on bootstrap-expect after a while.
        let gave_up = agent.config.bugs.bootstrap_timeout && started.elapsed() >= BUGGY_BOOTSTRAP_WAIT;
        let members = if gave_up && members.is_empty() {
            let me = agent.me();
            BTreeMap::from([(me.node_id, BasicNode { addr: me.rpc_addr })])
        } else {
            members
        };
        if members.len() >= agent.config.bootstrap_expect.max(1) || gave_up {
            let names: Vec<String> = agent.peers.lock().unwrap_or_else(|e| e.into_inner()).values().map(|p| p.name.clone()).collect();
            tracing::info!(servers = %names.join(", "), "bootstrap-expect reached; initialising raft");
            agent.io.trace.event(&agent.config.node_name, Event::Bootstrap { servers: members.len() });
            if let Err(e) = agent.raft.initialize(members).await {
                tracing::info!(error = %e, "raft initialise skipped");
            }
            return;
        }
        agent.telemetry.peers.bootstrap_waiting(&agent, members.len());
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// Asks the running cluster, through any join address, to add this server as a voter; retries
/// until a membership change including it commits or Raft stops.
async fn join_running_cluster(agent: &Server, join: &[SocketAddr]) {
    let req = Forwarded { forwarded: false, args: JoinRequest { peer: agent.me(), replaces: agent.replaces } };
    loop {
        for addr in join {
            match agent.rpc.call::<_, Result<u64, String>>(*addr, SERVER_JOIN, &req, JOIN_TIMEOUT).await {
                Ok(Ok(index)) => {
                    tracing::info!(index, replaces = ?agent.replaces, "joined the running cluster");
                    agent.io.trace.event(&agent.config.node_name, Event::JoinedCluster { index });
                    return;
                }
                Ok(other) => tracing::debug!(%addr, ?other, "join refused"),
                Err(e) => tracing::debug!(%addr, error = %e, "join attempt failed"),
            }
        }
        if agent.raft.is_initialized().await.is_err() {
            return;
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}
