//! TEMPORARY shim: the agent's server RPC as it was before the transport learned method names.
//!
//! Every request travels as one method, [`METHOD`], whose body is an encoded [`RpcRequest`] and
//! whose response is an encoded [`RpcResponse`]; [`AgentHandler`] decodes it and dispatches into
//! [`Agent`]. This is the only place `rpc/` reaches into `crate::agent`. It goes away when the
//! server core gets named, typed endpoints (`Raft.AppendEntries`, `KVS.Apply`, `Status.Leader`, ...)
//! registered with their own [`RpcHandler`](super::RpcHandler); delete this file then.

use std::sync::Arc;

use async_trait::async_trait;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::agent::query::{KvQuery, QueryError, QueryResult};
use crate::agent::Agent;
use crate::raft::{NodeId, TypeConfig};
use crate::state::{Command, CommandResult};

/// Who a server is, exchanged while bootstrapping (`-bootstrap-expect`, `-retry-join`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerInfo {
    pub node_id: NodeId,
    pub name: String,
    /// Server RPC address, `ip:port`.
    pub rpc_addr: String,
    pub datacenter: String,
}

/// A request to a server.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcRequest {
    /// A Raft message for the server whose Raft id is `target`. A server with another id (e.g. one
    /// that abandoned corrupted storage and took a new id at the same address) refuses it.
    Raft { target: NodeId, msg: RaftMessage },
    /// A client write forwarded by a follower to the leader.
    ForwardWrite(Command),
    /// A read forwarded to the leader (default and `?consistent` modes).
    ForwardQuery(KvQuery),
    /// Bootstrap handshake: "here I am; who do you know?"
    Hello(PeerInfo),
    /// A server asks to join a running cluster as a voter, optionally in place of its old Raft
    /// id (after abandoning corrupted storage). Followers forward it to the leader.
    Join { peer: PeerInfo, replaces: Option<NodeId> },
}

/// openraft's peer-to-peer messages.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftMessage {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

/// Why a forwarded write failed on the server that received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WriteError {
    /// No leader is known (election in progress or no quorum). Consul: 500 "No cluster leader".
    #[error("No cluster leader")]
    NoLeader,
    /// The write's outcome is unknown (timeout, connection lost after sending).
    #[error("write outcome unknown: {0}")]
    Unknown(String),
    /// The write was certainly not applied (e.g. rejected before reaching Raft).
    #[error("write rejected: {0}")]
    Rejected(String),
}

/// A response from a server.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    ForwardWrite(Result<CommandResult, WriteError>),
    ForwardQuery(Result<QueryResult, QueryError>),
    /// The responder's identity, whether its Raft is initialised, and the peers it knows.
    Hello { me: PeerInfo, initialized: bool, known: Vec<PeerInfo> },
    /// The outcome of a join: the log index of the membership change, or why it failed.
    Join(Result<u64, String>),
    /// The request could not be decoded or served.
    Error(String),
}

/// The one method name all [`RpcRequest`]s travel under.
pub const METHOD: &str = "Legacy.Call";

/// Serves [`METHOD`] by dispatching the decoded [`RpcRequest`] into the agent.
pub struct AgentHandler(pub Arc<Agent>);

#[async_trait]
impl super::RpcHandler for AgentHandler {
    async fn handle(&self, method: String, body: Vec<u8>) -> Result<Vec<u8>, String> {
        if method != METHOD {
            return Err(format!("unknown rpc method {method:?}"));
        }
        let req: RpcRequest = crate::codec::decode(&body).map_err(|e| format!("bad {METHOD} request: {e}"))?;
        let resp = dispatch(&self.0, req).await;
        crate::codec::encode(&resp).map_err(|e| format!("cannot encode {METHOD} response: {e}"))
    }
}

async fn dispatch(agent: &Agent, req: RpcRequest) -> RpcResponse {
    match req {
        RpcRequest::Raft { target, .. } if target != agent.id => {
            RpcResponse::Error(format!("raft message for {target:016x} reached {:016x}", agent.id))
        }
        RpcRequest::Raft { msg: RaftMessage::AppendEntries(rpc), .. } => {
            let result = agent.raft.append_entries(rpc).await;
            if result.as_ref().is_ok_and(|r| r.is_success()) {
                *agent.last_leader_contact.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokio::time::Instant::now());
            }
            RpcResponse::AppendEntries(result)
        }
        RpcRequest::Raft { msg: RaftMessage::Vote(rpc), .. } => RpcResponse::Vote(agent.raft.vote(rpc).await),
        RpcRequest::Raft { msg: RaftMessage::InstallSnapshot(rpc), .. } => {
            RpcResponse::InstallSnapshot(agent.raft.install_snapshot(rpc).await)
        }
        RpcRequest::ForwardWrite(cmd) => RpcResponse::ForwardWrite(agent.write_as_leader(cmd).await),
        RpcRequest::ForwardQuery(q) => RpcResponse::ForwardQuery(agent.query_local(q).await),
        RpcRequest::Join { peer, replaces } => RpcResponse::Join(agent.join_server(peer, replaces).await),
        RpcRequest::Hello(peer) => {
            let initialized = agent.raft.is_initialized().await.unwrap_or(false);
            let known = {
                let mut peers = agent.peers.lock().unwrap_or_else(|e| e.into_inner());
                if peer.datacenter == agent.config.datacenter {
                    peers.insert(peer.node_id, peer);
                }
                peers.values().cloned().collect()
            };
            RpcResponse::Hello { me: agent.me(), initialized, known }
        }
    }
}
