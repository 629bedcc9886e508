//! RPC dispatch: the server core's named endpoints behind the transport's [`RpcHandler`].
//!
//! Names follow Consul's (`KVS.Apply`, `Status.Leader`, …); Concord-only endpoints are `Raft.*`
//! (openraft's messages) and `Server.*` (bootstrap handshake and join, until bootstrap moves to
//! gossip; `Server.GossipAddr` maps a server RPC address to its LAN gossip address). A
//! body that does not decode, or an unknown method, is answered with an error, never a panic.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::bootstrap::{HelloResponse, JoinRequest};
use super::catalog::*;
use super::coordinate::*;
use super::federation::{CATALOG_LIST_DATACENTERS, DC_FORWARD};
use super::forward::Forwarded;
use super::kvs::{KVS_APPLY, KVS_GET, KVS_LIST, KVS_LIST_KEYS};
use super::session::*;
use super::snapshot::{SNAPSHOT_RESTORE, SNAPSHOT_SAVE};
use super::txn::{TXN_APPLY, TXN_METHODS, TXN_READ};
use super::{PeerInfo, Server};
use crate::codec::{decode, encode};
use crate::raft::{NodeId, TypeConfig};
use crate::rpc::RpcHandler;

/// openraft's messages name the Raft id they are for; a server with another id (e.g. one that
/// abandoned corrupted storage and took a new id at the same address) refuses them.
#[derive(Debug, Serialize, Deserialize)]
pub struct RaftRpc<T> {
    pub target: NodeId,
    pub msg: T,
}

pub const RAFT_APPEND_ENTRIES: &str = "Raft.AppendEntries";
pub const RAFT_VOTE: &str = "Raft.Vote";
pub const RAFT_INSTALL_SNAPSHOT: &str = "Raft.InstallSnapshot";
pub const STATUS_LEADER: &str = "Status.Leader";
pub const STATUS_PEERS: &str = "Status.Peers";
pub const SERVER_HELLO: &str = "Server.Hello";
pub const SERVER_JOIN: &str = "Server.Join";
pub const SERVER_LEAVE: &str = "Server.Leave";
/// This server's LAN gossip address (`ip:port`), so an agent whose `-retry-join` names the server
/// RPC port can find the gossip port (Concord-only; see [`crate::gossip`]).
pub const SERVER_GOSSIP_ADDR: &str = "Server.GossipAddr";
pub const RAFT_TIMEOUT_NOW: &str = "Raft.TimeoutNow";
pub const OPERATOR_TRANSFER_LEADER: &str = "Operator.TransferLeader";

/// Every method this server answers but the catalog's ([`CATALOG_METHODS`]), sessions'
/// ([`SESSION_METHODS`]) and transactions' ([`TXN_METHODS`]); together they bound
/// the RPC metrics' label set.
pub const METHODS: [&str; 20] = [
    RAFT_APPEND_ENTRIES, RAFT_VOTE, RAFT_INSTALL_SNAPSHOT, RAFT_TIMEOUT_NOW, KVS_APPLY, KVS_GET, KVS_LIST,
    KVS_LIST_KEYS, STATUS_LEADER, STATUS_PEERS, SERVER_HELLO, SERVER_JOIN, SERVER_LEAVE, SERVER_GOSSIP_ADDR, OPERATOR_TRANSFER_LEADER,
    SNAPSHOT_SAVE, SNAPSHOT_RESTORE, DC_FORWARD, CATALOG_LIST_DATACENTERS, "unknown",
];

/// Decodes `body` as `Req`, runs `f`, encodes its answer.
async fn typed<Req, Resp, Fut>(body: &[u8], f: impl FnOnce(Req) -> Fut) -> Result<Vec<u8>, String>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: Future<Output = Resp>,
{
    let req: Req = decode(body).map_err(|e| format!("bad request body: {e}"))?;
    encode(&f(req).await).map_err(|e| e.to_string())
}

impl Server {
    fn check_target(&self, target: NodeId) -> Result<(), String> {
        if target == self.id {
            Ok(())
        } else {
            Err(format!("raft message for {target:016x} reached {:016x}", self.id))
        }
    }
}

