//! The Raft transport: openraft's `RaftNetwork` over server RPC.
//!
//! Every call runs under openraft's `hard_ttl` deadline; a timeout or connection failure maps to
//! `Unreachable`, so openraft backs off instead of hanging on a partitioned peer.

use std::net::SocketAddr;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;

use super::{NodeId, TypeConfig};
use crate::rpc::client::RpcClient;
use crate::rpc::{RaftMessage, RpcRequest, RpcResponse};

/// Creates per-peer clients.
pub struct NetworkFactory {
    pub rpc: RpcClient,
}

/// A client for one peer.
pub struct PeerNetwork {
    rpc: RpcClient,
    target: NodeId,
    addr: Result<SocketAddr, String>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let addr = node.addr.parse::<SocketAddr>().map_err(|e| format!("bad peer address {:?}: {e}", node.addr));
        PeerNetwork { rpc: self.rpc.clone(), target, addr }
    }
}

type Err<E> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

fn unreachable<E: std::error::Error>(msg: impl Into<String>) -> Err<E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(msg.into())))
}

impl PeerNetwork {
    async fn send<E: std::error::Error>(&self, msg: RaftMessage, option: &RPCOption) -> Result<RpcResponse, Err<E>> {
        let addr = self.addr.clone().map_err(unreachable)?;
        let req = RpcRequest::Raft { target: self.target, msg };
        self.rpc.call(addr, crate::rpc::legacy::METHOD, &req, option.hard_ttl()).await.map_err(|e| unreachable(e.to_string()))
    }
}

fn unexpected<E: std::error::Error>(resp: RpcResponse) -> Err<E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(format!("unexpected response: {resp:?}"))))
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Err<openraft::error::Infallible>> {
        match self.send(RaftMessage::AppendEntries(rpc), &option).await? {
            RpcResponse::AppendEntries(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Err<InstallSnapshotError>> {
        match self.send(RaftMessage::InstallSnapshot(rpc), &option).await? {
            RpcResponse::InstallSnapshot(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Err<openraft::error::Infallible>> {
        match self.send(RaftMessage::Vote(rpc), &option).await? {
            RpcResponse::Vote(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(unexpected(other)),
        }
    }
}
