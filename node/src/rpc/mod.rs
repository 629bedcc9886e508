//! Server RPC (port 8300): the Raft transport, write and read forwarding to the leader, and the
//! bootstrap handshake.
//!
//! Wire format: one request and one response per exchange, each a checksummed frame
//! ([`crate::codec::frame`]) holding JSON. Every call has a deadline ([`client::RpcClient::call`]):
//! turmoil's TCP does not retransmit, and a partition can swallow a reply forever.

pub mod client;
pub mod server;
pub mod wire;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::agent::query::{KvQuery, QueryError, QueryResult};
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
    /// A server leaving gracefully asks the leader to remove it from the Raft configuration.
    Leave { node_id: NodeId },
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
    /// The outcome of a leave: the log index of the membership change, or why it failed.
    Leave(Result<u64, String>),
    /// The request could not be decoded or served.
    Error(String),
}