#[async_trait]
impl RpcHandler for Server {
    async fn handle(&self, method: String, body: Vec<u8>) -> Result<Vec<u8>, String> {
        match method.as_str() {
            RAFT_APPEND_ENTRIES => {
                let rpc: RaftRpc<AppendEntriesRequest<TypeConfig>> = decode(&body).map_err(|e| e.to_string())?;
                self.check_target(rpc.target)?;
                let result = self.raft.append_entries(rpc.msg).await;
                if result.as_ref().is_ok_and(|r| r.is_success()) {
                    *self.last_leader_contact.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokio::time::Instant::now());
                }
                encode(&result).map_err(|e| e.to_string())
            }
            RAFT_VOTE => {
                let rpc: RaftRpc<VoteRequest<NodeId>> = decode(&body).map_err(|e| e.to_string())?;
                self.check_target(rpc.target)?;
                encode(&self.raft.vote(rpc.msg).await).map_err(|e| e.to_string())
            }
            RAFT_INSTALL_SNAPSHOT => {
                let rpc: RaftRpc<InstallSnapshotRequest<TypeConfig>> = decode(&body).map_err(|e| e.to_string())?;
                self.check_target(rpc.target)?;
                encode(&self.raft.install_snapshot(rpc.msg).await).map_err(|e| e.to_string())
            }
            KVS_APPLY => typed(&body, |r: Forwarded<_>| self.kvs_apply(r.args, r.forwarded)).await,
            KVS_GET => typed(&body, |r: Forwarded<_>| self.kvs_get(r.args, r.forwarded)).await,
            KVS_LIST => typed(&body, |r: Forwarded<_>| self.kvs_list(r.args, r.forwarded)).await,
            KVS_LIST_KEYS => typed(&body, |r: Forwarded<_>| self.kvs_list_keys(r.args, r.forwarded)).await,
            // Forwarded catalog writes answer with the raw write result; the forwarding server
            // turns a refusal into its error.
            CATALOG_REGISTER => typed(&body, |r: Forwarded<crate::structs::RegisterRequest>| {
                self.apply_write(CATALOG_REGISTER, r.args, r.forwarded, crate::structs::Command::register)
            })
            .await,
            CATALOG_DEREGISTER => typed(&body, |r: Forwarded<crate::structs::DeregisterRequest>| {
                self.apply_write(CATALOG_DEREGISTER, r.args, r.forwarded, crate::structs::Command::deregister)
            })
            .await,
            CATALOG_LIST_NODES => typed(&body, |r: Forwarded<_>| self.catalog_list_nodes(r.args, r.forwarded)).await,
            CATALOG_LIST_SERVICES => typed(&body, |r: Forwarded<_>| self.catalog_list_services(r.args, r.forwarded)).await,
            CATALOG_SERVICE_NODES => typed(&body, |r: Forwarded<_>| self.catalog_service_nodes(r.args, r.forwarded)).await,
            CATALOG_NODE_SERVICES => typed(&body, |r: Forwarded<_>| self.catalog_node_services(r.args, r.forwarded)).await,
            HEALTH_NODE_CHECKS => typed(&body, |r: Forwarded<_>| self.health_node_checks(r.args, r.forwarded)).await,
            HEALTH_SERVICE_CHECKS => typed(&body, |r: Forwarded<_>| self.health_service_checks(r.args, r.forwarded)).await,
            HEALTH_CHECKS_IN_STATE => typed(&body, |r: Forwarded<_>| self.health_checks_in_state(r.args, r.forwarded)).await,
            HEALTH_SERVICE_NODES => typed(&body, |r: Forwarded<_>| self.health_service_nodes(r.args, r.forwarded)).await,
            COORDINATE_UPDATE => typed(&body, |r: Forwarded<Vec<crate::structs::CoordinateEntry>>| {
                self.apply_write(COORDINATE_UPDATE, r.args, r.forwarded, crate::structs::Command::coordinate_batch_update)
            })
            .await,
            COORDINATE_LIST_NODES => typed(&body, |r: Forwarded<_>| self.coordinate_list_nodes(r.args, r.forwarded)).await,
            COORDINATE_NODE => typed(&body, |r: Forwarded<_>| self.coordinate_node(r.args, r.forwarded)).await,
            SESSION_APPLY => typed(&body, |r: Forwarded<_>| self.session_apply(r.args, r.forwarded)).await,
            SESSION_GET => typed(&body, |r: Forwarded<_>| self.session_get(r.args, r.forwarded)).await,
            SESSION_LIST => typed(&body, |r: Forwarded<_>| self.session_list(r.args, r.forwarded)).await,
            SESSION_NODE_SESSIONS => typed(&body, |r: Forwarded<_>| self.node_sessions(r.args, r.forwarded)).await,
            SESSION_RENEW => typed(&body, |r: Forwarded<_>| self.session_renew(r.args, r.forwarded)).await,
            TXN_APPLY => typed(&body, |r: Forwarded<_>| self.txn_apply(r.args, r.forwarded)).await,
            TXN_READ => typed(&body, |r: Forwarded<_>| self.txn_read(r.args, r.forwarded)).await,
            SNAPSHOT_SAVE => typed(&body, |r: Forwarded<_>| self.snapshot_save(r.args, r.forwarded)).await,
            SNAPSHOT_RESTORE => typed(&body, |r: Forwarded<crate::structs::RestoreRequest>| {
                self.apply_write(SNAPSHOT_RESTORE, r.args, r.forwarded, crate::structs::Command::restore)
            })
            .await,
            DC_FORWARD => typed(&body, |r| self.handle_dc_forward(r)).await,
            CATALOG_LIST_DATACENTERS => typed(&body, |()| async { self.local_datacenters() }).await,
            STATUS_LEADER => typed(&body, |()| async { self.leader().map(|(_, a)| a).unwrap_or_default() }).await,
            STATUS_PEERS => typed(&body, |()| async { self.voter_addrs() }).await,
            SERVER_HELLO => typed(&body, |peer: PeerInfo| self.hello(peer)).await,
            SERVER_JOIN => typed(&body, |r: Forwarded<JoinRequest>| self.join_server(r.args, r.forwarded)).await,
            SERVER_LEAVE => typed(&body, |r: Forwarded<NodeId>| self.remove_leaving_server(r.args)).await,
            SERVER_GOSSIP_ADDR => typed(&body, |()| async { self.config.serf_lan_addr().to_string() }).await,
            RAFT_TIMEOUT_NOW => typed(&body, |msg| async { self.timeout_now(msg) }).await,
            OPERATOR_TRANSFER_LEADER => {
                typed(&body, |r: Forwarded<Option<NodeId>>| async move {
                    self.transfer_leadership(r.args).await.map_err(|e| e.to_string())
                })
                .await
            }
            other => Err(format!("rpc: can't find method {other}")),
        }
    }

    fn observe(&self, method: &str, ok: bool) {
        let label = METHODS.iter().chain(CATALOG_METHODS.iter()).chain(SESSION_METHODS.iter()).chain(TXN_METHODS.iter()).chain(COORDINATE_METHODS.iter()).find(|m| **m == method).copied().unwrap_or("unknown");
        self.telemetry.metrics.rpc(label, !ok);
    }
}

/// The handler the RPC server dispatches to.
pub fn handler(server: Arc<Server>) -> Arc<dyn RpcHandler> {
    server
}

impl Server {
    /// `Server.Hello`: the bootstrap handshake. Records the caller (same datacenter only) and
    /// answers with this server's identity, whether its Raft is initialised, and the servers it
    /// knows.
    pub async fn hello(&self, peer: PeerInfo) -> HelloResponse {
        let initialized = self.raft.is_initialized().await.unwrap_or(false);
        let known = {
            let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            if peer.datacenter == self.config.datacenter {
                peers.insert(peer.node_id, peer);
            }
            peers.values().cloned().collect()
        };
        HelloResponse { me: self.me(), initialized, known }
    }
}
